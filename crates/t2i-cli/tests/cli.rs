//! The `t2i` binary: a tiny training run, reproducible generation, and one
//! clear error line (non-zero exit, no output file) for each bad input.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

mod common;

use common::{t2i, tiny_train};

/// One tiny trained run shared by the tests.
fn run_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("t2i-cli-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = t2i(&[
            "train",
            "--out",
            dir.to_str().unwrap(),
            "--steps",
            "4",
            "--text-steps",
            "20",
            "--style-steps",
            "2",
            "--train-size",
            "200",
            "--batch-size",
            "8",
            "--eval-samples",
            "0",
            "--device",
            "cpu",
        ]);
        assert!(
            out.status.success(),
            "train failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn ckpt() -> String {
    run_dir()
        .join("checkpoints/last.safetensors")
        .display()
        .to_string()
}

fn assert_clear_error(out: &Output, needle: &str, file: &Path) {
    assert!(!out.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {err}");
    assert!(
        lines[0].contains(needle),
        "error {:?} should mention {needle:?}",
        lines[0]
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!file.exists(), "{} must not be written", file.display());
}

#[test]
fn run_folder_has_config_metrics_samples() {
    let d = run_dir();
    let cfg = std::fs::read_to_string(d.join("config.toml")).unwrap();
    assert!(cfg.contains("gan-int-cls") && cfg.contains("seed"));
    assert!(d.join("metrics.jsonl").exists());
    assert!(d.join("text_encoder.safetensors").exists());
    assert!(std::fs::read_dir(d.join("samples")).unwrap().count() >= 1);
}

#[test]
fn generate_is_reproducible_and_lists_unknown_words() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.png");
    let b = dir.path().join("b.png");
    let each = dir.path().join("each");
    let c = ckpt();
    for (p, extra) in [(&a, None), (&b, Some(&each))] {
        let mut args = vec![
            "generate",
            "--checkpoint",
            &c,
            "--text",
            "a small red zebra circle",
            "-n",
            "3",
            "--seed",
            "4",
            "--device",
            "cpu",
            "--out",
            p.to_str().unwrap(),
        ];
        let e;
        if let Some(dirp) = extra {
            e = dirp.display().to_string();
            args.extend(["--out-dir", e.as_str()]);
        }
        let out = t2i(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("zebra"));
        // the caption leaves the position out: each sample is drawn from a
        // full caption that keeps what it names
        let drawn: Vec<&str> = err.lines().filter(|l| l.contains(" drawn as: ")).collect();
        assert_eq!(drawn.len(), 3, "{err}");
        for l in drawn {
            let spec = t2i::data::shapes::read_caption(l.split(" drawn as: ").nth(1).unwrap());
            assert!(spec.is_full(), "{l}");
            assert_eq!(
                (
                    spec.objects[0].colour,
                    spec.objects[0].shape,
                    spec.objects[0].size
                ),
                (Some(0), Some(0), Some(0)),
                "{l}"
            );
        }
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(std::fs::read_dir(&each).unwrap().count(), 3);
    // interpolations and style transfer write strips
    let s = dir.path().join("s.png");
    let out = t2i(&[
        "generate",
        "--checkpoint",
        &c,
        "--text",
        "a red circle",
        "--interpolate",
        "a blue square",
        "--steps",
        "5",
        "--device",
        "cpu",
        "--out",
        s.to_str().unwrap(),
    ]);
    assert!(out.status.success() && s.exists());
    let n = dir.path().join("n.png");
    let out = t2i(&[
        "generate",
        "--checkpoint",
        &c,
        "--text",
        "a red circle",
        "--noise-interpolate",
        "--device",
        "cpu",
        "--out",
        n.to_str().unwrap(),
    ]);
    assert!(out.status.success() && n.exists());
    let st = dir.path().join("st.png");
    let out = t2i(&[
        "generate",
        "--checkpoint",
        &c,
        "--text",
        "a red circle",
        "--style-from",
        a.to_str().unwrap(),
        "--device",
        "cpu",
        "--out",
        st.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && st.exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_inputs_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out_png = dir.path().join("x.png");
    let o = out_png.to_str().unwrap();
    let c = ckpt();
    let gen = |text: &str, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--checkpoint",
            c.as_str(),
            "--text",
            text,
            "--device",
            "cpu",
            "--out",
            o,
        ];
        args.extend_from_slice(extra);
        t2i(&args)
    };
    assert_clear_error(&gen("   ", &[]), "empty", &out_png);
    assert_clear_error(
        &gen("zebra giraffe", &[]),
        "no word of the caption",
        &out_png,
    );
    let out = gen("zebra giraffe", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("no word of the caption").count(), 1, "{err}");
    assert_clear_error(&gen("a red circle", &["-n", "0"]), "-n", &out_png);
    assert_clear_error(&gen("a red circle", &["-n", "100000000"]), "-n", &out_png);
    // a run folder stands for its last checkpoint; another folder is refused
    let run = run_dir().display().to_string();
    let out = t2i(&[
        "generate",
        "--checkpoint",
        &run,
        "--text",
        "A Red Circle.",
        "--device",
        "cpu",
        "-o",
        o,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&out_png).unwrap();
    let not_run = dir.path().to_str().unwrap().to_string();
    let out = t2i(&[
        "generate",
        "--checkpoint",
        &not_run,
        "--text",
        "a red circle",
        "-o",
        o,
    ]);
    assert_clear_error(&out, "not a run folder", &out_png);
    let caps = dir.path().join("caps.txt");
    std::fs::write(&caps, "# nothing\n\n").unwrap();
    let json = dir.path().join("caps.json");
    let out = t2i(&[
        "eval",
        "--checkpoint",
        &run,
        "--captions",
        caps.to_str().unwrap(),
        "--out",
        json.to_str().unwrap(),
    ]);
    assert_clear_error(&out, "no caption", &json);
    let missing = dir.path().join("missing.safetensors");
    let out = t2i(&[
        "generate",
        "--checkpoint",
        missing.to_str().unwrap(),
        "--text",
        "a red circle",
        "--out",
        o,
    ]);
    assert_clear_error(&out, "missing.safetensors", &out_png);
    let trunc = dir.path().join("trunc.safetensors");
    let bytes = std::fs::read(&c).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() - 100]).unwrap();
    let out = t2i(&[
        "generate",
        "--checkpoint",
        trunc.to_str().unwrap(),
        "--text",
        "a red circle",
        "--out",
        o,
    ]);
    assert_clear_error(&out, "not a valid t2i checkpoint", &out_png);
    let bad_out = dir.path().join("no/such/dir/x.png");
    let out = t2i(&[
        "generate",
        "--checkpoint",
        &c,
        "--text",
        "a red circle",
        "--device",
        "cpu",
        "--out",
        bad_out.to_str().unwrap(),
    ]);
    assert_clear_error(&out, "no/such/dir", &bad_out);
    let run = dir.path().join("run48");
    let out = t2i(&[
        "train",
        "--out",
        run.to_str().unwrap(),
        "--image-size",
        "48",
        "--device",
        "cpu",
    ]);
    assert_clear_error(
        &out,
        "image size 48 is not supported",
        &run.join("config.toml"),
    );
    let out = t2i(&[
        "generate",
        "--checkpoint",
        &c,
        "--text",
        "a red circle",
        "--device",
        "cuda:7",
        "--out",
        o,
    ]);
    if !tch_cuda_available() {
        assert_clear_error(&out, "cuda", &out_png);
    }
}

