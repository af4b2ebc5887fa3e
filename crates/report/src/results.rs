//! The results.json document (schema version 1).

use healthgap_decompose::AnalysisResult;
use serde::Serialize;

/// The tool.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    /// `healthgap`.
    pub name: String,
    /// Version.
    pub version: String,
}

/// The study.
#[derive(Debug, Clone, Serialize)]
pub struct StudyInfo {
    /// Study name.
    pub name: String,
    /// Study seed.
    pub seed: u64,
    /// SHA-256 of the config file's bytes.
    pub config_sha256: String,
}

/// One input file.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// Path as given (relative to the config when it was).
    pub path: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// The data.
#[derive(Debug, Clone, Serialize)]
pub struct DataInfo {
    /// `path`, `omop`, `synthetic` or `warehouse`.
    pub source: String,
    /// Files read.
    pub files: Vec<FileInfo>,
    /// Rows read before any step.
    pub rows_read: usize,
    /// A warehouse source: where the data came from and what ran there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<WarehouseInfo>,
}

/// results.json `data.warehouse`.
#[derive(Debug, Clone, Serialize)]
pub struct WarehouseInfo {
    /// `postgres`.
    pub engine: String,
    /// `user@host:port/database` (never a password).
    pub server: String,
    /// Whether patient rows (the analysis columns) left the warehouse.
    pub row_export: bool,
    /// The text of every statement run, in order (a federated study's are
    /// in each site's `queries`).
    pub queries: Vec<String>,
    /// A federated study's sites (`[[data.site]]`), in config order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteInfo>,
}

/// results.json `data.warehouse.sites[]`: one site of a federated study.
/// Its counts are suppressed as parts of the shown totals (below
/// `min_cell`, and the complements that would reveal them).
#[derive(Debug, Clone, Serialize)]
pub struct SiteInfo {
    /// `[[data.site]] name`.
    pub name: String,
    /// `postgres`.
    pub engine: String,
    /// `user@host:port/database` (never a password).
    pub server: String,
    /// Rows in the site's table (null when suppressed).
    pub rows_read: Option<usize>,
    /// Rows per analysed group after the filters (null when suppressed).
    pub groups: Vec<GroupCount>,
    /// The text of every statement run at the site, in order.
    pub queries: Vec<String>,
}

/// A group's size (null when suppressed).
#[derive(Debug, Clone, Serialize)]
pub struct GroupCount {
    /// Label.
    pub label: String,
    /// Rows, or null below `min_cell`.
    pub n: Option<usize>,
}

/// An attrition step as reported.
#[derive(Debug, Clone, Serialize)]
pub struct AttritionRow {
    /// Step.
    pub step: String,
    /// Rows excluded (null when suppressed).
    pub excluded: Option<usize>,
    /// Rows remaining (null when suppressed).
    pub remaining: Option<usize>,
    /// Display texts of (excluded, remaining): the number, `<min_cell` or
    /// `suppressed` (hidden only to protect another count).
    #[serde(skip)]
    pub text: [String; 2],
}

/// The cohort section.
#[derive(Debug, Clone, Serialize)]
pub struct CohortSummary {
    /// Rows analysed.
    pub n: Option<usize>,
    /// Clusters.
    pub clusters: Option<usize>,
    /// Group sizes.
    pub groups: Vec<GroupCount>,
    /// Attrition table.
    pub attrition: Vec<AttritionRow>,
    /// Table 1 rows: variable, level, one key per group label, smd (first
    /// comparison), smd_by_group, missing_by_group. The cohort after the
    /// filters, before any analysis's complete cases.
    pub table1: Vec<Table1Row>,
    /// The same on the complete cases of every outcome and covariate the plan
    /// uses; absent when no value is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table1_complete: Option<Vec<Table1Row>>,
}

/// One row of Table 1 (small cells already suppressed). Written as
/// `variable`, `level`, one key per group label with the cell's text, `smd`
/// (the first comparison's), `smd_by_group` and `missing_by_group`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table1Row {
    /// Variable.
    pub variable: String,
    /// Level of a categorical variable (None: the variable's own row).
    pub level: Option<String>,
    /// One cell per group, reference first.
    pub groups: Vec<Table1Cell>,
}

/// One group's cell of a [`Table1Row`].
#[derive(Debug, Clone, PartialEq)]
pub struct Table1Cell {
    /// Group label.
    pub label: String,
    /// The cell as shown (`12.3 (4.5)`, `<11`, `suppressed`).
    pub text: String,
    /// Rows missing the variable (None when suppressed).
    pub missing: Option<usize>,
    /// Standardized difference against the reference (None for the
    /// reference, and where either cell is hidden).
    pub smd: Option<f64>,
}

