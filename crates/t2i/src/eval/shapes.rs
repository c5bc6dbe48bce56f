//! Shapes metrics: colour, shape, joint (colour AND
//! shape), size and position accuracy of generated objects, read by the
//! analytic checker; style-transfer background retention.

use crate::data::checker::{agreement, check};
use crate::data::shapes::{Shapes, ShapesConfig, Split};
use crate::error::Result;
use crate::family::Generator;
use crate::imageio::tensor_to_images;
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

/// GAWWN control agreement of one requested object (box IoU / keypoint
/// error).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Control {
    /// IoU of the drawn object's box with the requested box (0 if not found).
    pub iou: f32,
    /// Mean distance of the drawn keypoints to the requested ones, as a
    /// fraction of the canvas side; `None` when no object was found.
    pub keypoint_error: Option<f32>,
    /// Distance of the drawn box's centre to the requested centre, as a
    /// fraction of the canvas side; `None` when no object was found.
    pub centre_error: Option<f32>,
    /// Drawn height minus requested height (bottom minus top keypoint), as
    /// a fraction of the canvas side; `None` when no object was found.
    pub height_error: Option<f32>,
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
                    centre_error: None,
                    height_error: None,
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
            let centre = ((drawn.cx - w.cx).powi(2) + (drawn.cy - w.cy).powi(2)).sqrt();
            Control {
                iou: iou(w.bbox(), b),
                keypoint_error: Some(err),
                centre_error: Some(centre / size as f32),
                height_error: Some(((b[3] - b[1]) - 2.0 * w.r) / size as f32),
            }
        })
        .collect()
}

/// Images of `captions` for `samples`: a layout-conditioned model (GAWWN)
/// is given each sample's first object's box or keypoints, so its scores
/// measure drawing there; other models draw from the text alone.
pub fn generate_for(
    model: &dyn Generator,
    samples: &[crate::data::shapes::ShapesSample],
    captions: &[&str],
    seed: u64,
) -> Result<crate::family::Generated> {
    use crate::family::Layout;
    let ctl = model.controls();
    if !(ctl.boxes || ctl.keypoints) {
        return model.generate(captions, seed);
    }
    let size = model.image_size() as f32;
    let layouts: Vec<Layout> = samples
        .iter()
        .map(|s| {
            let o = &s.objects[0];
            if ctl.boxes {
                Layout::Box(o.box_fraction(size))
            } else {
                Layout::Keypoints(o.keypoint_fractions(size).map(Some).to_vec())
            }
        })
        .collect();
    model.generate_at(captions, &layouts, seed)
}

/// The `k`-th of a sample's captions that name every attribute (cycling;
/// the first caption always does).
pub fn full_caption(s: &crate::data::shapes::ShapesSample, k: usize) -> &str {
    let full: Vec<usize> = (0..s.captions.len())
        .filter(|&i| s.specs[i].is_full())
        .collect();
    match full.as_slice() {
        [] => &s.captions[0],
        f => &s.captions[f[k % f.len()]],
    }
}

/// Generates one image per image of the first `n` images of `split` (for
/// image `k`, the `k`-th of its captions that name every attribute, see
/// [`full_caption`]; noise from `seed`) and scores them.
pub fn shapes_accuracy(
    model: &dyn Generator,
    shapes: &Shapes,
    split: Split,
    n: usize,
    seed: u64,
) -> Result<ShapesScores> {
    Ok(stage_accuracy(model, shapes, split, n, seed)?.scores)
}

/// The scores of one split by [`stage_accuracy`].
pub struct StageScores {
    /// The final images'.
    pub scores: ShapesScores,
    /// The first stage's of a multi-stage model.
    pub first_stage: Option<ShapesScores>,
    /// What Compositional Attribute Adjustment corrected in each sample
    /// (StyleT2I with CAA on).
    pub corrected: Option<Vec<Vec<String>>>,
}

