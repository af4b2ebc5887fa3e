//! `healthgap check` and `healthgap run`: config → plan → cohort → methods →
//! report, written atomically.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use healthgap_cohort::{Cohort, OutcomeKind};
use healthgap_decompose::crude::{CrudeInput, crude};
use healthgap_decompose::{AnalysisResult, InferenceInfo};
use healthgap_report::results::AttritionRow;
use healthgap_report::{
    CohortSummary, DataInfo, FileInfo, GroupCount, Results, StudyInfo, ToolInfo, csv, suppress,
};

use crate::config::{RawAnalysis, RawFormat};
use crate::output::StagedDir;
use crate::plan::{Plan, from_file};

/// Loads the plan's cohort, with a spinner on long loads.
fn load(plan: &Plan) -> Result<Cohort> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message("loading the cohort");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let cohort = healthgap_cohort::load(&plan.cohort)
        .with_context(|| format!("{}", plan.config_path.display()));
    spinner.finish_and_clear();
    cohort
}

/// The attrition table with small and revealing counts suppressed.
fn attrition_rows(cohort: &Cohort, min_cell: usize) -> Vec<AttritionRow> {
    let steps: Vec<(usize, usize)> = cohort
        .attrition
        .iter()
        .map(|a| (a.excluded, a.remaining))
        .collect();
    cohort
        .attrition
        .iter()
        .zip(suppress::attrition(&steps, min_cell))
        .map(|(a, (excluded, remaining))| AttritionRow {
            step: a.step.clone(),
            excluded,
            remaining,
        })
        .collect()
}

/// Prints the cohort summary (n per group, clusters, attrition), suppressed.
fn print_cohort(plan: &Plan, cohort: &Cohort) {
    let m = plan.min_cell;
    println!("{}", plan.study_name);
    println!("  data: {} ({} rows read)", cohort.source, cohort.rows_read);
    let show = |v: Option<usize>| v.map_or(format!("<{m}"), |n| n.to_string());
    for row in attrition_rows(cohort, m) {
        println!(
            "  {:<48} excluded {:>9}  remaining {:>9}",
            row.step,
            show(row.excluded),
            show(row.remaining)
        );
    }
    for (label, n) in cohort.group_labels.iter().zip(cohort.group_counts()) {
        println!("  group {label:<20} n = {}", suppress::text(n, m));
    }
    if let Some((name, _, g)) = &cohort.cluster {
        println!("  clusters: {g} ({name})");
    }
}

/// `healthgap check CONFIG`.
pub fn check(config: &Path) -> Result<()> {
    let plan = from_file(config)?;
    let cohort = load(&plan)?;
    print_cohort(&plan, &cohort);
    for (block, vars) in &plan.blocks {
        println!("  block {block:<16} {}", vars.join(", "));
    }
    for a in &plan.analyses {
        println!(
            "  analysis {:<20} {} on {}: {}",
            a.id,
            a.raw.method(),
            a.outcomes.join(", "),
            a.raw.options()
        );
    }
    let not_yet: Vec<&str> = plan
        .analyses
        .iter()
        .filter(|a| !implemented(&a.raw))
        .map(|a| a.id.as_str())
        .collect();
    if !not_yet.is_empty() {
        println!(
            "  note: not implemented in this version, `run` will skip: {}",
            not_yet.join(", ")
        );
    }
    println!("config OK: {} analyses", plan.analyses.len());
    Ok(())
}

fn implemented(a: &RawAnalysis) -> bool {
    matches!(a, RawAnalysis::Crude { .. })
}

/// Group codes for one comparison: 0 reference, 1 comparison k, 2 others.
fn pair_codes(cohort: &Cohort, k: usize) -> Vec<u32> {
    cohort
        .group
        .iter()
        .map(|&g| {
            if g == 0 {
                0
            } else if g as usize == k {
                1
            } else {
                2
            }
        })
        .collect()
}

