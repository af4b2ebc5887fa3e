//! The report's section 6, "Hospitals": caterpillar plots of
//! risk-standardized rates and concentration curves, with notes on the plots
//! left out.

use super::{Figure, ReportInput, curve, slug};
use crate::ReportError;
use crate::figures;
use crate::results::Results;
use healthgap_decompose::{AnalysisResult, MethodSpec};

/// Whether `a` is the first result of its analysis and outcome. Profiles use
/// every patient, so the caterpillar is the same for each comparison group:
/// draw it once per analysis and outcome.
fn first_of_outcome(r: &Results, a: &AnalysisResult) -> bool {
    r.analyses
        .iter()
        .find(|b| b.id == a.id && b.outcome == a.outcome)
        .is_some_and(|b| std::ptr::eq(a, b))
}

/// The notes on caterpillar plots left out (fewer than 10 hospitals with a
/// rate shown), per hospital analysis and outcome.
pub(super) fn notes(input: &ReportInput) -> Vec<String> {
    let mut hospital_notes = Vec::new();
    for a in &input.results.analyses {
        if !matches!(a.spec, MethodSpec::Hospital(_)) || !first_of_outcome(input.results, a) {
            continue;
        }
        if a.hospitals.is_empty() {
            // A study from moments computes no profiles (its warning says so).
            hospital_notes.push(format!(
                "{}: no hospital profiles of {} — they need each patient's expected outcome, \
                 and this study ran from moments computed in the warehouse",
                a.id, a.outcome
            ));
            continue;
        }
        let shown = a
            .hospitals
            .iter()
            .filter(|h| h.risk_standardized.is_some())
            .count();
        if shown < 10 {
            let m = input.min_cell;
            hospital_notes.push(format!(
                "{}: no caterpillar plot of {} — only {shown} of {} hospitals have rates \
                 shown ({})",
                a.id,
                a.outcome,
                a.hospitals.len(),
                if a.binary {
                    format!("a rate needs at least {m} events and {m} non-events")
                } else {
                    format!("a rate needs at least {m} patients")
                }
            ));
        }
    }
    hospital_notes
}

/// The hospital figures of one analysis (none unless it is a hospital
/// analysis).
pub(super) fn figures_of(
    input: &ReportInput,
    a: &AnalysisResult,
) -> Result<Vec<Figure>, ReportError> {
    if !matches!(a.spec, MethodSpec::Hospital(_)) {
        return Ok(Vec::new());
    }
    hospital_figures(input, a, first_of_outcome(input.results, a))
}

fn hospital_figures(
    input: &ReportInput,
    a: &AnalysisResult,
    caterpillar: bool,
) -> Result<Vec<Figure>, ReportError> {
    let (label, scale) = input.outcome(&a.outcome);
    let f = scale.factor;
    let mut out = Vec::new();
    let rates: Vec<(f64, Option<(f64, f64)>)> = a
        .hospitals
        .iter()
        .filter_map(|h| {
            Some((
                h.risk_standardized? * f,
                h.rs_low.zip(h.rs_high).map(|(l, h)| (l * f, h * f)),
            ))
        })
        .collect();
    if caterpillar && rates.len() >= 10 {
        out.push(Figure {
            id: slug(&["caterpillar", &a.id, &a.outcome]),
            caption: format!(
                "{}: risk-standardized {} by hospital with {:.0}% intervals ({} of {} hospitals shown; \
                 the rest are suppressed below the minimum cell size)",
                a.id,
                label,
                100.0 * a.inference.level,
                rates.len(),
                a.hospitals.len()
            ),
            svg: figures::caterpillar(
                &format!("Risk-standardized {label}"),
                if f == 100.0 { "percent" } else { "outcome units" },
                &rates,
            )?,
        });
    }
    out.extend(hierarchical_figures(a, &label, f)?);
    let c = curve(a, "concentration_curve");
    let r = curve(a, "concentration_curve_reference");
    if !c.is_empty() {
        let with_origin = |mut v: Vec<(f64, f64)>| {
            v.insert(0, (0.0, 0.0));
            v
        };
        out.push(Figure {
            id: slug(&["concentration", &a.id, &a.outcome, &a.comparison]),
            caption: format!(
                "{}: cumulative share of each group's patients at hospitals ranked by {} volume \
                 (the diagonal is an even spread)",
                a.id, a.comparison
            ),
            svg: figures::curves(
                &format!("Concentration of {} patients", a.comparison),
                "share of hospitals (ranked by comparison-group volume)",
                "share of the group's patients",
                &[
                    (a.comparison.clone(), with_origin(c)),
                    (a.reference.clone(), with_origin(r)),
                ],
                true,
                false,
            )?,
        });
    }
    Ok(out)
}

