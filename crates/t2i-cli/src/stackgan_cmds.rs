//! `train --model stackgan` (both stages, shapes or CUB), and StackGAN
//! evaluation on shapes (Stage-I against Stage-II with the checker).

use crate::commands::{stop_on_ctrl_c, TrainArgs};
use crate::cub_cmds::default_cache;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use t2i::data::cub::{CaptionLayout, Cub, CubSplit};
use t2i::data::shapes::{Shapes, ShapesConfig, Split};
use t2i::device::{device_name, parse_device};
use t2i::models::stackgan::StackGanConfig;
use t2i::text::{AnyTextEncoder, GruEncoderConfig, TextEncoder};
use t2i::checkpoint;
use t2i::train::run::versions;
use t2i::train::stackgan::{
    stackgan_run, EmbeddedImages, StackGanModel, StackGanRunOptions, StackGanTrainer,
};
use t2i::train::text_encoder::{train_and_save, TextTrainOptions};
use tch::Tensor;

/// A run folder or a checkpoint file -> the checkpoint file.
fn checkpoint_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("checkpoints").join("last.safetensors")
    } else {
        p.to_path_buf()
    }
}

/// Shapes training images at `size` as `[n, 3, s, s]` u8 and their captions.
fn shapes_images(shapes: &Shapes, split: Split) -> (Tensor, Vec<Vec<String>>) {
    let n = shapes.len(split);
    let s = shapes.config.image_size as i64;
    let samples: Vec<_> = (0..n).map(|i| shapes.sample(split, i)).collect();
    let flat: Vec<u8> = samples
        .iter()
        .flat_map(|x| x.pixels.iter().copied())
        .collect();
    let t = Tensor::from_slice(&flat)
        .view([n as i64, s, s, 3])
        .permute([0, 3, 1, 2])
        .contiguous();
    (t, samples.into_iter().map(|x| x.captions).collect())
}

