//! The study as a library: [`load_cohort`], [`check_study`] (every analysis
//! fitted once, without inference) and [`run_study`] (every analysis with its
//! inference, failures recorded, the delta fallback when asked, the
//! small-cell passes) giving results.json's [`Results`]. The CLI (`healthgap
//! check|run`) adds the terminal, the progress bars and the atomic output.

use anyhow::{Context, Result, bail};

use healthgap_cohort::{Cohort, OutcomeKind, Values};
use healthgap_decompose::{AnalysisResult, MethodSpec};
use healthgap_report::results::{AttritionRow, FailedAnalysis, Table1Cell, Table1Row};
use healthgap_report::suppress::Disclosure;
use healthgap_report::{
    CohortSummary, DataInfo, FileInfo, GroupCount, OutcomeInfo, Results, StudyInfo, ToolInfo,
    WarehouseInfo, suppress,
};

use crate::analysis::{AnalysisRun, run_analysis};
pub use crate::analysis::{Observer, Quiet};
use crate::config::{RawFallback, RawInferenceMethod, RawInterval};
use crate::imputation::run_imputed;
use crate::plan::{AnalysisPlan, Plan};

/// Loads the cohort the plan names (flat file, OMOP folder, synthetic, or a
/// warehouse table whose analysis columns are pulled first).
pub fn load_cohort(plan: &Plan) -> Result<Cohort> {
    let context = || format!("{}", plan.config_path.display());
    if !plan.sites.is_empty() {
        bail!(
            "{}: a federated study ([[data.site]]) has no rows to load: only the sites' \
             moments leave them (healthgap::in_warehouse::load and run_study)",
            context()
        );
    }
    let Some(w) = &plan.warehouse else {
        return healthgap_cohort::load(&plan.cohort).with_context(context);
    };
    let columns = plan.cohort.columns().with_context(context)?;
    let mut pg = healthgap_warehouse::Postgres::connect(&w.url, w.password_env.as_deref())
        .with_context(context)?;
    crate::in_warehouse::check_columns(plan, &mut pg, &w.table).with_context(context)?;
    let data = pg.fetch_columns(&w.table, &columns).with_context(context)?;
    let frame = healthgap_cohort::result_to_frame(&data).with_context(context)?;
    let label = format!("{} ({})", table_label(&w.table), pg.target());
    let mut cohort = healthgap_cohort::load_frame(&plan.cohort, frame, Vec::new(), &label)
        .with_context(context)?;
    cohort.warehouse = Some((pg.target().to_string(), pg.statements().to_vec()));
    Ok(cohort)
}

/// `schema.table` as written in the config.
fn table_label(t: &healthgap_sql::TableName) -> String {
    t.parts.join(".")
}

/// A study that ran: results.json's content (small cells suppressed) and
/// what the renderers need besides.
pub struct Study {
    /// results.json.
    pub results: Results,
    /// Factor blocks with their variables, in order.
    pub factors: Vec<(String, Vec<String>)>,
    /// The outcomes' names, labels and types.
    pub outcomes: Vec<OutcomeInfo>,
    /// Results whose withheld bootstrap was replaced by the delta method.
    pub fallbacks: usize,
}

/// Runs every analysis of the plan on the cohort: one that fails is recorded
/// in `failed` and the others go on; the small-cell passes run on each
/// analysis's own sample. Fails only when every analysis failed.
pub fn run_study(plan: &Plan, cohort: &Cohort, observer: &dyn Observer) -> Result<Study> {
    let run = |a: &AnalysisPlan| run_analysis(plan, cohort, a, observer);
    let ran = run_analyses(plan, Some(cohort), cohort.warnings.clone(), &run, observer)?;
    finish(plan, &CohortFacts::of(plan, cohort), ran)
}

/// The study from its analyses' runs: fails when every analysis failed,
/// applies the small-cell passes and assembles results.json.
pub(crate) fn finish(plan: &Plan, facts: &CohortFacts, ran: Ran) -> Result<Study> {
    let Ran {
        mut analyses,
        mut warnings,
        failed,
        fallbacks,
        imputation,
    } = ran;
    if let (true, Some(first)) = (analyses.is_empty(), failed.first()) {
        bail!(
            "every analysis failed, so no report was written; analysis `{}`: {}",
            first.id,
            first.reason
        );
    }
    suppress::results(
        &mut analyses,
        &facts.disclosure,
        plan.min_cell,
        &mut warnings,
    );
    let mut results = results_of(plan, facts, analyses, warnings, failed)?;
    results.imputation = imputation;
    let factors = plan
        .blocks
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Study {
        results,
        factors,
        outcomes: facts.outcomes.clone(),
        fallbacks,
    })
}

