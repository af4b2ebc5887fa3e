//! The super learner (van der Laan, Polley & Hubbard 2007): V-fold
//! cross-validation of every learner in a library gives out-of-fold
//! predictions Z (the level-one data); the ensemble is the convex
//! combination
//!
//!   f̂_SL(x) = Σ_l α_l f̂_l(x),   α ≥ 0, Σ α_l = 1,
//!
//! whose weights minimise the cross-validated loss of Zα (`simplex.rs`), and
//! each f̂_l is refitted on all rows. Learners with weight 0 are not refitted.
//! The ensemble's cross-validated loss is never above the best member's:
//! should rounding or the metalearner's probability clipping leave it above,
//! the best member alone is taken.
//! The folds are cluster folds when the task has clusters.
//!
//! The report gives every learner's cross-validated loss and weight, and the
//! ensemble's loss on the same out-of-fold predictions (optimistic, since α
//! was chosen on them; an honest estimate of the ensemble's own risk needs
//! an outer cross-fit, which [`crate::cross_fit`] of the super learner gives).

mod simplex;

use crate::crossfit::{cross_fit, fit_or_fallback};
use crate::data::{Family, Matrix, Task};
use crate::error::LearnError;
use crate::folds::Folds;
use crate::learner::{Detail, FitReport, Fitted, Learner, clip_prediction, single_class_fit};
use crate::loss::{loss, loss_name};
use crate::seed;
use crate::warning::LearnWarning;

pub use simplex::MAX_LIBRARY;

/// A library member's cross-validation result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MemberReport {
    /// The learner.
    pub learner: String,
    /// Its cross-validated loss.
    pub cv_loss: f64,
    /// Its weight in the ensemble.
    pub weight: f64,
}

/// What a super learner reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SuperLearnerReport {
    /// `log_loss` or `mse`.
    pub loss: String,
    /// Folds of the cross-validation.
    pub folds: usize,
    /// Every member, in library order.
    pub members: Vec<MemberReport>,
    /// The ensemble's loss on the out-of-fold predictions.
    pub cv_loss: f64,
}

/// A super learner over a library of learners.
#[derive(Debug)]
pub struct SuperLearner {
    library: Vec<Box<dyn Learner>>,
    folds: usize,
}

impl SuperLearner {
    /// A super learner over `library` with `folds`-fold cross-validation.
    pub fn new(library: Vec<Box<dyn Learner>>, folds: usize) -> Result<SuperLearner, LearnError> {
        if library.is_empty() || library.len() > MAX_LIBRARY {
            return Err(LearnError::setting(
                "super_learner.library",
                library.len(),
                &format!("1 to {MAX_LIBRARY} learners"),
            ));
        }
        if folds < 2 {
            return Err(LearnError::setting(
                "super_learner.folds",
                folds,
                "at least 2",
            ));
        }
        Ok(SuperLearner { library, folds })
    }
}

/// A fitted super learner: the weighted members.
#[derive(Debug)]
pub struct SuperLearnerFit {
    members: Vec<(f64, Box<dyn Fitted>)>,
    family: Family,
    ncols: usize,
    report: FitReport,
}

impl SuperLearnerFit {
    /// The report (members' losses and weights).
    pub fn summary(&self) -> Option<&SuperLearnerReport> {
        match &self.report.detail {
            Detail::SuperLearner(r) => Some(r),
            _ => None,
        }
    }

    /// The refitted members' own reports, with their weights.
    pub fn member_reports(&self) -> Vec<(f64, &FitReport)> {
        self.members.iter().map(|(a, f)| (*a, f.report())).collect()
    }
}

impl Fitted for SuperLearnerFit {
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, LearnError> {
        x.check_columns(self.ncols)?;
        let mut out = vec![0.0; x.nrows()];
        for (alpha, fit) in &self.members {
            for (o, p) in out.iter_mut().zip(fit.predict(x)?) {
                *o += alpha * p;
            }
        }
        Ok(out
            .into_iter()
            .map(|v| clip_prediction(self.family, v))
            .collect())
    }

