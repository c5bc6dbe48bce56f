//! Image preprocessing of the official StackGAN / AttnGAN code, and the
//! cache that makes a second run start at once.
//!
//! Per image (AttnGAN `datasets.get_imgs`): a square crop of half-side
//! `0.75 * max(w, h)` around the box centre (clipped at the image border),
//! resized so its shorter side is `size * 76 / 64`; during training a random
//! `size` x `size` crop and a random horizontal flip, then one copy per
//! resolution of the multi-stage models.
//!
//! The cache stores the resized crops as one `u8` tensor `[n, L, L, 3]`
//! (`L = size * 76 / 64`). Where the box crop is clipped by the border the
//! crop is not square; the cache keeps its centre `L` x `L` square, so the
//! random crop ranges over that square only (the official code ranges over
//! the full longer side).

use super::cub::Cub;
use super::layout::DataError;
use image::imageops::FilterType;
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Cache format version: bump when the preprocessing changes.
const CACHE_VERSION: u32 = 1;

/// Side of the stored crops for a training resolution (`size * 76 / 64`).
pub fn load_side(size: u32) -> u32 {
    size * 76 / 64
}

/// The official crop box `[x1, y1, x2, y2]` around `bbox = [x, y, w, h]`
/// and whether the box lies (partly) outside the image.
pub fn crop_box(bbox: [f32; 4], width: u32, height: u32) -> ([u32; 4], bool) {
    let [x, y, w, h] = bbox;
    let outside = x < -1.0
        || y < -1.0
        || w <= 0.0
        || h <= 0.0
        || x + w > width as f32 + 1.0
        || y + h > height as f32 + 1.0;
    let r = (w.max(h) * 0.75) as i64; // int() in the official code
    let cx = ((2.0 * x + w) / 2.0) as i64;
    let cy = ((2.0 * y + h) / 2.0) as i64;
    let (wi, hi) = (width as i64, height as i64);
    let x1 = (cx - r).max(0);
    let y1 = (cy - r).max(0);
    let x2 = (cx + r).min(wi);
    let y2 = (cy + r).min(hi);
    if x2 - x1 < 2 || y2 - y1 < 2 {
        // nothing of the box is inside: use the whole image
        return ([0, 0, width, height], true);
    }
    ([x1 as u32, y1 as u32, x2 as u32, y2 as u32], outside)
}

/// The size a `w` x `h` crop is resized to: shorter side to `side`, aspect
/// kept (torchvision `Scale(int)`).
fn resized(w: u32, h: u32, side: u32) -> (u32, u32) {
    // an empty crop (a zero-sized image) resizes like a 1-pixel one
    let (w, h) = (w.max(1), h.max(1));
    if w <= h {
        (
            side,
            ((h as u64 * side as u64) / w as u64).max(side as u64) as u32,
        )
    } else {
        (
            ((w as u64 * side as u64) / h as u64).max(side as u64) as u32,
            side,
        )
    }
}

/// Where a prepared `side` x `side` crop ([`load_crop`]) lies in its
/// image: maps image pixels to fractions of the crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropFrame {
    /// Top-left corner of the box crop in image pixels.
    origin: [f32; 2],
    /// Resize factors (x, y).
    scale: [f32; 2],
    /// Offset of the centre crop in resized pixels.
    offset: [f32; 2],
    side: f32,
}

impl CropFrame {
    /// The frame of the crop [`load_crop`] makes of a `width` x `height`
    /// image with `bbox`.
    pub fn new(bbox: Option<[f32; 4]>, width: u32, height: u32, side: u32) -> Self {
        let [x1, y1, x2, y2] = match bbox {
            Some(b) => crop_box(b, width, height).0,
            None => [0, 0, width, height],
        };
        let (w, h) = (x2 - x1, y2 - y1);
        let (nw, nh) = resized(w, h, side);
        Self {
            origin: [x1 as f32, y1 as f32],
            scale: [nw as f32 / w.max(1) as f32, nh as f32 / h.max(1) as f32],
            offset: [((nw - side) / 2) as f32, ((nh - side) / 2) as f32],
            side: side as f32,
        }
    }

    /// Image pixel `(x, y)` as fractions of the crop (outside [0, 1] when
    /// cropped away).
    pub fn map(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            ((x - self.origin[0]) * self.scale[0] - self.offset[0]) / self.side,
            ((y - self.origin[1]) * self.scale[1] - self.offset[1]) / self.side,
        ]
    }
}