fn tch_cuda_available() -> bool {
    // the binary decides; a CPU-only build never has CUDA
    !cfg!(not(feature = "cuda"))
}

#[test]
fn data_shapes_writes_the_cub_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shapes");
    let o = t2i(&[
        "data",
        "shapes",
        "--out",
        out.to_str().unwrap(),
        "--size",
        "32",
        "--train",
        "20",
        "--test",
        "5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let images = std::fs::read_to_string(out.join("CUB_200_2011/images.txt")).unwrap();
    assert_eq!(images.lines().count(), 30);
    let first = images
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    assert!(out.join("CUB_200_2011/images").join(&first).exists());
    let txt = out.join("text").join(first.replace(".png", ".txt"));
    assert_eq!(std::fs::read_to_string(txt).unwrap().lines().count(), 5);
    assert_eq!(
        std::fs::read_to_string(out.join("train_filenames.txt"))
            .unwrap()
            .lines()
            .count(),
        20
    );
    assert_eq!(
        std::fs::read_to_string(out.join("CUB_200_2011/parts/part_locs.txt"))
            .unwrap()
            .lines()
            .count(),
        150
    );
    let bad = t2i(&[
        "data",
        "shapes",
        "--out",
        out.to_str().unwrap(),
        "--size",
        "8",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("image size 8"));
}

#[test]
fn real_data_and_stackgan_commands_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let o = out_dir.to_str().unwrap();
    let none = tmp.path().join("nowhere");
    let n = none.to_str().unwrap();
    assert_clear_error(
        &t2i(&["data", "prepare", "--root", n, "--cache", n]),
        "no CUB_200_2011 folder",
        &none,
    );
    assert_clear_error(
        &t2i(&["data", "prepare", "--root", n, "--size", "48"]),
        "--size must be",
        &none,
    );
    assert_clear_error(
        &t2i(&["train", "--model", "damsm", "--out", o]),
        "--data-root DIR",
        &out_dir,
    );
    assert_clear_error(
        &t2i(&["train", "--model", "stackgan", "--stage", "2", "--out", o]),
        "--stage 2 needs --stage1",
        &out_dir,
    );
    assert_clear_error(
        &t2i(&["train", "--model", "stackgan", "--data", "cub", "--out", o]),
        "needs --text-encoder",
        &out_dir,
    );
    assert_clear_error(
        &t2i(&["eval", "--checkpoint", &ckpt(), "--metric", "fid,bogus"]),
        "unknown metric 'bogus'",
        &none,
    );
    assert_clear_error(
        &t2i(&["eval", "--checkpoint", &ckpt(), "--metric", "r-precision"]),
        "--data-root is required",
        &none,
    );
    assert_clear_error(
        &t2i(&[
            "eval",
            "--checkpoint",
            &ckpt(),
            "--metric",
            "fid",
            "--data-root",
            n,
        ]),
        "needs --damsm",
        &none,
    );
    assert_clear_error(
        &t2i(&["train", "--model", "attngan", "--data", "cub", "--out", o]),
        "needs its folder",
        &out_dir,
    );
    assert_clear_error(
        &t2i(&[
            "train",
            "--model",
            "attngan",
            "--data",
            "cub",
            "--data-root",
            n,
            "--out",
            o,
        ]),
        "needs --damsm",
        &out_dir,
    );
    assert_clear_error(
        &t2i(&[
            "train", "--model", "attngan", "--data", "shapes", "--damsm", n, "--out", o,
        ]),
        "CUB layout",
        &out_dir,
    );
    let att = tmp.path().join("att.png");
    assert_clear_error(
        &t2i(&[
            "generate",
            "--checkpoint",
            &ckpt(),
            "--text",
            "a red circle",
            "--attention",
            "--out",
            att.to_str().unwrap(),
        ]),
        "--attention needs a model that supports it",
        &att,
    );
    assert_clear_error(
        &t2i(&["train", "--model", "damsm", "--ngf", "8", "--out", o]),
        "--ngf does not apply to damsm",
        &out_dir,
    );
    assert_clear_error(
        &t2i(&[
            "train", "--model", "stackgan", "--set", "nope=1", "--out", o,
        ]),
        "unknown config field 'nope' (fields: ",
        &out_dir,
    );
    let imp = tmp.path().join("imported.safetensors");
    assert_clear_error(
        &t2i(&[
            "import",
            "--model",
            "gan-int-cls",
            "--weights",
            n,
            "--text-encoder",
            n,
            "--out",
            imp.to_str().unwrap(),
        ]),
        "no official weights to import for gan-int-cls",
        &imp,
    );
    let info = t2i(&["info", "--model", "stackgan", "--preset", "paper"]);
    let s = String::from_utf8_lossy(&info.stdout);
    for n in ["10301248", "5715713", "36591328", "71269122"] {
        assert!(s.contains(n), "{s}");
    }
    let info = t2i(&["info", "--model", "attngan", "--preset", "paper"]);
    let s = String::from_utf8_lossy(&info.stdout);
    for n in ["7084592", "6313730", "19424002", "71858946"] {
        assert!(s.contains(n), "{s}");
    }
}

#[test]
fn eval_run_writes_json_and_html_report() {
    let d = run_dir();
    let out = t2i(&[
        "eval",
        "--run",
        d.to_str().unwrap(),
        "--samples",
        "20",
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("eval/eval.json")).unwrap()).unwrap();
    let j = v["metrics"]["held_in"]["joint"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&j));
    let html = std::fs::read_to_string(d.join("eval/report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("held-in captions: joint"));
    assert!(html.contains("caption-0.png") && d.join("eval/caption-0.png").exists());
    // not a run folder: one clear error
    let tmp = tempfile::tempdir().unwrap();
    assert_clear_error(
        &t2i(&["eval", "--run", tmp.path().to_str().unwrap()]),
        "not a run folder",
        &tmp.path().join("eval"),
    );
}

#[test]
fn attngan_end_to_end_on_cub_layout_with_resumable_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).display().to_string();
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let cache = p("cache");
    ok(t2i(&[
        "data",
        "shapes",
        "--out",
        &p("data"),
        "--size",
        "64",
        "--train",
        "80",
        "--test",
        "40",
    ]));
    ok(t2i(&[
        "train",
        "--model",
        "damsm",
        "--data",
        "cub",
        "--data-root",
        &p("data"),
        "--cache",
        &cache,
        "--out",
        &p("damsm"),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--device",
        "cpu",
    ]));
    let damsm = p("damsm/checkpoints/last.safetensors");
    ok(t2i(&[
        "train",
        "--model",
        "attngan",
        "--data",
        "cub",
        "--data-root",
        &p("data"),
        "--cache",
        &cache,
        "--damsm",
        &damsm,
        "--out",
        &p("attn"),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]));
    let g = p("attn/checkpoints/last.safetensors");
    let out = ok(t2i(&[
        "generate",
        "--checkpoint",
        &g,
        "--text",
        "a red circle in the centre",
        "-n",
        "2",
        "--attention",
        "--out",
        &p("g.png"),
        "--device",
        "cpu",
    ]));
    assert!(out.contains("g-attention.png"), "{out}");
    assert!(tmp.path().join("g-attention.png").exists());
    // metrics of 60 samples; the second evaluation reuses the stored samples
    let eval = |json: &str| {
        t2i(&[
            "eval",
            "--checkpoint",
            &g,
            "--metric",
            "r-precision,fid,kid",
            "--damsm",
            &damsm,
            "--data-root",
            &p("data"),
            "--num-samples",
            "60",
            "--samples-dir",
            &p("s"),
            "--out",
            json,
            "--device",
            "cpu",
        ])
    };
    let first = eval(&p("e1.json"));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = eval(&p("e2.json"));
    assert!(String::from_utf8_lossy(&second.stderr).contains("reused 60 samples"));
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p(f)).unwrap()).unwrap()
    };
    let (a, b) = (read("e1.json"), read("e2.json"));
    assert_eq!(a["r_precision"], b["r_precision"]);
    assert_eq!(a["damsm_fid"], b["damsm_fid"]);
    assert!(a["damsm_fid"].as_f64().unwrap() > 0.0);
    assert!(a["feature_network"].as_str().unwrap().contains("DAMSM"));
    assert_eq!(a["samples"], 60);
    // the Inception Score needs Inception weights
    assert_clear_error(
        &t2i(&[
            "eval",
            "--checkpoint",
            &g,
            "--metric",
            "is",
            "--damsm",
            &damsm,
            "--data-root",
            &p("data"),
            "--out",
            &p("e3.json"),
        ]),
        "needs --inception",
        &tmp.path().join("e3.json"),
    );
}

