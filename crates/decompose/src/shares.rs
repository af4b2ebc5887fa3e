//! Shares of a method's total: each factor block's part, and each named part
//! (what the blocks leave, the between- and within-hospital parts, the
//! indirect and direct effects), divided by the total.
//!
//! A share s = P/T is a statistic of the same sample as P and T, so the
//! methods append it to their other statistics and every inference path
//! carries it: the bootstrap takes the ratio in each replicate, and the delta
//! method differentiates it, V(s) = (V(P) − 2s·C(P,T) + s²·V(T))/T², with the
//! covariance of P and T included. Rows: `quantity = "share"`, with
//! `factor` = the block for a block's part, or `term` = the named part's
//! quantity. When the total's interval includes 0 the ratio is unstable and
//! its intervals are dropped, with a warning.

use crate::inference::Key;
use crate::result::{Estimate, SeMethod};

/// The quantity of share rows.
pub const SHARE: &str = "share";

/// Which rows a method's shares divide.
#[derive(Debug, Clone, Copy)]
pub struct ShareSpec {
    /// The total's quantity (its row has no factor and no term).
    pub total: &'static str,
    /// The quantity of the per-block parts (rows with a factor and no term).
    pub blocks: Option<&'static str>,
    /// Named parts (rows without factor and term).
    pub named: &'static [&'static str],
}

impl ShareSpec {
    /// The share keys for `keys`: one per block part present, then one per
    /// named part.
    pub fn keys(&self, keys: &[Key]) -> Vec<Key> {
        let mut out: Vec<Key> = Vec::new();
        if let Some(q) = self.blocks {
            for (kq, f, t) in keys {
                if kq == q && f.is_some() && t.is_none() {
                    out.push((SHARE.into(), f.clone(), None));
                }
            }
        }
        for q in self.named {
            out.push((SHARE.into(), None, Some((*q).to_string())));
        }
        out
    }

    /// The position of the part a share key divides, in `keys`.
    fn numerator(&self, keys: &[Key], share: &Key) -> Option<usize> {
        let (_, f, t) = share;
        keys.iter().position(|(q, kf, kt)| match (f, t) {
            (Some(_), None) => Some(q.as_str()) == self.blocks && kf == f && kt.is_none(),
            (None, Some(named)) => q == named && kf.is_none() && kt.is_none(),
            _ => false,
        })
    }

    /// For each key: Some((numerator, total)) positions when it is a share.
    fn ratios(&self, keys: &[Key]) -> Vec<Option<(usize, usize)>> {
        let total = keys
            .iter()
            .position(|(q, f, t)| q == self.total && f.is_none() && t.is_none());
        keys.iter()
            .map(|k| {
                if k.0 != SHARE {
                    return None;
                }
                Some((self.numerator(keys, k)?, total?))
            })
            .collect()
    }

    /// The positions of every share, its part and its total in `keys`,
    /// found once (a method fills its shares at every evaluation).
    pub fn positions(&self, keys: &[Key]) -> Shares {
        Shares(
            self.ratios(keys)
                .into_iter()
                .enumerate()
                .filter_map(|(i, r)| r.map(|(p, t)| (i, p, t)))
                .collect(),
        )
    }
}

/// The (share, part, total) positions of a method's keys.
#[derive(Debug, Clone, Default)]
pub struct Shares(Vec<(usize, usize, usize)>);

impl Shares {
    /// (share, part, total) positions.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.0.iter().copied()
    }

    /// Overwrites the share entries of `values` with part ÷ total (NaN when
    /// the total is 0).
    pub fn fill(&self, values: &mut [f64]) {
        for &(i, p, t) in &self.0 {
            values[i] = if values[t] == 0.0 {
                f64::NAN
            } else {
                values[p] / values[t]
            };
        }
    }
}

/// Drops the intervals of the share rows when the total's interval includes 0
/// (or the total has none), with a warning; the point shares stay.
pub fn unstable_shares(rows: &mut [Estimate], spec: &ShareSpec, warnings: &mut Vec<String>) {
    let Some(total) = rows
        .iter()
        .find(|e| e.quantity == spec.total && e.factor.is_none() && e.term.is_none())
    else {
        return;
    };
    let covers_zero = match (total.ci_low, total.ci_high) {
        (Some(lo), Some(hi)) => lo <= 0.0 && hi >= 0.0,
        _ => true,
    };
    let has_intervals = rows
        .iter()
        .any(|e| e.quantity == SHARE && e.se_method != SeMethod::None);
    if covers_zero && has_intervals {
        for e in rows.iter_mut().filter(|e| e.quantity == SHARE) {
            *e = e.clone().without_inference();
        }
        warnings.push(format!(
            "the shares have no intervals: the interval of `{}` includes 0, so a ratio to it is \
             unstable (shares can exceed 100% or change sign)",
            spec.total
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_divide_block_and_named_parts_by_the_total() {
        let spec = ShareSpec {
            total: "gap",
            blocks: Some("explained"),
            named: &["unexplained"],
        };
        let key = |q: &str, f: Option<&str>| -> Key { (q.into(), f.map(Into::into), None) };
        let mut keys = vec![
            key("gap", None),
            key("explained", None),
            key("explained", Some("a")),
            key("explained", Some("b")),
            key("unexplained", None),
        ];
        keys.extend(spec.keys(&keys));
        assert_eq!(keys.len(), 8);
        let shares = spec.positions(&keys);
        let mut v = vec![2.0, 1.5, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0];
        shares.fill(&mut v);
        assert_eq!(&v[5..], &[0.5, 0.25, 0.25]);
        v[0] = 0.0;
        shares.fill(&mut v);
        assert!(v[5].is_nan());
    }
}
