//! Result types: the `analyses[]` entries of results.json (schema version 1).

use healthgap_models::ModelSummary;
use serde::Serialize;

use crate::spec::{MethodSpec, Parts};

/// One tidy estimate. `factor: null, term: null` is the total; `factor` with
/// `term: null` a block aggregate; `term` one design column (naming its factor).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Quantity name (DESIGN.md table).
    pub quantity: String,
    /// Factor block.
    pub factor: Option<String>,
    /// Design column.
    pub term: Option<String>,
    /// Point estimate (always the full-sample estimate).
    pub estimate: f64,
    /// Standard error.
    pub se: Option<f64>,
    /// Lower confidence limit.
    pub ci_low: Option<f64>,
    /// Upper confidence limit.
    pub ci_high: Option<f64>,
    /// Two-sided p-value.
    pub p_value: Option<f64>,
    /// How `se` and the interval were made.
    pub se_method: SeMethod,
    /// Rubin's rules behind a row pooled over imputations (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imputation: Option<RowImputation>,
}

/// Rubin's rules behind one pooled row (results.json `estimates[].imputation`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RowImputation {
    /// Imputations pooled.
    pub m: usize,
    /// Within-imputation variance Ū (on the pooling scale).
    pub within: f64,
    /// Between-imputation variance B.
    pub between: f64,
    /// Total variance T = Ū + (1 + 1/m)B.
    pub total: f64,
    /// Barnard–Rubin degrees of freedom.
    pub df: f64,
    /// Relative increase in variance due to nonresponse.
    pub riv: f64,
    /// Fraction of missing information.
    pub fmi: f64,
    /// Relative efficiency against infinitely many imputations.
    pub relative_efficiency: f64,
    /// `identity`, or `log` for ratio rows (pooled as log ratios).
    pub scale: &'static str,
}

/// How a row's standard error and interval were made (results.json `se_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeMethod {
    /// Bootstrap, percentile interval.
    BootstrapPercentile,
    /// Bootstrap, bias-corrected and accelerated interval.
    BootstrapBca,
    /// Bootstrap SE, normal interval.
    BootstrapNormal,
    /// Delta method with each row its own unit (HC1 / `suest`):
    /// V = n/(n−1) Σ_i ψ_i ψ_iᵀ over stacked influence functions.
    DeltaRobust,
    /// Delta method over clusters (CR1 / stacked cluster sandwich).
    DeltaCluster,
    /// Model-based (homoskedastic) delta method.
    DeltaModel,
    /// Rubin's rules over multiple imputations (the within-imputation
    /// variance from the analysis's own inference; t interval on the
    /// Barnard–Rubin degrees of freedom).
    Rubin,
    /// Influence functions of an estimator with cross-fitted nuisances, summed
    /// by cluster (V = G/(G−1) Σ_g φ_g φ_gᵀ) or by row (n/(n−1)).
    InfluenceFunction,
    /// No standard error (a point estimate only, or inference withheld).
    None,
}

impl SeMethod {
    /// The results.json spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SeMethod::BootstrapPercentile => "bootstrap-percentile",
            SeMethod::BootstrapBca => "bootstrap-bca",
            SeMethod::BootstrapNormal => "bootstrap-normal",
            SeMethod::DeltaRobust => "delta-robust",
            SeMethod::DeltaCluster => "delta-cluster",
            SeMethod::DeltaModel => "delta-model",
            SeMethod::Rubin => "rubin",
            SeMethod::InfluenceFunction => "influence-function",
            SeMethod::None => "none",
        }
    }
}

impl Estimate {
    /// A total (no factor, no term) without inference.
    pub fn total(quantity: &str, estimate: f64) -> Estimate {
        Estimate {
            quantity: quantity.to_string(),
            factor: None,
            term: None,
            estimate,
            se: None,
            ci_low: None,
            ci_high: None,
            p_value: None,
            se_method: SeMethod::None,
            imputation: None,
        }
    }

    /// Adds inference (non-finite values become null).
    pub fn with_inference(mut self, se: f64, ci_low: f64, ci_high: f64, p_value: f64) -> Estimate {
        let f = |x: f64| x.is_finite().then_some(x);
        self.se = f(se);
        self.ci_low = f(ci_low);
        self.ci_high = f(ci_high);
        self.p_value = f(p_value);
        self
    }

    /// Says how the SE was made (a row without an SE stays `none`).
    pub fn made_by(mut self, how: SeMethod) -> Estimate {
        if self.se.is_some() || self.ci_low.is_some() {
            self.se_method = how;
        }
        self
    }

    /// Says how the SE was made when nothing has said so yet.
    pub fn tag_untagged(&mut self, how: SeMethod) {
        if self.se_method == SeMethod::None && (self.se.is_some() || self.ci_low.is_some()) {
            self.se_method = how;
        }
    }

