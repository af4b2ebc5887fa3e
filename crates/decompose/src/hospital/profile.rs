//! Hospital profiling: risk-standardized rates O_h/E_h × ȳ from a
//! patient-level model with percentile intervals from resampling patients
//! within each hospital, the comparison group's concentration, outcomes at
//! minority-serving hospitals against the rest, and the suppressed hospital
//! table (hospitals.csv; see [`super`]).

use healthgap_models::bootstrap::{Interval, infer, stream_key};
use healthgap_models::{Design, Glm, Link, ModelSummary, Ols, SmallSample, VcovKind};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{HierarchicalRow, HospitalInput, HospitalRow};
use crate::crude::{CrudeInput, group_means};
use crate::error::DecomposeError;
use crate::inference::{InferenceSpec, Method, normal_row};
use crate::result::{Estimate, SeMethod};
use crate::sample::{Cluster, Sample};

/// A count, or None below `min_cell`.
fn suppressed(n: usize, min_cell: usize) -> Option<usize> {
    (n >= min_cell).then_some(n)
}

/// Complementary suppression of the hospital table: each count column (n,
/// n_reference, n_comparison) sums to a total the report shows, so a single
/// hidden cell, or hidden cells adding up to fewer than `min_cell`, would be
/// revealed by difference; [`complementary_cells`] hides more. A hospital
/// whose n is hidden loses its group counts, share and rates; one whose group
/// count is hidden loses both group counts (n_r + n_c = n).
fn complementary_suppression(
    table: &mut [HospitalRow],
    used: &[usize],
    rows_of: &[Vec<usize>],
    count: impl Fn(usize, u32) -> usize,
    min_cell: usize,
) {
    let n: Vec<usize> = used.iter().map(|&l| rows_of[l].len()).collect();
    let mut hide_n: Vec<bool> = table.iter().map(|r| r.n.is_none()).collect();
    crate::privacy::complementary_cells(&n, &mut hide_n, min_cell);
    let mut hide_g: Vec<bool> = table
        .iter()
        .zip(&hide_n)
        .map(|(r, h)| *h || r.n_reference.is_none() || r.n_comparison.is_none())
        .collect();
    for g in [0u32, 1] {
        let v: Vec<usize> = used.iter().map(|&l| count(l, g)).collect();
        crate::privacy::complementary_cells(&v, &mut hide_g, min_cell);
    }
    for ((row, hn), hg) in table.iter_mut().zip(hide_n).zip(hide_g) {
        row.n_complementary = hn && row.n.is_some();
        row.groups_complementary =
            (hn || hg) && row.n_reference.is_some() && row.n_comparison.is_some();
        if hn {
            row.n = None;
            row.hide_rates();
        }
        if hn || hg {
            row.n_reference = None;
            row.n_comparison = None;
            row.comparison_share = None;
        }
    }
}

/// Complementary suppression of the rates of a binary outcome: a shown rate
/// times a shown n gives a hospital's events, and the total events are shown
/// (Table 1), so the hidden hospitals' events (and non-events) would add up
/// to a known number: a single hidden hospital, or hidden hospitals with
/// fewer than `min_cell` events or non-events together, take the shown
/// hospital with the fewest with them.
fn complementary_rates(
    table: &mut [HospitalRow],
    used: &[usize],
    rows_of: &[Vec<usize>],
    y: &[f64],
    min_cell: usize,
) {
    let events: Vec<usize> = used
        .iter()
        .map(|&l| rows_of[l].iter().filter(|&&i| y[i] != 0.0).count())
        .collect();
    let non_events: Vec<usize> = used
        .iter()
        .zip(&events)
        .map(|(&l, e)| rows_of[l].len() - e)
        .collect();
    let mut hide: Vec<bool> = table.iter().map(|r| r.observed.is_none()).collect();
    crate::privacy::complementary_cells(&events, &mut hide, min_cell);
    crate::privacy::complementary_cells(&non_events, &mut hide, min_cell);
    for (row, h) in table.iter_mut().zip(hide) {
        if h {
            row.hide_rates();
        }
    }
}

/// Hospital profiling's output.
pub(super) struct Profile {
    /// The hospital table (hospitals.csv).
    pub(super) rows: Vec<HospitalRow>,
    /// Rates of minority-serving and other hospitals.
    pub(super) estimates: Vec<Estimate>,
    /// The patient-level risk model.
    pub(super) model: ModelSummary,
    pub(super) warnings: Vec<String>,
    /// Why an interval was withheld (too many non-finite draws).
    pub(super) withheld: Option<String>,
}

