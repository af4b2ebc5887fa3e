//! What an `[[analysis]]` asks for: [`MethodSpec`], a serde-tagged enum of
//! the per-method option structs. Each struct lives in its method's module
//! with its defaults (written once, as serde defaults) and implements
//! [`Spec`]: the variables it names, its config-level checks, the breakdown
//! the triangulation and the findings read, and its methods paragraph. The
//! report reads these, never the options by key.
//!
//! Adding a method: its module (estimator, spec struct, `impl Spec`), one
//! variant here (and its arm in [`MethodSpec::spec`]), and its figure if it
//! has one (docs/ARCHITECTURE.md).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cells::Cells;
use crate::covariates::{Absorbed, Covariates};
use crate::error::DecomposeError;
use crate::hospital::HospitalRow;
use crate::inference::InferenceSpec;
use crate::result::{InferenceInfo, MethodOutput};
use crate::sample::{CellSample, Sample};

use crate::crude::CrudeSpec;
use crate::gelbach::GelbachSpec;
use crate::hospital::HospitalSpec;
use crate::inference::Vce;
use crate::mediation::MediationSpec;
use crate::oaxaca::OaxacaSpec;
use crate::reduction::ReductionSpec;

/// One analysis's method and its options, tagged by `method`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum MethodSpec {
    /// Crude gaps.
    Crude(CrudeSpec),
    /// Oaxaca–Blinder (linear, or Yun/Fairlie for logit and probit).
    OaxacaBlinder(OaxacaSpec),
    /// Gelbach.
    Gelbach(GelbachSpec),
    /// Interventional disparity reduction.
    DisparityReduction(ReductionSpec),
    /// Causal mediation.
    Mediation(MediationSpec),
    /// Care-site analysis.
    Hospital(HospitalSpec),
}

impl MethodSpec {
    /// The method's options as [`Spec`].
    pub fn spec(&self) -> &dyn Spec {
        match self {
            MethodSpec::Crude(s) => s,
            MethodSpec::OaxacaBlinder(s) => s,
            MethodSpec::Gelbach(s) => s,
            MethodSpec::DisparityReduction(s) => s,
            MethodSpec::Mediation(s) => s,
            MethodSpec::Hospital(s) => s,
        }
    }

    /// The method's name as written in configs and results (`oaxaca_blinder`).
    pub fn name(&self) -> &'static str {
        self.spec().name()
    }

    /// Runs the method for one outcome and comparison (see [`Spec::run`]).
    pub fn run(
        &self,
        sample: &Sample<'_>,
        designs: &dyn Designs,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        self.spec().run(sample, designs, inference, progress)
    }

    /// Runs the method from per-cell moments (see [`Spec::run_cells`]).
    pub fn run_cells(
        &self,
        sample: &CellSample<'_>,
        source: &dyn CellSource,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        self.spec().run_cells(sample, source, inference, progress)
    }

    /// The options with their defaults filled in, as written to results.json
    /// (`options.analysis`) and printed by `check`: the serialized spec
    /// without its `method` tag.
    pub fn options_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(map) = v.as_object_mut() {
            map.remove("method");
        }
        v
    }
}

/// The data layer's side of a run: design columns by variable name. The
/// cohort crate builds them (the CLI implements this over a cohort); the
/// methods never see a data frame.
pub trait Designs {
    /// Variables and block names as variables, in order, once each.
    fn expand(&self, names: &[String]) -> Vec<String>;
    /// Every factor variable, in block order.
    fn every_factor(&self) -> Vec<String>;
    /// The covariates of `variables`, in order (built once and shared).
    fn covariates(&self, variables: &[String]) -> Result<Arc<Covariates>, DecomposeError>;
    /// The categorical `name` as absorbed fixed effects in block `factor`
    /// (None when it is not categorical).
    fn absorbed(&self, name: &str, factor: &str) -> Option<Absorbed>;
}

/// The data layer's side of a run from moments: per-cell sufficient
/// statistics by variable list, computed where the data live (a warehouse's
/// `GROUP BY` of sums of products), never the rows.
pub trait CellSource {
    /// Variables and block names as variables, in order, once each.
    fn expand(&self, names: &[String]) -> Vec<String>;
    /// Every factor variable, in block order.
    fn every_factor(&self) -> Vec<String>;
    /// The covariates' layout of `variables` (column names and blocks, the
    /// categoricals, the absorbed variable with its levels; no row values)
    /// and the (group × absorbed level × cluster) cells over those columns,
    /// coded as [`Designs::covariates`] codes the rows.
    fn cells(&self, variables: &[String]) -> Result<(Arc<Covariates>, Cells), DecomposeError>;
    /// As [`CellSource::cells`], with the categorical variable `absorbed`
    /// absorbed whatever its number of levels (the hospital of a care-site
    /// analysis, as [`Designs::absorbed`] gives it on rows); `variables` may
    /// hold no other absorbed variable.
    fn absorbed_cells(
        &self,
        variables: &[String],
        absorbed: &str,
    ) -> Result<(Arc<Covariates>, Cells), DecomposeError>;
}

