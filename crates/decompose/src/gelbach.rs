//! Gelbach (2016) decomposition, METHODS.md §4 (pyfixest `decompose`, Stata
//! `b1x2`): how much of the group coefficient each added block explains.
//!
//! On the reference and comparison rows:
//! - base model y = a + τ_base·D + X_base γ (D = 1{comparison});
//! - full model y = τ_full·D + X_base γ' + Σ_k X_k β_k (+ α_h when the
//!   absorbed hospital_id is among the added blocks; the intercept is then
//!   absorbed);
//! - δ = τ_base − τ_full = Σ_k Γ_k β_k, where Γ_k is the coefficient on D when
//!   the block's fitted contribution X_k β_k is regressed on the base regressors:
//!   Γ = e_D'(X_b'W X_b)⁻¹ X_b'W X_k β_k. For the absorbed block the
//!   contribution is α_{h(i)}, and X_b'W α = Σ_h α_h Σ_{i∈h} w_i x_{b,i} comes
//!   from per-level sums, without a dummy matrix.
//!
//! The split does not depend on the order of the blocks, and the terms sum to δ
//! exactly (the full model's residuals are orthogonal to the base regressors).
//! Everything is recombined from per-cell moments ([`crate::cells`]), so the
//! cluster delta method and the cluster bootstrap cost O(cells · p²) each.
//!
//! **Inference.** With a cluster variable: the cluster delta method (the stacked
//! sandwich of both models and the auxiliary regressions) or the cluster
//! bootstrap. Without: by default (`vce = robust`) the stacked influence
//! functions of the base, full and auxiliary regressions with each row its
//! own unit (`Setup::influence_variance`); with `vce = model` Gelbach's variance
//! conditional on the regressors, V(δ_k) = Γ_k' V(β̂_k) Γ_k with the full
//! model's iid V(β̂) (covariances across blocks included); or the row bootstrap.

use healthgap_models::ModelSummary;

use crate::cells::{CellFit, Cells, FitSpec, linear_summary, singular_error};
use crate::covariates::Covariates;
use crate::error::DecomposeError;
use crate::inference::{
    InferenceSpec, Key, Method, Resampled, Vce, influence_variance, resampled_rows,
};
use crate::result::{MethodOutput, SeMethod};
use crate::sample::{CellSample, Sample};
use crate::shares::{SHARE, ShareSpec, Shares, unstable_shares};
use crate::spec::{Breakdown, CellSource, Context, Designs, Parts, Ran, Role, Spec, cite, joined};

/// `method = "gelbach"`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GelbachSpec {
    /// Base covariates (variables or blocks).
    pub base: Vec<String>,
    /// Added blocks (variables or blocks).
    pub added: Vec<String>,
}

impl Spec for GelbachSpec {
    fn name(&self) -> &'static str {
        "gelbach"
    }

    fn run(
        &self,
        sample: &Sample<'_>,
        designs: &dyn Designs,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        let (base, all) = self.variables(|names| designs.expand(names));
        let cov = designs.covariates(&all)?;
        absorbed_not_in_base(&cov, &base)?;
        let input = GelbachInput {
            sample,
            covariates: &cov,
            base_columns: cov.columns_of(&base).len(),
        };
        let output = gelbach(&input, inference, progress)?;
        Ok(Ran::delta(output, inference, sample.cluster_name()))
    }

    fn run_cells(
        &self,
        sample: &CellSample<'_>,
        source: &dyn CellSource,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        let (base, all) = self.variables(|names| source.expand(names));
        let (cov, cells) = source.cells(&all)?;
        let sample = &sample.with_clusters_of(&cells);
        absorbed_not_in_base(&cov, &base)?;
        let output = gelbach_cells(
            sample,
            &cov,
            cov.columns_of(&base).len(),
            cells,
            inference,
            progress,
        )?;
        Ok(Ran::delta(output, inference, sample.cluster_name()))
    }

    fn needs_rows(&self, _inference: &InferenceSpec) -> Option<DecomposeError> {
        None
    }

    fn title(&self) -> &'static str {
        "Gelbach"
    }

    fn roles(&self) -> Vec<Role> {
        vec![
            Role::covariates("base", &self.base),
            Role::covariates("added", &self.added),
        ]
    }

    fn breakdown(&self) -> Option<Breakdown> {
        Some(Breakdown {
            total: ("base coefficient", SHARES.total),
            parts: Parts::Blocks("explained_change"),
            rest: ("full-model coefficient", "full_coefficient"),
        })
    }

    fn detailed_quantity(&self) -> Option<&'static str> {
        Some("explained_change")
    }

    fn condition(&self) -> String {
        format!(" (given {})", joined(&self.base))
    }

    fn describe(&self, _: &Context, cite: &mut Vec<&'static str>) -> String {
        cite.push(cite::GELBACH);
        format!(
            "Gelbach's (2016) decomposition attributed the change in the group coefficient of a \
             linear model, from a base model adjusting for {} to the full model adding {}, to \
             each added block; the attribution does not depend on the order in which the blocks \
             are added.",
            joined(&self.base),
            joined(&self.added)
        )
    }

    fn model_variance(&self) -> &'static str {
        "Gelbach's (2016) variance conditional on the regressors"
    }
}

