//! CUB-200-2011 (Wah et al., 2011) with the ten captions per image of Reed et
//! al. (CVPR 2016), in the official folder layout.
//!
//! Read: `CUB_200_2011/{images.txt, image_class_labels.txt, classes.txt,
//! bounding_boxes.txt, parts/parts.txt, parts/part_locs.txt}`, the images
//! under `CUB_200_2011/images/`, captions from `text/<class>/<image>.txt`
//! (AttnGAN layout) or `text_c10/<class>/<image>.txt` (Reed layout), and the
//! text-to-image split (150 training / 50 test classes) from
//! `{train,test}_filenames.txt` or `{train,test}/filenames.pickle`.
//!
//! Images that are listed but absent, caption files that are missing, empty
//! or not UTF-8 are skipped and counted ([`LoadReport`]); an empty split or a
//! missing table is an error.

use super::layout::{read_pickled_names, read_table, DataError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Number of part locations per image (`parts/parts.txt`).
pub const NUM_PARTS: usize = 15;

/// The text-to-image split of the StackGAN / AttnGAN code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CubSplit {
    Train,
    Test,
}

impl CubSplit {
    pub fn name(self) -> &'static str {
        match self {
            CubSplit::Train => "train",
            CubSplit::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "train" => Some(CubSplit::Train),
            "test" => Some(CubSplit::Test),
            _ => None,
        }
    }
}

/// One part location (`part_locs.txt`), in pixels of the stored image.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Part {
    pub x: f32,
    pub y: f32,
    pub visible: bool,
}

/// One image with its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct CubRecord {
    /// Image id of `images.txt` (1-based).
    pub id: usize,
    /// `<class folder>/<image name>` without extension, as in the split files.
    pub key: String,
    /// Class id of `classes.txt` (1-based).
    pub class: usize,
    pub image: PathBuf,
    /// Bounding box `[x, y, w, h]` in pixels of the stored image.
    pub bbox: [f32; 4],
    /// The 15 part locations in the order of `parts/parts.txt`.
    pub parts: [Part; NUM_PARTS],
    /// The image's captions (10 in Reed et al.'s data), lowercase.
    pub captions: Vec<String>,
}

/// What a loader read and what it skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub split: String,
    /// Images the split file lists.
    pub listed: usize,
    pub loaded: usize,
    /// Listed images whose file is absent.
    pub missing_images: usize,
    /// Images skipped because their caption file is missing.
    pub missing_captions: usize,
    /// Caption files that are not UTF-8 or hold no caption.
    pub bad_captions: usize,
    /// Split entries not found in `images.txt`.
    pub unknown_names: usize,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} of {} images loaded; skipped {} missing image files, {} without a caption file, {} with unreadable or empty captions, {} names not in images.txt",
            self.split,
            self.loaded,
            self.listed,
            self.missing_images,
            self.missing_captions,
            self.bad_captions,
            self.unknown_names
        )
    }
}

/// Which caption folder to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionLayout {
    /// `text/` (AttnGAN) if present, else `text_c10/` (Reed).
    Auto,
    AttnGan,
    Reed,
}

/// A split of CUB with captions.
#[derive(Debug, Clone)]
pub struct Cub {
    pub root: PathBuf,
    pub split: CubSplit,
    pub records: Vec<CubRecord>,
    /// Class names by id (index 0 is class 1).
    pub class_names: Vec<String>,
    pub part_names: Vec<String>,
    pub report: LoadReport,
}

