//! The structural equations, one function per block, in topological order
//! R → D → S → C → H → Y (SYNTHETIC_EHR.md).
//!
//! Each block takes the parameter row of *its own* group, so a path-specific
//! counterfactual is a call with a different row per block. All randomness comes
//! from a [`Noise`] record drawn once per patient, so counterfactual worlds share
//! their random numbers (common random numbers).
//!
//! What the race arrows mean: race is a social position, not biology. R → C stands
//! for unmeasured structural exposures, R → H for residential segregation and
//! referral networks, and R → Y for residual differences in care.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::params::{GroupParams, ModelParams};
use crate::world::World;

/// Logistic function.
#[inline]
pub fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Patients per random stream. Stream k serves patients k·CHUNK .. (k+1)·CHUNK, so
/// a patient's noise does not depend on the thread count.
pub const CHUNK: usize = 16_384;

/// Stream offset for the "fresh reference patient" draws used by the
/// interventional truth (independent of the sample's streams).
pub const FRESH_STREAM_OFFSET: u64 = 1 << 40;

/// Stream offset for the population Monte-Carlo draws.
pub const POPULATION_STREAM_OFFSET: u64 = 1 << 41;

/// Exogenous noise of one patient: standard normals (n) and uniforms (u).
#[derive(Debug, Clone, Copy, Default)]
pub struct Noise {
    /// u: group membership.
    pub group: f64,
    /// n: age.
    pub age: f64,
    /// u: sex.
    pub sex: f64,
    /// n: latent SES.
    pub ses: f64,
    /// u: insurance.
    pub insurance: f64,
    /// u: diabetes, dialysis, heart failure, lung disease, PAD, prior MI.
    pub conditions: [f64; 6],
    /// u: urgency status.
    pub status: f64,
    /// n: ejection fraction.
    pub ef: f64,
    /// n: BMI.
    pub bmi: f64,
    /// n: creatinine.
    pub creatinine: f64,
    /// n: neighbourhood position.
    pub position: f64,
    /// u: hospital choice.
    pub hospital: f64,
    /// u: death.
    pub death: f64,
    /// u: morbidity.
    pub morbidity: f64,
    /// u: readmission.
    pub readmit: f64,
    /// n: length of stay.
    pub los: f64,
    /// Seed for administrative details (dates, OMOP record timing); not causal.
    pub aux: u64,
}

impl Noise {
    /// Draws one patient's noise, in a fixed order.
    pub fn draw(rng: &mut ChaCha8Rng) -> Noise {
        let mut n = || -> f64 { rng.sample(StandardNormal) };
        let age = n();
        let ses = n();
        let ef = n();
        let bmi = n();
        let creatinine = n();
        let position = n();
        let los = n();
        let mut u = || -> f64 { rng.random::<f64>() };
        let group = u();
        let sex = u();
        let insurance = u();
        let conditions = [u(), u(), u(), u(), u(), u()];
        let status = u();
        let hospital = u();
        let death = u();
        let morbidity = u();
        let readmit = u();
        Noise {
            group,
            age,
            sex,
            ses,
            insurance,
            conditions,
            status,
            ef,
            bmi,
            creatinine,
            position,
            hospital,
            death,
            morbidity,
            readmit,
            los,
            aux: rng.next_u64(),
        }
    }

    /// The noise of patients `start..start+len` of stream family (`seed`, `offset`),
    /// where `start` is a multiple of [`CHUNK`].
    pub fn chunk(seed: u64, offset: u64, start: usize, len: usize) -> Vec<Noise> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(offset + (start / CHUNK) as u64);
        (0..len).map(|_| Noise::draw(&mut rng)).collect()
    }
}

/// Insurance categories, coded in this order.
pub const INSURANCE: [&str; 4] = ["private", "medicare", "medicaid", "uninsured"];
/// Urgency status categories, coded in this order.
pub const STATUS: [&str; 3] = ["elective", "urgent", "emergent"];

/// Block D: demographics.
#[derive(Debug, Clone, Copy)]
pub struct Demographics {
    /// Age in completed years, 35..=90.
    pub age: f64,
    /// Female sex.
    pub female: bool,
}

/// Block S: socioeconomic position.
#[derive(Debug, Clone, Copy)]
pub struct Socioeconomic {
    /// Latent SES (per SD; higher is better off).
    pub ses: f64,
    /// Area deprivation index, national percentile 1..=100.
    pub adi: f64,
    /// Index into [`INSURANCE`].
    pub insurance: u8,
}

/// Block C: clinical state at surgery.
#[derive(Debug, Clone, Copy)]
pub struct Clinical {
    /// Diabetes, dialysis, heart failure, lung disease, PAD, prior MI.
    pub conditions: [bool; 6],
    /// Ejection fraction, whole percent.
    pub ef: f64,
    /// Index into [`STATUS`].
    pub status: u8,
    /// BMI, one decimal.
    pub bmi: f64,
    /// Creatinine mg/dL, two decimals.
    pub creatinine: f64,
}

