//! StyleT2I training (Li et al., CVPR 2022, sec. 4): a frozen StyleGAN2
//! backbone (a `stylegan2` checkpoint) and a frozen joint image-text
//! encoder; the Text-to-Direction network learns sentence directions with
//! the CLIP-guided contrastive loss (sec. 4.1, image i against texts j of
//! the batch, image-to-text cross-entropy as the reference `train.py`) and
//! the norm penalty (sec. 4.2, `relu(||s|| - threshold)`).
//!
//! The joint encoder of the losses is CLIP when the user has a CLIP folder
//! (`--text-encoder FOLDER`, as the reference), a DAMSM checkpoint, or an
//! in-domain contrastive encoder trained by the run (a GRU sentence encoder
//! and a small convolutional image encoder, `text_encoder.rs`); the shapes
//! results are scored by the analytic checker, a different model.

use super::optim::Adam;
use super::text_encoder::{
    load_matching_image, matching_image_path, train_and_save, TextPhase, TextTrainOptions,
};
use crate::bench::{time, Timing};
use crate::checkpoint::{self, Checkpoint};
use crate::data::shapes::{Shapes, ShapesConfig, Split};
use crate::data::DataConfig;
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::eval::shapes::full_caption;
use crate::family::{
    BenchOptions, Controls, FamilyConfig, FamilyReport, Generated, Generator as FamilyGenerator,
    Metrics, Summary, TrainContext, Trainer, TypedFamily,
};
use crate::imageio::{grid, tensor_to_images, Rgb};
use crate::models::damsm::CnnEncoder;
use crate::models::style_t2i::{adjust, attributes_of, DirectionConfig, TextToDirection};
use crate::models::stylegan2::{Generator, StyleGan2Config};
use crate::rng::step_seed;
use crate::text::clip::{ClipText, ClipVision};
use crate::text::gru::JointImageEncoder;
use crate::text::{AnyTextEncoder, GruEncoderConfig, TextEncoder};
use crate::train::stylegan2::{mean_latent, sample_noise, sample_z, to_json, StyleGan2Model};
use crate::versions;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// `t2i train --model styleT2I`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleT2IRunConfig {
    pub preset: String,
    /// The `stylegan2` checkpoint of the backbone (trained on the same data
    /// set's training split).
    pub backbone: String,
    /// The joint encoder of the losses: a CLIP folder (Hugging Face
    /// layout), a DAMSM checkpoint, a trained GRU encoder, or (empty) the
    /// run's own.
    pub text: TextPhase,
    /// Hidden width of T2D.
    pub hidden: i64,
    /// Linear layers of T2D.
    pub layers: i64,
    /// Sentences per step.
    pub batch_size: i64,
    /// Adam learning rate of T2D.
    pub lr: f64,
    /// w is pulled toward the mean w by this factor before the direction is
    /// added (0.5 in the reference).
    pub truncation: f64,
    /// Scale of the cosine logits of the contrastive loss (1/tau of the
    /// run's encoder, which trained at tau 0.1; with CLIP, set its learned
    /// 100).
    pub logit_scale: f64,
    /// Norm-penalty weight (`lambda_direction_norm_penalty`, 1).
    pub norm_weight: f64,
    /// Directions longer than this are penalised
    /// (`direction_norm_penalty_threshold`).
    pub norm_threshold: f64,
    /// Attribute vocabulary: the words CAA looks for in a sentence, each
    /// with the phrase A2D and the losses encode it as; empty: the data
    /// set's own (shapes: 8 colours, 3 shapes, 2 sizes; CUB: 14 colours x
    /// 16 parts, "red head").
    pub attributes: Vec<Attribute>,
    /// Margin of the semantic matching loss (sec. 5.1), in cosine.
    pub margin: f64,
    /// Weight of the spatial constraint on A2D (0: off): the change an
    /// attribute direction makes is pushed into the attribute's region: on
    /// shapes the boxes of the objects the checker finds in G(w); on CUB
    /// (no boxes on generated birds) the Grad-CAM of a DAMSM joint
    /// encoder for the attribute phrase in G(w + d).
    pub spatial_weight: f64,
    /// The data set: shapes, or CUB's captions (with a DAMSM checkpoint
    /// as the joint encoder, `text.encoder`).
    pub data: DataConfig,
}

/// One attribute of the vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// As written in captions ("red", "triangle").
    pub word: String,
    /// As encoded ("a red one", "a triangle").
    pub phrase: String,
}

/// Colours, shapes and sizes of the shapes data set, as its partial
/// captions write them alone.
fn shapes_attributes() -> Vec<Attribute> {
    use crate::data::shapes::{COLOURS, SHAPES, SIZES};
    let one = |w: &str| Attribute {
        word: w.into(),
        phrase: format!("a {w} one"),
    };
    COLOURS
        .iter()
        .map(|(c, _)| one(c))
        .chain(SHAPES.iter().map(|s| Attribute {
            word: s.to_string(),
            phrase: format!("a {s}"),
        }))
        .chain(SIZES.iter().map(|s| one(s)))
        .collect()
}

/// The colours, shapes and sizes a shapes caption names, by their names in
/// [`shapes_attributes`], read as the data set's caption reader reads them
/// (synonyms and plurals: "two big pyramids" names large and triangle).
fn shapes_attribute_words(caption: &str) -> Vec<String> {
    use crate::data::shapes::{COLOURS, SHAPES, SIZES};
    let spec = crate::data::shapes_text::read_caption(caption);
    let mut words = Vec::new();
    for m in &spec.objects {
        words.extend(m.colour.map(|i| COLOURS[i].0.to_string()));
        words.extend(m.shape.map(|i| SHAPES[i].to_string()));
        words.extend(m.size.map(|i| SIZES[i].to_string()));
    }
    words
}

/// Colours and parts CUB's captions write ("a bird with a red head"): the
/// colour values and body parts of CUB's 312 attribute names in the words
/// captions use for them.
const CUB_COLOURS: [&str; 14] = [
    "black", "white", "brown", "grey", "gray", "yellow", "red", "blue", "orange", "green", "pink",
    "purple", "buff", "olive",
];
const CUB_PARTS: [&str; 16] = [
    "head", "crown", "wings", "wing", "belly", "breast", "back", "tail", "throat", "beak", "bill",
    "nape", "chest", "eyes", "legs", "feet",
];

/// CUB's attribute phrases: every colour with every part.
fn cub_attributes() -> Vec<Attribute> {
    CUB_COLOURS
        .iter()
        .flat_map(|c| {
            CUB_PARTS.iter().map(move |p| Attribute {
                word: format!("{c} {p}"),
                phrase: format!("a bird with a {c} {p}"),
            })
        })
        .collect()
}

/// The attribute vocabulary of a data set.
fn data_attributes(data: &str) -> Vec<Attribute> {
    if data == "cub" {
        cub_attributes()
    } else {
        shapes_attributes()
    }
}

