//! # healthgap-cohort
//!
//! Everything that touches tabular data on disk lives here, so that polars (a
//! long compile) stays out of the estimation and reporting crates.
//!
//! This first stage has the writers that `healthgap synth` uses to write the
//! flat extract and the OMOP CDM tables as CSV or Parquet.

pub mod error;
pub mod write;

pub use error::CohortError;
pub use write::{TableFormat, table_to_frame, write_table};
