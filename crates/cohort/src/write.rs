//! Writing generator tables as CSV or Parquet.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use healthgap_sql::{ResultSet, Values};
use healthgap_synth::{Column as SynthColumn, Table};
use polars::prelude::*;

use crate::error::CohortError;

/// Output file format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Comma-separated values with a header row; dates as YYYY-MM-DD.
    Csv,
    /// Apache Parquet (zstd-compressed).
    Parquet,
}

impl TableFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Parquet => "parquet",
        }
    }
}

fn frame_error(table: &str, e: PolarsError) -> CohortError {
    CohortError::Frame {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// Converts a generator table to a polars DataFrame (categoricals become strings,
/// NaN floats become nulls, dates become `Date`).
pub fn table_to_frame(table: &Table) -> Result<DataFrame, CohortError> {
    let mut columns = Vec::with_capacity(table.columns.len());
    for (name, col) in &table.columns {
        let name = PlSmallStr::from(name.as_str());
        let series = match col {
            SynthColumn::Int(v) => Series::new(name, v),
            SynthColumn::OptInt(v) => Series::new(name, v),
            SynthColumn::Float(v) => {
                let opt: Vec<Option<f64>> = v.iter().map(|x| (!x.is_nan()).then_some(*x)).collect();
                Series::new(name, opt)
            }
            SynthColumn::Str(v) => Series::new(name, v),
            SynthColumn::Cat { codes, levels } => {
                let ca: StringChunked = codes
                    .iter()
                    .map(|&c| levels.get(c as usize).map(String::as_str))
                    .collect();
                ca.with_name(name).into_series()
            }
            SynthColumn::Date(v) => Series::new(name, v)
                .cast(&DataType::Date)
                .map_err(|e| frame_error(&table.name, e))?,
        };
        columns.push(series.into_column());
    }
    DataFrame::new(table.height(), columns).map_err(|e| frame_error(&table.name, e))
}

/// A frame as plain typed columns (integers, floats, booleans and texts;
/// anything else, such as dates, as polars writes it as text: ISO dates).
pub fn frame_to_result(df: &DataFrame) -> Result<ResultSet, CohortError> {
    let err = |e: PolarsError| frame_error("frame", e);
    let mut columns = Vec::with_capacity(df.width());
    for c in df.columns() {
        let s = c.as_materialized_series();
        let values = match s.dtype() {
            dt if dt.is_integer() => Values::Int(
                s.cast(&DataType::Int64)
                    .map_err(err)?
                    .i64()
                    .map_err(err)?
                    .iter()
                    .collect(),
            ),
            dt if dt.is_float() => Values::Float(
                s.cast(&DataType::Float64)
                    .map_err(err)?
                    .f64()
                    .map_err(err)?
                    .iter()
                    .collect(),
            ),
            DataType::Boolean => Values::Bool(s.bool().map_err(err)?.iter().collect()),
            _ => Values::Text(
                s.cast(&DataType::String)
                    .map_err(err)?
                    .str()
                    .map_err(err)?
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect(),
            ),
        };
        columns.push((s.name().to_string(), values));
    }
    Ok(ResultSet { columns })
}

/// Plain typed columns (a warehouse's result set) as a frame.
pub fn result_to_frame(rs: &ResultSet) -> Result<DataFrame, CohortError> {
    let columns: Vec<Column> = rs
        .columns
        .iter()
        .map(|(name, v)| {
            let name = PlSmallStr::from(name.as_str());
            match v {
                Values::Int(x) => Series::new(name, x),
                Values::Float(x) => Series::new(name, x),
                Values::Bool(x) => Series::new(name, x),
                Values::Text(x) => Series::new(name, x),
            }
            .into_column()
        })
        .collect();
    DataFrame::new(rs.rows(), columns).map_err(|e| frame_error("warehouse result", e))
}

/// Writes `table` to `path` in `format`.
pub fn write_table(table: &Table, path: &Path, format: TableFormat) -> Result<(), CohortError> {
    let mut df = table_to_frame(table)?;
    let file = File::create(path).map_err(|source| CohortError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = BufWriter::new(file);
    match format {
        TableFormat::Csv => CsvWriter::new(&mut out)
            .finish(&mut df)
            .map_err(|e| frame_error(&table.name, e))?,
        TableFormat::Parquet => {
            ParquetWriter::new(&mut out)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(&mut df)
                .map_err(|e| frame_error(&table.name, e))?;
        }
    }
    std::io::Write::flush(&mut out).map_err(|source| CohortError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_table() -> Table {
        Table::new(
            "t",
            vec![
                ("id", SynthColumn::Int(vec![1, 2, 3])),
                ("x", SynthColumn::Float(vec![0.5, f64::NAN, 2.0])),
                (
                    "g",
                    SynthColumn::Cat {
                        codes: vec![0, 1, 0],
                        levels: vec!["White".into(), "Black".into()],
                    },
                ),
                ("d", SynthColumn::Date(vec![17_897, 17_898, 19_722])),
            ],
        )
    }

    #[test]
    fn frames_keep_types_and_turn_nan_into_null() {
        let df = table_to_frame(&small_table()).unwrap();
        assert_eq!(df.height(), 3);
        assert_eq!(df.column("d").unwrap().dtype(), &DataType::Date);
        assert_eq!(df.column("x").unwrap().null_count(), 1);
        assert_eq!(df.column("g").unwrap().str().unwrap().get(1), Some("Black"));
    }

    #[test]
    fn csv_and_parquet_are_written() {
        let dir = tempfile::tempdir().unwrap();
        for format in [TableFormat::Csv, TableFormat::Parquet] {
            let path = dir.path().join(format!("t.{}", format.extension()));
            write_table(&small_table(), &path, format).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() > 0);
        }
        let text = std::fs::read_to_string(dir.path().join("t.csv")).unwrap();
        assert!(
            text.starts_with("id,x,g,d\n1,0.5,White,2019-01-01\n2,,Black,2019-01-02\n"),
            "{text}"
        );
    }

    #[test]
    fn unwritable_path_is_an_error_not_a_panic() {
        let err = write_table(
            &small_table(),
            Path::new("/nonexistent/dir/t.csv"),
            TableFormat::Csv,
        );
        assert!(matches!(err, Err(CohortError::Write { .. })));
    }
}
