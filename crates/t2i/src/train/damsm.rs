//! DAMSM pre-training (AttnGAN `pretrain_DAMSM.py`): the text and image
//! encoders trained together with L_DAMSM = L1_w + L2_w + L1_s + L2_s
//! (eq. 13) on captioned images, same-class captions masked as negatives.

use super::optim::{clip_grad_norm, Adam};
use crate::checkpoint::Checkpoint;
use crate::data::cub::CubSplit;
use crate::data::images::{CaptionedImages, LoadOptions};
use crate::data::prepare::ImageBatcher;
use crate::data::DataConfig;
use crate::error::Error;
use crate::error::Result;
use crate::eval::rprecision::{r_precision, RPrecision};
use crate::family::{
    FamilyConfig, Metrics, Summary, TrainContext, Trainer as FamilyTrainer, TypedFamily,
};
use crate::models::damsm::{sent_loss, words_loss, CnnEncoder, CnnEncoderConfig, Gammas};
use crate::rng::step_seed;
use crate::text::damsm::{pad_ids, RnnEncoder, RnnEncoderConfig};
use crate::text::{Encoded, Vocab};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// DAMSM training configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DamsmConfig {
    pub preset: String,
    pub text: RnnEncoderConfig,
    pub image: CnnEncoderConfig,
    pub gammas: Gammas,
    /// Batch size (48 in `cfg/DAMSM/bird.yml`).
    pub batch_size: usize,
    /// Adam learning rate (0.002), betas (0.5, 0.999).
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Gradient-norm clip of the text encoder (0.25).
    pub clip: f64,
    /// Learning rate multiplied by 0.98 every this many steps (an epoch in
    /// the reference code), down to lr / 10.
    pub decay_every: i64,
    /// Weight of the word-level terms L1_w + L2_w (1 in the paper).
    #[serde(default = "one")]
    pub word_weight: f64,
    /// With a frozen image body: how many fixed random crops and flips of
    /// each training image have their body features computed once (the
    /// augmentation a frozen body still gets).
    #[serde(default = "four")]
    pub feature_variants: usize,
}

fn one() -> f64 {
    1.0
}

fn four() -> usize {
    4
}

impl DamsmConfig {
    pub fn tiny() -> Self {
        Self {
            preset: "tiny".into(),
            text: RnnEncoderConfig::tiny(),
            image: CnnEncoderConfig::tiny(),
            gammas: Gammas::default(),
            batch_size: 48,
            lr: 2e-3,
            beta1: 0.5,
            beta2: 0.999,
            clip: 0.25,
            decay_every: 100,
            word_weight: 1.0,
            feature_variants: 4,
        }
    }

    /// The official birds DAMSM (`cfg/DAMSM/bird.yml`): the BiLSTM of
    /// 256 and the frozen Inception-v3 image encoder. The body's ImageNet
    /// weights are not on this machine: t2i uses it to time AttnGAN as the
    /// paper trains it (`t2i bench --model attngan --preset paper`).
    pub fn paper() -> Self {
        Self {
            preset: "paper".into(),
            text: RnnEncoderConfig::paper(),
            image: CnnEncoderConfig::paper(),
            ..Self::tiny()
        }
    }

    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }

    /// Checks what the encoders need of each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.text.dim != self.image.dim {
            return Err(format!(
                "text.dim ({}) and image.dim ({}) must be equal: words and regions, sentences and images share one space",
                self.text.dim, self.image.dim
            ));
        }
        if self.text.dim < 2 || self.text.dim % 2 != 0 {
            return Err(format!(
                "text.dim must be even and positive (two LSTM directions of half each), got {}",
                self.text.dim
            ));
        }
        if self.batch_size < 2 {
            return Err(format!(
                "batch size must be at least 2, got {}",
                self.batch_size
            ));
        }
        if self.text.embed_dim < 1 || self.text.max_words < 1 {
            return Err("text.embed_dim and text.max_words must be positive".into());
        }
        Ok(())
    }
}

/// Picks at most `max` words of a caption in order (the reference code
/// samples a random ordered subset of longer captions in training).
pub fn sample_words(e: &Encoded, max: usize, rng: &mut ChaCha8Rng) -> Encoded {
    if e.ids.len() <= max {
        return e.clone();
    }
    let mut keep: Vec<usize> = (0..e.ids.len()).collect();
    keep.shuffle(rng);
    keep.truncate(max);
    keep.sort_unstable();
    Encoded {
        ids: keep.iter().map(|&i| e.ids[i]).collect(),
        unknown: e.unknown.clone(),
    }
}

