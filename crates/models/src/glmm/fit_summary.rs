//! From the optimum to a [`GlmmFit`]: the gradient check, the Hessian of the
//! deviance over (φ, β) (the β-β block exact where there is a closed form,
//! differences of the analytic β-gradient otherwise, and second differences
//! in φ), standard errors, conditional modes and
//! their covariances, and the warnings.

use super::fit::{BOUNDARY_SD, Optimum, deviance_and_gradient, scales_of};
use super::objective::{Problem, Scales};
use super::outer::Derivatives;
use super::{Glmm, GlmmFit, GlmmStart};
use crate::design::Design;
use crate::error::ModelError;
use crate::linalg::{COLLINEARITY_TOL, ranked_inverse};

/// Step of the central differences in β (relative) and φ.
const STEP_BETA: f64 = 1e-4;
const STEP_PHI: f64 = 1e-4;
/// Gradient above which the fit is flagged (deviance units).
const GRADIENT_WARN: f64 = 1e-3;

/// How the variance-parameter optimizer ended.
pub(super) struct Outer<'a> {
    /// Whether it met its convergence criterion.
    pub converged: bool,
    /// Its iterations (Newton's plus Nelder–Mead's).
    pub iterations: u64,
    /// Newton's derivatives at its converged point, if it converged there.
    pub known: Option<&'a Derivatives>,
}

/// Assembles the fit at the optimum `phi`, `opt`. `outer.known`: the derivatives of
/// Newton's converged last iteration at this point; without them (after
/// Nelder–Mead, which stops on a tolerance in the deviance rather than at a
/// stationary point) one joint Newton step on (φ, β) is taken first.
pub(super) fn summarize(
    spec: &Glmm,
    design: &Design,
    prob: &Problem<'_>,
    opt: &Optimum,
    phi: &[f64],
    outer: Outer<'_>,
) -> Result<GlmmFit, ModelError> {
    let Outer {
        converged: optimizer_done,
        iterations: evaluations,
        known,
    } = outer;
    let q = prob.q();
    let mut opt = opt.clone();
    let mut phi = phi.to_vec();
    let hess = (spec.standard_errors && !at_boundary(prob, &opt, &phi)).then(|| {
        if known.is_some() {
            joint_hessian(prob, &opt, &phi, &opt.u, known)
        } else {
            polish(prob, &mut opt, &mut phi)
        }
    });
    let phi = &phi[..];
    let opt = &opt;
    let sc = scales_of(prob, opt.identity, phi);
    let (deviance, grad_beta, ev, u) = deviance_and_gradient(prob, &sc, &opt.beta, &opt.u, true);
    let [l11, l21, l22] = sc.lambda;
    let (slope_sd, correlation) = match (q == 2).then(|| sc.slope_sd_and_correlation()) {
        Some((sv, r)) => (Some(sv), Some(r)),
        None => (None, None),
    };
    let boundary = boundary_of(&sc, q);
    // φ-gradient by central differences (β fixed); none at a floored σ.
    let mut phi_grad = match known {
        Some(d) => d.grad.clone(),
        None => phi_gradient(prob, opt, phi, &u),
    };
    phi_grad.truncate(phi.len());
    if boundary && phi[0] <= -11.0 {
        phi_grad[0] = 0.0;
    }
    let gradient = grad_beta
        .iter()
        .chain(&phi_grad)
        .fold(0.0_f64, |m, g| m.max(g.abs()));
    let mut warnings = Vec::new();
    let converged = optimizer_done && opt.inner_converged;
    if !optimizer_done {
        warnings.push(format!("the variance-parameter optimizer stopped after {evaluations} iterations without converging"));
    }
    if !opt.inner_converged {
        warnings.push("the penalized IRLS for the conditional modes or the fixed effects did not converge at every step".into());
    }
    if gradient > GRADIENT_WARN * deviance.abs().max(1.0).sqrt() {
        warnings.push(format!("the deviance's gradient at the optimum is {gradient:.2e}; the fit may not be at the optimum"));
    }
    if boundary {
        warnings.push(boundary_message(l11, slope_sd, correlation));
    }
    let (vcov, var_phi, psi_covariance) = if spec.standard_errors {
        let (vcov, var_phi, full, fallback) = covariance(
            prob,
            opt,
            phi,
            &u,
            if boundary { None } else { hess.as_deref() },
            &ev,
        );
        if fallback && !boundary {
            warnings.push(
                "the deviance's Hessian is not positive definite at the optimum (a variance parameter is close to \
                 its boundary): no intervals for the variance parameters, and the fixed effects' standard errors \
                 are conditional on them"
                    .into(),
            );
        }
        (vcov, var_phi, Some(full))
    } else {
        (vec![f64::NAN; prob.p * prob.p], None, None)
    };
    let se: Vec<f64> = (0..prob.p).map(|j| vcov[j * prob.p + j].sqrt()).collect();
    let sd_se = |k: usize| var_phi.as_ref().map(|v| v[k * phi.len() + k].sqrt());
    let (log_slope_sd_se, atanh_correlation_se) = match (&var_phi, slope_sd, correlation) {
        (Some(v), Some(sv), Some(r)) if q == 2 => {
            let m = phi.len();
            // log σ_v and ρ as functions of (L21, L22), L22 = φ₂ with its
            // sign (Λ holds |φ₂|).
            let l22 = phi[2];
            let gs = [l21 / (sv * sv), l22 / (sv * sv)];
            let gr = [l22 * l22 / sv.powi(3), -l21 * l22 / sv.powi(3)];
            let quad = |g: [f64; 2]| {
                (g[0] * g[0] * v[m + 1] + 2.0 * g[0] * g[1] * v[m + 2] + g[1] * g[1] * v[2 * m + 2])
                    .sqrt()
            };
            (Some(quad(gs)), Some(quad(gr) / (1.0 - r * r)))
        }
        _ => (None, None),
    };
    let modes = prob.b_modes(&sc, &u);
    let mode_covariance = ev.h.iter().map(|h| prob.b_covariance(&sc, h)).collect();
    let theta = if q == 2 {
        vec![l11, l21, l22]
    } else {
        vec![l11]
    };
    Ok(GlmmFit {
        family: spec.family,
        quadrature: spec.quadrature,
        names: design.names.clone(),
        coef: opt.beta.clone(),
        vcov,
        se,
        intercept_sd: l11,
        slope_sd,
        correlation,
        residual_sd: opt.identity.then_some(sc.sigma),
        log_intercept_sd_se: if boundary { None } else { sd_se(0) },
        log_slope_sd_se,
        atanh_correlation_se,
        theta: theta.iter().map(|t| t / sc.sigma).collect(),
        modes,
        mode_covariance,
        deviance,
        converged,
        evaluations,
        gradient,
        boundary,
        warnings,
        nobs: prob.n,
        groups: prob.groups,
        start: GlmmStart {
            phi: phi.to_vec(),
            beta: opt.beta.clone(),
            u,
        },
        psi_covariance,
    })
}

