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
//! reported as one term.
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
use crate::error::{DecomposeError, group_sizes};
use crate::inference::{
    InferenceSpec, Key, Method, Resampled, Vce, count_text, influence_variance, resampled_rows,
};
use crate::nonlinear::{NonlinearInput, nonlinear};
pub use crate::result::MethodOutput;
use crate::result::SeMethod;
use crate::sample::{Cluster, Sample};
use crate::shares::{SHARE, ShareSpec, Shares, unstable_shares};
use crate::spec::{Breakdown, Context, Designs, Parts, Ran, Spec, cite};
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
                };
                let output = linear(&input, inference, progress)?;
                return Ok(Ran::delta(output, inference, sample.cluster_name()));
            }
            Model::Logit => Link::Logit,
            Model::Probit => Link::Probit,
        };
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
}

/// Everything fixed across replicates.
struct Setup {
    cells: Cells,
    absorb: bool,
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
    fn new(input: &LinearInput<'_>, cells: Cells) -> Setup {
        let terms = Terms::new(input.covariates, input.normalize);
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
        Setup {
            cells,
            absorb: input.covariates.absorbed.is_some(),
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

    /// The pooled model with the group indicator: β* under `pooled`, and the
    /// stand-in level effects when absorbing.
    fn pooled_fit(&self, mult: Option<&[f64]>) -> Result<Option<CellFit>, ModelError> {
        if self.absorb || self.coefficients == Coefficients::Pooled {
            self.cells
                .fit(&self.spec([true, true], true), mult)
                .map(Some)
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
            Coefficients::Neumark => self
                .cells
                .fit(&self.spec([true, true], false), mult)
                .map(Some),
            _ => Ok(None),
        }
    }

    fn params(&self, mult: Option<&[f64]>) -> Result<Params, String> {
        let fr = self
            .cells
            .fit(&self.spec([true, false], false), mult)
            .map_err(|e| e.to_string())?;
        let fc = self
            .cells
            .fit(&self.spec([false, true], false), mult)
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

/// A warning when levels of the absorbed variable hold only one of the groups.
fn support_warning(input: &LinearInput<'_>) -> Option<String> {
    let a = input.covariates.absorbed.as_ref()?;
    let mut count = vec![[0usize; 2]; a.levels];
    for (i, &g) in input.sample.group.iter().enumerate() {
        if g <= 1 {
            count[a.codes[i] as usize][g as usize] += 1;
        }
    }
    let only = |g: usize| count.iter().filter(|c| c[g] > 0 && c[1 - g] == 0).count();
    let (only_r, only_c) = (only(0), only(1));
    (only_r + only_c > 0).then(|| {
        format!(
            "no common support in `{}`: {only_r} level(s) have {} patients only and {only_c} \
             level(s) {} patients only; there the group-specific effects are not identified, so \
             the pooled model's effects stand in for them (no unexplained part in those levels)",
            a.variable, input.sample.labels[0], input.sample.labels[1]
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

/// Delta-method variances from the stacked influence functions of b_r, b_c,
/// β*, x̄_r, x̄_c (and W_r, W_c for `cotton`), no absorbed variable: without
/// `units` every row its own unit, V = n/(n−1) Σ_i IF_i² (`vce = robust`, as
/// Stata's `oaxaca` with `suest`); with clusters V = G/(G−1) Σ_g (Σ_{i∈g} IF_i)²
/// (the cluster delta method, exactly).
///
/// Row i of group g has ψ(b_g) = B_g⁻¹ x_i w_i e_gi, ψ(β*) = B_p⁻¹ x^p_i w_i e^p_i
/// (the pooled design with its group indicator, whose entry is dropped),
/// ψ(x̄_g) = w_i (x_i − x̄_g)/W_g, ψ(W_g) = w_i, so IF_ik = ∇_k'ψ_i = d_gk'u_i
/// with u_i = (w e_g x_i, w e^p x^p_i, w (x_i − x̄_g), [w])
/// ([`influence_variance`], one pass).
fn influence_variance_of(
    setup: &Setup,
    input: &LinearInput<'_>,
    point: &Params,
) -> Result<Vec<f64>, DecomposeError> {
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
    let wsum = [point.w[0], point.w[1]];
    // d_gk (dim per key and group).
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
                dk[p + ks + a] = row[ox[g] + a] / wsum[g];
            }
            if cotton == 1 {
                dk[dim - 1] = row[ow + g];
            }
        }
    }
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
        &d,
        units.map(|u| u.1),
        |i, u| {
            let g = input.sample.group[i];
            if g > 1 {
                return None;
            }
            let g = g as usize;
            let w = input.sample.weights.map_or(1.0, |w| w[i]);
            let x = |j: usize| if j == 0 { 1.0 } else { cols[j - 1][i] };
            let fit = &fits[g];
            let e = input.sample.y[i] - (0..p).map(|j| x(j) * fit.coef[j]).sum::<f64>();
            for j in 0..p {
                u[j] = w * e * x(j);
            }
            if let Some(f) = &star {
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
            if cotton == 1 {
                u[dim - 1] = w;
            }
            Some((g, units.map_or(0, |c| c.0[i])))
        },
    );
    Ok(var)
}

/// The full-sample fits behind the decomposition (each group's model, the
/// pooled model, Neumark's), as model summaries; a singular fit's error names
/// the model.
fn fitted_models(
    setup: &Setup,
    input: &LinearInput<'_>,
    level: f64,
) -> Result<Vec<ModelSummary>, DecomposeError> {
    // Full-sample fits (errors named by model).
    let who = |g: usize| format!("model for group `{}`", input.sample.labels[g]);
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
    let absorbed = input.covariates.absorbed.as_ref();
    let mut models = vec![
        linear_summary(
            &setup.cells,
            format!("outcome model, group={}", input.sample.labels[0]),
            &spec_r,
            &fr,
            input.sample.cluster,
            absorbed,
            level,
        ),
        linear_summary(
            &setup.cells,
            format!("outcome model, group={}", input.sample.labels[1]),
            &spec_c,
            &fc,
            input.sample.cluster,
            absorbed,
            level,
        ),
    ];
    if let Some(f) = &pooled {
        let label = format!(
            "pooled model ({} + {}, with group indicator)",
            input.sample.labels[0], input.sample.labels[1]
        );
        let spec = setup.spec([true, true], true);
        models.push(linear_summary(
            &setup.cells,
            label,
            &spec,
            f,
            input.sample.cluster,
            absorbed,
            level,
        ));
    }
    if let (Some(f), Coefficients::Neumark) = (&star, setup.coefficients) {
        let label = format!(
            "pooled model ({} + {})",
            input.sample.labels[0], input.sample.labels[1]
        );
        let spec = setup.spec([true, true], false);
        models.push(linear_summary(
            &setup.cells,
            label,
            &spec,
            f,
            input.sample.cluster,
            absorbed,
            level,
        ));
    }
    Ok(models)
}

/// The linear Oaxaca–Blinder decomposition with its inference.
pub fn linear(
    input: &LinearInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    let mut warnings = Vec::new();
    let group = input.sample.group;
    warnings.extend(support_warning(input));
    let n = group_sizes(
        group,
        input.sample.labels,
        "the Oaxaca–Blinder decomposition",
    )?;
    let cluster = input.sample.units();
    let cells = Cells::build(
        input.sample.y,
        group,
        input.covariates,
        input.sample.weights,
        cluster,
    );
    let setup = Setup::new(input, cells);
    let k = setup.cells.p();
    crate::error::enough_rows(n, k, input.sample.labels, input.sample.min_cell)?;
    for (g, &ng) in n.iter().enumerate() {
        if ng < 10 * k {
            warnings.push(format!(
                "group `{}` has few rows ({}) for {k} coefficients: the group model is imprecise",
                input.sample.labels[g],
                count_text(ng, input.sample.min_cell)
            ));
        }
    }
    let models = fitted_models(&setup, input, inference.level)?;
    let point_params = setup.params(None).map_err(DecomposeError::Statistic)?;
    let point = setup
        .values(&point_params)
        .map_err(DecomposeError::Statistic)?;
    if let Some(Cluster { count: g, .. }) = input.sample.cluster.filter(|c| c.count < 30) {
        warnings.push(format!(
            "only {g} clusters: cluster-robust standard errors are unreliable with fewer than about 30"
        ));
    }

    let stat = |m: &[f64]| setup.params(Some(m)).and_then(|p| setup.values(&p));
    let unclustered_delta = inference.method == Method::Delta && input.sample.cluster.is_none();
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
        clusters: input.sample.cluster.map(|c| c.count),
        group,
        weights: input.sample.weights,
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
            } else if inference.vce == Vce::Model && input.sample.cluster.is_none() {
                model_variance(&setup, &point_params).map(|v| Some((v, SeMethod::DeltaModel)))
            } else {
                influence_variance_of(&setup, input, &point_params).map(|v| Some((v, how)))
            }
        },
        |w, g| {
            let cells = Cells::build(input.sample.y, g, input.covariates, Some(w), None);
            let s = Setup::new(input, cells);
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
