//! Loading a cohort: read the source, apply the filters (each logged in the
//! attrition table), keep the analysed groups, check every column's type, apply
//! the missing-data policy, and extract typed arrays for design building.

use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{CohortError, nearest};
use crate::filter;
use crate::omop::load_omop;
use crate::spec::{CohortSpec, MissingPolicy, OutcomeKind, OutcomeSpec, Source, VarKind};
use crate::table1::{self, Table1Row};

/// Categorical variables with more levels than this are absorbed as fixed
/// effects instead of being expanded into dummies.
pub const ABSORB_THRESHOLD: usize = 50;

/// One step of the attrition table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttritionStep {
    /// What was applied.
    pub step: String,
    /// Rows removed by it.
    pub excluded: usize,
    /// Rows left after it.
    pub remaining: usize,
}

/// A covariate's values, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers (0/1 for binary columns).
    Numeric(Vec<f64>),
    /// Level codes into `levels` (reference level first).
    Categorical {
        /// Code per row.
        codes: Vec<u32>,
        /// Level texts; `levels[0]` is the reference.
        levels: Vec<String>,
        /// Absorbed as fixed effects (many levels).
        absorb: bool,
    },
}

/// A loaded covariate.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Column name.
    pub name: String,
    /// Factor block.
    pub block: String,
    /// Values of the analysed rows.
    pub values: Values,
}

/// The analysis cohort.
#[derive(Debug, Clone)]
pub struct Cohort {
    /// `path`, `omop` or `synthetic`.
    pub source: &'static str,
    /// Files read (for provenance hashes).
    pub files: Vec<PathBuf>,
    /// A warehouse source: the server (no credentials) and the text of every
    /// statement that pulled the data.
    pub warehouse: Option<(String, Vec<String>)>,
    /// Rows in the source before any step.
    pub rows_read: usize,
    /// Group labels: the reference first, then the comparisons in config order.
    pub group_labels: Vec<String>,
    /// Group code of each analysed row.
    pub group: Vec<u32>,
    /// Attrition steps.
    pub attrition: Vec<AttritionStep>,
    /// Outcomes and their values.
    pub outcomes: Vec<(OutcomeSpec, Vec<f64>)>,
    /// Covariates.
    pub variables: Vec<Variable>,
    /// Cluster: name, codes 0..G, G.
    pub cluster: Option<(String, Vec<u32>, usize)>,
    /// Weights.
    pub weights: Option<Vec<f64>>,
    /// Table 1 (after filters, before any analysis's complete-case step).
    pub table1: Vec<Table1Row>,
    /// What loading changed that the report must say (merged rare levels).
    pub warnings: Vec<String>,
    /// Table 1 of the complete cases of every outcome and covariate the plan
    /// uses (the sample of an analysis that uses them all); None when no
    /// value is missing (it is then the cohort's Table 1).
    pub table1_complete: Option<Vec<Table1Row>>,
}

/// The level code of a missing categorical value.
pub const MISSING_CODE: u32 = u32::MAX;

/// One step of an analysis's complete cases: the rows without `variable`,
/// per group label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingStep {
    /// The outcome or covariate.
    pub variable: String,
    /// Rows missing it, per group (before any step: for comparing groups).
    pub missing: Vec<usize>,
    /// Rows this step excludes (missing it, complete in the earlier steps).
    pub excluded: Vec<usize>,
    /// Rows left after the step, per group.
    pub remaining: Vec<usize>,
}

impl Values {
    /// Whether row `i` is missing.
    fn missing(&self, i: usize) -> bool {
        match self {
            Values::Numeric(x) => x[i].is_nan(),
            Values::Categorical { codes, .. } => codes[i] == MISSING_CODE,
        }
    }

    /// The rows `keep` (indices); categorical levels that no longer occur
    /// are dropped (the reference stays first when it occurs).
    fn take(&self, keep: &[usize]) -> Values {
        match self {
            Values::Numeric(x) => Values::Numeric(pick(x, keep)),
            Values::Categorical {
                codes,
                levels,
                absorb,
            } => {
                let kept = pick(codes, keep);
                let (codes, used) = recode(&kept, levels.len());
                let levels = used.iter().map(|&l| levels[l].clone()).collect();
                Values::Categorical {
                    codes,
                    levels,
                    absorb: *absorb,
                }
            }
        }
    }
}

/// The elements of `v` at the indices `rows`.
fn pick<T: Copy>(v: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&i| v[i]).collect()
}

/// Codes (of `levels` levels) renumbered over the levels that occur, in
/// their order; with the old index of each kept level.
fn recode(codes: &[u32], levels: usize) -> (Vec<u32>, Vec<usize>) {
    let mut used = vec![false; levels];
    for &c in codes {
        if let Some(u) = used.get_mut(c as usize) {
            *u = true;
        }
    }
    let mut new = vec![MISSING_CODE; levels];
    let mut kept = Vec::new();
    for l in (0..levels).filter(|&l| used[l]) {
        new[l] = kept.len() as u32;
        kept.push(l);
    }
    let codes = codes
        .iter()
        .map(|&c| new.get(c as usize).copied().unwrap_or(MISSING_CODE))
        .collect();
    (codes, kept)
}

