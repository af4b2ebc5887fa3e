//! # healthgap
//!
//! The study as a library: a config ([`config::parse`]) becomes a checked
//! [`plan::Plan`]; [`study::load_cohort`] loads its cohort;
//! [`study::check_study`] fits every analysis once without inference and
//! [`study::run_study`] runs them all, giving results.json's
//! [`healthgap_report::Results`]. The `healthgap` command line adds the
//! terminal, the progress bars and the atomic output (docs/ARCHITECTURE.md).

pub mod config;
pub mod in_warehouse;
pub mod plan;
pub mod study;

mod analysis;
mod hash;
mod imputation;

pub use plan::{Plan, from_file};
pub use study::{Study, check_study, load_cohort, run_study};
