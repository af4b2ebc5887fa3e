//! Nonlinear decomposition of a binary outcome (METHODS.md §3): Yun (2004,
//! 2005; Stata `mvdcmp`) with detailed weights, and Fairlie's (2005)
//! matched-swap decomposition averaged over random block orderings.
//!
//! Group models Pr(y = 1 | x) = F(x b_g), F = Λ (logit) or Φ (probit), and
//! F̄_g(b) = Σ_{i∈g} w_i F(x_i b) / Σ_{i∈g} w_i. For β* (as in the linear case:
//! b_r, b_c, their averages, or a pooled model):
//!
//! - explained E = F̄_c(β*) − F̄_r(β*), unexplained U = Δ − E with
//!   Δ = ȳ_c − ȳ_r (= F̄_c(b_c) − F̄_r(b_r) for logit with an intercept);
//!   β* = b_r is Yun's reference viewpoint, β* = b_c the comparison viewpoint;
//! - detailed (Yun weights): E_k = E·(x̄_ck − x̄_rk)β*_k / Σ_j (x̄_cj − x̄_rj)β*_j,
//!   U_k = U·[x̄_ck(b_ck − β*_k) + x̄_rk(β*_k − b_rk)] / Σ_j [same], on the
//!   normalized coefficients when categorical variables are normalized.
//!
//! **Fairlie.** In each of R orderings: draw (without replacement) as many rows
//! of the larger group as the smaller one has, rank both samples by F(x β*) and
//! match them by rank, draw a random order of the factor blocks, then swap the
//! blocks one at a time from the comparison rows' values to their matched
//! reference rows' values; a block's contribution is the change in the mean of
//! F(x β*). Averaging over orderings gives Shapley-like, order-free block
//! contributions (`fairlie_explained`); each ordering has its own ChaCha8 stream
//! from (seed, analysis id, ordering).
//!
//! **Inference.** The delta method over the models and the group means
//! (`yun_delta_variance`): with `vce = robust` (each row its own unit) or a
//! cluster variable, one joint sandwich stacks the models and the means
//! (x̄_g, F̄_g(β*), ȳ_g), so covariate sampling and the covariances of groups
//! sharing hospitals are included; with `vce = model`, Stata `mvdcmp`'s
//! convention (block-diagonal inverse information, X fixed). With `cotton`
//! coefficients λ = W_r/(W_r + W_c) is held fixed (declared). Fairlie's rows
//! vary through β* only (their orderings and matched swaps held fixed). The
//! bootstrap refits every replicate to convergence, warm-started at the
//! full-sample fit (rows, or clusters with their multiplicities), Fairlie's
//! rows included; with `one_step = true` a cluster replicate takes one
//! Fisher-scoring step per model instead (the k-step bootstrap of Andrews
//! 2002, k = 1; declared in `inference.note`), and Fairlie's rows keep their
//! delta-method SEs.

use healthgap_models::bootstrap::stream_key;
use healthgap_models::linalg::{COLLINEARITY_TOL, ranked_inverse};
use healthgap_models::moments::Moments;
use healthgap_models::vcov::{JointPart, joint_cr1};
use healthgap_models::{
    Design, Glm, GlmFit, Link, ModelError, ModelSummary, SmallSample, VcovKind,
};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::cells::INTERCEPT;
use crate::covariates::Covariates;
use crate::error::{DecomposeError, group_sizes};
use crate::inference::{
    InferenceSpec, Inferred, Key, Method, Vce, bootstrap_rows, delta_rows, row_bootstrap,
};
use crate::oaxaca::{Coefficients, SHARES};
use crate::result::{MethodOutput, SeMethod};
use crate::sample::{Cluster, Sample};
use crate::shares::{SHARE, Shares, unstable_shares};
use crate::terms::Terms;

/// Inputs of one nonlinear decomposition.
pub struct NonlinearInput<'a> {
    /// The outcome, groups, weights and cluster.
    pub sample: &'a Sample<'a>,
    /// Covariates (no absorbed variable).
    pub covariates: &'a Covariates,
    /// Logit or probit.
    pub link: Link,
    /// β*.
    pub coefficients: Coefficients,
    /// Normalize categorical variables.
    pub normalize: bool,
    /// Fairlie orderings (0: no Fairlie rows).
    pub fairlie_orderings: usize,
    /// Seed of the Fairlie orderings.
    pub seed: u64,
    /// Analysis id (part of the Fairlie stream key).
    pub analysis_id: String,
}

/// The rows of the two groups as a dense design with an intercept.
struct Data {
    /// Column-major n × p, intercept first.
    x: Vec<f64>,
    n: usize,
    p: usize,
    names: Vec<String>,
    y: Vec<f64>,
    w: Vec<f64>,
    group: Vec<u8>,
    cluster: Vec<u32>,
    clusters: usize,
}

impl Data {
    fn new(input: &NonlinearInput<'_>, weights: Option<&[f64]>, group: &[u32]) -> Data {
        let rows: Vec<usize> = (0..group.len()).filter(|&i| group[i] <= 1).collect();
        let n = rows.len();
        let cov = input.covariates;
        let p = 1 + cov.columns.len();
        let mut x = vec![1.0; n * p];
        for (j, col) in cov.columns.iter().enumerate() {
            for (r, &i) in rows.iter().enumerate() {
                x[(j + 1) * n + r] = col.values[i];
            }
        }
        let mut names = vec![INTERCEPT.to_string()];
        names.extend(cov.columns.iter().map(|c| c.name.clone()));
        Data {
            x,
            n,
            p,
            names,
            y: rows.iter().map(|&i| input.sample.y[i]).collect(),
            w: rows
                .iter()
                .map(|&i| weights.map_or(1.0, |w| w[i]))
                .collect(),
            group: rows.iter().map(|&i| group[i] as u8).collect(),
            cluster: rows
                .iter()
                .map(|&i| input.sample.cluster.map_or(0, |c| c.codes[i]))
                .collect(),
            clusters: input.sample.cluster.map_or(1, |c| c.count.max(1)),
        }
    }

