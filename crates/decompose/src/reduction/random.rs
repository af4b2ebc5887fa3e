//! Shrunken hospital effects for the outcome model (`hospital_effects =
//! "random"`): the outcome model becomes a GLMM with a random hospital
//! intercept, η_i = x_i'β + α_h(i), α_h ~ N(0, σ_u²) (logit for binary
//! outcomes, a linear mixed model by ML otherwise; `healthgap_models::glmm`).
//!
//! The hospital effects the care-site target moves patients between are the
//! conditional modes (the empirical-Bayes effects, Skrondal & Rabe-Hesketh
//! 2004): given β and σ_u, α_h maximizes
//! Σ_{i∈h} w_i ℓ(y_i; x_i'β + α) − α²/(2σ_u²), which is finite for a hospital
//! without events and shrinks small hospitals towards the mean. For the
//! linear model the solution is closed form,
//! α_h = Σ w_i (y_i − x_i'β) / (Σ w_i + σ²/σ_u²); for the logit it is found by
//! Newton. A cluster-bootstrap replicate refits the GLMM on the replicate's
//! weights (weights × cluster multiplicities) to convergence, warm-started
//! at the full-sample optimum, and re-solves the modes at its (β*, σ_u*).

use healthgap_models::{Design, Glmm, GlmmFamily, GlmmFit, GlmmStart, Grouping, ModelSummary};

use super::ReductionInput;
use crate::error::DecomposeError;

/// How the outcome model treats the hospital (care-site) effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HospitalEffects {
    /// Absorbed fixed effects (the MLE per hospital; ±∞ without events or
    /// without non-events).
    #[default]
    Fixed,
    /// A random intercept: the conditional modes of a GLMM.
    Random,
}

/// The prior of the hospital effects: α_h ~ N(0, sd²), and for the linear
/// model the residual SD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Prior {
    pub sd: f64,
    pub residual_sd: Option<f64>,
    /// γ, the coefficient of the hospital's comparison-group share.
    pub share_coef: f64,
}

/// The GLMM outcome model and what its replicates need.
pub(super) struct RandomHospitals {
    spec: Glmm,
    /// The outcome design over the pair rows (group, intercept, columns).
    design: Design,
    /// Hospital level of each pair row.
    codes: Vec<u32>,
    levels: usize,
    name: String,
    /// The full-sample optimum (the replicates' warm start).
    pub start: GlmmStart,
    /// The full-sample prior.
    pub prior: Prior,
    /// Each hospital's share of comparison patients (the design's last column).
    pub share: Vec<f64>,
    /// Whether each cluster-bootstrap draw of a hospital is a hospital of
    /// its own (every hospital lies in one cluster, e.g. clusters are the
    /// hospitals): the conditional modes then use the rows' base weights.
    pub copies: bool,
}

impl RandomHospitals {
    /// The error of `hospital_effects = "random"` without a hospital variable.
    pub(super) fn without_hospital() -> DecomposeError {
        DecomposeError::Statistic(
            "hospital_effects = \"random\" needs a hospital variable among the covariates (a \
             categorical variable with many levels, such as hospital_id, in a [factors] block); \
             without one there are no hospital effects to model"
                .into(),
        )
    }

