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

/// A group model needs more rows than coefficients: the error names the
/// group, its rows (suppressed below `min_cell`) and the coefficients.
pub fn enough_rows(
    n: [usize; 2],
    coefficients: usize,
    labels: [&str; 2],
    min_cell: usize,
) -> Result<(), DecomposeError> {
    match n.iter().position(|&k| k <= coefficients) {
        Some(g) => Err(DecomposeError::Input(format!(
            "group `{}` has {} rows for {coefficients} coefficients: a group model needs more rows \
             than coefficients; compare a larger group (or merge small groups in the data), or \
             use fewer covariates",
            labels[g],
            if n[g] < min_cell {
                format!("fewer than {min_cell}")
            } else {
                n[g].to_string()
            }
        ))),
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
        Some(g) => Err(DecomposeError::Input(format!(
            "group `{}` has no rows for {method}",
            labels[g]
        ))),
        None => Ok(n),
    }
}
