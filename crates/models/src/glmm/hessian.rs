//! The exact β-Hessian of the Laplace deviance, with the conditional modes
//! re-optimized (the total derivative through û(β)), in one Gram pass and one
//! pass of per-group sums — instead of p re-evaluations of the gradient.
//!
//! Rows of a group fall in two classes by the 0/1 slope column z (one class
//! without a slope), and l_c = Λ'z_c is constant within a class. With the
//! gradient ∂D/∂β = Σ_i x_i d_i (see [`super::objective`]),
//! d_i = w_i[−2ℓ'_i + f'_i α_c − o_i β_c], α_c = l_c'H⁻¹l_c, β_c = l_c'K⁻¹r,
//! r = Σ_c α_c F1_c l_c, and η_i's total derivative ξ_i = x_i + V'l_c with
//! V = dû/dβ' = −K⁻¹Σ_c l_c M_c', M_c = Σ_{i∈c} o_i x_i:
//!
//! ∂²D/∂β∂β' = X'CX + Σ_h Σ_c [Cx_c (V'l_c)' + P1_c U_c' − M_c W_c'],
//!
//! c_i = w_i(2o_i + α_c f''_i − β_c o'_i), Cx_c = Σ_{i∈c} c_i x_i,
//! P1_c = Σ f'x, U_c = ∂α_c/∂β = −Σ_c' (l_c'H⁻¹l_c')² T1_c',
//! W_c = ∂β_c/∂β = Σ_c' κ_cc' [−β_c' T3_c' + α_c' T2_c' + F1_c' U_c'],
//! κ_cc' = l_c'K⁻¹l_c', and T1, T2, T3 = Σ_{i∈c} (f', f'', o')_i ξ_i.
//!
//! The derivation is the chain rule through H, K and r (dH⁻¹ = −H⁻¹dH H⁻¹),
//! as in Bates et al. 2015 §5 for the Laplace objective. For the logit
//! o = f = μ(1−μ), f' = f(1−2μ), f'' = f(1−2μ)² − 2f²; for the identity
//! link o = f = 1/σ² and the rest vanish. Probit and adaptive quadrature keep
//! the finite differences of the gradient.

use super::GlmmFamily;
use super::objective::{Evaluation, Problem, Scales, inverse};

/// Per-row curvature terms: observed weight o, o' = ∂o/∂η, f' and f''.
#[derive(Debug, Clone, Copy)]
struct Curvature {
    o: f64,
    d_o: f64,
    df: f64,
    d2f: f64,
}

impl GlmmFamily {
    /// o, o', f', f'' at η for the families with a closed form.
    fn curvature(self, eta: f64, sigma: f64) -> Curvature {
        match self {
            GlmmFamily::Identity => Curvature {
                o: 1.0 / (sigma * sigma),
                d_o: 0.0,
                df: 0.0,
                d2f: 0.0,
            },
            _ => {
                let mu = 1.0 / (1.0 + (-eta).exp());
                let f = mu * (1.0 - mu);
                let t = 1.0 - 2.0 * mu;
                Curvature {
                    o: f,
                    d_o: f * t,
                    df: f * t,
                    d2f: f * t * t - 2.0 * f * f,
                }
            }
        }
    }
}

/// Scalars per class: F1 = Σf', F2 = Σf'', O1 = Σo'; then the p-vectors
/// M = Σox, P1 = Σf'x, P2 = Σf''x, Q1 = Σo'x.
const SCALARS: usize = 3;

/// l'Ml for a symmetric 2 × 2 [a, b, c] and 2-vectors l, m.
fn form(s: &[f64; 3], l: [f64; 2], m: [f64; 2]) -> f64 {
    s[0] * l[0] * m[0] + s[1] * (l[0] * m[1] + l[1] * m[0]) + s[2] * l[1] * m[1]
}

/// `out += a · b'` for p-vectors (row-major p × p).
fn add_outer(out: &mut [f64], p: usize, scale: f64, a: &[f64], b: &[f64]) {
    for (r, ar) in a.iter().enumerate() {
        let v = scale * ar;
        for (o, bc) in out[r * p..(r + 1) * p].iter_mut().zip(b) {
            *o += v * bc;
        }
    }
}

