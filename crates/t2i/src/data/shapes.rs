//! The built-in shapes data set.
//!
//! A procedural captioned data set, deterministic for a seed: one or two
//! objects (colour, shape, size, coarse position) on a muted background that
//! the text never names (the "style"). Every image carries boxes and
//! keypoints, and the analytic checker (`data::checker`) reads images back.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use super::shapes_text::{read_caption, write_caption, CaptionSpec, Mention};

/// Object colours: clearly distinct hues (RGB, 0-255).
pub const COLOURS: [(&str, [u8; 3]); 8] = [
    ("red", [220, 30, 30]),
    ("green", [30, 170, 50]),
    ("blue", [30, 70, 230]),
    ("yellow", [240, 220, 40]),
    ("purple", [150, 50, 200]),
    ("orange", [250, 140, 20]),
    ("white", [250, 250, 250]),
    ("black", [15, 15, 15]),
];

/// Background colours (the style): muted, far from every object colour.
pub const BACKGROUNDS: [(&str, [u8; 3]); 5] = [
    ("grey", [128, 128, 128]),
    ("slate", [84, 98, 130]),
    ("sand", [170, 150, 112]),
    ("sage", [104, 130, 100]),
    ("plum", [112, 84, 104]),
];

/// Shapes that can be drawn.
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
/// Size names; the object's side is `SIZE_FRACTIONS[i] * canvas`.
pub const SIZES: [&str; 2] = ["small", "large"];
pub const SIZE_FRACTIONS: [f32; 2] = [0.34, 0.5];
/// Range of an object's side, as a fraction of the canvas, with
/// `continuous_layout`; sides from the midpoint of [`SIZE_FRACTIONS`] up are
/// "large".
pub const CONTINUOUS_SIDES: (f32, f32) = (0.25, 0.65);
/// Coarse positions on a 3x3 grid, row-major.
pub const POSITIONS: [&str; 9] = [
    "top left",
    "top",
    "top right",
    "left",
    "centre",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
];
/// Factor applied to the background colour at the bottom of a gradient.
pub const GRADIENT_FACTOR: f32 = 0.72;

/// Which part of the data set a sample comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// Training images: never contain a held-out colour-shape pair.
    Train,
    /// Held-in test images: same distribution as training, other seeds.
    Test,
    /// Test images whose first object is a held-out colour-shape pair.
    HeldOut,
}

impl Split {
    fn salt(self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6e00,
            Split::Test => 0x7465_7374_0000,
            Split::HeldOut => 0x6865_6c64_0000,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::HeldOut => "held-out",
        }
    }
}

/// Configuration of the shapes data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShapesConfig {
    /// Canvas side in pixels (32 to 256).
    pub image_size: u32,
    /// Maximum number of objects per image (1 or 2).
    pub max_objects: u8,
    /// Probability that the background is a vertical gradient.
    pub gradient_prob: f32,
    /// Captions written per image. The first names every attribute of
    /// every object (the evaluation's captions).
    pub captions_per_image: usize,
    /// Probability that each further caption leaves attributes out ("a
    /// green triangle", "a triangle", "a red one", "two red circles"), as
    /// people write them. Data sets saved before it existed read 0.
    #[serde(default)]
    pub partial_captions: f64,
    /// Object sizes and centres drawn continuously over the canvas (side
    /// [`CONTINUOUS_SIDES`] of the canvas, centre anywhere the object fits)
    /// instead of two sizes inside a 3x3 grid cell, so boxes of any size and
    /// place exist (GAWWN); the caption's size and position words follow the
    /// drawn box as the checker reads it.
    #[serde(default)]
    pub continuous_layout: bool,
    /// Colour-shape pairs that never appear in training (StyleT2I's test).
    pub held_out: Vec<(String, String)>,
    /// Images in the training split.
    pub train_size: usize,
    /// Images in each test split.
    pub test_size: usize,
    /// Seed of the whole data set.
    pub seed: u64,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        Self {
            image_size: 64,
            max_objects: 1,
            gradient_prob: 0.3,
            captions_per_image: 5,
            partial_captions: 0.5,
            continuous_layout: false,
            held_out: vec![
                ("red".into(), "triangle".into()),
                ("green".into(), "square".into()),
                ("blue".into(), "circle".into()),
                ("yellow".into(), "triangle".into()),
            ],
            train_size: 10_000,
            test_size: 1_000,
            seed: 0,
        }
    }
}

