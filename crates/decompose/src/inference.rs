//! Inference shared by the methods: the delta method over clusters (the
//! infinitesimal jackknife) and the cluster bootstrap, turned into tidy rows.
//!
//! **Cluster delta method.** A statistic θ̂(m) of the cluster multiplicities m
//! (1 for every cluster at the full sample) has the linearisation
//! θ̂(m) ≈ θ̂ + Σ_g (m_g − 1) ∂θ̂/∂m_g, so its variance over clusters is
//! V = G/(G − 1) Σ_g (∂θ̂/∂m_g)² (Efron 1982; for least squares this is the CR1
//! sandwich without its (N − 1)/(N − K) factor, and it includes every covariance
//! between models and means that share clusters: the stacked sandwich).
//! The derivatives are forward differences with step 10⁻⁴ in m_g: their
//! relative error is about 10⁻⁴ × the cluster's share of the weight.

use healthgap_models::bootstrap::{ClusterBootstrap, Interval, infer, jackknife};
use rayon::prelude::*;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::result::{Estimate, InferenceInfo, MethodOutput, SeMethod};

/// The variance of the delta method (`[design] vce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vce {
    /// Each row its own unit: V = n/(n−1) Σ_i ψ_i ψ_iᵀ over the stacked
    /// influence functions of every model and mean (HC1 / Stata `suest`).
    Robust,
    /// Model-based (homoskedastic) variances, where derived.
    Model,
    /// Clusters are the units (CR1 / the stacked cluster sandwich).
    Cluster,
}

impl Vce {
    /// The results.json spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Vce::Robust => "robust",
            Vce::Model => "model",
            Vce::Cluster => "cluster",
        }
    }

    /// The `se_method` of a delta-method row made with this variance.
    pub fn se_method(self) -> SeMethod {
        match self {
            Vce::Robust => SeMethod::DeltaRobust,
            Vce::Model => SeMethod::DeltaModel,
            Vce::Cluster => SeMethod::DeltaCluster,
        }
    }
}

/// The largest share of failed bootstrap replicates (or BCa jackknife
/// evaluations) that is reported with a warning; above it the intervals are
/// withheld, since the replicates that succeeded are not a bootstrap
/// distribution.
pub const MAX_FAILED_SHARE: f64 = 0.01;

/// Delta method or bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Delta method (analytic or over clusters).
    Delta,
    /// Cluster bootstrap (rows when there is no cluster).
    Bootstrap,
}

/// The inference settings of an analysis.
#[derive(Debug, Clone)]
pub struct InferenceSpec {
    /// Delta or bootstrap.
    pub method: Method,
    /// Bootstrap replicates.
    pub replicates: usize,
    /// Bootstrap interval.
    pub interval: Interval,
    /// Confidence level.
    pub level: f64,
    /// Study seed.
    pub seed: u64,
    /// Analysis id (part of the random stream key).
    pub analysis_id: String,
    /// Resample within groups (row bootstrap only).
    pub stratify: bool,
    /// The variance of the delta method.
    pub vce: Vce,
    /// Bootstrap replicates of likelihood models take one Newton (Fisher
    /// scoring) step from the full-sample fit instead of iterating to
    /// convergence (`[inference] one_step = true`; declared in
    /// `inference.note`).
    pub one_step: bool,
}

impl InferenceSpec {
    /// Delta-method settings at `level` (for tests and library use).
    pub fn delta(level: f64) -> InferenceSpec {
        InferenceSpec {
            method: Method::Delta,
            replicates: 0,
            interval: Interval::Normal,
            level,
            seed: 0,
            analysis_id: String::new(),
            stratify: false,
            vce: Vce::Robust,
            one_step: false,
        }
    }

    /// The same settings with the cluster variance (for a method that always
    /// clusters, such as the hospital analysis).
    pub fn clustered(&self) -> InferenceSpec {
        InferenceSpec {
            vce: Vce::Cluster,
            ..self.clone()
        }
    }

    /// The `se_method` of this spec's delta-method rows.
    pub fn delta_method(&self) -> SeMethod {
        self.vce.se_method()
    }

