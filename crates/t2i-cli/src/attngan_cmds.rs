//! `train --model attngan` on a data set in the CUB layout, and `generate`
//! with an AttnGAN checkpoint (samples, attention figures).

use crate::commands::{stop_on_ctrl_c, GenerateArgs, TrainArgs};
use crate::cub_cmds::default_cache;
use anyhow::{bail, Context, Result};
use t2i::data::cub::{CaptionLayout, Cub, CubSplit};
use t2i::device::{device_name, parse_device};
use t2i::models::attngan::AttnGanConfig;
use t2i::train::attngan::{
    attention_figure, attngan_run, AttnGanModel, AttnGanRunOptions, AttnGanTrainer,
};
use t2i::checkpoint;
use t2i::train::run::versions;
use tch::Tensor;

pub fn train_attngan(a: &TrainArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let mut config = AttnGanConfig::preset(&a.m.preset).with_context(|| {
        format!(
            "unknown AttnGAN preset '{}' (use paper or tiny)",
            a.m.preset
        )
    })?;
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
    if a.data != "cub" {
        bail!(
            "AttnGAN trains on a data set in the CUB layout: --data cub --data-root DIR (for shapes, write one with `t2i data shapes`)"
        );
    }
    let damsm_path = a
        .damsm
        .as_deref()
        .context("AttnGAN needs --damsm CHECKPOINT (a trained DAMSM run's checkpoint)")?;
    let root = a
        .data_root
        .as_deref()
        .context("--data-root is required with --data cub")?;
    let damsm = checkpoint::load(damsm_path).context("reading the DAMSM checkpoint")?;
    let (run, resume) = crate::run_setup::open_run(&a.out, a.resume)?;
    let mut t = AttnGanTrainer::new(
        config,
        &damsm,
        &damsm_path.display().to_string(),
        a.seed,
        device,
    )?;
    let c = t.model.config.clone();
    let final_size = c.base_size << (c.branch_num - 1);
    let cache = a.cache.clone().unwrap_or_else(default_cache);
    let (data, lines) =
        t2i::train::damsm::load_cub(root, CubSplit::Train, final_size, Some(&cache), true, true)?;
    for l in &lines {
        eprintln!("{l}");
    }
    let test = Cub::open(root, CubSplit::Test, CaptionLayout::Auto)?;
    let sample_caps: Vec<String> = test
        .records
        .iter()
        .step_by((test.len() / 6).max(1))
        .take(6)
        .map(|r| r.captions[0].clone())
        .collect();
    if let Some(ck) = resume {
        t.restore(&ck)?;
        crate::run_setup::resumed(&run, &a.out, t.step)?;
    }
    let opts = AttnGanRunOptions {
        steps: a.steps,
        max_seconds: (a.minutes * 60.0) as u64,
        seed: a.seed,
        log_every: 20,
        sample_every: a.sample_every,
        checkpoint_every: a.checkpoint_every,
        progress: true,
    };
    let resolved = serde_json::json!({
        "model": "attngan",
        "versions": versions(),
        "device": device_name(device),
        "damsm": damsm_path.display().to_string(),
        "data": {"name": "cub", "root": root.display().to_string(), "size": final_size},
        "attngan": c,
        "train": opts,
    });
    crate::run_setup::write_resolved(&run, resolved)?;
    let stop = stop_on_ctrl_c();
    let report = attngan_run(&mut t, &data, &sample_caps, &run, &opts, &stop)?;
    if report.interrupted {
        crate::run_setup::exit_interrupted(&run, report.steps);
    }
    println!(
        "trained AttnGAN for {} steps in {:.0} s; checkpoint {}",
        report.steps,
        report.seconds,
        run.last_checkpoint().display()
    );
    Ok(())
}

/// `generate` with an AttnGAN checkpoint: a grid of `-n` samples (each the
/// first stage upsampled left of the last) and, with `--attention`, the
/// attention figure.
pub fn generate(a: &GenerateArgs, ck: &checkpoint::Checkpoint, device: tch::Device) -> Result<()> {
    if a.interpolate.is_some() || a.noise_interpolate || a.style_from.is_some() {
        bail!("interpolation and style transfer are GAN-INT-CLS features; AttnGAN generates samples and attention maps");
    }
    if let Some(dir) = &a.out_dir {
        if !dir.is_dir() {
            bail!("--out-dir {} is not a folder", dir.display());
        }
    }
    let m = AttnGanModel::from_checkpoint(ck, device)?;
    let caps = vec![a.text.as_str(); a.n as usize];
    let t = m.encode(&caps)?;
    if !t.unknown[0].is_empty() {
        eprintln!(
            "unknown words (mapped to <unk>): {}",
            t.unknown[0].join(", ")
        );
    }
    let o = m.generate(&t, a.seed);
    let last = o.images.last().expect("one stage at least");
    let size = last.size()[2];
    let first = o.images[0].upsample_nearest2d([size, size], None, None);
    let shown = Tensor::stack(&[first, last.shallow_clone()], 1).view([2 * a.n, 3, size, size]);
    let img = t2i::imageio::grid(
        &[(t2i::imageio::tensor_to_images(&shown), Some(a.text.clone()))],
        2,
    );
    // build everything before writing anything
    let att = if a.attention {
        let path = a.out.with_file_name(format!(
            "{}-attention.png",
            a.out
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "samples".into())
        ));
        Some((
            path,
            attention_figure(&m, &a.text, a.seed, a.top_words, 128)?,
        ))
    } else {
        None
    };
    img.save(&a.out)?;
    if let Some(dir) = &a.out_dir {
        for (i, im) in t2i::imageio::tensor_to_images(last).iter().enumerate() {
            im.save(&dir.join(format!("sample-{i:03}.png")))?;
        }
    }
    println!("wrote {}", a.out.display());
    if let Some((path, fig)) = att {
        fig.save(&path)?;
        println!(
            "wrote {} (attention maps of the first sample)",
            path.display()
        );
    }
    Ok(())
}
