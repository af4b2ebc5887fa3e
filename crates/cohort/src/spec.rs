//! What to load and how: the typed cohort specification that the CLI's plan
//! builds from a config (the raw config never reaches this crate).

use std::path::PathBuf;

use healthgap_synth::Params;

use crate::omop::OmopConcepts;

/// Where the rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A flat extract: `.csv`, `.csv.gz` or `.parquet`, one row per index surgery.
    Flat {
        /// The file.
        path: PathBuf,
    },
    /// A folder of OMOP CDM v5.4 tables.
    Omop {
        /// The folder.
        dir: PathBuf,
        /// Concept sets.
        concepts: Box<OmopConcepts>,
    },
    /// The synthetic generator, in memory.
    Synthetic {
        /// Generator parameters.
        params: Box<Params>,
    },
    /// A warehouse table whose analysis columns a transport pulls first
    /// ([`CohortSpec::columns`]); the frame then goes to `load_frame`.
    Warehouse {
        /// The table and server, for messages (no credentials).
        label: String,
    },
}

impl Source {
    /// `path`, `omop`, `synthetic` or `warehouse` (results.json `data.source`).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Flat { .. } => "path",
            Source::Omop { .. } => "omop",
            Source::Synthetic { .. } => "synthetic",
            Source::Warehouse { .. } => "warehouse",
        }
    }
}

/// Missing-data policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingPolicy {
    /// Drop rows with a missing value in any variable the plan uses; each
    /// variable's drop is logged in the attrition table.
    CompleteCase,
    /// Refuse to run and name the columns.
    Error,
    /// Keep every row: the missing cells are imputed (multiple imputation by
    /// chained equations); analyses that do not use the imputations take
    /// their complete cases.
    MultipleImputation,
}

/// An outcome's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    /// 0/1 or true/false.
    Binary,
    /// Any finite number.
    Continuous,
}

/// One outcome.
#[derive(Debug, Clone)]
pub struct OutcomeSpec {
    /// Column.
    pub name: String,
    /// Scale.
    pub kind: OutcomeKind,
    /// Label for reports.
    pub label: String,
    /// Binary outcomes coded other than 0/1: the event's value (the other
    /// value is the non-event).
    pub event: Option<f64>,
}

/// How a covariate enters designs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarKind {
    /// Numeric, used as is.
    Numeric,
    /// Categorical: dummies against the reference level (the given one, or the
    /// most frequent), or absorbed as fixed effects when `absorb` is set.
    Categorical {
        /// The reference level's text.
        reference: Option<String>,
        /// Absorb (many levels, e.g. hospital_id): never a dense dummy matrix.
        absorb: bool,
    },
}

/// One covariate.
#[derive(Debug, Clone)]
pub struct VariableSpec {
    /// Column.
    pub name: String,
    /// Declared kind; None infers it from the column type (strings are
    /// categorical, numbers numeric).
    pub kind: Option<VarKind>,
    /// The factor block it belongs to.
    pub block: String,
    /// Categorical: levels with fewer rows than this are merged into
    /// `other` (reported as a warning).
    pub min_count: Option<usize>,
}

/// Everything the loader needs.
#[derive(Debug, Clone)]
pub struct CohortSpec {
    /// Data source.
    pub source: Source,
    /// Row filters, applied in order, each logged.
    pub filters: Vec<String>,
    /// Missing-data policy.
    pub missing: MissingPolicy,
    /// Group column.
    pub group_column: String,
    /// Reference level (text).
    pub reference: String,
    /// Comparison levels (text).
    pub compare: Vec<String>,
    /// Display labels of group values (`[groups] labels`), value → label.
    pub group_display: std::collections::HashMap<String, String>,
    /// Outcomes.
    pub outcomes: Vec<OutcomeSpec>,
    /// Covariates, in block order.
    pub variables: Vec<VariableSpec>,
    /// Cluster column.
    pub cluster: Option<String>,
    /// Weight column.
    pub weights: Option<String>,
    /// Texts that mean "missing" in any column (`[data] na_values`; default
    /// `["", "NA"]`, the readr/pandas convention).
    pub na_values: Vec<String>,
}

/// The default `[data] na_values`.
pub fn default_na_values() -> Vec<String> {
    vec![String::new(), "NA".into()]
}
