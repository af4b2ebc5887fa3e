//! Shared fixtures of the integration tests (included with `mod common;`).

#![allow(dead_code)]

use healthgap_sql::{CohortQuery, Covariate, Expr, Literal, Outcome, TableName};

/// The representative cohort: an OMOP-like `cdm.cabg_cohort`, two filters,
/// the White/Black groups, a binary outcome, weights, hospital and cluster,
/// three numeric covariates and a three-level categorical one.
pub fn representative() -> CohortQuery {
    let mut q = CohortQuery::new(TableName::in_schema("cdm", "cabg_cohort"))
        .filter("age >= 18")
        .and_then(|q| q.filter("status != 'emergent' and (age < 80 or female == 1)"))
        .expect("valid filters")
        .groups(
            "race",
            vec![Literal::Str("White".into()), Literal::Str("Black".into())],
        );
    q.outcomes.push(Outcome {
        name: "death_30d".into(),
        expr: Expr::col("death_30d"),
    });
    q.weight = Some(Expr::col("discharge_weight"));
    q.hospital = Some(Expr::col("hospital_id"));
    q.cluster = Some(Expr::col("hospital_id"));
    for name in ["age", "female", "adi"] {
        q.covariates.push(Covariate::Numeric {
            name: name.into(),
            expr: Expr::col(name),
        });
    }
    q.covariates.push(Covariate::Categorical {
        name: "insurance".into(),
        expr: Expr::col("insurance"),
        reference: Literal::Str("private".into()),
        levels: ["private", "medicare", "medicaid"]
            .map(|s| Literal::Str(s.into()))
            .to_vec(),
    });
    q
}

/// A cohort with `p` numeric covariates `v1..vp`, an outcome, weights and
/// all three keys.
pub fn wide(p: usize) -> CohortQuery {
    let mut q = CohortQuery::new(TableName::table("wide"));
    q.group = Some(Expr::col("g"));
    q.hospital = Some(Expr::col("h"));
    q.cluster = Some(Expr::col("c"));
    q.weight = Some(Expr::col("w"));
    q.outcomes.push(Outcome {
        name: "y".into(),
        expr: Expr::col("y"),
    });
    for j in 1..=p {
        q.covariates.push(Covariate::Numeric {
            name: format!("v{j}"),
            expr: Expr::col(format!("v{j}")),
        });
    }
    q
}
