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
//! g'H⁻¹g is below 1e-12·|D| (or below 1e-9·|D| when no step along the
//! Newton direction lowers D any more, the rounding floor). A
//! curvature that is not positive definite (far from the optimum) is shifted
//! by a multiple of the identity until it is (Levenberg–Marquardt); a failed
//! line search further away hands over to Nelder–Mead.
//!
//! Coordinates: Newton starts on log L22 (the slope model's φ₂ is L22 itself,
//! see `fit::scales_for`), which is the better-conditioned scale far from the
//! optimum, and changes to L22 when the fit heads for a correlation of ±1
//! (L22 below 2|L21| and falling, within one unit of deviance of the
//! quadratic model's minimum): there log L22 → −∞, which Newton
//! approaches by a constant step and never reaches, while on L22 the
//! boundary is the interior point 0 of an even function, reached
//! quadratically. The end point and its derivatives are returned on L22.

use super::fit::Profile;
use super::objective::{Scales, extrapolated_modes};
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
    /// The derivatives at the converged φ, when D_ββ there is exact (for the
    /// standard errors, see `fit_summary.rs`).
    pub last: Option<Derivatives>,
}

/// Newton iterations on D*(φ) from `phi` (β warm-started from the profile's
/// state), at most `max_iter`.
pub(super) fn newton_profile(profile: &Profile<'_>, phi: Vec<f64>, max_iter: u64) -> NewtonEnd {
    let mut chart = Chart::start(profile, &phi);
    let mut phi = chart.coordinates_of(phi);
    let mut d = profile.profile_beta(&chart.scales(profile, &phi));
    for iteration in 0..max_iter {
        let Some(derivs) = derivatives(profile, chart, &phi) else {
            return chart.end(phi, iteration, false, None);
        };
        let Derivatives {
            grad,
            curvature,
            beta_slope,
            beta_inverse,
            ..
        } = &derivs;
        let (beta, _) = profile.beta_and_modes();
        let m = phi.len();
        let Some((inverse, shifted)) = positive_definite_inverse(curvature, m) else {
            return chart.end(phi, iteration, false, None);
        };
        let mut step = mat_vec(&inverse, m, m, grad);
        let decrement: f64 = grad.iter().zip(&step).map(|(g, s)| g * s).sum();
        if !decrement.is_finite() {
            return chart.end(phi, iteration, false, None);
        }
        if !shifted && decrement <= 1e-12 * d.abs().max(1.0) {
            if chart == Chart::Linear && at_unit_correlation(profile, &mut phi, d) {
                return chart.end(phi, iteration + 1, true, None);
            }
            let exact = derivs.exact;
            return chart.end(phi, iteration + 1, true, exact.then_some(derivs));
        }
        if !shifted && decrement < 1.0 && chart.towards_unit_correlation(&phi, &step) {
            // Same point, new coordinates: the derivatives again on L22.
            phi = chart.to_phi(phi);
            chart = Chart::Linear;
            continue;
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
            // β̂ at the trial φ predicted to first order: β̂ + (dβ̂/dφ')Δφ.
            let predicted = (0..beta.len())
                .map(|b| beta[b] - t * (0..m).map(|k| beta_slope[b * m + k] * step[k]).sum::<f64>())
                .collect();
            profile.start_beta_at(predicted);
            let dt = profile
                .profile_beta_from(&chart.scales(profile, &trial), Some(beta_inverse.clone()));
            if dt.is_finite() && dt <= d - 1e-4 * t * slope {
                phi = trial;
                d = dt;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            // Back to the last accepted point's β and modes.
            profile.profile_beta(&chart.scales(profile, &phi));
            // Within 1e-9·|D| of the optimum no step can show a decrease
            // above the rounding of D: converged there. Otherwise Nelder–Mead
            // takes over.
            let close = !shifted && decrement <= 1e-9 * d.abs().max(1.0);
            let last = (close && derivs.exact).then_some(derivs);
            return chart.end(phi, iteration + 1, close, last);
        }
    }
    chart.end(phi, max_iter, false, None)
}

/// Whether a slope model's converged φ (on L22) is the correlation boundary:
/// |L22| below 5% of σ_v and the profiled deviance at L22 = 0 no more than
/// 1e-10·|D| above `d`. Then φ₂ is set to 0 (and the profile's state is
/// there); otherwise the state is re-profiled at φ.
fn at_unit_correlation(profile: &Profile<'_>, phi: &mut [f64], d: f64) -> bool {
    if profile.prob.q() != 2 || phi[2].abs() >= 0.05 * phi[1].hypot(phi[2]) {
        return false;
    }
    let mut edge = phi.to_vec();
    edge[2] = 0.0;
    let (beta, u) = profile.beta_and_modes();
    let d_edge = profile.profile_beta(&profile.scales(&edge));
    if d_edge <= d + 1e-10 * d.abs().max(1.0) {
        phi[2] = 0.0;
        return true;
    }
    profile.restore(beta, u);
    false
}

/// The coordinates of Newton's iteration: φ, or φ with log L22 in place of
/// L22 (the slope model only).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Chart {
    LogSlope,
    Linear,
}

