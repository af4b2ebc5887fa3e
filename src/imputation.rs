//! `[cohort] missing = "multiple_imputation"`: the cohort's incomplete
//! variables imputed m times by chained equations (healthgap_impute), every
//! imputed analysis run on each completed cohort and pooled
//! (healthgap_decompose::pooled: Rubin's rules), or, with `[imputation]
//! inference = "bootstrap"`, bootstrap-then-impute: each replicate resamples
//! the incomplete cohort by cluster, imputes it afresh and averages the
//! point estimates over its imputations (Bartlett & Hughes 2020, Stat
//! Methods Med Res 29:3533, "boot MI"); the intervals come from the
//! replicates.

use std::collections::HashMap;

use anyhow::{Result, bail};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use healthgap_cohort::{Cohort, Values as CohortValues};
use healthgap_decompose::pooled::pool_results;
use healthgap_decompose::{AnalysisResult, SeMethod};
use healthgap_impute::{
    ClusterTerm, Imputations, Imputed, Input, Method, Settings, Values, Variable, impute,
};
use healthgap_models::bootstrap::{Interval, infer};
use healthgap_report::results::{Distribution, GroupShare, ImputationSummary, ImputedVariable};
use healthgap_report::suppress;

use crate::analysis::{AnalysisRun, Observer, checked, run_analysis};
use crate::config::{RawImputationInference, RawInferenceMethod, RawInterval};
use crate::plan::{AnalysisPlan, ImputationPlan, Plan};

/// The chained equations' input from the cohort: its variables (absorbed
/// ones are neither imputed nor predictors), its outcomes as predictors,
/// the groups as strata (`by_group`) or as a predictor, the cluster.
fn input<'a>(plan: &ImputationPlan, cohort: &'a Cohort) -> Result<Input<'a>> {
    let predictor = |name: &str| {
        plan.predictors
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p == name))
    };
    let mut variables = Vec::new();
    for v in &cohort.variables {
        let (values, absorbed) = match &v.values {
            CohortValues::Numeric(x) => (Values::Numeric(x), false),
            CohortValues::Categorical {
                codes,
                levels,
                absorb,
            } => (
                Values::Categorical {
                    codes,
                    levels: levels.len(),
                },
                *absorb,
            ),
        };
        let incomplete = (0..values.len()).any(|i| values.missing(i));
        let leave = plan.leave.contains(&v.name);
        if absorbed && incomplete && !leave {
            bail!(
                "`{}` is absorbed as fixed effects (many levels) and has missing values: it cannot \
                 be imputed; list it in [imputation] leave (its incomplete rows are then left out \
                 of the analyses that use it)",
                v.name
            );
        }
        variables.push(Variable {
            name: v.name.clone(),
            values,
            impute: (!leave && !absorbed)
                .then(|| plan.methods.get(&v.name).copied().unwrap_or(Method::Auto)),
            predictor: !absorbed && predictor(&v.name),
            cluster_mean: false,
        });
    }
    for (spec, y) in &cohort.outcomes {
        variables.push(Variable {
            name: spec.name.clone(),
            values: Values::Numeric(y),
            impute: None,
            predictor: predictor(&spec.name),
            cluster_mean: true,
        });
    }
    if !plan.by_group {
        variables.push(Variable {
            name: "group".into(),
            values: Values::Categorical {
                codes: &cohort.group,
                levels: cohort.group_labels.len(),
            },
            impute: None,
            predictor: true,
            cluster_mean: false,
        });
    }
    Ok(Input {
        variables,
        strata: plan
            .by_group
            .then(|| (cohort.group.as_slice(), cohort.group_labels.clone())),
        cluster: cohort
            .cluster
            .as_ref()
            .map(|(_, codes, count)| (codes.as_slice(), *count)),
        cluster_term: plan.cluster,
        visit: plan.visit.clone(),
    })
}

