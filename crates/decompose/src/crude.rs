//! Crude disparity (METHODS.md §1): group means, their difference, their ratio
//! (risk ratio or ratio of means) and, for binary outcomes, the odds ratio.
//!
//! Means are weighted, m_g = Σ_{i∈g} w_i y_i / Σ_{i∈g} w_i, with linearised
//! (influence-function) variances: u_i = w_i (y_i − m_g)/W_g,
//! - unclustered: V(m_g) = Σ u_i² (× n_g/(n_g − 1) for continuous outcomes, so
//!   that the SE is s/√n; binary outcomes keep the Wald p(1 − p)/n);
//! - clustered: V = G/(G − 1) Σ_c U_c U_cᵀ over clusters c, which also gives the
//!   covariance of the two means when the groups share hospitals.
//!
//! gap = m_c − m_r with a Wald CI. The ratio's CI is exp(log ratio ± z·SE), with
//! V(log ratio) = V_c/m_c² + V_r/m_r² − 2C/(m_c m_r); its `se` is on the ratio
//! scale (delta method). The odds ratio's CI is Woolf's (its delta-method
//! generalisation with clusters and weights): V(log OR) = V_c/(m_c(1−m_c))² +
//! V_r/(m_r(1−m_r))² − 2C/(m_c(1−m_c) m_r(1−m_r)).

use statrs::distribution::{ContinuousCDF, Normal};

use crate::cells::Cells;
use crate::error::DecomposeError;
use crate::inference::{InferenceSpec, Vce};
use crate::result::Estimate;
use crate::result::MethodOutput;
use crate::sample::{CellSample, Sample};
use crate::spec::{CellSource, Context, Designs, Ran, Spec};

/// `method = "crude"`: no options.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrudeSpec {}

impl Spec for CrudeSpec {
    fn name(&self) -> &'static str {
        "crude"
    }

    fn run(
        &self,
        sample: &Sample<'_>,
        _: &dyn Designs,
        inference: &InferenceSpec,
        _: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        let estimates = crude(&CrudeInput {
            sample,
            level: inference.level,
        })?;
        let output = MethodOutput {
            estimates,
            models: Vec::new(),
            warnings: Vec::new(),
            replicates_ok: None,
            withheld: None,
            balance: Vec::new(),
            learners: None,
            inference_note: None,
            n: sample.rows(),
        };
        // Wald intervals from the groups' empirical variances (robust), or
        // over clusters.
        let wald = InferenceSpec {
            vce: if sample.cluster.is_some() {
                Vce::Cluster
            } else {
                Vce::Robust
            },
            ..InferenceSpec::delta(inference.level)
        };
        Ok(Ran::delta(output, &wald, sample.cluster_name()))
    }

    /// From the (group × cluster) cells' Σw, Σwy and rows; the Wald
    /// intervals over clusters (the warehouse path always has a cluster).
    fn run_cells(
        &self,
        sample: &CellSample<'_>,
        source: &dyn CellSource,
        inference: &InferenceSpec,
        _: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        let (_, cells) = source.cells(&[])?;
        let gm = cell_group_means(&cells)?;
        let output = MethodOutput {
            estimates: estimates_of(&gm, inference.level, sample.binary),
            models: Vec::new(),
            warnings: Vec::new(),
            replicates_ok: None,
            withheld: None,
            balance: Vec::new(),
            learners: None,
            inference_note: None,
            n: gm.n[0] + gm.n[1],
        };
        let wald = InferenceSpec {
            vce: if sample.cluster.is_some() {
                Vce::Cluster
            } else {
                Vce::Robust
            },
            ..InferenceSpec::delta(inference.level)
        };
        Ok(Ran::delta(output, &wald, sample.cluster_name()))
    }

    fn needs_rows(&self, _inference: &InferenceSpec) -> Option<DecomposeError> {
        None
    }

    fn title(&self) -> &'static str {
        "crude gaps"
    }

    fn describe(&self, _: &Context, _: &mut Vec<&'static str>) -> String {
        "Crude gaps are differences in means between each comparison group and the reference \
         group (risk differences for binary outcomes), with risk or mean ratios and, for binary \
         outcomes, odds ratios."
            .to_string()
    }
}

/// Inputs of one crude comparison.
pub struct CrudeInput<'a> {
    /// The outcome, groups, weights and cluster.
    pub sample: &'a Sample<'a>,
    /// Confidence level.
    pub level: f64,
}