/// The two encoders being trained.
pub struct DamsmTrainer {
    pub config: DamsmConfig,
    pub text: RnnEncoder,
    pub image_vs: nn::VarStore,
    pub image: CnnEncoder,
    opt_text: Adam,
    opt_image: Adam,
    pub step: i64,
    pub seed: u64,
    /// Body features of the training images, when the body is frozen
    /// ([`DamsmTrainer::cache_body_features`]).
    body_cache: Option<BodyCache>,
}

/// Reads a body-feature cache file; `None` when it does not fit (it is
/// then rebuilt).
fn read_body_cache(
    path: &std::path::Path,
    n: usize,
    variants: usize,
    head_dim: i64,
    dev: Device,
) -> Option<BodyCache> {
    let named = Tensor::read_safetensors(path).ok()?;
    let get = |k: &str| named.iter().find(|(n, _)| n == k).map(|(_, t)| t);
    let (local, global) = (get("local")?, get("global")?);
    let rows = (n * variants) as i64;
    if local.size().first() != Some(&rows) || global.size() != [rows, head_dim] {
        return None;
    }
    Some(BodyCache {
        local: local.to_device(dev),
        global: global.to_device(dev),
        n,
        variants,
    })
}

/// The first 12 bytes of a digest in hex: a cache file's key.
fn short_hex(h: sha2::Sha256) -> String {
    use sha2::Digest;
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes named tensors to a cache file through a temporary file, so a
/// cut-off write never leaves a file that looks complete.
fn write_cache_file(f: &std::path::Path, named: &[(&str, &Tensor)]) -> Result<()> {
    if let Some(d) = f.parent() {
        std::fs::create_dir_all(d).map_err(|e| crate::Error::io(d, e))?;
    }
    let tmp = f.with_extension("safetensors.tmp");
    let named: Vec<(&str, Tensor)> = named.iter().map(|(n, t)| (*n, t.contiguous())).collect();
    Tensor::write_safetensors(&named, &tmp)
        .map_err(|e| crate::Error::Config(format!("writing {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, f).map_err(|e| crate::Error::io(f, e))
}

/// A frozen image body's features of every training image under a few
/// fixed random crops and flips, so a step only runs the projections.
struct BodyCache {
    /// `[variants * n, 4w, r, r]`, row `v * n + i` is image `i` in variant `v`.
    local: Tensor,
    /// `[variants * n, 8w]`
    global: Tensor,
    n: usize,
    variants: usize,
}

/// Losses of one step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DamsmStats {
    pub step: i64,
    pub loss: f64,
    pub w_loss: f64,
    pub s_loss: f64,
}

impl DamsmTrainer {
    /// Starts the `vgg` image encoder from an evaluation classifier's
    /// convolutional stages (`t2i train --model classifier`), as the official
    /// DAMSM starts from ImageNet weights. The projections stay random.
    pub fn init_image_from_classifier(
        &mut self,
        ck: &crate::checkpoint::Checkpoint,
    ) -> Result<usize> {
        use crate::models::damsm::CnnArch;
        ck.expect_model("classifier")?;
        let c: crate::models::classifier::ClassifierConfig = ck.json_meta("config")?;
        if self.config.image.arch != CnnArch::Vgg || c.width != self.config.image.width {
            return Err(crate::Error::Config(format!(
                "the classifier (width {}) does not fit this image encoder ({:?}, width {})",
                c.width, self.config.image.arch, self.config.image.width
            )));
        }
        let mut copied = 0;
        tch::no_grad(|| -> Result<()> {
            for (name, var) in self.image_vs.variables() {
                if !name.starts_with("stage") {
                    continue;
                }
                let key = format!("net.{name}");
                let src = ck.tensors.get(&key).ok_or_else(|| {
                    crate::Error::Checkpoint(format!("classifier checkpoint lacks {key}"))
                })?;
                var.shallow_clone()
                    .copy_(&src.to_device(var.device()).to_kind(var.kind()));
                copied += 1;
            }
            Ok(())
        })?;
        Ok(copied)
    }

    /// Loads ImageNet weights into the `efficientnet-lite0` image encoder's
    /// body and head from an `efficientnet_pytorch` state_dict (`.pth` or
    /// `.safetensors`); every body tensor must be there, `_fc` is unused.
    /// The projections stay random.
    pub fn init_image_from_weights(&mut self, path: &std::path::Path) -> Result<usize> {
        if self.config.image.arch.lite().is_none() {
            return Err(crate::Error::Config(format!(
                "ImageNet weights need the efficientnet-lite0 or efficientnet-lite2 image encoder, not {:?}",
                self.config.image.arch
            )));
        }
        let w = crate::import::read_weights(path)?;
        let mut copied = 0;
        tch::no_grad(|| -> Result<()> {
            for (name, var) in self.image_vs.variables() {
                if name.starts_with("emb_") {
                    continue;
                }
                let src = w.get(&name).ok_or_else(|| {
                    crate::Error::Checkpoint(format!(
                        "{} is not an EfficientNet-Lite state_dict of this network: it lacks {name}",
                        path.display()
                    ))
                })?;
                if src.size() != var.size() {
                    return Err(crate::Error::Checkpoint(format!(
                        "{}: {name} has shape {:?}, the network {:?}",
                        path.display(),
                        src.size(),
                        var.size()
                    )));
                }
                var.shallow_clone()
                    .copy_(&src.to_device(var.device()).to_kind(var.kind()));
                copied += 1;
            }
            Ok(())
        })?;
        Ok(copied)
    }

    pub fn new(config: DamsmConfig, vocab: Vocab, seed: u64, device: Device) -> Self {
        tch::manual_seed(seed as i64); // reproducible initial weights
        let text = RnnEncoder::new(config.text.clone(), vocab, device);
        let image_vs = nn::VarStore::new(device);
        let image = CnnEncoder::new(image_vs.root(), config.image.clone());
        if config.image.frozen_body {
            image.freeze_body(&image_vs);
        }
        let opt_text = Adam::new(&text.vs, config.lr, config.beta1, config.beta2);
        let opt_image = Adam::new(&image_vs, config.lr, config.beta1, config.beta2);
        Self {
            config,
            text,
            image_vs,
            image,
            opt_text,
            opt_image,
            step: 0,
            seed,
            body_cache: None,
        }
    }

    /// With a frozen body: computes its features of every image of `data`
    /// under `variants` fixed augmentations (random crop and flip when
    /// `data` augments; variant 0 of a non-augmenting set is the centre
    /// crop), so that [`DamsmTrainer::train_step`] on the same `data` only
    /// runs the projections. A no-op when the body is trained.
    ///
    /// With `cache_dir`, the features are read from there when a file with
    /// the same key exists (the prepared images' cache file, the body's
    /// weights, the input side, the variants and the seed) and written
    /// there otherwise, so a second run with the same body starts at once.
    /// Returns where the features came from, for the run's log.
    pub fn cache_body_features(
        &mut self,
        data: &CaptionedImages,
        variants: usize,
        cache_dir: Option<&std::path::Path>,
        progress: bool,
    ) -> Result<Option<String>> {
        if !self.config.image.frozen_body || variants == 0 {
            return Ok(None);
        }
        let n = data.captions.len();
        let file = cache_dir.map(|d| {
            d.join(format!(
                "damsm-body-{}.safetensors",
                self.body_cache_key(data, variants)
            ))
        });
        if let Some(f) = file.as_ref().filter(|f| f.is_file()) {
            if let Some(cache) = read_body_cache(
                f,
                n,
                variants,
                self.config.image.head_dim(),
                self.image_vs.device(),
            ) {
                self.body_cache = Some(cache);
                return Ok(Some(format!("image features read from {}", f.display())));
            }
        }
        let dev = self.image_vs.device();
        let pb = crate::progress::bar((n * variants) as u64, "image features", progress);
        let (mut local, mut global) = (Vec::new(), Vec::new());
        tch::no_grad(|| {
            for v in 0..variants {
                let mut rng = ImageBatcher::rng(self.seed ^ 0xFEA7, v as i64);
                let b = self.config.image.inference_batch();
                for start in (0..n).step_by(b) {
                    let idx: Vec<usize> = (start..(start + b).min(n)).collect();
                    if let Some(x) = data.images.batch(&idx, &mut rng, dev).pop() {
                        let (f, g) = self.image.single_view(&x, false);
                        global.push(g);
                        local.push(f);
                    }
                    pb.inc(idx.len() as u64);
                }
            }
        });
        pb.finish_and_clear();
        let cache = BodyCache {
            local: Tensor::cat(&local, 0),
            global: Tensor::cat(&global, 0),
            n,
            variants,
        };
        let note = match &file {
            Some(f) => {
                write_cache_file(f, &[("local", &cache.local), ("global", &cache.global)])?;
                Some(format!("image features written to {}", f.display()))
            }
            None => None,
        };
        self.body_cache = Some(cache);
        Ok(note)
    }

    /// Key of a body-feature cache file: what the features depend on.
    fn body_cache_key(&self, data: &CaptionedImages, variants: usize) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let source = data.images.prepared.cache.as_ref().map_or_else(
            || format!("uncached {}", data.captions.len()),
            |(p, _)| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            },
        );
        h.update(format!(
            "v1 {source} {:?} side {} augment {} variants {variants} seed {}\n",
            self.config.image.arch, self.config.image.image_size, data.images.augment, self.seed
        ));
        let mut vars: Vec<(String, Tensor)> = self
            .image_vs
            .variables()
            .into_iter()
            .filter(|(_, v)| !v.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, v) in vars {
            h.update(name.as_bytes());
            let v = v.to_kind(Kind::Float).to_device(Device::Cpu).contiguous();
            let vals = Vec::<f32>::try_from(v.view([-1])).unwrap_or_default();
            for x in vals {
                h.update(x.to_le_bytes());
            }
        }
        short_hex(h)
    }

    /// Switches the image encoder's test-time mirror averaging
    /// (`image.flip_average`) on or off, e.g. to score a checkpoint both ways.
    pub fn set_flip_average(&mut self, on: bool) {
        self.config.image.flip_average = on;
        self.image.config.flip_average = on;
    }

    pub fn lr(&self) -> f64 {
        let c = &self.config;
        let k = (self.step / c.decay_every.max(1)) as i32;
        (c.lr * 0.98f64.powi(k)).max(c.lr / 10.0)
    }

    /// One step on a random batch of `data`.
    pub fn train_step(&mut self, data: &CaptionedImages) -> Result<DamsmStats> {
        let c = self.config.clone();
        let dev = self.image_vs.device();
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(self.seed, self.step));
        let n = data.captions.len();
        let idx: Vec<usize> = (0..c.batch_size).map(|_| rng.gen_range(0..n)).collect();
        let mut enc = Vec::with_capacity(idx.len());
        for &i in &idx {
            let caps = &data.captions[i];
            let cap = &caps[rng.gen_range(0..caps.len())];
            let e = self
                .text
                .vocab
                .encode(cap, usize::MAX)
                .unwrap_or_else(|_| Encoded {
                    ids: vec![crate::text::vocab::UNK],
                    unknown: vec![],
                });
            enc.push(sample_words(&e, c.text.max_words, &mut rng));
        }
        let lens: Vec<i64> = enc.iter().map(|e| e.ids.len() as i64).collect();
        let ids = pad_ids(&enc, dev);
        let classes: Vec<i64> = idx.iter().map(|&i| data.classes[i]).collect();
        let (regions, global) = match &self.body_cache {
            Some(cache) if cache.n == n => {
                let rows: Vec<i64> = idx
                    .iter()
                    .map(|&i| (rng.gen_range(0..cache.variants) * n + i) as i64)
                    .collect();
                let rows = Tensor::from_slice(&rows).to_device(dev);
                let f = cache.local.index_select(0, &rows); // [batch, region_dim, r, r]
                let g = cache.global.index_select(0, &rows); // [batch, head_dim]
                self.image.project(&f, &g)
            }
            _ => {
                let mut img_rng = ImageBatcher::rng(self.seed, self.step);
                let x = data
                    .images
                    .batch(&idx, &mut img_rng, dev)
                    .pop()
                    .unwrap_or_else(|| Tensor::zeros([1], (Kind::Float, dev)));
                self.image.forward_t(&x, true)
            }
        };

        let lr = self.lr();
        self.opt_text.lr = lr;
        self.opt_image.lr = lr;
        let out = self.text.forward_t(&ids, &lens, None, true);
        let g = c.gammas;
        let (w0, w1, _) = words_loss(&regions, &out.words, &lens, Some(&classes), g);
        let (s0, s1) = sent_loss(&global, &out.sentence, Some(&classes), g);
        let w = &w0 + &w1;
        let s = &s0 + &s1;
        let loss = &w * c.word_weight + &s;
        self.opt_text.zero_grad();
        self.opt_image.zero_grad();
        loss.backward();
        clip_grad_norm(&self.text.vs, c.clip);
        self.opt_text.step();
        self.opt_image.step();
        self.step += 1;
        Ok(DamsmStats {
            step: self.step,
            loss: loss.double_value(&[]),
            w_loss: w.double_value(&[]),
            s_loss: s.double_value(&[]),
        })
    }
}

