//! The learner trait: a spec fits a task into a fitted model that predicts a
//! probability (binary target) or a mean (continuous target) for new rows.
//!
//! A spec is plain, serde-friendly settings ([`crate::spec`]); fitting takes
//! an explicit seed, so a fit is a pure function of (settings, data, seed).

use std::fmt;

use crate::data::{Family, Matrix, Task};
use crate::error::LearnError;
use crate::super_learner::SuperLearnerReport;
use crate::warning::LearnWarning;

/// A learner: settings that fit a [`Task`].
pub trait Learner: Send + Sync + fmt::Debug {
    /// Short name, as in the config (`glm`, `elastic_net`, `forest`, `super_learner`).
    fn name(&self) -> &'static str;

    /// Fits on the task's rows with their weights. `seed` fixes every random
    /// choice. Problems with a workaround become warnings in the fit's report.
    fn fit(&self, task: &Task<'_>, seed: u64) -> Result<Box<dyn Fitted>, LearnError>;
}

/// A fitted model.
pub trait Fitted: Send + Sync + fmt::Debug {
    /// Predictions for the rows of `x` (same columns as the training
    /// features): P(y = 1 | x) for a binary target, E[y | x] otherwise.
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, LearnError>;

    /// What was fitted, with its warnings.
    fn report(&self) -> &FitReport;
}

/// What a fit reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FitReport {
    /// The learner's name.
    pub learner: String,
    /// Worked-around problems.
    pub warnings: Vec<LearnWarning>,
    /// Learner-specific detail.
    pub detail: Detail,
}

/// Learner-specific detail of a fit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Detail {
    /// A constant prediction (a fallback).
    Constant {
        /// The prediction.
        value: f64,
    },
    /// A main-effects GLM (logit or linear).
    Glm {
        /// The intercept.
        intercept: f64,
        /// Coefficients by column name.
        coefficients: Vec<(String, f64)>,
        /// Columns dropped (constant or collinear).
        dropped: Vec<String>,
    },
    /// An elastic net.
    ElasticNet {
        /// The penalty λ used.
        lambda: f64,
        /// The mixing α (1 lasso, 0 ridge).
        alpha: f64,
        /// Non-zero coefficients.
        nonzero: usize,
        /// Cross-validated loss at each λ of the path, when λ was chosen by CV.
        cv_path: Vec<(f64, f64)>,
    },
    /// A random forest.
    Forest {
        /// Trees.
        trees: usize,
        /// Features tried per split.
        mtry: usize,
        /// Least draws in a leaf (after `min_leaf_sqrt`).
        min_leaf: usize,
        /// Mean leaves per tree.
        mean_leaves: f64,
        /// Out-of-bag loss (log loss or MSE) over rows out of bag at least once.
        oob_loss: Option<f64>,
    },
    /// A super learner.
    SuperLearner(SuperLearnerReport),
}

/// A model that predicts one value for every row.
#[derive(Debug, Clone)]
pub struct ConstantFit {
    value: f64,
    ncols: usize,
    report: FitReport,
}

impl ConstantFit {
    /// A constant model with a report.
    pub(crate) fn new(
        value: f64,
        ncols: usize,
        learner: &str,
        warnings: Vec<LearnWarning>,
    ) -> ConstantFit {
        ConstantFit {
            value,
            ncols,
            report: FitReport {
                learner: learner.to_string(),
                warnings,
                detail: Detail::Constant { value },
            },
        }
    }
}

impl Fitted for ConstantFit {
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, LearnError> {
        x.check_columns(self.ncols)?;
        Ok(vec![self.value; x.nrows()])
    }

    fn report(&self) -> &FitReport {
        &self.report
    }
}

/// The fallback prediction of a task: its weighted mean; for a binary target
/// with a single class, moved off 0 and 1 by half an average-weight row of
/// the missing class: (Σ w y + w̄/2) / (Σ w + w̄), w̄ the mean positive weight.
pub fn fallback_value(task: &Task<'_>) -> f64 {
    let mean = task.weighted_mean();
    if task.single_class().is_none() {
        return mean;
    }
    let (sw, swy, live) = (0..task.nrows()).fold((0.0, 0.0, 0usize), |(a, b, c), i| {
        let w = task.weight(i);
        (a + w, b + w * task.y()[i], c + usize::from(w > 0.0))
    });
    let wbar = sw / live.max(1) as f64;
    (swy + 0.5 * wbar) / (sw + wbar)
}

/// For a binary task with one outcome class: the constant fallback fit with
/// its [`LearnWarning::SingleClass`] warning (`context` says where).
pub fn single_class_fit(task: &Task<'_>, learner: &str, context: &str) -> Option<ConstantFit> {
    let class = task.single_class()?;
    let prediction = fallback_value(task);
    let rows = (0..task.nrows()).filter(|&i| task.weight(i) > 0.0).count();
    let warning = LearnWarning::SingleClass {
        context: context.to_string(),
        class,
        rows,
        prediction,
    };
    Some(ConstantFit::new(
        prediction,
        task.x().ncols(),
        learner,
        vec![warning],
    ))
}

/// Clips a mean to the target's range: [0, 1] for a binary target.
pub(crate) fn clip_prediction(family: Family, v: f64) -> f64 {
    match family {
        Family::Binary => v.clamp(0.0, 1.0),
        Family::Continuous => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_class_fallback_is_off_the_boundary() {
        let x = Matrix::from_rows(&[vec![1.0], vec![2.0], vec![3.0]]).expect("matrix");
        let y = [0.0, 0.0, 0.0];
        let t = Task::new(&x, &y, Family::Binary).expect("task");
        let fit = single_class_fit(&t, "glm", "fold 1").expect("single class");
        let p = fit.predict(&x).expect("predict");
        // (0 + 0.5) / (3 + 1)
        assert!((p[0] - 0.125).abs() < 1e-15);
        assert!(matches!(
            fit.report().warnings[0],
            LearnWarning::SingleClass {
                class: 0,
                rows: 3,
                ..
            }
        ));
        let wrong = Matrix::from_rows(&[vec![1.0, 2.0]]).expect("matrix");
        assert!(fit.predict(&wrong).is_err());
    }
}
