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
    /// GAWWN control: mean IoU of the drawn object's box with the box of the
    /// test image's object (0 when none was found).
    pub box_iou: f64,
    /// GAWWN control: mean distance of the drawn keypoints (centre, top,
    /// bottom, left, right) to the requested ones, as a fraction of the
    /// canvas side (found objects only).
    pub keypoint_error: f64,
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
    iou: f64,
    keypoint: f64,
}

impl Tally {
    fn add_control(&mut self, c: &Control) {
        self.iou += c.iou as f64;
        self.keypoint += c.keypoint_error.unwrap_or(0.0) as f64;
    }
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
            box_iou: self.iou / self.objects.max(1) as f64,
            keypoint_error: self.keypoint / self.found.max(1) as f64,
        }
    }
}

/// GAWWN control agreement of one requested object (`spec/evaluation.md`:
/// box IoU / keypoint error).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Control {
    /// IoU of the drawn object's box with the requested box (0 if not found).
    pub iou: f32,
    /// Mean distance of the drawn keypoints to the requested ones, as a
    /// fraction of the canvas side; `None` when no object was found.
    pub keypoint_error: Option<f32>,
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    inter / (area(a) + area(b) - inter).max(1e-6)
}

/// Box IoU and keypoint error of each requested object against the object
/// the checker found nearest to it (as [`agreement`] matches them). The
/// drawn keypoints are those of the shape the checker read, fitted to the
/// drawn box.
pub fn control(
    wanted: &[crate::data::shapes::ShapeObject],
    reading: &crate::data::checker::Reading,
    size: u32,
) -> Vec<Control> {
    let mut used = vec![false; reading.objects.len()];
    wanted
        .iter()
        .map(|w| {
            let nearest = reading
                .objects
                .iter()
                .enumerate()
                .filter(|(i, _)| !used[*i])
                .min_by(|(_, a), (_, b)| {
                    let d = |o: &crate::data::checker::Detected| {
                        let (x, y) = ((o.bbox[0] + o.bbox[2]) / 2.0, (o.bbox[1] + o.bbox[3]) / 2.0);
                        (x - w.cx).powi(2) + (y - w.cy).powi(2)
                    };
                    d(a).total_cmp(&d(b))
                });
            let Some((i, d)) = nearest else {
                return Control {
                    iou: 0.0,
                    keypoint_error: None,
                };
            };
            used[i] = true;
            let b = d.bbox;
            let drawn = crate::data::shapes::ShapeObject {
                shape: d.shape,
                cx: (b[0] + b[2]) / 2.0,
                cy: (b[1] + b[3]) / 2.0,
                r: (b[2] - b[0]).max(b[3] - b[1]) / 2.0,
                ..*w
            };
            let err: f32 = w
                .keypoints()
                .iter()
                .zip(drawn.keypoints())
                .map(|(p, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
                .sum::<f32>()
                / 5.0
                / size as f32;
            Control {
                iou: iou(w.bbox(), b),
                keypoint_error: Some(err),
            }
        })
        .collect()
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
            for c in control(&s.objects, &reading, size) {
                tally.add_control(&c);
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
