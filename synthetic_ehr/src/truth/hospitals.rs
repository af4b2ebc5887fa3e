//! The hospital-level truth of hierarchical models (issue #17): the random
//! intercept u_h and the random race slope v_h of every hospital, their SDs on
//! each binary outcome's logit, and each hospital's true risk-standardized rate
//!
//! RSMR_h = Σ_{i∈h} p_i(u_h, v_h) / Σ_{i∈h} p_i(0, 0) × ȳ,
//!
//! CMS's predicted/expected ratio times the overall observed rate ȳ, with the
//! oracle probabilities p_i of the hospital's own patients in the sample (Krumholz
//! et al. 2006, Circulation 113:1683).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::params::{GROUP_NAMES, ModelParams, REFERENCE_GROUP, SLOPE_GROUP};
use crate::sample::Sample;
use crate::scm::{self, OUTCOMES};

/// The binary outcome columns, in the order of [`OUTCOMES`].
const BINARY: usize = 3;

/// One hospital's true random effects and risk-standardized rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HospitalRow {
    /// Hospital id as written in the data.
    pub id: u32,
    /// Patients of the sample treated here.
    pub patients: usize,
    /// Of whom in the slope group.
    pub slope_group_patients: usize,
    /// The hospital's term in each outcome's logit: `<outcome>_hospital` · u_h.
    pub intercept: BTreeMap<String, f64>,
    /// The random race slope v_h (the same on every binary outcome's logit).
    pub slope: f64,
    /// The true slope-group vs reference log odds ratio at this hospital on
    /// each outcome's logit: the group's direct term + v_h.
    pub disparity_logit: BTreeMap<String, f64>,
    /// The true risk-standardized rate per binary outcome (null without
    /// patients).
    pub rsmr: BTreeMap<String, Option<f64>>,
}

/// truth.json `hospitals`: the truth of `y ~ covariates + race + (1 + black |
/// hospital)` and of CMS-style risk-standardized rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HospitalTruth {
    /// The group whose logits carry v_h.
    pub slope_group: String,
    /// The reference group (no slope).
    pub reference: String,
    /// The structural logit that each binary outcome's hospital terms enter.
    pub logit: BTreeMap<String, String>,
    /// Multiplier of u_h per outcome (`mortality_hospital`, `morbidity_hospital`,
    /// `readmit_hospital`).
    pub intercept_scale: BTreeMap<String, f64>,
    /// σ_u per outcome: scale · √(hospital_effect_sd² + hospital_volume_effect² ·
    /// log_volume_sd²), the SD of scale · u_h over hospitals.
    pub intercept_sd: BTreeMap<String, f64>,
    /// scale · hospital_effect_sd: the SD of the part of scale · u_h that log
    /// volume does not explain.
    pub intercept_sd_given_volume: BTreeMap<String, f64>,
    /// The sample SD of scale · u_h over the world's hospitals.
    pub intercept_sd_realised: BTreeMap<String, f64>,
    /// σ_v = `hospital_disparity_sd`, on every binary outcome's logit.
    pub slope_sd: f64,
    /// The sample SD of v_h over the world's hospitals.
    pub slope_sd_realised: f64,
    /// corr(u_h, v_h) = ρ_v · hospital_effect_sd / sd(u_h).
    pub intercept_slope_correlation: f64,
    /// The sample correlation of u_h and v_h (null when either is constant).
    pub intercept_slope_correlation_realised: Option<f64>,
    /// The slope group's fixed direct term on each outcome's logit.
    pub direct_logit: BTreeMap<String, f64>,
    /// Multiplier of u_h and of v_h on log LOS (`los_hospital`).
    pub los_scale: f64,
    /// The observed rate of each binary outcome over the sample (ȳ of RSMR).
    pub overall_rate: BTreeMap<String, f64>,
    /// The mean oracle probability of each binary outcome over the sample.
    pub overall_rate_oracle: BTreeMap<String, f64>,
    /// Plain-language definitions of the fields.
    pub definitions: BTreeMap<String, String>,
    /// Every hospital of the world, in id order.
    pub hospitals: Vec<HospitalRow>,
}

