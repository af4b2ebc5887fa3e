//! The elastic net against scikit-learn's fits of the same objective, stored
//! with the script that made them (tests/golden/make_elastic_net.py).

use healthgap_learn::{ElasticNetSpec, Family, Fitted, Matrix, Task};
use serde_json::Value;

use crate::common::TOL_GOLDEN;

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn elastic_net_matches_scikit_learn() {
    let golden: Value =
        serde_json::from_str(include_str!("../golden/elastic_net.json")).expect("json");
    let n = golden["nrows"].as_u64().expect("nrows") as usize;
    let p = golden["ncols"].as_u64().expect("ncols") as usize;
    let x = Matrix::from_col_major(
        numbers(&golden["x_col_major"]),
        n,
        (0..p).map(|j| format!("x{j}")).collect(),
    )
    .expect("matrix");
    let w = numbers(&golden["weights"]);
    let cases = golden["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 6);
    for case in cases {
        let family = match case["family"].as_str() {
            Some("binary") => Family::Binary,
            _ => Family::Continuous,
        };
        let y = match family {
            Family::Binary => numbers(&golden["y_binary"]),
            Family::Continuous => numbers(&golden["y_continuous"]),
        };
        let task = Task::new(&x, &y, family)
            .expect("task")
            .with_weights(&w)
            .expect("weights");
        let spec = ElasticNetSpec {
            alpha: case["alpha"].as_f64().expect("alpha"),
            lambda: case["lambda"].as_f64(),
            standardize: case["standardize"].as_bool().expect("standardize"),
            tol: 1e-14,
            max_passes: 1_000_000,
            ..ElasticNetSpec::default()
        };
        let fit = spec.fit_net(&task, 0).expect("fit");
        let what = case["cmdline"].as_str().unwrap_or_default();
        let want = numbers(&case["coef"]);
        let got = fit.coefficients();
        let b0 = case["intercept"].as_f64().expect("intercept");
        assert!(
            (fit.intercept() - b0).abs() < TOL_GOLDEN,
            "{what}: intercept {} vs {b0}",
            fit.intercept()
        );
        for j in 0..p {
            assert!(
                (got[j] - want[j]).abs() < TOL_GOLDEN,
                "{what}: coefficient {j}: {} vs {}",
                got[j],
                want[j]
            );
            // The lasso's zeros are exact zeros.
            if want[j] == 0.0 {
                assert_eq!(got[j], 0.0, "{what}: coefficient {j} should be 0");
            }
        }
        assert!(
            fit.predict(&x)
                .expect("predict")
                .iter()
                .all(|v| v.is_finite())
        );
    }
}

#[test]
fn cross_validated_lambda_lies_on_the_path_and_is_reported() {
    let sim = crate::common::nonlinear(600, 30, Family::Binary, 5);
    let task = Task::new(&sim.x, &sim.y, Family::Binary)
        .expect("task")
        .with_weights(&sim.w)
        .expect("weights")
        .with_clusters(&sim.clusters)
        .expect("clusters");
    let fit = ElasticNetSpec::default().fit_net(&task, 9).expect("fit");
    let again = ElasticNetSpec::default().fit_net(&task, 9).expect("fit");
    assert_eq!(fit.coefficients(), again.coefficients(), "seeded");
    match &fit.report().detail {
        healthgap_learn::Detail::ElasticNet {
            lambda, cv_path, ..
        } => {
            assert_eq!(cv_path.len(), ElasticNetSpec::default().nlambda);
            let best = cv_path
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("path");
            assert_eq!(best.0, *lambda);
            assert!(
                cv_path.windows(2).all(|w| w[0].0 > w[1].0),
                "decreasing path"
            );
        }
        other => panic!("unexpected detail {other:?}"),
    }
}