    /// Fits the GLMM on the pair rows' design (which must carry an intercept
    /// and no absorbed effects): the fixed effects, the hospital prior, the
    /// model summary and the GLMM's warnings.
    pub(super) fn fit(
        input: &ReductionInput<'_>,
        design: Design,
        rows: &[usize],
        share: Vec<f64>,
        level: f64,
        warnings: &mut Vec<String>,
    ) -> Result<(RandomHospitals, Vec<f64>, ModelSummary), DecomposeError> {
        let Some(a) = input.covariates.absorbed.as_ref() else {
            return Err(RandomHospitals::without_hospital());
        };
        let family = if input.sample.binary {
            GlmmFamily::Logit
        } else {
            GlmmFamily::Identity
        };
        let spec = Glmm::new(family);
        let codes: Vec<u32> = rows.iter().map(|&i| a.codes[i]).collect();
        let grouping = Grouping {
            name: &a.variable,
            codes: &codes,
            levels: a.levels,
        };
        let fit = spec
            .fit(&design, grouping, None, None)
            .map_err(|error| DecomposeError::Fit {
                model: format!(
                    "outcome model (hierarchical {}, random intercept by {})",
                    family.name(),
                    a.variable
                ),
                error,
            })?;
        warnings.extend(
            fit.warnings
                .iter()
                .map(|w| format!("outcome model (random hospital effects): {w}")),
        );
        if fit.boundary {
            warnings.push(format!(
                "outcome model (random hospital effects): with σ_u at 0 every hospital's effect is \
                 the hospital-share term alone (γ·share_h, γ = {:.4}): the care-site target \
                 moves patients between hospitals that differ only by their share of {} patients",
                fit.coef.last().copied().unwrap_or(0.0),
                input.sample.labels[1]
            ));
        }
        if input.sample.cluster.is_none() {
            warnings.push(
                "random hospital effects without [design] cluster: the row bootstrap resamples \
                 patients, not hospitals, and each replicate fits the hierarchical model from \
                 scratch (slow); set [design] cluster to the hospital for the hospital bootstrap"
                    .into(),
            );
        }
        let summary = fit.summary(
            &format!(
                "outcome model (both groups), hierarchical {}, σ_u = {:.4}",
                family.name(),
                fit.intercept_sd
            ),
            &a.variable,
            level,
        );
        let random = RandomHospitals {
            spec: spec.without_standard_errors(),
            design,
            codes,
            levels: a.levels,
            name: a.variable.clone(),
            prior: prior_of(&fit),
            share,
            start: fit.start.clone(),
            copies: input.sample.cluster.is_some_and(|c| {
                let mut cluster_of = vec![u32::MAX; a.levels];
                rows.iter().all(|&i| {
                    let h = a.codes[i] as usize;
                    if cluster_of[h] == u32::MAX {
                        cluster_of[h] = c.codes[i];
                    }
                    cluster_of[h] == c.codes[i]
                })
            }),
        };
        Ok((random, fit.coef, summary))
    }

    /// A cluster-bootstrap replicate's fixed effects and prior: the GLMM
    /// refitted to convergence from the full-sample optimum on the
    /// replicate's rows. With [`RandomHospitals::copies`], a hospital drawn
    /// m times enters as m hospitals (the replicate written out; its rows keep
    /// their base weights `w`); otherwise its rows' weights are multiplied by
    /// their cluster's multiplicity. `cluster_of` is each pair row's cluster.
    pub(super) fn refitted(
        &self,
        w: &[f64],
        mult: &[f64],
        cluster_of: &[u32],
    ) -> Result<(Vec<f64>, Prior), String> {
        let m = |r: usize| mult[cluster_of[r] as usize];
        let (rows, codes, weights, levels, u) = if self.copies {
            self.copied_rows(w, &m)
        } else {
            let rows: Vec<usize> = (0..w.len()).filter(|&r| w[r] * m(r) > 0.0).collect();
            let codes = rows.iter().map(|&r| self.codes[r]).collect();
            let weights = rows.iter().map(|&r| w[r] * m(r)).collect();
            (rows, codes, weights, self.levels, self.start.u.clone())
        };
        let design = self.design.take_rows(&rows).with_weights(weights);
        let grouping = Grouping {
            name: &self.name,
            codes: &codes,
            levels,
        };
        let start = GlmmStart {
            u,
            ..self.start.clone()
        };
        let fit = self
            .spec
            .fit(&design, grouping, None, Some(&start))
            .map_err(|e| format!("the hierarchical outcome model failed in the replicate: {e}"))?;
        if !fit.converged {
            return Err(format!(
                "the hierarchical outcome model did not converge in the replicate ({} evaluations, \
                 gradient {:.2e})",
                fit.evaluations, fit.gradient
            ));
        }
        Ok((fit.coef.clone(), prior_of(&fit)))
    }

