//! Benchmark of the Oaxaca–Blinder family on the standard workload: the
//! synthetic cohort (default 1,000,000 patients, 300 hospitals), White vs Black
//! patients, outcome 30-day mortality, the canonical blocks (biological,
//! socioeconomic; care_site = hospital_id absorbed, or hospital volume and
//! teaching for the logit). Run by bench/run.sh:
//!
//! `cargo run --release --example bench_decompose -- N REPEATS OUT.parquet`
//!
//! It writes the rows to OUT.parquet (for bench/peers_decompose.py) and prints
//! `RESULT task seconds` lines (median over REPEATS).

use healthgap_cohort::{TableFormat, write_table};
use healthgap_decompose::covariates::{Absorbed, Categorical, Column, Covariates};
use healthgap_decompose::gelbach::{GelbachInput, gelbach};
use healthgap_decompose::hospital::{self, HospitalInput};
use healthgap_decompose::inference::{InferenceSpec, Method};
use healthgap_decompose::nonlinear::{NonlinearInput, nonlinear};
use healthgap_decompose::oaxaca::{Coefficients, LinearInput, linear};
use healthgap_decompose::reduction::{ReductionInput, Target, disparity_reduction};
use healthgap_decompose::{Cluster, Sample};
use healthgap_models::Link;
use healthgap_models::bootstrap::Interval;
use healthgap_synth::{Column as TableColumn, Params, Sample as Generated, Table};

#[path = "workload.rs"]
#[allow(dead_code)] // its `columns` is for the models benchmarks
mod workload;
use workload::{size_and_repeats, time};

/// The standard workload: the canonical covariate columns (name, block,
/// values), hospital volume and teaching status, the outcome, the groups
/// (0 White, 1 Black, 2 other) and the hospital of each patient.
struct Workload {
    cols: Vec<(String, String, Vec<f64>)>,
    volume: Vec<f64>,
    teaching: Vec<f64>,
    y: Vec<f64>,
    group: Vec<u32>,
    hospital: Vec<u32>,
    nh: usize,
}

/// The covariate sets of the benchmarks and the run settings.
struct Bench<'a> {
    w: &'a Workload,
    with_fe: Covariates,
    plain: Covariates,
    hospital_covariates: Covariates,
    repeats: usize,
    only: String,
}

impl Bench<'_> {
    /// Whether `task` runs (it contains BENCH_ONLY, or BENCH_ONLY is unset).
    fn want(&self, task: &str) -> bool {
        self.only.is_empty() || task.contains(&self.only)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (n, repeats) = size_and_repeats(&args);
    let out = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "bench/out/decompose.parquet".into());
    let w = workload(n);
    write_workload(&w, &out);
    let pair = w.group.iter().filter(|g| **g <= 1).count();
    println!(
        "workload: {n} patients, {pair} White + Black, {} columns + hospital_id ({} hospitals), death_30d",
        w.cols.len(),
        w.nh
    );

    // BENCH_ONLY=substring runs only the matching tasks.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let b = Bench {
        w: &w,
        with_fe: Covariates {
            columns: columns(&w, false),
            categoricals: categoricals(),
            absorbed: Some(absorbed(&w)),
        },
        plain: Covariates {
            columns: columns(&w, false),
            categoricals: categoricals(),
            absorbed: None,
        },
        hospital_covariates: Covariates {
            columns: columns(&w, true),
            categoricals: categoricals(),
            absorbed: None,
        },
        repeats,
        only,
    };
    bench_oaxaca(&b);
    bench_gelbach(&b);
    bench_yun(&b);
    bench_hospital(&b);
    bench_reduction(&b);
}

