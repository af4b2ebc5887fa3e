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
//! **Inference.** Without clusters, the delta method of Jann (2008):
//! θ = (b_r, b_c, [β*], x̄_r, x̄_c), V(b_g) = s²_g (X_g'W X_g)⁻¹,
//! V(x̄_g) = S_g/n_g, independent blocks, V(component) = ∇'V(θ)∇ (the gradient
//! taken numerically; the components are bilinear, so central differences are
//! exact). With a cluster variable, the cluster delta method
//! ([`crate::inference::cluster_delta_variance`]) over the stacked moments,
//! which carries the covariances of groups that share hospitals. The cluster
//! bootstrap recombines cells with each replicate's cluster multiplicities.

use healthgap_models::{ModelError, ModelSummary, Vcov, VcovKind};
use serde::Serialize;

use crate::cells::{CellFit, Cells, FitSpec, INTERCEPT};
use crate::covariates::Covariates;
use crate::error::DecomposeError;
use crate::inference::{
    InferenceSpec, Key, Method, bootstrap_rows, cluster_delta_variance, delta_rows,
};
use crate::result::Estimate;

/// The factor name of the intercept's rows.
pub const INTERCEPT_FACTOR: &str = "(intercept)";

/// The choice of β* (METHODS.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Coefficients {
    /// b_r.
    Reference,
    /// b_c.
    Comparison,
    /// Pooled OLS with a group indicator (Jann).
    Pooled,
    /// Pooled OLS without a group indicator.
    Neumark,
    /// Weighted-n average of b_r and b_c.
    Cotton,
    /// ½(b_r + b_c).
    Reimers,
}

/// Inputs of one linear decomposition (one outcome, one comparison group).
pub struct LinearInput<'a> {
    /// Outcome over all rows.
    pub y: &'a [f64],
    /// 0 = reference, 1 = comparison, other rows skipped.
    pub group: &'a [u32],
    /// Reference and comparison labels.
    pub labels: [&'a str; 2],
    /// Covariates.
    pub covariates: &'a Covariates<'a>,
    /// Weights.
    pub weights: Option<&'a [f64]>,
    /// Cluster name, codes and count.
    pub cluster: Option<(&'a str, &'a [u32], usize)>,
    /// β*.
    pub coefficients: Coefficients,
    /// Also the threefold split.
    pub threefold: bool,
    /// Normalize categorical variables (and the absorbed levels).
    pub normalize: bool,
    /// Counts below this are not printed in warnings.
    pub min_cell: usize,
}

/// The output of a method before it is labelled as an [`crate::AnalysisResult`].
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
    /// Rows used.
    pub n: usize,
}

/// Where an extended (normalized) coefficient comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// A cell column (0 is the intercept).
    Column(usize),
    /// The base level of categorical k.
    Base(usize),
    /// Absorbed level l.
    Level(usize),
}

