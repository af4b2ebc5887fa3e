//! The report's section 4, "Table 1": the cohort, and the complete cases of
//! every variable.

use super::{ReportInput, Table};
use crate::format::num;
use crate::results::Table1Row;

/// Table 1 of the cohort and, when any value is missing, of the complete
/// cases of every used variable.
pub(super) fn tables(input: &ReportInput) -> (Table, Option<Table>) {
    let r = input.results;
    let m = input.min_cell;
    let legend = format!(
        "Mean (SD) or n (%) of the non-missing values; SMD: standardized mean difference of \
         each comparison group against the reference (none beside a suppressed cell); <{m}: a \
         count below the minimum cell size; suppressed: hidden so that such a count cannot be \
         recovered."
    );
    if r.cohort.table1.is_empty() {
        // A study from moments: no row left the warehouse to describe.
        let note = "Table 1 is not computed: the study ran from moments computed in the \
                    warehouse, and only the aggregates of its analyses left it (each \
                    analysis's sample per group is in its attrition table under Method details)."
            .to_string();
        return (table1_table(input, &[], note), None);
    }
    let table1 = table1_table(
        input,
        &r.cohort.table1,
        format!(
            "The cohort after the filters, before any analysis's complete-case step (each \
             analysis takes the complete cases of its own variables; its sample per group is in \
             its attrition table under Method details).{}{legend}",
            if r.cohort.table1_complete.is_some() {
                " The next table describes the complete cases of every variable. "
            } else {
                " No value is missing: every analysis uses these rows. "
            }
        ),
    );
    let table1_complete = r.cohort.table1_complete.as_ref().map(|rows| {
        table1_table(
            input,
            rows,
            format!(
                "The complete cases of every outcome and covariate the config uses: the sample \
                 of an analysis that uses them all (analyses with fewer variables keep more \
                 rows). {legend}"
            ),
        )
    });
    (table1, table1_complete)
}

/// A Table 1 from its (suppressed) JSON rows.
fn table1_table(input: &ReportInput, rows: &[Table1Row], note: String) -> Table {
    let mut head = vec!["variable".to_string(), "level".to_string()];
    head.extend(input.group_labels.iter().cloned());
    // One SMD per comparison group, against the reference.
    head.extend(
        input
            .group_labels
            .iter()
            .skip(1)
            .map(|l| format!("SMD {l}")),
    );
    Table {
        rows: rows
            .iter()
            .map(|t| {
                let mut cells = vec![t.variable.clone(), t.level.clone().unwrap_or_default()];
                cells.extend(t.groups.iter().map(|c| c.text.clone()));
                cells.extend(t.groups.iter().skip(1).map(|c| num(c.smd)));
                cells
            })
            .collect(),
        head,
        numeric_from: 2,
        note: Some(note),
    }
}
