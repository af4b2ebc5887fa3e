//! Interventional disparity reduction end to end: identities on a small study,
//! and recovery of the generator's truth.

use crate::oaxaca::results;
use crate::util::Dir;

fn study(patients: usize, replicates: usize, outcomes: &str, compare: &str) -> String {
    study_seeded(patients, 21, replicates, outcomes, compare)
}

fn study_seeded(
    patients: usize,
    seed: u64,
    replicates: usize,
    outcomes: &str,
    compare: &str,
) -> String {
    study_with(
        patients,
        seed,
        replicates,
        outcomes,
        compare,
        "gcomputation",
    )
}

fn study_with(
    patients: usize,
    seed: u64,
    replicates: usize,
    outcomes: &str,
    compare: &str,
    estimator: &str,
) -> String {
    format!(
        r#"
[study]
name = "DR"
seed = 3

[data]
synthetic = {{ patients = {patients}, seed = {seed} }}

[groups]
column = "race"
reference = "White"
compare = [{compare}]

[outcomes]
death_30d = {{ type = "binary" }}
major_morbidity = {{ type = "binary" }}
readmit_30d = {{ type = "binary" }}
los_days = {{ type = "continuous" }}

[factors]
demographics = ["age", "female"]
socioeconomic = ["adi", "insurance"]
clinical = ["diabetes", "dialysis", "heart_failure", "lung_disease", "pad", "prior_mi", "ejection_fraction", "status", "bmi", "creatinine"]
care_site = ["hospital_id"]

[variables]
insurance = {{ type = "categorical", reference = "private" }}
status = {{ type = "categorical", reference = "elective" }}
hospital_id = {{ type = "categorical" }}

[design]
cluster = "hospital_id"

[inference]
method = "bootstrap"
replicates = {replicates}

[[analysis]]
method = "disparity_reduction"
outcomes = [{outcomes}]
allowable = ["demographics"]
targets = ["socioeconomic", "clinical", "care_site"]
draws = 5
estimator = "{estimator}"

[report]
out_dir = "out"
"#
    )
}

fn rows(a: &serde_json::Value) -> Vec<serde_json::Value> {
    a["estimates"].as_array().unwrap().clone()
}

fn value(rows: &[serde_json::Value], q: &str, f: Option<&str>) -> f64 {
    rows.iter()
        .find(|e| e["quantity"] == q && e["factor"].as_str() == f)
        .unwrap_or_else(|| panic!("{q} {f:?}"))["estimate"]
        .as_f64()
        .unwrap()
}

#[test]
fn reductions_add_up_and_are_seeded() {
    let dir = Dir::new();
    std::fs::write(
        dir.join("dr.toml"),
        study(20_000, 50, "\"death_30d\", \"los_days\"", "\"Black\""),
    )
    .unwrap();
    dir.ok(&["run", "dr.toml", "--out", "a"]);
    dir.ok(&["run", "dr.toml", "--out", "b"]);
    let (ra, rb) = (results(&dir, "a"), results(&dir, "b"));
    assert_eq!(ra["analyses"], rb["analyses"], "same seed, same numbers");
    for a in ra["analyses"].as_array().unwrap() {
        assert_eq!(a["inference"]["replicates_ok"], 50);
        let e = rows(a);
        let joint = value(&e, "disparity_reduction", None);
        let targets = ["socioeconomic", "clinical", "care_site"];
        let sum = |q: &str| targets.iter().map(|t| value(&e, q, Some(t))).sum::<f64>();
        assert!((sum("disparity_reduction_shapley") - joint).abs() < 1e-12);
        assert!((sum("disparity_reduction_sequential") - joint).abs() < 1e-12);
        let init = value(&e, "initial_disparity", None);
        assert!((value(&e, "disparity_remaining", None) + joint - init).abs() < 1e-12);
        assert!(
            (value(&e, "comparison_mean", None)
                - value(&e, "reference_mean_standardized", None)
                - init)
                .abs()
                < 1e-12
        );
        for t in targets {
            assert!(
                (value(&e, "disparity_remaining", Some(t))
                    + value(&e, "disparity_reduction", Some(t))
                    - init)
                    .abs()
                    < 1e-12
            );
        }
    }
}