/// One drawn object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShapeObject {
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// Index into [`SHAPES`].
    pub shape: usize,
    /// Index into [`SIZES`].
    pub size: usize,
    /// Index into [`POSITIONS`].
    pub position: usize,
    /// Centre x in pixels.
    pub cx: f32,
    /// Centre y in pixels.
    pub cy: f32,
    /// Half of the side in pixels.
    pub r: f32,
}

impl ShapeObject {
    /// Box `[x0, y0, x1, y1]` in pixels.
    pub fn bbox(&self) -> [f32; 4] {
        [
            self.cx - self.r,
            self.cy - self.r,
            self.cx + self.r,
            self.cy + self.r,
        ]
    }
    /// Keypoints: centre, top, bottom, left, right (x, y in pixels).
    pub fn keypoints(&self) -> [[f32; 2]; 5] {
        let (cx, cy, r) = (self.cx, self.cy, self.r);
        match SHAPES[self.shape] {
            // a triangle's left/right extremes lie on its base
            "triangle" => [
                [cx, cy],
                [cx, cy - r],
                [cx, cy + r],
                [cx - r, cy + r],
                [cx + r, cy + r],
            ],
            _ => [
                [cx, cy],
                [cx, cy - r],
                [cx, cy + r],
                [cx - r, cy],
                [cx + r, cy],
            ],
        }
    }
    /// The box `[x, y, w, h]` as fractions of a canvas of `size` pixels.
    pub fn box_fraction(&self, size: f32) -> [f32; 4] {
        let [x0, y0, x1, y1] = self.bbox();
        [x0 / size, y0 / size, (x1 - x0) / size, (y1 - y0) / size]
    }
    /// [`ShapeObject::keypoints`] as fractions of a canvas of `size` pixels.
    pub fn keypoint_fractions(&self, size: f32) -> [[f32; 2]; 5] {
        self.keypoints().map(|p| [p[0] / size, p[1] / size])
    }
    /// Whether the pixel centre `(px, py)` lies inside the object.
    pub fn contains(&self, px: f32, py: f32) -> bool {
        let (dx, dy, r) = (px - self.cx, py - self.cy, self.r);
        match SHAPES[self.shape] {
            "circle" => dx * dx + dy * dy <= r * r,
            "square" => dx.abs() <= r && dy.abs() <= r,
            _ => dy <= r && dy >= -r && dx.abs() <= (dy + r) / 2.0,
        }
    }
    /// The class key of this object (colour and shape), e.g. `red_circle`.
    pub fn class_name(&self) -> String {
        format!("{}_{}", COLOURS[self.colour].0, SHAPES[self.shape])
    }
}

/// One sample: the scene, its rendering and its captions.
#[derive(Debug, Clone)]
pub struct ShapesSample {
    pub objects: Vec<ShapeObject>,
    /// Index into [`BACKGROUNDS`].
    pub background: usize,
    pub gradient: bool,
    /// RGB bytes, row-major, `size * size * 3`.
    pub pixels: Vec<u8>,
    pub captions: Vec<String>,
    /// What each caption names (parallel to `captions`).
    pub specs: Vec<CaptionSpec>,
}

