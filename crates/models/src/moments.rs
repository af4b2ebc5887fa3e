//! Sufficient statistics for linear models (DESIGN.md, principle 3).
//!
//! Per cluster g: Σw, Σwx, Σwxxᵀ, Σwxy, Σwy, Σwy². From them come the OLS/WLS
//! fit b = (Σ_g Σwxxᵀ)⁻¹ Σ_g Σwxy, the CR1 meat Σ_g S_g S_gᵀ with
//! S_g = Σwxy_g − Σwxxᵀ_g b, and every cluster-bootstrap replicate: with cluster
//! multiplicities m_g, X'WX* = Σ_g m_g Σwxxᵀ_g, an O(G·p²) recombination
//! instead of O(N·p²).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::design::Design;
use crate::error::ModelError;
use crate::linalg::{COLLINEARITY_TOL, ranked_inverse};

/// The moments of one cluster (p = number of columns of X).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMoments {
    /// Σw.
    pub w: f64,
    /// Σwx (p).
    pub x: Vec<f64>,
    /// Σwxxᵀ (p × p, row-major).
    pub xx: Vec<f64>,
    /// Σwxy (p).
    pub xy: Vec<f64>,
    /// Σwy.
    pub y: f64,
    /// Σwy².
    pub yy: f64,
}

/// Moments of every cluster of a design.
#[derive(Debug, Clone)]
pub struct Moments {
    /// Number of columns.
    pub p: usize,
    /// Column names.
    pub names: Vec<String>,
    /// Rows behind each cluster.
    pub rows: Vec<usize>,
    /// Per-cluster moments, index = cluster code.
    pub clusters: Vec<ClusterMoments>,
}

/// A least-squares fit from moments.
#[derive(Debug, Clone)]
pub struct MomentFit {
    /// Coefficients.
    pub coef: Vec<f64>,
    /// (X'WX)⁻¹ (row-major).
    pub bread: Vec<f64>,
    /// Σ w e².
    pub rss: f64,
}

impl Moments {
    /// Accumulates the moments in one pass over the rows, grouped by cluster
    /// (a design without clusters is one cluster).
    pub fn from_design(design: &Design) -> Result<Moments, ModelError> {
        design.validate()?;
        let n = design.nobs();
        let (codes, g): (Vec<u32>, usize) = match &design.cluster {
            Some(c) => (c.clone(), design.n_clusters),
            None => (vec![0; n], 1),
        };
        let columns: Vec<&[f64]> = (0..design.ncols()).map(|j| design.column(j)).collect();
        let y = design.y.as_slice().unwrap_or(&[]);
        let w = design.weights.as_ref().and_then(|w| w.as_slice());
        Ok(Moments::from_columns(
            y,
            &columns,
            &design.names,
            w,
            &codes,
            g,
        ))
    }

    /// Moments of `columns` (each n rows) and `y` per code in `codes` (0..g);
    /// rows with a code ≥ g are skipped. With few codes the rows are streamed
    /// in fixed chunks (each chunk accumulates every code; chunks are summed in
    /// order, so the result does not depend on the thread count); with many,
    /// each code's rows are gathered and Σwxxᵀ is one sequential faer product.
    pub fn from_columns(
        y: &[f64],
        columns: &[&[f64]],
        names: &[String],
        weights: Option<&[f64]>,
        codes: &[u32],
        g: usize,
    ) -> Moments {
        let p = columns.len();
        if g * (p * p + 2 * p + 3) <= 1 << 20 {
            Moments::streamed(y, columns, names, weights, codes, g)
        } else {
            Moments::gathered(y, columns, names, weights, codes, g)
        }
    }

