//! Result types: the `analyses[]` entries of results.json (schema version 1).

use healthgap_models::ModelSummary;
use serde::Serialize;

use crate::spec::MethodSpec;

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
            attrition: &self.attrition,
        }
        .serialize(serializer)
    }
}

impl AnalysisResult {
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
    /// Rows used.
    pub n: usize,
}
