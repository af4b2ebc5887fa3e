//! Gauss–Hermite nodes and weights for the standard normal density:
//! ∫ f(t) φ(t) dt ≈ Σ_k w_k f(t_k), with Σ w_k = 1 (probabilists' rule).
//!
//! Nodes are the roots of the physicists' Hermite polynomial H_k, found by
//! Newton's method from the asymptotic starting values of Numerical Recipes
//! (Press et al. 2007, §4.6, `gauher`), then scaled by √2 (t = √2 x) with the
//! weights divided by √π.

/// One quadrature rule: nodes `t` and weights `w` for φ(t).
#[derive(Debug, Clone)]
pub struct Rule {
    /// Nodes, ascending.
    pub t: Vec<f64>,
    /// Weights (sum to 1).
    pub w: Vec<f64>,
}

/// The k-point rule (k ≥ 1). k = 1 is the single node 0 with weight 1, so the
/// adaptive rule reduces to the Laplace approximation.
pub fn gauss_hermite(k: usize) -> Rule {
    let k = k.max(1);
    let pim4 = std::f64::consts::PI.powf(-0.25);
    let mut x = vec![0.0; k];
    let mut w = vec![0.0; k];
    let m = k.div_ceil(2);
    let mut z = 0.0_f64;
    let kf = k as f64;
    for i in 0..m {
        z = match i {
            0 => (2.0 * kf + 1.0).sqrt() - 1.85575 * (2.0 * kf + 1.0).powf(-0.16667),
            1 => z - 1.14 * kf.powf(0.426) / z,
            2 => 1.86 * z - 0.86 * x[0],
            3 => 1.91 * z - 0.91 * x[1],
            _ => 2.0 * z - x[i - 2],
        };
        let mut pp = 0.0;
        for _ in 0..100 {
            // Recurrence for the normalised Hermite polynomials.
            let mut p1 = pim4;
            let mut p2 = 0.0;
            for j in 0..k {
                let p3 = p2;
                p2 = p1;
                let jf = j as f64;
                p1 = z * (2.0 / (jf + 1.0)).sqrt() * p2 - (jf / (jf + 1.0)).sqrt() * p3;
            }
            pp = (2.0 * kf).sqrt() * p2;
            let z1 = z;
            z = z1 - p1 / pp;
            if (z - z1).abs() <= 1e-15 * z.abs().max(1.0) {
                break;
            }
        }
        x[i] = z;
        x[k - 1 - i] = -z;
        w[i] = 2.0 / (pp * pp);
        w[k - 1 - i] = w[i];
    }
    if k % 2 == 1 {
        // The middle node is exactly 0.
        x[k / 2] = 0.0;
    }
    let sqrt_pi = std::f64::consts::PI.sqrt();
    let mut t: Vec<f64> = x.iter().map(|v| v * std::f64::consts::SQRT_2).collect();
    let mut w: Vec<f64> = w.iter().map(|v| v / sqrt_pi).collect();
    t.reverse();
    w.reverse();
    Rule { t, w }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_integrate_normal_moments_exactly() {
        // E t^(2r) = (2r − 1)!!; a k-point rule is exact to degree 2k − 1.
        for k in [1usize, 2, 3, 5, 10, 25] {
            let r = gauss_hermite(k);
            assert!((r.w.iter().sum::<f64>() - 1.0).abs() < 1e-13, "k={k}");
            let mut double_fact = 1.0;
            for deg in (2..2 * k).step_by(2) {
                double_fact *= (deg - 1) as f64;
                let m: f64 =
                    r.t.iter()
                        .zip(&r.w)
                        .map(|(t, w)| w * t.powi(deg as i32))
                        .sum();
                assert!(
                    (m - double_fact).abs() < 1e-9 * double_fact,
                    "k={k} deg={deg}: {m}"
                );
            }
            let odd: f64 = r.t.iter().zip(&r.w).map(|(t, w)| w * t.powi(3)).sum();
            assert!(odd.abs() < 1e-12);
        }
    }

    #[test]
    fn ten_point_rule_matches_published_nodes() {
        // Abramowitz & Stegun Table 25.10 (physicists'): largest x = 3.436159118837738.
        let r = gauss_hermite(10);
        let largest = r.t[9] / std::f64::consts::SQRT_2;
        assert!((largest - 3.436_159_118_837_738).abs() < 1e-12);
    }
}