    /// Drops the inference (a withheld interval): SE, CI and p become null.
    pub fn without_inference(mut self) -> Estimate {
        self.se = None;
        self.ci_low = None;
        self.ci_high = None;
        self.p_value = None;
        self.se_method = SeMethod::None;
        self
    }
}

/// How the inference was done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferenceInfo {
    /// `delta` or `bootstrap`.
    pub method: String,
    /// Bootstrap replicates (null for delta).
    pub replicates: Option<usize>,
    /// Successful replicates (null for delta).
    pub replicates_ok: Option<usize>,
    /// `percentile`, `bca` or `normal`.
    pub interval: String,
    /// Confidence level.
    pub level: f64,
    /// Cluster variable.
    pub cluster: Option<String>,
    /// The variance of the delta method: `robust` (each row its own unit),
    /// `cluster` or `model`.
    pub vce: String,
    /// Approximations in the inference (e.g. one-step bootstrap replicates);
    /// null when there are none.
    pub note: Option<String>,
    /// Why intervals were withheld (null when none were).
    pub withheld: Option<String>,
    /// Multiple imputation: `rubin` (each imputation's own inference pooled
    /// by Rubin's rules) or `bootstrap-then-impute`; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imputation: Option<String>,
}

/// One analysis for one outcome and comparison group. Written to
/// results.json with `method` (the spec's name) and `options` (`outcome_type`,
/// `weighted` and the spec's options as `analysis`).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisResult {
    /// Analysis id (`<method>` or the config's `id`).
    pub id: String,
    /// The method and its options (defaults filled in).
    pub spec: MethodSpec,
    /// Outcome column.
    pub outcome: String,
    /// Whether the outcome is binary.
    pub binary: bool,
    /// Whether rows were weighted.
    pub weighted: bool,
    /// Reference group label.
    pub reference: String,
    /// Comparison group label.
    pub comparison: String,
    /// Rows used (both groups; None when a group is below min_cell).
    pub n: Option<usize>,
    /// Inference.
    pub inference: InferenceInfo,
    /// Estimates.
    pub estimates: Vec<Estimate>,
    /// Every model fitted.
    pub models: Vec<ModelSummary>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Covariate balance of density-ratio weights (weighting and doubly
    /// robust disparity reduction only; omitted otherwise).
    pub balance: Vec<Balance>,
    /// Cross-fitted learners' diagnostics (disparity reduction with a
    /// flexible learner only; omitted otherwise).
    pub learners: Option<LearnerDiagnostics>,
    /// The analysis's complete cases per group of the comparison (empty when
    /// no row missed any of its variables).
    pub attrition: Vec<GroupAttrition>,
    /// Per-hospital profiles of a `hospital` analysis (hospitals.csv, not results.json).
    pub hospitals: Vec<crate::hospital::HospitalRow>,
    /// Rows and (binary outcomes) events of the reference and the comparison
    /// group in this analysis's sample, for the small-cell passes (not
    /// written).
    pub sample_counts: [(usize, Option<usize>); 2],
}

/// results.json's `analyses[]` entry (schema version 1).
#[derive(Serialize)]
struct Written<'a> {
    id: &'a str,
    method: &'static str,
    outcome: &'a str,
    reference: &'a str,
    comparison: &'a str,
    n: Option<usize>,
    options: serde_json::Value,
    inference: &'a InferenceInfo,
    estimates: &'a [Estimate],
    models: &'a [ModelSummary],
    warnings: &'a [String],
    #[serde(skip_serializing_if = "<[Balance]>::is_empty")]
    balance: &'a [Balance],
    #[serde(skip_serializing_if = "Option::is_none")]
    learners: Option<&'a LearnerDiagnostics>,
    attrition: &'a [GroupAttrition],
}

impl Serialize for AnalysisResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Written {
            id: &self.id,
            method: self.spec.name(),
            outcome: &self.outcome,
            reference: &self.reference,
            comparison: &self.comparison,
            n: self.n,
            options: serde_json::json!({
                "outcome_type": if self.binary { "binary" } else { "continuous" },
                "weighted": self.weighted,
                "analysis": self.spec.options_json(),
            }),
            inference: &self.inference,
            estimates: &self.estimates,
            models: &self.models,
            warnings: &self.warnings,
            balance: &self.balance,
            learners: self.learners.as_ref(),
            attrition: &self.attrition,
        }
        .serialize(serializer)
    }
}

/// Relative tolerance of the identities (floating-point sums of the same
/// numbers in another order).
const IDENTITY_TOLERANCE: f64 = 1e-8;

