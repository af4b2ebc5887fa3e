//! Linear Oaxaca–Blinder end to end on the synthetic cohort (the absorbed
//! hospital term, the cluster bootstrap against the cluster delta method) and
//! its recovery of the generator's truth; the helpers the other recovery
//! tests share. The golden tests against published numbers are in
//! crates/decompose/tests/golden/oaxaca.rs.

use crate::util::Dir;

/// A small synthetic study (25 hospitals) with `hospital_id` in the care-site
/// block, absorbed or as dense dummies.
fn study(dir: &Dir, name: &str, absorb: bool, inference: &str, analyses: &str) {
    // Wide hospital choice, so that every hospital treats patients of both groups.
    let world = "choice_tau = 3.0";
    let config = format!(
        r#"
[study]
name = "OB test"
seed = 5

[data]
synthetic = {{ patients = 20000, seed = 3, hospitals = 25, {world} }}

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
death_30d = {{ type = "binary" }}
los_days = {{ type = "continuous" }}

[factors]
biological = ["age", "female", "diabetes", "dialysis", "ejection_fraction", "status"]
socioeconomic = ["adi", "insurance"]
care_site = ["hospital_id"]

[variables]
insurance = {{ type = "categorical", reference = "private" }}
status = {{ type = "categorical", reference = "elective" }}
hospital_id = {{ type = "categorical", absorb = {absorb} }}

[design]
cluster = "hospital_id"

[inference]
{inference}

{analyses}

[report]
out_dir = "out"
"#
    );
    std::fs::write(dir.join(name), config).unwrap();
}

const OB_ANALYSES: &str = r#"
[[analysis]]
id = "ob_pooled"
method = "oaxaca_blinder"
outcomes = ["death_30d", "los_days"]
coefficients = "pooled"
threefold = true

[[analysis]]
id = "ob_reference"
method = "oaxaca_blinder"
outcomes = ["los_days"]
coefficients = "reference"
"#;

fn rows(r: &serde_json::Value) -> Vec<serde_json::Value> {
    r["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["method"] == "oaxaca_blinder")
        .flat_map(|a| {
            a["estimates"].as_array().unwrap().iter().map(move |e| {
                let mut e = e.clone();
                e["analysis"] = a["id"].clone();
                e["outcome"] = a["outcome"].clone();
                e
            })
        })
        .collect()
}

pub fn results(dir: &Dir, out: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("results.json")).unwrap())
        .unwrap()
}

#[test]
fn absorbed_hospital_term_equals_dense_hospital_dummies() {
    let dir = Dir::new();
    let delta = r#"method = "delta""#;
    study(&dir, "absorbed.toml", true, delta, OB_ANALYSES);
    study(&dir, "dense.toml", false, delta, OB_ANALYSES);
    dir.ok(&["run", "absorbed.toml", "--out", "a"]);
    dir.ok(&["run", "dense.toml", "--out", "d"]);
    let (a, d) = (rows(&results(&dir, "a")), rows(&results(&dir, "d")));
    let mut compared = 0;
    for ra in a.iter().filter(|r| r["term"].is_null()) {
        let rd = d
            .iter()
            .find(|r| {
                r["analysis"] == ra["analysis"]
                    && r["outcome"] == ra["outcome"]
                    && r["quantity"] == ra["quantity"]
                    && r["factor"] == ra["factor"]
                    && r["term"].is_null()
            })
            .unwrap_or_else(|| panic!("{ra}"));
        let (x, y) = (
            ra["estimate"].as_f64().unwrap(),
            rd["estimate"].as_f64().unwrap(),
        );
        assert!((x - y).abs() < 1e-8 * (1.0 + y.abs()), "{ra} vs {rd}");
        // Shares lose their intervals when the gap's interval covers 0.
        assert_eq!(ra["se"].is_null(), rd["se"].is_null(), "{ra} vs {rd}");
        let (Some(sx), Some(sy)) = (ra["se"].as_f64(), rd["se"].as_f64()) else {
            continue;
        };
        // (The structural zero of `pooled` carries a rounding-level SE.)
        if ra["quantity"] != "unexplained_reference" {
            assert!((sx - sy).abs() < 1e-4 * sy, "{ra} vs {rd}");
        }
        compared += 1;
    }
    assert!(compared > 40, "{compared}");
    // The dense version names every hospital dummy; the absorbed one has one term.
    assert!(d.iter().any(|r| r["term"] == "hospital_id=2"));
    assert!(a.iter().any(|r| r["term"] == "hospital_id"));
    assert!(!a.iter().any(|r| r["term"] == "hospital_id=2"));
}

