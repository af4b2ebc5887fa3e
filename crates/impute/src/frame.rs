//! What the imputation sees: the variables (borrowed columns, missing cells
//! as NaN or [`MISSING`]), which ones to impute and how, the strata imputed
//! separately (the groups) and the cluster whose means enter as predictors.
//! [`Layout`] turns them into the column-major designs of each stratum: the
//! fixed block (complete columns, shared by every imputation) and the moving
//! block (the columns of the imputed variables, one copy per imputation).

use serde::Serialize;

/// The code of a missing categorical cell.
pub const MISSING: u32 = u32::MAX;

/// A variable's values.
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    /// Numbers; NaN is missing. Binary variables are 0/1 numbers.
    Numeric(&'a [f64]),
    /// Level codes 0..levels (0 the reference); [`MISSING`] is missing.
    Categorical {
        /// Code per row.
        codes: &'a [u32],
        /// Number of levels.
        levels: usize,
    },
}

impl Values<'_> {
    /// Whether row `i` is missing.
    pub fn missing(&self, i: usize) -> bool {
        match self {
            Values::Numeric(x) => x[i].is_nan(),
            Values::Categorical { codes, .. } => codes[i] == MISSING,
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        match self {
            Values::Numeric(x) => x.len(),
            Values::Categorical { codes, .. } => codes.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every observed value is 0 or 1.
    pub fn is_binary(&self) -> bool {
        match self {
            Values::Numeric(x) => x.iter().all(|v| v.is_nan() || *v == 0.0 || *v == 1.0),
            Values::Categorical { .. } => false,
        }
    }
}

/// An imputation model (`[imputation.method]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Pick by type: `pmm` for continuous, `logistic` for binary,
    /// `multinomial` for categorical.
    Auto,
    /// Predictive mean matching (mice "pmm", type-1 matching, k donors).
    Pmm,
    /// Bayesian linear regression draw (mice "norm").
    Norm,
    /// Bayesian logistic regression draw (mice "logreg").
    Logistic,
    /// Bayesian multinomial logit draw (mice "polyreg").
    Multinomial,
}

impl Method {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::Pmm => "pmm",
            Method::Norm => "norm",
            Method::Logistic => "logistic",
            Method::Multinomial => "multinomial",
        }
    }
}

/// One variable of the imputation.
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    /// Name (messages, diagnostics).
    pub name: String,
    /// Values.
    pub values: Values<'a>,
    /// Impute its missing cells (with this model); `None` leaves them, and
    /// then an incomplete variable is not a predictor either.
    pub impute: Option<Method>,
    /// Predict the others (complete variables and imputed ones).
    pub predictor: bool,
    /// With `ClusterTerm::Means`, its cluster means are predictors too
    /// (imputed variables always have theirs).
    pub cluster_mean: bool,
}

/// How the cluster (hospital) enters the imputation models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterTerm {
    /// The cluster means (observed values) of every imputed variable (level
    /// shares of a categorical) and of the variables marked `cluster_mean`
    /// (the outcomes, in the study): the "manifest cluster means" approach to
    /// two-level data (Enders, Mistler & Keller 2016, Psychol Methods 21:222).
    Means,
    /// One dummy per cluster (all but the first): exact within-cluster
    /// imputation, p grows with the clusters.
    FixedEffect,
    /// No cluster term.
    None,
}

/// Everything the chained equations need.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// Variables, in visit order.
    pub variables: Vec<Variable<'a>>,
    /// Stratum code per row (0..count) imputed separately, and the strata's
    /// names; None imputes all rows together.
    pub strata: Option<(&'a [u32], Vec<String>)>,
    /// Cluster code per row (0..count) and the count.
    pub cluster: Option<(&'a [u32], usize)>,
    /// How the cluster enters.
    pub cluster_term: ClusterTerm,
    /// The visit sequence: the incomplete variables named here are visited
    /// first, in this order, then the others in input order (empty: input
    /// order, mice's default left-to-right).
    pub visit: Vec<String>,
}

/// Settings of the chained equations.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Imputations.
    pub m: usize,
    /// Iterations of the chained equations per imputation.
    pub iterations: usize,
    /// Seed; imputation l draws from its own stream (seed, l).
    pub seed: u64,
    /// Donors of predictive mean matching.
    pub donors: usize,
}

/// Where a variable's columns are in a stratum's design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    /// Columns `start..start + len` of the fixed block.
    Fixed(usize, usize),
    /// Columns `start..start + len` of the moving block.
    Moving(usize, usize),
    /// Not in the design.
    Absent,
}

/// One stratum's rows and fixed design.
#[derive(Debug, Clone)]
pub(crate) struct Stratum {
    /// Row indices into the input (ascending).
    pub rows: Vec<u32>,
    /// Fixed columns, column-major rows × `fixed_cols`: the intercept, the
    /// complete predictors, the cluster terms.
    pub fixed: Vec<f64>,
}

/// The designs of every stratum and where each variable sits in them.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Strata.
    pub strata: Vec<Stratum>,
    /// Columns of the fixed block.
    pub fixed_cols: usize,
    /// Columns of the moving block.
    pub moving_cols: usize,
    /// Each variable's block.
    pub blocks: Vec<Block>,
}