/// Everything fixed across replicates.
struct Setup {
    cells: Cells,
    absorb: bool,
    normalize: bool,
    coefficients: Coefficients,
    threefold: bool,
    /// Dummy columns (cell indexes) of each categorical.
    categoricals: Vec<Vec<usize>>,
    sources: Vec<Source>,
    /// Output term of each extended coefficient.
    term_of: Vec<usize>,
    /// Output terms: (factor, name).
    terms: Vec<(String, String)>,
    keys: Vec<Key>,
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
        let cov = input.covariates;
        let absorb = cov.absorbed.is_some();
        let categoricals: Vec<Vec<usize>> = cov
            .categoricals
            .iter()
            .map(|c| c.columns.iter().map(|j| j + 1).collect())
            .collect();
        let mut sources = vec![Source::Column(0)];
        let mut terms = vec![(INTERCEPT_FACTOR.to_string(), INTERCEPT.to_string())];
        let mut term_of = vec![0];
        for (j, col) in cov.columns.iter().enumerate() {
            sources.push(Source::Column(j + 1));
            term_of.push(terms.len());
            terms.push((col.factor.clone(), col.name.clone()));
            if input.normalize {
                for (k, cat) in cov.categoricals.iter().enumerate() {
                    if cat.columns.last() == Some(&j) {
                        sources.push(Source::Base(k));
                        term_of.push(terms.len());
                        terms.push((cat.factor.clone(), cat.base.clone()));
                    }
                }
            }
        }
        if let Some(a) = &cov.absorbed {
            let t = terms.len();
            terms.push((a.factor.clone(), a.variable.clone()));
            for l in 0..a.levels {
                sources.push(Source::Level(l));
                term_of.push(t);
            }
        }
        let factors = cov.factors();
        let mut quantities = vec!["explained", "unexplained"];
        if input.threefold {
            quantities.extend(["endowments", "coefficients", "interaction"]);
        }
        let mut keys: Vec<Key> = vec![("gap".into(), None, None)];
        for q in &quantities {
            keys.push((q.to_string(), None, None));
            let with_intercept = matches!(*q, "unexplained" | "coefficients");
            let mut fs: Vec<&str> = factors.iter().map(String::as_str).collect();
            if with_intercept {
                fs.push(INTERCEPT_FACTOR);
            }
            for f in fs {
                keys.push((q.to_string(), Some(f.to_string()), None));
                for (tf, name) in &terms {
                    if tf == f {
                        keys.push((q.to_string(), Some(f.to_string()), Some(name.clone())));
                    }
                }
            }
        }
        keys.push(("unexplained_comparison".into(), None, None));
        keys.push(("unexplained_reference".into(), None, None));
        Setup {
            cells,
            absorb,
            normalize: input.normalize,
            coefficients: input.coefficients,
            threefold: input.threefold,
            categoricals,
            sources,
            term_of,
            terms,
            keys,
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

    /// Normalized (extended) coefficients from b and α over `support` levels.
    fn extend_coef(&self, b: &[f64], a: &[f64], support: &[bool]) -> Vec<f64> {
        let mut out: Vec<f64> = Vec::with_capacity(self.sources.len());
        let mut intercept = b[0];
        let mut base = vec![0.0; self.categoricals.len()];
        if self.normalize {
            for (k, cols) in self.categoricals.iter().enumerate() {
                let mean = cols.iter().map(|&j| b[j]).sum::<f64>() / (cols.len() + 1) as f64;
                base[k] = -mean;
                intercept += mean;
            }
        }
        let mut center = 0.0;
        if self.absorb {
            let kept: Vec<f64> = a
                .iter()
                .zip(support)
                .filter(|(_, s)| **s)
                .map(|(a, _)| *a)
                .collect();
            center = if self.normalize {
                kept.iter().sum::<f64>() / kept.len().max(1) as f64
            } else {
                kept.first().copied().unwrap_or(0.0)
            };
            intercept += center;
        }
        let cat_of = |j: usize| self.categoricals.iter().position(|c| c.contains(&j));
        for src in &self.sources {
            out.push(match *src {
                Source::Column(0) => intercept,
                Source::Column(j) => b[j] + cat_of(j).map_or(0.0, |k| base[k]),
                Source::Base(k) => base[k],
                Source::Level(l) => {
                    if support[l] {
                        a[l] - center
                    } else {
                        0.0
                    }
                }
            });
        }
        out
    }

    /// Extended means: 1, x̄, base-level shares, level shares.
    fn extend_x(&self, x: &[f64], s: &[f64]) -> Vec<f64> {
        self.sources
            .iter()
            .map(|src| match *src {
                Source::Column(j) => x[j],
                Source::Base(k) => 1.0 - self.categoricals[k].iter().map(|&j| x[j]).sum::<f64>(),
                Source::Level(l) => s[l],
            })
            .collect()
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
        let br = self.extend_coef(&p.b[0], &ar, &support);
        let bc = self.extend_coef(&p.b[1], &ac, &support);
        let bs: Vec<f64> = match (&p.star, self.coefficients) {
            (Some((b, a)), _) => self.extend_coef(b, a, &support),
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
        let xr = self.extend_x(&p.x[0], &p.s[0]);
        let xc = self.extend_x(&p.x[1], &p.s[1]);
        let nt = self.terms.len();
        let per = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
            let mut t = vec![0.0; nt];
            for e in 0..self.sources.len() {
                t[self.term_of[e]] += f(e);
            }
            t
        };
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
        let mut out = Vec::with_capacity(self.keys.len());
        for (q, f, t) in &self.keys {
            let v = match q.as_str() {
                "gap" => gap,
                "unexplained_comparison" => uc.iter().sum(),
                "unexplained_reference" => ur.iter().sum(),
                _ => {
                    let vals = &parts
                        .iter()
                        .find(|(n, _)| n == q)
                        .map(|(_, v)| v)
                        .ok_or("key")?;
                    match (f, t) {
                        (None, _) => vals.iter().sum(),
                        (Some(f), None) => self
                            .terms
                            .iter()
                            .zip(vals.iter())
                            .filter(|((tf, _), _)| tf == f)
                            .map(|(_, v)| v)
                            .sum(),
                        (Some(_), Some(t)) => {
                            let i = self.terms.iter().position(|(_, n)| n == t).ok_or("term")?;
                            vals[i]
                        }
                    }
                }
            };
            out.push(v);
        }
        Ok(out)
    }
}

/// A warning when levels of the absorbed variable hold only one of the groups.
fn support_warning(input: &LinearInput<'_>) -> Option<String> {
    let a = input.covariates.absorbed.as_ref()?;
    let mut count = vec![[0usize; 2]; a.levels];
    for (i, &g) in input.group.iter().enumerate() {
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
            a.variable, input.labels[0], input.labels[1]
        )
    })
}