/// What one run of a method gives: its output, how its inference ran, and
/// (care-site analyses) the hospital profiles.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Estimates, models, warnings.
    pub output: MethodOutput,
    /// Inference as it ran.
    pub info: InferenceInfo,
    /// Per-hospital profiles (hospital analyses; empty otherwise).
    pub hospitals: Vec<HospitalRow>,
}

impl Ran {
    /// The output with its untagged rows tagged as the delta method of
    /// `inference` ran them, and the inference info.
    pub fn delta(
        mut output: MethodOutput,
        inference: &InferenceSpec,
        cluster: Option<&str>,
    ) -> Ran {
        let how = inference.delta_method();
        for e in &mut output.estimates {
            e.tag_untagged(how);
        }
        let info = inference.info(cluster, &output);
        Ran {
            output,
            info,
            hospitals: Vec::new(),
        }
    }
}

/// How a list of names in an analysis's options is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    /// Variables or block names of `[factors]`.
    Covariates,
    /// Categorical columns absorbed as fixed effects (need not be in any block).
    Absorbed,
}

/// A list of names one option holds (`base = [...]`), for the config's
/// name checks, the loader's columns and the analysis's complete cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The option's key.
    pub key: &'static str,
    /// The names as written.
    pub names: Vec<String>,
    /// How they are read.
    pub kind: RoleKind,
}

impl Role {
    /// Variables or blocks under `key`.
    pub fn covariates(key: &'static str, names: &[String]) -> Role {
        Role {
            key,
            names: names.to_vec(),
            kind: RoleKind::Covariates,
        }
    }

    /// Absorbed categorical columns under `key`.
    pub fn absorbed(key: &'static str, names: &[String]) -> Role {
        Role {
            key,
            names: names.to_vec(),
            kind: RoleKind::Absorbed,
        }
    }
}

/// The parts a method splits its total into, by quantity name (the rows the
/// triangulation, the shares figure and the waterfall read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakdown {
    /// Label and quantity of the total.
    pub total: (&'static str, &'static str),
    /// The attributed parts.
    pub parts: Parts,
    /// Label and quantity of what the parts leave.
    pub rest: (&'static str, &'static str),
}

/// The attributed parts of a [`Breakdown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parts {
    /// One row per factor block of this quantity (rows with a factor).
    Blocks(&'static str),
    /// One part attributed to the block holding `variable`, labelled
    /// `<block><suffix>`.
    One {
        /// Quantity of the part's row.
        quantity: &'static str,
        /// The variable whose block the part is attributed to.
        variable: String,
        /// Appended to the block's name in the label.
        suffix: String,
    },
}

/// What a methods paragraph may refer to beyond the method's own options.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The factor blocks, joined (`clinical, socioeconomic`).
    pub blocks: String,
    /// The study ran from per-cell moments computed in warehouses (no
    /// patient row left them).
    pub from_moments: bool,
}

/// A method's options: what every method provides to the run and the report.
pub trait Spec {
    /// The method's name (`method = "..."`).
    fn name(&self) -> &'static str;

