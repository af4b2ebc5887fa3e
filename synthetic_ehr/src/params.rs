//! Parameters of the structural causal model.
//!
//! Every number in the model is a parameter with a stable key, so that a user can
//! dial a pathway up or down from the CLI (`healthgap synth --set black.ses_gap=0.9`)
//! or from a config (`[data] synthetic = { patients = 1000, "black.ses_gap" = 0.9 }`).
//! Global keys are plain (`mortality_intercept`); group keys are
//! `<group>.<field>` with the group in lower case (`hispanic.diabetes`).
//!
//! The default values are the calibrated ones of SYNTHETIC_EHR.md (White vs Black);
//! the rows for Hispanic, Asian and Other patients follow the published directions
//! (e.g. more diabetes and an intermediate SES gap for Hispanic patients) and are
//! documented beside each value.

use serde::{Deserialize, Serialize};

use crate::error::SynthError;

/// The five race/ethnicity groups, in the order used for codes and streams.
pub const GROUP_NAMES: [&str; 5] = ["White", "Black", "Hispanic", "Asian", "Other"];

/// Index of the reference group (White) in [`GROUP_NAMES`].
pub const REFERENCE_GROUP: usize = 0;

/// Index of the group whose outcome logits get the random hospital slope v_h
/// (`hospital_disparity_sd`): Black, the primary comparison group of
/// SYNTHETIC_EHR.md (its calibration targets are White vs Black, and the
/// canonical analyses compare Black with White). A model
/// `y ~ covariates + race + (1 + black | hospital)` has v_h as the random slope
/// of `black`; Hispanic, Asian and Other patients get no slope.
pub const SLOPE_GROUP: usize = 1;

macro_rules! param_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* $field:ident : $default:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: f64, )*
        }

        impl $name {
            /// The parameter keys of this struct, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn field_mut(&mut self, key: &str) -> Option<&mut f64> {
                match key {
                    $( stringify!($field) => Some(&mut self.$field), )*
                    _ => None,
                }
            }

            /// The documented default values.
            pub fn defaults() -> Self {
                Self { $( $field: $default, )* }
            }

            /// The value of a parameter by key.
            pub fn get(&self, key: &str) -> Option<f64> {
                match key {
                    $( stringify!($field) => Some(self.$field), )*
                    _ => None,
                }
            }
        }
    };
}

