//! # healthgap-cohort
//!
//! Everything that touches tabular data on disk lives here, so that polars (a
//! long compile) stays out of the estimation and reporting crates: the flat and
//! OMOP CDM loaders, filters, the missing-data policy, the attrition log,
//! Table 1, design building, and the CSV/Parquet writers used by
//! `healthgap synth`.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod design;
pub mod error;
pub mod filter;
pub mod load;
pub mod omop;
pub mod spec;
pub mod table1;
mod typed;
pub mod write;

pub use design::SeveralAbsorbed;
pub use error::CohortError;
pub use load::{
    AttritionStep, Cohort, MISSING_CODE, MissingStep, Values, Variable, load, load_frame,
};
pub use spec::{
    CohortSpec, MissingPolicy, OutcomeKind, OutcomeSpec, Source, VarKind, VariableSpec,
    default_na_values,
};
pub use table1::Table1Row;
pub use typed::{missing_like_levels, typed_columns};
pub use write::{TableFormat, frame_to_result, result_to_frame, table_to_frame, write_table};
