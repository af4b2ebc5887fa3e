//! The density ratios of the weighting and doubly robust estimators, and
//! their covariate-balance diagnostics.
//!
//! For each non-empty subset S of targets, a logistic classifier separates
//! the intervened rows (each comparison patient with the S blocks of its D
//! reference partners, weight w/D — the rows g-computation averages over)
//! from the observed comparison rows (weight w). Both sets carry the same
//! total weight, so the classifier's odds at an observed row estimate
//! r_S = p_r(t_S | a) / p_c(t_S | a, ℓ), the density ratio of the intervened
//! to the observed covariates (probabilistic classification; Sugiyama,
//! Suzuki & Kanamori 2012, ch. 4).
//!
//! The classifier's log-odds must equal log p_r(t | a) − log p_c(t | a, ℓ).
//! The intervention breaks the dependence of T on ℓ, so this is not additive
//! in the covariates: with T | a, ℓ in an exponential family whose natural
//! parameter is linear in (a, ℓ), the log ratio is linear in t, a, ℓ and the
//! products t·a and t·ℓ. The classifier therefore has every covariate's main
//! effect (the absorbed one, hospital_id, as fixed effects) and the
//! interaction of every column of S with every column outside S (T×A and
//! T×ℓ; not with the absorbed hospital effects).
//!
//! Balance (Austin 2009): for every covariate column, the standardized
//! difference of the comparison patients' mean from the intervened
//! distribution's mean, (m_c − m_I)/√((s²_c + s²_I)/2), before and after
//! weighting the comparison patients by w·r_S (the standard deviations
//! before weighting).

use healthgap_models::{Design, Glm};

use super::Setup;
use crate::error::DecomposeError;
use crate::result::Balance;

/// A standardized difference above this (in absolute value) after weighting
/// is reported as imbalance (Austin 2009's common threshold).
const IMBALANCE: f64 = 0.1;

/// An interaction column enters the classifier only when at least this many
/// observed and this many intervened rows have it non-zero (rarer products
/// separate the classes and make the classifier's MLE infinite).
const MIN_SUPPORT: usize = 10;

/// The density ratios per subset (indexed by bitmask; empty for ∅) and
/// per comparison patient, with the balance rows of every subset.
pub(super) struct DensityRatios {
    pub ratio: Vec<Vec<f64>>,
    pub balance: Vec<Balance>,
}

/// The classifier's data for one subset.
struct Classifier {
    /// Columns over the observed rows (first `n_real`) then the intervened rows.
    columns: Vec<(String, Vec<f64>)>,
    /// How many of `columns` are covariates (the rest are interactions).
    covariates: usize,
    /// Interactions left out for lack of support (fewer than [`MIN_SUPPORT`]
    /// non-zero rows on a side).
    unsupported: Vec<String>,
    /// Labels (1 = intervened) and weights.
    labels: Vec<f64>,
    weights: Vec<f64>,
    /// Absorbed levels over the same rows, when there is an absorbed variable.
    levels: Option<Vec<i64>>,
}

