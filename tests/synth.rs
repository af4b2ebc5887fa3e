//! `healthgap synth`: outputs, determinism and bad input.

use crate::util::{Dir, stderr};

/// Small and quick: few patients, a small population Monte Carlo.
const QUICK: [&str; 4] = ["--patients", "3000", "--set", "population_draws=20000"];

fn synth(dir: &Dir, out: &str, extra: &[&str]) {
    let mut args = vec!["synth", "--out", out];
    args.extend_from_slice(&QUICK);
    args.extend_from_slice(extra);
    dir.ok(&args);
}

#[test]
fn writes_cohort_truth_hospitals_and_omop_tables() {
    let dir = Dir::new();
    synth(&dir, "data", &["--omop", "--truth-patients"]);
    for f in [
        "cohort.parquet",
        "truth.json",
        "hospitals.csv",
        "truth_patients.parquet",
    ] {
        assert!(dir.join("data").join(f).is_file(), "missing {f}");
    }
    for t in [
        "person",
        "visit_occurrence",
        "procedure_occurrence",
        "condition_occurrence",
        "measurement",
        "observation",
        "payer_plan_period",
        "death",
        "care_site",
        "location",
        "observation_period",
    ] {
        assert!(
            dir.join("data/omop").join(format!("{t}.parquet")).is_file(),
            "missing omop/{t}"
        );
    }
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("data/truth.json")).unwrap())
            .unwrap();
    assert_eq!(truth["reference"], "White");
    assert_eq!(truth["parameters"]["patients"], 3000);
    let values = truth["values"].as_array().unwrap();
    for q in [
        "gap",
        "path_specific",
        "path_specific_shapley",
        "kitagawa",
        "lpm_group_coefficient",
        "oaxaca_blinder_reference",
        "oaxaca_blinder_pooled",
        "initial_disparity",
        "disparity_reduction",
    ] {
        assert!(
            values.iter().any(|v| v["quantity"] == q),
            "truth.json lacks {q}"
        );
    }
    assert!(
        values
            .iter()
            .all(|v| v["population"].is_number() && v["population_mc_se"].is_number())
    );
    // No staging folder is left next to the output.
    assert_eq!(dir.entries(), vec!["data".to_string()]);
}

#[test]
fn csv_extract_has_the_documented_columns() {
    let dir = Dir::new();
    synth(&dir, "csv", &["--format", "csv", "--no-truth"]);
    let text = std::fs::read_to_string(dir.join("csv/cohort.csv")).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "person_id,visit_id,hospital_id,surgery_date,race,ethnicity,age,female,adi,insurance,zip3,\
         diabetes,dialysis,heart_failure,lung_disease,pad,prior_mi,ejection_fraction,bmi,creatinine,\
         status,hospital_volume,teaching,region,death_30d,major_morbidity,readmit_30d,los_days"
    );
    assert_eq!(text.lines().count(), 3001);
    assert!(!dir.join("csv/truth.json").exists());
}

#[test]
fn same_seed_gives_identical_bytes_whatever_the_thread_count() {
    let dir = Dir::new();
    let run = |out: &str, threads: &str, seed: &str| {
        let mut args = vec![
            "synth", "--out", out, "--seed", seed, "--omop", "--format", "csv",
        ];
        args.extend_from_slice(&QUICK);
        let o = dir
            .command(&args)
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run("a", "1", "5");
    run("b", "2", "5");
    run("c", "2", "6");
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    for f in [
        "cohort.csv",
        "truth.json",
        "hospitals.csv",
        "omop/person.csv",
        "omop/measurement.csv",
    ] {
        assert!(
            read(&format!("a/{f}")) == read(&format!("b/{f}")),
            "{f} differs between 1 and 2 threads"
        );
    }
    assert!(
        read("a/cohort.csv") != read("c/cohort.csv"),
        "a different seed must give a different cohort"
    );
    // Parquet too.
    dir.ok(&["synth", "--out", "p1", "--patients", "2000", "--no-truth"]);
    dir.ok(&["synth", "--out", "p2", "--patients", "2000", "--no-truth"]);
    assert!(read("p1/cohort.parquet") == read("p2/cohort.parquet"));
}

#[test]
fn bad_input_gets_one_clear_line_and_leaves_nothing_behind() {
    let dir = Dir::new();
    std::fs::write(dir.join("a_file"), "x").unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--patients", "0", "--out", "o"],
            "--patients must be at least 1",
        ),
        (
            &["--patients", "-5", "--out", "o"],
            "--patients must be at least 1",
        ),
        (
            &["--patients", "many", "--out", "o"],
            "--patients must be a whole number",
        ),
        (
            &["--set", "black.ses_gp=1", "--out", "o"],
            "did you mean `black.ses_gap`",
        ),
        (&["--set", "black.ses_gap", "--out", "o"], "key=value"),
        (&["--out", "a_file/o"], "cannot create its parent folder"),
        (&["--out", "a_file"], "is not a folder"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["synth"];
        full.extend_from_slice(args);
        let out = dir.run(&full);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            err.contains(expected),
            "{args:?}: expected `{expected}` in:\n{err}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line:\n{err}"
        );
        assert!(!err.contains("panicked"));
    }
    assert_eq!(
        dir.entries(),
        vec!["a_file".to_string()],
        "partial output left behind"
    );
}