impl Cohort {
    /// Number of analysed rows.
    pub fn n(&self) -> usize {
        self.group.len()
    }

    /// Rows per group label.
    pub fn group_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.group_labels.len()];
        for &g in &self.group {
            c[g as usize] += 1;
        }
        c
    }

    /// A covariate by name.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// An outcome's values by name.
    pub fn outcome(&self, name: &str) -> Option<&(OutcomeSpec, Vec<f64>)> {
        self.outcomes.iter().find(|(o, _)| o.name == name)
    }

    /// The complete cases of one analysis: the rows with `outcome` and every
    /// one of `variables` present, taken in that order (each step logged per
    /// group). None when every row is complete (the cohort itself serves).
    pub fn complete_cases(
        &self,
        outcome: &str,
        variables: &[String],
    ) -> (Option<Cohort>, Vec<MissingStep>) {
        let groups = self.group_labels.len();
        let mut keep = vec![true; self.n()];
        let mut remaining = self.group_counts();
        let mut steps = Vec::new();
        let mut check = |name: &str, is_missing: &dyn Fn(usize) -> bool| {
            let (mut missing, mut excluded) = (vec![0; groups], vec![0; groups]);
            for (i, k) in keep.iter_mut().enumerate() {
                if is_missing(i) {
                    let g = self.group[i] as usize;
                    missing[g] += 1;
                    if *k {
                        *k = false;
                        excluded[g] += 1;
                        remaining[g] -= 1;
                    }
                }
            }
            if missing.iter().any(|m| *m > 0) {
                steps.push(MissingStep {
                    variable: name.to_string(),
                    missing,
                    excluded,
                    remaining: remaining.clone(),
                });
            }
        };
        if let Some((_, y)) = self.outcome(outcome) {
            check(outcome, &|i| y[i].is_nan());
        }
        for name in variables {
            if let Some(v) = self.variable(name) {
                check(name, &|i| v.values.missing(i));
            }
        }
        if steps.is_empty() {
            return (None, steps);
        }
        (Some(self.select(&keep)), steps)
    }

    /// The rows of `keep` (clusters renumbered over those that occur).
    fn select(&self, keep: &[bool]) -> Cohort {
        let rows: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
        self.take(&rows, None)
    }

    /// The rows `rows`, in that order and as often as listed (a bootstrap
    /// resample), categorical levels and clusters renumbered over those that
    /// occur; `cluster` replaces the cluster codes of the taken rows (a
    /// resample gives each drawn copy of a cluster its own code).
    pub fn take(&self, rows: &[usize], cluster: Option<(Vec<u32>, usize)>) -> Cohort {
        let keep = rows;
        Cohort {
            source: self.source,
            warehouse: self.warehouse.clone(),
            files: self.files.clone(),
            rows_read: self.rows_read,
            group_labels: self.group_labels.clone(),
            group: pick(&self.group, keep),
            attrition: self.attrition.clone(),
            outcomes: self
                .outcomes
                .iter()
                .map(|(s, y)| (s.clone(), pick(y, keep)))
                .collect(),
            variables: self
                .variables
                .iter()
                .map(|v| Variable {
                    name: v.name.clone(),
                    block: v.block.clone(),
                    values: v.values.take(keep),
                })
                .collect(),
            cluster: self
                .cluster
                .as_ref()
                .map(|(name, codes, g)| match &cluster {
                    Some((codes, count)) => (name.clone(), codes.clone(), *count),
                    None => {
                        let kept = pick(codes, keep);
                        let (codes, used) = recode(&kept, *g);
                        (name.clone(), codes, used.len())
                    }
                }),
            weights: self.weights.as_ref().map(|w| pick(w, keep)),
            table1: self.table1.clone(),
            warnings: self.warnings.clone(),
            table1_complete: self.table1_complete.clone(),
        }
    }
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> CohortError {
    CohortError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads a flat extract (.csv, .csv.gz, .parquet); in a CSV the texts of
/// `na_values` are missing values.
pub fn read_flat(path: &Path, na_values: &[String]) -> Result<DataFrame, CohortError> {
    if !path.exists() {
        return Err(CohortError::MissingFile {
            path: path.to_path_buf(),
            hint: Some("check [data] path; paths are relative to the config file".into()),
        });
    }
    let name = path.to_string_lossy().to_lowercase();
    let df = if name.ends_with(".parquet") {
        let file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
        ParquetReader::new(file)
            .finish()
            .map_err(|e| read_error(path, format!("not a readable Parquet file ({e})")))?
    } else if name.ends_with(".csv") || name.ends_with(".csv.gz") || name.ends_with(".gz") {
        let mut bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| read_error(path, format!("not a valid gzip file ({e})")))?;
            bytes = out;
        }
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(read_error(path, "the file is empty"));
        }
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .with_parse_options(
                CsvParseOptions::default()
                    .with_missing_is_null(true)
                    .with_null_values(Some(NullValues::AllColumns(
                        na_values.iter().map(|v| v.as_str().into()).collect(),
                    ))),
            )
            .into_reader_with_file_handle(std::io::Cursor::new(bytes))
            .finish()
            .map_err(|e| read_error(path, format!("malformed CSV ({e})")))?
    } else {
        return Err(read_error(
            path,
            "unknown file type; use .csv, .csv.gz or .parquet",
        ));
    };
    if df.height() == 0 {
        return Err(read_error(path, "the file has no rows"));
    }
    Ok(df)
}

