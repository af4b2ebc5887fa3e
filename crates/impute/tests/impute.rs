//! Chained equations: donors, types, determinism, MCAR recovery, bad input.

use healthgap_impute::{
    ClusterTerm, ImputeError, Input, MISSING, Method, Settings, Values, Variable, impute, rubin,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A cohort of n rows: x continuous, b binary, c categorical (3 levels), y
/// an outcome, g a group (2 strata), h a cluster (20); x, b, c missing
/// completely at random with probability `rate`.
struct Data {
    x: Vec<f64>,
    b: Vec<f64>,
    c: Vec<u32>,
    y: Vec<f64>,
    g: Vec<u32>,
    h: Vec<u32>,
    complete: (Vec<f64>, Vec<f64>, Vec<u32>),
}

fn data(n: usize, rate: f64, seed: u64) -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut d = Data {
        x: vec![],
        b: vec![],
        c: vec![],
        y: vec![],
        g: vec![],
        h: vec![],
        complete: (vec![], vec![], vec![]),
    };
    for _ in 0..n {
        let g = u32::from(rng.random::<f64>() < 0.4);
        let h = rng.random_range(0..20u32);
        let z: f64 = StandardNormal.sample(&mut rng);
        let x = 1.0 + 0.5 * f64::from(g) + z;
        let b = f64::from(u8::from(
            rng.random::<f64>() < 1.0 / (1.0 + (-(x - 1.0)).exp()),
        ));
        let u: f64 = rng.random();
        let c = if u < 0.5 {
            0
        } else if u < 0.5 + 0.2 * (1.0 + b) {
            1
        } else {
            2
        };
        let e: f64 = StandardNormal.sample(&mut rng);
        let y = 2.0 + x + 0.5 * b + 0.3 * f64::from(c) + 0.4 * f64::from(g) + e;
        d.complete.0.push(x);
        d.complete.1.push(b);
        d.complete.2.push(c);
        let miss = |rng: &mut ChaCha8Rng| rng.random::<f64>() < rate;
        d.x.push(if miss(&mut rng) { f64::NAN } else { x });
        d.b.push(if miss(&mut rng) { f64::NAN } else { b });
        d.c.push(if miss(&mut rng) { MISSING } else { c });
        d.y.push(y);
        d.g.push(g);
        d.h.push(h);
    }
    d
}

fn input<'a>(d: &'a Data, by_group: bool) -> Input<'a> {
    let var = |name: &str, values, impute| Variable {
        name: name.into(),
        values,
        impute,
        predictor: true,
        cluster_mean: true,
    };
    Input {
        variables: vec![
            var("x", Values::Numeric(&d.x), Some(Method::Auto)),
            var("b", Values::Numeric(&d.b), Some(Method::Auto)),
            var(
                "c",
                Values::Categorical {
                    codes: &d.c,
                    levels: 3,
                },
                Some(Method::Auto),
            ),
            var("y", Values::Numeric(&d.y), None),
        ],
        strata: by_group.then(|| (d.g.as_slice(), vec!["white".into(), "black".into()])),
        cluster: Some((&d.h, 20)),
        cluster_term: ClusterTerm::Means,
        visit: Vec::new(),
    }
}

fn settings(m: usize) -> Settings {
    Settings {
        m,
        iterations: 5,
        seed: 11,
        donors: 5,
    }
}

#[test]
fn pmm_takes_observed_values_of_the_same_group_and_logits_give_valid_codes() {
    let d = data(3000, 0.2, 1);
    let imp = impute(&input(&d, true), &settings(3)).expect("imputes");
    assert_eq!(imp.imputed.len(), 3);
    let x = &imp.imputed[0];
    assert_eq!(x.method, Method::Pmm);
    for l in 0..3 {
        for (&row, v) in x.rows.iter().zip(x.imputation(l)) {
            let g = d.g[row as usize];
            assert!(
                d.x.iter()
                    .zip(&d.g)
                    .any(|(o, og)| *og == g && o.to_bits() == v.to_bits()),
                "{v} is not an observed x of group {g}"
            );
        }
    }
    assert_eq!(imp.imputed[1].method, Method::Logistic);
    assert!(imp.imputed[1].values.iter().all(|v| *v == 0.0 || *v == 1.0));
    assert_eq!(imp.imputed[2].method, Method::Multinomial);
    assert!(
        imp.imputed[2]
            .values
            .iter()
            .all(|v| [0.0, 1.0, 2.0].contains(v))
    );
    // Each imputation's trace has one mean per iteration.
    assert!(
        x.trace
            .iter()
            .all(|t| t.len() == 5 && t.iter().all(|v| v.is_finite()))
    );
    // Imputations differ from each other.
    assert_ne!(x.imputation(0), x.imputation(1));
}

#[test]
fn seeded_reruns_and_thread_counts_give_identical_imputations() {
    let d = data(2000, 0.25, 2);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool")
        .install(|| impute(&input(&d, true), &settings(4)).expect("imputes"));
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool")
        .install(|| impute(&input(&d, true), &settings(4)).expect("imputes"));
    let again = impute(&input(&d, true), &settings(4)).expect("imputes");
    for ((a, b), c) in one.imputed.iter().zip(&two.imputed).zip(&again.imputed) {
        assert_eq!(a.values, b.values);
        assert_eq!(a.values, c.values);
        assert_eq!(a.trace, b.trace);
    }
    let other = impute(
        &input(&d, true),
        &Settings {
            seed: 12,
            ..settings(4)
        },
    )
    .expect("imputes");
    assert_ne!(other.imputed[0].values, one.imputed[0].values);
}

