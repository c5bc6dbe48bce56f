//! Run folders: resolved config, checkpoints, `metrics.jsonl`, sample grids.

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// Creates (or reopens) the folder and its sub-folders.
    pub fn create(root: &Path) -> Result<Self> {
        for d in [
            root.to_path_buf(),
            root.join("checkpoints"),
            root.join("samples"),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn last_checkpoint(&self) -> PathBuf {
        self.root.join("checkpoints").join("last.safetensors")
    }
    pub fn checkpoint(&self, step: i64) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(format!("step-{step:07}.safetensors"))
    }
    fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Saves `t` as `last.safetensors` (and, when `periodic`, as
    /// `step-N.safetensors` too), then updates `checkpoints/manifest.json`
    /// and keeps only the newest `keep` step files (0: all). A failed write
    /// leaves the previous checkpoint as it was.
    pub fn save_checkpoint(
        &self,
        t: &dyn crate::family::Trainer,
        periodic: bool,
        keep: usize,
    ) -> Result<()> {
        let last = self.last_checkpoint();
        let step = t.step();
        t.save(&last).map_err(|e| {
            let kept = if last.exists() {
                format!("the previous checkpoint ({}) is kept", last.display())
            } else {
                "no checkpoint was written".to_string()
            };
            Error::Config(format!(
                "cannot write the checkpoint of step {step}: {e}; {kept}"
            ))
        })?;
        if periodic {
            let bytes = std::fs::read(&last).map_err(|e| Error::io(&last, e))?;
            crate::imageio::write_atomic(&self.checkpoint(step), &bytes)?;
        }
        let mut steps = self.step_checkpoints();
        if keep > 0 && steps.len() > keep {
            for (_, p) in steps.drain(..steps.len() - keep) {
                let _ = std::fs::remove_file(p);
            }
        }
        self.write_manifest()
    }

    /// Writes `checkpoints/manifest.json`: each checkpoint file with its
    /// step, size and the SHA-256 of its tensors.
    pub fn write_manifest(&self) -> Result<()> {
        let last = self.last_checkpoint();
        let steps = self.step_checkpoints();
        let mut files: Vec<serde_json::Value> = Vec::new();
        for p in steps.iter().map(|(_, p)| p).chain([&last]) {
            let Ok((bytes, meta)) = crate::checkpoint::read_header(p) else {
                continue;
            };
            files.push(serde_json::json!({
                "file": p.file_name().map(|n| n.to_string_lossy().to_string()),
                "step": meta.get("step").and_then(|s| s.parse::<i64>().ok()),
                "bytes": bytes,
                "sha256": meta.get(crate::checkpoint::CHECKSUM_KEY),
            }));
        }
        let manifest = serde_json::json!({ "checkpoints": files });
        let text =
            serde_json::to_string_pretty(&manifest).map_err(|e| Error::Config(e.to_string()))?;
        crate::imageio::write_atomic(
            &self.checkpoints_dir().join("manifest.json"),
            text.as_bytes(),
        )
    }

    /// The `step-N.safetensors` files, oldest first.
    fn step_checkpoints(&self) -> Vec<(i64, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(self.checkpoints_dir()) else {
            return Vec::new();
        };
        let mut v: Vec<(i64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                let step = n.strip_prefix("step-")?.strip_suffix(".safetensors")?;
                Some((step.parse().ok()?, e.path()))
            })
            .collect();
        v.sort();
        v
    }

    /// The newest checkpoint that loads and matches its checksum: `last`,
    /// else the step files from the newest. Damaged files are reported and
    /// passed over; `None` when there is none.
    pub fn newest_intact_checkpoint(&self) -> Option<(PathBuf, crate::checkpoint::Checkpoint)> {
        let mut candidates = vec![self.last_checkpoint()];
        candidates.extend(self.step_checkpoints().into_iter().rev().map(|(_, p)| p));
        for p in candidates.into_iter().filter(|p| p.exists()) {
            match crate::checkpoint::load(&p) {
                Ok(ck) => return Some((p, ck)),
                Err(e) => tracing::warn!("passing over a damaged checkpoint: {e}"),
            }
        }
        None
    }

    pub fn sample(&self, step: i64) -> PathBuf {
        self.root
            .join("samples")
            .join(format!("step-{step:07}.png"))
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// Writes the resolved config as TOML.
    pub fn write_config<T: Serialize>(&self, cfg: &T) -> Result<()> {
        let s = toml::to_string_pretty(cfg).map_err(|e| Error::Config(e.to_string()))?;
        crate::imageio::write_atomic(&self.config_path(), s.as_bytes())
    }
    /// Appends one JSON line to `metrics.jsonl`.
    pub fn log_metrics(&self, value: &serde_json::Value) -> Result<()> {
        let p = self.metrics_path();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        writeln!(f, "{value}").map_err(|e| Error::io(&p, e))
    }
    /// Drops metric lines after `step` (used when resuming).
    pub fn truncate_metrics(&self, step: i64) -> Result<()> {
        let p = self.metrics_path();
        let Ok(text) = std::fs::read_to_string(&p) else {
            return Ok(());
        };
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_i64()))
                    .is_some_and(|s| s <= step)
            })
            .collect();
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        crate::imageio::write_atomic(&p, out.as_bytes())
    }
}