impl GelbachSpec {
    /// The base variables, and the base then the added ones (those already
    /// in the base are not added again), by `expand`.
    fn variables(&self, expand: impl Fn(&[String]) -> Vec<String>) -> (Vec<String>, Vec<String>) {
        let base = expand(&self.base);
        let added: Vec<String> = expand(&self.added)
            .into_iter()
            .filter(|v| !base.contains(v))
            .collect();
        let all = base.iter().chain(&added).cloned().collect();
        (base, all)
    }
}

/// The absorbed variable may only be added, never in the base model.
fn absorbed_not_in_base(cov: &Covariates, base: &[String]) -> Result<(), DecomposeError> {
    match cov.absorbed.as_ref().filter(|a| base.contains(&a.variable)) {
        Some(a) => Err(DecomposeError::AbsorbedInBase {
            variable: a.variable.clone(),
        }),
        None => Ok(()),
    }
}

/// Shares of the base coefficient: explained change by block, and the full
/// model's coefficient (what the blocks leave).
const SHARES: ShareSpec = ShareSpec {
    total: "base_coefficient",
    blocks: Some("explained_change"),
    named: &["full_coefficient"],
};

/// Inputs of one Gelbach decomposition.
pub struct GelbachInput<'a> {
    /// The outcome, groups, weights and cluster.
    pub sample: &'a Sample<'a>,
    /// Base covariates followed by the added ones (`base_columns` of them are base);
    /// only added covariates may be absorbed.
    pub covariates: &'a Covariates,
    /// How many leading columns of `covariates` are the base model's.
    pub base_columns: usize,
}

struct Setup {
    cells: Cells,
    base: FitSpec,
    full: FitSpec,
    /// Added cell columns, in design order.
    added: Vec<usize>,
    /// Output terms: (factor, name) — the added columns, then the absorbed one.
    terms: Vec<(String, String)>,
    keys: Vec<Key>,
    shares: Shares,
}

impl Setup {
    fn new(cov: &Covariates, base_columns: usize, cells: Cells) -> Setup {
        let p = cells.p();
        let absorb = cov.absorbed.is_some();
        let base_cols: Vec<usize> = std::iter::once(0).chain(1..=base_columns).collect();
        let added: Vec<usize> = (base_columns + 1..p).collect();
        let mut terms: Vec<(String, String)> = added
            .iter()
            .map(|&j| {
                (
                    cov.columns[j - 1].factor.clone(),
                    cov.columns[j - 1].name.clone(),
                )
            })
            .collect();
        if let Some(a) = &cov.absorbed {
            terms.push((a.factor.clone(), a.variable.clone()));
        }
        let mut factors: Vec<String> = Vec::new();
        for (f, _) in &terms {
            if !factors.contains(f) {
                factors.push(f.clone());
            }
        }
        let q = "explained_change";
        let mut keys: Vec<Key> = vec![
            ("base_coefficient".into(), None, None),
            ("full_coefficient".into(), None, None),
            (q.into(), None, None),
        ];
        for f in &factors {
            keys.push((q.into(), Some(f.clone()), None));
            for (tf, name) in &terms {
                if tf == f {
                    keys.push((q.into(), Some(f.clone()), Some(name.clone())));
                }
            }
        }
        let shares = SHARES.keys(&keys);
        keys.extend(shares);
        let shares = SHARES.positions(&keys);
        Setup {
            base: FitSpec {
                groups: [true, true],
                indicator: true,
                absorb: false,
                columns: base_cols,
            },
            full: FitSpec {
                groups: [true, true],
                indicator: true,
                absorb,
                columns: (0..p).collect(),
            },
            cells,
            added,
            terms,
            keys,
            shares,
        }
    }

