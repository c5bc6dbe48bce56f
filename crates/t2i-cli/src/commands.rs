//! Sub-commands: thin wrappers over the library.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use t2i::data::shapes::{Shapes, ShapesConfig, Split};
use t2i::device::{device_name, parse_device};
use t2i::imageio::{grid, tensor_to_images, Rgb};
use t2i::models::gan_int_cls::{GanIntClsConfig, Variant};
use t2i::text::GruEncoderConfig;
use t2i::train::gan_int_cls::{
    GanIntClsModel, ResolvedConfig, ShapesTensors, TrainOptions, Trainer,
};
use t2i::train::run::{versions, RunDir, StopFlag};
use t2i::train::text_encoder::{train_and_save, TextTrainOptions};
use tch::Tensor;

pub fn data_shapes(
    out: &Path,
    size: u32,
    max_objects: u8,
    train: usize,
    test: usize,
    seed: u64,
) -> Result<()> {
    let cfg = ShapesConfig {
        image_size: size,
        max_objects,
        train_size: train,
        test_size: test,
        seed,
        ..Default::default()
    };
    let shapes = Shapes::new(cfg)?;
    let n = t2i::data::shapes::export_cub_layout(&shapes, out)?;
    println!(
        "wrote {n} images (train {train}, test {test}, held-out {test}) to {}",
        out.display()
    );
    Ok(())
}

/// Shared model/preset selection.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model family: gan-int-cls, stackgan, attngan or damsm.
    #[arg(long, default_value = "gan-int-cls")]
    pub model: String,
    /// Preset: paper or tiny (gan-int-cls also: tiny-plus, tiny with the
    /// options beyond the paper that work best on shapes).
    #[arg(long, default_value = "tiny")]
    pub preset: String,
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub m: ModelArgs,
    /// Objective: gan, gan-cls, gan-int or gan-int-cls.
    #[arg(long, default_value = "gan-int-cls")]
    pub variant: String,
    /// Data set: shapes (built in) or cub.
    #[arg(long, default_value = "shapes")]
    pub data: String,
    /// Folder of a real data set (for cub: the folder holding CUB_200_2011/).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Cache of preprocessed images (default: $T2I_CACHE or ~/.cache/t2i).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Run folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// StackGAN stage to train (1 or 2).
    #[arg(long, default_value_t = 1)]
    pub stage: i64,
    /// StackGAN Stage-II: the trained Stage-I run folder (or checkpoint).
    #[arg(long)]
    pub stage1: Option<PathBuf>,
    /// GAN training steps in all.
    #[arg(long, default_value_t = 3000)]
    pub steps: i64,
    /// Stop GAN training after this many minutes (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    pub minutes: f64,
    /// Style-encoder steps after the GAN.
    #[arg(long, default_value_t = 600)]
    pub style_steps: i64,
    /// Steps of the run's own text encoder (ignored with --text-encoder).
    #[arg(long, default_value_t = 800)]
    pub text_steps: i64,
    /// Fraction of each text-encoder batch made of pairs that differ only
    /// in colour or only in shape (shapes data; ignored with --text-encoder).
    #[arg(long, default_value_t = 0.0)]
    pub text_hard: f64,
    /// A trained text-encoder checkpoint to use instead of training one.
    #[arg(long)]
    pub text_encoder: Option<PathBuf>,
    /// AttnGAN: the DAMSM checkpoint whose text and image encoders (frozen)
    /// condition G and score its images.
    #[arg(long)]
    pub damsm: Option<PathBuf>,
    /// Image side (must be supported by the preset).
    #[arg(long)]
    pub image_size: Option<i64>,
    /// Objects per shapes image at most (1 or 2).
    #[arg(long, default_value_t = 1)]
    pub max_objects: u8,
    /// Shapes training images.
    #[arg(long, default_value_t = 10_000)]
    pub train_size: usize,
    /// Batch size (default: the preset's).
    #[arg(long)]
    pub batch_size: Option<i64>,
    /// Adam learning rate of G and D (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Generator width (default: the preset's).
    #[arg(long)]
    pub ngf: Option<i64>,
    /// Discriminator width (default: the preset's); for damsm, the image
    /// encoder's width.
    #[arg(long)]
    pub ndf: Option<i64>,
    /// Override a field of the model config, e.g. `--set ema_decay=0.999`
    /// (repeatable; field names as in the run's config.toml).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// DAMSM: start the image encoder from pretrained weights, as the
    /// official DAMSM starts from ImageNet ones: an evaluation classifier
    /// (`train --model classifier`, a VGG body), or an ImageNet
    /// EfficientNet-Lite0 `.pth` (`scripts/setup_efficientnet.sh`; images at
    /// 224x224)
    #[arg(long)]
    pub image_init: Option<PathBuf>,
    /// DAMSM with --image-init: keep the pretrained body fixed and train
    /// only the projections, as the official DAMSM keeps its Inception fixed
    #[arg(long)]
    pub freeze_image: bool,
    /// DAMSM: the global image feature also takes the mean of the region
    /// features (the earlier, less class-specific stage)
    #[arg(long)]
    pub multi_level: bool,
    /// DAMSM: start the word vectors from all-MiniLM-L6-v2 (its folder, as
    /// `make minilm` fills `models/all-MiniLM-L6-v2`); the embedding
    /// becomes 384-d
    #[arg(long)]
    pub word_init: Option<PathBuf>,
    /// DAMSM: weight of the word-level loss terms (default 1, the paper's).
    #[arg(long)]
    pub word_weight: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value_t = 500)]
    pub sample_every: i64,
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: i64,
    /// Evaluate with the shapes checker at the end (samples per split; 0: skip).
    #[arg(long, default_value_t = 500)]
    pub eval_samples: usize,
}