/// Hospital profiling (see the module doc).
pub(super) fn profile(
    input: &HospitalInput<'_>,
    inference: &InferenceSpec,
    cluster: Cluster<'_>,
    hierarchical: Option<&[Option<HierarchicalRow>]>,
) -> Result<Profile, DecomposeError> {
    let level = inference.level;
    let min_cell = input.sample.min_cell;
    let mut warnings = Vec::new();
    let mut withheld = None;
    let (expected, summary) = risk_model(input, cluster, level)?;
    let mut profiling = Profiling::new(input, inference, expected);
    profiling.minority_serving();
    let mut estimates = profiling.concentration(min_cell);
    profiling.hospital_set_rows(
        inference,
        cluster,
        &mut estimates,
        &mut warnings,
        &mut withheld,
    );
    let labels = hospital_labels(input, inference);
    let table = profiling.table(&labels, level, hierarchical, &mut warnings);
    Ok(Profile {
        rows: table,
        estimates,
        model: summary,
        warnings,
        withheld,
    })
}

/// The patient-level model of the `adjust` covariates over every patient
/// (logit for binary outcomes, OLS otherwise, no hospital effects): each
/// patient's expected outcome, and the model's summary.
fn risk_model(
    input: &HospitalInput<'_>,
    cluster: Cluster<'_>,
    level: f64,
) -> Result<(Vec<f64>, ModelSummary), DecomposeError> {
    // Patient-level model over every patient.
    let all: Vec<usize> = (0..input.sample.y.len()).collect();
    let mut cols: Vec<(String, Vec<f64>)> = vec![("(intercept)".into(), vec![1.0; all.len()])];
    for c in &input.covariates.columns {
        cols.push((c.name.clone(), c.values.to_vec()));
    }
    let mut d =
        Design::from_columns("y", input.sample.y.to_vec(), cols).map_err(DecomposeError::Model)?;
    if let Some(w) = input.sample.weights {
        d = d.with_weights(w.to_vec());
    }
    d.cluster = Some(cluster.codes.to_vec());
    d.n_clusters = cluster.count;
    let (expected, summary): (Vec<f64>, ModelSummary) = if input.sample.binary {
        let f = Glm::logit()
            .fit(&d, None)
            .map_err(|error| DecomposeError::Fit {
                model: "profiling model (logit of the adjust covariates)".into(),
                error,
            })?;
        let vc = f
            .vcov(VcovKind::Cr1, cluster.name, SmallSample::default())
            .map_err(DecomposeError::Model)?;
        let s = f.summary(
            "profiling model (all patients, no hospital effects)",
            &vc,
            level,
        );
        (f.eta.iter().map(|e| Link::Logit.cdf(*e)).collect(), s)
    } else {
        let f = Ols::new().fit(&d).map_err(DecomposeError::Model)?;
        let vc = f
            .vcov(VcovKind::Cr1, cluster.name, SmallSample::default())
            .map_err(DecomposeError::Model)?;
        let s = f.summary(
            "profiling model (all patients, no hospital effects)",
            &vc,
            level,
        );
        (
            input
                .sample
                .y
                .iter()
                .zip(&f.residuals)
                .map(|(y, e)| y - e)
                .collect(),
            s,
        )
    };
    Ok((expected, summary))
}

/// What the profiling stages share: each hospital's rows, the expected
/// outcomes, the overall mean, the resampling draws and the minority-serving
/// hospitals.
struct Profiling<'a> {
    input: &'a HospitalInput<'a>,
    /// Each patient's expected outcome under the patient-level model.
    expected: Vec<f64>,
    /// The overall (weighted) outcome mean.
    overall: f64,
    /// Rows of each hospital.
    rows_of: Vec<Vec<usize>>,
    /// Profiling draws per hospital.
    reps: usize,
    /// Per hospital and replicate: resampled (Σw, Σwy, Σw p̂).
    draws: Vec<Vec<(f64, f64, f64)>>,
    /// Hospitals with patients.
    used: Vec<usize>,
    /// Comparison-group share of each hospital's patients.
    share: Vec<f64>,
    /// Minority-serving hospitals (top decile of the comparison group's share).
    msh: Vec<bool>,
}

