//! GAN-INT-CLS: layer shapes, losses against hand-computed values, a short
//! training run, checkpoint round trip and exact resume.

use t2i::checkpoint;
use t2i::data::shapes::{Shapes, ShapesConfig, Split};
use t2i::models::gan_int_cls::GanIntClsModel;
use t2i::models::gan_int_cls::*;
use t2i::text::AnyTextEncoder;
use t2i::text::GruEncoderConfig;
use t2i::train::embedded::EmbeddedImages;
use t2i::train::gan_int_cls::Trainer;
use t2i::train::text_encoder::{train_shapes_encoder, TextTrainOptions};
use tch::{nn, Device, Kind, Tensor};

#[test]
fn layer_shapes_of_both_presets() {
    let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
    for (c, size) in [
        (GanIntClsConfig::paper(), 64),
        (GanIntClsConfig::tiny(), 32),
        (GanIntClsConfig::tiny_plus(), 32),
        (
            GanIntClsConfig {
                image_size: 64,
                ..GanIntClsConfig::tiny()
            },
            64,
        ),
        (
            // the contrastive head of D
            GanIntClsConfig {
                contrastive_weight: 1.0,
                ..GanIntClsConfig::tiny()
            },
            32,
        ),
        (
            // upsampling and 3x3 convolutions in G, at both tiny sizes
            GanIntClsConfig {
                resize_conv: true,
                ..GanIntClsConfig::tiny()
            },
            32,
        ),
        (
            GanIntClsConfig {
                resize_conv: true,
                image_size: 64,
                ..GanIntClsConfig::tiny()
            },
            64,
        ),
        (
            // a full-resolution 3x3 convolution draws the image
            GanIntClsConfig {
                resize_conv: true,
                rgb_conv: true,
                ..GanIntClsConfig::tiny()
            },
            32,
        ),
        (
            GanIntClsConfig {
                rgb_conv: true,
                image_size: 64,
                ..GanIntClsConfig::tiny()
            },
            64,
        ),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let g = Generator::new(vs.root() / "g", &c);
        let d = Discriminator::new(vs.root() / "d", &c);
        let s = StyleEncoder::new(vs.root() / "s", &c);
        let z = Tensor::randn([2, c.z_dim], (Kind::Float, Device::Cpu));
        let h = Tensor::randn([2, c.text_dim], (Kind::Float, Device::Cpu));
        let x = g.forward_t(&z, &h, true);
        assert_eq!(x.size(), vec![2, 3, size, size], "{}", c.preset);
        assert!(x.abs().max().double_value(&[]) <= 1.0);
        assert_eq!(d.forward_t(&x, &h, true).size(), vec![2]);
        let f = d.features_t(&x, true);
        let l = d.contrastive_loss(&f, &h, None, 0.1);
        assert_eq!(l.is_some(), c.contrastive_weight > 0.0);
        if let Some(l) = l {
            assert!(l.double_value(&[]).is_finite());
        }
        assert_eq!(s.forward_t(&x, true).size(), vec![2, c.z_dim]);
    }
    // the paper's generator has 1024 channels at 4x4 (ngf 128 x 8)
    let c = GanIntClsConfig::paper();
    let vs = nn::VarStore::new(Device::Cpu);
    let _g = Generator::new(vs.root(), &c);
    let w = vs.variables()["deconv0.weight"].size();
    assert_eq!(w, vec![c.z_dim + c.proj_dim, 1024, 4, 4]);
    // `rgb_conv`: the last x2 step keeps ngf channels, normalised, and
    // `to_rgb` maps them to RGB at full resolution
    let c = GanIntClsConfig {
        resize_conv: true,
        rgb_conv: true,
        ..GanIntClsConfig::tiny()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let _g = Generator::new(vs.root(), &c);
    let v = vs.variables();
    assert_eq!(v["upconv3.weight"].size(), vec![c.ngf, c.ngf, 3, 3]);
    assert_eq!(v["bn3.weight"].size(), vec![c.ngf]);
    assert_eq!(v["to_rgb.weight"].size(), vec![3, c.ngf, 3, 3]);
    assert!(GanIntClsConfig {
        image_size: 48,
        ..GanIntClsConfig::tiny()
    }
    .validate()
    .is_err());
    assert!(GanIntClsConfig {
        image_size: 32,
        ..GanIntClsConfig::paper()
    }
    .validate()
    .is_err());
}

fn t(v: &[f32]) -> Tensor {
    Tensor::from_slice(v)
}

fn softplus(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

#[test]
fn losses_match_hand_computed_values() {
    // -log sigmoid(s) = softplus(-s); -log(1 - sigmoid(s)) = softplus(s)
    let (r, w, f, i) = (
        [2.0f32, -1.0],
        [0.5f32, 1.5],
        [-0.3f32, 0.8],
        [1.2f32, -2.0],
    );
    let mean = |v: &[f32], real: bool| -> f64 {
        v.iter()
            .map(|&x| {
                if real {
                    softplus(-x as f64)
                } else {
                    softplus(x as f64)
                }
            })
            .sum::<f64>()
            / v.len() as f64
    };
    let close = |a: &Tensor, b: f64| (a.double_value(&[]) - b).abs() < 1e-6;
    // GAN: -log s_r - log(1 - s_f)
    let gan = discriminator_loss(Variant::Gan, &t(&r), Some(&t(&w)), &t(&f), Some(&t(&i)));
    assert!(close(&gan, mean(&r, true) + mean(&f, false)));
    // GAN-CLS: -log s_r - (log(1 - s_w) + log(1 - s_f)) / 2
    let cls = discriminator_loss(Variant::GanCls, &t(&r), Some(&t(&w)), &t(&f), None);
    let want = mean(&r, true) + (mean(&w, false) + mean(&f, false)) / 2.0;
    assert!(close(&cls, want), "{} vs {want}", cls.double_value(&[]));
    // GAN-INT-CLS: the fake term averages right-text and interpolated fakes
    let ic = discriminator_loss(
        Variant::GanIntCls,
        &t(&r),
        Some(&t(&w)),
        &t(&f),
        Some(&t(&i)),
    );
    let want = mean(&r, true) + (mean(&w, false) + (mean(&f, false) + mean(&i, false)) / 2.0) / 2.0;
    assert!(close(&ic, want));
    // G: -log s_f (+ -log s_int for INT, eq. 5)
    assert!(close(
        &generator_loss(Variant::GanCls, &t(&f), Some(&t(&i))),
        mean(&f, true)
    ));
    assert!(close(
        &generator_loss(Variant::GanInt, &t(&f), Some(&t(&i))),
        mean(&f, true) + mean(&i, true)
    ));
    // interpolation: beta h + (1 - beta) h_rolled
    let h = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
    let hi: Vec<f32> = Vec::try_from(interpolate_text(&h, 0.5).view([-1])).unwrap();
    assert_eq!(hi, vec![2.0, 3.0, 2.0, 3.0]);
    // contrastive term: three orthonormal pairs, cos 1 on the diagonal and 0
    // elsewhere, so each row's loss is -log(e^(1/tau) / (e^(1/tau) + 2));
    // the scale of v does not matter (cosine)
    let tau = 0.1;
    let e = Tensor::eye(3, (Kind::Float, Device::Cpu));
    let want = -((1.0f64 / tau).exp() / ((1.0f64 / tau).exp() + 2.0)).ln();
    assert!(close(&contrastive_loss(&(&e * 5.0), &e, None, tau), want));
    // swapping two sentences makes those two rows pick cos 0 over cos 1
    let swapped = e.index_select(0, &Tensor::from_slice(&[1i64, 0, 2]));
    let wrong = -(1.0f64 / ((1.0f64 / tau).exp() + 2.0)).ln();
    assert!(close(
        &contrastive_loss(&e, &swapped, None, tau),
        (2.0 * wrong + want) / 3.0
    ));
    // an extra candidate (a hard negative, `contrastive_hard`) joins every
    // row's denominator: equal to image 0's own sentence it halves row 0's
    // probability; orthogonal rows see one more cos 0
    let extra = Tensor::cat(&[&e, &e.narrow(0, 0, 1)], 0); // [4, 3]
    let big = (1.0f64 / tau).exp();
    let row0 = -(big / (2.0 * big + 2.0)).ln();
    let rest = -(big / (big + 3.0)).ln();
    assert!(close(
        &contrastive_loss(&e, &extra, None, tau),
        (row0 + 2.0 * rest) / 3.0
    ));
}

/// Network initialisation uses libtorch's global generator: tests that
/// build networks from a seed take this lock.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn small_trainer(seed: u64) -> Trainer {
    small_trainer_with(seed, |_| {})
}

/// [`small_trainer`] with config options set before the networks are built.
fn small_trainer_with(seed: u64, set: impl Fn(&mut GanIntClsConfig)) -> Trainer {
    let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
    let data = small_data();
    let shapes = Shapes::new(data.clone()).unwrap();
    let topts = TextTrainOptions {
        steps: 5,
        batch_size: 16,
        seed: 1,
        progress: false,
        ..Default::default()
    };
    let enc = train_shapes_encoder(&shapes, GruEncoderConfig::tiny(), &topts, Device::Cpu)
        .unwrap()
        .encoder;
    let mut cfg = GanIntClsConfig {
        batch_size: 8,
        ngf: 8,
        ndf: 8,
        ..GanIntClsConfig::tiny()
    };
    set(&mut cfg);
    let tensors = EmbeddedImages::shapes(&shapes, Split::Train, &enc, Device::Cpu).unwrap();
    tch::manual_seed(seed as i64);
    let model = GanIntClsModel::new(cfg, AnyTextEncoder::Gru(enc), Device::Cpu);
    Trainer::new(model, tensors, Some(data), seed)
}

fn small_data() -> ShapesConfig {
    ShapesConfig {
        image_size: 32,
        train_size: 128,
        test_size: 32,
        seed: 3,
        ..Default::default()
    }
}

fn rebuild_tensors(m: &GanIntClsModel) -> EmbeddedImages {
    let shapes = Shapes::new(small_data()).unwrap();
    EmbeddedImages::shapes(&shapes, Split::Train, &m.encoder, Device::Cpu).unwrap()
}

#[test]
fn short_training_round_trips_and_resumes_exactly() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    // uninterrupted: 6 steps
    let mut a = small_trainer(5);
    let init = dir.path().join("init.safetensors");
    a.save(&init).unwrap();
    let stats_a: Vec<_> = (0..6).map(|_| a.train_step()).collect();
    for s in &stats_a {
        assert!(s.loss_d.is_finite() && s.loss_g.is_finite(), "{s:?}");
    }
    // interrupted after 3 steps, restored into fresh networks, 3 more
    let ck = checkpoint::load(&init).unwrap();
    let mut b = small_trainer(6);
    b.model = GanIntClsModel::from_checkpoint(&ck, Device::Cpu).unwrap();
    let cfg = b.model.config.clone();
    b.opt_g = t2i::train::optim::Adam::new(&b.model.g_vs, cfg.lr, cfg.beta1, cfg.beta2);
    b.restore(&ck).unwrap();
    b.seed = 5;
    b.data = rebuild_tensors(&b.model);
    for _ in 0..3 {
        b.train_step();
    }
    let mid = dir.path().join("mid.safetensors");
    b.save(&mid).unwrap();
    let ck = checkpoint::load(&mid).unwrap();
    let mut c = small_trainer(7);
    c.model = GanIntClsModel::from_checkpoint(&ck, Device::Cpu).unwrap();
    c.opt_g = t2i::train::optim::Adam::new(&c.model.g_vs, cfg.lr, cfg.beta1, cfg.beta2);
    c.restore(&ck).unwrap();
    c.seed = 5;
    // as `train --resume` does: caption vectors come from the checkpoint's encoder
    c.data = rebuild_tensors(&c.model);
    assert_eq!(c.step, 3);
    let stats_c: Vec<_> = (0..3).map(|_| c.train_step()).collect();
    for (x, y) in stats_a[3..].iter().zip(&stats_c) {
        assert_eq!(x.step, y.step);
        assert!(
            (x.loss_d - y.loss_d).abs() < 1e-5 && (x.loss_g - y.loss_g).abs() < 1e-5,
            "{x:?} vs {y:?}"
        );
    }
    // round trip: a loaded model generates the same pixels
    let m = GanIntClsModel::from_checkpoint(&ck, Device::Cpu).unwrap();
    let z = m.noise(2, 1);
    let (h, _) = m.embed(&["a small red circle in the centre"; 2]).unwrap();
    let (h2, _) = b
        .model
        .embed(&["a small red circle in the centre"; 2])
        .unwrap();
    let diff = (m.generate(&z, &h) - b.model.generate(&z, &h2))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff == 0.0, "{diff}");
}

