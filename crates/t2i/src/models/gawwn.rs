//! GAWWN: Reed et al., "Learning What and Where to Draw", NeurIPS 2016
//! (reference code reedscot/nips2016, `main_cub_bbox.lua`,
//! `main_cub_keypoints.lua`, `main_gen_keypoints.lua`).
//!
//! - Box-conditional G and D (sec. 3.1, Fig. 2): the text is replicated on
//!   an M x M grid and warped into the box by a spatial transformer (zero
//!   outside it); G has a global path and a local path whose M x M features
//!   are warped into the box, depth-concatenated and up-convolved to the
//!   image; D has a local path (image and text features cropped to the box)
//!   and a global path, whose vectors meet in a final layer. Matching-aware
//!   (sec. 4.2 of GAN-INT-CLS): real image with wrong text is fake.
//! - Keypoint-conditional G and D (sec. 3.2, Fig. 3): K keypoint maps of M x M
//!   with a 1 at each visible part's cell; the local path is gated by their
//!   union and the maps are depth-concatenated, in G and D.
//! - Conditional keypoint generator G_k / D_k (sec. 3.3, eq. 1):
//!   `G_k(z, t, k, s) = s * k + (1 - s) * f(z, t, k)`.
//!
//! Boxes are `[x, y, w, h]` fractions of the image; keypoints `(x, y)`
//! fractions with a visibility flag.

use crate::layers::{self, InitKind, Seq};
use crate::text::{AnyTextEncoder, TextEncoder};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// What tells G and D where to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// One bounding box per image.
    Box,
    /// K part locations per image.
    Keypoints,
}

/// Configuration of the GAWWN networks and their training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GawwnConfig {
    /// Preset name this config came from.
    pub preset: String,
    /// Box or keypoint conditioning.
    pub condition: Condition,
    /// Output side in pixels (`map_size` times a power of two).
    pub image_size: i64,
    /// Side M of the spatial text and keypoint grids (16 in the paper).
    pub map_size: i64,
    /// Number of keypoints K (set by the data set: 15 parts for CUB, 5 for
    /// shapes).
    pub parts: i64,
    /// Noise size.
    pub z_dim: i64,
    /// Sentence vector size (set by the text encoder).
    pub text_dim: i64,
    /// Projected text size in D (`nt`).
    pub proj_dim: i64,
    /// Generator width (`ngf`).
    pub ngf: i64,
    /// Discriminator width (`ndf`).
    pub ndf: i64,
    /// Minibatch size.
    pub batch_size: i64,
    /// Adam learning rate (G, D, G_k, D_k).
    pub lr: f64,
    /// Adam beta1.
    pub beta1: f64,
    /// Weight of the real-image / wrong-text term in D's loss; the fake
    /// term has `1 - cls_weight` (the reference code's 0.5 / 0.5).
    pub cls_weight: f64,
    /// Probability that a keypoint is given to G_k in training (0.1: the
    /// reference code drops each with probability 0.9).
    pub keypoint_keep_prob: f64,
    /// Probability that D's wrong caption belongs to an image that differs
    /// only in colour or only in shape (shapes data; 0 in the paper): D must
    /// check both, so G must draw both.
    #[serde(default)]
    pub hard_negative_prob: f64,
    /// D_k normalises its hidden layers with BatchNorm, weights N(0, 0.02)
    /// (the reference code). Off: no BatchNorm, PyTorch's default init; on
    /// shapes the reference D_k wins at once and G_k learns nothing
    /// (docs/experiments.md).
    #[serde(default = "yes")]
    pub dk_batch_norm: bool,
    /// Weight of an L1 term that pulls G_k's drawn keypoints (those not
    /// given) to the real set's (0 in the paper).
    #[serde(default)]
    pub gk_l1_weight: f64,
    /// Decay of the running average of G's weights that generates (0: the
    /// trained weights generate, as in the paper); read with standing
    /// batch-norm statistics.
    #[serde(default)]
    pub ema_decay: f64,
}

fn yes() -> bool {
    true
}

impl GawwnConfig {
    /// The paper's box model: 128x128, M 16, ngf 128, ndf 64, nt 128, z 100,
    /// 1024-d char-CNN-RNN text, batch 16, Adam 2e-4 / 0.5.
    pub fn paper() -> Self {
        Self {
            preset: "paper".into(),
            condition: Condition::Box,
            image_size: 128,
            map_size: 16,
            parts: 15,
            z_dim: 100,
            text_dim: 1024,
            proj_dim: 128,
            ngf: 128,
            ndf: 64,
            batch_size: 16,
            lr: 2e-4,
            beta1: 0.5,
            cls_weight: 0.5,
            keypoint_keep_prob: 0.1,
            hard_negative_prob: 0.0,
            dk_batch_norm: true,
            gk_l1_weight: 0.0,
            ema_decay: 0.0,
        }
    }
    /// CPU preset: 32x32, M 8, narrow widths, 128-d text, batch 32, Adam
    /// 5e-4 (as GAN-INT-CLS `tiny`), hard negatives half the time; D_k
    /// without BatchNorm and an L1 term for G_k.
    pub fn tiny() -> Self {
        Self {
            preset: "tiny".into(),
            image_size: 32,
            map_size: 8,
            parts: 5,
            text_dim: 128,
            proj_dim: 64,
            ngf: 32,
            ndf: 32,
            batch_size: 32,
            lr: 5e-4,
            hard_negative_prob: 0.5,
            dk_batch_norm: false,
            gk_l1_weight: 100.0,
            ..Self::paper()
        }
    }
    /// The preset called `name`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "paper" => Some(Self::paper()),
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }
    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), String> {
        let ok_pow2 = |v: i64| v > 0 && v & (v - 1) == 0;
        if !(8..=64).contains(&self.map_size) || !ok_pow2(self.map_size) {
            return Err(format!(
                "map_size must be 8, 16, 32 or 64, got {}",
                self.map_size
            ));
        }
        if self.image_size < 2 * self.map_size
            || self.image_size % self.map_size != 0
            || !ok_pow2(self.image_size / self.map_size)
        {
            return Err(format!(
                "image_size must be map_size ({}) times 2, 4, 8..., got {}",
                self.map_size, self.image_size
            ));
        }
        if self.parts < 1 {
            return Err(format!("parts must be at least 1, got {}", self.parts));
        }
        if !(0.0..=1.0).contains(&self.cls_weight) {
            return Err(format!(
                "cls_weight must be in [0, 1], got {}",
                self.cls_weight
            ));
        }
        Ok(())
    }
    /// x2 steps from M to the image.
    fn up_steps(&self) -> i64 {
        (self.image_size / self.map_size).trailing_zeros() as i64
    }
    /// x2 steps from 4 to M.
    fn map_steps(&self) -> i64 {
        (self.map_size / 4).trailing_zeros() as i64
    }
}

