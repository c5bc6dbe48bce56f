//! Training the evaluation classifier ([`crate::models::classifier`]) on the
//! classes of a data set's training split: cross-entropy, Adam, random crop
//! and flip; one image in ten of the training split is held out to measure
//! accuracy (the test split is never used: its classes differ and it is for
//! evaluation only).

use super::optim::Adam;
use crate::checkpoint::{self, Checkpoint};
use crate::data::images::{CaptionedImages, LoadOptions};
use crate::data::prepare::ImageBatcher;
use crate::data::DataConfig;
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::family::{FamilyConfig, Metrics, Summary, TrainContext, Trainer, TypedFamily};
use crate::models::classifier::{Classifier, ClassifierConfig};
use crate::versions;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// A trained classifier with the data-set class id of each output.
pub struct ClassifierModel {
    pub config: ClassifierConfig,
    pub vs: nn::VarStore,
    pub net: Classifier,
    /// Data-set class id (e.g. CUB's 1-based id) of each logit.
    pub class_ids: Vec<i64>,
    /// Held-out accuracy when it was saved.
    pub val_accuracy: f64,
    /// Where it came from (path of the checkpoint, once loaded).
    pub source: String,
}

impl ClassifierModel {
    pub fn new(mut config: ClassifierConfig, class_ids: Vec<i64>, device: Device) -> Self {
        config.classes = class_ids.len() as i64;
        let vs = nn::VarStore::new(device);
        let net = Classifier::new(vs.root(), &config);
        Self {
            config,
            vs,
            net,
            class_ids,
            val_accuracy: f64::NAN,
            source: String::new(),
        }
    }

    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        ck.expect_model("classifier")?;
        let config: ClassifierConfig = ck.json_meta("config")?;
        let class_ids: Vec<i64> = ck.json_meta("class_ids")?;
        let mut m = Self::new(config, class_ids, device);
        ck.load_into(&mut m.vs, "net")?;
        m.val_accuracy = ck
            .meta("val_accuracy")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        Ok(m)
    }

    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let mut m = Self::from_checkpoint(&checkpoint::load(path)?, device)?;
        m.source = path.display().to_string();
        Ok(m)
    }

    /// A short name for reports: `t2i-classifier(<file>, N classes)`.
    pub fn label(&self) -> String {
        let file = Path::new(&self.source)
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        format!("t2i-classifier({file}, {} classes)", self.class_ids.len())
    }

    /// Pooled features (f64) and class probabilities (f64) of images in
    /// [-1, 1] of any size, resized to the classifier's input bilinearly, in
    /// batches of `batch`. `[n, feature_dim]`, `[n, classes]`
    pub fn features(&self, images: &Tensor, batch: i64) -> (Tensor, Tensor) {
        let dev = self.vs.device();
        let s = self.config.image_size;
        let n = images.size()[0];
        let (mut pools, mut probs) = (Vec::new(), Vec::new());
        tch::no_grad(|| {
            for start in (0..n).step_by(batch.max(1) as usize) {
                let len = batch.min(n - start);
                let x = images
                    .narrow(0, start, len)
                    .to_device(dev)
                    .to_kind(Kind::Float);
                let x = if x.size()[2] != s || x.size()[3] != s {
                    x.upsample_bilinear2d([s, s], false, None, None)
                } else {
                    x
                };
                let o = self.net.forward_t(&x, false);
                pools.push(o.pool.to_kind(Kind::Double).to_device(Device::Cpu));
                probs.push(o.logits.softmax(1, Kind::Double).to_device(Device::Cpu));
            }
        });
        (Tensor::cat(&pools, 0), Tensor::cat(&probs, 0))
    }

    /// Writes the weights, config and class ids.
    pub fn save(&self, path: &Path, step: i64, extra: &[(String, Tensor)]) -> Result<()> {
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("model".to_string(), "classifier".to_string());
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.config).map_err(|e| Error::Config(e.to_string()))?,
        );
        meta.insert(
            "class_ids".into(),
            serde_json::to_string(&self.class_ids).map_err(|e| Error::Config(e.to_string()))?,
        );
        meta.insert("val_accuracy".into(), self.val_accuracy.to_string());
        meta.insert("step".into(), step.to_string());
        meta.insert("versions".into(), versions());
        meta.insert("device".into(), device_name(self.vs.device()));
        let mut tensors = checkpoint::named(&self.vs, "net");
        tensors.extend(extra.iter().map(|(n, t)| (n.clone(), t.shallow_clone())));
        checkpoint::save(path, &meta, &tensors)
    }
}

