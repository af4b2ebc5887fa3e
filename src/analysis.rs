//! One analysis of the study: its complete cases per outcome and, per
//! comparison group, the method's run (`MethodSpec::run`) on the designs the
//! cohort builds for it ([`CohortDesigns`]).

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use healthgap_cohort::{Cohort, OutcomeKind};
use healthgap_decompose::covariates::{Absorbed, Covariates};
use healthgap_decompose::inference::{InferenceSpec, Method};
use healthgap_decompose::spec::{Designs, Ran, RoleKind};
use healthgap_decompose::{AnalysisResult, Cluster, DecomposeError, Sample};
use healthgap_models::bootstrap::Interval;
use healthgap_report::suppress;

use crate::config::{RawInferenceMethod, RawInterval};
use crate::plan::{AnalysisPlan, Plan, vce_for_methods};

/// What a study reports while it runs. The CLI draws progress bars and
/// prints the lines; [`Quiet`] ignores everything.
pub trait Observer: Sync {
    /// An analysis starts, with `replicates` bootstrap replicates in all
    /// (0 for the delta method).
    fn started(&self, _analysis: &AnalysisPlan, _replicates: usize) {}
    /// One bootstrap replicate is done.
    fn replicate(&self) {}
    /// An analysis is done (whether or not part of it failed).
    fn finished(&self, _analysis: &AnalysisPlan) {}
    /// A line for the user: a failure, a fallback, a timing.
    fn say(&self, _line: &str) {}
}

/// An [`Observer`] that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}

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
pub(crate) fn inference_spec(plan: &Plan, a: &AnalysisPlan) -> InferenceSpec {
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
        vce: vce_for_methods(plan.vce),
    }
}

