//! The random race slope per hospital (`hospital_disparity_sd`, issue #17):
//! off by default with every output unchanged, drawn from its own stream, and
//! its truth in truth.json `hospitals`.

use healthgap_synth::{Column, Params, Sample, Table, truth};

/// FNV-1a over every value of a table, in column order.
fn table_hash(table: &Table) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, column) in &table.columns {
        eat(name.as_bytes());
        match column {
            Column::Int(v) => v.iter().for_each(|x| eat(&x.to_le_bytes())),
            Column::OptInt(v) => v
                .iter()
                .for_each(|x| eat(&x.unwrap_or(i64::MIN).to_le_bytes())),
            Column::Float(v) => v.iter().for_each(|x| eat(&x.to_bits().to_le_bytes())),
            Column::Str(v) => v.iter().for_each(|x| eat(x.as_bytes())),
            Column::Cat { codes, .. } => codes.iter().for_each(|x| eat(&x.to_le_bytes())),
            Column::Date(v) => v.iter().for_each(|x| eat(&x.to_le_bytes())),
        }
    }
    h
}

fn params(seed: u64, disparity_sd: f64) -> Params {
    let mut params = Params::default();
    params.patients = 5_000;
    params.seed = seed;
    params
        .set_assignment(&format!("hospital_disparity_sd={disparity_sd}"))
        .expect("a known key");
    params.validate().expect("valid parameters");
    params
}

#[test]
fn slope_off_leaves_the_extract_as_before() {
    // The hash of the flat extract (seed 3, 5,000 patients) made by the
    // generator before the slope existed (commit 739f8f7). Its values are
    // rounded as written, so the hash does not hang on the last bit of exp or
    // ln. A deliberate change of the generator must update it.
    let sample = Sample::generate(&params(3, 0.0), &|_| {});
    assert_eq!(table_hash(&sample.flat_table()), 0x6ff4_0897_a74b_1518);
    assert!(sample.world.hospitals.iter().all(|h| h.disparity == 0.0));
    // No new column anywhere while the slope is off.
    assert!(sample.hospitals_table().column("disparity").is_none());
    assert!(
        sample
            .truth_patients_table()
            .column("hospital_disparity")
            .is_none()
    );
}

#[test]
fn slope_on_changes_only_the_slope_groups_outcomes() {
    let off = Sample::generate(&params(3, 0.0), &|_| {});
    let on = Sample::generate(&params(3, 0.3), &|_| {});
    // Every hospital draw is unchanged.
    for (a, b) in off.world.hospitals.iter().zip(&on.world.hospitals) {
        assert_eq!(
            (a.z, a.log_volume, a.effect, a.teaching, a.region),
            (b.z, b.log_volume, b.effect, b.teaching, b.region)
        );
    }
    let mut changed = 0;
    for (a, b) in off.patients.iter().zip(&on.patients) {
        assert_eq!(
            (a.group, a.aux, a.sim.hospital),
            (b.group, b.aux, b.sim.hospital)
        );
        assert_eq!(a.sim.position, b.sim.position);
        assert_eq!(a.sim.demographics.age, b.sim.demographics.age);
        assert_eq!(a.sim.socioeconomic.ses, b.sim.socioeconomic.ses);
        assert_eq!(a.sim.clinical.conditions, b.sim.clinical.conditions);
        let v = on.world.hospitals[b.sim.hospital].disparity;
        if a.group == 1 {
            // Black: v_h on the mortality logit.
            let logit = |p: f64| (p / (1.0 - p)).ln();
            let shift = logit(b.sim.outcome.death) - logit(a.sim.outcome.death);
            assert!((shift - v).abs() < 1e-9, "{shift} vs {v}");
            let los = b.sim.outcome.log_los - a.sim.outcome.log_los;
            assert!((los - 0.3 * v).abs() < 1e-12);
            changed += 1;
        } else {
            assert_eq!(a.sim.outcome.death, b.sim.outcome.death);
            assert_eq!(a.sim.outcome.morbidity, b.sim.outcome.morbidity);
            assert_eq!(a.sim.outcome.log_los, b.sim.outcome.log_los);
            assert_eq!(a.outcomes.death, b.outcomes.death);
            assert_eq!(a.outcomes.readmit, b.outcomes.readmit);
        }
    }
    assert!(changed > 200, "{changed} Black patients");
    // The latent columns appear.
    assert!(on.hospitals_table().column("disparity").is_some());
    assert!(
        on.truth_patients_table()
            .column("hospital_disparity")
            .is_some()
    );
}