fn gan_config(
    m: &ModelArgs,
    variant: &str,
    image_size: Option<i64>,
    batch: Option<i64>,
) -> Result<GanIntClsConfig> {
    if m.model != "gan-int-cls" {
        bail!(
            "model '{}' is not available yet (available: gan-int-cls)",
            m.model
        );
    }
    let mut c = GanIntClsConfig::preset(&m.preset).with_context(|| {
        format!(
            "unknown preset '{}' (use paper, tiny or tiny-plus)",
            m.preset
        )
    })?;
    c.variant = Variant::parse(variant).with_context(|| {
        format!("unknown variant '{variant}' (use gan, gan-cls, gan-int or gan-int-cls)")
    })?;
    if let Some(s) = image_size {
        c.image_size = s;
    }
    if let Some(b) = batch {
        if b < 2 {
            bail!("batch size must be at least 2, got {b}");
        }
        c.batch_size = b;
    }
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

/// Applies `KEY=VALUE` overrides to a serialisable config: the value is read
/// as TOML (a number, `true`, a quoted or bare string), and an unknown key or
/// a value of the wrong type is an error naming it.
pub fn apply_overrides<T>(config: &T, sets: &[String]) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    if sets.is_empty() {
        return Ok(toml::from_str(&toml::to_string(config)?)?);
    }
    let mut table: toml::Table = toml::from_str(&toml::to_string(config)?)?;
    for s in sets {
        let (key, raw) = s
            .split_once('=')
            .with_context(|| format!("--set expects KEY=VALUE, got '{s}'"))?;
        let key = key.trim();
        // a dotted key (`text.dim`) names a field of a nested table
        let mut path: Vec<&str> = key.split('.').collect();
        let last = path.pop().unwrap_or(key);
        let mut t = &mut table;
        for part in &path {
            t = match t.get_mut(*part) {
                Some(toml::Value::Table(inner)) => inner,
                _ => bail!("--set: unknown config table '{part}' in '{key}'"),
            };
        }
        if !t.contains_key(last) {
            let known: Vec<&str> = t.keys().map(String::as_str).collect();
            bail!(
                "--set: unknown config field '{key}' (fields: {})",
                known.join(", ")
            );
        }
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        t.insert(last.to_string(), value);
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| anyhow::anyhow!("--set: {e}"))
}

pub fn stop_on_ctrl_c() -> StopFlag {
    let stop = StopFlag::default();
    let s = stop.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!("\ninterrupt: writing a checkpoint before exiting (Ctrl-C again to abort)");
        if s.is_set() {
            std::process::exit(130);
        }
        s.set();
    });
    stop
}