/// Decodes an image file and applies the box crop and resize to `side`.
/// Returns the `side` x `side` crop and whether the box was outside.
/// Without a box (flowers, COCO, faces) the whole image is used, as the
/// official code does for those data sets.
pub fn load_crop(
    path: &Path,
    bbox: Option<[f32; 4]>,
    side: u32,
) -> Result<(RgbImage, bool), DataError> {
    let img = crate::imageio::read_image(path)
        .map_err(|e| DataError::Image(path.to_path_buf(), e))?
        .to_rgb8();
    if img.width() == 0 || img.height() == 0 {
        return Err(DataError::Image(
            path.to_path_buf(),
            "the image has no pixels".into(),
        ));
    }
    let ([x1, y1, x2, y2], outside) = match bbox {
        Some(b) => crop_box(b, img.width(), img.height()),
        None => ([0, 0, img.width(), img.height()], false),
    };
    let crop = image::imageops::crop_imm(&img, x1, y1, x2 - x1, y2 - y1).to_image();
    let (nw, nh) = resized(crop.width(), crop.height(), side);
    let resized = image::imageops::resize(&crop, nw, nh, FilterType::Triangle);
    let sq = image::imageops::crop_imm(&resized, (nw - side) / 2, (nh - side) / 2, side, side)
        .to_image();
    Ok((sq, outside))
}

/// One decoded crop (or why not) with its record index.
type Loaded = (usize, Result<(RgbImage, bool), DataError>);

/// Box-cropped, resized images of a CUB split, in record order.
pub struct Prepared {
    /// `[n, side, side, 3]`, `u8`.
    pub images: Tensor,
    pub side: u32,
    /// Record index (into `Cub::records`) of each stored image.
    pub record: Vec<usize>,
    /// Images that could not be decoded (skipped).
    pub corrupt: usize,
    /// Boxes outside their image (crop clipped or whole image used).
    pub boxes_outside: usize,
    /// Where the cache file is, and whether it was read rather than built.
    pub cache: Option<(PathBuf, bool)>,
}

impl Prepared {
    pub fn len(&self) -> usize {
        self.record.len()
    }

    pub fn is_empty(&self) -> bool {
        self.record.is_empty()
    }

    /// One summary line.
    pub fn summary(&self) -> String {
        format!(
            "{} images at {}x{}; skipped {} corrupt images; {} boxes outside their image{}",
            self.len(),
            self.side,
            self.side,
            self.corrupt,
            self.boxes_outside,
            match &self.cache {
                Some((p, true)) => format!("; read from cache {}", p.display()),
                Some((p, false)) => format!("; cache written to {}", p.display()),
                None => String::new(),
            }
        )
    }
}

/// One image to prepare: its name, file and crop box.
pub struct ImageItem<'a> {
    pub key: &'a str,
    pub image: &'a Path,
    /// Box `[x, y, w, h]` to crop around (CUB), or the whole image.
    pub bbox: Option<[f32; 4]>,
}

/// What [`prepare`] needs of a data-set split.
pub trait ImageList: Sync {
    /// Names the cache file, e.g. `cub-train`.
    fn cache_name(&self) -> String;
    /// The split's images in record order.
    fn items(&self) -> Vec<ImageItem<'_>>;
}

impl ImageList for Cub {
    fn cache_name(&self) -> String {
        format!("cub-{}", self.split.name())
    }
    fn items(&self) -> Vec<ImageItem<'_>> {
        self.records
            .iter()
            .map(|r| ImageItem {
                key: &r.key,
                image: &r.image,
                bbox: Some(r.bbox),
            })
            .collect()
    }
}

impl ImageList for super::captioned::CaptionedSet {
    fn cache_name(&self) -> String {
        let split = self.report.split.rsplit(' ').next().unwrap_or("all");
        format!("{}-{split}", self.name)
    }
    fn items(&self) -> Vec<ImageItem<'_>> {
        self.records
            .iter()
            .map(|r| ImageItem {
                key: &r.key,
                image: &r.image,
                bbox: None,
            })
            .collect()
    }
}

