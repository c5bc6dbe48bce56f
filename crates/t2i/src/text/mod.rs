//! Text encoders (`spec/text-encoders.md`). Every model takes its text
//! through [`TextEncoder`]: a sentence vector phi(t) and, for attention
//! models, one vector per word. Each trained encoder is its own checkpoint;
//! a model's checkpoint embeds the encoder it used and names its source.

pub mod damsm;
pub mod gru;
pub mod vocab;

pub use gru::{GruEncoder, GruEncoderConfig};
pub use vocab::{tokenize, CaptionError, Encoded, Vocab};

use tch::Tensor;

/// What a text encoder gives for a batch of captions.
#[derive(Debug)]
pub struct TextFeatures {
    /// Sentence vectors phi(t). `[batch, dim]`
    pub sentence: Tensor,
    /// Word vectors. `[batch, words, word_dim]`
    pub words: Tensor,
    /// True for real words, false for padding. `[batch, words]`
    pub mask: Tensor,
}

/// The interface every text encoder offers to the models.
pub trait TextEncoder {
    /// Short name recorded in runs and checkpoints (e.g. `gru`).
    fn name(&self) -> &str;
    /// Size of the sentence vector.
    fn sentence_dim(&self) -> i64;
    /// Size of a word vector.
    fn word_dim(&self) -> i64;
    /// Encodes captions; unknown words are mapped (see [`Encoded::unknown`]),
    /// an empty caption or one with no known word is an error.
    fn encode(&self, captions: &[&str]) -> crate::Result<(TextFeatures, Vec<Encoded>)>;
}
