//! DAMSM against the official AttnGAN code: the RNN_ENCODER fixtures
//! (full and small) and the word / sentence loss fixtures, 1e-4.

mod common;

use common::*;
use t2i::models::damsm::{sent_loss, words_loss, Gammas};
use t2i::text::damsm::{RnnEncoder, RnnEncoderConfig};
use t2i::text::Vocab;
use tch::{Device, Kind, Tensor};

fn vocab(n: i64) -> Vocab {
    Vocab::from_words((0..n).map(|i| format!("w{i}")).collect())
}

fn rnn_fixture(name: &str) {
    let Some(root) = reference_dir() else { return };
    let dir = root.join("AttnGAN").join(name);
    let w = read(&dir.join("weights.safetensors"));
    let inp = read(&dir.join("inputs.safetensors"));
    let out = read(&dir.join("outputs_eval.safetensors"));
    let emb = w["encoder.weight"].size();
    let dim = w["rnn.weight_hh_l0"].size()[1] * 2;
    let config = RnnEncoderConfig {
        embed_dim: emb[1],
        dim,
        ..RnnEncoderConfig::paper()
    };
    let mut enc = RnnEncoder::new(config, vocab(emb[0]), Device::Cpu);
    load_weights(&mut enc.vs, &w);
    let lens: Vec<i64> = Vec::try_from(&inp["cap_lens"]).unwrap();
    let o = tch::no_grad(|| {
        enc.forward_t(
            &inp["captions"],
            &lens,
            Some((&inp["h0"], &inp["c0"])),
            false,
        )
    });
    assert_close(&o.words, &out["words_emb"], &format!("{name} words_emb"));
    assert_close(&o.sentence, &out["sent_emb"], &format!("{name} sent_emb"));
}

#[test]
fn rnn_encoder_small_matches_official() {
    rnn_fixture("RNN_ENCODER_small");
}

#[test]
fn rnn_encoder_full_matches_official_and_counts() {
    rnn_fixture("RNN_ENCODER");
    // 5,450 words: the official parameter count
    let enc = RnnEncoder::new(RnnEncoderConfig::paper(), vocab(5450), Device::Cpu);
    let n: i64 = enc.vs.variables().values().map(|t| t.numel() as i64).sum();
    assert_eq!(n, 2_075_320);
}

#[test]
fn damsm_losses_match_official() {
    let Some(root) = reference_dir() else { return };
    let dir = root.join("AttnGAN").join("losses");
    let inp = read(&dir.join("inputs.safetensors"));
    let out = read(&dir.join("outputs.safetensors"));
    let lens: Vec<i64> = Vec::try_from(&inp["cap_lens"]).unwrap();
    let classes: Vec<i64> = Vec::try_from(&inp["class_ids"]).unwrap();
    let g = Gammas::default();
    let scalar = |t: &Tensor| t.to_kind(Kind::Float);
    for (masked, suffix) in [(true, ""), (false, "_noclass")] {
        let c = masked.then_some(classes.as_slice());
        let (w0, w1, alpha) = words_loss(&inp["img_features"], &inp["words_emb"], &lens, c, g);
        let (s0, s1) = sent_loss(&inp["cnn_code"], &inp["sent_emb"], c, g);
        assert_close(&scalar(&w0), &out[&format!("w_loss0{suffix}")], "w_loss0");
        assert_close(&scalar(&w1), &out[&format!("w_loss1{suffix}")], "w_loss1");
        assert_close(&scalar(&s0), &out[&format!("s_loss0{suffix}")], "s_loss0");
        assert_close(&scalar(&s1), &out[&format!("s_loss1{suffix}")], "s_loss1");
        if masked {
            let maps = t2i::models::damsm::attention_maps(&alpha, &lens, 17, 17);
            for (i, m) in maps.iter().enumerate() {
                assert_close(&m.unsqueeze(0), &out[&format!("att_map{i}")], "att_map");
            }
        }
    }
}
