//! Input checks, the profiled optimization (Newton over the variance
//! parameters with argmin's Nelder–Mead as the fallback, Newton over β inside) and the Hessian-based
//! standard errors of a GLMM.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, State};
use argmin::solver::neldermead::NelderMead;

use super::objective::{Evaluation, Problem, Scales};
use super::quadrature::gauss_hermite;
use super::{Glmm, GlmmFamily, GlmmFit, GlmmStart, Grouping};
use crate::design::Design;
use crate::error::ModelError;
use crate::linalg::{COLLINEARITY_TOL, gram, mat_vec, ranked_inverse};

/// Newton iterations on the profiled deviance before Nelder–Mead takes over.
const NEWTON_ITERATIONS: u64 = 30;
/// Lower bound of the log-SD parameters (σ ≥ e⁻¹², a boundary fit).
const LOG_SD_FLOOR: f64 = -12.0;
/// An SD below this (on the linear-predictor scale) is reported as a boundary fit.
pub(super) const BOUNDARY_SD: f64 = 1e-4;

/// Refuses inputs the model cannot identify, with a message that says why.
pub(super) fn check(
    family: GlmmFamily,
    design: &Design,
    grouping: Grouping<'_>,
    slope: Option<usize>,
    quadrature: usize,
) -> Result<(), ModelError> {
    design.validate()?;
    let n = design.nobs();
    if grouping.codes.len() != n {
        return Err(ModelError::Dimension {
            what: format!("{} group codes for {n} rows", grouping.codes.len()),
        });
    }
    if !design.absorb.is_empty() {
        return Err(ModelError::Unidentified {
            what:
                "a mixed model takes the hospital as a random effect, not an absorbed fixed effect"
                    .into(),
        });
    }
    let mut sizes = vec![0usize; grouping.levels];
    for &c in grouping.codes {
        if c as usize >= grouping.levels {
            return Err(ModelError::Dimension {
                what: format!(
                    "group code {c} ≥ {} levels of `{}`",
                    grouping.levels, grouping.name
                ),
            });
        }
        sizes[c as usize] += 1;
    }
    let used = sizes.iter().filter(|s| **s > 0).count();
    if used < 2 {
        return Err(ModelError::Unidentified {
            what: format!(
                "a random effect of `{}` needs at least 2 levels with patients, found {used}; use a single-level model instead",
                grouping.name
            ),
        });
    }
    if family != GlmmFamily::Identity {
        crate::glm::check_binary(design)?;
        crate::glm::check_separation(design)?;
    }
    if let Some(j) = slope {
        check_slope(design, grouping, j, quadrature)?;
    }
    let g = gram(
        design.x.as_slice_memory_order().unwrap_or(&[]),
        n,
        design.ncols(),
        None,
    );
    let ranked = ranked_inverse(&g, design.ncols(), COLLINEARITY_TOL);
    if !ranked.dropped.is_empty() {
        return Err(ModelError::Singular {
            rank: ranked.kept.len(),
            ncols: design.ncols(),
            columns: ranked
                .dropped
                .iter()
                .map(|&j| design.names[j].clone())
                .collect(),
        });
    }
    Ok(())
}

/// A random slope needs a 0/1 column that varies within some groups, and the
/// Laplace approximation.
fn check_slope(
    design: &Design,
    grouping: Grouping<'_>,
    j: usize,
    quadrature: usize,
) -> Result<(), ModelError> {
    let name = design.names.get(j).cloned().unwrap_or_default();
    if j >= design.ncols() {
        return Err(ModelError::Dimension {
            what: format!("slope column {j} of {}", design.ncols()),
        });
    }
    let col = design.column(j);
    if col.iter().any(|v| *v != 0.0 && *v != 1.0) {
        return Err(ModelError::Unidentified {
            what: format!("the random slope is on a 0/1 indicator; `{name}` takes other values"),
        });
    }
    if quadrature > 1 {
        return Err(ModelError::Unidentified {
            what: "adaptive Gauss–Hermite quadrature (quadrature > 1) is for the random-intercept model; use the Laplace approximation (quadrature = 1) with a random slope".into(),
        });
    }
    let mut seen = vec![[false; 2]; grouping.levels];
    for (c, v) in grouping.codes.iter().zip(col) {
        seen[*c as usize][usize::from(*v == 1.0)] = true;
    }
    let varying = seen.iter().filter(|s| s[0] && s[1]).count();
    if varying < 2 {
        return Err(ModelError::Unidentified {
            what: format!(
                "a random slope on `{name}` needs groups where `{name}` varies; it is constant within all but {varying} of the {} levels of `{}`, so the slope variance cannot be separated from the intercept; fit the random intercept only (random_slope = false)",
                grouping.levels, grouping.name
            ),
        });
    }
    Ok(())
}