    fn eta(&self, i: usize, b: &[f64]) -> f64 {
        (0..self.p).map(|j| self.x[j * self.n + i] * b[j]).sum()
    }

    /// F̄_g(b) and its gradient, rows weighted by w × mult[cluster].
    fn mean_f(
        &self,
        link: Link,
        g: u8,
        b: &[f64],
        mult: Option<&[f64]>,
        grad: bool,
    ) -> (f64, Vec<f64>) {
        let mut sw = 0.0;
        let mut sf = 0.0;
        let mut sg = vec![0.0; if grad { self.p } else { 0 }];
        for i in (0..self.n).filter(|&i| self.group[i] == g) {
            let w = self.w[i] * mult.map_or(1.0, |m| m[self.cluster[i] as usize]);
            if w == 0.0 {
                continue;
            }
            let eta = self.eta(i, b);
            sw += w;
            sf += w * link.cdf(eta);
            if grad {
                let d = w * link.pdf(eta);
                for j in 0..self.p {
                    sg[j] += d * self.x[j * self.n + i];
                }
            }
        }
        (sf / sw, sg.into_iter().map(|v| v / sw).collect())
    }

    /// Weighted means of x and y of group g.
    fn means(&self, g: u8, mult: Option<&[f64]>) -> (Vec<f64>, f64, f64) {
        let mut sw = 0.0;
        let mut sx = vec![0.0; self.p];
        let mut sy = 0.0;
        for i in (0..self.n).filter(|&i| self.group[i] == g) {
            let w = self.w[i] * mult.map_or(1.0, |m| m[self.cluster[i] as usize]);
            sw += w;
            sy += w * self.y[i];
            for j in 0..self.p {
                sx[j] += w * self.x[j * self.n + i];
            }
        }
        (sx.into_iter().map(|v| v / sw).collect(), sy / sw, sw)
    }

    /// The model on groups `groups`, with the indicator 1{comparison} first when asked.
    fn design(
        &self,
        groups: [bool; 2],
        indicator: bool,
        with_cluster: bool,
    ) -> Result<Design, ModelError> {
        let rows: Vec<usize> = (0..self.n)
            .filter(|&i| groups[self.group[i] as usize])
            .collect();
        let mut cols: Vec<(String, Vec<f64>)> = Vec::new();
        if indicator {
            cols.push((
                "group".into(),
                rows.iter().map(|&i| f64::from(self.group[i])).collect(),
            ));
        }
        for j in 0..self.p {
            let c = &self.x[j * self.n..(j + 1) * self.n];
            cols.push((self.names[j].clone(), rows.iter().map(|&i| c[i]).collect()));
        }
        let mut d = Design::from_columns("y", rows.iter().map(|&i| self.y[i]).collect(), cols)?
            .with_weights(rows.iter().map(|&i| self.w[i]).collect());
        if with_cluster {
            let labels: Vec<i64> = rows.iter().map(|&i| i64::from(self.cluster[i])).collect();
            d = d.with_cluster(&labels);
            // Keep the shared cluster codes (0..G) rather than the re-coded ones.
            d.cluster = Some(rows.iter().map(|&i| self.cluster[i]).collect());
            d.n_clusters = self.clusters;
        }
        Ok(d)
    }
}

/// θ of a sample's fits: b_r, b_c and the pooled β* without its indicator.
fn theta_of(fits: &Fits) -> Theta {
    Theta {
        br: fits.models[0].coef.clone(),
        bc: fits.models[1].coef.clone(),
        bp: fits
            .star
            .map(|s| fits.models[s].coef[fits.star_skip..].to_vec())
            .unwrap_or_default(),
    }
}

/// Every row (Yun's, then Fairlie's in the full sample's order) of a
/// bootstrap replicate's rows: the models refitted from the full-sample
/// coefficients and iterated to convergence, then the means, β* and
/// Fairlie's matched swaps (the same orderings as the full sample).
fn replicate_rows(setup: &Setup<'_>, data: &Data, start: &Fits) -> Result<Vec<f64>, String> {
    let input = setup.input;
    let link = input.link;
    let fits = fit_models(data, input, false, Some(start)).map_err(|(_, e)| e.to_string())?;
    for f in &fits.models {
        if !f.converged {
            return Err(format!(
                "a {} model did not converge in the replicate",
                f.link.name()
            ));
        }
    }
    let t = theta_of(&fits);
    let (xr, yr, wr) = data.means(0, None);
    let (xc, yc, wc) = data.means(1, None);
    let w = [wr, wc];
    let bs = setup.star(&t, w);
    let (fc, _) = data.mean_f(link, 1, &bs, None, false);
    let (fr, _) = data.mean_f(link, 0, &bs, None, false);
    let mut out = setup.yun(&t, [fc, fr, yc - yr], &xr, &xc, w);
    if input.fairlie_orderings > 0 {
        let (fair, _) = fairlie(data, setup, link, &bs);
        let nb = setup.blocks.len();
        out.push(fair[nb]);
        out.extend(&fair[..nb]);
    }
    Ok(out)
}

/// The fitted models of one sample.
struct Fits {
    models: Vec<GlmFit>,
    /// Index of the β* model in `models` (pooled or Neumark), if any.
    star: Option<usize>,
    /// Skip the indicator in the β* model.
    star_skip: usize,
}