/// Whether φ puts a variance parameter at the boundary.
fn at_boundary(prob: &Problem<'_>, opt: &Optimum, phi: &[f64]) -> bool {
    boundary_of(&scales_of(prob, opt.identity, phi), prob.q())
}

/// σ_u or σ_v below [`BOUNDARY_SD`], or |ρ| within 1e-6 of 1.
fn boundary_of(sc: &Scales, q: usize) -> bool {
    let (sv, r) = sc.slope_sd_and_correlation();
    sc.lambda[0] < BOUNDARY_SD || (q == 2 && (sv < BOUNDARY_SD || r.abs() > 1.0 - 1e-6))
}

fn boundary_message(l11: f64, slope_sd: Option<f64>, correlation: Option<f64>) -> String {
    let mut parts = Vec::new();
    if l11 < BOUNDARY_SD {
        parts.push("the hospital SD σ_u is 0".to_string());
    }
    if slope_sd.is_some_and(|s| s < BOUNDARY_SD) {
        parts.push("the slope SD σ_v is 0".to_string());
    }
    if let Some(r) = correlation.filter(|r| r.abs() > 1.0 - 1e-6) {
        parts.push(format!("the intercept–slope correlation is {r:.4}"));
    }
    format!(
        "boundary (singular) fit: {}; the variance parameter is not identified from these data, and the fixed effects' standard errors are conditional on it",
        parts.join(", ")
    )
}

