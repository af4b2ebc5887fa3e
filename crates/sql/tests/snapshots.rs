//! Snapshot tests: the SQL text of the representative cohort, its attrition
//! query and both moment passes, one file per dialect under
//! `tests/snapshots/<dialect>.sql`, compared exactly.
//!
//! After an intended change of the SQL text, rewrite the files with
//! `UPDATE_SNAPSHOTS=1 cargo test -p healthgap-sql --test snapshots` and
//! review the diff.

mod common;

use std::path::PathBuf;

use healthgap_sql::{Dialect, Key, MomentSpec, mean_queries, moment_queries};

fn render(d: Dialect) -> String {
    let cohort = common::representative();
    let mut spec =
        MomentSpec::all(&cohort, vec![Key::Group, Key::Hospital], Some(0)).expect("valid spec");
    // Small enough that the second pass is split in two, to show the split.
    spec.max_columns = Some(24);
    let mut out = format!("-- healthgap-sql snapshot: {}\n\n-- attrition\n", d.name());
    out.push_str(&cohort.attrition_query(d).expect("attrition").sql);
    out.push_str(";\n");
    let pass1 = mean_queries(&cohort, &spec, d).expect("pass 1");
    for (i, q) in pass1.iter().enumerate() {
        out.push_str(&format!(
            "\n-- pass 1: means, query {} of {}\n",
            i + 1,
            pass1.len()
        ));
        out.push_str(&q.sql);
        out.push_str(";\n");
    }
    let means = [66.25, 0.375, -1.5e-3, 0.5, 0.125, 0.03125];
    let pass2 = moment_queries(&cohort, &spec, d, Some(&means)).expect("pass 2");
    for (i, q) in pass2.iter().enumerate() {
        out.push_str(&format!(
            "\n-- pass 2: centred moments, query {} of {}\n",
            i + 1,
            pass2.len()
        ));
        out.push_str(&q.sql);
        out.push_str(";\n");
    }
    out
}

fn check(d: Dialect) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{}.sql", d.name()));
    let actual = render(d);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_SNAPSHOTS=1 cargo test -p healthgap-sql --test snapshots",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the length".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "{} differs from the rendered SQL at {line}; if intended, run UPDATE_SNAPSHOTS=1 cargo test -p healthgap-sql --test snapshots\n--- rendered ---\n{actual}",
            path.display()
        );
    }
}

#[test]
fn postgres_snapshot() {
    check(Dialect::Postgres);
}

#[test]
fn spark_snapshot() {
    check(Dialect::Spark);
}

#[test]
fn duckdb_snapshot() {
    check(Dialect::DuckDb);
}

#[test]
fn bigquery_snapshot() {
    check(Dialect::BigQuery);
}

#[test]
fn snowflake_snapshot() {
    check(Dialect::Snowflake);
}

#[test]
fn tsql_snapshot() {
    check(Dialect::TSql);
}
