//! Absorbed fixed effects: weighted within-transformation.
//!
//! One FE set is removed exactly by subtracting weighted group means. Several
//! sets (hospital, surgeon, year) are removed by alternating projections,
//! v ← v − mean_f(v) for f = 1..F repeated to convergence, accelerated with the
//! Irons–Tuck (1969) extrapolation as in fixest (Bergé 2018).

use crate::design::FixedEffect;
use crate::error::ModelError;

/// Convergence tolerance of the alternating projections (max absolute change,
/// relative to the scale of the vector).
pub const DEMEAN_TOL: f64 = 1e-13;
/// Maximum sweeps of the alternating projections.
pub const DEMEAN_MAX_ITER: usize = 100_000;

/// Weighted demeaning by one or several fixed-effect sets.
#[derive(Debug, Clone)]
pub struct Demeaner<'a> {
    fes: &'a [FixedEffect],
    weights: Option<&'a [f64]>,
    /// 1 / Σw per level, per FE set.
    inv_weight: Vec<Vec<f64>>,
}

impl<'a> Demeaner<'a> {
    /// Prepares the level weights.
    pub fn new(fes: &'a [FixedEffect], weights: Option<&'a [f64]>) -> Demeaner<'a> {
        let inv_weight = fes
            .iter()
            .map(|fe| {
                let mut sw = vec![0.0; fe.levels];
                for (i, &c) in fe.codes.iter().enumerate() {
                    sw[c as usize] += weights.map_or(1.0, |w| w[i]);
                }
                sw.iter()
                    .map(|s| if *s > 0.0 { 1.0 / s } else { 0.0 })
                    .collect()
            })
            .collect();
        Demeaner {
            fes,
            weights,
            inv_weight,
        }
    }

    /// v minus its weighted mean within each level of FE set f, in place.
    fn project(&self, f: usize, v: &mut [f64], sums: &mut Vec<f64>) {
        let fe = &self.fes[f];
        sums.clear();
        sums.resize(fe.levels, 0.0);
        match self.weights {
            None => {
                for (x, &c) in v.iter().zip(&fe.codes) {
                    sums[c as usize] += x;
                }
            }
            Some(w) => {
                for ((x, &c), wi) in v.iter().zip(&fe.codes).zip(w) {
                    sums[c as usize] += x * wi;
                }
            }
        }
        for (s, iw) in sums.iter_mut().zip(&self.inv_weight[f]) {
            *s *= iw;
        }
        for (x, &c) in v.iter_mut().zip(&fe.codes) {
            *x -= sums[c as usize];
        }
    }

    fn sweep(&self, v: &mut [f64], sums: &mut Vec<f64>) {
        for f in 0..self.fes.len() {
            self.project(f, v, sums);
        }
    }

    /// The residual of v after projecting out every FE set, written to `out`.
    /// Returns the number of sweeps used (1 for a single FE set).
    pub fn demean_into(&self, v: &[f64], out: &mut [f64]) -> Result<usize, ModelError> {
        if self.fes.len() <= 1 {
            out.copy_from_slice(v);
            if self.fes.len() == 1 {
                let mut sums = Vec::new();
                self.project(0, out, &mut sums);
                return Ok(1);
            }
            return Ok(0);
        }
        let (x, iters) = self.demean(v)?;
        out.copy_from_slice(&x);
        Ok(iters)
    }

    /// The residual of v after projecting out every FE set. Returns the number of
    /// sweeps used (1 for a single FE set).
    pub fn demean(&self, v: &[f64]) -> Result<(Vec<f64>, usize), ModelError> {
        let mut x = v.to_vec();
        let mut sums = Vec::new();
        if self.fes.is_empty() {
            return Ok((x, 0));
        }
        if self.fes.len() == 1 {
            self.project(0, &mut x, &mut sums);
            return Ok((x, 1));
        }
        let scale = v.iter().fold(0.0f64, |m, a| m.max(a.abs())).max(1.0);
        let mut iter = 0;
        loop {
            // Two sweeps, then an Irons-Tuck extrapolation.
            let mut gx = x.clone();
            self.sweep(&mut gx, &mut sums);
            let mut ggx = gx.clone();
            self.sweep(&mut ggx, &mut sums);
            iter += 2;
            let change = gx
                .iter()
                .zip(&ggx)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            if change <= DEMEAN_TOL * scale {
                return Ok((ggx, iter));
            }
            let mut num = 0.0;
            let mut den = 0.0;
            for i in 0..x.len() {
                let d_gx = ggx[i] - gx[i];
                let d2 = d_gx - gx[i] + x[i];
                num += d_gx * d2;
                den += d2 * d2;
            }
            if den > 0.0 {
                let c = num / den;
                for i in 0..x.len() {
                    x[i] = ggx[i] - c * (ggx[i] - gx[i]);
                }
            } else {
                x = ggx;
            }
            if iter >= DEMEAN_MAX_ITER {
                return Err(ModelError::NotConverged {
                    iterations: iter,
                    max_score: change,
                });
            }
        }
    }
}