impl Setup<'_> {
    /// Weighting and doubly robust: the density ratios r_S of every
    /// non-empty subset S of targets (module docs), with balance diagnostics.
    pub(super) fn density_ratios(
        &self,
        warnings: &mut Vec<String>,
    ) -> Result<DensityRatios, DecomposeError> {
        let (partner, sw, _) = self.partners(None);
        let nsub = 1usize << self.k;
        let used: Vec<usize> = (0..self.comparison.len())
            .filter(|&ci| {
                let r = self.comparison[ci];
                self.w[r] > 0.0 && sw[self.stratum[r] as usize] > 0.0
            })
            .collect();
        let n_real = used.len();
        let mut out = DensityRatios {
            ratio: vec![Vec::new(); nsub],
            balance: Vec::new(),
        };
        for subset in 1..nsub {
            let name = self.subset_name(subset);
            let data = self.classifier(subset, &used, &partner);
            let mut design = Design::from_columns("intervened", data.labels.clone(), {
                let mut cols = Vec::with_capacity(data.columns.len() + 1);
                if data.levels.is_none() {
                    cols.push(("(intercept)".to_string(), vec![1.0; data.labels.len()]));
                }
                cols.extend(data.columns.iter().cloned());
                cols
            })
            .map_err(DecomposeError::Model)?
            .with_weights(data.weights.clone());
            if let (Some(levels), Some(a)) = (&data.levels, &self.input.covariates.absorbed) {
                design = design.with_absorbed(&a.variable, levels);
            }
            let fit = Glm::logit()
                .fit(&design, None)
                .map_err(|error| DecomposeError::Fit {
                    model: format!("density-ratio model for the targets {name}"),
                    error,
                })?;
            for w in &fit.warnings {
                warnings.push(format!("density-ratio model for {name}: {w}"));
            }
            if !data.unsupported.is_empty() {
                warnings.push(format!(
                    "density-ratio model for {name}: {} interaction(s) with fewer than \
                     {MIN_SUPPORT} comparison patients on either side left out of the classifier \
                     ({})",
                    data.unsupported.len(),
                    data.unsupported.join(", ")
                ));
            }
            let p = fit.fitted();
            let mut ratio = vec![0.0; self.comparison.len()];
            for (k, &ci) in used.iter().enumerate() {
                ratio[ci] = p[k] / (1.0 - p[k]).max(1e-300);
            }
            let observed: Vec<f64> = used.iter().map(|&ci| ratio[ci]).collect();
            warnings.extend(effective_size_warning(
                &name,
                &data.weights[..n_real],
                &observed,
            ));
            let rows = balance(&name, &data, n_real, &observed);
            warnings.extend(imbalance_warning(&name, &rows));
            out.balance.extend(rows);
            out.ratio[subset] = ratio;
        }
        Ok(out)
    }

    /// The classifier's rows for `subset`: the observed comparison patients
    /// (weight w), then each patient's D intervened copies (weight w/D) with
    /// the subset's blocks from the partners; every non-constant covariate
    /// and the interactions of the subset's columns with the others.
    fn classifier(&self, subset: usize, used: &[usize], partner: &[usize]) -> Classifier {
        let d = self.input.draws;
        let cov = self.input.covariates;
        let n_real = used.len();
        let total = n_real * (1 + d);
        let in_s = |k: usize| subset & (1 << k) != 0;
        let source = |ci: usize, draw: usize, swap: bool| -> usize {
            if swap {
                partner[ci * d + draw]
            } else {
                self.comparison[ci]
            }
        };
        let mut columns: Vec<(String, Vec<f64>)> = Vec::new();
        let mut swapped: Vec<bool> = Vec::new();
        for (j, c) in cov.columns.iter().enumerate() {
            let b = self.block_of[j];
            let swap = b > 0 && in_s(b - 1);
            let mut v = Vec::with_capacity(total);
            v.extend(
                used.iter()
                    .map(|&ci| c.values[self.rows[self.comparison[ci]]]),
            );
            for &ci in used {
                for draw in 0..d {
                    v.push(c.values[self.rows[source(ci, draw, swap)]]);
                }
            }
            if v.iter().any(|x| *x != v[0]) {
                columns.push((c.name.clone(), v));
                swapped.push(swap);
            }
        }
        let covariates = columns.len();
        let mut unsupported = Vec::new();
        for t in (0..covariates).filter(|&t| swapped[t]) {
            for o in (0..covariates).filter(|&o| !swapped[o]) {
                let v: Vec<f64> = columns[t]
                    .1
                    .iter()
                    .zip(&columns[o].1)
                    .map(|(a, b)| a * b)
                    .collect();
                let name = format!("{}×{}", columns[t].0, columns[o].0);
                let support = |rows: &[f64]| rows.iter().filter(|x| **x != 0.0).count();
                if support(&v[..n_real]) < MIN_SUPPORT || support(&v[n_real..]) < MIN_SUPPORT {
                    unsupported.push(name);
                } else if v.iter().any(|x| *x != v[0]) {
                    columns.push((name, v));
                }
            }
        }
        let labels: Vec<f64> = (0..total)
            .map(|i| f64::from(u8::from(i >= n_real)))
            .collect();
        let mut weights: Vec<f64> = used.iter().map(|&ci| self.w[self.comparison[ci]]).collect();
        for &ci in used {
            let w = self.w[self.comparison[ci]] / d as f64;
            weights.extend(std::iter::repeat_n(w, d));
        }
        let levels = cov.absorbed.as_ref().map(|_| {
            let swap = self
                .input
                .targets
                .iter()
                .position(|t| t.absorbed)
                .is_some_and(in_s);
            let mut levels: Vec<i64> = used
                .iter()
                .map(|&ci| i64::from(self.level[self.comparison[ci]]))
                .collect();
            for &ci in used {
                for draw in 0..d {
                    levels.push(i64::from(self.level[source(ci, draw, swap)]));
                }
            }
            levels
        });
        Classifier {
            columns,
            covariates,
            unsupported,
            labels,
            weights,
            levels,
        }
    }
}

