//! `healthgap check` and `healthgap run`: config → plan → cohort → methods →
//! report, written atomically.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use healthgap_cohort::{BlockDesign, Cohort, OutcomeKind, Values};
use healthgap_decompose::covariates::{Absorbed, Categorical, Column, Covariates};
use healthgap_decompose::crude::{CrudeInput, crude};
use healthgap_decompose::gelbach::{GelbachInput, GelbachSpec, gelbach};
use healthgap_decompose::hospital::{HospitalInput, HospitalRow, HospitalSpec, hospital};
use healthgap_decompose::inference::{InferenceSpec, Method, Vce};
use healthgap_decompose::mediation::{GroupMediationInput, MediationSpec, group_mediation};
use healthgap_decompose::nonlinear::{NonlinearInput, nonlinear};
use healthgap_decompose::oaxaca::{self, LinearInput, MethodOutput, Model, OaxacaSpec};
use healthgap_decompose::reduction::{ReductionInput, ReductionSpec, Target, disparity_reduction};
use healthgap_decompose::spec::RoleKind;
use healthgap_decompose::{AnalysisResult, InferenceInfo, MethodSpec};
use healthgap_models::Link;
use healthgap_models::bootstrap::Interval;
use healthgap_report::results::{AttritionRow, FailedAnalysis};
use healthgap_report::{
    CohortSummary, DataInfo, FileInfo, GroupCount, Results, StudyInfo, ToolInfo, csv, suppress,
};
use healthgap_report::{OutcomeInfo, ReportInput};

use crate::config::{RawFallback, RawFormat, RawInferenceMethod, RawInterval, RawVce};
use crate::output::StagedDir;
use crate::plan::{AnalysisPlan, Plan, from_file};

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
            text: [
                suppress::shown_text(a.excluded, excluded, min_cell),
                suppress::shown_text(a.remaining, remaining, min_cell),
            ],
        })
        .collect()
}

/// Prints the cohort summary (n per group, clusters, attrition), suppressed.
fn print_cohort(plan: &Plan, cohort: &Cohort) {
    let m = plan.min_cell;
    outln!("{}", plan.study_name);
    outln!("  data: {} ({} rows read)", cohort.source, cohort.rows_read);
    let show = |v: Option<usize>| v.map_or(format!("<{m}"), |n| n.to_string());
    for row in attrition_rows(cohort, m) {
        outln!(
            "  {:<48} excluded {:>9}  remaining {:>9}",
            row.step,
            show(row.excluded),
            show(row.remaining)
        );
    }
    for (label, n) in cohort.group_labels.iter().zip(cohort.group_counts()) {
        outln!("  group {label:<20} n = {}", suppress::text(n, m));
    }
    if let Some((name, _, g)) = &cohort.cluster {
        outln!("  clusters: {g} ({name})");
    }
}

/// `healthgap check CONFIG`.
pub fn check(config: &Path) -> Result<()> {
    let plan = from_file(config)?;
    let cohort = load(&plan)?;
    print_cohort(&plan, &cohort);
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
    // The same validation as `run`: every analysis is fitted once on the
    // data (point estimates, no bootstrap replicates), so that a design
    // that is singular, a group too small for its coefficients or a
    // method-specific refusal fails here with the message `run` would give.
    let mut failed = Vec::new();
    for a in &plan.analyses {
        let mut dry = a.clone();
        dry.inference.replicates = 0;
        dry.inference.interval = RawInterval::Percentile;
        match run_analysis(&plan, &cohort, &dry) {
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
    outln!(
        "config OK: {} analyses (each fitted once on the data, without inference)",
        plan.analyses.len()
    );
    Ok(())
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

/// The method's inference settings from the plan.
fn inference_spec(plan: &Plan, a: &AnalysisPlan) -> InferenceSpec {
    InferenceSpec {
        method: match a.inference.method {
            RawInferenceMethod::Delta => Method::Delta,
            RawInferenceMethod::Bootstrap => Method::Bootstrap,
        },
        replicates: a.inference.replicates,
        interval: match a.inference.interval {
            RawInterval::Percentile => Interval::Percentile,
            RawInterval::Bca => Interval::Bca,
            RawInterval::Normal => Interval::Normal,
        },
        level: a.inference.level,
        seed: plan.seed,
        analysis_id: a.id.clone(),
        stratify: a.inference.stratify,
        one_step: a.inference.one_step,
        vce: match plan.vce {
            RawVce::Robust => Vce::Robust,
            RawVce::Model => Vce::Model,
            RawVce::Cluster => Vce::Cluster,
        },
    }
}

/// Rows a method left untagged carry the delta method it ran with `spec`.
fn tag_delta_rows(output: &mut MethodOutput, spec: &InferenceSpec) {
    let how = spec.delta_method();
    for e in &mut output.estimates {
        e.tag_untagged(how);
    }
}

/// The covariates of `variables` (names or blocks already expanded).
fn covariates<'a>(design: &'a BlockDesign, id: &str) -> Result<Covariates<'a>> {
    if design.absorbed.len() > 1 {
        let names: Vec<&str> = design
            .absorbed
            .iter()
            .map(|a| a.variable.as_str())
            .collect();
        bail!(
            "analysis `{id}`: {} are all absorbed (many-level categoricals); this method can \
             absorb one. Keep one of them, or give the others fewer levels",
            names.join(", ")
        );
    }
    Ok(Covariates {
        columns: design
            .terms
            .iter()
            .zip(&design.columns)
            .map(|(t, v)| Column {
                name: t.name.clone(),
                factor: t.block.clone(),
                values: v,
            })
            .collect(),
        categoricals: design
            .categoricals
            .iter()
            .map(|c| Categorical {
                variable: c.variable.clone(),
                factor: c.block.clone(),
                base: c.base.clone(),
                columns: c.columns.clone(),
            })
            .collect(),
        absorbed: design.absorbed.first().map(|a| Absorbed {
            variable: a.variable.clone(),
            factor: a.block.clone(),
            codes: &a.codes,
            levels: a.levels.len(),
            labels: a.levels.clone(),
        }),
    })
}

/// One progress bar per analysis: bootstrap replicates counted, a spinner for
/// the delta method (indicatif hides both when stderr is not a terminal).
fn replicate_bar(a: &AnalysisPlan, comparisons: usize) -> indicatif::ProgressBar {
    if a.inference.method != RawInferenceMethod::Bootstrap {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message(format!("{} (delta method)", a.id));
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        return spinner;
    }
    let total = (a.inference.replicates * a.outcomes.len() * comparisons) as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} replicates ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(a.id.clone());
    bar
}

