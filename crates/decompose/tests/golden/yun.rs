//! Nonlinear (Yun) decomposition against the hand computation of
//! tests/golden/yun/make_yun.py (statsmodels Logit/Probit fits, numpy
//! decomposition and delta-method SEs), and Fairlie's identities.

use std::collections::HashMap;

use healthgap_decompose::MethodOutput;
use healthgap_decompose::covariates::{Categorical, Column, Covariates};
use healthgap_decompose::inference::{InferenceSpec, Vce};
use healthgap_decompose::nonlinear::{NonlinearInput, nonlinear};
use healthgap_decompose::oaxaca::Coefficients;
use healthgap_decompose::{Cluster, Sample};
use healthgap_models::Link;

struct Cohort {
    cols: HashMap<String, Vec<f64>>,
    group: Vec<u32>,
    hospital: Vec<u32>,
    g: usize,
}

const COLUMNS: [&str; 9] = [
    "age",
    "female",
    "diabetes",
    "dialysis",
    "ejection_fraction",
    "adi",
    "insurance=medicaid",
    "insurance=medicare",
    "insurance=uninsured",
];

fn cohort() -> Cohort {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/golden/yun/cohort.csv"
    ))
    .unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    let col = |name: &str| -> Vec<&str> {
        let j = header.iter().position(|h| *h == name).unwrap();
        rows.iter().map(|r| r[j]).collect()
    };
    let mut cols: HashMap<String, Vec<f64>> = HashMap::new();
    for c in [
        "age",
        "female",
        "diabetes",
        "dialysis",
        "ejection_fraction",
        "adi",
        "major_morbidity",
    ] {
        cols.insert(
            c.into(),
            col(c).iter().map(|v| v.parse().unwrap()).collect(),
        );
    }
    for lvl in ["medicaid", "medicare", "uninsured"] {
        cols.insert(
            format!("insurance={lvl}"),
            col("insurance")
                .iter()
                .map(|v| f64::from(u8::from(*v == lvl)))
                .collect(),
        );
    }
    let mut ids: Vec<&str> = col("hospital_id");
    ids.sort_unstable();
    ids.dedup();
    let hospital = col("hospital_id")
        .iter()
        .map(|h| ids.binary_search(h).unwrap() as u32)
        .collect();
    Cohort {
        cols,
        group: col("race")
            .iter()
            .map(|r| u32::from(*r == "Black"))
            .collect(),
        hospital,
        g: ids.len(),
    }
}

fn run(
    c: &Cohort,
    link: Link,
    coefficients: Coefficients,
    cluster: bool,
    normalize: bool,
    fairlie: usize,
) -> MethodOutput {
    run_with(
        c,
        link,
        coefficients,
        cluster,
        normalize,
        fairlie,
        &InferenceSpec::delta(0.95),
    )
}

fn run_with(
    c: &Cohort,
    link: Link,
    coefficients: Coefficients,
    cluster: bool,
    normalize: bool,
    fairlie: usize,
    inference: &InferenceSpec,
) -> MethodOutput {
    let cov = Covariates {
        columns: COLUMNS
            .iter()
            .map(|n| Column {
                name: n.to_string(),
                factor: if n.starts_with("insurance") || *n == "adi" {
                    "socioeconomic".into()
                } else {
                    "biological".into()
                },
                values: c.cols[*n].to_vec(),
            })
            .collect(),
        categoricals: vec![Categorical {
            variable: "insurance".into(),
            factor: "socioeconomic".into(),
            base: "insurance=private".into(),
            columns: vec![6, 7, 8],
        }],
        absorbed: None,
    };
    let input = NonlinearInput {
        sample: &Sample {
            labels: ["White", "Black"],
            weights: None,
            cluster: cluster.then_some(Cluster {
                name: "hospital_id",
                codes: c.hospital.as_slice(),
                count: c.g,
            }),
            ..Sample::new(&c.cols["major_morbidity"], &c.group)
        },
        covariates: &cov,
        link,
        coefficients,
        normalize,
        fairlie_orderings: fairlie,
        seed: 7,
        analysis_id: "yun".into(),
    };
    nonlinear(&input, inference, &|| {}).unwrap()
}