/// Draws the synthetic cohort of `n` patients and takes the workload's columns
/// from it (canonical blocks as in analyses/cabg_synthetic.toml).
fn workload(n: usize) -> Workload {
    let mut params = Params::default();
    params.patients = n;
    let sample = Generated::generate(&params, &|_| {});
    let ps = &sample.patients;
    let f = |b: bool| f64::from(u8::from(b));
    // Canonical blocks (analyses/cabg_synthetic.toml).
    let mut cols: Vec<(String, String, Vec<f64>)> = Vec::new();
    let mut add = |name: &str, block: &str, v: Vec<f64>| cols.push((name.into(), block.into(), v));
    add(
        "age",
        "biological",
        ps.iter().map(|p| p.sim.demographics.age).collect(),
    );
    add(
        "female",
        "biological",
        ps.iter().map(|p| f(p.sim.demographics.female)).collect(),
    );
    for (k, name) in [
        "diabetes",
        "dialysis",
        "heart_failure",
        "lung_disease",
        "pad",
        "prior_mi",
    ]
    .iter()
    .enumerate()
    {
        add(
            name,
            "biological",
            ps.iter().map(|p| f(p.sim.clinical.conditions[k])).collect(),
        );
    }
    add(
        "ejection_fraction",
        "biological",
        ps.iter().map(|p| p.sim.clinical.ef).collect(),
    );
    add(
        "status=urgent",
        "biological",
        ps.iter().map(|p| f(p.sim.clinical.status == 1)).collect(),
    );
    add(
        "status=emergent",
        "biological",
        ps.iter().map(|p| f(p.sim.clinical.status == 2)).collect(),
    );
    add(
        "adi",
        "socioeconomic",
        ps.iter().map(|p| p.sim.socioeconomic.adi).collect(),
    );
    for (k, name) in [
        (1, "insurance=medicare"),
        (2, "insurance=medicaid"),
        (3, "insurance=uninsured"),
    ] {
        add(
            name,
            "socioeconomic",
            ps.iter()
                .map(|p| f(p.sim.socioeconomic.insurance == k))
                .collect(),
        );
    }
    let volume: Vec<f64> = ps
        .iter()
        .map(|p| sample.world.hospitals[p.sim.hospital].log_volume)
        .collect();
    let teaching: Vec<f64> = ps
        .iter()
        .map(|p| f(sample.world.hospitals[p.sim.hospital].teaching))
        .collect();
    let y: Vec<f64> = ps.iter().map(|p| f(p.outcomes.death)).collect();
    let group: Vec<u32> = ps
        .iter()
        .map(|p| match p.group {
            0 => 0,
            1 => 1,
            _ => 2,
        })
        .collect();
    let hospital: Vec<u32> = ps.iter().map(|p| p.sim.hospital as u32).collect();
    let nh = sample.world.hospitals.len();
    drop(sample);
    Workload {
        cols,
        volume,
        teaching,
        y,
        group,
        hospital,
        nh,
    }
}

/// Writes the workload's rows to `out` (Parquet, for bench/peers_decompose.py);
/// exits with status 1 when it cannot.
fn write_workload(w: &Workload, out: &str) {
    let mut table: Vec<(String, TableColumn)> = vec![
        ("death_30d".into(), TableColumn::Float(w.y.clone())),
        (
            "group".into(),
            TableColumn::Int(w.group.iter().map(|&g| i64::from(g)).collect()),
        ),
        (
            "hospital_id".into(),
            TableColumn::Int(w.hospital.iter().map(|&h| i64::from(h)).collect()),
        ),
        ("log_volume".into(), TableColumn::Float(w.volume.clone())),
        ("teaching".into(), TableColumn::Float(w.teaching.clone())),
    ];
    table.extend(
        w.cols
            .iter()
            .map(|(nm, _, v)| (nm.clone(), TableColumn::Float(v.clone()))),
    );
    let table = Table {
        name: "decompose".into(),
        columns: table,
    };
    if let Err(e) = write_table(&table, std::path::Path::new(out), TableFormat::Parquet) {
        eprintln!("cannot write {out}: {e}");
        std::process::exit(1);
    }
}

