//! DAMSM training end to end on the shapes data set written in the CUB
//! layout (through the real CUB loader), checkpoint round trip, and the
//! R-precision protocol on constructed vectors.

mod common;

use t2i::checkpoint;
use t2i::data::cub::CubSplit;
use t2i::data::images::load_cub;
use t2i::data::images::LoadOptions;
use t2i::data::shapes::{export_cub_layout, Shapes, ShapesConfig};
use t2i::eval::rprecision::r_precision;
use t2i::train::damsm::{DamsmConfig, DamsmTrainer};
use tch::{Device, Tensor};

/// Network initialisation and the text encoder's dropout draw from
/// libtorch's global generator: every test here takes this lock, so the
/// seeded draws of one test do not interleave with another's.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// A 64x64 shapes data set written in the CUB layout to a temporary folder.
fn shapes_in_cub_layout(train_size: usize, test_size: usize, seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shapes = Shapes::new(ShapesConfig {
        image_size: 64,
        train_size,
        test_size,
        seed,
        ..Default::default()
    })
    .unwrap();
    export_cub_layout(&shapes, dir.path()).unwrap();
    dir
}

/// Centre-cropped training images of a shapes set in the CUB layout (so a
/// single cached variant is what the body would see) and their vocabulary.
fn centre_crop_train(
    train_size: usize,
    seed: u64,
) -> (
    tempfile::TempDir,
    t2i::data::images::CaptionedImages,
    t2i::text::Vocab,
) {
    let dir = shapes_in_cub_layout(train_size, 8, seed);
    let (train, _) = load_cub(
        dir.path(),
        CubSplit::Train,
        &LoadOptions {
            size: 64,
            cache: None,
            augment: false,
            progress: false,
        },
    )
    .unwrap();
    let vocab = t2i::text::Vocab::build(train.captions.iter().flatten().map(String::as_str), 1);
    (dir, train, vocab)
}

/// Copies of every image-encoder variable, to compare after training.
fn snapshot(t: &DamsmTrainer) -> Vec<(String, Tensor)> {
    t.image_vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.copy()))
        .collect()
}

/// A step on cached features against one that runs the body.
fn assert_same_loss(cached: f64, direct: f64) {
    assert!(
        (cached - direct).abs() < 1e-4 * direct.abs().max(1.0),
        "cached {cached} vs direct {direct}"
    );
}

#[test]
fn damsm_trains_on_cub_layout_and_round_trips() {
    let _rng = rng_lock();
    let dir = shapes_in_cub_layout(192, 120, 4);
    let (train, lines) = load_cub(
        dir.path(),
        CubSplit::Train,
        &LoadOptions {
            size: 64,
            cache: None,
            augment: true,
            progress: false,
        },
    )
    .unwrap();
    assert_eq!(train.captions.len(), 192, "{lines:?}");
    let (test, _) = load_cub(
        dir.path(),
        CubSplit::Test,
        &LoadOptions {
            size: 64,
            cache: None,
            augment: false,
            progress: false,
        },
    )
    .unwrap();
    let vocab = t2i::text::Vocab::build(train.captions.iter().flatten().map(String::as_str), 1);
    let config = DamsmConfig {
        batch_size: 16,
        ..DamsmConfig::tiny()
    };
    let mut t = DamsmTrainer::new(config, vocab, 3, Device::Cpu);
    let losses: Vec<f64> = (0..40)
        .map(|_| t.train_step(&train).unwrap().loss)
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()));
    let first: f64 = losses[..8].iter().sum();
    let last: f64 = losses[32..].iter().sum();
    assert!(last < first, "loss did not fall: {first:.2} -> {last:.2}");

    let p = dir.path().join("damsm.safetensors");
    t.save(&p).unwrap();
    let u = DamsmTrainer::from_checkpoint(&checkpoint::load(&p).unwrap(), Device::Cpu).unwrap();
    assert_eq!(u.step, 40);
    let a = t.real_r_precision(&test, usize::MAX, 1).unwrap();
    let b = u.real_r_precision(&test, usize::MAX, 1).unwrap();
    assert_eq!(a.mean, b.mean);
    assert_eq!(a.images, 120);
    // the standalone text encoder checkpoint reloads with the same vectors
    let tp = dir.path().join("text.safetensors");
    t.text.save(&tp).unwrap();
    let text = t2i::text::damsm::RnnEncoder::load(&tp, Device::Cpu).unwrap();
    let caps = ["a small red circle in the centre"];
    let (f1, _) = t2i::text::TextEncoder::encode(&t.text, &caps).unwrap();
    let (f2, _) = t2i::text::TextEncoder::encode(&text, &caps).unwrap();
    assert!(f1.sentence.allclose(&f2.sentence, 0.0, 0.0, false));
}

#[test]
fn r_precision_protocol() {
    let _rng = rng_lock();
    // 200 images of 20 classes; each caption vector equals its image vector
    let n = 200i64;
    let classes: Vec<i64> = (0..n).map(|i| i % 20).collect();
    let v = Tensor::randn([n, 16], (tch::Kind::Float, Device::Cpu));
    let (m, s) = r_precision(&v, &classes, &v, &v, &classes, 100, 10, 0);
    assert_eq!((m, s), (1.0, 0.0));
    // unrelated caption vectors: near chance (1 in 100)
    let w = Tensor::randn([n, 16], (tch::Kind::Float, Device::Cpu));
    let (m, _) = r_precision(&v, &classes, &w, &w, &classes, 100, 10, 0);
    assert!(m < 0.06, "{m}");
}