fn row<'a>(
    out: &'a MethodOutput,
    q: &str,
    term: Option<&str>,
) -> &'a healthgap_decompose::Estimate {
    out.estimates
        .iter()
        .find(|e| {
            e.quantity == q && e.term.as_deref() == term && (term.is_some() || e.factor.is_none())
        })
        .unwrap_or_else(|| panic!("{q} {term:?}"))
}

fn close(a: f64, b: f64, rel: f64, what: &str) {
    crate::util::tol::relative(a, b, rel, 1e-8, what);
}

#[test]
fn yun_decomposition_matches_the_hand_computation() {
    let c = cohort();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/golden/yun/expected.json"
    );
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let names: Vec<String> = e["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for (link, key) in [(Link::Logit, "logit"), (Link::Probit, "probit")] {
        let x = &e[key];
        for (choice, ck) in [
            (Coefficients::Reference, "reference"),
            (Coefficients::Comparison, "comparison"),
            (Coefficients::Pooled, "pooled"),
        ] {
            // The delta method with covariate sampling, robust (no cluster)
            // and over hospitals; and the model-based convention (iid models,
            // X fixed, as mvdcmp; not for pooled β*).
            for (cluster, vce, se_key) in [
                (false, Vce::Robust, "se_robust"),
                (true, Vce::Cluster, "se_cluster_x"),
                (false, Vce::Model, "se_iid"),
            ] {
                if vce == Vce::Model && choice == Coefficients::Pooled {
                    continue;
                }
                let spec = InferenceSpec {
                    vce,
                    ..InferenceSpec::delta(0.95)
                };
                let out = run_with(&c, link, choice, cluster, false, 0, &spec);
                let v = &x[ck];
                let se = |i: usize| v[se_key][i].as_f64().unwrap();
                let what = format!("{key} {ck} {se_key}");
                close(
                    row(&out, "gap", None).estimate,
                    x["gap"].as_f64().unwrap(),
                    1e-10,
                    &what,
                );
                for (i, q) in ["explained", "unexplained"].iter().enumerate() {
                    let r = row(&out, q, None);
                    close(
                        r.estimate,
                        v[q].as_f64().unwrap(),
                        1e-6,
                        &format!("{what} {q}"),
                    );
                    close(r.se.unwrap(), se(i), 1e-4, &format!("{what} se {q}"));
                }
                let p = names.len();
                for (j, name) in names.iter().enumerate() {
                    for (k, (q, detail)) in [
                        ("explained", "explained_detail"),
                        ("unexplained", "unexplained_detail"),
                    ]
                    .iter()
                    .enumerate()
                    {
                        if *q == "explained" && j == 0 {
                            continue; // the intercept explains nothing
                        }
                        let r = row(&out, q, Some(name));
                        close(
                            r.estimate,
                            v[detail][j].as_f64().unwrap(),
                            1e-6,
                            &format!("{what} {q} {name}"),
                        );
                        close(
                            r.se.unwrap(),
                            se(2 + k * p + j),
                            1e-4,
                            &format!("{what} se {q} {name}"),
                        );
                    }
                }
            }
        }
        // Group models against statsmodels' model-based (iid) SEs.
        let model = InferenceSpec {
            vce: Vce::Model,
            ..InferenceSpec::delta(0.95)
        };
        let out = run_with(&c, link, Coefficients::Reference, false, false, 0, &model);
        for (m, (ck, sk)) in [("coef_r", "se_r"), ("coef_c", "se_c")].iter().enumerate() {
            for (j, coef) in out.models[m].coefficients.iter().enumerate() {
                close(
                    coef.estimate,
                    x[ck][j].as_f64().unwrap(),
                    1e-6,
                    &format!("{key} {ck} {j}"),
                );
                close(
                    coef.se,
                    x[sk][j].as_f64().unwrap(),
                    1e-5,
                    &format!("{key} {sk} {j}"),
                );
            }
        }
    }
}

