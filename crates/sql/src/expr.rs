//! A typed expression tree, rendered per dialect with every name and value
//! quoted by [`Dialect`]. No text from a user is ever spliced into SQL: a
//! column name becomes a quoted identifier and a value a quoted literal.
//!
//! Two rendering contexts:
//! - a **condition** (`WHERE`, `CASE WHEN`): comparisons, `AND`/`OR`/`NOT`,
//!   `IS NULL`, `IN`;
//! - a **value** (a `SELECT` column, an operand): a condition used as a value
//!   is written `CASE WHEN c THEN 1 WHEN NOT (c) THEN 0 END` (1, 0, or NULL
//!   when unknown), because T-SQL has no boolean values in `SELECT`; the same
//!   text is used in every dialect.

use crate::dialect::Dialect;
use crate::error::SqlError;

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A finite number.
    Number(f64),
    /// A text.
    Str(String),
    /// `true` or `false` (`1`/`0` in T-SQL).
    Bool(bool),
    /// SQL `NULL`.
    Null,
}

impl Literal {
    /// The literal's SQL text in `dialect`.
    pub fn render(&self, dialect: Dialect) -> Result<String, SqlError> {
        match self {
            Literal::Number(v) => dialect.number(*v),
            Literal::Str(s) => dialect.quote_str(s),
            Literal::Bool(b) => Ok(dialect.boolean(*b).to_string()),
            Literal::Null => Ok("NULL".to_string()),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl ArithOp {
    fn sql(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }
}

/// An expression over the columns of one table.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column, by its exact name (quoted when rendered; a `.` is part of
    /// the name, not a qualifier).
    Column(String),
    /// A literal.
    Lit(Literal),
    /// `left op right`.
    Cmp(Box<Expr>, CmpOp, Box<Expr>),
    /// `left AND right`.
    And(Box<Expr>, Box<Expr>),
    /// `left OR right`.
    Or(Box<Expr>, Box<Expr>),
    /// `NOT (e)`.
    Not(Box<Expr>),
    /// `e IS NULL`, or `e IS NOT NULL` when `negated`.
    IsNull {
        /// The operand.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `e IN (v1, v2, …)`.
    InList {
        /// The operand.
        expr: Box<Expr>,
        /// The values (at least one).
        list: Vec<Literal>,
    },
    /// `(left op right)`.
    Arith(Box<Expr>, ArithOp, Box<Expr>),
    /// `CASE WHEN c1 THEN v1 … ELSE e END` (no `ELSE`: NULL).
    Case {
        /// The (condition, value) branches, in order.
        whens: Vec<(Expr, Expr)>,
        /// The value when no condition holds.
        otherwise: Option<Box<Expr>>,
    },
    /// `CAST(e AS <float type>)`.
    CastFloat(Box<Expr>),
}

impl Expr {
    /// A column reference.
    pub fn col(name: impl Into<String>) -> Expr {
        Expr::Column(name.into())
    }

    /// A number literal.
    pub fn num(v: f64) -> Expr {
        Expr::Lit(Literal::Number(v))
    }

    /// A text literal.
    pub fn text(s: impl Into<String>) -> Expr {
        Expr::Lit(Literal::Str(s.into()))
    }

    /// `self op other`.
    pub fn cmp(self, op: CmpOp, other: Expr) -> Expr {
        Expr::Cmp(Box::new(self), op, Box::new(other))
    }

    /// `self AND other`.
    pub fn and(self, other: Expr) -> Expr {
        Expr::And(Box::new(self), Box::new(other))
    }

    /// `self OR other`.
    pub fn or(self, other: Expr) -> Expr {
        Expr::Or(Box::new(self), Box::new(other))
    }

    /// `NOT self`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }

    /// `self IS NULL` (`IS NOT NULL` when `negated`).
    pub fn is_null(self, negated: bool) -> Expr {
        Expr::IsNull {
            expr: Box::new(self),
            negated,
        }
    }

    /// `self IN (list)`.
    pub fn in_list(self, list: Vec<Literal>) -> Expr {
        Expr::InList {
            expr: Box::new(self),
            list,
        }
    }

    /// `(self op other)`.
    pub fn arith(self, op: ArithOp, other: Expr) -> Expr {
        Expr::Arith(Box::new(self), op, Box::new(other))
    }

    /// `CAST(self AS <float type>)`.
    pub fn cast_float(self) -> Expr {
        Expr::CastFloat(Box::new(self))
    }

    /// Whether the expression is a condition (true/false/unknown) rather than
    /// a value.
    pub fn is_condition(&self) -> bool {
        matches!(
            self,
            Expr::Cmp(..)
                | Expr::And(..)
                | Expr::Or(..)
                | Expr::Not(..)
                | Expr::IsNull { .. }
                | Expr::InList { .. }
        )
    }

    /// The expression with each column `c` replaced by `by(c)` where that
    /// is `Some` (e.g. a column read through `CASE WHEN c IN (…) THEN NULL
    /// ELSE c END`).
    pub fn map_columns(&self, by: &dyn Fn(&str) -> Option<Expr>) -> Expr {
        let map = |e: &Expr| Box::new(e.map_columns(by));
        match self {
            Expr::Column(c) => by(c).unwrap_or_else(|| self.clone()),
            Expr::Lit(_) => self.clone(),
            Expr::Cmp(a, op, b) => Expr::Cmp(map(a), *op, map(b)),
            Expr::And(a, b) => Expr::And(map(a), map(b)),
            Expr::Or(a, b) => Expr::Or(map(a), map(b)),
            Expr::Arith(a, op, b) => Expr::Arith(map(a), *op, map(b)),
            Expr::Not(e) => Expr::Not(map(e)),
            Expr::CastFloat(e) => Expr::CastFloat(map(e)),
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: map(expr),
                negated: *negated,
            },
            Expr::InList { expr, list } => Expr::InList {
                expr: map(expr),
                list: list.clone(),
            },
            Expr::Case { whens, otherwise } => Expr::Case {
                whens: whens
                    .iter()
                    .map(|(c, v)| (c.map_columns(by), v.map_columns(by)))
                    .collect(),
                otherwise: otherwise.as_deref().map(map),
            },
        }
    }

    /// The column names the expression reads, in order of first use.
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns(&self, out: &mut Vec<String>) {
        match self {
            Expr::Column(c) => {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
            Expr::Lit(_) => {}
            Expr::Cmp(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) | Expr::Arith(a, _, b) => {
                a.collect_columns(out);
                b.collect_columns(out);
            }
            Expr::Not(e) | Expr::CastFloat(e) => e.collect_columns(out),
            Expr::IsNull { expr, .. } | Expr::InList { expr, .. } => expr.collect_columns(out),
            Expr::Case { whens, otherwise } => {
                for (c, v) in whens {
                    c.collect_columns(out);
                    v.collect_columns(out);
                }
                if let Some(e) = otherwise {
                    e.collect_columns(out);
                }
            }
        }
    }

    /// Renders the expression as a condition (for `WHERE` and `CASE WHEN`).
    ///
    /// Errors: the expression is a value (a column, a literal, arithmetic, a
    /// `CASE` or a cast) — write a comparison instead — or a name or value
    /// cannot be quoted.
    pub fn render_condition(&self, d: Dialect) -> Result<String, SqlError> {
        Ok(match self {
            Expr::Cmp(a, op, b) => {
                format!("{} {} {}", a.render_value(d)?, op.sql(), b.render_value(d)?)
            }
            Expr::And(a, b) => format!(
                "({} AND {})",
                a.render_condition(d)?,
                b.render_condition(d)?
            ),
            Expr::Or(a, b) => format!("({} OR {})", a.render_condition(d)?, b.render_condition(d)?),
            Expr::Not(e) => format!("NOT ({})", e.render_condition(d)?),
            Expr::IsNull { expr, negated } => format!(
                "{} IS {}NULL",
                expr.render_value(d)?,
                if *negated { "NOT " } else { "" }
            ),
            Expr::InList { expr, list } => {
                if list.is_empty() {
                    return Err(SqlError::Spec("an IN list needs at least one value".into()));
                }
                let items = list
                    .iter()
                    .map(|l| l.render(d))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("{} IN ({})", expr.render_value(d)?, items.join(", "))
            }
            other => {
                return Err(SqlError::NotACondition {
                    expr: other.render_value(d)?,
                });
            }
        })
    }

    /// Renders the expression as a value (for `SELECT` lists and operands).
    /// A condition becomes `CASE WHEN c THEN 1 WHEN NOT (c) THEN 0 END`.
    pub fn render_value(&self, d: Dialect) -> Result<String, SqlError> {
        if self.is_condition() {
            let c = self.render_condition(d)?;
            return Ok(format!("CASE WHEN {c} THEN 1 WHEN NOT ({c}) THEN 0 END"));
        }
        Ok(match self {
            Expr::Column(name) => d.quote_ident(name)?,
            Expr::Lit(l) => l.render(d)?,
            Expr::Arith(a, op, b) => {
                format!(
                    "({} {} {})",
                    a.render_value(d)?,
                    op.sql(),
                    b.render_value(d)?
                )
            }
            Expr::CastFloat(e) => d.cast_float(&e.render_value(d)?),
            Expr::Case { whens, otherwise } => {
                if whens.is_empty() {
                    return Err(SqlError::Spec("a CASE needs at least one WHEN".into()));
                }
                let mut s = String::from("CASE");
                for (c, v) in whens {
                    s.push_str(&format!(
                        " WHEN {} THEN {}",
                        c.render_condition(d)?,
                        v.render_value(d)?
                    ));
                }
                if let Some(e) = otherwise {
                    s.push_str(&format!(" ELSE {}", e.render_value(d)?));
                }
                s.push_str(" END");
                s
            }
            _ => unreachable!("conditions are handled above"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_used_as_values_become_case_expressions() {
        let e = Expr::col("age").cmp(CmpOp::Ge, Expr::num(18.0));
        assert_eq!(e.render_condition(Dialect::TSql).unwrap(), "[age] >= 18");
        assert_eq!(
            e.render_value(Dialect::TSql).unwrap(),
            "CASE WHEN [age] >= 18 THEN 1 WHEN NOT ([age] >= 18) THEN 0 END"
        );
    }

    #[test]
    fn values_are_not_conditions() {
        let e = Expr::col("female");
        assert!(matches!(
            e.render_condition(Dialect::Postgres),
            Err(SqlError::NotACondition { .. })
        ));
    }

    #[test]
    fn negative_numbers_cannot_form_a_comment() {
        let e = Expr::col("x").arith(ArithOp::Sub, Expr::num(-1.0));
        let sql = e.render_value(Dialect::Postgres).unwrap();
        assert_eq!(sql, "(\"x\" - (-1))");
        assert!(!sql.contains("--"));
    }
}