fn relu(x: &Tensor) -> Tensor {
    x.relu()
}

/// The affine transforms of boxes for `affine_grid` (normalised [-1, 1]
/// coordinates): `crop` samples the box's content into a whole M x M grid
/// (D's local path), `place` samples a whole grid into the box, zero
/// outside (G's local path and the spatial text).
///
/// # Shapes
/// `boxes`: `[batch, 4]` as `[x, y, w, h]` fractions -> two `[batch, 2, 3]`
pub fn box_transforms(boxes: &Tensor) -> (Tensor, Tensor) {
    let x = boxes.select(1, 0);
    let y = boxes.select(1, 1);
    let w = boxes.select(1, 2).clamp_min(1e-3);
    let h = boxes.select(1, 3).clamp_min(1e-3);
    let cx = (&x + &w / 2.0) * 2.0 - 1.0; // box centre in [-1, 1]
    let cy = (&y + &h / 2.0) * 2.0 - 1.0;
    let zero = Tensor::zeros_like(&w);
    let crop = Tensor::stack(&[&w, &zero, &cx, &zero, &h, &cy], 1).view([-1, 2, 3]);
    let place = Tensor::stack(
        &[
            &w.reciprocal(),
            &zero,
            &(-&cx / &w),
            &zero,
            &h.reciprocal(),
            &(-&cy / &h),
        ],
        1,
    )
    .view([-1, 2, 3]);
    (crop, place)
}

/// Samples `x` through the affine transforms `theta` onto an `x`-sized
/// grid, zero outside (`nn.BilinearSamplerBHWD` of the reference code).
///
/// # Shapes
/// `x`: `[batch, c, m, m]`, `theta`: `[batch, 2, 3]` -> `[batch, c, m, m]`
pub fn warp(x: &Tensor, theta: &Tensor) -> Tensor {
    let s = x.size();
    let grid = Tensor::affine_grid_generator(theta, [s[0], s[1], s[2], s[3]], false);
    // bilinear (0), zeros padding (0)
    x.grid_sampler(&grid, 0, 0, false)
}

/// A vector replicated on an `m x m` grid.
///
/// # Shapes
/// `v`: `[batch, c]` -> `[batch, c, m, m]`
fn replicate(v: &Tensor, m: i64) -> Tensor {
    let s = v.size();
    v.view([s[0], s[1], 1, 1]).expand([s[0], s[1], m, m], false)
}

/// Keypoint maps: a 1 at each visible part's cell of an `m x m` grid.
///
/// # Shapes
/// `kp`: `[batch, K, 3]` (x, y fractions, visibility) -> `[batch, K, m, m]`
pub fn keypoint_maps(kp: &Tensor, m: i64) -> Tensor {
    let (b, k) = (kp.size()[0], kp.size()[1]);
    let dev = kp.device();
    let col = (kp.select(2, 0) * m as f64)
        .floor()
        .clamp(0.0, (m - 1) as f64)
        .to_kind(Kind::Int64); // [batch, K]
    let row = (kp.select(2, 1) * m as f64)
        .floor()
        .clamp(0.0, (m - 1) as f64)
        .to_kind(Kind::Int64);
    let idx = (row * m + col).unsqueeze(-1); // [batch, K, 1]
    let vis = kp.select(2, 2).gt(0.5).to_kind(Kind::Float).unsqueeze(-1);
    Tensor::zeros([b, k, m * m], (Kind::Float, dev))
        .scatter(2, &idx, &vis)
        .view([b, k, m, m])
}

/// The union of the keypoint maps, one channel. `[batch, 1, m, m]`
fn keypoint_mask(maps: &Tensor) -> Tensor {
    maps.sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
        .clamp(0.0, 1.0)
}

/// A residual block of the reference G: 1x1 to `c/4`, 3x3, 3x3 back to `c`
/// (batch norm after each), added to its input.
fn residual(p: nn::Path, c: i64, inner: i64) -> nn::SequentialT {
    Seq::new(p, InitKind::DcGan)
        .conv(c, inner, 1, 1, 0, true)
        .bn(inner)
        .act(relu)
        .conv(inner, inner, 3, 1, 1, true)
        .bn(inner)
        .act(relu)
        .conv(inner, c, 3, 1, 1, true)
        .bn(c)
        .done()
}

