//! The elastic net: a penalized linear (continuous target) or logistic
//! (binary target) model with weights (Friedman, Hastie & Tibshirani 2010):
//!
//!   min over (b₀, b) of  −Σ w̃_i ℓ_i(b₀ + x̃_i'b) + λ [ (1 − α)/2 ‖b‖² + α ‖b‖₁ ],
//!
//! w̃ the weights normalized to sum to 1 and x̃ the columns standardized by
//! their weighted mean and standard deviation (glmnet's `standardize = TRUE`;
//! the coefficients are reported on the original scale). The intercept is
//! not penalized. With `lambda` unset, λ is chosen by K-fold cross-validation
//! (cluster folds when the task has clusters) over a log-spaced path from
//! λ_max, the smallest λ with b = 0, down to `lambda_min_ratio`·λ_max, with
//! warm starts along the path: the λ of least cross-validated loss
//! (`cv.glmnet`'s `lambda.min`).
//!
//! Hand-written rather than linfa-elasticnet: linfa's elastic net ignores
//! sample weights (survey and bootstrap weights matter here), fits only a
//! squared-error loss (no logistic elastic net for the binary outcome and
//! density-ratio models), and would bring ndarray 0.16 alongside the
//! project's 0.17. The coordinate descent is ~150 lines and is checked
//! against scikit-learn's `ElasticNet` and `LogisticRegression` (saga) in
//! `tests/golden/`.

mod cd;

use rayon::prelude::*;

use cd::{Coefs, Penalty, Problem, Standardized, logistic};

use crate::data::{Family, Matrix, Task};
use crate::error::LearnError;
use crate::folds::Folds;
use crate::learner::{Detail, FitReport, Fitted, Learner, fallback_value, single_class_fit};
use crate::loss::row_loss;
use crate::seed;

/// Elastic-net settings (config keys under `elastic_net`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticNetSpec {
    /// Mixing α ∈ [0, 1]: 1 is the lasso, 0 ridge (scikit-learn's `l1_ratio`).
    pub alpha: f64,
    /// A fixed penalty λ ≥ 0; unset: chosen by cross-validation.
    pub lambda: Option<f64>,
    /// Penalties on the cross-validation path.
    pub nlambda: usize,
    /// The smallest λ on the path as a fraction of λ_max.
    pub lambda_min_ratio: f64,
    /// Folds of the cross-validation that chooses λ.
    pub folds: usize,
    /// Standardize the columns before penalizing (coefficients are reported
    /// on the original scale either way).
    pub standardize: bool,
    /// Convergence tolerance of the coordinate descent (weighted squared
    /// coefficient change; relative objective change between IRLS steps).
    pub tol: f64,
    /// Coordinate passes allowed per penalty and IRLS step.
    pub max_passes: usize,
}

impl Default for ElasticNetSpec {
    fn default() -> ElasticNetSpec {
        ElasticNetSpec {
            alpha: 0.5,
            lambda: None,
            nlambda: 30,
            lambda_min_ratio: 1e-3,
            folds: 5,
            standardize: true,
            tol: 1e-7,
            max_passes: 10_000,
        }
    }
}

