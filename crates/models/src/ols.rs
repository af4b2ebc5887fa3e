//! Ordinary and weighted least squares, with absorbed fixed effects.
//!
//! b = (X'WX)⁻¹ X'Wy (Cholesky of the normal equations with a rank check). With
//! absorbed fixed effects, y and X are first replaced by their within-FE
//! residuals (Frisch–Waugh–Lovell), so b is the FE estimator and no dummy matrix
//! is built.

use crate::design::Design;
use crate::error::ModelError;
use crate::fe::{Demeaner, demean_columns, non_singletons};
use crate::linalg::{COLLINEARITY_TOL, cross, gram, ranked_inverse};

/// What to do with collinear columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Collinear {
    /// Drop later collinear columns, report them by name (R's NA coefficients).
    #[default]
    Drop,
    /// Refuse to fit.
    Refuse,
}

/// OLS/WLS specification.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ols {
    collinear: Collinear,
    keep_singletons: bool,
}

/// A fitted linear model.
#[derive(Debug, Clone)]
pub struct OlsFit {
    /// The design actually fitted: demeaned when FE are absorbed, without
    /// dropped columns and rows.
    pub work: Design,
    /// Names of the estimated coefficients.
    pub names: Vec<String>,
    /// Coefficients.
    pub coef: Vec<f64>,
    /// (X'WX)⁻¹ of the kept columns (row-major).
    pub bread: Vec<f64>,
    /// Residuals y − Xb (of the demeaned model when FE are absorbed).
    pub residuals: Vec<f64>,
    /// Σ w e².
    pub rss: f64,
    /// Columns dropped as collinear.
    pub dropped: Vec<String>,
    /// Rows dropped as FE singletons.
    pub singletons: usize,
    /// Alternating-projection sweeps (0 without FE, 1 for one set).
    pub demean_iterations: usize,
}

impl Ols {
    /// Default: drop collinear columns, drop FE singletons.
    pub fn new() -> Ols {
        Ols::default()
    }

    /// Refuse collinear designs instead of dropping columns.
    pub fn refuse_collinear(mut self) -> Ols {
        self.collinear = Collinear::Refuse;
        self
    }

    /// Keep FE singletons (they carry no information about b but change n).
    pub fn keep_singletons(mut self) -> Ols {
        self.keep_singletons = true;
        self
    }

    /// Fits the model.
    pub fn fit(&self, design: &Design) -> Result<OlsFit, ModelError> {
        design.validate()?;
        let mut singletons = 0;
        let owned;
        let design = if !design.absorb.is_empty() && !self.keep_singletons {
            let keep = non_singletons(&design.absorb);
            singletons = keep.iter().filter(|k| !**k).count();
            if singletons > 0 {
                owned = design.select_rows(&keep);
                &owned
            } else {
                design
            }
        } else {
            design
        };
        if design.nobs() == 0 {
            return Err(ModelError::Empty {
                context: Some("every row is a fixed-effect singleton".into()),
            });
        }
        let (work, demean_iterations) = within(design)?;
        fit_work(work, self.collinear, singletons, demean_iterations)
    }
}

/// The within-transformed design (or a copy when nothing is absorbed).
pub fn within(design: &Design) -> Result<(Design, usize), ModelError> {
    if design.absorb.is_empty() {
        return Ok((design.clone(), 0));
    }
    let w = design.weights.as_ref().and_then(|w| w.as_slice());
    let dm = Demeaner::new(&design.absorb, w);
    let (y, iters_y) = dm.demean(design.y.as_slice().unwrap_or(&[]))?;
    let n = design.nobs();
    let (xd, iters_x) = demean_columns(
        &dm,
        design.x.as_slice_memory_order().unwrap_or(&[]),
        n,
        design.ncols(),
    )?;
    // Build the transformed design without copying the original X.
    let x = ndarray::Array2::from_shape_vec(ndarray::ShapeBuilder::f((n, design.ncols())), xd)
        .map_err(|e| ModelError::Dimension {
            what: e.to_string(),
        })?;
    let work = Design {
        y: y.into(),
        x,
        names: design.names.clone(),
        y_name: design.y_name.clone(),
        weights: design.weights.clone(),
        cluster: design.cluster.clone(),
        n_clusters: design.n_clusters,
        absorb: design.absorb.clone(),
    };
    Ok((work, iters_y.max(iters_x)))
}

fn fit_work(
    work: Design,
    collinear: Collinear,
    singletons: usize,
    demean_iterations: usize,
) -> Result<OlsFit, ModelError> {
    let n = work.nobs();
    let p = work.ncols();
    let weights: Option<Vec<f64>> = work.weights.as_ref().map(|w| w.to_vec());
    let w = weights.as_deref();
    let y: Vec<f64> = work.y.to_vec();
    let xtx = gram(work.x.as_slice_memory_order().unwrap_or(&[]), n, p, w);
    let ranked = ranked_inverse(&xtx, p, COLLINEARITY_TOL);
    let dropped: Vec<String> = ranked
        .dropped
        .iter()
        .map(|&j| work.names[j].clone())
        .collect();
    if !dropped.is_empty() && (collinear == Collinear::Refuse || ranked.kept.is_empty()) {
        return Err(ModelError::Singular {
            rank: ranked.kept.len(),
            ncols: p,
            columns: dropped,
        });
    }
    let work = if dropped.is_empty() {
        work
    } else {
        let mut data = Vec::with_capacity(n * ranked.kept.len());
        for &j in &ranked.kept {
            data.extend_from_slice(work.column(j));
        }
        let mut d = work.clone();
        d.x =
            ndarray::Array2::from_shape_vec(ndarray::ShapeBuilder::f((n, ranked.kept.len())), data)
                .map_err(|e| ModelError::Dimension {
                    what: e.to_string(),
                })?;
        d.names = ranked.kept.iter().map(|&j| work.names[j].clone()).collect();
        d
    };
    let k = work.ncols();
    let x = work.x.as_slice_memory_order().unwrap_or(&[]);
    let xty = cross(x, n, k, w, &y);
    let coef: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| ranked.inverse[i * k + j] * xty[j]).sum())
        .collect();
    let mut residuals = y.clone();
    for j in 0..k {
        let col = &x[j * n..(j + 1) * n];
        let b = coef[j];
        for (r, v) in residuals.iter_mut().zip(col) {
            *r -= b * v;
        }
    }
    let rss = match w {
        None => residuals.iter().map(|e| e * e).sum(),
        Some(w) => residuals.iter().zip(w).map(|(e, wi)| wi * e * e).sum(),
    };
    Ok(OlsFit {
        names: work.names.clone(),
        work,
        coef,
        bread: ranked.inverse,
        residuals,
        rss,
        dropped,
        singletons,
        demean_iterations,
    })
}

impl OlsFit {
    /// Number of observations used.
    pub fn nobs(&self) -> usize {
        self.work.nobs()
    }

    /// Number of estimated coefficients (excluding absorbed FE).
    pub fn k(&self) -> usize {
        self.coef.len()
    }

    /// Coefficient by name.
    pub fn coefficient(&self, name: &str) -> Option<f64> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|j| self.coef[j])
    }
}
