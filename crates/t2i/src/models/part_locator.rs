//! The part locator: where the bird is in an image, to score GAWWN's
//! control on a real data set (Reed et al. 2016, "Learning What and Where to
//! Draw", asks for birds drawn in a box and with parts at keypoints; the
//! paper judges this by eye). A small CNN (the body of
//! [`crate::models::classifier`]) regresses the object's box and each
//! part's location and visibility; it is trained by t2i on the training
//! split's annotations (`t2i train --model part-locator`), and its figures
//! are always labelled as its own.

use crate::layers::{self, InitKind};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// Sizes of the part locator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartLocatorConfig {
    /// Input side in pixels (images are resized to it).
    pub image_size: i64,
    /// Channels of the first stage; each of the 4 stages doubles them.
    pub width: i64,
    /// Number of parts (set from the data set: 15 for CUB).
    pub parts: i64,
}

impl PartLocatorConfig {
    /// 64x64 input, width 32: trains in minutes on a CPU.
    pub fn tiny() -> Self {
        Self {
            image_size: 64,
            width: 32,
            parts: 0,
        }
    }
}

/// What the locator reads from a batch.
pub struct Located {
    /// `[x, y, w, h]` fractions of the image. `[batch, 4]`
    pub boxes: Tensor,
    /// Part locations, fractions of the image. `[batch, K, 2]`
    pub points: Tensor,
    /// Part visibility logits. `[batch, K]`
    pub visible: Tensor,
}

/// Four conv stages, a spatial feature map flattened into a linear head
/// (locations need the map's layout, not a pooled vector).
pub struct PartLocator {
    body: nn::SequentialT,
    head: nn::SequentialT,
    parts: i64,
}

impl PartLocator {
    pub fn new(p: nn::Path, c: &PartLocatorConfig) -> Self {
        let mut body = nn::seq_t();
        let mut ch = 3;
        for k in 0..4 {
            let out = c.width << k;
            body = body.add(crate::models::classifier::stage(
                &p / format!("stage{k}"),
                ch,
                out,
            ));
            ch = out;
        }
        let cells = (c.image_size / 16).pow(2);
        let head = nn::seq_t()
            .add(layers::linear(
                &p / "fc",
                ch * cells,
                256,
                true,
                InitKind::PyTorch,
            ))
            .add_fn(|x| x.relu())
            .add(layers::linear(
                &p / "out",
                256,
                4 + 3 * c.parts,
                true,
                InitKind::PyTorch,
            ));
        Self {
            body,
            head,
            parts: c.parts,
        }
    }

    /// # Shapes
    /// `x`: `[batch, 3, size, size]` in [-1, 1] -> [`Located`]
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Located {
        let f = self.body.forward_t(x, train).flatten(1, -1); // [batch, width*8*cells]
        let o = self.head.forward_t(&f, train); // [batch, 4 + 3K]
        let k = self.parts;
        let boxes = o.narrow(1, 0, 4).sigmoid(); // [batch, 4]
        let rest = o.narrow(1, 4, 3 * k).view([-1, k, 3]);
        Located {
            boxes,
            points: rest.narrow(2, 0, 2).sigmoid(), // [batch, K, 2]
            visible: rest.select(2, 2),             // [batch, K]
        }
    }
}

/// The locator's loss against annotations: smooth L1 on the box and on the
/// visible parts' locations, binary cross-entropy on visibility.
///
/// # Shapes
/// `boxes`: `[batch, 4]`, `keypoints`: `[batch, K, 3]` (x, y, visible)
pub fn loss(out: &Located, boxes: &Tensor, keypoints: &Tensor) -> Tensor {
    let vis = keypoints.select(2, 2); // [batch, K]
    let box_loss = out.boxes.smooth_l1_loss(boxes, tch::Reduction::Mean, 0.05);
    let d = (&out.points - keypoints.narrow(2, 0, 2)).abs(); // [batch, K, 2]
    let d = d.lt(0.05).to_kind(Kind::Float) * d.square() / 0.1
        + d.ge(0.05).to_kind(Kind::Float) * (&d - 0.025);
    let pts = (d.sum_dim_intlist([2i64].as_slice(), false, Kind::Float) * &vis).sum(Kind::Float)
        / vis.sum(Kind::Float).clamp_min(1.0);
    let vis_loss = out.visible.binary_cross_entropy_with_logits::<Tensor>(
        &vis,
        None,
        None,
        tch::Reduction::Mean,
    );
    box_loss + pts + 0.1 * vis_loss
}
