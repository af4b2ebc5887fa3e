//! The weighting and doubly robust estimators of μ̄(S): the comparison
//! patients reweighted by the density ratios r_S of [`super::density_ratio`]
//! (weighting), or the g-computation means plus the density-ratio-weighted
//! residuals of the outcome model (doubly robust).

use super::{Estimator, Setup};

impl Setup<'_> {
    /// Weighting and doubly robust: replaces the g-computation means by
    /// Σ w·r_S·y / Σ w·r_S (weighting), or adds the weighted residuals of the
    /// outcome model Σ w·r_S·(y − m̂) / Σ w·r_S (doubly robust; r_∅ = 1).
    pub(super) fn weighted_means(
        &self,
        flat: &[f64],
        sw: &[f64],
        mult: Option<&[f64]>,
        mu: &mut [f64],
        ybar: f64,
    ) {
        let kk = self.k + 1;
        let nsub = 1usize << self.k;
        let (mut den, mut num_y, mut num_res) = (vec![0.0; nsub], vec![0.0; nsub], vec![0.0; nsub]);
        for (ci, &r) in self.comparison.iter().enumerate() {
            let w = self.weight(r, mult);
            let s = self.stratum[r] as usize;
            if w == 0.0 || sw[s] <= 0.0 {
                continue;
            }
            let eta: f64 = flat[r * kk..(r + 1) * kk].iter().sum();
            let fitted = self.link().map_or(eta, |l| l.cdf(eta));
            let y = self.y[r];
            for subset in 0..nsub {
                let ratio = if subset == 0 {
                    1.0
                } else {
                    self.ratio[subset][ci]
                };
                den[subset] += w * ratio;
                num_y[subset] += w * ratio * y;
                num_res[subset] += w * ratio * (y - fitted);
            }
        }
        for subset in 0..nsub {
            if den[subset] <= 0.0 {
                continue;
            }
            mu[subset] = match self.input.estimator {
                Estimator::Weighting if subset == 0 => ybar,
                Estimator::Weighting => num_y[subset] / den[subset],
                _ => mu[subset] + num_res[subset] / den[subset],
            };
        }
    }
}
