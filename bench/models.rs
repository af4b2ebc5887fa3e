//! Benchmark of the estimation core on the standard workload: the synthetic
//! cohort (default 1,000,000 patients, 300 hospitals) with a 30-column design and
//! the 30-day mortality outcome. Run by bench/run.sh:
//!
//! `cargo run --release --example bench_models -- N REPEATS OUT.parquet`
//!
//! It writes the design to OUT.parquet (for bench/peers_models.py, which times
//! pyfixest on the same rows) and prints one line per task with the median wall
//! time over REPEATS runs.

use healthgap_cohort::{TableFormat, write_table};
use healthgap_models::bootstrap::ClusterBootstrap;
use healthgap_models::moments::Moments;
use healthgap_models::{Design, Glm, Ols, SmallSample, VcovKind};
use healthgap_synth::{Column, Params, Sample, Table};

#[path = "workload.rs"]
mod workload;
use workload::{columns, size_and_repeats, time};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (n, repeats) = size_and_repeats(&args);
    let out = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "bench/out/models.parquet".into());
    let mut params = Params::default();
    params.patients = n;
    let sample = Sample::generate(&params, &|_| {});
    let y: Vec<f64> = sample
        .patients
        .iter()
        .map(|p| f64::from(u8::from(p.outcomes.death)))
        .collect();
    let hospital: Vec<i64> = sample
        .patients
        .iter()
        .map(|p| i64::from(sample.world.hospitals[p.sim.hospital].id))
        .collect();
    let cols = columns(&sample);
    drop(sample);
    // The same rows for the Python peers.
    let mut table_cols: Vec<(String, Column)> = vec![
        ("death_30d".into(), Column::Float(y.clone())),
        ("hospital_id".into(), Column::Int(hospital.clone())),
    ];
    table_cols.extend(
        cols.iter()
            .map(|(nm, v)| (nm.clone(), Column::Float(v.clone()))),
    );
    let table = Table {
        name: "models".into(),
        columns: table_cols,
    };
    if let Err(e) = write_table(&table, std::path::Path::new(&out), TableFormat::Parquet) {
        eprintln!("cannot write {out}: {e}");
        std::process::exit(1);
    }
    drop(table);
    let p = cols.len();
    println!(
        "workload: {n} rows, {p} regressors (+ constant or hospital FE), 300 hospitals, outcome death_30d"
    );

    let fe_design = Design::from_columns("death_30d", y.clone(), cols.clone())
        .expect("design")
        .with_cluster(&hospital)
        .with_absorbed("hospital_id", &hospital);
    let mut with_const = vec![("const".to_string(), vec![1.0; n])];
    with_const.extend(cols);
    let design = Design::from_columns("death_30d", y, with_const)
        .expect("design")
        .with_cluster(&hospital);

    let (t, _) = time(repeats, || fe_design.validate().is_ok());
    println!("PART validate {t:.4} s");
    let (t, _) = time(repeats, || {
        healthgap_models::ols::within(&fe_design).expect("within").1
    });
    println!("PART within {t:.4} s");
    let xs = design.x.as_slice_memory_order().expect("contiguous");
    let (t, _) = time(repeats, || {
        healthgap_models::linalg::gram(xs, n, p + 1, None)[0]
    });
    println!("PART gram {t:.4} s");
    let (t, _) = time(repeats, || {
        Ols::new().fit(&fe_design).expect("fe ols").coef[0]
    });
    println!("PART lpm_hospital_fe_fit_only {t:.4} s");
    let fitted = Ols::new().fit(&fe_design).expect("fe ols");
    let (t, _) = time(repeats, || {
        fitted
            .vcov(VcovKind::Cr1, "hospital_id", SmallSample::default())
            .expect("cr1")
            .se()[0]
    });
    println!("PART lpm_hospital_fe_cr1_only {t:.4} s");
    let (t, fit) = time(repeats, || {
        let fit = Ols::new().fit(&fe_design).expect("fe ols");
        let v = fit
            .vcov(VcovKind::Cr1, "hospital_id", SmallSample::default())
            .expect("cr1");
        (fit.coef[0], v.se()[0])
    });
    println!(
        "RESULT lpm_hospital_fe_cr1 {t:.4} s (black: {:.6}, se {:.6})",
        fit.0, fit.1
    );

    let (t, fit) = time(repeats, || {
        let fit = Glm::logit().fit(&fe_design, None).expect("fe logit");
        let v = fit
            .vcov(VcovKind::Cr1, "hospital_id", SmallSample::default())
            .expect("cr1");
        (fit.coef[0], v.se()[0], fit.iterations)
    });
    println!(
        "RESULT logit_hospital_fe_cr1 {t:.4} s (black: {:.6}, se {:.6}, {} iterations)",
        fit.0, fit.1, fit.2
    );
    // Full precision, to check that a change to the fit leaves the estimate alone.
    println!(
        "CHECK logit_hospital_fe_cr1 black {:.17e} se {:.17e}",
        fit.0, fit.1
    );

    let (t, fit) = time(repeats, || {
        let fit = Ols::new().fit(&design).expect("ols");
        let v = fit
            .vcov(VcovKind::Cr1, "hospital_id", SmallSample::default())
            .expect("cr1");
        (fit.coef[1], v.se()[1])
    });
    println!(
        "RESULT ols_cr1 {t:.4} s (black: {:.6}, se {:.6})",
        fit.0, fit.1
    );

    let (t, se) = time(repeats, || {
        let m = Moments::from_design(&design).expect("moments");
        let bs = ClusterBootstrap::new(1000, 20261126, "bench");
        let draws = bs.run(
            design.n_clusters,
            |mult| {
                m.fit(Some(mult))
                    .map(|f| f.coef[1])
                    .map(|b| vec![b])
                    .map_err(|e| e.to_string())
            },
            &|| {},
        );
        let v: Vec<f64> = draws.estimates.iter().map(|d| d[0]).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    });
    println!("RESULT ols_bootstrap_1000_moments {t:.4} s (bootstrap se of black: {se:.6})");
}
