//! The cohort as a common table expression: the source table, the filters in
//! order, and the analysis columns under fixed internal names, plus the
//! attrition counts after each filter.
//!
//! The CTE's output columns have generated names ([`GROUP`], `y1`, `x1`, …;
//! see [`OUTCOME_PREFIX`] and [`DESIGN_PREFIX`]), so the queries built on it
//! never repeat a user's name; user names appear only as quoted source
//! columns.

use crate::dialect::{Dialect, TableName};
use crate::error::SqlError;
use crate::expr::{CmpOp, Expr, Literal};
use crate::filter::parse_filter;

/// The name of the cohort CTE (prefixed so that it cannot shadow a real table
/// named `cohort`; in T-SQL a CTE that names itself would be recursive).
pub const COHORT: &str = "hg_cohort";
/// The CTE column holding the group label.
pub const GROUP: &str = "grp";
/// The CTE column holding the hospital.
pub const HOSPITAL: &str = "hosp";
/// The CTE column holding the cluster.
pub const CLUSTER: &str = "clus";
/// The CTE column holding the weight (as a float).
pub const WEIGHT: &str = "wt";
/// Outcome k (from 1) is the CTE column `y<k>` (as a float).
pub const OUTCOME_PREFIX: &str = "y";
/// Design column j (from 1) is the CTE column `x<j>` (as a float).
pub const DESIGN_PREFIX: &str = "x";

/// One attrition step: a label (the filter as written) and its condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The label in the attrition table.
    pub label: String,
    /// Rows where the condition is false or unknown are excluded.
    pub condition: Expr,
}

impl Step {
    /// The step of one `[cohort] filters` string (see [`parse_filter`]).
    pub fn from_filter(text: &str) -> Result<Step, SqlError> {
        let f = parse_filter(text)?;
        Ok(Step {
            label: f.text,
            condition: f.expr,
        })
    }
}

/// A covariate of the design.
#[derive(Debug, Clone, PartialEq)]
pub enum Covariate {
    /// One numeric design column.
    Numeric {
        /// The term name (the variable).
        name: String,
        /// Its value.
        expr: Expr,
    },
    /// One 0/1 design column per level other than the reference, named
    /// `name=level`: `CASE WHEN e IS NULL THEN NULL WHEN e = level THEN 1
    /// ELSE 0 END`.
    Categorical {
        /// The variable.
        name: String,
        /// Its value.
        expr: Expr,
        /// The reference level (no column).
        reference: Literal,
        /// Every level, the reference included, in design order.
        levels: Vec<Literal>,
    },
}

/// An outcome column.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The outcome's name.
    pub name: String,
    /// Its value (a 0/1 or continuous expression).
    pub expr: Expr,
}

/// One design column of the cohort CTE.
#[derive(Debug, Clone, PartialEq)]
pub struct DesignColumn {
    /// The CTE column (`x1`, `x2`, …).
    pub alias: String,
    /// The term (`age`, `insurance=medicaid`).
    pub term: String,
    /// The float-cast value.
    pub expr: Expr,
}

/// A cohort definition: where the rows are, which rows, and the analysis
/// columns.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortQuery {
    /// The source table (`table` or `schema.table`, e.g. an OMOP-like view).
    pub source: TableName,
    /// The filters, applied in order (each is an attrition step).
    pub steps: Vec<Step>,
    /// The group label (a key of the moments).
    pub group: Option<Expr>,
    /// The outcomes.
    pub outcomes: Vec<Outcome>,
    /// The row weight; none means every row weighs 1.
    pub weight: Option<Expr>,
    /// The hospital (a key of the moments).
    pub hospital: Option<Expr>,
    /// The cluster (a key of the moments).
    pub cluster: Option<Expr>,
    /// The covariates, in design order.
    pub covariates: Vec<Covariate>,
    /// Columns whose listed texts are missing values (`[data] na_values`):
    /// every expression of the cohort reads such a column as `CASE WHEN c
    /// IN (…) THEN NULL ELSE c END`, in the steps, the keys and the moments.
    pub missing_texts: Option<MissingTexts>,
    /// Text columns read as numbers: `CAST(c AS <float>)` in every
    /// expression (after [`CohortQuery::missing_texts`]), so that a filter
    /// compares numbers, as the loader does once it has typed the column.
    pub number_texts: Vec<String>,
}

