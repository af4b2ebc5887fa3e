//! Losses used to compare learners and to weight the super learner.
//!
//! - binary: the weighted log loss −Σ w_i [y_i log p_i + (1 − y_i) log(1 − p_i)] / Σ w_i,
//!   with p clipped to [ε, 1 − ε], ε = 1e-15 (as scikit-learn's `log_loss`);
//! - continuous: the weighted mean squared error Σ w_i (y_i − ŷ_i)² / Σ w_i.

use crate::data::Family;

/// Predicted probabilities are clipped to [CLIP, 1 − CLIP] in the log loss.
pub const CLIP: f64 = 1e-15;

/// The loss of `pred` for `y` with weights `w` (ones when `None`).
pub fn loss(family: Family, y: &[f64], pred: &[f64], w: Option<&[f64]>) -> f64 {
    let (mut sw, mut sl) = (0.0, 0.0);
    for i in 0..y.len() {
        let wi = w.map_or(1.0, |w| w[i]);
        sw += wi;
        sl += wi * row_loss(family, y[i], pred[i]);
    }
    if sw > 0.0 { sl / sw } else { f64::NAN }
}

/// The loss of one row.
pub fn row_loss(family: Family, y: f64, pred: f64) -> f64 {
    match family {
        Family::Binary => {
            let p = pred.clamp(CLIP, 1.0 - CLIP);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        }
        Family::Continuous => (y - pred) * (y - pred),
    }
}

/// The name of the loss, for reports.
pub fn loss_name(family: Family) -> &'static str {
    match family {
        Family::Binary => "log_loss",
        Family::Continuous => "mse",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_loss_is_finite_at_certain_wrong_predictions() {
        let l = loss(Family::Binary, &[1.0, 0.0], &[0.0, 0.5], None);
        assert!(l.is_finite() && l > 10.0);
        let m = loss(
            Family::Continuous,
            &[1.0, 3.0],
            &[0.0, 3.0],
            Some(&[3.0, 1.0]),
        );
        assert!((m - 0.75).abs() < 1e-15);
    }
}
