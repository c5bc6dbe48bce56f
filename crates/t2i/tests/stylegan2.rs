//! StyleGAN2 against StyleT2I's own model code (rosinality's StyleGAN2, run
//! by `scripts/fixtures/make_stylegan2_fixtures.sh`): the `paper` networks'
//! state_dict keys and shapes, and a small network's mapping, mixed and
//! truncated synthesis and discriminator logits within 1e-4.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use t2i::models::stylegan2::*;
use tch::{nn, Device, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stylegan2")
}

fn key_shapes(vs: &nn::VarStore) -> HashMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect()
}

fn want_shapes(list: &Value) -> HashMap<String, Vec<i64>> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let shape = e[1].as_array().unwrap().iter().map(|d| d.as_i64().unwrap());
            (e[0].as_str().unwrap().to_string(), shape.collect())
        })
        .collect()
}

#[test]
fn paper_networks_have_the_reference_keys_and_shapes() {
    let s: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("structure_paper.json")).unwrap(),
    )
    .unwrap();
    let c = StyleGan2Config::paper();
    let vs = nn::VarStore::new(Device::Cpu);
    let _g = Generator::new(&vs.root(), &c);
    assert_eq!(key_shapes(&vs), want_shapes(&s["generator"]), "generator");
    let vs = nn::VarStore::new(Device::Cpu);
    let _d = Discriminator::new(&vs.root(), &c);
    assert_eq!(
        key_shapes(&vs),
        want_shapes(&s["discriminator"]),
        "discriminator"
    );
    let trainable = |vs: &nn::VarStore| -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let _g = Generator::new(&vs.root(), &c);
    assert_eq!(trainable(&vs), s["generator_parameters"].as_i64().unwrap());
    let vs = nn::VarStore::new(Device::Cpu);
    let _d = Discriminator::new(&vs.root(), &c);
    assert_eq!(
        trainable(&vs),
        s["discriminator_parameters"].as_i64().unwrap()
    );
}

#[test]
fn small_network_matches_the_reference_outputs() {
    let dir = fixtures();
    let (c, cfg) = small_config();
    let n = |k: &str| cfg[k].as_i64().unwrap();
    let mut gvs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(&gvs.root(), &c);
    load_weights(&mut gvs, &read(&dir.join("generator.safetensors")));
    let mut dvs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(&dvs.root(), &c);
    load_weights(&mut dvs, &read(&dir.join("discriminator.safetensors")));
    let inp = read(&dir.join("inputs.safetensors"));
    let out = read(&dir.join("outputs.safetensors"));
    let noise: Vec<Tensor> = (0..c.num_noises())
        .map(|i| inp[&format!("noise_{i}")].shallow_clone())
        .collect();
    tch::no_grad(|| {
        let w = g.mapping(&inp["z"]);
        assert_close(&w, &out["w"], "mapping");
        // style mixing: the first `inject` layers from z, the rest from z2
        let inject = n("inject_index");
        let w2 = g.mapping(&inp["z2"]);
        let nl = c.n_latent();
        let latent = Tensor::cat(
            &[
                w.unsqueeze(1).repeat([1, inject, 1]),
                w2.unsqueeze(1).repeat([1, nl - inject, 1]),
            ],
            1,
        );
        let mixed = g.synthesis(&latent, &noise);
        assert_close(&mixed, &out["mixed"], "mixed synthesis");
        let t = cfg["truncation"].as_f64().unwrap();
        let wt = &inp["w_mean"] + (&out["w"] - &inp["w_mean"]) * t;
        let trunc = g.synthesis(&g.broadcast(&wt), &noise);
        assert_close(&trunc, &out["truncated"], "truncated synthesis");
        assert_close(&d.forward(&out["mixed"]), &out["d_logits"], "D, batch 4");
        assert_close(
            &d.forward(&out["mixed"].narrow(0, 0, 2)),
            &out["d_logits_batch2"],
            "D, batch 2",
        );
    });
}

/// The small network's config as the fixture script wrote it.
fn small_config() -> (StyleGan2Config, Value) {
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("config.json")).unwrap())
            .unwrap();
    let n = |k: &str| cfg[k].as_i64().unwrap();
    let c = StyleGan2Config {
        size: n("size"),
        style_dim: n("style_dim"),
        n_mlp: n("n_mlp"),
        lr_mlp: 0.01,
        channel_base: n("channel_base"),
        max_channels: n("max_channels"),
    };
    (c, cfg)
}

