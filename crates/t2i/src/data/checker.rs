//! The analytic checker of the shapes data set: finds the
//! objects of an image without any learned model (difference from the
//! background estimated on the border, connected components) and names each
//! one's colour, shape, size and position, and the background (style) colour.

use super::shapes::{
    background_row, ShapeObject, BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZE_FRACTIONS,
};
use serde::{Deserialize, Serialize};

/// One object found by the checker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detected {
    pub colour: usize,
    pub shape: usize,
    pub size: usize,
    pub position: usize,
    /// Box `[x0, y0, x1, y1]` (pixels, exclusive upper bound).
    pub bbox: [f32; 4],
    pub area: usize,
}

/// What the checker reads from one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Objects by decreasing area.
    pub objects: Vec<Detected>,
    /// Index into [`BACKGROUNDS`] of the top rows' colour.
    pub background: usize,
}

/// Minimum colour distance (RGB, 0-255) from the background of an object pixel.
const FG_THRESHOLD: f32 = 48.0;

fn dist2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (0..3).map(|i| (a[i] - b[i]) * (a[i] - b[i])).sum()
}

fn nearest(c: [f32; 3], palette: &[(&str, [u8; 3])]) -> usize {
    let mut best = (f32::MAX, 0);
    for (i, (_, p)) in palette.iter().enumerate() {
        let d = dist2(c, p.map(|v| v as f32));
        if d < best.0 {
            best = (d, i);
        }
    }
    best.1
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Reads an RGB image (`size * size * 3` bytes).
pub fn check(pixels: &[u8], size: u32, max_objects: usize) -> Reading {
    let s = size as usize;
    let at = |x: usize, y: usize| -> [f32; 3] {
        let i = (y * s + x) * 3;
        [pixels[i] as f32, pixels[i + 1] as f32, pixels[i + 2] as f32]
    };
    // Background per row: median of the two outermost columns on each side,
    // then a median over 5 rows (objects never touch the border).
    let border_cols = [0, 1, s - 2, s - 1];
    let raw: Vec<[f32; 3]> = (0..s)
        .map(|y| {
            let mut out = [0.0; 3];
            for (c, o) in out.iter_mut().enumerate() {
                let mut v: Vec<f32> = border_cols.iter().map(|&x| at(x, y)[c]).collect();
                *o = median(&mut v);
            }
            out
        })
        .collect();
    let bg: Vec<[f32; 3]> = (0..s)
        .map(|y| {
            let lo = y.saturating_sub(2);
            let hi = (y + 3).min(s);
            let mut out = [0.0; 3];
            for (c, o) in out.iter_mut().enumerate() {
                let mut v: Vec<f32> = raw[lo..hi].iter().map(|p| p[c]).collect();
                *o = median(&mut v);
            }
            out
        })
        .collect();
    // Style: the top rows' colour against the background palette; a gradient
    // only darkens downwards, so the top is the named colour.
    let top_rows = (s / 8).max(2);
    let mut top = [0.0f32; 3];
    for row in bg.iter().take(top_rows) {
        for c in 0..3 {
            top[c] += row[c] / top_rows as f32;
        }
    }
    let background = nearest(top, &BACKGROUNDS);

    let thr2 = FG_THRESHOLD * FG_THRESHOLD;
    let mask: Vec<bool> = (0..s * s)
        .map(|i| dist2(at(i % s, i / s), bg[i / s]) > thr2)
        .collect();
    let mut label = vec![usize::MAX; s * s];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    for start in 0..s * s {
        if !mask[start] || label[start] != usize::MAX {
            continue;
        }
        let id = comps.len();
        let mut stack = vec![start];
        let mut pix = Vec::new();
        label[start] = id;
        while let Some(p) = stack.pop() {
            pix.push(p);
            let (x, y) = (p % s, p / s);
            let mut push = |q: usize| {
                if mask[q] && label[q] == usize::MAX {
                    label[q] = id;
                    stack.push(q);
                }
            };
            if x > 0 {
                push(p - 1);
            }
            if x + 1 < s {
                push(p + 1);
            }
            if y > 0 {
                push(p - s);
            }
            if y + 1 < s {
                push(p + s);
            }
        }
        comps.push(pix);
    }
    // Components smaller than a quarter of the smallest object are noise.
    let small_side = SIZE_FRACTIONS[0] * size as f32;
    let min_area = (small_side * small_side * 0.5 * 0.25) as usize;
    comps.retain(|c| c.len() >= min_area.max(4));
    comps.sort_by_key(|c| std::cmp::Reverse(c.len()));
    comps.truncate(max_objects);

    let objects = comps.iter().map(|c| describe(c, s, &bg, &at)).collect();
    Reading {
        objects,
        background,
    }
}

fn describe(
    pix: &[usize],
    s: usize,
    bg: &[[f32; 3]],
    at: &dyn Fn(usize, usize) -> [f32; 3],
) -> Detected {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for &p in pix {
        let (x, y) = (p % s, p / s);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x + 1);
        y1 = y1.max(y + 1);
    }
    // Colour: mean of the object's core, the half of its pixels farthest
    // from the background (generated edges blend into the background).
    let mut by_dist: Vec<(f32, [f32; 3])> = pix
        .iter()
        .map(|&p| {
            let c = at(p % s, p / s);
            (dist2(c, bg[p / s]), c)
        })
        .collect();
    by_dist.sort_by(|a, b| b.0.total_cmp(&a.0));
    let core = &by_dist[..by_dist.len().div_ceil(2)];
    let mut mean = [0.0f32; 3];
    for (_, c) in core {
        for i in 0..3 {
            mean[i] += c[i] / core.len() as f32;
        }
    }
    let colour = nearest(mean, &COLOURS);
    // Shape: best IoU between the component and each template fitted to its box.
    let (w, h) = ((x1 - x0) as f32, (y1 - y0) as f32);
    let (cx, cy) = (x0 as f32 + w / 2.0, y0 as f32 + h / 2.0);
    let inside: std::collections::HashSet<usize> = pix.iter().copied().collect();
    let mut best = (f32::MIN, 0);
    for shape in 0..SHAPES.len() {
        let (mut inter, mut tmpl) = (0usize, 0usize);
        for y in y0..y1 {
            for x in x0..x1 {
                // template scaled to the box: work in box-normalised units
                let (u, v) = (
                    (x as f32 + 0.5 - cx) / (w / 2.0),
                    (y as f32 + 0.5 - cy) / (h / 2.0),
                );
                let probe = ShapeObject {
                    colour: 0,
                    shape,
                    size: 0,
                    position: 0,
                    cx: 0.0,
                    cy: 0.0,
                    r: 1.0,
                };
                if probe.contains(u, v) {
                    tmpl += 1;
                    if inside.contains(&(y * s + x)) {
                        inter += 1;
                    }
                }
            }
        }
        let union = tmpl + pix.len() - inter;
        let iou = inter as f32 / union.max(1) as f32;
        if iou > best.0 {
            best = (iou, shape);
        }
    }
    let side = w.max(h);
    let threshold = (SIZE_FRACTIONS[0] + SIZE_FRACTIONS[1]) / 2.0 * s as f32;
    let size = usize::from(side >= threshold);
    let cell = s as f32 / 3.0;
    let col = ((cx / cell) as usize).min(2);
    let row = ((cy / cell) as usize).min(2);
    Detected {
        colour,
        shape: best.1,
        size,
        position: row * 3 + col,
        bbox: [x0 as f32, y0 as f32, x1 as f32, y1 as f32],
        area: pix.len(),
    }
}

