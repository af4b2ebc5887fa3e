//! The mediator and outcome models of one single-mediator analysis: the
//! fit (model-based, robust or joint cluster-robust covariance of both
//! models), the closed forms of Valeri & VanderWeele (see [`super`]), and
//! the mean potential outcomes E[Y(a, M(a'))] of Imai's natural effects
//! (exact plug-in, Gauss–Hermite quadrature or Monte Carlo) with their
//! delta-method variances.

use healthgap_models::{
    Design, Glm, GlmFit, Link, ModelError, ModelSummary, Ols, SmallSample, VcovKind,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::error::DecomposeError;

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OLS.
    Linear,
    /// Logistic regression.
    Logit,
    /// Probit regression (outcome only).
    Probit,
}

/// Inputs of a single-mediator analysis.
pub struct MediationInput<'a> {
    /// Outcome.
    pub y: &'a [f64],
    /// Exposure.
    pub exposure: &'a [f64],
    /// Mediator.
    pub mediator: &'a [f64],
    /// Covariates (name, values).
    pub covariates: Vec<(String, &'a [f64])>,
    /// Mediator model.
    pub mediator_family: Family,
    /// Outcome model.
    pub outcome_family: Family,
    /// Exposure–mediator interaction in the outcome model.
    pub interaction: bool,
    /// Cluster codes and count: the joint CR1 sandwich of both models.
    pub cluster: Option<(&'a [u32], usize)>,
    /// Row weights (both models and the averages over rows).
    pub weights: Option<&'a [f64]>,
}

impl<'a> MediationInput<'a> {
    /// A copy of the references (the covariate list cloned).
    pub(super) fn clone_refs(&self) -> MediationInput<'a> {
        MediationInput {
            y: self.y,
            exposure: self.exposure,
            mediator: self.mediator,
            covariates: self.covariates.clone(),
            mediator_family: self.mediator_family,
            outcome_family: self.outcome_family,
            interaction: self.interaction,
            cluster: self.cluster,
            weights: self.weights,
        }
    }
}

/// The fitted mediator and outcome models.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// Mediator coefficients: intercept, exposure, covariates.
    pub beta: Vec<f64>,
    /// Their covariance.
    pub v_beta: Vec<f64>,
    /// Outcome coefficients: intercept, exposure, mediator, [exposure × mediator], covariates.
    pub theta: Vec<f64>,
    /// Their covariance.
    pub v_theta: Vec<f64>,
    /// The joint cluster-robust covariance of (β, θ) when clustered.
    pub v_joint: Option<Vec<f64>>,
    /// Residual variance of a linear mediator (0 for logit).
    pub sigma2: f64,
    /// Its variance, 2σ⁴/(n − p).
    pub v_sigma2: f64,
    /// Covariate means.
    pub c_mean: Vec<f64>,
    /// Model summaries.
    pub models: Vec<ModelSummary>,
    /// Families.
    pub families: (Family, Family),
    /// Interaction.
    pub interaction: bool,
    /// Rows.
    pub n: usize,
    /// The rows' covariates (for Imai's effects), column-major.
    covariates: Vec<Vec<f64>>,
    /// The rows' weights (1 without weights).
    weights: Vec<f64>,
}

/// Nodes of the Gauss–Hermite rule used for a logit outcome with a linear
/// mediator (exact for polynomials of degree 2·GH_NODES − 1; the logistic–normal
/// integral is accurate to about 1e-12 at the slopes seen in practice).
pub const GH_NODES: usize = 24;

