//! Gelbach decomposition against pyfixest's `decompose()` (tests/golden/gelbach)
//! and its identities.

use healthgap_decompose::MethodOutput;
use healthgap_decompose::covariates::{Absorbed, Column, Covariates};
use healthgap_decompose::gelbach::{GelbachInput, gelbach};
use healthgap_decompose::inference::InferenceSpec;
use healthgap_decompose::{Cluster, Sample};

use crate::util::read_csv;

fn expected() -> serde_json::Value {
    let path = format!(
        "{}/../../tests/golden/gelbach/expected.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn run(with_fe: bool, cluster: bool) -> MethodOutput {
    let data = read_csv("gelbach/gelbach.csv");
    let group: Vec<u32> = data["d"].iter().map(|&v| v as u32).collect();
    let codes: Vec<u32> = data["f"].iter().map(|&v| v as u32).collect();
    let col = |name: &str, factor: &str| Column {
        name: name.into(),
        factor: factor.into(),
        values: data[name].to_vec(),
    };
    let cov = Covariates {
        columns: vec![
            col("x1", "base"),
            col("x21", "g1"),
            col("x22", "g1"),
            col("x23", "g2"),
        ],
        categoricals: vec![],
        absorbed: with_fe.then(|| Absorbed {
            variable: "f".into(),
            factor: "fe".into(),
            codes: codes.to_vec(),
            levels: 25,
            labels: (0..25).map(|l| l.to_string()).collect(),
        }),
    };
    let input = GelbachInput {
        sample: &Sample {
            labels: ["r", "c"],
            weights: None,
            cluster: cluster.then_some(Cluster {
                name: "f",
                codes: codes.as_slice(),
                count: 25,
            }),
            ..Sample::new(&data["y"], &group)
        },
        covariates: &cov,
        base_columns: 1,
    };
    gelbach(&input, &InferenceSpec::delta(0.95), &|| {}).unwrap()
}

fn get(out: &MethodOutput, q: &str, f: Option<&str>, t: Option<&str>) -> f64 {
    out.estimates
        .iter()
        .find(|e| e.quantity == q && e.factor.as_deref() == f && e.term.as_deref() == t)
        .unwrap_or_else(|| panic!("no row {q} {f:?} {t:?}"))
        .estimate
}

fn close(a: f64, b: f64) {
    crate::util::tol::relative(a, b, 1e-8, 1e-3, "vs pyfixest");
}

#[test]
fn gelbach_matches_pyfixest_with_and_without_fixed_effects() {
    let e = expected();
    for (name, fe) in [("plain", false), ("fe", true)] {
        let out = run(fe, false);
        let x = &e[name];
        close(
            get(&out, "base_coefficient", None, None),
            x["direct_effect"].as_f64().unwrap(),
        );
        close(
            get(&out, "full_coefficient", None, None),
            x["full_effect"].as_f64().unwrap(),
        );
        close(
            get(&out, "explained_change", None, None),
            x["explained_effect"].as_f64().unwrap(),
        );
        for block in ["g1", "g2"] {
            close(
                get(&out, "explained_change", Some(block), None),
                x[block].as_f64().unwrap(),
            );
        }
        if fe {
            close(
                get(&out, "explained_change", Some("fe"), None),
                x["fe"].as_f64().unwrap(),
            );
            close(
                get(&out, "explained_change", Some("fe"), Some("f")),
                x["fe"].as_f64().unwrap(),
            );
        }
    }
    let out = run(false, false);
    let t = &e["plain_terms"];
    for (term, block) in [("x21", "g1"), ("x22", "g1"), ("x23", "g2")] {
        close(
            get(&out, "explained_change", Some(block), Some(term)),
            t[term].as_f64().unwrap(),
        );
    }
}

#[test]
fn gelbach_blocks_sum_to_the_coefficient_change() {
    for (fe, cluster) in [(false, false), (true, true), (false, true)] {
        let out = run(fe, cluster);
        let delta =
            get(&out, "base_coefficient", None, None) - get(&out, "full_coefficient", None, None);
        let total = get(&out, "explained_change", None, None);
        assert!((total - delta).abs() < 1e-12, "{total} vs {delta}");
        let blocks: f64 = out
            .estimates
            .iter()
            .filter(|e| e.quantity == "explained_change" && e.factor.is_some() && e.term.is_none())
            .map(|e| e.estimate)
            .sum();
        assert!((blocks - delta).abs() < 1e-12);
        // Every row has a standard error (cluster delta, or Gelbach's conditional one).
        assert!(
            out.estimates.iter().all(|e| e.se.is_some_and(|s| s > 0.0)),
            "{out:?}"
        );
    }
}

/// Robust (each row its own unit) and clustered (by f, no fixed effects)
/// delta-method SEs against an independent Python computation of the stacked
/// influence functions of the base, full and auxiliary regressions, checked
/// there against derivatives of weighted refits with respect to each row's
/// (cluster's) weight: tests/golden/gelbach/expected_robust.json.
#[test]
fn gelbach_robust_and_clustered_standard_errors_match_the_stacked_influence_functions() {
    let path = format!(
        "{}/../../tests/golden/gelbach/expected_robust.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (key, cluster) in [("plain_robust", false), ("plain_cluster_f", true)] {
        let out = run(false, cluster);
        let g = &golden[key];
        let rows: [(&str, &str, Option<&str>, Option<&str>); 8] = [
            ("base_coefficient", "base_coefficient", None, None),
            ("full_coefficient", "full_coefficient", None, None),
            ("explained_change", "explained_change", None, None),
            ("g1", "explained_change", Some("g1"), None),
            ("g2", "explained_change", Some("g2"), None),
            ("x21", "explained_change", Some("g1"), Some("x21")),
            ("x22", "explained_change", Some("g1"), Some("x22")),
            ("x23", "explained_change", Some("g2"), Some("x23")),
        ];
        for (name, q, f, t) in rows {
            let r = out
                .estimates
                .iter()
                .find(|e| e.quantity == q && e.factor.as_deref() == f && e.term.as_deref() == t)
                .unwrap_or_else(|| panic!("no row {name}"));
            let (est, se) = (g[name][0].as_f64().unwrap(), g[name][1].as_f64().unwrap());
            close(r.estimate, est);
            let ours = r.se.unwrap();
            // Both sum the same analytic influence functions (by row or by cluster).
            assert!(
                (ours - se).abs() < 1e-7 * se,
                "{key} {name}: SE {ours} vs {se}"
            );
            let how = if cluster {
                healthgap_decompose::SeMethod::DeltaCluster
            } else {
                healthgap_decompose::SeMethod::DeltaRobust
            };
            assert_eq!(r.se_method, how, "{key} {name}");
        }
    }
}
