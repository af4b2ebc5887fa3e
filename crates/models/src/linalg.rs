//! Dense kernels: Gram matrices X'WX and cross-products X'Wv by row blocks
//! (faer, sequential inside, rayon across blocks, summed in a fixed order so the
//! result is bit-identical for any thread count), and a rank-revealing Cholesky
//! for the small p × p systems.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Rows per block in the parallel Gram computation.
const BLOCK: usize = 32_768;

/// Lower Cholesky factor L (LL' = A) of a symmetric positive definite
/// row-major p × p matrix; `None` when A is not positive definite.
pub fn cholesky(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i * p + i] = s.sqrt();
            } else {
                l[i * p + j] = s / l[j * p + j];
            }
        }
    }
    Some(l)
}

/// X'WX (p × p, row-major) of a column-major N × p slice, with optional weights.
pub fn gram(x: &[f64], n: usize, p: usize, w: Option<&[f64]>) -> Vec<f64> {
    if n == 0 || p == 0 {
        return vec![0.0; p * p];
    }
    let blocks: Vec<(usize, usize)> = (0..n)
        .step_by(BLOCK)
        .map(|s| (s, BLOCK.min(n - s)))
        .collect();
    let partials: Vec<Vec<f64>> = blocks
        .par_iter()
        .map(|&(s, len)| {
            let xm = MatRef::from_column_major_slice(x, n, p).subrows(s, len);
            let mut out = vec![0.0; p * p];
            {
                let dst = MatMut::from_column_major_slice_mut(&mut out, p, p);
                match w {
                    None => matmul(dst, Accum::Replace, xm.transpose(), xm, 1.0, Par::Seq),
                    Some(w) => {
                        let mut xw = vec![0.0; len * p];
                        for j in 0..p {
                            let col = &x[j * n + s..j * n + s + len];
                            for (i, v) in col.iter().enumerate() {
                                xw[j * len + i] = v * w[s + i];
                            }
                        }
                        let xwm = MatRef::from_column_major_slice(&xw, len, p);
                        matmul(dst, Accum::Replace, xwm.transpose(), xm, 1.0, Par::Seq);
                    }
                }
            }
            out
        })
        .collect();
    let mut total = vec![0.0; p * p];
    for part in &partials {
        for (t, v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    // Exact symmetry (column-major p × p equals its row-major transpose).
    for i in 0..p {
        for j in 0..i {
            let m = 0.5 * (total[i * p + j] + total[j * p + i]);
            total[i * p + j] = m;
            total[j * p + i] = m;
        }
    }
    total
}

/// X'Wv for a column-major N × p slice.
pub fn cross(x: &[f64], n: usize, p: usize, w: Option<&[f64]>, v: &[f64]) -> Vec<f64> {
    (0..p)
        .into_par_iter()
        .map(|j| {
            let col = &x[j * n..(j + 1) * n];
            match w {
                None => col.iter().zip(v).map(|(a, b)| a * b).sum(),
                Some(w) => col.iter().zip(v).zip(w).map(|((a, b), c)| a * b * c).sum(),
            }
        })
        .collect()
}

/// Result of the rank-revealing Cholesky: which columns are kept, which are
/// collinear with earlier ones, and the inverse of the kept block.
#[derive(Debug, Clone)]
pub struct RankedInverse {
    /// Indices of the kept columns, in order.
    pub kept: Vec<usize>,
    /// Indices of columns dropped as collinear with earlier columns.
    pub dropped: Vec<usize>,
    /// Inverse of A restricted to `kept` (row-major, kept × kept).
    pub inverse: Vec<f64>,
}

/// Relative tolerance for declaring a column collinear: its residual variance
/// after projection on the earlier columns is below `tol` × its own.
pub const COLLINEARITY_TOL: f64 = 1e-10;

/// Cholesky of a symmetric positive semi-definite A (row-major p × p) that skips
/// columns whose pivot falls below `tol` times their diagonal, as R's `lm`
/// drops later collinear columns. Returns the inverse of the kept block.
pub fn ranked_inverse(a: &[f64], p: usize, tol: f64) -> RankedInverse {
    let mut kept: Vec<usize> = Vec::with_capacity(p);
    let mut dropped = Vec::new();
    // l stores rows of the Cholesky factor for kept columns, indexed by kept order.
    let mut l: Vec<Vec<f64>> = Vec::with_capacity(p);
    for j in 0..p {
        let diag = a[j * p + j];
        let mut row = Vec::with_capacity(kept.len() + 1);
        for (r, &k) in kept.iter().enumerate() {
            let mut s = a[j * p + k];
            for t in 0..r {
                s -= row[t] * l[r][t];
            }
            row.push(s / l[r][r]);
        }
        let pivot = diag - row.iter().map(|v| v * v).sum::<f64>();
        if diag.is_nan() || diag <= 0.0 || pivot.is_nan() || pivot <= tol * diag {
            dropped.push(j);
            continue;
        }
        row.push(pivot.sqrt());
        l.push(row);
        kept.push(j);
    }
    let q = kept.len();
    // inverse = L^{-T} L^{-1}: invert L (lower triangular) then multiply.
    let mut linv = vec![0.0; q * q];
    for i in 0..q {
        linv[i * q + i] = 1.0 / l[i][i];
        for j in 0..i {
            let mut s = 0.0;
            for k in j..i {
                s += l[i][k] * linv[k * q + j];
            }
            linv[i * q + j] = -s / l[i][i];
        }
    }
    let mut inverse = vec![0.0; q * q];
    for i in 0..q {
        for j in 0..=i {
            let mut s = 0.0;
            for k in i..q {
                s += linv[k * q + i] * linv[k * q + j];
            }
            inverse[i * q + j] = s;
            inverse[j * q + i] = s;
        }
    }
    RankedInverse {
        kept,
        dropped,
        inverse,
    }
}

/// y = A x for row-major A (r × c).
pub fn mat_vec(a: &[f64], r: usize, c: usize, x: &[f64]) -> Vec<f64> {
    (0..r)
        .map(|i| (0..c).map(|j| a[i * c + j] * x[j]).sum())
        .collect()
}

/// A B Aᵀ for row-major A (r × c) and symmetric B (c × c).
pub fn sandwich(a: &[f64], r: usize, c: usize, b: &[f64]) -> Vec<f64> {
    let mut ab = vec![0.0; r * c];
    for i in 0..r {
        for k in 0..c {
            let aik = a[i * c + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..c {
                ab[i * c + j] += aik * b[k * c + j];
            }
        }
    }
    let mut out = vec![0.0; r * r];
    for i in 0..r {
        for j in 0..=i {
            let s: f64 = (0..c).map(|k| ab[i * c + k] * a[j * c + k]).sum();
            out[i * r + j] = s;
            out[j * r + i] = s;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_matches_a_direct_sum_with_weights() {
        let n = 70_000;
        let p = 3;
        let x: Vec<f64> = (0..n * p)
            .map(|i| ((i * 7919) % 101) as f64 / 10.0)
            .collect();
        let w: Vec<f64> = (0..n).map(|i| 0.5 + (i % 3) as f64).collect();
        let g = gram(&x, n, p, Some(&w));
        for a in 0..p {
            for b in 0..p {
                let direct: f64 = (0..n).map(|i| w[i] * x[a * n + i] * x[b * n + i]).sum();
                assert!((g[a * p + b] - direct).abs() < 1e-9 * direct.abs().max(1.0));
            }
        }
    }

    #[test]
    fn ranked_inverse_drops_a_collinear_column_and_inverts_the_rest() {
        // Columns: 1, x, 2x (collinear), z.
        let n = 50;
        let mut x = Vec::new();
        let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let zs: Vec<f64> = (0..n).map(|i| ((i * i) % 7) as f64).collect();
        x.extend(std::iter::repeat_n(1.0, n));
        x.extend(&xs);
        x.extend(xs.iter().map(|v| 2.0 * v));
        x.extend(&zs);
        let g = gram(&x, n, 4, None);
        let r = ranked_inverse(&g, 4, COLLINEARITY_TOL);
        assert_eq!(r.kept, vec![0, 1, 3]);
        assert_eq!(r.dropped, vec![2]);
        // inverse × kept block = I
        let q = 3;
        for i in 0..q {
            for j in 0..q {
                let s: f64 = (0..q)
                    .map(|k| r.inverse[i * q + k] * g[r.kept[k] * 4 + r.kept[j]])
                    .sum();
                assert!((s - f64::from(u8::from(i == j))).abs() < 1e-9);
            }
        }
    }
}