/// The covariates an analysis uses: its complete cases are taken over them
/// and its outcome.
pub(crate) fn analysis_variables(plan: &Plan, a: &AnalysisPlan) -> Vec<String> {
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
pub(crate) fn complete_case_report(
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
pub(crate) struct AnalysisRun {
    pub(crate) results: Vec<AnalysisResult>,
    pub(crate) failures: Vec<String>,
}

/// Runs one analysis for every outcome and comparison group, each outcome on
/// the complete cases of its variables.
pub(crate) fn run_analysis(
    plan: &Plan,
    full: &Cohort,
    a: &AnalysisPlan,
    observer: &dyn Observer,
) -> Result<AnalysisRun> {
    let analysis_vars = analysis_variables(plan, a);
    let comparisons = full.group_labels.len() - 1;
    let replicates = match a.inference.method {
        RawInferenceMethod::Bootstrap => a.inference.replicates * a.outcomes.len() * comparisons,
        RawInferenceMethod::Delta => 0,
    };
    observer.started(a, replicates);
    let progress = || observer.replicate();
    let spec = inference_spec(plan, a);
    let full_counts = full.group_counts();
    // Designs of the whole cohort are built once and shared by the outcomes
    // without missing values (the others build theirs on their complete cases).
    let full_designs = CohortDesigns::new(plan, full, &a.id);
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for outcome in &a.outcomes {
        let (subset, steps) = full.complete_cases(outcome, &analysis_vars);
        let cohort: &Cohort = subset.as_ref().unwrap_or(full);
        let empty = EmptyGroups::of(outcome, &steps, &full.group_labels);
        if empty.all(&mut failures) {
            continue;
        }
        let cluster = cohort.cluster.as_ref().map(|(name, codes, count)| Cluster {
            name,
            codes,
            count: *count,
        });
        let subset_designs = subset
            .as_ref()
            .map(|rows| CohortDesigns::new(plan, rows, &a.id));
        let designs = subset_designs.as_ref().unwrap_or(&full_designs);
        let (outcome_spec, y) = cohort
            .outcome(outcome)
            .context("outcome missing from the cohort")?;
        let binary = outcome_spec.kind == OutcomeKind::Binary;
        for k in 1..cohort.group_labels.len() {
            if empty.comparison(k, &mut failures) {
                continue;
            }
            let group = pair_codes(cohort, k);
            let labels = [
                cohort.group_labels[0].as_str(),
                cohort.group_labels[k].as_str(),
            ];
            let (attrition, missing_warnings) = complete_case_report(
                &steps,
                &full_counts,
                &full.group_labels,
                [0, k],
                plan.min_cell,
            );
            let sample = Sample {
                outcome,
                y,
                group: &group,
                labels,
                weights: cohort.weights.as_deref(),
                cluster,
                binary,
                min_cell: plan.min_cell,
            };
            let ran = a.spec.run(&sample, designs, &spec, &progress);
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
            let comparison = Comparison {
                analysis: a,
                outcome,
                labels,
                binary,
                weighted: cohort.weights.is_some(),
                sample_counts,
                attrition,
                missing_warnings,
            };
            match comparison.result(ran) {
                Ok(result) => out.push(result),
                Err(reason) => failures.push(reason),
            }
        }
    }
    AnalysisRun::finish(a, observer, out, failures)
}

/// The groups without complete cases for one outcome of an analysis (each
/// of its complete-case steps with missing values): without reference
/// patients no comparison runs; without a comparison group's, only its
/// comparison fails, and the others run.
pub(crate) struct EmptyGroups<'a> {
    outcome: &'a str,
    labels: &'a [String],
    empty: Vec<usize>,
    variables: String,
}

impl<'a> EmptyGroups<'a> {
    /// From the last step's remaining rows per group.
    pub(crate) fn of(
        outcome: &'a str,
        steps: &[healthgap_cohort::MissingStep],
        labels: &'a [String],
    ) -> EmptyGroups<'a> {
        let empty = steps.last().map_or_else(Vec::new, |last| {
            (0..last.remaining.len())
                .filter(|&g| last.remaining[g] == 0)
                .collect()
        });
        let variables = steps
            .iter()
            .map(|s| s.variable.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        EmptyGroups {
            outcome,
            labels,
            empty,
            variables,
        }
    }

    fn reason(&self, g: usize) -> String {
        format!(
            "group `{}` has no complete cases for this analysis (missing values in {})",
            self.labels[g], self.variables
        )
    }

    /// Whether no comparison can run (the reference has no complete case),
    /// the failure pushed.
    pub(crate) fn all(&self, failures: &mut Vec<String>) -> bool {
        let all = self.empty.contains(&0);
        if all {
            failures.push(format!("{}: {}", self.outcome, self.reason(0)));
        }
        all
    }

    /// Whether comparison `k` cannot run, the failure pushed.
    pub(crate) fn comparison(&self, k: usize, failures: &mut Vec<String>) -> bool {
        let empty = self.empty.contains(&k);
        if empty {
            failures.push(format!(
                "{}, {} vs {}: {}",
                self.outcome,
                self.labels[k],
                self.labels[0],
                self.reason(k)
            ));
        }
        empty
    }
}

/// One outcome and comparison of an analysis, as both data paths (rows and
/// warehouse moments) give it to [`Comparison::result`].
pub(crate) struct Comparison<'a> {
    pub(crate) analysis: &'a AnalysisPlan,
    pub(crate) outcome: &'a str,
    pub(crate) labels: [&'a str; 2],
    pub(crate) binary: bool,
    pub(crate) weighted: bool,
    /// Rows and (binary outcomes) events per group of the sample.
    pub(crate) sample_counts: [(usize, Option<usize>); 2],
    /// The complete-case attrition rows and warnings
    /// ([`complete_case_report`]).
    pub(crate) attrition: Vec<healthgap_decompose::result::GroupAttrition>,
    pub(crate) missing_warnings: Vec<String>,
}

impl Comparison<'_> {
    /// The checked result of the method's run, or the failure's text
    /// (`<outcome>, <comparison> vs <reference>: <reason>`): one failing
    /// comparison does not discard the others.
    pub(crate) fn result(self, ran: Result<Ran, DecomposeError>) -> Result<AnalysisResult, String> {
        let (outcome, labels) = (self.outcome, self.labels);
        let failed = |reason: String| {
            if reason.starts_with(outcome) {
                reason
            } else {
                format!("{outcome}, {} vs {}: {reason}", labels[1], labels[0])
            }
        };
        let Ran {
            output,
            info,
            hospitals,
        } = ran.map_err(|err| failed(format!("{err:#}")))?;
        let mut warnings = output.warnings;
        warnings.extend(self.missing_warnings);
        let result = AnalysisResult {
            sample_counts: self.sample_counts,
            id: self.analysis.id.clone(),
            spec: self.analysis.spec.clone(),
            outcome: outcome.to_string(),
            binary: self.binary,
            weighted: self.weighted,
            reference: labels[0].to_string(),
            comparison: labels[1].to_string(),
            n: Some(output.n),
            inference: info,
            estimates: output.estimates,
            models: output.models,
            warnings,
            balance: output.balance,
            learners: output.learners,
            attrition: self.attrition,
            hospitals,
        };
        checked(result)
            .map_err(|reason| format!("{outcome}, {} vs {}: {reason}", labels[1], labels[0]))
    }
}