/// Set by a Ctrl-C handler; training loops checkpoint and stop when set.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(pub Arc<AtomicBool>);

impl StopFlag {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
}

/// When the run loop logs, samples and checkpoints.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Steps in all (a resumed run continues up to this).
    pub steps: i64,
    /// Stop after this many seconds (0: no limit).
    pub max_seconds: u64,
    /// A `metrics.jsonl` line every this many steps (and at step 1).
    pub log_every: i64,
    /// A sample grid every this many steps (0: only at the end).
    pub sample_every: i64,
    /// A checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: i64,
    /// Step checkpoints kept (the newest; 0: all). `last` is always kept.
    pub keep_checkpoints: usize,
    /// Progress bar on stderr.
    pub progress: bool,
    /// Arithmetic of the training steps (bf16: autocast).
    pub precision: crate::precision::Precision,
}

/// What the loop did.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub steps: i64,
    pub seconds: f64,
    /// Stopped by the stop flag (Ctrl-C) rather than by steps or time.
    pub interrupted: bool,
    /// The last step's metrics.
    pub last: crate::family::Metrics,
    /// The real-image loader's share of the loop, when the family batches
    /// real images (CUB): images it made, seconds it took.
    pub loader: Option<(u64, f64)>,
}

impl LoopReport {
    /// "loader N images/s (x% of the loop); the steps used M images/s", when
    /// the loop batched real images.
    pub fn loader_line(&self) -> Option<String> {
        let (images, secs) = self.loader?;
        Some(format!(
            "loader {:.0} images/s ({:.1}% of the loop); the steps used {:.1} images/s",
            images as f64 / secs.max(1e-9),
            100.0 * secs / self.seconds.max(1e-9),
            images as f64 / self.seconds.max(1e-9)
        ))
    }
}

fn metrics_json(m: &crate::family::Metrics) -> serde_json::Map<String, serde_json::Value> {
    m.iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect()
}

/// Non-finite losses in a row after which the run loop stops.
pub const MAX_BAD_STEPS: usize = 10;

