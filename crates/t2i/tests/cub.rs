//! The CUB loader on a small fixture written in the official layout, its
//! error and skip cases, the preprocessing cache, and the real subset in
//! `../shared/data/cub` when present.

mod common;

use common::real_cub;
use std::fs;
use std::path::Path;
use t2i::data::cub::{CaptionLayout, Cub, CubSplit};
use t2i::data::prepare::{crop_box, load_side, prepare, ImageBatcher};
use tch::Device;

/// Writes a 6-image CUB fixture: ids 1-4 train, 5-6 test. Image 2 is
/// missing, image 3 is not a decodable image, image 4's caption file is not
/// UTF-8, image 5's box lies outside its image.
fn fixture(root: &Path, layout: &str) {
    let cub = root.join("CUB_200_2011");
    fs::create_dir_all(cub.join("parts")).unwrap();
    let classes = ["001.Red_Bird", "002.Blue_Bird"];
    let names: Vec<(usize, &str, String)> = (1..=6)
        .map(|i| {
            let c = if i <= 4 { 0 } else { 1 };
            (i, classes[c], format!("Bird_{i:04}"))
        })
        .collect();
    let mut images = String::new();
    let mut labels = String::new();
    let mut boxes = String::new();
    let mut parts = String::new();
    for (i, c, n) in &names {
        images += &format!("{i} {c}/{n}.jpg\n");
        labels += &format!("{i} {}\n", if *c == classes[0] { 1 } else { 2 });
        let b = if *i == 5 {
            "500 500 20 20".to_string()
        } else {
            "10 12 40 30".to_string()
        };
        boxes += &format!("{i} {b}\n");
        for k in 1..=15 {
            parts += &format!("{i} {k} {}.0 20.0 {}\n", 10 + k, k % 2);
        }
        let dir = cub.join("images").join(c);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{n}.jpg"));
        match i {
            2 => {}
            3 => fs::write(&path, b"not a jpeg").unwrap(),
            _ => {
                let img = image::RgbImage::from_fn(64, 48, |x, y| {
                    image::Rgb([(x * 4) as u8, (y * 5) as u8, (*i * 40) as u8])
                });
                img.save(&path).unwrap();
            }
        }
        let tdir = root.join(layout).join(c);
        fs::create_dir_all(&tdir).unwrap();
        let cap = tdir.join(format!("{n}.txt"));
        if *i == 4 {
            fs::write(&cap, [0xffu8, 0xfe, 0x00, 0x41]).unwrap();
        } else {
            fs::write(&cap, format!("a bird number {i}\nThis Bird has wings\n\n")).unwrap();
        }
    }
    fs::write(cub.join("images.txt"), images).unwrap();
    fs::write(cub.join("image_class_labels.txt"), labels).unwrap();
    fs::write(cub.join("bounding_boxes.txt"), boxes).unwrap();
    fs::write(cub.join("parts").join("part_locs.txt"), parts).unwrap();
    let pn: String = (1..=15).map(|k| format!("{k} part {k}\n")).collect();
    fs::write(cub.join("parts").join("parts.txt"), pn).unwrap();
    fs::write(cub.join("classes.txt"), "1 001.Red_Bird\n2 002.Blue_Bird\n").unwrap();
    let split = |r: std::ops::RangeInclusive<usize>| -> String {
        names[r.start() - 1..*r.end()]
            .iter()
            .map(|(_, c, n)| format!("{c}/{n}\n"))
            .collect()
    };
    fs::write(root.join("train_filenames.txt"), split(1..=4)).unwrap();
    fs::write(root.join("test_filenames.txt"), split(5..=6)).unwrap();
}

