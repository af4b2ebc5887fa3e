//! Linear Oaxaca–Blinder decomposition (Oaxaca 1973; Blinder 1973; Jann 2008,
//! Stata `oaxaca`), METHODS.md §2, with gap = ȳ_c − ȳ_r.
//!
//! Group models y = x b_g (+ α_{g,h} when hospital_id is absorbed) are fitted
//! from per-cell moments ([`crate::cells`]). For a reference coefficient vector β*:
//!
//! - twofold: Δ = (x̄_c − x̄_r)'β* + [x̄_c'(b_c − β*) + x̄_r'(β* − b_r)]
//!   = explained + unexplained (the bracket's two parts are reported as
//!   `unexplained_comparison` and `unexplained_reference`);
//! - threefold (reference viewpoint): E = (x̄_c − x̄_r)'b_r, C = x̄_r'(b_c − b_r),
//!   I = (x̄_c − x̄_r)'(b_c − b_r);
//! - β*: b_r (`reference`), b_c (`comparison`), ½(b_r + b_c) (`reimers`),
//!   (W_r b_r + W_c b_c)/(W_r + W_c) (`cotton`, weighted n), pooled OLS without
//!   (`neumark`) or with (`pooled`, Jann's recommendation) a group indicator,
//!   the indicator not being part of β*.
//!
//! Detailed parts are the element-wise products; a block is the sum over its
//! columns. An absorbed many-level categorical (hospital_id) enters with x̄ = the
//! group's share in each level s_{g,h} and coefficients α_{g,h}, so its
//! explained part is Σ_h (s_ch − s_rh)·α*_h, without any dummy matrix; it is
//! reported as one term. With `hospital_effects = "random"` the α_{g,h} are
//! instead b_0 + γ·s_h + û_h of a random-intercept model with the hospital's
//! comparison share s_h as a covariate ([`crate::random_levels`]).
//!
//! **Normalization** (Yun 2005; Gardeazabal & Ugidos 2004): for each
//! categorical variable with K levels (base at 0), every level's coefficient is
//! replaced by its deviation from the mean over the K levels, the base level
//! gets a row of its own, and the mean moves to the intercept; the absorbed
//! levels are centred the same way. The detailed unexplained part then does not
//! depend on the base level.
//!
//! **Inference.** Without clusters, the delta method over
//! θ = (b_r, b_c, [β*], x̄_r, x̄_c), V(component) = ∇'V(θ)∇ (the gradient taken
//! numerically; the components are bilinear, so central differences are
//! exact). By default (`vce = robust`) V(θ) = n/(n−1) Σ_i ψ_i ψ_i' over the
//! stacked influence functions of every fit and mean, each row its own unit
//! (HC1-type; Stata `oaxaca`'s `suest` for pooled weights), which carries
//! Cov(b_g, β*) ([`influence_variance_of`]). With `vce = model`, Jann's (2008)
//! model-based blocks V(b_g) = s²_g (X_g'W X_g)⁻¹, V(x̄_g) = S_g/n_g, taken as
//! independent, which holds only when β* is a fixed combination of b_r and b_c
//! (not `pooled` or `neumark`: refused there). With a cluster variable, the
//! cluster delta method over the stacked moments, which carries the
//! covariances of groups that share hospitals: from the same influence
//! functions summed by cluster when nothing is absorbed, by differences over
//! the cells otherwise ([`crate::inference::cluster_delta_variance`]). The
//! cluster bootstrap recombines cells with each replicate's cluster
//! multiplicities.

use healthgap_models::{ModelError, ModelSummary};
use serde::{Deserialize, Serialize};

use crate::cells::{CellFit, Cells, FitSpec, linear_summary, singular_error};
use crate::covariates::Covariates;
use crate::error::DecomposeError;
use crate::inference::{
    InferenceSpec, Key, Method, Resampled, Vce, count_text, influence_variance, resampled_rows,
};
use crate::nonlinear::{NonlinearInput, nonlinear};
use crate::random_levels::RandomFit;
use crate::reduction::HospitalEffects;
pub use crate::result::MethodOutput;
use crate::result::SeMethod;
use crate::sample::{CellSample, Cluster, Sample};
use crate::shares::{SHARE, ShareSpec, Shares, unstable_shares};
use crate::spec::{Breakdown, CellSource, Context, Designs, Parts, Ran, Spec, cite};
use crate::terms::Terms;
use healthgap_models::Link;

/// Shares of the gap: explained by block, and the unexplained part (the
/// linear and the nonlinear decomposition alike).
pub(crate) const SHARES: ShareSpec = ShareSpec {
    total: "gap",
    blocks: Some("explained"),
    named: &["unexplained"],
};

/// The choice of β* (METHODS.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coefficients {
    /// b_r.
    Reference,
    /// b_c.
    Comparison,
    /// Pooled OLS with a group indicator (Jann).
    #[default]
    Pooled,
    /// Pooled OLS without a group indicator.
    Neumark,
    /// Weighted-n average of b_r and b_c.
    Cotton,
    /// ½(b_r + b_c).
    Reimers,
}

/// The outcome model of an Oaxaca–Blinder decomposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Linear (OLS, or the linear probability model).
    #[default]
    Linear,
    /// Logit (Yun 2004, Fairlie 2005).
    Logit,
    /// Probit (Yun 2004, Fairlie 2005).
    Probit,
}

/// `method = "oaxaca_blinder"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OaxacaSpec {
    /// The outcome model (default linear).
    #[serde(default)]
    pub model: Model,
    /// β* of the twofold split (default pooled).
    #[serde(default)]
    pub coefficients: Coefficients,
    /// Also the threefold split (linear only; default false).
    #[serde(default)]
    pub threefold: bool,
    /// Normalize categorical variables (Yun 2005; default true).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Fairlie orderings for logit/probit (default 100; 0 turns Fairlie off).
    #[serde(default = "default_orderings")]
    pub fairlie_orderings: usize,
    /// The absorbed variable's effects: fixed (default) or random (shrunken
    /// conditional modes of a linear mixed model; linear model only).
    #[serde(default)]
    pub hospital_effects: HospitalEffects,
}

fn yes() -> bool {
    true
}

fn default_orderings() -> usize {
    100
}

impl Coefficients {
    /// The option's value as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Coefficients::Reference => "reference",
            Coefficients::Comparison => "comparison",
            Coefficients::Pooled => "pooled",
            Coefficients::Neumark => "neumark",
            Coefficients::Cotton => "cotton",
            Coefficients::Reimers => "reimers",
        }
    }

    /// β* in words, for the methods paragraph.
    fn in_words(self) -> &'static str {
        match self {
            Coefficients::Pooled => "the pooled model with a group indicator (Jann 2008)",
            Coefficients::Reference => "the reference group's coefficients",
            Coefficients::Comparison => "the comparison group's coefficients",
            Coefficients::Neumark => "the pooled model without a group indicator (Neumark)",
            Coefficients::Cotton => {
                "the size-weighted average of both groups' coefficients (Cotton)"
            }
            Coefficients::Reimers => "the average of both groups' coefficients (Reimers)",
        }
    }
}