#[test]
fn truncated_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = small_trainer(1);
    let p = dir.path().join("c.safetensors");
    t.save(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = checkpoint::load(&p)
        .err()
        .expect("truncated file must fail")
        .to_string();
    assert!(e.contains("not a valid t2i checkpoint"), "{e}");
    assert!(checkpoint::load(&dir.path().join("none.safetensors")).is_err());
}

/// With the running average of G (`ema_decay`): the checkpoint generates with
/// the average, and a resumed run (built as `train --resume` builds it) gives
/// the same next losses and the same average as an uninterrupted one.
#[test]
fn weight_average_generates_and_resumes_exactly() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    // (no new networks here: their random initial weights would depend on
    // what the tests running in parallel draw from libtorch's generator)
    let with_ema = |mut t: Trainer| -> Trainer {
        t.model.config.ema_decay = 0.9;
        t.g_avg = Some(t2i::train::ema::WeightAverage::with_warmup(
            &t.model.g_vs,
            0.9,
        ));
        t
    };
    let mut a = with_ema(small_trainer(5));
    let init = dir.path().join("init.safetensors");
    a.save(&init).unwrap();
    let stats_a: Vec<_> = (0..6).map(|_| a.train_step()).collect();
    // as `train --resume` builds a trainer from a checkpoint
    let resume = |path: &std::path::Path| -> Trainer {
        let ck = checkpoint::load(path).unwrap();
        let model = GanIntClsModel::from_checkpoint(&ck, Device::Cpu).unwrap();
        assert_eq!(model.config.ema_decay, 0.9);
        let data = rebuild_tensors(&model);
        let mut t = Trainer::new(model, data, Some(small_data()), 5);
        t.restore(&ck).unwrap();
        t
    };
    // the same start, stopped after 3 steps and resumed from its checkpoint
    let mut b = resume(&init);
    for _ in 0..3 {
        b.train_step();
    }
    let mid = dir.path().join("mid.safetensors");
    b.save(&mid).unwrap();
    let mut c = resume(&mid);
    let stats_c: Vec<_> = (0..3).map(|_| c.train_step()).collect();
    for (x, y) in stats_a[3..].iter().zip(&stats_c) {
        assert!(
            (x.loss_d - y.loss_d).abs() < 1e-5 && (x.loss_g - y.loss_g).abs() < 1e-5,
            "{x:?} vs {y:?}"
        );
    }
    // the saved model generates with the average, not the trained weights
    let end = dir.path().join("end.safetensors");
    let live_stats = c.model.g_vs.variables()["bn0.running_mean"].copy();
    c.save(&end).unwrap();
    // the average is saved with batch-norm statistics of its own (standing
    // statistics), and saving leaves the trained G's statistics as they were
    let ck = checkpoint::load(&end).unwrap();
    let standing = &ck.tensors["G_avg.bn0.running_mean"];
    let tracked = &ck.tensors["G.bn0.running_mean"];
    assert!((standing - tracked).abs().max().double_value(&[]) > 1e-4);
    assert!((tracked - &live_stats).abs().max().double_value(&[]) == 0.0);
    let now = &c.model.g_vs.variables()["bn0.running_mean"];
    assert!((now - &live_stats).abs().max().double_value(&[]) == 0.0);
    let loaded = GanIntClsModel::load(&end, Device::Cpu).unwrap();
    let read = &loaded.g_vs.variables()["bn0.running_mean"];
    assert!((read - standing).abs().max().double_value(&[]) == 0.0);
    let z = loaded.noise(2, 1);
    let (h, _) = loaded
        .embed(&["a small red circle in the centre"; 2])
        .unwrap();
    let trained = c.model.generate(&z, &h);
    let from_ck = loaded.generate(&z, &h);
    let gap = (&trained - &from_ck).abs().max().double_value(&[]);
    assert!(
        gap > 0.0,
        "the average must differ from the trained weights"
    );
    a.finish();
    let (h_a, _) = a
        .model
        .embed(&["a small red circle in the centre"; 2])
        .unwrap();
    let diff = (a.model.generate(&z, &h_a) - from_ck)
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "resumed average differs by {diff}");
}

