//! StyleGAN2 (Karras et al., CVPR 2020), the backbone of StyleT2I (Li et
//! al., CVPR 2022, sec. 3): a mapping network z -> w, a synthesis network of
//! modulated / demodulated convolutions with noise inputs and skip-connected
//! RGB outputs, and a residual discriminator with a minibatch standard
//! deviation layer.
//!
//! The sub-paths repeat the state_dict keys of rosinality's
//! `stylegan2-pytorch` as vendored by StyleT2I (`model/stylegan2/model.py`):
//! `style.1.weight`, `conv1.conv.modulation.weight`, `convs.0.conv.blur.kernel`,
//! `to_rgbs.0.upsample.kernel`, `noises.noise_0`, `convs.1.conv2.1.weight`,
//! `final_linear.0.bias` ..., so the published checkpoints load by name.
//! Equalised learning rate: weights are stored N(0, 1) and scaled at run
//! time by 1/sqrt(fan_in) (times `lr_mul` in the mapping network).

use crate::layers::lrelu;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// The blur filter of every resampling step (`blur_kernel=[1, 3, 3, 1]`;
/// [1, 1], nearest-neighbour up and box down, measured no better on
/// shapes: docs/experiments.md).
const BLUR: [f64; 4] = [1.0, 3.0, 3.0, 1.0];

/// Samples per minibatch-standard-deviation group of D (`stddev_group`; 16
/// measured no better on shapes).
const STDDEV_GROUP: i64 = 4;

/// Networks of one StyleGAN2 (generator and discriminator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleGan2Config {
    /// Image side (a power of two, >= 8).
    pub size: i64,
    /// Size of z and w (`style_dim`; 512 in the paper).
    pub style_dim: i64,
    /// Layers of the mapping network (`n_mlp`; 8 in the paper).
    pub n_mlp: i64,
    /// Learning-rate multiplier of the mapping network (`lr_mlp`, 0.01).
    pub lr_mlp: f64,
    /// Channels at resolution r are `min(max_channels, channel_base / r)`;
    /// rosinality's table is `channel_base = 16384 * channel_multiplier`.
    pub channel_base: i64,
    /// Upper bound of the channel count (512 in the paper).
    pub max_channels: i64,
}

impl StyleGan2Config {
    /// StyleT2I's CUB / CelebA-HQ backbone: 256x256, 512-d w, 8 mapping
    /// layers, channel multiplier 2.
    pub fn paper() -> Self {
        Self {
            size: 256,
            style_dim: 512,
            n_mlp: 8,
            lr_mlp: 0.01,
            channel_base: 16384 * 2,
            max_channels: 512,
        }
    }

    /// 32x32 with at most 128 channels (128 at 4 and 8, 64 at 16, 32 at
    /// 32) and a 4-layer 128-d mapping network: about 29k steps an hour on
    /// a 2-core CPU (123 ms a step over the regularisation cycle,
    /// docs/BENCHMARKS.md).
    pub fn tiny() -> Self {
        Self {
            size: 32,
            style_dim: 128,
            n_mlp: 4,
            lr_mlp: 0.01,
            channel_base: 1024,
            max_channels: 128,
        }
    }

    /// Channels at resolution `res`.
    pub fn channels(&self, res: i64) -> i64 {
        (self.channel_base / res).min(self.max_channels)
    }

    /// log2 of the image side.
    pub fn log_size(&self) -> i64 {
        63 - (self.size as u64).leading_zeros() as i64
    }

    /// Entries of w+ (one style per modulated convolution and RGB layer).
    pub fn n_latent(&self) -> i64 {
        self.log_size() * 2 - 2
    }

    /// Noise inputs of the synthesis network.
    pub fn num_noises(&self) -> i64 {
        (self.log_size() - 2) * 2 + 1
    }