#[test]
fn slope_has_the_requested_spread_over_300_hospitals() {
    for (world_seed, sd) in [(83, 0.3), (5, 0.3), (83, 1.0)] {
        let mut p = params(1, sd);
        p.world_seed = world_seed;
        p.patients = 10;
        let sample = Sample::generate(&p, &|_| {});
        let v: Vec<f64> = sample.world.hospitals.iter().map(|h| h.disparity).collect();
        assert_eq!(v.len(), 300);
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        // SE of a normal SD over 300: σ/√(2·299) ≈ 0.041σ; of the mean σ/√300.
        assert!((s - sd).abs() < 4.0 * sd / 598f64.sqrt(), "sd {s} for {sd}");
        assert!(m.abs() < 4.0 * sd / n.sqrt(), "mean {m}");
        let t = truth::hospital_truth(&sample);
        assert_eq!(t.slope_sd, sd);
        assert!((t.slope_sd_realised - s).abs() < 1e-12);
    }
}

#[test]
fn same_seed_gives_the_same_slopes_and_truth() {
    let a = Sample::generate(&params(9, 0.4), &|_| {});
    let b = Sample::generate(&params(9, 0.4), &|_| {});
    assert_eq!(table_hash(&a.flat_table()), table_hash(&b.flat_table()));
    assert_eq!(
        table_hash(&a.hospitals_table()),
        table_hash(&b.hospitals_table())
    );
    assert_eq!(truth::hospital_truth(&a), truth::hospital_truth(&b));
    // The slopes belong to the world: another patient seed keeps them.
    let c = Sample::generate(&params(10, 0.4), &|_| {});
    for (x, y) in a.world.hospitals.iter().zip(&c.world.hospitals) {
        assert_eq!(x.disparity, y.disparity);
    }
}

#[test]
fn slope_keys_are_validated() {
    let mut p = Params::default();
    p.set_assignment("hospital_disparity_sd=-0.1").unwrap();
    let err = p.validate().unwrap_err().to_string();
    assert!(err.contains("hospital_disparity_sd"), "{err}");
    let mut p = Params::default();
    p.set_assignment("hospital_disparity_rho=1.5").unwrap();
    assert!(p.validate().is_err());
    let err = Params::default()
        .set("hospital_disparty_sd", 0.3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hospital_disparity_sd"), "{err}");
}

#[test]
fn slope_moves_the_black_truth_through_the_direct_path_only() {
    let run = |sd: f64| {
        let mut p = params(4, sd);
        p.population_draws = 20_000;
        truth::compute(&Sample::generate(&p, &|_| {}))
    };
    let (off, on) = (run(0.0), run(0.5));
    for (a, b) in off.values.iter().zip(&on.values) {
        assert_eq!(
            (&a.quantity, &a.comparison, &a.outcome, &a.component),
            (&b.quantity, &b.comparison, &b.outcome, &b.component)
        );
        if a.comparison != "Black" {
            // Other groups carry no slope: their truth is unchanged.
            assert_eq!(a, b);
        } else if a.quantity == "path_specific" && a.component.as_deref() != Some("direct") {
            // Every step before the outcome block keeps the White outcome row.
            assert_eq!(a.population, b.population, "{a:?}");
        }
    }
    let direct = |t: &healthgap_synth::Truth| {
        t.get("path_specific", "Black", "death_30d", Some("direct"))
            .unwrap()
            .population
    };
    assert_ne!(direct(&off), direct(&on));
}
