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
        let shown = a
            .hospitals
            .iter()
            .filter(|h| h.risk_standardized.is_some())
            .count();
        if shown < 10 {
            hospital_notes.push(format!(
                "{}: no caterpillar plot of {} — only {shown} of {} hospitals have rates \
                 shown (a rate needs at least {} events and {} non-events)",
                a.id,
                a.outcome,
                a.hospitals.len(),
                input.min_cell,
                input.min_cell
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
