//! Building the cohort frame from the OMOP tables read (rules in the module doc
//! of `omop`), one stage per source of columns.

use healthgap_synth::table::civil_from_days;
use polars::prelude::*;

use super::OmopConcepts;
use super::read::{Source, Tables};
use super::{DAY, KEY, PID, ROW};
use crate::error::CohortError;

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

/// The per-person tables left-joined onto the index procedures, one row per
/// person each.
struct PerPerson {
    conditions: LazyFrame,
    measurements: LazyFrame,
    observations: LazyFrame,
    payers: LazyFrame,
    deaths: LazyFrame,
    readmissions: LazyFrame,
}

/// The care-site tables left-joined onto the index procedures.
struct CareSites {
    volume: LazyFrame,
    sites: LazyFrame,
    site_regions: LazyFrame,
    person_zips: LazyFrame,
}

/// Builds the cohort from the tables (rules in the module doc).
pub(super) fn build(
    src: &Source<'_>,
    t: Tables,
    c: &OmopConcepts,
) -> Result<DataFrame, CohortError> {
    let fail = |e: PolarsError| src.error("cohort", format!("building the cohort failed: {e}"));

    let index = index_procedures(t.procedure, c);
    let visits = t.visit.lazy();
    let core = core_frame(index, t.person, visits.clone()).map_err(fail)?;
    let keys = core.clone().lazy().select([col(PID), col(DAY)]);
    let years = years_spanned(&core).map_err(fail)?;

    let per_person = PerPerson {
        conditions: conditions(t.condition, keys.clone(), c),
        measurements: measurements(t.measurement, keys.clone(), c),
        observations: observations(t.observation, keys.clone(), c),
        payers: payers(t.payer, keys.clone(), c),
        deaths: deaths(t.death, keys),
        readmissions: readmissions(visits, &core, c),
    };
    let care_sites = care_sites(&core, t.location, t.care_site);
    let joined = join_all(core, care_sites, per_person, c).map_err(fail)?;
    let joined = computed_columns(joined, years).map_err(fail)?;
    output_columns(joined).map_err(fail)
}

/// Index CABG: the first CABG procedure per person (date, then file order).
fn index_procedures(procedure: DataFrame, c: &OmopConcepts) -> LazyFrame {
    let index = procedure
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
    first_per(index, PID)
}

/// Persons (first row per person_id) joined to their index procedure and index
/// visit, sorted by person_id.
fn core_frame(index: LazyFrame, person: DataFrame, visits: LazyFrame) -> PolarsResult<DataFrame> {
    let person = first_per(person.lazy(), PID).select([
        col(PID),
        col("gender_concept_id"),
        col("year_of_birth"),
        col("month_of_birth"),
        col("day_of_birth"),
        col("race_concept_id"),
        col("ethnicity_concept_id"),
        col("location_id").alias("person_location_id"),
    ]);
    let index_visit = first_per(visits, "visit_occurrence_id").select([
        col("visit_occurrence_id").alias("visit_id"),
        col("care_site_id").alias("hospital_id"),
        col("visit_start_date").alias("v_start_day"),
        col("visit_end_date").alias("v_end_day"),
        col("visit_start_datetime").alias("v_start_ms"),
        col("visit_end_datetime").alias("v_end_ms"),
    ]);
    index
        .inner_join(person, col(PID), col(PID))
        .left_join(index_visit, col("visit_id"), col("visit_id"))
        .sort([PID], SortMultipleOptions::default())
        .collect()
}

/// Calendar years spanned by the index dates (1 when there are none).
fn years_spanned(core: &DataFrame) -> PolarsResult<f64> {
    let days = core.column(DAY).and_then(|c| c.i32().cloned())?;
    Ok(match (days.min(), days.max()) {
        (Some(lo), Some(hi)) => f64::from(civil_from_days(hi).0 - civil_from_days(lo).0 + 1),
        _ => 1.0,
    })
}

/// Comorbidities on or before the index date; major morbidity 0-30 days after.
fn conditions(condition: DataFrame, keys: LazyFrame, c: &OmopConcepts) -> LazyFrame {
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
    condition
        .lazy()
        .inner_join(keys, col(PID), col(PID))
        .with_column(since)
        .group_by([col(PID)])
        .agg(cond_flags)
}

/// The latest value on or before the index date (date, then file order).
fn latest(value: &str, concept: &str, set: &[i64], name: &str) -> Expr {
    col(value)
        .filter(is_in(concept, set).and(col(value).is_not_null()))
        .last()
        .alias(name)
}

/// The latest ejection fraction, BMI and creatinine on or before the index date.
fn measurements(measurement: DataFrame, keys: LazyFrame, c: &OmopConcepts) -> LazyFrame {
    measurement
        .lazy()
        .with_row_index(ROW, None)
        .inner_join(keys, col(PID), col(PID))
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
        ])
}