param_struct! {
    /// Global (group-independent) structural coefficients.
    pub struct ModelParams {
        /// Number of hospitals in the world.
        hospitals: 300.0,
        /// Mean of log annual CABG volume (log 180).
        log_volume_mean: 5.192_956_850_890_211,
        /// SD of log annual volume.
        log_volume_sd: 0.6,
        /// SD of the hospital quality effect on the mortality logit.
        hospital_effect_sd: 0.35,
        /// Correlation of the quality effect with the neighbourhood axis z.
        hospital_effect_rho: 0.53,
        /// Quality gain per unit of log volume (subtracted from the logit).
        hospital_volume_effect: 0.15,
        /// SD σ_v of the random race slope: hospital h adds v_h ~ N(0, σ_v²) to
        /// the mortality, morbidity and readmission logits (and `los_hospital`·v_h
        /// to log LOS) of its patients of the slope group (Black,
        /// [`SLOPE_GROUP`]). 0 (the default) turns it off.
        hospital_disparity_sd: 0.0,
        /// Correlation of v_h with the standardised quality part of the hospital
        /// effect, (u_h + β_v (log v_h − mean)) / σ_u.
        hospital_disparity_rho: 0.0,
        /// Width of the segregation kernel in hospital choice.
        choice_tau: 0.6,
        /// Effect of latent SES on the patient's neighbourhood position.
        position_ses: -0.15,
        /// SD of the idiosyncratic part of the neighbourhood position.
        position_sd: 0.55,
        /// Mean age of White patients.
        age_mean: 66.0,
        /// SD of age.
        age_sd: 9.5,
        /// Share of women among White patients.
        female_share: 0.25,
        /// ADI = round(100 expit(adi_ses * S)).
        adi_ses: -1.1,
        /// Dual Medicare-Medicaid probability scale among patients 65+.
        dual_scale: 0.07,
        /// Medicaid logit intercept (under 65).
        medicaid_intercept: -1.95,
        /// Medicaid logit slope on S.
        medicaid_ses: -1.0,
        /// Uninsured logit intercept (under 65).
        uninsured_intercept: -2.5,
        /// Uninsured logit slope on S.
        uninsured_ses: -0.8,
        /// Diabetes logit intercept.
        diabetes_intercept: -0.25,
        /// Diabetes slope on S.
        diabetes_ses: -0.25,
        /// Dialysis logit intercept.
        dialysis_intercept: -4.25,
        /// Dialysis slope on S.
        dialysis_ses: -0.35,
        /// Dialysis slope per 10 years of age.
        dialysis_age: -0.10,
        /// Heart-failure logit intercept.
        heart_failure_intercept: -1.95,
        /// Heart-failure slope on S.
        heart_failure_ses: -0.20,
        /// Heart-failure slope per 10 years of age.
        heart_failure_age: 0.15,
        /// Chronic lung disease logit intercept.
        lung_disease_intercept: -2.25,
        /// Lung disease slope on S.
        lung_disease_ses: -0.25,
        /// Lung disease slope per 10 years of age.
        lung_disease_age: 0.10,
        /// Peripheral arterial disease logit intercept.
        pad_intercept: -1.95,
        /// PAD slope on S.
        pad_ses: -0.20,
        /// PAD slope per 10 years of age.
        pad_age: 0.20,
        /// Prior MI logit intercept.
        prior_mi_intercept: -0.25,
        /// Prior MI slope on S.
        prior_mi_ses: -0.05,
        /// Mean ejection fraction (%).
        ef_mean: 54.0,
        /// EF slope on S.
        ef_ses: 1.0,
        /// EF shift with prior MI.
        ef_prior_mi: -6.0,
        /// SD of EF.
        ef_sd: 11.0,
        /// Urgent-status logit intercept.
        urgent_intercept: 0.05,
        /// Urgent-status slope on S.
        urgent_ses: -0.10,
        /// Urgent-status slope on prior MI.
        urgent_prior_mi: 0.6,
        /// Emergent share as a fraction of the urgent probability / 0.55 (about 4-5%).
        emergent_scale: 0.045,
        /// Mean BMI.
        bmi_mean: 29.5,
        /// BMI slope on S.
        bmi_ses: -0.4,
        /// SD of BMI.
        bmi_sd: 5.5,
        /// 30-day mortality logit intercept.
        mortality_intercept: -4.68,
        /// Mortality slope per 10 years of age.
        mortality_age: 0.45,
        /// Mortality: female.
        mortality_female: 0.26,
        /// Mortality: diabetes.
        mortality_diabetes: 0.18,
        /// Mortality: dialysis.
        mortality_dialysis: 1.10,
        /// Mortality: heart failure.
        mortality_heart_failure: 0.40,
        /// Mortality: lung disease.
        mortality_lung_disease: 0.40,
        /// Mortality: PAD.
        mortality_pad: 0.26,
        /// Mortality: prior MI.
        mortality_prior_mi: 0.10,
        /// Mortality per EF point below 55.
        mortality_ef: 0.022,
        /// Mortality: urgent status.
        mortality_urgent: 0.34,
        /// Mortality: emergent status.
        mortality_emergent: 1.25,
        /// Mortality slope on latent S.
        mortality_ses: -0.04,
        /// Mortality: Medicaid.
        mortality_medicaid: 0.15,
        /// Mortality: uninsured.
        mortality_uninsured: 0.15,
        /// Mortality: multiplier of the hospital effect.
        mortality_hospital: 1.0,
        /// Major-morbidity logit intercept (the prototype's −2.45 recalibrated to
        /// −2.61 so that death-or-morbidity, 1 − (1 − p_d)(1 − p_m), hits 13% in White
        /// patients; the prototype reported max(p_d, p_m) instead).
        morbidity_intercept: -2.61,
        /// Multiplier of the hospital effect on morbidity.
        morbidity_hospital: 0.8,
        /// Morbidity slope per 10 years of age.
        morbidity_age: 0.25,
        /// Morbidity: female.
        morbidity_female: 0.15,
        /// Morbidity: diabetes.
        morbidity_diabetes: 0.25,
        /// Morbidity: dialysis.
        morbidity_dialysis: 0.80,
        /// Morbidity: heart failure.
        morbidity_heart_failure: 0.30,
        /// Morbidity: lung disease.
        morbidity_lung_disease: 0.35,
        /// Morbidity: PAD.
        morbidity_pad: 0.15,
        /// Morbidity per EF point below 55.
        morbidity_ef: 0.012,
        /// Morbidity: urgent status.
        morbidity_urgent: 0.25,
        /// Morbidity: emergent status.
        morbidity_emergent: 0.80,
        /// Morbidity: BMI above 40.
        morbidity_obesity: 0.6,
        /// Morbidity slope on latent S.
        morbidity_ses: -0.12,
        /// Morbidity: Medicaid.
        morbidity_medicaid: 0.15,
        /// Readmission slope per 10 years of age.
        readmit_age: 0.10,
        /// Readmission: female.
        readmit_female: 0.20,
        /// Readmission: diabetes.
        readmit_diabetes: 0.25,
        /// Readmission: dialysis.
        readmit_dialysis: 0.60,
        /// Readmission: heart failure.
        readmit_heart_failure: 0.35,
        /// Readmission: lung disease.
        readmit_lung_disease: 0.30,
        /// Readmission: PAD.
        readmit_pad: 0.15,
        /// Readmission slope on latent S.
        readmit_ses: -0.10,
        /// Readmission: Medicaid.
        readmit_medicaid: 0.25,
        /// log-LOS slope per 10 years of age.
        los_age: 0.05,
        /// log-LOS: female.
        los_female: 0.08,
        /// log-LOS: diabetes.
        los_diabetes: 0.10,
        /// log-LOS: dialysis.
        los_dialysis: 0.25,
        /// log-LOS: heart failure.
        los_heart_failure: 0.12,
        /// log-LOS: lung disease.
        los_lung_disease: 0.10,
        /// log-LOS: Medicaid.
        los_medicaid: 0.12,
        /// log-LOS slope on latent S.
        los_ses: -0.03,
        /// Readmission logit intercept (survivors).
        readmit_intercept: -2.35,
        /// Multiplier of the hospital effect on readmission.
        readmit_hospital: 0.5,
        /// Readmission shift after a complication.
        readmit_complication: 0.40,
        /// Median post-operative length of stay (days) at baseline.
        los_median: 5.0,
        /// log-LOS shift after a complication.
        los_complication: 0.55,
        /// Multiplier of the hospital effect on log LOS.
        los_hospital: 0.3,
        /// SD of log LOS.
        los_sd: 0.33,
    }
}

