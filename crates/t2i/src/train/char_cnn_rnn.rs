//! Training the char-CNN-RNN with the deep symmetric structured joint
//! embedding (Reed et al., CVPR 2016, sec. 3): compatibility
//! F(v, t) = theta(v)^T phi(t) between an image encoder theta (a CNN here;
//! GoogLeNet features in the paper) and the text encoder phi, and hinge
//! losses that classify each image by the texts of the minibatch's classes
//! and each text by their images ([`sje_loss`]). Each minibatch holds one
//! image of each of `batch` distinct training classes, with one of its
//! captions. Measured by zero-shot classification of images of unseen
//! classes against each class's mean text embedding (the paper's protocol).

use super::optim::Adam;
use crate::checkpoint::Checkpoint;
use crate::data::images::{CaptionedImages, LoadOptions};
use crate::data::prepare::ImageBatcher;
use crate::data::DataConfig;
use crate::error::{Error, Result};
use crate::family::{FamilyConfig, Metrics, Summary, TrainContext, Trainer, TypedFamily};
use crate::models::classifier::{Classifier, ClassifierConfig};
use crate::text::char_cnn_rnn::{CharCnnRnn, CharCnnRnnConfig};
use crate::versions;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Symmetric structured joint embedding loss of a score matrix
/// `s[i, j] = F(v_i, t_j)` whose diagonal pairs match (distinct classes):
/// `mean_i sum_{j != i} max(0, 1 + s[i, j] - s[i, i]) / (n - 1)` for images
/// (rows) plus the same for texts (columns), the 0-1 label loss of the
/// structured SVM as margin.
pub fn sje_loss(s: &Tensor) -> Tensor {
    let n = s.size()[0];
    let diag = s.diagonal(0, 0, 1); // [n]
    let off =
        Tensor::ones([n, n], (Kind::Float, s.device())) - Tensor::eye(n, (Kind::Float, s.device()));
    let img = (s - diag.unsqueeze(1) + 1.0).relu() * &off; // image i against text j
    let txt = (s - diag.unsqueeze(0) + 1.0).relu() * &off; // text j against image i
    let denom = (n * (n - 1)).max(1) as f64;
    (img.sum(Kind::Float) + txt.sum(Kind::Float)) / denom
}

/// Settings of a char-CNN-RNN run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CharTrainConfig {
    pub text: CharCnnRnnConfig,
    /// Image encoder theta: the evaluation classifier's CNN with a linear
    /// layer to the embedding size.
    pub image: ClassifierConfig,
    /// Distinct classes per minibatch.
    pub batch: usize,
    pub lr: f64,
}

impl CharTrainConfig {
    pub fn tiny() -> Self {
        let text = CharCnnRnnConfig::tiny();
        Self {
            image: ClassifierConfig {
                classes: text.embed_dim,
                dropout: 0.0,
                ..ClassifierConfig::tiny()
            },
            text,
            batch: 40,
            lr: 1e-3,
        }
    }
}

/// One step's figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CharStats {
    pub step: i64,
    pub loss: f64,
}

/// Both encoders and their optimisers.
pub struct CharTrainer {
    pub config: CharTrainConfig,
    pub text: CharCnnRnn,
    pub image_vs: nn::VarStore,
    pub image: Classifier,
    opt_text: Adam,
    opt_image: Adam,
    pub step: i64,
    pub seed: u64,
}

impl CharTrainer {
    pub fn new(config: CharTrainConfig, seed: u64, device: Device) -> Self {
        tch::manual_seed(seed as i64);
        let text = CharCnnRnn::new(config.text.clone(), device);
        let image_vs = nn::VarStore::new(device);
        let image = Classifier::new(image_vs.root(), &config.image);
        let opt_text = Adam::new(&text.vs, config.lr, 0.9, 0.999);
        let opt_image = Adam::new(&image_vs, config.lr, 0.9, 0.999);
        Self {
            config,
            text,
            image_vs,
            image,
            opt_text,
            opt_image,
            step: 0,
            seed,
        }
    }