#[test]
fn matching_term_uses_the_saved_image_side() {
    use t2i::text::GruEncoder;
    use t2i::train::text_encoder::{matching_image_path, train_and_save};
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let data = small_data();
    let shapes = Shapes::new(data.clone()).unwrap();
    let path = dir.path().join("text_encoder.safetensors");
    {
        let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
        let topts = TextTrainOptions {
            steps: 4,
            batch_size: 16,
            seed: 1,
            progress: false,
            hard_fraction: 0.5,
            ..Default::default()
        };
        let trained = train_and_save(
            &shapes,
            GruEncoderConfig::tiny(),
            &topts,
            Device::Cpu,
            &path,
        )
        .unwrap();
        assert!(trained.final_loss.is_finite());
    }
    let image_path = matching_image_path(&path);
    assert!(image_path.is_file(), "train_and_save wrote no image side");
    let trainer = |match_weight: f64| {
        let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
        let enc = GruEncoder::load(&path, Device::Cpu).unwrap();
        let cfg = GanIntClsConfig {
            batch_size: 8,
            ngf: 8,
            ndf: 8,
            match_weight,
            ..GanIntClsConfig::tiny()
        };
        let tensors = EmbeddedImages::shapes(&shapes, Split::Train, &enc, Device::Cpu).unwrap();
        tch::manual_seed(9);
        let model = GanIntClsModel::new(cfg, AnyTextEncoder::Gru(enc), Device::Cpu);
        Trainer::new(model, tensors, Some(data.clone()), 9)
    };
    let mut with = trainer(1.0);
    // a file that is no joint image encoder is a clear error
    let err = with.set_matcher(&path).unwrap_err().to_string();
    assert!(err.contains("not a joint image encoder"), "{err}");
    with.set_matcher(&image_path).unwrap();
    let mut without = trainer(0.0);
    // G's loss has the matching term on top
    assert_extra_g_term(&mut without, &mut with);
}

