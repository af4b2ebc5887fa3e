//! Care-site analysis (METHODS.md §7): is the gap about *where* patients are
//! treated or *how* they are treated in the same hospital?
//!
//! 1. **Kitagawa split** with s_gh = group g's (weighted) share treated at
//!    hospital h and μ_gh its outcome mean there:
//!    Δ = Σ_h (s_ch − s_rh) μ_rh [between] + Σ_h s_ch (μ_ch − μ_rh) [within].
//!    Reference rates: where hospital h has no reference patients, μ_rh := μ_ch
//!    (its patients count as between, none as within; as in the generator's
//!    truth). Symmetric variant: between = Σ_h (s_ch − s_rh)(μ_ch + μ_rh)/2,
//!    within = Σ_h (s_ch + s_rh)/2 (μ_ch − μ_rh). Risk-adjusted: the same split
//!    of ỹ = y − x'β, β from the pooled LPM with the group indicator and hospital
//!    fixed effects over the `adjust` covariates.
//! 2. **Fixed-effect contrast**: the coefficient on 1{c} in the LPM over the
//!    `adjust` covariates without and with absorbed hospital effects, and their
//!    difference (the part of the adjusted gap due to where patients are
//!    treated); for binary outcomes also logit and FE logit (odds ratios and
//!    average marginal effects; the FE logit carries the incidental-parameter
//!    bias of O(1/n_h)).
//! 3. **Profiling**: risk-standardized rate per hospital, O_h/E_h × ȳ with
//!    E_h = Σ_{i∈h} p̂_i from a patient-level model of the `adjust` covariates
//!    (logit for binary outcomes, OLS otherwise) over all patients; percentile
//!    intervals from resampling patients within each hospital (model held
//!    fixed); concentration of the comparison group at the top 5% / 25% of
//!    hospitals by its volume, and the concentration curve (each group's
//!    cumulative share of patients at the top 5%, 10%, …, 100% of hospitals
//!    ranked by comparison-group volume; shares rounded to multiples of
//!    max(1%, min_cell / group size) so that no hospital's suppressed counts
//!    can be recovered from a step); minority-serving hospitals (top decile of the
//!    comparison group's share) against the rest.
//!
//! Linear parts come from per-cell moments ([`crate::cells`]) with the cluster
//! delta method or the cluster bootstrap; without a `[design] cluster`, the
//! hospital is the cluster.

use healthgap_models::bootstrap::{Interval, infer, stream_key};
use healthgap_models::vcov::{JointPart, joint_cr1};
use healthgap_models::{
    Design, Glm, GlmFit, Link, ModelError, ModelSummary, Ols, SmallSample, VcovKind,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::cells::{Cells, FitSpec, linear_summary, singular_error};
use crate::covariates::{Absorbed, Covariates};
use crate::crude::{CrudeInput, group_means};
use crate::error::{DecomposeError, group_sizes};
use crate::inference::{
    InferenceSpec, Key, Method, Resampled, count_text, exp_row, normal_row, resampled_rows,
    share_text,
};
use crate::result::{Estimate, MethodOutput, SeMethod};
use crate::sample::{Cluster, Sample};
use crate::shares::{ShareSpec, Shares, unstable_shares};
use crate::spec::{Breakdown, Context, Designs, Parts, Ran, Role, Spec, cite, joined};

/// `method = "hospital"`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HospitalSpec {
    /// The hospital column.
    pub hospital: String,
    /// Adjustment (variables or blocks; default none).
    #[serde(default)]
    pub adjust: Vec<String>,
    /// Further fixed-effect sets for the FE contrast (e.g. surgeon).
    #[serde(default)]
    pub absorb: Vec<String>,
    /// Replace hospital ids by pseudonyms in hospitals.csv (default false).
    #[serde(default)]
    pub pseudonymize: bool,
}

impl Spec for HospitalSpec {
    fn name(&self) -> &'static str {
        "hospital"
    }

    fn run(
        &self,
        sample: &Sample<'_>,
        designs: &dyn Designs,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        let name = &self.hospital;
        let adjust: Vec<String> = designs
            .expand(&self.adjust)
            .into_iter()
            .filter(|v| v != name)
            .collect();
        let cov = designs.covariates(&adjust)?;
        if let Some(t) = &cov.absorbed {
            return Err(DecomposeError::Input(format!(
                "`{}` in `adjust` has many levels and would be absorbed; adjust for it with \
                 `absorb = [\"{}\"]` instead",
                t.variable, t.variable
            )));
        }
        let fixed_effects = |name: &str| {
            designs.absorbed(name, "care_site").ok_or_else(|| {
                DecomposeError::Input(format!(
                    "`{name}` must be categorical; declare it in [variables] as {{ type = \
                     \"categorical\" }}"
                ))
            })
        };
        let extra_fe = self
            .absorb
            .iter()
            .map(|n| fixed_effects(n))
            .collect::<Result<Vec<_>, _>>()?;
        let input = HospitalInput {
            sample,
            covariates: &cov,
            hospital: fixed_effects(name)?,
            extra_fe,
            pseudonymize: self.pseudonymize,
        };
        let out = hospital(&input, inference, progress)?;
        // Always clustered (by the hospital when no cluster is configured).
        let clustered = inference.clustered();
        let mut ran = Ran::delta(
            out.output,
            &clustered,
            Some(sample.cluster_name().unwrap_or(name)),
        );
        ran.hospitals = out.hospitals;
        Ok(ran)
    }

    fn roles(&self) -> Vec<Role> {
        vec![
            Role::absorbed("hospital", std::slice::from_ref(&self.hospital)),
            Role::covariates("adjust", &self.adjust),
            Role::absorbed("absorb", &self.absorb),
        ]
    }

    fn breakdown(&self) -> Option<Breakdown> {
        Some(Breakdown {
            total: ("gap", SHARES.total),
            parts: Parts::One {
                quantity: "between_hospital",
                variable: self.hospital.clone(),
                suffix: " (between hospitals)".into(),
            },
            rest: ("within hospitals", "within_hospital"),
        })
    }

    fn describe(&self, _: &Context, cite: &mut Vec<&'static str>) -> String {
        cite.extend([cite::KITAGAWA, cite::KRUMHOLZ]);
        format!(
            "The care-site analysis split the gap into between- and within-hospital parts \
             (Kitagawa 1955), compared the group coefficient of a linear probability model \
             adjusting for {} without and with {} fixed effects, and profiled hospitals by \
             risk-standardized rates (observed over expected times the overall rate; Krumholz \
             et al. 2006).",
            joined(&self.adjust),
            self.hospital
        )
    }
}

