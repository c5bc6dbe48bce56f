//! Seeded random streams that do not depend on libtorch's global
//! generator: the same on every device, and a pure function of the run seed
//! and the step, so a resumed run continues exactly.

/// Mixes a run seed and a step into the seed of that step, so that every
/// random draw of step `n` is the same whether or not the run was resumed.
pub fn step_seed(seed: u64, step: i64) -> u64 {
    let mut x = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Standard normal noise `[rows, cols]` drawn on the CPU from `seed` (ChaCha8),
/// independent of libtorch's global generator: the same on every device and
/// safe when several runs share a process.
pub fn normal(rows: i64, cols: i64, seed: u64, device: tch::Device) -> tch::Tensor {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rand_distr::StandardNormal.sample(&mut rng))
        .collect();
    tch::Tensor::from_slice(&v)
        .view([rows, cols])
        .to_device(device)
}

/// Uniform noise in [0, 1) with the shape of `like`, drawn on the CPU from
/// `seed` as [`normal`] is.
pub fn uniform_like(like: &tch::Tensor, seed: u64) -> tch::Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..like.numel()).map(|_| rng.gen::<f32>()).collect();
    tch::Tensor::from_slice(&v)
        .view(like.size().as_slice())
        .to_device(like.device())
}
