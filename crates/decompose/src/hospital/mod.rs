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

use crate::covariates::{Absorbed, Covariates};
use crate::error::{DecomposeError, group_sizes};
use crate::inference::InferenceSpec;
use crate::result::MethodOutput;
use crate::sample::{CellSample, Cluster, Sample};
use crate::shares::unstable_shares;
use crate::spec::{Breakdown, CellSource, Context, Designs, Parts, Ran, Role, Spec, cite, joined};

use fe_contrast::{Rows, all_fe_contrast, logit_contrasts};
pub use hierarchical::{HierarchicalRow, HierarchicalSpec};
use kitagawa::{CellContext, SHARES, cell_rows, cells_of_rows};
use profile::profile;

mod fe_contrast;
mod hierarchical;
mod kitagawa;
mod profile;

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
    /// `fixed_effects` (default) or `hierarchical` (adds the random-effects
    /// model; the fixed-effect contrasts stay as the sensitivity check).
    #[serde(default)]
    pub model: HospitalModel,
    /// Hierarchical model: a correlated random slope on the comparison indicator.
    #[serde(default)]
    pub random_slope: bool,
    /// Hierarchical model: adaptive Gauss–Hermite nodes (1 = Laplace; more
    /// only without a random slope).
    #[serde(default = "one")]
    pub quadrature: usize,
    /// Hierarchical model: `logit` (default) or `probit` for a binary outcome.
    #[serde(default)]
    pub link: HierarchicalLink,
    /// Hierarchical model: hospital-bootstrap replicates for the
    /// risk-standardized rates' intervals and the split's SEs (0: none).
    #[serde(default = "default_hospital_replicates")]
    pub replicates: usize,
}

fn one() -> usize {
    1
}

fn default_hospital_replicates() -> usize {
    500
}

/// The care-site model of `method = "hospital"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HospitalModel {
    /// Fixed-effect contrasts and profiling only.
    #[default]
    FixedEffects,
    /// Also the hierarchical (random-effects) model.
    Hierarchical,
}

/// The link of the hierarchical model for a binary outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HierarchicalLink {
    /// Logistic.
    #[default]
    Logit,
    /// Probit.
    Probit,
}

