//! The report's section 8, "Warnings": the study's, then each analysis's.

use crate::results::Results;

/// Every warning: (where, text).
pub(super) fn list(r: &Results) -> Vec<(String, String)> {
    let mut warnings = Vec::new();
    for w in &r.warnings {
        warnings.push(("study".to_string(), w.clone()));
    }
    for a in &r.analyses {
        let where_ = format!(
            "{} · {} · {} vs {}",
            a.id, a.outcome, a.comparison, a.reference
        );
        for w in &a.warnings {
            warnings.push((where_.clone(), w.clone()));
        }
    }
    warnings
}
