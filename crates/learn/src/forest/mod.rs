//! The random forest (Breiman 2001): B regression trees, each grown on a
//! bootstrap sample of the rows with `mtry` features tried per split; the
//! forest predicts the average of the trees' leaf means,
//!
//!   f̂(x) = (1/B) Σ_b T_b(x),
//!
//! a probability for a 0/1 target (probability forest, Malley et al. 2012)
//! and a mean otherwise. Row weights enter every sum of the split criterion
//! and the leaf means as w_i × (times drawn); the bootstrap draws rows
//! uniformly.
//!
//! Tree b draws from its own ChaCha8 stream (seed, b), and trees are
//! averaged in index order, so a fit is bit-identical whatever the number of
//! rayon threads. Split search uses binned features (`bins.rs`).
//!
//! Hand-written rather than linfa-trees: linfa's decision trees are
//! classifiers only (no regression tree for length of stay, no leaf
//! probabilities), and its ensemble crate bags classifiers by majority
//! vote; both would bring ndarray 0.16 beside the project's 0.17.

mod bins;
mod tree;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use bins::{Binned, code_rows};
use tree::{Grower, MAX_FEATURES, Row, Tree};

use crate::data::{Family, Matrix, Task};
use crate::error::LearnError;
use crate::learner::{Detail, FitReport, Fitted, Learner, single_class_fit};
use crate::loss::loss;
use crate::seed;

/// Rows per parallel block when predicting.
const PREDICT_BLOCK: usize = 16_384;

/// Random-forest settings (config keys under `forest`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForestSpec {
    /// Trees.
    pub trees: usize,
    /// Features tried per split; unset: ⌊√p⌋ for a binary target, ⌊p/3⌋
    /// for a continuous one (ranger's defaults), at least 1.
    pub mtry: Option<usize>,
    /// Least bootstrap draws in a leaf.
    pub min_leaf: usize,
    /// When set to c > 0, a leaf holds at least ⌈c·√s⌉ draws, s the draws
    /// per tree (and at least `min_leaf`): leaves that grow with the sample,
    /// so that a probability forest's leaves are rarely pure (a pure leaf's
    /// probability is 0 or 1, whose odds are infinite). Unset: 0 (the
    /// disparity reduction's density-ratio classifiers take 1).
    pub min_leaf_sqrt: Option<f64>,
    /// Greatest depth.
    pub max_depth: usize,
    /// Bins per feature for split search (2..=256).
    pub max_bins: usize,
    /// Rows drawn per tree as a fraction of N.
    pub sample_fraction: f64,
    /// At most this many draws per tree (a subsampled forest on large data:
    /// the cost of a tree follows its draws, not N).
    pub max_draws: usize,
    /// Draw with replacement (the bootstrap) or without (subsampling).
    pub replace: bool,
    /// Compute the out-of-bag loss (one more pass over the trees).
    pub oob: bool,
}

impl Default for ForestSpec {
    fn default() -> ForestSpec {
        ForestSpec {
            trees: 200,
            mtry: None,
            min_leaf: 5,
            min_leaf_sqrt: None,
            max_depth: 40,
            max_bins: 255,
            sample_fraction: 1.0,
            max_draws: 50_000,
            replace: true,
            oob: false,
        }
    }
}

