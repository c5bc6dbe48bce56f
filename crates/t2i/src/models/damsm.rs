//! DAMSM: the Deep Attentional Multimodal Similarity Model of AttnGAN (Xu et
//! al., CVPR 2018, sec. 3.3): the image encoder and the word- and
//! sentence-level matching losses. The text side is
//! [`crate::text::damsm::RnnEncoder`].
//!
//! The image encoder maps an image to local region features `v` (`[D, R]`,
//! R = 17 x 17 = 289 regions of Inception-v3's `mixed_6e` in the paper) and a
//! global feature `v_bar` (`[D]`). The `paper` body is Inception-v3; the
//! `tiny` body is a small CNN trained from scratch (64x64 input, 8 x 8
//! regions).

use crate::layers::{self, InitKind};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// The smoothing factors of the matching score (`cfg/DAMSM/bird.yml`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gammas {
    /// gamma1: sharpness of the attention over regions (eq. 9).
    pub gamma1: f64,
    /// gamma2: importance of the most relevant word-context pair (eq. 10).
    pub gamma2: f64,
    /// gamma3: smoothing of the posterior over the batch (eq. 11).
    pub gamma3: f64,
}

impl Default for Gammas {
    fn default() -> Self {
        Self {
            gamma1: 4.0,
            gamma2: 5.0,
            gamma3: 10.0,
        }
    }
}

/// Configuration of the DAMSM image encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnEncoderConfig {
    pub preset: String,
    /// Feature size D shared with the text encoder.
    pub dim: i64,
    /// Input side in pixels.
    pub image_size: i64,
    /// Width of the first convolution of the small CNN.
    pub width: i64,
    /// Which CNN (beyond the paper's Inception-v3 for `paper`).
    #[serde(default)]
    pub arch: CnnArch,
    /// Keeps the convolutional body fixed (eval mode, no gradient): only
    /// `emb_features` and `emb_cnn_code` learn, as the official DAMSM keeps
    /// its ImageNet Inception-v3 fixed. Meant for a body copied from a
    /// trained classifier (`--image-init`); training then computes each
    /// image's body features once.
    #[serde(default)]
    pub frozen_body: bool,
    /// Outside training, the body reads each image and its mirror
    /// image and averages the two (the mirror's regions flipped back), a
    /// test-time augmentation beyond the paper. Training already sees
    /// random flips, so both views are in the projections' domain.
    #[serde(default)]
    pub flip_average: bool,
}

/// The `tiny` image encoder's CNN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CnnArch {
    /// Four 4x4 stride-2 convolutions.
    #[default]
    Small,
    /// The evaluation classifier's four VGG stages
    /// ([`crate::models::classifier`]), so the encoder can start from a
    /// classifier trained on the training classes, as the official DAMSM
    /// starts from ImageNet weights.
    Vgg,
    /// EfficientNet-Lite0 ([`crate::models::efficientnet`]) with ImageNet
    /// weights (`--image-init efficientnet-lite0-*.pth`), the small-network
    /// counterpart of the paper's ImageNet Inception-v3: regions from its
    /// 112-channel stage at 1/16, global feature from its 1280-channel head.
    #[serde(rename = "efficientnet-lite0")]
    EfficientnetLite0,
    /// EfficientNet-Lite2 the same way (`efficientnet-lite2-*.pth`, 260x260
    /// input, regions from its 120-channel stage at 1/16): a larger ImageNet
    /// body (top-1 77.6% against Lite0's 75.1%).
    #[serde(rename = "efficientnet-lite2")]
    EfficientnetLite2,
    /// The paper's: torchvision's Inception-v3 at 299x299 (keep it frozen,
    /// `frozen_body`); regions from `Mixed_6e` (768 channels, 17x17), the
    /// global feature from `Mixed_7c` (2048), keys as the official
    /// `image_encoder*.pth`.
    #[serde(rename = "inception-v3")]
    InceptionV3,
}

impl CnnArch {
    /// The EfficientNet-Lite of an ImageNet weight file, told by what its
    /// head reads (Lite0: 320 channels, Lite2: 352).
    pub fn from_imagenet_weights(path: &std::path::Path) -> crate::Result<Self> {
        let w = crate::import::read_weights(path)?;
        let head_in = w.get("_conv_head.weight").map(|t| t.size()[1]);
        match head_in {
            Some(320) => Ok(Self::EfficientnetLite0),
            Some(352) => Ok(Self::EfficientnetLite2),
            _ => Err(crate::Error::Config(format!(
                "{} is neither EfficientNet-Lite0 nor -Lite2 weights (its _conv_head reads {head_in:?} channels)",
                path.display()
            ))),
        }
    }
}