/// The covariate columns; with `with_care`, hospital volume and teaching
/// status as the care_site block.
fn columns(w: &Workload, with_care: bool) -> Vec<Column> {
    let mut c: Vec<Column> = w
        .cols
        .iter()
        .map(|(name, block, v)| Column {
            name: name.clone(),
            factor: block.clone(),
            values: v.to_vec(),
        })
        .collect();
    if with_care {
        c.push(Column {
            name: "log_volume".into(),
            factor: "care_site".into(),
            values: w.volume.to_vec(),
        });
        c.push(Column {
            name: "teaching".into(),
            factor: "care_site".into(),
            values: w.teaching.to_vec(),
        });
    }
    c
}

/// Status and insurance as categoricals over their dummy columns.
fn categoricals() -> Vec<Categorical> {
    vec![
        Categorical {
            variable: "status".into(),
            factor: "biological".into(),
            base: "status=elective".into(),
            columns: vec![9, 10],
        },
        Categorical {
            variable: "insurance".into(),
            factor: "socioeconomic".into(),
            base: "insurance=private".into(),
            columns: vec![12, 13, 14],
        },
    ]
}

/// hospital_id absorbed, as the care_site block.
fn absorbed(w: &Workload) -> Absorbed {
    Absorbed {
        variable: "hospital_id".into(),
        factor: "care_site".into(),
        codes: w.hospital.to_vec(),
        levels: w.nh,
        labels: (0..w.nh).map(|h| h.to_string()).collect(),
    }
}

/// Bootstrap inference with `replicates` replicates, clustered by hospital.
fn boot(replicates: usize) -> InferenceSpec {
    InferenceSpec {
        method: Method::Bootstrap,
        replicates,
        interval: Interval::Percentile,
        level: 0.95,
        seed: 1,
        analysis_id: "bench".into(),
        stratify: false,
        vce: healthgap_decompose::inference::Vce::Cluster,
        one_step: false,
    }
}

/// Linear Oaxaca-Blinder: with hospital_id absorbed or without a hospital
/// term, cluster or robust delta-method SEs, and the cluster bootstrap.
fn bench_oaxaca(b: &Bench<'_>) {
    let (w, repeats) = (b.w, b.repeats);
    let (y, group, hospital, nh) = (&w.y, &w.group, &w.hospital, w.nh);
    let delta = InferenceSpec::delta(0.95);
    let ob = |cov: &Covariates, spec: &InferenceSpec| {
        let input = LinearInput {
            sample: &Sample {
                labels: ["White", "Black"],
                weights: None,
                cluster: Some(Cluster {
                    name: "hospital_id",
                    codes: hospital,
                    count: nh,
                }),
                min_cell: 11,
                ..Sample::new(y, group)
            },
            covariates: cov,
            coefficients: Coefficients::Pooled,
            threefold: true,
            normalize: true,
            hospital_effects: Default::default(),
        };
        linear(&input, spec, &|| {}).expect("linear OB")
    };
    if b.want("ob_linear_fe_delta") {
        let (t, out) = time(repeats, || ob(&b.with_fe, &delta));
        println!(
            "RESULT ob_linear_fe_delta {t:.4}   ({} rows, cluster delta SEs, hospital_id absorbed)",
            out.estimates.len()
        );
    }
    if b.want("ob_linear_delta") {
        let (t, _) = time(repeats, || ob(&b.plain, &delta));
        println!("RESULT ob_linear_delta {t:.4}   (no hospital term, as statsmodels)");
    }
    if b.want("ob_linear_robust_delta") {
        // No cluster: the robust delta method (stacked influence functions,
        // each patient its own unit).
        let input = LinearInput {
            sample: &Sample {
                labels: ["White", "Black"],
                weights: None,
                cluster: None,
                min_cell: 11,
                ..Sample::new(y, group)
            },
            covariates: &b.plain,
            coefficients: Coefficients::Pooled,
            threefold: true,
            normalize: true,
            hospital_effects: Default::default(),
        };
        let (t, out) = time(repeats, || linear(&input, &delta, &|| {}).expect("OB"));
        println!(
            "RESULT ob_linear_robust_delta {t:.4}   ({} rows, robust delta SEs, no hospital term)",
            out.estimates.len()
        );
    }
    if b.want("ob_linear_fe_boot1000") {
        let (t, out) = time(repeats, || ob(&b.with_fe, &boot(1000)));
        println!(
            "RESULT ob_linear_fe_boot1000 {t:.4}   ({} replicates ok)",
            out.replicates_ok.unwrap_or(0)
        );
    }
}

