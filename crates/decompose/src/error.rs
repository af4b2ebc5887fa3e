//! Errors of the methods.

/// What can go wrong in a method. Each failure is its own variant (its
/// message names what and how to fix it); `Model` is a model's own error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecomposeError {
    /// A group with no rows for the method.
    #[error("group `{group}` has no rows for {method}")]
    NoRows {
        /// Group label.
        group: String,
        /// The method.
        method: String,
    },
    /// Crude means need rows in both groups.
    #[error("both groups need rows")]
    BothGroupsNeedRows,
    /// A group model with no more rows than coefficients.
    #[error(
        "group `{group}` has {rows} rows for {coefficients} coefficients: a group model needs \
         more rows than coefficients; compare a larger group (or merge small groups in the \
         data), or use fewer covariates"
    )]
    TooFewRows {
        /// Group label.
        group: String,
        /// Its rows (`fewer than <min_cell>` when small).
        rows: String,
        /// Coefficients of its model.
        coefficients: usize,
    },
    /// A model's design is singular (columns without variation or collinear).
    #[error(
        "the {model} is singular: {columns} {has} no variation there or {is} collinear with \
         other columns; merge rare levels ([variables] NAME = {{ type = \"categorical\", \
         min_count = 11 }} merges levels with fewer rows into `other`), remove the variable \
         from [factors], or, for a many-level categorical such as a hospital, absorb it \
         ([variables] NAME = {{ type = \"categorical\", absorb = true }})"
    )]
    Singular {
        /// The model.
        model: String,
        /// The columns, joined.
        columns: String,
        /// `has` or `have`.
        has: &'static str,
        /// `is` or `are`.
        is: &'static str,
    },
    /// A model of the method could not be fitted.
    #[error("the {model} failed: {error}")]
    Fit {
        /// The model.
        model: String,
        /// Why.
        error: healthgap_models::ModelError,
    },
    /// The outcome model dropped collinear columns.
    #[error("the outcome model dropped collinear columns; remove them from the blocks")]
    CollinearOutcomeModel,
    /// A logit or probit model asked for a continuous outcome.
    #[error(
        "model = \"{model}\" needs a binary outcome, and `{outcome}` is continuous; use model = \
         \"linear\" for it"
    )]
    NotBinary {
        /// `logit` or `probit`.
        model: &'static str,
        /// The outcome.
        outcome: String,
    },
    /// `vce = "model"` with β* fitted on the same rows as both group models.
    #[error(
        "vce = \"model\" is not derived for coefficients = \"{coefficients}\": β* is fitted on \
         the same rows as both group models, so their model-based variances are not \
         independent; use vce = \"robust\" (the default), which stacks them"
    )]
    ModelVarianceNotDerived {
        /// `pooled` or `neumark`.
        coefficients: &'static str,
    },
    /// A logit/probit decomposition with an absorbed variable.
    #[error(
        "a logit/probit decomposition cannot absorb a many-level categorical (hospital_id): \
         group-specific hospital effects of a binary outcome are not identified in hospitals \
         without events. Use model = \"linear\" for the care-site term, or describe hospitals \
         by covariates (volume, teaching) in the care_site block"
    )]
    AbsorbedInNonlinear,
    /// An absorbed variable in Gelbach's base model.
    #[error("`{variable}` is absorbed (many levels) and cannot be in `base`; move it to `added`")]
    AbsorbedInBase {
        /// The variable.
        variable: String,
    },
    /// Gelbach with nothing added to the base model.
    #[error(
        "nothing is added to the base model: list in `added` variables or blocks that are not \
         in `base`"
    )]
    NothingAdded,
    /// A many-level categorical in the hospital analysis's `adjust`.
    #[error(
        "`{variable}` in `adjust` has many levels and would be absorbed; adjust for it with \
         `absorb = [\"{variable}\"]` instead"
    )]
    AbsorbedInAdjust {
        /// The variable.
        variable: String,
    },
    /// Fixed effects of a variable that is not categorical.
    #[error(
        "`{variable}` must be categorical; declare it in [variables] as {{ type = \
         \"categorical\" }}"
    )]
    NotCategorical {
        /// The variable.
        variable: String,
    },
    /// A mediator that is not one column.
    #[error(
        "mediation needs one mediator column, and `{mediators}` gives {count} ({columns}); list \
         one numeric or 0/1 variable in `mediators`, or use method = \"disparity_reduction\" \
         for a whole block"
    )]
    MediatorColumns {
        /// The mediators as listed.
        mediators: String,
        /// Columns they give.
        count: usize,
        /// The column names.
        columns: String,
    },
    /// A many-level (absorbed) confounder in mediation.
    #[error(
        "confounder `{variable}` has many levels (absorbed); mediation needs explicit covariates"
    )]
    AbsorbedConfounder {
        /// The variable.
        variable: String,
    },
    /// Disparity reduction with no target, or too many for the Shapley split.
    #[error(
        "disparity_reduction needs 1 to 6 target blocks (the Shapley split visits all 2^K \
         subsets); {targets} given"
    )]
    TargetCount {
        /// Targets given.
        targets: usize,
    },
    /// A statistic could not be evaluated at the full sample (the statistics
    /// that the bootstrap and the cluster delta method re-evaluate report
    /// their failures as text, counted per replicate; at the full sample
    /// the failure is this error).
    #[error("{0}")]
    Statistic(String),
    /// The data layer could not build the design (the message says why).
    #[error("{0}")]
    Design(String),
    /// The method (or its inference) needs patient rows, and the study has
    /// only per-cell moments (a warehouse study without row export).
    #[error(
        "{what} needs patient rows ({reason}), but this warehouse study computes only per-cell \
         moments inside the warehouse; set [data] allow_row_export = true to pull the analysis \
         columns and run it here{alternative}"
    )]
    NeedsRows {
        /// The method or option (`method = "mediation"`).
        what: String,
        /// Why rows are needed.
        reason: String,
        /// Another way, when there is one (`, or ...`), or empty.
        alternative: String,
    },
    /// A model failed.
    #[error(transparent)]
    Model(#[from] healthgap_models::ModelError),
}

/// A group model needs more rows than coefficients: the error names the
/// group, its rows (suppressed below `min_cell`) and the coefficients.
pub fn enough_rows(
    n: [usize; 2],
    coefficients: usize,
    labels: [&str; 2],
    min_cell: usize,
) -> Result<(), DecomposeError> {
    match n.iter().position(|&k| k <= coefficients) {
        Some(g) => Err(DecomposeError::TooFewRows {
            group: labels[g].to_string(),
            rows: if n[g] < min_cell {
                format!("fewer than {min_cell}")
            } else {
                n[g].to_string()
            },
            coefficients,
        }),
        None => Ok(()),
    }
}

/// Rows of the reference (code 0) and comparison (code 1) groups; an error
/// naming the group and `method` when either has none.
pub fn group_sizes(
    group: &[u32],
    labels: [&str; 2],
    method: &str,
) -> Result<[usize; 2], DecomposeError> {
    let n = [0u32, 1].map(|g| group.iter().filter(|&&x| x == g).count());
    match n.iter().position(|&k| k == 0) {
        Some(g) => Err(DecomposeError::NoRows {
            group: labels[g].to_string(),
            method: method.to_string(),
        }),
        None => Ok(n),
    }
}