/// The up-convolutions from M to the image, shared by both generators:
/// `cin` channels at M, halving the width each x2 step (at least 32
/// channels before the last), tanh at the end.
fn to_image(p: nn::Path, c: &GawwnConfig, cin: i64) -> nn::SequentialT {
    let mut seq = Seq::new(p, InitKind::DcGan);
    let mut ch = cin;
    let steps = c.up_steps();
    for i in 0..steps {
        let last = i == steps - 1;
        let out = if last { 3 } else { (ch / 2).max(32.min(ch)) };
        seq = seq.deconv(ch, out, 4, 2, 1);
        if !last {
            seq = seq.bn(out).act(relu);
        }
        ch = out;
    }
    seq.act(|x| x.tanh()).done()
}

/// D's image body to M x M: stride-2 convolutions (batch norm from the
/// third, as the reference code), then a 3x3 convolution, `ndf * 2`
/// channels (`imgGlobalD`).
fn image_body(p: nn::Path, c: &GawwnConfig) -> nn::SequentialT {
    let mut seq = Seq::new(p, InitKind::DcGan);
    let steps = c.up_steps();
    let mut ch = 3;
    for i in 0..steps {
        let out = if i == steps - 1 { c.ndf * 2 } else { c.ndf };
        seq = seq.conv(ch, out, 4, 2, 1, true);
        if i >= 2 || i == steps - 1 {
            seq = seq.bn(out);
        }
        seq = seq.act(layers::lrelu);
        ch = out;
    }
    seq.conv(ch, c.ndf * 2, 3, 1, 1, true)
        .bn(c.ndf * 2)
        .act(layers::lrelu)
        .done()
}

/// Stride-2 convolutions from M down to 4, then a 4x4 convolution to 1x1
/// (`cin` -> `cout` channels, batch norm and ReLU after each).
fn down_to_vector(p: nn::Path, c: &GawwnConfig, cin: i64, cout: i64) -> nn::SequentialT {
    let mut seq = Seq::new(p, InitKind::DcGan);
    let mut ch = cin;
    for _ in 0..c.map_steps() {
        seq = seq.conv(ch, cout, 4, 2, 1, true).bn(cout).act(relu);
        ch = cout;
    }
    seq.conv(ch, cout, 4, 1, 0, true).bn(cout).act(relu).done()
}

/// 1x1 -> 4x4 -> ... -> M up-convolutions: `cin` channels in, widths
/// halving per x2 step down to `cout` at M (batch norm and ReLU after each).
fn up_to_map(p: nn::Path, c: &GawwnConfig, cin: i64, cout: i64) -> nn::SequentialT {
    let mut seq = Seq::new(p, InitKind::DcGan);
    let steps = c.map_steps();
    let first = if steps == 0 { cout } else { cin };
    seq = seq.deconv(cin, first, 4, 1, 0).bn(first).act(relu);
    let mut ch = first;
    for i in 0..steps {
        let out = if i == steps - 1 {
            cout
        } else {
            (ch / 2).max(cout)
        };
        seq = seq.deconv(ch, out, 4, 2, 1).bn(out).act(relu);
        ch = out;
    }
    seq.done()
}

/// Box-conditional generator (`main_cub_bbox.lua`).
pub struct BoxGenerator {
    config: GawwnConfig,
    /// Text to `ngf * 4` (`prep_txt_g`, shared by both paths).
    text: nn::Linear,
    /// Noise to `ngf * 4` for the local path (`prep_noise`).
    noise_local: nn::Linear,
    /// Noise to `ngf * 4` for the global path.
    noise_global: nn::Linear,
    /// The spatial text down to a vector (`txtGlobalG`).
    text_global: nn::SequentialT,
    /// 1x1 -> M, `ngf * 2` channels (`globalG`).
    global: nn::SequentialT,
    /// 1x1 -> 4 (`ngf * 8`) with a residual block (`convG`).
    local_head: nn::SequentialT,
    local_res: nn::SequentialT,
    /// 4 -> M (`ngf * 2`).
    local_up: nn::SequentialT,
    /// The joined paths: 3x3, then up to the image.
    mix: nn::SequentialT,
    image: nn::SequentialT,
}

impl BoxGenerator {
    pub fn new(p: nn::Path, c: &GawwnConfig) -> Self {
        let (ngf, init) = (c.ngf, InitKind::DcGan);
        let text = layers::linear(&p / "text", c.text_dim, ngf * 4, true, init);
        let noise_local = layers::linear(&p / "noise_local", c.z_dim, ngf * 4, true, init);
        let noise_global = layers::linear(&p / "noise_global", c.z_dim, ngf * 4, true, init);
        let text_global = down_to_vector(&p / "text_global", c, ngf * 4, ngf * 4);
        let global = up_to_map(&p / "global", c, ngf * 8, ngf * 2);
        let local_head = Seq::new(&p / "local_head", init)
            .deconv(ngf * 8, ngf * 8, 4, 1, 0)
            .bn(ngf * 8)
            .done();
        let local_res = residual(&p / "local_res", ngf * 8, ngf * 2);
        let mut up = Seq::new(&p / "local_up", init);
        let mut ch = ngf * 8;
        let steps = c.map_steps().max(1);
        for i in 0..steps {
            let out = if i == steps - 1 { ngf * 2 } else { ch / 2 };
            let stride = if c.map_steps() == 0 { 1 } else { 2 };
            up = if stride == 2 {
                up.deconv(ch, out, 4, 2, 1)
            } else {
                up.deconv(ch, out, 3, 1, 1)
            };
            up = up.bn(out);
            if i < steps - 1 {
                up = up.act(relu);
            }
            ch = out;
        }
        let mix = Seq::new(&p / "mix", init)
            .deconv(ngf * 4, ngf * 2, 3, 1, 1)
            .bn(ngf * 2)
            .act(relu)
            .done();
        let image = to_image(&p / "image", c, ngf * 2);
        Self {
            config: c.clone(),
            text,
            noise_local,
            noise_global,
            text_global,
            global,
            local_head,
            local_res,
            local_up: up.done(),
            mix,
            image,
        }
    }

