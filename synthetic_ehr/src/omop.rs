//! The sample as OMOP CDM v5.4 tables, from which the flat extract can be rebuilt.
//!
//! Standard concepts used (verified ids, SYNTHETIC_EHR.md): race White 8527, Black
//! 8516, Asian 8515; ethnicity Hispanic 38003563, Not Hispanic 38003564; gender
//! Male 8507, Female 8532; visit Inpatient 9201; CABG procedure 4336464; Type 2
//! diabetes 201826; Creatinine 3016723; BMI 3038553; type concept EHR 32817.
//! Everything else is a documented local concept (id > 2,000,000,000), listed in
//! [`concepts`].
//!
//! How the flat columns map (the loader applies the same rules):
//! - index CABG: the first `procedure_occurrence` with the CABG concept; its date is
//!   `surgery_date` and its visit the index visit (`visit_id`, `hospital_id` =
//!   the visit's `care_site_id`).
//! - `race`: Hispanic when `ethnicity_concept_id` is Hispanic, else by
//!   `race_concept_id` (White, Black, Asian), else Other.
//! - `age`: completed years from the birth date to the surgery date.
//! - comorbidities: a condition with the concept dated on or before the index date
//!   (records after the index exist and must be ignored).
//! - EF, creatinine, BMI: the latest measurement on or before the index date (an
//!   older and a post-operative value exist and must be ignored).
//! - `adi`: observation ADI; `status`: observation CABG status (value_as_string).
//! - `insurance`: the payer plan period covering the index date (an older plan with
//!   another payer exists for some patients).
//! - `death_30d`: a death within 30 days of the surgery date (later deaths exist).
//! - `major_morbidity`: `death_30d`, or a major-morbidity condition dated 0-30
//!   days after the surgery date (later ones exist).
//! - `readmit_30d`: another inpatient visit starting 1-30 days after the index
//!   visit's end date (visits later than that exist).
//! - `los_days`: (visit_end_datetime − visit_start_datetime) in days.
//! - `hospital_volume`: index procedures at the care site / calendar years spanned.
//! - `teaching`: care_site.place_of_service_source_value; `region`: the care
//!   site's location_source_value; `zip3`: the person's location zip.
//!
//! Blanked cells ([`crate::missing`]) are records that were never made, so the
//! loader finds no value:
//! - EF, creatinine, BMI: neither the older nor the pre-operative measurement is
//!   written (the post-operative one, which the loader ignores, still is);
//! - `adi`: no ADI observation; `insurance`: no plan covers the index date (an
//!   older plan may still exist);
//! - `diabetes`: no diabetes condition before the index, and an observation
//!   "diabetes status not documented" ([`concepts::DIABETES_UNKNOWN`]) on the day
//!   of surgery; without it, no condition record would mean "no diabetes".

use crate::missing::Blankable;
use crate::params::GROUP_NAMES;
use crate::sample::{Patient, Sample, VISIT_ID_OFFSET, mix, mix_uniform, zip3};
use crate::scm::{INSURANCE, STATUS};
use crate::table::{Column, Table, civil_from_days, days_from_civil};
use crate::world::{Hospital, REGIONS};

