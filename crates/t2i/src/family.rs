//! The model-family interface: one [`Family`] per trainable system, a
//! [`Trainer`] that the one run loop ([`crate::train::run::run_loop`])
//! drives, a [`Generator`] that `generate`, `eval` and the server call, and
//! the registry ([`families`], [`family`]) from a family's name to it.
//!
//! A family's settings are one typed config (a serde struct with named
//! presets, see [`FamilyConfig`]); the generic code sees it as a TOML table,
//! so `--set KEY=VALUE` ([`apply_sets`]), validation, `config.toml` and the
//! resume check work the same for every family. Adding a family is a models
//! file, a training file (its config, its `Trainer`, its `Family` impl) and
//! one line in [`families`]; see docs/ARCHITECTURE.md.

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::imageio::Rgb;
use crate::train::run::RunDir;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// A config as the generic code sees it.
pub type Table = toml::Table;

/// Named values of one step or one evaluation (`loss_d`, `r_precision`, ...).
pub type Metrics = Vec<(String, f64)>;

/// A family's typed config: serialisable, with named presets and a check.
pub trait FamilyConfig: Serialize + DeserializeOwned + Clone {
    /// The preset of that name.
    fn preset(name: &str) -> Option<Self>;
    /// Checks the values together; the message names the offending field.
    fn validate(&self) -> std::result::Result<(), String>;
}

/// `config` as a TOML table.
pub fn to_table<C: Serialize>(config: &C) -> Result<Table> {
    match toml::Value::try_from(config) {
        Ok(toml::Value::Table(t)) => Ok(t),
        Ok(_) => Err(Error::Config("a config must be a table".into())),
        Err(e) => Err(Error::Config(e.to_string())),
    }
}

/// A table read back as the typed config `C` and validated.
pub fn from_table<C: FamilyConfig>(table: &Table) -> Result<C> {
    let c: C = parse_table(table)?;
    c.validate().map_err(Error::Config)?;
    Ok(c)
}

/// A table read back as the typed config `C`, not validated (for parameter
/// counts and benchmarks, which need no data set).
pub fn parse_table<C: FamilyConfig>(table: &Table) -> Result<C> {
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e| Error::Config(format!("config: {e}")))
}

/// The preset `name` of `C` as a table, or an error listing `presets`.
pub fn preset_table<C: FamilyConfig>(family: &str, name: &str, presets: &[&str]) -> Result<Table> {
    let c = C::preset(name).ok_or_else(|| {
        Error::Config(format!(
            "unknown {family} preset '{name}' (available: {})",
            presets.join(", ")
        ))
    })?;
    to_table(&c)
}

/// Applies `KEY=VALUE` settings to a config table: the value is read as
/// TOML (a number, `true`, a quoted or bare string); a dotted key
/// (`text.dim`) names a field of a nested table. An unknown key is an error
/// that lists the valid ones at its level.
pub fn apply_sets(table: &mut Table, sets: &[String]) -> Result<()> {
    for s in sets {
        let (key, raw) = s
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--set expects KEY=VALUE, got '{s}'")))?;
        let key = key.trim();
        let mut path: Vec<&str> = key.split('.').collect();
        let last = path.pop().unwrap_or(key);
        let mut t = &mut *table;
        for part in &path {
            t = match t.get_mut(*part) {
                Some(toml::Value::Table(inner)) => inner,
                _ => {
                    return Err(Error::Config(format!(
                        "--set: unknown config table '{part}' in '{key}'"
                    )))
                }
            };
        }
        let Some(old) = t.get(last) else {
            let known: Vec<&str> = t.keys().map(String::as_str).collect();
            return Err(Error::Config(format!(
                "--set: unknown config field '{key}' (fields: {})",
                known.join(", ")
            )));
        };
        if old.is_table() {
            return Err(Error::Config(format!(
                "--set: '{key}' is a table; set one of its fields ({key}.FIELD)"
            )));
        }
        let raw = raw.trim();
        let mut value = toml::from_str::<Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        // an integer where the field holds a float (`lr=1`) is that float
        if let (toml::Value::Float(_), toml::Value::Integer(i)) = (old, &value) {
            value = toml::Value::Float(*i as f64);
        }
        t.insert(last.to_string(), value);
    }
    Ok(())
}