impl DamsmTrainer {
    /// Both encoders (no optimiser state) as an in-memory checkpoint, as
    /// [`DamsmTrainer::save`] would write them.
    pub fn to_checkpoint(&self) -> crate::checkpoint::Checkpoint {
        use crate::checkpoint;
        let mut meta = self.text.describe();
        meta.insert("model".into(), "damsm".into());
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.config).unwrap_or_default(),
        );
        meta.insert("step".into(), self.step.to_string());
        meta.insert("seed".into(), self.seed.to_string());
        let mut tensors = checkpoint::named(&self.text.vs, "text");
        tensors.extend(checkpoint::named(&self.image_vs, "image"));
        checkpoint::Checkpoint {
            meta,
            tensors: tensors.into_iter().collect(),
        }
    }

    /// Writes both encoders, the optimiser moments, step and seed.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        use crate::checkpoint;
        let mut meta = self.text.describe();
        meta.insert("model".into(), "damsm".into());
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.config).unwrap_or_default(),
        );
        meta.insert("step".into(), self.step.to_string());
        meta.insert("seed".into(), self.seed.to_string());
        meta.insert("versions".into(), crate::versions());
        meta.insert(
            "device".into(),
            crate::device::device_name(self.image_vs.device()),
        );
        let mut tensors = checkpoint::named(&self.text.vs, "text");
        tensors.extend(checkpoint::named(&self.image_vs, "image"));
        tensors.extend(self.opt_text.state("optim.text"));
        tensors.extend(self.opt_image.state("optim.image"));
        checkpoint::save(path, &meta, &tensors)
    }

    /// Rebuilds a trainer (encoders, optimiser moments, step) from a
    /// checkpoint written by [`DamsmTrainer::save`].
    pub fn from_checkpoint(ck: &crate::checkpoint::Checkpoint, device: Device) -> Result<Self> {
        use crate::error::Error;
        if ck.meta("model")? != "damsm" {
            return Err(Error::Checkpoint(format!(
                "not a DAMSM checkpoint (model '{}')",
                ck.meta("model")?
            )));
        }
        let config: DamsmConfig = serde_json::from_str(ck.meta("config")?)
            .map_err(|e| Error::Checkpoint(format!("DAMSM config: {e}")))?;
        let text = RnnEncoder::from_checkpoint(ck, "text", device)?;
        let seed = ck.meta("seed")?.parse().unwrap_or(0);
        let mut t = Self::new(config, text.vocab.clone(), seed, device);
        t.text = text;
        t.opt_text = Adam::new(&t.text.vs, t.config.lr, t.config.beta1, t.config.beta2);
        ck.load_into(&mut t.image_vs, "image")?;
        if ck.tensors.contains_key("optim.text.step") {
            t.opt_text
                .load_state("optim.text", &ck.tensors)
                .map_err(Error::Checkpoint)?;
            t.opt_image
                .load_state("optim.image", &ck.tensors)
                .map_err(Error::Checkpoint)?;
        }
        t.step = ck
            .meta("step")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad step in checkpoint".into()))?;
        Ok(t)
    }

    /// Global image vectors of every stored image (centre crop, eval mode).
    /// `[n, D]`
    pub fn encode_images(&self, data: &CaptionedImages, limit: usize) -> Tensor {
        // the global vector is `emb_cnn_code` of the pooled body features
        let body = self.body_globals(data, limit);
        tch::no_grad(|| self.image.project_global(&body))
    }

    /// Sentence vectors of one caption per image (`pick` chooses which),
    /// eval mode. `[n, D]`
    pub fn encode_captions(
        &self,
        data: &CaptionedImages,
        limit: usize,
        seed: u64,
    ) -> Result<Tensor> {
        let n = data.captions.len().min(limit);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let caps: Vec<&str> = data.captions[..n]
            .iter()
            .map(|c| c[rng.gen_range(0..c.len())].as_str())
            .collect();
        self.encode_caption_list(&caps)
    }

    /// R-precision of real images of `data` against their own captions
    /// (1 true + 99 captions of other classes, 10 folds).
    pub fn real_r_precision(
        &self,
        data: &CaptionedImages,
        limit: usize,
        seed: u64,
    ) -> Result<RPrecision> {
        let img = self.encode_images(data, limit);
        self.r_precision_of(&img, data, seed)
    }

    /// Pooled body features (before `emb_cnn_code`) of the first `limit`
    /// images, centre crops: with a frozen body, what every later
    /// R-precision of the same set needs. `[n, global_dim]`
    pub fn body_globals(&self, data: &CaptionedImages, limit: usize) -> Tensor {
        let dev = self.image_vs.device();
        let n = data.captions.len().min(limit);
        let mut rng = ImageBatcher::rng(0, 0);
        let mut out = Vec::new();
        tch::no_grad(|| {
            let b = self.config.image.inference_batch();
            for start in (0..n).step_by(b) {
                let idx: Vec<usize> = (start..(start + b).min(n)).collect();
                if let Some(x) = data.images.batch(&idx, &mut rng, dev).pop() {
                    out.push(self.image.body_features(&x, false).1);
                }
            }
        });
        Tensor::cat(&out, 0)
    }

    /// [`DamsmTrainer::real_r_precision`] from [`DamsmTrainer::body_globals`]
    /// of `data` (frozen body only: the body must not have changed since).
    pub fn real_r_precision_from_body(
        &self,
        data: &CaptionedImages,
        body_globals: &Tensor,
        seed: u64,
    ) -> Result<RPrecision> {
        let img = tch::no_grad(|| self.image.project_global(body_globals));
        self.r_precision_of(&img, data, seed)
    }

    /// R-precision of global image vectors `img` (`[n, D]`, the first `n`
    /// images of `data`) against one caption each.
    fn r_precision_of(
        &self,
        img: &Tensor,
        data: &CaptionedImages,
        seed: u64,
    ) -> Result<RPrecision> {
        let n = img.size()[0] as usize;
        let txt = self.encode_captions(data, n, seed)?;
        let classes = &data.classes[..n];
        let (mean, std) = r_precision(img, classes, &txt, &txt, classes, 100, 10, seed);
        Ok(RPrecision {
            mean,
            std,
            images: n,
            candidates: 100,
            folds: 10,
        })
    }
}