/// Inputs of one care-site analysis.
pub struct HospitalInput<'a> {
    /// The outcome, groups, weights and cluster.
    pub sample: &'a Sample<'a>,
    /// Adjustment covariates (no absorbed variable).
    pub covariates: &'a Covariates,
    /// The hospital variable.
    pub hospital: Absorbed,
    /// Further fixed-effect sets for the FE contrast (e.g. surgeon).
    pub extra_fe: Vec<Absorbed>,
    /// Replace hospital labels by pseudonyms (H001, …, in a seeded random order).
    pub pseudonymize: bool,
}

/// One hospital's profile (suppressed cells are None).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HospitalRow {
    /// Hospital label (or pseudonym).
    pub hospital: String,
    /// Patients.
    pub n: Option<usize>,
    /// Reference-group patients.
    pub n_reference: Option<usize>,
    /// Comparison-group patients.
    pub n_comparison: Option<usize>,
    /// Comparison group's share of the hospital's patients.
    pub comparison_share: Option<f64>,
    /// Minority-serving (top decile of the comparison group's share).
    pub minority_serving: bool,
    /// Observed outcome mean.
    pub observed: Option<f64>,
    /// Expected outcome mean under the patient-level model.
    pub expected: Option<f64>,
    /// n is hidden only so that another hospital's small count cannot be
    /// recovered by difference (it is not small itself).
    pub n_complementary: bool,
    /// The same for the group counts.
    pub groups_complementary: bool,
    /// Risk-standardized rate O/E × overall mean.
    pub risk_standardized: Option<f64>,
    /// Lower limit.
    pub rs_low: Option<f64>,
    /// Upper limit.
    pub rs_high: Option<f64>,
}

impl HospitalRow {
    /// Suppresses the observed, expected and risk-standardized rates.
    fn hide_rates(&mut self) {
        self.observed = None;
        self.expected = None;
        self.risk_standardized = None;
        self.rs_low = None;
        self.rs_high = None;
    }
}

/// The analysis output plus the hospital table.
#[derive(Debug, Clone)]
pub struct HospitalOutput {
    /// Rows, models, warnings.
    pub output: MethodOutput,
    /// Per-hospital profiles (for hospitals.csv).
    pub hospitals: Vec<HospitalRow>,
}

struct Setup {
    cells: Cells,
    adjusted: bool,
    base: FitSpec,
    full: FitSpec,
    keys: Vec<Key>,
    shares: Shares,
}

impl Setup {
    fn values(&self, mult: Option<&[f64]>) -> Result<Vec<f64>, String> {
        let cells = &self.cells;
        let p = cells.p();
        let (wr, yr, xr) = cells.level_sums(0, mult);
        let (wc, yc, xc) = cells.level_sums(1, mult);
        let (tr, tc): (f64, f64) = (wr.iter().sum(), wc.iter().sum());
        if tr <= 0.0 || tc <= 0.0 {
            return Err("a group has no weight".into());
        }
        let base = cells.fit(&self.base, mult).map_err(|e| e.to_string())?;
        let full = cells.fit(&self.full, mult).map_err(|e| e.to_string())?;
        // β of the adjust columns (full model: indicator first, no intercept).
        let beta = &full.coef[1..];
        let adjust = |y: &[f64], x: &[f64]| -> Vec<f64> {
            (0..y.len())
                .map(|l| y[l] - (1..p).map(|j| x[l * p + j] * beta[j - 1]).sum::<f64>())
                .collect()
        };
        let mut out = Vec::with_capacity(self.keys.len());
        let split = |yr: &[f64], yc: &[f64]| -> [f64; 5] {
            let (mut b, mut wi, mut bs, mut ws) = (0.0, 0.0, 0.0, 0.0);
            for l in 0..wr.len() {
                let (sr, sc) = (wr[l] / tr, wc[l] / tc);
                if sr == 0.0 && sc == 0.0 {
                    continue;
                }
                let mc = if wc[l] > 0.0 { yc[l] / wc[l] } else { f64::NAN };
                let mr = if wr[l] > 0.0 { yr[l] / wr[l] } else { mc };
                let mc = if mc.is_nan() { mr } else { mc };
                b += (sc - sr) * mr;
                wi += sc * (mc - mr);
                bs += (sc - sr) * (mc + mr) / 2.0;
                ws += (sc + sr) / 2.0 * (mc - mr);
            }
            let gap = yc.iter().sum::<f64>() / tc - yr.iter().sum::<f64>() / tr;
            [gap, b, wi, bs, ws]
        };
        let raw = split(&yr, &yc);
        out.extend(raw);
        if self.adjusted {
            let adj = split(&adjust(&yr, &xr), &adjust(&yc, &xc));
            out.extend([adj[0], adj[1], adj[2]]);
        }
        let (t0, t1) = (base.coef[0], full.coef[0]);
        out.extend([t0, t1, t0 - t1]);
        out.resize(self.keys.len(), f64::NAN);
        self.shares.fill(&mut out);
        Ok(out)
    }
}

