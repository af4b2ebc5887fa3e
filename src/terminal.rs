//! What `run` prints on the terminal after the report is written: the
//! findings (gap, shares with their intervals, † where unstable), every
//! warning grouped by analysis, and the results whose intervals were
//! withheld.

use healthgap_decompose::{AnalysisResult, MethodSpec};
use healthgap_report::ReportInput;
use healthgap_report::results::Results;

/// Prints each withheld result with its reason; returns how many.
pub fn print_withheld(results: &Results) -> usize {
    let withheld: Vec<&AnalysisResult> = results
        .analyses
        .iter()
        .filter(|a| a.inference.withheld.is_some())
        .collect();
    for a in &withheld {
        eprintln!(
            "withheld: {} ({}, {} vs {}): {}",
            a.id,
            a.outcome,
            a.comparison,
            a.reference,
            a.inference.withheld.as_deref().unwrap_or_default()
        );
    }
    withheld.len()
}

/// Every warning on the terminal, counted and grouped: the study's, then each
/// analysis's, a text given once with the outcomes and comparisons it
/// concerns.
pub fn print_warnings(results: &Results) {
    let mut grouped: Vec<(String, String, Vec<String>)> = results
        .warnings
        .iter()
        .map(|w| ("study".to_string(), w.clone(), Vec::new()))
        .collect();
    for a in &results.analyses {
        let place = format!("{} {} vs {}", a.outcome, a.comparison, a.reference);
        for w in &a.warnings {
            match grouped.iter_mut().find(|g| g.0 == a.id && &g.1 == w) {
                Some(g) => g.2.push(place.clone()),
                None => grouped.push((a.id.clone(), w.clone(), vec![place.clone()])),
            }
        }
    }
    if grouped.is_empty() {
        return;
    }
    eprintln!("\n{} warning(s) (also in the report):", grouped.len());
    for (id, text, places) in &grouped {
        if places.is_empty() {
            eprintln!("  {id}: {text}");
        } else {
            eprintln!("  {id} [{}]: {text}", places.join("; "));
        }
    }
}

/// The one-screen summary: per outcome and comparison, the crude gap with its
/// CI, then for each decomposition the share of its total attributed to each
/// factor block (the triangulation table, in percent).
pub fn print_summary(results: &Results, input: &ReportInput) {
    use healthgap_report::format::{Scale, percent};
    use healthgap_report::triangulation::{pairs, triangulate};
    outln!("{}", results.study.name);
    let tables = triangulate(&results.analyses, input.factors);
    for (outcome, reference, comparison) in pairs(&results.analyses) {
        let binary = input.outcomes.iter().any(|o| o.name == outcome && o.binary);
        let scale = Scale::of(binary);
        let gap = results
            .analyses
            .iter()
            .find(|a| {
                matches!(a.spec, MethodSpec::Crude(_))
                    && a.outcome == outcome
                    && a.comparison == comparison
                    && a.reference == reference
            })
            .and_then(|a| {
                a.get("gap", None, None).map(|g| {
                    format!(
                        "gap {}",
                        scale.with_ci(g.estimate, g.ci_low.zip(g.ci_high), a.inference.level)
                    )
                })
            })
            .unwrap_or_default();
        outln!("\n{outcome}, {comparison} vs {reference}: {gap}");
        let Some(t) = tables.iter().find(|t| {
            t.outcome == outcome && t.comparison == comparison && t.reference == reference
        }) else {
            continue;
        };
        // Methods as rows, factor blocks as columns (fits 80 columns).
        let width = t
            .columns
            .iter()
            .map(|c| c.0.chars().count() + 2)
            .max()
            .unwrap_or(8)
            .max(14);
        let heads: Vec<String> = t
            .rows
            .iter()
            .map(|r| {
                if r.0 == "not attributed to a block" {
                    "rest".to_string()
                } else {
                    r.0.clone()
                }
            })
            .collect();
        // Each cell: the share with its own interval, `32% (21 to 52)`.
        let cell = |p: &Option<healthgap_report::triangulation::Part>| {
            p.as_ref().map_or("—".to_string(), |p| match p.ci {
                Some((lo, hi)) => format!(
                    "{} ({} to {})",
                    percent(Some(p.estimate)),
                    percent(Some(lo)).trim_end_matches('%'),
                    percent(Some(hi)).trim_end_matches('%')
                ),
                None => percent(Some(p.estimate)),
            })
        };
        let widths: Vec<usize> = heads
            .iter()
            .zip(&t.rows)
            .map(|(h, (_, cells))| {
                cells
                    .iter()
                    .map(|p| cell(p).chars().count())
                    .chain([h.chars().count(), 6])
                    .max()
                    .unwrap_or(6)
            })
            .collect();
        out!("  {:<width$}", "share of total");
        for (h, w) in heads.iter().zip(&widths) {
            out!(" {h:>w$}");
        }
        outln!();
        let mut dagger = false;
        for (c, (id, _)) in t.columns.iter().enumerate() {
            let unstable = results
                .analyses
                .iter()
                .find(|a| {
                    &a.id == id
                        && a.outcome == outcome
                        && a.comparison == comparison
                        && a.reference == reference
                })
                .is_some_and(healthgap_report::triangulation::shares_unstable);
            dagger |= unstable;
            let label = if unstable {
                format!("{id} †")
            } else {
                id.clone()
            };
            out!("  {label:<width$}");
            for (w, (_, cells)) in widths.iter().zip(&t.rows) {
                out!(" {:>w$}", cell(&cells[c]));
            }
            outln!();
        }
        if dagger {
            outln!(
                "  † the method's total has an interval that includes 0, or none (withheld): its \
                 shares are unstable"
            );
        }
    }
    let mut totals: Vec<String> = Vec::new();
    for a in &results.analyses {
        let spec = a.spec.spec();
        if let Some(b) = spec.breakdown() {
            let total = format!("{}: the {}", spec.title(), b.total.0);
            if !totals.contains(&total) {
                totals.push(total);
            }
        }
    }
    if !totals.is_empty() {
        outln!(
            "\nShares of each method's own total ({}); rest: what no block accounts for.\n\
             Intervals, the triangulation with its caveats and every estimate are in the report.",
            totals.join("; ")
        );
    }
}
