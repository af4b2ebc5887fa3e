//! Small-cell suppression: counts below `min_cell` (default 11) never leave in a
//! report. Suppressed counts become null in JSON and `<11` in text.
//!
//! Complementary suppression in the attrition table: a step's remaining count
//! minus the previous one reveals its excluded count, so once an excluded count
//! is suppressed, every remaining count from that step on is suppressed too.

use healthgap_decompose::AnalysisResult;

/// Default threshold.
pub const DEFAULT_MIN_CELL: usize = 11;

/// The count, or None when 0 < count < min_cell.
pub fn count(n: usize, min_cell: usize) -> Option<usize> {
    (n == 0 || n >= min_cell).then_some(n)
}

/// Text for a count: the number, or `<min_cell`.
pub fn text(n: usize, min_cell: usize) -> String {
    match count(n, min_cell) {
        Some(n) => n.to_string(),
        None => format!("<{min_cell}"),
    }
}

/// The text of a count after suppression: the number when shown, `<min_cell`
/// when the count itself is small, `suppressed` when it is hidden only so
/// that another cell cannot be recovered by difference.
pub fn shown_text(raw: usize, shown: Option<usize>, min_cell: usize) -> String {
    match shown {
        Some(n) => n.to_string(),
        None if raw < min_cell => format!("<{min_cell}"),
        None => "suppressed".into(),
    }
}

/// Which of the parts of a shown total to hide: those below `min_cell`, and
/// the complements that would reveal them by difference from the total
/// ([`healthgap_decompose::privacy::complementary_cells`]).
fn hidden_parts(values: &[usize], min_cell: usize) -> Vec<bool> {
    let mut hide: Vec<bool> = values
        .iter()
        .map(|&v| count(v, min_cell).is_none())
        .collect();
    healthgap_decompose::privacy::complementary_cells(values, &mut hide, min_cell);
    hide
}

/// Counts that are parts of a shown total (e.g. each site's rows of a group
/// in a federated study): null where [`hidden_parts`] hides them.
pub fn parts(values: &[usize], min_cell: usize) -> Vec<Option<usize>> {
    let hide = hidden_parts(values, min_cell);
    values
        .iter()
        .zip(hide)
        .map(|(&v, h)| (!h).then_some(v))
        .collect()
}

/// Attrition with complementary suppression: returns (excluded, remaining) per
/// step. The rows read and the final count are shown, so the excluded counts
/// add up to a shown total: a single hidden excluded count (or hidden counts
/// adding up to fewer than `min_cell`) takes the smallest other one with it
/// ([`healthgap_decompose::privacy::complementary_cells`]). Once an excluded
/// count is hidden, the remaining counts from that step on are hidden as well
/// (each would reveal it by difference).
pub fn attrition(steps: &[(usize, usize)], min_cell: usize) -> Vec<(Option<usize>, Option<usize>)> {
    let excluded: Vec<usize> = steps.iter().map(|s| s.0).collect();
    let hide = hidden_parts(&excluded, min_cell);
    let mut hidden = false;
    steps
        .iter()
        .zip(hide)
        .map(|(&(excluded, remaining), hide)| {
            let e = (!hide).then_some(excluded);
            if e.is_none() {
                hidden = true;
            }
            let r = if hidden {
                None
            } else {
                count(remaining, min_cell)
            };
            (e, r)
        })
        .collect()
}

/// One Table 1 row as suppression sees it: its variable, whether it is a
/// level of a categorical variable, and per group the count behind an
/// `n (%)` cell (None for a mean (SD) row) and the group's n.
pub struct Table1Counts<'a> {
    /// Variable.
    pub variable: &'a str,
    /// A level row of a categorical variable.
    pub level: bool,
    /// Counts per group.
    pub counts: &'a [Option<usize>],
    /// Group sizes.
    pub denominators: &'a [usize],
    /// Missing values per group.
    pub missing: &'a [usize],
}

/// Why a Table 1 cell is shown or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Shown.
    Shown,
    /// A count (or group) below `min_cell`: reads `<min_cell`.
    Small,
    /// Hidden so that a small cell cannot be recovered by difference: reads
    /// `suppressed` (its own count is not small).
    Complementary,
}

