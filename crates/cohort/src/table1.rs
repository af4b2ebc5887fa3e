//! Table 1: each variable by group — mean (SD) or n (%), missing counts, and the
//! standardized mean difference of each comparison group against the reference:
//! SMD = (m_c − m_r) / √((s²_c + s²_r)/2), with s² = p(1 − p) for proportions
//! (Austin 2009).

use polars::prelude::*;
use serde::Serialize;

use crate::spec::{CohortSpec, OutcomeKind, VarKind};

/// One row of Table 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table1Row {
    /// Variable name.
    pub variable: String,
    /// Level for categorical rows.
    pub level: Option<String>,
    /// `mean (SD)`, `n (%)` or `k levels`, one per group label.
    pub cells: Vec<String>,
    /// The count behind an `n (%)` cell (for small-cell suppression).
    pub counts: Vec<Option<usize>>,
    /// Non-missing rows per group.
    pub denominators: Vec<usize>,
    /// Missing values per group.
    pub missing: Vec<usize>,
    /// SMD of each comparison group vs the reference (None where undefined).
    pub smd: Vec<Option<f64>>,
}

fn smd(mc: f64, mr: f64, vc: f64, vr: f64) -> Option<f64> {
    let s = ((vc + vr) / 2.0).sqrt();
    (s > 0.0 && s.is_finite()).then(|| (mc - mr) / s)
}

fn stats(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if n == 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let m = values.iter().sum::<f64>() / n;
    let v = if n > 1.0 {
        values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v)
}

