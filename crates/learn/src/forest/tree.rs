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

/// A node: a split on `feature` at `threshold` with children at `left` and
/// `left + 1`, or, when `feature == LEAF`, a leaf whose mean is
/// `values[left]` (16 bytes a node, so more of a tree stays in cache).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    threshold: f64,
    feature: u32,
    left: u32,
}

const LEAF: u32 = u32::MAX;

const PLACEHOLDER: Node = Node {
    threshold: 0.0,
    feature: LEAF,
    left: 0,
};

/// A fitted tree.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    values: Vec<f64>,
}

impl Tree {
    /// The leaf mean for the row `x` (one value per column; x ≤ threshold
    /// goes left).
    pub fn predict_row(&self, x: &[f64]) -> f64 {
        let mut k = 0usize;
        loop {
            let node = self.nodes[k];
            if node.feature == LEAF {
                return self.values[node.left as usize];
            }
            k = if x[node.feature as usize] <= node.threshold {
                node.left as usize
            } else {
                node.left as usize + 1
            };
        }
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.values.len()
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
    /// Σ w y², for the purity check.
    q: f64,
    draws: u32,
}

impl Sums {
    fn add(&mut self, r: &Row) {
        let wy = r.w * r.y;
        self.w += r.w;
        self.s += wy;
        self.q += wy * r.y;
        self.draws += r.draws;
    }

    fn add_sums(&mut self, o: &Sums) {
        self.w += o.w;
        self.s += o.s;
        self.q += o.q;
        self.draws += o.draws;
    }

    fn minus(&self, o: &Sums) -> Sums {
        Sums {
            w: self.w - o.w,
            s: self.s - o.s,
            q: self.q - o.q,
            draws: self.draws - o.draws,
        }
    }

    /// Whether the weighted squared error Σ w (y − ȳ)² = q − s²/w is zero
    /// up to rounding (every target equal).
    fn pure(&self) -> bool {
        self.w <= 0.0 || self.q - self.s * self.s / self.w <= 1e-12 * self.q.abs()
    }
}

/// The best split of a node: feature, cut index, gain, the left child's sums.
struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
    left: Sums,
}

impl Grower<'_> {
    /// Grows a tree on `rows` (in-bag rows with positive weight).
    pub fn grow(&self, rows: &mut [Row], rng: ChaCha8Rng) -> Tree {
        let mut nodes = vec![PLACEHOLDER];
        let mut values = Vec::new();
        let mut scratch = Scratch {
            rng,
            order: (0..self.binned.cuts.len()).collect(),
            hist: vec![Sums::default(); 256],
            touched: Vec::with_capacity(256),
        };
        // (node, start, end, depth, sums): a node's sums come from its
        // parent's split search, so a node costs its split search alone.
        let mut root = Sums::default();
        rows.iter().for_each(|r| root.add(r));
        let mut stack = vec![(0usize, 0usize, rows.len(), 0usize, root)];
        while let Some((k, start, end, depth, total)) = stack.pop() {
            let part = &mut rows[start..end];
            let split = if depth >= self.max_depth
                || total.draws < self.min_leaf.saturating_mul(2)
                || total.pure()
            {
                None
            } else {
                self.best_split(part, &total, &mut scratch)
            };
            let Some(split) = split else {
                // A leaf: its mean from its rows directly (not from
                // differences of sums, which round).
                let mut exact = Sums::default();
                part.iter().for_each(|r| exact.add(r));
                nodes[k].left = values.len() as u32;
                values.push(if exact.w > 0.0 {
                    exact.s / exact.w
                } else {
                    0.0
                });
                continue;
            };
            let codes = self.binned.column(split.feature);
            let mid = partition(part, |r| codes[r.idx as usize] <= split.bin);
            let left = nodes.len();
            nodes[k].feature = split.feature as u32;
            nodes[k].threshold = self.binned.cuts[split.feature][split.bin as usize];
            nodes[k].left = left as u32;
            nodes.push(PLACEHOLDER);
            nodes.push(PLACEHOLDER);
            let right = total.minus(&split.left);
            stack.push((left + 1, start + mid, end, depth + 1, right));
            stack.push((left, start, start + mid, depth + 1, split.left));
        }
        Tree { nodes, values }
    }

    /// The best split over up to `mtry` features that vary in the node,
    /// drawn in random order; None when no split decreases the error. Only
    /// the bins the node's rows occupy are visited (`touched`, in bin
    /// order), so a small node costs its rows, not the number of bins;
    /// `hist` is all zero on entry and on return.
    fn best_split(&self, rows: &[Row], total: &Sums, scratch: &mut Scratch) -> Option<Split> {
        let parent = total.s * total.s / total.w;
        // A split must reduce the error by more than rounding.
        let mut best: Option<Split> = None;
        let mut best_gain = parent + 1e-12 * parent.abs().max(1e-300);
        let mut tried = 0;
        let p = scratch.order.len();
        for t in 0..p {
            if tried == self.mtry {
                break;
            }
            let pick = scratch.rng.random_range(t..p);
            scratch.order.swap(t, pick);
            let j = scratch.order[t];
            if self.binned.bins(j) < 2 {
                continue;
            }
            let codes = self.binned.column(j);
            let (hist, touched) = (&mut scratch.hist, &mut scratch.touched);
            touched.clear();
            for r in rows {
                let b = codes[r.idx as usize];
                let h = &mut hist[b as usize];
                if h.draws == 0 {
                    touched.push(b);
                }
                h.add(r);
            }
            if touched.len() >= 2 {
                tried += 1;
                let nb = self.binned.bins(j);
                if touched.len() * 8 >= nb {
                    // Dense: reading the bins in order beats sorting.
                    touched.clear();
                    touched.extend((0..nb).filter(|&b| hist[b].draws > 0).map(|b| b as u8));
                } else {
                    touched.sort_unstable();
                }
                let mut left = Sums::default();
                for &b in &touched[..touched.len() - 1] {
                    left.add_sums(&hist[b as usize]);
                    if left.draws < self.min_leaf {
                        continue;
                    }
                    if total.draws - left.draws < self.min_leaf {
                        break;
                    }
                    let (rw, rs) = (total.w - left.w, total.s - left.s);
                    if left.w <= 0.0 || rw <= 0.0 {
                        continue;
                    }
                    let gain = left.s * left.s / left.w + rs * rs / rw;
                    if gain > best_gain {
                        best_gain = gain;
                        best = Some(Split {
                            feature: j,
                            bin: b,
                            gain,
                            left,
                        });
                    }
                }
            }
            for &b in touched.iter() {
                hist[b as usize] = Sums::default();
            }
        }
        best.filter(|s| s.gain > parent)
    }
}

/// Per-tree working memory of the split search.
pub(crate) struct Scratch {
    rng: ChaCha8Rng,
    order: Vec<usize>,
    hist: Vec<Sums>,
    touched: Vec<u8>,
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
    use crate::data::Matrix;
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
        let tree = g.grow(&mut rows, seed::rng(1, 0));
        assert_eq!(tree.leaves(), 2);
        assert_eq!(tree.predict_row(&[29.0]), 0.0);
        assert_eq!(tree.predict_row(&[30.0]), 1.0);
        assert!((tree.nodes[0].threshold - 29.5).abs() < 1e-12);
    }
}
