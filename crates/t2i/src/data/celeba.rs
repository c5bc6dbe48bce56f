//! Multi-Modal-CelebA-HQ (Xia et al., CVPR 2021 "TediGAN"): 30,000
//! CelebA-HQ faces, ten captions each, and CelebA's 40 binary attributes, as
//! StyleT2I uses it.
//!
//! Read: images `image/<id>.jpg` (or `CelebA-HQ-img/`), captions
//! `text/<id>.txt` (or `celeba-caption/`), attributes
//! `CelebAMask-HQ-attribute-anno.txt` (count line, the 40 names, then
//! `<id>.jpg` and 40 values of 1 / -1), and the split from
//! `{train,test}_filenames.txt` or `{train,test}/filenames.pickle`.

use super::captioned::{captions_or_count, first_existing, Captioned, CaptionedSet, Report};
use super::layout::{read_pickled_names, DataError};
use std::collections::HashMap;
use std::path::Path;

/// Attribute file names tried in order.
const ATTRIBUTE_FILES: [&str; 2] = ["CelebAMask-HQ-attribute-anno.txt", "list_attr_celeba.txt"];

/// Attribute names, and each image stem's values.
type Attributes = (Vec<String>, HashMap<String, Vec<bool>>);

/// Reads the attribute table: names and, per image stem, the values.
fn read_attributes(path: &Path) -> Result<Attributes, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| DataError::Parse(path.to_path_buf(), "not UTF-8 text".into()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let _count = lines.next();
    let names: Vec<String> = lines
        .next()
        .ok_or_else(|| DataError::Parse(path.to_path_buf(), "no attribute-name line".into()))?
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut values = HashMap::new();
    for (n, line) in lines.enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != names.len() + 1 {
            return Err(DataError::Parse(
                path.to_path_buf(),
                format!(
                    "line {}: {} values, expected {}",
                    n + 3,
                    cols.len() - 1,
                    names.len()
                ),
            ));
        }
        let stem = cols[0]
            .rsplit_once('.')
            .map_or(cols[0], |(s, _)| s)
            .to_string();
        let v = cols[1..]
            .iter()
            .map(|c| match *c {
                "1" => Ok(true),
                "-1" | "0" => Ok(false),
                _ => Err(DataError::Parse(
                    path.to_path_buf(),
                    format!("line {}: '{c}' is not 1 or -1", n + 3),
                )),
            })
            .collect::<Result<Vec<bool>, _>>()?;
        values.insert(stem, v);
    }
    Ok((names, values))
}

fn split_names(root: &Path, split: &str) -> Result<Vec<String>, DataError> {
    let txt = root.join(format!("{split}_filenames.txt"));
    let pickle = root.join(split).join("filenames.pickle");
    if txt.is_file() {
        let s = std::fs::read_to_string(&txt).map_err(|e| DataError::Io(txt.clone(), e))?;
        Ok(s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    } else if pickle.is_file() {
        read_pickled_names(&pickle)
    } else {
        Err(DataError::Missing(format!(
            "no split file for '{split}': expected {} or {}",
            txt.display(),
            pickle.display()
        )))
    }
}

/// Reads split `split` ("train" or "test") of the Multi-Modal-CelebA-HQ
/// folder `root`.
pub fn open(root: &Path, split: &str) -> Result<CaptionedSet, DataError> {
    if split != "train" && split != "test" {
        return Err(DataError::Missing(format!(
            "unknown split '{split}' (use train or test)"
        )));
    }
    let images = first_existing(root, &["image", "images", "CelebA-HQ-img"]).ok_or_else(|| {
        DataError::Missing(format!(
            "{} is not a Multi-Modal-CelebA-HQ folder: no image/ (or CelebA-HQ-img/) folder",
            root.display()
        ))
    })?;
    let text = first_existing(root, &["text", "celeba-caption"]).ok_or_else(|| {
        DataError::Missing(format!("no caption folder text/ in {}", root.display()))
    })?;
    let (attribute_names, attributes) = match first_existing(root, &ATTRIBUTE_FILES) {
        Some(p) => read_attributes(&p)?,
        None => (Vec::new(), HashMap::new()),
    };
    let names = split_names(root, split)?;
    let mut report = Report {
        split: format!("Multi-Modal-CelebA-HQ {split}"),
        listed: names.len(),
        ..Default::default()
    };
    let mut records = Vec::new();
    for name in names {
        let stem = name.rsplit('/').next().unwrap_or(&name);
        let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s).to_string();
        let Some(image) = ["jpg", "png"]
            .iter()
            .map(|e| images.join(format!("{stem}.{e}")))
            .find(|p| p.is_file())
        else {
            report.missing_images += 1;
            continue;
        };
        let Some(captions) = captions_or_count(&text.join(format!("{stem}.txt")), &mut report)
        else {
            continue;
        };
        let mut r = Captioned::new(stem.clone(), 0, image, captions);
        match attributes.get(&stem) {
            Some(v) => r.attributes = v.clone(),
            None if !attribute_names.is_empty() => report.bad_annotations += 1,
            None => {}
        }
        records.push(r);
    }
    CaptionedSet {
        name: "mm-celeba-hq",
        root: root.to_path_buf(),
        records,
        class_names: Vec::new(),
        attribute_names,
        report,
    }
    .finish()
}
