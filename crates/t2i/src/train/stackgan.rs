//! StackGAN training (official `trainer.py`): Stage-I alone, then Stage-II
//! with Stage-I frozen. Each step updates D on real/right, real/wrong and
//! fake/right pairs, then G on D's verdict plus the weighted KL term of
//! Conditioning Augmentation.

use super::embedded::EmbeddedImages;
use super::optim::Adam;
use super::text_encoder::{train_and_save, TextPhase, TextTrainOptions};
use crate::checkpoint::{self, Checkpoint};
use crate::data::images::LoadOptions;
use crate::data::DataConfig;
use crate::error::{Error, Result};
use crate::family::{
    BenchOptions, Controls, FamilyConfig, Generated, Generator, ImportRequest, Metrics, ParamRow,
    Summary, TrainContext, Trainer, TypedFamily,
};
use crate::imageio::{grid, tensor_to_images};
use crate::models::stackgan::{
    discriminator_loss, generator_loss, kl, Discriminator, StackGanConfig, StackGanModel,
};
use crate::rng::{normal, step_seed};
use crate::text::{AnyTextEncoder, TextEncoder};
use serde::Serialize;
use std::path::Path;
use tch::{nn, Device, Tensor};

/// Losses of one step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StackGanStats {
    pub step: i64,
    pub loss_d: f64,
    pub loss_g: f64,
    pub kl: f64,
    pub d_real: f64,
    pub d_wrong: f64,
    pub d_fake: f64,
}

/// G, D and their optimisers.
pub struct StackGanTrainer {
    pub model: StackGanModel,
    pub d_vs: nn::VarStore,
    pub d: Discriminator,
    pub(crate) opt_g: Adam,
    opt_d: Adam,
    pub step: i64,
    pub seed: u64,
}

impl StackGanTrainer {
    /// A new trainer; for Stage-II, `stage1` holds the trained Stage-I
    /// checkpoint, whose generator is loaded and frozen.
    pub fn new(model: StackGanModel, stage1: Option<&Checkpoint>, seed: u64) -> Result<Self> {
        let c = model.config.clone();
        let d_vs = nn::VarStore::new(model.device);
        let d = if model.stage == 1 {
            Discriminator::stage1(d_vs.root(), &c)
        } else {
            Discriminator::stage2(d_vs.root(), &c)
        };
        if model.stage == 2 {
            let ck = stage1.ok_or_else(|| {
                Error::Config("Stage-II training needs a trained Stage-I run".into())
            })?;
            if ck.meta("model")? != "stackgan" || ck.meta("stage")? != "1" {
                return Err(Error::Config(
                    "--stage1 must name a Stage-I StackGAN run".into(),
                ));
            }
            // load Stage-I into STAGE1_G.* and freeze it
            let vars = model.g_vs.variables();
            tch::no_grad(|| -> Result<()> {
                for (k, v) in &vars {
                    let Some(rest) = k.strip_prefix("STAGE1_G.") else {
                        continue;
                    };
                    let key = format!("G.{rest}");
                    let src = ck.tensors.get(&key).ok_or_else(|| {
                        Error::Checkpoint(format!("Stage-I checkpoint lacks {key}"))
                    })?;
                    if src.size() != v.size() {
                        return Err(Error::Checkpoint(format!(
                            "Stage-I tensor {key} has shape {:?}, Stage-II expects {:?} (same preset needed)",
                            src.size(),
                            v.size()
                        )));
                    }
                    v.shallow_clone()
                        .copy_(&src.to_kind(v.kind()).to_device(v.device()));
                    if v.is_floating_point() {
                        let _ = v.shallow_clone().set_requires_grad(false);
                    }
                }
                Ok(())
            })?;
        }
        let opt_g = Adam::new(&model.g_vs, c.lr_g, c.beta1, 0.999);
        let opt_d = Adam::new(&d_vs, c.lr_d, c.beta1, 0.999);
        Ok(Self {
            model,
            d_vs,
            d,
            opt_g,
            opt_d,
            step: 0,
            seed,
        })
    }

    fn size(&self) -> i64 {
        let c = &self.model.config;
        if self.model.stage == 1 {
            c.stage1_size
        } else {
            c.stage2_size
        }
    }