    /// X_b'W v for the base regressors [D, 1, X_base] against every cell column
    /// (kb × p, row-major) and against each level's weight (kb × L).
    fn cross(&self, mult: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
        let cells = &self.cells;
        let p = cells.p();
        let b = &self.base.columns;
        let kb = 1 + b.len();
        let nl = cells.levels;
        let mut xv = vec![0.0; kb * p];
        let mut xl = vec![0.0; kb * nl];
        for (c, m) in cells.moments.iter().enumerate() {
            let mu = mult.map_or(1.0, |m| m[cells.cluster[c] as usize]);
            if mu == 0.0 {
                continue;
            }
            let d = f64::from(cells.group[c]);
            let l = cells.level[c] as usize;
            for j in 0..p {
                xv[j] += mu * d * m.x[j];
                for (r, &bc) in b.iter().enumerate() {
                    xv[(r + 1) * p + j] += mu * m.xx[bc * p + j];
                }
            }
            xl[l] += mu * d * m.w;
            for (r, &bc) in b.iter().enumerate() {
                xl[(r + 1) * nl + l] += mu * m.x[bc];
            }
        }
        (xv, xl)
    }

    fn fits(
        &self,
        mult: Option<&[f64]>,
    ) -> Result<(CellFit, CellFit), healthgap_models::ModelError> {
        Ok((
            self.cells.fit(&self.base, mult)?,
            self.cells.fit(&self.full, mult)?,
        ))
    }

    /// Γ_j for each added column and for the absorbed levels: the D row of
    /// (X_b'WX_b)⁻¹ times the cross products.
    fn gammas(&self, base: &CellFit, mult: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
        let p = self.cells.p();
        let nl = self.cells.levels;
        let kb = base.coef.len();
        let (xv, xl) = self.cross(mult);
        let row = &base.bread[..kb];
        let g_cols = (0..p)
            .map(|j| (0..kb).map(|r| row[r] * xv[r * p + j]).sum())
            .collect();
        let g_levels = (0..nl)
            .map(|l| (0..kb).map(|r| row[r] * xl[r * nl + l]).sum())
            .collect();
        (g_cols, g_levels)
    }

    /// Per-term contributions Γ_j β_j (the absorbed term last).
    fn contributions(&self, base: &CellFit, full: &CellFit, mult: Option<&[f64]>) -> Vec<f64> {
        let (g_cols, g_levels) = self.gammas(base, mult);
        // Full-model coefficients: [D, (intercept unless absorbed), columns...].
        let offset = |j: usize| -> usize { if self.full.absorb { j } else { j + 1 } };
        let mut out: Vec<f64> = self
            .added
            .iter()
            .map(|&j| g_cols[j] * full.coef[offset(j)])
            .collect();
        if self.full.absorb {
            out.push(
                full.alpha
                    .iter()
                    .zip(&g_levels)
                    .filter(|(a, _)| a.is_finite())
                    .map(|(a, g)| a * g)
                    .sum(),
            );
        }
        out
    }

    fn values(&self, mult: Option<&[f64]>) -> Result<Vec<f64>, String> {
        let (base, full) = self.fits(mult).map_err(|e| e.to_string())?;
        let parts = self.contributions(&base, &full, mult);
        Ok(self.assemble(base.coef[0], full.coef[0], &parts))
    }

    fn assemble(&self, tau_base: f64, tau_full: f64, parts: &[f64]) -> Vec<f64> {
        let mut out: Vec<f64> = self
            .keys
            .iter()
            .map(|(q, f, t)| match (q.as_str(), f, t) {
                (SHARE, _, _) => f64::NAN,
                ("base_coefficient", _, _) => tau_base,
                ("full_coefficient", _, _) => tau_full,
                (_, None, _) => parts.iter().sum(),
                (_, Some(f), None) => self
                    .terms
                    .iter()
                    .zip(parts)
                    .filter(|((tf, _), _)| tf == f)
                    .map(|(_, v)| v)
                    .sum(),
                (_, Some(_), Some(t)) => self
                    .terms
                    .iter()
                    .position(|(_, n)| n == t)
                    .map_or(f64::NAN, |i| parts[i]),
            })
            .collect();
        self.shares.fill(&mut out);
        out
    }

