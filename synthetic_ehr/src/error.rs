//! Errors of the synthetic generator.

/// Everything that can go wrong when configuring or running the generator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// A `--set` key that the model does not have.
    #[error("unknown parameter `{key}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownParameter {
        /// The key as given.
        key: String,
        /// The nearest valid key.
        suggestion: Option<String>,
    },
    /// A parameter value out of its range.
    #[error("parameter `{key}` = {value} {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A `--set` argument without `=`.
    #[error("`{assignment}` is not of the form key=value (e.g. black.ses_gap=0.9)")]
    InvalidAssignment {
        /// The argument as given.
        assignment: String,
    },
}