/// Mutable state of the profiled objective: β, the modes and the count.
struct Inner {
    beta: Vec<f64>,
    u: Vec<f64>,
    converged: bool,
}

/// The profiled deviance D(φ) = min_β D(φ, β), argmin's cost function.
pub(super) struct Profile<'a> {
    pub(super) prob: &'a Problem<'a>,
    identity: bool,
    state: RefCell<Inner>,
}

impl Profile<'_> {
    /// Variance parameters from the optimizer's vector.
    pub(super) fn scales(&self, phi: &[f64]) -> Scales {
        scales_of(self.prob, self.identity, phi)
    }

    /// Sets the β the next profile starts from.
    pub(super) fn start_beta_at(&self, beta: Vec<f64>) {
        self.state.borrow_mut().beta = beta;
    }

    /// Puts back β and the modes of an earlier profile.
    pub(super) fn restore(&self, beta: Vec<f64>, u: Vec<f64>) {
        let mut st = self.state.borrow_mut();
        st.beta = beta;
        st.u = u;
    }

    /// β and the modes of the last profile.
    pub(super) fn beta_and_modes(&self) -> (Vec<f64>, Vec<f64>) {
        let st = self.state.borrow();
        (st.beta.clone(), st.u.clone())
    }

    /// Minimizes the deviance over β at fixed scales by quasi-Newton steps
    /// with the exact gradient, with step-halving.
    pub(super) fn profile_beta(&self, sc: &Scales) -> f64 {
        self.profile_beta_from(sc, None)
    }

    /// [`Profile::profile_beta`] starting the quasi-Newton iteration from
    /// `inverse`, an inverse β-Hessian from a nearby point (a fresh one at the
    /// first iterate otherwise: exact where `hessian.rs` has a closed form,
    /// the Schur complement otherwise). The exact gradient decides
    /// convergence; a step that must be halved, or a direction that is not a
    /// descent one, brings a fresh Hessian.
    pub(super) fn profile_beta_from(&self, sc: &Scales, mut inverse: Option<Vec<f64>>) -> f64 {
        let prob = self.prob;
        let mut st = self.state.borrow_mut();
        let Inner { beta, u, converged } = &mut *st;
        let mut off = prob.linear_predictor(beta);
        let mut ev = prob.evaluate(sc, &off, u);
        let mut ok = ev.modes_converged;
        let mut last_decrement = f64::INFINITY;
        for _ in 0..100 {
            let grad = prob.gradient(sc, &off, u, &ev);
            let tol = 1e-15 * ev.deviance.abs().max(1.0);
            let Some((step, decrement, fresh)) = beta_step(
                prob,
                sc,
                (&off, u, &ev),
                &grad,
                &mut inverse,
                (last_decrement, tol),
            ) else {
                ok = false;
                break;
            };
            if decrement.is_nan() || decrement <= tol || (fresh && decrement < -tol) {
                break;
            }
            last_decrement = decrement;
            let mut t = 1.0;
            let mut accepted = false;
            for _ in 0..40 {
                let trial: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b - t * s).collect();
                let trial_off = prob.linear_predictor(&trial);
                let mut trial_u = u.clone();
                let trial_ev = prob.evaluate(sc, &trial_off, &mut trial_u);
                if trial_ev.deviance.is_finite()
                    && trial_ev.deviance <= ev.deviance + 1e-13 * ev.deviance.abs()
                {
                    *beta = trial;
                    off = trial_off;
                    *u = trial_u;
                    ok &= trial_ev.modes_converged;
                    ev = trial_ev;
                    accepted = true;
                    break;
                }
                t *= 0.5;
                inverse = None;
            }
            if !accepted {
                break;
            }
        }
        *converged &= ok;
        ev.deviance
    }
}

