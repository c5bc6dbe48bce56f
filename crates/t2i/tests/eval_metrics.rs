//! The evaluation suite against PyTorch / numpy / scipy: Inception-v3 in the
//! FID and torchvision variants on the same deterministic weights (1e-4),
//! and FID, KID and the Inception Score on fixed feature sets (1e-6
//! relative). Fixtures: `scripts/fixtures/make_eval_fixtures.sh`.

use std::collections::HashMap;
use std::path::PathBuf;
use t2i::eval::stats::{fid, frechet_distance, inception_score, kid, kid_on_subsets};
use t2i::models::inception::{InceptionV3, Variant};
use tch::{nn, Device, Kind, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

fn read(name: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixtures().join(name))
        .unwrap()
        .into_iter()
        .collect()
}

/// The fixture script's weight generator: splitmix64 seeded by the FNV-1a
/// hash of the tensor name, values in [-1, 1).
fn uniform(name: &str, n: usize) -> Vec<f64> {
    let mut seed: u64 = 0xCBF2_9CE4_8422_2325;
    for b in name.bytes() {
        seed ^= b as u64;
        seed = seed.wrapping_mul(0x100_0000_01B3);
    }
    (1..=n as u64)
        .map(|k| {
            let mut z = seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn fill(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (name, t) in vs.variables() {
            if !t.is_floating_point() {
                continue;
            }
            let size = t.size();
            let n = size.iter().product::<i64>() as usize;
            let u = uniform(&name, n);
            let fan_in: i64 = size[1..].iter().product();
            let v: Vec<f32> = u
                .iter()
                .map(|&u| {
                    (if name.ends_with("running_var") {
                        1.0 + 0.5 * (u + 1.0)
                    } else if name.ends_with("running_mean") || name.ends_with("bn.bias") {
                        0.2 * u
                    } else if name.ends_with("bn.weight") {
                        1.0 + 0.2 * u
                    } else if name == "fc.bias" {
                        0.1 * u
                    } else {
                        u * (6.0 / fan_in as f64).sqrt()
                    }) as f32
                })
                .collect();
            t.shallow_clone()
                .copy_(&Tensor::from_slice(&v).view(size.as_slice()));
        }
    });
}

fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: shapes");
    let d = (a - b).abs().max().double_value(&[]);
    let tol = 1e-4 * (1.0 + b.abs().max().double_value(&[]));
    assert!(d <= tol, "{what}: max abs diff {d:e} > {tol:e}");
}

#[test]
fn inception_variants_match_pytorch() {
    let f = read("inception.safetensors");
    let images = &f["images"] * 2.0 - 1.0; // the fixture's images are in [0, 1]
    for (variant, key) in [(Variant::Fid, "fid"), (Variant::Torchvision, "tv")] {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = InceptionV3::new(vs.root(), variant);
        fill(&vs);
        let o = net.features(&images, 2);
        assert_close(&o.pool, &f[&format!("{key}_pool")], &format!("{key} pool"));
        assert_close(
            &o.logits,
            &f[&format!("{key}_logits")],
            &format!("{key} logits"),
        );
        if variant == Variant::Fid {
            // parameters of pytorch-fid's network (torchvision: 23,834,568)
            let n: i64 = vs
                .trainable_variables()
                .iter()
                .map(|t| t.numel() as i64)
                .sum();
            assert_eq!(n, 23_850_960);
        }
    }
}

fn rel_close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-6 * b.abs().max(1e-12),
        "{what}: {a} vs reference {b}"
    );
}

#[test]
fn fid_kid_is_match_numpy_scipy() {
    let s = read("stats.safetensors");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("stats.json")).unwrap())
            .unwrap();
    let g = |k: &str| r[k].as_f64().unwrap();
    let (a, b) = (&s["a"], &s["b"]);
    rel_close(fid(a, b).unwrap(), g("fid_ab"), "FID");
    assert!(fid(a, a).unwrap().abs() < 1e-6, "FID of a set with itself");
    let rows = |t: &Tensor| -> Vec<Vec<i64>> {
        (0..t.size()[0])
            .map(|i| Vec::try_from(&t.get(i)).unwrap())
            .collect()
    };
    let subsets: Vec<_> = rows(&s["subset_a"])
        .into_iter()
        .zip(rows(&s["subset_b"]))
        .collect();
    let (m, sd) = kid_on_subsets(a, b, &subsets);
    rel_close(m, g("kid_subsets_mean"), "KID mean");
    rel_close(sd, g("kid_subsets_std"), "KID std");
    let all_a: Vec<i64> = (0..a.size()[0]).collect();
    let all_b: Vec<i64> = (0..b.size()[0]).collect();
    rel_close(
        kid_on_subsets(a, b, &[(all_a, all_b)]).0,
        g("kid_full"),
        "KID (whole sets)",
    );
    // random subsets: reproducible by seed, near the subset reference
    let k1 = kid(a, b, 100, 20, 7).unwrap();
    assert_eq!(k1, kid(a, b, 100, 20, 7).unwrap());
    assert!((k1.0 - g("kid_full")).abs() < 0.5, "{k1:?}");
    let (im, is) = inception_score(&s["probs"], 10).unwrap();
    rel_close(im, g("is_mean"), "IS mean");
    rel_close(is, g("is_std"), "IS std");
    assert!(inception_score(&s["probs"].narrow(0, 0, 5), 10).is_err());
}