    /// Why this configuration cannot be built, if it cannot.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.size < 8 || self.size > 1024 || self.size & (self.size - 1) != 0 {
            return Err(format!(
                "size must be a power of two in 8..=1024, not {}",
                self.size
            ));
        }
        if !(1..=4096).contains(&self.style_dim) || !(1..=16).contains(&self.n_mlp) {
            return Err("style_dim must be in 1..=4096 and n_mlp in 1..=16".into());
        }
        if !(self.lr_mlp > 0.0 && self.lr_mlp <= 1.0) {
            return Err(format!("lr_mlp must be in (0, 1], not {}", self.lr_mlp));
        }
        if self.max_channels < 1 || self.channels(self.size) < 1 {
            return Err(format!(
                "channel_base {} gives no channels at {}x{}",
                self.channel_base, self.size, self.size
            ));
        }
        Ok(())
    }
}

/// The 2-D blur filter of a 1-D one, normalised to sum 1 (`make_kernel`).
fn make_kernel(k: &[f64]) -> Tensor {
    let k = Tensor::from_slice(k).to_kind(Kind::Float);
    let k2 = k.unsqueeze(0) * k.unsqueeze(1); // [4, 4]
    &k2 / k2.sum(Kind::Float)
}

/// A fixed filter stored as a buffer under `name` (`kernel` in the
/// checkpoints).
fn kernel_buffer(p: &nn::Path, k: &[f64], gain: f64) -> Tensor {
    let value = make_kernel(k) * gain;
    let mut t = p.zeros_no_train("kernel", &[k.len() as i64, k.len() as i64]);
    tch::no_grad(|| t.copy_(&value));
    t
}

/// Upsample by `up` (zeros between pixels), pad, filter with `kernel`,
/// downsample by `down`: `upfirdn2d`, on every channel alone. Negative pads
/// crop.
///
/// # Shapes
/// `x`: [batch, c, h, w] -> [batch, c, (h*up + pad0 + pad1 - k)/down + 1, ...]
pub fn upfirdn2d(x: &Tensor, kernel: &Tensor, up: i64, down: i64, pad: (i64, i64)) -> Tensor {
    let (n, c, h, w) = x.size4().expect("upfirdn2d takes [batch, c, h, w]");
    let mut out = x.shallow_clone();
    if up > 1 {
        // [n, c, h, 1, w, 1] padded to [.., h, up, w, up]
        out = out
            .reshape([n, c, h, 1, w, 1])
            .constant_pad_nd([0, up - 1, 0, 0, 0, up - 1])
            .reshape([n, c, h * up, w * up]);
    }
    out = out.constant_pad_nd([pad.0, pad.1, pad.0, pad.1]);
    let kk = kernel.size()[0];
    // one depthwise filter per channel
    let weight = kernel
        .flip([0, 1])
        .reshape([1, 1, kk, kk])
        .expand([c, 1, kk, kk], false)
        .to_kind(out.kind());
    out.conv2d(&weight, None::<Tensor>, [down, down], [0, 0], [1, 1], c)
}

/// `leaky_relu(x + bias, 0.2) * sqrt(2)` with a per-channel bias
/// (`FusedLeakyReLU`); channels on dim 1.
pub fn fused_lrelu(x: &Tensor, bias: &Tensor) -> Tensor {
    let mut shape = vec![1, bias.size()[0]];
    shape.extend(std::iter::repeat_n(1, x.dim() - 2));
    lrelu(&(x + bias.reshape(shape.as_slice()))) * std::f64::consts::SQRT_2
}

/// A linear layer with an equalised learning rate (`EqualLinear`).
#[derive(Debug)]
pub struct EqualLinear {
    pub weight: Tensor,
    pub bias: Tensor,
    scale: f64,
    lr_mul: f64,
    /// Fused leaky ReLU after the layer (`activation="fused_lrelu"`).
    activate: bool,
}

impl EqualLinear {
    pub fn new(
        p: nn::Path,
        din: i64,
        dout: i64,
        bias_init: f64,
        lr_mul: f64,
        activate: bool,
    ) -> Self {
        let weight = p.var(
            "weight",
            &[dout, din],
            Init::Randn {
                mean: 0.0,
                stdev: 1.0 / lr_mul,
            },
        );
        let bias = p.var("bias", &[dout], Init::Const(bias_init));
        Self {
            weight,
            bias,
            scale: lr_mul / (din as f64).sqrt(),
            lr_mul,
            activate,
        }
    }

