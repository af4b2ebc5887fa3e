//! What a learner learns from: a column-major feature matrix, a binary or
//! continuous target, optional non-negative weights and optional cluster
//! codes (for cluster folds inside a learner's own cross-validation).

use crate::error::LearnError;
use crate::warning::LearnWarning;

/// The kind of target, which fixes the prediction (a probability or a mean)
/// and the loss (log loss or squared error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// y ∈ {0, 1}; predictions are P(y = 1 | x).
    Binary,
    /// y ∈ ℝ; predictions are E[y | x].
    Continuous,
}

/// An N × p feature matrix in column-major order (each column contiguous, as
/// `healthgap_models::Design` and faer hold it), with column names.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    data: Vec<f64>,
    nrows: usize,
    names: Vec<String>,
}

impl Matrix {
    /// A matrix from column-major data; `names` gives the number of columns.
    /// Every value must be finite.
    pub fn from_col_major(
        data: Vec<f64>,
        nrows: usize,
        names: Vec<String>,
    ) -> Result<Matrix, LearnError> {
        if Some(data.len()) != nrows.checked_mul(names.len()) {
            return Err(LearnError::Dimension {
                what: format!(
                    "{} values for {nrows} rows × {} columns",
                    data.len(),
                    names.len()
                ),
            });
        }
        let m = Matrix { data, nrows, names };
        m.check_finite()?;
        Ok(m)
    }

    /// A matrix from named columns of equal length.
    pub fn from_columns(columns: Vec<(String, Vec<f64>)>) -> Result<Matrix, LearnError> {
        let nrows = columns.first().map_or(0, |c| c.1.len());
        let mut data = Vec::with_capacity(nrows * columns.len());
        let mut names = Vec::with_capacity(columns.len());
        for (name, col) in columns {
            if col.len() != nrows {
                return Err(LearnError::Dimension {
                    what: format!("column `{name}` has {} rows, the first {nrows}", col.len()),
                });
            }
            data.extend_from_slice(&col);
            names.push(name);
        }
        Matrix::from_col_major(data, nrows, names)
    }

    /// A matrix from rows (row-major input), columns named `x0`, `x1`, ….
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Matrix, LearnError> {
        let p = rows.first().map_or(0, Vec::len);
        let n = rows.len();
        let mut data = vec![0.0; n * p];
        for (i, r) in rows.iter().enumerate() {
            if r.len() != p {
                return Err(LearnError::Dimension {
                    what: format!("row {i} has {} values, the first {p}", r.len()),
                });
            }
            for (j, v) in r.iter().enumerate() {
                data[j * n + i] = *v;
            }
        }
        Matrix::from_col_major(data, n, (0..p).map(|j| format!("x{j}")).collect())
    }

    fn check_finite(&self) -> Result<(), LearnError> {
        for j in 0..self.ncols() {
            if let Some((row, v)) = self
                .column(j)
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite())
            {
                return Err(LearnError::NonFinite {
                    column: self.names[j].clone(),
                    row,
                    value: *v,
                });
            }
        }
        Ok(())
    }

    /// Rows.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Columns.
    pub fn ncols(&self) -> usize {
        self.names.len()
    }

    /// Column names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Column j.
    pub fn column(&self, j: usize) -> &[f64] {
        &self.data[j * self.nrows..(j + 1) * self.nrows]
    }

    /// The value at row i, column j.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[j * self.nrows + i]
    }

    /// All values, column-major.
    pub fn as_col_major(&self) -> &[f64] {
        &self.data
    }

    /// The listed rows, in the order given.
    pub fn select_rows(&self, rows: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(rows.len() * self.ncols());
        for j in 0..self.ncols() {
            let col = self.column(j);
            data.extend(rows.iter().map(|&i| col[i]));
        }
        Matrix {
            data,
            nrows: rows.len(),
            names: self.names.clone(),
        }
    }

    /// Checks that a matrix to predict on has this matrix's columns.
    pub(crate) fn check_columns(&self, expected: usize) -> Result<(), LearnError> {
        if self.ncols() == expected {
            Ok(())
        } else {
            Err(LearnError::Dimension {
                what: format!(
                    "the model was fitted on {expected} columns, asked to predict on {}",
                    self.ncols()
                ),
            })
        }
    }
}

