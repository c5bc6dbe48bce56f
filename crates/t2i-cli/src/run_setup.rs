//! What every `train` command does around its training loop: open the run
//! folder (resume or refuse to overwrite), record the resolved config, and
//! report an interruption.

use anyhow::{bail, Result};
use std::path::Path;
use t2i::checkpoint::{self, Checkpoint};
use t2i::train::run::RunDir;

/// Opens the run folder `out`. With `resume`, returns its last checkpoint
/// (an error when there is none); otherwise refuses a folder that already
/// holds a run, so nothing is overwritten.
pub fn open_run(out: &Path, resume: bool) -> Result<(RunDir, Option<Checkpoint>)> {
    let run = RunDir::create(out)?;
    let last = run.last_checkpoint();
    if resume {
        if !last.exists() {
            bail!("nothing to resume: {} does not exist", last.display());
        }
        let ck = checkpoint::load(&last)?;
        return Ok((run, Some(ck)));
    }
    if last.exists() {
        bail!(
            "{} already holds a run: use --resume or another --out",
            out.display()
        );
    }
    Ok((run, None))
}

/// After a trainer restored step `step`: drops later metric lines and says so.
pub fn resumed(run: &RunDir, out: &Path, step: i64) -> Result<()> {
    run.truncate_metrics(step)?;
    eprintln!("resuming {} at step {step}", out.display());
    Ok(())
}

/// Writes a resolved config (JSON object) as the run's `config.toml`.
pub fn write_resolved(run: &RunDir, resolved: serde_json::Value) -> Result<()> {
    let v: toml::Value = serde_json::from_value(resolved)?;
    t2i::imageio::write_atomic(&run.config_path(), toml::to_string_pretty(&v)?.as_bytes())?;
    Ok(())
}

/// Says where the checkpoint written on Ctrl-C is and exits with 130.
pub fn exit_interrupted(run: &RunDir, steps: i64) -> ! {
    println!(
        "interrupted at step {steps}; checkpoint {}",
        run.last_checkpoint().display()
    );
    std::process::exit(130);
}
