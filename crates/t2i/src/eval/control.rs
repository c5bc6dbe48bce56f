//! How well a layout-conditioned model (GAWWN, Reed et al. 2016, "Learning
//! What and Where to Draw") draws where it is told, on the shapes data set:
//! the analytic checker finds the drawn object and its box is compared with
//! the requested one (box IoU), its centre and height with the requested
//! keypoints, and its colour and shape with the caption.
//!
//! Two sets of requests: random boxes (the continuous-layout test split:
//! sizes over the whole range, anywhere they fit) and extreme boxes (the
//! four corners and the centre, at the smallest and the largest size), each
//! with a full caption that agrees with the box.

use crate::data::checker::{agreement, check};
use crate::data::shapes::{ShapeObject, Shapes, ShapesConfig, Split, CONTINUOUS_SIDES};
use crate::data::shapes_text::write_caption;
use crate::error::Result;
use crate::family::{Generator, Layout};
use crate::imageio::tensor_to_images;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Control scores of one group of requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlScores {
    /// Which requests (`random`, `corners, smallest` ...).
    pub group: String,
    pub samples: usize,
    /// An object was found at all.
    pub found: f64,
    /// Mean IoU of the drawn object's box with the requested box (0 when
    /// none was found).
    pub box_iou: f64,
    /// Colour AND shape as the caption says.
    pub joint: f64,
    /// Mean distance of the drawn centre to the requested one, in pixels
    /// of a 64x64 image (found objects).
    pub centre_error_px64: f64,
    /// Mean |drawn height - requested height| (the top-bottom keypoint
    /// distance), in pixels of a 64x64 image (found objects).
    pub height_error_px64: f64,
    /// Correlation of drawn and requested heights (found objects): 1 when
    /// the drawn extent follows the requested one exactly; `None` when the
    /// group asks for one size only.
    pub height_correlation: Option<f64>,
}

/// The extreme boxes of a canvas of side `size`: each corner and the
/// centre, at the smallest and the largest side of [`CONTINUOUS_SIDES`]
/// (as `[cx, cy, r]` in pixels, with their group name).
fn extreme_boxes(size: f32) -> Vec<(&'static str, [f32; 3])> {
    let mut out = Vec::new();
    for (name, frac) in [
        ("smallest", CONTINUOUS_SIDES.0),
        ("largest", CONTINUOUS_SIDES.1),
    ] {
        let r = (frac * size / 2.0).round().max(2.0);
        let (lo, hi, mid) = (r + 1.0, size - r - 1.0, size / 2.0);
        for (x, y) in [(lo, lo), (hi, lo), (lo, hi), (hi, hi)] {
            let group = if name == "smallest" {
                "corners, smallest"
            } else {
                "corners, largest"
            };
            out.push((group, [x, y, r]));
        }
        let group = if name == "smallest" {
            "centre, smallest"
        } else {
            "centre, largest"
        };
        out.push((group, [mid, mid, r]));
    }
    out
}

/// One request: the object to draw, its caption and its group.
struct Request {
    object: ShapeObject,
    caption: String,
    group: &'static str,
}

fn random_requests(shapes: &Shapes, n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let s = shapes.sample(Split::Test, i);
            Request {
                object: s.objects[0],
                caption: s.captions[0].clone(),
                group: "random",
            }
        })
        .collect()
}

/// `per_box` requests at each extreme box, colour and shape cycling over the
/// held-in pairs, each with a full caption that agrees with the box.
fn extreme_requests(shapes: &Shapes, per_box: usize, seed: u64) -> Vec<Request> {
    use crate::data::shapes::{COLOURS, SHAPES};
    let size = shapes.config.image_size as f32;
    let pairs: Vec<(usize, usize)> = (0..COLOURS.len())
        .flat_map(|c| (0..SHAPES.len()).map(move |s| (c, s)))
        .filter(|&(c, s)| !shapes.is_held_out(c, s))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (b, (group, place)) in extreme_boxes(size).into_iter().enumerate() {
        for k in 0..per_box {
            let (c, s) = pairs[(b * 7 + k) % pairs.len()];
            let object = ShapeObject::placed(c, s, place, size);
            let (caption, _) = write_caption(&mut rng, &[object], 0.0);
            out.push(Request {
                object,
                caption,
                group,
            });
        }
    }
    out
}

