//! The evaluation classifier: it learns a two-class toy set, holds out one
//! image in ten, round-trips through its checkpoint, and its features feed
//! the Inception Score function.

use t2i::data::images::CaptionedImages;
use t2i::data::prepare::{ImageBatcher, Prepared};
use t2i::models::classifier::ClassifierConfig;
use t2i::train::classifier::{ClassifierModel, ClassifierTrainer};
use tch::{Device, Kind, Tensor};

/// Both tests seed libtorch's global generator and draw from it: run them
/// one at a time so each sees only its own draws.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// 80 images 38x38: class 3 reddish, class 7 bluish, random noise on top.
fn toy() -> CaptionedImages {
    let n = 80;
    let side = 38;
    let noise = Tensor::rand([n, side, side, 3], (Kind::Float, Device::Cpu)) * 60.0;
    let classes: Vec<i64> = (0..n).map(|i| if i % 2 == 0 { 3 } else { 7 }).collect();
    let base: Vec<f32> = classes
        .iter()
        .flat_map(|&c| {
            if c == 3 {
                [180.0, 40.0, 40.0]
            } else {
                [40.0, 40.0, 180.0]
            }
        })
        .collect();
    let base = Tensor::from_slice(&base).view([n, 1, 1, 3]);
    let images = (noise + base).clamp(0.0, 255.0).to_kind(Kind::Uint8);
    CaptionedImages {
        images: ImageBatcher {
            prepared: Prepared {
                images,
                side: side as u32,
                record: (0..n as usize).collect(),
                corrupt: 0,
                boxes_outside: 0,
                cache: None,
            },
            sizes: vec![32],
            augment: true,
        },
        captions: vec![vec!["x".to_string()]; n as usize],
        classes,
    }
}

/// A narrow 32x32 classifier's trainer on `data` (batch 16, Adam 3e-3).
fn small_trainer(data: &t2i::data::images::CaptionedImages) -> ClassifierTrainer {
    let config = ClassifierConfig {
        image_size: 32,
        width: 8,
        ..ClassifierConfig::tiny()
    };
    ClassifierTrainer::new(config, data, 3e-3, 16, 1, Device::Cpu)
}

#[test]
fn classifier_learns_round_trips_and_scores() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let data = toy();
    let mut t = small_trainer(&data);
    assert_eq!(t.model.class_ids, [3, 7]);
    assert_eq!((t.val_idx.len(), t.train_idx.len()), (8, 72));
    let first = t.train_step(&data.images).loss;
    let mut last = first;
    for _ in 0..40 {
        last = t.train_step(&data.images).loss;
    }
    assert!(last < first, "loss {first} -> {last}");
    let acc = t.val_accuracy(&data.images);
    assert!(acc >= 0.875, "held-out accuracy {acc}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.safetensors");
    t.model.val_accuracy = acc;
    t.save(&p).unwrap();
    let m = ClassifierModel::load(&p, Device::Cpu).unwrap();
    assert_eq!(m.class_ids, [3, 7]);
    assert!(m.label().contains("2 classes"));
    // any image size is resized to the classifier's input
    let x = Tensor::rand([5, 3, 48, 48], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let (f1, p1) = m.features(&x, 2);
    let (f2, p2) = t.model.features(&x, 5);
    assert_eq!(f1.size(), [5, 64]);
    assert_eq!(p1.size(), [5, 2]);
    // chunks of 2 and 5 may take different float kernels (1.2e-6 apart on
    // one core)
    let gap = (&f1 - &f2).abs().max().double_value(&[]);
    assert!(gap < 1e-4, "features differ by {gap}");
    assert!(
        (p1.sum_dim_intlist(1, false, Kind::Double) - 1.0)
            .abs()
            .max()
            .double_value(&[])
            < 1e-9
    );
    let (is, _) = t2i::eval::stats::inception_score(&p2, 1).unwrap();
    assert!((1.0..=2.0 + 1e-9).contains(&is), "IS of 2 classes {is}");
    // the wrong kind of checkpoint is refused with its kind named
    let e = ClassifierModel::load(&dir.path().join("none.safetensors"), Device::Cpu);
    assert!(e.is_err());
}

/// DAMSM's `vgg` image encoder starts from a classifier's stages (weights and
/// BatchNorm statistics), and a classifier of another width is refused.
#[test]
fn damsm_vgg_image_encoder_starts_from_the_classifier() {
    use t2i::models::damsm::CnnArch;
    use t2i::train::damsm::{DamsmConfig, DamsmTrainer};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(1);
    let data = toy();
    let mut t = small_trainer(&data);
    for _ in 0..3 {
        t.train_step(&data.images);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.safetensors");
    t.save(&p).unwrap();
    let ck = t2i::checkpoint::load(&p).unwrap();
    let mut dc = DamsmConfig::tiny();
    dc.image.arch = CnnArch::Vgg;
    dc.image.width = 8;
    dc.image.image_size = 32;
    let vocab = t2i::text::Vocab::build(["a red bird"], 1);
    let mut d = DamsmTrainer::new(dc.clone(), vocab.clone(), 0, Device::Cpu);
    let n = d.init_image_from_classifier(&ck).unwrap();
    // 4 stages x (2 conv weights + 2 BNs x weight, bias, running mean, var)
    assert_eq!(n, 4 * (2 + 2 * 4));
    let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let pool = t.model.net.forward_t(&x, false).pool; // [2, 64]
    let (_, g) = d.image.forward_t(&x, false);
    let (_, g_random) = DamsmTrainer::new(dc.clone(), vocab, 0, Device::Cpu)
        .image
        .forward_t(&x, false);
    // same projection weights (same seed), different bodies
    assert!((&g - &g_random).abs().max().double_value(&[]) > 1e-4);
    assert_eq!(pool.size(), [2, 64]);
    // a classifier of another width does not fit
    dc.image.width = 16;
    let mut other = DamsmTrainer::new(dc, t2i::text::Vocab::build(["a"], 1), 0, Device::Cpu);
    let e = other
        .init_image_from_classifier(&ck)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
}