impl ShapesSample {
    /// Class used for mismatching captions and same-class masking: every
    /// attribute the text names.
    pub fn class_key(&self) -> String {
        self.objects
            .iter()
            .map(|o| format!("{}-{}-{}-{}", o.colour, o.shape, o.size, o.position))
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// Single-object samples indexed by (colour, shape, size, position), to
/// find a sample that differs from another in exactly one attribute: the
/// hard negatives that make a model read shape, which a random pair almost
/// never isolates.
#[derive(Debug, Clone, Default)]
pub struct AttributeIndex {
    by_key: std::collections::HashMap<[usize; 4], Vec<usize>>,
}

impl AttributeIndex {
    pub fn new(samples: &[ShapesSample]) -> Self {
        let mut by_key: std::collections::HashMap<[usize; 4], Vec<usize>> = Default::default();
        for (i, x) in samples.iter().enumerate() {
            if let [o] = x.objects.as_slice() {
                by_key
                    .entry([o.colour, o.shape, o.size, o.position])
                    .or_default()
                    .push(i);
            }
        }
        Self { by_key }
    }

    /// A sample whose single object differs from `sample`'s only in colour
    /// or only in shape (even odds), if there is one.
    pub fn colour_or_shape_partner(
        &self,
        rng: &mut impl Rng,
        sample: &ShapesSample,
    ) -> Option<usize> {
        let [o] = sample.objects.as_slice() else {
            return None;
        };
        let mut key = [o.colour, o.shape, o.size, o.position];
        if rng.gen_bool(0.5) {
            key[0] = (o.colour + rng.gen_range(1..COLOURS.len())) % COLOURS.len();
        } else {
            key[1] = (o.shape + rng.gen_range(1..SHAPES.len())) % SHAPES.len();
        }
        let bucket = self.by_key.get(&key)?;
        Some(bucket[rng.gen_range(0..bucket.len())])
    }
}

/// Scenes drawn at most by [`Shapes::complete_caption`] (a caption that
/// names colour and shape of two objects fits about one scene in 600).
const COMPLETION_TRIES: usize = 20_000;

/// The shapes data set generator.
#[derive(Debug, Clone)]
pub struct Shapes {
    pub config: ShapesConfig,
    held_out: Vec<(usize, usize)>,
}

/// Errors of the shapes configuration.
#[derive(Debug, thiserror::Error)]
pub enum ShapesError {
    #[error("shapes image size {0} is not supported (use 32 to 256)")]
    ImageSize(u32),
    #[error("shapes max_objects must be 1 or 2, got {0}")]
    MaxObjects(u8),
    #[error("unknown colour-shape pair in held_out: {0} {1}")]
    HeldOut(String, String),
    #[error("shapes partial_captions must be between 0 and 1, got {0}")]
    Partial(f64),
    #[error("{images} shapes images of {size}x{size} need {need_gib:.1} GiB in memory, more than the {avail_gib:.1} GiB available: use a smaller train_size / test_size")]
    TooLarge {
        images: usize,
        size: u32,
        need_gib: f64,
        avail_gib: f64,
    },
}

impl Shapes {
    pub fn new(config: ShapesConfig) -> Result<Self, ShapesError> {
        if !(32..=256).contains(&config.image_size) {
            return Err(ShapesError::ImageSize(config.image_size));
        }
        if !(1..=2).contains(&config.max_objects) {
            return Err(ShapesError::MaxObjects(config.max_objects));
        }
        if !(0.0..=1.0).contains(&config.partial_captions) {
            return Err(ShapesError::Partial(config.partial_captions));
        }
        // training holds every image as f32 RGB (the training split and the
        // two test splits): refuse what cannot fit before allocating any
        let images = config
            .train_size
            .saturating_add(config.test_size.saturating_mul(2));
        let need = images as f64 * 3.0 * (config.image_size as f64).powi(2) * 4.0;
        if let Some(avail) = crate::device::available_memory() {
            if need > avail as f64 {
                let gib = |b: f64| b / (1u64 << 30) as f64;
                return Err(ShapesError::TooLarge {
                    images,
                    size: config.image_size,
                    need_gib: gib(need),
                    avail_gib: gib(avail as f64),
                });
            }
        }
        let mut held_out = Vec::new();
        for (c, s) in &config.held_out {
            let ci = COLOURS.iter().position(|x| x.0 == c);
            let si = SHAPES.iter().position(|x| x == s);
            match (ci, si) {
                (Some(ci), Some(si)) => held_out.push((ci, si)),
                _ => return Err(ShapesError::HeldOut(c.clone(), s.clone())),
            }
        }
        Ok(Self { config, held_out })
    }

    pub fn len(&self, split: Split) -> usize {
        match split {
            Split::Train => self.config.train_size,
            _ => self.config.test_size,
        }
    }

    pub fn is_held_out(&self, colour: usize, shape: usize) -> bool {
        self.held_out.contains(&(colour, shape))
    }

    fn rng(&self, split: Split, index: usize) -> ChaCha8Rng {
        let seed = self
            .config
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(split.salt())
            .wrapping_add(index as u64);
        ChaCha8Rng::seed_from_u64(seed)
    }

    /// The `index`-th sample of `split`; the same for the same seed.
    pub fn sample(&self, split: Split, index: usize) -> ShapesSample {
        let mut rng = self.rng(split, index);
        let n = rng.gen_range(1..=self.config.max_objects as usize);
        let objects = self.place_objects(&mut rng, split, n);
        let background = rng.gen_range(0..BACKGROUNDS.len());
        let gradient = rng.gen::<f32>() < self.config.gradient_prob;
        let pixels = render(self.config.image_size, &objects, background, gradient);
        let (captions, specs) = (0..self.config.captions_per_image)
            .map(|k| {
                let partial = if k == 0 {
                    0.0
                } else {
                    self.config.partial_captions
                };
                write_caption(&mut rng, &objects, partial)
            })
            .unzip();
        ShapesSample {
            objects,
            background,
            gradient,
            pixels,
            captions,
            specs,
        }
    }

    /// A full caption for a partial one: a scene drawn from the training
    /// distribution among those the caption describes (what it names kept,
    /// every attribute it leaves out drawn as the data set draws it; a
    /// held-out colour-shape pair from the held-out test scenes), written as
    /// the data set writes full captions. `None` when the caption names
    /// everything already, names nothing, or no scene fits it (more objects
    /// than the data set has); deterministic for `seed`.
    pub fn complete_caption(&self, caption: &str, seed: u64) -> Option<String> {
        let spec = read_caption(caption);
        let n = spec.objects.len();
        if n == 0 || n > self.config.max_objects as usize || spec.is_full() {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x636f_6d70_6c65_7465);
        // a held-out pair ("a red triangle") is completed from the held-out
        // test scenes: its colour and shape kept, the rest drawn as usual
        for split in self.completion_splits() {
            for _ in 0..COMPLETION_TRIES {
                let objects = self.place_objects(&mut rng, split, n);
                if spec.describes(&objects) {
                    return Some(write_caption(&mut rng, &objects, 0.0).0);
                }
            }
        }
        None
    }

    /// [`Shapes::complete_caption`] for one object drawn at a given place:
    /// `[cx, cy, r]` in pixels of the data set's canvas (a box or keypoints
    /// the user gave). The caption's colour and shape are kept, those it
    /// leaves out drawn from the training pairs (a held-out pair stays as
    /// named); its size and position words are those the data set writes
    /// for an object at that place, whatever the caption said, as the
    /// place decides them. `None` for a full caption, one that names no or
    /// more than one object, or a place outside the canvas.
    pub fn complete_caption_at(
        &self,
        caption: &str,
        [cx, cy, r]: [f32; 3],
        seed: u64,
    ) -> Option<String> {
        let spec = read_caption(caption);
        let size = self.config.image_size as f32;
        let inside = |v: f32| v.is_finite() && (0.0..=size).contains(&v);
        if spec.objects.len() != 1 || spec.is_full() || !inside(cx) || !inside(cy) || !inside(r) {
            return None;
        }
        let mut want = spec.objects[0];
        want.size = None;
        want.position = None;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x636f_6d70_6c65_7465);
        for split in self.completion_splits() {
            // 12 pairs: the tries find an allowed one that fits almost surely
            for _ in 0..200 {
                let (colour, shape) = self.colour_shape(&mut rng, split, true);
                let o = ShapeObject::placed(colour, shape, [cx, cy, r], size);
                if want.describes(&o) {
                    return Some(write_caption(&mut rng, &[o], 0.0).0);
                }
            }
        }
        None
    }

    /// The shapes data set a checkpoint's run trained on (its `data`
    /// entry), `None` for runs on other data sets.
    pub fn of_checkpoint(ck: &crate::checkpoint::Checkpoint) -> crate::Result<Option<Self>> {
        let Some(data) = ck.meta.get("data") else {
            return Ok(None);
        };
        let bad = |e: String| crate::Error::Checkpoint(format!("checkpoint data config: {e}"));
        let config = toml::from_str(data).map_err(|e| bad(e.to_string()))?;
        Ok(Some(Self::new(config).map_err(|e| bad(e.to_string()))?))
    }

    /// The splits a completion draws from: the training scenes, then the
    /// held-out ones when there are held-out pairs.
    fn completion_splits(&self) -> Vec<Split> {
        let mut v = vec![Split::Train];
        if !self.held_out.is_empty() {
            v.push(Split::HeldOut);
        }
        v
    }

    /// A colour-shape pair allowed in `split` (`first` is the first object).
    fn colour_shape(&self, rng: &mut ChaCha8Rng, split: Split, first: bool) -> (usize, usize) {
        loop {
            let c = rng.gen_range(0..COLOURS.len());
            let s = rng.gen_range(0..SHAPES.len());
            let held = self.is_held_out(c, s);
            let ok = match split {
                Split::HeldOut if first => held,
                Split::HeldOut => true,
                _ => !held,
            };
            if ok {
                return (c, s);
            }
        }
    }

    fn place_objects(&self, rng: &mut ChaCha8Rng, split: Split, n: usize) -> Vec<ShapeObject> {
        let size = self.config.image_size as f32;
        let cell = size / 3.0;
        'retry: loop {
            let mut objects: Vec<ShapeObject> = Vec::with_capacity(n);
            for i in 0..n {
                let (colour, shape) = self.colour_shape(rng, split, i == 0);
                if self.config.continuous_layout {
                    let o = continuous_object(rng, size, colour, shape);
                    if objects.iter().any(|p| overlaps(p, &o)) {
                        continue 'retry;
                    }
                    objects.push(o);
                    continue;
                }
                let size_i = rng.gen_range(0..SIZES.len());
                let r = (SIZE_FRACTIONS[size_i] * size / 2.0).round();
                let position = rng.gen_range(0..POSITIONS.len());
                let (row, col) = ((position / 3) as f32, (position % 3) as f32);
                // centre inside its 3x3 cell and the whole object inside the canvas
                // (kept 15% of a cell away from the cell's edges, so the
                // position stays nameable after pixel rounding)
                let (margin, inner) = (1.0, 0.15 * cell);
                let lo_x = (col * cell + inner).max(r + margin);
                let hi_x = ((col + 1.0) * cell - inner).min(size - r - margin);
                let lo_y = (row * cell + inner).max(r + margin);
                let hi_y = ((row + 1.0) * cell - inner).min(size - r - margin);
                if lo_x > hi_x || lo_y > hi_y {
                    continue 'retry;
                }
                let cx = rng.gen_range(lo_x..=hi_x);
                let cy = rng.gen_range(lo_y..=hi_y);
                let o = ShapeObject {
                    colour,
                    shape,
                    size: size_i,
                    position,
                    cx,
                    cy,
                    r,
                };
                if objects.iter().any(|p| overlaps(p, &o)) {
                    continue 'retry;
                }
                objects.push(o);
            }
            return objects;
        }
    }
}

