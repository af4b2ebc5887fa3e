//! From the cohort to design columns per factor block: numeric variables as
//! they are, categorical variables as dummies against their reference level
//! (named `variable=level`), and many-level categoricals (hospital_id) kept as
//! integer codes for absorption, never as a dense dummy matrix.

use healthgap_models::covariates::{Absorbed, Categorical, Column, Covariates};

use crate::load::{Cohort, Values};

/// Two or more many-level categoricals among an analysis's variables: a
/// method absorbs at most one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} are all absorbed (many-level categoricals); this method can absorb one. Keep one of \
     them, or give the others fewer levels",
    .0.join(", ")
)]
pub struct SeveralAbsorbed(pub Vec<String>);

/// Builds the design columns of `variables` (names, in order) from the
/// cohort. Unknown names are skipped (the plan checks them before).
pub fn build(cohort: &Cohort, variables: &[String]) -> Result<Covariates, SeveralAbsorbed> {
    let mut d = Covariates::default();
    let mut absorbed: Vec<Absorbed> = Vec::new();
    for name in variables {
        let Some(v) = cohort.variable(name) else {
            continue;
        };
        match &v.values {
            Values::Numeric(x) => d.columns.push(Column {
                name: v.name.clone(),
                factor: v.block.clone(),
                values: x.clone(),
            }),
            Values::Categorical {
                codes,
                levels,
                absorb: true,
            } => absorbed.push(Absorbed {
                variable: v.name.clone(),
                factor: v.block.clone(),
                codes: codes.clone(),
                levels: levels.len(),
                labels: levels.clone(),
            }),
            Values::Categorical {
                codes,
                levels,
                absorb: false,
            } => {
                let Some(base) = levels.first() else {
                    continue;
                };
                d.categoricals.push(Categorical {
                    variable: v.name.clone(),
                    factor: v.block.clone(),
                    base: format!("{}={}", v.name, base),
                    columns: (d.columns.len()..d.columns.len() + levels.len() - 1).collect(),
                });
                for (k, level) in levels.iter().enumerate().skip(1) {
                    d.columns.push(Column {
                        name: format!("{}={}", v.name, level),
                        factor: v.block.clone(),
                        values: codes
                            .iter()
                            .map(|&c| f64::from(u8::from(c as usize == k)))
                            .collect(),
                    });
                }
            }
        }
    }
    if absorbed.len() > 1 {
        return Err(SeveralAbsorbed(
            absorbed.into_iter().map(|a| a.variable).collect(),
        ));
    }
    d.absorbed = absorbed.pop();
    Ok(d)
}

/// The categorical variable `name` as absorbed fixed effects (its codes and
/// labels), whatever its number of levels; None when it is not categorical.
pub fn absorbed(cohort: &Cohort, name: &str, factor: &str) -> Option<Absorbed> {
    match cohort.variable(name).map(|v| &v.values) {
        Some(Values::Categorical { codes, levels, .. }) => Some(Absorbed {
            variable: name.to_string(),
            factor: factor.to_string(),
            codes: codes.clone(),
            levels: levels.len(),
            labels: levels.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Variable;

    #[test]
    fn dummies_against_the_reference_and_absorbed_codes() {
        let cohort = Cohort {
            source: "path",
            files: vec![],
            warehouse: None,
            rows_read: 4,
            group_labels: vec!["White".into(), "Black".into()],
            group: vec![0, 1, 0, 1],
            attrition: vec![],
            outcomes: vec![],
            variables: vec![
                Variable {
                    name: "age".into(),
                    block: "bio".into(),
                    values: Values::Numeric(vec![60.0, 61.0, 62.0, 63.0]),
                },
                Variable {
                    name: "insurance".into(),
                    block: "ses".into(),
                    values: Values::Categorical {
                        codes: vec![0, 1, 2, 1],
                        levels: vec!["private".into(), "medicaid".into(), "medicare".into()],
                        absorb: false,
                    },
                },
                Variable {
                    name: "hospital_id".into(),
                    block: "care".into(),
                    values: Values::Categorical {
                        codes: vec![0, 1, 1, 2],
                        levels: vec!["1".into(), "2".into(), "3".into()],
                        absorb: true,
                    },
                },
            ],
            cluster: None,
            weights: None,
            table1: vec![],
            warnings: vec![],
            table1_complete: None,
        };
        let d = build(
            &cohort,
            &["age".into(), "insurance".into(), "hospital_id".into()],
        )
        .expect("one absorbed variable");
        let names: Vec<&str> = d.columns.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["age", "insurance=medicaid", "insurance=medicare"]
        );
        assert_eq!(d.columns[1].values, vec![0.0, 1.0, 0.0, 1.0]);
        assert_eq!(d.columns[2].values, vec![0.0, 0.0, 1.0, 0.0]);
        assert_eq!(d.categoricals[0].base, "insurance=private");
        assert_eq!(d.categoricals[0].columns, vec![1, 2]);
        assert_eq!(d.variable_of(2), "insurance");
        assert_eq!(d.columns_of(&["insurance".into()]), vec![1, 2]);
        assert_eq!(
            d.absorbed.as_ref().map(|a| a.codes.clone()),
            Some(vec![0, 1, 1, 2])
        );
        assert_eq!(d.factors(), vec!["bio", "ses", "care"]);
    }
}