/// The quasi-Newton β step −H⁻¹g and its decrement g'H⁻¹g, with whether H
/// is fresh. `inverse` is kept between steps and refreshed (the exact
/// β-Hessian where `hessian.rs` has one, the Schur complement otherwise) when
/// there is none, when the kept one gives no descent direction, or when the
/// decrement (above `tol`, convergence) fell by less than a factor of 100
/// since `last_decrement` (a stale Hessian far from the optimum converges
/// only linearly). None when the Hessian is singular.
fn beta_step(
    prob: &Problem<'_>,
    sc: &Scales,
    (off, u, ev): (&[f64], &[f64], &Evaluation),
    grad: &[f64],
    inverse: &mut Option<Vec<f64>>,
    (last_decrement, tol): (f64, f64),
) -> Option<(Vec<f64>, f64, bool)> {
    let mut fresh = false;
    loop {
        if inverse.is_none() {
            let hess = prob
                .laplace_beta_hessian(sc, off, u, ev)
                .unwrap_or_else(|| prob.schur_hessian(sc, off, u, ev));
            let inv = ranked_inverse(&hess, prob.p, COLLINEARITY_TOL);
            if !inv.dropped.is_empty() {
                return None;
            }
            *inverse = Some(inv.inverse);
            fresh = true;
        }
        let step = mat_vec(inverse.as_deref().unwrap_or_default(), prob.p, prob.p, grad);
        let decrement: f64 = grad.iter().zip(&step).map(|(g, s)| g * s).sum();
        let slow = decrement > tol && decrement > 1e-2 * last_decrement;
        if fresh || !(decrement < -tol || slow) {
            return Some((step, decrement, fresh));
        }
        *inverse = None;
    }
}

impl CostFunction for &Profile<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, phi: &Self::Param) -> Result<f64, argmin::core::Error> {
        let sc = self.scales(phi);
        let d = self.profile_beta(&sc);
        Ok(if d.is_finite() { d } else { f64::MAX })
    }
}

/// Fits the model: start values, Nelder–Mead over φ, then the Hessian.
pub(super) fn fit(
    spec: &Glmm,
    design: &Design,
    grouping: Grouping<'_>,
    slope: Option<usize>,
    start: Option<&GlmmStart>,
) -> Result<GlmmFit, ModelError> {
    let prob = problem(spec, design, grouping, slope);
    let identity = spec.family == GlmmFamily::Identity;
    let phi0 = match start {
        Some(s) => s.phi.clone(),
        None => initial_phi(&prob, identity),
    };
    let beta0 = match start {
        Some(s) => s.beta.clone(),
        None => vec![0.0; prob.p],
    };
    let start_u = start
        .map(|s| s.u.clone())
        .filter(|u| u.len() == grouping.levels * prob.q())
        .unwrap_or_else(|| vec![0.0; grouping.levels * prob.q()]);
    let profile = Profile {
        prob: &prob,
        identity,
        state: RefCell::new(Inner {
            beta: beta0,
            u: start_u,
            converged: true,
        }),
    };
    // Newton on the profiled deviance; Nelder–Mead from where it stopped
    // when it does not converge (a boundary fit, an indefinite curvature).
    let newton = super::outer::newton_profile(&profile, phi0, NEWTON_ITERATIONS);
    let (phi, optimizer_done, evaluations) = if newton.converged {
        (newton.phi, true, newton.iterations)
    } else {
        let (phi, done, nm) = nelder_mead(&profile, newton.phi, spec.max_evaluations)?;
        (phi, done, newton.iterations + nm)
    };
    let known = newton.last;
    // Re-profile at the optimum so β and the modes belong to it (Newton's
    // converged point is the last one profiled).
    if !newton.converged {
        profile.profile_beta(&profile.scales(&phi));
    }
    super::fit_summary::summarize(
        spec,
        design,
        &prob,
        &profile_parts(&profile),
        &phi,
        super::fit_summary::Outer {
            converged: optimizer_done,
            iterations: evaluations,
            known: known.as_ref(),
        },
    )
}

