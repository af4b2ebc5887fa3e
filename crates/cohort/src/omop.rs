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

use std::path::{Path, PathBuf};

use healthgap_synth::omop::concepts;
use healthgap_synth::table::{civil_from_days, days_from_civil};
use polars::prelude::*;

use crate::error::CohortError;

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
/// flags, which are 0 when no qualifying record exists. Tables read: `person`,
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

/// The folder the tables are read from.
struct Source<'a> {
    dir: &'a Path,
}

/// The type a column is converted to on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Int64 (ids, concept ids, birth year/month/day).
    Int,
    /// Float64.
    Float,
    /// String.
    Text,
    /// Int32 days since 1970-01-01, from a Date, a Datetime or a YYYY-MM-DD string.
    Day,
    /// Int64 milliseconds since 1970-01-01 00:00, from a Datetime, a Date or a
    /// "YYYY-MM-DD HH:MM:SS" string.
    Stamp,
}

/// A column to read: name, type, and whether the table must have it (optional
/// columns that are absent are read as all null).
type Need = (&'static str, Kind, bool);

impl Source<'_> {
    fn error(&self, table: &str, message: impl Into<String>) -> CohortError {
        CohortError::Omop {
            dir: self.dir.to_path_buf(),
            table: table.to_string(),
            message: message.into(),
        }
    }

    /// Reads the `needs` columns of `table` from `<dir>/<table>.parquet` or
    /// `<dir>/<table>.csv`, converted to their [`Kind`]s.
    fn read(&self, table: &str, needs: &[Need]) -> Result<DataFrame, CohortError> {
        let parquet = self.dir.join(format!("{table}.parquet"));
        let csv = self.dir.join(format!("{table}.csv"));
        let (path, is_csv) = if parquet.is_file() {
            (parquet, false)
        } else if csv.is_file() {
            (csv, true)
        } else {
            return Err(self.error(
                table,
                format!("table not found: neither {table}.parquet nor {table}.csv exists"),
            ));
        };
        let read_error = |path: &PathBuf, e: PolarsError| CohortError::Read {
            path: path.clone(),
            message: e.to_string(),
        };
        let pl_path = PlRefPath::try_from_path(&path).map_err(|e| read_error(&path, e))?;
        let mut lf = if is_csv {
            // Every column as text; the conversion below types (and checks) them.
            LazyCsvReader::new(pl_path)
                .with_glob(false)
                .with_infer_schema_length(Some(0))
                .finish()
                .map_err(|e| read_error(&path, e))?
        } else {
            let args = ScanArgsParquet {
                glob: false,
                ..ScanArgsParquet::default()
            };
            LazyFrame::scan_parquet(pl_path, args).map_err(|e| read_error(&path, e))?
        };
        let schema = lf.collect_schema().map_err(|e| read_error(&path, e))?;
        let file = path
            .file_name()
            .map_or_else(|| table.to_string(), |f| f.to_string_lossy().into_owned());
        let mut present = Vec::new();
        for &(name, _, required) in needs {
            if schema.contains(name) {
                present.push(col(name));
            } else if required {
                let names: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
                let hint = crate::error::nearest(name, &names)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(self.error(table, format!("{file} has no column `{name}`{hint}")));
            }
        }
        let df = lf
            .select(present)
            .collect()
            .map_err(|e| read_error(&path, e))?;
        let height = df.height();
        let mut columns = Vec::with_capacity(needs.len());
        for &(name, kind, _) in needs {
            let column = match df.column(name) {
                Ok(c) => convert(c.as_materialized_series(), kind)
                    .map_err(|m| self.error(table, format!("{file}: column `{name}` {m}")))?,
                Err(_) => Series::full_null(name.into(), height, &kind.dtype()),
            };
            columns.push(column.into_column());
        }
        DataFrame::new(height, columns).map_err(|e| read_error(&path, e))
    }
}

impl Kind {
    /// The dtype of the converted column.
    fn dtype(self) -> DataType {
        match self {
            Kind::Int | Kind::Stamp => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Text => DataType::String,
            Kind::Day => DataType::Int32,
        }
    }
}

