//! Feature binning for split search. Each column gets at most `max_bins`
//! bins: with that few distinct values, one bin per value and cut points at
//! the midpoints between consecutive values (so the splits are exactly the
//! CART splits); otherwise cut points at the midpoints after the empirical
//! quantiles k/max_bins (histogram split search, as LightGBM and
//! scikit-learn's `HistGradientBoosting`). A row's code is the number of cut
//! points below its value, so `code ≤ b` ⟺ `x ≤ cuts[b]`: a split found on
//! codes is applied to new rows by binning them with the same cut points
//! (exactly the split at the cut value).
//!
//! The codes are stored row-major (a row's p codes contiguous): the split
//! search reads the `mtry` features of a row it visits from one cache line
//! instead of `mtry` scattered columns.

use rayon::prelude::*;

use crate::data::Matrix;

/// The codes of every row (row-major, one byte per value) and the cut
/// points of every column.
#[derive(Debug, Clone)]
pub(crate) struct Binned {
    pub codes: Vec<u8>,
    pub p: usize,
    pub cuts: Vec<Vec<f64>>,
}

impl Binned {
    /// Bins every column of `x` (`max_bins` ≤ 256).
    pub fn new(x: &Matrix, max_bins: usize) -> Binned {
        let n = x.nrows();
        let per_col: Vec<(Vec<f64>, Vec<u8>)> = (0..x.ncols())
            .into_par_iter()
            .map(|j| {
                let col = x.column(j);
                let cuts = cuts(col, max_bins);
                let codes = col.iter().map(|v| code(&cuts, *v)).collect();
                (cuts, codes)
            })
            .collect();
        let p = x.ncols();
        let mut codes = vec![0u8; n * p];
        let mut all_cuts = Vec::with_capacity(p);
        for (j, (c, k)) in per_col.into_iter().enumerate() {
            all_cuts.push(c);
            for (i, v) in k.into_iter().enumerate() {
                codes[i * p + j] = v;
            }
        }
        Binned {
            codes,
            p,
            cuts: all_cuts,
        }
    }

    /// Bins of column j (cut points + 1).
    pub fn bins(&self, j: usize) -> usize {
        self.cuts[j].len() + 1
    }
}

/// Codes of the rows `first..first + m` of `x` with the cut points `cuts`
/// (row-major, as [`Binned`]).
pub(crate) fn code_rows(x: &Matrix, cuts: &[Vec<f64>], first: usize, m: usize) -> Vec<u8> {
    let p = x.ncols();
    let mut out = vec![0u8; m * p];
    for (j, c) in cuts.iter().enumerate() {
        for (k, v) in x.column(j)[first..first + m].iter().enumerate() {
            out[k * p + j] = code(c, *v);
        }
    }
    out
}

/// The number of cut points below v.
pub(crate) fn code(cuts: &[f64], v: f64) -> u8 {
    // At most 255 cut points, so the count fits a byte.
    cuts.partition_point(|c| *c < v) as u8
}

/// Cut points of one column (sorted, distinct, at most max_bins − 1).
fn cuts(col: &[f64], max_bins: usize) -> Vec<f64> {
    let mut sorted = col.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut distinct = sorted.clone();
    distinct.dedup();
    if distinct.len() <= max_bins {
        return distinct.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
    }
    let n = sorted.len();
    let mut out: Vec<f64> = Vec::with_capacity(max_bins - 1);
    for k in 1..max_bins {
        let t = sorted[(k * n / max_bins).min(n - 1)];
        // The next distinct value above t, if any.
        let pos = distinct.partition_point(|d| *d <= t);
        if let Some(next) = distinct.get(pos) {
            let cut = 0.5 * (t + next);
            if out.last().is_none_or(|l| *l < cut) {
                out.push(cut);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_values_get_one_bin_each() {
        let c = cuts(&[3.0, 1.0, 2.0, 1.0, 3.0], 255);
        assert_eq!(c, vec![1.5, 2.5]);
        assert_eq!(code(&c, 1.0), 0);
        assert_eq!(code(&c, 2.0), 1);
        assert_eq!(code(&c, 3.0), 2);
        assert_eq!(code(&c, 1.5), 0, "x ≤ cut goes left");
    }

    #[test]
    fn many_values_get_at_most_max_bins() {
        let col: Vec<f64> = (0..10_000).map(|i| f64::from(i).sqrt()).collect();
        let c = cuts(&col, 16);
        assert!(c.len() <= 15 && c.len() >= 14);
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        let constant = cuts(&[2.0; 10], 16);
        assert!(constant.is_empty());
    }
}
