//! Binary-outcome models: logit and probit by Newton–Raphson with step-halving,
//! optionally with absorbed fixed effects (IRLS with the working response and
//! regressors demeaned at each iteration, as fixest's `feglm`). With at most
//! one FE set the demeaned system comes from per-level sums, and each
//! iteration is one fused pass over the design (`newton_pass`); several sets
//! use alternating projections.
//!
//! Log-likelihood ℓ(b) = Σ w_i [y_i log F(η_i) + (1 − y_i) log(1 − F(η_i))],
//! η = Xb; F = Λ (logit) or Φ (probit). Newton uses the observed Hessian, so
//! the iid variance is its inverse (as statsmodels' `Logit`/`Probit`).

use statrs::distribution::{Continuous, ContinuousCDF, Normal};

use crate::design::{Design, FixedEffect};
use crate::error::ModelError;
use crate::fe::{Demeaner, demean_columns, non_singletons};
use crate::newton_pass::{Rows, System};

/// Rows per parallel block of the linear predictor.
const BLOCK: usize = 65_536;
use crate::linalg::{COLLINEARITY_TOL, gram, ranked_inverse};

/// The link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Link {
    /// Logistic.
    Logit,
    /// Standard normal.
    Probit,
}

impl Link {
    /// F(η).
    pub fn cdf(self, eta: f64) -> f64 {
        match self {
            Link::Logit => 1.0 / (1.0 + (-eta).exp()),
            Link::Probit => normal().cdf(eta),
        }
    }

    /// f(η) = F'(η).
    pub fn pdf(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                let p = self.cdf(eta);
                p * (1.0 - p)
            }
            Link::Probit => normal().pdf(eta),
        }
    }

    /// Name.
    pub fn name(self) -> &'static str {
        match self {
            Link::Logit => "logit",
            Link::Probit => "probit",
        }
    }

    /// Per-row log-likelihood contribution, score factor and observed-Hessian
    /// weight: ℓ_i, ∂ℓ_i/∂η, −∂²ℓ_i/∂η².
    pub(crate) fn row(self, y: f64, eta: f64) -> (f64, f64, f64) {
        match self {
            Link::Logit => {
                // One exponential, e = exp(−|η|), gives both F(η) and the
                // log-likelihood in a numerically safe form:
                // log F(η) = −(max(−η, 0) + log(1 + e)),
                // log(1 − F(η)) = −(max(η, 0) + log(1 + e)).
                let e = (-eta.abs()).exp();
                let p = if eta >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                };
                let log1pe = e.ln_1p();
                let ll = if y > 0.5 {
                    -((-eta).max(0.0) + log1pe)
                } else {
                    -(eta.max(0.0) + log1pe)
                };
                (ll, y - p, p * (1.0 - p))
            }
            Link::Probit => {
                let q = 2.0 * y - 1.0;
                let z = q * eta;
                let n = normal();
                let cdf = n.cdf(z).max(f64::MIN_POSITIVE);
                let ll = if z < -30.0 {
                    // log Φ(z) ≈ log φ(z) − log(−z) for very negative z
                    n.ln_pdf(z) - (-z).ln()
                } else {
                    cdf.ln()
                };
                // λ = φ(z)/Φ(z) (inverse Mills ratio), computed stably.
                let lambda = if z < -30.0 { -z } else { n.pdf(z) / cdf };
                let score = q * lambda;
                let hess = lambda * (lambda + z);
                (ll, score, hess)
            }
        }
    }
}

fn normal() -> Normal {
    // Normal::new(0, 1) cannot fail.
    Normal::standard()
}

/// Fitting options.
#[derive(Debug, Clone, Copy)]
pub struct Glm {
    link: Link,
    tol: f64,
    max_iter: usize,
}