/// What results.json, the report and the terminal say of the cohort: from
/// its rows ([`CohortFacts::of`]), or from a warehouse's aggregates.
#[derive(Debug, Clone)]
pub struct CohortFacts {
    /// `path`, `omop`, `synthetic` or `warehouse`.
    pub source: String,
    /// Files read (hashed into results.json).
    pub files: Vec<std::path::PathBuf>,
    /// Rows in the source before any step.
    pub rows_read: usize,
    /// The warehouse, the statements run and whether rows left it.
    pub warehouse: Option<WarehouseInfo>,
    /// The cluster variable and its number of clusters.
    pub clusters: Option<(String, usize)>,
    /// Group labels, the reference first.
    pub group_labels: Vec<String>,
    /// Rows per group.
    pub group_counts: Vec<usize>,
    /// The cohort's attrition steps.
    pub attrition: Vec<healthgap_cohort::AttritionStep>,
    /// Table 1 (empty when not computed).
    pub table1: Vec<healthgap_cohort::Table1Row>,
    /// Table 1 of the complete cases, when some values are missing.
    pub table1_complete: Option<Vec<healthgap_cohort::Table1Row>>,
    /// The counts the small-cell passes need.
    pub disclosure: Disclosure,
    /// The outcomes' names, labels and types.
    pub outcomes: Vec<OutcomeInfo>,
}

impl CohortFacts {
    /// The facts of a cohort of rows.
    pub fn of(plan: &Plan, cohort: &Cohort) -> CohortFacts {
        CohortFacts {
            source: cohort.source.to_string(),
            files: cohort.files.clone(),
            rows_read: cohort.rows_read,
            warehouse: cohort
                .warehouse
                .as_ref()
                .map(|(server, queries)| WarehouseInfo {
                    engine: "postgres".into(),
                    server: server.clone(),
                    row_export: true,
                    queries: queries.clone(),
                    sites: Vec::new(),
                }),
            clusters: cohort.cluster.as_ref().map(|c| (c.0.clone(), c.2)),
            group_labels: cohort.group_labels.clone(),
            group_counts: cohort.group_counts(),
            attrition: cohort.attrition.clone(),
            table1: cohort.table1.clone(),
            table1_complete: cohort.table1_complete.clone(),
            disclosure: disclosure(cohort),
            outcomes: report_context(plan, cohort).1,
        }
    }

    /// Rows of the analysed groups.
    pub fn n(&self) -> usize {
        self.group_counts.iter().sum()
    }
}

/// The same validation as a run: every analysis is fitted once on the data
/// (point estimates, no bootstrap replicates), so that a design that is
/// singular, a group too small for its coefficients or a method-specific
/// refusal fails here with the message the run would give.
pub fn check_study(plan: &Plan, cohort: &Cohort) -> Result<()> {
    // The imputation models are fitted too (two imputations, one iteration),
    // and the imputed analyses run on the first completed cohort.
    let completed = match &plan.imputation {
        Some(imp) if plan.analyses.iter().any(|a| a.imputed) => {
            let quick = crate::plan::ImputationPlan {
                iterations: 1,
                ..imp.clone()
            };
            let imputations = crate::imputation::impute_cohort(&quick, cohort, 2, imp.seed)?;
            Some(crate::imputation::completed(cohort, &imputations, 0))
        }
        _ => None,
    };
    check_analyses(plan, |a, dry| {
        let data = match (&completed, a.imputed) {
            (Some(c), true) => c,
            _ => cohort,
        };
        run_analysis(plan, data, dry, &Quiet)
    })
}