/// One step of each trainer: the same D step, and a larger finite G loss
/// for `extra`, whose G loss has one more (positive) term.
fn assert_extra_g_term(base: &mut Trainer, extra: &mut Trainer) {
    let (a, b) = (base.train_step(), extra.train_step());
    assert_eq!(a.loss_d, b.loss_d);
    assert!(
        b.loss_g.is_finite() && b.loss_g > a.loss_g,
        "{} vs {}",
        b.loss_g,
        a.loss_g
    );
}

#[test]
fn rank_term_adds_to_g_loss_only() {
    tch::set_num_threads(1);
    let mut plain = small_trainer(5);
    let mut ranked = small_trainer(5);
    ranked.model.config.rank_weight = 1.0;
    // G's loss gains softplus(s(fake, h^) - s(fake, h)) > 0
    assert_extra_g_term(&mut plain, &mut ranked);
}

#[test]
fn hinge_losses_match_hand_computed_values() {
    let (r, w, f, i) = (
        [2.0f32, 0.5],
        [0.5f32, -1.5],
        [-0.3f32, 0.8],
        [1.2f32, -2.0],
    );
    let hinge = |v: &[f32], sign: f64| -> f64 {
        v.iter()
            .map(|&x| (1.0 + sign * x as f64).max(0.0))
            .sum::<f64>()
            / v.len() as f64
    };
    let close = |a: &Tensor, b: f64| (a.double_value(&[]) - b).abs() < 1e-6;
    // real: relu(1 - s) = [0, 0.5]; wrong: relu(1 + s) = [1.5, 0]
    let l = discriminator_hinge_loss(Variant::GanCls, &t(&r), Some(&t(&w)), &t(&f), None);
    let want = hinge(&r, -1.0) + (hinge(&w, 1.0) + hinge(&f, 1.0)) / 2.0;
    assert!(close(&l, want), "{} vs {want}", l.double_value(&[]));
    let l = discriminator_hinge_loss(Variant::Gan, &t(&r), None, &t(&f), None);
    assert!(close(&l, hinge(&r, -1.0) + hinge(&f, 1.0)));
    let l = discriminator_hinge_loss(
        Variant::GanIntCls,
        &t(&r),
        Some(&t(&w)),
        &t(&f),
        Some(&t(&i)),
    );
    let fake = (hinge(&f, 1.0) + hinge(&i, 1.0)) / 2.0;
    assert!(close(&l, hinge(&r, -1.0) + (hinge(&w, 1.0) + fake) / 2.0));
    // G: -mean(s_f), and -mean(s_int) for INT
    let g = generator_hinge_loss(Variant::GanIntCls, &t(&f), Some(&t(&i)));
    assert!(close(&g, -(0.25 + -0.4)));
    let g = generator_hinge_loss(Variant::GanCls, &t(&f), Some(&t(&i)));
    assert!(close(&g, -0.25));
}

