//! Every method × model × inference path end to end on a synthetic cohort:
//! bootstraps whose replicates all succeed, standard errors that are finite
//! and agree with the delta method within Monte Carlo error, rows that say how
//! their SE was made, and intervals that are withheld loudly (exit code 3).

use crate::util::{Dir, stderr};

fn results(dir: &Dir, out: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("results.json")).unwrap())
        .unwrap()
}

/// Every method: OB linear and logit (with Fairlie), Gelbach, mediation,
/// disparity reduction and the hospital analysis.
const ALL_METHODS: &str = r#"
[[analysis]]
id = "ob"
method = "oaxaca_blinder"
outcomes = ["major_morbidity", "los_days"]

[[analysis]]
id = "yun"
method = "oaxaca_blinder"
model = "logit"
outcomes = ["major_morbidity"]
fairlie_orderings = 5

[[analysis]]
id = "gelbach"
method = "gelbach"
outcomes = ["major_morbidity", "los_days"]
base = ["age", "female"]
added = ["socioeconomic", "diabetes", "ejection_fraction"]

[[analysis]]
id = "mediation"
method = "mediation"
outcomes = ["major_morbidity", "los_days"]
mediators = ["adi"]
confounders = ["age", "female"]

[[analysis]]
id = "reduction"
method = "disparity_reduction"
outcomes = ["major_morbidity"]
allowable = ["age", "female"]
targets = ["socioeconomic", "biological"]

[[analysis]]
id = "hospital"
method = "hospital"
outcomes = ["major_morbidity"]
hospital = "hospital_id"
"#;

/// A study over a 5,000-patient synthetic cohort with every method; `design`
/// and `inference` are the sections' bodies.
fn study(design: &str, inference: &str) -> String {
    study_with(design, inference, "", ALL_METHODS)
}

/// A study with extra `factors` lines and the given analyses.
fn study_with(design: &str, inference: &str, factors: &str, analyses: &str) -> String {
    format!(
        r#"
[study]
name = "inference paths"
seed = 17

[data]
synthetic = {{ patients = 5000, seed = 5 }}

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
major_morbidity = {{ type = "binary" }}
los_days = {{ type = "continuous" }}

[factors]
biological = ["age", "female", "diabetes", "ejection_fraction"]
socioeconomic = ["adi"]
{factors}

[variables]
hospital_id = {{ type = "categorical" }}

[design]
{design}

[inference]
{inference}

{analyses}
[report]
out_dir = "out"
formats = ["json", "csv"]
"#
    )
}

fn run_study(config: &str) -> (serde_json::Value, std::process::Output) {
    let dir = Dir::new();
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let out = dir.run(&["run", "study.toml"]);
    assert!(
        out.status.code() == Some(0),
        "exit {:?}:\n{}",
        out.status.code(),
        stderr(&out)
    );
    (results(&dir, "out"), out)
}