    /// One step: D, then G (+ KL).
    pub fn train_step(&mut self, data: &EmbeddedImages) -> StackGanStats {
        let c = self.model.config.clone();
        let lr_scale = 0.5f64.powi((self.step / c.lr_decay_every.max(1)) as i32);
        self.opt_g.lr = c.lr_g * lr_scale;
        self.opt_d.lr = c.lr_d * lr_scale;
        let dev = self.model.device;
        let b = c.batch_size;
        let (mut imgs, emb) = data.batch(self.seed, self.step, b, &[self.size()], dev);
        let real = imgs.pop().expect("one size");
        let seed = step_seed(self.seed ^ 0x57AC, self.step);
        let z = normal(b, c.z_dim, seed, dev);
        let out = self.model.forward(&emb, &z, Some(seed), true);
        let (err_d, err_real, err_wrong, err_fake) =
            discriminator_loss(&self.d, &real, &out.image, &out.mu, true);
        self.opt_d.zero_grad();
        err_d.backward();
        self.opt_d.step();
        let err_g = generator_loss(&self.d, &out.image, &out.mu, true);
        let kl_t = kl(&out.mu, &out.logvar);
        let total = &err_g + &kl_t * c.kl_coeff;
        self.opt_g.zero_grad();
        self.opt_g.backward(&total);
        self.opt_g.step();
        self.step += 1;
        StackGanStats {
            step: self.step,
            loss_d: err_d.double_value(&[]),
            loss_g: err_g.double_value(&[]),
            kl: kl_t.double_value(&[]),
            // geometric-mean probabilities D gave each kind of pair
            d_real: (-err_real.double_value(&[])).exp(),
            d_wrong: 1.0 - (-err_wrong.double_value(&[])).exp(),
            d_fake: 1.0 - (-err_fake.double_value(&[])).exp(),
        }
    }

    /// Writes G, D, the optimisers, config, stage and the text encoder.
    pub fn save(&self, path: &Path) -> Result<()> {
        let m = &self.model;
        let mut meta = m.meta()?;
        meta.insert("step".into(), self.step.to_string());
        meta.insert("seed".into(), self.seed.to_string());
        let mut tensors = checkpoint::named(&m.g_vs, "G");
        tensors.extend(checkpoint::named(&self.d_vs, "D"));
        tensors.extend(m.encoder.tensors());
        tensors.extend(self.opt_g.state("optim.G"));
        tensors.extend(self.opt_d.state("optim.D"));
        checkpoint::save(path, &meta, &tensors)
    }

    /// Restores D, the optimisers and the step (resume).
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.load_into(&mut self.d_vs, "D")?;
        ck.load_into(&mut self.model.g_vs, "G")?;
        self.opt_g
            .load_state("optim.G", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        self.opt_d
            .load_state("optim.D", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        self.step = ck
            .meta("step")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad step".into()))?;
        Ok(())
    }

    /// A grid: one row per caption, `cols` noise vectors; a Stage-II model
    /// shows each Stage-I image (upsampled) left of its Stage-II image.
    pub fn sample_grid(&self, captions: &[String], cols: i64) -> Result<crate::imageio::Rgb> {
        sample_grid(&self.model, captions, cols)
    }
}

/// See [`StackGanTrainer::sample_grid`].
pub fn sample_grid(
    m: &StackGanModel,
    captions: &[String],
    cols: i64,
) -> Result<crate::imageio::Rgb> {
    let mut rows = Vec::new();
    let z = normal(cols, m.config.z_dim, 1234, m.device);
    for cap in captions {
        let (h, _) = m.embed(&[cap.as_str()])?;
        let o = tch::no_grad(|| m.forward(&h.repeat([cols, 1]), &z, None, false));
        let x = match &o.stage1 {
            Some(s1) => {
                let s = o.image.size()[2];
                let up = s1.upsample_nearest2d([s, s], None, None);
                Tensor::stack(&[up, o.image.shallow_clone()], 1).view([2 * cols, 3, s, s])
            }
            None => o.image,
        };
        rows.push((tensor_to_images(&x), Some(cap.clone())));
    }
    Ok(grid(&rows, 2))
}

/// `t2i train --model stackgan`: the networks, the stage and its data.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StackGanRunConfig {
    /// The networks and the optimiser (saved in every checkpoint).
    #[serde(flatten)]
    pub model: StackGanConfig,
    /// The stage this run trains (1 or 2).
    pub stage: u8,
    /// Stage-II: the trained Stage-I run folder or checkpoint (frozen).
    pub stage1: String,
    /// The data set.
    pub data: DataConfig,
    /// The text encoder (shapes: trained first unless given; CUB: given).
    pub text: TextPhase,
}

