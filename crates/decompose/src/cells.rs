//! Sufficient statistics of the linear methods (DESIGN.md, principle 3): moments
//! per cell, a cell being one (group × absorbed level × cluster) combination.
//!
//! Every linear fit the methods need, with or without the group indicator and
//! with the absorbed variable as fixed effects, is recombined from the cells:
//! for fixed effects by Frisch–Waugh–Lovell within each level,
//! X̃'WX̃ = Σ_l (Σwxxᵀ_l − Σwx_l Σwx_lᵀ / Σw_l), and the level intercepts are
//! α_l = (Σwy_l − Σwx_l'b)/Σw_l. A cluster-bootstrap replicate only reweights
//! the cells by their cluster's multiplicity, so it costs O(cells · p²), not
//! O(N · p²), and no N × levels dummy matrix is ever built.

use std::collections::HashMap;

use healthgap_models::linalg::{COLLINEARITY_TOL, ranked_inverse};
use healthgap_models::moments::{ClusterMoments, Moments};
use healthgap_models::{ModelError, ModelSummary, Vcov, VcovKind};

use crate::covariates::{Absorbed, Covariates};
use crate::error::DecomposeError;
use crate::sample::Cluster;

/// Name of the intercept column (column 0 of every cell).
pub const INTERCEPT: &str = "(intercept)";

/// Name of the group indicator 1{comparison}.
pub const INDICATOR: &str = "group";

/// Moments per (group × level × cluster) cell.
#[derive(Debug, Clone)]
pub struct Cells {
    /// Columns: the intercept, then the covariate columns.
    pub names: Vec<String>,
    /// Group of each cell (0 reference, 1 comparison).
    pub group: Vec<u8>,
    /// Absorbed level of each cell (0 without an absorbed variable).
    pub level: Vec<u32>,
    /// Cluster of each cell (0 without clusters).
    pub cluster: Vec<u32>,
    /// Number of absorbed levels (1 without).
    pub levels: usize,
    /// Number of clusters (1 without).
    pub clusters: usize,
    /// The moments of each cell.
    pub moments: Vec<ClusterMoments>,
    /// Rows behind each cell.
    pub rows: Vec<usize>,
}

/// One cell as a data source computed it ([`Cells::from_moments`]).
#[derive(Debug, Clone)]
pub struct CellInput {
    /// 0 reference, 1 comparison.
    pub group: u8,
    /// Absorbed level code (0 without an absorbed variable).
    pub level: u32,
    /// Cluster code (0 without clusters).
    pub cluster: u32,
    /// Rows behind the cell.
    pub rows: usize,
    /// Raw moments over the columns (the intercept first).
    pub moments: ClusterMoments,
}

/// Which rows and columns a fit uses.
#[derive(Debug, Clone)]
pub struct FitSpec {
    /// Include reference (index 0) and comparison (index 1) cells.
    pub groups: [bool; 2],
    /// Prepend the group indicator 1{comparison}.
    pub indicator: bool,
    /// Absorb the levels as fixed effects (the intercept is then dropped).
    pub absorb: bool,
    /// Cell columns used (index 0 is the intercept); the intercept is skipped
    /// when absorbing.
    pub columns: Vec<usize>,
}

impl FitSpec {
    /// The cell columns the fit uses: `columns` without the intercept when
    /// absorbing.
    pub fn fit_columns(&self) -> Vec<usize> {
        self.columns
            .iter()
            .copied()
            .filter(|&j| !(self.absorb && j == 0))
            .collect()
    }
}

/// A weighted least-squares fit from cells.
#[derive(Debug, Clone)]
pub struct CellFit {
    /// Column names (the indicator first when present).
    pub names: Vec<String>,
    /// Coefficients, parallel to `names`.
    pub coef: Vec<f64>,
    /// (X̃'WX̃)⁻¹, row-major.
    pub bread: Vec<f64>,
    /// Level intercepts α_l (NaN where the level has no weight); empty unless absorbing.
    pub alpha: Vec<f64>,
    /// Σw.
    pub w: f64,
    /// Σw e².
    pub rss: f64,
    /// Rows (counted with multiplicity).
    pub n: f64,
}

/// Weighted means of one group.
#[derive(Debug, Clone)]
pub struct GroupMeans {
    /// Σw.
    pub w: f64,
    /// Rows (with multiplicity).
    pub n: f64,
    /// Mean of each cell column (the intercept's is 1).
    pub x: Vec<f64>,
    /// Mean outcome.
    pub y: f64,
    /// Share of the group's weight in each level.
    pub share: Vec<f64>,
}

/// A cell's moments over the columns of a fit: the indicator (constant within
/// the cell) first when `d` = 1, then the chosen moment columns.
struct Aug<'a> {
    m: &'a ClusterMoments,
    cols: &'a [usize],
    d: usize,
    dv: f64,
    p: usize,
}