impl Spec for HospitalSpec {
    fn name(&self) -> &'static str {
        "hospital"
    }

    /// The Kitagawa split and the LPM contrast run from cells; the
    /// hierarchical model and further fixed-effect sets need the rows.
    fn needs_rows(&self, _inference: &InferenceSpec) -> Option<DecomposeError> {
        let (what, reason) = if self.model == HospitalModel::Hierarchical {
            (
                "method = \"hospital\" with model = \"hierarchical\"",
                "the mixed model's conditional modes are solved hospital by hospital over the rows",
            )
        } else if !self.absorb.is_empty() {
            (
                "method = \"hospital\" with absorb = […]",
                "the model with several fixed-effect sets is fitted by alternating projections \
                 over the rows",
            )
        } else {
            return None;
        };
        Some(DecomposeError::NeedsRows {
            what: what.into(),
            reason: reason.into(),
            alternative: ", or remove that key (the Kitagawa split and the fixed-effect contrast \
                          run from moments)"
                .into(),
        })
    }

    /// From the (group × hospital × cluster) cells: the Kitagawa splits and
    /// the LPM contrast with their inference. The logit contrasts and the
    /// profiles need each patient's fitted outcome: not computed, each named
    /// in a warning.
    fn run_cells(
        &self,
        sample: &CellSample<'_>,
        source: &dyn CellSource,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        if let Some(refusal) = self.needs_rows(inference) {
            return Err(refusal);
        }
        let adjust: Vec<String> = source
            .expand(&self.adjust)
            .into_iter()
            .filter(|v| v != &self.hospital)
            .collect();
        let (cov, cells) = source.absorbed_cells(&adjust, &self.hospital)?;
        let sample = &sample.with_clusters_of(&cells);
        let Some(hospital) = cov.absorbed.as_ref() else {
            return Err(DecomposeError::NotCategorical {
                variable: self.hospital.clone(),
            });
        };
        let Some(cluster) = sample.cluster else {
            return Err(DecomposeError::Design(
                "the hospital analysis from moments needs [design] cluster".into(),
            ));
        };
        let n = cells.group_rows(sample.labels, "the hospital analysis")?;
        let context = CellContext {
            labels: sample.labels,
            min_cell: sample.min_cell,
            hospital,
            cluster,
        };
        let mut warnings = Vec::new();
        let (mut estimates, models, inferred) =
            cell_rows(cells, &context, inference, progress, &mut warnings)?;
        unstable_shares(&mut estimates, &SHARES, &mut warnings);
        let mut missing = vec![
            "the hospital profiles (risk-standardized rates, hospitals.csv, concentration) need \
             each patient's expected outcome",
        ];
        if sample.binary {
            missing.insert(
                0,
                "the logit contrasts (odds ratios, average marginal effects) are fitted over the \
                 rows",
            );
        }
        warnings.push(format!(
            "from the warehouse's moments the hospital analysis computes the Kitagawa split and \
             the fixed-effect contrast of the linear model only: {}; they are not computed \
             (they need patient rows)",
            missing.join(", and ")
        ));
        let output = MethodOutput {
            estimates,
            models,
            warnings,
            replicates_ok: inferred.replicates_ok,
            withheld: inferred.withheld,
            balance: Vec::new(),
            learners: None,
            inference_note: None,
            n: n[0] + n[1],
        };
        // Clustered, as on the rows.
        Ok(Ran::delta(
            output,
            &inference.clustered(),
            Some(cluster.name),
        ))
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
            return Err(DecomposeError::AbsorbedInAdjust {
                variable: t.variable.clone(),
            });
        }
        let fixed_effects = |name: &str| {
            designs
                .absorbed(name, "care_site")
                .ok_or_else(|| DecomposeError::NotCategorical {
                    variable: name.to_string(),
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
            hierarchical: (self.model == HospitalModel::Hierarchical).then(|| HierarchicalSpec {
                random_slope: self.random_slope,
                quadrature: self.quadrature,
                probit: self.link == HierarchicalLink::Probit,
                replicates: self.replicates,
            }),
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

    fn check(&self, _vce: crate::inference::Vce) -> Result<(), String> {
        let hierarchical = self.model == HospitalModel::Hierarchical;
        let asked = self.random_slope
            || self.quadrature != 1
            || self.link != HierarchicalLink::default()
            || self.replicates != default_hospital_replicates();
        if !hierarchical && asked {
            return Err(
                "random_slope, quadrature, link and replicates set the hierarchical model; add \
                 model = \"hierarchical\" (or remove them)"
                    .into(),
            );
        }
        if self.quadrature == 0 {
            return Err("quadrature must be at least 1 (1 is the Laplace approximation)".into());
        }
        if self.quadrature > 1 && self.random_slope {
            return Err(format!(
                "quadrature = {} is for the random-intercept model; with random_slope = true use the \
                 Laplace approximation (quadrature = 1)",
                self.quadrature
            ));
        }
        if self.quadrature > 50 {
            return Err(format!(
                "quadrature = {} is more nodes than needed; use at most 50",
                self.quadrature
            ));
        }
        Ok(())
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

    fn describe(&self, context: &Context, cite: &mut Vec<&'static str>) -> String {
        if context.from_moments {
            cite.push(cite::KITAGAWA);
            return format!(
                "The care-site analysis split the gap into between- and within-hospital parts \
                 (Kitagawa 1955) and compared the group coefficient of a linear probability model \
                 adjusting for {} without and with {} fixed effects, both from per-cell moments \
                 computed in the warehouse; the hospital profiles and the logit contrasts, which \
                 need each patient's fitted outcome, were not computed.",
                joined(&self.adjust),
                self.hospital
            );
        }
        cite.extend([cite::KITAGAWA, cite::KRUMHOLZ]);
        format!(
            "The care-site analysis split the gap into between- and within-hospital parts \
             (Kitagawa 1955), compared the group coefficient of a linear probability model \
             adjusting for {} without and with {} fixed effects, and profiled hospitals by \
             risk-standardized rates (observed over expected times the overall rate; Krumholz \
             et al. 2006).",
            joined(&self.adjust),
            self.hospital
        ) + &self.describe_hierarchical()
    }
}

impl HospitalSpec {
    /// The methods text of the hierarchical model (empty without it).
    fn describe_hierarchical(&self) -> String {
        if self.model != HospitalModel::Hierarchical {
            return String::new();
        }
        format!(
            " A hierarchical model (a {} mixed model with a random {} intercept{}, fitted by maximum likelihood with \
             the {} as lme4's glmer) gave the hospital SD, the median odds ratio and the intraclass correlation with \
             Wald intervals from the deviance's Hessian, a model-based split of the comparison group's outcome into \
             hospital sorting and within-hospital parts, and risk-standardized rates (predicted over expected times \
             the overall rate) with {} hospital-bootstrap replicates. Each replicate took one Newton step from the \
             full-sample estimates instead of refitting, re-solved each hospital's conditional mode and drew its \
             effects from their normal (Laplace) conditional distribution (Normand & Shahian 2007; Ash et al. 2012).",
            if self.link == HierarchicalLink::Probit {
                "probit"
            } else {
                "logistic (identity for continuous outcomes)"
            },
            self.hospital,
            if self.random_slope {
                " and a correlated random slope on the comparison group"
            } else {
                ""
            },
            if self.quadrature > 1 {
                format!(
                    "adaptive Gauss–Hermite quadrature with {} nodes",
                    self.quadrature
                )
            } else {
                "Laplace approximation".into()
            },
            self.replicates
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
    /// The hierarchical model, when asked for.
    pub hierarchical: Option<HierarchicalSpec>,
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
    /// The hierarchical model's results (with `model = "hierarchical"`).
    pub hierarchical: Option<HierarchicalRow>,
}

impl HospitalRow {
    /// Suppresses the observed, expected and risk-standardized rates.
    fn hide_rates(&mut self) {
        self.observed = None;
        self.expected = None;
        self.risk_standardized = None;
        self.rs_low = None;
        self.rs_high = None;
        self.hierarchical = None;
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
    let context = CellContext {
        labels: input.sample.labels,
        min_cell: input.sample.min_cell,
        hospital: h,
        cluster,
    };
    let (mut estimates, mut models, mut inferred) = cell_rows(
        cells_of_rows(input, cluster),
        &context,
        inference,
        progress,
        &mut warnings,
    )?;
    // Several FE sets: the LPM with all of them, row level.
    let pair = Rows {
        idx: (0..input.sample.group.len())
            .filter(|&i| input.sample.group[i] <= 1)
            .collect(),
    };
    if !input.extra_fe.is_empty() {
        all_fe_contrast(
            input,
            &pair,
            cluster,
            inference.level,
            &mut estimates,
            &mut models,
            &mut warnings,
        )?;
    }
    // Logit contrasts.
    if input.sample.binary {
        logit_contrasts(
            input,
            &pair,
            cluster,
            inference,
            &mut estimates,
            &mut models,
            &mut warnings,
        )?;
    }
    // The hierarchical model.
    let mut notes: Vec<String> = Vec::new();
    let hier = match &input.hierarchical {
        Some(spec) => {
            let h = hierarchical::hierarchical(input, spec, inference)?;
            estimates.extend(h.estimates);
            models.push(h.model);
            warnings.extend(h.warnings);
            inferred.withhold(h.withheld, &mut warnings);
            notes.push(h.note);
            Some(h.rows)
        }
        None => None,
    };
    // Profiling.
    let profile = profile(input, inference, cluster, hier.as_deref())?;
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
            learners: None,
            inference_note: {
                if input.sample.binary {
                    notes.insert(
                        0,
                        "the ame_* rows' SEs go through the group coefficient only (the other \
                         coefficients, the hospital effects and the covariate distribution held fixed)"
                            .to_string(),
                    );
                }
                (!notes.is_empty()).then(|| notes.join("; "))
            },
            n: n[0] + n[1],
        },
        hospitals: profile.rows,
    })
}
