//! Where the gap comes from, method by method: each decomposition's total split
//! into factor-block parts plus what is left, and the triangulation table
//! (factor blocks × methods, each cell the share of that method's total).
//!
//! | method | total | block parts | what is left |
//! |---|---|---|---|
//! | oaxaca_blinder | gap | explained by block | unexplained |
//! | gelbach | base_coefficient | explained_change by block | full_coefficient |
//! | disparity_reduction | initial_disparity | Shapley reduction by target | disparity_remaining (all targets) |
//! | hospital | gap | between_hospital (the block holding the hospital variable) | within_hospital |
//! | mediation | total_effect | indirect_effect (the block holding the mediator) | direct_effect |
//!
//! The parts and what is left add up to the total in every method (each
//! method's identity tests check it). A share is part ÷ total, and its
//! interval is the method's own `share` row (healthgap_decompose::shares):
//! the ratio's delta method or bootstrap, with the total's uncertainty and its
//! covariance with the part. A method without share rows, or whose total's
//! interval includes 0, shows the point share without an interval.

use healthgap_decompose::spec::Parts;
use healthgap_decompose::{AnalysisResult, Estimate, MethodSpec};

/// One part of a total.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// What the part is (a factor block, `unexplained`, `within hospitals`, …).
    pub label: String,
    /// The factor block it belongs to (None for what is left).
    pub factor: Option<String>,
    /// Estimate.
    pub estimate: f64,
    /// Confidence limits, when computed.
    pub ci: Option<(f64, f64)>,
    /// The method's share row for this part (estimate and interval).
    pub share: Option<(f64, Option<(f64, f64)>)>,
}

impl Part {
    fn of(label: &str, factor: Option<String>, e: &Estimate) -> Part {
        Part {
            label: label.to_string(),
            factor,
            estimate: e.estimate,
            ci: e.ci_low.zip(e.ci_high),
            share: None,
        }
    }

    /// The part with its share row (`quantity = "share"`), when the method has one.
    fn with_share(mut self, row: Option<&Estimate>) -> Part {
        self.share = row.map(|e| (e.estimate, e.ci_low.zip(e.ci_high)));
        self
    }

    /// The share of `total`: the method's share row with its interval, or the
    /// point ratio without one.
    pub fn share(&self, total: f64) -> Option<Part> {
        let (estimate, ci) = match self.share {
            Some((s, ci)) if s.is_finite() => (s, ci),
            _ if total.is_finite() && total != 0.0 => (self.estimate / total, None),
            _ => return None,
        };
        Some(Part {
            label: self.label.clone(),
            factor: self.factor.clone(),
            estimate,
            ci,
            share: None,
        })
    }
}

/// One analysis's total split into parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    /// Analysis id.
    pub analysis: String,
    /// Method.
    pub method: String,
    /// The total (label and value).
    pub total: Part,
    /// Block parts, in block order.
    pub parts: Vec<Part>,
    /// What the blocks leave.
    pub rest: Part,
}

impl Breakdown {
    /// Parts then what is left.
    pub fn components(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().chain(std::iter::once(&self.rest))
    }
}

/// The factor block that holds `variable` (or the variable itself when no
/// block does).
fn block_of(factors: &[(String, Vec<String>)], variable: &str) -> String {
    factors
        .iter()
        .find(|(name, vars)| name == variable || vars.iter().any(|v| v == variable))
        .map_or_else(|| variable.to_string(), |(name, _)| name.clone())
}

/// Whether a method's shares are unstable (flagged † in the report and the
/// terminal): its total has an interval that includes 0, or no interval at
/// all (withheld), so that nothing says the shares are firm.
pub fn shares_unstable(a: &AnalysisResult) -> bool {
    breakdown(a, &[]).is_some_and(|b| match b.total.ci {
        Some((lo, hi)) => lo <= 0.0 && hi >= 0.0,
        None => true,
    })
}

