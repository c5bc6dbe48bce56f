//! A trainable word-level sentence encoder: word embeddings, a bidirectional
//! GRU, masked mean of the hidden states, linear map to the sentence vector.
//!
//! It stands in for char-CNN-RNN on the shapes data set and is trained the
//! same way: jointly with an image encoder theta(v) so that compatible
//! image-text pairs score high (Reed et al. 2016's joint embedding, here as a
//! symmetric softmax over the batch where every item of the same class counts
//! as a match).

use super::vocab::{Encoded, Vocab, PAD};
use super::{TextEncoder, TextFeatures};
use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::layers::{self, InitKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::nn::{self, Module, ModuleT, RNN};
use tch::{Device, Kind, Tensor};

/// Shape of the GRU encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GruEncoderConfig {
    /// Word embedding size.
    pub embed_dim: i64,
    /// GRU hidden size per direction (word vectors are twice this).
    pub hidden: i64,
    /// Sentence vector size.
    pub sentence_dim: i64,
    /// Words kept per caption.
    pub max_len: usize,
}

impl GruEncoderConfig {
    /// For the shapes data set and the `tiny` presets.
    pub fn tiny() -> Self {
        Self {
            embed_dim: 64,
            hidden: 64,
            sentence_dim: 128,
            max_len: 24,
        }
    }
    /// The papers' 1024-d sentence vector.
    pub fn paper() -> Self {
        Self {
            embed_dim: 300,
            hidden: 256,
            sentence_dim: 1024,
            max_len: 30,
        }
    }
}

/// The GRU encoder with its vocabulary.
pub struct GruEncoder {
    pub config: GruEncoderConfig,
    pub vocab: Vocab,
    pub vs: nn::VarStore,
    embed: nn::Embedding,
    gru: nn::GRU,
    out: nn::Linear,
    /// Where the encoder was loaded from (recorded by models that use it).
    pub source: String,
}

impl GruEncoder {
    pub fn new(config: GruEncoderConfig, vocab: Vocab, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let p = vs.root();
        let embed = nn::embedding(
            &p / "embed",
            vocab.len() as i64,
            config.embed_dim,
            Default::default(),
        );
        let gru = nn::gru(
            &p / "gru",
            config.embed_dim,
            config.hidden,
            nn::RNNConfig {
                bidirectional: true,
                batch_first: true,
                ..Default::default()
            },
        );
        let out = layers::linear(
            &p / "out",
            2 * config.hidden,
            config.sentence_dim,
            true,
            InitKind::PyTorch,
        );
        Self {
            config,
            vocab,
            vs,
            embed,
            gru,
            out,
            source: "untrained".into(),
        }
    }

    /// Word ids padded to the longest caption. `[batch, words]`
    pub fn ids(&self, captions: &[&str]) -> Result<(Tensor, Vec<Encoded>)> {
        let enc: Vec<Encoded> = captions
            .iter()
            .map(|c| {
                self.vocab
                    .encode(c, self.config.max_len)
                    .map_err(|problem| Error::Caption {
                        caption: c.to_string(),
                        problem,
                    })
            })
            .collect::<Result<_>>()?;
        let t = enc.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        let flat: Vec<i64> = enc
            .iter()
            .flat_map(|e| e.ids.iter().copied().chain(std::iter::repeat(PAD)).take(t))
            .collect();
        let ids = Tensor::from_slice(&flat)
            .view([captions.len() as i64, t as i64])
            .to_device(self.vs.device());
        Ok((ids, enc))
    }

    /// Encodes word ids.
    pub fn forward_ids(&self, ids: &Tensor) -> TextFeatures {
        let mask = ids.ne(PAD); // [batch, words]
        let x = self.embed.forward(ids); // [batch, words, embed]
        let (words, _) = self.gru.seq(&x); // [batch, words, 2*hidden]
        let m = mask.unsqueeze(-1).to_kind(Kind::Float);
        let mean = (&words * &m).sum_dim_intlist(1, false, Kind::Float)
            / m.sum_dim_intlist(1, false, Kind::Float);
        // unit RMS per entry: cosine geometry for the joint loss, O(1) inputs for generators
        let s = self.out.forward(&mean);
        let sentence = &s / s.norm_scalaropt_dim(2, [1], true).clamp_min(1e-8)
            * (self.config.sentence_dim as f64).sqrt();
        TextFeatures {
            sentence,
            words,
            mask,
        }
    }

