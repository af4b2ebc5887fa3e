//! The super learner's weights: the convex combination α (α ≥ 0, Σ α = 1)
//! of the library's out-of-fold predictions Z (N × L) that minimises the
//! cross-validated loss (van der Laan, Polley & Hubbard 2007, §2.3):
//!
//! - continuous: the weighted squared error Σ w_i (y_i − z_i'α)² / Σ w_i, a
//!   quadratic ½ α'Hα − c'α with H = Z'WZ/Σw, c = Z'Wy/Σw (SuperLearner's
//!   `method.NNLS`, whose normalized NNLS is this problem's solution when
//!   the NNLS weights already sum to one, and the constrained solution in
//!   general);
//! - binary: the weighted log loss of p_i = z_i'α, minimised by sequential
//!   quadratic steps on its second-order expansion, each step searched back
//!   until the loss decreases (`method.CC_nloglik` of SuperLearner).
//!
//! Each quadratic over the simplex is solved exactly by enumerating the
//! supports S: the KKT system H_SS α_S + ν1 = c_S, 1'α_S = 1 is solved for
//! each, and the feasible (α_S ≥ 0) solution of least objective wins. With
//! L ≤ 12 learners that is at most 4,095 systems of size ≤ 13. H gets a
//! ridge of 10⁻¹⁰ × its mean diagonal so that every system is regular
//! even when two learners predict alike.

use crate::data::Family;

/// Most learners a library may hold (2^L supports are enumerated).
pub const MAX_LIBRARY: usize = 12;

/// Out-of-fold probabilities are kept in [CLIP, 1 − CLIP] for the log loss,
/// so every convex combination has a finite, smooth loss.
const CLIP: f64 = 1e-6;

/// SQP steps allowed for the log loss.
const MAX_STEPS: usize = 200;

/// argmin over the simplex of ½ α'Hα − c'α (H row-major L × L).
pub(crate) fn simplex_qp(h: &[f64], c: &[f64]) -> Vec<f64> {
    let l = c.len();
    let ridge = 1e-10 * (0..l).map(|k| h[k * l + k].abs()).sum::<f64>() / l as f64;
    let ridge = if ridge > 0.0 { ridge } else { 1e-12 };
    let objective = |a: &[f64]| -> f64 {
        let mut v = 0.0;
        for i in 0..l {
            let hi: f64 = (0..l).map(|j| h[i * l + j] * a[j]).sum();
            v += a[i] * (0.5 * (hi + ridge * a[i]) - c[i]);
        }
        v
    };
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mask in 1u32..(1u32 << l) {
        let support: Vec<usize> = (0..l).filter(|&k| mask & (1 << k) != 0).collect();
        let s = support.len();
        // [H_SS + ridge·I, 1; 1', 0] [α_S; ν] = [c_S; 1]
        let m = s + 1;
        let mut a = vec![0.0; m * m];
        let mut rhs = vec![0.0; m];
        for (r, &i) in support.iter().enumerate() {
            for (q, &j) in support.iter().enumerate() {
                a[r * m + q] = h[i * l + j] + if i == j { ridge } else { 0.0 };
            }
            a[r * m + s] = 1.0;
            a[s * m + r] = 1.0;
            rhs[r] = c[i];
        }
        rhs[s] = 1.0;
        let Some(sol) = solve(&mut a, &mut rhs, m) else {
            continue;
        };
        if sol[..s].iter().any(|v| *v < -1e-12) {
            continue;
        }
        let mut alpha = vec![0.0; l];
        for (r, &i) in support.iter().enumerate() {
            alpha[i] = sol[r].max(0.0);
        }
        let total: f64 = alpha.iter().sum();
        alpha.iter_mut().for_each(|v| *v /= total);
        let f = objective(&alpha);
        if best.as_ref().is_none_or(|(b, _)| f < *b) {
            best = Some((f, alpha));
        }
    }
    // A singleton support always solves, so `best` is set; equal weights otherwise.
    best.map_or_else(|| vec![1.0 / l as f64; l], |b| b.1)
}

