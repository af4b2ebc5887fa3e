//! Interventional disparity reduction (Jackson & VanderWeele 2018; Jackson
//! 2021; METHODS.md §5) by g-computation: what would remain of the gap if the
//! comparison group had the reference group's distribution of a factor block,
//! given the allowable covariates A (e.g. age and sex)?
//!
//! With A-strata s (exact combinations of the allowable values) and the
//! reference group's mean ȳ_{r,s} in each:
//! - reference standardized to the comparison group's A: R = Σ_{i∈c} w_i ȳ_{r,s(i)} / Σ w_i;
//! - `initial_disparity` τ = ȳ_c − R;
//! - E[Y(G_T) | c]: for each comparison patient i and each of D draws, a
//!   reference patient j of the same stratum (drawn with probability ∝ w_j)
//!   lends the target blocks T (jointly when T has several blocks); everything
//!   else, including the group's direct term, stays at i's values:
//!   μ̄(T) = Σ_i w_i (1/D) Σ_d F(η_i − Σ_{k∈T} η_i^(k) + Σ_{k∈T} η_{j(i,d)}^(k)) / Σ w_i,
//!   with η^(k) the outcome model's linear predictor restricted to block k
//!   (including the hospital effects when hospital_id is in k);
//! - `disparity_reduction` δ(T) = μ̄(∅) − μ̄(T) (μ̄(∅) = ȳ_c for the fitted
//!   model with a group indicator) and `disparity_remaining` τ − δ(T).
//!
//! Outcome model: one model on both groups with the group indicator, every
//! covariate and absorbed hospital effects (logit for binary outcomes, OLS
//! otherwise); hospital effects of levels without events are ±∞ (their risk is
//! 0 or 1, the MLE); with `hospital_effects = "random"` the hierarchical
//! model of [`random`] instead, whose hospital effects are finite and shrunken.
//! Several targets: each alone, the joint reduction, the
//! sequential reductions in the configured order, and the Shapley average over
//! all orderings (from the 2^K subsets; they sum to the joint reduction). The
//! draws are common random numbers: the same uniforms pick every subset's
//! partners and every replicate's.
//!
//! `e_value_disparity_remaining` (binary outcomes): the E-value (VanderWeele &
//! Ding 2017) of the risk ratio (R + remaining)/R, with, as `ci_low`, the
//! E-value of the confidence limit closest to the null (1 when the interval
//! covers 0).
//!
//! Flexible learners (`learner = "elastic_net" | "forest" | "super_learner"`,
//! [`flexible`] and [`influence`]): the outcome model and the density-ratio
//! classifiers are cross-fitted over folds of whole clusters (Chernozhukov et
//! al. 2018; the super learner of van der Laan, Polley & Hubbard 2007), the
//! estimator defaults to the doubly robust (augmented) one,
//! μ̂(S) = Σ_i w_i ν̂_i^S / Σ w + Σ_i w_i r̂_S,i (y_i − m̂_i) / Σ w r̂_S, and the
//! standard errors come from its influence functions summed by cluster; the
//! text below describes the GLM path (`learner = "glm"`, the default).
//!
//! Inference: the cluster bootstrap. Each replicate refits the outcome model
//! on the replicate's clusters (weights × multiplicities): a logit model is
//! Newton-iterated to convergence from the full-sample estimate (warm start),
//! its hospital effects re-solved given the coefficients; an OLS model takes
//! the exact one-step update from per-cell sums. It redraws partners from the
//! replicate's reference patients and reweights everything by the cluster
//! multiplicities. `[inference] one_step = true` replaces the logit refit by
//! one Newton step from per-cell score and information sums (faster;
//! declared in `inference.note`). Without clusters, rows are resampled and
//! the model refitted.

use healthgap_learn::{
    ElasticNetSpec, ForestSpec, GlmSpec, LearnerConfig, LearnerKind, SuperLearnerSpec,
};
use healthgap_models::bootstrap::stream_key;
use healthgap_models::{Link, ModelSummary};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cells::{Cells, FitSpec};
use crate::covariates::{Absorbed, Covariates};
use crate::error::DecomposeError;
use crate::inference::{InferenceSpec, Key, Method, Vce, bootstrap_rows, row_bootstrap};
use crate::result::MethodOutput;
use crate::sample::{Cluster, Sample};
use crate::shares::{Shares, unstable_shares};
use crate::spec::{Breakdown, Context, Designs, Parts, Ran, Role, Spec, cite, joined};

use outcome::{DesignColumn, OutcomeModel, outcome_model, sparse_hospitals_warning};
pub use random::HospitalEffects;
use random::RandomHospitals;
use shapley::{SHARES, Statistics, e_value_limits, keys};
use strata::{Layout, positivity_warning};

mod density_ratio;
mod flexible;
#[cfg(test)]
mod flexible_tests;
mod influence;
mod outcome;
mod random;
mod shapley;
mod strata;
mod weighting;

/// `inference.note` of a cluster bootstrap with a logit outcome model.
pub const ONE_STEP_NOTE: &str = "one-step bootstrap: each cluster-bootstrap replicate updates the \
     logit outcome model and its hospital effects by one Newton step from the full-sample fit \
     instead of refitting to convergence (exact for a linear outcome; with few events the \
     replicates' spread can differ from full refits)";

/// A target block.
#[derive(Debug, Clone)]
pub struct Target {
    /// Block name.
    pub name: String,
    /// Its columns (indexes into the covariates' columns).
    pub columns: Vec<usize>,
    /// Whether the absorbed variable (hospital_id) belongs to it.
    pub absorbed: bool,
}

/// How E[Y(G_T) | c] is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// The g-formula by Monte Carlo over reference partners (outcome model).
    #[default]
    #[serde(rename = "gcomputation")]
    GComputation,
    /// Weighting the comparison patients by the density ratio of the
    /// intervened to the observed covariates (a classifier model).
    Weighting,
    /// g-computation plus the weighted residuals of the outcome model
    /// (consistent if either model is right).
    DoublyRobust,
}