/// The per-patient outcome model: probabilities and the log-LOS mean.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeModel {
    /// P(death within 30 days).
    pub death: f64,
    /// P(major morbidity event), drawn independently of death given covariates.
    pub morbidity: f64,
    /// P(readmission | survived, no complication).
    pub readmit_no_complication: f64,
    /// P(readmission | survived, complication).
    pub readmit_complication: f64,
    /// Mean of log LOS without a complication.
    pub log_los: f64,
}

/// The four outcome columns, in order.
pub const OUTCOMES: [&str; 4] = ["death_30d", "major_morbidity", "readmit_30d", "los_days"];

impl OutcomeModel {
    /// Oracle expectations of the four outcomes as coded in the data:
    /// P(death); P(death or morbidity) = 1 − (1 − p_d)(1 − p_m);
    /// P(alive and readmitted) = (1 − p_d)(p_m r₁ + (1 − p_m) r₀);
    /// E[LOS] = exp(μ + σ²/2)(1 + P(death or morbidity)(e^c − 1)).
    pub fn oracle(&self, m: &ModelParams) -> [f64; 4] {
        let composite = 1.0 - (1.0 - self.death) * (1.0 - self.morbidity);
        let readmit = (1.0 - self.death)
            * (self.morbidity * self.readmit_complication
                + (1.0 - self.morbidity) * self.readmit_no_complication);
        let los = (self.log_los + 0.5 * m.los_sd * m.los_sd).exp()
            * (1.0 + composite * m.los_complication.exp_m1());
        [self.death, composite, readmit, los]
    }
}

/// Drawn outcomes.
#[derive(Debug, Clone, Copy)]
pub struct Outcomes {
    /// Died within 30 days.
    pub death: bool,
    /// Death or major morbidity.
    pub major_morbidity: bool,
    /// Readmitted within 30 days of discharge (survivors only).
    pub readmit: bool,
    /// Post-operative length of stay, days, one decimal.
    pub los: f64,
}

/// D: age = clip(66 − gap + 9.5ε, 35, 90) in completed years; female ~ Bernoulli(0.25 + shift).
pub fn demographics(m: &ModelParams, g: &GroupParams, n: &Noise) -> Demographics {
    let age = (m.age_mean - g.age_gap + m.age_sd * n.age)
        .clamp(35.0, 90.0)
        .floor();
    Demographics {
        age,
        female: n.sex < m.female_share + g.female_shift,
    }
}

/// S: S = −gap + ε; ADI = clip(round(100 expit(−1.1 S)), 1, 100); insurance by age:
/// 65+ Medicare (dual Medicaid with probability 0.07 expit(−S)); under 65 a
/// multinomial logit with Medicaid −1.95 − S and uninsured −2.5 − 0.8 S.
pub fn socioeconomic(
    m: &ModelParams,
    g: &GroupParams,
    n: &Noise,
    d: &Demographics,
) -> Socioeconomic {
    let ses = -g.ses_gap + n.ses;
    let adi = (100.0 * expit(m.adi_ses * ses)).round().clamp(1.0, 100.0);
    let insurance = if d.age >= 65.0 {
        if n.insurance < m.dual_scale * expit(-ses) {
            2
        } else {
            1
        }
    } else {
        let e_mcd = (m.medicaid_intercept + m.medicaid_ses * ses).exp();
        let e_uni = (m.uninsured_intercept + m.uninsured_ses * ses).exp();
        let den = 1.0 + e_mcd + e_uni;
        if n.insurance < e_mcd / den {
            2
        } else if n.insurance < (e_mcd + e_uni) / den {
            3
        } else {
            0
        }
    };
    Socioeconomic {
        ses,
        adi,
        insurance,
    }
}

