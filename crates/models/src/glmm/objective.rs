//! The GLMM objective at fixed (Λ, σ, β): conditional modes by penalized IRLS
//! (Newton per group on the spherical random effects u_h), the Laplace or
//! adaptive Gauss–Hermite deviance, and its exact gradient in β.
//!
//! For group h with q random effects (intercept, and optionally a slope on a
//! 0/1 column s), z_i = (1, s_i), b_h = Λ u_h, η_i = x_iβ + z_i'Λu_h:
//!
//! g_h(u) = Σ_i ℓ_i(η_i) − ½|u|², û_h = argmax g_h,
//! H_h = I + Λ'(Σ_i f_i z_i z_i')Λ with f the Fisher (IRLS) weight,
//! Laplace: D = Σ_h [−2 g_h(û_h) + log det H_h] (Bates et al. 2015, lme4;
//! for 0/1 outcomes this is −2 log L).
//!
//! Adaptive Gauss–Hermite (q = 1, k nodes t_k, weights w_k for φ):
//! s = H^{−1/2}, A_h = s Σ_k w_k exp(t_k²/2 + g_h(û + s t_k)), D = −2 Σ_h log A_h
//! (Pinheiro & Bates 1995); k = 1 is the Laplace approximation.
//!
//! The β-gradient is exact: the envelope theorem for g(û) plus the derivative
//! of the log determinant (or of the node placement) through û(β), with
//! dû/dβ' = −K⁻¹Λ'Σ_i o_i z_i x_i' (K the observed-information analogue of H).
//! Every term is X'd for a per-row vector d, so one pass over X gives it.

use rayon::prelude::*;

use super::GlmmFamily;
use super::quadrature::Rule;
use crate::glm::Link;
use crate::linalg::cross;

#[cfg(test)]
thread_local! {
    /// Evaluations of the deviance on this thread, counted in tests (the
    /// optimizer's cost).
    pub(crate) static EVALUATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Rows per parallel block of the per-group sums.
const BLOCK: usize = 32_768;

/// Per-row values of the log-likelihood and its derivatives in η.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowValues {
    /// ℓ_i.
    pub l: f64,
    /// ∂ℓ/∂η.
    pub s: f64,
    /// −∂²ℓ/∂η² (observed weight).
    pub o: f64,
    /// Fisher (IRLS) weight f.
    pub f: f64,
    /// ∂f/∂η.
    pub df: f64,
}

impl GlmmFamily {
    /// ℓ' and −ℓ'' at η, without ℓ (one exponential for the logit).
    pub(crate) fn score_and_weight(self, y: f64, eta: f64, sigma: f64) -> (f64, f64) {
        match self {
            GlmmFamily::Logit => {
                let mu = 1.0 / (1.0 + (-eta).exp());
                (y - mu, mu * (1.0 - mu))
            }
            _ => {
                let r = self.row(y, eta, sigma);
                (r.s, r.o)
            }
        }
    }

    /// ℓ', −ℓ'', f and f' at η without ℓ (`l` is NaN for the logit, which
    /// then takes one exponential instead of two and a log1p).
    pub(crate) fn derivatives(self, y: f64, eta: f64, sigma: f64) -> RowValues {
        match self {
            GlmmFamily::Logit => {
                let mu = 1.0 / (1.0 + (-eta).exp());
                let o = mu * (1.0 - mu);
                RowValues {
                    l: f64::NAN,
                    s: y - mu,
                    o,
                    f: o,
                    df: o * (1.0 - 2.0 * mu),
                }
            }
            _ => self.row(y, eta, sigma),
        }
    }