/// The layout that asks `model` for `o`: its box or its five keypoints.
fn layout_of(model: &dyn Generator, o: &ShapeObject, size: f32) -> Layout {
    if model.controls().boxes {
        Layout::Box(o.box_fraction(size))
    } else {
        Layout::Keypoints(o.keypoint_fractions(size).map(Some).to_vec())
    }
}

#[derive(Default)]
struct Tally {
    n: usize,
    found: usize,
    iou: f64,
    joint: usize,
    centre: f64,
    height: f64,
    pairs: Vec<(f64, f64)>,
}

impl Tally {
    fn scores(&self, group: &str) -> ControlScores {
        let nf = self.found.max(1) as f64;
        ControlScores {
            group: group.to_string(),
            samples: self.n,
            found: self.found as f64 / self.n.max(1) as f64,
            box_iou: self.iou / self.n.max(1) as f64,
            joint: self.joint as f64 / self.n.max(1) as f64,
            centre_error_px64: 64.0 * self.centre / nf,
            height_error_px64: 64.0 * self.height / nf,
            height_correlation: correlation(&self.pairs),
        }
    }
}

fn correlation(p: &[(f64, f64)]) -> Option<f64> {
    let n = p.len() as f64;
    if p.len() < 2 {
        return None;
    }
    let (mx, my) = (
        p.iter().map(|q| q.0).sum::<f64>() / n,
        p.iter().map(|q| q.1).sum::<f64>() / n,
    );
    let cov: f64 = p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum();
    let vx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
    let vy: f64 = p.iter().map(|q| (q.1 - my).powi(2)).sum();
    (vx > 1e-12 && vy > 1e-12).then(|| cov / (vx * vy).sqrt())
}

/// Scores a layout-conditioned `model` on `n` random boxes (or keypoint
/// sets) of the test split and on the extreme boxes (`n / 10` requests per
/// box, at least 10), noise from `seed`. Returns one [`ControlScores`] per
/// group: `random`, `extreme` (all extreme boxes), then each extreme group.
pub fn control_scores(
    model: &dyn Generator,
    data: &ShapesConfig,
    n: usize,
    seed: u64,
) -> Result<Vec<ControlScores>> {
    let shapes = Shapes::new(ShapesConfig {
        test_size: data.test_size.max(n),
        image_size: model.image_size() as u32,
        max_objects: 1,
        continuous_layout: true,
        ..data.clone()
    })?;
    let size = shapes.config.image_size;
    let mut requests = random_requests(&shapes, n);
    requests.extend(extreme_requests(&shapes, (n / 10).max(10), seed));
    let mut groups: Vec<(&'static str, Tally)> = Vec::new();
    for (k, chunk) in requests.chunks(100).enumerate() {
        let caps: Vec<&str> = chunk.iter().map(|r| r.caption.as_str()).collect();
        let layouts: Vec<Layout> = chunk
            .iter()
            .map(|r| layout_of(model, &r.object, size as f32))
            .collect();
        let out = model.generate_at(&caps, &layouts, seed.wrapping_add(k as u64))?;
        for (r, img) in chunk.iter().zip(tensor_to_images(&out.images)) {
            let reading = check(&img.data, size, 1);
            let a = agreement(&[r.object], &reading)[0];
            let c = crate::eval::shapes::control(&[r.object], &reading, size)[0];
            let add = |t: &mut Tally| {
                t.n += 1;
                t.iou += c.iou as f64;
                t.joint += usize::from(a.joint());
                if let (Some(ce), Some(he)) = (c.centre_error, c.height_error) {
                    t.found += 1;
                    t.centre += ce as f64;
                    t.height += he.abs() as f64;
                    let want = 2.0 * r.object.r as f64 / size as f64;
                    t.pairs.push((want, want + he as f64));
                }
            };
            let mut names = vec![r.group];
            if r.group != "random" {
                names.push("extreme");
            }
            for g in names {
                if !groups.iter().any(|(name, _)| *name == g) {
                    groups.push((g, Tally::default()));
                }
                if let Some((_, t)) = groups.iter_mut().find(|(name, _)| *name == g) {
                    add(t);
                }
            }
        }
    }
    let order = |g: &str| match g {
        "random" => 0,
        "extreme" => 1,
        _ => 2,
    };
    groups.sort_by_key(|(g, _)| order(g));
    Ok(groups.iter().map(|(g, t)| t.scores(g)).collect())
}

/// The lines that show [`control_scores`] (beside an untrained model's
/// box IoU when given).
pub fn summary_lines(scores: &[ControlScores], untrained: Option<&[ControlScores]>) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<18} {:>7} {:>8} {:>7} {:>10} {:>10} {:>8} {:>10}",
        "layout requests",
        "samples",
        "box IoU",
        "joint",
        "centre px",
        "height px",
        "h corr",
        "untrained"
    )];
    for s in scores {
        let base = untrained
            .and_then(|u| u.iter().find(|u| u.group == s.group))
            .map(|u| format!("{:.3}", u.box_iou))
            .unwrap_or_else(|| "-".into());
        lines.push(format!(
            "{:<18} {:>7} {:>8.3} {:>6.1}% {:>10.2} {:>10.2} {:>8} {:>10}",
            s.group,
            s.samples,
            s.box_iou,
            100.0 * s.joint,
            s.centre_error_px64,
            s.height_error_px64,
            s.height_correlation
                .map_or_else(|| "-".into(), |c| format!("{c:.3}")),
            base
        ));
    }
    lines.push("(centre and height errors in pixels of a 64x64 image; untrained: box IoU of the same networks before training)".into());
    lines
}