/// Design columns of a variable: one for a number, levels − 1 dummies for a
/// categorical.
pub(crate) fn width(values: &Values) -> usize {
    match values {
        Values::Numeric(_) => 1,
        Values::Categorical { levels, .. } => levels.saturating_sub(1),
    }
}

/// Writes a variable's design value at row `i` into `out` (its columns).
pub(crate) fn encode(values: &Values, i: usize, out: &mut [f64]) {
    match values {
        Values::Numeric(x) => out[0] = x[i],
        Values::Categorical { codes, .. } => dummies(codes[i], out),
    }
}

/// The dummies of level `code` against level 0 (all 0 for the reference or
/// a missing code).
pub(crate) fn dummies(code: u32, out: &mut [f64]) {
    out.fill(0.0);
    if code != MISSING && code > 0 {
        out[code as usize - 1] = 1.0;
    }
}

impl Layout {
    /// The designs: the fixed block holds the intercept, the complete
    /// predictors and the cluster terms; the moving block the imputed
    /// variables (their missing cells filled later).
    pub(crate) fn new(input: &Input) -> Layout {
        let n = input.variables.first().map_or(0, |v| v.values.len());
        let imputed = |v: &Variable| v.impute.is_some() && (0..n).any(|i| v.values.missing(i));
        let mut blocks = Vec::with_capacity(input.variables.len());
        let (mut fixed_cols, mut moving_cols) = (1usize, 0usize);
        for v in &input.variables {
            let w = width(&v.values);
            if imputed(v) {
                blocks.push(Block::Moving(moving_cols, w));
                moving_cols += w;
            } else if v.predictor && !(0..n).any(|i| v.values.missing(i)) && w > 0 {
                blocks.push(Block::Fixed(fixed_cols, w));
                fixed_cols += w;
            } else {
                blocks.push(Block::Absent);
            }
        }
        let cluster_cols = cluster_columns(input, &blocks, n);
        let strata_rows: Vec<Vec<u32>> = match &input.strata {
            Some((codes, names)) => {
                let mut rows = vec![Vec::new(); names.len()];
                for (i, &s) in codes.iter().enumerate() {
                    if let Some(r) = rows.get_mut(s as usize) {
                        r.push(i as u32);
                    }
                }
                rows
            }
            None => vec![(0..n as u32).collect()],
        };
        let total_fixed = fixed_cols + cluster_cols.len();
        let strata = strata_rows
            .into_iter()
            .map(|rows| {
                let ns = rows.len();
                let mut fixed = vec![0.0; ns * total_fixed];
                fixed[..ns].fill(1.0);
                let widest = input.variables.iter().map(|v| width(&v.values)).max();
                let mut buf = vec![0.0; widest.unwrap_or(1).max(1)];
                for (v, block) in input.variables.iter().zip(&blocks) {
                    if let Block::Fixed(start, w) = *block {
                        for (r, &i) in rows.iter().enumerate() {
                            encode(&v.values, i as usize, &mut buf[..w]);
                            for c in 0..w {
                                fixed[(start + c) * ns + r] = buf[c];
                            }
                        }
                    }
                }
                for (c, column) in cluster_cols.iter().enumerate() {
                    for (r, &i) in rows.iter().enumerate() {
                        fixed[(fixed_cols + c) * ns + r] = column[i as usize];
                    }
                }
                Stratum { rows, fixed }
            })
            .collect();
        Layout {
            strata,
            fixed_cols: total_fixed,
            moving_cols,
            blocks,
        }
    }
}

/// The cluster terms, one full-length column each: the observed cluster
/// means of the imputed variables (level shares of categoricals) and of the
/// variables marked `cluster_mean` (`Means`), or dummies (`FixedEffect`).
fn cluster_columns(input: &Input, blocks: &[Block], n: usize) -> Vec<Vec<f64>> {
    let Some((codes, count)) = input.cluster else {
        return Vec::new();
    };
    match input.cluster_term {
        ClusterTerm::None => Vec::new(),
        ClusterTerm::FixedEffect => (1..count as u32)
            .map(|g| codes.iter().map(|&c| f64::from(u8::from(c == g))).collect())
            .collect(),
        ClusterTerm::Means => {
            let mut out = Vec::new();
            for (v, block) in input.variables.iter().zip(blocks) {
                if *block == Block::Absent {
                    continue;
                }
                let w = width(&v.values);
                let moving = matches!(block, Block::Moving(..));
                if !moving && !v.cluster_mean {
                    continue;
                }
                let mut sums = vec![vec![0.0; count]; w];
                let mut counts = vec![0.0; count];
                let mut overall = vec![0.0; w];
                let mut buf = vec![0.0; w];
                let mut observed = 0.0f64;
                for i in 0..n {
                    if v.values.missing(i) {
                        continue;
                    }
                    encode(&v.values, i, &mut buf);
                    let g = codes[i] as usize;
                    counts[g] += 1.0;
                    observed += 1.0;
                    for c in 0..w {
                        sums[c][g] += buf[c];
                        overall[c] += buf[c];
                    }
                }
                for c in 0..w {
                    let fallback = overall[c] / observed.max(1.0);
                    let means: Vec<f64> = (0..count)
                        .map(|g| {
                            if counts[g] > 0.0 {
                                sums[c][g] / counts[g]
                            } else {
                                fallback
                            }
                        })
                        .collect();
                    out.push(codes.iter().map(|&g| means[g as usize]).collect());
                }
            }
            out
        }
    }
}