fn column_error(file: &str, column: &str, role: &str, df: &DataFrame) -> CohortError {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    // One column whose name holds separators: not a comma-separated file.
    if let [only] = names.as_slice()
        && let Some(sep) = [';', '\t', '|'].into_iter().find(|c| only.contains(*c))
    {
        return CohortError::InvalidColumn {
            file: file.to_string(),
            column: only.clone(),
            message: format!(
                "the file has a single column whose name holds {sep:?}: it is separated by \
                 {sep:?}, and healthgap reads comma-separated CSV; save it with commas (or as \
                 Parquet) and run again"
            ),
        };
    }
    CohortError::MissingColumn {
        file: file.to_string(),
        column: column.to_string(),
        role: role.to_string(),
        suggestion: nearest(column, &names),
    }
}

fn series(df: &DataFrame, name: &str) -> Series {
    df.column(name)
        .map(|c| c.as_materialized_series().clone())
        .unwrap_or_default()
}

/// A column coded as levels: per-row level index (None when missing), level
/// texts in first-appearance order, and rows per level. Levels are matched by
/// their text (integers as "0", "1"; whole floats without ".0").
pub(crate) struct Coded {
    pub codes: Vec<Option<u32>>,
    pub levels: Vec<String>,
    pub counts: Vec<usize>,
}

fn float_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// Codes a column without building a string per row.
pub(crate) fn coded(s: &Series) -> Coded {
    use std::collections::HashMap;
    fn finish<K: std::hash::Hash + Eq + Copy>(
        values: impl Iterator<Item = Option<K>>,
        text: impl Fn(K) -> String,
    ) -> Coded {
        let mut index: HashMap<K, u32> = HashMap::new();
        let mut keys: Vec<K> = Vec::new();
        let mut counts: Vec<usize> = Vec::new();
        let codes = values
            .map(|v| {
                v.map(|k| {
                    let next = keys.len() as u32;
                    let c = *index.entry(k).or_insert_with(|| {
                        keys.push(k);
                        counts.push(0);
                        next
                    });
                    counts[c as usize] += 1;
                    c
                })
            })
            .collect();
        Coded {
            codes,
            levels: keys.into_iter().map(text).collect(),
            counts,
        }
    }
    let empty = || Coded {
        codes: vec![None; s.len()],
        levels: vec![],
        counts: vec![],
    };
    match s.dtype() {
        dt if dt.is_integer() => s
            .cast(&DataType::Int64)
            .ok()
            .and_then(|c| c.i64().ok().map(|ca| finish(ca.iter(), |k| k.to_string())))
            .unwrap_or_else(empty),
        DataType::Float32 | DataType::Float64 => s
            .cast(&DataType::Float64)
            .ok()
            .and_then(|c| {
                c.f64().ok().map(|ca| {
                    finish(ca.iter().map(|v| v.map(f64::to_bits)), |k| {
                        float_text(f64::from_bits(k))
                    })
                })
            })
            .unwrap_or_else(empty),
        _ => s
            .cast(&DataType::String)
            .ok()
            .and_then(|c| c.str().ok().map(|ca| finish(ca.iter(), str::to_string)))
            .unwrap_or_else(empty),
    }
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_primitive_numeric() || matches!(dt, DataType::Boolean)
}

fn numbers(s: &Series) -> Vec<Option<f64>> {
    s.cast(&DataType::Float64)
        .ok()
        .and_then(|c| c.f64().ok().map(|ca| ca.iter().collect()))
        .unwrap_or_default()
}

/// Loads and checks the cohort.
pub fn load(spec: &CohortSpec) -> Result<Cohort, CohortError> {
    let (raw, files, file_label) = match &spec.source {
        Source::Flat { path } => (
            read_flat(path, &spec.na_values)?,
            vec![path.clone()],
            path.display().to_string(),
        ),
        Source::Omop { dir, concepts } => (
            load_omop(dir, concepts)?,
            omop_files(dir),
            format!("{} (OMOP)", dir.display()),
        ),
        Source::Warehouse { label } => {
            return Err(CohortError::Read {
                path: label.into(),
                message: "a warehouse table is pulled by the transport first (load_frame)".into(),
            });
        }
        Source::Synthetic { params } => {
            params.validate()?;
            let sample = healthgap_synth::Sample::generate(params, &|_| {});
            (
                crate::write::table_to_frame(&sample.flat_table())?,
                Vec::new(),
                "[data] synthetic".to_string(),
            )
        }
    };
    load_frame(spec, raw, files, &file_label)
}