/// The SE of the total row `quantity` of analysis `id` for `outcome`.
fn se(r: &serde_json::Value, id: &str, outcome: &str, quantity: &str) -> f64 {
    let a = r["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id && a["outcome"] == outcome)
        .unwrap_or_else(|| panic!("no analysis {id} {outcome}"));
    a["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["quantity"] == quantity && e["factor"].is_null() && e["term"].is_null())
        .unwrap_or_else(|| panic!("no row {quantity} in {id} {outcome}"))["se"]
        .as_f64()
        .unwrap_or_else(|| panic!("{id} {outcome} {quantity}: no SE"))
}

/// Every bootstrap analysis: all replicates succeeded, nothing withheld, every
/// SE finite and positive, bootstrap rows labelled as such.
fn assert_bootstrap_complete(r: &serde_json::Value, what: &str) {
    for a in r["analyses"].as_array().unwrap() {
        let name = format!("{what} {} {}", a["id"], a["outcome"]);
        let inf = &a["inference"];
        assert_eq!(inf["method"], "bootstrap", "{name}");
        assert_eq!(inf["replicates_ok"], inf["replicates"], "{name}: {inf}");
        assert!(inf["withheld"].is_null(), "{name}: {inf}");
        let rows = a["estimates"].as_array().unwrap();
        assert!(
            rows.iter()
                .any(|e| e["se_method"].as_str().unwrap().starts_with("bootstrap")),
            "{name}: no bootstrap row"
        );
        for e in rows {
            if let Some(s) = e["se"].as_f64() {
                assert!(s.is_finite() && s >= 0.0, "{name}: {e}");
                assert_ne!(e["se_method"], "none", "{name}: {e}");
            }
        }
        for w in a["warnings"].as_array().unwrap() {
            let w = w.as_str().unwrap();
            assert!(!w.contains("failed"), "{name}: {w}");
        }
    }
}

/// Delta-method SEs agree with the bootstrap's within Monte Carlo error
/// (replicates B: the bootstrap SE's relative error is about 1/√(2B)), on the
/// rows both paths have.
fn assert_delta_matches_bootstrap(
    delta: &serde_json::Value,
    boot: &serde_json::Value,
    tol: f64,
    min_z: f64,
) {
    let rows: [(&str, &str, &str); 12] = [
        ("ob", "major_morbidity", "explained"),
        ("ob", "major_morbidity", "unexplained"),
        ("ob", "los_days", "explained"),
        ("ob", "los_days", "unexplained"),
        ("yun", "major_morbidity", "explained"),
        ("yun", "major_morbidity", "unexplained"),
        ("gelbach", "major_morbidity", "explained_change"),
        ("gelbach", "los_days", "explained_change"),
        ("mediation", "major_morbidity", "indirect_effect"),
        ("mediation", "major_morbidity", "direct_effect"),
        ("mediation", "los_days", "indirect_effect"),
        ("mediation", "los_days", "total_effect"),
    ];
    for (id, outcome, q) in rows {
        let (d, b) = (se(delta, id, outcome, q), se(boot, id, outcome, q));
        assert!(
            (d / b - 1.0).abs() < tol,
            "{id} {outcome} {q}: delta SE {d:.5} vs bootstrap SE {b:.5}"
        );
    }
    // Shares (ratios to the total): the ratio's delta method against the
    // bootstrap of the ratio, where the total is far from 0 (|z| > min_z; nearer,
    // the bootstrap distribution of a ratio is heavy-tailed).
    let mut compared = 0;
    for (a, b) in analyses(delta).iter().zip(analyses(boot)) {
        assert_eq!((&a["id"], &a["outcome"]), (&b["id"], &b["outcome"]));
        let total = match a["method"].as_str().unwrap() {
            "gelbach" => "base_coefficient",
            "mediation" => "total_effect",
            "disparity_reduction" => "initial_disparity",
            _ => "gap",
        };
        let t = rows_of(a)
            .iter()
            .find(|e| e["quantity"] == total && e["factor"].is_null() && e["term"].is_null());
        let z = t.map_or(0.0, |t| {
            t["estimate"].as_f64().unwrap() / t["se"].as_f64().unwrap_or(f64::INFINITY)
        });
        if z.abs() < min_z {
            continue;
        }
        for (x, y) in rows_of(a).iter().zip(rows_of(b)) {
            if x["quantity"] != "share" {
                continue;
            }
            let (Some(sd), Some(sb)) = (x["se"].as_f64(), y["se"].as_f64()) else {
                continue;
            };
            if x["estimate"].as_f64().unwrap().abs() < 3.0 * sd {
                continue;
            }
            compared += 1;
            assert!(
                (sd / sb - 1.0).abs() < 1.5 * tol,
                "{} {} share {} {}: delta SE {sd:.5} vs bootstrap SE {sb:.5}",
                a["id"],
                a["outcome"],
                x["factor"],
                x["term"]
            );
        }
    }
    assert!(compared >= 2, "only {compared} shares compared");
}

fn analyses(r: &serde_json::Value) -> &Vec<serde_json::Value> {
    r["analyses"].as_array().unwrap()
}

fn rows_of(a: &serde_json::Value) -> &Vec<serde_json::Value> {
    a["estimates"].as_array().unwrap()
}

/// Without a cluster: the robust delta method (each patient their own unit)
/// against the row bootstrap with 2,000 replicates (Monte Carlo error of the
/// bootstrap SE ≈ 1.6%), for OB, Yun, Gelbach and mediation; every other
/// method's bootstrap runs every replicate.
#[test]
fn unclustered_robust_delta_agrees_with_the_row_bootstrap() {
    let (boot, _) = run_study(&study(
        "",
        "method = \"bootstrap\"\nreplicates = 2000\ninterval = \"percentile\"",
    ));
    assert_bootstrap_complete(&boot, "row bootstrap");
    let (delta, _) = run_study(&study("", "method = \"delta\""));
    for a in delta["analyses"].as_array().unwrap() {
        if a["id"] == "reduction" {
            continue; // bootstrap only
        }
        assert_eq!(
            a["inference"]["vce"],
            if a["id"] == "hospital" {
                "cluster"
            } else {
                "robust"
            }
        );
        for e in a["estimates"].as_array().unwrap() {
            if e["se"].is_number() {
                let how = e["se_method"].as_str().unwrap();
                // Hospital profiles resample patients within hospitals.
                let profile = e["quantity"]
                    .as_str()
                    .unwrap()
                    .starts_with("risk_standardized_rate");
                let expected = if profile {
                    "bootstrap-percentile"
                } else {
                    "delta"
                };
                assert!(how.starts_with(expected), "{e}");
            }
        }
    }
    assert_delta_matches_bootstrap(&delta, &boot, 0.12, 6.0);
}

/// With clusters (hospitals): the cluster delta method against the cluster
/// bootstrap (500 replicates), and every replicate of every method succeeds.
#[test]
fn cluster_delta_agrees_with_the_cluster_bootstrap() {
    let design = "cluster = \"hospital_id\"";
    let (boot, _) = run_study(&study(
        design,
        "method = \"bootstrap\"\nreplicates = 500\ninterval = \"percentile\"",
    ));
    assert_bootstrap_complete(&boot, "cluster bootstrap");
    let (delta, _) = run_study(&study(design, "method = \"delta\""));
    for a in delta["analyses"].as_array().unwrap() {
        if a["id"] != "reduction" {
            assert_eq!(a["inference"]["vce"], "cluster", "{}", a["id"]);
        }
    }
    assert_delta_matches_bootstrap(&delta, &boot, 0.2, 4.0);
}

/// An absorbed hospital block without clusters has no delta method: the rows
/// keep their estimates, the intervals are withheld with the reason in
/// results.json, the terminal names them, and the exit code is 3.
#[test]
fn withheld_intervals_are_loud_and_exit_with_3() {
    let config = study_with(
        "",
        "method = \"delta\"",
        "care_site = [\"hospital_id\"]",
        r#"
[[analysis]]
id = "ob"
method = "oaxaca_blinder"
outcomes = ["los_days"]

[[analysis]]
id = "crude"
method = "crude"
outcomes = ["los_days"]
"#,
    );
    let dir = Dir::new();
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let out = dir.run(&["run", "study.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("withheld: ob"), "{err}");
    assert!(err.contains("set [design] cluster"), "{err}");
    let r = results(&dir, "out");
    for a in r["analyses"].as_array().unwrap() {
        if a["id"] == "ob" {
            assert!(a["inference"]["withheld"].is_string(), "{}", a["inference"]);
            for e in a["estimates"].as_array().unwrap() {
                assert!(e["se"].is_null() && e["se_method"] == "none", "{e}");
                assert!(e["estimate"].is_number());
            }
        } else {
            assert!(a["inference"]["withheld"].is_null());
        }
    }
}

/// `[design] vce` and `cluster` must agree, and `model` is refused where it is
/// not derived.
#[test]
fn vce_and_cluster_are_checked_against_each_other() {
    let dir = Dir::new();
    for (design, needle) in [
        (
            "cluster = \"hospital_id\"\nvce = \"robust\"",
            "contradicts cluster",
        ),
        ("vce = \"cluster\"", "needs the cluster column"),
        (
            "vce = \"model\"",
            "is not derived for coefficients = \"pooled\" (the default)",
        ),
    ] {
        std::fs::write(dir.join("study.toml"), study(design, "method = \"delta\"")).unwrap();
        let out = dir.run(&["check", "study.toml"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{design}: {err}");
        assert!(err.contains(needle), "{design}: {err}");
    }
}

/// Coverage of the robust (unclustered) delta method over repeated cohorts:
/// 95% CIs of Oaxaca–Blinder's gap, explained and unexplained parts and the
/// explained part per block, for a binary and a continuous outcome, on
/// independent 20k-patient cohorts without hospital effects (so that patients
/// are independent given their covariates, as the unclustered variance
/// assumes), against the same decomposition on a 2M-patient cohort (the
/// estimand; its own error is about a tenth of a 20k cohort's SE). Seeds from
/// HEALTHGAP_COVERAGE_SEEDS (default 200 cohorts). Asserts a pooled coverage
/// between 92.5% and 97.5%.
#[test]
#[ignore = "200 20k-patient studies and one of 2M patients: ~30 s in release; run by bench/run.sh"]
fn robust_oaxaca_blinder_coverage_over_repeated_seeds() {
    let seeds: Vec<u64> = std::env::var("HEALTHGAP_COVERAGE_SEEDS")
        .map(|s| s.split_whitespace().map(|s| s.parse().unwrap()).collect())
        .unwrap_or_else(|_| (201..401).collect());
    let ob = r#"
[[analysis]]
id = "ob"
method = "oaxaca_blinder"
outcomes = ["major_morbidity", "los_days"]
"#;
    let config = |patients: usize, seed: u64| {
        study_with("", "method = \"delta\"", "", ob)
            .replace(
                "synthetic = { patients = 5000, seed = 5 }",
                &format!(
                    "synthetic = {{ patients = {patients}, seed = {seed}, hospital_effect_sd = 0 }}"
                ),
            )
            .replace("hospital_id = { type = \"categorical\" }\n", "")
    };
    let checks = [
        ("gap", None),
        ("explained", None),
        ("unexplained", None),
        ("explained", Some("biological")),
        ("explained", Some("socioeconomic")),
    ];
    let run = |patients: usize, seed: u64| -> serde_json::Value {
        let text = config(patients, seed);
        assert!(text.contains("hospital_effect_sd = 0"), "{text}");
        let (r, _) = run_study(&text);
        r
    };
    let find = |r: &serde_json::Value, outcome: &str, q: &str, f: Option<&str>| {
        let a = analyses(r)
            .iter()
            .find(|a| a["outcome"] == outcome)
            .unwrap()
            .clone();
        rows_of(&a)
            .iter()
            .find(|e| e["quantity"] == q && e["factor"].as_str() == f && e["term"].is_null())
            .unwrap()
            .clone()
    };
    let truth = run(2_000_000, 7);
    let mut tally: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for &seed in &seeds {
        let r = run(20_000, seed);
        for outcome in ["major_morbidity", "los_days"] {
            for (q, f) in checks {
                let t = find(&truth, outcome, q, f)["estimate"].as_f64().unwrap();
                let e = find(&r, outcome, q, f);
                assert_eq!(e["se_method"], "delta-robust");
                let (lo, hi) = (
                    e["ci_low"].as_f64().unwrap(),
                    e["ci_high"].as_f64().unwrap(),
                );
                let entry = tally
                    .entry(format!(
                        "{outcome:<16} {q:<12} {:<14}",
                        f.unwrap_or("total")
                    ))
                    .or_default();
                entry.0 += usize::from(lo <= t && t <= hi);
                entry.1 += 1;
            }
        }
    }
    assert_pooled_coverage("robust OB", &tally, 0.925..=0.975);
}

/// Prints each check's coverage (covered/total) and asserts the pooled share
/// lies in `range`.
fn assert_pooled_coverage(
    what: &str,
    tally: &std::collections::BTreeMap<String, (usize, usize)>,
    range: std::ops::RangeInclusive<f64>,
) {
    let (mut covered, mut total) = (0, 0);
    for (key, (c, n)) in tally {
        println!("  {key} {c}/{n}");
        covered += c;
        total += n;
    }
    let share = covered as f64 / total as f64;
    println!(
        "{what} coverage over seeds: pooled {covered}/{total} = {:.1}% (nominal 95%)",
        100.0 * share
    );
    assert!(range.contains(&share), "pooled coverage {covered}/{total}");
}

/// Coverage of disparity reduction's unclustered path (the row bootstrap,
/// each replicate a full refit) over repeated cohorts without hospital
/// effects: 95% percentile intervals on 20k-patient cohorts against the same
/// analysis at 2M patients (the estimand of the working models). Seeds from
/// HEALTHGAP_COVERAGE_SEEDS (default 100 cohorts). Asserts a pooled coverage
/// within 92–98% (100 cohorts × 8 checks: ±2.3 points is one binomial SE ×
/// 1.5, widened for the correlation between a cohort's checks).
#[test]
#[ignore = "100 20k-patient studies with 200 row-bootstrap refits each and one of 2M patients: ~3.5 min in release; run by bench/run.sh"]
fn unclustered_disparity_reduction_coverage_over_repeated_seeds() {
    let seeds: Vec<u64> = std::env::var("HEALTHGAP_COVERAGE_SEEDS")
        .map(|s| s.split_whitespace().map(|s| s.parse().unwrap()).collect())
        .unwrap_or_else(|_| (401..501).collect());
    let dr = r#"
[[analysis]]
id = "dr"
method = "disparity_reduction"
outcomes = ["major_morbidity", "los_days"]
allowable = ["demographics"]
targets = ["socioeconomic", "biological"]
draws = 5
"#;
    let config = |patients: usize, seed: u64, replicates: usize| {
        study_with(
            "",
            &format!("method = \"bootstrap\"\nreplicates = {replicates}"),
            "demographics = [\"female\"]",
            dr,
        )
        .replace(
            "biological = [\"age\", \"female\", \"diabetes\", \"ejection_fraction\"]",
            "biological = [\"age\", \"diabetes\", \"ejection_fraction\"]",
        )
        .replace(
            "synthetic = { patients = 5000, seed = 5 }",
            &format!(
                "synthetic = {{ patients = {patients}, seed = {seed}, hospital_effect_sd = 0 }}"
            ),
        )
        .replace("hospital_id = { type = \"categorical\" }\n", "")
    };
    let checks = [
        ("initial_disparity", None),
        ("disparity_reduction", None),
        ("disparity_reduction", Some("socioeconomic")),
        ("disparity_reduction", Some("biological")),
    ];
    let find = |r: &serde_json::Value, outcome: &str, q: &str, f: Option<&str>| {
        let a = analyses(r)
            .iter()
            .find(|a| a["outcome"] == outcome)
            .unwrap()
            .clone();
        rows_of(&a)
            .iter()
            .find(|e| e["quantity"] == q && e["factor"].as_str() == f)
            .unwrap()
            .clone()
    };
    let truth_config = config(2_000_000, 7, 2);
    assert!(truth_config.contains("hospital_effect_sd = 0") && !truth_config.contains("cluster ="));
    let (truth, _) = run_study(&truth_config);
    let mut tally: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for &seed in &seeds {
        let (r, _) = run_study(&config(20_000, seed, 200));
        for outcome in ["major_morbidity", "los_days"] {
            for (q, f) in checks {
                let t = find(&truth, outcome, q, f)["estimate"].as_f64().unwrap();
                let e = find(&r, outcome, q, f);
                assert_eq!(e["se_method"], "bootstrap-percentile");
                let (lo, hi) = (
                    e["ci_low"].as_f64().unwrap(),
                    e["ci_high"].as_f64().unwrap(),
                );
                let entry = tally
                    .entry(format!(
                        "{outcome:<16} {q:<20} {:<14}",
                        f.unwrap_or("joint")
                    ))
                    .or_default();
                entry.0 += usize::from(lo <= t && t <= hi);
                entry.1 += 1;
            }
        }
    }
    assert_pooled_coverage("unclustered disparity reduction", &tally, 0.92..=0.98);
}

/// `[inference] fallback = "delta"`: a logit Oaxaca–Blinder whose bootstrap
/// replicates separate (a rare covariate, 1,500 patients) is withheld by
/// default; with the fallback its rows carry delta-method intervals, the
/// reason and the fallback are declared (warning, `inference.note`), and the
/// run still exits with 3.
#[test]
fn the_delta_fallback_is_declared_and_counted() {
    let config = |fallback: &str| {
        format!(
            r#"
[study]
name = "fallback"
seed = 2
[data]
synthetic = {{ patients = 1500, seed = 4 }}
[groups]
column = "race"
reference = "White"
compare = ["Black"]
[outcomes]
major_morbidity = {{ type = "binary" }}
[factors]
biological = ["age", "female", "dialysis", "diabetes"]
socioeconomic = ["adi"]
[inference]
method = "bootstrap"
replicates = 100
{fallback}
[[analysis]]
id = "yun"
method = "oaxaca_blinder"
model = "logit"
coefficients = "reference"
outcomes = ["major_morbidity"]
[report]
out_dir = "out"
formats = ["json"]
"#
        )
    };
    let run = |fallback: &str| {
        let dir = Dir::new();
        std::fs::write(dir.join("study.toml"), config(fallback)).unwrap();
        let out = dir.run(&["run", "study.toml"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        (results(&dir, "out")["analyses"][0].clone(), stderr(&out))
    };
    let (withheld, _) = run("");
    assert!(withheld["inference"]["withheld"].is_string());
    let (fallen, err) = run("fallback = \"delta\"");
    assert!(err.contains("fallback: yun"), "{err}");
    let inf = &fallen["inference"];
    assert!(inf["withheld"].is_null(), "{inf}");
    assert_eq!(inf["method"], "delta");
    assert!(
        inf["note"].as_str().unwrap().starts_with("fallback:"),
        "{inf}"
    );
    let gap = fallen["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["quantity"] == "gap")
        .unwrap();
    assert_eq!(gap["se_method"], "delta-robust", "{gap}");
    assert!(gap["se"].as_f64().unwrap() > 0.0);
}
