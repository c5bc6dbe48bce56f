//! Captioned images ready for training and evaluation: prepared crops of a
//! data set in the CUB layout with their captions and classes, shared by
//! every family that trains on a real data set.

use super::cub::{CaptionLayout, Cub, CubSplit};
use super::prepare::{load_side, prepare, ImageBatcher};
use crate::error::Result;
use std::path::Path;

/// A captioned image set: prepared images, their captions and class.
pub struct CaptionedImages {
    pub images: ImageBatcher,
    /// Captions per stored image.
    pub captions: Vec<Vec<String>>,
    /// Class id per stored image (for same-class masking and R-precision).
    pub classes: Vec<i64>,
}

/// How [`load_cub`] reads a split.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions<'a> {
    /// Training resolution (images are stored at size x 76/64).
    pub size: i64,
    /// Cache of prepared crops (none: prepare in memory).
    pub cache: Option<&'a Path>,
    /// Random crop and flip when batching (training).
    pub augment: bool,
    /// Progress bar while preparing.
    pub progress: bool,
}

/// Loads a CUB split as captioned images for DAMSM at `size` (stored at
/// `size * 76 / 64`, random crop and flip when `augment`). Returns the data
/// and the loader's summary lines.
pub fn load_cub(
    root: &Path,
    split: CubSplit,
    opts: &LoadOptions,
) -> Result<(CaptionedImages, Vec<String>)> {
    let cub = Cub::open(root, split, CaptionLayout::Auto)?;
    let prep = prepare(&cub, load_side(opts.size as u32), opts.cache, opts.progress)?;
    let lines = vec![cub.report.to_string(), prep.summary()];
    let captions = prep
        .record
        .iter()
        .map(|&i| cub.records[i].captions.clone())
        .collect();
    let classes = prep
        .record
        .iter()
        .map(|&i| cub.records[i].class as i64)
        .collect();
    Ok((
        CaptionedImages {
            images: ImageBatcher {
                prepared: prep,
                sizes: vec![opts.size],
                augment: opts.augment,
            },
            captions,
            classes,
        },
        lines,
    ))
}

/// The first caption of `n` test images spread over the test split of a
/// data set in the CUB layout (the captions of sample grids).
pub fn test_captions(root: &Path, n: usize) -> Result<Vec<String>> {
    let test = Cub::open(root, CubSplit::Test, CaptionLayout::Auto)?;
    Ok(test
        .records
        .iter()
        .step_by((test.len() / n).max(1))
        .take(n)
        .map(|r| r.captions[0].clone())
        .collect())
}

/// Where the bird is in each prepared crop of a CUB split (GAWWN, Reed et
/// al. 2016): fractions of the stored crop, after the official box crop and
/// resize, in the order of the prepared images.
pub struct CubLayouts {
    /// `[x, y, w, h]` of the annotated box, clipped to the crop. `[n, 4]`
    pub boxes: tch::Tensor,
    /// The parts `(x, y, visible)`; a part outside the crop is not
    /// visible. `[n, 15, 3]`
    pub keypoints: tch::Tensor,
    /// The part names of `parts/parts.txt` (`back`, `beak` ...).
    pub part_names: Vec<String>,
    /// For each part, the part it becomes when the image is mirrored
    /// (`left eye` <-> `right eye` ...; itself otherwise).
    pub mirror: Vec<usize>,
}

/// For each name, the index of its mirror image (`left x` <-> `right x`).
pub fn mirror_parts(names: &[String]) -> Vec<usize> {
    let swap = |n: &str| {
        if let Some(r) = n.strip_prefix("left ") {
            format!("right {r}")
        } else if let Some(r) = n.strip_prefix("right ") {
            format!("left {r}")
        } else {
            n.to_string()
        }
    };
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let m = swap(n);
            names.iter().position(|x| *x == m).unwrap_or(i)
        })
        .collect()
}

/// Where a record's bird is in its crop stored at `side` (the official box
/// crop and resize), or with `cut` in the centre `cut` x `cut` of it (what
/// an evaluation shows a model): the box `[x, y, w, h]` clipped to the
/// image and each part (`None` where not visible or outside), as fractions.
pub fn record_layout(
    r: &super::cub::CubRecord,
    side: u32,
    cut: Option<u32>,
) -> Result<([f32; 4], super::KeypointSet)> {
    use super::prepare::{Augmented, CropFrame};
    use crate::data::DataError;
    let (w, h) = image::image_dimensions(&r.image)
        .map_err(|e| DataError::Image(r.image.clone(), e.to_string()))?;
    let frame = CropFrame::new(Some(r.bbox), w, h, side);
    let centre = cut.map(|c| Augmented {
        offset: [(side - c) as f32 / 2.0 / side as f32; 2],
        scale: side as f32 / c as f32,
        flip: false,
    });
    let map = |p: [f32; 2]| {
        let q = frame.map(p);
        centre.map_or(q, |c| c.map(q))
    };
    let [bx, by, bw, bh] = r.bbox;
    let a = map([bx, by]).map(|v| v.clamp(0.0, 1.0));
    let b = map([bx + bw, by + bh]).map(|v| v.clamp(0.0, 1.0));
    let parts = r
        .parts
        .iter()
        .map(|p| {
            let [x, y] = map([p.x, p.y]);
            let inside = (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y);
            (p.visible && inside).then_some([x, y])
        })
        .collect();
    Ok(([a[0], a[1], b[0] - a[0], b[1] - a[1]], parts))
}

/// The boxes and part locations of the images `prepared` holds of `split`
/// (read from the folder `root` in the CUB layout).
pub fn cub_layouts(
    root: &Path,
    split: CubSplit,
    prepared: &super::prepare::Prepared,
) -> Result<CubLayouts> {
    let cub = Cub::open(root, split, CaptionLayout::Auto)?;
    let mut boxes = Vec::with_capacity(prepared.record.len() * 4);
    let mut kps = Vec::with_capacity(prepared.record.len() * 45);
    for &i in &prepared.record {
        let (b, k) = record_layout(&cub.records[i], prepared.side, None)?;
        boxes.extend_from_slice(&b);
        kps.extend(k.iter().flat_map(|p| match p {
            Some([x, y]) => [*x, *y, 1.0],
            None => [0.0; 3],
        }));
    }
    let n = prepared.record.len() as i64;
    let k = super::cub::NUM_PARTS as i64;
    Ok(CubLayouts {
        boxes: tch::Tensor::from_slice(&boxes).view([n, 4]),
        keypoints: tch::Tensor::from_slice(&kps).view([n, k, 3]),
        mirror: mirror_parts(&cub.part_names),
        part_names: cub.part_names,
    })
}
