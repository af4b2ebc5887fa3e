//! Cross-fitting: out-of-fold predictions by cluster folds, and the bad
//! inputs a fold can meet (no events, a constant column, NaN).

use healthgap_learn::{
    Family, Folds, ForestSpec, GlmSpec, LearnError, LearnWarning, Learner, LearnerConfig,
    LearnerKind, Matrix, Task, cross_fit,
};

use crate::common::nonlinear;

#[test]
fn out_of_fold_predictions_come_from_the_other_folds() {
    let sim = nonlinear(800, 25, Family::Continuous, 41);
    let task = Task::new(&sim.x, &sim.y, Family::Continuous)
        .expect("task")
        .with_weights(&sim.w)
        .expect("weights");
    let folds = Folds::by_cluster(&sim.clusters, 5, 8).expect("folds");
    let cf = cross_fit(&GlmSpec::default(), &task, &folds, 1).expect("cross-fit");
    for v in 0..5 {
        let train = task.select_rows(&folds.train_rows(v));
        let fit = GlmSpec::default().fit(&train.task(), 0).expect("fit");
        let test = folds.test_rows(v);
        let p = fit.predict(&sim.x.select_rows(&test)).expect("predict");
        for (k, &i) in test.iter().enumerate() {
            assert!((cf.predictions[i] - p[k]).abs() < 1e-12);
        }
    }
    assert_eq!(cf.reports.len(), 5);
    assert!(cf.loss.is_finite());
}

#[test]
fn a_fold_without_events_gets_a_named_warning_and_a_constant() {
    // Events only in cluster 0: the fold holding cluster 0 leaves training
    // rows without events.
    let sim = nonlinear(600, 10, Family::Binary, 42);
    let y: Vec<f64> = (0..600)
        .map(|i| f64::from(u8::from(sim.clusters[i] == 0 && i % 2 == 0)))
        .collect();
    let task = Task::new(&sim.x, &y, Family::Binary).expect("task");
    let folds = Folds::by_cluster(&sim.clusters, 5, 3).expect("folds");
    let v0 = folds.assignment()[(0..600).find(|&i| sim.clusters[i] == 0).expect("row")] as usize;
    for kind in [
        LearnerKind::Glm,
        LearnerKind::ElasticNet,
        LearnerKind::Forest,
        LearnerKind::SuperLearner,
    ] {
        let mut config = LearnerConfig::default();
        config.forest.trees = 10;
        let learner = config.build_kind(kind).expect("learner");
        let cf = cross_fit(learner.as_ref(), &task, &folds, 2).expect("no panic, no error");
        let single: Vec<&LearnWarning> = cf
            .warnings
            .iter()
            .filter(|w| matches!(w, LearnWarning::SingleClass { class: 0, .. }))
            .collect();
        assert!(!single.is_empty(), "{kind:?}: {:?}", cf.warnings);
        assert!(single[0].to_string().contains(&format!("fold {}", v0 + 1)));
        for i in folds.test_rows(v0) {
            assert!(cf.predictions[i] > 0.0 && cf.predictions[i] < 0.01);
        }
        assert!(cf.loss.is_finite());
    }
}

#[test]
fn a_constant_column_is_named_and_ignored() {
    let sim = nonlinear(500, 10, Family::Binary, 43);
    let mut cols: Vec<(String, Vec<f64>)> = (0..sim.x.ncols())
        .map(|j| (sim.x.names()[j].clone(), sim.x.column(j).to_vec()))
        .collect();
    cols.push(("teaching".into(), vec![1.0; 500]));
    let x = Matrix::from_columns(cols).expect("matrix");
    let task = Task::new(&x, &sim.y, Family::Binary).expect("task");
    for kind in [
        LearnerKind::Glm,
        LearnerKind::ElasticNet,
        LearnerKind::Forest,
        LearnerKind::SuperLearner,
    ] {
        let mut config = LearnerConfig::default();
        config.forest.trees = 10;
        let fit = config
            .build_kind(kind)
            .expect("learner")
            .fit(&task, 1)
            .expect("fit");
        assert!(
            fit.report().warnings.iter().any(
                |w| matches!(w, LearnWarning::ConstantColumn { column } if column == "teaching")
            ),
            "{kind:?}: {:?}",
            fit.report().warnings
        );
        let p = fit.predict(&x).expect("predict");
        assert!(p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    }
}

#[test]
fn separation_falls_back_to_a_ridge_logit() {
    let x = Matrix::from_rows(&(0..40).map(|i| vec![f64::from(i)]).collect::<Vec<_>>())
        .expect("matrix");
    let y: Vec<f64> = (0..40).map(|i| f64::from(u8::from(i >= 20))).collect();
    let task = Task::new(&x, &y, Family::Binary).expect("task");
    let fit = GlmSpec::default()
        .fit(&task, 0)
        .expect("fallback, not an error");
    assert!(
        fit.report()
            .warnings
            .iter()
            .any(|w| matches!(w, LearnWarning::Fallback { learner, .. } if learner == "glm"))
    );
    let p = fit.predict(&x).expect("predict");
    assert!(p[0] < 0.05 && p[39] > 0.95 && p.iter().all(|v| v.is_finite()));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let nan = Matrix::from_columns(vec![("adi".into(), vec![0.1, f64::NAN, 0.3])]);
    assert!(
        matches!(nan, Err(LearnError::NonFinite { ref column, row: 1, .. }) if column == "adi")
    );
    let x = Matrix::from_rows(&[vec![1.0], vec![2.0], vec![3.0]]).expect("matrix");
    assert!(Task::new(&x, &[0.0, f64::NAN, 1.0], Family::Continuous).is_err());
    assert!(Task::new(&x, &[0.0, 1.0], Family::Continuous).is_err());
    let task = Task::new(&x, &[0.0, 1.0, 1.0], Family::Binary).expect("task");
    let fit = ForestSpec::default().fit(&task, 1).expect("fit");
    let wide = Matrix::from_rows(&[vec![1.0, 2.0]]).expect("matrix");
    assert!(matches!(
        fit.predict(&wide),
        Err(LearnError::Dimension { .. })
    ));
    // Fewer clusters than folds.
    assert!(matches!(
        Folds::by_cluster(&[0, 1, 1], 5, 1),
        Err(LearnError::TooFewClusters { .. })
    ));
}

#[test]
fn a_learner_that_does_not_converge_falls_back_with_its_name() {
    let sim = nonlinear(400, 10, Family::Binary, 44);
    let task = Task::new(&sim.x, &sim.y, Family::Binary).expect("task");
    let stingy = healthgap_learn::ElasticNetSpec {
        lambda: Some(1e-4),
        max_passes: 1,
        tol: 1e-15,
        ..healthgap_learn::ElasticNetSpec::default()
    };
    assert!(matches!(
        stingy.fit(&task, 0),
        Err(LearnError::NotConverged { .. })
    ));
    let folds = Folds::by_cluster(&sim.clusters, 5, 1).expect("folds");
    let cf = cross_fit(&stingy, &task, &folds, 0).expect("fallback, not an error");
    assert_eq!(cf.warnings.len(), 5);
    assert!(cf.warnings.iter().all(|w| matches!(
        w,
        LearnWarning::Fallback { learner, .. } if learner == "elastic_net"
    )));
    assert!(cf.warnings[0].to_string().contains("did not converge"));
}