/// A learning problem: borrowed features, target, weights and clusters,
/// checked once when built.
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    x: &'a Matrix,
    y: &'a [f64],
    weights: Option<&'a [f64]>,
    clusters: Option<&'a [u32]>,
    family: Family,
}

impl<'a> Task<'a> {
    /// A task; checks lengths, that y is finite (and 0/1 when binary).
    pub fn new(x: &'a Matrix, y: &'a [f64], family: Family) -> Result<Task<'a>, LearnError> {
        if y.len() != x.nrows() {
            return Err(LearnError::Dimension {
                what: format!("{} targets for {} rows", y.len(), x.nrows()),
            });
        }
        if y.is_empty() {
            return Err(LearnError::Empty { context: None });
        }
        for (row, &v) in y.iter().enumerate() {
            if !v.is_finite() {
                return Err(LearnError::NonFinite {
                    column: "target".into(),
                    row,
                    value: v,
                });
            }
            if family == Family::Binary && v != 0.0 && v != 1.0 {
                return Err(LearnError::NotBinary { row, value: v });
            }
        }
        Ok(Task {
            x,
            y,
            weights: None,
            clusters: None,
            family,
        })
    }

    /// Adds weights (finite, ≥ 0, with a positive total).
    pub fn with_weights(mut self, w: &'a [f64]) -> Result<Task<'a>, LearnError> {
        if w.len() != self.nrows() {
            return Err(LearnError::Dimension {
                what: format!("{} weights for {} rows", w.len(), self.nrows()),
            });
        }
        for (row, &v) in w.iter().enumerate() {
            if !v.is_finite() {
                return Err(LearnError::NonFinite {
                    column: "weights".into(),
                    row,
                    value: v,
                });
            }
            if v < 0.0 {
                return Err(LearnError::BadWeight { row, value: v });
            }
        }
        if w.iter().sum::<f64>() <= 0.0 {
            return Err(LearnError::Empty {
                context: Some("every weight is 0".into()),
            });
        }
        self.weights = Some(w);
        Ok(self)
    }

    /// Adds cluster codes (e.g. hospitals), used to form the folds of a
    /// learner's internal cross-validation.
    pub fn with_clusters(mut self, c: &'a [u32]) -> Result<Task<'a>, LearnError> {
        if c.len() != self.nrows() {
            return Err(LearnError::Dimension {
                what: format!("{} cluster codes for {} rows", c.len(), self.nrows()),
            });
        }
        self.clusters = Some(c);
        Ok(self)
    }

    /// Rows.
    pub fn nrows(&self) -> usize {
        self.y.len()
    }

    /// Features.
    pub fn x(&self) -> &'a Matrix {
        self.x
    }

    /// Target.
    pub fn y(&self) -> &'a [f64] {
        self.y
    }

    /// Weights, if any.
    pub fn weights(&self) -> Option<&'a [f64]> {
        self.weights
    }

    /// Cluster codes, if any.
    pub fn clusters(&self) -> Option<&'a [u32]> {
        self.clusters
    }

    /// Family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Weight of row i (1 without weights).
    pub fn weight(&self, i: usize) -> f64 {
        self.weights.map_or(1.0, |w| w[i])
    }

    /// The weights as a vector (ones without weights).
    pub fn weight_vec(&self) -> Vec<f64> {
        self.weights
            .map_or_else(|| vec![1.0; self.nrows()], <[f64]>::to_vec)
    }

    /// Σ w_i y_i / Σ w_i.
    pub fn weighted_mean(&self) -> f64 {
        let (sw, swy) = (0..self.nrows()).fold((0.0, 0.0), |(a, b), i| {
            let w = self.weight(i);
            (a + w, b + w * self.y[i])
        });
        if sw > 0.0 { swy / sw } else { 0.0 }
    }

    /// The columns with a single value over the rows with positive weight.
    pub fn constant_columns(&self) -> Vec<usize> {
        let live: Vec<usize> = (0..self.nrows())
            .filter(|&i| self.weight(i) > 0.0)
            .collect();
        (0..self.x.ncols())
            .filter(|&j| {
                let col = self.x.column(j);
                live.first()
                    .is_none_or(|&f| live.iter().all(|&i| col[i] == col[f]))
            })
            .collect()
    }

    /// Warnings for the constant columns.
    pub fn constant_column_warnings(&self) -> Vec<LearnWarning> {
        self.constant_columns()
            .into_iter()
            .map(|j| LearnWarning::ConstantColumn {
                column: self.x.names()[j].clone(),
            })
            .collect()
    }

    /// For a binary target with one class among the rows with positive
    /// weight: that class.
    pub fn single_class(&self) -> Option<u8> {
        if self.family != Family::Binary {
            return None;
        }
        let mut seen = [false; 2];
        for i in 0..self.nrows() {
            if self.weight(i) > 0.0 {
                seen[usize::from(self.y[i] > 0.5)] = true;
            }
        }
        match seen {
            [true, false] => Some(0),
            [false, true] => Some(1),
            _ => None,
        }
    }

    /// The listed rows as an owned task.
    pub fn select_rows(&self, rows: &[usize]) -> TaskData {
        TaskData {
            x: self.x.select_rows(rows),
            y: rows.iter().map(|&i| self.y[i]).collect(),
            weights: self.weights.map(|w| rows.iter().map(|&i| w[i]).collect()),
            clusters: self.clusters.map(|c| rows.iter().map(|&i| c[i]).collect()),
            family: self.family,
        }
    }
}

