//! The cluster bootstrap engine (METHODS.md §8).
//!
//! Clusters (hospitals) are resampled with replacement, optionally within strata.
//! A replicate is described by cluster multiplicities m_g (how often cluster g
//! was drawn), so linear estimators recombine per-cluster moments instead of
//! touching rows. Replicate k draws from its own ChaCha8 stream, derived from
//! (study seed, analysis id, k): results are bit-identical for any thread count.
//!
//! Intervals are untrimmed: percentile (quantile type 7), BCa (Efron 1987, with
//! the acceleration from a delete-one-cluster jackknife) and normal. The SE is the
//! standard deviation of the replicates; the point estimate is always the
//! full-sample estimate. Failed replicates are counted, never silently dropped.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// Bootstrap settings.
#[derive(Debug, Clone)]
pub struct ClusterBootstrap {
    /// Number of replicates.
    pub replicates: usize,
    /// Study seed.
    pub seed: u64,
    /// Analysis id (part of the stream key).
    pub analysis_id: String,
    /// Stratum of each cluster, to resample within strata.
    pub strata: Option<Vec<u32>>,
}

/// Replicate estimates.
#[derive(Debug, Clone)]
pub struct BootstrapDraws {
    /// Successful replicates, each a vector of statistics.
    pub estimates: Vec<Vec<f64>>,
    /// Number of failed replicates.
    pub failed: usize,
    /// The first few failure messages.
    pub failures: Vec<String>,
    /// Replicates attempted.
    pub replicates: usize,
}

/// Interval type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Interval {
    /// Percentile interval.
    Percentile,
    /// Bias-corrected and accelerated.
    Bca,
    /// θ̂ ± z·SE.
    Normal,
}

/// Inference for one statistic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Inference {
    /// Standard error.
    pub se: f64,
    /// Lower limit.
    pub ci_low: f64,
    /// Upper limit.
    pub ci_high: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// FNV-1a of the analysis id mixed with the seed: the key of the stream family.
pub fn stream_key(seed: u64, analysis_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in analysis_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl ClusterBootstrap {
    /// Settings without strata.
    pub fn new(replicates: usize, seed: u64, analysis_id: &str) -> ClusterBootstrap {
        ClusterBootstrap {
            replicates,
            seed,
            analysis_id: analysis_id.to_string(),
            strata: None,
        }
    }

    /// Multiplicities of replicate k over `g` clusters.
    pub fn multiplicities(&self, k: usize, g: usize) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(stream_key(self.seed, &self.analysis_id));
        rng.set_stream(k as u64);
        let mut m = vec![0.0; g];
        match &self.strata {
            None => {
                for _ in 0..g {
                    m[rng.random_range(0..g)] += 1.0;
                }
            }
            Some(strata) => {
                let levels = strata.iter().max().map_or(0, |s| *s as usize + 1);
                let mut members: Vec<Vec<usize>> = vec![Vec::new(); levels];
                for (c, &s) in strata.iter().enumerate() {
                    members[s as usize].push(c);
                }
                for mem in members.iter().filter(|m| !m.is_empty()) {
                    for _ in 0..mem.len() {
                        m[mem[rng.random_range(0..mem.len())]] += 1.0;
                    }
                }
            }
        }
        m
    }

    /// Runs `stat` on every replicate's multiplicities, in parallel. `progress`
    /// is called once per finished replicate.
    pub fn run<F>(&self, g: usize, stat: F, progress: &(dyn Fn() + Sync)) -> BootstrapDraws
    where
        F: Fn(&[f64]) -> Result<Vec<f64>, String> + Sync,
    {
        let results: Vec<Result<Vec<f64>, String>> = (0..self.replicates)
            .into_par_iter()
            .map(|k| {
                let r = stat(&self.multiplicities(k, g));
                progress();
                r
            })
            .collect();
        let mut estimates = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        let mut failed = 0;
        for r in results {
            match r {
                Ok(v) if v.iter().all(|x| x.is_finite()) => estimates.push(v),
                Ok(_) => {
                    failed += 1;
                    if failures.len() < 5 {
                        failures.push("non-finite estimate".to_string());
                    }
                }
                Err(e) => {
                    failed += 1;
                    if failures.len() < 5 {
                        failures.push(e);
                    }
                }
            }
        }
        BootstrapDraws {
            estimates,
            failed,
            failures,
            replicates: self.replicates,
        }
    }
}

/// Delete-one-cluster jackknife estimates of `stat` (cluster j at multiplicity 0).
pub fn jackknife<F>(g: usize, stat: F) -> Vec<Result<Vec<f64>, String>>
where
    F: Fn(&[f64]) -> Result<Vec<f64>, String> + Sync,
{
    (0..g)
        .into_par_iter()
        .map(|j| {
            let mut m = vec![1.0; g];
            m[j] = 0.0;
            stat(&m)
        })
        .collect()
}