/// The dotted keys whose values differ between two tables.
pub fn changed_keys(old: &Table, new: &Table) -> Vec<(String, String, String)> {
    fn walk(prefix: &str, a: &Table, b: &Table, out: &mut Vec<(String, String, String)>) {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match (a.get(k), b.get(k)) {
                (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                    walk(&name, x, y, out)
                }
                (x, y) if x != y => out.push((
                    name,
                    x.map_or("(none)".into(), |v| v.to_string()),
                    y.map_or("(none)".into(), |v| v.to_string()),
                )),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

/// The config keys of the shared flags for a family whose config names them
/// as GAN-INT-CLS does (`lr`, `batch_size`, `ngf`, `ndf`, `image_size`, the
/// `data` table and the `text` phase); a family's `flag_keys` may fall back
/// to it.
pub fn standard_flag_keys(flag: &str) -> &'static [&'static str] {
    match flag {
        "lr" => &["lr"],
        "batch_size" => &["batch_size"],
        "ngf" => &["ngf"],
        "ndf" => &["ndf"],
        "image_size" => &["image_size"],
        "data" => &["data.name"],
        "data_root" => &["data.root"],
        "train_size" => &["data.train_size"],
        "text_encoder" => &["text.encoder"],
        "text_steps" => &["text.steps"],
        "text_hard" => &["text.hard"],
        _ => &[],
    }
}

/// What a family's trainer is built with besides its config.
pub struct TrainContext<'a> {
    /// The run folder (a family may write files beside its checkpoints,
    /// e.g. the text encoder it trains first).
    pub run: &'a RunDir,
    /// Run seed: initial weights, batches and noise derive from it.
    pub seed: u64,
    pub device: Device,
    /// Cache of preprocessed images and features.
    pub cache: PathBuf,
    /// Progress bars and notes on stderr.
    pub progress: bool,
}

impl TrainContext<'_> {
    /// How this run loads a data set: its cache and progress, at `size`,
    /// without augmentation (set `augment` for training splits).
    pub fn loading(&self, size: i64) -> crate::data::images::LoadOptions<'_> {
        crate::data::images::LoadOptions {
            size,
            cache: Some(&self.cache),
            augment: false,
            progress: self.progress,
        }
    }

    /// A split of a data set in the CUB layout, with the loader's skip and
    /// cache lines printed when the run shows progress.
    pub fn load_cub(
        &self,
        root: &Path,
        split: crate::data::cub::CubSplit,
        opts: &crate::data::images::LoadOptions,
    ) -> Result<crate::data::images::CaptionedImages> {
        let (data, lines) = crate::data::images::load_cub(root, split, opts)?;
        for l in lines.iter().filter(|_| self.progress) {
            eprintln!("{l}");
        }
        Ok(data)
    }
}

/// The summary a run writes to `summary.json`, with the lines to print.
#[derive(Debug, Default)]
pub struct Summary {
    pub value: serde_json::Value,
    pub lines: Vec<String>,
}

/// One family's training, driven by [`crate::train::run::run_loop`].
pub trait Trainer {
    /// Steps done so far.
    fn step(&self) -> i64;
    /// One optimisation step; its named losses and statistics (the loop
    /// stops the run if one is not finite).
    fn train_step(&mut self) -> Result<Metrics>;
    /// The learning rate now (logged).
    fn lr(&self) -> f64;
    /// Writes everything a resume needs (weights, optimisers, step).
    fn save(&self, path: &Path) -> Result<()>;
    /// A grid of samples for fixed captions (none for families that do not
    /// draw images).
    fn sample_grid(&self) -> Result<Option<Rgb>> {
        Ok(None)
    }
    /// Every how many steps [`Trainer::evaluate`] runs (0: never).
    fn eval_every(&self) -> i64 {
        0
    }
    /// Metrics on held-out data, logged with the step.
    fn evaluate(&mut self) -> Result<Metrics> {
        Ok(Vec::new())
    }
    /// Called once after the loop: later phases (a style encoder), files
    /// beside the checkpoint (a text encoder), and the run's summary. When
    /// `interrupted`, only what must not be lost is done.
    fn finish(
        &mut self,
        ctx: &TrainContext,
        interrupted: bool,
        eval_samples: usize,
    ) -> Result<Summary>;
}

