//! Ground truth: the true values of every quantity healthgap estimates, computed
//! from oracle expectations (each patient's true P(Y = 1) or E[LOS], never the
//! 0/1 draw) with common random numbers.
//!
//! Each value is given twice:
//! - `population`: a Monte-Carlo run of `population_draws` patients per group from
//!   streams independent of the sample (the same for every sample seed), with its
//!   Monte-Carlo standard error (`population_mc_se`: the SD of per-draw
//!   contributions / √N for means of common-random-number contrasts, and a
//!   delete-one-chunk jackknife over chunks of 16,384 draws for regression-based
//!   quantities);
//! - `sample`: the same functional evaluated on the sample actually drawn (its own
//!   patients and hospitals, oracle outcomes).
//!
//! Quantities (reference group r = White, comparison group c):
//! 1. `gap`, `reference_mean`, `comparison_mean`.
//! 2. `path_specific` (component = block): switch blocks D, S, C, H, Y from r to
//!    c one at a time in that order; the steps sum to the gap. The sample version
//!    averages over the sample's group-c patients, whose own outcome sits at the
//!    end of the chain, so it sums to mean_c − E[Y(all r) | c's noise].
//!    `path_specific_shapley`: the average over all 5! orders (equivalently the
//!    Shapley weights over the 32 subsets).
//! 3. `kitagawa` (component between_hospital / within_hospital):
//!    between = Σ_h (s_ch − s_rh) μ_rh, within = Σ_h s_ch (μ_ch − μ_rh). A hospital
//!    with no reference patients takes μ_rh = μ_ch (its share counts as between).
//! 4. `lpm_group_coefficient` (component crude / hospital_fe / covariates /
//!    covariates_hospital_fe): the coefficient on 1{c} in the linear probability
//!    model on r ∪ c, weighted to the population shares, over the canonical
//!    covariates ([`CANONICAL_BLOCKS`]) with hospital fixed effects absorbed.
//! 5. `oaxaca_blinder_reference` and `oaxaca_blinder_pooled` (component explained,
//!    unexplained, explained:<block>): linear OB over the canonical blocks with
//!    hospital_id absorbed; the care-site explained part is Σ_h (s_ch − s_rh) α*_h.
//!    β* = b_r (reference), or the pooled model with a group indicator (Jann).
//! 6. `disparity_reduction` (Jackson & VanderWeele 2018), allowable A = age and
//!    sex, for every non-empty set T of the targets socioeconomic (S, ADI,
//!    insurance), clinical (comorbidities, EF, status, BMI, creatinine) and
//!    care_site (hospital). For each c patient a fresh reference patient with the
//!    same age and sex is drawn; T is taken from that patient (jointly when T has
//!    several blocks), the rest stays at the c patient's values, and the outcome
//!    model keeps the c patient's direct term:
//!    - `initial_disparity` = E[Y | c] − Σ_a E[Y | r, a] P(a | c);
//!    - `disparity_remaining:<T>` = E[Y(G_T) | c] − Σ_a E[Y | r, a] P(a | c);
//!    - `disparity_reduction:<T>` = E[Y | c] − E[Y(G_T) | c];
//!    - `disparity_reduction_shapley:<target>`: Shapley average over the three.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::params::{GROUP_NAMES, Params, REFERENCE_GROUP};
use crate::sample::{Sample, assign_group, cumulative_shares};
use crate::scm::{
    self, BLOCKS, CHUNK, FRESH_STREAM_OFFSET, Noise, OUTCOMES, POPULATION_STREAM_OFFSET, Simulated,
};
use crate::world::World;

/// Canonical factor blocks (kept in sync with `analyses/cabg_synthetic.toml`).
pub const CANONICAL_BLOCKS: [(&str, &[&str]); 3] = [
    (
        "biological",
        &[
            "age",
            "female",
            "diabetes",
            "dialysis",
            "heart_failure",
            "lung_disease",
            "pad",
            "prior_mi",
            "ejection_fraction",
            "status",
        ],
    ),
    ("socioeconomic", &["adi", "insurance"]),
    ("care_site", &["hospital_id"]),
];

