//! The hierarchical (random-effects) hospital model, `model = "hierarchical"`
//! of `method = "hospital"` (CMS/COPSS style: Normand & Shahian 2007; Ash et
//! al. 2012): over the reference and comparison patients,
//!
//! g(E[y_i | u, v]) = x_iβ + γ c_i + u_h + v_h c_i,
//! (u_h, v_h) ~ N(0, [[σ_u², ρσ_uσ_v], [ρσ_uσ_v, σ_v²]]) (v only with
//! `random_slope = true`), c_i = 1{comparison}, g the logit (or probit; the
//! identity for continuous outcomes), fitted by [`healthgap_models::glmm`].
//!
//! Reported (DESIGN.md names):
//! - `hospital_sd` σ_u, `hospital_slope_sd` σ_v, `hospital_slope_correlation` ρ
//!   (Wald intervals on log σ and atanh ρ from the deviance's Hessian);
//! - `median_odds_ratio` MOR = exp(√2 Φ⁻¹(0.75) σ_u) (logit; Merlo et al.
//!   2006) and `icc` σ_u²/(σ_u² + π²/3) (logit), σ_u²/(σ_u² + 1) (probit),
//!   σ_u²/(σ_u² + σ²) (identity), at c = 0;
//! - `group_log_odds_ratio` γ (logit; `group_coefficient_hierarchical` for the
//!   probit and identity links);
//! - the model-based split of the comparison group's outcome, on the outcome
//!   scale and averaged over comparison patients i with η_i their fitted
//!   linear predictor and ū_r = Σ_h s_rh û_h the reference patients' average
//!   hospital effect:
//!   `within_hospital_hierarchical` = mean_c[F(η_i) − F(η_i − γ − v̂_h)] and
//!   `between_hospital_hierarchical` = mean_c[F(η_i − γ − v̂_h) − F(η_i − γ − v̂_h − û_h + ū_r)]
//!   (hospital sorting: the comparison group's rate if its hospitals' effects
//!   were those of the reference group's on average); for the identity link
//!   these are γ + Σ_h s_ch v̂_h and Σ_h (s_ch − s_rh) û_h;
//! - per hospital (hospitals.csv): û_h and its conditional SD; the
//!   risk-standardized rate RSR_h = P_h/E_h × ȳ with P_h = Σ_{i∈h} F(η_i)
//!   (predicted, with the hospital's effects) and E_h = Σ_{i∈h} F(η_i − û_h −
//!   v̂_h c_i) (expected at an average hospital), by group where both counts
//!   are shown; with a slope, the hospital's disparity γ + v̂_h with a normal
//!   interval of variance var(γ̂) + var(v_h | y) (their covariance ignored)
//!   and as a risk difference mean_{c∈h}[F(η_i) − F(η_i − γ − v̂_h)];
//! - intervals for RSRs, the split and the variance summaries from the
//!   hospital bootstrap ([`bootstrap`]), and CMS's classification: worse
//!   (better) than expected when the RSR interval lies above (below) ȳ.

mod bootstrap;

use healthgap_models::glmm::{Glmm, GlmmFamily, GlmmFit, GlmmStart, Grouping, linear_predictor};
use healthgap_models::{Design, ModelSummary};
use statrs::distribution::{ContinuousCDF, Normal};

use super::HospitalInput;
use crate::error::DecomposeError;
use crate::inference::{InferenceSpec, normal_row};
use crate::result::{Estimate, SeMethod};

/// The hierarchical model's options (keys of `method = "hospital"`).
#[derive(Debug, Clone, PartialEq)]
pub struct HierarchicalSpec {
    /// A correlated random slope on the comparison indicator.
    pub random_slope: bool,
    /// Adaptive Gauss–Hermite nodes (1 = Laplace).
    pub quadrature: usize,
    /// Probit instead of logit for a binary outcome.
    pub probit: bool,
    /// Hospital-bootstrap replicates for the intervals (0: none).
    pub replicates: usize,
}