/// The breakdown of one analysis (None for methods without one, e.g. crude,
/// or when its rows are missing).
pub fn breakdown(a: &AnalysisResult, factors: &[(String, Vec<String>)]) -> Option<Breakdown> {
    let total = |q: &str| a.get(q, None, None);
    let share_of = |q: &str| a.get("share", None, Some(q));
    // A named part with its share row.
    let named = |label: &str, factor: Option<String>, q: &str| -> Option<Part> {
        Some(Part::of(label, factor, total(q)?).with_share(share_of(q)))
    };
    let blocks = |q: &str, label_of: &dyn Fn(&str) -> String| -> Vec<Part> {
        a.estimates
            .iter()
            .filter(|e| e.quantity == q && e.term.is_none())
            .filter_map(|e| {
                let f = e.factor.as_deref()?;
                Some(
                    Part::of(&label_of(f), Some(f.to_string()), e).with_share(a.get(
                        "share",
                        Some(f),
                        None,
                    )),
                )
            })
            .collect()
    };
    let spec = a.spec.spec().breakdown()?;
    let (label, quantity) = spec.total;
    let parts = match &spec.parts {
        Parts::Blocks(q) => blocks(q, &|f: &str| f.to_string()),
        Parts::One {
            quantity,
            variable,
            suffix,
        } => {
            let block = block_of(factors, variable);
            vec![named(&format!("{block}{suffix}"), Some(block), quantity)?]
        }
    };
    let total = Part::of(label, None, total(quantity)?);
    let rest = named(spec.rest.0, None, spec.rest.1)?;
    Some(Breakdown {
        analysis: a.id.clone(),
        method: a.spec.name().to_string(),
        total,
        parts,
        rest,
    })
}

/// The triangulation table of one outcome and comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Triangulation {
    /// Outcome.
    pub outcome: String,
    /// Reference group.
    pub reference: String,
    /// Comparison group.
    pub comparison: String,
    /// The crude gap, when a crude analysis ran.
    pub gap: Option<Part>,
    /// Columns: analysis ids with their method.
    pub columns: Vec<(String, String)>,
    /// Rows: factor blocks then `rest` (what each method leaves), each with
    /// one share per column (None where the method does not attribute to it).
    pub rows: Vec<(String, Vec<Option<Part>>)>,
}

