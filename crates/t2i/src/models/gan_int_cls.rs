//! GAN-CLS / GAN-INT / GAN-INT-CLS: Reed et al., "Generative Adversarial Text
//! to Image Synthesis", ICML 2016.
//!
//! - Generator G(z, phi(t)) (sec. 4.1): phi(t) -> Linear -> LeakyReLU,
//!   concatenated with z, DCGAN up-convolution stack to a tanh image.
//! - Discriminator D(x, phi(t)) (sec. 4.1): stride-2 convolutions to 4x4, the
//!   projected text replicated spatially and concatenated in depth, 1x1
//!   convolution, 4x4 convolution to one logit.
//! - Matching-aware loss (sec. 4.2, Algorithm 1) and manifold interpolation
//!   (sec. 4.3, eq. 5): [`discriminator_loss`], [`generator_loss`].
//! - Style encoder S (sec. 4.4): D's convolutional body and a linear head to z.

use crate::layers::{self, InitKind, SpectralConv2d};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// Which of the paper's four training objectives is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Plain conditional GAN: D sees real/right and fake/right only.
    Gan,
    /// Matching-aware D: also real image with wrong text as a negative.
    GanCls,
    /// Manifold interpolation: G also learns from interpolated text.
    GanInt,
    /// Both.
    GanIntCls,
}

impl Variant {
    pub fn cls(self) -> bool {
        matches!(self, Variant::GanCls | Variant::GanIntCls)
    }
    pub fn int(self) -> bool {
        matches!(self, Variant::GanInt | Variant::GanIntCls)
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gan" => Some(Self::Gan),
            "gan-cls" | "cls" => Some(Self::GanCls),
            "gan-int" | "int" => Some(Self::GanInt),
            "gan-int-cls" | "int-cls" => Some(Self::GanIntCls),
            _ => None,
        }
    }
}

/// Options measured to bring nothing and removed (docs/experiments.md),
/// with their off values: an older checkpoint that has them off still
/// loads.
pub const REMOVED_OPTIONS: &[(&str, &str)] = &[
    ("diversity_pool", "0"),
    ("projection", "false"),
    ("text_affine", "false"),
    ("ma_gp_weight", "0.0"),
    ("d_lr_scale", "1.0"),
];

