//! # healthgap-report
//!
//! Renders a study's results: results.json (schema version 1, DESIGN.md),
//! estimates.csv, models.csv, table1.csv, attrition.csv and report.md. Every count below
//! `min_cell` is suppressed before anything is written ([`suppress`]).

pub mod csv;
pub mod markdown;
pub mod results;
pub mod suppress;

pub use results::{CohortSummary, DataInfo, FileInfo, GroupCount, Results, StudyInfo, ToolInfo};
