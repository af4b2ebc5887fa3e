//! Each analysis's complete cases in a warehouse study, taken as the loader
//! takes them on rows ([`healthgap_cohort::Cohort::complete_cases`]): the
//! outcome, then each of the analysis's variables in order, every one with
//! missing values a step of its attrition table.
//!
//! - The steps' counts come from one counting query per site (per group, the
//!   rows each step excludes, and the events among the complete cases);
//!   the missing rows per group before any step were counted when loading.
//! - The moment queries read the complete cases of their variables and of
//!   the absorbed key ([`WarehouseCohort::complete_step`]); a site without
//!   any contributes no cell.
//! - A complete-case subset codes its clusters, absorbed levels and
//!   categorical levels over those that occur in it (`Cohort::take`), the
//!   first occurring level the reference: [`Occurring`] does the same from
//!   every group's cells, so that the cells, the variances (G counts the
//!   clusters) and the bootstrap (which draws the clusters) equal the file
//!   study's.

use anyhow::Result;

use healthgap_cohort::MissingStep;
use healthgap_decompose::covariates::Covariates;
use healthgap_sql::{Expr, Step};
use healthgap_warehouse::moments::Cell;

use super::{D, Site, WarehouseCohort, count, event_condition, group_rows};

/// One analysis's complete cases for one outcome: the steps (none when no
/// column has missing values), and per group the rows and, for a binary
/// outcome, the events that remain.
#[derive(Debug, Clone)]
pub(super) struct CompleteCases {
    pub(super) steps: Vec<MissingStep>,
    pub(super) rows: Vec<usize>,
    pub(super) events: Option<Vec<usize>>,
}

/// A complete-case count made: (outcome, the variables with missing values
/// in step order) and its result.
pub(super) type Counted = ((usize, Vec<String>), CompleteCases);

impl WarehouseCohort {
    /// The complete cases of `outcome` (its index) and `variables`: without
    /// missing values the cohort's counts, else one counting query per site.
    pub(super) fn complete_cases(
        &self,
        outcome: usize,
        variables: &[String],
    ) -> Result<CompleteCases> {
        let o = &self.facts.outcomes[outcome];
        let missing = |name: &str| self.missing.iter().find(|(n, _)| n == name);
        let mut names: Vec<&str> = vec![o.name.as_str()];
        names.extend(variables.iter().map(String::as_str));
        let stepped: Vec<(&str, &Vec<usize>)> = names
            .into_iter()
            .filter_map(|n| missing(n).map(|(_, m)| (n, m)))
            .collect();
        let events_of_cohort = || {
            self.facts
                .disclosure
                .outcome_counts
                .iter()
                .find(|(n, _)| *n == o.name)
                .map(|(_, c)| c.iter().map(|(e, _)| *e).collect())
        };
        if stepped.is_empty() {
            return Ok(CompleteCases {
                steps: Vec::new(),
                rows: self.facts.group_counts.clone(),
                events: if o.binary { events_of_cohort() } else { None },
            });
        }
        // Analyses whose variables with missing values are the same, in the
        // same order, share one count (each query scans the table).
        let key = (
            outcome,
            stepped.iter().map(|(n, _)| n.to_string()).collect(),
        );
        let counted = || anyhow::anyhow!("the complete-case counts' cache is poisoned");
        if let Some((_, c)) = self
            .counted
            .lock()
            .map_err(|_| counted())?
            .iter()
            .find(|(k, _)| *k == key)
        {
            return Ok(c.clone());
        }
        // Per step: missing it, complete in the earlier steps; then the
        // events among the complete cases.
        let groups = self.group_values.len();
        let mut excluded = vec![vec![0usize; groups]; stepped.len()];
        let mut events = vec![0usize; groups];
        for site in &self.sites {
            let mut conditions = Vec::new();
            let mut earlier: Vec<Expr> = Vec::new();
            for (name, _) in &stepped {
                let column = self.column(site, name);
                conditions.push(all_of(&earlier, column.clone().is_null(false)));
                earlier.push(column.is_null(true));
            }
            let event = event_condition(self.column(site, &o.name), &self.outcomes[outcome]);
            conditions.push(all_of(&earlier, event));
            let sql = site.base.count_query(D, &conditions)?;
            let rs = {
                let mut pg = site
                    .pg
                    .lock()
                    .map_err(|e| anyhow::anyhow!("{}{e}", site.prefix()))?;
                pg.query(&sql)
                    .map_err(|e| anyhow::anyhow!("{}{e}", site.prefix()))?
            };
            for (g, r) in group_rows(&rs, &self.group_values).into_iter().enumerate() {
                let Some(r) = r else {
                    continue;
                };
                for (k, e) in excluded.iter_mut().enumerate() {
                    e[g] += count(&rs.columns[2 + k].1, r);
                }
                events[g] += count(&rs.columns[2 + stepped.len()].1, r);
            }
        }
        let mut remaining = self.facts.group_counts.clone();
        let mut steps = Vec::new();
        for ((name, missing), excluded) in stepped.iter().zip(excluded) {
            for (r, e) in remaining.iter_mut().zip(&excluded) {
                *r = r.saturating_sub(*e);
            }
            steps.push(MissingStep {
                variable: name.to_string(),
                missing: missing.to_vec(),
                excluded,
                remaining: remaining.clone(),
            });
        }
        let complete = CompleteCases {
            steps,
            rows: remaining,
            events: o.binary.then_some(events),
        };
        self.counted
            .lock()
            .map_err(|_| counted())?
            .push((key, complete.clone()));
        Ok(complete)
    }

