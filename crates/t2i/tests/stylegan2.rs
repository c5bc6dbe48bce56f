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
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let n = |k: &str| cfg[k].as_i64().unwrap();
    let c = StyleGan2Config {
        size: n("size"),
        style_dim: n("style_dim"),
        n_mlp: n("n_mlp"),
        lr_mlp: 0.01,
        channel_base: n("channel_base"),
        max_channels: n("max_channels"),
    };
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
