//! Sensitivity to unmeasured confounding, shared by the methods: E-values
//! (VanderWeele & Ding 2017) of a risk ratio and of the confidence limit
//! closest to the null (mediation's indirect effect, disparity reduction's
//! remaining disparity), and the ρ-sensitivity of a single-mediator ACME
//! (Imai, Keele & Yamamoto 2010). Re-exported from [`crate::mediation`].

use healthgap_models::{Design, Ols};

use crate::error::DecomposeError;
use crate::mediation::{MediationInput, mediator_columns};

/// ρ-sensitivity of the ACME for a linear mediator and a linear outcome without
/// interaction (Imai, Keele & Yamamoto 2010, Theorem 2):
/// ACME(ρ) = β2 σ_1/σ_2 (ρ̃ − ρ √((1 − ρ̃²)/(1 − ρ²))), where β2 is the exposure
/// coefficient of the mediator model, σ_1 and σ_2 the residual SDs of the
/// outcome model without the mediator and of the mediator model, and ρ̃ the
/// correlation of their residuals; ρ is the correlation of the mediator and
/// outcome errors. Returns ACME at each ρ and the ρ where the ACME is 0 (ρ = ρ̃).
pub fn rho_sensitivity(
    input: &MediationInput<'_>,
    rhos: &[f64],
) -> Result<(Vec<f64>, f64), DecomposeError> {
    let n = input.y.len();
    let cols = mediator_columns(input);
    let fit = |y: &[f64]| -> Result<(Vec<f64>, Vec<f64>), DecomposeError> {
        let d =
            Design::from_columns("y", y.to_vec(), cols.clone()).map_err(DecomposeError::Model)?;
        let f = Ols::new().fit(&d).map_err(DecomposeError::Model)?;
        Ok((f.coef.clone(), f.residuals.clone()))
    };
    let (bm, em) = fit(input.mediator)?;
    let (_, ey) = fit(input.y)?;
    let ss = |e: &[f64]| e.iter().map(|v| v * v).sum::<f64>();
    let rho_t = em.iter().zip(&ey).map(|(a, b)| a * b).sum::<f64>() / (ss(&em) * ss(&ey)).sqrt();
    let (s1, s2) = ((ss(&ey) / n as f64).sqrt(), (ss(&em) / n as f64).sqrt());
    let acme = rhos
        .iter()
        .map(|&r| bm[1] * s1 / s2 * (rho_t - r * ((1.0 - rho_t * rho_t) / (1.0 - r * r)).sqrt()))
        .collect();
    Ok((acme, rho_t))
}

/// The E-value of a risk ratio (VanderWeele & Ding 2017): RR + √(RR(RR − 1))
/// for RR ≥ 1, applied to 1/RR below 1; 1 at the null.
pub fn e_value(rr: f64) -> f64 {
    let r = if rr < 1.0 { 1.0 / rr } else { rr };
    r + (r * (r - 1.0)).sqrt()
}

/// The E-value of the confidence limit closest to the null of a difference
/// d = risk − base (1 when the interval covers 0; None without an interval),
/// on the risk-ratio scale (base + limit)/base.
pub fn e_value_of_limit(base: f64, ci_low: Option<f64>, ci_high: Option<f64>) -> Option<f64> {
    match (ci_low, ci_high) {
        (Some(lo), Some(hi)) if lo <= 0.0 && hi >= 0.0 => Some(1.0),
        (Some(lo), Some(hi)) => {
            let near = if lo > 0.0 { lo } else { hi };
            Some(e_value((base + near) / base)).filter(|v| v.is_finite())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_values_match_vanderweele_and_ding() {
        // Their example: RR 3.9 → E-value 7.26.
        assert!((e_value(3.9) - 7.26).abs() < 0.01);
        assert_eq!(e_value(1.0), 1.0);
        assert!((e_value(1.0 / 3.9) - e_value(3.9)).abs() < 1e-12);
    }
}