pub fn train_stackgan(a: &TrainArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let stage = a.stage;
    if !(1..=2).contains(&stage) {
        bail!("--stage must be 1 or 2, got {stage}");
    }
    let stage1_ck = match (stage, &a.stage1) {
        (2, None) => {
            bail!("--stage 2 needs --stage1 RUN (a trained Stage-I run folder or checkpoint)")
        }
        (2, Some(p)) => {
            let p = checkpoint_path(p);
            Some(checkpoint::load(&p).context("reading the Stage-I run")?)
        }
        _ => None,
    };
    let mut config = match &stage1_ck {
        // Stage-II continues the Stage-I run's configuration
        Some(ck) => serde_json::from_str(ck.meta("config")?).context("Stage-I config")?,
        None => StackGanConfig::preset(&a.m.preset).with_context(|| {
            format!(
                "unknown StackGAN preset '{}' (use paper, paper128 or tiny)",
                a.m.preset
            )
        })?,
    };
    if let Some(b) = a.batch_size {
        if b < 2 {
            bail!("batch size must be at least 2, got {b}");
        }
        config.batch_size = b;
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr < 1.0) {
            bail!("--lr must be in (0, 1), got {lr}");
        }
        config.lr_g = lr;
        config.lr_d = lr;
    }
    config.validate().map_err(anyhow::Error::msg)?;
    if !["shapes", "cub"].contains(&a.data.as_str()) {
        bail!("unknown data set '{}' (use shapes or cub)", a.data);
    }
    if a.data == "cub" && stage1_ck.is_none() && a.text_encoder.is_none() {
        bail!("--data cub needs --text-encoder (e.g. a DAMSM run's text_encoder.safetensors)");
    }
    let (run, resume) = crate::run_setup::open_run(&a.out, a.resume)?;
    // the text encoder: Stage-II reuses Stage-I's; else given or trained
    let encoder = match (&stage1_ck, &a.text_encoder) {
        (Some(ck), _) => AnyTextEncoder::from_checkpoint(ck, device)?,
        (None, Some(p)) => AnyTextEncoder::load(p, device)?,
        (None, None) if a.data == "shapes" => {
            let shapes = Shapes::new(ShapesConfig {
                image_size: config.stage2_size as u32,
                train_size: a.train_size,
                seed: a.seed,
                ..Default::default()
            })?;
            let topts = TextTrainOptions {
                steps: a.text_steps,
                seed: a.seed,
                ..Default::default()
            };
            let path = run.root.join("text_encoder.safetensors");
            let t = train_and_save(&shapes, GruEncoderConfig::tiny(), &topts, device, &path)?;
            eprintln!(
                "text encoder: held-in test retrieval {:.1}% -> {}",
                100.0 * t.test_retrieval,
                path.display()
            );
            AnyTextEncoder::Gru(t.encoder)
        }
        (None, None) => {
            bail!("--data cub needs --text-encoder (e.g. a DAMSM run's text_encoder.safetensors)")
        }
    };
    config.text_dim = encoder.sentence_dim();
    let (data, sample_caps, data_desc) = match a.data.as_str() {
        "shapes" => {
            let cfg = ShapesConfig {
                image_size: config.stage2_size as u32,
                train_size: a.train_size,
                seed: a.seed,
                ..Default::default()
            };
            let shapes = Shapes::new(cfg.clone())?;
            let (imgs, caps) = shapes_images(&shapes, Split::Train);
            let d = EmbeddedImages::from_fixed(imgs, caps, &encoder, device)?;
            let sc: Vec<String> = (0..6)
                .map(|i| shapes.sample(Split::Test, i).captions[0].clone())
                .collect();
            (d, sc, serde_json::to_value(&cfg)?)
        }
        "cub" => {
            let root = a
                .data_root
                .as_deref()
                .context("--data-root is required with --data cub")?;
            let cache = a.cache.clone().unwrap_or_else(default_cache);
            let (cap, lines) = t2i::train::damsm::load_cub(
                root,
                CubSplit::Train,
                config.stage2_size,
                Some(&cache),
                true,
                true,
            )?;
            for l in &lines {
                eprintln!("{l}");
            }
            let d = EmbeddedImages::from_crops(cap.images, cap.captions, &encoder, device)?;
            let test = Cub::open(root, CubSplit::Test, CaptionLayout::Auto)?;
            let sc = test
                .records
                .iter()
                .step_by(test.len() / 6)
                .take(6)
                .map(|r| r.captions[0].clone())
                .collect();
            (
                d,
                sc,
                serde_json::json!({"name": "cub", "root": root.display().to_string(), "size": config.stage2_size}),
            )
        }
        d => bail!("unknown data set '{d}' (use shapes or cub)"),
    };
    let stop = stop_on_ctrl_c();
    let model = StackGanModel::new(config.clone(), stage as u8, encoder, device);
    let mut t = StackGanTrainer::new(model, stage1_ck.as_ref(), a.seed)?;
    if let Some(ck) = resume {
        t.restore(&ck)?;
        crate::run_setup::resumed(&run, &a.out, t.step)?;
    }
    let opts = StackGanRunOptions {
        steps: a.steps,
        max_seconds: (a.minutes * 60.0) as u64,
        seed: a.seed,
        log_every: 20,
        sample_every: a.sample_every,
        checkpoint_every: a.checkpoint_every,
        progress: true,
    };
    let resolved = serde_json::json!({
        "model": "stackgan",
        "stage": stage,
        "stage1": a.stage1.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "versions": versions(),
        "device": device_name(device),
        "text_encoder": t.model.encoder.source(),
        "data": data_desc,
        "stackgan": config,
        "train": opts,
    });
    crate::run_setup::write_resolved(&run, resolved)?;
    let report = stackgan_run(&mut t, &data, &sample_caps, &run, &opts, &stop)?;
    if report.interrupted {
        crate::run_setup::exit_interrupted(&run, report.steps);
    }
    println!(
        "trained Stage-{} for {} steps in {:.0} s; checkpoint {}",
        if stage == 1 { "I" } else { "II" },
        report.steps,
        report.seconds,
        run.last_checkpoint().display()
    );
    if a.data == "shapes" && a.eval_samples > 0 {
        let v = eval_shapes(&t.model, a.seed, a.train_size, a.eval_samples)?;
        let path = run.root.join("summary.json");
        t2i::imageio::write_atomic(&path, serde_json::to_string_pretty(&v)?.as_bytes())?;
        print_shapes(&v);
        println!("summary: {}", path.display());
    }
    Ok(())
}