/// Shares of the gap: between and within hospitals.
const SHARES: ShareSpec = ShareSpec {
    total: "gap",
    blocks: None,
    named: &["between_hospital", "within_hospital"],
};

fn keys(adjusted: bool) -> Vec<Key> {
    let mut q = vec![
        "gap",
        "between_hospital",
        "within_hospital",
        "between_hospital_symmetric",
        "within_hospital_symmetric",
    ];
    if adjusted {
        q.extend([
            "gap_adjusted",
            "between_hospital_adjusted",
            "within_hospital_adjusted",
        ]);
    }
    q.extend([
        "coefficient_without_fe",
        "coefficient_with_fe",
        "coefficient_change",
    ]);
    let mut keys: Vec<Key> = q.into_iter().map(|q| (q.to_string(), None, None)).collect();
    let shares = SHARES.keys(&keys);
    keys.extend(shares);
    keys
}

/// Rows of the two groups, as a dense design for the row-level models.
struct Rows {
    idx: Vec<usize>,
}

impl Rows {
    fn design(
        &self,
        input: &HospitalInput<'_>,
        fe: bool,
        cluster: (&[u32], usize),
    ) -> Result<Design, ModelError> {
        let pick = |v: &[f64]| self.idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let mut cols: Vec<(String, Vec<f64>)> = vec![(
            "group".into(),
            self.idx
                .iter()
                .map(|&i| f64::from(input.sample.group[i]))
                .collect(),
        )];
        if !fe {
            cols.push(("(intercept)".into(), vec![1.0; self.idx.len()]));
        }
        for c in &input.covariates.columns {
            cols.push((c.name.clone(), pick(&c.values)));
        }
        let mut d = Design::from_columns("y", pick(input.sample.y), cols)?;
        if let Some(w) = input.sample.weights {
            d = d.with_weights(pick(w));
        }
        d.cluster = Some(self.idx.iter().map(|&i| cluster.0[i]).collect());
        d.n_clusters = cluster.1;
        if fe {
            for a in std::iter::once(&input.hospital).chain(&input.extra_fe) {
                let labels: Vec<i64> = self.idx.iter().map(|&i| i64::from(a.codes[i])).collect();
                d = d.with_absorbed(&a.variable, &labels);
            }
        }
        Ok(d)
    }
}

/// Average marginal effect of 1{c} over the pair's rows: mean of
/// F(η_i with c = 1) − F(η_i with c = 0), with the delta SE through τ only.
fn ame(fit: &GlmFit, se_tau: f64, level: f64, key: &str) -> Estimate {
    let tau = fit.coef[0];
    let d = fit.work.column(0);
    let (mut sum, mut deriv, mut sw) = (0.0, 0.0, 0.0);
    for i in 0..fit.eta.len() {
        let w = fit.work.weight(i);
        let e1 = fit.eta[i] + tau * (1.0 - d[i]);
        let e0 = e1 - tau;
        sum += w * (fit.link.cdf(e1) - fit.link.cdf(e0));
        deriv += w * fit.link.pdf(e1);
        sw += w;
    }
    normal_row(key, sum / sw, deriv / sw * se_tau, level)
}

fn suppressed(n: usize, min_cell: usize) -> Option<usize> {
    (n >= min_cell).then_some(n)
}

/// Complementary suppression of the hospital table: each count column (n,
/// n_reference, n_comparison) sums to a total the report shows, so a single
/// hidden cell, or hidden cells adding up to fewer than `min_cell`, would be
/// revealed by difference; [`complementary_cells`] hides more. A hospital
/// whose n is hidden loses its group counts, share and rates; one whose group
/// count is hidden loses both group counts (n_r + n_c = n).
fn complementary_suppression(
    table: &mut [HospitalRow],
    used: &[usize],
    rows_of: &[Vec<usize>],
    count: impl Fn(usize, u32) -> usize,
    min_cell: usize,
) {
    let n: Vec<usize> = used.iter().map(|&l| rows_of[l].len()).collect();
    let mut hide_n: Vec<bool> = table.iter().map(|r| r.n.is_none()).collect();
    crate::privacy::complementary_cells(&n, &mut hide_n, min_cell);
    let mut hide_g: Vec<bool> = table
        .iter()
        .zip(&hide_n)
        .map(|(r, h)| *h || r.n_reference.is_none() || r.n_comparison.is_none())
        .collect();
    for g in [0u32, 1] {
        let v: Vec<usize> = used.iter().map(|&l| count(l, g)).collect();
        crate::privacy::complementary_cells(&v, &mut hide_g, min_cell);
    }
    for ((row, hn), hg) in table.iter_mut().zip(hide_n).zip(hide_g) {
        row.n_complementary = hn && row.n.is_some();
        row.groups_complementary =
            (hn || hg) && row.n_reference.is_some() && row.n_comparison.is_some();
        if hn {
            row.n = None;
            row.hide_rates();
        }
        if hn || hg {
            row.n_reference = None;
            row.n_comparison = None;
            row.comparison_share = None;
        }
    }
}

