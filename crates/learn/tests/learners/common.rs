//! Shared data generators and the tolerances of every test, in one place.

use healthgap_learn::{Family, Matrix};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Elastic net against scikit-learn (whose saga and scipy's L-BFGS-B agree
/// to 1.1e-8 on these problems).
pub const TOL_GOLDEN: f64 = 1e-6;
/// The super learner's CV loss may exceed the best member's by this: by
/// construction never (a better single member replaces the ensemble).
pub const TOL_SUPER_LEARNER: f64 = 0.0;
/// Weights sum to one within rounding.
pub const TOL_SUM: f64 = 1e-12;

/// A simulated design.
pub struct Sim {
    pub x: Matrix,
    pub y: Vec<f64>,
    pub w: Vec<f64>,
    pub clusters: Vec<u32>,
}

/// n rows in `clusters` clusters; x1, x2 ~ U(0, 1), x3, x4 ~ N(0, 1),
/// x5 ~ Bernoulli(0.4), x6 noise. The signal has a threshold and an interaction:
/// η = −1 + 2·1{x1 > 0.5}·1{x2 > 0.3} + 1.2·x3·x4 − 0.8·x5.
/// Binary: y ~ Bernoulli(Λ(η)); continuous: y = η + N(0, 0.5²).
pub fn nonlinear(n: usize, clusters: u32, family: Family, seed: u64) -> Sim {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cols: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(n)).collect();
    let (mut y, mut w, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let x1: f64 = rng.random_range(0.0..1.0);
        let x2: f64 = rng.random_range(0.0..1.0);
        let x3 = normal(&mut rng);
        let x4 = normal(&mut rng);
        let x5 = f64::from(u8::from(rng.random_range(0.0..1.0) < 0.4));
        let x6 = normal(&mut rng);
        let step = f64::from(u8::from(x1 > 0.5 && x2 > 0.3));
        let eta = -1.0 + 2.0 * step + 1.2 * x3 * x4 - 0.8 * x5;
        for (col, v) in cols.iter_mut().zip([x1, x2, x3, x4, x5, x6]) {
            col.push(v);
        }
        match family {
            Family::Binary => {
                let p = 1.0 / (1.0 + (-eta).exp());
                y.push(f64::from(u8::from(rng.random_range(0.0..1.0) < p)));
            }
            Family::Continuous => {
                y.push(eta + 0.5 * normal(&mut rng));
            }
        }
        w.push(rng.random_range(0.5..1.5));
        c.push(rng.random_range(0..clusters));
    }
    let x = Matrix::from_columns(
        cols.into_iter()
            .enumerate()
            .map(|(j, v)| (format!("x{}", j + 1), v))
            .collect(),
    )
    .expect("finite");
    Sim {
        x,
        y,
        w,
        clusters: c,
    }
}

/// A standard normal by Box–Muller.
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(1e-12..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
