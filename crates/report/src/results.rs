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
    pub table1: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The same on the complete cases of every outcome and covariate the plan
    /// uses; absent when no value is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table1_complete: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
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