    /// # Shapes
    /// `z`: `[batch, z_dim]`, `t`: `[batch, text_dim]`, `boxes`: `[batch, 4]`
    /// -> `[batch, 3, size, size]`
    pub fn forward_t(&self, z: &Tensor, t: &Tensor, boxes: &Tensor, train: bool) -> Tensor {
        let (m, ngf) = (self.config.map_size, self.config.ngf);
        let (_, place) = box_transforms(boxes);
        let tp = t.apply(&self.text); // [batch, ngf*4]
                                      // global path: the text inside the box, reduced to a vector
        let spatial = warp(&replicate(&tp, m), &place); // [batch, ngf*4, M, M]
        let tg = self.text_global.forward_t(&spatial, train).flatten(1, -1); // [batch, ngf*4]
        let g_in = Tensor::cat(&[z.apply(&self.noise_global).relu(), tg], 1).relu();
        let global = self
            .global
            .forward_t(&g_in.view([-1, ngf * 8, 1, 1]), train); // [batch, ngf*2, M, M]
                                                                // local path: drawn in the box's frame, placed into the box
        let l_in = Tensor::cat(&[z.apply(&self.noise_local), tp], 1).relu();
        let h = self
            .local_head
            .forward_t(&l_in.view([-1, ngf * 8, 1, 1]), train); // [batch, ngf*8, 4, 4]
        let h = (self.local_res.forward_t(&h, train) + h).relu();
        let local = self.local_up.forward_t(&h, train); // [batch, ngf*2, M, M]
        let local = warp(&local, &place).relu();
        let x = self.mix.forward_t(&Tensor::cat(&[global, local], 1), train);
        self.image.forward_t(&x, train)
    }
}

/// Keypoint-conditional generator (`main_cub_keypoints.lua`).
pub struct KeypointGenerator {
    config: GawwnConfig,
    /// Noise and text to `ngf * 4` each, joined (`noise_txt`).
    noise: nn::Linear,
    text: nn::Linear,
    /// `ngf * 8` -> `ngf * 4` for the local and the global path.
    to_local: nn::SequentialT,
    to_global: nn::SequentialT,
    /// The local features after the keypoint gating (3x3).
    local_conv: nn::SequentialT,
    /// The keypoint maps down to a vector (`prep_loc_global`).
    keypoints_global: nn::SequentialT,
    /// 1x1 -> M, `ngf` channels.
    global: nn::SequentialT,
    /// The joined paths and keypoint maps: 3x3, 3x3, residual.
    mix: nn::SequentialT,
    mix_res: nn::SequentialT,
    image: nn::SequentialT,
}

impl KeypointGenerator {
    pub fn new(p: nn::Path, c: &GawwnConfig) -> Self {
        let (ngf, init) = (c.ngf, InitKind::DcGan);
        let vec_layer = |name: &str| {
            Seq::new(&p / name, init)
                .linear(ngf * 8, ngf * 4)
                .bn(ngf * 4)
                .act(relu)
                .done()
        };
        let keypoints_global = {
            let mut seq = Seq::new(&p / "keypoints_global", init);
            let mut ch = c.parts;
            let steps = c.map_steps();
            for i in 0..steps {
                let out = ngf << i.min(1);
                seq = seq.conv(ch, out, 4, 2, 1, true).bn(out).act(relu);
                ch = out;
            }
            seq.conv(ch, ngf * 4, 4, 1, 0, true)
                .bn(ngf * 4)
                .act(relu)
                .done()
        };
        Self {
            config: c.clone(),
            noise: layers::linear(&p / "noise", c.z_dim, ngf * 4, true, init),
            text: layers::linear(&p / "text", c.text_dim, ngf * 4, true, init),
            to_local: vec_layer("to_local"),
            to_global: vec_layer("to_global"),
            local_conv: Seq::new(&p / "local_conv", init)
                .deconv(ngf * 4, ngf * 4, 3, 1, 1)
                .bn(ngf * 4)
                .act(relu)
                .done(),
            keypoints_global,
            global: up_to_map(&p / "global", c, ngf * 8, ngf),
            mix: Seq::new(&p / "mix", init)
                .deconv(ngf * 5 + c.parts, ngf * 4, 3, 1, 1)
                .bn(ngf * 4)
                .act(relu)
                .deconv(ngf * 4, ngf * 4, 3, 1, 1)
                .bn(ngf * 4)
                .done(),
            mix_res: residual(&p / "mix_res", ngf * 4, ngf),
            image: to_image(&p / "image", c, ngf * 4),
        }
    }

