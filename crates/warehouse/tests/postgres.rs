//! The PostgreSQL transport against a throwaway server (Debian's postgresql;
//! the README's test command installs it): round trips of every column type
//! with NULLs, hostile names, casts of other types, credentials and
//! failures.

use healthgap_sql::{ResultSet, TableName, Values};
use healthgap_warehouse::testing::TestServer;
use healthgap_warehouse::{Postgres, WarehouseError};

fn server() -> TestServer {
    TestServer::start().unwrap_or_else(|e| panic!("{e}"))
}

fn connect(s: &TestServer) -> Postgres {
    Postgres::connect_with_password(&s.url(), Some(&s.password)).unwrap_or_else(|e| panic!("{e}"))
}

fn sample() -> ResultSet {
    ResultSet {
        columns: vec![
            (
                "id".into(),
                Values::Int(vec![Some(1), Some(-2), None, Some(i64::MAX)]),
            ),
            (
                "x".into(),
                Values::Float(vec![Some(0.1), None, Some(-1.5e-300), Some(1e300)]),
            ),
            (
                "label".into(),
                Values::Text(vec![
                    Some("plain".into()),
                    Some(String::new()),
                    None,
                    Some("it's \"quoted\", with, commas\nand a newline".into()),
                ]),
            ),
            (
                "flag".into(),
                Values::Bool(vec![Some(true), Some(false), None, Some(true)]),
            ),
        ],
    }
}

/// Every type and NULL survives CREATE + COPY + SELECT exactly (floats to
/// the bit), an empty text stays a text.
#[test]
fn a_table_round_trips_exactly() {
    let s = server();
    let mut pg = connect(&s);
    let table = TableName::table("cohort");
    pg.replace_table(&table, &sample()).unwrap();
    let names: Vec<String> = sample().columns.iter().map(|(n, _)| n.clone()).collect();
    let back = pg.fetch_columns(&table, &names).unwrap();
    assert_eq!(back, sample());
    // Replacing again does not append.
    pg.replace_table(&table, &sample()).unwrap();
    assert_eq!(pg.fetch_columns(&table, &names).unwrap().rows(), 4);
    assert!(
        pg.statements()
            .iter()
            .any(|q| q.starts_with("COPY \"cohort\""))
    );
}

/// Table and column names with quotes, semicolons and comment markers are
/// names, never SQL: the table `x` survives a table named to drop it.
#[test]
fn hostile_names_are_quoted() {
    let s = server();
    let mut pg = connect(&s);
    pg.query("CREATE TABLE x (a INTEGER)").unwrap();
    let hostile = TableName::table("a\"; DROP TABLE x; --");
    let data = ResultSet {
        columns: vec![("we]ird`b\"c /* --".into(), Values::Int(vec![Some(7)]))],
    };
    pg.replace_table(&hostile, &data).unwrap();
    let back = pg
        .fetch_columns(&hostile, &["we]ird`b\"c /* --".to_string()])
        .unwrap();
    assert_eq!(back, data);
    assert_eq!(pg.query("SELECT count(*) AS n FROM x").unwrap().rows(), 1);
}

/// NUMERIC is pulled as double precision, dates and timestamps as ISO text.
#[test]
fn other_types_are_cast() {
    let s = server();
    let mut pg = connect(&s);
    pg.query(
        "CREATE TABLE t AS SELECT CAST(1.25 AS NUMERIC) AS n, DATE '2024-01-31' AS d, \
         CAST(3 AS SMALLINT) AS s",
    )
    .unwrap();
    let back = pg
        .fetch_columns(
            &TableName::table("t"),
            &["n".into(), "d".into(), "s".into()],
        )
        .unwrap();
    assert_eq!(back.columns[0].1, Values::Float(vec![Some(1.25)]));
    assert_eq!(
        back.columns[1].1,
        Values::Text(vec![Some("2024-01-31".into())])
    );
    assert_eq!(back.columns[2].1, Values::Int(vec![Some(3)]));
}

