//! The caption pipeline: normalisation (NFKD, case), tokenisation, plural
//! look-up, vocabulary encoding, the shapes caption reader, the
//! char-CNN-RNN's character ids and a vocabulary read back from JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use t2i::text::vocab::{normalise, singulars, tokenize, Vocab};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (train, query) = text.split_once('\u{1}').unwrap_or((&text, &text));
    let words = tokenize(train);
    for w in &words {
        let _ = singulars(w);
    }
    let _ = normalise(query);
    let vocab = Vocab::build(train.lines(), 1);
    for max_len in [0, 1, 18] {
        let _ = vocab.encode(query, max_len);
    }
    let back = Vocab::from_json(&vocab.to_json()).expect("a vocabulary's own JSON reads back");
    assert_eq!(back.len(), vocab.len());
    let _ = Vocab::from_json(query);
    let _ = t2i::data::shapes_text::read_caption(query);
    let _ = t2i::text::char_cnn_rnn::char_ids(query);
});
