//! Reading the OMOP CDM tables: each table from `<dir>/<table>.parquet` or
//! `<dir>/<table>.csv`, only the columns used, converted to the expected types.

use std::path::{Path, PathBuf};

use healthgap_synth::table::{civil_from_days, days_from_civil};
use polars::prelude::*;

use super::PID;
use crate::error::CohortError;

/// The folder the tables are read from.
pub(super) struct Source<'a> {
    /// The folder.
    pub(super) dir: &'a Path,
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
    /// A [`CohortError::Omop`] naming the folder, `table` and the message.
    pub(super) fn error(&self, table: &str, message: impl Into<String>) -> CohortError {
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
pub(super) struct Tables {
    pub(super) person: DataFrame,
    pub(super) location: DataFrame,
    pub(super) care_site: DataFrame,
    pub(super) visit: DataFrame,
    pub(super) procedure: DataFrame,
    pub(super) condition: DataFrame,
    pub(super) measurement: DataFrame,
    pub(super) observation: DataFrame,
    pub(super) payer: DataFrame,
    pub(super) death: DataFrame,
}

impl Tables {
    /// Reads the columns the loader uses from every table of `src`.
    pub(super) fn read(src: &Source<'_>) -> Result<Tables, CohortError> {
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
}