/// A wrong password, a password in the URL, an unset password variable, a
/// missing table and a server that goes away: errors that say what is wrong,
/// and none of them shows the password.
#[test]
fn credentials_and_failures_are_clear_errors() {
    let s = server();
    let e = Postgres::connect_with_password(&s.url(), Some("wrong-password-xyz"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot connect") && e.contains("healthgap@"),
        "{e}"
    );
    assert!(!e.contains("wrong-password-xyz"), "{e}");
    let in_url = format!("{} password=hunter2", s.url());
    let e = Postgres::connect_with_password(&in_url, None)
        .err()
        .unwrap();
    assert!(matches!(e, WarehouseError::PasswordInUrl), "{e}");
    assert!(!e.to_string().contains("hunter2"));
    let e = Postgres::connect(&s.url(), Some("HEALTHGAP_TEST_UNSET_PASSWORD_VARIABLE"))
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("`HEALTHGAP_TEST_UNSET_PASSWORD_VARIABLE` (`password_env`) is not set"),
        "{e}"
    );
    let mut pg = connect(&s);
    let e = pg
        .fetch_columns(&TableName::table("missing"), &["a".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("relation \"missing\" does not exist"), "{e}");
    s.kill().unwrap();
    let e = pg.query("SELECT 1").unwrap_err().to_string();
    assert!(e.contains("failed a query"), "{e}");
}

/// A cohort without a complete row (every value of its one covariate
/// missing): no cell, not an error, so that a federated site without an
/// analysis's complete cases contributes nothing.
#[test]
fn moments_of_no_complete_row_are_no_cells() {
    use healthgap_sql::{CohortQuery, Covariate, Expr, Key, Literal, MomentSpec, Outcome};
    let s = server();
    let mut pg = connect(&s);
    let table = TableName::table("sparse");
    let data = ResultSet {
        columns: vec![
            (
                "g".into(),
                Values::Text(vec![Some("a".into()), Some("b".into())]),
            ),
            ("x".into(), Values::Float(vec![None, None])),
            ("y".into(), Values::Float(vec![Some(1.0), Some(2.0)])),
        ],
    };
    pg.replace_table(&table, &data).unwrap();
    let mut cohort = CohortQuery::new(table).groups(
        "g",
        vec![Literal::Str("a".into()), Literal::Str("b".into())],
    );
    cohort.outcomes = vec![Outcome {
        name: "y".into(),
        expr: Expr::col("y"),
    }];
    cohort.covariates = vec![Covariate::Numeric {
        name: "x".into(),
        expr: Expr::col("x"),
    }];
    let spec = MomentSpec::all(&cohort, vec![Key::Group], Some(0)).unwrap();
    let cells = healthgap_warehouse::moments::cell_moments(&mut pg, &cohort, &spec).unwrap();
    assert!(cells.is_empty());
}

/// A NUMERIC result column (PostgreSQL's arbitrary precision, common for
/// measurements) is read as double precision, through a select that casts
/// it; the statement recorded is the one that ran.
#[test]
fn numeric_columns_are_read_as_floats() {
    let s = server();
    let mut pg = connect(&s);
    pg.query("CREATE TABLE num AS SELECT 1.25::numeric AS a, 2 AS b, NULL::numeric AS c")
        .unwrap();
    let rs = pg.query("SELECT a, b, c FROM num").unwrap();
    assert_eq!(rs.columns[0], ("a".into(), Values::Float(vec![Some(1.25)])));
    assert_eq!(rs.columns[1], ("b".into(), Values::Int(vec![Some(2)])));
    assert_eq!(rs.columns[2], ("c".into(), Values::Float(vec![None])));
    let last = pg.statements().last().unwrap();
    assert!(last.contains("CAST(q.\"a\" AS DOUBLE PRECISION)"), "{last}");
}
