//! Seeds. Every random choice (folds, bootstrap samples of the trees, feature
//! draws) comes from a ChaCha8 stream keyed by an explicit seed, and seeds for
//! the parts of a fit are derived from the caller's seed and the part's index
//! (fold, learner, tree), never from the order in which threads run.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The seed of part `index` of a fit seeded with `seed`: SplitMix64 of
/// seed ⊕ (index + 1)·φ, where φ = 2⁶⁴/golden ratio (Steele, Lea & Flood 2014).
pub fn derive(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random stream `stream` of `seed` (ChaCha8 with its stream counter set,
/// as the bootstrap of `healthgap-models` does).
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Tags separating the uses of one seed.
pub(crate) mod tag {
    /// Fold assignment.
    pub const FOLDS: u64 = 1;
    /// The fit on fold v's training rows: FIT_FOLD + v.
    pub const FIT_FOLD: u64 = 1_000;
    /// The fit on all rows.
    pub const FIT_FULL: u64 = 2;
    /// Library member l of a super learner: LIBRARY + l.
    pub const LIBRARY: u64 = 100;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_by_index_and_seed() {
        assert_ne!(derive(7, 0), derive(7, 1));
        assert_ne!(derive(7, 0), derive(8, 0));
        assert_eq!(derive(7, 3), derive(7, 3));
    }
}