    /// The `se_method` of this spec's bootstrap rows.
    pub fn bootstrap_method(&self) -> SeMethod {
        match self.interval {
            Interval::Percentile => SeMethod::BootstrapPercentile,
            Interval::Bca => SeMethod::BootstrapBca,
            Interval::Normal => SeMethod::BootstrapNormal,
        }
    }

    /// The results.json description of a method's output.
    pub fn info(&self, cluster: Option<&str>, out: &MethodOutput) -> InferenceInfo {
        let boot = self.method == Method::Bootstrap;
        InferenceInfo {
            method: if boot { "bootstrap" } else { "delta" }.into(),
            replicates: boot.then_some(self.replicates),
            replicates_ok: if boot { out.replicates_ok } else { None },
            interval: match (boot, self.interval) {
                (false, _) | (true, Interval::Normal) => "normal",
                (true, Interval::Percentile) => "percentile",
                (true, Interval::Bca) => "bca",
            }
            .into(),
            level: self.level,
            cluster: cluster.map(str::to_string),
            vce: self.vce.as_str().into(),
            note: out.inference_note.clone(),
            withheld: out.withheld.clone(),
            imputation: None,
        }
    }
}

/// A row key: (quantity, factor, term).
pub type Key = (String, Option<String>, Option<String>);

/// V = G/(G−1) Σ_g (∂θ/∂m_g)² for every statistic of `stat` (see the module doc).
pub fn cluster_delta_variance<F>(g: usize, stat: F) -> Result<Vec<f64>, String>
where
    F: Fn(&[f64]) -> Result<Vec<f64>, String> + Sync,
{
    if g < 2 {
        return Err(format!(
            "the delta method over clusters needs at least 2 clusters, found {g}"
        ));
    }
    const H: f64 = 1e-4;
    let base = stat(&vec![1.0; g])?;
    let grads: Vec<Result<Vec<f64>, String>> = (0..g)
        .into_par_iter()
        .map(|c| {
            let mut m = vec![1.0; g];
            m[c] = 1.0 + H;
            let up = stat(&m)?;
            Ok(up.iter().zip(&base).map(|(u, d)| (u - d) / H).collect())
        })
        .collect();
    let mut v: Vec<f64> = Vec::new();
    for grad in grads {
        let grad = grad?;
        if v.is_empty() {
            v = vec![0.0; grad.len()];
        }
        for (a, d) in v.iter_mut().zip(&grad) {
            *a += d * d;
        }
    }
    let factor = g as f64 / (g as f64 - 1.0);
    Ok(v.into_iter().map(|x| x * factor).collect())
}

