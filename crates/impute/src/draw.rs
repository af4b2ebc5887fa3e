//! The imputation models of one variable in one stratum: fit on the rows
//! where it is observed, draw the parameters from their approximate
//! posterior, and draw the missing values (van Buuren 2018, §3.2–3.6; the
//! algorithms of mice's `norm.draw`, `.pmm.match`, `logreg` and `polyreg`).
//!
//! - **norm** (Rubin 1987, p. 167): β̂ = (X'X)⁻¹X'y, σ*² = RSS/χ²_{n_obs−p},
//!   β* = β̂ + σ*·chol((X'X)⁻¹)·z; y_mis = X_mis β* + σ* ε.
//! - **pmm** (type-1 matching): ŷ_obs = X_obs β̂, ŷ_mis = X_mis β*; each
//!   missing cell takes the observed value of one of the k observed rows
//!   whose ŷ_obs is nearest its ŷ_mis, chosen at random.
//! - **logistic**: β̂ by Newton–Raphson, β* = β̂ + chol(I(β̂)⁻¹)·z,
//!   y_mis ~ Bernoulli(expit(X_mis β*)).
//! - **multinomial**: the baseline-category logit (reference level 0) by
//!   Newton–Raphson on the stacked (K−1)·p parameters, β* drawn as above,
//!   y_mis from the softmax probabilities.

use healthgap_models::linalg::{COLLINEARITY_TOL, cross, gram, ranked_inverse};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{ChiSquared, Distribution, StandardNormal};

/// A predictor design, column-major rows × p: the rows where the response
/// is observed (a model's fit) or missing (its draws).
pub(crate) struct Fit<'a> {
    /// Column-major rows × p.
    pub x: &'a [f64],
    /// Rows.
    pub n: usize,
    /// Columns.
    pub p: usize,
}

/// A model fit ready to draw from: the kept columns, β̂, and the lower
/// Cholesky factor of the (unscaled) variance of β̂ over the kept columns.
pub(crate) struct Posterior {
    /// Kept design columns (collinear ones dropped).
    pub kept: Vec<usize>,
    /// β̂ over the kept columns (stacked per non-reference level for the
    /// multinomial model).
    pub beta: Vec<f64>,
    /// Lower Cholesky factor of the variance (row-major).
    pub chol: Vec<f64>,
    /// Residual sum of squares and its degrees of freedom (linear models).
    pub rss: (f64, f64),
    /// X β̂ on every row (linear models; empty for the logits).
    pub fitted: Vec<f64>,
}

/// Why a model could not be fitted: separation (a perfect predictor), a
/// design without rank, no observed rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failed(pub String);

impl Posterior {
    /// β̂ + scale·L z.
    pub(crate) fn draw(&self, scale: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let q = self.beta.len();
        let z: Vec<f64> = (0..q).map(|_| StandardNormal.sample(rng)).collect();
        (0..q)
            .map(|i| {
                self.beta[i] + scale * (0..=i).map(|k| self.chol[i * q + k] * z[k]).sum::<f64>()
            })
            .collect()
    }
}

/// Xβ over every row, for β on the `kept` columns.
pub(crate) fn linear_predictor(d: &Fit, kept: &[usize], beta: &[f64]) -> Vec<f64> {
    let mut eta = vec![0.0; d.n];
    for (&c, &b) in kept.iter().zip(beta) {
        let col = &d.x[c * d.n..(c + 1) * d.n];
        for (e, x) in eta.iter_mut().zip(col) {
            *e += b * x;
        }
    }
    eta
}

/// Least squares (every row observed), with the Cholesky factor of (X'X)⁻¹.
pub(crate) fn linear(d: &Fit, y: &[f64]) -> Result<Posterior, Failed> {
    let n_obs = d.n as f64;
    let xtx = gram(d.x, d.n, d.p, None);
    let xty = cross(d.x, d.n, d.p, None, y);
    let ranked = ranked_inverse(&xtx, d.p, COLLINEARITY_TOL);
    let q = ranked.kept.len();
    if q == 0 || n_obs <= q as f64 {
        return Err(Failed(format!("{n_obs} observed rows for {q} predictors")));
    }
    let beta: Vec<f64> = (0..q)
        .map(|i| {
            (0..q)
                .map(|j| ranked.inverse[i * q + j] * xty[ranked.kept[j]])
                .sum()
        })
        .collect();
    let eta = linear_predictor(d, &ranked.kept, &beta);
    let rss: f64 = (0..d.n).map(|i| (y[i] - eta[i]).powi(2)).sum();
    let chol = healthgap_models::linalg::cholesky(&ranked.inverse, q)
        .ok_or_else(|| Failed("(X'X)⁻¹ not positive definite".into()))?;
    Ok(Posterior {
        kept: ranked.kept,
        beta,
        chol,
        rss: (rss, (n_obs - q as f64).max(1.0)),
        fitted: eta,
    })
}

