//! Sub-commands: thin wrappers over the library.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use t2i::data::shapes::{Shapes, ShapesConfig};
use t2i::device::parse_device;
use t2i::family::{families, family, load_generator};
use t2i::imageio::{grid, tensor_to_images, Rgb};
use t2i::train::run::{LoopOptions, StopFlag, TrainRequest};

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
    /// Model family (`t2i info` lists them; default gan-int-cls; on
    /// --resume, the run's).
    #[arg(long)]
    pub model: Option<String>,
    /// Preset (default: the family's first, e.g. tiny; on --resume, the
    /// run's). `t2i info --model M` lists them.
    #[arg(long)]
    pub preset: Option<String>,
}

impl ModelArgs {
    fn model(&self) -> &str {
        self.model.as_deref().unwrap_or("gan-int-cls")
    }
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub m: ModelArgs,
    /// Run folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint (its model,
    /// preset, seed and config; a changed setting is applied and logged
    /// where the family allows it, refused otherwise).
    #[arg(long)]
    pub resume: bool,
    /// Training steps in all (default: 3000, or no limit with --minutes).
    #[arg(long)]
    pub steps: Option<i64>,
    /// Stop the training loop after this many minutes (0: no limit); phases
    /// before it (the shapes text encoder, `--text-steps`) and after it (the
    /// style encoder) are not counted.
    #[arg(long, default_value_t = 0.0)]
    pub minutes: f64,
    /// Set a field of the family's config, e.g. `--set ema_decay=0.999`,
    /// `--set text.dim=256` (repeatable; keys as in the run's config.toml,
    /// under [config]).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub flags: SharedFlags,
    /// Run seed (default 0; on --resume, the run's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Arithmetic of the training steps: fp32, or bf16 (libtorch's
    /// autocast: convolutions and matrix products in bfloat16, weights and
    /// optimiser in fp32; fast on CPUs with AVX512-BF16 or AMX and on recent
    /// GPUs).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// Cache of preprocessed images (default: $T2I_CACHE or ~/.cache/t2i).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[arg(long, default_value_t = 500)]
    pub sample_every: i64,
    /// A checkpoint (`checkpoints/step-N.safetensors` and `last`) every
    /// this many steps (0: only at the end).
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: i64,
    /// Step checkpoints kept, the newest (0: all); `last` is always kept.
    #[arg(long, default_value_t = 3)]
    pub keep_checkpoints: usize,
    /// Score the model with the shapes checker at the end (samples per
    /// split; 0: skip).
    #[arg(long, default_value_t = 500)]
    pub eval_samples: usize,
}

/// Shortcuts for common config fields; each family maps the ones that
/// apply to it to its own keys, and refuses the others.
#[derive(Args, Default)]
pub struct SharedFlags {
    /// Data set: shapes (built in) or cub (a folder in the CUB layout).
    #[arg(long)]
    pub data: Option<String>,
    /// Folder of a real data set (for cub: the folder holding CUB_200_2011/).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Image side (must be supported by the preset).
    #[arg(long)]
    pub image_size: Option<i64>,
    /// Batch size.
    #[arg(long)]
    pub batch_size: Option<i64>,
    /// Adam learning rate (of G and D).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Generator width.
    #[arg(long)]
    pub ngf: Option<i64>,
    /// Discriminator width (damsm, classifier: the image encoder's width).
    #[arg(long)]
    pub ndf: Option<i64>,
    /// GAN-INT-CLS objective: gan, gan-cls, gan-int or gan-int-cls.
    #[arg(long)]
    pub variant: Option<String>,
    /// Shapes training images.
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Objects per shapes image at most (1 or 2).
    #[arg(long)]
    pub max_objects: Option<u8>,
    /// Steps of the run's own text encoder (shapes).
    #[arg(long)]
    pub text_steps: Option<i64>,
    /// Fraction of text-encoder pairs that differ only in colour or shape.
    #[arg(long)]
    pub text_hard: Option<f64>,
    /// A trained text-encoder checkpoint to use instead of training one
    /// (styleT2I: the joint encoder, a DAMSM checkpoint or a CLIP folder).
    #[arg(long)]
    pub text_encoder: Option<PathBuf>,
    /// GAN-INT-CLS: style-encoder steps after the GAN.
    #[arg(long)]
    pub style_steps: Option<i64>,
    /// StackGAN stage to train (1 or 2).
    #[arg(long)]
    pub stage: Option<u8>,
    /// StackGAN Stage-II: the trained Stage-I run folder (or checkpoint).
    #[arg(long)]
    pub stage1: Option<PathBuf>,
    /// AttnGAN: the DAMSM checkpoint whose encoders (frozen) condition G.
    #[arg(long)]
    pub damsm: Option<PathBuf>,
    /// DAMSM: pretrained image body (an ImageNet EfficientNet-Lite .pth or
    /// a t2i classifier checkpoint).
    #[arg(long)]
    pub image_init: Option<PathBuf>,
    /// DAMSM: keep the pretrained image body fixed.
    #[arg(long)]
    pub freeze_image: bool,
    /// DAMSM: start the word vectors from all-MiniLM-L6-v2 (its folder).
    #[arg(long)]
    pub word_init: Option<PathBuf>,
}