#[test]
fn frechet_distance_of_gaussians_has_the_closed_form() {
    // N(mu1, diag(s1^2)) vs N(mu2, diag(s2^2)): |mu1-mu2|^2 + sum (s1-s2)^2
    let d = 32;
    let mu1 = Tensor::linspace(-1.0, 1.0, d, (Kind::Double, Device::Cpu));
    let mu2 = &mu1 + 0.25;
    let sd1 = Tensor::linspace(0.5, 2.0, d, (Kind::Double, Device::Cpu));
    let sd2 = Tensor::linspace(1.0, 1.5, d, (Kind::Double, Device::Cpu));
    let want = (&mu1 - &mu2).square().sum(Kind::Double).double_value(&[])
        + (&sd1 - &sd2).square().sum(Kind::Double).double_value(&[]);
    let got = frechet_distance(&mu1, &sd1.square().diag(0), &mu2, &sd2.square().diag(0)).unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    // a rotated copy of a full covariance: same distance as unrotated
    let q = Tensor::linalg_qr(
        &Tensor::randn([d, d], (Kind::Double, Device::Cpu)),
        "reduced",
    )
    .0;
    let s1 = sd1.square().diag(0);
    let s2 = sd2.square().diag(0);
    let rot = |s: &Tensor| q.matmul(s).matmul(&q.tr());
    let got_r = frechet_distance(&q.matmul(&mu1), &rot(&s1), &q.matmul(&mu2), &rot(&s2)).unwrap();
    assert!((got_r - want).abs() < 1e-8, "{got_r} vs {want}");
    // an indefinite "covariance" is an error, not a silently real number
    let bad = Tensor::eye(d, (Kind::Double, Device::Cpu)) * -1.0;
    assert!(frechet_distance(&mu1, &s1, &mu2, &bad).is_err());
}

#[test]
fn clip_score_formula() {
    use t2i::eval::stats::clip_score;
    // cosines 1, 0, -1 (clipped to 0) and 0.6: 100 * (1 + 0 + 0 + 0.6) / 4
    let img = Tensor::from_slice(&[1.0f32, 0.0, 2.0, 0.0, 0.0, 3.0, 3.0, 4.0]).view([4, 2]);
    let txt = Tensor::from_slice(&[2.0f32, 0.0, 0.0, 5.0, 0.0, -1.0, 1.0, 0.0]).view([4, 2]);
    let s = clip_score(&img, &txt).unwrap();
    assert!((s - 40.0).abs() < 1e-9, "{s}");
    assert!(clip_score(&img, &txt.narrow(0, 0, 3)).is_err());
}

/// `flush_denormals`: subnormal floats read and written as zero afterwards,
/// in libtorch's kernels too (a 1e-39 tensor times one has no nonzero left).
#[test]
#[cfg(target_arch = "x86_64")]
fn flush_denormals_zeroes_subnormals() {
    let d = tch::Tensor::ones([64, 64], (tch::Kind::Float, tch::Device::Cpu)) * 1e-39;
    // a denormal survives arithmetic before
    let before = (&d * 1.0).count_nonzero(None::<i64>).int64_value(&[]);
    std::thread::spawn(|| {
        assert!(t2i::device::flush_denormals());
        let d = tch::Tensor::ones([64, 64], (tch::Kind::Float, tch::Device::Cpu)) * 1e-39;
        assert_eq!((&d * 1.0).count_nonzero(None::<i64>).int64_value(&[]), 0);
    })
    .join()
    .unwrap();
    assert_eq!(before, 64 * 64);
}