/// Configuration of the GAN-INT-CLS networks and their training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GanIntClsConfig {
    /// Preset name this config came from.
    pub preset: String,
    /// Output side in pixels (a power of two, at least 32).
    pub image_size: i64,
    /// Sizes the preset supports.
    pub supported_sizes: Vec<i64>,
    /// Noise size (z ~ N(0, I)).
    pub z_dim: i64,
    /// Sentence vector size phi(t) (set by the text encoder).
    pub text_dim: i64,
    /// Size of the projected text in G and D.
    pub proj_dim: i64,
    /// Generator width: channels before the last up-convolution.
    pub ngf: i64,
    /// Discriminator width: channels after the first convolution.
    pub ndf: i64,
    /// Training objective.
    pub variant: Variant,
    /// Interpolation weight beta of eq. 5.
    pub int_beta: f64,
    /// Minibatch size.
    pub batch_size: i64,
    /// Adam learning rate (G and D).
    pub lr: f64,
    /// Adam beta1.
    pub beta1: f64,
    /// Adam beta2.
    pub beta2: f64,
    /// Learning rate halved every this many steps (0: never).
    pub lr_halve_every: i64,
    /// Weight of the mode-seeking term (Mao et al. 2019; beyond the paper,
    /// 0 in `paper`): G is pushed to make different noise give different
    /// images for the same text, so z carries the style that text does not
    /// name (what style transfer needs).
    #[serde(default)]
    pub diversity_weight: f64,
    /// Probability that the mismatching text t^ of a real image is a hard
    /// negative: a caption of an image that differs only in the object's
    /// colour or only in its shape (0 in `paper`: any other class). Random
    /// mismatches differ mostly in colour or position, so D could ignore
    /// shape; hard negatives make D, and so G, attend to every attribute.
    #[serde(default)]
    pub hard_negative_prob: f64,
    /// Decay of the running average of G's weights that generation uses
    /// (beyond the paper, as AttnGAN's `avg_param_G`; 0: off, G's trained
    /// weights generate). The average smooths the oscillation of the
    /// adversarial game, so shapes come out crisper.
    #[serde(default)]
    pub ema_decay: f64,
    /// Weight of an image-sentence contrastive term (XMC-GAN, Zhang et al.
    /// 2021; beyond the paper, 0 in `paper`). D maps its 4x4 image
    /// features into the sentence space and learns, on real images, to pick
    /// each image's own sentence among the batch's; G is trained to make its
    /// fakes pass the same test. Unlike the one-bit matching score, it tells
    /// G which attribute of its image disagrees with the text.
    #[serde(default)]
    pub contrastive_weight: f64,
    /// G doubles its resolution by nearest-neighbour upsampling and a 3x3
    /// convolution (`upconv{i}`) instead of a 4x4 stride-2 transposed
    /// convolution (beyond the paper, as StackGAN's upsampling blocks;
    /// Odena et al. 2016). Transposed convolutions overlap unevenly and
    /// print a checkerboard into flat regions; the shapes' flat fills and
    /// straight edges come out cleaner without it.
    #[serde(default)]
    pub resize_conv: bool,
    /// G's last x2 step keeps `ngf` channels (batch norm, ReLU) and a 3x3
    /// convolution at full resolution (`to_rgb`) draws the image (beyond the
    /// paper, as the full-resolution blocks of StackGAN-II and DF-GAN).
    /// Without it the RGB image comes straight out of the last x2 step, so no
    /// layer works at full resolution: after a nearest upsampling every 2x2
    /// block shares its inputs, and a small triangle's slanted edges come out
    /// as stairs.
    #[serde(default)]
    pub rgb_conv: bool,
    /// The contrastive term's candidate sentences include each item's
    /// mismatching text t^ as well as the batch's sentences (beyond XMC-GAN,
    /// which uses the batch only). In-batch sentences almost always differ
    /// in colour or position, so picking the right one never needs shape;
    /// with hard negatives (`hard_negative_prob`) t^ often differs only in
    /// shape, and the term then asks D, and G's fakes, for the named shape.
    #[serde(default)]
    pub contrastive_hard: bool,
    /// Weight of a matching term in G's loss: the fixed image side theta(v)
    /// of the joint embedding the text encoder was trained with must pick
    /// G(z, phi(t)) 's own sentence among the batch's sentences and the
    /// mismatching ones (AttnGAN's DAMSM loss, sec. 3.3, with the
    /// GAN-INT-CLS encoder). A fixed critic cannot drift to cues that
    /// ignore shape as D can. 0 (the paper) turns it off.
    #[serde(default)]
    pub match_weight: f64,
    /// Weight of a ranking term in G's loss on D's own matching-aware score:
    /// `softplus(s(G(z, h), h^) - s(G(z, h), h))`, the fake must match its
    /// text better than the mismatching text h^. Realism cancels in the
    /// difference, so the term carries only the conditional signal, which
    /// the plain G loss mixes with "look real" (D calls every fake fake).
    /// With `hard_negative_prob`, h^ often differs only in shape. 0 (the
    /// paper) turns it off.
    #[serde(default)]
    pub rank_weight: f64,
    /// Spectral normalisation of every convolution of D, which then has no
    /// batch norm (SN-GAN, Miyato et al. 2018; beyond the paper, off in
    /// `paper`). A batch-normed D scores real and fake batches with
    /// different statistics and wins outright on the speckle of early
    /// fakes; a Lipschitz D keeps giving G gradients about what differs,
    /// the object's outline included.
    #[serde(default)]
    pub spectral_norm: bool,
    /// Hinge loss instead of the paper's cross-entropy (Lim & Ye 2017, as
    /// SN-GAN and the projection discriminator use it): D minimises
    /// `relu(1 - s_r) + (relu(1 + s_w) + relu(1 + s_f)) / 2`, G `-s_f`.
    #[serde(default)]
    pub hinge_loss: bool,
    /// Weight of a noise-reconstruction term trained with G (InfoGAN's
    /// mutual-information term, Chen et al. 2016; beyond the paper, 0 in
    /// both presets): the style encoder S learns `||S(G(z, h)) - z||^2`
    /// (L_style of sec. 4.4) during GAN training, and G minimises the same
    /// term, so what z draws must stay readable from the image. Text does
    /// not name the background, so z is what has to draw all of them; a
    /// G that draws only some backgrounds cannot be inverted by S, whatever
    /// S's training.
    #[serde(default)]
    pub style_weight: f64,
    /// Weight of a reconstruction term through S (BicycleGAN's cVAE-GAN
    /// branch, Zhu et al. 2017; beyond the paper, 0 in both presets):
    /// `|G(S(x), phi(t)) - x|_1` on real images x with their own captions
    /// t, learnt by G and S. Every real image must be drawn back from its
    /// caption and the style S reads from it, so G has to draw every
    /// background the data set has, from z; style transfer, G(S(x),
    /// phi(t_new)), then keeps x's background by construction.
    #[serde(default)]
    pub recon_weight: f64,
    /// Weight of a KL term on S's style in the reconstruction (0: S's
    /// output is used as it is). With it, G reconstructs from S(x) + e,
    /// e ~ N(0, I), and `0.5 |S(x)|^2` (KL(N(S(x), I) || N(0, I)), a VAE
    /// of unit variance) is added: the style is a noisy channel of limited
    /// capacity, so S keeps what the caption does not say (the background)
    /// and leaves the object to the text, and random z and S(x) + e share
    /// one distribution.
    #[serde(default)]
    pub recon_kl: f64,
}

