//! Drawing the sample: one row per index CABG, generated in parallel chunks whose
//! random streams depend only on (seed, chunk), so the sample is bit-identical
//! whatever the thread count.

use rayon::prelude::*;

use crate::missing::{self, Blankable, MissingReport};
use crate::params::{GROUP_NAMES, Params};
use crate::scm::{self, BlockGroups, CHUNK, Noise, Outcomes, Simulated};
use crate::table::{Column, MISSING_LEVEL, Table, civil_from_days};
use crate::world::{REGIONS, World};

/// First surgery date: 2019-01-01, in days since 1970-01-01.
pub const FIRST_DATE: i32 = 17_897;
/// Number of calendar days of surgery dates (2019-01-01 .. 2023-12-31).
pub const DATE_SPAN: u64 = 1_826;

/// visit_id of patient i is VISIT_ID_OFFSET + person_id.
pub const VISIT_ID_OFFSET: i64 = 10_000_000;

/// One generated patient.
#[derive(Debug, Clone, Copy)]
pub struct Patient {
    /// Index into [`GROUP_NAMES`].
    pub group: u8,
    /// All blocks and the outcome model.
    pub sim: Simulated,
    /// Drawn outcomes.
    pub outcomes: Outcomes,
    /// Administrative seed.
    pub aux: u64,
    /// Blanked columns of the extract, one bit each ([`Blankable::bit`]); the
    /// values in `sim` stay complete.
    pub missing: u8,
}

impl Patient {
    /// Whether `column` is blanked in this patient's record.
    pub fn is_missing(&self, column: Blankable) -> bool {
        self.missing & column.bit() != 0
    }

    /// Surgery date in days since 1970-01-01.
    pub fn surgery_date(&self) -> i32 {
        FIRST_DATE + (mix(self.aux, 0) % DATE_SPAN) as i32
    }
}

/// SplitMix64 of `aux` and a salt: independent administrative draws per patient.
pub fn mix(aux: u64, salt: u64) -> u64 {
    let mut z = aux ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform in [0, 1) from `mix(aux, salt)`.
pub fn mix_uniform(aux: u64, salt: u64) -> f64 {
    (mix(aux, salt) >> 11) as f64 / (1u64 << 53) as f64
}

/// The group drawn from a uniform and the cumulative shares.
pub fn assign_group(u: f64, cumulative: &[f64]) -> usize {
    cumulative
        .iter()
        .position(|&c| u < c)
        .unwrap_or(cumulative.len() - 1)
}

/// The generated sample with its world.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Parameters used.
    pub params: Params,
    /// The hospitals.
    pub world: World,
    /// Patients in person_id order.
    pub patients: Vec<Patient>,
    /// What the missing-data mechanism blanked (None when nothing was
    /// requested: the extract is complete).
    pub missing: Option<MissingReport>,
}

/// Cumulative group shares.
pub fn cumulative_shares(params: &Params) -> Vec<f64> {
    let mut acc = 0.0;
    params
        .shares()
        .iter()
        .map(|s| {
            acc += s;
            acc
        })
        .collect()
}

impl Sample {
    /// Draws `params.patients` patients, then their missing cells (if
    /// `params.missing` asks for any; [`crate::missing`]). `progress` is called
    /// with the number of patients finished in each chunk.
    pub fn generate(params: &Params, progress: &(dyn Fn(u64) + Sync)) -> Sample {
        let world = World::new(&params.model, params.world_seed);
        let cum = cumulative_shares(params);
        let n = params.patients;
        let chunks = n.div_ceil(CHUNK);
        let parts: Vec<Vec<Patient>> = (0..chunks)
            .into_par_iter()
            .map(|k| {
                let start = k * CHUNK;
                let len = CHUNK.min(n - start);
                let out = Noise::chunk(params.seed, 0, start, len)
                    .iter()
                    .map(|noise| {
                        let g = assign_group(noise.group, &cum);
                        let sim = scm::simulate(
                            &world,
                            &params.model,
                            &params.groups,
                            BlockGroups::all(g),
                            noise,
                        );
                        let outcomes = scm::draw_outcomes(&params.model, &sim.outcome, noise);
                        Patient {
                            group: g as u8,
                            sim,
                            outcomes,
                            aux: noise.aux,
                            missing: 0,
                        }
                    })
                    .collect();
                progress(len as u64);
                out
            })
            .collect();
        let mut sample = Sample {
            params: params.clone(),
            world,
            patients: parts.into_iter().flatten().collect(),
            missing: None,
        };
        if let Some((bits, report)) = missing::draw(&sample) {
            for (p, b) in sample.patients.iter_mut().zip(bits) {
                p.missing = b;
            }
            sample.missing = Some(report);
        }
        sample
    }