/// Images made for a batch of captions.
pub struct Generated {
    /// Final images. `[n, 3, size, size]` in [-1, 1], on the CPU
    pub images: Tensor,
    /// The first stage's images of a multi-stage model (shown beside the
    /// final ones). `[n, 3, s, s]`
    pub first_stage: Option<Tensor>,
    /// The caption each image was drawn from, when the model completed a
    /// caption that leaves attributes out (GAN-INT-CLS on shapes); `None`
    /// when every image was drawn from the caption as given.
    pub drawn_as: Option<Vec<String>>,
    /// Per image, the attributes Compositional Attribute Adjustment
    /// corrected (StyleT2I); `None` for models without it.
    pub corrected: Option<Vec<Vec<String>>>,
}

/// What a generator can do besides drawing samples (the CLI and the server
/// offer a control only when the model has it).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Controls {
    /// Sentence and noise interpolation.
    pub interpolate: bool,
    /// Style transfer from a query image.
    pub style_transfer: bool,
    /// Word attention maps.
    pub attention: bool,
    /// Earlier stages' images.
    pub stages: bool,
    /// Drawing inside a given box (GAWWN).
    pub boxes: bool,
    /// Drawing parts at given keypoints, and completing missing ones (GAWWN).
    pub keypoints: bool,
    /// Compositional Attribute Adjustment, on by default (StyleT2I).
    pub caa: bool,
    /// Draws without text (an unconditional backbone, `stylegan2`): the
    /// caption must be empty.
    pub unconditional: bool,
}

/// Where a layout-conditioned model (GAWWN) draws one image: fractions of
/// the image, origin at the top left.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `[x, y, w, h]`.
    Box([f32; 4]),
    /// One entry per part of [`Generator::part_names`]: `(x, y)` when
    /// given; missing ones are drawn as not visible (fill them first with
    /// [`Generator::complete_keypoints`]).
    Keypoints(Vec<Option<[f32; 2]>>),
}

fn unsupported(family: &str, what: &str) -> Error {
    Error::Config(format!("{family} models do not support {what}"))
}