    /// The replicate written out: every row of a hospital drawn m times, m
    /// times, the k-th copy in a hospital of its own; with the group codes,
    /// weights, number of groups and the warm-start modes of the copies.
    #[allow(clippy::type_complexity)]
    fn copied_rows(
        &self,
        w: &[f64],
        m: &dyn Fn(usize) -> f64,
    ) -> (Vec<usize>, Vec<u32>, Vec<f64>, usize, Vec<f64>) {
        let mut times = vec![0usize; self.levels];
        for (r, &h) in self.codes.iter().enumerate() {
            times[h as usize] = m(r) as usize;
        }
        let mut first = vec![0u32; self.levels];
        let mut u = Vec::new();
        for h in 0..self.levels {
            first[h] = (u.len()) as u32;
            u.extend(std::iter::repeat_n(self.start.u[h], times[h]));
        }
        let (mut rows, mut codes, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (r, &h) in self.codes.iter().enumerate() {
            for k in 0..times[h as usize] {
                rows.push(r);
                codes.push(first[h as usize] + k as u32);
                weights.push(w[r]);
            }
        }
        let levels = u.len();
        (rows, codes, weights, levels, u)
    }
}

fn prior_of(fit: &GlmmFit) -> Prior {
    Prior {
        sd: fit.intercept_sd,
        residual_sd: fit.residual_sd,
        share_coef: fit.coef.last().copied().unwrap_or(0.0),
    }
}

/// The conditional modes of the hospital effects given the rows' linear
/// predictors without them (`xb`), their weights `w` and outcomes `y`, and
/// the prior (see the module docs); `level` is each row's hospital and the
/// number of hospitals, `cdf` the inverse link of a binary outcome, `start`
/// the warm start. A hospital without rows gets the prior mean 0.
pub(super) fn conditional_modes(
    prior: Prior,
    (level, levels): (&[u32], usize),
    xb: &[f64],
    w: &[f64],
    y: &[f64],
    cdf: Option<&dyn Fn(f64) -> f64>,
    start: &[f64],
) -> Vec<f64> {
    let precision = 1.0 / (prior.sd * prior.sd).max(1e-300);
    let Some(cdf) = cdf else {
        let s2 = prior.residual_sd.unwrap_or(1.0).powi(2);
        let (mut sw, mut sr) = (vec![0.0; levels], vec![0.0; levels]);
        for (r, &l) in level.iter().enumerate() {
            sw[l as usize] += w[r];
            sr[l as usize] += w[r] * (y[r] - xb[r]);
        }
        return (0..levels)
            .map(|l| sr[l] / (sw[l] + s2 * precision))
            .collect();
    };
    let mut alpha: Vec<f64> = (0..levels)
        .map(|l| {
            start
                .get(l)
                .copied()
                .filter(|a| a.is_finite())
                .unwrap_or(0.0)
        })
        .collect();
    let mut active = vec![true; levels];
    for _ in 0..100 {
        if !active.iter().any(|a| *a) {
            break;
        }
        let mut g: Vec<f64> = (0..levels).map(|l| -alpha[l] * precision).collect();
        let mut h = vec![precision; levels];
        for (r, &l) in level.iter().enumerate() {
            let l = l as usize;
            if !active[l] || w[r] == 0.0 {
                continue;
            }
            let p = cdf(alpha[l] + xb[r]);
            g[l] += w[r] * (y[r] - p);
            h[l] += w[r] * p * (1.0 - p);
        }
        for l in 0..levels {
            if active[l] {
                // The penalized log likelihood is concave: Newton with the
                // step capped (a far start cannot overshoot into overflow).
                let step = (g[l] / h[l]).clamp(-5.0, 5.0);
                alpha[l] += step;
                if step.abs() < 1e-10 {
                    active[l] = false;
                }
            }
        }
    }
    alpha
}