/// An owned task (a fold's training rows).
#[derive(Debug, Clone)]
pub struct TaskData {
    /// Features.
    pub x: Matrix,
    /// Target.
    pub y: Vec<f64>,
    /// Weights.
    pub weights: Option<Vec<f64>>,
    /// Cluster codes.
    pub clusters: Option<Vec<u32>>,
    /// Family.
    pub family: Family,
}

impl TaskData {
    /// The borrowed task. The parts were checked when the source task was built.
    pub fn task(&self) -> Task<'_> {
        Task {
            x: &self.x,
            y: &self.y,
            weights: self.weights.as_deref(),
            clusters: self.clusters.as_deref(),
            family: self.family,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_feature_is_an_error_naming_the_column() {
        let e = Matrix::from_columns(vec![
            ("age".into(), vec![1.0, 2.0]),
            ("adi".into(), vec![1.0, f64::NAN]),
        ]);
        assert!(
            matches!(e, Err(LearnError::NonFinite { ref column, row: 1, .. }) if column == "adi")
        );
    }

    #[test]
    fn binary_target_must_be_zero_or_one() {
        let x = Matrix::from_rows(&[vec![1.0], vec![2.0]]).expect("matrix");
        let e = Task::new(&x, &[0.0, 0.5], Family::Binary);
        assert!(matches!(e, Err(LearnError::NotBinary { row: 1, .. })));
        let e = Task::new(&x, &[0.0, f64::INFINITY], Family::Continuous);
        assert!(matches!(e, Err(LearnError::NonFinite { .. })));
    }

    #[test]
    fn negative_or_nan_weights_are_errors() {
        let x = Matrix::from_rows(&[vec![1.0], vec![2.0]]).expect("matrix");
        let y = [0.0, 1.0];
        let t = Task::new(&x, &y, Family::Binary).expect("task");
        assert!(matches!(
            t.with_weights(&[1.0, -1.0]),
            Err(LearnError::BadWeight { row: 1, .. })
        ));
        assert!(matches!(
            t.with_weights(&[f64::NAN, 1.0]),
            Err(LearnError::NonFinite { row: 0, .. })
        ));
        assert!(matches!(
            t.with_weights(&[0.0, 0.0]),
            Err(LearnError::Empty { .. })
        ));
    }

    #[test]
    fn constant_columns_ignore_zero_weight_rows() {
        let x = Matrix::from_columns(vec![
            ("a".into(), vec![1.0, 1.0, 5.0]),
            ("b".into(), vec![1.0, 2.0, 3.0]),
        ])
        .expect("matrix");
        let y = [0.0, 1.0, 1.0];
        let w = [1.0, 1.0, 0.0];
        let t = Task::new(&x, &y, Family::Binary)
            .expect("task")
            .with_weights(&w)
            .expect("weights");
        assert_eq!(t.constant_columns(), vec![0]);
        assert_eq!(t.single_class(), None);
        let sub = t.select_rows(&[0, 2]);
        assert_eq!(sub.task().single_class(), Some(0));
    }
}