/// Recovery of truth.json `disparity_reduction` (each target alone and all
/// three jointly) and `disparity_reduction_shapley` for both comparison
/// groups and all four outcomes. Asserted: the binary outcomes' initial
/// disparity, joint reduction and the clinical and care-site targets. Printed
/// but not asserted (known deviations of g-computation's outcome model, see
/// BENCHMARKS.md): the socioeconomic target (estimates run 1–3 SEs low; the
/// generator's outcomes depend on the latent SES, of which ADI is a nonlinear
/// proxy entering the logit linearly) and length of stay (log-normal in the
/// generator, linear in the outcome model). The doubly robust and weighting
/// estimators, which do not rest on that model alone, cover these too.
#[test]
#[ignore = "statistical recovery at 400k patients with 200 replicates: ~2 min in release; run by bench/run.sh"]
fn disparity_reduction_recovers_the_generator_truth() {
    let coverage = recovery_with("gcomputation", false);
    // At least 90% of 36.
    coverage.check("Disparity-reduction", 36, 33);
}

/// The weighting and doubly robust estimators on the recovery study, on all
/// 64 checks: their density-ratio models (logistic in every covariate,
/// hospital fixed effects) do not share the outcome model's misfit, so the
/// socioeconomic target and length of stay, which g-computation misses, are
/// asserted too (2026-11-27: doubly robust 61/64, weighting 59/64).
#[test]
#[ignore = "statistical recovery at 400k patients with 200 replicates, two estimators: ~2 min in release; run by bench/run.sh"]
fn weighting_and_doubly_robust_recover_the_generator_truth() {
    let dr = recovery_with("doubly_robust", true);
    dr.check("Disparity-reduction (doubly robust)", 64, 58);
    let w = recovery_with("weighting", true);
    w.check("Disparity-reduction (weighting)", 64, 56);
}

/// Runs the recovery study with `estimator`; with `assert_all`, every check
/// counts (the doubly robust and weighting estimators do not share
/// g-computation's outcome-model deviations), otherwise the known deviations
/// are printed only.
fn recovery_with(estimator: &str, assert_all: bool) -> crate::oaxaca::Coverage {
    let dir = Dir::new();
    let outcomes = "\"death_30d\", \"major_morbidity\", \"readmit_30d\", \"los_days\"";
    std::fs::write(
        dir.join("dr.toml"),
        study_with(
            400_000,
            21,
            200,
            outcomes,
            "\"Black\", \"Hispanic\"",
            estimator,
        ),
    )
    .unwrap();
    dir.ok(&["run", "dr.toml", "--out", "out"]);
    let r = results(&dir, "out");
    let truth = crate::oaxaca::recovery_truth();
    let mut coverage = crate::oaxaca::Coverage::default();
    for a in r["analyses"].as_array().unwrap() {
        let comparison = a["comparison"].as_str().unwrap();
        let outcome = a["outcome"].as_str().unwrap();
        let e = rows(a);
        let mut checks: Vec<(&str, Option<&str>, Option<String>)> = vec![
            ("initial_disparity", None, None),
            (
                "disparity_reduction",
                None,
                Some("socioeconomic+clinical+care_site".into()),
            ),
        ];
        for t in ["socioeconomic", "clinical", "care_site"] {
            checks.push(("disparity_reduction", Some(t), Some(t.into())));
            checks.push(("disparity_reduction_shapley", Some(t), Some(t.into())));
        }
        for (q, f, component) in checks {
            let t = truth
                .get(q, comparison, outcome, component.as_deref())
                .unwrap();
            let row = e
                .iter()
                .find(|x| x["quantity"] == q && x["factor"].as_str() == f)
                .unwrap();
            // Known deviations of g-computation (see the doc comment): printed,
            // not asserted.
            let asserted = assert_all || (outcome != "los_days" && f != Some("socioeconomic"));
            coverage.add(
                &format!(
                    "dr {comparison:<9} {outcome:<16} {q:<28} {:<14}",
                    f.unwrap_or("joint")
                ),
                row["estimate"].as_f64().unwrap(),
                row["se"].as_f64().unwrap(),
                t.population,
                t.population_mc_se,
                asserted,
            );
        }
    }
    coverage
}