/// Converts a column read from a file to `kind`; the error message says which
/// value (or type) is wrong.
fn convert(s: &Series, kind: Kind) -> Result<Series, String> {
    let dtype = s.dtype().clone();
    let unexpected = || Err(format!("has type {dtype}, expected {}", kind.describe()));
    match kind {
        Kind::Int => {
            if dtype.is_integer() || dtype.is_float() || dtype.is_string() || dtype.is_null() {
                cast_checked(s, &DataType::Int64, kind)
            } else {
                unexpected()
            }
        }
        Kind::Float => {
            if dtype.is_primitive_numeric() || dtype.is_string() || dtype.is_null() {
                let out = cast_checked(s, &DataType::Float64, kind)?;
                // NaN is a missing value, as in the writers.
                let ca = out.f64().map_err(|e| e.to_string())?;
                Ok(ca
                    .iter()
                    .map(|v| v.filter(|x| !x.is_nan()))
                    .collect::<Float64Chunked>()
                    .with_name(s.name().clone())
                    .into_series())
            } else {
                unexpected()
            }
        }
        Kind::Text => {
            if dtype.is_string() {
                Ok(s.clone())
            } else if dtype.is_primitive_numeric() || dtype.is_null() {
                cast_checked(s, &DataType::String, kind)
            } else {
                unexpected()
            }
        }
        Kind::Day => {
            let dates = match dtype {
                DataType::Date => s.clone(),
                DataType::String | DataType::Null => cast_checked(s, &DataType::Date, kind)?,
                DataType::Datetime(_, _) => s.cast(&DataType::Date).map_err(|e| e.to_string())?,
                _ => return unexpected(),
            };
            dates.cast(&DataType::Int32).map_err(|e| e.to_string())
        }
        Kind::Stamp => {
            stamps(s).ok_or_else(|| format!("has type {dtype}, expected {}", kind.describe()))?
        }
    }
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Text => "text",
            Kind::Day => "a date (YYYY-MM-DD)",
            Kind::Stamp => "a date-time (YYYY-MM-DD HH:MM:SS)",
        }
    }
}

/// Casts `s` to `to`, failing with the first value that does not convert.
fn cast_checked(s: &Series, to: &DataType, kind: Kind) -> Result<Series, String> {
    let out = s.cast(to).map_err(|e| e.to_string())?;
    if out.null_count() > s.null_count() {
        let bad = (0..s.len()).find(|&i| {
            !matches!(s.get(i), Ok(AnyValue::Null)) && matches!(out.get(i), Ok(AnyValue::Null))
        });
        return Err(match bad.and_then(|i| s.get(i).ok().map(|v| (i, v))) {
            Some((i, v)) => format!(
                "has a value that is not {}: {v} (data row {})",
                kind.describe(),
                i + 1
            ),
            None => format!("has values that are not {}", kind.describe()),
        });
    }
    Ok(out)
}

/// Milliseconds since the epoch of a date-time column (`None` for an unusable
/// dtype; `Some(Err)` names the first unparsable string).
fn stamps(s: &Series) -> Option<Result<Series, String>> {
    let name = s.name().clone();
    let out = match s.dtype() {
        DataType::String => {
            let ca = s.str().ok()?;
            let mut v = Vec::with_capacity(ca.len());
            for (i, text) in ca.iter().enumerate() {
                match text.map(str::trim) {
                    None | Some("") => v.push(None),
                    Some(t) => match parse_stamp(t) {
                        Some(ms) => v.push(Some(ms)),
                        None => {
                            return Some(Err(format!(
                                "has a value that is not a date-time (YYYY-MM-DD HH:MM:SS): \"{t}\" (data row {})",
                                i + 1
                            )));
                        }
                    },
                }
            }
            Int64Chunked::from_iter_options(name, v.into_iter()).into_series()
        }
        DataType::Datetime(unit, _) => {
            let per_ms: i64 = match unit {
                TimeUnit::Nanoseconds => 1_000_000,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Milliseconds => 1,
            };
            let phys = s.to_physical_repr();
            let ca = phys.i64().ok()?;
            ca.iter()
                .map(|v| v.map(|x| x.div_euclid(per_ms)))
                .collect::<Int64Chunked>()
                .with_name(name)
                .into_series()
        }
        DataType::Date => {
            let phys = s.to_physical_repr();
            let ca = phys.i32().ok()?;
            ca.iter()
                .map(|v| v.map(|d| i64::from(d) * 86_400_000))
                .collect::<Int64Chunked>()
                .with_name(name)
                .into_series()
        }
        DataType::Null => Series::full_null(name, s.len(), &DataType::Int64),
        _ => return None,
    };
    Some(Ok(out))
}

