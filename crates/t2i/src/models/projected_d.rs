//! Projected discriminator (Sauer, Chitta, Müller & Geiger, "Projected GANs
//! Converge Faster", NeurIPS 2021): images are scored in the feature space
//! of a frozen ImageNet network F (sec. 3.1), EfficientNet-Lite0 here as in
//! the paper, after fixed random projections that mix channels (CCM) and
//! scales (CSM, sec. 3.2), by one small discriminator per scale (sec. 3.3).
//!
//! F and the projections are never trained; only the per-scale
//! discriminators are. F's weights come from an `efficientnet_pytorch`
//! state_dict (`make efficientnet`), the projections from the run's seed and
//! are saved with the discriminator.

use crate::layers::{lrelu, InitKind, SpectralConv2d};
use crate::models::efficientnet::{LitePyramid, LITE0};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// Lite0 blocks whose outputs feed the discriminators: the ends of the
/// stages at 1/4, 1/8 and 1/16 of F's input (24, 40 and 112 channels).
const TAPS: [usize; 3] = [2, 4, 10];
/// Channels of each scale after cross-channel mixing (the paper's 64, 128,
/// 256 for the first three scales).
const CCM_CHANNELS: [i64; 3] = [64, 128, 256];
/// Widest layer of a per-scale discriminator.
const MAX_HEAD_CHANNELS: i64 = 256;

/// A fixed random convolution (a buffer, never trained).
#[derive(Debug)]
struct FixedConv {
    weight: Tensor,
    bias: Tensor,
    pad: i64,
}

impl FixedConv {
    fn new(p: &nn::Path, cin: i64, cout: i64, k: i64) -> Self {
        // PyTorch's default convolution initialisation, as the paper's
        // randomly initialised projections
        let bound = 1.0 / ((cin * k * k) as f64).sqrt();
        let dev = p.device();
        let uniform =
            |shape: &[i64]| Tensor::empty(shape, (Kind::Float, dev)).uniform_(-bound, bound);
        Self {
            weight: p.add("weight", uniform(&[cout, cin, k, k]), false),
            bias: p.add("bias", uniform(&[cout]), false),
            pad: k / 2,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            Some(&self.bias),
            [1, 1],
            [self.pad, self.pad],
            [1, 1],
            1,
        )
    }
}

/// One scale's discriminator: 4x4 stride-2 spectrally normalised
/// convolutions down to 4x4, then a 4x4 convolution to one logit.
#[derive(Debug)]
struct ScaleD {
    down: Vec<SpectralConv2d>,
    out: SpectralConv2d,
}

impl ScaleD {
    fn new(p: nn::Path, cin: i64, side: i64) -> Self {
        let (mut c, mut s, mut down) = (cin, side, Vec::new());
        while s > 4 {
            let cout = (c * 2).min(MAX_HEAD_CHANNELS);
            let conv =
                SpectralConv2d::new(&p / down.len(), c, cout, 4, 2, 1, true, InitKind::PyTorch);
            down.push(conv);
            (c, s) = (cout, s / 2);
        }
        let out = SpectralConv2d::new(&p / "out", c, 1, s.min(4), 1, 0, true, InitKind::PyTorch);
        Self { down, out }
    }

    /// `[b, c, s, s]` -> `[b]`
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for conv in &self.down {
            h = lrelu(&conv.forward_t(&h, true)); // [b, 2c, s/2, s/2]
        }
        self.out
            .forward_t(&h, true)
            .flatten(1, -1)
            .mean_dim([1i64].as_slice(), false, Kind::Float)
    }
}

/// The projected discriminator: F, CCM, CSM and one [`ScaleD`] per scale.
#[derive(Debug)]
pub struct ProjectedD {
    features: LitePyramid,
    input: i64,
    ccm: Vec<FixedConv>,
    /// Top-down: 1x1 from the deeper scale's channels to this scale's.
    csm_lateral: Vec<FixedConv>,
    /// 3x3 after each scale's sum.
    csm_out: Vec<FixedConv>,
    heads: Vec<ScaleD>,
}

impl ProjectedD {
    /// F under `features` (EfficientNet-Lite0 key names), the projections
    /// and the discriminators under `p`; `input` is the side images are
    /// resized to before F (a multiple of 64).
    pub fn new(features: &nn::Path, p: &nn::Path, input: i64) -> Self {
        let f = LitePyramid::new(features, &LITE0, &TAPS);
        let n = TAPS.len();
        let ccm = (0..n)
            .map(|k| FixedConv::new(&(p / "ccm" / k), f.channels[k], CCM_CHANNELS[k], 1))
            .collect();
        let csm_lateral = (0..n - 1)
            .map(|k| {
                FixedConv::new(
                    &(p / "csm_lateral" / k),
                    CCM_CHANNELS[k + 1],
                    CCM_CHANNELS[k],
                    1,
                )
            })
            .collect();
        let csm_out = (0..n)
            .map(|k| FixedConv::new(&(p / "csm_out" / k), CCM_CHANNELS[k], CCM_CHANNELS[k], 3))
            .collect();
        let heads = (0..n)
            .map(|k| ScaleD::new(p / "heads" / k, CCM_CHANNELS[k], input / f.strides[k]))
            .collect();
        Self {
            features: f,
            input,
            ccm,
            csm_lateral,
            csm_out,
            heads,
        }
    }