#[test]
fn cub_fixture_loads_skips_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), "text");
    let train = Cub::open(dir.path(), CubSplit::Train, CaptionLayout::Auto).unwrap();
    // 1 and 3 load (3 is corrupt but only decoding finds that); 2 missing; 4 not UTF-8
    assert_eq!(train.report.listed, 4);
    assert_eq!(train.report.missing_images, 1);
    assert_eq!(train.report.bad_captions, 1);
    assert_eq!(train.len(), 2);
    let r = &train.records[0];
    assert_eq!(r.key, "001.Red_Bird/Bird_0001");
    assert_eq!(r.class, 1);
    assert_eq!(r.bbox, [10.0, 12.0, 40.0, 30.0]);
    assert_eq!(r.captions, vec!["a bird number 1", "this bird has wings"]);
    assert_eq!(r.parts[1].x, 12.0);
    assert!(r.parts[0].visible && !r.parts[1].visible);
    assert!(train.report.to_string().contains("1 missing image files"));

    // preprocessing skips the undecodable image and counts it; cache reused
    let cache = dir.path().join("cache");
    let p = prepare(&train, load_side(32), Some(&cache), false).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p.corrupt, 1);
    assert_eq!(p.images.size(), vec![1, 38, 38, 3]);
    assert!(matches!(p.cache, Some((_, false))));
    let again = prepare(&train, load_side(32), Some(&cache), false).unwrap();
    assert!(matches!(again.cache, Some((_, true))));
    assert!(again.images.equal(&p.images));
    // a changed image invalidates the cache
    let img = image::RgbImage::from_pixel(64, 48, image::Rgb([1, 2, 3]));
    std::thread::sleep(std::time::Duration::from_millis(20));
    img.save(&train.records[0].image).unwrap();
    let third = prepare(&train, load_side(32), Some(&cache), false).unwrap();
    assert!(matches!(third.cache, Some((_, false))));

    // batches: random crop + flip, pyramid of sizes, values in [-1, 1]
    let b = ImageBatcher {
        prepared: third,
        sizes: vec![16, 32],
        augment: true,
    };
    let mut rng = ImageBatcher::rng(0, 0);
    let x = b.batch(&[0, 0], &mut rng, Device::Cpu);
    assert_eq!(x[0].size(), vec![2, 3, 16, 16]);
    assert_eq!(x[1].size(), vec![2, 3, 32, 32]);
    assert!(x[1].abs().max().double_value(&[]) <= 1.0);

    // test split: the box of image 5 is outside its image, counted
    let test = Cub::open(dir.path(), CubSplit::Test, CaptionLayout::AttnGan).unwrap();
    assert_eq!(test.len(), 2);
    let p = prepare(&test, 38, None, false).unwrap();
    assert_eq!(p.boxes_outside, 1);
}

#[test]
fn cub_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), "text_c10");
    // Reed layout is found by Auto
    assert!(Cub::open(dir.path(), CubSplit::Train, CaptionLayout::Auto).is_ok());
    let e = Cub::open(dir.path(), CubSplit::Train, CaptionLayout::AttnGan)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no caption folder"), "{e}");
    // missing split file
    fs::remove_file(dir.path().join("test_filenames.txt")).unwrap();
    let e = Cub::open(dir.path(), CubSplit::Test, CaptionLayout::Auto)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no split file for 'test'"), "{e}");
    // empty split
    fs::write(dir.path().join("test_filenames.txt"), "\n").unwrap();
    let e = Cub::open(dir.path(), CubSplit::Test, CaptionLayout::Auto)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("empty split"), "{e}");
    // a malformed table names the file and line
    fs::write(
        dir.path().join("CUB_200_2011").join("bounding_boxes.txt"),
        "1 2 3\n",
    )
    .unwrap();
    let e = Cub::open(dir.path(), CubSplit::Train, CaptionLayout::Auto)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bounding_boxes.txt: line 1"), "{e}");
    // not a CUB folder
    let e = Cub::open(
        &dir.path().join("nope"),
        CubSplit::Train,
        CaptionLayout::Auto,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no CUB_200_2011 folder"), "{e}");
}

#[test]
fn official_crop_box() {
    // r = int(0.75 * 40) = 30 around (30, 27)
    assert_eq!(
        crop_box([10.0, 12.0, 40.0, 30.0], 64, 48),
        ([0, 0, 60, 48], false)
    );
    assert_eq!(
        crop_box([100.0, 100.0, 20.0, 20.0], 500, 400),
        ([95, 95, 125, 125], false)
    );
    assert!(crop_box([500.0, 500.0, 20.0, 20.0], 64, 48).1);
}

#[test]
fn real_cub_subset_reads() {
    let Some(root) = real_cub() else { return };
    let train = Cub::open(&root, CubSplit::Train, CaptionLayout::Auto).unwrap();
    let test = Cub::open(&root, CubSplit::Test, CaptionLayout::Auto).unwrap();
    assert_eq!(train.report.listed, 8855);
    assert_eq!(test.report.listed, 2933);
    assert!(
        train.len() > 1000 && test.len() > 500,
        "{} / {}",
        train.report,
        test.report
    );
    assert_eq!(train.report.loaded + train.report.missing_images, 8855);
    // the T2I split is by class: no class in both
    let tc: std::collections::HashSet<_> = train.records.iter().map(|r| r.class).collect();
    assert!(test.records.iter().all(|r| !tc.contains(&r.class)));
    assert!(train.records.iter().all(|r| r.captions.len() == 10));
}
