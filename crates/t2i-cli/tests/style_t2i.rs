//! StyleT2I end to end on shapes: a StyleGAN2 backbone trained by
//! `--model stylegan2`, Text-to-Direction and Attribute-to-Direction on it
//! (`--model styleT2I`), generation with and without attribute adjustment,
//! reproducible bytes, and captions it cannot draw refused with one line.

mod common;

use common::t2i;
use std::path::{Path, PathBuf};
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A 2-step `stylegan2` backbone in `dir/bb`; its last checkpoint.
fn backbone(dir: &Path) -> PathBuf {
    let bb = dir.join("bb");
    ok(t2i(&[
        "train",
        "--model",
        "stylegan2",
        "--out",
        &s(&bb),
        "--steps",
        "2",
        "--train-size",
        "100",
        "--batch-size",
        "4",
        "--eval-samples",
        "0",
        "--device",
        "cpu",
    ]));
    assert!(bb.join("samples/step-0000002.png").is_file());
    bb.join("checkpoints/last.safetensors")
}

#[test]
fn style_t2i_trains_on_a_stylegan2_backbone_and_adjusts_attributes() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("st");
    let ck = backbone(tmp.path());

    // without a backbone: one line naming the setting
    let o = t2i(&[
        "train",
        "--model",
        "styleT2I",
        "--out",
        &s(&tmp.path().join("none")),
        "--steps",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("backbone"), "{}", stderr(&o));

    let backbone = format!("backbone={}", s(&ck));
    ok(t2i(&[
        "train",
        "--model",
        "styleT2I",
        "--out",
        &s(&st),
        "--steps",
        "2",
        "--text-steps",
        "10",
        "--train-size",
        "100",
        "--batch-size",
        "4",
        "--eval-samples",
        "3",
        "--device",
        "cpu",
        "--set",
        &backbone,
    ]));
    // the summary scores shapes with and without CAA and the directions'
    // localisation
    let sum: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(st.join("summary.json")).unwrap()).unwrap();
    for k in ["caa", "no_caa", "localisation"] {
        assert!(sum[k].is_object(), "{k}: {sum}");
    }
    // with CAA, each split reports what it corrected in its samples
    for split in ["held_in", "held_out"] {
        let r = &sum["caa"]["caa"][split];
        assert_eq!(r["samples"].as_u64(), Some(3), "{split}: {sum}");
        assert!(r["samples_corrected"].as_u64().unwrap() <= 3, "{r}");
    }
    assert!(sum["no_caa"].get("caa").is_none(), "{sum}");
    let loc = &sum["localisation"];
    assert!(loc["cases"].as_u64().unwrap() <= 3);
    let share = loc["localised"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "{loc}");
    // what each attribute direction draws: every attribute of the vocabulary
    let dirs = sum["directions"].as_array().unwrap();
    assert_eq!(dirs.len(), 13, "{sum}");
    for d in dirs {
        for k in ["before", "after", "others_changed"] {
            let x = d[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{d}");
        }
        assert!(["colour", "shape", "size"].contains(&d["kind"].as_str().unwrap()));
    }
    let m: Vec<serde_json::Value> = std::fs::read_to_string(st.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for key in [
        "contrastive",
        "norm",
        "semantic",
        "attribute_norm",
        "spatial",
    ] {
        assert!(m[0][key].as_f64().unwrap().is_finite(), "{key}");
    }

    let caption = "a large blue square at the center";
    let gen = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--checkpoint",
            st.to_str().unwrap(),
            "--text",
            caption,
            "-n",
            "2",
            "--seed",
            "7",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        t2i(&args)
    };
    let (a, b, c) = (
        tmp.path().join("a.png"),
        tmp.path().join("b.png"),
        tmp.path().join("c.png"),
    );
    let o = ok(gen(&a, &[]));
    assert!(
        stderr(&o).contains("sample 1: attribute adjustment corrected"),
        "{}",
        stderr(&o)
    );
    ok(gen(&b, &[]));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let o = ok(gen(&c, &["--no-caa"]));
    assert!(!stderr(&o).contains("attribute adjustment corrected"));
    // a caption in the data set's other words ("big", "pyramid") names
    // attributes too
    let e = tmp.path().join("e.png");
    let o = ok(t2i(&[
        "generate",
        "--checkpoint",
        st.to_str().unwrap(),
        "--text",
        "a big pyramid",
        "-n",
        "1",
        "--out",
        e.to_str().unwrap(),
    ]));
    assert!(stderr(&o).contains("sample 0: attribute adjustment corrected"));
    assert!(e.is_file());
    // the shapes eval reports the directions too, and what CAA corrected
    let ej = tmp.path().join("shapes-eval.json");
    let o = ok(t2i(&[
        "eval",
        "--checkpoint",
        st.to_str().unwrap(),
        "--samples",
        "3",
        "--device",
        "cpu",
        "--out",
        ej.to_str().unwrap(),
    ]));
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    for line in [
        "Compositional Attribute Adjustment corrected",
        "change mostly inside the object's box",
        "  shape: circle",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ej).unwrap()).unwrap();
    assert_eq!(
        j["family"]["directions"].as_array().map(Vec::len),
        Some(13),
        "{j}"
    );

    // eval on a data set in the CUB layout counts what CAA corrected, and
    // `--no-caa` draws without it
    let cub = tmp.path().join("cub");
    ok(t2i(&["data", "shapes", "--out", &s(&cub), "--size", "32"]));
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("../t2i/tests/fixtures/clip");
    let kept = tmp.path().join("kept");
    let ev = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--samples-dir",
            kept.to_str().unwrap(),
            "--metric",
            "clip-score",
            "--checkpoint",
            st.to_str().unwrap(),
            "--clip",
            clip.to_str().unwrap(),
            "--data-root",
            cub.to_str().unwrap(),
            "--num-samples",
            "6",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        t2i(&args)
    };
    let (e1, e2) = (tmp.path().join("e1.json"), tmp.path().join("e2.json"));
    let o = ok(ev(&e1, &[]));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("Compositional Attribute Adjustment corrected"),
        "{out}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&e1).unwrap()).unwrap();
    assert_eq!(j["caa"]["samples"].as_u64(), Some(6), "{j}");
    // kept samples are reused, but never across --no-caa
    let o = ok(ev(&e2, &[]));
    assert!(stderr(&o).contains("reused 6 samples"), "{}", stderr(&o));
    let o = ok(ev(&e2, &["--no-caa"]));
    assert!(!stderr(&o).contains("reused"), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&e2).unwrap()).unwrap();
    assert_eq!(j["caa"], serde_json::json!(false), "{j}");

    // no attribute it knows: refused, nothing written
    let d = tmp.path().join("d.png");
    let o = t2i(&[
        "generate",
        "--checkpoint",
        st.to_str().unwrap(),
        "--text",
        "something over there",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("names no attribute"), "{}", stderr(&o));
    assert!(!d.exists());
    // a backbone has no attribute adjustment
    let o = t2i(&[
        "generate",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--text",
        caption,
        "--no-caa",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!d.exists());
}

/// CLIP as the joint encoder (a folder in Hugging Face's layout; here the
/// random-weight fixture): T2D and A2D train against it, and the checkpoint
/// carries CLIP's text side, so it draws after the folder is gone.
#[test]
fn style_t2i_trains_with_a_clip_folder_and_keeps_its_text_side() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = backbone(tmp.path());
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../t2i/tests/fixtures/clip");
    let clip = tmp.path().join("clip");
    std::fs::create_dir(&clip).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), clip.join(f)).unwrap();
    }
    let st = tmp.path().join("st");
    let o = ok(t2i(&[
        "train",
        "--model",
        "styleT2I",
        "--out",
        &s(&st),
        "--steps",
        "2",
        "--text-encoder",
        &s(&clip),
        "--train-size",
        "100",
        "--batch-size",
        "4",
        "--eval-samples",
        "0",
        "--device",
        "cpu",
        "--set",
        &format!("backbone={}", s(&ck)),
    ]));
    // no joint encoder of its own was trained
    assert!(
        !st.join("text_encoder.safetensors").exists(),
        "{}",
        stderr(&o)
    );
    let m: Vec<serde_json::Value> = std::fs::read_to_string(st.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for key in ["contrastive", "semantic", "spatial"] {
        assert!(m[0][key].as_f64().unwrap().is_finite(), "{key}");
    }
    std::fs::remove_dir_all(&clip).unwrap();
    let gen = |out: &Path| {
        ok(t2i(&[
            "generate",
            "--checkpoint",
            &s(&st),
            "--text",
            "a small red triangle at the top",
            "--seed",
            "3",
            "--out",
            &s(out),
        ]))
    };
    let (a, b) = (tmp.path().join("a.png"), tmp.path().join("b.png"));
    gen(&a);
    gen(&b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let o = t2i(&[
        "info",
        "--checkpoint",
        &s(&st.join("checkpoints/last.safetensors")),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("text      clip (from "), "{out}");
}