/// A tiny GAWWN run of `condition` (box or keypoints).
fn gawwn_run(condition: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("t2i-cli-gawwn-{condition}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let set = format!("condition={condition}");
    let out = tiny_train(&dir, &["--model", "gawwn", "--steps", "3", "--set", &set]);
    assert!(
        out.status.success(),
        "gawwn train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn gawwn_draws_at_boxes_and_keypoints_and_refuses_bad_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("g.png");
    let p = png.to_str().unwrap();
    let boxes = gawwn_run("box");
    let b = boxes.to_str().unwrap();
    let gen = |run: &str, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--checkpoint",
            run,
            "--text",
            "a red circle",
            "-o",
            p,
        ];
        args.extend_from_slice(extra);
        t2i(&args)
    };
    for ok in [
        &["--box", "0.1,0.2,0.5,0.5", "-n", "3"][..],
        &["--box", "0,0,16,16px"],
        &["--box-sweep", "4", "--box", "0,0.5,0.3,0.3"],
    ] {
        let out = gen(b, ok);
        assert!(
            out.status.success(),
            "{ok:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(png.exists());
        std::fs::remove_file(&png).unwrap();
        // the caption leaves size and position out: each sample is drawn as
        // the full caption of a red circle at the requested box
        let err = String::from_utf8_lossy(&out.stderr);
        let drawn: Vec<&str> = err
            .lines()
            .filter_map(|l| l.split_once(" drawn as: ").map(|(_, d)| d))
            .collect();
        assert!(!drawn.is_empty(), "{ok:?}: no 'drawn as' line in {err}");
        for d in drawn {
            let full = t2i::data::shapes::read_caption(d);
            assert!(full.is_full(), "{d}");
            assert_eq!(full.objects[0].colour, Some(0), "{d}");
        }
    }
    for (bad, needle) in [
        (&["--box", "0.8,0.1,0.5,0.5"][..], "not inside the image"),
        (&["--box", "0.1,0.1,0,0.5"], "must be positive"),
        (&["--box", "0.1,0.1,-0.2,0.5"], "must be positive"),
        (&["--box", "0.1;0.1;0.2;0.5"], "expected 4 comma-separated"),
        (&["--box", "a,b,c,d"], "is not a number"),
        (&["--keypoints", "centre=0.5,0.5"], "--keypoints"),
        (&["--box-sweep", "1"], "--box-sweep must be in"),
    ] {
        assert_clear_error(&gen(b, bad), needle, &png);
    }

    let kp = gawwn_run("keypoints");
    let k = kp.to_str().unwrap();
    let json = tmp.path().join("g.keypoints.json");
    let out = gen(
        k,
        &[
            "--keypoints",
            "centre=0.5,0.4;Top=16,4px",
            "--complete-keypoints",
            "-n",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let first = &doc["samples"][0];
    let centre = first
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["part"] == "centre")
        .unwrap();
    assert_eq!(centre["given"], true);
    assert!((centre["x"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    assert!((centre["y"].as_f64().unwrap() - 0.4).abs() < 1e-6);
    std::fs::remove_file(&png).unwrap();
    std::fs::remove_file(&json).unwrap();
    for (bad, needle) in [
        (
            &["--keypoints", "beak=0.5,0.5"][..],
            "unknown part \"beak\"",
        ),
        (&["--keypoints", "centre=0.5"], "expected 2 comma-separated"),
        (&["--keypoints", "centre=1.2,0.5"], "outside the image"),
        (&["--box", "0.1,0.1,0.5,0.5"], "--box"),
    ] {
        assert_clear_error(&gen(k, bad), needle, &png);
        assert!(!json.exists());
    }
    let info = t2i(&["info", "--checkpoint", k]);
    assert!(String::from_utf8_lossy(&info.stdout).contains("centre, top, bottom, left, right"));
    let _ = std::fs::remove_dir_all(&boxes);
    let _ = std::fs::remove_dir_all(&kp);
}

/// `--precision bf16` trains under autocast: the run records it, the
/// weights stay float32, and a resumed run in fp32 notes the change.
#[test]
fn bf16_training_records_its_precision_and_keeps_fp32_weights() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let train = |precision: &str, steps: &str, resume: bool| {
        let mut args = vec![
            "train",
            "--out",
            out.to_str().unwrap(),
            "--steps",
            steps,
            "--text-steps",
            "10",
            "--style-steps",
            "1",
            "--train-size",
            "100",
            "--batch-size",
            "8",
            "--eval-samples",
            "0",
            "--device",
            "cpu",
            "--precision",
            precision,
        ];
        if resume {
            args.push("--resume");
        }
        t2i(&args)
    };
    let o = train("bf16", "2", false);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("precision = \"bf16\""), "{config}");
    let ck = t2i::checkpoint::load(&out.join("checkpoints/last.safetensors")).unwrap();
    let g: Vec<_> = ck
        .tensors
        .iter()
        .filter(|(k, _)| k.starts_with("G."))
        .collect();
    assert!(!g.is_empty());
    assert!(g.iter().all(|(_, t)| t.kind() == tch::Kind::Float));
    let o = train("fp32", "3", true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("resume: precision bf16 -> fp32"), "{err}");
    let bad = dir.path().join("bad");
    let o = t2i(&[
        "train",
        "--out",
        bad.to_str().unwrap(),
        "--precision",
        "fp16",
    ]);
    assert_clear_error(&o, "unknown precision 'fp16'", &bad);
}

#[test]
fn bench_counts_flops_and_writes_the_twin_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = t2i(&[
        "bench",
        "--model",
        "gan-int-cls",
        "--repeats",
        "1",
        "--batch-size",
        "4",
        "--peak",
        "--profile",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("peak") && stdout.contains("% peak"),
        "{stdout}"
    );
    // --profile: the ops of every timed row, the backward as autograd nodes
    assert!(
        stdout.contains("ops of one train iteration")
            && stdout.contains("ops of one generate batch 1 ")
            && stdout.contains("ConvolutionBackward0"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let gflop = |k: &str| v[k]["gflop"].as_f64().unwrap_or(0.0);
    // the training iteration does much more work than one generated image
    assert!(gflop("train_step") > 10.0 * gflop("generate_batch1"), "{v}");
    assert!(gflop("generate_batch1") > 0.0, "{v}");
    assert!(v["generate_batch16"]["median_ms"].as_f64().is_some(), "{v}");
    assert!(v["peak_gflops"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
    let ops = v["train_step"]["profile"]
        .as_array()
        .expect("the op profile");
    assert!(ops.iter().any(|o| o["name"] == "aten::conv2d"), "{v}");
    // the PyTorch twin's fixture: weights, one step's inputs and outputs
    let fx = dir.path().join("fixture");
    let out = t2i(&[
        "bench",
        "--model",
        "gan-int-cls",
        "--twin-fixture",
        fx.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["weights", "inputs", "outputs"] {
        let p = fx.join(format!("{f}.safetensors"));
        assert!(std::fs::metadata(&p).unwrap().len() > 0, "{}", p.display());
    }
    // what a family or a flag cannot do is one clear line
    let none = dir.path().join("none");
    let bad = [
        (
            vec!["bench", "--model", "attngan", "--stage", "1"],
            "no stages",
        ),
        (
            vec!["bench", "--model", "stackgan", "--stage", "3"],
            "--stage",
        ),
        (
            vec![
                "bench",
                "--model",
                "stackgan",
                "--twin-fixture",
                none.to_str().unwrap(),
            ],
            "no PyTorch twin fixture",
        ),
        (
            vec![
                "bench",
                "--model",
                "gan-int-cls",
                "--preset",
                "tiny-plus",
                "--twin-fixture",
                none.to_str().unwrap(),
            ],
            "tiny-plus",
        ),
    ];
    for (args, needle) in bad {
        assert_clear_error(&t2i(&args), needle, &none);
    }
}

#[test]
fn generate_in_bf16_is_reproducible_and_close_to_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let c = ckpt();
    let gen = |name: &str, precision: &str| {
        let p = dir.path().join(name);
        let out = t2i(&[
            "generate",
            "--checkpoint",
            &c,
            "--text",
            "a large blue square",
            "-n",
            "2",
            "--seed",
            "9",
            "--device",
            "cpu",
            "--precision",
            precision,
            "--out",
            p.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t2i::imageio::read_image(&p).unwrap().to_rgb8().into_raw()
    };
    let (a, b, f) = (
        gen("a.png", "bf16"),
        gen("b.png", "bf16"),
        gen("f.png", "fp32"),
    );
    assert_eq!(
        a, b,
        "the same precision, seed and device give the same bytes"
    );
    let mean_diff = a
        .iter()
        .zip(&f)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum::<f64>()
        / a.len() as f64;
    assert!(mean_diff < 8.0, "bf16 drifted {mean_diff} levels from fp32");
    let none = dir.path().join("none.png");
    let out = t2i(&[
        "generate",
        "--checkpoint",
        &c,
        "--text",
        "a red circle",
        "--precision",
        "fp8",
        "--out",
        none.to_str().unwrap(),
    ]);
    assert_clear_error(&out, "precision", &none);
}