    /// One step on `batch` distinct classes of `data` (one image and one of
    /// its captions each).
    pub fn train_step(
        &mut self,
        data: &CaptionedImages,
        by_class: &BTreeMap<i64, Vec<usize>>,
    ) -> Result<CharStats> {
        let mut rng = ImageBatcher::rng(self.seed, self.step);
        let classes: Vec<&Vec<usize>> = by_class.values().collect();
        let picked: Vec<&&Vec<usize>> = classes
            .choose_multiple(&mut rng, self.config.batch)
            .collect();
        let idx: Vec<usize> = picked
            .iter()
            .map(|v| v[rng.gen_range(0..v.len())])
            .collect();
        let caps: Vec<&str> = idx
            .iter()
            .map(|&i| data.captions[i][rng.gen_range(0..data.captions[i].len())].as_str())
            .collect();
        let dev = self.image_vs.device();
        let x = data
            .images
            .batch(&idx, &mut rng, dev)
            .pop()
            .expect("one size");
        let v = self.image.forward_t(&x, true).logits; // theta(v) [b, embed]
        let t = self.text.embed_train(&caps)?; // phi(t) [b, embed]
        let loss = sje_loss(&v.matmul(&t.tr()));
        self.opt_text.zero_grad();
        self.opt_image.zero_grad();
        loss.backward();
        self.opt_text.step();
        self.opt_image.step();
        self.step += 1;
        Ok(CharStats {
            step: self.step,
            loss: loss.double_value(&[]),
        })
    }

    /// Zero-shot top-1 accuracy (Reed et al. sec. 5): each image of `data`
    /// (centre crop) is given the class whose captions' mean phi(t) scores
    /// highest with theta(v). Returns (accuracy, classes).
    pub fn zero_shot_accuracy(
        &self,
        data: &CaptionedImages,
        max_captions: usize,
    ) -> Result<(f64, usize)> {
        let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &c) in data.classes.iter().enumerate() {
            by_class.entry(c).or_default().push(i);
        }
        let dev = self.image_vs.device();
        let mut protos = Vec::new();
        tch::no_grad(|| -> Result<()> {
            for imgs in by_class.values() {
                let caps: Vec<&str> = imgs
                    .iter()
                    .flat_map(|&i| data.captions[i].iter().map(String::as_str))
                    .take(max_captions)
                    .collect();
                let mut sum = Tensor::zeros([self.config.text.embed_dim], (Kind::Float, dev));
                for chunk in caps.chunks(200) {
                    sum += self
                        .text
                        .embed_train(chunk)?
                        .sum_dim_intlist(0, false, Kind::Float);
                }
                protos.push(sum / caps.len() as f64);
            }
            Ok(())
        })?;
        let protos = Tensor::stack(&protos, 0); // [classes, embed]
        let labels: Vec<i64> = by_class.keys().copied().collect();
        let mut rng = ImageBatcher::rng(0, 0);
        let mut right = 0usize;
        let all: Vec<usize> = (0..data.classes.len()).collect();
        tch::no_grad(|| {
            for chunk in all.chunks(200) {
                let x = data
                    .images
                    .batch_aug(chunk, &mut rng, dev, false)
                    .pop()
                    .expect("one size");
                let pred = self
                    .image
                    .forward_t(&x, false)
                    .logits
                    .matmul(&protos.tr())
                    .argmax(1, false);
                let pred: Vec<i64> =
                    Vec::<i64>::try_from(pred.to_device(Device::Cpu)).unwrap_or_default();
                right += chunk
                    .iter()
                    .zip(pred)
                    .filter(|(&i, p)| labels[*p as usize] == data.classes[i])
                    .count();
            }
        });
        Ok((right as f64 / all.len().max(1) as f64, labels.len()))
    }

    /// Writes both encoders and the optimisers (resumable); the text
    /// encoder alone is what models load (`save_text`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = self.text.describe();
        meta.insert("model".into(), "char-cnn-rnn".into());
        meta.insert(
            "image_config".into(),
            serde_json::to_string(&self.config.image).map_err(|e| Error::Config(e.to_string()))?,
        );
        meta.insert("step".into(), self.step.to_string());
        meta.insert("seed".into(), self.seed.to_string());
        meta.insert("versions".into(), versions());
        let mut tensors = crate::checkpoint::named(&self.text.vs, "text");
        tensors.extend(crate::checkpoint::named(&self.image_vs, "image"));
        tensors.extend(self.opt_text.state("optim.text"));
        tensors.extend(self.opt_image.state("optim.image"));
        crate::checkpoint::save(path, &meta, &tensors)
    }

    /// Restores a checkpoint written by [`CharTrainer::save`].
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.load_into(&mut self.text.vs, "text")?;
        ck.load_into(&mut self.image_vs, "image")?;
        self.opt_text
            .load_state("optim.text", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        self.opt_image
            .load_state("optim.image", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        self.step = ck
            .meta("step")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad step".into()))?;
        Ok(())
    }
}

