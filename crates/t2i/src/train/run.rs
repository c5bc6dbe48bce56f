//! Run folders: resolved config, checkpoints, `metrics.jsonl`, sample grids.

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Versions recorded with every run and checkpoint.
pub fn versions() -> String {
    format!(
        "t2i {}, tch 0.26, libtorch 2.13.0",
        env!("CARGO_PKG_VERSION")
    )
}

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