#[test]
fn unwritable_output_folder_fails_cleanly() {
    let dir = Dir::new();
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    let mut perms = std::fs::metadata(&locked).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&locked, perms).unwrap();
    // root ignores permission bits; then the case cannot be staged and is skipped.
    if std::fs::write(locked.join("probe"), "x").is_ok() {
        std::fs::remove_file(locked.join("probe")).unwrap();
        eprintln!(
            "running as root: permission bits are not enforced, using a read-only path instead"
        );
        let out = dir.run(&["synth", "--patients", "10", "--out", "/proc/healthgap-out"]);
        assert!(!out.status.success());
        assert_eq!(stderr(&out).trim_end().lines().count(), 1);
        return;
    }
    let out = dir.run(&["synth", "--patients", "10", "--out", "locked/o"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot write"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}

#[test]
fn a_failed_run_keeps_the_previous_output() {
    let dir = Dir::new();
    synth(&dir, "data", &["--no-truth"]);
    let before = std::fs::read(dir.join("data/cohort.parquet")).unwrap();
    let out = dir.run(&["synth", "--out", "data", "--set", "nonsense=1"]);
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read(dir.join("data/cohort.parquet")).unwrap(),
        before
    );
    assert_eq!(dir.entries(), vec!["data".to_string()]);
}

#[test]
fn check_and_run_have_help_that_explains_them() {
    let dir = Dir::new();
    for cmd in ["check", "run"] {
        let help = dir.ok(&[cmd, "--help"]);
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("config") && text.contains("CONFIG"), "{text}");
        if cmd == "run" {
            for needle in [
                "index.html",
                "report.md",
                "disparity_reduction",
                "hospital",
                "exit code 3",
            ] {
                assert!(
                    text.to_lowercase().contains(&needle.to_lowercase()),
                    "run --help lacks {needle}: {text}"
                );
            }
        } else {
            assert!(text.contains("fits every analysis once"), "{text}");
        }
    }
}

// Missing data (#16): `missing.<column>` blanks cells by the documented MAR
// mechanism in every source, and changes nothing else.

/// The blankable columns and their requested shares.
const HOLES: [(&str, f64); 6] = [
    ("ejection_fraction", 0.15),
    ("creatinine", 0.08),
    ("bmi", 0.05),
    ("adi", 0.10),
    ("diabetes", 0.04),
    ("insurance", 0.06),
];

