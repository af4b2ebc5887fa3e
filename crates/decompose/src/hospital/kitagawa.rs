//! The Kitagawa split of the gap into between- and within-hospital parts
//! (raw, symmetric and risk-adjusted; see [`super`]) from per-cell moments,
//! with the LPM group coefficients without and with hospital effects from
//! the same cells, so that every row shares one cluster bootstrap.

use healthgap_models::ModelSummary;

use super::HospitalInput;
use crate::cells::{Cells, FitSpec, linear_summary, singular_error};
use crate::covariates::Absorbed;
use crate::covariates::Covariates;
use crate::error::DecomposeError;
use crate::inference::{
    InferenceSpec, Inferred, Key, Method, Resampled, normal_row, resampled_rows, share_text,
};
use crate::result::{Estimate, SeMethod};
use crate::sample::Cluster;
use crate::shares::{ShareSpec, Shares};

/// The per-cell moments and the two LPM specs, fixed across replicates.
struct Setup {
    cells: Cells,
    adjusted: bool,
    base: FitSpec,
    full: FitSpec,
    keys: Vec<Key>,
    shares: Shares,
}

impl Setup {
    /// Every row, in key order, at the replicate's cluster multiplicities.
    fn values(&self, mult: Option<&[f64]>) -> Result<Vec<f64>, String> {
        let cells = &self.cells;
        let p = cells.p();
        let (wr, yr, xr) = cells.level_sums(0, mult);
        let (wc, yc, xc) = cells.level_sums(1, mult);
        let (tr, tc): (f64, f64) = (wr.iter().sum(), wc.iter().sum());
        if tr <= 0.0 || tc <= 0.0 {
            return Err("a group has no weight".into());
        }
        let base = cells.fit(&self.base, mult).map_err(|e| e.to_string())?;
        let full = cells.fit(&self.full, mult).map_err(|e| e.to_string())?;
        // β of the adjust columns (full model: indicator first, no intercept).
        let beta = &full.coef[1..];
        let adjust = |y: &[f64], x: &[f64]| -> Vec<f64> {
            (0..y.len())
                .map(|l| y[l] - (1..p).map(|j| x[l * p + j] * beta[j - 1]).sum::<f64>())
                .collect()
        };
        let mut out = Vec::with_capacity(self.keys.len());
        let split = |yr: &[f64], yc: &[f64]| -> [f64; 5] {
            let (mut b, mut wi, mut bs, mut ws) = (0.0, 0.0, 0.0, 0.0);
            for l in 0..wr.len() {
                let (sr, sc) = (wr[l] / tr, wc[l] / tc);
                if sr == 0.0 && sc == 0.0 {
                    continue;
                }
                let mc = if wc[l] > 0.0 { yc[l] / wc[l] } else { f64::NAN };
                let mr = if wr[l] > 0.0 { yr[l] / wr[l] } else { mc };
                let mc = if mc.is_nan() { mr } else { mc };
                b += (sc - sr) * mr;
                wi += sc * (mc - mr);
                bs += (sc - sr) * (mc + mr) / 2.0;
                ws += (sc + sr) / 2.0 * (mc - mr);
            }
            let gap = yc.iter().sum::<f64>() / tc - yr.iter().sum::<f64>() / tr;
            [gap, b, wi, bs, ws]
        };
        let raw = split(&yr, &yc);
        out.extend(raw);
        if self.adjusted {
            let adj = split(&adjust(&yr, &xr), &adjust(&yc, &xc));
            out.extend([adj[0], adj[1], adj[2]]);
        }
        let (t0, t1) = (base.coef[0], full.coef[0]);
        out.extend([t0, t1, t0 - t1]);
        out.resize(self.keys.len(), f64::NAN);
        self.shares.fill(&mut out);
        Ok(out)
    }
}

/// Shares of the gap: between and within hospitals.
pub(super) const SHARES: ShareSpec = ShareSpec {
    total: "gap",
    blocks: None,
    named: &["between_hospital", "within_hospital"],
};