    /// # Shapes
    /// `x`: [batch, din] -> [batch, dout]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let w = &self.weight * self.scale;
        let b = &self.bias * self.lr_mul;
        if self.activate {
            fused_lrelu(&x.linear(&w, None::<Tensor>), &b)
        } else {
            x.linear(&w, Some(&b))
        }
    }
}

/// What a modulated convolution does to the resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resample {
    Keep,
    /// x2 by a transposed convolution then a blur.
    Up,
    /// /2 by a blur then a strided convolution.
    Down,
}

/// A convolution whose weights are scaled per sample by the style
/// (modulation) and renormalised per output channel (demodulation)
/// (`ModulatedConv2d`; StyleGAN2 sec. 2.2, eqs. 1-3).
#[derive(Debug)]
pub struct ModulatedConv2d {
    /// [1, out, in, k, k]
    pub weight: Tensor,
    pub modulation: EqualLinear,
    blur: Option<(Tensor, (i64, i64))>,
    resample: Resample,
    demodulate: bool,
    scale: f64,
    kernel: i64,
}

/// The settings of one [`ModulatedConv2d`].
#[derive(Debug, Clone, Copy)]
pub struct ModConvConfig<'a> {
    /// Kernel side.
    pub kernel: i64,
    pub resample: Resample,
    /// Renormalise per output channel (eq. 3; off for the RGB layers).
    pub demodulate: bool,
    /// The resampling filter ([`BLUR`]).
    pub blur: &'a [f64],
}

impl ModulatedConv2d {
    pub fn new(p: nn::Path, cin: i64, cout: i64, style_dim: i64, cfg: ModConvConfig) -> Self {
        let ModConvConfig {
            kernel,
            resample,
            demodulate,
            blur,
        } = cfg;
        let weight = p.var(
            "weight",
            &[1, cout, cin, kernel, kernel],
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        let modulation = EqualLinear::new(&p / "modulation", style_dim, cin, 1.0, 1.0, false);
        let factor = 2;
        let taps = blur.len() as i64;
        // pads as the reference's floor divisions (pp may be negative)
        let blur = match resample {
            Resample::Keep => None,
            Resample::Up => {
                let pp = (taps - factor) - (kernel - 1);
                let pad = ((pp + 1).div_euclid(2) + factor - 1, pp.div_euclid(2) + 1);
                Some((kernel_buffer(&(&p / "blur"), blur, 4.0), pad))
            }
            Resample::Down => {
                let pp = (taps - factor) + (kernel - 1);
                Some((
                    kernel_buffer(&(&p / "blur"), blur, 1.0),
                    ((pp + 1).div_euclid(2), pp.div_euclid(2)),
                ))
            }
        };
        Self {
            weight,
            modulation,
            blur,
            resample,
            demodulate,
            scale: 1.0 / ((cin * kernel * kernel) as f64).sqrt(),
            kernel,
        }
    }

    /// # Shapes
    /// `x`: [batch, in, h, w], `style`: [batch, style_dim] ->
    /// [batch, out, h', w'] (h' = 2h, h or h/2)
    ///
    /// Computed as StyleGAN2's non-fused form (the official code's
    /// `fused_modconv=False`): the input scaled by the style, one
    /// convolution with the shared weights for the whole batch, the output
    /// scaled by the demodulation coefficients. It equals the reference's
    /// per-sample grouped convolution and is several times faster on CPUs.
    pub fn forward(&self, x: &Tensor, style: &Tensor) -> Tensor {
        let (b, cin, _, _) = x.size4().expect("[batch, c, h, w]");
        let cout = self.weight.size()[1];
        let k = self.kernel;
        let s = self.modulation.forward(style); // [b, in], eq. 1
        let weight = (&self.weight * self.scale).reshape([cout, cin, k, k]);
        let x = x * s.reshape([b, cin, 1, 1]);
        let out = match self.resample {
            Resample::Up => {
                let out = x.conv_transpose2d(
                    &weight.transpose(0, 1), // [in, out, k, k]
                    None::<Tensor>,
                    [2, 2],
                    [0, 0],
                    [0, 0],
                    1,
                    [1, 1],
                );
                let (kern, pad) = self.blur.as_ref().expect("an up-sampling blur");
                upfirdn2d(&out, kern, 1, 1, *pad)
            }
            Resample::Down => {
                let (kern, pad) = self.blur.as_ref().expect("a down-sampling blur");
                upfirdn2d(&x, kern, 1, 1, *pad).conv2d(
                    &weight,
                    None::<Tensor>,
                    [2, 2],
                    [0, 0],
                    [1, 1],
                    1,
                )
            }
            Resample::Keep => x.conv2d(&weight, None::<Tensor>, [1, 1], [k / 2, k / 2], [1, 1], 1),
        };
        if !self.demodulate {
            return out;
        }
        // eq. 3: 1/sqrt(sum_{i,k} (w_{o,i,k} s_i)^2 + eps) per sample and output
        let w2 = weight
            .square()
            .sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Float); // [out, in]
        let demod = (s.square().matmul(&w2.tr()) + 1e-8).rsqrt(); // [b, out]
        out * demod.reshape([b, cout, 1, 1])
    }
}