impl AnalysisResult {
    /// The identities its estimates must satisfy, with the ones that do not
    /// hold described: the method's parts add up to its total (explained
    /// blocks plus unexplained to the gap, explained changes plus the
    /// full-model coefficient to the base coefficient, Shapley reductions plus
    /// the remaining disparity to the initial disparity, between plus within
    /// hospitals to the gap, indirect plus direct to the total effect), and
    /// each block's detailed terms add up to the block where terms are
    /// reported. Empty when everything holds, or when a row is missing.
    pub fn identity_errors(&self) -> Vec<String> {
        let Some(b) = self.spec.spec().breakdown() else {
            return Vec::new();
        };
        let value = |q: &str| self.get(q, None, None).map(|e| e.estimate);
        let close =
            |a: f64, b: f64| (a - b).abs() <= IDENTITY_TOLERANCE * a.abs().max(b.abs()).max(1.0);
        let mut errors = Vec::new();
        let parts: Option<Vec<f64>> = match &b.parts {
            Parts::Blocks(q) => {
                let blocks: Vec<&Estimate> = self
                    .estimates
                    .iter()
                    .filter(|e| e.quantity == *q && e.factor.is_some() && e.term.is_none())
                    .collect();
                for block in &blocks {
                    let terms: Vec<f64> = self
                        .estimates
                        .iter()
                        .filter(|e| {
                            e.quantity == *q && e.factor == block.factor && e.term.is_some()
                        })
                        .map(|e| e.estimate)
                        .collect();
                    let sum: f64 = terms.iter().sum();
                    if !terms.is_empty() && !close(sum, block.estimate) {
                        errors.push(format!(
                            "{q} of block {}: its terms add up to {sum}, not {}",
                            block.factor.as_deref().unwrap_or_default(),
                            block.estimate
                        ));
                    }
                }
                Some(blocks.iter().map(|e| e.estimate).collect())
            }
            Parts::One { quantity, .. } => value(quantity).map(|v| vec![v]),
        };
        if let (Some(total), Some(parts), Some(rest)) = (value(b.total.1), parts, value(b.rest.1)) {
            let sum = parts.iter().sum::<f64>() + rest;
            if !close(sum, total) {
                errors.push(format!(
                    "the parts and {} add up to {sum}, not the {} {total}",
                    b.rest.1, b.total.1
                ));
            }
        }
        errors
    }

    /// An estimate by quantity, factor and term.
    pub fn get(
        &self,
        quantity: &str,
        factor: Option<&str>,
        term: Option<&str>,
    ) -> Option<&Estimate> {
        self.estimates.iter().find(|e| {
            e.quantity == quantity && e.factor.as_deref() == factor && e.term.as_deref() == term
        })
    }
}

/// One step of an analysis's complete cases for one group: the rows missing
/// `step`'s variable (and complete in the earlier steps) are excluded.
/// Counts are suppressed (null) when small or when they would reveal a small
/// one by difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupAttrition {
    /// `cohort` (the group's rows before the step), then one step per
    /// variable with missing values: `complete cases: <variable>`.
    pub step: String,
    /// Group label.
    pub group: String,
    /// Rows excluded by the step (null when suppressed).
    pub excluded: Option<usize>,
    /// Rows remaining after it (null when suppressed).
    pub remaining: Option<usize>,
    /// Display texts of (excluded, remaining): the number, `<min_cell` or
    /// `suppressed`.
    #[serde(skip)]
    pub text: [String; 2],
}

/// The covariate balance of density-ratio weights (weighting and doubly
/// robust disparity reduction): the standardized difference of the
/// comparison patients' mean of a column from the intervened distribution's,
/// (m_c − m_I)/√((s²_c + s²_I)/2) (Austin 2009), before and after weighting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Balance {
    /// The intervened targets, joined by "+".
    pub targets: String,
    /// Design column.
    pub column: String,
    /// Standardized difference before weighting.
    pub smd_before: f64,
    /// Standardized difference after weighting by the density ratio.
    pub smd_after: f64,
}

/// What the cross-fitted learners of a disparity reduction reported
/// (results.json `learners`; `learner = "glm"` omits it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnerDiagnostics {
    /// The learner (`elastic_net`, `forest`, `super_learner`).
    pub learner: String,
    /// Cross-fitting folds.
    pub folds: usize,
    /// What the folds hold whole: the cluster variable, hospital_id, or `row`.
    pub fold_by: String,
    /// Density-ratio classifier probabilities are clipped to [clip, 1 − clip].
    pub clip: f64,
    /// A forest density-ratio classifier's leaves hold at least
    /// ⌈c·√(draws per tree)⌉ draws, this c (`forest.min_leaf_sqrt`, default 1
    /// for the classifiers; 0 means `min_leaf` alone).
    pub ratio_min_leaf_sqrt: f64,
    /// Each nuisance model's cross-fitted fit.
    pub nuisances: Vec<NuisanceFit>,
    /// The density ratios' overlap, per subset of targets.
    pub overlap: Vec<Overlap>,
}

