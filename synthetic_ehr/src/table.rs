//! A minimal columnar table: what the generator hands to the writers
//! (healthgap-cohort writes it as CSV or Parquet), without depending on polars.

/// One column of values.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// 64-bit integers.
    Int(Vec<i64>),
    /// Optional 64-bit integers (OMOP nullable fields).
    OptInt(Vec<Option<i64>>),
    /// 64-bit floats.
    Float(Vec<f64>),
    /// Strings.
    Str(Vec<String>),
    /// Strings stored as codes into `levels`.
    Cat {
        /// Code of each row; a code without a level (such as [`MISSING_LEVEL`])
        /// is a missing value.
        codes: Vec<u32>,
        /// Text of each code.
        levels: Vec<String>,
    },
    /// Calendar dates as days since 1970-01-01.
    Date(Vec<i32>),
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Int(v) => v.len(),
            Column::OptInt(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Str(v) => v.len(),
            Column::Cat { codes, .. } => codes.len(),
            Column::Date(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The categorical code of a missing value (no level has it).
pub const MISSING_LEVEL: u32 = u32::MAX;

/// A named table of equal-length columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Table name (file stem).
    pub name: String,
    /// Columns in order.
    pub columns: Vec<(String, Column)>,
}

impl Table {
    /// Builds a table from `(name, column)` pairs.
    pub fn new(name: &str, columns: Vec<(&str, Column)>) -> Table {
        Table {
            name: name.to_string(),
            columns: columns
                .into_iter()
                .map(|(n, c)| (n.to_string(), c))
                .collect(),
        }
    }

    /// Number of rows (of the first column).
    pub fn height(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

/// Civil date (year, month, day) from days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(2019, 1, 1), 17_897);
        assert_eq!(civil_from_days(17_897), (2019, 1, 1));
        for d in -1000..30_000 {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(days_from_civil(2020, 2, 29)), (2020, 2, 29));
    }
}
