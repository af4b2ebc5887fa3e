//! Multiple imputation end to end: every method on the imputations of a
//! synthetic cohort with MAR holes (the generator's `missing.*` keys; the
//! multinomial imputation of a categorical runs in the canonical
//! analyses/cabg_missing_synthetic.toml and the crate's tests), pooled
//! by Rubin's rules and by bootstrap-then-impute; the two paths' SEs agree
//! within Monte Carlo error, the pooled parts still add up, reruns and
//! thread counts give the same numbers, the report shows the diagnostics.

use crate::oaxaca::{ObCheck, ob_checks};
use crate::util::{Dir, stderr};

const ANALYSES: &str = r#"
[[analysis]]
id = "crude"
method = "crude"
outcomes = ["major_morbidity", "los_days"]

[[analysis]]
id = "ob"
method = "oaxaca_blinder"
outcomes = ["major_morbidity", "los_days"]

[[analysis]]
id = "ob_cc"
method = "oaxaca_blinder"
outcomes = ["major_morbidity"]
missing = "complete_case"

[[analysis]]
id = "yun"
method = "oaxaca_blinder"
model = "logit"
outcomes = ["major_morbidity"]

[[analysis]]
id = "gelbach"
method = "gelbach"
outcomes = ["major_morbidity", "los_days"]
base = ["age", "female"]
added = ["socioeconomic", "diabetes", "ejection_fraction"]

[[analysis]]
id = "mediation"
method = "mediation"
outcomes = ["los_days"]
mediators = ["adi"]
confounders = ["age", "female"]

[[analysis]]
id = "reduction"
method = "disparity_reduction"
outcomes = ["major_morbidity"]
allowable = ["age", "female"]
targets = ["socioeconomic", "biological"]
inference = { replicates = 40 }

[[analysis]]
id = "hospital"
method = "hospital"
outcomes = ["major_morbidity"]
hospital = "hospital_id"
"#;

fn config(imputation: &str) -> String {
    format!(
        r#"
[study]
name = "imputation paths"
seed = 23

[data]
synthetic = {{ patients = 5000, seed = 5, missing.ejection_fraction = 0.2, missing.adi = 0.15, missing.diabetes = 0.1 }}

[cohort]
missing = "multiple_imputation"

[imputation]
m = 5
iterations = 5
{imputation}

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
major_morbidity = {{ type = "binary" }}
los_days = {{ type = "continuous" }}

[factors]
biological = ["age", "female", "diabetes", "ejection_fraction", "status"]
socioeconomic = ["adi"]

[variables]
hospital_id = {{ type = "categorical" }}
status = {{ type = "categorical", reference = "elective" }}

[design]
cluster = "hospital_id"

[inference]
method = "delta"

{ANALYSES}
[report]
out_dir = "out"
formats = ["json", "html", "markdown"]
"#
    )
}

