//! Weighted coordinate descent for one penalty (Friedman, Hastie & Tibshirani
//! 2010, §2.1–2.2 and §3 for the logistic case).
//!
//! On standardized columns x̃_j and normalized weights w̃ (Σ w̃ = 1), minimises
//!
//!   −Σ w̃_i ℓ_i(b₀ + x̃_i'b) + λ [ (1 − α)/2 ‖b‖² + α ‖b‖₁ ],
//!
//! with ℓ_i = −(y_i − η_i)²/2 (Gaussian) or y_i η_i − log(1 + e^{η_i})
//! (binomial). The coordinate update is
//!
//!   b_j ← S(Σ v_i x̃_ij r_i + b_j Σ v_i x̃_ij², λα) / (Σ v_i x̃_ij² + λ(1 − α)),
//!
//! S the soft-threshold, r the working residual, v the working weights
//! (v = w̃ for the Gaussian; v = w̃ p(1 − p) in each IRLS step of the
//! binomial, whose working response is η + (y − p)/(p(1 − p))). Cycles run
//! over the active set until it is stable, then once over all columns
//! (glmnet's strategy).

use crate::data::{Family, Matrix};

/// p(1 − p) is kept at least this in the binomial working weights (glmnet's
/// floor), so a nearly separated row does not stall the quadratic step.
const MIN_VARIANCE: f64 = 1e-5;

/// Step-halvings allowed when an IRLS step increases the objective.
const MAX_HALVINGS: usize = 30;

/// IRLS steps allowed for one penalty.
const MAX_IRLS: usize = 100;

/// The working columns: the non-constant columns of X, centred by their
/// weighted mean and (when standardizing) divided by their weighted standard
/// deviation √(Σ w̃ (x − m)²).
#[derive(Debug, Clone)]
pub(crate) struct Standardized {
    pub x: Vec<f64>,
    pub n: usize,
    /// Original index of each working column.
    pub cols: Vec<usize>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardized {
    /// Standardizes `x` with the normalized weights `w` (Σ w = 1).
    pub fn new(x: &Matrix, w: &[f64], standardize: bool) -> Standardized {
        let n = x.nrows();
        let mut out = Standardized {
            x: Vec::new(),
            n,
            cols: Vec::new(),
            mean: Vec::new(),
            scale: Vec::new(),
        };
        for j in 0..x.ncols() {
            let col = x.column(j);
            let m: f64 = col.iter().zip(w).map(|(v, w)| v * w).sum();
            let var: f64 = col.iter().zip(w).map(|(v, w)| w * (v - m) * (v - m)).sum();
            let mut live = col
                .iter()
                .zip(w)
                .filter(|(_, w)| **w > 0.0)
                .map(|(v, _)| *v);
            let first = live.next();
            let constant = live.all(|v| Some(v) == first);
            if constant || var <= 0.0 {
                continue;
            }
            let s = if standardize { var.sqrt() } else { 1.0 };
            out.x.extend(col.iter().map(|v| (v - m) / s));
            out.cols.push(j);
            out.mean.push(m);
            out.scale.push(s);
        }
        out
    }

    /// Working columns.
    pub fn p(&self) -> usize {
        self.cols.len()
    }

    /// Working column k.
    pub fn col(&self, k: usize) -> &[f64] {
        &self.x[k * self.n..(k + 1) * self.n]
    }

    /// b₀ + x̃'b for every row.
    pub fn eta(&self, c: &Coefs) -> Vec<f64> {
        let mut eta = vec![c.b0; self.n];
        for (k, &b) in c.b.iter().enumerate() {
            if b != 0.0 {
                for (e, x) in eta.iter_mut().zip(self.col(k)) {
                    *e += b * x;
                }
            }
        }
        eta
    }
}

/// Coefficients on the working (standardized) scale.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Coefs {
    pub b0: f64,
    pub b: Vec<f64>,
}

/// λ and α.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Penalty {
    pub lambda: f64,
    pub alpha: f64,
}

impl Penalty {
    fn value(&self, b: &[f64]) -> f64 {
        let l1: f64 = b.iter().map(|v| v.abs()).sum();
        let l2: f64 = b.iter().map(|v| v * v).sum();
        self.lambda * ((1.0 - self.alpha) / 2.0 * l2 + self.alpha * l1)
    }
}

/// One penalized problem: working columns, target, normalized weights.
pub(crate) struct Problem<'a> {
    pub s: &'a Standardized,
    pub y: &'a [f64],
    pub w: &'a [f64],
    pub family: Family,
    pub tol: f64,
    pub max_passes: usize,
}

