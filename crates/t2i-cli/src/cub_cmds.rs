//! Commands on real data sets: `data prepare` and `eval --metric
//! r-precision,fid,kid,is`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use t2i::data::cub::CubSplit;
use t2i::data::images::load_cub;
use t2i::data::images::LoadOptions;
use t2i::eval::dataset::{generated_metrics, DatasetEval};
use t2i::train::damsm::DamsmTrainer;

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
        let (d, lines) = load_cub(
            root,
            sp,
            &LoadOptions {
                size,
                cache: Some(&cache),
                augment: true,
                progress: true,
            },
        )?;
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

/// `eval` on a data set in the CUB layout: R-precision of real images with
/// a DAMSM checkpoint, or the metrics of a generator's samples.
pub fn eval_cub(e: &DatasetEval, root: Option<&Path>, out: &Path) -> Result<()> {
    let root = root.context("--data-root is required for r-precision, fid, kid and is")?;
    let device = e.device;
    let ck = t2i::checkpoint::load(e.checkpoint)?;
    if t2i::family::load_generator(&ck, device).is_ok() {
        return eval_generated(e, &ck, root, out);
    }
    if e.metrics != ["r-precision"] {
        bail!(
            "{} is a '{}' checkpoint: fid, kid and is score a generator",
            e.checkpoint.display(),
            ck.meta("model")?
        );
    }
    let (checkpoint, split, seed) = (e.checkpoint, e.split, e.seed);
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

/// Metrics of a generator checkpoint's (StackGAN, AttnGAN) samples: one
/// image per real image of the split, generated from one of that image's
/// captions (chosen by `seed`). R-precision with the DAMSM `--damsm`;
/// FID / KID against the split's real images with Inception-v3 (`--inception`,
/// pytorch-fid's weights) or, without it, the DAMSM image encoder as the
/// feature network (labelled so); IS needs `--inception`.
fn eval_generated(
    e: &DatasetEval,
    ck: &t2i::checkpoint::Checkpoint,
    root: &Path,
    out: &Path,
) -> Result<()> {
    let (v, lines) = generated_metrics(e, ck, root, usize::MAX)?;
    t2i::imageio::write_atomic(out, serde_json::to_string_pretty(&v)?.as_bytes())?;
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
    println!("wrote {}", out.display());
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
) -> Result<t2i::data::images::CaptionedImages> {
    let (data, lines) = load_cub(
        root,
        split,
        &LoadOptions {
            size,
            cache,
            augment,
            progress,
        },
    )?;
    for l in &lines {
        eprintln!("{l}");
    }
    Ok(data)
}