/// The one training loop of every family: runs `t` until `opts.steps`, the
/// time limit or the stop flag; logs metrics, evaluates, writes sample
/// grids and checkpoints; always ends with `last.safetensors` written. A
/// step with a non-finite metric is logged (its update was skipped by the
/// optimiser); [`MAX_BAD_STEPS`] in a row stop the run with an error, and
/// the last checkpoint written stays the last one.
pub fn run_loop(
    t: &mut dyn crate::family::Trainer,
    name: &str,
    run: &RunDir,
    opts: &LoopOptions,
    stop: &StopFlag,
) -> Result<LoopReport> {
    let start = std::time::Instant::now();
    let loaded_before = crate::data::prepare::LOADER.totals();
    let timed = opts.steps == i64::MAX && opts.max_seconds > 0;
    let pb = crate::progress::timed(opts.steps as u64, opts.max_seconds, name, opts.progress);
    if !timed {
        pb.set_position(t.step().max(0) as u64);
    }
    let (mut last, mut interrupted) = (Vec::new(), false);
    let mut bad_streak = 0;
    while t.step() < opts.steps {
        if stop.is_set() {
            interrupted = true;
            break;
        }
        if opts.max_seconds > 0 && start.elapsed().as_secs() >= opts.max_seconds {
            break;
        }
        let m = crate::precision::run(opts.precision, || t.train_step())??;
        let step = t.step();
        // the optimisers skip an update whose gradient is not finite; the
        // loop stops when that lasts (see `MAX_BAD_STEPS`)
        if let Some((k, v)) = m.iter().find(|(_, v)| !v.is_finite()) {
            bad_streak += 1;
            pb.println(format!(
                "step {step}: {k} is {v}; the update was skipped ({bad_streak} in a row)"
            ));
            if bad_streak >= MAX_BAD_STEPS {
                pb.finish_and_clear();
                return Err(Error::Config(format!(
                    "training diverged: the loss was non-finite for {MAX_BAD_STEPS} steps in a row (up to step {step}); stopped without saving; the last good checkpoint is {} (try a lower --lr)",
                    run.last_checkpoint().display()
                )));
            }
            continue;
        }
        bad_streak = 0;
        let shown: Vec<String> = m
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        if timed {
            pb.set_position(start.elapsed().as_secs());
            pb.set_message(format!("step {step} {}", shown.join(" ")));
        } else {
            pb.set_message(shown.join(" "));
            pb.inc(1);
        }
        let evaluate = t.eval_every() > 0 && step % t.eval_every() == 0;
        if evaluate || step % opts.log_every.max(1) == 0 || step == 1 || step == opts.steps {
            let mut v = metrics_json(&m);
            v.insert("step".into(), serde_json::json!(step));
            v.insert(
                "time".into(),
                serde_json::json!(start.elapsed().as_secs_f64()),
            );
            v.insert("lr".into(), serde_json::json!(t.lr()));
            if evaluate {
                let e = t.evaluate()?;
                let shown: Vec<String> = e.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                pb.println(format!("step {step}: {}", shown.join(", ")));
                v.extend(metrics_json(&e));
            }
            run.log_metrics(&serde_json::Value::Object(v))?;
        }
        if opts.sample_every > 0 && step % opts.sample_every == 0 {
            if let Some(g) = t.sample_grid()? {
                g.save(&run.sample(step))?;
            }
        }
        if opts.checkpoint_every > 0 && step % opts.checkpoint_every == 0 {
            run.save_checkpoint(t, true, opts.keep_checkpoints)?;
        }
        last = m;
    }
    pb.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let loaded = crate::data::prepare::LOADER.totals();
    let loader = (loaded.0 > loaded_before.0)
        .then(|| (loaded.0 - loaded_before.0, loaded.1 - loaded_before.1));
    if let Some((images, secs)) = loader {
        run.log_metrics(&serde_json::json!({
            "step": t.step(),
            "loader_images": images,
            "loader_seconds": secs,
            "loop_seconds": seconds,
        }))?;
    }
    run.save_checkpoint(t, false, opts.keep_checkpoints)?;
    if !interrupted {
        if let Some(g) = t.sample_grid()? {
            g.save(&run.sample(t.step()))?;
        }
    }
    Ok(LoopReport {
        steps: t.step(),
        seconds,
        interrupted,
        last,
        loader,
    })
}

