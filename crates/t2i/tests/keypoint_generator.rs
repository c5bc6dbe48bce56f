//! GAWWN's conditional keypoint generator G_k (Reed et al. 2016, sec. 4.3)
//! trained alone against D_k on the shapes data set's keypoint sets: from
//! one given keypoint its completions must lie nearer the real sets than
//! the training mean does, differ across z, and keep the given keypoint.

use t2i::data::shapes::{Shapes, ShapesConfig, Split};
use t2i::data::KeypointSet;
use t2i::eval::control::{completion_scores_with, mean_set};
use t2i::models::gawwn::{Condition, GawwnConfig, KeypointCompleter};
use t2i::train::gawwn::KeypointGan;
use tch::{nn, Device, Kind, Tensor};

fn sets(shapes: &Shapes, split: Split, n: usize) -> Vec<KeypointSet> {
    (0..n)
        .map(|i| {
            let s = shapes.sample(split, i);
            s.objects[0]
                .keypoint_fractions(32.0)
                .iter()
                .map(|p| Some(*p))
                .collect()
        })
        .collect()
}

#[test]
fn keypoint_generator_completes_plausibly_and_diversely() {
    tch::manual_seed(3);
    let shapes = Shapes::new(ShapesConfig {
        image_size: 32,
        max_objects: 1,
        train_size: 2000,
        continuous_layout: true,
        ..Default::default()
    })
    .unwrap();
    let train = sets(&shapes, Split::Train, 2000);
    let test = sets(&shapes, Split::Test, 300);
    let c = GawwnConfig {
        condition: Condition::Keypoints,
        text_dim: 4,
        ..GawwnConfig::tiny()
    };
    let steps = 3000;
    let dev = Device::Cpu;
    let gk_vs = nn::VarStore::new(dev);
    let gk = KeypointCompleter::new(gk_vs.root(), &c);
    let mut gan = KeypointGan::new(&gk_vs, &c, dev);
    let flat: Vec<f32> = train
        .iter()
        .flat_map(|s| s.iter().flat_map(|p| [p.unwrap()[0], p.unwrap()[1], 1.0]))
        .collect();
    let all = Tensor::from_slice(&flat).view([train.len() as i64, 5, 3]);
    let t = Tensor::zeros([c.batch_size, c.text_dim], (Kind::Float, dev));
    for step in 0..steps {
        let idx = Tensor::randint(train.len() as i64, [c.batch_size], (Kind::Int64, dev));
        gan.step(&gk, &all.index_select(0, &idx), &t, 1000 + step as u64);
    }
    let complete = |_: &str, given: &KeypointSet, seed: u64| -> t2i::Result<KeypointSet> {
        let g: Vec<f32> = given
            .iter()
            .flat_map(|p| p.map_or([0.0, 0.0, 0.0], |q| [q[0], q[1], 1.0]))
            .collect();
        let s: Vec<f32> = given.iter().map(|p| p.map_or(0.0, |_| 1.0)).collect();
        let z = t2i::rng::normal(1, c.z_dim, seed, dev);
        let out = tch::no_grad(|| {
            gk.forward_t(
                &z,
                &t.narrow(0, 0, 1),
                &Tensor::from_slice(&g).view([1, 5, 3]),
                &Tensor::from_slice(&s).view([1, 5]),
                false,
            )
        });
        let v: Vec<f32> = Vec::try_from(out.view([-1])).unwrap();
        Ok(v.chunks(3)
            .map(|p| (p[2] > 0.5).then_some([p[0], p[1]]))
            .collect())
    };
    let captions = vec![String::new(); test.len()];
    let s = completion_scores_with(complete, &captions, &test, &mean_set(&train), 5).unwrap();
    eprintln!(
        "G_k after {steps} steps: completed {:.4}, training mean {:.4}, random {:.4}, across z {:.4}, given moved {:.2e}",
        s.completed, s.training_mean, s.random, s.across_z, s.given_moved
    );
    assert_eq!(s.given_moved, 0.0, "the given keypoint is kept exactly");
    assert!(
        s.completed < s.training_mean,
        "completions {:.4} no nearer the real sets than the training mean {:.4}",
        s.completed,
        s.training_mean
    );
    assert!(s.across_z > 0.01, "completions ignore z: {:.4}", s.across_z);
}
