//! Cross-fitted nuisances with a flexible learner (`learner = "elastic_net" |
//! "forest" | "super_learner"`; Chernozhukov et al. 2018, van der Laan,
//! Polley & Hubbard 2007).
//!
//! The pair rows are split into K folds of whole clusters (hospitals: the
//! `[design] cluster`, else the absorbed hospital_id, else single rows). For
//! each fold v the nuisances are fitted on the other folds and predict fold v:
//! - the outcome model m(g, x) = E[Y | group, covariates] on both groups
//!   predicts every pair row of fold v at its observed covariates (m̂_i) and
//!   each comparison patient i of fold v at its intervened covariates x_i^{S,d}
//!   (its own covariates with the blocks S of its d-th reference partner,
//!   drawn within its allowable stratum as for g-computation);
//! - per subset S, the density-ratio classifier of intervened rows
//!   (weight w/D) against observed comparison rows (weight w) predicts the
//!   observed rows of fold v; its probability is clipped to
//!   [[`CLIP`], 1 − [`CLIP`]] and r̂_S = p/(1 − p).
//!
//! So every prediction used for a patient comes from a model that did not
//! see that patient's fold. The hospital identity is not a feature (a held-out
//! hospital has no effect to learn), so the care-site target needs the GLM path.
//!
//! The subset means, over the comparison patients with reference patients in
//! their stratum (weights w_i, W_c = Σ w_i):
//! - g-computation μ̂_gc(S) = Σ_i w_i ν̂_i^S / W_c, ν̂_i^S = (1/D) Σ_d m̂(x_i^{S,d});
//! - weighting μ̂_w(S) = Σ w_i r̂_i y_i / Σ w_i r̂_i;
//! - doubly robust (augmented, the efficient influence function's estimator)
//!   μ̂_dr(S) = μ̂_gc(S) + Σ w_i r̂_i (y_i − m̂_i) / Σ w_i r̂_i,
//!
//! with μ̂(∅) = ȳ_c (weighting and doubly robust) or Σ w_i m̂_i / W_c
//! (g-computation). [`super::influence`] gives their influence functions.

use healthgap_learn::{
    Detail, Family, FitReport, Folds, Learner, LearnerConfig, Matrix, Task, fit_or_fallback, loss,
    seed,
};
use healthgap_models::bootstrap::stream_key;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::strata::Layout;
use super::{Estimator, Learning, ReductionInput};
use crate::error::DecomposeError;
use crate::inference::InferenceSpec;
use crate::result::{Balance, LearnerDiagnostics, MemberFit, NuisanceFit, Overlap, Quantile};

/// Density-ratio classifier probabilities are clipped to [CLIP, 1 − CLIP]
/// before the odds are taken (a forest's leaf can give exactly 0 or 1).
pub const CLIP: f64 = 1e-6;

/// The density-ratio forests' least leaf size per √(draws per tree), unless
/// the study sets `forest.min_leaf_sqrt` (see [`ratio_config`]).
pub const RATIO_MIN_LEAF_SQRT: f64 = 1.0;

/// The seed index of fold v's fit is FIT_FOLD + v (as in healthgap-learn's
/// `cross_fit`).
const FIT_FOLD: u64 = 1_000;

/// Quantiles of the density ratios reported under `overlap`.
const QUANTILES: [f64; 7] = [0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0];

/// The cross-fitted nuisances and what the estimators need of the layout.
pub(super) struct Flexible<'a> {
    pub input: &'a ReductionInput<'a>,
    pub layout: Layout,
    /// Outcome and weight of each pair row.
    pub y: Vec<f64>,
    pub w: Vec<f64>,
    /// Unit of each pair row for the variance (cluster, or the row), and how many.
    pub unit: Vec<u32>,
    pub units: usize,
    /// Reference partner (pair row) of comparison patient ci's draw d, at ci·D + d.
    pub partner: Vec<usize>,
    /// Out-of-fold outcome predictions at each pair row's observed covariates.
    pub m_obs: Vec<f64>,
    /// Per subset (bitmask; empty for ∅), at ci·D + d: the out-of-fold
    /// outcome prediction at the intervened covariates.
    pub m_int: Vec<Vec<f64>>,
    /// Per subset (empty for ∅ and for g-computation), per comparison
    /// patient: the cross-fitted density ratio r̂_S.
    pub ratio: Vec<Vec<f64>>,
    /// What the learners reported.
    pub diagnostics: LearnerDiagnostics,
    /// Covariate balance of the cross-fitted density-ratio weights.
    pub balance: Vec<Balance>,
}

