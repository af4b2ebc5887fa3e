//! The fused row pass of the Newton fit of a binary model with at most one
//! absorbed fixed-effect set.
//!
//! One sweep over the rows, in fixed chunks (parallel with rayon and summed in
//! chunk order, so the result is the same for any thread count), computes at
//! the coefficients b and the per-level FE values α:
//!
//! - the linear predictor η_i = α_{l(i)} + x_iᵀb and the log-likelihood
//!   ℓ = Σ w_i ℓ_i(η_i);
//! - optionally the Newton system at η. With the working weights
//!   h_i = w_i (−∂²ℓ_i/∂η²) and the working response
//!   z_i = η_i + (∂ℓ_i/∂η)/(−∂²ℓ_i/∂η²): the cross-products X'HX and X'Hz and
//!   the per-level sums s_l = Σ_{i∈l} h_i x_i, W_l = Σ_{i∈l} h_i and
//!   t_l = Σ_{i∈l} h_i z_i, from which the within (FE-absorbed) system is
//!   X̃'HX̃ = X'HX − Σ_l s_l s_lᵀ/W_l and X̃'Hz̃ = X'Hz − Σ_l s_l t_l/W_l.
//!
//! Each block of rows of X is read from memory once per pass: η, the weights,
//! the weighted block HX (small enough to stay in cache), its Gram
//! contribution, X'Hz and the level sums are all computed from it.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::glm::Link;

/// Rows per chunk: the unit of parallel work and of the ordered sums.
const CHUNK: usize = 65_536;
/// Rows per block inside a chunk; the weighted block HX (k columns) stays in
/// the per-core cache.
const SUB: usize = 1_024;
/// Upper bound on the per-chunk level sums of one pass, in f64 values (64 MB):
/// with very many FE levels the chunks get longer (and fewer).
const LEVEL_BUDGET: usize = 8 << 20;

/// The rows of a binary model: kept regressors (column-major n × k), outcome,
/// weights and, with one absorbed FE set, the level codes and their number.
pub(crate) struct Rows<'a> {
    /// Link.
    pub link: Link,
    /// Regressors, column-major n × k.
    pub x: &'a [f64],
    /// Outcome.
    pub y: &'a [f64],
    /// Weights.
    pub w: &'a [f64],
    /// Level code of each row and number of levels (None without FE).
    pub fe: Option<(&'a [u32], usize)>,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub k: usize,
}

/// The Newton system at η (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct System {
    /// X̃'HX̃ (k × k, row-major, exactly symmetric).
    pub hess: Vec<f64>,
    /// X̃'Hz̃.
    pub rhs: Vec<f64>,
    /// s_l (levels × k, row-major); empty without FE.
    pub sl: Vec<f64>,
    /// W_l; empty without FE.
    pub wl: Vec<f64>,
    /// t_l; empty without FE.
    pub tl: Vec<f64>,
}