fn run(config: &str, env: &[(&str, &str)]) -> (Dir, serde_json::Value) {
    let dir = Dir::new();
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let mut cmd = dir.command(&["run", "study.toml"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = serde_json::from_str(&std::fs::read_to_string(dir.join("out/results.json")).unwrap())
        .unwrap();
    (dir, r)
}

fn analyses(r: &serde_json::Value) -> &Vec<serde_json::Value> {
    r["analyses"].as_array().unwrap()
}

fn total<'a>(a: &'a serde_json::Value, q: &str) -> &'a serde_json::Value {
    a["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["quantity"] == q && e["factor"].is_null() && e["term"].is_null())
        .unwrap_or_else(|| panic!("{} {}: no {q}", a["id"], a["outcome"]))
}

/// Each method's headline total and its parts.
const HEADLINES: [(&str, &str); 8] = [
    ("crude", "gap"),
    ("ob", "explained"),
    ("ob", "unexplained"),
    ("yun", "explained"),
    ("gelbach", "explained_change"),
    ("mediation", "indirect_effect"),
    ("reduction", "disparity_remaining"),
    ("hospital", "within_hospital"),
];

#[test]
fn every_method_pools_by_rubin_and_agrees_with_bootstrap_then_impute() {
    let (dir, rubin) = run(&config(""), &[]);
    let mut errors = Vec::new();
    crate::schema::validate(
        &crate::schema::schema(),
        &crate::schema::schema(),
        &rubin,
        "",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:#?}");
    // The complete-case analysis stays a complete-case one.
    for a in analyses(&rubin) {
        let imputed = a["id"] != "ob_cc";
        assert_eq!(
            a["inference"]["imputation"].is_string(),
            imputed,
            "{}",
            a["id"]
        );
        for e in a["estimates"].as_array().unwrap() {
            if imputed && e["se"].is_number() {
                assert_eq!(e["se_method"], "rubin", "{} {e}", a["id"]);
                let fmi = e["imputation"]["fmi"].as_f64().unwrap();
                assert!((0.0..1.0).contains(&fmi), "{} {e}", a["id"]);
                assert!(e["se"].as_f64().unwrap().is_finite());
            }
        }
    }
    // Covariates were imputed, so the decompositions have missing
    // information; the crude gap (no covariate) has none.
    let ob = analyses(&rubin).iter().find(|a| a["id"] == "ob").unwrap();
    assert!(
        total(ob, "explained")["imputation"]["between"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let crude = analyses(&rubin)
        .iter()
        .find(|a| a["id"] == "crude")
        .unwrap();
    assert_eq!(
        total(crude, "gap")["imputation"]["between"]
            .as_f64()
            .unwrap(),
        0.0
    );
    // The diagnostics, in results.json and the report.
    let imp = &rubin["imputation"];
    assert_eq!(imp["m"], 5);
    let names: Vec<&str> = imp["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for v in ["ejection_fraction", "adi", "diabetes"] {
        assert!(names.contains(&v), "{names:?}");
    }
    let html = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
    assert!(html.contains("Missing data and imputation") && html.contains("FMI"));
    assert!(html.contains("Rubin&#x27;s rules") || html.contains("Rubin's rules"));
    let md = std::fs::read_to_string(dir.join("out/report.md")).unwrap();
    assert!(md.contains("Missing data and imputation"));

    let (_, boot) = run(
        &config("inference = \"bootstrap\"\nreplicates = 60\nper_replicate = 2"),
        &[],
    );
    for (id, q) in HEADLINES {
        let find = |r: &serde_json::Value| {
            analyses(r)
                .iter()
                .find(|a| a["id"] == id)
                .map(|a| total(a, q).clone())
                .unwrap()
        };
        let (a, b) = (find(&rubin), find(&boot));
        // The same point estimates (the mean over the study's imputations).
        let (pa, pb) = (
            a["estimate"].as_f64().unwrap(),
            b["estimate"].as_f64().unwrap(),
        );
        if id != "reduction" {
            assert!(
                (pa - pb).abs() <= 1e-9 * pa.abs().max(1e-6),
                "{id} {q}: {pa} vs {pb}"
            );
        }
        let (sa, sb) = (a["se"].as_f64().unwrap(), b["se"].as_f64().unwrap());
        assert!(
            (sb / sa) > 0.6 && (sb / sa) < 1.6,
            "{id} {q}: Rubin SE {sa} vs bootstrap-then-impute SE {sb}"
        );
        assert_eq!(b["se_method"], "bootstrap-percentile", "{id} {q}");
    }
    let a = analyses(&boot).iter().find(|a| a["id"] == "ob").unwrap();
    assert_eq!(a["inference"]["imputation"], "bootstrap-then-impute");
    assert_eq!(a["inference"]["replicates_ok"], 60);
}

#[test]
fn imputed_studies_are_identical_on_rerun_and_for_any_thread_count() {
    let text = config("");
    let (_, one) = run(&text, &[("RAYON_NUM_THREADS", "1")]);
    let (_, two) = run(&text, &[("RAYON_NUM_THREADS", "2")]);
    assert_eq!(one["analyses"], two["analyses"]);
    assert_eq!(one["imputation"], two["imputation"]);
}

/// The recovery study (the canonical blocks and outcomes) at `patients` with
/// the generator's MAR holes in ejection fraction and ADI (outcome-dependent),
/// complete-case and imputed reference-coefficient Oaxaca–Blinder side by
/// side.
fn recovery_config(patients: usize, seed: u64, m: usize) -> String {
    crate::oaxaca::recovery_config(
        r#"
[[analysis]]
id = "complete_case"
method = "oaxaca_blinder"
outcomes = ["death_30d", "major_morbidity", "los_days"]
coefficients = "reference"
missing = "complete_case"

[[analysis]]
id = "imputed"
method = "oaxaca_blinder"
outcomes = ["death_30d", "major_morbidity", "los_days"]
coefficients = "reference"
"#,
    )
    .replace(
        "synthetic = { patients = 400000, seed = 21 }",
        &format!(
            "synthetic = {{ patients = {patients}, seed = {seed}, missing.ejection_fraction = 0.25, \
             missing.adi = 0.25 }}\n\n[cohort]\nmissing = \"multiple_imputation\"\n\n[imputation]\nm = \
             {m}\niterations = 5"
        ),
    )
}

/// One seed's checks: each analysis × comparison × outcome × component
/// against the complete-data truth, and whether it is the complete-case one.
fn recovery_checks(patients: usize, seed: u64, m: usize) -> Vec<(bool, ObCheck)> {
    let dir = Dir::new();
    std::fs::write(dir.join("r.toml"), recovery_config(patients, seed, m)).unwrap();
    let out = dir.run(&["run", "r.toml", "--out", "out"]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/results.json")).unwrap())
            .unwrap();
    let mut params = healthgap_synth::Params::default();
    params.patients = patients;
    params.seed = seed;
    let truth =
        healthgap_synth::truth::compute(&healthgap_synth::Sample::generate(&params, &|_| {}));
    analyses(&r)
        .iter()
        .flat_map(|a| {
            let complete_case = a["id"] == "complete_case";
            ob_checks(a, &truth, "oaxaca_blinder_reference")
                .into_iter()
                .map(move |mut c| {
                    c.label = format!("{:<13} {}", a["id"].as_str().unwrap(), c.label);
                    (complete_case, c)
                })
        })
        .collect()
}

/// Recovery of the complete-data truth under outcome-dependent MAR holes:
/// the complete-case CIs are shown (not asserted: they estimate the gap in a
/// selected sample), the imputed ones must cover (at least 90% of 30, none
/// beyond 4 SEs).
#[test]
#[ignore = "statistical recovery at 200k patients with m = 20: ~2 min in release; run by bench/run.sh"]
fn multiple_imputation_recovers_the_complete_data_truth() {
    let mut mi = crate::oaxaca::Coverage::default();
    let mut cc = crate::oaxaca::Coverage::default();
    for (complete_case, c) in recovery_checks(200_000, 21, 20) {
        let tally = if complete_case { &mut cc } else { &mut mi };
        tally.add(&c.label, c.estimate, c.se, c.truth, c.truth_mc_se, true);
    }
    cc.report("complete-case OB (shown, not asserted)");
    mi.check("multiple-imputation OB", 30, 27);
}

/// Coverage of the imputed CIs over 10 seeds (300 checks at 50k patients,
/// m = 10): between 90% and 99% of the 95% CIs cover the complete-data
/// truth; the complete-case coverage is printed beside it.
#[test]
#[ignore = "coverage over 10 seeds: ~3 min in release; run by bench/run.sh"]
fn multiple_imputation_coverage_over_seeds() {
    let (mut covered, mut total, mut cc_covered) = (0usize, 0usize, 0usize);
    for seed in 0..10u64 {
        for (complete_case, c) in recovery_checks(50_000, 100 + seed, 10) {
            let z = (c.estimate - c.truth) / (c.se * c.se + c.truth_mc_se * c.truth_mc_se).sqrt();
            let hit = z.abs() < 1.96;
            if complete_case {
                cc_covered += usize::from(hit);
            } else {
                covered += usize::from(hit);
                total += 1;
            }
        }
    }
    let share = covered as f64 / total as f64;
    println!(
        "MI coverage over seeds: {covered}/{total} = {:.1}% (complete cases: {cc_covered}/{total} = {:.1}%)",
        100.0 * share,
        100.0 * cc_covered as f64 / total as f64
    );
    assert!((0.90..=0.99).contains(&share), "{share}");
}
