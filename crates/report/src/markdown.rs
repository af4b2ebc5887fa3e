//! report.md: the study in Markdown — provenance, cohort, attrition, Table 1,
//! every analysis's estimates with their intervals, and every warning. Counts
//! are already suppressed in [`Results`]; every string from data or config is
//! escaped (`|`, `<`, `>`, `&`, `[`, `]`, line breaks), so that a label cannot
//! break a table, inject HTML or form a link in a Markdown renderer.

use std::fmt::Write as _;

use crate::results::Results;
use crate::view::{Figure, ReportView, Table};

/// Escapes text for a Markdown table cell or line.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('&', "\\&")
        .replace('<', "\\<")
        .replace('>', "\\>")
        .replace('|', "\\|")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(['\n', '\r'], " ")
}

fn count(n: Option<usize>, min_cell: usize) -> String {
    escape(&crate::format::count(n, min_cell))
}

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// Every figure of the report, for writing as `figures/<id>.svg` beside report.md.
pub fn figures(view: &ReportView) -> Vec<&Figure> {
    let mut out: Vec<&Figure> = Vec::new();
    for p in &view.pairs {
        out.extend(&p.figures);
    }
    for a in &view.analyses {
        out.extend(&a.figures);
    }
    out.extend(&view.hospitals);
    out.extend(&view.sensitivity_figures);
    out.extend(view.imputation.iter().flat_map(|i| &i.figures));
    out
}

fn figure_link(out: &mut String, f: &Figure) {
    let _ = writeln!(out, "\n![{}](figures/{}.svg)\n", escape(&f.caption), f.id);
}

fn table(out: &mut String, t: &Table) {
    out.push('\n');
    out.push_str(&row(&t.head.iter().map(|h| escape(h)).collect::<Vec<_>>()));
    out.push_str(&row(&(0..t.head.len())
        .map(|i| if i >= t.numeric_from { "---:" } else { "---" }.to_string())
        .collect::<Vec<_>>()));
    for r in &t.rows {
        out.push_str(&row(&r.iter().map(|c| escape(c)).collect::<Vec<_>>()));
    }
    if let Some(n) = &t.note {
        let _ = writeln!(out, "\n_{}_", escape(n));
    }
}

/// Table 1 (the cohort, its complete cases) and the missing data and
/// imputation diagnostics.
fn table1_sections(out: &mut String, view: &ReportView) {
    let _ = writeln!(out, "\n## Table 1");
    table(out, &view.table1);
    if let Some(t) = &view.table1_complete {
        let _ = writeln!(out, "\n### Table 1: complete cases of every variable");
        table(out, t);
    }
    if let Some(i) = &view.imputation {
        let _ = writeln!(
            out,
            "\n### Missing data and imputation\n\n{}",
            escape(&i.settings)
        );
        table(out, &i.missing);
        for f in &i.figures {
            figure_link(out, f);
        }
    }
}

/// Statements as fenced SQL blocks.
fn sql_blocks(out: &mut String, queries: &[String]) {
    for q in queries {
        let _ = writeln!(out, "```sql\n{}\n```", q.replace("```", "` ` `"));
    }
}

/// The "Data" section: the source, the files, and a warehouse's server and
/// statements (each federated site's with its suppressed counts).
fn data_section(out: &mut String, results: &Results, min_cell: usize) {
    let _ = writeln!(out, "\n## Data\n");
    let _ = writeln!(
        out,
        "Source: {} · rows read: {}\n",
        escape(&results.data.source),
        results.data.rows_read
    );
    for f in &results.data.files {
        let _ = writeln!(out, "- `{}` sha256 `{}`", escape(&f.path), f.sha256);
    }
    if let Some(w) = &results.data.warehouse {
        let _ = writeln!(
            out,
            "Warehouse: {} ({}); patient rows exported: {}
",
            escape(&w.server),
            escape(&w.engine),
            if w.row_export { "yes" } else { "no" }
        );
        sql_blocks(out, &w.queries);
        for site in &w.sites {
            let _ = writeln!(
                out,
                "\nSite {}: {} ({}); {}\n",
                escape(&site.name),
                escape(&site.server),
                escape(&site.engine),
                escape(&crate::view::site_counts(site, min_cell))
            );
            sql_blocks(out, &site.queries);
        }
    }
}

