//! The report's content, built once from [`Results`] and rendered by the HTML
//! template ([`crate::html`]) and the Markdown writer ([`crate::markdown`]):
//! formatted tables (plain text, escaped by each renderer) and SVG figures.
//!
//! Counts are already suppressed in [`Results`]; nothing here reads row-level
//! data.
//!
//! [`build`] assembles the report section by section, one module each, named
//! after the section's heading: `findings`, `study` (with the attrition
//! flow), `table1`, `details` (method details), `hospitals`, `sensitivity`,
//! `warnings`, [`crate::methods`] and `appendix` (fitted models).

use serde::Serialize;

use crate::format::{Scale, num};
use crate::results::Results;
use crate::{ReportError, methods};
use healthgap_decompose::AnalysisResult;

mod appendix;
mod details;
mod findings;
mod hospitals;
mod imputation;
pub use imputation::ImputationView;
mod sensitivity;
mod study;
pub use study::site_counts;
mod table1;
mod warnings;

/// An outcome as the report names it.
#[derive(Debug, Clone)]
pub struct OutcomeInfo {
    /// Column name.
    pub name: String,
    /// Label for readers.
    pub label: String,
    /// Binary (shown in percentage points) or continuous.
    pub binary: bool,
}

/// Everything the renderers need besides [`Results`].
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// results.json's content.
    pub results: &'a Results,
    /// Group labels, reference first.
    pub group_labels: &'a [String],
    /// Factor blocks in report order: name and variables.
    pub factors: &'a [(String, Vec<String>)],
    /// Outcomes.
    pub outcomes: &'a [OutcomeInfo],
    /// Smallest count shown.
    pub min_cell: usize,
    /// When the report was written (UTC, ISO 8601).
    pub generated: String,
}

/// A figure: a file stem (for report.md's SVG files), a caption and the SVG.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// File stem, unique in the report (`figures/<id>.svg`).
    pub id: String,
    /// Caption.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// A table of plain-text cells.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// Header cells.
    pub head: Vec<String>,
    /// Body rows.
    pub rows: Vec<Vec<String>>,
    /// Columns from this index on are numbers (right-aligned).
    pub numeric_from: usize,
    /// A note under the table.
    pub note: Option<String>,
}

/// One outcome and comparison: its gap, the waterfalls and the triangulation.
#[derive(Debug, Clone, Serialize)]
pub struct PairView {
    /// Heading.
    pub title: String,
    /// Anchor.
    pub anchor: String,
    /// The crude gap with its interval, if a crude analysis ran.
    pub gap: Option<String>,
    /// Said when the methods' samples differ (complete cases of different
    /// variables).
    pub samples_note: Option<String>,
    /// One waterfall per decomposition.
    pub figures: Vec<Figure>,
    /// Factor blocks × methods.
    pub triangulation: Option<Table>,
}

/// One analysis for one outcome and comparison.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisView {
    /// Position of the analysis in results.json's `analyses`.
    pub index: usize,
    /// Heading.
    pub title: String,
    /// Anchor.
    pub anchor: String,
    /// n, inference, interval.
    pub meta: String,
    /// Every estimate.
    pub table: Table,
    /// Covariate balance of density-ratio weights (weighting and doubly robust).
    pub balance: Option<Table>,
    /// Cross-fitted learners: each nuisance's cross-validated loss and
    /// super-learner weights, then the density ratios' overlap.
    pub learners: Vec<Table>,
    /// The analysis's complete cases per group (when rows were missing).
    pub attrition: Option<Table>,
    /// Forest plot, caterpillar, concentration curve, ρ curve.
    pub figures: Vec<Figure>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// One fitted model (appendix).
#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    /// Heading.
    pub title: String,
    /// Family, n, clusters, vcov, convergence.
    pub meta: String,
    /// Coefficients.
    pub table: Table,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    /// Study name.
    pub study: String,
    /// Provenance rows (label, value).
    pub provenance: Vec<(String, String)>,
    /// Attrition flow: (step, excluded, remaining).
    pub attrition: Vec<(String, String, String)>,
    /// Rows at the start.
    pub rows_read: String,
    /// Group sizes.
    pub groups: Table,
    /// Table 1 (the cohort before any analysis's complete cases).
    pub table1: Table,
    /// Table 1 of the complete cases of every used variable (when any value
    /// is missing).
    pub table1_complete: Option<Table>,
    /// Missing data and imputation (when the study imputed).
    pub imputation: Option<imputation::ImputationView>,
    /// Gaps and where they come from.
    pub pairs: Vec<PairView>,
    /// Per-analysis detail.
    pub analyses: Vec<AnalysisView>,
    /// Hospital figures.
    pub hospitals: Vec<Figure>,
    /// Notes on hospital figures left out.
    pub hospital_notes: Vec<String>,
    /// E-values and the ρ point.
    pub sensitivity: Table,
    /// ρ-sensitivity curves.
    pub sensitivity_figures: Vec<Figure>,
    /// Every warning: (where, text).
    pub warnings: Vec<(String, String)>,
    /// The methods paragraphs.
    pub methods: Vec<String>,
    /// References cited in the methods.
    pub references: Vec<String>,
    /// Appendix: every fitted model, per analysis.
    pub models: Vec<(String, Vec<ModelView>)>,
}

