//! Errors of the methods.

/// What can go wrong in a method.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecomposeError {
    /// A group with no rows.
    #[error("group `{group}` has no rows for outcome `{outcome}`")]
    EmptyGroup {
        /// Group label.
        group: String,
        /// Outcome.
        outcome: String,
    },
    /// Inputs that do not fit together.
    #[error("{0}")]
    Input(String),
    /// A model failed.
    #[error(transparent)]
    Model(#[from] healthgap_models::ModelError),
}