param_struct! {
    /// One group's shifts relative to White patients (all zero for White).
    ///
    /// Race is a social position, not biology: `diabetes` .. `creatinine` stand for
    /// unmeasured structural exposures (R -> C), `position` for residential
    /// segregation and referral networks (R -> H), and the `*_direct` terms for
    /// residual differences in care (R -> Y).
    pub struct GroupParams {
        /// Share of the cohort.
        share: 0.78,
        /// Years younger than White patients at surgery.
        age_gap: 0.0,
        /// Additional share of women.
        female_shift: 0.0,
        /// SES gap: S = -ses_gap + N(0,1).
        ses_gap: 0.0,
        /// Diabetes logit shift.
        diabetes: 0.0,
        /// Dialysis logit shift.
        dialysis: 0.0,
        /// Heart-failure logit shift.
        heart_failure: 0.0,
        /// Lung-disease logit shift.
        lung_disease: 0.0,
        /// PAD logit shift.
        pad: 0.0,
        /// Prior-MI logit shift.
        prior_mi: 0.0,
        /// EF points lower.
        ef_gap: 0.0,
        /// Urgent-status logit shift.
        urgent: 0.0,
        /// BMI shift.
        bmi: 0.0,
        /// log-creatinine shift (non-dialysis).
        creatinine: 0.0,
        /// Neighbourhood position shift (segregation axis).
        position: 0.0,
        /// Direct term on the mortality logit.
        mortality_direct: 0.0,
        /// Direct term on the morbidity logit.
        morbidity_direct: 0.0,
        /// Direct term on the readmission logit.
        readmit_direct: 0.0,
        /// Direct term on log LOS.
        los_direct: 0.0,
    }
}

