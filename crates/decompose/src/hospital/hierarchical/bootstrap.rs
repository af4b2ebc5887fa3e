//! The hospital bootstrap of the hierarchical model (CMS's method for
//! risk-standardized rates; Ash et al. 2012, appendix): each replicate draws
//! hospitals with replacement, updates the GLMM's parameters, re-solves every
//! hospital's conditional mode on its own data at the new parameters, draws
//! its effects from their conditional (normal, Laplace) distribution, and
//! recomputes each hospital's RSR; the split uses the modes with the
//! replicate's hospital multiplicities as weights.
//!
//! The parameter update is one Newton step from the full-sample optimum (see
//! `healthgap_models::glmm` one_step), not a refit; the analysis's
//! `inference.note` says so. The hospital multiplicities are the shared
//! cluster bootstrap's (`ClusterBootstrap::multiplicities`, stream
//! `<id>/hierarchical`); the posterior draws have their own streams
//! (`<id>/hierarchical/posterior`), one per replicate, so the result does not
//! depend on the thread count.

use healthgap_models::bootstrap::{ClusterBootstrap, Inference, Interval, infer, stream_key};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::{Derived, Model};
use crate::inference::InferenceSpec;
use healthgap_models::glmm::GlmmFit;

/// The replicates' statistics: per replicate the split (between, within)
/// and every hospital's RSR.
pub(super) struct Draws {
    split: Vec<[f64; 2]>,
    rsr: Vec<Vec<f64>>,
}

impl Draws {
    /// Non-finite replicate values: of the split's parts, and of the RSRs.
    fn non_finite(&self) -> (usize, usize) {
        let split = self
            .split
            .iter()
            .flatten()
            .filter(|v| !v.is_finite())
            .count();
        let rsr = self.rsr.iter().flatten().filter(|v| !v.is_finite()).count();
        (split, rsr)
    }

    /// Percentile inference of the split's part `k` (0 between, 1 within).
    pub(super) fn infer_split(&self, k: usize, point: f64, level: f64) -> Inference {
        let v: Vec<f64> = self
            .split
            .iter()
            .map(|s| s[k])
            .filter(|v| v.is_finite())
            .collect();
        infer(point, &v, level, Interval::Percentile, None)
    }

    /// The percentile interval of hospital `c`'s RSR.
    pub(super) fn rsr_interval(&self, c: usize, point: f64, level: f64) -> Option<(f64, f64)> {
        let v: Vec<f64> = self
            .rsr
            .iter()
            .map(|r| r[c])
            .filter(|v| v.is_finite())
            .collect();
        let inf = infer(point, &v, level, Interval::Percentile, None);
        (inf.ci_low.is_finite() && inf.ci_high.is_finite()).then_some((inf.ci_low, inf.ci_high))
    }
}

/// Runs `replicates` hospital-bootstrap replicates (None when there are none,
/// or the fit is at a boundary and has no Hessian to update with).
pub(super) fn run(
    m: &Model<'_>,
    fit: &GlmmFit,
    replicates: usize,
    inference: &InferenceSpec,
    warnings: &mut Vec<String>,
) -> Option<Draws> {
    if replicates == 0 {
        return None;
    }
    fit.psi_covariance.as_ref()?;
    if fit.log_intercept_sd_se.is_none() {
        warnings.push(
            "hierarchical model: the hospital bootstrap holds the variance parameters at their estimates (the fit is \
             at or near a boundary, so they have no Hessian to update replicates with); the RSR intervals and the \
             split's SEs reflect the fixed effects' and the hospital effects' uncertainty only"
                .into(),
        );
    }
    let grouping = m.grouping();
    let scores = m.spec.group_scores(&m.design, grouping, m.slope, fit);
    let levels = m.level_of.len();
    let id = format!("{}/hierarchical", inference.analysis_id);
    let resampling = ClusterBootstrap::new(replicates, inference.seed, &id);
    let key = stream_key(inference.seed, &format!("{id}/posterior"));
    let out: Vec<Option<([f64; 2], Vec<f64>)>> = (0..replicates)
        .into_par_iter()
        .map(|r| {
            let mult = resampling.multiplicities(r, levels);
            let mut rng = ChaCha8Rng::seed_from_u64(key);
            rng.set_stream(r as u64);
            let at = m.spec.one_step(fit, &scores, &mult)?;
            let (modes, cov) = m.spec.modes_at(&m.design, grouping, m.slope, &at);
            let split = Derived::at(m, &at, &modes, Some(&mult));
            let draws: Vec<[f64; 2]> = modes
                .iter()
                .zip(&cov)
                .map(|(b, c)| draw(&mut rng, *b, *c))
                .collect();
            let posterior = Derived::at(m, &at, &draws, None);
            let rsr = posterior
                .per_hospital
                .iter()
                .map(|s| s.predicted[0] / s.expected[0] * m.overall)
                .collect();
            Some(([split.between, split.within], rsr))
        })
        .collect();
    let failed = out.iter().filter(|o| o.is_none()).count();
    if failed > 0 {
        warnings.push(format!(
            "hierarchical model: {failed} of {replicates} hospital-bootstrap replicates failed"
        ));
    }
    let (split, rsr) = out.into_iter().flatten().unzip();
    let draws = Draws { split, rsr };
    let (split_bad, rsr_bad) = draws.non_finite();
    if split_bad + rsr_bad > 0 {
        warnings.push(format!(
            "hierarchical model: {split_bad} replicate value(s) of the between/within split and \
             {rsr_bad} hospital RSR draw(s) were not finite (a replicate's rate overflowed) and \
             are left out of their intervals"
        ));
    }
    Some(draws)
}

/// b + L z with LL' the 2 × 2 conditional covariance [a, b; b, c] and z
/// standard normal.
fn draw(rng: &mut ChaCha8Rng, mean: [f64; 2], cov: [f64; 3]) -> [f64; 2] {
    let (z0, z1): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
    let l11 = cov[0].max(0.0).sqrt();
    let l21 = if l11 > 0.0 { cov[1] / l11 } else { 0.0 };
    let l22 = (cov[2] - l21 * l21).max(0.0).sqrt();
    [mean[0] + l11 * z0, mean[1] + l21 * z0 + l22 * z1]
}

#[cfg(test)]
mod tests {
    use super::Draws;

    /// Non-finite replicate values are counted, and an interval is built from
    /// the finite ones.
    #[test]
    fn non_finite_draws_are_counted_and_left_out() {
        let draws = Draws {
            split: vec![[0.1, 0.2], [f64::NAN, 0.3], [0.2, f64::INFINITY]],
            rsr: vec![vec![0.1, f64::NAN], vec![0.12, 0.2], vec![0.11, 0.3]],
        };
        assert_eq!(draws.non_finite(), (2, 1));
        let inf = draws.infer_split(0, 0.15, 0.95);
        assert!(inf.ci_low.is_finite() && inf.ci_high.is_finite());
    }
}