/// As [`shapes_accuracy`], with the first stage's images of a multi-stage
/// model scored too (upsampled to the final size), and what CAA corrected.
pub fn stage_accuracy(
    model: &dyn Generator,
    shapes: &Shapes,
    split: Split,
    n: usize,
    seed: u64,
) -> Result<StageScores> {
    let size = shapes.config.image_size;
    let max_obj = shapes.config.max_objects as usize;
    let mut tally = Tally::default();
    let mut first = None::<Tally>;
    let mut corrected = None::<Vec<Vec<String>>>;
    let mut k = 0;
    while k < n {
        let m = (n - k).min(100);
        let samples: Vec<_> = (k..k + m).map(|i| shapes.sample(split, i)).collect();
        let caps: Vec<&str> = samples
            .iter()
            .enumerate()
            .map(|(j, s)| full_caption(s, k + j))
            .collect();
        let out = generate_for(model, &samples, &caps, seed.wrapping_add(k as u64))?;
        if let Some(fixed) = &out.corrected {
            corrected
                .get_or_insert_with(Vec::new)
                .extend(fixed.iter().cloned());
        }
        let mut stages = vec![(tensor_to_images(&out.images), &mut tally)];
        if let Some(f) = &out.first_stage {
            let s = size as i64;
            let up = f.upsample_nearest2d([s, s], None, None);
            stages.push((
                tensor_to_images(&up),
                first.get_or_insert_with(Tally::default),
            ));
        }
        for (images, tally) in stages {
            for (s, img) in samples.iter().zip(&images) {
                let reading = check(&img.data, size, max_obj);
                for a in agreement(&s.objects, &reading) {
                    tally.add(&a);
                }
                for c in control(&s.objects, &reading, size) {
                    tally.add_control(&c);
                }
            }
        }
        k += m;
    }
    Ok(StageScores {
        scores: tally.scores(split.name(), n),
        first_stage: first.map(|t| t.scores(split.name(), n)),
        corrected,
    })
}

/// [`checker_scores`] and the family's own shapes report
/// ([`Generator::shapes_report`]: `family` and `family_lines`).
pub fn evaluate(
    model: &dyn Generator,
    data: &crate::data::shapes::ShapesConfig,
    n: usize,
    seed: u64,
) -> Result<serde_json::Value> {
    let mut v = checker_scores(model, data, n, seed)?;
    if let Some(r) = model.shapes_report(n, seed)? {
        v["family"] = r.value;
        v["family_lines"] = serde_json::json!(r.lines);
    }
    Ok(v)
}

/// The checker's scores of a generator on the shapes data set `data`:
/// held-in captions, held-out compositions, the first stage of a
/// multi-stage model, and for a model with a trained style encoder, style
/// transfer and the style AU-ROC.
pub fn checker_scores(
    model: &dyn Generator,
    data: &crate::data::shapes::ShapesConfig,
    n: usize,
    seed: u64,
) -> Result<serde_json::Value> {
    use serde_json::json;
    let shapes = Shapes::new(crate::data::shapes::ShapesConfig {
        test_size: data.test_size.max(2 * n),
        image_size: model.image_size() as u32,
        ..data.clone()
    })?;
    let held_in = stage_accuracy(model, &shapes, Split::Test, n, seed)?;
    let held_out = stage_accuracy(model, &shapes, Split::HeldOut, n, seed)?;
    let mut v = json!({
        "protocol": format!("{n} samples per split, one caption per test image, noise seed {seed}, analytic shapes checker"),
        "held_in": held_in.scores,
        "held_out": held_out.scores,
        "joint_chance": ShapesScores::JOINT_CHANCE,
    });
    if let Some(f) = held_in.first_stage {
        v["first_stage"] = json!(f);
    }
    for (key, split) in [("held_in", &held_in), ("held_out", &held_out)] {
        if let Some(fixed) = &split.corrected {
            v["caa"][key] = crate::eval::dataset::caa_report(fixed);
        }
    }
    let ctl = model.controls();
    if ctl.boxes || ctl.keypoints {
        v["control"] = json!(crate::eval::control::control_scores(model, data, n, seed)?);
    }
    if ctl.keypoints {
        v["completion"] = json!(keypoint_completion(model, &shapes, n.min(200), seed)?);
    }
    if ctl.style_transfer {
        let k = n.clamp(2, 200);
        if let Some(auroc) = style_auroc(model, &shapes, k)? {
            v["style_transfer"] = json!(style_transfer_scores(model, &shapes, n.min(300))?);
            v["style_auroc"] = json!({
                "auroc": auroc,
                "images": k,
                "protocol": "all pairs of real held-in test images, positive when they share the background colour (the style cluster), scored by the cosine of S(x)",
            });
        }
    }
    Ok(v)
}