    /// The method's name in a sentence (`Oaxaca–Blinder`).
    fn title(&self) -> &'static str {
        self.name()
    }

    /// Runs the method for one outcome and comparison: builds its design
    /// from `designs`, fits, and makes its inference.
    fn run(
        &self,
        sample: &Sample<'_>,
        designs: &dyn Designs,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError>;

    /// Runs the method from per-cell moments instead of rows (a warehouse
    /// study without row export). Moment-based methods override it; the
    /// default refuses with [`Spec::needs_rows`]'s reason.
    fn run_cells(
        &self,
        _sample: &CellSample<'_>,
        _source: &dyn CellSource,
        _inference: &InferenceSpec,
        _progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        Err(self
            .needs_rows(_inference)
            .unwrap_or_else(|| DecomposeError::NeedsRows {
                what: format!("method = \"{}\"", self.name()),
                reason: "it has no moment-based version".into(),
                alternative: String::new(),
            }))
    }

    /// Why this analysis cannot run from per-cell moments with `inference`
    /// (None: it can), as the error [`Spec::run_cells`] returns; checked when
    /// the config is, before any data are read.
    fn needs_rows(&self, _inference: &InferenceSpec) -> Option<DecomposeError> {
        Some(DecomposeError::NeedsRows {
            what: format!("method = \"{}\"", self.name()),
            reason: "it has no moment-based version yet".into(),
            alternative: String::new(),
        })
    }

    /// The lists of names its options hold.
    fn roles(&self) -> Vec<Role> {
        Vec::new()
    }

    /// Whether the analysis uses every factor variable (its complete cases
    /// are then taken over all of them).
    fn uses_every_factor(&self) -> bool {
        false
    }

    /// Whether the method's inference defaults to the delta method (here:
    /// influence functions) even with a cluster, whose default is otherwise
    /// the bootstrap (a disparity reduction with a flexible learner, whose
    /// replicates would refit every learner).
    fn prefers_delta(&self) -> bool {
        false
    }

    /// Checks of the options that need no data (`vce` is `[design] vce`):
    /// a message for the user when they cannot run.
    fn check(&self, _vce: Vce) -> Result<(), String> {
        Ok(())
    }

    /// The split the triangulation and the findings show (None: the method
    /// splits nothing, as crude gaps).
    fn breakdown(&self) -> Option<Breakdown> {
        None
    }

    /// The quantity of the detailed (per-term) rows drawn as a forest plot.
    fn detailed_quantity(&self) -> Option<&'static str> {
        None
    }

    /// What the method holds fixed or goes through, for the triangulation's
    /// column header (` (given age, sex)`), or empty.
    fn condition(&self) -> String {
        String::new()
    }

    /// The methods paragraph's sentence on this analysis, with the citations
    /// it uses pushed onto `cite`.
    fn describe(&self, context: &Context, cite: &mut Vec<&'static str>) -> String;

    /// The model-based variance (`vce = "model"`) in words.
    fn model_variance(&self) -> &'static str {
        "model-based variances of each model, the models taken as independent"
    }
}

/// Names joined for a sentence (`a, b`).
pub fn joined(names: &[String]) -> String {
    names.join(", ")
}