impl Serialize for Table1Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let comparisons = || self.groups.iter().skip(1);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("variable", &self.variable)?;
        map.serialize_entry("level", &self.level)?;
        for cell in &self.groups {
            map.serialize_entry(&cell.label, &cell.text)?;
        }
        map.serialize_entry("smd", &comparisons().next().and_then(|c| c.smd))?;
        let by_group: serde_json::Map<String, serde_json::Value> = comparisons()
            .map(|c| (c.label.clone(), serde_json::json!(c.smd)))
            .collect();
        map.serialize_entry("smd_by_group", &by_group)?;
        let missing: serde_json::Map<String, serde_json::Value> = self
            .groups
            .iter()
            .map(|c| (c.label.clone(), serde_json::json!(c.missing)))
            .collect();
        map.serialize_entry("missing_by_group", &missing)?;
        map.end()
    }
}

/// results.json.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// Always 1.
    pub schema_version: u32,
    /// Tool.
    pub tool: ToolInfo,
    /// Study.
    pub study: StudyInfo,
    /// Data.
    pub data: DataInfo,
    /// Cohort.
    pub cohort: CohortSummary,
    /// Analyses.
    pub analyses: Vec<AnalysisResult>,
    /// Study-level warnings (e.g. methods not run, analyses that failed).
    pub warnings: Vec<String>,
    /// Analyses that failed (the others are kept); empty when none did.
    pub failed: Vec<FailedAnalysis>,
    /// How missing values were imputed, with the diagnostics (absent unless
    /// `[cohort] missing = "multiple_imputation"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imputation: Option<ImputationSummary>,
}

/// results.json `imputation`: the settings, the analyses that used the
/// imputations, and per imputed variable its model, its missingness by
/// group and the diagnostics (small cells suppressed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImputationSummary {
    /// Imputations.
    pub m: usize,
    /// Iterations of the chained equations.
    pub iterations: usize,
    /// Seed of the imputation streams.
    pub seed: u64,
    /// Donors of predictive mean matching.
    pub donors: usize,
    /// Imputed within each group.
    pub by_group: bool,
    /// How the cluster entered the models: `means`, `fixed_effect` or `none`.
    pub cluster: String,
    /// `rubin` or `bootstrap-then-impute`.
    pub inference: String,
    /// Bootstrap-then-impute replicates and imputations per replicate.
    pub replicates: Option<(usize, usize)>,
    /// The analyses run on the imputations (the others on complete cases).
    pub analyses: Vec<String>,
    /// The predictors (variables and outcomes; the group when not by group).
    pub predictors: Vec<String>,
    /// The imputed variables.
    pub variables: Vec<ImputedVariable>,
    /// Fallbacks taken (a separated logistic model imputed by PMM instead).
    pub warnings: Vec<String>,
}

/// One imputed variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImputedVariable {
    /// Column.
    pub name: String,
    /// `pmm`, `norm`, `logistic` or `multinomial`.
    pub method: String,
    /// Missing cells per group (null when suppressed: fewer than min_cell
    /// missing or observed).
    pub missing: Vec<GroupShare>,
    /// Observed and imputed distributions per group.
    pub distributions: Vec<Distribution>,
    /// Mean of the imputed cells (categorical: share off the reference
    /// level) after each iteration, one line per imputation; empty when
    /// fewer than min_cell cells are missing.
    pub trace: Vec<Vec<f64>>,
}

/// Missing cells of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupShare {
    /// Group label.
    pub group: String,
    /// Missing cells (null when suppressed).
    pub missing: Option<usize>,
    /// Their share of the group (null when suppressed).
    pub share: Option<f64>,
}

/// Observed against imputed values of one variable in one group: shares per
/// bin (numbers) or level (categoricals); a bin with fewer than min_cell
/// observed or (per imputation) imputed values is null, and so are the next
/// smallest when the hidden ones hold fewer than min_cell together
/// (`suppress::histogram`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    /// Group label.
    pub group: String,
    /// Bin centres (numbers) or level indices (categoricals).
    pub bins: Vec<String>,
    /// Share of the observed values per bin.
    pub observed: Vec<Option<f64>>,
    /// Share of the imputed values (all imputations) per bin.
    pub imputed: Vec<Option<f64>>,
    /// Mean of the observed and of the imputed values (null when either
    /// count is below min_cell).
    pub means: Option<(f64, f64)>,
}

/// An analysis that failed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedAnalysis {
    /// Analysis id.
    pub id: String,
    /// Method.
    pub method: String,
    /// The error, with its causes.
    pub reason: String,
}
