//! char-CNN-RNN: character encoding, shapes, the structured joint embedding
//! loss against hand-computed values, and the checkpoint round trip through
//! the text-encoder interface every model uses.

use t2i::text::char_cnn_rnn::{char_ids, CharCnnRnn, CharCnnRnnConfig, ALPHABET, MAX_CHARS};
use t2i::text::{AnyTextEncoder, TextEncoder};
use t2i::train::char_cnn_rnn::sje_loss;
use tch::{Device, Kind, Tensor};

#[test]
fn characters_map_to_the_alphabet() {
    assert_eq!(ALPHABET.chars().count(), 69);
    assert_eq!(char_ids("Ab z"), [1, 2, 69, 26]);
    // accents are dropped (NFKD), characters outside the alphabet are 0
    assert_eq!(char_ids("É!"), [5, 41]);
    assert_eq!(char_ids("€"), [0]);
    assert_eq!(char_ids(&"a".repeat(300)).len(), MAX_CHARS);
}

#[test]
fn sje_loss_matches_hand_computed_values() {
    // s[i][j] = F(v_i, t_j); diagonal = matching pairs
    let s = Tensor::from_slice(&[2.0f32, 1.5, -1.0, 0.0, 0.5, 0.2, 3.0, 0.0, 1.0]).view([3, 3]);
    // images (rows): row0: max(0,1+1.5-2)=0.5, max(0,1-1-2)=0 -> 0.5
    //   row1: 1+0-0.5=0.5, 1+0.2-0.5=0.7 -> 1.2 ; row2: 1+3-1=3, 1+0-1=0 -> 3
    // texts (columns): col0: 1+0-2=-1->0, 1+3-2=2 -> 2 ; col1: 1+1.5-0.5=2, 1+0-0.5=0.5 -> 2.5
    //   col2: 1-1-1=-1->0, 1+0.2-1=0.2 -> 0.2
    // (0.5 + 1.2 + 3 + 2 + 2.5 + 0.2) / (3 * 2)
    let want = (0.5 + 1.2 + 3.0 + 2.0 + 2.5 + 0.2) / 6.0;
    let got = sje_loss(&s).double_value(&[]);
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // a perfectly separated batch costs nothing
    let good = Tensor::eye(4, (Kind::Float, Device::Cpu)) * 5.0;
    assert_eq!(sje_loss(&good).double_value(&[]), 0.0);
}

#[test]
fn encoder_shapes_and_checkpoint_round_trip() {
    tch::manual_seed(3);
    let enc = CharCnnRnn::new(CharCnnRnnConfig::tiny(), Device::Cpu);
    let caps = [
        "this bird has a red crown",
        "a small yellow bird with black wings",
    ];
    let (f, e) = enc.encode(&caps).unwrap();
    assert_eq!(f.sentence.size(), [2, 256]);
    assert_eq!(f.words.size(), [2, 18, 128]); // 201 -> 66 -> 21 -> 18 steps
    assert!(e[0].unknown.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.safetensors");
    enc.save(&p).unwrap();
    let any = AnyTextEncoder::load(&p, Device::Cpu).unwrap();
    assert_eq!(any.name(), "char-cnn-rnn");
    let (g, _) = any.encode(&caps).unwrap();
    assert_eq!((f.sentence - g.sentence).abs().max().double_value(&[]), 0.0);
    let err = enc.encode(&[" "]).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    // unknown characters are reported, not fatal
    let (_, e) = enc.encode(&["a bird ☺"]).unwrap();
    assert_eq!(e[0].unknown, ["☺"]);
}
