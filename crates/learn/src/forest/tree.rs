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

/// A node: a split sending a row to `left` when its code of `feature` is at
/// most `bin` (x ≤ cuts[feature][bin]) and to `left + 1` otherwise; a leaf
/// is the node {left: itself, feature: 0, bin: 255}, which every row stays
/// at, so a descent is the same branch-free step at every node. Eight bytes
/// a node, so more of a tree stays in cache while predicting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    left: u32,
    feature: u16,
    bin: u8,
}

/// More columns than the nodes can name.
pub(crate) const MAX_FEATURES: usize = u16::MAX as usize;

const PLACEHOLDER: Node = Node {
    left: 0,
    feature: 0,
    bin: u8::MAX,
};

/// Rows descended together: their chains of node loads are independent, so
/// the processor overlaps them (a lone descent waits on each load in turn).
const LANES: usize = 32;

/// A fitted tree.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    /// The mean of each leaf, at the leaf's node (0 at inner nodes).
    values: Vec<f64>,
    leaves: usize,
}

impl Tree {
    /// The next node of a row with codes `codes` at node k.
    #[inline]
    fn step(&self, k: u32, codes: &[u8]) -> u32 {
        let node = self.nodes[k as usize];
        node.left + u32::from(codes[usize::from(node.feature)] > node.bin)
    }

    /// The leaf means of m rows given by their bin codes (row i's p codes
    /// at `codes[i·p..]`, from the training cut points), written to `out`:
    /// LANES rows at a time descend in lockstep until none moves.
    pub fn predict_block(&self, codes: &[u8], p: usize, out: &mut [f64]) {
        let mut at = [0u32; LANES];
        for (g, out) in out.chunks_mut(LANES).enumerate() {
            let rows = &codes[g * LANES * p..];
            let lanes = &mut at[..out.len()];
            lanes.fill(0);
            if self.nodes.len() > 1 {
                loop {
                    let mut moved = false;
                    for (i, k) in lanes.iter_mut().enumerate() {
                        let next = self.step(*k, &rows[i * p..(i + 1) * p]);
                        moved |= next != *k;
                        *k = next;
                    }
                    if !moved {
                        break;
                    }
                }
            }
            for (o, k) in out.iter_mut().zip(lanes.iter()) {
                *o = self.values[*k as usize];
            }
        }
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.leaves
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
        let mut values = vec![0.0];
        let mut leaves = 0;
        let mut scratch = Scratch {
            rng,
            order: (0..self.binned.cuts.len()).collect(),
            batch: Vec::with_capacity(self.mtry),
            hist: vec![Sums::default(); 256 * self.mtry],
            touched: vec![Vec::with_capacity(256); self.mtry],
        };
        // (node, start, end, depth, sums): a node's sums come from its
        // parent's split search, so a node costs its split search alone.
        let mut root = Sums::default();
        rows.iter().for_each(|r| root.add(r));
        // The in-bag rows' codes, row k at k·p, moved with the rows when a
        // node is partitioned: a node's rows and codes stay contiguous, so
        // the split search streams through memory instead of gathering.
        let p = self.binned.p;
        let mut codes = Vec::with_capacity(rows.len() * p);
        for r in rows.iter() {
            codes.extend_from_slice(
                &self.binned.codes[r.idx as usize * p..(r.idx as usize + 1) * p],
            );
        }
        let mut stack = vec![(0usize, 0usize, rows.len(), 0usize, root)];
        while let Some((k, start, end, depth, total)) = stack.pop() {
            let part = &mut rows[start..end];
            let part_codes = &mut codes[start * p..end * p];
            let split = if depth >= self.max_depth
                || total.draws < self.min_leaf.saturating_mul(2)
                || total.pure()
            {
                None
            } else {
                self.best_split(part, part_codes, &total, &mut scratch)
            };
            let Some(split) = split else {
                // A leaf: its mean from its rows directly (not from
                // differences of sums, which round).
                let mut exact = Sums::default();
                part.iter().for_each(|r| exact.add(r));
                nodes[k].left = k as u32;
                values[k] = if exact.w > 0.0 {
                    exact.s / exact.w
                } else {
                    0.0
                };
                leaves += 1;
                continue;
            };
            let mid = partition(part, part_codes, p, |c| c[split.feature] <= split.bin);
            let left = nodes.len();
            // `fit_forest` refuses more than u16::MAX − 1 columns.
            nodes[k].feature = split.feature as u16;
            nodes[k].bin = split.bin;
            nodes[k].left = left as u32;
            nodes.extend([PLACEHOLDER; 2]);
            values.extend([0.0; 2]);
            let right = total.minus(&split.left);
            stack.push((left + 1, start + mid, end, depth + 1, right));
            stack.push((left, start, start + mid, depth + 1, split.left));
        }
        Tree {
            nodes,
            values,
            leaves,
        }
    }

