//! char-CNN-RNN: Reed, Akata, Lee & Schiele, "Learning Deep Representations
//! of Fine-grained Visual Descriptions", CVPR 2016,
//! the text encoder of GAN-INT-CLS, GAWWN and StackGAN.
//!
//! Characters (one-hot over [`ALPHABET`], at most 201) -> three 1-D
//! convolutions (kernel 4, ReLU; max-pooling 3 after the first two) -> a
//! GRU over the remaining time steps (the char-CNN-GRU of GAWWN) -> the
//! average of its hidden states -> Linear to the embedding phi(t). Trained
//! with the symmetric structured joint embedding loss against an image
//! encoder ([`crate::train::char_cnn_rnn`]).

use super::{CaptionError, Encoded, TextEncoder, TextFeatures};
use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::layers::{self, InitKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::nn::{self, RNN};
use tch::{Device, Kind, Tensor};

/// The 69 characters the encoder sees: Reed et al.'s set (lowercase letters,
/// digits, punctuation and space; their list of 70 holds "-" twice). Any
/// other character is a zero vector.
pub const ALPHABET: &str =
    "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{} ";
/// Longest input in characters; longer captions are cut.
pub const MAX_CHARS: usize = 201;

/// Sizes of the char-CNN-RNN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharCnnRnnConfig {
    /// Channels of the three convolutions.
    pub conv: [i64; 3],
    /// GRU hidden size.
    pub hidden: i64,
    /// Size of phi(t) (1024 in the paper).
    pub embed_dim: i64,
}

impl CharCnnRnnConfig {
    /// The paper's sizes: 384, 512, 256 channels, 1024-d embedding.
    pub fn paper() -> Self {
        Self {
            conv: [384, 512, 256],
            hidden: 256,
            embed_dim: 1024,
        }
    }
    /// CPU sizes: 128, 192, 128 channels, GRU 128, 256-d embedding.
    pub fn tiny() -> Self {
        Self {
            conv: [128, 192, 128],
            hidden: 128,
            embed_dim: 256,
        }
    }
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "paper" => Some(Self::paper()),
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }
}

/// Character indices of a caption (1-based into [`ALPHABET`], 0 for any
/// other character), normalised ([`crate::text::vocab::normalise`]:
/// accents dropped, lowercase) and cut at [`MAX_CHARS`].
pub fn char_ids(caption: &str) -> Vec<i64> {
    crate::text::vocab::normalise(caption)
        .chars()
        .take(MAX_CHARS)
        .map(|c| ALPHABET.find(c).map_or(0, |i| i as i64 + 1))
        .collect()
}

/// The char-CNN-RNN text encoder.
pub struct CharCnnRnn {
    pub config: CharCnnRnnConfig,
    pub vs: nn::VarStore,
    convs: [nn::Conv1D; 3],
    gru: nn::GRU,
    proj: nn::Linear,
    /// Where it came from.
    pub source: String,
}

impl CharCnnRnn {
    pub fn new(config: CharCnnRnnConfig, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let p = vs.root();
        let n_chars = ALPHABET.chars().count() as i64;
        let cc = nn::ConvConfig::default();
        let c = config.conv;
        let convs = [
            nn::conv1d(&p / "conv0", n_chars, c[0], 4, cc),
            nn::conv1d(&p / "conv1", c[0], c[1], 4, cc),
            nn::conv1d(&p / "conv2", c[1], c[2], 4, cc),
        ];
        let gru = nn::gru(
            &p / "gru",
            c[2],
            config.hidden,
            nn::RNNConfig {
                batch_first: true,
                ..Default::default()
            },
        );
        let proj = layers::linear(
            &p / "proj",
            config.hidden,
            config.embed_dim,
            true,
            InitKind::PyTorch,
        );
        Self {
            config,
            vs,
            convs,
            gru,
            proj,
            source: "untrained".into(),
        }
    }

