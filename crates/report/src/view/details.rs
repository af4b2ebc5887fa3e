//! The report's section 5, "Method details": per analysis, its sample,
//! figures (waterfall, forest plot), estimates, covariate balance and warnings.

use super::{AnalysisView, Figure, ReportInput, Table, ci_text, slug};
use crate::ReportError;
use crate::figures::{self, Step};
use crate::format::{count, num};
use crate::triangulation::{Breakdown, breakdown};
use healthgap_decompose::AnalysisResult;
use healthgap_decompose::result::{LearnerDiagnostics, NuisanceFit, Overlap};

/// The figures of one analysis's Method details: its waterfall (when it
/// breaks down by factor block) and its forest plot (when it has detailed
/// terms).
pub(super) fn figures_of(
    input: &ReportInput,
    a: &AnalysisResult,
) -> Result<Vec<Figure>, ReportError> {
    let mut figs = Vec::new();
    if let Some(b) = breakdown(a, input.factors) {
        figs.push(waterfall(input, a, &b)?);
    }
    if let Some(f) = forest(input, a)? {
        figs.push(f);
    }
    Ok(figs)
}

/// The Method details view of one analysis, `index` its position in
/// results.json's `analyses`, with its figures.
pub(super) fn view_of(
    input: &ReportInput,
    a: &AnalysisResult,
    index: usize,
    figs: Vec<Figure>,
) -> AnalysisView {
    let (label, _) = input.outcome(&a.outcome);
    AnalysisView {
        title: format!(
            "{}: {label}, {} vs {}",
            if a.id == a.spec.name() {
                a.id.clone()
            } else {
                format!("{} ({})", a.id, a.spec.name())
            },
            a.comparison,
            a.reference
        ),
        index,
        anchor: slug(&["analysis", &a.id, &a.outcome, &a.comparison]),
        meta: format!(
            "n = {} · inference: {}{}",
            count(a.n, input.min_cell),
            inference_text(a),
            headline_fmi(a)
        ),
        table: estimates_table(a),
        balance: balance_table(a),
        learners: a.learners.as_ref().map_or_else(Vec::new, learner_tables),
        attrition: attrition_table(a),
        figures: figs,
        warnings: a.warnings.clone(),
    }
}

fn waterfall(
    input: &ReportInput,
    a: &AnalysisResult,
    b: &Breakdown,
) -> Result<Figure, ReportError> {
    let (label, scale) = input.outcome(&a.outcome);
    let f = scale.factor;
    let steps: Vec<Step> = b
        .parts
        .iter()
        .map(|p| {
            (
                p.label.clone(),
                p.estimate * f,
                p.ci.map(|(l, h)| (l * f, h * f)),
                input.block_colour(p.factor.as_deref()),
            )
        })
        .chain(std::iter::once((
            b.rest.label.clone(),
            b.rest.estimate * f,
            b.rest.ci.map(|(l, h)| (l * f, h * f)),
            None,
        )))
        .collect();
    let caption = format!(
        "{} — {}: {} vs {}, {} {} (this analysis's {} interval{}; Findings shows the crude \
         gap's)",
        a.id,
        label,
        a.comparison,
        a.reference,
        b.total.label,
        scale.with_ci(b.total.estimate, b.total.ci, a.inference.level),
        a.inference.method,
        if a.inference.method == "bootstrap" {
            format!(", {}", a.inference.interval)
        } else {
            String::new()
        }
    );
    let svg = figures::waterfall(
        &format!("{}: {} vs {}", a.id, a.comparison, a.reference),
        &input.x_label(&a.outcome),
        &steps,
        (
            &b.total.label,
            b.total.estimate * f,
            b.total.ci.map(|(l, h)| (l * f, h * f)),
        ),
    )?;
    Ok(Figure {
        id: slug(&["waterfall", &a.id, &a.outcome, &a.comparison]),
        caption,
        svg,
    })
}

/// The fraction of missing information of the method's headline total
/// (its breakdown's total), for imputed analyses.
fn headline_fmi(a: &AnalysisResult) -> String {
    let Some(b) = a.spec.spec().breakdown() else {
        return String::new();
    };
    a.get(b.total.1, None, None)
        .and_then(|e| e.imputation)
        .map_or_else(String::new, |i| {
            format!(" · FMI of the {} {:.3} (m = {})", b.total.1, i.fmi, i.m)
        })
}

