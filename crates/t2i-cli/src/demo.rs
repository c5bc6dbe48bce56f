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
    #[arg(long, default_value_t = 3.8)]
    pub minutes: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Samples per split for the checker scores.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
}

pub fn run(a: DemoArgs) -> Result<()> {
    Ok(t2i::demo::run(&t2i::demo::DemoOptions {
        out: a.out,
        minutes: a.minutes,
        seed: a.seed,
        device: t2i::device::parse_device(&a.device)?,
        cache: crate::cub_cmds::default_cache(),
        samples: a.samples,
    })?)
}
