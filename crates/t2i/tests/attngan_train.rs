//! AttnGAN training on the shapes data set written in the CUB layout, with
//! a frozen DAMSM: finite losses, frozen encoders, checkpoint round trip
//! (averaged G), exact resume, and the attention figure.

use t2i::checkpoint;
use t2i::data::cub::CubSplit;
use t2i::data::images::LoadOptions;
use t2i::data::images::{load_cub, CaptionedImages};
use t2i::data::shapes::{export_cub_layout, Shapes, ShapesConfig};
use t2i::models::attngan::AttnGanConfig;
use t2i::models::attngan::AttnGanModel;
use t2i::train::attngan::{attention_figure, AttnGanTrainer};
use t2i::train::damsm::{DamsmConfig, DamsmTrainer};
use tch::Device;

fn setup(dir: &std::path::Path) -> (CaptionedImages, checkpoint::Checkpoint) {
    let shapes = Shapes::new(ShapesConfig {
        image_size: 64,
        train_size: 64,
        test_size: 16,
        seed: 5,
        ..Default::default()
    })
    .unwrap();
    export_cub_layout(&shapes, dir).unwrap();
    let (train, _) = load_cub(
        dir,
        CubSplit::Train,
        &LoadOptions {
            size: 64,
            cache: None,
            augment: true,
            progress: false,
        },
    )
    .unwrap();
    let vocab = t2i::text::Vocab::build(train.captions.iter().flatten().map(String::as_str), 1);
    let mut d = DamsmTrainer::new(
        DamsmConfig {
            batch_size: 8,
            ..DamsmConfig::tiny()
        },
        vocab,
        1,
        Device::Cpu,
    );
    for _ in 0..2 {
        d.train_step(&train).unwrap();
    }
    (train, d.to_checkpoint())
}

fn config() -> AttnGanConfig {
    AttnGanConfig {
        gf_dim: 8,
        df_dim: 8,
        batch_size: 4,
        ..AttnGanConfig::tiny()
    }
}

#[test]
fn trains_round_trips_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (data, damsm) = setup(dir.path());
    let mut t = AttnGanTrainer::new(config(), &damsm, "test", 0, Device::Cpu).unwrap();
    let text_before = t.model.text.vs.variables()["encoder.weight"].copy();
    for _ in 0..3 {
        let s = t.train_step(&data);
        assert!(
            s.loss_d.is_finite()
                && s.loss_g_adv.is_finite()
                && s.w_loss.is_finite()
                && s.s_loss.is_finite()
                && s.kl.is_finite(),
            "{s:?}"
        );
        assert!(s.w_loss > 0.0 && s.s_loss > 0.0);
    }
    assert!(
        t.model.text.vs.variables()["encoder.weight"].equal(&text_before),
        "the DAMSM text encoder must stay frozen"
    );
    let p = dir.path().join("a.safetensors");
    t.save(&p).unwrap();
    let ck = checkpoint::load(&p).unwrap();
    assert_eq!(ck.meta("model").unwrap(), "attngan");
    assert_eq!(ck.meta("damsm").unwrap(), "test");

    // a loaded model generates with the averaged weights, as the trainer does
    let m = AttnGanModel::from_checkpoint(&ck, Device::Cpu).unwrap();
    let caps = ["a small red circle in the centre"; 2];
    let a = m.generate_captions(&caps, 3).unwrap();
    let b = t.with_average(|m| m.generate_captions(&caps, 3).unwrap());
    assert_eq!(a.size(), vec![2, 3, 64, 64]);
    // a loaded generator runs channels-last: equal up to rounding
    assert!(
        a.allclose(&b, 0.0, 1e-5, false),
        "{}",
        (&a - &b).abs().max()
    );
    let raw = t.model.generate_captions(&caps, 3).unwrap();
    assert!(
        !raw.equal(&a),
        "the average must differ from the raw weights"
    );
    // both stages and one attention map per word
    let text = m.encode(&caps).unwrap();
    let o = m.generate(&text, 3);
    assert_eq!(o.images[0].size(), vec![2, 3, 32, 32]);
    assert_eq!(o.attention[0].size()[..2], [2, 7]);
    let fig = attention_figure(&m, caps[0], 3, 4, 64).unwrap();
    assert!(fig.width >= 5 * 64);

    // resume: the next two steps equal an uninterrupted run's
    let mut u = AttnGanTrainer::new(config(), &damsm, "test", 0, Device::Cpu).unwrap();
    u.restore(&ck).unwrap();
    assert_eq!(u.step, 3);
    for _ in 0..2 {
        let x = t.train_step(&data);
        let y = u.train_step(&data);
        assert_eq!(x.loss_d, y.loss_d);
        assert_eq!(x.w_loss, y.w_loss);
    }
    // a checkpoint of another model is refused
    let mut meta = ck.meta.clone();
    meta.insert("model".into(), "stackgan".into());
    let other = checkpoint::Checkpoint {
        meta,
        tensors: Default::default(),
    };
    assert!(AttnGanModel::from_checkpoint(&other, Device::Cpu).is_err());
    assert!(AttnGanTrainer::new(config(), &ck, "x", 0, Device::Cpu).is_err());
}