/// Gauss–Hermite nodes and weights for ∫ e^(−x²) f(x) dx, divided by √π so
/// that Σ w_k f(μ + σ√2·x_k) = E f(μ + σZ) for Z standard normal (Newton
/// iteration on the orthonormal Hermite recurrence; Press et al., Numerical
/// Recipes, §4.6 `gauher`).
pub fn gauss_hermite() -> &'static (Vec<f64>, Vec<f64>) {
    static RULE: std::sync::OnceLock<(Vec<f64>, Vec<f64>)> = std::sync::OnceLock::new();
    RULE.get_or_init(|| {
        let n = GH_NODES;
        let nf = n as f64;
        let pim4 = std::f64::consts::PI.powf(-0.25);
        let (mut x, mut w) = (vec![0.0; n], vec![0.0; n]);
        let mut z = 0.0f64;
        for i in 0..n.div_ceil(2) {
            z = match i {
                0 => (2.0 * nf + 1.0).sqrt() - 1.85575 * (2.0 * nf + 1.0).powf(-1.0 / 6.0),
                1 => z - 1.14 * nf.powf(0.426) / z,
                2 => 1.86 * z - 0.86 * x[0],
                3 => 1.91 * z - 0.91 * x[1],
                _ => 2.0 * z - x[i - 2],
            };
            let mut pp = 1.0;
            for _ in 0..100 {
                let (mut p1, mut p2) = (pim4, 0.0);
                for j in 1..=n {
                    let jf = j as f64;
                    let p3 = p2;
                    p2 = p1;
                    p1 = z * (2.0 / jf).sqrt() * p2 - ((jf - 1.0) / jf).sqrt() * p3;
                }
                pp = (2.0 * nf).sqrt() * p2;
                let z1 = z;
                z = z1 - p1 / pp;
                if (z - z1).abs() <= 1e-14 {
                    break;
                }
            }
            x[i] = z;
            x[n - 1 - i] = -z;
            w[i] = 2.0 / (pp * pp) / std::f64::consts::PI.sqrt();
            w[n - 1 - i] = w[i];
        }
        (x, w)
    })
}

fn glm_of(f: Family) -> Glm {
    match f {
        Family::Probit => Glm::probit(),
        _ => Glm::logit(),
    }
}

fn link_of(f: Family) -> Option<Link> {
    match f {
        Family::Linear => None,
        Family::Logit => Some(Link::Logit),
        Family::Probit => Some(Link::Probit),
    }
}

/// The mediator model's columns: intercept, exposure, covariates.
pub(crate) fn mediator_columns(input: &MediationInput<'_>) -> Vec<(String, Vec<f64>)> {
    let mut cols: Vec<(String, Vec<f64>)> = vec![
        ("(intercept)".into(), vec![1.0; input.y.len()]),
        ("exposure".into(), input.exposure.to_vec()),
    ];
    for (name, v) in &input.covariates {
        cols.push((name.clone(), v.to_vec()));
    }
    cols
}

