//! # healthgap-impute
//!
//! Multiple imputation by chained equations ([`chained::impute`]) on top of
//! the estimation core's kernels, and Rubin's rules ([`pool`]).
//!
//! - [`frame`]: what is imputed and from what (borrowed columns, strata,
//!   the cluster term), and the designs of each stratum;
//! - `draw`: the imputation models (predictive mean matching, Bayesian
//!   linear, logistic and multinomial draws);
//! - [`chained`]: the chained equations, one seeded stream per imputation,
//!   the imputations in parallel, only the missing cells × m stored;
//! - [`pool`]: Rubin's rules with Barnard–Rubin degrees of freedom.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod chained;
mod draw;
pub mod frame;
pub mod pool;

pub use chained::{Imputations, ImputeError, Imputed, impute};
pub use frame::{ClusterTerm, Input, MISSING, Method, Settings, Values, Variable};
pub use pool::{Pooled, barnard_rubin, rubin};