/// Imputes the cohort `m` times with `seed`.
pub(crate) fn impute_cohort(
    plan: &ImputationPlan,
    cohort: &Cohort,
    m: usize,
    seed: u64,
) -> Result<Imputations> {
    let input = input(plan, cohort)?;
    Ok(impute(
        &input,
        &Settings {
            m,
            iterations: plan.iterations,
            seed,
            donors: plan.donors,
        },
    )?)
}

/// The cohort with imputation `l`'s values in its missing cells.
pub(crate) fn completed(cohort: &Cohort, imputations: &Imputations, l: usize) -> Cohort {
    let mut out = cohort.clone();
    for target in &imputations.imputed {
        let Some(v) = out.variables.get_mut(target.variable) else {
            continue;
        };
        let values = target.imputation(l);
        match &mut v.values {
            CohortValues::Numeric(x) => {
                for (&r, &y) in target.rows.iter().zip(values) {
                    x[r as usize] = y;
                }
            }
            CohortValues::Categorical { codes, .. } => {
                for (&r, &y) in target.rows.iter().zip(values) {
                    codes[r as usize] = y as u32;
                }
            }
        }
    }
    out
}

/// The imputed analyses' runs (by analysis id) and the imputations.
pub(crate) struct ImputedRuns {
    /// Each imputed analysis's pooled run, or why it failed.
    pub runs: HashMap<String, Result<AnalysisRun>>,
    /// The study's imputations (diagnostics).
    pub imputations: Imputations,
}

/// Runs the imputed analyses: Rubin's rules over the study's imputations,
/// or bootstrap-then-impute.
pub(crate) fn run_imputed(
    plan: &Plan,
    imp: &ImputationPlan,
    cohort: &Cohort,
    analyses: &[&AnalysisPlan],
    observer: &dyn Observer,
) -> Result<ImputedRuns> {
    observer.say(&format!(
        "imputing: m = {}, {} iterations{}",
        imp.m,
        imp.iterations,
        if imp.by_group {
            ", within each group"
        } else {
            ""
        }
    ));
    let started = std::time::Instant::now();
    let imputations = impute_cohort(imp, cohort, imp.m, imp.seed)?;
    observer.say(&format!(
        "imputed {} variable(s) in {:.1} s",
        imputations.imputed.len(),
        started.elapsed().as_secs_f64()
    ));
    let started = std::time::Instant::now();
    let runs = match imp.inference {
        RawImputationInference::Rubin => {
            pooled_runs(plan, cohort, &imputations, analyses, observer, |a| {
                (*a).clone()
            })
        }
        RawImputationInference::Bootstrap => {
            let point = pooled_runs(plan, cohort, &imputations, analyses, observer, point_only);
            bootstrap_then_impute(plan, imp, cohort, analyses, point, observer)
        }
    };
    observer.say(&format!(
        "{} analysis(es) on the imputations in {:.1} s",
        analyses.len(),
        started.elapsed().as_secs_f64()
    ));
    for w in &imputations.warnings {
        observer.say(&format!("imputation: {w}"));
    }
    Ok(ImputedRuns { runs, imputations })
}

/// An analysis with its inference turned off (the delta method, whose SEs
/// are ignored, and no bootstrap replicates for the methods that have only
/// the bootstrap): for the point estimates of bootstrap-then-impute.
fn point_only(a: &&AnalysisPlan) -> AnalysisPlan {
    let mut dry = (*a).clone();
    dry.inference.method = RawInferenceMethod::Delta;
    dry.inference.replicates = 0;
    dry
}

