//! The model summary that every analysis puts in results.json (`models`), so a
//! reader can audit each number.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::vcov::Vcov;

/// One coefficient row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoefficientRow {
    /// Design column name, e.g. `insurance=medicaid`.
    pub term: String,
    /// Estimate.
    pub estimate: f64,
    /// Standard error.
    pub se: f64,
    /// Two-sided p-value (t with the vcov's df; normal above 10,000 df).
    pub p_value: f64,
    /// Lower confidence limit.
    pub ci_low: f64,
    /// Upper confidence limit.
    pub ci_high: f64,
}

/// A fitted model as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    /// What the model is, e.g. `outcome model, group=White`.
    pub label: String,
    /// `linear`, `logit` or `probit`.
    pub family: String,
    /// Observations used (None when suppressed as a small count).
    pub n: Option<usize>,
    /// Clusters, when clustered.
    pub clusters: Option<usize>,
    /// Variance label, e.g. `CR1(hospital_id)`.
    pub vcov: String,
    /// Converged (always true for least squares).
    pub converged: bool,
    /// Iterations (1 for least squares).
    pub iterations: usize,
    /// Absorbed fixed effects, e.g. `hospital_id (300 levels)`.
    pub absorbed: Vec<String>,
    /// Coefficients.
    pub coefficients: Vec<CoefficientRow>,
}

/// Two-sided t tests with `df` degrees of freedom. Above 10,000 df the normal
/// is used (statrs' t quantile loses accuracy there).
#[derive(Debug, Clone, Copy)]
pub struct TTest {
    t: Option<StudentsT>,
}

impl TTest {
    /// The test for `df` degrees of freedom.
    pub fn new(df: f64) -> TTest {
        let t = if df > 1e4 || !df.is_finite() {
            None
        } else {
            StudentsT::new(0.0, 1.0, df.max(1.0)).ok()
        };
        TTest { t }
    }

    /// Two-sided p-value of a t statistic.
    pub fn p_value(&self, t: f64) -> f64 {
        match &self.t {
            Some(d) => 2.0 * d.sf(t.abs()),
            None => 2.0 * Normal::standard().sf(t.abs()),
        }
    }

    /// Quantile q of the reference distribution.
    pub fn quantile(&self, q: f64) -> f64 {
        match &self.t {
            Some(d) => d.inverse_cdf(q),
            None => Normal::standard().inverse_cdf(q),
        }
    }
}

/// Coefficient rows from names, estimates and a vcov, at confidence `level`.
pub fn coefficient_rows(
    names: &[String],
    coef: &[f64],
    vcov: &Vcov,
    level: f64,
) -> Vec<CoefficientRow> {
    let se = vcov.se();
    let test = TTest::new(vcov.df);
    let crit = test.quantile(1.0 - (1.0 - level) / 2.0);
    names
        .iter()
        .zip(coef)
        .zip(&se)
        .map(|((term, &estimate), &se)| CoefficientRow {
            term: term.clone(),
            estimate,
            se,
            p_value: if se > 0.0 {
                test.p_value(estimate / se)
            } else {
                f64::NAN
            },
            ci_low: estimate - crit * se,
            ci_high: estimate + crit * se,
        })
        .collect()
}
