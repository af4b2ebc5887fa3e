//! Causal mediation for one mediator (METHODS.md §6): the regression-based
//! closed forms of Valeri & VanderWeele (2013; SAS `%mediation`, R `regmedint`),
//! the natural effects of Imai, Keele & Tingley (2010) by exact plug-in or
//! Monte Carlo, the ρ-sensitivity of Imai, Keele & Yamamoto (2010) and
//! E-values (VanderWeele & Ding 2017).
//!
//! Models: mediator E[M | a, c] = β0 + β1 a + β2'c (OLS, residual variance
//! σ² = RSS/(n − p)) or logit; outcome g(E[Y | a, m, c]) = θ0 + θ1 a + θ2 m +
//! θ3 a m + θ4'c (OLS, logit or probit; θ3 only with the interaction).
//!
//! Closed forms (exposure a0 → a1, covariates at c, CDE at mediator value m):
//! - linear Y, linear M: CDE = (θ1 + θ3 m)Δa; PNDE = (θ1 + θ3(β0 + β1 a0 +
//!   β2'c))Δa; TNDE the same at a1; PNIE = (θ2 + θ3 a0)β1 Δa; TNIE = (θ2 +
//!   θ3 a1)β1 Δa; TE = PNDE + TNIE;
//! - logistic Y, linear M (log OR, rare outcome): PNDE = (θ1 + θ3(β0 + β1 a0 +
//!   β2'c + θ2σ²))Δa + ½θ3²σ²(a1² − a0²); TNIE = (θ2 + θ3 a1)β1 Δa;
//! - linear Y, logistic M: PNDE = (θ1 + θ3 expit(β0 + β1 a0 + β2'c))Δa; TNIE =
//!   (θ2 + θ3 a1)(expit(β0 + β1 a1 + β2'c) − expit(β0 + β1 a0 + β2'c));
//! - logistic Y, logistic M (OR): PNDE = e^{θ1Δa}(1 + e^{θ2 + θ3a1 + β0 + β1a0 +
//!   β2'c})/(1 + e^{θ2 + θ3a0 + β0 + β1a0 + β2'c}); TNIE = (1 + e^{β0+β1a0+β2'c})
//!   (1 + e^{θ2+θ3a1+β0+β1a1+β2'c}) / ((1 + e^{β0+β1a1+β2'c})(1 + e^{θ2+θ3a1+β0+β1a0+β2'c}));
//!   TE = PNDE·TNIE.
//!
//! "Marginal" evaluates at the covariate means. Delta-method SEs over
//! blockdiag(V_β, V_θ, V_σ²) (V_σ² = 2σ⁴/(n − p)), gradients by central
//! differences; ratios are handled on the log scale.

use crate::error::DecomposeError;
use crate::inference::InferenceSpec;
use crate::sample::Sample;
use crate::spec::{Breakdown, Context, Designs, Parts, Ran, Role, Spec, cite, joined};

pub use crate::sensitivity::{e_value, e_value_of_limit, rho_sensitivity};
pub(crate) use model::mediator_columns;
pub use model::{
    CLOSED_FORM, Family, Fitted, GH_NODES, MediationInput, closed_form, fit, gauss_hermite,
};
use natural::SHARES;
pub use natural::{GroupMediationInput, group_mediation};

mod model;
mod natural;

/// `method = "mediation"`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediationSpec {
    /// The mediator (one variable giving one column).
    pub mediators: Vec<String>,
    /// Confounders (variables or blocks).
    pub confounders: Vec<String>,
    /// Exposure–mediator interaction (default true).
    #[serde(default = "yes")]
    pub interaction: bool,
}

fn yes() -> bool {
    true
}

impl Spec for MediationSpec {
    fn name(&self) -> &'static str {
        "mediation"
    }

    fn needs_rows(&self, _inference: &InferenceSpec) -> Option<DecomposeError> {
        Some(DecomposeError::NeedsRows {
            what: "method = \"mediation\"".into(),
            reason: "the natural effects simulate each patient's mediator and outcome".into(),
            alternative: ", or use gelbach (how much of the group coefficient the mediator block explains), which runs from moments".into(),
        })
    }

    fn run(
        &self,
        sample: &Sample<'_>,
        designs: &dyn Designs,
        inference: &InferenceSpec,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Ran, DecomposeError> {
        let mediator = designs.covariates(&designs.expand(&self.mediators))?;
        if mediator.columns.len() != 1 || mediator.absorbed.is_some() {
            let cols: Vec<&str> = mediator.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(DecomposeError::MediatorColumns {
                mediators: self.mediators.join(", "),
                count: mediator.columns.len() + usize::from(mediator.absorbed.is_some()),
                columns: cols.join(", "),
            });
        }
        let confounders = designs.covariates(&designs.expand(&self.confounders))?;
        if let Some(t) = &confounders.absorbed {
            return Err(DecomposeError::AbsorbedConfounder {
                variable: t.variable.clone(),
            });
        }
        let input = GroupMediationInput {
            sample,
            mediator: (&mediator.columns[0].name, &mediator.columns[0].values),
            confounders: confounders
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.values.as_slice()))
                .collect(),
            interaction: self.interaction,
            draws: 25,
            seed: inference.seed,
            level: inference.level,
        };
        let output = group_mediation(&input, inference, progress)?;
        Ok(Ran::delta(output, inference, sample.cluster_name()))
    }

    fn roles(&self) -> Vec<Role> {
        vec![
            Role::covariates("mediators", &self.mediators),
            Role::covariates("confounders", &self.confounders),
        ]
    }

    fn breakdown(&self) -> Option<Breakdown> {
        let mediator = match self.mediators.as_slice() {
            [one] => one.clone(),
            _ => "mediator".to_string(),
        };
        Some(Breakdown {
            total: ("total effect", SHARES.total),
            parts: Parts::One {
                quantity: "indirect_effect",
                suffix: format!(" (through {mediator})"),
                variable: mediator,
            },
            rest: ("direct effect", "direct_effect"),
        })
    }

    fn condition(&self) -> String {
        format!(" (through {})", joined(&self.mediators))
    }

    fn describe(&self, _: &Context, cite: &mut Vec<&'static str>) -> String {
        cite.extend([cite::VALERI, cite::IMAI, cite::EVALUE]);
        format!(
            "Regression-based causal mediation (Valeri & VanderWeele 2013) through {} with \
             confounders {}{} gave natural direct and indirect effects of group membership and \
             the proportion mediated; the E-value (VanderWeele & Ding 2017) and, for a \
             continuous outcome and mediator, the ρ-sensitivity curve (Imai, Keele & Yamamoto \
             2010) describe sensitivity to unmeasured mediator–outcome confounding.",
            joined(&self.mediators),
            joined(&self.confounders),
            if self.interaction {
                " and an exposure–mediator interaction"
            } else {
                ""
            }
        )
    }
}