impl Chart {
    /// Log L22 for a slope model whose L22 is not 0.
    fn start(profile: &Profile<'_>, phi: &[f64]) -> Chart {
        if profile.prob.q() == 2 && phi[2] != 0.0 {
            Chart::LogSlope
        } else {
            Chart::Linear
        }
    }

    /// φ in this chart's coordinates.
    fn coordinates_of(self, mut phi: Vec<f64>) -> Vec<f64> {
        if self == Chart::LogSlope {
            phi[2] = phi[2].abs().ln();
        }
        phi
    }

    /// This chart's coordinates as φ.
    fn to_phi(self, mut psi: Vec<f64>) -> Vec<f64> {
        if self == Chart::LogSlope {
            psi[2] = psi[2].exp();
        }
        psi
    }

    fn scales(self, profile: &Profile<'_>, psi: &[f64]) -> Scales {
        profile.scales(&self.to_phi(psi.to_vec()))
    }

    /// On log L22, whether the step (subtracted) lowers L22 while it is
    /// already below 2|L21| (|ρ| > 1/√5): the fit heads for |ρ| = 1.
    /// Asked only near the optimum, where L22's scale serves: the curvature
    /// needed no shift and the Newton decrement is below 1 (the quadratic
    /// model promises less than one unit of deviance).
    fn towards_unit_correlation(self, psi: &[f64], step: &[f64]) -> bool {
        self == Chart::LogSlope && step[2] > 0.0 && psi[2].exp() < 2.0 * psi[1].abs()
    }

    /// Newton's end with φ and the derivatives on L22: by the chain rule for
    /// L22 = e^t, D_L = D_t/L, D_LL = (D_tt − D_t)/L², D_Lx = D_tx/L.
    fn end(
        self,
        psi: Vec<f64>,
        iterations: u64,
        converged: bool,
        last: Option<Derivatives>,
    ) -> NewtonEnd {
        let last = match (self, last) {
            (Chart::LogSlope, Some(d)) => Some(d.on_slope_scale(psi[2].exp())),
            (_, d) => d,
        };
        NewtonEnd {
            phi: self.to_phi(psi),
            iterations,
            converged,
            last,
        }
    }
}

/// The inverse of the curvature, or of curvature + τI with the smallest τ of
/// 0, 1e-3·s, 4e-3·s, … (s its largest diagonal entry) that makes it
/// positive definite (far from the optimum the profile need not be convex:
/// Levenberg–Marquardt's remedy); whether it was shifted.
fn positive_definite_inverse(curvature: &[f64], m: usize) -> Option<(Vec<f64>, bool)> {
    let scale = (0..m).fold(1e-8_f64, |a, k| a.max(curvature[k * m + k].abs()));
    let mut shift = 0.0;
    for _ in 0..30 {
        let mut h = curvature.to_vec();
        (0..m).for_each(|k| h[k * m + k] += shift);
        if crate::linalg::cholesky(&h, m).is_some() {
            let inv = ranked_inverse(&h, m, COLLINEARITY_TOL);
            if inv.dropped.is_empty() {
                return Some((inv.inverse, shift > 0.0));
            }
        }
        shift = if shift == 0.0 {
            1e-3 * scale
        } else {
            4.0 * shift
        };
    }
    None
}

/// The profile's derivatives at φ, the joint ones they come from, and what
/// the next β profile starts from.
pub(super) struct Derivatives {
    /// ∂D*/∂φ = ∂D/∂φ.
    pub grad: Vec<f64>,
    /// ∂²D*/∂φ∂φ' (m × m).
    curvature: Vec<f64>,
    /// dβ̂/dφ' = −D_ββ⁻¹D_βφ (p × m, row-major).
    beta_slope: Vec<f64>,
    /// D_ββ⁻¹ (p × p).
    beta_inverse: Vec<f64>,
    /// D_φφ (m × m; the diagonal by central differences, the off-diagonal
    /// by forward ones).
    pub phi_phi: Vec<f64>,
    /// D_βφ by central differences (p × m, row-major).
    pub beta_phi: Vec<f64>,
    /// D_ββ (p × p).
    pub beta_hessian: Vec<f64>,
    /// Whether D_ββ is exact (not the Schur complement).
    pub exact: bool,
}