impl CnnArch {
    /// The EfficientNet-Lite network of an ImageNet body.
    pub fn lite(self) -> Option<&'static crate::models::efficientnet::LiteSpec> {
        match self {
            CnnArch::EfficientnetLite0 => Some(&crate::models::efficientnet::LITE0),
            CnnArch::EfficientnetLite2 => Some(&crate::models::efficientnet::LITE2),
            CnnArch::Small | CnnArch::Vgg | CnnArch::InceptionV3 => None,
        }
    }
}

impl CnnEncoderConfig {
    /// Channels of the body's region features.
    pub fn region_dim(&self) -> i64 {
        match (self.arch, self.arch.lite()) {
            (CnnArch::InceptionV3, _) => 768,
            (_, Some(l)) => l.region_dim,
            (_, None) => 4 * self.width,
        }
    }
    /// Images per forward pass when encoding a whole set without
    /// gradients. EfficientNet-Lite0 on CPU is fastest in small batches
    /// (31 ms per 224x224 image at 4, 80 ms at 100: its wide depthwise
    /// stages outgrow the caches).
    pub fn inference_batch(&self) -> usize {
        match self.arch.lite() {
            Some(_) => 8,
            None => 100,
        }
    }
    /// Channels of the body's pooled head.
    pub fn head_dim(&self) -> i64 {
        match (self.arch, self.arch.lite()) {
            (CnnArch::InceptionV3, _) => 2048,
            (_, Some(_)) => crate::models::efficientnet::HEAD_DIM,
            (_, None) => 8 * self.width,
        }
    }
}

impl CnnEncoderConfig {
    /// The paper's image encoder: frozen Inception-v3 at 299x299, D = 256.
    pub fn paper() -> Self {
        Self {
            preset: "paper".into(),
            dim: 256,
            image_size: 299,
            width: 0,
            arch: CnnArch::InceptionV3,
            frozen_body: true,
            flip_average: false,
        }
    }

    pub fn tiny() -> Self {
        Self {
            preset: "tiny".into(),
            dim: 128,
            image_size: 64,
            width: 32,
            arch: CnnArch::Small,
            frozen_body: false,
            flip_average: false,
        }
    }
}

/// The small CNN image encoder of the `tiny` preset: four 4x4 stride-2
/// convolutions; the third gives the 8x8 regions (local features), the
/// fourth, mean-pooled, the global feature.
#[derive(Debug)]
pub struct CnnEncoder {
    pub config: CnnEncoderConfig,
    body: nn::SequentialT,
    head: nn::SequentialT,
    /// `emb_features`: 1x1 convolution of the local features to D.
    emb_features: nn::Conv2D,
    /// `emb_cnn_code`: linear map of the global feature to D.
    emb_cnn_code: nn::Linear,
}

fn down(p: nn::Path, cin: i64, cout: i64) -> nn::SequentialT {
    nn::seq_t()
        .add(layers::conv2d(
            &p / "conv",
            cin,
            cout,
            4,
            2,
            1,
            false,
            InitKind::PyTorch,
        ))
        .add(layers::batch_norm2d(&p / "bn", cout, InitKind::PyTorch))
        .add_fn(layers::lrelu)
}

impl CnnEncoder {
    /// The small CNN: `conv0`, `down1`, `down2` (regions), `down3`.
    fn small(p: &nn::Path, w: i64) -> (nn::SequentialT, nn::SequentialT) {
        let body = nn::seq_t()
            .add(layers::conv2d(
                p / "conv0",
                3,
                w,
                4,
                2,
                1,
                true,
                InitKind::PyTorch,
            ))
            .add_fn(layers::lrelu) // [batch, w, s/2, s/2]
            .add(down(p / "down1", w, 2 * w)) // s/4
            .add(down(p / "down2", 2 * w, 4 * w)); // s/8: the regions
        let head = nn::seq_t().add(down(p / "down3", 4 * w, 8 * w)); // s/16
        (body, head)
    }

