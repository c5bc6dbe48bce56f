//! Inception-v3 (Szegedy et al., CVPR 2016) as the image-quality metrics use
//! it: the 2048-d pool features (FID, KID) and class logits (Inception
//! Score).
//!
//! Two variants, with torchvision's state_dict names (`Conv2d_1a_3x3.conv`,
//! `Mixed_5b.branch5x5_1.bn`, `fc` ...), so their weight files load by name:
//! - [`Variant::Fid`]: pytorch-fid's network (the TensorFlow FID graph): 1008
//!   classes, average pools that ignore padding in the A, C and first E
//!   blocks, a max pool in the last E block; input resized to 299 (bilinear)
//!   in [-1, 1]. Weights: `pt_inception-2015-12-05-*.pth`.
//! - [`Variant::Torchvision`]: `torchvision.models.inception_v3`: 1000
//!   classes, input resized to 299 and normalised with ImageNet's mean/std.

use crate::layers::{BatchNorm, InitKind};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// Which Inception-v3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Fid,
    Torchvision,
}

impl Variant {
    pub fn classes(self) -> i64 {
        match self {
            Variant::Fid => 1008,
            Variant::Torchvision => 1000,
        }
    }
}

/// `BasicConv2d`: conv (no bias), BatchNorm (eps 0.001), ReLU.
#[derive(Debug)]
struct Basic {
    conv: nn::Conv<[i64; 2]>,
    bn: BatchNorm,
}

impl Basic {
    fn new(p: nn::Path, cin: i64, cout: i64, k: [i64; 2], stride: i64, pad: [i64; 2]) -> Self {
        let cfg = nn::ConvConfigND {
            stride: [stride, stride],
            padding: pad,
            dilation: [1, 1],
            groups: 1,
            bias: false,
            ws_init: nn::Init::Const(0.0),
            bs_init: nn::Init::Const(0.0),
            padding_mode: nn::PaddingMode::Zeros,
        };
        Self {
            conv: nn::conv(&p / "conv", cin, cout, k, cfg),
            bn: BatchNorm::new(&p / "bn", cout, InitKind::PyTorch).with_eps(1e-3),
        }
    }

    fn sq(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, pad: i64) -> Self {
        Self::new(p, cin, cout, [k, k], stride, [pad, pad])
    }

    fn f(&self, x: &Tensor) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), false).relu()
    }
}

/// 3x3 average pool, stride 1, padding 1; TensorFlow's (the FID graph's)
/// average ignores the padded zeros.
fn avg3(x: &Tensor, count_pad: bool) -> Tensor {
    x.avg_pool2d([3, 3], [1, 1], [1, 1], false, count_pad, None::<i64>)
}

