//! The estimators of [`super::flexible`] and their influence functions,
//! summed by cluster, for standard errors without refitting the learners.
//!
//! θ = (μ̂(S) for every subset S by bitmask, ȳ_c, R). With the cross-fitted
//! nuisances held fixed, each component is an average whose influence on
//! unit u (a cluster, or a row) is φ_u = Σ_{i∈u} φ_i:
//! - ȳ_c: (w_i/W_c)(y_i − ȳ_c) for comparison patients;
//! - R = Σ_i w_i ȳ_{r,s(i)}/W_c: (w_i/W_c)(ȳ_{r,s(i)} − R) for comparison
//!   patients and (W_{c,s}/W_c)(w_j/W_{r,s})(y_j − ȳ_{r,s}) for reference patients;
//! - the g-computation term: (w_i/W_c)(ν̂_i − μ̂_gc) for comparison patients,
//!   and for the reference patient j drawn as partner d of i,
//!   (w_i/W_c)(1/D)(m̂(x_i^{S,d}) − ν̂_i): the term of the reference
//!   distribution P(t | r, a) in the efficient influence function, estimated
//!   from the drawn pairs (it includes the draws' Monte Carlo variance);
//! - the augmentation (doubly robust): (w_i r̂_i/Σ w r̂)(y_i − m̂_i − c(S)),
//!   c(S) the weighted mean residual; weighting: (w_i r̂_i/Σ w r̂)(y_i − μ̂_w).
//!
//! For the doubly robust estimator this is its efficient influence function
//! (the nuisances' estimation error is second order under cross-fitting:
//! Chernozhukov et al. 2018, Theorem 5.1; van der Laan & Rose 2011); for
//! g-computation and weighting with a flexible learner it ignores the
//! nuisances' first-order error (declared as a warning).
//!
//! V(θ̂) = G/(G − 1) Σ_u φ_u φ_uᵀ (CR-type; G clusters, or n rows), and each
//! reported statistic f(θ̂) gets J V Jᵀ with J = ∂f/∂θ by central differences.

use super::Estimator;
use super::flexible::Flexible;
use super::shapley::{Statistics, statistics};

/// The estimates θ and, when asked, each unit's influence φ_u (units × dim).
pub(super) struct Theta {
    pub mu: Vec<f64>,
    pub ybar: f64,
    pub rstd: f64,
    /// Row-major units × (2^K + 2): μ̂(S) by bitmask, ȳ_c, R.
    pub phi: Vec<f64>,
}

