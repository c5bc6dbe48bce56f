//! Training: optimiser with savable state, checkpoint files, run folders, and
//! the training loops of each model family.

pub mod checkpoint;
pub mod gan_int_cls;
pub mod optim;
pub mod run;
pub mod text_encoder;

/// Mixes a run seed and a step into the seed of that step, so that every
/// random draw of step `n` is the same whether or not the run was resumed.
pub fn step_seed(seed: u64, step: i64) -> u64 {
    let mut x = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