/// The whole report.
pub fn markdown(results: &Results, view: &ReportView, min_cell: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape(&results.study.name));
    let _ = writeln!(
        out,
        "healthgap {} · seed {} · config sha256 `{}`\n",
        escape(&results.tool.version),
        results.study.seed,
        results.study.config_sha256
    );
    let _ = writeln!(out, "## Findings");
    for p in &view.pairs {
        let _ = writeln!(out, "\n### {}\n", escape(&p.title));
        if let Some(g) = &p.gap {
            let _ = writeln!(out, "Gap: **{}**", escape(g));
        }
        if let Some(n) = &p.samples_note {
            let _ = writeln!(out, "\n{}", escape(n));
        }
        if let Some(t) = &p.triangulation {
            table(&mut out, t);
        }
        for f in &p.figures {
            figure_link(&mut out, f);
        }
    }
    data_section(&mut out, results, min_cell);
    let c = &results.cohort;
    let _ = writeln!(out, "\n## Cohort\n");
    let _ = writeln!(
        out,
        "Patients: {} · clusters: {}\n",
        count(c.n, min_cell),
        c.clusters.map_or("—".into(), |g| g.to_string())
    );
    table(&mut out, &view.groups);
    let _ = writeln!(out, "\n## Attrition\n");
    out.push_str(&row(&[
        "step".into(),
        "excluded".into(),
        "remaining".into(),
    ]));
    out.push_str(&row(&["---".into(), "---:".into(), "---:".into()]));
    for a in &c.attrition {
        out.push_str(&row(&[
            escape(&a.step),
            a.text[0].clone(),
            a.text[1].clone(),
        ]));
    }
    table1_sections(&mut out, view);
    let _ = writeln!(out, "\n## Analyses");
    for (i, a) in results.analyses.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n### {} ({}): {}, {} vs {}\n",
            escape(&a.id),
            escape(a.spec.name()),
            escape(&a.outcome),
            escape(&a.comparison),
            escape(&a.reference)
        );
        let inf = &a.inference;
        let _ = writeln!(
            out,
            "n = {} · inference: {}{} · {} interval at {:.0}%{}\n",
            count(a.n, min_cell),
            escape(&inf.method),
            inf.replicates.map_or(String::new(), |r| format!(
                " ({} of {r} replicates)",
                inf.replicates_ok.unwrap_or(0)
            )),
            escape(&inf.interval),
            100.0 * inf.level,
            inf.cluster
                .as_ref()
                .map_or(String::new(), |c| format!(" · clustered by {}", escape(c)))
        );
        if let Some(v) = view.analyses.iter().find(|v| v.index == i) {
            if let Some(t) = &v.attrition {
                table(&mut out, t);
            }
            table(&mut out, &v.table);
            if let Some(b) = &v.balance {
                table(&mut out, b);
            }
            for t in &v.learners {
                table(&mut out, t);
            }
            for f in &v.figures {
                figure_link(&mut out, f);
            }
        }
        if !a.warnings.is_empty() {
            let _ = writeln!(out, "\nWarnings:\n");
            for w in &a.warnings {
                let _ = writeln!(out, "- {}", escape(w));
            }
        }
    }
    if !view.hospitals.is_empty() || !view.hospital_notes.is_empty() {
        let _ = writeln!(out, "\n## Hospitals\n");
        for n in &view.hospital_notes {
            let _ = writeln!(out, "_{}_", escape(n));
        }
        for f in &view.hospitals {
            figure_link(&mut out, f);
        }
    }
    if !view.sensitivity.rows.is_empty() || !view.sensitivity_figures.is_empty() {
        let _ = writeln!(out, "\n## Sensitivity");
        if !view.sensitivity.rows.is_empty() {
            table(&mut out, &view.sensitivity);
        }
        for f in &view.sensitivity_figures {
            figure_link(&mut out, f);
        }
    }
    let _ = writeln!(out, "\n## Methods\n");
    for p in &view.methods {
        let _ = writeln!(out, "{}\n", escape(p));
    }
    let _ = writeln!(out, "References:\n");
    for (i, c) in view.references.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", i + 1, escape(c));
    }
    if !results.warnings.is_empty() {
        let _ = writeln!(out, "\n## Warnings\n");
        for w in &results.warnings {
            let _ = writeln!(out, "- {}", escape(w));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_html_and_table_breaks() {
        assert_eq!(
            escape("<script>alert(1)</script> | \"A&B\"\nx"),
            "\\<script\\>alert(1)\\</script\\> \\| \"A\\&B\" x"
        );
        assert_eq!(escape("[x](javascript:1)"), "\\[x\\](javascript:1)");
    }
}