/// One nuisance model's cross-fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NuisanceFit {
    /// `outcome`, or `density_ratio:<targets>`.
    pub nuisance: String,
    /// The learner that fitted it (`constant` when every fold fell back).
    pub learner: String,
    /// `log_loss` or `mse`.
    pub loss: String,
    /// The loss of the out-of-fold predictions over every row (cross-validated);
    /// for a density ratio, over the observed rows and each patient's first
    /// intervened copy weighted as its D copies (an unbiased estimate of the
    /// loss over every copy).
    pub cv_loss: f64,
    /// Folds whose fit fell back to a constant (with a warning).
    pub fallback_folds: usize,
    /// Super learner: each member's CV loss and weight, averaged over the folds' fits.
    pub members: Vec<MemberFit>,
}

/// A super-learner member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberFit {
    /// The learner.
    pub learner: String,
    /// Its cross-validated loss.
    pub cv_loss: f64,
    /// Its weight in the ensemble.
    pub weight: f64,
}

/// The density ratios r̂_S of one subset of targets over the comparison patients.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlap {
    /// The targets, joined by "+".
    pub targets: String,
    /// Comparison patients with positive weight.
    pub n: usize,
    /// Quantiles of r̂_S (p = 0, 0.01, 0.05, 0.5, 0.95, 0.99, 1).
    pub quantiles: Vec<Quantile>,
    /// Probabilities clipped before the odds.
    pub clipped: usize,
    /// Kish's effective sample size (Σ w r̂)²/Σ (w r̂)².
    pub effective_sample_size: f64,
}

/// A quantile of the density ratios.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantile {
    /// Probability.
    pub p: f64,
    /// The ratio.
    pub ratio: f64,
}

/// The output of a method before it is labelled as an [`AnalysisResult`].
#[derive(Debug, Clone)]
pub struct MethodOutput {
    /// Tidy estimates.
    pub estimates: Vec<Estimate>,
    /// Fitted models.
    pub models: Vec<ModelSummary>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Successful bootstrap replicates (None for delta).
    pub replicates_ok: Option<usize>,
    /// Why intervals were withheld (None when none were).
    pub withheld: Option<String>,
    /// Approximations in the inference, for results.json's `inference.note`.
    pub inference_note: Option<String>,
    /// Covariate balance of density-ratio weights (empty for other methods).
    pub balance: Vec<Balance>,
    /// Cross-fitted learners' diagnostics (flexible disparity reduction only).
    pub learners: Option<LearnerDiagnostics>,
    /// Rows used.
    pub n: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(q: &str, factor: Option<&str>, term: Option<&str>, v: f64) -> Estimate {
        let mut e = Estimate::total(q, v);
        e.factor = factor.map(str::to_string);
        e.term = term.map(str::to_string);
        e
    }

    fn oaxaca(estimates: Vec<Estimate>) -> AnalysisResult {
        AnalysisResult {
            id: "ob".into(),
            spec: serde_json::from_value(serde_json::json!({"method": "oaxaca_blinder"}))
                .expect("a valid spec"),
            outcome: "y".into(),
            binary: false,
            weighted: false,
            reference: "A".into(),
            comparison: "B".into(),
            n: Some(100),
            inference: InferenceInfo {
                method: "delta".into(),
                replicates: None,
                replicates_ok: None,
                interval: "normal".into(),
                level: 0.95,
                cluster: None,
                vce: "robust".into(),
                note: None,
                withheld: None,
                imputation: None,
            },
            estimates,
            models: vec![],
            warnings: vec![],
            balance: vec![],
            learners: None,
            attrition: vec![],
            hospitals: vec![],
            sample_counts: [(50, None); 2],
        }
    }

    #[test]
    fn parts_that_add_up_pass_and_parts_that_do_not_are_named() {
        let good = vec![
            est("gap", None, None, 2.0),
            est("explained", Some("clinical"), None, 0.5),
            est("explained", Some("clinical"), Some("age"), 0.2),
            est("explained", Some("clinical"), Some("bmi"), 0.3),
            est("explained", Some("ses"), None, 0.3),
            est("unexplained", None, None, 1.2),
        ];
        assert!(oaxaca(good.clone()).identity_errors().is_empty());
        let mut total_off = good.clone();
        total_off[0].estimate = 2.1;
        let errors = oaxaca(total_off).identity_errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("not the gap 2.1"), "{errors:?}");
        let mut term_off = good;
        term_off[2].estimate = 0.25;
        let errors = oaxaca(term_off).identity_errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("block clinical"), "{errors:?}");
    }
}