impl Spec for OaxacaSpec {
    fn name(&self) -> &'static str {
        "oaxaca_blinder"
    }

    fn run(
        &self,
        sample: &Sample<'_>,
        designs: &dyn Designs,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        let cov = designs.covariates(&designs.every_factor())?;
        let link = match self.model {
            Model::Linear => {
                let input = LinearInput {
                    sample,
                    covariates: &cov,
                    coefficients: self.coefficients,
                    threefold: self.threefold,
                    normalize: self.normalize,
                    hospital_effects: self.hospital_effects,
                };
                let output = linear(&input, inference, progress)?;
                return Ok(Ran::delta(output, inference, sample.cluster_name()));
            }
            Model::Logit => Link::Logit,
            Model::Probit => Link::Probit,
        };
        if self.hospital_effects == HospitalEffects::Random {
            return Err(DecomposeError::Statistic(
                "hospital_effects = \"random\" is built for model = \"linear\" (a logit or \
                 probit decomposition cannot absorb the hospital either)"
                    .into(),
            ));
        }
        if !sample.binary {
            return Err(DecomposeError::NotBinary {
                model: if link == Link::Logit {
                    "logit"
                } else {
                    "probit"
                },
                outcome: sample.outcome.to_string(),
            });
        }
        let input = NonlinearInput {
            sample,
            covariates: &cov,
            link,
            coefficients: self.coefficients,
            normalize: self.normalize,
            fairlie_orderings: self.fairlie_orderings,
            seed: inference.seed,
            analysis_id: inference.analysis_id.clone(),
        };
        let mut output = nonlinear(&input, inference, progress)?;
        if self.threefold {
            output.warnings.push(
                "threefold = true is ignored: the threefold split is defined for model = \
                 \"linear\""
                    .into(),
            );
        }
        Ok(Ran::delta(output, inference, sample.cluster_name()))
    }

    fn run_cells(
        &self,
        sample: &CellSample<'_>,
        source: &dyn CellSource,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        if let Some(refusal) = self.needs_rows(inference) {
            return Err(refusal);
        }
        let (cov, cells) = source.cells(&source.every_factor())?;
        let sample = &sample.with_clusters_of(&cells);
        let options = LinearOptions {
            coefficients: self.coefficients,
            threefold: self.threefold,
            normalize: self.normalize,
            hospital_effects: self.hospital_effects,
        };
        let output = linear_cells(sample, &cov, options, cells, inference, progress)?;
        Ok(Ran::delta(output, inference, sample.cluster_name()))
    }

    /// The linear decomposition runs from cells; the logit and probit
    /// models need a pass over the rows per Newton step and per Fairlie
    /// ordering.
    fn needs_rows(&self, _inference: &InferenceSpec) -> Option<DecomposeError> {
        (self.model != Model::Linear).then(|| DecomposeError::NeedsRows {
            what: format!(
                "oaxaca_blinder with model = \"{}\"",
                if self.model == Model::Logit {
                    "logit"
                } else {
                    "probit"
                }
            ),
            reason: "the nonlinear models are fitted by iterating over the rows, and Fairlie's \
                     split simulates each patient"
                .into(),
            alternative: ", or use model = \"linear\" (the linear probability model)".into(),
        })
    }

    fn title(&self) -> &'static str {
        "Oaxaca–Blinder"
    }

    fn uses_every_factor(&self) -> bool {
        true
    }

    /// `vce = "model"` is derived only where β* is a fixed combination of
    /// the group coefficients: not for pooled or neumark β*, fitted on the
    /// same rows as both group models.
    fn check(&self, vce: Vce) -> Result<(), String> {
        let c = self.coefficients;
        if vce == Vce::Model && matches!(c, Coefficients::Pooled | Coefficients::Neumark) {
            return Err(format!(
                "[design] vce = \"model\" is not derived for coefficients = \"{}\"{}: β* is \
                 fitted on the same rows as both group models, so their model-based variances are \
                 not independent. Use vce = \"robust\" (the default), or coefficients = \
                 \"reference\", \"comparison\", \"reimers\" or \"cotton\"",
                c.as_str(),
                if c == Coefficients::default() {
                    " (the default)"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }

    fn breakdown(&self) -> Option<Breakdown> {
        Some(Breakdown {
            total: ("gap", SHARES.total),
            parts: Parts::Blocks("explained"),
            rest: ("unexplained", "unexplained"),
        })
    }

    fn detailed_quantity(&self) -> Option<&'static str> {
        Some("explained")
    }

    fn describe(&self, context: &Context, cite: &mut Vec<&'static str>) -> String {
        if self.model != Model::Linear {
            cite.extend([cite::YUN2004, cite::FAIRLIE]);
            let model = if self.model == Model::Logit {
                "logit"
            } else {
                "probit"
            };
            return format!(
                "A nonlinear ({model}) decomposition (Yun 2004) split the gap into explained and \
                 unexplained parts with detailed weights per term, and Fairlie's (2005) \
                 sequential replacement over randomly ordered factor blocks gave an order-free \
                 detailed attribution."
            );
        }
        cite.extend([cite::OAXACA, cite::BLINDER, cite::JANN]);
        let mut s = format!(
            "A linear Oaxaca–Blinder decomposition (Oaxaca 1973; Blinder 1973) split the gap \
             into a part explained by differences in the factor blocks ({}) and an unexplained \
             part, with reference coefficients from {}",
            context.blocks,
            self.coefficients.in_words()
        );
        if self.threefold {
            s.push_str(
                "; a threefold split (endowments, coefficients, interaction) was also computed",
            );
        }
        if self.hospital_effects == HospitalEffects::Random {
            cite.push(cite::MUNDLAK);
            s.push_str(
                ". The hospital term used shrunken hospital effects: each model was a linear \
                 mixed model with a random hospital intercept and the hospital's share of \
                 comparison patients as a hospital-level covariate (Mundlak 1978), fitted by \
                 maximum likelihood from the same sufficient statistics, each hospital's effect \
                 being the covariate term plus its conditional mode; the cluster delta method and \
                 the bootstrap re-estimated the hospital variance",
            );
        }
        if self.normalize {
            cite.push(cite::YUN2005);
            s.push_str(
                ". Categorical variables were normalized (Yun 2005) so that the detailed parts \
                 do not depend on the base level",
            );
        }
        s.push('.');
        s
    }

    fn model_variance(&self) -> &'static str {
        if self.model == Model::Linear {
            "model-based (homoskedastic) variances of each group model, independent of each \
             other and of the covariate means (Jann 2008)"
        } else {
            "model-based variances of each model (inverse information), the models taken as \
             independent and the covariates as fixed (Stata's mvdcmp convention)"
        }
    }
}

/// Inputs of one linear decomposition (one outcome, one comparison group).
pub struct LinearInput<'a> {
    /// The outcome, groups, weights and cluster.
    pub sample: &'a Sample<'a>,
    /// Covariates.
    pub covariates: &'a Covariates,
    /// β*.
    pub coefficients: Coefficients,
    /// Also the threefold split.
    pub threefold: bool,
    /// Normalize categorical variables (and the absorbed levels).
    pub normalize: bool,
    /// Fixed or random (shrunken) effects of the absorbed variable.
    pub hospital_effects: HospitalEffects,
}