fn soft(z: f64, g: f64) -> f64 {
    if z > g {
        z - g
    } else if z < -g {
        z + g
    } else {
        0.0
    }
}

impl Problem<'_> {
    /// The smallest λ at which every coefficient is 0:
    /// max_j |Σ w̃_i x̃_ij (y_i − ȳ)| / α (α floored at 10⁻³ for ridge, as glmnet).
    pub fn lambda_max(&self, alpha: f64) -> f64 {
        let ybar: f64 = self.y.iter().zip(self.w).map(|(y, w)| y * w).sum();
        let g = (0..self.s.p())
            .map(|k| {
                self.s
                    .col(k)
                    .iter()
                    .zip(self.y.iter().zip(self.w))
                    .map(|(x, (y, w))| w * x * (y - ybar))
                    .sum::<f64>()
                    .abs()
            })
            .fold(0.0, f64::max);
        g / alpha.max(1e-3)
    }

    /// The null model: b = 0, b₀ the weighted mean (or its logit).
    pub fn null(&self) -> Coefs {
        let ybar: f64 = self.y.iter().zip(self.w).map(|(y, w)| y * w).sum();
        let b0 = match self.family {
            Family::Continuous => ybar,
            Family::Binary => {
                let p = ybar.clamp(1e-10, 1.0 - 1e-10);
                (p / (1.0 - p)).ln()
            }
        };
        Coefs {
            b0,
            b: vec![0.0; self.s.p()],
        }
    }

    /// The penalized objective at `c`.
    #[cfg(test)]
    pub fn objective(&self, c: &Coefs, pen: Penalty) -> f64 {
        self.objective_at(&self.s.eta(c), c, pen)
    }

    /// The penalized objective at `c` whose linear predictor is `eta`.
    fn objective_at(&self, eta: &[f64], c: &Coefs, pen: Penalty) -> f64 {
        let mut loss = 0.0;
        for i in 0..self.s.n {
            let w = self.w[i];
            if w == 0.0 {
                continue;
            }
            loss += w * match self.family {
                Family::Continuous => 0.5 * (self.y[i] - eta[i]).powi(2),
                Family::Binary => log1pexp(eta[i]) - self.y[i] * eta[i],
            };
        }
        loss + pen.value(&c.b)
    }

    /// Minimises the objective from the warm start `c`. Returns false when
    /// the coordinate passes or IRLS steps ran out before convergence.
    pub fn solve(&self, c: &mut Coefs, pen: Penalty) -> bool {
        match self.family {
            Family::Continuous => {
                let eta = self.s.eta(c);
                let mut r: Vec<f64> = self.y.iter().zip(&eta).map(|(y, e)| y - e).collect();
                quadratic(self.s, self.w, &mut r, c, pen, self.tol, self.max_passes)
            }
            Family::Binary => self.irls(c, pen),
        }
    }

    /// The binomial case: IRLS steps, each a weighted quadratic problem
    /// solved by coordinate descent, halved while the objective increases.
    /// The linear predictor is carried from step to step: the quadratic
    /// solve moves the working residual r = z − η, so η_new = η + r₀ − r.
    fn irls(&self, c: &mut Coefs, pen: Penalty) -> bool {
        let n = self.s.n;
        let mut eta = self.s.eta(c);
        let mut obj = self.objective_at(&eta, c, pen);
        let mut v = vec![0.0; n];
        let mut r = vec![0.0; n];
        let mut moved = vec![0.0; n];
        for _ in 0..MAX_IRLS {
            for i in 0..n {
                let p = logistic(eta[i]);
                let var = (p * (1.0 - p)).max(MIN_VARIANCE);
                v[i] = self.w[i] * var;
                r[i] = (self.y[i] - p) / var;
                moved[i] = r[i];
            }
            let old = c.clone();
            let inner = quadratic(self.s, &v, &mut r, c, pen, self.tol, self.max_passes);
            // moved = r₀ − r = η_new − η_old.
            for (m, ri) in moved.iter_mut().zip(&r) {
                *m -= ri;
            }
            let mut trial: Vec<f64> = eta.iter().zip(&moved).map(|(e, m)| e + m).collect();
            let mut new_obj = self.objective_at(&trial, c, pen);
            let mut halvings = 0;
            while new_obj > obj + 1e-14 * obj.abs().max(1.0) && halvings < MAX_HALVINGS {
                c.b0 = 0.5 * (c.b0 + old.b0);
                for (b, o) in c.b.iter_mut().zip(&old.b) {
                    *b = 0.5 * (*b + o);
                }
                for (t, e) in trial.iter_mut().zip(&eta) {
                    *t = 0.5 * (*t + e);
                }
                new_obj = self.objective_at(&trial, c, pen);
                halvings += 1;
            }
            eta = trial;
            let change = (obj - new_obj).abs();
            obj = new_obj;
            if inner && change <= self.tol * obj.abs().max(1e-3) {
                return true;
            }
        }
        false
    }
}