/// A trained model that draws images from text (`Send`: the server's
/// workers take turns with one loaded model).
pub trait Generator: Send {
    /// The family's name.
    fn family(&self) -> &'static str;
    /// Side of the final images.
    fn image_size(&self) -> i64;
    /// What it can do besides samples.
    fn controls(&self) -> Controls;
    /// The caption's words that the vocabulary does not hold (an error
    /// when none is known).
    fn unknown_words(&self, caption: &str) -> Result<Vec<String>>;
    /// One image per caption, noise from `seed`.
    fn generate(&self, captions: &[&str], seed: u64) -> Result<Generated>;
    /// Sentence interpolation from `from` to `to` with fixed noise. `[steps, 3, s, s]`
    fn interpolate(&self, from: &str, to: &str, steps: i64, seed: u64) -> Result<Tensor> {
        let _ = (from, to, steps, seed);
        Err(unsupported(self.family(), "interpolation"))
    }
    /// Noise interpolation for one caption. `[steps, 3, s, s]`
    fn noise_interpolate(&self, caption: &str, steps: i64, seed: u64) -> Result<Tensor> {
        let _ = (caption, steps, seed);
        Err(unsupported(self.family(), "noise interpolation"))
    }
    /// Style transfer: the style of each query image with the caption of
    /// the same row. `query`: `[n, 3, s, s]` in [-1, 1]; `[n, 3, s, s]`
    fn style_transfer(&self, query: &Tensor, captions: &[&str]) -> Result<Tensor> {
        let _ = (query, captions);
        Err(unsupported(self.family(), "style transfer"))
    }
    /// The style codes S(x) of images in [-1, 1] (style AU-ROC); `None`
    /// when the model has no trained style encoder. `[n, z]`
    fn style_codes(&self, images: &Tensor) -> Result<Option<Tensor>> {
        let _ = images;
        Ok(None)
    }
    /// Part names of a keypoint model, in the order of
    /// [`Layout::Keypoints`] (empty otherwise).
    fn part_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// One image per caption, drawn where the caption's layout says.
    fn generate_at(&self, captions: &[&str], layouts: &[Layout], seed: u64) -> Result<Generated> {
        let _ = (captions, layouts, seed);
        Err(unsupported(self.family(), "boxes and keypoints"))
    }
    /// A full set of keypoints for a caption from the given ones (GAWWN's
    /// G_k; the given ones are kept exactly; `None` where G_k says the part
    /// is not visible); noise from `seed`.
    fn complete_keypoints(
        &self,
        caption: &str,
        given: &[Option<[f32; 2]>],
        seed: u64,
    ) -> Result<Vec<Option<[f32; 2]>>> {
        let _ = (caption, given, seed);
        Err(unsupported(self.family(), "keypoint completion"))
    }
    /// Turns Compositional Attribute Adjustment on or off.
    fn set_caa(&mut self, on: bool) -> Result<()> {
        let _ = on;
        Err(unsupported(self.family(), "attribute adjustment"))
    }
    /// The family's own measurements on the shapes data set, beside the
    /// checker's scores (StyleT2I: where its attribute directions edit and
    /// what they draw); `None` when it has none. `n` samples, noise from
    /// `seed`.
    fn shapes_report(&self, n: usize, seed: u64) -> Result<Option<FamilyReport>> {
        let _ = (n, seed);
        Ok(None)
    }
    /// The attention maps of the first sample for `caption`, as a figure.
    fn attention_figure(&self, caption: &str, seed: u64, top_words: usize) -> Result<Rgb> {
        let _ = (caption, seed, top_words);
        Err(unsupported(self.family(), "attention maps"))
    }
}

/// Measurements of one family, as JSON and as report lines.
#[derive(Debug, Clone)]
pub struct FamilyReport {
    pub value: serde_json::Value,
    pub lines: Vec<String>,
}

/// What `t2i import` converts: an official implementation's weights.
pub struct ImportRequest<'a> {
    /// The official generator (`netG_epoch_*.pth`, `bird_AttnGAN2.pth`...).
    pub weights: &'a Path,
    /// Its text encoder (official `.pth` or a t2i text-encoder checkpoint),
    /// for the families that have one.
    pub text_encoder: Option<&'a Path>,
    /// The data set's `captions.pickle` (the official vocabulary), if needed.
    pub captions: Option<&'a Path>,
    /// The t2i checkpoint to write.
    pub out: &'a Path,
}

impl ImportRequest<'_> {
    /// The text encoder, which `family` cannot import without.
    pub fn text_encoder(&self, family: &str) -> Result<&Path> {
        self.text_encoder.ok_or_else(|| {
            Error::Config(format!(
                "importing {family} needs --text-encoder (its official text encoder or a t2i text-encoder checkpoint)"
            ))
        })
    }
}

/// Parameter counts of one network and its parts.
pub type ParamRow = (String, i64, Vec<(String, i64)>);