/// The random-intercept models in place of the absorbed fixed effects
/// ([`crate::random_levels`]).
struct Random {
    /// Name of the comparison-share (Mundlak) term.
    share: String,
    /// The full-sample fits' log λ (reference, comparison, pooled, Neumark),
    /// the warm starts of the replicates.
    starts: [Option<f64>; 4],
}

/// Which model of the decomposition a fit is.
#[derive(Clone, Copy)]
enum Which {
    Reference = 0,
    Comparison = 1,
    Pooled = 2,
    Neumark = 3,
}

/// The options of a linear decomposition.
#[derive(Debug, Clone, Copy)]
pub struct LinearOptions {
    /// β*.
    pub coefficients: Coefficients,
    /// Also the threefold split.
    pub threefold: bool,
    /// Normalize categorical variables (and the absorbed levels).
    pub normalize: bool,
    /// Fixed or random (shrunken) effects of the absorbed variable.
    pub hospital_effects: HospitalEffects,
}

impl LinearInput<'_> {
    fn options(&self) -> LinearOptions {
        LinearOptions {
            coefficients: self.coefficients,
            threefold: self.threefold,
            normalize: self.normalize,
            hospital_effects: self.hospital_effects,
        }
    }
}

/// Everything fixed across replicates.
struct Setup {
    cells: Cells,
    absorb: bool,
    random: Option<Random>,
    coefficients: Coefficients,
    threefold: bool,
    terms: Terms,
    keys: Vec<Key>,
    shares: Shares,
}

/// Fitted parameters of one sample (or replicate).
struct Params {
    b: [Vec<f64>; 2],
    a: [Vec<f64>; 2],
    star: Option<(Vec<f64>, Vec<f64>)>,
    /// Level effects of the pooled model, standing in where a group has no rows.
    fill: Vec<f64>,
    x: [Vec<f64>; 2],
    s: [Vec<f64>; 2],
    w: [f64; 2],
}

impl Setup {
    /// `comparison` is the comparison group's label (it names the share
    /// term of the random-intercept models).
    fn new(covariates: &Covariates, input: LinearOptions, cells: Cells, comparison: &str) -> Setup {
        let terms = Terms::new(covariates, input.normalize);
        let mut quantities = vec!["explained", "unexplained"];
        if input.threefold {
            quantities.extend(["endowments", "coefficients", "interaction"]);
        }
        let mut keys = vec![("gap".to_string(), None, None)];
        keys.extend(terms.keys(&quantities, &["unexplained", "coefficients"]));
        keys.push(("unexplained_comparison".into(), None, None));
        keys.push(("unexplained_reference".into(), None, None));
        let shares = SHARES.keys(&keys);
        keys.extend(shares);
        let shares = SHARES.positions(&keys);
        let random = covariates.absorbed.as_ref().and_then(|a| {
            (input.hospital_effects == HospitalEffects::Random).then(|| Random {
                share: format!("{} share of {comparison}", a.variable),
                starts: [None; 4],
            })
        });
        Setup {
            cells,
            random,
            absorb: covariates.absorbed.is_some(),
            coefficients: input.coefficients,
            threefold: input.threefold,
            terms,
            keys,
            shares,
        }
    }

    fn spec(&self, groups: [bool; 2], indicator: bool) -> FitSpec {
        FitSpec {
            groups,
            indicator,
            absorb: self.absorb,
            columns: (0..self.cells.p()).collect(),
        }
    }

    /// b over all cell columns (the intercept 0 when absorbed).
    fn full_b(&self, fit: &CellFit, skip: usize) -> Vec<f64> {
        let coef = &fit.coef[skip..];
        if self.absorb {
            std::iter::once(0.0).chain(coef.iter().copied()).collect()
        } else {
            coef.to_vec()
        }
    }

    /// The spec of one model of the decomposition.
    fn spec_of(&self, which: Which) -> FitSpec {
        match which {
            Which::Reference => self.spec([true, false], false),
            Which::Comparison => self.spec([false, true], false),
            Which::Pooled => self.spec([true, true], true),
            Which::Neumark => self.spec([true, true], false),
        }
    }

    /// One model of the decomposition: least squares with absorbed fixed
    /// effects, or the random-intercept model (warm-started from the full
    /// sample's fit).
    fn fit(&self, which: Which, mult: Option<&[f64]>) -> Result<CellFit, ModelError> {
        let spec = self.spec_of(which);
        match &self.random {
            None => self.cells.fit(&spec, mult),
            Some(r) => {
                let spec = FitSpec {
                    absorb: false,
                    ..spec
                };
                let start = r.starts[which as usize];
                Ok(self.cells.fit_random(&spec, mult, &r.share, start)?.cell)
            }
        }
    }

    /// The full-sample random-intercept fits (None with fixed effects), and
    /// their log λ kept as the replicates' warm starts.
    fn random_fits(&mut self) -> Result<Vec<(Which, RandomFit)>, ModelError> {
        let Some(r) = &self.random else {
            return Ok(Vec::new());
        };
        let mut which = vec![Which::Reference, Which::Comparison, Which::Pooled];
        if self.coefficients == Coefficients::Neumark {
            which.push(Which::Neumark);
        }
        let mut fits = Vec::new();
        for w in which {
            let spec = FitSpec {
                absorb: false,
                ..self.spec_of(w)
            };
            fits.push((w, self.cells.fit_random(&spec, None, &r.share, None)?));
        }
        if let Some(r) = &mut self.random {
            for (w, f) in &fits {
                r.starts[*w as usize] = f.model.log_lambda;
            }
        }
        Ok(fits)
    }