/// `method = "disparity_reduction"`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "RawReductionSpec")]
pub struct ReductionSpec {
    /// Allowable covariates (variables or blocks).
    pub allowable: Vec<String>,
    /// Target blocks, in the order of the sequential reductions.
    pub targets: Vec<String>,
    /// gcomputation | weighting | doubly_robust; unset: gcomputation with
    /// `learner = "glm"`, doubly_robust with a flexible learner.
    pub estimator: Estimator,
    /// Monte-Carlo draws per comparison patient (g-computation; default 5).
    pub draws: usize,
    /// fixed (default) | random: the outcome model's hospital effects.
    pub hospital_effects: HospitalEffects,
    /// glm (default: the main-effects models, no cross-fitting) |
    /// elastic_net | forest | super_learner (cross-fitted nuisances).
    pub learner: LearnerKind,
    /// Cross-fitting folds of a flexible learner (default 5).
    pub folds: usize,
    /// The learners' settings tables (`forest = { trees = 100 }`, ...; the
    /// `healthgap-learn` specs), with a flexible learner (None for `glm`).
    #[serde(flatten)]
    pub settings: Option<LearnerSettings>,
}

/// The settings tables of the learners (healthgap-learn's serde specs).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct LearnerSettings {
    /// `[glm]` (a member of the super learner).
    pub glm: GlmSpec,
    /// `[elastic_net]`.
    pub elastic_net: ElasticNetSpec,
    /// `[forest]`.
    pub forest: ForestSpec,
    /// `[super_learner]`.
    pub super_learner: SuperLearnerSpec,
}

/// The config's form of [`ReductionSpec`] (unknown keys are errors; an
/// unset estimator follows the learner).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReductionSpec {
    allowable: Vec<String>,
    targets: Vec<String>,
    #[serde(default)]
    estimator: Option<Estimator>,
    #[serde(default = "default_draws")]
    draws: usize,
    #[serde(default)]
    hospital_effects: HospitalEffects,
    #[serde(default)]
    learner: LearnerKind,
    #[serde(default = "default_folds")]
    folds: usize,
    #[serde(default)]
    glm: GlmSpec,
    #[serde(default)]
    elastic_net: ElasticNetSpec,
    #[serde(default)]
    forest: ForestSpec,
    #[serde(default)]
    super_learner: SuperLearnerSpec,
}

impl From<RawReductionSpec> for ReductionSpec {
    fn from(r: RawReductionSpec) -> ReductionSpec {
        let flexible = r.learner != LearnerKind::Glm;
        ReductionSpec {
            allowable: r.allowable,
            targets: r.targets,
            estimator: r.estimator.unwrap_or(if flexible {
                Estimator::DoublyRobust
            } else {
                Estimator::GComputation
            }),
            draws: r.draws,
            hospital_effects: r.hospital_effects,
            learner: r.learner,
            folds: r.folds,
            settings: flexible.then_some(LearnerSettings {
                glm: r.glm,
                elastic_net: r.elastic_net,
                forest: r.forest,
                super_learner: r.super_learner,
            }),
        }
    }
}

impl ReductionSpec {
    /// The methods text of a flexible learner (empty for `glm`).
    fn flexible_text(&self, cite: &mut Vec<&'static str>) -> String {
        if self.learner == LearnerKind::Glm {
            return String::new();
        }
        cite.extend([cite::CHERNOZHUKOV, cite::SUPER_LEARNER]);
        let what = match self.learner {
            LearnerKind::ElasticNet => {
                cite.push(cite::FRIEDMAN);
                "an elastic net (penalty chosen by cross-validation)"
            }
            LearnerKind::Forest => {
                cite.push(cite::BREIMAN);
                "a random forest"
            }
            _ => {
                cite.extend([cite::FRIEDMAN, cite::BREIMAN]);
                "a super learner (the cross-validated convex combination of a main-effects GLM, \
                 an elastic net and a random forest)"
            }
        };
        format!(
            " The nuisance models (the outcome model on both groups with the group indicator \
             and every covariate but the hospital identity; for weighting and the doubly \
             robust estimator, the density-ratio classifiers of intervened against observed \
             covariates, probabilities clipped to [10^-6, 1 - 10^-6]) were {what}, cross-fitted \
             over {} folds of whole clusters (Chernozhukov et al. 2018): each patient's \
             predictions, at its observed and at its intervened covariates, came from models \
             fitted without its fold. Standard errors came from the estimator's influence \
             functions summed by cluster with the nuisances held fixed (for the doubly \
             robust estimator its efficient influence function; the reference distribution's \
             term estimated from the drawn partners), unless the bootstrap was requested, \
             whose replicates refit every learner.",
            self.folds
        )
    }

    /// The flexible learner's cross-fitting settings (None for `glm`).
    pub fn learning(&self) -> Option<Learning> {
        let s = self.settings.as_ref()?;
        (self.learner != LearnerKind::Glm).then(|| Learning {
            config: LearnerConfig {
                learner: self.learner,
                glm: s.glm.clone(),
                elastic_net: s.elastic_net.clone(),
                forest: s.forest.clone(),
                super_learner: s.super_learner.clone(),
            },
            folds: self.folds,
        })
    }
}

/// A flexible learner with cross-fitting (`learner` other than `glm`).
#[derive(Debug, Clone, PartialEq)]
pub struct Learning {
    /// The learner and every learner's settings.
    pub config: LearnerConfig,
    /// Cross-fitting folds (of clusters when there are any).
    pub folds: usize,
}

fn default_draws() -> usize {
    5
}

fn default_folds() -> usize {
    healthgap_learn::DEFAULT_FOLDS
}