#[test]
fn rosinality_checkpoint_imports_and_draws_the_reference() {
    // torch.save's zip of {"g_ema", "g_optim", "args" (a Namespace), ...}
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported.safetensors");
    let line = t2i::family::family("stylegan2")
        .unwrap()
        .import(&t2i::family::ImportRequest {
            weights: &fixtures().join("rosinality_checkpoint.pt"),
            text_encoder: None,
            captions: None,
            out: &out,
        })
        .unwrap();
    assert!(line.contains("g_ema (from g_ema)"), "{line}");
    let ck = t2i::checkpoint::load(&out).unwrap();
    let m = t2i::train::stylegan2::StyleGan2Model::from_checkpoint(&ck, Device::Cpu).unwrap();
    let (c, cfg) = small_config();
    assert_eq!(m.config, c, "configuration read from the weights");
    let inp = read(&fixtures().join("inputs.safetensors"));
    let want = read(&fixtures().join("outputs.safetensors"));
    let noise: Vec<Tensor> = (0..c.num_noises())
        .map(|i| inp[&format!("noise_{i}")].shallow_clone())
        .collect();
    tch::no_grad(|| {
        assert_close(&m.g.mapping(&inp["z"]), &want["w"], "imported mapping");
        let t = cfg["truncation"].as_f64().unwrap();
        let wt = &inp["w_mean"] + (&want["w"] - &inp["w_mean"]) * t;
        let trunc = m.g.synthesis(&m.g.broadcast(&wt), &noise);
        assert_close(&trunc, &want["truncated"], "imported synthesis");
    });
    // the imported checkpoint generates through the family interface
    let g = t2i::family::load_generator(&ck, Device::Cpu).unwrap();
    assert_eq!(g.image_size(), c.size);
}

#[test]
fn import_reads_g_d_and_g_ema_and_refuses_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(String, Tensor)> = Vec::new();
    for (file, prefixes) in [
        ("generator.safetensors", ["g_ema", "g"].as_slice()),
        ("discriminator.safetensors", ["d"].as_slice()),
    ] {
        for (k, v) in read(&fixtures().join(file)) {
            for p in prefixes {
                all.push((format!("{p}.{k}"), v.shallow_clone()));
            }
        }
    }
    let src = dir.path().join("both.safetensors");
    Tensor::write_safetensors(&all, &src).unwrap();
    let out = dir.path().join("out.safetensors");
    let fam = t2i::family::family("stylegan2").unwrap();
    fn req<'a>(w: &'a std::path::Path, out: &'a std::path::Path) -> t2i::family::ImportRequest<'a> {
        t2i::family::ImportRequest {
            weights: w,
            text_encoder: None,
            captions: None,
            out,
        }
    }
    let line = fam.import(&req(&src, &out)).unwrap();
    assert!(line.contains("g_ema (from g_ema), g, d"), "{line}");
    let ck = t2i::checkpoint::load(&out).unwrap();
    let d = read(&fixtures().join("discriminator.safetensors"));
    let k = "convs.0.0.weight";
    assert!(
        (&ck.tensors[&format!("d.{k}")] - &d[k])
            .abs()
            .max()
            .double_value(&[])
            == 0.0
    );
    // a file with no generator, and a damaged generator, are refused
    let bad = dir.path().join("bad.safetensors");
    Tensor::write_safetensors(&[("x", Tensor::zeros([2], tch::kind::FLOAT_CPU))], &bad).unwrap();
    let e = fam.import(&req(&bad, &out)).err().unwrap().to_string();
    assert!(e.contains("no StyleGAN2 generator"), "{e}");
    let cut: Vec<(String, Tensor)> = all
        .iter()
        .filter(|(k, _)| k != "g_ema.convs.1.conv.weight")
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    Tensor::write_safetensors(&cut, &bad).unwrap();
    let e = fam.import(&req(&bad, &out)).err().unwrap().to_string();
    assert!(
        e.contains("missing") && e.contains("convs.1.conv.weight"),
        "{e}"
    );
    assert!(!out.with_extension("tmp").exists());
}
