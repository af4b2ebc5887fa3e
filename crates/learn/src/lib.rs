//! # healthgap-learn
//!
//! Flexible nuisance models for the doubly robust and weighting estimators:
//! learners behind one small trait ([`Learner`] fits a [`Task`] into a
//! [`Fitted`] model that predicts a probability or a mean), and
//! cross-fitting by cluster ([`Folds`], [`cross_fit`]).
//!
//! - [`GlmSpec`]: the project's main-effects logit / least squares
//!   (`healthgap-models`), with a ridge fallback under separation;
//! - [`ElasticNetSpec`]: penalized linear or logistic regression by weighted
//!   coordinate descent, λ by cross-validation (Friedman, Hastie & Tibshirani 2010);
//! - [`ForestSpec`]: a random forest of weighted regression trees, seeded per
//!   tree (Breiman 2001);
//! - [`SuperLearner`]: the cross-validated convex combination of a library
//!   (van der Laan, Polley & Hubbard 2007).
//!
//! Every fit takes an explicit seed; the parts of a fit (folds, members,
//! trees) take seeds derived from it by index ([`seed`]), so results are
//! bit-identical whatever the number of rayon threads.
//!
//! ## Why not linfa
//!
//! STACK.md names linfa for the flexible learners. It is not used here:
//! - linfa 0.8 is built on ndarray 0.16; the project is on 0.17, so the data
//!   would be copied through plain slices at every fit (cheap) but two
//!   ndarray versions would be compiled (see docs/LEARNERS.md for the
//!   measured build cost);
//! - linfa-elasticnet ignores sample weights and has no logistic elastic net;
//! - linfa-trees has classification trees only (no regression tree for a
//!   continuous outcome, no leaf probabilities) and linfa-ensemble bags them
//!   by majority vote;
//! - the nuisance models here need weights (survey weights, the cluster
//!   bootstrap's multiplicities) and probabilities, so correctness decides.
//!
//! The core models (`healthgap-models`) are hand-written for the same
//! reasons plus standard errors, which linfa does not give.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod crossfit;
pub mod data;
pub mod elastic_net;
pub mod error;
pub mod folds;
pub mod forest;
pub mod glm;
pub mod learner;
pub mod loss;
pub mod seed;
pub mod spec;
pub mod super_learner;
pub mod warning;

pub use crossfit::{CrossFit, cross_fit, fit_or_fallback};
pub use data::{Family, Matrix, Task, TaskData};
pub use elastic_net::{ElasticNetFit, ElasticNetSpec};
pub use error::LearnError;
pub use folds::{DEFAULT_FOLDS, Folds};
pub use forest::{ForestFit, ForestSpec};
pub use glm::GlmSpec;
pub use learner::{ConstantFit, Detail, FitReport, Fitted, Learner};
pub use spec::{LearnerConfig, LearnerKind, SuperLearnerSpec};
pub use super_learner::{SuperLearner, SuperLearnerFit, SuperLearnerReport};
pub use warning::LearnWarning;