impl FamilyConfig for StyleT2IRunConfig {
    fn preset(name: &str) -> Option<Self> {
        let tiny = Self {
            preset: name.into(),
            backbone: String::new(),
            text: TextPhase {
                encoder: String::new(),
                steps: 800,
                hard: 0.5,
            },
            hidden: 512,
            layers: 3,
            batch_size: 16,
            lr: 1e-3,
            truncation: 0.5,
            logit_scale: 10.0,
            norm_weight: 1.0,
            norm_threshold: 8.0,
            attributes: Vec::new(),
            margin: 0.1,
            spatial_weight: 1.0,
            // partial captions teach the joint encoder single attributes
            data: DataConfig::shapes(10_000),
        };
        match name {
            "tiny" => Some(tiny),
            // the reference `train.py` on CUB: W+ directions from a 3-layer
            // MLP of width 512, Adam 1e-3, batch 2, truncation 0.5, norm
            // threshold 10, CLIP's logit scale 100; a `stylegan2 --preset
            // paper` backbone and a CLIP folder (or a DAMSM) to be given; no
            // spatial constraint, as the reference code (its Grad-CAM masks
            // need a DAMSM encoder here: `--set spatial_weight=1`)
            "paper" => Some(Self {
                text: TextPhase {
                    encoder: String::new(),
                    steps: 0,
                    hard: 0.0,
                },
                batch_size: 2,
                logit_scale: 100.0,
                norm_threshold: 10.0,
                spatial_weight: 0.0,
                data: DataConfig::cub(),
                ..tiny
            }),
            _ => None,
        }
    }
    fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate(&["shapes", "cub"])?;
        crate::family::check_batch_size(self.batch_size)?;
        if self.layers < 2 || !(1..=8192).contains(&self.hidden) {
            return Err("layers must be >= 2 and hidden in 1..=8192".into());
        }
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return Err(format!("lr must be in (0, 1), got {}", self.lr));
        }
        if !(0.0..=1.0).contains(&self.truncation) {
            return Err(format!(
                "truncation must be in [0, 1], got {}",
                self.truncation
            ));
        }
        if self.spatial_weight < 0.0 {
            return Err("spatial_weight must be >= 0".into());
        }
        if self.logit_scale <= 0.0 || self.norm_weight < 0.0 || self.norm_threshold < 0.0 {
            return Err("logit_scale must be > 0, norm_weight and norm_threshold >= 0".into());
        }
        Ok(())
    }
}

/// The frozen backbone of a `stylegan2` checkpoint (its `g_ema`).
fn load_backbone(
    ck: &Checkpoint,
    prefix: &str,
    device: Device,
) -> Result<(nn::VarStore, Generator)> {
    let config: StyleGan2Config = ck.json_meta("backbone")?;
    let mut vs = nn::VarStore::new(device);
    let g = Generator::new(&vs.root(), &config);
    ck.load_into(&mut vs, prefix)?;
    vs.freeze();
    Ok((vs, g))
}

/// A StyleT2I model: backbone, text encoder and T2D.
pub struct StyleT2IModel {
    pub g_vs: nn::VarStore,
    pub g: Generator,
    pub text: AnyTextEncoder,
    pub t2d_vs: nn::VarStore,
    pub t2d: TextToDirection,
    pub a2d_vs: nn::VarStore,
    pub a2d: TextToDirection,
    pub attributes: Vec<Attribute>,
    /// Compositional Attribute Adjustment at generation (on by default).
    pub caa: bool,
    /// Truncation centre. `[1, style_dim]`
    pub w_mean: Tensor,
    pub truncation: f64,
    /// The shapes data set of a shapes model (None on CUB): there a
    /// caption that names no attribute is refused.
    pub shapes: Option<Shapes>,
}

impl StyleT2IModel {
    /// Truncated w of sample `i` of a request with `seed`. `[1, style_dim]`
    fn w_of(&self, seed: u64, i: usize) -> Tensor {
        let z = sample_z(seed, i, self.g.config.style_dim, self.g_vs.device());
        let w = self.g.mapping(&z);
        &self.w_mean + (w - &self.w_mean) * self.truncation
    }

    /// The vocabulary's attributes named in `caption`. On shapes the
    /// data set's caption reader finds them, so synonyms and plurals count
    /// ("a big pyramid" names large and triangle).
    pub fn attributes_in(&self, caption: &str) -> Vec<&Attribute> {
        let found: Vec<String> = if self.shapes.is_some() {
            shapes_attribute_words(caption)
        } else {
            let words: Vec<String> = self.attributes.iter().map(|a| a.word.clone()).collect();
            attributes_of(caption, &words)
        };
        self.attributes
            .iter()
            .filter(|a| found.contains(&a.word))
            .collect()
    }

    /// One image per caption, with the attributes CAA corrected in each.
    /// `[n, 3, s, s]`
    pub fn draw(&self, captions: &[&str], seed: u64) -> Result<(Tensor, Vec<Vec<String>>)> {
        let (feats, enc) = self.text.encode(captions)?;
        for (c, e) in captions.iter().zip(&enc) {
            // on shapes every attribute is in the vocabulary: a caption that
            // names none asks for nothing the model can draw
            let unnamed = self.shapes.is_some() && self.attributes_in(c).is_empty();
            if e.ids.iter().all(|&id| id <= 1) || unnamed {
                let words: Vec<&str> = self.attributes.iter().map(|a| a.word.as_str()).collect();
                let more = if words.len() > 12 {
                    format!(" and {} more", words.len() - 12)
                } else {
                    String::new()
                };
                return Err(Error::Config(format!(
                    "'{c}' names no attribute this model knows ({}{more}): nothing to draw it from",
                    words[..words.len().min(12)].join(", ")
                )));
            }
        }
        tch::no_grad(|| {
            let mut imgs = Vec::new();
            let mut corrected = Vec::new();
            for (i, c) in captions.iter().enumerate() {
                let w = self.w_of(seed, i);
                let t = feats.sentence.narrow(0, i as i64, 1);
                let mut s = self.t2d.forward(&t, &w); // [1, n_latent, style_dim]
                let mut fixed = Vec::new();
                let attrs = self.attributes_in(c);
                // a CUB caption may name no attribute phrase: T2D alone
                if self.caa && !attrs.is_empty() {
                    let phrases: Vec<&str> = attrs.iter().map(|a| a.phrase.as_str()).collect();
                    let ta = self.text.encode(&phrases)?.0.sentence; // [k, d]
                    let ds: Vec<Tensor> = (0..attrs.len() as i64)
                        .map(|k| self.a2d.forward(&ta.narrow(0, k, 1), &w))
                        .collect();
                    let (adjusted, added) = adjust(&s, &ds);
                    s = adjusted;
                    fixed = attrs
                        .iter()
                        .zip(added)
                        .filter(|(_, a)| *a)
                        .map(|(a, _)| a.word.clone())
                        .collect();
                }
                let lat = self.g.broadcast(&w) + s;
                imgs.push(self.g.synthesis(&lat, &sample_noise(&self.g, seed, i)));
                corrected.push(fixed);
            }
            Ok((Tensor::cat(&imgs, 0), corrected))
        })
    }

    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        ck.expect_model("styleT2I")?;
        let (g_vs, g) = load_backbone(ck, "g_ema", device)?;
        let text = AnyTextEncoder::from_checkpoint(ck, device)?;
        let dc: DirectionConfig = ck.json_meta("t2d")?;
        let mut t2d_vs = nn::VarStore::new(device);
        let t2d = TextToDirection::new(&t2d_vs.root(), &dc);
        ck.load_into(&mut t2d_vs, "t2d")?;
        t2d_vs.freeze();
        let mut a2d_vs = nn::VarStore::new(device);
        let a2d = TextToDirection::new(&a2d_vs.root(), &dc);
        ck.load_into(&mut a2d_vs, "a2d")?;
        a2d_vs.freeze();
        let attributes: Vec<Attribute> = ck.json_meta("attributes")?;
        let truncation = ck
            .meta("truncation")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad truncation".into()))?;
        let w_mean = mean_latent(&g);
        let shapes = Shapes::of_checkpoint(ck)?;
        Ok(Self {
            g_vs,
            g,
            text,
            t2d_vs,
            t2d,
            a2d_vs,
            a2d,
            attributes,
            caa: true,
            w_mean,
            truncation,
            shapes,
        })
    }
}