/// G_k's completions of one keypoint of the first `n` test objects, against
/// the test split's sets and the mean of the training split's.
fn keypoint_completion(
    model: &dyn Generator,
    shapes: &Shapes,
    n: usize,
    seed: u64,
) -> Result<crate::eval::control::CompletionScores> {
    use crate::eval::control::{completion_scores, mean_set, KeypointSet};
    let size = shapes.config.image_size as f32;
    let set = |s: &crate::data::shapes::ShapesSample| -> KeypointSet {
        s.objects[0].keypoint_fractions(size).map(Some).to_vec()
    };
    let test: Vec<_> = (0..n).map(|i| shapes.sample(Split::Test, i)).collect();
    let train: Vec<KeypointSet> = (0..shapes.len(Split::Train).min(1000))
        .map(|i| set(&shapes.sample(Split::Train, i)))
        .collect();
    let captions: Vec<String> = test.iter().map(|s| s.captions[0].clone()).collect();
    let real: Vec<KeypointSet> = test.iter().map(set).collect();
    completion_scores(model, &captions, &real, &mean_set(&train), seed)
}

/// The lines that show an [`evaluate`] result.
pub fn summary_lines(v: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let pct = |x: &Value| {
        x.as_f64()
            .map(|f| format!("{:5.1}%", 100.0 * f))
            .unwrap_or_else(|| "  n/a".into())
    };
    let mut lines = Vec::new();
    for key in ["untrained", "held_in", "held_out", "first_stage"] {
        let Some(s) = v.get(key) else { continue };
        lines.push(format!(
            "{:<10} colour {}  shape {}  joint colour+shape {}  size {}  position {}  ({} samples)",
            key,
            pct(&s["colour"]),
            pct(&s["shape"]),
            pct(&s["joint"]),
            pct(&s["size"]),
            pct(&s["position"]),
            s["samples"]
        ));
        if let Some(c) = v.get("caa").and_then(|c| c.get(key)) {
            lines.push(format!("{:<10} {}", "", crate::eval::dataset::caa_line(c)));
        }
        if let Some(m) = s["shape_confusion"].as_array() {
            let names = ["circle", "square", "triangle"];
            let rows: Vec<String> = m
                .iter()
                .zip(names)
                .map(|(r, n)| format!("{n} -> {r}"))
                .collect();
            lines.push(format!(
                "{:<10} shapes drawn [circle, square, triangle, none]: {}",
                "",
                rows.join("  ")
            ));
        }
    }
    if let Some(c) = v.get("control") {
        let parse = |c: &Value| {
            serde_json::from_value::<Vec<crate::eval::control::ControlScores>>(c.clone()).ok()
        };
        if let Some(scores) = parse(c) {
            let untrained = v.get("untrained_control").and_then(parse);
            lines.extend(crate::eval::control::summary_lines(
                &scores,
                untrained.as_deref(),
            ));
        }
    }
    if let Some(c) = v
        .get("completion")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
    {
        lines.push(crate::eval::control::completion_line(&c));
    }
    if let Some(a) = v.get("style_auroc") {
        lines.push(format!(
            "style AU-ROC (same background vs different, cosine of S(x), {} images): {}",
            a["images"],
            a["auroc"]
                .as_f64()
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "n/a".into())
        ));
    }
    if let Some(s) = v.get("style_transfer") {
        lines.push(format!(
            "style transfer: background kept {}  new content (colour+shape) {}  both {}  ({} pairs)",
            pct(&s["background_kept"]),
            pct(&s["content_joint"]),
            pct(&s["both"]),
            s["pairs"]
        ));
    }
    if let Some(l) = v.get("family_lines").and_then(|l| l.as_array()) {
        lines.extend(l.iter().filter_map(|x| x.as_str().map(str::to_string)));
    }
    lines
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
    model: &dyn Generator,
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
        let query = crate::imageio::images_to_tensor(&q, size);
        let out = tensor_to_images(&model.style_transfer(&query, &caps)?);
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

