//! Commands on real data sets: `data prepare` and `eval --metric
//! r-precision,fid,kid,is`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use t2i::data::cub::CubSplit;
use t2i::data::images::load_cub;
use t2i::data::images::LoadOptions;
use t2i::device::parse_device;
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
    if t2i::family::load_generator(&ck, device).is_ok() {
        return eval_generated(e, &ck, root, device);
    }
    if e.metrics != ["r-precision"] {
        bail!(
            "{} is a '{}' checkpoint: fid, kid and is score a generator",
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
    let g = t2i::family::load_generator(ck, device)?;
    let generate = |c: &[&str], s: u64| -> Result<tch::Tensor> { Ok(g.generate(c, s)?.images) };
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
        .map(|p| t2i::models::inception::load(p, t2i::models::inception::Variant::Fid, device))
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
        let (real, _) = load_cub(
            root,
            sp,
            &LoadOptions {
                size,
                cache: Some(&default_cache()),
                augment: false,
                progress: true,
            },
        )?;
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