/// What `t2i train` asks for, the same for every family.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Family name (`--model`); on resume, the run's own when `None`.
    pub model: Option<String>,
    /// Preset; the family's first when `None` (on resume: the run's).
    pub preset: Option<String>,
    /// Shared flags given on the command line, by name (`lr`, `data`, ...),
    /// turned into settings through [`crate::family::Family::flag_keys`].
    pub flags: Vec<(&'static str, String)>,
    /// `KEY=VALUE` settings, applied after the flags.
    pub sets: Vec<String>,
    /// Run folder.
    pub out: PathBuf,
    /// Continue the run in `out` from its last checkpoint.
    pub resume: bool,
    /// Run seed; on resume, the run's when `None`.
    pub seed: Option<u64>,
    pub device: tch::Device,
    /// Cache of preprocessed images.
    pub cache: PathBuf,
    /// The loop's schedule (`steps` is the total, also on resume).
    pub schedule: LoopOptions,
    /// Checker samples per split for the summary at the end (0: none).
    pub eval_samples: usize,
}

/// What a `train` call did.
pub struct TrainOutcome {
    pub run: RunDir,
    pub report: LoopReport,
    pub summary: crate::family::Summary,
}

/// The first lines of `config.toml`, above the family's `[config]` table.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct RunHeader {
    model: String,
    preset: String,
    seed: u64,
    device: String,
    /// Of the latest invocation (runs before it existed: fp32).
    #[serde(default)]
    precision: crate::precision::Precision,
    versions: String,
    config: toml::Table,
}