/// The group models and β*'s model, each iterated to convergence (from
/// `start`'s coefficients when given: a bootstrap replicate's warm start).
fn fit_models(
    data: &Data,
    input: &NonlinearInput<'_>,
    clustered: bool,
    start: Option<&Fits>,
) -> Result<Fits, (usize, ModelError)> {
    let glm = match input.link {
        Link::Logit => Glm::logit(),
        Link::Probit => Glm::probit(),
    };
    let fit = |groups, indicator, who: usize| {
        let init = start.map(|s| s.models[who].coef.as_slice());
        data.design(groups, indicator, clustered)
            .and_then(|d| glm.fit(&d, init))
            .map_err(|e| (who, e))
    };
    let mut models = vec![fit([true, false], false, 0)?, fit([false, true], false, 1)?];
    let (star, star_skip) = match input.coefficients {
        Coefficients::Pooled => {
            models.push(fit([true, true], true, 2)?);
            (Some(2), 1)
        }
        Coefficients::Neumark => {
            models.push(fit([true, true], false, 2)?);
            (Some(2), 0)
        }
        _ => (None, 0),
    };
    Ok(Fits {
        models,
        star,
        star_skip,
    })
}

/// Everything fixed across replicates.
struct Setup<'a> {
    input: &'a NonlinearInput<'a>,
    terms: Terms,
    keys: Vec<Key>,
    /// Share positions among Yun's rows (`keys[..fairlie_from]`).
    shares: Shares,
    /// Rows of `keys` that are Fairlie's.
    fairlie_from: usize,
    blocks: Vec<String>,
}

/// The coefficient vectors the values depend on (intercept first, no indicator).
#[derive(Clone)]
struct Theta {
    br: Vec<f64>,
    bc: Vec<f64>,
    bp: Vec<f64>,
}

impl Setup<'_> {
    fn lambda(&self, w: [f64; 2]) -> f64 {
        match self.input.coefficients {
            Coefficients::Reference => 1.0,
            Coefficients::Comparison => 0.0,
            Coefficients::Reimers => 0.5,
            Coefficients::Cotton => w[0] / (w[0] + w[1]),
            Coefficients::Pooled | Coefficients::Neumark => f64::NAN,
        }
    }

    fn star(&self, t: &Theta, w: [f64; 2]) -> Vec<f64> {
        let lam = self.lambda(w);
        if lam.is_nan() {
            t.bp.clone()
        } else {
            t.br.iter()
                .zip(&t.bc)
                .map(|(r, c)| lam * r + (1.0 - lam) * c)
                .collect()
        }
    }

    /// Yun rows (all keys before Fairlie's) from θ, f = (F̄_c(β*), F̄_r(β*), gap)
    /// and the group means.
    fn yun(&self, t: &Theta, f: [f64; 3], xr: &[f64], xc: &[f64], w: [f64; 2]) -> Vec<f64> {
        let [fc, fr, gap] = f;
        let bs = self.star(t, w);
        let none: [f64; 0] = [];
        let ext = |b: &[f64]| self.terms.extend_coef(b, &none, &[]);
        let (er, ec, es) = (ext(&t.br), ext(&t.bc), ext(&bs));
        let (xr, xc) = (
            self.terms.extend_x(xr, &none),
            self.terms.extend_x(xc, &none),
        );
        let explained = fc - fr;
        let unexplained = gap - explained;
        let de: Vec<f64> = (0..es.len()).map(|e| (xc[e] - xr[e]) * es[e]).collect();
        let du: Vec<f64> = (0..es.len())
            .map(|e| xc[e] * (ec[e] - es[e]) + xr[e] * (es[e] - er[e]))
            .collect();
        let (se, su): (f64, f64) = (de.iter().sum(), du.iter().sum());
        let pe = self.terms.per_term(&|e| explained * de[e] / se);
        let pu = self.terms.per_term(&|e| unexplained * du[e] / su);
        let keys = &self.keys[..self.fairlie_from];
        let mut out: Vec<f64> = keys
            .iter()
            .map(|key| match key.0.as_str() {
                "gap" => gap,
                "explained" => self.terms.row_value(key, &pe),
                SHARE => f64::NAN,
                _ => self.terms.row_value(key, &pu),
            })
            .collect();
        self.shares.fill(&mut out);
        out
    }
}