fn slug(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// Makes every figure id and section anchor of the report unique (slugs of
/// different labels can coincide: `los.days` and `los_days`, or non-ASCII
/// labels) by suffixing `-2`, `-3`, … to repeats.
fn make_unique(view: &mut ReportView) {
    let mut seen = std::collections::HashSet::new();
    let mut unique = |id: &mut String| {
        if !seen.insert(id.clone()) {
            let base = id.clone();
            let mut k = 2;
            while !seen.insert(format!("{base}-{k}")) {
                k += 1;
            }
            *id = format!("{base}-{k}");
        }
    };
    for p in &mut view.pairs {
        unique(&mut p.anchor);
        for f in &mut p.figures {
            unique(&mut f.id);
        }
    }
    for a in &mut view.analyses {
        unique(&mut a.anchor);
        for f in &mut a.figures {
            unique(&mut f.id);
        }
    }
    let imputed = view
        .imputation
        .iter_mut()
        .flat_map(|i| i.figures.iter_mut());
    for f in view
        .hospitals
        .iter_mut()
        .chain(&mut view.sensitivity_figures)
        .chain(imputed)
    {
        unique(&mut f.id);
    }
}

impl ReportInput<'_> {
    fn outcome(&self, name: &str) -> (String, Scale) {
        self.outcomes
            .iter()
            .find(|o| o.name == name)
            .map_or((name.to_string(), Scale::of(false)), |o| {
                (o.label.clone(), Scale::of(o.binary))
            })
    }

    fn block_colour(&self, factor: Option<&str>) -> Option<usize> {
        let f = factor?;
        Some(
            self.factors
                .iter()
                .position(|(n, _)| n == f)
                .unwrap_or(self.factors.len()),
        )
    }

    fn x_label(&self, outcome: &str) -> String {
        let (label, scale) = self.outcome(outcome);
        if scale.factor == 100.0 {
            format!("difference in {label} (percentage points)")
        } else {
            format!("difference in {label}")
        }
    }
}

fn ci_text(lo: Option<f64>, hi: Option<f64>, f: f64) -> String {
    match (lo, hi) {
        (None, None) => "—".into(),
        (lo, hi) => format!("{} to {}", num(lo.map(|v| v * f)), num(hi.map(|v| v * f))),
    }
}

fn curve(a: &AnalysisResult, quantity: &str) -> Vec<(f64, f64)> {
    a.estimates
        .iter()
        .filter(|e| e.quantity == quantity)
        .filter_map(|e| {
            let t = e.term.as_deref()?;
            let v = t
                .split('=')
                .nth(1)?
                .trim_end_matches('%')
                .parse::<f64>()
                .ok()?;
            Some((if t.ends_with('%') { v / 100.0 } else { v }, e.estimate))
        })
        .collect()
}

/// The sections built per analysis, in results.json's order.
struct PerAnalysis {
    /// Method details.
    analyses: Vec<AnalysisView>,
    /// Hospital figures.
    hospitals: Vec<Figure>,
    /// ρ-sensitivity curves.
    sensitivity_figures: Vec<Figure>,
}

/// Per analysis, in results.json's order: its Method details view, its
/// hospital figures and its ρ-sensitivity curve. The figures are drawn in the
/// order they always were (per analysis: waterfall, forest, hospital figures,
/// ρ curve), so the first one that fails is the error returned.
fn per_analysis(input: &ReportInput) -> Result<PerAnalysis, ReportError> {
    let mut out = PerAnalysis {
        analyses: Vec::new(),
        hospitals: Vec::new(),
        sensitivity_figures: Vec::new(),
    };
    for a in &input.results.analyses {
        let figs = details::figures_of(input, a)?;
        out.hospitals.extend(hospitals::figures_of(input, a)?);
        if let Some(f) = sensitivity::rho_figure(input, a)? {
            out.sensitivity_figures.push(f);
        }
        let index = out.analyses.len();
        out.analyses.push(details::view_of(input, a, index, figs));
    }
    Ok(out)
}

/// Builds the report's content.
pub fn build(input: &ReportInput) -> Result<ReportView, ReportError> {
    let r = input.results;
    let (table1, table1_complete) = table1::tables(input);
    let pairs = findings::pair_views(input)?;
    let PerAnalysis {
        analyses,
        hospitals,
        sensitivity_figures,
    } = per_analysis(input)?;
    let from_moments = r.data.warehouse.as_ref().is_some_and(|w| !w.row_export);
    let (mut methods, references) = methods::paragraphs(&r.analyses, input.factors, from_moments);
    if let Some(s) = &r.imputation {
        methods.push(methods::imputation_paragraph(s));
    }
    let mut view = ReportView {
        study: r.study.name.clone(),
        provenance: study::provenance(input),
        attrition: study::attrition_flow(r),
        rows_read: r.data.rows_read.to_string(),
        groups: study::group_sizes(input),
        table1,
        table1_complete,
        imputation: imputation::view(input)?,
        pairs,
        analyses,
        hospitals,
        hospital_notes: hospitals::notes(input),
        sensitivity: sensitivity::table(input),
        sensitivity_figures,
        warnings: warnings::list(r),
        methods,
        references,
        models: appendix::models(input),
    };
    make_unique(&mut view);
    Ok(view)
}
