//! The raw config (TOML schema version 1, DESIGN.md), parsed with serde. Unknown
//! keys are errors that name the key, its line and the nearest valid key. The
//! raw config is turned into a checked [`crate::plan::Plan`] before anything runs.

use indexmap::IndexMap;
use serde::Deserialize;

use healthgap_cohort::omop::OmopConcepts;
use healthgap_decompose::MethodSpec;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[study]`.
    pub study: RawStudy,
    /// `[data]`.
    pub data: RawData,
    /// `[cohort]`.
    #[serde(default)]
    pub cohort: RawCohort,
    /// `[groups]`.
    pub groups: RawGroups,
    /// `[outcomes]`, in file order.
    pub outcomes: IndexMap<String, RawOutcome>,
    /// `[factors]`: named blocks, in file order.
    #[serde(default)]
    pub factors: IndexMap<String, Vec<String>>,
    /// `[variables]`: types where not obvious from the data.
    #[serde(default)]
    pub variables: IndexMap<String, RawVariable>,
    /// `[design]`.
    #[serde(default)]
    pub design: RawDesign,
    /// `[imputation]`.
    pub imputation: Option<RawImputation>,
    /// `[inference]`.
    #[serde(default)]
    pub inference: RawInference,
    /// `[[analysis]]`.
    #[serde(default, rename = "analysis")]
    pub analyses: Vec<RawAnalysis>,
    /// `[report]`.
    #[serde(default)]
    pub report: RawReport,
}

/// `[study]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStudy {
    /// Study name.
    pub name: String,
    /// Study seed (bootstrap and Monte Carlo streams derive from it).
    #[serde(default)]
    pub seed: u64,
}

/// `[data]`: exactly one of `path`, `omop`, `synthetic`, `warehouse` or
/// `[[data.site]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// A flat extract.
    pub path: Option<String>,
    /// An OMOP CDM folder: `omop = "dir"` or `[data.omop]` with `path` and concept sets.
    pub omop: Option<RawOmop>,
    /// Generator parameters (as `healthgap synth --set`).
    pub synthetic: Option<IndexMap<String, toml::Value>>,
    /// Texts that mean "missing" in any column (default `["", "NA"]`).
    pub na_values: Option<Vec<String>>,
    /// A warehouse table (`warehouse = { engine, url, table, ... }`).
    pub warehouse: Option<RawWarehouse>,
    /// Whether the analysis columns may leave the warehouse.
    #[serde(default)]
    pub allow_row_export: bool,
    /// `[[data.site]]`: a federated study, one warehouse per site.
    #[serde(default, rename = "site")]
    pub sites: Vec<RawSite>,
    /// A federated study's site label as a column of that name (usable as a
    /// categorical covariate or as the cluster).
    pub site_column: Option<String>,
}

/// `[[data.site]]`: one site of a federated study.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// The site's name (unique; it names the site in messages and results.json).
    pub name: String,
    /// Its warehouse table, with the keys of `[data] warehouse`.
    pub warehouse: RawWarehouse,
}

/// `[data] warehouse`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    /// The engine.
    pub engine: RawEngine,
    /// The connection (`postgresql://user@host:port/db` or `host=… user=…`), without a password.
    pub url: String,
    /// The cohort table.
    pub table: String,
    /// Its schema.
    pub schema: Option<String>,
    /// The environment variable that holds the password.
    pub password_env: Option<String>,
}

/// A warehouse engine.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawEngine {
    /// PostgreSQL.
    Postgres,
    /// Spark through Spark Connect.
    Spark,
}

/// `omop = "dir"` or `[data.omop] path = "dir"` (+ `[data.omop.concepts]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawOmop {
    /// Just the folder.
    Path(String),
    /// Folder and concept sets.
    Table(Box<RawOmopTable>),
}

/// `[data.omop]` as a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOmopTable {
    /// The folder.
    pub path: String,
    /// Concept-set overrides.
    #[serde(default)]
    pub concepts: OmopConcepts,
}

