//! Out-of-fold predictions (cross-fitting): for each fold v, the learner is
//! fitted on the other folds and predicts fold v, so every row's prediction
//! comes from a model that did not see it (or, with cluster folds, its
//! hospital). These are the nuisance predictions of a cross-fitted doubly
//! robust estimator (Chernozhukov et al. 2018) and the level-one data of the
//! super learner (van der Laan, Polley & Hubbard 2007).
//!
//! A fold whose training rows hold one outcome class, or whose learner fails
//! on the data (no convergence, a singular design), gets a constant
//! prediction with a named warning instead of an error; errors in the input
//! itself (NaN, bad shapes, bad settings) stop the fit.

use rayon::prelude::*;

use crate::data::Task;
use crate::error::LearnError;
use crate::folds::Folds;
use crate::learner::{ConstantFit, FitReport, Fitted, Learner, fallback_value, single_class_fit};
use crate::loss::loss;
use crate::seed;
use crate::warning::LearnWarning;

/// Out-of-fold predictions with what each fold's fit reported.
#[derive(Debug, Clone)]
pub struct CrossFit {
    /// The prediction of every row from the fit that held its fold out.
    pub predictions: Vec<f64>,
    /// The weighted loss of the predictions (log loss or MSE).
    pub loss: f64,
    /// Each fold's fit report, in fold order.
    pub reports: Vec<FitReport>,
    /// Every fold's warnings, in fold order.
    pub warnings: Vec<LearnWarning>,
}

/// Whether an error is about the input (stop) rather than the fit (fall back).
fn is_input_error(e: &LearnError) -> bool {
    matches!(
        e,
        LearnError::NonFinite { .. }
            | LearnError::NotBinary { .. }
            | LearnError::BadWeight { .. }
            | LearnError::BadSetting { .. }
            | LearnError::Dimension { .. }
            | LearnError::TooFewClusters { .. }
    )
}

/// Fits `learner` on `task`, replacing a single-class target or a failed
/// fit by the constant [`fallback_value`] with a warning naming `context`.
pub fn fit_or_fallback(
    learner: &dyn Learner,
    task: &Task<'_>,
    seed: u64,
    context: &str,
) -> Result<Box<dyn Fitted>, LearnError> {
    if let Some(fit) = single_class_fit(task, learner.name(), context) {
        return Ok(Box::new(fit));
    }
    match learner.fit(task, seed) {
        Ok(fit) => Ok(fit),
        Err(e) if is_input_error(&e) => Err(e),
        Err(e) => {
            let value = fallback_value(task);
            let warning = LearnWarning::Fallback {
                learner: learner.name().to_string(),
                context: context.to_string(),
                reason: e.to_string(),
                fallback: format!("the weighted mean {value:.6}"),
            };
            Ok(Box::new(ConstantFit::new(
                value,
                task.x().ncols(),
                learner.name(),
                vec![warning],
            )))
        }
    }
}

/// One fold's held-out rows, their predictions and the fit's report.
type FoldOutput = (Vec<usize>, Vec<f64>, FitReport);

/// The out-of-fold predictions of `learner` over `folds`. Fold v's fit is
/// seeded with `seed::derive(seed, FIT_FOLD + v)`; folds run in parallel and
/// the result does not depend on the number of threads.
pub fn cross_fit(
    learner: &dyn Learner,
    task: &Task<'_>,
    folds: &Folds,
    seed: u64,
) -> Result<CrossFit, LearnError> {
    if folds.nrows() != task.nrows() {
        return Err(LearnError::Dimension {
            what: format!("{} fold codes for {} rows", folds.nrows(), task.nrows()),
        });
    }
    let per_fold: Vec<Result<FoldOutput, LearnError>> = (0..folds.k())
        .into_par_iter()
        .map(|v| {
            let train = task.select_rows(&folds.train_rows(v));
            let train = train.task();
            if (0..train.nrows()).all(|i| train.weight(i) == 0.0) {
                return Err(LearnError::Empty {
                    context: Some(format!("fold {}: no training row has weight", v + 1)),
                });
            }
            let context = format!("fold {}", v + 1);
            let fit = fit_or_fallback(
                learner,
                &train,
                seed::derive(seed, seed::tag::FIT_FOLD + v as u64),
                &context,
            )?;
            let test = folds.test_rows(v);
            let pred = fit.predict(&task.x().select_rows(&test))?;
            Ok((test, pred, fit.report().clone()))
        })
        .collect();
    let mut predictions = vec![0.0; task.nrows()];
    let mut reports = Vec::with_capacity(folds.k());
    let mut warnings = Vec::new();
    for r in per_fold {
        let (test, pred, report) = r?;
        for (k, &i) in test.iter().enumerate() {
            predictions[i] = pred[k];
        }
        warnings.extend(report.warnings.iter().cloned());
        reports.push(report);
    }
    let loss = loss(task.family(), task.y(), &predictions, task.weights());
    Ok(CrossFit {
        predictions,
        loss,
        reports,
        warnings,
    })
}
