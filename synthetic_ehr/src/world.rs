//! The hospital world: 300 hospitals fixed by the world seed, and the
//! precomputed hospital-choice table.
//!
//! Hospital h has a neighbourhood-composition position z_h ~ N(0, 1), a log annual
//! CABG volume log v_h = μ_v + σ_v ε, and a quality effect on the mortality logit
//!
//! u_h = σ_u (ρ z_h + √(1 − ρ²) η_h) − β_v (log v_h − mean log v),
//!
//! so that hospitals in minority neighbourhoods are worse on average and large
//! hospitals better. The random race slope (issue #17) is
//!
//! v_h = σ_v (ρ_v q_h + √(1 − ρ_v²) ξ_h),   q_h = ρ z_h + √(1 − ρ²) η_h,
//!
//! with σ_v = `hospital_disparity_sd` and ρ_v = `hospital_disparity_rho`; ξ_h
//! comes from its own stream ([`DISPARITY_STREAM`]), so that turning the slope
//! on or off changes no other draw. A patient at neighbourhood position w chooses hospital h with
//!
//! P(h | w) ∝ v_h exp(−(w − z_h)² / (2τ²))   (segregation kernel × volume).
//!
//! For speed the position is evaluated on a grid of step [`GRID_STEP`]: the model
//! *is* the gridded one (w is rounded to the grid before choosing), so the truth
//! computations that use the same table are exact for the data generated.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::Serialize;

use crate::params::{ModelParams, SLOPE_GROUP};
use crate::scm::expit;

/// Lowest grid position.
pub const GRID_LO: f64 = -5.0;
/// Highest grid position.
pub const GRID_HI: f64 = 8.0;
/// Grid step for the neighbourhood position.
pub const GRID_STEP: f64 = 0.01;

/// Stream of the world seed that draws ξ_h of the random race slope v_h (the
/// other hospital attributes use stream 0).
pub const DISPARITY_STREAM: u64 = 1;

/// US Census regions.
pub const REGIONS: [&str; 4] = ["Northeast", "Midwest", "South", "West"];

/// One hospital's fixed attributes.
#[derive(Debug, Clone, Serialize)]
pub struct Hospital {
    /// 1-based id as written in the data.
    pub id: u32,
    /// Neighbourhood-composition axis.
    pub z: f64,
    /// Log annual CABG volume (latent, used for choice and quality).
    pub log_volume: f64,
    /// Quality effect u_h on the mortality logit (scaled by `<outcome>_hospital`
    /// on the other outcomes).
    pub effect: f64,
    /// Random race slope v_h: added to the outcome logits of the hospital's
    /// patients of [`crate::params::SLOPE_GROUP`] (0 unless
    /// `hospital_disparity_sd` > 0).
    pub disparity: f64,
    /// Teaching hospital.
    pub teaching: bool,
    /// Index into [`REGIONS`].
    pub region: usize,
}

/// The fixed hospitals plus the choice table.
#[derive(Debug, Clone)]
pub struct World {
    /// Hospitals in id order.
    pub hospitals: Vec<Hospital>,
    /// Cumulative choice probabilities, one row of `hospitals.len()` per grid point.
    cumulative: Vec<f64>,
    bins: usize,
}

impl World {
    /// Builds the hospitals from `world_seed` and precomputes the choice table.
    pub fn new(model: &ModelParams, world_seed: u64) -> World {
        let j = (model.hospitals as usize).max(2);
        let mut rng = ChaCha8Rng::seed_from_u64(world_seed);
        let draw = |rng: &mut ChaCha8Rng| -> f64 { rng.sample(StandardNormal) };
        let z: Vec<f64> = (0..j).map(|_| draw(&mut rng)).collect();
        let log_volume: Vec<f64> = (0..j)
            .map(|_| model.log_volume_mean + model.log_volume_sd * draw(&mut rng))
            .collect();
        let eta: Vec<f64> = (0..j).map(|_| draw(&mut rng)).collect();
        let teach_u: Vec<f64> = (0..j).map(|_| rng.random::<f64>()).collect();
        let region_u: Vec<f64> = (0..j).map(|_| rng.random::<f64>()).collect();
        let mean_lv = log_volume.iter().sum::<f64>() / j as f64;
        let rho = model.hospital_effect_rho;
        let xi = disparity_noise(model, world_seed, j);
        let rho_v = model.hospital_disparity_rho;
        let hospitals = (0..j)
            .map(|h| {
                let quality = rho * z[h] + (1.0 - rho * rho).sqrt() * eta[h];
                let effect = model.hospital_effect_sd * quality
                    - model.hospital_volume_effect * (log_volume[h] - mean_lv);
                let disparity = model.hospital_disparity_sd
                    * (rho_v * quality + (1.0 - rho_v * rho_v).sqrt() * xi[h]);
                let teaching = teach_u[h] < expit(-1.2 + 1.8 * (log_volume[h] - mean_lv));
                // Regions: the South is more common along the minority axis.
                let weights = [1.0, 1.0, (0.8 * z[h]).exp(), (-0.3 * z[h]).exp()];
                let total: f64 = weights.iter().sum();
                let mut acc = 0.0;
                let mut region = REGIONS.len() - 1;
                for (r, w) in weights.iter().enumerate() {
                    acc += w / total;
                    if region_u[h] < acc {
                        region = r;
                        break;
                    }
                }
                Hospital {
                    id: h as u32 + 1,
                    z: z[h],
                    log_volume: log_volume[h],
                    effect,
                    disparity,
                    teaching,
                    region,
                }
            })
            .collect::<Vec<_>>();
        let bins = ((GRID_HI - GRID_LO) / GRID_STEP).round() as usize + 1;
        let mut cumulative = vec![0.0; bins * j];
        let two_tau2 = 2.0 * model.choice_tau * model.choice_tau;
        for b in 0..bins {
            let w = GRID_LO + b as f64 * GRID_STEP;
            let row = &mut cumulative[b * j..(b + 1) * j];
            let mut max = f64::NEG_INFINITY;
            for (slot, h) in row.iter_mut().zip(&hospitals) {
                let d = w - h.z;
                *slot = h.log_volume - d * d / two_tau2;
                max = max.max(*slot);
            }
            let mut acc = 0.0;
            for slot in row.iter_mut() {
                acc += (*slot - max).exp();
                *slot = acc;
            }
            for slot in row.iter_mut() {
                *slot /= acc;
            }
            row[j - 1] = 1.0;
        }
        World {
            hospitals,
            cumulative,
            bins,
        }
    }