    /// The step that keeps the complete cases of `names` at `site` (None
    /// when none of them has missing values). A moment query reads only rows
    /// whose design columns are known, but a categorical's NULL need not
    /// make a dummy NULL (one with a single level has none) and the absorbed
    /// variable is a key, not a column: the step requires each of them.
    pub(super) fn complete_step(&self, site: &Site, names: &[&str]) -> Option<Step> {
        let conditions: Vec<Expr> = names
            .iter()
            .filter(|n| self.missing.iter().any(|(m, _)| m == *n))
            .map(|n| self.column(site, n).is_null(true))
            .collect();
        let (last, rest) = conditions.split_last()?;
        Some(Step {
            label: "complete cases".into(),
            condition: all_of(rest, last.clone()),
        })
    }
}

/// `conditions` and `last`, all holding.
fn all_of(conditions: &[Expr], last: Expr) -> Expr {
    conditions
        .iter()
        .rev()
        .fold(last, |all, c| c.clone().and(all))
}

/// One cell of the moments with its codes: the group's index among the
/// cohort's groups, the absorbed level and the cluster (the cohort's codes).
pub(super) struct Coded<'a> {
    pub(super) group: usize,
    pub(super) level: u32,
    pub(super) cluster: u32,
    pub(super) cell: &'a Cell,
}

/// What occurs among the complete cases of a moment query, from every
/// group's cells: the new code of each cluster and absorbed level (None where
/// it does not occur) and the design columns kept.
pub(super) struct Occurring {
    pub(super) clusters: Vec<Option<u32>>,
    pub(super) cluster_count: usize,
    pub(super) levels: Vec<Option<u32>>,
    /// The kept design columns (indices among the covariates' columns).
    pub(super) columns: Vec<usize>,
}

