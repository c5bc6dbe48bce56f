//! Captioned images ready for training and evaluation: prepared crops of a
//! data set in the CUB layout with their captions and classes, shared by
//! every family that trains on a real data set.

use super::cub::{CaptionLayout, Cub, CubSplit};
use super::prepare::{load_side, prepare, ImageBatcher};
use crate::error::Result;
use std::path::Path;
use tch::Tensor;

/// A captioned image set: prepared images, their captions and class.
pub struct CaptionedImages {
    pub images: ImageBatcher,
    /// Captions per stored image.
    pub captions: Vec<Vec<String>>,
    /// Class id per stored image (for same-class masking and R-precision).
    pub classes: Vec<i64>,
}

impl CaptionedImages {
    /// The images of the `k` classes with the smallest ids (all when `k`
    /// is 0 or at least the number of classes).
    pub fn first_classes(self, k: usize) -> Self {
        let mut ids: Vec<i64> = self.classes.clone();
        ids.sort_unstable();
        ids.dedup();
        if k == 0 || k >= ids.len() {
            return self;
        }
        let keep: std::collections::HashSet<i64> = ids[..k].iter().copied().collect();
        let idx: Vec<usize> = (0..self.classes.len())
            .filter(|&i| keep.contains(&self.classes[i]))
            .collect();
        let rows = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let mut images = self.images;
        images.prepared.images = images.prepared.images.index_select(0, &rows);
        images.prepared.record = idx.iter().map(|&i| images.prepared.record[i]).collect();
        // the prepared-image cache file no longer describes these rows
        if let Some((p, read)) = images.prepared.cache.take() {
            let name = format!("{}-first{k}", p.display());
            images.prepared.cache = Some((std::path::PathBuf::from(name), read));
        }
        Self {
            images,
            captions: idx.iter().map(|&i| self.captions[i].clone()).collect(),
            classes: idx.iter().map(|&i| self.classes[i]).collect(),
        }
    }
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
