//! Commands on real data sets: `data prepare`, `train --model damsm`,
//! `eval --metric r-precision`.

use crate::commands::stop_on_ctrl_c;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use t2i::data::cub::CubSplit;
use t2i::device::parse_device;
use t2i::train::damsm::{damsm_run, load_cub, DamsmConfig, DamsmRunOptions, DamsmTrainer};
use t2i::train::run::{versions, RunDir};

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
    pub seed: u64,
    pub device: &'a str,
    pub checkpoint_every: i64,
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
    let cache = a.cache.clone().unwrap_or_else(default_cache);
    let size = config.image.image_size;
    let (train, lines) = load_cub(root, CubSplit::Train, size, Some(&cache), true, true)?;
    for l in &lines {
        eprintln!("{l}");
    }
    let (test, lines) = load_cub(root, CubSplit::Test, size, Some(&cache), false, true)?;
    for l in &lines {
        eprintln!("{l}");
    }
    let run = RunDir::create(a.out)?;
    let stop = stop_on_ctrl_c();
    let mut t = if a.resume {
        let last = run.last_checkpoint();
        if !last.exists() {
            bail!("nothing to resume: {} does not exist", last.display());
        }
        let t = DamsmTrainer::from_checkpoint(&t2i::train::checkpoint::load(&last)?, device)?;
        run.truncate_metrics(t.step)?;
        eprintln!("resuming {} at step {}", a.out.display(), t.step);
        t
    } else {
        if run.last_checkpoint().exists() {
            bail!(
                "{} already holds a run: use --resume or another --out",
                a.out.display()
            );
        }
        // vocabulary of the training captions only
        let vocab = t2i::text::Vocab::build(train.captions.iter().flatten().map(String::as_str), 1);
        eprintln!(
            "vocabulary: {} words from the training captions",
            vocab.len()
        );
        DamsmTrainer::new(config.clone(), vocab, a.seed, device)
    };
    let opts = DamsmRunOptions {
        steps: a.steps,
        max_seconds: (a.minutes * 60.0) as u64,
        log_every: 50,
        eval_every: 500,
        eval_images: 1000,
        checkpoint_every: a.checkpoint_every,
        progress: true,
    };
    let resolved = serde_json::json!({
        "model": "damsm",
        "versions": versions(),
        "device": t2i::device::device_name(device),
        "data": { "name": "cub", "root": root.display().to_string(), "train_images": train.captions.len(), "test_images": test.captions.len() },
        "seed": a.seed,
        "damsm": t.config,
        "train": opts,
    });
    let toml_v: toml::Value = serde_json::from_value(resolved)?;
    t2i::imageio::write_atomic(
        &run.config_path(),
        toml::to_string_pretty(&toml_v)?.as_bytes(),
    )?;
    let report = damsm_run(&mut t, &train, Some(&test), &run, &opts, &stop)?;
    let text_path = run.root.join("text_encoder.safetensors");
    t.text.save(&text_path)?;
    if report.interrupted {
        println!(
            "interrupted at step {}; checkpoint {}",
            report.steps,
            run.last_checkpoint().display()
        );
        std::process::exit(130);
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

/// `eval --metric r-precision` of real images with a DAMSM checkpoint.
pub fn eval_r_precision(
    checkpoint: &Path,
    damsm: Option<&Path>,
    root: Option<&Path>,
    split: &str,
    seed: u64,
    out: &Path,
    device: &str,
) -> Result<()> {
    let root = root.context("--data-root is required for r-precision")?;
    let device = parse_device(device)?;
    let ck = t2i::train::checkpoint::load(checkpoint)?;
    if ["stackgan", "attngan"].contains(&ck.meta("model")?) {
        let damsm = damsm.context("scoring a generator's samples needs --damsm CHECKPOINT")?;
        return eval_generated(&ck, checkpoint, damsm, root, split, seed, out, device);
    }
    let t = DamsmTrainer::from_checkpoint(&ck, device)?;
    let sp = CubSplit::parse(split).with_context(|| format!("unknown split '{split}'"))?;
    let (data, lines) = load_cub(
        root,
        sp,
        t.config.image.image_size,
        Some(&default_cache()),
        false,
        true,
    )?;
    for l in &lines {
        eprintln!("{l}");
    }
    let r = t.real_r_precision(&data, usize::MAX, seed)?;
    let v = serde_json::json!({
        "metric": "r-precision",
        "images": "real",
        "split": split,
        "checkpoint": checkpoint.display().to_string(),
        "seed": seed,
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

/// R-precision of a generator checkpoint's (StackGAN, AttnGAN) samples: one image per real image
/// of the split, generated from that image's caption (one of its captions,
/// chosen by `seed`), scored by the DAMSM checkpoint `damsm`.
#[allow(clippy::too_many_arguments)]
fn eval_generated(
    ck: &t2i::train::checkpoint::Checkpoint,
    checkpoint: &Path,
    damsm: &Path,
    root: &Path,
    split: &str,
    seed: u64,
    out: &Path,
    device: tch::Device,
) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let kind = ck.meta("model")?.to_string();
    let generate: Box<GenerateFn> = if kind == "attngan" {
        let g = t2i::train::attngan::AttnGanModel::from_checkpoint(ck, device)?;
        Box::new(move |c, s| Ok(g.generate_captions(c, s)?))
    } else {
        let g = t2i::train::stackgan::StackGanModel::from_checkpoint(ck, device)?;
        Box::new(move |c, s| Ok(g.generate(c, s)?.1))
    };
    let d = DamsmTrainer::from_checkpoint(&t2i::train::checkpoint::load(damsm)?, device)?;
    let sp = CubSplit::parse(split).with_context(|| format!("unknown split '{split}'"))?;
    let cub = t2i::data::cub::Cub::open(root, sp, t2i::data::cub::CaptionLayout::Auto)?;
    eprintln!("{}", cub.report);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let caps: Vec<String> = cub
        .records
        .iter()
        .map(|r| r.captions[rng.gen_range(0..r.captions.len())].clone())
        .collect();
    let classes: Vec<i64> = cub.records.iter().map(|r| r.class as i64).collect();
    let pb = t2i::progress::bar(caps.len() as u64, "generating", true);
    let mut imgs = Vec::new();
    for (k, chunk) in caps.chunks(50).enumerate() {
        let c: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let x = generate(&c, seed.wrapping_add(k as u64))?;
        imgs.push(x.to_device(tch::Device::Cpu));
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let images = tch::Tensor::cat(&imgs, 0);
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    let r = d.generated_r_precision(&images, &refs, &classes, seed)?;
    let v = serde_json::json!({
        "metric": "r-precision",
        "images": "generated",
        "generator": checkpoint.display().to_string(),
        "model": kind,
        "step": ck.meta("step")?,
        "damsm": damsm.display().to_string(),
        "split": split,
        "seed": seed,
        "r_precision": r,
        "protocol": "one sample per image of the split from one of its captions; that caption among 1 true + 99 captions of other classes by DAMSM sentence/image cosine; 10 folds",
    });
    t2i::imageio::write_atomic(out, serde_json::to_string_pretty(&v)?.as_bytes())?;
    println!(
        "R-precision ({kind} {}, {} samples for CUB {split} captions, DAMSM {}): {:.2}% +- {:.2}; wrote {}",
        checkpoint.display(),
        r.images,
        damsm.display(),
        100.0 * r.mean,
        100.0 * r.std,
        out.display()
    );
    Ok(())
}