impl Aug<'_> {
    fn x(&self, i: usize) -> f64 {
        if i < self.d {
            self.dv * self.m.w
        } else {
            self.m.x[self.cols[i - self.d]]
        }
    }

    fn xx(&self, i: usize, j: usize) -> f64 {
        let (d, m, c) = (self.d, self.m, self.cols);
        match (i < d, j < d) {
            (true, true) => self.dv * m.w,
            (true, false) => self.dv * m.x[c[j - d]],
            (false, true) => self.dv * m.x[c[i - d]],
            (false, false) => m.xx[c[i - d] * self.p + c[j - d]],
        }
    }

    fn xy(&self, i: usize) -> f64 {
        if i < self.d {
            self.dv * self.m.y
        } else {
            self.m.xy[self.cols[i - self.d]]
        }
    }
}

impl Cells {
    /// Per-cluster score sums S_g = Σ_{i∈g} w_i x̃_i e_i of a full-sample fit
    /// (x̃ demeaned within level when absorbing), clusters × k row-major:
    /// per cell, Σw x e − x̄_l Σw e with Σw x e = Σwxy − Σwxxᵀb − α_l Σwx.
    pub fn cluster_scores(&self, spec: &FitSpec, fit: &CellFit) -> Vec<f64> {
        let cols = spec.fit_columns();
        let d = usize::from(spec.indicator);
        let k = d + cols.len();
        let p = self.p();
        // Level means of the fit's columns.
        let nl = if spec.absorb { self.levels } else { 1 };
        let mut lw = vec![0.0; nl];
        let mut lx = vec![0.0; nl * k];
        let used = |c: usize| spec.groups[self.group[c] as usize];
        if spec.absorb {
            for (c, m) in self.moments.iter().enumerate().filter(|(c, _)| used(*c)) {
                let aug = Aug {
                    m,
                    cols: &cols,
                    d,
                    dv: f64::from(self.group[c]),
                    p,
                };
                let l = self.level[c] as usize;
                lw[l] += m.w;
                for i in 0..k {
                    lx[l * k + i] += aug.x(i);
                }
            }
        }
        let mut s = vec![0.0; self.clusters * k];
        for (c, m) in self.moments.iter().enumerate().filter(|(c, _)| used(*c)) {
            let aug = Aug {
                m,
                cols: &cols,
                d,
                dv: f64::from(self.group[c]),
                p,
            };
            let l = self.level[c] as usize;
            let alpha = if spec.absorb { fit.alpha[l] } else { 0.0 };
            let xb: f64 = (0..k).map(|i| aug.x(i) * fit.coef[i]).sum();
            let sum_e = m.y - xb - alpha * m.w;
            let g = self.cluster[c] as usize;
            for i in 0..k {
                let xe = aug.xy(i)
                    - (0..k).map(|j| aug.xx(i, j) * fit.coef[j]).sum::<f64>()
                    - alpha * aug.x(i);
                let center = if spec.absorb && lw[l] > 0.0 {
                    lx[l * k + i] / lw[l]
                } else {
                    0.0
                };
                s[g * k + i] += xe - center * sum_e;
            }
        }
        s
    }

    /// Accumulates the cells in one pass. `group`: 0 reference, 1 comparison,
    /// other values are skipped.
    pub fn build(
        y: &[f64],
        group: &[u32],
        covariates: &Covariates,
        weights: Option<&[f64]>,
        cluster: Option<(&[u32], usize)>,
    ) -> Cells {
        let n = y.len();
        let levels = covariates.absorbed.as_ref().map_or(1, |a| a.levels.max(1));
        let clusters = cluster.map_or(1, |c| c.1.max(1));
        let key = |i: usize| -> Option<u64> {
            let g = group[i];
            if g > 1 {
                return None;
            }
            let l = covariates.absorbed.as_ref().map_or(0, |a| a.codes[i]) as u64;
            let c = cluster.map_or(0, |c| c.0[i]) as u64;
            Some((c * levels as u64 + l) * 2 + u64::from(g))
        };
        let mut codes = vec![u32::MAX; n];
        let mut keys: Vec<u64> = Vec::new();
        let size = 2 * levels as u64 * clusters as u64;
        if size <= 1 << 22 {
            // Dense lookup table of cell ids.
            let mut table = vec![u32::MAX; size as usize];
            for (i, code) in codes.iter_mut().enumerate() {
                if let Some(k) = key(i) {
                    let slot = &mut table[k as usize];
                    if *slot == u32::MAX {
                        *slot = keys.len() as u32;
                        keys.push(k);
                    }
                    *code = *slot;
                }
            }
        } else {
            let mut ids: HashMap<u64, u32> = HashMap::new();
            for (i, code) in codes.iter_mut().enumerate() {
                if let Some(k) = key(i) {
                    let next = ids.len() as u32;
                    *code = *ids.entry(k).or_insert_with(|| {
                        keys.push(k);
                        next
                    });
                }
            }
        }
        let intercept = vec![1.0; n];
        let mut columns: Vec<&[f64]> = vec![&intercept];
        columns.extend(covariates.columns.iter().map(|c| c.values.as_slice()));
        let mut names = vec![INTERCEPT.to_string()];
        names.extend(covariates.columns.iter().map(|c| c.name.clone()));
        let m = Moments::from_columns(y, &columns, &names, weights, &codes, keys.len());
        let lv = levels as u64;
        Cells {
            names,
            group: keys.iter().map(|k| (k % 2) as u8).collect(),
            level: keys.iter().map(|k| ((k / 2) % lv) as u32).collect(),
            cluster: keys.iter().map(|k| (k / 2 / lv) as u32).collect(),
            levels,
            clusters,
            moments: m.clusters,
            rows: m.rows,
        }
    }