impl Cell {
    /// Hidden for either reason.
    pub fn hidden(self) -> bool {
        self != Cell::Shown
    }

    /// The text of a hidden cell.
    pub fn text(self, min_cell: usize) -> Option<String> {
        match self {
            Cell::Shown => None,
            Cell::Small => Some(format!("<{min_cell}")),
            Cell::Complementary => Some("suppressed".into()),
        }
    }
}

/// Which Table 1 cells to hide (row × group): counts below `min_cell` and
/// cells of groups below `min_cell`; among a categorical variable's levels,
/// the complementary cells that would reveal a hidden one from the group's n
/// ([`healthgap_decompose::privacy::complementary_cells`]); and a binary row
/// whose complement n − count is below `min_cell` (the n is shown, so the
/// count would reveal it).
pub fn table1(rows: &[Table1Counts<'_>], min_cell: usize) -> (Vec<Vec<Cell>>, Vec<Vec<bool>>) {
    let mut hidden: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            r.counts
                .iter()
                .zip(r.denominators)
                .map(|(c, &n)| {
                    let small = count(n, min_cell).is_none()
                        || c.is_some_and(|c| count(c, min_cell).is_none());
                    let small_complement =
                        !r.level && c.is_some_and(|c| count(n - c.min(n), min_cell).is_none());
                    if small {
                        Cell::Small
                    } else if small_complement {
                        Cell::Complementary
                    } else {
                        Cell::Shown
                    }
                })
                .collect()
        })
        .collect();
    // Missing counts below min_cell are hidden; among a categorical's levels
    // the missing count is one more cell of the group's total.
    let mut missing_hidden: Vec<Vec<bool>> = rows
        .iter()
        .map(|r| {
            r.missing
                .iter()
                .map(|&m| count(m, min_cell).is_none())
                .collect()
        })
        .collect();
    // Each run of level rows of one categorical variable.
    let mut start = 0;
    while start < rows.len() {
        let same = |i: usize| rows[i].level && rows[i].variable == rows[start].variable;
        let end = (start + 1..rows.len())
            .find(|&i| !same(i))
            .unwrap_or(rows.len());
        if rows[start].level {
            for g in 0..rows[start].counts.len() {
                let mut values: Vec<usize> = (start..end)
                    .map(|i| rows[i].counts[g].unwrap_or(0))
                    .collect();
                values.push(rows[start].missing[g]);
                let mut mask: Vec<bool> = (start..end).map(|i| hidden[i][g].hidden()).collect();
                mask.push(missing_hidden[start][g]);
                healthgap_decompose::privacy::complementary_cells(&values, &mut mask, min_cell);
                for (k, i) in (start..end).enumerate() {
                    if mask[k] && !hidden[i][g].hidden() {
                        hidden[i][g] = Cell::Complementary;
                    }
                    missing_hidden[i][g] = mask[end - start];
                }
            }
        }
        start = end;
    }
    (hidden, missing_hidden)
}

/// What the small-cell passes over the analysis results need to know of the
/// cohort (counts only, no rows).
#[derive(Debug, Clone, Default)]
pub struct Disclosure {
    /// Group labels, reference first.
    pub group_labels: Vec<String>,
    /// Rows per group.
    pub group_counts: Vec<usize>,
    /// Per binary outcome: (events, rows with a value) per group.
    pub outcome_counts: Vec<(String, Vec<(usize, usize)>)>,
    /// Per level of every dummy-coded categorical (`variable=level`): patients.
    pub level_counts: Vec<(String, usize)>,
}