impl ForestSpec {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), LearnError> {
        let bad = |key: &str, v: String, what: &str| Err(LearnError::setting(key, v, what));
        if self.trees == 0 {
            return bad("forest.trees", self.trees.to_string(), "at least 1");
        }
        if self.mtry == Some(0) {
            return bad("forest.mtry", "0".into(), "at least 1");
        }
        if self.min_leaf == 0 {
            return bad("forest.min_leaf", "0".into(), "at least 1");
        }
        if let Some(c) = self.min_leaf_sqrt
            && !(c.is_finite() && c >= 0.0)
        {
            return bad(
                "forest.min_leaf_sqrt",
                c.to_string(),
                "finite and at least 0",
            );
        }
        if self.max_draws == 0 {
            return bad("forest.max_draws", "0".into(), "at least 1");
        }
        if self.max_depth == 0 {
            return bad("forest.max_depth", "0".into(), "at least 1");
        }
        if !(2..=256).contains(&self.max_bins) {
            return bad("forest.max_bins", self.max_bins.to_string(), "2 to 256");
        }
        let f = self.sample_fraction;
        if !(f > 0.0 && (f <= 1.0 || self.replace) && f.is_finite()) {
            return bad(
                "forest.sample_fraction",
                f.to_string(),
                "above 0, and at most 1 without replacement",
            );
        }
        Ok(())
    }

    /// Features tried per split for p columns.
    fn mtry_for(&self, family: Family, p: usize) -> usize {
        let default = match family {
            Family::Binary => (p as f64).sqrt().floor() as usize,
            Family::Continuous => p / 3,
        };
        self.mtry.unwrap_or(default).clamp(1, p.max(1))
    }

    /// Draws per tree for n rows: ⌊fraction·n⌉, at most `max_draws` (and
    /// at most n without replacement), at least 1.
    fn draws_for(&self, n: usize) -> usize {
        let draws = ((self.sample_fraction * n as f64).round() as usize).min(self.max_draws);
        if self.replace { draws } else { draws.min(n) }.max(1)
    }

    /// The least draws in a leaf for s draws per tree:
    /// max(min_leaf, ⌈c·√s⌉) with c = `min_leaf_sqrt` (0 when unset).
    pub fn min_leaf_for(&self, draws: usize) -> usize {
        let c = self.min_leaf_sqrt.unwrap_or(0.0);
        let grown = (c * (draws as f64).sqrt()).ceil();
        // Finite and ≥ 0 (validated); saturates for absurd c.
        self.min_leaf.max(grown.min(u32::MAX as f64) as usize)
    }

    /// Tree b's in-bag rows (rows with positive weight drawn at least once),
    /// in index order with their draw counts. With replacement the s draws
    /// are sorted and counted (O(s log s), not O(N): a capped tree on a large
    /// task does not pay for the rows it did not draw).
    fn bag(&self, task: &Task<'_>, b: u64, seed: u64) -> (Vec<Row>, ChaCha8Rng) {
        let n = task.nrows();
        let mut rng = seed::rng(seed, b);
        let draws = self.draws_for(n);
        // (row, times drawn), increasing in row.
        let mut counted: Vec<(usize, u32)> = Vec::new();
        if self.replace {
            let mut picks: Vec<usize> = (0..draws).map(|_| rng.random_range(0..n)).collect();
            picks.sort_unstable();
            for i in picks {
                match counted.last_mut() {
                    Some((last, c)) if *last == i => *c += 1,
                    _ => counted.push((i, 1)),
                }
            }
        } else {
            let mut idx: Vec<usize> = (0..n).collect();
            for t in 0..draws {
                let pick = rng.random_range(t..n);
                idx.swap(t, pick);
            }
            let mut picked = idx[..draws].to_vec();
            picked.sort_unstable();
            counted = picked.into_iter().map(|i| (i, 1)).collect();
        }
        let rows = counted
            .into_iter()
            .filter(|&(i, _)| task.weight(i) > 0.0)
            .map(|(i, c)| Row {
                idx: i as u32,
                draws: c,
                w: task.weight(i) * f64::from(c),
                y: task.y()[i],
            })
            .collect();
        (rows, rng)
    }
}

/// A fitted forest.
#[derive(Debug, Clone)]
pub struct ForestFit {
    trees: Vec<Tree>,
    /// The training cut points of every column; new rows are binned with
    /// them and the trees split on the codes.
    cuts: Vec<Vec<f64>>,
    family: Family,
    ncols: usize,
    oob: Option<Vec<f64>>,
    report: FitReport,
}

impl ForestFit {
    /// Out-of-bag predictions (NaN for rows in every bag), when asked for.
    pub fn oob_predictions(&self) -> Option<&[f64]> {
        self.oob.as_deref()
    }

    /// Averages the trees over the rows of `x`, with the trees selected by
    /// `use_tree(tree, row)`. Rows are binned in blocks (one byte a value,
    /// row-major) and each tree descends the whole block before the next tree
    /// (its top nodes stay in cache); each row still sums its trees in index
    /// order.
    fn average(&self, x: &Matrix, use_tree: impl Fn(usize, usize) -> bool + Sync) -> Vec<f64> {
        let (n, p) = (x.nrows(), x.ncols());
        let mut out = vec![0.0; n];
        out.par_chunks_mut(PREDICT_BLOCK)
            .enumerate()
            .for_each(|(block, chunk)| {
                let first = block * PREDICT_BLOCK;
                let m = chunk.len();
                let rows = code_rows(x, &self.cuts, first, m);
                let mut used = vec![0usize; m];
                let mut leaf = vec![0.0; m];
                for (t, tree) in self.trees.iter().enumerate() {
                    tree.predict_block(&rows, p, &mut leaf);
                    for k in 0..m {
                        if use_tree(t, first + k) {
                            chunk[k] += leaf[k];
                            used[k] += 1;
                        }
                    }
                }
                for (o, u) in chunk.iter_mut().zip(used) {
                    *o = if u > 0 { *o / u as f64 } else { f64::NAN };
                }
            });
        out
    }
}