/// The mean of x and the share with b = 1, pooled over imputations, against
/// the complete data, under MCAR.
#[test]
fn under_mcar_the_pooled_means_match_the_complete_data() {
    let d = data(6000, 0.3, 3);
    let imp = impute(&input(&d, true), &settings(10)).expect("imputes");
    for (t, complete) in [(0usize, &d.complete.0), (1, &d.complete.1)] {
        let target = &imp.imputed[t];
        let observed: Vec<f64> = match t {
            0 => d.x.clone(),
            _ => d.b.clone(),
        };
        let n = observed.len() as f64;
        let (q, u): (Vec<f64>, Vec<f64>) = (0..imp.m)
            .map(|l| {
                let mut v = observed.clone();
                for (&r, x) in target.rows.iter().zip(target.imputation(l)) {
                    v[r as usize] = *x;
                }
                let mean = v.iter().sum::<f64>() / n;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
                (mean, var / n)
            })
            .unzip();
        let pooled = rubin(&q, &u, n - 1.0);
        let truth = complete.iter().sum::<f64>() / n;
        // The complete-data mean is within 2 pooled SEs (the imputation adds
        // variance around the complete data, not bias).
        assert!(
            (pooled.estimate - truth).abs() < 2.5 * pooled.se(),
            "{t}: pooled {} vs complete {truth} (se {})",
            pooled.estimate,
            pooled.se()
        );
        assert!(pooled.between > 0.0 && pooled.fmi > 0.0 && pooled.fmi < 1.0);
    }
    // The category shares too.
    let c = &imp.imputed[2];
    let share =
        |codes: &[u32]| codes.iter().filter(|&&k| k == 1).count() as f64 / codes.len() as f64;
    let mut mean = 0.0;
    for l in 0..imp.m {
        let mut v = d.c.clone();
        for (&r, x) in c.rows.iter().zip(c.imputation(l)) {
            v[r as usize] = *x as u32;
        }
        mean += share(&v) / imp.m as f64;
    }
    assert!((mean - share(&d.complete.2)).abs() < 0.02, "{mean}");
}

#[test]
fn a_perfect_predictor_falls_back_to_pmm_with_a_warning() {
    let mut d = data(1500, 0.2, 4);
    // b = 1 exactly when x > 1: separation in b's logistic model.
    for i in 0..d.b.len() {
        if !d.b[i].is_nan() {
            d.b[i] = f64::from(u8::from(d.complete.0[i] > 1.0));
        }
        d.x[i] = d.complete.0[i];
    }
    let imp = impute(&input(&d, false), &settings(2)).expect("imputes");
    assert!(
        imp.warnings.iter().any(|w| w.contains("`b`")
            && w.contains("separation")
            && w.contains("predictive mean matching")),
        "{:?}",
        imp.warnings
    );
    assert!(
        imp.imputed
            .iter()
            .find(|t| t.name == "b")
            .expect("b")
            .values
            .iter()
            .all(|v| *v == 0.0 || *v == 1.0)
    );
}

#[test]
fn the_visit_sequence_orders_the_chain_and_keeps_each_variable_its_own_rows() {
    let d = data(1500, 0.2, 8);
    let plain = impute(&input(&d, true), &settings(2)).expect("imputes");
    let mut reordered = input(&d, true);
    reordered.visit = vec!["c".into(), "x".into()];
    let visited = impute(&reordered, &settings(2)).expect("imputes");
    let names: Vec<&str> = visited.imputed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c", "x", "b"]);
    for t in &visited.imputed {
        let same = plain
            .imputed
            .iter()
            .find(|p| p.name == t.name)
            .expect("same variable");
        assert_eq!(t.rows, same.rows);
        assert_eq!(t.variable, same.variable);
    }
    // Another order is another chain.
    let x = |i: &healthgap_impute::Imputations| {
        i.imputed
            .iter()
            .find(|t| t.name == "x")
            .expect("x")
            .values
            .clone()
    };
    assert_ne!(x(&plain), x(&visited));
}

#[test]
fn a_variable_missing_for_a_whole_group_is_an_error_that_names_it() {
    let mut d = data(500, 0.1, 5);
    for i in 0..d.x.len() {
        if d.g[i] == 1 {
            d.x[i] = f64::NAN;
        }
    }
    let err = impute(&input(&d, true), &settings(2)).expect_err("refused");
    assert!(matches!(err, ImputeError::AllMissing { .. }));
    let text = err.to_string();
    assert!(text.contains("`x`") && text.contains("black"), "{text}");
}

#[test]
fn one_imputation_is_refused_with_the_reason() {
    let d = data(200, 0.1, 6);
    let err = impute(&input(&d, true), &settings(1)).expect_err("refused");
    assert!(err.to_string().contains("m ≥ 2"), "{err}");
}

#[test]
fn a_model_that_does_not_fit_the_type_is_refused() {
    let d = data(200, 0.1, 7);
    let mut inp = input(&d, true);
    inp.variables[0].impute = Some(Method::Logistic);
    let err = impute(&inp, &settings(2)).expect_err("refused");
    assert!(err.to_string().contains("0/1 variables only"), "{err}");
}