/// Quantile of sorted data, type 7 (linear interpolation; R and numpy default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// SE, interval and p-value of statistic `point` from its replicates.
/// `jack` holds the jackknife estimates (needed for BCa only).
pub fn infer(
    point: f64,
    draws: &[f64],
    level: f64,
    interval: Interval,
    jack: Option<&[f64]>,
) -> Inference {
    let b = draws.len();
    let normal = Normal::standard();
    if b < 2 {
        return Inference {
            se: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
            p_value: f64::NAN,
        };
    }
    let mean = draws.iter().sum::<f64>() / b as f64;
    let se = (draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (b - 1) as f64).sqrt();
    let mut sorted = draws.to_vec();
    sorted.sort_by(f64::total_cmp);
    let alpha = 1.0 - level;
    let z = normal.inverse_cdf(1.0 - alpha / 2.0);
    let (ci_low, ci_high) = match interval {
        Interval::Percentile => (
            quantile(&sorted, alpha / 2.0),
            quantile(&sorted, 1.0 - alpha / 2.0),
        ),
        Interval::Normal => (point - z * se, point + z * se),
        Interval::Bca => {
            let below = draws.iter().filter(|x| **x < point).count() as f64
                + 0.5 * draws.iter().filter(|x| **x == point).count() as f64;
            let z0 = normal.inverse_cdf((below / b as f64).clamp(1e-10, 1.0 - 1e-10));
            let a = jack.map_or(0.0, |j| {
                let m = j.iter().sum::<f64>() / j.len() as f64;
                let num: f64 = j.iter().map(|x| (m - x).powi(3)).sum();
                let den: f64 = j.iter().map(|x| (m - x).powi(2)).sum();
                if den > 0.0 {
                    num / (6.0 * den.powf(1.5))
                } else {
                    0.0
                }
            });
            let adj = |zq: f64| normal.cdf(z0 + (z0 + zq) / (1.0 - a * (z0 + zq)));
            (quantile(&sorted, adj(-z)), quantile(&sorted, adj(z)))
        }
    };
    let p_value = if se > 0.0 {
        2.0 * normal.sf((point / se).abs())
    } else {
        f64::NAN
    };
    Inference {
        se,
        ci_low,
        ci_high,
        p_value,
    }
}

/// The p-value 2·min(share ≥ 0, share ≤ 0) of the replicates.
pub fn sign_p_value(draws: &[f64]) -> f64 {
    let b = draws.len() as f64;
    let ge = draws.iter().filter(|x| **x >= 0.0).count() as f64 / b;
    let le = draws.iter().filter(|x| **x <= 0.0).count() as f64 / b;
    (2.0 * ge.min(le)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplicities_resample_g_clusters_and_depend_only_on_k() {
        let bs = ClusterBootstrap::new(10, 7, "oaxaca_blinder");
        let a = bs.multiplicities(3, 50);
        assert_eq!(a.iter().sum::<f64>(), 50.0);
        assert_eq!(a, bs.multiplicities(3, 50));
        assert_ne!(a, bs.multiplicities(4, 50));
        assert_ne!(
            a,
            ClusterBootstrap::new(10, 7, "gelbach").multiplicities(3, 50)
        );
    }

    #[test]
    fn stratified_resampling_keeps_stratum_sizes() {
        let mut bs = ClusterBootstrap::new(5, 1, "x");
        bs.strata = Some(vec![0, 0, 0, 1, 1]);
        for k in 0..5 {
            let m = bs.multiplicities(k, 5);
            assert_eq!(m[..3].iter().sum::<f64>(), 3.0);
            assert_eq!(m[3..].iter().sum::<f64>(), 2.0);
        }
    }

    #[test]
    fn quantile_type_7_matches_numpy() {
        // numpy.quantile([1, 2, 3, 4], 0.1) = 1.3
        assert!((quantile(&[1.0, 2.0, 3.0, 4.0], 0.1) - 1.3).abs() < 1e-12);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0);
    }

    #[test]
    fn failed_replicates_are_counted() {
        let bs = ClusterBootstrap::new(20, 3, "x");
        let draws = bs.run(
            10,
            |m| {
                if m[0] == 0.0 {
                    Err("cluster 0 missing".into())
                } else {
                    Ok(vec![m[0]])
                }
            },
            &|| {},
        );
        assert_eq!(draws.failed + draws.estimates.len(), 20);
        assert!(draws.failed > 0 && !draws.failures.is_empty());
    }

    #[test]
    fn bca_without_bias_or_skew_is_the_percentile_interval() {
        // Symmetric draws around the point, zero acceleration.
        let draws: Vec<f64> = (0..1001).map(|i| (i as f64 - 500.0) / 100.0).collect();
        let p = infer(0.0, &draws, 0.9, Interval::Percentile, None);
        let b = infer(0.0, &draws, 0.9, Interval::Bca, Some(&[1.0, -1.0]));
        assert!((p.ci_low - b.ci_low).abs() < 1e-9 && (p.ci_high - b.ci_high).abs() < 1e-9);
    }
}