/// Modulated 3x3 convolution, scaled noise, bias and leaky ReLU
/// (`StyledConv`).
#[derive(Debug)]
pub struct StyledConv {
    pub conv: ModulatedConv2d,
    /// Per-layer noise strength (`noise.weight`, [1]).
    pub noise_weight: Tensor,
    /// `activate.bias`, [out].
    pub bias: Tensor,
}

impl StyledConv {
    pub fn new(p: nn::Path, cin: i64, cout: i64, style_dim: i64, up: bool, blur: &[f64]) -> Self {
        let resample = if up { Resample::Up } else { Resample::Keep };
        Self {
            conv: ModulatedConv2d::new(
                &p / "conv",
                cin,
                cout,
                style_dim,
                ModConvConfig {
                    kernel: 3,
                    resample,
                    demodulate: true,
                    blur,
                },
            ),
            noise_weight: (&p / "noise").var("weight", &[1], Init::Const(0.0)),
            bias: (&p / "activate").var("bias", &[cout], Init::Const(0.0)),
        }
    }

    /// # Shapes
    /// `x`: [batch, in, h, w], `style`: [batch, style_dim], `noise`:
    /// [batch or 1, 1, h', w'] -> [batch, out, h', w']
    pub fn forward(&self, x: &Tensor, style: &Tensor, noise: &Tensor) -> Tensor {
        let out = self.conv.forward(x, style);
        let out = out + &self.noise_weight * noise; // noise input (sec. 2.1)
        fused_lrelu(&out, &self.bias)
    }
}

/// A 1x1 modulated convolution to RGB without demodulation, plus the
/// upsampled RGB of the previous resolution (`ToRGB`; skip generator).
#[derive(Debug)]
pub struct ToRgb {
    pub conv: ModulatedConv2d,
    /// [1, 3, 1, 1]
    pub bias: Tensor,
    /// The upsampling filter of the skip and its pads.
    upsample: Option<(Tensor, (i64, i64))>,
}

impl ToRgb {
    pub fn new(p: nn::Path, cin: i64, style_dim: i64, upsample: bool, blur: &[f64]) -> Self {
        // `Upsample`: p = taps - 2, pads ((p + 1) / 2 + 1, p / 2)
        let pp = blur.len() as i64 - 2;
        let upsample = upsample.then(|| {
            (
                kernel_buffer(&(&p / "upsample"), blur, 4.0),
                ((pp + 1).div_euclid(2) + 1, pp.div_euclid(2)),
            )
        });
        Self {
            conv: ModulatedConv2d::new(
                &p / "conv",
                cin,
                3,
                style_dim,
                ModConvConfig {
                    kernel: 1,
                    resample: Resample::Keep,
                    demodulate: false,
                    blur,
                },
            ),
            bias: p.var("bias", &[1, 3, 1, 1], Init::Const(0.0)),
            upsample,
        }
    }

