//! Tests of the cross-fitted path: a known answer on a nonlinear design,
//! influence-function SEs against the cluster bootstrap, and folds without
//! events.

use healthgap_learn::{ForestSpec, LearnerConfig, LearnerKind};

use super::*;
use crate::covariates::Column;

/// A deterministic uniform(0, 1) stream (xorshift64).
fn xorshift(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A standard normal from two uniforms (Box–Muller).
fn normal(u: &mut impl FnMut() -> f64) -> f64 {
    let (a, b) = (u().max(1e-300), u());
    (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
}

/// The nonlinear world: allowable a ~ Bernoulli(1/2); other covariate
/// ℓ ~ U(0, 1) + g/2; target t = 0.3a + 0.4g + 0.3ℓ + N(0, 0.3²);
/// E[y | g, a, t, ℓ] = 1 + 0.5g + 0.3a + 0.5ℓ + 1{t > 0.9}(0.5 + 3·1{ℓ > 0.8})
/// (a threshold and an interaction), noise N(0, 0.5²) or, binary, a Bernoulli of a
/// rescaled mean.
struct World {
    y: Vec<f64>,
    g: Vec<u32>,
    h: Vec<u32>,
    cov: Covariates,
}

fn mean_y(g: f64, a: f64, t: f64, l: f64) -> f64 {
    let step = f64::from(u8::from(t > 0.9));
    1.0 + 0.5 * g + 0.3 * a + 0.5 * l + step * (0.5 + 3.0 * f64::from(u8::from(l > 0.8)))
}

fn world(n: usize, hospitals: usize, seed: u64, binary: bool) -> World {
    let mut u = xorshift(seed);
    let (mut y, mut g, mut h) = (vec![], vec![], vec![]);
    let (mut a, mut t, mut l) = (vec![], vec![], vec![]);
    for i in 0..n {
        let gi = f64::from(u8::from(u() < 0.5));
        let ai = f64::from(u8::from(u() < 0.5));
        let li = u() + 0.5 * gi;
        let ti = 0.3 * ai + 0.4 * gi + 0.3 * li + 0.3 * normal(&mut u);
        let m = mean_y(gi, ai, ti, li);
        let yi = if binary {
            f64::from(u8::from(u() < (m / 8.0).clamp(0.0, 1.0)))
        } else {
            m + 0.5 * normal(&mut u)
        };
        y.push(yi);
        g.push(gi as u32);
        h.push((i % hospitals) as u32);
        a.push(ai);
        t.push(ti);
        l.push(li);
    }
    let col = |name: &str, factor: &str, values: Vec<f64>| Column {
        name: name.into(),
        factor: factor.into(),
        values,
    };
    World {
        y,
        g,
        h,
        cov: Covariates {
            columns: vec![
                col("a", "allowable", a),
                col("t", "target", t),
                col("l", "other", l),
            ],
            ..Default::default()
        },
    }
}

/// The true reduction: E_c[m(c, a, t, ℓ)] − E_c[E_{t' ~ P(t | r, a)} m(c, a, t', ℓ)],
/// by a large simulation of the generator.
fn true_reduction() -> f64 {
    let mut u = xorshift(99);
    let m = 400_000;
    let mut total = 0.0;
    for _ in 0..m {
        let a = f64::from(u8::from(u() < 0.5));
        let l = u() + 0.5;
        let t = 0.3 * a + 0.4 + 0.3 * l + 0.3 * normal(&mut u);
        // A reference patient's t given the same a.
        let lr = u();
        let tr = 0.3 * a + 0.3 * lr + 0.3 * normal(&mut u);
        total += mean_y(1.0, a, t, l) - mean_y(1.0, a, tr, l);
    }
    total / m as f64
}

fn input<'a>(
    w: &'a World,
    sample: &'a Sample<'a>,
    learning: Option<Learning>,
) -> ReductionInput<'a> {
    ReductionInput {
        sample,
        covariates: &w.cov,
        allowable: vec![0],
        targets: vec![Target {
            name: "target".into(),
            columns: vec![1],
            absorbed: false,
        }],
        draws: 5,
        estimator: if learning.is_some() {
            Estimator::DoublyRobust
        } else {
            Estimator::GComputation
        },
        hospital_effects: HospitalEffects::Fixed,
        learning,
    }
}

fn sample<'a>(w: &'a World, hospitals: usize, binary: bool) -> Sample<'a> {
    Sample {
        outcome: "y",
        y: &w.y,
        group: &w.g,
        labels: ["r", "c"],
        weights: None,
        cluster: Some(Cluster {
            name: "hospital_id",
            codes: &w.h,
            count: hospitals,
        }),
        binary,
        min_cell: 11,
    }
}

