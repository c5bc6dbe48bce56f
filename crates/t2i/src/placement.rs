//! Where to draw, as users write it (GAWWN, Reed et al. 2016, "Learning
//! What and Where to Draw", sec. 3): a box `x,y,w,h` and keypoints
//! `name=x,y;...`, in fractions of the image or in pixels (`px` suffix);
//! the paper's box sweep (sec. 5.1, the same caption and noise with the box
//! moving from left to right); and drawing a layout over a sample.

use crate::error::{Error, Result};
use crate::family::{Generator, Layout};
use crate::imageio::Rgb;
use tch::Tensor;

/// Slack for boxes and keypoints that touch the image's edge after
/// rounding (a box `0.5,0.5,0.5,0.5` ends exactly at 1).
const EDGE: f32 = 1e-4;

fn bad(msg: String) -> Error {
    Error::Layout(msg)
}

/// Numbers of a comma-separated list: fractions of the image, or pixels of
/// an image of side `image_size` when the list ends in `px` (or a number
/// carries its own `px`).
fn numbers(s: &str, what: &str, count: usize, image_size: i64) -> Result<Vec<f32>> {
    let t = s.trim();
    // a list ending in "px" is in pixels throughout
    let (body, all_px) = match t.strip_suffix("px") {
        Some(b) => (b, true),
        None => (t, false),
    };
    let parts: Vec<&str> = body.split(',').map(str::trim).collect();
    if parts.len() != count {
        return Err(bad(format!(
            "{what} {s:?}: expected {count} comma-separated numbers, got {}",
            parts.len()
        )));
    }
    parts
        .iter()
        .map(|p| {
            let (num, px) = match p.strip_suffix("px") {
                Some(n) => (n.trim(), true),
                None => (*p, all_px),
            };
            let v: f32 = num
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| bad(format!("{what} {s:?}: {p:?} is not a number")))?;
            Ok(if px { v / image_size as f32 } else { v })
        })
        .collect()
}

/// Parses a box `x,y,w,h` (top-left corner, width, height) given as
/// fractions of the image or in pixels (`10,10,32,20px`), and checks it
/// lies inside the image with a positive size.
pub fn parse_box(s: &str, image_size: i64) -> Result<[f32; 4]> {
    let v = numbers(s, "box", 4, image_size)?;
    let (x, y, w, h) = (v[0], v[1], v[2], v[3]);
    if w <= 0.0 || h <= 0.0 {
        return Err(bad(format!("box {s:?}: width and height must be positive")));
    }
    if x < -EDGE || y < -EDGE || x + w > 1.0 + EDGE || y + h > 1.0 + EDGE {
        return Err(bad(format!(
            "box {s:?} is not inside the image (x, y >= 0 and x + w, y + h <= 1 as fractions, or {image_size} px)"
        )));
    }
    Ok([x.max(0.0), y.max(0.0), w.min(1.0), h.min(1.0)])
}