/// Gelbach's decomposition with hospital_id absorbed: delta method and
/// bootstrap.
fn bench_gelbach(b: &Bench<'_>) {
    let (w, repeats) = (b.w, b.repeats);
    let delta = InferenceSpec::delta(0.95);
    let gel = |spec: &InferenceSpec| {
        let input = GelbachInput {
            sample: &Sample {
                labels: ["White", "Black"],
                weights: None,
                cluster: Some(Cluster {
                    name: "hospital_id",
                    codes: &w.hospital,
                    count: w.nh,
                }),
                ..Sample::new(&w.y, &w.group)
            },
            covariates: &b.with_fe,
            base_columns: 2,
        };
        gelbach(&input, spec, &|| {}).expect("gelbach")
    };
    if b.want("gelbach_fe_delta") {
        let (t, _) = time(repeats, || gel(&delta));
        println!("RESULT gelbach_fe_delta {t:.4}");
    }
    if b.want("gelbach_fe_boot1000") {
        let (t, _) = time(repeats, || gel(&boot(1000)));
        println!("RESULT gelbach_fe_boot1000 {t:.4}");
    }
}

/// Yun's nonlinear (logit) decomposition with the care_site columns: delta
/// method, bootstrap (converged and one-step replicates) and Fairlie orderings.
fn bench_yun(b: &Bench<'_>) {
    let (w, repeats) = (b.w, b.repeats);
    let delta = InferenceSpec::delta(0.95);
    let yun = |spec: &InferenceSpec, orderings: usize| {
        let input = NonlinearInput {
            sample: &Sample {
                labels: ["White", "Black"],
                weights: None,
                cluster: Some(Cluster {
                    name: "hospital_id",
                    codes: &w.hospital,
                    count: w.nh,
                }),
                ..Sample::new(&w.y, &w.group)
            },
            covariates: &b.hospital_covariates,
            link: Link::Logit,
            coefficients: Coefficients::Reference,
            normalize: true,
            fairlie_orderings: orderings,
            seed: 1,
            analysis_id: "bench".into(),
        };
        nonlinear(&input, spec, &|| {}).expect("yun")
    };
    if b.want("yun_logit_delta") {
        let (t, _) = time(repeats, || yun(&delta, 0));
        println!("RESULT yun_logit_delta {t:.4}");
    }
    if b.want("yun_logit_boot200") {
        let (t, out) = time(1, || yun(&boot(200), 0));
        println!(
            "RESULT yun_logit_boot200 {t:.4}   ({} replicates ok)",
            out.replicates_ok.unwrap_or(0)
        );
    }
    if b.want("yun_logit_boot200_onestep") {
        let spec = InferenceSpec {
            one_step: true,
            ..boot(200)
        };
        let (t, out) = time(1, || yun(&spec, 0));
        println!(
            "RESULT yun_logit_boot200_onestep {t:.4}   ({} replicates ok)",
            out.replicates_ok.unwrap_or(0)
        );
    }
    if b.want("yun_logit_fairlie100_delta") {
        let (t, _) = time(1, || yun(&delta, 100));
        println!("RESULT yun_logit_fairlie100_delta {t:.4}");
    }
}