#[test]
fn spectral_norm_discriminator_trains_and_resumes_exactly() {
    tch::set_num_threads(1);
    let sn = |c: &mut GanIntClsConfig| {
        c.spectral_norm = true;
        c.hinge_loss = true;
    };
    let mut a = small_trainer_with(5, sn);
    let names: Vec<String> = a.d_vs.variables().into_keys().collect();
    assert!(names.iter().any(|n| n == "conv1.weight_u"), "{names:?}");
    assert!(names.iter().any(|n| n == "out.weight_v"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("bn")),
        "no batch norm in an SN D: {names:?}"
    );
    for _ in 0..3 {
        let s = a.train_step();
        assert!(s.loss_d.is_finite() && s.loss_g.is_finite(), "{s:?}");
    }
    // fresh networks from another seed, restored from the checkpoint: the
    // power-iteration vectors come back too, so the next steps are the same
    let b = assert_resumes_exactly(&mut a, sn);
    assert!(b.model.config.spectral_norm && b.model.config.hinge_loss);
}

/// Saves `a` (built from seed 5 with `set`), takes two more steps, then
/// rebuilds a trainer from another seed, restores the checkpoint into it
/// and checks that it takes the same two steps (1e-5). Returns it.
fn assert_resumes_exactly(a: &mut Trainer, set: impl Fn(&mut GanIntClsConfig)) -> Trainer {
    let dir = tempfile::tempdir().unwrap();
    let mid = dir.path().join("mid.safetensors");
    a.save(&mid).unwrap();
    let next: Vec<_> = (0..2).map(|_| a.train_step()).collect();
    let ck = checkpoint::load(&mid).unwrap();
    let mut b = small_trainer_with(9, set);
    b.model = GanIntClsModel::from_checkpoint(&ck, Device::Cpu).unwrap();
    let cfg = b.model.config.clone();
    // the optimisers follow the rebuilt networks, as a resumed run builds them
    b.opt_g = t2i::train::optim::Adam::new(&b.model.g_vs, cfg.lr, cfg.beta1, cfg.beta2);
    b.opt_s = t2i::train::optim::Adam::new(&b.model.s_vs, cfg.lr, cfg.beta1, cfg.beta2);
    b.restore(&ck).unwrap();
    b.seed = 5;
    b.data = rebuild_tensors(&b.model);
    for x in &next {
        let y = b.train_step();
        assert_eq!(x.step, y.step);
        assert!(
            (x.loss_d - y.loss_d).abs() < 1e-5 && (x.loss_g - y.loss_g).abs() < 1e-5,
            "{x:?} vs {y:?}"
        );
    }
    b
}