impl Cub {
    /// Reads `split` of the CUB folder `root` (the folder that holds
    /// `CUB_200_2011/` and the caption folder).
    pub fn open(root: &Path, split: CubSplit, layout: CaptionLayout) -> Result<Self, DataError> {
        let cub = root.join("CUB_200_2011");
        if !cub.is_dir() {
            return Err(DataError::Missing(format!(
                "{} has no CUB_200_2011 folder",
                root.display()
            )));
        }
        let text_dir = match layout {
            CaptionLayout::AttnGan => root.join("text"),
            CaptionLayout::Reed => root.join("text_c10"),
            CaptionLayout::Auto => {
                if root.join("text").is_dir() {
                    root.join("text")
                } else {
                    root.join("text_c10")
                }
            }
        };
        if !text_dir.is_dir() {
            return Err(DataError::Missing(format!(
                "no caption folder {}",
                text_dir.display()
            )));
        }
        let images = read_table(&cub.join("images.txt"), 2)?;
        let labels = read_table(&cub.join("image_class_labels.txt"), 2)?;
        let classes = read_table(&cub.join("classes.txt"), 2)?;
        let boxes = read_table(&cub.join("bounding_boxes.txt"), 5)?;
        let parts_path = cub.join("parts").join("part_locs.txt");
        let parts = read_table(&parts_path, 5)?;
        let part_names: Vec<String> = read_table(&cub.join("parts").join("parts.txt"), 2)?
            .into_iter()
            .map(|r| r[1..].join(" "))
            .collect();
        let class_names = classes.iter().map(|r| r[1].clone()).collect();

        let num = |s: &str, file: &Path| -> Result<f32, DataError> {
            s.parse::<f32>()
                .map_err(|_| DataError::Parse(file.to_path_buf(), format!("'{s}' is not a number")))
        };
        let id_of = |s: &str, file: &Path| -> Result<usize, DataError> {
            s.parse::<usize>()
                .map_err(|_| DataError::Parse(file.to_path_buf(), format!("'{s}' is not an id")))
        };
        // id -> relative image path
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut paths: HashMap<usize, String> = HashMap::new();
        for r in &images {
            let id = id_of(&r[0], &cub.join("images.txt"))?;
            let rel = r[1..].join(" ");
            let key = rel
                .rsplit_once('.')
                .map_or(rel.as_str(), |(k, _)| k)
                .to_string();
            by_key.insert(key, id);
            paths.insert(id, rel);
        }
        let mut class_of = HashMap::new();
        for r in &labels {
            let f = cub.join("image_class_labels.txt");
            class_of.insert(id_of(&r[0], &f)?, id_of(&r[1], &f)?);
        }
        let mut box_of = HashMap::new();
        for r in &boxes {
            let f = cub.join("bounding_boxes.txt");
            box_of.insert(
                id_of(&r[0], &f)?,
                [
                    num(&r[1], &f)?,
                    num(&r[2], &f)?,
                    num(&r[3], &f)?,
                    num(&r[4], &f)?,
                ],
            );
        }
        let mut parts_of: HashMap<usize, [Part; NUM_PARTS]> = HashMap::new();
        for r in &parts {
            let id = id_of(&r[0], &parts_path)?;
            let k = id_of(&r[1], &parts_path)?;
            if k == 0 || k > NUM_PARTS {
                return Err(DataError::Parse(
                    parts_path.clone(),
                    format!("part id {k} is not in 1..={NUM_PARTS}"),
                ));
            }
            parts_of.entry(id).or_default()[k - 1] = Part {
                x: num(&r[2], &parts_path)?,
                y: num(&r[3], &parts_path)?,
                visible: r[4] == "1",
            };
        }

        let names = split_names(root, split)?;
        let mut report = LoadReport {
            split: format!("CUB {}", split.name()),
            listed: names.len(),
            ..Default::default()
        };
        let mut records = Vec::new();
        for name in names {
            let Some(&id) = by_key.get(&name) else {
                report.unknown_names += 1;
                continue;
            };
            let image = cub.join("images").join(&paths[&id]);
            if !image.is_file() {
                report.missing_images += 1;
                continue;
            }
            let cap_path = text_dir.join(format!("{name}.txt"));
            let bytes = match std::fs::read(&cap_path) {
                Ok(b) => b,
                Err(_) => {
                    report.missing_captions += 1;
                    continue;
                }
            };
            let captions: Vec<String> = match String::from_utf8(bytes) {
                Ok(s) => s
                    .lines()
                    .map(|l| l.trim().to_lowercase())
                    .filter(|l| !l.is_empty())
                    .collect(),
                Err(_) => Vec::new(),
            };
            if captions.is_empty() {
                report.bad_captions += 1;
                continue;
            }
            let bbox = *box_of.get(&id).ok_or_else(|| {
                DataError::Parse(
                    cub.join("bounding_boxes.txt"),
                    format!("no box for image id {id}"),
                )
            })?;
            records.push(CubRecord {
                id,
                key: name,
                class: class_of.get(&id).copied().unwrap_or(0),
                image,
                bbox,
                parts: parts_of.get(&id).copied().unwrap_or_default(),
                captions,
            });
        }
        report.loaded = records.len();
        if records.is_empty() {
            return Err(DataError::EmptySplit(report.to_string()));
        }
        Ok(Self {
            root: root.to_path_buf(),
            split,
            records,
            class_names,
            part_names,
            report,
        })
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Image names of a split: `<split>_filenames.txt`, else
/// `<split>/filenames.pickle` (the StackGAN / AttnGAN files).
fn split_names(root: &Path, split: CubSplit) -> Result<Vec<String>, DataError> {
    let txt = root.join(format!("{}_filenames.txt", split.name()));
    let pickle = root.join(split.name()).join("filenames.pickle");
    let names = if txt.is_file() {
        let s = std::fs::read_to_string(&txt).map_err(|e| DataError::Io(txt.clone(), e))?;
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    } else if pickle.is_file() {
        read_pickled_names(&pickle)?
    } else {
        return Err(DataError::Missing(format!(
            "no split file for '{}': expected {} or {}",
            split.name(),
            txt.display(),
            pickle.display()
        )));
    };
    Ok(names)
}
