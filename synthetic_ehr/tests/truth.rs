//! Truth consistency: the decompositions in truth.json add up, and the sample
//! truths converge to the population truths as N grows.

use healthgap_synth::{Params, Sample, Truth, truth};

fn truth_for(patients: usize, seed: u64, population_draws: usize) -> Truth {
    let mut params = Params::default();
    params.patients = patients;
    params.seed = seed;
    params.population_draws = population_draws;
    truth::compute(&Sample::generate(&params, &|_| {}))
}

fn value(t: &Truth, q: &str, c: &str, o: &str, comp: Option<&str>) -> (f64, Option<f64>) {
    let v = t
        .get(q, c, o, comp)
        .unwrap_or_else(|| panic!("missing {q}/{c}/{o}/{comp:?}"));
    (v.population, v.sample)
}

#[test]
fn decompositions_add_up_for_every_group_and_outcome() {
    let t = truth_for(60_000, 3, 40_000);
    for comparison in ["Black", "Hispanic", "Asian", "Other"] {
        for outcome in &t.outcomes {
            let (gap, sample_gap) = value(&t, "gap", comparison, outcome, None);
            let sample_gap = sample_gap.expect("sample gap");
            let tol = 1e-12 * (1.0 + gap.abs() * 1e3);
            // Path-specific steps and Shapley values sum to the gap (population).
            for q in ["path_specific", "path_specific_shapley"] {
                let total: f64 = t
                    .path_order
                    .iter()
                    .map(|b| value(&t, q, comparison, outcome, Some(b)).0)
                    .sum();
                assert!(
                    (total - gap).abs() < tol.max(1e-9),
                    "{q} {comparison} {outcome}: {total} vs {gap}"
                );
            }
            // Kitagawa between + within = gap, in the population and in the sample.
            let (b, bs) = value(
                &t,
                "kitagawa",
                comparison,
                outcome,
                Some("between_hospital"),
            );
            let (w, ws) = value(&t, "kitagawa", comparison, outcome, Some("within_hospital"));
            assert!(
                (b + w - gap).abs() < 1e-9,
                "kitagawa {comparison} {outcome}"
            );
            assert!((bs.unwrap() + ws.unwrap() - sample_gap).abs() < 1e-9);
            // The crude LPM coefficient is the gap.
            let (crude, crude_s) = value(
                &t,
                "lpm_group_coefficient",
                comparison,
                outcome,
                Some("crude"),
            );
            assert!((crude - gap).abs() < 1e-9 * (1.0 + gap.abs()));
            assert!((crude_s.unwrap() - sample_gap).abs() < 1e-9 * (1.0 + gap.abs()));
            // OB blocks sum to the explained part, and explained + unexplained = gap.
            for ob in ["oaxaca_blinder_reference", "oaxaca_blinder_pooled"] {
                let (e, _) = value(&t, ob, comparison, outcome, Some("explained"));
                let (u, _) = value(&t, ob, comparison, outcome, Some("unexplained"));
                let blocks: f64 = ["biological", "socioeconomic", "care_site"]
                    .iter()
                    .map(|b| value(&t, ob, comparison, outcome, Some(&format!("explained:{b}"))).0)
                    .sum();
                assert!((e + u - gap).abs() < 1e-9 * (1.0 + gap.abs()));
                assert!((blocks - e).abs() < 1e-9 * (1.0 + e.abs()));
            }
            // Disparity reduction: remaining + reduction = initial; Shapley sums to
            // the joint reduction.
            let (init, init_s) = value(&t, "initial_disparity", comparison, outcome, None);
            let joint = "socioeconomic+clinical+care_site";
            for set in [
                "socioeconomic",
                "clinical",
                "care_site",
                "socioeconomic+clinical",
                joint,
            ] {
                let (rem, rem_s) = value(&t, "disparity_remaining", comparison, outcome, Some(set));
                let (red, red_s) = value(&t, "disparity_reduction", comparison, outcome, Some(set));
                assert!((rem + red - init).abs() < 1e-9 * (1.0 + init.abs()));
                assert!(
                    (rem_s.unwrap() + red_s.unwrap() - init_s.unwrap()).abs()
                        < 1e-9 * (1.0 + init.abs())
                );
            }
            let shapley: f64 = ["socioeconomic", "clinical", "care_site"]
                .iter()
                .map(|b| {
                    value(
                        &t,
                        "disparity_reduction_shapley",
                        comparison,
                        outcome,
                        Some(b),
                    )
                    .0
                })
                .sum();
            let (joint_red, _) = value(&t, "disparity_reduction", comparison, outcome, Some(joint));
            assert!((shapley - joint_red).abs() < 1e-9 * (1.0 + joint_red.abs()));
        }
    }
}

