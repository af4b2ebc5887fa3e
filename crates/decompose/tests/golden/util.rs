//! What the golden tests share: where the golden data are, a CSV reader and
//! the tolerances.

use std::collections::HashMap;

/// A CSV as named columns (empty or NA cells are NaN).
pub fn read_csv(name: &str) -> HashMap<String, Vec<f64>> {
    let path = format!("{}/../../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|h| h.trim_matches('"').to_string())
        .collect();
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); header.len()];
    for line in lines.filter(|l| !l.is_empty()) {
        for (j, cell) in line.split(',').enumerate() {
            cols[j].push(cell.trim_matches('"').parse().unwrap_or(f64::NAN));
        }
    }
    header.into_iter().zip(cols).collect()
}

/// Tolerances: every comparison with a published or peer number goes
/// through these.
pub mod tol {
    /// |a − b| ≤ rel · max(|b|, floor), or a panic naming `what` and both
    /// numbers (`floor` keeps a relative tolerance meaningful near zero).
    pub fn relative(a: f64, b: f64, rel: f64, floor: f64, what: &str) {
        assert!(
            (a - b).abs() <= rel * b.abs().max(floor),
            "{what}: {a} vs {b} (relative {rel})"
        );
    }

    /// |a − b| ≤ tol, or a panic naming `what` and both numbers.
    pub fn absolute(a: f64, b: f64, tol: f64, what: &str) {
        assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (absolute {tol})");
    }
}
