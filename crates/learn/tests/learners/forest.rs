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