impl Fitted for ForestFit {
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, LearnError> {
        x.check_columns(self.ncols)?;
        let mut p = self.average(x, |_, _| true);
        if self.family == Family::Binary {
            p.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        }
        Ok(p)
    }

    fn report(&self) -> &FitReport {
        &self.report
    }
}

impl Learner for ForestSpec {
    fn name(&self) -> &'static str {
        "forest"
    }

    fn fit(&self, task: &Task<'_>, seed: u64) -> Result<Box<dyn Fitted>, LearnError> {
        self.validate()?;
        if let Some(fit) = single_class_fit(task, self.name(), "training rows") {
            return Ok(Box::new(fit));
        }
        Ok(Box::new(self.fit_forest(task, seed)?))
    }
}

impl ForestSpec {
    /// Fits the forest (the concrete type, for callers that want the
    /// out-of-bag predictions).
    pub fn fit_forest(&self, task: &Task<'_>, seed: u64) -> Result<ForestFit, LearnError> {
        self.validate()?;
        let n = task.nrows();
        if n > u32::MAX as usize {
            return Err(LearnError::Dimension {
                what: format!("{n} rows; the forest takes at most {} rows", u32::MAX),
            });
        }
        if task.x().ncols() >= MAX_FEATURES {
            return Err(LearnError::Dimension {
                what: format!(
                    "{} columns; the forest takes at most {} columns",
                    task.x().ncols(),
                    MAX_FEATURES - 1
                ),
            });
        }
        let binned = Binned::new(task.x(), self.max_bins);
        let mtry = self.mtry_for(task.family(), task.x().ncols());
        let min_leaf = self.min_leaf_for(self.draws_for(n));
        let grower = Grower {
            binned: &binned,
            mtry,
            min_leaf: u32::try_from(min_leaf).unwrap_or(u32::MAX),
            max_depth: self.max_depth,
        };
        let grown: Vec<(Tree, Vec<u64>)> = (0..self.trees as u64)
            .into_par_iter()
            .map(|b| {
                let (mut rows, rng) = self.bag(task, b, seed);
                let mut in_bag = vec![0u64; if self.oob { n.div_ceil(64) } else { 0 }];
                if self.oob {
                    for r in &rows {
                        in_bag[r.idx as usize / 64] |= 1 << (r.idx % 64);
                    }
                }
                (grower.grow(&mut rows, rng), in_bag)
            })
            .collect();
        let (trees, bags): (Vec<Tree>, Vec<Vec<u64>>) = grown.into_iter().unzip();
        let mean_leaves = trees.iter().map(Tree::leaves).sum::<usize>() as f64 / trees.len() as f64;
        let mut fit = ForestFit {
            trees,
            cuts: binned.cuts,
            family: task.family(),
            ncols: task.x().ncols(),
            oob: None,
            report: FitReport {
                learner: "forest".into(),
                warnings: task.constant_column_warnings(),
                detail: Detail::Forest {
                    trees: self.trees,
                    mtry,
                    min_leaf,
                    mean_leaves,
                    oob_loss: None,
                },
            },
        };
        if self.oob {
            let oob = fit.average(task.x(), |t, i| bags[t][i / 64] & (1 << (i % 64)) == 0);
            let rows: Vec<usize> = (0..n).filter(|&i| oob[i].is_finite()).collect();
            let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            let w = task.weights().map(pick);
            let l = loss(task.family(), &pick(task.y()), &pick(&oob), w.as_deref());
            if let Detail::Forest { oob_loss, .. } = &mut fit.report.detail {
                *oob_loss = l.is_finite().then_some(l);
            }
            fit.oob = Some(oob);
        }
        Ok(fit)
    }
}