/// The row keys: the splits, the adjusted splits, the coefficients, the shares.
fn keys(adjusted: bool) -> Vec<Key> {
    let mut q = vec![
        "gap",
        "between_hospital",
        "within_hospital",
        "between_hospital_symmetric",
        "within_hospital_symmetric",
    ];
    if adjusted {
        q.extend([
            "gap_adjusted",
            "between_hospital_adjusted",
            "within_hospital_adjusted",
        ]);
    }
    q.extend([
        "coefficient_without_fe",
        "coefficient_with_fe",
        "coefficient_change",
    ]);
    let mut keys: Vec<Key> = q.into_iter().map(|q| (q.to_string(), None, None)).collect();
    let shares = SHARES.keys(&keys);
    keys.extend(shares);
    keys
}

/// Common support: hospitals that treat patients of one group only (their
/// reference rate is the comparison group's own, so they count as between),
/// from the rows behind each (group × hospital) cell.
fn common_support_warning(cells: &Cells, context: &CellContext<'_>) -> Option<String> {
    let mut count = vec![[0usize; 2]; cells.levels];
    let mut n = [0usize; 2];
    for ((&l, &g), &rows) in cells.level.iter().zip(&cells.group).zip(&cells.rows) {
        count[l as usize][g as usize] += rows;
        n[g as usize] += rows;
    }
    let only = |g: usize| -> (usize, usize) {
        let hs: Vec<usize> = (0..cells.levels)
            .filter(|&l| count[l][g] > 0 && count[l][1 - g] == 0)
            .collect();
        (hs.len(), hs.iter().map(|&l| count[l][g]).sum())
    };
    let ((hr, pr), (hc, pc)) = (only(0), only(1));
    if hr + hc > 0 {
        let pct = |k: usize, g: usize| share_text(k, n[g], context.min_cell);
        return Some(format!(
            "common support: {hr} hospital(s) treat {} patients only ({} of them) and {hc} \
             hospital(s) {} patients only ({} of them); their reference rate is the \
             comparison group's own, so they count as between-hospital",
            context.labels[0],
            pct(pr, 0),
            context.labels[1],
            pct(pc, 1)
        ));
    }
    None
}

/// What the cell rows need beyond the cells.
pub(super) struct CellContext<'a> {
    /// Reference and comparison labels.
    pub(super) labels: [&'a str; 2],
    /// Small-cell threshold.
    pub(super) min_cell: usize,
    /// The hospital variable (absorbed in the cells).
    pub(super) hospital: &'a Absorbed,
    /// The cluster of the cells (the hospital when none is configured).
    pub(super) cluster: Cluster<'a>,
}

/// The (group × hospital × cluster) cells of the rows over the adjustment
/// covariates, the hospital absorbed.
pub(super) fn cells_of_rows(input: &HospitalInput<'_>, cluster: Cluster<'_>) -> Cells {
    let cov = Covariates {
        columns: input.covariates.columns.clone(),
        categoricals: input.covariates.categoricals.clone(),
        absorbed: Some(input.hospital.clone()),
    };
    Cells::build(
        input.sample.y,
        input.sample.group,
        &cov,
        input.sample.weights,
        Some(cluster.units()),
    )
}

