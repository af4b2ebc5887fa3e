//! The DuckDB dialect run by DuckDB itself: the statements of a small cohort
//! (attrition, group counts, levels, both moment passes, split under a small
//! column limit, a covariate whose name holds quotes, a semicolon and a
//! comment marker) were executed by the `duckdb` Python package, and their
//! results are stored in `tests/golden/duckdb/` with the script that made
//! them (`generate.sh`). The tests regenerate the statements, check that
//! they are the ones DuckDB ran, and compare DuckDB's answers with the same
//! quantities computed here from the rows of `cohort.csv` by SQL's rules
//! (three-valued logic in the filters, complete cases, `CASE` coding).
//!
//! Every moment-based method is a function of these cells (the warehouse
//! tests show the methods equal on PostgreSQL's cells), so equal cells are
//! equal estimates, SEs and bootstrap replicates.
//!
//! No test here needs DuckDB or Python: only `write_statements`, ignored,
//! which the script runs to write what DuckDB is to execute.

use std::collections::BTreeMap;
use std::path::PathBuf;

use healthgap_sql::{
    CellMoments, CohortQuery, Covariate, Dialect, Expr, Key, Literal, MissingTexts, MomentQuery,
    MomentSpec, Outcome, TableName, mean_queries, means_from, moment_queries,
};
use serde_json::{Value, json};

const ROWS: usize = 600;
/// The covariate whose name an engine must read as one identifier.
const HOSTILE: &str = "adi \"score\"; -- /* x";
const D: Dialect = Dialect::DuckDb;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/duckdb")
}

/// One patient of the fixture (`None` is SQL NULL).
#[derive(Debug, Clone)]
struct Row {
    race: Option<&'static str>,
    hospital: i64,
    surgeon: i64,
    age: Option<f64>,
    female: f64,
    adi: Option<f64>,
    insurance: Option<&'static str>,
    status: &'static str,
    death: f64,
    weight: f64,
    /// A number stored as text, or not quite.
    lab: Option<&'static str>,
}

/// SplitMix64: a fixed stream of uniform numbers in [0, 1).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[((self.next() * items.len() as f64) as usize).min(items.len() - 1)]
    }
}

fn rows() -> Vec<Row> {
    let mut u = Uniform(20261202);
    (0..ROWS)
        .map(|i| {
            let race = if i % 37 == 0 {
                None
            } else {
                Some(u.pick(&[
                    "White", "White", "White", "White", "Black", "Black", "Hispanic", "Asian",
                ]))
            };
            let age = 20.0 + (u.next() * 70.0).floor();
            let adi = u.next() * 100.0;
            let insurance = u.pick(&["private", "medicare", "medicaid", "private"]);
            Row {
                race,
                hospital: 1 + (u.next() * 8.0) as i64,
                surgeon: 1 + (u.next() * 20.0) as i64,
                age: (i % 53 != 0).then_some(age),
                female: f64::from(u.next() < 0.3),
                adi: (i % 17 != 0).then_some(adi),
                insurance: (i % 23 != 0).then_some(insurance),
                status: u.pick(&["elective", "urgent", "emergent"]),
                death: f64::from(u.next() < 0.08 + 0.002 * (age - 20.0)),
                weight: 0.5 + 1.5 * u.next(),
                lab: (i % 29 != 0).then(|| u.pick(&LAB_TEXTS)),
            }
        })
        .collect()
}

/// Texts of a lab value: numbers in Rust's `f64` grammar (with blanks), a
/// missing-value text, and texts that are not finite numbers.
const LAB_TEXTS: [&str; 14] = [
    "12.5", " 7 ", "+.5", "1e3", "-3", "4.", "2E-2", "\t8", "NA", "abc", "inf", "NaN", "1,5", "..",
];

/// The columns of the fixture table and their DuckDB types.
const COLUMNS: [(&str, &str); 11] = [
    ("race", "VARCHAR"),
    ("hospital_id", "BIGINT"),
    ("surgeon_id", "BIGINT"),
    ("age", "DOUBLE"),
    ("female", "DOUBLE"),
    (HOSTILE, "DOUBLE"),
    ("insurance", "VARCHAR"),
    ("status", "VARCHAR"),
    ("death_30d", "DOUBLE"),
    ("discharge_weight", "DOUBLE"),
    ("lab_text", "VARCHAR"),
];