fn omop_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The checks and steps after reading, on an in-memory frame.
pub fn load_frame(
    spec: &CohortSpec,
    raw: DataFrame,
    files: Vec<PathBuf>,
    file: &str,
) -> Result<Cohort, CohortError> {
    let rows_read = raw.height();
    let filters = needed_columns(spec, &raw, file)?;
    let mut type_warnings = Vec::new();
    let raw = crate::typed::type_columns(raw, spec, file, &mut type_warnings)?;
    let labels = group_levels(spec, &raw, file)?;
    let mut attrition = Vec::new();
    let df = apply_filters(raw, &filters, &mut attrition)?;
    let (mut df, group) = keep_groups(df, spec, &labels, file, &mut attrition, &mut type_warnings)?;
    check_outcomes_weights_cluster(&mut df, spec, file)?;
    let kinds = covariate_kinds(&df, spec, file)?;
    let display = display_labels(spec, &labels);
    let table1 = table1::compute(&df, spec, &kinds, &group, &display);
    let table1_complete = complete_table1(&df, spec, &kinds, &group, &display)?;
    missing_policy(&df, spec)?;
    // Extract typed arrays.
    let outcomes = spec
        .outcomes
        .iter()
        .map(|o| {
            (
                o.clone(),
                numbers(&series(&df, &o.name))
                    .into_iter()
                    .map(|v| v.unwrap_or(f64::NAN))
                    .collect(),
            )
        })
        .collect();
    let (variables, mut warnings) = extract_variables(&df, spec, kinds, file)?;
    warnings.splice(0..0, type_warnings);
    let cluster = spec.cluster.as_ref().map(|c| {
        let (codes, levels) = sorted_codes(&coded(&series(&df, c)));
        (c.clone(), codes, levels.len())
    });
    let weights = spec.weights.as_ref().map(|w| {
        numbers(&series(&df, w))
            .into_iter()
            .map(|x| x.unwrap_or(f64::NAN))
            .collect()
    });
    Ok(Cohort {
        source: spec.source.kind(),
        warehouse: None,
        files,
        rows_read,
        group_labels: display,
        group,
        attrition,
        outcomes,
        variables,
        cluster,
        weights,
        table1,
        warnings,
        table1_complete,
    })
}

/// Every column the plan names exists (each with the config key naming it);
/// returns the parsed filters.
fn needed_columns(
    spec: &CohortSpec,
    raw: &DataFrame,
    file: &str,
) -> Result<Vec<filter::Filter>, CohortError> {
    // Every referenced column must exist; each with the config key that names it.
    let (needed, filters) = spec.column_roles()?;
    for (c, role) in &needed {
        if raw.column(c).is_err() {
            return Err(column_error(file, c, role, raw));
        }
    }
    Ok(filters)
}