    /// # Shapes
    /// `x`: [batch, in, h, w], `skip`: [batch, 3, h/2, w/2] -> [batch, 3, h, w]
    pub fn forward(&self, x: &Tensor, style: &Tensor, skip: Option<&Tensor>) -> Tensor {
        let out = self.conv.forward(x, style) + &self.bias;
        match (skip, &self.upsample) {
            (Some(s), Some((k, pad))) => out + upfirdn2d(s, k, 2, 1, *pad),
            _ => out,
        }
    }
}

/// The StyleGAN2 generator (`Generator`): mapping network `style`, the
/// learned constant, one `StyledConv` at 4x4 and two per higher resolution,
/// and an RGB output per resolution summed upward.
#[derive(Debug)]
pub struct Generator {
    pub config: StyleGan2Config,
    style: Vec<EqualLinear>,
    /// `input.input`, [1, c4, 4, 4].
    pub constant: Tensor,
    conv1: StyledConv,
    to_rgb1: ToRgb,
    convs: Vec<StyledConv>,
    to_rgbs: Vec<ToRgb>,
    /// Fixed noise maps (`noises.noise_i`, [1, 1, r, r]).
    pub noises: Vec<Tensor>,
}

impl Generator {
    pub fn new(p: &nn::Path, config: &StyleGan2Config) -> Self {
        let c = config;
        let sd = c.style_dim;
        let style = (1..=c.n_mlp)
            .map(|i| EqualLinear::new(p / "style" / i, sd, sd, 0.0, c.lr_mlp, true))
            .collect();
        let c4 = c.channels(4);
        let constant = (p / "input").var(
            "input",
            &[1, c4, 4, 4],
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        let bk = &BLUR;
        let conv1 = StyledConv::new(p / "conv1", c4, c4, sd, false, bk);
        let to_rgb1 = ToRgb::new(p / "to_rgb1", c4, sd, false, bk);
        let noises = (0..c.num_noises())
            .map(|i| {
                let res = 1 << ((i + 5) / 2);
                (p / "noises").zeros_no_train(&format!("noise_{i}"), &[1, 1, res, res])
            })
            .collect();
        let (mut convs, mut to_rgbs) = (Vec::new(), Vec::new());
        let mut cin = c4;
        for (k, i) in (3..=c.log_size()).enumerate() {
            let cout = c.channels(1 << i);
            convs.push(StyledConv::new(
                p / "convs" / (2 * k),
                cin,
                cout,
                sd,
                true,
                bk,
            ));
            convs.push(StyledConv::new(
                p / "convs" / (2 * k + 1),
                cout,
                cout,
                sd,
                false,
                bk,
            ));
            to_rgbs.push(ToRgb::new(p / "to_rgbs" / k, cout, sd, true, bk));
            cin = cout;
        }
        Self {
            config: c.clone(),
            style,
            constant,
            conv1,
            to_rgb1,
            convs,
            to_rgbs,
            noises,
        }
    }

    /// The mapping network: z -> w (pixel norm, then `n_mlp` layers).
    ///
    /// # Shapes
    /// `z`: [batch, style_dim] -> [batch, style_dim]
    pub fn mapping(&self, z: &Tensor) -> Tensor {
        let mut x = z * (z.square().mean_dim([1i64].as_slice(), true, Kind::Float) + 1e-8).rsqrt();
        for l in &self.style {
            x = l.forward(&x);
        }
        x
    }

    /// Random noise maps for every noise input, from the global RNG.
    pub fn random_noise(&self, batch: i64) -> Vec<Tensor> {
        let dev = self.constant.device();
        self.noises
            .iter()
            .map(|n| {
                let s = n.size();
                Tensor::randn([batch, 1, s[2], s[3]], (Kind::Float, dev))
            })
            .collect()
    }

    /// Synthesis from w+ with the given noise maps.
    ///
    /// # Shapes
    /// `latent`: [batch, n_latent, style_dim]; `noise[i]`: [batch or 1, 1, r, r]
    /// -> [batch, 3, size, size]
    pub fn synthesis(&self, latent: &Tensor, noise: &[Tensor]) -> Tensor {
        let b = latent.size()[0];
        let style = |i: i64| latent.select(1, i); // [batch, style_dim]
        let out = self.constant.repeat([b, 1, 1, 1]); // [batch, c4, 4, 4]
        let mut out = self.conv1.forward(&out, &style(0), &noise[0]);
        let mut skip = self.to_rgb1.forward(&out, &style(1), None); // [batch, 3, 4, 4]
        for (k, to_rgb) in self.to_rgbs.iter().enumerate() {
            let i = 2 * k as i64 + 1;
            out = self.convs[2 * k].forward(&out, &style(i), &noise[2 * k + 1]);
            out = self.convs[2 * k + 1].forward(&out, &style(i + 1), &noise[2 * k + 2]);
            skip = to_rgb.forward(&out, &style(i + 2), Some(&skip));
        }
        skip
    }

    /// w broadcast to every layer: [batch, style_dim] -> [batch, n_latent, style_dim].
    pub fn broadcast(&self, w: &Tensor) -> Tensor {
        w.unsqueeze(1).repeat([1, self.config.n_latent(), 1])
    }
}

/// Convolution with an equalised learning rate, after an optional blur
/// for a stride-2 downsample, before an optional fused leaky ReLU
/// (`ConvLayer`, a `Sequential` whose indices are the checkpoint's).
#[derive(Debug)]
pub struct ConvLayer {
    blur: Option<(Tensor, (i64, i64))>,
    pub weight: Tensor,
    /// The convolution's own bias (only when not activated).
    pub conv_bias: Option<Tensor>,
    /// The fused activation's bias.
    pub act_bias: Option<Tensor>,
    /// Scaled leaky ReLU without bias (`bias=False, activate=True`).
    plain_act: bool,
    scale: f64,
    stride: i64,
    padding: i64,
}

/// Settings of a [`ConvLayer`].
#[derive(Debug, Clone, Copy)]
pub struct ConvLayerConfig {
    pub kernel: i64,
    pub downsample: bool,
    pub bias: bool,
    pub activate: bool,
}

impl Default for ConvLayerConfig {
    fn default() -> Self {
        Self {
            kernel: 3,
            downsample: false,
            bias: true,
            activate: true,
        }
    }
}

impl ConvLayer {
    /// `blur`: the filter before a downsampling convolution.
    pub fn new(p: nn::Path, cin: i64, cout: i64, cfg: ConvLayerConfig, blur: &[f64]) -> Self {
        let k = cfg.kernel;
        let mut idx = 0;
        let blur = cfg.downsample.then(|| {
            let pp = (blur.len() as i64 - 2) + (k - 1);
            idx += 1;
            (
                kernel_buffer(&(&p / 0), blur, 1.0),
                ((pp + 1).div_euclid(2), pp.div_euclid(2)),
            )
        });
        let conv = &p / idx;
        let weight = conv.var(
            "weight",
            &[cout, cin, k, k],
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        let conv_bias =
            (cfg.bias && !cfg.activate).then(|| conv.var("bias", &[cout], Init::Const(0.0)));
        let act_bias = (cfg.activate && cfg.bias)
            .then(|| (&p / (idx + 1)).var("bias", &[cout], Init::Const(0.0)));
        Self {
            blur,
            weight,
            conv_bias,
            act_bias,
            plain_act: cfg.activate && !cfg.bias,
            scale: 1.0 / ((cin * k * k) as f64).sqrt(),
            stride: if cfg.downsample { 2 } else { 1 },
            padding: if cfg.downsample { 0 } else { k / 2 },
        }
    }

    /// # Shapes
    /// [batch, in, h, w] -> [batch, out, h or h/2, w or w/2]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let x = match &self.blur {
            Some((k, pad)) => upfirdn2d(x, k, 1, 1, *pad),
            None => x.shallow_clone(),
        };
        let out = x.conv2d(
            &(&self.weight * self.scale),
            self.conv_bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        );
        match (&self.act_bias, self.plain_act) {
            (Some(b), _) => fused_lrelu(&out, b),
            (None, true) => lrelu(&out) * std::f64::consts::SQRT_2,
            (None, false) => out,
        }
    }
}

