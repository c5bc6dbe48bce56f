//! The project's image classifier: the feature network of the evaluation
//! suite when the standard Inception-v3 weights are absent.
//! The papers score CUB with an Inception-v3
//! fine-tuned on CUB (StackGAN, AttnGAN); this plays that part: a VGG-style
//! CNN trained by `t2i train --model classifier` on the training split's
//! classes. Its softmax gives the Inception Score's p(y|x), its pooled
//! features FID and KID, always labelled with its name.

use crate::layers::{self, InitKind};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// Sizes of the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Input side in pixels (images are resized to it).
    pub image_size: i64,
    /// Channels of the first stage; each of the 4 stages doubles them.
    pub width: i64,
    /// Number of classes (set from the training split).
    pub classes: i64,
    /// Dropout before the class layer.
    pub dropout: f64,
}

impl ClassifierConfig {
    /// 64x64 input, width 32 (features of 256): trains in minutes on a CPU.
    pub fn tiny() -> Self {
        Self {
            image_size: 64,
            width: 32,
            classes: 0,
            dropout: 0.3,
        }
    }
    /// Size of the pooled feature vector (what FID and KID use).
    pub fn feature_dim(&self) -> i64 {
        self.width * 8
    }
}

/// Conv 3x3 - BN - ReLU, twice, then 2x2 max pooling: one stage (also the
/// body of DAMSM's `vgg` image encoder, which can start from these weights).
pub fn stage(p: nn::Path, cin: i64, cout: i64) -> nn::SequentialT {
    let mut s = nn::seq_t();
    for (i, c) in [(0, cin), (1, cout)] {
        s = s
            .add(layers::conv2d(
                &p / format!("conv{i}"),
                c,
                cout,
                3,
                1,
                1,
                false,
                InitKind::PyTorch,
            ))
            .add(layers::batch_norm2d(
                &p / format!("bn{i}"),
                cout,
                InitKind::PyTorch,
            ))
            .add_fn(|x| x.relu());
    }
    s.add_fn(|x| x.max_pool2d_default(2))
}

/// The classifier: four stages, global average pooling, a linear class layer.
pub struct Classifier {
    body: nn::SequentialT,
    head: nn::Linear,
    dropout: f64,
}

/// What the classifier gives for a batch.
pub struct ClassifierOutput {
    /// Pooled features. `[batch, feature_dim]`
    pub pool: Tensor,
    /// Class logits. `[batch, classes]`
    pub logits: Tensor,
}

impl Classifier {
    pub fn new(p: nn::Path, c: &ClassifierConfig) -> Self {
        let mut body = nn::seq_t();
        let mut ch = 3;
        for k in 0..4 {
            let out = c.width << k;
            body = body.add(stage(&p / format!("stage{k}"), ch, out));
            ch = out;
        }
        let head = layers::linear(&p / "head", ch, c.classes, true, InitKind::PyTorch);
        Self {
            body,
            head,
            dropout: c.dropout,
        }
    }

    /// # Shapes
    /// `x`: `[batch, 3, size, size]` in [-1, 1] -> pool `[batch, width*8]`,
    /// logits `[batch, classes]`
    pub fn forward_t(&self, x: &Tensor, train: bool) -> ClassifierOutput {
        let f = self.body.forward_t(x, train); // [batch, width*8, size/16, size/16]
        let pool = f.mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float); // [batch, width*8]
        let logits = pool.dropout(self.dropout, train).apply(&self.head);
        ClassifierOutput { pool, logits }
    }

    /// Class logits only (inference).
    pub fn logits(&self, x: &Tensor) -> Tensor {
        self.head.forward(&self.forward_t(x, false).pool)
    }
}
