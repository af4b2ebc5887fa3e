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