    /// Whether any patient has `column` blanked.
    pub fn has_missing(&self, column: Blankable) -> bool {
        self.patients.iter().any(|p| p.is_missing(column))
    }

    /// Patients per hospital in the sample.
    pub fn hospital_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.world.len()];
        for p in &self.patients {
            counts[p.sim.hospital] += 1;
        }
        counts
    }

    /// Calendar years spanned by the surgery dates (max year − min year + 1): the
    /// denominator of the annual `hospital_volume`.
    pub fn calendar_years(&self) -> f64 {
        let years = self
            .patients
            .iter()
            .map(|p| civil_from_days(p.surgery_date()).0);
        let (lo, hi) = years.fold((i32::MAX, i32::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
        if lo > hi { 1.0 } else { f64::from(hi - lo + 1) }
    }

    /// The flat extract: one row per index CABG (SYNTHETIC_EHR.md, Outputs).
    /// Blanked cells ([`crate::missing`]) are null: `OptInt` None, a NaN float,
    /// or the categorical code [`MISSING_LEVEL`].
    pub fn flat_table(&self) -> Table {
        let ps = &self.patients;
        let counts = self.hospital_counts();
        let years = self.calendar_years();
        let int = |f: &dyn Fn(&Patient) -> i64| Column::Int(ps.iter().map(f).collect());
        let flag = |f: &dyn Fn(&Patient) -> bool| {
            Column::Int(ps.iter().map(|p| i64::from(f(p))).collect())
        };
        let float = |f: &dyn Fn(&Patient) -> f64| Column::Float(ps.iter().map(f).collect());
        // Blankable columns: an integer column gets nulls only when it has holes,
        // so complete data are written exactly as before.
        let holed_int = |b: Blankable, f: &dyn Fn(&Patient) -> i64| {
            if self.has_missing(b) {
                Column::OptInt(
                    ps.iter()
                        .map(|p| (!p.is_missing(b)).then(|| f(p)))
                        .collect(),
                )
            } else {
                int(f)
            }
        };
        let holed_float = |b: Blankable, f: &dyn Fn(&Patient) -> f64| {
            float(&|p: &Patient| if p.is_missing(b) { f64::NAN } else { f(p) })
        };
        let cat = |levels: &[&str], f: &dyn Fn(&Patient) -> u32| Column::Cat {
            codes: ps.iter().map(f).collect(),
            levels: levels.iter().map(|s| (*s).to_string()).collect(),
        };
        let cond = |k: usize| flag(&|p: &Patient| p.sim.clinical.conditions[k]);
        let hospital = |p: &Patient| &self.world.hospitals[p.sim.hospital];
        let zip_levels: Vec<String> = (0..1000).map(|z| format!("{z:03}")).collect();
        let columns = vec![
            ("person_id", Column::Int((1..=ps.len() as i64).collect())),
            (
                "visit_id",
                Column::Int((1..=ps.len() as i64).map(|i| VISIT_ID_OFFSET + i).collect()),
            ),
            ("hospital_id", int(&|p| i64::from(hospital(p).id))),
            (
                "surgery_date",
                Column::Date(ps.iter().map(Patient::surgery_date).collect()),
            ),
            ("race", cat(&GROUP_NAMES, &|p| u32::from(p.group))),
            (
                "ethnicity",
                cat(&["Not Hispanic", "Hispanic"], &|p| u32::from(p.group == 2)),
            ),
            ("age", int(&|p| p.sim.demographics.age as i64)),
            ("female", flag(&|p| p.sim.demographics.female)),
            (
                "adi",
                holed_int(Blankable::Adi, &|p| p.sim.socioeconomic.adi as i64),
            ),
            (
                "insurance",
                cat(&scm::INSURANCE, &|p| {
                    if p.is_missing(Blankable::Insurance) {
                        MISSING_LEVEL
                    } else {
                        u32::from(p.sim.socioeconomic.insurance)
                    }
                }),
            ),
            (
                "zip3",
                Column::Cat {
                    codes: ps
                        .iter()
                        .map(|p| zip3(hospital(p).region, p.sim.position))
                        .collect(),
                    levels: zip_levels,
                },
            ),
            (
                "diabetes",
                holed_int(Blankable::Diabetes, &|p| {
                    i64::from(p.sim.clinical.conditions[0])
                }),
            ),
            ("dialysis", cond(1)),
            ("heart_failure", cond(2)),
            ("lung_disease", cond(3)),
            ("pad", cond(4)),
            ("prior_mi", cond(5)),
            (
                "ejection_fraction",
                holed_int(Blankable::EjectionFraction, &|p| p.sim.clinical.ef as i64),
            ),
            ("bmi", holed_float(Blankable::Bmi, &|p| p.sim.clinical.bmi)),
            (
                "creatinine",
                holed_float(Blankable::Creatinine, &|p| p.sim.clinical.creatinine),
            ),
            (
                "status",
                cat(&scm::STATUS, &|p| u32::from(p.sim.clinical.status)),
            ),
            (
                "hospital_volume",
                float(&|p| counts[p.sim.hospital] as f64 / years),
            ),
            ("teaching", flag(&|p| hospital(p).teaching)),
            ("region", cat(&REGIONS, &|p| hospital(p).region as u32)),
            ("death_30d", flag(&|p| p.outcomes.death)),
            ("major_morbidity", flag(&|p| p.outcomes.major_morbidity)),
            ("readmit_30d", flag(&|p| p.outcomes.readmit)),
            ("los_days", float(&|p| p.outcomes.los)),
        ];
        Table::new("cohort", columns)
    }

    /// Per-patient latent values and oracle probabilities (`truth_patients`).
    pub fn truth_patients_table(&self) -> Table {
        let ps = &self.patients;
        let m = &self.params.model;
        let oracle: Vec<[f64; 4]> = ps.iter().map(|p| p.sim.outcome.oracle(m)).collect();
        let mut columns = vec![
            ("person_id", Column::Int((1..=ps.len() as i64).collect())),
            (
                "ses",
                Column::Float(ps.iter().map(|p| p.sim.socioeconomic.ses).collect()),
            ),
            (
                "position",
                Column::Float(ps.iter().map(|p| p.sim.position).collect()),
            ),
            (
                "hospital_effect",
                Column::Float(
                    ps.iter()
                        .map(|p| self.world.hospitals[p.sim.hospital].effect)
                        .collect(),
                ),
            ),
        ];
        // The random race slope only when it is on, so that the default output
        // is unchanged.
        if self.world.hospitals.iter().any(|h| h.disparity != 0.0) {
            columns.push((
                "hospital_disparity",
                Column::Float(
                    ps.iter()
                        .map(|p| self.world.disparity(p.sim.hospital, usize::from(p.group)))
                        .collect(),
                ),
            ));
        }
        for (k, name) in [
            "p_death_30d",
            "p_major_morbidity",
            "p_readmit_30d",
            "e_los_days",
        ]
        .into_iter()
        .enumerate()
        {
            columns.push((name, Column::Float(oracle.iter().map(|o| o[k]).collect())));
        }
        Table::new("truth_patients", columns)
    }

    /// The hospitals with their latent attributes and sample counts; the random
    /// race slope v_h (`disparity`, after `effect`) only when it is on.
    pub fn hospitals_table(&self) -> Table {
        let hs = &self.world.hospitals;
        let counts = self.hospital_counts();
        let mut table = Table::new(
            "hospitals",
            vec![
                (
                    "hospital_id",
                    Column::Int(hs.iter().map(|h| i64::from(h.id)).collect()),
                ),
                ("z", Column::Float(hs.iter().map(|h| h.z).collect())),
                (
                    "annual_volume",
                    Column::Float(hs.iter().map(|h| h.log_volume.exp()).collect()),
                ),
                (
                    "effect",
                    Column::Float(hs.iter().map(|h| h.effect).collect()),
                ),
                (
                    "teaching",
                    Column::Int(hs.iter().map(|h| i64::from(h.teaching)).collect()),
                ),
                (
                    "region",
                    Column::Cat {
                        codes: hs.iter().map(|h| h.region as u32).collect(),
                        levels: REGIONS.iter().map(|s| (*s).to_string()).collect(),
                    },
                ),
                (
                    "patients",
                    Column::Int(counts.iter().map(|&c| c as i64).collect()),
                ),
            ],
        );
        if hs.iter().any(|h| h.disparity != 0.0) {
            let after_effect = table
                .columns
                .iter()
                .position(|(name, _)| name == "effect")
                .map_or(table.columns.len(), |i| i + 1);
            table.columns.insert(
                after_effect,
                (
                    "disparity".to_string(),
                    Column::Float(hs.iter().map(|h| h.disparity).collect()),
                ),
            );
        }
        table
    }
}

/// A three-digit ZIP prefix from the hospital's region and the patient's
/// neighbourhood position (residential areas along the segregation axis).
pub fn zip3(region: usize, position: f64) -> u32 {
    let band = ((position + 3.0) / 9.0 * 200.0).clamp(0.0, 199.0) as u32;
    (region as u32) * 240 + 20 + band
}