/// Profiled Nelder–Mead from `phi0` with a small simplex: (φ, whether it
/// converged, iterations).
fn nelder_mead(
    profile: &Profile<'_>,
    phi0: Vec<f64>,
    max_iters: u64,
) -> Result<(Vec<f64>, bool, u64), ModelError> {
    let simplex: Vec<Vec<f64>> = std::iter::once(phi0.clone())
        .chain((0..phi0.len()).map(|k| {
            let mut v = phi0.clone();
            v[k] += 0.05;
            v
        }))
        .collect();
    let initial_scale = (&profile).cost(&phi0).map_or(1.0, |d| d.abs().max(1.0));
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(1e-10 * initial_scale)
        .map_err(|e| not_converged(&e.to_string()))?;
    let result = Executor::new(profile, solver)
        .configure(|s| s.max_iters(max_iters))
        .run()
        .map_err(|e| not_converged(&e.to_string()))?;
    let state = result.state();
    let phi = state.get_best_param().cloned().unwrap_or(phi0);
    Ok((phi, state.get_iter() < max_iters, state.get_iter()))
}

/// The objective's data, borrowed from the design.
pub(super) fn problem<'a>(
    spec: &Glmm,
    design: &'a Design,
    grouping: Grouping<'a>,
    slope: Option<usize>,
) -> Problem<'a> {
    Problem {
        y: design.y.as_slice().unwrap_or(&[]),
        x: design.x.as_slice_memory_order().unwrap_or(&[]),
        n: design.nobs(),
        p: design.ncols(),
        weights: design.weights.as_ref().and_then(|w| w.as_slice()),
        group: grouping.codes,
        groups: grouping.levels,
        slope: slope.map(|j| design.column(j)),
        family: spec.family,
        rule: gauss_hermite(spec.quadrature),
    }
}

/// See [`Glmm::deviance_at`].
pub(super) fn deviance_at(
    spec: &Glmm,
    design: &Design,
    grouping: Grouping<'_>,
    slope: Option<usize>,
    theta: &[f64],
    sigma: f64,
    beta: &[f64],
) -> f64 {
    let prob = problem(spec, design, grouping, slope);
    let mut lambda = [0.0; 3];
    for (l, t) in lambda.iter_mut().zip(theta) {
        *l = t * sigma;
    }
    let sc = Scales { lambda, sigma };
    deviance_and_gradient(&prob, &sc, beta, &vec![0.0; prob.groups * prob.q()], false).0
}

/// β and the modes at the optimum, and whether every inner step converged.
#[derive(Clone)]
pub(super) struct Optimum {
    pub beta: Vec<f64>,
    pub u: Vec<f64>,
    pub inner_converged: bool,
    pub identity: bool,
}

fn profile_parts(profile: &Profile<'_>) -> Optimum {
    let st = profile.state.borrow();
    Optimum {
        beta: st.beta.clone(),
        u: st.u.clone(),
        inner_converged: st.converged,
        identity: profile.identity,
    }
}

/// Maps the optimizer's vector to scales (shared with the summary).
pub(super) fn scales_of(prob: &Problem<'_>, identity: bool, phi: &[f64]) -> Scales {
    scales_for(prob.q(), identity, phi)
}