/// Fits both models: model-based (iid) covariances as `regmedint` without
/// `cluster`, and with it the joint CR1 sandwich of both models (HC1-type when
/// every row is its own cluster: the robust variance).
pub fn fit(input: &MediationInput<'_>) -> Result<Fitted, DecomposeError> {
    let n = input.y.len();
    let mcols = mediator_columns(input);
    let mut ocols: Vec<(String, Vec<f64>)> = vec![
        ("(intercept)".into(), vec![1.0; n]),
        ("exposure".into(), input.exposure.to_vec()),
        ("mediator".into(), input.mediator.to_vec()),
    ];
    if input.interaction {
        ocols.push((
            "exposure:mediator".into(),
            input
                .exposure
                .iter()
                .zip(input.mediator)
                .map(|(a, m)| a * m)
                .collect(),
        ));
    }
    for (name, v) in &input.covariates {
        ocols.push((name.clone(), v.to_vec()));
    }
    let weighted = |d: Design| -> Design {
        match input.weights {
            Some(w) => d.with_weights(w.to_vec()),
            None => d,
        }
    };
    let md = Design::from_columns("mediator", input.mediator.to_vec(), mcols)
        .map_err(DecomposeError::Model)?;
    let od =
        Design::from_columns("outcome", input.y.to_vec(), ocols).map_err(DecomposeError::Model)?;
    let iid = |r: Result<healthgap_models::Vcov, ModelError>| r.map_err(DecomposeError::Model);
    let with_cluster = |d: Design| -> Design {
        match input.cluster {
            Some((c, g)) => {
                let mut d = d;
                d.cluster = Some(c.to_vec());
                d.n_clusters = g;
                d
            }
            None => d,
        }
    };
    let (md, od) = (with_cluster(weighted(md)), with_cluster(weighted(od)));
    // Row units (one cluster per row) are the robust variance: CR1 with G = n
    // is HC1, and the joint sandwich stacks both models' influence functions.
    let kind = match input.cluster {
        Some((_, g)) if g == n => VcovKind::Hc1,
        Some(_) => VcovKind::Cr1,
        None => VcovKind::Iid,
    };
    let label = if input.cluster.is_some() {
        "cluster"
    } else {
        ""
    };
    enum Fit {
        Ols(healthgap_models::OlsFit),
        Glm(GlmFit),
    }
    impl Fit {
        fn parts(&self) -> healthgap_models::vcov::SandwichParts<'_> {
            match self {
                Fit::Ols(f) => f.sandwich_parts(),
                Fit::Glm(f) => f.sandwich_parts(),
            }
        }
    }
    let (mfit, beta, v_beta, sigma2, v_sigma2, msum) = match input.mediator_family {
        Family::Linear => {
            let f = Ols::new().fit(&md).map_err(DecomposeError::Model)?;
            let v = iid(f.vcov(kind, label, SmallSample::default()))?;
            let df = (n - f.coef.len()) as f64;
            let s2 = f.rss / df;
            let s = f.summary("mediator model", &v, 0.95);
            let c = f.coef.clone();
            (Fit::Ols(f), c, v.matrix, s2, 2.0 * s2 * s2 / df, s)
        }
        fam => {
            let f: GlmFit = glm_of(fam).fit(&md, None).map_err(DecomposeError::Model)?;
            let v = iid(f.vcov(kind, label, SmallSample::default()))?;
            let s = f.summary("mediator model", &v, 0.95);
            let c = f.coef.clone();
            (Fit::Glm(f), c, v.matrix, 0.0, 0.0, s)
        }
    };
    let (ofit, theta, v_theta, osum) = match input.outcome_family {
        Family::Linear => {
            let f = Ols::new().fit(&od).map_err(DecomposeError::Model)?;
            let v = iid(f.vcov(kind, label, SmallSample::default()))?;
            let s = f.summary("outcome model", &v, 0.95);
            let c = f.coef.clone();
            (Fit::Ols(f), c, v.matrix, s)
        }
        fam => {
            let f = glm_of(fam).fit(&od, None).map_err(DecomposeError::Model)?;
            let v = iid(f.vcov(kind, label, SmallSample::default()))?;
            let s = f.summary("outcome model", &v, 0.95);
            let c = f.coef.clone();
            (Fit::Glm(f), c, v.matrix, s)
        }
    };
    let v_joint = match input.cluster {
        Some((c, g)) => Some(
            healthgap_models::vcov::joint_cr1(
                &[
                    healthgap_models::vcov::JointPart {
                        parts: mfit.parts(),
                        cluster: c,
                    },
                    healthgap_models::vcov::JointPart {
                        parts: ofit.parts(),
                        cluster: c,
                    },
                ],
                g,
            )
            .map_err(DecomposeError::Model)?,
        ),
        None => None,
    };
    let covariates: Vec<Vec<f64>> = input.covariates.iter().map(|(_, v)| v.to_vec()).collect();
    let weights: Vec<f64> = (0..n)
        .map(|i| input.weights.map_or(1.0, |w| w[i]))
        .collect();
    let wsum: f64 = weights.iter().sum();
    Ok(Fitted {
        c_mean: covariates
            .iter()
            .map(|v| v.iter().zip(&weights).map(|(x, w)| x * w).sum::<f64>() / wsum)
            .collect(),
        weights,
        beta,
        v_beta,
        theta,
        v_theta,
        v_joint,
        sigma2,
        v_sigma2,
        models: vec![msum, osum],
        families: (input.mediator_family, input.outcome_family),
        interaction: input.interaction,
        n,
        covariates,
    })
}

