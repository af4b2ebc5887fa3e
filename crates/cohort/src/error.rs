//! Errors of the cohort crate. Every variant names the file, table or column
//! involved, so the CLI can tell the user what to fix.

use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or writing cohort data.
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
    /// An input file or folder does not exist.
    #[error("{path}: no such file or folder{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    MissingFile {
        /// The path as resolved.
        path: PathBuf,
        /// What to do.
        hint: Option<String>,
    },
    /// An input file could not be read or parsed.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A column the plan needs is not in the data.
    #[error("{file}: no column `{column}`, which {role} names{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    MissingColumn {
        /// The file (or table) searched.
        file: String,
        /// The column.
        column: String,
        /// The config key that names it (`[factors] socioeconomic`, `[design] cluster`, …).
        role: String,
        /// The nearest existing column name.
        suggestion: Option<String>,
    },
    /// A value that the plan cannot use.
    #[error("{file}: column `{column}`: {message}")]
    InvalidColumn {
        /// The file (or table).
        file: String,
        /// The column.
        column: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An OMOP table is missing or malformed.
    #[error("OMOP table `{table}` in {dir}: {message}")]
    Omop {
        /// The folder.
        dir: PathBuf,
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A row filter that cannot be parsed or applied.
    #[error("filter `{filter}`: {message}")]
    Filter {
        /// The filter text.
        filter: String,
        /// What is wrong.
        message: String,
    },
    /// The groups cannot be analysed.
    #[error("{message}")]
    Groups {
        /// What is wrong.
        message: String,
    },
    /// Several column errors at once (each on its own line).
    #[error("{} problems in the data:\n{}", errors.len(), errors.join("\n"))]
    Several {
        /// The errors.
        errors: Vec<String>,
    },
    /// Missing values under `missing = "error"`.
    #[error("missing values in {}; set [cohort] missing = \"complete_case\" to drop those rows, or fill them", columns.join(", "))]
    MissingValues {
        /// Columns with their counts, e.g. `adi (12 rows)`.
        columns: Vec<String>,
    },
    /// The synthetic generator refused its parameters.
    #[error("[data] synthetic: {0}")]
    Synthetic(#[from] healthgap_synth::SynthError),
}

/// The nearest of `candidates` to `name` (edit distance), when close enough.
pub fn nearest(name: &str, candidates: &[String]) -> Option<String> {
    healthgap_synth::params::nearest(name, candidates)
}