    /// Cells computed elsewhere (a warehouse's `GROUP BY` of sums of
    /// products): `names` are the columns (the intercept first, whose moments
    /// are Σw, Σwx, Σwy), and each [`CellInput`] one cell's codes and raw
    /// moments. The result is what [`Cells::build`] gives on the same rows,
    /// up to the order of the cells and the rounding of the sums.
    ///
    /// Errors: a first column that is not the intercept, moments of the wrong
    /// size or not finite, a group other than 0 or 1, a level or cluster code
    /// out of range, or a cell without rows.
    pub fn from_moments(
        names: Vec<String>,
        levels: usize,
        clusters: usize,
        cells: Vec<CellInput>,
    ) -> Result<Cells, DecomposeError> {
        let bad = |what: String| Err(DecomposeError::Design(format!("cell moments: {what}")));
        if names.first().map(String::as_str) != Some(INTERCEPT) {
            return bad(format!("the first column must be `{INTERCEPT}`"));
        }
        let p = names.len();
        let (levels, clusters) = (levels.max(1), clusters.max(1));
        let mut out = Cells {
            names,
            group: Vec::with_capacity(cells.len()),
            level: Vec::with_capacity(cells.len()),
            cluster: Vec::with_capacity(cells.len()),
            levels,
            clusters,
            moments: Vec::with_capacity(cells.len()),
            rows: Vec::with_capacity(cells.len()),
        };
        for (i, c) in cells.into_iter().enumerate() {
            let m = &c.moments;
            if m.x.len() != p || m.xx.len() != p * p || m.xy.len() != p {
                return bad(format!(
                    "cell {i} has moments of the wrong size for {p} columns"
                ));
            }
            let finite = [m.w, m.y, m.yy]
                .iter()
                .chain(&m.x)
                .chain(&m.xx)
                .chain(&m.xy)
                .all(|v| v.is_finite());
            if !finite {
                return bad(format!("cell {i} has a moment that is not a finite number"));
            }
            if c.group > 1 || c.level as usize >= levels || c.cluster as usize >= clusters {
                return bad(format!(
                    "cell {i} has group {}, level {} and cluster {} (groups 0-1, {levels} \
                     level(s), {clusters} cluster(s))",
                    c.group, c.level, c.cluster
                ));
            }
            if c.rows == 0 {
                return bad(format!("cell {i} has no rows"));
            }
            out.group.push(c.group);
            out.level.push(c.level);
            out.cluster.push(c.cluster);
            out.rows.push(c.rows);
            out.moments.push(c.moments);
        }
        Ok(out)
    }

    /// Rows of the reference (0) and comparison (1) cells; an error naming
    /// the group and `method` when either has none (as
    /// [`crate::error::group_sizes`] on rows).
    pub fn group_rows(
        &self,
        labels: [&str; 2],
        method: &str,
    ) -> Result<[usize; 2], DecomposeError> {
        let mut n = [0usize; 2];
        for (g, r) in self.group.iter().zip(&self.rows) {
            n[*g as usize] += r;
        }
        match n.iter().position(|&k| k == 0) {
            Some(g) => Err(DecomposeError::NoRows {
                group: labels[g].to_string(),
                method: method.to_string(),
            }),
            None => Ok(n),
        }
    }

    /// Absorbed levels holding rows of one group only: (levels with reference
    /// rows only, levels with comparison rows only).
    pub fn one_group_levels(&self) -> (usize, usize) {
        let mut seen = vec![[false; 2]; self.levels];
        for (l, g) in self.level.iter().zip(&self.group) {
            seen[*l as usize][*g as usize] = true;
        }
        let only = |g: usize| seen.iter().filter(|s| s[g] && !s[1 - g]).count();
        (only(0), only(1))
    }

    /// Number of cell columns (intercept included).
    pub fn p(&self) -> usize {
        self.names.len()
    }

    fn multiplier(&self, cell: usize, mult: Option<&[f64]>) -> f64 {
        mult.map_or(1.0, |m| m[self.cluster[cell] as usize])
    }

