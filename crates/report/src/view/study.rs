//! The report's sections 2, "Study and data" (provenance and group sizes),
//! and 3, "Attrition" (the cohort's flow through the filters).

use super::{ReportInput, Table};
use crate::format::count;
use crate::results::Results;

/// The provenance rows (label, value): study, tool, seed, config and data.
pub(super) fn provenance(input: &ReportInput) -> Vec<(String, String)> {
    let r = input.results;
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
                "warehouse" => "a warehouse table".into(),
                other => other.to_string(),
            },
        ),
    ];
    if let Some(w) = &r.data.warehouse {
        provenance.push(("warehouse".into(), format!("{} ({})", w.server, w.engine)));
        provenance.push((
            "patient rows exported".into(),
            if w.row_export {
                "yes: the study's columns were pulled (allow_row_export = true)".into()
            } else {
                "no: only aggregates left the warehouse".into()
            },
        ));
        for (k, q) in w.queries.iter().enumerate() {
            provenance.push((format!("query {}", k + 1), q.clone()));
        }
        for site in &w.sites {
            provenance.push((
                format!("site {}", site.name),
                format!(
                    "{} ({}); {}",
                    site.server,
                    site.engine,
                    site_counts(site, input.min_cell)
                ),
            ));
            for (k, q) in site.queries.iter().enumerate() {
                provenance.push((format!("site {} query {}", site.name, k + 1), q.clone()));
            }
        }
    }
    for f in &r.data.files {
        provenance.push((
            format!("data file {}", f.path),
            format!("sha256 {}", f.sha256),
        ));
    }
    if r.data.files.is_empty() && r.data.warehouse.is_none() {
        provenance.push((
            "data files".into(),
            "none: the cohort was generated in memory from the config's seed".into(),
        ));
    }
    provenance
}

/// A federated site's counts as text, rows read and rows per group (already
/// suppressed: a null count reads `<min_cell`).
pub fn site_counts(site: &crate::results::SiteInfo, min_cell: usize) -> String {
    let groups: Vec<String> = site
        .groups
        .iter()
        .map(|g| format!("{} {}", g.label, count(g.n, min_cell)))
        .collect();
    format!(
        "rows read {}; analysed: {}",
        count(site.rows_read, min_cell),
        groups.join(", ")
    )
}

/// The group sizes (already suppressed).
pub(super) fn group_sizes(input: &ReportInput) -> Table {
    let r = input.results;
    let m = input.min_cell;
    Table {
        head: vec!["group".into(), "n".into()],
        rows: r
            .cohort
            .groups
            .iter()
            .map(|g| vec![g.label.clone(), count(g.n, m)])
            .collect(),
        numeric_from: 1,
        note: None,
    }
}

/// The attrition flow: (step, excluded, remaining).
pub(super) fn attrition_flow(r: &Results) -> Vec<(String, String, String)> {
    r.cohort
        .attrition
        .iter()
        .map(|a| (a.step.clone(), a.text[0].clone(), a.text[1].clone()))
        .collect()
}
