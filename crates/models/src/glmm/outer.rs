//! Newton's method on the profiled deviance D*(φ) = min_β D(φ, β) over the
//! variance parameters φ — the first choice of the outer optimizer, with
//! argmin's Nelder–Mead as the fallback (see `fit.rs`).
//!
//! The derivatives of the profile come from those of the joint deviance at
//! (φ, β̂(φ)): by the envelope theorem ∂D*/∂φ = ∂D/∂φ, and
//! ∂²D*/∂φ∂φ' = D_φφ − D_φβ D_ββ⁻¹ D_βφ (the implicit function theorem for
//! dβ̂/dφ' = −D_ββ⁻¹D_βφ). ∂D/∂φ, D_φφ and D_βφ are central differences in φ
//! at fixed β (2 evaluations per parameter, off-diagonal D_φφ one more per
//! pair); D_ββ is exact where `hessian.rs` has a closed form, the Schur
//! complement otherwise. Steps are capped at 1 on the log-SD scale and
//! backtracked until the profiled deviance decreases (Armijo), so every
//! accepted iterate is a real improvement; Newton stops when the decrement
//! g'H⁻¹g is below 1e-10·|D|. A non-positive-definite curvature (a boundary
//! fit, σ → 0) or a failed line search hands over to Nelder–Mead.

use super::fit::Profile;
use super::objective::Scales;
use crate::linalg::{COLLINEARITY_TOL, mat_vec, ranked_inverse};

/// Step of the differences in φ.
const STEP: f64 = 1e-4;
/// Largest step on the log-SD scale.
const MAX_STEP: f64 = 1.0;

/// Where Newton ended: φ, the profiled deviance there, the iterations, and
/// whether the decrement criterion was met.
pub(super) struct NewtonEnd {
    pub phi: Vec<f64>,
    pub iterations: u64,
    pub converged: bool,
}

/// Newton iterations on D*(φ) from `phi` (β warm-started from the profile's
/// state), at most `max_iter`.
pub(super) fn newton_profile(profile: &Profile<'_>, mut phi: Vec<f64>, max_iter: u64) -> NewtonEnd {
    let mut d = profile.profile_beta(&profile.scales(&phi));
    for iteration in 0..max_iter {
        let Some((grad, curvature)) = derivatives(profile, &phi) else {
            return end(phi, iteration, false);
        };
        let m = phi.len();
        let inv = ranked_inverse(&curvature, m, COLLINEARITY_TOL);
        if !inv.dropped.is_empty() {
            return end(phi, iteration, false);
        }
        let mut step = mat_vec(&inv.inverse, m, m, &grad);
        let decrement: f64 = grad.iter().zip(&step).map(|(g, s)| g * s).sum();
        if !decrement.is_finite() || decrement < 0.0 {
            return end(phi, iteration, false);
        }
        if decrement <= 1e-10 * d.abs().max(1.0) {
            return end(phi, iteration + 1, true);
        }
        let largest = step.iter().fold(0.0_f64, |a, s| a.max(s.abs()));
        if largest > MAX_STEP {
            step.iter_mut().for_each(|s| *s *= MAX_STEP / largest);
        }
        let slope: f64 = grad.iter().zip(&step).map(|(g, s)| g * s).sum();
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..20 {
            let trial: Vec<f64> = phi.iter().zip(&step).map(|(p, s)| p - t * s).collect();
            let dt = profile.profile_beta(&profile.scales(&trial));
            if dt.is_finite() && dt <= d - 1e-4 * t * slope {
                phi = trial;
                d = dt;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            // Back to the last accepted point's β and modes for the fallback.
            profile.profile_beta(&profile.scales(&phi));
            return end(phi, iteration + 1, false);
        }
    }
    end(phi, max_iter, false)
}

fn end(phi: Vec<f64>, iterations: u64, converged: bool) -> NewtonEnd {
    NewtonEnd {
        phi,
        iterations,
        converged,
    }
}

/// ∂D*/∂φ and ∂²D*/∂φ∂φ' at φ, with β and the modes at β̂(φ) in the
/// profile's state; `None` when an evaluation is not finite.
fn derivatives(profile: &Profile<'_>, phi: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let prob = profile.prob;
    let (beta, u) = profile.beta_and_modes();
    let off = prob.linear_predictor(&beta);
    let at = |ph: &[f64], gradient: bool| {
        let sc: Scales = profile.scales(ph);
        let mut uu = u.clone();
        let ev = prob.evaluate(&sc, &off, &mut uu);
        let g = gradient.then(|| prob.gradient(&sc, &off, &uu, &ev));
        (ev.deviance, g, sc, ev, uu)
    };
    let (m, p) = (phi.len(), prob.p);
    let (d0, _, sc0, ev0, u0) = at(phi, false);
    let shifted = |k: usize, h: f64| {
        let mut v = phi.to_vec();
        v[k] += h;
        v
    };
    let mut grad = vec![0.0; m];
    let mut dpp = vec![0.0; m * m];
    let mut dbp = vec![0.0; p * m];
    let mut plus = vec![0.0; m];
    for k in 0..m {
        let (dp, gp, ..) = at(&shifted(k, STEP), true);
        let (dm, gm, ..) = at(&shifted(k, -STEP), true);
        let (gp, gm) = (gp.unwrap_or_default(), gm.unwrap_or_default());
        grad[k] = (dp - dm) / (2.0 * STEP);
        dpp[k * m + k] = (dp - 2.0 * d0 + dm) / (STEP * STEP);
        plus[k] = dp;
        for b in 0..p {
            dbp[b * m + k] = (gp[b] - gm[b]) / (2.0 * STEP);
        }
    }
    for a in 0..m {
        for b in 0..a {
            let mut v = shifted(a, STEP);
            v[b] += STEP;
            let value = (at(&v, false).0 - plus[a] - plus[b] + d0) / (STEP * STEP);
            dpp[a * m + b] = value;
            dpp[b * m + a] = value;
        }
    }
    let dbb = prob
        .laplace_beta_hessian(&sc0, &off, &u0, &ev0)
        .unwrap_or_else(|| prob.schur_hessian(&sc0, &off, &u0, &ev0));
    let inv = ranked_inverse(&dbb, p, COLLINEARITY_TOL);
    if !inv.dropped.is_empty() {
        return None;
    }
    // H* = D_φφ − D_φβ D_ββ⁻¹ D_βφ.
    for a in 0..m {
        let col_a: Vec<f64> = (0..p).map(|b| dbp[b * m + a]).collect();
        let solved = mat_vec(&inv.inverse, p, p, &col_a);
        for c in 0..m {
            let v: f64 = (0..p).map(|b| dbp[b * m + c] * solved[b]).sum();
            dpp[a * m + c] -= v;
        }
    }
    let finite = grad.iter().chain(&dpp).all(|v| v.is_finite());
    finite.then_some((grad, dpp))
}
