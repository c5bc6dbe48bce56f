//! Commands on real data sets: `data prepare`, `train --model damsm`,
//! `eval --metric r-precision`.

use crate::commands::stop_on_ctrl_c;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use t2i::data::cub::CubSplit;
use t2i::device::parse_device;
use t2i::train::damsm::{damsm_run, load_cub, DamsmConfig, DamsmRunOptions, DamsmTrainer};
use t2i::train::run::versions;

/// Preprocessed-image cache: `$T2I_CACHE`, else `$XDG_CACHE_HOME/t2i`, else
/// `~/.cache/t2i`.
pub fn default_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("T2I_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("t2i");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("t2i"))
        .unwrap_or_else(|| PathBuf::from(".t2i-cache"))
}

fn parse_split(s: &str) -> Result<Vec<CubSplit>> {
    Ok(match s {
        "all" => vec![CubSplit::Train, CubSplit::Test],
        _ => vec![CubSplit::parse(s)
            .with_context(|| format!("unknown split '{s}' (use train, test or all)"))?],
    })
}

fn check_size(size: i64) -> Result<()> {
    if ![32, 64, 128, 256].contains(&size) {
        bail!("--size must be 32, 64, 128 or 256, got {size}");
    }
    Ok(())
}

/// `t2i data prepare`: builds (or checks) the cache and measures the loader.
pub fn prepare(
    data: &str,
    root: &Path,
    split: &str,
    size: i64,
    cache: Option<PathBuf>,
) -> Result<()> {
    if data != "cub" {
        bail!("data set '{data}' has no loader yet (available: cub)");
    }
    check_size(size)?;
    let cache = cache.unwrap_or_else(default_cache);
    for sp in parse_split(split)? {
        let t0 = Instant::now();
        let (d, lines) = load_cub(root, sp, size, Some(&cache), true, true)?;
        let prep_s = t0.elapsed().as_secs_f64();
        for l in &lines {
            println!("{l}");
        }
        let n = d.captions.len();
        println!(
            "CUB {}: prepared in {prep_s:.1} s ({:.0} images/s)",
            sp.name(),
            n as f64 / prep_s
        );
        // loader throughput: random crop + flip + tensor, batches of 64
        let mut rng = t2i::data::prepare::ImageBatcher::rng(0, 0);
        let t1 = Instant::now();
        let mut k = 0usize;
        while t1.elapsed().as_secs_f64() < 2.0 {
            let idx: Vec<usize> = (0..64).map(|j| (k * 64 + j) % n).collect();
            let _ = d.images.batch(&idx, &mut rng, tch::Device::Cpu);
            k += 1;
        }
        println!(
            "CUB {} batches at {size}x{size}: {:.0} images/s (random crop, flip, batch 64)",
            sp.name(),
            (k * 64) as f64 / t1.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Arguments shared by `train --model damsm`.
pub struct DamsmTrainArgs<'a> {
    pub preset: &'a str,
    pub data: &'a str,
    pub root: Option<&'a Path>,
    pub cache: Option<PathBuf>,
    pub out: &'a Path,
    pub resume: bool,
    pub steps: i64,
    pub minutes: f64,
    pub batch_size: Option<i64>,
    pub lr: Option<f64>,
    pub width: Option<i64>,
    pub word_weight: Option<f64>,
    pub image_init: Option<&'a Path>,
    pub freeze_image: bool,
    pub multi_level: bool,
    pub word_init: Option<&'a Path>,
    pub seed: u64,
    pub device: &'a str,
    pub checkpoint_every: i64,
    /// `--set KEY=VALUE` overrides of the DAMSM config (dotted keys for
    /// nested tables: `text.dim=256`).
    pub set: &'a [String],
}

pub fn train_damsm(a: DamsmTrainArgs) -> Result<()> {
    if a.data != "cub" {
        bail!("DAMSM trains on a captioned image set: use --data cub --data-root DIR");
    }
    let root = a.root.context("--data-root is required with --data cub")?;
    let device = parse_device(a.device)?;
    let mut config = DamsmConfig::preset(a.preset)
        .with_context(|| format!("unknown DAMSM preset '{}' (available: tiny)", a.preset))?;
    if let Some(b) = a.batch_size {
        if b < 2 {
            bail!("batch size must be at least 2, got {b}");
        }
        config.batch_size = b as usize;
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr < 1.0) {
            bail!("--lr must be in (0, 1), got {lr}");
        }
        config.lr = lr;
    }
    if let Some(w) = a.width {
        if !(8..=256).contains(&w) {
            bail!("--ndf (image encoder width) must be in 8..=256, got {w}");
        }
        config.image.width = w;
    }
    if let Some(w) = a.word_weight {
        if !(0.0..=10.0).contains(&w) {
            bail!("--word-weight must be in [0, 10], got {w}");
        }
        config.word_weight = w;
    }
    config.image.global_from_regions = a.multi_level;
    // an official `.pth` is ImageNet EfficientNet-Lite0; anything else a
    // t2i classifier checkpoint
    let imagenet = a
        .image_init
        .filter(|p| p.extension().is_some_and(|e| e == "pth"));
    if let Some(p) = imagenet {
        use t2i::models::damsm::CnnArch;
        // Lite0 and Lite2 differ in what their head reads: 320 / 352 channels
        let w = t2i::import::read_weights(p)
            .with_context(|| format!("reading ImageNet weights {}", p.display()))?;
        let head_in = w.get("_conv_head.weight").map(|t| t.size()[1]);
        config.image.arch = match head_in {
            Some(320) => CnnArch::EfficientnetLite0,
            Some(352) => CnnArch::EfficientnetLite2,
            _ => bail!(
                "{} is neither EfficientNet-Lite0 nor -Lite2 weights (its _conv_head reads {head_in:?} channels)",
                p.display()
            ),
        };
        config.image.image_size = config.image.arch.lite().map_or(224, |l| l.input);
        config.image.frozen_body = a.freeze_image;
    }
    let init = a
        .image_init
        .filter(|_| imagenet.is_none())
        .map(|p| -> Result<_> {
            let ck = t2i::checkpoint::load(p)
                .with_context(|| format!("reading the classifier {}", p.display()))?;
            let c: t2i::models::classifier::ClassifierConfig = ck.json_meta("config")?;
            Ok((ck, c))
        })
        .transpose()?;
    if let Some((_, c)) = &init {
        config.image.arch = t2i::models::damsm::CnnArch::Vgg;
        config.image.width = c.width;
        config.image.image_size = c.image_size;
        config.image.frozen_body = a.freeze_image;
    } else if a.freeze_image && imagenet.is_none() {
        bail!("--freeze-image keeps a pretrained image body fixed: give it with --image-init CKPT");
    }
    let minilm = a
        .word_init
        .map(|p| {
            t2i::text::minilm::MiniLm::load(p, tch::Device::Cpu)
                .with_context(|| format!("reading MiniLM for --word-init from {}", p.display()))
        })
        .transpose()?;
    if let Some(m) = &minilm {
        config.text.embed_dim = t2i::text::TextEncoder::sentence_dim(m);
    }
    let config = crate::commands::apply_overrides(&config, a.set)?;
    config.validate().map_err(anyhow::Error::msg)?;
    if config.text.minilm_sentence && minilm.is_none() && !a.resume {
        bail!("text.minilm_sentence maps all-MiniLM-L6-v2 sentence vectors: give its folder with --word-init DIR");
    }
    let cache = a.cache.clone().unwrap_or_else(default_cache);
    let size = config.image.image_size;
    let train = load_cub_verbose(root, CubSplit::Train, size, Some(&cache), true, true)?
        .first_classes(config.train_classes);
    if config.train_classes > 0 {
        eprintln!(
            "training on the first {} classes: {} images",
            config.train_classes,
            train.captions.len()
        );
    }
    let test = load_cub_verbose(root, CubSplit::Test, size, Some(&cache), false, true)?;
    let (run, resume) = crate::run_setup::open_run(a.out, a.resume)?;
    let stop = stop_on_ctrl_c();
    let mut t = if let Some(ck) = resume {
        let t = DamsmTrainer::from_checkpoint(&ck, device)?;
        crate::run_setup::resumed(&run, a.out, t.step)?;
        t
    } else {
        // vocabulary of the training captions only
        let vocab = t2i::text::Vocab::build(train.captions.iter().flatten().map(String::as_str), 1);
        eprintln!(
            "vocabulary: {} words from the training captions",
            vocab.len()
        );
        let mut t = DamsmTrainer::new(config.clone(), vocab, a.seed, device);
        if let Some(m) = minilm {
            let n = t.text.init_words_from_minilm(&m)?;
            eprintln!("word vectors: {n} words from all-MiniLM-L6-v2");
            if t.config.text.minilm_sentence {
                t.text.attach_minilm(m)?;
                let bilstm = if t.config.text.minilm_only {
                    ""
                } else {
                    "BiLSTM + "
                };
                eprintln!("sentence vectors: {bilstm}emb_minilm(all-MiniLM-L6-v2)");
            }
        }
        if let Some(p) = imagenet {
            let n = t
                .init_image_from_weights(p)
                .with_context(|| format!("reading ImageNet weights {}", p.display()))?;
            eprintln!(
                "image encoder: {:?}, {n} tensors from {}",
                t.config.image.arch,
                p.display()
            );
        }
        if let Some((ck, _)) = &init {
            let n = t.init_image_from_classifier(ck)?;
            eprintln!(
                "image encoder: {n} tensors from the classifier {}",
                a.image_init
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        t
    };
    let opts = DamsmRunOptions {
        steps: a.steps,
        max_seconds: (a.minutes * 60.0) as u64,
        log_every: 50,
        eval_every: 500,
        eval_images: 1000,
        checkpoint_every: a.checkpoint_every,
        progress: true,
        cache_dir: Some(cache.clone()),
    };
    let resolved = serde_json::json!({
        "model": "damsm",
        "versions": versions(),
        "device": t2i::device::device_name(device),
        "data": { "name": "cub", "root": root.display().to_string(), "train_images": train.captions.len(), "test_images": test.captions.len() },
        "seed": a.seed,
        "damsm": t.config,
        "image_init": a.image_init.map(|p| p.display().to_string()).unwrap_or_default(),
        "word_init": a.word_init.map(|p| p.display().to_string()).unwrap_or_default(),
        "train": opts,
    });
    crate::run_setup::write_resolved(&run, resolved)?;
    let report = damsm_run(&mut t, &train, Some(&test), &run, &opts, &stop)?;
    let text_path = run.root.join("text_encoder.safetensors");
    t.text.save(&text_path)?;
    if report.interrupted {
        crate::run_setup::exit_interrupted(&run, report.steps);
    }
    println!(
        "trained {} steps in {:.0} s; checkpoint {}; text encoder {}",
        report.steps,
        report.seconds,
        run.last_checkpoint().display(),
        text_path.display()
    );
    let r = t.real_r_precision(&test, usize::MAX, 0)?;
    let summary = serde_json::json!({
        "steps": report.steps,
        "seconds": report.seconds,
        "last": report.last,
        "r_precision_real_test": r,
        "protocol": "real CUB test images (unseen classes), centre crop; each image's caption (one of its 10, seed 0) ranked among 1 true + 99 captions of other classes by cosine of DAMSM sentence and global image vectors; mean +- std over 10 folds",
    });
    let path = run.root.join("summary.json");
    t2i::imageio::write_atomic(&path, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!(
        "R-precision of real test images: {:.2}% +- {:.2} ({} images); summary {}",
        100.0 * r.mean,
        100.0 * r.std,
        r.images,
        path.display()
    );
    Ok(())
}

/// What `eval` computes on a data set in the CUB layout.
pub struct CubEval<'a> {
    pub checkpoint: &'a Path,
    /// Any of r-precision, fid, kid, is.
    pub metrics: Vec<String>,
    pub damsm: Option<&'a Path>,
    pub inception: Option<&'a Path>,
    /// The project's classifier (`train --model classifier`): feature network
    /// of fid, kid and is without `inception`.
    pub classifier: Option<&'a Path>,
    pub root: Option<&'a Path>,
    pub split: &'a str,
    pub seed: u64,
    pub out: &'a Path,
    pub device: &'a str,
    /// Samples to generate (0: one per image of the split); captions are
    /// reused in turn when there are more samples than images.
    pub num_samples: usize,
    /// Keep generated samples here in chunks, so an interrupted evaluation
    /// resumes where it stopped.
    pub samples_dir: Option<PathBuf>,
    /// R-precision: the DAMSM image encoder averages each image with its
    /// mirror image (`image.flip_average`); `None` keeps the checkpoint's.
    pub flip_average: Option<bool>,
}

/// Images in [-1, 1] as stored 8-bit pixels (what a PNG would hold).
fn quantize(x: &tch::Tensor) -> tch::Tensor {
    ((x + 1.0) * 127.5)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(tch::Kind::Uint8)
}

/// `eval` on a data set in the CUB layout: R-precision of real images with
/// a DAMSM checkpoint, or the metrics of a generator's samples.
pub fn eval_cub(e: &CubEval) -> Result<()> {
    let root = e
        .root
        .context("--data-root is required for r-precision, fid, kid and is")?;
    let device = parse_device(e.device)?;
    let ck = t2i::checkpoint::load(e.checkpoint)?;
    if ["stackgan", "attngan"].contains(&ck.meta("model")?) {
        return eval_generated(e, &ck, root, device);
    }
    if e.metrics != ["r-precision"] {
        bail!(
            "{} is a '{}' checkpoint: fid, kid and is score a generator (stackgan, attngan)",
            e.checkpoint.display(),
            ck.meta("model")?
        );
    }
    let (checkpoint, split, seed, out) = (e.checkpoint, e.split, e.seed, e.out);
    let mut t = DamsmTrainer::from_checkpoint(&ck, device)?;
    if let Some(on) = e.flip_average {
        t.set_flip_average(on);
    }
    let sp = CubSplit::parse(split).with_context(|| format!("unknown split '{split}'"))?;
    let data = load_cub_verbose(
        root,
        sp,
        t.config.image.image_size,
        Some(&default_cache()),
        false,
        true,
    )?;
    let r = t.real_r_precision(&data, usize::MAX, seed)?;
    let v = serde_json::json!({
        "metric": "r-precision",
        "images": "real",
        "split": split,
        "checkpoint": checkpoint.display().to_string(),
        "seed": seed,
        "flip_average": t.config.image.flip_average,
        "r_precision": r,
    });
    t2i::imageio::write_atomic(out, serde_json::to_string_pretty(&v)?.as_bytes())?;
    println!(
        "R-precision (real CUB {split} images, DAMSM {}): {:.2}% +- {:.2} over {} folds of {} images; wrote {}",
        checkpoint.display(),
        100.0 * r.mean,
        100.0 * r.std,
        r.folds,
        r.images / r.folds,
        out.display()
    );
    Ok(())
}

/// Images of a generator for captions and a noise seed.
type GenerateFn = dyn Fn(&[&str], u64) -> Result<tch::Tensor>;

/// Metrics of a generator checkpoint's (StackGAN, AttnGAN) samples: one
/// image per real image of the split, generated from one of that image's
/// captions (chosen by `seed`). R-precision with the DAMSM `--damsm`;
/// FID / KID against the split's real images with Inception-v3 (`--inception`,
/// pytorch-fid's weights) or, without it, the DAMSM image encoder as the
/// feature network (labelled so); IS needs `--inception`.
fn eval_generated(
    e: &CubEval,
    ck: &t2i::checkpoint::Checkpoint,
    root: &Path,
    device: tch::Device,
) -> Result<()> {
    let (v, lines) = generated_metrics(e, ck, root, device, usize::MAX)?;
    t2i::imageio::write_atomic(e.out, serde_json::to_string_pretty(&v)?.as_bytes())?;
    println!(
        "{} {} ({} samples for CUB {} captions):",
        v["model"].as_str().unwrap_or(""),
        e.checkpoint.display(),
        v["samples"],
        e.split
    );
    for l in lines {
        println!("  {l}");
    }
    println!("wrote {}", e.out.display());
    Ok(())
}

/// The metrics of [`eval_generated`] for the first `limit` images of the
/// split, as JSON, with one printable line per metric.
pub fn generated_metrics(
    e: &CubEval,
    ck: &t2i::checkpoint::Checkpoint,
    root: &Path,
    device: tch::Device,
    limit: usize,
) -> Result<(serde_json::Value, Vec<String>)> {
    use rand::{Rng, SeedableRng};
    use t2i::eval::stats;
    let (checkpoint, split, seed) = (e.checkpoint, e.split, e.seed);
    let wants = |m: &str| e.metrics.iter().any(|x| x == m);
    let own_features = e.inception.is_none() && e.classifier.is_none();
    if (wants("r-precision") || (wants("fid") || wants("kid")) && own_features) && e.damsm.is_none()
    {
        bail!("scoring a generator's samples needs --damsm CHECKPOINT (r-precision, and fid/kid without --inception or --classifier)");
    }
    if wants("is") && own_features {
        bail!("the Inception Score needs --inception PATH (pytorch-fid's pt_inception-2015-12-05-*.pth) or --classifier CHECKPOINT (t2i train --model classifier)");
    }
    let classifier = match (e.inception, e.classifier) {
        (None, Some(p)) => Some(t2i::train::classifier::ClassifierModel::load(p, device)?),
        _ => None,
    };
    let kind = ck.meta("model")?.to_string();
    let generate: Box<GenerateFn> = if kind == "attngan" {
        let g = t2i::train::attngan::AttnGanModel::from_checkpoint(ck, device)?;
        Box::new(move |c, s| Ok(g.generate_captions(c, s)?))
    } else {
        let g = t2i::train::stackgan::StackGanModel::from_checkpoint(ck, device)?;
        Box::new(move |c, s| Ok(g.generate(c, s)?.1))
    };
    let damsm = e
        .damsm
        .map(|p| -> Result<DamsmTrainer> {
            let mut t = DamsmTrainer::from_checkpoint(&t2i::checkpoint::load(p)?, device)?;
            if let Some(on) = e.flip_average {
                t.set_flip_average(on);
            }
            Ok(t)
        })
        .transpose()?;
    let inception = e
        .inception
        .map(|p| t2i::eval::inception::load(p, t2i::eval::inception::Variant::Fid, device))
        .transpose()?;
    let sp = CubSplit::parse(split).with_context(|| format!("unknown split '{split}'"))?;
    let cub = t2i::data::cub::Cub::open(root, sp, t2i::data::cub::CaptionLayout::Auto)?;
    eprintln!("{}", cub.report);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n_rec = cub.records.len();
    let n = if e.num_samples == 0 {
        n_rec
    } else {
        e.num_samples
    }
    .min(limit);
    let recs: Vec<&t2i::data::cub::CubRecord> = (0..n).map(|i| &cub.records[i % n_rec]).collect();
    let caps: Vec<String> = recs
        .iter()
        .map(|r| r.captions[rng.gen_range(0..r.captions.len())].clone())
        .collect();
    let classes: Vec<i64> = recs.iter().map(|r| r.class as i64).collect();
    if let Some(d) = &e.samples_dir {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let pb = t2i::progress::bar(caps.len() as u64, "generating", true);
    let mut imgs = Vec::new();
    let mut reused = 0usize;
    for (k, chunk) in caps.chunks(50).enumerate() {
        let file = e
            .samples_dir
            .as_ref()
            .map(|d| d.join(format!("chunk-{k:05}.safetensors")));
        let cached = file
            .as_ref()
            .filter(|f| f.is_file())
            .and_then(|f| tch::Tensor::read_safetensors(f).ok())
            .and_then(|v| v.into_iter().find(|(n, _)| n == "images").map(|(_, t)| t))
            .filter(|t| t.size()[0] == chunk.len() as i64);
        let x = match cached {
            Some(t) => {
                reused += chunk.len();
                t
            }
            None => {
                let c: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let x = quantize(
                    &generate(&c, seed.wrapping_add(k as u64))?.to_device(tch::Device::Cpu),
                );
                if let Some(f) = &file {
                    let tmp = f.with_extension("tmp");
                    tch::Tensor::write_safetensors(&[("images", &x)], &tmp)?;
                    std::fs::rename(&tmp, f)?;
                }
                x
            }
        };
        imgs.push(x);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    if reused > 0 {
        eprintln!(
            "reused {reused} samples from {}",
            e.samples_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        );
    }
    let images = tch::Tensor::cat(&imgs, 0).to_kind(tch::Kind::Float) / 127.5 - 1.0;
    let size = images.size()[2];
    let mut v = serde_json::json!({
        "images": "generated",
        "generator": checkpoint.display().to_string(),
        "model": kind,
        "step": ck.meta("step")?,
        "damsm": e.damsm.map(|p| p.display().to_string()),
        "damsm_flip_average": damsm.as_ref().map(|t| t.config.image.flip_average),
        "inception": e.inception.map(|p| p.display().to_string()),
        "classifier": e.classifier.map(|p| p.display().to_string()),
        "split": split,
        "seed": seed,
        "samples": caps.len(),
    });
    let mut lines = Vec::new();
    if wants("r-precision") {
        let d = damsm.as_ref().context("r-precision needs --damsm")?;
        let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
        let r = d.generated_r_precision(&images, &refs, &classes, seed)?;
        v["r_precision"] = serde_json::to_value(r)?;
        v["r_precision_protocol"] = serde_json::json!("one sample per image of the split from one of its captions; that caption among 1 true + 99 captions of other classes by DAMSM sentence/image cosine; 10 folds");
        lines.push(format!(
            "R-precision (DAMSM {}): {:.2}% +- {:.2}",
            e.damsm.map(|p| p.display().to_string()).unwrap_or_default(),
            100.0 * r.mean,
            100.0 * r.std
        ));
    }
    if wants("fid") || wants("kid") || wants("is") {
        // the split's real images, box-cropped and centred at the samples' size
        let (real, _) = load_cub(root, sp, size, Some(&default_cache()), false, true)?;
        let n = real.captions.len();
        let mut r = t2i::data::prepare::ImageBatcher::rng(0, 0);
        let mut parts = Vec::new();
        for start in (0..n).step_by(200) {
            let idx: Vec<usize> = (start..(start + 200).min(n)).collect();
            parts.extend(real.images.batch(&idx, &mut r, tch::Device::Cpu).pop());
        }
        let real_imgs = tch::Tensor::cat(&parts, 0);
        let (name, fake_f, real_f, probs) = match (&inception, &classifier) {
            (None, Some(c)) => {
                let (f, p) = c.features(&images, 100);
                let (rf, _) = c.features(&real_imgs, 100);
                (
                    format!(
                        "{} (trained by t2i on this data set's training classes, held-out accuracy {:.1}%; not comparable to Inception figures)",
                        c.label(),
                        100.0 * c.val_accuracy
                    ),
                    f,
                    rf,
                    Some(p),
                )
            }
            (Some((_, net)), _) => {
                let pb = t2i::progress::bar(2, "inception features", true);
                let f = net.features(&images, 50);
                pb.inc(1);
                let rf = net.features(&real_imgs, 50);
                pb.finish_and_clear();
                (
                    "Inception-v3 (pytorch-fid weights)".to_string(),
                    f.pool,
                    rf.pool,
                    Some(f.logits.softmax(1, tch::Kind::Double)),
                )
            }
            (None, None) => {
                let d = damsm
                    .as_ref()
                    .context("fid/kid need --inception, --classifier or --damsm")?;
                (
                    format!(
                        "DAMSM image encoder {} (trained by t2i on this data set; not comparable to Inception FID)",
                        e.damsm.map(|p| p.display().to_string()).unwrap_or_default()
                    ),
                    d.encode_image_tensor(&images),
                    d.encode_image_tensor(&real_imgs),
                    None,
                )
            }
        };
        let label = match (&inception, &classifier) {
            (Some(_), _) => "",
            (None, Some(_)) => "CLS-",
            (None, None) => "DAMSM-",
        };
        v["feature_network"] = serde_json::json!(name);
        v["real_images"] = serde_json::json!(real_imgs.size()[0]);
        if wants("fid") {
            let f = stats::fid(&fake_f, &real_f)?;
            v[format!("{}fid", label.to_lowercase().replace('-', "_"))] = serde_json::json!(f);
            lines.push(format!("{label}FID: {f:.3}   (features: {name})"));
        }
        if wants("kid") {
            let (m, s) = stats::kid(&fake_f, &real_f, 1000, 100, seed)?;
            v[format!("{}kid", label.to_lowercase().replace('-', "_"))] =
                serde_json::json!({"mean": m, "std": s, "subset_size": 1000, "subsets": 100});
            lines.push(format!("{label}KID: {m:.5} +- {s:.5}"));
        }
        if wants("is") {
            let p = probs.context("the Inception Score needs --inception or --classifier")?;
            let (m, s) = stats::inception_score(&p, 10)?;
            let key = if label.is_empty() {
                "inception_score".to_string()
            } else {
                format!("{}is", label.to_lowercase().replace('-', "_"))
            };
            v[key] = serde_json::json!({"mean": m, "std": s, "splits": 10});
            lines.push(format!("{label}IS: {m:.3} +- {s:.3}   (classes: {name})"));
        }
    }
    Ok((v, lines))
}

/// `t2i train --model classifier --data cub`: the evaluation classifier on
/// the training split's classes (one image in ten held out for accuracy).
pub fn train_classifier(a: &crate::commands::TrainArgs) -> Result<()> {
    use t2i::models::classifier::ClassifierConfig;
    use t2i::train::classifier::{classifier_run, ClassifierTrainer};
    if a.data != "cub" {
        bail!("the classifier trains on a real data set: use --data cub --data-root DIR");
    }
    let root = a
        .data_root
        .as_deref()
        .context("--data-root is required with --data cub")?;
    let device = parse_device(&a.device)?;
    let mut config = ClassifierConfig::tiny();
    if let Some(w) = a.ndf {
        if !(8..=256).contains(&w) {
            bail!("--ndf (classifier width) must be in 8..=256, got {w}");
        }
        config.width = w;
    }
    let batch = a.batch_size.unwrap_or(64);
    if batch < 2 {
        bail!("batch size must be at least 2, got {batch}");
    }
    let lr = a.lr.unwrap_or(1e-3);
    if !(lr > 0.0 && lr < 1.0) {
        bail!("--lr must be in (0, 1), got {lr}");
    }
    let cache = a.cache.clone().unwrap_or_else(default_cache);
    let train = load_cub_verbose(
        root,
        CubSplit::Train,
        config.image_size,
        Some(&cache),
        true,
        true,
    )?;
    let (run, resume) = crate::run_setup::open_run(&a.out, a.resume)?;
    let stop = stop_on_ctrl_c();
    let mut t = ClassifierTrainer::new(config.clone(), &train, lr, batch as usize, a.seed, device);
    if let Some(ck) = resume {
        t.restore(&ck)?;
        crate::run_setup::resumed(&run, &a.out, t.step)?;
    }
    let resolved = serde_json::json!({
        "model": "classifier",
        "versions": versions(),
        "device": t2i::device::device_name(device),
        "data": { "name": "cub", "root": root.display().to_string(), "split": "train", "images": train.classes.len(), "classes": t.model.class_ids.len(), "held_out_images": t.val_idx.len() },
        "seed": a.seed,
        "classifier": t.model.config,
        "train": { "steps": a.steps, "minutes": a.minutes, "batch_size": batch, "lr": lr, "optimizer": "Adam (0.9, 0.999)" },
    });
    crate::run_setup::write_resolved(&run, resolved)?;
    let report = classifier_run(
        &mut t,
        &train.images,
        &run,
        a.steps,
        (a.minutes * 60.0) as u64,
        a.checkpoint_every,
        true,
        &stop,
    )?;
    if report.interrupted {
        crate::run_setup::exit_interrupted(&run, report.steps);
    }
    let path = run.root.join("summary.json");
    t2i::imageio::write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!(
        "trained {} steps in {:.0} s; held-out accuracy {:.2}% over {} images of {} classes (chance {:.2}%); checkpoint {}",
        report.steps,
        report.seconds,
        100.0 * report.val_accuracy,
        t.val_idx.len(),
        t.model.class_ids.len(),
        100.0 / t.model.class_ids.len() as f64,
        run.last_checkpoint().display()
    );
    Ok(())
}

/// `t2i train --model char-cnn-rnn --data cub`: the char-CNN-RNN text
/// encoder with the structured joint embedding loss on the training classes;
/// writes RUN/text_encoder.safetensors (what `--text-encoder` takes) and the
/// zero-shot accuracy on the test split's unseen classes.
pub fn train_char_cnn_rnn(a: &crate::commands::TrainArgs) -> Result<()> {
    use t2i::text::char_cnn_rnn::CharCnnRnnConfig;
    use t2i::train::char_cnn_rnn::{char_run, CharTrainConfig, CharTrainer};
    if a.data != "cub" {
        bail!("the char-CNN-RNN trains on a captioned image set: use --data cub --data-root DIR");
    }
    let root = a
        .data_root
        .as_deref()
        .context("--data-root is required with --data cub")?;
    let device = parse_device(&a.device)?;
    let mut config = CharTrainConfig::tiny();
    config.text = CharCnnRnnConfig::preset(&a.m.preset).with_context(|| {
        format!(
            "unknown char-cnn-rnn preset '{}' (use tiny or paper)",
            a.m.preset
        )
    })?;
    config.image.classes = config.text.embed_dim;
    if let Some(b) = a.batch_size {
        if b < 2 {
            bail!("batch size must be at least 2, got {b}");
        }
        config.batch = b as usize;
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr < 1.0) {
            bail!("--lr must be in (0, 1), got {lr}");
        }
        config.lr = lr;
    }
    let cache = a.cache.clone().unwrap_or_else(default_cache);
    let size = config.image.image_size;
    let train = load_cub_verbose(root, CubSplit::Train, size, Some(&cache), true, true)?;
    let test = load_cub_verbose(root, CubSplit::Test, size, Some(&cache), false, true)?;
    let (run, resume) = crate::run_setup::open_run(&a.out, a.resume)?;
    let stop = stop_on_ctrl_c();
    let mut t = CharTrainer::new(config.clone(), a.seed, device);
    if let Some(ck) = resume {
        t.restore(&ck)?;
        crate::run_setup::resumed(&run, &a.out, t.step)?;
    }
    let resolved = serde_json::json!({
        "model": "char-cnn-rnn",
        "versions": versions(),
        "device": t2i::device::device_name(device),
        "data": { "name": "cub", "root": root.display().to_string(), "train_images": train.classes.len(), "test_images": test.classes.len() },
        "seed": a.seed,
        "config": config,
        "train": { "steps": a.steps, "minutes": a.minutes },
    });
    crate::run_setup::write_resolved(&run, resolved)?;
    let report = char_run(
        &mut t,
        &train,
        Some(&test),
        &run,
        a.steps,
        (a.minutes * 60.0) as u64,
        a.checkpoint_every,
        true,
        &stop,
    )?;
    let text_path = run.root.join("text_encoder.safetensors");
    t.text.source = text_path.display().to_string();
    t.text.save(&text_path)?;
    if report.interrupted {
        crate::run_setup::exit_interrupted(&run, report.steps);
    }
    let path = run.root.join("summary.json");
    t2i::imageio::write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    if let Some((acc, k)) = report.zero_shot {
        println!(
            "trained {} steps in {:.0} s; zero-shot top-1 on the {k} unseen test classes: {:.2}% (chance {:.2}%); text encoder {}",
            report.steps,
            report.seconds,
            100.0 * acc,
            100.0 / k as f64,
            text_path.display()
        );
    }
    Ok(())
}

/// [`load_cub`], printing its skip and cache lines.
fn load_cub_verbose(
    root: &Path,
    split: CubSplit,
    size: i64,
    cache: Option<&Path>,
    augment: bool,
    progress: bool,
) -> Result<t2i::train::damsm::CaptionedImages> {
    let (data, lines) = load_cub(root, split, size, cache, augment, progress)?;
    for l in &lines {
        eprintln!("{l}");
    }
    Ok(data)
}
