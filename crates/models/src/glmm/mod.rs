//! Generalized linear mixed models with one grouping factor (hospital): a
//! random intercept and optionally a correlated random slope on a 0/1 column
//! (the comparison-group indicator), for the logit, probit and identity links.
//!
//! y_i | b_h ~ F(x_iβ + b_h0 + s_i b_h1), b_h ~ N(0, ΛΛ'), Λ lower triangular.
//!
//! Fitted as lme4's `glmer` (Bates, Mächler, Bolker & Walker 2015, J Stat
//! Softw 67(1)): conditional modes by penalized IRLS inside; the Laplace
//! approximation, or adaptive Gauss–Hermite quadrature with k nodes for the
//! random-intercept model (`nAGQ = k`); the objective minimized jointly over
//! the variance parameters and β (lme4's second stage). Here β is profiled by
//! a Newton iteration with the exact β-gradient (see [`objective`]), and the
//! variance parameters are optimized on a Cholesky scale with the SDs logged
//! (log L11, L21, L22, and log σ for the identity link; L22 is not logged
//! because the deviance is even in it, so a correlation of ±1 is the
//! interior point L22 = 0, see `fit::scales_for`) by Newton's method on the
//! profiled deviance (derivatives by differences in φ and the exact β-Hessian,
//! see outer.rs), with argmin's Nelder–Mead — a small-vector problem as
//! STACK.md describes — taking over where Newton does not converge (a
//! boundary fit).
//!
//! Standard errors: the inverse Hessian of the deviance over (variance
//! parameters, β), as lme4's default `vcov` for `glmer` (`use.hessian =
//! TRUE`). The β-β block is exact for the logit and identity links with the
//! Laplace approximation (see hessian.rs); the rows of the variance
//! parameters, and every row for the probit and adaptive quadrature, come
//! from differences of the analytic gradient. At a boundary fit (σ = 0)
//! the Hessian is singular in the variance parameter, so β's covariance comes
//! from the penalized-IRLS Schur complement instead, with a warning.

mod fit;
mod fit_summary;
mod hessian;
mod outer;
mod resample;
pub use resample::{VarianceParameters, linear_predictor};
pub(crate) mod objective;
pub mod quadrature;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::design::Design;
use crate::error::ModelError;

/// Family and link of a GLMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GlmmFamily {
    /// Binary outcome, logistic link.
    Logit,
    /// Binary outcome, probit link.
    Probit,
    /// Continuous outcome, Gaussian with identity link (fitted by maximum
    /// likelihood, as `lmer(..., REML = FALSE)`).
    Identity,
}

impl GlmmFamily {
    /// The inverse link: the mean at linear predictor η.
    pub fn mean(self, eta: f64) -> f64 {
        match self {
            GlmmFamily::Logit => crate::glm::Link::Logit.cdf(eta),
            GlmmFamily::Probit => crate::glm::Link::Probit.cdf(eta),
            GlmmFamily::Identity => eta,
        }
    }

    /// The variance of the latent residual on the linear-predictor scale
    /// (π²/3 for the logit, 1 for the probit), for the ICC; None for the
    /// identity link, whose residual variance is estimated.
    pub fn latent_variance(self) -> Option<f64> {
        match self {
            GlmmFamily::Logit => Some(std::f64::consts::PI.powi(2) / 3.0),
            GlmmFamily::Probit => Some(1.0),
            GlmmFamily::Identity => None,
        }
    }

    /// Name as written in results.
    pub fn name(self) -> &'static str {
        match self {
            GlmmFamily::Logit => "logit",
            GlmmFamily::Probit => "probit",
            GlmmFamily::Identity => "identity",
        }
    }
}

/// The grouping factor: a level code per row.
#[derive(Debug, Clone, Copy)]
pub struct Grouping<'a> {
    /// Name, e.g. `hospital_id`.
    pub name: &'a str,
    /// Level code of each row, 0..levels.
    pub codes: &'a [u32],
    /// Number of levels.
    pub levels: usize,
}

/// Fitting options.
#[derive(Debug, Clone, Copy)]
pub struct Glmm {
    family: GlmmFamily,
    quadrature: usize,
    max_evaluations: u64,
    standard_errors: bool,
}

/// A warm start: variance parameters on the optimizer's scale and β.
#[derive(Debug, Clone, PartialEq)]
pub struct GlmmStart {
    /// log L11, [L21, L22], [log σ].
    pub phi: Vec<f64>,
    /// Fixed effects.
    pub beta: Vec<f64>,
    /// Spherical conditional modes u_h (groups × q), to warm-start the modes.
    pub u: Vec<f64>,
}