/// Names of the closed-form effects, in order.
pub const CLOSED_FORM: [&str; 7] = ["cde", "pnde", "tnde", "pnie", "tnie", "te", "pm"];

/// The closed-form effects at covariates `c` (see the module doc): differences
/// for a linear outcome, log odds ratios for a logistic one; the last entry is
/// the proportion mediated.
pub fn closed_form(f: &Fitted, params: &[f64], a0: f64, a1: f64, m: f64, c: &[f64]) -> [f64; 7] {
    let (pb, pt) = (f.beta.len(), f.theta.len());
    let b = &params[..pb];
    let t = &params[pb..pb + pt];
    let s2 = params[pb + pt];
    let (t1, t2) = (t[1], t[2]);
    let t3 = if f.interaction { t[3] } else { 0.0 };
    let bc: f64 = c.iter().zip(&b[2..]).map(|(c, b)| c * b).sum();
    let da = a1 - a0;
    let lin = |a: f64| b[0] + b[1] * a + bc;
    let expit = |x: f64| 1.0 / (1.0 + (-x).exp());
    let (cde, pnde, tnde, pnie, tnie, te, pm);
    match f.families {
        (Family::Linear, Family::Linear) => {
            cde = (t1 + t3 * m) * da;
            pnde = (t1 + t3 * lin(a0)) * da;
            tnde = (t1 + t3 * lin(a1)) * da;
            pnie = (t2 + t3 * a0) * b[1] * da;
            tnie = (t2 + t3 * a1) * b[1] * da;
            te = pnde + tnie;
            pm = tnie / te;
        }
        (Family::Linear, _) => {
            cde = (t1 + t3 * m) * da;
            pnde = (t1 + t3 * (lin(a0) + t2 * s2)) * da + 0.5 * t3 * t3 * s2 * (a1 * a1 - a0 * a0);
            tnde = (t1 + t3 * (lin(a1) + t2 * s2)) * da + 0.5 * t3 * t3 * s2 * (a1 * a1 - a0 * a0);
            pnie = (t2 + t3 * a0) * b[1] * da;
            tnie = (t2 + t3 * a1) * b[1] * da;
            te = pnde + tnie;
            pm = or_pm(pnde, tnie);
        }
        (_, Family::Linear) => {
            cde = (t1 + t3 * m) * da;
            pnde = (t1 + t3 * expit(lin(a0))) * da;
            tnde = (t1 + t3 * expit(lin(a1))) * da;
            pnie = (t2 + t3 * a0) * (expit(lin(a1)) - expit(lin(a0)));
            tnie = (t2 + t3 * a1) * (expit(lin(a1)) - expit(lin(a0)));
            te = pnde + tnie;
            pm = tnie / te;
        }
        _ => {
            let l1p = |x: f64| x.exp().ln_1p();
            cde = (t1 + t3 * m) * da;
            pnde = t1 * da + l1p(t2 + t3 * a1 + lin(a0)) - l1p(t2 + t3 * a0 + lin(a0));
            tnde = t1 * da + l1p(t2 + t3 * a1 + lin(a1)) - l1p(t2 + t3 * a0 + lin(a1));
            pnie = l1p(lin(a0)) + l1p(t2 + t3 * a0 + lin(a1))
                - l1p(lin(a1))
                - l1p(t2 + t3 * a0 + lin(a0));
            tnie = l1p(lin(a0)) + l1p(t2 + t3 * a1 + lin(a1))
                - l1p(lin(a1))
                - l1p(t2 + t3 * a1 + lin(a0));
            te = pnde + tnie;
            pm = or_pm(pnde, tnie);
        }
    }
    [cde, pnde, tnde, pnie, tnie, te, pm]
}

/// Proportion mediated on the OR scale, OR_NDE (OR_NIE − 1)/(OR_NDE·OR_NIE − 1)
/// (VanderWeele 2015), from log ORs.
fn or_pm(log_nde: f64, log_nie: f64) -> f64 {
    let (nde, nie) = (log_nde.exp(), log_nie.exp());
    nde * (nie - 1.0) / (nde * nie - 1.0)
}