impl Problem<'_> {
    /// The exact β-Hessian of the Laplace deviance at the modes of `ev`
    /// (same Λ, β), or `None` where only differences are available (probit,
    /// adaptive quadrature).
    pub fn laplace_beta_hessian(
        &self,
        sc: &Scales,
        off: &[f64],
        u: &[f64],
        ev: &Evaluation,
    ) -> Option<Vec<f64>> {
        if self.family == GlmmFamily::Probit || (self.rule.t.len() > 1 && self.q() == 1) {
            return None;
        }
        let (n, p, q) = (self.n, self.p, self.q());
        let width = SCALARS + 4 * p;
        let class = |i: usize| usize::from(self.slope.is_some_and(|s| s[i] == 1.0));
        let sums = self.group_sums(2 * width, |i, acc| {
            let c = self
                .family
                .curvature(off[i] + self.re_term(sc, u, i), sc.sigma);
            let w = self.wt(i);
            let acc = &mut acc[class(i) * width..(class(i) + 1) * width];
            acc[0] += w * c.df;
            acc[1] += w * c.d2f;
            acc[2] += w * c.d_o;
            let (m, rest) = acc[SCALARS..].split_at_mut(p);
            let (p1, rest) = rest.split_at_mut(p);
            let (p2, q1) = rest.split_at_mut(p);
            for j in 0..p {
                let x = w * self.x[j * n + i];
                m[j] += c.o * x;
                p1[j] += c.df * x;
                p2[j] += c.d2f * x;
                q1[j] += c.d_o * x;
            }
        });
        let [l11, l21, l22] = sc.lambda;
        let l = [[l11, 0.0], [l11 + l21, l22]];
        let mut hess = vec![0.0; p * p];
        // Per group and class: (α_c, β_c) for the row weights c_i.
        let mut coef = vec![[0.0; 2]; self.groups * 2];
        for g in 0..self.groups {
            let s = &sums[g * 2 * width..(g + 1) * 2 * width];
            let parts = self.group_hessian(&s[..width], &s[width..], l, q, &ev.h[g], &ev.k[g]);
            for (scale, a, b) in &parts.outer {
                add_outer(&mut hess, p, *scale, a, b);
            }
            coef[2 * g..2 * g + 2].copy_from_slice(&parts.coef);
        }
        let c: Vec<f64> = (0..n)
            .map(|i| {
                let cv = self
                    .family
                    .curvature(off[i] + self.re_term(sc, u, i), sc.sigma);
                let [alpha, beta] = coef[2 * self.group[i] as usize + class(i)];
                self.wt(i) * (2.0 * cv.o + alpha * cv.d2f - beta * cv.d_o)
            })
            .collect();
        let gram = crate::linalg::gram(self.x, n, p, Some(&c));
        for a in 0..p {
            for b in 0..p {
                hess[a * p + b] += gram[a * p + b];
            }
        }
        // The exact Hessian is symmetric; average away rounding.
        for a in 0..p {
            for b in 0..a {
                let v = 0.5 * (hess[a * p + b] + hess[b * p + a]);
                hess[a * p + b] = v;
                hess[b * p + a] = v;
            }
        }
        Some(hess)
    }

    /// One group's low-rank terms of the Hessian and its (α_c, β_c), from the
    /// class sums `s0`, `s1` (layout of [`SCALARS`] then M, P1, P2, Q1).
    fn group_hessian(
        &self,
        s0: &[f64],
        s1: &[f64],
        l: [[f64; 2]; 2],
        q: usize,
        h: &[f64; 3],
        k: &[f64; 3],
    ) -> GroupTerms {
        let p = self.p;
        let (hinv, kinv) = (inverse(h, q), inverse(k, q));
        let s = [s0, s1];
        let vec_of = |c: usize, which: usize| &s[c][SCALARS + which * p..SCALARS + (which + 1) * p];
        let f1 = [s0[0], s1[0]];
        let gamma = |a: usize, b: usize| form(&hinv, l[a], l[b]);
        let kappa = |a: usize, b: usize| form(&kinv, l[a], l[b]);
        let alpha = [gamma(0, 0), gamma(1, 1)];
        let beta: [f64; 2] =
            std::array::from_fn(|c| (0..2).map(|d| kappa(c, d) * alpha[d] * f1[d]).sum());
        // V'l_c = −Σ_c' κ_c'c M_c'.
        let vl: [Vec<f64>; 2] = std::array::from_fn(|c| {
            (0..p)
                .map(|j| -(kappa(0, c) * vec_of(0, 0)[j] + kappa(1, c) * vec_of(1, 0)[j]))
                .collect()
        });
        // T_k,c = (P1, P2, Q1)_c + (F1, F2, O1)_c · V'l_c.
        let t = |c: usize, which: usize| -> Vec<f64> {
            let scalar = s[c][which];
            vec_of(c, which + 1)
                .iter()
                .zip(&vl[c])
                .map(|(a, v)| a + scalar * v)
                .collect()
        };
        let (t1, t2, t3) = ([t(0, 0), t(1, 0)], [t(0, 1), t(1, 1)], [t(0, 2), t(1, 2)]);
        let uu: [Vec<f64>; 2] = std::array::from_fn(|c| {
            (0..p)
                .map(|j| -(gamma(c, 0).powi(2) * t1[0][j] + gamma(c, 1).powi(2) * t1[1][j]))
                .collect()
        });
        let ww: [Vec<f64>; 2] = std::array::from_fn(|c| {
            (0..p)
                .map(|j| {
                    (0..2)
                        .map(|d| {
                            kappa(c, d)
                                * (-beta[d] * t3[d][j] + alpha[d] * t2[d][j] + f1[d] * uu[d][j])
                        })
                        .sum()
                })
                .collect()
        });
        let mut outer = Vec::with_capacity(6);
        for c in 0..2 {
            let cx: Vec<f64> = (0..p)
                .map(|j| {
                    2.0 * vec_of(c, 0)[j] + alpha[c] * vec_of(c, 2)[j] - beta[c] * vec_of(c, 3)[j]
                })
                .collect();
            outer.push((1.0, cx, vl[c].clone()));
            outer.push((1.0, vec_of(c, 1).to_vec(), uu[c].clone()));
            outer.push((-1.0, vec_of(c, 0).to_vec(), ww[c].clone()));
        }
        GroupTerms {
            outer,
            coef: [[alpha[0], beta[0]], [alpha[1], beta[1]]],
        }
    }
}

/// A group's contribution: scaled outer products a·b' and (α_c, β_c).
struct GroupTerms {
    outer: Vec<(f64, Vec<f64>, Vec<f64>)>,
    coef: [[f64; 2]; 2],
}
