//! The allowable strata: the pair rows ordered by exact combination of the
//! allowable values (A-strata s), each stratum's reference patients and the
//! comparison patients that have any (the standardization R = Σ_{i∈c} w_i
//! ȳ_{r,s(i)} / Σ w_i), the positivity of a hospital target, and the
//! reference partners j(i, d) drawn within each stratum with probability ∝ w_j.

use std::collections::HashMap;

use super::{ReductionInput, Setup};
use crate::error::{DecomposeError, group_sizes};
use crate::inference::{count_text, share_text};

/// The pair rows ordered by allowable stratum, with each stratum's reference
/// patients and the comparison patients that have any.
pub(super) struct Layout {
    /// Pair rows (indexes into the input).
    pub(super) rows: Vec<usize>,
    pub(super) group: Vec<u8>,
    pub(super) stratum_raw: Vec<u32>,
    pub(super) strata: usize,
    pub(super) members: Vec<Vec<usize>>,
    pub(super) comparison: Vec<usize>,
    /// Comparison patients, with or without reference patients in their stratum.
    pub(super) n_c: usize,
}

impl Layout {
    pub(super) fn new(
        input: &ReductionInput<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Layout, DecomposeError> {
        let rows: Vec<usize> = (0..input.sample.group.len())
            .filter(|&i| input.sample.group[i] <= 1)
            .collect();
        let n = rows.len();
        group_sizes(
            input.sample.group,
            input.sample.labels,
            "disparity_reduction",
        )?;
        let group: Vec<u8> = rows.iter().map(|&i| input.sample.group[i] as u8).collect();
        // Strata of the allowable covariates.
        let mut ids: HashMap<Vec<u64>, u32> = HashMap::new();
        let stratum_raw: Vec<u32> = rows
            .iter()
            .map(|&i| {
                let key: Vec<u64> = input
                    .allowable
                    .iter()
                    .map(|&j| input.covariates.columns[j].values[i].to_bits())
                    .collect();
                let next = ids.len() as u32;
                *ids.entry(key).or_insert(next)
            })
            .collect();
        let strata = ids.len();
        // Order the rows by stratum, so that a stratum's reference patients (the
        // partners) sit together in memory.
        let (rows, group, stratum_raw) = {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&r| (stratum_raw[r], r));
            (
                order.iter().map(|&r| rows[r]).collect::<Vec<usize>>(),
                order.iter().map(|&r| group[r]).collect::<Vec<u8>>(),
                order.iter().map(|&r| stratum_raw[r]).collect::<Vec<u32>>(),
            )
        };
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); strata];
        for r in 0..n {
            if group[r] == 0 {
                members[stratum_raw[r] as usize].push(r);
            }
        }
        let comparison: Vec<usize> = (0..n)
            .filter(|&r| group[r] == 1 && !members[stratum_raw[r] as usize].is_empty())
            .collect();
        let n_c = group.iter().filter(|g| **g == 1).count();
        if comparison.len() < n_c {
            let lost = n_c - comparison.len();
            warnings.push(format!(
            "{} comparison patient(s) have no reference patient with the same allowable values ({}) \
             and are left out of the standardization",
            count_text(lost, input.sample.min_cell),
            input.allowable.iter().map(|&j| input.covariates.columns[j].name.as_str()).collect::<Vec<_>>().join(", ")
        ));
        }
        if strata > n / 5 {
            warnings.push(format!(
            "{strata} strata of the allowable covariates for {n} patients: continuous allowable \
             covariates make strata of one; coarsen them (e.g. age groups)"
        ));
        }
        Ok(Layout {
            rows,
            group,
            stratum_raw,
            strata,
            members,
            comparison,
            n_c,
        })
    }
}

/// Positivity for a hospital target: comparison patients in hospitals
/// without reference patients.
pub(super) fn positivity_warning(input: &ReductionInput<'_>, layout: &Layout) -> Option<String> {
    let Layout {
        rows, group, n_c, ..
    } = layout;
    let a = input.covariates.absorbed.as_ref()?;
    if !input.targets.iter().any(|t| t.absorbed) {
        return None;
    }
    let mut has_r = vec![false; a.levels];
    for (r, &i) in rows.iter().enumerate() {
        if group[r] == 0 {
            has_r[a.codes[i] as usize] = true;
        }
    }
    let stranded = || {
        rows.iter()
            .enumerate()
            .filter(|(r, i)| group[*r] == 1 && !has_r[a.codes[**i] as usize])
            .map(|(_, i)| a.codes[*i])
    };
    let hospitals: std::collections::BTreeSet<u32> = stranded().collect();
    if hospitals.is_empty() {
        return None;
    }
    let how_many = share_text(stranded().count(), *n_c, input.sample.min_cell);
    Some(format!(
        "positivity: {} hospital(s) treat no {} patients but {how_many} of the {} patients; \
         under the care-site intervention these patients move to hospitals of the reference \
         distribution",
        hospitals.len(),
        input.sample.labels[0],
        input.sample.labels[1]
    ))
}

impl Setup<'_> {
    /// Reference means per stratum, and every partner by one merge pass of
    /// the sorted uniforms against the cumulative weights.
    pub(super) fn partners(&self, mult: Option<&[f64]>) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
        let d = self.input.draws;
        let mut sw = vec![0.0; self.strata];
        let mut sy = vec![0.0; self.strata];
        let mut partner = vec![0usize; self.comparison.len() * d];
        for (s, members) in self.members.iter().enumerate() {
            for &r in members {
                let w = self.weight(r, mult);
                sw[s] += w;
                sy[s] += w * self.y[r];
            }
            if sw[s] <= 0.0 {
                continue;
            }
            let mut idx = 0;
            let mut cum = self.weight(members[0], mult);
            for &(slot, u) in &self.queries[s] {
                let target = u * sw[s];
                while cum <= target && idx + 1 < members.len() {
                    idx += 1;
                    cum += self.weight(members[idx], mult);
                }
                partner[slot] = members[idx];
            }
        }
        (partner, sw, sy)
    }
}