fn learning(kind: LearnerKind, trees: usize) -> Learning {
    Learning {
        config: LearnerConfig {
            learner: kind,
            forest: ForestSpec {
                trees,
                // Leaves of 40: a density-ratio classifier needs
                // probabilities, not pure leaves (whose odds are clipped).
                min_leaf: 40,
                ..ForestSpec::default()
            },
            ..LearnerConfig::default()
        },
        folds: 5,
    }
}

fn row<'a>(out: &'a MethodOutput, q: &str) -> &'a crate::result::Estimate {
    out.estimates
        .iter()
        .find(|e| e.quantity == q && e.factor.is_none())
        .expect("row")
}

/// GLM g-computation (main effects) misses the reduction of a threshold and
/// an interaction; the cross-fitted doubly robust estimator with a small
/// forest covers it, with an influence-function interval, and reports its
/// nuisances' losses and overlap.
#[test]
fn cross_fitted_doubly_robust_forest_covers_a_nonlinear_truth_that_glm_misses() {
    let truth = true_reduction();
    let (n, hospitals) = (2_000, 80);
    let w = world(n, hospitals, 2024, false);
    let s = sample(&w, hospitals, false);
    let mut spec = InferenceSpec::delta(0.95);
    spec.replicates = 0;
    let glm = disparity_reduction(&input(&w, &s, None), &spec, &|| {}).expect("glm");
    let forest = disparity_reduction(
        &input(&w, &s, Some(learning(LearnerKind::Forest, 60))),
        &spec,
        &|| {},
    )
    .expect("forest");
    let dr = row(&forest, "disparity_reduction");
    let gc = row(&glm, "disparity_reduction").estimate;
    let (lo, hi) = (dr.ci_low.expect("ci"), dr.ci_high.expect("ci"));
    let se = dr.se.expect("se");
    eprintln!(
        "truth {truth:.4}; GLM g-computation {gc:.4}; forest DR {:.4} (se {se:.4}, {lo:.4} to {hi:.4})",
        dr.estimate
    );
    assert!(lo <= truth && truth <= hi, "{lo} .. {hi} misses {truth}");
    assert!(
        (gc - truth).abs() > 3.0 * se,
        "GLM g-computation {gc} is within 3 SE of {truth}"
    );
    assert_eq!(dr.se_method, crate::result::SeMethod::InfluenceFunction);
    // Shapley rows still add up with the remaining disparity.
    let tau = row(&forest, "initial_disparity").estimate;
    let rem = row(&forest, "disparity_remaining").estimate;
    let shapley: f64 = forest
        .estimates
        .iter()
        .filter(|e| e.quantity == "disparity_reduction_shapley")
        .map(|e| e.estimate)
        .sum();
    assert!((shapley + rem - tau).abs() < 1e-10);
    let diag = forest.learners.as_ref().expect("diagnostics");
    assert_eq!(diag.nuisances.len(), 2);
    assert!(diag.nuisances.iter().all(|f| f.cv_loss.is_finite()));
    assert_eq!(diag.overlap.len(), 1);
    assert!(diag.overlap[0].effective_sample_size > 0.0);
    // Balance of the cross-fitted weights: every covariate column, and the
    // target's standardized difference shrinks.
    assert_eq!(forest.balance.len(), 3);
    let t = forest.balance.iter().find(|b| b.column == "t").expect("t");
    eprintln!(
        "balance of t: {:.3} before, {:.3} after",
        t.smd_before, t.smd_after
    );
    assert!(t.smd_after.abs() < 0.5 * t.smd_before.abs());
    assert!(
        forest
            .inference_note
            .as_deref()
            .unwrap_or("")
            .contains("5 folds")
    );
}

/// Over four data sets, the cross-fitted doubly robust forest's 95%
/// interval covers the truth each time, while the forest's plug-in
/// g-computation is off by more than 2 of its SEs each time (the first-order
/// bias the augmentation removes).
#[test]
fn doubly_robust_forest_covers_over_seeds_where_its_plug_in_does_not() {
    let truth = true_reduction();
    let (n, hospitals) = (2_000, 80);
    let mut spec = InferenceSpec::delta(0.95);
    spec.replicates = 0;
    for seed in [2024u64, 7, 11, 5] {
        let w = world(n, hospitals, seed, false);
        let s = sample(&w, hospitals, false);
        let z = |est: Estimator| {
            let mut inp = input(&w, &s, Some(learning(LearnerKind::Forest, 60)));
            inp.estimator = est;
            let out = disparity_reduction(&inp, &spec, &|| {}).expect("run");
            let r = row(&out, "disparity_reduction");
            (r.estimate - truth) / r.se.expect("se")
        };
        let (dr, gc) = (z(Estimator::DoublyRobust), z(Estimator::GComputation));
        eprintln!("seed {seed}: doubly robust z {dr:.2}, plug-in g-computation z {gc:.2}");
        assert!(dr.abs() < 1.96, "seed {seed}: doubly robust z = {dr}");
        assert!(gc < -2.0, "seed {seed}: g-computation z = {gc}");
    }
}

