//! Writes the starting corpus of every fuzz target into `corpus/<target>/`:
//! small but valid inputs (a data-set folder of each layout, captions,
//! `--set` lines of every family, a t2i checkpoint). `scripts/fuzz.sh` adds
//! `.pth` files written by PyTorch and checkpoints of real tiny runs.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use t2i_fuzz::pack;

type Files = Vec<(String, Vec<u8>)>;

fn jpg(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(12, 10, |x, y| {
        image::Rgb([(x * 20) as u8, (y * 25) as u8, seed.wrapping_mul(60)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("jpeg");
    out.into_inner()
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn cub() -> Files {
    let c = "CUB_200_2011";
    let mut f: Files = vec![
        (
            format!("{c}/images.txt"),
            text("1 001.Gull/gull_1.jpg\n2 001.Gull/gull_2.jpg\n"),
        ),
        (format!("{c}/image_class_labels.txt"), text("1 1\n2 1\n")),
        (format!("{c}/classes.txt"), text("1 001.Gull\n")),
        (
            format!("{c}/bounding_boxes.txt"),
            text("1 1.0 1.0 8.0 6.0\n2 2.0 0.0 9.0 9.0\n"),
        ),
        (format!("{c}/parts/parts.txt"), text("1 back\n2 beak\n")),
        (
            format!("{c}/parts/part_locs.txt"),
            text("1 1 3.0 4.0 1\n1 2 5.0 2.0 1\n2 1 0.0 0.0 0\n2 2 7.5 3.0 1\n"),
        ),
        (
            "train_filenames.txt".into(),
            text("001.Gull/gull_1\n001.Gull/gull_2\n"),
        ),
        ("test_filenames.txt".into(), text("001.Gull/gull_2\n")),
        (
            "text/001.Gull/gull_1.txt".into(),
            text("a white bird with grey wings\nthis bird is white\n"),
        ),
        (
            "text/001.Gull/gull_2.txt".into(),
            text("a small bird with a yellow beak\n"),
        ),
    ];
    f.push((format!("{c}/images/001.Gull/gull_1.jpg"), jpg(1)));
    f.push((format!("{c}/images/001.Gull/gull_2.jpg"), jpg(2)));
    f
}

#[path = "../../crates/t2i/tests/common/mat.rs"]
mod mat;
use mat::mat_file as mat;

fn oxford() -> Files {
    vec![
        ("imagelabels.mat".into(), mat(&[("labels", vec![1.0, 2.0])])),
        (
            "setid.mat".into(),
            mat(&[
                ("trnid", vec![1.0]),
                ("valid", vec![2.0]),
                ("tstid", vec![2.0]),
            ]),
        ),
        ("jpg/image_00001.jpg".into(), jpg(1)),
        ("jpg/image_00002.jpg".into(), jpg(2)),
        (
            "text_c10/class_00001/image_00001.txt".into(),
            text("this flower has pink petals\n"),
        ),
        (
            "text_c10/class_00002/image_00002.txt".into(),
            text("a yellow flower\n"),
        ),
        ("trainvalclasses.txt".into(), text("class_00001\n")),
        ("testclasses.txt".into(), text("class_00002\n")),
    ]
}

fn coco() -> Files {
    let mut f = Files::new();
    for part in ["train2014", "val2014"] {
        let file = format!("COCO_{part}_000000000001.jpg");
        let caps = serde_json::json!({
            "images": [{"id": 1, "file_name": file, "width": 12, "height": 10}],
            "annotations": [{"image_id": 1, "id": 10, "caption": "A cat on a mat."}],
        });
        let inst = serde_json::json!({
            "annotations": [{"image_id": 1, "bbox": [1.0, 1.0, 5.0, 4.0], "category_id": 17, "iscrowd": 0}],
            "categories": [{"id": 17, "name": "cat"}],
        });
        f.push((
            format!("annotations/captions_{part}.json"),
            caps.to_string().into_bytes(),
        ));
        f.push((
            format!("annotations/instances_{part}.json"),
            inst.to_string().into_bytes(),
        ));
        f.push((format!("{part}/{file}"), jpg(3)));
    }
    f
}

fn mhp() -> Files {
    let person = |img: &str, val: u8| {
        let joints: Vec<[f64; 3]> = (0..16).map(|j| [1.0 + j as f64 * 0.5, 2.0, 1.0]).collect();
        serde_json::json!({
            "img_paths": img, "joint_self": joints, "objpos": [6.0, 5.0],
            "scale_provided": 0.1, "isValidation": val,
        })
    };
    let ann = serde_json::json!([person("a.jpg", 0), person("b.jpg", 1)]);
    vec![
        ("mpii_annotations.json".into(), ann.to_string().into_bytes()),
        ("images/a.jpg".into(), jpg(4)),
        ("images/b.jpg".into(), jpg(5)),
        ("text/a.txt".into(), text("a man is running\n")),
        ("text/b.txt".into(), text("a woman plays tennis\n")),
    ]
}

fn celeba() -> Files {
    let names: Vec<String> = (0..40).map(|i| format!("Attr_{i}")).collect();
    let row = |id: u32| {
        let v: Vec<&str> = (0..40)
            .map(|i| if i % 3 == 0 { "1" } else { "-1" })
            .collect();
        format!("{id}.jpg {}", v.join(" "))
    };
    let attrs = format!("2\n{}\n{}\n{}\n", names.join(" "), row(0), row(1));
    vec![
        (
            "CelebAMask-HQ-attribute-anno.txt".into(),
            attrs.into_bytes(),
        ),
        ("image/0.jpg".into(), jpg(6)),
        ("image/1.jpg".into(), jpg(7)),
        ("text/0.txt".into(), text("she has blond hair\n")),
        ("text/1.txt".into(), text("he is smiling\n")),
        ("train_filenames.txt".into(), text("0\n")),
        ("test_filenames.txt".into(), text("1\n")),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("corpus folder");
    fs::write(dir.join(name), bytes).expect("corpus file");
}

/// A copy of a safetensors checkpoint without its checksum (as files written
/// before checksums were), so that a mutated config still loads.
fn strip_checksum(path: &Path, dir: &Path) {
    let bytes = fs::read(path).expect("checkpoint");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("header length")) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    header["__metadata__"]
        .as_object_mut()
        .expect("metadata")
        .remove("t2i.sha256");
    let mut h = serde_json::to_vec(&header).expect("json");
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    let name = format!(
        "{}-nosum",
        path.file_name().expect("name").to_string_lossy()
    );
    write(dir, &name, &out);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = Path::new(args.first().map_or("corpus", String::as_str)).to_path_buf();
    if args.get(1).map(String::as_str) == Some("--strip-checksum") {
        for p in &args[2..] {
            strip_checksum(Path::new(p), &out.join("checkpoint_loader"));
        }
        return;
    }

    let sets = [cub(), oxford(), coco(), mhp(), celeba()];
    for (k, files) in sets.iter().enumerate() {
        for split in [0u8, 0x80] {
            write(
                &out.join("dataset_index"),
                &format!("seed-{k}-{split}"),
                &pack(k as u8 | split, files),
            );
        }
    }

    let captions = [
        "a large green triangle in the centre",
        "A Blue Square.",
        "two red circles near the bottom",
        "Café ﬁsh, naïve CIRCLES!!",
        "this bird has wings that are brown and has a yellow belly",
        "red\u{1}red circle",
        "",
    ];
    for (i, c) in captions.iter().enumerate() {
        write(
            &out.join("caption_text"),
            &format!("seed-{i}"),
            c.as_bytes(),
        );
    }

    for (f, fam) in t2i::family::families().iter().enumerate() {
        for (p, preset) in fam.presets().iter().enumerate() {
            let table = fam.config(preset).expect("preset");
            let pick = (f + p * t2i::family::families().len()) as u8;
            let mut lines = Vec::new();
            for (k, v) in &table {
                match v {
                    toml::Value::Table(inner) => {
                        for (k2, v2) in inner.iter().take(3) {
                            if !v2.is_table() {
                                lines.push(format!("{k}.{k2}={v2}"));
                            }
                        }
                    }
                    v => lines.push(format!("{k}={v}")),
                }
            }
            let mut input = vec![pick];
            input.extend_from_slice(lines.join("\n").as_bytes());
            write(
                &out.join("config_set"),
                &format!("seed-{}-{preset}", fam.name()),
                &input,
            );
            let mut input = vec![pick];
            input.extend_from_slice(toml::to_string(&table).expect("toml").as_bytes());
            write(
                &out.join("config_set"),
                &format!("toml-{}-{preset}", fam.name()),
                &input,
            );
        }
    }

    // a small checkpoint in t2i's format that names no family
    let dir = out.join("checkpoint_loader");
    fs::create_dir_all(&dir).expect("corpus folder");
    let meta = BTreeMap::from([("model".to_string(), "gan-int-cls".to_string())]);
    let tensors = vec![
        (
            "g.fc.weight".to_string(),
            tch::Tensor::arange(12, (tch::Kind::Float, tch::Device::Cpu)).view([3, 4]),
        ),
        ("step".to_string(), tch::Tensor::from(7i64)),
    ];
    t2i::checkpoint::save(&dir.join("seed-small"), &meta, &tensors).expect("checkpoint");
    println!("corpus written to {}", out.display());
}
