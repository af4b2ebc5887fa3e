//! The path-specific truths: the 32 block configurations of one draw, the
//! sequential switches and their Shapley average.

use super::K;
use super::draws::{IDX_COMP, IDX_GAP, IDX_REF, IDX_SEQ, IDX_SHAP};
use super::reduction::{Own, reduction_contributions};
use crate::params::{Params, REFERENCE_GROUP};
use crate::scm::{self, Noise, Simulated};
use crate::world::World;

/// Shapley weight |S|!(n − |S| − 1)!/n! for a subset of size s out of n players.
fn shapley_weight(s: usize, n: usize) -> f64 {
    let factorial = |k: usize| -> f64 { (1..=k).map(|i| i as f64).product() };
    factorial(s) * factorial(n - s - 1) / factorial(n)
}

/// Shapley weights by subset mask for 5 and 3 players.
pub(super) struct ShapleyWeights {
    five: [f64; 32],
    pub(super) three: [f64; 8],
}

impl ShapleyWeights {
    pub(super) fn new() -> Self {
        ShapleyWeights {
            five: std::array::from_fn(|s| {
                if s < 31 {
                    shapley_weight((s as u32).count_ones() as usize, 5)
                } else {
                    0.0
                }
            }),
            three: std::array::from_fn(|s| {
                if s < 7 {
                    shapley_weight((s as u32).count_ones() as usize, 3)
                } else {
                    0.0
                }
            }),
        }
    }
}

/// Every per-draw contribution for one comparison-group patient with noise `n`
/// and fresh reference noise `f`. Returns the all-reference and all-comparison
/// simulations of `n` (for the moment-based truths).
///
/// The 32 block configurations share their upstream blocks: D has 2 versions,
/// S 4, C 8, H 4 (position depends on S and on H's own group) and Y 32.
pub(super) fn draw_contributions(
    world: &World,
    params: &Params,
    c: usize,
    n: &Noise,
    f: &Noise,
    weights: &ShapleyWeights,
    out: &mut [f64],
) -> (Simulated, Simulated) {
    let m = &params.model;
    let gs = [&params.groups[REFERENCE_GROUP], &params.groups[c]];
    let demo = gs.map(|g| scm::demographics(m, g, n));
    let ses: [[scm::Socioeconomic; 2]; 2] =
        std::array::from_fn(|d| std::array::from_fn(|s| scm::socioeconomic(m, gs[s], n, &demo[d])));
    let clin: [[[scm::Clinical; 2]; 2]; 2] = std::array::from_fn(|d| {
        std::array::from_fn(|s| {
            std::array::from_fn(|cc| scm::clinical(m, gs[cc], n, &demo[d], &ses[d][s]))
        })
    });
    let pos: [[[f64; 2]; 2]; 2] = std::array::from_fn(|d| {
        std::array::from_fn(|s| std::array::from_fn(|h| scm::position(m, gs[h], n, &ses[d][s])))
    });
    let hosp: [[[usize; 2]; 2]; 2] = std::array::from_fn(|d| {
        std::array::from_fn(|s| std::array::from_fn(|h| world.choose(pos[d][s][h], n.hospital)))
    });
    let effect = |h: usize| world.hospitals[h].effect;
    // The random race slope follows the outcome block's group (y = 1: c).
    let groups = [REFERENCE_GROUP, c];
    let disparity = |h: usize, y: usize| world.disparity(h, groups[y]);
    // v(mask): block b from the comparison group if bit b is set.
    let mut v = [[0.0; K]; 32];
    for (mask, slot) in v.iter_mut().enumerate() {
        let [d, s, cc, h, y] = std::array::from_fn(|b| mask >> b & 1);
        *slot = scm::outcome_model(
            m,
            gs[y],
            &demo[d],
            &ses[d][s],
            &clin[d][s][cc],
            effect(hosp[d][s][h]),
            disparity(hosp[d][s][h], y),
        )
        .oracle(m);
    }
    let sim = |g: usize| Simulated {
        demographics: demo[g],
        socioeconomic: ses[g][g],
        clinical: clin[g][g][g],
        position: pos[g][g][g],
        hospital: hosp[g][g][g],
        outcome: scm::outcome_model(
            m,
            gs[g],
            &demo[g],
            &ses[g][g],
            &clin[g][g][g],
            effect(hosp[g][g][g]),
            disparity(hosp[g][g][g], g),
        ),
    };
    for k in 0..K {
        out[IDX_REF * K + k] = v[0][k];
        out[IDX_COMP * K + k] = v[31][k];
        out[IDX_GAP * K + k] = v[31][k] - v[0][k];
        let mut mask = 0;
        for b in 0..5 {
            let next = mask | (1 << b);
            out[(IDX_SEQ + b) * K + k] = v[next][k] - v[mask][k];
            mask = next;
        }
        for b in 0..5 {
            let mut phi = 0.0;
            for s in 0..32usize {
                if s >> b & 1 == 0 {
                    phi += weights.five[s] * (v[s | 1 << b][k] - v[s][k]);
                }
            }
            out[(IDX_SHAP + b) * K + k] = phi;
        }
    }
    let own = Own {
        group: c,
        demographics: &demo[1],
        socioeconomic: &ses[1][1],
        clinical: &clin[1][1][1],
        hospital: hosp[1][1][1],
        outcome: v[31],
    };
    reduction_contributions(world, m, gs, own, f, weights, out);
    (sim(0), sim(1))
}
