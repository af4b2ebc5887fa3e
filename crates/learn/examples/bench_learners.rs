//! Timing of the learners on a synthetic 200k × 30 design with a binary
//! outcome (a threshold, an interaction and main effects), on all cores.
//!
//!     cargo run --release -p healthgap-learn --example bench_learners -- [rows] [trees] [which] [min_leaf] [max_draws]
//!
//! `which` is a comma list of glm, elastic_net, forest, super_learner
//! (default glm,elastic_net,forest). Prints one line per learner: fit and
//! predict seconds and the in-sample log loss, and the machine's load.

use std::time::Instant;

use healthgap_learn::loss::loss;
use healthgap_learn::{Family, LearnerConfig, LearnerKind, Matrix, Task};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn design(n: usize, p: usize, seed: u64) -> (Matrix, Vec<f64>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0.0; n * p];
    let mut y = Vec::with_capacity(n);
    let mut clusters = Vec::with_capacity(n);
    let mut row = vec![0.0; p];
    for i in 0..n {
        for (j, v) in row.iter_mut().enumerate() {
            *v = if j % 3 == 2 {
                f64::from(u8::from(rng.random_range(0.0..1.0) < 0.3))
            } else {
                rng.random_range(-2.0..2.0)
            };
            data[j * n + i] = *v;
        }
        let eta =
            -2.0 + 1.5 * f64::from(u8::from(row[0] > 0.5 && row[1] > 0.0)) + 0.8 * row[3] * row[4]
                - 0.5 * row[2]
                + 0.3 * row[6];
        let pr = 1.0 / (1.0 + (-eta).exp());
        y.push(f64::from(u8::from(rng.random_range(0.0..1.0) < pr)));
        clusters.push(rng.random_range(0..300u32));
    }
    let names = (0..p).map(|j| format!("x{j}")).collect();
    let x = Matrix::from_col_major(data, n, names).unwrap_or_else(|e| panic!("{e}"));
    (x, y, clusters)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let trees: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let which = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "glm,elastic_net,forest".into());
    let (x, y, clusters) = design(n, 30, 1);
    let (x_new, y_new, _) = design(n.min(50_000), 30, 2);
    let task = Task::new(&x, &y, Family::Binary)
        .and_then(|t| t.with_clusters(&clusters))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = LearnerConfig::default();
    config.forest.trees = trees;
    if let Some(m) = args.get(4).and_then(|a| a.parse().ok()) {
        config.forest.min_leaf = m;
    }
    if let Some(m) = args.get(5).and_then(|a| a.parse().ok()) {
        config.forest.max_draws = m;
    }
    println!(
        "rows {n}, columns 30, trees {trees}, threads {}, load before: {}",
        rayon::current_num_threads(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for name in which.split(',') {
        let kind = match name {
            "glm" => LearnerKind::Glm,
            "elastic_net" => LearnerKind::ElasticNet,
            "forest" => LearnerKind::Forest,
            "super_learner" => LearnerKind::SuperLearner,
            other => panic!("unknown learner {other}"),
        };
        let learner = config.build_kind(kind).unwrap_or_else(|e| panic!("{e}"));
        let t0 = Instant::now();
        let fit = learner.fit(&task, 7).unwrap_or_else(|e| panic!("{e}"));
        let t_fit = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let p = fit.predict(&x).unwrap_or_else(|e| panic!("{e}"));
        let t_pred = t1.elapsed().as_secs_f64();
        let held_out = fit.predict(&x_new).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "{name:>14}: fit {t_fit:7.2} s  predict {t_pred:6.2} s  in-sample log loss {:.15}  held-out {:.4}  load {}",
            loss(Family::Binary, &y, &p, None),
            loss(Family::Binary, &y_new, &held_out, None),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        if let Ok(json) = serde_json::to_string(&fit.report().detail) {
            println!("{:>14}  {}", "", json.chars().take(400).collect::<String>());
        }
    }
}
