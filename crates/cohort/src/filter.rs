//! Row filters (`[cohort] filters`): a small expression language over columns,
//! compiled to polars expressions.
//!
//! ```text
//! age >= 18
//! status != 'emergent' and (age < 80 or female == 1)
//! insurance in ['medicare', 'medicaid']
//! adi is not null
//! ```
//! Operators: `==` (or `=`), `!=`, `<`, `<=`, `>`, `>=`, `in [...]`, `is null`,
//! `is not null`; combined with `and`/`&&`, `or`/`||`, `not` and parentheses.
//! Literals: numbers, quoted strings, `true`/`false`.
//!
//! The grammar lives in one place, `healthgap_sql::parse_filter`, which also
//! renders the same filters as SQL for warehouses; this module translates its
//! tree into a polars expression.

use healthgap_sql::{CmpOp, Expr as Tree, Literal, SqlError};
use polars::prelude::*;

use crate::error::CohortError;

/// A parsed filter: its polars expression and the columns it reads.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The text as written.
    pub text: String,
    /// The predicate (rows where it is null are excluded).
    pub expr: Expr,
    /// Columns referenced.
    pub columns: Vec<String>,
}

/// Parses one filter.
pub fn parse(text: &str) -> Result<Filter, CohortError> {
    let err = |message: String| CohortError::Filter {
        filter: text.to_string(),
        message,
    };
    let parsed = healthgap_sql::parse_filter(text).map_err(|e| match e {
        SqlError::Filter { message, .. } => err(message),
        other => err(other.to_string()),
    })?;
    Ok(Filter {
        text: text.to_string(),
        expr: polars_expr(&parsed.expr).map_err(err)?,
        columns: parsed.columns,
    })
}

/// The polars expression of a filter's tree (the filter grammar's nodes:
/// comparisons of a column with a literal, `in` lists, null tests, `and`,
/// `or`, `not`).
fn polars_expr(tree: &Tree) -> Result<Expr, String> {
    Ok(match tree {
        Tree::Column(name) => col(name.as_str()),
        Tree::Lit(value) => literal(value)?,
        Tree::Cmp(left, op, right) => {
            let (l, r) = (polars_expr(left)?, polars_expr(right)?);
            match op {
                CmpOp::Eq => l.eq(r),
                CmpOp::Ne => l.neq(r),
                CmpOp::Lt => l.lt(r),
                CmpOp::Le => l.lt_eq(r),
                CmpOp::Gt => l.gt(r),
                CmpOp::Ge => l.gt_eq(r),
            }
        }
        Tree::And(left, right) => polars_expr(left)?.and(polars_expr(right)?),
        Tree::Or(left, right) => polars_expr(left)?.or(polars_expr(right)?),
        Tree::Not(inner) => polars_expr(inner)?.not(),
        Tree::IsNull { expr, negated } => {
            let e = polars_expr(expr)?;
            if *negated {
                e.is_not_null()
            } else {
                e.is_null()
            }
        }
        Tree::InList { expr, list } => {
            polars_expr(expr)?.is_in(lit(series(list)?).implode(true), false)
        }
        other => return Err(format!("not a filter expression: {other:?}")),
    })
}

fn literal(value: &Literal) -> Result<Expr, String> {
    Ok(match value {
        Literal::Number(v) => lit(*v),
        Literal::Str(s) => lit(s.clone()),
        Literal::Bool(b) => lit(*b),
        Literal::Null => return Err("compare with `is null`, not with null".into()),
    })
}

/// An `in` list as a series (the parser allows only numbers or only texts).
fn series(list: &[Literal]) -> Result<Series, String> {
    let numbers: Option<Vec<f64>> = list
        .iter()
        .map(|v| {
            if let Literal::Number(x) = v {
                Some(*x)
            } else {
                None
            }
        })
        .collect();
    if let Some(numbers) = numbers {
        return Ok(Series::new("values".into(), numbers));
    }
    let texts: Option<Vec<String>> = list
        .iter()
        .map(|v| {
            if let Literal::Str(x) = v {
                Some(x.clone())
            } else {
                None
            }
        })
        .collect();
    texts
        .map(|t| Series::new("values".into(), t))
        .ok_or_else(|| "a list must hold only numbers or only quoted texts".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        df!(
            "age" => [17i64, 18, 65, 80, 90],
            "status" => ["elective", "urgent", "emergent", "elective", "urgent"],
            "adi" => [Some(10.0), None, Some(50.0), Some(99.0), Some(3.0)],
        )
        .unwrap()
    }

    fn count(text: &str) -> usize {
        let f = parse(text).unwrap();
        frame().lazy().filter(f.expr).collect().unwrap().height()
    }

    #[test]
    fn comparisons_lists_nulls_and_logic() {
        assert_eq!(count("age >= 18"), 4);
        assert_eq!(count("age > 18 and status != 'urgent'"), 2);
        assert_eq!(count("status in ['urgent', \"emergent\"]"), 3);
        assert_eq!(count("age in [17, 90]"), 2);
        assert_eq!(count("adi is null"), 1);
        assert_eq!(count("adi is not null && (age < 70 || age == 90)"), 3);
        assert_eq!(count("not (age < 65)"), 3);
        assert_eq!(count("age >= -1.5e1"), 5);
    }

    /// The grammar's errors are tested in healthgap-sql; here, that they
    /// arrive as the cohort's filter error quoting the filter.
    #[test]
    fn bad_filters_are_errors_that_quote_the_filter() {
        let e = parse("status == urgent").unwrap_err().to_string();
        assert!(
            e.starts_with("filter `status == urgent`: expected a value"),
            "{e}"
        );
        assert_eq!(
            parse("age >= 18 and female == 1").unwrap().columns,
            vec!["age", "female"]
        );
    }
}