/// σ* and β* of the Bayesian linear model (mice `norm.draw`).
pub(crate) fn linear_draw(post: &Posterior, rng: &mut ChaCha8Rng) -> (f64, Vec<f64>) {
    let (rss, df) = post.rss;
    let chi: f64 = ChiSquared::new(df).map_or(df, |c| c.sample(rng));
    let sigma = (rss / chi).sqrt();
    (sigma, post.draw(sigma, rng))
}

/// For each missing row (`missing`, with its drawn prediction), the observed
/// value of one of the `k` observed rows nearest in `yhat_obs`.
pub(crate) fn pmm(
    yhat_obs: &[(f64, f64)],
    yhat_mis: &[f64],
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    // yhat_obs sorted by prediction: (prediction, observed value).
    let n = yhat_obs.len();
    let k = k.clamp(1, n.max(1));
    yhat_mis
        .iter()
        .map(|&t| {
            let pos = yhat_obs.partition_point(|(p, _)| *p < t);
            // The k nearest: grow a window [lo, hi) around pos.
            let (mut lo, mut hi) = (pos, pos);
            while hi - lo < k {
                let left = (lo > 0).then(|| t - yhat_obs[lo - 1].0);
                let right = (hi < n).then(|| yhat_obs[hi].0 - t);
                match (left, right) {
                    (Some(l), Some(r)) if l <= r => lo -= 1,
                    (Some(_), None) => lo -= 1,
                    (_, Some(_)) => hi += 1,
                    (None, None) => break,
                }
            }
            yhat_obs[lo + rng.random_range(0..(hi - lo).max(1))].1
        })
        .collect()
}

/// Newton–Raphson iterations at most.
const NEWTON_MAX: usize = 30;

/// The fit stops after a step whose largest element is below this
/// (relative to 1 + |β|): Newton converges quadratically on the concave
/// logit likelihood, so the error left after such a step is of the order of
/// its square (1e-10), far below the posterior spread the draws add.
const NEWTON_TOL: f64 = 1e-5;

/// A linear predictor beyond this on an observed row means the fitted
/// probability is 0 or 1 to machine precision: a perfect predictor.
const SEPARATION_ETA: f64 = 30.0;

/// The response of a logit model.
pub(crate) enum Response<'a> {
    /// 0/1 values.
    Binary(&'a [f64]),
    /// Level codes 0..K (missing rows carry any code; their weight is 0).
    Codes(&'a [u32]),
}

impl Response<'_> {
    /// Whether row i is at level `level` (1..K).
    fn at(&self, i: usize, level: usize) -> f64 {
        match self {
            Response::Binary(y) => y[i],
            Response::Codes(c) => f64::from(u8::from(c[i] as usize == level)),
        }
    }
}

