//! One result from the same analysis run on m imputed data sets: every
//! estimate row pooled by Rubin's rules (healthgap_impute::pool; ratio rows on
//! the log scale), the model coefficients likewise, the per-hospital and
//! balance rows averaged, the warnings merged (those not given in every
//! imputation say in how many they were).
//!
//! Decomposition intervals are large-sample (normal), so the complete-data
//! degrees of freedom are infinite: ν = (m − 1)/λ² (Rubin 1987), as mice uses
//! for estimators without residual degrees of freedom; the model
//! coefficients are pooled the same way.

use healthgap_impute::{Pooled, rubin};

use crate::result::{AnalysisResult, Estimate, RowImputation, SeMethod};

/// Whether a row's interval is symmetric on the log scale (a ratio row made
/// by exponentiating a log-scale interval): estimate² = low·high while the
/// arithmetic midpoint is not the estimate.
fn log_scale(e: &Estimate) -> bool {
    match (e.ci_low, e.ci_high) {
        (Some(lo), Some(hi)) if lo > 0.0 && e.estimate > 0.0 => {
            let geometric =
                (e.estimate * e.estimate - lo * hi).abs() <= 1e-9 * e.estimate * e.estimate;
            let arithmetic = (0.5 * (lo + hi) - e.estimate).abs() <= 1e-9 * e.estimate.abs();
            geometric && !arithmetic
        }
        _ => false,
    }
}

/// Rubin's rules on the rows of one estimate across imputations; a row
/// without an SE in any imputation is pooled as a point estimate only.
fn pool_row(rows: &[&Estimate], level: f64) -> Estimate {
    let first = rows[0];
    let m = rows.len() as f64;
    let with_se = rows.iter().all(|e| e.se.is_some_and(f64::is_finite));
    let mut out = Estimate::total(
        &first.quantity,
        rows.iter().map(|e| e.estimate).sum::<f64>() / m,
    );
    out.factor = first.factor.clone();
    out.term = first.term.clone();
    if !with_se {
        return out;
    }
    let log = rows.iter().all(|e| log_scale(e));
    let (q, u): (Vec<f64>, Vec<f64>) = rows
        .iter()
        .map(|e| {
            let se = e.se.unwrap_or(f64::NAN);
            if log {
                (e.estimate.ln(), (se / e.estimate).powi(2))
            } else {
                (e.estimate, se * se)
            }
        })
        .unzip();
    let p = rubin(&q, &u, f64::INFINITY);
    let (lo, hi, pv) = p.interval(level);
    out = if log {
        let e = p.estimate.exp();
        Estimate { estimate: e, ..out }.with_inference(e * p.se(), lo.exp(), hi.exp(), pv)
    } else {
        Estimate {
            estimate: p.estimate,
            ..out
        }
        .with_inference(p.se(), lo, hi, pv)
    };
    out.se_method = SeMethod::Rubin;
    out.imputation = Some(row_imputation(&p, log));
    out
}

fn row_imputation(p: &Pooled, log: bool) -> RowImputation {
    RowImputation {
        m: p.m,
        within: p.within,
        between: p.between,
        total: p.total,
        df: p.df,
        riv: p.riv,
        fmi: p.fmi,
        relative_efficiency: p.relative_efficiency,
        scale: if log { "log" } else { "identity" },
    }
}

/// The key of a row.
fn key(e: &Estimate) -> (&str, Option<&str>, Option<&str>) {
    (&e.quantity, e.factor.as_deref(), e.term.as_deref())
}

