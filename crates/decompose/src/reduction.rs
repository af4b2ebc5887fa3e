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
//! 0 or 1, the MLE). Several targets: each alone, the joint reduction, the
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

use std::collections::HashMap;

use healthgap_models::bootstrap::stream_key;
use healthgap_models::{Design, Glm, Link, ModelSummary, Ols, SmallSample, VcovKind};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cells::{Cells, FitSpec};
use crate::covariates::{Absorbed, Covariates};
use crate::error::{DecomposeError, group_sizes};
use crate::inference::{
    InferenceSpec, Key, Method, Vce, bootstrap_rows, count_text, row_bootstrap, share_text,
};
use crate::mediation::{e_value, e_value_of_limit};
use crate::result::MethodOutput;
use crate::sample::{Cluster, Sample};
use crate::shares::{ShareSpec, Shares, unstable_shares};
use crate::spec::{Breakdown, Context, Designs, Parts, Ran, Role, Spec, cite, joined};

mod density_ratio;

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
#[serde(deny_unknown_fields)]
pub struct ReductionSpec {
    /// Allowable covariates (variables or blocks).
    pub allowable: Vec<String>,
    /// Target blocks, in the order of the sequential reductions.
    pub targets: Vec<String>,
    /// gcomputation (default) | weighting | doubly_robust.
    #[serde(default)]
    pub estimator: Estimator,
    /// Monte-Carlo draws per comparison patient (g-computation; default 5).
    #[serde(default = "default_draws")]
    pub draws: usize,
}

fn default_draws() -> usize {
    5
}

