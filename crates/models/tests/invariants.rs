//! Invariants of the estimators (seeded data, no reference values needed).

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use healthgap_models::bootstrap::ClusterBootstrap;
use healthgap_models::moments::Moments;
use healthgap_models::{Design, Glm, ModelError, Ols, SmallSample, VcovKind};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// y = 1 + 0.5 g + x1 − 0.3 x2 + cluster effect + noise; 40 clusters.
fn data(n: usize, seed: u64) -> (Vec<f64>, Vec<(String, Vec<f64>)>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cluster: Vec<i64> = (0..n).map(|_| rng.random_range(0..40)).collect();
    let effect: Vec<f64> = (0..40).map(|_| rng.random::<f64>() - 0.5).collect();
    let g: Vec<f64> = (0..n)
        .map(|_| f64::from(u8::from(rng.random::<f64>() < 0.3)))
        .collect();
    let x1: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0).collect();
    let x2: Vec<f64> = (0..n)
        .map(|i| effect[cluster[i] as usize] + rng.random::<f64>())
        .collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            1.0 + 0.5 * g[i] + x1[i] - 0.3 * x2[i]
                + effect[cluster[i] as usize]
                + rng.random::<f64>()
                - 0.5
        })
        .collect();
    let cols = vec![
        ("const".to_string(), vec![1.0; n]),
        ("g".to_string(), g),
        ("x1".to_string(), x1),
        ("x2".to_string(), x2),
    ];
    (y, cols, cluster)
}

#[test]
fn cr1_equals_hc1_when_every_cluster_is_one_row() {
    let (y, cols, _) = data(300, 1);
    let ids: Vec<i64> = (0..300).collect();
    let d = Design::from_columns("y", y, cols)
        .unwrap()
        .with_cluster(&ids);
    let fit = Ols::new().fit(&d).unwrap();
    let cr1 = fit
        .vcov(VcovKind::Cr1, "id", SmallSample::default())
        .unwrap();
    let hc1 = fit
        .vcov(VcovKind::Hc1, "id", SmallSample::default())
        .unwrap();
    for (a, b) in cr1.matrix.iter().zip(&hc1.matrix) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-12), "{a} vs {b}");
    }
}

#[test]
fn weights_of_two_equal_duplicated_rows() {
    let (y, cols, cluster) = data(200, 2);
    let w: Vec<f64> = (0..200)
        .map(|i| if i % 3 == 0 { 2.0 } else { 1.0 })
        .collect();
    let weighted = Design::from_columns("y", y.clone(), cols.clone())
        .unwrap()
        .with_weights(w.clone())
        .with_cluster(&cluster);
    // Duplicate the rows of weight 2, in the same cluster.
    let rows: Vec<usize> = (0..200)
        .flat_map(|i| std::iter::repeat_n(i, w[i] as usize))
        .collect();
    let dup_cols = cols
        .iter()
        .map(|(n, c)| (n.clone(), rows.iter().map(|&i| c[i]).collect()))
        .collect();
    let dup = Design::from_columns("y", rows.iter().map(|&i| y[i]).collect(), dup_cols)
        .unwrap()
        .with_cluster(&rows.iter().map(|&i| cluster[i]).collect::<Vec<_>>());
    let (a, b) = (
        Ols::new().fit(&weighted).unwrap(),
        Ols::new().fit(&dup).unwrap(),
    );
    for (x, z) in a.coef.iter().zip(&b.coef) {
        assert!((x - z).abs() < 1e-12 * z.abs().max(1.0));
    }
    // Same bread and meat: the CR1 variances differ only by (n − 1)/(n − K).
    let va = a.vcov(VcovKind::Cr1, "c", SmallSample::default()).unwrap();
    let vb = b.vcov(VcovKind::Cr1, "c", SmallSample::default()).unwrap();
    let (na, nb, k) = (200.0, rows.len() as f64, 4.0);
    let ratio = ((na - 1.0) / (na - k)) / ((nb - 1.0) / (nb - k));
    for (x, z) in va.matrix.iter().zip(&vb.matrix) {
        assert!((x - z * ratio).abs() < 1e-12 * z.abs().max(1e-12));
    }
    // And so do the logit fits.
    let yb: Vec<f64> = y.iter().map(|v| f64::from(u8::from(*v > 2.0))).collect();
    let lw = Glm::logit()
        .fit(
            &Design {
                y: yb.clone().into(),
                ..weighted.clone()
            },
            None,
        )
        .unwrap();
    let ld = Glm::logit()
        .fit(
            &Design {
                y: rows.iter().map(|&i| yb[i]).collect::<Vec<_>>().into(),
                ..dup.clone()
            },
            None,
        )
        .unwrap();
    for (x, z) in lw.coef.iter().zip(&ld.coef) {
        assert!((x - z).abs() < 1e-9 * z.abs().max(1.0));
    }
}