pub use crate::data::KeypointSet;

/// How plausible the keypoint generator's completions are (sec. 3.3 of
/// GAWWN): from one given keypoint of a real test set, G_k proposes the
/// rest; a plausible proposal lies near some real set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionScores {
    pub samples: usize,
    /// Mean distance (fraction of the side, over the parts both sets have)
    /// from a completed set to the nearest real test set.
    pub completed: f64,
    /// The same for sets of uniformly random points (the given keypoint
    /// kept).
    pub random: f64,
    /// The same for the training sets' mean (the given keypoint kept).
    pub training_mean: f64,
    /// Mean distance between the completions of two noise vectors (the
    /// parts not given): 0 would mean G_k ignores z.
    pub across_z: f64,
    /// Largest change of a given keypoint (0: kept exactly).
    pub given_moved: f64,
}

/// Mean distance over the parts both sets have (`None` when none).
fn set_distance(a: &[Option<[f32; 2]>], b: &[Option<[f32; 2]>]) -> Option<f64> {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(p, q)| {
            let (p, q) = (p.as_ref()?, q.as_ref()?);
            Some((((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)) as f64).sqrt())
        })
        .collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

fn nearest(set: &[Option<[f32; 2]>], real: &[KeypointSet]) -> f64 {
    real.iter()
        .filter_map(|r| set_distance(set, r))
        .fold(f64::INFINITY, f64::min)
}

/// The mean of each part over `sets` (parts never visible left out).
pub fn mean_set(sets: &[KeypointSet]) -> KeypointSet {
    let k = sets.first().map_or(0, Vec::len);
    (0..k)
        .map(|j| {
            let pts: Vec<[f32; 2]> = sets.iter().filter_map(|s| s[j]).collect();
            (!pts.is_empty()).then(|| {
                let n = pts.len() as f32;
                [
                    pts.iter().map(|p| p[0]).sum::<f32>() / n,
                    pts.iter().map(|p| p[1]).sum::<f32>() / n,
                ]
            })
        })
        .collect()
}

