//! The outcome model on both groups (logit for binary outcomes, OLS
//! otherwise, with the group indicator, every covariate and absorbed hospital
//! effects), its block parts η^(k) of the linear predictor, its refits in the
//! bootstrap replicates (to convergence, or one Newton step from per-cell
//! sums), and the g-computation draws μ̄(S) over every subset S of targets.

use healthgap_models::{Design, Glm, ModelSummary, Ols, SmallSample, VcovKind};

use super::random::{HospitalEffects, Prior, RandomHospitals, conditional_modes};
use super::{ReductionInput, Setup};
use crate::cells::Cells;
use crate::covariates::Covariates;
use crate::error::DecomposeError;
use crate::inference::{InferenceSpec, count_text};
use crate::sample::Cluster;

/// One covariate column over the pair rows.
pub(super) enum DesignColumn {
    /// Every value.
    Dense(Vec<f64>),
    /// A 0/1 column: the rows where it is 1, ascending.
    Ones(Vec<u32>),
}

impl DesignColumn {
    pub(super) fn new(values: Vec<f64>) -> DesignColumn {
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

/// A binary outcome with a hospital target: a hospital without events (or
/// without non-events) has an infinite effect (every patient moved there gets
/// a risk of exactly 0 or 1), and one of fewer than `min_cell` patients an
/// imprecise one. The care-site target moves comparison patients into the
/// hospitals of reference patients, so the share of reference patients in
/// such hospitals says how much of the care-site reduction rests on them (a
/// warning above 5%).
pub(super) fn sparse_hospitals_warning(
    input: &ReductionInput<'_>,
    rows: &[usize],
    group: &[u8],
) -> Option<String> {
    let a = input.covariates.absorbed.as_ref()?;
    if !input.sample.binary
        || !input.targets.iter().any(|t| t.absorbed)
        || input.hospital_effects == HospitalEffects::Random
    {
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
             degenerate or imprecise hospital effects and can be biased (hospital_effects = \
             \"random\" shrinks them)",
            100.0 * share,
            input.sample.labels[0],
            input.sample.min_cell,
            input.sample.labels[1]
        )
    })
}

/// The fitted outcome model on both groups.
pub(super) struct OutcomeModel {
    /// Its design over the pair rows.
    pub design: Design,
    /// Coefficients: group indicator, [intercept,] columns.
    pub coef: Vec<f64>,
    pub summary: ModelSummary,
    /// With `hospital_effects = "random"`: the GLMM (the design then has an
    /// intercept and no absorbed effects).
    pub random: Option<RandomHospitals>,
}

/// The outcome model on both groups (logit for binary outcomes, OLS
/// otherwise; with random hospital effects the GLMM of [`RandomHospitals`]).
pub(super) fn outcome_model(
    input: &ReductionInput<'_>,
    rows: &[usize],
    group: &[u8],
    inference: &InferenceSpec,
    warnings: &mut Vec<String>,
) -> Result<OutcomeModel, DecomposeError> {
    let n = rows.len();
    let cov = input.covariates;
    let random = input.hospital_effects == HospitalEffects::Random;
    if random && cov.absorbed.is_none() {
        return Err(RandomHospitals::without_hospital());
    }
    let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let mut cols: Vec<(String, Vec<f64>)> = vec![(
        "group".into(),
        group.iter().map(|&g| f64::from(g)).collect(),
    )];
    if cov.absorbed.is_none() || random {
        cols.push(("(intercept)".into(), vec![1.0; n]));
    }
    for c in &cov.columns {
        cols.push((c.name.clone(), pick(&c.values)));
    }
    let share = match (&cov.absorbed, random) {
        (Some(a), true) => {
            let share = comparison_share(input, rows, group, a);
            let column = rows.iter().map(|&i| share[a.codes[i] as usize]).collect();
            cols.push((
                format!("hospital share of {}", input.sample.labels[1]),
                column,
            ));
            share
        }
        _ => Vec::new(),
    };
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
    if random {
        let (model, coef, summary) = RandomHospitals::fit(
            input,
            design.clone(),
            rows,
            share,
            inference.level,
            warnings,
        )?;
        return Ok(OutcomeModel {
            design,
            coef,
            summary,
            random: Some(model),
        });
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
        let f = Glm::logit()
            .fit(&design, None)
            .map_err(|error| DecomposeError::Fit {
                model: "outcome model (logit on both groups)".into(),
                error,
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
        return Err(DecomposeError::CollinearOutcomeModel);
    }
    Ok(OutcomeModel {
        design,
        coef,
        summary,
        random: None,
    })
}

impl Setup<'_> {
    /// Block parts of every pair row's linear predictor without the level
    /// effects (row-major n × (K + 1): other, target 1..K).
    pub(super) fn block_parts(&self, coef: &[f64]) -> Vec<f64> {
        let mut parts = Vec::new();
        self.block_parts_into(coef, &mut parts);
        parts
    }

    /// [`Setup::block_parts`] into a reused buffer (a replicate's 8·n·(K + 1)
    /// bytes would otherwise be fresh, page-faulting memory each time).
    fn block_parts_into(&self, coef: &[f64], parts: &mut Vec<f64>) {
        let n = self.rows.len();
        let kk = self.k + 1;
        let absorb = !self.has_intercept();
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
    /// the full-sample effects is taken, as for the coefficients. With a
    /// `prior` (random hospital effects), the conditional modes instead
    /// ([`conditional_modes`]).
    pub(super) fn alphas(
        &self,
        parts: &[f64],
        mult: Option<&[f64]>,
        start: &[f64],
        prior: Option<Prior>,
    ) -> Vec<f64> {
        let kk = self.k + 1;
        let levels = self.absorbed().map_or(0, |a| a.levels);
        // Linear predictors without the level effects (the sum of the parts).
        let xb: Vec<f64> = parts.chunks(kk).map(|p| p.iter().sum()).collect();
        let w: Vec<f64> = (0..xb.len()).map(|r| self.weight(r, mult)).collect();
        if let (Some(prior), Some(random)) = (prior, &self.random) {
            // A hospital drawn m times is m hospitals with the same data:
            // its mode uses the base weights.
            let w = if random.copies { &self.w } else { &w };
            // The hospital's fixed part γ·share_h moves with the hospital.
            let fixed: Vec<f64> = random.share.iter().map(|s| prior.share_coef * s).collect();
            let xb: Vec<f64> = xb
                .iter()
                .zip(&self.level)
                .map(|(x, &l)| x + fixed[l as usize])
                .collect();
            let cdf = self.link().map(|lk| move |eta: f64| lk.cdf(eta));
            let modes = conditional_modes(
                prior,
                (&self.level, levels),
                &xb,
                w,
                &self.y,
                cdf.as_ref().map(|f| f as &dyn Fn(f64) -> f64),
                start,
            );
            return modes.iter().zip(&fixed).map(|(m, f)| m + f).collect();
        }
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
    pub(super) fn model_parts_into(
        &self,
        mult: Option<&[f64]>,
        parts: &mut Vec<f64>,
    ) -> Result<(), String> {
        let (coef, prior): (Vec<f64>, Option<Prior>) = match (mult, &self.random) {
            (None, random) => (self.coef.clone(), random.as_ref().map(|r| r.prior)),
            (Some(m), Some(random)) => {
                let (coef, prior) = random.refitted(&self.w, m, &self.cluster_of)?;
                (coef, Some(prior))
            }
            (Some(m), None) if self.refit.is_some() => (self.refitted(m)?, None),
            (Some(m), None) => {
                let step = self
                    .cells
                    .fit(&self.step_spec, Some(m))
                    .map_err(|e| e.to_string())?;
                let coef = self
                    .coef
                    .iter()
                    .zip(&step.coef)
                    .map(|(b, s)| b + s)
                    .collect();
                (coef, None)
            }
        };
        self.block_parts_into(&coef, parts);
        if self.absorbed().is_some() {
            let alpha = self.alphas(parts, mult, &self.alpha_hat, prior);
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
    pub(super) fn refitted(&self, mult: &[f64]) -> Result<Vec<f64>, String> {
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
    pub(super) fn subset_means<F: Fn(f64) -> f64>(
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

    /// The one-step cells: information weights h and working response
    /// (y − μ)/h at the full-sample fit, summed per cell.
    pub(super) fn step_cells(&mut self) -> Result<(), DecomposeError> {
        let input = self.input;
        let cov = input.covariates;
        let k = self.k;
        let flat = self.model_parts(None).map_err(DecomposeError::Statistic)?;
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

/// Each hospital's share of comparison patients among its pair rows
/// (weighted; 0 for a hospital without pair rows): the hospital-level term of
/// the random-effects outcome model (Mundlak 1978).
fn comparison_share(
    input: &ReductionInput<'_>,
    rows: &[usize],
    group: &[u8],
    a: &crate::covariates::Absorbed,
) -> Vec<f64> {
    let (mut sw, mut sc) = (vec![0.0; a.levels], vec![0.0; a.levels]);
    for (r, &i) in rows.iter().enumerate() {
        let w = input.sample.weights.map_or(1.0, |w| w[i]);
        sw[a.codes[i] as usize] += w;
        sc[a.codes[i] as usize] += w * f64::from(group[r]);
    }
    sc.iter()
        .zip(&sw)
        .map(|(c, w)| if *w > 0.0 { c / w } else { 0.0 })
        .collect()
}
