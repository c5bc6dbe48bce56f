//! CLIP (Radford et al., ICML 2021, sec. 2.4-2.5): a text transformer and
//! a vision transformer trained contrastively to put a caption and its image
//! at the same point of a shared space. StyleT2I (Li et al. 2022, sec. 4.1)
//! uses OpenAI's ViT-B/32 in its losses; t2i reads it, and CLIP models of
//! any size in the same layout, to train with and to score images
//! (`t2i eval`'s CLIP score).
//!
//! Read from a local folder in the layout of Hugging Face's
//! `openai/clip-vit-base-patch32`: `config.json` (`text_config`,
//! `vision_config`, `projection_dim`), `tokenizer.json` (CLIP's byte-level
//! BPE, lower-cased) and `model.safetensors`; weights load by the file's own
//! key names (`text_model.*`, `vision_model.*`, `*_projection`).
//!
//! Text: `<|startoftext|>` + tokens + `<|endoftext|>`, at most 77; a causal
//! transformer with pre-LayerNorm blocks; the sentence is the final-normed
//! state at `<|endoftext|>`, projected. Image: 32x32 patches (ViT-B/32) plus
//! a class token; the class token's post-normed state, projected.

use super::layer_norm;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn;
use tch::{Device, Kind, Tensor};

fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_positions() -> i64 {
    77
}
fn default_channels() -> i64 {
    3
}

/// The transformer sizes both towers have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerConfig {
    /// Width of every token state (text 512, vision 768 in ViT-B/32).
    pub hidden_size: i64,
    /// Width of the feed-forward layer (2,048 / 3,072).
    pub intermediate_size: i64,
    /// Transformer blocks (12).
    pub num_hidden_layers: i64,
    /// Attention heads per block (8 / 12).
    pub num_attention_heads: i64,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Feed-forward activation (`quick_gelu` for OpenAI's, or `gelu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

/// The text transformer's sizes (`config.json` `text_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipTextConfig {
    #[serde(flatten)]
    pub tower: TowerConfig,
    /// BPE vocabulary size (49,408 for OpenAI's models).
    pub vocab_size: i64,
    /// Longest token sequence, start and end included (77).
    #[serde(default = "default_positions")]
    pub max_position_embeddings: i64,
}

/// The vision transformer's sizes (`config.json` `vision_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipVisionConfig {
    #[serde(flatten)]
    pub tower: TowerConfig,
    /// Input side in pixels (224).
    pub image_size: i64,
    /// Patch side in pixels (32).
    pub patch_size: i64,
    /// Input channels (3).
    #[serde(default = "default_channels")]
    pub num_channels: i64,
}

/// `config.json` of a CLIP folder (the fields t2i uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    /// Width of the shared space (512).
    pub projection_dim: i64,
}

impl ClipConfig {
    /// OpenAI's ViT-B/32 (`openai/clip-vit-base-patch32`).
    pub fn vit_b_32() -> Self {
        let tower = |hidden, heads| TowerConfig {
            hidden_size: hidden,
            intermediate_size: 4 * hidden,
            num_hidden_layers: 12,
            num_attention_heads: heads,
            layer_norm_eps: default_eps(),
            hidden_act: default_act(),
        };
        Self {
            text_config: ClipTextConfig {
                tower: tower(512, 8),
                vocab_size: 49_408,
                max_position_embeddings: default_positions(),
            },
            vision_config: ClipVisionConfig {
                tower: tower(768, 12),
                image_size: 224,
                patch_size: 32,
                num_channels: default_channels(),
            },
            projection_dim: 512,
        }
    }
}

/// Per-channel mean and spread of CLIP's image normalisation.
const MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
const STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// Sizes a transformer block needs, from either tower's config.
struct BlockSizes {
    hidden: i64,
    intermediate: i64,
    heads: i64,
    eps: f64,
    quick_gelu: bool,
}

impl BlockSizes {
    fn of(c: &TowerConfig) -> Result<Self> {
        Ok(Self {
            hidden: c.hidden_size,
            intermediate: c.intermediate_size,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps,
            quick_gelu: quick_gelu(&c.hidden_act)?,
        })
    }
}