/// One nuisance's cross-fit: out-of-fold predictions of the rows asked for
/// and the fits' reports.
struct NuisanceRun {
    predictions: Vec<Vec<f64>>,
    reports: Vec<FitReport>,
}

impl<'a> Flexible<'a> {
    /// Folds, partners and every cross-fitted nuisance.
    pub(super) fn new(
        input: &'a ReductionInput<'a>,
        learning: &Learning,
        inference: &InferenceSpec,
        warnings: &mut Vec<String>,
    ) -> Result<Flexible<'a>, DecomposeError> {
        let k = input.targets.len();
        if k == 0 || k > 6 {
            return Err(DecomposeError::TargetCount { targets: k });
        }
        if let Some(t) = input.targets.iter().find(|t| t.absorbed) {
            return Err(DecomposeError::Design(format!(
                "the target `{}` reassigns hospitals (absorbed hospital effects), which a \
                 flexible learner cannot do under cross-fitting by hospital (a held-out \
                 hospital's effect is never learned): use learner = \"glm\" for it",
                t.name
            )));
        }
        let settings = |e| DecomposeError::Design(format!("learner settings: {e}"));
        let learner = learning.config.build().map_err(settings)?;
        let ratio_learner = ratio_config(&learning.config).build().map_err(settings)?;
        let layout = Layout::new(input, warnings)?;
        let pick = |v: Option<&[f64]>| -> Vec<f64> {
            layout
                .rows
                .iter()
                .map(|&i| v.map_or(1.0, |v| v[i]))
                .collect()
        };
        let (y, w) = (pick(Some(input.sample.y)), pick(input.sample.weights));
        let (unit, units): (Vec<u32>, usize) = match input.sample.cluster {
            Some(c) => (layout.rows.iter().map(|&i| c.codes[i]).collect(), c.count),
            None => ((0..layout.rows.len() as u32).collect(), layout.rows.len()),
        };
        let fold_codes: Vec<u32> = match (&input.sample.cluster, &input.covariates.absorbed) {
            (Some(_), _) => unit.clone(),
            (None, Some(a)) => layout.rows.iter().map(|&i| a.codes[i]).collect(),
            (None, None) => unit.clone(),
        };
        let fold_seed = stream_key(inference.seed, &format!("{}/folds", inference.analysis_id));
        let folds = Folds::by_cluster(&fold_codes, learning.folds, fold_seed)
            .map_err(|e| DecomposeError::Design(format!("cross-fitting folds: {e}")))?;
        if input.covariates.absorbed.is_some() {
            warnings.push(
                "flexible learner: hospital_id is not a feature of the cross-fitted models \
                 (with folds of whole hospitals a held-out hospital's effect cannot be learned); \
                 the models use the other covariates"
                    .into(),
            );
        }
        let mut flex = Flexible {
            input,
            partner: draw_partners(input, &layout, &w, inference),
            layout,
            y,
            w,
            unit,
            units,
            m_obs: Vec::new(),
            m_int: Vec::new(),
            ratio: Vec::new(),
            diagnostics: LearnerDiagnostics {
                learner: learner.name().to_string(),
                folds: learning.folds,
                fold_by: match (&input.sample.cluster, &input.covariates.absorbed) {
                    (Some(c), _) => c.name.to_string(),
                    (None, Some(a)) => a.variable.clone(),
                    (None, None) => "row".into(),
                },
                clip: CLIP,
                ratio_min_leaf_sqrt: ratio_config(&learning.config)
                    .forest
                    .min_leaf_sqrt
                    .unwrap_or(0.0),
                nuisances: Vec::new(),
                overlap: Vec::new(),
            },
            balance: Vec::new(),
        };
        flex.fit_outcome(learner.as_ref(), &folds, inference, warnings)?;
        if input.estimator != Estimator::GComputation {
            flex.fit_ratios(ratio_learner.as_ref(), &folds, inference, warnings)?;
        }
        Ok(flex)
    }

    /// The feature columns of the covariates (not the absorbed hospital).
    fn covariate_value(&self, r: usize, j: usize) -> f64 {
        self.input.covariates.columns[j].values[self.layout.rows[r]]
    }

    /// Column j's target block (0 = none, k + 1 = target k).
    fn block_of(&self) -> Vec<usize> {
        let mut b = vec![0usize; self.input.covariates.columns.len()];
        for (t, target) in self.input.targets.iter().enumerate() {
            for &j in &target.columns {
                b[j] = t + 1;
            }
        }
        b
    }

    /// Comparison patients (indexes into `layout.comparison`) of fold v.
    fn comparison_in(&self, folds: &Folds, v: usize) -> Vec<usize> {
        (0..self.layout.comparison.len())
            .filter(|&ci| folds.assignment()[self.layout.comparison[ci]] as usize == v)
            .collect()
    }

    /// The intervened covariates of comparison patients `cis` for subset S,
    /// draw by draw (rows ci·D + d in order), column-major over `columns`
    /// (with a leading group column of 1s when `group`).
    fn intervened(&self, cis: &[usize], subset: usize, group: bool) -> Vec<f64> {
        let d = self.input.draws;
        let block = self.block_of();
        let p = block.len();
        let n = cis.len() * d;
        let mut out = Vec::with_capacity(n * (p + usize::from(group)));
        if group {
            out.extend(std::iter::repeat_n(1.0, n));
        }
        for (j, &b) in block.iter().enumerate() {
            let swap = b > 0 && subset & (1 << (b - 1)) != 0;
            for &ci in cis {
                let own = self.layout.comparison[ci];
                for draw in 0..d {
                    let r = if swap {
                        self.partner[ci * d + draw]
                    } else {
                        own
                    };
                    out.push(self.covariate_value(r, j));
                }
            }
        }
        out
    }

    /// Column names of the features.
    fn names(&self, group: bool) -> Vec<String> {
        let mut names: Vec<String> = if group {
            vec!["group".into()]
        } else {
            Vec::new()
        };
        names.extend(self.input.covariates.columns.iter().map(|c| c.name.clone()));
        names
    }

    /// The outcome model, cross-fitted: m̂ at every pair row and at every
    /// comparison patient's intervened covariates (module docs).
    fn fit_outcome(
        &mut self,
        learner: &dyn Learner,
        folds: &Folds,
        inference: &InferenceSpec,
        warnings: &mut Vec<String>,
    ) -> Result<(), DecomposeError> {
        let n = self.layout.rows.len();
        let names = self.names(true);
        let mut data = Vec::with_capacity(n * names.len());
        data.extend(self.layout.group.iter().map(|&g| f64::from(g)));
        for j in 0..self.input.covariates.columns.len() {
            data.extend((0..n).map(|r| self.covariate_value(r, j)));
        }
        let x = Matrix::from_col_major(data, n, names.clone()).map_err(learn_error)?;
        let family = if self.input.sample.binary {
            Family::Binary
        } else {
            Family::Continuous
        };
        let nsub = 1usize << self.input.targets.len();
        if self.input.sample.binary {
            warnings.extend(event_warnings(self, folds));
        }
        let seed = stream_key(
            inference.seed,
            &format!("{}/outcome", inference.analysis_id),
        );
        let d = self.input.draws;
        let mut m_obs = vec![0.0; n];
        let mut m_int = vec![Vec::new(); nsub];
        for m in m_int.iter_mut().skip(1) {
            *m = vec![0.0; self.layout.comparison.len() * d];
        }
        let run = cross_fitted(
            learner,
            (&x, &self.y, &self.w, family),
            folds,
            seed,
            "outcome model",
            |v| {
                let test = folds.test_rows(v);
                let cis = self.comparison_in(folds, v);
                let mut mats = vec![x.select_rows(&test)];
                for subset in 1..nsub {
                    let data = self.intervened(&cis, subset, true);
                    mats.push(Matrix::from_col_major(data, cis.len() * d, names.clone())?);
                }
                Ok(mats)
            },
        )?;
        for (v, preds) in run.predictions.chunks(nsub).enumerate() {
            for (k, &r) in folds.test_rows(v).iter().enumerate() {
                m_obs[r] = preds[0][k];
            }
            let cis = self.comparison_in(folds, v);
            for subset in 1..nsub {
                for (k, &ci) in cis.iter().enumerate() {
                    m_int[subset][ci * d..(ci + 1) * d]
                        .copy_from_slice(&preds[subset][k * d..(k + 1) * d]);
                }
            }
        }
        let cv = loss::loss(family, &self.y, &m_obs, Some(&self.w));
        self.diagnostics
            .nuisances
            .push(nuisance_fit("outcome", family, cv, &run.reports));
        warnings.extend(fit_warnings("outcome model", &run.reports));
        self.m_obs = m_obs;
        self.m_int = m_int;
        Ok(())
    }

    /// The density-ratio classifiers, cross-fitted, for every non-empty
    /// subset of targets, with their overlap diagnostics.
    fn fit_ratios(
        &mut self,
        learner: &dyn Learner,
        folds: &Folds,
        inference: &InferenceSpec,
        warnings: &mut Vec<String>,
    ) -> Result<(), DecomposeError> {
        let nsub = 1usize << self.input.targets.len();
        let d = self.input.draws;
        let nc = self.layout.comparison.len();
        let names = self.names(false);
        let all: Vec<usize> = (0..nc).collect();
        // Classifier rows: the observed comparison patients, then their
        // intervened copies (ci·D + d); the fold of each is its patient's.
        let patient_fold: Vec<u32> = self
            .layout
            .comparison
            .iter()
            .map(|&r| folds.assignment()[r])
            .collect();
        let mut row_fold = patient_fold.clone();
        row_fold.extend(patient_fold.iter().flat_map(|&f| std::iter::repeat_n(f, d)));
        let class_folds = Folds::from_assignment(row_fold, folds.k()).map_err(learn_error)?;
        let mut labels = vec![0.0; nc];
        labels.extend(std::iter::repeat_n(1.0, nc * d));
        let mut weights: Vec<f64> = self.layout.comparison.iter().map(|&r| self.w[r]).collect();
        weights.extend(
            self.layout
                .comparison
                .iter()
                .flat_map(|&r| std::iter::repeat_n(self.w[r] / d as f64, d)),
        );
        self.ratio = vec![Vec::new(); nsub];
        for subset in 1..nsub {
            let name = subset_name(self.input, subset);
            let mut data = Vec::with_capacity(nc * (1 + d) * names.len());
            let intervened = self.intervened(&all, subset, false);
            for j in 0..names.len() {
                data.extend(
                    self.layout
                        .comparison
                        .iter()
                        .map(|&r| self.covariate_value(r, j)),
                );
                data.extend_from_slice(&intervened[j * nc * d..(j + 1) * nc * d]);
            }
            let x =
                Matrix::from_col_major(data, nc * (1 + d), names.clone()).map_err(learn_error)?;
            let key = format!("{}/ratio/{subset}", inference.analysis_id);
            let run = cross_fitted(
                learner,
                (&x, &labels, &weights, Family::Binary),
                &class_folds,
                stream_key(inference.seed, &key),
                &format!("density-ratio model for {name}"),
                |v| Ok(vec![x.select_rows(&scored_rows(&class_folds, v, nc, d))]),
            )?;
            // Held-out predictions of the observed rows and of each patient's
            // first intervened copy (the other copies are not predicted).
            let (mut p, mut y, mut pw) = (vec![0.0; nc], vec![0.0; nc], weights[..nc].to_vec());
            for (v, preds) in run.predictions.iter().enumerate() {
                for (k, r) in scored_rows(&class_folds, v, nc, d).into_iter().enumerate() {
                    if r < nc {
                        p[r] = preds[k];
                    } else {
                        p.push(preds[k]);
                        y.push(1.0);
                        pw.push(weights[r] * d as f64);
                    }
                }
            }
            let cv = loss::loss(Family::Binary, &y, &p, Some(&pw));
            let context = format!("density_ratio:{name}");
            self.diagnostics.nuisances.push(nuisance_fit(
                &context,
                Family::Binary,
                cv,
                &run.reports,
            ));
            warnings.extend(fit_warnings(
                &format!("density-ratio model for {name}"),
                &run.reports,
            ));
            let (ratio, overlap) = ratios(&name, &p[..nc], &weights[..nc]);
            warnings.extend(overlap_warning(&overlap));
            let rows = balance(&name, &x, nc, &weights, &ratio);
            warnings.extend(super::density_ratio::imbalance_warning(&name, &rows));
            self.balance.extend(rows);
            self.diagnostics.overlap.push(overlap);
            self.ratio[subset] = ratio;
        }
        Ok(())
    }
}