fn run_crude(cohort: &Cohort, a: &crate::plan::AnalysisPlan) -> Result<Vec<AnalysisResult>> {
    let mut out = Vec::new();
    for outcome in &a.outcomes {
        let (spec, y) = cohort
            .outcome(outcome)
            .context("outcome missing from the cohort")?;
        for k in 1..cohort.group_labels.len() {
            let group = pair_codes(cohort, k);
            let cluster = cohort.cluster.as_ref().map(|(_, c, g)| (c.as_slice(), *g));
            let estimates = crude(&CrudeInput {
                y,
                group: &group,
                weights: cohort.weights.as_deref(),
                cluster,
                binary: spec.kind == OutcomeKind::Binary,
                level: a.inference.level,
            })?;
            out.push(AnalysisResult {
                id: a.id.clone(),
                method: "crude".into(),
                outcome: outcome.clone(),
                reference: cohort.group_labels[0].clone(),
                comparison: cohort.group_labels[k].clone(),
                n: group.iter().filter(|g| **g <= 1).count(),
                options: json!({"outcome_type": spec.kind, "weighted": cohort.weights.is_some(), "analysis": a.raw.options()}),
                inference: InferenceInfo {
                    method: "delta".into(),
                    replicates: None,
                    replicates_ok: None,
                    interval: "normal".into(),
                    level: a.inference.level,
                    cluster: cohort.cluster.as_ref().map(|(n, _, _)| n.clone()),
                },
                estimates,
                models: Vec::new(),
                warnings: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// Table 1 rows as JSON objects, with small cells suppressed.
fn table1_json(cohort: &Cohort, min_cell: usize) -> Vec<Map<String, Value>> {
    let labels = &cohort.group_labels;
    cohort
        .table1
        .iter()
        .map(|row| {
            let mut m = Map::new();
            m.insert("variable".into(), json!(row.variable));
            m.insert("level".into(), json!(row.level));
            let mut missing = Map::new();
            for (g, label) in labels.iter().enumerate() {
                let small_count =
                    row.counts[g].is_some_and(|c| suppress::count(c, min_cell).is_none());
                let small_group = suppress::count(row.denominators[g], min_cell).is_none();
                let cell = if small_count || small_group {
                    format!("<{min_cell}")
                } else {
                    row.cells[g].clone()
                };
                m.insert(label.clone(), json!(cell));
                missing.insert(
                    label.clone(),
                    json!(suppress::count(row.missing[g], min_cell)),
                );
            }
            let smd: Map<String, Value> = labels
                .iter()
                .skip(1)
                .zip(&row.smd)
                .map(|(l, s)| (l.clone(), json!(s)))
                .collect();
            m.insert("smd".into(), json!(row.smd.first().copied().flatten()));
            m.insert("smd_by_group".into(), Value::Object(smd));
            m.insert("missing_by_group".into(), Value::Object(missing));
            m
        })
        .collect()
}

/// `healthgap run CONFIG [--out DIR]`.
pub fn run(config: &Path, out: Option<&Path>) -> Result<()> {
    let plan = from_file(config)?;
    let target = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| plan.out_dir.clone());
    let staged = StagedDir::new(&target)?;
    let cohort = load(&plan)?;
    let mut analyses = Vec::new();
    let mut warnings = Vec::new();
    for a in &plan.analyses {
        if !implemented(&a.raw) {
            warnings.push(format!(
                "analysis `{}` ({}) was not run: the method is not implemented in this version",
                a.id,
                a.raw.method()
            ));
            continue;
        }
        analyses.extend(run_crude(&cohort, a).with_context(|| format!("analysis `{}`", a.id))?);
    }
    let m = plan.min_cell;
    let attrition = attrition_rows(&cohort, m);
    let mut files = Vec::new();
    for f in &cohort.files {
        files.push(FileInfo {
            path: f.display().to_string(),
            sha256: crate::hash::sha256_file(f)
                .with_context(|| format!("hashing {}", f.display()))?,
        });
    }
    let results = Results {
        schema_version: 1,
        tool: ToolInfo {
            name: "healthgap".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        study: StudyInfo {
            name: plan.study_name.clone(),
            seed: plan.seed,
            config_sha256: plan.config_sha256.clone(),
        },
        data: DataInfo {
            source: cohort.source.into(),
            files,
            rows_read: cohort.rows_read,
        },
        cohort: CohortSummary {
            n: suppress::count(cohort.n(), m),
            clusters: cohort.cluster.as_ref().map(|c| c.2),
            groups: cohort
                .group_labels
                .iter()
                .zip(cohort.group_counts())
                .map(|(l, n)| GroupCount {
                    label: l.clone(),
                    n: suppress::count(n, m),
                })
                .collect(),
            attrition,
            table1: table1_json(&cohort, m),
        },
        analyses,
        warnings,
    };
    let dir = staged.path();
    let write = |name: &str, text: String| -> Result<()> {
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))
    };
    if plan.formats.contains(&RawFormat::Json) {
        write("results.json", serde_json::to_string_pretty(&results)?)?;
    }
    if plan.formats.contains(&RawFormat::Csv) {
        write("estimates.csv", csv::estimates(&results.analyses))?;
        write("models.csv", csv::models(&results.analyses))?;
        write("table1.csv", csv::table1(&results, &cohort.group_labels))?;
        write(
            "attrition.csv",
            csv::attrition(&results.cohort.attrition, m),
        )?;
    }
    let target = staged.commit()?;
    print_summary(&results, &cohort);
    for w in &results.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!("wrote {}", target.display());
    Ok(())
}

/// The one-screen summary: each crude gap with its CI.
fn print_summary(results: &Results, cohort: &Cohort) {
    println!("{}", results.study.name);
    for a in results.analyses.iter().filter(|a| a.method == "crude") {
        let Some(g) = a.get("gap", None, None) else {
            continue;
        };
        let binary = cohort
            .outcome(&a.outcome)
            .is_some_and(|(s, _)| s.kind == OutcomeKind::Binary);
        let (scale, unit) = if binary { (100.0, " pp") } else { (1.0, "") };
        let level = 100.0 * a.inference.level;
        let ci = match (g.ci_low, g.ci_high) {
            (Some(l), Some(h)) => format!(" ({level:.0}% CI {:.2} to {:.2})", l * scale, h * scale),
            _ => String::new(),
        };
        println!(
            "  {:<18} {} vs {}: gap {:+.2}{unit}{ci}",
            a.outcome,
            a.comparison,
            a.reference,
            g.estimate * scale
        );
    }
}
