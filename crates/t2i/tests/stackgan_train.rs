//! StackGAN training on shapes: Stage-I, then Stage-II with Stage-I frozen,
//! checkpoint round trip.

use t2i::checkpoint;
use t2i::data::shapes::{Shapes, ShapesConfig, Split};
use t2i::models::stackgan::StackGanConfig;
use t2i::models::stackgan::StackGanModel;
use t2i::text::{AnyTextEncoder, GruEncoderConfig};
use t2i::train::embedded::EmbeddedImages;
use t2i::train::stackgan::StackGanTrainer;
use t2i::train::text_encoder::{train_shapes_encoder, TextTrainOptions};
use tch::{Device, Tensor};

fn data() -> (EmbeddedImages, AnyTextEncoder) {
    let shapes = Shapes::new(ShapesConfig {
        image_size: 64,
        train_size: 96,
        test_size: 16,
        seed: 2,
        ..Default::default()
    })
    .unwrap();
    let topts = TextTrainOptions {
        steps: 3,
        batch_size: 16,
        progress: false,
        ..Default::default()
    };
    let enc = train_shapes_encoder(&shapes, GruEncoderConfig::tiny(), &topts, Device::Cpu)
        .unwrap()
        .encoder;
    let n = shapes.len(Split::Train);
    let samples: Vec<_> = (0..n).map(|i| shapes.sample(Split::Train, i)).collect();
    let flat: Vec<u8> = samples.iter().flat_map(|s| s.pixels.clone()).collect();
    let images = Tensor::from_slice(&flat)
        .view([n as i64, 64, 64, 3])
        .permute([0, 3, 1, 2])
        .contiguous();
    let caps = samples.iter().map(|s| s.captions.clone()).collect();
    let d = EmbeddedImages::fixed(images, caps, &enc, Device::Cpu).unwrap();
    (d, AnyTextEncoder::Gru(enc))
}

fn config() -> StackGanConfig {
    StackGanConfig {
        gf_dim: 16,
        df_dim: 8,
        batch_size: 4,
        ..StackGanConfig::tiny()
    }
}

#[test]
fn stage1_then_frozen_stage2_train_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (data, enc) = data();
    let c = config();
    let m = StackGanModel::new(c.clone(), 1, enc, Device::Cpu);
    let mut t1 = StackGanTrainer::new(m, None, 0).unwrap();
    for _ in 0..3 {
        let s = t1.train_step(&data);
        assert!(
            s.loss_d.is_finite() && s.loss_g.is_finite() && s.kl.is_finite(),
            "{s:?}"
        );
    }
    let p1 = dir.path().join("s1.safetensors");
    t1.save(&p1).unwrap();
    let ck1 = checkpoint::load(&p1).unwrap();

    // Stage-II: Stage-I weights loaded and frozen
    let (_, enc2) = self::data();
    let m2 = StackGanModel::new(c.clone(), 2, enc2, Device::Cpu);
    let mut t2 = StackGanTrainer::new(m2, Some(&ck1), 0).unwrap();
    let key = "STAGE1_G.fc.0.weight";
    let before = t2.model.g_vs.variables()[key].copy();
    assert!(before.equal(&ck1.tensors["G.fc.0.weight"]));
    for _ in 0..2 {
        let s = t2.train_step(&data);
        assert!(s.loss_d.is_finite() && s.loss_g.is_finite(), "{s:?}");
    }
    assert!(
        t2.model.g_vs.variables()[key].equal(&before),
        "Stage-I changed"
    );
    let p2 = dir.path().join("s2.safetensors");
    t2.save(&p2).unwrap();

    // a loaded Stage-II model generates the same pixels, with its Stage-I image
    let m = StackGanModel::from_checkpoint(&checkpoint::load(&p2).unwrap(), Device::Cpu).unwrap();
    let caps = ["a large red circle in the centre"];
    let (s1a, a) = m.generate(&caps, 7).unwrap();
    let (_, b) = t2.model.generate(&caps, 7).unwrap();
    assert_eq!(a.size(), vec![1, 3, 64, 64]);
    assert_eq!(s1a.unwrap().size(), vec![1, 3, 32, 32]);
    // a loaded generator runs channels-last: equal up to rounding
    assert!(
        a.allclose(&b, 0.0, 1e-5, false),
        "{}",
        (&a - &b).abs().max()
    );
    // Stage-II needs a Stage-I run
    let (_, enc3) = self::data();
    let m3 = StackGanModel::new(c, 2, enc3, Device::Cpu);
    assert!(StackGanTrainer::new(m3, None, 0).is_err());
}