fn max3s2(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// `InceptionA` (Mixed_5b-d).
#[derive(Debug)]
struct BlockA {
    b1: Basic,
    b5_1: Basic,
    b5_2: Basic,
    d1: Basic,
    d2: Basic,
    d3: Basic,
    pool: Basic,
}

impl BlockA {
    fn new(p: nn::Path, cin: i64, pool_features: i64) -> Self {
        Self {
            b1: Basic::sq(&p / "branch1x1", cin, 64, 1, 1, 0),
            b5_1: Basic::sq(&p / "branch5x5_1", cin, 48, 1, 1, 0),
            b5_2: Basic::sq(&p / "branch5x5_2", 48, 64, 5, 1, 2),
            d1: Basic::sq(&p / "branch3x3dbl_1", cin, 64, 1, 1, 0),
            d2: Basic::sq(&p / "branch3x3dbl_2", 64, 96, 3, 1, 1),
            d3: Basic::sq(&p / "branch3x3dbl_3", 96, 96, 3, 1, 1),
            pool: Basic::sq(&p / "branch_pool", cin, pool_features, 1, 1, 0),
        }
    }

    fn f(&self, x: &Tensor, v: Variant) -> Tensor {
        Tensor::cat(
            &[
                self.b1.f(x),
                self.b5_2.f(&self.b5_1.f(x)),
                self.d3.f(&self.d2.f(&self.d1.f(x))),
                self.pool.f(&avg3(x, v == Variant::Torchvision)),
            ],
            1,
        )
    }
}

/// `InceptionB` (Mixed_6a): grid reduction to 17x17.
#[derive(Debug)]
struct BlockB {
    b3: Basic,
    d1: Basic,
    d2: Basic,
    d3: Basic,
}

impl BlockB {
    fn new(p: nn::Path, cin: i64) -> Self {
        Self {
            b3: Basic::sq(&p / "branch3x3", cin, 384, 3, 2, 0),
            d1: Basic::sq(&p / "branch3x3dbl_1", cin, 64, 1, 1, 0),
            d2: Basic::sq(&p / "branch3x3dbl_2", 64, 96, 3, 1, 1),
            d3: Basic::sq(&p / "branch3x3dbl_3", 96, 96, 3, 2, 0),
        }
    }

    fn f(&self, x: &Tensor) -> Tensor {
        Tensor::cat(
            &[
                self.b3.f(x),
                self.d3.f(&self.d2.f(&self.d1.f(x))),
                max3s2(x),
            ],
            1,
        )
    }
}

/// `InceptionC` (Mixed_6b-e): factorised 7x7 convolutions.
#[derive(Debug)]
struct BlockC {
    b1: Basic,
    b7: [Basic; 3],
    d7: [Basic; 5],
    pool: Basic,
}

impl BlockC {
    fn new(p: nn::Path, cin: i64, c7: i64) -> Self {
        let (r, c) = ([1, 7], [7, 1]); // row and column kernels
        let (pr, pc) = ([0, 3], [3, 0]);
        Self {
            b1: Basic::sq(&p / "branch1x1", cin, 192, 1, 1, 0),
            b7: [
                Basic::sq(&p / "branch7x7_1", cin, c7, 1, 1, 0),
                Basic::new(&p / "branch7x7_2", c7, c7, r, 1, pr),
                Basic::new(&p / "branch7x7_3", c7, 192, c, 1, pc),
            ],
            d7: [
                Basic::sq(&p / "branch7x7dbl_1", cin, c7, 1, 1, 0),
                Basic::new(&p / "branch7x7dbl_2", c7, c7, c, 1, pc),
                Basic::new(&p / "branch7x7dbl_3", c7, c7, r, 1, pr),
                Basic::new(&p / "branch7x7dbl_4", c7, c7, c, 1, pc),
                Basic::new(&p / "branch7x7dbl_5", c7, 192, r, 1, pr),
            ],
            pool: Basic::sq(&p / "branch_pool", cin, 192, 1, 1, 0),
        }
    }

    fn f(&self, x: &Tensor, v: Variant) -> Tensor {
        let chain = |bs: &[Basic]| bs.iter().fold(x.shallow_clone(), |h, b| b.f(&h));
        Tensor::cat(
            &[
                self.b1.f(x),
                chain(&self.b7),
                chain(&self.d7),
                self.pool.f(&avg3(x, v == Variant::Torchvision)),
            ],
            1,
        )
    }
}

/// `InceptionD` (Mixed_7a): grid reduction to 8x8.
#[derive(Debug)]
struct BlockD {
    b3: [Basic; 2],
    b7: [Basic; 4],
}

impl BlockD {
    fn new(p: nn::Path, cin: i64) -> Self {
        Self {
            b3: [
                Basic::sq(&p / "branch3x3_1", cin, 192, 1, 1, 0),
                Basic::sq(&p / "branch3x3_2", 192, 320, 3, 2, 0),
            ],
            b7: [
                Basic::sq(&p / "branch7x7x3_1", cin, 192, 1, 1, 0),
                Basic::new(&p / "branch7x7x3_2", 192, 192, [1, 7], 1, [0, 3]),
                Basic::new(&p / "branch7x7x3_3", 192, 192, [7, 1], 1, [3, 0]),
                Basic::sq(&p / "branch7x7x3_4", 192, 192, 3, 2, 0),
            ],
        }
    }

    fn f(&self, x: &Tensor) -> Tensor {
        let chain = |bs: &[Basic]| bs.iter().fold(x.shallow_clone(), |h, b| b.f(&h));
        Tensor::cat(&[chain(&self.b3), chain(&self.b7), max3s2(x)], 1)
    }
}

/// How an `InceptionE` block pools.
#[derive(Debug, Clone, Copy)]
enum EPool {
    /// Average counting the padding (torchvision).
    Avg,
    /// Average ignoring the padding (FID, Mixed_7b).
    AvgNoPad,
    /// Max (FID, Mixed_7c).
    Max,
}

/// `InceptionE` (Mixed_7b, 7c): expanded filter banks.
#[derive(Debug)]
struct BlockE {
    b1: Basic,
    b3_1: Basic,
    b3_2a: Basic,
    b3_2b: Basic,
    d1: Basic,
    d2: Basic,
    d3a: Basic,
    d3b: Basic,
    pool: Basic,
}

impl BlockE {
    fn new(p: nn::Path, cin: i64) -> Self {
        Self {
            b1: Basic::sq(&p / "branch1x1", cin, 320, 1, 1, 0),
            b3_1: Basic::sq(&p / "branch3x3_1", cin, 384, 1, 1, 0),
            b3_2a: Basic::new(&p / "branch3x3_2a", 384, 384, [1, 3], 1, [0, 1]),
            b3_2b: Basic::new(&p / "branch3x3_2b", 384, 384, [3, 1], 1, [1, 0]),
            d1: Basic::sq(&p / "branch3x3dbl_1", cin, 448, 1, 1, 0),
            d2: Basic::sq(&p / "branch3x3dbl_2", 448, 384, 3, 1, 1),
            d3a: Basic::new(&p / "branch3x3dbl_3a", 384, 384, [1, 3], 1, [0, 1]),
            d3b: Basic::new(&p / "branch3x3dbl_3b", 384, 384, [3, 1], 1, [1, 0]),
            pool: Basic::sq(&p / "branch_pool", cin, 192, 1, 1, 0),
        }
    }

    fn f(&self, x: &Tensor, pool: EPool) -> Tensor {
        let b3 = self.b3_1.f(x);
        let d = self.d2.f(&self.d1.f(x));
        let pooled = match pool {
            EPool::Avg => avg3(x, true),
            EPool::AvgNoPad => avg3(x, false),
            EPool::Max => x.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false),
        };
        Tensor::cat(
            &[
                self.b1.f(x),
                self.b3_2a.f(&b3),
                self.b3_2b.f(&b3),
                self.d3a.f(&d),
                self.d3b.f(&d),
                self.pool.f(&pooled),
            ],
            1,
        )
    }
}