/// The care-site analysis (Kitagawa, LPM with and without FE, logit and FE
/// logit, hospital profiling): delta method and bootstrap.
fn bench_hospital(b: &Bench<'_>) {
    let w = b.w;
    let delta = InferenceSpec::delta(0.95);
    let hosp = |spec: &InferenceSpec| {
        let adjust = Covariates {
            columns: columns(w, false),
            categoricals: vec![],
            absorbed: None,
        };
        let input = HospitalInput {
            sample: &Sample {
                outcome: "y",
                y: &w.y,
                group: &w.group,
                labels: ["White", "Black"],
                weights: None,
                cluster: Some(Cluster {
                    name: "hospital_id",
                    codes: &w.hospital,
                    count: w.nh,
                }),
                binary: true,
                min_cell: 11,
            },
            covariates: &adjust,
            hospital: Absorbed {
                variable: "hospital_id".into(),
                factor: "care_site".into(),
                codes: w.hospital.to_vec(),
                levels: w.nh,
                labels: (0..w.nh).map(|h| h.to_string()).collect(),
            },
            extra_fe: vec![],
            pseudonymize: false,
            hierarchical: None,
        };
        hospital::hospital(&input, spec, &|| {}).expect("hospital")
    };
    if b.want("hospital_all_delta") {
        let (t, _) = time(1, || hosp(&delta));
        println!("RESULT hospital_all_delta {t:.4}   (the same with cluster delta SEs)");
    }
    if b.want("hospital_all_boot500") {
        let (t, out) = time(1, || hosp(&boot(500)));
        println!(
            "RESULT hospital_all_boot500 {t:.4}   (Kitagawa, LPM with/without FE, logit and FE logit, profiling of {} hospitals, 500 replicates)",
            out.hospitals.len()
        );
    }
}

/// Interventional disparity reduction over three targets (g-computation with 5
/// draws): one-step and converged bootstrap replicates.
fn bench_reduction(b: &Bench<'_>) {
    let w = b.w;
    let dr = |spec: &InferenceSpec| {
        let input = ReductionInput {
            sample: &Sample {
                outcome: "y",
                y: &w.y,
                group: &w.group,
                labels: ["White", "Black"],
                weights: None,
                cluster: Some(Cluster {
                    name: "hospital_id",
                    codes: &w.hospital,
                    count: w.nh,
                }),
                binary: true,
                min_cell: 11,
            },
            covariates: &b.with_fe,
            allowable: vec![0, 1],
            targets: vec![
                Target {
                    name: "socioeconomic".into(),
                    columns: (11..15).collect(),
                    absorbed: false,
                },
                Target {
                    name: "biological".into(),
                    columns: (2..11).collect(),
                    absorbed: false,
                },
                Target {
                    name: "care_site".into(),
                    columns: vec![],
                    absorbed: true,
                },
            ],
            draws: 5,
            learning: None,
            estimator: Default::default(),
            hospital_effects: Default::default(),
        };
        disparity_reduction(&input, spec, &|| {}).expect("disparity reduction")
    };
    if b.want("disparity_reduction_boot500") {
        // One Newton step per replicate (`one_step = true`): the row measured
        // before converged replicates became the default.
        let spec = InferenceSpec {
            one_step: true,
            ..boot(500)
        };
        let (t, out) = time(1, || dr(&spec));
        println!(
            "RESULT disparity_reduction_boot500 {t:.4}   (3 targets, g-computation with 5 draws, one-step replicates, {} replicates ok)",
            out.replicates_ok.unwrap_or(0)
        );
    }
    if b.want("disparity_reduction_converged_boot50") {
        // The default: every replicate's logit refitted to convergence.
        let (t, out) = time(1, || dr(&boot(50)));
        println!(
            "RESULT disparity_reduction_converged_boot50 {t:.4}   (3 targets, g-computation with 5 draws, converged replicates, {} replicates ok)",
            out.replicates_ok.unwrap_or(0)
        );
    }
}