/// Where the run's sentences come from.
enum Sentences {
    Shapes(Shapes),
    /// CUB's training captions, and test captions for the sample grid.
    Cub {
        train: Vec<String>,
        test: Vec<String>,
    },
}

impl Sentences {
    /// A training sentence (`k`: its place in the batch).
    fn train(&self, rng: &mut ChaCha8Rng, k: usize) -> String {
        match self {
            Sentences::Shapes(s) => {
                let n = s.len(Split::Train);
                full_caption(&s.sample(Split::Train, rng.gen_range(0..n)), k).to_string()
            }
            Sentences::Cub { train, .. } => train[rng.gen_range(0..train.len())].clone(),
        }
    }

    /// Eight sentences of the sample grid (held-out and test ones), each
    /// naming an attribute of `vocabulary`.
    fn grid(&self, vocabulary: &[String]) -> Vec<String> {
        match self {
            Sentences::Shapes(s) => (0..4)
                .map(|i| s.sample(Split::HeldOut, i).captions[0].clone())
                .chain((0..4).map(|i| s.sample(Split::Test, i).captions[0].clone()))
                .collect(),
            Sentences::Cub { test, .. } => {
                let named: Vec<&String> = test
                    .iter()
                    .filter(|c| !attributes_of(c, vocabulary).is_empty())
                    .collect();
                named
                    .iter()
                    .step_by((named.len() / 8).max(1))
                    .take(8)
                    .map(|c| c.to_string())
                    .collect()
            }
        }
    }
}

/// The image side of the frozen joint encoder (eval mode; gradients flow
/// to its input).
pub enum ImageSide {
    /// The small CNN trained with the run's GRU sentence encoder.
    Joint(nn::VarStore, JointImageEncoder),
    /// A DAMSM checkpoint's image encoder (its sentence vector space is
    /// the DAMSM text encoder's).
    Damsm(nn::VarStore, Box<CnnEncoder>, i64),
    /// CLIP's vision tower (with [`crate::text::clip::ClipText`] as the
    /// text side), as the reference trains.
    Clip(Box<ClipVision>),
}

impl ImageSide {
    /// Sentence-space vectors of images in [-1, 1]. `[b, 3, S, S]` -> `[b, d]`
    fn encode(&self, img: &Tensor) -> Tensor {
        match self {
            ImageSide::Joint(_, e) => e.forward_t(img, false),
            ImageSide::Damsm(_, e, side) => {
                let x = if img.size()[2] == *side {
                    img.shallow_clone()
                } else {
                    img.internal_upsample_bilinear2d_aa([*side, *side], false, None, None)
                };
                e.forward_t(&x, false).1
            }
            ImageSide::Clip(v) => v.encode_images(img),
        }
    }

    /// Pseudo masks of the attribute regions, for the spatial constraint
    /// where generated images have no boxes (CUB): Grad-CAM of the DAMSM
    /// image encoder for each image's attribute phrase, bilinearly resized
    /// to the image and min-max normalised to [0, 1]. Constants (no
    /// gradient). `[b, 3, S, S]`, phrases `[b, d]` -> `[b, 1, S, S]`
    fn grad_cam_masks(&self, img: &Tensor, phrases: &Tensor) -> Result<Tensor> {
        let ImageSide::Damsm(_, e, side) = self else {
            return Err(Error::Config(
                "the spatial constraint on CUB reads Grad-CAM masks of a DAMSM image encoder: with this joint encoder set spatial_weight=0".into(),
            ));
        };
        let s = img.size()[2];
        let x = img.detach();
        let x = if s == *side {
            x
        } else {
            x.internal_upsample_bilinear2d_aa([*side, *side], false, None, None)
        };
        let cam = e.grad_cam(&x, phrases); // [b, 1, r, r]
        let cam = cam.upsample_bilinear2d([s, s], false, None, None); // [b, 1, S, S]
        Ok(min_max(&cam))
    }
}

/// The T2D training.
pub struct StyleT2ITrainer {
    rc: StyleT2IRunConfig,
    model: StyleT2IModel,
    /// Image side of the joint encoder.
    image: ImageSide,
    opt: Adam,
    a2d_opt: Adam,
    step: i64,
    seed: u64,
    sentences: Sentences,
    backbone_config: StyleGan2Config,
    backbone_source: String,
}

impl StyleT2ITrainer {
    /// T2D and A2D, freshly initialised, on a backbone and a joint encoder.
    fn new(
        rc: StyleT2IRunConfig,
        bb: StyleGan2Model,
        backbone_source: String,
        text: AnyTextEncoder,
        image: ImageSide,
        sentences: Sentences,
        seed: u64,
    ) -> Self {
        let device = bb.vs.device();
        let backbone_config = bb.config.clone();
        tch::manual_seed(seed as i64);
        let dc = DirectionConfig {
            text_dim: text.sentence_dim(),
            style_dim: backbone_config.style_dim,
            n_latent: backbone_config.n_latent(),
            hidden: rc.hidden,
            layers: rc.layers,
        };
        let t2d_vs = nn::VarStore::new(device);
        let t2d = TextToDirection::new(&t2d_vs.root(), &dc);
        let opt = Adam::new(&t2d_vs, rc.lr, 0.9, 0.999);
        let a2d_vs = nn::VarStore::new(device);
        let a2d = TextToDirection::new(&a2d_vs.root(), &dc);
        let a2d_opt = Adam::new(&a2d_vs, rc.lr, 0.9, 0.999);
        let model = StyleT2IModel {
            g_vs: bb.vs,
            g: bb.g,
            text,
            t2d_vs,
            t2d,
            a2d_vs,
            a2d,
            attributes: rc.attributes.clone(),
            caa: true,
            w_mean: bb.w_mean,
            truncation: rc.truncation,
            shapes: None,
        };
        StyleT2ITrainer {
            backbone_source,
            rc,
            model,
            image,
            opt,
            a2d_opt,
            step: 0,
            seed,
            sentences,
            backbone_config,
        }
    }
}