/// Losses of one step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClassifierStats {
    pub step: i64,
    pub loss: f64,
    /// Accuracy on the step's (augmented) batch.
    pub batch_accuracy: f64,
}

/// The classifier, its optimiser and the training images.
pub struct ClassifierTrainer {
    pub model: ClassifierModel,
    pub opt: Adam,
    pub step: i64,
    pub seed: u64,
    pub batch_size: usize,
    /// Stored-image indices used for training and held out.
    pub train_idx: Vec<usize>,
    pub val_idx: Vec<usize>,
    /// Output index of each stored image.
    targets: Vec<i64>,
}

impl ClassifierTrainer {
    /// Holds out every tenth image (in a seeded order) of `data`.
    pub fn new(
        config: ClassifierConfig,
        data: &CaptionedImages,
        lr: f64,
        batch_size: usize,
        seed: u64,
        device: Device,
    ) -> Self {
        let mut ids: Vec<i64> = data.classes.clone();
        ids.sort_unstable();
        ids.dedup();
        let targets = data
            .classes
            .iter()
            .map(|c| ids.binary_search(c).unwrap_or(0) as i64)
            .collect();
        tch::manual_seed(seed as i64);
        let model = ClassifierModel::new(config, ids, device);
        let opt = Adam::new(&model.vs, lr, 0.9, 0.999);
        let mut order: Vec<usize> = (0..data.classes.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5E1));
        let (val_idx, train_idx): (Vec<usize>, Vec<usize>) =
            order
                .into_iter()
                .enumerate()
                .fold((vec![], vec![]), |mut acc, (k, i)| {
                    if k % 10 == 0 {
                        acc.0.push(i);
                    } else {
                        acc.1.push(i);
                    }
                    acc
                });
        Self {
            model,
            opt,
            step: 0,
            seed,
            batch_size,
            train_idx,
            val_idx,
            targets,
        }
    }

    /// One Adam step on a random batch of the training images.
    pub fn train_step(&mut self, images: &ImageBatcher) -> ClassifierStats {
        let mut rng = ImageBatcher::rng(self.seed, self.step);
        let idx: Vec<usize> = self
            .train_idx
            .choose_multiple(&mut rng, self.batch_size)
            .copied()
            .collect();
        let dev = self.model.vs.device();
        let x = images.batch(&idx, &mut rng, dev).pop().expect("one size"); // [b, 3, s, s]
        let y = Tensor::from_slice(&idx.iter().map(|&i| self.targets[i]).collect::<Vec<_>>())
            .to_device(dev);
        let logits = self.model.net.forward_t(&x, true).logits;
        let loss = logits.cross_entropy_for_logits(&y);
        self.opt.zero_grad();
        loss.backward();
        self.opt.step();
        self.step += 1;
        let acc = logits
            .argmax(1, false)
            .eq_tensor(&y)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        ClassifierStats {
            step: self.step,
            loss: loss.double_value(&[]),
            batch_accuracy: acc.double_value(&[]),
        }
    }

    /// Top-1 accuracy on the held-out images (centre crops).
    pub fn val_accuracy(&self, images: &ImageBatcher) -> f64 {
        let dev = self.model.vs.device();
        let mut rng = ImageBatcher::rng(0, 0);
        let mut right = 0i64;
        tch::no_grad(|| {
            for chunk in self.val_idx.chunks(200) {
                let x = images
                    .batch_aug(chunk, &mut rng, dev, false)
                    .pop()
                    .expect("one size");
                let y =
                    Tensor::from_slice(&chunk.iter().map(|&i| self.targets[i]).collect::<Vec<_>>())
                        .to_device(dev);
                let pred = self.model.net.forward_t(&x, false).logits.argmax(1, false);
                right += pred.eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
            }
        });
        right as f64 / self.val_idx.len().max(1) as f64
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut extra = self.opt.state("optim");
        extra.push(("seed".into(), Tensor::from_slice(&[self.seed as i64])));
        self.model.save(path, self.step, &extra)
    }

    /// Restores weights, optimiser and step from a checkpoint of this trainer.
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.load_into(&mut self.model.vs, "net")?;
        self.opt
            .load_state("optim", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        self.step = ck
            .meta("step")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad step".into()))?;
        Ok(())
    }
}