/// A map from the binary outcome names to `f(k)`.
fn by_outcome<T>(f: impl Fn(usize) -> T) -> BTreeMap<String, T> {
    (0..BINARY)
        .map(|k| (OUTCOMES[k].to_string(), f(k)))
        .collect()
}

/// Mean and sample SD (n − 1).
fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let ss = x.iter().map(|v| (v - m).powi(2)).sum::<f64>();
    (m, (ss / (n - 1.0).max(1.0)).sqrt())
}

/// The Pearson correlation, or None when either variable is constant.
fn correlation(x: &[f64], y: &[f64]) -> Option<f64> {
    let ((mx, sx), (my, sy)) = (mean_sd(x), mean_sd(y));
    let n = x.len() as f64;
    let cov = x
        .iter()
        .zip(y)
        .map(|(a, b)| (a - mx) * (b - my))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    (sx > 0.0 && sy > 0.0).then(|| cov / (sx * sy))
}

/// The multipliers of u_h on the three binary outcomes' logits.
fn scales(m: &ModelParams) -> [f64; BINARY] {
    [
        m.mortality_hospital,
        m.morbidity_hospital,
        m.readmit_hospital,
    ]
}

/// Per hospital: patients, slope-group patients, and for each binary outcome
/// Σ p_i(u_h, v_h) and Σ p_i(0, 0); with the overall observed and oracle sums.
struct Sums {
    patients: Vec<usize>,
    slope_patients: Vec<usize>,
    own: Vec<[f64; BINARY]>,
    expected: Vec<[f64; BINARY]>,
    observed: [f64; BINARY],
    oracle: [f64; BINARY],
}

fn sums(sample: &Sample) -> Sums {
    let m = &sample.params.model;
    let j = sample.world.len();
    let mut s = Sums {
        patients: vec![0; j],
        slope_patients: vec![0; j],
        own: vec![[0.0; BINARY]; j],
        expected: vec![[0.0; BINARY]; j],
        observed: [0.0; BINARY],
        oracle: [0.0; BINARY],
    };
    for p in &sample.patients {
        let h = p.sim.hospital;
        let sim = &p.sim;
        let g = &sample.params.groups[usize::from(p.group)];
        let zero = scm::outcome_model(
            m,
            g,
            &sim.demographics,
            &sim.socioeconomic,
            &sim.clinical,
            0.0,
            0.0,
        )
        .oracle(m);
        let own = sim.outcome.oracle(m);
        let drawn = [
            p.outcomes.death,
            p.outcomes.major_morbidity,
            p.outcomes.readmit,
        ];
        s.patients[h] += 1;
        s.slope_patients[h] += usize::from(usize::from(p.group) == SLOPE_GROUP);
        for k in 0..BINARY {
            s.own[h][k] += own[k];
            s.expected[h][k] += zero[k];
            s.observed[k] += f64::from(u8::from(drawn[k]));
            s.oracle[k] += own[k];
        }
    }
    s
}