/// Design columns of the canonical covariates (reference levels: status elective,
/// insurance private), in order.
pub const DESIGN_COLUMNS: [&str; 15] = [
    "age",
    "female",
    "diabetes",
    "dialysis",
    "heart_failure",
    "lung_disease",
    "pad",
    "prior_mi",
    "ejection_fraction",
    "status=urgent",
    "status=emergent",
    "adi",
    "insurance=medicare",
    "insurance=medicaid",
    "insurance=uninsured",
];

/// Number of biological columns at the start of [`DESIGN_COLUMNS`].
const BIOLOGICAL_COLUMNS: usize = 11;

/// Disparity-reduction targets, as bits of a subset mask.
pub const TARGETS: [&str; 3] = ["socioeconomic", "clinical", "care_site"];

const P: usize = 1 + DESIGN_COLUMNS.len();
const K: usize = OUTCOMES.len();
const NSUB: usize = 7;

/// One truth value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TruthValue {
    /// Quantity name (see the module documentation).
    pub quantity: String,
    /// Comparison group.
    pub comparison: String,
    /// Outcome column.
    pub outcome: String,
    /// Component (block, split part), or null for the quantity itself.
    pub component: Option<String>,
    /// Population value (Monte Carlo).
    pub population: f64,
    /// Monte-Carlo standard error of the population value.
    pub population_mc_se: f64,
    /// Value for the sample drawn.
    pub sample: Option<f64>,
}

/// A calibration measure (population value) next to its target.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationValue {
    /// What is measured.
    pub measure: String,
    /// Group.
    pub group: String,
    /// Population value.
    pub value: f64,
}

/// Generator identification.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorInfo {
    /// Crate name.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// Everything written to truth.json.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// truth.json format version.
    pub schema_version: u32,
    /// Which generator made it.
    pub generator: GeneratorInfo,
    /// All parameters, seeds included.
    pub parameters: Params,
    /// Seed of the population Monte-Carlo streams (derived from the world seed).
    pub population_seed: u64,
    /// Reference group.
    pub reference: String,
    /// Outcomes.
    pub outcomes: Vec<String>,
    /// Path-specific switching order.
    pub path_order: Vec<String>,
    /// Canonical blocks.
    pub canonical_blocks: BTreeMap<String, Vec<String>>,
    /// Design columns used by the regression-based truths.
    pub design_columns: Vec<String>,
    /// Plain-language definitions of each quantity.
    pub definitions: BTreeMap<String, String>,
    /// Population calibration measures.
    pub calibration: Vec<CalibrationValue>,
    /// The values.
    pub values: Vec<TruthValue>,
}

impl Truth {
    /// Looks a value up.
    pub fn get(
        &self,
        quantity: &str,
        comparison: &str,
        outcome: &str,
        component: Option<&str>,
    ) -> Option<&TruthValue> {
        self.values.iter().find(|v| {
            v.quantity == quantity
                && v.comparison == comparison
                && v.outcome == outcome
                && v.component.as_deref() == component
        })
    }
}

/// The design row z = [1, canonical covariates] of a simulated patient.
pub fn design_row(s: &Simulated) -> [f64; P] {
    let f = |b: bool| f64::from(u8::from(b));
    let c = &s.clinical;
    let ins = s.socioeconomic.insurance;
    [
        1.0,
        s.demographics.age,
        f(s.demographics.female),
        f(c.conditions[0]),
        f(c.conditions[1]),
        f(c.conditions[2]),
        f(c.conditions[3]),
        f(c.conditions[4]),
        f(c.conditions[5]),
        c.ef,
        f(c.status == 1),
        f(c.status == 2),
        s.socioeconomic.adi,
        f(ins == 1),
        f(ins == 2),
        f(ins == 3),
    ]
}

/// Weighted moments of one (group, hospital) cell: Σw, Σwz, Σwzzᵀ, Σwzy.
#[derive(Debug, Clone)]
struct Moments {
    zz: Vec<f64>,
    zy: Vec<f64>,
}