/// `t2i train` for any family: resolves the config (preset, flags,
/// `--set`), validates it before anything is written, records it in
/// `config.toml`, builds the family's trainer (or resumes it exactly), runs
/// the loop and the family's last phases, and writes `summary.json`.
pub fn train(req: &TrainRequest, stop: &StopFlag) -> Result<TrainOutcome> {
    use crate::family::{apply_sets, changed_keys, family};
    let run_config = req.out.join("config.toml");
    let last = req.out.join("checkpoints").join("last.safetensors");
    let mut notes = Vec::new();
    let saved: Option<RunHeader> = if req.resume {
        // a run killed before its first checkpoint (or before it wrote its
        // config) starts again from the beginning: a script may always resume
        if run_config.exists() {
            let text =
                std::fs::read_to_string(&run_config).map_err(|e| Error::io(&run_config, e))?;
            Some(toml::from_str(&text).map_err(|e| {
                Error::Config(format!(
                    "{} is not a t2i run config: {e}",
                    run_config.display()
                ))
            })?)
        } else {
            None
        }
    } else {
        if last.exists() {
            return Err(Error::Config(format!(
                "{} already holds a run: use --resume or another --out",
                req.out.display()
            )));
        }
        None
    };
    let found = if req.resume {
        for d in [
            req.out.clone(),
            req.out.join("checkpoints"),
            req.out.join("samples"),
        ] {
            let n = crate::imageio::remove_stale_temporaries(&d);
            if n > 0 {
                notes.push(format!(
                    "resume: removed {n} unfinished temporary file(s) in {}",
                    d.display()
                ));
            }
        }
        let found = RunDir {
            root: req.out.clone(),
        }
        .newest_intact_checkpoint();
        match &found {
            Some((p, _)) if p != &last => notes.push(format!(
                "resume: {} is missing or damaged; resuming from {}",
                last.display(),
                p.display()
            )),
            Some(_) => {}
            None => notes.push(format!(
                "resume: no checkpoint in {} yet; starting the run from the beginning",
                req.out.display()
            )),
        }
        found
    } else {
        None
    };
    if saved.is_none() && found.is_some() {
        return Err(Error::Config(format!(
            "{} holds checkpoints but no config.toml: cannot resume it",
            req.out.display()
        )));
    }
    if let Some(s) = &saved {
        for (what, asked, has) in [
            ("--model", req.model.as_deref(), s.model.as_str()),
            ("--preset", req.preset.as_deref(), s.preset.as_str()),
        ] {
            if asked.is_some_and(|a| a != has) {
                return Err(Error::Config(format!(
                    "{what} {} differs from the run's {has}: a resumed run keeps its model and preset",
                    asked.unwrap_or_default()
                )));
            }
        }
        if req.seed.is_some_and(|x| x != s.seed) {
            return Err(Error::Config(format!(
                "--seed differs from the run's {}: a resumed run keeps its seed",
                s.seed
            )));
        }
    }
    let name = match (&saved, &req.model) {
        (Some(s), _) => s.model.clone(),
        (None, Some(m)) => m.clone(),
        // a new run (also `--resume` of a run that never started) without
        // `--model`: the first family of the registry, GAN-INT-CLS
        (None, None) => crate::family::families()[0].name().to_string(),
    };
    let fam = family(&name)?;
    let preset = match (&saved, &req.preset) {
        (Some(s), _) => s.preset.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => fam.presets()[0].to_string(),
    };
    let base = match &saved {
        // read through the typed config, so fields added since the run was
        // made appear with their defaults
        Some(s) => fam.check(&s.config)?,
        None => fam.config(&preset)?,
    };
    let mut sets = Vec::new();
    for (flag, value) in &req.flags {
        let keys = fam.flag_keys(flag);
        if keys.is_empty() {
            return Err(Error::Config(format!(
                "--{} does not apply to {name} (use --set KEY=VALUE with a key of its config)",
                flag.replace('_', "-")
            )));
        }
        sets.extend(keys.iter().map(|k| format!("{k}={value}")));
    }
    sets.extend(req.sets.iter().cloned());
    let mut table = base.clone();
    apply_sets(&mut table, &sets)?;
    let table = fam.check(&table)?;
    if saved.is_some() {
        let changed = changed_keys(&fam.check(&base)?, &table);
        let allowed = fam.resumable_keys();
        if let Some((k, a, b)) = changed
            .iter()
            .find(|(k, _, _)| !allowed.contains(&k.as_str()))
        {
            return Err(Error::Config(format!(
                "--resume cannot change {k} (the run has {a}, asked {b}); resumable settings of {name}: {}",
                if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
            )));
        }
        notes.extend(
            changed
                .iter()
                .map(|(k, a, b)| format!("resume: {k} {a} -> {b}")),
        );
    }
    if let Some(s) = saved
        .as_ref()
        .filter(|s| s.precision != req.schedule.precision)
    {
        notes.push(format!(
            "resume: precision {} -> {}",
            s.precision.name(),
            req.schedule.precision.name()
        ));
    }
    let seed = saved.as_ref().map_or(req.seed.unwrap_or(0), |s| s.seed);
    let existed = req.out.exists();
    let run = RunDir::create(&req.out)?;
    let header = RunHeader {
        model: name.clone(),
        preset,
        seed,
        device: crate::device::device_name(req.device),
        precision: req.schedule.precision,
        versions: crate::versions(),
        config: table.clone(),
    };
    if saved.is_none() || !notes.is_empty() {
        run.write_config(&header)?;
    }
    for n in &notes {
        eprintln!("{n}");
    }
    let ctx = crate::family::TrainContext {
        run: &run,
        seed,
        device: req.device,
        cache: req.cache.clone(),
        progress: req.schedule.progress,
    };
    let ck = found.map(|(_, ck)| ck);
    let mut trainer = match fam.trainer(&table, &ctx, ck.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            // a new run that could not start leaves no folder behind
            if !existed {
                let _ = std::fs::remove_dir_all(&req.out);
            }
            return Err(e);
        }
    };
    if ck.is_some() {
        run.truncate_metrics(trainer.step())?;
        if req.schedule.progress {
            eprintln!("resuming {} at step {}", req.out.display(), trainer.step());
        }
    } else {
        run.truncate_metrics(0)?;
        // the first checkpoint before any step: a run folder that cannot
        // hold one fails here, not hours later, and a run killed from now
        // on has something to resume
        if let Err(e) = run.save_checkpoint(trainer.as_ref(), false, req.schedule.keep_checkpoints)
        {
            if !existed {
                let _ = std::fs::remove_dir_all(&req.out);
            }
            return Err(e);
        }
    }
    let report = run_loop(trainer.as_mut(), &name, &run, &req.schedule, stop)?;
    let summary = trainer.finish(&ctx, report.interrupted, req.eval_samples)?;
    // later phases (style encoder, text prior) may have rewritten `last`
    run.write_manifest()?;
    if !summary.value.is_null() {
        let s = serde_json::to_string_pretty(&summary.value)
            .map_err(|e| Error::Config(e.to_string()))?;
        crate::imageio::write_atomic(&run.root.join("summary.json"), s.as_bytes())?;
    }
    Ok(TrainOutcome {
        run,
        report,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{Metrics, Summary, TrainContext, Trainer};
    use std::collections::BTreeMap;
    use tch::Tensor;

    /// A trainer whose loss is not finite at the steps `bad` says; its one
    /// weight counts the good steps.
    struct Flaky {
        step: i64,
        weight: f32,
        bad: fn(i64) -> bool,
    }

    impl Trainer for Flaky {
        fn step(&self) -> i64 {
            self.step
        }
        fn train_step(&mut self) -> Result<Metrics> {
            self.step += 1;
            if (self.bad)(self.step) {
                return Ok(vec![("loss".into(), f64::NAN)]);
            }
            self.weight += 1.0;
            Ok(vec![("loss".into(), 1.0)])
        }
        fn lr(&self) -> f64 {
            1e-3
        }
        fn save(&self, path: &Path) -> Result<()> {
            let meta = BTreeMap::from([("step".to_string(), self.step.to_string())]);
            crate::checkpoint::save(path, &meta, &[("w".into(), Tensor::from(self.weight))])
        }
        fn finish(&mut self, _: &TrainContext, _: bool, _: usize) -> Result<Summary> {
            unreachable!("run_loop does not call finish")
        }
    }

    fn options() -> LoopOptions {
        LoopOptions {
            steps: 40,
            max_seconds: 0,
            log_every: 1,
            sample_every: 0,
            checkpoint_every: 2,
            keep_checkpoints: 0,
            progress: false,
            precision: Default::default(),
        }
    }

    #[test]
    fn ten_non_finite_losses_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path()).unwrap();
        let mut t = Flaky {
            step: 0,
            weight: 0.0,
            bad: |s| s > 5,
        };
        let e = run_loop(&mut t, "flaky", &run, &options(), &StopFlag::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("diverged") && e.contains("10 steps in a row"),
            "{e}"
        );
        assert_eq!(t.step, 5 + MAX_BAD_STEPS as i64);
        // the last checkpoint is the one of step 4, the last periodic one
        // before the loss went bad
        let ck = crate::checkpoint::load(&run.last_checkpoint()).unwrap();
        assert_eq!(ck.meta("step").unwrap(), "4");
        let w = f32::try_from(&ck.tensors["w"]).unwrap();
        assert_eq!(w, 4.0);
        assert!(!run.checkpoint(6).exists());
    }

    #[test]
    fn scattered_non_finite_losses_do_not_stop_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path()).unwrap();
        let mut t = Flaky {
            step: 0,
            weight: 0.0,
            bad: |s| s % 3 == 0,
        };
        let r = run_loop(&mut t, "flaky", &run, &options(), &StopFlag::default()).unwrap();
        assert_eq!(r.steps, 40);
        let ck = crate::checkpoint::load(&run.last_checkpoint()).unwrap();
        assert_eq!(ck.meta("step").unwrap(), "40");
    }
}