param_struct! {
    /// Target marginal missing rates of the blankable columns of the flat extract
    /// (keys `missing.<column>`) and the strength of the documented MAR mechanism
    /// (`missing.strength`), see [`crate::missing`]. Every rate defaults to 0:
    /// the data are complete.
    pub struct MissingParams {
        /// Share of `ejection_fraction` values left missing.
        ejection_fraction: 0.0,
        /// Share of `creatinine` values left missing.
        creatinine: 0.0,
        /// Share of `bmi` values left missing.
        bmi: 0.0,
        /// Share of `adi` values left missing.
        adi: 0.0,
        /// Share of `diabetes` values left missing.
        diabetes: 0.0,
        /// Share of `insurance` values left missing.
        insurance: 0.0,
        /// Multiplier of every coefficient of the missingness index (1: the
        /// documented coefficients; 0: missing completely at random).
        strength: 1.0,
    }
}

impl MissingParams {
    /// Whether every rate is zero (nothing is blanked).
    pub fn is_off(&self) -> bool {
        Self::KEYS
            .iter()
            .filter(|k| **k != "strength")
            .all(|k| self.get(k) == Some(0.0))
    }

    /// Why `value` is out of range for `field`, if it is: a rate lies in
    /// [0, 1), the strength is at least 0.
    fn out_of_range(field: &str, value: f64) -> Option<&'static str> {
        if value.is_nan() {
            Some("must be a number")
        } else if field == "strength" {
            (value < 0.0).then_some("must be at least 0")
        } else {
            (!(0.0..1.0).contains(&value)).then_some("is a missing share and must lie in [0, 1)")
        }
    }
}

impl Default for MissingParams {
    fn default() -> Self {
        Self::defaults()
    }
}

impl Default for ModelParams {
    fn default() -> Self {
        Self::defaults()
    }
}

impl Default for GroupParams {
    fn default() -> Self {
        Self::defaults()
    }
}

/// All parameters of one synthetic world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Patients in the sample.
    pub patients: usize,
    /// Seed of the patient-level random streams.
    pub seed: u64,
    /// Seed of the hospital world (300 hospitals). The default, 83, was chosen by
    /// `examples/calibrate_world.rs` as the world whose realised hospitals come
    /// closest to the calibration targets of SYNTHETIC_EHR.md.
    pub world_seed: u64,
    /// Monte-Carlo draws for the population truth.
    pub population_draws: usize,
    /// Global coefficients.
    pub model: ModelParams,
    /// Per-group rows, in the order of [`GROUP_NAMES`].
    pub groups: Vec<GroupParams>,
    /// Missing data (none by default). Not serialised with the model
    /// parameters: truth.json, which is the complete-data truth, records the
    /// requested and realised rates in its own `missing` object.
    #[serde(skip_serializing, default)]
    pub missing: MissingParams,
}