fn csv(rows: &[Row]) -> String {
    let num = |v: Option<f64>| v.map(|v| format!("{v:?}")).unwrap_or_default();
    let mut out = String::from("c0,c1,c2,c3,c4,c5,c6,c7,c8,c9,c10\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{:?},{},{},{},{:?},{:?},{}\n",
            r.race.unwrap_or(""),
            r.hospital,
            r.surgeon,
            num(r.age),
            r.female,
            num(r.adi),
            r.insurance.unwrap_or(""),
            r.status,
            r.death,
            r.weight,
            r.lab.map(|t| format!("\"{t}\"")).unwrap_or_default()
        ));
    }
    out
}

fn cohort() -> CohortQuery {
    let mut q = CohortQuery::new(TableName::table("cabg_cohort"))
        .filter("age >= 18")
        .and_then(|q| q.filter("status != 'emergent' and (age < 80 or female == 1)"))
        .and_then(|q| q.filter("insurance != 'medicaid' or female == 0"))
        .expect("valid filters")
        .groups(
            "race",
            ["White", "Black", "Hispanic"]
                .map(|s| Literal::Str(s.into()))
                .to_vec(),
        );
    q.outcomes.push(Outcome {
        name: "death_30d".into(),
        expr: Expr::col("death_30d"),
    });
    q.weight = Some(Expr::col("discharge_weight"));
    q.hospital = Some(Expr::col("hospital_id"));
    q.cluster = Some(Expr::col("surgeon_id"));
    q.missing_texts = Some(MissingTexts {
        columns: vec!["lab_text".into()],
        values: vec![Literal::Str("NA".into())],
    });
    for name in ["age", "female", HOSTILE] {
        q.covariates.push(Covariate::Numeric {
            name: name.into(),
            expr: Expr::col(name),
        });
    }
    q.covariates.push(Covariate::Categorical {
        name: "insurance".into(),
        expr: Expr::col("insurance"),
        reference: Literal::Str("private".into()),
        levels: ["private", "medicare", "medicaid"]
            .map(|s| Literal::Str(s.into()))
            .to_vec(),
    });
    q
}

/// The moments by group × hospital × cluster, split over queries of at
/// most 16 columns.
fn spec(cohort: &CohortQuery) -> MomentSpec {
    let mut spec = MomentSpec::all(
        cohort,
        vec![Key::Group, Key::Hospital, Key::Cluster],
        Some(0),
    )
    .expect("a spec");
    spec.max_columns = Some(16);
    spec
}

/// The statements of the first round: everything but the centred pass.
fn first_round(cohort: &CohortQuery, spec: &MomentSpec) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "attrition".to_string(),
            cohort.attrition_query(D).expect("attrition").sql,
        ),
        (
            "counts".to_string(),
            cohort
                .count_query(D, &[Expr::col(HOSTILE).is_null(false)])
                .expect("counts"),
        ),
        (
            "numbers".to_string(),
            cohort.number_texts_query(D, "lab_text").expect("numbers"),
        ),
        (
            "levels".to_string(),
            cohort
                .levels_query(D, &Expr::col("insurance"))
                .expect("levels"),
        ),
    ];
    let means = mean_queries(cohort, spec, D).expect("pass 1");
    out.extend(
        means
            .into_iter()
            .enumerate()
            .map(|(k, q)| (format!("pass1_{k}"), q.sql)),
    );
    out
}

fn second_round(cohort: &CohortQuery, spec: &MomentSpec, means: &[f64]) -> Vec<MomentQuery> {
    moment_queries(cohort, spec, D, Some(means)).expect("pass 2")
}

fn read(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tests/golden/duckdb/generate.sh)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("JSON")
}

/// DuckDB's result of the statement `name`, after checking that the stored
/// statement is the one this code writes today.
fn result<'a>(results: &'a Value, name: &str, sql: &str) -> &'a Vec<Value> {
    let r = &results[name];
    assert_eq!(
        r["sql"].as_str(),
        Some(sql),
        "the `{name}` statement changed: run tests/golden/duckdb/generate.sh"
    );
    r["rows"].as_array().expect("rows")
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: DuckDB {got} vs rows {want}"
    );
}

/// SQL's three-valued truth: `None` is UNKNOWN.
fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// Whether each step keeps the row (a WHERE keeps TRUE only).
fn steps(r: &Row) -> [bool; 4] {
    let female1 = Some(r.female == 1.0);
    let s1 = r.age.map(|a| a >= 18.0);
    let s2 = and(
        Some(r.status != "emergent"),
        or(r.age.map(|a| a < 80.0), female1),
    );
    let s3 = or(r.insurance.map(|i| i != "medicaid"), Some(r.female == 0.0));
    let s4 = r.race.map(|g| ["White", "Black", "Hispanic"].contains(&g));
    [s1, s2, s3, s4].map(|s| s == Some(true))
}

