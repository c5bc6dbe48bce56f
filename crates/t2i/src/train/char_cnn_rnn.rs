//! Training the char-CNN-RNN with the deep symmetric structured joint
//! embedding (Reed et al., CVPR 2016, sec. 3): compatibility
//! F(v, t) = theta(v)^T phi(t) between an image encoder theta (a CNN here;
//! GoogLeNet features in the paper) and the text encoder phi, and hinge
//! losses that classify each image by the texts of the minibatch's classes
//! and each text by their images ([`sje_loss`]). Each minibatch holds one
//! image of each of `batch` distinct training classes, with one of its
//! captions. Measured by zero-shot classification of images of unseen
//! classes against each class's mean text embedding (the paper's protocol).

use super::checkpoint::Checkpoint;
use super::damsm::CaptionedImages;
use super::optim::Adam;
use super::run::{versions, RunDir, StopFlag};
use crate::data::prepare::ImageBatcher;
use crate::error::{Error, Result};
use crate::models::classifier::{Classifier, ClassifierConfig};
use crate::text::char_cnn_rnn::{CharCnnRnn, CharCnnRnnConfig};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
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
#[derive(Debug, Clone, Serialize)]
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
        let mut tensors = super::checkpoint::named(&self.text.vs, "text");
        tensors.extend(super::checkpoint::named(&self.image_vs, "image"));
        tensors.extend(self.opt_text.state("optim.text"));
        tensors.extend(self.opt_image.state("optim.image"));
        super::checkpoint::save(path, &meta, &tensors)
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

/// What a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct CharReport {
    pub steps: i64,
    pub seconds: f64,
    pub interrupted: bool,
    pub last: Option<CharStats>,
    /// Zero-shot top-1 on the test split's (unseen) classes, and how many.
    pub zero_shot: Option<(f64, usize)>,
}

/// Trains until `steps` or `max_seconds`; every `eval_every` steps logs the
/// zero-shot accuracy on `test` and checkpoints.
#[allow(clippy::too_many_arguments)]
pub fn char_run(
    t: &mut CharTrainer,
    train: &CaptionedImages,
    test: Option<&CaptionedImages>,
    run: &RunDir,
    steps: i64,
    max_seconds: u64,
    eval_every: i64,
    progress: bool,
    stop: &StopFlag,
) -> Result<CharReport> {
    let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &c) in train.classes.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let start = Instant::now();
    let pb = crate::progress::bar(steps as u64, "char-cnn-rnn", progress);
    pb.set_position(t.step as u64);
    let (mut last, mut interrupted) = (None, false);
    while t.step < steps {
        if stop.is_set() {
            interrupted = true;
            break;
        }
        if max_seconds > 0 && start.elapsed().as_secs() >= max_seconds {
            break;
        }
        let s = t.train_step(train, &by_class)?;
        if !s.loss.is_finite() {
            return Err(Error::Config(format!(
                "loss became non-finite at step {}",
                s.step
            )));
        }
        pb.set_message(format!("loss {:.3}", s.loss));
        pb.inc(1);
        let mut v = serde_json::to_value(s).unwrap_or_default();
        v["time"] = serde_json::json!(start.elapsed().as_secs_f64());
        if eval_every > 0 && s.step % eval_every == 0 {
            if let Some(test) = test {
                let (a, k) = t.zero_shot_accuracy(test, 2000)?;
                v["zero_shot_top1"] = serde_json::json!(a);
                v["zero_shot_classes"] = serde_json::json!(k);
            }
            t.save(&run.checkpoint(s.step))?;
            t.save(&run.last_checkpoint())?;
        }
        if s.step % 20 == 0 || v.get("zero_shot_top1").is_some() {
            run.log_metrics(&v)?;
        }
        last = Some(s);
    }
    pb.finish_and_clear();
    t.save(&run.last_checkpoint())?;
    let zero_shot = match test {
        Some(test) if !interrupted => Some(t.zero_shot_accuracy(test, usize::MAX)?),
        _ => None,
    };
    Ok(CharReport {
        steps: t.step,
        seconds: start.elapsed().as_secs_f64(),
        interrupted,
        last,
        zero_shot,
    })
}
