//! The care-site analysis's recovery of the generator's truth (the golden
//! tests against pyfixest are in crates/decompose/tests/golden/hospital.rs).

/// Recovery of the generator's truth: the Kitagawa split (truth.json `kitagawa`)
/// and the LPM group coefficients without and with hospital fixed effects,
/// without and with the canonical covariates (`lpm_group_coefficient`).
#[test]
#[ignore = "statistical recovery at 400k patients: ~1 min in release; run by bench/run.sh"]
fn hospital_analysis_recovers_the_generator_truth() {
    use crate::oaxaca::{Coverage, recovery_truth, run_recovery};
    let r = run_recovery(
        r#"
[[analysis]]
id = "unadjusted"
method = "hospital"
outcomes = ["death_30d", "major_morbidity", "readmit_30d", "los_days"]
hospital = "hospital_id"

[[analysis]]
id = "adjusted"
method = "hospital"
outcomes = ["death_30d", "major_morbidity", "readmit_30d", "los_days"]
hospital = "hospital_id"
adjust = ["biological", "socioeconomic"]
"#,
    );
    let truth = recovery_truth();
    let mut coverage = Coverage::default();
    for a in r["analyses"].as_array().unwrap() {
        let comparison = a["comparison"].as_str().unwrap();
        let outcome = a["outcome"].as_str().unwrap();
        let checks: &[(&str, &str, &str)] = if a["id"] == "unadjusted" {
            &[
                ("between_hospital", "kitagawa", "between_hospital"),
                ("within_hospital", "kitagawa", "within_hospital"),
                ("coefficient_without_fe", "lpm_group_coefficient", "crude"),
                (
                    "coefficient_with_fe",
                    "lpm_group_coefficient",
                    "hospital_fe",
                ),
            ]
        } else {
            &[
                (
                    "coefficient_without_fe",
                    "lpm_group_coefficient",
                    "covariates",
                ),
                (
                    "coefficient_with_fe",
                    "lpm_group_coefficient",
                    "covariates_hospital_fe",
                ),
            ]
        };
        for &(quantity, kind, component) in checks {
            let t = truth
                .get(kind, comparison, outcome, Some(component))
                .unwrap();
            let e = a["estimates"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["quantity"] == quantity)
                .unwrap();
            coverage.add(
                &format!(
                    "hospital {:<10} {comparison:<9} {outcome:<16} {quantity:<24}",
                    a["id"].as_str().unwrap()
                ),
                e["estimate"].as_f64().unwrap(),
                e["se"].as_f64().unwrap(),
                t.population,
                t.population_mc_se,
                true,
            );
        }
    }
    // At least 90% of 48.
    coverage.check("Hospital", 48, 44);
}

/// The hierarchical hospital model end to end on a small synthetic cohort:
/// binary (logit, random slope) and continuous (linear mixed model) outcomes,
/// every reported quantity finite, hospitals.csv with its columns, the
/// one-step bootstrap declared, and the figures in the report.
#[test]
fn hierarchical_hospital_model_runs_end_to_end() {
    use crate::util::Dir;
    let dir = Dir::new();
    let config = r#"
[study]
name = "hierarchical"
seed = 3

[data]
synthetic = { patients = 6000, seed = 8 }

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
major_morbidity = { type = "binary" }
los_days = { type = "continuous" }

[factors]
biological = ["age", "female", "diabetes", "ejection_fraction"]

[variables]
hospital_id = { type = "categorical" }

[[analysis]]
method = "hospital"
outcomes = ["major_morbidity", "los_days"]
hospital = "hospital_id"
adjust = ["biological"]
model = "hierarchical"
random_slope = true
replicates = 100

[report]
out_dir = "out"
formats = ["json", "csv", "html"]
min_cell = 5
"#;
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let out = dir.run(&["run", "study.toml"]);
    let err = crate::util::stderr(&out);
    assert!(out.status.code() == Some(0), "{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/results.json")).unwrap())
            .unwrap();
    assert_eq!(r["analyses"].as_array().unwrap().len(), 2);
    for a in r["analyses"].as_array().unwrap() {
        let outcome = a["outcome"].as_str().unwrap();
        let rows = a["estimates"].as_array().unwrap();
        let get = |q: &str| {
            rows.iter()
                .find(|e| e["quantity"] == q)
                .unwrap_or_else(|| panic!("{outcome}: no {q}"))
        };
        let mut quantities = vec![
            "overall_rate",
            "hospital_sd",
            "icc",
            "between_hospital_hierarchical",
            "within_hospital_hierarchical",
        ];
        if outcome == "major_morbidity" {
            quantities.extend([
                "median_odds_ratio",
                "group_log_odds_ratio",
                "hospital_slope_sd",
                "hospital_slope_correlation",
            ]);
        } else {
            quantities.push("group_coefficient_hierarchical");
        }
        for q in quantities {
            let e = get(q);
            assert!(
                e["estimate"].as_f64().is_some_and(f64::is_finite),
                "{outcome} {q}: {e}"
            );
            // Variance summaries have no SE near a boundary, and say so.
            let variance = [
                "hospital_sd",
                "icc",
                "median_odds_ratio",
                "hospital_slope_sd",
                "hospital_slope_correlation",
            ];
            let near_boundary = a["warnings"].as_array().unwrap().iter().any(|w| {
                let w = w.as_str().unwrap();
                w.contains("not positive definite") || w.contains("boundary")
            });
            if variance.contains(&q) && near_boundary {
                assert!(e["se"].is_null());
            } else if q != "overall_rate" {
                assert!(
                    e["se"].as_f64().is_some_and(|s| s.is_finite() && s > 0.0),
                    "{outcome} {q}: {e}"
                );
            }
        }
        assert!(
            a["models"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["label"].as_str().unwrap().starts_with("hierarchical"))
        );
        assert!(
            a["inference"]["note"]
                .as_str()
                .unwrap()
                .contains("one-step (Newton) update"),
            "{}",
            a["inference"]
        );
    }
    let csv = std::fs::read_to_string(dir.join("out/hospitals.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "rsr_hierarchical")
        .expect("rsr column");
    let filled = csv
        .lines()
        .skip(1)
        .filter(|l| !l.split(',').nth(col).unwrap_or("").is_empty())
        .count();
    assert!(filled > 10, "{filled} hospitals with an RSR");
    let html = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
    assert!(
        html.contains("hierarchical model") && html.contains("Funnel plot"),
        "report figures"
    );
}