fn in_cohort(r: &Row) -> bool {
    steps(r).iter().all(|&s| s)
}

/// v = (age, female, adi, medicare, medicaid, death) of a complete case.
fn values(r: &Row) -> Option<[f64; 6]> {
    let ins = r.insurance?;
    Some([
        r.age?,
        r.female,
        r.adi?,
        f64::from(ins == "medicare"),
        f64::from(ins == "medicaid"),
        r.death,
    ])
}

type CellKey = (String, i64, i64);

fn cells_from_rows(rows: &[Row]) -> BTreeMap<CellKey, CellMoments> {
    let mut cells = BTreeMap::new();
    for r in rows.iter().filter(|r| in_cohort(r)) {
        let Some(v) = values(r) else { continue };
        let key = (
            r.race.unwrap_or_default().to_string(),
            r.hospital,
            r.surgeon,
        );
        let c = cells.entry(key).or_insert_with(|| CellMoments::zeros(6));
        c.count += 1.0;
        c.sum_w += r.weight;
        for a in 0..6 {
            c.sums[a] += r.weight * v[a];
        }
        let mut k = 0;
        for a in 0..6 {
            for b in a..6 {
                c.products[k] += r.weight * v[a] * v[b];
                k += 1;
            }
        }
    }
    cells
}

/// Writes what DuckDB is to run: the table, its rows and the first round's
/// statements, or, once `pass1.json` holds DuckDB's first results, the
/// centred pass.
#[test]
#[ignore = "writes the DuckDB fixture's statements; run by tests/golden/duckdb/generate.sh"]
fn write_statements() {
    let cohort = cohort();
    let spec = spec(&cohort);
    let statements: Vec<Value> = if dir().join("pass1.json").exists() {
        let means = means_of(&read("pass1.json"), &cohort, &spec);
        second_round(&cohort, &spec, &means)
            .into_iter()
            .enumerate()
            .map(|(k, q)| json!({ "name": format!("pass2_{k}"), "sql": q.sql }))
            .collect()
    } else {
        std::fs::write(dir().join("cohort.csv"), csv(&rows())).expect("cohort.csv");
        first_round(&cohort, &spec)
            .into_iter()
            .map(|(name, sql)| json!({ "name": name, "sql": sql }))
            .collect()
    };
    let columns = COLUMNS
        .iter()
        .map(|(n, t)| Ok(format!("{} {t}", D.quote_ident(n)?)))
        .collect::<Result<Vec<_>, healthgap_sql::SqlError>>()
        .expect("names");
    let create = format!(
        "CREATE TABLE {} ({})",
        D.quote_ident("cabg_cohort").expect("name"),
        columns.join(", ")
    );
    let out = json!({ "create": create, "table": "cabg_cohort", "statements": statements });
    let text = serde_json::to_string_pretty(&out).expect("JSON");
    std::fs::write(dir().join("statements.json"), text).expect("statements.json");
}

/// The weighted means m from DuckDB's first pass (the split queries' one
/// row each, assembled).
fn means_of(results: &Value, cohort: &CohortQuery, spec: &MomentSpec) -> Vec<f64> {
    let p = spec.x.len();
    let mut global = CellMoments::zeros(spec.q());
    for (k, q) in mean_queries(cohort, spec, D)
        .expect("pass 1")
        .iter()
        .enumerate()
    {
        let rows = result(results, &format!("pass1_{k}"), &q.sql);
        assert_eq!(rows.len(), 1, "pass 1 has one row");
        let row = rows[0].as_array().expect("a row");
        for (value, c) in row.iter().zip(&q.columns) {
            global.record(c.kind, number(value), p);
        }
    }
    means_from(&global).expect("means")
}

