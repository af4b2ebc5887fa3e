//! The generated methods paragraph: one paragraph per analysis naming its
//! estimator, its reference coefficients or identifying choices, the inference
//! method and the replicates, with citations, plus the reference list.

use healthgap_decompose::AnalysisResult;
use serde_json::Value;

/// A string or list option as text (`a, b`), empty otherwise.
pub(crate) fn list(v: Option<&Value>) -> String {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn text<'a>(a: &'a AnalysisResult, key: &str) -> Option<&'a str> {
    a.options.get("analysis")?.get(key)?.as_str()
}

fn flag(a: &AnalysisResult, key: &str) -> Option<bool> {
    a.options.get("analysis")?.get(key)?.as_bool()
}

/// The delta method's variance, as `inference.vce` says it ran.
fn delta_variance(a: &AnalysisResult) -> String {
    match (a.inference.vce.as_str(), a.inference.cluster.as_ref()) {
        ("cluster", Some(c)) | (_, Some(c)) => format!(
            "cluster-robust variances (by {c}; the stacked sandwich of every model and mean, \
             CR1)"
        ),
        ("model", None)
            if a.method == "oaxaca_blinder" && text(a, "model").is_some_and(|m| m != "linear") =>
        {
            "model-based variances of each model (inverse information), the models taken as \
             independent and the covariates as fixed (Stata's mvdcmp convention)"
                .to_string()
        }
        ("model", None) if a.method == "oaxaca_blinder" => {
            "model-based (homoskedastic) variances of each group model, independent of each \
             other and of the covariate means (Jann 2008)"
                .to_string()
        }
        ("model", None) if a.method == "gelbach" => {
            "Gelbach's (2016) variance conditional on the regressors".to_string()
        }
        ("model", None) => {
            "model-based variances of each model, the models taken as independent".to_string()
        }
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
                    cite.push(EFRON);
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
        _ => format!(
            "Uncertainty: the delta method with {}, normal {level} intervals.",
            delta_variance(a)
        ),
    };
    if let Some(note) = &inf.note {
        text.push_str(&format!(" Approximation: {note}."));
    }
    if let Some(why) = &inf.withheld {
        text.push_str(&format!(" Intervals withheld: {why}."));
    }
    text
}

const OAXACA: &str = "Oaxaca RL. Male-female wage differentials in urban labor markets. Int Econ Rev 1973;14:693–709.";
const BLINDER: &str = "Blinder AS. Wage discrimination: reduced form and structural estimates. J Hum Resour 1973;8:436–455.";
const JANN: &str = "Jann B. The Blinder–Oaxaca decomposition for linear regression models. Stata J 2008;8:453–479.";
const YUN2005: &str = "Yun MS. A simple solution to the identification problem in detailed wage decompositions. Econ Inq 2005;43:766–772.";
const YUN2004: &str =
    "Yun MS. Decomposing differences in the first moment. Econ Lett 2004;82:275–280.";
const FAIRLIE: &str = "Fairlie RW. An extension of the Blinder-Oaxaca decomposition technique to logit and probit models. J Econ Soc Meas 2005;30:305–316.";
const GELBACH: &str = "Gelbach JB. When do covariates matter? And which ones, and how much? J Labor Econ 2016;34:509–543.";
const JACKSON: &str = "Jackson JW, VanderWeele TJ. Decomposition analysis to identify intervention targets for reducing disparities. Epidemiology 2018;29:825–835.";
const LUNDBERG: &str = "Lundberg I. The gap-closing estimand: a causal approach to study interventions that close disparities across social categories. Sociol Methods Res 2022.";
const SHAPLEY: &str = "Shorrocks AF. Decomposition procedures for distributional analysis: a unified framework based on the Shapley value. J Econ Inequal 2013;11:99–126.";
const VALERI: &str = "Valeri L, VanderWeele TJ. Mediation analysis allowing for exposure–mediator interactions and causal interpretation. Psychol Methods 2013;18:137–150.";
const IMAI: &str = "Imai K, Keele L, Yamamoto T. Identification, inference and sensitivity analysis for causal mediation effects. Stat Sci 2010;25:51–71.";
const EVALUE: &str = "VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the E-value. Ann Intern Med 2017;167:268–274.";
const KITAGAWA: &str =
    "Kitagawa EM. Components of a difference between two rates. J Am Stat Assoc 1955;50:857–879.";
const KRUMHOLZ: &str = "Krumholz HM, et al. An administrative claims model suitable for profiling hospital performance based on 30-day mortality rates. Circulation 2006;113:1683–1692.";
const CAMERON: &str = "Cameron AC, Miller DL. A practitioner's guide to cluster-robust inference. J Hum Resour 2015;50:317–372.";
const EFRON: &str =
    "Efron B. Better bootstrap confidence intervals. J Am Stat Assoc 1987;82:171–185.";