fn estimates_table(a: &AnalysisResult) -> Table {
    let imputed = a.estimates.iter().any(|e| e.imputation.is_some());
    let mut head: Vec<String> = [
        "quantity", "factor", "term", "estimate", "SE", "CI", "p", "SE by",
    ]
    .map(String::from)
    .to_vec();
    if imputed {
        head.push("FMI".into());
    }
    Table {
        head,
        rows: a
            .estimates
            .iter()
            .map(|e| {
                let mut row = vec![
                    e.quantity.clone(),
                    e.factor.clone().unwrap_or_default(),
                    e.term.clone().unwrap_or_default(),
                    num(Some(e.estimate)),
                    num(e.se),
                    ci_text(e.ci_low, e.ci_high, 1.0),
                    num(e.p_value),
                    e.se_method.as_str().to_string(),
                ];
                if imputed {
                    row.push(
                        e.imputation
                            .map_or_else(String::new, |i| format!("{:.3}", i.fmi)),
                    );
                }
                row
            })
            .collect(),
        numeric_from: 3,
        note: Some(format!(
            "Estimates in the outcome's own units (proportions for binary outcomes).{}",
            if a.inference.method == "bootstrap" {
                " p-values use the normal approximation with the bootstrap SE, so near 0.05 they \
                 can disagree with the percentile interval."
            } else {
                ""
            }
        )),
    }
}

/// The complete cases of an analysis: per step, each group's excluded and
/// remaining rows (already suppressed).
fn attrition_table(a: &AnalysisResult) -> Option<Table> {
    if a.attrition.is_empty() {
        return None;
    }
    let mut groups: Vec<&str> = Vec::new();
    let mut steps: Vec<&str> = Vec::new();
    for r in &a.attrition {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
        if !steps.contains(&r.step.as_str()) {
            steps.push(&r.step);
        }
    }
    let mut head = vec!["step".to_string()];
    for g in &groups {
        head.push(format!("{g}: excluded"));
        head.push(format!("{g}: remaining"));
    }
    let rows = steps
        .iter()
        .map(|s| {
            let mut row = vec![(*s).to_string()];
            for g in &groups {
                let cell = a.attrition.iter().find(|r| r.step == *s && r.group == *g);
                row.push(cell.map_or(String::new(), |r| {
                    if r.step == "cohort" {
                        String::new()
                    } else {
                        r.text[0].clone()
                    }
                }));
                row.push(cell.map_or(String::new(), |r| r.text[1].clone()));
            }
            row
        })
        .collect();
    Some(Table {
        head,
        rows,
        numeric_from: 1,
        note: Some(
            "This analysis uses the complete cases of its own outcome and covariates: each step \
             excludes the rows missing that variable (and complete in the steps above). Table 1 \
             describes the cohort before these steps."
                .into(),
        ),
    })
}

/// The covariate balance of an analysis's density-ratio weights.
fn balance_table(a: &AnalysisResult) -> Option<Table> {
    (!a.balance.is_empty()).then(|| Table {
        head: ["intervened targets", "column", "SMD before", "SMD after"]
            .map(String::from)
            .to_vec(),
        rows: a
            .balance
            .iter()
            .map(|b| {
                vec![
                    b.targets.clone(),
                    b.column.clone(),
                    format!("{:.3}", b.smd_before),
                    format!(
                        "{:.3}{}",
                        b.smd_after,
                        if b.smd_after.abs() > 0.1 { " †" } else { "" }
                    ),
                ]
            })
            .collect(),
        numeric_from: 2,
        note: Some(
            "Covariate balance of the density-ratio weights: the standardized difference of the \
             comparison patients' mean of each column from the mean under the intervention, \
             (m − m_I)/√((s² + s²_I)/2), before and after weighting (Austin 2009). † |SMD| > 0.1 \
             after weighting: the weights do not reproduce the intervened distribution."
                .into(),
        ),
    })
}