#[test]
fn duckdb_counts_the_cohort_as_the_rows_do() {
    let rows = rows();
    assert_eq!(
        std::fs::read_to_string(dir().join("cohort.csv")).expect("cohort.csv"),
        csv(&rows),
        "the fixture's rows changed: run tests/golden/duckdb/generate.sh"
    );
    let cohort = cohort();
    let results = read("pass1.json");
    let first = first_round(&cohort, &spec(&cohort));
    let sql = |name: &str| {
        &first
            .iter()
            .find(|(n, _)| n == name)
            .expect("a statement")
            .1
    };
    // Attrition: the rows read, then those left after each step.
    let attrition = result(&results, "attrition", sql("attrition"));
    let mut left = vec![rows.len() as f64];
    for k in 0..4 {
        left.push(
            rows.iter()
                .filter(|r| steps(r)[..=k].iter().all(|&s| s))
                .count() as f64,
        );
    }
    let got: Vec<f64> = attrition[0]
        .as_array()
        .expect("a row")
        .iter()
        .map(number)
        .collect();
    assert_eq!(got, left);
    assert!(
        left.windows(2).all(|w| w[1] < w[0]),
        "each step bites: {left:?}"
    );
    // Per group: the rows and those whose hostile-named column is NULL.
    let kept: Vec<&Row> = rows.iter().filter(|r| in_cohort(r)).collect();
    let counts = result(&results, "counts", sql("counts"));
    assert_eq!(counts.len(), 3);
    for row in counts {
        let g = row[0].as_str().expect("a group");
        let n = kept.iter().filter(|r| r.race == Some(g)).count() as f64;
        let missing = kept
            .iter()
            .filter(|r| r.race == Some(g) && r.adi.is_none())
            .count() as f64;
        assert_eq!((number(&row[1]), number(&row[2])), (n, missing), "{g}");
        assert!(missing > 0.0, "{g}: some adi is missing");
    }
    // The lab texts: present ("NA" is missing), numbers by Rust's rule
    // (finite), and the least and greatest text that is not a number.
    let numbers = result(&results, "numbers", sql("numbers"));
    let present: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.lab)
        .filter(|t| *t != "NA")
        .collect();
    let is_number = |t: &&str| t.trim().parse::<f64>().is_ok_and(f64::is_finite);
    let others: Vec<&str> = present.iter().copied().filter(|t| !is_number(t)).collect();
    let row = numbers[0].as_array().expect("a row");
    assert_eq!(number(&row[0]), present.len() as f64);
    assert_eq!(number(&row[1]), (present.len() - others.len()) as f64);
    assert_eq!(row[2].as_str(), others.iter().min().copied());
    assert_eq!(row[3].as_str(), others.iter().max().copied());
    assert!(others.len() > 10 && others.len() < present.len() / 2);
    // The insurance levels, NULL included (DuckDB sorts it last).
    let levels = result(&results, "levels", sql("levels"));
    let want = [Some("medicaid"), Some("medicare"), Some("private"), None];
    assert_eq!(levels.len(), want.len());
    for (row, level) in levels.iter().zip(want) {
        assert_eq!(row[0].as_str(), level);
        let n = kept.iter().filter(|r| r.insurance == level).count() as f64;
        assert_eq!(number(&row[1]), n, "{level:?}");
    }
}

#[test]
fn duckdb_moments_are_the_moments_of_the_rows() {
    let cohort = cohort();
    let spec = spec(&cohort);
    let p = spec.x.len();
    assert_eq!(p, 5);
    let means = means_of(&read("pass1.json"), &cohort, &spec);
    let expected = cells_from_rows(&rows());
    // The first pass: the weighted means of the complete cases.
    let total = expected.values().fold(CellMoments::zeros(6), |mut acc, c| {
        acc.sum_w += c.sum_w;
        for (s, t) in acc.sums.iter_mut().zip(&c.sums) {
            *s += t;
        }
        acc
    });
    for (a, m) in means.iter().enumerate() {
        close(&format!("mean {a}"), *m, total.sums[a] / total.sum_w);
    }
    // The second pass, split into several queries whose rows line up.
    let queries = second_round(&cohort, &spec, &means);
    assert!(
        queries.len() >= 3,
        "split under 16 columns: {}",
        queries.len()
    );
    let results = read("pass2.json");
    let mut got: BTreeMap<CellKey, CellMoments> = BTreeMap::new();
    for (k, q) in queries.iter().enumerate() {
        for row in result(&results, &format!("pass2_{k}"), &q.sql) {
            let row = row.as_array().expect("a row");
            let key = (
                row[0].as_str().expect("a group").to_string(),
                row[1].as_i64().expect("a hospital"),
                row[2].as_i64().expect("a cluster"),
            );
            let cell = got.entry(key).or_insert_with(|| CellMoments::zeros(6));
            for (value, c) in row[q.keys.len()..].iter().zip(&q.columns) {
                cell.record(c.kind, number(value), p);
            }
        }
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(expected.len() > 100, "{} cells", expected.len());
    for (key, centred) in &got {
        let raw = centred.uncentred(&means);
        let want = &expected[key];
        close(&format!("{key:?} count"), raw.count, want.count);
        close(&format!("{key:?} Σw"), raw.sum_w, want.sum_w);
        for (a, (g, w)) in raw.sums.iter().zip(&want.sums).enumerate() {
            close(&format!("{key:?} sum {a}"), *g, *w);
        }
        for (k, (g, w)) in raw.products.iter().zip(&want.products).enumerate() {
            close(&format!("{key:?} product {k}"), *g, *w);
        }
    }
}