impl Default for Params {
    fn default() -> Self {
        let white = GroupParams::defaults();
        // Black: the calibrated row of SYNTHETIC_EHR.md.
        let black = GroupParams {
            share: 0.08,
            age_gap: 3.0,
            female_shift: 0.15,
            ses_gap: 0.7,
            diabetes: 0.20,
            dialysis: 0.85,
            heart_failure: 0.30,
            lung_disease: -0.20,
            pad: 0.05,
            prior_mi: 0.0,
            ef_gap: 1.5,
            urgent: 0.15,
            bmi: 0.6,
            creatinine: 0.10,
            position: 1.55,
            mortality_direct: 0.075,
            morbidity_direct: 0.20,
            readmit_direct: 0.15,
            los_direct: 0.05,
        };
        // Hispanic: younger, intermediate SES gap, markedly more diabetes, more
        // dialysis, moderate segregation, small residual terms.
        let hispanic = GroupParams {
            share: 0.07,
            age_gap: 4.0,
            female_shift: 0.05,
            ses_gap: 0.45,
            diabetes: 0.55,
            dialysis: 0.45,
            heart_failure: 0.05,
            lung_disease: -0.35,
            pad: -0.15,
            prior_mi: 0.0,
            ef_gap: 0.5,
            urgent: 0.10,
            bmi: 0.8,
            creatinine: 0.03,
            position: 0.9,
            mortality_direct: 0.05,
            morbidity_direct: 0.10,
            readmit_direct: 0.08,
            los_direct: 0.03,
        };
        // Asian: slightly younger, no SES disadvantage on average, more diabetes,
        // lower BMI, less lung and peripheral arterial disease.
        let asian = GroupParams {
            share: 0.04,
            age_gap: 2.0,
            female_shift: 0.03,
            ses_gap: -0.1,
            diabetes: 0.40,
            dialysis: 0.20,
            heart_failure: -0.10,
            lung_disease: -0.50,
            pad: -0.30,
            prior_mi: 0.0,
            ef_gap: 0.0,
            urgent: 0.05,
            bmi: -3.5,
            creatinine: 0.0,
            position: 0.4,
            mortality_direct: 0.05,
            morbidity_direct: 0.05,
            readmit_direct: 0.0,
            los_direct: 0.0,
        };
        // Other (American Indian/Alaska Native, multiracial, ...): modest shifts.
        let other = GroupParams {
            share: 0.03,
            age_gap: 1.5,
            female_shift: 0.05,
            ses_gap: 0.35,
            diabetes: 0.25,
            dialysis: 0.30,
            heart_failure: 0.10,
            lung_disease: 0.05,
            pad: 0.0,
            prior_mi: 0.0,
            ef_gap: 0.5,
            urgent: 0.05,
            bmi: 0.5,
            creatinine: 0.03,
            position: 0.5,
            mortality_direct: 0.05,
            morbidity_direct: 0.08,
            readmit_direct: 0.05,
            los_direct: 0.02,
        };
        Params {
            patients: 200_000,
            seed: 7,
            world_seed: 83,
            population_draws: 200_000,
            model: ModelParams::defaults(),
            groups: vec![white, black, hispanic, asian, other],
            missing: MissingParams::defaults(),
        }
    }
}

impl Params {
    /// Every settable key: `patients`, `seed`, `world_seed`, `population_draws`,
    /// the global model keys, `<group>.<field>` for each group, and
    /// `missing.<column>` and `missing.strength`.
    pub fn keys() -> Vec<String> {
        let mut keys: Vec<String> = ["patients", "seed", "world_seed", "population_draws"]
            .iter()
            .map(|k| (*k).to_string())
            .collect();
        keys.extend(ModelParams::KEYS.iter().map(|k| (*k).to_string()));
        for g in GROUP_NAMES {
            let g = g.to_lowercase();
            keys.extend(GroupParams::KEYS.iter().map(|k| format!("{g}.{k}")));
        }
        keys.extend(MissingParams::KEYS.iter().map(|k| format!("missing.{k}")));
        keys
    }