/// Means, their variances and covariance.
#[derive(Debug, Clone, Copy)]
pub struct GroupMeans {
    /// Reference mean.
    pub m_r: f64,
    /// Comparison mean.
    pub m_c: f64,
    /// V(m_r).
    pub v_r: f64,
    /// V(m_c).
    pub v_c: f64,
    /// Cov(m_c, m_r).
    pub cov: f64,
    /// Rows of each group.
    pub n: [usize; 2],
}

/// The two weighted means with their (cluster-robust) covariance.
pub fn group_means(input: &CrudeInput<'_>) -> Result<GroupMeans, DecomposeError> {
    let w = |i: usize| input.sample.weights.map_or(1.0, |w| w[i]);
    let mut sw = [0.0; 2];
    let mut swy = [0.0; 2];
    let mut n = [0usize; 2];
    for (i, &g) in input.sample.group.iter().enumerate() {
        if g > 1 {
            continue;
        }
        sw[g as usize] += w(i);
        swy[g as usize] += w(i) * input.sample.y[i];
        n[g as usize] += 1;
    }
    if n[0] == 0 || n[1] == 0 {
        return Err(DecomposeError::BothGroupsNeedRows);
    }
    let m = [swy[0] / sw[0], swy[1] / sw[1]];
    let u = |i: usize, g: usize| w(i) * (input.sample.y[i] - m[g]) / sw[g];
    let (v, cov) = match input.sample.units() {
        None => {
            let mut v = [0.0; 2];
            for (i, &g) in input.sample.group.iter().enumerate() {
                if g <= 1 {
                    v[g as usize] += u(i, g as usize).powi(2);
                }
            }
            if !input.sample.binary {
                for g in 0..2 {
                    if n[g] > 1 {
                        v[g] *= n[g] as f64 / (n[g] - 1) as f64;
                    }
                }
            }
            (v, 0.0)
        }
        Some((codes, clusters)) => {
            let mut s = vec![[0.0; 2]; clusters];
            for (i, &g) in input.sample.group.iter().enumerate() {
                if g <= 1 {
                    s[codes[i] as usize][g as usize] += u(i, g as usize);
                }
            }
            cluster_covariance(&s)
        }
    };
    Ok(GroupMeans {
        m_r: m[0],
        m_c: m[1],
        v_r: v[0],
        v_c: v[1],
        cov,
        n,
    })
}

/// V = G/(G − 1) Σ_c U_c U_cᵀ from the per-cluster influence sums U_c of the
/// two means, G counting the clusters where U_c is not zero (at least 2):
/// the two variances and the covariance.
fn cluster_covariance(s: &[[f64; 2]]) -> ([f64; 2], f64) {
    let used = s
        .iter()
        .filter(|x| x[0] != 0.0 || x[1] != 0.0)
        .count()
        .max(2) as f64;
    let f = used / (used - 1.0);
    let mut v = [0.0; 2];
    let mut c = 0.0;
    for x in s {
        v[0] += x[0] * x[0];
        v[1] += x[1] * x[1];
        c += x[0] * x[1];
    }
    ([f * v[0], f * v[1]], f * c)
}

/// The two weighted means and their cluster-robust covariance from (group ×
/// cluster) cells, as [`group_means`] gives them on clustered rows: the
/// influence sums per cluster are U_cg = (Σwy − m_g Σw)/W_g over the
/// cluster's cells of group g, and V = G/(G − 1) Σ_c U_c U_cᵀ over the
/// clusters where U_c is not zero.
pub fn cell_group_means(cells: &Cells) -> Result<GroupMeans, DecomposeError> {
    let mut sw = [0.0; 2];
    let mut swy = [0.0; 2];
    let mut n = [0usize; 2];
    for (c, m) in cells.moments.iter().enumerate() {
        let g = cells.group[c] as usize;
        sw[g] += m.w;
        swy[g] += m.y;
        n[g] += cells.rows[c];
    }
    if n[0] == 0 || n[1] == 0 {
        return Err(DecomposeError::BothGroupsNeedRows);
    }
    let m = [swy[0] / sw[0], swy[1] / sw[1]];
    let mut s = vec![[0.0; 2]; cells.clusters];
    for (c, cell) in cells.moments.iter().enumerate() {
        let g = cells.group[c] as usize;
        s[cells.cluster[c] as usize][g] += (cell.y - m[g] * cell.w) / sw[g];
    }
    let (v, cov) = cluster_covariance(&s);
    Ok(GroupMeans {
        m_r: m[0],
        m_c: m[1],
        v_r: v[0],
        v_c: v[1],
        cov,
        n,
    })
}