impl StyleT2ITrainer {
    fn train_step(&mut self) -> Result<Metrics> {
        let seed = step_seed(self.seed, self.step);
        tch::manual_seed(seed as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let m = &self.model;
        let dev = m.g_vs.device();
        let b = self.rc.batch_size;
        let caps: Vec<String> = (0..b)
            .map(|k| self.sentences.train(&mut rng, k as usize))
            .collect();
        let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
        let t = tch::no_grad(|| -> Result<Tensor> { Ok(m.text.encode(&refs)?.0.sentence) })?; // [b, d]
        let w = tch::no_grad(|| {
            let w = m.g.mapping(&Tensor::randn(
                [b, m.g.config.style_dim],
                (Kind::Float, dev),
            ));
            &m.w_mean + (w - &m.w_mean) * self.rc.truncation
        }); // [b, style_dim]
        let s = m.t2d.forward(&t, &w); // [b, n_latent, style_dim]
        let img =
            m.g.synthesis(&(m.g.broadcast(&w) + &s), &m.g.random_noise(b)); // [b, 3, S, S]
        let e = normalize(&self.image.encode(&img)); // [b, d]
        let tn = normalize(&t);
        // eq. 1 (CLIP-guided contrastive loss): image i against texts j
        let logits = e.matmul(&tn.tr()) * self.rc.logit_scale; // [b, b]
        let target = Tensor::arange(b, (Kind::Int64, dev));
        let contrastive = logits.cross_entropy_for_logits(&target);
        // eq. 2 (norm penalty)
        let norm = s
            .reshape([b, -1])
            .norm_scalaropt_dim(2, [1i64].as_slice(), false); // [b]
        let penalty = (&norm - self.rc.norm_threshold).relu().mean(Kind::Float);
        let loss = &contrastive + &penalty * self.rc.norm_weight;
        self.opt.zero_grad();
        loss.backward();
        self.opt.step();
        let (sem, d_norm, spatial) = self.a2d_step(&w, &mut rng)?;
        self.step += 1;
        let acc = logits
            .argmax(1, false)
            .eq_tensor(&target)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        Ok(vec![
            ("contrastive".into(), contrastive.double_value(&[])),
            ("norm".into(), norm.mean(Kind::Float).double_value(&[])),
            ("batch_retrieval".into(), acc.double_value(&[])),
            ("semantic".into(), sem),
            ("attribute_norm".into(), d_norm),
            ("spatial".into(), spatial),
        ])
    }

    /// One A2D step: the semantic matching loss (sec. 5.1) for a random
    /// attribute per w, the norm penalty on d and the spatial constraint.
    fn a2d_step(&mut self, w: &Tensor, rng: &mut ChaCha8Rng) -> Result<(f64, f64, f64)> {
        let m = &self.model;
        let b = w.size()[0];
        let attrs = &self.rc.attributes;
        let phrases: Vec<&str> = (0..b)
            .map(|_| attrs[rng.gen_range(0..attrs.len())].phrase.as_str())
            .collect();
        let ta = tch::no_grad(|| -> Result<Tensor> { Ok(m.text.encode(&phrases)?.0.sentence) })?;
        let d = m.a2d.forward(&ta, w); // [b, n_latent, style_dim]
        let base = m.g.broadcast(w);
        let noise = m.g.random_noise(b);
        let plus = m.g.synthesis(&(&base + &d), &noise);
        let minus = m.g.synthesis(&(&base - &d), &noise);
        let tn = normalize(&ta);
        let cos = |img: &Tensor| {
            (normalize(&self.image.encode(img)) * &tn).sum_dim_intlist(
                [1i64].as_slice(),
                false,
                Kind::Float,
            )
        };
        // eq. 3: max(0, cos(E_I(G(w - d)), E_T(a)) - cos(E_I(G(w + d)), E_T(a)) + margin)
        let sem = (cos(&minus) - cos(&plus) + self.rc.margin)
            .relu()
            .mean(Kind::Float);
        // spatial constraint: the min-max normalised change
        // |G(w+) - G(w-)| against the pseudo mask of the attribute's region:
        // the boxes of the objects in G(w), the image the direction edits
        // (boxes read from G(w+) let A2D grow the object to fill a large
        // box; docs/experiments.md)
        let shapes = match &self.sentences {
            Sentences::Shapes(s) => Some(s),
            Sentences::Cub { .. } => None,
        };
        // (on CUB, whose generated birds have no boxes: Grad-CAM of the
        // joint encoder's image side for the attribute phrase in G(w+), as
        // the paper)
        let spatial = if self.rc.spatial_weight == 0.0 {
            Tensor::zeros([], (Kind::Float, plus.device()))
        } else {
            let (mask, found) = match shapes {
                Some(shapes) => {
                    let edited = tch::no_grad(|| m.g.synthesis(&base, &noise)); // [b, 3, S, S]
                    object_masks(&edited, shapes.config.max_objects as usize)
                }
                None => (
                    self.image.grad_cam_masks(&plus, &ta)?,
                    Tensor::ones([b], (Kind::Float, plus.device())),
                ),
            }; // [b, 1, S, S], [b]
            let diff = normalised_change(&plus, &minus); // [b, 1, S, S]
            let per =
                (diff - mask)
                    .abs()
                    .flatten(1, -1)
                    .mean_dim([1i64].as_slice(), false, Kind::Float); // [b]
            let k = found.sum(Kind::Float).clamp_min(1.0);
            (per * found).sum(Kind::Float) / k
        };
        let norm = d
            .reshape([b, -1])
            .norm_scalaropt_dim(2, [1i64].as_slice(), false);
        let penalty = (&norm - self.rc.norm_threshold).relu().mean(Kind::Float);
        let loss = &sem + &penalty * self.rc.norm_weight + &spatial * self.rc.spatial_weight;
        self.a2d_opt.zero_grad();
        loss.backward();
        self.a2d_opt.step();
        Ok((
            sem.double_value(&[]),
            norm.mean(Kind::Float).double_value(&[]),
            spatial.double_value(&[]),
        ))
    }

    fn save(&self, path: &Path) -> Result<()> {
        let m = &self.model;
        let mut meta: BTreeMap<String, String> = m.text.describe();
        meta.insert("model".into(), "styleT2I".into());
        meta.insert("preset".into(), self.rc.preset.clone());
        meta.insert("run_config".into(), to_json(&self.rc)?);
        meta.insert("backbone".into(), to_json(&self.backbone_config)?);
        meta.insert("backbone_source".into(), self.backbone_source.clone());
        meta.insert("t2d".into(), to_json(&m.t2d.config)?);
        meta.insert("truncation".into(), self.rc.truncation.to_string());
        meta.insert("attributes".into(), to_json(&self.rc.attributes)?);
        match &self.sentences {
            Sentences::Shapes(sh) => {
                let data = toml::to_string(&sh.config).map_err(|e| Error::Config(e.to_string()))?;
                meta.insert("data".into(), data);
            }
            Sentences::Cub { .. } => {
                meta.insert("data_name".into(), "cub".into());
            }
        }
        meta.insert("step".into(), self.step.to_string());
        meta.insert("seed".into(), self.seed.to_string());
        meta.insert("versions".into(), versions());
        meta.insert("device".into(), device_name(m.g_vs.device()));
        let mut t = checkpoint::named(&m.g_vs, "g_ema");
        t.extend(m.text.tensors());
        t.extend(checkpoint::named(&m.t2d_vs, "t2d"));
        t.extend(checkpoint::named(&m.a2d_vs, "a2d"));
        t.extend(self.opt.state("optim.t2d"));
        t.extend(self.a2d_opt.state("optim.a2d"));
        checkpoint::save(path, &meta, &t)
    }

    fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.expect_model("styleT2I")?;
        ck.load_into(&mut self.model.t2d_vs, "t2d")?;
        ck.load_into(&mut self.model.a2d_vs, "a2d")?;
        self.opt
            .load_state("optim.t2d", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        self.a2d_opt
            .load_state("optim.a2d", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        self.step = ck
            .meta("step")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad step".into()))?;
        Ok(())
    }

    /// Two fixed captions per row, 8 noises each.
    fn sample_grid(&self) -> Result<Rgb> {
        let words: Vec<String> = self.rc.attributes.iter().map(|a| a.word.clone()).collect();
        let caps = self.sentences.grid(&words);
        let mut rows = Vec::new();
        for c in &caps {
            let many: Vec<&str> = vec![c.as_str(); 8];
            let imgs = self.model.draw(&many, 0x5A3)?.0;
            rows.push((tensor_to_images(&imgs), Some(c.clone())));
        }
        Ok(grid(&rows, 2))
    }
}

fn normalize(x: &Tensor) -> Tensor {
    x / (x.norm_scalaropt_dim(2, [1i64].as_slice(), true) + 1e-8)
}

/// |a - b| summed over colour channels and min-max normalised to [0, 1]
/// per image. `[b, 3, S, S]` x 2 -> `[b, 1, S, S]`
fn normalised_change(a: &Tensor, b: &Tensor) -> Tensor {
    min_max(
        &(a - b)
            .abs()
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float), // [b, 1, S, S]
    )
}

/// Each map min-max normalised to [0, 1]. `[b, 1, S, S]`
fn min_max(x: &Tensor) -> Tensor {
    let flat = x.flatten(1, -1);
    let lo = flat.amin([1i64].as_slice(), false).view([-1, 1, 1, 1]);
    let hi = flat.amax([1i64].as_slice(), false).view([-1, 1, 1, 1]);
    (x - &lo) / (hi - lo + 1e-8)
}

/// The pseudo mask of each image's attribute region: 1 inside the boxes
/// (grown by one pixel) of the objects the shapes checker finds, and
/// whether it found any. `[b, 3, S, S]` -> (`[b, 1, S, S]`, `[b]`)
fn object_masks(images: &Tensor, max_objects: usize) -> (Tensor, Tensor) {
    let (b, s) = (images.size()[0], images.size()[2]);
    let mut mask = vec![0f32; (b * s * s) as usize];
    let mut found = vec![0f32; b as usize];
    for (i, img) in tensor_to_images(images).iter().enumerate() {
        let r = crate::data::checker::check(&img.data, s as u32, max_objects);
        found[i] = f32::from(!r.objects.is_empty());
        for o in &r.objects {
            let [x0, y0, x1, y1] = o.bbox.map(|v| v as i64);
            for y in (y0 - 1).max(0)..(y1 + 1).min(s) {
                for x in (x0 - 1).max(0)..(x1 + 1).min(s) {
                    mask[(i as i64 * s * s + y * s + x) as usize] = 1.0;
                }
            }
        }
    }
    let dev = images.device();
    (
        Tensor::from_slice(&mask).view([b, 1, s, s]).to_device(dev),
        Tensor::from_slice(&found).to_device(dev),
    )
}

/// How well attribute directions keep to the object: for `n` samples w
/// and an attribute of the vocabulary each, the share of the change
/// |G(w + d) - G(w - d)| that falls inside the boxes of the objects the
/// checker finds in G(w); a case is localised when that share is at least
/// half. Samples whose G(w) shows no object are left out.
#[derive(Debug, Clone, Serialize)]
pub struct Localisation {
    /// Cases with an object found in G(w).
    pub cases: usize,
    /// Share of them whose change is mostly inside the object's box.
    pub localised: f64,
    /// Mean share of the change inside the box.
    pub mean_inside: f64,
    /// Mean share of the image the boxes cover (the share a change spread
    /// evenly would have inside them).
    pub mean_box_area: f64,
}

/// What one attribute direction of A2D does on shapes: the checker reads
/// the largest object of G(w) and of G(w + d_a) for truncated random w
/// (the images CAA edits). Samples where either shows no object are left
/// out.
#[derive(Debug, Clone, Serialize)]
pub struct DirectionEffect {
    /// The attribute ("red", "triangle", "large").
    pub attribute: String,
    /// Its kind: colour, shape or size.
    pub kind: &'static str,
    /// Samples with an object in both images.
    pub cases: usize,
    /// Share of them whose object has the attribute in G(w).
    pub before: f64,
    /// ... in G(w + d_a).
    pub after: f64,
    /// Share of them whose object changed another kind of attribute (a
    /// colour direction: shape or size; a shape direction: colour or
    /// size; a size direction: colour or shape).
    pub others_changed: f64,
    /// Mean norm of d_a over the samples.
    pub norm: f64,
}

impl StyleT2IModel {
    /// See [`DirectionEffect`]: `n` samples per attribute of the vocabulary
    /// (the same w and noise for every attribute, from `seed`). Shapes
    /// models only (the checker reads them); empty otherwise.
    pub fn direction_effects(
        &self,
        n: usize,
        seed: u64,
        max_objects: usize,
    ) -> Result<Vec<DirectionEffect>> {
        use crate::data::checker::{check, Detected};
        use crate::data::shapes::{COLOURS, SHAPES, SIZES};
        if self.shapes.is_none() {
            return Ok(Vec::new());
        }
        let size = self.g.config.size as u32;
        let phrases: Vec<&str> = self.attributes.iter().map(|a| a.phrase.as_str()).collect();
        tch::no_grad(|| {
            let ta = self.text.encode(&phrases)?.0.sentence; // [attributes, d]
            let read = |img: &Tensor| {
                let r = check(&tensor_to_images(img)[0].data, size, max_objects);
                r.objects.first().cloned()
            };
            // G(w) once per sample
            let samples: Vec<(Tensor, Vec<Tensor>, Option<Detected>)> = (0..n)
                .map(|i| {
                    let w = self.w_of(seed, i);
                    let noise = sample_noise(&self.g, seed, i);
                    let o = read(&self.g.synthesis(&self.g.broadcast(&w), &noise));
                    (w, noise, o)
                })
                .collect();
            let mut out = Vec::new();
            for (k, a) in self.attributes.iter().enumerate() {
                let colour = COLOURS.iter().position(|c| c.0 == a.word);
                let shape = SHAPES.iter().position(|s| *s == a.word);
                let sz = SIZES.iter().position(|s| *s == a.word);
                let (kind, value) = match (colour, shape, sz) {
                    (Some(c), _, _) => ("colour", c),
                    (_, Some(s), _) => ("shape", s),
                    (_, _, Some(z)) => ("size", z),
                    _ => continue,
                };
                // each object's (colour, shape, size)
                let read3 = |o: &Detected| [o.colour, o.shape, o.size];
                let at = ["colour", "shape", "size"]
                    .iter()
                    .position(|k| *k == kind)
                    .expect("one of the three");
                let has = |o: &Detected| read3(o)[at] == value;
                let others = |o: &Detected, p: &Detected| {
                    (0..3).any(|j| j != at && read3(o)[j] != read3(p)[j])
                };
                let (mut cases, mut before, mut after, mut changed, mut norm) =
                    (0usize, 0usize, 0usize, 0usize, 0.0);
                for (w, noise, o0) in &samples {
                    let d = self.a2d.forward(&ta.narrow(0, k as i64, 1), w); // [1, n_latent, style_dim]
                    norm += d.norm().double_value(&[]);
                    let Some(o0) = o0 else { continue };
                    let img = self.g.synthesis(&(self.g.broadcast(w) + &d), noise);
                    let Some(o1) = read(&img) else { continue };
                    cases += 1;
                    before += usize::from(has(o0));
                    after += usize::from(has(&o1));
                    changed += usize::from(others(o0, &o1));
                }
                let c = cases.max(1) as f64;
                out.push(DirectionEffect {
                    attribute: a.word.clone(),
                    kind,
                    cases,
                    before: before as f64 / c,
                    after: after as f64 / c,
                    others_changed: changed as f64 / c,
                    norm: norm / n.max(1) as f64,
                });
            }
            Ok(out)
        })
    }