#[test]
fn normalized_yun_rows_add_up_and_fairlie_sums_to_its_total() {
    let c = cohort();
    let out = run(&c, Link::Logit, Coefficients::Pooled, true, true, 50);
    let total = |q: &str| row(&out, q, None).estimate;
    assert!((total("explained") + total("unexplained") - total("gap")).abs() < 1e-12);
    for q in ["explained", "unexplained", "fairlie_explained"] {
        let blocks: f64 = out
            .estimates
            .iter()
            .filter(|e| e.quantity == q && e.factor.is_some() && e.term.is_none())
            .map(|e| e.estimate)
            .sum();
        assert!(
            (blocks - total(q)).abs() < 1e-12,
            "{q}: {blocks} vs {}",
            total(q)
        );
        assert!(row(&out, q, None).se.is_some_and(|s| s > 0.0), "{q}");
    }
    // The base level has its own row under normalization.
    assert!(
        out.estimates
            .iter()
            .any(|e| e.term.as_deref() == Some("insurance=private"))
    );
    // Fairlie's total explained part is close to Yun's (both are F̄ differences
    // at β*; Fairlie's uses matched subsamples).
    let (f, y) = (total("fairlie_explained"), total("explained"));
    assert!(
        (f - y).abs() < 0.35 * y.abs() + 0.005,
        "Fairlie {f} vs Yun {y}"
    );
    // Seeded: the same orderings give the same numbers.
    let again = run(&c, Link::Logit, Coefficients::Pooled, true, true, 50);
    assert_eq!(row(&again, "fairlie_explained", None).estimate, f);
}

#[test]
fn one_step_cluster_bootstrap_agrees_with_the_delta_method() {
    let c = cohort();
    let mut spec = InferenceSpec::delta(0.95);
    spec.method = healthgap_decompose::inference::Method::Bootstrap;
    spec.one_step = true;
    spec.replicates = 400;
    spec.interval = healthgap_models::bootstrap::Interval::Percentile;
    spec.analysis_id = "yun".into();
    let delta = run(&c, Link::Logit, Coefficients::Reference, true, true, 0);
    let boot = run_with(
        &c,
        Link::Logit,
        Coefficients::Reference,
        true,
        true,
        0,
        &spec,
    );
    let mut ratios: Vec<f64> = delta
        .estimates
        .iter()
        .zip(&boot.estimates)
        // Totals (the one-step replicates' detailed rows are noisier).
        .filter(|(d, _)| d.factor.is_none() && d.quantity != "share")
        .map(|(d, b)| {
            assert_eq!(
                d.estimate, b.estimate,
                "the point estimate is the full-sample one"
            );
            b.se.unwrap() / d.se.unwrap()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    assert!(
        ratios.iter().all(|r| (0.8..1.25).contains(r)),
        "median bootstrap/delta SE ratio {median}: {ratios:?}"
    );
    assert_eq!(boot.replicates_ok, Some(400));
}

/// The default cluster bootstrap refits every replicate to convergence. On this
/// cohort a third of the replicates separate (no uninsured patient with an
/// event in one group's resample): intervals from the rest would not be a
/// bootstrap distribution, so every bootstrap row is withheld with the reason,
/// and the point estimates stay. (The one-step variant above never refits, so
/// it cannot see the separation; converged replicates that all succeed are
/// checked end to end in tests/inference_paths.rs.)
#[test]
fn separation_in_replicates_withholds_the_converged_bootstrap() {
    let c = cohort();
    let mut spec = InferenceSpec::delta(0.95);
    spec.method = healthgap_decompose::inference::Method::Bootstrap;
    spec.replicates = 200;
    spec.interval = healthgap_models::bootstrap::Interval::Percentile;
    spec.analysis_id = "yun".into();
    let delta = run(&c, Link::Logit, Coefficients::Reference, true, true, 10);
    let boot = run_with(
        &c,
        Link::Logit,
        Coefficients::Reference,
        true,
        true,
        10,
        &spec,
    );
    let why = boot.withheld.clone().expect("withheld");
    assert!(
        why.contains("separation") && why.contains("of 200"),
        "{why}"
    );
    assert!(boot.replicates_ok.is_some_and(|ok| ok < 198));
    assert!(
        boot.warnings
            .iter()
            .any(|w| w.starts_with("intervals withheld"))
    );
    for (d, b) in delta.estimates.iter().zip(&boot.estimates) {
        assert_eq!(d.estimate, b.estimate);
        assert!(b.se.is_none() && b.ci_low.is_none(), "{b:?}");
        assert_eq!(b.se_method, healthgap_decompose::SeMethod::None);
    }
}
