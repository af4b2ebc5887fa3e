//! Missing data: cells of the flat extract blanked by a documented
//! missing-at-random (MAR) mechanism, for testing complete-case analysis and
//! multiple imputation (issue #16).
//!
//! For each column j with a requested share p_j > 0 (`missing.<column>`), the
//! value of patient i is missing with probability
//!
//! ```text
//! P(R_ij = 1) = expit(α_j + s · z_i)
//! z_i = 0.4 urgent + 1.0 emergent − 0.3 v_i + 0.5 (medicaid or uninsured)
//!       + 0.4 minority + 1.0 death_30d + 0.5 major_morbidity
//! ```
//!
//! where v_i is the patient's log `hospital_volume` standardised over the sample
//! (so small hospitals blank more), minority is a race other than White, and
//! s = `missing.strength` (1 by default; 0 gives missing completely at random).
//! Every term is a column of the flat extract that is never blanked, so the
//! mechanism is MAR given the observed data; because it includes the outcomes,
//! complete cases are a biased sample while multiple imputation with the outcome
//! among the predictors is valid. No column's missingness depends on itself or on
//! another blanked column: the insurance term is left out of every index when
//! `missing.insurance` > 0.
//!
//! α_j is solved by bisection so that the expected share on the drawn sample,
//! (1/n) Σ_i expit(α_j + s z_i), equals p_j. The indicators are drawn from their
//! own random streams (the sample seed, stream [`MISSING_STREAM_OFFSET`] + j), so
//! blanking changes no other drawn value: the complete data, the OMOP records that
//! are kept, and truth.json (the complete-data truth) are those of the same seed
//! without missing data.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::params::{MissingParams, REFERENCE_GROUP};
use crate::sample::Sample;
use crate::scm::expit;

/// Stream offset of the missingness indicators (column j uses offset + j),
/// apart from the sample's ([`crate::scm::CHUNK`] streams from 0), the fresh
/// reference patients' ([`crate::scm::FRESH_STREAM_OFFSET`]) and the
/// population's ([`crate::scm::POPULATION_STREAM_OFFSET`]).
pub const MISSING_STREAM_OFFSET: u64 = 1 << 42;

/// Coefficient of urgent status.
pub const BETA_URGENT: f64 = 0.4;
/// Coefficient of emergent status.
pub const BETA_EMERGENT: f64 = 1.0;
/// Coefficient of the standardised log hospital volume (negative: small
/// hospitals blank more).
pub const BETA_VOLUME: f64 = -0.3;
/// Coefficient of Medicaid or no insurance (left out when insurance is blanked).
pub const BETA_PAYER: f64 = 0.5;
/// Coefficient of a race other than White.
pub const BETA_MINORITY: f64 = 0.4;
/// Coefficient of death within 30 days.
pub const BETA_DEATH: f64 = 1.0;
/// Coefficient of major morbidity or death (a death has both terms).
pub const BETA_MORBIDITY: f64 = 0.5;

/// A column of the flat extract that can be blanked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blankable {
    /// `ejection_fraction` (whole percent).
    EjectionFraction,
    /// `creatinine` (mg/dL).
    Creatinine,
    /// `bmi` (kg/m²).
    Bmi,
    /// `adi` (area deprivation index).
    Adi,
    /// `diabetes` (0/1).
    Diabetes,
    /// `insurance` (categorical).
    Insurance,
}

impl Blankable {
    /// Every blankable column, in the order of their bits and streams.
    pub const ALL: [Blankable; 6] = [
        Blankable::EjectionFraction,
        Blankable::Creatinine,
        Blankable::Bmi,
        Blankable::Adi,
        Blankable::Diabetes,
        Blankable::Insurance,
    ];