/// ∂D*/∂φ and ∂²D*/∂φ∂φ' at φ, with β and the modes at β̂(φ) in the
/// profile's state; `None` when an evaluation is not finite.
fn derivatives(profile: &Profile<'_>, chart: Chart, phi: &[f64]) -> Option<Derivatives> {
    let prob = profile.prob;
    let (beta, u) = profile.beta_and_modes();
    let off = prob.linear_predictor(&beta);
    // Each evaluation's modes start from a prediction: the profile's own at
    // φ, the center's at φ + h e_k, and to O(h²) by extrapolation at φ − h e_k
    // (2u₀ − u₊) and φ + h(e_a + e_b) (u_a + u_b − u₀).
    let at = |ph: &[f64], gradient: bool, mut uu: Vec<f64>, predicted: bool| {
        let sc: Scales = chart.scales(profile, ph);
        let ev = if predicted {
            prob.evaluate_predicted(&sc, &off, &mut uu)
        } else {
            prob.evaluate(&sc, &off, &mut uu)
        };
        let g = gradient.then(|| prob.gradient(&sc, &off, &uu, &ev));
        (ev.deviance, g, sc, ev, uu)
    };
    let (m, p) = (phi.len(), prob.p);
    let (d0, _, sc0, ev0, u0) = at(phi, false, u, true);
    let shifted = |k: usize, h: f64| {
        let mut v = phi.to_vec();
        v[k] += h;
        v
    };
    let mut grad = vec![0.0; m];
    let mut dpp = vec![0.0; m * m];
    let mut dbp = vec![0.0; p * m];
    let mut plus = vec![0.0; m];
    let mut u_plus = Vec::with_capacity(m);
    for k in 0..m {
        let (dp, gp, .., up) = at(&shifted(k, STEP), true, u0.clone(), false);
        let minus_start = extrapolated_modes(&u0, &u0, &up);
        let (dm, gm, ..) = at(&shifted(k, -STEP), true, minus_start, true);
        u_plus.push(up);
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
            let start = extrapolated_modes(&u_plus[a], &u_plus[b], &u0);
            let value = (at(&v, false, start, true).0 - plus[a] - plus[b] + d0) / (STEP * STEP);
            dpp[a * m + b] = value;
            dpp[b * m + a] = value;
        }
    }
    let exact = prob.laplace_beta_hessian(&sc0, &off, &u0, &ev0);
    let is_exact = exact.is_some();
    let dbb = exact.unwrap_or_else(|| prob.schur_hessian(&sc0, &off, &u0, &ev0));
    let inv = ranked_inverse(&dbb, p, COLLINEARITY_TOL);
    if !inv.dropped.is_empty() {
        return None;
    }
    let phi_phi = dpp.clone();
    // H* = D_φφ − D_φβ D_ββ⁻¹ D_βφ.
    let mut beta_slope = vec![0.0; p * m];
    for a in 0..m {
        let col_a: Vec<f64> = (0..p).map(|b| dbp[b * m + a]).collect();
        let solved = mat_vec(&inv.inverse, p, p, &col_a);
        for b in 0..p {
            beta_slope[b * m + a] = -solved[b];
        }
        for c in 0..m {
            let v: f64 = (0..p).map(|b| dbp[b * m + c] * solved[b]).sum();
            dpp[a * m + c] -= v;
        }
    }
    let finite = grad.iter().chain(&dpp).all(|v| v.is_finite());
    finite.then_some(Derivatives {
        grad,
        curvature: dpp,
        beta_slope,
        beta_inverse: inv.inverse,
        phi_phi,
        beta_phi: dbp,
        beta_hessian: dbb,
        exact: is_exact,
    })
}

impl Derivatives {
    /// The derivatives on log L22 (coordinate 2) moved to L22 = e^t: rows
    /// and columns of coordinate 2 divided by L22, and D_LL = (D_tt − D_t)/L²
    /// (the profile's curvature likewise).
    fn on_slope_scale(mut self, l22: f64) -> Derivatives {
        let m = self.grad.len();
        let p = self.beta_slope.len() / m.max(1);
        let d_t = self.grad[2];
        self.grad[2] /= l22;
        for mat in [&mut self.phi_phi, &mut self.curvature] {
            for k in 0..m {
                if k != 2 {
                    mat[2 * m + k] /= l22;
                    mat[k * m + 2] /= l22;
                }
            }
            mat[2 * m + 2] = (mat[2 * m + 2] - d_t) / (l22 * l22);
        }
        for b in 0..p {
            self.beta_phi[b * m + 2] /= l22;
            self.beta_slope[b * m + 2] /= l22;
        }
        self
    }
}