    /// # Shapes
    /// `z`: `[batch, z_dim]`, `t`: `[batch, text_dim]`, `kp`: `[batch, K, 3]`
    /// -> `[batch, 3, size, size]`
    pub fn forward_t(&self, z: &Tensor, t: &Tensor, kp: &Tensor, train: bool) -> Tensor {
        let (m, ngf) = (self.config.map_size, self.config.ngf);
        let maps = keypoint_maps(kp, m); // [batch, K, M, M]
        let zt = Tensor::cat(&[z.apply(&self.noise), t.apply(&self.text)], 1).relu(); // [batch, ngf*8]
                                                                                      // local path: the (z, t) features where parts are asked for
        let local = replicate(&self.to_local.forward_t(&zt, train), m) * keypoint_mask(&maps);
        let local = self.local_conv.forward_t(&local, train); // [batch, ngf*4, M, M]
                                                              // global path: (z, t) and where the parts are, from 1x1
        let kg = self.keypoints_global.forward_t(&maps, train).flatten(1, -1); // [batch, ngf*4]
        let g_in = Tensor::cat(&[self.to_global.forward_t(&zt, train), kg], 1);
        let global = self
            .global
            .forward_t(&g_in.view([-1, ngf * 8, 1, 1]), train); // [batch, ngf, M, M]
        let x = self
            .mix
            .forward_t(&Tensor::cat(&[global, local, maps], 1), train);
        let x = (self.mix_res.forward_t(&x, train) + x).relu();
        self.image.forward_t(&x, train)
    }
}

/// GAWWN's generator, box- or keypoint-conditional.
pub enum Generator {
    Box(BoxGenerator),
    Keypoints(KeypointGenerator),
}

impl Generator {
    pub fn new(p: nn::Path, c: &GawwnConfig) -> Self {
        match c.condition {
            Condition::Box => Self::Box(BoxGenerator::new(p, c)),
            Condition::Keypoints => Self::Keypoints(KeypointGenerator::new(p, c)),
        }
    }
    /// `layout`: boxes `[batch, 4]` or keypoints `[batch, K, 3]`, as the
    /// condition says. `[batch, 3, size, size]`
    pub fn forward_t(&self, z: &Tensor, t: &Tensor, layout: &Tensor, train: bool) -> Tensor {
        match self {
            Self::Box(g) => g.forward_t(z, t, layout, train),
            Self::Keypoints(g) => g.forward_t(z, t, layout, train),
        }
    }
}

/// GAWWN's discriminator: a local path on the box (or gated by the
/// keypoints) and a global path, joined by a final layer. Returns logits.
pub struct Discriminator {
    config: GawwnConfig,
    /// Shared image body to M x M (`imgGlobalD`).
    body: nn::SequentialT,
    /// Text to `nt` with LeakyReLU (`prep_txt_d`).
    text: nn::Linear,
    /// Local path: image and text features joined (3x3).
    local_join: nn::SequentialT,
    /// Local path after the crop or gating: 1x1, 1x1 to `ndf`.
    local_out: nn::SequentialT,
    /// Global path: image features to 4x4 (`ndf * 8`).
    global_img: nn::SequentialT,
    /// Box model: the spatial text down to 4x4 (`ndf`).
    global_text: Option<nn::SequentialT>,
    /// Joined global features to a vector (1x1, 4x4).
    global_out: nn::SequentialT,
    /// Final layers on both paths' vectors.
    head: nn::SequentialT,
}

impl Discriminator {
    pub fn new(p: nn::Path, c: &GawwnConfig) -> Self {
        let (ndf, nt, init) = (c.ndf, c.proj_dim, InitKind::DcGan);
        let kp_channels = match c.condition {
            Condition::Box => 0,
            Condition::Keypoints => c.parts,
        };
        let mut global_img = Seq::new(&p / "global_img", init);
        let mut ch = ndf * 2;
        let steps = c.map_steps();
        for i in 0..steps {
            let out = if i == steps - 1 { ndf * 8 } else { ch * 2 };
            global_img = global_img
                .conv(ch, out, 4, 2, 1, true)
                .bn(out)
                .act(layers::lrelu);
            ch = out;
        }
        let global_ch = ch;
        let global_text = (c.condition == Condition::Box).then(|| {
            let mut seq = Seq::new(&p / "global_text", init);
            let mut ch = nt;
            for i in 0..steps {
                let out = if i == steps - 1 { ndf } else { ndf * 4 };
                seq = seq.conv(ch, out, 4, 2, 1, true).bn(out).act(relu);
                ch = out;
            }
            seq.done()
        });
        let text_ch = match c.condition {
            Condition::Box => ndf,
            Condition::Keypoints => nt,
        };
        Self {
            config: c.clone(),
            body: image_body(&p / "body", c),
            text: layers::linear(&p / "text", c.text_dim, nt, true, init),
            local_join: Seq::new(&p / "local_join", init)
                .conv(ndf * 2 + nt, ndf * 2, 3, 1, 1, true)
                .bn(ndf * 2)
                .act(layers::lrelu)
                .done(),
            local_out: Seq::new(&p / "local_out", init)
                .conv(ndf * 2 + kp_channels, ndf * 2, 1, 1, 0, true)
                .bn(ndf * 2)
                .act(layers::lrelu)
                .conv(ndf * 2, ndf, 1, 1, 0, true)
                .done(),
            global_img: global_img.done(),
            global_text,
            global_out: Seq::new(&p / "global_out", init)
                .conv(global_ch + text_ch, ndf * 4, 1, 1, 0, true)
                .bn(ndf * 4)
                .act(layers::lrelu)
                .conv(ndf * 4, ndf, 4, 1, 0, true)
                .bn(ndf)
                .act(layers::lrelu)
                .done(),
            head: Seq::new(&p / "head", init)
                .linear(ndf * 2, ndf)
                .bn(ndf)
                .act(layers::lrelu)
                .linear(ndf, 1)
                .done(),
        }
    }