impl Fitted {
    /// θ̂ = (β, θ, σ²).
    pub fn params(&self) -> Vec<f64> {
        let mut p = self.beta.clone();
        p.extend(&self.theta);
        p.push(self.sigma2);
        p
    }

    /// Delta-method variances of `stat` over blockdiag(V_β, V_θ, V_σ²).
    pub fn delta<F: Fn(&[f64]) -> Vec<f64>>(&self, stat: F) -> Vec<f64> {
        let p = self.params();
        let base = stat(&p);
        let mut grads = vec![vec![0.0; p.len()]; base.len()];
        for j in 0..p.len() {
            let h = 1e-5 * p[j].abs().max(1e-3);
            let mut up = p.clone();
            up[j] += h;
            let mut down = p.clone();
            down[j] -= h;
            let (u, d) = (stat(&up), stat(&down));
            for r in 0..base.len() {
                grads[r][j] = (u[r] - d[r]) / (2.0 * h);
            }
        }
        self.variance_of_gradients(&grads)
    }

    /// Delta-method variances g'Vg for each gradient row, over the joint
    /// cluster-robust covariance of (β, θ) when clustered, blockdiag(V_β, V_θ)
    /// otherwise, plus σ²'s variance.
    fn variance_of_gradients(&self, grads: &[Vec<f64>]) -> Vec<f64> {
        let (pb, pt) = (self.beta.len(), self.theta.len());
        if let Some(v) = &self.v_joint {
            let k = pb + pt;
            return grads
                .iter()
                .map(|g| {
                    (0..k)
                        .map(|a| (0..k).map(|b| g[a] * v[a * k + b] * g[b]).sum::<f64>())
                        .sum::<f64>()
                        + g[k].powi(2) * self.v_sigma2
                })
                .collect();
        }
        grads
            .iter()
            .map(|g| {
                let quad = |v: &[f64], off: usize, k: usize| -> f64 {
                    (0..k)
                        .map(|a| {
                            (0..k)
                                .map(|b| g[off + a] * v[a * k + b] * g[off + b])
                                .sum::<f64>()
                        })
                        .sum()
                };
                quad(&self.v_beta, 0, pb)
                    + quad(&self.v_theta, pb, pt)
                    + g[pb + pt].powi(2) * self.v_sigma2
            })
            .collect()
    }