impl DamsmTrainer {
    /// Global vectors of images `[n, 3, s, s]` in [-1, 1] (resized to the
    /// encoder's input side). `[n, D]`
    pub fn encode_image_tensor(&self, x: &Tensor) -> Tensor {
        let side = self.config.image.image_size;
        let dev = self.image_vs.device();
        tch::no_grad(|| {
            let parts: Vec<Tensor> = x
                .split(100, 0)
                .iter()
                .map(|b| {
                    let b = b.to_device(dev);
                    let b = if b.size()[2] == side {
                        b
                    } else {
                        b.internal_upsample_bilinear2d_aa([side, side], false, None, None)
                    };
                    self.image.forward_t(&b, false).1
                })
                .collect();
            Tensor::cat(&parts, 0)
        })
    }

    /// Sentence vectors of captions (unknown words mapped). `[n, D]`
    pub fn encode_caption_list(&self, captions: &[&str]) -> Result<Tensor> {
        let mut out = Vec::new();
        tch::no_grad(|| -> Result<()> {
            for chunk in captions.chunks(100) {
                let enc: Vec<Encoded> = chunk
                    .iter()
                    .map(|c| {
                        self.text
                            .vocab
                            .encode(c, self.config.text.max_words)
                            .unwrap_or(Encoded {
                                ids: vec![crate::text::vocab::UNK],
                                unknown: vec![],
                            })
                    })
                    .collect();
                let lens: Vec<i64> = enc.iter().map(|e| e.ids.len() as i64).collect();
                let ids = pad_ids(&enc, self.image_vs.device());
                out.push(self.text.forward_t(&ids, &lens, None, false).sentence);
            }
            Ok(())
        })?;
        Ok(Tensor::cat(&out, 0))
    }

