//! all-MiniLM-L6-v2 against the sentence vectors its PyPI package's own
//! Python gives (`scripts/fixtures/make_minilm_reference.sh`). The model
//! folder comes from `scripts/setup_minilm.sh` (`make test` runs it).

mod common;

use t2i::text::minilm::MiniLm;
use t2i::text::TextEncoder;
use tch::Device;

fn model_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("T2I_MINILM").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2"),
        std::path::PathBuf::from,
    );
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        common::missing(&format!(
            "no MiniLM folder at {} (run scripts/setup_minilm.sh)",
            dir.display()
        ));
        None
    }
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = model_dir() else { return };
    let m = MiniLm::load(&dir, Device::Cpu).unwrap();
    assert_eq!(m.sentence_dim(), 384);
    let r: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm/reference.json")).unwrap();
    let sents: Vec<&str> = r["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let want: Vec<Vec<f64>> = r["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    // one batch (padded to the longest) and one at a time must agree
    let batch = m.embed(&sents).unwrap();
    for (i, s) in sents.iter().enumerate() {
        let one = m.embed(&[s]).unwrap();
        let got: Vec<f32> = Vec::<f32>::try_from(one.view([-1])).unwrap();
        let got_b: Vec<f32> = Vec::<f32>::try_from(batch.get(i as i64)).unwrap();
        let mut worst = 0f64;
        for ((g, gb), w) in got.iter().zip(&got_b).zip(&want[i]) {
            worst = worst.max((*g as f64 - w).abs()).max((*gb as f64 - w).abs());
        }
        eprintln!("sentence {i}: max abs diff {worst:.2e}");
        assert!(worst < 1e-5, "sentence {i}: max abs diff {worst}");
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

#[test]
fn minilm_folder_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let e = MiniLm::load(dir.path(), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("config.json is missing"), "{e}");
    let Some(real) = model_dir() else { return };
    let m = MiniLm::load(&real, Device::Cpu).unwrap();
    let e = m.embed(&["  "]).err().unwrap().to_string();
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn damsm_word_vectors_start_from_minilm() {
    use t2i::text::damsm::{RnnEncoder, RnnEncoderConfig};
    use t2i::text::Vocab;
    let Some(dir) = model_dir() else { return };
    let m = MiniLm::load(&dir, Device::Cpu).unwrap();
    let vocab = Vocab::build(["a red bird", "a crimson bird with a blue wing"], 1);
    let config = RnnEncoderConfig {
        embed_dim: 384,
        ..RnnEncoderConfig::tiny()
    };
    let mut enc = RnnEncoder::new(config.clone(), vocab.clone(), Device::Cpu);
    let pad_before = enc.vs.variables()["encoder.weight"].get(0).copy();
    assert_eq!(enc.init_words_from_minilm(&m).unwrap(), vocab.len() - 2);
    let table = enc.vs.variables()["encoder.weight"].copy();
    // <pad> keeps its vector; every word's row is MiniLM's unit vector of it
    assert!(table.get(0).equal(&pad_before));
    let id = |w: &str| vocab.words.iter().position(|x| x == w).unwrap() as i64;
    let red = m.embed(&["red"]).unwrap().get(0);
    assert!(table.get(id("red")).allclose(&red, 1e-6, 1e-6, false));
    let cos = |a: &str, b: &str| {
        let (x, y) = (table.get(id(a)), table.get(id(b)));
        (x.dot(&y) / (x.norm() * y.norm())).double_value(&[])
    };
    // synonyms start closer than unrelated words
    assert!(cos("red", "crimson") > cos("red", "wing"));
    // a 128-d embedding cannot take 384-d vectors
    let mut small = RnnEncoder::new(RnnEncoderConfig::tiny(), vocab, Device::Cpu);
    let e = small.init_words_from_minilm(&m).unwrap_err().to_string();
    assert!(e.contains("384"), "{e}");
}