    /// Logits of D(x, t, layout).
    ///
    /// # Shapes
    /// `x`: `[batch, 3, size, size]`, `t`: `[batch, text_dim]`, `layout`:
    /// boxes `[batch, 4]` or keypoints `[batch, K, 3]` -> `[batch]`
    pub fn forward_t(&self, x: &Tensor, t: &Tensor, layout: &Tensor, train: bool) -> Tensor {
        let m = self.config.map_size;
        let f = self.body.forward_t(x, train); // [batch, ndf*2, M, M]
        let tp = layers::lrelu(&t.apply(&self.text)); // [batch, nt]
        let joined = self
            .local_join
            .forward_t(&Tensor::cat(&[&f, &replicate(&tp, m)], 1), train);
        let (local, global_text) = match self.config.condition {
            Condition::Box => {
                let (crop, place) = box_transforms(layout);
                // the box's features at the grid's scale
                let local = warp(&joined, &crop);
                let spatial = warp(&replicate(&tp, m), &place);
                let gt = self
                    .global_text
                    .as_ref()
                    .map(|s| s.forward_t(&spatial, train))
                    .unwrap_or_else(|| replicate(&tp, 4));
                (local, gt)
            }
            Condition::Keypoints => {
                let maps = keypoint_maps(layout, m);
                let local = Tensor::cat(&[&joined * keypoint_mask(&maps), maps], 1);
                (local, replicate(&tp, 4))
            }
        };
        let local = layers::lrelu(&self.local_out.forward_t(&local, train).mean_dim(
            [2i64, 3].as_slice(),
            false,
            Kind::Float,
        )); // [batch, ndf]
        let g = self.global_img.forward_t(&f, train); // [batch, ndf*8, 4, 4]
        let global = self
            .global_out
            .forward_t(&Tensor::cat(&[g, global_text], 1), train)
            .flatten(1, -1); // [batch, ndf]
        self.head
            .forward_t(&Tensor::cat(&[local, global], 1), train)
            .squeeze_dim(1)
    }
}

/// The conditional keypoint generator G_k (`main_gen_keypoints.lua`):
/// `G_k(z, t, k, s) = s * k + (1 - s) * f(z, t, k)`, f an MLP ending in a
/// sigmoid (coordinates and visibility in [0, 1]).
pub struct KeypointCompleter {
    noise: nn::Linear,
    text: nn::Linear,
    given: nn::SequentialT,
    f: nn::SequentialT,
}

impl KeypointCompleter {
    pub fn new(p: nn::Path, c: &GawwnConfig) -> Self {
        let (ngf, k3, init) = (c.ngf, c.parts * 3, InitKind::DcGan);
        Self {
            noise: layers::linear(&p / "noise", c.z_dim, ngf * 4, true, init),
            text: layers::linear(&p / "text", c.text_dim, ngf * 4, true, init),
            given: Seq::new(&p / "given", init)
                .linear(k3, ngf * 4)
                .bn(ngf * 4)
                .act(relu)
                .linear(ngf * 4, ngf * 2)
                .bn(ngf * 2)
                .act(relu)
                .done(),
            f: Seq::new(&p / "f", init)
                .linear(ngf * 10, ngf * 8)
                .bn(ngf * 8)
                .act(relu)
                .linear(ngf * 8, ngf * 4)
                .bn(ngf * 4)
                .act(relu)
                .linear(ngf * 4, ngf * 2)
                .bn(ngf * 2)
                .act(relu)
                .linear(ngf * 2, k3)
                .act(|x| x.sigmoid())
                .done(),
        }
    }

    /// eq. 1: the given keypoints kept exactly, the others generated.
    ///
    /// # Shapes
    /// `z`: `[batch, z_dim]`, `t`: `[batch, text_dim]`, `given`: `[batch, K,
    /// 3]` (zero rows where not given), `switch`: `[batch, K]` (1 = given)
    /// -> `[batch, K, 3]`
    pub fn forward_t(
        &self,
        z: &Tensor,
        t: &Tensor,
        given: &Tensor,
        switch: &Tensor,
        train: bool,
    ) -> Tensor {
        let k = given.size()[1];
        let h = Tensor::cat(
            &[
                z.apply(&self.noise).relu(),
                t.apply(&self.text).relu(),
                self.given.forward_t(&given.flatten(1, -1), train),
            ],
            1,
        );
        let f = self.f.forward_t(&h, train).view([-1, k, 3]);
        let s = switch.unsqueeze(-1); // [batch, K, 1]
        &s * given + (1.0 - &s) * f // eq. 1
    }
}

/// D_k: tells real (k, t) from generated (`main_gen_keypoints.lua`).
pub struct KeypointDiscriminator {
    keypoints: nn::SequentialT,
    text: nn::SequentialT,
    head: nn::SequentialT,
}

impl KeypointDiscriminator {
    pub fn new(p: nn::Path, c: &GawwnConfig) -> Self {
        let bn = c.dk_batch_norm;
        let init = if bn {
            InitKind::DcGan
        } else {
            InitKind::PyTorch
        };
        let (ndf, k3) = (c.ndf, c.parts * 3);
        let branch = |name: &str, din: i64| {
            Seq::new(&p / name, init)
                .linear(din, ndf * 4)
                .bn_if(bn, ndf * 4)
                .act(layers::lrelu)
                .linear(ndf * 4, ndf * 2)
                .bn_if(bn, ndf * 2)
                .act(layers::lrelu)
                .done()
        };
        Self {
            keypoints: branch("keypoints", k3),
            text: branch("text", c.text_dim),
            head: Seq::new(&p / "head", init)
                .linear(ndf * 4, ndf * 2)
                .bn_if(bn, ndf * 2)
                .act(layers::lrelu)
                .linear(ndf * 2, 1)
                .done(),
        }
    }

