//! Variance estimators: V = B M B, with B the bread (the inverse Hessian, or
//! (X'WX)⁻¹ for least squares) and M the meat built from per-row scores.
//!
//! - iid: V = s² B (least squares, s² = Σwe²/(n − K)) or V = B (maximum likelihood).
//! - HC1: V = c · B (Σ_i s_i s_iᵀ) B with c = n/(n − K) (MacKinnon & White 1985;
//!   statsmodels' HC1) or (n − 1)/(n − K) (fixest's "hetero").
//! - CR1: V = G/(G − 1) · (n − 1)/(n − K) · B (Σ_g S_g S_gᵀ) B, S_g the score sum
//!   of cluster g (Liang & Zeger 1986; Cameron & Miller 2015).
//!
//! K counts the estimated coefficients plus, by [`FixefK`], the absorbed fixed
//! effects: none; all of them (Σ_f levels_f − (F − 1)); or those not nested in
//! the cluster variable (fixest's default `fixef.K = "nested"`).

use serde::Serialize;

use crate::design::FixedEffect;
use crate::error::ModelError;
use crate::fe::nested_in;
use crate::linalg::sandwich;

/// Which variance estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VcovKind {
    /// Homoskedastic (least squares) or inverse information (likelihood).
    Iid,
    /// Heteroskedasticity-robust with a small-sample factor.
    Hc1,
    /// Cluster-robust with the CR1 small-sample factor.
    Cr1,
}

/// How absorbed fixed effects count in K.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum FixefK {
    /// Not at all (pyfixest's default `fixef_k = "none"`).
    None,
    /// All FE coefficients.
    Full,
    /// FE coefficients except those of FE sets nested in the clusters (fixest's default).
    #[default]
    Nested,
}

/// The n-ratio in the HC1 and iid factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum HcRatio {
    /// n/(n − K), statsmodels' HC1.
    #[default]
    NOverNMinusK,
    /// (n − 1)/(n − K), fixest's "hetero".
    NMinus1OverNMinusK,
}

/// Small-sample settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SmallSample {
    /// How absorbed FE count in K.
    pub fixef_k: FixefK,
    /// The HC1 n-ratio.
    pub hc_ratio: HcRatio,
    /// Multiply the likelihood iid variance by (n − 1)/(n − K), as pyfixest's
    /// `feglm` does (statsmodels does not).
    pub likelihood_iid_adj: bool,
}

/// A variance-covariance matrix with what is needed for inference.
#[derive(Debug, Clone, PartialEq)]
pub struct Vcov {
    /// Estimator.
    pub kind: VcovKind,
    /// k × k, row-major.
    pub matrix: Vec<f64>,
    /// Degrees of freedom for t tests (n − K, or G − 1 when clustered).
    pub df: f64,
    /// Clusters used.
    pub clusters: Option<usize>,
    /// The K used in the small-sample factor.
    pub k_total: usize,
    /// Label for reports, e.g. `CR1(hospital_id)`.
    pub label: String,
}

impl Vcov {
    /// Standard errors.
    pub fn se(&self) -> Vec<f64> {
        let k = (self.matrix.len() as f64).sqrt() as usize;
        (0..k)
            .map(|i| self.matrix[i * k + i].max(0.0).sqrt())
            .collect()
    }
}

/// What a fitted model supplies to the sandwich.
pub struct SandwichParts<'a> {
    /// Inverse Hessian / (X'WX)⁻¹, k × k row-major.
    pub bread: &'a [f64],
    /// Regressors (demeaned under absorbed FE), column-major n × k: the score of
    /// row i is `u[i] · x[i, ·]`.
    pub x: &'a [f64],
    /// Per-row score factor: w_i e_i (least squares) or w_i ∂ℓ_i/∂η_i.
    pub u: Vec<f64>,
    /// Rows.
    pub n: usize,
    /// Coefficients.
    pub k: usize,
    /// Absorbed FE sets.
    pub absorbed: Vec<&'a FixedEffect>,
    /// Least squares: Σ w e² (for the iid s²); None for likelihood models.
    pub rss: Option<f64>,
}

/// Number of absorbed FE parameters counted in K (fixest/pyfixest 0.60):
/// L − (F − 1) for L levels in F sets; under `Nested` with clusters, each set
/// nested in the clusters counts as one parameter instead of its levels.
pub fn absorbed_k(absorbed: &[&FixedEffect], cluster: Option<&[u32]>, fixef_k: FixefK) -> usize {
    if absorbed.is_empty() || fixef_k == FixefK::None {
        return 0;
    }
    let levels: usize = absorbed.iter().map(|fe| fe.levels).sum();
    let mut count = levels + 1 - absorbed.len();
    if let (FixefK::Nested, Some(c)) = (fixef_k, cluster) {
        for fe in absorbed {
            if nested_in(fe, c) {
                count -= fe.levels - 1;
            }
        }
    }
    count
}

