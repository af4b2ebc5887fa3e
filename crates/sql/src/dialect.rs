//! The SQL dialects and their lexical rules: how names and values are quoted,
//! how numbers are written, the float type, and how many output columns one
//! query may have.
//!
//! Sources for the quoting rules:
//! - PostgreSQL, "Lexical Structure" (4.1.1 identifiers, 4.1.2.1–2 string
//!   constants, `E'…'` escape strings): `"…"` with `""`, `'…'` with `''`; the
//!   meaning of `\` in `'…'` depends on `standard_conforming_strings`, so a
//!   text with a backslash is written as `E'…'`, where `\` is always an escape.
//! - DuckDB, "Literal Types" / "Keywords and Identifiers": `"…"` with `""`,
//!   `'…'` with `''`, no backslash escapes.
//! - Spark SQL reference, "Literals" and "Identifiers": backquoted identifiers
//!   with ```` `` ```` for a backtick; in string literals `\` escapes (`\'`,
//!   `\\`, `\n`, `\uXXXX`) and adjacent literals are concatenated (so `''`
//!   would not mean a quote).
//! - BigQuery (GoogleSQL) "Lexical structure and syntax": quoted identifiers
//!   are backquoted and "have the same escape sequences as string literals";
//!   `'…'` strings use `\` escapes (`\'`, `\\`, `\``, `\uXXXX`) and cannot
//!   contain a newline.
//! - Snowflake, "String & binary data types" (escape sequences in single-quoted
//!   string constants): `\` is an escape in `'…'`, `''` is a quote;
//!   identifiers are `"…"` with `""` (quoted names are case-sensitive).
//! - T-SQL, "Database identifiers" and "Constants": `[…]` with `]]`, `N'…'`
//!   with `''`; no backslash escapes, except that `\` followed by a line break
//!   inside a string is a line continuation (such texts are refused).

use serde::{Deserialize, Serialize};

use crate::error::SqlError;

/// A SQL engine whose text this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL (12 and later).
    Postgres,
    /// Spark SQL (3.x and 4.x; Databricks).
    Spark,
    /// DuckDB.
    DuckDb,
    /// Google BigQuery (GoogleSQL).
    BigQuery,
    /// Snowflake.
    Snowflake,
    /// Microsoft SQL Server / Azure SQL (T-SQL).
    TSql,
}

/// Which escaping a dialect's string literals and quoted names need.
#[derive(Clone, Copy)]
enum Escapes {
    /// Only the quote character, doubled.
    Doubling,
    /// Backslash escapes (`\\`, `\'`, control characters as `\n`, `\uXXXX`).
    Backslash,
}

impl Dialect {
    /// Every dialect, in a fixed order.
    pub const ALL: [Dialect; 6] = [
        Dialect::Postgres,
        Dialect::Spark,
        Dialect::DuckDb,
        Dialect::BigQuery,
        Dialect::Snowflake,
        Dialect::TSql,
    ];

