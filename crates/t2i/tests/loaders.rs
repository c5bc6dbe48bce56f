//! The Oxford-102, COCO 2014, MHP and Multi-Modal-CelebA-HQ loaders on small
//! fixtures written in each data set's official layout, with their skip and
//! error cases (missing or corrupt images, captions that are not UTF-8, boxes
//! outside the image, missing split files, empty splits).

use std::fs;
use std::path::Path;
use t2i::data::prepare::prepare;
use t2i::data::{celeba, coco, mhp, oxford};

fn write_jpg(path: &Path, seed: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, (seed * 50) as u8])
    })
    .save(path)
    .unwrap();
}

#[path = "common/mat.rs"]
mod mat;

fn write_mat(path: &Path, arrays: &[(&str, Vec<f64>)]) {
    fs::write(path, mat::mat_file(arrays)).unwrap();
}

/// Oxford-102: 8 images of classes 1, 1, 2, 2, 3, 3, 1, 2. Image 2 is
/// missing, image 3 is corrupt, image 4's caption is not UTF-8.
fn oxford_fixture(root: &Path) {
    let labels = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 2.0];
    write_mat(
        &root.join("imagelabels.mat"),
        &[("labels", labels.to_vec())],
    );
    write_mat(
        &root.join("setid.mat"),
        &[
            ("trnid", vec![1.0, 2.0, 3.0]),
            ("valid", vec![4.0, 7.0]),
            ("tstid", vec![5.0, 6.0, 8.0]),
        ],
    );
    for (i, &c) in labels.iter().enumerate() {
        let id = i + 1;
        let img = root.join("jpg").join(format!("image_{id:05}.jpg"));
        match id {
            2 => {}
            3 => {
                fs::create_dir_all(img.parent().unwrap()).unwrap();
                fs::write(&img, b"not a jpeg").unwrap();
            }
            _ => write_jpg(&img, id as u32),
        }
        let dir = root
            .join("text_c10")
            .join(format!("class_{:05}", c as usize));
        fs::create_dir_all(&dir).unwrap();
        let cap = dir.join(format!("image_{id:05}.txt"));
        if id == 4 {
            fs::write(cap, [0xffu8, 0xfe, 0x41]).unwrap();
        } else {
            fs::write(
                cap,
                format!("This flower has {id} petals\nthe petals are pink\n"),
            )
            .unwrap();
        }
    }
}

#[test]
fn oxford_reads_setid_and_class_split() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    oxford_fixture(root);
    let train = oxford::open(root, "train").unwrap();
    // trnid + valid = 1, 2, 3, 4, 7: 2 missing, 4 bad caption -> 1, 3, 7
    let keys: Vec<&str> = train.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["image_00001", "image_00003", "image_00007"]);
    assert_eq!(train.records[0].class, 1);
    assert_eq!(train.records[0].captions[0], "this flower has 1 petals");
    assert_eq!(
        (train.report.missing_images, train.report.bad_captions),
        (1, 1)
    );
    assert!(
        train.report.to_string().contains("3 of 5 images loaded"),
        "{}",
        train.report
    );
    // the corrupt image is skipped and counted when the images are prepared
    let p = prepare(&train, 19, None, false).unwrap();
    assert_eq!((p.len(), p.corrupt), (2, 1));
    assert_eq!(p.images.size(), [2, 19, 19, 3]);
    let test = oxford::open(root, "test").unwrap();
    assert_eq!(test.len(), 3);

    // Reed's class split takes precedence over setid.mat
    fs::write(
        root.join("trainvalclasses.txt"),
        "class_00001\nclass_00003\n",
    )
    .unwrap();
    fs::write(root.join("testclasses.txt"), "class_00002\n").unwrap();
    let train = oxford::open(root, "train").unwrap();
    let classes: Vec<usize> = train.records.iter().map(|r| r.class).collect();
    assert_eq!(classes, [1, 3, 3, 1]);
    let test = oxford::open(root, "test").unwrap();
    assert_eq!(
        test.records
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>(),
        ["image_00003", "image_00008"]
    );

    // errors: no labels; a corrupt .mat file; no split
    fs::write(root.join("imagelabels.mat"), b"garbage").unwrap();
    let e = oxford::open(root, "train").unwrap_err().to_string();
    assert!(e.contains("imagelabels.mat") && e.contains(".mat"), "{e}");
    fs::remove_file(root.join("imagelabels.mat")).unwrap();
    let e = oxford::open(root, "train").unwrap_err().to_string();
    assert!(e.contains("imagelabels.mat is missing"), "{e}");
    write_mat(&root.join("imagelabels.mat"), &[("labels", vec![1.0; 8])]);
    fs::remove_file(root.join("trainvalclasses.txt")).unwrap();
    fs::remove_file(root.join("setid.mat")).unwrap();
    let e = oxford::open(root, "train").unwrap_err().to_string();
    assert!(e.contains("no split for Oxford-102"), "{e}");
}