    fn streamed(
        y: &[f64],
        columns: &[&[f64]],
        names: &[String],
        weights: Option<&[f64]>,
        codes: &[u32],
        g: usize,
    ) -> Moments {
        const CHUNK: usize = 1 << 15;
        let p = columns.len();
        let stride = 3 + 2 * p + p * p;
        let n = y.len();
        let chunks: Vec<(Vec<f64>, Vec<usize>)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![0.0; g * stride];
                let mut rows = vec![0usize; g];
                let mut x = vec![0.0; p];
                for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                    let code = codes[i] as usize;
                    if code >= g {
                        continue;
                    }
                    let w = weights.map_or(1.0, |w| w[i]);
                    let yi = y[i];
                    for (j, col) in columns.iter().enumerate() {
                        x[j] = col[i];
                    }
                    rows[code] += 1;
                    let a = &mut acc[code * stride..(code + 1) * stride];
                    a[0] += w;
                    a[1] += w * yi;
                    a[2] += w * yi * yi;
                    let (sx, rest) = a[3..].split_at_mut(p);
                    let (sxy, sxx) = rest.split_at_mut(p);
                    for j in 0..p {
                        let wx = w * x[j];
                        sx[j] += wx;
                        sxy[j] += wx * yi;
                        // Upper triangle; mirrored below.
                        let row = &mut sxx[j * p..(j + 1) * p];
                        for k in j..p {
                            row[k] += wx * x[k];
                        }
                    }
                }
                (acc, rows)
            })
            .collect();
        let mut acc = vec![0.0; g * stride];
        let mut rows = vec![0usize; g];
        for (a, r) in chunks {
            for (t, v) in acc.iter_mut().zip(&a) {
                *t += v;
            }
            for (t, v) in rows.iter_mut().zip(&r) {
                *t += v;
            }
        }
        let clusters = (0..g)
            .map(|c| {
                let a = &acc[c * stride..(c + 1) * stride];
                let mut xx = a[3 + 2 * p..].to_vec();
                for j in 0..p {
                    for k in 0..j {
                        xx[j * p + k] = xx[k * p + j];
                    }
                }
                ClusterMoments {
                    w: a[0],
                    x: a[3..3 + p].to_vec(),
                    xx,
                    xy: a[3 + p..3 + 2 * p].to_vec(),
                    y: a[1],
                    yy: a[2],
                }
            })
            .collect();
        Moments {
            p,
            names: names.to_vec(),
            rows,
            clusters,
        }
    }

    fn gathered(
        y: &[f64],
        columns: &[&[f64]],
        names: &[String],
        weights: Option<&[f64]>,
        codes: &[u32],
        g: usize,
    ) -> Moments {
        let p = columns.len();
        // Counting sort of rows by code.
        let mut start = vec![0usize; g + 1];
        for &c in codes.iter().filter(|c| (**c as usize) < g) {
            start[c as usize + 1] += 1;
        }
        for i in 0..g {
            start[i + 1] += start[i];
        }
        let mut order = vec![0usize; start[g]];
        let mut next = start.clone();
        for (i, &c) in codes.iter().enumerate() {
            if (c as usize) < g {
                order[next[c as usize]] = i;
                next[c as usize] += 1;
            }
        }
        let clusters: Vec<ClusterMoments> = (0..g)
            .into_par_iter()
            .map(|c| {
                let rows = &order[start[c]..start[c + 1]];
                let m = rows.len();
                // Gather √w-scaled rows (column-major m × p) and √w·y.
                let mut xs = vec![0.0; m * p];
                let mut ys = vec![0.0; m];
                let mut sw = 0.0;
                let mut swx = vec![0.0; p];
                let mut swy = 0.0;
                let mut swyy = 0.0;
                for (r, &i) in rows.iter().enumerate() {
                    let w = weights.map_or(1.0, |w| w[i]);
                    let rw = w.sqrt();
                    let yi = y[i];
                    sw += w;
                    swy += w * yi;
                    swyy += w * yi * yi;
                    ys[r] = rw * yi;
                    for (j, col) in columns.iter().enumerate() {
                        let v = col[i];
                        xs[j * m + r] = rw * v;
                        swx[j] += w * v;
                    }
                }
                let mut xx = vec![0.0; p * p];
                let mut xy = vec![0.0; p];
                if m > 0 && p > 0 {
                    let xm = MatRef::from_column_major_slice(&xs, m, p);
                    matmul(
                        MatMut::from_column_major_slice_mut(&mut xx, p, p),
                        Accum::Replace,
                        xm.transpose(),
                        xm,
                        1.0,
                        Par::Seq,
                    );
                    for j in 0..p {
                        xy[j] = xs[j * m..(j + 1) * m]
                            .iter()
                            .zip(&ys)
                            .map(|(a, b)| a * b)
                            .sum();
                    }
                }
                ClusterMoments {
                    w: sw,
                    x: swx,
                    xx,
                    xy,
                    y: swy,
                    yy: swyy,
                }
            })
            .collect();
        Moments {
            p,
            names: names.to_vec(),
            rows: (0..g).map(|c| start[c + 1] - start[c]).collect(),
            clusters,
        }
    }

    /// Total moments with cluster multiplicities `m` (1 for every cluster when None).
    pub fn total(&self, m: Option<&[f64]>) -> ClusterMoments {
        let p = self.p;
        let mut t = ClusterMoments {
            w: 0.0,
            x: vec![0.0; p],
            xx: vec![0.0; p * p],
            xy: vec![0.0; p],
            y: 0.0,
            yy: 0.0,
        };
        for (g, c) in self.clusters.iter().enumerate() {
            let k = m.map_or(1.0, |m| m[g]);
            if k == 0.0 {
                continue;
            }
            t.w += k * c.w;
            t.y += k * c.y;
            t.yy += k * c.yy;
            for j in 0..p {
                t.x[j] += k * c.x[j];
                t.xy[j] += k * c.xy[j];
            }
            for (a, b) in t.xx.iter_mut().zip(&c.xx) {
                *a += k * b;
            }
        }
        t
    }

    /// OLS/WLS from the total moments (with multiplicities for a bootstrap
    /// replicate). Collinear designs are an error here: a replicate that loses
    /// rank is a failed replicate.
    pub fn fit(&self, m: Option<&[f64]>) -> Result<MomentFit, ModelError> {
        let t = self.total(m);
        let p = self.p;
        let ranked = ranked_inverse(&t.xx, p, COLLINEARITY_TOL);
        if !ranked.dropped.is_empty() {
            return Err(ModelError::Singular {
                rank: ranked.kept.len(),
                ncols: p,
                columns: ranked
                    .dropped
                    .iter()
                    .map(|&j| self.names[j].clone())
                    .collect(),
            });
        }
        let coef: Vec<f64> = (0..p)
            .map(|i| (0..p).map(|j| ranked.inverse[i * p + j] * t.xy[j]).sum())
            .collect();
        // Σw(y − xb)² = Σwy² − 2 b'Σwxy + b'Σwxxᵀ b
        let bxy: f64 = coef.iter().zip(&t.xy).map(|(b, v)| b * v).sum();
        let bxxb: f64 = (0..p)
            .map(|i| {
                (0..p)
                    .map(|j| coef[i] * t.xx[i * p + j] * coef[j])
                    .sum::<f64>()
            })
            .sum();
        Ok(MomentFit {
            coef,
            bread: ranked.inverse,
            rss: (t.yy - 2.0 * bxy + bxxb).max(0.0),
        })
    }

    /// Per-cluster score sums S_g = Σwxy_g − Σwxxᵀ_g b (g × p, row-major).
    pub fn cluster_scores(&self, coef: &[f64]) -> Vec<f64> {
        let p = self.p;
        let mut s = vec![0.0; self.clusters.len() * p];
        for (g, c) in self.clusters.iter().enumerate() {
            for a in 0..p {
                let xb: f64 = (0..p).map(|b| c.xx[a * p + b] * coef[b]).sum();
                s[g * p + a] = c.xy[a] - xb;
            }
        }
        s
    }

    /// The CR1 variance of a moment fit: G/(G−1)·(N−1)/(N−K) · B (Σ_g S_g S_gᵀ) B.
    pub fn cr1(&self, fit: &MomentFit) -> Result<Vec<f64>, ModelError> {
        let g = self.clusters.len();
        if g < 2 {
            return Err(ModelError::TooFewClusters { clusters: g });
        }
        let p = self.p;
        let s = self.cluster_scores(&fit.coef);
        let mut meat = vec![0.0; p * p];
        for c in 0..g {
            for a in 0..p {
                for b in 0..p {
                    meat[a * p + b] += s[c * p + a] * s[c * p + b];
                }
            }
        }
        let n: usize = self.rows.iter().sum();
        let (nf, gf) = (n as f64, g as f64);
        let factor = gf / (gf - 1.0) * (nf - 1.0) / (nf - p as f64);
        Ok(crate::linalg::sandwich(&fit.bread, p, p, &meat)
            .into_iter()
            .map(|v| v * factor)
            .collect())
    }
}