impl Spec for ReductionSpec {
    fn name(&self) -> &'static str {
        "disparity_reduction"
    }

    fn needs_rows(&self, _inference: &InferenceSpec) -> Option<DecomposeError> {
        Some(DecomposeError::NeedsRows {
            what: "method = \"disparity_reduction\"".into(),
            reason: "g-computation predicts each patient's outcome under the intervention, and weighting fits a propensity model over the rows".into(),
            alternative: ", or use oaxaca_blinder or gelbach, which run from moments".into(),
        })
    }

    fn run(
        &self,
        sample: &Sample<'_>,
        designs: &dyn Designs,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        let allowable = designs.expand(&self.allowable);
        let targets: Vec<(String, Vec<String>)> = self
            .targets
            .iter()
            .map(|t| {
                let vars: Vec<String> = designs
                    .expand(std::slice::from_ref(t))
                    .into_iter()
                    .filter(|v| !allowable.contains(v))
                    .collect();
                (t.clone(), vars)
            })
            .collect();
        let mut all: Vec<String> = allowable.clone();
        for (_, vars) in &targets {
            all.extend(
                vars.iter()
                    .filter(|v| !all.contains(v))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        // The other covariates (ℓ): every remaining factor variable.
        for v in designs.every_factor() {
            if !all.contains(&v) {
                all.push(v);
            }
        }
        let cov = designs.covariates(&all)?;
        let input = ReductionInput {
            sample,
            covariates: &cov,
            allowable: cov.columns_of(&allowable),
            targets: targets
                .iter()
                .map(|(name, vars)| Target {
                    name: name.clone(),
                    columns: cov.columns_of(vars),
                    absorbed: cov
                        .absorbed
                        .as_ref()
                        .is_some_and(|a| vars.contains(&a.variable)),
                })
                .collect(),
            draws: self.draws,
            estimator: self.estimator,
            hospital_effects: self.hospital_effects,
            learning: self.learning(),
        };
        let output = disparity_reduction(&input, inference, progress)?;
        let mut info = inference.info(sample.cluster_name(), &output);
        if input.learning.is_some() && inference.method == Method::Delta {
            // Influence functions of the cross-fitted estimator.
            info.method = "influence_function".into();
            info.vce = if sample.cluster.is_some() {
                "cluster"
            } else {
                "robust"
            }
            .into();
        } else {
            // Bootstrap only: every row comes from the replicates.
            info.method = "bootstrap".into();
            info.replicates = Some(inference.replicates);
            info.replicates_ok = output.replicates_ok;
        }
        Ok(Ran {
            output,
            info,
            hospitals: Vec::new(),
        })
    }

    fn title(&self) -> &'static str {
        "disparity reduction"
    }

    fn roles(&self) -> Vec<Role> {
        vec![
            Role::covariates("allowable", &self.allowable),
            Role::covariates("targets", &self.targets),
        ]
    }

    fn uses_every_factor(&self) -> bool {
        true
    }

    fn prefers_delta(&self) -> bool {
        self.learner != LearnerKind::Glm
    }

    fn check(&self, _: Vce) -> Result<(), String> {
        if self.draws == 0 {
            return Err("draws = 0: g-computation needs at least one draw per patient".into());
        }
        if let Some(learning) = self.learning() {
            if self.folds < 2 {
                return Err(format!(
                    "folds = {}: cross-fitting needs at least 2 folds (default 5)",
                    self.folds
                ));
            }
            learning
                .config
                .build()
                .map_err(|e| format!("learner = \"{}\": {e}", learner_name(self.learner)))?;
            if self.hospital_effects == HospitalEffects::Random {
                return Err(
                    "hospital_effects = \"random\" is a GLM outcome model: it needs learner = \"glm\""
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn breakdown(&self) -> Option<Breakdown> {
        Some(Breakdown {
            total: ("initial disparity", SHARES.total),
            parts: Parts::Blocks("disparity_reduction_shapley"),
            rest: ("remaining", "disparity_remaining"),
        })
    }

    fn condition(&self) -> String {
        format!(" (given {})", joined(&self.allowable))
    }

    fn describe(&self, _: &Context, cite: &mut Vec<&'static str>) -> String {
        cite.extend([cite::JACKSON, cite::LUNDBERG, cite::SHAPLEY, cite::EVALUE]);
        let estimator = match self.estimator {
            Estimator::Weighting => {
                "weighting by density ratios (logistic classifiers of intervened against \
                 observed covariates, with every covariate and the interactions of the \
                 intervened blocks' columns with the others; covariate balance is reported as \
                 standardized differences)"
            }
            Estimator::DoublyRobust => {
                "a doubly robust estimator (g-computation plus density-ratio-weighted residuals \
                 of the outcome model; the classifiers include the interactions of the \
                 intervened blocks' columns with the others)"
            }
            Estimator::GComputation => "g-computation",
        };
        let random = if self.hospital_effects == HospitalEffects::Random {
            cite.push(cite::MUNDLAK);
            " The outcome model's hospital effects were random (a hierarchical model with a \
             random hospital intercept, fitted by the Laplace approximation, and the hospital's \
             share of comparison patients as a hospital-level covariate, Mundlak 1978); the \
             care-site target moved patients between the hospitals' shrunken effects (the \
             covariate term plus the conditional mode; with an estimated hospital SD of 0, the \
             covariate term alone, as the outcome model's label and warnings say), and each \
             bootstrap replicate refitted that model."
        } else {
            ""
        };
        let flexible = self.flexible_text(cite);
        format!(
            "Interventional disparity reduction (Jackson & VanderWeele 2018) estimated, by \
             {estimator} with {} Monte Carlo draws per patient and common random numbers, how \
             much of the disparity standardized over {} would remain if each target block ({}) \
             of the comparison group were drawn from the reference group's distribution given \
             those covariates; the care-site target reassigns hospitals (the gap-closing \
             estimand of Lundberg 2022). Reductions are reported for each target alone, \
             jointly, sequentially in the configured order and as Shapley values over all \
             orders (Shorrocks 2013), with E-values for the remaining disparity (VanderWeele & \
             Ding 2017).{random}{flexible}",
            self.draws,
            joined(&self.allowable),
            joined(&self.targets)
        )
    }
}

/// Inputs of one disparity-reduction analysis.
pub struct ReductionInput<'a> {
    /// The outcome, groups, weights and cluster.
    pub sample: &'a Sample<'a>,
    /// Every covariate of the outcome model; at most one absorbed (hospital_id).
    pub covariates: &'a Covariates,
    /// Allowable covariates (indexes into the columns).
    pub allowable: Vec<usize>,
    /// Target blocks in the configured order.
    pub targets: Vec<Target>,
    /// Monte-Carlo draws per comparison patient.
    pub draws: usize,
    /// The estimator.
    pub estimator: Estimator,
    /// Fixed or random hospital effects in the outcome model.
    pub hospital_effects: HospitalEffects,
    /// A flexible learner with cross-fitting (None: the GLM models).
    pub learning: Option<Learning>,
}

impl ReductionInput<'_> {
    /// The same analysis on another sample (a replicate's weights or groups).
    fn on<'s>(&'s self, sample: &'s Sample<'s>) -> ReductionInput<'s> {
        ReductionInput {
            sample,
            covariates: self.covariates,
            allowable: self.allowable.clone(),
            targets: self.targets.clone(),
            draws: self.draws,
            estimator: self.estimator,
            hospital_effects: self.hospital_effects,
            learning: self.learning.clone(),
        }
    }
}