/// `t2i train --model char-cnn-rnn`: the encoders, the optimiser and the
/// zero-shot evaluation.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CharRunConfig {
    /// Text and image encoders, batch and learning rate.
    #[serde(flatten)]
    pub model: CharTrainConfig,
    /// Zero-shot accuracy on the test split's classes every this many steps.
    pub eval_every: i64,
    /// The data set (in the CUB layout).
    pub data: DataConfig,
}

impl FamilyConfig for CharRunConfig {
    fn preset(name: &str) -> Option<Self> {
        let mut model = CharTrainConfig::tiny();
        model.text = CharCnnRnnConfig::preset(name)?;
        model.image.classes = model.text.embed_dim;
        Some(Self {
            model,
            eval_every: 1000,
            data: DataConfig::cub(),
        })
    }
    fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate(&["cub"]).map_err(|e| {
            format!(
                "{e}; the char-CNN-RNN trains on a captioned image set: --data cub --data-root DIR"
            )
        })?;
        let m = &self.model;
        if m.batch < 2 {
            return Err(format!("batch must be at least 2, got {}", m.batch));
        }
        if !(m.lr > 0.0 && m.lr < 1.0) {
            return Err(format!("lr must be in (0, 1), got {}", m.lr));
        }
        if m.image.classes != m.text.embed_dim {
            return Err(format!(
                "image.classes ({}) must equal text.embed_dim ({}): both sides share one space",
                m.image.classes, m.text.embed_dim
            ));
        }
        Ok(())
    }
}

/// The family entry of the char-CNN-RNN text encoder.
pub struct CharCnnRnnFamily;

impl TypedFamily for CharCnnRnnFamily {
    type Config = CharRunConfig;
    const NAME: &'static str = "char-cnn-rnn";
    const ABOUT: &'static str =
        "char-CNN-RNN text encoder (Reed et al. 2016) with the structured joint embedding loss";
    const PRESETS: &'static [&'static str] = &["tiny", "paper"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        match flag {
            "lr" => &["lr"],
            "batch_size" => &["batch"],
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
    ) -> Result<Box<dyn Trainer>> {
        let size = rc.model.image.image_size;
        let train = ctx.load_cub(
            rc.data.root(),
            crate::data::cub::CubSplit::Train,
            &LoadOptions {
                augment: true,
                ..ctx.loading(size)
            },
        )?;
        let test = ctx.load_cub(
            rc.data.root(),
            crate::data::cub::CubSplit::Test,
            &ctx.loading(size),
        )?;
        let mut t = CharTrainer::new(rc.model, ctx.seed, ctx.device);
        if let Some(ck) = resume {
            t.restore(ck)?;
        }
        let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &c) in train.classes.iter().enumerate() {
            by_class.entry(c).or_default().push(i);
        }
        Ok(Box::new(CharRun {
            t,
            train,
            test,
            by_class,
            eval_every: rc.eval_every,
        }))
    }
}

/// A char-CNN-RNN run.
struct CharRun {
    t: CharTrainer,
    train: CaptionedImages,
    test: CaptionedImages,
    by_class: BTreeMap<i64, Vec<usize>>,
    eval_every: i64,
}

impl Trainer for CharRun {
    fn step(&self) -> i64 {
        self.t.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        let s = self.t.train_step(&self.train, &self.by_class)?;
        Ok(vec![("loss".into(), s.loss)])
    }
    fn lr(&self) -> f64 {
        self.t.config.lr
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.t.save(path)
    }
    fn eval_every(&self) -> i64 {
        self.eval_every
    }
    fn evaluate(&mut self) -> Result<Metrics> {
        let (a, k) = self.t.zero_shot_accuracy(&self.test, 2000)?;
        Ok(vec![
            ("zero_shot_top1".into(), a),
            ("zero_shot_classes".into(), k as f64),
        ])
    }
    fn finish(&mut self, ctx: &TrainContext, interrupted: bool, _: usize) -> Result<Summary> {
        let text_path = ctx.run.root.join("text_encoder.safetensors");
        self.t.text.source = text_path.display().to_string();
        self.t.text.save(&text_path)?;
        let mut lines = vec![format!("text encoder {}", text_path.display())];
        if interrupted {
            return Ok(Summary {
                value: serde_json::Value::Null,
                lines,
            });
        }
        let (acc, k) = self.t.zero_shot_accuracy(&self.test, usize::MAX)?;
        lines.push(format!(
            "zero-shot top-1 on the {k} unseen test classes: {:.2}% (chance {:.2}%)",
            100.0 * acc,
            100.0 / k.max(1) as f64
        ));
        let value = serde_json::json!({"steps": self.t.step, "zero_shot": [acc, k]});
        Ok(Summary { value, lines })
    }
}