/// Delta-method variances from row influence functions that are linear in a
/// row vector: IF_ik = d_{s(i),k}'u_i, where `fill(i, u)` writes u_i and
/// returns the set s(i) of `d` (keys × dim, row-major) it uses and the row's
/// unit, or None to skip the row.
///
/// - `units` None: every row its own unit, V_k = n/(n−1) Σ_i IF_ik² (HC1-type;
///   n counts the rows used);
/// - `units` Some(G): clusters 0..G, V_k = G/(G−1) Σ_g (Σ_{i∈g} IF_ik)², the
///   stacked cluster sandwich (what [`cluster_delta_variance`] approximates
///   by differences).
///
/// Each row's (cluster's) influence is summed before it is squared, so a
/// statistic that is identically zero gets a variance of zero up to the
/// rounding of its terms (a quadratic form d'Md would not).
pub fn influence_variance<F>(
    rows: usize,
    dim: usize,
    d: &[Vec<f64>],
    units: Option<usize>,
    fill: F,
) -> Vec<f64>
where
    F: Fn(usize, &mut [f64]) -> Option<(usize, u32)> + Sync,
{
    let nk = d.first().map_or(0, |d| d.len() / dim.max(1));
    let sets = d.len();
    // With clusters, u is summed per (cluster, set) in the pass (O(n·dim)),
    // and d applied once per cluster; without, each row's IF is squared.
    let slots = units.map_or(nk, |g| g * sets * dim);
    // Per split: the sums, rows used, scratch u; at most about four splits per
    // thread, so per-cluster sums stay small.
    // (Very many clusters, e.g. one per patient: one accumulator only.)
    let min_len = if slots > 1 << 21 {
        rows.max(1)
    } else {
        (rows / (4 * rayon::current_num_threads())).max(4096)
    };
    let (sum, n) = (0..rows)
        .into_par_iter()
        .with_min_len(min_len)
        .fold(
            || (vec![0.0; slots], 0usize, vec![0.0; dim]),
            |(mut acc, mut n, mut u), i| {
                let Some((set, unit)) = fill(i, &mut u) else {
                    return (acc, n, u);
                };
                n += 1;
                if units.is_some() {
                    let base = (unit as usize * sets + set) * dim;
                    for (a, x) in acc[base..base + dim].iter_mut().zip(&u) {
                        *a += x;
                    }
                } else {
                    let ds = &d[set];
                    for (k, a) in acc.iter_mut().enumerate() {
                        let t: f64 = ds[k * dim..(k + 1) * dim]
                            .iter()
                            .zip(&u)
                            .map(|(d, u)| d * u)
                            .sum();
                        *a += t * t;
                    }
                }
                (acc, n, u)
            },
        )
        .map(|(acc, n, _)| (acc, n))
        .reduce(
            || (vec![0.0; slots], 0),
            |(mut a, na), (b, nb)| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                (a, na + nb)
            },
        );
    match units {
        None => {
            let factor = n as f64 / (n as f64 - 1.0).max(1.0);
            sum.into_iter().map(|v| v * factor).collect()
        }
        Some(g) => {
            let factor = g as f64 / (g as f64 - 1.0).max(1.0);
            let mut v = vec![0.0; nk];
            for c in 0..g {
                for (k, vk) in v.iter_mut().enumerate() {
                    let t: f64 = (0..sets)
                        .map(|set| {
                            let u = &sum[(c * sets + set) * dim..(c * sets + set + 1) * dim];
                            d[set][k * dim..(k + 1) * dim]
                                .iter()
                                .zip(u)
                                .map(|(d, u)| d * u)
                                .sum::<f64>()
                        })
                        .sum();
                    *vk += t * t;
                }
            }
            v.into_iter().map(|x| x * factor).collect()
        }
    }
}

/// A total row with normal-theory inference: est ± z·se, two-sided p.
pub fn normal_row(quantity: &str, est: f64, se: f64, level: f64) -> Estimate {
    let normal = Normal::standard();
    let z = normal.inverse_cdf(1.0 - (1.0 - level) / 2.0);
    let p = if se > 0.0 {
        2.0 * normal.sf((est / se).abs())
    } else {
        f64::NAN
    };
    Estimate::total(quantity, est).with_inference(se, est - z * se, est + z * se, p)
}

/// A ratio row from a log-scale estimate b and its SE: exp(b), the interval
/// exp(b ± z·se), the SE by the delta method (exp(b)·se) and the p-value of b.
pub fn exp_row(quantity: &str, b: f64, se: f64, level: f64) -> Estimate {
    let log = normal_row(quantity, b, se, level);
    let e = |x: Option<f64>| x.map_or(f64::NAN, f64::exp);
    Estimate::total(quantity, b.exp()).with_inference(
        b.exp() * se,
        e(log.ci_low),
        e(log.ci_high),
        log.p_value.unwrap_or(f64::NAN),
    )
}

/// Rows with normal-theory inference from variances (NaN variance → null),
/// tagged with how the variances were made.
pub fn delta_rows(
    keys: &[Key],
    point: &[f64],
    variance: Option<&[f64]>,
    level: f64,
    how: SeMethod,
) -> Vec<Estimate> {
    keys.iter()
        .zip(point)
        .enumerate()
        .map(|(i, ((q, f, t), &est))| {
            let e = match variance.map(|v| v[i]) {
                Some(v) if v.is_finite() && v >= 0.0 => normal_row(q, est, v.sqrt(), level),
                _ => Estimate::total(q, est),
            };
            Estimate {
                factor: f.clone(),
                term: t.clone(),
                ..e
            }
            .made_by(how)
        })
        .collect()
}