/// Everything fixed across replicates.
struct Setup<'a> {
    input: &'a ReductionInput<'a>,
    /// Pair rows (indexes into the input).
    rows: Vec<usize>,
    /// Group of each pair row.
    group: Vec<u8>,
    /// Stratum of each pair row (u32::MAX: a comparison row without reference rows in its stratum).
    stratum: Vec<u32>,
    strata: usize,
    /// The pair rows of each stratum (contiguous: rows are ordered by stratum).
    stratum_rows: Vec<std::ops::Range<usize>>,
    /// Weighting and doubly robust: per subset of targets (bitmask) and
    /// comparison patient, the estimated density ratio of the intervened to
    /// the observed covariates (held at the full-sample fit in replicates).
    ratio: Vec<Vec<f64>>,
    /// Weighting and doubly robust: the covariate balance of the density-ratio weights.
    balance: Vec<crate::result::Balance>,
    /// Reference rows (pair indexes) of each stratum.
    members: Vec<Vec<usize>>,
    /// Comparison rows used (pair indexes).
    comparison: Vec<usize>,
    /// Per stratum, the partner queries (slot c·D + d, uniform u) sorted by u,
    /// so that each replicate finds every partner in one merge pass.
    queries: Vec<Vec<(usize, f64)>>,
    /// Column block of each covariate column: 0 = other, k + 1 = target k.
    block_of: Vec<usize>,
    keys: Vec<Key>,
    shares: Shares,
    k: usize,
    /// Score/information cells of the outcome model at the full-sample fit.
    cells: Cells,
    step_spec: FitSpec,
    /// Full-sample coefficients: group indicator, [intercept,] columns.
    coef: Vec<f64>,
    cluster_of: Vec<u32>,
    /// Covariate columns over the pair rows: 0/1 columns (most of a clinical
    /// design) as the sorted rows where they are 1, the others dense. A
    /// replicate reads the design once; the sparse form cuts that memory
    /// traffic several-fold and gives the same sums.
    x: Vec<DesignColumn>,
    /// Outcome and base weight of each pair row.
    y: Vec<f64>,
    w: Vec<f64>,
    /// Absorbed level of each pair row.
    level: Vec<u32>,
    /// Full-sample level effects (warm start of the replicates').
    alpha_hat: Vec<f64>,
    /// A logit outcome model under the cluster bootstrap without
    /// `one_step`: the outcome design over the pair rows, refitted in each
    /// replicate to convergence from the full-sample coefficients.
    refit: Option<healthgap_models::Design>,
    /// Random hospital effects: the GLMM outcome model.
    random: Option<RandomHospitals>,
}

impl Setup<'_> {
    fn absorbed(&self) -> Option<&Absorbed> {
        self.input.covariates.absorbed.as_ref()
    }

    /// Whether the coefficients include an intercept (hospital effects
    /// absorbed: no; random hospital effects: yes, the effects are centred).
    fn has_intercept(&self) -> bool {
        self.absorbed().is_none() || self.random.is_some()
    }

    fn link(&self) -> Option<Link> {
        self.input.sample.binary.then_some(Link::Logit)
    }

    fn weight(&self, r: usize, mult: Option<&[f64]>) -> f64 {
        self.w[r] * mult.map_or(1.0, |m| m[self.cluster_of[r] as usize])
    }

    /// Every statistic, in key order.
    fn values(&self, mult: Option<&[f64]>) -> Result<Vec<f64>, String> {
        thread_local! {
            static PARTS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PARTS.with(|cell| {
            let mut flat = cell.borrow_mut();
            self.model_parts_into(mult, &mut flat)?;
            self.values_of_parts(&flat, mult)
        })
    }

    /// Every statistic from the replicate's block parts.
    fn values_of_parts(&self, flat: &[f64], mult: Option<&[f64]>) -> Result<Vec<f64>, String> {
        let (partner, sw, sy) = self.partners(mult);
        let (mu, wc, yc, refm) = match self.link() {
            None => self.subset_means(flat, &partner, &sw, &sy, mult, |eta| eta),
            Some(Link::Logit) => self.subset_means(flat, &partner, &sw, &sy, mult, |eta| {
                1.0 / (1.0 + (-eta).exp())
            }),
            Some(l) => self.subset_means(flat, &partner, &sw, &sy, mult, |eta| l.cdf(eta)),
        };
        if wc <= 0.0 {
            return Err("no comparison patient has reference patients in its stratum".into());
        }
        let mut mu: Vec<f64> = mu.iter().map(|m| m / wc).collect();
        let (ybar, rstd) = (yc / wc, refm / wc);
        if self.input.estimator != Estimator::GComputation {
            self.weighted_means(flat, &sw, mult, &mut mu, ybar);
        }
        self.statistics(&mu, ybar, rstd)
    }
}

/// The disparity reduction with its cluster bootstrap.
pub fn disparity_reduction(
    input: &ReductionInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    if let Some(learning) = &input.learning {
        return flexible_reduction(input, learning, inference, progress);
    }
    let mut warnings = Vec::new();
    let (setup, summary) = Setup::new(input, inference, &mut warnings)?;
    let point = setup.values(None).map_err(DecomposeError::Statistic)?;
    if inference.method == Method::Delta {
        warnings.push("disparity_reduction uses the bootstrap (there is no delta method for the Monte-Carlo g-formula)".into());
    }
    let booted = bootstrap(&setup, &point, inference, progress);
    let crate::inference::Inferred {
        rows: mut estimates,
        replicates_ok,
        withheld,
    } = crate::inference::Inferred::booted(booted, &mut warnings);
    e_value_limits(&mut estimates, point[1]);
    unstable_shares(&mut estimates, &SHARES, &mut warnings);
    Ok(MethodOutput {
        estimates,
        models: vec![summary],
        warnings,
        replicates_ok,
        withheld,
        balance: setup.balance.clone(),
        learners: None,
        inference_note: (input.sample.cluster.is_some()
            && input.sample.binary
            && inference.one_step
            && input.hospital_effects == HospitalEffects::Fixed)
            .then(|| ONE_STEP_NOTE.into()),
        n: setup.rows.len(),
    })
}