/// One hospital's hierarchical results (hospitals.csv).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HierarchicalRow {
    /// Conditional mode of the hospital intercept û_h (link scale).
    pub hospital_effect: Option<f64>,
    /// Its conditional SD.
    pub hospital_effect_sd: Option<f64>,
    /// Risk-standardized rate P/E × ȳ.
    pub rsr: Option<f64>,
    /// Lower limit (hospital bootstrap).
    pub rsr_low: Option<f64>,
    /// Upper limit.
    pub rsr_high: Option<f64>,
    /// `better`, `no different` or `worse` than the overall rate.
    pub rsr_class: Option<&'static str>,
    /// The RSR among the hospital's reference patients.
    pub rsr_reference: Option<f64>,
    /// The RSR among the hospital's comparison patients.
    pub rsr_comparison: Option<f64>,
    /// The hospital's disparity γ + v̂_h (link scale; with a slope).
    pub disparity: Option<f64>,
    /// Lower limit.
    pub disparity_low: Option<f64>,
    /// Upper limit.
    pub disparity_high: Option<f64>,
    /// The disparity as a risk difference among its comparison patients.
    pub disparity_risk_difference: Option<f64>,
}

impl HierarchicalRow {
    /// Hides the by-group rates and the hospital's disparity when its group
    /// counts are not shown.
    pub(crate) fn with_groups_shown(mut self, shown: bool) -> HierarchicalRow {
        if !shown {
            self.rsr_reference = None;
            self.rsr_comparison = None;
            self.disparity = None;
            self.disparity_low = None;
            self.disparity_high = None;
            self.disparity_risk_difference = None;
        }
        self
    }
}

/// What the hierarchical model adds to the hospital analysis.
pub(super) struct Hierarchical {
    pub(super) estimates: Vec<Estimate>,
    pub(super) model: ModelSummary,
    pub(super) warnings: Vec<String>,
    /// Per hospital level of the input (None: no pair patients there).
    pub(super) rows: Vec<Option<HierarchicalRow>>,
    /// The approximations of the inference, for `inference.note`.
    pub(super) note: String,
    /// Why the variance parameters' intervals are withheld (near a boundary).
    pub(super) withheld: Option<String>,
}

/// The pair rows, their design and hospital codes, and the fit.
pub(super) struct Model<'a> {
    pub(super) input: &'a HospitalInput<'a>,
    /// Rows of the input in the model (reference and comparison patients).
    pub(super) rows: Vec<usize>,
    pub(super) design: Design,
    /// Compact hospital code per model row, and the input level of each code.
    pub(super) codes: Vec<u32>,
    pub(super) level_of: Vec<usize>,
    /// Index of the comparison indicator in the design.
    pub(super) group_col: usize,
    pub(super) spec: Glmm,
    pub(super) slope: Option<usize>,
    pub(super) family: GlmmFamily,
    /// The weighted overall mean of y over the model rows.
    pub(super) overall: f64,
}

impl Model<'_> {
    pub(super) fn grouping(&self) -> Grouping<'_> {
        Grouping {
            name: &self.input.hospital.variable,
            codes: &self.codes,
            levels: self.level_of.len(),
        }
    }

    pub(super) fn w(&self, k: usize) -> f64 {
        self.design.weight(k)
    }

    fn comparison(&self, k: usize) -> bool {
        self.design.x[[k, self.group_col]] == 1.0
    }
}

/// Builds the model's design over the reference and comparison patients.
fn model<'a>(
    input: &'a HospitalInput<'a>,
    spec: &HierarchicalSpec,
) -> Result<Model<'a>, DecomposeError> {
    let sample = input.sample;
    let rows: Vec<usize> = (0..sample.group.len())
        .filter(|&i| sample.group[i] <= 1)
        .collect();
    let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let mut cols: Vec<(String, Vec<f64>)> = vec![("(intercept)".into(), vec![1.0; rows.len()])];
    for c in &input.covariates.columns {
        cols.push((c.name.clone(), pick(&c.values)));
    }
    let group_col = cols.len();
    cols.push((
        "group".into(),
        rows.iter().map(|&i| f64::from(sample.group[i])).collect(),
    ));
    let mut design = Design::from_columns(sample.outcome, pick(sample.y), cols)?;
    if let Some(w) = sample.weights {
        design = design.with_weights(pick(w));
    }
    let mut compact = vec![u32::MAX; input.hospital.levels];
    let mut level_of = Vec::new();
    let codes: Vec<u32> = rows
        .iter()
        .map(|&i| {
            let l = input.hospital.codes[i] as usize;
            if compact[l] == u32::MAX {
                compact[l] = level_of.len() as u32;
                level_of.push(l);
            }
            compact[l]
        })
        .collect();
    let family = match (sample.binary, spec.probit) {
        (true, false) => GlmmFamily::Logit,
        (true, true) => GlmmFamily::Probit,
        (false, _) => GlmmFamily::Identity,
    };
    let wsum: f64 = (0..rows.len()).map(|k| design.weight(k)).sum();
    let overall = (0..rows.len())
        .map(|k| design.weight(k) * design.y[k])
        .sum::<f64>()
        / wsum;
    Ok(Model {
        input,
        rows,
        design,
        codes,
        level_of,
        group_col,
        spec: Glmm::new(family).quadrature(spec.quadrature),
        slope: spec.random_slope.then_some(group_col),
        family,
        overall,
    })
}