    /// See [`Localisation`]; attributes taken in turn, w and noise from
    /// `seed`.
    pub fn localisation(&self, n: usize, seed: u64, max_objects: usize) -> Result<Localisation> {
        let phrases: Vec<&str> = self.attributes.iter().map(|a| a.phrase.as_str()).collect();
        let ta = tch::no_grad(|| -> Result<Tensor> { Ok(self.text.encode(&phrases)?.0.sentence) })?;
        let (mut cases, mut localised, mut inside, mut area) = (0usize, 0usize, 0.0, 0.0);
        for i in 0..n {
            tch::no_grad(|| {
                let w = self.w_of(seed, i);
                let k = (i % phrases.len()) as i64;
                let d = self.a2d.forward(&ta.narrow(0, k, 1), &w);
                let base = self.g.broadcast(&w);
                let noise = sample_noise(&self.g, seed, i);
                let img = self.g.synthesis(&base, &noise);
                let plus = self.g.synthesis(&(&base + &d), &noise);
                let minus = self.g.synthesis(&(&base - &d), &noise);
                let (mask, found) = object_masks(&img, max_objects);
                if found.double_value(&[0]) == 0.0 {
                    return;
                }
                let diff = (&plus - &minus).abs().sum(Kind::Float).double_value(&[]);
                let change =
                    (&plus - &minus)
                        .abs()
                        .sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
                let within = (change * &mask).sum(Kind::Float).double_value(&[]);
                let share = if diff > 0.0 { within / diff } else { 0.0 };
                cases += 1;
                localised += usize::from(share >= 0.5);
                inside += share;
                area += mask.mean(Kind::Float).double_value(&[]);
            });
        }
        let c = cases.max(1) as f64;
        Ok(Localisation {
            cases,
            localised: localised as f64 / c,
            mean_inside: inside / c,
            mean_box_area: area / c,
        })
    }
}

/// The report of [`StyleT2IModel::direction_effects`]: a line per kind of
/// attribute, each direction's share of objects with its attribute before
/// and after, then how often the other kinds changed.
fn direction_lines(effects: &[DirectionEffect], n: usize) -> Vec<String> {
    if effects.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "attribute directions on {n} samples w: objects with the attribute in G(w) -> G(w + d) (and with another kind of attribute changed)"
    )];
    for kind in ["colour", "shape", "size"] {
        let of: Vec<&DirectionEffect> = effects.iter().filter(|e| e.kind == kind).collect();
        if of.is_empty() {
            continue;
        }
        let items: Vec<String> = of
            .iter()
            .map(|e| {
                format!(
                    "{} {:.0}->{:.0}% ({:.0}%)",
                    e.attribute,
                    100.0 * e.before,
                    100.0 * e.after,
                    100.0 * e.others_changed
                )
            })
            .collect();
        lines.push(format!("  {kind}: {}", items.join(", ")));
    }
    lines
}