/// Computes V for `kind`. `cluster` (codes 0..g) and `cluster_name` are needed
/// for CR1.
pub fn compute(
    parts: &SandwichParts<'_>,
    kind: VcovKind,
    cluster: Option<(&[u32], usize, &str)>,
    ssc: SmallSample,
) -> Result<Vcov, ModelError> {
    let (n, k) = (parts.n, parts.k);
    let codes = cluster.map(|c| c.0);
    let k_total = k + absorbed_k(
        &parts.absorbed,
        if kind == VcovKind::Cr1 { codes } else { None },
        ssc.fixef_k,
    );
    let nf = n as f64;
    let dof = nf - k_total as f64;
    if dof <= 0.0 {
        return Err(ModelError::Dimension {
            what: format!(
                "{n} observations for {k_total} parameters: no residual degrees of freedom"
            ),
        });
    }
    let meat = |groups: Option<(&[u32], usize)>| -> Vec<f64> {
        let (x, u) = (parts.x, &parts.u);
        match groups {
            // Σ_i u_i² x_i x_iᵀ: a weighted Gram matrix.
            None => {
                crate::linalg::gram(x, n, k, Some(&u.iter().map(|v| v * v).collect::<Vec<_>>()))
            }
            Some((codes, g)) => {
                // Cluster score sums S_g = Σ_{i∈g} u_i x_i, without an n × k matrix;
                // one column per task (each column's sums in row order, so the
                // result does not depend on the threads).
                use rayon::prelude::*;
                let by_column: Vec<Vec<f64>> = (0..k)
                    .into_par_iter()
                    .map(|a| {
                        let col = &x[a * n..(a + 1) * n];
                        let mut s = vec![0.0; g];
                        for i in 0..n {
                            s[codes[i] as usize] += u[i] * col[i];
                        }
                        s
                    })
                    .collect();
                let mut sums = vec![0.0; g * k];
                for (a, s) in by_column.iter().enumerate() {
                    for (c, v) in s.iter().enumerate() {
                        sums[c * k + a] = *v;
                    }
                }
                let mut m = vec![0.0; k * k];
                for c in 0..g {
                    let row = &sums[c * k..(c + 1) * k];
                    for a in 0..k {
                        for b in 0..k {
                            m[a * k + b] += row[a] * row[b];
                        }
                    }
                }
                m
            }
        }
    };
    let (matrix, df, clusters, label) = match kind {
        VcovKind::Iid => {
            let scale = match parts.rss {
                Some(rss) => rss / dof,
                None if ssc.likelihood_iid_adj => (nf - 1.0) / dof,
                None => 1.0,
            };
            (
                parts.bread.iter().map(|b| b * scale).collect(),
                dof,
                None,
                "iid".to_string(),
            )
        }
        VcovKind::Hc1 => {
            let c = match ssc.hc_ratio {
                HcRatio::NOverNMinusK => nf / dof,
                HcRatio::NMinus1OverNMinusK => (nf - 1.0) / dof,
            };
            let v = sandwich(parts.bread, k, k, &meat(None));
            (
                v.iter().map(|x| x * c).collect(),
                dof,
                None,
                "HC1".to_string(),
            )
        }
        VcovKind::Cr1 => {
            let (codes, g, name) = cluster.ok_or(ModelError::TooFewClusters { clusters: 0 })?;
            if g < 2 {
                return Err(ModelError::TooFewClusters { clusters: g });
            }
            let gf = g as f64;
            let c = gf / (gf - 1.0) * (nf - 1.0) / dof;
            let v = sandwich(parts.bread, k, k, &meat(Some((codes, g))));
            (
                v.iter().map(|x| x * c).collect(),
                gf - 1.0,
                Some(g),
                format!("CR1({name})"),
            )
        }
    };
    Ok(Vcov {
        kind,
        matrix,
        df,
        clusters,
        k_total,
        label,
    })
}

/// One model's contribution to a joint sandwich: its sandwich parts and the
/// common cluster code of each of its rows.
pub struct JointPart<'a> {
    /// Bread and scores of the model.
    pub parts: SandwichParts<'a>,
    /// Cluster code (0..g, shared across models) of each of the model's rows.
    pub cluster: &'a [u32],
}

/// The joint (stacked, seemingly-unrelated) cluster-robust variance of several
/// models fitted on the same clusters, possibly on different rows:
///
/// V = G/(G − 1) · B (Σ_g S_g S_gᵀ) B, B = blockdiag(B_1, …, B_M),
/// S_g = (S_1g, …, S_Mg), S_mg the score sum of model m in cluster g.
///
/// The off-diagonal blocks are the covariances between the models' estimates
/// (e.g. b_r and b_c when both groups are treated at the same hospitals). The
/// diagonal blocks equal each model's CR1 without its (n − 1)/(n − K) factor.
pub fn joint_cr1(models: &[JointPart<'_>], g: usize) -> Result<Vec<f64>, ModelError> {
    if g < 2 {
        return Err(ModelError::TooFewClusters { clusters: g });
    }
    let total: usize = models.iter().map(|m| m.parts.k).sum();
    let mut sums = vec![0.0; g * total];
    let mut offset = 0;
    for m in models {
        let (n, k) = (m.parts.n, m.parts.k);
        if m.cluster.len() != n {
            return Err(ModelError::Dimension {
                what: format!("{} cluster codes for {n} rows", m.cluster.len()),
            });
        }
        for a in 0..k {
            let col = &m.parts.x[a * n..(a + 1) * n];
            for i in 0..n {
                sums[m.cluster[i] as usize * total + offset + a] += m.parts.u[i] * col[i];
            }
        }
        offset += k;
    }
    let mut meat = vec![0.0; total * total];
    for c in 0..g {
        let row = &sums[c * total..(c + 1) * total];
        for a in 0..total {
            if row[a] == 0.0 {
                continue;
            }
            for b in 0..total {
                meat[a * total + b] += row[a] * row[b];
            }
        }
    }
    let mut bread = vec![0.0; total * total];
    let mut offset = 0;
    for m in models {
        let k = m.parts.k;
        for a in 0..k {
            for b in 0..k {
                bread[(offset + a) * total + offset + b] = m.parts.bread[a * k + b];
            }
        }
        offset += k;
    }
    let gf = g as f64;
    Ok(sandwich(&bread, total, total, &meat)
        .into_iter()
        .map(|v| v * gf / (gf - 1.0))
        .collect())
}