/// Concept ids written by the generator (standard where verified, local otherwise).
pub mod concepts {
    /// Race: White.
    pub const WHITE: i64 = 8527;
    /// Race: Black or African American.
    pub const BLACK: i64 = 8516;
    /// Race: Asian.
    pub const ASIAN: i64 = 8515;
    /// Race: other (local).
    pub const OTHER_RACE: i64 = 2_000_000_001;
    /// Ethnicity: Hispanic or Latino.
    pub const HISPANIC: i64 = 38_003_563;
    /// Ethnicity: Not Hispanic or Latino.
    pub const NOT_HISPANIC: i64 = 38_003_564;
    /// Gender: male.
    pub const MALE: i64 = 8507;
    /// Gender: female.
    pub const FEMALE: i64 = 8532;
    /// Visit: inpatient.
    pub const INPATIENT: i64 = 9201;
    /// Procedure: CABG.
    pub const CABG: i64 = 4_336_464;
    /// Type concept: EHR.
    pub const EHR: i64 = 32_817;
    /// Condition: type 2 diabetes mellitus.
    pub const DIABETES: i64 = 201_826;
    /// Condition: end-stage renal disease on dialysis (local).
    pub const DIALYSIS: i64 = 2_000_000_011;
    /// Condition: heart failure (local).
    pub const HEART_FAILURE: i64 = 2_000_000_012;
    /// Condition: chronic lung disease (local).
    pub const LUNG_DISEASE: i64 = 2_000_000_013;
    /// Condition: peripheral arterial disease (local).
    pub const PAD: i64 = 2_000_000_014;
    /// Condition: prior myocardial infarction (local).
    pub const PRIOR_MI: i64 = 2_000_000_015;
    /// Measurement: left-ventricular ejection fraction, % (local).
    pub const EJECTION_FRACTION: i64 = 2_000_000_021;
    /// Measurement: serum creatinine.
    pub const CREATININE: i64 = 3_016_723;
    /// Measurement: body mass index.
    pub const BMI: i64 = 3_038_553;
    /// Observation: area deprivation index, national percentile (local).
    pub const ADI: i64 = 2_000_000_031;
    /// Observation: CABG status (elective / urgent / emergent) (local).
    pub const CABG_STATUS: i64 = 2_000_000_032;
    /// Observation: diabetes status not documented before surgery (local); with
    /// no diabetes condition before the index it makes `diabetes` missing.
    pub const DIABETES_UNKNOWN: i64 = 2_000_000_033;
    /// Payers (local), in the order private, medicare, medicaid, uninsured.
    pub const PAYERS: [i64; 4] = [2_000_000_041, 2_000_000_042, 2_000_000_043, 2_000_000_044];
    /// Condition: post-operative major morbidity within 30 days (local); with a
    /// death within 30 days it makes `major_morbidity`.
    pub const MAJOR_MORBIDITY: i64 = 2_000_000_016;
    /// Conditions in the flat column order diabetes, dialysis, heart_failure,
    /// lung_disease, pad, prior_mi.
    pub const CONDITIONS: [i64; 6] = [
        DIABETES,
        DIALYSIS,
        HEART_FAILURE,
        LUNG_DISEASE,
        PAD,
        PRIOR_MI,
    ];
}

/// Location ids: persons 100000 + zip3, hospitals 200000 + hospital id.
const PERSON_LOCATION: i64 = 100_000;
const HOSPITAL_LOCATION: i64 = 200_000;
const READMIT_VISIT_OFFSET: i64 = 20_000_000;
const LATER_VISIT_OFFSET: i64 = 30_000_000;

fn race_concept(group: u8) -> i64 {
    match GROUP_NAMES.get(group as usize).copied() {
        Some("White") => concepts::WHITE,
        Some("Black") => concepts::BLACK,
        Some("Asian") => concepts::ASIAN,
        Some("Hispanic") => 0,
        _ => concepts::OTHER_RACE,
    }
}

/// A date-time string at `minutes` after midnight of `day`.
fn datetime(day: i32, minutes: i64) -> String {
    let day = day + (minutes.div_euclid(1440)) as i32;
    let m = minutes.rem_euclid(1440);
    let (y, mo, d) = civil_from_days(day);
    format!("{y:04}-{mo:02}-{d:02} {:02}:{:02}:00", m / 60, m % 60)
}

/// A birth date such that the completed years at `surgery` equal `age`.
pub fn birth_date(surgery: i32, age: i64, u: f64) -> i32 {
    let (y, m, d) = civil_from_days(surgery);
    let at = |years: i64| -> i32 {
        let yy = y - years as i32;
        // 29 February in a non-leap year: the birthday is taken as 28 February.
        let dd = if m == 2 && d == 29 && days_from_civil(yy, 3, 1) - days_from_civil(yy, 2, 1) == 28
        {
            28
        } else {
            d
        };
        days_from_civil(yy, m, dd)
    };
    let latest = at(age);
    let earliest = at(age + 1) + 1;
    let span = (latest - earliest + 1) as f64;
    latest - (u * span).floor().min(span - 1.0) as i32
}

