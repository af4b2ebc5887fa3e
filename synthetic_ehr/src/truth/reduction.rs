//! The interventional disparity-reduction truths (Jackson & VanderWeele 2018):
//! the comparison patient's target blocks replaced by those of a fresh reference
//! patient with the same age and sex.

use super::K;
use super::draws::{IDX_DRSHAP, IDX_INIT, IDX_RED, IDX_REM};
use super::paths::ShapleyWeights;
use crate::params::{GroupParams, ModelParams};
use crate::scm::{self, Clinical, Demographics, Noise, Socioeconomic};
use crate::world::World;

/// The comparison patient's own blocks (every block from its group) and its
/// oracle outcome, from the 32 configurations of the draw.
pub(super) struct Own<'a> {
    /// The comparison group (index into [`crate::params::GROUP_NAMES`]).
    pub(super) group: usize,
    /// Block D.
    pub(super) demographics: &'a Demographics,
    /// Block S.
    pub(super) socioeconomic: &'a Socioeconomic,
    /// Block C.
    pub(super) clinical: &'a Clinical,
    /// Block H: the hospital index.
    pub(super) hospital: usize,
    /// The oracle outcome E[Y | c] of the patient.
    pub(super) outcome: [f64; K],
}

/// The disparity-reduction contributions of one comparison-group patient with
/// fresh reference noise `f`: initial disparity, remaining and reduced
/// disparity for every target set, and the Shapley reductions.
pub(super) fn reduction_contributions(
    world: &World,
    m: &ModelParams,
    gs: [&GroupParams; 2],
    own: Own<'_>,
    f: &Noise,
    weights: &ShapleyWeights,
    out: &mut [f64],
) {
    // Interventional disparity reduction: a fresh reference patient with the
    // comparison patient's age and sex supplies the target blocks.
    let effect = |h: usize| world.hospitals[h].effect;
    let (gc, gr) = (gs[1], gs[0]);
    let demo_c = own.demographics;
    let (ses_c, clin_c, h_c) = (own.socioeconomic, own.clinical, own.hospital);
    let ses_r = scm::socioeconomic(m, gr, f, demo_c);
    let clin_r = scm::clinical(m, gr, f, demo_c, &ses_r);
    let h_r = scm::hospital(world, m, gr, f, &ses_r);
    let y_c = own.outcome;
    // The standard keeps the reference row and so no random race slope; the
    // comparison patient keeps its direct terms, v_h of its (possibly new)
    // hospital included.
    let y_std = scm::outcome_model(m, gr, demo_c, &ses_r, &clin_r, effect(h_r), 0.0).oracle(m);
    let mut y_t = [[0.0; K]; 8];
    y_t[0] = y_c;
    for (t, slot) in y_t.iter_mut().enumerate().skip(1) {
        let ses = if t & 1 == 1 { &ses_r } else { ses_c };
        let clin = if t & 2 == 2 { &clin_r } else { clin_c };
        let h = if t & 4 == 4 { h_r } else { h_c };
        *slot = scm::outcome_model(
            m,
            gc,
            demo_c,
            ses,
            clin,
            effect(h),
            world.disparity(h, own.group),
        )
        .oracle(m);
    }
    for k in 0..K {
        out[IDX_INIT * K + k] = y_c[k] - y_std[k];
        for t in 1..8 {
            out[(IDX_REM + t - 1) * K + k] = y_t[t][k] - y_std[k];
            out[(IDX_RED + t - 1) * K + k] = y_c[k] - y_t[t][k];
        }
        for b in 0..3 {
            let mut phi = 0.0;
            for s in 0..8usize {
                if s >> b & 1 == 0 {
                    // reduction(S ∪ b) − reduction(S) = y(S) − y(S ∪ b)
                    phi += weights.three[s] * (y_t[s][k] - y_t[s | 1 << b][k]);
                }
            }
            out[(IDX_DRSHAP + b) * K + k] = phi;
        }
    }
}
