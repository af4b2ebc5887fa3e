//! Generation throughput, for the benchmark harness (bench/run.sh):
//! `cargo run --release -p healthgap-synth --example throughput -- N REPEATS`
//! prints the median wall time of drawing N patients, and of the truth
//! computation, with the thread count taken from RAYON_NUM_THREADS.
use std::time::Instant;

use healthgap_synth::{Params, Sample, truth};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(1_000_000);
    let repeats = args.get(1).copied().unwrap_or(5).max(1);
    let mut params = Params::default();
    params.patients = n;
    let threads = rayon::current_num_threads();
    let mut gen_times = Vec::new();
    let mut sample = None;
    for _ in 0..repeats {
        let t = Instant::now();
        let s = Sample::generate(&params, &|_| {});
        gen_times.push(t.elapsed().as_secs_f64());
        sample = Some(s);
    }
    let g = median(gen_times);
    println!(
        "generate {n} patients, {threads} thread(s): median {g:.3} s = {:.2} M patients/s ({:.2} M/s per thread)",
        n as f64 / g / 1e6,
        n as f64 / g / 1e6 / threads as f64
    );
    if let Some(sample) = sample {
        let mut truth_times = Vec::new();
        for _ in 0..repeats.min(3) {
            let t = Instant::now();
            let _ = truth::compute(&sample);
            truth_times.push(t.elapsed().as_secs_f64());
        }
        println!(
            "truth.json for {n} patients ({} population draws x 4 comparison groups), {threads} thread(s): median {:.3} s",
            params.population_draws,
            median(truth_times)
        );
    }
}
