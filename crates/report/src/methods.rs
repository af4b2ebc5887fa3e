//! The generated methods paragraph: one paragraph per analysis naming its
//! estimator, its reference coefficients or identifying choices, the inference
//! method and the replicates, with citations, plus the reference list.

use healthgap_decompose::AnalysisResult;
use healthgap_decompose::spec::{Context, cite};

/// The delta method's variance, as `inference.vce` says it ran.
fn delta_variance(a: &AnalysisResult) -> String {
    match (a.inference.vce.as_str(), a.inference.cluster.as_ref()) {
        (_, Some(c)) => format!(
            "cluster-robust variances (by {c}; the stacked sandwich of every model and mean, \
             CR1)"
        ),
        ("model", None) => a.spec.spec().model_variance().to_string(),
        _ => "heteroskedasticity-robust variances (every patient their own unit: the stacked \
             influence functions of every model and mean, n/(n−1)·Σψψ′, as Stata's suest)"
            .to_string(),
    }
}

fn inference(a: &AnalysisResult, cite: &mut Vec<&'static str>) -> String {
    let inf = &a.inference;
    let level = format!("{:.0}%", 100.0 * inf.level);
    let mut text = match inf.method.as_str() {
        "bootstrap" => {
            let interval = match inf.interval.as_str() {
                "bca" => {
                    cite.push(cite::EFRON);
                    "bias-corrected and accelerated (BCa; Efron 1987)"
                }
                "normal" => "normal (bootstrap SE)",
                _ => "percentile",
            };
            let unit = inf
                .cluster
                .as_ref()
                .map_or("patients".to_string(), |c| format!("clusters ({c})"));
            let mixed = a
                .estimates
                .iter()
                .any(|e| e.se_method.as_str().starts_with("delta"));
            format!(
                "Uncertainty: a bootstrap resampling {unit} with {} replicates ({} succeeded; failed \
                 replicates are counted, not replaced, and above 1% the intervals are withheld), \
                 {interval} {level} intervals; the point estimate is the full-sample estimate.{}",
                inf.replicates.unwrap_or(0),
                inf.replicates_ok.unwrap_or(0),
                if mixed {
                    format!(
                        " Rows marked delta-* in the tables use the delta method with {} instead.",
                        delta_variance(a)
                    )
                } else {
                    String::new()
                }
            )
        }
        "influence_function" => {
            let unit = inf
                .cluster
                .as_ref()
                .map_or("patient, n/(n−1)".to_string(), |c| {
                    format!("cluster ({c}), G/(G−1)")
                });
            format!(
                "Uncertainty: standard errors from the estimator's influence functions with the \
                 cross-fitted nuisance models held fixed, summed by {unit}; normal {level} \
                 intervals."
            )
        }
        _ => format!(
            "Uncertainty: the delta method with {}, normal {level} intervals.",
            delta_variance(a)
        ),
    };
    match inf.imputation.as_deref() {
        Some("rubin") => text.push_str(
            " The analysis ran on each imputed data set and its estimates were pooled by Rubin's \
             rules (Rubin 1987): the total variance is the mean within-imputation variance plus \
             (1 + 1/m) times the between-imputation variance, and intervals are t intervals on \
             the Barnard–Rubin degrees of freedom (large-sample complete-data degrees of freedom; \
             ratios pooled on the log scale); the tables give each row's fraction of missing \
             information (FMI).",
        ),
        Some(_) => text.push_str(
            " Bootstrap-then-impute (Bartlett & Hughes 2020): each replicate resampled the \
             incomplete cohort and was imputed afresh, its point estimate the mean over its \
             imputations; the point estimate is the mean over the study's imputations.",
        ),
        None => {}
    }
    if let Some(note) = &inf.note {
        text.push_str(&format!(" Approximation: {note}."));
    }
    if let Some(why) = &inf.withheld {
        text.push_str(&format!(" Intervals withheld: {why}."));
    }
    text
}

/// The study's imputation: the models, m, iterations, predictors and the
/// pooling rule (van Buuren 2018; Rubin 1987; Barnard & Rubin 1999).
pub fn imputation_paragraph(s: &crate::results::ImputationSummary) -> String {
    let models: Vec<String> = s
        .variables
        .iter()
        .map(|v| {
            format!(
                "{} by {}",
                v.name,
                match v.method.as_str() {
                    "pmm" => "predictive mean matching (type-1 matching, a random one of the nearest donors)",
                    "norm" => "Bayesian linear regression",
                    "logistic" => "Bayesian logistic regression",
                    _ => "Bayesian multinomial logistic regression",
                }
            )
        })
        .collect();
    format!(
        "Missing data. Missing values were imputed by multiple imputation by chained equations (van \
         Buuren & Groothuis-Oudshoorn 2011): {}. Each model's parameters were drawn from their \
         approximate posterior before the values were drawn (as mice's norm, pmm, logreg and \
         polyreg do); the predictors were {}{}{}. m = {} imputations of {} iterations each (seed \
         {}), from random draws of the observed values. {}{}",
        models.join("; "),
        s.predictors.join(", "),
        if s.by_group { ", each group imputed separately so that group-specific relationships are kept" } else { "" },
        match s.cluster.as_str() {
            "means" => ", and each hospital's mean of the predictors (Enders, Mistler & Keller 2016)",
            "fixed_effect" => ", and the hospital as a fixed effect",
            _ => "",
        },
        s.m,
        s.iterations,
        s.seed,
        match s.replicates {
            Some((b, k)) => format!(
                "Inference by bootstrap-then-impute (Bartlett & Hughes 2020): {b} resamples of the \
                 incomplete cohort (by cluster), each imputed {k} times."
            ),
            None => "Estimates were pooled by Rubin's rules with Barnard–Rubin degrees of freedom (Barnard & Rubin 1999).".into(),
        },
        if s.warnings.is_empty() {
            String::new()
        } else {
            format!(" Fallbacks: {}.", s.warnings.join("; "))
        }
    )
}

/// One paragraph per analysis id (the first outcome and comparison it ran
/// for stands for the rest) and the references cited, in order of citation.
pub fn paragraphs(
    analyses: &[AnalysisResult],
    factors: &[(String, Vec<String>)],
    from_moments: bool,
) -> (Vec<String>, Vec<String>) {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let mut cite: Vec<&'static str> = Vec::new();
    let context = Context {
        blocks: factors
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        from_moments,
    };
    for a in analyses {
        if seen.contains(&a.id.as_str()) {
            continue;
        }
        seen.push(&a.id);
        let outcomes: Vec<&str> = {
            let mut o: Vec<&str> = Vec::new();
            for b in analyses.iter().filter(|b| b.id == a.id) {
                if !o.contains(&b.outcome.as_str()) {
                    o.push(&b.outcome);
                }
            }
            o
        };
        let body = a.spec.spec().describe(&context, &mut cite);
        let mut inf = inference(a, &mut cite);
        if a.inference.cluster.is_some() {
            cite.push(cite::CAMERON);
            inf.push_str(" Clustered inference follows Cameron & Miller (2015).");
        }
        out.push(format!(
            "{} ({}; outcomes: {}). {body} {inf}",
            a.id,
            a.spec.name(),
            outcomes.join(", ")
        ));
    }
    let mut refs: Vec<String> = Vec::new();
    for c in cite {
        if !refs.iter().any(|r| r == c) {
            refs.push(c.to_string());
        }
    }
    (out, refs)
}