/// C: comorbidities by logit in S, group shift and age; EF, urgency, BMI, creatinine.
pub fn clinical(
    m: &ModelParams,
    g: &GroupParams,
    n: &Noise,
    d: &Demographics,
    s: &Socioeconomic,
) -> Clinical {
    let a10 = (d.age - 65.0) / 10.0;
    let x = s.ses;
    let lp = [
        m.diabetes_intercept + m.diabetes_ses * x + g.diabetes,
        m.dialysis_intercept + m.dialysis_ses * x + g.dialysis + m.dialysis_age * a10,
        m.heart_failure_intercept
            + m.heart_failure_ses * x
            + g.heart_failure
            + m.heart_failure_age * a10,
        m.lung_disease_intercept
            + m.lung_disease_ses * x
            + g.lung_disease
            + m.lung_disease_age * a10,
        m.pad_intercept + m.pad_ses * x + g.pad + m.pad_age * a10,
        m.prior_mi_intercept + m.prior_mi_ses * x + g.prior_mi,
    ];
    let mut conditions = [false; 6];
    for k in 0..6 {
        conditions[k] = n.conditions[k] < expit(lp[k]);
    }
    let mi = f64::from(u8::from(conditions[5]));
    let ef = (m.ef_mean - g.ef_gap + m.ef_ses * x + m.ef_prior_mi * mi + m.ef_sd * n.ef)
        .clamp(10.0, 75.0)
        .round();
    let p_urgent = expit(m.urgent_intercept + g.urgent + m.urgent_ses * x + m.urgent_prior_mi * mi);
    let status = if n.status < m.emergent_scale * p_urgent / 0.55 {
        2
    } else if n.status < p_urgent {
        1
    } else {
        0
    };
    let bmi = ((m.bmi_mean + g.bmi + m.bmi_ses * x + m.bmi_sd * n.bmi).clamp(16.0, 60.0) * 10.0)
        .round()
        / 10.0;
    let creatinine = if conditions[1] {
        (6.0f64.ln() + 0.3 * n.creatinine).exp()
    } else {
        (g.creatinine + 0.28 * n.creatinine).exp()
    };
    Clinical {
        conditions,
        ef,
        status,
        bmi,
        creatinine: (creatinine * 100.0).round() / 100.0,
    }
}

/// The patient's neighbourhood position w = shift + b_S S + σ_w ε.
pub fn position(m: &ModelParams, g: &GroupParams, n: &Noise, s: &Socioeconomic) -> f64 {
    g.position + m.position_ses * s.ses + m.position_sd * n.position
}

/// H: the chosen hospital (0-based index).
pub fn hospital(
    world: &World,
    m: &ModelParams,
    g: &GroupParams,
    n: &Noise,
    s: &Socioeconomic,
) -> usize {
    world.choose(position(m, g, n, s), n.hospital)
}

/// Y: the outcome model (logits as in SYNTHETIC_EHR.md, with the hospital effect
/// u_h). `disparity` is the hospital's random race slope v_h for a patient of
/// the slope group and 0 for everyone else ([`World::disparity`]): it adds v_h
/// to the mortality, morbidity and readmission logits and `los_hospital`·v_h to
/// log LOS, on top of the group's fixed direct terms.
pub fn outcome_model(
    m: &ModelParams,
    g: &GroupParams,
    d: &Demographics,
    s: &Socioeconomic,
    c: &Clinical,
    hospital_effect: f64,
    disparity: f64,
) -> OutcomeModel {
    let a10 = (d.age - 65.0) / 10.0;
    let f = |b: bool| f64::from(u8::from(b));
    let fem = f(d.female);
    let [dm, dial, hf, lung, pad, mi] = c.conditions.map(f);
    let urgent = f(c.status == 1);
    let emergent = f(c.status == 2);
    let medicaid = f(s.insurance == 2);
    let uninsured = f(s.insurance == 3);
    let death = m.mortality_intercept
        + m.mortality_age * a10
        + m.mortality_female * fem
        + m.mortality_diabetes * dm
        + m.mortality_dialysis * dial
        + m.mortality_heart_failure * hf
        + m.mortality_lung_disease * lung
        + m.mortality_pad * pad
        + m.mortality_prior_mi * mi
        + m.mortality_ef * (55.0 - c.ef)
        + m.mortality_urgent * urgent
        + m.mortality_emergent * emergent
        + m.mortality_ses * s.ses
        + m.mortality_medicaid * medicaid
        + m.mortality_uninsured * uninsured
        + m.mortality_hospital * hospital_effect
        + g.mortality_direct
        + disparity;
    let morbidity = m.morbidity_intercept
        + m.morbidity_age * a10
        + m.morbidity_female * fem
        + m.morbidity_diabetes * dm
        + m.morbidity_dialysis * dial
        + m.morbidity_heart_failure * hf
        + m.morbidity_lung_disease * lung
        + m.morbidity_pad * pad
        + m.morbidity_ef * (55.0 - c.ef)
        + m.morbidity_urgent * urgent
        + m.morbidity_emergent * emergent
        + m.morbidity_obesity * f(c.bmi > 40.0)
        + m.morbidity_ses * s.ses
        + m.morbidity_medicaid * medicaid
        + m.morbidity_hospital * hospital_effect
        + g.morbidity_direct
        + disparity;
    let readmit = m.readmit_intercept
        + m.readmit_age * a10
        + m.readmit_female * fem
        + m.readmit_diabetes * dm
        + m.readmit_dialysis * dial
        + m.readmit_heart_failure * hf
        + m.readmit_lung_disease * lung
        + m.readmit_pad * pad
        + m.readmit_ses * s.ses
        + m.readmit_medicaid * medicaid
        + m.readmit_hospital * hospital_effect
        + g.readmit_direct
        + disparity;
    let log_los = m.los_median.ln()
        + m.los_age * a10
        + m.los_female * fem
        + m.los_diabetes * dm
        + m.los_dialysis * dial
        + m.los_heart_failure * hf
        + m.los_lung_disease * lung
        + m.los_medicaid * medicaid
        + m.los_ses * s.ses
        + m.los_hospital * hospital_effect
        + g.los_direct
        + m.los_hospital * disparity;
    OutcomeModel {
        death: expit(death),
        morbidity: expit(morbidity),
        readmit_no_complication: expit(readmit),
        readmit_complication: expit(readmit + m.readmit_complication),
        log_los,
    }
}