/// Two 3x3 convolutions (the second halves the side) plus a 1x1 skip,
/// summed and scaled by 1/sqrt(2) (`ResBlock`).
#[derive(Debug)]
pub struct ResBlock {
    conv1: ConvLayer,
    conv2: ConvLayer,
    skip: ConvLayer,
}

impl ResBlock {
    pub fn new(p: nn::Path, cin: i64, cout: i64, blur: &[f64]) -> Self {
        let down = ConvLayerConfig {
            downsample: true,
            ..Default::default()
        };
        Self {
            conv1: ConvLayer::new(&p / "conv1", cin, cin, ConvLayerConfig::default(), blur),
            conv2: ConvLayer::new(&p / "conv2", cin, cout, down, blur),
            skip: ConvLayer::new(
                &p / "skip",
                cin,
                cout,
                ConvLayerConfig {
                    kernel: 1,
                    bias: false,
                    activate: false,
                    ..down
                },
                blur,
            ),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let out = self.conv2.forward(&self.conv1.forward(x));
        (out + self.skip.forward(x)) / std::f64::consts::SQRT_2
    }
}

/// The StyleGAN2 residual discriminator (`Discriminator`).
#[derive(Debug)]
pub struct Discriminator {
    from_rgb: ConvLayer,
    blocks: Vec<ResBlock>,
    final_conv: ConvLayer,
    final_linear: (EqualLinear, EqualLinear),
}

impl Discriminator {
    pub fn new(p: &nn::Path, config: &StyleGan2Config) -> Self {
        let c = config;
        let convs = p / "convs";
        let mut cin = c.channels(c.size);
        let from_rgb = ConvLayer::new(
            &convs / 0,
            3,
            cin,
            ConvLayerConfig {
                kernel: 1,
                ..Default::default()
            },
            &BLUR,
        );
        let mut blocks = Vec::new();
        for (k, i) in (3..=c.log_size()).rev().enumerate() {
            let cout = c.channels(1 << (i - 1));
            blocks.push(ResBlock::new(&convs / (k + 1), cin, cout, &BLUR));
            cin = cout;
        }
        let c4 = c.channels(4);
        let final_conv = ConvLayer::new(
            p / "final_conv",
            cin + 1,
            c4,
            ConvLayerConfig::default(),
            &BLUR,
        );
        let fl = p / "final_linear";
        let final_linear = (
            EqualLinear::new(&fl / 0, c4 * 16, c4, 0.0, 1.0, true),
            EqualLinear::new(&fl / 1, c4, 1, 0.0, 1.0, false),
        );
        Self {
            from_rgb,
            blocks,
            final_conv,
            final_linear,
        }
    }