/// Missing-data policy.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawMissing {
    /// Drop incomplete rows.
    #[default]
    CompleteCase,
    /// Refuse.
    Error,
    /// Multiple imputation by chained equations (`[imputation]`).
    MultipleImputation,
}

/// An analysis's own missing-data handling (`missing` in `[[analysis]]`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawAnalysisMissing {
    /// Complete cases of the analysis's variables.
    CompleteCase,
    /// The study's imputations, pooled.
    MultipleImputation,
}

/// How the imputed analyses' inference is made.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawImputationInference {
    /// Rubin's rules over the m imputations (each analysis's own inference
    /// gives the within-imputation variance).
    #[default]
    Rubin,
    /// Bootstrap, then impute: each replicate resamples (by cluster) and is
    /// imputed afresh (Bartlett & Hughes 2020).
    Bootstrap,
}

/// How the cluster (hospital) enters the imputation models.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawClusterTerm {
    /// Cluster means of the predictors.
    #[default]
    Means,
    /// Cluster dummies.
    FixedEffect,
    /// None.
    None,
}

/// An imputation model.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawImputationMethod {
    /// By type.
    Auto,
    /// Predictive mean matching.
    Pmm,
    /// Bayesian linear regression.
    Norm,
    /// Bayesian logistic regression.
    Logistic,
    /// Bayesian multinomial logit.
    Multinomial,
}

/// `[imputation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImputation {
    /// Imputations (default 20).
    #[serde(default = "default_m")]
    pub m: usize,
    /// Iterations of the chained equations (default 10).
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// Seed (default: the study seed).
    pub seed: Option<u64>,
    /// Donors of predictive mean matching (default 5).
    #[serde(default = "default_donors")]
    pub donors: usize,
    /// Impute within each group (default true).
    #[serde(default = "default_true")]
    pub by_group: bool,
    /// Models per variable (default `auto`).
    #[serde(default)]
    pub method: IndexMap<String, RawImputationMethod>,
    /// Predictors (default: every analysis variable, every outcome).
    pub predictors: Option<Vec<String>>,
    /// Variables left as they are (their incomplete rows stay complete cases).
    #[serde(default)]
    pub leave: Vec<String>,
    /// The visit sequence (these first; default `[factors]` order).
    #[serde(default)]
    pub visit: Vec<String>,
    /// How the cluster enters (default `means`).
    #[serde(default)]
    pub cluster: RawClusterTerm,
    /// `rubin` (default) or `bootstrap` (bootstrap, then impute).
    #[serde(default)]
    pub inference: RawImputationInference,
    /// Bootstrap-then-impute replicates (default 200).
    #[serde(default = "default_boot_replicates")]
    pub replicates: usize,
    /// Imputations per bootstrap replicate (default 2).
    #[serde(default = "default_per_replicate")]
    pub per_replicate: usize,
}

/// `[imputation]` with every default.
pub fn parse_imputation_defaults() -> RawImputation {
    RawImputation {
        m: default_m(),
        iterations: default_iterations(),
        seed: None,
        donors: default_donors(),
        by_group: true,
        method: IndexMap::new(),
        predictors: None,
        leave: Vec::new(),
        visit: Vec::new(),
        cluster: RawClusterTerm::default(),
        inference: RawImputationInference::default(),
        replicates: default_boot_replicates(),
        per_replicate: default_per_replicate(),
    }
}

fn default_m() -> usize {
    20
}

fn default_iterations() -> usize {
    10
}

fn default_donors() -> usize {
    5
}

fn default_true() -> bool {
    true
}

fn default_boot_replicates() -> usize {
    200
}

fn default_per_replicate() -> usize {
    2
}

/// `[cohort]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCohort {
    /// Row filters.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Missing-data policy.
    #[serde(default)]
    pub missing: RawMissing,
}

/// `[groups]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroups {
    /// Column.
    pub column: String,
    /// Reference level (text; numbers are accepted).
    pub reference: toml::Value,
    /// Comparison levels.
    pub compare: Vec<toml::Value>,
    /// Display labels of the group values, e.g. `{ 0 = "White", 1 = "Black" }`
    /// (reference and compare may name the value or its label).
    pub labels: Option<IndexMap<String, String>>,
}