/// Influence-function SEs of the cross-fitted doubly robust estimator are
/// finite and agree with a cluster bootstrap that refits the learners and
/// redraws the partners in every replicate, within the bootstrap's Monte
/// Carlo error (200 replicates: about 5% of an SE) plus finite-sample slack.
/// The learner is healthgap-learn's GLM, so that the replicates are cheap.
#[test]
fn influence_function_ses_agree_with_the_cluster_bootstrap() {
    let (n, hospitals) = (1_200, 60);
    let w = world(n, hospitals, 31, false);
    let s = sample(&w, hospitals, false);
    let inp = input(&w, &s, Some(learning(LearnerKind::Glm, 0)));
    // The same seed and id: the same folds and partners in both runs.
    let delta = InferenceSpec {
        seed: 5,
        analysis_id: "if_vs_boot".into(),
        ..InferenceSpec::delta(0.95)
    };
    let boot = InferenceSpec {
        method: Method::Bootstrap,
        replicates: 200,
        ..delta.clone()
    };
    let by_if = disparity_reduction(&inp, &delta, &|| {}).expect("influence");
    let by_boot = disparity_reduction(&inp, &boot, &|| {}).expect("bootstrap");
    assert!(by_boot.warnings.iter().any(|w| w.contains("refits every")));
    for q in [
        "initial_disparity",
        "disparity_reduction",
        "disparity_remaining",
    ] {
        let (a, b) = (row(&by_if, q), row(&by_boot, q));
        let (se_if, se_boot) = (a.se.expect("IF se"), b.se.expect("bootstrap se"));
        eprintln!("{q}: influence-function SE {se_if:.5}, bootstrap SE {se_boot:.5}");
        assert!(se_if.is_finite() && se_if > 0.0);
        assert!(
            (se_if / se_boot - 1.0).abs() < 0.2,
            "{q}: {se_if} vs {se_boot}"
        );
        assert!(
            (a.estimate - b.estimate).abs() < 1e-12,
            "same point estimate"
        );
    }
}

/// A binary outcome whose comparison patients have events in two hospitals
/// only: most folds hold no events among them. Each such fold is named in a
/// warning, and the analysis runs; with no events at all, every fold's fit
/// falls back to a constant with a warning, never a panic.
#[test]
fn folds_without_events_in_a_group_are_named_not_fatal() {
    let (n, hospitals) = (1_000, 50);
    let mut w = world(n, hospitals, 3, true);
    for i in 0..n {
        if w.g[i] == 1 && w.h[i] >= 2 {
            w.y[i] = 0.0;
        }
    }
    let s = sample(&w, hospitals, true);
    let spec = InferenceSpec::delta(0.95);
    let out = disparity_reduction(
        &input(&w, &s, Some(learning(LearnerKind::Forest, 10))),
        &spec,
        &|| {},
    )
    .expect("runs");
    let named: Vec<&String> = out
        .warnings
        .iter()
        .filter(|w| w.contains("no events among the c patients of its held-out rows"))
        .collect();
    assert!(named.len() >= 2, "{:#?}", out.warnings);
    assert!(named.iter().all(|w| w.starts_with("outcome model, fold ")));
    // No events at all.
    w.y.iter_mut().for_each(|y| *y = 0.0);
    let s = sample(&w, hospitals, true);
    let out = disparity_reduction(
        &input(&w, &s, Some(learning(LearnerKind::Forest, 10))),
        &spec,
        &|| {},
    )
    .expect("runs without events");
    let fallback = out
        .warnings
        .iter()
        .filter(|w| w.starts_with("outcome model: ") && w.contains("fold"))
        .count();
    assert_eq!(fallback, 5, "{:#?}", out.warnings);
    let diag = out.learners.as_ref().expect("diagnostics");
    assert_eq!(diag.nuisances[0].fallback_folds, 5);
}