/// Multi-head self-attention (`self_attn.{q,k,v,out}_proj`).
struct Attention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    heads: i64,
}

impl Attention {
    fn new(p: nn::Path, s: &BlockSizes) -> Self {
        let lin = |name: &str| nn::linear(&p / name, s.hidden, s.hidden, Default::default());
        Self {
            q_proj: lin("q_proj"),
            k_proj: lin("k_proj"),
            v_proj: lin("v_proj"),
            out_proj: lin("out_proj"),
            heads: s.heads,
        }
    }

    /// `x`: `[batch, len, hidden]` -> `[batch, len, hidden]`; `causal`: each
    /// token sees only itself and the tokens before it.
    fn forward(&self, x: &Tensor, causal: bool) -> Tensor {
        let (b, n, h) = x.size3().expect("[batch, len, hidden]");
        let d = h / self.heads;
        let split = |t: Tensor| t.view([b, n, self.heads, d]).transpose(1, 2); // [b, heads, n, d]
        let q = split(x.apply(&self.q_proj));
        let k = split(x.apply(&self.k_proj));
        let v = split(x.apply(&self.v_proj));
        let ctx = Tensor::scaled_dot_product_attention::<Tensor>(
            &q, &k, &v, None, 0.0, causal, None, false,
        ); // [b, heads, n, d]
        ctx.transpose(1, 2)
            .contiguous()
            .view([b, n, h])
            .apply(&self.out_proj)
    }
}

/// A pre-LayerNorm transformer block (`encoder.layers.N.*`).
struct Block {
    self_attn: Attention,
    layer_norm1: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    layer_norm2: nn::LayerNorm,
    quick_gelu: bool,
}

impl Block {
    fn new(p: nn::Path, s: &BlockSizes) -> Self {
        let lc = Default::default();
        Self {
            self_attn: Attention::new(&p / "self_attn", s),
            layer_norm1: layer_norm(&p / "layer_norm1", s.hidden, s.eps),
            fc1: nn::linear(&p / "mlp" / "fc1", s.hidden, s.intermediate, lc),
            fc2: nn::linear(&p / "mlp" / "fc2", s.intermediate, s.hidden, lc),
            layer_norm2: layer_norm(&p / "layer_norm2", s.hidden, s.eps),
            quick_gelu: s.quick_gelu,
        }
    }

    /// `[batch, len, hidden]` -> `[batch, len, hidden]`
    fn forward(&self, x: &Tensor, causal: bool) -> Tensor {
        let x = x + self.self_attn.forward(&x.apply(&self.layer_norm1), causal);
        let f = x.apply(&self.layer_norm2).apply(&self.fc1);
        let f = if self.quick_gelu {
            // x * sigmoid(1.702 x), the activation OpenAI's CLIP trained with
            &f * (&f * 1.702).sigmoid()
        } else {
            f.gelu("none")
        };
        x + f.apply(&self.fc2)
    }
}

fn blocks(p: nn::Path, n: i64, s: &BlockSizes) -> Vec<Block> {
    (0..n).map(|i| Block::new(&p / "layers" / i, s)).collect()
}

fn quick_gelu(act: &str) -> Result<bool> {
    match act {
        "quick_gelu" => Ok(true),
        "gelu" => Ok(false),
        other => Err(Error::Config(format!(
            "CLIP config: activation {other} is not supported (quick_gelu or gelu)"
        ))),
    }
}

/// The text tower (`text_model.*`).
struct TextTransformer {
    token_embedding: nn::Embedding,
    position_embedding: nn::Embedding,
    layers: Vec<Block>,
    final_layer_norm: nn::LayerNorm,
}