/// The hospital truth of the sample and its world.
pub fn compute(sample: &Sample) -> HospitalTruth {
    let m = &sample.params.model;
    let world = &sample.world;
    let slope_row = &sample.params.groups[SLOPE_GROUP];
    let scale = scales(m);
    let direct = [
        slope_row.mortality_direct,
        slope_row.morbidity_direct,
        slope_row.readmit_direct,
    ];
    let s = sums(sample);
    let n = sample.patients.len().max(1) as f64;
    let overall = s.observed.map(|y| y / n);
    let u: Vec<f64> = world.hospitals.iter().map(|h| h.effect).collect();
    let v: Vec<f64> = world.hospitals.iter().map(|h| h.disparity).collect();
    let (sd_u, sd_v) = (mean_sd(&u).1, mean_sd(&v).1);
    let sd_u_population = m
        .hospital_effect_sd
        .hypot(m.hospital_volume_effect * m.log_volume_sd);
    let hospitals = world
        .hospitals
        .iter()
        .enumerate()
        .map(|(h, hosp)| HospitalRow {
            id: hosp.id,
            patients: s.patients[h],
            slope_group_patients: s.slope_patients[h],
            intercept: by_outcome(|k| scale[k] * hosp.effect),
            slope: hosp.disparity,
            disparity_logit: by_outcome(|k| direct[k] + hosp.disparity),
            rsmr: by_outcome(|k| {
                (s.patients[h] > 0).then(|| s.own[h][k] / s.expected[h][k] * overall[k])
            }),
        })
        .collect();
    HospitalTruth {
        slope_group: GROUP_NAMES[SLOPE_GROUP].into(),
        reference: GROUP_NAMES[REFERENCE_GROUP].into(),
        logit: by_outcome(|k| {
            ["death", "complication", "readmission among survivors"][k].to_string()
        }),
        intercept_scale: by_outcome(|k| scale[k]),
        intercept_sd: by_outcome(|k| scale[k].abs() * sd_u_population),
        intercept_sd_given_volume: by_outcome(|k| scale[k].abs() * m.hospital_effect_sd),
        intercept_sd_realised: by_outcome(|k| scale[k].abs() * sd_u),
        slope_sd: m.hospital_disparity_sd,
        slope_sd_realised: sd_v,
        intercept_slope_correlation: if sd_u_population > 0.0 {
            m.hospital_disparity_rho * m.hospital_effect_sd / sd_u_population
        } else {
            0.0
        },
        intercept_slope_correlation_realised: correlation(&u, &v),
        direct_logit: by_outcome(|k| direct[k]),
        los_scale: m.los_hospital,
        overall_rate: by_outcome(|k| overall[k]),
        overall_rate_oracle: by_outcome(|k| s.oracle[k] / n),
        definitions: definitions(),
        hospitals,
    }
}

