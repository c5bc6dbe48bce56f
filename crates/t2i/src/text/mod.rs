//! Text encoders. Every model takes its text
//! through [`TextEncoder`]: a sentence vector phi(t) and, for attention
//! models, one vector per word. Each trained encoder is its own checkpoint;
//! a model's checkpoint embeds the encoder it used and names its source.

pub mod char_cnn_rnn;
pub mod clip;
pub mod damsm;
pub mod gru;
pub mod minilm;
pub mod vocab;

pub use gru::{GruEncoder, GruEncoderConfig};
pub use vocab::{tokenize, CaptionError, Encoded, Vocab};

use crate::error::{Error, Result};
use std::path::Path;
use tch::{nn, Tensor};

/// A LayerNorm over the last `dim` features with epsilon `eps` (the
/// pretrained transformers' blocks).
pub(crate) fn layer_norm(p: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// A pretrained model's folder (`config.json`, `tokenizer.json`,
/// `model.safetensors` ...): checks that it holds `files` and reads its
/// `config.json`. `what` names the model in errors ("a CLIP folder"),
/// `hint` says where one comes from.
pub(crate) fn read_model_folder<T: serde::de::DeserializeOwned>(
    dir: &Path,
    files: &[&str],
    what: &str,
    hint: &str,
) -> Result<T> {
    if let Some(f) = files.iter().find(|f| !dir.join(f).is_file()) {
        return Err(Error::Config(format!(
            "{} is not {what}: {f} is missing ({hint})",
            dir.display()
        )));
    }
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Loads a folder's `model.safetensors` into `vs` by name: every variable
/// must be in the file (the file may hold more).
pub(crate) fn load_folder_weights(vs: &mut nn::VarStore, dir: &Path) -> Result<()> {
    let weights = dir.join("model.safetensors");
    let missing = vs
        .load_partial(&weights)
        .map_err(|e| Error::Checkpoint(format!("{}: {e}", weights.display())))?;
    if let Some(first) = missing.first() {
        return Err(Error::Checkpoint(format!(
            "{} lacks {} tensors (e.g. {first})",
            weights.display(),
            missing.len()
        )));
    }
    vs.freeze();
    Ok(())
}

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

/// Any of the project's trained text encoders, chosen by the checkpoint's
/// `text_encoder.kind`.
pub enum AnyTextEncoder {
    Gru(GruEncoder),
    Damsm(damsm::RnnEncoder),
    CharCnnRnn(Box<char_cnn_rnn::CharCnnRnn>),
    /// CLIP's text side (StyleT2I's joint encoder when the user has CLIP).
    Clip(Box<clip::ClipText>),
}

impl AnyTextEncoder {
    /// The encoder stored in a checkpoint (its own or a model's).
    pub fn from_checkpoint(
        ck: &crate::checkpoint::Checkpoint,
        device: tch::Device,
    ) -> crate::Result<Self> {
        match ck.meta("text_encoder.kind")? {
            "gru" => Ok(Self::Gru(GruEncoder::from_checkpoint(ck, device)?)),
            "damsm-rnn" => Ok(Self::Damsm(damsm::RnnEncoder::from_checkpoint(
                ck, "text", device,
            )?)),
            "char-cnn-rnn" => Ok(Self::CharCnnRnn(Box::new(
                char_cnn_rnn::CharCnnRnn::from_checkpoint(ck, device)?,
            ))),
            "clip" => Ok(Self::Clip(Box::new(clip::ClipText::from_checkpoint(
                ck, device,
            )?))),
            k => Err(crate::Error::Checkpoint(format!(
                "unsupported text encoder '{k}'"
            ))),
        }
    }

    /// Loads a text-encoder checkpoint file.
    pub fn load(path: &std::path::Path, device: tch::Device) -> crate::Result<Self> {
        let ck = crate::checkpoint::load(path)?;
        let mut e = Self::from_checkpoint(&ck, device)?;
        e.set_source(path.display().to_string());
        Ok(e)
    }

    fn set_source(&mut self, s: String) {
        match self {
            Self::Gru(e) => e.source = s,
            Self::Damsm(e) => e.source = s,
            Self::CharCnnRnn(e) => e.source = s,
            Self::Clip(e) => e.source = s,
        }
    }

    /// Metadata describing the encoder (kind, config, vocabulary, source).
    pub fn describe(&self) -> std::collections::BTreeMap<String, String> {
        match self {
            Self::Gru(e) => e.describe(),
            Self::Damsm(e) => e.describe(),
            Self::CharCnnRnn(e) => e.describe(),
            Self::Clip(e) => e.describe(),
        }
    }

    /// The encoder's tensors named `text.*`.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let vs = match self {
            Self::Gru(e) => &e.vs,
            Self::Damsm(e) => &e.vs,
            Self::CharCnnRnn(e) => &e.vs,
            Self::Clip(e) => &e.vs,
        };
        crate::checkpoint::named(vs, "text")
    }

    pub fn source(&self) -> &str {
        match self {
            Self::Gru(e) => &e.source,
            Self::Damsm(e) => &e.source,
            Self::CharCnnRnn(e) => &e.source,
            Self::Clip(e) => &e.source,
        }
    }
}

impl TextEncoder for AnyTextEncoder {
    fn name(&self) -> &str {
        match self {
            Self::Gru(e) => e.name(),
            Self::Damsm(e) => e.name(),
            Self::CharCnnRnn(e) => e.name(),
            Self::Clip(e) => e.name(),
        }
    }
    fn sentence_dim(&self) -> i64 {
        match self {
            Self::Gru(e) => e.sentence_dim(),
            Self::Damsm(e) => e.sentence_dim(),
            Self::CharCnnRnn(e) => e.sentence_dim(),
            Self::Clip(e) => e.sentence_dim(),
        }
    }
    fn word_dim(&self) -> i64 {
        match self {
            Self::Gru(e) => e.word_dim(),
            Self::Damsm(e) => e.word_dim(),
            Self::CharCnnRnn(e) => e.word_dim(),
            Self::Clip(e) => e.word_dim(),
        }
    }
    fn encode(&self, captions: &[&str]) -> crate::Result<(TextFeatures, Vec<Encoded>)> {
        match self {
            Self::Gru(e) => e.encode(captions),
            Self::Damsm(e) => e.encode(captions),
            Self::CharCnnRnn(e) => e.encode(captions),
            Self::Clip(e) => e.encode(captions),
        }
    }
}