/// A fitted binary model.
#[derive(Debug, Clone)]
pub struct GlmFit {
    /// Link.
    pub link: Link,
    /// The design fitted (rows and columns after drops; X not demeaned).
    pub work: Design,
    /// Names.
    pub names: Vec<String>,
    /// Coefficients.
    pub coef: Vec<f64>,
    /// Inverse observed information (k × k row-major).
    pub bread: Vec<f64>,
    /// Regressors as used in the scores (demeaned under FE), column-major n × k.
    pub xd: Vec<f64>,
    /// Score factors w_i ∂ℓ_i/∂η_i: the score of row i is score_weights[i] · xd[i, ·].
    pub score_weights: Vec<f64>,
    /// Linear predictor including absorbed FE.
    pub eta: Vec<f64>,
    /// Log-likelihood at the estimate.
    pub loglik: f64,
    /// Newton iterations.
    pub iterations: usize,
    /// Whether the convergence criterion was met.
    pub converged: bool,
    /// Max |score| at the end.
    pub max_score: f64,
    /// Columns dropped as collinear.
    pub dropped: Vec<String>,
    /// FE levels dropped because their outcome is all 0 or all 1: (set, levels, rows).
    pub dropped_fe: Vec<(String, usize, usize)>,
    /// Warnings (e.g. near-separation).
    pub warnings: Vec<String>,
}

impl Glm {
    /// Logit.
    pub fn logit() -> Glm {
        Glm {
            link: Link::Logit,
            tol: 1e-10,
            max_iter: 100,
        }
    }

    /// Probit.
    pub fn probit() -> Glm {
        Glm {
            link: Link::Probit,
            ..Glm::logit()
        }
    }

    /// Convergence tolerance on the Newton decrement (relative).
    pub fn tolerance(mut self, tol: f64) -> Glm {
        self.tol = tol;
        self
    }