    /// Share rows of variances or influence coefficients: a share s = P/T has
    /// the influence (IF_P − s·IF_T)/T; `combine(p, t, s, T)` builds it from
    /// the rows of P and T.
    fn share_rows<V: Clone>(
        &self,
        point: &[f64],
        rows: &mut [V],
        combine: impl Fn(&V, &V, f64, f64) -> V,
    ) {
        for (i, p, t) in self.shares.iter() {
            rows[i] = combine(&rows[p], &rows[t], point[i], point[t]);
        }
    }

    /// The added columns (indices into `added`) a key sums over, and whether
    /// it is the base or the full coefficient.
    fn selection(&self, key: &Key) -> (bool, bool, Vec<usize>) {
        let (q, f, t) = key;
        match q.as_str() {
            "base_coefficient" => (true, false, Vec::new()),
            "full_coefficient" => (false, true, Vec::new()),
            _ => {
                let chosen = (0..self.added.len())
                    .filter(|&i| {
                        let (tf, name) = &self.terms[i];
                        match (f, t) {
                            (None, _) => true,
                            (Some(f), None) => tf == f,
                            (Some(_), Some(t)) => name == t,
                        }
                    })
                    .collect();
                (false, false, chosen)
            }
        }
    }

    /// Column of the full model's coefficient of cell column j.
    fn offset(&self, j: usize) -> usize {
        if self.full.absorb { j } else { j + 1 }
    }

    /// The gradient over β_full of a key: Γ_j at each selected column (1 at τ_full).
    fn full_gradient(&self, key: &Key, g_cols: &[f64], kf: usize) -> (bool, Vec<f64>) {
        let (base, full, chosen) = self.selection(key);
        let mut a = vec![0.0; kf];
        if full {
            a[0] = 1.0;
        }
        for i in chosen {
            let j = self.added[i];
            a[self.offset(j)] += g_cols[j];
        }
        (base, a)
    }

    /// Gelbach's variance conditional on X, without clusters (`vce = model`):
    /// every row is a linear combination a'θ of θ = (τ_base, β_full), with
    /// V(τ_base) and V(β_full) iid and independent of each other.
    fn conditional_variance(&self, base: &CellFit, full: &CellFit, point: &[f64]) -> Vec<f64> {
        let (g_cols, _) = self.gammas(base, None);
        let kf = full.coef.len();
        let s2 = |f: &CellFit| f.rss / (f.n - f.coef.len() as f64);
        let v_base = s2(base) * base.bread[0];
        let v_full: Vec<f64> = full.bread.iter().map(|b| b * s2(full)).collect();
        let mut v = self
            .keys
            .iter()
            .map(|key| {
                let (is_base, a) = self.full_gradient(key, &g_cols, kf);
                let quad: f64 = (0..kf)
                    .map(|i| {
                        (0..kf)
                            .map(|j| a[i] * v_full[i * kf + j] * a[j])
                            .sum::<f64>()
                    })
                    .sum();
                let base_part = if is_base { v_base } else { 0.0 };
                base_part + quad
            })
            .collect::<Vec<f64>>();
        // Block parts vary through β_full only, the total is τ_base:
        // independent here.
        self.share_rows(point, &mut v, |vp, vt, s, t| (vp + s * s * vt) / (t * t));
        // τ_full is not independent of τ_base, but its share is 1 − δ/τ_base,
        // with δ = Σ_k Γ_k β_k (through β_full only): its variance is δ's share's.
        let find = |q: &str, t: Option<&str>| {
            self.keys
                .iter()
                .position(|k| k.0 == q && k.1.is_none() && k.2.as_deref() == t)
        };
        if let (Some(i), Some(d), Some(b)) = (
            find(SHARE, Some("full_coefficient")),
            find("explained_change", None),
            find("base_coefficient", None),
        ) {
            let s = point[d] / point[b];
            v[i] = (v[d] + s * s * v[b]) / (point[b] * point[b]);
        }
        v
    }