/// Fits the hierarchical model and derives everything it reports.
pub(super) fn hierarchical(
    input: &HospitalInput<'_>,
    spec: &HierarchicalSpec,
    inference: &InferenceSpec,
) -> Result<Hierarchical, DecomposeError> {
    let m = model(input, spec)?;
    let fit = m.spec.fit(&m.design, m.grouping(), m.slope, None)?;
    let mut warnings: Vec<String> = fit
        .warnings
        .iter()
        .map(|w| format!("hierarchical model: {w}"))
        .collect();
    let level = inference.level;
    let point = Derived::at(&m, &fit.start, &fit.modes, None);
    let boot = bootstrap::run(&m, &fit, spec.replicates, inference, &mut warnings);
    let mut estimates = vec![Estimate::total("overall_rate", m.overall)];
    estimates.extend(variance_rows(&m, &fit, level));
    estimates.extend(point.split_rows(boot.as_ref(), level));
    let rows = hospital_rows(&m, &fit, &point, boot.as_ref(), level);
    estimates.extend(classification_rows(&rows, spec.random_slope));
    let note = format!(
        "hierarchical model: {}; RSR intervals and the between/within split's SEs from {} hospital-bootstrap replicates, \
         each a one-step (Newton) update of the GLMM's parameters from the full-sample optimum with hospital effects drawn \
         from the normal approximation to their conditional distribution",
        if fit.quadrature > 1 {
            format!(
                "adaptive Gauss–Hermite quadrature with {} nodes",
                fit.quadrature
            )
        } else {
            "Laplace approximation".into()
        },
        spec.replicates
    );
    let mut out_rows = vec![None; input.hospital.levels];
    for (c, row) in rows.into_iter().enumerate() {
        out_rows[m.level_of[c]] = Some(row);
    }
    let withheld = fit.log_intercept_sd_se.is_none().then(|| {
        "hierarchical model: hospital_sd, median_odds_ratio, icc and the slope's SD and correlation have no interval \
         (the deviance's Hessian is not positive definite at the optimum: a boundary or near-boundary fit)"
            .to_string()
    });
    Ok(Hierarchical {
        estimates,
        model: summary(&m, &fit, level),
        warnings,
        rows: out_rows,
        note,
        withheld,
    })
}

/// The model as reported in results.json `models`.
fn summary(m: &Model<'_>, fit: &GlmmFit, level: f64) -> ModelSummary {
    fit.summary(
        &format!("hierarchical {} model", m.family.name()),
        &m.input.hospital.variable,
        level,
    )
}

