//! The design handed to an estimator: outcome, regressors (column-major
//! `ndarray`), optional weights, cluster codes and absorbed fixed-effect codes.

use ndarray::{Array1, Array2, ShapeBuilder};

use crate::error::ModelError;

/// An estimation design. `x` is N × p in column-major (Fortran) order, so that
/// each column is contiguous and can be viewed by faer without a copy.
#[derive(Debug, Clone)]
pub struct Design {
    /// Outcome.
    pub y: Array1<f64>,
    /// Regressors (include a constant column explicitly when wanted).
    pub x: Array2<f64>,
    /// Column names of `x`, e.g. `insurance=medicaid`.
    pub names: Vec<String>,
    /// Outcome name.
    pub y_name: String,
    /// Optional positive weights.
    pub weights: Option<Array1<f64>>,
    /// Cluster code of each row (0..n_clusters), for CR1 and the bootstrap.
    pub cluster: Option<Vec<u32>>,
    /// Number of clusters.
    pub n_clusters: usize,
    /// Absorbed fixed effects: codes (0..levels) per FE set.
    pub absorb: Vec<FixedEffect>,
}

/// One absorbed fixed-effect set (e.g. hospital).
#[derive(Debug, Clone)]
pub struct FixedEffect {
    /// Name, e.g. `hospital_id`.
    pub name: String,
    /// Level code of each row.
    pub codes: Vec<u32>,
    /// Number of levels.
    pub levels: usize,
}

impl FixedEffect {
    /// Builds a fixed effect from codes; `levels` is max code + 1.
    pub fn new(name: &str, codes: Vec<u32>) -> FixedEffect {
        let levels = codes.iter().max().map_or(0, |&m| m as usize + 1);
        FixedEffect {
            name: name.to_string(),
            codes,
            levels,
        }
    }

    /// Re-codes arbitrary integer labels to 0..levels in order of first appearance.
    pub fn from_labels(name: &str, labels: &[i64]) -> FixedEffect {
        let mut map = std::collections::HashMap::new();
        let codes = labels
            .iter()
            .map(|l| {
                let next = map.len() as u32;
                *map.entry(*l).or_insert(next)
            })
            .collect();
        FixedEffect {
            name: name.to_string(),
            codes,
            levels: map.len(),
        }
    }
}

impl Design {
    /// A design from row-major-free column vectors.
    pub fn from_columns(
        y_name: &str,
        y: Vec<f64>,
        columns: Vec<(String, Vec<f64>)>,
    ) -> Result<Design, ModelError> {
        let n = y.len();
        let p = columns.len();
        let mut data = Vec::with_capacity(n * p);
        let mut names = Vec::with_capacity(p);
        for (name, col) in columns {
            if col.len() != n {
                return Err(ModelError::Dimension {
                    what: format!("column `{name}` has {} rows, the outcome {n}", col.len()),
                });
            }
            data.extend_from_slice(&col);
            names.push(name);
        }
        let x = Array2::from_shape_vec((n, p).f(), data).map_err(|e| ModelError::Dimension {
            what: e.to_string(),
        })?;
        Ok(Design {
            y: Array1::from(y),
            x,
            names,
            y_name: y_name.to_string(),
            weights: None,
            cluster: None,
            n_clusters: 0,
            absorb: Vec::new(),
        })
    }

    /// Adds weights.
    pub fn with_weights(mut self, w: Vec<f64>) -> Design {
        self.weights = Some(Array1::from(w));
        self
    }

    /// Adds cluster labels (any integers), re-coded to 0..G.
    pub fn with_cluster(mut self, labels: &[i64]) -> Design {
        let fe = FixedEffect::from_labels("cluster", labels);
        self.n_clusters = fe.levels;
        self.cluster = Some(fe.codes);
        self
    }

    /// Adds an absorbed fixed effect from integer labels.
    pub fn with_absorbed(mut self, name: &str, labels: &[i64]) -> Design {
        self.absorb.push(FixedEffect::from_labels(name, labels));
        self
    }

    /// Number of rows.
    pub fn nobs(&self) -> usize {
        self.y.len()
    }

    /// Number of regressor columns.
    pub fn ncols(&self) -> usize {
        self.x.ncols()
    }

