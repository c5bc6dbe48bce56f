//! What every captioned data set loader gives: records of an image file, its
//! captions and its annotations (class, boxes, keypoints, attributes), and a
//! report of what was skipped. CUB has its own richer record
//! ([`super::cub::CubRecord`]); the other data sets use [`Captioned`].

use super::layout::DataError;
use std::path::{Path, PathBuf};

/// A labelled box `[x, y, w, h]` in pixels of the stored image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledBox {
    /// Category name (COCO) or empty.
    pub label: String,
    pub bbox: [f32; 4],
}

/// A named keypoint in pixels; `visible` false when the annotation marks it
/// occluded or absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Keypoint {
    pub name: &'static str,
    pub x: f32,
    pub y: f32,
    pub visible: bool,
}

/// One captioned image.
#[derive(Debug, Clone, PartialEq)]
pub struct Captioned {
    /// Name of the image within the data set (file stem or id).
    pub key: String,
    /// Class id (1-based; 0 when the data set has no classes).
    pub class: usize,
    pub image: PathBuf,
    /// Captions, trimmed and lowercased.
    pub captions: Vec<String>,
    /// Boxes (COCO instances; the person box of MPII).
    pub boxes: Vec<LabelledBox>,
    /// Keypoints (MPII's 16 joints).
    pub keypoints: Vec<Keypoint>,
    /// Binary attributes, true when present (CelebA's 40).
    pub attributes: Vec<bool>,
}

impl Captioned {
    pub fn new(key: String, class: usize, image: PathBuf, captions: Vec<String>) -> Self {
        Self {
            key,
            class,
            image,
            captions,
            boxes: Vec::new(),
            keypoints: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

/// What a loader read and what it skipped, printed as one line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// e.g. "Oxford-102 train"
    pub split: String,
    pub listed: usize,
    pub loaded: usize,
    /// Listed images whose file is absent.
    pub missing_images: usize,
    /// Images without a caption file (or without any caption entry).
    pub missing_captions: usize,
    /// Caption files that are not UTF-8 or hold no caption.
    pub bad_captions: usize,
    /// Annotations dropped as invalid (a box outside the image, ...).
    pub bad_annotations: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} of {} images loaded; skipped {} missing image files, {} without captions, {} with unreadable or empty captions; {} invalid annotations dropped",
            self.split,
            self.loaded,
            self.listed,
            self.missing_images,
            self.missing_captions,
            self.bad_captions,
            self.bad_annotations
        )
    }
}

/// A split of a captioned data set.
#[derive(Debug, Clone)]
pub struct CaptionedSet {
    /// Data set name ("oxford-102", "coco-2014", "mhp", "mm-celeba-hq").
    pub name: &'static str,
    pub root: PathBuf,
    pub records: Vec<Captioned>,
    /// Class (or category / attribute) names, as the data set names them.
    pub class_names: Vec<String>,
    pub attribute_names: Vec<String>,
    pub report: Report,
}

impl CaptionedSet {
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// Errors when nothing was loaded (an empty split is never silently used).
    pub(crate) fn finish(mut self) -> Result<Self, DataError> {
        self.report.loaded = self.records.len();
        if self.records.is_empty() {
            return Err(DataError::EmptySplit(self.report.to_string()));
        }
        Ok(self)
    }
}

/// The lines of a caption file: `Ok(None)` when the file is absent,
/// `Ok(Some(empty))` when it is not UTF-8 or holds no caption.
pub fn read_captions(path: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(path).ok()?;
    Some(match String::from_utf8(bytes) {
        Ok(s) => s
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect(),
        Err(_) => Vec::new(),
    })
}

/// Reads a caption file into `captions`, counting what is missing or bad.
/// Returns `None` when the image must be skipped.
pub fn captions_or_count(path: &Path, report: &mut Report) -> Option<Vec<String>> {
    match read_captions(path) {
        None => {
            report.missing_captions += 1;
            None
        }
        Some(c) if c.is_empty() => {
            report.bad_captions += 1;
            None
        }
        Some(c) => Some(c),
    }
}

/// True when box `[x, y, w, h]` has a positive size and lies within a
/// `width` x `height` image (one pixel of slack for rounding).
pub fn box_inside(b: [f32; 4], width: f32, height: f32) -> bool {
    let [x, y, w, h] = b;
    w > 0.0 && h > 0.0 && x >= -1.0 && y >= -1.0 && x + w <= width + 1.0 && y + h <= height + 1.0
}

/// Reads the first file of `candidates` that exists.
pub fn first_existing(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(|c| root.join(c)).find(|p| p.exists())
}
