//! The report's section 10, "Appendix: fitted models": every fitted model,
//! per analysis.

use super::{ModelView, ReportInput, Table, ci_text};
use crate::format::{count, num};

/// Every fitted model, per analysis (analyses without models left out).
pub(super) fn models(input: &ReportInput) -> Vec<(String, Vec<ModelView>)> {
    let r = input.results;
    let m = input.min_cell;
    r.analyses
        .iter()
        .map(|a| {
            let title = format!(
                "{} · {} · {} vs {}",
                a.id, a.outcome, a.comparison, a.reference
            );
            let views = a
                .models
                .iter()
                .map(|md| ModelView {
                    title: md.label.clone(),
                    meta: format!(
                        "{} · n = {} · {}{} · {} · {} iteration(s){}",
                        md.family,
                        count(md.n, m),
                        md.clusters
                            .map_or(String::new(), |c| format!("{c} clusters · ")),
                        md.vcov,
                        if md.converged {
                            "converged"
                        } else {
                            "NOT converged"
                        },
                        md.iterations,
                        if md.absorbed.is_empty() {
                            String::new()
                        } else {
                            format!(" · absorbed: {}", md.absorbed.join(", "))
                        }
                    ),
                    table: Table {
                        head: ["term", "estimate", "SE", "CI", "p"]
                            .map(String::from)
                            .to_vec(),
                        rows: md
                            .coefficients
                            .iter()
                            .map(|c| {
                                vec![
                                    c.term.clone(),
                                    num(Some(c.estimate)),
                                    num(Some(c.se)),
                                    ci_text(Some(c.ci_low), Some(c.ci_high), 1.0),
                                    num(Some(c.p_value)),
                                ]
                            })
                            .collect(),
                        numeric_from: 1,
                        note: None,
                    },
                })
                .collect();
            (title, views)
        })
        .filter(|(_, v): &(String, Vec<ModelView>)| !v.is_empty())
        .collect()
}