    /// `vce = model`: the conditional variance, with no variance for the rows
    /// that involve an absorbed block (none is derived) or their shares.
    fn model_variance(&self, base: &CellFit, full: &CellFit, point: &[f64]) -> Vec<f64> {
        let mut v = self.conditional_variance(base, full, point);
        if !self.full.absorb {
            return v;
        }
        let absorbed = self.terms.last();
        for (i, (q, f, t)) in self.keys.iter().enumerate() {
            let touches_absorbed = q == "explained_change"
                && match (f, t) {
                    (None, _) => true,
                    (Some(f), None) => absorbed.is_some_and(|(tf, _)| tf == f),
                    (Some(_), Some(t)) => absorbed.is_some_and(|(_, n)| n == t),
                };
            if touches_absorbed {
                v[i] = f64::NAN;
            }
        }
        // A share of a part without a variance has none either.
        for (i, p, _) in self.shares.iter() {
            if v[p].is_nan() {
                v[i] = f64::NAN;
            }
        }
        v
    }

    /// Variances from the stacked influence functions (no absorbed block):
    /// without clusters every row its own unit, V = n/(n−1) Σ_i IF_i²
    /// (`vce = robust`); with clusters V = G/(G−1) Σ_g (Σ_{i∈g} IF_i)² (the
    /// cluster delta method, exactly). The stacked
    /// influence functions of the base fit, the full fit and the auxiliary
    /// regressions π_j = B_b⁻¹ X_b'W x_j of each added column on the base
    /// regressors (Γ_j = π_j[D]). For a key summing Γ_j β_j over columns S,
    /// IF_i = w_i h_i (Σ_S β_j x_ij − x_bi'Σ_S β_j π_j) + w_i e_fi x_fi'B_f⁻¹a
    /// (+ w_i e_bi h_i for τ_base), with h_i = e_D'B_b⁻¹ x_bi and a the key's
    /// gradient over β_full; IF_i = d'u_i ([`influence_variance`]).
    fn influence_d(&self, base: &CellFit, full: &CellFit, point: &[f64]) -> (usize, Vec<Vec<f64>>) {
        let p = self.cells.p();
        let kb = base.coef.len();
        let kf = full.coef.len();
        let pa = self.added.len();
        let (xv, _) = self.cross(None);
        // π (kb × p): B_b⁻¹ X_b'W x_j for every cell column.
        let pi: Vec<f64> = (0..kb * p)
            .map(|rj| {
                let (r, j) = (rj / p, rj % p);
                (0..kb)
                    .map(|s| base.bread[r * kb + s] * xv[s * p + j])
                    .sum()
            })
            .collect();
        let (g_cols, _) = self.gammas(base, None);
        let dim = pa + kb + kf + 1;
        let mut d: Vec<Vec<f64>> = self
            .keys
            .iter()
            .map(|key| {
                let (is_base, _, chosen) = self.selection(key);
                let (_, a) = self.full_gradient(key, &g_cols, kf);
                let mut dk = vec![0.0; dim];
                for &i in &chosen {
                    let j = self.added[i];
                    let beta = full.coef[self.offset(j)];
                    dk[i] = beta;
                    for r in 0..kb {
                        dk[pa + r] -= beta * pi[r * p + j];
                    }
                }
                for r in 0..kf {
                    dk[pa + kb + r] = (0..kf).map(|s| full.bread[r * kf + s] * a[s]).sum();
                }
                if is_base {
                    dk[dim - 1] = 1.0;
                }
                dk
            })
            .collect();
        self.share_rows(point, &mut d, |dp, dt, s, t| {
            dp.iter().zip(dt).map(|(p, q)| (p - s * q) / t).collect()
        });
        (dim, vec![d.concat()])
    }

    /// The variances of [`Setup::influence_d`] over the rows (each row its
    /// own unit, or summed by cluster).
    fn influence_variance(
        &self,
        input: &GelbachInput<'_>,
        base: &CellFit,
        full: &CellFit,
        point: &[f64],
    ) -> Vec<f64> {
        let (dim, d) = self.influence_d(base, full, point);
        let (kb, kf, pa) = (base.coef.len(), full.coef.len(), self.added.len());
        let cols: Vec<&[f64]> = input
            .covariates
            .columns
            .iter()
            .map(|c| c.values.as_slice())
            .collect();
        let units = input.sample.units();
        influence_variance(
            input.sample.group.len(),
            dim,
            &d,
            units.map(|u| u.1),
            |i, u| {
                let g = input.sample.group[i];
                if g > 1 {
                    return None;
                }
                let w = input.sample.weights.map_or(1.0, |w| w[i]);
                // x_f = (D, 1, columns); x_b is its first kb entries.
                let xf = |r: usize| match r {
                    0 => f64::from(g),
                    1 => 1.0,
                    _ => cols[r - 2][i],
                };
                let dot = |b: &[f64]| -> f64 { b.iter().enumerate().map(|(r, b)| b * xf(r)).sum() };
                let h = dot(&base.bread[..kb]);
                let e_b = input.sample.y[i] - dot(&base.coef);
                let e_f = input.sample.y[i] - dot(&full.coef);
                for (a, &j) in self.added.iter().enumerate() {
                    u[a] = w * h * xf(j + 1);
                }
                for r in 0..kb {
                    u[pa + r] = w * h * xf(r);
                }
                for r in 0..kf {
                    u[pa + kb + r] = w * e_f * xf(r);
                }
                u[dim - 1] = w * e_b * h;
                Some((0, units.map_or(0, |c| c.0[i])))
            },
        )
    }