/// The configured group levels occur in the data; returns them, the
/// reference first.
fn group_levels(
    spec: &CohortSpec,
    raw: &DataFrame,
    file: &str,
) -> Result<Vec<String>, CohortError> {
    // Group levels must exist in the data.
    let raw_groups = coded(&series(raw, &spec.group_column));
    let mut labels = vec![spec.reference.clone()];
    labels.extend(spec.compare.iter().cloned());
    let present: std::collections::BTreeSet<&str> =
        raw_groups.levels.iter().map(String::as_str).collect();
    if present.is_empty() {
        return Err(CohortError::InvalidColumn {
            file: file.to_string(),
            column: spec.group_column.clone(),
            message: if raw.height() == 0 {
                "the data have no rows".to_string()
            } else {
                format!("every one of its {} values is missing", raw.height())
            },
        });
    }
    for l in &labels {
        if !present.contains(l.as_str()) {
            let have: Vec<String> = present.iter().map(|s| (*s).to_string()).collect();
            return Err(CohortError::InvalidColumn {
                file: file.to_string(),
                column: spec.group_column.clone(),
                message: format!(
                    "group level `{l}` does not occur; the levels are {}{}",
                    have.iter().take(20).cloned().collect::<Vec<_>>().join(", "),
                    nearest(l, &have)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    Ok(labels)
}

/// The filters in order, each an attrition step.
fn apply_filters(
    raw: DataFrame,
    filters: &[filter::Filter],
    attrition: &mut Vec<AttritionStep>,
) -> Result<DataFrame, CohortError> {
    // Filters, each logged.
    let mut df = raw;
    for f in filters {
        let before = df.height();
        let expr = f
            .typed(df.schema())
            .map_err(|message| CohortError::Filter {
                filter: f.text.clone(),
                message,
            })?;
        df = df
            .lazy()
            .filter(expr)
            .collect()
            .map_err(|e| CohortError::Filter {
                filter: f.text.clone(),
                message: format!(
                    "cannot be applied: {} (compare numbers with numbers and texts with quoted texts)",
                    polars_message(&e)
                ),
            })?;
        attrition.push(AttritionStep {
            step: f.text.clone(),
            excluded: before - df.height(),
            remaining: df.height(),
        });
    }
    Ok(df)
}

/// The group values as reports show them (`[groups] labels`, or the values).
fn display_labels(spec: &CohortSpec, values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            spec.group_display
                .get(v)
                .cloned()
                .unwrap_or_else(|| v.clone())
        })
        .collect()
}

/// The rows of the analysed groups (an attrition step) and their group codes.
fn keep_groups(
    mut df: DataFrame,
    spec: &CohortSpec,
    labels: &[String],
    file: &str,
    attrition: &mut Vec<AttritionStep>,
    warnings: &mut Vec<String>,
) -> Result<(DataFrame, Vec<u32>), CohortError> {
    // Keep the analysed groups.
    let gc = coded(&series(&df, &spec.group_column));
    warnings.extend(dirty_group_values(&gc, labels, &spec.group_column));
    let to_label: Vec<Option<u32>> = gc
        .levels
        .iter()
        .map(|l| labels.iter().position(|x| x == l).map(|p| p as u32))
        .collect();
    let codes: Vec<Option<u32>> = gc
        .codes
        .iter()
        .map(|c| c.and_then(|c| to_label[c as usize]))
        .collect();
    let mask: BooleanChunked = codes.iter().map(|c| Some(c.is_some())).collect();
    let before = df.height();
    df = df
        .filter(&mask)
        .map_err(|e| read_error(Path::new(file), e))?;
    let group: Vec<u32> = codes.into_iter().flatten().collect();
    let shown = display_labels(spec, labels);
    attrition.push(AttritionStep {
        step: format!("{} in {{{}}}", spec.group_column, shown.join(", ")),
        excluded: before - df.height(),
        remaining: df.height(),
    });
    if let Some(l) = empty_group(&group, labels) {
        return Err(CohortError::Groups {
            message: format!(
                "group `{l}` has no rows after the filters ({}); relax [cohort] filters or drop it from [groups]",
                spec.filters.join("; ")
            ),
        });
    }
    Ok((df, group))
}

/// A warning when group values are missing, or differ from a configured
/// level only by spaces or case (`"White "` for `White`): those rows leave
/// with the other groups in the attrition step, which would otherwise hide
/// them.
fn dirty_group_values(gc: &Coded, labels: &[String], column: &str) -> Option<String> {
    let near: Vec<String> = gc
        .levels
        .iter()
        .filter(|l| !labels.contains(l))
        .filter(|l| {
            labels
                .iter()
                .any(|x| x.trim().eq_ignore_ascii_case(l.trim()))
        })
        .map(|l| format!("{l:?}"))
        .collect();
    let blank = gc.codes.iter().any(Option::is_none);
    if near.is_empty() && !blank {
        return None;
    }
    let mut parts = Vec::new();
    if blank {
        parts.push("missing values".to_string());
    }
    if !near.is_empty() {
        parts.push(format!(
            "values that differ from a configured level only by spaces or case ({})",
            near.join(", ")
        ));
    }
    Some(format!(
        "the group column `{column}` has {}: these rows are excluded with the other groups in \
         the attrition step; clean the values if they belong to an analysed group",
        parts.join(" and ")
    ))
}

/// Outcomes are numeric (binary ones 0/1 or recoded by `event`), weights
/// positive, the cluster never missing.
fn check_outcomes_weights_cluster(
    df: &mut DataFrame,
    spec: &CohortSpec,
    file: &str,
) -> Result<(), CohortError> {
    // Types of outcomes, weights and cluster.
    for o in &spec.outcomes {
        let s = series(df, &o.name);
        if !is_numeric(s.dtype()) {
            return Err(CohortError::InvalidColumn {
                file: file.to_string(),
                column: o.name.clone(),
                message: format!(
                    "outcome is {} but must be numeric{}",
                    s.dtype(),
                    if o.kind == OutcomeKind::Binary {
                        " 0/1 or true/false"
                    } else {
                        ""
                    }
                ),
            });
        }
        let vals = numbers(&s);
        if let Some((row, v)) = vals
            .iter()
            .enumerate()
            .find_map(|(i, v)| v.filter(|x| !x.is_finite()).map(|x| (i, x)))
        {
            return Err(non_finite(file, &o.name, row, v));
        }
        if o.kind == OutcomeKind::Binary {
            check_binary(file, o, &vals)?;
            // `event = v`: recoded to 0/1 once, here (Table 1 and the
            // analyses see the event as 1).
            if let Some(e) = o.event {
                let coded: Vec<Option<f64>> = vals
                    .iter()
                    .map(|v| v.map(|v| f64::from(u8::from(v == e))))
                    .collect();
                df.with_column(Series::new(o.name.as_str().into(), coded).into_column())
                    .map_err(|e| read_error(Path::new(file), e))?;
            }
        }
    }
    if let Some(w) = &spec.weights {
        let vals = numbers(&series(df, w));
        if let Some(v) = vals
            .iter()
            .find(|v| !matches!(v, Some(x) if x.is_finite() && *x > 0.0))
        {
            return Err(CohortError::InvalidColumn {
                file: file.to_string(),
                column: w.clone(),
                message: format!(
                    "weights must be positive numbers; found {}",
                    v.map_or("a missing value".to_string(), |x| x.to_string())
                ),
            });
        }
    }
    if let Some(c) = &spec.cluster {
        let nulls = series(df, c).null_count();
        if nulls > 0 {
            return Err(CohortError::InvalidColumn {
                file: file.to_string(),
                column: c.clone(),
                message: format!(
                    "the cluster column has {nulls} missing values; every row needs a cluster"
                ),
            });
        }
    }
    Ok(())
}

/// Each covariate's kind: declared, or numeric for number columns and
/// categorical otherwise; numeric ones finite.
fn covariate_kinds(
    df: &DataFrame,
    spec: &CohortSpec,
    file: &str,
) -> Result<Vec<VarKind>, CohortError> {
    // Resolve covariate kinds and levels.
    let mut kinds = Vec::new();
    for v in &spec.variables {
        let s = series(df, &v.name);
        let kind = match &v.kind {
            Some(k) => k.clone(),
            None if is_numeric(s.dtype()) => VarKind::Numeric,
            None => VarKind::Categorical {
                reference: None,
                absorb: false,
            },
        };
        if kind == VarKind::Numeric {
            if !is_numeric(s.dtype()) {
                return Err(CohortError::InvalidColumn {
                    file: file.to_string(),
                    column: v.name.clone(),
                    message: format!(
                        "declared numeric but holds {} values; declare it type = \"categorical\"",
                        s.dtype()
                    ),
                });
            }
            if let Some((row, x)) = numbers(&s)
                .iter()
                .enumerate()
                .find_map(|(i, x)| x.filter(|x| !x.is_finite()).map(|x| (i, x)))
            {
                return Err(non_finite(file, &v.name, row, x));
            }
        }
        kinds.push(kind);
    }
    Ok(kinds)
}

/// `missing = "error"` refuses any missing value in a used column (with
/// `complete_case` each analysis takes its own complete cases later).
fn missing_policy(df: &DataFrame, spec: &CohortSpec) -> Result<(), CohortError> {
    // Missing data.
    let mut used: Vec<String> = spec.outcomes.iter().map(|o| o.name.clone()).collect();
    used.extend(spec.variables.iter().map(|v| v.name.clone()));
    let missing: Vec<(String, usize)> = used
        .iter()
        .map(|c| (c.clone(), series(df, c).null_count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    if !missing.is_empty() {
        match spec.missing {
            MissingPolicy::Error => {
                return Err(CohortError::MissingValues {
                    columns: missing
                        .iter()
                        .map(|(c, n)| format!("{c} ({n} rows)"))
                        .collect(),
                });
            }
            // Each analysis takes the complete cases of its own variables
            // (Cohort::complete_cases), so rows are kept here.
            MissingPolicy::CompleteCase | MissingPolicy::MultipleImputation => {}
        }
    }
    Ok(())
}

/// The covariates as typed arrays (categoricals coded against their
/// reference, rare levels merged by `min_count`), with the warnings of the
/// merges.
fn extract_variables(
    df: &DataFrame,
    spec: &CohortSpec,
    kinds: Vec<VarKind>,
    file: &str,
) -> Result<(Vec<Variable>, Vec<String>), CohortError> {
    let mut variables = Vec::new();
    let mut warnings = Vec::new();
    for (v, kind) in spec.variables.iter().zip(kinds) {
        let s = series(df, &v.name);
        let values = match kind {
            VarKind::Numeric => Values::Numeric(
                numbers(&s)
                    .into_iter()
                    .map(|x| x.unwrap_or(f64::NAN))
                    .collect(),
            ),
            VarKind::Categorical { reference, absorb } => {
                let mut cd = coded(&s);
                if let Some(min) = v.min_count {
                    warnings.extend(merge_rare_levels(
                        &mut cd,
                        min,
                        reference.as_deref(),
                        &v.name,
                    ));
                }
                let observed: Vec<(String, usize)> = cd
                    .levels
                    .iter()
                    .cloned()
                    .zip(cd.counts.iter().copied())
                    .collect();
                let levels = categorical_levels(&observed, reference).map_err(|message| {
                    CohortError::InvalidColumn {
                        file: file.to_string(),
                        column: v.name.clone(),
                        message,
                    }
                })?;
                let absorb = absorb || levels.len() > ABSORB_THRESHOLD;
                let index: std::collections::HashMap<&str, u32> = levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str(), i as u32))
                    .collect();
                let remap: Vec<u32> = cd
                    .levels
                    .iter()
                    .map(|l| index.get(l.as_str()).copied().unwrap_or(0))
                    .collect();
                Values::Categorical {
                    codes: cd
                        .codes
                        .iter()
                        .map(|c| c.map_or(MISSING_CODE, |c| remap[c as usize]))
                        .collect(),
                    levels,
                    absorb,
                }
            }
        };
        variables.push(Variable {
            name: v.name.clone(),
            block: v.block.clone(),
            values,
        });
    }
    Ok((variables, warnings))
}

/// The design order of a categorical's levels from the levels that occur
/// and their row counts: the reference first (the declared one, else the most
/// frequent, ties to the first in [`natural_cmp`] order), then the others in
/// natural order. The warehouse path codes its `CASE` dummies with the same
/// function, from a `GROUP BY` of the column.
///
/// Errors: no levels at all; a declared reference that does not occur (the
/// message lists the levels and the nearest one).
pub fn categorical_levels(
    observed: &[(String, usize)],
    reference: Option<String>,
) -> Result<Vec<String>, String> {
    if observed.is_empty() {
        return Err("it has no values in the cohort (no rows, or every value missing)".into());
    }
    let counts: std::collections::HashMap<&str, usize> =
        observed.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    let mut levels: Vec<String> = observed.iter().map(|(l, _)| l.clone()).collect();
    levels.sort_by(|a, b| natural_cmp(a, b));
    let reference = match reference {
        Some(r) => {
            if !counts.contains_key(r.as_str()) {
                return Err(format!(
                    "reference level `{r}` does not occur; the levels are {}{}",
                    levels
                        .iter()
                        .take(20)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    nearest(&r, &levels)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default()
                ));
            }
            r
        }
        None => levels
            .iter()
            .max_by(|a, b| {
                counts[a.as_str()]
                    .cmp(&counts[b.as_str()])
                    .then_with(|| natural_cmp(b, a))
            })
            .cloned()
            .unwrap_or_default(),
    };
    levels.retain(|l| *l != reference);
    levels.insert(0, reference);
    Ok(levels)
}

/// Table 1 of the rows with every used outcome and covariate present; None
/// when that is every row.
fn complete_table1(
    df: &DataFrame,
    spec: &CohortSpec,
    kinds: &[VarKind],
    group: &[u32],
    labels: &[String],
) -> Result<Option<Vec<Table1Row>>, CohortError> {
    let mut keep = vec![true; df.height()];
    for name in spec
        .outcomes
        .iter()
        .map(|o| &o.name)
        .chain(spec.variables.iter().map(|v| &v.name))
    {
        for (k, present) in keep.iter_mut().zip(series(df, name).is_not_null().iter()) {
            *k &= present.unwrap_or(false);
        }
    }
    if keep.iter().all(|k| *k) {
        return Ok(None);
    }
    let mask: BooleanChunked = keep.iter().map(|k| Some(*k)).collect();
    let complete = df
        .filter(&mask)
        .map_err(|e| read_error(Path::new("table 1"), e))?;
    let rows: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
    let group: Vec<u32> = pick(group, &rows);
    Ok(Some(table1::compute(
        &complete, spec, kinds, &group, labels,
    )))
}

/// `min_count` on level counts alone (the warehouse path, which sees the
/// levels' rows, not the rows): the merged (level, rows), for each input
/// level the merged level it joins, and the warning when any merged — as
/// [`merge_rare_levels`] merges a loaded column.
pub fn merge_rare_level_counts(
    levels: &[(String, usize)],
    min: usize,
    reference: Option<&str>,
    name: &str,
) -> (Vec<(String, usize)>, Vec<String>, Option<String>) {
    let mut cd = Coded {
        codes: (0..levels.len() as u32).map(Some).collect(),
        levels: levels.iter().map(|(l, _)| l.clone()).collect(),
        counts: levels.iter().map(|(_, n)| *n).collect(),
    };
    let warning = merge_rare_levels(&mut cd, min, reference, name);
    let joins = cd
        .codes
        .iter()
        .map(|c| c.map_or_else(String::new, |c| cd.levels[c as usize].clone()))
        .collect();
    let merged = cd.levels.into_iter().zip(cd.counts).collect();
    (merged, joins, warning)
}

/// `min_count`: the levels with fewer rows than `min` (never the declared
/// reference) become one level `other`; returns the warning that says so.
fn merge_rare_levels(
    cd: &mut Coded,
    min: usize,
    reference: Option<&str>,
    name: &str,
) -> Option<String> {
    let rare: Vec<usize> = (0..cd.levels.len())
        .filter(|&l| cd.counts[l] < min && Some(cd.levels[l].as_str()) != reference)
        .collect();
    if rare.is_empty() {
        return None;
    }
    let names: Vec<String> = rare.iter().map(|&l| cd.levels[l].clone()).collect();
    // New levels: the kept ones in order, then `other` (joined with an
    // existing `other` level).
    let mut levels: Vec<String> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut to: Vec<u32> = Vec::with_capacity(cd.levels.len());
    for (l, level) in cd.levels.iter().enumerate() {
        let text = if rare.contains(&l) {
            "other"
        } else {
            level.as_str()
        };
        let code = match levels.iter().position(|x| x == text) {
            Some(c) => c,
            None => {
                levels.push(text.to_string());
                counts.push(0);
                levels.len() - 1
            }
        };
        counts[code] += cd.counts[l];
        to.push(code as u32);
    }
    // `other` itself too rare: it joins the reference (or the largest level).
    let mut also = String::new();
    if let Some(o) = levels.iter().position(|l| l == "other")
        && counts[o] < min
        && levels.len() > 1
    {
        let target = reference
            .and_then(|r| levels.iter().position(|l| l == r))
            .unwrap_or_else(|| {
                (0..levels.len())
                    .filter(|&l| l != o)
                    .max_by_key(|&l| counts[l])
                    .unwrap_or(0)
            });
        also = format!(
            "; `other` itself had fewer than {min} rows and joined `{}`",
            levels[target]
        );
        counts[target] += counts[o];
        for t in to.iter_mut() {
            if *t as usize == o {
                *t = target as u32;
            }
        }
        for t in to.iter_mut() {
            if *t as usize > o {
                *t -= 1;
            }
        }
        levels.remove(o);
        counts.remove(o);
    }
    for c in cd.codes.iter_mut().flatten() {
        *c = to[*c as usize];
    }
    cd.levels = levels;
    cd.counts = counts;
    Some(format!(
        "{name}: {} level(s) with fewer than {min} rows merged into `other` (min_count): {}{also}",
        names.len(),
        names.join(", ")
    ))
}

/// A binary outcome holds 0/1, or two values of which `event` is one.
fn check_binary(file: &str, o: &OutcomeSpec, vals: &[Option<f64>]) -> Result<(), CohortError> {
    let mut distinct: Vec<f64> = Vec::new();
    for v in vals.iter().flatten() {
        if !distinct.contains(v) {
            distinct.push(*v);
            if distinct.len() > 3 {
                break;
            }
        }
    }
    distinct.sort_by(f64::total_cmp);
    let shown: Vec<String> = distinct.iter().take(3).map(|v| v.to_string()).collect();
    let error = |message: String| CohortError::InvalidColumn {
        file: file.to_string(),
        column: o.name.clone(),
        message,
    };
    match o.event {
        Some(e) if distinct.len() > 2 || (!distinct.is_empty() && !distinct.contains(&e)) => {
            Err(error(format!(
                "declared binary with event = {e}, but its values are {}{}; a binary outcome \
                 has two values, one of them the event",
                shown.join(", "),
                if distinct.len() > 3 { ", …" } else { "" }
            )))
        }
        Some(_) => Ok(()),
        None if distinct.iter().all(|v| *v == 0.0 || *v == 1.0) => Ok(()),
        None if distinct.len() <= 2 => Err(error(format!(
            "declared binary but coded {}: say which value is the event, e.g. {} = {{ type = \
             \"binary\", event = {} }} (the other value is the non-event)",
            shown.join("/"),
            o.name,
            shown.last().cloned().unwrap_or_default()
        ))),
        None => Err(error(format!(
            "declared binary but has the values {}{}; a binary outcome must be 0/1 (or two values \
             with `event = ...`); declare it type = \"continuous\" if it is a measurement",
            shown.join(", "),
            if distinct.len() > 3 { ", …" } else { "" }
        ))),
    }
}

/// The first group label without rows, counting the rows once.
fn empty_group<'a>(group: &[u32], labels: &'a [String]) -> Option<&'a String> {
    let mut n = vec![0usize; labels.len()];
    for &g in group {
        n[g as usize] += 1;
    }
    labels
        .iter()
        .zip(&n)
        .find(|(_, c)| **c == 0)
        .map(|(l, _)| l)
}

fn non_finite(file: &str, column: &str, row: usize, v: f64) -> CohortError {
    CohortError::InvalidColumn {
        file: file.to_string(),
        column: column.to_string(),
        message: format!(
            "non-finite value {v} (row {} of the analysed rows); replace it by a number or leave it empty (missing)",
            row + 1
        ),
    }
}

/// A column's codes renumbered so that the levels are in [`natural_cmp`]
/// order (missing values get code 0), and the levels in that order.
///
/// Cluster codes index the cluster bootstrap's multiplicities, so they must
/// not depend on the order of the rows: the same hospitals then draw the same
/// multiplicities whether the cohort comes from a file, in any row order, or
/// from a warehouse's aggregates (which have no row order).
pub(crate) fn sorted_codes(cd: &Coded) -> (Vec<u32>, Vec<String>) {
    let mut order: Vec<usize> = (0..cd.levels.len()).collect();
    order.sort_by(|&a, &b| natural_cmp(&cd.levels[a], &cd.levels[b]));
    let mut new = vec![0u32; order.len()];
    for (rank, &old) in order.iter().enumerate() {
        new[old] = rank as u32;
    }
    let codes = cd
        .codes
        .iter()
        .map(|c| c.map_or(0, |c| new[c as usize]))
        .collect();
    let levels = order.iter().map(|&l| cd.levels[l].clone()).collect();
    (codes, levels)
}

/// Orders level texts numerically when both are numbers, else as text.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

impl CohortSpec {
    /// Every column the cohort reads, with the config key that names it
    /// (group, outcomes, covariates, cluster, weights, then the filters'
    /// columns), and the parsed filters.
    #[allow(clippy::type_complexity)]
    pub fn column_roles(
        &self,
    ) -> Result<(Vec<(String, String)>, Vec<filter::Filter>), CohortError> {
        let mut needed: Vec<(String, String)> =
            vec![(self.group_column.clone(), "[groups] column".into())];
        needed.extend(
            self.outcomes
                .iter()
                .map(|o| (o.name.clone(), "[outcomes]".into())),
        );
        needed.extend(
            self.variables
                .iter()
                .map(|v| (v.name.clone(), format!("[factors] {}", v.block))),
        );
        needed.extend(
            self.cluster
                .iter()
                .map(|c| (c.clone(), "[design] cluster".into())),
        );
        needed.extend(
            self.weights
                .iter()
                .map(|c| (c.clone(), "[design] weights".into())),
        );
        let filters: Vec<filter::Filter> = self
            .filters
            .iter()
            .map(|f| filter::parse(f))
            .collect::<Result<_, _>>()?;
        for (f, text) in filters.iter().zip(&self.filters) {
            needed.extend(
                f.columns
                    .iter()
                    .map(|c| (c.clone(), format!("the [cohort] filter `{text}`"))),
            );
        }
        Ok((needed, filters))
    }

    /// The distinct columns the cohort reads, in first-use order (what a
    /// warehouse transport pulls).
    pub fn columns(&self) -> Result<Vec<String>, CohortError> {
        let mut out: Vec<String> = Vec::new();
        for (c, _) in self.column_roles()?.0 {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

/// A polars error's message without the query plan it may append (internal
/// detail a user cannot act on).
fn polars_message(e: &PolarsError) -> String {
    let text = e.to_string();
    let cut = ["\n\nResolved plan", "Resolved plan until failure"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    text[..cut].trim_end().to_string()
}