/// Complementary suppression of the rates of a binary outcome: a shown rate
/// times a shown n gives a hospital's events, and the total events are shown
/// (Table 1), so the hidden hospitals' events (and non-events) would add up
/// to a known number: a single hidden hospital, or hidden hospitals with
/// fewer than `min_cell` events or non-events together, take the shown
/// hospital with the fewest with them.
fn complementary_rates(
    table: &mut [HospitalRow],
    used: &[usize],
    rows_of: &[Vec<usize>],
    y: &[f64],
    min_cell: usize,
) {
    let events: Vec<usize> = used
        .iter()
        .map(|&l| rows_of[l].iter().filter(|&&i| y[i] != 0.0).count())
        .collect();
    let non_events: Vec<usize> = used
        .iter()
        .zip(&events)
        .map(|(&l, e)| rows_of[l].len() - e)
        .collect();
    let mut hide: Vec<bool> = table.iter().map(|r| r.observed.is_none()).collect();
    crate::privacy::complementary_cells(&events, &mut hide, min_cell);
    crate::privacy::complementary_cells(&non_events, &mut hide, min_cell);
    for (row, h) in table.iter_mut().zip(hide) {
        if h {
            row.hide_rates();
        }
    }
}

/// The care-site analysis with its inference.
pub fn hospital(
    input: &HospitalInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<HospitalOutput, DecomposeError> {
    let mut warnings = Vec::new();
    let n = group_sizes(
        input.sample.group,
        input.sample.labels,
        "the hospital analysis",
    )?;
    let h = &input.hospital;
    let cluster = input.sample.cluster.unwrap_or(Cluster {
        name: &h.variable,
        codes: &h.codes,
        count: h.levels,
    });
    let level = inference.level;
    // Common support.
    let mut count = vec![[0usize; 3]; h.levels];
    for (i, &g) in input.sample.group.iter().enumerate() {
        count[h.codes[i] as usize][(g as usize).min(2)] += 1;
    }
    let only = |g: usize| -> (usize, usize) {
        let hs: Vec<usize> = (0..h.levels)
            .filter(|&l| count[l][g] > 0 && count[l][1 - g] == 0)
            .collect();
        (hs.len(), hs.iter().map(|&l| count[l][g]).sum())
    };
    let ((hr, pr), (hc, pc)) = (only(0), only(1));
    if hr + hc > 0 {
        let pct = |k: usize, g: usize| share_text(k, n[g], input.sample.min_cell);
        warnings.push(format!(
            "common support: {hr} hospital(s) treat {} patients only ({} of them) and {hc} \
             hospital(s) {} patients only ({} of them); their reference rate is the \
             comparison group's own, so they count as between-hospital",
            input.sample.labels[0],
            pct(pr, 0),
            input.sample.labels[1],
            pct(pc, 1)
        ));
    }
    // Linear parts from cells.
    let cov = Covariates {
        columns: input.covariates.columns.clone(),
        categoricals: input.covariates.categoricals.clone(),
        absorbed: Some(h.clone()),
    };
    let cells = Cells::build(
        input.sample.y,
        input.sample.group,
        &cov,
        input.sample.weights,
        Some(cluster.units()),
    );
    let p = cells.p();
    let adjusted = p > 1;
    let row_keys = keys(adjusted);
    let setup = Setup {
        base: FitSpec {
            groups: [true, true],
            indicator: true,
            absorb: false,
            columns: (0..p).collect(),
        },
        full: FitSpec {
            groups: [true, true],
            indicator: true,
            absorb: true,
            columns: (0..p).collect(),
        },
        shares: SHARES.positions(&row_keys),
        keys: row_keys,
        adjusted,
        cells,
    };
    let base = setup
        .cells
        .fit(&setup.base, None)
        .map_err(|e| singular_error(e, "model without hospital effects"))?;
    let full = setup
        .cells
        .fit(&setup.full, None)
        .map_err(|e| singular_error(e, "model with hospital effects"))?;
    let point = setup.values(None).map_err(DecomposeError::Input)?;
    let mut models: Vec<ModelSummary> = [
        ("LPM without hospital effects", &setup.base, &base, None),
        ("LPM with hospital effects", &setup.full, &full, Some(h)),
    ]
    .into_iter()
    .map(|(label, spec, fit, abs)| {
        linear_summary(
            &setup.cells,
            format!(
                "{label} ({} + {})",
                input.sample.labels[0], input.sample.labels[1]
            ),
            spec,
            fit,
            Some(cluster),
            abs,
            level,
        )
    })
    .collect();
    let stat = |m: &[f64]| setup.values(Some(m));
    // Always clustered (by the hospital when no cluster is configured).
    let resampled = Resampled {
        keys: &setup.keys,
        point: &point,
        spec: inference,
        clusters: Some(cluster.count),
        group: input.sample.group,
        weights: input.sample.weights,
    };
    let unclustered = || -> Result<Option<(Vec<f64>, SeMethod)>, DecomposeError> { Ok(None) };
    let no_rows = |_: &[f64], _: &[u32]| -> Result<Vec<f64>, String> { Err("clustered".into()) };
    let mut inferred = resampled_rows(
        &resampled,
        stat,
        unclustered,
        no_rows,
        progress,
        &mut warnings,
    )?;
    let mut estimates = std::mem::take(&mut inferred.rows);
    if inference.method == Method::Delta {
        // The coefficients carry their models' CR1 SEs (fixest counting).
        for (r, m) in [
            ("coefficient_without_fe", &models[0]),
            ("coefficient_with_fe", &models[1]),
        ] {
            if let (Some(row), Some(c)) = (
                estimates.iter_mut().find(|e| e.quantity == r),
                m.coefficients.first(),
            ) {
                *row = normal_row(r, c.estimate, c.se, level).made_by(SeMethod::DeltaCluster);
            }
        }
    }
    // Several FE sets: the LPM with all of them, row level.
    let pair = Rows {
        idx: (0..input.sample.group.len())
            .filter(|&i| input.sample.group[i] <= 1)
            .collect(),
    };
    let cl = cluster.units();
    if !input.extra_fe.is_empty() {
        let d = pair
            .design(input, true, cl)
            .map_err(DecomposeError::Model)?;
        let fit = Ols::new().fit(&d).map_err(DecomposeError::Model)?;
        let vc = fit
            .vcov(VcovKind::Cr1, cluster.name, SmallSample::default())
            .map_err(DecomposeError::Model)?;
        let names: Vec<&str> = std::iter::once(&input.hospital)
            .chain(&input.extra_fe)
            .map(|a| a.variable.as_str())
            .collect();
        if fit.singletons > 0 {
            warnings.push(format!(
                "{} singleton patient(s) dropped from the model with {}",
                count_text(fit.singletons, input.sample.min_cell),
                names.join(" + ")
            ));
        }
        let tau = fit.coef[0];
        let se = vc.se()[0];
        let label = format!(
            "LPM with {} effects ({} + {})",
            names.join(" + "),
            input.sample.labels[0],
            input.sample.labels[1]
        );
        models.push(fit.summary(&label, &vc, level));
        let mut row = normal_row("coefficient_with_all_fe", tau, se, level);
        row.term = None;
        estimates.push(row);
        warnings.push(format!(
            "coefficient_with_all_fe absorbs {}; its SE is CR1 (no bootstrap with several fixed-effect sets)",
            names.join(" + ")
        ));
    }
    // Logit contrasts.
    if input.sample.binary {
        let glm = Glm::logit();
        let fit = |fe: bool| -> Result<GlmFit, DecomposeError> {
            let d = pair.design(input, fe, cl).map_err(DecomposeError::Model)?;
            glm.fit(&d, None).map_err(|e| {
                DecomposeError::Input(format!(
                    "the logit {} hospital effects failed: {e}",
                    if fe { "with" } else { "without" }
                ))
            })
        };
        let (f0, f1) = (fit(false)?, fit(true)?);
        for (name, lv, rows) in &f1.dropped_fe {
            warnings.push(format!(
                "FE logit: {lv} level(s) of `{name}` with a constant outcome ({} patients) are dropped \
                 (perfectly predicted)",
                count_text(*rows, input.sample.min_cell)
            ));
        }
        let vcs: Vec<_> = [&f0, &f1]
            .iter()
            .map(|f| f.vcov(VcovKind::Cr1, cluster.name, SmallSample::default()))
            .collect::<Result<_, _>>()
            .map_err(DecomposeError::Model)?;
        let (s0, s1) = (vcs[0].se()[0], vcs[1].se()[0]);
        estimates.push(exp_row("odds_ratio_without_fe", f0.coef[0], s0, level));
        estimates.push(exp_row("odds_ratio_with_fe", f1.coef[0], s1, level));
        estimates.push(ame(&f0, s0, level, "ame_without_fe"));
        estimates.push(ame(&f1, s1, level, "ame_with_fe"));
        let c0 = f0.work.cluster.clone().unwrap_or_default();
        let c1 = f1.work.cluster.clone().unwrap_or_default();
        let joint = joint_cr1(
            &[
                JointPart {
                    parts: f0.sandwich_parts(),
                    cluster: &c0,
                },
                JointPart {
                    parts: f1.sandwich_parts(),
                    cluster: &c1,
                },
            ],
            cluster.count,
        )
        .map_err(DecomposeError::Model)?;
        let k0 = f0.coef.len();
        let kt = k0 + f1.coef.len();
        let var = joint[0] + joint[k0 * kt + k0] - 2.0 * joint[k0];
        estimates.push(normal_row(
            "log_odds_ratio_change",
            f0.coef[0] - f1.coef[0],
            var.max(0.0).sqrt(),
            level,
        ));
        let fe_names: Vec<&str> = std::iter::once(&input.hospital)
            .chain(&input.extra_fe)
            .map(|a| a.variable.as_str())
            .collect();
        let with_label = if input.extra_fe.is_empty() {
            "logit with hospital effects".to_string()
        } else {
            format!("logit with {} effects", fe_names.join(" + "))
        };
        for (f, vc, label) in [
            (&f0, &vcs[0], "logit without hospital effects".to_string()),
            (&f1, &vcs[1], with_label),
        ] {
            models.push(f.summary(
                &format!(
                    "{label} ({} + {})",
                    input.sample.labels[0], input.sample.labels[1]
                ),
                vc,
                level,
            ));
        }
        if inference.method == Method::Bootstrap {
            warnings.push(
                "the logit contrasts use the joint CR1 sandwich (delta method), not the bootstrap"
                    .into(),
            );
        }
    }
    // Profiling.
    let profile = profile(input, inference, cluster)?;
    estimates.extend(profile.estimates);
    models.push(profile.model);
    warnings.extend(profile.warnings);
    inferred.withhold(profile.withheld, &mut warnings);
    unstable_shares(&mut estimates, &SHARES, &mut warnings);
    Ok(HospitalOutput {
        output: MethodOutput {
            estimates,
            models,
            warnings,
            replicates_ok: inferred.replicates_ok,
            withheld: inferred.withheld,
            balance: Vec::new(),
            inference_note: input.sample.binary.then(|| {
                "the ame_* rows' SEs go through the group coefficient only (the other \
                 coefficients, the hospital effects and the covariate distribution held fixed)"
                    .to_string()
            }),
            n: n[0] + n[1],
        },
        hospitals: profile.rows,
    })
}

/// Hospital profiling's output.
struct Profile {
    /// The hospital table (hospitals.csv).
    rows: Vec<HospitalRow>,
    /// Rates of minority-serving and other hospitals.
    estimates: Vec<Estimate>,
    /// The patient-level risk model.
    model: ModelSummary,
    warnings: Vec<String>,
    /// Why an interval was withheld (too many non-finite draws).
    withheld: Option<String>,
}

/// Hospital profiling (see the module doc).
fn profile(
    input: &HospitalInput<'_>,
    inference: &InferenceSpec,
    cluster: Cluster<'_>,
) -> Result<Profile, DecomposeError> {
    let h = &input.hospital;
    let level = inference.level;
    let min_cell = input.sample.min_cell;
    let mut warnings = Vec::new();
    let mut withheld = None;
    // Patient-level model over every patient.
    let all: Vec<usize> = (0..input.sample.y.len()).collect();
    let mut cols: Vec<(String, Vec<f64>)> = vec![("(intercept)".into(), vec![1.0; all.len()])];
    for c in &input.covariates.columns {
        cols.push((c.name.clone(), c.values.to_vec()));
    }
    let mut d =
        Design::from_columns("y", input.sample.y.to_vec(), cols).map_err(DecomposeError::Model)?;
    if let Some(w) = input.sample.weights {
        d = d.with_weights(w.to_vec());
    }
    d.cluster = Some(cluster.codes.to_vec());
    d.n_clusters = cluster.count;
    let (expected, summary): (Vec<f64>, ModelSummary) = if input.sample.binary {
        let f = Glm::logit().fit(&d, None).map_err(|e| {
            DecomposeError::Input(format!(
                "the profiling model (logit of the adjust covariates) failed: {e}"
            ))
        })?;
        let vc = f
            .vcov(VcovKind::Cr1, cluster.name, SmallSample::default())
            .map_err(DecomposeError::Model)?;
        let s = f.summary(
            "profiling model (all patients, no hospital effects)",
            &vc,
            level,
        );
        (f.eta.iter().map(|e| Link::Logit.cdf(*e)).collect(), s)
    } else {
        let f = Ols::new().fit(&d).map_err(DecomposeError::Model)?;
        let vc = f
            .vcov(VcovKind::Cr1, cluster.name, SmallSample::default())
            .map_err(DecomposeError::Model)?;
        let s = f.summary(
            "profiling model (all patients, no hospital effects)",
            &vc,
            level,
        );
        (
            input
                .sample
                .y
                .iter()
                .zip(&f.residuals)
                .map(|(y, e)| y - e)
                .collect(),
            s,
        )
    };
    let w = |i: usize| input.sample.weights.map_or(1.0, |w| w[i]);
    let wsum: f64 = (0..input.sample.y.len()).map(w).sum();
    let overall: f64 = (0..input.sample.y.len())
        .map(|i| w(i) * input.sample.y[i])
        .sum::<f64>()
        / wsum;
    // Rows of each hospital.
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); h.levels];
    for (i, &c) in h.codes.iter().enumerate() {
        rows_of[c as usize].push(i);
    }
    let sums = |rows: &[usize]| -> (f64, f64, f64) {
        rows.iter().fold((0.0, 0.0, 0.0), |(sw, so, se), &i| {
            (
                sw + w(i),
                so + w(i) * input.sample.y[i],
                se + w(i) * expected[i],
            )
        })
    };
    let reps = if inference.method == Method::Bootstrap {
        inference.replicates.max(2)
    } else {
        500
    };
    let key = stream_key(
        inference.seed,
        &format!("{}/profiling", inference.analysis_id),
    );
    // Per hospital and replicate: resampled (Σw, Σwy, Σw p̂).
    let draws: Vec<Vec<(f64, f64, f64)>> = rows_of
        .par_iter()
        .enumerate()
        .map(|(l, rows)| {
            let mut rng = ChaCha8Rng::seed_from_u64(key);
            rng.set_stream(l as u64);
            (0..reps)
                .map(|_| {
                    let mut t = (0.0, 0.0, 0.0);
                    for _ in 0..rows.len() {
                        let i = rows[rng.random_range(0..rows.len())];
                        t.0 += w(i);
                        t.1 += w(i) * input.sample.y[i];
                        t.2 += w(i) * expected[i];
                    }
                    t
                })
                .collect()
        })
        .collect();
    // Comparison-group share, minority-serving hospitals.
    let count = |l: usize, g: u32| {
        rows_of[l]
            .iter()
            .filter(|&&i| input.sample.group[i] == g)
            .count()
    };
    let used: Vec<usize> = (0..h.levels).filter(|&l| !rows_of[l].is_empty()).collect();
    let share: Vec<f64> = (0..h.levels)
        .map(|l| {
            if rows_of[l].is_empty() {
                0.0
            } else {
                count(l, 1) as f64 / rows_of[l].len() as f64
            }
        })
        .collect();
    let mut by_share = used.clone();
    by_share.sort_by(|a, b| share[*b].total_cmp(&share[*a]).then(a.cmp(b)));
    let n_msh = used.len().div_ceil(10);
    let mut msh = vec![false; h.levels];
    for &l in &by_share[..n_msh] {
        msh[l] = true;
    }
    // Concentration: share of comparison patients at the top hospitals by comparison volume.
    let mut by_volume = used.clone();
    by_volume.sort_by(|a, b| count(*b, 1).cmp(&count(*a, 1)).then(a.cmp(b)));
    let total_c: usize = used.iter().map(|&l| count(l, 1)).sum();
    let total_r: usize = used.iter().map(|&l| count(l, 0)).sum();
    let mut estimates = Vec::new();
    // Cumulative shares are rounded to multiples of max(1%, min_cell / group
    // size): with few hospitals a step of the curve is one hospital, and the
    // exact shares times the (shown) group size would give its counts, which
    // hospitals.csv suppresses. Rounded, a step is known only to about
    // ±min_cell patients.
    let rounded = |cum: usize, total: usize| -> f64 {
        let total = total.max(1) as f64;
        let q = (min_cell as f64 / total).max(0.01);
        ((cum as f64 / total / q).round() * q).min(1.0)
    };
    for (q, frac) in [
        ("concentration_top_5pct", 0.05),
        ("concentration_top_25pct", 0.25),
    ] {
        let top = &by_volume[..((used.len() as f64 * frac).ceil() as usize).min(used.len())];
        let c: usize = top.iter().map(|&l| count(l, 1)).sum();
        let r: usize = top.iter().map(|&l| count(l, 0)).sum();
        estimates.push(Estimate::total(q, rounded(c, total_c)));
        estimates.push(Estimate::total(
            &format!("{q}_reference"),
            rounded(r, total_r),
        ));
    }
    // The concentration curve: the share of each group's patients treated at the
    // top 5%, 10%, …, 100% of hospitals ranked by comparison-group volume (20
    // points, rounded as above).
    let mut cum = (0usize, 0usize, 0usize);
    for k in 1..=20usize {
        let upto = (used.len() * k).div_ceil(20).min(used.len());
        while cum.0 < upto {
            let l = by_volume[cum.0];
            cum.1 += count(l, 1);
            cum.2 += count(l, 0);
            cum.0 += 1;
        }
        let term = format!("hospitals={}%", 5 * k);
        let mut c = Estimate::total("concentration_curve", rounded(cum.1, total_c));
        c.term = Some(term.clone());
        let mut r = Estimate::total("concentration_curve_reference", rounded(cum.2, total_r));
        r.term = Some(term);
        estimates.push(c);
        estimates.push(r);
    }
    // Outcomes at minority-serving hospitals vs the rest, by group (cluster-robust means).
    let pair_codes = |inside: bool| -> Vec<u32> {
        (0..input.sample.y.len())
            .map(|i| {
                if msh[h.codes[i] as usize] == inside {
                    input.sample.group[i].min(2)
                } else {
                    2
                }
            })
            .collect()
    };
    for (inside, suffix) in [(true, "minority_serving"), (false, "other_hospitals")] {
        let codes = pair_codes(inside);
        let sample = Sample {
            group: &codes,
            cluster: Some(cluster),
            ..*input.sample
        };
        let input_means = CrudeInput {
            sample: &sample,
            level,
        };
        match group_means(&input_means) {
            Ok(m) => {
                estimates.push(normal_row(
                    &format!("reference_mean_{suffix}"),
                    m.m_r,
                    m.v_r.sqrt(),
                    level,
                ));
                estimates.push(normal_row(
                    &format!("comparison_mean_{suffix}"),
                    m.m_c,
                    m.v_c.sqrt(),
                    level,
                ));
            }
            Err(e) => warnings.push(format!("outcome means at {suffix} hospitals: {e}")),
        }
        // Risk-standardized rate of the hospital set, with the profiling draws.
        let set: Vec<usize> = used.iter().copied().filter(|&l| msh[l] == inside).collect();
        let point = {
            let (mut o, mut e) = (0.0, 0.0);
            for &l in &set {
                let (_, so, se) = sums(&rows_of[l]);
                o += so;
                e += se;
            }
            o / e * overall
        };
        let reps_v: Vec<f64> = (0..reps)
            .map(|r| {
                let (mut o, mut e) = (0.0, 0.0);
                for &l in &set {
                    o += draws[l][r].1;
                    e += draws[l][r].2;
                }
                o / e * overall
            })
            .filter(|v| v.is_finite())
            .collect();
        let name = format!("risk_standardized_rate_{suffix}");
        let row = Estimate::total(&name, point);
        let verdict = crate::inference::failure_verdict(
            &format!("profiling draws of {name}"),
            reps - reps_v.len(),
            reps,
            Some("a non-finite rate: no expected events in the draw"),
        );
        estimates.push(match verdict {
            Some(Err(why)) => {
                withheld.get_or_insert(why);
                row
            }
            other => {
                warnings.extend(other.and_then(Result::ok));
                let inf = infer(point, &reps_v, level, Interval::Percentile, None);
                row.with_inference(inf.se, inf.ci_low, inf.ci_high, f64::NAN)
                    .made_by(SeMethod::BootstrapPercentile)
            }
        });
    }
    // The hospital table, suppressed.
    let labels: Vec<String> = if input.pseudonymize {
        let mut order: Vec<usize> = (0..h.levels).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(stream_key(inference.seed, "pseudonyms"));
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let width = h.levels.to_string().len().max(3);
        let mut out = vec![String::new(); h.levels];
        for (k, &l) in order.iter().enumerate() {
            out[l] = format!("H{:0width$}", k + 1);
        }
        out
    } else {
        h.labels.clone()
    };
    let mut table = Vec::new();
    for &l in &used {
        let rows = &rows_of[l];
        let (sw, so, se) = sums(rows);
        let events: usize = rows.iter().filter(|&&i| input.sample.y[i] != 0.0).count();
        let safe_rate =
            !input.sample.binary || (events >= min_cell && rows.len() - events >= min_cell);
        let (nr, nc) = (count(l, 0), count(l, 1));
        let groups_shown = nr >= min_cell && nc >= min_cell;
        let rs = so / se * overall;
        let reps_v: Vec<f64> = draws[l]
            .iter()
            .map(|t| t.1 / t.2 * overall)
            .filter(|v| v.is_finite())
            .collect();
        let inf = infer(rs, &reps_v, level, Interval::Percentile, None);
        let show = |v: f64| (safe_rate && rows.len() >= min_cell && v.is_finite()).then_some(v);
        table.push(HospitalRow {
            hospital: labels[l].clone(),
            n: suppressed(rows.len(), min_cell),
            n_reference: groups_shown.then_some(nr),
            n_comparison: groups_shown.then_some(nc),
            comparison_share: (groups_shown && rows.len() >= min_cell).then_some(share[l]),
            minority_serving: msh[l],
            n_complementary: false,
            groups_complementary: false,
            observed: show(so / sw),
            expected: show(se / sw),
            risk_standardized: show(rs),
            rs_low: show(inf.ci_low),
            rs_high: show(inf.ci_high),
        });
    }
    complementary_suppression(&mut table, &used, &rows_of, count, min_cell);
    if input.sample.binary {
        complementary_rates(&mut table, &used, &rows_of, input.sample.y, min_cell);
    }
    // Rows in label order (numeric labels by value).
    table.sort_by(
        |a, b| match (a.hospital.parse::<f64>(), b.hospital.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => a.hospital.cmp(&b.hospital),
        },
    );
    let hidden = table
        .iter()
        .filter(|r| r.risk_standardized.is_none())
        .count();
    if hidden > 0 {
        warnings.push(format!(
            "{hidden} hospital(s) have their rates suppressed in hospitals.csv (fewer than {min_cell} \
             patients, events or non-events)"
        ));
    }
    Ok(Profile {
        rows: table,
        estimates,
        model: summary,
        warnings,
        withheld,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::covariates::Covariates;

    /// Three hospitals, by hand: shares and rates
    /// r: h0 50% at 0.10, h1 30% at 0.20, h2 20% at 0.30 (ȳ_r = 0.17);
    /// c: h0 10% at 0.20, h1 30% at 0.30, h2 60% at 0.40 (ȳ_c = 0.35).
    /// between = Σ (s_c − s_r) μ_r = (−0.4)(0.1) + 0 (0.2) + 0.4 (0.3) = 0.08;
    /// within = Σ s_c (μ_c − μ_r) = 0.1·0.1 + 0.3·0.1 + 0.6·0.1 = 0.10.
    #[test]
    fn kitagawa_by_hand_on_three_hospitals() {
        let mut y = Vec::new();
        let mut g = Vec::new();
        let mut h = Vec::new();
        let mut add = |grp: u32, hosp: u32, n: usize, events: usize| {
            for k in 0..n {
                y.push(f64::from(u8::from(k < events)));
                g.push(grp);
                h.push(hosp);
            }
        };
        add(0, 0, 50, 5);
        add(0, 1, 30, 6);
        add(0, 2, 20, 6);
        add(1, 0, 10, 2);
        add(1, 1, 30, 9);
        add(1, 2, 60, 24);
        let cov = Covariates::default();
        let cells = Cells::build(
            &y,
            &g,
            &Covariates {
                absorbed: Some(Absorbed {
                    variable: "h".into(),
                    factor: "care".into(),
                    codes: h.to_vec(),
                    levels: 3,
                    labels: vec!["a".into(), "b".into(), "c".into()],
                }),
                ..cov
            },
            None,
            Some((&h, 3)),
        );
        let setup = Setup {
            base: FitSpec {
                groups: [true, true],
                indicator: true,
                absorb: false,
                columns: vec![0],
            },
            full: FitSpec {
                groups: [true, true],
                indicator: true,
                absorb: true,
                columns: vec![0],
            },
            shares: SHARES.positions(&keys(false)),
            keys: keys(false),
            adjusted: false,
            cells,
        };
        let v = setup.values(None).unwrap();
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(v[0], 0.18);
        close(v[1], 0.08);
        close(v[2], 0.10);
        close(v[1] + v[2], v[0]);
        close(v[3] + v[4], v[0]);
        // Symmetric: between = Σ (s_c − s_r)(μ_c + μ_r)/2 = −0.4·0.15 + 0 + 0.4·0.35 = 0.08.
        close(v[3], 0.08);
        close(v[4], 0.10);
    }
}
