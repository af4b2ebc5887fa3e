//! The report's content, built once from [`Results`] and rendered by the HTML
//! template ([`crate::html`]) and the Markdown writer ([`crate::markdown`]):
//! formatted tables (plain text, escaped by each renderer) and SVG figures.
//!
//! Counts are already suppressed in [`Results`]; nothing here reads row-level
//! data.

use serde::Serialize;

use crate::figures::{self, Step};
use crate::format::{Scale, count, num, percent};
use crate::results::{Results, Table1Row};
use crate::triangulation::{Breakdown, breakdown, pairs, triangulate};
use crate::{ReportError, methods};
use healthgap_decompose::{AnalysisResult, MethodSpec};

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
    for f in view
        .hospitals
        .iter_mut()
        .chain(&mut view.sensitivity_figures)
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

fn waterfall(
    input: &ReportInput,
    a: &AnalysisResult,
    b: &Breakdown,
) -> Result<Figure, ReportError> {
    let (label, scale) = input.outcome(&a.outcome);
    let f = scale.factor;
    let steps: Vec<Step> = b
        .parts
        .iter()
        .map(|p| {
            (
                p.label.clone(),
                p.estimate * f,
                p.ci.map(|(l, h)| (l * f, h * f)),
                input.block_colour(p.factor.as_deref()),
            )
        })
        .chain(std::iter::once((
            b.rest.label.clone(),
            b.rest.estimate * f,
            b.rest.ci.map(|(l, h)| (l * f, h * f)),
            None,
        )))
        .collect();
    let caption = format!(
        "{} — {}: {} vs {}, {} {} (this analysis's {} interval{}; Findings shows the crude \
         gap's)",
        a.id,
        label,
        a.comparison,
        a.reference,
        b.total.label,
        scale.with_ci(b.total.estimate, b.total.ci, a.inference.level),
        a.inference.method,
        if a.inference.method == "bootstrap" {
            format!(", {}", a.inference.interval)
        } else {
            String::new()
        }
    );
    let svg = figures::waterfall(
        &format!("{}: {} vs {}", a.id, a.comparison, a.reference),
        &input.x_label(&a.outcome),
        &steps,
        (
            &b.total.label,
            b.total.estimate * f,
            b.total.ci.map(|(l, h)| (l * f, h * f)),
        ),
    )?;
    Ok(Figure {
        id: slug(&["waterfall", &a.id, &a.outcome, &a.comparison]),
        caption,
        svg,
    })
}

/// A Table 1 from its (suppressed) JSON rows.
fn table1_table(input: &ReportInput, rows: &[Table1Row], note: String) -> Table {
    let mut head = vec!["variable".to_string(), "level".to_string()];
    head.extend(input.group_labels.iter().cloned());
    // One SMD per comparison group, against the reference.
    head.extend(
        input
            .group_labels
            .iter()
            .skip(1)
            .map(|l| format!("SMD {l}")),
    );
    Table {
        rows: rows
            .iter()
            .map(|t| {
                let mut cells = vec![t.variable.clone(), t.level.clone().unwrap_or_default()];
                cells.extend(t.groups.iter().map(|c| c.text.clone()));
                cells.extend(t.groups.iter().skip(1).map(|c| num(c.smd)));
                cells
            })
            .collect(),
        head,
        numeric_from: 2,
        note: Some(note),
    }
}

