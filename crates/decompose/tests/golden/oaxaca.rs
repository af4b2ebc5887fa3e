//! Linear Oaxaca–Blinder against published numbers (tests/golden/oaxaca) and
//! its identities.

use std::collections::HashMap;

use crate::util::read_csv;
use healthgap_decompose::SeMethod;
use healthgap_decompose::covariates::{Categorical, Column, Covariates};
use healthgap_decompose::inference::{InferenceSpec, Method, Vce};
use healthgap_decompose::oaxaca::{Coefficients, LinearInput, MethodOutput, linear};
use healthgap_decompose::{Cluster, Sample};

fn expected() -> serde_json::Value {
    let path = format!(
        "{}/../../tests/golden/oaxaca/expected.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Complete rows of `used` columns.
fn complete(data: &HashMap<String, Vec<f64>>, used: &[&str]) -> HashMap<String, Vec<f64>> {
    let n = data[used[0]].len();
    let keep: Vec<usize> = (0..n)
        .filter(|&i| used.iter().all(|c| data[*c][i].is_finite()))
        .collect();
    used.iter()
        .map(|c| (c.to_string(), keep.iter().map(|&i| data[*c][i]).collect()))
        .collect()
}

struct Case {
    data: HashMap<String, Vec<f64>>,
    y: Vec<f64>,
    group: Vec<u32>,
}

fn run(
    case: &Case,
    columns: &[&str],
    categoricals: Vec<Categorical>,
    coefficients: Coefficients,
) -> MethodOutput {
    let cov = Covariates {
        columns: columns
            .iter()
            .map(|c| Column {
                name: c.to_string(),
                factor: if c.starts_with("age") || *c == "AGE" {
                    "demographic".into()
                } else {
                    "other".into()
                },
                values: case.data[*c].to_vec(),
            })
            .collect(),
        categoricals,
        absorbed: None,
    };
    run_spec(case, &cov, coefficients, &InferenceSpec::delta(0.95), None).unwrap()
}

/// The decomposition of `case` with `spec` and an optional cluster.
fn run_spec(
    case: &Case,
    cov: &Covariates,
    coefficients: Coefficients,
    spec: &InferenceSpec,
    cluster: Option<Cluster<'_>>,
) -> Result<MethodOutput, healthgap_decompose::DecomposeError> {
    let input = LinearInput {
        sample: &Sample {
            labels: ["r", "c"],
            weights: None,
            cluster,
            min_cell: 11,
            ..Sample::new(&case.y, &case.group)
        },
        covariates: cov,
        coefficients,
        threefold: true,
        normalize: true,
        hospital_effects: Default::default(),
    };
    linear(&input, spec, &|| {})
}

fn get(out: &MethodOutput, q: &str, f: Option<&str>, t: Option<&str>) -> f64 {
    out.estimates
        .iter()
        .find(|e| e.quantity == q && e.factor.as_deref() == f && e.term.as_deref() == t)
        .unwrap_or_else(|| panic!("no row {q} {f:?} {t:?}"))
        .estimate
}

fn close(a: f64, b: f64, rel: f64) {
    crate::util::tol::relative(a, b, rel, 1e-12, "vs expected");
}

fn ccard() -> Case {
    let data = complete(
        &read_csv("oaxaca/ccard.csv"),
        &["AVGEXP", "AGE", "INCOME", "INCOMESQ", "OWNRENT"],
    );
    Case {
        y: data["AVGEXP"].clone(),
        group: data["OWNRENT"].iter().map(|&v| v as u32).collect(),
        data,
    }
}

const ALL: [(&str, Coefficients); 6] = [
    ("reference", Coefficients::Reference),
    ("comparison", Coefficients::Comparison),
    ("pooled", Coefficients::Pooled),
    ("neumark", Coefficients::Neumark),
    ("cotton", Coefficients::Cotton),
    ("reimers", Coefficients::Reimers),
];

#[test]
fn ccard_threefold_and_twofold_match_statsmodels() {
    let case = ccard();
    let e = &expected()["ccard"];
    let x = ["AGE", "INCOME", "INCOMESQ"];
    for (name, c) in ALL {
        let out = run(&case, &x, vec![], c);
        close(
            get(&out, "gap", None, None),
            e["gap"].as_f64().unwrap(),
            1e-6,
        );
        for q in ["endowments", "coefficients", "interaction"] {
            close(
                get(&out, q, None, None),
                e["threefold"][q].as_f64().unwrap(),
                1e-6,
            );
        }
        if name == "cotton" {
            continue; // below
        }
        if let Some(two) = e["twofold"].get(name) {
            close(
                get(&out, "explained", None, None),
                two[0].as_f64().unwrap(),
                1e-6,
            );
            close(
                get(&out, "unexplained", None, None),
                two[1].as_f64().unwrap(),
                1e-6,
            );
        }
    }
}

/// statsmodels' `cotton` weights b_r by n_c/n (its groups are swapped inside),
/// while METHODS.md §2, Cotton (1988) and R `oaxaca` weight b_r by n_r/n (the
/// chicago test checks R's number). Its published value is our decomposition
/// with the weights swapped, and ours is the documented formula.
#[test]
fn ccard_cotton_is_statsmodels_with_the_group_sizes_swapped() {
    let case = ccard();
    let e = &expected()["ccard"]["twofold"]["cotton"];
    let x = ["AGE", "INCOME", "INCOMESQ"];
    let n_c = case.group.iter().filter(|g| **g == 1).count() as f64;
    let n = case.group.len() as f64;
    let explained = |c| get(&run(&case, &x, vec![], c), "explained", None, None);
    let (e_ref, e_comp) = (
        explained(Coefficients::Reference),
        explained(Coefficients::Comparison),
    );
    close(
        n_c / n * e_ref + (1.0 - n_c / n) * e_comp,
        e[0].as_f64().unwrap(),
        1e-6,
    );
    let ours = explained(Coefficients::Cotton);
    close(ours, (1.0 - n_c / n) * e_ref + n_c / n * e_comp, 1e-12);
}

#[test]
fn ccard_threefold_delta_standard_errors_match_jann() {
    let case = ccard();
    let e = &expected()["ccard"]["threefold_se"];
    // Jann's model-based variances (the source's), asked for explicitly.
    let spec = InferenceSpec {
        vce: Vce::Model,
        ..InferenceSpec::delta(0.95)
    };
    let cov = plain_covariates(&case, &["AGE", "INCOME", "INCOMESQ"]);
    let out = run_spec(&case, &cov, Coefficients::Reference, &spec, None).unwrap();
    assert!(
        out.estimates
            .iter()
            .all(|e| e.se_method == SeMethod::DeltaModel)
    );
    for q in ["endowments", "coefficients", "interaction"] {
        let se = out
            .estimates
            .iter()
            .find(|r| r.quantity == q && r.factor.is_none())
            .unwrap()
            .se
            .unwrap();
        // Published to two decimals.
        assert!((se - e[q].as_f64().unwrap()).abs() < 0.006, "{q}: {se}");
    }
}

fn chicago_wage() -> Case {
    let cols = [
        "ln.real.wage",
        "age",
        "female",
        "LTHS",
        "some.college",
        "college",
        "advanced.degree",
        "foreign.born",
    ];
    let data = complete(&read_csv("oaxaca/chicago.csv"), &cols);
    Case {
        y: data["ln.real.wage"].iter().map(|v| v.exp()).collect(),
        // R's group A (foreign.born = 0) is our comparison group.
        group: data["foreign.born"]
            .iter()
            .map(|&v| u32::from(v == 0.0))
            .collect(),
        data,
    }
}

#[test]
fn chicago_matches_the_r_oaxaca_vignette_for_every_weight() {
    let case = chicago_wage();
    let e = &expected()["chicago_wage"];
    let n_a = case.group.iter().filter(|g| **g == 1).count();
    assert_eq!(n_a, 287);
    assert_eq!(case.group.len() - n_a, 379);
    let x = [
        "age",
        "female",
        "LTHS",
        "some.college",
        "college",
        "advanced.degree",
    ];
    for (name, c) in ALL {
        let out = run(&case, &x, vec![], c);
        close(
            get(&out, "gap", None, None),
            e["gap"].as_f64().unwrap(),
            1e-6,
        );
        for q in ["endowments", "coefficients", "interaction"] {
            close(
                get(&out, q, None, None),
                e["threefold"][q].as_f64().unwrap(),
                1e-6,
            );
        }
        let two = &e["twofold"][name];
        close(
            get(&out, "explained", None, None),
            two[0].as_f64().unwrap(),
            1e-6,
        );
        close(
            get(&out, "unexplained", None, None),
            two[1].as_f64().unwrap(),
            1e-6,
        );
    }
}

fn chicago_normalized(base: &str) -> MethodOutput {
    let levels = [
        "LTHS",
        "high.school",
        "some.college",
        "college",
        "advanced.degree",
    ];
    let mut cols = vec!["ln.real.wage", "age", "female"];
    cols.extend(levels);
    let data = complete(&read_csv("oaxaca/chicago.csv"), &cols);
    let case = Case {
        y: data["ln.real.wage"].clone(),
        // Stata's group 1 (female = 0) is our comparison group.
        group: data["female"]
            .iter()
            .map(|&v| u32::from(v == 0.0))
            .collect(),
        data,
    };
    let mut x = vec!["age"];
    x.extend(levels.iter().filter(|l| **l != base));
    let cat = Categorical {
        variable: "education".into(),
        factor: "other".into(),
        base: base.into(),
        columns: (1..x.len()).collect(),
    };
    run(&case, &x, vec![cat], Coefficients::Pooled)
}

#[test]
fn chicago_normalized_matches_stata_under_two_base_levels() {
    let e = &expected()["chicago_normalized"];
    let a = chicago_normalized("high.school");
    let b = chicago_normalized("LTHS");
    for out in [&a, &b] {
        close(
            get(out, "gap", None, None),
            e["gap"].as_f64().unwrap(),
            1e-5,
        );
        for q in ["endowments", "coefficients", "interaction"] {
            close(
                get(out, q, None, None),
                e["threefold"][q].as_f64().unwrap(),
                1e-4,
            );
        }
        close(
            get(out, "explained", None, None),
            e["pooled"][0].as_f64().unwrap(),
            1e-4,
        );
        close(
            get(out, "unexplained", None, None),
            e["pooled"][1].as_f64().unwrap(),
            1e-5,
        );
        let d = &e["coefficients_detail"];
        close(
            get(out, "coefficients", Some("demographic"), Some("age")),
            d["age"].as_f64().unwrap(),
            1e-4,
        );
        close(
            get(out, "coefficients", Some("other"), Some("LTHS")),
            d["LTHS"].as_f64().unwrap(),
            1e-4,
        );
        close(
            get(
                out,
                "coefficients",
                Some("(intercept)"),
                Some("(intercept)"),
            ),
            d["(intercept)"].as_f64().unwrap(),
            1e-5,
        );
    }
    // Every detailed row is the same under both bases (rows are keyed by name).
    for r in &a.estimates {
        let other = b
            .estimates
            .iter()
            .find(|s| s.quantity == r.quantity && s.factor == r.factor && s.term == r.term)
            .unwrap();
        assert!(
            (r.estimate - other.estimate).abs() < 1e-10,
            "{r:?} vs {other:?}"
        );
        let (sa, sb) = (r.se.unwrap(), other.se.unwrap());
        // Relative 1e-8, with a floor for the identically zero part (SE ~1e-14).
        assert!((sa - sb).abs() < 1e-8 * sa.max(1e-6), "{r:?} vs {other:?}");
    }
}

#[test]
fn parts_add_up_for_every_coefficient_choice() {
    let case = chicago_wage();
    let x = [
        "age",
        "female",
        "LTHS",
        "some.college",
        "college",
        "advanced.degree",
    ];
    for (name, c) in ALL {
        let out = run(&case, &x, vec![], c);
        let gap = get(&out, "gap", None, None);
        let sum = |q: &str| get(&out, q, None, None);
        close(sum("explained") + sum("unexplained"), gap, 1e-12);
        close(
            sum("endowments") + sum("coefficients") + sum("interaction"),
            gap,
            1e-12,
        );
        close(
            sum("unexplained_comparison") + sum("unexplained_reference"),
            sum("unexplained"),
            1e-12,
        );
        // Blocks sum to totals, terms sum to blocks.
        for q in [
            "explained",
            "unexplained",
            "endowments",
            "coefficients",
            "interaction",
        ] {
            let blocks: f64 = out
                .estimates
                .iter()
                .filter(|e| e.quantity == q && e.factor.is_some() && e.term.is_none())
                .map(|e| e.estimate)
                .sum();
            close(blocks, sum(q), 1e-10);
            for block in out
                .estimates
                .iter()
                .filter(|e| e.quantity == q && e.factor.is_some() && e.term.is_none())
            {
                let terms: f64 = out
                    .estimates
                    .iter()
                    .filter(|e| e.quantity == q && e.factor == block.factor && e.term.is_some())
                    .map(|e| e.estimate)
                    .sum();
                assert!(
                    (terms - block.estimate).abs() < 1e-10,
                    "{name} {q} {block:?}"
                );
            }
        }
        if c == Coefficients::Pooled {
            // Jann: with the group indicator, the reference group's part is exactly 0.
            assert!(sum("unexplained_reference").abs() < 1e-9);
        }
    }
}

/// Weights: weight 2 on a row gives the same decomposition as the row entered
/// twice (point estimates; the SEs treat weights as analytic weights, with the
/// residual variance over rows as statsmodels' WLS does).
#[test]
fn weights_of_two_equal_duplicated_rows() {
    let case = ccard();
    let x = ["AGE", "INCOME", "INCOMESQ"];
    let n = case.y.len();
    let w: Vec<f64> = (0..n).map(|i| if i % 3 == 0 { 2.0 } else { 1.0 }).collect();
    let dup: Vec<usize> = (0..n)
        .flat_map(|i| std::iter::repeat_n(i, w[i] as usize))
        .collect();
    let pick = |v: &[f64]| dup.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let dcase = Case {
        data: case
            .data
            .iter()
            .map(|(k, v)| (k.clone(), pick(v)))
            .collect(),
        y: pick(&case.y),
        group: dup.iter().map(|&i| case.group[i]).collect(),
    };
    for (_, c) in ALL {
        let (cw, cd) = (plain_covariates(&case, &x), plain_covariates(&dcase, &x));
        let input = |case: &'_ Case, cov: &'_ Covariates, weights: Option<&'_ [f64]>| {
            linear(
                &LinearInput {
                    sample: &Sample {
                        labels: ["r", "c"],
                        weights,
                        cluster: None,
                        min_cell: 11,
                        ..Sample::new(&case.y, &case.group)
                    },
                    covariates: cov,
                    coefficients: c,
                    threefold: true,
                    normalize: true,
                    hospital_effects: Default::default(),
                },
                &InferenceSpec::delta(0.95),
                &|| {},
            )
            .unwrap()
        };
        let a = input(&case, &cw, Some(&w));
        let b = input(&dcase, &cd, None);
        for (ra, rb) in a.estimates.iter().zip(&b.estimates) {
            assert_eq!((&ra.quantity, &ra.term), (&rb.quantity, &rb.term));
            assert!(
                (ra.estimate - rb.estimate).abs() < 1e-8 * (1.0 + rb.estimate.abs()),
                "{ra:?} {rb:?}"
            );
        }
    }
}

fn plain_covariates(case: &Case, x: &[&str]) -> Covariates {
    Covariates {
        columns: x
            .iter()
            .map(|c| Column {
                name: c.to_string(),
                factor: "f".into(),
                values: case.data[*c].to_vec(),
            })
            .collect(),
        categoricals: vec![],
        absorbed: None,
    }
}

fn robust_expected() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/golden/oaxaca_robust/expected.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A row by quantity and term (None: the total).
fn row<'a>(out: &'a MethodOutput, q: &str, t: Option<&str>) -> &'a healthgap_decompose::Estimate {
    out.estimates
        .iter()
        .find(|e| e.quantity == q && e.term.as_deref() == t && (t.is_some() || e.factor.is_none()))
        .unwrap_or_else(|| panic!("no row {q} {t:?}"))
}

