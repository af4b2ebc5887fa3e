//! One regression tree (CART, Breiman et al. 1984) grown on binned features
//! with row weights. A node splits on the cut that maximises the decrease
//! in weighted squared error,
//!
//!   Δ = S_L²/W_L + S_R²/W_R − S²/W,   W = Σ w_i, S = Σ w_i y_i,
//!
//! among `mtry` features drawn at random without replacement (features
//! constant within the node are skipped and another is drawn, as
//! scikit-learn does); each child keeps at least `min_leaf` in-bag draws.
//! A leaf predicts its weighted mean S/W, which for a 0/1 target is a
//! probability (the probability forest of Malley et al. 2012).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::bins::Binned;
use crate::data::Matrix;

/// A node: a leaf when `feature == LEAF`; children at `left` and `left + 1`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    threshold: f64,
    value: f64,
    left: u32,
    feature: u32,
}

const LEAF: u32 = u32::MAX;

/// A fitted tree.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// The leaf value for row i of `x` (x ≤ threshold goes left).
    pub fn predict_row(&self, x: &Matrix, i: usize) -> f64 {
        let mut k = 0usize;
        loop {
            let node = self.nodes[k];
            if node.feature == LEAF {
                return node.value;
            }
            k = if x.get(i, node.feature as usize) <= node.threshold {
                node.left as usize
            } else {
                node.left as usize + 1
            };
        }
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.feature == LEAF).count()
    }
}

/// An in-bag row: index, bootstrap draws, weight (w × draws) and target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub idx: u32,
    pub draws: u32,
    pub w: f64,
    pub y: f64,
}

/// What grows trees: the binned features and the limits.
pub(crate) struct Grower<'a> {
    pub binned: &'a Binned,
    pub mtry: usize,
    pub min_leaf: u32,
    pub max_depth: usize,
}

/// A node's sums.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    w: f64,
    s: f64,
    draws: u32,
}

impl Sums {
    fn add(&mut self, r: &Row) {
        self.w += r.w;
        self.s += r.w * r.y;
        self.draws += r.draws;
    }
}

/// The best split of a node: feature, cut index, gain.
struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
}

impl Grower<'_> {
    /// Grows a tree on `rows` (in-bag rows with positive weight).
    pub fn grow(&self, rows: &mut [Row], rng: &mut ChaCha8Rng) -> Tree {
        let mut nodes = vec![Node {
            threshold: 0.0,
            value: 0.0,
            left: 0,
            feature: LEAF,
        }];
        let p = self.binned.cuts.len();
        let mut order: Vec<usize> = (0..p).collect();
        let mut hist = vec![Sums::default(); 256];
        // (node, start, end, depth)
        let mut stack = vec![(0usize, 0usize, rows.len(), 0usize)];
        while let Some((k, start, end, depth)) = stack.pop() {
            let part = &mut rows[start..end];
            let mut total = Sums::default();
            part.iter().for_each(|r| total.add(r));
            nodes[k].value = if total.w > 0.0 {
                total.s / total.w
            } else {
                0.0
            };
            if depth >= self.max_depth || total.draws < 2 * self.min_leaf || pure(part) {
                continue;
            }
            let Some(split) = self.best_split(part, &total, &mut order, &mut hist, rng) else {
                continue;
            };
            let codes = self.binned.column(split.feature);
            let mid = partition(part, |r| codes[r.idx as usize] <= split.bin);
            let left = nodes.len();
            nodes[k].feature = split.feature as u32;
            nodes[k].threshold = self.binned.cuts[split.feature][split.bin as usize];
            nodes[k].left = left as u32;
            for _ in 0..2 {
                nodes.push(Node {
                    threshold: 0.0,
                    value: 0.0,
                    left: 0,
                    feature: LEAF,
                });
            }
            stack.push((left + 1, start + mid, end, depth + 1));
            stack.push((left, start, start + mid, depth + 1));
        }
        Tree { nodes }
    }

    /// The best split over up to `mtry` features that vary in the node,
    /// drawn in random order; None when no split decreases the error.
    fn best_split(
        &self,
        rows: &[Row],
        total: &Sums,
        order: &mut [usize],
        hist: &mut [Sums],
        rng: &mut ChaCha8Rng,
    ) -> Option<Split> {
        let parent = total.s * total.s / total.w;
        // A split must reduce the error by more than rounding.
        let mut best: Option<Split> = None;
        let mut best_gain = parent + 1e-12 * parent.abs().max(1e-300);
        let mut tried = 0;
        let p = order.len();
        for t in 0..p {
            if tried == self.mtry {
                break;
            }
            let pick = rng.random_range(t..p);
            order.swap(t, pick);
            let j = order[t];
            let nb = self.binned.bins(j);
            if nb < 2 {
                continue;
            }
            let h = &mut hist[..nb];
            h.fill(Sums::default());
            let codes = self.binned.column(j);
            for r in rows {
                h[codes[r.idx as usize] as usize].add(r);
            }
            if h.iter().filter(|s| s.draws > 0).count() < 2 {
                continue;
            }
            tried += 1;
            let mut left = Sums::default();
            for (b, hb) in h.iter().enumerate().take(nb - 1) {
                left.w += hb.w;
                left.s += hb.s;
                left.draws += hb.draws;
                let rd = total.draws - left.draws;
                if left.draws < self.min_leaf {
                    continue;
                }
                if rd < self.min_leaf {
                    break;
                }
                let rw = total.w - left.w;
                if left.w <= 0.0 || rw <= 0.0 {
                    continue;
                }
                let rs = total.s - left.s;
                let gain = left.s * left.s / left.w + rs * rs / rw;
                if gain > best_gain {
                    best_gain = gain;
                    best = Some(Split {
                        feature: j,
                        bin: b as u8,
                        gain,
                    });
                }
            }
        }
        best.filter(|s| s.gain > parent)
    }
}

/// Whether every row has the same target.
fn pure(rows: &[Row]) -> bool {
    rows.first().is_none_or(|f| rows.iter().all(|r| r.y == f.y))
}

/// Moves the rows satisfying `left` to the front; returns how many.
fn partition(rows: &mut [Row], left: impl Fn(&Row) -> bool) -> usize {
    let mut mid = 0;
    for i in 0..rows.len() {
        if left(&rows[i]) {
            rows.swap(i, mid);
            mid += 1;
        }
    }
    mid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;

    #[test]
    fn a_step_function_is_split_at_the_step() {
        let x: Vec<f64> = (0..100).map(f64::from).collect();
        let m = Matrix::from_columns(vec![("x".into(), x.clone())]).expect("matrix");
        let binned = Binned::new(&m, 255);
        let mut rows: Vec<Row> = (0..100u32)
            .map(|i| Row {
                idx: i,
                draws: 1,
                w: 1.0,
                y: if i < 30 { 0.0 } else { 1.0 },
            })
            .collect();
        let g = Grower {
            binned: &binned,
            mtry: 1,
            min_leaf: 5,
            max_depth: 10,
        };
        let tree = g.grow(&mut rows, &mut seed::rng(1, 0));
        assert_eq!(tree.leaves(), 2);
        assert_eq!(tree.predict_row(&m, 29), 0.0);
        assert_eq!(tree.predict_row(&m, 30), 1.0);
        assert!((tree.nodes[0].threshold - 29.5).abs() < 1e-12);
    }
}