/// Codes over what occurs: `codes[i]` is Some(new code) where `seen[i]`.
fn renumber(seen: &[bool]) -> (Vec<Option<u32>>, usize) {
    let mut next = 0u32;
    let codes = seen
        .iter()
        .map(|&s| {
            s.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    (codes, next as usize)
}

impl Occurring {
    /// From the cells of every group: a cluster or an absorbed level occurs
    /// when a cell has it; a categorical level when its dummy has weight, the
    /// reference when the dummies do not cover every row's (else the first
    /// occurring level becomes the reference, as `Cohort::take` recodes).
    /// `cov` is recoded in place (its columns, categoricals and absorbed
    /// levels).
    pub(super) fn of(cells: &[Coded<'_>], clusters: usize, cov: &mut Covariates) -> Occurring {
        let p = cov.columns.len();
        let levels = cov.absorbed.as_ref().map_or(1, |a| a.levels);
        let (mut seen_cluster, mut seen_level) = (vec![false; clusters], vec![false; levels]);
        let mut weight = 0.0;
        let mut column_weight = vec![0.0; p];
        for c in cells {
            if c.cell.moments.count <= 0.0 {
                continue;
            }
            seen_cluster[c.cluster as usize] = true;
            seen_level[c.level as usize] = true;
            weight += c.cell.moments.sum_w;
            for (j, s) in column_weight.iter_mut().enumerate() {
                *s += c.cell.moments.sums[j];
            }
        }
        // A level's dummy sums its rows' (positive) weights: exactly 0 when
        // no complete case holds it (its mean, and so every centred value,
        // is 0); the reference holds what the dummies leave, up to rounding.
        let mut keep = vec![true; p];
        for cat in &mut cov.categoricals {
            let mut covered = 0.0;
            for &j in &cat.columns {
                keep[j] = column_weight[j] > 0.0;
                covered += column_weight[j];
            }
            if weight - covered <= 1e-9 * weight
                && let Some(&first) = cat.columns.iter().find(|&&j| keep[j])
            {
                keep[first] = false;
                cat.base = cov.columns[first].name.clone();
            }
        }
        let columns: Vec<usize> = (0..p).filter(|&j| keep[j]).collect();
        let (new_column, _) = renumber(&keep);
        for cat in &mut cov.categoricals {
            cat.columns = cat
                .columns
                .iter()
                .filter_map(|&j| new_column[j].map(|c| c as usize))
                .collect();
        }
        cov.columns = columns.iter().map(|&j| cov.columns[j].clone()).collect();
        let (level_codes, level_count) = renumber(&seen_level);
        if let Some(a) = cov.absorbed.as_mut() {
            a.labels = a
                .labels
                .iter()
                .zip(&seen_level)
                .filter(|(_, s)| **s)
                .map(|(l, _)| l.clone())
                .collect();
            a.levels = level_count;
        }
        let (cluster_codes, cluster_count) = renumber(&seen_cluster);
        Occurring {
            clusters: cluster_codes,
            cluster_count,
            levels: level_codes,
            columns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthgap_decompose::covariates::{Absorbed, Categorical, Column};
    use healthgap_sql::CellMoments;

    fn cell(count: f64, x: [f64; 3]) -> Cell {
        let mut moments = CellMoments::zeros(4);
        moments.count = count;
        moments.sum_w = count;
        moments.sums[..3].copy_from_slice(&x);
        Cell {
            keys: Vec::new(),
            moments,
        }
    }

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            factor: "f".into(),
            values: Vec::new(),
        }
    }

    /// Complete cases in hospitals 0 and 2 of three, clusters 1 and 3 of
    /// four, and no patient at the reference level `private`: the codes are
    /// renumbered over what occurs and `medicaid`, the first level that
    /// occurs, becomes the reference (as `Cohort::take` recodes rows).
    #[test]
    fn codes_are_renumbered_over_what_the_complete_cases_hold() {
        let cells = [cell(3.0, [150.0, 1.0, 2.0]), cell(2.0, [100.0, 0.0, 2.0])];
        let coded = [
            Coded {
                group: 0,
                level: 0,
                cluster: 1,
                cell: &cells[0],
            },
            Coded {
                group: 1,
                level: 2,
                cluster: 3,
                cell: &cells[1],
            },
        ];
        let mut cov = Covariates {
            columns: vec![
                column("age"),
                column("ins=medicaid"),
                column("ins=medicare"),
            ],
            categoricals: vec![Categorical {
                variable: "ins".into(),
                factor: "f".into(),
                base: "ins=private".into(),
                columns: vec![1, 2],
            }],
            absorbed: Some(Absorbed {
                variable: "h".into(),
                factor: "care_site".into(),
                codes: Vec::new(),
                levels: 3,
                labels: vec!["a".into(), "b".into(), "c".into()],
            }),
        };
        let o = Occurring::of(&coded, 4, &mut cov);
        assert_eq!(o.clusters, vec![None, Some(0), None, Some(1)]);
        assert_eq!(o.cluster_count, 2);
        assert_eq!(o.levels, vec![Some(0), None, Some(1)]);
        assert_eq!(o.columns, vec![0, 2]);
        let names: Vec<&str> = cov.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["age", "ins=medicare"]);
        assert_eq!(cov.categoricals[0].base, "ins=medicaid");
        assert_eq!(cov.categoricals[0].columns, vec![1]);
        let a = cov.absorbed.as_ref().unwrap();
        assert_eq!(
            (a.levels, a.labels.clone()),
            (2, vec!["a".into(), "c".into()])
        );
    }
}