/// The small-cell passes over the analysis results (complementary suppression of n,
/// outcomes with few events or non-events dropped) and the warning on few
/// bootstrap replicates.
pub fn results(
    analyses: &mut Vec<AnalysisResult>,
    cohort: &Disclosure,
    m: usize,
    warnings: &mut Vec<String>,
) {
    // Complementary suppression: when either group of a comparison is below
    // min_cell, in the cohort or in the analysis's own complete cases, the
    // analysis's and its models' row counts would reveal it.
    let counts: std::collections::HashMap<&str, usize> = cohort
        .group_labels
        .iter()
        .map(String::as_str)
        .zip(cohort.group_counts.iter().copied())
        .collect();
    for a in analyses.iter_mut() {
        let small = |label: &str| counts.get(label).is_some_and(|n| *n < m);
        let small_sample = a.sample_counts.iter().any(|(n, _)| *n < m);
        // A hidden complete-case exclusion would come back as the cohort's
        // group size minus the analysis's n.
        let hidden_exclusion = a.attrition.iter().any(|r| r.excluded.is_none());
        if small(&a.reference) || small(&a.comparison) || small_sample || hidden_exclusion {
            a.n = None;
            for model in &mut a.models {
                model.n = None;
            }
        }
        // A model fitted on fewer rows than a shown count by fewer than
        // min_cell (e.g. singleton hospitals dropped) would reveal the
        // difference: its n is hidden.
        let mut shown: Vec<usize> = a.n.into_iter().collect();
        shown.extend(a.sample_counts.iter().map(|(n, _)| *n));
        shown.extend(
            [&a.reference, &a.comparison]
                .iter()
                .filter_map(|l| counts.get(l.as_str()).copied()),
        );
        for model in &mut a.models {
            if let Some(n) = model.n
                && shown.iter().any(|&s| s > n && s - n < m)
            {
                model.n = None;
            }
        }
    }
    hide_rare_level_terms(analyses, cohort, m, warnings);
    // A binary outcome with fewer than min_cell events or non-events in a
    // group: every estimate of its gap would give the count back (the group's
    // mean times its shown n), so that outcome and comparison is not reported.
    // (outcome, group label) pairs with a small count.
    let mut small: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for (outcome, per_group) in &cohort.outcome_counts {
        for ((events, n), label) in per_group.iter().zip(&cohort.group_labels) {
            if count(*events, m).is_none() || count(n - events, m).is_none() {
                small.insert((outcome.as_str(), label.as_str()));
            }
        }
    }
    let small_outcome = |outcome: &str, label: &str| -> bool { small.contains(&(outcome, label)) };
    // (outcome, comparison, group, small in the cohort) → the analyses withheld.
    type Withheld = ((String, String, String, bool), Vec<String>);
    let mut withheld: Vec<Withheld> = Vec::new();
    analyses.retain(|a| {
        // Small in the cohort, or in the analysis's own complete cases.
        let small_in_sample = |g: usize| {
            a.sample_counts[g].1.is_some_and(|events| {
                let n = a.sample_counts[g].0;
                count(events, m).is_none() || count(n - events, m).is_none()
            })
        };
        let small = [&a.reference, &a.comparison]
            .into_iter()
            .enumerate()
            .find_map(|(g, l)| {
                let in_cohort = small_outcome(&a.outcome, l);
                (in_cohort || small_in_sample(g)).then_some((l, in_cohort))
            });
        if let Some((l, in_cohort)) = small {
            let key = (
                a.outcome.clone(),
                a.comparison.clone(),
                l.to_string(),
                in_cohort,
            );
            match withheld.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ids)) if !ids.contains(&a.id) => ids.push(a.id.clone()),
                Some(_) => {}
                None => withheld.push((key, vec![a.id.clone()])),
            }
        }
        small.is_none()
    });
    for ((outcome, comparison, label, in_cohort), ids) in withheld {
        let reference = &cohort.group_labels[0];
        warnings.push(if in_cohort {
            format!(
                "{outcome}, {comparison} vs {reference}: group {label} has fewer than {m} events \
                 or non-events; the analyses of this outcome and comparison are not reported \
                 (each estimate would reveal the count)"
            )
        } else {
            format!(
                "{outcome}, {comparison} vs {reference}: group {label} has fewer than {m} events \
                 or non-events among the complete cases of {}; {} not reported for this outcome \
                 and comparison (each estimate would reveal the count)",
                ids.join(", "),
                if ids.len() == 1 { "it is" } else { "they are" }
            )
        });
    }
    for a in analyses.iter_mut() {
        if let (Some(r), "bootstrap") = (a.inference.replicates, a.inference.method.as_str())
            && r < 200
        {
            a.warnings.push(format!(
                "only {r} bootstrap replicates: {} intervals need about 200 or more to be \
                 stable (set [inference] replicates)",
                a.inference.interval
            ));
        }
    }
}

