//! The benchmark design shared by bench_models and bench_glmm: the 29
//! regressors (besides the constant) built from the synthetic cohort.

use std::time::Instant;

use healthgap_synth::Sample;

/// The benchmarks' first two arguments: the patients (default 1,000,000)
/// and the repetitions whose median is reported (default 3).
pub fn size_and_repeats(args: &[String]) -> (usize, usize) {
    let n = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let repeats = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    (n, repeats)
}

/// The 29 regressors (besides the constant) of the benchmark design.
pub fn columns(sample: &Sample) -> Vec<(String, Vec<f64>)> {
    let ps = &sample.patients;
    let f = |b: bool| f64::from(u8::from(b));
    let mut cols: Vec<(String, Vec<f64>)> = Vec::new();
    let mut add = |name: &str, v: Vec<f64>| cols.push((name.to_string(), v));
    for (g, name) in [(1, "black"), (2, "hispanic"), (3, "asian"), (4, "other")] {
        add(name, ps.iter().map(|p| f(p.group == g)).collect());
    }
    add("age", ps.iter().map(|p| p.sim.demographics.age).collect());
    add(
        "age_sq",
        ps.iter()
            .map(|p| (p.sim.demographics.age - 65.0).powi(2) / 100.0)
            .collect(),
    );
    add(
        "female",
        ps.iter().map(|p| f(p.sim.demographics.female)).collect(),
    );
    let cond = [
        "diabetes",
        "dialysis",
        "heart_failure",
        "lung_disease",
        "pad",
        "prior_mi",
    ];
    for (k, name) in cond.iter().enumerate() {
        add(
            name,
            ps.iter().map(|p| f(p.sim.clinical.conditions[k])).collect(),
        );
    }
    add(
        "ejection_fraction",
        ps.iter().map(|p| p.sim.clinical.ef).collect(),
    );
    add(
        "ef_low",
        ps.iter().map(|p| f(p.sim.clinical.ef < 35.0)).collect(),
    );
    add(
        "urgent",
        ps.iter().map(|p| f(p.sim.clinical.status == 1)).collect(),
    );
    add(
        "emergent",
        ps.iter().map(|p| f(p.sim.clinical.status == 2)).collect(),
    );
    add("bmi", ps.iter().map(|p| p.sim.clinical.bmi).collect());
    add(
        "obese",
        ps.iter().map(|p| f(p.sim.clinical.bmi >= 35.0)).collect(),
    );
    add(
        "creatinine",
        ps.iter().map(|p| p.sim.clinical.creatinine).collect(),
    );
    add("adi", ps.iter().map(|p| p.sim.socioeconomic.adi).collect());
    add(
        "adi_top_quintile",
        ps.iter()
            .map(|p| f(p.sim.socioeconomic.adi > 80.0))
            .collect(),
    );
    for (k, name) in [(1, "medicare"), (2, "medicaid"), (3, "uninsured")] {
        add(
            name,
            ps.iter()
                .map(|p| f(p.sim.socioeconomic.insurance == k))
                .collect(),
        );
    }
    add(
        "female_x_age",
        ps.iter()
            .map(|p| f(p.sim.demographics.female) * (p.sim.demographics.age - 65.0))
            .collect(),
    );
    add(
        "dialysis_x_age",
        ps.iter()
            .map(|p| f(p.sim.clinical.conditions[1]) * (p.sim.demographics.age - 65.0))
            .collect(),
    );
    add(
        "diabetes_x_female",
        ps.iter()
            .map(|p| f(p.sim.clinical.conditions[0] && p.sim.demographics.female))
            .collect(),
    );
    cols
}

/// The median of `v`.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median wall time of `repeats` runs of `f`, and the last result.
pub fn time<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..repeats {
        let t = Instant::now();
        out = Some(f());
        times.push(t.elapsed().as_secs_f64());
    }
    (median(times), out.expect("at least one repeat"))
}