/// The analyses of one outcome and comparison, in run order.
pub fn pairs(analyses: &[AnalysisResult]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for a in analyses {
        let key = (a.outcome.clone(), a.reference.clone(), a.comparison.clone());
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// One triangulation table per outcome and comparison group that has at
/// least one decomposition.
pub fn triangulate(
    analyses: &[AnalysisResult],
    factors: &[(String, Vec<String>)],
) -> Vec<Triangulation> {
    let mut tables = Vec::new();
    for (outcome, reference, comparison) in pairs(analyses) {
        let here: Vec<&AnalysisResult> = analyses
            .iter()
            .filter(|a| {
                a.outcome == outcome && a.comparison == comparison && a.reference == reference
            })
            .collect();
        let gap = here
            .iter()
            .find(|a| matches!(a.spec, MethodSpec::Crude(_)))
            .and_then(|a| a.get("gap", None, None))
            .map(|e| Part::of("gap", None, e));
        let breakdowns: Vec<Breakdown> =
            here.iter().filter_map(|a| breakdown(a, factors)).collect();
        if breakdowns.is_empty() {
            continue;
        }
        let mut blocks: Vec<String> = factors.iter().map(|(n, _)| n.clone()).collect();
        for b in &breakdowns {
            for p in &b.parts {
                if let Some(f) = p.factor.as_ref().filter(|f| !blocks.contains(f)) {
                    blocks.push(f.clone());
                }
            }
        }
        let mut rows: Vec<(String, Vec<Option<Part>>)> = blocks
            .iter()
            .map(|f| {
                let cells = breakdowns
                    .iter()
                    .map(|b| {
                        b.parts
                            .iter()
                            .find(|p| p.factor.as_deref() == Some(f))
                            .and_then(|p| p.share(b.total.estimate))
                    })
                    .collect();
                (f.clone(), cells)
            })
            .filter(|(_, cells): &(String, Vec<Option<Part>>)| cells.iter().any(Option::is_some))
            .collect();
        rows.push((
            "not attributed to a block".into(),
            breakdowns
                .iter()
                .map(|b| b.rest.share(b.total.estimate))
                .collect(),
        ));
        tables.push(Triangulation {
            outcome,
            reference,
            comparison,
            gap,
            columns: breakdowns
                .iter()
                .map(|b| (b.analysis.clone(), b.method.clone()))
                .collect(),
            rows,
        });
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(q: &str, f: Option<&str>, v: f64) -> Estimate {
        let mut e = Estimate::total(q, v);
        e.factor = f.map(str::to_string);
        e.ci_low = Some(v - 0.1);
        e.ci_high = Some(v + 0.1);
        e
    }

    fn analysis(
        method: &str,
        estimates: Vec<Estimate>,
        options: serde_json::Value,
    ) -> AnalysisResult {
        let mut options = options;
        options["method"] = method.into();
        AnalysisResult {
            id: method.into(),
            spec: serde_json::from_value(options).expect("a valid spec"),
            outcome: "y".into(),
            binary: false,
            weighted: false,
            reference: "A".into(),
            comparison: "B".into(),
            n: Some(100),
            inference: healthgap_decompose::InferenceInfo {
                method: "delta".into(),
                replicates: None,
                replicates_ok: None,
                interval: "normal".into(),
                level: 0.95,
                cluster: None,
                vce: "robust".into(),
                note: None,
                withheld: None,
                imputation: None,
            },
            estimates,
            models: vec![],
            warnings: vec![],
            balance: vec![],
            learners: None,
            attrition: vec![],
            hospitals: vec![],
            sample_counts: [(100, None); 2],
        }
    }

    #[test]
    fn shares_divide_by_each_methods_total_and_cover_every_block() {
        let factors = vec![
            ("clinical".to_string(), vec!["age".to_string()]),
            ("site".to_string(), vec!["hosp".to_string()]),
        ];
        let ob = analysis(
            "oaxaca_blinder",
            vec![
                est("gap", None, 2.0),
                est("explained", Some("clinical"), 0.5),
                est("explained", Some("site"), 0.3),
                est("unexplained", None, 1.2),
            ],
            serde_json::json!({}),
        );
        let mut share = est("share", None, 0.2);
        share.term = Some("between_hospital".into());
        share.ci_low = Some(0.05);
        share.ci_high = Some(0.3);
        let hosp = analysis(
            "hospital",
            vec![
                est("gap", None, 2.0),
                est("between_hospital", None, 0.4),
                est("within_hospital", None, 1.6),
                share,
            ],
            serde_json::json!({"hospital": "hosp"}),
        );
        let t = triangulate(&[ob, hosp], &factors);
        assert_eq!(t.len(), 1);
        let t = &t[0];
        assert_eq!(t.columns.len(), 2);
        assert_eq!(t.rows.len(), 3);
        let clinical = &t.rows[0].1;
        assert!((clinical[0].as_ref().map(|p| p.estimate).unwrap_or(0.0) - 0.25).abs() < 1e-12);
        assert!(clinical[1].is_none());
        let site = &t.rows[1].1;
        assert!((site[1].as_ref().map(|p| p.estimate).unwrap_or(0.0) - 0.2).abs() < 1e-12);
        // The method's share row gives the interval (not the part's CI ÷ total).
        let ci = site[1].as_ref().and_then(|p| p.ci).unwrap_or((0.0, 0.0));
        assert_eq!(ci, (0.05, 0.3));
        // Without a share row: the point share, no interval.
        assert!(clinical[0].as_ref().is_some_and(|p| p.ci.is_none()));
        let rest = &t.rows[2].1;
        assert!((rest[0].as_ref().map(|p| p.estimate).unwrap_or(0.0) - 0.6).abs() < 1e-12);
        // Each column's shares add up to one.
        for c in 0..2 {
            let sum: f64 = t
                .rows
                .iter()
                .filter_map(|r| r.1[c].as_ref())
                .map(|p| p.estimate)
                .sum();
            assert!((sum - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn a_share_without_its_row_has_no_interval() {
        let p = Part {
            label: "x".into(),
            factor: None,
            estimate: 1.0,
            ci: Some((0.5, 1.5)),
            share: None,
        };
        let s = p.share(-2.0).unwrap_or(p.clone());
        assert_eq!((s.estimate, s.ci), (-0.5, None));
        assert!(p.share(0.0).is_none());
        let q = Part {
            share: Some((0.4, Some((0.1, 0.7)))),
            ..p
        };
        assert_eq!(q.share(0.0).map(|s| s.ci), Some(Some((0.1, 0.7))));
    }
}
