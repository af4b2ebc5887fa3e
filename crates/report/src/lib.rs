//! # healthgap-report
//!
//! Renders a study's results: results.json (schema version 1, DESIGN.md),
//! estimates.csv, models.csv, table1.csv, attrition.csv, report.md (with its
//! figures as SVG files beside it) and index.html (one self-contained page).
//! Every count below `min_cell` is suppressed before anything is written
//! ([`suppress`]); the HTML and Markdown escape every string from data or
//! config.
//!
//! The content (tables, figures, the triangulation of methods, the methods
//! paragraph) is built once in [`view`] and rendered by [`html`] and
//! [`markdown`].

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod csv;
pub mod figures;
pub mod format;
pub mod html;
pub mod markdown;
pub mod methods;
pub mod results;
pub mod suppress;
pub mod triangulation;
pub mod view;

pub use results::{
    CohortSummary, DataInfo, FileInfo, GroupCount, Results, SiteInfo, StudyInfo, ToolInfo,
    WarehouseInfo,
};
pub use view::{OutcomeInfo, ReportInput};

/// Errors while rendering a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A figure could not be drawn.
    #[error("drawing a figure failed: {0}")]
    Figure(String),
    /// The HTML template failed.
    #[error("rendering index.html failed: {0}")]
    Template(String),
}