/// The hierarchical model's figures (with `model = "hierarchical"`): the
/// caterpillar of its risk-standardized rates, of the hospitals' disparities
/// (with a random slope), and the funnel plot of risk-standardized rates
/// against volume. Suppressed hospitals are left out of all three.
fn hierarchical_figures(
    a: &AnalysisResult,
    label: &str,
    f: f64,
) -> Result<Vec<Figure>, ReportError> {
    let rows: Vec<_> = a
        .hospitals
        .iter()
        .filter_map(|h| h.hierarchical.as_ref().map(|r| (h, r)))
        .collect();
    let mut out = Vec::new();
    let pct = if f == 100.0 {
        "percent"
    } else {
        "outcome units"
    };
    let rates: Vec<(f64, Option<(f64, f64)>)> = rows
        .iter()
        .filter_map(|(_, r)| {
            Some((
                r.rsr? * f,
                r.rsr_low.zip(r.rsr_high).map(|(l, h)| (l * f, h * f)),
            ))
        })
        .collect();
    if rates.len() >= 10 {
        out.push(Figure {
            id: slug(&["caterpillar-hierarchical", &a.id, &a.outcome, &a.comparison]),
            caption: format!(
                "{}: risk-standardized {label} by hospital from the hierarchical model (predicted over expected times the \
                 overall rate) with {:.0}% hospital-bootstrap intervals ({} hospitals shown)",
                a.id,
                100.0 * a.inference.level,
                rates.len()
            ),
            svg: figures::caterpillar(&format!("Risk-standardized {label} (hierarchical model)"), pct, &rates)?,
        });
    }
    let disparities: Vec<(f64, Option<(f64, f64)>)> = rows
        .iter()
        .filter_map(|(_, r)| Some((r.disparity?, r.disparity_low.zip(r.disparity_high))))
        .collect();
    if disparities.len() >= 10 {
        out.push(Figure {
            id: slug(&["disparities", &a.id, &a.outcome, &a.comparison]),
            caption: format!(
                "{}: each hospital's {} vs {} difference on the model's link scale (γ + v_h, shrunken) with {:.0}% intervals \
                 ({} hospitals shown; hospitals with a suppressed group count are left out)",
                a.id,
                a.comparison,
                a.reference,
                100.0 * a.inference.level,
                disparities.len()
            ),
            svg: figures::ranked(
                &format!("Hospital-specific disparity, {} vs {}", a.comparison, a.reference),
                "hospitals ranked by disparity",
                "link scale (log odds for the logit)",
                &disparities,
                false,
            )?,
        });
    }
    let overall = a
        .estimates
        .iter()
        .find(|e| e.quantity == "overall_rate")
        .map(|e| e.estimate);
    let points: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|(h, r)| Some((h.n? as f64, r.rsr? * f)))
        .collect();
    if let (Some(p0), true, true) = (overall, points.len() >= 10, f == 100.0) {
        out.push(Figure {
            id: slug(&["funnel", &a.id, &a.outcome, &a.comparison]),
            caption: format!(
                "{}: risk-standardized {label} against the number of patients, with the overall rate and its 95% (grey) \
                 and 99.8% (black) control limits ({} hospitals shown)",
                a.id,
                points.len()
            ),
            svg: figures::funnel(&format!("Funnel plot, {label}"), pct, &points, p0, f)?,
        });
    }
    Ok(out)
}