    /// The projected features, one map per scale.
    ///
    /// # Shapes
    /// `[b, 3, s, s]` in [-1, 1] -> `[b, CCM_CHANNELS[k], input / 4 / 2^k, ..]`
    pub fn project(&self, x: &Tensor) -> Vec<Tensor> {
        let x = if x.size()[2] == self.input {
            x.shallow_clone()
        } else {
            x.upsample_bilinear2d([self.input, self.input], false, None, None) // [b, 3, input, input]
        };
        let f = self.features.forward(&x);
        let mixed: Vec<Tensor> = f.iter().zip(&self.ccm).map(|(t, c)| c.forward(t)).collect();
        // CSM: from the deepest scale up, each scale adds the one below it
        let n = mixed.len();
        let mut out: Vec<Tensor> = Vec::with_capacity(n);
        let mut deeper: Option<Tensor> = None;
        for k in (0..n).rev() {
            let h = match &deeper {
                Some(d) => {
                    let up =
                        d.upsample_nearest2d([mixed[k].size()[2], mixed[k].size()[3]], None, None);
                    &mixed[k] + self.csm_lateral[k].forward(&up)
                }
                None => mixed[k].shallow_clone(),
            };
            let h = self.csm_out[k].forward(&h);
            deeper = Some(h.shallow_clone());
            out.push(h);
        }
        out.reverse();
        out
    }

    /// One logit per image and scale.
    ///
    /// # Shapes
    /// projected features -> `[b, n_scales]`
    pub fn score(&self, projected: &[Tensor]) -> Tensor {
        let logits: Vec<Tensor> = projected
            .iter()
            .zip(&self.heads)
            .map(|(f, d)| d.forward(f))
            .collect();
        Tensor::stack(&logits, 1)
    }

    /// `[b, 3, s, s]` -> `[b, n_scales]`
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.score(&self.project(x))
    }
}

/// DiffAugment's translation (Zhao et al., "Differentiable Augmentation for
/// Data-Efficient GAN Training", NeurIPS 2020): each image shifted by up to
/// `fraction` of its side in x and y (whole pixels, zeros let in),
/// differentiable in the image. Random from libtorch's generator.
///
/// # Shapes
/// `[b, 3, s, s]` -> `[b, 3, s, s]`
pub fn translate(x: &Tensor, fraction: f64) -> Tensor {
    let (b, s) = (x.size()[0], x.size()[2]);
    let max = (s as f64 * fraction).round() as i64;
    if max == 0 {
        return x.shallow_clone();
    }
    let dev = x.device();
    // whole-pixel shifts in grid units (a pixel is 2 / s)
    let shift = Tensor::randint_low(-max, max + 1, [b, 2], (Kind::Float, dev)) * (2.0 / s as f64);
    let eye = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0])
        .view([1, 2, 2])
        .to_device(dev)
        .repeat([b, 1, 1]);
    let theta = Tensor::cat(&[eye, shift.unsqueeze(2)], 2); // [b, 2, 3]
    let grid = Tensor::affine_grid_generator(&theta, [b, 3, s, s], false); // [b, s, s, 2]
                                                                           // nearest, zeros outside, corners not aligned
    x.grid_sampler(&grid, 1, 0, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_trainable_parts() {
        tch::manual_seed(0);
        let fvs = nn::VarStore::new(tch::Device::Cpu);
        let dvs = nn::VarStore::new(tch::Device::Cpu);
        let d = ProjectedD::new(&fvs.root(), &dvs.root(), 64);
        let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
        let p = d.project(&x);
        let sides: Vec<i64> = p.iter().map(|t| t.size()[2]).collect();
        assert_eq!(sides, [16, 8, 4]);
        assert_eq!(d.forward(&x).size(), [2, 3]);
        // only the per-scale discriminators train; the projections are buffers
        let trainable = dvs.trainable_variables().len();
        let all = dvs.variables().len();
        assert!(trainable > 0 && trainable < all);
        for (name, t) in dvs.variables() {
            assert_eq!(t.requires_grad(), name.starts_with("heads"), "{name}");
        }
        // F's variables are the first 11 blocks of Lite0
        assert!(fvs
            .variables()
            .contains_key("_blocks.10._project_conv.weight"));
        assert!(!fvs
            .variables()
            .contains_key("_blocks.11._project_conv.weight"));
    }

    #[test]
    fn translation_moves_whole_pixels() {
        tch::manual_seed(3);
        let x = Tensor::arange(64, (Kind::Float, tch::Device::Cpu)).view([1, 1, 8, 8]);
        let x = x.repeat([4, 3, 1, 1]);
        let y = translate(&x, 0.25);
        for i in 0..4 {
            // every kept value is one of x's, on the same row or column offset
            let yi = y.get(i).get(0);
            let nonzero = yi.ne(0.0).sum(Kind::Int64).int64_value(&[]);
            assert!(nonzero >= 16, "image {i} kept {nonzero} pixels");
            let frac = (&yi - yi.round()).abs().max().double_value(&[]);
            assert_eq!(frac, 0.0);
        }
        assert_eq!(translate(&x, 0.0).size(), x.size());
    }
}