    /// The cluster delta method of [`Setup::influence_variance`] from the
    /// cells alone. With x_f = (D, 1, x) and S_rs = Σw x_fr x_fs, T_r = Σw y
    /// x_fr over one cell (D constant within it, D² = D), the cell's sum of
    /// u is: Σw h x_fj = Σ_r B_b⁻¹[D, r] S_rj, Σw e_f x_fr = T_r − Σ_s β_s
    /// S_sr, Σw e_b h = Σ_r B_b⁻¹[D, r] (T_r − Σ_s b_s S_sr); then V = G/(G−1)
    /// Σ_g (Σ_{c∈g} d'u_c)².
    fn cell_influence_variance(
        &self,
        base: &CellFit,
        full: &CellFit,
        point: &[f64],
        clusters: usize,
    ) -> Vec<f64> {
        let (dim, d) = self.influence_d(base, full, point);
        let (kb, kf, pa) = (base.coef.len(), full.coef.len(), self.added.len());
        let cells = &self.cells;
        let p = cells.p();
        influence_variance(cells.moments.len(), dim, &d, Some(clusters), |c, u| {
            let m = &cells.moments[c];
            let dv = f64::from(cells.group[c]);
            // x_f index r: 0 is D, r ≥ 1 the cell column r − 1.
            let s = |r: usize, t: usize| -> f64 {
                match (r, t) {
                    (0, 0) => dv * m.w,
                    (0, t) => dv * m.x[t - 1],
                    (r, 0) => dv * m.x[r - 1],
                    (r, t) => m.xx[(r - 1) * p + t - 1],
                }
            };
            let t = |r: usize| if r == 0 { dv * m.y } else { m.xy[r - 1] };
            let h = |col: usize| -> f64 { (0..kb).map(|r| base.bread[r] * s(r, col)).sum() };
            for (a, &j) in self.added.iter().enumerate() {
                u[a] = h(j + 1);
            }
            for r in 0..kb {
                u[pa + r] = h(r);
            }
            for r in 0..kf {
                u[pa + kb + r] = t(r) - (0..kf).map(|q| full.coef[q] * s(q, r)).sum::<f64>();
            }
            u[dim - 1] = (0..kb)
                .map(|r| {
                    base.bread[r] * (t(r) - (0..kb).map(|q| base.coef[q] * s(q, r)).sum::<f64>())
                })
                .sum();
            Some((0, cells.cluster[c]))
        })
    }
}

/// The Gelbach decomposition with its inference, on rows.
pub fn gelbach(
    input: &GelbachInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    let cells = Cells::build(
        input.sample.y,
        input.sample.group,
        input.covariates,
        input.sample.weights,
        input.sample.units(),
    );
    let data = Data {
        sample: CellSample::of(input.sample),
        covariates: input.covariates,
        base_columns: input.base_columns,
        rows: Some(input),
    };
    gelbach_core(&data, cells, inference, progress)
}

/// The Gelbach decomposition from per-cell moments alone (computed where the
/// data live): the same estimates, the cluster delta method from the cells'
/// influence sums ([`Setup::cell_influence_variance`]) or by differences
/// (an absorbed block), and the cluster bootstrap reweighting the cells.
/// `covariates` is the layout; its row values are not read.
///
/// Errors: as [`gelbach`], and [`DecomposeError::NeedsRows`] without a
/// cluster.
pub fn gelbach_cells(
    sample: &CellSample<'_>,
    covariates: &Covariates,
    base_columns: usize,
    cells: Cells,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    sample.require_cluster("the Gelbach decomposition")?;
    let data = Data {
        sample: *sample,
        covariates,
        base_columns,
        rows: None,
    };
    gelbach_core(&data, cells, inference, progress)
}