    /// Logits. `kp`: `[batch, K, 3]`, `t`: `[batch, text_dim]` -> `[batch]`
    pub fn forward_t(&self, kp: &Tensor, t: &Tensor, train: bool) -> Tensor {
        let h = Tensor::cat(
            &[
                self.keypoints.forward_t(&kp.flatten(1, -1), train),
                self.text.forward_t(t, train),
            ],
            1,
        );
        self.head.forward_t(&h, train).squeeze_dim(1)
    }
}

/// D's loss (the reference code's BCE): real/right 1, real/wrong 0 weighted
/// `cls_weight`, fake/right 0 weighted `1 - cls_weight`.
pub fn discriminator_loss(
    s_real: &Tensor,
    s_wrong: &Tensor,
    s_fake: &Tensor,
    cls_weight: f64,
) -> Tensor {
    let bce = |s: &Tensor, target: f64| {
        s.binary_cross_entropy_with_logits::<Tensor>(
            &s.full_like(target),
            None,
            None,
            tch::Reduction::Mean,
        )
    };
    bce(s_real, 1.0) + bce(s_wrong, 0.0) * cls_weight + bce(s_fake, 0.0) * (1.0 - cls_weight)
}

/// G's loss: D should call the fakes real.
pub fn generator_loss(s_fake: &Tensor) -> Tensor {
    s_fake.binary_cross_entropy_with_logits::<Tensor>(
        &s_fake.ones_like(),
        None,
        None,
        tch::Reduction::Mean,
    )
}

/// Names of the shapes data set's keypoints, in [`ShapeObject::keypoints`]'s
/// order.
///
/// [`ShapeObject::keypoints`]: crate::data::shapes::ShapeObject::keypoints
pub const SHAPES_PARTS: [&str; 5] = ["centre", "top", "bottom", "left", "right"];

/// A trained GAWWN: its text encoder, G, and for keypoint models G_k.
pub struct GawwnModel {
    pub config: GawwnConfig,
    pub encoder: AnyTextEncoder,
    pub g_vs: nn::VarStore,
    pub g: Generator,
    /// G_k's weights (keypoint models).
    pub gk_vs: nn::VarStore,
    pub gk: Option<KeypointCompleter>,
    /// Part names, in keypoint order.
    pub parts: Vec<String>,
    /// Where a box model draws when no box is given: the training boxes'
    /// mean `[x, y, w, h]`.
    pub default_box: [f32; 4],
    /// The shapes data set the model was trained on, whose caption grammar
    /// completes a partial caption at the requested place
    /// ([`GawwnModel::completed`]); `None` on other data sets.
    pub shapes: Option<crate::data::shapes::Shapes>,
    pub device: Device,
}

impl GawwnModel {
    pub fn new(
        config: GawwnConfig,
        encoder: AnyTextEncoder,
        parts: Vec<String>,
        device: Device,
    ) -> Self {
        let g_vs = nn::VarStore::new(device);
        let g = Generator::new(g_vs.root(), &config);
        let gk_vs = nn::VarStore::new(device);
        let gk = (config.condition == Condition::Keypoints)
            .then(|| KeypointCompleter::new(gk_vs.root(), &config));
        Self {
            config,
            encoder,
            g_vs,
            g,
            gk_vs,
            gk,
            parts,
            default_box: [0.25, 0.25, 0.5, 0.5],
            shapes: None,
            device,
        }
    }

    pub fn from_checkpoint(
        ck: &crate::checkpoint::Checkpoint,
        device: Device,
    ) -> crate::Result<Self> {
        ck.expect_model("gawwn")?;
        let config: GawwnConfig = toml::from_str(ck.meta("config")?)
            .map_err(|e| crate::Error::Checkpoint(format!("checkpoint config: {e}")))?;
        let parts: Vec<String> = ck.json_meta("parts")?;
        let encoder = AnyTextEncoder::from_checkpoint(ck, device)?;
        let mut m = Self::new(config, encoder, parts, device);
        if ck.meta("default_box").is_ok() {
            m.default_box = ck.json_meta("default_box")?;
        }
        ck.load_into(&mut m.g_vs, "G")?;
        if ck.tensors.keys().any(|k| k.starts_with("G_avg.")) {
            // the running average generates, with its own batch-norm statistics
            crate::checkpoint::load_trainable(&m.g_vs, ck, "G_avg")?;
            crate::checkpoint::load_buffers(&m.g_vs, ck, "G_avg")?;
        }
        if m.gk.is_some() {
            ck.load_into(&mut m.gk_vs, "Gk")?;
        }
        m.shapes = crate::data::shapes::Shapes::of_checkpoint(ck)?;
        Ok(m)
    }

    /// The captions G is conditioned on: on shapes, a caption that leaves
    /// attributes out ("a green triangle") becomes the full caption the data
    /// set writes for such an object at `place` (`[cx, cy, r]` as fractions
    /// of the image: the box's or keypoints' centre and half-side), the
    /// unnamed colour or shape drawn with `seed` and the caption's index
    /// ([`crate::data::shapes::Shapes::complete_caption_at`]). Other
    /// captions, and every caption on other data sets, unchanged.
    pub fn completed(
        &self,
        captions: &[&str],
        places: &[Option<[f32; 3]>],
        seed: u64,
    ) -> Vec<String> {
        captions
            .iter()
            .zip(places)
            .enumerate()
            .map(|(i, (c, place))| {
                let draw = crate::data::shapes::completion_seed(seed, i);
                self.shapes
                    .as_ref()
                    .zip(*place)
                    .and_then(|(s, p)| {
                        let size = s.config.image_size as f32;
                        s.complete_caption_at(c, p.map(|v| v * size), draw)
                    })
                    .unwrap_or_else(|| c.to_string())
            })
            .collect()
    }