impl<'a> Profiling<'a> {
    /// The overall mean, each hospital's rows and the within-hospital
    /// resampling draws (model held fixed).
    fn new(
        input: &'a HospitalInput<'a>,
        inference: &InferenceSpec,
        expected: Vec<f64>,
    ) -> Profiling<'a> {
        let h = &input.hospital;
        let w = |i: usize| input.sample.weights.map_or(1.0, |w| w[i]);
        let wsum: f64 = (0..input.sample.y.len()).map(w).sum();
        let overall: f64 = (0..input.sample.y.len())
            .map(|i| w(i) * input.sample.y[i])
            .sum::<f64>()
            / wsum;
        // Rows of each hospital.
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); h.levels];
        for (i, &c) in h.codes.iter().enumerate() {
            rows_of[c as usize].push(i);
        }
        let reps = if inference.method == Method::Bootstrap {
            inference.replicates.max(2)
        } else {
            500
        };
        let key = stream_key(
            inference.seed,
            &format!("{}/profiling", inference.analysis_id),
        );
        // Per hospital and replicate: resampled (Σw, Σwy, Σw p̂).
        let draws: Vec<Vec<(f64, f64, f64)>> = rows_of
            .par_iter()
            .enumerate()
            .map(|(l, rows)| {
                let mut rng = ChaCha8Rng::seed_from_u64(key);
                rng.set_stream(l as u64);
                (0..reps)
                    .map(|_| {
                        let mut t = (0.0, 0.0, 0.0);
                        for _ in 0..rows.len() {
                            let i = rows[rng.random_range(0..rows.len())];
                            t.0 += w(i);
                            t.1 += w(i) * input.sample.y[i];
                            t.2 += w(i) * expected[i];
                        }
                        t
                    })
                    .collect()
            })
            .collect();
        Profiling {
            input,
            expected,
            overall,
            rows_of,
            reps,
            draws,
            used: Vec::new(),
            share: Vec::new(),
            msh: Vec::new(),
        }
    }

    /// A patient's weight.
    fn w(&self, i: usize) -> f64 {
        self.input.sample.weights.map_or(1.0, |w| w[i])
    }

    /// (Σw, Σwy, Σw p̂) over the rows.
    fn sums(&self, rows: &[usize]) -> (f64, f64, f64) {
        rows.iter().fold((0.0, 0.0, 0.0), |(sw, so, se), &i| {
            (
                sw + self.w(i),
                so + self.w(i) * self.input.sample.y[i],
                se + self.w(i) * self.expected[i],
            )
        })
    }

    /// Patients of group g at hospital l.
    fn count(&self, l: usize, g: u32) -> usize {
        self.rows_of[l]
            .iter()
            .filter(|&&i| self.input.sample.group[i] == g)
            .count()
    }

    /// Comparison-group share, minority-serving hospitals.
    fn minority_serving(&mut self) {
        let h = &self.input.hospital;
        let rows_of = &self.rows_of;
        let count = |l: usize, g: u32| self.count(l, g);
        let used: Vec<usize> = (0..h.levels).filter(|&l| !rows_of[l].is_empty()).collect();
        let share: Vec<f64> = (0..h.levels)
            .map(|l| {
                if rows_of[l].is_empty() {
                    0.0
                } else {
                    count(l, 1) as f64 / rows_of[l].len() as f64
                }
            })
            .collect();
        let mut by_share = used.clone();
        by_share.sort_by(|a, b| share[*b].total_cmp(&share[*a]).then(a.cmp(b)));
        let n_msh = used.len().div_ceil(10);
        let mut msh = vec![false; h.levels];
        for &l in &by_share[..n_msh] {
            msh[l] = true;
        }
        (self.used, self.share, self.msh) = (used, share, msh);
    }

    /// Concentration: share of comparison patients at the top hospitals by
    /// comparison volume, and the concentration curve.
    fn concentration(&self, min_cell: usize) -> Vec<Estimate> {
        let used = &self.used;
        let count = |l: usize, g: u32| self.count(l, g);
        // Concentration: share of comparison patients at the top hospitals by comparison volume.
        let mut by_volume = used.clone();
        by_volume.sort_by(|a, b| count(*b, 1).cmp(&count(*a, 1)).then(a.cmp(b)));
        let total_c: usize = used.iter().map(|&l| count(l, 1)).sum();
        let total_r: usize = used.iter().map(|&l| count(l, 0)).sum();
        let mut estimates = Vec::new();
        // Cumulative shares are rounded to multiples of max(1%, min_cell / group
        // size): with few hospitals a step of the curve is one hospital, and the
        // exact shares times the (shown) group size would give its counts, which
        // hospitals.csv suppresses. Rounded, a step is known only to about
        // ±min_cell patients.
        let rounded = |cum: usize, total: usize| -> f64 {
            let total = total.max(1) as f64;
            let q = (min_cell as f64 / total).max(0.01);
            ((cum as f64 / total / q).round() * q).min(1.0)
        };
        for (q, frac) in [
            ("concentration_top_5pct", 0.05),
            ("concentration_top_25pct", 0.25),
        ] {
            let top = &by_volume[..((used.len() as f64 * frac).ceil() as usize).min(used.len())];
            let c: usize = top.iter().map(|&l| count(l, 1)).sum();
            let r: usize = top.iter().map(|&l| count(l, 0)).sum();
            estimates.push(Estimate::total(q, rounded(c, total_c)));
            estimates.push(Estimate::total(
                &format!("{q}_reference"),
                rounded(r, total_r),
            ));
        }
        // The concentration curve: the share of each group's patients treated at the
        // top 5%, 10%, …, 100% of hospitals ranked by comparison-group volume (20
        // points, rounded as above).
        let mut cum = (0usize, 0usize, 0usize);
        for k in 1..=20usize {
            let upto = (used.len() * k).div_ceil(20).min(used.len());
            while cum.0 < upto {
                let l = by_volume[cum.0];
                cum.1 += count(l, 1);
                cum.2 += count(l, 0);
                cum.0 += 1;
            }
            let term = format!("hospitals={}%", 5 * k);
            let mut c = Estimate::total("concentration_curve", rounded(cum.1, total_c));
            c.term = Some(term.clone());
            let mut r = Estimate::total("concentration_curve_reference", rounded(cum.2, total_r));
            r.term = Some(term);
            estimates.push(c);
            estimates.push(r);
        }
        estimates
    }

    /// Outcomes at minority-serving hospitals vs the rest, by group
    /// (cluster-robust means), and each set's risk-standardized rate with
    /// the profiling draws.
    fn hospital_set_rows(
        &self,
        inference: &InferenceSpec,
        cluster: Cluster<'_>,
        estimates: &mut Vec<Estimate>,
        warnings: &mut Vec<String>,
        withheld: &mut Option<String>,
    ) {
        let input = self.input;
        let h = &input.hospital;
        let level = inference.level;
        let (rows_of, draws, reps, overall) = (&self.rows_of, &self.draws, self.reps, self.overall);
        let (used, msh) = (&self.used, &self.msh);
        let sums = |rows: &[usize]| self.sums(rows);
        // Outcomes at minority-serving hospitals vs the rest, by group (cluster-robust means).
        let pair_codes = |inside: bool| -> Vec<u32> {
            (0..input.sample.y.len())
                .map(|i| {
                    if msh[h.codes[i] as usize] == inside {
                        input.sample.group[i].min(2)
                    } else {
                        2
                    }
                })
                .collect()
        };
        for (inside, suffix) in [(true, "minority_serving"), (false, "other_hospitals")] {
            let codes = pair_codes(inside);
            let sample = Sample {
                group: &codes,
                cluster: Some(cluster),
                ..*input.sample
            };
            let input_means = CrudeInput {
                sample: &sample,
                level,
            };
            match group_means(&input_means) {
                Ok(m) => {
                    estimates.push(normal_row(
                        &format!("reference_mean_{suffix}"),
                        m.m_r,
                        m.v_r.sqrt(),
                        level,
                    ));
                    estimates.push(normal_row(
                        &format!("comparison_mean_{suffix}"),
                        m.m_c,
                        m.v_c.sqrt(),
                        level,
                    ));
                }
                Err(e) => warnings.push(format!("outcome means at {suffix} hospitals: {e}")),
            }
            // Risk-standardized rate of the hospital set, with the profiling draws.
            let set: Vec<usize> = used.iter().copied().filter(|&l| msh[l] == inside).collect();
            let point = {
                let (mut o, mut e) = (0.0, 0.0);
                for &l in &set {
                    let (_, so, se) = sums(&rows_of[l]);
                    o += so;
                    e += se;
                }
                o / e * overall
            };
            let reps_v: Vec<f64> = (0..reps)
                .map(|r| {
                    let (mut o, mut e) = (0.0, 0.0);
                    for &l in &set {
                        o += draws[l][r].1;
                        e += draws[l][r].2;
                    }
                    o / e * overall
                })
                .filter(|v| v.is_finite())
                .collect();
            let name = format!("risk_standardized_rate_{suffix}");
            let row = Estimate::total(&name, point);
            let verdict = crate::inference::failure_verdict(
                &format!("profiling draws of {name}"),
                reps - reps_v.len(),
                reps,
                Some("a non-finite rate: no expected events in the draw"),
            );
            estimates.push(match verdict {
                Some(Err(why)) => {
                    withheld.get_or_insert(why);
                    row
                }
                other => {
                    warnings.extend(other.and_then(Result::ok));
                    let inf = infer(point, &reps_v, level, Interval::Percentile, None);
                    row.with_inference(inf.se, inf.ci_low, inf.ci_high, f64::NAN)
                        .made_by(SeMethod::BootstrapPercentile)
                }
            });
        }
    }

    /// The hospital table, suppressed (small cells, then complementary
    /// suppression), in label order.
    fn table(
        &self,
        labels: &[String],
        level: f64,
        hierarchical: Option<&[Option<HierarchicalRow>]>,
        warnings: &mut Vec<String>,
    ) -> Vec<HospitalRow> {
        let input = self.input;
        let min_cell = input.sample.min_cell;
        let (rows_of, draws, overall) = (&self.rows_of, &self.draws, self.overall);
        let (used, share, msh) = (&self.used, &self.share, &self.msh);
        let count = |l: usize, g: u32| self.count(l, g);
        let sums = |rows: &[usize]| self.sums(rows);
        let mut table = Vec::new();
        for &l in used {
            let rows = &rows_of[l];
            let (sw, so, se) = sums(rows);
            let events: usize = rows.iter().filter(|&&i| input.sample.y[i] != 0.0).count();
            let safe_rate =
                !input.sample.binary || (events >= min_cell && rows.len() - events >= min_cell);
            let (nr, nc) = (count(l, 0), count(l, 1));
            let groups_shown = nr >= min_cell && nc >= min_cell;
            let rs = so / se * overall;
            let reps_v: Vec<f64> = draws[l]
                .iter()
                .map(|t| t.1 / t.2 * overall)
                .filter(|v| v.is_finite())
                .collect();
            let inf = infer(rs, &reps_v, level, Interval::Percentile, None);
            let show = |v: f64| (safe_rate && rows.len() >= min_cell && v.is_finite()).then_some(v);
            table.push(HospitalRow {
                hospital: labels[l].clone(),
                n: suppressed(rows.len(), min_cell),
                n_reference: groups_shown.then_some(nr),
                n_comparison: groups_shown.then_some(nc),
                comparison_share: (groups_shown && rows.len() >= min_cell).then_some(share[l]),
                minority_serving: msh[l],
                n_complementary: false,
                groups_complementary: false,
                observed: show(so / sw),
                expected: show(se / sw),
                risk_standardized: show(rs),
                rs_low: show(inf.ci_low),
                rs_high: show(inf.ci_high),
                hierarchical: hierarchical
                    .and_then(|h| h[l].clone())
                    .filter(|_| safe_rate && rows.len() >= min_cell)
                    .map(|h| h.with_groups_shown(groups_shown)),
            });
        }
        complementary_suppression(&mut table, used, rows_of, count, min_cell);
        if input.sample.binary {
            complementary_rates(&mut table, used, rows_of, input.sample.y, min_cell);
        }
        // Rows in label order (numeric labels by value).
        table.sort_by(
            |a, b| match (a.hospital.parse::<f64>(), b.hospital.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a.hospital.cmp(&b.hospital),
            },
        );
        let hidden = table
            .iter()
            .filter(|r| r.risk_standardized.is_none())
            .count();
        if hidden > 0 {
            warnings.push(format!(
                "{hidden} hospital(s) have their rates suppressed in hospitals.csv (fewer than {min_cell} \
                 patients, events or non-events)"
            ));
        }
        table
    }
}

/// The hospital labels of the table: the input's, or pseudonyms (H001, …, in
/// a seeded random order).
fn hospital_labels(input: &HospitalInput<'_>, inference: &InferenceSpec) -> Vec<String> {
    let h = &input.hospital;
    if input.pseudonymize {
        let mut order: Vec<usize> = (0..h.levels).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(stream_key(inference.seed, "pseudonyms"));
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let width = h.levels.to_string().len().max(3);
        let mut out = vec![String::new(); h.levels];
        for (k, &l) in order.iter().enumerate() {
            out[l] = format!("H{:0width$}", k + 1);
        }
        out
    } else {
        h.labels.clone()
    }
}