/// Cache key: the preprocessing version, the side, and every source file's
/// name, size and modification time with its box.
fn cache_key(set: &dyn ImageList, side: u32) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "v{CACHE_VERSION} side {side} split {}\n",
        set.cache_name()
    ));
    for r in set.items() {
        let meta = std::fs::metadata(r.image).ok();
        let len = meta.as_ref().map_or(0, |m| m.len());
        let mtime = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(format!(
            "{} {} {len} {mtime} {:?}\n",
            r.key,
            r.image.display(),
            r.bbox
        ));
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Crops and resizes every image of `cub` to `side` x `side`, reading the
/// cache in `cache_dir` when it matches and writing it otherwise.
pub fn prepare(
    set: &dyn ImageList,
    side: u32,
    cache_dir: Option<&Path>,
    progress: bool,
) -> Result<Prepared, DataError> {
    let cache_path = cache_dir.map(|d| {
        d.join(format!(
            "{}-{side}-{}.safetensors",
            set.cache_name(),
            cache_key(set, side)
        ))
    });
    let items = set.items();
    if let Some(p) = &cache_path {
        if p.is_file() {
            if let Ok(mut prep) = read_cache(p, side) {
                prep.cache = Some((p.clone(), true));
                return Ok(prep);
            }
        }
    }
    let n = items.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |k| k.get())
        .min(8);
    let pb = crate::progress::bar(n as u64, "preparing images", progress);
    let chunk = n.div_ceil(threads);
    let results: Vec<Vec<Loaded>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk.max(1))
            .enumerate()
            .map(|(c, recs)| {
                let pb = pb.clone();
                s.spawn(move || {
                    recs.iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let out = load_crop(r.image, r.bbox, side);
                            pb.inc(1);
                            (c * chunk + i, out)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    pb.finish_and_clear();
    let mut data = Vec::with_capacity(n * (side * side * 3) as usize);
    let (mut record, mut corrupt, mut outside) = (Vec::new(), 0, 0);
    for (i, r) in results.into_iter().flatten() {
        match r {
            Ok((img, out)) => {
                data.extend_from_slice(img.as_raw());
                record.push(i);
                outside += usize::from(out);
            }
            Err(e) => {
                tracing::warn!("skipped: {e}");
                corrupt += 1;
            }
        }
    }
    if record.is_empty() {
        return Err(DataError::EmptySplit(format!(
            "{}: no image of the split could be decoded",
            set.cache_name()
        )));
    }
    let s = side as i64;
    let images = Tensor::from_slice(&data).view([record.len() as i64, s, s, 3]);
    let mut prep = Prepared {
        images,
        side,
        record,
        corrupt,
        boxes_outside: outside,
        cache: None,
    };
    if let (Some(p), Some(dir)) = (&cache_path, cache_dir) {
        std::fs::create_dir_all(dir).map_err(|e| DataError::Io(dir.to_path_buf(), e))?;
        write_cache(p, &prep)?;
        prep.cache = Some((p.clone(), false));
    }
    Ok(prep)
}

fn write_cache(path: &Path, p: &Prepared) -> Result<(), DataError> {
    let mut meta = std::collections::HashMap::new();
    meta.insert(
        "record".to_string(),
        serde_json::to_string(&p.record).unwrap_or_default(),
    );
    meta.insert("corrupt".to_string(), p.corrupt.to_string());
    meta.insert("boxes_outside".to_string(), p.boxes_outside.to_string());
    let shape: Vec<usize> = p.images.size().iter().map(|&d| d as usize).collect();
    let bytes: Vec<u8> = Vec::try_from(p.images.view([-1]))
        .map_err(|e: tch::TchError| DataError::Parse(path.to_path_buf(), e.to_string()))?;
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::U8, shape, &bytes)
        .map_err(|e| DataError::Parse(path.to_path_buf(), e.to_string()))?;
    let out = safetensors::serialize([("images", view)], &Some(meta))
        .map_err(|e| DataError::Parse(path.to_path_buf(), e.to_string()))?;
    crate::imageio::write_atomic(path, &out)
        .map_err(|e: crate::Error| DataError::Parse(path.to_path_buf(), e.to_string()))
}

fn read_cache(path: &Path, side: u32) -> Result<Prepared, DataError> {
    let bad = |m: String| DataError::Parse(path.to_path_buf(), m);
    let bytes = std::fs::read(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let t = st.tensor("images").map_err(|e| bad(e.to_string()))?;
    let m = meta.metadata().clone().unwrap_or_default();
    let record: Vec<usize> = serde_json::from_str(m.get("record").map_or("", |s| s.as_str()))
        .map_err(|e| bad(e.to_string()))?;
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    if shape != [record.len() as i64, side as i64, side as i64, 3] {
        return Err(bad("cache shape does not match".into()));
    }
    let num = |k: &str| m.get(k).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Prepared {
        images: Tensor::from_slice(t.data()).view(shape.as_slice()),
        side,
        record,
        corrupt: num("corrupt"),
        boxes_outside: num("boxes_outside"),
        cache: None,
    })
}

/// How one batch image was cut from its stored crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augmented {
    /// Top-left corner of the cut, as fractions of the stored side.
    pub offset: [f32; 2],
    /// Stored side over cut side.
    pub scale: f32,
    /// Mirrored left-right.
    pub flip: bool,
}

impl Augmented {
    /// A point given as fractions of the stored crop, as fractions of the
    /// batch image.
    pub fn map(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        let x = (x - self.offset[0]) * self.scale;
        let y = (y - self.offset[1]) * self.scale;
        [if self.flip { 1.0 - x } else { x }, y]
    }
}

/// Layouts given as fractions of the stored crops (boxes `[n, 4]` or
/// keypoints `[n, K, 3]`), moved with each image's cut and flip: boxes are
/// clipped to the image, keypoints cut away become invisible, and in a
/// mirrored image keypoint `j` becomes keypoint `mirror[j]` (left and right
/// parts swap).
pub fn move_layouts(sel: &Tensor, cuts: &[Augmented], mirror: &[usize]) -> Tensor {
    let shape = sel.size();
    let v: Vec<f32> = Vec::try_from(
        sel.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]),
    )
    .expect("f32 layouts");
    let out: Vec<f32> = if shape.len() == 2 {
        v.chunks(4)
            .zip(cuts)
            .flat_map(|(b, c)| {
                let p = c.map([b[0], b[1]]).map(|t| t.clamp(0.0, 1.0));
                let q = c.map([b[0] + b[2], b[1] + b[3]]).map(|t| t.clamp(0.0, 1.0));
                let (x0, x1) = (p[0].min(q[0]), p[0].max(q[0]));
                [x0, p[1], x1 - x0, q[1] - p[1]]
            })
            .collect()
    } else {
        let k = shape[1] as usize;
        v.chunks(3 * k)
            .zip(cuts)
            .flat_map(|(kp, c)| {
                let mut moved = vec![0f32; 3 * k];
                for j in 0..k {
                    let p = &kp[3 * j..3 * j + 3];
                    let to = if c.flip {
                        mirror.get(j).copied().unwrap_or(j)
                    } else {
                        j
                    };
                    let [x, y] = c.map([p[0], p[1]]);
                    let inside = (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y);
                    if p[2] > 0.5 && inside {
                        moved[3 * to..3 * to + 3].copy_from_slice(&[x, y, 1.0]);
                    }
                }
                moved
            })
            .collect()
    };
    Tensor::from_slice(&out).view(shape.as_slice())
}