fn coco_fixture(root: &Path) {
    let ann = root.join("annotations");
    fs::create_dir_all(&ann).unwrap();
    for (part, ids) in [
        ("train2014", [1u64, 2, 3, 4]),
        ("val2014", [10, 11, 12, 13]),
    ] {
        let images: Vec<_> = ids
            .iter()
            .map(|id| serde_json::json!({"id": id, "file_name": format!("COCO_{part}_{id:012}.jpg"), "width": 40, "height": 30}))
            .collect();
        // the last image has no caption; the second is missing on disk
        let caps: Vec<_> = ids[..3]
            .iter()
            .flat_map(|id| {
                [
                    serde_json::json!({"image_id": id, "id": id * 10, "caption": format!("A cat number {id} on a mat.")}),
                    serde_json::json!({"image_id": id, "id": id * 10 + 1, "caption": "  "}),
                ]
            })
            .collect();
        fs::write(
            ann.join(format!("captions_{part}.json")),
            serde_json::json!({"images": images, "annotations": caps}).to_string(),
        )
        .unwrap();
        let inst = serde_json::json!({
            "annotations": [
                {"image_id": ids[0], "bbox": [2.0, 3.0, 10.0, 12.0], "category_id": 17, "iscrowd": 0},
                {"image_id": ids[0], "bbox": [35.0, 3.0, 10.0, 12.0], "category_id": 18, "iscrowd": 0},
            ],
            "categories": [{"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}],
        });
        fs::write(ann.join(format!("instances_{part}.json")), inst.to_string()).unwrap();
        for (k, id) in ids.iter().enumerate() {
            if k != 1 {
                write_jpg(
                    &root.join(part).join(format!("COCO_{part}_{id:012}.jpg")),
                    k as u32,
                );
            }
        }
    }
}

#[test]
fn coco_reads_captions_and_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    coco_fixture(root);
    let train = coco::open(root, "train").unwrap();
    assert_eq!(train.len(), 2);
    let r = &train.records[0];
    assert_eq!(r.key, "COCO_train2014_000000000001");
    assert_eq!(r.captions, ["a cat number 1 on a mat."]);
    // the dog box runs past the image's right edge: dropped and counted
    assert_eq!(r.boxes.len(), 1);
    assert_eq!(
        (r.boxes[0].label.as_str(), r.boxes[0].bbox),
        ("cat", [2.0, 3.0, 10.0, 12.0])
    );
    assert_eq!(train.report.bad_annotations, 1);
    assert_eq!(
        (train.report.missing_images, train.report.missing_captions),
        (1, 1)
    );
    assert_eq!(train.class_names, ["cat", "dog"]);
    let test = coco::open(root, "test").unwrap();
    assert_eq!(test.records[0].key, "COCO_val2014_000000000010");
    // a broken annotation file and a missing one
    fs::write(
        root.join("annotations/captions_val2014.json"),
        "{\"images\": 3",
    )
    .unwrap();
    let e = coco::open(root, "test").unwrap_err().to_string();
    assert!(
        e.contains("captions_val2014.json") && e.contains("not a COCO annotation file"),
        "{e}"
    );
    fs::remove_file(root.join("annotations/captions_val2014.json")).unwrap();
    let e = coco::open(root, "test").unwrap_err().to_string();
    assert!(e.contains("is not a COCO 2014 folder"), "{e}");
}

#[test]
fn mhp_reads_joints_and_captions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let joints = |dx: f32| -> Vec<Vec<f32>> {
        (0..16)
            .map(|k| {
                if k == 9 {
                    vec![-1.0, -1.0, 0.0]
                } else {
                    vec![5.0 + dx + k as f32, 10.0, 1.0]
                }
            })
            .collect()
    };
    let people = serde_json::json!([
        {"img_paths": "a.jpg", "joint_self": joints(0.0), "objpos": [20.0, 15.0], "scale_provided": 0.1, "isValidation": 0.0},
        {"img_paths": "a.jpg", "joint_self": joints(2.0), "objpos": [22.0, 15.0], "scale_provided": 0.1, "isValidation": 0.0},
        {"img_paths": "b.jpg", "joint_self": joints(0.0), "objpos": [20.0, 15.0], "scale_provided": 0.1, "isValidation": 0.0},
        {"img_paths": "c.jpg", "joint_self": joints(0.0)[..3].to_vec(), "isValidation": 0.0},
        {"img_paths": "d.jpg", "joint_self": joints(0.0), "isValidation": 1.0},
    ]);
    fs::write(root.join("mpii_annotations.json"), people.to_string()).unwrap();
    for (n, s) in [("a", 1), ("c", 3), ("d", 4)] {
        write_jpg(&root.join("images").join(format!("{n}.jpg")), s);
    }
    fs::create_dir_all(root.join("text")).unwrap();
    for n in ["a", "b", "c", "d"] {
        fs::write(
            root.join("text").join(format!("{n}.txt")),
            "A man is running\nhe wears red\na runner\n",
        )
        .unwrap();
    }
    let train = mhp::open(root, "train").unwrap();
    let keys: Vec<&str> = train.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "a_1"]);
    let r = &train.records[0];
    assert_eq!(r.captions.len(), 3);
    assert_eq!(r.keypoints.len(), 16);
    assert_eq!(
        (
            r.keypoints[0].name,
            r.keypoints[0].x,
            r.keypoints[0].visible
        ),
        ("right ankle", 5.0, true)
    );
    assert!(!r.keypoints[9].visible, "absent head top");
    assert_eq!(r.boxes[0].bbox, [10.0, 5.0, 20.0, 20.0]);
    assert_eq!(
        (train.report.missing_images, train.report.bad_annotations),
        (1, 1)
    );
    let test = mhp::open(root, "test").unwrap();
    assert_eq!(test.len(), 1);
    // every test image gone: an empty split is an error naming the split
    fs::remove_file(root.join("images/d.jpg")).unwrap();
    let e = mhp::open(root, "test").unwrap_err().to_string();
    assert!(e.contains("empty split") && e.contains("MHP test"), "{e}");
}