impl Moments {
    fn new() -> Self {
        Moments {
            zz: vec![0.0; P * P],
            zy: vec![0.0; P * K],
        }
    }
    fn add(&mut self, z: &[f64; P], y: &[f64; K]) {
        for i in 0..P {
            let zi = z[i];
            if zi == 0.0 {
                continue;
            }
            let row = &mut self.zz[i * P..(i + 1) * P];
            for j in 0..P {
                row[j] += zi * z[j];
            }
            for k in 0..K {
                self.zy[i * K + k] += zi * y[k];
            }
        }
    }
    fn add_scaled(&mut self, other: &Moments, scale: f64) {
        for (a, b) in self.zz.iter_mut().zip(&other.zz) {
            *a += scale * b;
        }
        for (a, b) in self.zy.iter_mut().zip(&other.zy) {
            *a += scale * b;
        }
    }
    fn weight(&self) -> f64 {
        self.zz[0]
    }
}

/// Moments per group (0 = reference, 1 = comparison) and hospital.
#[derive(Debug, Clone)]
struct Cells {
    cells: Vec<Moments>,
    hospitals: usize,
}

impl Cells {
    fn new(hospitals: usize) -> Self {
        Cells {
            cells: vec![Moments::new(); 2 * hospitals],
            hospitals,
        }
    }
    fn at(&mut self, group: usize, h: usize) -> &mut Moments {
        &mut self.cells[group * self.hospitals + h]
    }
    fn get(&self, group: usize, h: usize) -> &Moments {
        &self.cells[group * self.hospitals + h]
    }
    fn add_scaled(&mut self, other: &Cells, scale: f64) {
        for (a, b) in self.cells.iter_mut().zip(&other.cells) {
            a.add_scaled(b, scale);
        }
    }
    /// Cells with group-specific weights (population shares).
    fn weighted(&self, weights: [f64; 2]) -> Cells {
        let mut out = Cells::new(self.hospitals);
        for g in 0..2 {
            for h in 0..self.hospitals {
                out.at(g, h).add_scaled(self.get(g, h), weights[g]);
            }
        }
        out
    }
}

/// Augmented column index: 0 = constant, 1 = group indicator, 2.. = covariates.
fn aug(group: usize, m: &Moments, a: usize, b: usize) -> f64 {
    let g = group as f64;
    let zi = |i: usize| -> Option<usize> {
        match i {
            0 => Some(0),
            1 => None,
            _ => Some(i - 1),
        }
    };
    let factor = usize::from(a == 1) + usize::from(b == 1);
    let scale = if factor > 0 { g } else { 1.0 };
    let (ia, ib) = (zi(a).unwrap_or(0), zi(b).unwrap_or(0));
    scale * m.zz[ia * P + ib]
}

fn aug_y(group: usize, m: &Moments, a: usize, k: usize) -> f64 {
    let g = group as f64;
    match a {
        1 => g * m.zy[k],
        0 => m.zy[k],
        _ => m.zy[(a - 1) * K + k],
    }
}

/// Result of a weighted least-squares fit on cell moments.
struct Fit {
    /// Coefficients per outcome, in the order of `cols`.
    coef: Vec<[f64; K]>,
}

/// Weighted least squares of the K outcomes on the augmented columns `cols`,
/// over the cells of `groups`, optionally absorbing hospital fixed effects by the
/// within transformation: XᵀX = Σ_h (A_h − s_h s_hᵀ / W_h).
fn wls(cells: &Cells, groups: &[usize], cols: &[usize], fe: bool) -> Option<Fit> {
    let q = cols.len();
    let mut xtx = vec![0.0; q * q];
    let mut xty = vec![0.0; q * K];
    for h in 0..cells.hospitals {
        let mut a = vec![0.0; q * q];
        let mut ay = vec![0.0; q * K];
        let mut s = vec![0.0; q];
        let mut sy = [0.0; K];
        let mut w = 0.0;
        for &g in groups {
            let m = cells.get(g, h);
            if m.weight() == 0.0 {
                continue;
            }
            w += m.weight();
            for (i, &ci) in cols.iter().enumerate() {
                s[i] += aug(g, m, 0, ci);
                for (j, &cj) in cols.iter().enumerate() {
                    a[i * q + j] += aug(g, m, ci, cj);
                }
                for k in 0..K {
                    ay[i * K + k] += aug_y(g, m, ci, k);
                }
            }
            for (k, slot) in sy.iter_mut().enumerate() {
                *slot += m.zy[k];
            }
        }
        if w == 0.0 {
            continue;
        }
        for i in 0..q {
            for j in 0..q {
                xtx[i * q + j] += a[i * q + j] - if fe { s[i] * s[j] / w } else { 0.0 };
            }
            for k in 0..K {
                xty[i * K + k] += ay[i * K + k] - if fe { s[i] * sy[k] / w } else { 0.0 };
            }
        }
    }
    let beta = cholesky_solve(&xtx, &xty, q, K)?;
    Some(Fit {
        coef: (0..q)
            .map(|i| std::array::from_fn(|k| beta[i * K + k]))
            .collect(),
    })
}