/// A trainable system of t2i.
pub trait Family: Sync {
    /// Name used by `--model` and stored in checkpoints (`model`).
    fn name(&self) -> &'static str;
    /// One line for `--help` and listings.
    fn about(&self) -> &'static str;
    /// Preset names, the default first.
    fn presets(&self) -> &'static [&'static str];
    /// The config of a preset, as a table.
    fn config(&self, preset: &str) -> Result<Table>;
    /// The table read back as the family's typed config, validated, and
    /// written out again (so defaults and types are normalised).
    fn check(&self, config: &Table) -> Result<Table>;
    /// Config keys that a shared command-line flag (`lr`, `batch_size`,
    /// `data`, ...) sets; empty when the flag does not apply.
    fn flag_keys(&self, flag: &str) -> &'static [&'static str];
    /// Keys that may change when a run is resumed (applied and logged);
    /// any other change is refused.
    fn resumable_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// A trainer for the config; `resume` holds the checkpoint to continue
    /// from exactly.
    fn trainer(
        &self,
        config: &Table,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn Trainer>>;
    /// The generator of a checkpoint of this family.
    fn generator(&self, ck: &Checkpoint, device: Device) -> Result<Box<dyn Generator>> {
        let _ = (ck, device);
        Err(Error::Config(format!(
            "a {} checkpoint does not generate images",
            self.name()
        )))
    }
    /// Parameter counts of the config's networks, with a heading.
    fn parameter_counts(&self, config: &Table) -> Result<(String, Vec<ParamRow>)> {
        let _ = config;
        Err(Error::Config(format!(
            "{}'s sizes come from the data set it trains on (vocabulary, classes): its parameter counts are those of a run's checkpoint",
            self.name()
        )))
    }
    /// Timings of a training iteration and of generation (JSON reports and
    /// their tables).
    fn bench(
        &self,
        config: &Table,
        opts: &BenchOptions,
    ) -> Result<Vec<(serde_json::Value, String)>> {
        let _ = (config, opts);
        Err(Error::Config(format!("no benchmark for {}", self.name())))
    }
    /// Writes the fixture the family's PyTorch twin checks itself against
    /// (`bench/torch_reference/`): initial weights, one step's inputs and
    /// its outputs, in `dir`; returns a line saying what was written.
    fn twin_fixture(&self, config: &Table, device: Device, dir: &Path) -> Result<String> {
        let _ = (config, device, dir);
        Err(Error::Config(format!(
            "{} has no PyTorch twin fixture (gan-int-cls has; StackGAN's and AttnGAN's twins check against the official fixtures)",
            self.name()
        )))
    }
    /// Converts an official implementation's weights into a t2i checkpoint;
    /// returns a line describing what was imported.
    fn import(&self, req: &ImportRequest) -> Result<String> {
        let _ = req;
        Err(Error::Config(format!(
            "no official weights to import for {}",
            self.name()
        )))
    }
}

/// What `t2i bench` asks of a family's benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub device: Device,
    /// Timed repeats after warm-up.
    pub repeats: usize,
    /// Only this stage of a multi-stage family (one with a `stage` key,
    /// StackGAN); None: every stage.
    pub stage: Option<u8>,
}

/// What a family implements: [`Family`] follows for it, with the config
/// handled as the typed `Config` (presets, `--set`, validation).
pub trait TypedFamily: Sync {
    /// The family's run config.
    type Config: FamilyConfig;
    /// Name used by `--model` and stored in checkpoints (`model`).
    const NAME: &'static str;
    /// One line for listings.
    const ABOUT: &'static str;
    /// Preset names, the default first.
    const PRESETS: &'static [&'static str];
    /// See [`Family::flag_keys`].
    fn flag_keys(&self, flag: &str) -> &'static [&'static str];
    /// See [`Family::resumable_keys`].
    fn resumable_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// See [`Family::trainer`]; `config` is validated.
    fn trainer(
        &self,
        config: Self::Config,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn Trainer>>;
    /// See [`Family::generator`].
    fn generator(&self, ck: &Checkpoint, device: Device) -> Result<Box<dyn Generator>> {
        let _ = (ck, device);
        Err(Error::Config(format!(
            "a {} checkpoint does not generate images",
            Self::NAME
        )))
    }
    /// See [`Family::parameter_counts`]; `config` is not validated (no data
    /// set is needed).
    fn parameter_counts(&self, config: &Self::Config) -> Result<(String, Vec<ParamRow>)> {
        let _ = config;
        Err(Error::Config(format!(
            "{}'s sizes come from the data set it trains on (vocabulary, classes): its parameter counts are those of a run's checkpoint",
            Self::NAME
        )))
    }
    /// See [`Family::bench`]; `config` is not validated.
    fn bench(
        &self,
        config: &Self::Config,
        opts: &BenchOptions,
    ) -> Result<Vec<(serde_json::Value, String)>> {
        let _ = (config, opts);
        Err(Error::Config(format!("no benchmark for {}", Self::NAME)))
    }
    /// See [`Family::twin_fixture`]; `config` is not validated.
    fn twin_fixture(&self, config: &Self::Config, device: Device, dir: &Path) -> Result<String> {
        let _ = (config, device, dir);
        Err(Error::Config(format!(
            "{} has no PyTorch twin fixture (gan-int-cls has; StackGAN's and AttnGAN's twins check against the official fixtures)",
            Self::NAME
        )))
    }
    /// See [`Family::import`].
    fn import(&self, req: &ImportRequest) -> Result<String> {
        let _ = req;
        Err(Error::Config(format!(
            "no official weights to import for {}",
            Self::NAME
        )))
    }
}