#[test]
fn sample_truths_converge_to_the_population_truths() {
    // Same population (same world and population streams), samples of 20k and
    // 320k patients: the squared sample-minus-population distance over all Black
    // mortality quantities should shrink about 16-fold; require at least 4-fold.
    let small = truth_for(20_000, 5, 60_000);
    let large = truth_for(320_000, 5, 60_000);
    let distance = |t: &Truth| -> f64 {
        t.values
            .iter()
            .filter(|v| v.comparison == "Black" && v.outcome == "death_30d")
            .filter_map(|v| v.sample.map(|s| (s - v.population).powi(2)))
            .sum()
    };
    let population_same = small
        .values
        .iter()
        .zip(&large.values)
        .all(|(a, b)| a.population == b.population);
    assert!(
        population_same,
        "the population truth must not depend on the sample"
    );
    let (d_small, d_large) = (distance(&small), distance(&large));
    assert!(
        d_large < d_small / 4.0,
        "small {d_small:e} large {d_large:e}"
    );
}

#[test]
fn prototype_magnitudes_are_reproduced_for_mortality() {
    // SYNTHETIC_EHR.md prototype values for the Black-White mortality gap (pp):
    // demographics −0.19, SES +0.21, clinical +0.26; gap ≈ 0.70; LPM with
    // covariates + hospital FE 0.19. The hospital pathway depends on the realised
    // 300-hospital world and is checked only for sign and rough size.
    let mut params = Params::default();
    params.patients = 20_000;
    params.population_draws = 200_000;
    for g in 2..5 {
        params.groups[g].share = 0.0; // only the Black-White contrast is needed
    }
    let t = truth::compute(&Sample::generate(&params, &|_| {}));
    let pp = |q: &str, c: Option<&str>| 100.0 * value(&t, q, "Black", "death_30d", c).0;
    let close = |x: f64, target: f64, tol: f64, what: &str| {
        assert!(
            (x - target).abs() < tol,
            "{what}: {x:.3} pp vs prototype {target} pp"
        );
    };
    close(
        pp("path_specific", Some("demographics")),
        -0.19,
        0.03,
        "demographics",
    );
    close(
        pp("path_specific", Some("socioeconomic")),
        0.21,
        0.03,
        "socioeconomic",
    );
    close(
        pp("path_specific", Some("clinical")),
        0.26,
        0.03,
        "clinical",
    );
    close(pp("gap", None), 0.75, 0.1, "gap");
    close(
        pp("lpm_group_coefficient", Some("covariates_hospital_fe")),
        0.19,
        0.06,
        "LPM FE",
    );
    let hospital = pp("path_specific", Some("hospital"));
    assert!(
        hospital > 0.1 && hospital < 0.45,
        "hospital pathway {hospital}"
    );
}

#[test]
fn canonical_blocks_match_the_canonical_study_config() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../analyses/cabg_synthetic.toml"
    );
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let factors = config["factors"].as_table().unwrap();
    let names: Vec<&str> = factors.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = truth::CANONICAL_BLOCKS.iter().map(|(b, _)| *b).collect();
    let mut got = names.clone();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected);
    for (block, vars) in truth::CANONICAL_BLOCKS {
        let listed: Vec<&str> = factors[block]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(listed, vars.to_vec(), "block {block}");
    }
    assert_eq!(config["groups"]["reference"].as_str(), Some("White"));
}
