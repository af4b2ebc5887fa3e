//! The report's section 1, "Findings": per outcome and comparison, the crude
//! gap, the triangulation of the methods by factor block and its figure of
//! shares.

use super::{Figure, PairView, ReportInput, Table, slug};
use crate::ReportError;
use crate::figures;
use crate::format::percent;
use crate::triangulation::{pairs, triangulate};
use healthgap_decompose::{AnalysisResult, MethodSpec};

/// The Findings section: one view per outcome and comparison.
pub(super) fn pair_views(input: &ReportInput) -> Result<Vec<PairView>, ReportError> {
    let r = input.results;
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
    Ok(pair_views)
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