/// Inception-v3 up to `Mixed_6e` (the 17x17 features AttnGAN's DAMSM takes
/// as regions). Eval mode: BatchNorm uses its running statistics.
#[derive(Debug)]
pub struct InceptionLower {
    pub variant: Variant,
    stem: [Basic; 5],
    mixed_5: [BlockA; 3],
    mixed_6a: BlockB,
    mixed_6: [BlockC; 4],
}

/// Inception-v3 from `Mixed_7a` to `Mixed_7c` (before the global pool).
#[derive(Debug)]
pub struct InceptionUpper {
    pub variant: Variant,
    mixed_7a: BlockD,
    mixed_7b: BlockE,
    mixed_7c: BlockE,
}

impl InceptionLower {
    fn new(p: &nn::Path, variant: Variant) -> Self {
        Self {
            variant,
            stem: [
                Basic::sq(p / "Conv2d_1a_3x3", 3, 32, 3, 2, 0),
                Basic::sq(p / "Conv2d_2a_3x3", 32, 32, 3, 1, 0),
                Basic::sq(p / "Conv2d_2b_3x3", 32, 64, 3, 1, 1),
                Basic::sq(p / "Conv2d_3b_1x1", 64, 80, 1, 1, 0),
                Basic::sq(p / "Conv2d_4a_3x3", 80, 192, 3, 1, 0),
            ],
            mixed_5: [
                BlockA::new(p / "Mixed_5b", 192, 32),
                BlockA::new(p / "Mixed_5c", 256, 64),
                BlockA::new(p / "Mixed_5d", 288, 64),
            ],
            mixed_6a: BlockB::new(p / "Mixed_6a", 288),
            mixed_6: [
                BlockC::new(p / "Mixed_6b", 768, 128),
                BlockC::new(p / "Mixed_6c", 768, 160),
                BlockC::new(p / "Mixed_6d", 768, 160),
                BlockC::new(p / "Mixed_6e", 768, 192),
            ],
        }
    }
}