    /// The random race slope of hospital `h` for a patient whose outcome block
    /// Y takes the row of `group`: v_h for [`SLOPE_GROUP`], 0 otherwise.
    #[inline]
    pub fn disparity(&self, h: usize, group: usize) -> f64 {
        if group == SLOPE_GROUP {
            self.hospitals[h].disparity
        } else {
            0.0
        }
    }

    /// Number of hospitals.
    pub fn len(&self) -> usize {
        self.hospitals.len()
    }

    /// Whether there are no hospitals (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.hospitals.is_empty()
    }

    /// The grid bin of a neighbourhood position (clamped to the grid).
    pub fn bin(&self, w: f64) -> usize {
        let b = ((w - GRID_LO) / GRID_STEP).round();
        if b.is_nan() || b <= 0.0 {
            0
        } else {
            (b as usize).min(self.bins - 1)
        }
    }

    /// The hospital index (0-based) chosen by a patient at position `w` with
    /// uniform draw `u`: the inverse CDF of P(h | w).
    pub fn choose(&self, w: f64, u: f64) -> usize {
        let j = self.len();
        let b = self.bin(w);
        let row = &self.cumulative[b * j..(b + 1) * j];
        row.partition_point(|&c| c <= u).min(j - 1)
    }

    /// P(h | w) for every hospital, on the grid.
    pub fn choice_probabilities(&self, w: f64) -> Vec<f64> {
        let j = self.len();
        let b = self.bin(w);
        let row = &self.cumulative[b * j..(b + 1) * j];
        let mut prev = 0.0;
        row.iter()
            .map(|&c| {
                let p = c - prev;
                prev = c;
                p
            })
            .collect()
    }
}

/// The standard normals ξ_h of the random race slope, one per hospital, from
/// stream [`DISPARITY_STREAM`] of the world seed; all zero (nothing drawn) when
/// `hospital_disparity_sd` is 0.
fn disparity_noise(model: &ModelParams, world_seed: u64, j: usize) -> Vec<f64> {
    if model.hospital_disparity_sd == 0.0 {
        return vec![0.0; j];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(world_seed);
    rng.set_stream(DISPARITY_STREAM);
    (0..j).map(|_| rng.sample(StandardNormal)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_inverts_the_cumulative_table() {
        let world = World::new(&ModelParams::defaults(), 1);
        let p = world.choice_probabilities(1.2);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let mut counts = vec![0usize; world.len()];
        let n = 200_000;
        for i in 0..n {
            counts[world.choose(1.2, (i as f64 + 0.5) / n as f64)] += 1;
        }
        for (c, p) in counts.iter().zip(&p) {
            assert!((*c as f64 / n as f64 - p).abs() < 2.0 / n as f64 + 1e-12);
        }
    }

    #[test]
    fn hospital_effect_has_the_calibrated_spread() {
        let world = World::new(&ModelParams::defaults(), 1);
        let u: Vec<f64> = world.hospitals.iter().map(|h| h.effect).collect();
        let m = u.iter().sum::<f64>() / u.len() as f64;
        let sd = (u.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (u.len() - 1) as f64).sqrt();
        // sd(u) = sqrt(0.35² + 0.15²·0.6²) ≈ 0.361; with 300 hospitals the
        // sampling SD of an SD is about 0.361/sqrt(600) ≈ 0.015.
        assert!((sd - 0.361).abs() < 4.0 * 0.015, "sd {sd}");
    }
}
