//! Rubin's rules for combining estimates from m imputed data sets, with the
//! Barnard–Rubin small-sample degrees of freedom, exactly as R's `mice::pool`
//! computes them (van Buuren 2018, *Flexible Imputation of Missing Data*, 2nd
//! ed., §2.3–2.4; Barnard & Rubin 1999, Biometrika 86:948–955).
//!
//! For estimates Q_1…Q_m with within-imputation variances U_1…U_m:
//!
//! - Q̄ = mean(Q_l), Ū = mean(U_l), B = Σ(Q_l − Q̄)²/(m − 1);
//! - T = Ū + (1 + 1/m)·B (total variance);
//! - r = (1 + 1/m)·B/Ū (relative increase in variance), λ = (1 + 1/m)·B/T;
//! - ν_old = (m − 1)/λ² (λ floored at 1e-4, as mice does),
//!   ν_obs = (ν_com + 1)/(ν_com + 3)·ν_com·(1 − λ),
//!   ν = ν_old·ν_obs/(ν_old + ν_obs) (ν_old when ν_com is infinite);
//! - FMI = (r + 2/(ν + 3))/(1 + r); relative efficiency 1/(1 + FMI/m).

use healthgap_models::summary::TTest;
use serde::Serialize;

/// One pooled estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pooled {
    /// Number of imputations pooled.
    pub m: usize,
    /// Q̄, the mean of the estimates.
    pub estimate: f64,
    /// Ū, the mean within-imputation variance.
    pub within: f64,
    /// B, the between-imputation variance.
    pub between: f64,
    /// T = Ū + (1 + 1/m)·B.
    pub total: f64,
    /// Barnard–Rubin degrees of freedom ν.
    pub df: f64,
    /// Relative increase in variance due to nonresponse, r.
    pub riv: f64,
    /// Proportion of the total variance due to nonresponse, λ.
    pub lambda: f64,
    /// Fraction of missing information.
    pub fmi: f64,
    /// Relative efficiency of m imputations against infinitely many.
    pub relative_efficiency: f64,
}

/// Barnard–Rubin degrees of freedom for m imputations, between variance `b`,
/// total variance `t` and complete-data degrees of freedom `dfcom` (infinite
/// for large-sample estimators).
pub fn barnard_rubin(m: usize, b: f64, t: f64, dfcom: f64) -> f64 {
    let m = m as f64;
    let lambda = ((1.0 + 1.0 / m) * b / t).max(1e-4);
    let df_old = (m - 1.0) / (lambda * lambda);
    if dfcom.is_infinite() {
        return df_old;
    }
    let df_obs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - lambda);
    df_old * df_obs / (df_old + df_obs)
}

/// Rubin's rules for the estimates `q` and their squared standard errors `u`
/// (one per imputation, m ≥ 2), with complete-data degrees of freedom `dfcom`.
pub fn rubin(q: &[f64], u: &[f64], dfcom: f64) -> Pooled {
    let m = q.len();
    let mf = m as f64;
    let estimate = q.iter().sum::<f64>() / mf;
    let within = u.iter().sum::<f64>() / mf;
    let between = q.iter().map(|x| (x - estimate).powi(2)).sum::<f64>() / (mf - 1.0);
    let total = within + (1.0 + 1.0 / mf) * between;
    let riv = (1.0 + 1.0 / mf) * between / within;
    let lambda = (1.0 + 1.0 / mf) * between / total;
    let df = barnard_rubin(m, between, total, dfcom);
    let fmi = (riv + 2.0 / (df + 3.0)) / (1.0 + riv);
    Pooled {
        m,
        estimate,
        within,
        between,
        total,
        df,
        riv,
        lambda,
        fmi,
        relative_efficiency: 1.0 / (1.0 + fmi / mf),
    }
}

impl Pooled {
    /// The pooled standard error √T.
    pub fn se(&self) -> f64 {
        self.total.sqrt()
    }

    /// The interval Q̄ ± t_{ν, 1−α/2}·√T at confidence `level`, and the
    /// two-sided p-value of Q̄/√T on ν degrees of freedom.
    pub fn interval(&self, level: f64) -> (f64, f64, f64) {
        let t = TTest::new(self.df);
        let half = t.quantile(0.5 + level / 2.0) * self.se();
        (
            self.estimate - half,
            self.estimate + half,
            t.p_value(self.estimate / self.se()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_between_variance_leaves_the_within_variance_and_large_df() {
        let p = rubin(&[1.0, 1.0, 1.0], &[0.04, 0.04, 0.04], f64::INFINITY);
        assert_eq!(p.between, 0.0);
        assert!((p.total - 0.04).abs() < 1e-15);
        // λ floored at 1e-4: ν_old = (m − 1)/1e-8.
        assert!((p.df - 2.0e8).abs() < 1.0, "{}", p.df);
    }

    #[test]
    fn total_variance_adds_the_inflated_between_variance() {
        let p = rubin(&[1.0, 2.0, 3.0, 4.0], &[0.5; 4], 100.0);
        let b: f64 = 5.0 / 3.0;
        assert!((p.between - b).abs() < 1e-14);
        assert!((p.total - (0.5 + 1.25 * b)).abs() < 1e-14);
        assert!(p.df > 0.0 && p.df < 3.0 / (p.lambda * p.lambda));
    }
}