/// StyleT2I as a model family.
pub struct StyleT2IFamily;

impl TypedFamily for StyleT2IFamily {
    type Config = StyleT2IRunConfig;
    const NAME: &'static str = "styleT2I";
    const ABOUT: &'static str =
        "StyleT2I: text directions in a StyleGAN2 latent space (train --model stylegan2 first)";
    const PRESETS: &'static [&'static str] = &["tiny", "paper"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        match flag {
            "lr" => &["lr"],
            "batch_size" => &["batch_size"],
            "data" => &["data.name"],
            "data_root" => &["data.root"],
            "train_size" => &["data.train_size"],
            "text_encoder" => &["text.encoder"],
            "text_steps" => &["text.steps"],
            "text_hard" => &["text.hard"],
            _ => &[],
        }
    }
    fn trainer(
        &self,
        mut rc: Self::Config,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn Trainer>> {
        if rc.backbone.is_empty() {
            return Err(Error::Config(
                "styleT2I needs its backbone: --set backbone=RUN/checkpoints/last.safetensors (train one with --model stylegan2)"
                    .into(),
            ));
        }
        let bk_path = std::path::PathBuf::from(&rc.backbone);
        let bk = checkpoint::load(&bk_path)?;
        bk.expect_model("stylegan2")?;
        let backbone_config: StyleGan2Config = bk.json_meta("config")?;
        if rc.attributes.is_empty() {
            rc.attributes = data_attributes(&rc.data.name);
        }
        // a folder is a CLIP model; a file, a checkpoint
        let clip = Path::new(&rc.text.encoder).is_dir();
        let encoder = (!rc.text.encoder.is_empty() && !clip)
            .then(|| checkpoint::load(Path::new(&rc.text.encoder)))
            .transpose()?;
        let damsm = encoder
            .as_ref()
            .filter(|ck| ck.meta("model").is_ok_and(|m| m == "damsm"));
        let sentences = if rc.data.name == "cub" {
            if damsm.is_none() && !clip {
                return Err(Error::Config(
                    "styleT2I on CUB needs a joint encoder: --text-encoder CLIP_FOLDER, or a DAMSM checkpoint RUN/checkpoints/last.safetensors (t2i train --model damsm)"
                        .into(),
                ));
            }
            let captions = |split| -> Result<Vec<String>> {
                let cub = crate::data::cub::Cub::open(
                    rc.data.root(),
                    split,
                    crate::data::cub::CaptionLayout::Auto,
                )?;
                Ok(cub.records.into_iter().flat_map(|r| r.captions).collect())
            };
            let train = captions(crate::data::cub::CubSplit::Train)?;
            let test = captions(crate::data::cub::CubSplit::Test)?;
            if train.is_empty() || test.is_empty() {
                return Err(Error::Config(format!(
                    "{} has no captions in its train or test split",
                    rc.data.root().display()
                )));
            }
            Sentences::Cub { train, test }
        } else {
            Sentences::Shapes(
                Shapes::new(ShapesConfig {
                    image_size: backbone_config.size as u32,
                    max_objects: rc.data.max_objects,
                    train_size: rc.data.train_size,
                    partial_captions: rc.data.partial_captions,
                    ..ShapesConfig::default()
                })
                .map_err(|e| Error::Config(e.to_string()))?,
            )
        };
        let (text, image) = match (&sentences, damsm, &encoder) {
            _ if clip => {
                let dir = Path::new(&rc.text.encoder);
                (
                    AnyTextEncoder::Clip(Box::new(ClipText::load(dir, ctx.device)?)),
                    ImageSide::Clip(Box::new(ClipVision::load(dir, ctx.device)?)),
                )
            }
            (_, Some(ck), _) => {
                let dc: super::damsm::DamsmConfig = ck.json_meta("config")?;
                let mut text =
                    crate::text::damsm::RnnEncoder::from_checkpoint(ck, "text", ctx.device)?;
                text.source = rc.text.encoder.clone();
                let mut vs = nn::VarStore::new(ctx.device);
                let enc = CnnEncoder::new(vs.root(), dc.image.clone());
                ck.load_into(&mut vs, "image")?;
                vs.freeze();
                text.vs.freeze();
                (
                    AnyTextEncoder::Damsm(text),
                    ImageSide::Damsm(vs, Box::new(enc), dc.image.image_size),
                )
            }
            (_, None, Some(_)) => {
                let p = Path::new(&rc.text.encoder);
                let text = AnyTextEncoder::load(p, ctx.device)?;
                let (vs, enc) = load_matching_image(&matching_image_path(p), ctx.device)?;
                (text, ImageSide::Joint(vs, enc))
            }
            (Sentences::Shapes(shapes), None, None) => {
                let path = ctx.run.root.join("text_encoder.safetensors");
                let opts = TextTrainOptions {
                    steps: rc.text.steps,
                    seed: ctx.seed,
                    hard_fraction: rc.text.hard,
                    progress: ctx.progress,
                    ..Default::default()
                };
                let t = train_and_save(shapes, GruEncoderConfig::tiny(), &opts, ctx.device, &path)?;
                if ctx.progress {
                    eprintln!(
                        "joint encoder: loss {:.3}, held-in test retrieval {:.1}% -> {}",
                        t.final_loss,
                        100.0 * t.test_retrieval,
                        path.display()
                    );
                }
                let mut img_vs = t.image_vs;
                img_vs.freeze();
                (
                    AnyTextEncoder::Gru(t.encoder),
                    ImageSide::Joint(img_vs, t.image_encoder),
                )
            }
            (Sentences::Cub { .. }, None, None) => unreachable!("refused above"),
        };
        if matches!(sentences, Sentences::Cub { .. })
            && rc.spatial_weight > 0.0
            && !matches!(image, ImageSide::Damsm(..))
        {
            return Err(Error::Config(
                "the spatial constraint on CUB reads Grad-CAM masks of a DAMSM image encoder: with a CLIP folder set spatial_weight=0".into(),
            ));
        }
        // the backbone's averaged generator and its mean w
        let bb = StyleGan2Model::from_checkpoint(&bk, ctx.device)?;
        let mut t = StyleT2ITrainer::new(
            rc,
            bb,
            bk_path.display().to_string(),
            text,
            image,
            sentences,
            ctx.seed,
        );
        if let Some(ck) = resume {
            t.restore(ck)?;
        }
        Ok(Box::new(t))
    }
    fn generator(&self, ck: &Checkpoint, device: Device) -> Result<Box<dyn FamilyGenerator>> {
        Ok(Box::new(StyleT2IModel::from_checkpoint(ck, device)?))
    }
    fn bench(
        &self,
        config: &Self::Config,
        opts: &BenchOptions,
    ) -> Result<Vec<(serde_json::Value, String)>> {
        let r = bench(config, opts.device, opts.repeats)?;
        let v = serde_json::to_value(&r).map_err(|e| Error::Config(e.to_string()))?;
        Ok(vec![(v, r.table())])
    }
}

