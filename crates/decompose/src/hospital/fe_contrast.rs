//! The fixed-effect contrasts at the row level: the LPM with every
//! fixed-effect set when there are several, and for binary outcomes the logit
//! and FE logit group coefficients (odds ratios, average marginal effects;
//! the FE logit carries the incidental-parameter bias of O(1/n_h)).

use healthgap_models::vcov::{JointPart, joint_cr1};
use healthgap_models::{Design, Glm, GlmFit, ModelError, ModelSummary, Ols, SmallSample, VcovKind};

use super::HospitalInput;
use crate::error::DecomposeError;
use crate::inference::{InferenceSpec, Method, count_text, exp_row, normal_row};
use crate::result::Estimate;
use crate::sample::Cluster;

/// Rows of the two groups, as a dense design for the row-level models.
pub(super) struct Rows {
    pub(super) idx: Vec<usize>,
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

/// Several fixed-effect sets: the LPM with all of them at the row level
/// (CR1 SE), `coefficient_with_all_fe`.
pub(super) fn all_fe_contrast(
    input: &HospitalInput<'_>,
    pair: &Rows,
    cluster: Cluster<'_>,
    level: f64,
    estimates: &mut Vec<Estimate>,
    models: &mut Vec<ModelSummary>,
    warnings: &mut Vec<String>,
) -> Result<(), DecomposeError> {
    let cl = cluster.units();
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
    Ok(())
}

/// Binary outcomes: the logit and FE logit contrasts (odds ratios, average
/// marginal effects and the change in the log odds ratio under the joint CR1
/// sandwich of both fits).
pub(super) fn logit_contrasts(
    input: &HospitalInput<'_>,
    pair: &Rows,
    cluster: Cluster<'_>,
    inference: &InferenceSpec,
    estimates: &mut Vec<Estimate>,
    models: &mut Vec<ModelSummary>,
    warnings: &mut Vec<String>,
) -> Result<(), DecomposeError> {
    let level = inference.level;
    let cl = cluster.units();
    let glm = Glm::logit();
    let fit = |fe: bool| -> Result<GlmFit, DecomposeError> {
        let d = pair.design(input, fe, cl).map_err(DecomposeError::Model)?;
        glm.fit(&d, None).map_err(|error| DecomposeError::Fit {
            model: format!(
                "logit {} hospital effects",
                if fe { "with" } else { "without" }
            ),
            error,
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
    Ok(())
}
