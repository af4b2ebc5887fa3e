//! The linear mixed model with one random intercept, fitted by maximum
//! likelihood from per-level sufficient statistics (no rows):
//!
//! y_i = x_iβ + u_l(i) + ε_i, u_l ~ N(0, λσ²), ε_i ~ N(0, σ²/w_i),
//!
//! the weights acting as frequency weights (a row of weight 2 is two rows), so
//! with unit weights this is `lme4::lmer(y ~ x + (1 | level), REML = FALSE)`
//! and [`crate::Glmm`]'s identity family.
//!
//! For level l with sums w_l = Σw, s_l = Σwx, S_l = Σwxxᵀ, t_l = Σwxy,
//! y_l = Σwy, q_l = Σwy² and c_l = λ/(1 + λ w_l), the marginal covariance is
//! V_l = σ²(W_l⁻¹ + λ11ᵀ), whose inverse is σ⁻²(W_l − c_l W_l11ᵀW_l) (Sherman–
//! Morrison), so every GLS quantity is a sum over levels:
//!
//! - A(λ) = Σ_l (S_l − c_l s_l s_lᵀ), b(λ) = Σ_l (t_l − c_l s_l y_l),
//!   Q(λ) = Σ_l (q_l − c_l y_l²), β̂ = A⁻¹b, r(λ) = Q − bᵀβ̂;
//! - the profiled deviance (σ̂² = r/N, N = Σw)
//!   D(λ) = Σ_l log(1 + λw_l) + N log(2πr/N) + N;
//! - its derivative, by the envelope theorem in β (e_l = y_l − s_lᵀβ̂),
//!   dD/dλ = Σ_l w_l/(1 + λw_l) − (N/r) Σ_l e_l²/(1 + λw_l)²;
//! - the conditional modes (BLUPs) û_l = c_l e_l, 0 for a level without rows,
//!   and V(β̂ | λ) = σ̂² A⁻¹ (Henderson 1975; Pinheiro & Bates 2000, §2.2).
//!
//! λ is found on t = log λ as the root of dD/dλ by argmin's Brent root finder
//! (a one-parameter variance-component problem, as STACK.md describes), the
//! bracket from a scan (cold) or around a previous optimum (warm). Each
//! candidate root is compared with the boundary λ = 0 (σ_u = 0, the pooled
//! least-squares fit), which wins when its deviance is no larger.
//!
//! **Copies.** A level can enter m_l times (a hospital drawn m times by the
//! cluster bootstrap is m hospitals with the same data): its terms in A, b, Q,
//! N and the log-determinant are multiplied by m_l, its own w_l and c_l are
//! not. A non-integer m_l weights the level's marginal likelihood, which is
//! what the cluster delta method differentiates.

use argmin::core::{CostFunction, Executor, State};
use argmin::solver::brent::BrentRoot;

use crate::error::ModelError;
use crate::linalg::{COLLINEARITY_TOL, ranked_inverse};

/// Per-level sums, level l at `data[l * stride..]` with stride 2k + k² + 3:
/// Σw, Σwx (k), Σwxxᵀ (k × k, row-major), Σwxy (k), Σwy, Σwy².
#[derive(Debug, Clone)]
pub struct LevelSums<'a> {
    /// Columns of x (the intercept among them).
    pub k: usize,
    /// The sums, levels one after another.
    pub data: &'a [f64],
    /// How many times each level enters (1 = once).
    pub copies: &'a [f64],
}

impl LevelSums<'_> {
    /// The stride of one level's sums for k columns.
    pub fn stride(k: usize) -> usize {
        2 * k + k * k + 3
    }

    fn levels(&self) -> usize {
        self.data.len() / Self::stride(self.k)
    }

    fn level(&self, l: usize) -> Level<'_> {
        let (k, s) = (self.k, Self::stride(self.k));
        let a = &self.data[l * s..(l + 1) * s];
        Level {
            w: a[0],
            x: &a[1..1 + k],
            xx: &a[1 + k..1 + k + k * k],
            xy: &a[1 + k + k * k..1 + 2 * k + k * k],
            y: a[1 + 2 * k + k * k],
            yy: a[2 + 2 * k + k * k],
            m: self.copies[l],
        }
    }
}

