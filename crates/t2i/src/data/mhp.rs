//! MPII Human Pose (Andriluka et al., CVPR 2014) with three captions per
//! image (MHP, Reed et al., NIPS 2016 "Learning What and Where to Draw").
//!
//! Read: the images under `images/`; the joints from the MPII annotation
//! converted to JSON (`mpii_annotations.json`, the common conversion of the
//! MATLAB release: a list of people with `img_paths`, `joint_self` (16 x
//! `[x, y, visible]`), `objpos`, `scale_provided`, `isValidation`); captions
//! `text/<image stem>.txt`, one per line. `isValidation` = 1 is the test
//! split. One record per annotated person.

use super::captioned::{captions_or_count, Captioned, CaptionedSet, Keypoint, LabelledBox, Report};
use super::layout::DataError;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// MPII's 16 joints in annotation order.
pub const JOINTS: [&str; 16] = [
    "right ankle",
    "right knee",
    "right hip",
    "left hip",
    "left knee",
    "left ankle",
    "pelvis",
    "thorax",
    "upper neck",
    "head top",
    "right wrist",
    "right elbow",
    "right shoulder",
    "left shoulder",
    "left elbow",
    "left wrist",
];

#[derive(Deserialize)]
struct Person {
    img_paths: String,
    joint_self: Vec<Vec<f32>>,
    #[serde(default)]
    objpos: Option<[f32; 2]>,
    #[serde(default)]
    scale_provided: Option<f32>,
    #[serde(rename = "isValidation", default)]
    is_validation: f32,
}

/// Reads split `split` ("train" or "test") of the MHP folder `root`.
pub fn open(root: &Path, split: &str) -> Result<CaptionedSet, DataError> {
    let want_val = match split {
        "train" => false,
        "test" => true,
        _ => {
            return Err(DataError::Missing(format!(
                "unknown split '{split}' (use train or test)"
            )))
        }
    };
    let ann = root.join("mpii_annotations.json");
    if !ann.is_file() {
        return Err(DataError::Missing(format!(
            "{} is not an MHP folder: mpii_annotations.json is missing",
            root.display()
        )));
    }
    let text = root.join("text");
    if !text.is_dir() {
        return Err(DataError::Missing(format!(
            "no caption folder {}",
            text.display()
        )));
    }
    let bytes = std::fs::read(&ann).map_err(|e| DataError::Io(ann.clone(), e))?;
    let people: Vec<Person> = serde_json::from_slice(&bytes)
        .map_err(|e| DataError::Parse(ann.clone(), format!("not an MPII annotation list: {e}")))?;
    let people: Vec<Person> = people
        .into_iter()
        .filter(|p| (p.is_validation >= 0.5) == want_val)
        .collect();
    let mut report = Report {
        split: format!("MHP {split}"),
        listed: people.len(),
        ..Default::default()
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut records = Vec::new();
    for p in people {
        let image = root.join("images").join(&p.img_paths);
        if !image.is_file() {
            report.missing_images += 1;
            continue;
        }
        let stem = p
            .img_paths
            .rsplit_once('.')
            .map_or(p.img_paths.as_str(), |(s, _)| s)
            .to_string();
        let Some(captions) = captions_or_count(&text.join(format!("{stem}.txt")), &mut report)
        else {
            continue;
        };
        if p.joint_self.len() != JOINTS.len() || p.joint_self.iter().any(|j| j.len() < 2) {
            report.bad_annotations += 1;
            continue;
        }
        let n = seen.entry(stem.clone()).or_default();
        let key = if *n == 0 {
            stem.clone()
        } else {
            format!("{stem}_{n}")
        };
        *n += 1;
        let mut r = Captioned::new(key, 0, image, captions);
        r.keypoints = p
            .joint_self
            .iter()
            .zip(JOINTS)
            .map(|(j, name)| {
                // MPII marks absent joints with non-positive coordinates
                let present = j[0] > 0.0 && j[1] > 0.0;
                Keypoint {
                    name,
                    x: j[0],
                    y: j[1],
                    visible: present && j.get(2).is_none_or(|&v| v > 0.0),
                }
            })
            .collect();
        if let (Some([cx, cy]), Some(s)) = (p.objpos, p.scale_provided) {
            // MPII's scale is the person's height / 200 px
            let half = 100.0 * s;
            r.boxes.push(LabelledBox {
                label: "person".into(),
                bbox: [cx - half, cy - half, 2.0 * half, 2.0 * half],
            });
        }
        records.push(r);
    }
    CaptionedSet {
        name: "mhp",
        root: root.to_path_buf(),
        records,
        class_names: Vec::new(),
        attribute_names: Vec::new(),
        report,
    }
    .finish()
}