impl Flexible<'_> {
    /// θ and (with `influence`) its influence functions summed by unit.
    pub(super) fn theta(&self, influence: bool) -> Result<Theta, String> {
        let nsub = 1usize << self.input.targets.len();
        let dim = nsub + 2;
        let d = self.input.draws;
        let lay = &self.layout;
        // Reference sums per stratum.
        let (mut sw, mut sy) = (vec![0.0; lay.strata], vec![0.0; lay.strata]);
        for (s, members) in lay.members.iter().enumerate() {
            for &r in members {
                sw[s] += self.w[r];
                sy[s] += self.w[r] * self.y[r];
            }
        }
        let used: Vec<usize> = (0..lay.comparison.len())
            .filter(|&ci| {
                let r = lay.comparison[ci];
                self.w[r] > 0.0 && sw[lay.stratum_raw[r] as usize] > 0.0
            })
            .collect();
        let mut wcs = vec![0.0; lay.strata];
        let (mut wc, mut yc, mut refm, mut m0) = (0.0, 0.0, 0.0, 0.0);
        for &ci in &used {
            let r = lay.comparison[ci];
            let s = lay.stratum_raw[r] as usize;
            wc += self.w[r];
            wcs[s] += self.w[r];
            yc += self.w[r] * self.y[r];
            refm += self.w[r] * sy[s] / sw[s];
            m0 += self.w[r] * self.m_obs[r];
        }
        if wc <= 0.0 {
            return Err("no comparison patient has reference patients in its stratum".into());
        }
        let (ybar, rstd) = (yc / wc, refm / wc);
        let nu = |subset: usize, ci: usize| -> f64 {
            self.m_int[subset][ci * d..(ci + 1) * d].iter().sum::<f64>() / d as f64
        };
        let estimator = self.input.estimator;
        let mut mu = vec![0.0; nsub];
        // Per subset: the g-computation mean, Σ w r̂, and the weighted mean of
        // y (weighting) or of the residual (doubly robust).
        let mut parts = vec![(0.0, 0.0, 0.0); nsub];
        mu[0] = if estimator == Estimator::GComputation {
            m0 / wc
        } else {
            ybar
        };
        for (subset, part) in parts.iter_mut().enumerate().skip(1) {
            let (mut gc, mut den, mut num) = (0.0, 0.0, 0.0);
            for &ci in &used {
                let r = lay.comparison[ci];
                gc += self.w[r] * nu(subset, ci);
                if estimator != Estimator::GComputation {
                    let wr = self.w[r] * self.ratio[subset][ci];
                    den += wr;
                    num += wr
                        * match estimator {
                            Estimator::Weighting => self.y[r],
                            _ => self.y[r] - self.m_obs[r],
                        };
                }
            }
            let (gc, c) = (gc / wc, if den > 0.0 { num / den } else { 0.0 });
            *part = (gc, den, c);
            mu[subset] = match estimator {
                Estimator::GComputation => gc,
                Estimator::Weighting => c,
                Estimator::DoublyRobust => gc + c,
            };
        }
        let mut theta = Theta {
            mu,
            ybar,
            rstd,
            phi: Vec::new(),
        };
        if !influence {
            return Ok(theta);
        }
        let mut phi = vec![0.0; self.units * dim];
        let mut add = |r: usize, k: usize, v: f64| phi[self.unit[r] as usize * dim + k] += v;
        for &ci in &used {
            let r = lay.comparison[ci];
            let s = lay.stratum_raw[r] as usize;
            let a = self.w[r] / wc;
            add(r, nsub, a * (self.y[r] - ybar));
            add(r, nsub + 1, a * (sy[s] / sw[s] - rstd));
            if estimator == Estimator::GComputation {
                add(r, 0, a * (self.m_obs[r] - theta.mu[0]));
            } else {
                add(r, 0, a * (self.y[r] - ybar));
            }
            for (subset, &(gc, den, c)) in parts.iter().enumerate().skip(1) {
                if estimator != Estimator::Weighting {
                    let nui = nu(subset, ci);
                    add(r, subset, a * (nui - gc));
                    for draw in 0..d {
                        let j = self.partner[ci * d + draw];
                        let f = self.m_int[subset][ci * d + draw];
                        add(j, subset, a / d as f64 * (f - nui));
                    }
                }
                if estimator != Estimator::GComputation && den > 0.0 {
                    let wr = self.w[r] * self.ratio[subset][ci] / den;
                    let resid = match estimator {
                        Estimator::Weighting => self.y[r] - c,
                        _ => self.y[r] - self.m_obs[r] - c,
                    };
                    add(r, subset, wr * resid);
                }
            }
        }
        // Reference patients' term of R.
        for (s, members) in lay.members.iter().enumerate() {
            if sw[s] <= 0.0 || wcs[s] <= 0.0 {
                continue;
            }
            for &j in members {
                let b = wcs[s] / wc * self.w[j] / sw[s];
                add(j, nsub + 1, b * (self.y[j] - sy[s] / sw[s]));
            }
        }
        theta.phi = phi;
        Ok(theta)
    }

    /// Every statistic (key order) and, with `influence`, its variance
    /// J V Jᵀ (module docs); NaN where the statistic is not finite.
    pub(super) fn values(
        &self,
        st: &Statistics<'_>,
        influence: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>), String> {
        let theta = self.theta(influence)?;
        let nsub = theta.mu.len();
        let dim = nsub + 2;
        let mut flat = theta.mu.clone();
        flat.extend([theta.ybar, theta.rstd]);
        let f = |t: &[f64]| statistics(st, &t[..nsub], t[nsub], t[nsub + 1]);
        let point = f(&flat);
        if !influence {
            return Ok((point, None));
        }
        if self.units < 2 {
            return Err(format!(
                "influence-function standard errors need at least 2 units, found {}",
                self.units
            ));
        }
        // V_θ = G/(G − 1) Σ_u φ_u φ_uᵀ.
        let mut v = vec![0.0; dim * dim];
        for p in theta.phi.chunks(dim) {
            for a in 0..dim {
                if p[a] == 0.0 {
                    continue;
                }
                for b in 0..dim {
                    v[a * dim + b] += p[a] * p[b];
                }
            }
        }
        let g = self.units as f64;
        v.iter_mut().for_each(|x| *x *= g / (g - 1.0));
        // J by central differences, one column per component of θ.
        let mut jac = vec![vec![0.0; dim]; point.len()];
        for c in 0..dim {
            let h = 1e-6 * flat[c].abs().max(1.0);
            let (mut up, mut down) = (flat.clone(), flat.clone());
            up[c] += h;
            down[c] -= h;
            let (fu, fd) = (f(&up), f(&down));
            for (row, (a, b)) in jac.iter_mut().zip(fu.iter().zip(&fd)) {
                row[c] = (a - b) / (2.0 * h);
            }
        }
        let variance = jac
            .iter()
            .map(|j| {
                let mut s = 0.0;
                for a in 0..dim {
                    for b in 0..dim {
                        s += j[a] * v[a * dim + b] * j[b];
                    }
                }
                s
            })
            .collect();
        Ok((point, Some(variance)))
    }
}
