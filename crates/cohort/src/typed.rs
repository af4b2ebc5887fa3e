//! Typed columns (the readr/Stata convention: a declared type is enforced).
//!
//! Every column the plan uses as a number (outcomes, weights, variables
//! declared `type = "numeric"`) must parse as numbers in full, or the load
//! stops and names the column, the first offending rows and values, and the
//! fix (`[data] na_values` for missing-value markers such as Stata's ".").
//! An undeclared variable held as text becomes categorical only when it is
//! text: when at least 90% of its values parse as numbers it is taken to be a
//! number with stray values, and the same error is raised (with the option
//! of declaring it categorical). Texts listed in `na_values` are missing in
//! every used column, from any source (CSV, Parquet, OMOP).

use polars::prelude::*;

use crate::error::CohortError;
use crate::spec::{CohortSpec, VarKind};

/// An undeclared text column whose values parse as numbers at least this
/// often is a numeric column with stray values, not a categorical one.
const NUMERIC_SHARE: f64 = 0.9;

/// How many offending values an error shows.
const SHOWN: usize = 5;

/// How the plan uses a column.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Must be numeric (outcome, weights, declared numeric).
    Numeric(&'static str),
    /// Undeclared covariate: numeric if it is one, categorical if it is text.
    Inferred,
    /// Categorical or a code (cluster): any type; only `na_values` applied.
    Levels,
}

/// The columns the plan uses, with their use.
fn uses(spec: &CohortSpec) -> Vec<(String, Use)> {
    let mut out: Vec<(String, Use)> = Vec::new();
    let mut add = |name: &str, u: Use| {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), u));
        }
    };
    for o in &spec.outcomes {
        add(&o.name, Use::Numeric("an outcome"));
    }
    if let Some(w) = &spec.weights {
        add(w, Use::Numeric("the weights"));
    }
    for v in &spec.variables {
        match &v.kind {
            Some(VarKind::Numeric) => add(&v.name, Use::Numeric("declared numeric")),
            Some(VarKind::Categorical { .. }) => add(&v.name, Use::Levels),
            None => add(&v.name, Use::Inferred),
        }
    }
    if let Some(c) = &spec.cluster {
        add(c, Use::Levels);
    }
    out
}

/// The columns the loader types and reads `[data] na_values` in (outcomes,
/// weights, variables, the cluster), each once, in that order.
pub fn typed_columns(spec: &CohortSpec) -> Vec<String> {
    uses(spec).into_iter().map(|(name, _)| name).collect()
}

/// Applies `na_values` to the used text columns and converts the ones used
/// as numbers to Float64, or fails naming the values that do not parse.
pub(crate) fn type_columns(
    mut df: DataFrame,
    spec: &CohortSpec,
    file: &str,
    warnings: &mut Vec<String>,
) -> Result<DataFrame, CohortError> {
    let mut errors: Vec<CohortError> = Vec::new();
    for (name, how) in uses(spec) {
        let Ok(column) = df.column(&name) else {
            continue;
        };
        if column.dtype() != &DataType::String {
            continue;
        }
        let texts: Vec<Option<String>> = column
            .as_materialized_series()
            .str()
            .map(|ca| {
                ca.iter()
                    .map(|v| {
                        v.filter(|t| !spec.na_values.iter().any(|na| na == t))
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let parsed: Vec<Option<f64>> = texts
            .iter()
            .map(|t| t.as_deref().and_then(|t| t.trim().parse::<f64>().ok()))
            .collect();
        let present = texts.iter().filter(|t| t.is_some()).count();
        let numbers = parsed.iter().filter(|p| p.is_some()).count();
        let bad: Vec<(usize, &str)> = texts
            .iter()
            .zip(&parsed)
            .enumerate()
            .filter_map(|(i, (t, p))| match (t, p) {
                (Some(t), None) => Some((i, t.as_str())),
                _ => None,
            })
            .collect();
        let numeric = match how {
            Use::Numeric(_) => true,
            Use::Inferred => present > 0 && numbers as f64 >= NUMERIC_SHARE * present as f64,
            Use::Levels => false,
        };
        if numeric && !bad.is_empty() {
            errors.push(not_numbers(file, &name, how, &bad, spec));
            continue;
        }
        if !numeric {
            warnings.extend(missing_like_levels(&name, &texts));
        }
        let series = if numeric {
            Series::new(name.as_str().into(), parsed)
        } else {
            Series::new(name.as_str().into(), texts)
        };
        df.with_column(series.into_column())
            .map_err(|e| CohortError::InvalidColumn {
                file: file.to_string(),
                column: name.clone(),
                message: e.to_string(),
            })?;
    }
    match errors.len() {
        0 => Ok(df),
        1 => Err(errors.remove(0)),
        _ => Err(CohortError::Several {
            errors: errors.iter().map(ToString::to_string).collect(),
        }),
    }
}

/// Texts that usually mean "missing" in exported data.
const MISSING_LIKE: [&str; 9] = [
    ".", "unknown", "missing", "n/a", "na", "-", "?", "none", "null",
];

/// A warning when a text column used as categories has a level that looks
/// like a missing-value code (not in `na_values`): it would enter the models
/// as a category of its own.
pub fn missing_like_levels(name: &str, texts: &[Option<String>]) -> Option<String> {
    let mut found: Vec<&str> = Vec::new();
    for t in texts.iter().flatten() {
        let t = t.trim();
        if MISSING_LIKE.contains(&t.to_lowercase().as_str()) && !found.contains(&t) {
            found.push(t);
        }
    }
    (!found.is_empty()).then(|| {
        let quoted: Vec<String> = found.iter().map(|t| format!("{t:?}")).collect();
        format!(
            "column `{name}` has the level(s) {} that look like missing-value codes; they are \
             analysed as categories of their own. If they mean \"missing\", list them in [data] \
             na_values",
            quoted.join(", ")
        )
    })
}

/// The error for values that do not parse as numbers.
fn not_numbers(
    file: &str,
    column: &str,
    how: Use,
    bad: &[(usize, &str)],
    spec: &CohortSpec,
) -> CohortError {
    let shown: Vec<String> = bad
        .iter()
        .take(SHOWN)
        .map(|(row, value)| format!("row {}: {value:?}", row + 1))
        .collect();
    let role = match how {
        Use::Numeric(role) => format!(" ({role})"),
        _ => String::new(),
    };
    // The fix: the current na_values plus the offending texts.
    let mut na: Vec<String> = spec.na_values.iter().map(|v| format!("{v:?}")).collect();
    for (_, value) in bad {
        let q = format!("{value:?}");
        if !na.contains(&q) {
            na.push(q);
        }
    }
    let mut message = format!(
        "{} value(s) are not numbers{role}: {}{} (rows counted from 1 after the header). If \
         they mean \"missing\", list them in [data] na_values: na_values = [{}]; otherwise \
         correct the data",
        bad.len(),
        shown.join(", "),
        if bad.len() > SHOWN { ", …" } else { "" },
        na.join(", ")
    );
    if how == Use::Inferred {
        message.push_str(&format!(
            "; if `{column}` is a code, declare it [variables] {column} = {{ type = \"categorical\" }}"
        ));
    }
    CohortError::InvalidColumn {
        file: file.to_string(),
        column: column.to_string(),
        message,
    }
}