    /// R-precision of generated images: image i was generated from
    /// `captions[i]` (of class `classes[i]`); candidates are the true caption
    /// and 99 of the other captions of other classes.
    pub fn generated_r_precision(
        &self,
        images: &Tensor,
        captions: &[&str],
        classes: &[i64],
        seed: u64,
    ) -> Result<RPrecision> {
        let img = self.encode_image_tensor(images);
        let txt = self.encode_caption_list(captions)?;
        let n = captions.len();
        let folds = 10.min(n.max(1));
        let (mean, std) = r_precision(&img, classes, &txt, &txt, classes, 100, folds, seed);
        Ok(RPrecision {
            mean,
            std,
            images: n,
            candidates: 100,
            folds,
        })
    }
}

/// `t2i train --model damsm`: the encoders and losses, where the image body
/// and word vectors start from, and the evaluation during training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DamsmRunConfig {
    /// Encoders, losses and optimiser (saved in every checkpoint).
    #[serde(flatten)]
    pub model: DamsmConfig,
    /// Pretrained image body: an ImageNet EfficientNet-Lite `.pth` (images
    /// at its input side), or a t2i classifier checkpoint (VGG body); empty:
    /// trained from scratch.
    pub image_init: String,
    /// Keep the pretrained body fixed and train only the projections, as
    /// the official DAMSM keeps its Inception fixed.
    pub freeze_image: bool,
    /// all-MiniLM-L6-v2's folder: the word vectors start from it (384-d).
    pub word_init: String,
    /// R-precision on real test images every this many steps (0: never).
    pub eval_every: i64,
    /// Test images of that R-precision.
    pub eval_images: usize,
    /// The data set (in the CUB layout).
    pub data: DataConfig,
}