/// One paragraph per analysis id (the first outcome and comparison it ran
/// for stands for the rest) and the references cited, in order of citation.
pub fn paragraphs(
    analyses: &[AnalysisResult],
    factors: &[(String, Vec<String>)],
) -> (Vec<String>, Vec<String>) {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let mut cite: Vec<&'static str> = Vec::new();
    let blocks = factors
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
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
        let opts = a.options.get("analysis");
        let body = match a.method.as_str() {
            "crude" => "Crude gaps are differences in means between each comparison group and the \
                        reference group (risk differences for binary outcomes), with risk or mean \
                        ratios and, for binary outcomes, odds ratios."
                .to_string(),
            "oaxaca_blinder" => {
                let model = text(a, "model").unwrap_or("linear");
                if model == "linear" {
                    cite.extend([OAXACA, BLINDER, JANN]);
                    let coef = text(a, "coefficients").unwrap_or("pooled");
                    let reference = match coef {
                        "pooled" => {
                            "the pooled model with a group indicator (Jann 2008)".to_string()
                        }
                        "reference" => "the reference group's coefficients".into(),
                        "comparison" => "the comparison group's coefficients".into(),
                        "neumark" => "the pooled model without a group indicator (Neumark)".into(),
                        "cotton" => {
                            "the size-weighted average of both groups' coefficients (Cotton)".into()
                        }
                        "reimers" => "the average of both groups' coefficients (Reimers)".into(),
                        other => other.to_string(),
                    };
                    let mut s = format!(
                        "A linear Oaxaca–Blinder decomposition (Oaxaca 1973; Blinder 1973) split the \
                         gap into a part explained by differences in the factor blocks ({blocks}) \
                         and an unexplained part, with reference coefficients from {reference}"
                    );
                    if flag(a, "threefold") == Some(true) {
                        s.push_str("; a threefold split (endowments, coefficients, interaction) was also computed");
                    }
                    if flag(a, "normalize") != Some(false) {
                        cite.push(YUN2005);
                        s.push_str(
                            ". Categorical variables were normalized (Yun 2005) so that the detailed \
                             parts do not depend on the base level",
                        );
                    }
                    s.push('.');
                    s
                } else {
                    cite.extend([YUN2004, FAIRLIE]);
                    format!(
                        "A nonlinear ({model}) decomposition (Yun 2004) split the gap into explained \
                         and unexplained parts with detailed weights per term, and Fairlie's (2005) \
                         sequential replacement over randomly ordered factor blocks gave an \
                         order-free detailed attribution."
                    )
                }
            }
            "gelbach" => {
                cite.push(GELBACH);
                format!(
                    "Gelbach's (2016) decomposition attributed the change in the group coefficient \
                     of a linear model, from a base model adjusting for {} to the full model adding \
                     {}, to each added block; the attribution does not depend on the order in which \
                     the blocks are added.",
                    list(opts.and_then(|o| o.get("base"))),
                    list(opts.and_then(|o| o.get("added")))
                )
            }
            "disparity_reduction" => {
                cite.extend([JACKSON, LUNDBERG, SHAPLEY, EVALUE]);
                format!(
                    "Interventional disparity reduction (Jackson & VanderWeele 2018) estimated, by \
                     {} with {} Monte Carlo draws per patient and common random numbers, \
                     how much of the disparity standardized over {} would remain if each target \
                     block ({}) of the comparison group were drawn from the reference group's \
                     distribution given those covariates; the care-site target reassigns hospitals \
                     (the gap-closing estimand of Lundberg 2022). Reductions are reported for each \
                     target alone, jointly, sequentially in the configured order and as Shapley \
                     values over all orders (Shorrocks 2013), with E-values for the remaining \
                     disparity (VanderWeele & Ding 2017).",
                    match text(a, "estimator") {
                        Some("weighting") =>
                            "weighting by density ratios (logistic classifiers of \
                                              intervened against observed covariates, with every \
                                              covariate and the interactions of the intervened \
                                              blocks' columns with the others; covariate balance \
                                              is reported as standardized differences)",
                        Some("doubly_robust") =>
                            "a doubly robust estimator (g-computation plus \
                                                  density-ratio-weighted residuals of the outcome \
                                                  model; the classifiers include the interactions \
                                                  of the intervened blocks' columns with the others)",
                        _ => "g-computation",
                    },
                    opts.and_then(|o| o.get("draws"))
                        .and_then(Value::as_u64)
                        .unwrap_or(5),
                    list(opts.and_then(|o| o.get("allowable"))),
                    list(opts.and_then(|o| o.get("targets")))
                )
            }
            "mediation" => {
                cite.extend([VALERI, IMAI, EVALUE]);
                format!(
                    "Regression-based causal mediation (Valeri & VanderWeele 2013) through {} with \
                     confounders {}{} gave natural direct and indirect effects of group membership \
                     and the proportion mediated; the E-value (VanderWeele & Ding 2017) and, for a \
                     continuous outcome and mediator, the ρ-sensitivity curve (Imai, Keele & \
                     Yamamoto 2010) describe sensitivity to unmeasured mediator–outcome \
                     confounding.",
                    list(opts.and_then(|o| o.get("mediators"))),
                    list(opts.and_then(|o| o.get("confounders"))),
                    if flag(a, "interaction") == Some(true) {
                        " and an exposure–mediator interaction"
                    } else {
                        ""
                    }
                )
            }
            "hospital" => {
                cite.extend([KITAGAWA, KRUMHOLZ]);
                format!(
                    "The care-site analysis split the gap into between- and within-hospital parts \
                     (Kitagawa 1955), compared the group coefficient of a linear probability model \
                     adjusting for {} without and with {} fixed effects, and profiled hospitals by \
                     risk-standardized rates (observed over expected times the overall rate; \
                     Krumholz et al. 2006).",
                    list(opts.and_then(|o| o.get("adjust"))),
                    text(a, "hospital").unwrap_or("hospital")
                )
            }
            other => format!("Method {other}."),
        };
        let mut inf = inference(a, &mut cite);
        if a.inference.cluster.is_some() {
            cite.push(CAMERON);
            inf.push_str(" Clustered inference follows Cameron & Miller (2015).");
        }
        out.push(format!(
            "{} ({}; outcomes: {}). {body} {inf}",
            a.id,
            a.method,
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