impl AnalysisRun {
    /// The analysis's results and failures; an error when every comparison
    /// failed.
    pub(crate) fn finish(
        a: &AnalysisPlan,
        observer: &dyn Observer,
        results: Vec<AnalysisResult>,
        failures: Vec<String>,
    ) -> Result<AnalysisRun> {
        observer.finished(a);
        if results.is_empty() && !failures.is_empty() {
            bail!("{}", failures.join("; "));
        }
        Ok(AnalysisRun { results, failures })
    }
}

/// A result whose identities do not hold (its parts do not add up to its
/// total) is an internal error: in debug and test builds the comparison
/// fails with the identities named; in release builds it is kept with a
/// warning naming them.
pub(crate) fn checked(mut result: AnalysisResult) -> Result<AnalysisResult, String> {
    let errors = result.identity_errors();
    if errors.is_empty() {
        return Ok(result);
    }
    let text = format!(
        "internal error, please report it: identities do not hold: {}",
        errors.join("; ")
    );
    if cfg!(debug_assertions) {
        return Err(text);
    }
    result.warnings.push(text);
    Ok(result)
}

/// The cohort's designs for one analysis: built on request from the
/// cohort's variables, once per variable list, and shared.
struct CohortDesigns<'a> {
    plan: &'a Plan,
    cohort: &'a Cohort,
    analysis: &'a str,
    built: std::cell::RefCell<Vec<(Vec<String>, Arc<Covariates>)>>,
}

impl<'a> CohortDesigns<'a> {
    fn new(plan: &'a Plan, cohort: &'a Cohort, analysis: &'a str) -> Self {
        CohortDesigns {
            plan,
            cohort,
            analysis,
            built: std::cell::RefCell::default(),
        }
    }
}

impl Designs for CohortDesigns<'_> {
    fn expand(&self, names: &[String]) -> Vec<String> {
        expand(self.plan, names)
    }

    fn every_factor(&self) -> Vec<String> {
        self.plan.blocks.values().flatten().cloned().collect()
    }

    fn covariates(&self, variables: &[String]) -> Result<Arc<Covariates>, DecomposeError> {
        if let Some((_, built)) = self.built.borrow().iter().find(|(v, _)| v == variables) {
            return Ok(Arc::clone(built));
        }
        let built = healthgap_cohort::design::build(self.cohort, variables)
            .map(Arc::new)
            .map_err(|e| DecomposeError::Design(format!("analysis `{}`: {e}", self.analysis)))?;
        self.built
            .borrow_mut()
            .push((variables.to_vec(), Arc::clone(&built)));
        Ok(built)
    }

    fn absorbed(&self, name: &str, factor: &str) -> Option<Absorbed> {
        healthgap_cohort::design::absorbed(self.cohort, name, factor)
    }
}

/// Variable names from a list of variables and block names, in order, once each.
pub(crate) fn expand(plan: &Plan, names: &[String]) -> Vec<String> {
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