/// A part name as users may write it: case, `_` and `-` ignored
/// (`Left_Eye` is `left eye`).
fn part_key(name: &str) -> String {
    name.to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses keypoints `name=x,y;name=x,y` by part name into one entry per
/// part of `parts` (`None` for parts not given). Coordinates are fractions
/// of the image or pixels (`px` suffix) and must lie inside it.
pub fn parse_keypoints(
    s: &str,
    parts: &[String],
    image_size: i64,
) -> Result<Vec<Option<[f32; 2]>>> {
    if parts.is_empty() {
        return Err(bad("this model has no keypoints".into()));
    }
    let mut out = vec![None; parts.len()];
    let keys: Vec<String> = parts.iter().map(|p| part_key(p)).collect();
    let items: Vec<&str> = s
        .split(';')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if items.is_empty() {
        return Err(bad(format!(
            "keypoints {s:?}: no keypoint given (name=x,y;...)"
        )));
    }
    for item in items {
        let (name, xy) = item.split_once('=').ok_or_else(|| {
            bad(format!(
                "keypoint {item:?}: expected name=x,y (parts: {})",
                parts.join(", ")
            ))
        })?;
        let i = keys
            .iter()
            .position(|k| *k == part_key(name))
            .ok_or_else(|| {
                bad(format!(
                    "unknown part {:?}; this model's parts are: {}",
                    name.trim(),
                    parts.join(", ")
                ))
            })?;
        if out[i].is_some() {
            return Err(bad(format!("part {:?} is given twice", parts[i])));
        }
        let v = numbers(xy, &format!("keypoint {:?}", parts[i]), 2, image_size)?;
        if v.iter().any(|c| !(-EDGE..=1.0 + EDGE).contains(c)) {
            return Err(bad(format!(
                "keypoint {item:?} is outside the image (0..1 as fractions, or 0..{image_size} px)"
            )));
        }
        out[i] = Some([v[0].clamp(0.0, 1.0), v[1].clamp(0.0, 1.0)]);
    }
    Ok(out)
}

/// The paper's box sweep: `n` copies of box `b` (`[x, y, w, h]`) moving
/// from the left edge to the right edge at its height.
pub fn box_sweep(b: [f32; 4], n: usize) -> Vec<[f32; 4]> {
    let span = 1.0 - b[2];
    (0..n)
        .map(|i| {
            let t = if n > 1 {
                i as f32 / (n - 1) as f32
            } else {
                0.5
            };
            [span * t, b[1], b[2], b[3]]
        })
        .collect()
}

/// The same sweep for keypoints: the set shifted horizontally so its
/// leftmost point goes from the left edge to its rightmost at the right edge.
pub fn keypoint_sweep(kp: &[Option<[f32; 2]>], n: usize) -> Vec<Vec<Option<[f32; 2]>>> {
    let xs = kp.iter().flatten().map(|p| p[0]);
    let lo = xs.clone().fold(f32::INFINITY, f32::min);
    let hi = xs.fold(f32::NEG_INFINITY, f32::max);
    if !lo.is_finite() {
        return vec![kp.to_vec(); n];
    }
    let span = 1.0 - (hi - lo);
    (0..n)
        .map(|i| {
            let t = if n > 1 {
                i as f32 / (n - 1) as f32
            } else {
                0.5
            };
            let dx = span * t - lo;
            kp.iter()
                .map(|p| p.map(|[x, y]| [(x + dx).clamp(0.0, 1.0), y]))
                .collect()
        })
        .collect()
}

/// Yellow: what the user asked for.
pub const GIVEN: [u8; 3] = [255, 230, 0];
/// Cyan: keypoints the model's keypoint generator added.
pub const COMPLETED: [u8; 3] = [0, 220, 255];

/// Draws a layout over an image: a box's outline, or a small cross per
/// keypoint ([`GIVEN`] for those in `given`, [`COMPLETED`] for the others;
/// all given when `given` is `None`).
pub fn draw(img: &mut Rgb, layout: &Layout, given: Option<&[bool]>) {
    let (w, h) = (img.width as i64, img.height as i64);
    let mut put = |x: i64, y: i64, c: [u8; 3]| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            let i = ((y * w + x) * 3) as usize;
            img.data[i..i + 3].copy_from_slice(&c);
        }
    };
    match layout {
        Layout::Box([x, y, bw, bh]) => {
            // the outline just outside the box (inside the canvas), so the
            // drawn object's edge stays visible
            let x0 = ((x * w as f32).round() as i64 - 1).max(0);
            let y0 = ((y * h as f32).round() as i64 - 1).max(0);
            let x1 = (((x + bw) * w as f32).round() as i64).clamp(x0, w - 1);
            let y1 = (((y + bh) * h as f32).round() as i64).clamp(y0, h - 1);
            for xx in x0..=x1 {
                put(xx, y0, GIVEN);
                put(xx, y1, GIVEN);
            }
            for yy in y0..=y1 {
                put(x0, yy, GIVEN);
                put(x1, yy, GIVEN);
            }
        }
        Layout::Keypoints(kp) => {
            let arm = (w / 64).max(1);
            for (i, p) in kp.iter().enumerate() {
                let Some([x, y]) = p else { continue };
                let c = match given {
                    Some(g) if !g.get(i).copied().unwrap_or(true) => COMPLETED,
                    _ => GIVEN,
                };
                let px = ((x * w as f32) as i64).min(w - 1);
                let py = ((y * h as f32) as i64).min(h - 1);
                for d in -arm..=arm {
                    put(px + d, py, c);
                    put(px, py + d, c);
                }
            }
        }
    }
}

