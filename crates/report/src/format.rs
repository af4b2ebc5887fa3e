//! Number and count formatting shared by the Markdown, HTML and terminal
//! renderers.

/// A number with 4 significant digits (null or non-finite as an em dash).
pub fn num(x: Option<f64>) -> String {
    match x.filter(|v| v.is_finite()) {
        None => "—".into(),
        Some(0.0) => "0".into(),
        Some(v) => {
            let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 10) as usize;
            if v.abs() >= 1e6 || v.abs() < 1e-4 {
                format!("{v:.3e}")
            } else {
                format!("{v:.digits$}")
            }
        }
    }
}

/// A count, or `<min_cell` when suppressed (plain text; escape it for HTML).
pub fn count(n: Option<usize>, min_cell: usize) -> String {
    n.map_or(format!("<{min_cell}"), |n| n.to_string())
}

/// A share as a percentage with no decimals (`25%`), or an em dash.
pub fn percent(x: Option<f64>) -> String {
    match x.filter(|v| v.is_finite()) {
        None => "—".into(),
        Some(v) => format!("{:.0}%", 100.0 * v),
    }
}

/// How an outcome's differences are shown: binary outcomes in percentage
/// points (× 100), others in their own units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Multiplier.
    pub factor: f64,
    /// Unit suffix (` pp` or empty).
    pub unit: &'static str,
}

impl Scale {
    /// Percentage points for a binary outcome, the outcome's units otherwise.
    pub fn of(binary: bool) -> Scale {
        if binary {
            Scale {
                factor: 100.0,
                unit: " pp",
            }
        } else {
            Scale {
                factor: 1.0,
                unit: "",
            }
        }
    }

    /// `+1.44 pp`.
    pub fn signed(&self, v: f64) -> String {
        format!("{:+.2}{}", v * self.factor, self.unit)
    }

    /// `+1.44 pp (95% CI 0.57 to 2.30)`.
    pub fn with_ci(&self, v: f64, ci: Option<(f64, f64)>, level: f64) -> String {
        match ci {
            Some((lo, hi)) => format!(
                "{} ({:.0}% CI {:.2} to {:.2})",
                self.signed(v),
                100.0 * level,
                lo * self.factor,
                hi * self.factor
            ),
            None => self.signed(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_four_significant_digits() {
        assert_eq!(num(Some(0.012345)), "0.01235");
        assert_eq!(num(Some(123.456)), "123.5");
        assert_eq!(num(None), "—");
        assert_eq!(num(Some(f64::NAN)), "—");
        assert_eq!(count(None, 11), "<11");
        assert_eq!(percent(Some(0.254)), "25%");
    }

    #[test]
    fn binary_outcomes_are_in_percentage_points() {
        let s = Scale::of(true);
        assert_eq!(
            s.with_ci(0.0144, Some((0.0057, 0.023)), 0.95),
            "+1.44 pp (95% CI 0.57 to 2.30)"
        );
        assert_eq!(Scale::of(false).signed(1.25), "+1.25");
    }
}