/// Training batches: random `size` crop, random flip, values in [-1, 1],
/// one tensor per resolution of `sizes` (largest = crop size).
pub struct ImageBatcher {
    pub prepared: Prepared,
    /// Output sides, ascending (e.g. `[64, 128, 256]`); the last is the crop.
    pub sizes: Vec<i64>,
    pub augment: bool,
}

/// Images every [`ImageBatcher`] of the process has made, and the time it
/// took (crop, flip, resize, to the device): what the run loop reports as
/// the loader's speed against the steps' demand.
pub struct LoaderUse {
    images: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

/// The process's batchers' totals.
pub static LOADER: LoaderUse = LoaderUse {
    images: std::sync::atomic::AtomicU64::new(0),
    nanos: std::sync::atomic::AtomicU64::new(0),
};

impl LoaderUse {
    fn record(&self, images: usize, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.images.fetch_add(images as u64, Relaxed);
        self.nanos.fetch_add(took.as_nanos() as u64, Relaxed);
    }

    /// Images made and seconds spent so far.
    pub fn totals(&self) -> (u64, f64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.images.load(Relaxed),
            self.nanos.load(Relaxed) as f64 / 1e9,
        )
    }
}

impl ImageBatcher {
    /// `[batch, 3, s, s]` per size, for the stored images `idx`.
    pub fn batch(&self, idx: &[usize], rng: &mut ChaCha8Rng, device: Device) -> Vec<Tensor> {
        self.batch_aug(idx, rng, device, self.augment)
    }

    /// As [`ImageBatcher::batch`], with random crop and flip on or off
    /// (off: centre crops).
    pub fn batch_aug(
        &self,
        idx: &[usize],
        rng: &mut ChaCha8Rng,
        device: Device,
        augment: bool,
    ) -> Vec<Tensor> {
        self.batch_with_crops(idx, rng, device, augment).0
    }

