//! The Monte-Carlo draws: the layout of each draw's contributions, their sums,
//! and the accumulators over the population streams and over the sample.

use rayon::prelude::*;

use super::ols::Cells;
use super::paths::{ShapleyWeights, draw_contributions};
use super::{BLOCKS, K, NSUB, TARGETS, design_row, target_set_name};
use crate::params::{Params, REFERENCE_GROUP};
use crate::sample::{Sample, assign_group, cumulative_shares};
use crate::scm::{CHUNK, FRESH_STREAM_OFFSET, Noise, POPULATION_STREAM_OFFSET};
use crate::world::World;

/// Per-draw contrasts: sums and sums of squares of each scalar contribution.
#[derive(Debug, Clone)]
pub(super) struct DrawSums {
    pub(super) n: f64,
    sum: Vec<f64>,
    sumsq: Vec<f64>,
}

/// Layout of the per-draw contributions (each × K outcomes).
pub(super) const IDX_REF: usize = 0; // E[Y(all r)] on this noise
pub(super) const IDX_COMP: usize = 1; // E[Y(all c)]
pub(super) const IDX_SEQ: usize = 2; // 5 sequential steps
pub(super) const IDX_SHAP: usize = 7; // 5 Shapley values
pub(super) const IDX_INIT: usize = 12; // initial disparity
pub(super) const IDX_REM: usize = 13; // 7 remaining
pub(super) const IDX_RED: usize = 20; // 7 reductions
pub(super) const IDX_DRSHAP: usize = 27; // 3 Shapley reductions
pub(super) const IDX_GAP: usize = 30; // E[Y(all c)] − E[Y(all r)]
const NSCALAR: usize = 31;

impl DrawSums {
    pub(super) fn new() -> Self {
        DrawSums {
            n: 0.0,
            sum: vec![0.0; NSCALAR * K],
            sumsq: vec![0.0; NSCALAR * K],
        }
    }
    fn add(&mut self, v: &[f64]) {
        self.n += 1.0;
        for (i, x) in v.iter().enumerate() {
            self.sum[i] += x;
            self.sumsq[i] += x * x;
        }
    }
    pub(super) fn merge(&mut self, o: &DrawSums) {
        self.n += o.n;
        for i in 0..self.sum.len() {
            self.sum[i] += o.sum[i];
            self.sumsq[i] += o.sumsq[i];
        }
    }
    pub(super) fn mean(&self, i: usize) -> f64 {
        self.sum[i] / self.n
    }
    pub(super) fn se(&self, i: usize) -> f64 {
        let m = self.mean(i);
        ((self.sumsq[i] / self.n - m * m).max(0.0) / (self.n - 1.0).max(1.0)).sqrt()
    }
}

/// Per-draw quantities in output order: (quantity, component, scalar index).
pub(super) fn draw_quantities() -> Vec<(&'static str, Option<String>, usize)> {
    let mut q = vec![
        ("reference_mean", None, IDX_REF),
        ("comparison_mean", None, IDX_COMP),
    ];
    for (b, name) in BLOCKS.iter().enumerate() {
        q.push(("path_specific", Some((*name).to_string()), IDX_SEQ + b));
    }
    for (b, name) in BLOCKS.iter().enumerate() {
        q.push((
            "path_specific_shapley",
            Some((*name).to_string()),
            IDX_SHAP + b,
        ));
    }
    q.push(("initial_disparity", None, IDX_INIT));
    for t in 1..=NSUB {
        q.push((
            "disparity_remaining",
            Some(target_set_name(t)),
            IDX_REM + t - 1,
        ));
        q.push((
            "disparity_reduction",
            Some(target_set_name(t)),
            IDX_RED + t - 1,
        ));
    }
    for (b, name) in TARGETS.iter().enumerate() {
        q.push((
            "disparity_reduction_shapley",
            Some((*name).to_string()),
            IDX_DRSHAP + b,
        ));
    }
    q
}

/// Accumulators of one chunk of draws.
pub(super) struct ChunkAcc {
    pub(super) sums: DrawSums,
    pub(super) cells: Cells,
}

/// Population accumulators per chunk for comparison group `c`.
pub(super) fn population_chunks(
    world: &World,
    params: &Params,
    pop_seed: u64,
    c: usize,
) -> Vec<ChunkAcc> {
    let chunks = params.population_draws.div_ceil(CHUNK);
    (0..chunks)
        .into_par_iter()
        .map(|k| {
            let start = k * CHUNK;
            let len = CHUNK.min(params.population_draws - start);
            let noise = Noise::chunk(pop_seed, POPULATION_STREAM_OFFSET, start, len);
            let fresh = Noise::chunk(
                pop_seed,
                POPULATION_STREAM_OFFSET + FRESH_STREAM_OFFSET,
                start,
                len,
            );
            let mut acc = ChunkAcc {
                sums: DrawSums::new(),
                cells: Cells::new(world.len()),
            };
            let mut buf = vec![0.0; NSCALAR * K];
            let weights = ShapleyWeights::new();
            for (n, f) in noise.iter().zip(&fresh) {
                let (sim_r, sim_c) = draw_contributions(world, params, c, n, f, &weights, &mut buf);
                acc.sums.add(&buf);
                for (g, s) in [(0, sim_r), (1, sim_c)] {
                    acc.cells
                        .at(g, s.hospital)
                        .add(&design_row(&s), &s.outcome.oracle(&params.model));
                }
            }
            acc
        })
        .collect()
}

/// Sample accumulators for comparison group `c`: per-draw sums over the sample's
/// group-c patients, and cells over its r and c patients.
pub(super) fn sample_acc(sample: &Sample, c: usize) -> ChunkAcc {
    let params = &sample.params;
    let world = &sample.world;
    let n = sample.patients.len();
    let chunks = n.div_ceil(CHUNK);
    let cum = cumulative_shares(params);
    let parts: Vec<ChunkAcc> = (0..chunks)
        .into_par_iter()
        .map(|k| {
            let start = k * CHUNK;
            let len = CHUNK.min(n - start);
            let noise = Noise::chunk(params.seed, 0, start, len);
            let fresh = Noise::chunk(params.seed, FRESH_STREAM_OFFSET, start, len);
            let mut acc = ChunkAcc {
                sums: DrawSums::new(),
                cells: Cells::new(world.len()),
            };
            let mut buf = vec![0.0; NSCALAR * K];
            let weights = ShapleyWeights::new();
            for (i, (nz, f)) in noise.iter().zip(&fresh).enumerate() {
                let p = &sample.patients[start + i];
                debug_assert_eq!(assign_group(nz.group, &cum), p.group as usize);
                let g = p.group as usize;
                if g == c {
                    draw_contributions(world, params, c, nz, f, &weights, &mut buf);
                    acc.sums.add(&buf);
                }
                if g == c || g == REFERENCE_GROUP {
                    let slot = usize::from(g == c);
                    acc.cells
                        .at(slot, p.sim.hospital)
                        .add(&design_row(&p.sim), &p.sim.outcome.oracle(&params.model));
                }
            }
            acc
        })
        .collect();
    let mut total = ChunkAcc {
        sums: DrawSums::new(),
        cells: Cells::new(world.len()),
    };
    for p in &parts {
        total.sums.merge(&p.sums);
        total.cells.add_scaled(&p.cells, 1.0);
    }
    total
}
