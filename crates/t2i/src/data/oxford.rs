//! Oxford-102 flowers (Nilsback & Zisserman, 2008) with the ten captions per
//! image of Reed et al. (CVPR 2016), as GAN-INT-CLS and StackGAN use them.
//!
//! Read: `jpg/image_XXXXX.jpg`, `imagelabels.mat` (`labels`, 1 x 8189, class
//! 1..=102 of each image), captions `text_c10/class_XXXXX/image_XXXXX.txt`,
//! and the split: Reed's class split (`trainvalclasses.txt` /
//! `testclasses.txt`, lines `class_XXXXX`) when present, as the text-to-image
//! papers train on 82 classes and test on 20 unseen ones; otherwise the
//! image split of `setid.mat` (`trnid` + `valid` for training, `tstid` for
//! testing).

use super::captioned::{captions_or_count, Captioned, CaptionedSet, Report};
use super::layout::DataError;
use std::collections::HashSet;
use std::path::Path;

/// Number of flower classes.
pub const NUM_CLASSES: usize = 102;

/// A numeric vector stored in a MATLAB v5 `.mat` file (as `f64`).
pub fn read_mat_vector(path: &Path, name: &str) -> Result<Vec<f64>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    let mat = matfile::MatFile::parse(std::io::BufReader::new(file)).map_err(|e| {
        DataError::Parse(path.to_path_buf(), format!("not a readable .mat file: {e}"))
    })?;
    let arr = mat
        .find_by_name(name)
        .ok_or_else(|| DataError::Parse(path.to_path_buf(), format!("no array named '{name}'")))?;
    use matfile::NumericData as N;
    let v: Vec<f64> = match arr.data() {
        N::Double { real, .. } => real.clone(),
        N::Single { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::UInt8 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::UInt16 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::UInt32 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::Int32 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        N::Int64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        _ => {
            return Err(DataError::Parse(
                path.to_path_buf(),
                format!("array '{name}' is not a supported numeric type"),
            ))
        }
    };
    Ok(v)
}

fn to_ids(v: &[f64], path: &Path, what: &str) -> Result<Vec<usize>, DataError> {
    v.iter()
        .map(|&x| {
            if x >= 1.0 && x.fract() == 0.0 {
                Ok(x as usize)
            } else {
                Err(DataError::Parse(
                    path.to_path_buf(),
                    format!("{what} holds {x}, not a positive integer"),
                ))
            }
        })
        .collect()
}

fn class_list(path: &Path) -> Result<HashSet<usize>, DataError> {
    let s = std::fs::read_to_string(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim_start_matches("class_")
                .parse::<usize>()
                .map_err(|_| {
                    DataError::Parse(path.to_path_buf(), format!("'{l}' is not class_XXXXX"))
                })
        })
        .collect()
}

/// Reads split `split` ("train" or "test") of the Oxford-102 folder `root`.
pub fn open(root: &Path, split: &str) -> Result<CaptionedSet, DataError> {
    if split != "train" && split != "test" {
        return Err(DataError::Missing(format!(
            "unknown split '{split}' (use train or test)"
        )));
    }
    let labels_path = root.join("imagelabels.mat");
    if !labels_path.is_file() {
        return Err(DataError::Missing(format!(
            "{} is not an Oxford-102 folder: imagelabels.mat is missing",
            root.display()
        )));
    }
    let text = root.join("text_c10");
    if !text.is_dir() {
        return Err(DataError::Missing(format!(
            "no caption folder {}",
            text.display()
        )));
    }
    let labels = to_ids(
        &read_mat_vector(&labels_path, "labels")?,
        &labels_path,
        "labels",
    )?;
    if let Some(&bad) = labels.iter().find(|&&c| c > NUM_CLASSES) {
        return Err(DataError::Parse(
            labels_path,
            format!("class {bad} is not in 1..=102"),
        ));
    }
    // image ids (1-based) of the split
    let ids: Vec<usize> = if root.join("trainvalclasses.txt").is_file() {
        let file = if split == "train" {
            "trainvalclasses.txt"
        } else {
            "testclasses.txt"
        };
        let classes = class_list(&root.join(file))?;
        (1..=labels.len())
            .filter(|&i| classes.contains(&labels[i - 1]))
            .collect()
    } else {
        let setid = root.join("setid.mat");
        if !setid.is_file() {
            return Err(DataError::Missing(format!(
                "no split for Oxford-102: expected trainvalclasses.txt/testclasses.txt or setid.mat in {}",
                root.display()
            )));
        }
        let parts: &[&str] = if split == "train" {
            &["trnid", "valid"]
        } else {
            &["tstid"]
        };
        let mut ids = Vec::new();
        for p in parts {
            ids.extend(to_ids(&read_mat_vector(&setid, p)?, &setid, p)?);
        }
        ids.sort_unstable();
        ids
    };
    let mut report = Report {
        split: format!("Oxford-102 {split}"),
        listed: ids.len(),
        ..Default::default()
    };
    let mut records = Vec::new();
    for id in ids {
        let Some(&class) = labels.get(id - 1) else {
            report.bad_annotations += 1;
            continue;
        };
        let key = format!("image_{id:05}");
        let image = root.join("jpg").join(format!("{key}.jpg"));
        if !image.is_file() {
            report.missing_images += 1;
            continue;
        }
        let cap = text
            .join(format!("class_{class:05}"))
            .join(format!("{key}.txt"));
        let Some(captions) = captions_or_count(&cap, &mut report) else {
            continue;
        };
        records.push(Captioned::new(key, class, image, captions));
    }
    CaptionedSet {
        name: "oxford-102",
        root: root.to_path_buf(),
        records,
        class_names: (1..=NUM_CLASSES).map(|c| format!("class_{c:05}")).collect(),
        attribute_names: Vec::new(),
        report,
    }
    .finish()
}
