//! Small-cell suppression shared by the methods and the report: which cells
//! to hide so that no count below `min_cell` can be read off an output, even
//! by subtracting the shown cells from a shown total.

/// Cells to hide besides the small ones so that no hidden cell can be
/// recovered from the column total (which the report shows): while the hidden
/// cells of a column are a single cell, or add up to fewer than `min_cell`,
/// the smallest shown non-zero cell is hidden too.
pub fn complementary_cells(values: &[usize], hidden: &mut [bool], min_cell: usize) {
    loop {
        let (k, sum) = values
            .iter()
            .zip(hidden.iter())
            .filter(|(_, h)| **h)
            .fold((0usize, 0usize), |(k, s), (v, _)| (k + 1, s + v));
        if k == 0 || (k >= 2 && sum >= min_cell) {
            return;
        }
        let next = values
            .iter()
            .enumerate()
            .filter(|(i, v)| !hidden[*i] && **v > 0)
            .min_by_key(|(i, v)| (**v, *i))
            .map(|(i, _)| i);
        match next {
            Some(i) => hidden[i] = true,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hidden_cell_takes_the_smallest_shown_cell_with_it() {
        let v = [7, 40, 12, 30];
        let mut hidden = [true, false, false, false];
        complementary_cells(&v, &mut hidden, 11);
        assert_eq!(hidden, [true, false, true, false]);
        // Two hidden cells adding up to fewer than min_cell take a third.
        let v = [3, 4, 50, 20];
        let mut hidden = [true, true, false, false];
        complementary_cells(&v, &mut hidden, 11);
        assert_eq!(hidden, [true, true, false, true]);
        // Nothing hidden, nothing to do.
        let mut none = [false; 4];
        complementary_cells(&v, &mut none, 11);
        assert_eq!(none, [false; 4]);
    }
}
