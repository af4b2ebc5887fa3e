//! `healthgap check` and `healthgap run`: the study library
//! ([`healthgap::study`]) with the terminal, the progress bars and the
//! atomic output.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};

use healthgap::config::{RawFormat, RawInferenceMethod};
use healthgap::in_warehouse::{self, WarehouseCohort};
use healthgap::plan::{AnalysisPlan, Plan, from_file};
use healthgap::study::{self, CohortFacts, Observer, Study, attrition_rows};
use healthgap_cohort::Cohort;
use healthgap_report::{ReportInput, csv, suppress};

use crate::output::StagedDir;

/// A loaded cohort: rows, or a warehouse's aggregates (no row export).
enum Loaded {
    Rows(Box<Cohort>),
    Moments(Box<WarehouseCohort>),
}

impl Loaded {
    fn facts(&self, plan: &Plan) -> CohortFacts {
        match self {
            Loaded::Rows(c) => CohortFacts::of(plan, c),
            Loaded::Moments(w) => w.facts(),
        }
    }
}

/// Loads the plan's cohort, with a spinner on long loads.
fn load(plan: &Plan) -> Result<Loaded> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message("loading the cohort");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let cohort = if plan.moments_only() {
        in_warehouse::load(plan).map(|w| Loaded::Moments(Box::new(w)))
    } else {
        study::load_cohort(plan).map(|c| Loaded::Rows(Box::new(c)))
    };
    spinner.finish_and_clear();
    cohort
}

/// Progress on the terminal: one bar per analysis (bootstrap replicates
/// counted, a spinner for the delta method; indicatif hides both when stderr
/// is not a terminal), and the study's lines on stderr.
#[derive(Default)]
struct Progress {
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Observer for Progress {
    fn started(&self, a: &AnalysisPlan, replicates: usize) {
        let bar = if a.inference.method != RawInferenceMethod::Bootstrap {
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_message(format!("{} (delta method)", a.id));
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            spinner
        } else {
            let bar = indicatif::ProgressBar::new(replicates as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} replicates ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(a.id.clone());
            bar
        };
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn replicate(&self) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(1);
        }
    }

    fn finished(&self, _: &AnalysisPlan) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }

    fn say(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// Prints the cohort summary (n per group, clusters, attrition, a federated
/// study's sites), suppressed.
fn print_cohort(plan: &Plan, cohort: &CohortFacts) {
    let m = plan.min_cell;
    outln!("{}", plan.study_name);
    outln!("  data: {} ({} rows read)", cohort.source, cohort.rows_read);
    let show = |v: Option<usize>| v.map_or(format!("<{m}"), |n| n.to_string());
    for row in attrition_rows(&cohort.attrition, m) {
        outln!(
            "  {:<48} excluded {:>9}  remaining {:>9}",
            row.step,
            show(row.excluded),
            show(row.remaining)
        );
    }
    for (label, n) in cohort.group_labels.iter().zip(&cohort.group_counts) {
        outln!("  group {label:<20} n = {}", suppress::text(*n, m));
    }
    if let Some((name, g)) = &cohort.clusters {
        outln!("  clusters: {g} ({name})");
    }
    // A federated study's sites, their counts suppressed as in results.json.
    for site in cohort.warehouse.iter().flat_map(|w| &w.sites) {
        outln!(
            "  site {:<15} {}: {}",
            site.name,
            site.server,
            healthgap_report::view::site_counts(site, m)
        );
    }
}

/// `healthgap check CONFIG`.
pub fn check(config: &Path) -> Result<()> {
    let plan = from_file(config)?;
    let cohort = load(&plan)?;
    print_cohort(&plan, &cohort.facts(&plan));
    for (block, vars) in &plan.blocks {
        outln!("  block {block:<16} {}", vars.join(", "));
    }
    for a in &plan.analyses {
        outln!(
            "  analysis {:<20} {} on {}: {}",
            a.id,
            a.spec.name(),
            a.outcomes.join(", "),
            a.spec.options_json()
        );
    }
    match &cohort {
        Loaded::Rows(c) => study::check_study(&plan, c)?,
        Loaded::Moments(w) => in_warehouse::check_study(&plan, w)?,
    }
    outln!(
        "config OK: {} analyses (each fitted once on the data, without inference)",
        plan.analyses.len()
    );
    Ok(())
}

/// How a run that wrote its report ended: analyses that failed and results
/// with withheld intervals. `healthgap run` exits with code 3 when either is
/// non-zero.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOutcome {
    /// Analyses that failed (reported; the others kept).
    pub failed: usize,
    /// Analysis results whose intervals were withheld.
    pub withheld: usize,
    /// Results whose withheld bootstrap was replaced by the delta method
    /// (`[inference] fallback = "delta"`).
    pub fallbacks: usize,
    /// Imputation models that fell back (a separated logistic model imputed
    /// by PMM, a separated multinomial one ridge-penalized).
    pub imputation_fallbacks: usize,
}

