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
//! 7. `hospitals` (an object of its own, not in `values`; [`HospitalTruth`]):
//!    each hospital's random intercept u_h and random race slope v_h on every
//!    binary outcome's logit, their SDs (the targets of σ_u and σ_v in
//!    `y ~ covariates + race + (1 + black | hospital)`), and its true
//!    risk-standardized rate Σ p_i(u_h, v_h) / Σ p_i(0, 0) × overall rate over
//!    the sample's patients of the hospital.
//!
//! The code: the public values and [`compute`] here; the Monte-Carlo draws in
//! `truth/draws.rs`; the path-specific truths in `truth/paths.rs`; the
//! disparity-reduction truths in `truth/reduction.rs`; Kitagawa, the LPM and
//! Oaxaca-Blinder from cell moments in `truth/ols.rs`; the hospital truth in
//! `truth/hospitals.rs`.

mod draws;
mod hospitals;
mod ols;
mod paths;
mod reduction;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::missing::MissingReport;
use crate::params::{GROUP_NAMES, Params, REFERENCE_GROUP};
use crate::sample::Sample;
use crate::scm::{BLOCKS, OUTCOMES, Simulated};
use crate::world::World;
use draws::{DrawSums, IDX_GAP, draw_quantities, population_chunks, sample_acc};
pub use hospitals::{HospitalRow, HospitalTruth, compute as hospital_truth};
use ols::{Cells, moment_quantities};

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
    /// All parameters, seeds included (the missing-data ones are in `missing`).
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
    /// The hospitals' random intercepts and race slopes, their SDs, and the
    /// true risk-standardized rates (of the sample).
    pub hospitals: HospitalTruth,
    /// The cells blanked in the extract and how (absent when the data are
    /// complete). Every value above is the complete-data truth: missing cells
    /// do not change the estimands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<MissingReport>,
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
        hospitals: hospitals::compute(sample),
        missing: sample.missing.clone(),
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
