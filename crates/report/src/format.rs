//! Number and count formatting shared by the Markdown, HTML and terminal
//! renderers.

/// A formatted number without a sign on a value that rounds to zero
/// (`-0.0` reads `0.0`, `+0.00` stays `0.00` with a `+` only when asked).
fn unsigned_zero(s: String) -> String {
    let rounds_to_zero =
        s.chars().filter(char::is_ascii_digit).all(|c| c == '0') && !s.contains('e');
    match (rounds_to_zero, s.strip_prefix('-')) {
        (true, Some(rest)) => rest.to_string(),
        _ => s,
    }
}

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
                unsigned_zero(format!("{v:.digits$}"))
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
        Some(v) => unsigned_zero(format!("{:.0}", 100.0 * v)) + "%",
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
        let text = format!("{:+.2}", v * self.factor);
        let text = match text.strip_prefix('-') {
            Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => format!("+{rest}"),
            _ => text,
        };
        format!("{text}{}", self.unit)
    }

    /// `+1.44 pp (95% CI 0.57 to 2.30)`.
    pub fn with_ci(&self, v: f64, ci: Option<(f64, f64)>, level: f64) -> String {
        match ci {
            Some((lo, hi)) => format!(
                "{} ({:.0}% CI {} to {})",
                self.signed(v),
                100.0 * level,
                unsigned_zero(format!("{:.2}", lo * self.factor)),
                unsigned_zero(format!("{:.2}", hi * self.factor))
            ),
            None => self.signed(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_negative_zero_anywhere() {
        assert_eq!(percent(Some(-0.001)), "0%");
        assert_eq!(percent(Some(-0.02)), "-2%");
        assert_eq!(num(Some(-0.00049)), "-0.0004900");
        assert_eq!(num(Some(-0.000_04)), "-4.000e-5");
        assert_eq!(num(Some(-0.012)), "-0.01200");
        let s = Scale::of(false);
        assert_eq!(s.signed(-0.001), "+0.00");
        assert_eq!(
            s.with_ci(0.5, Some((-0.001, 1.0)), 0.95),
            "+0.50 (95% CI 0.00 to 1.00)"
        );
        assert_eq!(crate::figures::tick(-0.0000001), "0");
        assert_eq!(crate::figures::tick(-0.25), "-0.25");
        assert_eq!(crate::figures::tick(2.0), "2");
    }

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