    /// Sets one parameter by key. Unknown keys and out-of-range values are errors
    /// that name the key and, for a typo, the nearest valid key.
    pub fn set(&mut self, key: &str, value: f64) -> Result<(), SynthError> {
        let bad = |reason: &str| SynthError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if !value.is_finite() {
            return Err(bad("must be a finite number"));
        }
        let as_count = |min: f64| -> Result<usize, SynthError> {
            if value < min || value.fract() != 0.0 || value > 1e9 {
                Err(bad(&format!("must be a whole number >= {min}")))
            } else {
                Ok(value as usize)
            }
        };
        match key {
            "patients" => self.patients = as_count(1.0)?,
            "seed" => self.seed = as_count(0.0)? as u64,
            "world_seed" => self.world_seed = as_count(0.0)? as u64,
            "population_draws" => self.population_draws = as_count(1000.0)?,
            "hospitals" => {
                as_count(2.0)?;
                self.model.hospitals = value;
            }
            _ => {
                if let Some(field) = key.strip_prefix("missing.")
                    && let Some(slot) = self.missing.field_mut(field)
                {
                    if let Some(reason) = MissingParams::out_of_range(field, value) {
                        return Err(bad(reason));
                    }
                    *slot = value;
                    return Ok(());
                }
                let slot = if let Some((group, field)) = key.split_once('.') {
                    GROUP_NAMES
                        .iter()
                        .position(|g| g.eq_ignore_ascii_case(group))
                        .and_then(|gi| self.groups.get_mut(gi))
                        .and_then(|g| g.field_mut(field))
                } else {
                    self.model.field_mut(key)
                };
                match slot {
                    Some(slot) => *slot = value,
                    None => {
                        return Err(SynthError::UnknownParameter {
                            key: key.to_string(),
                            suggestion: nearest(key, &Self::keys()),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Parses `key=value` and sets it.
    pub fn set_assignment(&mut self, assignment: &str) -> Result<(), SynthError> {
        let (key, value) =
            assignment
                .split_once('=')
                .ok_or_else(|| SynthError::InvalidAssignment {
                    assignment: assignment.to_string(),
                })?;
        let key = key.trim();
        let value: f64 = value.trim().parse().map_err(|_| SynthError::InvalidValue {
            key: key.to_string(),
            value: value.trim().to_string(),
            reason: "is not a number".to_string(),
        })?;
        self.set(key, value)
    }

    /// Checks the parameters as a whole: shares, counts and ranges.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.patients == 0 {
            return Err(SynthError::InvalidValue {
                key: "patients".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        if self.groups.len() != GROUP_NAMES.len() {
            return Err(SynthError::InvalidValue {
                key: "groups".into(),
                value: self.groups.len().to_string(),
                reason: format!("there must be {} group rows", GROUP_NAMES.len()),
            });
        }
        for (g, row) in GROUP_NAMES.iter().zip(&self.groups) {
            if row.share.is_nan() || row.share < 0.0 {
                return Err(SynthError::InvalidValue {
                    key: format!("{}.share", g.to_lowercase()),
                    value: row.share.to_string(),
                    reason: "a share cannot be negative".into(),
                });
            }
        }
        let total: f64 = self.groups.iter().map(|g| g.share).sum();
        if total.is_nan() || total <= 0.0 {
            return Err(SynthError::InvalidValue {
                key: "<group>.share".into(),
                value: total.to_string(),
                reason: "the group shares must have a positive sum".into(),
            });
        }
        if self.groups[REFERENCE_GROUP].share <= 0.0 {
            return Err(SynthError::InvalidValue {
                key: "white.share".into(),
                value: self.groups[REFERENCE_GROUP].share.to_string(),
                reason: "the reference group needs a positive share".into(),
            });
        }
        let m = &self.model;
        for (key, v) in [
            ("choice_tau", m.choice_tau),
            ("age_sd", m.age_sd),
            ("ef_sd", m.ef_sd),
            ("bmi_sd", m.bmi_sd),
            ("los_sd", m.los_sd),
            ("los_median", m.los_median),
            ("position_sd", m.position_sd),
        ] {
            if v.is_nan() || v <= 0.0 {
                return Err(SynthError::InvalidValue {
                    key: key.into(),
                    value: v.to_string(),
                    reason: "must be positive".into(),
                });
            }
        }
        for key in MissingParams::KEYS {
            let value = self.missing.get(key).unwrap_or(0.0);
            if let Some(reason) = MissingParams::out_of_range(key, value) {
                return Err(SynthError::InvalidValue {
                    key: format!("missing.{key}"),
                    value: value.to_string(),
                    reason: reason.into(),
                });
            }
        }
        for (key, rho) in [
            ("hospital_effect_rho", m.hospital_effect_rho),
            ("hospital_disparity_rho", m.hospital_disparity_rho),
        ] {
            if !(-1.0..=1.0).contains(&rho) {
                return Err(SynthError::InvalidValue {
                    key: key.into(),
                    value: rho.to_string(),
                    reason: "a correlation lies in [-1, 1]".into(),
                });
            }
        }
        if m.hospital_disparity_sd.is_nan() || m.hospital_disparity_sd < 0.0 {
            return Err(SynthError::InvalidValue {
                key: "hospital_disparity_sd".into(),
                value: m.hospital_disparity_sd.to_string(),
                reason: "an SD cannot be negative".into(),
            });
        }
        Ok(())
    }

    /// Number of hospitals as a count.
    pub fn hospitals(&self) -> usize {
        self.model.hospitals as usize
    }

    /// Normalised group shares.
    pub fn shares(&self) -> Vec<f64> {
        let total: f64 = self.groups.iter().map(|g| g.share).sum();
        self.groups.iter().map(|g| g.share / total).collect()
    }
}

/// The valid key nearest to `key` by edit distance, if any is reasonably close.
pub fn nearest(key: &str, candidates: &[String]) -> Option<String> {
    // Edit distance, with a shared beginning counting in favour (`hosp_id` is
    // nearer `hospital_id` than `visit_id`).
    let prefix = |c: &str| {
        key.chars()
            .zip(c.chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    candidates
        .iter()
        .map(|c| (edit_distance(key, c), prefix(c), c))
        .min_by_key(|(d, p, _)| (2 * d).saturating_sub(*p))
        .filter(|(d, p, c)| *d <= (c.len().max(key.len()) / 2).max(2) || *p >= 3)
        .map(|(_, _, c)| c.clone())
}

/// Levenshtein distance between two strings (by characters; `strsim`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_suggests_the_nearest() {
        let mut p = Params::default();
        let err = p.set("black.ses_gp", 1.0).unwrap_err().to_string();
        assert!(err.contains("black.ses_gap"), "{err}");
        let err = p.set("mortality_intercpt", 1.0).unwrap_err().to_string();
        assert!(err.contains("mortality_intercept"), "{err}");
    }

    #[test]
    fn group_keys_are_case_insensitive_and_set_the_right_row() {
        let mut p = Params::default();
        p.set_assignment("Hispanic.diabetes=0.9").unwrap();
        assert_eq!(p.groups[2].diabetes, 0.9);
        p.set_assignment("patients = 1234").unwrap();
        assert_eq!(p.patients, 1234);
    }

    #[test]
    fn counts_reject_zero_negative_and_fractions() {
        let mut p = Params::default();
        assert!(p.set("patients", 0.0).is_err());
        assert!(p.set("patients", -5.0).is_err());
        assert!(p.set("patients", 2.5).is_err());
        assert!(p.set_assignment("patients=abc").is_err());
        assert!(p.set_assignment("patients").is_err());
    }

    #[test]
    fn every_listed_key_is_settable() {
        let mut p = Params::default();
        for key in Params::keys() {
            let v = if key.starts_with("missing.") {
                0.1
            } else {
                p.model.get(&key).unwrap_or(1.0).max(1000.0).round()
            };
            p.set(&key, v).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    #[test]
    fn missing_keys_take_shares_in_zero_one_and_default_to_complete_data() {
        let mut p = Params::default();
        assert!(p.missing.is_off());
        p.set_assignment("missing.ejection_fraction=0.15").unwrap();
        assert_eq!(p.missing.ejection_fraction, 0.15);
        assert!(!p.missing.is_off());
        for bad in ["missing.bmi=1", "missing.bmi=-0.1", "missing.strength=-1"] {
            assert!(p.set_assignment(bad).is_err(), "{bad}");
        }
        let err = p.set("missing.bmx", 0.1).unwrap_err().to_string();
        assert!(err.contains("missing.bmi"), "{err}");
        p.missing.adi = 2.0;
        assert!(p.validate().is_err());
    }

    #[test]
    fn default_shares_match_the_specification() {
        let s = Params::default().shares();
        assert!((s[0] - 0.78).abs() < 1e-12 && (s[1] - 0.08).abs() < 1e-12);
    }
}
