//! Benchmark of the hierarchical (GLMM) hospital model on the standard
//! workload: the synthetic cohort with 300 hospitals, 30-day mortality, a
//! constant and the first 27 regressors of the benchmark design (28 fixed
//! effects, `black` among them), a random hospital intercept, and the same
//! with a correlated random slope on `black`. Run by bench/run.sh:
//!
//! `cargo run --release -p healthgap-models --example bench_glmm -- N REPEATS [OUT.csv]`
//!
//! It lives in crates/models (with the generator as a dev-dependency) so that
//! it builds without polars.
//!
//! With OUT.csv it writes the rows (for bench/peers_lme4.R, which times
//! `lme4::glmer` on the same data) and prints one RESULT line per task with
//! the median wall time over REPEATS runs.

use healthgap_models::{Design, Glmm, GlmmFamily, Grouping};
use healthgap_synth::{Params, Sample};

#[path = "../../../bench/workload.rs"]
mod workload;
use workload::{columns, size_and_repeats, time};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (n, repeats) = size_and_repeats(&args);
    let mut params = Params::default();
    params.patients = n;
    let sample = Sample::generate(&params, &|_| {});
    let y: Vec<f64> = sample
        .patients
        .iter()
        .map(|p| f64::from(u8::from(p.outcomes.death)))
        .collect();
    let hospital: Vec<u32> = sample
        .patients
        .iter()
        .map(|p| p.sim.hospital as u32)
        .collect();
    let levels = sample.world.hospitals.len();
    let mut cols = vec![("const".to_string(), vec![1.0; n])];
    cols.extend(columns(&sample).into_iter().take(27));
    drop(sample);
    if let Some(out) = args.get(2)
        && let Err(e) = write_csv(out, &y, &hospital, &cols)
    {
        eprintln!("cannot write {out}: {e}");
        std::process::exit(1);
    }
    let p = cols.len();
    let black = cols
        .iter()
        .position(|(c, _)| c == "black")
        .expect("black column");
    let design = Design::from_columns("death_30d", y, cols).expect("design");
    println!("workload: {n} rows, {p} fixed effects, {levels} hospitals, outcome death_30d");
    let grouping = Grouping {
        name: "hospital_id",
        codes: &hospital,
        levels,
    };
    for (task, slope) in [
        ("glmm_random_intercept", None),
        ("glmm_random_slope", Some(black)),
    ] {
        let (t, fit) = time(repeats, || {
            Glmm::new(GlmmFamily::Logit)
                .fit(&design, grouping, slope, None)
                .expect("glmm")
        });
        println!(
            "RESULT {task} {t:.4} s (black: {:.6}, se {:.6}; sd {:.6}, slope sd {:?}, correlation {:?}; deviance {:.6}; {} evaluations; warnings {:?})",
            fit.coef[black],
            fit.se[black],
            fit.intercept_sd,
            fit.slope_sd,
            fit.correlation,
            fit.deviance,
            fit.evaluations,
            fit.warnings
        );
    }
}

/// The rows as CSV for R: outcome, hospital (1-based), then the regressors
/// (without the constant).
fn write_csv(
    path: &str,
    y: &[f64],
    hospital: &[u32],
    cols: &[(String, Vec<f64>)],
) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let names: Vec<&str> = cols.iter().skip(1).map(|(c, _)| c.as_str()).collect();
    writeln!(f, "death_30d,hospital_id,{}", names.join(","))?;
    for i in 0..y.len() {
        write!(f, "{},{}", y[i], hospital[i] + 1)?;
        for (_, v) in cols.iter().skip(1) {
            write!(f, ",{}", v[i])?;
        }
        writeln!(f)?;
    }
    f.flush()
}
