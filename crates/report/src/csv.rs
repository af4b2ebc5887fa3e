//! The CSV outputs: estimates.csv, models.csv, table1.csv, attrition.csv,
//! hospitals.csv (RFC 4180 quoting).

use healthgap_decompose::AnalysisResult;
use healthgap_decompose::hospital::HierarchicalRow;

use crate::results::{AttritionRow, Results};

/// Quotes a field when it holds a comma, a quote or a line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number in the shortest form that reads back exactly; scientific notation
/// for very small or very large magnitudes.
pub fn num(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map(|v| {
            let a = v.abs();
            if a != 0.0 && !(1e-5..1e15).contains(&a) {
                format!("{v:e}")
            } else {
                format!("{v}")
            }
        })
        .unwrap_or_default()
}

fn line(fields: &[String]) -> String {
    let mut s = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
}

/// estimates.csv: one row per estimate of every analysis.
pub fn estimates(analyses: &[AnalysisResult]) -> String {
    let mut out = line(
        &[
            "analysis",
            "method",
            "outcome",
            "reference",
            "comparison",
            "quantity",
            "factor",
            "term",
            "estimate",
            "se",
            "ci_low",
            "ci_high",
            "p_value",
            "se_method",
        ]
        .map(String::from),
    );
    for a in analyses {
        for e in &a.estimates {
            out.push_str(&line(&[
                a.id.clone(),
                a.spec.name().to_string(),
                a.outcome.clone(),
                a.reference.clone(),
                a.comparison.clone(),
                e.quantity.clone(),
                e.factor.clone().unwrap_or_default(),
                e.term.clone().unwrap_or_default(),
                num(Some(e.estimate)),
                num(e.se),
                num(e.ci_low),
                num(e.ci_high),
                num(e.p_value),
                e.se_method.as_str().to_string(),
            ]));
        }
    }
    out
}

/// models.csv: every fitted model's coefficients.
pub fn models(analyses: &[AnalysisResult]) -> String {
    let mut out = line(
        &[
            "analysis",
            "outcome",
            "comparison",
            "model",
            "family",
            "n",
            "clusters",
            "vcov",
            "converged",
            "term",
            "estimate",
            "se",
            "p_value",
            "ci_low",
            "ci_high",
        ]
        .map(String::from),
    );
    for a in analyses {
        for m in &a.models {
            for c in &m.coefficients {
                out.push_str(&line(&[
                    a.id.clone(),
                    a.outcome.clone(),
                    a.comparison.clone(),
                    m.label.clone(),
                    m.family.clone(),
                    m.n.map(|n| n.to_string()).unwrap_or_default(),
                    m.clusters.map(|g| g.to_string()).unwrap_or_default(),
                    m.vcov.clone(),
                    m.converged.to_string(),
                    c.term.clone(),
                    num(Some(c.estimate)),
                    num(Some(c.se)),
                    num(Some(c.p_value)),
                    num(Some(c.ci_low)),
                    num(Some(c.ci_high)),
                ]));
            }
        }
    }
    out
}

/// table1.csv: variable, level, one column per group, smd per comparison.
pub fn table1(results: &Results, labels: &[String]) -> String {
    let mut header = vec!["variable".to_string(), "level".to_string()];
    header.extend(labels.iter().cloned());
    header.extend(labels.iter().skip(1).map(|l| format!("smd_{l}")));
    let mut out = line(&header);
    for row in &results.cohort.table1 {
        let mut f = vec![row.variable.clone(), row.level.clone().unwrap_or_default()];
        f.extend(row.groups.iter().map(|c| c.text.clone()));
        f.extend(row.groups.iter().skip(1).map(|c| num(c.smd)));
        out.push_str(&line(&f));
    }
    out
}

/// attrition.csv.
pub fn attrition(rows: &[AttritionRow], analyses: &[AnalysisResult]) -> String {
    let mut out = line(
        &[
            "scope",
            "outcome",
            "comparison",
            "group",
            "step",
            "excluded",
            "remaining",
        ]
        .map(String::from),
    );
    for r in rows {
        out.push_str(&line(&[
            "cohort".into(),
            String::new(),
            String::new(),
            String::new(),
            r.step.clone(),
            r.text[0].clone(),
            r.text[1].clone(),
        ]));
    }
    for a in analyses {
        for r in &a.attrition {
            out.push_str(&line(&[
                a.id.clone(),
                a.outcome.clone(),
                a.comparison.clone(),
                r.group.clone(),
                r.step.clone(),
                r.text[0].clone(),
                r.text[1].clone(),
            ]));
        }
    }
    out
}

/// hospitals.csv: the per-hospital profiles of every `hospital` analysis
/// (already suppressed by the method, with complementary suppression):
/// small hidden counts read `<min_cell`, counts hidden only to protect
/// another hospital read `suppressed`, hidden rates are empty.
pub fn hospitals(analyses: &[AnalysisResult], min_cell: usize) -> String {
    let mut out = line(
        &[
            "analysis",
            "outcome",
            "reference",
            "comparison",
            "hospital",
            "n",
            "n_reference",
            "n_comparison",
            "comparison_share",
            "minority_serving",
            "observed",
            "expected",
            "risk_standardized",
            "rs_ci_low",
            "rs_ci_high",
            "hospital_effect",
            "hospital_effect_sd",
            "rsr_hierarchical",
            "rsr_ci_low",
            "rsr_ci_high",
            "rsr_class",
            "rsr_reference",
            "rsr_comparison",
            "disparity_log_odds",
            "disparity_ci_low",
            "disparity_ci_high",
            "disparity_risk_difference",
        ]
        .map(String::from),
    );
    for a in analyses {
        for h in &a.hospitals {
            // Counts hidden only to protect another hospital read `suppressed`.
            let hier = |f: fn(&HierarchicalRow) -> Option<f64>| h.hierarchical.as_ref().and_then(f);
            let count = |v: Option<usize>, complementary: bool| match v {
                None if complementary => "suppressed".to_string(),
                v => crate::format::count(v, min_cell),
            };
            out.push_str(&line(&[
                a.id.clone(),
                a.outcome.clone(),
                a.reference.clone(),
                a.comparison.clone(),
                h.hospital.clone(),
                count(h.n, h.n_complementary),
                count(h.n_reference, h.groups_complementary),
                count(h.n_comparison, h.groups_complementary),
                num(h.comparison_share),
                h.minority_serving.to_string(),
                num(h.observed),
                num(h.expected),
                num(h.risk_standardized),
                num(h.rs_low),
                num(h.rs_high),
                num(hier(|r| r.hospital_effect)),
                num(hier(|r| r.hospital_effect_sd)),
                num(hier(|r| r.rsr)),
                num(hier(|r| r.rsr_low)),
                num(hier(|r| r.rsr_high)),
                h.hierarchical
                    .as_ref()
                    .and_then(|r| r.rsr_class)
                    .unwrap_or_default()
                    .to_string(),
                num(hier(|r| r.rsr_reference)),
                num(hier(|r| r.rsr_comparison)),
                num(hier(|r| r.disparity)),
                num(hier(|r| r.disparity_low)),
                num(hier(|r| r.disparity_high)),
                num(hier(|r| r.disparity_risk_difference)),
            ]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_exactly_and_fields_are_quoted() {
        for v in [
            3.104_213_841_767_851_3e-304,
            0.021_701_161_191_260_677,
            1.0,
            -2.5e20,
            0.0,
        ] {
            assert_eq!(num(Some(v)).parse::<f64>().unwrap(), v);
        }
        assert_eq!(num(Some(f64::NAN)), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