fn definitions() -> BTreeMap<String, String> {
    [
        ("model", "logit P(y = 1) = x'β + δ·1{slope group} + s·u_h + v_h·1{slope group}, with s = intercept_scale and u_h = hospital_effect_sd·(ρ z_h + √(1 − ρ²) η_h) − hospital_volume_effect·(log volume_h − mean); in a GLMM y ~ covariates + race + (1 + black | hospital) the random intercept is s·u_h (the reference group's hospital deviation) and the random slope of black is v_h"),
        ("logit", "the structural logit the hospital terms enter: death_30d is exactly that logit; major_morbidity (death or complication) and readmit_30d (alive and readmitted) combine it with death, so a GLMM on those columns approximates the structural σ_u and σ_v"),
        ("intercept_sd", "σ_u: the SD over hospitals of s·u_h, s·√(hospital_effect_sd² + hospital_volume_effect²·log_volume_sd²); the target of the random-intercept SD when the model has no hospital-level covariates. u_h correlates with the neighbourhood axis and so with the hospital's Black share"),
        ("intercept_sd_given_volume", "s·hospital_effect_sd: the random-intercept SD once (latent) log volume is a covariate"),
        ("intercept_sd_realised", "sample SD (n − 1) of s·u_h over the world's hospitals, with or without patients"),
        ("slope_sd", "σ_v = hospital_disparity_sd: the SD of v_h, the same on the three logits; log LOS gets los_scale·v_h"),
        ("intercept_slope_correlation", "corr(u_h, v_h) = hospital_disparity_rho·hospital_effect_sd / √(hospital_effect_sd² + hospital_volume_effect²·log_volume_sd²): v_h correlates with the quality part of u_h only"),
        ("direct_logit", "δ: the slope group's fixed direct term (<group>.<outcome>_direct), its log odds ratio vs the reference at a hospital with v_h = 0 given every structural parent (latent SES included, which the data lack)"),
        ("disparity_logit", "δ + v_h: the hospital's true log odds ratio, slope group vs reference, given every structural parent"),
        ("rsmr", "Σ_{i∈h} p_i(u_h, v_h) / Σ_{i∈h} p_i(u = 0, v = 0) × overall_rate over the sample's patients of h, p_i the oracle probability of the outcome column (CMS predicted/expected × overall rate); null for a hospital without patients; rsmr / overall_rate is the SMR"),
        ("overall_rate", "mean of the observed 0/1 column over the sample"),
        ("overall_rate_oracle", "mean oracle probability over the sample"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;

    fn sample_with(set: &[(&str, f64)]) -> Sample {
        let mut params = Params::default();
        params.patients = 20_000;
        for (k, v) in set {
            params.set(k, *v).unwrap();
        }
        params.validate().unwrap();
        Sample::generate(&params, &|_| {})
    }

    #[test]
    fn rsmr_is_the_overall_rate_where_a_hospital_has_no_effect() {
        // No intercept anywhere; a slope only for hospitals with Black patients.
        let s = sample_with(&[
            ("hospital_effect_sd", 0.0),
            ("hospital_volume_effect", 0.0),
            ("hospital_disparity_sd", 0.5),
        ]);
        let t = compute(&s);
        let mut with_black = 0;
        for row in t.hospitals.iter().filter(|r| r.patients > 0) {
            for (k, name) in OUTCOMES[..BINARY].iter().enumerate() {
                let rsmr = row.rsmr[*name].unwrap();
                let rate = t.overall_rate[*name];
                if row.slope_group_patients == 0 {
                    // u = 0 and no patient gets v: predicted = expected.
                    assert!((rsmr - rate).abs() <= 1e-15 * rate, "{} {k}", row.id);
                } else if k == 0 {
                    // The sign of v_h sets the side of the overall rate.
                    with_black += 1;
                    assert_eq!(rsmr > rate, row.slope > 0.0, "hospital {}", row.id);
                }
            }
        }
        assert!(with_black > 50);
    }

    #[test]
    fn hospital_truth_matches_the_world() {
        let s = sample_with(&[
            ("hospital_disparity_sd", 0.3),
            ("hospital_disparity_rho", 0.5),
        ]);
        let t = compute(&s);
        let m = &s.params.model;
        assert_eq!(t.hospitals.len(), 300);
        assert_eq!(t.slope_group, "Black");
        assert_eq!(
            t.hospitals.iter().map(|r| r.patients).sum::<usize>(),
            s.patients.len()
        );
        let h = &t.hospitals[17];
        let world = &s.world.hospitals[17];
        assert_eq!(h.slope, world.disparity);
        assert_eq!(h.intercept["major_morbidity"], 0.8 * world.effect);
        assert_eq!(
            h.disparity_logit["death_30d"],
            s.params.groups[1].mortality_direct + world.disparity
        );
        assert!((t.intercept_sd["death_30d"] - 0.3612).abs() < 1e-3);
        assert_eq!(t.intercept_sd_given_volume["readmit_30d"], 0.5 * 0.35);
        assert_eq!(t.slope_sd, m.hospital_disparity_sd);
        let r = t.intercept_slope_correlation_realised.unwrap();
        // Population 0.5 · 0.35/0.361 ≈ 0.48; the SE of r over 300 is about 0.045.
        assert!((r - t.intercept_slope_correlation).abs() < 0.15, "r {r}");
        // The sample's overall rate is the mean of the patients' outcomes.
        let deaths = s.patients.iter().filter(|p| p.outcomes.death).count();
        assert_eq!(t.overall_rate["death_30d"], deaths as f64 / 20_000.0);
    }
}