/// Every analysis run on each completed cohort (its own inference, or as
/// `adapt` makes it), pooled per outcome × comparison by Rubin's rules. A
/// comparison that failed in any imputation fails, naming in how many.
fn pooled_runs(
    plan: &Plan,
    cohort: &Cohort,
    imputations: &Imputations,
    analyses: &[&AnalysisPlan],
    observer: &dyn Observer,
    adapt: impl Fn(&&AnalysisPlan) -> AnalysisPlan,
) -> HashMap<String, Result<AnalysisRun>> {
    let m = imputations.m;
    let adapted: Vec<AnalysisPlan> = analyses.iter().map(&adapt).collect();
    let mut per: Vec<Vec<Result<AnalysisRun>>> = (0..analyses.len()).map(|_| Vec::new()).collect();
    for l in 0..m {
        let complete = completed(cohort, imputations, l);
        for (k, a) in adapted.iter().enumerate() {
            per[k].push(run_analysis(plan, &complete, a, observer));
        }
    }
    analyses
        .iter()
        .zip(per)
        .map(|(a, runs)| (a.id.clone(), pool_runs(runs, m, a.inference.level)))
        .collect()
}

/// One analysis's m runs pooled.
fn pool_runs(runs: Vec<Result<AnalysisRun>>, m: usize, level: f64) -> Result<AnalysisRun> {
    let mut ok = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for run in runs {
        match run {
            Ok(run) => {
                for f in run.failures {
                    if !failures.contains(&f) {
                        failures.push(f);
                    }
                }
                ok.push(run.results);
            }
            Err(e) => {
                let text = format!("{e:#}");
                if !failures.contains(&text) {
                    failures.push(text);
                }
            }
        }
    }
    let mut results = Vec::new();
    let Some(first) = ok.first() else {
        bail!("failed in every imputation: {}", failures.join("; "));
    };
    for template in first {
        let same: Vec<AnalysisResult> = ok
            .iter()
            .filter_map(|rs| {
                rs.iter()
                    .find(|r| r.outcome == template.outcome && r.comparison == template.comparison)
                    .cloned()
            })
            .collect();
        if same.len() < m {
            failures.push(format!(
                "{}, {} vs {}: failed in {} of {m} imputations",
                template.outcome,
                template.comparison,
                template.reference,
                m - same.len()
            ));
            continue;
        }
        // Pooling is linear, so the parts still add up: checked like every
        // result.
        match checked(pool_results(&same, level)) {
            Ok(pooled) => results.push(pooled),
            Err(reason) => failures.push(format!(
                "{}, {} vs {}: {reason}",
                template.outcome, template.comparison, template.reference
            )),
        }
    }
    Ok(AnalysisRun { results, failures })
}