impl Trainer for StyleT2ITrainer {
    fn step(&self) -> i64 {
        self.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        StyleT2ITrainer::train_step(self)
    }
    fn lr(&self) -> f64 {
        self.opt.lr
    }
    fn save(&self, path: &Path) -> Result<()> {
        StyleT2ITrainer::save(self, path)
    }
    fn sample_grid(&self) -> Result<Option<Rgb>> {
        Ok(Some(StyleT2ITrainer::sample_grid(self)?))
    }
    fn finish(&mut self, ctx: &TrainContext, interrupted: bool, n: usize) -> Result<Summary> {
        if interrupted || n == 0 {
            return Ok(Summary::default());
        }
        let Sentences::Shapes(shapes) = &self.sentences else {
            return Ok(Summary {
                value: serde_json::Value::Null,
                lines: vec![format!(
                    "score it: t2i eval --metric r-precision,clip-score --checkpoint {} --damsm EVALUATOR --data-root CUB (an evaluator other than the run's joint encoder)",
                    ctx.run.last_checkpoint().display()
                )],
            });
        };
        let ck = checkpoint::load(&ctx.run.last_checkpoint())?;
        let mut model = StyleT2IModel::from_checkpoint(&ck, ctx.device)?;
        // the directions' own measurements come with the first evaluation
        let mut with = crate::eval::shapes::evaluate(&model, &shapes.config, n, 0)?;
        let own = with
            .as_object_mut()
            .and_then(|o| o.remove("family"))
            .unwrap_or_default();
        let own_lines = with
            .as_object_mut()
            .and_then(|o| o.remove("family_lines"))
            .unwrap_or_default();
        model.caa = false;
        let without = crate::eval::shapes::checker_scores(&model, &shapes.config, n, 0)?;
        let mut lines = vec!["with Compositional Attribute Adjustment:".to_string()];
        lines.extend(crate::eval::shapes::summary_lines(&with));
        lines.push("without (--no-caa):".into());
        lines.extend(crate::eval::shapes::summary_lines(&without));
        lines.push(format!(
            "A2D trained with spatial constraint weight {}:",
            self.rc.spatial_weight
        ));
        lines.extend(
            own_lines
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_string)),
        );
        Ok(Summary {
            value: serde_json::json!({
                "caa": with,
                "no_caa": without,
                "localisation": own["localisation"],
                "directions": own["directions"],
            }),
            lines,
        })
    }
}

