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

use healthgap_models::bootstrap::{BootstrapDraws, ClusterBootstrap, Interval, infer, jackknife};
use rayon::prelude::*;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::result::{Estimate, InferenceInfo};

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
        }
    }

    /// The results.json description.
    pub fn info(&self, cluster: Option<&str>, replicates_ok: Option<usize>) -> InferenceInfo {
        let boot = self.method == Method::Bootstrap;
        InferenceInfo {
            method: if boot { "bootstrap" } else { "delta" }.into(),
            replicates: boot.then_some(self.replicates),
            replicates_ok: if boot { replicates_ok } else { None },
            interval: match (boot, self.interval) {
                (false, _) | (true, Interval::Normal) => "normal",
                (true, Interval::Percentile) => "percentile",
                (true, Interval::Bca) => "bca",
            }
            .into(),
            level: self.level,
            cluster: cluster.map(str::to_string),
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

/// Rows with normal-theory inference from variances (NaN variance → null).
pub fn delta_rows(
    keys: &[Key],
    point: &[f64],
    variance: Option<&[f64]>,
    level: f64,
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

/// Runs the bootstrap of `stat` over `g` resampling units and returns the rows
/// with bootstrap inference (BCa adds a delete-one jackknife), plus the draws.
pub fn bootstrap_rows<F>(
    keys: &[Key],
    point: &[f64],
    spec: &InferenceSpec,
    g: usize,
    strata: Option<Vec<u32>>,
    stat: F,
    progress: &(dyn Fn() + Sync),
) -> (Vec<Estimate>, BootstrapDraws)
where
    F: Fn(&[f64]) -> Result<Vec<f64>, String> + Sync,
{
    let mut bs = ClusterBootstrap::new(spec.replicates, spec.seed, &spec.analysis_id);
    bs.strata = strata;
    let draws = bs.run(g, &stat, progress);
    let jack: Option<Vec<Vec<f64>>> = (spec.interval == Interval::Bca).then(|| {
        jackknife(g, &stat)
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    });
    let rows = keys
        .iter()
        .enumerate()
        .map(|(i, (q, f, t))| {
            let column: Vec<f64> = draws.estimates.iter().map(|d| d[i]).collect();
            let jk: Option<Vec<f64>> = jack.as_ref().map(|j| j.iter().map(|d| d[i]).collect());
            let inf = infer(point[i], &column, spec.level, spec.interval, jk.as_deref());
            Estimate {
                quantity: q.clone(),
                factor: f.clone(),
                term: t.clone(),
                ..Estimate::total(q, point[i])
            }
            .with_inference(inf.se, inf.ci_low, inf.ci_high, inf.p_value)
        })
        .collect();
    (rows, draws)
}

/// The row bootstrap (no cluster variable): rows of the two groups are the
/// resampling units (within groups when `spec.stratify`). `stat` gets each
/// replicate's row weights (base weight × multiplicity) and group codes (rows
/// not drawn are coded 2).
pub fn row_bootstrap<F>(
    keys: &[Key],
    point: &[f64],
    spec: &InferenceSpec,
    group: &[u32],
    weights: Option<&[f64]>,
    stat: F,
    progress: &(dyn Fn() + Sync),
) -> (Vec<Estimate>, BootstrapDraws)
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

/// Rows with the method's inference. With clusters: the cluster delta method
/// over `stat`, or the cluster bootstrap of `stat`. Without: the variances
/// from `unclustered` (None: no SEs), or the row bootstrap through `row_stat`.
/// Returns the rows and the successful replicates; warnings are appended.
pub fn resampled_rows<S, U, R>(
    r: &Resampled<'_>,
    stat: S,
    unclustered: U,
    row_stat: R,
    progress: &(dyn Fn() + Sync),
    warnings: &mut Vec<String>,
) -> Result<(Vec<Estimate>, Option<usize>), crate::DecomposeError>
where
    S: Fn(&[f64]) -> Result<Vec<f64>, String> + Sync,
    U: FnOnce() -> Result<Option<Vec<f64>>, crate::DecomposeError>,
    R: Fn(&[f64], &[u32]) -> Result<Vec<f64>, String> + Sync,
{
    let level = r.spec.level;
    let (rows, draws) = match (r.spec.method, r.clusters) {
        (Method::Delta, Some(g)) => {
            let v = cluster_delta_variance(g, stat).map_err(crate::DecomposeError::Input)?;
            return Ok((delta_rows(r.keys, r.point, Some(&v), level), None));
        }
        (Method::Delta, None) => {
            let v = unclustered()?;
            return Ok((delta_rows(r.keys, r.point, v.as_deref(), level), None));
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
    warnings.extend(failed_warning(&draws));
    Ok((rows, Some(draws.estimates.len())))
}

/// A warning when bootstrap replicates failed.
pub fn failed_warning(draws: &BootstrapDraws) -> Option<String> {
    (draws.failed > 0).then(|| {
        format!(
            "{} of {} bootstrap replicates failed and were left out (first: {})",
            draws.failed,
            draws.replicates,
            draws.failures.first().map_or("", String::as_str)
        )
    })
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
}