/// Keypoints as JSON: `[{"part", "x", "y", "given"}]` in fractions of the
/// image (parts without a keypoint left out).
pub fn keypoints_json(
    parts: &[String],
    kp: &[Option<[f32; 2]>],
    given: &[bool],
) -> serde_json::Value {
    serde_json::Value::Array(
        parts
            .iter()
            .zip(kp)
            .zip(given)
            .filter_map(|((name, p), g)| {
                p.map(|[x, y]| serde_json::json!({"part": name, "x": x, "y": y, "given": g}))
            })
            .collect(),
    )
}

/// What the user asked a layout-conditioned model for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The box to draw in (box models; the middle half of the image when
    /// not given).
    pub bbox: Option<[f32; 4]>,
    /// Keypoints by part (keypoint models); parts not given are drawn as not
    /// visible unless `complete` is set.
    pub keypoints: Option<Vec<Option<[f32; 2]>>>,
    /// Fill the parts not given with the keypoint generator G_k (always done
    /// when no keypoint is given at all).
    pub complete: bool,
    /// The paper's sweep: this many images of the same caption and noise,
    /// the box (or keypoints) moving from left to right.
    pub sweep: Option<usize>,
}

/// Images drawn at a requested layout.
pub struct Placed {
    /// `[n, 3, size, size]` in [-1, 1], on the CPU.
    pub images: Tensor,
    /// The layout each image was drawn at.
    pub layouts: Vec<Layout>,
    /// Per part, whether the user gave it (keypoint models; empty for box
    /// models).
    pub given: Vec<bool>,
    /// Whether keypoints were completed by G_k.
    pub completed: bool,
    /// The full caption each image was conditioned on, when the model
    /// completed a caption that leaves attributes out ([`Generated::drawn_as`]).
    ///
    /// [`Generated::drawn_as`]: crate::family::Generated::drawn_as
    pub drawn_as: Option<Vec<String>>,
}

