//! OMOP CDM v5.4 loader: rebuilds the flat cohort extract (one row per index
//! CABG) from the OMOP tables of a folder.
//!
//! The rules are those of the synthetic generator's OMOP writer
//! (`healthgap_synth::omop`, module doc), so that the OMOP export of a synthetic
//! sample loads back to exactly its flat extract:
//!
//! - index CABG: the first `procedure_occurrence` (earliest `procedure_date`, then
//!   file order) whose concept is in [`OmopConcepts::cabg`]; its date is
//!   `surgery_date`, its `visit_occurrence_id` the `visit_id`, and that visit's
//!   `care_site_id` the `hospital_id`. A person without a CABG procedure is not in
//!   the cohort.
//! - `race`: `Hispanic` when `ethnicity_concept_id` is Hispanic, else `White`,
//!   `Black` or `Asian` by `race_concept_id`, else `Other`; `ethnicity`:
//!   `Hispanic` / `Not Hispanic`; `female` from `gender_concept_id`.
//! - `age`: completed years from the birth date (`year_of_birth`,
//!   `month_of_birth`, `day_of_birth`; an absent month or day is taken as 15 July
//!   or the 15th) to the surgery date.
//! - comorbidities: a condition with the concept dated on or before the index date.
//!   `diabetes` is missing (null) instead of 0 when there is no such condition
//!   but an observation in [`OmopConcepts::diabetes_unknown`] ("diabetes status
//!   not documented") dated on or before the index date.
//! - `ejection_fraction`, `creatinine`, `bmi`: the latest measurement with a value
//!   on or before the index date (ties on the date: the later row of the file);
//!   `adi` and `status` (observation `value_as_number` / `value_as_string`): the
//!   latest such observation. `ejection_fraction` and `adi` are rounded to whole
//!   numbers.
//! - `insurance`: the payer plan period covering the index date (start ≤ index ≤
//!   end, a null end being open), the latest-starting one if several; its payer
//!   concept gives `private`, `medicare`, `medicaid` or `uninsured`.
//! - `death_30d`: a death 0–30 days after the surgery date; `major_morbidity`:
//!   `death_30d`, or a major-morbidity condition 0–30 days after the surgery date.
//! - `readmit_30d`: another inpatient visit starting 1–30 days after the index
//!   visit's end date.
//! - `los_days`: (visit_end_datetime − visit_start_datetime) of the index visit in
//!   days.
//! - `hospital_volume`: index procedures at the care site / calendar years spanned
//!   by the index dates (max year − min year + 1).
//! - `teaching`: `care_site.place_of_service_source_value` starting with
//!   "teaching"; `region`: the care site's `location.location_source_value`;
//!   `zip3`: the first three characters of the person's `location.zip`.
//!
//! Each table is read from `<dir>/<table>.parquet` or, if absent,
//! `<dir>/<table>.csv` (dates as YYYY-MM-DD). Only the columns used are read; they
//! are converted to the expected types, and a missing table, a missing column or a
//! value of the wrong type is a [`CohortError::Omop`] naming the folder, the table
//! and the column.
//!
//! The tables are read in `omop/read.rs`; the cohort frame is built from them,
//! stage by stage, in `omop/build.rs`.

mod build;
mod read;

use std::path::Path;

use healthgap_synth::omop::concepts;
use polars::prelude::*;

use crate::error::CohortError;
use build::build;
use read::{Source, Tables};

/// The concept sets the loader uses to recognise each record. Every set can be
/// overridden from a user's configuration (the `[data.omop]` table); the
/// defaults are the concepts written by the synthetic generator
/// (`healthgap_synth::omop::concepts`). A record matches when its concept id is
/// in the set; an empty set matches nothing.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OmopConcepts {
    /// `procedure_concept_id` of a CABG (the index procedure).
    pub cabg: Vec<i64>,
    /// `visit_concept_id` of an inpatient visit (readmissions).
    pub inpatient: Vec<i64>,
    /// `race_concept_id` of White.
    pub race_white: Vec<i64>,
    /// `race_concept_id` of Black or African American.
    pub race_black: Vec<i64>,
    /// `race_concept_id` of Asian.
    pub race_asian: Vec<i64>,
    /// `ethnicity_concept_id` of Hispanic or Latino.
    pub ethnicity_hispanic: Vec<i64>,
    /// `gender_concept_id` of female.
    pub female: Vec<i64>,
    /// Condition: diabetes.
    pub diabetes: Vec<i64>,
    /// Condition: end-stage renal disease on dialysis.
    pub dialysis: Vec<i64>,
    /// Condition: heart failure.
    pub heart_failure: Vec<i64>,
    /// Condition: chronic lung disease.
    pub lung_disease: Vec<i64>,
    /// Condition: peripheral arterial disease.
    pub pad: Vec<i64>,
    /// Condition: prior myocardial infarction.
    pub prior_mi: Vec<i64>,
    /// Condition: post-operative major morbidity (0–30 days after surgery).
    pub major_morbidity: Vec<i64>,
    /// Measurement: left-ventricular ejection fraction, %.
    pub ejection_fraction: Vec<i64>,
    /// Measurement: serum creatinine, mg/dL.
    pub creatinine: Vec<i64>,
    /// Measurement: body mass index, kg/m².
    pub bmi: Vec<i64>,
    /// Observation: area deprivation index (`value_as_number`).
    pub adi: Vec<i64>,
    /// Observation: CABG status (`value_as_string`).
    pub cabg_status: Vec<i64>,
    /// Observation: diabetes status not documented (makes `diabetes` missing
    /// when no diabetes condition precedes the index).
    pub diabetes_unknown: Vec<i64>,
    /// `payer_concept_id` of private insurance.
    pub payer_private: Vec<i64>,
    /// `payer_concept_id` of Medicare.
    pub payer_medicare: Vec<i64>,
    /// `payer_concept_id` of Medicaid.
    pub payer_medicaid: Vec<i64>,
    /// `payer_concept_id` of no insurance.
    pub payer_uninsured: Vec<i64>,
}