/// A share k/total for a warning, as a percentage, or "fewer than {min_cell}"
/// when k is small (its share, with the public total, would reveal it).
pub fn share_text(k: usize, total: usize, min_cell: usize) -> String {
    if k < min_cell {
        format!("fewer than {min_cell}")
    } else {
        format!("{:.1}%", 100.0 * k as f64 / total as f64)
    }
}

/// A count for a warning: the number, or "fewer than {min_cell}" when small
/// (a small count, or any share of it, must not leave in a report).
pub fn count_text(n: usize, min_cell: usize) -> String {
    if n < min_cell {
        format!("fewer than {min_cell}")
    } else {
        n.to_string()
    }
}

/// Bootstrap rows and what became of the replicates.
#[derive(Debug, Clone)]
pub struct Booted {
    /// Rows (without inference when withheld).
    pub rows: Vec<Estimate>,
    /// Replicates that succeeded.
    pub ok: usize,
    /// Why the intervals were withheld (None when they were not).
    pub withheld: Option<String>,
    /// Warnings (failures below the limit).
    pub warnings: Vec<String>,
}

/// The verdict on `failed` of `total` evaluations of `what`: None when all
/// succeeded; a warning at or below [`MAX_FAILED_SHARE`]; else the reason to
/// withhold the intervals.
pub fn failure_verdict(
    what: &str,
    failed: usize,
    total: usize,
    first: Option<&str>,
) -> Option<Result<String, String>> {
    if failed == 0 {
        return None;
    }
    let first = first.unwrap_or("no message");
    let share = failed as f64 / total.max(1) as f64;
    Some(if share <= MAX_FAILED_SHARE {
        Ok(format!(
            "{failed} of {total} {what} failed and were left out (at most {:.0}% may; first: {first})",
            100.0 * MAX_FAILED_SHARE
        ))
    } else {
        Err(format!(
            "{failed} of {total} {what} failed (more than {:.0}%; first: {first}): intervals from \
             the rest would not be a bootstrap distribution, so the standard errors, intervals \
             and p-values made from them are withheld",
            100.0 * MAX_FAILED_SHARE
        ))
    })
}

/// Runs the bootstrap of `stat` over `g` resampling units and returns the rows
/// with bootstrap inference (BCa adds a delete-one jackknife). Failed
/// replicates (or jackknife evaluations) above [`MAX_FAILED_SHARE`] withhold
/// every row's inference, with the reason; below it they are warned about.
pub fn bootstrap_rows<F>(
    keys: &[Key],
    point: &[f64],
    spec: &InferenceSpec,
    g: usize,
    strata: Option<Vec<u32>>,
    stat: F,
    progress: &(dyn Fn() + Sync),
) -> Booted
where
    F: Fn(&[f64]) -> Result<Vec<f64>, String> + Sync,
{
    let mut bs = ClusterBootstrap::new(spec.replicates, spec.seed, &spec.analysis_id);
    bs.strata = strata;
    let draws = bs.run(g, &stat, progress);
    let mut warnings = Vec::new();
    let mut withheld = None;
    let mut judge = |v: Option<Result<String, String>>| match v {
        Some(Ok(w)) => warnings.push(w),
        Some(Err(why)) => withheld = withheld.take().or(Some(why)),
        None => {}
    };
    judge(failure_verdict(
        "bootstrap replicates",
        draws.failed,
        draws.replicates,
        draws.failures.first().map(String::as_str),
    ));
    let jack: Option<Vec<Vec<f64>>> = (spec.interval == Interval::Bca).then(|| {
        // A non-finite value fails like an error (as in the replicates).
        let all: Vec<Result<Vec<f64>, String>> = jackknife(g, &stat)
            .into_iter()
            .map(|r| {
                r.and_then(|v| {
                    if v.iter().all(|x| x.is_finite()) {
                        Ok(v)
                    } else {
                        Err("a non-finite statistic".into())
                    }
                })
            })
            .collect();
        let first = all.iter().find_map(|r| r.as_ref().err().cloned());
        let failed = all.iter().filter(|r| r.is_err()).count();
        judge(failure_verdict(
            "jackknife evaluations of the BCa acceleration",
            failed,
            g,
            first.as_deref(),
        ));
        all.into_iter().filter_map(Result::ok).collect()
    });
    let how = spec.bootstrap_method();
    let rows = keys
        .iter()
        .enumerate()
        .map(|(i, (q, f, t))| {
            let row = Estimate {
                quantity: q.clone(),
                factor: f.clone(),
                term: t.clone(),
                ..Estimate::total(q, point[i])
            };
            if withheld.is_some() {
                return row;
            }
            let column: Vec<f64> = draws.estimates.iter().map(|d| d[i]).collect();
            let jk: Option<Vec<f64>> = jack.as_ref().map(|j| j.iter().map(|d| d[i]).collect());
            let inf = infer(point[i], &column, spec.level, spec.interval, jk.as_deref());
            row.with_inference(inf.se, inf.ci_low, inf.ci_high, inf.p_value)
                .made_by(how)
        })
        .collect();
    Booted {
        rows,
        ok: draws.estimates.len(),
        withheld,
        warnings,
    }
}