/// The Hessian of the deviance over ψ = (φ, β): the β-β block exact
/// ([`Problem::laplace_beta_hessian`]) or from forward differences of the
/// analytic β-gradient, the φ-β rows from forward differences of the
/// gradient, the φ-φ block from second differences of the deviance (β fixed).
/// With `known`, the derivatives of Newton's last iteration at this point
/// (exact β-β block, central φ-β rows and φ-φ diagonal), only the φ-φ
/// off-diagonal is computed here.
fn joint_hessian(
    prob: &Problem<'_>,
    opt: &Optimum,
    phi: &[f64],
    u: &[f64],
    known: Option<&Derivatives>,
) -> Vec<f64> {
    let p = prob.p;
    let m = phi.len();
    let dim = m + p;
    let mut hess = vec![0.0; dim * dim];
    if let Some(d) = known {
        for a in 0..p {
            for b in 0..p {
                hess[(m + a) * dim + m + b] = d.beta_hessian[a * p + b];
            }
            for k in 0..m {
                hess[(m + a) * dim + k] = d.beta_phi[a * m + k];
                hess[k * dim + m + a] = d.beta_phi[a * m + k];
            }
        }
        for k in 0..m {
            hess[k * dim + k] = d.phi_phi[k * m + k];
        }
        phi_phi_block(prob, opt, phi, u, &mut hess, false);
        return hess;
    }
    let sc = scales_of(prob, opt.identity, phi);
    let (_, base, ev, modes) = deviance_and_gradient(prob, &sc, &opt.beta, u, true);
    // The β-β block in closed form where there is one (logit, identity with
    // the Laplace approximation); differences of the gradient otherwise.
    let exact = prob.laplace_beta_hessian(&sc, &prob.linear_predictor(&opt.beta), &modes, &ev);
    if let Some(block) = &exact {
        for a in 0..p {
            for b in 0..p {
                hess[(m + a) * dim + m + b] = block[a * p + b];
            }
        }
    }
    let differenced = if exact.is_some() { m } else { dim };
    for j in 0..differenced {
        let h = if j < m {
            STEP_PHI
        } else {
            STEP_BETA * opt.beta[j - m].abs().max(1.0)
        };
        let grad_at = |sign: f64| {
            let mut ph = phi.to_vec();
            let mut be = opt.beta.clone();
            if j < m {
                ph[j] += sign * h;
            } else {
                be[j - m] += sign * h;
            }
            deviance_and_gradient(prob, &scales_of(prob, opt.identity, &ph), &be, u, true).1
        };
        let (gp, gm) = (grad_at(1.0), &base);
        for b in 0..p {
            let v = (gp[b] - gm[b]) / h;
            if j < m {
                hess[(m + b) * dim + j] = v;
                hess[j * dim + m + b] = v;
            } else {
                hess[(m + b) * dim + j] += 0.5 * v;
                hess[j * dim + m + b] += 0.5 * v;
            }
        }
    }
    phi_phi_block(prob, opt, phi, u, &mut hess, true);
    hess
}

/// The φ-φ block of the joint Hessian by second differences of the
/// deviance (β fixed, h = 1e-3): the diagonal only when `diagonal`, and the
/// off-diagonal by the four-point central formula.
fn phi_phi_block(
    prob: &Problem<'_>,
    opt: &Optimum,
    phi: &[f64],
    u: &[f64],
    hess: &mut [f64],
    diagonal: bool,
) {
    let m = phi.len();
    let dim = m + prob.p;
    let dev = |ph: &[f64]| {
        deviance_and_gradient(
            prob,
            &scales_of(prob, opt.identity, ph),
            &opt.beta,
            u,
            false,
        )
        .0
    };
    let h = 1e-3;
    let d0 = if diagonal { dev(phi) } else { 0.0 };
    for a in 0..m {
        for b in 0..=a {
            if a == b && !diagonal {
                continue;
            }
            let shifted = |sa: f64, sb: f64| {
                let mut v = phi.to_vec();
                v[a] += sa * h;
                v[b] += sb * h;
                dev(&v)
            };
            let value = if a == b {
                (shifted(0.5, 0.5) - 2.0 * d0 + shifted(-0.5, -0.5)) / (h * h)
            } else {
                (shifted(1.0, 1.0) - shifted(1.0, -1.0) - shifted(-1.0, 1.0) + shifted(-1.0, -1.0))
                    / (4.0 * h * h)
            };
            hess[a * dim + b] = value;
            hess[b * dim + a] = value;
        }
    }
}

/// The φ-gradient by central differences (β fixed), the modes at φ − h e_k
/// starting from 2û − u₊ (exact to O(h²), so one pass suffices for the
/// logit), `u` the modes at φ.
fn phi_gradient(prob: &Problem<'_>, opt: &Optimum, phi: &[f64], u: &[f64]) -> Vec<f64> {
    let off = prob.linear_predictor(&opt.beta);
    (0..phi.len())
        .map(|k| {
            let mut v = phi.to_vec();
            v[k] += STEP_PHI;
            let mut plus = u.to_vec();
            let dp = prob
                .evaluate(&scales_of(prob, opt.identity, &v), &off, &mut plus)
                .deviance;
            v[k] -= 2.0 * STEP_PHI;
            let mut minus = super::objective::extrapolated_modes(u, u, &plus);
            let dm = prob
                .evaluate_predicted(&scales_of(prob, opt.identity, &v), &off, &mut minus)
                .deviance;
            (dp - dm) / (2.0 * STEP_PHI)
        })
        .collect()
}

