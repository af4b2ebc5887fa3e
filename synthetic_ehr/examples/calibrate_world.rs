//! Searches world seeds for the hospital world whose realised 300 hospitals hit
//! the calibration targets of SYNTHETIC_EHR.md (White vs Black 30-day mortality
//! 2.2% vs 2.95%, share of Black patients at the top 5% / 25% of hospitals 43% /
//! 85%, SD of the hospital effect 0.35). The default `world_seed` was chosen with
//! this program:
//! `cargo run --release -p healthgap-synth --example calibrate_world -- 1 400`
use healthgap_synth::{Params, Sample};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (from, to) = (
        args.first().copied().unwrap_or(1),
        args.get(1).copied().unwrap_or(200),
    );
    let mut best = (f64::INFINITY, 0);
    for seed in from..=to {
        let mut params = Params::default();
        params.patients = 300_000;
        params.world_seed = seed;
        let s = Sample::generate(&params, &|_| {});
        let mut mort = [0.0; 2];
        let mut n = [0.0; 2];
        let mut black_by_h: Vec<f64> = vec![0.0; s.world.len()];
        for p in &s.patients {
            if p.group < 2 {
                let g = p.group as usize;
                mort[g] += p.sim.outcome.death;
                n[g] += 1.0;
                if g == 1 {
                    black_by_h[p.sim.hospital] += 1.0;
                }
            }
        }
        black_by_h.sort_by(|a, b| b.total_cmp(a));
        let tot: f64 = black_by_h.iter().sum();
        let top5: f64 = black_by_h[..15].iter().sum::<f64>() / tot;
        let top25: f64 = black_by_h[..75].iter().sum::<f64>() / tot;
        let u: Vec<f64> = s.world.hospitals.iter().map(|h| h.effect).collect();
        let mu = u.iter().sum::<f64>() / u.len() as f64;
        let sd = (u.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (u.len() - 1) as f64).sqrt();
        let (mw, mb) = (mort[0] / n[0], mort[1] / n[1]);
        let dist = ((mw - 0.022) / 0.0005).powi(2)
            + ((mb - 0.0295) / 0.0005).powi(2)
            + ((top5 - 0.43) / 0.02).powi(2)
            + ((top25 - 0.85) / 0.02).powi(2)
            + ((sd - 0.35) / 0.02).powi(2);
        if dist < best.0 {
            best = (dist, seed);
        }
        println!(
            "seed {seed:4} white {:.4} black {:.4} top5 {top5:.3} top25 {top25:.3} sd_u {sd:.3} dist {dist:.2}",
            mw, mb
        );
    }
    println!("best seed {} (distance {:.2})", best.1, best.0);
}