/// Pools one analysis × outcome × comparison over its imputations (the
/// first is the template: its rows, order, sample counts). A row absent from
/// some imputation is dropped with a warning.
pub fn pool_results(runs: &[AnalysisResult], level: f64) -> AnalysisResult {
    let mut out = runs[0].clone();
    let m = runs.len();
    let mut dropped = Vec::new();
    out.estimates = runs[0]
        .estimates
        .iter()
        .filter_map(|e| {
            let rows: Vec<&Estimate> = runs
                .iter()
                .filter_map(|r| r.estimates.iter().find(|x| key(x) == key(e)))
                .collect();
            if rows.len() < m {
                dropped.push(e.term.clone().unwrap_or_else(|| e.quantity.clone()));
                return None;
            }
            Some(pool_row(&rows, level))
        })
        .collect();
    pool_models(&mut out, runs, level);
    average_hospitals(&mut out, runs);
    for (k, b) in out.balance.iter_mut().enumerate() {
        let rows: Vec<_> = runs.iter().filter_map(|r| r.balance.get(k)).collect();
        b.smd_before = rows.iter().map(|x| x.smd_before).sum::<f64>() / rows.len() as f64;
        b.smd_after = rows.iter().map(|x| x.smd_after).sum::<f64>() / rows.len() as f64;
    }
    out.warnings = merged_warnings(runs);
    if !dropped.is_empty() {
        out.warnings.push(format!(
            "multiple imputation: {} estimated in only some of the {m} imputations (e.g. a level \
             or column dropped as collinear in some), so not pooled",
            dropped.join(", ")
        ));
    }
    out.inference.imputation = Some("rubin".into());
    out
}

/// Each model's coefficients pooled by Rubin's rules (large-sample
/// complete-data df, as for the estimates).
fn pool_models(out: &mut AnalysisResult, runs: &[AnalysisResult], level: f64) {
    for (k, model) in out.models.iter_mut().enumerate() {
        for (c, row) in model.coefficients.iter_mut().enumerate() {
            let rows: Vec<_> = runs
                .iter()
                .filter_map(|r| r.models.get(k).and_then(|m| m.coefficients.get(c)))
                .filter(|r| r.term == row.term)
                .collect();
            if rows.len() < runs.len() {
                continue;
            }
            let q: Vec<f64> = rows.iter().map(|r| r.estimate).collect();
            let u: Vec<f64> = rows.iter().map(|r| r.se * r.se).collect();
            let p = rubin(&q, &u, f64::INFINITY);
            let (lo, hi, pv) = p.interval(level);
            row.estimate = p.estimate;
            row.se = p.se();
            row.ci_low = lo;
            row.ci_high = hi;
            row.p_value = pv;
        }
        model.vcov = format!("{}; pooled by Rubin's rules", model.vcov);
    }
}

/// The per-hospital rows' rates averaged over imputations (counts are the
/// same in every imputation: imputation fills covariates, not rows).
fn average_hospitals(out: &mut AnalysisResult, runs: &[AnalysisResult]) {
    let mean = |values: Vec<Option<f64>>| -> Option<f64> {
        let n = values.len() as f64;
        values.into_iter().sum::<Option<f64>>().map(|s| s / n)
    };
    for (k, h) in out.hospitals.iter_mut().enumerate() {
        let rows: Vec<_> = runs
            .iter()
            .filter_map(|r| r.hospitals.get(k))
            .filter(|r| r.hospital == h.hospital)
            .collect();
        if rows.len() < runs.len() {
            continue;
        }
        h.expected = mean(rows.iter().map(|r| r.expected).collect());
        h.risk_standardized = mean(rows.iter().map(|r| r.risk_standardized).collect());
        h.rs_low = mean(rows.iter().map(|r| r.rs_low).collect());
        h.rs_high = mean(rows.iter().map(|r| r.rs_high).collect());
    }
}

/// The warnings of every imputation, once each, in first-seen order; one
/// given in only some imputations says in how many.
fn merged_warnings(runs: &[AnalysisResult]) -> Vec<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for r in runs {
        let mut own: Vec<&String> = r.warnings.iter().collect();
        own.dedup();
        for w in own {
            match seen.iter_mut().find(|(s, _)| s == w) {
                Some((_, n)) => *n += 1,
                None => seen.push((w.clone(), 1)),
            }
        }
    }
    seen.into_iter()
        .map(|(w, n)| {
            if n == runs.len() {
                w
            } else {
                format!("{w} (in {n} of {} imputations)", runs.len())
            }
        })
        .collect()
}