/// The rows from the per-cell moments (the Kitagawa splits and the LPM
/// coefficients without and with hospital effects) with their two models and
/// their inference: the cluster delta method or bootstrap, the coefficients
/// with their models' CR1 SEs under the delta method. The cells come from
/// the rows ([`cells_of_rows`]) or from a warehouse.
pub(super) fn cell_rows(
    cells: Cells,
    context: &CellContext<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
    warnings: &mut Vec<String>,
) -> Result<(Vec<Estimate>, Vec<ModelSummary>, Inferred), DecomposeError> {
    let (h, cluster, labels) = (context.hospital, context.cluster, context.labels);
    let level = inference.level;
    warnings.extend(common_support_warning(&cells, context));
    let p = cells.p();
    let adjusted = p > 1;
    let row_keys = keys(adjusted);
    let setup = Setup {
        base: FitSpec {
            groups: [true, true],
            indicator: true,
            absorb: false,
            columns: (0..p).collect(),
        },
        full: FitSpec {
            groups: [true, true],
            indicator: true,
            absorb: true,
            columns: (0..p).collect(),
        },
        shares: SHARES.positions(&row_keys),
        keys: row_keys,
        adjusted,
        cells,
    };
    let base = setup
        .cells
        .fit(&setup.base, None)
        .map_err(|e| singular_error(e, "model without hospital effects"))?;
    let full = setup
        .cells
        .fit(&setup.full, None)
        .map_err(|e| singular_error(e, "model with hospital effects"))?;
    let point = setup.values(None).map_err(DecomposeError::Statistic)?;
    let models: Vec<ModelSummary> = [
        ("LPM without hospital effects", &setup.base, &base, None),
        ("LPM with hospital effects", &setup.full, &full, Some(h)),
    ]
    .into_iter()
    .map(|(label, spec, fit, abs)| {
        linear_summary(
            &setup.cells,
            format!("{label} ({} + {})", labels[0], labels[1]),
            spec,
            fit,
            Some(cluster),
            abs,
            level,
        )
    })
    .collect();
    let stat = |m: &[f64]| setup.values(Some(m));
    // Always clustered (by the hospital when no cluster is configured).
    let resampled = Resampled {
        keys: &setup.keys,
        point: &point,
        spec: inference,
        clusters: Some(cluster.count),
        // Always clustered: no row bootstrap.
        group: &[],
        weights: None,
    };
    let unclustered = || -> Result<Option<(Vec<f64>, SeMethod)>, DecomposeError> { Ok(None) };
    let no_rows = |_: &[f64], _: &[u32]| -> Result<Vec<f64>, String> { Err("clustered".into()) };
    let mut inferred = resampled_rows(&resampled, stat, unclustered, no_rows, progress, warnings)?;
    let mut estimates = std::mem::take(&mut inferred.rows);
    if inference.method == Method::Delta {
        // The coefficients carry their models' CR1 SEs (fixest counting).
        for (r, m) in [
            ("coefficient_without_fe", &models[0]),
            ("coefficient_with_fe", &models[1]),
        ] {
            if let (Some(row), Some(c)) = (
                estimates.iter_mut().find(|e| e.quantity == r),
                m.coefficients.first(),
            ) {
                *row = normal_row(r, c.estimate, c.se, level).made_by(SeMethod::DeltaCluster);
            }
        }
    }
    Ok((estimates, models, inferred))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three hospitals, by hand: shares and rates
    /// r: h0 50% at 0.10, h1 30% at 0.20, h2 20% at 0.30 (ȳ_r = 0.17);
    /// c: h0 10% at 0.20, h1 30% at 0.30, h2 60% at 0.40 (ȳ_c = 0.35).
    /// between = Σ (s_c − s_r) μ_r = (−0.4)(0.1) + 0 (0.2) + 0.4 (0.3) = 0.08;
    /// within = Σ s_c (μ_c − μ_r) = 0.1·0.1 + 0.3·0.1 + 0.6·0.1 = 0.10.
    #[test]
    fn kitagawa_by_hand_on_three_hospitals() {
        let mut y = Vec::new();
        let mut g = Vec::new();
        let mut h = Vec::new();
        let mut add = |grp: u32, hosp: u32, n: usize, events: usize| {
            for k in 0..n {
                y.push(f64::from(u8::from(k < events)));
                g.push(grp);
                h.push(hosp);
            }
        };
        add(0, 0, 50, 5);
        add(0, 1, 30, 6);
        add(0, 2, 20, 6);
        add(1, 0, 10, 2);
        add(1, 1, 30, 9);
        add(1, 2, 60, 24);
        let cov = Covariates::default();
        let cells = Cells::build(
            &y,
            &g,
            &Covariates {
                absorbed: Some(Absorbed {
                    variable: "h".into(),
                    factor: "care".into(),
                    codes: h.to_vec(),
                    levels: 3,
                    labels: vec!["a".into(), "b".into(), "c".into()],
                }),
                ..cov
            },
            None,
            Some((&h, 3)),
        );
        let setup = Setup {
            base: FitSpec {
                groups: [true, true],
                indicator: true,
                absorb: false,
                columns: vec![0],
            },
            full: FitSpec {
                groups: [true, true],
                indicator: true,
                absorb: true,
                columns: vec![0],
            },
            shares: SHARES.positions(&keys(false)),
            keys: keys(false),
            adjusted: false,
            cells,
        };
        let v = setup.values(None).unwrap();
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(v[0], 0.18);
        close(v[1], 0.08);
        close(v[2], 0.10);
        close(v[1] + v[2], v[0]);
        close(v[3] + v[4], v[0]);
        // Symmetric: between = Σ (s_c − s_r)(μ_c + μ_r)/2 = −0.4·0.15 + 0 + 0.4·0.35 = 0.08.
        close(v[3], 0.08);
        close(v[4], 0.10);
    }
}