    /// The column name (also the key suffix of `missing.<column>`).
    pub fn column(self) -> &'static str {
        match self {
            Blankable::EjectionFraction => "ejection_fraction",
            Blankable::Creatinine => "creatinine",
            Blankable::Bmi => "bmi",
            Blankable::Adi => "adi",
            Blankable::Diabetes => "diabetes",
            Blankable::Insurance => "insurance",
        }
    }

    /// The bit of this column in [`crate::sample::Patient::missing`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The requested share.
    pub fn rate(self, m: &MissingParams) -> f64 {
        m.get(self.column()).unwrap_or(0.0)
    }
}

/// What was blanked in one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlankedColumn {
    /// Column of the flat extract.
    pub column: String,
    /// Requested share (`missing.<column>`).
    pub requested: f64,
    /// Share actually blanked in the sample.
    pub realized: f64,
    /// Rows blanked.
    pub rows: usize,
    /// The solved intercept α.
    pub intercept: f64,
}

/// The missing data of a sample: the mechanism and what it blanked (truth.json
/// `missing`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingReport {
    /// The mechanism in words and as a formula.
    pub mechanism: String,
    /// `missing.strength`.
    pub strength: f64,
    /// The coefficients of the index z as used (before the strength), by term;
    /// `medicaid_or_uninsured` is absent when insurance is blanked.
    pub coefficients: BTreeMap<String, f64>,
    /// The blanked columns, in the order of [`Blankable::ALL`].
    pub columns: Vec<BlankedColumn>,
}

/// The mechanism in words, with the coefficients, as recorded in truth.json.
pub fn mechanism() -> String {
    format!(
        "MAR: P(missing) = expit(alpha_j + strength * z), z = {BETA_URGENT} urgent \
         + {BETA_EMERGENT} emergent + ({BETA_VOLUME}) std(log hospital_volume) \
         + {BETA_PAYER} (medicaid or uninsured; omitted when insurance is blanked) \
         + {BETA_MINORITY} (race not White) + {BETA_DEATH} death_30d \
         + {BETA_MORBIDITY} major_morbidity; alpha_j solved so that the expected \
         share on the sample equals the requested one; truth.json is the \
         complete-data truth"
    )
}