    /// Weighted means of group `g` (with cluster multiplicities).
    pub fn means(&self, g: u8, mult: Option<&[f64]>) -> GroupMeans {
        let p = self.p();
        let mut out = GroupMeans {
            w: 0.0,
            n: 0.0,
            x: vec![0.0; p],
            y: 0.0,
            share: vec![0.0; self.levels],
        };
        for (c, m) in self.moments.iter().enumerate() {
            let k = self.multiplier(c, mult);
            if self.group[c] != g || k == 0.0 {
                continue;
            }
            out.w += k * m.w;
            out.n += k * self.rows[c] as f64;
            out.y += k * m.y;
            out.share[self.level[c] as usize] += k * m.w;
            for j in 0..p {
                out.x[j] += k * m.x[j];
            }
        }
        if out.w > 0.0 {
            out.y /= out.w;
            out.x.iter_mut().for_each(|v| *v /= out.w);
            out.share.iter_mut().for_each(|v| *v /= out.w);
        }
        out
    }

    /// Per-level sums of group `g` (with cluster multiplicities): Σw (L),
    /// Σwy (L) and Σwx (L × p, row-major).
    pub fn level_sums(&self, g: u8, mult: Option<&[f64]>) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let p = self.p();
        let mut w = vec![0.0; self.levels];
        let mut y = vec![0.0; self.levels];
        let mut x = vec![0.0; self.levels * p];
        for (c, m) in self.moments.iter().enumerate() {
            let k = self.multiplier(c, mult);
            if self.group[c] != g || k == 0.0 {
                continue;
            }
            let l = self.level[c] as usize;
            w[l] += k * m.w;
            y[l] += k * m.y;
            for j in 0..p {
                x[l * p + j] += k * m.x[j];
            }
        }
        (w, y, x)
    }

    /// Weighted covariance matrix of the cell columns within group `g`
    /// (denominator n − 1 with unit weights), for V(x̄) = S/n.
    pub fn covariance(&self, g: u8) -> Vec<f64> {
        let p = self.p();
        let means = self.means(g, None);
        let mut s = vec![0.0; p * p];
        for (c, m) in self.moments.iter().enumerate() {
            if self.group[c] == g {
                for (a, b) in s.iter_mut().zip(&m.xx) {
                    *a += b;
                }
            }
        }
        let scale = means.n / (means.n - 1.0) / means.w;
        for a in 0..p {
            for b in 0..p {
                s[a * p + b] = (s[a * p + b] / means.w - means.x[a] * means.x[b]) * means.w * scale;
            }
        }
        s
    }

    /// Per-level sums over the cells selected by `spec` of the indicator (when
    /// `spec.indicator`) and the `cols` columns, each cell weighted by
    /// `weight(cell)`, in [`healthgap_models::lmm::LevelSums`]' layout: Σw,
    /// Σwx (k), Σwxxᵀ (k²), Σwxy (k), Σwy, Σwy²; one level when
    /// `by_level` is false. Returns the sums and the rows (× weight).
    pub(crate) fn accumulate(
        &self,
        spec: &FitSpec,
        cols: &[usize],
        by_level: bool,
        weight: impl Fn(usize) -> f64,
    ) -> (Vec<f64>, f64) {
        let d = usize::from(spec.indicator);
        let k = d + cols.len();
        let nl = if by_level { self.levels } else { 1 };
        let stride = 1 + k + k * k + k + 2;
        let mut acc = vec![0.0; nl * stride];
        let mut n = 0.0;
        for (c, m) in self.moments.iter().enumerate() {
            let g = self.group[c];
            let mu = weight(c);
            if !spec.groups[g as usize] || mu == 0.0 {
                continue;
            }
            n += mu * self.rows[c] as f64;
            let l = if by_level { self.level[c] as usize } else { 0 };
            let a = &mut acc[l * stride..(l + 1) * stride];
            let aug = Aug {
                m,
                cols,
                d,
                dv: f64::from(g),
                p: self.p(),
            };
            a[0] += mu * m.w;
            for i in 0..k {
                a[1 + i] += mu * aug.x(i);
                a[1 + k + k * k + i] += mu * aug.xy(i);
                for j in 0..k {
                    a[1 + k + i * k + j] += mu * aug.xx(i, j);
                }
            }
            a[1 + k + k * k + k] += mu * m.y;
            a[1 + k + k * k + k + 1] += mu * m.yy;
        }
        (acc, n)
    }

    /// Weighted least squares over the cells selected by `spec`, each cell
    /// weighted by its cluster's multiplicity.
    pub fn fit(&self, spec: &FitSpec, mult: Option<&[f64]>) -> Result<CellFit, ModelError> {
        let cols = spec.fit_columns();
        let d = usize::from(spec.indicator);
        let k = d + cols.len();
        let nl = if spec.absorb { self.levels } else { 1 };
        let stride = 1 + k + k * k + k + 2;
        let (acc, n) = self.accumulate(spec, &cols, spec.absorb, |c| self.multiplier(c, mult));
        // Within (or plain) cross products.
        let mut xx = vec![0.0; k * k];
        let mut xy = vec![0.0; k];
        let mut yy = 0.0;
        let mut w = 0.0;
        for l in 0..nl {
            let a = &acc[l * stride..(l + 1) * stride];
            let wl = a[0];
            if wl <= 0.0 {
                continue;
            }
            w += wl;
            let sx = &a[1..1 + k];
            let sy = a[1 + k + k * k + k];
            let center = if spec.absorb { 1.0 / wl } else { 0.0 };
            for i in 0..k {
                xy[i] += a[1 + k + k * k + i] - center * sx[i] * sy;
                for j in 0..k {
                    xx[i * k + j] += a[1 + k + i * k + j] - center * sx[i] * sx[j];
                }
            }
            yy += a[1 + k + k * k + k + 1] - center * sy * sy;
        }
        let mut names: Vec<String> = Vec::with_capacity(k);
        if spec.indicator {
            names.push(INDICATOR.to_string());
        }
        names.extend(cols.iter().map(|&j| self.names[j].clone()));
        let ranked = ranked_inverse(&xx, k, COLLINEARITY_TOL);
        if !ranked.dropped.is_empty() || w <= 0.0 {
            return Err(ModelError::Singular {
                rank: ranked.kept.len(),
                ncols: k,
                columns: ranked.dropped.iter().map(|&j| names[j].clone()).collect(),
            });
        }
        let coef: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| ranked.inverse[i * k + j] * xy[j]).sum())
            .collect();
        let bxy: f64 = coef.iter().zip(&xy).map(|(b, v)| b * v).sum();
        let bxxb: f64 = (0..k)
            .map(|i| {
                (0..k)
                    .map(|j| coef[i] * xx[i * k + j] * coef[j])
                    .sum::<f64>()
            })
            .sum();
        let alpha = if spec.absorb {
            (0..nl)
                .map(|l| {
                    let a = &acc[l * stride..(l + 1) * stride];
                    if a[0] <= 0.0 {
                        return f64::NAN;
                    }
                    let sxb: f64 = (0..k).map(|i| a[1 + i] * coef[i]).sum();
                    (a[1 + k + k * k + k] - sxb) / a[0]
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(CellFit {
            names,
            coef,
            bread: ranked.inverse,
            alpha,
            w,
            rss: (yy - 2.0 * bxy + bxxb).max(0.0),
            n,
        })
    }
}

/// A singular fit as an error that names the model, the columns and the fix.
pub fn singular_error(e: ModelError, who: &str) -> DecomposeError {
    match e {
        ModelError::Singular { columns, .. } => {
            let one = columns.len() == 1;
            DecomposeError::Singular {
                model: who.to_string(),
                columns: if columns.is_empty() {
                    "some columns".to_string()
                } else {
                    columns.join(", ")
                },
                has: if one { "has" } else { "have" },
                is: if one { "is" } else { "are" },
            }
        }
        e => DecomposeError::Model(e),
    }
}

/// The summary of a cell fit: CR1 standard errors from the cluster delta
/// method (× (N − 1)/(N − K), which makes it CR1 exactly) or iid ones.
pub fn linear_summary(
    cells: &Cells,
    label: String,
    spec: &FitSpec,
    fit: &CellFit,
    cluster: Option<Cluster<'_>>,
    absorbed: Option<&Absorbed>,
    level: f64,
) -> ModelSummary {
    let k = fit.coef.len();
    let (var, kind, vlabel, df, clusters): (Vec<f64>, VcovKind, String, f64, Option<usize>) =
        match cluster {
            Some(Cluster { name, count: g, .. }) => {
                let scores = cells.cluster_scores(spec, fit);
                let mut meat = vec![0.0; k * k];
                for c in 0..scores.len() / k.max(1) {
                    let row = &scores[c * k..(c + 1) * k];
                    for a in 0..k {
                        for b in 0..k {
                            meat[a * k + b] += row[a] * row[b];
                        }
                    }
                }
                // G counts the clusters present in this fit's rows (a group
                // model sees only its group's hospitals), as pyfixest counts
                // them on its estimation sample.
                let mut present = vec![false; g];
                for (c, &grp) in cells.group.iter().enumerate() {
                    if spec.groups[grp as usize]
                        && let Some(p) = present.get_mut(cells.cluster[c] as usize)
                    {
                        *p = true;
                    }
                }
                let g = present.iter().filter(|p| **p).count().max(2);
                let (gf, nf) = (g as f64, fit.n);
                // K as fixest/pyfixest count it: absorbed levels nested in the
                // clusters count as one parameter, otherwise each level counts.
                let kf = if spec.absorb {
                    let mut home = vec![u32::MAX; cells.levels];
                    let mut nested = true;
                    for (c, &l) in cells.level.iter().enumerate() {
                        let h = &mut home[l as usize];
                        if *h == u32::MAX {
                            *h = cells.cluster[c];
                        } else if *h != cells.cluster[c] {
                            nested = false;
                        }
                    }
                    let used = home.iter().filter(|h| **h != u32::MAX).count();
                    k + if nested { 1 } else { used }
                } else {
                    k
                };
                let factor = gf / (gf - 1.0) * (nf - 1.0) / (nf - kf as f64);
                let v = healthgap_models::linalg::sandwich(&fit.bread, k, k, &meat);
                let v = (0..k).map(|i| v[i * k + i] * factor).collect();
                (v, VcovKind::Cr1, format!("CR1({name})"), gf - 1.0, Some(g))
            }
            None => {
                let s2 = fit.rss / (fit.n - k as f64);
                let v = (0..k).map(|i| s2 * fit.bread[i * k + i]).collect();
                (v, VcovKind::Iid, "iid".into(), fit.n - k as f64, None)
            }
        };
    let mut matrix = vec![0.0; k * k];
    for i in 0..k {
        matrix[i * k + i] = var[i];
    }
    let vcov = Vcov {
        kind,
        matrix,
        df,
        clusters,
        k_total: k,
        label: vlabel,
    };
    ModelSummary {
        label,
        family: "linear".into(),
        n: Some(fit.n.round() as usize),
        clusters,
        vcov: vcov.label.clone(),
        converged: true,
        iterations: 1,
        absorbed: absorbed
            .iter()
            .map(|a| {
                let used: std::collections::BTreeSet<u32> = cells
                    .level
                    .iter()
                    .zip(&cells.group)
                    .filter(|(_, g)| spec.groups[**g as usize])
                    .map(|(l, _)| *l)
                    .collect();
                format!("{} ({} levels)", a.variable, used.len())
            })
            .collect(),
        coefficients: healthgap_models::summary::coefficient_rows(
            &fit.names, &fit.coef, &vcov, level,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::covariates::Column;
    use healthgap_models::{Design, Ols};

    #[allow(clippy::type_complexity)]
    fn data() -> (Vec<f64>, Vec<u32>, Vec<f64>, Vec<f64>, Vec<u32>, Vec<u32>) {
        let n = 400;
        let mut y = Vec::new();
        let mut g = Vec::new();
        let mut x1 = Vec::new();
        let mut x2 = Vec::new();
        let mut h = Vec::new();
        let mut cl = Vec::new();
        for i in 0..n {
            let hosp = (i * 7 % 13) as u32;
            let grp = u32::from(i % 3 == 0);
            let a = ((i * 37) % 17) as f64 / 4.0;
            let b = f64::from(u8::from(i % 5 < 2));
            y.push(
                1.0 + 0.3 * a - 0.7 * b
                    + 0.2 * f64::from(hosp)
                    + 0.5 * f64::from(grp)
                    + ((i * 91) % 23) as f64 / 10.0,
            );
            g.push(if i % 11 == 0 { 2 } else { grp });
            x1.push(a);
            x2.push(b);
            h.push(hosp);
            cl.push(hosp / 2);
        }
        (y, g, x1, x2, h, cl)
    }

    /// Columns x1 (block a) and x2 (block b), with h (13 levels) absorbed or not.
    fn two_columns<'a>(x1: &'a [f64], x2: &'a [f64], h: Option<&'a [u32]>) -> Covariates {
        Covariates {
            columns: vec![
                Column {
                    name: "x1".into(),
                    factor: "a".into(),
                    values: x1.to_vec(),
                },
                Column {
                    name: "x2".into(),
                    factor: "b".into(),
                    values: x2.to_vec(),
                },
            ],
            categoricals: vec![],
            absorbed: h.map(|codes| Absorbed {
                variable: "h".into(),
                factor: "c".into(),
                codes: codes.to_vec(),
                levels: 13,
                labels: (0..13).map(|l| l.to_string()).collect(),
            }),
        }
    }

    #[test]
    fn cell_fits_match_row_level_ols_with_and_without_fixed_effects() {
        let (y, g, x1, x2, h, cl) = data();
        let cov = two_columns(&x1, &x2, Some(&h));
        let w: Vec<f64> = (0..y.len()).map(|i| 1.0 + (i % 4) as f64 / 2.0).collect();
        let cells = Cells::build(&y, &g, &cov, Some(&w), Some((&cl, 7)));
        let keep: Vec<usize> = (0..y.len()).filter(|&i| g[i] <= 1).collect();
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let d: Vec<f64> = keep.iter().map(|&i| f64::from(g[i])).collect();
        let labels: Vec<i64> = keep.iter().map(|&i| i64::from(h[i])).collect();
        // Pooled with indicator and FE.
        let design = Design::from_columns(
            "y",
            pick(&y),
            vec![
                ("group".into(), d.clone()),
                ("x1".into(), pick(&x1)),
                ("x2".into(), pick(&x2)),
            ],
        )
        .unwrap()
        .with_weights(pick(&w))
        .with_absorbed("h", &labels);
        let rows = Ols::new().fit(&design).unwrap();
        let fit = cells
            .fit(
                &FitSpec {
                    groups: [true, true],
                    indicator: true,
                    absorb: true,
                    columns: vec![0, 1, 2],
                },
                None,
            )
            .unwrap();
        for (a, b) in fit.coef.iter().zip(&rows.coef) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
        assert!((fit.rss - rows.rss).abs() < 1e-8 * rows.rss);
        // Intercepts reproduce the group means exactly.
        let mr = cells.means(0, None);
        let fr = cells
            .fit(
                &FitSpec {
                    groups: [true, false],
                    indicator: false,
                    absorb: true,
                    columns: vec![0, 1, 2],
                },
                None,
            )
            .unwrap();
        let pred: f64 = (1..3).map(|j| mr.x[j] * fr.coef[j - 1]).sum::<f64>()
            + mr.share
                .iter()
                .zip(&fr.alpha)
                .filter(|(s, _)| **s > 0.0)
                .map(|(s, a)| s * a)
                .sum::<f64>();
        assert!((pred - mr.y).abs() < 1e-10);
        // Without FE, with intercept, the comparison group alone.
        let keep_c: Vec<usize> = (0..y.len()).filter(|&i| g[i] == 1).collect();
        let pc = |v: &[f64]| keep_c.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let design = Design::from_columns(
            "y",
            pc(&y),
            vec![
                ("1".into(), vec![1.0; keep_c.len()]),
                ("x1".into(), pc(&x1)),
                ("x2".into(), pc(&x2)),
            ],
        )
        .unwrap()
        .with_weights(pc(&w));
        let rows = Ols::new().fit(&design).unwrap();
        let fit = cells
            .fit(
                &FitSpec {
                    groups: [false, true],
                    indicator: false,
                    absorb: false,
                    columns: vec![0, 1, 2],
                },
                None,
            )
            .unwrap();
        for (a, b) in fit.coef.iter().zip(&rows.coef) {
            assert!((a - b).abs() < 1e-10);
        }
    }

    #[test]
    fn cells_from_moments_rebuild_the_cells_and_refuse_bad_input() {
        let (y, g, x1, x2, h, cl) = data();
        let cov = two_columns(&x1, &x2, Some(&h));
        let built = Cells::build(&y, &g, &cov, None, Some((&cl, 7)));
        let input = |c: usize| CellInput {
            group: built.group[c],
            level: built.level[c],
            cluster: built.cluster[c],
            rows: built.rows[c],
            moments: built.moments[c].clone(),
        };
        let inputs: Vec<CellInput> = (0..built.moments.len()).rev().map(input).collect();
        let cells = Cells::from_moments(built.names.clone(), 13, 7, inputs).unwrap();
        let spec = FitSpec {
            groups: [true, true],
            indicator: true,
            absorb: true,
            columns: vec![0, 1, 2],
        };
        let (a, b) = (
            built.fit(&spec, None).unwrap(),
            cells.fit(&spec, None).unwrap(),
        );
        for (u, v) in a.coef.iter().zip(&b.coef) {
            assert!((u - v).abs() < 1e-12);
        }
        assert_eq!(
            built.group_rows(["r", "c"], "m").unwrap(),
            cells.group_rows(["r", "c"], "m").unwrap()
        );
        let bad = |mut c: CellInput, names: Vec<String>| {
            c.moments.w = c.moments.w.max(1.0);
            Cells::from_moments(names, 13, 7, vec![c])
                .unwrap_err()
                .to_string()
        };
        let names = built.names.clone();
        assert!(
            bad(
                CellInput {
                    group: 2,
                    ..input(0)
                },
                names.clone()
            )
            .contains("group 2")
        );
        assert!(
            bad(
                CellInput {
                    cluster: 7,
                    ..input(0)
                },
                names.clone()
            )
            .contains("cluster 7")
        );
        assert!(
            bad(
                CellInput {
                    rows: 0,
                    ..input(0)
                },
                names.clone()
            )
            .contains("no rows")
        );
        let mut nan = input(0);
        nan.moments.xy[1] = f64::NAN;
        assert!(bad(nan, names.clone()).contains("finite"));
        assert!(bad(input(0), names[1..].to_vec()).contains("intercept"));
    }

    #[test]
    fn multiplicity_two_equals_duplicated_clusters() {
        let (y, g, x1, x2, h, cl) = data();
        let cov = two_columns(&x1, &x2, None);
        let cells = Cells::build(&y, &g, &cov, None, Some((&cl, 7)));
        let mut m = vec![1.0; 7];
        m[3] = 2.0;
        m[5] = 0.0;
        // Duplicate cluster 3, drop cluster 5, at the row level.
        let mut w = vec![0.0; y.len()];
        for i in 0..y.len() {
            w[i] = m[cl[i] as usize];
        }
        let reweighted = Cells::build(&y, &g, &cov, Some(&w), None);
        let spec = FitSpec {
            groups: [true, true],
            indicator: true,
            absorb: false,
            columns: vec![0, 1, 2],
        };
        let a = cells.fit(&spec, Some(&m)).unwrap();
        let b = reweighted.fit(&spec, None).unwrap();
        for (u, v) in a.coef.iter().zip(&b.coef) {
            assert!((u - v).abs() < 1e-10);
        }
        let _ = h;
    }

    #[test]
    fn cluster_delta_of_a_cell_fit_is_cr1() {
        let (y, g, x1, x2, _, cl) = data();
        let cov = two_columns(&x1, &x2, None);
        let cells = Cells::build(&y, &g, &cov, None, Some((&cl, 7)));
        let spec = FitSpec {
            groups: [true, true],
            indicator: true,
            absorb: false,
            columns: vec![0, 1, 2],
        };
        let fit = cells.fit(&spec, None).unwrap();
        let v = crate::inference::cluster_delta_variance(7, |m| {
            cells
                .fit(&spec, Some(m))
                .map(|f| f.coef)
                .map_err(|e| e.to_string())
        })
        .unwrap();
        let keep: Vec<usize> = (0..y.len()).filter(|&i| g[i] <= 1).collect();
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let d: Vec<f64> = keep.iter().map(|&i| f64::from(g[i])).collect();
        let labels: Vec<i64> = keep.iter().map(|&i| i64::from(cl[i])).collect();
        let design = Design::from_columns(
            "y",
            pick(&y),
            vec![
                ("group".into(), d),
                ("1".into(), vec![1.0; keep.len()]),
                ("x1".into(), pick(&x1)),
                ("x2".into(), pick(&x2)),
            ],
        )
        .unwrap()
        .with_cluster(&labels);
        let rows = Ols::new().fit(&design).unwrap();
        let cr1 = rows
            .vcov(
                healthgap_models::VcovKind::Cr1,
                "cl",
                healthgap_models::SmallSample::default(),
            )
            .unwrap()
            .se();
        let k = fit.coef.len() as f64;
        let factor = (fit.n - 1.0) / (fit.n - k);
        for (i, se) in cr1.iter().enumerate() {
            let ours = (v[i] * factor).sqrt();
            // Forward differences: relative error ≈ 10⁻⁴ × the cluster's share (1/7 here).
            assert!((ours - se).abs() < 1e-4 * se, "{i}: {ours} vs {se}");
        }
    }

    #[test]
    fn summary_cr1_from_cell_scores_matches_the_row_level_fe_fit() {
        let (y, g, x1, x2, h, cl) = data();
        let cov = two_columns(&x1, &x2, Some(&h));
        let cells = Cells::build(&y, &g, &cov, None, Some((&cl, 7)));
        let spec = FitSpec {
            groups: [true, true],
            indicator: true,
            absorb: true,
            columns: vec![0, 1, 2],
        };
        let fit = cells.fit(&spec, None).unwrap();
        let summary = linear_summary(
            &cells,
            "m".into(),
            &spec,
            &fit,
            Some(Cluster {
                name: "cl",
                codes: &cl,
                count: 7,
            }),
            cov.absorbed.as_ref(),
            0.95,
        );
        let keep: Vec<usize> = (0..y.len()).filter(|&i| g[i] <= 1).collect();
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let d: Vec<f64> = keep.iter().map(|&i| f64::from(g[i])).collect();
        let hl: Vec<i64> = keep.iter().map(|&i| i64::from(h[i])).collect();
        let cll: Vec<i64> = keep.iter().map(|&i| i64::from(cl[i])).collect();
        let design = Design::from_columns(
            "y",
            pick(&y),
            vec![
                ("group".into(), d),
                ("x1".into(), pick(&x1)),
                ("x2".into(), pick(&x2)),
            ],
        )
        .unwrap()
        .with_absorbed("h", &hl)
        .with_cluster(&cll);
        let rows = Ols::new().fit(&design).unwrap();
        let cr1 = rows
            .vcov(
                healthgap_models::VcovKind::Cr1,
                "cl",
                healthgap_models::SmallSample::default(),
            )
            .unwrap()
            .se();
        for (row, se) in summary.coefficients.iter().zip(&cr1) {
            assert!(
                (row.se - se).abs() < 1e-9 * se,
                "{} {} vs {se}",
                row.term,
                row.se
            );
        }
    }
}
