//! The natural effects of the group gap: the two groups' rows as a
//! single-mediator problem with exposure 1{comparison}, the natural-effect
//! rows (delta method or bootstrap), the closed forms and odds ratios, the
//! E-value of the indirect effect and the ρ-sensitivity curve.

use super::model::{Family, Fitted, MediationInput, closed_form, fit};
use crate::error::DecomposeError;
use crate::inference::{InferenceSpec, delta_rows, exp_row, normal_row};
use crate::result::Estimate;
use crate::sample::Sample;
use crate::sensitivity::{e_value, e_value_of_limit, rho_sensitivity};

/// Inputs of a mediation analysis of the group gap: exposure 1{comparison},
/// one mediator column, confounders.
pub struct GroupMediationInput<'a> {
    /// The outcome, groups, weights and cluster.
    pub sample: &'a Sample<'a>,
    /// The mediator: name and values.
    pub mediator: (&'a str, &'a [f64]),
    /// Confounders: name and values.
    pub confounders: Vec<(String, &'a [f64])>,
    /// Exposure–mediator interaction.
    pub interaction: bool,
    /// Monte-Carlo draws per row where the natural effects have no closed form.
    pub draws: usize,
    /// Seed of the Monte-Carlo draws.
    pub seed: u64,
    /// Confidence level.
    pub level: f64,
}

/// The six natural effects from the potential means [y00, y01, y10, y11]:
/// total, direct, indirect, direct (treated), indirect (control), proportion
/// mediated; then the shares of the total effect, indirect then direct
/// ([`SHARES`]).
fn natural_effects(m: &[f64; 4]) -> Vec<f64> {
    let [y00, y01, y10, y11] = *m;
    let total = y11 - y00;
    vec![
        total,
        y10 - y00,
        y11 - y10,
        y11 - y01,
        y01 - y00,
        (y11 - y10) / total,
        (y11 - y10) / total,
        (y10 - y00) / total,
    ]
}

/// Shares of the total effect: through the mediator and direct.
pub(super) const SHARES: crate::shares::ShareSpec = crate::shares::ShareSpec {
    total: "total_effect",
    blocks: None,
    named: &["indirect_effect", "direct_effect"],
};

/// The six natural-effect rows by the cluster bootstrap over `units` (codes
/// and count), or the row bootstrap without: both models are refitted on each
/// replicate's rows. Rows not drawn (multiplicity 0) are dropped before the
/// fit, since a weight of 0 is not a weight.
fn bootstrap_effects(
    mi: &MediationInput<'_>,
    keys: &[crate::inference::Key],
    point: &[f64],
    inference: &InferenceSpec,
    units: Option<(&[u32], usize)>,
    input: &GroupMediationInput<'_>,
    progress: &(dyn Fn() + Sync),
) -> crate::inference::Booted {
    let refit = |wr: &[f64]| -> Result<Vec<f64>, String> {
        let keep: Vec<usize> = (0..wr.len()).filter(|&i| wr[i] > 0.0).collect();
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let (y, a, m, w) = (pick(mi.y), pick(mi.exposure), pick(mi.mediator), pick(wr));
        let covs: Vec<(String, Vec<f64>)> = mi
            .covariates
            .iter()
            .map(|(n, v)| (n.clone(), pick(v)))
            .collect();
        let b = MediationInput {
            y: &y,
            exposure: &a,
            mediator: &m,
            covariates: covs
                .iter()
                .map(|(n, v)| (n.clone(), v.as_slice()))
                .collect(),
            weights: Some(&w),
            cluster: None,
            ..mi.clone_refs()
        };
        let fb = fit(&b).map_err(|e| e.to_string())?;
        let means = fb.potential_means(&fb.params(), 0.0, 1.0, input.draws, input.seed, false);
        Ok(natural_effects(&means))
    };
    let n = mi.y.len();
    let base_w: Vec<f64> = mi.weights.map_or_else(|| vec![1.0; n], <[f64]>::to_vec);
    match units {
        Some((c, g)) => crate::inference::bootstrap_rows(
            keys,
            point,
            inference,
            g,
            None,
            |m: &[f64]| {
                let wr: Vec<f64> = base_w
                    .iter()
                    .zip(c)
                    .map(|(w, k)| w * m[*k as usize])
                    .collect();
                refit(&wr)
            },
            progress,
        ),
        None => crate::inference::row_bootstrap(
            keys,
            point,
            inference,
            &vec![0; n],
            Some(&base_w),
            |wr, _| refit(wr),
            progress,
        ),
    }
}