/// Scores `model`'s keypoint generator: for each test set `real[i]` (with
/// caption `captions[i]`), one of its visible keypoints is given (chosen
/// from `seed`) and the rest completed twice (two noise seeds); distances
/// go to the nearest of `real` other than `real[i]` itself.
pub fn completion_scores(
    model: &dyn Generator,
    captions: &[String],
    real: &[KeypointSet],
    training_mean: &[Option<[f32; 2]>],
    seed: u64,
) -> Result<CompletionScores> {
    completion_scores_with(
        |cap, given, s| model.complete_keypoints(cap, given, s),
        captions,
        real,
        training_mean,
        seed,
    )
}

/// [`completion_scores`] of any completion function `complete(caption,
/// given, noise seed)`.
pub fn completion_scores_with(
    complete: impl Fn(&str, &KeypointSet, u64) -> Result<KeypointSet>,
    captions: &[String],
    real: &[KeypointSet],
    training_mean: &[Option<[f32; 2]>],
    seed: u64,
) -> Result<CompletionScores> {
    use rand::Rng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut s = CompletionScores::default();
    let (mut z_pairs, mut z_n) = (0.0, 0usize);
    for (i, (cap, set)) in captions.iter().zip(real).enumerate() {
        let visible: Vec<usize> = (0..set.len()).filter(|&j| set[j].is_some()).collect();
        if visible.is_empty() {
            continue;
        }
        let j = visible[rng.gen_range(0..visible.len())];
        let mut given = vec![None; set.len()];
        given[j] = set[j];
        let others: Vec<KeypointSet> = real
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != i)
            .map(|(_, r)| r.clone())
            .collect();
        let a = complete(cap, &given, seed.wrapping_add(2 * i as u64))?;
        let b = complete(cap, &given, seed.wrapping_add(2 * i as u64 + 1))?;
        let g = set[j].unwrap_or_default();
        let moved = a[j].map_or(1.0, |p| (p[0] - g[0]).abs().max((p[1] - g[1]).abs()));
        s.given_moved = s.given_moved.max(moved as f64);
        let rand_set: KeypointSet = (0..set.len())
            .map(|k| {
                if k == j {
                    set[j]
                } else {
                    Some([rng.gen::<f32>(), rng.gen::<f32>()])
                }
            })
            .collect();
        let mut mean = training_mean.to_vec();
        mean[j] = set[j];
        s.completed += nearest(&a, &others);
        s.random += nearest(&rand_set, &others);
        s.training_mean += nearest(&mean, &others);
        let mut rest_a = a.clone();
        let mut rest_b = b.clone();
        rest_a[j] = None;
        rest_b[j] = None;
        if let Some(d) = set_distance(&rest_a, &rest_b) {
            z_pairs += d;
            z_n += 1;
        }
        s.samples += 1;
    }
    let n = s.samples.max(1) as f64;
    s.completed /= n;
    s.random /= n;
    s.training_mean /= n;
    s.across_z = z_pairs / z_n.max(1) as f64;
    Ok(s)
}

/// The line that shows [`completion_scores`].
pub fn completion_line(c: &CompletionScores) -> String {
    format!(
        "G_k from one given keypoint ({} sets): distance to the nearest real set {:.1}% of the side (random sets {:.1}%, training mean {:.1}%); completions differ across z by {:.1}%; given keypoints moved by at most {:.2e}",
        c.samples,
        100.0 * c.completed,
        100.0 * c.random,
        100.0 * c.training_mean,
        100.0 * c.across_z,
        c.given_moved
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_boxes_touch_corners_and_span_sizes() {
        let b = extreme_boxes(32.0);
        assert_eq!(b.len(), 10);
        let small = b.iter().find(|(g, _)| *g == "corners, smallest").unwrap().1;
        let large = b.iter().find(|(g, _)| *g == "corners, largest").unwrap().1;
        assert!(small[2] < large[2]);
        // each box lies inside the canvas with one pixel to spare
        for (_, [x, y, r]) in &b {
            assert!(x - r >= 1.0 && x + r <= 31.0 && y - r >= 1.0 && y + r <= 31.0);
        }
        let c = correlation(&[(1.0, 2.0), (2.0, 4.0), (3.0, 6.5)]).unwrap();
        assert!((c - 1.0).abs() < 0.01);
        assert_eq!(correlation(&[(1.0, 2.0), (1.0, 4.0)]), None);
    }
}