#[test]
fn style_term_trains_s_with_g_and_resumes_exactly() {
    tch::set_num_threads(1);
    let styled = |c: &mut GanIntClsConfig| c.style_weight = 0.5;
    let mut plain = small_trainer(5);
    let mut a = small_trainer_with(5, styled);
    let s_before = a.model.s_vs.variables()["head.weight"].copy();
    // G's loss gains 0.5 ||S(G(z, h)) - z||^2 > 0; D's step is unchanged
    assert_extra_g_term(&mut plain, &mut a);
    let s_after = &a.model.s_vs.variables()["head.weight"];
    assert!(
        (s_after - &s_before).abs().max().double_value(&[]) > 0.0,
        "S learns during GAN training"
    );
    // S is still fitted to the final G after the GAN
    assert!(!a.model.style_trained);
    // S's optimiser state comes back with the checkpoint
    assert_resumes_exactly(&mut a, styled);
}

#[test]
fn reconstruction_term_trains_g_and_s_on_real_images() {
    tch::set_num_threads(1);
    let mut plain = small_trainer(5);
    let mut a = small_trainer_with(5, |c| c.recon_weight = 10.0);
    let s_before = a.model.s_vs.variables()["head.weight"].copy();
    // G's loss gains 10 |G(S(x), h) - x|_1 > 0; D's step is unchanged
    assert_extra_g_term(&mut plain, &mut a);
    let s_after = &a.model.s_vs.variables()["head.weight"];
    assert!((s_after - &s_before).abs().max().double_value(&[]) > 0.0);
    // S is style transfer's encoder already: no L_style fit after the GAN
    assert!(a.model.style_trained);
    // S's optimiser state is in the checkpoint
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ck.safetensors");
    a.save(&p).unwrap();
    let ck = checkpoint::load(&p).unwrap();
    assert!(ck.tensors.keys().any(|k| k.starts_with("optim.S.")));
    // the KL term adds 0.5 |S(x)|^2 > 0 (and noise) to the reconstruction
    let mut b = small_trainer_with(5, |c| c.recon_weight = 10.0);
    let mut kl = small_trainer_with(5, |c| {
        c.recon_weight = 10.0;
        c.recon_kl = 1.0;
    });
    let (x, y) = (b.train_step(), kl.train_step());
    assert_eq!(x.loss_d, y.loss_d);
    assert!(y.loss_g.is_finite() && y.loss_g != x.loss_g, "{x:?} {y:?}");
}