impl Default for OmopConcepts {
    fn default() -> Self {
        OmopConcepts {
            cabg: vec![concepts::CABG],
            inpatient: vec![concepts::INPATIENT],
            race_white: vec![concepts::WHITE],
            race_black: vec![concepts::BLACK],
            race_asian: vec![concepts::ASIAN],
            ethnicity_hispanic: vec![concepts::HISPANIC],
            female: vec![concepts::FEMALE],
            diabetes: vec![concepts::DIABETES],
            dialysis: vec![concepts::DIALYSIS],
            heart_failure: vec![concepts::HEART_FAILURE],
            lung_disease: vec![concepts::LUNG_DISEASE],
            pad: vec![concepts::PAD],
            prior_mi: vec![concepts::PRIOR_MI],
            major_morbidity: vec![concepts::MAJOR_MORBIDITY],
            ejection_fraction: vec![concepts::EJECTION_FRACTION],
            creatinine: vec![concepts::CREATININE],
            bmi: vec![concepts::BMI],
            adi: vec![concepts::ADI],
            cabg_status: vec![concepts::CABG_STATUS],
            diabetes_unknown: vec![concepts::DIABETES_UNKNOWN],
            payer_private: vec![concepts::PAYERS[0]],
            payer_medicare: vec![concepts::PAYERS[1]],
            payer_medicaid: vec![concepts::PAYERS[2]],
            payer_uninsured: vec![concepts::PAYERS[3]],
        }
    }
}

/// Loads the cohort from the OMOP CDM v5.4 tables in `dir`: one row per index
/// CABG, sorted by `person_id`, with the columns, column order and types of the
/// flat extract (`table_to_frame(&sample.flat_table())`):
///
/// `person_id`, `visit_id`, `hospital_id` (Int64), `surgery_date` (Date), `race`,
/// `ethnicity` (String), `age`, `female`, `adi` (Int64), `insurance`, `zip3`
/// (String), `diabetes`, `dialysis`, `heart_failure`, `lung_disease`, `pad`,
/// `prior_mi`, `ejection_fraction` (Int64), `bmi`, `creatinine` (Float64),
/// `status` (String), `hospital_volume` (Float64), `teaching` (Int64), `region`
/// (String), `death_30d`, `major_morbidity`, `readmit_30d` (Int64), `los_days`
/// (Float64).
///
/// The rules are listed in the module doc. Values without a source record are
/// null (e.g. a person without a BMI measurement before surgery), except the 0/1
/// flags, which are 0 when no qualifying record exists (`diabetes` is null
/// when its status is recorded as not documented). Tables read: `person`,
/// `location`, `care_site`, `visit_occurrence`, `procedure_occurrence`,
/// `condition_occurrence`, `measurement`, `observation`, `payer_plan_period` and
/// `death`.
///
/// # Errors
/// [`CohortError::MissingFile`] when `dir` is not a folder; [`CohortError::Omop`]
/// when a table is missing, lacks a column, or holds a value of the wrong type
/// (naming the folder, the table and the column); [`CohortError::Read`] when a
/// file cannot be parsed.
pub fn load_omop(dir: &Path, concepts: &OmopConcepts) -> Result<DataFrame, CohortError> {
    if !dir.is_dir() {
        return Err(CohortError::MissingFile {
            path: dir.to_path_buf(),
            hint: Some("the folder of OMOP CDM tables, <table>.parquet or <table>.csv".to_string()),
        });
    }
    let src = Source { dir };
    let tables = Tables::read(&src)?;
    build(&src, tables, concepts)
}

// Internal column names (not in the output).
const PID: &str = "person_id";
const DAY: &str = "surgery_day";
const ROW: &str = "row";
const KEY: &str = "order_key";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_concepts_are_the_generator_concepts() {
        let c = OmopConcepts::default();
        assert_eq!(c.cabg, [concepts::CABG]);
        assert_eq!(
            [
                &c.diabetes,
                &c.dialysis,
                &c.heart_failure,
                &c.lung_disease,
                &c.pad,
                &c.prior_mi
            ]
            .map(|v| v[0]),
            concepts::CONDITIONS
        );
        assert_eq!(
            [
                &c.payer_private,
                &c.payer_medicare,
                &c.payer_medicaid,
                &c.payer_uninsured
            ]
            .map(|v| v[0]),
            concepts::PAYERS
        );
    }
}