/// Completed years between a birth date and a later date.
pub fn completed_years(birth: i32, on: i32) -> i64 {
    let (by, bm, bd) = civil_from_days(birth);
    let (y, m, d) = civil_from_days(on);
    let mut years = i64::from(y - by);
    if (m, d) < (bm, bd) {
        years -= 1;
    }
    years
}

#[derive(Default)]
struct Rows {
    person: Vec<i64>,
    concept: Vec<i64>,
    date: Vec<i32>,
    number: Vec<f64>,
    text: Vec<String>,
}

impl Rows {
    fn push(&mut self, person: i64, concept: i64, date: i32, number: f64, text: &str) {
        self.person.push(person);
        self.concept.push(concept);
        self.date.push(date);
        self.number.push(number);
        self.text.push(text.to_string());
    }
}

/// Builds the OMOP CDM v5.4 tables of the sample.
pub fn tables(sample: &Sample) -> Vec<Table> {
    let ps = &sample.patients;
    let hospitals = &sample.world.hospitals;
    vec![
        person(ps, hospitals),
        visit_occurrence(ps, hospitals),
        procedure_occurrence(ps),
        condition_occurrence(ps),
        measurement(ps),
        observation(ps),
        payer_plan_period(ps),
        death(ps),
        care_site(hospitals),
        location(ps, hospitals),
        observation_period(ps),
    ]
}

/// The `person_id` of the patient at index `i` of the sample.
fn pid(i: usize) -> i64 {
    i as i64 + 1
}

/// `person`: sex, birth date, race and ethnicity concepts, and the location of
/// the patient's zip3.
fn person(ps: &[Patient], hospitals: &[Hospital]) -> Table {
    let n = ps.len();
    let mut births = Vec::with_capacity(n);
    for p in ps {
        births.push(birth_date(
            p.surgery_date(),
            p.sim.demographics.age as i64,
            mix_uniform(p.aux, 1),
        ));
    }
    let ymd: Vec<(i32, u32, u32)> = births.iter().map(|&b| civil_from_days(b)).collect();
    Table::new(
        "person",
        vec![
            ("person_id", Column::Int((0..n).map(pid).collect())),
            (
                "gender_concept_id",
                Column::Int(
                    ps.iter()
                        .map(|p| {
                            if p.sim.demographics.female {
                                concepts::FEMALE
                            } else {
                                concepts::MALE
                            }
                        })
                        .collect(),
                ),
            ),
            (
                "year_of_birth",
                Column::Int(ymd.iter().map(|d| i64::from(d.0)).collect()),
            ),
            (
                "month_of_birth",
                Column::Int(ymd.iter().map(|d| i64::from(d.1)).collect()),
            ),
            (
                "day_of_birth",
                Column::Int(ymd.iter().map(|d| i64::from(d.2)).collect()),
            ),
            (
                "race_concept_id",
                Column::Int(ps.iter().map(|p| race_concept(p.group)).collect()),
            ),
            (
                "ethnicity_concept_id",
                Column::Int(
                    ps.iter()
                        .map(|p| {
                            if p.group == 2 {
                                concepts::HISPANIC
                            } else {
                                concepts::NOT_HISPANIC
                            }
                        })
                        .collect(),
                ),
            ),
            (
                "location_id",
                Column::Int(
                    ps.iter()
                        .map(|p| {
                            PERSON_LOCATION
                                + i64::from(zip3(hospitals[p.sim.hospital].region, p.sim.position))
                        })
                        .collect(),
                ),
            ),
            (
                "race_source_value",
                Column::Cat {
                    codes: ps.iter().map(|p| u32::from(p.group)).collect(),
                    levels: GROUP_NAMES.iter().map(|s| (*s).to_string()).collect(),
                },
            ),
        ],
    )
}