    pub fn new(p: nn::Path, config: CnnEncoderConfig) -> Self {
        let w = config.width;
        let (body, head) = match config.arch {
            CnnArch::Small => Self::small(&p, w),
            CnnArch::Vgg => {
                use crate::models::classifier::stage;
                let body = nn::seq_t()
                    .add(stage(&p / "stage0", 3, w)) // s/2
                    .add(stage(&p / "stage1", w, 2 * w)) // s/4
                    .add(stage(&p / "stage2", 2 * w, 4 * w)); // s/8: the regions
                (body, stage(&p / "stage3", 4 * w, 8 * w)) // s/16
            }
            // regions at s/16, head at s/32
            CnnArch::EfficientnetLite0 | CnnArch::EfficientnetLite2 => {
                let spec = config.arch.lite().expect("a Lite arch");
                crate::models::efficientnet::lite_split(&p, spec)
            }
            // resized to 299 as the official encoder does; regions at 17x17,
            // head at 8x8
            CnnArch::InceptionV3 => {
                use crate::models::inception::{InceptionV3, Variant};
                let (lower, upper) = InceptionV3::split(&p, Variant::Torchvision);
                let body = nn::seq_t()
                    .add_fn(|x| {
                        if x.size()[2..] == [299, 299] {
                            x.shallow_clone()
                        } else {
                            x.upsample_bilinear2d([299, 299], false, None, None)
                        }
                    })
                    .add(lower);
                (body, nn::seq_t().add(upper))
            }
        };
        let emb_features = layers::conv2d(
            &p / "emb_features",
            config.region_dim(),
            config.dim,
            1,
            1,
            0,
            false,
            InitKind::PyTorch,
        );
        let emb_cnn_code = layers::linear(
            &p / "emb_cnn_code",
            config.head_dim(),
            config.dim,
            true,
            InitKind::PyTorch,
        );
        Self {
            config,
            body,
            head,
            emb_features,
            emb_cnn_code,
        }
    }

    /// # Shapes
    /// `x [batch, 3, s, s]` in [-1, 1] -> local `[batch, D, s/8, s/8]`,
    /// global `[batch, D]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let (f, g) = self.body_features(x, train);
        self.project(&f, &g)
    }

    /// The body's region features and pooled global feature, before the
    /// projections (eval mode when the body is frozen).
    ///
    /// # Shapes
    /// `x [batch, 3, s, s]` -> `[batch, region_dim, r, r]` (r = s/8; s/16
    /// for EfficientNet-Lite0), `[batch, head_dim]`
    pub fn body_features(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let train = train && !self.config.frozen_body;
        if self.config.flip_average && !train {
            let b = x.size()[0];
            let both = Tensor::cat(&[x, &x.flip([3])], 0); // [2 batch, 3, s, s]
            let (f, g) = self.single_view(&both, false);
            let f = (f.narrow(0, 0, b) + f.narrow(0, b, b).flip([3])) / 2.0;
            let g = (g.narrow(0, 0, b) + g.narrow(0, b, b)) / 2.0;
            return (f, g);
        }
        self.single_view(x, train)
    }

    /// [`CnnEncoder::body_features`] of the images as they are (no
    /// `flip_average`): what a training step's cached variants hold.
    pub fn single_view(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let f = self.body.forward_t(x, train); // [batch, region_dim, r, r]
        let g = self
            .head
            .forward_t(&f, train)
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float); // [batch, head_dim]
        (f, g)
    }

    /// `emb_features` and `emb_cnn_code`: body features to the shared space.
    ///
    /// # Shapes
    /// `[batch, region_dim, r, r]`, `[batch, head_dim]` -> `[batch, D, r, r]`, `[batch, D]`
    pub fn project(&self, f: &Tensor, g: &Tensor) -> (Tensor, Tensor) {
        (f.apply(&self.emb_features), self.project_global(g))
    }

    /// `emb_cnn_code` alone: pooled body features to global vectors.
    ///
    /// # Shapes
    /// `[batch, head_dim]` -> `[batch, D]`
    pub fn project_global(&self, g: &Tensor) -> Tensor {
        g.apply(&self.emb_cnn_code)
    }

    /// Grad-CAM (Selvaraju et al., ICCV 2017) of the cosine between each
    /// image's global vector and a direction in the shared space (a
    /// phrase's sentence vector): the region features weighted by the
    /// spatial mean of the cosine's gradient, summed over channels and
    /// rectified. Eval mode; no gradient reaches the images or weights.
    ///
    /// # Shapes
    /// `x [batch, 3, s, s]` in [-1, 1], `dirs [batch, D]` -> `[batch, 1, r, r]`
    pub fn grad_cam(&self, x: &Tensor, dirs: &Tensor) -> Tensor {
        let f = tch::no_grad(|| self.body.forward_t(x, false))
            .detach()
            .set_requires_grad(true); // [batch, region_dim, r, r]
        let g = self
            .head
            .forward_t(&f, false)
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float); // [batch, head_dim]
        let score = cosine(&self.project_global(&g), dirs, 1).sum(Kind::Float);
        let grad = Tensor::run_backward(&[score], &[&f], false, false)
            .pop()
            .expect("one gradient"); // [batch, region_dim, r, r]
        let alpha = grad.mean_dim([2i64, 3].as_slice(), true, Kind::Float); // [batch, region_dim, 1, 1]
        (alpha * f.detach())
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
            .relu() // [batch, 1, r, r]
    }

    /// Stops gradients to the body's weights (`frozen_body`), so an
    /// optimiser built afterwards sees only the projections.
    pub fn freeze_body(&self, vs: &nn::VarStore) {
        for (name, var) in vs.variables() {
            if !name.starts_with("emb_") {
                let _ = var.set_requires_grad(false);
            }
        }
    }
}

