//! The moment queries: the split under the column limit covers every moment
//! exactly once, and centred moments un-centre to the raw moments.

mod common;

use std::collections::{BTreeMap, HashSet};

use healthgap_sql::{
    CellMoments, Dialect, Key, MomentKind, MomentQuery, MomentSpec, Var, mean_queries, means_from,
    moment_queries,
};

/// The number of output columns of a query's final SELECT (one item a line).
fn select_items(sql: &str) -> usize {
    let start = sql.rfind("\nSELECT\n").expect("a SELECT") + "\nSELECT\n".len();
    let end = sql.rfind("\nFROM hg_cohort").expect("FROM the cohort");
    sql[start..end].lines().count()
}

fn check_cover(queries: &[MomentQuery], spec: &MomentSpec, limit: usize) {
    let mut seen = HashSet::new();
    for q in queries {
        let width = q.keys.len() + q.columns.len();
        assert!(width <= limit, "{width} columns > {limit}");
        assert_eq!(select_items(&q.sql), width);
        assert!(q.sql.ends_with("ORDER BY \"grp\", \"hosp\", \"clus\""));
        for c in &q.columns {
            assert!(seen.insert(c.kind), "{:?} twice", c.kind);
        }
    }
    let vars = spec.vars();
    let mut expected: HashSet<MomentKind> = [MomentKind::Count, MomentKind::SumW].into();
    for (a, &va) in vars.iter().enumerate() {
        expected.insert(MomentKind::Sum(va));
        for &vb in &vars[a..] {
            expected.insert(MomentKind::Product(va, vb));
        }
    }
    assert_eq!(seen, expected);
}

#[test]
fn sixty_design_columns_split_under_the_postgres_limit() {
    let cohort = common::wide(60);
    let spec = MomentSpec::all(
        &cohort,
        vec![Key::Group, Key::Hospital, Key::Cluster],
        Some(0),
    )
    .unwrap();
    // 61 variables: 2 + 61 + 61·62/2 = 1,954 moments > 1,664.
    let queries = moment_queries(&cohort, &spec, Dialect::Postgres, None).unwrap();
    assert_eq!(queries.len(), 2);
    check_cover(&queries, &spec, 1664);
    let queries = moment_queries(&cohort, &spec, Dialect::TSql, None).unwrap();
    assert_eq!(queries.len(), 1);
}

#[test]
fn a_small_limit_gives_many_queries_covering_everything_once() {
    let cohort = common::wide(60);
    let mut spec = MomentSpec::all(
        &cohort,
        vec![Key::Group, Key::Hospital, Key::Cluster],
        Some(0),
    )
    .unwrap();
    spec.max_columns = Some(50);
    let queries = moment_queries(&cohort, &spec, Dialect::Postgres, None).unwrap();
    assert_eq!(queries.len(), 1954usize.div_ceil(50 - 3 - 4));
    check_cover(&queries, &spec, 50);
    spec.max_columns = Some(7);
    assert!(moment_queries(&cohort, &spec, Dialect::Postgres, None).is_err());
    let pass1 = mean_queries(&cohort, &spec, Dialect::Postgres);
    assert!(pass1.is_ok(), "pass 1 has no keys: {pass1:?}");
}

/// A small table: (group, x1, x2, y, w).
fn rows() -> Vec<(u8, f64, f64, f64, f64)> {
    (0..40)
        .map(|i| {
            let t = f64::from(i);
            (
                (i % 3) as u8,
                1000.0 + 3.0 * t + (t * 0.7).sin(),
                f64::from(i % 2),
                0.5 * t - 4.0 + (t * 1.3).cos(),
                0.5 + f64::from(i % 4) * 0.25,
            )
        })
        .collect()
}