/// The crude estimates: reference_mean, comparison_mean, gap, ratio and (binary)
/// odds_ratio.
pub fn crude(input: &CrudeInput<'_>) -> Result<Vec<Estimate>, DecomposeError> {
    let gm = group_means(input)?;
    Ok(estimates_of(&gm, input.level, input.sample.binary))
}

/// The crude estimates of two means with their covariance.
fn estimates_of(gm: &GroupMeans, level: f64, binary: bool) -> Vec<Estimate> {
    let normal = Normal::standard();
    let z = normal.inverse_cdf(1.0 - (1.0 - level) / 2.0);
    let wald = |q: &str, est: f64, var: f64| {
        let se = var.max(0.0).sqrt();
        let p = if se > 0.0 {
            2.0 * normal.sf((est / se).abs())
        } else {
            f64::NAN
        };
        Estimate::total(q, est).with_inference(se, est - z * se, est + z * se, p)
    };
    let mut out = vec![
        wald("reference_mean", gm.m_r, gm.v_r),
        wald("comparison_mean", gm.m_c, gm.v_c),
        wald("gap", gm.m_c - gm.m_r, gm.v_c + gm.v_r - 2.0 * gm.cov),
    ];
    // Ratio on the log scale.
    let log_scale = |q: &str, log_est: f64, var: f64| {
        let se = var.max(0.0).sqrt();
        let est = log_est.exp();
        let p = if se > 0.0 {
            2.0 * normal.sf((log_est / se).abs())
        } else {
            f64::NAN
        };
        Estimate::total(q, est).with_inference(
            est * se,
            (log_est - z * se).exp(),
            (log_est + z * se).exp(),
            p,
        )
    };
    if gm.m_r > 0.0 && gm.m_c > 0.0 {
        let var =
            gm.v_c / gm.m_c.powi(2) + gm.v_r / gm.m_r.powi(2) - 2.0 * gm.cov / (gm.m_c * gm.m_r);
        out.push(log_scale("ratio", (gm.m_c / gm.m_r).ln(), var));
    }
    if binary && gm.m_r > 0.0 && gm.m_r < 1.0 && gm.m_c > 0.0 && gm.m_c < 1.0 {
        let (dc, dr) = (gm.m_c * (1.0 - gm.m_c), gm.m_r * (1.0 - gm.m_r));
        let var = gm.v_c / dc.powi(2) + gm.v_r / dr.powi(2) - 2.0 * gm.cov / (dc * dr);
        let log_or = (gm.m_c / (1.0 - gm.m_c)).ln() - (gm.m_r / (1.0 - gm.m_r)).ln();
        out.push(log_scale("odds_ratio", log_or, var));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Cluster;

    /// A 2 × 2 table: reference 30/1000 events, comparison 45/900.
    fn table() -> (Vec<f64>, Vec<u32>) {
        let mut y = Vec::new();
        let mut g = Vec::new();
        for (group, events, n) in [(0u32, 30, 1000), (1, 45, 900)] {
            for i in 0..n {
                y.push(f64::from(u8::from(i < events)));
                g.push(group);
            }
        }
        (y, g)
    }

    #[test]
    fn means_from_cluster_cells_equal_the_means_from_clustered_rows() {
        let (y, g) = table();
        let w: Vec<f64> = (0..y.len()).map(|i| 1.0 + (i % 3) as f64).collect();
        let cl: Vec<u32> = (0..y.len()).map(|i| (i % 40) as u32).collect();
        let sample = Sample {
            weights: Some(&w),
            cluster: Some(Cluster {
                name: "h",
                codes: &cl,
                count: 40,
            }),
            binary: true,
            ..Sample::new(&y, &g)
        };
        let rows = group_means(&CrudeInput {
            sample: &sample,
            level: 0.95,
        })
        .unwrap();
        let cov = crate::covariates::Covariates::default();
        let cells = Cells::build(&y, &g, &cov, Some(&w), Some((&cl, 40)));
        let alone = cell_group_means(&cells).unwrap();
        assert_eq!(rows.n, alone.n);
        for (a, b) in [
            (rows.m_r, alone.m_r),
            (rows.m_c, alone.m_c),
            (rows.v_r, alone.v_r),
            (rows.v_c, alone.v_c),
            (rows.cov, alone.cov),
        ] {
            assert!((a - b).abs() <= 1e-12 * a.abs().max(1e-12), "{a} vs {b}");
        }
    }

    #[test]
    fn binary_crude_matches_the_textbook_formulas() {
        let (y, g) = table();
        let est = crude(&CrudeInput {
            sample: &Sample {
                weights: None,
                cluster: None,
                binary: true,
                ..Sample::new(&y, &g)
            },
            level: 0.95,
        })
        .unwrap();
        let get = |q: &str| est.iter().find(|e| e.quantity == q).unwrap();
        let (p0, p1, n0, n1): (f64, f64, f64, f64) = (0.03, 0.05, 1000.0, 900.0);
        let z = 1.959_963_984_540_054;
        // Risk difference, Wald CI.
        let se_rd = (p0 * (1.0 - p0) / n0 + p1 * (1.0 - p1) / n1).sqrt();
        assert!((get("gap").estimate - 0.02).abs() < 1e-15);
        assert!((get("gap").se.unwrap() - se_rd).abs() < 1e-15);
        assert!((get("gap").ci_low.unwrap() - (0.02 - z * se_rd)).abs() < 1e-12);
        // Risk ratio, log CI: SE(log RR) = sqrt(1/a − 1/n1 + 1/c − 1/n0).
        let se_lrr = (1.0 / 45.0 - 1.0 / n1 + 1.0 / 30.0 - 1.0 / n0).sqrt();
        let rr = p1 / p0;
        assert!((get("ratio").estimate - rr).abs() < 1e-12);
        assert!((get("ratio").ci_low.unwrap() - (rr.ln() - z * se_lrr).exp()).abs() < 1e-12);
        assert!((get("ratio").ci_high.unwrap() - (rr.ln() + z * se_lrr).exp()).abs() < 1e-12);
        // Odds ratio, Woolf CI: SE(log OR) = sqrt(1/a + 1/b + 1/c + 1/d).
        let or = (45.0 / 855.0) / (30.0 / 970.0);
        let se_lor = (1.0 / 45.0 + 1.0 / 855.0 + 1.0 / 30.0 + 1.0 / 970.0_f64).sqrt();
        assert!((get("odds_ratio").estimate - or).abs() < 1e-12);
        assert!((get("odds_ratio").ci_low.unwrap() - (or.ln() - z * se_lor).exp()).abs() < 1e-12);
    }

    #[test]
    fn one_row_clusters_give_the_unclustered_variance_up_to_g_over_g_minus_1() {
        let (y, g) = table();
        let ids: Vec<u32> = (0..y.len() as u32).collect();
        let base = group_means(&CrudeInput {
            sample: &Sample {
                weights: None,
                cluster: None,
                binary: true,
                ..Sample::new(&y, &g)
            },
            level: 0.95,
        })
        .unwrap();
        let cl = group_means(&CrudeInput {
            sample: &Sample {
                weights: None,
                cluster: Some(Cluster {
                    name: "cluster",
                    codes: &ids,
                    count: ids.len(),
                }),
                binary: true,
                ..Sample::new(&y, &g)
            },
            level: 0.95,
        })
        .unwrap();
        let f = y.len() as f64 / (y.len() as f64 - 1.0);
        assert!((cl.v_c - f * base.v_c).abs() < 1e-18 && cl.cov == 0.0);
    }

    #[test]
    fn weights_of_two_equal_duplicated_rows_for_the_means() {
        let y = [1.0, 0.0, 0.0, 1.0, 1.0];
        let g = [0, 0, 1, 1, 1];
        let w = [2.0, 1.0, 1.0, 1.0, 2.0];
        let a = group_means(&CrudeInput {
            sample: &Sample {
                weights: Some(&w),
                cluster: None,
                binary: true,
                ..Sample::new(&y, &g)
            },
            level: 0.95,
        })
        .unwrap();
        assert!((a.m_r - 2.0 / 3.0).abs() < 1e-15 && (a.m_c - 0.75).abs() < 1e-15);
    }
}