/// σ_u, σ_v, ρ, MOR, ICC and γ with their model-based (Hessian) intervals.
fn variance_rows(m: &Model<'_>, fit: &GlmmFit, level: f64) -> Vec<Estimate> {
    let z = Normal::standard().inverse_cdf(1.0 - (1.0 - level) / 2.0);
    let mut out = Vec::new();
    let positive =
        |name: &str,
         sd: f64,
         se_log: Option<f64>,
         f: &dyn Fn(f64) -> f64,
         df: &dyn Fn(f64) -> f64| { positive_row(name, sd, se_log, z, f, df) };
    let identity = |s: f64| s;
    let one = |_: f64| 1.0;
    out.push(positive(
        "hospital_sd",
        fit.intercept_sd,
        fit.log_intercept_sd_se,
        &identity,
        &one,
    ));
    if let (Some(sv), Some(r)) = (fit.slope_sd, fit.correlation) {
        out.push(positive(
            "hospital_slope_sd",
            sv,
            fit.log_slope_sd_se,
            &identity,
            &one,
        ));
        let mut e = Estimate::total("hospital_slope_correlation", r);
        if let Some(s) = fit.atanh_correlation_se {
            let a = r.atanh();
            e = e.with_inference(
                (1.0 - r * r) * s,
                (a - z * s).tanh(),
                (a + z * s).tanh(),
                f64::NAN,
            );
        }
        out.push(e.made_by(SeMethod::DeltaModel));
    }
    let q75 = Normal::standard().inverse_cdf(0.75);
    if m.family == GlmmFamily::Logit {
        let mor = move |s: f64| (std::f64::consts::SQRT_2 * q75 * s).exp();
        let dmor = move |s: f64| std::f64::consts::SQRT_2 * q75 * mor(s);
        out.push(positive(
            "median_odds_ratio",
            fit.intercept_sd,
            fit.log_intercept_sd_se,
            &mor,
            &dmor,
        ));
    }
    let latent = m
        .family
        .latent_variance()
        .or(fit.residual_sd.map(|s| s * s))
        .unwrap_or(1.0);
    let icc = move |s: f64| s * s / (s * s + latent);
    let dicc = move |s: f64| 2.0 * s * latent / (s * s + latent).powi(2);
    out.push(positive(
        "icc",
        fit.intercept_sd,
        fit.log_intercept_sd_se,
        &icc,
        &dicc,
    ));
    let g = m.group_col;
    let name = if m.family == GlmmFamily::Logit {
        "group_log_odds_ratio"
    } else {
        "group_coefficient_hierarchical"
    };
    out.push(normal_row(name, fit.coef[g], fit.se[g], level).made_by(SeMethod::DeltaModel));
    out
}

/// A positive quantity f(σ) with the Wald interval on log σ mapped through
/// f and the delta-method SE f'(σ)·σ·se(log σ).
fn positive_row(
    name: &str,
    sd: f64,
    se_log: Option<f64>,
    z: f64,
    f: &dyn Fn(f64) -> f64,
    df: &dyn Fn(f64) -> f64,
) -> Estimate {
    let mut e = Estimate::total(name, f(sd));
    if let Some(s) = se_log {
        let (lo, hi) = ((sd.ln() - z * s).exp(), (sd.ln() + z * s).exp());
        e = e.with_inference(df(sd) * sd * s, f(lo), f(hi), f64::NAN);
    }
    e.made_by(SeMethod::DeltaModel)
}

/// Per-row and per-hospital quantities at one set of parameters.
pub(super) struct Derived {
    /// Within and between (the split), on the outcome scale.
    pub(super) within: f64,
    pub(super) between: f64,
    /// Per hospital: (P, E) overall, by group [(P_r, E_r), (P_c, E_c)], and the
    /// comparison patients' Σw·[F(η) − F(η − γ − v)] and Σw.
    pub(super) per_hospital: Vec<HospitalSums>,
}

/// One hospital's sums of predictions.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HospitalSums {
    pub(super) predicted: [f64; 3],
    pub(super) expected: [f64; 3],
    pub(super) risk_difference: f64,
    pub(super) comparison_weight: f64,
}

impl Derived {
    /// At parameters `at` with hospital effects `effects` (modes, or draws) and
    /// optional hospital multiplicities (a bootstrap replicate) for the split.
    pub(super) fn at(
        m: &Model<'_>,
        at: &GlmmStart,
        effects: &[[f64; 2]],
        mult: Option<&[f64]>,
    ) -> Derived {
        let g = m.group_col;
        let gamma = at.beta[g];
        let eta = linear_predictor(&m.design, &at.beta);
        let f = |e: f64| m.family.mean(e);
        let weight = |k: usize, c: usize| m.w(k) * mult.map_or(1.0, |v| v[c]);
        // ū_r: the reference patients' average hospital effect.
        let (mut ur, mut wr) = (0.0, 0.0);
        for k in 0..m.rows.len() {
            let c = m.codes[k] as usize;
            if !m.comparison(k) {
                ur += weight(k, c) * effects[c][0];
                wr += weight(k, c);
            }
        }
        let ur = ur / wr.max(f64::MIN_POSITIVE);
        let mut per_hospital = vec![HospitalSums::default(); m.level_of.len()];
        let (mut s_within, mut s_between, mut wc) = (0.0, 0.0, 0.0);
        for k in 0..m.rows.len() {
            let c = m.codes[k] as usize;
            let [u, v] = effects[c];
            let grp = usize::from(m.comparison(k));
            let e = eta[k] + u + v * grp as f64;
            let (p, ex) = (f(e), f(e - u - v * grp as f64));
            let h = &mut per_hospital[c];
            h.predicted[0] += m.w(k) * p;
            h.expected[0] += m.w(k) * ex;
            h.predicted[1 + grp] += m.w(k) * p;
            h.expected[1 + grp] += m.w(k) * ex;
            if grp == 1 {
                let no_group = e - gamma - v;
                h.risk_difference += m.w(k) * (p - f(no_group));
                h.comparison_weight += m.w(k);
                let w = weight(k, c);
                s_within += w * (p - f(no_group));
                s_between += w * (f(no_group) - f(no_group - u + ur));
                wc += w;
            }
        }
        Derived {
            within: s_within / wc,
            between: s_between / wc,
            per_hospital,
        }
    }