    /// One-hot characters `[batch, alphabet, MAX_CHARS]` (zeros after the
    /// caption's end, as the reference code pads).
    pub fn one_hot(&self, captions: &[&str]) -> Result<(Tensor, Vec<Encoded>)> {
        let n_chars = ALPHABET.chars().count() as i64;
        let mut ids = Vec::with_capacity(captions.len() * MAX_CHARS);
        let mut enc = Vec::with_capacity(captions.len());
        for c in captions {
            if c.trim().is_empty() {
                return Err(Error::Caption {
                    caption: c.to_string(),
                    problem: CaptionError::Empty,
                });
            }
            let mut v = char_ids(c);
            let unknown: Vec<String> = crate::text::vocab::normalise(c)
                .chars()
                .take(MAX_CHARS)
                .filter(|ch| !ALPHABET.contains(*ch))
                .map(String::from)
                .collect();
            enc.push(Encoded {
                ids: v.clone(),
                unknown,
            });
            v.resize(MAX_CHARS, 0);
            ids.extend(v);
        }
        let b = captions.len() as i64;
        let idx = Tensor::from_slice(&ids).view([b, MAX_CHARS as i64]);
        // index 0 (padding / unknown) maps to an all-zero row
        let table = Tensor::cat(
            &[
                Tensor::zeros([1, n_chars], (Kind::Float, Device::Cpu)),
                Tensor::eye(n_chars, (Kind::Float, Device::Cpu)),
            ],
            0,
        ); // [alphabet + 1, alphabet]
        let x = table
            .index_select(0, &idx.view([-1]))
            .view([b, MAX_CHARS as i64, n_chars])
            .permute([0, 2, 1])
            .contiguous()
            .to_device(self.vs.device()); // [batch, alphabet, 201]
        Ok((x, enc))
    }

    /// # Shapes
    /// `x`: `[batch, alphabet, 201]` -> (phi(t) `[batch, embed]`, hidden
    /// states `[batch, steps, hidden]`)
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let h = x
            .apply(&self.convs[0])
            .relu()
            .max_pool1d([3], [3], [0], [1], false); // [b, c0, 66]
        let h = h
            .apply(&self.convs[1])
            .relu()
            .max_pool1d([3], [3], [0], [1], false); // [b, c1, 21]
        let h = h.apply(&self.convs[2]).relu(); // [b, c2, 18]
        let (states, _) = self.gru.seq(&h.transpose(1, 2)); // [b, 18, hidden]
        let phi = states
            .mean_dim([1i64].as_slice(), false, Kind::Float)
            .apply(&self.proj); // [b, embed]
        (phi, states)
    }

    /// phi(t) with gradients (training).
    pub fn embed_train(&self, captions: &[&str]) -> Result<Tensor> {
        let (x, _) = self.one_hot(captions)?;
        Ok(self.forward(&x).0)
    }

    pub fn describe(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("text_encoder.kind".into(), "char-cnn-rnn".into());
        m.insert(
            "text_encoder.config".into(),
            serde_json::to_string(&self.config).unwrap_or_default(),
        );
        m.insert("text_encoder.alphabet".into(), ALPHABET.into());
        m.insert("text_encoder.source".into(), self.source.clone());
        m
    }

    /// Saves the encoder as its own checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        checkpoint::save(path, &self.describe(), &checkpoint::named(&self.vs, "text"))
    }

    /// Rebuilds the encoder stored in a checkpoint (its own or a model's).
    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        if ck.meta("text_encoder.kind")? != "char-cnn-rnn" {
            return Err(Error::Checkpoint(format!(
                "unsupported text encoder '{}'",
                ck.meta("text_encoder.kind")?
            )));
        }
        if ck.meta("text_encoder.alphabet")? != ALPHABET {
            return Err(Error::Checkpoint(
                "char-CNN-RNN alphabet differs from this build's".into(),
            ));
        }
        let config: CharCnnRnnConfig = serde_json::from_str(ck.meta("text_encoder.config")?)
            .map_err(|e| Error::Checkpoint(format!("text encoder config: {e}")))?;
        let mut enc = Self::new(config, device);
        ck.load_into(&mut enc.vs, "text")?;
        enc.source = ck
            .meta("text_encoder.source")
            .unwrap_or("checkpoint")
            .to_string();
        Ok(enc)
    }
}

impl TextEncoder for CharCnnRnn {
    fn name(&self) -> &str {
        "char-cnn-rnn"
    }
    fn sentence_dim(&self) -> i64 {
        self.config.embed_dim
    }
    fn word_dim(&self) -> i64 {
        self.config.hidden
    }
    /// Word vectors are the GRU's states over the character windows (the
    /// model has no words); all are real (mask true).
    fn encode(&self, captions: &[&str]) -> Result<(TextFeatures, Vec<Encoded>)> {
        let (x, enc) = self.one_hot(captions)?;
        let (phi, states) = tch::no_grad(|| self.forward(&x));
        let mask = Tensor::ones(&states.size()[..2], (Kind::Bool, states.device()));
        Ok((
            TextFeatures {
                sentence: phi,
                words: states,
                mask,
            },
            enc,
        ))
    }
}