/// Moments per group computed in Rust by following each column's meaning,
/// as an engine would evaluate the queries (with v shifted by `shift`), then
/// assembled from the columns with [`CellMoments::record`].
fn evaluate(queries: &[MomentQuery], p: usize, shift: &[f64]) -> BTreeMap<u8, CellMoments> {
    let mut cells = BTreeMap::new();
    for q in queries {
        // Per group, the value of each output column of this query.
        let mut totals: BTreeMap<u8, Vec<f64>> = BTreeMap::new();
        for (g, x1, x2, y, w) in rows() {
            let v = [x1 - shift[0], x2 - shift[1], y - shift[2]];
            let val = |var: Var| v[var.index(p)];
            let t = totals
                .entry(g)
                .or_insert_with(|| vec![0.0; q.columns.len()]);
            for (slot, c) in t.iter_mut().zip(&q.columns) {
                *slot += match c.kind {
                    MomentKind::Count => 1.0,
                    MomentKind::SumW => w,
                    MomentKind::Sum(a) => w * val(a),
                    MomentKind::Product(a, b) => w * val(a) * val(b),
                };
            }
        }
        for (g, t) in totals {
            let cell = cells.entry(g).or_insert_with(|| CellMoments::zeros(3));
            for (value, c) in t.into_iter().zip(&q.columns) {
                cell.record(c.kind, value, p);
            }
        }
    }
    cells
}

#[test]
fn centred_moments_uncentre_to_the_raw_moments() {
    let mut cohort = common::wide(2);
    cohort.hospital = None;
    cohort.cluster = None;
    let spec = MomentSpec::all(&cohort, vec![Key::Group], Some(0)).unwrap();
    let p = spec.x.len();
    let pass1 = mean_queries(&cohort, &spec, Dialect::DuckDb).unwrap();
    let global: CellMoments =
        evaluate(&pass1, p, &[0.0; 3])
            .into_values()
            .fold(CellMoments::zeros(3), |mut acc, c| {
                acc.count += c.count;
                acc.sum_w += c.sum_w;
                for (s, t) in acc.sums.iter_mut().zip(&c.sums) {
                    *s += t;
                }
                acc
            });
    let means = means_from(&global).unwrap();
    let pass2 = moment_queries(&cohort, &spec, Dialect::DuckDb, Some(&means)).unwrap();
    let raw = evaluate(&pass2, p, &[0.0; 3]);
    let centred = evaluate(&pass2, p, &means);
    assert_eq!(raw.len(), 3);
    for (g, r) in &raw {
        let u = centred[g].uncentred(&means);
        assert_eq!(u.count, r.count);
        assert_eq!(u.sum_w, r.sum_w);
        for (a, b) in u
            .sums
            .iter()
            .zip(&r.sums)
            .chain(u.products.iter().zip(&r.products))
        {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "group {g}: {a} vs {b}"
            );
        }
        assert_eq!(r.product(0, 2), r.product(2, 0));
    }
    // The centred sums over all cells are zero: the means are the weighted means.
    for a in 0..3 {
        let total: f64 = centred.values().map(|c| c.sums[a]).sum();
        assert!(total.abs() < 1e-9, "{total}");
    }
}

#[test]
fn selected_moments_are_those_of_the_selected_variables() {
    let mut cohort = common::wide(2);
    cohort.hospital = None;
    cohort.cluster = None;
    let spec = MomentSpec::all(&cohort, vec![Key::Group], Some(0)).unwrap();
    let p = spec.x.len();
    let queries = moment_queries(&cohort, &spec, Dialect::DuckDb, None).unwrap();
    let cells = evaluate(&queries, p, &[0.0; 3]);
    // (x2, y) and the reversed (y, x1): each entry is the matching original.
    for (vars, expect) in [(vec![1, 2], [1, 2]), (vec![2, 0], [2, 0])] {
        for c in cells.values() {
            let s = c.select(&vars);
            assert_eq!((s.count, s.sum_w), (c.count, c.sum_w));
            assert_eq!(s.sums, vec![c.sums[expect[0]], c.sums[expect[1]]]);
            for a in 0..2 {
                for b in 0..2 {
                    assert_eq!(s.product(a, b), c.product(expect[a], expect[b]));
                }
            }
        }
    }
}
