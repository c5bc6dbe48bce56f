//! Tokenizer and vocabulary shared by the word-level text encoders.
//!
//! Captions are lowercased and split on anything that is not a letter or a
//! digit (AttnGAN's preprocessing). Index 0 is padding, 1 the unknown word.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub const PAD: i64 = 0;
pub const UNK: i64 = 1;

/// Why a caption cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CaptionError {
    #[error("the caption is empty")]
    Empty,
    #[error("no word of the caption is in the vocabulary (unknown: {})", .0.join(", "))]
    AllUnknown(Vec<String>),
}

/// Lowercase words of a caption.
pub fn tokenize(caption: &str) -> Vec<String> {
    caption
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// A caption turned into word ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<i64>,
    /// Words mapped to the unknown index, in order of appearance.
    pub unknown: Vec<String>,
}

/// Word list with `<pad>` at 0 and `<unk>` at 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    pub words: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, i64>,
}

impl Vocab {
    /// Builds a vocabulary from training captions, keeping words seen at
    /// least `min_count` times, sorted for a stable order.
    pub fn build<'a>(captions: impl IntoIterator<Item = &'a str>, min_count: usize) -> Self {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for c in captions {
            for w in tokenize(c) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut words = vec!["<pad>".to_string(), "<unk>".to_string()];
        words.extend(
            counts
                .into_iter()
                .filter(|(_, n)| *n >= min_count)
                .map(|(w, _)| w),
        );
        Self::from_words(words)
    }

    pub fn from_words(words: Vec<String>) -> Self {
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as i64))
            .collect();
        Self { words, index }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.len() <= 2
    }

    /// Word ids of a caption (at most `max_len`); unknown words are mapped to
    /// [`UNK`] and listed. Empty captions and captions of only unknown words
    /// are errors.
    pub fn encode(&self, caption: &str, max_len: usize) -> Result<Encoded, CaptionError> {
        let tokens = tokenize(caption);
        if tokens.is_empty() {
            return Err(CaptionError::Empty);
        }
        let has_unk = self.has_unknown_token();
        let mut unknown = Vec::new();
        let mut known = 0usize;
        let mut ids = Vec::new();
        for w in &tokens {
            match self.index.get(w) {
                Some(&i) => {
                    known += 1;
                    ids.push(i);
                }
                None => {
                    unknown.push(w.clone());
                    if has_unk {
                        ids.push(UNK);
                    }
                }
            }
            if ids.len() == max_len {
                break;
            }
        }
        if known == 0 {
            return Err(CaptionError::AllUnknown(unknown));
        }
        Ok(Encoded { ids, unknown })
    }

    /// Whether index 1 is `<unk>` (t2i's vocabularies). The official
    /// AttnGAN vocabulary (`captions.pickle`: `<end>` at 0, then the words)
    /// has none: unknown words are dropped, as its data loader does.
    pub fn has_unknown_token(&self) -> bool {
        self.words.get(1).is_some_and(|w| w == "<unk>")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.words).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        Ok(Self::from_words(serde_json::from_str(s)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_maps_unknown_and_rejects_bad() {
        let v = Vocab::build(["a red circle", "a blue square"], 1);
        let e = v.encode("A red, zebra circle!", 10).unwrap();
        assert_eq!(e.ids.len(), 4);
        assert_eq!(e.ids[2], UNK);
        assert_eq!(e.unknown, vec!["zebra".to_string()]);
        assert_eq!(v.encode("  ", 10), Err(CaptionError::Empty));
        // a vocabulary without <unk> (official AttnGAN) drops unknown words
        let o = Vocab::from_words(vec!["<end>".into(), "a".into(), "red".into()]);
        let e = o.encode("a zebra red", 10).unwrap();
        assert_eq!(e.ids, vec![1, 2]);
        assert_eq!(e.unknown, vec!["zebra".to_string()]);
        assert_eq!(o.encode("a", 10).unwrap().ids, vec![1]);
        assert!(o.encode("zebra", 10).is_err());
        assert!(matches!(
            v.encode("zebra giraffe", 10),
            Err(CaptionError::AllUnknown(_))
        ));
        assert_eq!(Vocab::from_json(&v.to_json()).unwrap(), v);
    }
}