impl FamilyGenerator for StyleT2IModel {
    fn family(&self) -> &'static str {
        "styleT2I"
    }
    fn image_size(&self) -> i64 {
        self.g.config.size
    }
    fn controls(&self) -> Controls {
        Controls {
            caa: true,
            ..Default::default()
        }
    }
    fn set_caa(&mut self, on: bool) -> Result<()> {
        self.caa = on;
        Ok(())
    }
    fn shapes_report(&self, n: usize, seed: u64) -> Result<Option<FamilyReport>> {
        let Some(shapes) = &self.shapes else {
            return Ok(None);
        };
        let max_objects = shapes.config.max_objects as usize;
        let loc = self.localisation(n, seed, max_objects)?;
        let effects = self.direction_effects(n.min(100), seed, max_objects)?;
        let mut lines = vec![format!(
            "attribute directions: change mostly inside the object's box in {:.1}% of {} cases (mean share inside {:.1}%, boxes cover {:.1}% of the image)",
            100.0 * loc.localised,
            loc.cases,
            100.0 * loc.mean_inside,
            100.0 * loc.mean_box_area
        )];
        lines.extend(direction_lines(&effects, n.min(100)));
        Ok(Some(FamilyReport {
            value: serde_json::json!({ "localisation": loc, "directions": effects }),
            lines,
        }))
    }
    fn unknown_words(&self, caption: &str) -> Result<Vec<String>> {
        let (_, mut enc) = self.text.encode(&[caption])?;
        Ok(enc.remove(0).unknown)
    }
    fn generate(&self, captions: &[&str], seed: u64) -> Result<Generated> {
        let (images, corrected) = self.draw(captions, seed)?;
        Ok(Generated {
            images: images.to_device(Device::Cpu),
            first_stage: None,
            drawn_as: None,
            corrected: self.caa.then_some(corrected),
        })
    }
}

/// `t2i bench --model styleT2I`: a T2D + A2D training step and generation
/// with and without attribute adjustment.
#[derive(Debug, Clone, Serialize)]
pub struct StyleT2IBench {
    pub preset: String,
    /// The backbone checkpoint, or "random" (a fresh one of the preset's
    /// size: the cost does not depend on the weights).
    pub backbone: String,
    pub image_size: i64,
    pub batch_size: i64,
    pub device: String,
    pub threads: i32,
    pub train_step: Timing,
    pub generate_batch1: Timing,
    pub generate_batch1_no_caa: Timing,
    pub generate_batch16: Timing,
    pub peak_rss_mib: f64,
}

impl StyleT2IBench {
    pub fn table(&self) -> String {
        let title = crate::bench::bench_title(
            &format!("styleT2I {} (backbone {})", self.preset, self.backbone),
            self.image_size,
            self.batch_size,
            &self.device,
            self.threads,
        );
        let mut s = crate::bench::timing_table(
            &title,
            &[
                ("train step (T2D + A2D)", &self.train_step),
                ("generate batch 1 (CAA)", &self.generate_batch1),
                ("generate batch 1 (--no-caa)", &self.generate_batch1_no_caa),
                ("generate batch 16 (CAA)", &self.generate_batch16),
            ],
        );
        s += &format!("peak memory {:.0} MiB", self.peak_rss_mib);
        s
    }
}

/// Times `rc`'s training step and generation on its backbone (or a random
/// one of the `tiny` backbone's size) with an untrained joint encoder of
/// the run's sizes.
pub fn bench(rc: &StyleT2IRunConfig, device: Device, repeats: usize) -> Result<StyleT2IBench> {
    let paper = rc.preset == "paper";
    let (bb, backbone) = if rc.backbone.is_empty() {
        let config = if paper {
            StyleGan2Config::paper()
        } else {
            StyleGan2Config::tiny()
        };
        let mut vs = nn::VarStore::new(device);
        let g = Generator::new(&vs.root(), &config);
        vs.freeze();
        let w_mean = mean_latent(&g);
        let m = StyleGan2Model {
            config,
            vs,
            g,
            w_mean,
        };
        (m, "random".to_string())
    } else {
        let ck = checkpoint::load(Path::new(&rc.backbone))?;
        (
            StyleGan2Model::from_checkpoint(&ck, device)?,
            rc.backbone.clone(),
        )
    };
    let size = bb.config.size;
    let shapes = Shapes::new(ShapesConfig {
        image_size: size as u32,
        train_size: 256,
        test_size: 64,
        ..ShapesConfig::default()
    })
    .map_err(|e| Error::Config(e.to_string()))?;
    let caps: Vec<String> = (0..64)
        .flat_map(|i| shapes.sample(Split::Train, i).captions)
        .collect();
    let vocab = crate::text::Vocab::build(caps.iter().map(String::as_str), 1);
    // `paper` trains against CLIP ViT-B/32: its vision tower (random
    // weights, the same work) with a sentence encoder of its width
    let clip = crate::text::clip::ClipConfig::vit_b_32();
    let text_config = GruEncoderConfig {
        sentence_dim: if paper {
            clip.projection_dim
        } else {
            GruEncoderConfig::tiny().sentence_dim
        },
        ..GruEncoderConfig::tiny()
    };
    let text = crate::text::GruEncoder::new(text_config, vocab, device);
    let image = if paper {
        ImageSide::Clip(Box::new(ClipVision::random(clip, device)?))
    } else {
        let img_vs = nn::VarStore::new(device);
        let img_enc = JointImageEncoder::new(img_vs.root(), text.config.sentence_dim);
        ImageSide::Joint(img_vs, img_enc)
    };
    let mut rc = rc.clone();
    if rc.attributes.is_empty() {
        rc.attributes = data_attributes("shapes");
    }
    let mut t = StyleT2ITrainer::new(
        rc.clone(),
        bb,
        backbone.clone(),
        AnyTextEncoder::Gru(text),
        image,
        Sentences::Shapes(shapes),
        0,
    );
    let sync = || crate::bench::sync(device);
    let mut failed = None;
    let train_step = time(repeats, 2, || {
        if let Err(e) = t.train_step() {
            failed = Some(e);
        }
        sync();
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let cap = "a large red circle at the top left";
    let draw = |m: &StyleT2IModel, n: usize| {
        let caps = vec![cap; n];
        let r = m.draw(&caps, 0).map(|_| ());
        sync();
        r
    };
    let generate_batch1 = time(repeats * 3, 2, || draw(&t.model, 1).unwrap_or(()));
    let generate_batch16 = time(repeats, 1, || draw(&t.model, 16).unwrap_or(()));
    t.model.caa = false;
    let generate_batch1_no_caa = time(repeats * 3, 2, || draw(&t.model, 1).unwrap_or(()));
    Ok(StyleT2IBench {
        preset: rc.preset.clone(),
        backbone,
        image_size: size,
        batch_size: rc.batch_size,
        device: device_name(device),
        threads: tch::get_num_threads(),
        train_step,
        generate_batch1,
        generate_batch1_no_caa,
        generate_batch16,
        peak_rss_mib: crate::bench::peak_rss_mib(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_attributes_are_read_with_the_captions_synonyms() {
        let known: Vec<String> = shapes_attributes().into_iter().map(|a| a.word).collect();
        let words = |c: &str| {
            let mut w = shapes_attribute_words(c);
            w.sort();
            w.dedup();
            assert!(w.iter().all(|x| known.contains(x)), "{c}: {w:?}");
            w
        };
        assert_eq!(words("two big pyramids at the left"), ["large", "triangle"]);
        assert_eq!(
            words("A Small red disc and a green box"),
            ["circle", "green", "red", "small", "square"]
        );
        assert_eq!(words("a huge one"), ["large"]);
        assert!(words("something over there").is_empty());
    }
}