/// The baseline-category logit with `levels` levels (2: logistic) fitted by
/// Newton–Raphson (every row observed); β stacked per non-reference level
/// over all p columns. With `ridge` > 0 the log-likelihood is penalized by
/// ridge/2·Σβ² over the non-intercept coefficients (column 0 is the
/// intercept), which keeps a separated fit finite. Without it the fit fails
/// on separation (a fitted linear predictor beyond ±30 on an observed row)
/// or when Newton does not converge.
pub(crate) fn multinomial(
    d: &Fit,
    y: &Response,
    levels: usize,
    start: Option<&[f64]>,
    ridge: f64,
) -> Result<Posterior, Failed> {
    let (n, p) = (d.n, d.p);
    let j = levels - 1;
    let kp = j * p;
    let mut beta = start
        .filter(|s| s.len() == kp && s.iter().all(|b| b.is_finite()))
        .map_or_else(|| vec![0.0; kp], <[f64]>::to_vec);
    let mut converged = false;
    let mut last_info = Vec::new();
    for _ in 0..NEWTON_MAX {
        let probs = softmax(d, &beta, j);
        let mut score = vec![0.0; kp];
        for a in 0..j {
            let resid: Vec<f64> = (0..n).map(|i| y.at(i, a + 1) - probs[a][i]).collect();
            score[a * p..(a + 1) * p].copy_from_slice(&cross(d.x, n, p, None, &resid));
        }
        let mut info = information(d, &probs, j);
        penalize(&mut info, &mut score, &beta, p, ridge);
        let ranked = ranked_inverse(&info, kp, COLLINEARITY_TOL);
        last_info = info;
        let q = ranked.kept.len();
        let mut largest: f64 = 0.0;
        for (r, &kr) in ranked.kept.iter().enumerate() {
            let step: f64 = (0..q)
                .map(|c| ranked.inverse[r * q + c] * score[ranked.kept[c]])
                .sum();
            beta[kr] += step;
            largest = largest.max(step.abs() / (1.0 + beta[kr].abs()));
        }
        if !beta.iter().all(|b| b.is_finite()) {
            return Err(Failed("the fit diverged".into()));
        }
        if largest < NEWTON_TOL {
            converged = true;
            break;
        }
    }
    let all: Vec<usize> = (0..p).collect();
    let separated = ridge == 0.0
        && (0..j).any(|a| {
            linear_predictor(d, &all, &beta[a * p..(a + 1) * p])
                .iter()
                .any(|e| e.abs() > SEPARATION_ETA)
        });
    if separated {
        return Err(Failed(
            "a perfect predictor (separation): fitted probabilities of 0 or 1".into(),
        ));
    }
    if !converged {
        return Err(Failed(format!(
            "no convergence in {NEWTON_MAX} Newton steps"
        )));
    }
    // The information of the last step (at β before a step below
    // NEWTON_TOL): the posterior's variance.
    let ranked = ranked_inverse(&last_info, kp, COLLINEARITY_TOL);
    let chol = healthgap_models::linalg::cholesky(&ranked.inverse, ranked.kept.len())
        .ok_or_else(|| Failed("information not positive definite".into()))?;
    let kept_beta = ranked.kept.iter().map(|&c| beta[c]).collect();
    Ok(Posterior {
        kept: ranked.kept,
        beta: kept_beta,
        chol,
        rss: (0.0, 0.0),
        fitted: Vec::new(),
    })
}

/// Adds the ridge penalty's curvature and gradient (not on the intercepts,
/// the first of every level's p columns).
fn penalize(info: &mut [f64], score: &mut [f64], beta: &[f64], p: usize, ridge: f64) {
    if ridge == 0.0 {
        return;
    }
    let kp = beta.len();
    for c in (0..kp).filter(|c| c % p != 0) {
        info[c * kp + c] += ridge;
        score[c] -= ridge * beta[c];
    }
}

/// The information of the baseline-category logit at the probabilities
/// `probs`: blocks X'diag(p_ia(δ_ab − p_ib))X.
fn information(d: &Fit, probs: &[Vec<f64>], j: usize) -> Vec<f64> {
    let (n, p) = (d.n, d.p);
    let kp = j * p;
    let mut info = vec![0.0; kp * kp];
    for a in 0..j {
        for b in a..j {
            let w: Vec<f64> = (0..n)
                .map(|i| {
                    let delta = f64::from(u8::from(a == b));
                    probs[a][i] * (delta - probs[b][i])
                })
                .collect();
            let h = gram(d.x, n, p, Some(&w));
            for r in 0..p {
                for c in 0..p {
                    info[(a * p + r) * kp + b * p + c] = h[r * p + c];
                    info[(b * p + c) * kp + a * p + r] = h[r * p + c];
                }
            }
        }
    }
    info
}

/// β over all stacked columns from β over the kept ones (zeros elsewhere).
pub(crate) fn expand(kept: &[usize], beta: &[f64], len: usize) -> Vec<f64> {
    let mut out = vec![0.0; len];
    for (&c, &b) in kept.iter().zip(beta) {
        out[c] = b;
    }
    out
}

/// Probabilities of the non-reference levels 1..=j at stacked β (all p
/// columns per level), every row.
pub(crate) fn softmax(d: &Fit, beta: &[f64], j: usize) -> Vec<Vec<f64>> {
    let all: Vec<usize> = (0..d.p).collect();
    let etas: Vec<Vec<f64>> = (0..j)
        .map(|a| linear_predictor(d, &all, &beta[a * d.p..(a + 1) * d.p]))
        .collect();
    let mut probs = vec![vec![0.0; d.n]; j];
    for i in 0..d.n {
        let top = etas.iter().map(|e| e[i]).fold(0.0f64, f64::max);
        let denom = (-top).exp() + etas.iter().map(|e| (e[i] - top).exp()).sum::<f64>();
        for a in 0..j {
            probs[a][i] = (etas[a][i] - top).exp() / denom;
        }
    }
    probs
}