/// Outcome scale.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawOutcomeType {
    /// 0/1.
    Binary,
    /// Numbers.
    Continuous,
}

/// One `[outcomes]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutcome {
    /// Scale.
    #[serde(rename = "type")]
    pub kind: RawOutcomeType,
    /// Label.
    pub label: Option<String>,
    /// Binary outcomes coded other than 0/1: the value that is the event
    /// (e.g. 2 for a 1/2 coding); the other value is the non-event.
    pub event: Option<f64>,
}

/// Variable type.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawVariableType {
    /// Levels.
    Categorical,
    /// Numbers.
    Numeric,
    /// 0/1 (numeric).
    Binary,
}

/// One `[variables]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariable {
    /// Type.
    #[serde(rename = "type")]
    pub kind: RawVariableType,
    /// Reference level of a categorical variable.
    pub reference: Option<toml::Value>,
    /// Absorb as fixed effects (default: when it has more than 50 levels).
    pub absorb: Option<bool>,
    /// Categorical: levels with fewer rows than this are merged into `other`.
    pub min_count: Option<usize>,
}

/// `[design]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDesign {
    /// Cluster column.
    pub cluster: Option<String>,
    /// Weight column.
    pub weights: Option<String>,
    /// Variance of the delta method: robust (default without a cluster),
    /// model, or cluster (default, and required, with a cluster).
    pub vce: Option<RawVce>,
}

/// `[design] vce`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawVce {
    /// Each row its own unit (HC1 / `suest`).
    Robust,
    /// Model-based (homoskedastic) variances, where derived.
    Model,
    /// Clusters are the units.
    Cluster,
}

/// Inference method.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawInferenceMethod {
    /// Delta method / analytic sandwich.
    Delta,
    /// Cluster bootstrap.
    Bootstrap,
}

/// Interval type.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawInterval {
    /// Percentile.
    Percentile,
    /// BCa.
    Bca,
    /// Normal.
    Normal,
}

/// What to do when a bootstrap's intervals are withheld.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RawFallback {
    /// Keep them withheld (the default).
    #[default]
    None,
    /// Use the delta method's intervals instead (declared; exit code 3).
    Delta,
}

/// `[inference]` (and an analysis's `inference = {...}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInference {
    /// Method (default: bootstrap with a cluster, else delta).
    pub method: Option<RawInferenceMethod>,
    /// Bootstrap replicates (default 500).
    pub replicates: Option<usize>,
    /// Interval (default percentile).
    pub interval: Option<RawInterval>,
    /// Confidence level (default 0.95).
    pub level: Option<f64>,
    /// Resample clusters within groups' strata.
    pub stratify: Option<bool>,
    /// One Newton step per bootstrap replicate instead of converged refits.
    pub one_step: Option<bool>,
    /// When the bootstrap's intervals are withheld: `none` (default) or
    /// `delta` (the delta method's intervals instead, declared).
    pub fallback: Option<RawFallback>,
}

/// One `[[analysis]]`: the keys every analysis has (`id`, `outcomes`,
/// `inference`) and its method's options ([`MethodSpec`], tagged by
/// `method`, with the method's defaults).
#[derive(Debug, Clone)]
pub struct RawAnalysis {
    /// Id (default: the method).
    pub id: Option<String>,
    /// Outcomes.
    pub outcomes: Vec<String>,
    /// Inference override.
    pub inference: Option<RawInference>,
    /// Missing-data handling override.
    pub missing: Option<RawAnalysisMissing>,
    /// The method and its options.
    pub spec: MethodSpec,
}

/// The keys every `[[analysis]]` has, before its method's own.
const COMMON_KEYS: [&str; 4] = ["id", "outcomes", "inference", "missing"];