    /// The best split over up to `mtry` features that vary in the node,
    /// drawn in random order; None when no split decreases the error.
    ///
    /// Features are drawn one at a time; one that is constant in the node
    /// does not count and another is drawn. The histograms of a batch of
    /// draws (as many as are still missing) are filled in one pass over the
    /// node's rows, each row's codes read from one place (row-major codes),
    /// and evaluated in draw order; the draws, and so the tree, are the same
    /// as evaluating one feature at a time.
    fn best_split(
        &self,
        rows: &[Row],
        codes: &[u8],
        total: &Sums,
        scratch: &mut Scratch,
    ) -> Option<Split> {
        let parent = total.s * total.s / total.w;
        // A split must reduce the error by more than rounding.
        let mut best = Best {
            split: None,
            gain: parent + 1e-12 * parent.abs().max(1e-300),
        };
        let (mut tried, mut t) = (0, 0);
        let p = scratch.order.len();
        while tried < self.mtry && t < p {
            scratch.batch.clear();
            while scratch.batch.len() < self.mtry - tried && t < p {
                let pick = scratch.rng.random_range(t..p);
                scratch.order.swap(t, pick);
                let j = scratch.order[t];
                t += 1;
                if self.binned.bins(j) >= 2 {
                    scratch.batch.push(j);
                }
            }
            self.histograms(rows, codes, scratch);
            for f in 0..scratch.batch.len() {
                tried += usize::from(self.scan(f, total, scratch, &mut best));
            }
        }
        best.split.filter(|s| s.gain > parent)
    }

    /// Fills the histograms of the features in `scratch.batch` (feature f's
    /// bins at f·256) over `rows` (row k's codes at `codes[k·p..]`), listing
    /// each feature's occupied bins.
    fn histograms(&self, rows: &[Row], codes: &[u8], scratch: &mut Scratch) {
        let p = self.binned.p;
        let nf = scratch.batch.len();
        for touched in &mut scratch.touched[..nf] {
            touched.clear();
        }
        for (r, row) in rows.iter().zip(codes.chunks_exact(p)) {
            let mut one = Sums::default();
            one.add(r);
            for (f, &j) in scratch.batch.iter().enumerate() {
                let b = row[j];
                let h = &mut scratch.hist[f * 256 + usize::from(b)];
                if h.draws == 0 {
                    scratch.touched[f].push(b);
                }
                h.add_sums(&one);
            }
        }
    }

    /// Scans batch feature f's histogram for the best cut (children with at
    /// least `min_leaf` draws), updating `best`, and zeroes the histogram.
    /// Returns whether the feature varies in the node (it then counts
    /// towards `mtry`). Only the bins the node's rows occupy are visited, so
    /// a small node costs its rows, not the number of bins.
    fn scan(&self, f: usize, total: &Sums, scratch: &mut Scratch, best: &mut Best) -> bool {
        let j = scratch.batch[f];
        let hist = &mut scratch.hist[f * 256..(f + 1) * 256];
        let touched = &mut scratch.touched[f];
        let varies = touched.len() >= 2;
        if varies {
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
                if gain > best.gain {
                    best.gain = gain;
                    best.split = Some(Split {
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
        varies
    }
}

/// The best split so far and the gain to beat.
struct Best {
    split: Option<Split>,
    gain: f64,
}

/// Per-tree working memory of the split search.
pub(crate) struct Scratch {
    rng: ChaCha8Rng,
    order: Vec<usize>,
    /// The features whose histograms are being filled.
    batch: Vec<usize>,
    /// 256 bins per batch feature, all zero between uses.
    hist: Vec<Sums>,
    /// Per batch feature, the bins its rows occupy.
    touched: Vec<Vec<u8>>,
}

/// Moves the rows whose codes (row k's p codes at `codes[k·p..]`) satisfy
/// `left` to the front, their codes with them; returns how many.
fn partition(rows: &mut [Row], codes: &mut [u8], p: usize, left: impl Fn(&[u8]) -> bool) -> usize {
    let mut mid = 0;
    for i in 0..rows.len() {
        if left(&codes[i * p..(i + 1) * p]) {
            if i != mid {
                rows.swap(i, mid);
                let (front, back) = codes.split_at_mut(i * p);
                front[mid * p..(mid + 1) * p].swap_with_slice(&mut back[..p]);
            }
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
        let mut out = [f64::NAN; 3];
        tree.predict_block(&[29, 30, 0], 1, &mut out);
        assert_eq!(out, [0.0, 1.0, 0.0]);
        let root = tree.nodes[0];
        assert!((binned.cuts[0][usize::from(root.bin)] - 29.5).abs() < 1e-12);
    }
}