#[test]
fn moment_fit_and_cr1_equal_the_row_level_fit() {
    let (y, cols, cluster) = data(2000, 3);
    let w: Vec<f64> = (0..2000).map(|i| 0.5 + (i % 5) as f64 / 4.0).collect();
    let d = Design::from_columns("y", y, cols)
        .unwrap()
        .with_weights(w)
        .with_cluster(&cluster);
    let rows = Ols::new().fit(&d).unwrap();
    let m = Moments::from_design(&d).unwrap();
    let mf = m.fit(None).unwrap();
    for (a, b) in mf.coef.iter().zip(&rows.coef) {
        assert!((a - b).abs() < 1e-10 * b.abs().max(1.0));
    }
    assert!((mf.rss - rows.rss).abs() < 1e-8 * rows.rss);
    let v_rows = rows
        .vcov(VcovKind::Cr1, "c", SmallSample::default())
        .unwrap();
    let v_mom = m.cr1(&mf).unwrap();
    for (a, b) in v_mom.iter().zip(&v_rows.matrix) {
        assert!((a - b).abs() < 1e-9 * b.abs().max(1e-12), "{a} vs {b}");
    }
}

#[test]
fn a_moment_replicate_equals_a_refit_on_the_resampled_rows() {
    let (y, cols, cluster) = data(1500, 4);
    let d = Design::from_columns("y", y.clone(), cols.clone())
        .unwrap()
        .with_cluster(&cluster);
    let m = Moments::from_design(&d).unwrap();
    let bs = ClusterBootstrap::new(5, 99, "test");
    for k in 0..5 {
        let mult = bs.multiplicities(k, d.n_clusters);
        // Resample rows: each row of cluster g repeated mult[g] times.
        let codes = d.cluster.clone().unwrap();
        let rows: Vec<usize> = (0..1500)
            .flat_map(|i| std::iter::repeat_n(i, mult[codes[i] as usize] as usize))
            .collect();
        let rcols = cols
            .iter()
            .map(|(n, c)| (n.clone(), rows.iter().map(|&i| c[i]).collect()))
            .collect();
        let refit = Ols::new()
            .fit(&Design::from_columns("y", rows.iter().map(|&i| y[i]).collect(), rcols).unwrap())
            .unwrap();
        let rep = m.fit(Some(&mult)).unwrap();
        for (a, b) in rep.coef.iter().zip(&refit.coef) {
            assert!(
                (a - b).abs() < 1e-10 * b.abs().max(1.0),
                "replicate {k}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn bootstrap_is_bit_identical_with_one_and_two_threads() {
    let (y, cols, cluster) = data(3000, 5);
    let d = Design::from_columns("y", y, cols)
        .unwrap()
        .with_cluster(&cluster);
    let m = Moments::from_design(&d).unwrap();
    let bs = ClusterBootstrap::new(200, 20261126, "oaxaca_blinder");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            bs.run(
                d.n_clusters,
                |mult| m.fit(Some(mult)).map(|f| f.coef).map_err(|e| e.to_string()),
                &|| {},
            )
            .estimates
        })
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.len(), 200);
    assert!(
        one.iter()
            .zip(&two)
            .all(|(a, b)| a.iter().zip(b).all(|(x, z)| x.to_bits() == z.to_bits()))
    );
    // Moments themselves do not depend on the thread count either.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let m1 = pool.install(|| Moments::from_design(&d).unwrap());
    assert_eq!(m1.clusters, m.clusters);
}