/// `visit_occurrence`: the index visit, a readmission within 30 days, and for
/// some patients a later visit (> 30 days).
fn visit_occurrence(ps: &[Patient], hospitals: &[Hospital]) -> Table {
    let mut v_id = Vec::new();
    let mut v_person = Vec::new();
    let mut v_start = Vec::new();
    let mut v_start_dt = Vec::new();
    let mut v_end = Vec::new();
    let mut v_end_dt = Vec::new();
    let mut v_site = Vec::new();
    let mut v_source = Vec::new();
    let mut add_visit = |id: i64, person: i64, start: i32, minutes: i64, site: i64, source: u32| {
        let end_minutes = minutes;
        v_id.push(id);
        v_person.push(person);
        v_start.push(start);
        v_start_dt.push(datetime(start, 0));
        v_end.push(start + end_minutes.div_euclid(1440) as i32);
        v_end_dt.push(datetime(start, end_minutes));
        v_site.push(site);
        v_source.push(source);
    };
    for (i, p) in ps.iter().enumerate() {
        let day = p.surgery_date();
        let site = i64::from(hospitals[p.sim.hospital].id);
        // LOS is a multiple of 0.1 day = 144 minutes.
        let los_minutes = (p.outcomes.los * 10.0).round() as i64 * 144;
        add_visit(VISIT_ID_OFFSET + pid(i), pid(i), day, los_minutes, site, 0);
        let discharge = day + los_minutes.div_euclid(1440) as i32;
        if p.outcomes.readmit {
            let k = 1 + (mix(p.aux, 2) % 30) as i32;
            add_visit(
                READMIT_VISIT_OFFSET + pid(i),
                pid(i),
                discharge + k,
                3 * 1440,
                site,
                1,
            );
        } else if !p.outcomes.death && mix_uniform(p.aux, 3) < 0.10 {
            let k = 31 + (mix(p.aux, 4) % 300) as i32;
            add_visit(
                LATER_VISIT_OFFSET + pid(i),
                pid(i),
                discharge + k,
                2 * 1440,
                site,
                2,
            );
        }
    }
    let nv = v_id.len();
    Table::new(
        "visit_occurrence",
        vec![
            ("visit_occurrence_id", Column::Int(v_id)),
            ("person_id", Column::Int(v_person)),
            (
                "visit_concept_id",
                Column::Int(vec![concepts::INPATIENT; nv]),
            ),
            ("visit_start_date", Column::Date(v_start)),
            ("visit_start_datetime", Column::Str(v_start_dt)),
            ("visit_end_date", Column::Date(v_end)),
            ("visit_end_datetime", Column::Str(v_end_dt)),
            (
                "visit_type_concept_id",
                Column::Int(vec![concepts::EHR; nv]),
            ),
            ("care_site_id", Column::Int(v_site)),
            (
                "visit_source_value",
                Column::Cat {
                    codes: v_source,
                    levels: vec![
                        "index_cabg".into(),
                        "readmission".into(),
                        "later_admission".into(),
                    ],
                },
            ),
        ],
    )
}

/// `death`: every death within 30 days, and for some survivors a later death
/// (31-365 days).
fn death(ps: &[Patient]) -> Table {
    let mut deaths: (Vec<i64>, Vec<i32>) = (Vec::new(), Vec::new());
    for (i, p) in ps.iter().enumerate() {
        let day = p.surgery_date();
        if p.outcomes.death {
            deaths.0.push(pid(i));
            deaths.1.push(day + (mix(p.aux, 5) % 30) as i32);
        } else if mix_uniform(p.aux, 6) < 0.04 {
            deaths.0.push(pid(i));
            deaths.1.push(day + 31 + (mix(p.aux, 7) % 335) as i32);
        }
    }
    let nd = deaths.0.len();
    Table::new(
        "death",
        vec![
            ("person_id", Column::Int(deaths.0)),
            ("death_date", Column::Date(deaths.1)),
            (
                "death_type_concept_id",
                Column::Int(vec![concepts::EHR; nd]),
            ),
        ],
    )
}