fn model_error(e: ModelError, who: &str) -> DecomposeError {
    match e {
        ModelError::Singular { columns, .. } => DecomposeError::Input(format!(
            "the {who} is singular: {} {} no variation or are collinear there; merge rare \
             levels or remove the variable from [factors]",
            if columns.is_empty() {
                "the columns".to_string()
            } else {
                columns.join(", ")
            },
            if columns.len() == 1 { "has" } else { "have" },
        )),
        e => DecomposeError::Model(e),
    }
}

/// The Jann (2008) delta-method variances without clusters (no absorbed variable).
fn jann_variance(setup: &Setup, point: &Params) -> Result<Vec<f64>, DecomposeError> {
    let p = setup.cells.p();
    let cells = &setup.cells;
    let fr = cells.fit(&setup.spec([true, false], false), None)?;
    let fc = cells.fit(&setup.spec([false, true], false), None)?;
    let pooled = setup.pooled_fit(None)?;
    let star = setup.star_fit(pooled.as_ref(), None)?;
    let iid = |f: &CellFit, skip: usize| -> Vec<f64> {
        let k = f.coef.len();
        let s2 = f.rss / (f.n - k as f64);
        let q = k - skip;
        let mut v = vec![0.0; q * q];
        for i in 0..q {
            for j in 0..q {
                v[i * q + j] = s2 * f.bread[(i + skip) * k + j + skip];
            }
        }
        v
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
    // θ blocks: b_r, b_c, [β*], x̄_r (no intercept), x̄_c.
    let mut blocks: Vec<Vec<f64>> = vec![iid(&fr, 0), iid(&fc, 0)];
    if let Some(f) = &star {
        blocks.push(iid(
            f,
            usize::from(setup.coefficients == Coefficients::Pooled),
        ));
    }
    blocks.push(xcov(0));
    blocks.push(xcov(1));
    let mut theta: Vec<f64> = Vec::new();
    theta.extend(&point.b[0]);
    theta.extend(&point.b[1]);
    if let Some((b, _)) = &point.star {
        theta.extend(b);
    }
    theta.extend(&point.x[0][1..]);
    theta.extend(&point.x[1][1..]);
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
        Params {
            b: [br, bc],
            a: [Vec::new(), Vec::new()],
            star,
            fill: Vec::new(),
            x: [xr, xc],
            s: point.s.clone(),
            w: point.w,
        }
    };
    let nk = setup.keys.len();
    let mut jac = vec![vec![0.0; theta.len()]; nk];
    for j in 0..theta.len() {
        let h = 1e-3 * theta[j].abs().max(1.0);
        let mut t = theta.clone();
        t[j] += h;
        let up = setup
            .values(&from_theta(&t))
            .map_err(DecomposeError::Input)?;
        t[j] -= 2.0 * h;
        let down = setup
            .values(&from_theta(&t))
            .map_err(DecomposeError::Input)?;
        for r in 0..nk {
            jac[r][j] = (up[r] - down[r]) / (2.0 * h);
        }
    }
    let mut var = vec![0.0; nk];
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

/// The summary of one fitted group or pooled model.
fn summary(
    setup: &Setup,
    label: String,
    spec: &FitSpec,
    fit: &CellFit,
    input: &LinearInput<'_>,
    level: f64,
) -> ModelSummary {
    let k = fit.coef.len();
    let (var, kind, vlabel, df, clusters): (Vec<f64>, VcovKind, String, f64, Option<usize>) =
        match input.cluster {
            Some((name, _, g)) => {
                let stat = |m: &[f64]| {
                    setup
                        .cells
                        .fit(spec, Some(m))
                        .map(|f| f.coef)
                        .map_err(|e| e.to_string())
                };
                let factor = (fit.n - 1.0) / (fit.n - k as f64);
                let v = cluster_delta_variance(g, stat)
                    .map(|v| v.into_iter().map(|x| x * factor).collect())
                    .unwrap_or_else(|_| vec![f64::NAN; k]);
                (
                    v,
                    VcovKind::Cr1,
                    format!("CR1({name})"),
                    (g - 1) as f64,
                    Some(g),
                )
            }
            None => {
                let s2 = fit.rss / (fit.n - k as f64);
                let v = (0..k).map(|i| s2 * fit.bread[i * k + i]).collect();
                (v, VcovKind::Iid, "iid".into(), fit.n - k as f64, None)
            }
        };
    let mut matrix = vec![0.0; k * k];
    for i in 0..k {
        matrix[i * k + i] = var[i];
    }
    let vcov = Vcov {
        kind,
        matrix,
        df,
        clusters,
        k_total: k,
        label: vlabel,
    };
    ModelSummary {
        label,
        family: "linear".into(),
        n: fit.n.round() as usize,
        clusters,
        vcov: vcov.label.clone(),
        converged: true,
        iterations: 1,
        absorbed: input
            .covariates
            .absorbed
            .iter()
            .map(|a| format!("{} ({} levels)", a.variable, a.levels))
            .collect(),
        coefficients: healthgap_models::summary::coefficient_rows(
            &fit.names, &fit.coef, &vcov, level,
        ),
    }
}

/// The linear Oaxaca–Blinder decomposition with its inference.
pub fn linear(
    input: &LinearInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    let mut warnings = Vec::new();
    let group = input.group;
    warnings.extend(support_warning(input));
    let n_of = |g: u32| group.iter().filter(|&&x| x == g).count();
    let n = [n_of(0), n_of(1)];
    for (g, &ng) in n.iter().enumerate() {
        if ng == 0 {
            return Err(DecomposeError::Input(format!(
                "group `{}` has no rows for the Oaxaca–Blinder decomposition",
                input.labels[g]
            )));
        }
    }
    let cluster = input.cluster.map(|(_, c, g)| (c, g));
    let cells = Cells::build(input.y, group, input.covariates, input.weights, cluster);
    let setup = Setup::new(input, cells);
    let k = setup.cells.p();
    for (g, &ng) in n.iter().enumerate() {
        if ng < 10 * k {
            warnings.push(format!(
                "group `{}` has few rows ({}) for {k} coefficients: the group model is imprecise",
                input.labels[g],
                if ng < input.min_cell {
                    format!("fewer than {}", input.min_cell)
                } else {
                    ng.to_string()
                }
            ));
        }
    }
    // Full-sample fits (errors named by model).
    let who = |g: usize| format!("model for group `{}`", input.labels[g]);
    let spec_r = setup.spec([true, false], false);
    let spec_c = setup.spec([false, true], false);
    let fr = setup
        .cells
        .fit(&spec_r, None)
        .map_err(|e| model_error(e, &who(0)))?;
    let fc = setup
        .cells
        .fit(&spec_c, None)
        .map_err(|e| model_error(e, &who(1)))?;
    let pooled = setup
        .pooled_fit(None)
        .map_err(|e| model_error(e, "pooled model"))?;
    let star = setup
        .star_fit(pooled.as_ref(), None)
        .map_err(|e| model_error(e, "pooled model"))?;
    let point_params = setup.params(None).map_err(DecomposeError::Input)?;
    let point = setup.values(&point_params).map_err(DecomposeError::Input)?;
    let level = inference.level;
    let mut models = vec![
        summary(
            &setup,
            format!("outcome model, group={}", input.labels[0]),
            &spec_r,
            &fr,
            input,
            level,
        ),
        summary(
            &setup,
            format!("outcome model, group={}", input.labels[1]),
            &spec_c,
            &fc,
            input,
            level,
        ),
    ];
    if let Some(f) = &pooled {
        let label = format!(
            "pooled model ({} + {}, with group indicator)",
            input.labels[0], input.labels[1]
        );
        let spec = setup.spec([true, true], true);
        models.push(summary(&setup, label, &spec, f, input, level));
    }
    if let (Some(f), Coefficients::Neumark) = (&star, setup.coefficients) {
        let label = format!("pooled model ({} + {})", input.labels[0], input.labels[1]);
        let spec = setup.spec([true, true], false);
        models.push(summary(&setup, label, &spec, f, input, level));
    }
    if let Some((_, _, g)) = input.cluster.filter(|c| c.2 < 30) {
        warnings.push(format!(
            "only {g} clusters: cluster-robust standard errors are unreliable with fewer than about 30"
        ));
    }

    let stat = |m: &[f64]| setup.params(Some(m)).and_then(|p| setup.values(&p));
    let (estimates, replicates_ok) = match (inference.method, input.cluster) {
        (Method::Delta, Some((_, _, g))) => {
            let v = cluster_delta_variance(g, stat).map_err(DecomposeError::Input)?;
            (delta_rows(&setup.keys, &point, Some(&v), level), None)
        }
        (Method::Delta, None) => {
            if setup.absorb {
                warnings.push(
                    "no delta-method standard errors with an absorbed variable and no cluster: \
                     set [design] cluster (patients of one hospital are not independent) or use \
                     the bootstrap"
                        .into(),
                );
                (delta_rows(&setup.keys, &point, None, level), None)
            } else {
                let v = jann_variance(&setup, &point_params)?;
                (delta_rows(&setup.keys, &point, Some(&v), level), None)
            }
        }
        (Method::Bootstrap, Some((_, _, g))) => {
            if inference.stratify {
                warnings.push(
                    "stratify ignored: clusters hold patients of both groups, so the cluster \
                     bootstrap cannot resample within groups"
                        .into(),
                );
            }
            let (rows, draws) =
                bootstrap_rows(&setup.keys, &point, inference, g, None, stat, progress);
            warnings.extend(failed_warning(&draws));
            (rows, Some(draws.estimates.len()))
        }
        (Method::Bootstrap, None) => {
            // Row bootstrap: rows of the two groups are the resampling units.
            let rows_used: Vec<usize> = (0..group.len()).filter(|&i| group[i] <= 1).collect();
            let group = group.to_vec();
            let strata = inference
                .stratify
                .then(|| rows_used.iter().map(|&i| group[i]).collect());
            let base_w: Vec<f64> = (0..group.len())
                .map(|i| input.weights.map_or(1.0, |w| w[i]))
                .collect();
            let row_stat = |m: &[f64]| -> Result<Vec<f64>, String> {
                let mut w = vec![0.0; group.len()];
                for (r, &i) in rows_used.iter().enumerate() {
                    w[i] = base_w[i] * m[r];
                }
                let g2: Vec<u32> = group
                    .iter()
                    .zip(&w)
                    .map(|(&g, &w)| if w > 0.0 { g } else { 2 })
                    .collect();
                let cells = Cells::build(input.y, &g2, input.covariates, Some(&w), None);
                let s = Setup::new(input, cells);
                s.params(None).and_then(|p| s.values(&p))
            };
            let (rows, draws) = bootstrap_rows(
                &setup.keys,
                &point,
                inference,
                rows_used.len(),
                strata,
                row_stat,
                progress,
            );
            warnings.extend(failed_warning(&draws));
            (rows, Some(draws.estimates.len()))
        }
    };
    Ok(MethodOutput {
        estimates,
        models,
        warnings,
        replicates_ok,
        n: n[0] + n[1],
    })
}

/// A warning when bootstrap replicates failed.
pub fn failed_warning(draws: &healthgap_models::bootstrap::BootstrapDraws) -> Option<String> {
    (draws.failed > 0).then(|| {
        format!(
            "{} of {} bootstrap replicates failed and were left out (first: {})",
            draws.failed,
            draws.replicates,
            draws.failures.first().map_or("", String::as_str)
        )
    })
}