/// The config name of a learner.
pub fn learner_name(kind: LearnerKind) -> &'static str {
    match kind {
        LearnerKind::Glm => "glm",
        LearnerKind::ElasticNet => "elastic_net",
        LearnerKind::Forest => "forest",
        LearnerKind::SuperLearner => "super_learner",
    }
}

/// `inference.note` of influence-function standard errors with a flexible learner.
pub fn influence_note(learning: &Learning, estimator: Estimator) -> String {
    format!(
        "influence-function standard errors: the nuisance models ({} learner; the outcome model \
         and, for weighting and the doubly robust estimator, the density-ratio classifiers) are \
         cross-fitted over {} folds of whole clusters and held fixed; the {} estimator's \
         influence functions are summed by cluster (G/(G-1) factor){}",
        learner_name(learning.config.learner),
        learning.folds,
        match estimator {
            Estimator::DoublyRobust => "doubly robust",
            Estimator::Weighting => "weighting",
            Estimator::GComputation => "g-computation",
        },
        if estimator == Estimator::DoublyRobust {
            ""
        } else {
            "; outside the doubly robust estimator they omit the nuisances' first-order \
             estimation error"
        }
    )
}

/// The disparity reduction with cross-fitted flexible nuisances
/// ([`flexible`]): influence-function SEs ([`influence`]) under the delta
/// method, or a cluster (row) bootstrap that refits every learner in each
/// replicate.
fn flexible_reduction(
    input: &ReductionInput<'_>,
    learning: &Learning,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    let mut warnings = Vec::new();
    let flex = flexible::Flexible::new(input, learning, inference, &mut warnings)?;
    let row_keys = keys(&input.targets, input.sample.binary);
    let shares = SHARES.positions(&row_keys);
    let st = Statistics {
        k: input.targets.len(),
        keys: &row_keys,
        targets: &input.targets,
        binary: input.sample.binary,
        shares: &shares,
    };
    if input.estimator != Estimator::DoublyRobust {
        warnings.push(format!(
            "estimator = \"{}\" with a flexible learner: only the doubly robust estimator \
             corrects the first-order bias of machine-learned nuisances; its standard errors \
             treat the nuisances as known",
            match input.estimator {
                Estimator::Weighting => "weighting",
                _ => "gcomputation",
            }
        ));
    }
    let boot = inference.method == Method::Bootstrap && inference.replicates > 0;
    let (point, variance) = flex.values(&st, !boot).map_err(DecomposeError::Statistic)?;
    let (mut estimates, replicates_ok, withheld, note) = if boot {
        warnings.push(format!(
            "bootstrap with a flexible learner: each of the {} replicates refits every \
             cross-fitted learner ({} folds), which is slow; [inference] method = \"delta\" \
             gives influence-function standard errors from one fit",
            inference.replicates, learning.folds
        ));
        let booted = flexible_bootstrap(input, &row_keys, &point, inference, progress);
        let inferred = crate::inference::Inferred::booted(booted, &mut warnings);
        (
            inferred.rows,
            inferred.replicates_ok,
            inferred.withheld,
            None,
        )
    } else {
        let rows = crate::inference::delta_rows(
            &row_keys,
            &point,
            variance.as_deref(),
            inference.level,
            crate::result::SeMethod::InfluenceFunction,
        );
        (
            rows,
            None,
            None,
            Some(influence_note(learning, input.estimator)),
        )
    };
    e_value_limits(&mut estimates, point[1]);
    unstable_shares(&mut estimates, &SHARES, &mut warnings);
    Ok(MethodOutput {
        estimates,
        models: Vec::new(),
        warnings,
        replicates_ok,
        withheld,
        inference_note: note,
        balance: flex.balance,
        learners: Some(flex.diagnostics),
        n: flex.layout.rows.len(),
    })
}

