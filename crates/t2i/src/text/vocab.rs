//! Tokenizer and vocabulary shared by the word-level text encoders.
//!
//! Captions are normalised ([`normalise`]: Unicode NFKD without accents,
//! lowercase) and split on anything that is not a letter or a digit
//! (AttnGAN's preprocessing). A word missing from the vocabulary is looked
//! up again as a simple singular ("circles" -> "circle"). Index 0 is
//! padding, 1 the unknown word.

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

/// A caption as every text encoder reads it: Unicode compatibility
/// decomposition (NFKD) with the combining marks dropped, so "Café" and
/// "café" read "cafe" and the ligature "ﬁ" reads "fi", then lowercase.
pub fn normalise(caption: &str) -> String {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    caption
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Normalised words of a caption.
pub fn tokenize(caption: &str) -> Vec<String> {
    normalise(caption)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The singulars a simple English plural may have, most likely first:
/// "boxes" -> "box", "berries" -> "berry", "circles" -> "circle" (none for
/// words that do not end in "s").
pub fn singulars(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    if word.len() < 3 || !word.ends_with('s') || word.ends_with("ss") {
        return out;
    }
    if let Some(stem) = word.strip_suffix("ies") {
        out.push(format!("{stem}y"));
    }
    if let Some(stem) = word.strip_suffix("es") {
        out.push(stem.to_string());
    }
    out.push(word[..word.len() - 1].to_string());
    out
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

    /// Word ids of a caption (at most `max_len`). Words missing from the
    /// vocabulary (after [`singulars`]) are left out and listed: t2i's
    /// vocabularies hold every training word, so their `<unk>` vector was
    /// never trained, and the official AttnGAN loader drops them too. Empty
    /// captions and captions of only unknown words are errors.
    pub fn encode(&self, caption: &str, max_len: usize) -> Result<Encoded, CaptionError> {
        let tokens = tokenize(caption);
        if tokens.is_empty() {
            return Err(CaptionError::Empty);
        }
        let mut unknown = Vec::new();
        let mut ids = Vec::new();
        for w in &tokens {
            let found = self.index.get(w).copied().or_else(|| {
                singulars(w)
                    .iter()
                    .find_map(|s| self.index.get(s.as_str()).copied())
            });
            match found {
                Some(i) if ids.len() < max_len => ids.push(i),
                Some(_) => {}
                None => unknown.push(w.clone()),
            }
        }
        if ids.is_empty() {
            return Err(CaptionError::AllUnknown(unknown));
        }
        Ok(Encoded { ids, unknown })
    }

    /// Whether index 1 is `<unk>` (t2i's vocabularies; the official AttnGAN
    /// vocabulary, `captions.pickle`, has `<end>` at 0, then the words).
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
        assert_eq!(e.ids, v.encode("a red circle", 10).unwrap().ids);
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

    #[test]
    fn normalises_case_accents_and_plurals() {
        assert_eq!(tokenize("A Blue Square."), vec!["a", "blue", "square"]);
        assert_eq!(
            tokenize("Crème  BRÛLÉE, ﬁne!"),
            vec!["creme", "brulee", "fine"]
        );
        let v = Vocab::build(["a red circle", "a blue box", "a berry", "glass"], 1);
        let ids = |c: &str| v.encode(c, 10).unwrap();
        assert_eq!(ids("two red circles").ids, ids("red circle").ids);
        assert!(ids("two red circles").unknown == vec!["two".to_string()]);
        assert_eq!(ids("boxes").ids, ids("box").ids);
        assert_eq!(ids("berries").ids, ids("berry").ids);
        assert_eq!(ids("glass").ids, ids("glass").ids);
        assert_eq!(ids("Ā RÉD Círcle").ids, ids("a red circle").ids);
    }
}