impl<F: TypedFamily> Family for F {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn about(&self) -> &'static str {
        F::ABOUT
    }
    fn presets(&self) -> &'static [&'static str] {
        F::PRESETS
    }
    fn config(&self, preset: &str) -> Result<Table> {
        preset_table::<F::Config>(F::NAME, preset, F::PRESETS)
    }
    fn check(&self, config: &Table) -> Result<Table> {
        to_table(&from_table::<F::Config>(config)?)
    }
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        TypedFamily::flag_keys(self, flag)
    }
    fn resumable_keys(&self) -> &'static [&'static str] {
        TypedFamily::resumable_keys(self)
    }
    fn trainer(
        &self,
        config: &Table,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn Trainer>> {
        TypedFamily::trainer(self, from_table(config)?, ctx, resume)
    }
    fn generator(&self, ck: &Checkpoint, device: Device) -> Result<Box<dyn Generator>> {
        TypedFamily::generator(self, ck, device)
    }
    fn parameter_counts(&self, config: &Table) -> Result<(String, Vec<ParamRow>)> {
        TypedFamily::parameter_counts(self, &parse_table(config)?)
    }
    fn bench(
        &self,
        config: &Table,
        opts: &BenchOptions,
    ) -> Result<Vec<(serde_json::Value, String)>> {
        TypedFamily::bench(self, &parse_table(config)?, opts)
    }
    fn twin_fixture(&self, config: &Table, device: Device, dir: &Path) -> Result<String> {
        TypedFamily::twin_fixture(self, &parse_table(config)?, device, dir)
    }
    fn import(&self, req: &ImportRequest) -> Result<String> {
        TypedFamily::import(self, req)
    }
}

/// Every family, in the order the papers introduced them.
pub fn families() -> &'static [&'static dyn Family] {
    &[
        &crate::train::gan_int_cls::GanIntClsFamily,
        &crate::train::gawwn::GawwnFamily,
        &crate::train::char_cnn_rnn::CharCnnRnnFamily,
        &crate::train::stackgan::StackGanFamily,
        &crate::train::damsm::DamsmFamily,
        &crate::train::attngan::AttnGanFamily,
        &crate::train::stylegan2::StyleGan2Family,
        &crate::train::style_t2i::StyleT2IFamily,
        &crate::train::classifier::ClassifierFamily,
        &crate::train::part_locator::PartLocatorFamily,
    ]
}

/// The family of that name, or an error listing them.
pub fn family(name: &str) -> Result<&'static dyn Family> {
    families()
        .iter()
        .copied()
        .find(|f| f.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = families().iter().map(|f| f.name()).collect();
            Error::Config(format!(
                "unknown model '{name}' (available: {})",
                names.join(", ")
            ))
        })
}

/// The generator of any checkpoint, by the family it names.
pub fn load_generator(ck: &Checkpoint, device: Device) -> Result<Box<dyn Generator>> {
    family(ck.meta("model")?)?.generator(ck, device)
}

/// The largest training batch any family accepts: bigger batches do not fit
/// the memory of the machines t2i targets for any preset, and are refused
/// before anything is allocated.
pub const MAX_BATCH_SIZE: i64 = 4096;

/// `batch_size` of a family's config: at least 2 (the matching-aware and
/// contrastive losses pair samples within a batch), at most
/// [`MAX_BATCH_SIZE`].
pub fn check_batch_size(batch_size: i64) -> std::result::Result<(), String> {
    if !(2..=MAX_BATCH_SIZE).contains(&batch_size) {
        return Err(format!(
            "batch_size must be in 2..={MAX_BATCH_SIZE}, got {batch_size}"
        ));
    }
    Ok(())
}
