//! Section 4's "Missing data and imputation" (when the study imputed): the
//! settings, the missingness of each imputed variable by group, the observed
//! against imputed distributions and the convergence traces. Counts and
//! bins are already suppressed in results.json's `imputation`.

use super::{Figure, ReportInput, Table, slug};
use crate::ReportError;
use crate::figures;
use crate::format::num;
use crate::results::ImputationSummary;

/// Imputations drawn in a trace figure (the legend stays readable).
const TRACED: usize = 5;

/// The section: a settings line, the missingness table and the figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImputationView {
    /// What was imputed, how, and how the results were pooled.
    pub settings: String,
    /// Missing cells by variable and group.
    pub missing: Table,
    /// Observed against imputed, and the traces.
    pub figures: Vec<Figure>,
}

/// The section's content, or None when nothing was imputed.
pub(super) fn view(input: &ReportInput) -> Result<Option<ImputationView>, ReportError> {
    let Some(s) = &input.results.imputation else {
        return Ok(None);
    };
    let mut figs = Vec::new();
    for v in &s.variables {
        let lines: Vec<figures::Line> = v
            .distributions
            .iter()
            .flat_map(|d| {
                let points = |shares: &[Option<f64>]| -> Vec<(f64, f64)> {
                    shares
                        .iter()
                        .enumerate()
                        .filter_map(|(k, s)| s.map(|s| (k as f64, s)))
                        .collect()
                };
                [
                    (format!("{} observed", d.group), points(&d.observed)),
                    (format!("{} imputed", d.group), points(&d.imputed)),
                ]
            })
            .filter(|(_, p)| !p.is_empty())
            .collect();
        if !lines.is_empty() {
            let bins = v
                .distributions
                .first()
                .map(|d| d.bins.join(", "))
                .unwrap_or_default();
            figs.push(Figure {
                id: slug(&["imputed", &v.name]),
                caption: format!(
                    "{}: share of observed and of imputed values per {} ({bins}), by group; bins \
                     with fewer than {} values are left out",
                    v.name,
                    if v.method == "pmm" || v.method == "norm" {
                        "bin (centres)"
                    } else {
                        "level"
                    },
                    input.min_cell
                ),
                svg: figures::curves(
                    &format!("{}: observed and imputed", v.name),
                    "bin",
                    "share",
                    &lines,
                    false,
                    false,
                )?,
            });
        }
        if !v.trace.is_empty() {
            let lines: Vec<figures::Line> = v
                .trace
                .iter()
                .take(TRACED)
                .enumerate()
                .map(|(l, t)| {
                    (
                        format!("imputation {}", l + 1),
                        t.iter()
                            .enumerate()
                            .map(|(i, y)| ((i + 1) as f64, *y))
                            .collect(),
                    )
                })
                .collect();
            figs.push(Figure {
                id: slug(&["trace", &v.name]),
                caption: format!(
                    "{}: mean of the imputed values{} after each iteration of the chained \
                     equations, for the first {} of {} imputations; lines that settle and mix show \
                     convergence",
                    v.name,
                    if v.method == "multinomial" {
                        " (share off the reference level)"
                    } else {
                        ""
                    },
                    TRACED.min(v.trace.len()),
                    s.m
                ),
                svg: figures::curves(
                    &format!("{}: convergence", v.name),
                    "iteration",
                    "mean of imputed values",
                    &lines,
                    false,
                    false,
                )?,
            });
        }
    }
    Ok(Some(ImputationView {
        settings: settings(s),
        missing: missing_table(s, input.min_cell),
        figures: figs,
    }))
}

fn settings(s: &ImputationSummary) -> String {
    format!(
        "Multiple imputation by chained equations: m = {} imputations, {} iterations, seed {}, {}; \
         the hospital entered as {}; analyses on the imputations: {} (pooled {}).",
        s.m,
        s.iterations,
        s.seed,
        if s.by_group {
            "within each group"
        } else {
            "all groups together (group as a predictor)"
        },
        match s.cluster.as_str() {
            "means" => "its patients' mean values",
            "fixed_effect" => "a fixed effect",
            _ => "nothing",
        },
        s.analyses.join(", "),
        match s.replicates {
            Some((b, k)) =>
                format!("by bootstrap-then-impute, {b} replicates imputed {k} times each"),
            None => "by Rubin's rules".into(),
        }
    )
}

fn missing_table(s: &ImputationSummary, min_cell: usize) -> Table {
    let groups: Vec<String> = s
        .variables
        .first()
        .map(|v| v.missing.iter().map(|g| g.group.clone()).collect())
        .unwrap_or_default();
    let mut head = vec!["variable".to_string(), "model".to_string()];
    head.extend(groups.iter().map(|g| format!("{g}: missing")));
    Table {
        head,
        rows: s
            .variables
            .iter()
            .map(|v| {
                let mut row = vec![v.name.clone(), v.method.clone()];
                row.extend(v.missing.iter().map(|g| match (g.missing, g.share) {
                    (Some(k), Some(share)) => format!("{k} ({:.1}%)", 100.0 * share),
                    _ => format!("<{min_cell} or all but <{min_cell}"),
                }));
                row
            })
            .collect(),
        numeric_from: 2,
        note: Some(format!(
            "Missing cells per group before imputation. Observed against imputed means by group: {}.",
            s.variables
                .iter()
                .flat_map(|v| v.distributions.iter().filter_map(move |d| {
                    d.means.map(|(o, i)| {
                        format!(
                            "{} {} {} vs {}",
                            v.name,
                            d.group,
                            num(Some(o)),
                            num(Some(i))
                        )
                    })
                }))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}