    /// Realness logits.
    ///
    /// # Shapes
    /// `x`: [batch, 3, size, size] -> [batch, 1]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut out = self.from_rgb.forward(x);
        for b in &self.blocks {
            out = b.forward(&out);
        }
        let (b, c, h, w) = out.size4().expect("[batch, c, 4, 4]");
        // minibatch standard deviation (ProGAN sec. 3), groups of samples
        // b/g apart as in the reference `view(group, -1, ...)`
        let mut group = b.min(STDDEV_GROUP);
        while b % group != 0 {
            group -= 1; // the reference needs batch % 4 == 0 (or batch < 4)
        }
        let sd = out.reshape([group, -1, 1, c, h, w]);
        let sd = (sd.var_correction(Some([0i64].as_slice()), 0, false) + 1e-8).sqrt(); // [b/g, 1, c, h, w]
        let sd = sd
            .mean_dim([2i64, 3, 4].as_slice(), true, Kind::Float)
            .squeeze_dim(2); // [b/g, 1, 1, 1]
        let sd = sd.repeat([group, 1, h, w]); // [b, 1, h, w]
        let out = self.final_conv.forward(&Tensor::cat(&[out, sd], 1)); // [b, c4, 4, 4]
        let out = self.final_linear.0.forward(&out.reshape([b, -1]));
        self.final_linear.1.forward(&out)
    }
}