    /// ℓ, ℓ', −ℓ'', f and f' at η; `sigma` is the residual SD (identity link).
    pub(crate) fn row(self, y: f64, eta: f64, sigma: f64) -> RowValues {
        match self {
            GlmmFamily::Logit => {
                let (l, s, o) = Link::Logit.row(y, eta);
                let mu = y - s;
                RowValues {
                    l,
                    s,
                    o,
                    f: o,
                    df: o * (1.0 - 2.0 * mu),
                }
            }
            GlmmFamily::Probit => {
                let (l, s, o) = Link::Probit.row(y, eta);
                let e = eta.clamp(-37.0, 37.0);
                let n = statrs::distribution::Normal::standard();
                use statrs::distribution::{Continuous, ContinuousCDF};
                let (cdf, sf, pdf) = (n.cdf(e), n.sf(e), n.pdf(e));
                let v = (cdf * sf).max(f64::MIN_POSITIVE);
                let f = pdf * pdf / v;
                let df = pdf * pdf * (-2.0 * e * v - pdf * (1.0 - 2.0 * cdf)) / (v * v);
                RowValues { l, s, o, f, df }
            }
            GlmmFamily::Identity => {
                let var = sigma * sigma;
                let r = y - eta;
                RowValues {
                    l: -0.5 * (2.0 * std::f64::consts::PI * var).ln() - 0.5 * r * r / var,
                    s: r / var,
                    o: 1.0 / var,
                    f: 1.0 / var,
                    df: 0.0,
                }
            }
        }
    }
}

/// The data of one fit, borrowed.
pub(crate) struct Problem<'a> {
    /// Outcome.
    pub y: &'a [f64],
    /// Fixed-effects design, column-major n × p.
    pub x: &'a [f64],
    /// Rows.
    pub n: usize,
    /// Fixed-effect columns.
    pub p: usize,
    /// Prior (frequency) weights.
    pub weights: Option<&'a [f64]>,
    /// Group code of each row, 0..groups.
    pub group: &'a [u32],
    /// Number of groups.
    pub groups: usize,
    /// The 0/1 column carrying a random slope, if any.
    pub slope: Option<&'a [f64]>,
    /// Family and link.
    pub family: GlmmFamily,
    /// Quadrature rule (one node = Laplace).
    pub rule: Rule,
}

/// Variance parameters: Λ's lower triangle (L11, L21, L22; the last two are 0
/// without a slope) and the residual SD (1 for binary outcomes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scales {
    /// Λ = [[L11, 0], [L21, L22]].
    pub lambda: [f64; 3],
    /// Residual SD of the identity link.
    pub sigma: f64,
}

impl Scales {
    /// σ_v = √(L21² + L22²) and ρ = L21/σ_v (0 when σ_v = 0), for a slope.
    pub fn slope_sd_and_correlation(&self) -> (f64, f64) {
        let [_, l21, l22] = self.lambda;
        let sv = (l21 * l21 + l22 * l22).sqrt();
        (sv, if sv > 0.0 { l21 / sv } else { 0.0 })
    }
}

/// A per-group 2 × 2 symmetric matrix [a, b; b, c] (q = 1 uses a only).
type Sym = [f64; 3];

/// What [`Problem::evaluate`] returns.
pub(crate) struct Evaluation {
    /// The deviance (Laplace or adaptive Gauss–Hermite).
    pub deviance: f64,
    /// Each group's term of the deviance.
    pub groups: Vec<f64>,
    /// Per group, H_h (Fisher) — for the conditional variances.
    pub h: Vec<Sym>,
    /// Per group, K_h (observed).
    pub k: Vec<Sym>,
    /// Whether every group's Newton iteration converged.
    pub modes_converged: bool,
}