impl GanIntClsConfig {
    /// Whether S learns during GAN training (`style_weight`, `recon_weight`).
    pub fn style_learns_with_g(&self) -> bool {
        self.style_weight > 0.0 || self.recon_weight > 0.0
    }

    /// The paper's sizes: 64x64, ngf 128, ndf 64, batch 64, Adam 2e-4 / 0.5,
    /// 1024-d char-CNN-RNN embedding projected to 128.
    pub fn paper() -> Self {
        Self {
            preset: "paper".into(),
            image_size: 64,
            supported_sizes: vec![64],
            z_dim: 100,
            text_dim: 1024,
            proj_dim: 128,
            ngf: 128,
            ndf: 64,
            variant: Variant::GanIntCls,
            int_beta: 0.5,
            batch_size: 64,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            lr_halve_every: 0,
            diversity_weight: 0.0,
            hard_negative_prob: 0.0,
            ema_decay: 0.0,
            contrastive_weight: 0.0,
            resize_conv: false,
            rgb_conv: false,
            contrastive_hard: false,
            match_weight: 0.0,
            rank_weight: 0.0,
            spectral_norm: false,
            hinge_loss: false,
            style_weight: 0.0,
            recon_weight: 0.0,
            recon_kl: 0.0,
        }
    }
    /// CPU preset: 32x32 (or 64x64), narrow widths, 128-d text, batch 32 and
    /// Adam 5e-4 (more updates per CPU minute; measured in docs/BENCHMARKS.md).
    pub fn tiny() -> Self {
        Self {
            preset: "tiny".into(),
            image_size: 32,
            supported_sizes: vec![32, 64],
            text_dim: 128,
            proj_dim: 64,
            ngf: 32,
            ndf: 32,
            batch_size: 32,
            lr: 5e-4,
            lr_halve_every: 3000,
            diversity_weight: 1.0,
            hard_negative_prob: 0.0,
            ..Self::paper()
        }
    }
    /// `tiny` with every option beyond the paper that raised held-in
    /// colour+shape accuracy or style transfer on shapes in 30-minute runs
    /// (docs/BENCHMARKS.md, sessions 5-12): hard negatives, D's contrastive
    /// head with the mismatching sentences, the rank and fixed-critic terms
    /// on G, spectral norm and the hinge loss in D, resize-convolutions and
    /// a full-resolution layer in G, its running average, and S learnt with
    /// G through L_style and the reconstruction of real images, with a small
    /// KL term (no mode-seeking term: the reconstruction gives z the
    /// background).
    pub fn tiny_plus() -> Self {
        Self {
            preset: "tiny-plus".into(),
            diversity_weight: 0.0,
            hard_negative_prob: 0.5,
            contrastive_weight: 1.0,
            contrastive_hard: true,
            rank_weight: 1.0,
            match_weight: 1.0,
            spectral_norm: true,
            hinge_loss: true,
            resize_conv: true,
            rgb_conv: true,
            ema_decay: 0.999,
            style_weight: 1.0,
            recon_weight: 50.0,
            recon_kl: 0.01,
            ..Self::tiny()
        }
    }
    /// The preset called `name`: `paper`, `tiny` or `tiny-plus`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "paper" => Some(Self::paper()),
            "tiny" => Some(Self::tiny()),
            "tiny-plus" => Some(Self::tiny_plus()),
            _ => None,
        }
    }
    /// Checks the image size against the preset.
    pub fn validate(&self) -> Result<(), String> {
        if !self.supported_sizes.contains(&self.image_size) {
            return Err(format!(
                "image size {} is not supported by the {} preset of gan-int-cls (supported: {:?})",
                self.image_size, self.preset, self.supported_sizes
            ));
        }
        Ok(())
    }
    /// Number of stride-2 stages between 4x4 and the image.
    fn stages(&self) -> i64 {
        (self.image_size / 4).trailing_zeros() as i64
    }
}