#[test]
fn celeba_reads_captions_attributes_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..5 {
        if i != 3 {
            write_jpg(&root.join("image").join(format!("{i}.jpg")), i);
        }
        fs::create_dir_all(root.join("text")).unwrap();
        let cap = root.join("text").join(format!("{i}.txt"));
        if i == 2 {
            fs::write(cap, "\n\n").unwrap();
        } else {
            fs::write(cap, "The woman has blond hair.\nShe is smiling.\n").unwrap();
        }
    }
    fs::write(
        root.join("CelebAMask-HQ-attribute-anno.txt"),
        "5\nBlond_Hair Smiling Male\n0.jpg 1 1 -1\n1.jpg -1 1 1\n2.jpg 1 -1 -1\n3.jpg 1 1 1\n4.jpg -1 -1 -1\n",
    )
    .unwrap();
    fs::write(root.join("train_filenames.txt"), "0\n1\n2\n3\n").unwrap();
    let train = celeba::open(root, "train").unwrap();
    assert_eq!(
        train
            .records
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>(),
        ["0", "1"]
    );
    assert_eq!(train.attribute_names, ["Blond_Hair", "Smiling", "Male"]);
    assert_eq!(train.records[1].attributes, [false, true, true]);
    assert_eq!(train.records[0].captions[0], "the woman has blond hair.");
    assert_eq!(
        (train.report.missing_images, train.report.bad_captions),
        (1, 1)
    );
    let e = celeba::open(root, "test").unwrap_err().to_string();
    assert!(e.contains("no split file for 'test'"), "{e}");
    fs::write(
        root.join("CelebAMask-HQ-attribute-anno.txt"),
        "5\nA B\n0.jpg 1\n",
    )
    .unwrap();
    let e = celeba::open(root, "train").unwrap_err().to_string();
    assert!(e.contains("1 values, expected 2"), "{e}");
}