/// Texts read as NULL in some columns of the source.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingTexts {
    /// The columns (text columns of the source).
    pub columns: Vec<String>,
    /// The texts (at least one).
    pub values: Vec<Literal>,
}

fn level_text(l: &Literal) -> String {
    match l {
        Literal::Number(v) => crate::dialect::format_number(*v)
            .unwrap_or_else(|_| v.to_string())
            .trim_start_matches('(')
            .trim_end_matches(')')
            .to_string(),
        Literal::Str(s) => s.clone(),
        Literal::Bool(b) => b.to_string(),
        Literal::Null => "null".to_string(),
    }
}

impl CohortQuery {
    /// A cohort of every row of `source`, with no analysis columns yet.
    pub fn new(source: TableName) -> Self {
        CohortQuery {
            source,
            steps: Vec::new(),
            group: None,
            outcomes: Vec::new(),
            weight: None,
            hospital: None,
            cluster: None,
            covariates: Vec::new(),
            missing_texts: None,
            number_texts: Vec::new(),
        }
    }

    /// `e` as the cohort reads it: each column of
    /// [`CohortQuery::missing_texts`] through `CASE WHEN c IN (…) THEN NULL
    /// ELSE c END`, and each of [`CohortQuery::number_texts`] cast to float.
    pub fn read(&self, e: &Expr) -> Expr {
        if self.missing_texts.is_none() && self.number_texts.is_empty() {
            return e.clone();
        }
        e.map_columns(&|c| {
            let missing = self
                .missing_texts
                .as_ref()
                .filter(|m| m.columns.iter().any(|n| n == c));
            let number = self.number_texts.iter().any(|n| n == c);
            if missing.is_none() && !number {
                return None;
            }
            let value = match missing {
                Some(m) => Expr::Case {
                    whens: vec![(
                        Expr::col(c).in_list(m.values.clone()),
                        Expr::Lit(Literal::Null),
                    )],
                    otherwise: Some(Box::new(Expr::col(c))),
                },
                None => Expr::col(c),
            };
            Some(if number { value.cast_float() } else { value })
        })
    }

    /// Appends the step of one `[cohort] filters` string.
    pub fn filter(mut self, text: &str) -> Result<Self, SqlError> {
        self.steps.push(Step::from_filter(text)?);
        Ok(self)
    }

    /// Sets the group to `column` and appends the step that keeps the rows of
    /// the analysed levels, labelled as the cohort crate labels it
    /// (`race in {White, Black}`).
    pub fn groups(mut self, column: &str, levels: Vec<Literal>) -> Self {
        let names: Vec<String> = levels.iter().map(level_text).collect();
        self.steps.push(Step {
            label: format!("{column} in {{{}}}", names.join(", ")),
            condition: Expr::col(column).in_list(levels),
        });
        self.group = Some(Expr::col(column));
        self
    }

