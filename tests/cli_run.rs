//! `healthgap check` and `healthgap run`: the crude study end to end, and every
//! kind of bad input (a clear error, a non-zero exit, no output written).

use crate::util::{Dir, stderr};

fn results(dir: &Dir, out: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("results.json")).unwrap())
        .unwrap()
}

#[test]
fn crude_study_runs_end_to_end_and_covers_the_truth() {
    let dir = Dir::new();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/analyses/crude_synthetic.toml");
    let out = dir.ok(&["run", config, "--out", "report"]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("death_30d") && summary.contains("Black vs White: gap"),
        "{summary}"
    );
    let r = results(&dir, "report");
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["data"]["source"], "synthetic");
    assert_eq!(r["data"]["rows_read"], 20000);
    assert_eq!(r["cohort"]["groups"][0]["label"], "White");
    let clusters = r["cohort"]["clusters"].as_u64().unwrap();
    assert!(
        (280..=300).contains(&clusters),
        "{clusters} hospitals with analysed patients"
    );
    assert!(r["study"]["config_sha256"].as_str().unwrap().len() == 64);
    let analyses = r["analyses"].as_array().unwrap();
    assert_eq!(analyses.len(), 8, "4 outcomes x 2 comparisons");
    let table1 = r["cohort"]["table1"].as_array().unwrap();
    assert!(
        table1
            .iter()
            .any(|row| row["variable"] == "insurance" && row["level"] == "medicaid")
    );
    // The crude mortality gap's CI covers the sample truth of the generator.
    let mut params = healthgap_synth::Params::default();
    params.patients = 20_000;
    params.seed = 11;
    params.population_draws = 20_000;
    let truth =
        healthgap_synth::truth::compute(&healthgap_synth::Sample::generate(&params, &|_| {}));
    for a in analyses.iter().filter(|a| a["comparison"] == "Black") {
        let outcome = a["outcome"].as_str().unwrap();
        let gap = a["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["quantity"] == "gap")
            .unwrap();
        let t = truth
            .get("gap", "Black", outcome, None)
            .unwrap()
            .sample
            .unwrap();
        let (lo, hi) = (
            gap["ci_low"].as_f64().unwrap(),
            gap["ci_high"].as_f64().unwrap(),
        );
        assert!(
            lo < t && t < hi,
            "{outcome}: truth {t} outside [{lo}, {hi}]"
        );
    }
    let csv = std::fs::read_to_string(dir.join("report/estimates.csv")).unwrap();
    assert!(csv.starts_with("analysis,method,outcome,reference,comparison,quantity,factor,term,estimate,se,ci_low,ci_high,p_value,se_method\n"));
    for f in ["models.csv", "table1.csv", "attrition.csv"] {
        assert!(dir.join("report").join(f).is_file(), "{f}");
    }
}