impl ModuleT for InceptionLower {
    /// # Shapes
    /// `[batch, 3, 299, 299]` -> `[batch, 768, 17, 17]`
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let v = self.variant;
        let s = &self.stem;
        let mut h = s[2].f(&s[1].f(&s[0].f(x))); // [batch, 64, 147, 147]
        h = max3s2(&h); // 73x73
        h = s[4].f(&s[3].f(&h)); // [batch, 192, 71, 71]
        h = max3s2(&h); // 35x35
        for b in &self.mixed_5 {
            h = b.f(&h, v); // [batch, 288, 35, 35]
        }
        h = self.mixed_6a.f(&h); // [batch, 768, 17, 17]
        for b in &self.mixed_6 {
            h = b.f(&h, v);
        }
        h
    }
}

impl InceptionUpper {
    fn new(p: &nn::Path, variant: Variant) -> Self {
        Self {
            variant,
            mixed_7a: BlockD::new(p / "Mixed_7a", 768),
            mixed_7b: BlockE::new(p / "Mixed_7b", 1280),
            mixed_7c: BlockE::new(p / "Mixed_7c", 2048),
        }
    }
}

impl ModuleT for InceptionUpper {
    /// # Shapes
    /// `[batch, 768, 17, 17]` -> `[batch, 2048, 8, 8]`
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let h = self.mixed_7a.f(x); // [batch, 1280, 8, 8]
        let (pool_b, pool_c) = match self.variant {
            Variant::Fid => (EPool::AvgNoPad, EPool::Max),
            Variant::Torchvision => (EPool::Avg, EPool::Avg),
        };
        let h = self.mixed_7b.f(&h, pool_b);
        self.mixed_7c.f(&h, pool_c)
    }
}

/// Inception-v3 without the auxiliary classifier.
#[derive(Debug)]
pub struct InceptionV3 {
    pub variant: Variant,
    lower: InceptionLower,
    upper: InceptionUpper,
    /// The classifier (absent in [`InceptionV3::body`]).
    fc: Option<nn::Linear>,
}

/// Outputs of [`InceptionV3::forward`].
#[derive(Debug)]
pub struct InceptionOutput {
    /// `[batch, 2048]` (after the global average pool).
    pub pool: Tensor,
    /// `[batch, classes]`
    pub logits: Tensor,
}

impl InceptionV3 {
    /// The whole network, classifier included.
    pub fn new(p: nn::Path, variant: Variant) -> Self {
        let fc = nn::linear(&p / "fc", 2048, variant.classes(), Default::default());
        Self {
            fc: Some(fc),
            ..Self::body(p, variant)
        }
    }

    /// The convolutional body without the classifier (as AttnGAN's DAMSM
    /// image encoder embeds it).
    pub fn body(p: nn::Path, variant: Variant) -> Self {
        let (lower, upper) = Self::split(&p, variant);
        Self {
            variant,
            lower,
            upper,
            fc: None,
        }
    }