/// Projects phi(t) to `proj_dim` with LeakyReLU(0.2).
fn text_projection(p: nn::Path, c: &GanIntClsConfig) -> nn::Linear {
    layers::linear(p, c.text_dim, c.proj_dim, true, InitKind::PyTorch)
}

/// One x2 step of G: a transposed convolution (the paper's) or
/// nearest-neighbour upsampling and a 3x3 convolution (`resize_conv`).
enum Up {
    Deconv(nn::ConvTranspose2D),
    Resize(layers::UpConv3x3),
}

impl Up {
    fn new(p: &nn::Path, i: i64, cin: i64, cout: i64, resize: bool) -> Self {
        if resize {
            let conv = layers::conv2d(
                p / format!("upconv{i}"),
                cin,
                cout,
                3,
                1,
                1,
                false,
                InitKind::DcGan,
            );
            Up::Resize(layers::UpConv3x3::new(conv.ws))
        } else {
            let deconv = layers::conv_transpose2d(
                p / format!("deconv{i}"),
                cin,
                cout,
                4,
                2,
                1,
                false,
                InitKind::DcGan,
            );
            Up::Deconv(deconv)
        }
    }

    /// # Shapes
    /// `[batch, cin, s, s]` -> `[batch, cout, 2s, 2s]`
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Up::Deconv(d) => x.apply(d),
            Up::Resize(c) => x.apply(c),
        }
    }
}

/// Generator G(z, phi(t)).
pub struct Generator {
    proj: nn::Linear,
    /// 1x1 -> 4x4 transposed convolution on [z, projected text].
    input: nn::ConvTranspose2D,
    /// Batch norm after the input layer and after each x2 step but the last.
    norms: Vec<nn::BatchNorm>,
    /// The x2 steps, the last one to the RGB image (or, with `rgb_conv`,
    /// to `ngf` channels at full resolution).
    ups: Vec<Up>,
    /// With `rgb_conv`: the full-resolution 3x3 convolution to RGB.
    to_rgb: Option<nn::Conv2D>,
    pub z_dim: i64,
}

impl Generator {
    pub fn new(p: nn::Path, c: &GanIntClsConfig) -> Self {
        let proj = text_projection(&p / "text_proj", c);
        let n = c.stages();
        let mut ch = c.ngf << (n - 1);
        let input = layers::conv_transpose2d(
            &p / "deconv0",
            c.z_dim + c.proj_dim,
            ch,
            4,
            1,
            0,
            false,
            InitKind::DcGan,
        );
        let norm =
            |i: i64, cout: i64| layers::batch_norm2d(&p / format!("bn{i}"), cout, InitKind::DcGan);
        let mut norms = vec![norm(0, ch)];
        let mut ups = Vec::new();
        for i in 1..n {
            ups.push(Up::new(&p, i, ch, ch / 2, c.resize_conv));
            norms.push(norm(i, ch / 2));
            ch /= 2;
        }
        let to_rgb = c.rgb_conv.then(|| {
            ups.push(Up::new(&p, n, ch, ch, c.resize_conv));
            norms.push(norm(n, ch));
            layers::conv2d(&p / "to_rgb", ch, 3, 3, 1, 1, false, InitKind::DcGan)
        });
        if to_rgb.is_none() {
            ups.push(Up::new(&p, n, ch, 3, c.resize_conv));
        }
        Self {
            proj,
            input,
            norms,
            ups,
            to_rgb,
            z_dim: c.z_dim,
        }
    }

    /// # Shapes
    /// `z`: `[batch, z_dim]`, `h`: `[batch, text_dim]` -> `[batch, 3, size, size]`
    pub fn forward_t(&self, z: &Tensor, h: &Tensor, train: bool) -> Tensor {
        let t = lrelu(&self.proj.forward(h)); // [batch, proj]
        let x = Tensor::cat(&[z, &t], 1).unsqueeze(-1).unsqueeze(-1); // [batch, z+proj, 1, 1]
        let mut x = self.norm(0, &x.apply(&self.input), train); // [batch, ngf * 2^(n-1), 4, 4]
        let last = self.ups.len() - 1;
        for (i, up) in self.ups[..last].iter().enumerate() {
            x = self.norm(i + 1, &up.forward(&x), train); // [batch, ch / 2, 2s, 2s]
        }
        let x = self.ups[last].forward(&x);
        match &self.to_rgb {
            Some(rgb) => self.norm(last + 1, &x, train).apply(rgb), // [batch, 3, size, size]
            None => x,                                              // [batch, 3, size, size]
        }
        .tanh()
    }

    /// Batch norm `i`, then ReLU.
    fn norm(&self, i: usize, x: &Tensor, train: bool) -> Tensor {
        x.apply_t(&self.norms[i], train).relu()
    }
}