    /// The mean potential outcomes E[Y(a, M(a'))] averaged over the rows,
    /// [(a0, a0), (a0, a1), (a1, a0), (a1, a1)]: exact where there is a closed
    /// form (linear outcome; probit outcome with a linear mediator; a binary
    /// mediator), by Gauss–Hermite quadrature with [`GH_NODES`] nodes for a
    /// logit outcome with a linear mediator, and by Monte Carlo with `draws`
    /// common normal draws per row only when `force_mc`.
    pub fn potential_means(
        &self,
        params: &[f64],
        a0: f64,
        a1: f64,
        draws: usize,
        seed: u64,
        force_mc: bool,
    ) -> [f64; 4] {
        if !force_mc {
            return self.potential_means_gradient(params, a0, a1, false).0;
        }
        let (pb, pt) = (self.beta.len(), self.theta.len());
        let b = &params[..pb];
        let t = &params[pb..pb + pt];
        let s2 = params[pb + pt].max(0.0);
        let off = if self.interaction { 4 } else { 3 };
        let link = link_of(self.families.1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let binary_mediator = self.families.0 != Family::Linear;
        let z: Vec<f64> = if binary_mediator {
            Vec::new()
        } else {
            (0..self.n * draws)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect()
        };
        let mean_y = |a: f64, am: f64| -> f64 {
            let mut total = 0.0;
            for i in 0..self.n {
                let (u, slope, mlin) = self.row_scalars(b, t, off, i, a, am);
                let f = |eta: f64| link.map_or(eta, |l| l.cdf(eta));
                total += self.weights[i]
                    * if binary_mediator {
                        self.row_mean(u, slope, mlin, s2).0
                    } else {
                        let zi = &z[i * draws..(i + 1) * draws];
                        zi.iter()
                            .map(|z| f(u + slope * (mlin + s2.sqrt() * z)))
                            .sum::<f64>()
                            / draws as f64
                    };
            }
            total / self.weights.iter().sum::<f64>()
        };
        [
            mean_y(a0, a0),
            mean_y(a0, a1),
            mean_y(a1, a0),
            mean_y(a1, a1),
        ]
    }

    /// Row i's outcome linear predictor without the mediator (u), the
    /// mediator's slope at exposure a, and the mediator's linear predictor at
    /// exposure am.
    fn row_scalars(
        &self,
        b: &[f64],
        t: &[f64],
        off: usize,
        i: usize,
        a: f64,
        am: f64,
    ) -> (f64, f64, f64) {
        let mut c = 0.0;
        let mut ct = 0.0;
        for (j, v) in self.covariates.iter().enumerate() {
            c += v[i] * b[2 + j];
            ct += v[i] * t[off + j];
        }
        let slope = t[2] + if self.interaction { t[3] * a } else { 0.0 };
        (t[0] + t[1] * a + ct, slope, b[0] + b[1] * am + c)
    }

    /// One row's E[Y | u, slope, mlin] over the mediator's distribution and its
    /// derivatives with respect to (u, slope, mlin, σ²):
    /// - linear outcome, linear mediator: u + slope·mlin;
    /// - probit outcome, linear mediator: Φ((u + slope·mlin)/√(1 + slope²σ²));
    /// - binary mediator p = expit(mlin): p·F(u + slope) + (1 − p)·F(u);
    /// - logit outcome, linear mediator: E F(u + slope·(mlin + σZ)) by
    ///   Gauss–Hermite quadrature.
    fn row_mean(&self, u: f64, slope: f64, mlin: f64, s2: f64) -> (f64, [f64; 4]) {
        let link = link_of(self.families.1);
        if self.families.0 != Family::Linear {
            let p = 1.0 / (1.0 + (-mlin).exp());
            let (f1, f0) = match link {
                None => (u + slope, u),
                Some(l) => (l.cdf(u + slope), l.cdf(u)),
            };
            let (d1, d0) = link.map_or((1.0, 1.0), |l| (l.pdf(u + slope), l.pdf(u)));
            return (
                p * f1 + (1.0 - p) * f0,
                [
                    p * d1 + (1.0 - p) * d0,
                    p * d1,
                    p * (1.0 - p) * (f1 - f0),
                    0.0,
                ],
            );
        }
        match self.families.1 {
            Family::Linear => (u + slope * mlin, [1.0, mlin, slope, 0.0]),
            Family::Probit => {
                let r = (1.0 + slope * slope * s2).sqrt();
                let x = u + slope * mlin;
                let phi = (-0.5 * (x / r).powi(2)).exp() / (2.0 * std::f64::consts::PI).sqrt();
                (
                    Normal::standard().cdf(x / r),
                    [
                        phi / r,
                        phi * (mlin / r - x * slope * s2 / (r * r * r)),
                        phi * slope / r,
                        -phi * x * slope * slope / (2.0 * r * r * r),
                    ],
                )
            }
            Family::Logit => {
                let (nodes, weights) = gauss_hermite();
                let sigma = s2.sqrt();
                let (mut g, mut gu, mut gs, mut gv) = (0.0, 0.0, 0.0, 0.0);
                for (x, w) in nodes.iter().zip(weights) {
                    let m = mlin + sigma * std::f64::consts::SQRT_2 * x;
                    let p = 1.0 / (1.0 + (-(u + slope * m)).exp());
                    let d = w * p * (1.0 - p);
                    g += w * p;
                    gu += d;
                    gs += d * m;
                    gv += d * x;
                }
                let dv = if sigma > 0.0 {
                    gv * slope * std::f64::consts::SQRT_2 / (2.0 * sigma)
                } else {
                    0.0
                };
                (g, [gu, gs, slope * gu, dv])
            }
        }
    }

    /// The four mean potential outcomes of [`Fitted::potential_means`] and
    /// their gradients with respect to θ̂ = (β, θ, σ²), analytically: each row's
    /// mean depends on θ̂ only through (u, slope, mlin, σ²), which are linear in
    /// the coefficients. One pass over the rows instead of 2·dim(θ̂) + 1.
    pub fn potential_means_gradient(
        &self,
        params: &[f64],
        a0: f64,
        a1: f64,
        gradient: bool,
    ) -> ([f64; 4], Vec<Vec<f64>>) {
        let (pb, pt) = (self.beta.len(), self.theta.len());
        let b = &params[..pb];
        let t = &params[pb..pb + pt];
        let s2 = params[pb + pt].max(0.0);
        let off = if self.interaction { 4 } else { 3 };
        let k = pb + pt + 1;
        let wsum: f64 = self.weights.iter().sum();
        let combos = [(a0, a0), (a0, a1), (a1, a0), (a1, a1)];
        let mut means = [0.0; 4];
        let mut grads = vec![vec![0.0; if gradient { k } else { 0 }]; 4];
        for (c, &(a, am)) in combos.iter().enumerate() {
            let g = &mut grads[c];
            let mut total = 0.0;
            for i in 0..self.n {
                let (u, slope, mlin) = self.row_scalars(b, t, off, i, a, am);
                let (m, [du, ds, dm, dv]) = self.row_mean(u, slope, mlin, s2);
                let w = self.weights[i];
                total += w * m;
                if !gradient {
                    continue;
                }
                let (du, ds, dm) = (w * du, w * ds, w * dm);
                g[0] += dm;
                g[1] += dm * am;
                g[pb] += du;
                g[pb + 1] += du * a;
                g[pb + 2] += ds;
                if self.interaction {
                    g[pb + 3] += ds * a;
                }
                for (j, v) in self.covariates.iter().enumerate() {
                    g[2 + j] += dm * v[i];
                    g[pb + off + j] += du * v[i];
                }
                g[pb + pt] += w * dv;
            }
            means[c] = total / wsum;
            for v in g.iter_mut() {
                *v /= wsum;
            }
        }
        (means, grads)
    }

    /// Delta-method variances of functions of the four mean potential outcomes
    /// (analytic gradients of the means, numerical derivatives of `stat` in
    /// the four means).
    pub fn delta_of_means<F: Fn(&[f64; 4]) -> Vec<f64>>(
        &self,
        a0: f64,
        a1: f64,
        stat: F,
    ) -> Vec<f64> {
        let (means, mgrad) = self.potential_means_gradient(&self.params(), a0, a1, true);
        let base = stat(&means);
        let k = mgrad[0].len();
        let mut grads = vec![vec![0.0; k]; base.len()];
        for c in 0..4 {
            let h = 1e-7 * means[c].abs().max(1e-3);
            let (mut up, mut down) = (means, means);
            up[c] += h;
            down[c] -= h;
            let (u, d) = (stat(&up), stat(&down));
            for r in 0..base.len() {
                let ds = (u[r] - d[r]) / (2.0 * h);
                for j in 0..k {
                    grads[r][j] += ds * mgrad[c][j];
                }
            }
        }
        self.variance_of_gradients(&grads)
    }

    /// Imai's natural effects from [`Fitted::potential_means`]:
    /// [ACME(a0), ACME(a1), ADE(a0), ADE(a1), total].
    pub fn natural_effects(
        &self,
        params: &[f64],
        a0: f64,
        a1: f64,
        draws: usize,
        seed: u64,
        force_mc: bool,
    ) -> [f64; 5] {
        let [y00, y01, y10, y11] = self.potential_means(params, a0, a1, draws, seed, force_mc);
        [y01 - y00, y11 - y10, y10 - y00, y11 - y01, y11 - y00]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated data set: exposure a, covariate x, a linear or binary
    /// mediator and a linear or binary outcome.
    fn simulated(binary_m: bool, binary_y: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 3000;
        let (mut y, mut a, mut m, mut x) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let xi: f64 = StandardNormal.sample(&mut rng);
            let ai = f64::from(u8::from(rand::RngExt::random::<f64>(&mut rng) < 0.4));
            let em: f64 = StandardNormal.sample(&mut rng);
            let lin_m = 0.3 + 0.8 * ai + 0.5 * xi + em;
            let mi = if binary_m {
                f64::from(u8::from(lin_m > 0.5))
            } else {
                lin_m
            };
            let ey: f64 = StandardNormal.sample(&mut rng);
            let lin_y = -1.0 + 0.4 * ai + 0.6 * mi + 0.2 * ai * mi + 0.3 * xi;
            let yi = if binary_y {
                f64::from(u8::from(lin_y + 1.6 * ey > 0.0))
            } else {
                lin_y + ey
            };
            y.push(yi);
            a.push(ai);
            m.push(mi);
            x.push(xi);
        }
        (y, a, m, x)
    }

    #[test]
    fn analytic_gradients_of_the_potential_means_match_finite_differences() {
        for (mf, of) in [
            (Family::Linear, Family::Linear),
            (Family::Linear, Family::Probit),
            (Family::Linear, Family::Logit),
            (Family::Logit, Family::Logit),
            (Family::Logit, Family::Linear),
        ] {
            let (y, a, m, x) = simulated(mf != Family::Linear, of != Family::Linear);
            let input = MediationInput {
                y: &y,
                exposure: &a,
                mediator: &m,
                covariates: vec![("x".into(), x.as_slice())],
                mediator_family: mf,
                outcome_family: of,
                interaction: true,
                cluster: None,
                weights: None,
            };
            let f = fit(&input).unwrap_or_else(|e| panic!("{mf:?}/{of:?}: {e}"));
            let stat = |m: &[f64; 4]| vec![m[3] - m[0], m[3] - m[2], (m[3] - m[2]) / (m[3] - m[0])];
            let analytic = f.delta_of_means(0.0, 1.0, stat);
            let numeric = f.delta(|q| stat(&f.potential_means(q, 0.0, 1.0, 0, 1, false)));
            for (x, y) in analytic.iter().zip(&numeric) {
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1e-12),
                    "{mf:?}/{of:?}: analytic {x} vs numerical {y}"
                );
            }
        }
    }

    #[test]
    fn quadrature_matches_monte_carlo_for_a_logit_outcome() {
        let (y, a, m, x) = simulated(false, true);
        let input = MediationInput {
            y: &y,
            exposure: &a,
            mediator: &m,
            covariates: vec![("x".into(), x.as_slice())],
            mediator_family: Family::Linear,
            outcome_family: Family::Logit,
            interaction: true,
            cluster: None,
            weights: None,
        };
        let f = fit(&input).unwrap_or_else(|e| panic!("{e}"));
        let p = f.params();
        let quad = f.potential_means(&p, 0.0, 1.0, 0, 1, false);
        let mc = f.potential_means(&p, 0.0, 1.0, 400, 9, true);
        for (q, m) in quad.iter().zip(&mc) {
            // 400 draws × 3000 rows: Monte Carlo SE well below 1e-3.
            assert!((q - m).abs() < 2e-3, "quadrature {q} vs Monte Carlo {m}");
        }
    }

    #[test]
    fn gauss_hermite_integrates_normal_moments() {
        let (x, w) = gauss_hermite();
        let moment = |k: i32| -> f64 {
            x.iter()
                .zip(w)
                .map(|(x, w)| w * (std::f64::consts::SQRT_2 * x).powi(k))
                .sum()
        };
        assert!((moment(0) - 1.0).abs() < 1e-13);
        assert!(moment(1).abs() < 1e-13);
        assert!((moment(2) - 1.0).abs() < 1e-12);
        assert!((moment(4) - 3.0).abs() < 1e-11);
        assert!((moment(8) - 105.0).abs() < 1e-8);
    }
}