/// Fairlie's matched swap: per-block contributions (in `blocks` order, then
/// the total) and their gradients with respect to β*.
fn fairlie(data: &Data, setup: &Setup<'_>, link: Link, bs: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let input = setup.input;
    let nb = setup.blocks.len();
    let p = data.p;
    let block_cols: Vec<Vec<usize>> = setup
        .blocks
        .iter()
        .map(|b| {
            input
                .covariates
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| &c.factor == b)
                .map(|(j, _)| j + 1)
                .collect()
        })
        .collect();
    let rows = |g: u8| -> Vec<usize> { (0..data.n).filter(|&i| data.group[i] == g).collect() };
    let (rr, rc) = (rows(0), rows(1));
    let m = rr.len().min(rc.len());
    let eta_star: Vec<f64> = (0..data.n).map(|i| data.eta(i, bs)).collect();
    let key = stream_key(input.seed, &format!("{}/fairlie", input.analysis_id));
    // One ordering: its block contributions (then the total) and their gradients.
    let one = |ordering: usize| -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut sum = vec![0.0; nb + 1];
        let mut grad = vec![vec![0.0; p]; nb + 1];
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        rng.set_stream(ordering as u64);
        let draw = |rows: &[usize], rng: &mut ChaCha8Rng| -> Vec<usize> {
            let mut v = rows.to_vec();
            if v.len() > m {
                // Partial Fisher–Yates: m rows without replacement.
                for k in 0..m {
                    let j = rng.random_range(k..v.len());
                    v.swap(k, j);
                }
                v.truncate(m);
            }
            v.sort_unstable_by(|a, b| eta_star[*a].total_cmp(&eta_star[*b]).then(a.cmp(b)));
            v
        };
        let sc = draw(&rc, &mut rng);
        let sr = draw(&rr, &mut rng);
        let mut order: Vec<usize> = (0..nb).collect();
        order.shuffle(&mut rng);
        // Composite rows (column-major m × p): start at the comparison rows'
        // x, swap blocks to their matched reference rows' values.
        let wsum: f64 = sc.iter().map(|&i| data.w[i]).sum();
        let mut eta: Vec<f64> = sc.iter().map(|&i| eta_star[i]).collect();
        let mut xcur = vec![0.0; m * p];
        for j in 0..p {
            for (r, &i) in sc.iter().enumerate() {
                xcur[j * m + r] = data.x[j * data.n + i];
            }
        }
        let mean_f = |eta: &[f64], xcur: &[f64]| -> (f64, Vec<f64>) {
            let mut f = 0.0;
            let mut d = vec![0.0; m];
            for (r, &i) in sc.iter().enumerate() {
                let w = data.w[i] / wsum;
                f += w * link.cdf(eta[r]);
                d[r] = w * link.pdf(eta[r]);
            }
            let g = (0..p)
                .map(|j| {
                    xcur[j * m..(j + 1) * m]
                        .iter()
                        .zip(&d)
                        .map(|(x, d)| x * d)
                        .sum()
                })
                .collect();
            (f, g)
        };
        let (f0, g0) = mean_f(&eta, &xcur);
        let (mut fprev, mut gprev) = (f0, g0.clone());
        for &k in &order {
            for &j in &block_cols[k] {
                for (r, &ir) in sr.iter().enumerate() {
                    let vr = data.x[j * data.n + ir];
                    eta[r] += (vr - xcur[j * m + r]) * bs[j];
                    xcur[j * m + r] = vr;
                }
            }
            let (f, g) = mean_f(&eta, &xcur);
            // Explained = comparison − reference: the drop when swapping to r.
            sum[k] = fprev - f;
            for j in 0..p {
                grad[k][j] = gprev[j] - g[j];
            }
            fprev = f;
            gprev = g;
        }
        sum[nb] = f0 - fprev;
        for j in 0..p {
            grad[nb][j] = g0[j] - gprev[j];
        }
        (sum, grad)
    };
    let per: Vec<(Vec<f64>, Vec<Vec<f64>>)> = (0..input.fairlie_orderings)
        .into_par_iter()
        .map(one)
        .collect();
    // Summed in ordering order: the same result on any number of threads.
    let mut sum = vec![0.0; nb + 1];
    let mut grad = vec![vec![0.0; p]; nb + 1];
    for (s, g) in per {
        for k in 0..=nb {
            sum[k] += s[k];
            for j in 0..p {
                grad[k][j] += g[k][j];
            }
        }
    }
    let r = input.fairlie_orderings.max(1) as f64;
    (
        sum.into_iter().map(|v| v / r).collect(),
        grad.into_iter()
            .map(|g| g.into_iter().map(|v| v / r).collect())
            .collect(),
    )
}

fn model_error(input: &NonlinearInput<'_>, who: usize, e: ModelError) -> DecomposeError {
    let name = match who {
        0 => format!("model for group `{}`", input.sample.labels[0]),
        1 => format!("model for group `{}`", input.sample.labels[1]),
        _ => "pooled model".to_string(),
    };
    match e {
        ModelError::Singular { .. } => crate::cells::singular_error(e, &name),
        error => DecomposeError::Fit { model: name, error },
    }
}

/// Info weights (Fisher information per row) of a fitted model.
fn info_weights(fit: &GlmFit) -> Vec<f64> {
    (0..fit.eta.len())
        .map(|i| {
            let (f, d) = (fit.link.cdf(fit.eta[i]), fit.link.pdf(fit.eta[i]));
            fit.work.weight(i) * d * d / (f * (1.0 - f)).max(1e-300)
        })
        .collect()
}