/// The cross-fitted learners' diagnostics: one row per nuisance model (its
/// out-of-fold loss, folds that fell back to a constant, and a super
/// learner's members with their CV losses and weights), then one row per
/// density ratio (Kish's effective sample size, clipped probabilities and
/// quantiles of r̂). Summaries only: no patient's value appears.
fn learner_tables(l: &LearnerDiagnostics) -> Vec<Table> {
    let members = |f: &NuisanceFit| {
        f.members
            .iter()
            .map(|m| format!("{} {:.4} (weight {:.2})", m.learner, m.cv_loss, m.weight))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let fits = Table {
        head: [
            "nuisance",
            "learner",
            "loss",
            "cross-validated loss",
            "fallback folds",
            "super learner: member CV loss (weight)",
        ]
        .map(String::from)
        .to_vec(),
        rows: l
            .nuisances
            .iter()
            .map(|f| {
                vec![
                    f.nuisance.clone(),
                    f.learner.clone(),
                    f.loss.clone(),
                    format!("{:.4}", f.cv_loss),
                    f.fallback_folds.to_string(),
                    members(f),
                ]
            })
            .collect(),
        numeric_from: 3,
        note: Some(format!(
            "Nuisance models by {}, cross-fitted over {} folds of whole {}: each patient's              prediction comes from a fit that did not see its fold; the loss is that of the              out-of-fold predictions. A super learner's member losses and weights are averaged              over the folds' fits.",
            l.learner, l.folds, l.fold_by
        )),
    };
    let mut tables = vec![fits];
    if !l.overlap.is_empty() {
        let q = |o: &Overlap, p: f64| {
            o.quantiles
                .iter()
                .find(|q| (q.p - p).abs() < 1e-9)
                .map_or_else(|| "—".into(), |q| num(Some(q.ratio)))
        };
        tables.push(Table {
            head: [
                "intervened targets",
                "patients",
                "effective sample size",
                "clipped",
                "median r̂",
                "99th pct r̂",
                "max r̂",
            ]
            .map(String::from)
            .to_vec(),
            rows: l
                .overlap
                .iter()
                .map(|o| {
                    vec![
                        o.targets.clone(),
                        o.n.to_string(),
                        format!(
                            "{:.0} ({:.1}%){}",
                            o.effective_sample_size,
                            100.0 * o.effective_sample_size / o.n.max(1) as f64,
                            if o.effective_sample_size < 0.2 * o.n as f64 { " †" } else { "" }
                        ),
                        o.clipped.to_string(),
                        q(o, 0.5),
                        q(o, 0.99),
                        q(o, 1.0),
                    ]
                })
                .collect(),
            numeric_from: 1,
            note: Some(format!(
                "Overlap of the cross-fitted density ratios r̂ (intervened over observed                  comparison patients): Kish's effective sample size (Σ w r̂)²/Σ (w r̂)²,                  probabilities clipped to [{:e}, 1 − {:e}] before the odds, and quantiles of                  r̂. † below 20% of the patients: poor overlap, the doubly robust correction                  is unstable.",
                l.clip, l.clip
            )),
        });
    }
    tables
}

/// The detailed terms of a decomposition: (quantity, label).
fn forest(input: &ReportInput, a: &AnalysisResult) -> Result<Option<Figure>, ReportError> {
    let Some(quantity) = a.spec.spec().detailed_quantity() else {
        return Ok(None);
    };
    let (_, scale) = input.outcome(&a.outcome);
    let f = scale.factor;
    const MAX_TERMS: usize = 60;
    let terms: Vec<Step> = a
        .estimates
        .iter()
        .filter(|e| e.quantity == quantity && e.term.is_some())
        .take(MAX_TERMS)
        .map(|e| {
            (
                e.term.clone().unwrap_or_default(),
                e.estimate * f,
                e.ci_low.zip(e.ci_high).map(|(l, h)| (l * f, h * f)),
                input.block_colour(e.factor.as_deref()),
            )
        })
        .collect();
    if terms.is_empty() {
        return Ok(None);
    }
    let total = a
        .estimates
        .iter()
        .filter(|e| e.quantity == quantity && e.term.is_some())
        .count();
    let svg = figures::forest(
        &format!(
            "{} by term: {} vs {}",
            quantity.replace('_', " "),
            a.comparison,
            a.reference
        ),
        &input.x_label(&a.outcome),
        &terms,
    )?;
    Ok(Some(Figure {
        id: slug(&["forest", &a.id, &a.outcome, &a.comparison]),
        caption: format!(
            "{}: {} per design column, coloured by factor block{}",
            a.id,
            quantity.replace('_', " "),
            if total > MAX_TERMS {
                format!(" (the first {MAX_TERMS} of {total} terms)")
            } else {
                String::new()
            }
        ),
        svg,
    }))
}

fn inference_text(a: &AnalysisResult) -> String {
    let inf = &a.inference;
    let reps = inf.replicates.map_or(String::new(), |r| {
        format!(
            " ({} of {r} replicates succeeded)",
            inf.replicates_ok.unwrap_or(0)
        )
    });
    let cluster = inf
        .cluster
        .as_ref()
        .map_or(String::new(), |c| format!(", clustered by {c}"));
    format!(
        "{}{reps}{cluster}, {} intervals at {:.0}%",
        inf.method,
        inf.interval,
        100.0 * inf.level
    )
}