/// Checker scores of Stage-I and (for a Stage-II model) Stage-II images for
/// held-in test captions.
pub fn eval_shapes(
    m: &StackGanModel,
    seed: u64,
    train_size: usize,
    n: usize,
) -> Result<serde_json::Value> {
    use t2i::data::checker::{agreement, check};
    let shapes = Shapes::new(ShapesConfig {
        image_size: m.config.stage2_size as u32,
        train_size,
        test_size: n.max(100),
        seed,
        ..Default::default()
    })?;
    let mut tallies = [[0usize; 3]; 2]; // [colour, shape, joint] per stage
    let mut objects = 0usize;
    for start in (0..n).step_by(100) {
        let k = (n - start).min(100);
        let samples: Vec<_> = (start..start + k)
            .map(|i| shapes.sample(Split::Test, i))
            .collect();
        let caps: Vec<&str> = samples.iter().map(|s| s.captions[0].as_str()).collect();
        let (s1, s2) = m.generate(&caps, 99 + start as u64)?;
        let stages: Vec<Tensor> = match s1 {
            Some(s1) => vec![s1, s2],
            None => vec![s2],
        };
        for (si, imgs) in stages.iter().enumerate() {
            let size = imgs.size()[2] as u32;
            for (s, img) in samples.iter().zip(t2i::imageio::tensor_to_images(imgs)) {
                let r = check(&img.data, size, 1);
                for a in agreement(&s.objects, &r) {
                    tallies[si][0] += usize::from(a.colour);
                    tallies[si][1] += usize::from(a.shape);
                    tallies[si][2] += usize::from(a.joint());
                    if si == 0 {
                        objects += 1;
                    }
                }
            }
        }
    }
    let f = |x: usize| x as f64 / objects.max(1) as f64;
    let score =
        |t: [usize; 3]| serde_json::json!({"colour": f(t[0]), "shape": f(t[1]), "joint": f(t[2])});
    let mut v = serde_json::json!({
        "protocol": format!("{n} held-in test captions (first caption each), one sample each, noise seed 99+, CA mean, analytic shapes checker"),
        "samples": n,
    });
    if m.stage == 2 {
        v["stage1"] = score(tallies[0]);
        v["stage2"] = score(tallies[1]);
    } else {
        v["stage1"] = score(tallies[0]);
    }
    Ok(v)
}

pub fn print_shapes(v: &serde_json::Value) {
    for k in ["stage1", "stage2"] {
        if let Some(s) = v.get(k) {
            println!(
                "{k}: colour {:.1}%  shape {:.1}%  joint colour+shape {:.1}%  ({} samples)",
                100.0 * s["colour"].as_f64().unwrap_or(0.0),
                100.0 * s["shape"].as_f64().unwrap_or(0.0),
                100.0 * s["joint"].as_f64().unwrap_or(0.0),
                v["samples"]
            );
        }
    }
}

/// `generate` with a StackGAN checkpoint: a grid of `-n` samples (a Stage-II
/// model shows each Stage-I image left of its Stage-II image).
pub fn generate(
    a: &crate::commands::GenerateArgs,
    ck: &checkpoint::Checkpoint,
    device: tch::Device,
) -> Result<()> {
    if a.interpolate.is_some() || a.noise_interpolate || a.style_from.is_some() {
        bail!("interpolation and style transfer are GAN-INT-CLS features; StackGAN generates samples only");
    }
    if let Some(dir) = &a.out_dir {
        if !dir.is_dir() {
            bail!("--out-dir {} is not a folder", dir.display());
        }
    }
    let m = StackGanModel::from_checkpoint(ck, device)?;
    let (_, enc) = m.embed(&[a.text.as_str()])?;
    if !enc[0].unknown.is_empty() {
        eprintln!("unknown words (ignored): {}", enc[0].unknown.join(", "));
    }
    let caps = vec![a.text.as_str(); a.n as usize];
    let (s1, s2) = m.generate(&caps, a.seed)?;
    let size = s2.size()[2];
    let shown = match &s1 {
        Some(s1) => {
            let up = s1.upsample_nearest2d([size, size], None, None);
            Tensor::stack(&[up, s2.shallow_clone()], 1).view([2 * a.n, 3, size, size])
        }
        None => s2.shallow_clone(),
    };
    let img = t2i::imageio::grid(
        &[(t2i::imageio::tensor_to_images(&shown), Some(a.text.clone()))],
        2,
    );
    img.save(&a.out)?;
    if let Some(dir) = &a.out_dir {
        for (i, im) in t2i::imageio::tensor_to_images(&s2).iter().enumerate() {
            im.save(&dir.join(format!("sample-{i:03}.png")))?;
        }
    }
    println!("wrote {}", a.out.display());
    Ok(())
}
