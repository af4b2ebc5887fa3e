//! Hostile names and values end up inside quotes, never as SQL; filter
//! strings that try to inject SQL are not valid grammar and are refused.

mod common;

use healthgap_sql::{
    CohortQuery, Covariate, Dialect, Expr, Key, MomentSpec, SqlError, TableName, moment_queries,
    parse_filter,
};

const TABLE: &str = "a\"; DROP TABLE x; --";
const COLUMN: &str = "we]ird`b\"c";
const VALUE: &str = "' OR 1=1 --";

/// The text left after removing every quoted identifier and string literal
/// by the dialect's own lexical rules. Panics on an unterminated quote (the
/// renderer's output must always close its quotes).
fn outside_quotes(sql: &str, d: Dialect) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let backslash_strings = matches!(d, Dialect::Spark | Dialect::BigQuery | Dialect::Snowflake);
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let (close, backslash) = match (c, d) {
            ('\'', Dialect::Postgres) if i > 0 && chars[i - 1] == 'E' => ('\'', true),
            ('\'', _) => ('\'', backslash_strings),
            ('"', Dialect::Postgres | Dialect::DuckDb | Dialect::Snowflake) => ('"', false),
            ('`', Dialect::Spark) => ('`', false),
            ('`', Dialect::BigQuery) => ('`', true),
            ('[', Dialect::TSql) => (']', false),
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        out.push_str("<q>");
        i += 1;
        loop {
            assert!(i < chars.len(), "unterminated quote in {sql}");
            if backslash && chars[i] == '\\' {
                i += 2;
            } else if chars[i] == close {
                if !backslash && chars.get(i + 1) == Some(&close) {
                    i += 2;
                } else {
                    i += 1;
                    break;
                }
            } else {
                i += 1;
            }
        }
    }
    out
}

fn hostile_cohort() -> CohortQuery {
    let mut q = CohortQuery::new(TableName::in_schema("s c;--", TABLE))
        .filter(&format!("status == \"{VALUE}\""))
        .expect("a quoted text is valid grammar");
    q.group = Some(Expr::col("race"));
    q.covariates.push(Covariate::Numeric {
        name: COLUMN.into(),
        expr: Expr::col(COLUMN),
    });
    q.covariates.push(Covariate::Categorical {
        name: "ins".into(),
        expr: Expr::col("ins /* x */"),
        reference: healthgap_sql::Literal::Str("a".into()),
        levels: vec![
            healthgap_sql::Literal::Str("a".into()),
            healthgap_sql::Literal::Str("b'; --\\".into()),
        ],
    });
    q
}

#[test]
fn hostile_names_and_values_are_quoted_in_every_dialect() {
    let q = hostile_cohort();
    let spec = MomentSpec::all(&q, vec![Key::Group], None).expect("spec");
    for d in Dialect::ALL {
        let mut texts = vec![q.attrition_query(d).expect("attrition").sql];
        texts.extend(
            moment_queries(&q, &spec, d, None)
                .expect("moments")
                .into_iter()
                .map(|m| m.sql),
        );
        for sql in texts {
            let rest = outside_quotes(&sql, d);
            for bad in [";", "--", "/*", "DROP", "OR 1=1", "weird"] {
                assert!(
                    !rest.contains(bad),
                    "{d:?}: `{bad}` outside quotes in\n{sql}"
                );
            }
            let table = d
                .quote_table(&TableName::in_schema("s c;--", TABLE))
                .expect("quotable");
            assert!(sql.contains(&table), "{d:?}: {sql}");
        }
    }
}

#[test]
fn hostile_names_render_exactly() {
    let t = TableName::table(TABLE);
    assert_eq!(
        Dialect::Postgres.quote_table(&t).unwrap(),
        "\"a\"\"; DROP TABLE x; --\""
    );
    assert_eq!(
        Dialect::TSql.quote_table(&t).unwrap(),
        "[a\"; DROP TABLE x; --]"
    );
    assert_eq!(
        Dialect::Spark.quote_table(&t).unwrap(),
        "`a\"; DROP TABLE x; --`"
    );
    let f = parse_filter(&format!("status == \"{VALUE}\""))
        .unwrap()
        .expr;
    let expect = [
        (Dialect::Postgres, "\"status\" = ''' OR 1=1 --'"),
        (Dialect::DuckDb, "\"status\" = ''' OR 1=1 --'"),
        (Dialect::Snowflake, "\"status\" = '\\' OR 1=1 --'"),
        (Dialect::Spark, "`status` = '\\' OR 1=1 --'"),
        (Dialect::BigQuery, "`status` = '\\' OR 1=1 --'"),
        (Dialect::TSql, "[status] = N''' OR 1=1 --'"),
    ];
    for (d, sql) in expect {
        assert_eq!(f.render_condition(d).unwrap(), sql, "{d:?}");
    }
}

#[test]
fn injection_attempts_in_filters_are_not_grammar() {
    for bad in [
        "age >= 18; DROP TABLE x",
        "age >= 18 -- comment",
        "age >= 18 /* c */",
        "status == 'a' OR 1=1 --'",
        "status == 'a' or 1 == 1",
        "age >= 18) or (1 == 1",
        "x == 1 union select * from y",
        "age >= (select 1)",
        "age >= 18 or age",
        "\"age\" >= 18",
        "age >= 0x10",
        "age >= 1e999",
        "status == 'unterminated",
        "`age` >= 18",
        "[age] >= 18",
    ] {
        match parse_filter(bad) {
            Err(SqlError::Filter { filter, .. }) => assert_eq!(filter, bad),
            other => panic!("{bad}: accepted as {other:?}"),
        }
    }
}

#[test]
fn names_with_nul_and_empty_names_are_refused() {
    let mut q = common::representative();
    q.source = TableName::table("a\0b");
    assert!(q.attrition_query(Dialect::Postgres).is_err());
    q.source = TableName::table("");
    assert!(q.attrition_query(Dialect::Postgres).is_err());
}