impl<'de> Deserialize<'de> for RawAnalysis {
    /// The common keys are taken out of the table and the rest is the
    /// method's spec (serde's `deny_unknown_fields` per method; an unknown
    /// key's message lists the common keys too).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        fn take<T: serde::de::DeserializeOwned, E: Error>(
            table: &mut toml::Table,
            key: &str,
        ) -> Result<Option<T>, E> {
            table
                .remove(key)
                .map(|v| {
                    v.try_into()
                        .map_err(|e: toml::de::Error| E::custom(e.message()))
                })
                .transpose()
        }
        let id = take(&mut table, "id")?;
        let outcomes = take(&mut table, "outcomes")?;
        let inference = take(&mut table, "inference")?;
        let missing = take(&mut table, "missing")?;
        let spec = toml::Value::Table(table)
            .try_into::<MethodSpec>()
            .map_err(|e| D::Error::custom(with_common_keys(e.message())))?;
        Ok(RawAnalysis {
            id,
            outcomes: outcomes.ok_or_else(|| D::Error::missing_field("outcomes"))?,
            inference,
            missing,
            spec,
        })
    }
}

/// An unknown-key message of a method's options with the common keys added
/// to its list of valid keys (first, as in the docs).
fn with_common_keys(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((key, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    let own = tail
        .strip_prefix(", expected one of ")
        .or_else(|| tail.strip_prefix(", expected "))
        .unwrap_or("");
    let common: Vec<String> = COMMON_KEYS.iter().map(|k| format!("`{k}`")).collect();
    let mut valid = common.join(", ");
    if !own.is_empty() {
        valid = format!("{valid}, {own}");
    }
    format!("unknown field `{key}`, expected one of {valid}")
}

/// Output formats.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawFormat {
    /// index.html.
    Html,
    /// results.json.
    Json,
    /// CSV tables.
    Csv,
    /// report.md.
    Markdown,
}

/// `[report]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    /// Output folder (relative to the config).
    pub out_dir: Option<String>,
    /// Formats.
    #[serde(default = "all_formats")]
    pub formats: Vec<RawFormat>,
    /// Small-cell threshold.
    #[serde(default = "default_min_cell")]
    pub min_cell: usize,
}

impl Default for RawReport {
    fn default() -> Self {
        RawReport {
            out_dir: None,
            formats: all_formats(),
            min_cell: default_min_cell(),
        }
    }
}

fn all_formats() -> Vec<RawFormat> {
    vec![
        RawFormat::Html,
        RawFormat::Json,
        RawFormat::Csv,
        RawFormat::Markdown,
    ]
}

fn default_min_cell() -> usize {
    11
}