/// `procedure_occurrence`: the index CABG of every patient, in its index visit.
fn procedure_occurrence(ps: &[Patient]) -> Table {
    let n = ps.len();
    Table::new(
        "procedure_occurrence",
        vec![
            (
                "procedure_occurrence_id",
                Column::Int((0..n).map(pid).collect()),
            ),
            ("person_id", Column::Int((0..n).map(pid).collect())),
            ("procedure_concept_id", Column::Int(vec![concepts::CABG; n])),
            (
                "procedure_date",
                Column::Date(ps.iter().map(Patient::surgery_date).collect()),
            ),
            (
                "procedure_type_concept_id",
                Column::Int(vec![concepts::EHR; n]),
            ),
            (
                "visit_occurrence_id",
                Column::Int((0..n).map(|i| VISIT_ID_OFFSET + pid(i)).collect()),
            ),
        ],
    )
}

/// `condition_occurrence`: comorbidities present before the index, some new
/// diagnoses after it, and post-operative major morbidity (within 30 days, or
/// later and not an outcome).
fn condition_occurrence(ps: &[Patient]) -> Table {
    let mut cond = Rows::default();
    for (i, p) in ps.iter().enumerate() {
        let day = p.surgery_date();
        for (k, &concept) in concepts::CONDITIONS.iter().enumerate() {
            let salt = 10 + k as u64;
            if k == 0 && p.is_missing(Blankable::Diabetes) {
                // Not documented: no record, and an observation says so.
                continue;
            }
            if p.sim.clinical.conditions[k] {
                cond.push(
                    pid(i),
                    concept,
                    day - 30 - (mix(p.aux, salt) % 3000) as i32,
                    0.0,
                    "",
                );
            } else if mix_uniform(p.aux, salt) < 0.02 {
                cond.push(
                    pid(i),
                    concept,
                    day + 10 + (mix(p.aux, salt + 100) % 200) as i32,
                    0.0,
                    "",
                );
            }
        }
        if p.outcomes.major_morbidity && !p.outcomes.death {
            let when = day + (mix(p.aux, 40) % 30) as i32;
            cond.push(pid(i), concepts::MAJOR_MORBIDITY, when, 0.0, "");
        } else if !p.outcomes.major_morbidity && mix_uniform(p.aux, 41) < 0.03 {
            // a complication recorded after the 30-day window: not an outcome
            let when = day + 31 + (mix(p.aux, 42) % 300) as i32;
            cond.push(pid(i), concepts::MAJOR_MORBIDITY, when, 0.0, "");
        }
    }
    let nc = cond.person.len();
    Table::new(
        "condition_occurrence",
        vec![
            (
                "condition_occurrence_id",
                Column::Int((1..=nc as i64).collect()),
            ),
            ("person_id", Column::Int(cond.person)),
            ("condition_concept_id", Column::Int(cond.concept)),
            ("condition_start_date", Column::Date(cond.date)),
            (
                "condition_type_concept_id",
                Column::Int(vec![concepts::EHR; nc]),
            ),
        ],
    )
}