impl TextTransformer {
    fn new(p: nn::Path, c: &ClipTextConfig) -> Result<Self> {
        let s = BlockSizes::of(&c.tower)?;
        let t = &c.tower;
        let e = &p / "embeddings";
        Ok(Self {
            token_embedding: nn::embedding(
                &e / "token_embedding",
                c.vocab_size,
                t.hidden_size,
                Default::default(),
            ),
            position_embedding: nn::embedding(
                &e / "position_embedding",
                c.max_position_embeddings,
                t.hidden_size,
                Default::default(),
            ),
            layers: blocks(&p / "encoder", t.num_hidden_layers, &s),
            final_layer_norm: layer_norm(&p / "final_layer_norm", t.hidden_size, t.layer_norm_eps),
        })
    }

    /// `ids`: `[batch, len]`, `eos`: `[batch]` the position of each
    /// sentence's end token -> every token's final state `[batch, len,
    /// hidden]` and the end token's `[batch, hidden]`
    fn forward(&self, ids: &Tensor, eos: &Tensor) -> (Tensor, Tensor) {
        let len = ids.size()[1];
        let pos = Tensor::arange(len, (Kind::Int64, ids.device())).unsqueeze(0); // [1, len]
        let mut x = ids.apply(&self.token_embedding) + pos.apply(&self.position_embedding); // [b, len, hidden]
        for l in &self.layers {
            x = l.forward(&x, true);
        }
        let x = x.apply(&self.final_layer_norm);
        let b = Tensor::arange(ids.size()[0], (Kind::Int64, ids.device()));
        let pooled = x.index(&[Some(b), Some(eos.shallow_clone())]); // [b, hidden]
        (x, pooled)
    }
}

/// The vision tower (`vision_model.*`).
struct VisionTransformer {
    class_embedding: Tensor,
    patch_embedding: nn::Conv2D,
    position_embedding: nn::Embedding,
    pre_layrnorm: nn::LayerNorm,
    layers: Vec<Block>,
    post_layernorm: nn::LayerNorm,
}

impl VisionTransformer {
    fn new(p: nn::Path, c: &ClipVisionConfig) -> Result<Self> {
        let s = BlockSizes::of(&c.tower)?;
        let t = &c.tower;
        let e = &p / "embeddings";
        let patches = (c.image_size / c.patch_size).pow(2);
        Ok(Self {
            class_embedding: e.var("class_embedding", &[t.hidden_size], nn::Init::Const(0.0)),
            patch_embedding: nn::conv2d(
                &e / "patch_embedding",
                c.num_channels,
                t.hidden_size,
                c.patch_size,
                nn::ConvConfig {
                    stride: c.patch_size,
                    bias: false,
                    ..Default::default()
                },
            ),
            position_embedding: nn::embedding(
                &e / "position_embedding",
                patches + 1,
                t.hidden_size,
                Default::default(),
            ),
            // the key is spelled so in the checkpoints
            pre_layrnorm: layer_norm(&p / "pre_layrnorm", t.hidden_size, t.layer_norm_eps),
            layers: blocks(&p / "encoder", t.num_hidden_layers, &s),
            post_layernorm: layer_norm(&p / "post_layernorm", t.hidden_size, t.layer_norm_eps),
        })
    }

    /// `x`: normalised pixels `[batch, 3, side, side]` -> `[batch, hidden]`
    fn forward(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let p = x.apply(&self.patch_embedding).flatten(2, 3).transpose(1, 2); // [b, patches, hidden]
        let h = p.size()[2];
        let cls = self
            .class_embedding
            .view([1, 1, h])
            .expand([b, 1, h], false);
        let x = Tensor::cat(&[cls, p], 1); // [b, 1 + patches, hidden]
        let n = x.size()[1];
        let pos = Tensor::arange(n, (Kind::Int64, x.device())).unsqueeze(0);
        let mut x = (x + pos.apply(&self.position_embedding)).apply(&self.pre_layrnorm);
        for l in &self.layers {
            x = l.forward(&x, false);
        }
        x.select(1, 0).apply(&self.post_layernorm) // [b, hidden]
    }
}

/// Files a CLIP folder must hold.
pub const CLIP_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// CLIP's text side: tokenizer, text transformer and projection. This is
/// what a model trained with CLIP stores as its text encoder (checkpoint
/// keys `text.text_model.*`, `text.text_projection.*`).
pub struct ClipText {
    pub config: ClipConfig,
    pub vs: nn::VarStore,
    tokenizer: tokenizers::Tokenizer,
    eos_id: u32,
    text: TextTransformer,
    text_projection: nn::Linear,
    /// Where it was read from (a folder or a checkpoint).
    pub source: String,
}

