//! Errors of the estimators.

/// Everything that can go wrong when fitting a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The design has no rows (after dropping rows, e.g. singletons).
    #[error("no observations to fit{}", context.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
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
    /// A non-finite number in y, X or the weights.
    #[error("non-finite value in `{column}` (row {row}); remove or impute it before fitting")]
    NonFinite {
        /// Column name.
        column: String,
        /// 0-based row.
        row: usize,
    },
    /// Weights must be positive.
    #[error("weight {value} in row {row} is not positive; weights must be > 0")]
    BadWeight {
        /// 0-based row.
        row: usize,
        /// The weight.
        value: f64,
    },
    /// X'WX is singular.
    #[error("singular design: rank {rank} < {ncols} columns; collinear: {}", columns.join(", "))]
    Singular {
        /// Numerical rank.
        rank: usize,
        /// Number of columns.
        ncols: usize,
        /// Columns found collinear with earlier ones.
        columns: Vec<String>,
    },
    /// Complete or quasi-complete separation in a binary model.
    #[error("separation: the outcome is perfectly predicted by {}; drop or merge these variables or their rare levels", variables.join(", "))]
    Separation {
        /// The variables involved.
        variables: Vec<String>,
    },
    /// Clustered inference needs at least two clusters.
    #[error("clustered standard errors need at least 2 clusters, found {clusters}")]
    TooFewClusters {
        /// Number of clusters.
        clusters: usize,
    },
    /// The optimiser did not converge.
    #[error("did not converge after {iterations} iterations (max |score| {max_score:.3e})")]
    NotConverged {
        /// Iterations run.
        iterations: usize,
        /// Max absolute score at the end.
        max_score: f64,
    },
    /// A model term that the data cannot identify (one group, a random slope
    /// on a column that is constant within every group, ...).
    #[error("{what}")]
    Unidentified {
        /// What cannot be estimated, and what to do instead.
        what: String,
    },
    /// A binary outcome with values other than 0 and 1.
    #[error("binary outcome `{column}` has value {value} in row {row}; it must be 0 or 1")]
    NotBinary {
        /// Outcome name.
        column: String,
        /// 0-based row.
        row: usize,
        /// The value.
        value: f64,
    },
}