/// What the decomposition reads besides the cells (see [`gelbach`]).
struct Data<'a> {
    sample: CellSample<'a>,
    covariates: &'a Covariates,
    base_columns: usize,
    rows: Option<&'a GelbachInput<'a>>,
}

/// The decomposition and its inference from `cells`.
fn gelbach_core(
    data: &Data<'_>,
    cells: Cells,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    let sample = &data.sample;
    let labels = sample.labels;
    let mut warnings = Vec::new();
    let n = cells.group_rows(labels, "the Gelbach decomposition")?;
    if data.base_columns == data.covariates.columns.len() && data.covariates.absorbed.is_none() {
        return Err(DecomposeError::NothingAdded);
    }
    let setup = Setup::new(data.covariates, data.base_columns, cells);
    let (base, full) = setup
        .fits(None)
        .map_err(|e| singular_error(e, "full model"))?;
    let parts = setup.contributions(&base, &full, None);
    let point = setup.assemble(base.coef[0], full.coef[0], &parts);
    let level = inference.level;
    let models: Vec<ModelSummary> = [
        ("base model", &setup.base, &base),
        ("full model", &setup.full, &full),
    ]
    .into_iter()
    .map(|(label, spec, fit)| {
        linear_summary(
            &setup.cells,
            format!("{label} ({} + {})", labels[0], labels[1]),
            spec,
            fit,
            sample.cluster,
            data.covariates.absorbed.as_ref().filter(|_| spec.absorb),
            level,
        )
    })
    .collect();
    let stat = |m: &[f64]| setup.values(Some(m));
    let unclustered_delta = inference.method == Method::Delta && sample.cluster.is_none();
    // No robust delta method is derived for absorbed levels without clusters
    // (the model-based one covers the other blocks).
    let absorbed_withheld = (unclustered_delta && setup.full.absorb).then(|| {
        if inference.vce == Vce::Model {
            "no delta-method standard error for the absorbed block without a cluster: \
             set [design] cluster or use the bootstrap"
                .to_string()
        } else {
            "no delta-method standard errors with an absorbed block and no cluster \
             (the robust variance is derived without absorbed levels): set [design] \
             cluster (patients of one hospital are not independent) or use the bootstrap"
                .to_string()
        }
    });
    let resampled = Resampled {
        keys: &setup.keys,
        point: &point,
        spec: inference,
        clusters: sample.cluster.map(|c| c.count),
        group: data.rows.map_or(&[], |r| r.sample.group),
        weights: data.rows.and_then(|r| r.sample.weights),
    };
    let how = resampled.influence_method();
    let model = inference.vce == Vce::Model && sample.cluster.is_none();
    let mut inferred = resampled_rows(
        &resampled,
        stat,
        // The influence functions, by row or summed by cluster (exact); with an
        // absorbed block the cluster delta method differentiates the cells.
        || {
            Ok(if model {
                Some((
                    setup.model_variance(&base, &full, &point),
                    SeMethod::DeltaModel,
                ))
            } else if setup.full.absorb {
                None
            } else if let Some(rows) = data.rows {
                Some((setup.influence_variance(rows, &base, &full, &point), how))
            } else {
                let g = sample.cluster.map_or(1, |c| c.count);
                Some((setup.cell_influence_variance(&base, &full, &point, g), how))
            })
        },
        |w, g| {
            let Some(rows) = data.rows else {
                return Err("the row bootstrap needs the rows".to_string());
            };
            let cells = Cells::build(rows.sample.y, g, rows.covariates, Some(w), None);
            Setup::new(rows.covariates, rows.base_columns, cells).values(None)
        },
        progress,
        &mut warnings,
    )?;
    inferred.withhold(absorbed_withheld, &mut warnings);
    let mut estimates = inferred.rows;
    unstable_shares(&mut estimates, &SHARES, &mut warnings);
    Ok(MethodOutput {
        estimates,
        models,
        warnings,
        replicates_ok: inferred.replicates_ok,
        withheld: inferred.withheld,
        balance: Vec::new(),
        learners: None,
        inference_note: None,
        n: n[0] + n[1],
    })
}