/// Runs `run(analysis, dry)` for every analysis with `dry` its copy without
/// bootstrap replicates, and fails with every analysis's (and every
/// outcome's) failure named (the row and the warehouse checks share it).
pub(crate) fn check_analyses(
    plan: &Plan,
    run: impl Fn(&AnalysisPlan, &AnalysisPlan) -> Result<AnalysisRun>,
) -> Result<()> {
    let mut failed = Vec::new();
    for a in &plan.analyses {
        let mut dry = a.clone();
        dry.inference.replicates = 0;
        dry.inference.interval = RawInterval::Percentile;
        match run(a, &dry) {
            Err(err) => failed.push(format!(
                "analysis `{}` ({}) failed: {err:#}",
                a.id,
                a.spec.name()
            )),
            Ok(run) => failed.extend(run.failures.iter().map(|reason| {
                format!(
                    "analysis `{}` ({}) failed for {reason}",
                    a.id,
                    a.spec.name()
                )
            })),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// The cohort's counts the small-cell passes need: group sizes, events per
/// group of each binary outcome, patients per level of each dummy-coded
/// categorical.
fn disclosure(cohort: &Cohort) -> Disclosure {
    let groups = cohort.group_labels.len();
    let outcome_counts = cohort
        .outcomes
        .iter()
        .filter(|(s, _)| s.kind == OutcomeKind::Binary)
        .map(|(spec, y)| {
            let mut counts = vec![(0usize, 0usize); groups];
            for (v, &g) in y.iter().zip(&cohort.group) {
                if (g as usize) < groups && v.is_finite() {
                    counts[g as usize].1 += 1;
                    counts[g as usize].0 += usize::from(*v != 0.0);
                }
            }
            (spec.name.clone(), counts)
        })
        .collect();
    let mut level_counts = Vec::new();
    for v in &cohort.variables {
        if let Values::Categorical {
            codes,
            levels,
            absorb: false,
        } = &v.values
        {
            let mut n = vec![0usize; levels.len()];
            for &c in codes {
                if let Some(k) = n.get_mut(c as usize) {
                    *k += 1;
                }
            }
            level_counts.extend(
                levels
                    .iter()
                    .zip(n)
                    .map(|(l, k)| (format!("{}={l}", v.name), k)),
            );
        }
    }
    Disclosure {
        group_labels: cohort.group_labels.clone(),
        group_counts: cohort.group_counts(),
        outcome_counts,
        level_counts,
    }
}

/// The attrition table with small and revealing counts suppressed.
pub fn attrition_rows(
    attrition: &[healthgap_cohort::AttritionStep],
    min_cell: usize,
) -> Vec<AttritionRow> {
    let steps: Vec<(usize, usize)> = attrition
        .iter()
        .map(|a| (a.excluded, a.remaining))
        .collect();
    attrition
        .iter()
        .zip(suppress::attrition(&steps, min_cell))
        .map(|(a, (excluded, remaining))| AttritionRow {
            step: a.step.clone(),
            excluded,
            remaining,
            text: [
                suppress::shown_text(a.excluded, excluded, min_cell),
                suppress::shown_text(a.remaining, remaining, min_cell),
            ],
        })
        .collect()
}

/// Table 1 rows with small cells suppressed (complementary too): a hidden
/// cell's text says why, and no SMD is shown where either cell is hidden (an
/// SMD of proportions with one proportion and both n shown gives the other
/// back).
fn table1_rows(
    rows: &[healthgap_cohort::Table1Row],
    labels: &[String],
    min_cell: usize,
) -> Vec<Table1Row> {
    let counts: Vec<suppress::Table1Counts> = rows
        .iter()
        .map(|row| suppress::Table1Counts {
            variable: &row.variable,
            level: row.level.is_some(),
            counts: &row.counts,
            denominators: &row.denominators,
            missing: &row.missing,
        })
        .collect();
    let (hidden, missing_hidden) = suppress::table1(&counts, min_cell);
    rows.iter()
        .zip(hidden)
        .zip(missing_hidden)
        .map(|((row, hidden), missing_hidden)| Table1Row {
            variable: row.variable.clone(),
            level: row.level.clone(),
            groups: labels
                .iter()
                .enumerate()
                .map(|(g, label)| Table1Cell {
                    label: label.clone(),
                    text: hidden[g]
                        .text(min_cell)
                        .unwrap_or_else(|| row.cells[g].clone()),
                    missing: (!missing_hidden[g]).then_some(row.missing[g]),
                    smd: (g > 0 && !hidden[0].hidden() && !hidden[g].hidden())
                        .then(|| row.smd.get(g - 1).copied().flatten())
                        .flatten(),
                })
                .collect(),
        })
        .collect()
}

/// What running every analysis gave: the results, the study warnings, the
/// analyses that failed and the delta fallbacks taken.
pub(crate) struct Ran {
    analyses: Vec<AnalysisResult>,
    warnings: Vec<String>,
    failed: Vec<FailedAnalysis>,
    fallbacks: usize,
    imputation: Option<healthgap_report::results::ImputationSummary>,
}

/// Runs every analysis by `run` (on rows, or on a warehouse's moments);
/// one that fails is recorded, the others go on. The imputed analyses run on
/// the `cohort`'s imputations (rows only).
pub(crate) fn run_analyses(
    plan: &Plan,
    cohort: Option<&Cohort>,
    mut warnings: Vec<String>,
    run: &dyn Fn(&AnalysisPlan) -> Result<AnalysisRun>,
    observer: &dyn Observer,
) -> Result<Ran> {
    let mut analyses = Vec::new();
    let imputed: Vec<&AnalysisPlan> = plan.analyses.iter().filter(|a| a.imputed).collect();
    let mut imputed_runs = match (&plan.imputation, imputed.is_empty(), cohort) {
        (Some(imp), false, Some(cohort)) => {
            Some(run_imputed(plan, imp, cohort, &imputed, observer)?)
        }
        _ => None,
    };
    let mut imputation = None;
    if let (Some(runs), Some(imp), Some(cohort)) = (&imputed_runs, &plan.imputation, cohort) {
        warnings.extend(
            runs.imputations
                .warnings
                .iter()
                .map(|w| format!("imputation: {w}")),
        );
        imputation = Some(crate::imputation::summary(
            imp,
            cohort,
            &runs.imputations,
            &imputed,
            plan.min_cell,
        ));
    }

    let mut failed: Vec<FailedAnalysis> = Vec::new();
    let mut fallbacks = 0usize;
    for a in &plan.analyses {
        let started = std::time::Instant::now();
        // A failure (the whole analysis, or one outcome × comparison) is said
        // on the terminal, kept as a study warning and listed in `failed`.
        let mut record = |how: &str, reason: String| {
            observer.say(&format!("{}: failed: {reason}", a.id));
            warnings.push(format!(
                "analysis `{}` ({}) {how} {reason}",
                a.id,
                a.spec.name()
            ));
            failed.push(FailedAnalysis {
                id: a.id.clone(),
                method: a.spec.name().into(),
                reason,
            });
        };
        let ran = match imputed_runs.as_mut().and_then(|r| r.runs.remove(&a.id)) {
            Some(run) => run,
            None => run(a),
        };
        let results = match ran {
            Ok(run) => {
                for reason in run.failures {
                    record("failed for", reason);
                }
                run.results
            }
            Err(err) => {
                // One failing analysis does not discard the others: it is
                // reported as failed and the run exits with code 3.
                record("failed:", format!("{err:#}"));
                continue;
            }
        };
        observer.say(&format!(
            "{}: {} result(s) in {:.1} s",
            a.id,
            results.len(),
            started.elapsed().as_secs_f64()
        ));
        let results = match (a.inference.fallback, a.imputed) {
            (RawFallback::Delta, false) => {
                fallback_to_delta(a, results, &mut fallbacks, run, observer)?
            }
            // The delta rerun would take complete cases, not the imputations:
            // the withheld intervals stay withheld, and the result says so.
            (RawFallback::Delta, true) => results
                .into_iter()
                .map(|mut r| {
                    if r.inference.withheld.is_some() {
                        r.warnings.push(
                            "fallback = \"delta\" is not applied to an analysis on \
                             imputations (its intervals stay withheld); set [imputation] \
                             inference or the analysis's inference to the delta method"
                                .into(),
                        );
                    }
                    r
                })
                .collect(),
            _ => results,
        };
        analyses.extend(results);
    }
    Ok(Ran {
        analyses,
        warnings,
        failed,
        fallbacks,
        imputation,
    })
}

/// results.json's content.
fn results_of(
    plan: &Plan,
    cohort: &CohortFacts,
    analyses: Vec<AnalysisResult>,
    warnings: Vec<String>,
    failed: Vec<FailedAnalysis>,
) -> Result<Results> {
    let m = plan.min_cell;
    let attrition = attrition_rows(&cohort.attrition, m);
    let mut files = Vec::new();
    for f in &cohort.files {
        files.push(FileInfo {
            path: f.display().to_string(),
            sha256: crate::hash::sha256_file(f)
                .with_context(|| format!("hashing {}", f.display()))?,
        });
    }
    Ok(Results {
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
            source: cohort.source.clone(),
            files,
            rows_read: cohort.rows_read,
            warehouse: cohort.warehouse.clone(),
        },
        cohort: CohortSummary {
            n: suppress::count(cohort.n(), m),
            clusters: cohort.clusters.as_ref().map(|c| c.1),
            groups: cohort
                .group_labels
                .iter()
                .zip(cohort.group_counts.iter().copied())
                .map(|(l, n)| GroupCount {
                    label: l.clone(),
                    n: suppress::count(n, m),
                })
                .collect(),
            attrition,
            table1: table1_rows(&cohort.table1, &cohort.group_labels, m),
            table1_complete: cohort
                .table1_complete
                .as_ref()
                .map(|t| table1_rows(t, &cohort.group_labels, m)),
        },
        analyses,
        warnings,
        failed,
        imputation: None,
    })
}

/// The block lists and outcome descriptions the renderers need.
pub fn report_context(
    plan: &Plan,
    cohort: &Cohort,
) -> (Vec<(String, Vec<String>)>, Vec<OutcomeInfo>) {
    let factors: Vec<(String, Vec<String>)> = plan
        .blocks
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let outcomes: Vec<OutcomeInfo> = cohort
        .outcomes
        .iter()
        .map(|(s, _)| OutcomeInfo {
            name: s.name.clone(),
            label: s.label.clone(),
            binary: s.kind == OutcomeKind::Binary,
        })
        .collect();
    (factors, outcomes)
}

/// `[inference] fallback = "delta"`: results whose bootstrap intervals were
/// withheld are replaced by the same analysis under the delta method, with
/// the reason and the fallback declared (warnings, `inference.note`) and
/// counted (exit code 3). Disparity reduction has no delta method: its
/// results stay withheld, with a warning.
fn fallback_to_delta(
    a: &AnalysisPlan,
    mut results: Vec<AnalysisResult>,
    fallbacks: &mut usize,
    run: &dyn Fn(&AnalysisPlan) -> Result<AnalysisRun>,
    observer: &dyn Observer,
) -> Result<Vec<AnalysisResult>> {
    if !results.iter().any(|r| r.inference.withheld.is_some()) {
        return Ok(results);
    }
    if matches!(a.spec, MethodSpec::DisparityReduction(_)) {
        for r in results
            .iter_mut()
            .filter(|r| r.inference.withheld.is_some())
        {
            r.warnings.push(
                "fallback = \"delta\" cannot apply: disparity_reduction has no delta method \
                 (the intervals stay withheld)"
                    .into(),
            );
        }
        return Ok(results);
    }
    let mut delta = a.clone();
    delta.inference.method = RawInferenceMethod::Delta;
    let replacements = run(&delta)
        .with_context(|| format!("analysis `{}` (the delta-method fallback)", a.id))?
        .results;
    for r in results
        .iter_mut()
        .filter(|r| r.inference.withheld.is_some())
    {
        let Some(d) = replacements
            .iter()
            .find(|d| d.outcome == r.outcome && d.comparison == r.comparison)
        else {
            continue;
        };
        let reason = r.inference.withheld.clone().unwrap_or_default();
        let mut replaced = d.clone();
        let note = format!(
            "fallback: the bootstrap's intervals were withheld ({reason}); [inference] fallback = \
             \"delta\" shows the delta method's instead"
        );
        replaced.warnings.insert(0, note.clone());
        replaced.inference.note = Some(match replaced.inference.note.take() {
            Some(n) => format!("{note}; {n}"),
            None => note,
        });
        observer.say(&format!(
            "fallback: {} ({}, {} vs {}): delta-method intervals replace the withheld bootstrap",
            r.id, r.outcome, r.comparison, r.reference
        ));
        *r = replaced;
        *fallbacks += 1;
    }
    Ok(results)
}