impl ElasticNetSpec {
    /// A fixed-penalty ridge (α = 0), as the GLM's fallback under separation.
    pub fn ridge(lambda: f64) -> ElasticNetSpec {
        ElasticNetSpec {
            alpha: 0.0,
            lambda: Some(lambda),
            ..ElasticNetSpec::default()
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), LearnError> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(LearnError::setting(
                "elastic_net.alpha",
                self.alpha,
                "between 0 and 1",
            ));
        }
        if let Some(l) = self.lambda
            && !(l.is_finite() && l >= 0.0)
        {
            return Err(LearnError::setting(
                "elastic_net.lambda",
                l,
                "a number >= 0",
            ));
        }
        if self.nlambda < 1 {
            return Err(LearnError::setting(
                "elastic_net.nlambda",
                self.nlambda,
                "at least 1",
            ));
        }
        if !(self.lambda_min_ratio > 0.0 && self.lambda_min_ratio < 1.0) {
            return Err(LearnError::setting(
                "elastic_net.lambda_min_ratio",
                self.lambda_min_ratio,
                "strictly between 0 and 1",
            ));
        }
        if self.lambda.is_none() && self.folds < 2 {
            return Err(LearnError::setting(
                "elastic_net.folds",
                self.folds,
                "at least 2",
            ));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) || self.max_passes == 0 {
            return Err(LearnError::setting(
                "elastic_net.tol",
                self.tol,
                "a positive tolerance and max_passes >= 1",
            ));
        }
        Ok(())
    }

    /// The path λ_max · r^{k/(K−1)}, k = 0..K−1, with r = `lambda_min_ratio`.
    fn path(&self, lambda_max: f64) -> Vec<f64> {
        let k = self.nlambda;
        if k == 1 || lambda_max <= 0.0 {
            return vec![lambda_max.max(0.0)];
        }
        (0..k)
            .map(|i| lambda_max * self.lambda_min_ratio.powf(i as f64 / (k - 1) as f64))
            .collect()
    }

    /// Fits the path `lambdas` (decreasing, warm starts) on `task`; returns
    /// the model at each λ and whether every solve converged.
    fn fit_path(&self, task: &Task<'_>, lambdas: &[f64]) -> (Vec<Linear>, bool) {
        let w = normalized_weights(task);
        let s = Standardized::new(task.x(), &w, self.standardize);
        let problem = Problem {
            s: &s,
            y: task.y(),
            w: &w,
            family: task.family(),
            tol: self.tol,
            max_passes: self.max_passes,
        };
        let mut c = problem.null();
        let mut converged = true;
        let mut models = Vec::with_capacity(lambdas.len());
        for &lambda in lambdas {
            let pen = Penalty {
                lambda,
                alpha: self.alpha,
            };
            converged &= problem.solve(&mut c, pen);
            models.push(Linear::from_working(&s, &c, task.family(), lambda));
        }
        (models, converged)
    }

    /// λ_max of the task (from its standardized columns).
    fn lambda_max(&self, task: &Task<'_>) -> f64 {
        let w = normalized_weights(task);
        let s = Standardized::new(task.x(), &w, self.standardize);
        Problem {
            s: &s,
            y: task.y(),
            w: &w,
            family: task.family(),
            tol: self.tol,
            max_passes: self.max_passes,
        }
        .lambda_max(self.alpha)
    }

    /// Cross-validated loss at each λ: Σ_folds Σ_test w_i L(y_i, ŷ_i(λ)) / Σ w_i.
    /// A training fold with one outcome class (or no weight) predicts its
    /// fallback constant at every λ.
    fn cv_losses(
        &self,
        task: &Task<'_>,
        lambdas: &[f64],
        seed: u64,
    ) -> Result<Vec<f64>, LearnError> {
        let folds = Folds::for_task(task, self.folds, seed::derive(seed, seed::tag::FOLDS))?;
        let per_fold: Vec<Result<Vec<f64>, LearnError>> = (0..folds.k())
            .into_par_iter()
            .map(|v| {
                let train = task.select_rows(&folds.train_rows(v));
                let train = train.task();
                let test = folds.test_rows(v);
                let xt = task.x().select_rows(&test);
                let y = task.y();
                let sum = |pred: &[f64]| -> f64 {
                    test.iter()
                        .zip(pred)
                        .map(|(&i, &p)| task.weight(i) * row_loss(task.family(), y[i], p))
                        .sum()
                };
                let train_w: f64 = (0..train.nrows()).map(|i| train.weight(i)).sum();
                if train_w <= 0.0 || train.single_class().is_some() {
                    let c = fallback_value(if train_w > 0.0 { &train } else { task });
                    return Ok(vec![sum(&vec![c; test.len()]); lambdas.len()]);
                }
                let (models, _) = self.fit_path(&train, lambdas);
                models
                    .iter()
                    .map(|m| m.predict(&xt).map(|p| sum(&p)))
                    .collect()
            })
            .collect();
        let total_w: f64 = (0..task.nrows()).map(|i| task.weight(i)).sum();
        let mut out = vec![0.0; lambdas.len()];
        for f in per_fold {
            for (o, l) in out.iter_mut().zip(f?) {
                *o += l;
            }
        }
        Ok(out.into_iter().map(|l| l / total_w).collect())
    }
}

/// Weights normalized to sum to 1.
fn normalized_weights(task: &Task<'_>) -> Vec<f64> {
    let w = task.weight_vec();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|v| v / total).collect()
}

/// A linear predictor on the original scale.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Linear {
    pub intercept: f64,
    /// (original column, coefficient) for the working columns.
    pub coef: Vec<(usize, f64)>,
    pub family: Family,
    pub lambda: f64,
}