/// Coverage of the 95% CIs over repeated cohorts: the asserted checks of
/// [`disparity_reduction_recovers_the_generator_truth`] (binary outcomes;
/// initial disparity, joint reduction, clinical and care-site targets alone
/// and Shapley) for death_30d and major_morbidity, Black vs White, on
/// independent 200k-patient cohorts (seeds from HEALTHGAP_COVERAGE_SEEDS,
/// default 10 seeds) against the population truth, which does not depend on
/// the cohort's seed. Prints the coverage per check and pooled; asserts a
/// pooled coverage of at least 85%.
#[test]
#[ignore = "ten 200k-patient studies with 200 replicates: ~45 s in release; run by bench/run.sh"]
fn disparity_reduction_coverage_over_repeated_seeds() {
    let seeds: Vec<u64> = std::env::var("HEALTHGAP_COVERAGE_SEEDS")
        .unwrap_or_else(|_| "101 102 103 104 105 106 107 108 109 110".into())
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let truth = crate::oaxaca::recovery_truth();
    let mut tally: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for seed in &seeds {
        let dir = Dir::new();
        std::fs::write(
            dir.join("dr.toml"),
            study_seeded(
                200_000,
                *seed,
                200,
                "\"death_30d\", \"major_morbidity\"",
                "\"Black\"",
            ),
        )
        .unwrap();
        dir.ok(&["run", "dr.toml", "--out", "out"]);
        let r = results(&dir, "out");
        for a in r["analyses"].as_array().unwrap() {
            let outcome = a["outcome"].as_str().unwrap();
            let e = rows(a);
            let mut checks: Vec<(&str, Option<&str>, Option<String>)> = vec![
                ("initial_disparity", None, None),
                (
                    "disparity_reduction",
                    None,
                    Some("socioeconomic+clinical+care_site".into()),
                ),
            ];
            for t in ["clinical", "care_site"] {
                checks.push(("disparity_reduction", Some(t), Some(t.into())));
                checks.push(("disparity_reduction_shapley", Some(t), Some(t.into())));
            }
            for (q, f, component) in checks {
                let t = truth
                    .get(q, "Black", outcome, component.as_deref())
                    .unwrap();
                let row = e
                    .iter()
                    .find(|x| x["quantity"] == q && x["factor"].as_str() == f)
                    .unwrap();
                let (lo, hi) = (
                    row["ci_low"].as_f64().unwrap(),
                    row["ci_high"].as_f64().unwrap(),
                );
                let covered = lo <= t.population && t.population <= hi;
                let key = format!("{outcome:<16} {q:<28} {:<10}", f.unwrap_or("joint"));
                let entry = tally.entry(key).or_default();
                entry.0 += usize::from(covered);
                entry.1 += 1;
            }
        }
    }
    println!("coverage over {} seeds ({seeds:?}):", seeds.len());
    let (mut covered, mut total) = (0, 0);
    for (key, (c, n)) in &tally {
        println!("  {key} {c}/{n}");
        covered += c;
        total += n;
    }
    let share = covered as f64 / total as f64;
    println!(
        "coverage over seeds: pooled {covered}/{total} = {:.1}% (nominal 95%)",
        100.0 * share
    );
    assert!(share >= 0.85, "pooled coverage {covered}/{total}");
}

