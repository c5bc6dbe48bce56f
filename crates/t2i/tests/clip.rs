//! CLIP against Hugging Face transformers' `CLIPModel` on a small
//! random-weight model in the layout of `openai/clip-vit-base-patch32`
//! (`scripts/fixtures/make_clip_fixtures.sh`): CLIP's BPE ids, text and
//! image features within 1e-4, and the clear refusals of bad folders.

mod common;

use std::path::PathBuf;
use t2i::text::clip::{pair_score, Clip};
use tch::{Device, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn tokenizer_gives_the_reference_ids() {
    let clip = Clip::load(&fixtures(), Device::Cpu).unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap())
            .unwrap();
    let caps: Vec<&str> = r["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let want: Vec<Vec<i64>> = serde_json::from_value(r["ids"].clone()).unwrap();
    assert_eq!(clip.text.tokenize(&caps).unwrap(), want);
    // a caption longer than 77 tokens keeps its end token
    let long = "red ".repeat(200);
    let ids = clip.text.tokenize(&[long.as_str()]).unwrap();
    assert_eq!(ids[0].len(), 77);
    assert_eq!(ids[0][76], want[0].last().copied().unwrap());
}

#[test]
fn text_and_image_features_match_transformers() {
    let clip = Clip::load(&fixtures(), Device::Cpu).unwrap();
    let r = common::read(&fixtures().join("reference.safetensors"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap())
            .unwrap();
    let caps: Vec<&str> = meta["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    // transformers padded to 77 with the end token; t2i does not pad
    let text = tch::no_grad(|| clip.text.encode_text(&caps)).unwrap(); // [4, 24]
    let d = max_diff(&text, &r["text_features"]);
    assert!(d < 1e-4, "text features differ by {d}");
    // one caption alone gives the same row as in the batch
    let one = tch::no_grad(|| clip.text.encode_text(&caps[1..2])).unwrap();
    assert!(max_diff(&one, &text.narrow(0, 1, 1)) < 1e-5);
    let pixels = &r["pixels"]; // [3, 3, 64, 64] in [0, 1]
    let image = tch::no_grad(|| clip.vision.image_features(pixels));
    let d = max_diff(&image, &r["image_features"]);
    assert!(d < 1e-4, "image features differ by {d}");
    // images in [-1, 1] at the input side take the same path
    let image2 = tch::no_grad(|| clip.vision.encode_images(&(pixels * 2.0 - 1.0)));
    assert!(max_diff(&image, &image2) < 1e-4);
    // other sides are resized; the score is 100 cos, floored at 0
    let small = pixels.upsample_nearest2d([32, 32], None, None) * 2.0 - 1.0;
    let s = tch::no_grad(|| clip.score(&small, &caps[..3])).unwrap();
    assert_eq!(s.size(), [3]);
    let manual = pair_score(
        &tch::no_grad(|| clip.vision.encode_images(&small)),
        &text.narrow(0, 0, 3),
    );
    assert!(max_diff(&s, &manual) < 1e-4);
    assert!(s.min().double_value(&[]) >= 0.0 && s.max().double_value(&[]) <= 100.0);
}

#[test]
fn bad_folders_and_captions_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = Clip::load(dir.path(), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("not a CLIP folder") && e.contains("config.json"),
        "{e}"
    );
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixtures().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("config.json"), "{\"text_config\": 3}").unwrap();
    let e = Clip::load(dir.path(), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("config.json") && !e.contains('\n'), "{e}");
    let clip = Clip::load(&fixtures(), Device::Cpu).unwrap();
    assert!(clip.text.encode_text(&["  "]).is_err());
}

/// What a model trained with CLIP stores (config, tokenizer, text tower)
/// gives the folder's ids and features: a checkpoint needs no CLIP folder.
#[test]
fn text_side_survives_a_checkpoint() {
    use t2i::text::clip::ClipText;
    use t2i::text::TextEncoder;
    let text = ClipText::load(&fixtures(), Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut meta = text.describe();
    meta.insert("model".into(), "test".into());
    t2i::checkpoint::save(&path, &meta, &t2i::checkpoint::named(&text.vs, "text")).unwrap();
    let back =
        ClipText::from_checkpoint(&t2i::checkpoint::load(&path).unwrap(), Device::Cpu).unwrap();
    let caps = [
        "A small red Triangle, top-left!",
        "the bird's crown is blue",
    ];
    assert_eq!(back.tokenize(&caps).unwrap(), text.tokenize(&caps).unwrap());
    let (a, ea) = tch::no_grad(|| text.encode(&caps)).unwrap();
    let (b, _) = tch::no_grad(|| back.encode(&caps)).unwrap();
    assert_eq!(max_diff(&a.sentence, &b.sentence), 0.0);
    assert_eq!(a.words.size()[2], text.word_dim());
    // the word mask covers each caption's tokens, start and end included
    let real = a
        .mask
        .sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Int64);
    assert_eq!(real.int64_value(&[0]) as usize, ea[0].ids.len());
    assert!(ea[0].unknown.is_empty());
}