#[test]
fn check_prints_the_cohort_summary() {
    let dir = Dir::new();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/analyses/crude_synthetic.toml");
    let out = dir.ok(&["check", config]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "rows read",
        "age >= 18",
        "group White",
        "group Black",
        "clusters: ",
        "(hospital_id)",
        "config OK",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert!(!dir.join("report").exists());
}

/// A small flat extract and a config over it.
pub(crate) fn fixture(dir: &Dir) {
    dir.ok(&[
        "synth",
        "--patients",
        "3000",
        "--seed",
        "3",
        "--format",
        "csv",
        "--no-truth",
        "--out",
        "data",
    ]);
    std::fs::write(dir.join("study.toml"), CONFIG).unwrap();
}

const CONFIG: &str = r#"
[study]
name = "fixture"
seed = 1

[data]
path = "data/cohort.csv"

[cohort]
filters = ["age >= 18"]

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
death_30d = { type = "binary" }

[factors]
biological = ["age", "female", "status"]
socioeconomic = ["adi", "insurance"]

[variables]
insurance = { type = "categorical", reference = "private" }

[design]
cluster = "hospital_id"

[[analysis]]
method = "crude"
outcomes = ["death_30d"]

[report]
out_dir = "out"
formats = ["json", "csv"]
"#;

/// Replaces one column's values in the fixture CSV by `f(row, old)`.
fn edit_column(dir: &Dir, column: &str, f: impl Fn(usize, &str) -> String) {
    let path = dir.join("data/cohort.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let k = header.split(',').position(|c| c == column).unwrap();
    let mut out = format!("{header}\n");
    for (i, line) in lines.enumerate() {
        let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
        fields[k] = f(i, &fields[k]);
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn expect_failure(dir: &Dir, needles: &[&str]) {
    let out = dir.run(&["run", "study.toml"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "should fail");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !dir.join("out").exists(),
        "output written despite the error"
    );
}

#[test]
fn the_fixture_itself_runs() {
    let dir = Dir::new();
    fixture(&dir);
    dir.ok(&["run", "study.toml"]);
    assert!(dir.join("out/results.json").is_file());
    // Nothing missing: one Table 1.
    assert!(
        results(&dir, "out")["cohort"]
            .get("table1_complete")
            .is_none()
    );
}

/// The library entry gives the same results.json as the binary.
#[test]
fn the_library_entry_gives_the_binarys_results() {
    let dir = Dir::new();
    fixture(&dir);
    dir.ok(&["run", "study.toml"]);
    let plan = healthgap::from_file(&dir.join("study.toml")).unwrap();
    let cohort = healthgap::load_cohort(&plan).unwrap();
    healthgap::check_study(&plan, &cohort).unwrap();
    let study = healthgap::run_study(&plan, &cohort, &healthgap::study::Quiet).unwrap();
    let from_library = serde_json::to_value(&study.results).unwrap();
    let from_binary = results(&dir, "out");
    assert_eq!(from_library["analyses"], from_binary["analyses"]);
    assert_eq!(from_library["cohort"], from_binary["cohort"]);
    assert_eq!(study.fallbacks, 0);
}

#[test]
fn bad_files_are_named() {
    let dir = Dir::new();
    fixture(&dir);
    let config = |data: &str| CONFIG.replace("data/cohort.csv", data);
    std::fs::write(dir.join("study.toml"), config("data/nope.csv")).unwrap();
    expect_failure(&dir, &["nope.csv", "no such file"]);
    std::fs::write(dir.join("empty.csv"), "").unwrap();
    std::fs::write(dir.join("study.toml"), config("empty.csv")).unwrap();
    expect_failure(&dir, &["empty.csv", "empty"]);
    std::fs::write(dir.join("ragged.csv"), "race,age\nWhite,1,2,3\n\"Black,4\n").unwrap();
    std::fs::write(dir.join("study.toml"), config("ragged.csv")).unwrap();
    expect_failure(&dir, &["ragged.csv"]);
    // A Parquet file of the wrong schema: the hospitals table, not a cohort.
    dir.ok(&[
        "synth",
        "--patients",
        "100",
        "--no-truth",
        "--truth-patients",
        "--out",
        "other",
    ]);
    std::fs::copy(dir.join("other/hospitals.csv"), dir.join("hosp.csv")).unwrap();
    std::fs::write(
        dir.join("study.toml"),
        config("other/truth_patients.parquet"),
    )
    .unwrap();
    expect_failure(&dir, &["truth_patients.parquet", "no column `race`"]);
    std::fs::write(dir.join("study.toml"), config("hosp.csv")).unwrap();
    expect_failure(&dir, &["hosp.csv", "no column `race`"]);
}

#[test]
fn config_errors_name_the_problem() {
    let dir = Dir::new();
    fixture(&dir);
    let cases: [(&str, &str, &[&str]); 10] = [
        (
            "\"adi\", \"insurance\"",
            "\"adii\", \"insurance\"",
            &["no column `adii`", "did you mean `adi`"],
        ),
        (
            "reference = \"White\"",
            "reference = \"Whte\"",
            &["group level `Whte` does not occur", "did you mean `White`"],
        ),
        (
            "reference = \"private\"",
            "reference = \"privte\"",
            &["reference level `privte` does not occur", "insurance"],
        ),
        (
            "socioeconomic = [\"adi\", \"insurance\"]",
            "socioeconomic = [\"adi\", \"insurance\", \"age\"]",
            &["`age` is listed in two blocks"],
        ),
        (
            "filters = [\"age >= 18\"]",
            "filters = [\"race != 'Black'\"]",
            &["group `Black` has no rows after the filters"],
        ),
        ("min_cell = 11", "min_cel = 11", &[]),
        (
            "cluster = \"hospital_id\"",
            "cluster = \"hosp_id\"",
            &[
                "no column `hosp_id`",
                "[design] cluster",
                "did you mean `hospital_id`",
            ],
        ),
        (
            "socioeconomic = [\"adi\", \"insurance\"]",
            "socioeconomic = [\"income\", \"insurance\"]",
            &["no column `income`", "[factors] socioeconomic"],
        ),
        (
            "filters = [\"age >= 18\"]",
            "filters = [\"agee >= 18\"]",
            &[
                "no column `agee`",
                "[cohort] filter `agee >= 18`",
                "did you mean `age`",
            ],
        ),
        (
            "[[analysis]]",
            "[inference]\nreplicates = \"50\"\n\n[[analysis]]",
            &["`replicates`", "whole number"],
        ),
    ];
    for (from, to, needles) in cases {
        let text = CONFIG.replace(from, to);
        std::fs::write(dir.join("study.toml"), &text).unwrap();
        if needles.is_empty() {
            continue;
        }
        expect_failure(&dir, needles);
    }
    std::fs::write(
        dir.join("study.toml"),
        CONFIG.replace(
            "formats = [\"json\", \"csv\"]",
            "formats = [\"json\", \"csv\"]\nmin_cel = 3",
        ),
    )
    .unwrap();
    expect_failure(
        &dir,
        &[
            "study.toml",
            "unknown key `min_cel`",
            "did you mean `min_cell`",
        ],
    );
}

#[test]
fn bad_values_are_named_with_their_column() {
    let cases: [(&str, fn(usize, &str) -> String, &[&str]); 5] = [
        (
            "death_30d",
            |i, v| if i == 5 { "2".into() } else { v.into() },
            &["death_30d", "binary", "the values 0, 1, 2"],
        ),
        (
            "adi",
            |i, v| if i == 7 { "inf".into() } else { v.into() },
            &["adi", "non-finite"],
        ),
        (
            "age",
            |i, v| if i == 9 { "NaN".into() } else { v.into() },
            &["age", "non-finite"],
        ),
        (
            "hospital_id",
            |i, v| if i == 3 { String::new() } else { v.into() },
            &["hospital_id", "missing values"],
        ),
        (
            "death_30d",
            |i, v| if i == 2 { "yes".into() } else { v.into() },
            &["death_30d", "are not numbers", "row 3: \"yes\""],
        ),
    ];
    for (column, f, needles) in cases {
        let dir = Dir::new();
        fixture(&dir);
        edit_column(&dir, column, f);
        expect_failure(&dir, needles);
    }
    // Zero and negative weights.
    for bad in ["0", "-1"] {
        let dir = Dir::new();
        fixture(&dir);
        edit_column(
            &dir,
            "bmi",
            move |i, v| if i == 4 { bad.into() } else { v.into() },
        );
        std::fs::write(
            dir.join("study.toml"),
            CONFIG.replace(
                "cluster = \"hospital_id\"",
                "cluster = \"hospital_id\"\nweights = \"bmi\"",
            ),
        )
        .unwrap();
        expect_failure(&dir, &["bmi", "weights must be positive"]);
    }
}

#[test]
fn missing_values_are_dropped_and_logged_or_refused() {
    let dir = Dir::new();
    fixture(&dir);
    edit_column(&dir, "adi", |i, v| {
        if i % 100 == 0 {
            String::new()
        } else {
            v.into()
        }
    });
    edit_column(&dir, "los_days", |i, v| {
        if i % 10 == 3 { "NA".into() } else { v.into() }
    });
    let config = CONFIG
        .replace(
            "death_30d = { type = \"binary\" }",
            "death_30d = { type = \"binary\" }\nlos_days = { type = \"continuous\" }\n\
             bmi = { type = \"continuous\" }",
        )
        .replace(
            "[report]",
            "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]\n\n\
             [[analysis]]\nid = \"crude_los\"\nmethod = \"crude\"\noutcomes = [\"los_days\"]\n\n\
             [[analysis]]\nid = \"crude_bmi\"\nmethod = \"crude\"\noutcomes = [\"bmi\"]\n\n[report]",
        );
    std::fs::write(dir.join("study.toml"), &config).unwrap();
    dir.ok(&["run", "study.toml"]);
    let r = results(&dir, "out");
    let groups: u64 = r["cohort"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["n"].as_u64().unwrap())
        .sum();
    let analysis = |id: &str| {
        r["analyses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()
            .clone()
    };
    // The BMI analysis uses every row: the missing length of stay and ADI
    // are not its variables.
    let crude = analysis("crude_bmi");
    assert_eq!(crude["n"].as_u64().unwrap(), groups);
    assert_eq!(crude["attrition"], serde_json::json!([]));
    // The crude length-of-stay analysis loses the rows without it, not those
    // without ADI; Oaxaca–Blinder loses both, step by step, per group.
    let los = analysis("crude_los");
    let n_los = los["n"].as_u64().unwrap();
    assert!(
        n_los < groups && n_los > groups * 85 / 100,
        "{n_los} of {groups}"
    );
    // The rows left out are said in the analysis's warnings (terminal and report).
    assert!(
        los["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("lack los_days and are left out")),
        "{}",
        los["warnings"]
    );
    let ob = analysis("oaxaca_blinder");
    // A few Black patients lack ADI: that exclusion is suppressed (< 11), so
    // the analysis's n and its models' n, which would give it back by
    // difference, are suppressed too.
    assert!(ob["n"].is_null(), "{}", ob["n"]);
    for m in ob["models"].as_array().unwrap() {
        assert!(m["n"].is_null(), "{}", m["n"]);
    }
    let steps: Vec<(String, String)> = ob["attrition"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["group"].as_str().unwrap().to_string(),
                s["step"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for g in ["White", "Black"] {
        for step in ["cohort", "complete cases: los_days", "complete cases: adi"] {
            assert!(
                steps.contains(&(g.to_string(), step.to_string())),
                "{g} {step}: {steps:?}"
            );
        }
    }
    // Table 1 side by side: the cohort and the complete cases of every variable.
    let complete = r["cohort"]["table1_complete"].as_array().unwrap();
    assert_eq!(
        complete.len(),
        r["cohort"]["table1"].as_array().unwrap().len()
    );
    let csv = std::fs::read_to_string(dir.join("out/attrition.csv")).unwrap();
    assert!(
        csv.contains("oaxaca_blinder,los_days,Black,Black,complete cases: adi,"),
        "{csv}"
    );
    // Equal missingness in both groups: no differential-missingness warning.
    let warned = |a: &serde_json::Value| {
        a["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("selected differently"))
    };
    assert!(!warned(&ob), "{}", ob["warnings"]);
    // `missing = "error"` refuses and names the columns.
    std::fs::remove_dir_all(dir.join("out")).unwrap();
    std::fs::write(
        dir.join("study.toml"),
        config.replace(
            "filters = [\"age >= 18\"]",
            "filters = [\"age >= 18\"]\nmissing = \"error\"",
        ),
    )
    .unwrap();
    expect_failure(&dir, &["missing values in", "adi (", "los_days ("]);
}

/// A covariate missing far more often in one group than in the other is
/// warned about (complete cases then select the groups differently).
#[test]
fn differential_missingness_is_warned_about() {
    let dir = Dir::new();
    fixture(&dir);
    let text = std::fs::read_to_string(dir.join("data/cohort.csv")).unwrap();
    let races = crate::bad_configs::column(&text, "race");
    edit_column(&dir, "adi", |i, v| {
        if races[i] == "Black" && i % 3 == 0 {
            String::new()
        } else {
            v.into()
        }
    });
    let config = CONFIG
        .replace(
            "death_30d = { type = \"binary\" }",
            "death_30d = { type = \"binary\" }\nlos_days = { type = \"continuous\" }",
        )
        .replace(
            "[report]",
            "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]\n\n[report]",
        );
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let out = dir.ok(&["run", "study.toml"]);
    let err = stderr(&out);
    assert!(
        err.contains("adi is missing for") && err.contains("of Black and"),
        "{err}"
    );
}

#[test]
fn gzipped_csv_and_parquet_load_the_same_cohort() {
    let dir = Dir::new();
    fixture(&dir);
    dir.ok(&["run", "study.toml", "--out", "a"]);
    let csv = std::fs::read(dir.join("data/cohort.csv")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &csv).unwrap();
    std::fs::write(dir.join("data/cohort.csv.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        dir.join("study.toml"),
        CONFIG.replace("data/cohort.csv", "data/cohort.csv.gz"),
    )
    .unwrap();
    dir.ok(&["run", "study.toml", "--out", "b"]);
    dir.ok(&[
        "synth",
        "--patients",
        "3000",
        "--seed",
        "3",
        "--no-truth",
        "--out",
        "pq",
    ]);
    std::fs::write(
        dir.join("study.toml"),
        CONFIG.replace("data/cohort.csv", "pq/cohort.parquet"),
    )
    .unwrap();
    dir.ok(&["run", "study.toml", "--out", "c"]);
    let est = |d: &str| std::fs::read_to_string(dir.join(d).join("estimates.csv")).unwrap();
    assert_eq!(est("a"), est("b"));
    assert_eq!(est("a"), est("c"));
}

#[test]
fn every_config_in_analyses_runs_end_to_end_and_matches_the_regression_fixture() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut configs: Vec<_> = std::fs::read_dir(root.join("analyses"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 2);
    for config in configs {
        // Each config runs from a copy of analyses/ (with its data folder), so
        // that a config reading OMOP tables finds them where its comment says
        // `healthgap synth --omop --out data/cabg` puts them.
        let dir = Dir::new();
        std::fs::create_dir_all(dir.join("analyses/data")).unwrap();
        for f in std::fs::read_dir(root.join("analyses/data")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.join("analyses/data").join(f.file_name().unwrap())).unwrap();
        }
        let copy = dir.join("analyses").join(config.file_name().unwrap());
        std::fs::copy(&config, &copy).unwrap();
        if std::fs::read_to_string(&config)
            .unwrap()
            .contains("../data/cabg/omop")
        {
            dir.ok(&[
                "synth",
                "--patients",
                "20000",
                "--seed",
                "7",
                "--omop",
                "--no-truth",
                "--out",
                "data/cabg",
            ]);
        }
        // A warehouse config: a throwaway server with the cohort loaded as its
        // comment says, and the config pointed at it.
        let text = std::fs::read_to_string(&config).unwrap();
        let server = text.contains("engine = \"postgres\"").then(|| {
            let server =
                healthgap_warehouse::testing::TestServer::start().unwrap_or_else(|e| panic!("{e}"));
            let url = server.url();
            let out = dir
                .command(&[
                    "synth",
                    "--patients",
                    "20000",
                    "--seed",
                    "7",
                    "--to",
                    &url,
                    "--table",
                    "cabg_cohort",
                    "--password-env",
                    "HEALTHGAP_PG_PASSWORD",
                ])
                .env("HEALTHGAP_PG_PASSWORD", &server.password)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            // A federated config's sites: the statements its comment gives.
            let mut pg =
                healthgap_warehouse::Postgres::connect_with_password(&url, Some(&server.password))
                    .unwrap();
            for line in text.lines().filter_map(|l| l.strip_prefix("#   CREATE ")) {
                for statement in format!("CREATE {line}").split(';') {
                    if !statement.trim().is_empty() {
                        pg.query(statement.trim()).unwrap();
                    }
                }
            }
            let pointed = text.replace(
                "host=/var/run/postgresql user=postgres dbname=postgres",
                &url,
            );
            assert_ne!(pointed, text, "the warehouse url in {}", config.display());
            std::fs::write(&copy, pointed).unwrap();
            server
        });
        let out = dir
            .command(&["run", copy.to_str().unwrap(), "--out", "report"])
            .env(
                "HEALTHGAP_PG_PASSWORD",
                server.as_ref().map_or("", |s| s.password.as_str()),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            config.display(),
            stderr(&out)
        );
        let r = results(&dir, "report");
        assert_eq!(r["schema_version"], 1, "{}", config.display());
        if std::fs::read_to_string(&config)
            .unwrap()
            .contains("\"html\"")
        {
            let html = std::fs::read_to_string(dir.join("report/index.html")).unwrap();
            assert!(html.contains("1. Findings"), "{}", config.display());
        }
        assert!(
            !r["analyses"].as_array().unwrap().is_empty(),
            "{}",
            config.display()
        );
        let stem = config.file_stem().unwrap().to_str().unwrap();
        regression_fixture(&format!("{stem}.json"), &r);
    }
}

/// Every number of a results.json, as the regression fixture stores it: per
/// analysis its id, outcome, comparison, n and withheld reason, and each
/// estimate's quantity, factor, term, estimate, se, ci_low, ci_high.
fn numbers_of(r: &serde_json::Value) -> serde_json::Value {
    let analyses: Vec<serde_json::Value> = r["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let rows: Vec<serde_json::Value> = a["estimates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    serde_json::json!([
                        e["quantity"],
                        e["factor"],
                        e["term"],
                        e["estimate"],
                        e["se"],
                        e["ci_low"],
                        e["ci_high"]
                    ])
                })
                .collect();
            serde_json::json!({
                "id": a["id"], "outcome": a["outcome"], "comparison": a["comparison"],
                "n": a["n"], "withheld": a["inference"]["withheld"], "estimates": rows
            })
        })
        .collect();
    serde_json::Value::Array(analyses)
}

/// Whether two fixtures agree: the same structure and texts, numbers equal
/// to 1e-12 relative (or absolute below 1).
fn same_numbers(a: &serde_json::Value, b: &serde_json::Value, at: &str, diffs: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if (x - y).abs() > 1e-12 * x.abs().max(1.0) {
                diffs.push(format!("{at}: {x} vs {y}"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same_numbers(p, q, &format!("{at}[{i}]"), diffs);
            }
        }
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (k, p) in x {
                match y.get(k) {
                    Some(q) => same_numbers(p, q, &format!("{at}.{k}"), diffs),
                    None => diffs.push(format!("{at}.{k}: missing")),
                }
            }
        }
        (x, y) if x == y => {}
        (x, y) => diffs.push(format!("{at}: {x} vs {y}")),
    }
}

/// The regression fixture of one config (tests/golden/regression/NAME):
/// every number of its results.json must stay within 1e-12 of the stored
/// one through refactors; HEALTHGAP_BLESS=1 rewrites it when a change of
/// results is deliberate (say so in the commit).
fn regression_fixture(name: &str, r: &serde_json::Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/regression")
        .join(name);
    let now = numbers_of(r);
    if std::env::var("HEALTHGAP_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string(&now).unwrap() + "\n").unwrap();
        return;
    }
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!("{} is missing; run with HEALTHGAP_BLESS=1", path.display())
        }))
        .unwrap();
    let mut diffs = Vec::new();
    same_numbers(&stored, &now, name, &mut diffs);
    assert!(
        diffs.is_empty(),
        "{} number(s) changed (HEALTHGAP_BLESS=1 rewrites the fixture when that is deliberate):\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// One analysis that fails (a covariate without variation makes its models
/// singular) does not discard the others: the report is written with the
/// failure named in results.json `failed`, the warnings and the terminal, and
/// the run exits with code 3. When every analysis fails, nothing is written.
#[test]
fn a_failing_analysis_is_reported_and_the_others_kept() {
    let dir = Dir::new();
    fixture(&dir);
    edit_column(&dir, "adi", |_, _| "5".into());
    let config = CONFIG
        .replace(
            "[report]",
            "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]\n\n[report]",
        )
        .replace(
            "death_30d = { type = \"binary\" }",
            "death_30d = { type = \"binary\" }\nlos_days = { type = \"continuous\" }",
        )
        .replace("outcomes = [\"death_30d\"]", "outcomes = [\"los_days\"]");
    assert!(config.contains("oaxaca_blinder"));
    std::fs::write(dir.join("study.toml"), &config).unwrap();
    let out = dir.run(&["run", "study.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("oaxaca_blinder: failed:") && err.contains("adi"),
        "{err}"
    );
    assert!(err.contains("warning(s) (also in the report)"), "{err}");
    let r = results(&dir, "out");
    assert_eq!(r["failed"][0]["id"], "oaxaca_blinder", "{}", r["failed"]);
    assert!(
        r["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("singular")
    );
    let methods: Vec<&str> = r["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["crude"]);
    // Every analysis failing: an error, and no report.
    let only_failing = config.replace(
        "[[analysis]]\nmethod = \"crude\"\noutcomes = [\"los_days\"]\n\n",
        "",
    );
    assert!(!only_failing.contains("\"crude\""), "{only_failing}");
    std::fs::remove_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("study.toml"), only_failing).unwrap();
    expect_failure(&dir, &["every analysis failed", "adi"]);
}

/// Small cells are judged on each analysis's own complete cases: a group with
/// enough events in the cohort but fewer than min_cell among the complete
/// cases of an analysis's variables is not reported for that analysis (its
/// estimates would reveal the count), while an analysis without those
/// variables is.
#[test]
fn small_event_counts_are_judged_on_each_analysis_sample() {
    let dir = Dir::new();
    fixture(&dir);
    let text = std::fs::read_to_string(dir.join("data/cohort.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (race, mm) = (col("race"), col("major_morbidity"));
    let mut kept_events = 0;
    let blank: Vec<bool> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            if f[race] == "Black" && f[mm] == "1" {
                kept_events += 1;
                kept_events > 5
            } else {
                false
            }
        })
        .collect();
    assert!(
        kept_events > 20,
        "{kept_events} events among Black patients"
    );
    edit_column(
        &dir,
        "adi",
        |i, v| if blank[i] { String::new() } else { v.into() },
    );
    let config = CONFIG
        .replace(
            "death_30d = { type = \"binary\" }",
            "major_morbidity = { type = \"binary\" }",
        )
        .replace("outcomes = [\"death_30d\"]", "outcomes = [\"major_morbidity\"]")
        .replace(
            "[report]",
            "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"major_morbidity\"]\n\n[report]",
        );
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let out = dir.ok(&["run", "study.toml"]);
    let r = results(&dir, "out");
    let ids: Vec<&str> = r["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["crude"], "{}", stderr(&out));
    assert!(
        r["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("fewer than 11 events or non-events")),
        "{}",
        r["warnings"]
    );
}

/// A categorical level held by one patient: its coefficient would be that
/// patient's residual, so no estimate or model row shows it, and a warning
/// names the level and the fix.
#[test]
fn coefficients_of_rare_levels_are_not_shown() {
    let dir = Dir::new();
    fixture(&dir);
    edit_column(&dir, "insurance", |i, v| {
        if i == 10 { "vip".into() } else { v.into() }
    });
    let config = CONFIG
        .replace(
            "death_30d = { type = \"binary\" }",
            "los_days = { type = \"continuous\" }",
        )
        .replace("outcomes = [\"death_30d\"]", "outcomes = [\"los_days\"]")
        .replace(
            "[report]",
            "[[analysis]]\nmethod = \"gelbach\"\noutcomes = [\"los_days\"]\nbase = [\"biological\"]\n\
             added = [\"socioeconomic\"]\n\n[report]",
        );
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let out = dir.run(&["run", "study.toml"]);
    let err = stderr(&out);
    let r = results(&dir, "out");
    for a in r["analyses"].as_array().unwrap() {
        for part in ["estimates", "models"] {
            let text = serde_json::to_string(&a[part]).unwrap();
            assert!(!text.contains("insurance=vip"), "{part}: {err}");
        }
    }
    let models = std::fs::read_to_string(dir.join("out/models.csv")).unwrap();
    assert!(!models.contains("insurance=vip"));
    assert!(
        r["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("insurance=vip")
            && w.as_str().unwrap().contains("min_count")),
        "{}",
        r["warnings"]
    );
}

/// One comparison that fails (its group model is singular) does not discard
/// the analysis's other comparisons: they are reported, the failure is named
/// with its outcome and comparison, and the run exits with 3.
#[test]
fn a_failing_comparison_keeps_the_others() {
    let dir = Dir::new();
    fixture(&dir);
    let text = std::fs::read_to_string(dir.join("data/cohort.csv")).unwrap();
    let races = crate::bad_configs::column(&text, "race");
    edit_column(&dir, "status", |i, v| {
        if races[i] == "Asian" {
            "elective".into()
        } else {
            v.into()
        }
    });
    let config = CONFIG
        .replace(
            "death_30d = { type = \"binary\" }",
            "los_days = { type = \"continuous\" }",
        )
        .replace("compare = [\"Black\"]", "compare = [\"Black\", \"Asian\"]")
        .replace(
            "[[analysis]]\nmethod = \"crude\"\noutcomes = [\"death_30d\"]",
            "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]",
        );
    assert!(config.contains("oaxaca_blinder") && !config.contains("crude"));
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let out = dir.run(&["run", "study.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let r = results(&dir, "out");
    let comparisons: Vec<&str> = r["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["comparison"].as_str().unwrap())
        .collect();
    assert_eq!(comparisons, ["Black"], "{err}");
    let reason = r["failed"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("los_days, Asian vs White"), "{reason}");
    // `check` fails on the same comparison.
    let checked = dir.run(&["check", "study.toml"]);
    assert_eq!(checked.status.code(), Some(1));
    assert!(stderr(&checked).contains("los_days, Asian vs White"));
}

/// Messy values that used to pass silently are named: group values that are
/// missing or differ from a level only by spaces, a categorical level that
/// looks like a missing-value code; and every column whose numbers do not
/// parse is reported at once, each with the na_values that would fix it.
#[test]
fn messy_values_are_named() {
    let dir = Dir::new();
    fixture(&dir);
    edit_column(&dir, "race", |i, v| match i {
        3 => "White ".into(),
        5 => String::new(),
        _ => v.into(),
    });
    edit_column(&dir, "insurance", |i, v| {
        if i == 7 { ".".into() } else { v.into() }
    });
    let out = dir.ok(&["run", "study.toml"]);
    let err = stderr(&out);
    assert!(
        err.contains("the group column `race` has missing values and values that differ")
            && err.contains("\"White \""),
        "{err}"
    );
    assert!(
        err.contains(
            "column `insurance` has the level(s) \".\" that look like missing-value codes"
        ),
        "{err}"
    );
    edit_column(
        &dir,
        "adi",
        |i, v| if i == 4 { ".".into() } else { v.into() },
    );
    edit_column(&dir, "age", |i, v| {
        if i == 8 { "unknown".into() } else { v.into() }
    });
    let out = dir.run(&["run", "study.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("2 problems in the data"), "{err}");
    assert!(
        err.contains("column `adi`") && err.contains("column `age`"),
        "{err}"
    );
    assert!(
        err.contains("na_values = [\"\", \"NA\", \"unknown\"]"),
        "{err}"
    );
}

/// A group model's clusters are those its rows are in (as pyfixest counts G
/// on its estimation sample), not every hospital of the cohort.
#[test]
fn group_models_count_their_own_clusters() {
    let dir = Dir::new();
    fixture(&dir);
    let config = CONFIG
        .replace(
            "death_30d = { type = \"binary\" }",
            "los_days = { type = \"continuous\" }",
        )
        .replace(
            "[[analysis]]\nmethod = \"crude\"\noutcomes = [\"death_30d\"]",
            "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]",
        );
    std::fs::write(dir.join("study.toml"), config).unwrap();
    dir.ok(&["run", "study.toml"]);
    let r = results(&dir, "out");
    let total = r["cohort"]["clusters"].as_u64().unwrap();
    let models = r["analyses"][0]["models"].as_array().unwrap();
    let clusters = |needle: &str| {
        models
            .iter()
            .find(|m| m["label"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {models:?}"))["clusters"]
            .as_u64()
            .unwrap()
    };
    let black = clusters("Black");
    assert!(black < total, "Black model: {black} of {total} clusters");
    assert!(clusters("White") <= total);
}