    /// Fits the model; `start` warm-starts the coefficients (e.g. for bootstrap
    /// replicates).
    pub fn fit(&self, design: &Design, start: Option<&[f64]>) -> Result<GlmFit, ModelError> {
        design.validate()?;
        check_binary(design)?;
        // FE: drop levels whose outcome is constant (they are perfectly predicted),
        // and singletons.
        let mut dropped_fe = Vec::new();
        let mut design = design.clone();
        if !design.absorb.is_empty() {
            loop {
                let mut keep = non_singletons(&design.absorb);
                let mut changed = keep.iter().any(|k| !k);
                for fe in &design.absorb {
                    let mut sum = vec![0.0; fe.levels];
                    let mut cnt = vec![0.0; fe.levels];
                    for i in 0..design.nobs() {
                        if keep[i] {
                            sum[fe.codes[i] as usize] += design.y[i];
                            cnt[fe.codes[i] as usize] += 1.0;
                        }
                    }
                    let bad: Vec<bool> = (0..fe.levels)
                        .map(|l| cnt[l] > 0.0 && (sum[l] == 0.0 || sum[l] == cnt[l]))
                        .collect();
                    let n_bad = bad.iter().filter(|b| **b).count();
                    if n_bad > 0 {
                        let mut rows = 0;
                        for i in 0..design.nobs() {
                            if keep[i] && bad[fe.codes[i] as usize] {
                                keep[i] = false;
                                rows += 1;
                            }
                        }
                        dropped_fe.push((fe.name.clone(), n_bad, rows));
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
                design = design.select_rows(&keep);
                if design.nobs() == 0 {
                    return Err(ModelError::Empty {
                        context: Some("every fixed-effect level has a constant outcome".into()),
                    });
                }
            }
        } else {
            check_separation(&design)?;
        }
        self.newton(design, start, dropped_fe)
    }

    /// Newton–Raphson with step-halving on the design left after the FE drops:
    /// collinearity check, start values, then Newton steps until convergence
    /// (the fused row pass for at most one FE set, alternating projections
    /// for several).
    fn newton(
        &self,
        design: Design,
        start: Option<&[f64]>,
        dropped_fe: Vec<(String, usize, usize)>,
    ) -> Result<GlmFit, ModelError> {
        let n = design.nobs();
        let p = design.ncols();
        let x: &[f64] = design.x.as_slice_memory_order().unwrap_or(&[]);
        let y: Vec<f64> = design.y.to_vec();
        let w: Vec<f64> = (0..n).map(|i| design.weight(i)).collect();
        let (kept, dropped) = kept_columns(&design, x, &w)?;
        let k = kept.len();
        // The kept columns: X itself when nothing was dropped (no copy).
        let xk: std::borrow::Cow<'_, [f64]> = if kept.len() == p {
            std::borrow::Cow::Borrowed(x)
        } else {
            std::borrow::Cow::Owned(
                kept.iter()
                    .flat_map(|&j| x[j * n..(j + 1) * n].iter().copied())
                    .collect(),
            )
        };
        let names: Vec<String> = kept.iter().map(|&j| design.names[j].clone()).collect();
        let b: Vec<f64> = match start {
            Some(s) if s.len() == k => s.to_vec(),
            _ => vec![0.0; k],
        };
        let obj = Objective {
            link: self.link,
            xk: &xk,
            y: &y,
            w: &w,
            n,
            k,
        };
        let end = if design.absorb.len() > 1 {
            self.newton_projections(&obj, &design.absorb, b, &names)?
        } else {
            self.newton_fused(&obj, design.absorb.first(), b, &names)?
        };
        let max_score = end.scores.max_score;
        let (warnings, converged) = self.separation_warnings(&end, &w, &names);
        if !converged {
            return Err(ModelError::NotConverged {
                iterations: end.iterations,
                max_score,
            });
        }
        Ok(GlmFit {
            link: self.link,
            work: design,
            names,
            coef: end.b,
            bread: end.scores.bread,
            xd: end.scores.xd,
            score_weights: end.scores.score_weights,
            eta: end.eta,
            loglik: end.ll,
            iterations: end.iterations,
            converged,
            max_score,
            dropped,
            dropped_fe,
            warnings,
        })
    }

    /// The Newton iterations with at most one absorbed FE set, on the fused
    /// row pass (`newton_pass`): α is one value per level, and the pass that
    /// evaluates an accepted iterate also yields its Newton system, so each
    /// iteration reads the design once.
    fn newton_fused(
        &self,
        obj: &Objective<'_>,
        fe: Option<&FixedEffect>,
        b: Vec<f64>,
        names: &[String],
    ) -> Result<Ending, ModelError> {
        let k = obj.k;
        let rows = Rows {
            link: self.link,
            x: obj.xk,
            y: obj.y,
            w: obj.w,
            fe: fe.map(|f| (&f.codes[..], f.levels)),
            n: obj.n,
            k,
        };
        let alpha = fe.map_or_else(Vec::new, |f| obj.start_alpha(f, &b));
        let mut eta = vec![0.0; obj.n];
        let (ll, system) = rows.pass(&b, &alpha, &mut eta, true);
        let mut at = FusedIterate {
            b,
            alpha,
            eta,
            ll,
            system: system.unwrap_or_else(|| unreachable!("a system pass returns the system")),
        };
        let mut spare = vec![0.0; obj.n];
        let mut converged = false;
        let mut iterations = 0;
        let mut last_change = f64::INFINITY;
        let mut bread = vec![0.0; k * k];
        for it in 1..=self.max_iter {
            iterations = it;
            let ranked = ranked_inverse(&at.system.hess, k, 1e-14);
            if ranked.kept.len() < k {
                return Err(ModelError::Singular {
                    rank: ranked.kept.len(),
                    ncols: k,
                    columns: ranked.dropped.iter().map(|&j| names[j].clone()).collect(),
                });
            }
            bread = ranked.inverse;
            let b_new = crate::linalg::mat_vec(&bread, k, k, &at.system.rhs);
            let target_alpha = at.system.level_alpha(&b_new);
            let Some(next) = rows.step_halving(&at, &b_new, &target_alpha, &mut spare) else {
                break;
            };
            let change = (next.ll - at.ll).abs() / (at.ll.abs() + 0.1);
            last_change = change;
            let max_step = next
                .b
                .iter()
                .zip(&at.b)
                .fold(0.0f64, |m, (a, c)| m.max((a - c).abs()));
            // The accepted η is in `spare`; the old η's buffer becomes the spare.
            std::mem::swap(&mut at.eta, &mut spare);
            (at.b, at.alpha, at.ll, at.system) = (next.b, next.alpha, next.ll, next.system);
            if change < self.tol
                && max_step < 1e-8 * (1.0 + at.b.iter().fold(0.0f64, |m, v| m.max(v.abs())))
            {
                converged = true;
                break;
            }
        }
        // The bread at the estimate (the last iteration's if singular there).
        let ranked = ranked_inverse(&at.system.hess, k, 1e-14);
        if ranked.kept.len() == k {
            bread = ranked.inverse;
        }
        let (score_weights, xd, max_score) = rows.scores(&at.eta, &at.system);
        Ok(Ending {
            b: at.b,
            eta: at.eta,
            ll: at.ll,
            iterations,
            converged,
            last_change,
            scores: FinalScores {
                score_weights,
                xd,
                bread,
                max_score,
            },
        })
    }

    /// The Newton iterations with several absorbed FE sets: the working
    /// response and regressors demeaned by alternating projections at each
    /// iteration, α carried per row.
    fn newton_projections(
        &self,
        obj: &Objective<'_>,
        absorb: &[FixedEffect],
        b: Vec<f64>,
        names: &[String],
    ) -> Result<Ending, ModelError> {
        let k = obj.k;
        let start = obj.start_alpha(&absorb[0], &b);
        let alpha: Vec<f64> = absorb[0].codes.iter().map(|&c| start[c as usize]).collect();
        let eta = obj.eta(&b, &alpha);
        let ll = obj.loglik(&eta);
        let mut at = Iterate { b, alpha, eta, ll };
        let mut converged = false;
        let mut iterations = 0;
        let mut last_change = f64::INFINITY;
        let mut bread = vec![0.0; k * k];
        for it in 1..=self.max_iter {
            iterations = it;
            let (h, z) = obj.working(&at.eta);
            let (hess, rhs, zd, xd) = obj.projected_system(absorb, &h, &z)?;
            let ranked = ranked_inverse(&hess, k, 1e-14);
            if ranked.kept.len() < k {
                return Err(ModelError::Singular {
                    rank: ranked.kept.len(),
                    ncols: k,
                    columns: ranked.dropped.iter().map(|&j| names[j].clone()).collect(),
                });
            }
            bread = ranked.inverse;
            let b_new = crate::linalg::mat_vec(&bread, k, k, &rhs);
            let target_alpha = obj.target_alpha(&zd, &xd, &z, &b_new);
            let Some(next) = obj.step_halving(&at, &b_new, &target_alpha) else {
                break;
            };
            let change = (next.ll - at.ll).abs() / (at.ll.abs() + 0.1);
            last_change = change;
            let max_step = next
                .b
                .iter()
                .zip(&at.b)
                .fold(0.0f64, |m, (a, c)| m.max((a - c).abs()));
            at = next;
            if change < self.tol
                && max_step < 1e-8 * (1.0 + at.b.iter().fold(0.0f64, |m, v| m.max(v.abs())))
            {
                converged = true;
                break;
            }
        }
        let scores = obj.final_scores(absorb, &at.eta, bread)?;
        Ok(Ending {
            b: at.b,
            eta: at.eta,
            ll: at.ll,
            iterations,
            converged,
            last_change,
            scores,
        })
    }

    /// The warnings on the fitted probabilities, and whether the fit is accepted
    /// as converged: a fit that did not meet the criterion is accepted, with a
    /// warning, under quasi-complete separation.
    fn separation_warnings(&self, at: &Ending, w: &[f64], names: &[String]) -> (Vec<String>, bool) {
        let (last_change, max_score) = (at.last_change, at.scores.max_score);
        let mut converged = at.converged;
        let mut warnings = Vec::new();
        let extreme = at.eta.iter().filter(|e| e.abs() > 30.0).count();
        if extreme > 0 {
            warnings.push(format!(
                "{extreme} observations have fitted probabilities within 1e-13 of 0 or 1: possible quasi-separation"
            ));
        }
        // Quasi-complete separation: the log-likelihood and the scores have
        // settled while some coefficients drift towards ±∞ (e.g. a hospital
        // dummy where every patient has the same outcome). As R's glm and
        // statsmodels do, accept the fit, whose fitted probabilities have
        // converged, and warn.
        let total_weight: f64 = w.iter().sum();
        if !converged && last_change < self.tol && max_score < 1e-8 * total_weight.max(1.0) {
            converged = true;
            let drifting: Vec<&str> = names
                .iter()
                .zip(&at.b)
                .filter(|(_, v)| v.abs() > 15.0)
                .map(|(n, _)| n.as_str())
                .collect();
            warnings.push(format!(
                "quasi-separation: the log-likelihood converged but {} diverge (every patient in \
                 those cells has the same outcome); fitted probabilities are at 0 or 1 there and \
                 those coefficients and their SEs are not meaningful",
                if drifting.is_empty() {
                    "some coefficients".to_string()
                } else {
                    format!("the coefficients of {}", drifting.join(", "))
                }
            ));
        }
        (warnings, converged)
    }
}

/// The columns kept after the collinearity check on the (demeaned) regressors,
/// and the names of those dropped.
fn kept_columns(
    design: &Design,
    x: &[f64],
    w: &[f64],
) -> Result<(Vec<usize>, Vec<String>), ModelError> {
    let n = design.nobs();
    let p = design.ncols();
    let fe = !design.absorb.is_empty();
    let xtx = if fe && design.absorb.len() == 1 {
        let f = &design.absorb[0];
        Rows {
            link: Link::Logit,
            x,
            y: &[],
            w,
            fe: Some((&f.codes[..], f.levels)),
            n,
            k: p,
        }
        .within_gram(w)
    } else if fe {
        let dm = Demeaner::new(&design.absorb, Some(w));
        let xd = demean_columns(&dm, x, n, p)?.0;
        gram(&xd, n, p, Some(w))
    } else {
        gram(x, n, p, Some(w))
    };
    let ranked = ranked_inverse(&xtx, p, COLLINEARITY_TOL);
    let dropped: Vec<String> = ranked
        .dropped
        .iter()
        .map(|&j| design.names[j].clone())
        .collect();
    if ranked.kept.is_empty() {
        return Err(ModelError::Singular {
            rank: 0,
            ncols: p,
            columns: dropped,
        });
    }
    Ok((ranked.kept.clone(), dropped))
}

/// The data of a Newton fit: the kept regressors (column-major n × k), the
/// outcome, the weights and the link.
struct Objective<'a> {
    link: Link,
    xk: &'a [f64],
    y: &'a [f64],
    w: &'a [f64],
    n: usize,
    k: usize,
}