use crate::layers::lrelu;
use crate::text::{AnyTextEncoder, Encoded, TextEncoder};
use tch::Device;

/// A convolution of D: plain, or spectrally normalised (`spectral_norm`).
#[derive(Debug)]
enum DConv {
    Plain(nn::Conv2D),
    Spectral(SpectralConv2d),
}

impl DConv {
    fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, pad: i64, sn: bool) -> Self {
        if sn {
            let conv = SpectralConv2d::new(p, cin, cout, k, stride, pad, true, InitKind::DcGan);
            DConv::Spectral(conv)
        } else {
            let conv = layers::conv2d(p, cin, cout, k, stride, pad, false, InitKind::DcGan);
            DConv::Plain(conv)
        }
    }
}

impl ModuleT for DConv {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            DConv::Plain(c) => x.apply(c),
            DConv::Spectral(c) => c.forward_t(x, train),
        }
    }
}

/// D's convolutional body (shared with the style encoder): image -> 4x4
/// features. With `sn` the convolutions are spectrally normalised and there
/// is no batch norm.
fn conv_body(p: &nn::Path, c: &GanIntClsConfig, sn: bool) -> (nn::SequentialT, i64) {
    let n = c.stages();
    let mut body = nn::seq_t();
    body = body
        .add(DConv::new(p / "conv0", 3, c.ndf, 4, 2, 1, sn))
        .add_fn(lrelu); // [batch, ndf, size / 2, size / 2]
    let mut ch = c.ndf;
    for i in 1..n {
        body = body.add(DConv::new(p / format!("conv{i}"), ch, ch * 2, 4, 2, 1, sn));
        if !sn {
            body = body.add(layers::batch_norm2d(
                p / format!("bn{i}"),
                ch * 2,
                InitKind::DcGan,
            ));
        }
        body = body.add_fn(lrelu); // [batch, 2 ch, s / 2, s / 2]
        ch *= 2;
    }
    (body, ch)
}

/// Matching-aware discriminator D(x, phi(t)).
pub struct Discriminator {
    body: nn::SequentialT,
    proj: nn::Linear,
    joint: DConv,
    /// None with `spectral_norm`.
    joint_bn: Option<nn::BatchNorm>,
    out: DConv,
    /// Image features to the sentence space (`contrastive_weight`).
    to_sentence: Option<nn::Linear>,
}

impl Discriminator {
    pub fn new(p: nn::Path, c: &GanIntClsConfig) -> Self {
        let sn = c.spectral_norm;
        let (body, ch) = conv_body(&p, c, sn);
        let proj = text_projection(&p / "text_proj", c);
        let joint = DConv::new(&p / "joint", ch + c.proj_dim, ch, 1, 1, 0, sn);
        let joint_bn = (!sn).then(|| layers::batch_norm2d(&p / "joint_bn", ch, InitKind::DcGan));
        let out = DConv::new(&p / "out", ch, 1, 4, 1, 0, sn);
        let to_sentence = (c.contrastive_weight > 0.0).then(|| {
            layers::linear(
                &p / "to_sentence",
                ch * 16,
                c.text_dim,
                true,
                InitKind::PyTorch,
            )
        });
        Self {
            body,
            proj,
            joint,
            joint_bn,
            out,
            to_sentence,
        }
    }

    /// One logit per (image, text) pair.
    ///
    /// # Shapes
    /// `x`: `[batch, 3, size, size]`, `h`: `[batch, text_dim]` -> `[batch]`
    pub fn forward_t(&self, x: &Tensor, h: &Tensor, train: bool) -> Tensor {
        self.head_t(&self.features_t(x, train), h, train)
    }

    /// The image path up to 4x4, shared by several texts for the same images.
    ///
    /// # Shapes
    /// `x`: `[batch, 3, size, size]` -> `[batch, ch, 4, 4]`
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.body.forward_t(x, train)
    }

    /// Joins image features and text and scores the pair.
    ///
    /// # Shapes
    /// `f`: `[batch, ch, 4, 4]`, `h`: `[batch, text_dim]` -> `[batch]`
    pub fn head_t(&self, f: &Tensor, h: &Tensor, train: bool) -> Tensor {
        let t = lrelu(&self.proj.forward(h)); // [batch, proj]
        let t = t.unsqueeze(-1).unsqueeze(-1).expand([-1, -1, 4, 4], false); // [batch, proj, 4, 4]
        let mut j = Tensor::cat(&[f, &t], 1).apply_t(&self.joint, train); // [batch, ch, 4, 4]
        if let Some(bn) = &self.joint_bn {
            j = j.apply_t(bn, train);
        }
        lrelu(&j).apply_t(&self.out, train).view([-1]) // [batch]
    }

    /// The contrastive term's loss (`contrastive_weight`): cross-entropy of
    /// picking each image's own sentence among the batch's by the cosine of
    /// D's image vector and the sentence, temperature `tau`. `None` when the
    /// term is off.
    ///
    /// # Shapes
    /// `f`: `[batch, ch, 4, 4]`, `h`: `[batch + k, text_dim]` (the batch's own
    /// sentences first, then `k` extra candidates) -> scalar
    pub fn contrastive_loss(
        &self,
        f: &Tensor,
        h: &Tensor,
        exclude: Option<&Tensor>,
        tau: f64,
    ) -> Option<Tensor> {
        let head = self.to_sentence.as_ref()?;
        let v = f.flatten(1, -1).apply(head); // [batch, text_dim]
        Some(contrastive_loss(&v, h, exclude, tau))
    }
}

