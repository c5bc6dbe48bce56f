//! Helpers shared by the `t2i` binary's integration tests (each test file
//! uses some of them).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs the binary with `args` (warnings only in its log).
pub fn t2i(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_t2i"))
        .args(args)
        .env("T2I_LOG", "warn")
        .output()
        .expect("run t2i")
}

/// `t2i train` of a tiny run on shapes into `out` (10 text-encoder steps,
/// 100 images, batch 4, no summary, CPU) with `extra` arguments.
pub fn tiny_train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--out",
        out.to_str().unwrap(),
        "--text-steps",
        "10",
        "--train-size",
        "100",
        "--batch-size",
        "4",
        "--eval-samples",
        "0",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    t2i(&args)
}

/// A `t2i serve` on a free loopback port, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `host:port`.
    pub addr: String,
}

impl Server {
    /// Serves `runs` on CPU with `extra` flags; returns once it listens.
    pub fn start(runs: &[impl AsRef<Path>], extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_t2i"));
        cmd.arg("serve");
        for r in runs {
            cmd.arg("--run").arg(r.as_ref());
        }
        cmd.args(["--port", "0", "--device", "cpu"])
            .args(extra)
            .env("T2I_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start t2i serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