/// A Newton iterate: coefficients b, FE part α, η = α + Xb and ℓ(η).
struct Iterate {
    b: Vec<f64>,
    alpha: Vec<f64>,
    eta: Vec<f64>,
    ll: f64,
}

/// A Newton iterate of the fused path: b, the FE part α (one value per
/// level; empty without FE), η, ℓ(η) and the Newton system at η.
struct FusedIterate {
    b: Vec<f64>,
    alpha: Vec<f64>,
    eta: Vec<f64>,
    ll: f64,
    system: System,
}

/// An iterate accepted by the fused step-halving (its η is in the caller's
/// buffer).
struct FusedStep {
    b: Vec<f64>,
    alpha: Vec<f64>,
    ll: f64,
    system: System,
}

/// The end of the Newton iterations: the estimate, its η and ℓ, the number of
/// iterations, whether the criterion was met, the last relative change of ℓ,
/// and the scores and bread at the estimate.
struct Ending {
    b: Vec<f64>,
    eta: Vec<f64>,
    ll: f64,
    iterations: usize,
    converged: bool,
    last_change: f64,
    scores: FinalScores,
}

/// Scores and bread at the estimate (see [`GlmFit`]).
struct FinalScores {
    score_weights: Vec<f64>,
    xd: Vec<f64>,
    bread: Vec<f64>,
    max_score: f64,
}