impl FamilyConfig for StackGanRunConfig {
    fn preset(name: &str) -> Option<Self> {
        Some(Self {
            model: StackGanConfig::preset(name)?,
            stage: 1,
            stage1: String::new(),
            data: DataConfig::shapes(10_000),
            text: TextPhase {
                encoder: String::new(),
                steps: 800,
                hard: 0.0,
            },
        })
    }
    fn validate(&self) -> std::result::Result<(), String> {
        let m = &self.model;
        m.validate()?;
        if !(1..=2).contains(&self.stage) {
            return Err(format!("stage must be 1 or 2, got {}", self.stage));
        }
        if self.stage == 2 && self.stage1.is_empty() {
            return Err(
                "--stage 2 needs --stage1 RUN (a trained Stage-I run folder or checkpoint)".into(),
            );
        }
        if self.data.name == "cub" && self.stage == 1 && self.text.encoder.is_empty() {
            return Err(
                "--data cub needs --text-encoder (e.g. a DAMSM run's text_encoder.safetensors)"
                    .into(),
            );
        }
        self.data.validate(&["shapes", "cub"])?;
        crate::family::check_batch_size(m.batch_size)?;
        for (name, lr) in [("lr_g", m.lr_g), ("lr_d", m.lr_d)] {
            if !(lr > 0.0 && lr < 1.0) {
                return Err(format!("{name} must be in (0, 1), got {lr}"));
            }
        }
        Ok(())
    }
}

/// The family entry of StackGAN.
pub struct StackGanFamily;