    /// Metadata describing this encoder (kind, config, vocabulary, source).
    pub fn describe(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("text_encoder.kind".into(), "gru".into());
        m.insert(
            "text_encoder.config".into(),
            serde_json::to_string(&self.config).unwrap_or_default(),
        );
        m.insert("text_encoder.vocab".into(), self.vocab.to_json());
        m.insert("text_encoder.source".into(), self.source.clone());
        m
    }

    /// Saves the encoder as its own checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        checkpoint::save(path, &self.describe(), &checkpoint::named(&self.vs, "text"))
    }

    /// Rebuilds the encoder stored in a checkpoint (its own or a model's).
    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        if ck.meta("text_encoder.kind")? != "gru" {
            return Err(Error::Checkpoint(format!(
                "unsupported text encoder '{}'",
                ck.meta("text_encoder.kind")?
            )));
        }
        let config: GruEncoderConfig = serde_json::from_str(ck.meta("text_encoder.config")?)
            .map_err(|e| Error::Checkpoint(format!("text encoder config: {e}")))?;
        let vocab = Vocab::from_json(ck.meta("text_encoder.vocab")?)
            .map_err(|e| Error::Checkpoint(format!("text encoder vocabulary: {e}")))?;
        let mut enc = Self::new(config, vocab, device);
        ck.load_into(&mut enc.vs, "text")?;
        enc.source = ck.meta("text_encoder.source")?.to_string();
        Ok(enc)
    }

    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let ck = checkpoint::load(path)?;
        let mut enc = Self::from_checkpoint(&ck, device)?;
        enc.source = path.display().to_string();
        Ok(enc)
    }
}

impl TextEncoder for GruEncoder {
    fn name(&self) -> &str {
        "gru"
    }
    fn sentence_dim(&self) -> i64 {
        self.config.sentence_dim
    }
    fn word_dim(&self) -> i64 {
        2 * self.config.hidden
    }
    fn encode(&self, captions: &[&str]) -> Result<(TextFeatures, Vec<Encoded>)> {
        let (ids, enc) = self.ids(captions)?;
        Ok((self.forward_ids(&ids), enc))
    }
}

/// The image side theta(v) of the joint embedding: a small CNN.
pub struct JointImageEncoder {
    seq: nn::SequentialT,
}

impl JointImageEncoder {
    pub fn new(p: nn::Path, dim: i64) -> Self {
        let mut seq = nn::seq_t();
        let mut c = 3;
        for (i, w) in [32, 64, 128, 128].into_iter().enumerate() {
            seq = seq.add(layers::conv2d(
                &p / format!("conv{i}"),
                c,
                w,
                3,
                2,
                1,
                true,
                InitKind::PyTorch,
            ));
            seq = seq.add(layers::batch_norm2d(
                &p / format!("bn{i}"),
                w,
                InitKind::PyTorch,
            ));
            seq = seq.add_fn(|x| x.leaky_relu());
            c = w;
        }
        seq = seq.add_fn(|x| x.adaptive_avg_pool2d([1, 1]).flatten(1, -1));
        seq = seq.add(layers::linear(&p / "out", c, dim, true, InitKind::PyTorch));
        Self { seq }
    }
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.seq.forward_t(x, train)
    }
}

/// Joint embedding loss: symmetric cross-entropy of the image-text cosine
/// similarities (temperature `tau`) against the same-class targets.
///
/// # Shapes
/// `img`, `txt`: `[batch, dim]`; `same_class`: `[batch, batch]` (1 where classes match)
pub fn joint_embedding_loss(img: &Tensor, txt: &Tensor, same_class: &Tensor, tau: f64) -> Tensor {
    let img = img / img.norm_scalaropt_dim(2, [1], true).clamp_min(1e-8);
    let txt = txt / txt.norm_scalaropt_dim(2, [1], true).clamp_min(1e-8);
    let logits = img.matmul(&txt.tr()) / tau; // [batch, batch]
    let target = same_class / same_class.sum_dim_intlist(1, true, Kind::Float);
    let i2t = -(target.shallow_clone() * logits.log_softmax(1, Kind::Float)).sum(Kind::Float);
    let t2i = -(target * logits.log_softmax(0, Kind::Float)).sum(Kind::Float);
    (i2t + t2i) / (2 * img.size()[0]) as f64
}
