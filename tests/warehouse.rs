//! A warehouse study end to end against a throwaway PostgreSQL server:
//! `healthgap synth --to` loads the cohort with COPY; `[data] warehouse`
//! pulls the analysis columns (`allow_row_export = true`) or, without row
//! export, runs the moment-based methods on per-cell moments computed in
//! PostgreSQL; either way every estimate and SE equals the same study on the
//! file; credentials never reach the output; refusals are clear.

use std::process::Output;

use healthgap_warehouse::testing::TestServer;

use crate::oaxaca::results;
use crate::util::{Dir, stderr};

/// The password's environment variable in these tests.
const VAR: &str = "HEALTHGAP_TEST_PG_PASSWORD";

fn run_with_password(dir: &Dir, server: &TestServer, args: &[&str]) -> Output {
    dir.command(args)
        .env(VAR, &server.password)
        .output()
        .expect("the binary runs")
}

fn study(data: &str) -> String {
    format!(
        r#"[study]
name = "warehouse"
seed = 5

[data]
{data}

[cohort]
filters = ["age >= 40"]

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
death_30d = {{ type = "binary" }}
los_days = {{ type = "continuous" }}

[factors]
demographics = ["age", "female"]
socioeconomic = ["adi", "insurance"]
clinical = ["diabetes", "dialysis", "ejection_fraction", "status"]
care_site = ["hospital_id"]

[variables]
insurance = {{ type = "categorical", reference = "private" }}
status = {{ type = "categorical", reference = "elective" }}
hospital_id = {{ type = "categorical" }}

[design]
cluster = "hospital_id"

[inference]
replicates = 30

[[analysis]]
method = "oaxaca_blinder"
outcomes = ["los_days", "death_30d"]

[[analysis]]
method = "gelbach"
outcomes = ["los_days"]
base = ["demographics"]
added = ["socioeconomic", "clinical"]

[[analysis]]
id = "dr"
method = "disparity_reduction"
outcomes = ["death_30d"]
allowable = ["demographics"]
targets = ["socioeconomic", "care_site"]
inference = {{ method = "bootstrap" }}

[report]
out_dir = "out"
formats = ["json", "markdown"]
"#
    )
}

/// Every analysis's estimates (quantity, factor, term, estimate, se, CI).
fn estimates(r: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for a in r["analyses"].as_array().unwrap() {
        for e in a["estimates"].as_array().unwrap() {
            out.push(format!(
                "{} {} {} {} {} {} {} {} {}",
                a["id"],
                a["outcome"],
                e["quantity"],
                e["factor"],
                e["term"],
                e["estimate"],
                e["se"],
                e["ci_low"],
                e["ci_high"]
            ));
        }
    }
    out
}

#[test]
fn a_warehouse_study_equals_the_file_study() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    let url = server.url();
    let out = load_synthetic_with(&dir, &server, 4000, &[]);
    assert!(
        stderr(&out).contains("loaded 4000 patients"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.join("file.toml"),
        study("path = \"synth/cohort.parquet\""),
    )
    .unwrap();
    let warehouse = format!(
        "warehouse = {{ engine = \"postgres\", url = \"{url}\", schema = \"public\", table = \"cabg\", password_env = \"{VAR}\" }}\nallow_row_export = true"
    );
    std::fs::write(dir.join("wh.toml"), study(&warehouse)).unwrap();
    dir.ok(&["run", "file.toml", "--out", "file_out"]);
    let ran = run_with_password(&dir, &server, &["run", "wh.toml", "--out", "wh_out"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let (f, w) = (results(&dir, "file_out"), results(&dir, "wh_out"));
    let (fe, we) = (estimates(&f), estimates(&w));
    assert!(fe.len() > 50, "{} estimates", fe.len());
    assert_eq!(fe, we);
    assert_eq!(f["cohort"]["attrition"], w["cohort"]["attrition"]);
    assert_eq!(w["data"]["source"], "warehouse");
    let queries = w["data"]["warehouse"]["queries"].as_array().unwrap();
    assert!(
        queries
            .iter()
            .any(|q| q.as_str().unwrap().contains("FROM \"public\".\"cabg\"")),
        "{queries:?}"
    );
    assert_eq!(w["data"]["warehouse"]["row_export"], true);
    let root = crate::schema::schema();
    let mut errors = Vec::new();
    crate::schema::validate(&root, &root, &w, "$", &mut errors);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let md = std::fs::read_to_string(dir.join("wh_out/report.md")).unwrap();
    assert!(
        md.contains("Warehouse: healthgap@") && md.contains("patient rows exported: yes"),
        "{md}"
    );
    // The password is nowhere in what was written or printed.
    let mut folders = vec![dir.join("wh_out")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let text = std::fs::read(&path).unwrap();
                assert!(!String::from_utf8_lossy(&text).contains(&server.password));
            }
        }
    }
    assert!(!stderr(&ran).contains(&server.password));
}

/// Loads a synthetic cohort of `patients` into `public.cabg` on `server`.
fn load_synthetic(dir: &Dir, server: &TestServer, patients: usize) {
    load_synthetic_with(dir, server, patients, &[]);
}

