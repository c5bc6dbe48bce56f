//! `t2i demo`: the flags of [`t2i::demo::run`].

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Minutes of GAN training.
    #[arg(long, default_value_t = 3.2)]
    pub minutes: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Samples per split for the checker scores.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Generator and discriminator width (the tiny preset's 32).
    #[arg(long, default_value_t = 32)]
    pub width: i64,
    /// Weight of the mode-seeking term (tiny preset: 1.0; it slows the
    /// first minutes of colour learning, so the demo leaves it off).
    #[arg(long, default_value_t = 0.0)]
    pub diversity: f64,
    /// Adam learning rate of G and D (tiny preset: 5e-4).
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Steps of the shapes text encoder before the GAN (800: held-in
    /// retrieval 76% against 67% for 300, 27 s more).
    #[arg(long, default_value_t = 800)]
    pub text_steps: i64,
    /// Decay of the running average of G's weights that generates (0: off).
    /// The average steadies colour in a short run (96.4% held-in against
    /// 87.8% without it, docs/BENCHMARKS.md), though it lowers shape.
    #[arg(long, default_value_t = 0.995)]
    pub ema: f64,
    /// Images per GAN step (the tiny preset's 32). The demo's budget is
    /// wall time, and colour is learned in steps rather than images: 16 runs
    /// about 1.7 times as many steps (held-in colour 91.2% against 79.4% on
    /// the same day, docs/BENCHMARKS.md).
    #[arg(long, default_value_t = 16)]
    pub batch_size: i64,
}

pub fn run(a: DemoArgs) -> Result<()> {
    Ok(t2i::demo::run(&t2i::demo::DemoOptions {
        out: a.out,
        minutes: a.minutes,
        seed: a.seed,
        device: t2i::device::parse_device(&a.device)?,
        cache: crate::cub_cmds::default_cache(),
        samples: a.samples,
        width: a.width,
        diversity: a.diversity,
        lr: a.lr,
        text_steps: a.text_steps,
        ema: a.ema,
        batch_size: a.batch_size,
    })?)
}