/// The missingness index z of every patient (without the strength).
fn index(sample: &Sample, with_payer: bool) -> Vec<f64> {
    let counts = sample.hospital_counts();
    let years = sample.calendar_years();
    let log_volume: Vec<f64> = sample
        .patients
        .iter()
        .map(|p| (counts[p.sim.hospital] as f64 / years).ln())
        .collect();
    let n = log_volume.len().max(1) as f64;
    let mean = log_volume.iter().sum::<f64>() / n;
    let sd = (log_volume.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let f = |b: bool| f64::from(u8::from(b));
    sample
        .patients
        .iter()
        .zip(&log_volume)
        .map(|(p, lv)| {
            let v = if sd > 0.0 { (lv - mean) / sd } else { 0.0 };
            let status = p.sim.clinical.status;
            let payer = matches!(p.sim.socioeconomic.insurance, 2 | 3);
            BETA_URGENT * f(status == 1)
                + BETA_EMERGENT * f(status == 2)
                + BETA_VOLUME * v
                + if with_payer {
                    BETA_PAYER * f(payer)
                } else {
                    0.0
                }
                + BETA_MINORITY * f(usize::from(p.group) != REFERENCE_GROUP)
                + BETA_DEATH * f(p.outcomes.death)
                + BETA_MORBIDITY * f(p.outcomes.major_morbidity)
        })
        .collect()
}

/// The distinct values of `x` with their counts, in increasing order (so the
/// mean of expit(α + x) is a short, order-fixed sum).
fn distinct(x: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut out: Vec<(f64, f64)> = Vec::new();
    for v in sorted {
        match out.last_mut() {
            Some((last, count)) if *last == v => *count += 1.0,
            _ => out.push((v, 1.0)),
        }
    }
    out
}

/// The intercept α with mean expit(α + x) = p over the `(value, count)` pairs,
/// by bisection (the mean increases with α).
pub fn solve_intercept(values: &[(f64, f64)], p: f64) -> f64 {
    let n: f64 = values.iter().map(|(_, c)| c).sum();
    let mean = |a: f64| values.iter().map(|(x, c)| c * expit(a + x)).sum::<f64>() / n;
    let reach = values.iter().fold(0.0_f64, |m, (x, _)| m.max(x.abs())) + 40.0;
    let (mut lo, mut hi) = (-reach, reach);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mean(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Draws the missingness of `sample` (params.missing): one bit per blanked
/// column per patient ([`Blankable::bit`]), and the report; None when every
/// requested share is zero.
pub fn draw(sample: &Sample) -> Option<(Vec<u8>, MissingReport)> {
    let m = &sample.params.missing;
    if m.is_off() {
        return None;
    }
    let n = sample.patients.len();
    let insurance_blanked = Blankable::Insurance.rate(m) > 0.0;
    // The insurance term never enters insurance's own index, nor any index once
    // insurance is itself blanked.
    // Each index with its distinct values scaled by the strength (for α).
    let with_distinct = |with_payer: bool| {
        let z: Vec<f64> = index(sample, with_payer)
            .iter()
            .map(|z| m.strength * z)
            .collect();
        let d = distinct(&z);
        (z, d)
    };
    let own = with_distinct(false);
    let others = if insurance_blanked {
        own.clone()
    } else {
        with_distinct(true)
    };
    let mut bits = vec![0_u8; n];
    let mut columns = Vec::new();
    for (j, var) in Blankable::ALL.into_iter().enumerate() {
        let p = var.rate(m);
        if p <= 0.0 {
            continue;
        }
        let (z, values) = if var == Blankable::Insurance {
            &own
        } else {
            &others
        };
        let alpha = solve_intercept(values, p);
        let mut rng = ChaCha8Rng::seed_from_u64(sample.params.seed);
        rng.set_stream(MISSING_STREAM_OFFSET + j as u64);
        let mut rows = 0;
        for (b, zi) in bits.iter_mut().zip(z) {
            let u: f64 = rng.random();
            if u < expit(alpha + zi) {
                *b |= var.bit();
                rows += 1;
            }
        }
        columns.push(BlankedColumn {
            column: var.column().to_string(),
            requested: p,
            realized: rows as f64 / n.max(1) as f64,
            rows,
            intercept: alpha,
        });
    }
    let mut coefficients: BTreeMap<String, f64> = [
        ("urgent", BETA_URGENT),
        ("emergent", BETA_EMERGENT),
        ("std_log_hospital_volume", BETA_VOLUME),
        ("race_not_white", BETA_MINORITY),
        ("death_30d", BETA_DEATH),
        ("major_morbidity", BETA_MORBIDITY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if !insurance_blanked {
        coefficients.insert("medicaid_or_uninsured".into(), BETA_PAYER);
    }
    Some((
        bits,
        MissingReport {
            mechanism: mechanism(),
            strength: m.strength,
            coefficients,
            columns,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intercept_gives_the_requested_mean() {
        let values = [(-1.0, 30.0), (0.0, 50.0), (2.5, 20.0)];
        for p in [0.001, 0.1, 0.5, 0.9] {
            let a = solve_intercept(&values, p);
            let mean = values.iter().map(|(x, c)| c * expit(a + x)).sum::<f64>() / 100.0;
            assert!((mean - p).abs() < 1e-9, "p {p}: mean {mean}");
        }
    }

    #[test]
    fn distinct_values_are_counted_in_order() {
        assert_eq!(
            distinct(&[0.5, -1.0, 0.5, 0.5]),
            vec![(-1.0, 1.0), (0.5, 3.0)]
        );
    }

    #[test]
    fn bits_are_distinct_and_columns_match_the_keys() {
        let mut all = 0_u8;
        for v in Blankable::ALL {
            assert_eq!(all & v.bit(), 0);
            all |= v.bit();
            assert!(MissingParams::KEYS.contains(&v.column()));
        }
    }
}
