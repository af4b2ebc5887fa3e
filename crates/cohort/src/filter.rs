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
//! Literals: numbers, quoted strings, `true`/`false`. A quoted
//! `'YYYY-MM-DD'` compared with a date (or datetime) column is read as that
//! date (midnight for a datetime), so `surgery_date >= '2020-01-01'` works on
//! Parquet dates as on CSV text.
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
    /// The parsed tree (to type literals against a frame's columns).
    tree: Tree,
}

impl Filter {
    /// The predicate with its literals typed against `schema`: a quoted date
    /// compared with a date or datetime column becomes a date (see the module
    /// doc); everything else as [`Filter::expr`].
    pub fn typed(&self, schema: &Schema) -> Result<Expr, String> {
        typed_expr(&self.tree, Some(schema))
    }
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
        expr: typed_expr(&parsed.expr, None).map_err(err)?,
        columns: parsed.columns,
        tree: parsed.expr,
    })
}

/// The polars expression of a filter's tree (the filter grammar's nodes:
/// comparisons of a column with a literal, `in` lists, null tests, `and`,
/// `or`, `not`), its literals typed against `schema` when given.
fn typed_expr(tree: &Tree, schema: Option<&Schema>) -> Result<Expr, String> {
    let polars_expr = |t: &Tree| typed_expr(t, schema);
    Ok(match tree {
        Tree::Column(name) => col(name.as_str()),
        Tree::Lit(value) => literal(value)?,
        Tree::Cmp(left, op, right) => {
            let (l, r) = match (&**left, &**right) {
                (Tree::Column(c), Tree::Lit(v)) => (polars_expr(left)?, operand(c, v, schema)?),
                _ => (polars_expr(left)?, polars_expr(right)?),
            };
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

/// A literal compared with column `column`: a quoted date against a date or
/// datetime column is that date (checked here, so a wrong one is named);
/// otherwise the literal itself.
fn operand(column: &str, value: &Literal, schema: Option<&Schema>) -> Result<Expr, String> {
    let dtype = schema.and_then(|s| s.get(column));
    let (Some(dtype), Literal::Str(text)) = (dtype, value) else {
        return literal(value);
    };
    if !matches!(dtype, DataType::Date | DataType::Datetime(..)) {
        return literal(value);
    }
    if !is_iso_date(text) {
        return Err(format!(
            "`{column}` is a date column, and '{text}' is not a date written YYYY-MM-DD"
        ));
    }
    let date = lit(text.clone()).str().to_date(StrptimeOptions {
        format: Some("%Y-%m-%d".into()),
        strict: true,
        exact: true,
        cache: false,
    });
    Ok(date.cast(dtype.clone()))
}

/// Whether `s` is a valid calendar date YYYY-MM-DD (Gregorian leap years).
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    if !s[0..4]
        .bytes()
        .chain(s[5..7].bytes())
        .chain(s[8..10].bytes())
        .all(|c| c.is_ascii_digit())
    {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
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

    /// A quoted date against date and datetime columns (Parquet's types):
    /// read as that date; a malformed or impossible date is named.
    #[test]
    fn quoted_dates_compare_with_date_and_datetime_columns() {
        // 2019-12-31, 2020-01-01, 2020-01-02, 2020-03-01 as days since 1970.
        let days = Series::new("d".into(), [18261i32, 18262, 18263, 18322]);
        let date = days.cast(&DataType::Date).unwrap();
        let stamp = date
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap()
            .with_name("t".into());
        let df = DataFrame::new(4, vec![date.into(), stamp.into()]).unwrap();
        let count = |text: &str| {
            let f = parse(text).unwrap();
            let e = f.typed(df.schema()).unwrap();
            df.clone().lazy().filter(e).collect().unwrap().height()
        };
        assert_eq!(count("d >= '2020-01-01'"), 3);
        assert_eq!(count("d == '2020-01-02'"), 1);
        assert_eq!(count("t < '2020-02-29' and d != '2019-12-31'"), 2);
        for bad in ["d > '2020-02-30'", "t >= '01/02/2020'", "d < '2021-13-01'"] {
            let e = parse(bad).unwrap().typed(df.schema()).unwrap_err();
            assert!(
                e.contains("is a date column") && e.contains("YYYY-MM-DD"),
                "{e}"
            );
        }
        assert!(is_iso_date("2024-02-29") && !is_iso_date("2023-02-29"));
        assert!(!is_iso_date("2000-1-011") && !is_iso_date("+200-01-01"));
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
