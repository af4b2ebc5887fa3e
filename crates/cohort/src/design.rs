//! From the cohort to design columns per factor block: numeric variables as
//! they are, categorical variables as dummies against their reference level
//! (named `variable=level`), and many-level categoricals (hospital_id) kept as
//! integer codes for absorption, never as a dense dummy matrix.

use crate::load::{Cohort, Values};

/// One design column.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// Column name, e.g. `age` or `insurance=medicaid`.
    pub name: String,
    /// The variable it comes from.
    pub variable: String,
    /// Its factor block.
    pub block: String,
    /// For a dummy: the variable's level.
    pub level: Option<String>,
}

/// An absorbed categorical variable.
#[derive(Debug, Clone, PartialEq)]
pub struct AbsorbedTerm {
    /// Variable name.
    pub variable: String,
    /// Its block.
    pub block: String,
    /// Level code per row.
    pub codes: Vec<u32>,
    /// Level texts.
    pub levels: Vec<String>,
}

/// A categorical variable coded as dummies against its reference level.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalTerm {
    /// Variable name.
    pub variable: String,
    /// Its block.
    pub block: String,
    /// The omitted reference level's column name, e.g. `insurance=private`.
    pub base: String,
    /// Indexes of its dummy columns in [`BlockDesign::terms`].
    pub columns: Vec<usize>,
}

/// Covariate columns over all cohort rows.
#[derive(Debug, Clone, Default)]
pub struct BlockDesign {
    /// Terms, in variable order.
    pub terms: Vec<Term>,
    /// Column values, parallel to `terms`.
    pub columns: Vec<Vec<f64>>,
    /// Absorbed variables.
    pub absorbed: Vec<AbsorbedTerm>,
    /// The categorical variables among `terms`.
    pub categoricals: Vec<CategoricalTerm>,
}

impl BlockDesign {
    /// Names of the blocks in first-appearance order.
    pub fn blocks(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in self
            .terms
            .iter()
            .map(|t| &t.block)
            .chain(self.absorbed.iter().map(|a| &a.block))
        {
            if !out.contains(b) {
                out.push(b.clone());
            }
        }
        out
    }
}

/// Builds the design columns of `variables` (names) from the cohort.
/// Unknown names are skipped (the plan checks them before).
pub fn build(cohort: &Cohort, variables: &[String]) -> BlockDesign {
    let mut d = BlockDesign::default();
    for name in variables {
        let Some(v) = cohort.variable(name) else {
            continue;
        };
        match &v.values {
            Values::Numeric(x) => {
                d.terms.push(Term {
                    name: v.name.clone(),
                    variable: v.name.clone(),
                    block: v.block.clone(),
                    level: None,
                });
                d.columns.push(x.clone());
            }
            Values::Categorical {
                codes,
                levels,
                absorb: true,
            } => d.absorbed.push(AbsorbedTerm {
                variable: v.name.clone(),
                block: v.block.clone(),
                codes: codes.clone(),
                levels: levels.clone(),
            }),
            Values::Categorical {
                codes,
                levels,
                absorb: false,
            } => {
                let Some(base) = levels.first() else {
                    continue;
                };
                d.categoricals.push(CategoricalTerm {
                    variable: v.name.clone(),
                    block: v.block.clone(),
                    base: format!("{}={}", v.name, base),
                    columns: (d.terms.len()..d.terms.len() + levels.len() - 1).collect(),
                });
                for (k, level) in levels.iter().enumerate().skip(1) {
                    d.terms.push(Term {
                        name: format!("{}={}", v.name, level),
                        variable: v.name.clone(),
                        block: v.block.clone(),
                        level: Some(level.clone()),
                    });
                    d.columns.push(
                        codes
                            .iter()
                            .map(|&c| f64::from(u8::from(c as usize == k)))
                            .collect(),
                    );
                }
            }
        }
    }
    d
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
        );
        let names: Vec<&str> = d.terms.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["age", "insurance=medicaid", "insurance=medicare"]
        );
        assert_eq!(d.columns[1], vec![0.0, 1.0, 0.0, 1.0]);
        assert_eq!(d.columns[2], vec![0.0, 0.0, 1.0, 0.0]);
        assert_eq!(d.categoricals[0].base, "insurance=private");
        assert_eq!(d.categoricals[0].columns, vec![1, 2]);
        assert_eq!(d.absorbed.len(), 1);
        assert_eq!(d.absorbed[0].codes, vec![0, 1, 1, 2]);
        assert_eq!(d.blocks(), vec!["bio", "ses", "care"]);
    }
}
