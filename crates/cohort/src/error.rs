//! Errors of the cohort crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing cohort tables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CohortError {
    /// A file could not be created or written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// polars refused a table.
    #[error("table `{table}`: {message}")]
    Frame {
        /// The table name.
        table: String,
        /// polars' message.
        message: String,
    },
}