    /// The body in two parts, `Mixed_6e` between them.
    pub fn split(p: &nn::Path, variant: Variant) -> (InceptionLower, InceptionUpper) {
        (
            InceptionLower::new(p, variant),
            InceptionUpper::new(p, variant),
        )
    }

    /// Resizes images in [-1, 1] to 299x299 (bilinear) and applies the
    /// variant's input scaling. `[batch, 3, h, w]` -> `[batch, 3, 299, 299]`
    pub fn prepare(&self, images: &Tensor) -> Tensor {
        let x = images.to_kind(Kind::Float);
        let x = if x.size()[2..] == [299, 299] {
            x
        } else {
            x.upsample_bilinear2d([299, 299], false, None, None)
        };
        match self.variant {
            Variant::Fid => x,
            Variant::Torchvision => {
                let dev = x.device();
                let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406])
                    .view([1, 3, 1, 1])
                    .to_device(dev);
                let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225])
                    .view([1, 3, 1, 1])
                    .to_device(dev);
                ((x + 1.0) / 2.0 - mean) / std
            }
        }
    }

    /// Eval-mode forward of prepared input (see [`InceptionV3::prepare`]).
    ///
    /// # Shapes
    /// `[batch, 3, 299, 299]` -> pool `[batch, 2048]`, logits `[batch, classes]`.
    pub fn forward(&self, x: &Tensor) -> InceptionOutput {
        let (_, pool) = self.forward_body(x);
        let logits = match &self.fc {
            Some(fc) => pool.apply(fc),
            None => Tensor::zeros([pool.size()[0], 0], (Kind::Float, pool.device())),
        };
        InceptionOutput { pool, logits }
    }

    /// The 17x17 features after `Mixed_6e` and the pooled 2048-d features.
    ///
    /// # Shapes
    /// `[batch, 3, 299, 299]` -> `[batch, 768, 17, 17]`, `[batch, 2048]`.
    pub fn forward_body(&self, x: &Tensor) -> (Tensor, Tensor) {
        let mixed_6e = self.lower.forward_t(x, false); // [batch, 768, 17, 17]
        let h = self.upper.forward_t(&mixed_6e, false); // [batch, 2048, 8, 8]
        let pool = h.mean_dim([2i64, 3].as_slice(), false, Kind::Float); // [batch, 2048]
        (mixed_6e, pool)
    }

    /// Features of images in [-1, 1] in chunks of `chunk` (no gradients).
    pub fn features(&self, images: &Tensor, chunk: i64) -> InceptionOutput {
        tch::no_grad(|| {
            let dev = self.lower.stem[0].conv.ws.device();
            let (mut pools, mut logits) = (Vec::new(), Vec::new());
            for part in images.split(chunk.max(1), 0) {
                let o = self.forward(&self.prepare(&part.to_device(dev)));
                pools.push(o.pool);
                logits.push(o.logits);
            }
            InceptionOutput {
                pool: Tensor::cat(&pools, 0),
                logits: Tensor::cat(&logits, 0),
            }
        })
    }
}

/// A weight file (`.pth` of either format, or `.safetensors`) loaded into a
/// new network: every floating-point tensor must be present with its shape
/// (`num_batches_tracked` may be absent, as in older PyTorch files).
pub fn load(
    path: &std::path::Path,
    variant: Variant,
    device: tch::Device,
) -> crate::Result<(nn::VarStore, InceptionV3)> {
    let w = crate::import::read_weights(path)?;
    let vs = nn::VarStore::new(device);
    let net = InceptionV3::new(vs.root(), variant);
    crate::import::load_lenient(
        &vs,
        &w,
        &format!("{} (Inception-v3, {variant:?} variant)", path.display()),
    )?;
    Ok((vs, net))
}
