//! R-precision (AttnGAN, sec. 4.1): how often an image's own caption ranks
//! first among itself and 99 captions of other classes, by the cosine of
//! DAMSM sentence and image vectors.

use crate::models::damsm::sent_similarity;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::Tensor;

/// An R-precision figure with its protocol.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RPrecision {
    pub mean: f64,
    pub std: f64,
    pub images: usize,
    pub candidates: usize,
    pub folds: usize,
}

/// R-precision: each image's true caption ranked among
/// itself and `candidates - 1` captions of images of other classes by the
/// cosine of DAMSM sentence and image vectors; a hit when it ranks first.
/// Returns (mean, std) over `folds` equal folds of the images.
///
/// # Shapes
/// `image [n, D]`, `true_text [n, D]`, `pool [m, D]` with `pool_class [m]`.
#[allow(clippy::too_many_arguments)]
pub fn r_precision(
    image: &Tensor,
    image_class: &[i64],
    true_text: &Tensor,
    pool: &Tensor,
    pool_class: &[i64],
    candidates: usize,
    folds: usize,
    seed: u64,
) -> (f64, f64) {
    let n = image_class.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hits = Vec::with_capacity(n);
    let dev = image.device();
    for (i, &class) in image_class.iter().enumerate() {
        let mut cand: Vec<i64> = Vec::with_capacity(candidates - 1);
        while cand.len() < candidates - 1 {
            let j = rng.gen_range(0..pool_class.len());
            if pool_class[j] != class {
                cand.push(j as i64);
            }
        }
        let others = pool.index_select(0, &Tensor::from_slice(&cand).to_device(dev));
        let texts = Tensor::cat(&[true_text.get(i as i64).unsqueeze(0), others], 0); // [candidates, D]
        let sims = sent_similarity(&image.get(i as i64).unsqueeze(0), &texts); // [1, candidates]
        let best = sims.argmax(1, false).int64_value(&[0]);
        hits.push(f64::from(u8::from(best == 0)));
    }
    let folds = folds.clamp(1, n.max(1));
    let per = n / folds;
    let means: Vec<f64> = (0..folds)
        .map(|f| hits[f * per..(f + 1) * per].iter().sum::<f64>() / per.max(1) as f64)
        .collect();
    let mean = means.iter().sum::<f64>() / folds as f64;
    let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / folds as f64;
    (mean, var.sqrt())
}