    /// The pooled model with the group indicator: β* under `pooled`, and the
    /// stand-in level effects when absorbing.
    fn pooled_fit(&self, mult: Option<&[f64]>) -> Result<Option<CellFit>, ModelError> {
        if self.absorb || self.coefficients == Coefficients::Pooled {
            self.fit(Which::Pooled, mult).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The model behind β* (pooled or Neumark), given the pooled fit.
    fn star_fit(
        &self,
        pooled: Option<&CellFit>,
        mult: Option<&[f64]>,
    ) -> Result<Option<CellFit>, ModelError> {
        match self.coefficients {
            Coefficients::Pooled => Ok(pooled.cloned()),
            Coefficients::Neumark => self.fit(Which::Neumark, mult).map(Some),
            _ => Ok(None),
        }
    }

    fn params(&self, mult: Option<&[f64]>) -> Result<Params, String> {
        let fr = self
            .fit(Which::Reference, mult)
            .map_err(|e| e.to_string())?;
        let fc = self
            .fit(Which::Comparison, mult)
            .map_err(|e| e.to_string())?;
        let pooled = self.pooled_fit(mult).map_err(|e| e.to_string())?;
        let star = self
            .star_fit(pooled.as_ref(), mult)
            .map_err(|e| e.to_string())?
            .map(|f| {
                let skip = usize::from(self.coefficients == Coefficients::Pooled);
                (self.full_b(&f, skip), f.alpha.clone())
            });
        let fill = pooled.map(|f| f.alpha).unwrap_or_default();
        let (mr, mc) = (self.cells.means(0, mult), self.cells.means(1, mult));
        Ok(Params {
            b: [self.full_b(&fr, 0), self.full_b(&fc, 0)],
            a: [fr.alpha, fc.alpha],
            star,
            fill,
            x: [mr.x, mc.x],
            s: [mr.share, mc.share],
            w: [mr.w, mc.w],
        })
    }

    /// Every reported statistic, in key order.
    fn values(&self, p: &Params) -> Result<Vec<f64>, String> {
        let levels = p.s[0].len();
        let mut support = vec![true; levels];
        let filled = |a: &[f64]| -> Vec<f64> {
            a.iter()
                .zip(&p.fill)
                .map(|(a, f)| if a.is_finite() { *a } else { *f })
                .collect()
        };
        let (ar, ac) = (filled(&p.a[0]), filled(&p.a[1]));
        if self.absorb {
            for l in 0..levels {
                support[l] = ar[l].is_finite() && ac[l].is_finite();
            }
        }
        let br = self.terms.extend_coef(&p.b[0], &ar, &support);
        let bc = self.terms.extend_coef(&p.b[1], &ac, &support);
        let bs: Vec<f64> = match (&p.star, self.coefficients) {
            (Some((b, a)), _) => self.terms.extend_coef(b, a, &support),
            (None, c) => {
                let lam = match c {
                    Coefficients::Reference => 1.0,
                    Coefficients::Comparison => 0.0,
                    Coefficients::Reimers => 0.5,
                    _ => p.w[0] / (p.w[0] + p.w[1]),
                };
                br.iter()
                    .zip(&bc)
                    .map(|(r, c)| lam * r + (1.0 - lam) * c)
                    .collect()
            }
        };
        let xr = self.terms.extend_x(&p.x[0], &p.s[0]);
        let xc = self.terms.extend_x(&p.x[1], &p.s[1]);
        let per = |f: &dyn Fn(usize) -> f64| self.terms.per_term(f);
        let dx = |e: usize| xc[e] - xr[e];
        let uc = per(&|e| xc[e] * (bc[e] - bs[e]));
        let ur = per(&|e| xr[e] * (bs[e] - br[e]));
        let mut parts: Vec<(&str, Vec<f64>)> = vec![
            ("explained", per(&|e| dx(e) * bs[e])),
            (
                "unexplained",
                uc.iter().zip(&ur).map(|(a, b)| a + b).collect(),
            ),
        ];
        if self.threefold {
            parts.push(("endowments", per(&|e| dx(e) * br[e])));
            parts.push(("coefficients", per(&|e| xr[e] * (bc[e] - br[e]))));
            parts.push(("interaction", per(&|e| dx(e) * (bc[e] - br[e]))));
        }
        let predicted = |x: &[f64], b: &[f64]| -> f64 { x.iter().zip(b).map(|(x, b)| x * b).sum() };
        let gap = predicted(&xc, &bc) - predicted(&xr, &br);
        let mut out = self
            .keys
            .iter()
            .map(|key| match key.0.as_str() {
                "gap" => Ok(gap),
                "unexplained_comparison" => Ok(uc.iter().sum()),
                "unexplained_reference" => Ok(ur.iter().sum()),
                SHARE => Ok(f64::NAN),
                q => {
                    let vals = parts
                        .iter()
                        .find(|(n, _)| *n == q)
                        .map(|(_, v)| v)
                        .ok_or("key")?;
                    Ok(self.terms.row_value(key, vals))
                }
            })
            .collect::<Result<Vec<f64>, String>>()?;
        self.shares.fill(&mut out);
        Ok(out)
    }
}

/// Warnings of the random-intercept models: boundary fits (σ_u = 0), and how
/// the hospitals are resampled.
fn random_warnings(
    covariates: &Covariates,
    sample: &CellSample<'_>,
    random: &[(Which, RandomFit)],
) -> Vec<String> {
    let mut out = Vec::new();
    let Some(a) = &covariates.absorbed else {
        return out;
    };
    for (w, _) in random.iter().filter(|(_, f)| f.model.boundary()) {
        let model = match w {
            Which::Reference | Which::Comparison => {
                format!("group `{}`'s model", sample.labels[*w as usize])
            }
            _ => "the pooled model".into(),
        };
        out.push(format!(
            "random `{}` effects: {model} is a boundary fit (σ_u = 0), so its `{}` effects are \
             the share term alone (γ·share)",
            a.variable, a.variable
        ));
    }
    if !random.is_empty() && sample.cluster.is_none() {
        out.push(format!(
            "random `{}` effects without [design] cluster: the bootstrap resamples patients, not \
             hospitals; set [design] cluster to the hospital for the hospital bootstrap and the \
             cluster delta method",
            a.variable
        ));
    }
    out
}

/// A warning when levels of the absorbed variable hold only one of the groups.
fn support_warning(
    cells: &Cells,
    covariates: &Covariates,
    labels: [&str; 2],
    effects: HospitalEffects,
) -> Option<String> {
    let a = covariates.absorbed.as_ref()?;
    let (only_r, only_c) = cells.one_group_levels();
    let stand_in = if effects == HospitalEffects::Random {
        "not estimated from data, so a group's model gives them its prior mean (û = 0) plus the \
         share term"
    } else {
        "not identified, so the pooled model's effects stand in for them (no unexplained part in \
         those levels)"
    };
    (only_r + only_c > 0).then(|| {
        format!(
            "no common support in `{}`: {only_r} level(s) have {} patients only and {only_c} \
             level(s) {} patients only; there the group-specific effects are {stand_in}",
            a.variable, labels[0], labels[1]
        )
    })
}

/// θ = (b_r, b_c, [β*], x̄_r, x̄_c, [W_r, W_c]) (the means without the
/// intercept; the groups' weight sums for `cotton`, whose λ = W_r/(W_r + W_c)
/// varies with the sample) of the full sample, and the Jacobian ∂values/∂θ
/// (keys × θ) by central differences (the components are bilinear in the
/// coefficients and means, so those differences are exact up to rounding).
/// No absorbed variable.
fn theta_jacobian(setup: &Setup, point: &Params) -> Result<Vec<Vec<f64>>, DecomposeError> {
    let p = setup.cells.p();
    let mut theta: Vec<f64> = Vec::new();
    theta.extend(&point.b[0]);
    theta.extend(&point.b[1]);
    if let Some((b, _)) = &point.star {
        theta.extend(b);
    }
    theta.extend(&point.x[0][1..]);
    theta.extend(&point.x[1][1..]);
    let cotton = setup.coefficients == Coefficients::Cotton;
    let plain = theta.len();
    if cotton {
        theta.extend(point.w);
    }
    let from_theta = |t: &[f64]| -> Params {
        let mut o = 0;
        let mut take = |len: usize| {
            let v = t[o..o + len].to_vec();
            o += len;
            v
        };
        let br = take(p);
        let bc = take(p);
        let star = point.star.as_ref().map(|_| (take(p), Vec::new()));
        let xr: Vec<f64> = std::iter::once(1.0).chain(take(p - 1)).collect();
        let xc: Vec<f64> = std::iter::once(1.0).chain(take(p - 1)).collect();
        let w = if cotton {
            let w = take(2);
            [w[0], w[1]]
        } else {
            point.w
        };
        Params {
            b: [br, bc],
            a: [Vec::new(), Vec::new()],
            star,
            fill: Vec::new(),
            x: [xr, xc],
            s: point.s.clone(),
            w,
        }
    };
    let nk = setup.keys.len();
    let mut jac = vec![vec![0.0; theta.len()]; nk];
    for j in 0..theta.len() {
        // λ(W) is a ratio: a small relative step keeps its difference exact.
        let h = if j < plain {
            1e-3 * theta[j].abs().max(1.0)
        } else {
            1e-6 * theta[j].abs().max(1.0)
        };
        let mut t = theta.clone();
        t[j] += h;
        let up = setup
            .values(&from_theta(&t))
            .map_err(DecomposeError::Statistic)?;
        t[j] -= 2.0 * h;
        let down = setup
            .values(&from_theta(&t))
            .map_err(DecomposeError::Statistic)?;
        for r in 0..nk {
            jac[r][j] = (up[r] - down[r]) / (2.0 * h);
        }
    }
    // Shares s = P/T are not bilinear: their rows from the parts', exactly,
    // ∂s = (∂P − s·∂T)/T.
    let at = setup
        .values(&from_theta(&theta))
        .map_err(DecomposeError::Statistic)?;
    for (i, p, t) in setup.shares.iter() {
        jac[i] = (0..theta.len())
            .map(|j| (jac[p][j] - at[i] * jac[t][j]) / at[t])
            .collect();
    }
    Ok(jac)
}

/// The model-based delta-method variances of Jann (2008) without clusters (no
/// absorbed variable): V(b_g) = s²_g (X_g'W X_g)⁻¹, V(x̄_g) = S_g/n_g,
/// independent blocks, V(component) = ∇'V(θ)∇. Derived only where the blocks
/// are independent, i.e. β* a fixed combination of b_r and b_c (not `pooled`
/// or `neumark`, whose β* is fitted on the same rows).
fn model_variance(setup: &Setup, point: &Params) -> Result<Vec<f64>, DecomposeError> {
    let p = setup.cells.p();
    let cells = &setup.cells;
    let fr = cells.fit(&setup.spec([true, false], false), None)?;
    let fc = cells.fit(&setup.spec([false, true], false), None)?;
    let iid = |f: &CellFit| -> Vec<f64> {
        let s2 = f.rss / (f.n - p as f64);
        f.bread.iter().map(|b| s2 * b).collect()
    };
    let xcov = |g: u8| -> Vec<f64> {
        let s = cells.covariance(g);
        let n = cells.means(g, None).n;
        let q = p - 1;
        let mut v = vec![0.0; q * q];
        for i in 0..q {
            for j in 0..q {
                v[i * q + j] = s[(i + 1) * p + j + 1] / n;
            }
        }
        v
    };
    // θ blocks: b_r, b_c, x̄_r (no intercept), x̄_c.
    let blocks: Vec<Vec<f64>> = vec![iid(&fr), iid(&fc), xcov(0), xcov(1)];
    let jac = theta_jacobian(setup, point)?;
    let mut var = vec![0.0; jac.len()];
    for (r, row) in jac.iter().enumerate() {
        let mut off = 0;
        for v in &blocks {
            let q = (v.len() as f64).sqrt() as usize;
            let g = &row[off..off + q];
            for i in 0..q {
                for j in 0..q {
                    var[r] += g[i] * v[i * q + j] * g[j];
                }
            }
            off += q;
        }
    }
    Ok(var)
}

/// The stacked influence functions of b_r, b_c, β*, x̄_r, x̄_c (and W_r, W_c
/// for `cotton`), no absorbed variable.
///
/// Row i of group g has ψ(b_g) = B_g⁻¹ x_i w_i e_gi, ψ(β*) = B_p⁻¹ x^p_i w_i e^p_i
/// (the pooled design with its group indicator, whose entry is dropped),
/// ψ(x̄_g) = w_i (x_i − x̄_g)/W_g, ψ(W_g) = w_i, so IF_ik = ∇_k'ψ_i = d_gk'u_i
/// with u_i = (w e_g x_i, w e^p x^p_i, w (x_i − x̄_g), [w]).
struct Influence {
    /// The group fits.
    fits: [CellFit; 2],
    /// The β* fit (pooled or Neumark).
    star: Option<CellFit>,
    /// 1 when β*'s fit leads with the group indicator.
    skip: usize,
    /// Coefficients of the β* fit.
    ks: usize,
    /// 1 for `cotton` (W_g in θ).
    cotton: usize,
    /// Length of u.
    dim: usize,
    /// d_gk, keys × dim per group.
    d: Vec<Vec<f64>>,
}

impl Influence {
    fn new(setup: &Setup, point: &Params) -> Result<Influence, DecomposeError> {
        let p = setup.cells.p();
        let cells = &setup.cells;
        let fits = [
            cells.fit(&setup.spec([true, false], false), None)?,
            cells.fit(&setup.spec([false, true], false), None)?,
        ];
        let pooled = setup.pooled_fit(None)?;
        let star = setup.star_fit(pooled.as_ref(), None)?;
        let skip = usize::from(setup.coefficients == Coefficients::Pooled);
        let ks = star.as_ref().map_or(0, |f| f.coef.len());
        let cotton = usize::from(setup.coefficients == Coefficients::Cotton);
        let jac = theta_jacobian(setup, point)?;
        let nk = jac.len();
        // Offsets of the θ blocks.
        let ostar = 2 * p;
        let ox0 = ostar + star.as_ref().map_or(0, |_| p);
        let (ob, ox, ow) = ([0, p], [ox0, ox0 + p - 1], ox0 + 2 * (p - 1));
        let dim = p + ks + (p - 1) + cotton;
        let mut d = vec![vec![0.0; nk * dim]; 2];
        for g in 0..2 {
            for k in 0..nk {
                let row = &jac[k];
                let dk = &mut d[g][k * dim..(k + 1) * dim];
                let bread = &fits[g].bread;
                for a in 0..p {
                    dk[a] = (0..p).map(|b| bread[a * p + b] * row[ob[g] + b]).sum();
                }
                if let Some(f) = &star {
                    for a in 0..ks {
                        dk[p + a] = (skip..ks)
                            .map(|b| f.bread[a * ks + b] * row[ostar + b - skip])
                            .sum();
                    }
                }
                for a in 0..p - 1 {
                    dk[p + ks + a] = row[ox[g] + a] / point.w[g];
                }
                if cotton == 1 {
                    dk[dim - 1] = row[ow + g];
                }
            }
        }
        Ok(Influence {
            fits,
            star,
            skip,
            ks,
            cotton,
            dim,
            d,
        })
    }
}

/// Delta-method variances from the stacked influence functions
/// ([`Influence`], [`influence_variance`], one pass over the rows): without
/// `units` every row its own unit, V = n/(n−1) Σ_i IF_i² (`vce = robust`, as
/// Stata's `oaxaca` with `suest`); with clusters V = G/(G−1) Σ_g (Σ_{i∈g}
/// IF_i)² (the cluster delta method, exactly).
fn influence_variance_of(
    setup: &Setup,
    input: &LinearInput<'_>,
    point: &Params,
) -> Result<Vec<f64>, DecomposeError> {
    let p = setup.cells.p();
    let inf = Influence::new(setup, point)?;
    let (skip, ks, dim) = (inf.skip, inf.ks, inf.dim);
    let cols: Vec<&[f64]> = input
        .covariates
        .columns
        .iter()
        .map(|c| c.values.as_slice())
        .collect();
    let units = input.sample.units();
    let var = influence_variance(
        input.sample.group.len(),
        dim,
        &inf.d,
        units.map(|u| u.1),
        |i, u| {
            let g = input.sample.group[i];
            if g > 1 {
                return None;
            }
            let g = g as usize;
            let w = input.sample.weights.map_or(1.0, |w| w[i]);
            let x = |j: usize| if j == 0 { 1.0 } else { cols[j - 1][i] };
            let fit = &inf.fits[g];
            let e = input.sample.y[i] - (0..p).map(|j| x(j) * fit.coef[j]).sum::<f64>();
            for j in 0..p {
                u[j] = w * e * x(j);
            }
            if let Some(f) = &inf.star {
                let dv = g as f64;
                let xb: f64 = (0..p).map(|j| x(j) * f.coef[j + skip]).sum::<f64>()
                    + if skip == 1 { dv * f.coef[0] } else { 0.0 };
                let ep = input.sample.y[i] - xb;
                if skip == 1 {
                    u[p] = w * ep * dv;
                }
                for j in 0..p {
                    u[p + skip + j] = w * ep * x(j);
                }
            }
            for j in 1..p {
                u[p + ks + j - 1] = w * (x(j) - point.x[g][j]);
            }
            if inf.cotton == 1 {
                u[dim - 1] = w;
            }
            Some((g, units.map_or(0, |c| c.0[i])))
        },
    );
    Ok(var)
}

/// The cluster delta method of [`influence_variance_of`] from the cells
/// alone: u is linear in a row's first and second moments, so its sum over a
/// cell is, with m the cell's moments (x₀ = 1),
/// Σw e_g x_j = Σwx_j y − Σ_k Σwx_j x_k b_gk,
/// Σw e^p x_j = Σwx_j y − Σ_k Σwx_j x_k β_k − d·c₀·Σwx_j (d the cell's
/// indicator, c₀ its coefficient), Σw e^p d = d·(Σwy − Σ_k Σwx_k β_k − c₀Σw),
/// Σw (x_j − x̄_gj) = Σwx_j − x̄_gj Σw; V = G/(G−1) Σ_g (Σ_{c∈g} d'u_c)².
fn cell_influence_variance(
    setup: &Setup,
    point: &Params,
    clusters: usize,
) -> Result<Vec<f64>, DecomposeError> {
    let p = setup.cells.p();
    let cells = &setup.cells;
    let inf = Influence::new(setup, point)?;
    let (skip, ks, dim) = (inf.skip, inf.ks, inf.dim);
    let var = influence_variance(cells.moments.len(), dim, &inf.d, Some(clusters), |c, u| {
        let m = &cells.moments[c];
        let g = cells.group[c] as usize;
        let xb = |j: usize, b: &[f64]| -> f64 { (0..p).map(|k| m.xx[j * p + k] * b[k]).sum() };
        let fit = &inf.fits[g];
        for j in 0..p {
            u[j] = m.xy[j] - xb(j, &fit.coef);
        }
        if let Some(f) = &inf.star {
            let dv = g as f64;
            let c0 = if skip == 1 { f.coef[0] } else { 0.0 };
            let b = &f.coef[skip..];
            if skip == 1 {
                let sx: f64 = (0..p).map(|k| m.x[k] * b[k]).sum();
                u[p] = dv * (m.y - sx - dv * c0 * m.w);
            }
            for j in 0..p {
                u[p + skip + j] = m.xy[j] - xb(j, b) - dv * c0 * m.x[j];
            }
        }
        for j in 1..p {
            u[p + ks + j - 1] = m.x[j] - point.x[g][j] * m.w;
        }
        if inf.cotton == 1 {
            u[dim - 1] = m.w;
        }
        Some((g, cells.cluster[c]))
    });
    Ok(var)
}

/// The full-sample fits behind the decomposition (each group's model, the
/// pooled model, Neumark's), as model summaries; a singular fit's error names
/// the model.
fn fitted_models(
    setup: &Setup,
    covariates: &Covariates,
    sample: &CellSample<'_>,
    level: f64,
    random: &[(Which, RandomFit)],
) -> Result<Vec<ModelSummary>, DecomposeError> {
    if let Some(a) = covariates.absorbed.as_ref().filter(|_| !random.is_empty()) {
        let (r, c) = (sample.labels[0], sample.labels[1]);
        return Ok(random
            .iter()
            .map(|(w, f)| {
                let label = match w {
                    Which::Reference => format!("outcome model, group={r}"),
                    Which::Comparison => format!("outcome model, group={c}"),
                    Which::Pooled => format!("pooled model ({r} + {c}, with group indicator)"),
                    Which::Neumark => format!("pooled model ({r} + {c})"),
                };
                f.summary(&label, &a.variable, level)
            })
            .collect());
    }
    // Full-sample fits (errors named by model).
    let who = |g: usize| format!("model for group `{}`", sample.labels[g]);
    let spec_r = setup.spec([true, false], false);
    let spec_c = setup.spec([false, true], false);
    let fr = setup
        .cells
        .fit(&spec_r, None)
        .map_err(|e| singular_error(e, &who(0)))?;
    let fc = setup
        .cells
        .fit(&spec_c, None)
        .map_err(|e| singular_error(e, &who(1)))?;
    let pooled = setup
        .pooled_fit(None)
        .map_err(|e| singular_error(e, "pooled model"))?;
    let star = setup
        .star_fit(pooled.as_ref(), None)
        .map_err(|e| singular_error(e, "pooled model"))?;
    let absorbed = covariates.absorbed.as_ref();
    let mut models = vec![
        linear_summary(
            &setup.cells,
            format!("outcome model, group={}", sample.labels[0]),
            &spec_r,
            &fr,
            sample.cluster,
            absorbed,
            level,
        ),
        linear_summary(
            &setup.cells,
            format!("outcome model, group={}", sample.labels[1]),
            &spec_c,
            &fc,
            sample.cluster,
            absorbed,
            level,
        ),
    ];
    if let Some(f) = &pooled {
        let label = format!(
            "pooled model ({} + {}, with group indicator)",
            sample.labels[0], sample.labels[1]
        );
        let spec = setup.spec([true, true], true);
        models.push(linear_summary(
            &setup.cells,
            label,
            &spec,
            f,
            sample.cluster,
            absorbed,
            level,
        ));
    }
    if let (Some(f), Coefficients::Neumark) = (&star, setup.coefficients) {
        let label = format!("pooled model ({} + {})", sample.labels[0], sample.labels[1]);
        let spec = setup.spec([true, true], false);
        models.push(linear_summary(
            &setup.cells,
            label,
            &spec,
            f,
            sample.cluster,
            absorbed,
            level,
        ));
    }
    Ok(models)
}

/// The linear Oaxaca–Blinder decomposition with its inference, on rows.
pub fn linear(
    input: &LinearInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    let cells = Cells::build(
        input.sample.y,
        input.sample.group,
        input.covariates,
        input.sample.weights,
        input.sample.units(),
    );
    let data = Data {
        sample: CellSample::of(input.sample),
        covariates: input.covariates,
        options: input.options(),
        rows: Some(input),
    };
    linear_core(&data, cells, inference, progress)
}

/// The linear Oaxaca–Blinder decomposition from per-cell moments alone
/// (computed where the data live): the same estimates, the cluster delta
/// method from the cells' influence sums ([`cell_influence_variance`]) or by
/// differences over the cells (absorbed levels), and the cluster bootstrap
/// reweighting the cells. `covariates` is the layout (names, blocks,
/// categoricals, absorbed levels); its row values are not read.
///
/// Errors: as [`linear`], and [`DecomposeError::NeedsRows`] without a
/// cluster (the row-level variance and the row bootstrap need the rows).
pub fn linear_cells(
    sample: &CellSample<'_>,
    covariates: &Covariates,
    options: LinearOptions,
    cells: Cells,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    sample.require_cluster("the Oaxaca–Blinder decomposition")?;
    let data = Data {
        sample: *sample,
        covariates,
        options,
        rows: None,
    };
    linear_core(&data, cells, inference, progress)
}

/// What the linear decomposition reads besides the cells: the sample's
/// labels and cluster, the covariates' layout, the options, and the rows when
/// they are at hand (for the row-level variance and the row bootstrap).
struct Data<'a> {
    sample: CellSample<'a>,
    covariates: &'a Covariates,
    options: LinearOptions,
    rows: Option<&'a LinearInput<'a>>,
}

/// The decomposition and its inference from `cells` (see [`linear`]).
fn linear_core(
    data: &Data<'_>,
    cells: Cells,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    let sample = &data.sample;
    let labels = sample.labels;
    let mut warnings = Vec::new();
    let effects = data.options.hospital_effects;
    warnings.extend(support_warning(&cells, data.covariates, labels, effects));
    let n = cells.group_rows(labels, "the Oaxaca–Blinder decomposition")?;
    let mut setup = Setup::new(data.covariates, data.options, cells, labels[1]);
    if effects == HospitalEffects::Random && !setup.absorb {
        return Err(DecomposeError::Statistic(
            "hospital_effects = \"random\" needs the hospital as an absorbed categorical \
             ([variables] NAME = { type = \"categorical\", absorb = true }) among the factors"
                .into(),
        ));
    }
    let random = setup
        .random_fits()
        .map_err(|e| singular_error(e, "random-intercept model (hospital_effects = \"random\")"))?;
    warnings.extend(random_warnings(data.covariates, sample, &random));
    let k = setup.cells.p();
    crate::error::enough_rows(n, k, labels, sample.min_cell)?;
    for (g, &ng) in n.iter().enumerate() {
        if ng < 10 * k {
            warnings.push(format!(
                "group `{}` has few rows ({}) for {k} coefficients: the group model is imprecise",
                labels[g],
                count_text(ng, sample.min_cell)
            ));
        }
    }
    let models = fitted_models(&setup, data.covariates, sample, inference.level, &random)?;
    let point_params = setup.params(None).map_err(DecomposeError::Statistic)?;
    let point = setup
        .values(&point_params)
        .map_err(DecomposeError::Statistic)?;
    if let Some(Cluster { count: g, .. }) = sample.cluster.filter(|c| c.count < 30) {
        warnings.push(format!(
            "only {g} clusters: cluster-robust standard errors are unreliable with fewer than about 30"
        ));
    }

    let stat = |m: &[f64]| setup.params(Some(m)).and_then(|p| setup.values(&p));
    let unclustered_delta = inference.method == Method::Delta && sample.cluster.is_none();
    // No delta method is derived for absorbed levels without clusters.
    let absorbed_withheld = (unclustered_delta && setup.absorb).then(|| {
        "no delta-method standard errors with an absorbed variable and no cluster: \
         set [design] cluster (patients of one hospital are not independent) or use \
         the bootstrap"
            .to_string()
    });
    if unclustered_delta
        && inference.vce == Vce::Model
        && matches!(
            setup.coefficients,
            Coefficients::Pooled | Coefficients::Neumark
        )
    {
        return Err(DecomposeError::ModelVarianceNotDerived {
            coefficients: setup.coefficients.as_str(),
        });
    }
    let resampled = Resampled {
        keys: &setup.keys,
        point: &point,
        spec: inference,
        clusters: sample.cluster.map(|c| c.count),
        group: data.rows.map_or(&[], |r| r.sample.group),
        weights: data.rows.and_then(|r| r.sample.weights),
    };
    let how = resampled.influence_method();
    let mut inferred = resampled_rows(
        &resampled,
        stat,
        // The influence functions, by row or summed by cluster (exact); with
        // absorbed levels the cluster delta method differentiates the cells.
        || {
            if setup.absorb {
                Ok(None)
            } else if inference.vce == Vce::Model && sample.cluster.is_none() {
                model_variance(&setup, &point_params).map(|v| Some((v, SeMethod::DeltaModel)))
            } else if let Some(rows) = data.rows {
                influence_variance_of(&setup, rows, &point_params).map(|v| Some((v, how)))
            } else {
                let g = sample.cluster.map_or(1, |c| c.count);
                cell_influence_variance(&setup, &point_params, g).map(|v| Some((v, how)))
            }
        },
        |w, g| {
            let Some(rows) = data.rows else {
                return Err("the row bootstrap needs the rows".to_string());
            };
            let cells = Cells::build(rows.sample.y, g, rows.covariates, Some(w), None);
            let s = Setup::new(rows.covariates, data.options, cells, labels[1]);
            s.params(None).and_then(|p| s.values(&p))
        },
        progress,
        &mut warnings,
    )?;
    inferred.withhold(absorbed_withheld, &mut warnings);
    let mut estimates = inferred.rows;
    unstable_shares(&mut estimates, &SHARES, &mut warnings);
    Ok(MethodOutput {
        estimates,
        models,
        warnings,
        replicates_ok: inferred.replicates_ok,
        withheld: inferred.withheld,
        balance: Vec::new(),
        learners: None,
        inference_note: None,
        n: n[0] + n[1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::covariates::{Categorical, Column};
    use crate::gelbach::{GelbachInput, gelbach, gelbach_cells};

    /// 600 rows in 3 groups (2 is skipped), 15 clusters, a numeric column and
    /// a three-level categorical, with weights.
    #[allow(clippy::type_complexity)]
    fn data() -> (Vec<f64>, Vec<u32>, Vec<f64>, Vec<u32>, Covariates) {
        let n = 600;
        let (mut y, mut g, mut w, mut cl) = (vec![], vec![], vec![], vec![]);
        let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
        for i in 0..n {
            let grp = u32::from(i % 3 == 0) + u32::from(i % 17 == 0);
            let x = ((i * 37) % 23) as f64 / 3.0 + 50.0;
            let level = (i / 3 + i / 7) % 3;
            y.push(0.2 * x + 0.8 * f64::from(grp) - 0.5 * level as f64 + ((i * 91) % 29) as f64);
            g.push(grp.min(2));
            w.push(1.0 + (i % 5) as f64 / 4.0);
            cl.push((i % 15) as u32);
            a.push(x);
            b.push(f64::from(u8::from(level == 1)));
            c.push(f64::from(u8::from(level == 2)));
        }
        let column = |name: &str, factor: &str, values: Vec<f64>| Column {
            name: name.into(),
            factor: factor.into(),
            values,
        };
        let cov = Covariates {
            columns: vec![
                column("x", "f", a),
                column("k=1", "h", b),
                column("k=2", "h", c),
            ],
            categoricals: vec![Categorical {
                variable: "k".into(),
                factor: "h".into(),
                base: "k=0".into(),
                columns: vec![1, 2],
            }],
            absorbed: None,
        };
        (y, g, w, cl, cov)
    }

    /// The same rows to 1e-10 relative; a row that is zero up to rounding
    /// (|estimate| < 1e-9) to 1e-10 of the output's largest |estimate|.
    fn assert_same(a: &MethodOutput, b: &MethodOutput) {
        assert_eq!(a.estimates.len(), b.estimates.len());
        let scale = a
            .estimates
            .iter()
            .map(|e| e.estimate.abs())
            .fold(0.0, f64::max);
        for (r, c) in a.estimates.iter().zip(&b.estimates) {
            let floor = if r.estimate.abs() < 1e-9 { scale } else { 0.0 };
            assert_eq!(
                (&r.quantity, &r.factor, &r.term),
                (&c.quantity, &c.factor, &c.term)
            );
            for (x, y) in [
                (Some(r.estimate), Some(c.estimate)),
                (r.se, c.se),
                (r.ci_low, c.ci_low),
            ] {
                let (x, y) = (x.unwrap_or(f64::NAN), y.unwrap_or(f64::NAN));
                let ok = (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-10 * x.abs().max(floor);
                assert!(ok, "{} {:?} {:?}: {x} vs {y}", r.quantity, r.factor, r.term);
            }
        }
    }

    #[test]
    fn decompositions_from_cells_alone_equal_those_on_rows() {
        let (y, g, w, cl, cov) = data();
        let sample = Sample {
            weights: Some(&w),
            cluster: Some(Cluster {
                name: "cl",
                codes: &cl,
                count: 15,
            }),
            ..Sample::new(&y, &g)
        };
        let cells = || Cells::build(&y, &g, &cov, Some(&w), Some((&cl, 15)));
        let delta = InferenceSpec::delta(0.95);
        let boot = InferenceSpec {
            method: Method::Bootstrap,
            replicates: 30,
            seed: 3,
            analysis_id: "t".into(),
            ..InferenceSpec::delta(0.95)
        };
        for coefficients in [
            Coefficients::Pooled,
            Coefficients::Cotton,
            Coefficients::Neumark,
        ] {
            let input = LinearInput {
                sample: &sample,
                covariates: &cov,
                coefficients,
                threefold: true,
                normalize: true,
                hospital_effects: HospitalEffects::Fixed,
            };
            for inference in [&delta, &boot] {
                let rows = linear(&input, inference, &|| {}).unwrap();
                let alone = linear_cells(
                    &CellSample::of(&sample),
                    &cov,
                    input.options(),
                    cells(),
                    inference,
                    &|| {},
                )
                .unwrap();
                assert_same(&rows, &alone);
            }
        }
        let input = GelbachInput {
            sample: &sample,
            covariates: &cov,
            base_columns: 1,
        };
        for inference in [&delta, &boot] {
            let rows = gelbach(&input, inference, &|| {}).unwrap();
            let alone = gelbach_cells(
                &CellSample::of(&sample),
                &cov,
                1,
                cells(),
                inference,
                &|| {},
            )
            .unwrap();
            assert_same(&rows, &alone);
        }
        // Without a cluster the cells cannot stand in for the rows.
        let unclustered = CellSample {
            cluster: None,
            ..CellSample::of(&sample)
        };
        let err = linear_cells(
            &unclustered,
            &cov,
            LinearOptions {
                coefficients: Coefficients::Pooled,
                threefold: false,
                normalize: true,
                hospital_effects: HospitalEffects::Fixed,
            },
            cells(),
            &delta,
            &|| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("allow_row_export = true"), "{err}");
    }
}
