//! From the subset means μ̄(S) to the reported rows: each target alone,
//! the joint reduction, the sequential reductions in the configured order,
//! the Shapley reductions φ_k = Σ_{S ∌ k} |S|!(K − |S| − 1)!/K! [δ(S ∪ k) −
//! δ(S)] (Shorrocks 2013), their shares of the initial disparity, and the
//! E-values of the remaining disparity with their confidence limits.

use super::{Setup, Target};
use crate::inference::Key;
use crate::sensitivity::{e_value, e_value_of_limit};
use crate::shares::{ShareSpec, Shares};

/// Shares of the initial disparity: the Shapley reduction by target, and
/// what remains with every target equalised.
pub(super) const SHARES: ShareSpec = ShareSpec {
    total: "initial_disparity",
    blocks: Some("disparity_reduction_shapley"),
    named: &["disparity_remaining"],
};

/// The row keys, in the order of [`Setup::statistics`].
pub(super) fn keys(targets: &[Target], binary: bool) -> Vec<Key> {
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

impl Setup<'_> {
    /// The targets of a subset, joined by "+".
    pub(super) fn subset_name(&self, subset: usize) -> String {
        self.input
            .targets
            .iter()
            .enumerate()
            .filter(|(k, _)| subset & (1 << k) != 0)
            .map(|(_, t)| t.name.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Every statistic, in key order, from the subset means, the comparison
    /// mean and the standardized reference mean.
    pub(super) fn statistics(&self, mu: &[f64], ybar: f64, rstd: f64) -> Result<Vec<f64>, String> {
        Ok(statistics(
            &Statistics {
                k: self.k,
                keys: &self.keys,
                targets: &self.input.targets,
                binary: self.input.sample.binary,
                shares: &self.shares,
            },
            mu,
            ybar,
            rstd,
        ))
    }
}

/// What the reported rows are made of: the targets and the row keys.
pub(super) struct Statistics<'a> {
    /// Targets.
    pub k: usize,
    /// Row keys ([`keys`]).
    pub keys: &'a [Key],
    /// The targets, in the configured order.
    pub targets: &'a [Target],
    /// Binary outcome (E-values).
    pub binary: bool,
    /// The share rows' positions.
    pub shares: &'a Shares,
}

/// Every statistic, in key order, from the subset means μ̄(S) (by bitmask),
/// the comparison mean ȳ_c and the standardized reference mean R: δ(S) =
/// μ̄(∅) − μ̄(S), τ = ȳ_c − R, remaining τ − δ(S), the sequential and Shapley
/// reductions, the E-values and the shares.
pub(super) fn statistics(st: &Statistics<'_>, mu: &[f64], ybar: f64, rstd: f64) -> Vec<f64> {
    let k_targets = st.k;
    let nsub = 1usize << k_targets;
    let tau = ybar - rstd;
    let delta = |subset: usize| mu[0] - mu[subset];
    let full = nsub - 1;
    // Shapley: φ_k = Σ_{S ∌ k} |S|!(K − |S| − 1)!/K! [δ(S ∪ k) − δ(S)].
    let fact = |n: usize| (1..=n).map(|v| v as f64).product::<f64>();
    let shapley: Vec<f64> = (0..k_targets)
        .map(|k| {
            (0..nsub)
                .filter(|s| s & (1 << k) == 0)
                .map(|s| {
                    let size = s.count_ones() as usize;
                    fact(size) * fact(k_targets - size - 1) / fact(k_targets)
                        * (delta(s | (1 << k)) - delta(s))
                })
                .sum()
        })
        .collect();
    let mut out = Vec::with_capacity(st.keys.len());
    for (q, f, _) in st.keys {
        let k = f
            .as_ref()
            .and_then(|f| st.targets.iter().position(|t| &t.name == f));
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
                if st.binary && rstd > 0.0 {
                    e_value((rstd + remaining) / rstd)
                } else {
                    f64::NAN
                }
            }
            _ => f64::NAN,
        };
        out.push(v);
    }
    st.shares.fill(&mut out);
    out
}

/// E-values: of the point estimate, and (as `ci_low`) of the confidence
/// limit of the remaining disparity closest to the null (1 when it covers 0);
/// `rstd` is the standardized reference mean.
pub(super) fn e_value_limits(estimates: &mut [crate::result::Estimate], rstd: f64) {
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