/// CLIP's image side: vision transformer and projection.
pub struct ClipVision {
    pub config: ClipConfig,
    pub vs: nn::VarStore,
    vision: VisionTransformer,
    visual_projection: nn::Linear,
}

/// A CLIP model (frozen, inference; gradients flow to its inputs).
pub struct Clip {
    pub text: ClipText,
    pub vision: ClipVision,
}

fn no_bias() -> nn::LinearConfig {
    nn::LinearConfig {
        bias: false,
        ..Default::default()
    }
}

/// `config.json` of a CLIP folder, its sizes checked.
fn read_config(dir: &Path) -> Result<ClipConfig> {
    let config: ClipConfig = super::read_model_folder(
        dir,
        &CLIP_FILES,
        "a CLIP folder",
        "the layout of Hugging Face's openai/clip-vit-base-patch32",
    )?;
    check_config(&config)
        .map_err(|e| Error::Config(format!("{}: {e}", dir.join("config.json").display())))?;
    Ok(config)
}

fn check_config(config: &ClipConfig) -> std::result::Result<(), String> {
    let t = &config.text_config;
    let v = &config.vision_config;
    if t.tower.hidden_size % t.tower.num_attention_heads != 0
        || v.tower.hidden_size % v.tower.num_attention_heads != 0
        || v.patch_size < 1
        || v.image_size % v.patch_size != 0
    {
        return Err("inconsistent sizes (heads must divide the width, patches the image)".into());
    }
    Ok(())
}

/// The tokenizer set to CLIP's 77 tokens, and its end token.
fn prepare_tokenizer(
    mut tokenizer: tokenizers::Tokenizer,
    max_length: i64,
    what: &str,
) -> Result<(tokenizers::Tokenizer, u32)> {
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: max_length as usize,
            ..Default::default()
        }))
        .map_err(|e| Error::Config(format!("tokenizer: {e}")))?;
    tokenizer.with_padding(None);
    let eos_id = tokenizer
        .token_to_id("<|endoftext|>")
        .ok_or_else(|| Error::Config(format!("{what}: no <|endoftext|> token")))?;
    Ok((tokenizer, eos_id))
}

impl ClipText {
    fn build(
        config: ClipConfig,
        tokenizer: tokenizers::Tokenizer,
        what: &str,
        device: Device,
    ) -> Result<Self> {
        let t = &config.text_config;
        let (tokenizer, eos_id) = prepare_tokenizer(tokenizer, t.max_position_embeddings, what)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let text = TextTransformer::new(&root / "text_model", t)?;
        let text_projection = nn::linear(
            &root / "text_projection",
            t.tower.hidden_size,
            config.projection_dim,
            no_bias(),
        );
        Ok(Self {
            config,
            vs,
            tokenizer,
            eos_id,
            text,
            text_projection,
            source: String::new(),
        })
    }