/// Per-object agreement between what was asked and what the checker read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub found: bool,
    pub colour: bool,
    pub shape: bool,
    pub size: bool,
    pub position: bool,
    /// The requested shape (index into `SHAPES`).
    pub wanted_shape: usize,
    /// The shape the checker read, if it found the object.
    pub read_shape: Option<usize>,
}

impl Agreement {
    /// Colour AND shape right.
    pub fn joint(&self) -> bool {
        self.colour && self.shape
    }
}

/// Matches each requested object with the detected object nearest to its
/// centre and scores the attributes.
pub fn agreement(wanted: &[ShapeObject], reading: &Reading) -> Vec<Agreement> {
    let mut used = vec![false; reading.objects.len()];
    wanted
        .iter()
        .map(|w| {
            let mut best: Option<(f32, usize)> = None;
            for (i, d) in reading.objects.iter().enumerate() {
                if used[i] {
                    continue;
                }
                let (dx, dy) = (
                    (d.bbox[0] + d.bbox[2]) / 2.0 - w.cx,
                    (d.bbox[1] + d.bbox[3]) / 2.0 - w.cy,
                );
                let dd = dx * dx + dy * dy;
                if best.is_none_or(|b| dd < b.0) {
                    best = Some((dd, i));
                }
            }
            match best {
                None => Agreement {
                    wanted_shape: w.shape,
                    ..Agreement::default()
                },
                Some((_, i)) => {
                    used[i] = true;
                    let d = &reading.objects[i];
                    Agreement {
                        found: true,
                        colour: d.colour == w.colour,
                        shape: d.shape == w.shape,
                        size: d.size == w.size,
                        position: d.position == w.position,
                        wanted_shape: w.shape,
                        read_shape: Some(d.shape),
                    }
                }
            }
        })
        .collect()
}

/// Name of a position index (for reports).
pub fn position_name(i: usize) -> &'static str {
    POSITIONS[i]
}

/// Background colour of row `y` for a scene (re-exported for tests).
pub fn expected_background(background: usize, gradient: bool, y: u32, size: u32) -> [f32; 3] {
    background_row(background, gradient, y, size)
}

#[cfg(test)]
mod tests {
    use super::super::shapes::{Shapes, ShapesConfig, Split};
    use super::*;

    fn accuracy(size: u32, max_objects: u8) -> f32 {
        let ds = Shapes::new(ShapesConfig {
            image_size: size,
            max_objects,
            ..Default::default()
        })
        .unwrap();
        let (mut right, mut total) = (0, 0);
        for i in 0..400 {
            let s = ds.sample(Split::Train, i);
            let r = check(&s.pixels, size, max_objects as usize);
            let a = agreement(&s.objects, &r);
            for ag in a {
                total += 1;
                if ag.colour && ag.shape && ag.size && ag.position {
                    right += 1;
                }
            }
            total += 1;
            if r.background == s.background {
                right += 1;
            }
        }
        right as f32 / total as f32
    }

    #[test]
    fn checker_reads_real_renders() {
        for (size, n) in [(32, 1), (64, 1), (64, 2), (128, 2)] {
            let acc = accuracy(size, n);
            assert!(
                acc >= 0.99,
                "checker accuracy {acc} at size {size}, {n} objects"
            );
        }
    }
}
