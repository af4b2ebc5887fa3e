//! The super learner: its weights are a convex combination, its
//! cross-validated loss is no worse than the best member's, and on new data
//! it does about as well as the best member.

use healthgap_learn::loss::loss;
use healthgap_learn::{
    ElasticNetSpec, Family, Fitted, ForestSpec, GlmSpec, Learner, LearnerConfig, LearnerKind,
    SuperLearner, Task,
};

use crate::common::{TOL_SUM, TOL_SUPER_LEARNER, nonlinear};

fn library() -> Vec<Box<dyn Learner>> {
    vec![
        Box::new(GlmSpec::default()),
        Box::new(ElasticNetSpec::default()),
        Box::new(ForestSpec {
            trees: 60,
            ..ForestSpec::default()
        }),
    ]
}

#[test]
fn super_learner_weights_are_convex_and_its_cv_loss_is_no_worse_than_the_best() {
    for family in [Family::Binary, Family::Continuous] {
        let train = nonlinear(2500, 30, family, 21);
        let test = nonlinear(4000, 30, family, 22);
        let task = Task::new(&train.x, &train.y, family)
            .expect("task")
            .with_weights(&train.w)
            .expect("weights")
            .with_clusters(&train.clusters)
            .expect("clusters");
        let sl = SuperLearner::new(library(), 5).expect("library");
        let fit = sl.fit_ensemble(&task, 5).expect("fit");
        let report = fit.summary().expect("report").clone();
        let weights: Vec<f64> = report.members.iter().map(|m| m.weight).collect();
        assert!(weights.iter().all(|a| *a >= 0.0), "{weights:?}");
        assert!(
            (weights.iter().sum::<f64>() - 1.0).abs() < TOL_SUM,
            "{weights:?}"
        );
        let best = report
            .members
            .iter()
            .map(|m| m.cv_loss)
            .fold(f64::INFINITY, f64::min);
        assert!(
            report.cv_loss <= best + TOL_SUPER_LEARNER,
            "{family:?}: ensemble {} vs best {best}",
            report.cv_loss
        );
        // The forest carries the nonlinear signal.
        assert!(weights[2] > 0.5, "{family:?}: {weights:?}");
        // On new data: within 2% of the best single learner refitted on all rows.
        let sl_test = loss(
            family,
            &test.y,
            &fit.predict(&test.x).expect("p"),
            Some(&test.w),
        );
        let single_best = library()
            .iter()
            .map(|l| {
                let f = l.fit(&task, 5).expect("fit");
                loss(
                    family,
                    &test.y,
                    &f.predict(&test.x).expect("p"),
                    Some(&test.w),
                )
            })
            .fold(f64::INFINITY, f64::min);
        assert!(
            sl_test <= single_best * 1.02,
            "{family:?}: held-out super learner {sl_test} vs best single {single_best}"
        );
        let json = serde_json::to_string(fit.report()).expect("serialize");
        assert!(json.contains("\"weight\""));
    }
}

#[test]
fn super_learner_from_config_is_seeded_and_thread_count_invariant() {
    let sim = nonlinear(1200, 20, Family::Binary, 31);
    let task = Task::new(&sim.x, &sim.y, Family::Binary)
        .expect("task")
        .with_clusters(&sim.clusters)
        .expect("clusters");
    let mut config = LearnerConfig::default();
    config.learner = LearnerKind::SuperLearner;
    config.forest.trees = 30;
    let learner = config.build().expect("learner");
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(|| {
                learner
                    .fit(&task, 3)
                    .expect("fit")
                    .predict(&sim.x)
                    .expect("p")
            })
    };
    let (a, b) = (run(1), run(2));
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}