/// `measurement`: for EF, creatinine and BMI an old value, the pre-operative
/// value and a post-operative value (only the last when the value is blanked).
fn measurement(ps: &[Patient]) -> Table {
    let mut meas = Rows::default();
    for (i, p) in ps.iter().enumerate() {
        let day = p.surgery_date();
        let c = &p.sim.clinical;
        for (k, (concept, value, unit, column)) in [
            (
                concepts::EJECTION_FRACTION,
                c.ef,
                "%",
                Blankable::EjectionFraction,
            ),
            (
                concepts::CREATININE,
                c.creatinine,
                "mg/dL",
                Blankable::Creatinine,
            ),
            (concepts::BMI, c.bmi, "kg/m2", Blankable::Bmi),
        ]
        .into_iter()
        .enumerate()
        {
            let salt = 20 + k as u64;
            let shift = |s: u64| (mix_uniform(p.aux, s) - 0.5) * 0.2 * value.abs().max(1.0);
            if !p.is_missing(column) {
                meas.push(
                    pid(i),
                    concept,
                    day - 200,
                    (value + shift(salt)).max(0.01),
                    unit,
                );
                meas.push(
                    pid(i),
                    concept,
                    day - 1 - (mix(p.aux, salt) % 7) as i32,
                    value,
                    unit,
                );
            }
            meas.push(
                pid(i),
                concept,
                day + 2,
                (value + shift(salt + 50)).max(0.01),
                unit,
            );
        }
    }
    let nm = meas.person.len();
    Table::new(
        "measurement",
        vec![
            ("measurement_id", Column::Int((1..=nm as i64).collect())),
            ("person_id", Column::Int(meas.person)),
            ("measurement_concept_id", Column::Int(meas.concept)),
            ("measurement_date", Column::Date(meas.date)),
            (
                "measurement_type_concept_id",
                Column::Int(vec![concepts::EHR; nm]),
            ),
            ("value_as_number", Column::Float(meas.number)),
            ("unit_source_value", Column::Str(meas.text)),
        ],
    )
}

/// `observation`: the ADI (30 days before surgery, unless blanked), the CABG
/// status (on the day), and "diabetes status not documented" (on the day) when
/// diabetes is blanked.
fn observation(ps: &[Patient]) -> Table {
    let mut obs = Rows::default();
    for (i, p) in ps.iter().enumerate() {
        let day = p.surgery_date();
        if !p.is_missing(Blankable::Adi) {
            obs.push(pid(i), concepts::ADI, day - 30, p.sim.socioeconomic.adi, "");
        }
        obs.push(
            pid(i),
            concepts::CABG_STATUS,
            day,
            f64::NAN,
            STATUS[p.sim.clinical.status as usize],
        );
        if p.is_missing(Blankable::Diabetes) {
            obs.push(pid(i), concepts::DIABETES_UNKNOWN, day, f64::NAN, "");
        }
    }
    let no = obs.person.len();
    Table::new(
        "observation",
        vec![
            ("observation_id", Column::Int((1..=no as i64).collect())),
            ("person_id", Column::Int(obs.person)),
            ("observation_concept_id", Column::Int(obs.concept)),
            ("observation_date", Column::Date(obs.date)),
            (
                "observation_type_concept_id",
                Column::Int(vec![concepts::EHR; no]),
            ),
            ("value_as_number", Column::Float(obs.number)),
            ("value_as_string", Column::Str(obs.text)),
        ],
    )
}

/// `payer_plan_period`: the plan covering the index date (none when insurance is
/// blanked), and for some patients an older plan with another payer.
fn payer_plan_period(ps: &[Patient]) -> Table {
    let mut pay = Rows::default();
    let mut pay_end = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let day = p.surgery_date();
        let ins = p.sim.socioeconomic.insurance as usize;
        if mix_uniform(p.aux, 30) < 0.2 {
            let old = (ins + 1 + (mix(p.aux, 31) % 3) as usize) % 4;
            pay.push(
                pid(i),
                concepts::PAYERS[old],
                day - 2000,
                0.0,
                INSURANCE[old],
            );
            pay_end.push(day - 401);
        }
        if !p.is_missing(Blankable::Insurance) {
            pay.push(
                pid(i),
                concepts::PAYERS[ins],
                day - 400,
                0.0,
                INSURANCE[ins],
            );
            pay_end.push(day + 400);
        }
    }
    let np = pay.person.len();
    Table::new(
        "payer_plan_period",
        vec![
            (
                "payer_plan_period_id",
                Column::Int((1..=np as i64).collect()),
            ),
            ("person_id", Column::Int(pay.person)),
            ("payer_plan_period_start_date", Column::Date(pay.date)),
            ("payer_plan_period_end_date", Column::Date(pay_end)),
            ("payer_concept_id", Column::Int(pay.concept)),
            ("payer_source_value", Column::Str(pay.text)),
        ],
    )
}

