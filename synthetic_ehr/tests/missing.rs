//! Missing data (issue #16): the requested shares are realised, blanking
//! changes no complete value and no truth, and the mechanism is the documented
//! MAR one (more missing for emergent cases, minority patients and patients
//! with the event).

use healthgap_synth::missing::Blankable;
use healthgap_synth::{Column, Params, Sample, truth};

/// Requested shares, in the order of [`Blankable::ALL`].
const SHARES: [f64; 6] = [0.15, 0.08, 0.05, 0.10, 0.04, 0.06];

fn params(patients: usize, seed: u64, holes: bool) -> Params {
    let mut p = Params::default();
    p.patients = patients;
    p.seed = seed;
    p.population_draws = 20_000;
    if holes {
        for (b, share) in Blankable::ALL.into_iter().zip(SHARES) {
            p.set(&format!("missing.{}", b.column()), share)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    p
}

/// Whether row `i` of a flat-table column is null.
fn is_null(c: &Column, i: usize) -> bool {
    match c {
        Column::OptInt(v) => v[i].is_none(),
        Column::Float(v) => v[i].is_nan(),
        Column::Cat { codes, levels } => codes[i] as usize >= levels.len(),
        _ => false,
    }
}

#[test]
fn requested_shares_are_realised_within_one_and_a_half_points() {
    let sample = Sample::generate(&params(20_000, 7, true), &|_| {});
    let flat = sample.flat_table();
    let report = sample.missing.as_ref().expect("a missing-data report");
    assert_eq!(report.columns.len(), Blankable::ALL.len());
    for ((b, share), col) in Blankable::ALL.into_iter().zip(SHARES).zip(&report.columns) {
        let column = flat.column(b.column()).expect("column");
        let nulls = (0..flat.height()).filter(|&i| is_null(column, i)).count();
        let realised = nulls as f64 / flat.height() as f64;
        assert!(
            (realised - share).abs() < 0.015,
            "{}: {realised} for {share}",
            b.column()
        );
        assert_eq!(col.column, b.column());
        assert_eq!(col.requested, share);
        assert_eq!(col.rows, nulls, "{}", b.column());
    }
}

#[test]
fn blanking_changes_no_complete_value_and_no_truth() {
    let with = Sample::generate(&params(20_000, 11, true), &|_| {});
    let without = Sample::generate(&params(20_000, 11, false), &|_| {});
    assert!(without.missing.is_none());
    let (a, b) = (with.flat_table(), without.flat_table());
    assert_eq!(a.height(), b.height());
    let mut blanked = 0;
    for ((name, ca), (_, cb)) in a.columns.iter().zip(&b.columns) {
        for i in 0..a.height() {
            if is_null(ca, i) {
                blanked += 1;
                continue;
            }
            let same = match (ca, cb) {
                (Column::OptInt(x), Column::Int(y)) => x[i] == Some(y[i]),
                (Column::Int(x), Column::Int(y)) => x[i] == y[i],
                (Column::Float(x), Column::Float(y)) => x[i].to_bits() == y[i].to_bits(),
                (Column::Cat { codes: x, .. }, Column::Cat { codes: y, .. }) => x[i] == y[i],
                (Column::Date(x), Column::Date(y)) => x[i] == y[i],
                _ => false,
            };
            assert!(same, "{name}, row {i}");
        }
    }
    assert!(blanked > 0);
    assert_eq!(with.hospitals_table(), without.hospitals_table());
    assert_eq!(with.truth_patients_table(), without.truth_patients_table());
    let (ta, tb) = (truth::compute(&with), truth::compute(&without));
    assert_eq!(ta.values, tb.values);
    assert!(ta.missing.is_some() && tb.missing.is_none());
}

/// Share of rows missing `b` among the patients where `pick` holds and where
/// it does not.
fn shares_by(sample: &Sample, b: Blankable, pick: &dyn Fn(usize) -> bool) -> (f64, f64) {
    let (mut yes, mut no) = ([0.0; 2], [0.0; 2]);
    for (i, p) in sample.patients.iter().enumerate() {
        let slot = if pick(i) { &mut yes } else { &mut no };
        slot[0] += f64::from(u8::from(p.is_missing(b)));
        slot[1] += 1.0;
    }
    (yes[0] / yes[1], no[0] / no[1])
}

#[test]
fn missingness_is_higher_for_emergent_minority_and_event_patients() {
    let sample = Sample::generate(&params(20_000, 5, true), &|_| {});
    let ps = &sample.patients;
    let checks: [(&str, &dyn Fn(usize) -> bool); 4] = [
        ("emergent", &|i| ps[i].sim.clinical.status == 2),
        ("race not White", &|i| ps[i].group != 0),
        ("death_30d", &|i| ps[i].outcomes.death),
        ("major_morbidity", &|i| ps[i].outcomes.major_morbidity),
    ];
    for b in Blankable::ALL {
        for (what, pick) in &checks {
            let (yes, no) = shares_by(&sample, b, pick);
            assert!(yes > no, "{}: {what} {yes} vs others {no}", b.column());
        }
    }
    // The payer term is left out because insurance is itself blanked.
    let report = sample.missing.as_ref().expect("report");
    assert!(!report.coefficients.contains_key("medicaid_or_uninsured"));
}

#[test]
fn strength_zero_is_missing_completely_at_random() {
    let mut p = params(20_000, 5, false);
    p.set("missing.bmi", 0.2).unwrap_or_else(|e| panic!("{e}"));
    p.set("missing.strength", 0.0)
        .unwrap_or_else(|e| panic!("{e}"));
    let sample = Sample::generate(&p, &|_| {});
    let ps = &sample.patients;
    let (yes, no) = shares_by(&sample, Blankable::Bmi, &|i| ps[i].outcomes.death);
    // About 460 deaths: 4 SE of 0.2 is about 0.075.
    assert!((yes - no).abs() < 0.075, "{yes} vs {no}");
    let report = sample.missing.as_ref().expect("report");
    assert!(report.coefficients.contains_key("medicaid_or_uninsured"));
    assert_eq!(report.strength, 0.0);
}