/// A frozen image body (`frozen_body`): its weights and batch-norm statistics
/// never change, only the projections learn, and a step on cached body
/// features gives the loss of a step that runs the body.
#[test]
fn frozen_body_trains_only_projections() {
    let _rng = rng_lock();
    use t2i::models::damsm::CnnArch;
    let (_dir, train, vocab) = centre_crop_train(96, 5);
    let mut config = DamsmConfig {
        batch_size: 12,
        ..DamsmConfig::tiny()
    };
    config.image.arch = CnnArch::Vgg;
    config.image.width = 8;
    config.image.frozen_body = true;
    // no dropout: both trainers' steps must not draw from libtorch's
    // generator, which parallel tests share
    config.text.dropout = 0.0;
    let mut cached = DamsmTrainer::new(config, vocab, 7, Device::Cpu);
    // a second trainer with the same weights, built from the first
    let mut direct = DamsmTrainer::from_checkpoint(&cached.to_checkpoint(), Device::Cpu).unwrap();
    let before = snapshot(&cached);
    let body_buffers = |t: &DamsmTrainer| -> Vec<Tensor> {
        let mut v: Vec<(String, Tensor)> = t.image_vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter()
            .filter(|(k, _)| !k.starts_with("emb_"))
            .map(|(_, t)| t.copy())
            .collect()
    };

    // the features go through a cache file: the first call writes it, a
    // second trainer with the same body reads it back
    let dir = tempfile::tempdir().unwrap();
    let note = cached
        .cache_body_features(&train, 1, Some(dir.path()), false)
        .unwrap()
        .unwrap();
    assert!(note.contains("written"), "{note}");
    let mut reread = DamsmTrainer::from_checkpoint(&cached.to_checkpoint(), Device::Cpu).unwrap();
    let note = reread
        .cache_body_features(&train, 1, Some(dir.path()), false)
        .unwrap()
        .unwrap();
    assert!(note.contains("read"), "{note}");
    let r = reread.train_step(&train).unwrap();
    let a = cached.train_step(&train).unwrap();
    let b = direct.train_step(&train).unwrap();
    assert_eq!(
        a.loss, r.loss,
        "features read back from the cache file differ"
    );
    assert_same_loss(a.loss, b.loss);
    for _ in 0..5 {
        assert!(cached.train_step(&train).unwrap().loss.is_finite());
    }
    let after = cached.image_vs.variables();
    let mut moved = 0;
    for (k, v0) in &before {
        let same = after[k].equal(v0);
        if k.starts_with("emb_") {
            moved += usize::from(!same);
        } else {
            assert!(same, "frozen body weight {k} changed");
        }
    }
    assert!(moved >= 2, "the projections did not learn");
    // the running statistics of the direct trainer's body are untouched too
    // (eval mode), so both encode images alike after training
    let da: Vec<Tensor> = body_buffers(&direct);
    let ca: Vec<Tensor> = body_buffers(&cached);
    for (x, y) in da.iter().zip(&ca) {
        assert!(x.equal(y));
    }
    // R-precision from the body features computed once equals the one that
    // runs the whole encoder
    let full = cached.real_r_precision(&train, 60, 3).unwrap();
    let body = cached.body_globals(&train, 60);
    assert_eq!(body.size(), [60, cached.config.image.head_dim()]);
    let from_body = cached.real_r_precision_from_body(&train, &body, 3).unwrap();
    assert_eq!(full.images, from_body.images);
    assert!(
        (full.mean - from_body.mean).abs() < 1e-9 && (full.std - from_body.std).abs() < 1e-9,
        "{full:?} vs {from_body:?}"
    );
}

/// `flip_average`: outside training the encoder reads an image and its
/// mirror image and averages them (regions flipped back); a training
/// forward still sees the image alone.
#[test]
fn flip_average_is_the_mean_of_both_views() {
    let _rng = rng_lock();
    use t2i::models::damsm::{CnnEncoder, CnnEncoderConfig};
    let config = CnnEncoderConfig {
        flip_average: true,
        ..CnnEncoderConfig::tiny()
    };
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let e = CnnEncoder::new(vs.root(), config);
    let x = Tensor::rand([2, 3, 64, 64], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let (f, g) = e.body_features(&x, false);
    let (f0, g0) = e.single_view(&x, false);
    let (f1, g1) = e.single_view(&x.flip([3]), false);
    assert!(g.allclose(&((&g0 + &g1) / 2.0), 1e-5, 1e-5, false));
    assert!(f.allclose(&((&f0 + f1.flip([3])) / 2.0), 1e-5, 1e-5, false));
    assert!(!g.allclose(&g0, 1e-4, 1e-4, false));
    // a training forward (batch statistics) is the single view's
    let (_, gt) = e.body_features(&x, true);
    let (_, gs) = e.single_view(&x, true);
    assert!(gt.allclose(&gs, 1e-5, 1e-5, false));
}