/// Draws `n` images of `caption` at the layout of `request` (or the sweep's
/// images), noise from `seed`: sample `i` of a completed request gets its own
/// completion (noise `seed + i`), so the proposals differ across samples.
pub fn generate(
    g: &dyn Generator,
    caption: &str,
    request: &Request,
    n: usize,
    seed: u64,
) -> Result<Placed> {
    let ctl = g.controls();
    let fam = g.family();
    if request.bbox.is_some() && !ctl.boxes {
        return Err(bad(format!(
            "{fam} model: this model does not draw in boxes"
        )));
    }
    if (request.keypoints.is_some() || request.complete) && !ctl.keypoints {
        return Err(bad(format!(
            "{fam} model: this model does not take keypoints"
        )));
    }
    if !(ctl.boxes || ctl.keypoints) {
        return Err(bad(format!("{fam} models do not take a box or keypoints")));
    }
    let parts = g.part_names();
    let count = request.sweep.unwrap_or(n);
    let (layouts, given, completed) = if ctl.boxes {
        let b = request.bbox.unwrap_or([0.25, 0.25, 0.5, 0.5]);
        let layouts = match request.sweep {
            Some(k) => box_sweep(b, k).into_iter().map(Layout::Box).collect(),
            None => vec![Layout::Box(b); n],
        };
        (layouts, Vec::new(), false)
    } else {
        let asked = request
            .keypoints
            .clone()
            .unwrap_or_else(|| vec![None; parts.len()]);
        if asked.len() != parts.len() {
            return Err(bad(format!(
                "{} keypoints given, the model has {} parts",
                asked.len(),
                parts.len()
            )));
        }
        let given: Vec<bool> = asked.iter().map(Option::is_some).collect();
        let complete = request.complete || given.iter().all(|g| !g);
        let fill = |i: u64| -> Result<Vec<Option<[f32; 2]>>> {
            g.complete_keypoints(caption, &asked, seed.wrapping_add(i))
        };
        let layouts: Vec<Layout> = match (request.sweep, complete) {
            (Some(k), true) => keypoint_sweep(&fill(0)?, k)
                .into_iter()
                .map(Layout::Keypoints)
                .collect(),
            (Some(k), false) => keypoint_sweep(&asked, k)
                .into_iter()
                .map(Layout::Keypoints)
                .collect(),
            (None, true) => (0..n as u64)
                .map(|i| fill(i).map(Layout::Keypoints))
                .collect::<Result<_>>()?,
            (None, false) => vec![Layout::Keypoints(asked.clone()); n],
        };
        (layouts, given, complete)
    };
    debug_assert_eq!(layouts.len(), count);
    let (images, drawn_as) = if request.sweep.is_some() {
        // one call per image: each gets the first noise vector of `seed`
        let each = layouts
            .iter()
            .map(|l| g.generate_at(&[caption], std::slice::from_ref(l), seed))
            .collect::<Result<Vec<_>>>()?;
        let images = Tensor::cat(&each.iter().map(|o| &o.images).collect::<Vec<_>>(), 0);
        let drawn: Option<Vec<String>> = each
            .into_iter()
            .map(|o| o.drawn_as.and_then(|mut d| d.pop()))
            .collect();
        (images, drawn)
    } else {
        let out = g.generate_at(&vec![caption; count], &layouts, seed)?;
        (out.images, out.drawn_as)
    };
    Ok(Placed {
        images,
        layouts,
        given,
        completed,
        drawn_as,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Vec<String> {
        ["centre", "top", "bottom", "left", "right", "left eye"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn boxes_in_fractions_and_pixels() {
        assert_eq!(
            parse_box("0.1, 0.2,0.5,0.25", 64).unwrap(),
            [0.1, 0.2, 0.5, 0.25]
        );
        assert_eq!(
            parse_box("16,0,32,64px", 64).unwrap(),
            [0.25, 0.0, 0.5, 1.0]
        );
        assert_eq!(
            parse_box("16px,0px,32px,64px", 64).unwrap(),
            [0.25, 0.0, 0.5, 1.0]
        );
        assert_eq!(
            parse_box("0.5,0.5,0.5,0.5", 64).unwrap(),
            [0.5, 0.5, 0.5, 0.5]
        );
        for (s, why) in [
            ("0.6,0.1,0.5,0.2", "not inside"),
            ("-0.1,0.1,0.5,0.2", "not inside"),
            ("0.1,0.1,0,0.2", "positive"),
            ("0.1,0.1,-0.2,0.2", "positive"),
            ("0.1,0.1,0.2", "4 comma-separated"),
            ("0.1,0.1,0.2,abc", "not a number"),
            ("0.1,0.1,0.2,NaN", "not a number"),
            ("0,0,65,10px", "not inside"),
        ] {
            let e = parse_box(s, 64).unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn keypoints_by_name() {
        let kp = parse_keypoints("centre=0.5,0.5; Left_Eye=32,16px", &parts(), 64).unwrap();
        assert_eq!(kp[0], Some([0.5, 0.5]));
        assert_eq!(kp[5], Some([0.5, 0.25]));
        assert!(kp[1..5].iter().all(Option::is_none));
        for (s, why) in [
            ("beak=0.5,0.5", "unknown part \"beak\""),
            ("centre=0.5", "2 comma-separated"),
            ("centre 0.5,0.5", "expected name=x,y"),
            ("centre=1.5,0.5", "outside the image"),
            ("centre=0.5,0.5;centre=0.2,0.2", "given twice"),
            (" ; ", "no keypoint"),
        ] {
            let e = parse_keypoints(s, &parts(), 64).unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn sweeps_span_the_image() {
        let s = box_sweep([0.3, 0.2, 0.4, 0.4], 5);
        assert_eq!(s.len(), 5);
        assert_eq!(s[0][0], 0.0);
        assert!((s[4][0] + 0.4 - 1.0).abs() < 1e-6);
        assert!(s.iter().all(|b| b[1] == 0.2 && b[2] == 0.4));
        let k = keypoint_sweep(&[Some([0.4, 0.5]), None, Some([0.6, 0.1])], 3);
        assert_eq!(k[0][0], Some([0.0, 0.5]));
        assert!((k[2][2].unwrap()[0] - 1.0).abs() < 1e-6);
        assert_eq!(k[1][1], None);
    }
}
