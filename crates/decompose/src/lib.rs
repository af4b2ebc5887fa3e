//! # healthgap-decompose
//!
//! The methods. Each lives in one module with its options ([`MethodSpec`]'s
//! variant, implementing [`Spec`]: run, roles, checks, breakdown, methods
//! paragraph). Each takes a [`Sample`] (outcome, group codes and labels,
//! weights, cluster) and its `Covariates` (design columns by block, built by
//! the data layer through [`spec::Designs`]) and returns tidy [`Estimate`]
//! rows with the DESIGN.md quantity names, plus the models it fitted and its
//! warnings; an [`AnalysisResult`] checks its own identities. Sign
//! convention everywhere: gap = mean(comparison) − mean(reference).
//!
//! Methods: [`crude`], [`oaxaca`] (linear) and [`nonlinear`] (Yun, Fairlie),
//! [`gelbach`], [`hospital`], [`reduction`] and [`mediation`]; their shared
//! inference (delta methods, bootstrap, failure policy, `se_method`) is in
//! [`inference`], and their sensitivity analyses (E-values, ρ-sensitivity) in
//! [`sensitivity`].

pub mod cells;
pub use healthgap_models::covariates;
pub mod crude;
pub mod error;
pub mod gelbach;
pub mod hospital;
pub mod inference;
pub mod mediation;
pub mod nonlinear;
pub mod oaxaca;
pub mod pooled;
pub mod privacy;
pub mod random_levels;
pub mod reduction;
pub mod result;
pub mod sample;
pub mod sensitivity;
pub mod shares;
pub mod spec;
pub mod terms;

pub use error::DecomposeError;
pub use result::{AnalysisResult, Estimate, InferenceInfo, MethodOutput, SeMethod};
pub use sample::{CellSample, Cluster, Sample};
pub use spec::{MethodSpec, Spec};