    /// The dialect's short name, as used in file names (`postgres`, `spark`,
    /// `duckdb`, `bigquery`, `snowflake`, `tsql`).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Spark => "spark",
            Dialect::DuckDb => "duckdb",
            Dialect::BigQuery => "bigquery",
            Dialect::Snowflake => "snowflake",
            Dialect::TSql => "tsql",
        }
    }

    /// The most output columns one `SELECT` may have on this engine.
    ///
    /// - PostgreSQL: 1,664 ("columns in a result set", Appendix K, PostgreSQL
    ///   Limits; `MaxTupleAttributeNumber`).
    /// - T-SQL: 4,096 ("Columns per SELECT statement", Maximum capacity
    ///   specifications for SQL Server).
    /// - BigQuery: 10,000 ("Maximum number of columns in a table, query result,
    ///   or view definition", BigQuery quotas and limits).
    /// - Spark, DuckDB, Snowflake: no documented limit was found; 1,000 is a
    ///   conservative choice (Spark's whole-stage code generation and very
    ///   wide aggregates are known to degrade well before any hard limit).
    pub fn max_columns(self) -> usize {
        match self {
            Dialect::Postgres => 1664,
            Dialect::TSql => 4096,
            Dialect::BigQuery => 10_000,
            Dialect::Spark | Dialect::DuckDb | Dialect::Snowflake => 1000,
        }
    }

    /// The 64-bit floating-point type: `DOUBLE PRECISION` (PostgreSQL),
    /// `DOUBLE` (Spark, DuckDB, Snowflake), `FLOAT64` (BigQuery), `FLOAT`
    /// (T-SQL, where `float` means `float(53)`).
    pub fn float_type(self) -> &'static str {
        match self {
            Dialect::Postgres => "DOUBLE PRECISION",
            Dialect::Spark | Dialect::DuckDb | Dialect::Snowflake => "DOUBLE",
            Dialect::BigQuery => "FLOAT64",
            Dialect::TSql => "FLOAT",
        }
    }

    /// `CAST(<sql> AS <float type>)`.
    pub fn cast_float(self, sql: &str) -> String {
        format!("CAST({sql} AS {})", self.float_type())
    }

    /// The condition that the text `sql` is a finite decimal number: optional
    /// blanks, a sign, digits with an optional point (or a point and
    /// digits), an optional exponent, blanks (Rust's `f64` grammar after
    /// trimming, without `inf` and `NaN`, which the loader refuses). A
    /// regular expression in each dialect's own syntax; T-SQL has none and
    /// uses `TRY_CAST(… AS FLOAT) IS NOT NULL`.
    ///
    /// Errors: none in practice (the pattern is a constant).
    pub fn is_number_text(self, sql: &str) -> Result<String, SqlError> {
        const POSIX: &str =
            "^[[:space:]]*[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?[[:space:]]*$";
        const JAVA: &str = "^\\s*[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?\\s*$";
        Ok(match self {
            Dialect::Postgres => format!("{sql} ~ {}", self.quote_str(POSIX)?),
            Dialect::DuckDb => format!("regexp_full_match({sql}, {})", self.quote_str(POSIX)?),
            Dialect::Spark => format!("{sql} RLIKE {}", self.quote_str(JAVA)?),
            Dialect::BigQuery => format!("REGEXP_CONTAINS({sql}, {})", self.quote_str(POSIX)?),
            Dialect::Snowflake => format!("REGEXP_LIKE({sql}, {})", self.quote_str(POSIX)?),
            Dialect::TSql => format!("TRY_CAST({sql} AS FLOAT) IS NOT NULL"),
        })
    }

    /// A boolean literal: `TRUE`/`FALSE`, or `1`/`0` in T-SQL, which has no
    /// boolean values (a `bit` column compares with 1 and 0).
    pub fn boolean(self, value: bool) -> &'static str {
        match (self, value) {
            (Dialect::TSql, true) => "1",
            (Dialect::TSql, false) => "0",
            (_, true) => "TRUE",
            (_, false) => "FALSE",
        }
    }

    fn string_escapes(self) -> Escapes {
        match self {
            Dialect::Spark | Dialect::BigQuery | Dialect::Snowflake => Escapes::Backslash,
            Dialect::Postgres | Dialect::DuckDb | Dialect::TSql => Escapes::Doubling,
        }
    }

    /// Quotes one identifier (a column, table or schema name) so that the
    /// engine reads it as exactly this name, whatever characters it holds:
    /// `"a""b"` (PostgreSQL, DuckDB, Snowflake), `` `a``b` `` (Spark),
    /// `` `a\`b` `` (BigQuery), `[a]]b]` (T-SQL).
    ///
    /// Errors: an empty name, or one holding a NUL character.
    pub fn quote_ident(self, name: &str) -> Result<String, SqlError> {
        let err = |message: &str| SqlError::Identifier {
            name: name.to_string(),
            message: message.to_string(),
        };
        if name.is_empty() {
            return Err(err("a name cannot be empty"));
        }
        if name.contains('\0') {
            return Err(err("a name cannot contain a NUL character"));
        }
        Ok(match self {
            Dialect::Postgres | Dialect::DuckDb | Dialect::Snowflake => {
                format!("\"{}\"", name.replace('"', "\"\""))
            }
            Dialect::Spark => format!("`{}`", name.replace('`', "``")),
            Dialect::BigQuery => format!("`{}`", backslash_escape(name, '`')),
            Dialect::TSql => format!("[{}]", name.replace(']', "]]")),
        })
    }

    /// Quotes a possibly qualified table name (`schema.table`,
    /// `project.dataset.table`): each part quoted, joined by `.`.
    pub fn quote_table(self, name: &TableName) -> Result<String, SqlError> {
        if name.parts.is_empty() {
            return Err(SqlError::Spec(
                "a table name needs at least one part".into(),
            ));
        }
        let parts = name
            .parts
            .iter()
            .map(|p| self.quote_ident(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(parts.join("."))
    }

    /// A string literal holding exactly `value`: `'it''s'` (DuckDB),
    /// `'it''s'` or `E'a\\b'` when it holds a backslash (PostgreSQL),
    /// `N'it''s'` (T-SQL), `'it\'s'` (Spark, BigQuery), `'it\'s'` with `\\`
    /// (Snowflake). Control characters are escaped where the dialect has
    /// escapes.
    ///
    /// Errors: a NUL character (no engine stores it in text), and in T-SQL a
    /// backslash before a line break (a line continuation there).
    pub fn quote_str(self, value: &str) -> Result<String, SqlError> {
        let err = |message: &str| SqlError::Text {
            value: value.to_string(),
            message: message.to_string(),
        };
        if value.contains('\0') {
            return Err(err("a text cannot contain a NUL character"));
        }
        Ok(match (self, self.string_escapes()) {
            (_, Escapes::Backslash) => format!("'{}'", backslash_escape(value, '\'')),
            (Dialect::Postgres, _) if value.contains('\\') => {
                format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
            }
            (Dialect::TSql, _) => {
                if value.contains("\\\n") || value.contains("\\\r") {
                    return Err(err(
                        "T-SQL reads a backslash before a line break as a line continuation",
                    ));
                }
                format!("N'{}'", value.replace('\'', "''"))
            }
            _ => format!("'{}'", value.replace('\'', "''")),
        })
    }

    /// A numeric literal for a finite `value`: whole numbers below 10¹⁵ in
    /// magnitude as integers (`18`), others in Rust's shortest round-trip form
    /// (`0.1`, `1e-7`, `1.5e20`), which every dialect reads back to the same
    /// double. Negative numbers are parenthesised (`(-2.5)`) so that no
    /// operator before them can form `--`, a comment; −0 is written `0`.
    ///
    /// Errors: NaN and ±infinity.
    pub fn number(self, value: f64) -> Result<String, SqlError> {
        format_number(value)
    }
}

/// Formats a finite number as a SQL numeric literal (see [`Dialect::number`];
/// the text is the same in every dialect).
pub fn format_number(value: f64) -> Result<String, SqlError> {
    if !value.is_finite() {
        return Err(SqlError::NonFinite { value });
    }
    let v = if value == 0.0 { 0.0 } else { value };
    let text = if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    };
    Ok(if v < 0.0 { format!("({text})") } else { text })
}

