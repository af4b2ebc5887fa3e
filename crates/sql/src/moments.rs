//! Moment queries: per cell (any subset of group × hospital × cluster), the
//! count, Σw, Σw·v and Σw·v_a·v_b (a ≤ b) over the variables v = (x_1, …,
//! x_p, y), on the complete cases of every variable used.
//!
//! Two passes, for numerical accuracy:
//! 1. [`mean_queries`]: one global row of Σw and Σw·v, hence the weighted
//!    means m ([`means_from`]);
//! 2. [`moment_queries`] with those means: the same sums over centred values
//!    c = v − m. [`CellMoments::uncentred`] turns them back into raw moments
//!    exactly (in exact arithmetic).
//!
//! The output columns of a pass are split over as many queries as the
//! dialect's column limit needs; each [`MomentQuery`] lists what its columns
//! mean, and every moment appears in exactly one query. All queries of a pass
//! read the same rows (the same complete-case condition over all variables),
//! group by the same keys and order by them, so their rows line up.

use serde::{Deserialize, Serialize};

use crate::cohort::{CLUSTER, COHORT, CohortQuery, GROUP, HOSPITAL, OUTCOME_PREFIX, WEIGHT};
use crate::dialect::Dialect;
use crate::error::SqlError;

/// Columns kept free in every query beyond the keys, as a safety margin.
pub const COLUMN_MARGIN: usize = 4;

/// A key of the cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Key {
    /// The group label.
    Group,
    /// The hospital.
    Hospital,
    /// The cluster.
    Cluster,
}

impl Key {
    /// The cohort CTE column of the key (also its output column).
    pub fn alias(self) -> &'static str {
        match self {
            Key::Group => GROUP,
            Key::Hospital => HOSPITAL,
            Key::Cluster => CLUSTER,
        }
    }
}

/// A variable of the moments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Var {
    /// The j-th design column of the spec (0-based position in
    /// [`MomentSpec::x`]).
    X(usize),
    /// The outcome.
    Y,
}

impl Var {
    /// The variable's position in v = (x_1, …, x_p, y): j for X(j), p for Y.
    pub fn index(self, p: usize) -> usize {
        match self {
            Var::X(j) => j,
            Var::Y => p,
        }
    }
}

/// What one output column of a moment query holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MomentKind {
    /// `COUNT(*)`: the rows of the cell.
    Count,
    /// Σw (Σ1 unweighted).
    SumW,
    /// Σw·v (centred in the second pass).
    Sum(Var),
    /// Σw·v_a·v_b with a ≤ b in v's order (centred in the second pass).
    Product(Var, Var),
}

/// One output column of a moment query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MomentColumn {
    /// The output column's name.
    pub alias: String,
    /// What it holds.
    pub kind: MomentKind,
}

/// One query and the meaning of its columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MomentQuery {
    /// The SQL text (one statement, no trailing semicolon).
    pub sql: String,
    /// The key columns, first in each row, in this order.
    pub keys: Vec<Key>,
    /// The moment columns, after the keys, in this order.
    pub columns: Vec<MomentColumn>,
}

/// Which moments to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct MomentSpec {
    /// The cell keys (any subset, in output order; none: one global row).
    pub keys: Vec<Key>,
    /// The design columns, as 0-based indices into
    /// [`CohortQuery::design_columns`].
    pub x: Vec<usize>,
    /// The outcome, as a 0-based index into [`CohortQuery::outcomes`].
    pub y: Option<usize>,
    /// A column limit below the dialect's own ([`Dialect::max_columns`]).
    pub max_columns: Option<usize>,
}

impl MomentSpec {
    /// Every design column of `cohort`, the outcome `y`, by `keys`.
    pub fn all(cohort: &CohortQuery, keys: Vec<Key>, y: Option<usize>) -> Result<Self, SqlError> {
        Ok(MomentSpec {
            keys,
            x: (0..cohort.design_columns()?.len()).collect(),
            y,
            max_columns: None,
        })
    }

