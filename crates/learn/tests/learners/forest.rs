//! The random forest by its properties: seeded determinism, thread-count
//! invariance, and a smaller error than the main-effects GLM on a design with
//! a threshold and an interaction.

use healthgap_learn::loss::loss;
use healthgap_learn::{Detail, Family, Fitted, ForestSpec, GlmSpec, Learner, Task};

use crate::common::nonlinear;

fn small_forest() -> ForestSpec {
    ForestSpec {
        trees: 60,
        oob: true,
        ..ForestSpec::default()
    }
}

#[test]
fn forest_is_deterministic_given_its_seed() {
    let sim = nonlinear(1500, 20, Family::Binary, 1);
    let task = Task::new(&sim.x, &sim.y, Family::Binary).expect("task");
    let a = small_forest()
        .fit(&task, 42)
        .expect("fit")
        .predict(&sim.x)
        .expect("predict");
    let b = small_forest()
        .fit(&task, 42)
        .expect("fit")
        .predict(&sim.x)
        .expect("predict");
    let c = small_forest()
        .fit(&task, 43)
        .expect("fit")
        .predict(&sim.x)
        .expect("predict");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn forest_is_bit_identical_on_one_and_two_threads() {
    let sim = nonlinear(2000, 20, Family::Continuous, 2);
    let task = Task::new(&sim.x, &sim.y, Family::Continuous)
        .expect("task")
        .with_weights(&sim.w)
        .expect("weights");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            let fit = small_forest().fit_forest(&task, 7).expect("fit");
            let pred = fit.predict(&sim.x).expect("predict");
            let oob = fit.oob_predictions().expect("oob").to_vec();
            (pred, oob)
        })
    };
    let (p1, o1) = run(1);
    let (p2, o2) = run(2);
    assert!(p1.iter().zip(&p2).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(o1.iter().zip(&o2).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn forest_beats_the_glm_on_a_threshold_and_an_interaction() {
    for family in [Family::Binary, Family::Continuous] {
        let train = nonlinear(4000, 40, family, 3);
        let test = nonlinear(4000, 40, family, 4);
        let task = Task::new(&train.x, &train.y, family)
            .expect("task")
            .with_weights(&train.w)
            .expect("weights");
        let forest = ForestSpec {
            trees: 100,
            oob: true,
            ..ForestSpec::default()
        }
        .fit(&task, 11)
        .expect("forest");
        let glm = GlmSpec::default().fit(&task, 11).expect("glm");
        let lf = loss(
            family,
            &test.y,
            &forest.predict(&test.x).expect("p"),
            Some(&test.w),
        );
        let lg = loss(
            family,
            &test.y,
            &glm.predict(&test.x).expect("p"),
            Some(&test.w),
        );
        let glm_train = loss(
            family,
            &train.y,
            &glm.predict(&train.x).expect("p"),
            Some(&train.w),
        );
        let Detail::Forest {
            oob_loss: Some(oob),
            ..
        } = forest.report().detail
        else {
            panic!("no out-of-bag loss");
        };
        assert!(lf < lg, "{family:?}: held-out loss forest {lf} vs GLM {lg}");
        // Out of bag against the GLM's in-sample loss (which flatters the GLM).
        assert!(
            oob < glm_train,
            "{family:?}: OOB {oob} vs GLM in-sample {glm_train}"
        );
    }
}

#[test]
fn forest_weights_enter_the_leaf_means() {
    // One feature, no split possible below 2·min_leaf rows: a single leaf
    // whose value is the weighted mean.
    let x = healthgap_learn::Matrix::from_rows(&[vec![0.0], vec![0.0], vec![0.0], vec![0.0]])
        .expect("matrix");
    let y = [0.0, 0.0, 1.0, 1.0];
    let w = [1.0, 1.0, 3.0, 3.0];
    let task = Task::new(&x, &y, Family::Continuous)
        .expect("task")
        .with_weights(&w)
        .expect("weights");
    let spec = ForestSpec {
        trees: 1,
        replace: false,
        ..ForestSpec::default()
    };
    let p = spec
        .fit(&task, 1)
        .expect("fit")
        .predict(&x)
        .expect("predict");
    assert!((p[0] - 0.75).abs() < 1e-15, "{}", p[0]);
}

/// `max_draws` caps each tree's sample (a subsampled forest) and
/// `min_leaf_sqrt` grows the leaves with it: the report gives the leaf size
/// ⌈c·√s⌉, the trees have fewer leaves, the fit stays bit-identical on one
/// and two threads, and the capped forest still beats the GLM held out.
#[test]
fn capped_draws_and_growing_leaves_are_declared_deterministic_and_still_learn() {
    let train = nonlinear(4000, 40, Family::Binary, 3);
    let test = nonlinear(4000, 40, Family::Binary, 4);
    let task = Task::new(&train.x, &train.y, Family::Binary)
        .expect("task")
        .with_weights(&train.w)
        .expect("weights");
    let capped = ForestSpec {
        trees: 60,
        max_draws: 1000,
        min_leaf_sqrt: Some(2.0),
        ..ForestSpec::default()
    };
    assert_eq!(capped.min_leaf_for(1000), 64, "⌈2·√1000⌉ = 64");
    assert_eq!(capped.min_leaf_for(4), 5, "never below min_leaf");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| capped.fit_forest(&task, 9).expect("fit"))
    };
    let (one, two) = (run(1), run(2));
    let (p1, p2) = (
        one.predict(&test.x).expect("p"),
        two.predict(&test.x).expect("p"),
    );
    assert!(p1.iter().zip(&p2).all(|(a, b)| a.to_bits() == b.to_bits()));
    let leaves = |f: &dyn Fitted| match f.report().detail {
        Detail::Forest {
            min_leaf,
            mean_leaves,
            ..
        } => (min_leaf, mean_leaves),
        _ => panic!("not a forest"),
    };
    let (min_leaf, capped_leaves) = leaves(&one);
    assert_eq!(min_leaf, 64);
    let full = small_forest().fit(&task, 9).expect("full");
    let (full_min, full_leaves) = leaves(full.as_ref());
    assert_eq!(full_min, 5);
    // At most s/64 leaves of ≥ 64 draws from s = 1000 draws.
    assert!(capped_leaves <= 1000.0 / 64.0, "{capped_leaves}");
    assert!(capped_leaves < full_leaves / 10.0);
    let glm = GlmSpec::default().fit(&task, 9).expect("glm");
    let lf = loss(Family::Binary, &test.y, &p1, Some(&test.w));
    let lg = loss(
        Family::Binary,
        &test.y,
        &glm.predict(&test.x).expect("p"),
        Some(&test.w),
    );
    assert!(lf < lg, "capped forest {lf} vs GLM {lg}");
    let bad = ForestSpec {
        max_draws: 0,
        ..ForestSpec::default()
    };
    assert!(bad.validate().is_err());
    let bad = ForestSpec {
        min_leaf_sqrt: Some(f64::NAN),
        ..ForestSpec::default()
    };
    assert!(bad.validate().is_err());
}