impl Problem<'_> {
    /// Number of random effects per group.
    pub fn q(&self) -> usize {
        if self.slope.is_some() { 2 } else { 1 }
    }

    #[inline]
    pub(super) fn wt(&self, i: usize) -> f64 {
        self.weights.map_or(1.0, |w| w[i])
    }

    #[inline]
    fn z2(&self, i: usize) -> f64 {
        self.slope.map_or(0.0, |s| s[i])
    }

    /// Per-group sums of `m` quantities, in parallel over row blocks and added
    /// in a fixed order (bit-identical for any thread count).
    pub fn group_sums<F>(&self, m: usize, add: F) -> Vec<f64>
    where
        F: Fn(usize, &mut [f64]) + Sync,
    {
        let blocks: Vec<usize> = (0..self.n).step_by(BLOCK).collect();
        let parts: Vec<Vec<f64>> = blocks
            .par_iter()
            .map(|&start| {
                let mut acc = vec![0.0; self.groups * m];
                for i in start..(start + BLOCK).min(self.n) {
                    let g = self.group[i] as usize;
                    add(i, &mut acc[g * m..(g + 1) * m]);
                }
                acc
            })
            .collect();
        let mut total = vec![0.0; self.groups * m];
        for part in &parts {
            for (t, v) in total.iter_mut().zip(part) {
                *t += v;
            }
        }
        total
    }

    /// η_i = x_iβ, in parallel over row blocks.
    pub fn linear_predictor(&self, beta: &[f64]) -> Vec<f64> {
        linear_predictor(self.x, self.n, beta)
    }

    /// b_h'z_i for spherical u (row-major groups × q).
    #[inline]
    pub(super) fn re_term(&self, sc: &Scales, u: &[f64], i: usize) -> f64 {
        let g = self.group[i] as usize;
        let [l11, l21, l22] = sc.lambda;
        if self.slope.is_some() {
            let (u0, u1) = (u[2 * g], u[2 * g + 1]);
            l11 * u0 + self.z2(i) * (l21 * u0 + l22 * u1)
        } else {
            l11 * u[g]
        }
    }

    /// Λ'z_i as a 2-vector (second entry 0 without a slope).
    #[inline]
    fn lz(&self, sc: &Scales, i: usize) -> [f64; 2] {
        let [l11, l21, l22] = sc.lambda;
        let z = self.z2(i);
        [l11 + l21 * z, l22 * z]
    }

    /// Conditional modes at (Λ, β) by Newton per group with step-halving,
    /// warm-started from `u`; returns the per-group objective g_h(û), the
    /// matrices K_h and H_h, and whether every group converged.
    fn modes(
        &self,
        sc: &Scales,
        off: &[f64],
        u: &mut [f64],
    ) -> (Vec<f64>, Vec<Sym>, Vec<Sym>, bool) {
        let q = self.q();
        // Newton per group on the scores alone (ℓ itself, a log1p per row,
        // only once at the end); a step whose Newton decrement grows is halved.
        // For the logit the loop stops at a decrement of 1e-8 (relative) and
        // the pass that computes g_h, K_h and H_h takes the last step itself
        // (see `modes_last_logit`); otherwise at 1e-14, and that pass follows.
        let logit = self.family == GlmmFamily::Logit;
        let mut stop = if logit { 1e-8 } else { 1e-14 };
        let mut prev_dec = vec![f64::INFINITY; self.groups];
        let mut prev_u = u.to_vec();
        let mut converged = false;
        for _ in 0..60 {
            // Per group: Σ s Λ'z (2), Σ o (Λ'z)(Λ'z)' (3).
            let sums = self.group_sums(5, |i, acc| {
                let eta = off[i] + self.re_term(sc, u, i);
                let (s, o) = self.family.score_and_weight(self.y[i], eta, sc.sigma);
                let w = self.wt(i);
                let lz = self.lz(sc, i);
                acc[0] += w * s * lz[0];
                acc[1] += w * s * lz[1];
                acc[2] += w * o * lz[0] * lz[0];
                acc[3] += w * o * lz[0] * lz[1];
                acc[4] += w * o * lz[1] * lz[1];
            });
            let mut done = true;
            for g in 0..self.groups {
                let s = &sums[g * 5..(g + 1) * 5];
                let ug = &mut u[g * q..(g + 1) * q];
                let (_, step, decrement) = newton_step(q, [s[0], s[1]], [s[2], s[3], s[4]], ug);
                if !decrement.is_finite() || decrement > 4.0 * prev_dec[g] {
                    // The last step went too far: halve it.
                    for (a, b) in ug.iter_mut().zip(&prev_u[g * q..(g + 1) * q]) {
                        *a = 0.5 * (*a + b);
                    }
                    done = false;
                    continue;
                }
                // A step whose decrement is below 1e-14 is taken as the last
                // one: Newton's quadratic convergence leaves an error of the
                // order of its square after it.
                let scale = 1.0 + s[2] + s[4];
                if decrement > 1e-22 * scale {
                    done &= decrement <= stop * scale;
                    prev_dec[g] = decrement;
                    prev_u[g * q..(g + 1) * q].copy_from_slice(ug);
                    for (a, d) in ug.iter_mut().zip(step) {
                        *a += d;
                    }
                }
            }
            if done && logit && stop > 1e-14 {
                if let Some((objs, ks, hs)) = self.modes_last_logit(sc, off, u) {
                    return (objs, ks, hs, true);
                }
                // Not yet quadratic: the step was taken, iterate to 1e-14.
                stop = 1e-14;
                continue;
            }
            if done {
                converged = true;
                break;
            }
        }
        let (objs, ks, hs, _) = self.modes_once(sc, off, u);
        (objs, ks, hs, converged)
    }

    /// The logit's last pass: at u (decrement below 1e-8 at the previous
    /// pass) ℓ, the scores, O = Σ o (Λ'z)(Λ'z)' and T = Σ f' (Λ'z)⊗(Λ'z)⊗(Λ'z)
    /// (the logit's observed and Fisher weights coincide, so K = H)
    /// per group, then the last Newton step δ = K⁻¹(S − u) with decrement
    /// λ = (S − u)'δ, and at u + δ:
    /// g_h = ℓ − ½|u|² + ½λ (exact to O(|δ|³)), K_h = H_h = I + O + Σ_c T_··c δ_c
    /// (to O(|δ|²)); u is moved to u + δ. None (u still moved) when some
    /// group's λ is above 1e-14 of its scale, i.e. Newton was not yet in its
    /// quadratic phase.
    fn modes_last_logit(
        &self,
        sc: &Scales,
        off: &[f64],
        u: &mut [f64],
    ) -> Option<(Vec<f64>, Vec<Sym>, Vec<Sym>)> {
        let q = self.q();
        let sums = self.group_sums(10, |i, acc| {
            let r = self
                .family
                .row(self.y[i], off[i] + self.re_term(sc, u, i), sc.sigma);
            let w = self.wt(i);
            let [a, b] = self.lz(sc, i);
            acc[0] += w * r.l;
            acc[1] += w * r.s * a;
            acc[2] += w * r.s * b;
            acc[3] += w * r.o * a * a;
            acc[4] += w * r.o * a * b;
            acc[5] += w * r.o * b * b;
            let t = w * r.df;
            acc[6] += t * a * a * a;
            acc[7] += t * a * a * b;
            acc[8] += t * a * b * b;
            acc[9] += t * b * b * b;
        });
        let mut quadratic = true;
        let mut objs = Vec::with_capacity(self.groups);
        let mut hs = Vec::with_capacity(self.groups);
        for g in 0..self.groups {
            let s = &sums[g * 10..(g + 1) * 10];
            let ug = &mut u[g * q..(g + 1) * q];
            let (k, d, decrement) = newton_step(q, [s[1], s[2]], [s[3], s[4], s[5]], ug);
            quadratic &= decrement.is_finite() && decrement <= 1e-14 * (1.0 + s[3] + s[5]);
            let uu: f64 = ug.iter().map(|v| v * v).sum();
            objs.push(s[0] - 0.5 * uu + 0.5 * decrement);
            // ∂O/∂u along δ: Σ_c T_abc δ_c.
            hs.push([
                k[0] + s[6] * d[0] + s[7] * d[1],
                k[1] + s[7] * d[0] + s[8] * d[1],
                k[2] + s[8] * d[0] + s[9] * d[1],
            ]);
            for (a, step) in ug.iter_mut().zip(d) {
                *a += step;
            }
        }
        quadratic.then(|| (objs, hs.clone(), hs))
    }

    /// g_h, K_h and H_h at the current u (after the Newton iterations).
    fn modes_once(
        &self,
        sc: &Scales,
        off: &[f64],
        u: &mut [f64],
    ) -> (Vec<f64>, Vec<Sym>, Vec<Sym>, bool) {
        let mut objs = Vec::with_capacity(self.groups);
        let mut ks = Vec::with_capacity(self.groups);
        let mut hs = Vec::with_capacity(self.groups);
        let sums = self.group_sums(7, |i, acc| {
            let r = self
                .family
                .row(self.y[i], off[i] + self.re_term(sc, u, i), sc.sigma);
            let w = self.wt(i);
            let lz = self.lz(sc, i);
            acc[0] += w * r.l;
            acc[1] += w * r.o * lz[0] * lz[0];
            acc[2] += w * r.o * lz[0] * lz[1];
            acc[3] += w * r.o * lz[1] * lz[1];
            acc[4] += w * r.f * lz[0] * lz[0];
            acc[5] += w * r.f * lz[0] * lz[1];
            acc[6] += w * r.f * lz[1] * lz[1];
        });
        let q = self.q();
        for g in 0..self.groups {
            let s = &sums[g * 7..(g + 1) * 7];
            let uu: f64 = u[g * q..(g + 1) * q].iter().map(|v| v * v).sum();
            objs.push(s[0] - 0.5 * uu);
            ks.push([1.0 + s[1], s[2], 1.0 + s[3]]);
            hs.push([1.0 + s[4], s[5], 1.0 + s[6]]);
        }
        (objs, ks, hs, false)
    }

    /// The deviance at (Λ, σ, β) with `off` = Xβ; the modes in `u` are updated.
    pub fn evaluate(&self, sc: &Scales, off: &[f64], u: &mut [f64]) -> Evaluation {
        self.evaluate_from(sc, off, u, false)
    }

    /// [`Problem::evaluate`] from modes `u` predicted to O(h²) (extrapolated
    /// from evaluations at nearby points, or converged at this point): for
    /// the logit the Newton passes are skipped when the last pass finds the
    /// decrement already below 1e-14 (see `modes_last_logit`); otherwise
    /// that pass was one Newton step and the iteration goes on.
    pub fn evaluate_predicted(&self, sc: &Scales, off: &[f64], u: &mut [f64]) -> Evaluation {
        self.evaluate_from(sc, off, u, true)
    }

    fn evaluate_from(
        &self,
        sc: &Scales,
        off: &[f64],
        u: &mut [f64],
        predicted: bool,
    ) -> Evaluation {
        #[cfg(test)]
        EVALUATIONS.with(|c| c.set(c.get() + 1));
        let last = (predicted && self.family == GlmmFamily::Logit)
            .then(|| self.modes_last_logit(sc, off, u))
            .flatten();
        let (objs, k, h, modes_converged) = match last {
            Some((objs, k, h)) => (objs, k, h, true),
            None => self.modes(sc, off, u),
        };
        let q = self.q();
        let groups = if self.rule.t.len() > 1 && q == 1 {
            self.quadrature_terms(sc, off, u, &h, None)
        } else {
            objs.iter()
                .zip(&h)
                .map(|(o, hh)| -2.0 * o + log_det(hh, q))
                .collect()
        };
        Evaluation {
            deviance: groups.iter().sum(),
            groups,
            h,
            k,
            modes_converged,
        }
    }

    /// ∂D/∂β at the modes of a previous [`Problem::evaluate`] (same Λ, β).
    pub fn gradient(&self, sc: &Scales, off: &[f64], u: &[f64], ev: &Evaluation) -> Vec<f64> {
        cross(
            self.x,
            self.n,
            self.p,
            None,
            &self.gradient_rows(sc, off, u, ev),
        )
    }

    /// Each group's share of ∂D/∂β (groups × p, row-major).
    pub fn group_gradients(
        &self,
        sc: &Scales,
        off: &[f64],
        u: &[f64],
        ev: &Evaluation,
    ) -> Vec<f64> {
        let d = self.gradient_rows(sc, off, u, ev);
        let p = self.p;
        self.group_sums(p, |i, acc| {
            for (j, a) in acc.iter_mut().enumerate() {
                *a += self.x[j * self.n + i] * d[i];
            }
        })
    }

    /// The per-row d with ∂D/∂β = X'd.
    fn gradient_rows(&self, sc: &Scales, off: &[f64], u: &[f64], ev: &Evaluation) -> Vec<f64> {
        if self.rule.t.len() > 1 && self.q() == 1 {
            let mut d = vec![0.0; self.n];
            self.quadrature_terms(sc, off, u, &ev.h, Some((&ev.k, &mut d)));
            d
        } else {
            self.laplace_row_terms(sc, off, u, ev)
        }
    }

    /// d_i with ∂D/∂β = X'd for the Laplace deviance (any q):
    /// d_i = −2ℓ'_i + a_i − o_i e_h'z_i, a_i = f'_i z_i'ΛH⁻¹Λ'z_i,
    /// e_h = ΛK⁻¹Λ'Σ_i a_i z_i.
    fn laplace_row_terms(&self, sc: &Scales, off: &[f64], u: &[f64], ev: &Evaluation) -> Vec<f64> {
        let q = self.q();
        let hinv: Vec<Sym> = ev.h.iter().map(|h| inverse(h, q)).collect();
        let a_of = |i: usize, df: f64| {
            let lz = self.lz(sc, i);
            let hi = &hinv[self.group[i] as usize];
            df * (hi[0] * lz[0] * lz[0] + 2.0 * hi[1] * lz[0] * lz[1] + hi[2] * lz[1] * lz[1])
        };
        // ℓ', −ℓ'' and f' per row once (one exponential each for the logit).
        let mut rows = vec![[0.0; 3]; self.n];
        rows.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, chunk)| {
                for (t, r) in chunk.iter_mut().enumerate() {
                    let i = b * BLOCK + t;
                    let rv = self.family.derivatives(
                        self.y[i],
                        off[i] + self.re_term(sc, u, i),
                        sc.sigma,
                    );
                    *r = [rv.s, rv.o, rv.df];
                }
            });
        let r_sums = self.group_sums(2, |i, acc| {
            let a = self.wt(i) * a_of(i, rows[i][2]);
            let lz = self.lz(sc, i);
            acc[0] += a * lz[0];
            acc[1] += a * lz[1];
        });
        // e_h'z_i = (Λ'z_i)'K⁻¹ r_h.
        let kr: Vec<[f64; 2]> = (0..self.groups)
            .map(|g| solve(&ev.k[g], q, [r_sums[2 * g], r_sums[2 * g + 1]]))
            .collect();
        let mut d = vec![0.0; self.n];
        d.par_chunks_mut(BLOCK).enumerate().for_each(|(b, chunk)| {
            for (t, di) in chunk.iter_mut().enumerate() {
                let i = b * BLOCK + t;
                let [s, o, df] = rows[i];
                let lz = self.lz(sc, i);
                let e = kr[self.group[i] as usize];
                let w = self.wt(i);
                *di = w * (-2.0 * s + a_of(i, df) - o * (lz[0] * e[0] + lz[1] * e[1]));
            }
        });
        d
    }

    /// Adaptive Gauss–Hermite terms for q = 1: returns each group's deviance, and with
    /// `grad = Some((K, d))` fills d with ∂D/∂β = X'd:
    /// d_i = −2[Σ_k π_k ℓ'_ik + α_h f'_i − (θ/K_h)(G1_h + α_h θ F'_h) o_i],
    /// π_k the normalized node contributions, G1 = Σ π_k g'(u_k),
    /// G2 = Σ π_k g'(u_k) t_k, α = −½ s³θ²(1/s + G2), F' = Σ_i f'_i.
    fn quadrature_terms(
        &self,
        sc: &Scales,
        off: &[f64],
        u: &[f64],
        h: &[Sym],
        grad: Option<(&[Sym], &mut [f64])>,
    ) -> Vec<f64> {
        let kn = self.rule.t.len();
        let theta = sc.lambda[0];
        let s: Vec<f64> = h.iter().map(|h| 1.0 / h[0].sqrt()).collect();
        let node = |g: usize, k: usize| u[g] + s[g] * self.rule.t[k];
        // Per group and node: Σℓ_ik and Σℓ'_ik; plus F' = Σ f'_i at û.
        let sums = self.group_sums(2 * kn + 1, |i, acc| {
            let g = self.group[i] as usize;
            let w = self.wt(i);
            for k in 0..kn {
                let r = self
                    .family
                    .row(self.y[i], off[i] + theta * node(g, k), sc.sigma);
                acc[k] += w * r.l;
                acc[kn + k] += w * r.s;
            }
            acc[2 * kn] += w * self
                .family
                .row(self.y[i], off[i] + theta * u[g], sc.sigma)
                .df;
        });
        let mut deviance = vec![0.0; self.groups];
        let mut pis = vec![0.0; self.groups * kn];
        let mut coef = vec![(0.0, 0.0); self.groups];
        for g in 0..self.groups {
            let sg = &sums[g * (2 * kn + 1)..(g + 1) * (2 * kn + 1)];
            let logs: Vec<f64> = (0..kn)
                .map(|k| {
                    let uk = node(g, k);
                    self.rule.w[k].ln() + 0.5 * self.rule.t[k].powi(2) + sg[k] - 0.5 * uk * uk
                })
                .collect();
            let top = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = logs.iter().map(|l| (l - top).exp()).sum();
            deviance[g] = -2.0 * (s[g].ln() + top + total.ln());
            let (mut g1, mut g2) = (0.0, 0.0);
            for k in 0..kn {
                let pi = (logs[k] - top).exp() / total;
                pis[g * kn + k] = pi;
                let gk = theta * sg[kn + k] - node(g, k);
                g1 += pi * gk;
                g2 += pi * gk * self.rule.t[k];
            }
            let alpha = -0.5 * s[g].powi(3) * theta * theta * (1.0 / s[g] + g2);
            coef[g] = (alpha, g1 + alpha * theta * sg[2 * kn]);
        }
        if let Some((ks, d)) = grad {
            d.par_chunks_mut(BLOCK).enumerate().for_each(|(b, chunk)| {
                for (t, di) in chunk.iter_mut().enumerate() {
                    let i = b * BLOCK + t;
                    let g = self.group[i] as usize;
                    let mut score = 0.0;
                    for k in 0..kn {
                        let r = self
                            .family
                            .row(self.y[i], off[i] + theta * node(g, k), sc.sigma);
                        score += pis[g * kn + k] * r.s;
                    }
                    let r0 = self
                        .family
                        .derivatives(self.y[i], off[i] + theta * u[g], sc.sigma);
                    let (alpha, c) = coef[g];
                    let kk = ks[g][0];
                    *di = -2.0 * self.wt(i) * (score + alpha * r0.df - theta / kk * c * r0.o);
                }
            });
        }
        deviance
    }

    /// The Schur complement 2[X'OX − Σ_h M_h'ΛK_h⁻¹Λ'M_h], M_h = Σ_i o_i z_i x_i':
    /// the β-Hessian of −2 g(û(β), β) (the deviance without the log determinant).
    pub fn schur_hessian(&self, sc: &Scales, off: &[f64], u: &[f64], ev: &Evaluation) -> Vec<f64> {
        let (n, p, q) = (self.n, self.p, self.q());
        let o: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| {
                let r =
                    self.family
                        .derivatives(self.y[i], off[i] + self.re_term(sc, u, i), sc.sigma);
                self.wt(i) * r.o
            })
            .collect();
        let mut hess = crate::linalg::gram(self.x, n, p, Some(&o));
        // M_h with Λ' applied: rows (Λ'z)_r, r < q.
        let m = self.group_sums(2 * p, |i, acc| {
            let lz = self.lz(sc, i);
            for j in 0..p {
                let v = o[i] * self.x[j * n + i];
                acc[j] += v * lz[0];
                acc[p + j] += v * lz[1];
            }
        });
        for g in 0..self.groups {
            let mg = &m[g * 2 * p..(g + 1) * 2 * p];
            let kinv = inverse(&ev.k[g], q);
            for a in 0..p {
                for b in 0..=a {
                    let (a0, a1, b0, b1) = (mg[a], mg[p + a], mg[b], mg[p + b]);
                    let v = kinv[0] * a0 * b0 + kinv[1] * (a0 * b1 + a1 * b0) + kinv[2] * a1 * b1;
                    hess[a * p + b] -= v;
                    if a != b {
                        hess[b * p + a] -= v;
                    }
                }
            }
        }
        hess.iter_mut().for_each(|v| *v *= 2.0);
        hess
    }

    /// The conditional modes on the b scale, b_h = Λû_h (row-major groups × 2).
    pub fn b_modes(&self, sc: &Scales, u: &[f64]) -> Vec<[f64; 2]> {
        let [l11, l21, l22] = sc.lambda;
        (0..self.groups)
            .map(|g| {
                if self.slope.is_some() {
                    let (u0, u1) = (u[2 * g], u[2 * g + 1]);
                    [l11 * u0, l21 * u0 + l22 * u1]
                } else {
                    [l11 * u[g], 0.0]
                }
            })
            .collect()
    }

    /// Conditional covariance of b_h: ΛH_h⁻¹Λ' as [var0, cov, var1].
    pub fn b_covariance(&self, sc: &Scales, h: &Sym) -> Sym {
        let q = self.q();
        let hi = inverse(h, q);
        let [l11, l21, l22] = sc.lambda;
        if q == 1 {
            return [l11 * l11 * hi[0], 0.0, 0.0];
        }
        // Λ = [[l11, 0], [l21, l22]]; (ΛAΛ')
        let a = [[hi[0], hi[1]], [hi[1], hi[2]]];
        let lam = [[l11, 0.0], [l21, l22]];
        let mut out = [[0.0; 2]; 2];
        for r in 0..2 {
            for c in 0..2 {
                for s in 0..2 {
                    for t in 0..2 {
                        out[r][c] += lam[r][s] * a[s][t] * lam[c][t];
                    }
                }
            }
        }
        [out[0][0], out[0][1], out[1][1]]
    }
}