/// The two groups' rows as a single-mediator problem: exposure 1{comparison},
/// the mediator, the confounders, weights and the units of the joint sandwich.
struct GroupData {
    /// Rows of the two groups (indexes into the input).
    rows: Vec<usize>,
    y: Vec<f64>,
    m: Vec<f64>,
    a: Vec<f64>,
    covs: Vec<(String, Vec<f64>)>,
    /// Cluster codes over the rows, when clustered.
    codes: Option<Vec<u32>>,
    /// The robust variance: no cluster, and every row its own unit.
    robust: bool,
    row_units: Vec<u32>,
    /// How the delta-method rows' SEs are made.
    delta_how: crate::result::SeMethod,
    weights: Option<Vec<f64>>,
    binary_mediator: bool,
}

impl GroupData {
    /// Picks the two groups' rows and decides the variance (clustered, robust
    /// or model-based).
    fn new(input: &GroupMediationInput<'_>, inference: &InferenceSpec) -> GroupData {
        let rows: Vec<usize> = (0..input.sample.group.len())
            .filter(|&i| input.sample.group[i] <= 1)
            .collect();
        let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let (y, m) = (pick(input.sample.y), pick(input.mediator.1));
        let a: Vec<f64> = rows
            .iter()
            .map(|&i| f64::from(input.sample.group[i]))
            .collect();
        let covs: Vec<(String, Vec<f64>)> = input
            .confounders
            .iter()
            .map(|(n, v)| (n.clone(), pick(v)))
            .collect();
        let codes: Option<Vec<u32>> = input.sample.units().map(|(c, _)| pick_codes(c, &rows));
        // The robust variance (no cluster): every row its own unit of the joint
        // sandwich of both models.
        let robust =
            input.sample.units().is_none() && inference.vce != crate::inference::Vce::Model;
        let row_units: Vec<u32> = if robust {
            (0..rows.len() as u32).collect()
        } else {
            Vec::new()
        };
        let delta_how = match (input.sample.units(), robust) {
            (Some(_), _) => crate::result::SeMethod::DeltaCluster,
            (None, true) => crate::result::SeMethod::DeltaRobust,
            (None, false) => crate::result::SeMethod::DeltaModel,
        };
        let weights: Option<Vec<f64>> = input.sample.weights.map(pick);
        let binary_mediator = m.iter().all(|v| *v == 0.0 || *v == 1.0);
        GroupData {
            rows,
            y,
            m,
            a,
            covs,
            codes,
            robust,
            row_units,
            delta_how,
            weights,
            binary_mediator,
        }
    }