impl SharedFlags {
    /// The flags given, by config-flag name, as TOML values.
    fn given(&self) -> Vec<(&'static str, String)> {
        let q = |s: &str| format!("{s:?}");
        let p = |p: &Path| format!("{:?}", p.display().to_string());
        let mut v: Vec<(&'static str, Option<String>)> = vec![
            ("data", self.data.as_deref().map(q)),
            ("data_root", self.data_root.as_deref().map(p)),
            ("image_size", self.image_size.map(|x| x.to_string())),
            ("batch_size", self.batch_size.map(|x| x.to_string())),
            ("lr", self.lr.map(|x| format!("{x:?}"))),
            ("ngf", self.ngf.map(|x| x.to_string())),
            ("ndf", self.ndf.map(|x| x.to_string())),
            ("variant", self.variant.as_deref().map(q)),
            ("train_size", self.train_size.map(|x| x.to_string())),
            ("max_objects", self.max_objects.map(|x| x.to_string())),
            ("text_steps", self.text_steps.map(|x| x.to_string())),
            ("text_hard", self.text_hard.map(|x| format!("{x:?}"))),
            ("text_encoder", self.text_encoder.as_deref().map(p)),
            ("style_steps", self.style_steps.map(|x| x.to_string())),
            ("stage", self.stage.map(|x| x.to_string())),
            ("stage1", self.stage1.as_deref().map(p)),
            ("damsm", self.damsm.as_deref().map(p)),
            ("image_init", self.image_init.as_deref().map(p)),
            ("word_init", self.word_init.as_deref().map(p)),
        ];
        if self.freeze_image {
            v.push(("freeze_image", Some("true".into())));
        }
        v.into_iter()
            .filter_map(|(k, x)| x.map(|x| (k, x)))
            .collect()
    }
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
    if a.minutes < 0.0 {
        bail!("--minutes must be at least 0, got {}", a.minutes);
    }
    if let Some(s) = a.steps.filter(|&s| s < 1) {
        bail!("--steps must be at least 1, got {s}");
    }
    let req = TrainRequest {
        model: if a.resume {
            a.m.model.clone()
        } else {
            Some(a.m.model().to_string())
        },
        preset: a.m.preset.clone(),
        flags: a.flags.given(),
        sets: a.set.clone(),
        out: a.out.clone(),
        resume: a.resume,
        seed: a.seed,
        device: parse_device(&a.device)?,
        cache: a
            .cache
            .clone()
            .unwrap_or_else(crate::cub_cmds::default_cache),
        schedule: LoopOptions {
            steps: a
                .steps
                .unwrap_or(if a.minutes > 0.0 { i64::MAX } else { 3000 }),
            max_seconds: (a.minutes * 60.0) as u64,
            log_every: 20,
            sample_every: a.sample_every,
            checkpoint_every: a.checkpoint_every,
            keep_checkpoints: a.keep_checkpoints,
            progress: true,
            precision: t2i::precision::Precision::parse(&a.precision)?,
        },
        eval_samples: a.eval_samples,
    };
    run_training(&req)
}

/// Runs a training request with Ctrl-C handling and prints its outcome.
pub fn run_training(req: &TrainRequest) -> Result<()> {
    let stop = stop_on_ctrl_c();
    let o = t2i::train::run::train(req, &stop)?;
    let ck = o.run.last_checkpoint();
    if o.report.interrupted {
        for l in &o.summary.lines {
            println!("{l}");
        }
        println!(
            "interrupted at step {}; checkpoint {}",
            o.report.steps,
            ck.display()
        );
        std::process::exit(130);
    }
    println!(
        "trained {} steps in {:.0} s; checkpoint {}",
        o.report.steps,
        o.report.seconds,
        ck.display()
    );
    if let Some(l) = o.report.loader_line() {
        println!("{l}");
    }
    for l in &o.summary.lines {
        println!("{l}");
    }
    if !o.summary.value.is_null() {
        println!("summary: {}", o.run.root.join("summary.json").display());
    }
    Ok(())
}