/// Weighted mean and variance.
fn moments(values: &[f64], weights: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let sw: f64 = weights.clone().sum();
    let mean = values
        .iter()
        .zip(weights.clone())
        .map(|(v, w)| v * w)
        .sum::<f64>()
        / sw;
    let var = values
        .iter()
        .zip(weights)
        .map(|(v, w)| w * (v - mean).powi(2))
        .sum::<f64>()
        / sw;
    (mean, var)
}

/// The standardized differences of every covariate column (module docs).
fn balance(name: &str, data: &Classifier, n_real: usize, ratio: &[f64]) -> Vec<Balance> {
    let w = &data.weights;
    data.columns[..data.covariates]
        .iter()
        .map(|(column, v)| {
            let (m_c, v_c) = moments(&v[..n_real], w[..n_real].iter().copied());
            let (m_i, v_i) = moments(&v[n_real..], w[n_real..].iter().copied());
            let (m_w, _) = moments(
                &v[..n_real],
                w[..n_real].iter().zip(ratio).map(|(w, r)| w * r),
            );
            let sd = ((v_c + v_i) / 2.0).sqrt();
            let smd = |m: f64| if sd > 0.0 { (m - m_i) / sd } else { 0.0 };
            Balance {
                targets: name.to_string(),
                column: column.clone(),
                smd_before: smd(m_c),
                smd_after: smd(m_w),
            }
        })
        .collect()
}

/// A warning when a covariate stays imbalanced after weighting.
pub(super) fn imbalance_warning(name: &str, rows: &[Balance]) -> Option<String> {
    let off: Vec<&Balance> = rows
        .iter()
        .filter(|b| b.smd_after.abs() > IMBALANCE)
        .collect();
    let worst = off
        .iter()
        .max_by(|a, b| a.smd_after.abs().total_cmp(&b.smd_after.abs()))?;
    Some(format!(
        "density-ratio weights for {name}: {} covariate(s) stay imbalanced after weighting \
         (|standardized difference| > {IMBALANCE}; largest {:.2} for {}): the weighting \
         estimate leans on a classifier that does not reproduce the intervened distribution",
        off.len(),
        worst.smd_after,
        worst.column
    ))
}

/// Kish's effective sample size of the weights w·r, with a warning below 20%.
fn effective_size_warning(name: &str, w: &[f64], ratio: &[f64]) -> Option<String> {
    let (mut s1, mut s2) = (0.0, 0.0);
    for (w, r) in w.iter().zip(ratio) {
        s1 += w * r;
        s2 += (w * r).powi(2);
    }
    let n = w.len() as f64;
    let ess = s1 * s1 / s2.max(1e-300);
    (ess < 0.2 * n).then(|| {
        format!(
            "density-ratio weights for {name}: effective sample size {ess:.0} of {n} comparison \
             patients ({:.1}%); extreme weights make the weighting estimate unstable \
             (g-computation or the doubly robust estimator lean on it less)",
            100.0 * ess / n
        )
    })
}