impl FamilyConfig for DamsmRunConfig {
    fn preset(name: &str) -> Option<Self> {
        Some(Self {
            model: DamsmConfig::preset(name)?,
            image_init: String::new(),
            freeze_image: false,
            word_init: String::new(),
            eval_every: 500,
            eval_images: 1000,
            data: DataConfig::cub(),
        })
    }
    fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate(&["cub"]).map_err(|e| {
            format!("{e}; DAMSM trains on a captioned image set: --data cub --data-root DIR")
        })?;
        let m = &self.model;
        m.validate()?;
        crate::family::check_batch_size(m.batch_size as i64)?;
        if !(m.lr > 0.0 && m.lr < 1.0) {
            return Err(format!("lr must be in (0, 1), got {}", m.lr));
        }
        if !(8..=256).contains(&m.image.width) {
            return Err(format!(
                "image.width must be in 8..=256, got {}",
                m.image.width
            ));
        }
        if self.freeze_image && self.image_init.is_empty() {
            return Err("--freeze-image keeps a pretrained image body fixed: give it with --image-init CKPT".into());
        }
        Ok(())
    }
}

/// The family entry of DAMSM.
pub struct DamsmFamily;

impl TypedFamily for DamsmFamily {
    type Config = DamsmRunConfig;
    const NAME: &'static str = "damsm";
    const ABOUT: &'static str =
        "DAMSM (Xu et al. 2018): the text and image encoders of AttnGAN, R-precision";
    const PRESETS: &'static [&'static str] = &["tiny"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        match flag {
            "lr" => &["lr"],
            "batch_size" => &["batch_size"],
            "ndf" => &["image.width"],
            "image_init" => &["image_init"],
            "freeze_image" => &["freeze_image"],
            "word_init" => &["word_init"],
            "data" => &["data.name"],
            "data_root" => &["data.root"],
            _ => &[],
        }
    }
    fn trainer(
        &self,
        rc: Self::Config,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn FamilyTrainer>> {
        let mut config = rc.model.clone();
        let init = (!rc.image_init.is_empty()).then(|| std::path::PathBuf::from(&rc.image_init));
        // an official `.pth` is ImageNet EfficientNet-Lite; else a classifier
        let imagenet = init
            .clone()
            .filter(|p| p.extension().is_some_and(|e| e == "pth"));
        if let Some(p) = &imagenet {
            use crate::models::damsm::CnnArch;
            config.image.arch = CnnArch::from_imagenet_weights(p)?;
            config.image.image_size = config.image.arch.lite().map_or(224, |l| l.input);
            config.image.frozen_body = rc.freeze_image;
        }
        let classifier = match (&init, &imagenet) {
            (Some(p), None) => {
                let ck = crate::checkpoint::load(p)?;
                let c: crate::models::classifier::ClassifierConfig = ck.json_meta("config")?;
                config.image.arch = crate::models::damsm::CnnArch::Vgg;
                config.image.width = c.width;
                config.image.image_size = c.image_size;
                config.image.frozen_body = rc.freeze_image;
                Some(ck)
            }
            _ => None,
        };
        let minilm = (!rc.word_init.is_empty())
            .then(|| crate::text::minilm::MiniLm::load(Path::new(&rc.word_init), Device::Cpu))
            .transpose()?;
        if let Some(m) = &minilm {
            config.text.embed_dim = crate::text::TextEncoder::sentence_dim(m);
        }
        config.validate().map_err(Error::Config)?;
        let root = rc.data.root();
        let size = config.image.image_size;
        let train = ctx.load_cub(
            root,
            CubSplit::Train,
            &LoadOptions {
                augment: true,
                ..ctx.loading(size)
            },
        )?;
        let test = ctx.load_cub(root, CubSplit::Test, &ctx.loading(size))?;
        let mut t = match resume {
            Some(ck) => DamsmTrainer::from_checkpoint(ck, ctx.device)?,
            None => {
                // vocabulary of the training captions only
                let vocab = Vocab::build(train.captions.iter().flatten().map(String::as_str), 1);
                let mut t = DamsmTrainer::new(config, vocab, ctx.seed, ctx.device);
                if let Some(m) = minilm {
                    t.text.init_words_from_minilm(&m)?;
                }
                if let Some(p) = &imagenet {
                    t.init_image_from_weights(p)?;
                }
                if let Some(ck) = &classifier {
                    t.init_image_from_classifier(ck)?;
                }
                t
            }
        };
        let variants = t.config.feature_variants;
        let note = t.cache_body_features(&train, variants, Some(&ctx.cache), ctx.progress)?;
        if let (Some(note), true) = (note, ctx.progress) {
            eprintln!("{note}");
        }
        // a frozen body's test features are computed once for every evaluation
        let test_body = (t.config.image.frozen_body && rc.eval_every > 0)
            .then(|| t.body_globals(&test, rc.eval_images));
        Ok(Box::new(DamsmRun {
            t,
            train,
            test,
            test_body,
            eval_every: rc.eval_every,
            eval_images: rc.eval_images,
        }))
    }
}

