//! Gelbach's recovery of the generator's truth (the golden tests against
//! pyfixest are in crates/decompose/tests/golden/gelbach.rs).

/// The Gelbach care-site block recovers the generator's change in the LPM group
/// coefficient when hospital fixed effects are added (truth.json
/// `lpm_group_coefficient`): crude − hospital_fe without covariates, and
/// covariates − covariates_hospital_fe with the canonical covariates in the base.
#[test]
#[ignore = "statistical recovery at 400k patients: ~1 min in release; run by bench/run.sh"]
fn gelbach_hospital_block_recovers_the_generator_truth() {
    use crate::oaxaca::{Coverage, recovery_truth, run_recovery};
    let r = run_recovery(
        r#"
[[analysis]]
id = "unadjusted"
method = "gelbach"
outcomes = ["death_30d", "major_morbidity", "readmit_30d", "los_days"]
base = []
added = ["care_site"]

[[analysis]]
id = "adjusted"
method = "gelbach"
outcomes = ["death_30d", "major_morbidity", "readmit_30d", "los_days"]
base = ["biological", "socioeconomic"]
added = ["care_site"]
"#,
    );
    let truth = recovery_truth();
    let mut coverage = Coverage::default();
    for a in r["analyses"].as_array().unwrap() {
        let (before, after) = if a["id"] == "unadjusted" {
            ("crude", "hospital_fe")
        } else {
            ("covariates", "covariates_hospital_fe")
        };
        let comparison = a["comparison"].as_str().unwrap();
        let outcome = a["outcome"].as_str().unwrap();
        let t = |c: &str| {
            truth
                .get("lpm_group_coefficient", comparison, outcome, Some(c))
                .unwrap()
        };
        let target = t(before).population - t(after).population;
        let mc = (t(before).population_mc_se.powi(2) + t(after).population_mc_se.powi(2)).sqrt();
        let e = a["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["quantity"] == "explained_change"
                    && e["factor"] == "care_site"
                    && e["term"].is_null()
            })
            .unwrap();
        coverage.add(
            &format!(
                "gelbach {:<10} {comparison:<9} {outcome:<16}",
                a["id"].as_str().unwrap()
            ),
            e["estimate"].as_f64().unwrap(),
            e["se"].as_f64().unwrap(),
            target,
            mc,
            true,
        );
    }
    coverage.check("Gelbach", 16, 14);
}