#[derive(Args)]
pub struct GenerateArgs {
    /// A checkpoint file, or a run folder (its checkpoints/last.safetensors).
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
    #[arg(short = 'o', long, default_value = "samples.png")]
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
    /// Draw without Compositional Attribute Adjustment (StyleT2I), to
    /// compare.
    #[arg(long)]
    pub no_caa: bool,
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
    /// GAWWN box models: draw the object in this box, `x,y,w,h` (top-left
    /// corner, width, height) in fractions of the image, or in pixels with a
    /// `px` suffix (`8,8,32,24px`). Default: the middle half.
    #[arg(long = "box", value_name = "X,Y,W,H", allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// GAWWN keypoint models: parts at these places, `name=x,y;name=x,y`
    /// (fractions, or pixels with `px`); `t2i info` lists the part names.
    /// Parts not given are drawn as not visible unless --complete-keypoints.
    #[arg(long, value_name = "NAME=X,Y;...", allow_hyphen_values = true)]
    pub keypoints: Option<String>,
    /// GAWWN keypoint models: fill the parts not given with the keypoint
    /// generator G_k (its own proposal per sample) and write all keypoints to
    /// OUT with the extension .keypoints.json.
    #[arg(long)]
    pub complete_keypoints: bool,
    /// GAWWN: N images of the same caption and noise, the box (or the
    /// keypoints) moving from the left edge to the right edge.
    #[arg(long, value_name = "N", conflicts_with_all = ["interpolate", "noise_interpolate", "style_from"])]
    pub box_sweep: Option<i64>,
    /// Show each sample this many times larger in the grid (nearest
    /// neighbour; for small images).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub zoom: u32,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// fp32, or bf16: the networks under libtorch's autocast (about half
    /// the time on CPUs with AVX512-BF16 or AMX and on recent GPUs; the
    /// images differ slightly from fp32's, and are the same for the same
    /// precision, seed and device).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
}

/// At most this many images per `generate` call.
const MAX_IMAGES: i64 = 1024;

/// Tells which full caption each sample was drawn as, when the model
/// completed a caption that leaves attributes out.
fn print_drawn_as(text: &str, drawn: Option<&[String]>) {
    let Some(drawn) = drawn.filter(|d| d.iter().any(|c| c != text)) else {
        return;
    };
    for (i, d) in drawn.iter().enumerate().take(8) {
        eprintln!("sample {i} drawn as: {d}");
    }
    if drawn.len() > 8 {
        eprintln!("({} more samples)", drawn.len() - 8);
    }
}

/// Tells which attributes Compositional Attribute Adjustment corrected.
fn print_corrected(corrected: Option<&[Vec<String>]>) {
    let Some(c) = corrected else { return };
    for (i, attrs) in c.iter().enumerate().take(8) {
        if attrs.is_empty() {
            eprintln!("sample {i}: attribute adjustment corrected nothing");
        } else {
            eprintln!(
                "sample {i}: attribute adjustment corrected {}",
                attrs.join(", ")
            );
        }
    }
    if c.len() > 8 {
        eprintln!("({} more samples)", c.len() - 8);
    }
}

fn warn_unknown(g: &dyn t2i::family::Generator, caption: &str) -> Result<()> {
    let unknown = g.unknown_words(caption)?;
    if !unknown.is_empty() {
        eprintln!(
            "warning: not in the model's vocabulary, left out: {}",
            unknown.join(", ")
        );
    }
    Ok(())
}

pub fn generate(a: GenerateArgs) -> Result<()> {
    let precision = t2i::precision::Precision::parse(&a.precision)?;
    t2i::precision::run(precision, || generate_in(a))?
}

