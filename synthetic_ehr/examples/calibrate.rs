//! Prints the population calibration measures and the headline truths.
//! `cargo run --release -p healthgap-synth --example calibrate -- [key=value ...]`
use healthgap_synth::{Params, Sample, truth};

fn main() {
    let mut params = Params::default();
    params.patients = 200_000;
    for a in std::env::args().skip(1) {
        if let Err(e) = params.set_assignment(&a) {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    let t0 = std::time::Instant::now();
    let sample = Sample::generate(&params, &|_| {});
    let t1 = t0.elapsed();
    let truth = truth::compute(&sample);
    let t2 = t0.elapsed();
    eprintln!(
        "generate {:.3}s truth {:.3}s",
        t1.as_secs_f64(),
        (t2 - t1).as_secs_f64()
    );
    for c in &truth.calibration {
        println!("{:32} {:9} {:.4}", c.measure, c.group, c.value);
    }
    // Readmission among survivors, from the sample.
    for g in [0u8, 1] {
        let (mut n, mut r) = (0.0, 0.0);
        for p in &sample.patients {
            if p.group == g && !p.outcomes.death {
                n += 1.0;
                let o = p.sim.outcome;
                r += o.morbidity * o.readmit_complication
                    + (1.0 - o.morbidity) * o.readmit_no_complication;
            }
        }
        println!(
            "readmit among survivors (sample oracle) group {g}: {:.4}",
            r / n
        );
    }
    for v in truth
        .values
        .iter()
        .filter(|v| v.comparison == "Black" && v.outcome == "death_30d")
    {
        println!(
            "{:28} {:40} pop {:+.5} (se {:.5}) sample {:?}",
            v.quantity,
            v.component.clone().unwrap_or_default(),
            v.population,
            v.population_mc_se,
            v.sample.map(|s| (s * 1e5).round() / 1e5)
        );
    }
}