/// Parses `YYYY-MM-DD`, optionally followed by ` HH:MM[:SS[.fff]]` (or `T` as
/// the separator, and an optional trailing `Z`), to milliseconds since
/// 1970-01-01 00:00.
fn parse_stamp(t: &str) -> Option<i64> {
    let t = t.strip_suffix('Z').unwrap_or(t);
    let (date, time) = match t.find([' ', 'T']) {
        Some(k) => (&t[..k], Some(t[k + 1..].trim())),
        None => (t, None),
    };
    let mut parts = date.split('-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    if !(-100_000..=100_000).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    let mut ms = i64::from(days) * 86_400_000;
    if let Some(time) = time.filter(|s| !s.is_empty()) {
        let mut hms = time.split(':');
        let h: i64 = hms.next()?.parse().ok()?;
        let mi: i64 = hms.next()?.parse().ok()?;
        let sec: f64 = match hms.next() {
            Some(x) => x.parse().ok()?,
            None => 0.0,
        };
        if hms.next().is_some()
            || !(0..=23).contains(&h)
            || !(0..=59).contains(&mi)
            || !(0.0..61.0).contains(&sec)
        {
            return None;
        }
        ms += (h * 60 + mi) * 60_000 + (sec * 1000.0).round() as i64;
    }
    Some(ms)
}

/// The columns of every table the loader reads.
struct Tables {
    person: DataFrame,
    location: DataFrame,
    care_site: DataFrame,
    visit: DataFrame,
    procedure: DataFrame,
    condition: DataFrame,
    measurement: DataFrame,
    observation: DataFrame,
    payer: DataFrame,
    death: DataFrame,
}

impl Tables {
    fn read(src: &Source<'_>) -> Result<Tables, CohortError> {
        use Kind::{Day, Float, Int, Stamp, Text};
        Ok(Tables {
            procedure: src.read(
                "procedure_occurrence",
                &[
                    (PID, Int, true),
                    ("procedure_concept_id", Int, true),
                    ("procedure_date", Day, true),
                    ("visit_occurrence_id", Int, true),
                ],
            )?,
            person: src.read(
                "person",
                &[
                    (PID, Int, true),
                    ("gender_concept_id", Int, true),
                    ("year_of_birth", Int, true),
                    ("month_of_birth", Int, false),
                    ("day_of_birth", Int, false),
                    ("race_concept_id", Int, true),
                    ("ethnicity_concept_id", Int, true),
                    ("location_id", Int, true),
                ],
            )?,
            location: src.read(
                "location",
                &[
                    ("location_id", Int, true),
                    ("zip", Text, true),
                    ("location_source_value", Text, true),
                ],
            )?,
            care_site: src.read(
                "care_site",
                &[
                    ("care_site_id", Int, true),
                    ("location_id", Int, true),
                    ("place_of_service_source_value", Text, true),
                ],
            )?,
            visit: src.read(
                "visit_occurrence",
                &[
                    ("visit_occurrence_id", Int, true),
                    (PID, Int, true),
                    ("visit_concept_id", Int, true),
                    ("visit_start_date", Day, true),
                    ("visit_start_datetime", Stamp, false),
                    ("visit_end_date", Day, true),
                    ("visit_end_datetime", Stamp, false),
                    ("care_site_id", Int, true),
                ],
            )?,
            condition: src.read(
                "condition_occurrence",
                &[
                    (PID, Int, true),
                    ("condition_concept_id", Int, true),
                    ("condition_start_date", Day, true),
                ],
            )?,
            measurement: src.read(
                "measurement",
                &[
                    (PID, Int, true),
                    ("measurement_concept_id", Int, true),
                    ("measurement_date", Day, true),
                    ("value_as_number", Float, true),
                ],
            )?,
            observation: src.read(
                "observation",
                &[
                    (PID, Int, true),
                    ("observation_concept_id", Int, true),
                    ("observation_date", Day, true),
                    ("value_as_number", Float, true),
                    ("value_as_string", Text, true),
                ],
            )?,
            payer: src.read(
                "payer_plan_period",
                &[
                    (PID, Int, true),
                    ("payer_plan_period_start_date", Day, true),
                    ("payer_plan_period_end_date", Day, true),
                    ("payer_concept_id", Int, true),
                ],
            )?,
            death: src.read("death", &[(PID, Int, true), ("death_date", Day, true)])?,
        })
    }
}

/// `column` is in the concept set.
fn is_in(column: &str, set: &[i64]) -> Expr {
    col(column).is_in(lit(Series::new("".into(), set)).implode(false), false)
}

/// Keeps the first row of each `key` (in the current order).
fn first_per(lf: LazyFrame, key: &str) -> LazyFrame {
    lf.unique_stable_generic(Some(vec![col(key)]), UniqueKeepStrategy::First)
}

/// A sort key ordering rows by `date`, then by file order (`ROW`).
fn order_key(date: &str) -> Expr {
    (col(date).cast(DataType::Int64) * lit(1_i64 << 32) + col(ROW).cast(DataType::Int64)).alias(KEY)
}

/// Persons with a qualifying record, flagged 1 in `name` (to left-join and fill
/// with 0).
fn flagged(lf: LazyFrame, name: &str) -> LazyFrame {
    lf.select([col(PID)])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(lit(1_i64).cast(DataType::Int64).alias(name))
}

/// Builds the cohort from the tables (rules in the module doc).
fn build(src: &Source<'_>, t: Tables, c: &OmopConcepts) -> Result<DataFrame, CohortError> {
    let fail = |e: PolarsError| src.error("cohort", format!("building the cohort failed: {e}"));

    // Index CABG: the first CABG procedure per person (date, then file order).
    let index = t
        .procedure
        .lazy()
        .with_row_index(ROW, None)
        .filter(
            is_in("procedure_concept_id", &c.cabg)
                .and(col(PID).is_not_null())
                .and(col("procedure_date").is_not_null()),
        )
        .with_column(order_key("procedure_date"))
        .sort([PID, KEY], SortMultipleOptions::default())
        .select([
            col(PID),
            col("visit_occurrence_id").alias("visit_id"),
            col("procedure_date").alias(DAY),
        ]);
    let index = first_per(index, PID);

    // Persons (first row per person_id) and the index visit.
    let person = first_per(t.person.lazy(), PID).select([
        col(PID),
        col("gender_concept_id"),
        col("year_of_birth"),
        col("month_of_birth"),
        col("day_of_birth"),
        col("race_concept_id"),
        col("ethnicity_concept_id"),
        col("location_id").alias("person_location_id"),
    ]);
    let visits = t.visit.lazy();
    let index_visit = first_per(visits.clone(), "visit_occurrence_id").select([
        col("visit_occurrence_id").alias("visit_id"),
        col("care_site_id").alias("hospital_id"),
        col("visit_start_date").alias("v_start_day"),
        col("visit_end_date").alias("v_end_day"),
        col("visit_start_datetime").alias("v_start_ms"),
        col("visit_end_datetime").alias("v_end_ms"),
    ]);
    let core = index
        .inner_join(person, col(PID), col(PID))
        .left_join(index_visit, col("visit_id"), col("visit_id"))
        .sort([PID], SortMultipleOptions::default())
        .collect()
        .map_err(fail)?;
    let keys = core.clone().lazy().select([col(PID), col(DAY)]);

    // Calendar years spanned by the index dates.
    let days = core
        .column(DAY)
        .and_then(|c| c.i32().cloned())
        .map_err(fail)?;
    let years = match (days.min(), days.max()) {
        (Some(lo), Some(hi)) => f64::from(civil_from_days(hi).0 - civil_from_days(lo).0 + 1),
        _ => 1.0,
    };

    // Comorbidities on or before the index date; major morbidity 0-30 days after.
    let since = (col("condition_start_date") - col(DAY)).alias("since");
    let before = col("since").lt_eq(lit(0));
    let mut cond_flags: Vec<Expr> = [
        ("diabetes", &c.diabetes),
        ("dialysis", &c.dialysis),
        ("heart_failure", &c.heart_failure),
        ("lung_disease", &c.lung_disease),
        ("pad", &c.pad),
        ("prior_mi", &c.prior_mi),
    ]
    .into_iter()
    .map(|(name, set)| {
        is_in("condition_concept_id", set)
            .and(before.clone())
            .any(true)
            .cast(DataType::Int64)
            .alias(name)
    })
    .collect();
    cond_flags.push(
        is_in("condition_concept_id", &c.major_morbidity)
            .and(col("since").gt_eq(lit(0)))
            .and(col("since").lt_eq(lit(30)))
            .any(true)
            .cast(DataType::Int64)
            .alias("morbidity_condition"),
    );
    let conditions = t
        .condition
        .lazy()
        .inner_join(keys.clone(), col(PID), col(PID))
        .with_column(since)
        .group_by([col(PID)])
        .agg(cond_flags);

    // The latest value on or before the index date (date, then file order).
    let latest = |value: &str, concept: &str, set: &[i64], name: &str| {
        col(value)
            .filter(is_in(concept, set).and(col(value).is_not_null()))
            .last()
            .alias(name)
    };
    let measurements = t
        .measurement
        .lazy()
        .with_row_index(ROW, None)
        .inner_join(keys.clone(), col(PID), col(PID))
        .filter(col("measurement_date").lt_eq(col(DAY)))
        .with_column(order_key("measurement_date"))
        .sort([KEY], SortMultipleOptions::default())
        .group_by([col(PID)])
        .agg([
            latest(
                "value_as_number",
                "measurement_concept_id",
                &c.ejection_fraction,
                "ef_value",
            ),
            latest("value_as_number", "measurement_concept_id", &c.bmi, "bmi"),
            latest(
                "value_as_number",
                "measurement_concept_id",
                &c.creatinine,
                "creatinine",
            ),
        ]);
    let observations = t
        .observation
        .lazy()
        .with_row_index(ROW, None)
        .inner_join(keys.clone(), col(PID), col(PID))
        .filter(col("observation_date").lt_eq(col(DAY)))
        .with_column(order_key("observation_date"))
        .sort([KEY], SortMultipleOptions::default())
        .group_by([col(PID)])
        .agg([
            latest(
                "value_as_number",
                "observation_concept_id",
                &c.adi,
                "adi_value",
            ),
            latest(
                "value_as_string",
                "observation_concept_id",
                &c.cabg_status,
                "status",
            ),
        ]);

    // The plan covering the index date (the latest-starting one if several).
    let payer_label = when(is_in("payer_concept_id", &c.payer_private))
        .then(lit("private"))
        .when(is_in("payer_concept_id", &c.payer_medicare))
        .then(lit("medicare"))
        .when(is_in("payer_concept_id", &c.payer_medicaid))
        .then(lit("medicaid"))
        .when(is_in("payer_concept_id", &c.payer_uninsured))
        .then(lit("uninsured"))
        .otherwise(lit(NULL).cast(DataType::String))
        .alias("insurance");
    let payers = t
        .payer
        .lazy()
        .with_row_index(ROW, None)
        .inner_join(keys.clone(), col(PID), col(PID))
        .filter(
            col("payer_plan_period_start_date").lt_eq(col(DAY)).and(
                col("payer_plan_period_end_date")
                    .gt_eq(col(DAY))
                    .or(col("payer_plan_period_end_date").is_null()),
            ),
        )
        .with_column(payer_label)
        .filter(col("insurance").is_not_null())
        .with_column(order_key("payer_plan_period_start_date"))
        .sort([KEY], SortMultipleOptions::default())
        .group_by([col(PID)])
        .agg([col("insurance").last()]);

    // Death 0-30 days after surgery.
    let after = (col("death_date") - col(DAY)).alias("after");
    let deaths = flagged(
        t.death
            .lazy()
            .inner_join(keys.clone(), col(PID), col(PID))
            .with_column(after)
            .filter(col("after").gt_eq(lit(0)).and(col("after").lt_eq(lit(30)))),
        "death_30d",
    );

    // Another inpatient visit starting 1-30 days after the index visit's end date.
    let gap = (col("other_start") - col("v_end_day")).alias("gap");
    let readmissions = flagged(
        visits
            .filter(is_in("visit_concept_id", &c.inpatient))
            .select([
                col(PID),
                col("visit_occurrence_id").alias("other_visit"),
                col("visit_start_date").alias("other_start"),
            ])
            .inner_join(
                core.clone()
                    .lazy()
                    .select([col(PID), col("visit_id"), col("v_end_day")]),
                col(PID),
                col(PID),
            )
            .filter(col("other_visit").neq_missing(col("visit_id")))
            .with_column(gap)
            .filter(col("gap").gt_eq(lit(1)).and(col("gap").lt_eq(lit(30)))),
        "readmit_30d",
    );

    // Care site: volume, teaching status and region.
    let volume = core
        .clone()
        .lazy()
        .filter(col("hospital_id").is_not_null())
        .group_by([col("hospital_id")])
        .agg([len().alias("index_procedures")]);
    let locations = first_per(t.location.lazy(), "location_id");
    let sites = first_per(t.care_site.lazy(), "care_site_id").select([
        col("care_site_id").alias("hospital_id"),
        col("location_id").alias("site_location_id"),
        col("place_of_service_source_value")
            .str()
            .strip_chars(lit(NULL))
            .str()
            .to_lowercase()
            .str()
            .starts_with(lit("teaching"))
            .cast(DataType::Int64)
            .alias("teaching"),
    ]);
    let site_regions = locations.clone().select([
        col("location_id").alias("site_location_id"),
        col("location_source_value").alias("region"),
    ]);
    let person_zips = locations.select([
        col("location_id").alias("person_location_id"),
        col("zip")
            .str()
            .strip_chars(lit(NULL))
            .str()
            .slice(lit(0), lit(3))
            .alias("zip3"),
    ]);

    let flag = |name: &str| {
        col(name)
            .fill_null(lit(0_i64))
            .cast(DataType::Int64)
            .alias(name)
    };
    let race = when(is_in("ethnicity_concept_id", &c.ethnicity_hispanic))
        .then(lit("Hispanic"))
        .when(is_in("race_concept_id", &c.race_white))
        .then(lit("White"))
        .when(is_in("race_concept_id", &c.race_black))
        .then(lit("Black"))
        .when(is_in("race_concept_id", &c.race_asian))
        .then(lit("Asian"))
        .otherwise(lit("Other"))
        .alias("race");
    let ethnicity = when(is_in("ethnicity_concept_id", &c.ethnicity_hispanic))
        .then(lit("Hispanic"))
        .otherwise(lit("Not Hispanic"))
        .alias("ethnicity");
    let joined = core
        .lazy()
        .left_join(
            person_zips,
            col("person_location_id"),
            col("person_location_id"),
        )
        .left_join(sites, col("hospital_id"), col("hospital_id"))
        .left_join(
            site_regions,
            col("site_location_id"),
            col("site_location_id"),
        )
        .left_join(volume, col("hospital_id"), col("hospital_id"))
        .left_join(conditions, col(PID), col(PID))
        .left_join(measurements, col(PID), col(PID))
        .left_join(observations, col(PID), col(PID))
        .left_join(payers, col(PID), col(PID))
        .left_join(deaths, col(PID), col(PID))
        .left_join(readmissions, col(PID), col(PID))
        .with_columns([
            race,
            ethnicity,
            is_in("gender_concept_id", &c.female)
                .fill_null(lit(false))
                .cast(DataType::Int64)
                .alias("female"),
            flag("diabetes"),
            flag("dialysis"),
            flag("heart_failure"),
            flag("lung_disease"),
            flag("pad"),
            flag("prior_mi"),
            flag("death_30d"),
            flag("readmit_30d"),
            col("death_30d")
                .fill_null(lit(0_i64))
                .gt(lit(0))
                .or(col("morbidity_condition").fill_null(lit(0_i64)).gt(lit(0)))
                .cast(DataType::Int64)
                .alias("major_morbidity"),
            col(DAY).cast(DataType::Date).alias("surgery_date"),
        ])
        .sort([PID], SortMultipleOptions::default())
        .collect()
        .map_err(fail)?;

    // Computed over the columns: age, length of stay, whole-number EF and ADI.
    let age = ages(&joined).map_err(fail)?;
    let los = lengths_of_stay(&joined).map_err(fail)?;
    let ef = whole(&joined, "ef_value", "ejection_fraction").map_err(fail)?;
    let adi = whole(&joined, "adi_value", "adi").map_err(fail)?;
    let volume = volumes(&joined, years).map_err(fail)?;
    let mut joined = joined;
    for s in [age, los, ef, adi, volume] {
        joined.with_column(s.into_column()).map_err(fail)?;
    }
    let out = joined
        .lazy()
        .select([
            col(PID),
            col("visit_id"),
            col("hospital_id"),
            col("surgery_date"),
            col("race"),
            col("ethnicity"),
            col("age"),
            col("female"),
            col("adi"),
            col("insurance"),
            col("zip3"),
            col("diabetes"),
            col("dialysis"),
            col("heart_failure"),
            col("lung_disease"),
            col("pad"),
            col("prior_mi"),
            col("ejection_fraction"),
            col("bmi"),
            col("creatinine"),
            col("status"),
            col("hospital_volume"),
            col("teaching"),
            col("region"),
            col("death_30d"),
            col("major_morbidity"),
            col("readmit_30d"),
            col("los_days"),
        ])
        .collect()
        .map_err(fail)?;
    Ok(out)
}

/// Age in completed years from the birth date to the surgery date. A missing or
/// invalid `month_of_birth` is taken as July and a missing or invalid
/// `day_of_birth` as the 15th (mid-year, mid-month); a missing year gives null.
fn ages(df: &DataFrame) -> PolarsResult<Series> {
    let year = df.column("year_of_birth")?.i64()?;
    let month = df.column("month_of_birth")?.i64()?;
    let day = df.column("day_of_birth")?.i64()?;
    let surgery = df.column(DAY)?.i32()?;
    let ages: Int64Chunked = year
        .iter()
        .zip(month.iter())
        .zip(day.iter())
        .zip(surgery.iter())
        .map(|(((y, m), d), s)| {
            let (y, s) = (y?, s?);
            let m = m.filter(|m| (1..=12).contains(m)).unwrap_or(7);
            let d = d.filter(|d| (1..=31).contains(d)).unwrap_or(15);
            let (sy, sm, sd) = civil_from_days(s);
            let mut years = i64::from(sy) - y;
            if (i64::from(sm), i64::from(sd)) < (m, d) {
                years -= 1;
            }
            Some(years)
        })
        .collect();
    Ok(ages.with_name("age".into()).into_series())
}

/// Length of stay of the index visit in days: (end − start date-time) / 24 h,
/// falling back to the difference of the dates when a date-time is missing.
fn lengths_of_stay(df: &DataFrame) -> PolarsResult<Series> {
    let start_ms = df.column("v_start_ms")?.i64()?;
    let end_ms = df.column("v_end_ms")?.i64()?;
    let start = df.column("v_start_day")?.i32()?;
    let end = df.column("v_end_day")?.i32()?;
    let los: Float64Chunked = start_ms
        .iter()
        .zip(end_ms.iter())
        .zip(start.iter())
        .zip(end.iter())
        .map(|(((sm, em), s), e)| match (sm, em, s, e) {
            (Some(sm), Some(em), _, _) => Some((em - sm) as f64 / 86_400_000.0),
            (_, _, Some(s), Some(e)) => Some(f64::from(e - s)),
            _ => None,
        })
        .collect();
    Ok(los.with_name("los_days".into()).into_series())
}

/// Index procedures at the care site per calendar year (computed here rather
/// than in polars, which may divide by multiplying with the reciprocal).
fn volumes(df: &DataFrame, years: f64) -> PolarsResult<Series> {
    let counts = df.column("index_procedures")?.cast(&DataType::Float64)?;
    let out: Float64Chunked = counts.f64()?.iter().map(|n| n.map(|n| n / years)).collect();
    Ok(out.with_name("hospital_volume".into()).into_series())
}

/// A Float64 column rounded to whole numbers as Int64 (`ejection_fraction`, `adi`).
fn whole(df: &DataFrame, from: &str, name: &str) -> PolarsResult<Series> {
    let values = df.column(from)?.f64()?;
    let out: Int64Chunked = values
        .iter()
        .map(|v| v.filter(|x| x.is_finite()).map(|x| x.round() as i64))
        .collect();
    Ok(out.with_name(name.into()).into_series())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_parse_to_milliseconds() {
        let day = i64::from(days_from_civil(2019, 1, 1)) * 86_400_000;
        assert_eq!(parse_stamp("2019-01-01"), Some(day));
        assert_eq!(parse_stamp("2019-01-01 00:00:00"), Some(day));
        assert_eq!(parse_stamp("2019-01-01T02:24:00Z"), Some(day + 8_640_000));
        assert_eq!(parse_stamp("2019-01-01 02:24"), Some(day + 8_640_000));
        assert_eq!(parse_stamp("2019-01-01 00:00:01.5"), Some(day + 1_500));
        for bad in [
            "2019-02-30 00:00:00",
            "2019-13-01",
            "2019-01-01 24:00:00",
            "01/01/2019",
            "2019-01-01 10",
            "",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn conversions_name_the_bad_value() {
        let s = Series::new("x".into(), ["1", "2", "three"]);
        let err = convert(&s, Kind::Int).unwrap_err();
        assert!(err.contains("three") && err.contains("row 3"), "{err}");
        let s = Series::new("d".into(), ["2019-01-01", "2019-02-29"]);
        let err = convert(&s, Kind::Day).unwrap_err();
        assert!(err.contains("2019-02-29"), "{err}");
        let s = Series::new("d".into(), [Some("2019-01-02"), None]);
        let days = convert(&s, Kind::Day).unwrap();
        assert_eq!(days.i32().unwrap().get(0), Some(17_898));
        assert_eq!(days.null_count(), 1);
        let s = Series::new("b".into(), [true, false]);
        assert!(convert(&s, Kind::Float).unwrap_err().contains("has type"));
        let s = Series::new("v".into(), [1.5, f64::NAN]);
        assert_eq!(convert(&s, Kind::Float).unwrap().null_count(), 1);
    }

    #[test]
    fn ages_are_completed_years() {
        let surgery = days_from_civil(2020, 3, 1);
        let df = df! {
            "year_of_birth" => [Some(1950_i64), Some(1950), Some(1950), None],
            "month_of_birth" => [Some(3_i64), Some(3), None, Some(1)],
            "day_of_birth" => [Some(1_i64), Some(2), None, Some(1)],
            DAY => [surgery; 4],
        }
        .unwrap();
        let ages = ages(&df).unwrap();
        let ages: Vec<Option<i64>> = ages.i64().unwrap().iter().collect();
        // Born 1 March: 70 on the day; born 2 March: still 69; unknown month and
        // day (taken as 15 July): 69; unknown year: null.
        assert_eq!(ages, [Some(70), Some(69), Some(69), None]);
    }

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
