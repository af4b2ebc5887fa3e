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
    /// `path`, `omop` or `synthetic`.
    pub source: String,
    /// Files read.
    pub files: Vec<FileInfo>,
    /// Rows read before any step.
    pub rows_read: usize,
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