/// `t2i train --model classifier`: the network and its optimiser.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ClassifierRunConfig {
    /// The network (saved in every checkpoint).
    #[serde(flatten)]
    pub model: ClassifierConfig,
    /// Adam learning rate.
    pub lr: f64,
    /// Images per step.
    pub batch_size: usize,
    /// Held-out accuracy every this many steps.
    pub eval_every: i64,
    /// The data set (in the CUB layout).
    pub data: DataConfig,
}

impl FamilyConfig for ClassifierRunConfig {
    fn preset(name: &str) -> Option<Self> {
        (name == "tiny").then(|| Self {
            model: ClassifierConfig::tiny(),
            lr: 1e-3,
            batch_size: 64,
            eval_every: 1000,
            data: DataConfig::cub(),
        })
    }
    fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate(&["cub"]).map_err(|e| {
            format!("{e}; the classifier trains on a real data set: --data cub --data-root DIR")
        })?;
        if !(8..=256).contains(&self.model.width) {
            return Err(format!(
                "width must be in 8..=256, got {}",
                self.model.width
            ));
        }
        crate::family::check_batch_size(self.batch_size as i64)?;
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return Err(format!("lr must be in (0, 1), got {}", self.lr));
        }
        Ok(())
    }
}

/// The family entry of the evaluation classifier.
pub struct ClassifierFamily;

impl TypedFamily for ClassifierFamily {
    type Config = ClassifierRunConfig;
    const NAME: &'static str = "classifier";
    const ABOUT: &'static str = "evaluation classifier of the training classes (IS/FID/KID features without Inception weights)";
    const PRESETS: &'static [&'static str] = &["tiny"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        match flag {
            "lr" => &["lr"],
            "batch_size" => &["batch_size"],
            "ndf" => &["width"],
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
        let train = ctx.load_cub(
            rc.data.root(),
            crate::data::cub::CubSplit::Train,
            &LoadOptions {
                augment: true,
                ..ctx.loading(rc.model.image_size)
            },
        )?;
        let mut t =
            ClassifierTrainer::new(rc.model, &train, rc.lr, rc.batch_size, ctx.seed, ctx.device);
        if let Some(ck) = resume {
            t.restore(ck)?;
        }
        Ok(Box::new(ClassifierRun {
            t,
            images: train.images,
            eval_every: rc.eval_every,
        }))
    }
}

/// A classifier run.
struct ClassifierRun {
    t: ClassifierTrainer,
    images: ImageBatcher,
    eval_every: i64,
}

impl Trainer for ClassifierRun {
    fn step(&self) -> i64 {
        self.t.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        let s = self.t.train_step(&self.images);
        Ok(vec![
            ("loss".into(), s.loss),
            ("batch_accuracy".into(), s.batch_accuracy),
        ])
    }
    fn lr(&self) -> f64 {
        self.t.opt.lr
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.t.save(path)
    }
    fn eval_every(&self) -> i64 {
        self.eval_every
    }
    fn evaluate(&mut self) -> Result<Metrics> {
        let a = self.t.val_accuracy(&self.images);
        self.t.model.val_accuracy = a;
        Ok(vec![("val_accuracy".into(), a)])
    }
    fn finish(&mut self, ctx: &TrainContext, interrupted: bool, _: usize) -> Result<Summary> {
        if interrupted {
            return Ok(Summary::default());
        }
        let a = self.t.val_accuracy(&self.images);
        self.t.model.val_accuracy = a;
        self.t.save(&ctx.run.last_checkpoint())?;
        let k = self.t.model.class_ids.len();
        let line = format!(
            "held-out accuracy {:.2}% over {} images of {k} classes (chance {:.2}%)",
            100.0 * a,
            self.t.val_idx.len(),
            100.0 / k.max(1) as f64
        );
        let value = serde_json::json!({
            "steps": self.t.step,
            "val_accuracy": a,
            "held_out_images": self.t.val_idx.len(),
            "classes": k,
        });
        Ok(Summary {
            value,
            lines: vec![line],
        })
    }
}
