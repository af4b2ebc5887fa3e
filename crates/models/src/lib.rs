//! # healthgap-models
//!
//! The estimators every decomposition stands on:
//!
//! - [`ols`]: OLS/WLS with a rank check (collinear columns dropped by name or
//!   refused) and absorbed fixed effects ([`fe`]: exact demeaning for one set,
//!   accelerated alternating projections for several, singletons dropped);
//! - [`glm`]: logit and probit by Newton–Raphson with step-halving, separation
//!   checks, weights and absorbed fixed effects (FE logit);
//! - [`vcov`]: iid, HC1 and CR1 sandwiches with fixest-style counting of absorbed
//!   fixed effects; [`summary`]: t/normal p-values and model summaries;
//! - [`moments`]: per-cluster sufficient statistics, from which linear fits, CR1
//!   and every bootstrap replicate are recombined in O(G·p²);
//! - [`bootstrap`]: the cluster bootstrap with per-replicate ChaCha8 streams,
//!   percentile/BCa/normal intervals and failure counts.
//!
//! Linear algebra is faer, sequential inside each call (`Par::Seq`), with rayon
//! across row blocks, clusters and replicates. The core models are hand-written
//! rather than taken from linfa (no standard errors, no weights, penalised
//! logistic regression by default) or argmin (a hand-written Newton is 5× faster
//! on these problems).

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

// The `vec` feature gives argmin's Nelder–Mead (in `glmm`) its Vec<f64> arithmetic.
use argmin_math as _;

pub mod bootstrap;
pub mod covariates;
pub mod design;
pub mod error;
pub mod fe;
pub mod glm;
pub mod glmm;
pub mod linalg;
pub mod lmm;
pub mod moments;
mod newton_pass;
pub mod ols;
pub mod summary;
pub mod vcov;

pub use design::{Design, FixedEffect};
pub use error::ModelError;
pub use glm::{Glm, GlmFit, Link};
pub use glmm::{Glmm, GlmmFamily, GlmmFit, GlmmStart, Grouping};
pub use ols::{Ols, OlsFit};
pub use summary::{CoefficientRow, ModelSummary};
pub use vcov::{FixefK, HcRatio, SmallSample, Vcov, VcovKind};

/// What a fitted model reports, whatever its family.
struct Reported<'a> {
    family: &'a str,
    work: &'a Design,
    names: &'a [String],
    coef: &'a [f64],
    converged: bool,
    iterations: usize,
}

impl Reported<'_> {
    fn summary(&self, label: &str, vcov: &Vcov, level: f64) -> ModelSummary {
        ModelSummary {
            label: label.to_string(),
            family: self.family.to_string(),
            n: Some(self.work.nobs()),
            clusters: vcov.clusters,
            vcov: vcov.label.clone(),
            converged: self.converged,
            iterations: self.iterations,
            absorbed: self
                .work
                .absorb
                .iter()
                .map(|fe| format!("{} ({} levels)", fe.name, fe.levels))
                .collect(),
            coefficients: summary::coefficient_rows(self.names, self.coef, vcov, level),
        }
    }
}

/// V for `kind` from a model's sandwich parts; CR1 uses the design's clusters.
fn vcov_of(
    parts: &vcov::SandwichParts<'_>,
    work: &Design,
    kind: VcovKind,
    cluster_name: &str,
    ssc: SmallSample,
) -> Result<Vcov, ModelError> {
    let cluster = work
        .cluster
        .as_deref()
        .map(|c| (c, work.n_clusters, cluster_name));
    vcov::compute(parts, kind, cluster, ssc)
}

impl OlsFit {
    /// The sandwich parts of the fit (bread, regressors, score factors w_i e_i).
    pub fn sandwich_parts(&self) -> vcov::SandwichParts<'_> {
        vcov::SandwichParts {
            bread: &self.bread,
            x: self.work.x.as_slice_memory_order().unwrap_or(&[]),
            u: (0..self.nobs())
                .map(|i| self.work.weight(i) * self.residuals[i])
                .collect(),
            n: self.nobs(),
            k: self.k(),
            absorbed: self.work.absorb.iter().collect(),
            rss: Some(self.rss),
        }
    }

    /// A model summary with `vcov`'s standard errors at confidence `level`.
    pub fn summary(&self, label: &str, vcov: &Vcov, level: f64) -> ModelSummary {
        Reported {
            family: "linear",
            work: &self.work,
            names: &self.names,
            coef: &self.coef,
            converged: true,
            iterations: 1,
        }
        .summary(label, vcov, level)
    }

    /// The variance of the coefficients. CR1 uses the design's clusters.
    pub fn vcov(
        &self,
        kind: VcovKind,
        cluster_name: &str,
        ssc: SmallSample,
    ) -> Result<Vcov, ModelError> {
        vcov_of(&self.sandwich_parts(), &self.work, kind, cluster_name, ssc)
    }
}

impl GlmFit {
    /// The sandwich parts of the fit (inverse information, regressors as used in
    /// the scores, score factors w_i ∂ℓ_i/∂η_i).
    pub fn sandwich_parts(&self) -> vcov::SandwichParts<'_> {
        vcov::SandwichParts {
            bread: &self.bread,
            x: &self.xd,
            u: self.score_weights.clone(),
            n: self.nobs(),
            k: self.coef.len(),
            absorbed: self.work.absorb.iter().collect(),
            rss: None,
        }
    }

    /// A model summary with `vcov`'s standard errors at confidence `level`.
    pub fn summary(&self, label: &str, vcov: &Vcov, level: f64) -> ModelSummary {
        Reported {
            family: self.link.name(),
            work: &self.work,
            names: &self.names,
            coef: &self.coef,
            converged: self.converged,
            iterations: self.iterations,
        }
        .summary(label, vcov, level)
    }

    /// The variance of the coefficients. CR1 uses the design's clusters.
    pub fn vcov(
        &self,
        kind: VcovKind,
        cluster_name: &str,
        ssc: SmallSample,
    ) -> Result<Vcov, ModelError> {
        vcov_of(&self.sandwich_parts(), &self.work, kind, cluster_name, ssc)
    }
}