/// Image-to-sentence InfoNCE: `mean_i -log softmax_j(cos(v_i, h_j) / tau)_i`.
/// Row `i` of `h` is image `i`'s own sentence; rows past the batch are
/// extra candidates that belong to no image. Candidates marked in
/// `exclude` (other sentences that also describe image `i`) are left out
/// of image `i`'s softmax.
///
/// # Shapes
/// `v`: `[batch, d]`, `h`: `[batch + k, d]`, `exclude`: `[batch, batch + k]`
/// bool -> scalar
pub fn contrastive_loss(v: &Tensor, h: &Tensor, exclude: Option<&Tensor>, tau: f64) -> Tensor {
    let norm = |x: &Tensor| x / (x.norm_scalaropt_dim(2, [1i64].as_slice(), true) + 1e-8);
    let logits = norm(v).matmul(&norm(h).tr()) / tau; // [batch, batch + k]
    let logits = match exclude {
        Some(m) => logits.masked_fill(m, f64::NEG_INFINITY),
        None => logits,
    };
    let n = v.size()[0];
    let target = Tensor::arange(n, (Kind::Int64, v.device()));
    logits.cross_entropy_for_logits(&target)
}

/// Style encoder S: image -> z (sec. 4.4).
pub struct StyleEncoder {
    body: nn::SequentialT,
    head: nn::Linear,
}

impl StyleEncoder {
    pub fn new(p: nn::Path, c: &GanIntClsConfig) -> Self {
        let (body, ch) = conv_body(&p, c, false);
        let head = layers::linear(&p / "head", ch * 16, c.z_dim, true, InitKind::PyTorch);
        Self { body, head }
    }
    /// # Shapes
    /// `x`: `[batch, 3, size, size]` -> `[batch, z_dim]`
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.body
            .forward_t(x, train)
            .flatten(1, -1)
            .apply(&self.head)
    }
}

/// `mean(-log sigmoid(s))` when `real`, `mean(-log(1 - sigmoid(s)))` otherwise.
fn bce(s: &Tensor, real: bool) -> Tensor {
    let target = if real { s.ones_like() } else { s.zeros_like() };
    s.binary_cross_entropy_with_logits::<Tensor>(&target, None, None, tch::Reduction::Mean)
}

/// Algorithm 1's combination of D's terms, for either per-term loss: `real`
/// of s_r, plus `neg` of the fakes (the right-text fake, averaged with the
/// interpolated one for INT), averaged with `neg` of s_w for CLS.
fn combine_d(
    variant: Variant,
    s_r: &Tensor,
    s_w: Option<&Tensor>,
    s_f: &Tensor,
    s_int: Option<&Tensor>,
    real: impl Fn(&Tensor) -> Tensor,
    neg: impl Fn(&Tensor) -> Tensor,
) -> Tensor {
    let fake = match (variant.int(), s_int) {
        (true, Some(si)) => (neg(s_f) + neg(si)) * 0.5,
        _ => neg(s_f),
    };
    match (variant.cls(), s_w) {
        (true, Some(sw)) => real(s_r) + (neg(sw) + fake) * 0.5,
        _ => real(s_r) + fake,
    }
}

/// G's terms: `term` of s_f, plus `term` of s_int for INT (eq. 5).
fn combine_g(
    variant: Variant,
    s_f: &Tensor,
    s_int: Option<&Tensor>,
    term: impl Fn(&Tensor) -> Tensor,
) -> Tensor {
    match (variant.int(), s_int) {
        (true, Some(si)) => term(s_f) + term(si),
        _ => term(s_f),
    }
}

