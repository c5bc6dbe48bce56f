//! Nothing lost: resuming a run that has no checkpoint yet or a damaged one,
//! exact continuation after a resume, checksums that catch a flipped byte, a
//! full disk (a file-size limit) before training starts, and requests too
//! big for the machine refused with one line. Random kills are exercised by
//! `scripts/fault_injection.sh` (by hand; figures in docs/RELIABILITY.md).

mod common;

use common::{t2i, tiny_train};
use std::path::Path;
use std::process::{Command, Output};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// A tiny GAN-INT-CLS run on shapes with these extra arguments.
fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--style-steps", "0", "--sample-every", "0"];
    args.extend_from_slice(extra);
    tiny_train(out, &args)
}

/// The SHA-256 of a checkpoint's tensors, from its header.
fn tensor_sha(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"]["t2i.sha256"]
        .as_str()
        .expect("a checksum in the metadata")
        .to_string()
}

#[test]
fn resume_is_exact_survives_damage_and_works_before_the_first_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");

    // uninterrupted: 6 steps
    ok(train(&a, &["--steps", "6", "--checkpoint-every", "2"]));
    let last = |d: &Path| d.join("checkpoints/last.safetensors");
    let want = tensor_sha(&last(&a));

    // `--resume` on a folder with nothing in it starts the run
    let o = ok(train(
        &b,
        &["--steps", "2", "--checkpoint-every", "2", "--resume"],
    ));
    assert!(stderr(&o).contains("starting the run from the beginning"));
    // 4 more steps after a resume: the same weights as without a stop
    ok(train(
        &b,
        &["--steps", "4", "--checkpoint-every", "2", "--resume"],
    ));
    // damage `last`: the resume passes over it to the newest step file
    let mut bytes = std::fs::read(last(&b)).unwrap();
    let k = bytes.len() - 100;
    bytes[k] ^= 0xff;
    std::fs::write(last(&b), &bytes).unwrap();
    let o = ok(train(
        &b,
        &["--steps", "6", "--checkpoint-every", "2", "--resume"],
    ));
    assert!(
        stderr(&o).contains("resuming from") && stderr(&o).contains("step-0000004"),
        "{}",
        stderr(&o)
    );
    assert_eq!(tensor_sha(&last(&b)), want, "resumed weights differ");

    // only the newest step files are kept, and the manifest lists them
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("checkpoints/manifest.json")).unwrap())
            .unwrap();
    let files: Vec<&str> = manifest["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "step-0000002.safetensors",
            "step-0000004.safetensors",
            "step-0000006.safetensors",
            "last.safetensors"
        ]
    );

    // a flipped byte in a checkpoint is named on load, and nothing is written
    let png = tmp.path().join("g.png");
    let o = t2i(&[
        "generate",
        "--checkpoint",
        &b.join("checkpoints/step-0000006.safetensors")
            .display()
            .to_string(),
        "--text",
        "a red circle",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "an intact checkpoint: {}", stderr(&o));
    let _ = std::fs::remove_file(&png);
    let damaged = tmp.path().join("damaged.safetensors");
    std::fs::write(&damaged, &bytes).unwrap();
    let o = t2i(&[
        "generate",
        "--checkpoint",
        damaged.to_str().unwrap(),
        "--text",
        "a red circle",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("damaged.safetensors is damaged"),
        "{}",
        stderr(&o)
    );
    assert!(!png.exists());
}

#[test]
fn a_full_disk_or_a_request_too_big_is_one_error_line_and_no_folder() {
    let tmp = tempfile::tempdir().unwrap();
    // a 2 MB file-size limit: the first checkpoint (10 MB) cannot be written
    let out = tmp.path().join("full");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f 2000; exec {} train --out {} --steps 5 --text-steps 10 --train-size 100 --batch-size 4 --eval-samples 0 --device cpu",
            env!("CARGO_BIN_EXE_t2i"),
            out.display()
        ))
        .env("T2I_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("cannot write the checkpoint of step 0") && e.contains("File too large"),
        "{e}"
    );
    assert!(!out.exists(), "a run that could not start left its folder");

    for (extra, needle) in [
        (
            &["--batch-size", "100000000"][..],
            "batch_size must be in 2..=4096",
        ),
        (
            &["--train-size", "1000000000"][..],
            "GiB in memory, more than",
        ),
    ] {
        let out = tmp.path().join("big");
        let mut args = vec!["train", "--out", out.to_str().unwrap(), "--steps", "1"];
        args.extend_from_slice(extra);
        let o = t2i(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(needle), "{e}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(!out.exists());
    }
}