/// Whether two objects share a grid cell (their captions could not tell
/// them apart) or come within 2 pixels of each other.
fn overlaps(a: &ShapeObject, b: &ShapeObject) -> bool {
    let gap = 2.0;
    a.position == b.position
        || ((a.cx - b.cx).abs() < a.r + b.r + gap && (a.cy - b.cy).abs() < a.r + b.r + gap)
}

/// An object of any size in [`CONTINUOUS_SIDES`] anywhere it fits on a
/// canvas of side `size`; its size and position names are what the checker
/// would read from its box.
fn continuous_object(rng: &mut ChaCha8Rng, size: f32, colour: usize, shape: usize) -> ShapeObject {
    let (lo, hi) = CONTINUOUS_SIDES;
    let r = (rng.gen_range(lo..=hi) * size / 2.0).round().max(2.0);
    let margin = 1.0;
    let cx = rng.gen_range(r + margin..=size - r - margin);
    let cy = rng.gen_range(r + margin..=size - r - margin);
    ShapeObject::placed(colour, shape, [cx, cy, r], size)
}

impl ShapeObject {
    /// An object with centre `(cx, cy)` and half-side `r` (pixels of a
    /// canvas of `size`), its size and position names those the checker
    /// would read from its box.
    pub fn placed(colour: usize, shape: usize, [cx, cy, r]: [f32; 3], size: f32) -> Self {
        let threshold = (SIZE_FRACTIONS[0] + SIZE_FRACTIONS[1]) / 2.0 * size;
        let cell = size / 3.0;
        let col = ((cx / cell) as usize).min(2);
        let row = ((cy / cell) as usize).min(2);
        ShapeObject {
            colour,
            shape,
            size: usize::from(2.0 * r >= threshold),
            position: row * 3 + col,
            cx,
            cy,
            r,
        }
    }
}