/// `care_site`: one row per hospital, with its location and teaching status.
fn care_site(hospitals: &[Hospital]) -> Table {
    let nh = hospitals.len();
    Table::new(
        "care_site",
        vec![
            (
                "care_site_id",
                Column::Int(hospitals.iter().map(|h| i64::from(h.id)).collect()),
            ),
            (
                "care_site_name",
                Column::Str(
                    hospitals
                        .iter()
                        .map(|h| format!("Hospital {:03}", h.id))
                        .collect(),
                ),
            ),
            ("place_of_service_concept_id", Column::Int(vec![0; nh])),
            (
                "location_id",
                Column::Int(
                    hospitals
                        .iter()
                        .map(|h| HOSPITAL_LOCATION + i64::from(h.id))
                        .collect(),
                ),
            ),
            (
                "care_site_source_value",
                Column::Str(hospitals.iter().map(|h| h.id.to_string()).collect()),
            ),
            (
                "place_of_service_source_value",
                Column::Str(
                    hospitals
                        .iter()
                        .map(|h| {
                            if h.teaching {
                                "teaching hospital"
                            } else {
                                "community hospital"
                            }
                            .to_string()
                        })
                        .collect(),
                ),
            ),
        ],
    )
}

/// `location`: the patients' zip3 areas (sorted), then one per hospital with
/// its region.
fn location(ps: &[Patient], hospitals: &[Hospital]) -> Table {
    let mut zips: Vec<u32> = ps
        .iter()
        .map(|p| zip3(hospitals[p.sim.hospital].region, p.sim.position))
        .collect();
    zips.sort_unstable();
    zips.dedup();
    let mut loc_id: Vec<i64> = zips
        .iter()
        .map(|&z| PERSON_LOCATION + i64::from(z))
        .collect();
    let mut loc_zip: Vec<String> = zips.iter().map(|z| format!("{z:03}")).collect();
    let mut loc_source: Vec<String> = vec![String::new(); zips.len()];
    for h in hospitals {
        loc_id.push(HOSPITAL_LOCATION + i64::from(h.id));
        loc_zip.push(String::new());
        loc_source.push(REGIONS[h.region].to_string());
    }
    Table::new(
        "location",
        vec![
            ("location_id", Column::Int(loc_id)),
            ("zip", Column::Str(loc_zip)),
            ("location_source_value", Column::Str(loc_source)),
        ],
    )
}

/// `observation_period`: from three years before to one year after surgery.
fn observation_period(ps: &[Patient]) -> Table {
    let n = ps.len();
    Table::new(
        "observation_period",
        vec![
            (
                "observation_period_id",
                Column::Int((0..n).map(pid).collect()),
            ),
            ("person_id", Column::Int((0..n).map(pid).collect())),
            (
                "observation_period_start_date",
                Column::Date(ps.iter().map(|p| p.surgery_date() - 1095).collect()),
            ),
            (
                "observation_period_end_date",
                Column::Date(ps.iter().map(|p| p.surgery_date() + 365).collect()),
            ),
            (
                "period_type_concept_id",
                Column::Int(vec![concepts::EHR; n]),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_dates_give_back_the_age() {
        for surgery in [17_897, 18_321, 18_686, 19_000, 19_722] {
            for age in [35, 64, 65, 90] {
                for u in [0.0, 0.3, 0.999_999] {
                    let b = birth_date(surgery, age, u);
                    assert_eq!(
                        completed_years(b, surgery),
                        age,
                        "surgery {surgery} age {age} u {u}"
                    );
                }
            }
        }
        // A surgery on 29 February.
        let leap = days_from_civil(2020, 2, 29);
        assert_eq!(completed_years(birth_date(leap, 70, 0.0), leap), 70);
    }
}