#[test]
fn cluster_bootstrap_and_cluster_delta_agree_and_parts_add_up() {
    let dir = Dir::new();
    study(&dir, "delta.toml", true, r#"method = "delta""#, OB_ANALYSES);
    study(
        &dir,
        "boot.toml",
        true,
        "method = \"bootstrap\"\nreplicates = 400",
        OB_ANALYSES,
    );
    dir.ok(&["run", "delta.toml", "--out", "d"]);
    dir.ok(&["run", "boot.toml", "--out", "b"]);
    let (rd, rb) = (results(&dir, "d"), results(&dir, "b"));
    let (d, b) = (rows(&rd), rows(&rb));
    for a in rb["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["method"] == "oaxaca_blinder")
    {
        assert_eq!(a["inference"]["method"], "bootstrap");
        assert_eq!(a["inference"]["replicates_ok"], 400);
        // Both group models and the pooled model (β* or the stand-in hospital effects).
        assert_eq!(a["models"].as_array().unwrap().len(), 3);
    }
    let mut ratios = Vec::new();
    // (Shares: ratio intervals, dropped when the gap's interval covers 0.)
    for x in d
        .iter()
        .filter(|r| r["term"].is_null() && r["quantity"] != "share")
    {
        let y = b
            .iter()
            .find(|r| {
                r["analysis"] == x["analysis"]
                    && r["outcome"] == x["outcome"]
                    && r["quantity"] == x["quantity"]
                    && r["factor"] == x["factor"]
                    && r["term"].is_null()
            })
            .unwrap();
        // The point estimate does not depend on the inference.
        assert_eq!(x["estimate"], y["estimate"]);
        let (sd, sb) = (x["se"].as_f64().unwrap(), y["se"].as_f64().unwrap());
        if sd > 1e-12 {
            ratios.push(sb / sd);
        }
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    // 400 replicates of 25 clusters: SEs agree to sampling error.
    assert!(
        (0.8..1.25).contains(&median),
        "median bootstrap/delta SE ratio {median}"
    );
    for r in [&rd, &rb] {
        for a in r["analyses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["method"] == "oaxaca_blinder")
        {
            let e = a["estimates"].as_array().unwrap();
            let total = |q: &str| {
                e.iter()
                    .find(|x| x["quantity"] == q && x["factor"].is_null())
                    .map(|x| x["estimate"].as_f64().unwrap())
            };
            let gap = total("gap").unwrap();
            let two = total("explained").unwrap() + total("unexplained").unwrap();
            assert!((two - gap).abs() < 1e-10);
            if let Some(en) = total("endowments") {
                let three = en + total("coefficients").unwrap() + total("interaction").unwrap();
                assert!((three - gap).abs() < 1e-10);
            }
            if a["id"] == "ob_pooled" {
                assert!(total("unexplained_reference").unwrap().abs() < 1e-10);
            }
        }
    }
}

/// A 400k-patient study with the canonical blocks of analyses/cabg_synthetic.toml,
/// hospital_id absorbed, cluster delta-method inference, and `analyses`.
pub fn recovery_config(analyses: &str) -> String {
    let canonical = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analyses/cabg_synthetic.toml"
    ))
    .unwrap();
    let section = |name: &str| -> String {
        let start = canonical.find(&format!("[{name}]")).unwrap();
        let rest = &canonical[start..];
        let end = rest[1..].find("\n[").map_or(rest.len(), |e| e + 1);
        rest[..end].to_string()
    };
    format!(
        r#"
[study]
name = "recovery"
seed = 1

[data]
synthetic = {{ patients = 400000, seed = 21 }}

[groups]
column = "race"
reference = "White"
compare = ["Black", "Hispanic"]

{}
{}
{}
[design]
cluster = "hospital_id"

[inference]
method = "delta"

{analyses}

[report]
out_dir = "out"
"#,
        section("outcomes"),
        section("factors"),
        section("variables")
    )
}

/// The truth of the recovery study's cohort.
pub fn recovery_truth() -> healthgap_synth::truth::Truth {
    let mut params = healthgap_synth::Params::default();
    params.patients = 400_000;
    params.seed = 21;
    healthgap_synth::truth::compute(&healthgap_synth::Sample::generate(&params, &|_| {}))
}

/// Runs `analyses` on the recovery study and returns results.json.
pub fn run_recovery(analyses: &str) -> serde_json::Value {
    let dir = Dir::new();
    std::fs::write(dir.join("recovery.toml"), recovery_config(analyses)).unwrap();
    dir.ok(&["run", "recovery.toml", "--out", "out"]);
    results(&dir, "out")
}

/// Tally of recovery checks, z = (estimate − truth)/√(se² + mc_se²), with mc_se
/// the truth's Monte-Carlo error.
#[derive(Default)]
pub struct Coverage {
    covered: usize,
    total: usize,
    worst: f64,
}

impl Coverage {
    /// Prints one check; counts it when `asserted`.
    pub fn add(&mut self, label: &str, est: f64, se: f64, truth: f64, mc_se: f64, asserted: bool) {
        let z = (est - truth) / (se * se + mc_se * mc_se).sqrt();
        println!(
            "{label} est {est:>9.5} se {se:.5} truth {truth:>9.5} z {z:+.2}{}",
            if asserted { "" } else { "  (not asserted)" }
        );
        if asserted {
            self.total += 1;
            self.covered += usize::from(z.abs() < 1.96);
            self.worst = self.worst.max(z.abs());
        }
    }

    /// Prints the tally without asserting anything.
    pub fn report(&self, name: &str) {
        println!(
            "{name} recovery: {}/{} 95% CIs cover the truth; worst |z| = {:.2}",
            self.covered, self.total, self.worst
        );
    }

    /// Exactly `total` asserted checks, at least `min_covered` 95% CIs cover
    /// the truth, and none misses by 4 SEs or more.
    pub fn check(&self, name: &str, total: usize, min_covered: usize) {
        let (covered, worst) = (self.covered, self.worst);
        println!(
            "{name} recovery: {covered}/{} 95% CIs cover the truth; worst |z| = {worst:.2}",
            self.total
        );
        assert_eq!(self.total, total);
        assert!(covered >= min_covered, "{covered}/{total}");
        assert!(worst < 4.0, "worst |z| {worst}");
    }
}

/// One Oaxaca–Blinder estimate against the generator's truth.
pub struct ObCheck {
    /// `<comparison> <outcome> <component>`, aligned.
    pub label: String,
    /// The estimate.
    pub estimate: f64,
    /// Its SE.
    pub se: f64,
    /// The population truth.
    pub truth: f64,
    /// The truth's Monte-Carlo error.
    pub truth_mc_se: f64,
}

/// The explained, unexplained and per-block explained totals of one
/// results.json analysis against truth.json's `kind`
/// (`oaxaca_blinder_reference` or `oaxaca_blinder_pooled`).
pub fn ob_checks(
    a: &serde_json::Value,
    truth: &healthgap_synth::truth::Truth,
    kind: &str,
) -> Vec<ObCheck> {
    let comparison = a["comparison"].as_str().unwrap();
    let outcome = a["outcome"].as_str().unwrap();
    [
        ("explained", None),
        ("unexplained", None),
        ("explained:biological", Some("biological")),
        ("explained:socioeconomic", Some("socioeconomic")),
        ("explained:care_site", Some("care_site")),
    ]
    .into_iter()
    .map(|(component, factor)| {
        let quantity = component.split(':').next().unwrap();
        let t = truth
            .get(kind, comparison, outcome, Some(component))
            .unwrap();
        let e = a["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["quantity"] == quantity && e["factor"].as_str() == factor && e["term"].is_null()
            })
            .unwrap();
        ObCheck {
            label: format!("{comparison:<9} {outcome:<16} {component:<24}"),
            estimate: e["estimate"].as_f64().unwrap(),
            se: e["se"].as_f64().unwrap(),
            truth: t.population,
            truth_mc_se: t.population_mc_se,
        }
    })
    .collect()
}

/// Recovery of the generator's truth (truth.json `oaxaca_blinder_reference` and
/// `oaxaca_blinder_pooled`, population values) by the linear decomposition with
/// the canonical blocks, hospital_id absorbed, cluster delta-method CIs.
/// 2 coefficient choices × 4 outcomes × 2 comparison groups × 5 quantities
/// (explained, unexplained, explained per block): at least 90% of the 95% CIs
/// (widened by the truth's Monte-Carlo error) must cover, and none may miss by
/// more than 4 SEs.
#[test]
#[ignore = "statistical recovery at 400k patients: ~1 min in release; run by bench/run.sh"]
fn linear_oaxaca_blinder_recovers_the_generator_truth() {
    let r = run_recovery(
        r#"
[[analysis]]
id = "reference"
method = "oaxaca_blinder"
outcomes = ["death_30d", "major_morbidity", "readmit_30d", "los_days"]
coefficients = "reference"

[[analysis]]
id = "pooled"
method = "oaxaca_blinder"
outcomes = ["death_30d", "major_morbidity", "readmit_30d", "los_days"]
coefficients = "pooled"
"#,
    );
    let truth = recovery_truth();
    let mut coverage = Coverage::default();
    for a in r["analyses"].as_array().unwrap() {
        let kind = format!("oaxaca_blinder_{}", a["id"].as_str().unwrap());
        for c in ob_checks(a, &truth, &kind) {
            coverage.add(
                &format!("{kind:<26} {}", c.label),
                c.estimate,
                c.se,
                c.truth,
                c.truth_mc_se,
                true,
            );
        }
    }
    // At least 90% of 80.
    coverage.check("OB", 80, 72);
}

/// A study of 6,000 patients in 300 small hospitals, `hospital_id` absorbed
/// as the care-site block, and OB with `hospital_effects` = `effects`.
fn small_hospitals(dir: &Dir, name: &str, effects: &str, inference: &str) {
    let config = format!(
        r#"
[study]
name = "OB random hospital effects"
seed = 8

[data]
synthetic = {{ patients = 6000, seed = 12, hospitals = 300, choice_tau = 3.0 }}

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
death_30d = {{ type = "binary" }}
los_days = {{ type = "continuous" }}

[factors]
biological = ["age", "female", "diabetes", "ejection_fraction"]
socioeconomic = ["adi"]
care_site = ["hospital_id"]

[variables]
hospital_id = {{ type = "categorical", absorb = true }}

[design]
cluster = "hospital_id"

[inference]
{inference}

[[analysis]]
id = "ob"
method = "oaxaca_blinder"
outcomes = ["death_30d", "los_days"]
hospital_effects = "{effects}"

[report]
out_dir = "out"
formats = ["json"]
"#
    );
    std::fs::write(dir.join(name), config).unwrap();
}

/// `hospital_effects = "random"`: the hospital term from shrunken conditional
/// modes has cluster-delta SEs that agree with the hospital bootstrap, the
/// parts add up to the same gap as with fixed effects, and the models say
/// what they are.
#[test]
fn random_hospital_term_agrees_with_its_bootstrap_and_adds_up() {
    let dir = Dir::new();
    small_hospitals(&dir, "delta.toml", "random", r#"method = "delta""#);
    small_hospitals(
        &dir,
        "boot.toml",
        "random",
        "method = \"bootstrap\"\nreplicates = 300",
    );
    small_hospitals(&dir, "fixed.toml", "fixed", r#"method = "delta""#);
    dir.ok(&["run", "delta.toml", "--out", "d"]);
    dir.ok(&["run", "boot.toml", "--out", "b"]);
    dir.ok(&["run", "fixed.toml", "--out", "f"]);
    let (rd, rb, rf) = (results(&dir, "d"), results(&dir, "b"), results(&dir, "f"));
    let (d, b, f) = (rows(&rd), rows(&rb), rows(&rf));
    let find = |set: &[serde_json::Value], outcome: &str, q: &str, factor: Option<&str>| {
        set.iter()
            .find(|r| {
                r["outcome"] == outcome
                    && r["quantity"] == q
                    && r["term"].is_null()
                    && match factor {
                        Some(x) => r["factor"] == x,
                        None => r["factor"].is_null(),
                    }
            })
            .unwrap_or_else(|| panic!("{outcome} {q} {factor:?}"))
            .clone()
    };
    let est = |r: &serde_json::Value| r["estimate"].as_f64().unwrap();
    for outcome in ["death_30d", "los_days"] {
        let gap = est(&find(&d, outcome, "gap", None));
        assert!((gap - est(&find(&f, outcome, "gap", None))).abs() < 1e-10);
        let two = est(&find(&d, outcome, "explained", None))
            + est(&find(&d, outcome, "unexplained", None));
        assert!((two - gap).abs() < 1e-10, "{outcome}: {two} vs {gap}");
        for (q, factor) in [
            ("explained", Some("care_site")),
            ("explained", Some("biological")),
            ("explained", None),
            ("unexplained", None),
        ] {
            let (x, y) = (find(&d, outcome, q, factor), find(&b, outcome, q, factor));
            assert_eq!(x["estimate"], y["estimate"]);
            let (sd, sb) = (x["se"].as_f64().unwrap(), y["se"].as_f64().unwrap());
            assert!(sd.is_finite() && sd > 0.0, "{x}");
            // 300 replicates: the bootstrap SE's relative error is about 4%.
            assert!(
                (sb / sd - 1.0).abs() < 0.2,
                "{outcome} {q} {factor:?}: delta {sd:.5} vs bootstrap {sb:.5}"
            );
            assert_eq!(x["se_method"], "delta-cluster");
        }
    }
    for a in rb["analyses"].as_array().unwrap() {
        assert_eq!(a["inference"]["replicates_ok"], 300, "{}", a["inference"]);
        let models = a["models"].as_array().unwrap();
        assert_eq!(models.len(), 3);
        for m in models {
            let label = m["label"].as_str().unwrap();
            assert!(
                label.contains("random intercept by hospital_id (σ_u = "),
                "{label}"
            );
            assert!(
                m["coefficients"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["term"] == "hospital_id share of Black"),
                "{m}"
            );
        }
    }
}

/// `hospital_effects = "random"` needs an absorbed hospital and the linear model.
#[test]
fn random_hospital_term_refuses_what_it_cannot_do() {
    let dir = Dir::new();
    small_hospitals(&dir, "s.toml", "random", r#"method = "delta""#);
    let text = std::fs::read_to_string(dir.join("s.toml")).unwrap();
    // (A many-level categorical is absorbed whatever `absorb` says: leave the
    // hospital out of the factors.)
    std::fs::write(
        dir.join("none.toml"),
        text.replace("care_site = [\"hospital_id\"]", ""),
    )
    .unwrap();
    let out = dir.run(&["run", "none.toml"]);
    assert_ne!(out.status.code(), Some(0));
    let err = crate::util::stderr(&out);
    assert!(
        err.contains("needs the hospital as an absorbed categorical"),
        "{err}"
    );
    std::fs::write(
        dir.join("logit.toml"),
        text.replace(
            "hospital_effects = \"random\"",
            "hospital_effects = \"random\"\nmodel = \"logit\"",
        )
        .replace("\"death_30d\", \"los_days\"", "\"death_30d\""),
    )
    .unwrap();
    let out = dir.run(&["run", "logit.toml"]);
    assert_ne!(out.status.code(), Some(0));
    let err = crate::util::stderr(&out);
    assert!(err.contains("is built for model = \"linear\""), "{err}");
}
