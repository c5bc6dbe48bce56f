//! AttnGAN against the official code: state_dict keys, shapes and parameter
//! counts of the `paper` networks, the `*_small` forward fixtures in both
//! BatchNorm modes, the discriminator-loss fixture, and the published
//! checkpoint formats (1e-4).

mod common;

use common::*;
use serde_json::Value;
use t2i::models::attngan::*;
use tch::{nn, Device, Kind};

fn structure(root: &std::path::Path, net: &str) -> Value {
    let p = root.join("AttnGAN").join(net).join("structure.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn config(s: &Value) -> AttnGanConfig {
    let c = &s["config"];
    let g = |k: &str| c[k].as_i64().unwrap();
    AttnGanConfig {
        gf_dim: g("GAN.GF_DIM"),
        df_dim: g("GAN.DF_DIM"),
        z_dim: g("GAN.Z_DIM"),
        condition_dim: g("GAN.CONDITION_DIM"),
        r_num: g("GAN.R_NUM"),
        text_dim: g("TEXT.EMBEDDING_DIM"),
        branch_num: g("TREE.BRANCH_NUM"),
        ..AttnGanConfig::paper()
    }
}

fn size_of(net: &str) -> i64 {
    match net {
        "D_NET64" => 64,
        "D_NET128" => 128,
        _ => 256,
    }
}

#[test]
fn paper_networks_have_official_keys_shapes_and_counts() {
    let Some(root) = reference_dir() else { return };
    for (net, want) in [
        ("G_NET", 7_084_592),
        ("D_NET64", 6_313_730),
        ("D_NET128", 19_424_002),
        ("D_NET256", 71_858_946),
        ("CNN_ENCODER", 22_506_720),
    ] {
        let s = structure(&root, net);
        let c = AttnGanConfig::paper();
        let vs = nn::VarStore::new(Device::Cpu);
        if net == "G_NET" {
            let _g = Generator::new(vs.root(), &c);
        } else if net == "CNN_ENCODER" {
            // the paper DAMSM's image encoder (Inception-v3 body + projections)
            use t2i::models::damsm::{CnnEncoder, CnnEncoderConfig};
            let e = CnnEncoder::new(vs.root(), CnnEncoderConfig::paper());
            let x = tch::Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu));
            let (r, g) = tch::no_grad(|| e.forward_t(&x, false));
            assert_eq!(r.size(), vec![1, 256, 17, 17]);
            assert_eq!(g.size(), vec![1, 256]);
        } else {
            let _d = Discriminator::new(vs.root(), &c, size_of(net));
        }
        let vars = vs.variables();
        let keys = s["state_dict"].as_array().unwrap();
        assert_eq!(vars.len(), keys.len(), "{net}: number of entries");
        for k in keys {
            let name = k[0].as_str().unwrap();
            let shape: Vec<i64> = k[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            let v = vars.get(name).unwrap_or_else(|| panic!("{net}: no {name}"));
            assert_eq!(v.size(), shape, "{net}: {name}");
        }
        assert_eq!(t2i::bench::count(&vs).0, want, "{net} parameters");
    }
}

#[test]
fn small_networks_reproduce_official_outputs() {
    let Some(root) = reference_dir() else { return };
    for net in ["G_NET", "D_NET64", "D_NET128", "D_NET256"] {
        let name = format!("{net}_small");
        let s = structure(&root, &name);
        let c = config(&s);
        let dir = root.join("AttnGAN").join(&name);
        let w = read(&dir.join("weights.safetensors"));
        let inp = read(&dir.join("inputs.safetensors"));
        let mut vs = nn::VarStore::new(Device::Cpu);
        let g = (net == "G_NET").then(|| Generator::new(vs.root(), &c));
        let d = (net != "G_NET").then(|| Discriminator::new(vs.root(), &c, size_of(net)));
        for mode in ["eval", "train"] {
            load_weights(&mut vs, &w);
            let out = read(&dir.join(format!("outputs_{mode}.safetensors")));
            let train = mode == "train";
            let what = |k: &str| format!("{name} {mode} {k}");
            tch::no_grad(|| {
                if let Some(g) = &g {
                    let o = g.forward_t(
                        &inp["z_code"],
                        &inp["sent_emb"],
                        &inp["word_embs"],
                        Some(&inp["mask"]),
                        Some(&inp["ca_eps"]),
                        train,
                    );
                    for (i, img) in o.images.iter().enumerate() {
                        assert_close(img, &out[&format!("fake_img{}", i + 1)], &what("fake_img"));
                    }
                    for (i, a) in o.attention.iter().enumerate() {
                        assert_close(a, &out[&format!("att{}", i + 1)], &what("att"));
                    }
                    assert_close(&o.mu, &out["mu"], &what("mu"));
                    assert_close(&o.logvar, &out["logvar"], &what("logvar"));
                }
                if let Some(d) = &d {
                    let h = d.forward_t(&inp["image"], train);
                    assert_close(&h, &out["x_code4"], &what("x_code4"));
                    let l = d.cond.forward_t(&h, Some(&inp["sent_emb"]), train);
                    assert_close(&l, &out["cond_logits"], &what("cond_logits"));
                    let l = d.uncond.forward_t(&h, None, train);
                    assert_close(&l, &out["uncond_logits"], &what("uncond_logits"));
                }
            });
        }
    }
}

#[test]
fn discriminator_loss_matches_official() {
    let Some(root) = reference_dir() else { return };
    let s = structure(&root, "D_NET64_small");
    let c = config(&s);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(vs.root(), &c, 64);
    load_weights(
        &mut vs,
        &read(&root.join("AttnGAN/D_NET64_small/weights.safetensors")),
    );
    let dir = root.join("AttnGAN/losses");
    let inp = read(&dir.join("inputs.safetensors"));
    let out = read(&dir.join("outputs.safetensors"));
    let e = discriminator_loss(
        &d,
        &inp["d_real_imgs"],
        &inp["d_fake_imgs"],
        &inp["d_sent_emb"],
        true,
    );
    assert_close(&e.to_kind(Kind::Float), &out["errD_D_NET64_small"], "errD");
}

#[test]
fn published_generator_files_load() {
    let Some(root) = reference_dir() else { return };
    let dir = root.join("AttnGAN/G_NET_small");
    let s = structure(&root, "G_NET_small");
    let want = read(&dir.join("weights.safetensors"));
    for f in ["weights.pth", "weights_legacy.pth"] {
        let got = t2i::pth::load(&dir.join(f)).unwrap();
        let mut vs = nn::VarStore::new(Device::Cpu);
        let _g = Generator::new(vs.root(), &config(&s));
        load_weights(&mut vs, &got.into_iter().collect());
        for (k, v) in vs.variables() {
            assert!(v.equal(&want[&k]), "{f}: {k}");
        }
    }
}