#[test]
fn singular_designs_are_dropped_by_name_or_refused() {
    let (y, mut cols, _) = data(100, 6);
    let twice: Vec<f64> = cols[2].1.iter().map(|v| 2.0 * v).collect();
    cols.push(("x1_twice".to_string(), twice));
    let d = Design::from_columns("y", y, cols).unwrap();
    let fit = Ols::new().fit(&d).unwrap();
    assert_eq!(fit.dropped, vec!["x1_twice".to_string()]);
    assert_eq!(fit.names, vec!["const", "g", "x1", "x2"]);
    let err = Ols::new().refuse_collinear().fit(&d).unwrap_err();
    assert!(
        matches!(err, ModelError::Singular { ref columns, .. } if columns == &vec!["x1_twice".to_string()])
    );
    assert!(err.to_string().contains("x1_twice"));
}

#[test]
fn separation_and_a_single_cluster_are_reported_not_panicked() {
    let n = 200;
    let rare: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i % 20 == 0))).collect();
    let x: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
    // Nobody with rare = 1 has the event: quasi-complete separation.
    let y: Vec<f64> = (0..n)
        .map(|i| f64::from(u8::from(i % 3 == 0 && i % 20 != 0)))
        .collect();
    let d = Design::from_columns(
        "death",
        y.clone(),
        vec![
            ("const".into(), vec![1.0; n]),
            ("x".into(), x.clone()),
            ("dialysis".into(), rare),
        ],
    )
    .unwrap();
    let err = Glm::logit().fit(&d, None).unwrap_err();
    assert!(
        matches!(err, ModelError::Separation { ref variables } if variables == &vec!["dialysis=1".to_string()]),
        "{err}"
    );
    // Not binary.
    let bad =
        Design::from_columns("death", vec![2.0; n], vec![("const".into(), vec![1.0; n])]).unwrap();
    assert!(matches!(
        Glm::logit().fit(&bad, None),
        Err(ModelError::NotBinary { .. })
    ));
    // One cluster.
    let one = Design::from_columns("y", x.clone(), vec![("const".into(), vec![1.0; n])])
        .unwrap()
        .with_cluster(&vec![7; n]);
    let fit = Ols::new().fit(&one).unwrap();
    assert!(matches!(
        fit.vcov(VcovKind::Cr1, "hospital", SmallSample::default()),
        Err(ModelError::TooFewClusters { clusters: 1 })
    ));
    // Non-finite input and bad weights.
    let mut xs = x.clone();
    xs[5] = f64::NAN;
    let nan = Design::from_columns("y", y.clone(), vec![("age".into(), xs)]).unwrap();
    assert!(
        matches!(Ols::new().fit(&nan), Err(ModelError::NonFinite { ref column, row: 5 }) if column == "age")
    );
    let neg = Design::from_columns("y", y, vec![("const".into(), vec![1.0; n])])
        .unwrap()
        .with_weights(vec![-1.0; n]);
    assert!(matches!(
        Ols::new().fit(&neg),
        Err(ModelError::BadWeight { .. })
    ));
}