    /// Sentence vectors of captions. `[n, text_dim]`
    pub fn embed(&self, captions: &[&str]) -> crate::Result<Tensor> {
        Ok(self
            .encoder
            .encode(captions)?
            .0
            .sentence
            .to_device(self.device))
    }

    /// z for `n` images from `seed`. `[n, z_dim]`
    pub fn noise(&self, n: i64, seed: u64) -> Tensor {
        crate::rng::normal(n, self.config.z_dim, seed, self.device)
    }

    /// G_k in eval mode: full keypoints from the given ones (`[n, K, 3]`,
    /// zero rows where not given) and the switches `[n, K]`.
    pub fn complete(
        &self,
        t: &Tensor,
        given: &Tensor,
        switch: &Tensor,
        seed: u64,
    ) -> crate::Result<Tensor> {
        let gk = self.gk.as_ref().ok_or_else(|| {
            crate::Error::Config(
                "this GAWWN model is box-conditional: it has no keypoint generator".into(),
            )
        })?;
        let z = self.noise(t.size()[0], seed ^ 0x6B);
        Ok(tch::no_grad(|| gk.forward_t(&z, t, given, switch, false)))
    }

    /// Images for sentence vectors and layouts (G in eval mode).
    pub fn draw(&self, z: &Tensor, t: &Tensor, layout: &Tensor) -> Tensor {
        tch::no_grad(|| self.g.forward_t(z, t, layout, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(c: &GawwnConfig) -> (Generator, Discriminator) {
        let vs = nn::VarStore::new(Device::Cpu);
        (
            Generator::new(vs.root() / "G", c),
            Discriminator::new(vs.root() / "D", c),
        )
    }

    #[test]
    fn shapes_of_both_conditions_and_presets() {
        for condition in [Condition::Box, Condition::Keypoints] {
            for c in [
                GawwnConfig::tiny(),
                GawwnConfig {
                    image_size: 64,
                    ..GawwnConfig::tiny()
                },
            ] {
                let c = GawwnConfig { condition, ..c };
                c.validate().unwrap();
                let (g, d) = nets(&c);
                let b = 3;
                let z = Tensor::randn([b, c.z_dim], (Kind::Float, Device::Cpu));
                let t = Tensor::randn([b, c.text_dim], (Kind::Float, Device::Cpu));
                let layout = match condition {
                    Condition::Box => Tensor::from_slice(&[0.1f32, 0.2, 0.5, 0.4])
                        .view([1, 4])
                        .repeat([b, 1]),
                    Condition::Keypoints => {
                        Tensor::rand([b, c.parts, 3], (Kind::Float, Device::Cpu))
                    }
                };
                let x = g.forward_t(&z, &t, &layout, true);
                assert_eq!(x.size(), [b, 3, c.image_size, c.image_size]);
                assert_eq!(d.forward_t(&x, &t, &layout, true).size(), [b]);
            }
        }
    }

    #[test]
    fn the_box_places_and_crops() {
        // a constant map placed into the left half is zero on the right
        let boxes = Tensor::from_slice(&[0.0f32, 0.0, 0.5, 1.0]).view([1, 4]);
        let (crop, place) = box_transforms(&boxes);
        let ones = Tensor::ones([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        let placed = warp(&ones, &place);
        assert!(placed.narrow(3, 5, 3).abs().max().double_value(&[]) < 1e-6);
        assert!((placed.narrow(3, 0, 3).mean(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-6);
        // cropping the left half of a ramp gives the ramp's left half, stretched
        let ramp = Tensor::arange(8, (Kind::Float, Device::Cpu))
            .view([1, 1, 1, 8])
            .expand([1, 1, 8, 8], false);
        let cropped = warp(&ramp, &crop);
        let right_col = cropped.select(3, 7).mean(Kind::Float).double_value(&[]);
        assert!(right_col < 4.0, "{right_col}");
    }

    #[test]
    fn keypoint_maps_and_completion_keep_given_points() {
        let kp =
            Tensor::from_slice(&[0.1f32, 0.1, 1.0, 0.9, 0.5, 1.0, 0.5, 0.5, 0.0]).view([1, 3, 3]);
        let maps = keypoint_maps(&kp, 4);
        assert_eq!(maps.sum(Kind::Float).double_value(&[]), 2.0);
        assert_eq!(maps.double_value(&[0, 0, 0, 0]), 1.0);
        assert_eq!(maps.double_value(&[0, 1, 2, 3]), 1.0);
        let c = GawwnConfig {
            parts: 3,
            ..GawwnConfig::tiny()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let gk = KeypointCompleter::new(vs.root(), &c);
        let z = Tensor::randn([1, c.z_dim], (Kind::Float, Device::Cpu));
        let t = Tensor::randn([1, c.text_dim], (Kind::Float, Device::Cpu));
        let switch = Tensor::from_slice(&[1.0f32, 0.0, 0.0]).view([1, 3]);
        let out = gk.forward_t(&z, &t, &kp, &switch, false);
        assert!(out
            .get(0)
            .get(0)
            .allclose(&kp.get(0).get(0), 0.0, 0.0, false));
    }
}