/// Timing of the cross-fitted path (run in release by hand:
/// `cargo test --release -p healthgap-decompose flexible_timing -- --ignored --nocapture`).
#[test]
#[ignore = "timing at 50k patients; run in release by hand"]
fn flexible_timing() {
    let (n, hospitals) = (50_000, 300);
    let w = world(n, hospitals, 1, true);
    let s = sample(&w, hospitals, true);
    let spec = InferenceSpec::delta(0.95);
    let kinds: &[LearnerKind] = if std::env::var("FLEX_SL").is_ok() {
        &[LearnerKind::Forest, LearnerKind::SuperLearner]
    } else {
        &[LearnerKind::Forest]
    };
    for &kind in kinds {
        let mut l = learning(kind, 200);
        l.config.forest.min_leaf = 40;
        let start = std::time::Instant::now();
        let out = disparity_reduction(&input(&w, &s, Some(l)), &spec, &|| {}).expect("run");
        let overlap = out.learners.as_ref().map(|d| {
            d.overlap
                .iter()
                .map(|o| (o.clipped, o.effective_sample_size, o.quantiles[6].ratio))
                .collect::<Vec<_>>()
        });
        eprintln!(
            "{kind:?}: {:.1} s, reduction {:.4} (se {:.4}); overlap (clipped, ESS, max) {overlap:?}",
            start.elapsed().as_secs_f64(),
            row(&out, "disparity_reduction").estimate,
            row(&out, "disparity_reduction").se.unwrap_or(f64::NAN)
        );
    }
}

/// Timing at the issue's benchmark shape: three targets (t and two more
/// columns that depend on the group, so 7 density-ratio classifiers), 5
/// draws, 5 folds, influence-function SEs, a binary outcome, 300 hospitals.
/// `FLEX_N` patients (default 200,000), `FLEX_KIND` = forest | super_learner
/// (default forest), `FLEX_TREES` (default 200); run in release by hand:
/// `cargo test --release -p healthgap-decompose flexible_timing_three -- --ignored --nocapture`.
#[test]
#[ignore = "timing at 200k patients; run in release by hand"]
fn flexible_timing_three_targets() {
    let env = |k: &str| std::env::var(k).ok();
    let n: usize = env("FLEX_N")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let trees: usize = env("FLEX_TREES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let kind = match env("FLEX_KIND").as_deref() {
        Some("super_learner") => LearnerKind::SuperLearner,
        _ => LearnerKind::Forest,
    };
    let hospitals = 300;
    let mut w = world(n, hospitals, 1, true);
    let mut u = xorshift(77);
    for name in ["t2", "t3"] {
        let values =
            w.g.iter()
                .map(|&g| 0.5 * f64::from(g) + normal(&mut u))
                .collect();
        w.cov.columns.push(Column {
            name: name.into(),
            factor: "target".into(),
            values,
        });
    }
    let s = sample(&w, hospitals, true);
    let spec = InferenceSpec::delta(0.95);
    let mut inp = input(&w, &s, Some(learning(kind, trees)));
    for (k, name) in ["t2", "t3"].iter().enumerate() {
        inp.targets.push(Target {
            name: (*name).into(),
            columns: vec![3 + k],
            absorbed: false,
        });
    }
    let start = std::time::Instant::now();
    let out = disparity_reduction(&inp, &spec, &|| {}).expect("run");
    let overlap = out.learners.as_ref().map(|d| {
        d.overlap
            .iter()
            .map(|o| (o.clipped, o.effective_sample_size.round()))
            .collect::<Vec<_>>()
    });
    eprintln!(
        "{kind:?}, {n} patients, {trees} trees: {:.1} s, reduction {:.4} (se {:.4}); overlap (clipped, ESS) {overlap:?}; load {}",
        start.elapsed().as_secs_f64(),
        row(&out, "disparity_reduction").estimate,
        row(&out, "disparity_reduction").se.unwrap_or(f64::NAN),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

/// Clipped classifier probabilities are counted and named in a warning,
/// never silently: two of ten probabilities lie outside [CLIP, 1 − CLIP];
/// their odds are those of the clip, the count is 2, and the warning gives
/// the count and the bounds (with a collapsed effective sample size named
/// too). Without clipping, no clipping warning.
#[test]
fn clipped_density_ratio_probabilities_are_counted_and_warned() {
    use super::flexible::{CLIP, overlap_warning, ratios};
    let p = [0.0, 0.5, 1.0, 0.25, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5];
    let w = [1.0; 10];
    let (ratio, overlap) = ratios("target", &p, &w);
    assert_eq!(overlap.clipped, 2);
    assert!((ratio[0] - CLIP / (1.0 - CLIP)).abs() < 1e-18);
    assert!((ratio[2] - (1.0 - CLIP) / CLIP).abs() < 1e-3);
    let warnings = overlap_warning(&overlap);
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("2 probabilities clipped to [1e-6, 1 − 1e-6]")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|m| m.contains("effective sample size")));
    let (_, fine) = ratios("target", &[0.3, 0.5, 0.6], &[1.0; 3]);
    assert_eq!(fine.clipped, 0);
    assert!(
        overlap_warning(&fine)
            .iter()
            .all(|m| !m.contains("clipped"))
    );
}