/// The density-ratio classifiers' settings: the study's, with a forest's
/// leaves growing with the sample (`min_leaf_sqrt` = [`RATIO_MIN_LEAF_SQRT`]
/// unless the `[forest]` table sets it). A classifier whose leaves can be
/// pure gives probabilities of exactly 0 or 1, whose odds are clipped; at
/// 50,000 patients leaves of 40 draws did so for a few rows, which then held
/// nearly all the weight (effective sample size 6).
fn ratio_config(config: &LearnerConfig) -> LearnerConfig {
    let mut c = config.clone();
    c.forest.min_leaf_sqrt.get_or_insert(RATIO_MIN_LEAF_SQRT);
    c
}

/// The held-out classifier rows of fold v that are predicted: the observed
/// comparison rows (0..nc), whose probabilities give the ratios, and each
/// patient's first intervened copy (nc + ci·D), which with weight w (its D
/// copies' total) gives an unbiased estimate of the classifier's
/// cross-validated loss over all the copies at 1/D of the predictions.
fn scored_rows(folds: &Folds, v: usize, nc: usize, d: usize) -> Vec<usize> {
    folds
        .test_rows(v)
        .into_iter()
        .filter(|&r| r < nc || (r - nc).is_multiple_of(d))
        .collect()
}

/// The targets of a subset, joined by "+".
fn subset_name(input: &ReductionInput<'_>, subset: usize) -> String {
    input
        .targets
        .iter()
        .enumerate()
        .filter(|(k, _)| subset & (1 << k) != 0)
        .map(|(_, t)| t.name.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// The odds of the clipped probabilities of the observed rows, and their
/// overlap diagnostics: quantiles, clipped count, Kish's effective sample size
/// (Σ w r)²/Σ (w r)².
pub(super) fn ratios(name: &str, p: &[f64], w: &[f64]) -> (Vec<f64>, Overlap) {
    let mut clipped = 0;
    let ratio: Vec<f64> = p
        .iter()
        .map(|&p| {
            let c = p.clamp(CLIP, 1.0 - CLIP);
            clipped += usize::from(c != p);
            c / (1.0 - c)
        })
        .collect();
    let (mut s1, mut s2, mut n) = (0.0, 0.0, 0usize);
    for (r, w) in ratio.iter().zip(w) {
        if *w > 0.0 {
            s1 += w * r;
            s2 += (w * r).powi(2);
            n += 1;
        }
    }
    let mut sorted: Vec<f64> = ratio
        .iter()
        .zip(w)
        .filter(|(_, w)| **w > 0.0)
        .map(|(r, _)| *r)
        .collect();
    sorted.sort_by(f64::total_cmp);
    let quantiles = QUANTILES
        .iter()
        .map(|&q| Quantile {
            p: q,
            ratio: sorted
                .get(((sorted.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN),
        })
        .collect();
    let overlap = Overlap {
        targets: name.to_string(),
        n,
        quantiles,
        clipped,
        effective_sample_size: s1 * s1 / s2.max(1e-300),
    };
    (ratio, overlap)
}

/// The standardized difference of every covariate column between the
/// comparison patients (rows 0..nc of `x`) and the intervened distribution
/// (the other rows), (m_c − m_I)/√((s²_c + s²_I)/2), before and after
/// weighting the comparison patients by w·r̂ (Austin 2009; the standard
/// deviations before weighting), as for the GLM path's classifiers.
fn balance(name: &str, x: &Matrix, nc: usize, w: &[f64], ratio: &[f64]) -> Vec<Balance> {
    let moments = |v: &[f64], w: &mut dyn Iterator<Item = f64>| {
        let (mut sw, mut s1, mut s2) = (0.0, 0.0, 0.0);
        for (v, w) in v.iter().zip(w) {
            sw += w;
            s1 += w * v;
            s2 += w * v * v;
        }
        let mean = s1 / sw.max(1e-300);
        (mean, (s2 / sw.max(1e-300) - mean * mean).max(0.0))
    };
    (0..x.ncols())
        .map(|j| {
            let v = x.column(j);
            let (m_c, v_c) = moments(&v[..nc], &mut w[..nc].iter().copied());
            let (m_i, v_i) = moments(&v[nc..], &mut w[nc..].iter().copied());
            let (m_w, _) = moments(&v[..nc], &mut w[..nc].iter().zip(ratio).map(|(w, r)| w * r));
            let sd = ((v_c + v_i) / 2.0).sqrt();
            let smd = |m: f64| if sd > 0.0 { (m - m_i) / sd } else { 0.0 };
            Balance {
                targets: name.to_string(),
                column: x.names()[j].clone(),
                smd_before: smd(m_c),
                smd_after: smd(m_w),
            }
        })
        .collect()
}

/// A warning when the density-ratio weights' effective sample size is below
/// 20% of the comparison patients, or when probabilities were clipped.
pub(super) fn overlap_warning(o: &Overlap) -> Vec<String> {
    let mut out = Vec::new();
    if o.effective_sample_size < 0.2 * o.n as f64 {
        out.push(format!(
            "density-ratio weights for {}: effective sample size {:.0} of {} comparison \
             patients ({:.1}%): poor overlap, the doubly robust correction is unstable",
            o.targets,
            o.effective_sample_size,
            o.n,
            100.0 * o.effective_sample_size / o.n.max(1) as f64
        ));
    }
    if o.clipped > 0 {
        out.push(format!(
            "density-ratio model for {}: {} probabilities clipped to [{CLIP:e}, 1 − {CLIP:e}] \
             before taking odds",
            o.targets, o.clipped
        ));
    }
    out
}

/// A learner error as a decomposition error.
fn learn_error(e: healthgap_learn::LearnError) -> DecomposeError {
    DecomposeError::Statistic(format!("flexible learner: {e}"))
}

/// Cross-fits `learner` on the task (x, y, w, family) over `folds`: fold v's
/// fit (seeded by fold) predicts every matrix `predict(v)` gives. A fold with
/// one outcome class or a failed fit gets a constant fallback with a warning
/// naming `what` and the fold; input errors stop.
fn cross_fitted<F>(
    learner: &dyn Learner,
    (x, y, w, family): (&Matrix, &[f64], &[f64], Family),
    folds: &Folds,
    seed: u64,
    what: &str,
    predict: F,
) -> Result<NuisanceRun, DecomposeError>
where
    F: Fn(usize) -> Result<Vec<Matrix>, healthgap_learn::LearnError>,
{
    let task = Task::new(x, y, family)
        .and_then(|t| t.with_weights(w))
        .map_err(learn_error)?;
    let mut run = NuisanceRun {
        predictions: Vec::new(),
        reports: Vec::new(),
    };
    for v in 0..folds.k() {
        let train = task.select_rows(&folds.train_rows(v));
        let train = train.task();
        if (0..train.nrows()).all(|i| train.weight(i) == 0.0) {
            return Err(DecomposeError::Statistic(format!(
                "{what}: the training folds of fold {} have no row with weight",
                v + 1
            )));
        }
        let context = format!("{what}, fold {}", v + 1);
        let fit = fit_or_fallback(
            learner,
            &train,
            seed::derive(seed, FIT_FOLD + v as u64),
            &context,
        )
        .map_err(learn_error)?;
        for m in predict(v).map_err(learn_error)? {
            run.predictions.push(fit.predict(&m).map_err(learn_error)?);
        }
        run.reports.push(fit.report().clone());
    }
    Ok(run)
}

/// Every fold's warnings, each named with the nuisance.
fn fit_warnings(what: &str, reports: &[FitReport]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| r.warnings.iter().map(move |w| format!("{what}: {w}")))
        .collect()
}

/// A nuisance's diagnostics: its cross-fitted loss, folds that fell back to
/// a constant, and (super learner) each member's CV loss and weight averaged
/// over the folds' fits.
fn nuisance_fit(name: &str, family: Family, cv_loss: f64, reports: &[FitReport]) -> NuisanceFit {
    let mut members: Vec<MemberFit> = Vec::new();
    let mut fitted = 0usize;
    for r in reports {
        if let Detail::SuperLearner(sl) = &r.detail {
            fitted += 1;
            for (k, m) in sl.members.iter().enumerate() {
                if members.len() <= k {
                    members.push(MemberFit {
                        learner: m.learner.clone(),
                        cv_loss: 0.0,
                        weight: 0.0,
                    });
                }
                members[k].cv_loss += m.cv_loss;
                members[k].weight += m.weight;
            }
        }
    }
    for m in &mut members {
        m.cv_loss /= fitted.max(1) as f64;
        m.weight /= fitted.max(1) as f64;
    }
    NuisanceFit {
        nuisance: name.to_string(),
        learner: reports
            .iter()
            .find(|r| !matches!(r.detail, Detail::Constant { .. }))
            .map_or("constant", |r| r.learner.as_str())
            .to_string(),
        loss: loss::loss_name(family).to_string(),
        cv_loss,
        fallback_folds: reports
            .iter()
            .filter(|r| matches!(r.detail, Detail::Constant { .. }))
            .count(),
        members,
    }
}

/// Binary outcome: a warning for each fold whose held-out rows or training
/// rows have no events (or only events) among one group's patients; the
/// outcome model's predictions for that group then rest on the other group
/// or on a fallback.
fn event_warnings(flex: &Flexible<'_>, folds: &Folds) -> Vec<String> {
    let mut out = Vec::new();
    let labels = flex.input.sample.labels;
    for v in 0..folds.k() {
        for (part, rows) in [
            ("held-out rows", folds.test_rows(v)),
            ("training rows", folds.train_rows(v)),
        ] {
            for (g, label) in labels.iter().enumerate() {
                let (mut sw, mut se) = (0.0, 0.0);
                for &r in &rows {
                    if usize::from(flex.layout.group[r]) == g {
                        sw += flex.w[r];
                        se += flex.w[r] * flex.y[r];
                    }
                }
                if sw > 0.0 && (se <= 0.0 || se >= sw) {
                    let what = if se <= 0.0 {
                        "no events"
                    } else {
                        "only events"
                    };
                    out.push(format!(
                        "outcome model, fold {}: {what} among the {label} patients of its \
                         {part}; the cross-fitted predictions for them lean on the other \
                         group's patients",
                        v + 1
                    ));
                }
            }
        }
    }
    out
}

/// Every comparison patient's D reference partners, drawn within its
/// allowable stratum with probability ∝ w_j from the same common random
/// numbers as the g-computation path (stream `<analysis>/draws`).
fn draw_partners(
    input: &ReductionInput<'_>,
    layout: &Layout,
    w: &[f64],
    inference: &InferenceSpec,
) -> Vec<usize> {
    let d = input.draws;
    let key = stream_key(inference.seed, &format!("{}/draws", inference.analysis_id));
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    let mut partner = vec![0usize; layout.comparison.len() * d];
    let uniforms: Vec<f64> = (0..partner.len()).map(|_| rng.random::<f64>()).collect();
    let mut cum: Vec<Vec<f64>> = Vec::with_capacity(layout.members.len());
    for members in &layout.members {
        let mut c = Vec::with_capacity(members.len());
        let mut s = 0.0;
        for &r in members {
            s += w[r];
            c.push(s);
        }
        cum.push(c);
    }
    for (ci, &r) in layout.comparison.iter().enumerate() {
        let s = layout.stratum_raw[r] as usize;
        let (members, c) = (&layout.members[s], &cum[s]);
        let Some(&total) = c.last() else { continue };
        for draw in 0..d {
            let target = uniforms[ci * d + draw] * total;
            let idx = c.partition_point(|&x| x <= target).min(members.len() - 1);
            partner[ci * d + draw] = members[idx];
        }
    }
    partner
}