    /// The text side of the CLIP folder `dir`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let config = read_config(dir)?;
        let tok = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tok)
            .map_err(|e| Error::Config(format!("{}: {e}", tok.display())))?;
        let mut t = Self::build(config, tokenizer, &tok.display().to_string(), device)?;
        // the file may also hold `logit_scale` and `*.position_ids`, unused
        super::load_folder_weights(&mut t.vs, dir)?;
        t.source = dir.display().to_string();
        Ok(t)
    }

    /// The CLIP text encoder a checkpoint stores (see [`Self::describe`]).
    pub fn from_checkpoint(ck: &crate::checkpoint::Checkpoint, device: Device) -> Result<Self> {
        let bad =
            |what: &str, e: String| Error::Checkpoint(format!("CLIP text encoder {what}: {e}"));
        let config: ClipConfig = serde_json::from_str(ck.meta("text_encoder.config")?)
            .map_err(|e| bad("config", e.to_string()))?;
        check_config(&config).map_err(|e| bad("config", e))?;
        let tokenizer: tokenizers::Tokenizer = ck
            .meta("text_encoder.tokenizer")?
            .parse()
            .map_err(|e: tokenizers::Error| bad("tokenizer", e.to_string()))?;
        let mut t = Self::build(config, tokenizer, "checkpoint tokenizer", device)?;
        ck.load_into(&mut t.vs, "text")?;
        t.vs.freeze();
        t.source = ck.meta("text_encoder.source")?.to_string();
        Ok(t)
    }

    /// Checkpoint metadata: kind `clip`, the config and tokenizer as JSON,
    /// the source folder.
    pub fn describe(&self) -> std::collections::BTreeMap<String, String> {
        let mut m = std::collections::BTreeMap::new();
        m.insert("text_encoder.kind".into(), "clip".into());
        m.insert(
            "text_encoder.config".into(),
            serde_json::to_string(&self.config).unwrap_or_default(),
        );
        m.insert(
            "text_encoder.tokenizer".into(),
            self.tokenizer.to_string(false).unwrap_or_default(),
        );
        m.insert("text_encoder.source".into(), self.source.clone());
        m
    }

    /// BPE ids of each caption, `<|startoftext|>` and `<|endoftext|>`
    /// included, at most 77.
    pub fn tokenize(&self, captions: &[&str]) -> Result<Vec<Vec<i64>>> {
        captions
            .iter()
            .map(|c| {
                if c.trim().is_empty() {
                    return Err(Error::Config(
                        "an empty caption has no CLIP encoding".into(),
                    ));
                }
                let e = self
                    .tokenizer
                    .encode(*c, true)
                    .map_err(|e| Error::Config(format!("CLIP tokenizer: {e}")))?;
                let mut ids: Vec<i64> = e.get_ids().iter().map(|&i| i as i64).collect();
                // truncation may cut the end token: the sentence ends at it
                if ids.last() != Some(&(self.eos_id as i64)) {
                    *ids.last_mut().expect("not empty") = self.eos_id as i64;
                }
                Ok(ids)
            })
            .collect()
    }

    /// Every token's final state and the projected (not normalised)
    /// sentence features of token ids (each ending with `<|endoftext|>`).
    /// `[n, len, hidden]`, `[n, projection_dim]`
    fn states(&self, ids: &[Vec<i64>]) -> (Tensor, Tensor) {
        let dev = self.vs.device();
        let len = ids.iter().map(Vec::len).max().unwrap_or(1) as i64;
        // the mask is causal: what follows the end token never reaches it
        let flat: Vec<i64> = ids
            .iter()
            .flat_map(|s| {
                s.iter()
                    .copied()
                    .chain(std::iter::repeat(self.eos_id as i64))
                    .take(len as usize)
            })
            .collect();
        let t = Tensor::from_slice(&flat)
            .view([ids.len() as i64, len])
            .to_device(dev); // [n, len]
        let eos: Vec<i64> = ids.iter().map(|s| s.len() as i64 - 1).collect();
        let eos = Tensor::from_slice(&eos).to_device(dev);
        let (states, pooled) = self.text.forward(&t, &eos);
        (states, pooled.apply(&self.text_projection))
    }

    /// Projected (not normalised) sentence features of token ids.
    /// `[n, projection_dim]`
    pub fn text_features(&self, ids: &[Vec<i64>]) -> Tensor {
        self.states(ids).1
    }

    /// Sentence features of captions. `[n, projection_dim]`
    pub fn encode_text(&self, captions: &[&str]) -> Result<Tensor> {
        let ids = self.tokenize(captions)?;
        Ok(self.text_features(&ids))
    }
}