/// η = Xβ for a column-major n × p slice, in parallel over row blocks.
pub(crate) fn linear_predictor(x: &[f64], n: usize, beta: &[f64]) -> Vec<f64> {
    let mut eta = vec![0.0; n];
    eta.par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(b, chunk)| {
            let start = b * BLOCK;
            for (j, bj) in beta.iter().enumerate() {
                if *bj == 0.0 {
                    continue;
                }
                let col = &x[j * n + start..j * n + start + chunk.len()];
                for (e, xv) in chunk.iter_mut().zip(col) {
                    *e += bj * xv;
                }
            }
        });
    eta
}

/// log det of a 1 × 1 or 2 × 2 symmetric positive-definite matrix.
pub(crate) fn log_det(m: &Sym, q: usize) -> f64 {
    if q == 1 {
        m[0].ln()
    } else {
        (m[0] * m[2] - m[1] * m[1]).ln()
    }
}

/// The inverse of a 1 × 1 or 2 × 2 symmetric matrix.
pub(crate) fn inverse(m: &Sym, q: usize) -> Sym {
    if q == 1 {
        return [1.0 / m[0], 0.0, 0.0];
    }
    let det = m[0] * m[2] - m[1] * m[1];
    [m[2] / det, -m[1] / det, m[0] / det]
}

