//! Golden tests of the GLMM against lme4 1.1-31 (`glmer`, `lmer`), from
//! tests/golden/glmm (made by tests/golden/glmm/make.R; see its README):
//! fixed effects, variance parameters, conditional modes and their SDs, the
//! deviance, standard errors, and the objective at points off the optimum.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use healthgap_models::{Design, Glmm, GlmmFamily, GlmmFit, Grouping};
use serde_json::Value;

/// Tolerances (relative unless said otherwise), in one place.
mod tolerance {
    /// Fixed effects and variance parameters (the issue asks 1e-4).
    pub const ESTIMATE: f64 = 1e-5;
    /// Conditional modes and their SDs (absolute, on the linear-predictor scale).
    pub const MODE: f64 = 1e-4;
    /// The deviance at fixed points, against the exact Laplace/AGQ value (an
    /// independent R implementation in make.R; lme4's own value carries the
    /// log determinant of its previous PIRLS iteration, off by up to 1e-5 at
    /// one point far from the slope model's optimum). The issue asks 1e-6.
    pub const DEVIANCE: f64 = 1e-10;
    /// The deviance at the optimum, against lme4's −2 log L.
    pub const DEVIANCE_AT_OPTIMUM: f64 = 1e-8;
    /// Standard errors: both sides difference a Hessian numerically.
    pub const SE: f64 = 2e-3;
}

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/glmm")
}