fn generate_in(a: GenerateArgs) -> Result<()> {
    if !(1..=MAX_IMAGES).contains(&a.n) {
        bail!("-n must be in 1..={MAX_IMAGES}, got {}", a.n);
    }
    let interpolating = a.interpolate.is_some() || a.noise_interpolate;
    if interpolating && !(2..=MAX_IMAGES).contains(&a.steps) {
        bail!(
            "--steps must be in 2..={MAX_IMAGES} for an interpolation, got {}",
            a.steps
        );
    }
    if let Some(dir) = &a.out_dir {
        if dir.exists() && !dir.is_dir() {
            bail!("--out-dir {} is not a folder", dir.display());
        }
    }
    let device = parse_device(&a.device)?;
    let path = t2i::checkpoint::checkpoint_file(&a.checkpoint)?;
    let ck = t2i::checkpoint::load(&path)?;
    let mut g = load_generator(&ck, device)?;
    let ctl = g.controls();
    let fam = g.family();
    // an unconditional backbone draws from --text '' and refuses words
    if a.text.trim().is_empty() && !ctl.unconditional {
        bail!("the caption is empty");
    }
    if a.no_caa {
        if !ctl.caa {
            bail!("--no-caa needs a model with attribute adjustment ({fam} models have none)");
        }
        g.set_caa(false)?;
    }
    let need = |ok: bool, what: &str| -> Result<()> {
        if !ok {
            bail!("{what} needs a model that supports it ({fam} models do not)");
        }
        Ok(())
    };
    need(ctl.attention || !a.attention, "--attention")?;
    need(ctl.interpolate || !interpolating, "interpolation")?;
    need(ctl.style_transfer || a.style_from.is_none(), "--style-from")?;
    need(ctl.boxes || a.bbox.is_none(), "--box")?;
    need(
        ctl.keypoints || (a.keypoints.is_none() && !a.complete_keypoints),
        "--keypoints and --complete-keypoints",
    )?;
    need(
        ctl.boxes || ctl.keypoints || a.box_sweep.is_none(),
        "--box-sweep",
    )?;
    if let Some(k) = a.box_sweep {
        if !(2..=MAX_IMAGES).contains(&k) {
            bail!("--box-sweep must be in 2..={MAX_IMAGES}, got {k}");
        }
    }
    let size = g.image_size();
    let request = t2i::placement::Request {
        bbox: a
            .bbox
            .as_deref()
            .map(|b| t2i::placement::parse_box(b, size))
            .transpose()?,
        keypoints: a
            .keypoints
            .as_deref()
            .map(|k| t2i::placement::parse_keypoints(k, &g.part_names(), size))
            .transpose()?,
        complete: a.complete_keypoints,
        sweep: a.box_sweep.map(|k| k as usize),
    };
    warn_unknown(g.as_ref(), &a.text)?;
    let mut singles = None;
    let mut keypoints_json = None;
    let (images, label) = if ctl.boxes || ctl.keypoints {
        let placed = t2i::placement::generate(g.as_ref(), &a.text, &request, a.n as usize, a.seed)?;
        singles = Some(placed.images.shallow_clone());
        let mut imgs = tensor_to_images(&placed.images);
        for (img, l) in imgs.iter_mut().zip(&placed.layouts) {
            t2i::placement::draw(img, l, Some(&placed.given));
        }
        print_drawn_as(&a.text, placed.drawn_as.as_deref());
        if placed.completed {
            let parts = g.part_names();
            let samples: Vec<_> = placed
                .layouts
                .iter()
                .filter_map(|l| match l {
                    t2i::family::Layout::Keypoints(kp) => {
                        Some(t2i::placement::keypoints_json(&parts, kp, &placed.given))
                    }
                    t2i::family::Layout::Box(_) => None,
                })
                .collect();
            let doc = serde_json::json!({
                "caption": a.text,
                "seed": a.seed,
                "units": "fractions of the image, origin top left",
                "samples": samples,
            });
            keypoints_json = Some((a.out.with_extension("keypoints.json"), doc));
        }
        let what = match (a.box_sweep, ctl.boxes) {
            (Some(_), true) => " (box sweep)",
            (Some(_), false) => " (keypoint sweep)",
            _ => "",
        };
        (
            t2i::imageio::images_to_tensor(
                &imgs.iter().map(|i| i.data.as_slice()).collect::<Vec<_>>(),
                size as u32,
            ),
            format!("{}{what}", a.text),
        )
    } else if let Some(t2) = &a.interpolate {
        warn_unknown(g.as_ref(), t2)?;
        (
            g.interpolate(&a.text, t2, a.steps, a.seed)?,
            format!("{} -> {}", a.text, t2),
        )
    } else if a.noise_interpolate {
        (
            g.noise_interpolate(&a.text, a.steps, a.seed)?,
            format!("{} (noise interpolation)", a.text),
        )
    } else if let Some(q) = &a.style_from {
        let size = g.image_size() as u32;
        let query = Rgb::load(q, size)?;
        let qt = t2i::imageio::images_to_tensor(&[query.data.as_slice()], size);
        let x = g.style_transfer(&qt, &[a.text.as_str()])?;
        (
            tch::Tensor::cat(&[qt, x], 0),
            format!("style of {} + \"{}\"", q.display(), a.text),
        )
    } else {
        let caps = vec![a.text.as_str(); a.n as usize];
        let out = g.generate(&caps, a.seed)?;
        print_drawn_as(&a.text, out.drawn_as.as_deref());
        print_corrected(out.corrected.as_deref());
        singles = Some(out.images.shallow_clone());
        let shown = match &out.first_stage {
            Some(first) => {
                let s = out.images.size()[2];
                let up = first.upsample_nearest2d([s, s], None, None);
                tch::Tensor::stack(&[up, out.images.shallow_clone()], 1).view([2 * a.n, 3, s, s])
            }
            None => out.images,
        };
        (shown, a.text.clone())
    };
    // build everything before writing anything
    let attention = if a.attention {
        let stem = a
            .out
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "samples".into());
        let path = a.out.with_file_name(format!("{stem}-attention.png"));
        Some((path, g.attention_figure(&a.text, a.seed, a.top_words)?))
    } else {
        None
    };
    let imgs: Vec<Rgb> = tensor_to_images(&images)
        .iter()
        .map(|i| i.zoom(a.zoom))
        .collect();
    let cols = 8;
    let mut rows: Vec<(Vec<Rgb>, Option<String>)> =
        imgs.chunks(cols).map(|c| (c.to_vec(), None)).collect();
    if let Some(last) = rows.last_mut() {
        last.1 = Some(label);
    }
    grid(&rows, 2).save(&a.out)?;
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let each = singles.unwrap_or(images);
        for (i, im) in tensor_to_images(&each).iter().enumerate() {
            im.save(&dir.join(format!("sample-{i:03}.png")))?;
        }
    }
    println!("wrote {}", a.out.display());
    if let Some((path, doc)) = keypoints_json {
        let text = serde_json::to_string_pretty(&doc)?;
        t2i::imageio::write_atomic(&path, text.as_bytes())?;
        println!("wrote {} (the keypoints of each sample)", path.display());
    }
    if let Some((path, fig)) = attention {
        fig.save(&path)?;
        println!(
            "wrote {} (attention maps of the first sample)",
            path.display()
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct EvalArgs {
    /// A checkpoint file, or a run folder (its last checkpoint).
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
    /// shapes (checker metrics of a shapes checkpoint; GAWWN's box and
    /// keypoint control too), or a comma-separated list of r-precision,
    /// clip-score, fid, kid, is, control (a generator's samples for a data set's captions, a
    /// GAWWN model's at the images' boxes or parts; control reads them with
    /// --part-locator; r-precision alone also scores the real images with a
    /// DAMSM checkpoint).
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
    /// clip-score: a CLIP folder (config.json, tokenizer.json,
    /// model.safetensors in the layout of Hugging Face's
    /// openai/clip-vit-base-patch32); without it the --damsm encoders score.
    #[arg(long)]
    pub clip: Option<PathBuf>,
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
    /// control: the part locator (`t2i train --model part-locator`) that
    /// reads the box and parts of each sample (and of the real images, for
    /// comparison).
    #[arg(long)]
    pub part_locator: Option<PathBuf>,
    /// StyleT2I: draw without Compositional Attribute Adjustment, to
    /// compare (the report says how many samples CAA corrected when on).
    #[arg(long)]
    pub no_caa: bool,
    /// A file of free-form captions (one per line, `#` comments): each is
    /// drawn --samples times and scored by the shapes checker on the
    /// attributes it names, beside the data set's full captions on the same
    /// attributes.
    #[arg(long)]
    pub captions: Option<PathBuf>,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if let Some(run) = &a.run {
        if a.samples == 0 {
            bail!("--samples must be at least 1");
        }
        let o = t2i::eval::run_report::RunEvalOptions {
            device: parse_device(&a.device)?,
            cache: crate::cub_cmds::default_cache(),
            seed: a.seed,
            samples: a.samples,
            metric: a.metric.clone(),
            data_root: a.data_root.clone(),
            damsm: a.damsm.clone(),
            clip: a.clip.clone(),
            split: a.split.clone(),
            inception: a.inception.clone(),
            classifier: a.classifier.clone(),
            num_samples: a.num_samples,
            samples_dir: a.samples_dir.clone(),
            flip_average: a.flip_average,
            over_steps: a.over_steps,
        };
        return Ok(t2i::eval::run_report::eval_run(&o, run)?);
    }
    let checkpoint = a
        .checkpoint
        .clone()
        .context("--checkpoint or --run is required")?;
    let checkpoint = t2i::checkpoint::checkpoint_file(&checkpoint)?;
    let metrics: Vec<String> = a.metric.split(',').map(|m| m.trim().to_string()).collect();
    let known = [
        "shapes",
        "r-precision",
        "clip-score",
        "fid",
        "kid",
        "is",
        "control",
    ];
    if let Some(m) = metrics.iter().find(|m| !known.contains(&m.as_str())) {
        bail!("unknown metric '{m}' (available: {})", known.join(", "));
    }
    if metrics.iter().any(|m| m != "shapes") {
        if metrics.iter().any(|m| m == "shapes") {
            bail!("--metric shapes cannot be combined with data-set metrics");
        }
        // a run folder names its last checkpoint, as for --checkpoint
        let damsm = a
            .damsm
            .as_deref()
            .map(t2i::checkpoint::checkpoint_file)
            .transpose()?;
        let cache = crate::cub_cmds::default_cache();
        let e = t2i::eval::dataset::DatasetEval {
            checkpoint: &checkpoint,
            metrics,
            damsm: damsm.as_deref(),
            clip: a.clip.as_deref(),
            inception: a.inception.as_deref(),
            classifier: a.classifier.as_deref(),
            split: &a.split,
            seed: a.seed,
            device: parse_device(&a.device)?,
            cache: &cache,
            num_samples: a.num_samples,
            samples_dir: a.samples_dir.clone(),
            flip_average: a.flip_average.then_some(true),
            part_locator: a.part_locator.as_deref(),
            no_caa: a.no_caa,
        };
        return crate::cub_cmds::eval_cub(&e, a.data_root.as_deref(), &a.out);
    }
    if a.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let device = parse_device(&a.device)?;
    let ck = t2i::checkpoint::load(&checkpoint)?;
    let mut g = load_generator(&ck, device)?;
    if a.no_caa {
        g.set_caa(false)?; // refused in one line by models without CAA
    }
    let data = t2i::eval::shapes::shapes_data(&ck)?;
    if g.controls().unconditional {
        // a backbone without text: what it draws against the training images
        let reading = t2i::eval::shapes::read_unconditional(g.as_ref(), &data, a.samples, a.seed)?;
        let mut v = serde_json::to_value(&reading)?;
        v["checkpoint"] = serde_json::json!(checkpoint.display().to_string());
        v["step"] = serde_json::json!(ck.meta("step")?);
        t2i::imageio::write_atomic(&a.out, serde_json::to_string_pretty(&v)?.as_bytes())?;
        for l in reading.lines() {
            println!("{l}");
        }
        println!("wrote {}", a.out.display());
        return Ok(());
    }
    if let Some(file) = &a.captions {
        let captions = t2i::eval::captions::read_caption_file(file)?;
        let shapes = t2i::data::shapes::Shapes::new(t2i::data::shapes::ShapesConfig {
            test_size: data.test_size.max(a.samples),
            image_size: g.image_size() as u32,
            ..data
        })?;
        let report =
            t2i::eval::captions::score_captions(g.as_ref(), &shapes, &captions, a.samples, a.seed)?;
        let mut v = serde_json::to_value(&report)?;
        v["checkpoint"] = serde_json::json!(checkpoint.display().to_string());
        v["captions_file"] = serde_json::json!(file.display().to_string());
        t2i::imageio::write_atomic(&a.out, serde_json::to_string_pretty(&v)?.as_bytes())?;
        for l in t2i::eval::captions::report_lines(&report) {
            println!("{l}");
        }
        println!("wrote {}", a.out.display());
        return Ok(());
    }
    let mut summary = t2i::eval::shapes::evaluate(g.as_ref(), &data, a.samples, a.seed)?;
    summary["checkpoint"] = serde_json::json!(checkpoint.display().to_string());
    summary["step"] = serde_json::json!(ck.meta("step")?);
    t2i::imageio::write_atomic(&a.out, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    for l in t2i::eval::shapes::summary_lines(&summary) {
        println!("{l}");
    }
    println!("wrote {}", a.out.display());
    Ok(())
}

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub m: ModelArgs,
    /// Change a setting of the preset before counting (`--set
    /// condition=keypoints`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Describe a checkpoint (or a run folder's last one) instead: its
    /// family, step, image size, controls and part names.
    #[arg(long, conflicts_with_all = ["model", "preset", "sets"])]
    pub checkpoint: Option<PathBuf>,
}

pub fn info(a: InfoArgs) -> Result<()> {
    if let Some(c) = &a.checkpoint {
        let path = t2i::checkpoint::checkpoint_file(c)?;
        let ck = t2i::checkpoint::load(&path)?;
        let g = load_generator(&ck, tch::Device::Cpu)?;
        println!("{}", path.display());
        println!("family    {}", g.family());
        if let Ok(step) = ck.meta("step") {
            println!("step      {step}");
        }
        println!("image     {0}x{0}", g.image_size());
        if let Ok(kind) = ck.meta("text_encoder.kind") {
            let source = ck.meta("text_encoder.source").unwrap_or("");
            println!("text      {kind} (from {source})");
        }
        let ctl = serde_json::to_value(g.controls())?;
        let on: Vec<&str> = ctl
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| v.as_bool() == Some(true))
                    .map(|(k, _)| k.as_str())
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "controls  {}",
            if on.is_empty() {
                "-".into()
            } else {
                on.join(", ")
            }
        );
        let parts = g.part_names();
        if !parts.is_empty() {
            println!(
                "parts     {} (for --keypoints name=x,y;...)",
                parts.join(", ")
            );
        }
        return Ok(());
    }
    if a.m.model.is_none() {
        println!("families (t2i info --model NAME for parameter counts):");
        for f in families() {
            println!(
                "  {:<14} presets {:<24} {}",
                f.name(),
                f.presets().join(", "),
                f.about()
            );
        }
        return Ok(());
    }
    let fam = family(a.m.model())?;
    let preset = a.m.preset.as_deref().unwrap_or(fam.presets()[0]);
    let mut config = fam.config(preset)?;
    if !a.sets.is_empty() {
        t2i::family::apply_sets(&mut config, &a.sets)?;
        config = fam.check(&config)?;
    }
    let (head, rows) = fam.parameter_counts(&config)?;
    println!("{head}");
    for (net, total, parts) in rows {
        println!("{net:<28} {total:>12}");
        for (p, n) in parts {
            println!("  {p:<26} {n:>12}");
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
    /// Change a setting of the preset (`--set condition=keypoints`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// fp32, or bf16 (the training iteration and generation under
    /// libtorch's autocast, as `train --precision bf16`).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// Only this stage of a multi-stage model (StackGAN: 1 or 2; default:
    /// every stage).
    #[arg(long)]
    pub stage: Option<u8>,
    /// First measure the machine's dense-product peak (the faster of a
    /// 2048x2048 matmul and a large 1x1 convolution, in the bench's
    /// precision and threads) and show each timing's share of it.
    #[arg(long)]
    pub peak: bool,
    /// Also profile one warm call of every timed row: the wall time of
    /// each libtorch op (the backward pass as its autograd nodes), the
    /// slowest 15 printed under the table, all of them in --json.
    #[arg(long)]
    pub profile: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Instead of timing, write the fixture the family's PyTorch twin
    /// checks itself against into this folder (`bench/compare.sh` does).
    #[arg(long, value_name = "DIR")]
    pub twin_fixture: Option<PathBuf>,
    /// Load-test a running `t2i serve` at this address (http://HOST:PORT)
    /// instead of timing a model in-process.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// With --server: generation requests in the burst.
    #[arg(long, default_value_t = 200, requires = "server")]
    pub requests: usize,
    /// With --server: requests open at once (default: all of them).
    #[arg(long, requires = "server")]
    pub concurrency: Option<usize>,
    /// With --server: images per request.
    #[arg(long, default_value_t = 1, requires = "server")]
    pub images: usize,
    /// With --server: the model id to ask (default: the server's first).
    #[arg(long, requires = "server")]
    pub server_model: Option<String>,
    /// With --server: the caption (default: one for the model's data set).
    #[arg(long, requires = "server")]
    pub caption: Option<String>,
}

/// `t2i bench --server URL`: the load test of a running server.
fn bench_server(a: &BenchArgs, url: &str) -> Result<()> {
    const MAX_REQUESTS: usize = 100_000;
    if a.requests > MAX_REQUESTS {
        bail!("--requests {} is more than {MAX_REQUESTS}", a.requests);
    }
    let plan = crate::serve::load::LoadPlan {
        addr: crate::serve::load::parse_addr(url)?,
        model: a.server_model.clone(),
        caption: a.caption.clone(),
        requests: a.requests,
        concurrency: a.concurrency.unwrap_or(a.requests).min(a.requests).max(1),
        images: a.images,
        timeout: std::time::Duration::from_secs(600),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = rt.block_on(crate::serve::load::run(plan))?;
    println!("{report}");
    if let Some(p) = &a.json {
        t2i::imageio::write_atomic(p, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if let Some(url) = &a.server {
        return bench_server(&a, url);
    }
    if a.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let fam = family(a.m.model())?;
    let preset = a.m.preset.as_deref().unwrap_or(fam.presets()[0]);
    let mut config = fam.config(preset)?;
    if let Some(b) = a.batch_size {
        let keys = fam.flag_keys("batch_size");
        let sets: Vec<String> = keys.iter().map(|k| format!("{k}={b}")).collect();
        t2i::family::apply_sets(&mut config, &sets)?;
    }
    t2i::family::apply_sets(&mut config, &a.sets)?;
    // a benchmark draws random images: a real data set's folder is not read
    let needs_folder = config
        .get("data")
        .and_then(|d| d.as_table())
        .is_some_and(|d| {
            d.get("name").and_then(|n| n.as_str()) != Some("shapes")
                && d.get("root").and_then(|r| r.as_str()) == Some("")
        });
    if needs_folder {
        t2i::family::apply_sets(&mut config, &["data.root=\"(not read)\"".to_string()])?;
    }
    if let Some(s) = a.stage {
        if fam.flag_keys("stage").is_empty() {
            bail!("{} has no stages: --stage is for StackGAN", fam.name());
        }
        if !(1..=2).contains(&s) {
            bail!("--stage must be 1 or 2, not {s}");
        }
    }
    config = fam.check(&config)?;
    let device = parse_device(&a.device)?;
    let precision = t2i::precision::Precision::parse(&a.precision)?;
    if let Some(dir) = &a.twin_fixture {
        println!("{}", fam.twin_fixture(&config, device, dir)?);
        return Ok(());
    }
    let opts = t2i::family::BenchOptions {
        device,
        repeats: a.repeats,
        stage: a.stage,
    };
    let peak = if a.peak {
        Some(t2i::precision::run(precision, || {
            t2i::bench::measure_peak(device, a.repeats.max(3))
        })?)
    } else {
        None
    };
    t2i::bench::set_profiling(a.profile);
    let results = t2i::precision::run(precision, || fam.bench(&config, &opts))??;
    println!("precision {}", precision.name());
    if let Some(p) = peak {
        println!(
            "peak {p:.1} GFLOP/s (the faster of a 2048x2048 matmul and a 1x1 convolution, {}, {} threads)",
            t2i::device::device_name(device),
            tch::get_num_threads()
        );
    }
    println!();
    for (_, table) in &results {
        println!("{table}\n");
    }
    if let Some(p) = &a.json {
        let v: Vec<_> = results
            .into_iter()
            .map(|(mut v, _)| {
                v["precision"] = serde_json::json!(precision.name());
                v["peak_gflops"] = serde_json::json!(peak);
                v
            })
            .collect();
        let v = if v.len() == 1 {
            v.into_iter().next().unwrap_or_default()
        } else {
            serde_json::Value::Array(v)
        };
        t2i::imageio::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

#[derive(Args)]
pub struct ImportArgs {
    /// attngan (G_NET with the DAMSM text encoder), stackgan (Stage-I or
    /// Stage-II G) or stylegan2 (rosinality's / StyleT2I's .pt).
    #[arg(long)]
    pub model: String,
    /// The official generator: netG_epoch_*.pth, bird_AttnGAN2.pth,
    /// StyleGAN2's checkpoint .pt (g, d, g_ema) ...
    #[arg(long)]
    pub weights: PathBuf,
    /// The text encoder (attngan, stackgan): AttnGAN's official
    /// text_encoder*.pth (with --captions) or a t2i text-encoder checkpoint.
    #[arg(long)]
    pub text_encoder: Option<PathBuf>,
    /// AttnGAN: the data set's captions.pickle (the official vocabulary).
    #[arg(long)]
    pub captions: Option<PathBuf>,
    /// The t2i checkpoint to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn import(a: ImportArgs) -> Result<()> {
    let line = family(&a.model)?.import(&t2i::family::ImportRequest {
        weights: &a.weights,
        text_encoder: a.text_encoder.as_deref(),
        captions: a.captions.as_deref(),
        out: &a.out,
    })?;
    println!("{line}");
    Ok(())
}