impl System {
    /// The FE values that solve the system's FE equations at b:
    /// α_l = (t_l − s_lᵀ b)/W_l (0 for a level without weight); empty without FE.
    pub fn level_alpha(&self, b: &[f64]) -> Vec<f64> {
        let k = b.len();
        (0..self.wl.len())
            .map(|l| {
                if self.wl[l] > 0.0 {
                    (self.tl[l] - (0..k).map(|j| self.sl[l * k + j] * b[j]).sum::<f64>())
                        / self.wl[l]
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// Sums of one chunk: ℓ, X'HX (column-major), X'Hz, s_l, W_l, t_l.
struct Partial {
    ll: f64,
    gram: Vec<f64>,
    cross: Vec<f64>,
    sl: Vec<f64>,
    wl: Vec<f64>,
    tl: Vec<f64>,
}

impl Rows<'_> {
    /// Writes η at (b, α) to `eta` (α: one value per FE level, ignored
    /// without FE) and returns ℓ(η) and, when `system` is set, the Newton
    /// system at η.
    pub fn pass(
        &self,
        b: &[f64],
        alpha: &[f64],
        eta: &mut [f64],
        system: bool,
    ) -> (f64, Option<System>) {
        let (link, y, w) = (self.link, self.y, self.w);
        self.run(b, alpha, eta, system, |i, e| {
            let (l, s, hh) = link.row(y[i], e);
            let hh = hh.max(1e-300);
            (w[i] * l, w[i] * hh, e + s / hh)
        })
    }

    /// X̃'HX̃ for the weights h (k × k, row-major): the Gram matrix of the
    /// regressors after removing each FE level's h-weighted mean.
    pub fn within_gram(&self, h: &[f64]) -> Vec<f64> {
        let mut eta = vec![0.0; self.n];
        self.run(&[], &[], &mut eta, true, |i, _| (0.0, h[i], 0.0))
            .1
            .map(|s| s.hess)
            .unwrap_or_default()
    }

    /// The pass, with `row(i, η_i)` giving row i's (weighted ℓ_i, h_i, z_i).
    fn run<F>(
        &self,
        b: &[f64],
        alpha: &[f64],
        eta: &mut [f64],
        system: bool,
        row: F,
    ) -> (f64, Option<System>)
    where
        F: Fn(usize, f64) -> (f64, f64, f64) + Sync,
    {
        let rows = self.chunk_rows();
        let parts: Vec<Partial> = eta
            .par_chunks_mut(rows)
            .enumerate()
            .map(|(c, e)| self.chunk(c * rows, e, b, alpha, system, &row))
            .collect();
        let ll = parts.iter().map(|p| p.ll).sum();
        (ll, system.then(|| self.system(&parts)))
    }

    /// Rows per chunk: `CHUNK`, or more when the level sums of `CHUNK`-row
    /// chunks would exceed `LEVEL_BUDGET`. Depends on n, k and the number of
    /// levels only (not on the threads).
    fn chunk_rows(&self) -> usize {
        let per_chunk = self.fe.map_or(0, |(_, levels)| levels * (self.k + 2));
        let chunks = self.n.div_ceil(CHUNK).max(1);
        let max_chunks = LEVEL_BUDGET
            .checked_div(per_chunk)
            .unwrap_or(usize::MAX)
            .max(1);
        if chunks <= max_chunks {
            CHUNK
        } else {
            self.n.div_ceil(max_chunks).max(1)
        }
    }

    /// One chunk's sums, rows `lo..lo + eta.len()`, by blocks of `SUB` rows.
    fn chunk<F>(
        &self,
        lo: usize,
        eta: &mut [f64],
        b: &[f64],
        alpha: &[f64],
        system: bool,
        row: &F,
    ) -> Partial
    where
        F: Fn(usize, f64) -> (f64, f64, f64),
    {
        let (n, k, x) = (self.n, self.k, self.x);
        let levels = if system {
            self.fe.map_or(0, |f| f.1)
        } else {
            0
        };
        let (gk, ck) = if system { (k * k, k) } else { (0, 0) };
        let mut part = Partial {
            ll: 0.0,
            gram: vec![0.0; gk],
            cross: vec![0.0; ck],
            sl: vec![0.0; levels * k],
            wl: vec![0.0; levels],
            tl: vec![0.0; levels],
        };
        let mut xw = vec![0.0; if system { SUB * k } else { 0 }];
        let mut h = [0.0; SUB];
        let mut z = [0.0; SUB];
        for (blk, e) in eta.chunks_mut(SUB).enumerate() {
            let s = lo + blk * SUB;
            let len = e.len();
            let codes = self.fe.map(|(c, _)| &c[s..s + len]);
            // η = α + Xb, adding the columns in order.
            match codes {
                Some(codes) if !alpha.is_empty() => {
                    for (v, &c) in e.iter_mut().zip(codes) {
                        *v = alpha[c as usize];
                    }
                }
                _ => e.fill(0.0),
            }
            for (j, &bj) in b.iter().enumerate() {
                for (v, xv) in e.iter_mut().zip(&x[j * n + s..j * n + s + len]) {
                    *v += xv * bj;
                }
            }
            for (r, &ev) in e.iter().enumerate() {
                let (l, hr, zr) = row(s + r, ev);
                part.ll += l;
                h[r] = hr;
                z[r] = zr;
            }
            if system {
                self.block_system(
                    &mut part,
                    &mut xw[..len * k],
                    s,
                    &h[..len],
                    &z[..len],
                    codes,
                );
            }
        }
        part
    }

    /// Adds rows s..s + len (len = h.len()) to the chunk's X'HX, X'Hz and
    /// level sums, with `xw` (len × k) as the scratch for the block HX.
    fn block_system(
        &self,
        part: &mut Partial,
        xw: &mut [f64],
        s: usize,
        h: &[f64],
        z: &[f64],
        codes: Option<&[u32]>,
    ) {
        let (n, k, x) = (self.n, self.k, self.x);
        let len = h.len();
        for j in 0..k {
            let col = &x[j * n + s..j * n + s + len];
            for ((d, xv), hv) in xw[j * len..(j + 1) * len].iter_mut().zip(col).zip(h) {
                *d = xv * hv;
            }
        }
        let xm = MatRef::from_column_major_slice_with_stride(&x[s..], len, k, n);
        let xwm = MatRef::from_column_major_slice(xw, len, k);
        let dst = MatMut::from_column_major_slice_mut(&mut part.gram, k, k);
        matmul(dst, Accum::Add, xwm.transpose(), xm, 1.0, Par::Seq);
        for (j, c) in part.cross.iter_mut().enumerate() {
            *c += xw[j * len..(j + 1) * len]
                .iter()
                .zip(z)
                .map(|(a, b)| a * b)
                .sum::<f64>();
        }
        if let Some(codes) = codes {
            for ((&c, hv), zv) in codes.iter().zip(h).zip(z) {
                part.wl[c as usize] += hv;
                part.tl[c as usize] += hv * zv;
            }
            for j in 0..k {
                let col = &xw[j * len..(j + 1) * len];
                for (&c, v) in codes.iter().zip(col) {
                    part.sl[c as usize * k + j] += v;
                }
            }
        }
    }

    /// The chunks' sums added in chunk order, made exactly symmetric, and the
    /// level sums absorbed: X̃'HX̃ = X'HX − Σ_l s_l s_lᵀ/W_l and
    /// X̃'Hz̃ = X'Hz − Σ_l s_l t_l/W_l.
    fn system(&self, parts: &[Partial]) -> System {
        let k = self.k;
        let add = |pick: fn(&Partial) -> &Vec<f64>| -> Vec<f64> {
            let mut total = vec![0.0; parts.first().map_or(0, |p| pick(p).len())];
            for p in parts {
                for (t, v) in total.iter_mut().zip(pick(p)) {
                    *t += v;
                }
            }
            total
        };
        let mut g = add(|p| &p.gram);
        let mut rhs = add(|p| &p.cross);
        let (sl, wl, tl) = (add(|p| &p.sl), add(|p| &p.wl), add(|p| &p.tl));
        for a in 0..k {
            for c in 0..a {
                let m = 0.5 * (g[a * k + c] + g[c * k + a]);
                g[a * k + c] = m;
                g[c * k + a] = m;
            }
        }
        for l in 0..wl.len() {
            if wl[l] <= 0.0 {
                continue;
            }
            let row = &sl[l * k..(l + 1) * k];
            for a in 0..k {
                for c in 0..k {
                    g[a * k + c] -= row[a] * row[c] / wl[l];
                }
                rhs[a] -= row[a] * tl[l] / wl[l];
            }
        }
        System {
            hess: g,
            rhs,
            sl,
            wl,
            tl,
        }
    }

    /// At the estimate: the score factors u_i = w_i ∂ℓ_i/∂η_i, the regressors
    /// as used in the scores (each FE level's h-weighted mean s_l/W_l from
    /// `system` removed; X itself without FE; column-major n × k), and
    /// max_j |Σ_i u_i x̃_ij|.
    pub fn scores(&self, eta: &[f64], system: &System) -> (Vec<f64>, Vec<f64>, f64) {
        let (n, k, x, y, w, link) = (self.n, self.k, self.x, self.y, self.w, self.link);
        let mut u = vec![0.0; n];
        u.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
            let lo = c * CHUNK;
            for (r, v) in chunk.iter_mut().enumerate() {
                *v = w[lo + r] * link.row(y[lo + r], eta[lo + r]).1;
            }
        });
        let inv_w: Vec<f64> = system
            .wl
            .iter()
            .map(|s| if *s > 0.0 { 1.0 / s } else { 0.0 })
            .collect();
        let mut xd = vec![0.0; n * k];
        let col_scores: Vec<f64> = xd
            .par_chunks_mut(n.max(1))
            .enumerate()
            .map(|(j, col)| {
                let src = &x[j * n..(j + 1) * n];
                match self.fe {
                    Some((codes, levels)) => {
                        let mean: Vec<f64> = (0..levels)
                            .map(|l| system.sl[l * k + j] * inv_w[l])
                            .collect();
                        for ((d, v), &c) in col.iter_mut().zip(src).zip(codes) {
                            *d = v - mean[c as usize];
                        }
                    }
                    None => col.copy_from_slice(src),
                }
                col.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>()
            })
            .collect();
        let max_score = col_scores.iter().fold(0.0f64, |m, s| m.max(s.abs()));
        (u, xd, max_score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pass over several chunks and partial blocks equals the direct sums:
    /// η, ℓ, and the within system from explicitly demeaned X and z.
    #[test]
    fn the_pass_matches_direct_sums_across_chunks() {
        let (n, k, levels) = (2 * CHUNK + 3 * SUB + 17, 3, 7);
        let x: Vec<f64> = (0..n * k)
            .map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let y: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i % 5 == 0))).collect();
        let w: Vec<f64> = (0..n).map(|i| 0.5 + (i % 3) as f64).collect();
        let codes: Vec<u32> = (0..n).map(|i| ((i * 13) % levels) as u32).collect();
        let rows = Rows {
            link: Link::Logit,
            x: &x,
            y: &y,
            w: &w,
            fe: Some((&codes, levels)),
            n,
            k,
        };
        let b = [0.3, -0.2, 0.1];
        let alpha: Vec<f64> = (0..levels).map(|l| -1.0 + 0.1 * l as f64).collect();
        let mut eta = vec![0.0; n];
        let (ll, system) = rows.pass(&b, &alpha, &mut eta, true);
        let system = system.unwrap();
        // Direct: η, ℓ, h, z, level means, demeaned X and z.
        let mut ll_direct = 0.0;
        let (mut h, mut z) = (vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            let e = alpha[codes[i] as usize] + (0..k).map(|j| x[j * n + i] * b[j]).sum::<f64>();
            assert!((eta[i] - e).abs() < 1e-12);
            let (l, s, hh) = Link::Logit.row(y[i], e);
            ll_direct += w[i] * l;
            h[i] = w[i] * hh;
            z[i] = e + s / hh;
        }
        assert!((ll - ll_direct).abs() < 1e-9 * ll_direct.abs());
        let mut sw = vec![0.0; levels];
        let mut sxz = vec![0.0; levels * (k + 1)];
        for i in 0..n {
            let l = codes[i] as usize;
            sw[l] += h[i];
            for j in 0..k {
                sxz[l * (k + 1) + j] += h[i] * x[j * n + i];
            }
            sxz[l * (k + 1) + k] += h[i] * z[i];
        }
        let dm = |j: usize, i: usize| -> f64 {
            let l = codes[i] as usize;
            let v = if j < k { x[j * n + i] } else { z[i] };
            v - sxz[l * (k + 1) + j] / sw[l]
        };
        for a in 0..k {
            for c in 0..=k {
                let direct: f64 = (0..n).map(|i| h[i] * dm(a, i) * dm(c, i)).sum();
                let got = if c < k {
                    system.hess[a * k + c]
                } else {
                    system.rhs[a]
                };
                assert!(
                    (got - direct).abs() < 1e-9 * direct.abs().max(1.0),
                    "({a}, {c}): {got} vs {direct}"
                );
            }
        }
        // The FE values solving the FE equations at b: Σ_{i∈l} h (z − α_l − x b) = 0.
        let a_new = system.level_alpha(&b);
        for l in 0..levels {
            let r: f64 = (0..n)
                .filter(|&i| codes[i] as usize == l)
                .map(|i| {
                    h[i] * (z[i] - a_new[l] - (0..k).map(|j| x[j * n + i] * b[j]).sum::<f64>())
                })
                .sum();
            assert!(r.abs() < 1e-8 * sw[l], "level {l}: {r}");
        }
    }
}
