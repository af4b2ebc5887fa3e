//! Errors of the learners.

use healthgap_models::ModelError;

/// Everything that stops a learner. Problems a learner can work around (a
/// constant column, a fold with one outcome class, a GLM that separates) are
/// [`crate::LearnWarning`]s instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LearnError {
    /// No rows, or no rows with positive weight.
    #[error("no observations to learn from{}", context.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Empty {
        /// Why there are no rows.
        context: Option<String>,
    },
    /// Inputs of different lengths or shapes.
    #[error("dimension mismatch: {what}")]
    Dimension {
        /// Which inputs disagree.
        what: String,
    },
    /// NaN or ±∞ in the features, the target or the weights.
    #[error(
        "non-finite value {value} in `{column}` (row {row}); remove or impute it before fitting"
    )]
    NonFinite {
        /// Column name (`target` or `weights` for those).
        column: String,
        /// 0-based row.
        row: usize,
        /// The value.
        value: f64,
    },
    /// A binary target with values other than 0 and 1.
    #[error("binary target has value {value} in row {row}; it must be 0 or 1")]
    NotBinary {
        /// 0-based row.
        row: usize,
        /// The value.
        value: f64,
    },
    /// Weights must be finite and non-negative.
    #[error("weight {value} in row {row} is negative; weights must be >= 0")]
    BadWeight {
        /// 0-based row.
        row: usize,
        /// The weight.
        value: f64,
    },
    /// Cluster folds need at least as many clusters as folds.
    #[error("{folds} folds need at least {folds} clusters, found {clusters}; use fewer folds")]
    TooFewClusters {
        /// Distinct clusters.
        clusters: usize,
        /// Folds asked for.
        folds: usize,
    },
    /// A hyperparameter outside its range.
    #[error("learner setting `{key}` = {value}: {expected}")]
    BadSetting {
        /// Config key, e.g. `forest.trees`.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// An iterative fit ran out of iterations.
    #[error("{learner} did not converge: {detail}")]
    NotConverged {
        /// The learner.
        learner: String,
        /// What ran out.
        detail: String,
    },
    /// A learner failed in a way no fallback covers.
    #[error("{learner}: {error}")]
    Model {
        /// The learner.
        learner: String,
        /// The estimator's error.
        error: ModelError,
    },
}

impl LearnError {
    /// A bad-setting error.
    pub(crate) fn setting(key: &str, value: impl ToString, expected: &str) -> LearnError {
        LearnError::BadSetting {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}