/// Coefficients and detailed terms of a categorical level held by fewer than
/// `m` patients would disclose those patients' outcomes (a dummy of one
/// person is that person's residual): they are removed from the estimates
/// and the model tables, with a warning that names the fix.
fn hide_rare_level_terms(
    analyses: &mut [AnalysisResult],
    cohort: &Disclosure,
    m: usize,
    warnings: &mut Vec<String>,
) {
    let rare: Vec<String> = cohort
        .level_counts
        .iter()
        .filter(|(_, k)| *k > 0 && *k < m)
        .map(|(term, _)| term.clone())
        .collect();
    if rare.is_empty() {
        return;
    }
    let mut removed = false;
    for a in analyses.iter_mut() {
        let before = a.estimates.len();
        a.estimates
            .retain(|e| e.term.as_ref().is_none_or(|t| !rare.contains(t)));
        removed |= a.estimates.len() < before;
        for model in &mut a.models {
            let before = model.coefficients.len();
            model.coefficients.retain(|c| !rare.contains(&c.term));
            removed |= model.coefficients.len() < before;
        }
    }
    if removed {
        warnings.push(format!(
            "the coefficients and detailed terms of {} are not shown: each of these levels has \
             fewer than {m} patients, so its coefficient would disclose their outcomes (merge \
             rare levels with [variables] NAME = {{ type = \"categorical\", min_count = {m} }})",
            rare.join(", ")
        ));
    }
}

/// A group's missing cells of one variable, shown when none are missing or
/// when both the missing and the observed cells reach `min_cell` (a small
/// observed count is as revealing as a small missing one).
pub fn missing(missing: usize, n: usize, min_cell: usize) -> Option<usize> {
    (missing == 0 || (missing >= min_cell && n - missing.min(n) >= min_cell)).then_some(missing)
}