/// The seed that completes caption `index` of a request with noise seed
/// `seed` ([`Shapes::complete_caption`], [`Shapes::complete_caption_at`]).
pub fn completion_seed(seed: u64, index: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index as u64)
}

/// The background colour of row `y` (top colour, darkening to the bottom for
/// a gradient).
pub fn background_row(background: usize, gradient: bool, y: u32, size: u32) -> [f32; 3] {
    let base = BACKGROUNDS[background].1;
    let t = if gradient && size > 1 {
        y as f32 / (size - 1) as f32
    } else {
        0.0
    };
    let f = 1.0 - t * (1.0 - GRADIENT_FACTOR);
    [base[0] as f32 * f, base[1] as f32 * f, base[2] as f32 * f]
}

/// Renders a scene to RGB bytes (no anti-aliasing: the checker reads pixels).
pub fn render(size: u32, objects: &[ShapeObject], background: usize, gradient: bool) -> Vec<u8> {
    let mut px = vec![0u8; (size * size * 3) as usize];
    for y in 0..size {
        let bg = background_row(background, gradient, y, size);
        for x in 0..size {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let colour = objects
                .iter()
                .rev()
                .find(|o| o.contains(fx, fy))
                .map(|o| COLOURS[o.colour].1.map(|c| c as f32))
                .unwrap_or(bg);
            let i = ((y * size + x) * 3) as usize;
            for c in 0..3 {
                px[i + c] = colour[c].round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    px
}

/// Writes the data set to `out` in the CUB-200-2011 layout with AttnGAN's
/// captions (`text/<class>/<image>.txt`) and split files; classes are the
/// first object's colour-shape pair. Returns the number of images written.
pub fn export_cub_layout(shapes: &Shapes, out: &std::path::Path) -> crate::Result<usize> {
    use crate::error::Error;
    use std::fmt::Write as _;
    let io = |p: &std::path::Path, e| Error::io(p, e);
    let cub = out.join("CUB_200_2011");
    let mut classes: Vec<String> = Vec::new();
    for c in COLOURS {
        for s in SHAPES {
            classes.push(format!("{:03}.{}_{}", classes.len() + 1, c.0, s));
        }
    }
    let (mut images, mut labels, mut boxes, mut parts, mut split) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    let (mut train_f, mut test_f, mut held_f) = (String::new(), String::new(), String::new());
    let mut id = 0usize;
    for sp in [Split::Train, Split::Test, Split::HeldOut] {
        for i in 0..shapes.len(sp) {
            let s = shapes.sample(sp, i);
            id += 1;
            let o = s.objects[0];
            let class = &classes[o.colour * SHAPES.len() + o.shape];
            let name = format!("{}_{:06}", sp.name(), i);
            let rel = format!("{class}/{name}");
            let dir = cub.join("images").join(class);
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let img = crate::imageio::Rgb {
                width: shapes.config.image_size,
                height: shapes.config.image_size,
                data: s.pixels.clone(),
            };
            img.save(&dir.join(format!("{name}.png")))?;
            let tdir = out.join("text").join(class);
            std::fs::create_dir_all(&tdir).map_err(|e| io(&tdir, e))?;
            let tp = tdir.join(format!("{name}.txt"));
            std::fs::write(&tp, s.captions.join("\n") + "\n").map_err(|e| io(&tp, e))?;
            let _ = writeln!(images, "{id} {rel}.png");
            let _ = writeln!(labels, "{id} {}", o.colour * SHAPES.len() + o.shape + 1);
            let [x0, y0, x1, y1] = o.bbox();
            let _ = writeln!(boxes, "{id} {x0:.1} {y0:.1} {:.1} {:.1}", x1 - x0, y1 - y0);
            for (k, kp) in o.keypoints().iter().enumerate() {
                let _ = writeln!(parts, "{id} {} {:.1} {:.1} 1", k + 1, kp[0], kp[1]);
            }
            let _ = writeln!(split, "{id} {}", u8::from(sp == Split::Train));
            let list = match sp {
                Split::Train => &mut train_f,
                Split::Test => &mut test_f,
                Split::HeldOut => &mut held_f,
            };
            let _ = writeln!(list, "{rel}");
        }
    }
    let pdir = cub.join("parts");
    std::fs::create_dir_all(&pdir).map_err(|e| io(&pdir, e))?;
    let class_list: String = classes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} {c}\n", i + 1))
        .collect();
    let files = [
        (cub.join("images.txt"), images),
        (cub.join("image_class_labels.txt"), labels),
        (cub.join("classes.txt"), class_list),
        (cub.join("bounding_boxes.txt"), boxes),
        (cub.join("train_test_split.txt"), split),
        (pdir.join("part_locs.txt"), parts),
        (
            pdir.join("parts.txt"),
            "1 centre\n2 top\n3 bottom\n4 left\n5 right\n".to_string(),
        ),
        (out.join("train_filenames.txt"), train_f),
        (out.join("test_filenames.txt"), test_f),
        (out.join("heldout_filenames.txt"), held_f),
        (
            out.join("shapes_config.toml"),
            toml::to_string(&shapes.config).unwrap_or_default(),
        ),
    ];
    for (p, text) in files {
        crate::imageio::write_atomic(&p, text.as_bytes())?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_captions_complete_to_full_ones_that_keep_what_they_name() {
        let ds = Shapes::new(ShapesConfig {
            max_objects: 2,
            ..Default::default()
        })
        .unwrap();
        let green = COLOURS.iter().position(|c| c.0 == "green");
        let triangle = SHAPES.iter().position(|s| *s == "triangle");
        let mut sizes = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let full = ds.complete_caption("A Green Triangle.", seed).unwrap();
            let spec = read_caption(&full);
            assert!(spec.is_full(), "{full}");
            assert_eq!(spec.objects.len(), 1, "{full}");
            assert_eq!(
                (spec.objects[0].colour, spec.objects[0].shape),
                (green, triangle)
            );
            sizes.insert(spec.objects[0].size);
            assert_eq!(ds.complete_caption("A Green Triangle.", seed), Some(full));
        }
        // the attributes left out vary with the seed
        assert_eq!(sizes.len(), 2);
        let two = ds.complete_caption("two red circles", 3).unwrap();
        let spec = read_caption(&two);
        assert!(spec.is_full() && spec.objects.len() == 2, "{two}");
        let red_one = read_caption(&ds.complete_caption("a red one", 5).unwrap());
        assert_eq!(red_one.objects[0].colour, Some(0));
        // a held-out pair keeps its colour and shape
        let held = read_caption(&ds.complete_caption("a red triangle", 1).unwrap());
        assert!(held.is_full());
        assert_eq!(
            (held.objects[0].colour, held.objects[0].shape),
            (Some(0), triangle)
        );
        // nothing to complete: a full caption, no known word
        assert_eq!(
            ds.complete_caption("a small red circle at the top left", 1),
            None
        );
        assert_eq!(ds.complete_caption("hello", 1), None);
        // at a given place: colour and shape kept, size and position from the place
        let small_top_left = [5.0, 5.0, 3.0];
        for seed in 0..20 {
            let c = ds
                .complete_caption_at("a green triangle", small_top_left, seed)
                .unwrap();
            let m = read_caption(&c).objects[0];
            assert_eq!((m.colour, m.shape), (green, triangle), "{c}");
            assert_eq!((m.size, m.position), (Some(0), Some(0)), "{c}");
        }
        let big = ds
            .complete_caption_at("a small circle at the top", [32.0, 40.0, 20.0], 2)
            .unwrap();
        let m = read_caption(&big).objects[0];
        assert_eq!((m.size, m.position), (Some(1), Some(4)), "{big}");
        assert_eq!(m.shape, SHAPES.iter().position(|s| *s == "circle"));
        assert!(read_caption(
            &ds.complete_caption_at("a red triangle", [20.0, 20.0, 8.0], 1)
                .unwrap()
        )
        .is_full());
        assert_eq!(ds.complete_caption_at("hello", [20.0, 20.0, 8.0], 1), None);
        assert_eq!(
            ds.complete_caption_at("two red circles", [20.0, 20.0, 8.0], 1),
            None
        );
        assert_eq!(
            ds.complete_caption_at("a red one", [f32::NAN, 20.0, 8.0], 1),
            None
        );
        let one = Shapes::new(ShapesConfig::default()).unwrap();
        assert_eq!(one.complete_caption("two red circles", 1), None);
    }

    #[test]
    fn deterministic_and_held_out_respected() {
        let ds = Shapes::new(ShapesConfig {
            max_objects: 2,
            ..Default::default()
        })
        .unwrap();
        let a = ds.sample(Split::Train, 7);
        let b = ds.sample(Split::Train, 7);
        assert_eq!(a.pixels, b.pixels);
        assert_eq!(a.captions, b.captions);
        for i in 0..300 {
            let s = ds.sample(Split::Train, i);
            assert!(s.objects.iter().all(|o| !ds.is_held_out(o.colour, o.shape)));
            let h = ds.sample(Split::HeldOut, i);
            assert!(ds.is_held_out(h.objects[0].colour, h.objects[0].shape));
            for o in &s.objects {
                let [x0, y0, x1, y1] = o.bbox();
                assert!(x0 >= 0.0 && y0 >= 0.0 && x1 <= 64.0 && y1 <= 64.0);
            }
        }
    }

    #[test]
    fn captions_name_attributes() {
        let ds = Shapes::new(ShapesConfig::default()).unwrap();
        let (mut partial, mut total) = (0, 0);
        for i in 0..200 {
            let s = ds.sample(Split::Test, i);
            assert!(s.specs[0].is_full(), "{}", s.captions[0]);
            let o = s.objects[0];
            assert!(s.captions[0].contains(COLOURS[o.colour].0));
            for (c, spec) in s.captions.iter().zip(&s.specs) {
                assert!(spec.describes(&s.objects), "{c}");
                assert_eq!(&read_caption(c), spec, "{c}");
                total += 1;
                partial += usize::from(!spec.is_full());
            }
        }
        // caption 0 always full, the other four partial half the time
        let share = partial as f64 / total as f64;
        assert!((0.3..0.5).contains(&share), "{share}");
    }

    #[test]
    fn old_configs_read_without_partial_captions() {
        let old = "image_size = 32\nmax_objects = 1\nseed = 3\n";
        let c: ShapesConfig = toml::from_str(old).unwrap();
        assert_eq!(c.partial_captions, 0.0);
        assert_eq!(c.captions_per_image, 5);
        assert_eq!(ShapesConfig::default().partial_captions, 0.5);
    }

    #[test]
    fn bad_config_rejected() {
        assert!(Shapes::new(ShapesConfig {
            image_size: 16,
            ..Default::default()
        })
        .is_err());
        assert!(Shapes::new(ShapesConfig {
            max_objects: 3,
            ..Default::default()
        })
        .is_err());
    }
}