    fn split_rows(&self, boot: Option<&bootstrap::Draws>, level: f64) -> Vec<Estimate> {
        let mut out = Vec::new();
        for (name, value, k) in [
            ("between_hospital_hierarchical", self.between, 0),
            ("within_hospital_hierarchical", self.within, 1),
        ] {
            let mut e = Estimate::total(name, value);
            if let Some(b) = boot {
                let inf = b.infer_split(k, value, level);
                e = e
                    .with_inference(inf.se, inf.ci_low, inf.ci_high, inf.p_value)
                    .made_by(SeMethod::BootstrapPercentile);
            }
            out.push(e);
        }
        out
    }
}

/// The per-hospital table rows (compact order).
fn hospital_rows(
    m: &Model<'_>,
    fit: &GlmmFit,
    point: &Derived,
    boot: Option<&bootstrap::Draws>,
    level: f64,
) -> Vec<HierarchicalRow> {
    let z = Normal::standard().inverse_cdf(1.0 - (1.0 - level) / 2.0);
    let g = m.group_col;
    let var_gamma = fit.se[g] * fit.se[g];
    (0..m.level_of.len())
        .map(|c| {
            let s = &point.per_hospital[c];
            let ratio = |k: usize| {
                (s.expected[k] > 0.0).then(|| s.predicted[k] / s.expected[k] * m.overall)
            };
            let rsr = ratio(0);
            let interval = boot.and_then(|b| b.rsr_interval(c, rsr?, level));
            let class = interval.map(|(lo, hi)| {
                if lo > m.overall {
                    "worse"
                } else if hi < m.overall {
                    "better"
                } else {
                    "no different"
                }
            });
            let slope = m.slope.is_some();
            let disparity = slope.then(|| fit.coef[g] + fit.modes[c][1]);
            let half = z * (var_gamma + fit.mode_covariance[c][2]).sqrt();
            HierarchicalRow {
                hospital_effect: Some(fit.modes[c][0]),
                hospital_effect_sd: Some(fit.mode_covariance[c][0].sqrt()),
                rsr,
                rsr_low: interval.map(|i| i.0),
                rsr_high: interval.map(|i| i.1),
                rsr_class: class,
                rsr_reference: ratio(1),
                rsr_comparison: ratio(2),
                disparity,
                disparity_low: disparity.map(|d| d - half),
                disparity_high: disparity.map(|d| d + half),
                disparity_risk_difference: (s.comparison_weight > 0.0)
                    .then(|| s.risk_difference / s.comparison_weight),
            }
        })
        .collect()
}

/// Shares of hospitals classified worse / better, and (with a slope) whose
/// disparity interval excludes 0.
fn classification_rows(rows: &[HierarchicalRow], slope: bool) -> Vec<Estimate> {
    let n = rows.len() as f64;
    let share =
        |f: &dyn Fn(&HierarchicalRow) -> bool| rows.iter().filter(|r| f(r)).count() as f64 / n;
    let mut out = Vec::new();
    if rows.iter().any(|r| r.rsr_class.is_some()) {
        out.push(Estimate::total(
            "hospitals_worse_share",
            share(&|r| r.rsr_class == Some("worse")),
        ));
        out.push(Estimate::total(
            "hospitals_better_share",
            share(&|r| r.rsr_class == Some("better")),
        ));
    }
    if slope {
        out.push(Estimate::total(
            "hospital_disparity_excludes_zero_share",
            share(&|r| {
                r.disparity_low.is_some_and(|lo| lo > 0.0)
                    || r.disparity_high.is_some_and(|hi| hi < 0.0)
            }),
        ));
    }
    out
}