fn hole_args() -> Vec<String> {
    HOLES
        .iter()
        .flat_map(|(c, p)| ["--set".to_string(), format!("missing.{c}={p}")])
        .collect()
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn missing_data_change_no_complete_value_and_truth_only_gains_a_missing_object() {
    let dir = Dir::new();
    synth(&dir, "full", &["--format", "csv", "--omop"]);
    let holes = hole_args();
    let mut extra = vec!["--format", "csv", "--omop"];
    extra.extend(holes.iter().map(String::as_str));
    synth(&dir, "holes", &extra);
    let mut with = read_json(&dir.join("holes/truth.json"));
    let missing = with.as_object_mut().unwrap().remove("missing").unwrap();
    assert_eq!(with, read_json(&dir.join("full/truth.json")));
    let columns = missing["columns"].as_array().unwrap();
    assert_eq!(columns.len(), HOLES.len());
    for (c, (name, p)) in columns.iter().zip(HOLES) {
        assert_eq!(c["column"], name);
        assert_eq!(c["requested"], p);
        assert!(c["realized"].as_f64().unwrap() > 0.0);
    }
    assert!(missing["mechanism"].as_str().unwrap().contains("death_30d"));
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    assert_eq!(read("holes/hospitals.csv"), read("full/hospitals.csv"));
    for t in [
        "person",
        "visit_occurrence",
        "death",
        "procedure_occurrence",
    ] {
        assert_eq!(
            read(&format!("holes/omop/{t}.csv")),
            read(&format!("full/omop/{t}.csv")),
            "omop/{t}"
        );
    }
    // Every cell of the extract is the complete one or empty, and only the
    // blankable columns have empty cells.
    let (a, b) = (read("holes/cohort.csv"), read("full/cohort.csv"));
    let header: Vec<&str> = b.lines().next().unwrap().split(',').collect();
    let mut empty = vec![0; header.len()];
    for (la, lb) in a.lines().zip(b.lines()) {
        for (k, (x, y)) in la.split(',').zip(lb.split(',')).enumerate() {
            if x.is_empty() {
                empty[k] += 1;
            } else {
                assert_eq!(x, y, "column {}", header[k]);
            }
        }
    }
    for (k, name) in header.iter().enumerate() {
        let blankable = HOLES.iter().any(|(c, _)| c == name);
        assert_eq!(empty[k] > 0, blankable, "{name}: {} empty cells", empty[k]);
    }
}

/// The cohort of every group, death_30d and the blankable columns (and
/// status), missing = "complete_case".
fn holes_spec(source: healthgap_cohort::Source) -> healthgap_cohort::CohortSpec {
    use healthgap_cohort::{OutcomeKind, OutcomeSpec, VariableSpec};
    let variables = HOLES
        .iter()
        .map(|(c, _)| c.to_string())
        .chain(["status".to_string()])
        .map(|name| VariableSpec {
            name,
            kind: None,
            block: "all".into(),
            min_count: None,
        })
        .collect();
    healthgap_cohort::CohortSpec {
        source,
        filters: Vec::new(),
        missing: healthgap_cohort::MissingPolicy::CompleteCase,
        group_column: "race".into(),
        reference: "White".into(),
        compare: ["Black", "Hispanic", "Asian", "Other"]
            .map(String::from)
            .to_vec(),
        group_display: Default::default(),
        outcomes: vec![OutcomeSpec {
            name: "death_30d".into(),
            kind: OutcomeKind::Binary,
            label: "death".into(),
            event: None,
        }],
        variables,
        cluster: None,
        weights: None,
        na_values: healthgap_cohort::default_na_values(),
    }
}

/// Rows missing each variable (in the order of the spec), from the complete
/// cases of death_30d; the rows left; and each variable's missing-row mask.
fn missing_counts(spec: &healthgap_cohort::CohortSpec) -> (Vec<usize>, usize, Vec<Vec<bool>>) {
    use healthgap_cohort::{MISSING_CODE, Values};
    let cohort = healthgap_cohort::load(spec).unwrap();
    let names: Vec<String> = spec.variables.iter().map(|v| v.name.clone()).collect();
    let (complete, steps) = cohort.complete_cases("death_30d", &names);
    let counts = names
        .iter()
        .map(|n| {
            steps
                .iter()
                .find(|s| &s.variable == n)
                .map_or(0, |s| s.missing.iter().sum())
        })
        .collect();
    let left = complete.map_or(cohort.n(), |c| c.n());
    let masks = names
        .iter()
        .map(|n| match &cohort.variable(n).unwrap().values {
            Values::Numeric(x) => x.iter().map(|v| v.is_nan()).collect(),
            Values::Categorical { codes, .. } => codes.iter().map(|c| *c == MISSING_CODE).collect(),
        })
        .collect();
    (counts, left, masks)
}

#[test]
fn flat_omop_and_in_memory_sources_carry_the_same_holes() {
    use healthgap_cohort::Source;
    let dir = Dir::new();
    let holes = hole_args();
    let mut extra = vec!["--format", "csv", "--omop", "--seed", "3"];
    extra.extend(holes.iter().map(String::as_str));
    synth(&dir, "data", &extra);
    let truth = read_json(&dir.join("data/truth.json"));
    let blanked: Vec<usize> = truth["missing"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rows"].as_u64().unwrap() as usize)
        .collect();
    // Rows with at least one hole, from the extract itself.
    let text = std::fs::read_to_string(dir.join("data/cohort.csv")).unwrap();
    let incomplete = text
        .lines()
        .skip(1)
        .filter(|l| l.split(',').any(str::is_empty))
        .count();

    let flat = missing_counts(&holes_spec(Source::Flat {
        path: dir.join("data/cohort.csv"),
    }));
    let mut expected = blanked.clone();
    expected.push(0); // status is never blanked
    assert_eq!(flat.0, expected, "flat: rows missing each variable");
    assert_eq!(flat.1, 3000 - incomplete, "flat: complete cases");

    let omop = missing_counts(&holes_spec(Source::Omop {
        dir: dir.join("data/omop"),
        concepts: Box::default(),
    }));
    assert_eq!(omop.0, flat.0, "OMOP: rows missing each variable");
    assert_eq!(omop.1, flat.1);
    assert!(
        omop.2 == flat.2,
        "OMOP: holes in other rows than the flat file"
    );

    let mut params = healthgap_synth::Params::default();
    for assignment in ["patients=3000", "seed=3"] {
        params.set_assignment(assignment).unwrap();
    }
    for (c, p) in HOLES {
        params.set(&format!("missing.{c}"), p).unwrap();
    }
    let memory = missing_counts(&holes_spec(Source::Synthetic {
        params: Box::new(params),
    }));
    assert_eq!(memory.0, flat.0, "in memory: rows missing each variable");
    assert_eq!(memory.1, flat.1);
    assert!(memory.2 == flat.2, "in memory: holes in other rows");
}

#[test]
fn set_help_lists_the_missing_keys() {
    let dir = Dir::new();
    let out = dir.run(&["synth", "--out", "o", "--set", "help"]);
    let err = stderr(&out);
    for (c, _) in HOLES {
        assert!(err.contains(&format!("missing.{c}")), "{err}");
    }
    assert!(err.contains("missing.strength"), "{err}");
    // `--set help` needs no --out; a run without --out or --to says so.
    let out = dir.run(&["synth", "--set", "help"]);
    assert!(
        stderr(&out).contains("missing.strength"),
        "{}",
        stderr(&out)
    );
    let out = dir.run(&["synth", "--patients", "10"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("give --out DIR"), "{}", stderr(&out));
    let out = dir.run(&["synth", "--out", "o", "--set", "missing.bmi=1.5"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("[0, 1)"), "{}", stderr(&out));
}

#[test]
fn hospital_disparity_sd_adds_slopes_to_hospitals_csv_and_truth() {
    let dir = Dir::new();
    synth(&dir, "off", &["--format", "csv"]);
    synth(
        &dir,
        "on",
        &["--format", "csv", "--set", "hospital_disparity_sd=0.3"],
    );
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let header = |p: &str| read(p).lines().next().unwrap().to_string();
    assert!(!header("off/hospitals.csv").contains("disparity"));
    assert!(
        header("on/hospitals.csv").starts_with("hospital_id,z,annual_volume,effect,disparity,")
    );
    let truth = read_json(&dir.join("on/truth.json"));
    let h = &truth["hospitals"];
    assert_eq!(truth["parameters"]["model"]["hospital_disparity_sd"], 0.3);
    assert_eq!(h["slope_group"], "Black");
    assert_eq!(h["slope_sd"], 0.3);
    let rows = h["hospitals"].as_array().unwrap();
    assert_eq!(rows.len(), 300);
    // truth.json's slope is hospitals.csv's disparity, hospital by hospital.
    for (row, line) in rows.iter().zip(read("on/hospitals.csv").lines().skip(1)) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(row["id"].to_string(), cells[0]);
        let v: f64 = cells[4].parse().unwrap();
        assert!((row["slope"].as_f64().unwrap() - v).abs() <= 1e-12 * (1.0 + v.abs()));
        for o in ["death_30d", "major_morbidity", "readmit_30d"] {
            assert!(row["intercept"][o].is_number() && row["disparity_logit"][o].is_number());
            assert_eq!(row["rsmr"][o].is_number(), row["patients"] != 0);
        }
    }
    // The slope changes only the outcomes: the other columns are the same.
    let (a, b) = (read("off/cohort.csv"), read("on/cohort.csv"));
    let names: Vec<&str> = a.lines().next().unwrap().split(',').collect();
    for (la, lb) in a.lines().zip(b.lines()) {
        for (k, (x, y)) in la.split(',').zip(lb.split(',')).enumerate() {
            if !["death_30d", "major_morbidity", "readmit_30d", "los_days"].contains(&names[k]) {
                assert_eq!(x, y, "column {}", names[k]);
            }
        }
    }
    let out = dir.run(&["synth", "--out", "o", "--set", "hospital_disparity_sd=-1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("hospital_disparity_sd"),
        "{}",
        stderr(&out)
    );
}