/// Formats a number with a precision that suits its size.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "NA".into()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// Computes Table 1 for the outcomes and covariates of `spec` on `df`, whose rows
/// carry the group codes `group` (into `labels`).
pub fn compute(
    df: &DataFrame,
    spec: &CohortSpec,
    kinds: &[VarKind],
    group: &[u32],
    labels: &[String],
) -> Vec<Table1Row> {
    let ng = labels.len();
    let mut rows = Vec::new();
    let mut columns: Vec<(String, Option<VarKind>)> = spec
        .outcomes
        .iter()
        .map(|o| {
            (
                o.name.clone(),
                if o.kind == OutcomeKind::Binary {
                    None
                } else {
                    Some(VarKind::Numeric)
                },
            )
        })
        .collect();
    columns.extend(
        spec.variables
            .iter()
            .zip(kinds)
            .map(|(v, k)| (v.name.clone(), Some(k.clone()))),
    );
    for (name, kind) in columns {
        let Ok(col) = df.column(&name) else { continue };
        let s = col.as_materialized_series();
        let numeric = s.cast(&DataType::Float64).ok();
        let categorical = matches!(kind, Some(VarKind::Categorical { .. }));
        let mut missing = vec![0usize; ng];
        if categorical {
            let cd = crate::load::coded(s);
            let mut order: Vec<usize> = (0..cd.levels.len()).collect();
            order.sort_by(|a, b| crate::load::natural_cmp(&cd.levels[*a], &cd.levels[*b]));
            let mut denom = vec![0usize; ng];
            // count[level][group]
            let mut by_level = vec![vec![0usize; ng]; cd.levels.len()];
            for (c, &g) in cd.codes.iter().zip(group) {
                match c {
                    Some(c) => {
                        denom[g as usize] += 1;
                        by_level[*c as usize][g as usize] += 1;
                    }
                    None => missing[g as usize] += 1,
                }
            }
            let absorb = matches!(kind, Some(VarKind::Categorical { absorb: true, .. }))
                || cd.levels.len() > crate::load::ABSORB_THRESHOLD;
            if absorb {
                let distinct: Vec<usize> = (0..ng)
                    .map(|g| by_level.iter().filter(|l| l[g] > 0).count())
                    .collect();
                rows.push(Table1Row {
                    variable: name.clone(),
                    level: None,
                    cells: distinct.iter().map(|d| format!("{d} levels")).collect(),
                    counts: vec![None; ng],
                    denominators: denom,
                    missing,
                    smd: vec![None; ng - 1],
                });
                continue;
            }
            let levels: Vec<(String, Vec<usize>)> = order
                .iter()
                .map(|&l| (cd.levels[l].clone(), by_level[l].clone()))
                .collect();
            for (level, count) in levels {
                let p: Vec<f64> = (0..ng)
                    .map(|g| count[g] as f64 / denom[g].max(1) as f64)
                    .collect();
                rows.push(Table1Row {
                    variable: name.clone(),
                    level: Some(level),
                    cells: (0..ng)
                        .map(|g| format!("{} ({:.1}%)", count[g], 100.0 * p[g]))
                        .collect(),
                    counts: count.iter().map(|c| Some(*c)).collect(),
                    denominators: denom.clone(),
                    missing: missing.clone(),
                    smd: (1..ng)
                        .map(|g| smd(p[g], p[0], p[g] * (1.0 - p[g]), p[0] * (1.0 - p[0])))
                        .collect(),
                });
            }
            continue;
        }
        let Some(num) = numeric else { continue };
        let Ok(ca) = num.f64() else { continue };
        let mut by_group: Vec<Vec<f64>> = vec![Vec::new(); ng];
        for (v, &g) in ca.iter().zip(group) {
            match v {
                Some(x) if x.is_finite() => by_group[g as usize].push(x),
                _ => missing[g as usize] += 1,
            }
        }
        let binary = by_group.iter().flatten().all(|x| *x == 0.0 || *x == 1.0);
        let denominators: Vec<usize> = by_group.iter().map(Vec::len).collect();
        if binary {
            let count: Vec<usize> = by_group
                .iter()
                .map(|v| v.iter().filter(|x| **x == 1.0).count())
                .collect();
            let p: Vec<f64> = (0..ng)
                .map(|g| count[g] as f64 / denominators[g].max(1) as f64)
                .collect();
            rows.push(Table1Row {
                variable: name.clone(),
                level: None,
                cells: (0..ng)
                    .map(|g| format!("{} ({:.1}%)", count[g], 100.0 * p[g]))
                    .collect(),
                counts: count.iter().map(|c| Some(*c)).collect(),
                denominators,
                missing,
                smd: (1..ng)
                    .map(|g| smd(p[g], p[0], p[g] * (1.0 - p[g]), p[0] * (1.0 - p[0])))
                    .collect(),
            });
        } else {
            let st: Vec<(f64, f64)> = by_group.iter().map(|v| stats(v)).collect();
            rows.push(Table1Row {
                variable: name.clone(),
                level: None,
                cells: st
                    .iter()
                    .map(|(m, v)| format!("{} ({})", fmt_num(*m), fmt_num(v.sqrt())))
                    .collect(),
                counts: vec![None; ng],
                denominators,
                missing,
                smd: (1..ng)
                    .map(|g| smd(st[g].0, st[0].0, st[g].1, st[0].1))
                    .collect(),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{MissingPolicy, OutcomeSpec, Source, VariableSpec};

    fn spec() -> CohortSpec {
        CohortSpec {
            source: Source::Flat {
                path: "x.csv".into(),
            },
            filters: vec![],
            missing: MissingPolicy::CompleteCase,
            na_values: crate::spec::default_na_values(),
            group_column: "race".into(),
            reference: "White".into(),
            compare: vec!["Black".into()],
            group_display: Default::default(),
            outcomes: vec![OutcomeSpec {
                name: "death".into(),
                kind: OutcomeKind::Binary,
                label: "death".into(),
                event: None,
            }],
            variables: vec![
                VariableSpec {
                    name: "age".into(),
                    kind: None,
                    block: "b".into(),
                    min_count: None,
                },
                VariableSpec {
                    name: "ins".into(),
                    kind: None,
                    block: "s".into(),
                    min_count: None,
                },
            ],
            cluster: None,
            weights: None,
        }
    }

    #[test]
    fn smds_match_a_direct_computation() {
        let df = df!(
            "death" => [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
            "age" => [Some(60.0), Some(70.0), Some(65.0), None, Some(50.0), Some(58.0), Some(61.0)],
            "ins" => ["a", "b", "a", "a", "b", "b", "a"],
        )
        .unwrap();
        let group = [0, 0, 0, 0, 1, 1, 1];
        let kinds = [
            VarKind::Numeric,
            VarKind::Categorical {
                reference: None,
                absorb: false,
            },
        ];
        let rows = compute(
            &df,
            &spec(),
            &kinds,
            &group,
            &["White".into(), "Black".into()],
        );
        let age = rows.iter().find(|r| r.variable == "age").unwrap();
        // White ages 60, 70, 65 (one missing); Black 50, 58, 61.
        let (mr, vr) = (65.0, 25.0);
        let mc = (50.0 + 58.0 + 61.0) / 3.0;
        let vc = [50.0f64, 58.0, 61.0]
            .iter()
            .map(|x| (x - mc).powi(2))
            .sum::<f64>()
            / 2.0;
        assert!((age.smd[0].unwrap() - (mc - mr) / ((vc + vr) / 2.0f64).sqrt()).abs() < 1e-12);
        assert_eq!(age.missing, vec![1, 0]);
        assert_eq!(age.cells[0], "65.0 (5.00)");
        let death = rows.iter().find(|r| r.variable == "death").unwrap();
        let (pr, pc) = (0.25, 2.0 / 3.0);
        let want = (pc - pr) / ((pc * (1.0 - pc) + pr * (1.0 - pr)) / 2.0f64).sqrt();
        assert!((death.smd[0].unwrap() - want).abs() < 1e-12);
        assert_eq!(death.counts, vec![Some(1), Some(2)]);
        let b = rows
            .iter()
            .find(|r| r.variable == "ins" && r.level.as_deref() == Some("b"))
            .unwrap();
        assert_eq!(
            b.cells,
            vec!["1 (25.0%)".to_string(), "2 (66.7%)".to_string()]
        );
    }
}