/// Modes predicted to O(h²) by linear extrapolation, a + b − c (2u₀ − u₊ at
/// φ − h e_k from the modes at φ and φ + h e_k; u_a + u_b − u₀ at
/// φ + h(e_a + e_b)), to start [`Problem::evaluate_predicted`] from.
pub(super) fn extrapolated_modes(a: &[f64], b: &[f64], c: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .zip(c)
        .map(|((a, b), c)| a + b - c)
        .collect()
}

/// One group's Newton step for its conditional mode u_h: from the score sums
/// S = Σ w ℓ' Λ'z and O = Σ w o (Λ'z)(Λ'z)', K = I + O, the gradient S − u,
/// the step K⁻¹(S − u) and its decrement (S − u)'K⁻¹(S − u).
fn newton_step(q: usize, score: [f64; 2], o: Sym, u: &[f64]) -> (Sym, [f64; 2], f64) {
    let k = [1.0 + o[0], o[1], 1.0 + o[2]];
    let grad = [score[0] - u[0], if q == 2 { score[1] - u[1] } else { 0.0 }];
    let step = solve(&k, q, grad);
    (k, step, grad[0] * step[0] + grad[1] * step[1])
}

/// M⁻¹v for a 1 × 1 or 2 × 2 symmetric matrix.
fn solve(m: &Sym, q: usize, v: [f64; 2]) -> [f64; 2] {
    let i = inverse(m, q);
    if q == 1 {
        [i[0] * v[0], 0.0]
    } else {
        [i[0] * v[0] + i[1] * v[1], i[1] * v[0] + i[2] * v[1]]
    }
}