pub fn train(a: TrainArgs) -> Result<()> {
    if a.m.model == "stackgan" {
        return crate::stackgan_cmds::train_stackgan(&a);
    }
    if a.m.model == "attngan" {
        return crate::attngan_cmds::train_attngan(&a);
    }
    if a.m.model == "char-cnn-rnn" {
        return crate::cub_cmds::train_char_cnn_rnn(&a);
    }
    if a.m.model == "classifier" {
        return crate::cub_cmds::train_classifier(&a);
    }
    if a.m.model == "damsm" {
        return crate::cub_cmds::train_damsm(crate::cub_cmds::DamsmTrainArgs {
            preset: &a.m.preset,
            data: &a.data,
            root: a.data_root.as_deref(),
            cache: a.cache.clone(),
            out: &a.out,
            resume: a.resume,
            steps: a.steps,
            minutes: a.minutes,
            batch_size: a.batch_size,
            lr: a.lr,
            width: a.ndf,
            word_weight: a.word_weight,
            image_init: a.image_init.as_deref(),
            freeze_image: a.freeze_image,
            multi_level: a.multi_level,
            word_init: a.word_init.as_deref(),
            seed: a.seed,
            device: &a.device,
            checkpoint_every: a.checkpoint_every,
            set: &a.set,
        });
    }
    if a.data != "shapes" {
        bail!(
            "data set '{}' is not available yet (available: shapes)",
            a.data
        );
    }
    let device = parse_device(&a.device)?;
    // validate the model choice before anything is written
    let fresh_cfg = if a.resume {
        None
    } else {
        let mut c = gan_config(&a.m, &a.variant, a.image_size, a.batch_size)?;
        if let Some(lr) = a.lr {
            if !(lr > 0.0 && lr < 1.0) {
                bail!("--lr must be in (0, 1), got {lr}");
            }
            c.lr = lr;
        }
        c = apply_overrides(&c, &a.set)?;
        c.validate().map_err(anyhow::Error::msg)?;
        for (v, name, field) in [(a.ngf, "--ngf", &mut c.ngf), (a.ndf, "--ndf", &mut c.ndf)] {
            if let Some(v) = v {
                if !(4..=1024).contains(&v) {
                    bail!("{name} must be in 4..=1024, got {v}");
                }
                *field = v;
            }
        }
        Some(c)
    };
    let run = RunDir::create(&a.out)?;
    let stop = stop_on_ctrl_c();
    let (mut trainer, opts, resolved) = if a.resume {
        let last = run.last_checkpoint();
        if !last.exists() {
            bail!("nothing to resume: {} does not exist", last.display());
        }
        let ck = t2i::checkpoint::load(&last)?;
        let model = GanIntClsModel::from_checkpoint(&ck, device)?;
        let resolved: ResolvedConfig = toml::from_str(
            &std::fs::read_to_string(run.config_path())
                .with_context(|| format!("{}", run.config_path().display()))?,
        )
        .with_context(|| format!("{}", run.config_path().display()))?;
        let mut opts = resolved.train.clone();
        opts.steps = a.steps;
        opts.max_seconds = (a.minutes * 60.0) as u64;
        opts.progress = true;
        let shapes = Shapes::new(resolved.data.clone())?;
        let data = ShapesTensors::build(&shapes, Split::Train, &model.encoder, device)?;
        let mut t = Trainer::new(model, data, resolved.data.clone(), resolved.train.seed);
        t.restore(&ck)?;
        crate::run_setup::resumed(&run, &a.out, t.step)?;
        (t, opts, resolved)
    } else {
        if run.last_checkpoint().exists() {
            bail!(
                "{} already holds a run: use --resume or another --out",
                a.out.display()
            );
        }
        let mut cfg = fresh_cfg.expect("set when not resuming");
        let data_cfg = ShapesConfig {
            image_size: cfg.image_size as u32,
            max_objects: a.max_objects,
            train_size: a.train_size,
            seed: a.seed,
            ..Default::default()
        };
        let shapes = Shapes::new(data_cfg.clone())?;
        let opts = TrainOptions {
            steps: a.steps,
            max_seconds: (a.minutes * 60.0) as u64,
            style_steps: a.style_steps,
            text_steps: a.text_steps,
            seed: a.seed,
            sample_every: a.sample_every,
            checkpoint_every: a.checkpoint_every,
            log_every: 20,
            progress: true,
        };
        let encoder = match &a.text_encoder {
            Some(p) => t2i::text::GruEncoder::load(p, device)?,
            None => {
                let enc_cfg = if cfg.preset == "paper" {
                    GruEncoderConfig::paper()
                } else {
                    GruEncoderConfig::tiny()
                };
                if !(0.0..=1.0).contains(&a.text_hard) {
                    bail!("--text-hard must be in [0, 1], got {}", a.text_hard);
                }
                let topts = TextTrainOptions {
                    steps: a.text_steps,
                    seed: a.seed,
                    hard_fraction: a.text_hard,
                    ..Default::default()
                };
                let path = run.root.join("text_encoder.safetensors");
                let t = train_and_save(&shapes, enc_cfg, &topts, device, &path)?;
                eprintln!(
                    "text encoder: loss {:.3}, held-in test retrieval {:.1}% -> {}",
                    t.final_loss,
                    100.0 * t.test_retrieval,
                    path.display()
                );
                t.encoder
            }
        };
        cfg.text_dim = t2i::text::TextEncoder::sentence_dim(&encoder);
        let resolved = ResolvedConfig {
            model: "gan-int-cls".into(),
            versions: versions(),
            device: device_name(device),
            text_encoder: encoder.source.clone(),
            gan: cfg.clone(),
            data: data_cfg.clone(),
            train: opts.clone(),
        };
        run.write_config(&resolved)?;
        let data = ShapesTensors::build(&shapes, Split::Train, &encoder, device)?;
        tch::manual_seed(a.seed as i64); // reproducible initial weights
        let model = GanIntClsModel::new(cfg, encoder, device);
        (Trainer::new(model, data, data_cfg, a.seed), opts, resolved)
    };
    if trainer.model.config.match_weight > 0.0 {
        // the image side saved next to the text encoder it was trained with
        let p = t2i::train::text_encoder::matching_image_path(Path::new(&resolved.text_encoder));
        if !p.is_file() {
            bail!(
                "match_weight needs the text encoder's image side {}: train the text encoder in this run (no --text-encoder), or give one trained by t2i with its .image.safetensors next to it",
                p.display()
            );
        }
        trainer.set_matcher(&p)?;
    }
    let report = t2i::train::gan_int_cls::train_run(&mut trainer, &run, &opts, &stop)?;
    if report.interrupted {
        crate::run_setup::exit_interrupted(&run, report.steps);
    }
    println!(
        "trained {} steps in {:.0} s; checkpoint {}",
        report.steps,
        report.seconds,
        run.last_checkpoint().display()
    );
    if a.eval_samples > 0 {
        let summary = crate::demo::evaluate(&trainer.model, &resolved.data, a.eval_samples, None)?;
        let path = run.root.join("summary.json");
        t2i::imageio::write_atomic(&path, serde_json::to_string_pretty(&summary)?.as_bytes())?;
        crate::demo::print_summary(&summary);
        println!("summary: {}", path.display());
    }
    Ok(())
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Checkpoint file (a run's checkpoints/last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The caption.
    #[arg(long)]
    pub text: String,
    /// Number of samples.
    #[arg(short = 'n', long, default_value_t = 8)]
    pub n: i64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG (grid with the caption under it).
    #[arg(long, default_value = "samples.png")]
    pub out: PathBuf,
    /// Also write one PNG per sample into this folder.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Sentence interpolation from --text to this caption (fixed noise).
    #[arg(long)]
    pub interpolate: Option<String>,
    /// Images in an interpolation strip.
    #[arg(long, default_value_t = 8)]
    pub steps: i64,
    /// Noise interpolation for --text between two noise vectors.
    #[arg(long)]
    pub noise_interpolate: bool,
    /// Style transfer: take the style (background, pose) of this image.
    #[arg(long)]
    pub style_from: Option<PathBuf>,
    /// AttnGAN: also write OUT-attention.png, the first sample's attention
    /// maps per attentional stage with the word under each.
    #[arg(long)]
    pub attention: bool,
    /// AttnGAN: words shown in the attention figure (most attended first).
    #[arg(long, default_value_t = 6)]
    pub top_words: usize,
    #[arg(long, default_value = "auto")]
    pub device: String,
}

fn lerp_rows(a: &Tensor, b: &Tensor, steps: i64) -> Tensor {
    let w = Tensor::linspace(0.0, 1.0, steps, (tch::Kind::Float, a.device())).unsqueeze(1); // [steps, 1]
    a * (1.0 - &w) + b * w // [steps, dim]
}

pub fn generate(a: GenerateArgs) -> Result<()> {
    if a.n < 1 {
        bail!("-n must be at least 1, got {}", a.n);
    }
    if a.text.trim().is_empty() {
        bail!("the caption is empty");
    }
    if (a.interpolate.is_some() || a.noise_interpolate) && a.steps < 2 {
        bail!(
            "--steps must be at least 2 for an interpolation, got {}",
            a.steps
        );
    }
    let device = parse_device(&a.device)?;
    let ck = t2i::checkpoint::load(&a.checkpoint)?;
    if ck.meta("model")? == "stackgan" {
        return crate::stackgan_cmds::generate(&a, &ck, device);
    }
    if ck.meta("model")? == "attngan" {
        return crate::attngan_cmds::generate(&a, &ck, device);
    }
    if a.attention {
        bail!("--attention needs an AttnGAN checkpoint");
    }
    let model = GanIntClsModel::from_checkpoint(&ck, device)?;
    let (h, enc) = model.embed(&[a.text.as_str()])?;
    if !enc[0].unknown.is_empty() {
        eprintln!(
            "warning: unknown words mapped to <unk>: {}",
            enc[0].unknown.join(", ")
        );
    }
    let (images, label) = if let Some(t2) = &a.interpolate {
        let (h2, enc2) = model.embed(&[t2.as_str()])?;
        if !enc2[0].unknown.is_empty() {
            eprintln!(
                "warning: unknown words mapped to <unk>: {}",
                enc2[0].unknown.join(", ")
            );
        }
        let z = model.noise(1, a.seed).repeat([a.steps, 1]);
        (
            model.generate(&z, &lerp_rows(&h, &h2, a.steps)),
            format!("{} -> {}", a.text, t2),
        )
    } else if a.noise_interpolate {
        let z = model.noise(2, a.seed);
        let zs = lerp_rows(&z.get(0).unsqueeze(0), &z.get(1).unsqueeze(0), a.steps);
        (
            model.generate(&zs, &h.repeat([a.steps, 1])),
            format!("{} (noise interpolation)", a.text),
        )
    } else if let Some(q) = &a.style_from {
        if !model.style_trained {
            bail!("{} has no trained style encoder", a.checkpoint.display());
        }
        let size = model.config.image_size as u32;
        let query = Rgb::load(q, size)?;
        let x = t2i::train::gan_int_cls::style_transfer(
            &model,
            &[query.data.as_slice()],
            size,
            &[a.text.as_str()],
        )?;
        let both = Tensor::cat(
            &[
                t2i::imageio::images_to_tensor(&[query.data.as_slice()], size),
                x.to_device(tch::Device::Cpu),
            ],
            0,
        );
        (both, format!("style of {} + \"{}\"", q.display(), a.text))
    } else {
        let z = model.noise(a.n, a.seed);
        (model.generate(&z, &h.repeat([a.n, 1])), a.text.clone())
    };
    let imgs = tensor_to_images(&images);
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let cols = 8usize;
    let mut rows: Vec<(Vec<Rgb>, Option<String>)> =
        imgs.chunks(cols).map(|c| (c.to_vec(), None)).collect();
    if let Some(last) = rows.last_mut() {
        last.1 = Some(label);
    }
    grid(&rows, 2).save(&a.out)?;
    if let Some(dir) = &a.out_dir {
        for (i, im) in imgs.iter().enumerate() {
            im.save(&dir.join(format!("sample-{i:03}.png")))?;
        }
    }
    println!("wrote {}", a.out.display());
    Ok(())
}

#[derive(Args)]
pub struct EvalArgs {
    /// Checkpoint file.
    #[arg(long, required_unless_present = "run")]
    pub checkpoint: Option<PathBuf>,
    /// A run folder: evaluate its last checkpoint and each saved checkpoint,
    /// plot its training curves, and write RUN/eval/eval.json and
    /// RUN/eval/report.html.
    #[arg(long, conflicts_with = "checkpoint")]
    pub run: Option<PathBuf>,
    /// With --run on a real data set: R-precision of each saved checkpoint
    /// on the first N test captions (0: skip).
    #[arg(long, default_value_t = 0)]
    pub over_steps: usize,
    /// Generated samples per split.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output JSON.
    #[arg(long, default_value = "eval.json")]
    pub out: PathBuf,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// shapes (checker metrics of a GAN-INT-CLS or StackGAN checkpoint), or
    /// a comma-separated list of r-precision, fid, kid, is (a generator's
    /// samples for a data set's captions; r-precision alone also scores the
    /// real images with a DAMSM checkpoint).
    #[arg(long, visible_alias = "metrics", default_value = "shapes")]
    pub metric: String,
    /// Folder of the real data set (r-precision, fid, kid, is).
    #[arg(long, visible_alias = "data")]
    pub data_root: Option<PathBuf>,
    /// Split of the real data set (r-precision).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// DAMSM checkpoint that scores a generator's samples (r-precision of a
    /// GAN checkpoint; the feature network of fid/kid without --inception).
    #[arg(long)]
    pub damsm: Option<PathBuf>,
    /// pytorch-fid's Inception weights (pt_inception-2015-12-05-*.pth) for
    /// fid, kid and is.
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// Without --inception: a classifier trained by `t2i train --model
    /// classifier` on the data set, the feature network of fid, kid and is
    /// (labelled with its name).
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Generator samples for r-precision/fid/kid/is (0: one per image of the
    /// split; more reuse the captions in turn, e.g. 30000 as the papers).
    #[arg(long, default_value_t = 0)]
    pub num_samples: usize,
    /// Keep the generated samples here (chunks of 50) so an interrupted
    /// evaluation resumes; `eval --run` uses RUN/eval/samples-*.
    #[arg(long)]
    pub samples_dir: Option<PathBuf>,
    /// R-precision: the DAMSM image encoder averages each image with its
    /// mirror image (test-time augmentation; off unless the checkpoint's
    /// `image.flip_average` is on).
    #[arg(long)]
    pub flip_average: bool,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if let Some(run) = &a.run {
        if a.samples == 0 {
            bail!("--samples must be at least 1");
        }
        return crate::report_cmds::eval_run(&a, run);
    }
    let checkpoint = a
        .checkpoint
        .clone()
        .context("--checkpoint or --run is required")?;
    let metrics: Vec<String> = a.metric.split(',').map(|m| m.trim().to_string()).collect();
    let known = ["shapes", "r-precision", "fid", "kid", "is"];
    if let Some(m) = metrics.iter().find(|m| !known.contains(&m.as_str())) {
        bail!("unknown metric '{m}' (available: {})", known.join(", "));
    }
    if metrics.iter().any(|m| m != "shapes") {
        if metrics.iter().any(|m| m == "shapes") {
            bail!("--metric shapes cannot be combined with data-set metrics");
        }
        return crate::cub_cmds::eval_cub(&crate::cub_cmds::CubEval {
            checkpoint: &checkpoint,
            metrics,
            damsm: a.damsm.as_deref(),
            inception: a.inception.as_deref(),
            classifier: a.classifier.as_deref(),
            root: a.data_root.as_deref(),
            split: &a.split,
            seed: a.seed,
            out: &a.out,
            device: &a.device,
            num_samples: a.num_samples,
            samples_dir: a.samples_dir.clone(),
            flip_average: a.flip_average.then_some(true),
        });
    }
    if a.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let device = parse_device(&a.device)?;
    let ck = t2i::checkpoint::load(&checkpoint)?;
    if ck.meta("model")? == "stackgan" {
        let m = t2i::train::stackgan::StackGanModel::from_checkpoint(&ck, device)?;
        let mut v = crate::stackgan_cmds::eval_shapes(&m, a.seed, 10_000, a.samples)?;
        v["checkpoint"] = serde_json::json!(checkpoint.display().to_string());
        v["step"] = serde_json::json!(ck.meta("step")?);
        t2i::imageio::write_atomic(&a.out, serde_json::to_string_pretty(&v)?.as_bytes())?;
        crate::stackgan_cmds::print_shapes(&v);
        println!("wrote {}", a.out.display());
        return Ok(());
    }
    let model = GanIntClsModel::from_checkpoint(&ck, device)?;
    let data: ShapesConfig = toml::from_str(ck.meta("data")?).context("checkpoint data config")?;
    let mut summary = crate::demo::evaluate(&model, &data, a.samples, Some(a.seed))?;
    summary["checkpoint"] = serde_json::json!(checkpoint.display().to_string());
    summary["step"] = serde_json::json!(ck.meta("step")?);
    t2i::imageio::write_atomic(&a.out, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    crate::demo::print_summary(&summary);
    println!("wrote {}", a.out.display());
    Ok(())
}

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub m: ModelArgs,
}

pub fn info(a: InfoArgs) -> Result<()> {
    if a.m.model == "attngan" {
        let c = t2i::models::attngan::AttnGanConfig::preset(&a.m.preset).with_context(|| {
            format!(
                "unknown AttnGAN preset '{}' (use paper or tiny)",
                a.m.preset
            )
        })?;
        println!(
            "attngan ({} preset, {} stages from {}x{})",
            c.preset, c.branch_num, c.base_size, c.base_size
        );
        for (net, total, parts) in t2i::bench::attngan_parameter_counts(&c) {
            println!("{net:<16} {total:>12}");
            for (p, n) in parts {
                println!("  {p:<14} {n:>12}");
            }
        }
        return Ok(());
    }
    if a.m.model == "stackgan" {
        let c = t2i::models::stackgan::StackGanConfig::preset(&a.m.preset).with_context(|| {
            format!(
                "unknown StackGAN preset '{}' (use paper, paper128 or tiny)",
                a.m.preset
            )
        })?;
        println!(
            "stackgan ({} preset, Stage-I {}x{}, Stage-II {}x{})",
            c.preset, c.stage1_size, c.stage1_size, c.stage2_size, c.stage2_size
        );
        for (net, total, parts) in t2i::bench::stackgan_parameter_counts(&c) {
            println!("{net:<16} {total:>12}");
            for (p, n) in parts {
                println!("  {p:<14} {n:>12}");
            }
        }
        println!("(STAGE2_G holds the frozen STAGE1_G; its trainable part is the rest)");
        return Ok(());
    }
    let cfg = gan_config(&a.m, "gan-int-cls", None, None)?;
    let rows = t2i::bench::parameter_counts(&cfg);
    println!(
        "{} ({} preset, {}x{})",
        a.m.model, a.m.preset, cfg.image_size, cfg.image_size
    );
    for (net, total, parts) in rows {
        println!("{net:<16} {total:>12}");
        for (p, n) in parts {
            println!("  {p:<14} {n:>12}");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub m: ModelArgs,
    /// Timed repeats after warm-up.
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Batch size of the training iteration (default: the preset's).
    #[arg(long)]
    pub batch_size: Option<i64>,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if a.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    if a.m.model == "attngan" {
        let mut c =
            t2i::models::attngan::AttnGanConfig::preset(&a.m.preset).with_context(|| {
                format!(
                    "unknown AttnGAN preset '{}' (use paper or tiny)",
                    a.m.preset
                )
            })?;
        if let Some(b) = a.batch_size {
            if b < 2 {
                bail!("batch size must be at least 2, got {b}");
            }
            c.batch_size = b;
        }
        let device = parse_device(&a.device)?;
        let r = t2i::bench::bench_attngan(&c, device, a.repeats)?;
        println!("{}", r.table());
        if let Some(p) = &a.json {
            t2i::imageio::write_atomic(p, serde_json::to_string_pretty(&r)?.as_bytes())?;
            println!("wrote {}", p.display());
        }
        return Ok(());
    }
    if a.m.model == "stackgan" {
        let mut c =
            t2i::models::stackgan::StackGanConfig::preset(&a.m.preset).with_context(|| {
                format!(
                    "unknown StackGAN preset '{}' (use paper, paper128 or tiny)",
                    a.m.preset
                )
            })?;
        if let Some(b) = a.batch_size {
            if b < 2 {
                bail!("batch size must be at least 2, got {b}");
            }
            c.batch_size = b;
        }
        let device = parse_device(&a.device)?;
        let mut all = Vec::new();
        for stage in [1u8, 2] {
            let r = t2i::bench::bench_stackgan(&c, stage, device, a.repeats)?;
            println!("{}\n", r.table());
            all.push(r);
        }
        if let Some(p) = &a.json {
            t2i::imageio::write_atomic(p, serde_json::to_string_pretty(&all)?.as_bytes())?;
            println!("wrote {}", p.display());
        }
        return Ok(());
    }
    let mut cfg = gan_config(&a.m, "gan-int-cls", None, a.batch_size)?;
    cfg.text_dim = if cfg.preset == "paper" { 1024 } else { 128 };
    let device = parse_device(&a.device)?;
    let r = t2i::bench::bench_gan_int_cls(&cfg, device, a.repeats)?;
    println!("{}", r.table());
    if let Some(p) = &a.json {
        t2i::imageio::write_atomic(p, serde_json::to_string_pretty(&r)?.as_bytes())?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

#[derive(Args)]
pub struct ImportArgs {
    /// attngan (G_NET with the DAMSM text encoder) or stackgan (Stage-I or
    /// Stage-II G).
    #[arg(long)]
    pub model: String,
    /// The official generator: netG_epoch_*.pth, bird_AttnGAN2.pth ...
    #[arg(long)]
    pub weights: PathBuf,
    /// The text encoder: AttnGAN's official text_encoder*.pth (with
    /// --captions) or a t2i text-encoder checkpoint.
    #[arg(long)]
    pub text_encoder: PathBuf,
    /// AttnGAN: the data set's captions.pickle (the official vocabulary).
    #[arg(long)]
    pub captions: Option<PathBuf>,
    /// The t2i checkpoint to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn import(a: ImportArgs) -> Result<()> {
    let device = tch::Device::Cpu;
    let src = a.weights.display().to_string();
    match a.model.as_str() {
        "attngan" => {
            let m = t2i::import::import_attngan(
                &a.weights,
                &a.text_encoder,
                a.captions.as_deref(),
                device,
            )?;
            m.save(&a.out, &format!("imported from {src}"), 0)?;
            println!(
                "imported AttnGAN G ({} stages, ngf {}, text {}) and text encoder ({} words) -> {}",
                m.config.branch_num,
                m.config.gf_dim,
                m.config.text_dim,
                m.text.vocab.len(),
                a.out.display()
            );
        }
        "stackgan" => {
            let m = t2i::import::import_stackgan(&a.weights, &a.text_encoder, device)?;
            m.save(&a.out, 0)?;
            println!(
                "imported StackGAN Stage-{} G ({}) -> {}",
                if m.stage == 1 { "I" } else { "II" },
                m.config.preset,
                a.out.display()
            );
        }
        other => bail!("cannot import '{other}' (use attngan or stackgan)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::apply_overrides;
    use t2i::train::damsm::DamsmConfig;

    #[test]
    fn set_reaches_nested_fields_and_rejects_unknown_ones() {
        let c = DamsmConfig::tiny();
        let sets = ["batch_size=96".to_string(), "text.dim=256".to_string()];
        let o = apply_overrides(&c, &sets).unwrap();
        assert_eq!((o.batch_size, o.text.dim), (96, 256));
        assert_eq!(o.image, c.image);
        // one space for both encoders
        assert!(o.validate().unwrap_err().contains("image.dim"));
        let both = ["text.dim=256".to_string(), "image.dim=256".to_string()];
        assert!(apply_overrides(&c, &both).unwrap().validate().is_ok());
        for bad in ["text.nope=1", "nope.dim=1", "batch_size.x=1", "nope=1"] {
            let e = apply_overrides(&c, &[bad.to_string()])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("--set: unknown config"), "{bad}: {e}");
        }
    }
}