/// The row bootstrap (no cluster variable): rows of the two groups are the
/// resampling units (within groups when `spec.stratify`). `stat` gets each
/// replicate's row weights (base weight × multiplicity) and group codes (rows
/// not drawn are coded 2 and have weight 0: a statistic that fits a model
/// must drop them).
pub fn row_bootstrap<F>(
    keys: &[Key],
    point: &[f64],
    spec: &InferenceSpec,
    group: &[u32],
    weights: Option<&[f64]>,
    stat: F,
    progress: &(dyn Fn() + Sync),
) -> Booted
where
    F: Fn(&[f64], &[u32]) -> Result<Vec<f64>, String> + Sync,
{
    let used: Vec<usize> = (0..group.len()).filter(|&i| group[i] <= 1).collect();
    let strata = spec
        .stratify
        .then(|| used.iter().map(|&i| group[i]).collect());
    let replicate = |m: &[f64]| -> Result<Vec<f64>, String> {
        let mut w = vec![0.0; group.len()];
        let mut g = vec![2u32; group.len()];
        for (r, &i) in used.iter().enumerate() {
            if m[r] > 0.0 {
                w[i] = weights.map_or(1.0, |w| w[i]) * m[r];
                g[i] = group[i];
            }
        }
        stat(&w, &g)
    };
    bootstrap_rows(keys, point, spec, used.len(), strata, replicate, progress)
}

/// The rows and resampling units of a method whose statistics are functions
/// of cluster multiplicities (the moment-based methods).
pub struct Resampled<'a> {
    /// Row keys.
    pub keys: &'a [Key],
    /// Full-sample estimates, in key order.
    pub point: &'a [f64],
    /// Inference settings.
    pub spec: &'a InferenceSpec,
    /// Number of clusters (None: rows are the units).
    pub clusters: Option<usize>,
    /// Group codes of the rows (for the row bootstrap).
    pub group: &'a [u32],
    /// Row weights (for the row bootstrap).
    pub weights: Option<&'a [f64]>,
}

impl Resampled<'_> {
    /// The `se_method` of variances from the influence functions: summed by
    /// cluster with clusters, each row its own unit without.
    pub fn influence_method(&self) -> SeMethod {
        if self.clusters.is_some() {
            SeMethod::DeltaCluster
        } else {
            SeMethod::DeltaRobust
        }
    }
}

/// Rows with their inference and what became of the replicates.
#[derive(Debug, Clone)]
pub struct Inferred {
    /// Rows.
    pub rows: Vec<Estimate>,
    /// Successful bootstrap replicates (None for the delta method).
    pub replicates_ok: Option<usize>,
    /// Why intervals were withheld.
    pub withheld: Option<String>,
}