/// Cosine similarity along `dim` with the official clamp
/// (`w12 / max(|w1| |w2|, eps)`).
fn cosine(a: &Tensor, b: &Tensor, dim: i64) -> Tensor {
    let w12 = (a * b).sum_dim_intlist(dim, false, Kind::Float);
    let w1 = a.norm_scalaropt_dim(2, [dim], false);
    let w2 = b.norm_scalaropt_dim(2, [dim], false);
    w12 / (w1 * w2).clamp_min(1e-8)
}

/// Word-region attention (eqs. 7-9, `func_attention`) of every caption with
/// every image.
///
/// # Shapes
/// `words [B, D, T]`, `mask [B, T]` (true for real words), `regions [B, D, H, W]`
/// -> context `[B(caption), B(image), T, D]`, attention `[B, B, T, H*W]`.
pub fn word_attention(
    words: &Tensor,
    mask: &Tensor,
    regions: &Tensor,
    gamma1: f64,
) -> (Tensor, Tensor) {
    let (b, d) = (regions.size()[0], regions.size()[1]);
    let t = words.size()[2];
    let v = regions.view([b, d, -1]); // [B, D, R]
    let r = v.size()[2];
    let e = words.transpose(1, 2); // [B, T, D]
                                   // s[i, j, t, r] = e_i,t . v_j,r  (eq. 7), as one matrix product
    let s = e
        .reshape([b * t, d])
        .matmul(&v.permute([1, 0, 2]).reshape([d, b * r])) // [B*T, B*R]
        .view([b, t, b, r])
        .permute([0, 2, 1, 3]); // [B, B, T, R]
    let pad = mask.logical_not().view([b, 1, t, 1]); // [B, 1, T, 1]
    let s_bar = s
        .masked_fill(&pad, f64::NEG_INFINITY)
        .softmax(2, Kind::Float); // over words (eq. 8)
    let alpha = (s_bar * gamma1).softmax(3, Kind::Float); // over regions (eq. 9)
                                                          // c[i, j, t] = sum_r alpha[i, j, t, r] v_j,r: one product per image j
    let c = alpha
        .permute([1, 0, 2, 3])
        .reshape([b, b * t, r])
        .bmm(&v.transpose(1, 2)) // [B(j), B(i)*T, D]
        .view([b, b, t, d])
        .permute([1, 0, 2, 3]); // [B, B, T, D]
    (c, alpha)
}

/// Per-caption attention maps with its own image: `[T_i, H, W]` each.
pub fn attention_maps(alpha: &Tensor, lens: &[i64], h: i64, w: i64) -> Vec<Tensor> {
    lens.iter()
        .enumerate()
        .map(|(i, &t)| {
            let i = i as i64;
            alpha.get(i).get(i).narrow(0, 0, t).view([t, h, w])
        })
        .collect()
}

/// Masks off-diagonal pairs of the same class (the reference code's
/// same-class masking): `scores[i, j] = -inf` where `class[i] == class[j]`, `i != j`.
fn mask_same_class(scores: &Tensor, class_ids: Option<&[i64]>) -> Tensor {
    match class_ids {
        None => scores.shallow_clone(),
        Some(c) => {
            let n = c.len();
            let m: Vec<bool> = (0..n * n)
                .map(|k| k / n != k % n && c[k / n] == c[k % n])
                .collect();
            let m = Tensor::from_slice(&m)
                .view([n as i64, n as i64])
                .to_device(scores.device());
            scores.masked_fill(&m, f64::NEG_INFINITY)
        }
    }
}

/// Cross entropy of both directions with labels = the diagonal (eq. 11-12).
fn both_directions(scores: &Tensor) -> (Tensor, Tensor) {
    let n = scores.size()[0];
    let labels = Tensor::arange(n, (Kind::Int64, scores.device()));
    let ce = |s: &Tensor| s.log_softmax(1, Kind::Float).nll_loss(&labels);
    (ce(scores), ce(&scores.tr()))
}