    /// As [`ImageBatcher::batch_aug`], with the crop and flip of each image
    /// (to move annotations with them).
    pub fn batch_with_crops(
        &self,
        idx: &[usize],
        rng: &mut ChaCha8Rng,
        device: Device,
        augment: bool,
    ) -> (Vec<Tensor>, Vec<Augmented>) {
        let started = std::time::Instant::now();
        let crop = *self.sizes.last().unwrap_or(&64);
        let side = self.prepared.side as i64;
        let mut augs = Vec::with_capacity(idx.len());
        let imgs: Vec<Tensor> = idx
            .iter()
            .map(|&i| {
                let img = self.prepared.images.get(i as i64); // [L, L, 3]
                let (oy, ox, flip) = if augment {
                    (
                        rng.gen_range(0..=side - crop),
                        rng.gen_range(0..=side - crop),
                        rng.gen_bool(0.5),
                    )
                } else {
                    ((side - crop) / 2, (side - crop) / 2, false)
                };
                augs.push(Augmented {
                    offset: [ox as f32 / side as f32, oy as f32 / side as f32],
                    scale: side as f32 / crop as f32,
                    flip,
                });
                let c = img.narrow(0, oy, crop).narrow(1, ox, crop);
                if flip {
                    c.flip([1])
                } else {
                    c
                }
            })
            .collect();
        let x = Tensor::stack(&imgs, 0)
            .to_device(device)
            .permute([0, 3, 1, 2])
            // NCHW in memory: a channels-last batch slows every convolution
            // of the discriminators (about +450 ms per D_NET256 forward and
            // backward at batch 4)
            .contiguous()
            .to_kind(Kind::Float)
            / 127.5
            - 1.0; // [batch, 3, crop, crop]
        let out = self
            .sizes
            .iter()
            .map(|&s| {
                if s == crop {
                    x.shallow_clone()
                } else {
                    x.internal_upsample_bilinear2d_aa([s, s], false, None, None)
                }
            })
            .collect();
        LOADER.record(idx.len(), started.elapsed());
        (out, augs)
    }

    /// A reproducible generator for step `step` of a run seeded `seed`.
    pub fn rng(seed: u64, step: i64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(crate::rng::step_seed(seed ^ 0xC0B, step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_images_and_boxes_do_not_divide_by_zero() {
        // found by the dataset_index fuzz target (a division by zero in a
        // preparing thread)
        assert_eq!(resized(0, 0, 8), (8, 8));
        assert_eq!(resized(0, 5, 8), (8, 40));
        for (w, h) in [(0, 0), (0, 7), (7, 0)] {
            let f = CropFrame::new(Some([1.0, 1.0, 0.0, 0.0]), w, h, 8);
            let _ = f.map([0.0, 0.0]);
            let f = CropFrame::new(None, w, h, 8);
            let _ = f.map([0.0, 0.0]);
        }
    }

    #[test]
    fn layouts_move_with_cut_and_flip() {
        // stored side 76, cut 64 at (6, 0), mirrored
        let cut = Augmented {
            offset: [6.0 / 76.0, 0.0],
            scale: 76.0 / 64.0,
            flip: true,
        };
        let boxes =
            Tensor::from_slice(&[6.0f32 / 76.0, 0.0, 32.0 / 76.0, 38.0 / 76.0]).view([1, 4]);
        let b: Vec<f32> = Vec::try_from(move_layouts(&boxes, &[cut], &[]).view([-1])).unwrap();
        // x from 0 to 0.5 of the cut, mirrored to 0.5..1
        let want = [0.5, 0.0, 0.5, 38.0 / 64.0];
        for (a, w) in b.iter().zip(want) {
            assert!((a - w).abs() < 1e-5, "{b:?}");
        }
        // part 0 (left) becomes part 1 (right); a part cut away is invisible
        let kp = Tensor::from_slice(&[
            16.0f32 / 76.0,
            0.5,
            1.0, // left
            0.0,
            0.0,
            0.0, // right: not visible
            1.0 / 76.0,
            0.5,
            1.0, // outside the cut
        ])
        .view([1, 3, 3]);
        let k: Vec<f32> = Vec::try_from(move_layouts(&kp, &[cut], &[1, 0, 2]).view([-1])).unwrap();
        assert_eq!(&k[0..3], &[0.0, 0.0, 0.0]);
        assert!(
            (k[3] - (1.0 - 10.0 / 64.0)).abs() < 1e-5 && k[5] == 1.0,
            "{k:?}"
        );
        assert_eq!(&k[6..9], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn crop_frame_maps_the_box_crop() {
        // a 200x100 image, box centred: crop 150x100 region, resized to 76
        let f = CropFrame::new(Some([75.0, 25.0, 50.0, 50.0]), 200, 100, 76);
        let [x, y] = f.map([100.0, 50.0]); // the box centre
        assert!((x - 0.5).abs() < 0.02 && (y - 0.5).abs() < 0.02, "{x} {y}");
    }
}