/// Draws the outcomes from the outcome model.
pub fn draw_outcomes(m: &ModelParams, model: &OutcomeModel, n: &Noise) -> Outcomes {
    let death = n.death < model.death;
    let complication = n.morbidity < model.morbidity;
    let major_morbidity = death || complication;
    let p_readmit = if complication {
        model.readmit_complication
    } else {
        model.readmit_no_complication
    };
    let readmit = !death && n.readmit < p_readmit;
    let los = (model.log_los
        + if major_morbidity {
            m.los_complication
        } else {
            0.0
        }
        + m.los_sd * n.los)
        .exp();
    Outcomes {
        death,
        major_morbidity,
        readmit,
        los: ((los * 10.0).round() / 10.0).max(0.1),
    }
}

/// Which group's parameter row drives each block (D, S, C, H, Y).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockGroups(pub [usize; 5]);

impl BlockGroups {
    /// Every block from the same group.
    pub fn all(g: usize) -> Self {
        BlockGroups([g; 5])
    }
}

/// Block names in the documented switching order.
pub const BLOCKS: [&str; 5] = [
    "demographics",
    "socioeconomic",
    "clinical",
    "hospital",
    "direct",
];

/// One simulated patient: every block's values and the outcome model.
#[derive(Debug, Clone, Copy)]
pub struct Simulated {
    /// D.
    pub demographics: Demographics,
    /// S.
    pub socioeconomic: Socioeconomic,
    /// C.
    pub clinical: Clinical,
    /// Neighbourhood position.
    pub position: f64,
    /// H (0-based).
    pub hospital: usize,
    /// Y model.
    pub outcome: OutcomeModel,
}

/// Simulates one patient's blocks with each block's own group row.
pub fn simulate(
    world: &World,
    m: &ModelParams,
    groups: &[GroupParams],
    blocks: BlockGroups,
    n: &Noise,
) -> Simulated {
    let [gd, gs, gc, gh, gy] = blocks.0.map(|i| &groups[i]);
    let y_group = blocks.0[4];
    let demographics = demographics(m, gd, n);
    let socioeconomic = socioeconomic(m, gs, n, &demographics);
    let clinical = clinical(m, gc, n, &demographics, &socioeconomic);
    let position = position(m, gh, n, &socioeconomic);
    let hospital = world.choose(position, n.hospital);
    let outcome = outcome_model(
        m,
        gy,
        &demographics,
        &socioeconomic,
        &clinical,
        world.hospitals[hospital].effect,
        world.disparity(hospital, y_group),
    );
    Simulated {
        demographics,
        socioeconomic,
        clinical,
        position,
        hospital,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_identical_for_the_same_stream() {
        let a = Noise::chunk(7, 0, CHUNK, 10);
        let b = Noise::chunk(7, 0, CHUNK, 10);
        let c = Noise::chunk(7, 0, 0, 10);
        assert_eq!(a[3].age, b[3].age);
        assert_ne!(a[3].age, c[3].age);
    }

    #[test]
    fn oracle_readmission_matches_its_definition_by_simulation() {
        let m = ModelParams::defaults();
        let model = OutcomeModel {
            death: 0.2,
            morbidity: 0.3,
            readmit_no_complication: 0.1,
            readmit_complication: 0.4,
            log_los: 1.6,
        };
        let oracle = model.oracle(&m);
        let noise = Noise::chunk(3, 0, 0, CHUNK);
        let mut sums = [0.0; 4];
        for n in &noise {
            let o = draw_outcomes(&m, &model, n);
            sums[0] += f64::from(u8::from(o.death));
            sums[1] += f64::from(u8::from(o.major_morbidity));
            sums[2] += f64::from(u8::from(o.readmit));
            sums[3] += o.los;
        }
        let k = noise.len() as f64;
        for i in 0..3 {
            let p = oracle[i];
            let se = (p * (1.0 - p) / k).sqrt();
            assert!((sums[i] / k - p).abs() < 4.5 * se, "outcome {i}");
        }
        assert!((sums[3] / k - oracle[3]).abs() < 0.05 * oracle[3]);
    }
}