/// Discriminator loss to minimise (Algorithm 1, negated):
/// GAN: `-log s_r - log(1 - s_f)`;
/// CLS: `-log s_r - (log(1 - s_w) + log(1 - s_f)) / 2`.
/// With INT the fake term averages the right-text fake and the
/// interpolated-text fake (both scored as fake).
pub fn discriminator_loss(
    variant: Variant,
    s_r: &Tensor,
    s_w: Option<&Tensor>,
    s_f: &Tensor,
    s_int: Option<&Tensor>,
) -> Tensor {
    combine_d(
        variant,
        s_r,
        s_w,
        s_f,
        s_int,
        |s| bce(s, true),
        |s| bce(s, false),
    )
}

/// Hinge version of [`discriminator_loss`] (`hinge_loss`):
/// `relu(1 - s_r) + (relu(1 + s_w) + fake) / 2` for CLS, with
/// `fake = relu(1 + s_f)` (averaged with `relu(1 + s_int)` for INT).
pub fn discriminator_hinge_loss(
    variant: Variant,
    s_r: &Tensor,
    s_w: Option<&Tensor>,
    s_f: &Tensor,
    s_int: Option<&Tensor>,
) -> Tensor {
    let real = |s: &Tensor| (-s + 1.0).relu().mean(Kind::Float);
    let neg = |s: &Tensor| (s + 1.0).relu().mean(Kind::Float);
    combine_d(variant, s_r, s_w, s_f, s_int, real, neg)
}

/// Generator loss to minimise: `-log s_f`, plus `-log s_int` for INT (eq. 5).
pub fn generator_loss(variant: Variant, s_f: &Tensor, s_int: Option<&Tensor>) -> Tensor {
    combine_g(variant, s_f, s_int, |s| bce(s, true))
}

/// Hinge version of [`generator_loss`]: `-s_f` (and `-s_int` for INT).
pub fn generator_hinge_loss(variant: Variant, s_f: &Tensor, s_int: Option<&Tensor>) -> Tensor {
    combine_g(variant, s_f, s_int, |s| -s.mean(Kind::Float))
}

/// Mode-seeking term (Mao et al., CVPR 2019, eq. 3): the inverse of the
/// ratio of image distance to noise distance for two noises and one text.
/// Minimised by G; small when different z give different images.
pub fn mode_seeking_loss(x1: &Tensor, x2: &Tensor, z1: &Tensor, z2: &Tensor) -> Tensor {
    let ratio = (x1 - x2).abs().mean(Kind::Float) / (z1 - z2).abs().mean(Kind::Float);
    (ratio + 1e-5).reciprocal()
}

/// Interpolated text for eq. 5: `beta * h + (1 - beta) * h'`, with `h'` the
/// batch's embeddings rolled by one.
pub fn interpolate_text(h: &Tensor, beta: f64) -> Tensor {
    h * beta + h.roll([1], [0]) * (1.0 - beta)
}

/// Mean of a logit tensor's sigmoid (for logs).
pub fn mean_prob(s: &Tensor) -> f64 {
    s.sigmoid().mean(Kind::Float).double_value(&[])
}

/// A usable GAN-INT-CLS model: text encoder, generator and style encoder.
pub struct GanIntClsModel {
    pub config: GanIntClsConfig,
    pub encoder: AnyTextEncoder,
    pub g_vs: nn::VarStore,
    pub g: Generator,
    pub s_vs: nn::VarStore,
    pub s: StyleEncoder,
    /// Whether S has been trained.
    pub style_trained: bool,
    /// The shapes data set the model was trained on, whose caption grammar
    /// completes a partial caption ([`GanIntClsModel::condition`]); `None`
    /// on other data sets.
    pub shapes: Option<crate::data::shapes::Shapes>,
    pub device: Device,
}

impl GanIntClsModel {
    pub fn new(config: GanIntClsConfig, encoder: AnyTextEncoder, device: Device) -> Self {
        let g_vs = nn::VarStore::new(device);
        let g = Generator::new(g_vs.root(), &config);
        let s_vs = nn::VarStore::new(device);
        let s = StyleEncoder::new(s_vs.root(), &config);
        Self {
            config,
            encoder,
            g_vs,
            g,
            s_vs,
            s,
            style_trained: false,
            shapes: None,
            device,
        }
    }

    /// Loads a model from a checkpoint file.
    pub fn load(path: &std::path::Path, device: Device) -> crate::Result<Self> {
        let ck = crate::checkpoint::load(path)?;
        Self::from_checkpoint(&ck, device)
    }

