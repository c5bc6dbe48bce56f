//! Shapes metrics (`spec/evaluation.md`): colour, shape, joint (colour AND
//! shape), size and position accuracy of generated objects, read by the
//! analytic checker; style-transfer background retention.

use crate::data::checker::{agreement, check};
use crate::data::shapes::{Shapes, Split};
use crate::error::Result;
use crate::imageio::tensor_to_images;
use crate::train::gan_int_cls::{style_transfer, GanIntClsModel};
use serde::Serialize;

/// Accuracies over the objects of `samples` generated images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ShapesScores {
    pub split: &'static str,
    pub samples: usize,
    pub objects: usize,
    /// An object was found at all.
    pub found: f64,
    pub colour: f64,
    pub shape: f64,
    /// Colour AND shape right.
    pub joint: f64,
    pub size: f64,
    pub position: f64,
    /// Rows: the requested shape (circle, square, triangle); columns: the
    /// shape read (same order), then "no object found".
    pub shape_confusion: [[usize; 4]; 3],
}

impl ShapesScores {
    /// Chance level of the joint accuracy (8 colours x 3 shapes).
    pub const JOINT_CHANCE: f64 = 1.0 / 24.0;
}

#[derive(Default)]
struct Tally {
    objects: usize,
    found: usize,
    colour: usize,
    shape: usize,
    joint: usize,
    size: usize,
    position: usize,
    confusion: [[usize; 4]; 3],
}

impl Tally {
    fn add(&mut self, a: &crate::data::checker::Agreement) {
        self.objects += 1;
        self.found += usize::from(a.found);
        self.colour += usize::from(a.colour);
        self.shape += usize::from(a.shape);
        self.joint += usize::from(a.joint());
        self.size += usize::from(a.size);
        self.position += usize::from(a.position);
        let col = a.read_shape.unwrap_or(3).min(3);
        self.confusion[a.wanted_shape.min(2)][col] += 1;
    }
    fn scores(&self, split: &'static str, samples: usize) -> ShapesScores {
        let f = |k: usize| k as f64 / self.objects.max(1) as f64;
        ShapesScores {
            split,
            samples,
            objects: self.objects,
            found: f(self.found),
            colour: f(self.colour),
            shape: f(self.shape),
            joint: f(self.joint),
            size: f(self.size),
            position: f(self.position),
            shape_confusion: self.confusion,
        }
    }
}

/// Generates one image per caption of the first `n` images of `split`
/// (caption `k % captions` of image `k`, noise from `seed`) and scores them.
pub fn shapes_accuracy(
    model: &GanIntClsModel,
    shapes: &Shapes,
    split: Split,
    n: usize,
    seed: u64,
) -> Result<ShapesScores> {
    let size = shapes.config.image_size;
    let max_obj = shapes.config.max_objects as usize;
    let mut tally = Tally::default();
    let mut k = 0;
    while k < n {
        let m = (n - k).min(100);
        let samples: Vec<_> = (k..k + m).map(|i| shapes.sample(split, i)).collect();
        let caps: Vec<&str> = samples
            .iter()
            .enumerate()
            .map(|(j, s)| s.captions[(k + j) % s.captions.len()].as_str())
            .collect();
        let (h, _) = model.embed(&caps)?;
        let z = model.noise(m as i64, seed.wrapping_add(k as u64));
        let images = tensor_to_images(&model.generate(&z, &h));
        for (s, img) in samples.iter().zip(&images) {
            let reading = check(&img.data, size, max_obj);
            for a in agreement(&s.objects, &reading) {
                tally.add(&a);
            }
        }
        k += m;
    }
    Ok(tally.scores(split.name(), n))
}

/// Style transfer scores (sec. 5.3 of GAN-INT-CLS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StyleTransferScores {
    pub pairs: usize,
    /// The output keeps the query image's background colour.
    pub background_kept: f64,
    /// The output's object has the new caption's colour and shape.
    pub content_joint: f64,
    /// Both at once.
    pub both: f64,
}

/// Query image `i` of the test split, new caption from test image `i + 1`.
pub fn style_transfer_scores(
    model: &GanIntClsModel,
    shapes: &Shapes,
    n: usize,
) -> Result<StyleTransferScores> {
    let size = shapes.config.image_size;
    let max_obj = shapes.config.max_objects as usize;
    let (mut kept, mut joint, mut both) = (0usize, 0usize, 0usize);
    let mut k = 0;
    while k < n {
        let m = (n - k).min(100);
        let queries: Vec<_> = (k..k + m).map(|i| shapes.sample(Split::Test, i)).collect();
        let targets: Vec<_> = (k..k + m)
            .map(|i| shapes.sample(Split::Test, i + n))
            .collect();
        let q: Vec<&[u8]> = queries.iter().map(|s| s.pixels.as_slice()).collect();
        let caps: Vec<&str> = targets.iter().map(|s| s.captions[0].as_str()).collect();
        let out = tensor_to_images(&style_transfer(model, &q, size, &caps)?);
        for ((qs, ts), img) in queries.iter().zip(&targets).zip(&out) {
            let r = check(&img.data, size, max_obj);
            let bg = r.background == qs.background;
            let content = agreement(&ts.objects, &r).iter().all(|a| a.joint());
            kept += usize::from(bg);
            joint += usize::from(content);
            both += usize::from(bg && content);
        }
        k += m;
    }
    let f = |x: usize| x as f64 / n.max(1) as f64;
    Ok(StyleTransferScores {
        pairs: n,
        background_kept: f(kept),
        content_joint: f(joint),
        both: f(both),
    })
}

/// Style AU-ROC (GAN-INT-CLS sec. 5.2, spec/evaluation.md): pairs of `n` real
/// test images, positive when they share their style cluster (on shapes, the
/// background colour); scored by the cosine of their style vectors S(x).
pub fn style_auroc(model: &GanIntClsModel, shapes: &Shapes, n: usize) -> Result<Option<f64>> {
    let size = shapes.config.image_size;
    let samples: Vec<_> = (0..n).map(|i| shapes.sample(Split::Test, i)).collect();
    let px: Vec<&[u8]> = samples.iter().map(|s| s.pixels.as_slice()).collect();
    let x = crate::imageio::images_to_tensor(&px, size);
    let s = model.style(&x).to_device(tch::Device::Cpu); // [n, z]
    let s = &s / s.norm_scalaropt_dim(2, [1i64], true).clamp_min(1e-12);
    let cos: Vec<f64> =
        Vec::<f64>::try_from(s.matmul(&s.tr()).to_kind(tch::Kind::Double).view([-1]))
            .map_err(|e| crate::Error::Config(e.to_string()))?;
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        for j in i + 1..n {
            scores.push(cos[i * n + j]);
            labels.push(samples[i].background == samples[j].background);
        }
    }
    Ok(super::stats::auroc(&scores, &labels))
}