/// Which bins of a histogram may be shown (the shares of a distribution
/// whose total is known): a bin of 1 to min_cell − 1 values (`counts` over
/// `per` repetitions, e.g. imputations: counts / per) is hidden, and when the
/// hidden bins together hold fewer than min_cell, the smallest shown bins are
/// hidden too until they do (their total would otherwise follow from the
/// total and the shown bins).
pub fn histogram(counts: &[usize], per: usize, min_cell: usize) -> Vec<bool> {
    let per = per.max(1);
    let small = |c: usize| c > 0 && c / per < min_cell;
    let mut shown: Vec<bool> = counts.iter().map(|&c| !small(c)).collect();
    let hidden_total = |shown: &[bool]| -> usize {
        counts
            .iter()
            .zip(shown)
            .filter(|(_, s)| !**s)
            .map(|(c, _)| c / per)
            .sum()
    };
    while (1..min_cell).contains(&hidden_total(&shown)) {
        let next = (0..counts.len())
            .filter(|&k| shown[k] && counts[k] > 0)
            .min_by_key(|&k| counts[k]);
        match next {
            Some(k) => shown[k] = false,
            None => break,
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_bin_takes_the_next_smallest_with_it() {
        // 5 alone would follow from the total and the other bins.
        assert_eq!(
            histogram(&[100, 5, 40, 0], 1, 11),
            vec![true, false, false, true]
        );
        assert_eq!(histogram(&[100, 50, 40], 1, 11), vec![true, true, true]);
        // Two small bins that together reach min_cell stay hidden alone.
        assert_eq!(
            histogram(&[100, 6, 7, 40], 1, 11),
            vec![true, false, false, true]
        );
        // Per imputation: 100 over 20 imputations is 5 per imputation.
        assert_eq!(histogram(&[100, 2000], 20, 11), vec![false, false]);
    }

    #[test]
    fn missing_cells_are_shown_only_when_missing_and_observed_both_reach_min_cell() {
        assert_eq!(missing(0, 100, 11), Some(0));
        assert_eq!(missing(11, 100, 11), Some(11));
        assert_eq!(missing(10, 100, 11), None);
        assert_eq!(missing(95, 100, 11), None);
    }

    #[test]
    fn a_small_missing_count_takes_a_level_with_it() {
        // Group n 300: levels 250 + 45 shown and missing 5 would give 5 back.
        let d = [300];
        let rows = [
            Table1Counts {
                variable: "ins",
                level: true,
                counts: &[Some(250)],
                denominators: &d,
                missing: &[5],
            },
            Table1Counts {
                variable: "ins",
                level: true,
                counts: &[Some(45)],
                denominators: &d,
                missing: &[5],
            },
        ];
        let (cells, missing) = table1(&rows, 11);
        assert_eq!(cells[0], [Cell::Shown]);
        assert_eq!(cells[1], [Cell::Complementary]);
        assert_eq!(missing, [[true], [true]]);
    }

    #[test]
    fn parts_hide_a_small_part_and_its_complement() {
        // A site with 4 patients of a group: it and the smallest other
        // non-zero site are hidden (the total is shown).
        assert_eq!(
            parts(&[120, 4, 30, 0], 11),
            vec![Some(120), None, None, Some(0)]
        );
        // Two small parts that add up to min_cell or more hide only
        // themselves.
        assert_eq!(parts(&[120, 6, 7], 11), vec![Some(120), None, None]);
        assert_eq!(parts(&[120, 30], 11), vec![Some(120), Some(30)]);
    }

    #[test]
    fn table1_hides_the_complements_that_would_reveal_a_small_cell() {
        let d = [500, 300];
        let rows = [
            // Binary: 295 of 300 reveals 5 non-events in group 2.
            Table1Counts {
                variable: "female",
                level: false,
                counts: &[Some(200), Some(295)],
                denominators: &d,
                missing: &[0, 0],
            },
            // Categorical: group 2's "c" (4) is small; the smallest other level (b, 20) goes too.
            Table1Counts {
                variable: "ins",
                level: true,
                counts: &[Some(300), Some(276)],
                denominators: &d,
                missing: &[0, 0],
            },
            Table1Counts {
                variable: "ins",
                level: true,
                counts: &[Some(150), Some(20)],
                denominators: &d,
                missing: &[0, 0],
            },
            Table1Counts {
                variable: "ins",
                level: true,
                counts: &[Some(50), Some(4)],
                denominators: &d,
                missing: &[0, 0],
            },
            // A mean (SD) row has no count.
            Table1Counts {
                variable: "age",
                level: false,
                counts: &[None, None],
                denominators: &d,
                missing: &[0, 0],
            },
        ];
        let (h, missing) = table1(&rows, 11);
        assert!(missing.iter().flatten().all(|m| !m));
        use Cell::{Complementary as C, Shown as S, Small as L};
        assert_eq!(h[0], [S, C]);
        assert_eq!(h[1], [S, S]);
        assert_eq!(h[2], [S, C]);
        assert_eq!(h[3], [S, L]);
        assert_eq!(h[4], [S, S]);
        assert_eq!(L.text(11).as_deref(), Some("<11"));
        assert_eq!(C.text(11).as_deref(), Some("suppressed"));
    }

    #[test]
    fn small_counts_are_suppressed_zero_is_not() {
        assert_eq!(count(7, 11), None);
        assert_eq!(count(0, 11), Some(0));
        assert_eq!(count(11, 11), Some(11));
        assert_eq!(text(10, 11), "<11");
    }

    #[test]
    fn a_suppressed_exclusion_hides_the_remaining_counts_that_reveal_it() {
        // Rows read 1000 and the final 843 are shown: 7 alone would be
        // 1000 − 843 − 100 − 50, so the smallest other exclusion (50) goes too.
        let steps = [(100, 900), (7, 893), (50, 843)];
        let out = attrition(&steps, 11);
        assert_eq!(
            out,
            vec![(Some(100), Some(900)), (None, None), (None, None)]
        );
    }
}