impl Objective<'_> {
    /// Start values of the FE part α of η, one per level of the FE set `f`.
    fn start_alpha(&self, f: &FixedEffect, b: &[f64]) -> Vec<f64> {
        let (n, k, xk, y, w) = (self.n, self.k, self.xk, self.y, self.w);
        // Start the FE part at the link of each level's (shrunken) outcome mean,
        // less the level's mean of Xb when starting coefficients b are given
        // (a warm start with α = 0 can be far from the optimum): saves Newton
        // iterations.
        let mut sy = vec![0.0; f.levels];
        let mut sw = vec![0.0; f.levels];
        for i in 0..n {
            sy[f.codes[i] as usize] += w[i] * y[i];
            sw[f.codes[i] as usize] += w[i];
        }
        let total: f64 = sy.iter().sum::<f64>() / sw.iter().sum::<f64>();
        let start_eta: Vec<f64> = (0..f.levels)
            .map(|l| {
                let p = ((sy[l] + total) / (sw[l] + 1.0)).clamp(1e-6, 1.0 - 1e-6);
                match self.link {
                    Link::Logit => (p / (1.0 - p)).ln(),
                    Link::Probit => Normal::standard().inverse_cdf(p),
                }
            })
            .collect();
        // Σ w·Xb per level (zero without a warm start: b = 0).
        let mut sxb = vec![0.0; f.levels];
        if b.iter().any(|v| *v != 0.0) {
            for i in 0..n {
                let xb: f64 = (0..k).map(|j| xk[j * n + i] * b[j]).sum();
                sxb[f.codes[i] as usize] += w[i] * xb;
            }
        }
        (0..f.levels)
            .map(|l| start_eta[l] - if sw[l] > 0.0 { sxb[l] / sw[l] } else { 0.0 })
            .collect()
    }

    /// The linear predictor η = α + Xb.
    fn eta(&self, b: &[f64], alpha: &[f64]) -> Vec<f64> {
        use rayon::prelude::*;
        let (n, k, xk) = (self.n, self.k, self.xk);
        let mut eta = alpha.to_vec();
        eta.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(c, chunk)| {
                let s = c * BLOCK;
                for j in 0..k {
                    let col = &xk[j * n + s..j * n + s + chunk.len()];
                    for (e, x) in chunk.iter_mut().zip(col) {
                        *e += x * b[j];
                    }
                }
            });
        eta
    }

    /// The log-likelihood at η.
    fn loglik(&self, eta: &[f64]) -> f64 {
        use rayon::prelude::*;
        let (n, y, w) = (self.n, self.y, self.w);
        // Sums over fixed row blocks, added in block order: the same bits for any
        // thread count.
        let parts: Vec<f64> = (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .map(|c| {
                let (lo, hi) = (c * BLOCK, ((c + 1) * BLOCK).min(n));
                (lo..hi)
                    .map(|i| w[i] * self.link.row(y[i], eta[i]).0)
                    .sum::<f64>()
            })
            .collect();
        parts.iter().sum()
    }

    /// Working weights h and working response z at η.
    fn working(&self, eta: &[f64]) -> (Vec<f64>, Vec<f64>) {
        use rayon::prelude::*;
        let (n, y, w) = (self.n, self.y, self.w);
        let mut h = vec![0.0; n];
        let mut z = vec![0.0; n];
        h.par_chunks_mut(BLOCK)
            .zip(z.par_chunks_mut(BLOCK))
            .enumerate()
            .for_each(|(c, (hc, zc))| {
                let lo = c * BLOCK;
                for (r, (hi, zi)) in hc.iter_mut().zip(zc.iter_mut()).enumerate() {
                    let i = lo + r;
                    let (_, s, hh) = self.link.row(y[i], eta[i]);
                    let hh = hh.max(1e-300);
                    *hi = w[i] * hh;
                    // working response: η + s/hh
                    *zi = eta[i] + s / hh;
                }
            });
        (h, z)
    }

    /// The weighted least-squares system X̃'HX̃ b = X̃'Hz̃ of one Newton step
    /// with several FE sets, the working response and the regressors demeaned
    /// with weights h by alternating projections: X̃'HX̃, X̃'Hz̃, z̃ and X̃.
    #[allow(clippy::type_complexity)]
    fn projected_system(
        &self,
        absorb: &[FixedEffect],
        h: &[f64],
        z: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>), ModelError> {
        let (n, k, xk) = (self.n, self.k, self.xk);
        let dm = Demeaner::new(absorb, Some(h));
        let zd = dm.demean(z)?.0;
        let xd = demean_columns(&dm, xk, n, k)?.0;
        let hz: Vec<f64> = h.iter().zip(&zd).map(|(a, b)| a * b).collect();
        let rhs = crate::linalg::cross(&xd, n, k, None, &hz);
        let hess = gram(&xd, n, k, Some(h));
        Ok((hess, rhs, zd, xd))
    }

    /// The FE part α at b_new with several FE sets: α = z − (z̃ − X̃ b) − X b.
    fn target_alpha(&self, zd: &[f64], xd: &[f64], z: &[f64], b_new: &[f64]) -> Vec<f64> {
        use rayon::prelude::*;
        let (n, k, xk) = (self.n, self.k, self.xk);
        let mut a = vec![0.0; n];
        a.par_chunks_mut(BLOCK).enumerate().for_each(|(c, chunk)| {
            let lo = c * BLOCK;
            for (r, slot) in chunk.iter_mut().enumerate() {
                let i = lo + r;
                let mut v = z[i] - zd[i];
                for j in 0..k {
                    v += (xd[j * n + i] - xk[j * n + i]) * b_new[j];
                }
                *slot = v;
            }
        });
        a
    }

    /// Step-halving on the log-likelihood: the first of the steps 1, 1/2, 1/4, …
    /// (40 tries) towards (b_new, target α) whose log-likelihood is finite and
    /// not lower than `ll`; `None` when there is none. Returns b, α, η and ℓ.
    fn step_halving(&self, at: &Iterate, b_new: &[f64], target_alpha: &[f64]) -> Option<Iterate> {
        let (n, k) = (self.n, self.k);
        let (b, alpha, ll) = (&at.b, &at.alpha, at.ll);
        let mut step = 1.0;
        for _ in 0..40 {
            let b_try: Vec<f64> = (0..k).map(|j| b[j] + step * (b_new[j] - b[j])).collect();
            let a_try: Vec<f64> = (0..n)
                .map(|i| alpha[i] + step * (target_alpha[i] - alpha[i]))
                .collect();
            let eta_try = self.eta(&b_try, &a_try);
            let ll_try = self.loglik(&eta_try);
            if ll_try.is_finite() && ll_try >= ll - 1e-12 * ll.abs().max(1.0) {
                return Some(Iterate {
                    b: b_try,
                    alpha: a_try,
                    eta: eta_try,
                    ll: ll_try,
                });
            }
            step *= 0.5;
        }
        None
    }

    /// Final scores and bread at the estimate: the score factors w_i ∂ℓ_i/∂η_i,
    /// the regressors as used in the scores (demeaned under FE), the inverse
    /// observed information (`bread` from the last iteration if it is singular
    /// here) and max |score|.
    fn final_scores(
        &self,
        absorb: &[FixedEffect],
        eta: &[f64],
        bread: Vec<f64>,
    ) -> Result<FinalScores, ModelError> {
        let (n, k, xk, y, w) = (self.n, self.k, self.xk, self.y, self.w);
        let mut bread = bread;
        let mut h = vec![0.0; n];
        let mut s = vec![0.0; n];
        for i in 0..n {
            let (_, sc, hh) = self.link.row(y[i], eta[i]);
            h[i] = w[i] * hh;
            s[i] = w[i] * sc;
        }
        let xd = if !absorb.is_empty() {
            let dm = Demeaner::new(absorb, Some(&h));
            demean_columns(&dm, xk, n, k)?.0
        } else {
            xk.to_vec()
        };
        let hess = gram(&xd, n, k, Some(&h));
        let ranked = ranked_inverse(&hess, k, 1e-14);
        if ranked.kept.len() == k {
            bread = ranked.inverse;
        }
        let max_score = (0..k)
            .map(|j| (0..n).map(|i| s[i] * xd[j * n + i]).sum::<f64>().abs())
            .fold(0.0f64, f64::max)
            // (max |score| is ∞ until computed here; the min is a no-op)
            .min(f64::INFINITY);
        Ok(FinalScores {
            score_weights: s,
            xd,
            bread,
            max_score,
        })
    }
}