fn data() -> HashMap<String, Vec<f64>> {
    let text = std::fs::read_to_string(dir().join("data.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let mut cols = vec![Vec::new(); header.len()];
    for line in lines.filter(|l| !l.is_empty()) {
        for (c, v) in line.split(',').enumerate() {
            cols[c].push(v.parse::<f64>().unwrap());
        }
    }
    header.into_iter().zip(cols).collect()
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join(name)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// y ~ 1 + x1 + x2 + black, the hospital codes, and the slope column (black).
fn design(y: &str) -> (Design, Vec<u32>) {
    let d = data();
    let n = d[y].len();
    let cols = vec![
        ("(Intercept)".to_string(), vec![1.0; n]),
        ("x1".to_string(), d["x1"].clone()),
        ("x2".to_string(), d["x2"].clone()),
        ("black".to_string(), d["black"].clone()),
    ];
    let codes = d["hospital"].iter().map(|h| *h as u32 - 1).collect();
    (Design::from_columns(y, d[y].clone(), cols).unwrap(), codes)
}

fn close(what: &str, ours: f64, theirs: f64, tol: f64) {
    let err = (ours - theirs).abs() / theirs.abs().max(1e-8);
    assert!(
        err < tol,
        "{what}: ours {ours} lme4 {theirs} (relative error {err:.2e})"
    );
}

fn fit_case(
    name: &str,
    y: &str,
    family: GlmmFamily,
    slope: bool,
    k: usize,
) -> (GlmmFit, Value, Design, Vec<u32>) {
    let (d, codes) = design(y);
    let grouping = Grouping {
        name: "hospital",
        codes: &codes,
        levels: 40,
    };
    let fit = Glmm::new(family)
        .quadrature(k)
        .fit(&d, grouping, slope.then_some(3), None)
        .unwrap();
    assert!(fit.converged, "{name}: {:?}", fit.warnings);
    assert!(fit.warnings.is_empty(), "{name}: {:?}", fit.warnings);
    (fit, json(&format!("{name}.json")), d, codes)
}

fn check_fit(name: &str, fit: &GlmmFit, gold: &Value, se_key: &str) {
    let beta = floats(&gold["fixef"]["estimate"]);
    for (j, b) in beta.iter().enumerate() {
        close(
            &format!("{name} β{j}"),
            fit.coef[j],
            *b,
            tolerance::ESTIMATE,
        );
    }
    let theta = floats(&gold["theta"]["value"]);
    for (j, t) in theta.iter().enumerate() {
        close(
            &format!("{name} θ{j}"),
            fit.theta[j],
            *t,
            tolerance::ESTIMATE,
        );
    }
    close(
        &format!("{name} −2 log L"),
        fit.deviance,
        gold["minus2loglik"].as_f64().unwrap(),
        tolerance::DEVIANCE_AT_OPTIMUM,
    );
    let se = floats(&gold[se_key]);
    for (j, s) in se.iter().enumerate() {
        close(&format!("{name} SE{j}"), fit.se[j], *s, tolerance::SE);
    }
    let columns: Vec<&str> = gold["ranef"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for (c, col) in columns.iter().enumerate() {
        let modes = floats(&gold["ranef"]["mode"][col]);
        for (h, m) in modes.iter().enumerate() {
            let ours = fit.modes[h][c];
            assert!(
                (ours - m).abs() < tolerance::MODE,
                "{name} mode {col} of hospital {}: ours {ours} lme4 {m}",
                h + 1
            );
        }
        if let Some(sd) = gold["ranef"]["cond_sd"].get(col) {
            for (h, s) in floats(sd).iter().enumerate() {
                let ours = fit.mode_covariance[h][2 * c].sqrt();
                assert!(
                    (ours - s).abs() < tolerance::MODE,
                    "{name} conditional SD {col} of hospital {}: ours {ours} lme4 {s}",
                    h + 1
                );
            }
        }
    }
}

/// The objective at lme4's own evaluation points (θ, β), off the optimum.
fn check_devfun(name: &str, family: GlmmFamily, y: &str, slope: bool, k: usize) {
    let (d, codes) = design(y);
    let grouping = Grouping {
        name: "hospital",
        codes: &codes,
        levels: 40,
    };
    let gold = json(&format!("{name}_devfun.json"));
    let nt = if slope { 3 } else { 1 };
    for point in gold["points"].as_array().unwrap() {
        let pars = floats(&point["pars"]);
        let value = point["value_independent_exact"]
            .as_f64()
            .or(point["value"].as_f64())
            .unwrap();
        let ours = Glmm::new(family)
            .quadrature(k)
            .deviance_at(
                &d,
                grouping,
                slope.then_some(3),
                &pars[..nt],
                1.0,
                &pars[nt..],
            )
            .unwrap();
        close(
            &format!("{name} deviance at {}", point["label"]),
            ours,
            value,
            tolerance::DEVIANCE,
        );
    }
}

#[test]
fn random_intercept_logit_laplace_matches_glmer() {
    let (fit, gold, _, _) = fit_case("ri_laplace", "y", GlmmFamily::Logit, false, 1);
    check_fit("ri_laplace", &fit, &gold, "se_fixef_vcov_default");
    check_devfun("ri_laplace", GlmmFamily::Logit, "y", false, 1);
}

#[test]
fn random_intercept_logit_ten_point_quadrature_matches_glmer() {
    let (fit, gold, _, _) = fit_case("ri_agq10", "y", GlmmFamily::Logit, false, 10);
    check_fit("ri_agq10", &fit, &gold, "se_fixef_vcov_default");
    check_devfun("ri_agq10", GlmmFamily::Logit, "y", false, 10);
}

#[test]
fn correlated_intercept_and_slope_logit_matches_glmer() {
    let (fit, gold, _, _) = fit_case("slope_laplace", "y", GlmmFamily::Logit, true, 1);
    check_fit("slope_laplace", &fit, &gold, "se_fixef_vcov_default");
    let sdcor = floats(&gold["varcorr"]["sdcor"]);
    close("σ_v", fit.slope_sd.unwrap(), sdcor[1], tolerance::ESTIMATE);
    close("ρ", fit.correlation.unwrap(), sdcor[2], tolerance::ESTIMATE);
    check_devfun("slope_laplace", GlmmFamily::Logit, "y", true, 1);
}

#[test]
fn random_intercept_probit_matches_glmer() {
    let (fit, gold, _, _) = fit_case("probit_laplace", "yp", GlmmFamily::Probit, false, 1);
    check_fit("probit_laplace", &fit, &gold, "se_fixef_vcov_default");
}

#[test]
fn linear_mixed_model_by_maximum_likelihood_matches_lmer() {
    let (fit, gold, _, _) = fit_case("lmm_ml", "yc", GlmmFamily::Identity, false, 1);
    check_fit("lmm_ml", &fit, &gold, "se_fixef_vcov_default");
    close(
        "σ",
        fit.residual_sd.unwrap(),
        gold["sigma"].as_f64().unwrap(),
        tolerance::ESTIMATE,
    );
}

/// The random-intercept linear mixed model fitted from per-hospital sums
/// (`healthgap_models::lmm`, what the Oaxaca–Blinder hospital term with
/// `hospital_effects = "random"` uses) against `lmer(REML = FALSE)`: fixed
/// effects, σ_u, σ, the deviance, the model-based SEs and the modes.
#[test]
fn random_intercept_from_level_sums_matches_lmer() {
    use healthgap_models::lmm::{LevelSums, fit_random_intercept};
    let (d, codes) = design("yc");
    let gold = json("lmm_ml.json");
    let (k, n) = (d.ncols(), d.nobs());
    let stride = LevelSums::stride(k);
    let mut sums = vec![0.0; 40 * stride];
    for i in 0..n {
        let a = &mut sums[codes[i] as usize * stride..(codes[i] as usize + 1) * stride];
        let x: Vec<f64> = (0..k).map(|j| d.x[[i, j]]).collect();
        let y = d.y[i];
        a[0] += 1.0;
        for p in 0..k {
            a[1 + p] += x[p];
            for q in 0..k {
                a[1 + k + p * k + q] += x[p] * x[q];
            }
            a[1 + k + k * k + p] += x[p] * y;
        }
        a[1 + 2 * k + k * k] += y;
        a[2 + 2 * k + k * k] += y * y;
    }
    let copies = vec![1.0; 40];
    let fit = fit_random_intercept(
        &LevelSums {
            k,
            data: &sums,
            copies: &copies,
        },
        &d.names,
        None,
    )
    .unwrap();
    for (j, b) in floats(&gold["fixef"]["estimate"]).iter().enumerate() {
        close(&format!("β{j}"), fit.coef[j], *b, tolerance::ESTIMATE);
    }
    let sigma = gold["sigma"].as_f64().unwrap();
    let theta = floats(&gold["theta"]["value"])[0];
    close("σ", fit.sigma, sigma, tolerance::ESTIMATE);
    close("σ_u", fit.sigma_u, theta * sigma, tolerance::ESTIMATE);
    close(
        "deviance",
        fit.deviance,
        gold["deviance"].as_f64().unwrap(),
        tolerance::DEVIANCE_AT_OPTIMUM,
    );
    let s2 = fit.sigma * fit.sigma;
    for (j, se) in floats(&gold["se_fixef_vcov_default"]).iter().enumerate() {
        close(
            &format!("SE β{j}"),
            (s2 * fit.bread[j * k + j]).sqrt(),
            *se,
            tolerance::ESTIMATE,
        );
    }
    let modes = floats(&gold["ranef"]["mode"]["(Intercept)"]);
    for (l, m) in modes.iter().enumerate() {
        assert!(
            (fit.modes[l] - m).abs() < tolerance::MODE,
            "mode {l}: {} vs {m}",
            fit.modes[l]
        );
    }
}