/// The findings figure of one outcome and comparison: every method's share
/// of its own total per factor block, side by side (bars, with the share's
/// own interval), coloured by block.
fn shares_figure(
    input: &ReportInput,
    t: &crate::triangulation::Triangulation,
    title: &str,
) -> Result<Option<Figure>, ReportError> {
    let mut rows = Vec::new();
    for (block, cells) in &t.rows {
        for ((id, _), cell) in t.columns.iter().zip(cells) {
            let Some(p) = cell else { continue };
            rows.push(figures::Row {
                label: format!("{block} · {id}"),
                bar: Some((0.0, 100.0 * p.estimate)),
                point: None,
                ci: p.ci.map(|(lo, hi)| (100.0 * lo, 100.0 * hi)),
                // What no block accounts for is grey, as in the waterfalls.
                colour: input
                    .factors
                    .iter()
                    .any(|(b, _)| b == block)
                    .then(|| input.block_colour(Some(block)))
                    .flatten(),
            });
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let svg = figures::rows(title, "share of the method's own total (%)", &rows)?;
    Ok(Some(Figure {
        id: slug(&["shares", &t.outcome, &t.comparison]),
        caption: format!(
            "{title}: each method's share of its own total by factor block, with the share's \
             interval (the table above gives the numbers; † there marks unstable shares)"
        ),
        svg,
    }))
}

/// What a method holds fixed or goes through, for the triangulation header.
fn column_note(a: Option<&AnalysisResult>) -> String {
    a.map(|a| a.spec.spec().condition()).unwrap_or_default()
}

fn triangulation_table(
    t: &crate::triangulation::Triangulation,
    analyses: &[&AnalysisResult],
) -> Table {
    let mut head = vec!["factor block".to_string()];
    // A method whose total's interval covers 0 gives unstable shares.
    let mut unstable = vec![false; t.columns.len()];
    head.extend(t.columns.iter().enumerate().map(|(c, (id, m))| {
        let a = analyses.iter().find(|a| &a.id == id).copied();
        unstable[c] = a.is_some_and(crate::triangulation::shares_unstable);
        let name = if id == m {
            id.clone()
        } else {
            format!("{id} ({m})")
        };
        format!(
            "{name}{}{}",
            column_note(a),
            if unstable[c] { " †" } else { "" }
        )
    }));
    let rows = t
        .rows
        .iter()
        .map(|(block, cells)| {
            let mut r = vec![block.clone()];
            r.extend(cells.iter().map(|c| match c {
                None => "—".into(),
                Some(p) => match p.ci {
                    Some((lo, hi)) => format!(
                        "{} ({} to {})",
                        percent(Some(p.estimate)),
                        percent(Some(lo)),
                        percent(Some(hi))
                    ),
                    None => percent(Some(p.estimate)),
                },
            }));
            r
        })
        .collect();
    Table {
        head,
        rows,
        numeric_from: 1,
        note: Some(format!(
            "Each cell is the share of the method's own total (Oaxaca–Blinder: the gap; Gelbach: \
             the base-model group coefficient; disparity reduction: the initial disparity, Shapley \
             shares; hospital: the gap, between hospitals; mediation: the total effect, through \
             the mediator). Blocks are not the same across methods: covariates a method holds \
             fixed (Gelbach's base, disparity reduction's allowable) are attributed by \
             Oaxaca–Blinder only. The interval is the share's own (the ratio's delta method or \
             bootstrap, with the total's uncertainty and its covariance with the part); a share \
             whose total's interval includes 0 has none.{}",
            if unstable.iter().any(|u| *u) {
                " † The method's total has an interval that includes 0, or none (withheld): its \
                 shares are unstable and can exceed 100% or change sign."
            } else {
                ""
            }
        )),
    }
}

fn estimates_table(a: &AnalysisResult) -> Table {
    Table {
        head: [
            "quantity", "factor", "term", "estimate", "SE", "CI", "p", "SE by",
        ]
        .map(String::from)
        .to_vec(),
        rows: a
            .estimates
            .iter()
            .map(|e| {
                vec![
                    e.quantity.clone(),
                    e.factor.clone().unwrap_or_default(),
                    e.term.clone().unwrap_or_default(),
                    num(Some(e.estimate)),
                    num(e.se),
                    ci_text(e.ci_low, e.ci_high, 1.0),
                    num(e.p_value),
                    e.se_method.as_str().to_string(),
                ]
            })
            .collect(),
        numeric_from: 3,
        note: Some(format!(
            "Estimates in the outcome's own units (proportions for binary outcomes).{}",
            if a.inference.method == "bootstrap" {
                " p-values use the normal approximation with the bootstrap SE, so near 0.05 they \
                 can disagree with the percentile interval."
            } else {
                ""
            }
        )),
    }
}

/// The complete cases of an analysis: per step, each group's excluded and
/// remaining rows (already suppressed).
fn attrition_table(a: &AnalysisResult) -> Option<Table> {
    if a.attrition.is_empty() {
        return None;
    }
    let mut groups: Vec<&str> = Vec::new();
    let mut steps: Vec<&str> = Vec::new();
    for r in &a.attrition {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
        if !steps.contains(&r.step.as_str()) {
            steps.push(&r.step);
        }
    }
    let mut head = vec!["step".to_string()];
    for g in &groups {
        head.push(format!("{g}: excluded"));
        head.push(format!("{g}: remaining"));
    }
    let rows = steps
        .iter()
        .map(|s| {
            let mut row = vec![(*s).to_string()];
            for g in &groups {
                let cell = a.attrition.iter().find(|r| r.step == *s && r.group == *g);
                row.push(cell.map_or(String::new(), |r| {
                    if r.step == "cohort" {
                        String::new()
                    } else {
                        r.text[0].clone()
                    }
                }));
                row.push(cell.map_or(String::new(), |r| r.text[1].clone()));
            }
            row
        })
        .collect();
    Some(Table {
        head,
        rows,
        numeric_from: 1,
        note: Some(
            "This analysis uses the complete cases of its own outcome and covariates: each step \
             excludes the rows missing that variable (and complete in the steps above). Table 1 \
             describes the cohort before these steps."
                .into(),
        ),
    })
}

/// The covariate balance of an analysis's density-ratio weights.
fn balance_table(a: &AnalysisResult) -> Option<Table> {
    (!a.balance.is_empty()).then(|| Table {
        head: ["intervened targets", "column", "SMD before", "SMD after"]
            .map(String::from)
            .to_vec(),
        rows: a
            .balance
            .iter()
            .map(|b| {
                vec![
                    b.targets.clone(),
                    b.column.clone(),
                    format!("{:.3}", b.smd_before),
                    format!(
                        "{:.3}{}",
                        b.smd_after,
                        if b.smd_after.abs() > 0.1 { " †" } else { "" }
                    ),
                ]
            })
            .collect(),
        numeric_from: 2,
        note: Some(
            "Covariate balance of the density-ratio weights: the standardized difference of the \
             comparison patients' mean of each column from the mean under the intervention, \
             (m − m_I)/√((s² + s²_I)/2), before and after weighting (Austin 2009). † |SMD| > 0.1 \
             after weighting: the weights do not reproduce the intervened distribution."
                .into(),
        ),
    })
}

/// The detailed terms of a decomposition: (quantity, label).
fn forest(input: &ReportInput, a: &AnalysisResult) -> Result<Option<Figure>, ReportError> {
    let Some(quantity) = a.spec.spec().detailed_quantity() else {
        return Ok(None);
    };
    let (_, scale) = input.outcome(&a.outcome);
    let f = scale.factor;
    const MAX_TERMS: usize = 60;
    let terms: Vec<Step> = a
        .estimates
        .iter()
        .filter(|e| e.quantity == quantity && e.term.is_some())
        .take(MAX_TERMS)
        .map(|e| {
            (
                e.term.clone().unwrap_or_default(),
                e.estimate * f,
                e.ci_low.zip(e.ci_high).map(|(l, h)| (l * f, h * f)),
                input.block_colour(e.factor.as_deref()),
            )
        })
        .collect();
    if terms.is_empty() {
        return Ok(None);
    }
    let total = a
        .estimates
        .iter()
        .filter(|e| e.quantity == quantity && e.term.is_some())
        .count();
    let svg = figures::forest(
        &format!(
            "{} by term: {} vs {}",
            quantity.replace('_', " "),
            a.comparison,
            a.reference
        ),
        &input.x_label(&a.outcome),
        &terms,
    )?;
    Ok(Some(Figure {
        id: slug(&["forest", &a.id, &a.outcome, &a.comparison]),
        caption: format!(
            "{}: {} per design column, coloured by factor block{}",
            a.id,
            quantity.replace('_', " "),
            if total > MAX_TERMS {
                format!(" (the first {MAX_TERMS} of {total} terms)")
            } else {
                String::new()
            }
        ),
        svg,
    }))
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

fn hospital_figures(
    input: &ReportInput,
    a: &AnalysisResult,
    caterpillar: bool,
) -> Result<Vec<Figure>, ReportError> {
    let (label, scale) = input.outcome(&a.outcome);
    let f = scale.factor;
    let mut out = Vec::new();
    let rates: Vec<(f64, Option<(f64, f64)>)> = a
        .hospitals
        .iter()
        .filter_map(|h| {
            Some((
                h.risk_standardized? * f,
                h.rs_low.zip(h.rs_high).map(|(l, h)| (l * f, h * f)),
            ))
        })
        .collect();
    if caterpillar && rates.len() >= 10 {
        out.push(Figure {
            id: slug(&["caterpillar", &a.id, &a.outcome]),
            caption: format!(
                "{}: risk-standardized {} by hospital with {:.0}% intervals ({} of {} hospitals shown; \
                 the rest are suppressed below the minimum cell size)",
                a.id,
                label,
                100.0 * a.inference.level,
                rates.len(),
                a.hospitals.len()
            ),
            svg: figures::caterpillar(
                &format!("Risk-standardized {label}"),
                if f == 100.0 { "percent" } else { "outcome units" },
                &rates,
            )?,
        });
    }
    let c = curve(a, "concentration_curve");
    let r = curve(a, "concentration_curve_reference");
    if !c.is_empty() {
        let with_origin = |mut v: Vec<(f64, f64)>| {
            v.insert(0, (0.0, 0.0));
            v
        };
        out.push(Figure {
            id: slug(&["concentration", &a.id, &a.outcome, &a.comparison]),
            caption: format!(
                "{}: cumulative share of each group's patients at hospitals ranked by {} volume \
                 (the diagonal is an even spread)",
                a.id, a.comparison
            ),
            svg: figures::curves(
                &format!("Concentration of {} patients", a.comparison),
                "share of hospitals (ranked by comparison-group volume)",
                "share of the group's patients",
                &[
                    (a.comparison.clone(), with_origin(c)),
                    (a.reference.clone(), with_origin(r)),
                ],
                true,
                false,
            )?,
        });
    }
    Ok(out)
}

fn rho_figure(input: &ReportInput, a: &AnalysisResult) -> Result<Option<Figure>, ReportError> {
    let points = curve(a, "indirect_effect_at_rho");
    if points.is_empty() {
        return Ok(None);
    }
    let (_, scale) = input.outcome(&a.outcome);
    let zero = a
        .get("rho_at_zero_indirect_effect", None, None)
        .map(|e| {
            format!(
                "; the indirect effect is zero at ρ = {}",
                num(Some(e.estimate))
            )
        })
        .unwrap_or_default();
    Ok(Some(Figure {
        id: slug(&["rho", &a.id, &a.outcome, &a.comparison]),
        caption: format!(
            "{}: indirect effect of {} vs {} under a correlation ρ between the mediator's and the \
             outcome's errors{zero}{}",
            a.id,
            a.comparison,
            a.reference,
            if matches!(&a.spec, MethodSpec::Mediation(m) if m.interaction) {
                ". The curve comes from models without the exposure–mediator interaction, so at \
                 ρ = 0 it can differ from the reported indirect effect"
            } else {
                ""
            }
        ),
        svg: figures::curves(
            &format!("ρ-sensitivity: {} vs {}", a.comparison, a.reference),
            "ρ",
            &input
                .x_label(&a.outcome)
                .replace("difference in", "indirect effect on"),
            &[(
                "indirect effect".into(),
                points.iter().map(|(r, v)| (*r, v * scale.factor)).collect(),
            )],
            false,
            true,
        )?,
    }))
}

fn inference_text(a: &AnalysisResult) -> String {
    let inf = &a.inference;
    let reps = inf.replicates.map_or(String::new(), |r| {
        format!(
            " ({} of {r} replicates succeeded)",
            inf.replicates_ok.unwrap_or(0)
        )
    });
    let cluster = inf
        .cluster
        .as_ref()
        .map_or(String::new(), |c| format!(", clustered by {c}"));
    format!(
        "{}{reps}{cluster}, {} intervals at {:.0}%",
        inf.method,
        inf.interval,
        100.0 * inf.level
    )
}

/// Builds the report's content.
pub fn build(input: &ReportInput) -> Result<ReportView, ReportError> {
    let r = input.results;
    let m = input.min_cell;
    let mut provenance = vec![
        ("study".to_string(), r.study.name.clone()),
        ("tool".into(), format!("{} {}", r.tool.name, r.tool.version)),
        ("generated".into(), input.generated.clone()),
        ("seed".into(), r.study.seed.to_string()),
        ("config sha256".into(), r.study.config_sha256.clone()),
        (
            "data source".into(),
            match r.data.source.as_str() {
                "path" => "a flat extract (CSV or Parquet)".into(),
                "omop" => "an OMOP CDM v5.4 folder".into(),
                "synthetic" => "the synthetic generator (in memory)".into(),
                other => other.to_string(),
            },
        ),
    ];
    for f in &r.data.files {
        provenance.push((
            format!("data file {}", f.path),
            format!("sha256 {}", f.sha256),
        ));
    }
    if r.data.files.is_empty() {
        provenance.push((
            "data files".into(),
            "none: the cohort was generated in memory from the config's seed".into(),
        ));
    }
    let attrition = r
        .cohort
        .attrition
        .iter()
        .map(|a| (a.step.clone(), a.text[0].clone(), a.text[1].clone()))
        .collect();
    let groups = Table {
        head: vec!["group".into(), "n".into()],
        rows: r
            .cohort
            .groups
            .iter()
            .map(|g| vec![g.label.clone(), count(g.n, m)])
            .collect(),
        numeric_from: 1,
        note: None,
    };
    let legend = format!(
        "Mean (SD) or n (%) of the non-missing values; SMD: standardized mean difference of \
         each comparison group against the reference (none beside a suppressed cell); <{m}: a \
         count below the minimum cell size; suppressed: hidden so that such a count cannot be \
         recovered."
    );
    let table1 = table1_table(
        input,
        &r.cohort.table1,
        format!(
            "The cohort after the filters, before any analysis's complete-case step (each \
             analysis takes the complete cases of its own variables; its sample per group is in \
             its attrition table under Method details).{}{legend}",
            if r.cohort.table1_complete.is_some() {
                " The next table describes the complete cases of every variable. "
            } else {
                " No value is missing: every analysis uses these rows. "
            }
        ),
    );
    let table1_complete = r.cohort.table1_complete.as_ref().map(|rows| {
        table1_table(
            input,
            rows,
            format!(
                "The complete cases of every outcome and covariate the config uses: the sample \
                 of an analysis that uses them all (analyses with fewer variables keep more \
                 rows). {legend}"
            ),
        )
    });
    let tables = triangulate(&r.analyses, input.factors);
    let mut pair_views = Vec::new();
    for (outcome, reference, comparison) in pairs(&r.analyses) {
        let (label, scale) = input.outcome(&outcome);
        let here: Vec<&AnalysisResult> = r
            .analyses
            .iter()
            .filter(|a| {
                a.outcome == outcome && a.reference == reference && a.comparison == comparison
            })
            .collect();
        let gap = here
            .iter()
            .find(|a| matches!(a.spec, MethodSpec::Crude(_)))
            .and_then(|a| {
                a.get("gap", None, None).map(|g| {
                    format!(
                        "{} (crude; {} interval{})",
                        scale.with_ci(g.estimate, g.ci_low.zip(g.ci_high), a.inference.level),
                        a.inference.interval,
                        a.inference
                            .cluster
                            .as_ref()
                            .map_or(String::new(), |c| format!(", clustered by {c}"))
                    )
                })
            });
        let found = tables.iter().find(|t| {
            t.outcome == outcome && t.reference == reference && t.comparison == comparison
        });
        let triangulation = found.map(|t| triangulation_table(t, &here));
        let figs: Vec<Figure> = match found {
            Some(t) => shares_figure(input, t, &format!("{label}: {comparison} vs {reference}"))?
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        let samples_note = here.iter().any(|a| !a.attrition.is_empty()).then(|| {
            "The samples differ: each analysis uses the complete cases of its own variables, so \
             the gap above is the crude analysis's and each method's shares are of its own total \
             on its own sample (each analysis's attrition is under Method details)."
                .to_string()
        });
        pair_views.push(PairView {
            title: format!("{label}: {comparison} vs {reference}"),
            anchor: slug(&["pair", &outcome, &comparison]),
            gap,
            samples_note,
            figures: figs,
            triangulation,
        });
    }
    let mut analyses = Vec::new();
    let mut hospitals = Vec::new();
    let mut hospital_notes = Vec::new();
    let mut sensitivity_rows = Vec::new();
    let mut sensitivity_figures = Vec::new();
    let mut warnings = Vec::new();
    for w in &r.warnings {
        warnings.push(("study".to_string(), w.clone()));
    }
    for a in &r.analyses {
        let (label, _) = input.outcome(&a.outcome);
        let mut figs = Vec::new();
        if let Some(b) = breakdown(a, input.factors) {
            figs.push(waterfall(input, a, &b)?);
        }
        if let Some(f) = forest(input, a)? {
            figs.push(f);
        }
        if matches!(a.spec, MethodSpec::Hospital(_)) {
            // Profiles use every patient, so the caterpillar is the same for each
            // comparison group: draw it once per analysis and outcome.
            let first = r
                .analyses
                .iter()
                .find(|b| b.id == a.id && b.outcome == a.outcome)
                .is_some_and(|b| std::ptr::eq(a, b));
            if first {
                let shown = a
                    .hospitals
                    .iter()
                    .filter(|h| h.risk_standardized.is_some())
                    .count();
                if shown < 10 {
                    hospital_notes.push(format!(
                        "{}: no caterpillar plot of {} — only {shown} of {} hospitals have rates \
                         shown (a rate needs at least {} events and {} non-events)",
                        a.id,
                        a.outcome,
                        a.hospitals.len(),
                        input.min_cell,
                        input.min_cell
                    ));
                }
            }
            hospitals.extend(hospital_figures(input, a, first)?);
        }
        if let Some(f) = rho_figure(input, a)? {
            sensitivity_figures.push(f);
        }
        for e in a
            .estimates
            .iter()
            .filter(|e| e.quantity.starts_with("e_value"))
        {
            sensitivity_rows.push(vec![
                a.id.clone(),
                format!("{label}: {} vs {}", a.comparison, a.reference),
                e.quantity.replace('_', " "),
                e.factor.clone().unwrap_or_else(|| {
                    if matches!(a.spec, MethodSpec::DisparityReduction(_)) {
                        "all targets".into()
                    } else {
                        String::new()
                    }
                }),
                num(Some(e.estimate)),
                num(e.ci_low),
            ]);
        }
        if let Some(e) = a.get("rho_at_zero_indirect_effect", None, None) {
            sensitivity_rows.push(vec![
                a.id.clone(),
                format!("{label}: {} vs {}", a.comparison, a.reference),
                "ρ at which the indirect effect is zero".into(),
                String::new(),
                num(Some(e.estimate)),
                "—".into(),
            ]);
        }
        let where_ = format!(
            "{} · {} · {} vs {}",
            a.id, a.outcome, a.comparison, a.reference
        );
        for w in &a.warnings {
            warnings.push((where_.clone(), w.clone()));
        }
        analyses.push(AnalysisView {
            title: format!(
                "{}: {label}, {} vs {}",
                if a.id == a.spec.name() {
                    a.id.clone()
                } else {
                    format!("{} ({})", a.id, a.spec.name())
                },
                a.comparison,
                a.reference
            ),
            index: analyses.len(),
            anchor: slug(&["analysis", &a.id, &a.outcome, &a.comparison]),
            meta: format!("n = {} · inference: {}", count(a.n, m), inference_text(a)),
            table: estimates_table(a),
            balance: balance_table(a),
            attrition: attrition_table(a),
            figures: figs,
            warnings: a.warnings.clone(),
        });
    }
    let models = r
        .analyses
        .iter()
        .map(|a| {
            let title = format!(
                "{} · {} · {} vs {}",
                a.id, a.outcome, a.comparison, a.reference
            );
            let views = a
                .models
                .iter()
                .map(|md| ModelView {
                    title: md.label.clone(),
                    meta: format!(
                        "{} · n = {} · {}{} · {} · {} iteration(s){}",
                        md.family,
                        count(md.n, m),
                        md.clusters
                            .map_or(String::new(), |c| format!("{c} clusters · ")),
                        md.vcov,
                        if md.converged {
                            "converged"
                        } else {
                            "NOT converged"
                        },
                        md.iterations,
                        if md.absorbed.is_empty() {
                            String::new()
                        } else {
                            format!(" · absorbed: {}", md.absorbed.join(", "))
                        }
                    ),
                    table: Table {
                        head: ["term", "estimate", "SE", "CI", "p"]
                            .map(String::from)
                            .to_vec(),
                        rows: md
                            .coefficients
                            .iter()
                            .map(|c| {
                                vec![
                                    c.term.clone(),
                                    num(Some(c.estimate)),
                                    num(Some(c.se)),
                                    ci_text(Some(c.ci_low), Some(c.ci_high), 1.0),
                                    num(Some(c.p_value)),
                                ]
                            })
                            .collect(),
                        numeric_from: 1,
                        note: None,
                    },
                })
                .collect();
            (title, views)
        })
        .filter(|(_, v): &(String, Vec<ModelView>)| !v.is_empty())
        .collect();
    let (methods, references) = methods::paragraphs(&r.analyses, input.factors);
    let mut view = ReportView {
        study: r.study.name.clone(),
        provenance,
        attrition,
        rows_read: r.data.rows_read.to_string(),
        groups,
        table1,
        table1_complete,
        pairs: pair_views,
        analyses,
                hospitals,
        hospital_notes,

        sensitivity: Table {
            head: ["analysis", "outcome and groups", "quantity", "target", "E-value", "E-value of the CI limit"]
                .map(String::from)
                .to_vec(),
            rows: sensitivity_rows,
            numeric_from: 4,
            note: Some(
                "E-value (VanderWeele & Ding 2017): the minimum strength of association, on the \
                 risk-ratio scale, that an unmeasured confounder would need with both the group and \
                 the outcome to explain the estimate away."
                    .into(),
            ),
        },
        sensitivity_figures,
        warnings,
        methods,
        references,
        models,
    };
    make_unique(&mut view);
    Ok(view)
}