/// log(1 + e^η) without overflow.
pub(crate) fn log1pexp(eta: f64) -> f64 {
    if eta > 0.0 {
        eta + (-eta).exp().ln_1p()
    } else {
        eta.exp().ln_1p()
    }
}

/// 1 / (1 + e^{−η}).
pub(crate) fn logistic(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

/// Coordinate descent on ½ Σ v_i (r_i)² + penalty, r the residual of the
/// working response, updated in place with the coefficients. Converged when
/// a full pass changes no coefficient by more than `tol` in the weighted
/// scale max_j (Σ v x̃_j²) Δb_j².
fn quadratic(
    s: &Standardized,
    v: &[f64],
    r: &mut [f64],
    c: &mut Coefs,
    pen: Penalty,
    tol: f64,
    max_passes: usize,
) -> bool {
    let p = s.p();
    let l1 = pen.lambda * pen.alpha;
    let l2 = pen.lambda * (1.0 - pen.alpha);
    let vsum: f64 = v.iter().sum();
    let xv: Vec<f64> = (0..p)
        .map(|k| s.col(k).iter().zip(v).map(|(x, v)| v * x * x).sum())
        .collect();
    let mut passes = 0;
    let mut full = true;
    loop {
        let mut max_change: f64 = 0.0;
        for k in 0..p {
            if !full && c.b[k] == 0.0 {
                continue;
            }
            let x = s.col(k);
            let g: f64 = x
                .iter()
                .zip(v.iter().zip(r.iter()))
                .map(|(x, (v, r))| v * x * r)
                .sum();
            let old = c.b[k];
            let new = soft(g + xv[k] * old, l1) / (xv[k] + l2);
            if new != old {
                let d = new - old;
                for (ri, xi) in r.iter_mut().zip(x) {
                    *ri -= d * xi;
                }
                c.b[k] = new;
                max_change = max_change.max(xv[k] * d * d);
            }
        }
        if vsum > 0.0 {
            let d0: f64 = v.iter().zip(r.iter()).map(|(v, r)| v * r).sum::<f64>() / vsum;
            if d0 != 0.0 {
                for ri in r.iter_mut() {
                    *ri -= d0;
                }
                c.b0 += d0;
                max_change = max_change.max(vsum * d0 * d0);
            }
        }
        passes += 1;
        if passes >= max_passes {
            return false;
        }
        if max_change <= tol {
            if full {
                return true;
            }
            // The active set settled: check it with a pass over every column.
            full = true;
        } else {
            // Keep cycling over the active set until it settles.
            full = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the solution no single coordinate move lowers the objective.
    #[test]
    fn solution_is_a_coordinatewise_minimum() {
        let n = 300;
        let cols: Vec<(String, Vec<f64>)> = (0..4)
            .map(|j| {
                let v = (0..n)
                    .map(|i| ((i * (j + 3) * 7919) % 101) as f64 / 50.0 - 1.0)
                    .collect();
                (format!("x{j}"), v)
            })
            .collect();
        let x = Matrix::from_columns(cols).expect("matrix");
        let y: Vec<f64> = (0..n)
            .map(|i| {
                f64::from(u8::from(
                    x.get(i, 0) + 0.5 * x.get(i, 1) > ((i % 7) as f64 - 3.0) / 4.0,
                ))
            })
            .collect();
        let w: Vec<f64> = (0..n)
            .map(|i| (1 + i % 3) as f64 / (2.0 * n as f64))
            .collect();
        let s = Standardized::new(&x, &w, true);
        for family in [Family::Binary, Family::Continuous] {
            let problem = Problem {
                s: &s,
                y: &y,
                w: &w,
                family,
                tol: 1e-14,
                max_passes: 100_000,
            };
            let pen = Penalty {
                lambda: 0.01,
                alpha: 0.7,
            };
            let mut c = problem.null();
            assert!(problem.solve(&mut c, pen));
            let f = problem.objective(&c, pen);
            for k in 0..=c.b.len() {
                for h in [-1e-4, 1e-4] {
                    let mut d = c.clone();
                    if k == c.b.len() {
                        d.b0 += h;
                    } else {
                        d.b[k] += h;
                    }
                    assert!(
                        problem.objective(&d, pen) >= f - 1e-13,
                        "{family:?} {k} {h}"
                    );
                }
            }
        }
    }
}