/// Many small hospitals (1,500 for 20,000 patients: most have no deaths). The
/// care-site target moves Black patients into White patients' hospitals, and a
/// hospital without deaths has α = −∞ (a risk of exactly 0 for every patient
/// moved there): the run says how many reference patients sit in such or tiny
/// hospitals. (At this size the reduction's interval is wide and covers the
/// sample truth; shrunken hospital effects are left to the hierarchical
/// model, see CHANGELOG.)
#[test]
fn zero_event_hospitals_are_reported_for_the_care_site_target() {
    let dir = Dir::new();
    let config = study_with(20_000, 5, 200, "\"death_30d\"", "\"Black\"", "gcomputation").replace(
        "synthetic = { patients = 20000, seed = 5 }",
        "synthetic = { patients = 20000, seed = 5, hospitals = 1500 }",
    );
    assert!(config.contains("hospitals = 1500"));
    std::fs::write(dir.join("study.toml"), config).unwrap();
    dir.ok(&["run", "study.toml"]);
    let r = results(&dir, "out");
    let a = &r["analyses"][0];
    let warnings: Vec<&str> = a["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let w = warnings
        .iter()
        .find(|w| w.contains("hospitals without events or non-events"))
        .unwrap_or_else(|| panic!("{warnings:?}"));
    let share: f64 = w.split('%').next().unwrap().parse().unwrap();
    assert!(share > 50.0, "{w}");
    let e = rows(a);
    let row = e
        .iter()
        .find(|x| x["quantity"] == "disparity_reduction" && x["factor"] == "care_site")
        .unwrap();
    let (lo, hi) = (
        row["ci_low"].as_f64().unwrap(),
        row["ci_high"].as_f64().unwrap(),
    );
    let mut params = healthgap_synth::Params::default();
    params.patients = 20_000;
    params.seed = 5;
    params.population_draws = 20_000;
    params.set("hospitals", 1500.0).unwrap();
    let truth =
        healthgap_synth::truth::compute(&healthgap_synth::Sample::generate(&params, &|_| {}));
    let t = truth
        .get(
            "disparity_reduction",
            "Black",
            "death_30d",
            Some("care_site"),
        )
        .unwrap()
        .sample
        .unwrap();
    assert!(lo < t && t < hi, "sample truth {t} outside [{lo}, {hi}]");
}

/// The row bootstrap with BCa intervals (no cluster): each replicate's point
/// values come from a run without inference (a BCa jackknife inside the
/// replicate used to recurse without end), and the BCa jackknife runs once.
#[test]
fn the_unclustered_bca_bootstrap_finishes_with_intervals() {
    let dir = Dir::new();
    let config = study_with(1_500, 4, 20, "\"los_days\"", "\"Black\"", "gcomputation")
        .replace("[design]\ncluster = \"hospital_id\"\n", "")
        .replace("replicates = 20", "replicates = 20\ninterval = \"bca\"")
        .replace("care_site = [\"hospital_id\"]\n", "")
        .replace("hospital_id = { type = \"categorical\" }\n", "")
        .replace(
            "targets = [\"socioeconomic\", \"clinical\", \"care_site\"]",
            "targets = [\"socioeconomic\", \"clinical\"]",
        );
    assert!(config.contains("interval = \"bca\"") && !config.contains("cluster ="));
    std::fs::write(dir.join("study.toml"), config).unwrap();
    dir.ok(&["run", "study.toml"]);
    let r = results(&dir, "out");
    let a = &r["analyses"][0];
    assert_eq!(a["inference"]["interval"], "bca");
    let e = rows(a);
    let row = e
        .iter()
        .find(|x| x["quantity"] == "initial_disparity")
        .unwrap();
    assert_eq!(row["se_method"], "bootstrap-bca", "{row}");
    assert!(
        row["ci_low"].is_number() && row["ci_high"].is_number(),
        "{row}"
    );
}

/// Weighting: the density-ratio classifier (main effects and target ×
/// other-column interactions) balances the intervened block. ADI, the
/// socioeconomic column that differs most between the groups, is imbalanced
/// before weighting and balanced after; results.json carries the balance of
/// every subset and g-computation carries none.
#[test]
fn weighting_reports_covariate_balance() {
    let dir = Dir::new();
    let strip = |c: String| {
        c.replace("care_site = [\"hospital_id\"]\n", "")
            .replace("hospital_id = { type = \"categorical\" }\n", "")
            .replace("[design]\ncluster = \"hospital_id\"\n", "")
            .replace(
                "targets = [\"socioeconomic\", \"clinical\", \"care_site\"]",
                "targets = [\"socioeconomic\", \"clinical\"]",
            )
    };
    let weighting = strip(study_with(
        8_000,
        6,
        10,
        "\"los_days\"",
        "\"Black\"",
        "weighting",
    ));
    let gcomp = strip(study_with(
        8_000,
        6,
        10,
        "\"los_days\"",
        "\"Black\"",
        "gcomputation",
    ));
    assert!(!weighting.contains("care_site") && !weighting.contains("cluster ="));
    std::fs::write(dir.join("w.toml"), weighting).unwrap();
    std::fs::write(dir.join("g.toml"), gcomp).unwrap();
    dir.ok(&["run", "w.toml", "--out", "w"]);
    dir.ok(&["run", "g.toml", "--out", "g"]);
    let a = &results(&dir, "w")["analyses"][0];
    let balance = a["balance"].as_array().unwrap();
    let subsets: std::collections::BTreeSet<&str> = balance
        .iter()
        .map(|b| b["targets"].as_str().unwrap())
        .collect();
    assert_eq!(
        subsets.into_iter().collect::<Vec<_>>(),
        ["clinical", "socioeconomic", "socioeconomic+clinical"]
    );
    let adi = balance
        .iter()
        .find(|b| b["targets"] == "socioeconomic" && b["column"] == "adi")
        .unwrap();
    let (before, after) = (
        adi["smd_before"].as_f64().unwrap(),
        adi["smd_after"].as_f64().unwrap(),
    );
    assert!(before.abs() > 0.3, "ADI before weighting {before}");
    assert!(after.abs() < 0.1, "ADI after weighting {after}");
    // The allowable columns are balanced by construction (partners share the stratum).
    for b in balance.iter().filter(|b| b["column"] == "age") {
        assert!(b["smd_before"].as_f64().unwrap().abs() < 1e-9, "{b}");
    }
    let g = &results(&dir, "g")["analyses"][0];
    assert!(g.get("balance").is_none(), "{g}");
    // The balance rows follow the shipped schema.
    let schema = crate::schema::schema();
    let mut errors = Vec::new();
    crate::schema::validate(&schema, &schema, &results(&dir, "w"), "", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
}

/// The sample truth of a care-site quantity (`disparity_reduction` or its
/// Shapley value) for Black vs White on a synthetic cohort.
fn care_site_sample_truth(
    patients: usize,
    seed: u64,
    hospitals: usize,
    quantity: &str,
    outcome: &str,
) -> f64 {
    let mut params = healthgap_synth::Params::default();
    params.patients = patients;
    params.seed = seed;
    params.population_draws = 20_000;
    params.set("hospitals", hospitals as f64).unwrap();
    let truth =
        healthgap_synth::truth::compute(&healthgap_synth::Sample::generate(&params, &|_| {}));
    truth
        .get(quantity, "Black", outcome, Some("care_site"))
        .unwrap()
        .sample
        .unwrap()
}

/// A study on `hospitals` small hospitals with the given hospital effects.
fn small_hospitals_study(
    patients: usize,
    seed: u64,
    hospitals: usize,
    replicates: usize,
    outcomes: &str,
    effects: &str,
) -> String {
    let synthetic = format!("synthetic = {{ patients = {patients}, seed = {seed} }}");
    let config = study_with(
        patients,
        seed,
        replicates,
        outcomes,
        "\"Black\"",
        "gcomputation",
    )
    .replace(
        &synthetic,
        &synthetic.replace(" }", &format!(", hospitals = {hospitals} }}")),
    )
    .replace(
        "estimator = \"gcomputation\"",
        &format!("estimator = \"gcomputation\"\nhospital_effects = \"{effects}\""),
    );
    assert!(config.contains(&format!("hospitals = {hospitals}")) && config.contains(effects));
    config
}

/// `hospital_effects = "random"` on 1,500 small hospitals for 20,000
/// patients (most without deaths): the outcome model is the hierarchical
/// logit (or LMM) with the hospital's comparison share, every hospital
/// effect is finite (no zero-event warning), the bootstrap SEs are finite
/// and positive, and the care-site reduction and its Shapley value cover
/// the sample truth for mortality and length of stay.
#[test]
fn random_hospital_effects_cover_the_care_site_truth_on_small_hospitals() {
    let dir = Dir::new();
    let config =
        small_hospitals_study(20_000, 5, 1500, 40, "\"death_30d\", \"los_days\"", "random");
    std::fs::write(dir.join("study.toml"), config).unwrap();
    dir.ok(&["run", "study.toml"]);
    let r = results(&dir, "out");
    for a in r["analyses"].as_array().unwrap() {
        let outcome = a["outcome"].as_str().unwrap();
        let label = a["models"][0]["label"].as_str().unwrap();
        assert!(label.contains("random intercept by hospital_id"), "{label}");
        let terms: Vec<&str> = a["models"][0]["coefficients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["term"].as_str().unwrap())
            .collect();
        assert!(terms.contains(&"hospital share of Black"), "{terms:?}");
        assert!(
            !a["warnings"]
                .to_string()
                .contains("without events or non-events"),
            "{}",
            a["warnings"]
        );
        let e = rows(a);
        for q in ["disparity_reduction", "disparity_reduction_shapley"] {
            let row = e
                .iter()
                .find(|x| x["quantity"] == q && x["factor"] == "care_site")
                .unwrap();
            let se = row["se"].as_f64().unwrap();
            assert!(se.is_finite() && se > 0.0, "{row}");
            let (lo, hi) = (
                row["ci_low"].as_f64().unwrap(),
                row["ci_high"].as_f64().unwrap(),
            );
            let t = care_site_sample_truth(20_000, 5, 1500, q, outcome);
            assert!(
                lo < t && t < hi,
                "{outcome} {q}: sample truth {t} outside [{lo}, {hi}]"
            );
        }
    }
}

/// Recovery with many small hospitals (3,000 for 100,000 patients, about 33
/// each): over seeds, the care-site reduction for mortality with random
/// hospital effects (100 replicates) against the sample truth, with the
/// fixed-effect version alongside (printed). Asserts that the random-effects
/// intervals cover the sample truth in at least 4 of 5 seeds.
#[test]
#[ignore = "five 100k-patient studies with random and fixed hospital effects, 100 replicates: ~8 min in release; run by bench/run.sh"]
fn random_hospital_effects_recover_the_care_site_truth_over_seeds() {
    let mut covered = [0usize; 2];
    let seeds = [5u64, 6, 7, 8, 9];
    for seed in seeds {
        let t = care_site_sample_truth(100_000, seed, 3000, "disparity_reduction", "death_30d");
        for (k, effects) in ["random", "fixed"].iter().enumerate() {
            let dir = Dir::new();
            let config = small_hospitals_study(100_000, seed, 3000, 100, "\"death_30d\"", effects);
            std::fs::write(dir.join("study.toml"), config).unwrap();
            dir.ok(&["run", "study.toml"]);
            let r = results(&dir, "out");
            let e = rows(&r["analyses"][0]);
            let row = e
                .iter()
                .find(|x| x["quantity"] == "disparity_reduction" && x["factor"] == "care_site")
                .unwrap();
            let (est, lo, hi) = (
                row["estimate"].as_f64().unwrap(),
                row["ci_low"].as_f64().unwrap(),
                row["ci_high"].as_f64().unwrap(),
            );
            let hit = lo < t && t < hi;
            covered[k] += usize::from(hit);
            println!(
                "seed {seed} {effects:<6} care-site reduction {est:.5} [{lo:.5}, {hi:.5}] truth {t:.5} {}",
                if hit { "covered" } else { "MISSED" }
            );
        }
    }
    println!(
        "covered: random {}/{n}, fixed {}/{n}",
        covered[0],
        covered[1],
        n = seeds.len()
    );
    assert!(covered[0] >= 4, "random effects covered {}/5", covered[0]);
}

/// `hospital_effects = "random"` without a hospital variable among the
/// covariates (known only once the data are loaded): the run fails with a
/// message that says so and writes nothing.
#[test]
fn random_hospital_effects_need_a_hospital_variable() {
    let dir = Dir::new();
    let config = small_hospitals_study(2_000, 3, 50, 10, "\"los_days\"", "random")
        .replace("care_site = [\"hospital_id\"]\n", "")
        .replace("hospital_id = { type = \"categorical\" }\n", "")
        .replace("[design]\ncluster = \"hospital_id\"\n", "")
        .replace(
            "targets = [\"socioeconomic\", \"clinical\", \"care_site\"]",
            "targets = [\"socioeconomic\", \"clinical\"]",
        );
    assert!(!config.contains("care_site"));
    std::fs::write(dir.join("study.toml"), config).unwrap();
    let out = dir.run(&["run", "study.toml"]);
    let err = crate::util::stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("hospital_effects = \"random\" needs a hospital variable"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dir.join("out").exists());
}

/// Random hospital effects off the clustered path: without a cluster (the
/// row bootstrap, each replicate a full analysis with its own GLMM fit), with
/// the weighting and doubly robust estimators, for a binary and a continuous
/// outcome (the linear mixed model): every replicate succeeds and every SE is
/// finite and positive.
#[test]
fn random_hospital_effects_on_the_row_bootstrap_and_every_estimator() {
    for estimator in ["weighting", "doubly_robust"] {
        let dir = Dir::new();
        let config =
            small_hospitals_study(3_000, 8, 60, 20, "\"death_30d\", \"los_days\"", "random")
                .replace("[design]\ncluster = \"hospital_id\"\n", "")
                .replace(
                    "estimator = \"gcomputation\"",
                    &format!("estimator = \"{estimator}\""),
                );
        assert!(!config.contains("cluster =") && config.contains(estimator));
        std::fs::write(dir.join("study.toml"), config).unwrap();
        dir.ok(&["run", "study.toml"]);
        let r = results(&dir, "out");
        for a in r["analyses"].as_array().unwrap() {
            assert_eq!(
                a["inference"]["replicates_ok"], 20,
                "{estimator}: {}",
                a["inference"]
            );
            for e in rows(a) {
                if e["quantity"] == "e_value_disparity_remaining" {
                    continue;
                }
                let se = e["se"].as_f64().unwrap_or(f64::NAN);
                assert!(se.is_finite() && se > 0.0, "{estimator}: {e}");
            }
        }
    }
}
