//! The DAMSM text encoder of AttnGAN (Xu et al., CVPR 2018, sec. 3.3):
//! word embedding -> bidirectional LSTM. Word features are the LSTM outputs
//! (`D = 2 x hidden`), the sentence feature the two final hidden states.
//!
//! Parameter names repeat the official `RNN_ENCODER` state_dict
//! (`encoder.weight`, `rnn.weight_ih_l0`, ..., `rnn.bias_hh_l0_reverse`), so
//! official weights load by name.

use super::vocab::{Encoded, Vocab, PAD};
use super::{TextEncoder, TextFeatures};
use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Configuration of the DAMSM text encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RnnEncoderConfig {
    /// Preset name.
    pub preset: String,
    /// Word embedding size (300 in the paper).
    pub embed_dim: i64,
    /// Word / sentence feature size D (256; 128 per direction).
    pub dim: i64,
    /// Dropout on the word embeddings during training (0.5).
    pub dropout: f64,
    /// Words kept per caption (18; longer captions are sub-sampled in
    /// training and truncated at generation).
    pub max_words: usize,
}

impl RnnEncoderConfig {
    /// `cfg/DAMSM/bird.yml`.
    pub fn paper() -> Self {
        Self {
            preset: "paper".into(),
            embed_dim: 300,
            dim: 256,
            dropout: 0.5,
            max_words: 18,
        }
    }