/// A fitted GLMM.
#[derive(Debug, Clone, Serialize)]
pub struct GlmmFit {
    /// Family and link.
    pub family: GlmmFamily,
    /// Quadrature nodes (1 = Laplace).
    pub quadrature: usize,
    /// Fixed-effect names.
    pub names: Vec<String>,
    /// Fixed effects β.
    pub coef: Vec<f64>,
    /// Covariance of β (row-major p × p).
    pub vcov: Vec<f64>,
    /// Standard errors of β.
    pub se: Vec<f64>,
    /// SD of the random intercept, σ_u.
    pub intercept_sd: f64,
    /// SD of the random slope, σ_v (with a slope).
    pub slope_sd: Option<f64>,
    /// Correlation of intercept and slope (with a slope).
    pub correlation: Option<f64>,
    /// Residual SD (identity link).
    pub residual_sd: Option<f64>,
    /// Standard error of log σ_u (Wald, from the Hessian); `None` at a boundary.
    pub log_intercept_sd_se: Option<f64>,
    /// Standard error of log σ_v.
    pub log_slope_sd_se: Option<f64>,
    /// Standard error of atanh(ρ).
    pub atanh_correlation_se: Option<f64>,
    /// lme4's θ (relative Cholesky factor: on the SD scale for binary outcomes,
    /// divided by σ for the identity link), for comparison with `getME(, "theta")`.
    pub theta: Vec<f64>,
    /// Conditional modes b_h = (intercept, slope) per group.
    pub modes: Vec<[f64; 2]>,
    /// Conditional covariance of b_h: [var intercept, cov, var slope].
    pub mode_covariance: Vec<[f64; 3]>,
    /// The deviance −2 log L (Laplace or quadrature approximation).
    pub deviance: f64,
    /// Whether the optimizer and every inner iteration converged.
    pub converged: bool,
    /// Iterations of the variance-parameter optimizer (Newton on the
    /// profiled deviance, plus Nelder–Mead's when it took over).
    pub evaluations: u64,
    /// Largest absolute gradient of the deviance at the optimum.
    pub gradient: f64,
    /// A variance parameter at the boundary (σ = 0 or |ρ| = 1).
    pub boundary: bool,
    /// Warnings (convergence, gradient, boundary).
    pub warnings: Vec<String>,
    /// Observations.
    pub nobs: usize,
    /// Groups.
    pub groups: usize,
    /// The optimum, to warm-start refits (bootstrap replicates).
    #[serde(skip)]
    pub start: GlmmStart,
    /// 2 × the inverse Hessian of the deviance over ψ = (φ, β) (row-major;
    /// at or near a boundary, β's block only with φ's rows and columns 0, so
    /// one-step replicates hold the variance parameters fixed; None without
    /// standard errors).
    #[serde(skip)]
    pub psi_covariance: Option<Vec<f64>>,
}

impl Glmm {
    /// A GLMM of `family`, Laplace approximation, with standard errors.
    pub fn new(family: GlmmFamily) -> Glmm {
        Glmm {
            family,
            quadrature: 1,
            max_evaluations: 2_000,
            standard_errors: true,
        }
    }

    /// Adaptive Gauss–Hermite quadrature with `k` nodes (random intercept
    /// only; 1 = Laplace).
    pub fn quadrature(mut self, k: usize) -> Glmm {
        self.quadrature = k.max(1);
        self
    }

    /// Skip the Hessian (point estimates and conditional modes only, e.g. in
    /// bootstrap replicates).
    pub fn without_standard_errors(mut self) -> Glmm {
        self.standard_errors = false;
        self
    }

    /// Fits y ~ X + (1 [+ slope] | group). `slope` is the index of the 0/1
    /// column of `design.x` that also gets a random slope.
    pub fn fit(
        &self,
        design: &Design,
        grouping: Grouping<'_>,
        slope: Option<usize>,
        start: Option<&GlmmStart>,
    ) -> Result<GlmmFit, ModelError> {
        fit::check(self.family, design, grouping, slope, self.quadrature)?;
        fit::fit(self, design, grouping, slope, start)
    }

    /// The deviance at given parameters: `theta` is lme4's θ (L11, or L11,
    /// L21, L22; relative to `sigma` for the identity link), for checking the
    /// objective against lme4's `devFunOnly` function.
    pub fn deviance_at(
        &self,
        design: &Design,
        grouping: Grouping<'_>,
        slope: Option<usize>,
        theta: &[f64],
        sigma: f64,
        beta: &[f64],
    ) -> Result<f64, ModelError> {
        fit::check(self.family, design, grouping, slope, self.quadrature)?;
        Ok(fit::deviance_at(
            self, design, grouping, slope, theta, sigma, beta,
        ))
    }
}
