//! StackGAN against the official StackGAN-Pytorch code: state_dict keys and
//! shapes of every `paper` network, parameter counts, the `*_small` forward
//! fixtures in both BatchNorm modes, and the loss fixtures (1e-4).

mod common;

use common::*;
use serde_json::Value;
use t2i::models::stackgan::*;
use tch::{nn, Device, Kind};

fn small_config(structure: &Value) -> StackGanConfig {
    let c = &structure["config"];
    let g = |k: &str| c[k].as_i64().unwrap();
    StackGanConfig {
        z_dim: g("Z_DIM"),
        gf_dim: g("GAN.GF_DIM"),
        df_dim: g("GAN.DF_DIM"),
        condition_dim: g("GAN.CONDITION_DIM"),
        r_num: g("GAN.R_NUM"),
        text_dim: g("TEXT.DIMENSION"),
        ..StackGanConfig::paper()
    }
}

fn structure(root: &std::path::Path, net: &str) -> Value {
    let p = root
        .join("StackGAN-Pytorch")
        .join(net)
        .join("structure.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

enum Net {
    G1(Stage1Generator),
    G2(Stage2Generator),
    D1(Discriminator),
    D2(Discriminator),
}

fn build(name: &str, vs: &nn::VarStore, c: &StackGanConfig) -> Net {
    match name {
        "STAGE1_G" => Net::G1(Stage1Generator::new(vs.root(), c)),
        "STAGE2_G" => Net::G2(Stage2Generator::new(vs.root(), c)),
        "STAGE1_D" => Net::D1(Discriminator::stage1(vs.root(), c)),
        _ => Net::D2(Discriminator::stage2(vs.root(), c)),
    }
}

#[test]
fn paper_networks_have_official_keys_shapes_and_counts() {
    let Some(root) = reference_dir() else { return };
    for (net, want) in [
        ("STAGE1_G", 10_301_248),
        ("STAGE1_D", 5_715_713),
        ("STAGE2_G", 36_591_328),
        ("STAGE2_D", 71_269_122),
    ] {
        let s = structure(&root, net);
        let vs = nn::VarStore::new(Device::Cpu);
        let _n = build(net, &vs, &StackGanConfig::paper());
        let vars = vs.variables();
        let keys = s["state_dict"].as_array().unwrap();
        assert_eq!(
            vars.len(),
            keys.len(),
            "{net}: number of state_dict entries"
        );
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
        assert_eq!(count(&vs), want, "{net} parameters");
        assert_eq!(s["total_params"].as_i64().unwrap(), want);
    }
}

#[test]
fn small_networks_reproduce_official_outputs() {
    let Some(root) = reference_dir() else { return };
    for net in ["STAGE1_G", "STAGE2_G", "STAGE1_D", "STAGE2_D"] {
        let name = format!("{net}_small");
        let s = structure(&root, &name);
        let c = small_config(&s);
        let dir = root.join("StackGAN-Pytorch").join(&name);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let n = build(net, &vs, &c);
        let w = read(&dir.join("weights.safetensors"));
        let inp = read(&dir.join("inputs.safetensors"));
        for mode in ["eval", "train"] {
            // fresh weights (train mode updates the running statistics)
            load_weights(&mut vs, &w);
            let out = read(&dir.join(format!("outputs_{mode}.safetensors")));
            let train = mode == "train";
            let what = |k: &str| format!("{name} {mode} {k}");
            tch::no_grad(|| match &n {
                Net::G1(g) => {
                    let o = g.forward_t(
                        &inp["text_embedding"],
                        &inp["noise"],
                        Some(&inp["ca_eps"]),
                        train,
                    );
                    assert_close(&o.image, &out["fake_img"], &what("fake_img"));
                    assert_close(&o.mu, &out["mu"], &what("mu"));
                    assert_close(&o.logvar, &out["logvar"], &what("logvar"));
                }
                Net::G2(g) => {
                    let o = g.forward_t(
                        &inp["text_embedding"],
                        &inp["noise"],
                        Some(&inp["ca_eps"]),
                        Some(&inp["ca_eps_stage2"]),
                        train,
                    );
                    assert_close(&o.image, &out["fake_img"], &what("fake_img"));
                    assert_close(
                        o.stage1.as_ref().unwrap(),
                        &out["stage1_img"],
                        &what("stage1_img"),
                    );
                    assert_close(&o.mu, &out["mu"], &what("mu"));
                }
                Net::D1(d) | Net::D2(d) => {
                    let h = d.forward_t(&inp["image"], train);
                    assert_close(&h, &out["img_embedding"], &what("img_embedding"));
                    let l = d.get_cond_logits.forward_t(&h, Some(&inp["c_code"]), train);
                    assert_close(&l, &out["cond_logits"], &what("cond_logits"));
                    if let Some(u) = &d.get_uncond_logits {
                        let l = u.forward_t(&h, None, train);
                        assert_close(&l, &out["uncond_logits"], &what("uncond_logits"));
                    }
                }
            });
        }
    }
}

#[test]
fn losses_match_official() {
    let Some(root) = reference_dir() else { return };
    let s = structure(&root, "STAGE1_D_small");
    let c = small_config(&s);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::stage1(vs.root(), &c);
    load_weights(
        &mut vs,
        &read(&root.join("StackGAN-Pytorch/STAGE1_D_small/weights.safetensors")),
    );
    let dir = root.join("StackGAN-Pytorch/losses");
    let inp = read(&dir.join("inputs.safetensors"));
    let out = read(&dir.join("outputs.safetensors"));
    let (err, real, wrong, fake) =
        discriminator_loss(&d, &inp["real_imgs"], &inp["fake_imgs"], &inp["mu"], true);
    let f = |t: &tch::Tensor| t.to_kind(Kind::Float);
    assert_close(&f(&err), &out["errD"], "errD");
    assert_close(&f(&real), &out["errD_real"], "errD_real");
    assert_close(&f(&wrong), &out["errD_wrong"], "errD_wrong");
    assert_close(&f(&fake), &out["errD_fake"], "errD_fake");
    let g = generator_loss(&d, &inp["fake_imgs"], &inp["mu"], true);
    assert_close(&f(&g), &out["errG"], "errG");
    assert_close(&f(&kl(&inp["mu"], &inp["logvar"])), &out["KL"], "KL");
}