/// The word-level DAMSM loss L1_w, L2_w (`words_loss`) and the attention
/// of each caption over its own image.
///
/// `R(c_i, e_i)` is the cosine of each word with its context; R(Q, D) =
/// log sum_i exp(gamma2 R(c_i, e_i)) (eq. 10; the reference code omits the
/// 1/gamma2 power and so do we).
///
/// # Shapes
/// `regions [B, D, H, W]`, `words [B, D, T]`, `lens [B]` -> two scalars and
/// the attention `[B, B, T, H*W]`.
pub fn words_loss(
    regions: &Tensor,
    words: &Tensor,
    lens: &[i64],
    class_ids: Option<&[i64]>,
    g: Gammas,
) -> (Tensor, Tensor, Tensor) {
    let (sim, alpha) = word_similarity(regions, words, lens, g); // [B(image), B(caption)]
    let scores = mask_same_class(&(sim * g.gamma3), class_ids);
    let (l0, l1) = both_directions(&scores);
    (l0, l1, alpha)
}

/// Word-level matching score R(Q_i, D_j) of every image i with every caption j,
/// and the attention.
pub fn word_similarity(
    regions: &Tensor,
    words: &Tensor,
    lens: &[i64],
    g: Gammas,
) -> (Tensor, Tensor) {
    let (b, t) = (words.size()[0], words.size()[2]);
    let mask = lens_mask(lens, t, words.device()); // [B, T]
    let (c, alpha) = word_attention(words, &mask, regions, g.gamma1);
    let e = words.transpose(1, 2).unsqueeze(1); // [B, 1, T, D]
    let r = cosine(&c, &e, 3); // [B(caption), B(image), T]
    let r = (r * g.gamma2)
        .exp()
        .masked_fill(&mask.logical_not().view([b, 1, t]), 0.0)
        .sum_dim_intlist(2, false, Kind::Float)
        .log(); // [B(caption), B(image)]
    (r.tr(), alpha) // rows: images, columns: captions
}

/// True for the first `lens[i]` of `t` positions. `[B, t]`
pub fn lens_mask(lens: &[i64], t: i64, device: tch::Device) -> Tensor {
    let v: Vec<bool> = lens
        .iter()
        .flat_map(|&l| (0..t).map(move |k| k < l))
        .collect();
    Tensor::from_slice(&v)
        .view([lens.len() as i64, t])
        .to_device(device)
}

/// The sentence-level DAMSM loss L1_s, L2_s (`sent_loss`).
///
/// # Shapes
/// `image [B, D]`, `sentence [B, D]` -> two scalars.
pub fn sent_loss(
    image: &Tensor,
    sentence: &Tensor,
    class_ids: Option<&[i64]>,
    g: Gammas,
) -> (Tensor, Tensor) {
    let scores = mask_same_class(&(sent_similarity(image, sentence) * g.gamma3), class_ids);
    both_directions(&scores)
}

/// cos(v_bar_i, e_bar_j) of every image i with every sentence j. `[B, B]`
pub fn sent_similarity(image: &Tensor, sentence: &Tensor) -> Tensor {
    let num = image.matmul(&sentence.tr());
    let norm = image
        .norm_scalaropt_dim(2, [1], true)
        .matmul(&sentence.norm_scalaropt_dim(2, [1], true).tr());
    num / norm.clamp_min(1e-8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grad_cam_is_rectified_and_flips_with_the_direction() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let enc = CnnEncoder::new(vs.root(), CnnEncoderConfig::tiny());
        let s = enc.config.image_size;
        let x = Tensor::rand([2, 3, s, s], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
        let d = Tensor::randn([2, enc.config.dim], (Kind::Float, tch::Device::Cpu));
        let cam = enc.grad_cam(&x, &d);
        assert_eq!(cam.size(), [2, 1, s / 8, s / 8]);
        assert!(cam.min().double_value(&[]) >= 0.0);
        // the cosine is linear in the direction: its gradient, and so the
        // map before the ReLU, changes sign with it
        let other = enc.grad_cam(&x, &-&d);
        assert_eq!((&cam * &other).abs().max().double_value(&[]), 0.0);
        assert!((&cam + &other).sum(Kind::Float).double_value(&[]) > 0.0);
        // weights keep no gradient
        assert!(vs.variables().values().all(|v| !v.grad().defined()));
    }
}