/// The references the methods paragraphs cite.
pub mod cite {
    /// Oaxaca 1973.
    pub const OAXACA: &str = "Oaxaca RL. Male-female wage differentials in urban labor markets. Int Econ Rev 1973;14:693–709.";
    /// Blinder 1973.
    pub const BLINDER: &str = "Blinder AS. Wage discrimination: reduced form and structural estimates. J Hum Resour 1973;8:436–455.";
    /// Jann 2008.
    pub const JANN: &str = "Jann B. The Blinder–Oaxaca decomposition for linear regression models. Stata J 2008;8:453–479.";
    /// Yun 2005.
    pub const YUN2005: &str = "Yun MS. A simple solution to the identification problem in detailed wage decompositions. Econ Inq 2005;43:766–772.";
    /// Yun 2004.
    pub const YUN2004: &str =
        "Yun MS. Decomposing differences in the first moment. Econ Lett 2004;82:275–280.";
    /// Fairlie 2005.
    pub const FAIRLIE: &str = "Fairlie RW. An extension of the Blinder-Oaxaca decomposition technique to logit and probit models. J Econ Soc Meas 2005;30:305–316.";
    /// Gelbach 2016.
    pub const GELBACH: &str = "Gelbach JB. When do covariates matter? And which ones, and how much? J Labor Econ 2016;34:509–543.";
    /// Jackson & VanderWeele 2018.
    pub const JACKSON: &str = "Jackson JW, VanderWeele TJ. Decomposition analysis to identify intervention targets for reducing disparities. Epidemiology 2018;29:825–835.";
    /// Lundberg 2022.
    pub const LUNDBERG: &str = "Lundberg I. The gap-closing estimand: a causal approach to study interventions that close disparities across social categories. Sociol Methods Res 2022.";
    /// Shorrocks 2013.
    pub const SHAPLEY: &str = "Shorrocks AF. Decomposition procedures for distributional analysis: a unified framework based on the Shapley value. J Econ Inequal 2013;11:99–126.";
    /// Valeri & VanderWeele 2013.
    pub const VALERI: &str = "Valeri L, VanderWeele TJ. Mediation analysis allowing for exposure–mediator interactions and causal interpretation. Psychol Methods 2013;18:137–150.";
    /// Imai, Keele & Yamamoto 2010.
    pub const IMAI: &str = "Imai K, Keele L, Yamamoto T. Identification, inference and sensitivity analysis for causal mediation effects. Stat Sci 2010;25:51–71.";
    /// VanderWeele & Ding 2017.
    pub const EVALUE: &str = "VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the E-value. Ann Intern Med 2017;167:268–274.";
    /// Kitagawa 1955.
    pub const KITAGAWA: &str = "Kitagawa EM. Components of a difference between two rates. J Am Stat Assoc 1955;50:857–879.";
    /// Krumholz et al. 2006.
    pub const KRUMHOLZ: &str = "Krumholz HM, et al. An administrative claims model suitable for profiling hospital performance based on 30-day mortality rates. Circulation 2006;113:1683–1692.";
    /// Cameron & Miller 2015.
    pub const CAMERON: &str = "Cameron AC, Miller DL. A practitioner's guide to cluster-robust inference. J Hum Resour 2015;50:317–372.";
    /// Double/debiased machine learning.
    pub const CHERNOZHUKOV: &str = "Chernozhukov V, Chetverikov D, Demirer M, Duflo E, Hansen C, Newey W, Robins J. Double/debiased machine learning for treatment and structural parameters. Econom J 2018;21:C1–C68.";
    /// Super learner.
    pub const SUPER_LEARNER: &str = "van der Laan MJ, Polley EC, Hubbard AE. Super learner. Stat Appl Genet Mol Biol 2007;6:Article 25.";
    /// Random forests.
    pub const BREIMAN: &str = "Breiman L. Random forests. Mach Learn 2001;45:5–32.";
    /// Elastic net.
    pub const FRIEDMAN: &str = "Friedman J, Hastie T, Tibshirani R. Regularization paths for generalized linear models via coordinate descent. J Stat Softw 2010;33:1–22.";
    /// Mundlak 1978.
    pub const MUNDLAK: &str = "Mundlak Y. On the pooling of time series and cross section data. Econometrica 1978;46:69–85.";
    /// Efron 1987.
    pub const EFRON: &str =
        "Efron B. Better bootstrap confidence intervals. J Am Stat Assoc 1987;82:171–185.";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<MethodSpec, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_filled_in_once_by_serde() {
        let s = parse(serde_json::json!({"method": "oaxaca_blinder"})).expect("parses");
        assert_eq!(
            s.options_json(),
            serde_json::json!({"model": "linear", "coefficients": "pooled", "threefold": false,
                               "normalize": true, "fairlie_orderings": 100,
                               "hospital_effects": "fixed"})
        );
        let s = parse(serde_json::json!({"method": "disparity_reduction",
            "allowable": ["age"], "targets": ["ses"]}))
        .expect("parses");
        assert_eq!(s.options_json()["draws"], 5);
        assert_eq!(s.options_json()["estimator"], "gcomputation");
        assert_eq!(s.options_json()["hospital_effects"], "fixed");
        assert_eq!(s.options_json()["learner"], "glm");
        assert!(s.options_json().get("forest").is_none());
        // A flexible learner: the estimator defaults to doubly robust, the
        // settings tables are read and written back.
        let s = parse(serde_json::json!({"method": "disparity_reduction",
            "allowable": ["age"], "targets": ["ses"], "learner": "forest",
            "forest": {"trees": 30}}))
        .expect("parses");
        assert_eq!(s.options_json()["estimator"], "doubly_robust");
        assert_eq!(s.options_json()["forest"]["trees"], 30);
        assert_eq!(s.options_json()["folds"], 5);
        let s = parse(serde_json::json!({"method": "disparity_reduction",
            "allowable": ["age"], "targets": ["ses"], "learner": "forest",
            "estimator": "weighting"}))
        .expect("parses");
        assert_eq!(s.options_json()["estimator"], "weighting");
        let e = parse(serde_json::json!({"method": "disparity_reduction",
            "allowable": ["age"], "targets": ["ses"], "forest": {"tress": 3}}))
        .expect_err("unknown forest key");
        assert!(e.contains("unknown field `tress`"), "{e}");
    }

    #[test]
    fn unknown_keys_and_missing_lists_are_errors() {
        let e = parse(serde_json::json!({"method": "gelbach", "base": [], "added": [], "x": 1}))
            .expect_err("unknown key");
        assert!(e.contains("unknown field `x`"), "{e}");
        let e = parse(serde_json::json!({"method": "gelbach", "base": []})).expect_err("missing");
        assert!(e.contains("missing field `added`"), "{e}");
        let e = parse(serde_json::json!({"method": "crude", "x": 1})).expect_err("unknown key");
        assert!(e.contains("unknown field `x`"), "{e}");
    }

    #[test]
    fn every_method_round_trips_through_its_options() {
        for json in [
            serde_json::json!({"method": "crude"}),
            serde_json::json!({"method": "oaxaca_blinder", "model": "logit"}),
            serde_json::json!({"method": "gelbach", "base": ["a"], "added": ["b"]}),
            serde_json::json!({"method": "disparity_reduction", "allowable": ["a"],
                               "targets": ["b"], "estimator": "doubly_robust"}),
            serde_json::json!({"method": "mediation", "mediators": ["m"], "confounders": ["c"]}),
            serde_json::json!({"method": "hospital", "hospital": "h", "adjust": ["a"]}),
        ] {
            let s = parse(json.clone()).expect("parses");
            let mut again = s.options_json();
            again["method"] = json["method"].clone();
            assert_eq!(parse(again).expect("parses again"), s);
            assert_eq!(s.name(), json["method"]);
        }
    }
}