/// Bootstrap-then-impute: `replicates` resamples of the incomplete cohort
/// (by cluster when there is one, else by row), each imputed
/// `per_replicate` times afresh and every analysis's point estimates
/// averaged over those imputations; each row's SE and interval from the
/// replicates around the pooled point estimate (`point`). Replicates that
/// fail are counted (up to 1% warned, beyond it the intervals withheld).
fn bootstrap_then_impute(
    plan: &Plan,
    imp: &ImputationPlan,
    cohort: &Cohort,
    analyses: &[&AnalysisPlan],
    mut point: HashMap<String, Result<AnalysisRun>>,
    observer: &dyn Observer,
) -> HashMap<String, Result<AnalysisRun>> {
    // draws[analysis][result][row] over replicates; NaN marks a failure.
    let mut draws: Vec<Vec<Vec<Vec<f64>>>> = analyses
        .iter()
        .map(|a| match point.get(&a.id) {
            Some(Ok(run)) => run
                .results
                .iter()
                .map(|r| vec![Vec::new(); r.estimates.len()])
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    let mut failed_first: Option<String> = None;
    for b in 0..imp.replicates {
        let sample = resample(cohort, imp.seed, b);
        let replicate = impute_cohort(
            imp,
            &sample,
            imp.per_replicate,
            imp.seed ^ (b as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
        .map(|imputations| {
            pooled_runs(
                plan,
                &sample,
                &imputations,
                analyses,
                &crate::analysis::Quiet,
                point_only,
            )
        });
        for (k, a) in analyses.iter().enumerate() {
            let Some(Ok(run)) = point.get(&a.id) else {
                continue;
            };
            for (j, r) in run.results.iter().enumerate() {
                let values = replicate_values(&replicate, &a.id, r);
                if let (Err(why), None) = (&values, &failed_first) {
                    failed_first = Some(format!("replicate {}: {why}", b + 1));
                }
                let values = values.ok();
                for i in 0..r.estimates.len() {
                    let v = values
                        .as_ref()
                        .and_then(|v| v.get(i).copied())
                        .unwrap_or(f64::NAN);
                    draws[k][j][i].push(v);
                }
            }
        }
        observer.replicate();
    }
    for (k, a) in analyses.iter().enumerate() {
        if let Some(Ok(run)) = point.get_mut(&a.id) {
            for (j, r) in run.results.iter_mut().enumerate() {
                apply_replicates(r, &draws[k][j], imp, a, failed_first.as_deref());
            }
        }
    }
    point
}

/// One replicate's estimates of result `r` (matched by outcome, comparison
/// and row key), or why the replicate failed for it.
fn replicate_values(
    replicate: &Result<HashMap<String, Result<AnalysisRun>>>,
    id: &str,
    r: &AnalysisResult,
) -> Result<Vec<f64>, String> {
    let runs = replicate
        .as_ref()
        .map_err(|e| format!("the imputation failed: {e:#}"))?;
    let run = match runs.get(id) {
        Some(Ok(run)) => run,
        Some(Err(e)) => return Err(format!("{e:#}")),
        None => return Err("not run".into()),
    };
    let other = run
        .results
        .iter()
        .find(|x| x.outcome == r.outcome && x.comparison == r.comparison)
        .ok_or_else(|| run.failures.join("; "))?;
    r.estimates
        .iter()
        .map(|e| {
            other
                .get(&e.quantity, e.factor.as_deref(), e.term.as_deref())
                .map(|x| x.estimate)
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("no finite `{}`", e.term.as_deref().unwrap_or(&e.quantity)))
        })
        .collect()
}

/// The replicates' SEs and intervals on a pooled point result.
fn apply_replicates(
    r: &mut AnalysisResult,
    draws: &[Vec<f64>],
    imp: &ImputationPlan,
    a: &AnalysisPlan,
    first_failure: Option<&str>,
) {
    let total = imp.replicates;
    let failed = draws
        .first()
        .map_or(0, |d| d.iter().filter(|v| v.is_nan()).count());
    let interval = match a.inference.interval {
        RawInterval::Normal => Interval::Normal,
        _ => Interval::Percentile,
    };
    let verdict = healthgap_decompose::inference::failure_verdict(
        "bootstrap-then-impute replicates",
        failed,
        total,
        first_failure,
    );
    let withheld = match verdict {
        Some(Err(why)) => Some(why),
        Some(Ok(warning)) => {
            r.warnings.push(warning);
            None
        }
        None => None,
    };
    for (e, d) in r.estimates.iter_mut().zip(draws) {
        let ok: Vec<f64> = d.iter().copied().filter(|v| v.is_finite()).collect();
        let mut row = e.clone().without_inference();
        row.imputation = None;
        if withheld.is_none() {
            let inf = infer(e.estimate, &ok, a.inference.level, interval, None);
            row = row
                .with_inference(inf.se, inf.ci_low, inf.ci_high, inf.p_value)
                .made_by(match interval {
                    Interval::Normal => SeMethod::BootstrapNormal,
                    _ => SeMethod::BootstrapPercentile,
                });
        }
        *e = row;
    }
    r.inference.method = "bootstrap".into();
    r.inference.imputation = Some("bootstrap-then-impute".into());
    r.inference.replicates = Some(total);
    r.inference.replicates_ok = Some(total - failed);
    r.inference.interval = match interval {
        Interval::Normal => "normal".into(),
        _ => "percentile".into(),
    };
    r.inference.note = Some(format!(
        "bootstrap-then-impute: {total} resamples{}, each imputed {} times afresh; point estimates \
         pooled over the study's {} imputations{}",
        if r.inference.cluster.is_some() {
            " by cluster"
        } else {
            ""
        },
        imp.per_replicate,
        imp.m,
        if a.inference.interval == RawInterval::Bca {
            "; BCa is not available here, so the interval is the percentile one"
        } else {
            ""
        }
    ));
    if let Some(why) = &withheld {
        r.warnings.push(format!("intervals withheld: {why}"));
    }
    r.inference.withheld = withheld;
}

/// Bootstrap resample `b` of the cohort: clusters drawn with replacement
/// (each drawn copy its own cluster), or rows when there is no cluster.
fn resample(cohort: &Cohort, seed: u64, b: usize) -> Cohort {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x424F_4F54_4D49);
    rng.set_stream(b as u64);
    match &cohort.cluster {
        Some((_, codes, g)) => {
            let mut members: Vec<Vec<usize>> = vec![Vec::new(); *g];
            for (i, &c) in codes.iter().enumerate() {
                members[c as usize].push(i);
            }
            let mut rows = Vec::with_capacity(cohort.n());
            let mut new_codes = Vec::with_capacity(cohort.n());
            for copy in 0..*g {
                let drawn = rng.random_range(0..*g);
                rows.extend(&members[drawn]);
                new_codes.extend(std::iter::repeat_n(copy as u32, members[drawn].len()));
            }
            cohort.take(&rows, Some((new_codes, *g)))
        }
        None => {
            let n = cohort.n();
            let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            cohort.take(&rows, None)
        }
    }
}

/// Bins of the observed-against-imputed histograms of a number.
const BINS: usize = 12;

/// results.json's `imputation`: settings, missingness by group and the
/// diagnostics of every imputed variable, small cells suppressed.
pub(crate) fn summary(
    imp: &ImputationPlan,
    cohort: &Cohort,
    imputations: &Imputations,
    analyses: &[&AnalysisPlan],
    min_cell: usize,
) -> ImputationSummary {
    let input = input(imp, cohort).ok();
    let predictors = input
        .as_ref()
        .map(|i| {
            i.variables
                .iter()
                .filter(|v| v.predictor)
                .map(|v| v.name.clone())
                .collect()
        })
        .unwrap_or_default();
    ImputationSummary {
        m: imp.m,
        iterations: imp.iterations,
        seed: imp.seed,
        donors: imp.donors,
        by_group: imp.by_group,
        cluster: match imp.cluster {
            ClusterTerm::Means => "means",
            ClusterTerm::FixedEffect => "fixed_effect",
            ClusterTerm::None => "none",
        }
        .into(),
        inference: match imp.inference {
            RawImputationInference::Rubin => "rubin",
            RawImputationInference::Bootstrap => "bootstrap-then-impute",
        }
        .into(),
        replicates: (imp.inference == RawImputationInference::Bootstrap)
            .then_some((imp.replicates, imp.per_replicate)),
        analyses: analyses.iter().map(|a| a.id.clone()).collect(),
        predictors,
        variables: imputations
            .imputed
            .iter()
            .map(|t| imputed_variable(cohort, imputations, t, min_cell))
            .collect(),
        warnings: imputations.warnings.clone(),
    }
}

/// One imputed variable's missingness by group and its diagnostics.
fn imputed_variable(
    cohort: &Cohort,
    imputations: &Imputations,
    t: &Imputed,
    min_cell: usize,
) -> ImputedVariable {
    let groups = cohort.group_labels.len();
    let counts = cohort.group_counts();
    let mut missing = vec![0usize; groups];
    for &r in &t.rows {
        missing[cohort.group[r as usize] as usize] += 1;
    }
    let variable = &cohort.variables[t.variable];
    ImputedVariable {
        name: t.name.clone(),
        method: t.method.as_str().into(),
        missing: (0..groups)
            .map(|g| {
                let shown = suppress::missing(missing[g], counts[g], min_cell);
                GroupShare {
                    group: cohort.group_labels[g].clone(),
                    missing: shown,
                    share: shown.map(|k| k as f64 / counts[g].max(1) as f64),
                }
            })
            .collect(),
        distributions: (0..groups)
            .map(|g| distribution(cohort, &variable.values, imputations, t, g as u32, min_cell))
            .collect(),
        trace: if t.rows.len() >= min_cell {
            t.trace.clone()
        } else {
            Vec::new()
        },
    }
}

/// Observed against imputed values of one variable in group `g`.
fn distribution(
    cohort: &Cohort,
    values: &CohortValues,
    imputations: &Imputations,
    t: &Imputed,
    g: u32,
    min_cell: usize,
) -> Distribution {
    let in_group = |r: usize| cohort.group[r] == g;
    let observed: Vec<f64> = match values {
        CohortValues::Numeric(x) => (0..x.len())
            .filter(|&r| in_group(r) && !x[r].is_nan())
            .map(|r| x[r])
            .collect(),
        CohortValues::Categorical { codes, .. } => (0..codes.len())
            .filter(|&r| in_group(r) && codes[r] != healthgap_cohort::MISSING_CODE)
            .map(|r| f64::from(codes[r]))
            .collect(),
    };
    let imputed: Vec<f64> = (0..imputations.m)
        .flat_map(|l| {
            t.rows
                .iter()
                .zip(t.imputation(l))
                .filter(|(r, _)| in_group(**r as usize))
                .map(|(_, v)| *v)
        })
        .collect();
    let per_imputation = imputed.len() / imputations.m.max(1);
    let (bins, bin_of): (Vec<String>, Box<dyn Fn(f64) -> usize>) = match values {
        CohortValues::Categorical { levels, .. } => (levels.clone(), Box::new(|v: f64| v as usize)),
        CohortValues::Numeric(_) if values_binary(&observed) => (
            vec!["0".into(), "1".into()],
            Box::new(|v: f64| usize::from(v != 0.0)),
        ),
        CohortValues::Numeric(x) => {
            // The bins span the min_cell-th smallest to the min_cell-th
            // largest observed value (every group), so that no edge is one
            // patient's value; values beyond fall in the end bins.
            let mut sorted: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
            sorted.sort_by(f64::total_cmp);
            let k = min_cell.min(sorted.len().saturating_sub(1) / 2);
            let (lo, hi) = match sorted.len() {
                0 => (0.0, 1.0),
                n => (sorted[k], sorted[n - 1 - k]),
            };
            let width = ((hi - lo) / BINS as f64).max(f64::MIN_POSITIVE);
            (
                (0..BINS)
                    .map(|k| format!("{:.3}", lo + (k as f64 + 0.5) * width))
                    .collect(),
                Box::new(move |v: f64| (((v - lo).max(0.0) / width) as usize).min(BINS - 1)),
            )
        }
    };
    let histogram = |vals: &[f64]| {
        let mut c = vec![0usize; bins.len()];
        for &v in vals {
            if let Some(k) = c.get_mut(bin_of(v)) {
                *k += 1;
            }
        }
        c
    };
    let (obs_counts, imp_counts) = (histogram(&observed), histogram(&imputed));
    let m = imputations.m.max(1);
    let shares = |counts: &[usize], total: usize, per: usize| -> Vec<Option<f64>> {
        counts
            .iter()
            .zip(suppress::histogram(counts, per, min_cell))
            .map(|(&c, shown)| shown.then(|| c as f64 / total.max(1) as f64))
            .collect()
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Distribution {
        group: cohort.group_labels[g as usize].clone(),
        bins,
        observed: shares(&obs_counts, observed.len(), 1),
        imputed: shares(&imp_counts, imputed.len(), m),
        means: (matches!(values, CohortValues::Numeric(_))
            && observed.len() >= min_cell
            && per_imputation >= min_cell)
            .then(|| (mean(&observed), mean(&imputed))),
    }
}

/// Whether every value is 0 or 1.
fn values_binary(v: &[f64]) -> bool {
    v.iter().all(|x| *x == 0.0 || *x == 1.0)
}
