//! The care-site analysis against pyfixest (tests/golden/hospital) and its
//! identities.

use healthgap_decompose::Sample;
use healthgap_decompose::covariates::{Absorbed, Column, Covariates};
use healthgap_decompose::hospital::{HospitalInput, HospitalOutput, hospital};
use healthgap_decompose::inference::InferenceSpec;

use crate::util::read_csv;

fn run(outcome: &str, binary: bool, two_way: bool) -> HospitalOutput {
    let d = read_csv("hospital/hospital.csv");
    let group: Vec<u32> = d["c"].iter().map(|v| *v as u32).collect();
    let h: Vec<u32> = d["hospital"].iter().map(|v| *v as u32).collect();
    let s: Vec<u32> = d["surgeon"].iter().map(|v| *v as u32).collect();
    let cov = Covariates {
        columns: ["x1", "x2"]
            .iter()
            .map(|c| Column {
                name: c.to_string(),
                factor: "clinical".into(),
                values: d[*c].to_vec(),
            })
            .collect(),
        ..Default::default()
    };
    let input = HospitalInput {
        sample: &Sample {
            outcome: "y",
            y: &d[outcome],
            group: &group,
            labels: ["r", "c"],
            weights: None,
            cluster: None,
            binary,
            min_cell: 11,
        },
        covariates: &cov,
        hospital: absorbed("hospital", &h, 40),
        extra_fe: if two_way {
            vec![absorbed("surgeon", &s, 60)]
        } else {
            vec![]
        },
        pseudonymize: false,
        hierarchical: None,
    };
    hospital(&input, &InferenceSpec::delta(0.95), &|| {}).unwrap()
}

fn absorbed(name: &str, codes: &[u32], levels: usize) -> Absorbed {
    Absorbed {
        variable: name.into(),
        factor: "care_site".into(),
        codes: codes.to_vec(),
        levels,
        labels: (0..levels).map(|l| l.to_string()).collect(),
    }
}

fn expected() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/golden/hospital/expected.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn model_coef(out: &HospitalOutput, label_start: &str) -> (f64, f64) {
    let m = out
        .output
        .models
        .iter()
        .find(|m| m.label.starts_with(label_start))
        .unwrap_or_else(|| panic!("{label_start}"));
    let c = m.coefficients.iter().find(|c| c.term == "group").unwrap();
    (c.estimate, c.se)
}

fn close(a: f64, b: f64, rel: f64, what: &str) {
    crate::util::tol::relative(a, b, rel, 0.0, &format!("{what} vs pyfixest"));
}

#[test]
fn fixed_effect_contrasts_match_pyfixest() {
    let e = expected();
    for (outcome, binary) in [("y", false), ("yb", true)] {
        let x = &e[outcome];
        let out = run(outcome, binary, true);
        for (label, key) in [
            ("LPM without hospital effects", "lpm_without_fe"),
            ("LPM with hospital effects", "lpm_with_fe"),
            ("LPM with hospital + surgeon effects", "lpm_two_way"),
        ] {
            let (b, se) = model_coef(&out, label);
            close(
                b,
                x[key]["coef"].as_f64().unwrap(),
                1e-8,
                &format!("{outcome} {key} coef"),
            );
            close(
                se,
                x[key]["se"].as_f64().unwrap(),
                1e-8,
                &format!("{outcome} {key} se"),
            );
        }
        // The estimate rows carry the same numbers.
        let row = |q: &str| {
            out.output
                .estimates
                .iter()
                .find(|r| r.quantity == q)
                .unwrap()
        };
        close(
            row("coefficient_with_fe").estimate,
            x["lpm_with_fe"]["coef"].as_f64().unwrap(),
            1e-8,
            "row",
        );
        close(
            row("coefficient_with_fe").se.unwrap(),
            x["lpm_with_fe"]["se"].as_f64().unwrap(),
            1e-8,
            "row se",
        );
        close(
            row("coefficient_with_all_fe").estimate,
            x["lpm_two_way"]["coef"].as_f64().unwrap(),
            1e-8,
            "row",
        );
        if binary {
            let out = run(outcome, binary, false);
            let row = |q: &str| {
                out.output
                    .estimates
                    .iter()
                    .find(|r| r.quantity == q)
                    .unwrap()
            };
            for (label, key) in [
                ("logit without hospital effects", "logit_without_fe"),
                ("logit with hospital effects", "logit_with_fe"),
            ] {
                let (b, se) = model_coef(&out, label);
                close(
                    b,
                    x[key]["coef"].as_f64().unwrap(),
                    1e-6,
                    &format!("{key} coef"),
                );
                close(
                    se,
                    x[key]["se"].as_f64().unwrap(),
                    1e-6,
                    &format!("{key} se"),
                );
            }
            let or = row("odds_ratio_with_fe").estimate;
            close(
                or.ln(),
                x["logit_with_fe"]["coef"].as_f64().unwrap(),
                1e-6,
                "odds ratio",
            );
        }
    }
}

#[test]
fn kitagawa_parts_add_up_and_the_hospital_table_is_suppressed() {
    let out = run("yb", true, false);
    let get = |q: &str| {
        out.output
            .estimates
            .iter()
            .find(|r| r.quantity == q)
            .unwrap()
            .estimate
    };
    for (b, w, g) in [
        ("between_hospital", "within_hospital", "gap"),
        (
            "between_hospital_symmetric",
            "within_hospital_symmetric",
            "gap",
        ),
        (
            "between_hospital_adjusted",
            "within_hospital_adjusted",
            "gap_adjusted",
        ),
    ] {
        assert!((get(b) + get(w) - get(g)).abs() < 1e-12, "{b} + {w} != {g}");
    }
    assert!(
        (get("coefficient_without_fe") - get("coefficient_with_fe") - get("coefficient_change"))
            .abs()
            < 1e-12
    );
    assert_eq!(out.hospitals.len(), 40);
    for h in &out.hospitals {
        for n in [h.n, h.n_reference, h.n_comparison].into_iter().flatten() {
            assert!(n >= 11, "{h:?}");
        }
        if h.n_reference.is_none() {
            assert!(
                h.n_comparison.is_none() && h.comparison_share.is_none(),
                "{h:?}"
            );
        }
        if let (Some(lo), Some(rs), Some(hi)) = (h.rs_low, h.risk_standardized, h.rs_high) {
            assert!(lo <= rs && rs <= hi, "{h:?}");
        }
    }
    assert_eq!(
        out.hospitals.iter().filter(|h| h.minority_serving).count(),
        4
    );
}
