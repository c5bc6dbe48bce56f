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

/// The boxes and part locations of the images `prepared` holds of `split`
/// (read from the folder `root` in the CUB layout).
pub fn cub_layouts(
    root: &Path,
    split: CubSplit,
    prepared: &super::prepare::Prepared,
) -> Result<CubLayouts> {
    use super::prepare::CropFrame;
    use crate::data::DataError;
    let cub = Cub::open(root, split, CaptionLayout::Auto)?;
    let side = prepared.side;
    let mut boxes = Vec::with_capacity(prepared.record.len() * 4);
    let mut kps = Vec::with_capacity(prepared.record.len() * 45);
    for &i in &prepared.record {
        let r = &cub.records[i];
        let (w, h) = image::image_dimensions(&r.image)
            .map_err(|e| DataError::Image(r.image.clone(), e.to_string()))?;
        let frame = CropFrame::new(Some(r.bbox), w, h, side);
        let [bx, by, bw, bh] = r.bbox;
        let a = frame.map([bx, by]).map(|v| v.clamp(0.0, 1.0));
        let b = frame.map([bx + bw, by + bh]).map(|v| v.clamp(0.0, 1.0));
        boxes.extend_from_slice(&[a[0], a[1], b[0] - a[0], b[1] - a[1]]);
        for p in &r.parts {
            let [x, y] = frame.map([p.x, p.y]);
            let inside = (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y);
            let vis = p.visible && inside;
            kps.extend_from_slice(&if vis { [x, y, 1.0] } else { [0.0; 3] });
        }
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