    /// Column j as a contiguous slice.
    pub fn column(&self, j: usize) -> &[f64] {
        let n = self.nobs();
        let all = self.x.as_slice_memory_order().unwrap_or(&[]);
        &all[j * n..(j + 1) * n]
    }

    /// Checks shapes, finiteness and weights.
    pub fn validate(&self) -> Result<(), ModelError> {
        let n = self.nobs();
        if n == 0 {
            return Err(ModelError::Empty { context: None });
        }
        if self.x.nrows() != n {
            return Err(ModelError::Dimension {
                what: format!("X has {} rows, y has {n}", self.x.nrows()),
            });
        }
        if self.names.len() != self.ncols() {
            return Err(ModelError::Dimension {
                what: format!("{} names for {} columns", self.names.len(), self.ncols()),
            });
        }
        if self.x.as_slice_memory_order().is_none() || !self.x.t().is_standard_layout() {
            return Err(ModelError::Dimension {
                what: "X must be a contiguous column-major array".into(),
            });
        }
        if let Some(row) = self.y.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite {
                column: self.y_name.clone(),
                row,
            });
        }
        for j in 0..self.ncols() {
            if let Some(row) = self.column(j).iter().position(|v| !v.is_finite()) {
                return Err(ModelError::NonFinite {
                    column: self.names[j].clone(),
                    row,
                });
            }
        }
        if let Some(w) = &self.weights {
            if w.len() != n {
                return Err(ModelError::Dimension {
                    what: format!("{} weights for {n} rows", w.len()),
                });
            }
            if let Some((row, &value)) = w
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v > 0.0))
            {
                return Err(ModelError::BadWeight { row, value });
            }
        }
        if let Some(c) = &self.cluster
            && c.len() != n
        {
            return Err(ModelError::Dimension {
                what: format!("{} cluster codes for {n} rows", c.len()),
            });
        }
        for fe in &self.absorb {
            if fe.codes.len() != n {
                return Err(ModelError::Dimension {
                    what: format!("{} codes of `{}` for {n} rows", fe.codes.len(), fe.name),
                });
            }
        }
        Ok(())
    }

    /// The weight of row i (1 without weights).
    pub fn weight(&self, i: usize) -> f64 {
        self.weights.as_ref().map_or(1.0, |w| w[i])
    }

    /// Keeps only the rows where `keep` is true (all attached vectors follow).
    pub fn select_rows(&self, keep: &[bool]) -> Design {
        let rows: Vec<usize> = (0..self.nobs()).filter(|&i| keep[i]).collect();
        self.take_rows(&rows)
    }

    /// The rows `rows`, in that order and with repetitions (all attached
    /// vectors follow; cluster and absorbed codes are renumbered densely).
    pub fn take_rows(&self, rows: &[usize]) -> Design {
        let pick = |v: &[f64]| -> Vec<f64> { rows.iter().map(|&i| v[i]).collect() };
        let n = rows.len();
        let mut data = Vec::with_capacity(n * self.ncols());
        for j in 0..self.ncols() {
            data.extend(pick(self.column(j)));
        }
        let x = Array2::from_shape_vec((n, self.ncols()).f(), data)
            .unwrap_or_else(|_| Array2::zeros((0, 0)));
        let recode = |codes: &[u32]| -> (Vec<u32>, usize) {
            let labels: Vec<i64> = rows.iter().map(|&i| i64::from(codes[i])).collect();
            let fe = FixedEffect::from_labels("", &labels);
            (fe.codes, fe.levels)
        };
        let (cluster, n_clusters) = match &self.cluster {
            Some(c) => {
                let (codes, g) = recode(c);
                (Some(codes), g)
            }
            None => (None, 0),
        };
        Design {
            y: Array1::from(pick(self.y.as_slice().unwrap_or(&[]))),
            x,
            names: self.names.clone(),
            y_name: self.y_name.clone(),
            weights: self
                .weights
                .as_ref()
                .map(|w| Array1::from(pick(w.as_slice().unwrap_or(&[])))),
            cluster,
            n_clusters,
            absorb: self
                .absorb
                .iter()
                .map(|fe| {
                    let (codes, levels) = recode(&fe.codes);
                    FixedEffect {
                        name: fe.name.clone(),
                        codes,
                        levels,
                    }
                })
                .collect(),
        }
    }
}