    fn report(&self) -> &FitReport {
        &self.report
    }
}

impl Learner for SuperLearner {
    fn name(&self) -> &'static str {
        "super_learner"
    }

    fn fit(&self, task: &Task<'_>, seed: u64) -> Result<Box<dyn Fitted>, LearnError> {
        if let Some(fit) = single_class_fit(task, self.name(), "training rows") {
            return Ok(Box::new(fit));
        }
        Ok(Box::new(self.fit_ensemble(task, seed)?))
    }
}

/// The warnings without repeats (every fold reports the same constant
/// column), in first-seen order.
fn distinct(warnings: Vec<LearnWarning>) -> Vec<LearnWarning> {
    let mut out: Vec<LearnWarning> = Vec::with_capacity(warnings.len());
    for w in warnings {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

impl SuperLearner {
    /// Fits the ensemble (the concrete type, for callers that want the
    /// members' reports).
    pub fn fit_ensemble(&self, task: &Task<'_>, seed: u64) -> Result<SuperLearnerFit, LearnError> {
        let n = task.nrows();
        let l = self.library.len();
        let folds = Folds::for_task(task, self.folds, seed::derive(seed, seed::tag::FOLDS))?;
        let mut z = Vec::with_capacity(n * l);
        let mut cv_losses = Vec::with_capacity(l);
        let mut warnings = Vec::new();
        for (k, learner) in self.library.iter().enumerate() {
            let cf = cross_fit(
                learner.as_ref(),
                task,
                &folds,
                seed::derive(seed, seed::tag::LIBRARY + k as u64),
            )?;
            z.extend_from_slice(&cf.predictions);
            cv_losses.push(cf.loss);
            warnings.extend(cf.warnings);
        }
        let w = task.weight_vec();
        let mut alpha = simplex::Level1 {
            z: &z,
            n,
            l,
            y: task.y(),
            w: &w,
        }
        .weights(task.family());
        let ensemble: Vec<f64> = (0..n)
            .map(|i| (0..l).map(|k| alpha[k] * z[k * n + i]).sum())
            .collect();
        let mut cv_loss = loss(task.family(), task.y(), &ensemble, task.weights());
        // The weights minimise the log loss with probabilities clipped at
        // 1e-6; the reported losses clip at 1e-15. Should a single member do
        // better on the reported loss (a forest's exact 0s and 1s), it wins.
        let best = (0..l).min_by(|&a, &b| cv_losses[a].total_cmp(&cv_losses[b]));
        if let Some(b) = best
            && cv_losses[b] < cv_loss
        {
            alpha = (0..l).map(|k| if k == b { 1.0 } else { 0.0 }).collect();
            cv_loss = cv_losses[b];
        }
        let mut members = Vec::new();
        for (k, learner) in self.library.iter().enumerate() {
            if alpha[k] > 0.0 {
                let s = seed::derive(
                    seed::derive(seed, seed::tag::LIBRARY + k as u64),
                    seed::tag::FIT_FULL,
                );
                let fit = fit_or_fallback(learner.as_ref(), task, s, "full sample")?;
                warnings.extend(fit.report().warnings.iter().cloned());
                members.push((alpha[k], fit));
            }
        }
        let warnings = distinct(warnings);
        let report = SuperLearnerReport {
            loss: loss_name(task.family()).into(),
            folds: self.folds,
            members: self
                .library
                .iter()
                .zip(cv_losses.iter().zip(&alpha))
                .map(|(learner, (cv, a))| MemberReport {
                    learner: learner.name().into(),
                    cv_loss: *cv,
                    weight: *a,
                })
                .collect(),
            cv_loss,
        };
        Ok(SuperLearnerFit {
            members,
            family: task.family(),
            ncols: task.x().ncols(),
            report: FitReport {
                learner: "super_learner".into(),
                warnings,
                detail: Detail::SuperLearner(report),
            },
        })
    }
}
