//! Small-cell suppression: counts below `min_cell` (default 11) never leave in a
//! report. Suppressed counts become null in JSON and `<11` in text.
//!
//! Complementary suppression in the attrition table: a step's remaining count
//! minus the previous one reveals its excluded count, so once an excluded count
//! is suppressed, every remaining count from that step on is suppressed too.

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

/// Attrition with complementary suppression: returns (excluded, remaining) per
/// step. Once an excluded count is suppressed, the remaining counts from that
/// step on are suppressed as well (each would reveal it by difference).
pub fn attrition(steps: &[(usize, usize)], min_cell: usize) -> Vec<(Option<usize>, Option<usize>)> {
    let mut hidden = false;
    steps
        .iter()
        .map(|&(excluded, remaining)| {
            let e = count(excluded, min_cell);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_suppressed_zero_is_not() {
        assert_eq!(count(7, 11), None);
        assert_eq!(count(0, 11), Some(0));
        assert_eq!(count(11, 11), Some(11));
        assert_eq!(text(10, 11), "<11");
    }

    #[test]
    fn a_suppressed_exclusion_hides_the_remaining_counts_that_reveal_it() {
        let steps = [(100, 900), (7, 893), (50, 843)];
        let out = attrition(&steps, 11);
        assert_eq!(
            out,
            vec![(Some(100), Some(900)), (None, None), (Some(50), None)]
        );
    }
}