    /// The number of variables, q = p + (1 with an outcome).
    pub fn q(&self) -> usize {
        self.x.len() + usize::from(self.y.is_some())
    }

    /// The variables in order: X(0), …, X(p−1), then Y.
    pub fn vars(&self) -> Vec<Var> {
        let mut v: Vec<Var> = (0..self.x.len()).map(Var::X).collect();
        if self.y.is_some() {
            v.push(Var::Y);
        }
        v
    }
}

/// The resolved names of a spec's variables in the cohort CTE.
struct Resolved {
    x: Vec<String>,
    y: Option<String>,
    weighted: bool,
}

impl Resolved {
    fn new(cohort: &CohortQuery, spec: &MomentSpec) -> Result<Self, SqlError> {
        let design = cohort.design_columns()?;
        let x = spec
            .x
            .iter()
            .map(|&j| {
                design.get(j).map(|d| d.alias.clone()).ok_or_else(|| {
                    SqlError::Spec(format!(
                        "design column {j} does not exist (the cohort has {})",
                        design.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let y = match spec.y {
            Some(k) if k >= cohort.outcomes.len() => {
                return Err(SqlError::Spec(format!(
                    "outcome {k} does not exist (the cohort has {})",
                    cohort.outcomes.len()
                )));
            }
            Some(k) => Some(format!("{OUTCOME_PREFIX}{}", k + 1)),
            None => None,
        };
        for key in &spec.keys {
            let defined = match key {
                Key::Group => cohort.group.is_some(),
                Key::Hospital => cohort.hospital.is_some(),
                Key::Cluster => cohort.cluster.is_some(),
            };
            if !defined {
                return Err(SqlError::Spec(format!(
                    "the key `{}` is not defined in the cohort",
                    key.alias()
                )));
            }
        }
        Ok(Resolved {
            x,
            y,
            weighted: cohort.weight.is_some(),
        })
    }

    fn name(&self, v: Var) -> &str {
        match v {
            Var::X(j) => &self.x[j],
            Var::Y => self.y.as_deref().unwrap_or(""),
        }
    }

    fn alias(&self, kind: MomentKind) -> String {
        match kind {
            MomentKind::Count => "n".into(),
            MomentKind::SumW => "sw".into(),
            MomentKind::Sum(v) => format!("s_{}", self.name(v)),
            MomentKind::Product(a, b) => format!("p_{}_{}", self.name(a), self.name(b)),
        }
    }
}

/// The moments of one pass, in output order: count, Σw, the sums, then the
/// products (a ≤ b, row by row of the upper triangle).
fn moment_kinds(spec: &MomentSpec, products: bool) -> Vec<MomentKind> {
    let vars = spec.vars();
    let mut out = vec![MomentKind::Count, MomentKind::SumW];
    out.extend(vars.iter().map(|&v| MomentKind::Sum(v)));
    if products {
        for (a, &va) in vars.iter().enumerate() {
            for &vb in &vars[a..] {
                out.push(MomentKind::Product(va, vb));
            }
        }
    }
    out
}

/// Renders one pass: the kinds split into chunks under the column limit.
fn render_pass(
    cohort: &CohortQuery,
    spec: &MomentSpec,
    d: Dialect,
    keys: &[Key],
    kinds: Vec<MomentKind>,
    means: Option<&[f64]>,
) -> Result<Vec<MomentQuery>, SqlError> {
    let r = Resolved::new(cohort, spec)?;
    let limit = spec.max_columns.unwrap_or(usize::MAX).min(d.max_columns());
    let budget = limit.saturating_sub(keys.len() + COLUMN_MARGIN);
    if budget == 0 {
        return Err(SqlError::Spec(format!(
            "a column limit of {limit} leaves no room for moments beside {} key column(s) and a margin of {COLUMN_MARGIN}",
            keys.len()
        )));
    }
    let cte = cohort.render_cte(d)?;
    let value = |v: Var| -> Result<String, SqlError> {
        let col = d.quote_ident(r.name(v))?;
        Ok(match means {
            Some(m) => format!("({col} - {})", d.number(m[v.index(spec.x.len())])?),
            None => col,
        })
    };
    let wsum = |inner: Option<String>| -> Result<String, SqlError> {
        let w = d.quote_ident(WEIGHT)?;
        Ok(match (inner, r.weighted) {
            (None, true) => format!("SUM({w})"),
            (None, false) => "COUNT(*)".to_string(),
            (Some(x), true) => format!("SUM({w} * {x})"),
            (Some(x), false) => format!("SUM({x})"),
        })
    };
    // Complete cases of every variable (and the weight), identical in every
    // query of the pass, so that the rows of the queries line up.
    let mut complete = Vec::new();
    for v in spec.vars() {
        complete.push(format!("{} IS NOT NULL", d.quote_ident(r.name(v))?));
    }
    if r.weighted {
        complete.push(format!("{} IS NOT NULL", d.quote_ident(WEIGHT)?));
    }
    let key_list = keys
        .iter()
        .map(|k| d.quote_ident(k.alias()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for chunk in kinds.chunks(budget) {
        let mut items: Vec<String> = key_list.iter().map(|k| format!("  {k}")).collect();
        let mut columns = Vec::new();
        for &kind in chunk {
            let expr = match kind {
                MomentKind::Count => "COUNT(*)".to_string(),
                MomentKind::SumW => wsum(None)?,
                MomentKind::Sum(v) => wsum(Some(value(v)?))?,
                MomentKind::Product(a, b) => wsum(Some(format!("{} * {}", value(a)?, value(b)?)))?,
            };
            let alias = r.alias(kind);
            items.push(format!("  {expr} AS {}", d.quote_ident(&alias)?));
            columns.push(MomentColumn { alias, kind });
        }
        let mut sql = format!("{cte}\nSELECT\n{}\nFROM {COHORT}", items.join(",\n"));
        if !complete.is_empty() {
            sql.push_str(&format!("\nWHERE {}", complete.join("\n  AND ")));
        }
        if !key_list.is_empty() {
            let keys_sql = key_list.join(", ");
            sql.push_str(&format!("\nGROUP BY {keys_sql}\nORDER BY {keys_sql}"));
        }
        out.push(MomentQuery {
            sql,
            keys: keys.to_vec(),
            columns,
        });
    }
    Ok(out)
}

/// The first pass: one global row (no keys) of the count, Σw and Σw·v for
/// every variable, on the complete cases; split under the column limit.
/// [`means_from`] turns the assembled row into the weighted means.
pub fn mean_queries(
    cohort: &CohortQuery,
    spec: &MomentSpec,
    d: Dialect,
) -> Result<Vec<MomentQuery>, SqlError> {
    render_pass(cohort, spec, d, &[], moment_kinds(spec, false), None)
}

/// The second pass: per cell of `spec.keys`, the count, Σw, Σw·c and
/// Σw·c_a·c_b (a ≤ b) with c = v − m for the given means m (in v's order,
/// length q), or of the raw values v when `means` is `None`; split under the
/// column limit, ordered by the keys.
///
/// Errors: `means` of the wrong length or not finite, an index out of range,
/// a key the cohort does not define, or a column limit too small.
pub fn moment_queries(
    cohort: &CohortQuery,
    spec: &MomentSpec,
    d: Dialect,
    means: Option<&[f64]>,
) -> Result<Vec<MomentQuery>, SqlError> {
    if let Some(m) = means
        && m.len() != spec.q()
    {
        return Err(SqlError::Spec(format!(
            "{} means given for {} variables",
            m.len(),
            spec.q()
        )));
    }
    render_pass(cohort, spec, d, &spec.keys, moment_kinds(spec, true), means)
}

/// The moments of one cell, as assembled from the queries' columns.
#[derive(Debug, Clone, PartialEq)]
pub struct CellMoments {
    /// The rows.
    pub count: f64,
    /// Σw.
    pub sum_w: f64,
    /// Σw·v_a, a = 0..q.
    pub sums: Vec<f64>,
    /// Σw·v_a·v_b for a ≤ b, packed row by row of the upper triangle
    /// (index of (a, b): see [`CellMoments::product`]).
    pub products: Vec<f64>,
}

impl CellMoments {
    /// Zero moments of q variables.
    pub fn zeros(q: usize) -> Self {
        CellMoments {
            count: 0.0,
            sum_w: 0.0,
            sums: vec![0.0; q],
            products: vec![0.0; q * (q + 1) / 2],
        }
    }

    fn q(&self) -> usize {
        self.sums.len()
    }

    fn packed(&self, a: usize, b: usize) -> usize {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        // Rows 0..a of the upper triangle hold q + (q−1) + … + (q−a+1) entries.
        a * self.q() - a * a.saturating_sub(1) / 2 + (b - a)
    }

    /// Σw·v_a·v_b (symmetric in a and b).
    pub fn product(&self, a: usize, b: usize) -> f64 {
        self.products[self.packed(a, b)]
    }

    /// The moments of the variables `vars` (positions among this cell's
    /// variables, in the new order): Σw·v_vars[a] and Σw·v_vars[a]·v_vars[b].
    pub fn select(&self, vars: &[usize]) -> CellMoments {
        let mut out = CellMoments::zeros(vars.len());
        out.count = self.count;
        out.sum_w = self.sum_w;
        for (a, &i) in vars.iter().enumerate() {
            out.sums[a] = self.sums[i];
            for (b, &j) in vars.iter().enumerate().skip(a) {
                let k = out.packed(a, b);
                out.products[k] = self.product(i, j);
            }
        }
        out
    }

    /// Stores the value of one query column; `p` is the number of design
    /// columns (Y is variable p).
    pub fn record(&mut self, kind: MomentKind, value: f64, p: usize) {
        match kind {
            MomentKind::Count => self.count = value,
            MomentKind::SumW => self.sum_w = value,
            MomentKind::Sum(v) => self.sums[v.index(p)] = value,
            MomentKind::Product(a, b) => {
                let i = self.packed(a.index(p), b.index(p));
                self.products[i] = value;
            }
        }
    }

    /// Raw moments from moments of centred values c = v − m:
    ///
    /// Σw·v_a = Σw·c_a + m_a·Σw,
    /// Σw·v_a·v_b = Σw·c_a·c_b + m_b·Σw·c_a + m_a·Σw·c_b + m_a·m_b·Σw.
    pub fn uncentred(&self, means: &[f64]) -> CellMoments {
        let q = self.q();
        let mut out = CellMoments::zeros(q);
        out.count = self.count;
        out.sum_w = self.sum_w;
        for a in 0..q {
            out.sums[a] = self.sums[a] + means[a] * self.sum_w;
        }
        for a in 0..q {
            for b in a..q {
                let i = self.packed(a, b);
                out.products[i] = self.products[i]
                    + means[b] * self.sums[a]
                    + means[a] * self.sums[b]
                    + means[a] * means[b] * self.sum_w;
            }
        }
        out
    }
}

/// The weighted means m_a = Σw·v_a / Σw of the first pass's global row.
///
/// Errors: Σw is zero (no complete cases).
pub fn means_from(global: &CellMoments) -> Result<Vec<f64>, SqlError> {
    if global.sum_w == 0.0 {
        return Err(SqlError::Spec(
            "no complete cases: the sum of weights is zero".into(),
        ));
    }
    Ok(global.sums.iter().map(|s| s / global.sum_w).collect())
}
