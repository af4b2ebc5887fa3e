//! The report's section 7, "Sensitivity": E-values, the ρ at which the
//! indirect effect is zero and the ρ-sensitivity curves.

use super::{Figure, ReportInput, Table, curve, slug};
use crate::ReportError;
use crate::figures;
use crate::format::num;
use healthgap_decompose::{AnalysisResult, MethodSpec};

/// The table of E-values and ρ points, per analysis.
pub(super) fn table(input: &ReportInput) -> Table {
    let mut sensitivity_rows = Vec::new();
    for a in &input.results.analyses {
        let (label, _) = input.outcome(&a.outcome);
        for e in a
            .estimates
            .iter()
            .filter(|e| e.quantity.starts_with("e_value"))
        {
            sensitivity_rows.push(vec![
                a.id.clone(),
                format!("{label}: {} vs {}", a.comparison, a.reference),
                e.quantity.replace('_', " "),
                e.factor.clone().unwrap_or_else(|| {
                    if matches!(a.spec, MethodSpec::DisparityReduction(_)) {
                        "all targets".into()
                    } else {
                        String::new()
                    }
                }),
                num(Some(e.estimate)),
                num(e.ci_low),
            ]);
        }
        if let Some(e) = a.get("rho_at_zero_indirect_effect", None, None) {
            sensitivity_rows.push(vec![
                a.id.clone(),
                format!("{label}: {} vs {}", a.comparison, a.reference),
                "ρ at which the indirect effect is zero".into(),
                String::new(),
                num(Some(e.estimate)),
                "—".into(),
            ]);
        }
    }
    Table {
        head: [
            "analysis",
            "outcome and groups",
            "quantity",
            "target",
            "E-value",
            "E-value of the CI limit",
        ]
        .map(String::from)
        .to_vec(),
        rows: sensitivity_rows,
        numeric_from: 4,
        note: Some(
            "E-value (VanderWeele & Ding 2017): the minimum strength of association, on the \
             risk-ratio scale, that an unmeasured confounder would need with both the group and \
             the outcome to explain the estimate away."
                .into(),
        ),
    }
}

/// The ρ-sensitivity curve of one analysis (none without `indirect_effect_at_rho`
/// estimates).
pub(super) fn rho_figure(
    input: &ReportInput,
    a: &AnalysisResult,
) -> Result<Option<Figure>, ReportError> {
    let points = curve(a, "indirect_effect_at_rho");
    if points.is_empty() {
        return Ok(None);
    }
    let (_, scale) = input.outcome(&a.outcome);
    let zero = a
        .get("rho_at_zero_indirect_effect", None, None)
        .map(|e| {
            format!(
                "; the indirect effect is zero at ρ = {}",
                num(Some(e.estimate))
            )
        })
        .unwrap_or_default();
    Ok(Some(Figure {
        id: slug(&["rho", &a.id, &a.outcome, &a.comparison]),
        caption: format!(
            "{}: indirect effect of {} vs {} under a correlation ρ between the mediator's and the \
             outcome's errors{zero}{}",
            a.id,
            a.comparison,
            a.reference,
            if matches!(&a.spec, MethodSpec::Mediation(m) if m.interaction) {
                ". The curve comes from models without the exposure–mediator interaction, so at \
                 ρ = 0 it can differ from the reported indirect effect"
            } else {
                ""
            }
        ),
        svg: figures::curves(
            &format!("ρ-sensitivity: {} vs {}", a.comparison, a.reference),
            "ρ",
            &input
                .x_label(&a.outcome)
                .replace("difference in", "indirect effect on"),
            &[(
                "indirect effect".into(),
                points.iter().map(|(r, v)| (*r, v * scale.factor)).collect(),
            )],
            false,
            true,
        )?,
    }))
}