impl Inferred {
    /// Delta-method rows.
    pub fn delta(rows: Vec<Estimate>) -> Inferred {
        Inferred {
            rows,
            replicates_ok: None,
            withheld: None,
        }
    }

    /// Bootstrap rows; the warnings go to `warnings`.
    pub fn booted(b: Booted, warnings: &mut Vec<String>) -> Inferred {
        warnings.extend(b.warnings);
        let mut inferred = Inferred {
            rows: b.rows,
            replicates_ok: Some(b.ok),
            withheld: None,
        };
        inferred.withhold(b.withheld, warnings);
        inferred
    }

    /// Records why intervals were withheld (the first reason stays), and says
    /// so in `warnings`.
    pub fn withhold(&mut self, why: Option<String>, warnings: &mut Vec<String>) {
        if let Some(why) = why {
            warnings.push(format!("intervals withheld: {why}"));
            self.withheld.get_or_insert(why);
        }
    }
}

/// Rows with the method's inference. The delta method: the variances from
/// `analytic` with their `se_method` when it has them (the influence
/// functions, by row or by cluster); otherwise, with clusters, the cluster
/// delta method over `stat` by differences, and without, no SEs. The
/// bootstrap: of `stat` over clusters, or of `row_stat` over rows. Warnings
/// are appended.
pub fn resampled_rows<S, U, R>(
    r: &Resampled<'_>,
    stat: S,
    analytic: U,
    row_stat: R,
    progress: &(dyn Fn() + Sync),
    warnings: &mut Vec<String>,
) -> Result<Inferred, crate::DecomposeError>
where
    S: Fn(&[f64]) -> Result<Vec<f64>, String> + Sync,
    U: FnOnce() -> Result<Option<(Vec<f64>, SeMethod)>, crate::DecomposeError>,
    R: Fn(&[f64], &[u32]) -> Result<Vec<f64>, String> + Sync,
{
    let level = r.spec.level;
    let booted = match (r.spec.method, r.clusters) {
        (Method::Delta, clusters) => {
            let (v, how) = match (analytic()?, clusters) {
                (Some((v, how)), _) => (Some(v), how),
                (None, Some(g)) => (
                    Some(
                        cluster_delta_variance(g, stat)
                            .map_err(crate::DecomposeError::Statistic)?,
                    ),
                    SeMethod::DeltaCluster,
                ),
                (None, None) => (None, SeMethod::None),
            };
            // A variance that is not a finite non-negative number leaves its
            // row without an SE: counted, not silent.
            let bad: Vec<&str> = v
                .iter()
                .flatten()
                .zip(r.keys)
                .filter(|(x, _)| !(x.is_finite() && **x >= 0.0))
                .map(|(_, k)| k.0.as_str())
                .collect();
            if !bad.is_empty() {
                warnings.push(format!(
                    "{} row(s) have no delta-method SE (a variance that is not a finite \
                     non-negative number), first: `{}`",
                    bad.len(),
                    bad[0]
                ));
            }
            let rows = delta_rows(r.keys, r.point, v.as_deref(), level, how);
            return Ok(Inferred::delta(rows));
        }
        (Method::Bootstrap, Some(g)) => {
            if r.spec.stratify {
                warnings.push(
                    "stratify ignored: clusters hold patients of both groups, so the cluster \
                     bootstrap cannot resample within groups"
                        .into(),
                );
            }
            bootstrap_rows(r.keys, r.point, r.spec, g, None, stat, progress)
        }
        (Method::Bootstrap, None) => row_bootstrap(
            r.keys, r.point, r.spec, r.group, r.weights, row_stat, progress,
        ),
    };
    Ok(Inferred::booted(booted, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_delta_of_a_ratio_of_sums_is_the_linearised_variance() {
        // θ = Σ m_g a_g / Σ m_g b_g; influence = (a_g − θ b_g)/Σb.
        let a = [3.0, 5.0, 2.0, 7.0, 4.0];
        let b = [1.0, 2.0, 1.0, 3.0, 2.0];
        let stat = |m: &[f64]| -> Result<Vec<f64>, String> {
            let num: f64 = m.iter().zip(&a).map(|(m, a)| m * a).sum();
            let den: f64 = m.iter().zip(&b).map(|(m, b)| m * b).sum();
            Ok(vec![num / den])
        };
        let v = cluster_delta_variance(5, stat).unwrap();
        let theta = 21.0 / 9.0;
        let direct: f64 = a
            .iter()
            .zip(&b)
            .map(|(a, b)| ((a - theta * b) / 9.0).powi(2))
            .sum::<f64>()
            * 5.0
            / 4.0;
        // Forward differences: relative error ≈ 10⁻⁴ × the cluster's share.
        assert!(
            (v[0] - direct).abs() < 1e-4 * direct,
            "{} vs {direct}",
            v[0]
        );
        assert!(cluster_delta_variance(1, stat).is_err());
    }

    #[test]
    fn failures_are_warned_up_to_one_percent_and_withhold_the_intervals_above() {
        assert!(failure_verdict("replicates", 0, 500, None).is_none());
        let warned = failure_verdict("replicates", 5, 500, Some("singular")).unwrap();
        assert!(
            warned.as_ref().is_ok_and(|w| w.contains("5 of 500")),
            "{warned:?}"
        );
        let withheld = failure_verdict("replicates", 6, 500, Some("singular")).unwrap();
        assert!(
            withheld
                .as_ref()
                .is_err_and(|w| w.contains("6 of 500") && w.contains("withheld")),
            "{withheld:?}"
        );
    }

    #[test]
    fn a_bootstrap_with_many_failed_replicates_withholds_every_interval() {
        // Fails whenever unit 0 is not drawn: about 37% of the replicates.
        let stat = |m: &[f64]| -> Result<Vec<f64>, String> {
            if m[0] == 0.0 {
                return Err("unit 0 missing".into());
            }
            Ok(vec![m.iter().enumerate().map(|(i, m)| i as f64 * m).sum()])
        };
        let keys: Vec<Key> = vec![("total".into(), None, None)];
        let spec = InferenceSpec {
            method: Method::Bootstrap,
            replicates: 200,
            interval: Interval::Percentile,
            ..InferenceSpec::delta(0.95)
        };
        let b = bootstrap_rows(&keys, &[45.0], &spec, 10, None, stat, &|| {});
        let why = b.withheld.expect("withheld");
        assert!(why.contains("unit 0 missing"), "{why}");
        assert!(b.ok > 0 && b.ok < 200);
        let r = &b.rows[0];
        assert_eq!(r.estimate, 45.0);
        assert!(r.se.is_none() && r.ci_low.is_none() && r.p_value.is_none());
        assert_eq!(r.se_method, SeMethod::None);
        // The same statistic never failing: every interval, labelled.
        let ok = |m: &[f64]| -> Result<Vec<f64>, String> { Ok(vec![m.iter().sum()]) };
        let b = bootstrap_rows(&keys, &[10.0], &spec, 10, None, ok, &|| {});
        assert!(b.withheld.is_none() && b.warnings.is_empty() && b.ok == 200);
        assert_eq!(b.rows[0].se_method, SeMethod::BootstrapPercentile);
    }

    #[test]
    fn influence_variance_sums_each_rows_influence_before_squaring() {
        // Two statistics: IF_i = (10¹² + 1)·u_i and 10¹²·u_i − 10¹²·u_i (zero).
        let u = [1.0, -2.0, 0.5, 0.5];
        let d = vec![vec![1e12, 1.0, 1e12, -1e12]];
        let v = influence_variance(4, 2, &d, None, |i, out| {
            out[0] = u[i];
            out[1] = u[i];
            Some((0, 0))
        });
        let direct: f64 = u.iter().map(|x| x * x).sum::<f64>() * 4.0 / 3.0;
        assert!((v[0] - (1.0 + 1e12f64).powi(2) * direct).abs() < 1e-6 * v[0]);
        assert_eq!(v[1], 0.0);
    }
}