impl super::TextEncoder for ClipText {
    fn name(&self) -> &str {
        "clip"
    }
    fn sentence_dim(&self) -> i64 {
        self.config.projection_dim
    }
    fn word_dim(&self) -> i64 {
        self.config.text_config.tower.hidden_size
    }
    /// Sentences: the projected end-token features; words: every token's
    /// final state (BPE tokens, start and end included). CLIP's byte-level
    /// BPE has no unknown words.
    fn encode(&self, captions: &[&str]) -> Result<(super::TextFeatures, Vec<super::Encoded>)> {
        let ids = self.tokenize(captions)?;
        let (words, sentence) = self.states(&ids);
        let len = words.size()[1];
        let mask: Vec<bool> = ids
            .iter()
            .flat_map(|s| (0..len).map(move |k| (k as usize) < s.len()))
            .collect();
        let mask = Tensor::from_slice(&mask)
            .view([ids.len() as i64, len])
            .to_device(words.device());
        let encoded = ids
            .into_iter()
            .map(|ids| super::Encoded {
                ids,
                unknown: Vec::new(),
            })
            .collect();
        Ok((
            super::TextFeatures {
                sentence,
                words,
                mask,
            },
            encoded,
        ))
    }
}

impl ClipVision {
    /// The image side of the CLIP folder `dir`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let mut v = Self::random(read_config(dir)?, device)?;
        super::load_folder_weights(&mut v.vs, dir)?;
        Ok(v)
    }

    /// An image side of `config` with random weights (for timing).
    pub fn random(config: ClipConfig, device: Device) -> Result<Self> {
        check_config(&config).map_err(Error::Config)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let v = &config.vision_config;
        let vision = VisionTransformer::new(&root / "vision_model", v)?;
        let visual_projection = nn::linear(
            &root / "visual_projection",
            v.tower.hidden_size,
            config.projection_dim,
            no_bias(),
        );
        let mut v = Self {
            config,
            vs,
            vision,
            visual_projection,
        };
        v.vs.freeze();
        Ok(v)
    }

    /// Projected image features of pixels in [0, 1] at the model's input
    /// side. `[n, 3, side, side]` -> `[n, projection_dim]`
    pub fn image_features(&self, pixels: &Tensor) -> Tensor {
        let dev = pixels.device();
        let mean = Tensor::from_slice(&MEAN)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1])
            .to_device(dev);
        let std = Tensor::from_slice(&STD)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1])
            .to_device(dev);
        self.vision
            .forward(&((pixels - mean) / std))
            .apply(&self.visual_projection)
    }

    /// Image features of generated images in [-1, 1] of any square side:
    /// resized to the input side (bicubic, anti-aliased, as CLIP's
    /// preprocessing). `[n, 3, s, s]` -> `[n, projection_dim]`
    pub fn encode_images(&self, images: &Tensor) -> Tensor {
        let side = self.config.vision_config.image_size;
        let x = ((images + 1.0) / 2.0).clamp(0.0, 1.0);
        let x = if x.size()[2] == side && x.size()[3] == side {
            x
        } else {
            x.internal_upsample_bicubic2d_aa([side, side], false, None, None)
                .clamp(0.0, 1.0)
        };
        self.image_features(&x)
    }
}

impl Clip {
    /// Reads the model folder `dir` (see the module documentation).
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        Ok(Self {
            text: ClipText::load(dir, device)?,
            vision: ClipVision::load(dir, device)?,
        })
    }

    /// A name for reports: "CLIP folder".
    pub fn label(&self) -> String {
        format!("CLIP {}", self.text.source)
    }

    /// CLIP score of images against their captions: 100 x the cosine of
    /// each pair, floored at 0 (Hessel et al., EMNLP 2021, with w = 1 as
    /// text-to-image papers report it). `[n]`
    pub fn score(&self, images: &Tensor, captions: &[&str]) -> Result<Tensor> {
        let t = self.text.encode_text(captions)?;
        let i = self.vision.encode_images(images);
        Ok(pair_score(&i, &t))
    }
}

/// 100 x cos(a_k, b_k), floored at 0. `[n, d]`, `[n, d]` -> `[n]`
pub fn pair_score(a: &Tensor, b: &Tensor) -> Tensor {
    let n = |x: &Tensor| {
        x / x
            .norm_scalaropt_dim(2, [1i64].as_slice(), true)
            .clamp_min(1e-8)
    };
    (n(a) * n(b))
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        .clamp_min(0.0)
        * 100.0
}
