//! The project's main-effects GLM as a learner: logit for a binary target
//! (Newton–Raphson with step-halving, `healthgap_models::Glm`) and weighted
//! least squares for a continuous one (`healthgap_models::Ols`), each with an
//! intercept and every non-constant column:
//!
//!   P(y = 1 | x) = Λ(b₀ + x'b)   or   E[y | x] = b₀ + x'b.
//!
//! Constant columns are left out with a warning; collinear ones are dropped
//! by the estimator. When the logit separates or does not converge, the fit
//! falls back to a ridge logit with a small penalty (`fallback_lambda`, on
//! standardized columns), whose estimate is finite, with a warning.

use healthgap_models::{Design, Glm, ModelError, Ols};

use crate::data::{Family, Matrix, Task};
use crate::elastic_net::ElasticNetSpec;
use crate::error::LearnError;
use crate::learner::{Detail, FitReport, Fitted, Learner, single_class_fit};
use crate::warning::LearnWarning;

/// GLM settings (config keys under `glm`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlmSpec {
    /// λ of the ridge logit used when the logit separates or fails to converge.
    pub fallback_lambda: f64,
}

impl Default for GlmSpec {
    fn default() -> GlmSpec {
        GlmSpec {
            fallback_lambda: 1e-4,
        }
    }
}

/// A fitted GLM.
#[derive(Debug, Clone)]
pub struct GlmLearnerFit {
    intercept: f64,
    coef: Vec<(usize, f64)>,
    family: Family,
    ncols: usize,
    report: FitReport,
}

impl Fitted for GlmLearnerFit {
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, LearnError> {
        x.check_columns(self.ncols)?;
        let mut eta = vec![self.intercept; x.nrows()];
        for &(j, b) in &self.coef {
            for (e, v) in eta.iter_mut().zip(x.column(j)) {
                *e += b * v;
            }
        }
        Ok(match self.family {
            Family::Binary => eta.into_iter().map(|e| 1.0 / (1.0 + (-e).exp())).collect(),
            Family::Continuous => eta,
        })
    }

    fn report(&self) -> &FitReport {
        &self.report
    }
}

/// The design of the rows with positive weight: an intercept and the
/// columns `keep`, named by their index.
fn design(task: &Task<'_>, keep: &[usize]) -> Result<Design, LearnError> {
    let rows: Vec<usize> = (0..task.nrows())
        .filter(|&i| task.weight(i) > 0.0)
        .collect();
    let mut cols = vec![("(intercept)".to_string(), vec![1.0; rows.len()])];
    for &j in keep {
        let c = task.x().column(j);
        cols.push((j.to_string(), rows.iter().map(|&i| c[i]).collect()));
    }
    let y = rows.iter().map(|&i| task.y()[i]).collect();
    let d = Design::from_columns("y", y, cols).map_err(|error| LearnError::Model {
        learner: "glm".into(),
        error,
    })?;
    Ok(match task.weights() {
        Some(w) => d.with_weights(rows.iter().map(|&i| w[i]).collect()),
        None => d,
    })
}

impl GlmSpec {
    /// The ridge fallback after `error`.
    fn fallback(
        &self,
        task: &Task<'_>,
        error: &ModelError,
        mut warnings: Vec<LearnWarning>,
    ) -> Result<Box<dyn Fitted>, LearnError> {
        let ridge = ElasticNetSpec::ridge(self.fallback_lambda).fit_net(task, 0)?;
        warnings.push(LearnWarning::Fallback {
            learner: "glm".into(),
            context: "training rows".into(),
            reason: error.to_string(),
            fallback: format!("a ridge logit (lambda = {:e})", self.fallback_lambda),
        });
        let coefficients: Vec<(String, f64)> = ridge
            .coefficients()
            .iter()
            .enumerate()
            .map(|(j, &b)| (task.x().names()[j].clone(), b))
            .collect();
        let coef = ridge.coefficients().into_iter().enumerate().collect();
        Ok(Box::new(GlmLearnerFit {
            intercept: ridge.intercept(),
            coef,
            family: Family::Binary,
            ncols: task.x().ncols(),
            report: FitReport {
                learner: "glm".into(),
                warnings,
                detail: Detail::Glm {
                    intercept: ridge.intercept(),
                    coefficients,
                    dropped: Vec::new(),
                },
            },
        }))
    }
}

impl Learner for GlmSpec {
    fn name(&self) -> &'static str {
        "glm"
    }

    fn fit(&self, task: &Task<'_>, _seed: u64) -> Result<Box<dyn Fitted>, LearnError> {
        if !(self.fallback_lambda.is_finite() && self.fallback_lambda > 0.0) {
            return Err(LearnError::setting(
                "glm.fallback_lambda",
                self.fallback_lambda,
                "a positive number",
            ));
        }
        if let Some(fit) = single_class_fit(task, self.name(), "training rows") {
            return Ok(Box::new(fit));
        }
        let constant = task.constant_columns();
        let mut warnings = task.constant_column_warnings();
        let keep: Vec<usize> = (0..task.x().ncols())
            .filter(|j| !constant.contains(j))
            .collect();
        let d = design(task, &keep)?;
        let (coef, names, dropped, notes) = match task.family() {
            Family::Binary => match Glm::logit().fit(&d, None) {
                Ok(f) => (f.coef, f.names, f.dropped, f.warnings),
                Err(
                    e @ (ModelError::Separation { .. }
                    | ModelError::NotConverged { .. }
                    | ModelError::Singular { .. }),
                ) => {
                    return self.fallback(task, &e, warnings);
                }
                Err(error) => {
                    return Err(LearnError::Model {
                        learner: "glm".into(),
                        error,
                    });
                }
            },
            Family::Continuous => {
                let f = Ols::new().fit(&d).map_err(|error| LearnError::Model {
                    learner: "glm".into(),
                    error,
                })?;
                (f.coef, f.names, f.dropped, Vec::new())
            }
        };
        warnings.extend(notes.into_iter().map(|message| LearnWarning::Note {
            learner: "glm".into(),
            message,
        }));
        let mut intercept = 0.0;
        let mut pairs = Vec::new();
        for (name, b) in names.iter().zip(&coef) {
            match name.parse::<usize>() {
                Ok(j) => pairs.push((j, *b)),
                Err(_) => intercept = *b,
            }
        }
        let label = |j: &usize| task.x().names()[*j].clone();
        let mut dropped_names: Vec<String> = constant.iter().map(label).collect();
        dropped_names.extend(
            dropped
                .iter()
                .filter_map(|n| n.parse::<usize>().ok())
                .map(|j| label(&j)),
        );
        let report = FitReport {
            learner: "glm".into(),
            warnings,
            detail: Detail::Glm {
                intercept,
                coefficients: pairs.iter().map(|(j, b)| (label(j), *b)).collect(),
                dropped: dropped_names,
            },
        };
        Ok(Box::new(GlmLearnerFit {
            intercept,
            coef: pairs,
            family: task.family(),
            ncols: task.x().ncols(),
            report,
        }))
    }
}