/// Estimate and SE against a golden [est, se]: relative 1e-6, or below 1e-8
/// where the golden SE is 0 (Jann's identity).
fn check_pair(r: &healthgap_decompose::Estimate, g: &serde_json::Value, what: &str) {
    let (est, se) = (g[0].as_f64().unwrap(), g[1].as_f64().unwrap());
    assert!(
        (r.estimate - est).abs() < 1e-8 * est.abs().max(1.0),
        "{what}: estimate {} vs {est}",
        r.estimate
    );
    let ours = r.se.unwrap_or_else(|| panic!("{what}: no SE"));
    if se < 1e-8 {
        assert!(ours < 1e-8, "{what}: SE {ours} of an identically zero part");
    } else {
        assert!(
            (ours - se).abs() < 1e-6 * se,
            "{what}: SE {ours} vs stacked influence functions {se}"
        );
    }
}

/// The robust (unclustered) delta method against an independent Python
/// computation of the stacked influence functions (checked there against the
/// derivatives of weighted refits with respect to every row's weight):
/// tests/golden/oaxaca_robust. Every β*, the twofold totals, the threefold
/// split and every detailed row.
#[test]
fn robust_delta_method_matches_the_stacked_influence_functions() {
    let golden = robust_expected();
    for (key, case) in [("ccard", ccard()), ("chicago_wage", chicago_wage())] {
        let g = &golden[key];
        let columns: Vec<String> = g["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        let cov = plain_covariates(&case, &names);
        for (name, c) in ALL {
            let out = run_spec(&case, &cov, c, &InferenceSpec::delta(0.95), None).unwrap();
            let gc = &g[name];
            for q in [
                "gap",
                "explained",
                "unexplained",
                "unexplained_comparison",
                "unexplained_reference",
            ] {
                check_pair(row(&out, q, None), &gc[q], &format!("{key} {name} {q}"));
            }
            for q in ["explained", "unexplained"] {
                for (term, pair) in gc["detail"][q].as_object().unwrap() {
                    check_pair(
                        row(&out, q, Some(term)),
                        pair,
                        &format!("{key} {name} {q} {term}"),
                    );
                }
            }
            assert!(
                out.estimates
                    .iter()
                    .all(|e| e.se_method == SeMethod::DeltaRobust),
                "{key} {name}: every row says delta-robust"
            );
            if c == Coefficients::Reference {
                for q in ["endowments", "coefficients", "interaction"] {
                    check_pair(
                        row(&out, q, None),
                        &g["threefold"][q],
                        &format!("{key} threefold {q}"),
                    );
                }
            }
        }
    }
}

/// The robust variance is the infinitesimal jackknife over rows: the analytic
/// influence functions against central differences of whole weighted refits
/// (the public API) with respect to each row's weight, for every β* and every
/// row (shares and cotton's λ included).
#[test]
fn robust_delta_method_equals_derivatives_of_weighted_refits() {
    let case = ccard();
    let cov = plain_covariates(&case, &["AGE", "INCOME", "INCOMESQ"]);
    let n = case.y.len();
    for (name, c) in ALL {
        let robust = run_spec(&case, &cov, c, &InferenceSpec::delta(0.95), None).unwrap();
        let at = |w: &[f64]| -> Vec<f64> {
            let input = LinearInput {
                sample: &Sample {
                    labels: ["r", "c"],
                    weights: Some(w),
                    cluster: None,
                    min_cell: 11,
                    ..Sample::new(&case.y, &case.group)
                },
                covariates: &cov,
                coefficients: c,
                threefold: true,
                normalize: true,
                hospital_effects: Default::default(),
            };
            let boot = InferenceSpec {
                method: Method::Bootstrap,
                replicates: 2,
                ..InferenceSpec::delta(0.95)
            };
            let out = linear(&input, &boot, &|| {}).unwrap();
            out.estimates.iter().map(|e| e.estimate).collect()
        };
        let h = 1e-5;
        let mut var = vec![0.0; robust.estimates.len()];
        for i in 0..n {
            let (mut up, mut down) = (vec![1.0; n], vec![1.0; n]);
            up[i] += h;
            down[i] -= h;
            for (v, (u, d)) in var.iter_mut().zip(at(&up).iter().zip(at(&down))) {
                *v += ((u - d) / (2.0 * h)).powi(2);
            }
        }
        // Differences of refits carry rounding noise of about 10⁻⁸ of the
        // largest SE (visible on the identically zero part).
        let scale = robust
            .estimates
            .iter()
            .filter_map(|e| e.se)
            .fold(0.0, f64::max);
        for (r, v) in robust.estimates.iter().zip(&var) {
            let numeric = (v * n as f64 / (n as f64 - 1.0)).sqrt();
            let ours = r.se.unwrap();
            assert!(
                (ours - numeric).abs() <= 1e-5 * numeric + 1e-7 * scale,
                "{name} {} {:?} {:?}: analytic {ours} vs weighted refits {numeric}",
                r.quantity,
                r.factor,
                r.term
            );
        }
    }
}

/// Jann's identity: with pooled β* the reference part of the unexplained gap,
/// x̄_r'(β* − b_r), is identically 0, so on every inference path its SE is 0.
#[test]
fn an_identically_zero_part_has_standard_error_zero_on_every_path() {
    let case = ccard();
    let cov = plain_covariates(&case, &["AGE", "INCOME", "INCOMESQ"]);
    let n = case.y.len();
    let clusters: Vec<u32> = (0..n as u32).map(|i| i % 12).collect();
    let boot = InferenceSpec {
        method: Method::Bootstrap,
        replicates: 199,
        seed: 3,
        ..InferenceSpec::delta(0.95)
    };
    let cluster_delta = InferenceSpec {
        vce: Vce::Cluster,
        ..InferenceSpec::delta(0.95)
    };
    let paths: [(&str, &InferenceSpec, Option<Cluster<'_>>); 4] = [
        ("robust delta", &InferenceSpec::delta(0.95), None),
        (
            "cluster delta",
            &cluster_delta,
            Some(Cluster {
                name: "c",
                codes: &clusters,
                count: 12,
            }),
        ),
        ("row bootstrap", &boot, None),
        (
            "cluster bootstrap",
            &boot,
            Some(Cluster {
                name: "c",
                codes: &clusters,
                count: 12,
            }),
        ),
    ];
    for (what, spec, cluster) in paths {
        let out = run_spec(&case, &cov, Coefficients::Pooled, spec, cluster).unwrap();
        let r = row(&out, "unexplained_reference", None);
        assert!(r.estimate.abs() < 1e-8, "{what}: {}", r.estimate);
        let se = r.se.unwrap();
        assert!(se <= 1e-8, "{what}: SE {se} of an identically zero part");
        // The other parts do have sampling variance.
        assert!(row(&out, "unexplained", None).se.unwrap() > 1.0, "{what}");
    }
}

/// `vce = model` is refused where it is not derived (β* fitted on the same rows
/// as the group models), with the way out in the message.
#[test]
fn model_variances_are_refused_for_pooled_and_neumark() {
    let case = ccard();
    let cov = plain_covariates(&case, &["AGE", "INCOME", "INCOMESQ"]);
    let spec = InferenceSpec {
        vce: Vce::Model,
        ..InferenceSpec::delta(0.95)
    };
    for c in [Coefficients::Pooled, Coefficients::Neumark] {
        let err = run_spec(&case, &cov, c, &spec, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vce = \"robust\""), "{err}");
    }
    for c in [
        Coefficients::Reference,
        Coefficients::Comparison,
        Coefficients::Reimers,
        Coefficients::Cotton,
    ] {
        assert!(run_spec(&case, &cov, c, &spec, None).is_ok());
    }
}