/// The latest ADI and CABG status observations on or before the index date, and
/// whether diabetes is recorded as not documented by then.
fn observations(observation: DataFrame, keys: LazyFrame, c: &OmopConcepts) -> LazyFrame {
    observation
        .lazy()
        .with_row_index(ROW, None)
        .inner_join(keys, col(PID), col(PID))
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
            is_in("observation_concept_id", &c.diabetes_unknown)
                .any(true)
                .alias("diabetes_unknown"),
        ])
}

/// The plan covering the index date (the latest-starting one if several).
fn payers(payer: DataFrame, keys: LazyFrame, c: &OmopConcepts) -> LazyFrame {
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
    payer
        .lazy()
        .with_row_index(ROW, None)
        .inner_join(keys, col(PID), col(PID))
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
        .agg([col("insurance").last()])
}

/// Death 0-30 days after surgery.
fn deaths(death: DataFrame, keys: LazyFrame) -> LazyFrame {
    let after = (col("death_date") - col(DAY)).alias("after");
    flagged(
        death
            .lazy()
            .inner_join(keys, col(PID), col(PID))
            .with_column(after)
            .filter(col("after").gt_eq(lit(0)).and(col("after").lt_eq(lit(30)))),
        "death_30d",
    )
}

/// Another inpatient visit starting 1-30 days after the index visit's end date.
fn readmissions(visits: LazyFrame, core: &DataFrame, c: &OmopConcepts) -> LazyFrame {
    let gap = (col("other_start") - col("v_end_day")).alias("gap");
    flagged(
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
    )
}

/// Care site: volume, teaching status and region; and the person's zip3.
fn care_sites(core: &DataFrame, location: DataFrame, care_site: DataFrame) -> CareSites {
    let volume = core
        .clone()
        .lazy()
        .filter(col("hospital_id").is_not_null())
        .group_by([col("hospital_id")])
        .agg([len().alias("index_procedures")]);
    let locations = first_per(location.lazy(), "location_id");
    let sites = first_per(care_site.lazy(), "care_site_id").select([
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
    CareSites {
        volume,
        sites,
        site_regions,
        person_zips,
    }
}

/// A 0/1 flag column with no record taken as 0.
fn flag(name: &str) -> Expr {
    col(name)
        .fill_null(lit(0_i64))
        .cast(DataType::Int64)
        .alias(name)
}

/// `diabetes`: 1 with a diabetes condition before the index; otherwise null when
/// an observation says the status was not documented, else 0.
fn diabetes() -> Expr {
    let undocumented = col("diabetes")
        .fill_null(lit(0_i64))
        .eq(lit(0_i64))
        .and(col("diabetes_unknown").fill_null(lit(false)));
    when(undocumented)
        .then(lit(NULL).cast(DataType::Int64))
        .otherwise(flag("diabetes"))
        .alias("diabetes")
}

/// Joins the care-site and per-person tables onto the core frame and derives
/// race, ethnicity, sex, the 0/1 flags and the surgery date; sorted by person_id.
fn join_all(
    core: DataFrame,
    care: CareSites,
    per: PerPerson,
    c: &OmopConcepts,
) -> PolarsResult<DataFrame> {
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
    core.lazy()
        .left_join(
            care.person_zips,
            col("person_location_id"),
            col("person_location_id"),
        )
        .left_join(care.sites, col("hospital_id"), col("hospital_id"))
        .left_join(
            care.site_regions,
            col("site_location_id"),
            col("site_location_id"),
        )
        .left_join(care.volume, col("hospital_id"), col("hospital_id"))
        .left_join(per.conditions, col(PID), col(PID))
        .left_join(per.measurements, col(PID), col(PID))
        .left_join(per.observations, col(PID), col(PID))
        .left_join(per.payers, col(PID), col(PID))
        .left_join(per.deaths, col(PID), col(PID))
        .left_join(per.readmissions, col(PID), col(PID))
        .with_columns([
            race,
            ethnicity,
            is_in("gender_concept_id", &c.female)
                .fill_null(lit(false))
                .cast(DataType::Int64)
                .alias("female"),
            diabetes(),
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
}

/// Computed over the columns: age, length of stay, whole-number EF and ADI, and
/// hospital volume.
fn computed_columns(joined: DataFrame, years: f64) -> PolarsResult<DataFrame> {
    let age = ages(&joined)?;
    let los = lengths_of_stay(&joined)?;
    let ef = whole(&joined, "ef_value", "ejection_fraction")?;
    let adi = whole(&joined, "adi_value", "adi")?;
    let volume = volumes(&joined, years)?;
    let mut joined = joined;
    for s in [age, los, ef, adi, volume] {
        joined.with_column(s.into_column())?;
    }
    Ok(joined)
}

/// The output columns, in the order of the flat extract.
fn output_columns(joined: DataFrame) -> PolarsResult<DataFrame> {
    joined
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
    use healthgap_synth::table::days_from_civil;

    use super::*;

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
}