struct Level<'a> {
    w: f64,
    x: &'a [f64],
    xx: &'a [f64],
    xy: &'a [f64],
    y: f64,
    yy: f64,
    m: f64,
}

/// A fitted random-intercept model.
#[derive(Debug, Clone)]
pub struct RandomIntercept {
    /// β̂, parallel to the columns.
    pub coef: Vec<f64>,
    /// A⁻¹ (V(β̂ | λ) = σ̂² A⁻¹), row-major.
    pub bread: Vec<f64>,
    /// Conditional mode of each level (0 for a level without rows).
    pub modes: Vec<f64>,
    /// λ = σ_u²/σ².
    pub lambda: f64,
    /// log λ where λ > 0 (the warm start of a refit), else None.
    pub log_lambda: Option<f64>,
    /// Residual SD σ̂.
    pub sigma: f64,
    /// Random-intercept SD σ̂_u.
    pub sigma_u: f64,
    /// −2 log-likelihood at the optimum.
    pub deviance: f64,
    /// N = Σ m_l w_l.
    pub n: f64,
    /// Levels with rows (copies counted).
    pub levels: f64,
}

impl RandomIntercept {
    /// Whether the fit is on the boundary σ_u = 0.
    pub fn boundary(&self) -> bool {
        self.lambda == 0.0
    }
}

/// The profile at one λ.
struct Profile {
    coef: Vec<f64>,
    bread: Vec<f64>,
    r: f64,
    n: f64,
    deviance: f64,
    gradient: f64,
}

/// The bracket of the cold scan, in log λ, and its step.
const SCAN: (f64, f64, f64) = (-20.0, 16.0, 2.0);

/// The tolerance of the root in log λ.
const ROOT_TOL: f64 = 1e-11;

/// Evaluates the profile at λ (see the module doc).
fn profile(s: &LevelSums<'_>, lambda: f64, names: &[String]) -> Result<Profile, ModelError> {
    let k = s.k;
    let mut a = vec![0.0; k * k];
    let mut b = vec![0.0; k];
    let (mut q, mut n, mut logdet) = (0.0, 0.0, 0.0);
    for l in 0..s.levels() {
        let v = s.level(l);
        if v.w <= 0.0 || v.m == 0.0 {
            continue;
        }
        let c = lambda / (1.0 + lambda * v.w);
        for i in 0..k {
            b[i] += v.m * (v.xy[i] - c * v.x[i] * v.y);
            for j in 0..k {
                a[i * k + j] += v.m * (v.xx[i * k + j] - c * v.x[i] * v.x[j]);
            }
        }
        q += v.m * (v.yy - c * v.y * v.y);
        n += v.m * v.w;
        logdet += v.m * (lambda * v.w).ln_1p();
    }
    let ranked = ranked_inverse(&a, k, COLLINEARITY_TOL);
    if !ranked.dropped.is_empty() || n <= 0.0 {
        return Err(ModelError::Singular {
            rank: ranked.kept.len(),
            ncols: k,
            columns: ranked.dropped.iter().map(|&j| names[j].clone()).collect(),
        });
    }
    let coef: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| ranked.inverse[i * k + j] * b[j]).sum())
        .collect();
    let r = q - coef.iter().zip(&b).map(|(c, v)| c * v).sum::<f64>();
    if r.is_nan() || r <= 1e-12 * q.abs() {
        return Err(ModelError::Unidentified {
            what: "random-intercept model: the covariates fit the outcome exactly (no residual \
                   variance)"
                .into(),
        });
    }
    let (mut between, mut trace) = (0.0, 0.0);
    for l in 0..s.levels() {
        let v = s.level(l);
        if v.w <= 0.0 || v.m == 0.0 {
            continue;
        }
        let e = v.y - v.x.iter().zip(&coef).map(|(x, c)| x * c).sum::<f64>();
        let shrink = 1.0 / (1.0 + lambda * v.w);
        between += v.m * e * e * shrink * shrink;
        trace += v.m * v.w * shrink;
    }
    let deviance = logdet + n * (2.0 * std::f64::consts::PI * r / n).ln() + n;
    Ok(Profile {
        coef,
        bread: ranked.inverse,
        r,
        n,
        deviance,
        gradient: trace - n / r * between,
    })
}