    /// The design columns, in order: a numeric covariate gives one, a
    /// categorical covariate one per non-reference level.
    ///
    /// Errors: a categorical reference that is not among its levels, or a
    /// level listed twice.
    pub fn design_columns(&self) -> Result<Vec<DesignColumn>, SqlError> {
        let mut out = Vec::new();
        let mut push = |term: String, expr: Expr| {
            let alias = format!("{DESIGN_PREFIX}{}", out.len() + 1);
            out.push(DesignColumn {
                alias,
                term,
                expr: expr.cast_float(),
            });
        };
        for c in &self.covariates {
            match c {
                Covariate::Numeric { name, expr } => push(name.clone(), expr.clone()),
                Covariate::Categorical {
                    name,
                    expr,
                    reference,
                    levels,
                } => {
                    if !levels.contains(reference) {
                        return Err(SqlError::Spec(format!(
                            "categorical `{name}`: the reference level `{}` is not among its levels",
                            level_text(reference)
                        )));
                    }
                    for (i, l) in levels.iter().enumerate() {
                        if levels[..i].contains(l) {
                            return Err(SqlError::Spec(format!(
                                "categorical `{name}`: the level `{}` is listed twice",
                                level_text(l)
                            )));
                        }
                        if l == reference {
                            continue;
                        }
                        let dummy = Expr::Case {
                            whens: vec![
                                (expr.clone().is_null(false), Expr::Lit(Literal::Null)),
                                (
                                    expr.clone().cmp(CmpOp::Eq, Expr::Lit(l.clone())),
                                    Expr::num(1.0),
                                ),
                            ],
                            otherwise: Some(Box::new(Expr::num(0.0))),
                        };
                        push(format!("{name}={}", level_text(l)), dummy);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every column of the CTE as (alias, value): the group, hospital and
    /// cluster as they are, the weight, outcomes and design columns cast to
    /// float.
    pub fn output_columns(&self) -> Result<Vec<(String, Expr)>, SqlError> {
        let mut cols = Vec::new();
        if let Some(g) = &self.group {
            cols.push((GROUP.to_string(), g.clone()));
        }
        if let Some(h) = &self.hospital {
            cols.push((HOSPITAL.to_string(), h.clone()));
        }
        if let Some(c) = &self.cluster {
            cols.push((CLUSTER.to_string(), c.clone()));
        }
        if let Some(w) = &self.weight {
            cols.push((WEIGHT.to_string(), w.clone().cast_float()));
        }
        for (k, o) in self.outcomes.iter().enumerate() {
            cols.push((
                format!("{OUTCOME_PREFIX}{}", k + 1),
                o.expr.clone().cast_float(),
            ));
        }
        for d in self.design_columns()? {
            cols.push((d.alias, d.expr));
        }
        Ok(cols)
    }

    /// `WHERE c1\n    AND c2 …` over the steps, or an empty string without
    /// steps.
    fn where_clause(&self, d: Dialect, indent: &str) -> Result<String, SqlError> {
        let conds = self
            .steps
            .iter()
            .map(|s| self.read(&s.condition).render_condition(d))
            .collect::<Result<Vec<_>, _>>()?;
        if conds.is_empty() {
            return Ok(String::new());
        }
        Ok(format!(
            "\n{indent}WHERE {}",
            conds.join(&format!("\n{indent}  AND "))
        ))
    }

    /// The cohort CTE:
    ///
    /// ```text
    /// WITH hg_cohort AS (
    ///   SELECT
    ///     <value> AS "grp",
    ///     …
    ///   FROM <source>
    ///   WHERE <step 1>
    ///     AND <step 2> …
    /// )
    /// ```
    /// Errors: no analysis column, or a name or value that cannot be quoted.
    pub fn render_cte(&self, d: Dialect) -> Result<String, SqlError> {
        let cols = self.output_columns()?;
        if cols.is_empty() {
            return Err(SqlError::Spec(
                "the cohort has no analysis columns (group, outcome, weight, hospital, cluster or covariates)"
                    .into(),
            ));
        }
        let items = cols
            .iter()
            .map(|(alias, e)| {
                Ok(format!(
                    "    {} AS {}",
                    self.read(e).render_value(d)?,
                    d.quote_ident(alias)?
                ))
            })
            .collect::<Result<Vec<_>, SqlError>>()?;
        Ok(format!(
            "WITH {COHORT} AS (\n  SELECT\n{}\n  FROM {}{}\n)",
            items.join(",\n"),
            d.quote_table(&self.source)?,
            self.where_clause(d, "  ")?
        ))
    }

    /// The attrition query: one row whose column `n0` counts the source's
    /// rows and `n<k>` the rows remaining after steps 1..=k (a row remains
    /// when every condition so far is true), in a single pass.
    pub fn attrition_query(&self, d: Dialect) -> Result<AttritionQuery, SqlError> {
        let mut items = vec![format!("  COUNT(*) AS {}", d.quote_ident("n0")?)];
        let mut steps = vec![AttritionColumn {
            alias: "n0".into(),
            label: "rows read".into(),
        }];
        let mut conds: Vec<String> = Vec::new();
        for (k, s) in self.steps.iter().enumerate() {
            conds.push(self.read(&s.condition).render_condition(d)?);
            let alias = format!("n{}", k + 1);
            items.push(format!(
                "  COUNT(CASE WHEN {} THEN 1 END) AS {}",
                conds.join(" AND "),
                d.quote_ident(&alias)?
            ));
            steps.push(AttritionColumn {
                alias,
                label: s.label.clone(),
            });
        }
        Ok(AttritionQuery {
            sql: format!(
                "SELECT\n{}\nFROM {}",
                items.join(",\n"),
                d.quote_table(&self.source)?
            ),
            columns: steps,
        })
    }
}

impl CohortQuery {
    /// The types of `columns` of the source, without a row: `SELECT "a", "b"
    /// FROM <source> WHERE 1 = 0` (a client reads the result set's column
    /// types).
    pub fn types_query(&self, d: Dialect, columns: &[String]) -> Result<String, SqlError> {
        if columns.is_empty() {
            return Err(SqlError::Spec(
                "a types query needs at least one column".into(),
            ));
        }
        let names = columns
            .iter()
            .map(|c| d.quote_ident(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!(
            "SELECT {}\nFROM {}\nWHERE 1 = 0",
            names.join(", "),
            d.quote_table(&self.source)?
        ))
    }

    /// Row counts of the cohort (after every step) per group: `grp`, `n`
    /// (the rows), then `c1`, `c2`, … counting the rows where each of
    /// `conditions` holds, ordered by the group. Only counts leave the
    /// engine.
    ///
    /// Errors: no group, or a condition that cannot be rendered.
    pub fn count_query(&self, d: Dialect, conditions: &[Expr]) -> Result<String, SqlError> {
        let group = self
            .group
            .as_ref()
            .ok_or_else(|| SqlError::Spec("a count query needs the cohort's group".into()))?;
        let group = self.read(group);
        let g = d.quote_ident(GROUP)?;
        let mut items = vec![
            format!("  {} AS {g}", group.render_value(d)?),
            format!("  COUNT(*) AS {}", d.quote_ident("n")?),
        ];
        let read: Vec<Expr> = conditions.iter().map(|c| self.read(c)).collect();
        items.extend(condition_counts(d, &read)?);
        Ok(format!(
            "SELECT\n{}\nFROM {}{}\nGROUP BY {}\nORDER BY {}",
            items.join(",\n"),
            d.quote_table(&self.source)?,
            self.where_clause(d, "")?,
            group.render_value(d)?,
            group.render_value(d)?
        ))
    }

    /// Counts over every row of the source, before any step and reading the
    /// columns as they are (without [`CohortQuery::missing_texts`]): one row
    /// whose column `c<k>` counts the rows where the k-th of `conditions`
    /// holds.
    ///
    /// Errors: no condition, or a condition that cannot be rendered.
    pub fn source_count_query(&self, d: Dialect, conditions: &[Expr]) -> Result<String, SqlError> {
        if conditions.is_empty() {
            return Err(SqlError::Spec(
                "a count query needs at least one condition".into(),
            ));
        }
        let items = condition_counts(d, conditions)?;
        Ok(format!(
            "SELECT\n{}\nFROM {}",
            items.join(",\n"),
            d.quote_table(&self.source)?
        ))
    }

    /// Whether the text column `column` holds numbers, over every row of the
    /// source (no step; [`CohortQuery::missing_texts`] read as NULL): one
    /// row of `present` (values not NULL), `numbers` (those that are finite
    /// decimal numbers, [`Dialect::is_number_text`]) and `low`, `high` (the
    /// least and greatest value that is not, NULL when there is none). Only
    /// counts and at most two values leave the engine.
    pub fn number_texts_query(&self, d: Dialect, column: &str) -> Result<String, SqlError> {
        let v = self.read(&Expr::col(column)).render_value(d)?;
        let number = d.is_number_text(&v)?;
        let other = format!("CASE WHEN NOT ({number}) THEN {v} END");
        Ok(format!(
            "SELECT\n  COUNT({v}) AS {},\n  COUNT(CASE WHEN {number} THEN 1 END) AS {},\n  MIN({other}) AS {},\n  MAX({other}) AS {}\nFROM {}",
            d.quote_ident("present")?,
            d.quote_ident("numbers")?,
            d.quote_ident("low")?,
            d.quote_ident("high")?,
            d.quote_table(&self.source)?
        ))
    }

    /// The levels of `value` in the cohort (after every step) and their
    /// rows: columns `level` and `n`, one row per level (NULL included),
    /// ordered by the level.
    pub fn levels_query(&self, d: Dialect, value: &Expr) -> Result<String, SqlError> {
        let v = self.read(value).render_value(d)?;
        Ok(format!(
            "SELECT\n  {v} AS {},\n  COUNT(*) AS {}\nFROM {}{}\nGROUP BY {v}\nORDER BY {v}",
            d.quote_ident("level")?,
            d.quote_ident("n")?,
            d.quote_table(&self.source)?,
            self.where_clause(d, "")?
        ))
    }
}

/// The select items `COUNT(CASE WHEN <c_k> THEN 1 END) AS "c<k>"`, k from 1.
fn condition_counts(d: Dialect, conditions: &[Expr]) -> Result<Vec<String>, SqlError> {
    conditions
        .iter()
        .enumerate()
        .map(|(k, c)| {
            Ok(format!(
                "  COUNT(CASE WHEN {} THEN 1 END) AS {}",
                c.render_condition(d)?,
                d.quote_ident(&format!("c{}", k + 1))?
            ))
        })
        .collect()
}

/// One output column of the attrition query.
#[derive(Debug, Clone, PartialEq)]
pub struct AttritionColumn {
    /// The output column (`n0`, `n1`, …).
    pub alias: String,
    /// `rows read`, then each step's label.
    pub label: String,
}

/// The attrition query and the meaning of its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct AttritionQuery {
    /// The SQL text (one statement, no trailing semicolon).
    pub sql: String,
    /// The columns in order: rows read, then the rows remaining after each step.
    pub columns: Vec<AttritionColumn>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categorical_covariates_expand_to_non_reference_levels() {
        let mut q = CohortQuery::new(TableName::table("t"));
        q.covariates.push(Covariate::Categorical {
            name: "insurance".into(),
            expr: Expr::col("insurance"),
            reference: Literal::Str("private".into()),
            levels: ["private", "medicare", "medicaid"]
                .map(|s| Literal::Str(s.into()))
                .to_vec(),
        });
        let cols = q.design_columns().unwrap();
        let terms: Vec<_> = cols.iter().map(|c| c.term.as_str()).collect();
        assert_eq!(terms, ["insurance=medicare", "insurance=medicaid"]);
        assert_eq!(
            cols[0].expr.render_value(Dialect::DuckDb).unwrap(),
            "CAST(CASE WHEN \"insurance\" IS NULL THEN NULL WHEN \"insurance\" = 'medicare' THEN 1 ELSE 0 END AS DOUBLE)"
        );
        if let Covariate::Categorical { reference, .. } = &mut q.covariates[0] {
            *reference = Literal::Str("none".into());
        }
        assert!(q.design_columns().is_err());
    }

    #[test]
    fn count_and_levels_queries_group_the_cohort_rows() {
        let q = CohortQuery::new(TableName::table("t"))
            .filter("age >= 18")
            .unwrap()
            .groups("race", vec![Literal::Str("White".into())]);
        let d = Dialect::Postgres;
        assert_eq!(
            q.count_query(d, &[Expr::col("adi").is_null(true)]).unwrap(),
            "SELECT\n  \"race\" AS \"grp\",\n  COUNT(*) AS \"n\",\n  COUNT(CASE WHEN \"adi\" IS NOT NULL THEN 1 END) AS \"c1\"\nFROM \"t\"\nWHERE \"age\" >= 18\n  AND \"race\" IN ('White')\nGROUP BY \"race\"\nORDER BY \"race\""
        );
        assert_eq!(
            q.levels_query(d, &Expr::col("insurance")).unwrap(),
            "SELECT\n  \"insurance\" AS \"level\",\n  COUNT(*) AS \"n\"\nFROM \"t\"\nWHERE \"age\" >= 18\n  AND \"race\" IN ('White')\nGROUP BY \"insurance\"\nORDER BY \"insurance\""
        );
        assert_eq!(
            q.types_query(d, &["a\"b".into()]).unwrap(),
            "SELECT \"a\"\"b\"\nFROM \"t\"\nWHERE 1 = 0"
        );
        assert!(
            CohortQuery::new(TableName::table("t"))
                .count_query(d, &[])
                .is_err()
        );
    }

    #[test]
    fn attrition_counts_cumulative_conditions() {
        let q = CohortQuery::new(TableName::table("t"))
            .filter("age >= 18")
            .unwrap()
            .filter("adi is not null")
            .unwrap();
        let a = q.attrition_query(Dialect::Postgres).unwrap();
        assert_eq!(
            a.sql,
            "SELECT\n  COUNT(*) AS \"n0\",\n  COUNT(CASE WHEN \"age\" >= 18 THEN 1 END) AS \"n1\",\n  COUNT(CASE WHEN \"age\" >= 18 AND \"adi\" IS NOT NULL THEN 1 END) AS \"n2\"\nFROM \"t\""
        );
        assert_eq!(a.columns[2].label, "adi is not null");
    }

    #[test]
    fn missing_texts_are_read_as_null_everywhere_but_the_source_count() {
        let mut q = CohortQuery::new(TableName::table("t"))
            .filter("ins != 'x'")
            .expect("a filter");
        q.missing_texts = Some(MissingTexts {
            columns: vec!["ins".into()],
            values: vec![Literal::Str("N'A".into())],
        });
        let read = "CASE WHEN \"ins\" IN ('N''A') THEN NULL ELSE \"ins\" END";
        let levels = q
            .levels_query(Dialect::Postgres, &Expr::col("ins"))
            .expect("levels");
        assert_eq!(
            levels,
            format!(
                "SELECT\n  {read} AS \"level\",\n  COUNT(*) AS \"n\"\nFROM \"t\"\nWHERE {read} <> 'x'\nGROUP BY {read}\nORDER BY {read}"
            )
        );
        let a = q.attrition_query(Dialect::Postgres).expect("attrition");
        assert!(
            a.sql.contains(&format!("WHEN {read} <> 'x' THEN 1")),
            "{}",
            a.sql
        );
        // Other columns are read as they are.
        assert_eq!(q.read(&Expr::col("age")), Expr::col("age"));
        // A text column of numbers is cast, after its missing texts.
        q.number_texts = vec!["ins".into()];
        assert_eq!(
            q.read(&Expr::col("ins"))
                .render_value(Dialect::Postgres)
                .unwrap(),
            format!("CAST({read} AS DOUBLE PRECISION)")
        );
        q.number_texts.clear();
        // The probe counts the texts themselves, over every row.
        let probe = q
            .source_count_query(
                Dialect::Postgres,
                &[Expr::col("ins").in_list(vec![Literal::Str("NA".into())])],
            )
            .expect("probe");
        assert_eq!(
            probe,
            "SELECT\n  COUNT(CASE WHEN \"ins\" IN ('NA') THEN 1 END) AS \"c1\"\nFROM \"t\""
        );
        assert!(q.source_count_query(Dialect::Postgres, &[]).is_err());
    }
}