impl TypedFamily for StackGanFamily {
    type Config = StackGanRunConfig;
    const NAME: &'static str = "stackgan";
    const ABOUT: &'static str =
        "StackGAN (Zhang et al. 2017): Conditioning Augmentation, Stage-I, Stage-II";
    const PRESETS: &'static [&'static str] = &["tiny", "paper", "paper128"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        match flag {
            "lr" => &["lr_g", "lr_d"],
            "batch_size" => &["batch_size"],
            "stage" => &["stage"],
            "stage1" => &["stage1"],
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
        rc: Self::Config,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn Trainer>> {
        let device = ctx.device;
        let mut config = rc.model.clone();
        let stage1_ck = if rc.stage == 2 {
            let p = checkpoint::checkpoint_file(Path::new(&rc.stage1))?;
            let ck = checkpoint::load(&p)?;
            let c1: StackGanConfig = ck.json_meta("config")?;
            if c1.preset != config.preset {
                return Err(Error::Config(format!(
                    "the Stage-I run used the {} preset: train Stage-II with --preset {}",
                    c1.preset, c1.preset
                )));
            }
            Some(ck)
        } else {
            None
        };
        let shapes_cfg = crate::data::shapes::ShapesConfig {
            image_size: config.stage2_size as u32,
            train_size: rc.data.train_size,
            partial_captions: rc.data.partial_captions,
            seed: ctx.seed,
            ..Default::default()
        };
        let encoder = match (&stage1_ck, rc.text.encoder.as_str()) {
            (Some(ck), _) => AnyTextEncoder::from_checkpoint(ck, device)?,
            (None, p) if !p.is_empty() => AnyTextEncoder::load(Path::new(p), device)?,
            (None, _) if resume.is_some() => {
                AnyTextEncoder::from_checkpoint(resume.expect("checked"), device)?
            }
            (None, _) => {
                let shapes = crate::data::shapes::Shapes::new(shapes_cfg.clone())?;
                let topts = TextTrainOptions {
                    steps: rc.text.steps,
                    seed: ctx.seed,
                    hard_fraction: rc.text.hard,
                    progress: ctx.progress,
                    ..Default::default()
                };
                let path = ctx.run.root.join("text_encoder.safetensors");
                let enc = crate::text::GruEncoderConfig::tiny();
                let t = train_and_save(&shapes, enc, &topts, device, &path)?;
                if ctx.progress {
                    eprintln!(
                        "text encoder: held-in test retrieval {:.1}% -> {}",
                        100.0 * t.test_retrieval,
                        path.display()
                    );
                }
                AnyTextEncoder::Gru(t.encoder)
            }
        };
        config.text_dim = encoder.sentence_dim();
        let (data, sample_captions) = if rc.data.name == "shapes" {
            use crate::data::shapes::{Shapes, Split};
            let shapes = Shapes::new(shapes_cfg.clone())?;
            let d = EmbeddedImages::shapes(&shapes, Split::Train, &encoder, device)?;
            let sc = (0..6)
                .map(|i| shapes.sample(Split::Test, i).captions[0].clone())
                .collect();
            (d, sc)
        } else {
            let root = rc.data.root();
            let cap = ctx.load_cub(
                root,
                crate::data::cub::CubSplit::Train,
                &LoadOptions {
                    augment: true,
                    ..ctx.loading(config.stage2_size)
                },
            )?;
            let d = EmbeddedImages::crops(cap, &encoder, device)?;
            (d, crate::data::images::test_captions(root, 6)?)
        };
        let model = StackGanModel::new(config, rc.stage, encoder, device);
        let mut t = StackGanTrainer::new(model, stage1_ck.as_ref(), ctx.seed)?;
        if let Some(ck) = resume {
            t.restore(ck)?;
        }
        let shapes = (rc.data.name == "shapes").then_some(shapes_cfg);
        Ok(Box::new(StackGanRun {
            t,
            data,
            sample_captions,
            shapes,
        }))
    }
    fn generator(&self, ck: &Checkpoint, device: Device) -> Result<Box<dyn Generator>> {
        Ok(Box::new(StackGanModel::from_checkpoint(ck, device)?))
    }
    fn parameter_counts(&self, config: &Self::Config) -> Result<(String, Vec<ParamRow>)> {
        let c = &config.model;
        let head = format!(
            "stackgan ({} preset, Stage-I {}x{}, Stage-II {}x{}; STAGE2_G holds the frozen STAGE1_G)",
            c.preset, c.stage1_size, c.stage1_size, c.stage2_size, c.stage2_size
        );
        Ok((head, crate::bench::stackgan_parameter_counts(c)))
    }
    fn bench(
        &self,
        config: &Self::Config,
        opts: &BenchOptions,
    ) -> Result<Vec<(serde_json::Value, String)>> {
        let c = &config.model;
        let mut out = Vec::new();
        let stages = opts.stage.map_or(vec![1u8, 2], |s| vec![s]);
        for stage in stages {
            let r = crate::bench::bench_stackgan(c, stage, opts.device, opts.repeats)?;
            let v = serde_json::to_value(&r).map_err(|e| Error::Config(e.to_string()))?;
            out.push((v, r.table()));
        }
        Ok(out)
    }
    fn import(&self, req: &ImportRequest) -> Result<String> {
        let m = crate::import::import_stackgan(
            req.weights,
            req.text_encoder("stackgan")?,
            Device::Cpu,
        )?;
        m.save(req.out, 0)?;
        Ok(format!(
            "imported StackGAN Stage-{} G ({}) -> {}",
            if m.stage == 1 { "I" } else { "II" },
            m.config.preset,
            req.out.display()
        ))
    }
}

/// A StackGAN run: the trainer, its data and sample captions.
struct StackGanRun {
    t: StackGanTrainer,
    data: EmbeddedImages,
    sample_captions: Vec<String>,
    /// The shapes data set trained on (scored at the end), if shapes.
    shapes: Option<crate::data::shapes::ShapesConfig>,
}

impl Trainer for StackGanRun {
    fn step(&self) -> i64 {
        self.t.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        let s = self.t.train_step(&self.data);
        Ok(vec![
            ("loss_d".into(), s.loss_d),
            ("loss_g".into(), s.loss_g),
            ("kl".into(), s.kl),
            ("d_real".into(), s.d_real),
            ("d_wrong".into(), s.d_wrong),
            ("d_fake".into(), s.d_fake),
        ])
    }
    fn lr(&self) -> f64 {
        self.t.opt_g.lr
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.t.save(path)
    }
    fn sample_grid(&self) -> Result<Option<crate::imageio::Rgb>> {
        Ok(Some(self.t.sample_grid(&self.sample_captions, 6)?))
    }
    fn finish(
        &mut self,
        _ctx: &TrainContext,
        interrupted: bool,
        eval_samples: usize,
    ) -> Result<Summary> {
        match &self.shapes {
            Some(data) if !interrupted && eval_samples > 0 => {
                let value = crate::eval::shapes::evaluate(&self.t.model, data, eval_samples, 99)?;
                let lines = crate::eval::shapes::summary_lines(&value);
                Ok(Summary { value, lines })
            }
            _ => Ok(Summary::default()),
        }
    }
}

impl Generator for StackGanModel {
    fn family(&self) -> &'static str {
        "stackgan"
    }
    fn image_size(&self) -> i64 {
        if self.stage == 1 {
            self.config.stage1_size
        } else {
            self.config.stage2_size
        }
    }
    fn controls(&self) -> Controls {
        Controls {
            stages: self.stage == 2,
            ..Default::default()
        }
    }
    fn unknown_words(&self, caption: &str) -> Result<Vec<String>> {
        Ok(self.embed(&[caption])?.1.remove(0).unknown)
    }
    fn generate(&self, captions: &[&str], seed: u64) -> Result<Generated> {
        let (s1, s2) = StackGanModel::generate(self, captions, seed)?;
        Ok(Generated {
            images: s2.to_device(Device::Cpu),
            first_stage: s1.map(|t| t.to_device(Device::Cpu)),
            drawn_as: None,
            corrected: None,
        })
    }
}
