//! What resampling needs from a fitted GLMM: each group's contribution to
//! the deviance's gradient at the optimum (for one-step bootstrap updates),
//! the one-step update itself, and the conditional modes at given parameters.
//!
//! One-step hospital bootstrap: a replicate that draws group h m_h times has
//! deviance D*(ψ) = Σ_h m_h D_h(ψ), so its gradient at ψ̂ is Σ_h m_h G_h with
//! G_h = ∂D_h/∂ψ(ψ̂), and one Newton step with the full-sample Hessian gives
//! ψ* = ψ̂ − H⁻¹ Σ_h m_h G_h (H⁻¹ = V/2). This is the linearized bootstrap
//! (an approximation the caller declares); the modes are then re-solved
//! exactly at ψ*.

use super::fit::{deviance_and_gradient, problem, scales_for, scales_of};
use super::{Glmm, GlmmFamily, GlmmFit, GlmmStart, Grouping};
use crate::design::Design;

/// Step of the central differences in φ.
const STEP_PHI: f64 = 1e-4;

/// Variance parameters on their natural scales.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarianceParameters {
    /// σ_u.
    pub intercept_sd: f64,
    /// σ_v (with a slope).
    pub slope_sd: Option<f64>,
    /// ρ (with a slope).
    pub correlation: Option<f64>,
    /// Residual SD (identity link).
    pub residual_sd: Option<f64>,
}

impl GlmmStart {
    /// σ_u, σ_v, ρ and σ from φ (log L11, [L21, L22], [log σ]).
    pub fn variance_parameters(&self, slope: bool, family: GlmmFamily) -> VarianceParameters {
        let identity = family == GlmmFamily::Identity;
        let sc = scales_for(if slope { 2 } else { 1 }, identity, &self.phi);
        let (slope_sd, correlation) = sc.slope_sd_and_correlation();
        VarianceParameters {
            intercept_sd: sc.lambda[0],
            slope_sd: slope.then_some(slope_sd),
            correlation: slope.then_some(correlation),
            residual_sd: identity.then_some(sc.sigma),
        }
    }
}

/// x_iβ for every row of the design (in parallel over row blocks).
pub fn linear_predictor(design: &Design, beta: &[f64]) -> Vec<f64> {
    let x = design.x.as_slice_memory_order().unwrap_or(&[]);
    super::objective::linear_predictor(x, design.nobs(), beta)
}

impl Glmm {
    /// Each group's G_h = ∂D_h/∂ψ at the fit's optimum (groups × (φ + β),
    /// row-major): φ by central differences of the group's deviance term
    /// (modes re-solved, β fixed), β exact.
    pub fn group_scores(
        &self,
        design: &Design,
        grouping: Grouping<'_>,
        slope: Option<usize>,
        fit: &GlmmFit,
    ) -> Vec<f64> {
        let prob = problem(self, design, grouping, slope);
        let identity = self.family == GlmmFamily::Identity;
        let st = &fit.start;
        let m = st.phi.len();
        let dim = m + prob.p;
        let mut scores = vec![0.0; prob.groups * dim];
        let sc = scales_of(&prob, identity, &st.phi);
        let off = prob.linear_predictor(&st.beta);
        let mut u = st.u.clone();
        let ev = prob.evaluate(&sc, &off, &mut u);
        let gb = prob.group_gradients(&sc, &off, &u, &ev);
        for k in 0..m {
            let at = |h: f64| {
                let mut phi = st.phi.clone();
                phi[k] += h;
                deviance_and_gradient(
                    &prob,
                    &scales_of(&prob, identity, &phi),
                    &st.beta,
                    &st.u,
                    false,
                )
                .2
                .groups
            };
            let (plus, minus) = (at(STEP_PHI), at(-STEP_PHI));
            for g in 0..prob.groups {
                scores[g * dim + k] = (plus[g] - minus[g]) / (2.0 * STEP_PHI);
            }
        }
        for g in 0..prob.groups {
            scores[g * dim + m..(g + 1) * dim].copy_from_slice(&gb[g * prob.p..(g + 1) * prob.p]);
        }
        scores
    }

    /// The one-step update ψ* = ψ̂ − ½V Σ_h m_h G_h for group multiplicities
    /// `m` (None without the Hessian, i.e. at a boundary fit).
    pub fn one_step(&self, fit: &GlmmFit, scores: &[f64], m: &[f64]) -> Option<GlmmStart> {
        let v = fit.psi_covariance.as_ref()?;
        let st = &fit.start;
        let np = st.phi.len();
        let dim = np + st.beta.len();
        let mut g = vec![0.0; dim];
        for (h, mh) in m.iter().enumerate() {
            if *mh != 0.0 {
                for (a, s) in g.iter_mut().zip(&scores[h * dim..(h + 1) * dim]) {
                    *a += mh * s;
                }
            }
        }
        let step: Vec<f64> = (0..dim)
            .map(|a| 0.5 * (0..dim).map(|b| v[a * dim + b] * g[b]).sum::<f64>())
            .collect();
        Some(GlmmStart {
            phi: st.phi.iter().zip(&step).map(|(p, s)| p - s).collect(),
            beta: st
                .beta
                .iter()
                .zip(&step[np..])
                .map(|(b, s)| b - s)
                .collect(),
            u: st.u.clone(),
        })
    }

    /// Conditional modes b_h and their covariances [var0, cov, var1] at the
    /// parameters of `at` (modes warm-started from `at.u`).
    pub fn modes_at(
        &self,
        design: &Design,
        grouping: Grouping<'_>,
        slope: Option<usize>,
        at: &GlmmStart,
    ) -> (Vec<[f64; 2]>, Vec<[f64; 3]>) {
        let prob = problem(self, design, grouping, slope);
        let sc = scales_of(&prob, self.family == GlmmFamily::Identity, &at.phi);
        let (_, _, ev, u) = deviance_and_gradient(&prob, &sc, &at.beta, &at.u, false);
        let modes = prob.b_modes(&sc, &u);
        let cov = ev.h.iter().map(|h| prob.b_covariance(&sc, h)).collect();
        (modes, cov)
    }
}