/// Backslash-escapes `\`, the given quote character and control characters
/// (`\n`, `\r`, `\t`, others as `\uXXXX`): the escapes Spark, BigQuery and
/// Snowflake all read.
fn backslash_escape(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A table name, possibly qualified by a schema (and a catalog or project):
/// each part is one identifier, quoted on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableName {
    /// The parts, outermost first (`["cdm", "person"]`).
    pub parts: Vec<String>,
}

impl TableName {
    /// An unqualified table.
    pub fn table(table: impl Into<String>) -> Self {
        TableName {
            parts: vec![table.into()],
        }
    }

    /// `schema.table` written as one text, split at the first `.` (no `.`:
    /// an unqualified table), as `healthgap synth --table` and `[data]
    /// warehouse` `table` take it.
    pub fn dotted(text: &str) -> Self {
        match text.split_once('.') {
            Some((schema, table)) => TableName::in_schema(schema, table),
            None => TableName::table(text),
        }
    }

    /// `schema.table`, e.g. an OMOP CDM schema's `cdm.person`.
    pub fn in_schema(schema: impl Into<String>, table: impl Into<String>) -> Self {
        TableName {
            parts: vec![schema.into(), table.into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_their_quote_doubled_or_escaped() {
        let name = "we]ird`b\"c";
        let q = |d: Dialect| d.quote_ident(name).unwrap();
        assert_eq!(q(Dialect::Postgres), "\"we]ird`b\"\"c\"");
        assert_eq!(q(Dialect::DuckDb), "\"we]ird`b\"\"c\"");
        assert_eq!(q(Dialect::Snowflake), "\"we]ird`b\"\"c\"");
        assert_eq!(q(Dialect::Spark), "`we]ird``b\"c`");
        assert_eq!(q(Dialect::BigQuery), "`we]ird\\`b\"c`");
        assert_eq!(q(Dialect::TSql), "[we]]ird`b\"c]");
        assert!(Dialect::Postgres.quote_ident("").is_err());
        assert!(Dialect::Postgres.quote_ident("a\0b").is_err());
    }

    #[test]
    fn strings_escape_quotes_and_backslashes_per_dialect() {
        let v = "it's a\\b";
        assert_eq!(Dialect::Postgres.quote_str("it's").unwrap(), "'it''s'");
        assert_eq!(Dialect::Postgres.quote_str(v).unwrap(), "E'it''s a\\\\b'");
        assert_eq!(Dialect::DuckDb.quote_str(v).unwrap(), "'it''s a\\b'");
        assert_eq!(Dialect::TSql.quote_str(v).unwrap(), "N'it''s a\\b'");
        assert_eq!(Dialect::Spark.quote_str(v).unwrap(), "'it\\'s a\\\\b'");
        assert_eq!(Dialect::BigQuery.quote_str(v).unwrap(), "'it\\'s a\\\\b'");
        assert_eq!(Dialect::Snowflake.quote_str(v).unwrap(), "'it\\'s a\\\\b'");
        assert_eq!(Dialect::BigQuery.quote_str("a\nb").unwrap(), "'a\\nb'");
        assert_eq!(Dialect::Spark.quote_str("a\u{1}").unwrap(), "'a\\u0001'");
        assert!(Dialect::TSql.quote_str("a\\\nb").is_err());
        assert!(Dialect::Postgres.quote_str("a\0").is_err());
    }

    #[test]
    fn numbers_are_finite_round_trip_literals() {
        assert_eq!(format_number(18.0).unwrap(), "18");
        assert_eq!(format_number(-0.0).unwrap(), "0");
        assert_eq!(format_number(0.1).unwrap(), "0.1");
        assert_eq!(format_number(-2.5).unwrap(), "(-2.5)");
        assert_eq!(format_number(1e-7).unwrap(), "1e-7");
        assert_eq!(format_number(1.5e20).unwrap(), "1.5e20");
        for v in [0.1, 1.0 / 3.0, -7.25e-12, 6.02e23, 123_456_789.123] {
            let text = format_number(v).unwrap();
            let bare = text.trim_start_matches('(').trim_end_matches(')');
            assert_eq!(bare.parse::<f64>().unwrap(), v);
        }
        assert!(format_number(f64::NAN).is_err());
        assert!(format_number(f64::INFINITY).is_err());
        assert!(format_number(f64::NEG_INFINITY).is_err());
    }

    #[test]
    fn qualified_names_quote_each_part() {
        let t = TableName::in_schema("cdm", "per.son");
        assert_eq!(
            Dialect::Postgres.quote_table(&t).unwrap(),
            "\"cdm\".\"per.son\""
        );
        assert_eq!(Dialect::TSql.quote_table(&t).unwrap(), "[cdm].[per.son]");
    }
}