/// One Newton step on ψ from the optimizer's answer (the Nelder–Mead simplex
/// stops at a tolerance on the deviance, not on ψ), kept when it lowers the
/// deviance. Returns the Hessian at the (new) point for the covariance.
fn polish(prob: &Problem<'_>, opt: &mut Optimum, phi: &mut Vec<f64>) -> Vec<f64> {
    let m = phi.len();
    let hess = joint_hessian(prob, opt, phi, &opt.u.clone(), None);
    let inv = ranked_inverse(&hess, m + prob.p, 1e-12);
    if !inv.dropped.is_empty() {
        return hess;
    }
    let sc = scales_of(prob, opt.identity, phi);
    let (d0, grad_beta, ..) = deviance_and_gradient(prob, &sc, &opt.beta, &opt.u, true);
    let mut grad = phi_gradient(prob, opt, phi, &opt.u);
    grad.extend(grad_beta);
    let step = crate::linalg::mat_vec(&inv.inverse, m + prob.p, m + prob.p, &grad);
    let new_phi: Vec<f64> = phi.iter().zip(&step).map(|(a, s)| a - s).collect();
    let new_beta: Vec<f64> = opt
        .beta
        .iter()
        .zip(&step[m..])
        .map(|(a, s)| a - s)
        .collect();
    let (d1, _, _, u1) = deviance_and_gradient(
        prob,
        &scales_of(prob, opt.identity, &new_phi),
        &new_beta,
        &opt.u,
        false,
    );
    if d1 < d0 {
        *phi = new_phi;
        opt.beta = new_beta;
        opt.u = u1;
    }
    hess
}

/// Covariance of β and of φ: 2 × the inverse Hessian of the deviance over
/// ψ = (φ, β), and that full matrix for one-step replicates. Without a
/// positive-definite Hessian (`hess` None at a boundary, or singular near
/// one), β's covariance comes from the Schur complement at the optimum, φ has
/// none, and the one-step matrix holds φ fixed (zero rows and columns); the
/// returned flag says the fallback was taken.
fn covariance(
    prob: &Problem<'_>,
    opt: &Optimum,
    phi: &[f64],
    u: &[f64],
    hess: Option<&[f64]>,
    ev: &super::objective::Evaluation,
) -> (Vec<f64>, Option<Vec<f64>>, Vec<f64>, bool) {
    let p = prob.p;
    let m = phi.len();
    let dim = m + p;
    if let Some(hess) = hess {
        let inv = ranked_inverse(hess, dim, 1e-12);
        let positive = inv.dropped.is_empty() && (0..dim).all(|k| inv.inverse[k * dim + k] > 0.0);
        if positive {
            let full: Vec<f64> = inv.inverse.iter().map(|v| 2.0 * v).collect();
            let block = |o: usize, k: usize| -> Vec<f64> {
                (0..k)
                    .flat_map(|a| (0..k).map(move |b| (a, b)))
                    .map(|(a, b)| full[(o + a) * dim + o + b])
                    .collect()
            };
            return (block(m, p), Some(block(0, m)), full, false);
        }
    }
    let sc = scales_of(prob, opt.identity, phi);
    let off = prob.linear_predictor(&opt.beta);
    let schur = prob.schur_hessian(&sc, &off, u, ev);
    let inv = ranked_inverse(&schur, p, COLLINEARITY_TOL);
    let vcov: Vec<f64> = inv.inverse.iter().map(|v| 2.0 * v).collect();
    let mut full = vec![0.0; dim * dim];
    for a in 0..p {
        for b in 0..p {
            full[(m + a) * dim + m + b] = vcov[a * p + b];
        }
    }
    (vcov, None, full, true)
}

impl GlmmFit {
    /// The model as reported in results.json `models`: the fixed effects with
    /// their Hessian-based Wald intervals (normal quantiles), and the grouping
    /// factor `group` named as the random effect.
    pub fn summary(&self, label: &str, group: &str, level: f64) -> crate::ModelSummary {
        use statrs::distribution::{ContinuousCDF, Normal};
        let z = Normal::standard().inverse_cdf(1.0 - (1.0 - level) / 2.0);
        let coefficients = self
            .names
            .iter()
            .zip(self.coef.iter().zip(&self.se))
            .map(|(name, (b, se))| crate::CoefficientRow {
                term: name.clone(),
                estimate: *b,
                se: *se,
                p_value: 2.0 * Normal::standard().sf((b / se).abs()),
                ci_low: b - z * se,
                ci_high: b + z * se,
            })
            .collect();
        let re = if self.slope_sd.is_some() {
            "random intercept and group slope"
        } else {
            "random intercept"
        };
        crate::ModelSummary {
            label: format!("{label}, {re} by {group}"),
            family: self.family.name().replace("identity", "linear"),
            n: Some(self.nobs),
            clusters: Some(self.groups),
            vcov: if self.quadrature > 1 {
                format!("Hessian (AGQ, {} nodes)", self.quadrature)
            } else {
                "Hessian (Laplace)".into()
            },
            converged: self.converged,
            iterations: self.evaluations as usize,
            absorbed: vec![format!("{group} ({re}, {} levels)", self.groups)],
            coefficients,
        }
    }
}
