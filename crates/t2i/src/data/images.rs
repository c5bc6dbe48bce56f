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