/// Style AU-ROC (GAN-INT-CLS sec. 5.2): pairs of `n` real
/// test images, positive when they share their style cluster (on shapes, the
/// background colour); scored by the cosine of their style vectors S(x).
pub fn style_auroc(model: &dyn Generator, shapes: &Shapes, n: usize) -> Result<Option<f64>> {
    let size = shapes.config.image_size;
    let samples: Vec<_> = (0..n).map(|i| shapes.sample(Split::Test, i)).collect();
    let px: Vec<&[u8]> = samples.iter().map(|s| s.pixels.as_slice()).collect();
    let x = crate::imageio::images_to_tensor(&px, size);
    let Some(s) = model.style_codes(&x)? else {
        return Ok(None);
    };
    let s = s.to_device(tch::Device::Cpu); // [n, z]
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

/// The shapes data set a checkpoint was trained on (its `data` metadata,
/// else the default set).
pub fn shapes_data(
    ck: &crate::checkpoint::Checkpoint,
) -> Result<crate::data::shapes::ShapesConfig> {
    match ck.meta.get("data") {
        Some(d) => toml::from_str(d)
            .map_err(|e| crate::Error::Checkpoint(format!("checkpoint data config: {e}"))),
        None => Ok(Default::default()),
    }
}

/// What the shapes checker reads in a backbone's samples, beside the same
/// reading of the training images: a StyleT2I direction can only reach the
/// colours and shapes its backbone draws.
#[derive(Debug, Clone, Serialize)]
pub struct BackboneReading {
    /// Samples read (and training images read).
    pub samples: usize,
    /// Share of samples in which the checker finds an object.
    pub readable: f64,
    /// Shares of circle, square and triangle among the largest objects of
    /// the samples.
    pub shapes: [f64; 3],
    /// The same among the training images.
    pub data_shapes: [f64; 3],
    /// Total-variation distance between the (colour, shape) of the largest
    /// object in samples and in training images (0: the same distribution,
    /// 1: disjoint; an unreadable sample counts as its own outcome).
    pub pair_distance: f64,
}

impl BackboneReading {
    pub fn lines(&self) -> Vec<String> {
        let pct = |v: [f64; 3]| {
            format!(
                "circle {:.1}%, square {:.1}%, triangle {:.1}%",
                100.0 * v[0],
                100.0 * v[1],
                100.0 * v[2]
            )
        };
        vec![
            format!(
                "checker on {} samples: an object found in {:.1}%; largest objects {}",
                self.samples,
                100.0 * self.readable,
                pct(self.shapes)
            ),
            format!(
                "training images: {}; colour-shape distance to them {:.3} (total variation)",
                pct(self.data_shapes),
                self.pair_distance
            ),
        ]
    }
}

/// Reads `n` samples of an unconditional generator (a `stylegan2`
/// backbone) and `n` training images of `data` with the checker.
pub fn read_unconditional(
    g: &dyn Generator,
    data: &ShapesConfig,
    n: usize,
    seed: u64,
) -> Result<BackboneReading> {
    use crate::data::shapes::{COLOURS, SHAPES};
    let size = g.image_size() as u32;
    let max_objects = data.max_objects;
    let shapes = Shapes::new(ShapesConfig {
        image_size: size,
        ..data.clone()
    })?;
    let bins = COLOURS.len() * SHAPES.len() + 1;
    // histogram of the largest object's (colour, shape); the last bin: none
    let tally = |pixels: &[u8], hist: &mut Vec<f64>| {
        let r = check(pixels, size, max_objects as usize);
        let bin = r
            .objects
            .first()
            .map_or(bins - 1, |o| o.colour * SHAPES.len() + o.shape);
        hist[bin] += 1.0;
    };
    let mut ours = vec![0.0; bins];
    let mut theirs = vec![0.0; bins];
    // chunks of 64 samples, each with its own seed
    for (chunk, first) in (0..n).step_by(64).enumerate() {
        let k = (n - first).min(64);
        let out = g.generate(&vec![""; k], seed.wrapping_add(chunk as u64))?;
        for img in tensor_to_images(&out.images) {
            tally(&img.data, &mut ours);
        }
    }
    for i in 0..n.min(shapes.len(Split::Train)) {
        tally(&shapes.sample(Split::Train, i).pixels, &mut theirs);
    }
    let norm = |h: &mut Vec<f64>| {
        let t: f64 = h.iter().sum::<f64>().max(1.0);
        h.iter_mut().for_each(|v| *v /= t);
    };
    norm(&mut ours);
    norm(&mut theirs);
    let by_shape = |h: &[f64]| {
        let mut v = [0.0; 3];
        for (bin, p) in h[..bins - 1].iter().enumerate() {
            v[bin % SHAPES.len()] += p;
        }
        let t: f64 = v.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        v.map(|x| x / t)
    };
    Ok(BackboneReading {
        samples: n,
        readable: 1.0 - ours[bins - 1],
        shapes: by_shape(&ours),
        data_shapes: by_shape(&theirs),
        pair_distance: 0.5
            * ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>(),
    })
}
