//! One analysis of the study: its complete cases per outcome, and per
//! comparison group the method's run on its design (the `run_*` runners).

use anyhow::{Context, Result, bail};

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
use healthgap_decompose::{AnalysisResult, Cluster, InferenceInfo, MethodSpec, Sample};
use healthgap_models::Link;
use healthgap_models::bootstrap::Interval;
use healthgap_report::suppress;

use crate::config::{RawInferenceMethod, RawInterval};
use crate::plan::{AnalysisPlan, Plan, vce_for_methods};
use crate::study::Observer;

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
        vce: vce_for_methods(plan.vce),
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
        let cluster = cohort.cluster.as_ref().map(|(name, codes, count)| Cluster {
            name,
            codes,
            count: *count,
        });
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
                sample: Sample {
                    y,
                    group: &group,
                    labels,
                    weights: cohort.weights.as_deref(),
                    cluster,
                    binary,
                    min_cell: plan.min_cell,
                },
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
    observer.finished(a);
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
    /// The outcome, the comparison's groups (0 reference, 1 comparison,
    /// 2 others), weights and cluster.
    sample: Sample<'a>,
    spec: &'a InferenceSpec,
    progress: &'a (dyn Fn() + Sync),
}

/// `method = "crude"` for one outcome and comparison.
fn run_crude(p: &Pair<'_>) -> Result<(MethodOutput, InferenceInfo)> {
    let &Pair { a, .. } = p;
    let sample = &p.sample;
    let Sample { group, .. } = *sample;
    let cluster_name = sample.cluster_name();
    let estimates = crude(&CrudeInput {
        sample,
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
        vce: if sample.cluster.is_some() {
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
        design,
        outcome,
        spec,
        progress,
        ..
    } = p;
    let sample = &p.sample;
    let Sample { binary, labels, .. } = *sample;
    let cluster_name = sample.cluster_name();
    let cov = covariates(design, &a.id)?;
    let coefficients = s.coefficients;
    let context = || format!("{outcome}, {} vs {}", labels[1], labels[0]);
    let output = match s.model {
        Model::Linear => {
            let input = LinearInput {
                sample,
                covariates: &cov,
                coefficients,
                threefold: s.threefold,
                normalize: s.normalize,
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
                sample,
                covariates: &cov,
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
        spec,
        progress,
        ..
    } = p;
    let sample = &p.sample;
    let Sample { labels, .. } = *sample;
    let cluster_name = sample.cluster_name();
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
        sample,
        covariates: &cov,
        base_columns,
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
        spec,
        progress,
        ..
    } = p;
    let sample = &p.sample;
    let Sample { labels, .. } = *sample;
    let cluster_name = sample.cluster_name();
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
        sample,
        covariates: &cov,
        hospital: fe(hname)?,
        extra_fe: extra,
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
        spec,
        progress,
        ..
    } = p;
    let sample = &p.sample;
    let Sample { labels, .. } = *sample;
    let cluster_name = sample.cluster_name();
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
        sample,
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
        draws: s.draws,
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
        spec,
        progress,
        ..
    } = p;
    let sample = &p.sample;
    let Sample { labels, .. } = *sample;
    let cluster_name = sample.cluster_name();
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
        sample,
        mediator: (&mdesign.terms[0].name, &mdesign.columns[0]),
        confounders: cdesign
            .terms
            .iter()
            .zip(&cdesign.columns)
            .map(|(t, v)| (t.name.clone(), v.as_slice()))
            .collect(),
        interaction: s.interaction,
        draws: 25,
        seed: plan.seed,
        level: a.inference.level,
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