/// Solves A X = B for symmetric positive definite A (q × q) and B (q × r).
fn cholesky_solve(a: &[f64], b: &[f64], q: usize, r: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; q * q];
    for i in 0..q {
        for j in 0..=i {
            let mut sum = a[i * q + j];
            for k in 0..j {
                sum -= l[i * q + k] * l[j * q + k];
            }
            if i == j {
                if sum.is_nan() || sum <= 1e-12 * a[i * q + i].abs().max(1e-300) {
                    return None;
                }
                l[i * q + i] = sum.sqrt();
            } else {
                l[i * q + j] = sum / l[j * q + j];
            }
        }
    }
    let mut x = b.to_vec();
    for c in 0..r {
        for i in 0..q {
            let mut sum = x[i * r + c];
            for k in 0..i {
                sum -= l[i * q + k] * x[k * r + c];
            }
            x[i * r + c] = sum / l[i * q + i];
        }
        for i in (0..q).rev() {
            let mut sum = x[i * r + c];
            for k in i + 1..q {
                sum -= l[k * q + i] * x[k * r + c];
            }
            x[i * r + c] = sum / l[i * q + i];
        }
    }
    Some(x)
}

/// Moment-based quantities of one set of cells (weights already applied).
/// Returns (quantity, component, value per outcome).
fn moment_quantities(cells: &Cells) -> Vec<(&'static str, String, [f64; K])> {
    let mut out = Vec::new();
    let nh = cells.hospitals;
    let total = |g: usize| -> f64 { (0..nh).map(|h| cells.get(g, h).weight()).sum() };
    let (wr, wc) = (total(0), total(1));
    if wr <= 0.0 || wc <= 0.0 {
        return out;
    }
    let mean_y = |g: usize, wtot: f64| -> [f64; K] {
        std::array::from_fn(|k| (0..nh).map(|h| cells.get(g, h).zy[k]).sum::<f64>() / wtot)
    };
    let (yr, yc) = (mean_y(0, wr), mean_y(1, wc));
    let gap: [f64; K] = std::array::from_fn(|k| yc[k] - yr[k]);
    // Kitagawa.
    let mut between = [0.0; K];
    let mut within = [0.0; K];
    for h in 0..nh {
        let (mr, mc) = (cells.get(0, h), cells.get(1, h));
        let (sr, sc) = (mr.weight() / wr, mc.weight() / wc);
        for k in 0..K {
            let mu_c = if mc.weight() > 0.0 {
                mc.zy[k] / mc.weight()
            } else {
                0.0
            };
            let mu_r = if mr.weight() > 0.0 {
                mr.zy[k] / mr.weight()
            } else {
                mu_c
            };
            between[k] += (sc - sr) * mu_r;
            within[k] += sc * (mu_c - mu_r);
        }
    }
    out.push(("kitagawa", "between_hospital".to_string(), between));
    out.push(("kitagawa", "within_hospital".to_string(), within));
    // LPM group coefficient.
    let x: Vec<usize> = (2..P + 1).collect();
    let with =
        |head: &[usize]| -> Vec<usize> { head.iter().copied().chain(x.iter().copied()).collect() };
    for (name, cols, fe) in [
        ("crude", vec![0, 1], false),
        ("hospital_fe", vec![1], true),
        ("covariates", with(&[0, 1]), false),
        ("covariates_hospital_fe", with(&[1]), true),
    ] {
        let pos = cols.iter().position(|&c| c == 1).unwrap_or(0);
        if let Some(fit) = wls(cells, &[0, 1], &cols, fe) {
            out.push(("lpm_group_coefficient", name.to_string(), fit.coef[pos]));
        }
    }
    // Oaxaca-Blinder with hospital FE absorbed.
    let xbar = |g: usize, wtot: f64| -> Vec<f64> {
        x.iter()
            .map(|&c| (0..nh).map(|h| aug(g, cells.get(g, h), 0, c)).sum::<f64>() / wtot)
            .collect()
    };
    let (xr, xc) = (xbar(0, wr), xbar(1, wc));
    let pooled = wls(cells, &[0, 1], &with(&[1]), true);
    let reference = wls(cells, &[0], &x, true);
    // Hospital intercepts α_h = (Σwy − Σ_j s_j b_j − τ Σ w g)/W over the cells used.
    let alpha =
        |groups: &[usize], b: &[[f64; K]], tau: Option<[f64; K]>, h: usize| -> Option<[f64; K]> {
            let mut w = 0.0;
            let mut val = [0.0; K];
            for &g in groups {
                let m = cells.get(g, h);
                w += m.weight();
                for k in 0..K {
                    val[k] += m.zy[k];
                    for (j, &c) in x.iter().enumerate() {
                        val[k] -= aug(g, m, 0, c) * b[j][k];
                    }
                    if let Some(t) = tau {
                        val[k] -= g as f64 * m.weight() * t[k];
                    }
                }
            }
            (w > 0.0).then(|| std::array::from_fn(|k| val[k] / w))
        };
    if let (Some(pooled), Some(reference)) = (pooled, reference) {
        let pooled_tau = pooled.coef[0];
        let b_pooled: Vec<[f64; K]> = pooled.coef[1..].to_vec();
        for (label, b, groups, tau) in [
            (
                "oaxaca_blinder_reference",
                reference.coef.clone(),
                vec![0usize],
                None,
            ),
            (
                "oaxaca_blinder_pooled",
                b_pooled.clone(),
                vec![0, 1],
                Some(pooled_tau),
            ),
        ] {
            let mut bio = [0.0; K];
            let mut ses = [0.0; K];
            for (j, b_j) in b.iter().enumerate() {
                for k in 0..K {
                    let v = (xc[j] - xr[j]) * b_j[k];
                    if j < BIOLOGICAL_COLUMNS {
                        bio[k] += v;
                    } else {
                        ses[k] += v;
                    }
                }
            }
            let mut care = [0.0; K];
            for h in 0..nh {
                let sr = cells.get(0, h).weight() / wr;
                let sc = cells.get(1, h).weight() / wc;
                if sr == 0.0 && sc == 0.0 {
                    continue;
                }
                let a = alpha(&groups, &b, tau, h)
                    .or_else(|| alpha(&[0, 1], &b_pooled, Some(pooled_tau), h))
                    .unwrap_or([0.0; K]);
                for k in 0..K {
                    care[k] += (sc - sr) * a[k];
                }
            }
            let explained: [f64; K] = std::array::from_fn(|k| bio[k] + ses[k] + care[k]);
            out.push((label, "explained".to_string(), explained));
            out.push((
                label,
                "unexplained".to_string(),
                std::array::from_fn(|k| gap[k] - explained[k]),
            ));
            out.push((label, "explained:biological".to_string(), bio));
            out.push((label, "explained:socioeconomic".to_string(), ses));
            out.push((label, "explained:care_site".to_string(), care));
        }
    }
    out
}