    /// For CPU training.
    pub fn tiny() -> Self {
        Self {
            preset: "tiny".into(),
            embed_dim: 128,
            dim: 128,
            dropout: 0.5,
            max_words: 18,
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

/// `RNN_ENCODER`: embedding + BiLSTM.
pub struct RnnEncoder {
    pub config: RnnEncoderConfig,
    pub vocab: Vocab,
    pub vs: nn::VarStore,
    /// `encoder.weight`. `[words, embed_dim]`
    embedding: Tensor,
    /// LSTM weights in libtorch's flat order (ih, hh, b_ih, b_hh; forward
    /// then reverse).
    rnn: Vec<Tensor>,
    /// Where the encoder was loaded from.
    pub source: String,
}

/// Word features and sentence features of a batch.
#[derive(Debug)]
pub struct RnnOutput {
    /// `[batch, D, T]` (zeros after each caption's end), T = longest caption.
    pub words: Tensor,
    /// `[batch, D]`
    pub sentence: Tensor,
}

impl RnnEncoder {
    /// A new encoder with the official initialisation: embedding U(-0.1,
    /// 0.1), LSTM as PyTorch (U(-1/sqrt(h), 1/sqrt(h))).
    pub fn new(config: RnnEncoderConfig, vocab: Vocab, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let p = vs.root();
        let n = vocab.len() as i64;
        let embedding = (&p / "encoder").var(
            "weight",
            &[n, config.embed_dim],
            nn::Init::Uniform { lo: -0.1, up: 0.1 },
        );
        let h = config.dim / 2;
        let k = 1.0 / (h as f64).sqrt();
        let init = nn::Init::Uniform { lo: -k, up: k };
        let mut rnn = Vec::new();
        let r = &p / "rnn";
        for suffix in ["", "_reverse"] {
            rnn.push(r.var(
                &format!("weight_ih_l0{suffix}"),
                &[4 * h, config.embed_dim],
                init,
            ));
            rnn.push(r.var(&format!("weight_hh_l0{suffix}"), &[4 * h, h], init));
            rnn.push(r.var(&format!("bias_ih_l0{suffix}"), &[4 * h], init));
            rnn.push(r.var(&format!("bias_hh_l0{suffix}"), &[4 * h], init));
        }
        Self {
            config,
            vocab,
            vs,
            embedding,
            rnn,
            source: "untrained".into(),
        }
    }

    /// Replaces the word vectors (`encoder.weight`) by all-MiniLM-L6-v2's
    /// embedding of each vocabulary word on its own (mean-pooled, unit
    /// length), so words the training captions use for few classes start
    /// next to their synonyms ("crimson" by "red"), and unseen classes'
    /// captions are read with the same geometry. `<pad>` and `<unk>` keep
    /// their initial vectors. Returns how many rows were set.
    ///
    /// The official DAMSM learns its embedding from scratch; this is an
    /// option of the `tiny` preset for CUB's zero-shot test classes.
    pub fn init_words_from_minilm(
        &mut self,
        minilm: &crate::text::minilm::MiniLm,
    ) -> Result<usize> {
        let dim = crate::text::TextEncoder::sentence_dim(minilm);
        if dim != self.config.embed_dim {
            return Err(Error::Config(format!(
                "MiniLM word vectors are {dim}-d, the encoder's embed_dim is {}",
                self.config.embed_dim
            )));
        }
        let words: Vec<&str> = self
            .vocab
            .words
            .iter()
            .skip(2)
            .map(String::as_str)
            .collect();
        let mut rows = Vec::new();
        for chunk in words.chunks(256) {
            rows.push(tch::no_grad(|| minilm.embed(chunk))?);
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let table = Tensor::cat(&rows, 0).to_device(self.vs.device()); // [V - 2, embed_dim]
        tch::no_grad(|| {
            self.embedding
                .narrow(0, 2, table.size()[0])
                .copy_(&table.to_kind(self.embedding.kind()))
        });
        Ok(words.len())
    }

    /// The official forward pass: `ids [batch, T]` padded with 0, `lens`
    /// the true lengths (any order), optional initial state `(h0, c0)` each
    /// `[2, batch, D/2]` (zeros when `None`).
    ///
    /// # Shapes
    /// words `[batch, D, max(lens)]`, sentence `[batch, D]`.
    pub fn forward_t(
        &self,
        ids: &Tensor,
        lens: &[i64],
        state: Option<(&Tensor, &Tensor)>,
        train: bool,
    ) -> RnnOutput {
        let b = ids.size()[0];
        let dev = ids.device();
        let h = self.config.dim / 2;
        let emb = Tensor::embedding(&self.embedding, ids, -1, false, false); // [batch, T, E]
        let emb = emb.dropout(self.config.dropout, train);
        // pack_padded_sequence wants decreasing lengths: sort, run, unsort
        let mut order: Vec<usize> = (0..lens.len()).collect();
        order.sort_by(|&i, &j| lens[j].cmp(&lens[i]));
        let order_t =
            Tensor::from_slice(&order.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(dev);
        let sorted_lens: Vec<i64> = order.iter().map(|&i| lens[i]).collect();
        let emb = emb.index_select(0, &order_t);
        let (h0, c0) = match state {
            Some((h0, c0)) => (h0.index_select(1, &order_t), c0.index_select(1, &order_t)),
            None => (
                Tensor::zeros([2, b, h], (Kind::Float, dev)),
                Tensor::zeros([2, b, h], (Kind::Float, dev)),
            ),
        };
        let (data, batch_sizes) =
            emb.internal_pack_padded_sequence(&Tensor::from_slice(&sorted_lens), true);
        let (out, hn, _cn) = Tensor::lstm_data(
            &data,
            &batch_sizes,
            &[&h0, &c0],
            &self.rnn.iter().collect::<Vec<_>>(),
            true,
            1,
            0.0,
            train,
            true,
        );
        let t = sorted_lens[0];
        let (out, _) = Tensor::internal_pad_packed_sequence(&out, &batch_sizes, true, 0.0, t);
        // back to the caller's order
        let mut inverse = vec![0i64; order.len()];
        for (pos, &i) in order.iter().enumerate() {
            inverse[i] = pos as i64;
        }
        let inv = Tensor::from_slice(&inverse).to_device(dev);
        let words = out.index_select(0, &inv).transpose(1, 2); // [batch, D, T]
        let sentence = hn
            .transpose(0, 1)
            .contiguous()
            .view([b, self.config.dim])
            .index_select(0, &inv); // [batch, D]
        RnnOutput { words, sentence }
    }

    /// Word ids of captions (at most `max_words`, unknown words mapped),
    /// padded, with their lengths.
    pub fn ids(&self, captions: &[&str]) -> Result<(Tensor, Vec<i64>, Vec<Encoded>)> {
        let enc: Vec<Encoded> = captions
            .iter()
            .map(|c| {
                self.vocab
                    .encode(c, self.config.max_words)
                    .map_err(|problem| Error::Caption {
                        caption: c.to_string(),
                        problem,
                    })
            })
            .collect::<Result<_>>()?;
        let lens: Vec<i64> = enc.iter().map(|e| e.ids.len() as i64).collect();
        Ok((pad_ids(&enc, self.vs.device()), lens, enc))
    }

    /// Metadata describing this encoder.
    pub fn describe(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("text_encoder.kind".into(), "damsm-rnn".into());
        m.insert(
            "text_encoder.config".into(),
            serde_json::to_string(&self.config).unwrap_or_default(),
        );
        m.insert("text_encoder.vocab".into(), self.vocab.to_json());
        m.insert("text_encoder.source".into(), self.source.clone());
        m
    }

    /// Saves the encoder as its own checkpoint (tensors under `text.`).
    pub fn save(&self, path: &Path) -> Result<()> {
        checkpoint::save(path, &self.describe(), &checkpoint::named(&self.vs, "text"))
    }

    pub fn from_checkpoint(ck: &Checkpoint, prefix: &str, device: Device) -> Result<Self> {
        if ck.meta("text_encoder.kind")? != "damsm-rnn" {
            return Err(Error::Checkpoint(format!(
                "not a DAMSM text encoder: '{}'",
                ck.meta("text_encoder.kind")?
            )));
        }
        let config: RnnEncoderConfig = serde_json::from_str(ck.meta("text_encoder.config")?)
            .map_err(|e| Error::Checkpoint(format!("text encoder config: {e}")))?;
        let vocab = Vocab::from_json(ck.meta("text_encoder.vocab")?)
            .map_err(|e| Error::Checkpoint(format!("text encoder vocabulary: {e}")))?;
        let mut enc = Self::new(config, vocab, device);
        ck.load_into(&mut enc.vs, prefix)?;
        enc.source = ck.meta("text_encoder.source")?.to_string();
        Ok(enc)
    }

    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let ck = checkpoint::load(path)?;
        let mut enc = Self::from_checkpoint(&ck, "text", device)?;
        enc.source = path.display().to_string();
        Ok(enc)
    }
}

/// Pads id lists with [`PAD`] to the longest. `[batch, T]`
pub fn pad_ids(enc: &[Encoded], device: Device) -> Tensor {
    let t = enc.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let flat: Vec<i64> = enc
        .iter()
        .flat_map(|e| e.ids.iter().copied().chain(std::iter::repeat(PAD)).take(t))
        .collect();
    Tensor::from_slice(&flat)
        .view([enc.len() as i64, t as i64])
        .to_device(device)
}

impl TextEncoder for RnnEncoder {
    fn name(&self) -> &str {
        "damsm-rnn"
    }
    fn sentence_dim(&self) -> i64 {
        self.config.dim
    }
    fn word_dim(&self) -> i64 {
        self.config.dim
    }
    fn encode(&self, captions: &[&str]) -> Result<(TextFeatures, Vec<Encoded>)> {
        let (ids, lens, enc) = self.ids(captions)?;
        let out = tch::no_grad(|| self.forward_t(&ids, &lens, None, false));
        Ok((
            TextFeatures {
                sentence: out.sentence,
                words: out.words.transpose(1, 2),
                mask: ids.ne(PAD),
            },
            enc,
        ))
    }
}