/// The bootstrap of the flexible estimator: each replicate (clusters, or rows
/// within groups) reruns the whole cross-fitted analysis on the replicate's
/// weights.
fn flexible_bootstrap(
    input: &ReductionInput<'_>,
    row_keys: &[Key],
    point: &[f64],
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> crate::inference::Booted {
    let boot = InferenceSpec {
        method: Method::Delta,
        replicates: 0,
        ..inference.clone()
    };
    let run = |w: &[f64], group: &[u32]| -> Result<Vec<f64>, String> {
        let sample = Sample {
            weights: Some(w),
            group,
            ..*input.sample
        };
        let sub = input.on(&sample);
        let learning = sub.learning.as_ref().ok_or("no learner")?;
        let mut warnings = Vec::new();
        let flex = flexible::Flexible::new(&sub, learning, &boot, &mut warnings)
            .map_err(|e| e.to_string())?;
        let shares = SHARES.positions(row_keys);
        let st = Statistics {
            k: sub.targets.len(),
            keys: row_keys,
            targets: &sub.targets,
            binary: sub.sample.binary,
            shares: &shares,
        };
        flex.values(&st, false).map(|(v, _)| v)
    };
    let base: Vec<f64> = (0..input.sample.y.len())
        .map(|i| input.sample.weights.map_or(1.0, |w| w[i]))
        .collect();
    let spec = InferenceSpec {
        method: Method::Bootstrap,
        ..inference.clone()
    };
    match input.sample.cluster {
        Some(Cluster {
            count: g, codes, ..
        }) => {
            let stat = |m: &[f64]| {
                let w: Vec<f64> = base
                    .iter()
                    .zip(codes)
                    .map(|(w, &c)| w * m[c as usize])
                    .collect();
                run(&w, input.sample.group)
            };
            bootstrap_rows(row_keys, point, &spec, g, None, stat, progress)
        }
        None => row_bootstrap(
            row_keys,
            point,
            &spec,
            input.sample.group,
            input.sample.weights,
            run,
            progress,
        ),
    }
}

/// The cluster bootstrap (replicates reweight the setup) or, without
/// clusters, the row bootstrap (each replicate a full analysis).
fn bootstrap(
    setup: &Setup<'_>,
    point: &[f64],
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> crate::inference::Booted {
    let input = setup.input;
    let stat = |m: &[f64]| setup.values(Some(m));
    let boot = InferenceSpec {
        method: Method::Bootstrap,
        ..inference.clone()
    };
    match input.sample.cluster {
        Some(Cluster { count: g, .. }) => {
            bootstrap_rows(&setup.keys, point, &boot, g, None, stat, progress)
        }
        None => row_bootstrap(
            &setup.keys,
            point,
            &boot,
            input.sample.group,
            input.sample.weights,
            |w, grp| {
                let sample = Sample {
                    group: grp,
                    weights: Some(w),
                    cluster: None,
                    ..*input.sample
                };
                let sub = input.on(&sample);
                // The replicate's point values only: no replicates and no
                // jackknife (a BCa jackknife here would recurse).
                let spec = InferenceSpec {
                    replicates: 0,
                    interval: healthgap_models::bootstrap::Interval::Percentile,
                    ..boot.clone()
                };
                disparity_reduction(&sub, &spec, &|| {})
                    .map(|o| o.estimates.iter().map(|e| e.estimate).collect())
                    .map_err(|e| e.to_string())
            },
            progress,
        ),
    }
}

impl<'a> Setup<'a> {
    /// Everything fixed across replicates: strata, partner queries, the
    /// outcome model (and its one-step cells), the density ratios.
    fn new(
        input: &'a ReductionInput<'a>,
        inference: &InferenceSpec,
        warnings: &mut Vec<String>,
    ) -> Result<(Setup<'a>, ModelSummary), DecomposeError> {
        let k = input.targets.len();
        if k == 0 || k > 6 {
            return Err(DecomposeError::TargetCount { targets: k });
        }
        let layout = Layout::new(input, warnings)?;
        warnings.extend(positivity_warning(input, &layout));
        warnings.extend(sparse_hospitals_warning(input, &layout.rows, &layout.group));
        let OutcomeModel {
            design,
            coef,
            summary,
            random,
        } = outcome_model(input, &layout.rows, &layout.group, inference, warnings)?;
        if random.is_some() && inference.one_step && input.sample.cluster.is_some() {
            warnings.push(
                "[inference] one_step = true does not apply to random hospital effects: each \
                 replicate refits the hierarchical outcome model to convergence"
                    .into(),
            );
        }
        let Layout {
            rows,
            group,
            stratum_raw,
            strata,
            members,
            comparison,
            ..
        } = layout;
        let cov = input.covariates;
        let mut block_of = vec![0usize; cov.columns.len()];
        for (t, target) in input.targets.iter().enumerate() {
            for &j in &target.columns {
                block_of[j] = t + 1;
            }
        }
        let cluster_of: Vec<u32> = rows
            .iter()
            .map(|&i| input.sample.cluster.map_or(0, |c| c.codes[i]))
            .collect();
        // Uniforms for the partners (common random numbers).
        let key = stream_key(inference.seed, &format!("{}/draws", inference.analysis_id));
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        let uniforms: Vec<f64> = (0..comparison.len() * input.draws)
            .map(|_| rng.random::<f64>())
            .collect();
        let mut queries: Vec<Vec<(usize, f64)>> = vec![Vec::new(); strata];
        for (ci, &r) in comparison.iter().enumerate() {
            for draw in 0..input.draws {
                let slot = ci * input.draws + draw;
                queries[stratum_raw[r] as usize].push((slot, uniforms[slot]));
            }
        }
        for q in &mut queries {
            q.sort_by(|a, b| a.1.total_cmp(&b.1));
        }
        let row_keys = keys(&input.targets, input.sample.binary);
        let mut setup = Setup {
            ratio: Vec::new(),
            balance: Vec::new(),
            input,
            rows: rows.clone(),
            group,
            stratum_rows: {
                let mut ranges = vec![0..0; strata];
                let mut r = 0;
                while r < stratum_raw.len() {
                    let s = stratum_raw[r];
                    let start = r;
                    while r < stratum_raw.len() && stratum_raw[r] == s {
                        r += 1;
                    }
                    if let Some(range) = ranges.get_mut(s as usize) {
                        *range = start..r;
                    }
                }
                ranges
            },
            stratum: stratum_raw,
            strata,
            members,
            comparison,
            queries,
            block_of,
            shares: SHARES.positions(&row_keys),
            keys: row_keys,
            k,
            cells: Cells::build(&[], &[], &Covariates::default(), None, None),
            step_spec: FitSpec {
                groups: [true, true],
                indicator: true,
                absorb: cov.absorbed.is_some(),
                columns: vec![],
            },
            coef,
            cluster_of,
            x: cov
                .columns
                .iter()
                .map(|c| DesignColumn::new(rows.iter().map(|&i| c.values[i]).collect()))
                .collect(),
            y: rows.iter().map(|&i| input.sample.y[i]).collect(),
            w: rows
                .iter()
                .map(|&i| input.sample.weights.map_or(1.0, |w| w[i]))
                .collect(),
            level: Vec::new(),
            alpha_hat: Vec::new(),
            refit: None,
            random,
        };
        let fixed = setup.random.is_none();
        if fixed && input.sample.binary && input.sample.cluster.is_some() && !inference.one_step {
            setup.refit = Some(design);
        }
        if let Some(a) = &cov.absorbed {
            setup.level = setup.rows.iter().map(|&i| a.codes[i]).collect();
            let prior = setup.random.as_ref().map(|r| r.prior);
            setup.alpha_hat = setup.alphas(&setup.block_parts(&setup.coef), None, &[], prior);
        }
        if fixed && setup.refit.is_none() {
            setup.step_cells()?;
        }
        if input.estimator != Estimator::GComputation {
            let ratios = setup.density_ratios(warnings)?;
            setup.ratio = ratios.ratio;
            setup.balance = ratios.balance;
            warnings.push(
                "the density-ratio models are held at their full-sample fit in the bootstrap \
             replicates (their estimation error is not propagated: conservative for weighting, \
             second-order for the doubly robust estimator)"
                    .into(),
            );
        }
        Ok((setup, summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::covariates::{Absorbed, Column};
    use healthgap_models::{Design, Glm, Glmm, GlmmFamily, Grouping};

    /// A discrete world computable by hand: one allowable stratum, a binary
    /// target T, a linear outcome y = 1 + 2T + 0.5·c (saturated model, exact).
    /// P(T = 1 | r) = 0.2, P(T = 1 | c) = 0.6: ȳ_c − ȳ_r = 0.5 + 2(0.4) = 1.3;
    /// equalising T removes 2·0.4 = 0.8, leaving the direct 0.5.
    /// The same answer from every estimator: with one binary target the
    /// density-ratio classifier is saturated and the outcome model exact, so
    /// weighting, g-computation and the doubly robust estimator agree to
    /// rounding on the same partner draws.
    #[test]
    fn known_answer_on_a_saturated_discrete_model() {
        let mut gcomp = None;
        for estimator in [
            Estimator::GComputation,
            Estimator::Weighting,
            Estimator::DoublyRobust,
        ] {
            let reduction = known_answer_with(estimator);
            let first = *gcomp.get_or_insert(reduction);
            assert!(
                (reduction - first).abs() < 1e-9,
                "{estimator:?}: {reduction} vs g-computation {first}"
            );
        }
    }

    fn known_answer_with(estimator: Estimator) -> f64 {
        let mut y = Vec::new();
        let mut g = Vec::new();
        let mut t = Vec::new();
        for (grp, n, n1) in [(0u32, 500, 100), (1, 500, 300)] {
            for i in 0..n {
                let ti = f64::from(u8::from(i < n1));
                y.push(1.0 + 2.0 * ti + 0.5 * f64::from(grp));
                g.push(grp);
                t.push(ti);
            }
        }
        let cov = Covariates {
            columns: vec![Column {
                name: "t".into(),
                factor: "target".into(),
                values: t.to_vec(),
            }],
            ..Default::default()
        };
        // No allowable covariates: one stratum.
        let input = ReductionInput {
            sample: &Sample {
                outcome: "y",
                y: &y,
                group: &g,
                labels: ["r", "c"],
                weights: None,
                cluster: None,
                binary: false,
                min_cell: 11,
            },
            covariates: &cov,
            allowable: vec![],
            targets: vec![Target {
                name: "target".into(),
                columns: vec![0],
                absorbed: false,
            }],
            draws: 200,
            estimator,
            hospital_effects: HospitalEffects::Fixed,
            learning: None,
        };
        let mut spec = InferenceSpec::delta(0.95);
        spec.replicates = 0;
        let out = disparity_reduction(&input, &spec, &|| {}).unwrap();
        let get = |q: &str| {
            out.estimates
                .iter()
                .find(|e| e.quantity == q && e.factor.is_none())
                .unwrap()
                .estimate
        };
        assert!((get("initial_disparity") - 1.3).abs() < 1e-12);
        // Monte Carlo over 200 draws per patient: within 4 simulation SEs of 0.8.
        let sim_se = 2.0 * (0.2f64 * 0.8 / (500.0 * 200.0)).sqrt();
        assert!(
            (get("disparity_reduction") - 0.8).abs() < 4.0 * sim_se,
            "{}",
            get("disparity_reduction")
        );
        assert!((get("disparity_remaining") - 0.5).abs() < 4.0 * sim_se);
        get("disparity_reduction")
    }
    /// A deterministic uniform(0, 1) stream (xorshift64).
    fn xorshift(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// `hospital_id` absorbed with `levels` levels.
    fn hospital_levels(h: &[u32], levels: usize) -> Absorbed {
        Absorbed {
            variable: "hospital_id".into(),
            factor: "hospital".into(),
            codes: h.to_vec(),
            levels,
            labels: (0..levels).map(|l| l.to_string()).collect(),
        }
    }

    /// A binary outcome clustered by hospital.
    fn clustered_binary<'a>(y: &'a [f64], g: &'a [u32], h: &'a [u32], levels: usize) -> Sample<'a> {
        Sample {
            outcome: "y",
            y,
            group: g,
            labels: ["r", "c"],
            weights: None,
            cluster: Some(Cluster {
                name: "hospital_id",
                codes: h,
                count: levels,
            }),
            binary: true,
            min_cell: 11,
        }
    }

    /// Random hospital effects: the full-sample effects the care-site
    /// target uses are the GLMM's conditional modes (finite for hospitals
    /// without deaths), and a replicate's refit equals a cold GLMM fit on the
    /// replicate written out row by row.
    #[test]
    fn random_hospital_effects_are_the_glmm_modes_and_replicates_refit() {
        let (n, hospitals) = (6_000usize, 400usize);
        let mut uniform = xorshift(777);
        let (mut y, mut g, mut x, mut h) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let hosp = (i % hospitals) as u32;
            let grp = u32::from(uniform() < 0.4);
            let xi = uniform() - 0.5;
            let eta = -2.5 + 0.4 * f64::from(grp) + xi + 0.4 * (f64::from(hosp % 5) - 2.0);
            y.push(f64::from(u8::from(uniform() < 1.0 / (1.0 + (-eta).exp()))));
            g.push(grp);
            x.push(xi);
            h.push(hosp);
        }
        let cov = Covariates {
            columns: vec![Column {
                name: "x".into(),
                factor: "clinical".into(),
                values: x.to_vec(),
            }],
            categoricals: vec![],
            absorbed: Some(hospital_levels(&h, hospitals)),
        };
        let input = ReductionInput {
            sample: &clustered_binary(&y, &g, &h, hospitals),
            covariates: &cov,
            allowable: vec![],
            targets: vec![Target {
                name: "care_site".into(),
                columns: vec![],
                absorbed: true,
            }],
            draws: 2,
            estimator: Estimator::GComputation,
            hospital_effects: HospitalEffects::Random,
            learning: None,
        };
        let spec = InferenceSpec::delta(0.95);
        let (setup, summary) = Setup::new(&input, &spec, &mut Vec::new()).unwrap();
        assert!(summary.label.contains("random intercept"));
        assert!(setup.refit.is_none() && setup.random.is_some());
        // The design over the pair rows, as the GLMM saw it: with each
        // hospital's share of comparison patients.
        let (mut count, mut compared) = (vec![0.0; hospitals], vec![0.0; hospitals]);
        for i in 0..n {
            count[h[i] as usize] += 1.0;
            compared[h[i] as usize] += f64::from(g[i]);
        }
        let share: Vec<f64> = compared.iter().zip(&count).map(|(c, n)| c / n).collect();
        let design = |rows: &[usize]| {
            let cols = vec![
                (
                    "group".to_string(),
                    rows.iter().map(|&i| f64::from(g[i])).collect(),
                ),
                ("(intercept)".to_string(), vec![1.0; rows.len()]),
                ("x".to_string(), rows.iter().map(|&i| x[i]).collect()),
                (
                    "share".to_string(),
                    rows.iter().map(|&i| share[h[i] as usize]).collect(),
                ),
            ];
            Design::from_columns("y", rows.iter().map(|&i| y[i]).collect(), cols).unwrap()
        };
        let codes: Vec<u32> = setup.rows.iter().map(|&i| h[i]).collect();
        fn grouping(codes: &[u32], levels: usize) -> Grouping<'_> {
            Grouping {
                name: "hospital_id",
                codes,
                levels,
            }
        }
        let fit = Glmm::new(GlmmFamily::Logit)
            .fit(
                &design(&setup.rows),
                grouping(&codes, hospitals),
                None,
                None,
            )
            .unwrap();
        let zero = (0..hospitals)
            .filter(|&l| (0..n).all(|i| h[i] as usize != l || y[i] == 0.0))
            .count();
        assert!(zero > 20, "{zero} hospitals without deaths");
        let gamma = fit.coef[3];
        assert!((setup.coef[3] - gamma).abs() < 1e-9);
        for (l, a) in setup.alpha_hat.iter().enumerate() {
            assert!(a.is_finite(), "hospital {l}: {a}");
            let expected = gamma * share[l] + fit.modes[l][0];
            assert!(
                (a - expected).abs() < 1e-6,
                "{a} vs γ·share + mode {expected}"
            );
        }
        // A replicate: the refit against a cold fit of the replicate written
        // out, each draw of a hospital a hospital of its own.
        let random = setup.random.as_ref().unwrap();
        assert!(random.copies);
        let mult: Vec<f64> = (0..hospitals)
            .map(|c| [0.0, 1.0, 2.0, 1.0, 3.0][c % 5])
            .collect();
        let (warm, prior) = random.refitted(&setup.w, &mult, &setup.cluster_of).unwrap();
        let (mut expanded, mut ecodes) = (vec![], vec![]);
        for copy in 0..3 {
            for &i in &setup.rows {
                if (copy as f64) < mult[h[i] as usize] {
                    expanded.push(i);
                    ecodes.push(h[i] + (copy * hospitals) as u32);
                }
            }
        }
        let cold = Glmm::new(GlmmFamily::Logit)
            .fit(
                &design(&expanded),
                grouping(&ecodes, 3 * hospitals),
                None,
                None,
            )
            .unwrap();
        for (a, b) in warm.iter().zip(&cold.coef) {
            assert!((a - b).abs() < 1e-4, "warm {a} vs cold {b}");
        }
        assert!((prior.sd - cold.intercept_sd).abs() < 1e-4 * cold.intercept_sd.max(1.0));
        assert!(
            (warm[0] - setup.coef[0]).abs() > 1e-3,
            "the replicate moved"
        );
    }

    /// A converged cluster-bootstrap replicate equals a cold fit of the
    /// outcome model on the replicate's data written out (each row repeated
    /// by its cluster's multiplicity, no weights) to 1e-8.
    #[test]
    fn converged_replicate_equals_a_cold_refit_of_the_expanded_sample() {
        let (n, hospitals) = (20_000usize, 1500usize);
        let mut uniform = xorshift(12345);
        let (mut y, mut g, mut x, mut t, mut h) = (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let hosp = (i % hospitals) as u32;
            let grp = u32::from(uniform() < 0.4);
            let xi = 40.0 + 50.0 * uniform();
            let ti = f64::from(u8::from(uniform() < 0.3 + 0.3 * f64::from(grp)));
            let eta = -3.5
                + 0.5 * f64::from(grp)
                + 0.04 * (xi - 65.0)
                + 0.7 * ti
                + 0.3 * f64::from(hosp % 7);
            y.push(f64::from(u8::from(uniform() < 1.0 / (1.0 + (-eta).exp()))));
            g.push(grp);
            x.push(xi);
            t.push(ti);
            h.push(hosp);
        }
        let cov = Covariates {
            columns: vec![
                Column {
                    name: "x".into(),
                    factor: "clinical".into(),
                    values: x.to_vec(),
                },
                Column {
                    name: "t".into(),
                    factor: "target".into(),
                    values: t.to_vec(),
                },
            ],
            categoricals: vec![],
            absorbed: Some(hospital_levels(&h, hospitals)),
        };
        let input = ReductionInput {
            sample: &clustered_binary(&y, &g, &h, hospitals),
            covariates: &cov,
            allowable: vec![],
            targets: vec![Target {
                name: "target".into(),
                columns: vec![1],
                absorbed: false,
            }],
            draws: 2,
            estimator: Estimator::GComputation,
            hospital_effects: HospitalEffects::Fixed,
            learning: None,
        };
        let spec = InferenceSpec::delta(0.95);
        let (setup, _) = Setup::new(&input, &spec, &mut Vec::new()).unwrap();
        assert!(setup.refit.is_some());
        let mult: Vec<f64> = (0..hospitals)
            .map(|c| [0.0, 1.0, 2.0, 1.0, 3.0][c % 5])
            .collect();
        let warm = setup.refitted(&mult).unwrap();
        // The replicate written out row by row.
        let mut cols = vec![
            ("group".to_string(), vec![]),
            ("x".to_string(), vec![]),
            ("t".to_string(), vec![]),
        ];
        let (mut ys, mut levels) = (vec![], vec![]);
        for i in 0..n {
            for _ in 0..mult[h[i] as usize] as usize {
                cols[0].1.push(f64::from(g[i]));
                cols[1].1.push(x[i]);
                cols[2].1.push(t[i]);
                ys.push(y[i]);
                levels.push(i64::from(h[i]));
            }
        }
        let expanded = Design::from_columns("y", ys, cols)
            .unwrap()
            .with_absorbed("hospital_id", &levels);
        let cold = Glm::logit().fit(&expanded, None).unwrap();
        assert_eq!(warm.len(), cold.coef.len());
        for (a, b) in warm.iter().zip(&cold.coef) {
            assert!((a - b).abs() < 1e-8, "warm {a} vs cold {b}");
        }
        // The replicate moved away from the full-sample fit (the comparison can fail).
        assert!((warm[0] - setup.coef[0]).abs() > 1e-4);
    }
}