/// The full-sample quantities the delta method of Yun's rows needs.
struct YunPoint<'a> {
    data: &'a Data,
    fits: &'a Fits,
    setup: &'a Setup<'a>,
    theta: &'a Theta,
    /// x̄_r, x̄_c.
    x: [&'a [f64]; 2],
    /// ȳ_r, ȳ_c.
    y: [f64; 2],
    /// Σw of each group.
    w: [f64; 2],
    /// F̄_c(β*), F̄_r(β*).
    f_star: [f64; 2],
    /// Their gradients over β*.
    g_star: [&'a [f64]; 2],
    /// β*.
    star: &'a [f64],
    /// Gradients of the Fairlie rows over β*.
    fair_grad: &'a [Vec<f64>],
    /// ∂F̄_r(b_r)/∂b_r and ∂F̄_c(b_c)/∂b_c (the X-fixed gap of `vce = model`).
    g_own: [&'a [f64]; 2],
}

/// The sampling of the group means the Yun rows use, as one more "model" of a
/// joint sandwich: estimating equations Σ_{i∈g} w_i (z_i − μ) = 0 for
/// x̄_r, x̄_c (no intercept), F̄_c(β*), F̄_r(β*), ȳ_c, ȳ_r, with β* held at its
/// estimate (its own sampling enters through the models' block). Returns the
/// column-major n × k regressors z_i − μ (0 outside the group), the per-row
/// factor w_i and the bread diag(1/W_g).
fn means_part(pt: &YunPoint<'_>, link: Link) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = pt.data;
    let (n, p) = (d.n, d.p);
    let k = means_dim(p);
    let mut x = vec![0.0; n * k];
    let mut bread = vec![0.0; k * k];
    for i in 0..n {
        let g = usize::from(d.group[i]);
        let off = g * (p - 1);
        for j in 1..p {
            x[(off + j - 1) * n + i] = d.x[j * n + i] - pt.x[g][j];
        }
        let fi = link.cdf(d.eta(i, pt.star));
        // F̄_c then F̄_r; ȳ_c then ȳ_r.
        let (fcol, ycol) = if g == 1 {
            (2 * (p - 1), 2 * (p - 1) + 2)
        } else {
            (2 * (p - 1) + 1, 2 * (p - 1) + 3)
        };
        x[fcol * n + i] = fi - pt.f_star[1 - g];
        x[ycol * n + i] = d.y[i] - pt.y[g];
    }
    for a in 0..k {
        let g = if a < p - 1 {
            0
        } else if a < 2 * (p - 1) {
            1
        } else {
            usize::from((a - 2 * (p - 1)) % 2 == 0)
        };
        bread[a * k + a] = 1.0 / pt.w[g];
    }
    (x, d.w.clone(), bread)
}

/// How many means [`means_part`] stacks for p design columns: x̄_r, x̄_c
/// (without the intercept), F̄_c(β*), F̄_r(β*), ȳ_c, ȳ_r.
fn means_dim(p: usize) -> usize {
    2 * (p - 1) + 4
}

/// Delta-method variances of every row (Yun and Fairlie) over
/// θ = (b_r, b_c, [b_pooled], x̄_r, x̄_c, F̄_c(β*), F̄_r(β*), ȳ_c, ȳ_r):
/// the models and the means are stacked in one sandwich, so covariate sampling
/// is included as in the linear decomposition. `Cluster`: over the data's
/// clusters; `Robust`: each row its own unit (the data's cluster codes are the
/// rows); `Model`: the published model-based convention (Stata's `mvdcmp`):
/// the models' iid variances, independent of each other, with X held fixed, so
/// the gap moves through F̄_g(b_g) (for a logit with an intercept ȳ_g = F̄_g(b_g),
/// so ȳ cannot be independent of b_g). Fairlie's rows vary through β* only
/// (their orderings and matched swaps are held fixed).
fn yun_delta_variance(pt: &YunPoint<'_>, vce: Vce) -> Result<Vec<f64>, DecomposeError> {
    let (data, fits, setup) = (pt.data, pt.fits, pt.setup);
    let link = setup.input.link;
    let p = data.p;
    let dims = [p, p, if fits.star.is_some() { p } else { 0 }];
    let nb: usize = dims.iter().sum();
    let km = means_dim(p);
    let total = nb + km;
    let mut vtheta = vec![0.0; total * total];
    if vce == Vce::Model {
        let mut off = 0;
        for (m, f) in fits.models.iter().enumerate() {
            let vc = f
                .vcov(VcovKind::Iid, "", SmallSample::default())
                .map_err(DecomposeError::Model)?;
            let k = f.coef.len();
            let skip = if m == 2 { fits.star_skip } else { 0 };
            for a in skip..k {
                for b in skip..k {
                    vtheta[(off + a - skip) * total + off + b - skip] = vc.matrix[a * k + b];
                }
            }
            off += k - skip;
        }
        // X held fixed: the means block stays 0.
    } else {
        let (mx, mu, mbread) = means_part(pt, link);
        let means = JointPart {
            parts: healthgap_models::vcov::SandwichParts {
                bread: &mbread,
                x: &mx,
                u: mu,
                n: data.n,
                k: km,
                absorbed: Vec::new(),
                rss: None,
            },
            cluster: &data.cluster,
        };
        let parts: Vec<_> = fits.models.iter().map(GlmFit::sandwich_parts).collect();
        let clusters: Vec<Vec<u32>> = fits
            .models
            .iter()
            .map(|f| f.work.cluster.clone().unwrap_or_default())
            .collect();
        let mut joint: Vec<JointPart<'_>> = parts
            .into_iter()
            .zip(&clusters)
            .map(|(parts, cluster)| JointPart { parts, cluster })
            .collect();
        joint.push(means);
        let full = joint_cr1(&joint, data.clusters).map_err(DecomposeError::Model)?;
        // Indices of θ in the stacked (models, means) order, without the indicator.
        let kt: usize = fits.models.iter().map(|f| f.coef.len()).sum();
        let kk = kt + km;
        let keep: Vec<usize> = (0..kk)
            .filter(|&i| !(fits.star_skip == 1 && i == 2 * p))
            .collect();
        for (a, &i) in keep.iter().enumerate() {
            for (b, &j) in keep.iter().enumerate() {
                vtheta[a * total + b] = full[i * kk + j];
            }
        }
    }
    let grads = yun_gradients(pt, dims, total, vce == Vce::Model);
    Ok(grads
        .iter()
        .map(|g| {
            (0..total)
                .map(|a| {
                    if g[a] == 0.0 {
                        return 0.0;
                    }
                    (0..total)
                        .map(|b| g[a] * vtheta[a * total + b] * g[b])
                        .sum::<f64>()
                })
                .sum()
        })
        .collect())
}

/// ∂row/∂θ for every row (θ as in [`yun_delta_variance`]), by central
/// differences of the cheap map (θ, F̄'s, ȳ's, x̄'s) → rows; β* moves F̄(β*).
/// `x_fixed`: the gap moves through the predicted means F̄_g(b_g) instead of
/// the sample means ȳ_g (the model-based convention).
fn yun_gradients(
    pt: &YunPoint<'_>,
    dims: [usize; 3],
    total: usize,
    x_fixed: bool,
) -> Vec<Vec<f64>> {
    let setup = pt.setup;
    let p = pt.data.p;
    let [xr, xc] = pt.x;
    let [fcs, frs] = pt.f_star;
    let [gcs, grs] = pt.g_star;
    let gap = pt.y[1] - pt.y[0];
    let w = pt.w;
    let lam = setup.lambda(w);
    let (lr, lc, lp) = if lam.is_nan() {
        (0.0, 0.0, 1.0)
    } else {
        (lam, 1.0 - lam, 0.0)
    };
    let nk = setup.keys.len();
    let nyun = setup.fairlie_from;
    let mut grads = vec![vec![0.0; total]; nk];
    let yun_at = |t: &Theta, fc: f64, fr: f64, gp: f64, xr: &[f64], xc: &[f64]| {
        setup.yun(t, [fc, fr, gp], xr, xc, w)
    };
    let diff = |up: Vec<f64>, down: Vec<f64>, h: f64| -> Vec<f64> {
        up.iter()
            .zip(&down)
            .map(|(u, d)| (u - d) / (2.0 * h))
            .collect()
    };
    let theta = pt.theta;
    let h = 1e-6;
    let d_fc = diff(
        yun_at(theta, fcs + h, frs, gap, xr, xc),
        yun_at(theta, fcs - h, frs, gap, xr, xc),
        h,
    );
    let d_fr = diff(
        yun_at(theta, fcs, frs + h, gap, xr, xc),
        yun_at(theta, fcs, frs - h, gap, xr, xc),
        h,
    );
    let d_gap = diff(
        yun_at(theta, fcs, frs, gap + h, xr, xc),
        yun_at(theta, fcs, frs, gap - h, xr, xc),
        h,
    );
    for (block, offset) in [(0usize, 0usize), (1, p), (2, 2 * p)] {
        if dims[block] == 0 {
            continue;
        }
        for j in 0..p {
            let bump = |s: f64| {
                let mut t = theta.clone();
                let v = match block {
                    0 => &mut t.br,
                    1 => &mut t.bc,
                    _ => &mut t.bp,
                };
                let hj = 1e-6 * v[j].abs().max(1.0);
                v[j] += s * hj;
                (t, hj)
            };
            let (tu, hj) = bump(1.0);
            let (td, _) = bump(-1.0);
            let direct = diff(
                yun_at(&tu, fcs, frs, gap, xr, xc),
                yun_at(&td, fcs, frs, gap, xr, xc),
                hj,
            );
            let share = [lr, lc, lp][block];
            for r in 0..nyun {
                let mut g = direct[r] + share * (d_fc[r] * gcs[j] + d_fr[r] * grs[j]);
                if x_fixed && block < 2 {
                    let own = pt.g_own[block][j];
                    g += if block == 0 {
                        -d_gap[r] * own
                    } else {
                        d_gap[r] * own
                    };
                }
                grads[r][offset + j] = g;
            }
            // Fairlie rows depend on θ through β* only.
            for (f, fg) in pt.fair_grad.iter().enumerate() {
                let r = if f == setup.blocks.len() {
                    nyun
                } else {
                    nyun + 1 + f
                };
                grads[r][offset + j] = share * fg[j];
            }
        }
    }
    // The means: x̄_r, x̄_c (no intercept), F̄_c, F̄_r, ȳ_c, ȳ_r.
    let nb: usize = dims.iter().sum();
    for g in 0..2 {
        for j in 1..p {
            let bump = |s: f64| {
                let mut x = pt.x[g].to_vec();
                let hj = 1e-6 * x[j].abs().max(1.0);
                x[j] += s * hj;
                (x, hj)
            };
            let (up, hj) = bump(1.0);
            let (down, _) = bump(-1.0);
            let (u, d) = if g == 0 {
                (
                    yun_at(theta, fcs, frs, gap, &up, xc),
                    yun_at(theta, fcs, frs, gap, &down, xc),
                )
            } else {
                (
                    yun_at(theta, fcs, frs, gap, xr, &up),
                    yun_at(theta, fcs, frs, gap, xr, &down),
                )
            };
            let dx = diff(u, d, hj);
            for r in 0..nyun {
                grads[r][nb + g * (p - 1) + j - 1] = dx[r];
            }
        }
    }
    let o = nb + 2 * (p - 1);
    for r in 0..nyun {
        grads[r][o] = d_fc[r];
        grads[r][o + 1] = d_fr[r];
        grads[r][o + 2] = d_gap[r];
        grads[r][o + 3] = -d_gap[r];
    }
    grads
}

/// The approximations of the inference, for `inference.note`.
fn inference_note(one_step: bool, cotton_delta: bool) -> Option<String> {
    let mut notes: Vec<&str> = Vec::new();
    if one_step {
        notes.push(
            "one-step bootstrap: each cluster-bootstrap replicate takes one Fisher-scoring step \
             from the full-sample fit of each logit/probit model instead of refitting to \
             convergence",
        );
    }
    if cotton_delta {
        notes.push(
            "the delta method holds cotton's weight λ = W_r/(W_r + W_c) fixed (the linear \
             decomposition lets it vary)",
        );
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// The inputs a nonlinear decomposition cannot take: an absorbed many-level
/// categorical, and `vce = "model"` with a pooled or Neumark β*.
fn check_supported(
    input: &NonlinearInput<'_>,
    inference: &InferenceSpec,
) -> Result<(), DecomposeError> {
    if input.covariates.absorbed.is_some() {
        return Err(DecomposeError::AbsorbedInNonlinear);
    }
    if input.sample.cluster.is_none()
        && inference.vce == Vce::Model
        && matches!(
            input.coefficients,
            Coefficients::Pooled | Coefficients::Neumark
        )
    {
        return Err(DecomposeError::ModelVarianceNotDerived {
            coefficients: input.coefficients.as_str(),
        });
    }
    Ok(())
}

impl<'a> Setup<'a> {
    /// The terms, the row keys (Yun's with their shares, then Fairlie's) and
    /// the factor blocks.
    fn new(input: &'a NonlinearInput<'a>) -> Setup<'a> {
        let terms = Terms::new(input.covariates, input.normalize);
        let mut keys: Vec<Key> = vec![("gap".into(), None, None)];
        keys.extend(terms.keys(&["explained", "unexplained"], &["unexplained"]));
        let shares = SHARES.keys(&keys);
        keys.extend(shares);
        let fairlie_from = keys.len();
        let blocks = input.covariates.factors();
        if input.fairlie_orderings > 0 {
            keys.push(("fairlie_explained".into(), None, None));
            for b in &blocks {
                keys.push(("fairlie_explained".into(), Some(b.clone()), None));
            }
        }
        Setup {
            input,
            terms,
            shares: SHARES.positions(&keys[..fairlie_from]),
            keys,
            fairlie_from,
            blocks,
        }
    }
}

/// Every row's point value and the delta method's variances.
struct Point {
    /// Yun's rows, then Fairlie's.
    values: Vec<f64>,
    /// The delta method's variances (NaN where no row uses them).
    delta_var: Vec<f64>,
}

/// Every row's point value (Yun's, then Fairlie's) and, where rows use them,
/// the delta method's variances.
fn point_rows(
    data: &Data,
    fits: &Fits,
    setup: &Setup<'_>,
    inference: &InferenceSpec,
) -> Result<Point, DecomposeError> {
    let input = setup.input;
    let theta = theta_of(fits);
    let link = input.link;
    let (xr, yr, wr) = data.means(0, None);
    let (xc, yc, wc) = data.means(1, None);
    let w = [wr, wc];
    let gap = yc - yr;
    let bs = setup.star(&theta, w);
    let (fcs, gcs) = data.mean_f(link, 1, &bs, None, true);
    let (frs, grs) = data.mean_f(link, 0, &bs, None, true);
    let mut point = setup.yun(&theta, [fcs, frs, gap], &xr, &xc, w);
    let (fair, fair_grad) = if input.fairlie_orderings > 0 {
        fairlie(data, setup, link, &bs)
    } else {
        (Vec::new(), Vec::new())
    };
    if !fair.is_empty() {
        point.push(fair[setup.blocks.len()]);
        point.extend(&fair[..setup.blocks.len()]);
    }
    let (_, g_cc) = data.mean_f(link, 1, &theta.bc, None, true);
    let (_, g_rr) = data.mean_f(link, 0, &theta.br, None, true);
    // The delta method's variances, only where rows use them (the delta
    // method, or Fairlie's rows under the one-step bootstrap).
    let needs_delta =
        inference.method == Method::Delta || (input.sample.cluster.is_some() && inference.one_step);
    let delta_var = if needs_delta {
        yun_delta_variance(
            &YunPoint {
                data,
                fits,
                setup,
                theta: &theta,
                x: [&xr, &xc],
                y: [yr, yc],
                w,
                f_star: [fcs, frs],
                g_star: [&gcs, &grs],
                star: &bs,
                fair_grad: &fair_grad,
                g_own: [&g_rr, &g_cc],
            },
            inference.vce,
        )?
    } else {
        vec![f64::NAN; setup.keys.len()]
    };
    Ok(Point {
        values: point,
        delta_var,
    })
}

/// The models' summaries (CR1 with a cluster, iid with `vce = "model"`, HC1
/// otherwise).
fn model_summaries(
    fits: &Fits,
    input: &NonlinearInput<'_>,
    inference: &InferenceSpec,
) -> Result<Vec<ModelSummary>, DecomposeError> {
    let level = inference.level;
    let mut models = Vec::new();
    let labels = [
        format!("outcome model, group={}", input.sample.labels[0]),
        format!("outcome model, group={}", input.sample.labels[1]),
        format!(
            "pooled model ({} + {}{})",
            input.sample.labels[0],
            input.sample.labels[1],
            if fits.star_skip == 1 {
                ", with group indicator"
            } else {
                ""
            }
        ),
    ];
    for (f, label) in fits.models.iter().zip(&labels) {
        let vc = match (input.sample.cluster, inference.vce) {
            (Some(Cluster { name, .. }), _) => f.vcov(VcovKind::Cr1, name, SmallSample::default()),
            (None, Vce::Model) => f.vcov(VcovKind::Iid, "", SmallSample::default()),
            (None, _) => f.vcov(VcovKind::Hc1, "", SmallSample::default()),
        }
        .map_err(DecomposeError::Model)?;
        models.push(f.summary(label, &vc, level));
    }
    Ok(models)
}

/// The rows with their inference: the delta method, the cluster bootstrap
/// (each replicate refitted to convergence, or one Fisher-scoring step with
/// Fairlie's rows kept at the delta method) or the row bootstrap.
fn inferred_rows(
    data: &Data,
    fits: &Fits,
    setup: &Setup<'_>,
    pt: &Point,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
    warnings: &mut Vec<String>,
) -> Inferred {
    let input = setup.input;
    let (point, delta_var) = (&pt.values, &pt.delta_var);
    let clustered = input.sample.cluster.is_some();
    let level = inference.level;
    let nyun = setup.fairlie_from;
    let yun_keys = &setup.keys[..nyun];
    let delta_how = if clustered {
        SeMethod::DeltaCluster
    } else {
        inference.vce.se_method()
    };
    let fairlie_delta = |rows: &mut Vec<crate::result::Estimate>| {
        rows.extend(delta_rows(
            &setup.keys[nyun..],
            &point[nyun..],
            Some(&delta_var[nyun..]),
            level,
            delta_how,
        ));
    };
    match (inference.method, input.sample.cluster) {
        (Method::Delta, _) => Inferred::delta(delta_rows(
            &setup.keys,
            point,
            Some(delta_var),
            level,
            delta_how,
        )),
        (
            Method::Bootstrap,
            Some(Cluster {
                codes, count: g, ..
            }),
        ) if !inference.one_step => {
            if inference.stratify {
                warnings.push("stratify ignored: clusters hold patients of both groups".into());
            }
            // Each replicate: its clusters' rows, refitted to convergence.
            let stat = |m: &[f64]| -> Result<Vec<f64>, String> {
                let mut w = vec![0.0; input.sample.group.len()];
                let mut grp = vec![2u32; input.sample.group.len()];
                for (i, &gi) in input.sample.group.iter().enumerate() {
                    let mi = m[codes[i] as usize];
                    if gi <= 1 && mi > 0.0 {
                        w[i] = input.sample.weights.map_or(1.0, |w| w[i]) * mi;
                        grp[i] = gi;
                    }
                }
                replicate_rows(setup, &Data::new(input, Some(&w), &grp), fits)
            };
            let booted = bootstrap_rows(&setup.keys, point, inference, g, None, stat, progress);
            Inferred::booted(booted, warnings)
        }
        (Method::Bootstrap, Some(Cluster { count: g, .. })) => {
            // One Fisher-scoring step per model from per-cluster scores and information.
            let steps = one_step_moments(fits, g);
            let stat = |m: &[f64]| one_step_rows(data, fits, setup, &steps, m);
            if inference.stratify {
                warnings.push("stratify ignored: clusters hold patients of both groups".into());
            }
            let booted =
                bootstrap_rows(yun_keys, &point[..nyun], inference, g, None, stat, progress);
            let mut inferred = Inferred::booted(booted, warnings);
            fairlie_delta(&mut inferred.rows);
            inferred
        }
        (Method::Bootstrap, None) => {
            let booted = row_bootstrap(
                &setup.keys,
                point,
                inference,
                input.sample.group,
                input.sample.weights,
                |wts, grp| replicate_rows(setup, &Data::new(input, Some(wts), grp), fits),
                progress,
            );
            Inferred::booted(booted, warnings)
        }
    }
}

/// The one-step bootstrap's per-cluster sums of each model: the score over
/// the information weight as the working response, with the information
/// weights.
fn one_step_moments(fits: &Fits, g: usize) -> Vec<Moments> {
    fits.models
        .iter()
        .map(|f| {
            let parts = f.sandwich_parts();
            let info = info_weights(f);
            let y: Vec<f64> = parts
                .u
                .iter()
                .zip(&info)
                .map(|(u, i)| u / i.max(1e-300))
                .collect();
            let cols: Vec<&[f64]> = (0..parts.k)
                .map(|a| &parts.x[a * parts.n..(a + 1) * parts.n])
                .collect();
            let codes = f.work.cluster.clone().unwrap_or_default();
            Moments::from_columns(&y, &cols, &f.names, Some(&info), &codes, g)
        })
        .collect()
}

/// One cluster-bootstrap replicate's Yun rows under the one-step bootstrap:
/// each model one Fisher-scoring step from the full-sample fit, then the
/// means, β* and Yun's rows at the replicate's multiplicities `m`.
fn one_step_rows(
    data: &Data,
    fits: &Fits,
    setup: &Setup<'_>,
    steps: &[Moments],
    m: &[f64],
) -> Result<Vec<f64>, String> {
    let link = setup.input.link;
    let mut coefs = Vec::new();
    for (f, mom) in fits.models.iter().zip(steps) {
        let t = mom.total(Some(m));
        let k = f.coef.len();
        let inv = ranked_inverse(&t.xx, k, COLLINEARITY_TOL);
        if !inv.dropped.is_empty() {
            return Err("singular information in a replicate".into());
        }
        coefs.push(
            (0..k)
                .map(|a| {
                    f.coef[a]
                        + (0..k)
                            .map(|b| inv.inverse[a * k + b] * t.xy[b])
                            .sum::<f64>()
                })
                .collect::<Vec<f64>>(),
        );
    }
    let t = Theta {
        br: coefs[0].clone(),
        bc: coefs[1].clone(),
        bp: coefs
            .get(2)
            .map(|c| c[fits.star_skip..].to_vec())
            .unwrap_or_default(),
    };
    let (xr, yr, wr) = data.means(0, Some(m));
    let (xc, yc, wc) = data.means(1, Some(m));
    let w = [wr, wc];
    let bs = setup.star(&t, w);
    let (fc, _) = data.mean_f(link, 1, &bs, Some(m), false);
    let (fr, _) = data.mean_f(link, 0, &bs, Some(m), false);
    Ok(setup.yun(&t, [fc, fr, yc - yr], &xr, &xc, w))
}

/// The nonlinear decomposition with its inference.
pub fn nonlinear(
    input: &NonlinearInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<MethodOutput, DecomposeError> {
    check_supported(input, inference)?;
    let mut warnings = Vec::new();
    let n = group_sizes(input.sample.group, input.sample.labels, "the decomposition")?;
    let mut data = Data::new(input, input.sample.weights, input.sample.group);
    let clustered = input.sample.cluster.is_some();
    if !clustered && inference.vce != Vce::Model {
        // The robust delta method: each row its own unit of the joint sandwich.
        data.cluster = (0..data.n as u32).collect();
        data.clusters = data.n;
    }
    let fits = fit_models(&data, input, clustered || inference.vce != Vce::Model, None)
        .map_err(|(who, e)| model_error(input, who, e))?;
    for f in &fits.models {
        warnings.extend(f.warnings.iter().cloned());
        if !f.converged {
            warnings.push(format!(
                "a {} model did not converge ({} iterations, max |score| {:.2e})",
                f.link.name(),
                f.iterations,
                f.max_score
            ));
        }
    }
    let setup = Setup::new(input);
    let point = point_rows(&data, &fits, &setup, inference)?;
    let models = model_summaries(&fits, input, inference)?;
    let inferred = inferred_rows(
        &data,
        &fits,
        &setup,
        &point,
        inference,
        progress,
        &mut warnings,
    );
    let nyun = setup.fairlie_from;
    let one_step = inference.method == Method::Bootstrap && clustered && inference.one_step;
    if one_step && nyun < setup.keys.len() {
        warnings.push(
            "fairlie_explained rows keep delta-method intervals (se_method says which): \
             the one-step bootstrap resamples Yun's rows only"
                .into(),
        );
    }
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
        inference_note: inference_note(
            one_step,
            input.coefficients == Coefficients::Cotton && inference.method == Method::Delta,
        ),
        n: n[0] + n[1],
    })
}
