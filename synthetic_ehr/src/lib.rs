//! # healthgap-synth
//!
//! A synthetic cohort of isolated CABG patients drawn from a structural causal
//! model whose causal truth is known (SYNTHETIC_EHR.md). It is the test oracle of
//! healthgap, and the way users reproduce studies without protected data.
//!
//! ```
//! use healthgap_synth::{Params, Sample};
//! let mut params = Params::default();
//! params.set("patients", 2_000.0).unwrap();
//! let sample = Sample::generate(&params, &|_| {});
//! assert_eq!(sample.patients.len(), 2_000);
//! let flat = sample.flat_table();
//! assert_eq!(flat.height(), 2_000);
//! ```
//!
//! Blocks in topological order, each with its own copy of the group indicator:
//! R → D (age, sex) → S (latent SES, ADI, insurance) → C (comorbidities, EF,
//! urgency, BMI, creatinine) → H (hospital) → Y (mortality, morbidity,
//! readmission, length of stay), with direct arrows from R into every block.
//! Race is a social position, not biology: R → C stands for unmeasured structural
//! exposures, R → H for residential segregation and referral networks, and R → Y
//! for residual differences in care.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod error;
pub mod missing;
pub mod omop;
pub mod params;
pub mod sample;
pub mod scm;
pub mod table;
pub mod truth;
pub mod world;

pub use error::SynthError;
pub use params::{GROUP_NAMES, Params};
pub use sample::Sample;
pub use table::{Column, Table};
pub use truth::Truth;