/// A DAMSM run: the trainer, the training and test sets.
struct DamsmRun {
    t: DamsmTrainer,
    train: CaptionedImages,
    test: CaptionedImages,
    test_body: Option<Tensor>,
    eval_every: i64,
    eval_images: usize,
}

impl FamilyTrainer for DamsmRun {
    fn step(&self) -> i64 {
        self.t.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        let s = self.t.train_step(&self.train)?;
        Ok(vec![
            ("loss".into(), s.loss),
            ("w_loss".into(), s.w_loss),
            ("s_loss".into(), s.s_loss),
        ])
    }
    fn lr(&self) -> f64 {
        self.t.lr()
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.t.save(path)
    }
    fn eval_every(&self) -> i64 {
        self.eval_every
    }
    fn evaluate(&mut self) -> Result<Metrics> {
        let r = match &self.test_body {
            Some(b) => self.t.real_r_precision_from_body(&self.test, b, 0)?,
            None => self.t.real_r_precision(&self.test, self.eval_images, 0)?,
        };
        Ok(vec![("r_precision_test".into(), r.mean)])
    }
    fn finish(&mut self, ctx: &TrainContext, interrupted: bool, _: usize) -> Result<Summary> {
        let text_path = ctx.run.root.join("text_encoder.safetensors");
        self.t.text.save(&text_path)?;
        let mut lines = vec![format!("text encoder {}", text_path.display())];
        if interrupted {
            return Ok(Summary {
                value: serde_json::Value::Null,
                lines,
            });
        }
        let r = self.t.real_r_precision(&self.test, usize::MAX, 0)?;
        lines.push(format!(
            "R-precision of real test images: {:.2}% +- {:.2} ({} images)",
            100.0 * r.mean,
            100.0 * r.std,
            r.images
        ));
        let value = serde_json::json!({
            "steps": self.t.step,
            "r_precision_real_test": r,
            "protocol": "real test images (unseen classes), centre crop; each image's caption (one of its 10, seed 0) ranked among 1 true + 99 captions of other classes by cosine of DAMSM sentence and global image vectors; mean +- std over 10 folds",
        });
        Ok(Summary { value, lines })
    }
}
