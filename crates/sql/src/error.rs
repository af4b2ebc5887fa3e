//! Errors of the SQL layer. Each variant names the offending name, value or
//! filter, so that the caller can tell the user what to fix.

/// Everything that can go wrong while compiling SQL text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// A filter string does not follow the `[cohort] filters` grammar.
    #[error("filter `{filter}`: {message}")]
    Filter {
        /// The filter as written.
        filter: String,
        /// What is wrong with it.
        message: String,
    },
    /// An identifier (table, schema or column name) cannot be quoted.
    #[error("identifier {name:?}: {message}")]
    Identifier {
        /// The name as given.
        name: String,
        /// Why it cannot be used.
        message: String,
    },
    /// A text value cannot be written as a literal of the dialect.
    #[error("text value {value:?}: {message}")]
    Text {
        /// The value as given.
        value: String,
        /// Why it cannot be used.
        message: String,
    },
    /// A number is NaN or infinite; SQL has no portable literal for it.
    #[error("the number {value} is not finite; SQL literals must be finite numbers")]
    NonFinite {
        /// The value.
        value: f64,
    },
    /// A value expression was used where a condition is needed.
    #[error("`{expr}` is a value, not a condition; compare it with something (e.g. `{expr} == 1`)")]
    NotACondition {
        /// A description of the expression.
        expr: String,
    },
    /// The query specification is inconsistent (empty list, index out of range, ...).
    #[error("{0}")]
    Spec(String),
}