/// φ (log L11, [L21, L22], [log σ]) to Λ and σ for `q` random effects,
/// the log-SDs floored at [`LOG_SD_FLOOR`].
///
/// L22 is not logged: the deviance depends on Λ through ΛΛ' only, so it is
/// an even, smooth function of L22, and Λ takes |L22| (lme4's θ ≥ 0). A
/// correlation of ±1 (L22 = 0) is then an interior point where Newton
/// converges quadratically, not log L22 → −∞, which Newton approaches by a
/// constant step per iteration and never reaches.
pub(super) fn scales_for(q: usize, identity: bool, phi: &[f64]) -> Scales {
    let lsd = |v: f64| v.max(LOG_SD_FLOOR).exp();
    let lambda = if q == 2 {
        [lsd(phi[0]), phi[1], phi[2].abs()]
    } else {
        [lsd(phi[0]), 0.0, 0.0]
    };
    let sigma = if identity {
        lsd(phi[phi.len() - 1])
    } else {
        1.0
    };
    Scales { lambda, sigma }
}

fn not_converged(why: &str) -> ModelError {
    ModelError::Unidentified {
        what: format!("the variance-parameter optimizer failed: {why}"),
    }
}

/// σ_u = 1 for binary outcomes (lme4's θ = 1); for the identity link σ_u and
/// σ from a half split of the outcome's variance.
fn initial_phi(prob: &Problem<'_>, identity: bool) -> Vec<f64> {
    let mut phi = vec![0.0];
    if prob.q() == 2 {
        // L21 = 0, L22 = 1: σ_v = 1, ρ = 0.
        phi.extend([0.0, 1.0]);
    }
    if identity {
        let n = prob.n as f64;
        let mean = prob.y.iter().sum::<f64>() / n;
        let var = prob.y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let half = (0.5 * var.max(1e-12)).sqrt().ln();
        phi[0] = half;
        phi.push(half);
    }
    phi
}

/// Evaluates the deviance and its β-gradient at (φ, β) with fresh modes
/// warm-started from `u`.
pub(super) fn deviance_and_gradient(
    prob: &Problem<'_>,
    sc: &Scales,
    beta: &[f64],
    u: &[f64],
    want_gradient: bool,
) -> (f64, Vec<f64>, Evaluation, Vec<f64>) {
    let off = prob.linear_predictor(beta);
    let mut uu = u.to_vec();
    let ev = prob.evaluate(sc, &off, &mut uu);
    let grad = if want_gradient {
        prob.gradient(sc, &off, &uu, &ev)
    } else {
        Vec::new()
    };
    (ev.deviance, grad, ev, uu)
}

/// The profiled deviance at fixed φ from β = `beta0`: (D, β̂(φ), modes).
#[cfg(test)]
pub(super) fn profile_at(
    prob: &Problem<'_>,
    identity: bool,
    phi: &[f64],
    beta0: Vec<f64>,
) -> (f64, Vec<f64>, Vec<f64>) {
    let profile = Profile {
        prob,
        identity,
        state: RefCell::new(Inner {
            beta: beta0,
            u: vec![0.0; prob.groups * prob.q()],
            converged: true,
        }),
    };
    let d = profile.profile_beta(&profile.scales(phi));
    let st = profile.state.into_inner();
    (d, st.beta, st.u)
}

/// Newton on the profile from `phi0` and then Nelder–Mead from Newton's end
/// (as a check that Newton stopped at the optimum): Newton's end, and the
/// profiled deviances at Newton's φ and at Nelder–Mead's.
#[cfg(test)]
pub(super) fn newton_then_nelder_mead(
    prob: &Problem<'_>,
    identity: bool,
    phi0: Vec<f64>,
) -> (super::outer::NewtonEnd, f64, f64) {
    let profile = Profile {
        prob,
        identity,
        state: RefCell::new(Inner {
            beta: vec![0.0; prob.p],
            u: vec![0.0; prob.groups * prob.q()],
            converged: true,
        }),
    };
    let newton = super::outer::newton_profile(&profile, phi0, NEWTON_ITERATIONS);
    let d_newton = profile.profile_beta(&profile.scales(&newton.phi));
    let (phi, _, _) = nelder_mead(&profile, newton.phi.clone(), 2_000).expect("Nelder–Mead");
    let d_nm = profile.profile_beta(&profile.scales(&phi));
    (newton, d_newton, d_nm)
}