/// A failure of the root finder as an error.
fn unsolved(why: &str) -> ModelError {
    ModelError::Unidentified {
        what: format!("random-intercept variance: the root finder failed ({why})"),
    }
}

/// dD/dλ at λ = e^t, argmin's cost function for the root.
struct Gradient<'a, 'b> {
    sums: &'a LevelSums<'b>,
    names: &'a [String],
}

impl CostFunction for Gradient<'_, '_> {
    type Param = f64;
    type Output = f64;

    fn cost(&self, t: &f64) -> Result<f64, argmin::core::Error> {
        Ok(profile(self.sums, t.exp(), self.names)?.gradient)
    }
}

/// The root of dD/dλ in [lo, hi] (log λ), where the gradient goes from
/// negative to positive.
fn root(g: &Gradient<'_, '_>, lo: f64, hi: f64) -> Result<f64, ModelError> {
    let solver = BrentRoot::new(lo, hi, ROOT_TOL);
    let problem = Gradient {
        sums: g.sums,
        names: g.names,
    };
    let res = Executor::new(problem, solver)
        .configure(|s| s.param(hi).max_iters(200))
        .run()
        .map_err(|e| unsolved(&e.to_string()))?;
    res.state()
        .get_best_param()
        .copied()
        .ok_or_else(|| unsolved("no root"))
}

/// Candidate interior minima: brackets where dD/dλ changes sign from − to +,
/// around `start` when given (widened up to four times), else from the scan.
fn brackets(g: &Gradient<'_, '_>, start: Option<f64>) -> Result<Vec<(f64, f64)>, ModelError> {
    let at = |t: f64| g.cost(&t).map_err(|e| unsolved(&e.to_string()));
    if let Some(t0) = start {
        // Half-widths 0.01, 0.16, 2.56: a delta-method perturbation moves the
        // root by far less than the first, a bootstrap replicate by less than
        // the second or third.
        let mut half = 0.01;
        for _ in 0..3 {
            let (lo, hi) = (t0 - half, t0 + half);
            if at(lo)? < 0.0 && at(hi)? > 0.0 {
                return Ok(vec![(lo, hi)]);
            }
            half *= 16.0;
        }
    }
    let (from, to, step) = SCAN;
    let mut out = Vec::new();
    let mut prev = (from, at(from)?);
    let mut t = from + step;
    while t <= to + 1e-9 {
        let gt = at(t)?;
        if prev.1 < 0.0 && gt > 0.0 {
            out.push((prev.0, t));
        }
        prev = (t, gt);
        t += step;
    }
    if prev.1 < 0.0 {
        return Err(ModelError::Unidentified {
            what: format!(
                "random-intercept variance: the likelihood still rises at σ_u/σ = {:.0} (the \
                 levels' means differ far more than their rows do); use fixed effects",
                (to / 2.0).exp()
            ),
        });
    }
    Ok(out)
}

