//! Golden tests: coefficients and standard errors against statsmodels 0.15 and
//! pyfixest 0.60, from tests/golden/models/expected.json (made by
//! tests/golden/models/make_models.py; see its README for the conventions).

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::collections::HashMap;

use healthgap_models::{Design, FixefK, Glm, Ols, SmallSample, VcovKind};
use serde_json::Value;

/// Tolerances, in one place (relative).
mod tolerance {
    /// Least squares: coefficients and SEs.
    pub const LINEAR: f64 = 1e-8;
    /// Logit/probit: coefficients and SEs.
    pub const LIKELIHOOD: f64 = 1e-6;
}

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/models")
}

/// A numeric CSV (header + numbers) as named columns.
fn read_csv(name: &str) -> HashMap<String, Vec<f64>> {
    let text = std::fs::read_to_string(golden_dir().join(name)).expect("golden csv");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); header.len()];
    for line in lines.filter(|l| !l.trim().is_empty()) {
        for (c, v) in line.split(',').enumerate() {
            cols[c].push(v.trim().parse().unwrap_or_else(|_| panic!("{name}: `{v}`")));
        }
    }
    header.into_iter().zip(cols).collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

fn design(entry: &Value, data: &HashMap<String, Vec<f64>>) -> Design {
    let y_name = entry["y"].as_str().unwrap();
    let y = data[y_name].clone();
    let n = y.len();
    let terms: Vec<&str> = entry["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let columns = terms
        .iter()
        .map(|t| {
            let col = if *t == "const" {
                vec![1.0; n]
            } else {
                data[*t].clone()
            };
            ((*t).to_string(), col)
        })
        .collect();
    let mut d = Design::from_columns(y_name, y, columns).unwrap();
    if let Some(w) = entry["weights"].as_str() {
        d = d.with_weights(data[w].clone());
    }
    let labels = |c: &str| -> Vec<i64> { data[c].iter().map(|v| *v as i64).collect() };
    if let Some(c) = entry["cluster"].as_str() {
        d = d.with_cluster(&labels(c));
    }
    for fe in entry["fe"].as_array().unwrap() {
        let name = fe.as_str().unwrap();
        d = d.with_absorbed(name, &labels(name));
    }
    d
}

#[test]
fn every_reference_fit_is_reproduced() {
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("expected.json")).unwrap())
            .unwrap();
    assert!(expected.len() >= 29);
    let mut data: HashMap<String, HashMap<String, Vec<f64>>> = HashMap::new();
    let mut failures = Vec::new();
    for entry in &expected {
        let name = entry["name"].as_str().unwrap();
        let file = entry["data"].as_str().unwrap();
        let frame = data
            .entry(file.to_string())
            .or_insert_with(|| read_csv(file));
        let d = design(entry, frame);
        let estimator = entry["estimator"].as_str().unwrap();
        let kind = match entry["vcov"].as_str().unwrap() {
            "iid" => VcovKind::Iid,
            "HC1" => VcovKind::Hc1,
            _ => VcovKind::Cr1,
        };
        let ssc_text = entry["ssc"].as_str().unwrap();
        let pyfixest = estimator.starts_with("fe");
        let ssc = SmallSample {
            fixef_k: if ssc_text.contains("k_fixef='full'") {
                FixefK::Full
            } else if ssc_text.contains("k_fixef='none'") {
                FixefK::None
            } else {
                FixefK::Nested
            },
            likelihood_iid_adj: pyfixest,
            ..SmallSample::default()
        };
        let (names, coef, mut se, tol, nobs) = match estimator {
            "ols" | "wls" | "feols" => {
                let fit = Ols::new().fit(&d).unwrap();
                let v = fit.vcov(kind, "hospital", ssc).unwrap();
                (
                    fit.names.clone(),
                    fit.coef.clone(),
                    v.se(),
                    tolerance::LINEAR,
                    fit.nobs(),
                )
            }
            "logit" | "probit" | "feglm_logit" => {
                let glm = if estimator == "probit" {
                    Glm::probit()
                } else {
                    Glm::logit()
                };
                let fit = glm.tolerance(1e-14).fit(&d, None).unwrap();
                let v = fit.vcov(kind, "hospital", ssc).unwrap();
                (
                    fit.names.clone(),
                    fit.coef.clone(),
                    v.se(),
                    tolerance::LIKELIHOOD,
                    fit.nobs(),
                )
            }
            other => panic!("unknown estimator {other}"),
        };
        let n = nobs as f64;
        let k = coef.len() as f64;
        // statsmodels labels HC0 as "HC1" for discrete models (README): undo our
        // n/(n − k) factor to compare.
        if matches!(estimator, "logit" | "probit") && kind == VcovKind::Hc1 {
            for s in &mut se {
                *s *= ((n - k) / n).sqrt();
            }
        }
        // pyfixest's FE logit keeps counting the hospital it dropped for
        // separation in the iid K (54 instead of 53): rescale to its count.
        if name == "feglm_logit_sep_iid" {
            let k_py = entry["df_k"].as_f64().unwrap();
            for s in &mut se {
                *s *= ((n - (k_py - 1.0)) / (n - k_py)).sqrt();
            }
        }
        let want_terms: Vec<String> = entry["terms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        if names != want_terms {
            failures.push(format!("{name}: terms {names:?} vs {want_terms:?}"));
            continue;
        }
        if nobs as u64 != entry["nobs"].as_u64().unwrap() {
            failures.push(format!("{name}: nobs {nobs} vs {}", entry["nobs"]));
        }
        let want_se = entry
            .get("se_exact")
            .filter(|v| !v.is_null())
            .unwrap_or(&entry["se"]);
        for (j, term) in names.iter().enumerate() {
            let (b, s) = (
                entry["coef"][j].as_f64().unwrap(),
                want_se[j].as_f64().unwrap(),
            );
            if rel(coef[j], b) > tol {
                failures.push(format!(
                    "{name} {term}: coef {} vs {b} (rel {:.1e})",
                    coef[j],
                    rel(coef[j], b)
                ));
            }
            if rel(se[j], s) > tol {
                failures.push(format!(
                    "{name} {term}: se {} vs {s} (rel {:.1e})",
                    se[j],
                    rel(se[j], s)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