    /// The single-mediator input over these rows: logit models for a 0/1
    /// mediator or outcome, linear otherwise.
    fn mediation_input(&self, input: &GroupMediationInput<'_>) -> MediationInput<'_> {
        MediationInput {
            y: &self.y,
            exposure: &self.a,
            mediator: &self.m,
            covariates: self
                .covs
                .iter()
                .map(|(n, v)| (n.clone(), v.as_slice()))
                .collect(),
            mediator_family: if self.binary_mediator {
                Family::Logit
            } else {
                Family::Linear
            },
            outcome_family: if input.sample.binary {
                Family::Logit
            } else {
                Family::Linear
            },
            interaction: input.interaction,
            cluster: match input.sample.units() {
                Some((_, g)) => self.codes.as_deref().map(|c| (c, g)),
                None if self.robust => Some((self.row_units.as_slice(), self.rows.len())),
                None => None,
            },
            weights: self.weights.as_deref(),
        }
    }
}

/// Both models fitted, with the natural-effect rows.
struct Natural {
    f: Fitted,
    /// θ̂ = (β, θ, σ²).
    p: Vec<f64>,
    /// The mean potential outcomes [y00, y01, y10, y11].
    potential: [f64; 4],
    /// The six natural-effect rows and their shares (delta method or bootstrap).
    inferred: crate::inference::Inferred,
}

/// Fits both models and makes the natural-effect rows: delta method, or the
/// cluster (or row) bootstrap with both models refitted per replicate.
fn natural_effect_rows(
    mi: &MediationInput<'_>,
    data: &GroupData,
    input: &GroupMediationInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
    warnings: &mut Vec<String>,
) -> Result<Natural, DecomposeError> {
    let f = fit(mi)?;
    let p = f.params();
    let names = [
        "total_effect",
        "direct_effect",
        "indirect_effect",
        "direct_effect_treated",
        "indirect_effect_control",
        "proportion_mediated",
    ];
    let potential = f.potential_means(&p, 0.0, 1.0, input.draws, input.seed, false);
    let point = natural_effects(&potential);
    let var = f.delta_of_means(0.0, 1.0, natural_effects);
    let mut keys: Vec<crate::inference::Key> =
        names.iter().map(|n| (n.to_string(), None, None)).collect();
    let shares = SHARES.keys(&keys);
    keys.extend(shares);
    let estimates = delta_rows(&keys, &point, Some(&var), input.level, data.delta_how);
    let mut inferred = crate::inference::Inferred::delta(estimates);
    if inference.method == crate::inference::Method::Bootstrap {
        let units = data.codes.as_deref().zip(input.sample.units().map(|c| c.1));
        let booted = bootstrap_effects(mi, &keys, &point, inference, units, input, progress);
        inferred = crate::inference::Inferred::booted(booted, warnings);
    }
    let pm = point[5];
    if !(0.0..=1.0).contains(&pm) {
        warnings.push(format!(
            "the proportion mediated is {pm:.2}, outside [0, 1]: the direct and indirect effects have \
             opposite signs, and the proportion is not a share"
        ));
    }
    Ok(Natural {
        f,
        p,
        potential,
        inferred,
    })
}

/// The closed forms at the covariate means (the controlled direct effect at
/// the reference group's mean mediator); for binary outcomes the odds-ratio
/// rows, the marginal odds ratios of the potential means and the E-value of
/// the indirect effect.
fn closed_form_rows(
    f: &Fitted,
    p: &[f64],
    potential: [f64; 4],
    data: &GroupData,
    input: &GroupMediationInput<'_>,
    estimates: &mut Vec<Estimate>,
) {
    let (rows, m) = (&data.rows, &data.m);
    // Closed forms at the covariate means.
    let m_ref = {
        let (s, n) = rows
            .iter()
            .zip(m)
            .filter(|(i, _)| input.sample.group[**i] == 0)
            .fold((0.0, 0.0), |t, (_, v)| (t.0 + v, t.1 + 1.0));
        s / n
    };
    let cf = |q: &[f64]| closed_form(f, q, 0.0, 1.0, m_ref, &f.c_mean).to_vec();
    let cpoint = cf(p);
    let cvar = f.delta(cf);
    let level = input.level;
    if input.sample.binary {
        for (name, idx) in [
            ("controlled_direct_effect_or", 0),
            ("direct_effect_or", 1),
            ("indirect_effect_or", 4),
            ("total_effect_or", 5),
        ] {
            estimates.push(exp_row(name, cpoint[idx], cvar[idx].sqrt(), level));
        }
        // Marginal odds ratios of the potential means (log scale for the SEs).
        let logodds = |m: &[f64; 4]| -> Vec<f64> {
            let [y00, _, y10, y11] = *m;
            let lo = |v: f64| (v / (1.0 - v)).ln();
            vec![lo(y11) - lo(y00), lo(y10) - lo(y00), lo(y11) - lo(y10)]
        };
        let lpoint = logodds(&potential);
        let lvar = f.delta_of_means(0.0, 1.0, logodds);
        for (k, name) in [
            "total_effect_marginal_or",
            "direct_effect_marginal_or",
            "indirect_effect_marginal_or",
        ]
        .iter()
        .enumerate()
        {
            estimates.push(exp_row(name, lpoint[k], lvar[k].sqrt(), level));
        }
        let [_, _, y10, y11] = potential;
        let source = estimates.iter().find(|e| e.quantity == "indirect_effect");
        let limit = source.and_then(|e| e_value_of_limit(y10, e.ci_low, e.ci_high));
        // Its limit is made from the indirect effect's interval, and says so.
        let how = source.map_or(crate::result::SeMethod::None, |e| e.se_method);
        let mut ev = Estimate::total("e_value_indirect_effect", e_value(y11 / y10));
        ev.ci_low = limit;
        if limit.is_some() {
            ev.se_method = how;
        }
        estimates.push(ev);
    } else {
        estimates.push(normal_row(
            "controlled_direct_effect",
            cpoint[0],
            cvar[0].sqrt(),
            level,
        ));
    }
}

/// For a linear mediator and outcome, ACME(ρ) for ρ = −0.9…0.9 and the ρ
/// where it crosses 0.
fn rho_rows(
    mi: &MediationInput<'_>,
    data: &GroupData,
    input: &GroupMediationInput<'_>,
    estimates: &mut Vec<Estimate>,
    warnings: &mut Vec<String>,
) -> Result<(), DecomposeError> {
    if !input.sample.binary && !data.binary_mediator {
        let rhos: Vec<f64> = (-9..=9).map(|k| f64::from(k) / 10.0).collect();
        let (acme, zero) = rho_sensitivity(mi, &rhos)?;
        for (r, v) in rhos.iter().zip(acme) {
            let mut e = Estimate::total("indirect_effect_at_rho", v);
            e.term = Some(format!("rho={r:.1}"));
            estimates.push(e);
        }
        estimates.push(Estimate::total("rho_at_zero_indirect_effect", zero));
        if input.interaction {
            warnings
                .push("the ρ-sensitivity curve assumes no exposure–mediator interaction".into());
        }
    }
    Ok(())
}

/// Mediation of the gap between the groups (exposure a0 = reference, a1 =
/// comparison). Rows (risk-difference scale for binary outcomes, averaged
/// over both groups' rows): `total_effect` = E[Y(1, M(1))] − E[Y(0, M(0))],
/// `direct_effect` = E[Y(1, M(0))] − E[Y(0, M(0))] (pure natural direct),
/// `indirect_effect` = E[Y(1, M(1))] − E[Y(1, M(0))] (total natural indirect),
/// `direct_effect_treated`, `indirect_effect_control`, `proportion_mediated`;
/// for binary outcomes the same total, direct and indirect effects as marginal
/// odds ratios of the potential means (`*_marginal_or`);
/// the closed forms at the covariate means (`controlled_direct_effect` at the
/// reference group's mean mediator, and for binary outcomes the odds-ratio rows
/// `*_or`); for binary outcomes the E-value of E[Y(1, M(1))]/E[Y(1, M(0))];
/// for a linear mediator and outcome, ACME(ρ) for ρ = −0.9…0.9
/// (`indirect_effect_at_rho`, term `rho=…`) and the ρ where it crosses 0.
/// Delta-method SEs (joint cluster sandwich of both models when clustered);
/// with `inference` = bootstrap, the six natural-effect rows come from the
/// cluster (or row) bootstrap, both models refitted on each replicate's weights.
pub fn group_mediation(
    input: &GroupMediationInput<'_>,
    inference: &InferenceSpec,
    progress: &(dyn Fn() + Sync),
) -> Result<crate::result::MethodOutput, DecomposeError> {
    let data = GroupData::new(input, inference);
    let mi = data.mediation_input(input);
    let mut warnings: Vec<String> = Vec::new();
    let Natural {
        f,
        p,
        potential,
        inferred,
    } = natural_effect_rows(&mi, &data, input, inference, progress, &mut warnings)?;
    let replicates_ok = inferred.replicates_ok;
    let withheld = inferred.withheld.clone();
    let mut estimates = inferred.rows;
    closed_form_rows(&f, &p, potential, &data, input, &mut estimates);
    rho_rows(&mi, &data, input, &mut estimates, &mut warnings)?;
    // Every row not from the bootstrap is a delta-method row.
    for e in &mut estimates {
        e.tag_untagged(data.delta_how);
    }
    crate::shares::unstable_shares(&mut estimates, &SHARES, &mut warnings);
    if inference.method == crate::inference::Method::Bootstrap {
        warnings.push(
            "only the six natural-effect rows (and their shares, and the E-value's limit made from \
             them) are bootstrapped; the closed forms and odds ratios keep delta-method intervals \
             (se_method says which)"
                .into(),
        );
    }
    Ok(crate::result::MethodOutput {
        estimates,
        models: f.models.clone(),
        warnings,
        replicates_ok,
        withheld,
        balance: Vec::new(),
        learners: None,
        inference_note: Some(
            "the delta method stacks both models (robust, clustered or model-based blocks) but \
             holds fixed the covariate distribution the potential means average over, and gives \
             a linear mediator's residual variance its normal-theory variance"
                .into(),
        ),
        n: data.rows.len(),
    })
}

fn pick_codes(c: &[u32], rows: &[usize]) -> Vec<u32> {
    rows.iter().map(|&i| c[i]).collect()
}
