//! Warnings: problems a learner worked around, each naming what it met and
//! what it did instead. They travel with the fit (and, later, the result).

use std::fmt;

/// One worked-around problem.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LearnWarning {
    /// A feature column with one value over the rows with positive weight. It
    /// carries no information; the GLM drops it, the elastic net gives it a
    /// zero coefficient, and a tree never splits on it.
    ConstantColumn {
        /// Column name.
        column: String,
    },
    /// A binary target with a single class among the training rows (a fold
    /// without events, or without non-events). The fit is the constant
    /// `prediction`, the training rows' weighted mean moved off 0 and 1.
    SingleClass {
        /// Where it happened (`fold 3`, or `training rows`).
        context: String,
        /// The only class present (0 or 1).
        class: u8,
        /// Training rows.
        rows: usize,
        /// The constant prediction used instead.
        prediction: f64,
    },
    /// A learner's own warning (e.g. a GLM's near-separation note).
    Note {
        /// The learner.
        learner: String,
        /// The message.
        message: String,
    },
    /// A learner failed and was replaced by `fallback`.
    Fallback {
        /// The learner that failed.
        learner: String,
        /// Where it happened (`fold 2`, `full sample`).
        context: String,
        /// Why it failed.
        reason: String,
        /// What was used instead.
        fallback: String,
    },
}

impl fmt::Display for LearnWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LearnWarning::ConstantColumn { column } => write!(
                f,
                "column `{column}` is constant; it is ignored by every learner"
            ),
            LearnWarning::SingleClass {
                context,
                class,
                rows,
                prediction,
            } => write!(
                f,
                "{context}: all {rows} training rows have outcome {class}; the model is the \
                 constant {prediction:.4} (the weighted mean moved off {class} by half an \
                 observation)"
            ),
            LearnWarning::Note { learner, message } => write!(f, "{learner}: {message}"),
            LearnWarning::Fallback {
                learner,
                context,
                reason,
                fallback,
            } => write!(f, "{learner} failed ({context}: {reason}); used {fallback}"),
        }
    }
}