impl Rows<'_> {
    /// Step-halving on the log-likelihood for the fused path: the first of
    /// the steps 1, 1/2, 1/4, … (40 tries) from `at` towards (b_new, target α)
    /// whose log-likelihood is finite and not lower than `at.ll`, with its η
    /// written to `eta` and its Newton system; `None` when there is none. The
    /// full step, nearly always accepted, is evaluated together with its
    /// system; a shorter one gets a second pass for it.
    fn step_halving(
        &self,
        at: &FusedIterate,
        b_new: &[f64],
        target_alpha: &[f64],
        eta: &mut [f64],
    ) -> Option<FusedStep> {
        let (b, alpha, ll) = (&at.b, &at.alpha, at.ll);
        let mut step = 1.0;
        for t in 0..40 {
            let b_try: Vec<f64> = b
                .iter()
                .zip(b_new)
                .map(|(v, nv)| v + step * (nv - v))
                .collect();
            let a_try: Vec<f64> = alpha
                .iter()
                .zip(target_alpha)
                .map(|(v, nv)| v + step * (nv - v))
                .collect();
            let (ll_try, system) = self.pass(&b_try, &a_try, eta, t == 0);
            if ll_try.is_finite() && ll_try >= ll - 1e-12 * ll.abs().max(1.0) {
                let system = match system {
                    Some(s) => s,
                    None => self.pass(&b_try, &a_try, eta, true).1?,
                };
                return Some(FusedStep {
                    b: b_try,
                    alpha: a_try,
                    ll: ll_try,
                    system,
                });
            }
            step *= 0.5;
        }
        None
    }
}