impl Linear {
    /// β_j = b_j / s_j, β₀ = b₀ − Σ β_j m_j.
    fn from_working(s: &Standardized, c: &Coefs, family: Family, lambda: f64) -> Linear {
        let mut intercept = c.b0;
        let coef: Vec<(usize, f64)> = (0..s.p())
            .map(|k| {
                let beta = c.b[k] / s.scale[k];
                intercept -= beta * s.mean[k];
                (s.cols[k], beta)
            })
            .collect();
        Linear {
            intercept,
            coef,
            family,
            lambda,
        }
    }

    /// The mean (or probability) for every row of `x`.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f64>, LearnError> {
        let mut eta = vec![self.intercept; x.nrows()];
        for &(j, b) in &self.coef {
            if j >= x.ncols() {
                return Err(LearnError::Dimension {
                    what: format!("column {j} missing from a matrix of {} columns", x.ncols()),
                });
            }
            if b != 0.0 {
                for (e, v) in eta.iter_mut().zip(x.column(j)) {
                    *e += b * v;
                }
            }
        }
        Ok(match self.family {
            Family::Binary => eta.into_iter().map(logistic).collect(),
            Family::Continuous => eta,
        })
    }
}

/// A fitted elastic net.
#[derive(Debug, Clone)]
pub struct ElasticNetFit {
    model: Linear,
    ncols: usize,
    report: FitReport,
}

impl ElasticNetFit {
    /// The intercept on the original scale.
    pub fn intercept(&self) -> f64 {
        self.model.intercept
    }

    /// The coefficient of every column on the original scale (0 for constant
    /// and unselected columns).
    pub fn coefficients(&self) -> Vec<f64> {
        let mut b = vec![0.0; self.ncols];
        for &(j, v) in &self.model.coef {
            b[j] = v;
        }
        b
    }

    /// The penalty used.
    pub fn lambda(&self) -> f64 {
        self.model.lambda
    }
}

impl Fitted for ElasticNetFit {
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, LearnError> {
        x.check_columns(self.ncols)?;
        self.model.predict(x)
    }

    fn report(&self) -> &FitReport {
        &self.report
    }
}

impl ElasticNetSpec {
    /// Fits the elastic net (the concrete type, for callers that want the
    /// coefficients).
    pub fn fit_net(&self, task: &Task<'_>, seed: u64) -> Result<ElasticNetFit, LearnError> {
        self.validate()?;
        let (lambdas, cv_path) = match self.lambda {
            Some(l) => (vec![l], Vec::new()),
            None => {
                let lambdas = self.path(self.lambda_max(task));
                let cv = self.cv_losses(task, &lambdas, seed)?;
                let best = (0..cv.len())
                    .filter(|&k| cv[k].is_finite())
                    .min_by(|&a, &b| cv[a].total_cmp(&cv[b]))
                    .unwrap_or(0);
                let path = lambdas.iter().copied().zip(cv.iter().copied()).collect();
                (lambdas[..=best].to_vec(), path)
            }
        };
        let (mut models, converged) = self.fit_path(task, &lambdas);
        if !converged {
            return Err(LearnError::NotConverged {
                learner: "elastic_net".into(),
                detail: format!(
                    "coordinate descent needed more than {} passes or 100 IRLS steps at some \
                     penalty (tol {:e})",
                    self.max_passes, self.tol
                ),
            });
        }
        let model = models.pop().ok_or(LearnError::Empty {
            context: Some("an empty penalty path".into()),
        })?;
        let report = FitReport {
            learner: "elastic_net".into(),
            warnings: task.constant_column_warnings(),
            detail: Detail::ElasticNet {
                lambda: model.lambda,
                alpha: self.alpha,
                nonzero: model.coef.iter().filter(|c| c.1 != 0.0).count(),
                cv_path,
            },
        };
        Ok(ElasticNetFit {
            model,
            ncols: task.x().ncols(),
            report,
        })
    }
}

impl Learner for ElasticNetSpec {
    fn name(&self) -> &'static str {
        "elastic_net"
    }

    fn fit(&self, task: &Task<'_>, seed: u64) -> Result<Box<dyn Fitted>, LearnError> {
        self.validate()?;
        if let Some(fit) = single_class_fit(task, self.name(), "training rows") {
            return Ok(Box::new(fit));
        }
        Ok(Box::new(self.fit_net(task, seed)?))
    }
}
