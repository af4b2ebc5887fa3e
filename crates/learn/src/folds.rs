//! Fold assignment for cross-fitting and cross-validation.
//!
//! With clusters (hospitals), whole clusters go to one fold, so a fold's
//! predictions never come from a model that saw its hospitals (the
//! cross-fitting of Chernozhukov et al. 2018 with clustered data): the
//! clusters are shuffled by the seed and each, in that order, joins the fold
//! with the fewest rows so far (ties: the lower fold), which keeps the folds'
//! sizes close while their membership is random. Without clusters, rows are
//! shuffled and dealt round-robin.

use rand::RngExt;

use crate::data::Task;
use crate::error::LearnError;
use crate::seed;

/// The default number of folds.
pub const DEFAULT_FOLDS: usize = 5;

/// A fold (0..k) for every row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folds {
    fold: Vec<u32>,
    k: usize,
}

fn check_k(k: usize) -> Result<(), LearnError> {
    if k < 2 {
        return Err(LearnError::setting("folds", k, "at least 2"));
    }
    Ok(())
}

/// A seeded Fisher–Yates permutation of 0..n.
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = seed::rng(seed, seed::tag::FOLDS);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}

impl Folds {
    /// Folds given by the caller: `fold[i]` in 0..k for every row (e.g. the
    /// rows of a derived task that keep the folds of the patients they come
    /// from).
    pub fn from_assignment(fold: Vec<u32>, k: usize) -> Result<Folds, LearnError> {
        check_k(k)?;
        if let Some(f) = fold.iter().find(|&&f| f as usize >= k) {
            return Err(LearnError::Dimension {
                what: format!("fold {f} of {k} folds"),
            });
        }
        Ok(Folds { fold, k })
    }

    /// k folds of whole clusters; `clusters` holds each row's cluster code.
    pub fn by_cluster(clusters: &[u32], k: usize, seed: u64) -> Result<Folds, LearnError> {
        check_k(k)?;
        // Codes need not be dense (any u32 label): rank them.
        let mut present: Vec<u32> = clusters.to_vec();
        present.sort_unstable();
        present.dedup();
        if present.len() < k {
            return Err(LearnError::TooFewClusters {
                clusters: present.len(),
                folds: k,
            });
        }
        let rank = |c: u32| present.partition_point(|&p| p < c);
        let ranks: Vec<usize> = clusters.iter().map(|&c| rank(c)).collect();
        let mut size = vec![0usize; present.len()];
        for &r in &ranks {
            size[r] += 1;
        }
        let mut load = vec![0usize; k];
        let mut of_cluster = vec![0u32; present.len()];
        for c in permutation(present.len(), seed) {
            let v = (0..k).min_by_key(|&v| (load[v], v)).unwrap_or(0);
            of_cluster[c] = v as u32;
            load[v] += size[c];
        }
        Ok(Folds {
            fold: ranks.iter().map(|&r| of_cluster[r]).collect(),
            k,
        })
    }

    /// k folds of rows.
    pub fn by_row(n: usize, k: usize, seed: u64) -> Result<Folds, LearnError> {
        check_k(k)?;
        if n < k {
            return Err(LearnError::Empty {
                context: Some(format!("{k} folds need at least {k} rows, found {n}")),
            });
        }
        let mut fold = vec![0u32; n];
        for (pos, i) in permutation(n, seed).into_iter().enumerate() {
            fold[i] = (pos % k) as u32;
        }
        Ok(Folds { fold, k })
    }

    /// Cluster folds when the task has clusters, row folds otherwise.
    pub fn for_task(task: &Task<'_>, k: usize, seed: u64) -> Result<Folds, LearnError> {
        match task.clusters() {
            Some(c) => Folds::by_cluster(c, k, seed),
            None => Folds::by_row(task.nrows(), k, seed),
        }
    }

    /// Number of folds.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.fold.len()
    }

    /// The fold of every row.
    pub fn assignment(&self) -> &[u32] {
        &self.fold
    }

    /// Rows in fold v (held out when v is the test fold).
    pub fn test_rows(&self, v: usize) -> Vec<usize> {
        (0..self.fold.len())
            .filter(|&i| self.fold[i] as usize == v)
            .collect()
    }

    /// Rows outside fold v.
    pub fn train_rows(&self, v: usize) -> Vec<usize> {
        (0..self.fold.len())
            .filter(|&i| self.fold[i] as usize != v)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_folds_keep_clusters_whole_and_balanced() {
        // 40 clusters of 1..=40 rows.
        let clusters: Vec<u32> = (0..40u32)
            .flat_map(|c| std::iter::repeat_n(c, c as usize + 1))
            .collect();
        let f = Folds::by_cluster(&clusters, 5, 11).expect("folds");
        for c in 0..40u32 {
            let of: Vec<u32> = (0..clusters.len())
                .filter(|&i| clusters[i] == c)
                .map(|i| f.assignment()[i])
                .collect();
            assert!(of.iter().all(|&v| v == of[0]), "cluster {c} split");
        }
        let sizes: Vec<usize> = (0..5).map(|v| f.test_rows(v).len()).collect();
        let total: usize = sizes.iter().sum();
        assert_eq!(total, clusters.len());
        // 820 rows: each fold within 40 rows (the largest cluster) of 164.
        assert!(sizes.iter().all(|&s| s.abs_diff(164) <= 40), "{sizes:?}");
        assert_eq!(f, Folds::by_cluster(&clusters, 5, 11).expect("folds"));
        assert_ne!(f, Folds::by_cluster(&clusters, 5, 12).expect("folds"));
    }

    #[test]
    fn sparse_cluster_labels_are_fine() {
        let clusters = [u32::MAX, 7, 7, 1_000_000, 3, u32::MAX];
        let f = Folds::by_cluster(&clusters, 2, 1).expect("folds");
        assert_eq!(f.assignment()[0], f.assignment()[5]);
        assert_eq!(f.assignment()[1], f.assignment()[2]);
    }

    #[test]
    fn too_few_clusters_or_folds_are_errors() {
        assert!(matches!(
            Folds::by_cluster(&[0, 0, 1, 1], 5, 1),
            Err(LearnError::TooFewClusters {
                clusters: 2,
                folds: 5
            })
        ));
        assert!(Folds::by_row(10, 1, 1).is_err());
        assert!(Folds::by_row(3, 5, 1).is_err());
    }

    #[test]
    fn row_folds_have_equal_sizes() {
        let f = Folds::by_row(103, 5, 3).expect("folds");
        let sizes: Vec<usize> = (0..5).map(|v| f.test_rows(v).len()).collect();
        assert_eq!(sizes, vec![21, 21, 21, 20, 20]);
        assert_eq!(f.train_rows(0).len(), 82);
    }
}