/// Demeans every column of a column-major N × p slice, columns in parallel
/// (each column's result does not depend on the thread count). Returns the
/// demeaned matrix and the maximum number of sweeps.
pub fn demean_columns(
    dm: &Demeaner<'_>,
    x: &[f64],
    n: usize,
    p: usize,
) -> Result<(Vec<f64>, usize), ModelError> {
    use rayon::prelude::*;
    let mut out = vec![0.0; n * p];
    if n == 0 {
        return Ok((out, 0));
    }
    let iters: Vec<Result<usize, ModelError>> = out
        .par_chunks_mut(n)
        .enumerate()
        .map(|(j, col)| dm.demean_into(&x[j * n..(j + 1) * n], col))
        .collect();
    let mut max = 0;
    for it in iters {
        max = max.max(it?);
    }
    Ok((out, max))
}

/// Rows to keep after iteratively dropping singletons (levels with one row in
/// any FE set), as fixest does; dropping may create new singletons in other sets.
pub fn non_singletons(fes: &[FixedEffect]) -> Vec<bool> {
    let n = fes.first().map_or(0, |f| f.codes.len());
    let mut keep = vec![true; n];
    loop {
        let mut changed = false;
        for fe in fes {
            let mut count = vec![0usize; fe.levels];
            for (i, &c) in fe.codes.iter().enumerate() {
                if keep[i] {
                    count[c as usize] += 1;
                }
            }
            for (i, &c) in fe.codes.iter().enumerate() {
                if keep[i] && count[c as usize] == 1 {
                    keep[i] = false;
                    changed = true;
                }
            }
        }
        if !changed {
            return keep;
        }
    }
}

/// Whether every level of `fe` lies in a single cluster (FE nested in clusters).
pub fn nested_in(fe: &FixedEffect, cluster: &[u32]) -> bool {
    let mut owner: Vec<Option<u32>> = vec![None; fe.levels];
    for (&c, &g) in fe.codes.iter().zip(cluster) {
        match owner[c as usize] {
            None => owner[c as usize] = Some(g),
            Some(o) if o != g => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_way_demeaning_leaves_no_mean_in_either_dimension() {
        let n = 600;
        let a = FixedEffect::new("a", (0..n).map(|i| (i % 7) as u32).collect());
        let b = FixedEffect::new("b", (0..n).map(|i| ((i * 13 / 5) % 11) as u32).collect());
        let w: Vec<f64> = (0..n).map(|i| 1.0 + (i % 4) as f64).collect();
        let v: Vec<f64> = (0..n)
            .map(|i| ((i * 31) % 17) as f64 + 0.1 * i as f64)
            .collect();
        let fes = [a.clone(), b.clone()];
        let (r, _) = Demeaner::new(&fes, Some(&w)).demean(&v).unwrap();
        for fe in [&a, &b] {
            let mut s = vec![0.0; fe.levels];
            for i in 0..n {
                s[fe.codes[i] as usize] += w[i] * r[i];
            }
            assert!(s.iter().all(|x| x.abs() < 1e-8), "{s:?}");
        }
    }

    #[test]
    fn singletons_are_dropped_iteratively() {
        // Level 2 of `a` is a singleton; removing it makes level 1 of `b` one too.
        let a = FixedEffect::new("a", vec![0, 0, 1, 1, 2, 0]);
        let b = FixedEffect::new("b", vec![0, 0, 0, 0, 1, 1]);
        let keep = non_singletons(&[a, b]);
        assert_eq!(keep, vec![true, true, true, true, false, false]);
    }
}