/// The covariates an analysis uses: its complete cases are taken over them
/// and its outcome.
fn analysis_variables(plan: &Plan, a: &AnalysisPlan) -> Vec<String> {
    let spec = a.spec.spec();
    let mut vars: Vec<String> = if spec.uses_every_factor() {
        plan.blocks.values().flatten().cloned().collect()
    } else {
        spec.roles()
            .into_iter()
            .flat_map(|role| match role.kind {
                RoleKind::Covariates => expand(plan, &role.names),
                RoleKind::Absorbed => role.names,
            })
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    vars.retain(|v| seen.insert(v.clone()));
    vars
}

/// A missing share differing between groups by more than this (absolute)
/// or by a ratio above [`MISSING_RATIO`] (when the larger is at least 1%),
/// beyond sampling noise (pooled two-proportion z > 2), is warned about:
/// complete cases can then bias the comparison.
const MISSING_GAP: f64 = 0.05;
const MISSING_RATIO: f64 = 2.0;

/// The per-group attrition rows of one comparison (`pair` = the reference's
/// and the comparison's group codes) from an analysis's complete-case steps,
/// suppressed, and the differential-missingness warnings.
fn complete_case_report(
    steps: &[healthgap_cohort::MissingStep],
    counts: &[usize],
    labels: &[String],
    pair: [usize; 2],
    min_cell: usize,
) -> (
    Vec<healthgap_decompose::result::GroupAttrition>,
    Vec<String>,
) {
    let mut rows = Vec::new();
    if steps.is_empty() {
        return (rows, Vec::new());
    }
    for g in pair {
        let mut raw: Vec<(usize, usize)> = vec![(0, counts[g])];
        raw.extend(steps.iter().map(|s| (s.excluded[g], s.remaining[g])));
        let names = std::iter::once("cohort".to_string()).chain(
            steps
                .iter()
                .map(|s| format!("complete cases: {}", s.variable)),
        );
        for ((step, &(excluded, remaining)), (e, r)) in
            names.zip(&raw).zip(suppress::attrition(&raw, min_cell))
        {
            rows.push(healthgap_decompose::result::GroupAttrition {
                step,
                group: labels[g].clone(),
                excluded: e,
                remaining: r,
                text: [
                    suppress::shown_text(excluded, e, min_cell),
                    suppress::shown_text(remaining, r, min_cell),
                ],
            });
        }
    }
    let share_text = |m: usize, n: usize| {
        if m < min_cell {
            format!("fewer than {min_cell} patients")
        } else {
            format!("{:.1}%", 100.0 * m as f64 / n as f64)
        }
    };
    // The rows left out reach the terminal and the report: the count when
    // every per-group count is shown (a total beside a hidden one would give
    // it back), else "some".
    let excluded: usize = steps
        .iter()
        .map(|s| s.excluded[pair[0]] + s.excluded[pair[1]])
        .sum();
    let hidden = rows.iter().any(|r| r.excluded.is_none());
    let mut warnings = vec![format!(
        "complete cases: {} {} and {} patients lack {} and are left out of this analysis \
         (per group and step in its attrition table)",
        if hidden {
            "some".to_string()
        } else {
            excluded.to_string()
        },
        labels[pair[1]],
        labels[pair[0]],
        steps
            .iter()
            .map(|s| s.variable.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )];
    warnings.extend(steps.iter().filter_map(|s| {
        let share = |g: usize| s.missing[g] as f64 / counts[g].max(1) as f64;
        let (a, b) = (share(pair[0]), share(pair[1]));
        let (lo, hi) = (a.min(b), a.max(b));
        // Beyond sampling noise: the pooled two-proportion z above 2.
        let (n0, n1) = (counts[pair[0]] as f64, counts[pair[1]] as f64);
        let pooled = (s.missing[pair[0]] + s.missing[pair[1]]) as f64 / (n0 + n1).max(1.0);
        let z = (a - b).abs() / (pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1)).sqrt();
        let differs = z > 2.0
            && (hi - lo > MISSING_GAP || (hi >= 0.01 && (lo == 0.0 || hi / lo > MISSING_RATIO)));
        differs.then(|| {
            format!(
                "{} is missing for {} of {} and {} of {} patients: the complete cases of the \
                     two groups are selected differently, which can bias the comparison",
                s.variable,
                share_text(s.missing[pair[1]], counts[pair[1]]),
                labels[pair[1]],
                share_text(s.missing[pair[0]], counts[pair[0]]),
                labels[pair[0]]
            )
        })
    }));
    (rows, warnings)
}

/// One analysis's results, and the outcome × comparison pairs that failed
/// (each `<outcome>, <comparison> vs <reference>: <reason>`).
struct AnalysisRun {
    results: Vec<AnalysisResult>,
    failures: Vec<String>,
}

/// Runs one analysis for every outcome and comparison group, each outcome on
/// the complete cases of its variables.
fn run_analysis(plan: &Plan, full: &Cohort, a: &AnalysisPlan) -> Result<AnalysisRun> {
    let analysis_vars = analysis_variables(plan, a);
    let comparisons = full.group_labels.len() - 1;
    let bar = replicate_bar(a, comparisons);
    let progress = || bar.inc(1);
    let spec = inference_spec(plan, a);
    let variables: Vec<String> = plan.blocks.values().flatten().cloned().collect();
    let full_counts = full.group_counts();
    // The design of the whole cohort, built once and shared by the outcomes
    // without missing values (the others build theirs on their complete cases).
    let full_design = std::cell::OnceCell::new();
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for outcome in &a.outcomes {
        let (subset, steps) = full.complete_cases(outcome, &analysis_vars);
        let cohort: &Cohort = subset.as_ref().unwrap_or(full);
        if let Some(last) = steps.last()
            && let Some(g) = last.remaining.iter().position(|n| *n == 0)
        {
            failures.push(format!(
                "{outcome}: group `{}` has no complete cases for this analysis (missing values in {})",
                full.group_labels[g],
                steps
                    .iter()
                    .map(|s| s.variable.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        let named_cluster = cohort
            .cluster
            .as_ref()
            .map(|(n, c, g)| (n.as_str(), c.as_slice(), *g));
        let cluster_name = named_cluster.map(|c| c.0);
        let cluster = named_cluster.map(|(_, c, g)| (c, g));
        let subset_design;
        let design = match &subset {
            Some(rows) => {
                subset_design = healthgap_cohort::design::build(rows, &variables);
                &subset_design
            }
            None => full_design.get_or_init(|| healthgap_cohort::design::build(full, &variables)),
        };
        let (outcome_spec, y) = cohort
            .outcome(outcome)
            .context("outcome missing from the cohort")?;
        let binary = outcome_spec.kind == OutcomeKind::Binary;
        for k in 1..cohort.group_labels.len() {
            let group = pair_codes(cohort, k);
            let labels = [
                cohort.group_labels[0].as_str(),
                cohort.group_labels[k].as_str(),
            ];
            let mut hospitals = Vec::new();
            let (attrition, missing_warnings) = complete_case_report(
                &steps,
                &full_counts,
                &full.group_labels,
                [0, k],
                plan.min_cell,
            );
            let pair = Pair {
                plan,
                a,
                cohort,
                design,
                outcome,
                y,
                binary,
                group: &group,
                labels,
                named_cluster,
                cluster,
                cluster_name,
                spec: &spec,
                progress: &progress,
            };
            let ran = match &a.spec {
                MethodSpec::Crude(_) => run_crude(&pair),
                MethodSpec::OaxacaBlinder(s) => run_oaxaca_blinder(&pair, s),
                MethodSpec::Gelbach(s) => run_gelbach(&pair, s),
                MethodSpec::Hospital(s) => run_hospital(&pair, s).map(|(output, info, rows)| {
                    hospitals = rows;
                    (output, info)
                }),
                MethodSpec::DisparityReduction(s) => run_disparity_reduction(&pair, s),
                MethodSpec::Mediation(s) => run_mediation(&pair, s),
            };
            // One failing comparison does not discard the others.
            let (output, info) = match ran {
                Ok(ran) => ran,
                Err(err) => {
                    let reason = format!("{err:#}");
                    failures.push(if reason.starts_with(outcome.as_str()) {
                        reason
                    } else {
                        format!("{outcome}, {} vs {}: {reason}", labels[1], labels[0])
                    });
                    continue;
                }
            };
            // Rows and events per group of this analysis's sample (the
            // small-cell passes in `run` work on these, not on the cohort's).
            let sample_counts = [0u32, 1].map(|g| {
                let rows = || {
                    group
                        .iter()
                        .zip(y)
                        .filter(move |(c, v)| **c == g && v.is_finite())
                };
                let events = binary.then(|| rows().filter(|(_, v)| **v != 0.0).count());
                (rows().count(), events)
            });
            out.push(AnalysisResult {
                sample_counts,
                id: a.id.clone(),
                spec: a.spec.clone(),
                outcome: outcome.clone(),
                binary,
                weighted: cohort.weights.is_some(),
                reference: labels[0].to_string(),
                comparison: labels[1].to_string(),
                n: Some(output.n),
                inference: info,
                estimates: output.estimates,
                models: output.models,
                warnings: {
                    let mut w = output.warnings;
                    w.extend(missing_warnings);
                    w
                },
                balance: output.balance,
                attrition,
                hospitals,
            });
        }
    }
    bar.finish_and_clear();
    if out.is_empty() && !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(AnalysisRun {
        results: out,
        failures,
    })
}

/// One outcome and comparison of one analysis: what every method's runner
/// reads.
struct Pair<'a> {
    plan: &'a Plan,
    a: &'a AnalysisPlan,
    /// The analysis's complete cases.
    cohort: &'a Cohort,
    design: &'a BlockDesign,
    outcome: &'a str,
    y: &'a [f64],
    binary: bool,
    /// 0 = reference, 1 = comparison, 2 = other groups.
    group: &'a [u32],
    labels: [&'a str; 2],
    named_cluster: Option<(&'a str, &'a [u32], usize)>,
    cluster: Option<(&'a [u32], usize)>,
    cluster_name: Option<&'a str>,
    spec: &'a InferenceSpec,
    progress: &'a (dyn Fn() + Sync),
}

/// `method = "crude"` for one outcome and comparison.
fn run_crude(p: &Pair<'_>) -> Result<(MethodOutput, InferenceInfo)> {
    let &Pair {
        a,
        cohort,
        y,
        binary,
        group,
        cluster,
        cluster_name,
        ..
    } = p;
    let estimates = crude(&CrudeInput {
        y,
        group,
        weights: cohort.weights.as_deref(),
        cluster,
        binary,
        level: a.inference.level,
    })?;
    let output = MethodOutput {
        estimates,
        models: Vec::new(),
        warnings: Vec::new(),
        replicates_ok: None,
        withheld: None,
        balance: Vec::new(),
        inference_note: None,
        n: group.iter().filter(|g| **g <= 1).count(),
    };
    // Wald intervals from the groups' empirical variances
    // (robust), or over clusters.
    let crude_spec = InferenceSpec {
        vce: if cluster.is_some() {
            Vce::Cluster
        } else {
            Vce::Robust
        },
        ..InferenceSpec::delta(a.inference.level)
    };
    let mut output = output;
    tag_delta_rows(&mut output, &crude_spec);
    let info = crude_spec.info(cluster_name, &output);
    Ok((output, info))
}

/// `method = "oaxaca_blinder"` for one outcome and comparison.
fn run_oaxaca_blinder(p: &Pair<'_>, s: &OaxacaSpec) -> Result<(MethodOutput, InferenceInfo)> {
    let &Pair {
        plan,
        a,
        cohort,
        design,
        outcome,
        y,
        binary,
        group,
        labels,
        named_cluster,
        cluster_name,
        spec,
        progress,
        ..
    } = p;
    let cov = covariates(design, &a.id)?;
    let coefficients = s.coefficients;
    let context = || format!("{outcome}, {} vs {}", labels[1], labels[0]);
    let output = match s.model {
        Model::Linear => {
            let input = LinearInput {
                y,
                group,
                labels,
                covariates: &cov,
                weights: cohort.weights.as_deref(),
                cluster: named_cluster,
                coefficients,
                threefold: s.threefold,
                normalize: s.normalize,
                min_cell: plan.min_cell,
            };
            oaxaca::linear(&input, spec, &progress).with_context(context)?
        }
        m => {
            if !binary {
                bail!(
                    "model = \"{}\" needs a binary outcome, and `{outcome}` \
                     is continuous; use model = \"linear\" for it",
                    if m == Model::Logit { "logit" } else { "probit" }
                );
            }
            let input = NonlinearInput {
                y,
                group,
                labels,
                covariates: &cov,
                weights: cohort.weights.as_deref(),
                cluster: named_cluster,
                link: if m == Model::Logit {
                    Link::Logit
                } else {
                    Link::Probit
                },
                coefficients,
                normalize: s.normalize,
                fairlie_orderings: s.fairlie_orderings,
                seed: plan.seed,
                analysis_id: a.id.clone(),
            };
            let mut out = nonlinear(&input, spec, &progress).with_context(context)?;
            if s.threefold {
                out.warnings.push(
                    "threefold = true is ignored: the threefold split is defined for \
                     model = \"linear\""
                        .into(),
                );
            }
            out
        }
    };
    let mut output = output;
    tag_delta_rows(&mut output, spec);
    let info = spec.info(cluster_name, &output);
    Ok((output, info))
}

/// `method = "gelbach"` for one outcome and comparison.
fn run_gelbach(p: &Pair<'_>, s: &GelbachSpec) -> Result<(MethodOutput, InferenceInfo)> {
    let &Pair {
        plan,
        a,
        cohort,
        outcome,
        y,
        group,
        labels,
        named_cluster,
        cluster_name,
        spec,
        progress,
        ..
    } = p;
    let base_vars = expand(plan, &s.base);
    let added_vars: Vec<String> = expand(plan, &s.added)
        .into_iter()
        .filter(|v| !base_vars.contains(v))
        .collect();
    let all: Vec<String> = base_vars.iter().chain(&added_vars).cloned().collect();
    let design = healthgap_cohort::design::build(cohort, &all);
    if let Some(abs) = design
        .absorbed
        .iter()
        .find(|t| base_vars.contains(&t.variable))
    {
        bail!(
            "`{}` is absorbed (many levels) and cannot be in `base`; \
             move it to `added`",
            abs.variable
        );
    }
    let base_columns = design
        .terms
        .iter()
        .filter(|t| base_vars.contains(&t.variable))
        .count();
    let cov = covariates(&design, &a.id)?;
    let input = GelbachInput {
        y,
        group,
        labels,
        covariates: &cov,
        base_columns,
        weights: cohort.weights.as_deref(),
        cluster: named_cluster,
    };
    let output = gelbach(&input, spec, &progress)
        .with_context(|| format!("{outcome}, {} vs {}", labels[1], labels[0]))?;
    let mut output = output;
    tag_delta_rows(&mut output, spec);
    let info = spec.info(cluster_name, &output);
    Ok((output, info))
}

/// `method = "hospital"` for one outcome and comparison.
fn run_hospital(
    p: &Pair<'_>,
    s: &HospitalSpec,
) -> Result<(MethodOutput, InferenceInfo, Vec<HospitalRow>)> {
    let &Pair {
        plan,
        a,
        cohort,
        outcome,
        y,
        binary,
        group,
        labels,
        named_cluster,
        cluster_name,
        spec,
        progress,
        ..
    } = p;
    let hname = &s.hospital;
    let adjust_vars: Vec<String> = expand(plan, &s.adjust)
        .into_iter()
        .filter(|v| v != hname)
        .collect();
    let adesign = healthgap_cohort::design::build(cohort, &adjust_vars);
    if let Some(t) = adesign.absorbed.first() {
        bail!(
            "`{}` in `adjust` has many levels and would be absorbed; \
             adjust for it with `absorb = [\"{}\"]` instead",
            t.variable,
            t.variable
        );
    }
    let cov = covariates(&adesign, &a.id)?;
    let fe = |name: &str| -> Result<Absorbed<'_>> {
        match cohort.variable(name).map(|v| &v.values) {
            Some(Values::Categorical { codes, levels, .. }) => Ok(Absorbed {
                variable: name.to_string(),
                factor: "care_site".into(),
                codes,
                levels: levels.len(),
                labels: levels.clone(),
            }),
            _ => bail!(
                "`{name}` must be categorical; declare it in \
                 [variables] as {{ type = \"categorical\" }}"
            ),
        }
    };
    let extra: Vec<Absorbed<'_>> = s.absorb.iter().map(|n| fe(n)).collect::<Result<_>>()?;
    let input = HospitalInput {
        y,
        group,
        labels,
        covariates: &cov,
        hospital: fe(hname)?,
        extra_fe: extra,
        weights: cohort.weights.as_deref(),
        cluster: named_cluster,
        binary,
        min_cell: plan.min_cell,
        pseudonymize: s.pseudonymize,
    };
    let out = hospital(&input, spec, &progress)
        .with_context(|| format!("{outcome}, {} vs {}", labels[1], labels[0]))?;
    let hospitals = out.hospitals;
    let clustered = spec.clustered();
    let mut output = out.output;
    tag_delta_rows(&mut output, &clustered);
    let info = clustered.info(Some(cluster_name.unwrap_or(hname)), &output);
    Ok((output, info, hospitals))
}

/// `method = "disparity_reduction"` for one outcome and comparison.
fn run_disparity_reduction(
    p: &Pair<'_>,
    s: &ReductionSpec,
) -> Result<(MethodOutput, InferenceInfo)> {
    let &Pair {
        plan,
        a,
        cohort,
        outcome,
        y,
        binary,
        group,
        labels,
        named_cluster,
        cluster_name,
        spec,
        progress,
        ..
    } = p;
    let allow_vars = expand(plan, &s.allowable);
    let target_vars: Vec<(String, Vec<String>)> = s
        .targets
        .iter()
        .map(|t| {
            let vars: Vec<String> = expand(plan, std::slice::from_ref(t))
                .into_iter()
                .filter(|v| !allow_vars.contains(v))
                .collect();
            (t.clone(), vars)
        })
        .collect();
    let mut all: Vec<String> = allow_vars.clone();
    for (_, vars) in &target_vars {
        all.extend(
            vars.iter()
                .filter(|v| !all.contains(v))
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    // The other covariates (ℓ): every remaining factor variable.
    for v in plan.blocks.values().flatten() {
        if !all.contains(v) {
            all.push(v.clone());
        }
    }
    let design = healthgap_cohort::design::build(cohort, &all);
    let cov = covariates(&design, &a.id)?;
    let cols_of = |vars: &[String]| -> Vec<usize> {
        design
            .terms
            .iter()
            .enumerate()
            .filter(|(_, t)| vars.contains(&t.variable))
            .map(|(j, _)| j)
            .collect()
    };
    let input = ReductionInput {
        y,
        group,
        labels,
        covariates: &cov,
        allowable: cols_of(&allow_vars),
        targets: target_vars
            .iter()
            .map(|(name, vars)| Target {
                name: name.clone(),
                columns: cols_of(vars),
                absorbed: design
                    .absorbed
                    .first()
                    .is_some_and(|t| vars.contains(&t.variable)),
            })
            .collect(),
        weights: cohort.weights.as_deref(),
        cluster: named_cluster,
        binary,
        draws: s.draws,
        min_cell: plan.min_cell,
        estimator: s.estimator,
    };
    let out = disparity_reduction(&input, spec, &progress)
        .with_context(|| format!("{outcome}, {} vs {}", labels[1], labels[0]))?;
    let mut info = spec.info(cluster_name, &out);
    info.method = "bootstrap".into();
    info.replicates = Some(spec.replicates);
    info.replicates_ok = out.replicates_ok;
    Ok((out, info))
}

/// `method = "mediation"` for one outcome and comparison.
fn run_mediation(p: &Pair<'_>, s: &MediationSpec) -> Result<(MethodOutput, InferenceInfo)> {
    let &Pair {
        plan,
        a,
        cohort,
        outcome,
        y,
        binary,
        group,
        labels,
        cluster,
        cluster_name,
        spec,
        progress,
        ..
    } = p;
    let mediators = &s.mediators;
    let mdesign = healthgap_cohort::design::build(cohort, &expand(plan, mediators));
    if mdesign.terms.len() != 1 || !mdesign.absorbed.is_empty() {
        let cols: Vec<&str> = mdesign.terms.iter().map(|t| t.name.as_str()).collect();
        bail!(
            "mediation needs one mediator column, and `{}` gives {} ({}); \
             list one numeric or 0/1 variable in `mediators`, or use \
             method = \"disparity_reduction\" for a whole block",
            mediators.join(", "),
            mdesign.terms.len() + mdesign.absorbed.len(),
            cols.join(", ")
        );
    }
    let cdesign = healthgap_cohort::design::build(cohort, &expand(plan, &s.confounders));
    if let Some(t) = cdesign.absorbed.first() {
        bail!(
            "confounder `{}` has many levels (absorbed); mediation \
             needs explicit covariates",
            t.variable
        );
    }
    let input = GroupMediationInput {
        y,
        group,
        labels,
        mediator: (&mdesign.terms[0].name, &mdesign.columns[0]),
        confounders: cdesign
            .terms
            .iter()
            .zip(&cdesign.columns)
            .map(|(t, v)| (t.name.clone(), v.as_slice()))
            .collect(),
        binary,
        interaction: s.interaction,
        cluster,
        draws: 25,
        seed: plan.seed,
        level: a.inference.level,
        weights: cohort.weights.as_deref(),
    };
    let out = group_mediation(&input, spec, &progress)
        .with_context(|| format!("{outcome}, {} vs {}", labels[1], labels[0]))?;
    let mut out = out;
    tag_delta_rows(&mut out, spec);
    let info = spec.info(cluster_name, &out);
    Ok((out, info))
}

/// Variable names from a list of variables and block names, in order, once each.
fn expand(plan: &Plan, names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let vars = plan
            .blocks
            .get(name)
            .cloned()
            .unwrap_or_else(|| vec![name.clone()]);
        for v in vars {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// Table 1 rows as JSON objects, with small cells suppressed.
fn table1_json(
    rows: &[healthgap_cohort::Table1Row],
    labels: &[String],
    min_cell: usize,
) -> Vec<Map<String, Value>> {
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
        .map(|((row, hidden), missing_hidden)| {
            let mut m = Map::new();
            m.insert("variable".into(), json!(row.variable));
            m.insert("level".into(), json!(row.level));
            let mut missing = Map::new();
            for (g, label) in labels.iter().enumerate() {
                let cell = hidden[g]
                    .text(min_cell)
                    .unwrap_or_else(|| row.cells[g].clone());
                m.insert(label.clone(), json!(cell));
                missing.insert(
                    label.clone(),
                    json!((!missing_hidden[g]).then_some(row.missing[g])),
                );
            }
            // An SMD of proportions with one proportion and both n shown would
            // give the other back: none where either cell is hidden.
            let shown_smd = |g: usize| -> Option<f64> {
                (!hidden[0].hidden() && !hidden[g].hidden())
                    .then(|| row.smd.get(g - 1).copied().flatten())
                    .flatten()
            };
            let smd: Map<String, Value> = labels
                .iter()
                .enumerate()
                .skip(1)
                .map(|(g, l)| (l.clone(), json!(shown_smd(g))))
                .collect();
            m.insert(
                "smd".into(),
                json!(if labels.len() > 1 { shown_smd(1) } else { None }),
            );
            m.insert("smd_by_group".into(), Value::Object(smd));
            m.insert("missing_by_group".into(), Value::Object(missing));
            m
        })
        .collect()
}

/// `healthgap run CONFIG [--out DIR]`.
/// Runs the study and writes the report; returns the number of analysis
/// results whose intervals were withheld (exit code 3 when any).
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
}

pub fn run(config: &Path, out: Option<&Path>) -> Result<RunOutcome> {
    let plan = from_file(config)?;
    let target = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| plan.out_dir.clone());
    let staged = StagedDir::new(&target)?;
    let cohort = load(&plan)?;
    let Ran {
        mut analyses,
        mut warnings,
        failed,
        fallbacks,
    } = run_analyses(&plan, &cohort)?;
    if let (true, Some(first)) = (analyses.is_empty(), failed.first()) {
        anyhow::bail!(
            "every analysis failed, so no report was written; analysis `{}`: {}",
            first.id,
            first.reason
        );
    }
    suppress_small_cells(&mut analyses, &cohort, plan.min_cell, &mut warnings);
    let results = results_of(&plan, &cohort, analyses, warnings, failed)?;
    let (factors, outcomes) = report_context(&plan, &cohort);
    let input = ReportInput {
        results: &results,
        group_labels: &cohort.group_labels,
        factors: &factors,
        outcomes: &outcomes,
        min_cell: plan.min_cell,
        generated: crate::output::utc_now(),
    };
    write_outputs(&plan, &staged, &cohort, &input)?;
    let target = staged.commit()?;
    crate::terminal::print_summary(&results, &input);
    crate::terminal::print_warnings(&results);
    let withheld = crate::terminal::print_withheld(&results);
    eprintln!("wrote {}", target.display());
    Ok(RunOutcome {
        failed: results.failed.len(),
        withheld,
        fallbacks,
    })
}

/// What running every analysis gave: the results, the study warnings, the
/// analyses that failed and the delta fallbacks taken.
struct Ran {
    analyses: Vec<AnalysisResult>,
    warnings: Vec<String>,
    failed: Vec<FailedAnalysis>,
    fallbacks: usize,
}

/// Runs every analysis; one that fails is recorded, the others go on.
fn run_analyses(plan: &Plan, cohort: &Cohort) -> Result<Ran> {
    let mut analyses = Vec::new();
    let mut warnings = cohort.warnings.clone();
    let mut failed: Vec<FailedAnalysis> = Vec::new();
    let mut fallbacks = 0usize;
    for a in &plan.analyses {
        let started = std::time::Instant::now();
        let results = match run_analysis(plan, cohort, a) {
            Ok(run) => {
                for reason in run.failures {
                    eprintln!("{}: failed: {reason}", a.id);
                    warnings.push(format!(
                        "analysis `{}` ({}) failed for {reason}",
                        a.id,
                        a.spec.name()
                    ));
                    failed.push(FailedAnalysis {
                        id: a.id.clone(),
                        method: a.spec.name().into(),
                        reason,
                    });
                }
                run.results
            }
            Err(err) => {
                // One failing analysis does not discard the others: it is
                // reported as failed and the run exits with code 3.
                let reason = format!("{err:#}");
                eprintln!("{}: failed: {reason}", a.id);
                warnings.push(format!(
                    "analysis `{}` ({}) failed: {reason}",
                    a.id,
                    a.spec.name()
                ));
                failed.push(FailedAnalysis {
                    id: a.id.clone(),
                    method: a.spec.name().into(),
                    reason,
                });
                continue;
            }
        };
        eprintln!(
            "{}: {} result(s) in {:.1} s",
            a.id,
            results.len(),
            started.elapsed().as_secs_f64()
        );
        let results = if a.inference.fallback == RawFallback::Delta {
            fallback_to_delta(plan, cohort, a, results, &mut fallbacks)?
        } else {
            results
        };
        analyses.extend(results);
    }
    Ok(Ran {
        analyses,
        warnings,
        failed,
        fallbacks,
    })
}

/// The small-cell passes over the results (complementary suppression of n,
/// outcomes with few events or non-events dropped) and the warning on few
/// bootstrap replicates.
fn suppress_small_cells(
    analyses: &mut Vec<AnalysisResult>,
    cohort: &Cohort,
    m: usize,
    warnings: &mut Vec<String>,
) {
    // Complementary suppression: when either group of a comparison is below
    // min_cell, in the cohort or in the analysis's own complete cases, the
    // analysis's and its models' row counts would reveal it.
    let counts: std::collections::HashMap<&str, usize> = cohort
        .group_labels
        .iter()
        .map(String::as_str)
        .zip(cohort.group_counts())
        .collect();
    for a in analyses.iter_mut() {
        let small = |label: &str| counts.get(label).is_some_and(|n| *n < m);
        let small_sample = a.sample_counts.iter().any(|(n, _)| *n < m);
        // A hidden complete-case exclusion would come back as the cohort's
        // group size minus the analysis's n.
        let hidden_exclusion = a.attrition.iter().any(|r| r.excluded.is_none());
        if small(&a.reference) || small(&a.comparison) || small_sample || hidden_exclusion {
            a.n = None;
            for model in &mut a.models {
                model.n = None;
            }
        }
        // A model fitted on fewer rows than a shown count by fewer than
        // min_cell (e.g. singleton hospitals dropped) would reveal the
        // difference: its n is hidden.
        let mut shown: Vec<usize> = a.n.into_iter().collect();
        shown.extend(a.sample_counts.iter().map(|(n, _)| *n));
        shown.extend(
            [&a.reference, &a.comparison]
                .iter()
                .filter_map(|l| counts.get(l.as_str()).copied()),
        );
        for model in &mut a.models {
            if let Some(n) = model.n
                && shown.iter().any(|&s| s > n && s - n < m)
            {
                model.n = None;
            }
        }
    }
    hide_rare_level_terms(analyses, cohort, m, warnings);
    // A binary outcome with fewer than min_cell events or non-events in a
    // group: every estimate of its gap would give the count back (the group's
    // mean times its shown n), so that outcome and comparison is not reported.
    // One pass per binary outcome: (outcome, group label) pairs with a small count.
    let mut small: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for (spec, y) in cohort
        .outcomes
        .iter()
        .filter(|(s, _)| s.kind == OutcomeKind::Binary)
    {
        let groups = cohort.group_labels.len();
        let (mut events, mut n) = (vec![0usize; groups], vec![0usize; groups]);
        for (v, &g) in y.iter().zip(&cohort.group) {
            if (g as usize) < groups && v.is_finite() {
                n[g as usize] += 1;
                events[g as usize] += usize::from(*v != 0.0);
            }
        }
        for (g, label) in cohort.group_labels.iter().enumerate() {
            if suppress::count(events[g], m).is_none()
                || suppress::count(n[g] - events[g], m).is_none()
            {
                small.insert((spec.name.as_str(), label.as_str()));
            }
        }
    }
    let small_outcome = |outcome: &str, label: &str| -> bool { small.contains(&(outcome, label)) };
    let mut withheld: Vec<(String, String, String)> = Vec::new();
    analyses.retain(|a| {
        // Small in the cohort, or in the analysis's own complete cases.
        let small_in_sample = |g: usize| {
            a.sample_counts[g].1.is_some_and(|events| {
                let n = a.sample_counts[g].0;
                suppress::count(events, m).is_none() || suppress::count(n - events, m).is_none()
            })
        };
        let small = [&a.reference, &a.comparison]
            .into_iter()
            .enumerate()
            .find(|(g, l)| small_outcome(&a.outcome, l) || small_in_sample(*g))
            .map(|(_, l)| l);
        if let Some(l) = small {
            let key = (a.outcome.clone(), a.comparison.clone(), l.to_string());
            if !withheld.contains(&key) {
                withheld.push(key);
            }
        }
        small.is_none()
    });
    for (outcome, comparison, label) in withheld {
        warnings.push(format!(
            "{outcome}, {comparison} vs {}: group {label} has fewer than {m} events or non-events; \
             the analyses of this outcome and comparison are not reported (each estimate would \
             reveal the count)",
            cohort.group_labels[0]
        ));
    }
    for a in analyses.iter_mut() {
        if let (Some(r), "bootstrap") = (a.inference.replicates, a.inference.method.as_str())
            && r < 200
        {
            a.warnings.push(format!(
                "only {r} bootstrap replicates: {} intervals need about 200 or more to be \
                 stable (set [inference] replicates)",
                a.inference.interval
            ));
        }
    }
}

/// Coefficients and detailed terms of a categorical level held by fewer than
/// `m` patients would disclose those patients' outcomes (a dummy of one
/// person is that person's residual): they are removed from the estimates
/// and the model tables, with a warning that names the fix.
fn hide_rare_level_terms(
    analyses: &mut [AnalysisResult],
    cohort: &Cohort,
    m: usize,
    warnings: &mut Vec<String>,
) {
    let mut rare: Vec<String> = Vec::new();
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
            rare.extend(
                levels
                    .iter()
                    .zip(&n)
                    .filter(|(_, k)| **k > 0 && **k < m)
                    .map(|(l, _)| format!("{}={l}", v.name)),
            );
        }
    }
    if rare.is_empty() {
        return;
    }
    let mut removed = false;
    for a in analyses.iter_mut() {
        let before = a.estimates.len();
        a.estimates
            .retain(|e| e.term.as_ref().is_none_or(|t| !rare.contains(t)));
        removed |= a.estimates.len() < before;
        for model in &mut a.models {
            let before = model.coefficients.len();
            model.coefficients.retain(|c| !rare.contains(&c.term));
            removed |= model.coefficients.len() < before;
        }
    }
    if removed {
        warnings.push(format!(
            "the coefficients and detailed terms of {} are not shown: each of these levels has \
             fewer than {m} patients, so its coefficient would disclose their outcomes (merge \
             rare levels with [variables] NAME = {{ type = \"categorical\", min_count = {m} }})",
            rare.join(", ")
        ));
    }
}

/// results.json's content.
fn results_of(
    plan: &Plan,
    cohort: &Cohort,
    analyses: Vec<AnalysisResult>,
    warnings: Vec<String>,
    failed: Vec<FailedAnalysis>,
) -> Result<Results> {
    let m = plan.min_cell;
    let attrition = attrition_rows(cohort, m);
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
            table1: table1_json(&cohort.table1, &cohort.group_labels, m),
            table1_complete: cohort
                .table1_complete
                .as_ref()
                .map(|t| table1_json(t, &cohort.group_labels, m)),
        },
        analyses,
        warnings,
        failed,
    })
}

/// The block lists and outcome descriptions the renderers need.
fn report_context(plan: &Plan, cohort: &Cohort) -> (Vec<(String, Vec<String>)>, Vec<OutcomeInfo>) {
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

/// Writes the configured formats into the staging folder.
fn write_outputs(
    plan: &Plan,
    staged: &StagedDir,
    cohort: &Cohort,
    input: &ReportInput,
) -> Result<()> {
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
        write("table1.csv", csv::table1(results, &cohort.group_labels))?;
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

/// `[inference] fallback = "delta"`: results whose bootstrap intervals were
/// withheld are replaced by the same analysis under the delta method, with
/// the reason and the fallback declared (warnings, `inference.note`) and
/// counted (exit code 3). Disparity reduction has no delta method: its
/// results stay withheld, with a warning.
fn fallback_to_delta(
    plan: &Plan,
    cohort: &Cohort,
    a: &AnalysisPlan,
    mut results: Vec<AnalysisResult>,
    fallbacks: &mut usize,
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
    let replacements = run_analysis(plan, cohort, &delta)
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
        eprintln!(
            "fallback: {} ({}, {} vs {}): delta-method intervals replace the withheld bootstrap",
            r.id, r.outcome, r.comparison, r.reference
        );
        *r = replaced;
        *fallbacks += 1;
    }
    Ok(results)
}