/// `healthgap run CONFIG [--out DIR]`: runs the study and writes the
/// report atomically, then prints the findings, the warnings and what was
/// withheld.
pub fn run(config: &Path, out: Option<&Path>) -> Result<RunOutcome> {
    let plan = from_file(config)?;
    let target = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| plan.out_dir.clone());
    let staged = StagedDir::new(&target)?;
    let cohort = load(&plan)?;
    let progress = Progress::default();
    let Study {
        results,
        factors,
        outcomes,
        fallbacks,
    } = match &cohort {
        Loaded::Rows(c) => study::run_study(&plan, c, &progress)?,
        Loaded::Moments(w) => in_warehouse::run_study(&plan, w, &progress)?,
    };
    let group_labels = cohort.facts(&plan).group_labels;
    let input = ReportInput {
        results: &results,
        group_labels: &group_labels,
        factors: &factors,
        outcomes: &outcomes,
        min_cell: plan.min_cell,
        generated: crate::output::utc_now(),
    };
    write_outputs(&plan, &staged, &input)?;
    let target = staged.commit()?;
    crate::terminal::print_summary(&results, &input);
    crate::terminal::print_warnings(&results);
    let withheld = crate::terminal::print_withheld(&results);
    eprintln!("wrote {}", target.display());
    Ok(RunOutcome {
        failed: results.failed.len(),
        withheld,
        fallbacks,
        imputation_fallbacks: results.imputation.as_ref().map_or(0, |i| i.warnings.len()),
    })
}

/// Writes the configured formats into the staging folder.
fn write_outputs(plan: &Plan, staged: &StagedDir, input: &ReportInput) -> Result<()> {
    let results = input.results;
    let m = plan.min_cell;
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
        write("table1.csv", csv::table1(results, input.group_labels))?;
        if results.analyses.iter().any(|a| !a.hospitals.is_empty()) {
            write("hospitals.csv", csv::hospitals(&results.analyses, m))?;
        }
        write(
            "attrition.csv",
            csv::attrition(&results.cohort.attrition, &results.analyses),
        )?;
    }
    if plan.formats.contains(&RawFormat::Html) || plan.formats.contains(&RawFormat::Markdown) {
        let view = healthgap_report::view::build(input)?;
        if plan.formats.contains(&RawFormat::Html) {
            write("index.html", healthgap_report::html::html(&view, m)?)?;
        }
        if plan.formats.contains(&RawFormat::Markdown) {
            std::fs::create_dir_all(dir.join("figures")).context("creating figures/")?;
            for f in healthgap_report::markdown::figures(&view) {
                write(&format!("figures/{}.svg", f.id), f.svg.clone())?;
            }
            write(
                "report.md",
                healthgap_report::markdown::markdown(results, &view, m),
            )?;
        }
    }
    Ok(())
}