/// A config error with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The message (with the nearest valid key when it is a typo).
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Backticked names in a serde message, in order.
fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The table that line `line` (1-based) belongs to: `[section]`, or for an
/// `[[analysis]]` its number and method (and id when given), with the line
/// range of that table.
fn table_of(text: &str, line: usize) -> Option<(String, std::ops::Range<usize>)> {
    let lines: Vec<&str> = text.lines().collect();
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let start = (0..line.min(lines.len()))
        .rev()
        .find(|&i| is_header(lines[i]))?;
    let end = (start + 1..lines.len())
        .find(|&i| is_header(lines[i]))
        .unwrap_or(lines.len());
    let header = lines[start].trim();
    let name = if header == "[[analysis]]" {
        let number = lines[..=start]
            .iter()
            .filter(|l| l.trim() == "[[analysis]]")
            .count();
        let value = |key: &str| {
            lines[start + 1..end].iter().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let mut what = value("method").unwrap_or_else(|| "no method".into());
        if let Some(id) = value("id") {
            what = format!("id `{id}`, {what}");
        }
        format!("[[analysis]] number {number} ({what})")
    } else {
        header.to_string()
    };
    Some((name, start + 1..end + 1))
}

/// serde's type names in plain words (no internal names such as
/// `struct RawOutcome`).
fn plain_types(msg: &str) -> String {
    let mut out = msg.to_string();
    for (marker, plain) in [
        ("struct ", "a table (`{ key = value, ... }` or a [section])"),
        ("enum ", "one of the documented values"),
    ] {
        while let Some(i) = out.find(marker) {
            let rest = &out[i + marker.len()..];
            let len = rest
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            out.replace_range(i..i + marker.len() + len, plain);
        }
    }
    out.replace("a sequence", "a list [...]")
        .replace("expected a map", "expected a table")
        .replace("expected usize", "expected a whole number, 0 or more")
        .replace("expected u64", "expected a whole number, 0 or more")
        .replace("expected u32", "expected a whole number, 0 or more")
        .replace("expected f64", "expected a number")
        .replace(" as i128", "")
        .replace(" as u128", "")
}

/// Parses the TOML text. Typos in keys and values name the nearest valid one.
/// An error inside an `[[analysis]]` is located by parsing each analysis's
/// table on its own (the whole config's error points at the first one), so
/// that it names the right analysis and line.
pub fn parse(text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str::<RawConfig>(text).map_err(|e| {
        let error = explain(&e, text);
        let in_analysis = error
            .line
            .and_then(|l| table_of(text, l))
            .is_some_and(|(t, _)| t.starts_with("[[analysis]]"));
        if in_analysis && let Some(located) = locate_in_analyses(text) {
            return located;
        }
        error
    })
}

/// The first `[[analysis]]` table that does not parse on its own, with its
/// error at its own line.
fn locate_in_analyses(text: &str) -> Option<ConfigError> {
    let lines: Vec<&str> = text.lines().collect();
    let headers: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim() == "[[analysis]]")
        .collect();
    for &h in &headers {
        let (_, range) = table_of(text, h + 1)?;
        // The table's own lines, with blank lines in place of the others so
        // that line numbers stay those of the file.
        let own: String = (0..lines.len())
            .map(|i| {
                if i > h && i + 1 < range.end {
                    lines[i]
                } else {
                    ""
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        if let Err(e) = toml::from_str::<RawAnalysis>(&own) {
            let mut error = explain(&e, &own);
            let (table, _) = table_of(text, h + 1)?;
            if error.line.is_none_or(|l| l <= h + 1) {
                // A tagged table's errors carry no position: find the line
                // holding the offending value, or point at the header.
                let msg = e.message();
                let value = msg
                    .strip_prefix("invalid type: ")
                    .or_else(|| msg.strip_prefix("invalid value: "))
                    .and_then(|m| m.split(", expected").next())
                    .map(|v| {
                        v.trim_start_matches("string ")
                            .trim_start_matches("integer ")
                            .trim_start_matches("floating point ")
                            .trim_matches('`')
                            .to_string()
                    })
                    .or_else(|| {
                        // `unknown variant `x``: the offending value.
                        msg.strip_prefix("unknown variant ")
                            .and_then(|m| m.split('`').nth(1))
                            .map(|v| format!("\"{v}\""))
                    });
                error.line = Some(
                    value
                        .and_then(|v| {
                            (h + 1..range.end.saturating_sub(1)).find(|&i| {
                                lines[i]
                                    .split_once('=')
                                    .is_some_and(|(_, rhs)| rhs.contains(v.as_str()))
                            })
                        })
                        .map_or(h + 1, |i| i + 1),
                );
                if let Some(l) = error.line
                    && l > h + 1
                    && let Some(key) = lines[l - 1].split('=').next()
                    && !error.message.starts_with('`')
                {
                    error.message = format!("`{}`: {}", key.trim(), error.message);
                }
            }
            error.message = format!("{table}: {}", error.message);
            return Some(error);
        }
    }
    None
}

/// A TOML error in plain words, at its line.
fn explain(e: &toml::de::Error, text: &str) -> ConfigError {
    {
        let mut line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().to_string();
        let names = backticked(&msg);
        // Tagged tables report the span of the whole table: point at the key itself.
        if msg.starts_with("unknown field")
            && let Some(key) = names.first()
        {
            let from = line.unwrap_or(1);
            // Search only the table the error points into (a key of the same
            // name can be valid in another [[analysis]]).
            let until = table_of(text, from).map_or(usize::MAX, |(_, r)| r.end);
            let is_key = |l: &str| {
                let t = l.trim_start();
                t.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('=') || rest.starts_with(']'))
                    || t.trim_start_matches('[').starts_with(&format!("{key}]"))
            };
            if let Some(k) = text
                .lines()
                .enumerate()
                .skip(from - 1)
                .take(until.saturating_sub(from))
                .find(|(_, l)| is_key(l))
                .map(|(i, _)| i + 1)
            {
                line = Some(k);
            }
        }
        let message = if (msg.starts_with("unknown field") || msg.starts_with("unknown variant"))
            && !names.is_empty()
        {
            let what = if msg.starts_with("unknown field") {
                "key"
            } else {
                "value"
            };
            let expected: Vec<String> = names[1..]
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect();
            let suggestion = healthgap_synth::params::nearest(&names[0], &expected);
            format!(
                "unknown {what} `{}`{}; valid: {}",
                names[0],
                suggestion
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default(),
                expected.join(", ")
            )
        } else if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
            // Name the key of the offending line and say what is expected in
            // plain words (not Rust type names).
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split('=').next())
                .map(|k| k.trim().trim_start_matches('{').trim())
                .filter(|k| !k.is_empty() && !k.contains(' '));
            let plain = if msg.starts_with("invalid type") {
                msg.replace("expected usize", "expected a whole number without quotes")
                    .replace("expected u64", "expected a whole number without quotes")
                    .replace("expected f64", "expected a number without quotes")
                    .replace(
                        "expected a boolean",
                        "expected true or false without quotes",
                    )
            } else {
                msg.clone()
            };
            match key {
                Some(k) => format!("`{k}`: {plain}"),
                None => plain,
            }
        } else if let Some(key) = msg.strip_prefix("missing field ") {
            format!("missing key {key}")
        } else {
            msg
        };
        // Say which table: the analysis's number, method and id.
        let message = match line.and_then(|l| table_of(text, l)) {
            Some((table, _)) if !message.starts_with('[') => format!("{table}: {message}"),
            _ => message,
        };
        // serde's type names in plain words, whichever branch made the message.
        let message = plain_types(&message);
        ConfigError { line, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANONICAL: &str = include_str!("../analyses/cabg_synthetic.toml");

    #[test]
    fn the_canonical_study_parses_with_blocks_in_file_order() {
        let c = parse(CANONICAL).unwrap();
        assert_eq!(
            c.factors.keys().collect::<Vec<_>>(),
            vec!["biological", "socioeconomic", "care_site"]
        );
        assert_eq!(c.analyses.len(), 6);
        assert_eq!(c.analyses[1].spec.name(), "oaxaca_blinder");
        assert_eq!(
            c.outcomes.keys().next().map(String::as_str),
            Some("death_30d")
        );
    }

    #[test]
    fn a_typo_names_the_key_its_line_and_the_nearest_valid_key() {
        let text = CANONICAL.replace("coefficients = \"pooled\"", "coefficents = \"pooled\"");
        let e = parse(&text).unwrap_err();
        let line = CANONICAL
            .lines()
            .position(|l| l.starts_with("coefficients"))
            .unwrap()
            + 1;
        assert!(
            e.message.contains("`coefficents`")
                && e.message.contains("did you mean `coefficients`"),
            "{e}"
        );
        assert_eq!(e.line, Some(line), "{e:?}");
        let e = parse(&CANONICAL.replace("[study]", "[studdy]")).unwrap_err();
        assert!(e.message.contains("did you mean `study`"), "{e}");
        let e = parse(&CANONICAL.replace("missing = \"complete_case\"", "missing = \"complete\""))
            .unwrap_err();
        assert!(e.message.contains("complete_case"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn mutated_configs_never_panic(cut in 0usize..4000, insert in "[a-z=\\[\\]\"\\n 0-9.]{0,12}") {
            let mut text = CANONICAL.to_string();
            let at = cut.min(text.len());
            let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            text.insert_str(at, &insert);
            let _ = parse(&text);
        }
    }
}
