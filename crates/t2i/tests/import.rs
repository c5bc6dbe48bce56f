//! `t2i import`: official generators in both `.pth` formats become t2i
//! checkpoints that reproduce the official outputs (1e-4) and generate.

mod common;

use common::*;
use serde_pickle::{HashableValue, Value};
use std::collections::BTreeMap;
use t2i::checkpoint;
use t2i::import::{import_attngan, import_stackgan};
use t2i::models::attngan::AttnGanModel;
use t2i::models::stackgan::{StackGanModel, StackGenerator};
use tch::Device;

/// A `captions.pickle` like the official one: [train, test, ixtoword, wordtoix].
fn write_captions_pickle(path: &std::path::Path, n: usize) {
    let words: Vec<String> = (0..n)
        .map(|i| {
            if i == 0 {
                "<end>".into()
            } else {
                format!("w{i}")
            }
        })
        .collect();
    let ixtoword: BTreeMap<HashableValue, Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (HashableValue::I64(i as i64), Value::String(w.clone())))
        .collect();
    let wordtoix: BTreeMap<HashableValue, Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (HashableValue::String(w.clone()), Value::I64(i as i64)))
        .collect();
    let v = Value::List(vec![
        Value::List(vec![]),
        Value::List(vec![]),
        Value::Dict(ixtoword),
        Value::Dict(wordtoix),
    ]);
    let bytes = serde_pickle::value_to_vec(&v, serde_pickle::SerOptions::new()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn attngan_official_weights_import_and_generate() {
    let Some(root) = reference_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let g_dir = root.join("AttnGAN/G_NET_small");
    let t_dir = root.join("AttnGAN/RNN_ENCODER_small");
    let n_words = read(&t_dir.join("weights.safetensors"))["encoder.weight"].size()[0];
    let pickle = tmp.path().join("captions.pickle");
    write_captions_pickle(&pickle, n_words as usize);
    let inp = read(&g_dir.join("inputs.safetensors"));
    let out = read(&g_dir.join("outputs_eval.safetensors"));
    for file in ["weights.pth", "weights_legacy.pth"] {
        let m = import_attngan(
            &g_dir.join(file),
            &t_dir.join(file),
            Some(&pickle),
            Device::Cpu,
        )
        .unwrap();
        assert_eq!(m.config.branch_num, 3);
        assert_eq!(m.config.base_size, 64);
        let o = tch::no_grad(|| {
            m.g.forward_t(
                &inp["z_code"],
                &inp["sent_emb"],
                &inp["word_embs"],
                Some(&inp["mask"]),
                Some(&inp["ca_eps"]),
                false,
            )
        });
        assert_close(
            &o.images[2],
            &out["fake_img3"],
            &format!("{file} fake_img3"),
        );
        // the text encoder reproduces its own fixture
        let ti = read(&t_dir.join("inputs.safetensors"));
        let to = read(&t_dir.join("outputs_eval.safetensors"));
        let lens: Vec<i64> = Vec::try_from(&ti["cap_lens"]).unwrap();
        let e = tch::no_grad(|| {
            m.text
                .forward_t(&ti["captions"], &lens, Some((&ti["h0"], &ti["c0"])), false)
        });
        assert_close(&e.sentence, &to["sent_emb"], "imported text encoder");
        // the written checkpoint generates the same images
        let p = tmp.path().join("attn.safetensors");
        m.save(&p, "imported", 0).unwrap();
        let u = AttnGanModel::from_checkpoint(&checkpoint::load(&p).unwrap(), Device::Cpu).unwrap();
        let caps = ["w1 w2 w3 zebra"];
        let t = u.encode(&caps).unwrap();
        assert_eq!(t.unknown[0], vec!["zebra".to_string()]);
        assert_eq!(t.lens, vec![3], "official vocabularies drop unknown words");
        let a = u.generate_captions(&caps, 1).unwrap();
        let b = m.generate_captions(&caps, 1).unwrap();
        assert_eq!(a.size(), vec![1, 3, 256, 256]);
        // a loaded generator runs channels-last: equal up to rounding
        assert!(
            a.allclose(&b, 0.0, 1e-5, false),
            "{}",
            (&a - &b).abs().max()
        );
    }
    // an official text encoder without its vocabulary is refused clearly
    let e = import_attngan(
        &g_dir.join("weights.pth"),
        &t_dir.join("weights.pth"),
        None,
        Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("captions.pickle"), "{e}");
    // a StackGAN file is not an AttnGAN G
    let e = import_attngan(
        &root.join("StackGAN-Pytorch/STAGE1_G_small/weights.pth"),
        &t_dir.join("weights.pth"),
        Some(&pickle),
        Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("AttnGAN G"), "{e}");
}

#[test]
fn stackgan_official_weights_import_both_stages() {
    let Some(root) = reference_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // a t2i text encoder with the fixtures' 64-d sentence vectors
    let vocab = t2i::text::Vocab::build(["a red bird", "a blue bird"], 1);
    let enc = t2i::text::GruEncoder::new(
        t2i::text::GruEncoderConfig {
            sentence_dim: 64,
            ..t2i::text::GruEncoderConfig::tiny()
        },
        vocab.clone(),
        Device::Cpu,
    );
    let te = tmp.path().join("text.safetensors");
    enc.save(&te).unwrap();
    for (net, stage) in [("STAGE1_G_small", 1u8), ("STAGE2_G_small", 2)] {
        let dir = root.join("StackGAN-Pytorch").join(net);
        let inp = read(&dir.join("inputs.safetensors"));
        let out = read(&dir.join("outputs_eval.safetensors"));
        // the Stage-II fixture has no .pth copy: its safetensors has the
        // official key names too
        for file in ["weights.pth", "weights_legacy.pth", "weights.safetensors"] {
            if !dir.join(file).exists() {
                continue;
            }
            let m = import_stackgan(&dir.join(file), &te, Device::Cpu).unwrap();
            assert_eq!(m.stage, stage);
            let o = tch::no_grad(|| match &m.g {
                StackGenerator::Stage1(g) => g.forward_t(
                    &inp["text_embedding"],
                    &inp["noise"],
                    Some(&inp["ca_eps"]),
                    false,
                ),
                StackGenerator::Stage2(g) => g.forward_t(
                    &inp["text_embedding"],
                    &inp["noise"],
                    Some(&inp["ca_eps"]),
                    Some(&inp["ca_eps_stage2"]),
                    false,
                ),
            });
            assert_close(&o.image, &out["fake_img"], &format!("{net} {file}"));
            let p = tmp.path().join("sg.safetensors");
            m.save(&p, 0).unwrap();
            let u = StackGanModel::from_checkpoint(&checkpoint::load(&p).unwrap(), Device::Cpu)
                .unwrap();
            let a = u.generate(&["a red bird"], 3).unwrap().1;
            let b = m.generate(&["a red bird"], 3).unwrap().1;
            // a loaded generator runs channels-last: equal up to rounding
            assert!(
                a.allclose(&b, 0.0, 1e-5, false),
                "{}",
                (&a - &b).abs().max()
            );
        }
    }
    // a text encoder of the wrong size is refused clearly
    let small = t2i::text::GruEncoder::new(t2i::text::GruEncoderConfig::tiny(), vocab, Device::Cpu);
    let te2 = tmp.path().join("text2.safetensors");
    small.save(&te2).unwrap();
    let e = import_stackgan(
        &root.join("StackGAN-Pytorch/STAGE1_G_small/weights.pth"),
        &te2,
        Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("expects 64"), "{e}");
}

#[test]
fn damsm_image_encoder_file_loads_by_official_names() {
    // a CNN_ENCODER state_dict as an older PyTorch writes it (no
    // num_batches_tracked), with the official key names
    let tmp = tempfile::tempdir().unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    use t2i::models::damsm::{CnnEncoder, CnnEncoderConfig};
    let e = CnnEncoder::new(
        vs.root(),
        CnnEncoderConfig {
            dim: 32,
            ..CnnEncoderConfig::paper()
        },
    );
    let named: Vec<(String, tch::Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, v)| (k, v.detach().copy()))
        .collect();
    assert!(named
        .iter()
        .any(|(k, _)| k == "Mixed_6e.branch7x7dbl_5.conv.weight"));
    let p = tmp.path().join("image_encoder.safetensors");
    tch::Tensor::write_safetensors(&named, &p).unwrap();
    let (_vs2, u) = t2i::import::damsm_image_encoder(&p, Device::Cpu).unwrap();
    let x = tch::Tensor::rand([1, 3, 64, 64], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let (r1, g1) = tch::no_grad(|| e.forward_t(&x, false));
    let (r2, g2) = tch::no_grad(|| u.forward_t(&x, false));
    assert_eq!(g2.size(), vec![1, 32]);
    assert!(r1.equal(&r2) && g1.equal(&g2));
    // a G_NET file is not an image encoder
    if let Some(root) = reference_dir() {
        let e = t2i::import::damsm_image_encoder(
            &root.join("AttnGAN/G_NET_small/weights.pth"),
            Device::Cpu,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("emb_cnn_code"), "{e}");
    }
}