/// A 0/1 outcome, or the first row that is not.
pub(crate) fn check_binary(design: &Design) -> Result<(), ModelError> {
    match design
        .y
        .iter()
        .enumerate()
        .find(|(_, v)| **v != 0.0 && **v != 1.0)
    {
        Some((row, &value)) => Err(ModelError::NotBinary {
            column: design.y_name.clone(),
            row,
            value,
        }),
        None => Ok(()),
    }
}

/// Quasi-complete separation by a binary regressor: among the rows where a 0/1
/// column equals 1 (or 0), the outcome never varies.
pub(crate) fn check_separation(design: &Design) -> Result<(), ModelError> {
    let mut variables = Vec::new();
    for j in 0..design.ncols() {
        let col = design.column(j);
        if !col.iter().all(|v| *v == 0.0 || *v == 1.0) {
            continue;
        }
        let ones = col.iter().filter(|v| **v == 1.0).count();
        if ones == 0 || ones == col.len() {
            continue; // constant column (e.g. the intercept)
        }
        for level in [0.0, 1.0] {
            let ys: Vec<f64> = col
                .iter()
                .zip(design.y.iter())
                .filter(|(x, _)| **x == level)
                .map(|(_, y)| *y)
                .collect();
            let s: f64 = ys.iter().sum();
            if s == 0.0 || s == ys.len() as f64 {
                variables.push(format!("{}={}", design.names[j], level as u8));
            }
        }
    }
    if variables.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Separation { variables })
    }
}

impl GlmFit {
    /// Number of observations used.
    pub fn nobs(&self) -> usize {
        self.work.nobs()
    }

    /// Fitted probabilities F(η).
    pub fn fitted(&self) -> Vec<f64> {
        self.eta.iter().map(|e| self.link.cdf(*e)).collect()
    }
}