    pub fn from_checkpoint(
        ck: &crate::checkpoint::Checkpoint,
        device: Device,
    ) -> crate::Result<Self> {
        let model = ck.meta("model")?;
        if model != "gan-int-cls" {
            return Err(crate::Error::Checkpoint(format!(
                "checkpoint holds a '{model}' model, not gan-int-cls"
            )));
        }
        let config = config_of(ck)?;
        let encoder = AnyTextEncoder::from_checkpoint(ck, device)?;
        let mut m = Self::new(config, encoder, device);
        ck.load_into(&mut m.g_vs, "G")?;
        if ck.tensors.keys().any(|k| k.starts_with("G_avg.")) {
            // generation uses the running average when the run kept one
            crate::checkpoint::load_trainable(&m.g_vs, ck, "G_avg")?;
            // with the average's own batch-norm statistics when saved
            crate::checkpoint::load_buffers(&m.g_vs, ck, "G_avg")?;
        }
        ck.load_into(&mut m.s_vs, "S")?;
        m.style_trained = ck.meta("style_trained")? == "true";
        m.shapes = crate::data::shapes::Shapes::of_checkpoint(ck)?;
        Ok(m)
    }

    /// Sentence vectors for captions, with each caption's unknown words.
    pub fn embed(&self, captions: &[&str]) -> crate::Result<(Tensor, Vec<Encoded>)> {
        tch::no_grad(|| {
            let (f, enc) = self.encoder.encode(captions)?;
            Ok((f.sentence, enc))
        })
    }

    /// What G is conditioned on for `captions`: their sentence vectors. On
    /// shapes, a caption that leaves attributes out is first completed to a
    /// full description it allows ([`GanIntClsModel::completed`]). `[n, text_dim]`
    pub fn condition(&self, captions: &[&str], seed: u64) -> crate::Result<Tensor> {
        Ok(self.condition_drawn(captions, seed)?.0)
    }

    /// [`GanIntClsModel::condition`] and the captions it drew.
    pub fn condition_drawn(
        &self,
        captions: &[&str],
        seed: u64,
    ) -> crate::Result<(Tensor, Vec<String>)> {
        let full = self.completed(captions, seed);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let (h, _) = self.embed(&refs)?;
        Ok((h, full))
    }

    /// The captions G is conditioned on: on shapes, each caption that leaves
    /// attributes out ("a green triangle") becomes a full description of a
    /// training scene it describes, the unnamed attributes drawn from the
    /// data set with `seed` and the caption's index
    /// ([`crate::data::shapes::Shapes::complete_caption`]); other captions,
    /// and every caption on other data sets, unchanged.
    pub fn completed(&self, captions: &[&str], seed: u64) -> Vec<String> {
        captions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let draw = crate::data::shapes::completion_seed(seed, i);
                self.shapes
                    .as_ref()
                    .and_then(|s| s.complete_caption(c, draw))
                    .unwrap_or_else(|| c.to_string())
            })
            .collect()
    }

    /// Noise for `n` samples from `seed`, drawn on the CPU so that it is the
    /// same whatever the device. `[n, z_dim]`
    pub fn noise(&self, n: i64, seed: u64) -> Tensor {
        crate::rng::normal(n, self.config.z_dim, seed, self.device)
    }

    /// G(z, h) in inference mode. `[n, 3, size, size]` in [-1, 1]
    pub fn generate(&self, z: &Tensor, h: &Tensor) -> Tensor {
        tch::no_grad(|| self.g.forward_t(z, h, false)).contiguous()
    }

    /// Generation from here on: G's convolution weights channels-last
    /// ([`crate::layers::to_channels_last`]; not for training).
    pub fn for_inference(&self) {
        crate::layers::to_channels_last(&self.g_vs);
    }

    /// S(x) in inference mode. `[n, z_dim]`
    pub fn style(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.s.forward_t(&x.to_device(self.device), false))
    }
}

/// The model config of a checkpoint. Options removed since it was written
/// are accepted when off, and named when on.
fn config_of(ck: &crate::checkpoint::Checkpoint) -> crate::Result<GanIntClsConfig> {
    let bad = |e: String| crate::Error::Checkpoint(format!("checkpoint config: {e}"));
    let mut t: toml::Table = toml::from_str(ck.meta("config")?).map_err(|e| bad(e.to_string()))?;
    for (key, off) in crate::models::gan_int_cls::REMOVED_OPTIONS {
        if let Some(v) = t.remove(*key) {
            if v.to_string() != *off {
                return Err(bad(format!(
                    "it was trained with `{key} = {v}`, an option t2i no longer has (docs/experiments.md)"
                )));
            }
        }
    }
    toml::Value::Table(t)
        .try_into()
        .map_err(|e: toml::de::Error| bad(e.to_string()))
}