/// Per-draw contrasts: sums and sums of squares of each scalar contribution.
#[derive(Debug, Clone)]
struct DrawSums {
    n: f64,
    sum: Vec<f64>,
    sumsq: Vec<f64>,
}

/// Layout of the per-draw contributions (each × K outcomes).
const IDX_REF: usize = 0; // E[Y(all r)] on this noise
const IDX_COMP: usize = 1; // E[Y(all c)]
const IDX_SEQ: usize = 2; // 5 sequential steps
const IDX_SHAP: usize = 7; // 5 Shapley values
const IDX_INIT: usize = 12; // initial disparity
const IDX_REM: usize = 13; // 7 remaining
const IDX_RED: usize = 20; // 7 reductions
const IDX_DRSHAP: usize = 27; // 3 Shapley reductions
const IDX_GAP: usize = 30; // E[Y(all c)] − E[Y(all r)]
const NSCALAR: usize = 31;

impl DrawSums {
    fn new() -> Self {
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
    fn merge(&mut self, o: &DrawSums) {
        self.n += o.n;
        for i in 0..self.sum.len() {
            self.sum[i] += o.sum[i];
            self.sumsq[i] += o.sumsq[i];
        }
    }
    fn mean(&self, i: usize) -> f64 {
        self.sum[i] / self.n
    }
    fn se(&self, i: usize) -> f64 {
        let m = self.mean(i);
        ((self.sumsq[i] / self.n - m * m).max(0.0) / (self.n - 1.0).max(1.0)).sqrt()
    }
}

/// Shapley weight |S|!(n − |S| − 1)!/n! for a subset of size s out of n players.
fn shapley_weight(s: usize, n: usize) -> f64 {
    let factorial = |k: usize| -> f64 { (1..=k).map(|i| i as f64).product() };
    factorial(s) * factorial(n - s - 1) / factorial(n)
}

/// Shapley weights by subset mask for 5 and 3 players.
struct ShapleyWeights {
    five: [f64; 32],
    three: [f64; 8],
}

impl ShapleyWeights {
    fn new() -> Self {
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
fn draw_contributions(
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
    // Interventional disparity reduction: a fresh reference patient with the
    // comparison patient's age and sex supplies the target blocks.
    let (gc, gr) = (gs[1], gs[0]);
    let demo_c = &demo[1];
    let (ses_c, clin_c, h_c) = (&ses[1][1], &clin[1][1][1], hosp[1][1][1]);
    let ses_r = scm::socioeconomic(m, gr, f, demo_c);
    let clin_r = scm::clinical(m, gr, f, demo_c, &ses_r);
    let h_r = scm::hospital(world, m, gr, f, &ses_r);
    let y_c = v[31];
    let y_std = scm::outcome_model(m, gr, demo_c, &ses_r, &clin_r, effect(h_r)).oracle(m);
    let mut y_t = [[0.0; K]; 8];
    y_t[0] = y_c;
    for (t, slot) in y_t.iter_mut().enumerate().skip(1) {
        let ses = if t & 1 == 1 { &ses_r } else { ses_c };
        let clin = if t & 2 == 2 { &clin_r } else { clin_c };
        let h = if t & 4 == 4 { h_r } else { h_c };
        *slot = scm::outcome_model(m, gc, demo_c, ses, clin, effect(h)).oracle(m);
    }
    for k in 0..K {
        out[IDX_INIT * K + k] = y_c[k] - y_std[k];
        for t in 1..8 {
            out[(IDX_REM + t - 1) * K + k] = y_t[t][k] - y_std[k];
            out[(IDX_RED + t - 1) * K + k] = y_c[k] - y_t[t][k];
        }
        for b in 0..3 {
            let mut phi = 0.0;
            for s in 0..8usize {
                if s >> b & 1 == 0 {
                    // reduction(S ∪ b) − reduction(S) = y(S) − y(S ∪ b)
                    phi += weights.three[s] * (y_t[s][k] - y_t[s | 1 << b][k]);
                }
            }
            out[(IDX_DRSHAP + b) * K + k] = phi;
        }
    }
    (sim(0), sim(1))
}

/// Name of a target subset mask (bits in the order of [`TARGETS`]).
pub fn target_set_name(mask: usize) -> String {
    TARGETS
        .iter()
        .enumerate()
        .filter(|(b, _)| mask >> b & 1 == 1)
        .map(|(_, t)| *t)
        .collect::<Vec<_>>()
        .join("+")
}

/// Per-draw quantities in output order: (quantity, component, scalar index).
fn draw_quantities() -> Vec<(&'static str, Option<String>, usize)> {
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
struct ChunkAcc {
    sums: DrawSums,
    cells: Cells,
}

/// Population accumulators per chunk for comparison group `c`.
fn population_chunks(world: &World, params: &Params, pop_seed: u64, c: usize) -> Vec<ChunkAcc> {
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
fn sample_acc(sample: &Sample, c: usize) -> ChunkAcc {
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

/// Computes every truth value for every comparison group with a positive share.
pub fn compute(sample: &Sample) -> Truth {
    let params = &sample.params;
    let world = &sample.world;
    let pop_seed = params.world_seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED_7AB1_E000_0001;
    let shares = params.shares();
    let mut values = Vec::new();
    let mut calibration = Vec::new();
    for c in 1..GROUP_NAMES.len() {
        if shares[c] <= 0.0 {
            continue;
        }
        let name = GROUP_NAMES[c];
        let weights = {
            let t = shares[REFERENCE_GROUP] + shares[c];
            [shares[REFERENCE_GROUP] / t, shares[c] / t]
        };
        let chunks = population_chunks(world, params, pop_seed, c);
        let samp = sample_acc(sample, c);
        let has_sample_c = samp.sums.n > 0.0;
        // Per-draw quantities.
        let mut pop = DrawSums::new();
        for ch in &chunks {
            pop.merge(&ch.sums);
        }
        let mut push = |quantity: &str,
                        component: Option<String>,
                        k: usize,
                        p: f64,
                        se: f64,
                        s: Option<f64>| {
            values.push(TruthValue {
                quantity: quantity.to_string(),
                comparison: name.to_string(),
                outcome: OUTCOMES[k].to_string(),
                component,
                population: p,
                population_mc_se: se,
                sample: s,
            });
        };
        // The gap: E[Y(all c)] − E[Y(all r)] on common noise.
        for k in 0..K {
            let i = IDX_GAP * K + k;
            let sample_gap = {
                let wr: f64 = (0..world.len())
                    .map(|h| samp.cells.get(0, h).weight())
                    .sum();
                let wc: f64 = (0..world.len())
                    .map(|h| samp.cells.get(1, h).weight())
                    .sum();
                let yr: f64 = (0..world.len()).map(|h| samp.cells.get(0, h).zy[k]).sum();
                let yc: f64 = (0..world.len()).map(|h| samp.cells.get(1, h).zy[k]).sum();
                (wr > 0.0 && wc > 0.0).then(|| yc / wc - yr / wr)
            };
            push("gap", None, k, pop.mean(i), pop.se(i), sample_gap);
        }
        for (quantity, component, idx) in draw_quantities() {
            for k in 0..K {
                let i = idx * K + k;
                let s = has_sample_c.then(|| samp.sums.mean(i));
                push(quantity, component.clone(), k, pop.mean(i), pop.se(i), s);
            }
        }
        // Moment-based quantities, population weighted to the group shares.
        let mut all = Cells::new(world.len());
        for ch in &chunks {
            all.add_scaled(&ch.cells, 1.0);
        }
        let full = moment_quantities(&all.weighted(weights));
        let jack: Vec<Vec<(&str, String, [f64; K])>> = (0..chunks.len())
            .map(|j| {
                let mut cells = all.clone();
                cells.add_scaled(&chunks[j].cells, -1.0);
                moment_quantities(&cells.weighted(weights))
            })
            .collect();
        let in_sample = moment_quantities(&samp.cells);
        calibration.extend(calibration_values(world, &all, c, calibration.is_empty()));
        for (quantity, component, value) in &full {
            for k in 0..K {
                let reps: Vec<f64> = jack
                    .iter()
                    .filter_map(|j| {
                        j.iter()
                            .find(|(q, c, _)| q == quantity && c == component)
                            .map(|x| x.2[k])
                    })
                    .collect();
                let b = reps.len() as f64;
                let m = reps.iter().sum::<f64>() / b.max(1.0);
                let se = ((b - 1.0) / b.max(1.0)
                    * reps.iter().map(|x| (x - m).powi(2)).sum::<f64>())
                .sqrt();
                let s = in_sample
                    .iter()
                    .find(|(q, c, _)| q == quantity && c == component)
                    .map(|x| x.2[k]);
                push(quantity, Some(component.clone()), k, value[k], se, s);
            }
        }
    }
    Truth {
        schema_version: 1,
        generator: GeneratorInfo {
            name: "healthgap-synth".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        parameters: params.clone(),
        population_seed: pop_seed,
        reference: GROUP_NAMES[REFERENCE_GROUP].into(),
        outcomes: OUTCOMES.iter().map(|s| (*s).to_string()).collect(),
        path_order: BLOCKS.iter().map(|s| (*s).to_string()).collect(),
        canonical_blocks: CANONICAL_BLOCKS
            .iter()
            .map(|(b, vars)| {
                (
                    (*b).to_string(),
                    vars.iter().map(|v| (*v).to_string()).collect(),
                )
            })
            .collect(),
        design_columns: DESIGN_COLUMNS.iter().map(|s| (*s).to_string()).collect(),
        definitions: definitions(),
        calibration,
        values,
    }
}

/// Population calibration measures from the unweighted cells of one comparison
/// (rows for the reference group only once).
fn calibration_values(
    world: &World,
    cells: &Cells,
    c: usize,
    with_reference: bool,
) -> Vec<CalibrationValue> {
    let nh = cells.hospitals;
    let mut out = Vec::new();
    let mut row = |measure: &str, group: usize, value: f64| {
        out.push(CalibrationValue {
            measure: measure.to_string(),
            group: GROUP_NAMES[group].to_string(),
            value,
        });
    };
    for (slot, group) in [(0, REFERENCE_GROUP), (1, c)] {
        if slot == 0 && !with_reference {
            continue;
        }
        let w: f64 = (0..nh).map(|h| cells.get(slot, h).weight()).sum();
        let col = |j: usize| (0..nh).map(|h| cells.get(slot, h).zz[j]).sum::<f64>() / w;
        let y = |k: usize| (0..nh).map(|h| cells.get(slot, h).zy[k]).sum::<f64>() / w;
        row("death_30d", group, y(0));
        row("major_morbidity_or_death", group, y(1));
        row("readmit_30d_unconditional", group, y(2));
        row("los_days_mean", group, y(3));
        row("dialysis", group, col(4));
        row("medicaid", group, col(14));
        let mut by_volume: Vec<f64> = (0..nh).map(|h| cells.get(slot, h).weight() / w).collect();
        by_volume.sort_by(|a, b| b.total_cmp(a));
        let top = |share: f64| {
            by_volume[..((share * nh as f64).round() as usize).max(1)]
                .iter()
                .sum::<f64>()
        };
        row("share_at_top_5pct_hospitals", group, top(0.05));
        row("share_at_top_25pct_hospitals", group, top(0.25));
        let u: f64 = (0..nh)
            .map(|h| cells.get(slot, h).weight() * world.hospitals[h].effect)
            .sum::<f64>()
            / w;
        row("mean_hospital_effect", group, u);
    }
    out
}

fn definitions() -> BTreeMap<String, String> {
    [
        ("gap", "E[Y | c] − E[Y | r] of the oracle outcome (probability, or expected LOS)"),
        ("reference_mean", "E[Y(all blocks r)] on the comparison group's noise; population: equals E[Y | r]"),
        ("comparison_mean", "E[Y | c]"),
        ("path_specific", "switch blocks demographics, socioeconomic, clinical, hospital, direct from r to c in that order; each step's change; the steps sum to the gap"),
        ("path_specific_shapley", "the same, averaged over all 5! switching orders"),
        ("kitagawa", "between = Σ_h (s_ch − s_rh) μ_rh; within = Σ_h s_ch (μ_ch − μ_rh)"),
        ("lpm_group_coefficient", "coefficient on 1{c} in the LPM on r ∪ c: crude; hospital FE; canonical covariates; covariates + hospital FE"),
        ("oaxaca_blinder_reference", "linear twofold OB with β* = b_r, canonical blocks, hospital_id absorbed"),
        ("oaxaca_blinder_pooled", "linear twofold OB with β* from the pooled model with a group indicator (Jann), hospital_id absorbed"),
        ("initial_disparity", "E[Y | c] − Σ_a E[Y | r, a] P(a | c), allowable a = (age, female)"),
        ("disparity_remaining", "E[Y(G_T) | c] − Σ_a E[Y | r, a] P(a | c): target blocks T drawn from the reference distribution given age and sex"),
        ("disparity_reduction", "E[Y | c] − E[Y(G_T) | c]"),
        ("disparity_reduction_shapley", "Shapley average of the reduction over the three targets"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