impl Spec for ReductionSpec {
    fn name(&self) -> &'static str {
        "disparity_reduction"
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
        };
        let output = disparity_reduction(&input, inference, progress)?;
        // Bootstrap only: every row comes from the replicates.
        let mut info = inference.info(sample.cluster_name(), &output);
        info.method = "bootstrap".into();
        info.replicates = Some(inference.replicates);
        info.replicates_ok = output.replicates_ok;
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

    fn check(&self, _: Vce) -> Result<(), String> {
        if self.draws == 0 {
            return Err("draws = 0: g-computation needs at least one draw per patient".into());
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
        format!(
            "Interventional disparity reduction (Jackson & VanderWeele 2018) estimated, by \
             {estimator} with {} Monte Carlo draws per patient and common random numbers, how \
             much of the disparity standardized over {} would remain if each target block ({}) \
             of the comparison group were drawn from the reference group's distribution given \
             those covariates; the care-site target reassigns hospitals (the gap-closing \
             estimand of Lundberg 2022). Reductions are reported for each target alone, \
             jointly, sequentially in the configured order and as Shapley values over all \
             orders (Shorrocks 2013), with E-values for the remaining disparity (VanderWeele & \
             Ding 2017).",
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
}

/// One covariate column over the pair rows.
enum DesignColumn {
    /// Every value.
    Dense(Vec<f64>),
    /// A 0/1 column: the rows where it is 1, ascending.
    Ones(Vec<u32>),
}

impl DesignColumn {
    fn new(values: Vec<f64>) -> DesignColumn {
        if values.iter().all(|v| *v == 0.0 || *v == 1.0) && values.len() <= u32::MAX as usize {
            DesignColumn::Ones(
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v == 1.0)
                    .map(|(r, _)| r as u32)
                    .collect(),
            )
        } else {
            DesignColumn::Dense(values)
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
}

impl Setup<'_> {
    fn absorbed(&self) -> Option<&Absorbed> {
        self.input.covariates.absorbed.as_ref()
    }

    fn link(&self) -> Option<Link> {
        self.input.sample.binary.then_some(Link::Logit)
    }

    fn weight(&self, r: usize, mult: Option<&[f64]>) -> f64 {
        self.w[r] * mult.map_or(1.0, |m| m[self.cluster_of[r] as usize])
    }

    /// Block parts of every pair row's linear predictor without the level
    /// effects (row-major n × (K + 1): other, target 1..K).
    fn block_parts(&self, coef: &[f64]) -> Vec<f64> {
        let mut parts = Vec::new();
        self.block_parts_into(coef, &mut parts);
        parts
    }

    /// [`Setup::block_parts`] into a reused buffer (a replicate's 8·n·(K + 1)
    /// bytes would otherwise be fresh, page-faulting memory each time).
    fn block_parts_into(&self, coef: &[f64], parts: &mut Vec<f64>) {
        let n = self.rows.len();
        let kk = self.k + 1;
        let absorb = self.absorbed().is_some();
        parts.clear();
        parts.resize(n * kk, 0.0);
        let base = if absorb { 0.0 } else { coef[1] };
        let off = if absorb { 1 } else { 2 };
        // In chunks of rows, so that the chunk's parts stay in cache while
        // every column adds to them (one pass over memory instead of one per
        // column).
        const CHUNK: usize = 4096;
        for (c, chunk) in parts.chunks_mut(CHUNK * kk).enumerate() {
            let lo = c * CHUNK;
            let rows = chunk.len() / kk;
            for r in 0..rows {
                chunk[r * kk] = coef[0] * f64::from(self.group[lo + r]) + base;
            }
            for (j, &b) in self.block_of.iter().enumerate() {
                let cj = coef[off + j];
                match &self.x[j] {
                    DesignColumn::Dense(values) => {
                        for (r, v) in values[lo..lo + rows].iter().enumerate() {
                            chunk[r * kk + b] += v * cj;
                        }
                    }
                    DesignColumn::Ones(ones) => {
                        let from = ones.partition_point(|&r| (r as usize) < lo);
                        let to = ones.partition_point(|&r| (r as usize) < lo + rows);
                        for &r in &ones[from..to] {
                            chunk[(r as usize - lo) * kk + b] += cj;
                        }
                    }
                }
            }
        }
    }

    /// Level effects given the other parts: per level, the α solving the
    /// level's score equation (closed form for OLS; Newton for logit, warm
    /// started at `start`; ±∞ for levels without events or non-events). The
    /// Newton steps of all levels run together, one sequential pass over the
    /// rows per step accumulating each level's score and information. In a
    /// one-step replicate (`mult` given, no refit) a single Newton step from
    /// the full-sample effects is taken, as for the coefficients.
    fn alphas(&self, parts: &[f64], mult: Option<&[f64]>, start: &[f64]) -> Vec<f64> {
        let kk = self.k + 1;
        let levels = self.absorbed().map_or(0, |a| a.levels);
        // Linear predictors without the level effects (the sum of the parts).
        let xb: Vec<f64> = parts.chunks(kk).map(|p| p.iter().sum()).collect();
        let w: Vec<f64> = (0..xb.len()).map(|r| self.weight(r, mult)).collect();
        let (mut sw, mut sy, mut swx) = (vec![0.0; levels], vec![0.0; levels], vec![0.0; levels]);
        for (r, &l) in self.level.iter().enumerate() {
            let l = l as usize;
            sw[l] += w[r];
            sy[l] += w[r] * self.y[r];
            swx[l] += w[r] * xb[r];
        }
        let Some(lk) = self.link() else {
            return (0..levels)
                .map(|l| {
                    if sw[l] > 0.0 {
                        (sy[l] - swx[l]) / sw[l]
                    } else {
                        f64::NAN
                    }
                })
                .collect();
        };
        let mut alpha: Vec<f64> = (0..levels)
            .map(|l| {
                if sw[l] <= 0.0 {
                    f64::NAN
                } else if sy[l] <= 0.0 {
                    f64::NEG_INFINITY
                } else if sy[l] >= sw[l] {
                    f64::INFINITY
                } else if start.get(l).is_some_and(|a| a.is_finite()) {
                    start[l]
                } else {
                    let rate = sy[l] / sw[l];
                    (rate / (1.0 - rate)).ln() - swx[l] / sw[l]
                }
            })
            .collect();
        let mut active: Vec<bool> = alpha.iter().map(|a| a.is_finite()).collect();
        let steps = if mult.is_some() && self.refit.is_none() {
            1
        } else {
            50
        };
        for _ in 0..steps {
            if !active.iter().any(|a| *a) {
                break;
            }
            let (mut g, mut h) = (vec![0.0; levels], vec![0.0; levels]);
            for (r, &l) in self.level.iter().enumerate() {
                let l = l as usize;
                if !active[l] || w[r] == 0.0 {
                    continue;
                }
                let p = lk.cdf(alpha[l] + xb[r]);
                g[l] += w[r] * (self.y[r] - p);
                h[l] += w[r] * p * (1.0 - p);
            }
            for l in 0..levels {
                if active[l] {
                    let step = g[l] / h[l].max(1e-300);
                    alpha[l] += step;
                    if step.abs() < 1e-10 {
                        active[l] = false;
                    }
                }
            }
        }
        alpha
    }

    /// Every pair row's block parts (row-major n × (K + 1)) for the replicate's
    /// model: refitted to convergence (a logit model by default), or one
    /// Newton step from the full-sample fit (exact for OLS; `one_step` for
    /// logit); the level effects re-solved given the coefficients.
    fn model_parts(&self, mult: Option<&[f64]>) -> Result<Vec<f64>, String> {
        let mut parts = Vec::new();
        self.model_parts_into(mult, &mut parts)?;
        Ok(parts)
    }

    /// [`Setup::model_parts`] into a reused buffer.
    fn model_parts_into(&self, mult: Option<&[f64]>, parts: &mut Vec<f64>) -> Result<(), String> {
        let coef: Vec<f64> = match mult {
            None => self.coef.clone(),
            Some(m) if self.refit.is_some() => self.refitted(m)?,
            Some(m) => {
                let step = self
                    .cells
                    .fit(&self.step_spec, Some(m))
                    .map_err(|e| e.to_string())?;
                self.coef
                    .iter()
                    .zip(&step.coef)
                    .map(|(b, s)| b + s)
                    .collect()
            }
        };
        self.block_parts_into(&coef, parts);
        if self.absorbed().is_some() {
            let alpha = self.alphas(parts, mult, &self.alpha_hat);
            let kk = self.k + 1;
            let ka = self
                .input
                .targets
                .iter()
                .position(|t| t.absorbed)
                .map_or(0, |k| k + 1);
            for (r, &l) in self.level.iter().enumerate() {
                parts[r * kk + ka] += alpha[l as usize];
            }
        }
        Ok(())
    }

    /// A cluster-bootstrap replicate's logit coefficients: the outcome model
    /// on the replicate's rows (weights × cluster multiplicities), Newton
    /// iterated to convergence from the full-sample estimate.
    fn refitted(&self, mult: &[f64]) -> Result<Vec<f64>, String> {
        let Some(design) = &self.refit else {
            return Err("no outcome design to refit".into());
        };
        let weights: Vec<f64> = (0..self.rows.len())
            .map(|r| self.weight(r, Some(mult)))
            .collect();
        let keep: Vec<bool> = weights.iter().map(|w| *w > 0.0).collect();
        let kept: Vec<f64> = weights.into_iter().filter(|w| *w > 0.0).collect();
        let sample = design.select_rows(&keep).with_weights(kept);
        let fit = Glm::logit()
            .fit(&sample, Some(&self.coef))
            .map_err(|e| e.to_string())?;
        if !fit.converged {
            return Err(format!(
                "the outcome model did not converge in the replicate ({} iterations, max |score| {:.2e})",
                fit.iterations, fit.max_score
            ));
        }
        if fit.coef.len() != self.coef.len() {
            return Err(format!(
                "the outcome model dropped collinear columns in the replicate ({})",
                fit.dropped.join(", ")
            ));
        }
        Ok(fit.coef)
    }

    /// Σ w·F(η_S) over the comparison patients and their partners' draws for
    /// every subset S of swapped targets, with Σw, Σw·y and Σw·(reference
    /// stratum mean). The unswapped subset does not depend on the draws and
    /// is evaluated once per patient. Generic in F so that the link inlines.
    fn subset_means<F: Fn(f64) -> f64>(
        &self,
        flat: &[f64],
        partner: &[usize],
        sw: &[f64],
        sy: &[f64],
        mult: Option<&[f64]>,
        f: F,
    ) -> (Vec<f64>, f64, f64, f64) {
        let kk = self.k + 1;
        let d = self.input.draws;
        let nsub = 1usize << self.k;
        let mut mu = vec![0.0; nsub];
        let mut eta = vec![0.0; nsub];
        let mut diff = vec![0.0; self.k];
        let (mut wc, mut yc, mut refm) = (0.0, 0.0, 0.0);
        let mut current = usize::MAX;
        for (ci, &r) in self.comparison.iter().enumerate() {
            let w = self.weight(r, mult);
            let s = self.stratum[r] as usize;
            if s != current {
                // The partners are random rows of this stratum: read its block
                // of parts once in order first, so that they come from cache
                // rather than one memory miss each.
                current = s;
                if let Some(range) = self.stratum_rows.get(s) {
                    let block = &flat[range.start * kk..range.end * kk];
                    std::hint::black_box(block.iter().fold(0.0, |a, v| a + v));
                }
            }
            if w == 0.0 || sw[s] <= 0.0 {
                continue;
            }
            wc += w;
            yc += w * self.y[r];
            refm += w * sy[s] / sw[s];
            let own = &flat[r * kk..(r + 1) * kk];
            let own_total: f64 = own.iter().sum();
            let own_finite = own.iter().all(|v| v.is_finite());
            mu[0] += w * f(own_total);
            let wd = w / d as f64;
            for draw in 0..d {
                let j = partner[ci * d + draw];
                let other = &flat[j * kk..(j + 1) * kk];
                if own_finite && other[1..].iter().all(|v| v.is_finite()) {
                    // η_S = η_∅ + Σ_{k∈S} (other_k − own_k), each subset from
                    // the one without its lowest target.
                    for k in 0..self.k {
                        diff[k] = other[k + 1] - own[k + 1];
                    }
                    eta[0] = own_total;
                    for subset in 1..nsub {
                        let low = subset.trailing_zeros() as usize;
                        eta[subset] = eta[subset & (subset - 1)] + diff[low];
                        mu[subset] += wd * f(eta[subset]);
                    }
                    continue;
                }
                for (subset, m) in mu.iter_mut().enumerate().skip(1) {
                    // Summed block by block (hospital effects may be ±∞).
                    let mut e = own[0];
                    for k in 0..self.k {
                        e += if subset & (1 << k) != 0 {
                            other[k + 1]
                        } else {
                            own[k + 1]
                        };
                    }
                    *m += wd * f(e);
                }
            }
        }
        (mu, wc, yc, refm)
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

    /// The targets of a subset, joined by "+".
    fn subset_name(&self, subset: usize) -> String {
        self.input
            .targets
            .iter()
            .enumerate()
            .filter(|(k, _)| subset & (1 << k) != 0)
            .map(|(_, t)| t.name.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Weighting and doubly robust: replaces the g-computation means by
    /// Σ w·r_S·y / Σ w·r_S (weighting), or adds the weighted residuals of the
    /// outcome model Σ w·r_S·(y − m̂) / Σ w·r_S (doubly robust; r_∅ = 1).
    fn weighted_means(
        &self,
        flat: &[f64],
        sw: &[f64],
        mult: Option<&[f64]>,
        mu: &mut [f64],
        ybar: f64,
    ) {
        let kk = self.k + 1;
        let nsub = 1usize << self.k;
        let (mut den, mut num_y, mut num_res) = (vec![0.0; nsub], vec![0.0; nsub], vec![0.0; nsub]);
        for (ci, &r) in self.comparison.iter().enumerate() {
            let w = self.weight(r, mult);
            let s = self.stratum[r] as usize;
            if w == 0.0 || sw[s] <= 0.0 {
                continue;
            }
            let eta: f64 = flat[r * kk..(r + 1) * kk].iter().sum();
            let fitted = self.link().map_or(eta, |l| l.cdf(eta));
            let y = self.y[r];
            for subset in 0..nsub {
                let ratio = if subset == 0 {
                    1.0
                } else {
                    self.ratio[subset][ci]
                };
                den[subset] += w * ratio;
                num_y[subset] += w * ratio * y;
                num_res[subset] += w * ratio * (y - fitted);
            }
        }
        for subset in 0..nsub {
            if den[subset] <= 0.0 {
                continue;
            }
            mu[subset] = match self.input.estimator {
                Estimator::Weighting if subset == 0 => ybar,
                Estimator::Weighting => num_y[subset] / den[subset],
                _ => mu[subset] + num_res[subset] / den[subset],
            };
        }
    }

    /// Reference means per stratum, and every partner by one merge pass of
    /// the sorted uniforms against the cumulative weights.
    fn partners(&self, mult: Option<&[f64]>) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
        let d = self.input.draws;
        let mut sw = vec![0.0; self.strata];
        let mut sy = vec![0.0; self.strata];
        let mut partner = vec![0usize; self.comparison.len() * d];
        for (s, members) in self.members.iter().enumerate() {
            for &r in members {
                let w = self.weight(r, mult);
                sw[s] += w;
                sy[s] += w * self.y[r];
            }
            if sw[s] <= 0.0 {
                continue;
            }
            let mut idx = 0;
            let mut cum = self.weight(members[0], mult);
            for &(slot, u) in &self.queries[s] {
                let target = u * sw[s];
                while cum <= target && idx + 1 < members.len() {
                    idx += 1;
                    cum += self.weight(members[idx], mult);
                }
                partner[slot] = members[idx];
            }
        }
        (partner, sw, sy)
    }

    /// Every statistic, in key order, from the subset means, the comparison
    /// mean and the standardized reference mean.
    fn statistics(&self, mu: &[f64], ybar: f64, rstd: f64) -> Result<Vec<f64>, String> {
        let nsub = 1usize << self.k;
        let tau = ybar - rstd;
        let delta = |subset: usize| mu[0] - mu[subset];
        let full = nsub - 1;
        // Shapley: φ_k = Σ_{S ∌ k} |S|!(K − |S| − 1)!/K! [δ(S ∪ k) − δ(S)].
        let fact = |n: usize| (1..=n).map(|v| v as f64).product::<f64>();
        let shapley: Vec<f64> = (0..self.k)
            .map(|k| {
                (0..nsub)
                    .filter(|s| s & (1 << k) == 0)
                    .map(|s| {
                        let size = s.count_ones() as usize;
                        fact(size) * fact(self.k - size - 1) / fact(self.k)
                            * (delta(s | (1 << k)) - delta(s))
                    })
                    .sum()
            })
            .collect();
        let mut out = Vec::with_capacity(self.keys.len());
        for (q, f, _) in &self.keys {
            let k = f
                .as_ref()
                .and_then(|f| self.input.targets.iter().position(|t| &t.name == f));
            let v = match (q.as_str(), k) {
                ("comparison_mean", _) => ybar,
                ("reference_mean_standardized", _) => rstd,
                ("initial_disparity", _) => tau,
                ("disparity_reduction", None) => delta(full),
                ("disparity_remaining", None) => tau - delta(full),
                ("disparity_reduction", Some(k)) => delta(1 << k),
                ("disparity_remaining", Some(k)) => tau - delta(1 << k),
                ("disparity_reduction_sequential", Some(k)) => {
                    let upto = (1usize << (k + 1)) - 1;
                    delta(upto) - delta(upto >> 1)
                }
                ("disparity_reduction_shapley", Some(k)) => shapley[k],
                ("e_value_disparity_remaining", k) => {
                    let remaining = tau - delta(k.map_or(full, |k| 1 << k));
                    if self.input.sample.binary && rstd > 0.0 {
                        e_value((rstd + remaining) / rstd)
                    } else {
                        f64::NAN
                    }
                }
                _ => f64::NAN,
            };
            out.push(v);
        }
        self.shares.fill(&mut out);
        Ok(out)
    }
}

/// Shares of the initial disparity: the Shapley reduction by target, and
/// what remains with every target equalised.
const SHARES: ShareSpec = ShareSpec {
    total: "initial_disparity",
    blocks: Some("disparity_reduction_shapley"),
    named: &["disparity_remaining"],
};

/// A binary outcome with a hospital target: a hospital without events (or
/// without non-events) has an infinite effect (every patient moved there gets
/// a risk of exactly 0 or 1), and one of fewer than `min_cell` patients an
/// imprecise one. The care-site target moves comparison patients into the
/// hospitals of reference patients, so the share of reference patients in
/// such hospitals says how much of the care-site reduction rests on them (a
/// warning above 5%).
fn sparse_hospitals_warning(
    input: &ReductionInput<'_>,
    rows: &[usize],
    group: &[u8],
) -> Option<String> {
    let a = input.covariates.absorbed.as_ref()?;
    if !input.sample.binary || !input.targets.iter().any(|t| t.absorbed) {
        return None;
    }
    let (mut w, mut ev, mut n) = (
        vec![0.0; a.levels],
        vec![0.0; a.levels],
        vec![0usize; a.levels],
    );
    for &i in rows {
        let l = a.codes[i] as usize;
        let wi = input.sample.weights.map_or(1.0, |w| w[i]);
        w[l] += wi;
        ev[l] += wi * input.sample.y[i];
        n[l] += 1;
    }
    let degenerate = |l: usize| w[l] > 0.0 && (ev[l] <= 0.0 || ev[l] >= w[l]);
    let sparse = |l: usize| degenerate(l) || n[l] < input.sample.min_cell;
    let (mut in_sparse, mut reference) = (0.0, 0.0);
    for (r, &i) in rows.iter().enumerate() {
        if group[r] == 0 {
            let wi = input.sample.weights.map_or(1.0, |w| w[i]);
            reference += wi;
            if sparse(a.codes[i] as usize) {
                in_sparse += wi;
            }
        }
    }
    let infinite = (0..a.levels).filter(|&l| degenerate(l)).count();
    let share = in_sparse / reference.max(1e-300);
    (share > 0.05).then(|| {
        format!(
            "{:.1}% of the {} patients are in hospitals without events or non-events ({infinite} \
             such hospitals, whose effects are infinite: a risk of exactly 0 or 1 for every \
             patient moved there) or with fewer than {} patients: the care-site target moves \
             {} patients into these hospitals in proportion, so its reduction rests on \
             degenerate or imprecise hospital effects and can be biased (shrunken hospital \
             effects are not implemented yet)",
            100.0 * share,
            input.sample.labels[0],
            input.sample.min_cell,
            input.sample.labels[1]
        )
    })
}

fn keys(targets: &[Target], binary: bool) -> Vec<Key> {
    let total = |q: &str| (q.to_string(), None, None);
    let per = |q: &str, t: &Target| (q.to_string(), Some(t.name.clone()), None);
    let mut k = vec![
        total("comparison_mean"),
        total("reference_mean_standardized"),
        total("initial_disparity"),
        total("disparity_reduction"),
        total("disparity_remaining"),
    ];
    for t in targets {
        k.push(per("disparity_reduction", t));
        k.push(per("disparity_remaining", t));
    }
    for t in targets {
        k.push(per("disparity_reduction_sequential", t));
    }
    for t in targets {
        k.push(per("disparity_reduction_shapley", t));
    }
    if binary {
        k.push(total("e_value_disparity_remaining"));
        for t in targets {
            k.push(per("e_value_disparity_remaining", t));
        }
    }
    let shares = SHARES.keys(&k);
    k.extend(shares);
    k
}

/// The disparity reduction with its cluster bootstrap.
pub fn disparity_reduction(
    input: &ReductionInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    let mut warnings = Vec::new();
    let (setup, summary) = Setup::new(input, inference, &mut warnings)?;
    let point = setup.values(None).map_err(DecomposeError::Input)?;
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
        inference_note: (input.sample.cluster.is_some()
            && input.sample.binary
            && inference.one_step)
            .then(|| ONE_STEP_NOTE.into()),
        n: setup.rows.len(),
    })
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
                let sub = ReductionInput {
                    sample: &sample,
                    covariates: input.covariates,
                    allowable: input.allowable.clone(),
                    targets: input.targets.clone(),
                    draws: input.draws,
                    estimator: input.estimator,
                };
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

/// E-values: of the point estimate, and (as `ci_low`) of the confidence
/// limit of the remaining disparity closest to the null (1 when it covers 0);
/// `rstd` is the standardized reference mean.
fn e_value_limits(estimates: &mut [crate::result::Estimate], rstd: f64) {
    let remaining: Vec<(Option<String>, Option<f64>, Option<f64>)> = estimates
        .iter()
        .filter(|e| e.quantity == "disparity_remaining")
        .map(|e| (e.factor.clone(), e.ci_low, e.ci_high))
        .collect();
    for e in estimates
        .iter_mut()
        .filter(|e| e.quantity == "e_value_disparity_remaining")
    {
        let limit = remaining
            .iter()
            .find(|r| r.0 == e.factor)
            .and_then(|r| e_value_of_limit(rstd, r.1, r.2));
        e.se = None;
        e.p_value = None;
        e.ci_high = None;
        e.ci_low = limit;
        if limit.is_none() {
            e.se_method = crate::result::SeMethod::None;
        }
    }
}

/// The pair rows ordered by allowable stratum, with each stratum's reference
/// patients and the comparison patients that have any.
struct Layout {
    /// Pair rows (indexes into the input).
    rows: Vec<usize>,
    group: Vec<u8>,
    stratum_raw: Vec<u32>,
    strata: usize,
    members: Vec<Vec<usize>>,
    comparison: Vec<usize>,
    /// Comparison patients, with or without reference patients in their stratum.
    n_c: usize,
}

impl Layout {
    fn new(
        input: &ReductionInput<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Layout, DecomposeError> {
        let rows: Vec<usize> = (0..input.sample.group.len())
            .filter(|&i| input.sample.group[i] <= 1)
            .collect();
        let n = rows.len();
        group_sizes(
            input.sample.group,
            input.sample.labels,
            "disparity_reduction",
        )?;
        let group: Vec<u8> = rows.iter().map(|&i| input.sample.group[i] as u8).collect();
        // Strata of the allowable covariates.
        let mut ids: HashMap<Vec<u64>, u32> = HashMap::new();
        let stratum_raw: Vec<u32> = rows
            .iter()
            .map(|&i| {
                let key: Vec<u64> = input
                    .allowable
                    .iter()
                    .map(|&j| input.covariates.columns[j].values[i].to_bits())
                    .collect();
                let next = ids.len() as u32;
                *ids.entry(key).or_insert(next)
            })
            .collect();
        let strata = ids.len();
        // Order the rows by stratum, so that a stratum's reference patients (the
        // partners) sit together in memory.
        let (rows, group, stratum_raw) = {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&r| (stratum_raw[r], r));
            (
                order.iter().map(|&r| rows[r]).collect::<Vec<usize>>(),
                order.iter().map(|&r| group[r]).collect::<Vec<u8>>(),
                order.iter().map(|&r| stratum_raw[r]).collect::<Vec<u32>>(),
            )
        };
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); strata];
        for r in 0..n {
            if group[r] == 0 {
                members[stratum_raw[r] as usize].push(r);
            }
        }
        let comparison: Vec<usize> = (0..n)
            .filter(|&r| group[r] == 1 && !members[stratum_raw[r] as usize].is_empty())
            .collect();
        let n_c = group.iter().filter(|g| **g == 1).count();
        if comparison.len() < n_c {
            let lost = n_c - comparison.len();
            warnings.push(format!(
            "{} comparison patient(s) have no reference patient with the same allowable values ({}) \
             and are left out of the standardization",
            count_text(lost, input.sample.min_cell),
            input.allowable.iter().map(|&j| input.covariates.columns[j].name.as_str()).collect::<Vec<_>>().join(", ")
        ));
        }
        if strata > n / 5 {
            warnings.push(format!(
            "{strata} strata of the allowable covariates for {n} patients: continuous allowable \
             covariates make strata of one; coarsen them (e.g. age groups)"
        ));
        }
        Ok(Layout {
            rows,
            group,
            stratum_raw,
            strata,
            members,
            comparison,
            n_c,
        })
    }
}

/// Positivity for a hospital target: comparison patients in hospitals
/// without reference patients.
fn positivity_warning(input: &ReductionInput<'_>, layout: &Layout) -> Option<String> {
    let Layout {
        rows, group, n_c, ..
    } = layout;
    let a = input.covariates.absorbed.as_ref()?;
    if !input.targets.iter().any(|t| t.absorbed) {
        return None;
    }
    let mut has_r = vec![false; a.levels];
    for (r, &i) in rows.iter().enumerate() {
        if group[r] == 0 {
            has_r[a.codes[i] as usize] = true;
        }
    }
    let stranded = || {
        rows.iter()
            .enumerate()
            .filter(|(r, i)| group[*r] == 1 && !has_r[a.codes[**i] as usize])
            .map(|(_, i)| a.codes[*i])
    };
    let hospitals: std::collections::BTreeSet<u32> = stranded().collect();
    if hospitals.is_empty() {
        return None;
    }
    let how_many = share_text(stranded().count(), *n_c, input.sample.min_cell);
    Some(format!(
        "positivity: {} hospital(s) treat no {} patients but {how_many} of the {} patients; \
         under the care-site intervention these patients move to hospitals of the reference \
         distribution",
        hospitals.len(),
        input.sample.labels[0],
        input.sample.labels[1]
    ))
}

/// The outcome model on both groups (logit for binary outcomes, OLS
/// otherwise): its design over the pair rows, coefficients and summary.
fn outcome_model(
    input: &ReductionInput<'_>,
    rows: &[usize],
    group: &[u8],
    inference: &InferenceSpec,
    warnings: &mut Vec<String>,
) -> Result<(Design, Vec<f64>, ModelSummary), DecomposeError> {
    let n = rows.len();
    let cov = input.covariates;
    let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let mut cols: Vec<(String, Vec<f64>)> = vec![(
        "group".into(),
        group.iter().map(|&g| f64::from(g)).collect(),
    )];
    if cov.absorbed.is_none() {
        cols.push(("(intercept)".into(), vec![1.0; n]));
    }
    for c in &cov.columns {
        cols.push((c.name.clone(), pick(&c.values)));
    }
    let mut design = Design::from_columns("outcome", pick(input.sample.y), cols)
        .map_err(DecomposeError::Model)?;
    if let Some(w) = input.sample.weights {
        design = design.with_weights(pick(w));
    }
    if let Some(Cluster {
        codes: c, count: g, ..
    }) = input.sample.cluster
    {
        design.cluster = Some(rows.iter().map(|&i| c[i]).collect());
        design.n_clusters = g;
    }
    if let Some(a) = &cov.absorbed {
        let labels: Vec<i64> = rows.iter().map(|&i| i64::from(a.codes[i])).collect();
        design = design.with_absorbed(&a.variable, &labels);
    }
    let vkind = if input.sample.cluster.is_some() {
        VcovKind::Cr1
    } else {
        VcovKind::Iid
    };
    let cname = input.sample.cluster.map_or("", |c| c.name);
    let (coef, summary): (Vec<f64>, ModelSummary) = if input.sample.binary {
        let f = Glm::logit().fit(&design, None).map_err(|e| {
            DecomposeError::Input(format!(
                "the outcome model (logit on both groups) failed: {e}"
            ))
        })?;
        for (name, lv, r) in &f.dropped_fe {
            warnings.push(format!(
                "outcome model: {lv} level(s) of `{name}` without events or without non-events ({} patients) get \
                 a risk of 0 or 1",
                count_text(*r, input.sample.min_cell)
            ));
        }
        let v = f
            .vcov(vkind, cname, SmallSample::default())
            .map_err(DecomposeError::Model)?;
        (
            f.coef.clone(),
            f.summary("outcome model (both groups)", &v, inference.level),
        )
    } else {
        let f = Ols::new().fit(&design).map_err(DecomposeError::Model)?;
        let v = f
            .vcov(vkind, cname, SmallSample::default())
            .map_err(DecomposeError::Model)?;
        (
            f.coef.clone(),
            f.summary("outcome model (both groups)", &v, inference.level),
        )
    };
    if coef.len() != design.ncols() {
        return Err(DecomposeError::Input(
            "the outcome model dropped collinear columns; remove them from the blocks".into(),
        ));
    }
    Ok((design, coef, summary))
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
            return Err(DecomposeError::Input(format!(
                "disparity_reduction needs 1 to 6 target blocks (the Shapley split visits all 2^K subsets); {k} given"
            )));
        }
        let layout = Layout::new(input, warnings)?;
        warnings.extend(positivity_warning(input, &layout));
        warnings.extend(sparse_hospitals_warning(input, &layout.rows, &layout.group));
        let (design, coef, summary) =
            outcome_model(input, &layout.rows, &layout.group, inference, warnings)?;
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
        };
        if input.sample.binary && input.sample.cluster.is_some() && !inference.one_step {
            setup.refit = Some(design);
        }
        if let Some(a) = &cov.absorbed {
            setup.level = setup.rows.iter().map(|&i| a.codes[i]).collect();
            setup.alpha_hat = setup.alphas(&setup.block_parts(&setup.coef), None, &[]);
        }
        if let Some(a) = &cov.absorbed {
            setup.level = setup.rows.iter().map(|&i| a.codes[i]).collect();
            setup.alpha_hat = setup.alphas(&setup.block_parts(&setup.coef), None, &[]);
        }
        if setup.refit.is_none() {
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

    /// The one-step cells: information weights h and working response
    /// (y − μ)/h at the full-sample fit, summed per cell.
    fn step_cells(&mut self) -> Result<(), DecomposeError> {
        let input = self.input;
        let cov = input.covariates;
        let k = self.k;
        let flat = self.model_parts(None).map_err(DecomposeError::Input)?;
        let kk = k + 1;
        let (step_y, step_w): (Vec<f64>, Vec<f64>) = {
            let mut ys = vec![0.0; input.sample.y.len()];
            let mut ws = vec![0.0; input.sample.y.len()];
            for (r, &i) in self.rows.iter().enumerate() {
                let eta: f64 = flat[r * kk..(r + 1) * kk].iter().sum();
                let w = input.sample.weights.map_or(1.0, |w| w[i]);
                let (mu, h) = match self.link() {
                    None => (eta, 1.0),
                    Some(l) => {
                        let p = l.cdf(eta);
                        (p, p * (1.0 - p))
                    }
                };
                if h > 1e-12 && eta.is_finite() {
                    ys[i] = (input.sample.y[i] - mu) / h;
                    ws[i] = w * h;
                }
            }
            (ys, ws)
        };
        let step_cov = Covariates {
            columns: cov.columns.clone(),
            categoricals: vec![],
            absorbed: cov.absorbed.clone(),
        };
        let cl = input.sample.units();
        self.cells = Cells::build(&step_y, input.sample.group, &step_cov, Some(&step_w), cl);
        self.step_spec.columns = (0..self.cells.p()).collect();
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::covariates::{Absorbed, Column};

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
    /// A converged cluster-bootstrap replicate equals a cold fit of the
    /// outcome model on the replicate's data written out (each row repeated
    /// by its cluster's multiplicity, no weights) to 1e-8.
    #[test]
    fn converged_replicate_equals_a_cold_refit_of_the_expanded_sample() {
        let (n, hospitals) = (20_000usize, 1500usize);
        let mut state = 12345u64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
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
            absorbed: Some(Absorbed {
                variable: "hospital_id".into(),
                factor: "hospital".into(),
                codes: h.to_vec(),
                levels: hospitals,
                labels: (0..hospitals).map(|l| l.to_string()).collect(),
            }),
        };
        let input = ReductionInput {
            sample: &Sample {
                outcome: "y",
                y: &y,
                group: &g,
                labels: ["r", "c"],
                weights: None,
                cluster: Some(Cluster {
                    name: "hospital_id",
                    codes: &h,
                    count: hospitals,
                }),
                binary: true,
                min_cell: 11,
            },
            covariates: &cov,
            allowable: vec![],
            targets: vec![Target {
                name: "target".into(),
                columns: vec![1],
                absorbed: false,
            }],
            draws: 2,
            estimator: Estimator::GComputation,
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
