//! MS-COCO 2014 captions (Lin et al., 2014; Chen et al., 2015), as
//! GAN-INT-CLS, StackGAN and AttnGAN use it: `train2014` for training and
//! `val2014` for testing, five captions per image.
//!
//! Read: `annotations/captions_{train,val}2014.json` and the images under
//! `{train,val}2014/`; `annotations/instances_{train,val}2014.json`, when
//! present, adds each image's object boxes with their category names.

use super::captioned::{box_inside, Captioned, CaptionedSet, LabelledBox, Report};
use super::layout::DataError;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Deserialize)]
struct ImageEntry {
    id: u64,
    file_name: String,
    #[serde(default)]
    width: f32,
    #[serde(default)]
    height: f32,
}

#[derive(Deserialize)]
struct CaptionEntry {
    image_id: u64,
    caption: String,
}

#[derive(Deserialize)]
struct CaptionsFile {
    images: Vec<ImageEntry>,
    annotations: Vec<CaptionEntry>,
}

#[derive(Deserialize)]
struct InstanceEntry {
    image_id: u64,
    bbox: [f32; 4],
    category_id: u64,
}

#[derive(Deserialize)]
struct Category {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct InstancesFile {
    annotations: Vec<InstanceEntry>,
    categories: Vec<Category>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        DataError::Parse(
            path.to_path_buf(),
            format!("not a COCO annotation file: {e}"),
        )
    })
}

/// Reads split `split` ("train": train2014, "test": val2014) of the COCO
/// folder `root`.
pub fn open(root: &Path, split: &str) -> Result<CaptionedSet, DataError> {
    let part = match split {
        "train" => "train2014",
        "test" => "val2014",
        _ => {
            return Err(DataError::Missing(format!(
                "unknown split '{split}' (use train or test)"
            )))
        }
    };
    let ann = root.join("annotations");
    let caps_path = ann.join(format!("captions_{part}.json"));
    if !caps_path.is_file() {
        return Err(DataError::Missing(format!(
            "{} is not a COCO 2014 folder: {} is missing",
            root.display(),
            caps_path.display()
        )));
    }
    let caps: CaptionsFile = read_json(&caps_path)?;
    let mut by_image: HashMap<u64, Vec<String>> = HashMap::new();
    for a in caps.annotations {
        let c = a.caption.trim().to_lowercase();
        if !c.is_empty() {
            by_image.entry(a.image_id).or_default().push(c);
        }
    }
    let inst_path = ann.join(format!("instances_{part}.json"));
    let mut boxes: HashMap<u64, Vec<LabelledBox>> = HashMap::new();
    let mut categories: BTreeMap<u64, String> = BTreeMap::new();
    if inst_path.is_file() {
        let inst: InstancesFile = read_json(&inst_path)?;
        categories = inst
            .categories
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        for a in inst.annotations {
            let label = categories.get(&a.category_id).cloned().unwrap_or_default();
            boxes.entry(a.image_id).or_default().push(LabelledBox {
                label,
                bbox: a.bbox,
            });
        }
    }
    let mut report = Report {
        split: format!("COCO {part}"),
        listed: caps.images.len(),
        ..Default::default()
    };
    let mut images = caps.images;
    images.sort_by_key(|i| i.id);
    let mut records = Vec::new();
    for im in images {
        let image = root.join(part).join(&im.file_name);
        if !image.is_file() {
            report.missing_images += 1;
            continue;
        }
        let Some(captions) = by_image.remove(&im.id) else {
            report.missing_captions += 1;
            continue;
        };
        let key = im
            .file_name
            .rsplit_once('.')
            .map_or(im.file_name.as_str(), |(k, _)| k)
            .to_string();
        let mut r = Captioned::new(key, 0, image, captions);
        for b in boxes.remove(&im.id).unwrap_or_default() {
            if im.width > 0.0 && !box_inside(b.bbox, im.width, im.height) {
                report.bad_annotations += 1;
            } else {
                r.boxes.push(b);
            }
        }
        records.push(r);
    }
    CaptionedSet {
        name: "coco-2014",
        root: root.to_path_buf(),
        records,
        class_names: categories.into_values().collect(),
        attribute_names: Vec::new(),
        report,
    }
    .finish()
}