/// Gaussian elimination with partial pivoting; None when singular.
fn solve(a: &mut [f64], b: &mut [f64], m: usize) -> Option<Vec<f64>> {
    let scale = a.iter().fold(0.0f64, |s, v| s.max(v.abs())).max(1e-300);
    for col in 0..m {
        let piv =
            (col..m).max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))?;
        if a[piv * m + col].abs() <= 1e-14 * scale {
            return None;
        }
        if piv != col {
            for k in 0..m {
                a.swap(col * m + k, piv * m + k);
            }
            b.swap(col, piv);
        }
        for r in col + 1..m {
            let f = a[r * m + col] / a[col * m + col];
            for k in col..m {
                a[r * m + k] -= f * a[col * m + k];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for r in (0..m).rev() {
        let s: f64 = (r + 1..m).map(|k| a[r * m + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * m + r];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The out-of-fold predictions of the library, column-major N × L.
pub(crate) struct Level1<'a> {
    pub z: &'a [f64],
    pub n: usize,
    pub l: usize,
    pub y: &'a [f64],
    pub w: &'a [f64],
}

impl Level1<'_> {
    fn col(&self, k: usize) -> &[f64] {
        &self.z[k * self.n..(k + 1) * self.n]
    }

    /// The super learner's weights for `family`.
    pub fn weights(&self, family: Family) -> Vec<f64> {
        match family {
            Family::Continuous => self.least_squares(),
            Family::Binary => self.log_loss_weights(),
        }
    }

    fn least_squares(&self) -> Vec<f64> {
        let (n, l) = (self.n, self.l);
        let sw: f64 = self.w.iter().sum();
        let mut h = vec![0.0; l * l];
        let mut c = vec![0.0; l];
        for a in 0..l {
            let za = self.col(a);
            c[a] = (0..n).map(|i| self.w[i] * za[i] * self.y[i]).sum::<f64>() / sw;
            for b in 0..=a {
                let zb = self.col(b);
                let v = (0..n).map(|i| self.w[i] * za[i] * zb[i]).sum::<f64>() / sw;
                h[a * l + b] = v;
                h[b * l + a] = v;
            }
        }
        simplex_qp(&h, &c)
    }

    /// The weighted log loss of z'α and, when asked, its gradient and Hessian.
    fn log_loss(&self, alpha: &[f64], derivatives: bool) -> (f64, Vec<f64>, Vec<f64>) {
        let (n, l) = (self.n, self.l);
        let sw: f64 = self.w.iter().sum();
        let mut f = 0.0;
        let mut g = vec![0.0; if derivatives { l } else { 0 }];
        let mut h = vec![0.0; if derivatives { l * l } else { 0 }];
        let mut zi = vec![0.0; l];
        for i in 0..n {
            for (k, z) in zi.iter_mut().enumerate() {
                *z = self.z[k * n + i].clamp(CLIP, 1.0 - CLIP);
            }
            let p: f64 = zi.iter().zip(alpha).map(|(z, a)| z * a).sum();
            let (y, w) = (self.y[i], self.w[i] / sw);
            f -= w * (y * p.ln() + (1.0 - y) * (1.0 - p).ln());
            if derivatives {
                let d1 = -(y / p - (1.0 - y) / (1.0 - p));
                let d2 = y / (p * p) + (1.0 - y) / ((1.0 - p) * (1.0 - p));
                for a in 0..l {
                    g[a] += w * d1 * zi[a];
                    for b in 0..l {
                        h[a * l + b] += w * d2 * zi[a] * zi[b];
                    }
                }
            }
        }
        (f, g, h)
    }

    fn log_loss_weights(&self) -> Vec<f64> {
        let l = self.l;
        let mut alpha = vec![1.0 / l as f64; l];
        let (mut f, _, _) = self.log_loss(&alpha, false);
        for _ in 0..MAX_STEPS {
            let (_, g, h) = self.log_loss(&alpha, true);
            // Minimise g'(α − α₀) + ½(α − α₀)'H(α − α₀): c = Hα₀ − g.
            let c: Vec<f64> = (0..l)
                .map(|a| (0..l).map(|b| h[a * l + b] * alpha[b]).sum::<f64>() - g[a])
                .collect();
            let target = simplex_qp(&h, &c);
            let mut step = 1.0;
            let mut accepted = None;
            while step > 1e-10 {
                let trial: Vec<f64> = alpha
                    .iter()
                    .zip(&target)
                    .map(|(a, t)| a + step * (t - a))
                    .collect();
                let (ft, _, _) = self.log_loss(&trial, false);
                if ft <= f {
                    accepted = Some((ft, trial));
                    break;
                }
                step *= 0.5;
            }
            let Some((ft, trial)) = accepted else { break };
            let done = f - ft <= 1e-13 * f.abs().max(1e-10);
            f = ft;
            alpha = trial;
            if done {
                break;
            }
        }
        alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qp_weights_lie_on_the_simplex_and_find_the_interior_optimum() {
        // Minimise ½‖α − (0.3, 0.7)‖²: c = (0.3, 0.7), H = I.
        let a = simplex_qp(&[1.0, 0.0, 0.0, 1.0], &[0.3, 0.7]);
        assert!((a[0] - 0.3).abs() < 1e-8 && (a[1] - 0.7).abs() < 1e-8);
        // Target outside the simplex: (2, −1) → vertex (1, 0).
        let a = simplex_qp(&[1.0, 0.0, 0.0, 1.0], &[2.0, -1.0]);
        assert!((a[0] - 1.0).abs() < 1e-12 && a[1] == 0.0);
    }

    #[test]
    fn identical_learners_do_not_break_the_weights() {
        let z = vec![0.2, 0.8, 0.3, 0.2, 0.8, 0.3];
        let y = [0.0, 1.0, 0.0];
        let w = [1.0; 3];
        let lv = Level1 {
            z: &z,
            n: 3,
            l: 2,
            y: &y,
            w: &w,
        };
        for fam in [Family::Binary, Family::Continuous] {
            let a = lv.weights(fam);
            assert!(a.iter().all(|v| *v >= 0.0));
            assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
}
