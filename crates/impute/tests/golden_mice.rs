//! Rubin's rules and the Barnard–Rubin degrees of freedom against R's
//! `mice::pool` and `mice::pool.scalar` (mice 3.15.0, R 4.2.2; the script and
//! its data are in tests/golden/mi, see its README): the imputed data sets
//! mice made are refitted here (OLS with classical SEs, logit with
//! model-based SEs) and pooled, to 1e-10.

use std::path::PathBuf;

use healthgap_impute::rubin;
use healthgap_models::{Design, Glm, Ols};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/mi")
}

/// A CSV as a header and rows of fields.
fn read(name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir().join(name)).expect("golden file");
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn column(header: &[String], rows: &[Vec<String>], name: &str) -> Vec<String> {
    let k = header.iter().position(|h| h == name).expect("column");
    rows.iter().map(|r| r[k].clone()).collect()
}

fn numbers(v: &[String]) -> Vec<f64> {
    v.iter().map(|s| s.parse().expect("number")).collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300)
}

/// The design `outcome ~ 1 + x1 + x2 + g` of imputed data set j.
fn design(j: usize, outcome: &str) -> Design {
    let (h, rows) = read(&format!("imputed_{j}.csv"));
    let col = |name: &str| numbers(&column(&h, &rows, name));
    let n = rows.len();
    Design::from_columns(
        outcome,
        col(outcome),
        vec![
            ("(Intercept)".into(), vec![1.0; n]),
            ("x1".into(), col("x1")),
            ("x2".into(), col("x2")),
            ("g".into(), col("g")),
        ],
    )
    .expect("design")
}

/// Fits every imputed data set, checks the per-imputation fits against R's,
/// pools each term and checks it against mice::pool.
fn check(
    per_file: &str,
    pooled_file: &str,
    fit: impl Fn(usize) -> (Vec<f64>, Vec<f64>),
    fit_tol: f64,
) {
    let (ph, prow) = read(per_file);
    let r_est = numbers(&column(&ph, &prow, "estimate"));
    let r_se = numbers(&column(&ph, &prow, "se"));
    let terms = ["(Intercept)", "x1", "x2", "g"];
    let m = 5;
    let fits: Vec<(Vec<f64>, Vec<f64>)> = (1..=m).map(&fit).collect();
    for (j, (coef, se)) in fits.iter().enumerate() {
        for t in 0..4 {
            let k = j * 4 + t;
            assert!(
                close(coef[t], r_est[k], fit_tol),
                "{per_file} {j} {}: {} vs {}",
                terms[t],
                coef[t],
                r_est[k]
            );
            assert!(
                close(se[t], r_se[k], fit_tol),
                "{per_file} {j} {} se: {} vs {}",
                terms[t],
                se[t],
                r_se[k]
            );
        }
    }
    let (h, rows) = read(pooled_file);
    for (t, term) in terms.iter().enumerate() {
        let row = rows.iter().find(|r| r[0] == *term).expect("term");
        let get = |name: &str| -> f64 {
            row[h.iter().position(|x| x == name).expect("col")]
                .parse()
                .expect("n")
        };
        // Pooled from R's own per-imputation numbers: Rubin's rules alone.
        let q: Vec<f64> = (0..m).map(|j| r_est[j * 4 + t]).collect();
        let u: Vec<f64> = (0..m).map(|j| r_se[j * 4 + t].powi(2)).collect();
        let p = rubin(&q, &u, get("dfcom"));
        for (name, ours) in [
            ("estimate", p.estimate),
            ("ubar", p.within),
            ("b", p.between),
            ("t", p.total),
            ("df", p.df),
            ("riv", p.riv),
            ("lambda", p.lambda),
            ("fmi", p.fmi),
        ] {
            assert!(
                close(ours, get(name), 1e-10),
                "{pooled_file} {term} {name}: {ours} vs {}",
                get(name)
            );
        }
        // And from this crate's own fits of mice's imputed data sets.
        let q: Vec<f64> = fits.iter().map(|f| f.0[t]).collect();
        let u: Vec<f64> = fits.iter().map(|f| f.1[t].powi(2)).collect();
        let ours = rubin(&q, &u, get("dfcom"));
        assert!(
            close(ours.estimate, get("estimate"), fit_tol)
                && close(ours.total, get("t"), fit_tol.max(1e-10))
        );
        assert!(
            close(ours.df, get("df"), fit_tol.max(1e-10) * 10.0),
            "{term}: df {} vs {}",
            ours.df,
            get("df")
        );
    }
}

#[test]
fn pooled_linear_regression_matches_mice_pool() {
    check(
        "per_imputation_lm.csv",
        "pooled_lm.csv",
        |j| {
            let fit = Ols::new().fit(&design(j, "y")).expect("fit");
            let (n, p) = (fit.work.nobs() as f64, fit.coef.len());
            let s2 = fit.rss / (n - p as f64);
            let se = (0..p).map(|k| (fit.bread[k * p + k] * s2).sqrt()).collect();
            (fit.coef, se)
        },
        1e-10,
    );
}

#[test]
fn pooled_logistic_regression_matches_mice_pool() {
    // R's glm refitted to epsilon = 1e-14 (the `_tight` files): both fits
    // converged to machine precision.
    check(
        "per_imputation_glm_tight.csv",
        "pooled_glm_tight.csv",
        |j| {
            let fit = Glm::logit().fit(&design(j, "d"), None).expect("fit");
            let p = fit.coef.len();
            let se = (0..p).map(|k| fit.bread[k * p + k].sqrt()).collect();
            (fit.coef, se)
        },
        1e-8,
    );
}

#[test]
fn pool_scalar_matches_mice_including_no_and_dominant_between_variance() {
    let (h, rows) = read("pool_scalar.csv");
    for row in &rows {
        let get = |name: &str| -> &str { &row[h.iter().position(|x| x == name).expect("col")] };
        let list = |name: &str| -> Vec<f64> {
            get(name)
                .split(';')
                .map(|s| s.parse().expect("n"))
                .collect()
        };
        let num = |name: &str| -> f64 {
            match get(name) {
                "Inf" => f64::INFINITY,
                s => s.parse().expect("n"),
            }
        };
        let p = rubin(&list("Q"), &list("U"), num("dfcom"));
        for (name, ours) in [
            ("qbar", p.estimate),
            ("ubar", p.within),
            ("b", p.between),
            ("t", p.total),
            ("df", p.df),
            ("r", p.riv),
            ("fmi", p.fmi),
        ] {
            let theirs = num(name);
            let ok = if theirs == 0.0 {
                ours.abs() < 1e-15
            } else {
                close(ours, theirs, 1e-10)
            };
            assert!(ok, "{} {name}: {ours} vs {theirs}", get("case"));
        }
    }
}