/// Fits the random-intercept model from per-level sums; `start` is a previous
/// fit's log λ (a warm start for replicates), `names` the columns (for the
/// message of a singular fit).
pub fn fit_random_intercept(
    sums: &LevelSums<'_>,
    names: &[String],
    start: Option<f64>,
) -> Result<RandomIntercept, ModelError> {
    let g = Gradient { sums, names };
    let mut best = (0.0, profile(sums, 0.0, names)?);
    for (lo, hi) in brackets(&g, start)? {
        let t = root(&g, lo, hi)?;
        let p = profile(sums, t.exp(), names)?;
        if p.deviance < best.1.deviance {
            best = (t.exp(), p);
        }
    }
    let (lambda, p) = best;
    let sigma2 = p.r / p.n;
    let modes = (0..sums.levels())
        .map(|l| {
            let v = sums.level(l);
            if v.w <= 0.0 {
                return 0.0;
            }
            let e = v.y - v.x.iter().zip(&p.coef).map(|(x, c)| x * c).sum::<f64>();
            lambda / (1.0 + lambda * v.w) * e
        })
        .collect();
    let levels = (0..sums.levels())
        .map(|l| sums.level(l))
        .filter(|v| v.w > 0.0)
        .map(|v| v.m)
        .sum();
    Ok(RandomIntercept {
        coef: p.coef,
        bread: p.bread,
        modes,
        lambda,
        log_lambda: (lambda > 0.0).then(|| lambda.ln()),
        sigma: sigma2.sqrt(),
        sigma_u: (lambda * sigma2).sqrt(),
        deviance: p.deviance,
        n: p.n,
        levels,
    })
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, ShapeBuilder};

    use super::*;
    use crate::{Design, Glmm, GlmmFamily, Grouping};

    /// Rows in `levels` levels: y = 1 + 0.5 x + u_l + e, u_l ~ N(0, sd_u²),
    /// with integer weights 1–3; returns (y, x, weights, level).
    fn simulate(n: usize, levels: usize, sd_u: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<u32>) {
        let normal = |i: usize, salt: usize| {
            let a = ((i * 7919 + salt * 104_729) % 10_007) as f64 / 10_007.0 + 1e-6;
            let b = ((i * 6131 + salt * 15_485_863) % 9_973) as f64 / 9_973.0;
            (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        };
        let u: Vec<f64> = (0..levels).map(|l| sd_u * normal(l, 3)).collect();
        let (mut y, mut x, mut w, mut g) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let l = (i * 13 + i / 7) % levels;
            let xv = normal(i, 1);
            y.push(1.0 + 0.5 * xv + u[l] + normal(i, 2));
            x.push(xv);
            w.push(f64::from(1 + (i % 3) as u32));
            g.push(l as u32);
        }
        (y, x, w, g)
    }

    /// The level sums of (1, x) and y.
    fn sums(y: &[f64], x: &[f64], w: &[f64], g: &[u32], levels: usize) -> Vec<f64> {
        let k = 2;
        let s = LevelSums::stride(k);
        let mut d = vec![0.0; levels * s];
        for i in 0..y.len() {
            let a = &mut d[g[i] as usize * s..(g[i] as usize + 1) * s];
            let v = [1.0, x[i]];
            a[0] += w[i];
            for p in 0..k {
                a[1 + p] += w[i] * v[p];
                for q in 0..k {
                    a[1 + k + p * k + q] += w[i] * v[p] * v[q];
                }
                a[1 + k + k * k + p] += w[i] * v[p] * y[i];
            }
            a[1 + 2 * k + k * k] += w[i] * y[i];
            a[2 + 2 * k + k * k] += w[i] * y[i] * y[i];
        }
        d
    }

    fn names() -> Vec<String> {
        vec!["(Intercept)".into(), "x".into()]
    }

    #[test]
    fn moments_fit_equals_the_row_glmm_with_frequency_weights() {
        let (y, x, w, g) = simulate(3_000, 40, 0.6);
        let data = sums(&y, &x, &w, &g, 40);
        let copies = vec![1.0; 40];
        let s = LevelSums {
            k: 2,
            data: &data,
            copies: &copies,
        };
        let fit = fit_random_intercept(&s, &names(), None).expect("fit");
        let n = y.len();
        let mut cols = vec![1.0; n];
        cols.extend(&x);
        let design = Design {
            y: Array1::from(y.clone()),
            x: Array2::from_shape_vec((n, 2).f(), cols).expect("shape"),
            names: names(),
            y_name: "y".into(),
            weights: Some(Array1::from(w.clone())),
            cluster: None,
            n_clusters: 0,
            absorb: vec![],
        };
        let grouping = Grouping {
            name: "level",
            codes: &g,
            levels: 40,
        };
        let rows = Glmm::new(GlmmFamily::Identity)
            .fit(&design, grouping, None, None)
            .expect("glmm");
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-8);
        assert!(
            rel(fit.deviance, rows.deviance) < 1e-7,
            "{} {}",
            fit.deviance,
            rows.deviance
        );
        assert!(
            rel(fit.sigma_u, rows.intercept_sd) < 1e-3,
            "{} {}",
            fit.sigma_u,
            rows.intercept_sd
        );
        assert!(rel(fit.sigma, rows.residual_sd.expect("σ")) < 1e-4);
        for j in 0..2 {
            assert!(rel(fit.coef[j], rows.coef[j]) < 1e-4, "β{j}");
        }
        for l in 0..40 {
            assert!((fit.modes[l] - rows.modes[l][0]).abs() < 1e-3, "mode {l}");
        }
        // The optimum: the gradient vanishes and the deviance is smallest.
        let at = |lambda: f64| profile(&s, lambda, &names()).expect("profile");
        assert!(at(fit.lambda).gradient.abs() < 1e-6 * fit.n);
        for f in [0.9, 1.1] {
            assert!(at(fit.lambda * f).deviance > fit.deviance);
        }
        // A warm start lands on the same root.
        let warm = fit_random_intercept(&s, &names(), Some(fit.lambda.ln() + 0.3)).expect("warm");
        assert!(rel(warm.lambda, fit.lambda) < 1e-9);
    }

    #[test]
    fn a_level_entered_twice_is_two_levels_with_the_same_data() {
        let (y, x, w, g) = simulate(1_200, 15, 0.5);
        let data = sums(&y, &x, &w, &g, 15);
        let mut copies = vec![1.0; 15];
        copies[3] = 2.0;
        let twice = fit_random_intercept(
            &LevelSums {
                k: 2,
                data: &data,
                copies: &copies,
            },
            &names(),
            None,
        )
        .expect("copies");
        let stride = LevelSums::stride(2);
        let mut dup = data.clone();
        dup.extend_from_slice(&data[3 * stride..4 * stride]);
        let ones = vec![1.0; 16];
        let written = fit_random_intercept(
            &LevelSums {
                k: 2,
                data: &dup,
                copies: &ones,
            },
            &names(),
            None,
        )
        .expect("written out");
        assert!((twice.lambda - written.lambda).abs() < 1e-9 * written.lambda);
        assert!((twice.deviance - written.deviance).abs() < 1e-8);
        assert!((twice.modes[3] - written.modes[15]).abs() < 1e-10);
        assert_eq!(twice.levels, 16.0);
    }

    #[test]
    fn without_level_variation_the_fit_is_on_the_boundary_or_near_it() {
        let (y, x, w, g) = simulate(2_000, 30, 0.0);
        let data = sums(&y, &x, &w, &g, 30);
        let copies = vec![1.0; 30];
        let s = LevelSums {
            k: 2,
            data: &data,
            copies: &copies,
        };
        let fit = fit_random_intercept(&s, &names(), None).expect("fit");
        assert!(fit.sigma_u < 0.1 * fit.sigma, "σ_u {}", fit.sigma_u);
        let pooled = profile(&s, 0.0, &names()).expect("λ = 0");
        assert!(fit.deviance <= pooled.deviance + 1e-9);
        if fit.boundary() {
            assert_eq!(fit.coef, pooled.coef);
            assert!(fit.modes.iter().all(|m| *m == 0.0));
        }
    }

    #[test]
    fn an_exact_fit_is_an_error_not_a_panic() {
        let x: Vec<f64> = (0..50).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 2.0 + 3.0 * v).collect();
        let w = vec![1.0; 50];
        let g: Vec<u32> = (0..50).map(|i| i % 5).collect();
        let data = sums(&y, &x, &w, &g, 5);
        let copies = vec![1.0; 5];
        let s = LevelSums {
            k: 2,
            data: &data,
            copies: &copies,
        };
        let err = fit_random_intercept(&s, &names(), None).expect_err("exact");
        assert!(err.to_string().contains("exactly"), "{err}");
    }
}