/// [`load_synthetic`] with further `synth` arguments (`--set KEY=VALUE`);
/// the command's output.
fn load_synthetic_with(dir: &Dir, server: &TestServer, patients: usize, extra: &[&str]) -> Output {
    let patients = patients.to_string();
    let url = server.url();
    let mut args = vec![
        "synth",
        "--patients",
        &patients,
        "--seed",
        "11",
        "--out",
        "synth",
        "--to",
        &url,
        "--table",
        "public.cabg",
        "--password-env",
        VAR,
    ];
    args.extend_from_slice(extra);
    let out = run_with_password(dir, server, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// Missing values (NULL in the table): each analysis takes the complete
/// cases of its outcome and variables, as on rows. Every number, each
/// analysis's attrition table and its complete-case warnings equal the file
/// study's, and the statements still read no row.
#[test]
fn warehouse_complete_cases_equal_the_file_study() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic_with(
        &dir,
        &server,
        12000,
        &[
            "--set",
            "missing.adi=0.15",
            "--set",
            "missing.insurance=0.08",
            "--set",
            "missing.ejection_fraction=0.2",
        ],
    );
    run_file_study(&dir);
    std::fs::write(dir.join("wh.toml"), moment_study(&pooled_table(&server))).unwrap();
    let ran = run_with_password(&dir, &server, &["run", "wh.toml", "--out", "wh_out"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let (f, w) = (results(&dir, "file_out"), results(&dir, "wh_out"));
    assert_same_numbers(&f, &w, 200);
    let analyses = |r: &serde_json::Value| r["analyses"].as_array().unwrap().clone();
    let mut stepped = 0;
    for (fa, wa) in analyses(&f).iter().zip(&analyses(&w)) {
        let at = format!("{} {} {}", wa["id"], wa["outcome"], wa["comparison"]);
        assert_eq!(fa["attrition"], wa["attrition"], "{at}");
        assert_eq!(fa["n"], wa["n"], "{at}");
        let complete = |a: &serde_json::Value| {
            a["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x.as_str().unwrap().contains("complete cases"))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(complete(fa), complete(wa), "{at}");
        stepped += usize::from(!complete(wa).is_empty());
    }
    // The crude gaps have no covariate to miss; the others do.
    assert!(stepped >= 8, "{stepped} results with complete-case steps");
    let queries = w["data"]["warehouse"]["queries"].to_string();
    assert!(queries.contains("IS NULL"), "{queries}");
    let md = std::fs::read_to_string(dir.join("wh_out/report.md")).unwrap();
    assert!(md.contains("complete cases: adi"), "{md}");
}

/// A study of the moment-based methods: crude gaps, linear Oaxaca–Blinder (threefold,
/// with and without the absorbed hospital term, delta and bootstrap),
/// Gelbach (with and without the absorbed block) and the care-site analysis's
/// Kitagawa split and fixed-effect contrast (by a hospital of 300 levels,
/// absorbed by its kind, and by a categorical of three, delta and bootstrap).
fn moment_study(data: &str) -> String {
    format!(
        r#"[study]
name = "in the warehouse"
seed = 9

[data]
{data}

[cohort]
filters = ["age >= 40"]

[groups]
column = "race"
reference = "White"
compare = ["Black", "Hispanic"]

[outcomes]
death_30d = {{ type = "binary" }}
los_days = {{ type = "continuous" }}

[factors]
demographics = ["age", "female"]
socioeconomic = ["adi", "insurance"]
clinical = ["diabetes", "dialysis", "ejection_fraction", "status"]
care_site = ["hospital_id"]

[variables]
insurance = {{ type = "categorical", reference = "private" }}
status = {{ type = "categorical" }}
hospital_id = {{ type = "categorical" }}

[design]
cluster = "hospital_id"

[inference]
method = "delta"

[[analysis]]
method = "crude"
outcomes = ["los_days", "death_30d"]

[[analysis]]
method = "oaxaca_blinder"
outcomes = ["los_days", "death_30d"]
threefold = true

[[analysis]]
id = "ob_boot"
method = "oaxaca_blinder"
outcomes = ["death_30d"]
coefficients = "cotton"
inference = {{ method = "bootstrap", replicates = 40 }}

[[analysis]]
id = "ob_random"
method = "oaxaca_blinder"
outcomes = ["los_days"]
hospital_effects = "random"

[[analysis]]
method = "gelbach"
outcomes = ["los_days"]
base = ["demographics"]
added = ["socioeconomic", "clinical"]

[[analysis]]
id = "gelbach_care"
method = "gelbach"
outcomes = ["death_30d"]
base = ["demographics"]
added = ["clinical", "care_site"]
inference = {{ method = "bootstrap", replicates = 40, interval = "bca" }}

[[analysis]]
id = "hospital"
method = "hospital"
outcomes = ["death_30d", "los_days"]
hospital = "hospital_id"
adjust = ["demographics", "clinical"]

[[analysis]]
id = "hospital_status"
method = "hospital"
outcomes = ["death_30d"]
hospital = "status"
adjust = ["demographics"]
inference = {{ method = "bootstrap", replicates = 40 }}

[report]
out_dir = "out"
formats = ["json", "markdown", "csv", "html"]
"#
    )
}

/// Every number of every estimate, keyed by analysis, outcome, comparison,
/// quantity, factor and term.
fn numbers(r: &serde_json::Value) -> Vec<(String, Vec<f64>)> {
    let mut out = Vec::new();
    for a in r["analyses"].as_array().unwrap() {
        for e in a["estimates"].as_array().unwrap() {
            let key = format!(
                "{} {} {} {} {} {}",
                a["id"], a["outcome"], a["comparison"], e["quantity"], e["factor"], e["term"]
            );
            let values = ["estimate", "se", "ci_low", "ci_high", "p_value"]
                .iter()
                .map(|k| e[*k].as_f64().unwrap_or(f64::NAN))
                .collect();
            out.push((key, values));
        }
    }
    out
}

/// Whether statement `q` returns aggregates only (counts, sums), reads no
/// row (`WHERE 1 = 0`), or sets up the session (`SHOW server_version_num`,
/// `SET jit = off`).
fn reads_no_row(q: &str) -> bool {
    q.contains("COUNT(")
        || q.contains("SUM(")
        || q.contains("WHERE 1 = 0")
        || q == "SHOW server_version_num"
        || q == "SET jit = off"
}

/// The hospital analyses of [`moment_study`], as their keys start.
const HOSPITAL_IDS: [&str; 2] = ["\"hospital\" ", "\"hospital_status\" "];

/// Asserts that every number of `w` equals `f`'s (the same rows, keys in
/// the same order, at least `at_least` of them) within the tolerances below, prints the largest relative
/// differences, and returns `w`'s numbers.
fn assert_same_numbers(
    f: &serde_json::Value,
    w: &serde_json::Value,
    at_least: usize,
) -> Vec<(String, Vec<f64>)> {
    let (mut fe, we) = (numbers(f), numbers(w));
    // From moments a hospital analysis has the Kitagawa split and the
    // linear contrast only; the file's logit contrasts and profiles are not
    // compared.
    let from_moments =
        |r: &serde_json::Value| r["data"]["warehouse"]["row_export"] == serde_json::json!(false);
    if from_moments(w) && !from_moments(f) {
        let kept: std::collections::HashSet<&String> = we.iter().map(|e| &e.0).collect();
        fe.retain(|e| kept.contains(&e.0) || !HOSPITAL_IDS.iter().any(|id| e.0.starts_with(id)));
    }
    assert!(fe.len() >= at_least, "{} estimates", fe.len());
    assert_eq!(
        fe.iter().map(|e| &e.0).collect::<Vec<_>>(),
        we.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    // Tolerances: estimates and SEs 1e-9 relative; an interval bound 1e-9
    // relative to the larger of it and its SE (est ± z·se cancels near 0);
    // p-values 1e-7 relative (p = 2Φ(−|z|) multiplies z's rounding by z²).
    // A row that is zero up to rounding (|estimate| below 1e-12, e.g. the
    // reference part of the unexplained gap under pooled β*) is compared in
    // absolute terms, to 1e-9 × the largest |estimate| of its result (its
    // p-value, of rounding noise, is not compared). The
    // absorbed hospital's delta method differentiates the cells by forward
    // differences (h = 1e-4), which multiplies the sums' rounding by 10⁴.
    // The hospital analyses' coefficient change is a small difference of
    // two such coefficients: its SE and bounds are compared to 1e-8
    // (measured: 3e-9 between a federated and a pooled study).
    // With random hospital effects (`ob_random`) each difference is of two
    // refitted mixed models (a root in log λ each), whose rounding the
    // differences amplify too: its SEs and bounds are compared to 1e-7
    // (measured: up to 3.8e-9), p-values to 1e-5 (1e-7 measured at p = 8e-9),
    // its estimates to 1e-9.
    let mut scale: std::collections::HashMap<String, f64> = Default::default();
    for (key, a) in &fe {
        let result: String = key.split(' ').take(3).collect::<Vec<_>>().join(" ");
        let s = scale.entry(result).or_insert(0.0);
        *s = s.max(a[0].abs());
    }
    let mut worst = [0.0f64; 5];
    for ((key, a), (_, b)) in fe.iter().zip(&we) {
        let result: String = key.split(' ').take(3).collect::<Vec<_>>().join(" ");
        let noise = a[0].abs() < 1e-12;
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            if x.is_nan() || y.is_nan() {
                assert!(x.is_nan() && y.is_nan(), "{key}: {x} vs {y}");
                continue;
            }
            let d = (x - y).abs();
            if noise && k == 4 {
                // The p-value of a statistic that is zero up to rounding.
                continue;
            }
            let iterative = if key.starts_with("\"ob_random\"") && k > 0 {
                100.0
            } else if HOSPITAL_IDS.iter().any(|id| key.starts_with(id)) && k > 0 {
                10.0
            } else {
                1.0
            };
            let (tol, rel) = if noise {
                (1e-9 * iterative * scale[&result], 0.0)
            } else {
                let m = x.abs().max(y.abs());
                match k {
                    0 | 1 => (1e-9 * iterative * m, d / m),
                    2 | 3 => (1e-9 * iterative * m.max(a[1].abs()), d / m.max(a[1].abs())),
                    _ => (1e-7 * iterative * m, d / m),
                }
            };
            assert!(d <= tol, "{key} [{k}]: {x} vs {y}");
            worst[k] = worst[k].max(rel);
        }
    }
    eprintln!(
        "largest relative differences: estimate {:e}, se {:e}, ci {:e}/{:e}, p {:e}",
        worst[0], worst[1], worst[2], worst[3], worst[4]
    );
    we
}

/// The in-warehouse path: no row leaves PostgreSQL, and every estimate, SE,
/// interval and p-value equals the same study on the file to 1e-9 relative
/// (the cluster delta method, and the cluster bootstrap with the same seed).
#[test]
fn moment_based_analyses_inside_the_warehouse_equal_the_file_study() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    run_file_study(&dir);
    std::fs::write(dir.join("wh.toml"), moment_study(&pooled_table(&server))).unwrap();
    let checked = run_with_password(&dir, &server, &["check", "wh.toml"]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let ran = run_with_password(&dir, &server, &["run", "wh.toml", "--out", "wh_out"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let (f, w) = (results(&dir, "file_out"), results(&dir, "wh_out"));
    let we = assert_same_numbers(&f, &w, 200);
    // The care-site analyses ran from moments: the Kitagawa split and the
    // fixed-effect contrast, what needs rows named in a warning.
    for id in ["hospital", "hospital_status"] {
        let runs: Vec<&serde_json::Value> = w["analyses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["id"] == id)
            .collect();
        assert!(!runs.is_empty(), "{id}");
        for a in runs {
            let quantities: Vec<&str> = a["estimates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["quantity"].as_str().unwrap())
                .collect();
            for q in [
                "gap",
                "between_hospital",
                "within_hospital",
                "between_hospital_adjusted",
                "coefficient_with_fe",
                "coefficient_change",
            ] {
                assert!(quantities.contains(&q), "{id}: {q} in {quantities:?}");
            }
            let warnings = a["warnings"].to_string();
            assert!(warnings.contains("profiles"), "{id}: {warnings}");
            assert_eq!(
                warnings.contains("logit contrasts"),
                a["outcome"] == "death_30d",
                "{id}: {warnings}"
            );
        }
    }
    // Standard errors were computed (delta with clusters, bootstrap).
    assert!(we.iter().filter(|e| e.1[1].is_finite()).count() > 150);
    for a in w["analyses"].as_array().unwrap() {
        assert_eq!(a["inference"]["cluster"], "hospital_id", "{}", a["id"]);
    }
    assert_eq!(f["cohort"]["attrition"], w["cohort"]["attrition"]);
    assert_eq!(f["cohort"]["groups"], w["cohort"]["groups"]);
    assert_eq!(f["cohort"]["clusters"], w["cohort"]["clusters"]);
    assert_eq!(w["data"]["source"], "warehouse");
    assert_eq!(w["data"]["warehouse"]["row_export"], false);
    let queries: Vec<&str> = w["data"]["warehouse"]["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap())
        .collect();
    // Only aggregates and the column types left: every statement counts,
    // sums or groups, or reads no row (or sets up the session: the server's
    // version, JIT off).
    for q in &queries {
        assert!(reads_no_row(q), "{q}");
        assert!(!q.contains(&server.password));
    }
    assert!(
        queries
            .iter()
            .any(|q| q.contains("GROUP BY \"grp\", \"hosp\", \"clus\""))
    );
    let root = crate::schema::schema();
    let mut errors = Vec::new();
    crate::schema::validate(&root, &root, &w, "$", &mut errors);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let md = std::fs::read_to_string(dir.join("wh_out/report.md")).unwrap();
    assert!(md.contains("patient rows exported: no"), "{md}");
}

/// The study warnings of a results.json that contain `text`.
fn warnings_with(r: &serde_json::Value, text: &str) -> Vec<String> {
    r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .filter(|x| x.contains(text))
        .map(str::to_string)
        .collect()
}

/// `config(data)` on the whole table run twice, its rows exported
/// (`allow_row_export = true`) and from moments, each run exiting with
/// `code`: their results.json, (rows, moments).
fn exported_and_moments(
    dir: &Dir,
    server: &TestServer,
    config: &dyn Fn(&str) -> String,
    code: i32,
) -> (serde_json::Value, serde_json::Value) {
    let table = pooled_table(server);
    let exported = format!("{table}\nallow_row_export = true");
    let mut out = Vec::new();
    for (name, data) in [("rows", &exported), ("moments", &table)] {
        let file = format!("{name}.toml");
        std::fs::write(dir.join(&file), config(data)).unwrap();
        let folder = format!("{name}_out");
        let ran = run_with_password(dir, server, &["run", &file, "--out", &folder]);
        assert_eq!(ran.status.code(), Some(code), "{file}: {}", stderr(&ran));
        out.push(results(dir, &folder));
    }
    let moments = out.pop().unwrap();
    (out.pop().unwrap(), moments)
}

/// `[design] weights`: the moments are weighted sums (Σw, Σw·x, Σw·x·x′),
/// and every number equals the same weighted study on the exported rows
/// (`allow_row_export = true`); a weight that is missing or not positive is
/// refused, as the loader refuses it.
#[test]
fn weighted_moments_inside_the_warehouse_equal_the_exported_rows() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    let mut pg = connect(&server);
    // NUMERIC, as measurements often are, read as double precision.
    pg.query("ALTER TABLE public.cabg ADD COLUMN w NUMERIC")
        .unwrap();
    pg.query("UPDATE public.cabg SET w = 0.5 + MOD(hospital_id, 5) * 0.375 + MOD(age, 3) * 0.25")
        .unwrap();
    let weighted = |data: &str| {
        moment_study(data).replace(
            "[design]\ncluster = \"hospital_id\"",
            "[design]\ncluster = \"hospital_id\"\nweights = \"w\"",
        )
    };
    let (rows, moments) = exported_and_moments(&dir, &server, &weighted, 0);
    assert_same_numbers(&rows, &moments, 200);
    for a in moments["analyses"].as_array().unwrap() {
        assert_eq!(a["options"]["weighted"], true, "{}", a["id"]);
    }
    // The unweighted study differs: the weights were used.
    std::fs::write(dir.join("plain.toml"), moment_study(&pooled_table(&server))).unwrap();
    let ran = run_with_password(&dir, &server, &["run", "plain.toml", "--out", "plain_out"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let plain = numbers(&results(&dir, "plain_out"));
    let differs = numbers(&moments)
        .iter()
        .zip(&plain)
        .filter(|(a, b)| a.0.contains("\"gap\"") && (a.1[0] - b.1[0]).abs() > 1e-6)
        .count();
    assert!(differs > 0);
    // A weight of zero is refused, with the column named.
    pg.query("UPDATE public.cabg SET w = 0 WHERE hospital_id = 3")
        .unwrap();
    let out = run_with_password(&dir, &server, &["run", "moments.toml", "--out", "zero_out"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("weights must be positive numbers"), "{err}");
    assert!(!dir.join("zero_out").exists());
}

/// A categorical whose known values have one level (no dummy column) and
/// NULLs elsewhere: its NULL rows are left out of the moments too, so the
/// numbers and the attrition equal the exported rows' study.
#[test]
fn a_one_level_categorical_with_nulls_takes_its_complete_cases() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    let mut pg = connect(&server);
    pg.query("ALTER TABLE public.cabg ADD COLUMN flag TEXT")
        .unwrap();
    pg.query("UPDATE public.cabg SET flag = 'Y' WHERE MOD(age, 4) <> 0")
        .unwrap();
    let flagged = |data: &str| {
        moment_study(data)
            .replace(
                "socioeconomic = [\"adi\", \"insurance\"]",
                "socioeconomic = [\"adi\", \"insurance\", \"flag\"]",
            )
            .replace(
                "hospital_id = { type = \"categorical\" }",
                "hospital_id = { type = \"categorical\" }\nflag = { type = \"categorical\" }",
            )
    };
    let (rows, moments) = exported_and_moments(&dir, &server, &flagged, 0);
    assert_same_numbers(&rows, &moments, 200);
    let mut stepped = 0;
    for (r, m) in rows["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .zip(moments["analyses"].as_array().unwrap())
    {
        assert_eq!(r["attrition"], m["attrition"], "{}", m["id"]);
        assert_eq!(r["n"], m["n"], "{}", m["id"]);
        stepped += usize::from(m["attrition"].to_string().contains("complete cases: flag"));
    }
    assert!(stepped > 0);
}

/// `min_count` merges the rare levels into `other` from the level counts, as
/// the loader merges the rows: the same warning and every number equal to
/// the file study's.
#[test]
fn min_count_merges_rare_levels_inside_the_warehouse_as_on_rows() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    let merged = |data: &str| {
        moment_study(data).replace(
            "insurance = { type = \"categorical\", reference = \"private\" }",
            "insurance = { type = \"categorical\", reference = \"private\", min_count = 400 }",
        )
    };
    std::fs::write(
        dir.join("file.toml"),
        merged("path = \"synth/cohort.parquet\""),
    )
    .unwrap();
    dir.ok(&["run", "file.toml", "--out", "file_out"]);
    std::fs::write(dir.join("wh.toml"), merged(&pooled_table(&server))).unwrap();
    let ran = run_with_password(&dir, &server, &["run", "wh.toml", "--out", "wh_out"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let (f, w) = (results(&dir, "file_out"), results(&dir, "wh_out"));
    assert_same_numbers(&f, &w, 200);
    let merge = |r: &serde_json::Value| warnings_with(r, "merged into `other`");
    assert_eq!(merge(&f).len(), 1, "{:?}", f["warnings"]);
    assert_eq!(merge(&f), merge(&w));
    assert!(w.to_string().contains("insurance=other"));
}

/// A column the config names that the table lacks: one line naming the key
/// that names it and the nearest column, as for a file, with and without
/// row export; nothing written.
#[test]
fn a_misspelt_column_is_named_with_its_key() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 500);
    let table = pooled_table(&server);
    for (k, data) in [table.clone(), format!("{table}\nallow_row_export = true")]
        .iter()
        .enumerate()
    {
        let config = moment_study(data).replace(
            "\"dialysis\", \"ejection_fraction\"",
            "\"dialysis\", \"ejection_fractoin\"",
        );
        std::fs::write(dir.join("typo.toml"), config).unwrap();
        let out = run_with_password(&dir, &server, &["run", "typo.toml", "--out", "typo_out"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{k}: {err}");
        assert!(
            err.contains(
                "no column `ejection_fractoin`, which [factors] clinical names (did you mean \
                 `ejection_fraction`?)"
            ),
            "{k}: {err}"
        );
        assert!(!err.contains("HINT"), "{k}: {err}");
        assert!(!dir.join("typo_out").exists());
    }
}

/// A comparison group without complete cases (adi missing for every
/// Hispanic patient): only its comparisons fail, named in `failed` (exit 3);
/// the Black comparisons run, from rows and from moments alike.
#[test]
fn a_group_without_complete_cases_fails_only_its_comparisons() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    let mut pg = connect(&server);
    pg.query("UPDATE public.cabg SET adi = NULL WHERE race = 'Hispanic'")
        .unwrap();
    let (rows, moments) = exported_and_moments(&dir, &server, &moment_study, 3);
    for (file, r) in [("rows", rows), ("moments", moments)] {
        let ran_for = |id: &str, comparison: &str| {
            r["analyses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == id && a["comparison"] == comparison)
        };
        for id in ["oaxaca_blinder", "gelbach"] {
            assert!(ran_for(id, "Black"), "{file}: {id}");
            assert!(!ran_for(id, "Hispanic"), "{file}: {id}");
        }
        // The crude gaps use no covariate: both comparisons.
        assert!(ran_for("crude", "Hispanic"), "{file}");
        let failed = r["failed"].to_string();
        assert!(
            failed.contains("Hispanic vs White: group `Hispanic` has no complete cases"),
            "{file}: {failed}"
        );
        assert!(!failed.contains("Black vs"), "{file}: {failed}");
    }
}

/// A binary outcome coded 1/2 with `event = 2`: recoded by `CASE` in the
/// moments as the loader recodes it (every number equals the exported rows'
/// study); a third value is refused with the loader's message.
#[test]
fn an_event_value_recodes_the_outcome_inside_the_warehouse() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    let mut pg = connect(&server);
    pg.query("ALTER TABLE public.cabg ADD COLUMN died INTEGER")
        .unwrap();
    pg.query("UPDATE public.cabg SET died = CASE WHEN death_30d = 1 THEN 2 ELSE 1 END")
        .unwrap();
    let recoded = |data: &str| {
        moment_study(data)
            .replace("\"death_30d\"", "\"died\"")
            .replace(
                "death_30d = { type = \"binary\" }",
                "died = { type = \"binary\", event = 2 }",
            )
    };
    let (rows, moments) = exported_and_moments(&dir, &server, &recoded, 0);
    assert_same_numbers(&rows, &moments, 200);
    assert!(
        moments["analyses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["outcome"] == "died")
    );
    pg.query("UPDATE public.cabg SET died = 3 WHERE hospital_id = 5")
        .unwrap();
    let out = run_with_password(&dir, &server, &["run", "moments.toml", "--out", "bad_out"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("declared binary with event = 2, but its values are 1, 2, 3"),
        "{err}"
    );
}

/// Methods and options that need patient rows are refused by `healthgap
/// check` before any data are read, each with its reason and the
/// alternative; nothing is written.
#[test]
fn row_needing_methods_are_refused_inside_the_warehouse() {
    let dir = Dir::new();
    let warehouse = "warehouse = { engine = \"postgres\", url = \"postgresql://analyst@%2Ftmp%2Fnowhere/x\", table = \"cabg\" }";
    let cases = [
        (
            "[[analysis]]\nid = \"x\"\nmethod = \"disparity_reduction\"\noutcomes = [\"death_30d\"]\nallowable = [\"demographics\"]\ntargets = [\"socioeconomic\"]\n",
            "g-computation predicts each patient's outcome",
        ),
        (
            "[[analysis]]\nid = \"x\"\nmethod = \"mediation\"\noutcomes = [\"death_30d\"]\nmediators = [\"adi\"]\nconfounders = [\"age\"]\n",
            "simulate each patient's mediator",
        ),
        (
            "[[analysis]]\nid = \"x\"\nmethod = \"oaxaca_blinder\"\noutcomes = [\"death_30d\"]\nmodel = \"logit\"\n",
            "model = \"logit\"",
        ),
        (
            "[[analysis]]\nid = \"x\"\nmethod = \"hospital\"\noutcomes = [\"death_30d\"]\nhospital = \"hospital_id\"\nmodel = \"hierarchical\"\n",
            "model = \"hierarchical\"",
        ),
        (
            "[[analysis]]\nid = \"x\"\nmethod = \"hospital\"\noutcomes = [\"death_30d\"]\nhospital = \"hospital_id\"\nabsorb = [\"status\"]\n",
            "absorb = […]",
        ),
    ];
    for (analysis, needle) in cases {
        let config = moment_study(warehouse).replace("[report]", &format!("{analysis}\n[report]"));
        std::fs::write(dir.join("study.toml"), &config).unwrap();
        for cmd in ["check", "run"] {
            let out = dir.command(&[cmd, "study.toml"]).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(err.contains("allow_row_export = true"), "{err}");
            // Refused before connecting: the server does not exist.
            assert!(!err.contains("cannot connect"), "{err}");
            assert!(!dir.join("out").exists());
        }
    }
    // No cluster: the variances and the bootstrap need one.
    let config = moment_study(warehouse).replace("cluster = \"hospital_id\"", "");
    std::fs::write(dir.join("study.toml"), &config).unwrap();
    let out = dir.command(&["check", "study.toml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("[design] cluster is not set"), "{err}");
}

/// Texts that `[data] na_values` lists are missing values inside the
/// warehouse as on rows: a categorical level (`uninsured`, also in a
/// filter, where NULL's three-valued logic applies), `NA` in another
/// categorical and in a number stored as text (numeric by the loader's rule,
/// compared as a number in a filter); every number equals the exported
/// rows' study.
#[test]
fn na_values_in_the_warehouse_are_missing_values() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    let mut pg = connect(&server);
    // "NA" in a second categorical column (status: elective, urgent, emergent).
    pg.query("UPDATE public.cabg SET status = 'NA' WHERE MOD(hospital_id * 7 + age, 11) = 0")
        .unwrap();
    // "N/A", not listed: a category of its own, with the loader's warning.
    pg.query("UPDATE public.cabg SET status = 'N/A' WHERE MOD(hospital_id * 7 + age, 11) = 5")
        .unwrap();
    // A number stored as text, undeclared: numeric for the loader (≥ 90% of
    // its values are numbers once "NA" is missing), so here too.
    pg.query("ALTER TABLE public.cabg ADD COLUMN adi_text TEXT")
        .unwrap();
    pg.query(
        "UPDATE public.cabg SET adi_text = CASE WHEN MOD(hospital_id * 5 + age, 13) = 0 THEN 'NA' \
         ELSE CAST(adi AS TEXT) END",
    )
    .unwrap();
    let with_na = |data: &str| {
        moment_study(&format!("{data}\nna_values = [\"uninsured\", \"NA\"]"))
            .replace(
                "filters = [\"age >= 40\"]",
                "filters = [\"age >= 40\", \"insurance != 'medicare' or female == 1\", \
                 \"adi_text >= 5\"]",
            )
            .replace("[\"adi\", \"insurance\"]", "[\"adi_text\", \"insurance\"]")
    };
    assert!(with_na("").contains("\"adi_text\""));
    let (rows, moments) = exported_and_moments(&dir, &server, &with_na, 0);
    assert_same_numbers(&rows, &moments, 200);
    assert!(moments["cohort"].to_string().contains("adi_text >= 5"));
    for key in ["n", "clusters", "groups", "attrition"] {
        assert_eq!(rows["cohort"][key], moments["cohort"][key], "{key}");
    }
    for (r, m) in rows["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .zip(moments["analyses"].as_array().unwrap())
    {
        assert_eq!(r["attrition"], m["attrition"], "{}", m["id"]);
        assert_eq!(r["n"], m["n"], "{}", m["id"]);
    }
    let look_missing = |r: &serde_json::Value| warnings_with(r, "look like missing-value codes");
    assert_eq!(look_missing(&moments), look_missing(&rows));
    assert!(look_missing(&moments)[0].contains("column `status` has the level(s) \"N/A\""));
    // The texts were missing values: other complete cases than without them.
    std::fs::write(
        dir.join("plain.toml"),
        with_na(&pooled_table(&server)).replace("\"uninsured\", \"NA\"", "\"NA\""),
    )
    .unwrap();
    let ran = run_with_password(&dir, &server, &["run", "plain.toml", "--out", "plain_out"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let plain = results(&dir, "plain_out");
    assert_ne!(moments["analyses"][1]["n"], plain["analyses"][1]["n"]);
    assert_ne!(moments["cohort"], plain["cohort"]);
    // Only counts and moments left the warehouse; the statements name the texts.
    let queries = moments["data"]["warehouse"]["queries"].to_string();
    assert!(
        queries.contains("IN ('uninsured', 'NA') THEN NULL"),
        "{queries}"
    );
    assert!(
        queries.contains("CAST(CASE WHEN \\\"adi_text\\\""),
        "{queries}"
    );
    // A text that is not a number in a column read as numeric: refused, named.
    pg.query("UPDATE public.cabg SET adi_text = '?' WHERE MOD(hospital_id * 5 + age, 13) = 1")
        .unwrap();
    std::fs::write(dir.join("bad.toml"), with_na(&pooled_table(&server))).unwrap();
    let ran = run_with_password(&dir, &server, &["run", "bad.toml", "--out", "bad_out"]);
    let err = stderr(&ran);
    assert_eq!(ran.status.code(), Some(1), "{err}");
    assert!(
        err.contains("column `adi_text`") && err.contains("are not numbers: \"?\""),
        "{err}"
    );
    assert!(!dir.join("bad_out").exists());
    // Outcomes stored as text are numbers, as the loader parses them ("NA"
    // missing), a continuous one and a binary one.
    for (column, from) in [("los_text", "los_days"), ("death_text", "death_30d")] {
        pg.query(&format!("ALTER TABLE public.cabg ADD COLUMN {column} TEXT"))
            .unwrap();
        pg.query(&format!(
            "UPDATE public.cabg SET {column} = CASE WHEN MOD(hospital_id + age, 17) = 0 THEN 'NA' \
             ELSE CAST({from} AS TEXT) END"
        ))
        .unwrap();
    }
    let text_outcomes = |data: &str| {
        moment_study(&format!("{data}\nna_values = [\"NA\"]"))
            .replace("los_days", "los_text")
            .replace("death_30d", "death_text")
    };
    // (Exit 3 on both paths: with fewer complete cases a bootstrap replicate is
    // singular and ob_boot withholds its intervals.)
    let (rows, moments) = exported_and_moments(&dir, &server, &text_outcomes, 3);
    assert_same_numbers(&rows, &moments, 200);
    // One that is not a number: refused, named.
    pg.query("UPDATE public.cabg SET los_text = 'long' WHERE MOD(hospital_id + age, 17) = 1")
        .unwrap();
    std::fs::write(dir.join("text.toml"), text_outcomes(&pooled_table(&server))).unwrap();
    let ran = run_with_password(&dir, &server, &["run", "text.toml", "--out", "text_out"]);
    let err = stderr(&ran);
    assert_eq!(ran.status.code(), Some(1), "{err}");
    assert!(
        err.contains("column `los_text` (an outcome): ")
            && err.contains("are not numbers: \"long\""),
        "{err}"
    );
    assert!(!dir.join("text_out").exists());
    // A non-finite number among the analysed rows: refused, as the loader does.
    pg.query(
        "UPDATE public.cabg SET los_days = 'Infinity' WHERE ctid = (SELECT ctid FROM public.cabg \
         WHERE age >= 50 AND race = 'White' LIMIT 1)",
    )
    .unwrap();
    std::fs::write(dir.join("inf.toml"), moment_study(&pooled_table(&server))).unwrap();
    let ran = run_with_password(&dir, &server, &["run", "inf.toml", "--out", "inf_out"]);
    let err = stderr(&ran);
    assert_eq!(ran.status.code(), Some(1), "{err}");
    assert!(
        err.contains("column `los_days`: 1 non-finite value(s) (NaN or infinite)"),
        "{err}"
    );
    assert!(!dir.join("inf_out").exists());
}

/// A wrong password, a password in the URL, a method that needs rows without
/// allow_row_export: exit 1, a message that says what to do, nothing written,
/// the password not shown.
#[test]
fn warehouse_refusals_are_clear() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    let url = server.url();
    let config = |extra: &str, url: &str| {
        study(&format!(
            "warehouse = {{ engine = \"postgres\", url = \"{url}\", table = \"cabg\", password_env = \"{VAR}\" }}\n{extra}"
        ))
    };
    let cases = [
        (
            config("allow_row_export = true", &url),
            "wrong-password-123",
            "cannot connect",
        ),
        (
            config(
                "allow_row_export = true",
                &format!("{url} password=hunter2"),
            ),
            "x",
            "holds a password",
        ),
        (config("", &url), "x", "allow_row_export = true"),
        (
            config(
                "allow_row_export = true",
                "postgresql://analyst:hunter2@%2Ftmp%2Fpg:notaport/postgres",
            ),
            "x",
            "holds a password",
        ),
        (
            study(
                "warehouse = { engine = \"spark\", url = \"sc://localhost:15002\", table = \"cabg\" }\nallow_row_export = true",
            ),
            "x",
            "not available in this build",
        ),
    ];
    for (config, password, needle) in cases {
        std::fs::write(dir.join("study.toml"), &config).unwrap();
        let out = dir
            .command(&["run", "study.toml"])
            .env(VAR, password)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(password == "x" || !err.contains(password), "{err}");
        assert!(!dir.join("out").exists());
    }
}

/// The in-warehouse path's core: the per-cell moments PostgreSQL computes
/// (two passes, centred) equal the sufficient-statistics cells the linear
/// methods build from rows (`Cells::build`), cell by cell, to 1e-9 relative.
#[test]
fn moments_computed_in_postgres_equal_the_cells_from_rows() {
    use healthgap_models::covariates::{Absorbed, Column, Covariates};
    use healthgap_sql::{
        CohortQuery, Covariate, Expr, Key, Literal, MomentSpec, Outcome, TableName, Values,
    };

    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut pg = connect(&server);
    let mut params = healthgap_synth::Params::default();
    params.patients = 3000;
    params.seed = 13;
    let sample = healthgap_synth::Sample::generate(&params, &|_| {});
    let frame = healthgap_cohort::table_to_frame(&sample.flat_table()).unwrap();
    let data = healthgap_cohort::frame_to_result(&frame).unwrap();
    let table = TableName::table("cabg");
    pg.replace_table(&table, &data).unwrap();

    let levels = ["private", "medicaid", "medicare", "uninsured"];
    let text = |s: &str| Literal::Str(s.into());
    let mut cohort = CohortQuery::new(table)
        .filter("age >= 40")
        .unwrap()
        .groups("race", vec![text("White"), text("Black")]);
    cohort.hospital = Some(Expr::col("hospital_id"));
    cohort.cluster = Some(Expr::col("hospital_id"));
    cohort.outcomes = vec![Outcome {
        name: "los_days".into(),
        expr: Expr::col("los_days"),
    }];
    let numeric = ["age", "female", "adi", "ejection_fraction"];
    cohort.covariates = numeric
        .iter()
        .map(|n| Covariate::Numeric {
            name: n.to_string(),
            expr: Expr::col(*n),
        })
        .collect();
    cohort.covariates.push(Covariate::Categorical {
        name: "insurance".into(),
        expr: Expr::col("insurance"),
        reference: text("private"),
        levels: levels.iter().map(|l| text(l)).collect(),
    });
    let spec = MomentSpec::all(
        &cohort,
        vec![Key::Group, Key::Hospital, Key::Cluster],
        Some(0),
    )
    .unwrap();
    let cells = healthgap_warehouse::moments::cell_moments(&mut pg, &cohort, &spec).unwrap();

    // The same rows here, from the table's own values.
    let col = |name: &str| &data.columns.iter().find(|(n, _)| n == name).unwrap().1;
    let num = |name: &str, r: usize| match col(name) {
        Values::Int(v) => v[r].map(|x| x as f64),
        Values::Float(v) => v[r],
        other => panic!("{name}: {other:?}"),
    };
    let txt = |name: &str, r: usize| match col(name) {
        Values::Text(v) => v[r].clone(),
        other => panic!("{name}: {other:?}"),
    };
    let (mut y, mut group, mut hospital) = (vec![], vec![], vec![]);
    let mut x: Vec<Vec<f64>> = vec![vec![]; numeric.len() + 3];
    for r in 0..data.rows() {
        let race = txt("race", r).unwrap_or_default();
        let g = match race.as_str() {
            "White" => 0,
            "Black" => 1,
            _ => continue,
        };
        if num("age", r).is_none_or(|a| a < 40.0) {
            continue;
        }
        let values: Option<Vec<f64>> = numeric.iter().map(|n| num(n, r)).collect();
        let (Some(values), Some(ins), Some(los)) =
            (values, txt("insurance", r), num("los_days", r))
        else {
            continue;
        };
        for (j, v) in values.iter().enumerate() {
            x[j].push(*v);
        }
        for (k, level) in levels[1..].iter().enumerate() {
            x[numeric.len() + k].push(f64::from(u8::from(ins == *level)));
        }
        y.push(los);
        group.push(g);
        hospital.push(num("hospital_id", r).unwrap() as i64);
    }
    let mut ids: Vec<i64> = hospital.clone();
    ids.sort();
    ids.dedup();
    let codes: Vec<u32> = hospital
        .iter()
        .map(|h| ids.binary_search(h).unwrap() as u32)
        .collect();
    let mut names: Vec<String> = numeric.iter().map(|s| s.to_string()).collect();
    names.extend(levels[1..].iter().map(|l| format!("insurance={l}")));
    let covariates = Covariates {
        columns: names
            .iter()
            .zip(x)
            .map(|(n, values)| Column {
                name: n.clone(),
                factor: "f".into(),
                values,
            })
            .collect(),
        categoricals: vec![],
        absorbed: Some(Absorbed {
            variable: "hospital_id".into(),
            factor: "care_site".into(),
            codes: codes.clone(),
            levels: ids.len(),
            labels: ids.iter().map(|i| i.to_string()).collect(),
        }),
    };
    let local = healthgap_decompose::cells::Cells::build(
        &y,
        &group,
        &covariates,
        None,
        Some((&codes, ids.len())),
    );
    assert_eq!(cells.len(), local.moments.len(), "number of cells");
    let close = |a: f64, b: f64, what: &str| {
        assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            "{what}: {a} vs {b}"
        );
    };
    let p = names.len();
    for (c, m) in local.moments.iter().enumerate() {
        let key = vec![
            Some(["White", "Black"][local.group[c] as usize].to_string()),
            Some(ids[local.level[c] as usize].to_string()),
            Some(ids[local.cluster[c] as usize].to_string()),
        ];
        let sql = &cells
            .iter()
            .find(|s| s.keys == key)
            .unwrap_or_else(|| panic!("cell {key:?}"))
            .moments;
        close(sql.count, local.rows[c] as f64, "count");
        close(sql.sum_w, m.w, "sum w");
        close(sql.sums[p], m.y, "sum y");
        close(sql.product(p, p), m.yy, "sum y²");
        for j in 0..p {
            close(sql.sums[j], m.x[j + 1], "sum x");
            close(sql.product(j, p), m.xy[j + 1], "sum xy");
            for k in 0..p {
                close(sql.product(j, k), m.xx[(j + 1) * (p + 1) + k + 1], "sum xx");
            }
        }
    }
    // Only aggregates came back: every statement groups or is a global sum.
    assert!(
        pg.statements()
            .iter()
            .filter(|s| s.contains("SUM("))
            .count()
            >= 2
    );
}

/// An empty table, with or without row export: an error that says the data
/// have no rows (not an empty list of group levels), nothing written.
#[test]
fn an_empty_table_is_named_as_empty() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 300);
    let mut pg = connect(&server);
    pg.query("CREATE TABLE public.empty_cohort AS SELECT * FROM public.cabg WHERE false")
        .unwrap();
    for (extra, needle) in [
        ("allow_row_export = true", "the data have no rows"),
        ("", "the warehouse table is empty"),
    ] {
        let config = format!(
            "warehouse = {{ engine = \"postgres\", url = \"{}\", table = \"public.empty_cohort\", password_env = \"{VAR}\" }}\n{extra}",
            server.url()
        );
        let text = moment_study(&config);
        std::fs::write(dir.join("empty.toml"), text).unwrap();
        let out = run_with_password(&dir, &server, &["run", "empty.toml"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!dir.join("out").exists());
    }
}

/// A connection to `server` as its superuser.
fn connect(server: &TestServer) -> healthgap_warehouse::Postgres {
    healthgap_warehouse::Postgres::connect_with_password(&server.url(), Some(&server.password))
        .unwrap()
}

/// [`moment_study`] on the file `healthgap synth` wrote (`file.toml`), run
/// into `file_out`.
fn run_file_study(dir: &Dir) {
    std::fs::write(
        dir.join("file.toml"),
        moment_study("path = \"synth/cohort.parquet\""),
    )
    .unwrap();
    dir.ok(&["run", "file.toml", "--out", "file_out"]);
}

/// `[data] warehouse` on the whole cohort (`public.cabg`), without row export.
fn pooled_table(server: &TestServer) -> String {
    format!(
        "warehouse = {{ engine = \"postgres\", url = \"{}\", table = \"public.cabg\", password_env = \"{VAR}\" }}",
        server.url()
    )
}

/// The sites of a federated study on `server`: `[[data.site]]` tables, each
/// `(name, table)` with its own password variable (`{VAR}_{NAME}`).
fn federated(server: &TestServer, sites: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (name, table) in sites {
        text.push_str(&format!(
            "\n[[data.site]]\nname = \"{name}\"\nwarehouse = {{ engine = \"postgres\", url = \"{}\", table = \"{table}\", password_env = \"{VAR}_{}\" }}\n",
            server.url(),
            name.to_uppercase()
        ));
    }
    text
}

/// Runs `healthgap ARGS` with every site's password variable set.
fn run_sites(dir: &Dir, server: &TestServer, sites: &[&str], args: &[&str]) -> Output {
    let mut cmd = dir.command(args);
    for name in sites {
        cmd.env(format!("{VAR}_{}", name.to_uppercase()), &server.password);
    }
    cmd.output().expect("the binary runs")
}

/// `healthgap run` of `config` (written to `file`) on the sites; the
/// results.json.
fn run_federated(
    dir: &Dir,
    server: &TestServer,
    sites: &[&str],
    file: &str,
    config: &str,
) -> serde_json::Value {
    std::fs::write(dir.join(file), config).unwrap();
    let out = format!("{file}_out");
    let ran = run_sites(dir, server, sites, &["run", file, "--out", &out]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert!(!stderr(&ran).contains(&server.password));
    results(dir, &out)
}

/// The three sites of the federated tests.
const SITES: [&str; 3] = ["north", "south", "east"];

/// Splits `public.cabg` into `<site>.cohort` for the [`SITES`] by hospital
/// (site k has the hospitals whose id is k modulo 3).
fn split_by_hospital(pg: &mut healthgap_warehouse::Postgres) {
    for (k, site) in SITES.iter().enumerate() {
        pg.query(&format!("CREATE SCHEMA {site}")).unwrap();
        pg.query(&format!(
            "CREATE TABLE {site}.cohort AS SELECT * FROM public.cabg WHERE MOD(hospital_id, 3) = {k}"
        ))
        .unwrap();
    }
}

/// `results` without the analyses that bootstrap (for a federated study
/// whose clusters are ordered differently from the pooled data's).
fn delta_only(mut r: serde_json::Value) -> serde_json::Value {
    if let Some(a) = r["analyses"].as_array_mut() {
        a.retain(|a| a["inference"]["method"] != "bootstrap");
    }
    r
}

/// Federation: the cohort split into three sites by hospital (one schema
/// each) gives the pooled study's numbers, from the file and from one
/// warehouse table, to 1e-9 (the bootstrap with the same seed included: the
/// clusters are in the same order). A hospital id that two sites share is
/// two hospitals (two clusters, two absorbed levels). results.json records
/// each site without credentials; a site that fails names the site and
/// nothing is written.
#[test]
fn warehouse_federated_sites_equal_the_pooled_study() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    let mut pg = connect(&server);
    split_by_hospital(&mut pg);
    let names = SITES;
    run_file_study(&dir);
    std::fs::write(dir.join("wh.toml"), moment_study(&pooled_table(&server))).unwrap();
    let ran = run_with_password(&dir, &server, &["run", "wh.toml", "--out", "wh_out"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let sites: Vec<(&str, String)> = names.iter().map(|n| (*n, format!("{n}.cohort"))).collect();
    let sites: Vec<(&str, &str)> = sites.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let config = moment_study(&federated(&server, &sites));
    let fed = run_federated(&dir, &server, &names, "fed.toml", &config);
    let checked = run_sites(&dir, &server, &names, &["check", "fed.toml"]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        said.contains("site north") && said.contains("rows read"),
        "{said}"
    );
    let (file, wh) = (results(&dir, "file_out"), results(&dir, "wh_out"));
    assert_same_numbers(&file, &fed, 200);
    assert_same_numbers(&wh, &fed, 200);
    for key in ["attrition", "groups", "clusters", "n"] {
        assert_eq!(file["cohort"][key], fed["cohort"][key], "{key}");
    }
    assert_eq!(file["data"]["rows_read"], fed["data"]["rows_read"]);
    let w = &fed["data"]["warehouse"];
    assert_eq!(w["row_export"], false);
    let recorded = w["sites"].as_array().unwrap();
    assert_eq!(recorded.len(), 3);
    let mut rows = 0;
    for (site, name) in recorded.iter().zip(names) {
        assert_eq!(site["name"], name);
        assert_eq!(site["engine"], "postgres");
        assert!(site["server"].as_str().unwrap().starts_with("healthgap@"));
        rows += site["rows_read"].as_u64().unwrap();
        let queries = site["queries"].as_array().unwrap();
        let table = format!("FROM \"{name}\".\"cohort\"");
        assert!(
            queries.iter().any(|q| q.as_str().unwrap().contains(&table)),
            "{queries:?}"
        );
        for q in queries {
            let q = q.as_str().unwrap();
            assert!(reads_no_row(q), "{q}");
        }
    }
    assert_eq!(Some(rows), fed["data"]["rows_read"].as_u64());
    for (g, group) in fed["cohort"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let n: u64 = recorded
            .iter()
            .map(|s| s["groups"][g]["n"].as_u64().unwrap())
            .sum();
        assert_eq!(Some(n), group["n"].as_u64(), "{group}");
    }
    let root = crate::schema::schema();
    let mut errors = Vec::new();
    crate::schema::validate(&root, &root, &fed, "$", &mut errors);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let md = std::fs::read_to_string(dir.join("fed.toml_out/report.md")).unwrap();
    assert!(md.contains("Site north: healthgap@"), "{md}");
    let html = std::fs::read_to_string(dir.join("fed.toml_out/index.html")).unwrap();
    assert!(html.contains("site east query 1"));
    for text in [&md, &html, &fed.to_string()] {
        assert!(!text.contains(&server.password));
    }

    // East's hospital ids shifted onto north's: the same ids at two sites
    // are two hospitals, so every delta-method number is still the pooled
    // one (the clusters' order differs, so the bootstrap is not compared).
    pg.query("UPDATE east.cohort SET hospital_id = hospital_id - 2")
        .unwrap();
    let shared = run_federated(&dir, &server, &names, "shared.toml", &config);
    assert_eq!(file["cohort"]["clusters"], shared["cohort"]["clusters"]);
    assert_same_numbers(&delta_only(file.clone()), &delta_only(shared), 100);

    // A site that cannot be reached or read is named; nothing is written.
    for (broken, needle) in [
        (
            config.replace("table = \"south.cohort\"", "table = \"south.nothing\""),
            "site `south`: the warehouse",
        ),
        (
            config.replace(&format!("{VAR}_EAST"), "HEALTHGAP_TEST_NO_SUCH_VARIABLE"),
            "site `east`: the environment variable `HEALTHGAP_TEST_NO_SUCH_VARIABLE`",
        ),
    ] {
        std::fs::write(dir.join("broken.toml"), broken).unwrap();
        for args in [
            &["check", "broken.toml"][..],
            &["run", "broken.toml", "--out", "broken_out"],
        ] {
            let out = run_sites(&dir, &server, &names, args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains(&server.password));
        }
        assert!(!dir.join("broken_out").exists());
    }
}

/// A site whose group count is below min_cell still counts in the pooled
/// analysis, but nothing written identifies it: its per-site counts (and
/// the other site's, which would reveal them from the shown total) are null
/// in results.json and `<11` in the report.
#[test]
fn warehouse_a_small_site_is_suppressed() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 4000);
    let mut pg = connect(&server);
    // The first hospital with 1 to 10 Black patients of 40 or older.
    let small = "(SELECT hospital_id FROM public.cabg WHERE age >= 40 GROUP BY hospital_id \
                 HAVING COUNT(*) FILTER (WHERE race = 'Black') BETWEEN 1 AND 10 \
                 AND COUNT(*) FILTER (WHERE race = 'Hispanic') >= 1 \
                 ORDER BY hospital_id LIMIT 1)";
    pg.query(&format!(
        "CREATE TABLE public.small AS SELECT * FROM public.cabg WHERE hospital_id = {small}"
    ))
    .unwrap();
    pg.query(&format!(
        "CREATE TABLE public.large AS SELECT * FROM public.cabg WHERE hospital_id <> {small}"
    ))
    .unwrap();
    run_file_study(&dir);
    let names = ["large", "small"];
    let config = moment_study(&federated(
        &server,
        &[("large", "public.large"), ("small", "public.small")],
    ));
    let fed = run_federated(&dir, &server, &names, "fed.toml", &config);
    let file = results(&dir, "file_out");
    assert_same_numbers(&file, &fed, 200);
    let sites = fed["data"]["warehouse"]["sites"].as_array().unwrap();
    // Black (and its complement at the large site) hidden.
    for site in sites {
        assert!(site["groups"][1]["n"].is_null(), "{site}");
    }
    let md = std::fs::read_to_string(dir.join("fed.toml_out/report.md")).unwrap();
    let line = md
        .lines()
        .find(|l| l.starts_with("Site small:"))
        .unwrap_or_else(|| panic!("{md}"));
    // Markdown escapes `<`.
    assert!(line.contains("Black \\<11"), "{line}");
}

/// A study of the site label (`[data] site_column`): [`moment_study`] with a
/// covariate block of its own for it (and demographics), the cluster
/// `cluster` (`"site"` too), and crude, Oaxaca–Blinder and Gelbach by the
/// delta method.
fn site_study(data: &str, cluster: &str) -> String {
    let text = moment_study(data);
    let (factors, report) = (
        text.find("[factors]").unwrap(),
        text.find("[report]").unwrap(),
    );
    format!(
        r#"{}[factors]
demographics = ["age", "female"]
place = ["site"]

[variables]
site = {{ type = "categorical", reference = "south" }}

[design]
cluster = "{cluster}"

[inference]
method = "delta"

[[analysis]]
method = "crude"
outcomes = ["los_days", "death_30d"]

[[analysis]]
method = "oaxaca_blinder"
outcomes = ["los_days", "death_30d"]

[[analysis]]
method = "gelbach"
outcomes = ["los_days"]
base = ["demographics"]
added = ["place"]

{}"#,
        &text[..factors],
        &text[report..]
    )
}

/// `[data] site_column = "site"`: the site label as a covariate and as the
/// cluster gives the numbers of the pooled table with a real `site` column.
#[test]
fn warehouse_the_site_label_is_a_factor_and_a_cluster() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    load_synthetic(&dir, &server, 3000);
    let mut pg = connect(&server);
    split_by_hospital(&mut pg);
    pg.query(
        "CREATE TABLE public.labelled AS SELECT *, CASE MOD(hospital_id, 3) WHEN 0 THEN 'north' \
         WHEN 1 THEN 'south' ELSE 'east' END AS site FROM public.cabg",
    )
    .unwrap();
    let tables: Vec<String> = SITES.iter().map(|n| format!("{n}.cohort")).collect();
    let sites: Vec<(&str, &str)> = SITES
        .iter()
        .copied()
        .zip(tables.iter().map(String::as_str))
        .collect();
    let federated = format!("site_column = \"site\"\n{}", federated(&server, &sites));
    let pooled = pooled_table(&server).replace("public.cabg", "public.labelled");
    for cluster in ["hospital_id", "site"] {
        std::fs::write(dir.join("one.toml"), site_study(&pooled, cluster)).unwrap();
        let ran = run_with_password(&dir, &server, &["run", "one.toml", "--out", "one_out"]);
        assert!(ran.status.success(), "{}", stderr(&ran));
        let one = results(&dir, "one_out");
        let fed = run_federated(
            &dir,
            &server,
            &SITES,
            "fed.toml",
            &site_study(&federated, cluster),
        );
        let numbers = assert_same_numbers(&one, &fed, 20);
        assert!(
            numbers.iter().any(|(k, _)| k.contains("site=north")),
            "{numbers:?}"
        );
        assert_eq!(one["cohort"]["clusters"], fed["cohort"]["clusters"]);
        std::fs::remove_dir_all(dir.join("one_out")).unwrap();
        std::fs::remove_dir_all(dir.join("fed.toml_out")).unwrap();
    }
}
