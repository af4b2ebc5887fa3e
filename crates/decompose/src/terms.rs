//! The reported terms of a decomposition and the normalization of categorical
//! variables (Yun 2005; Gardeazabal & Ugidos 2004).
//!
//! Coefficients live in an extended space: the intercept, every design column,
//! one base level per categorical variable and, for an absorbed variable, every
//! level. Normalization replaces the K coefficients of a categorical variable
//! (base at 0) by their deviations from their mean and moves the mean to the
//! intercept; absorbed levels are centred the same way. Output terms are the
//! extended coefficients, with the absorbed levels summed into one term named
//! after the variable.

use crate::cells::INTERCEPT;
use crate::covariates::Covariates;
use crate::inference::Key;

/// The factor name of the intercept's rows.
pub const INTERCEPT_FACTOR: &str = "(intercept)";

/// Where an extended coefficient comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// A design column (0 is the intercept, j the covariate column j − 1).
    Column(usize),
    /// The base level of categorical k.
    Base(usize),
    /// Absorbed level l.
    Level(usize),
}

/// The extended coefficient space and its output terms.
#[derive(Debug, Clone)]
pub struct Terms {
    normalize: bool,
    absorb: bool,
    /// Dummy columns (1-based: 0 is the intercept) of each categorical.
    categoricals: Vec<Vec<usize>>,
    sources: Vec<Source>,
    /// Output term of each extended coefficient.
    term_of: Vec<usize>,
    /// Output terms: (factor, name).
    pub names: Vec<(String, String)>,
    factors: Vec<String>,
}

impl Terms {
    /// The terms of `covariates` (columns counted after an intercept).
    pub fn new(cov: &Covariates, normalize: bool) -> Terms {
        let categoricals = cov
            .categoricals
            .iter()
            .map(|c| c.columns.iter().map(|j| j + 1).collect())
            .collect();
        let mut sources = vec![Source::Column(0)];
        let mut names = vec![(INTERCEPT_FACTOR.to_string(), INTERCEPT.to_string())];
        let mut term_of = vec![0];
        for (j, col) in cov.columns.iter().enumerate() {
            sources.push(Source::Column(j + 1));
            term_of.push(names.len());
            names.push((col.factor.clone(), col.name.clone()));
            if normalize {
                for (k, cat) in cov.categoricals.iter().enumerate() {
                    if cat.columns.last() == Some(&j) {
                        sources.push(Source::Base(k));
                        term_of.push(names.len());
                        names.push((cat.factor.clone(), cat.base.clone()));
                    }
                }
            }
        }
        if let Some(a) = &cov.absorbed {
            let t = names.len();
            names.push((a.factor.clone(), a.variable.clone()));
            for l in 0..a.levels {
                sources.push(Source::Level(l));
                term_of.push(t);
            }
        }
        Terms {
            normalize,
            absorb: cov.absorbed.is_some(),
            categoricals,
            sources,
            term_of,
            names,
            factors: cov.factors(),
        }
    }

    /// Row keys: for each quantity, the total, each block and each term; the
    /// intercept's block and term only for `with_intercept` quantities.
    pub fn keys(&self, quantities: &[&str], with_intercept: &[&str]) -> Vec<Key> {
        let mut keys = Vec::new();
        for q in quantities {
            keys.push((q.to_string(), None, None));
            let mut fs: Vec<&str> = self.factors.iter().map(String::as_str).collect();
            if with_intercept.contains(q) {
                fs.push(INTERCEPT_FACTOR);
            }
            for f in fs {
                keys.push((q.to_string(), Some(f.to_string()), None));
                for (tf, name) in &self.names {
                    if tf == f {
                        keys.push((q.to_string(), Some(f.to_string()), Some(name.clone())));
                    }
                }
            }
        }
        keys
    }

    /// Sums f(e) over the extended coefficients of each output term.
    pub fn per_term(&self, f: &dyn Fn(usize) -> f64) -> Vec<f64> {
        let mut t = vec![0.0; self.names.len()];
        for e in 0..self.sources.len() {
            t[self.term_of[e]] += f(e);
        }
        t
    }

    /// The value of a total, block or term row from per-term values.
    pub fn row_value(&self, key: &Key, per_term: &[f64]) -> f64 {
        match (&key.1, &key.2) {
            (None, _) => per_term.iter().sum(),
            (Some(f), None) => self
                .names
                .iter()
                .zip(per_term)
                .filter(|((tf, _), _)| tf == f)
                .map(|(_, v)| v)
                .sum(),
            (Some(_), Some(t)) => self
                .names
                .iter()
                .position(|(_, n)| n == t)
                .map_or(f64::NAN, |i| per_term[i]),
        }
    }

    /// Extended (normalized) coefficients from b (intercept first) and the
    /// level effects α over the `support` levels.
    pub fn extend_coef(&self, b: &[f64], a: &[f64], support: &[bool]) -> Vec<f64> {
        let mut intercept = b[0];
        let mut base = vec![0.0; self.categoricals.len()];
        if self.normalize {
            for (k, cols) in self.categoricals.iter().enumerate() {
                let mean = cols.iter().map(|&j| b[j]).sum::<f64>() / (cols.len() + 1) as f64;
                base[k] = -mean;
                intercept += mean;
            }
        }
        let mut center = 0.0;
        if self.absorb {
            let mut kept = a.iter().zip(support).filter(|(_, s)| **s).map(|(a, _)| *a);
            center = if self.normalize {
                let (sum, n) = kept.fold((0.0, 0usize), |(s, n), a| (s + a, n + 1));
                sum / n.max(1) as f64
            } else {
                kept.next().unwrap_or(0.0)
            };
            intercept += center;
        }
        let cat_of = |j: usize| self.categoricals.iter().position(|c| c.contains(&j));
        self.sources
            .iter()
            .map(|src| match *src {
                Source::Column(0) => intercept,
                Source::Column(j) => b[j] + cat_of(j).map_or(0.0, |k| base[k]),
                Source::Base(k) => base[k],
                Source::Level(l) if support[l] => a[l] - center,
                Source::Level(_) => 0.0,
            })
            .collect()
    }

    /// Extended means: 1, x̄, base-level shares (1 − Σ dummies), level shares.
    pub fn extend_x(&self, x: &[f64], s: &[f64]) -> Vec<f64> {
        self.sources
            .iter()
            .map(|src| match *src {
                Source::Column(j) => x[j],
                Source::Base(k) => 1.0 - self.categoricals[k].iter().map(|&j| x[j]).sum::<f64>(),
                Source::Level(l) => s[l],
            })
            .collect()
    }
}