#[test]
fn fe_logit_drops_levels_with_a_constant_outcome_and_reports_them() {
    let n = 600;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let h: Vec<i64> = (0..n).map(|i| (i % 12) as i64).collect();
    let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            if h[i] == 3 {
                0.0
            } else {
                f64::from(u8::from(rng.random::<f64>() < 0.2 + 0.5 * x[i]))
            }
        })
        .collect();
    let d = Design::from_columns("y", y, vec![("x".into(), x)])
        .unwrap()
        .with_absorbed("hospital", &h);
    let fit = Glm::logit().fit(&d, None).unwrap();
    assert_eq!(fit.dropped_fe, vec![("hospital".to_string(), 1, 50)]);
    assert_eq!(fit.nobs(), 550);
    assert!(fit.coef[0] > 0.0);
}

#[test]
fn joint_sandwich_blocks_equal_each_models_cr1_and_groups_sharing_clusters_covary() {
    use healthgap_models::vcov::{JointPart, joint_cr1};
    // Two group-specific regressions on rows that share the 40 clusters.
    let (y, cols, cluster) = data(4000, 9);
    let in_group = |g: f64| -> Vec<bool> { cols[1].1.iter().map(|v| *v == g).collect() };
    let full = Design::from_columns("y", y, cols.clone())
        .unwrap()
        .with_cluster(&cluster);
    let codes = full.cluster.clone().unwrap();
    let g = full.n_clusters;
    let mut fits = Vec::new();
    let mut row_codes = Vec::new();
    for grp in [0.0, 1.0] {
        let keep = in_group(grp);
        // Drop the group column (constant within a group).
        let mut d = full.select_rows(&keep);
        let n = d.nobs();
        let keep_cols: Vec<usize> = vec![0, 2, 3];
        let data: Vec<f64> = keep_cols
            .iter()
            .flat_map(|&j| d.column(j).to_vec())
            .collect();
        d.x = ndarray::Array2::from_shape_vec(ndarray::ShapeBuilder::f((n, 3)), data).unwrap();
        d.names = keep_cols.iter().map(|&j| d.names[j].clone()).collect();
        row_codes.push(
            codes
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| *c)
                .collect::<Vec<u32>>(),
        );
        fits.push(Ols::new().fit(&d).unwrap());
    }
    let parts: Vec<JointPart> = fits
        .iter()
        .zip(&row_codes)
        .map(|(f, c)| JointPart {
            parts: f.sandwich_parts(),
            cluster: c,
        })
        .collect();
    let v = joint_cr1(&parts, g).unwrap();
    let total = 6;
    for (m, fit) in fits.iter().enumerate() {
        let own = fit
            .vcov(VcovKind::Cr1, "c", SmallSample::default())
            .unwrap();
        let n = fit.nobs() as f64;
        let adj = (n - 1.0) / (n - 3.0);
        for a in 0..3 {
            for b in 0..3 {
                let joint = v[(3 * m + a) * total + 3 * m + b];
                assert!(
                    (joint * adj - own.matrix[a * 3 + b]).abs()
                        < 1e-10 * own.matrix[a * 3 + b].abs().max(1e-12)
                );
            }
        }
    }
    // The constants of the two groups' models covary through shared clusters.
    assert!(v[3].abs() > 0.0);
}

#[test]
fn fe_logit_is_bit_identical_with_one_and_two_threads() {
    let n = 150_000; // several parallel row blocks
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let h: Vec<i64> = (0..n).map(|_| rng.random_range(0..60)).collect();
    let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            f64::from(u8::from(
                rng.random::<f64>() < 0.1 + 0.3 * x[i] + 0.002 * h[i] as f64,
            ))
        })
        .collect();
    let d = Design::from_columns("y", y, vec![("x".into(), x)])
        .unwrap()
        .with_absorbed("h", &h)
        .with_cluster(&h);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let fit = Glm::logit().fit(&d, None).unwrap();
            let v = fit
                .vcov(VcovKind::Cr1, "h", SmallSample::default())
                .unwrap();
            (fit.coef[0].to_bits(), v.matrix[0].to_bits(), fit.iterations)
        })
    };
    assert_eq!(run(1), run(2));
}
