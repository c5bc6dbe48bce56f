//! `t2i demo`: trains tiny GAN-INT-CLS on shapes and writes sample grids,
//! interpolations, style transfers, `summary.json` and a one-page HTML summary.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use t2i::data::shapes::{Shapes, ShapesConfig, Split};
use t2i::device::{device_name, parse_device};
use t2i::eval::shapes::{shapes_accuracy, style_transfer_scores, ShapesScores};
use t2i::imageio::{grid, images_to_tensor, tensor_to_images, Rgb};
use t2i::models::gan_int_cls::GanIntClsConfig;
use t2i::text::GruEncoderConfig;
use t2i::train::gan_int_cls::{
    style_transfer, train_run, GanIntClsModel, ResolvedConfig, ShapesTensors, TrainOptions, Trainer,
};
use t2i::train::run::{versions, RunDir, StopFlag};
use t2i::train::text_encoder::{train_and_save, TextTrainOptions};
use tch::Tensor;

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

/// Checker scores of a model: held-in, held-out compositions, style transfer.
pub fn evaluate(
    model: &GanIntClsModel,
    data: &ShapesConfig,
    n: usize,
    seed: Option<u64>,
) -> Result<Value> {
    let shapes = Shapes::new(ShapesConfig {
        test_size: data.test_size.max(2 * n),
        ..data.clone()
    })?;
    let seed = seed.unwrap_or(99);
    let held_in = shapes_accuracy(model, &shapes, Split::Test, n, seed)?;
    let held_out = shapes_accuracy(model, &shapes, Split::HeldOut, n, seed)?;
    let mut v = json!({
        "protocol": format!("{n} samples per split, one caption per test image, noise seed {seed}, analytic shapes checker"),
        "held_in": held_in,
        "held_out": held_out,
        "joint_chance": ShapesScores::JOINT_CHANCE,
    });
    if model.style_trained {
        v["style_transfer"] =
            serde_json::to_value(style_transfer_scores(model, &shapes, n.min(300))?)?;
        let k = n.clamp(2, 200);
        v["style_auroc"] = json!({
            "auroc": t2i::eval::shapes::style_auroc(model, &shapes, k)?,
            "images": k,
            "protocol": "all pairs of real held-in test images, positive when they share the background colour (the style cluster), scored by the cosine of S(x)",
        });
    }
    Ok(v)
}

pub fn print_summary(v: &Value) {
    let pct = |x: &Value| {
        x.as_f64()
            .map(|f| format!("{:5.1}%", 100.0 * f))
            .unwrap_or_else(|| "  n/a".into())
    };
    for key in ["untrained", "held_in", "held_out"] {
        if let Some(s) = v.get(key) {
            println!(
                "{:<10} colour {}  shape {}  joint colour+shape {}  size {}  position {}  ({} samples)",
                key,
                pct(&s["colour"]),
                pct(&s["shape"]),
                pct(&s["joint"]),
                pct(&s["size"]),
                pct(&s["position"]),
                s["samples"]
            );
            if let Some(m) = s["shape_confusion"].as_array() {
                let names = ["circle", "square", "triangle"];
                let rows: Vec<String> = m
                    .iter()
                    .zip(names)
                    .map(|(r, n)| format!("{n} -> {r}"))
                    .collect();
                println!(
                    "{:<10} shapes drawn [circle, square, triangle, none]: {}",
                    "",
                    rows.join("  ")
                );
            }
            if let (Some(iou), Some(kp)) = (s["box_iou"].as_f64(), s["keypoint_error"].as_f64()) {
                println!(
                    "{:<10} control (GAWWN metrics, here from text alone): box IoU {iou:.3}, keypoint error {:.1}% of the side",
                    "",
                    100.0 * kp
                );
            }
        }
    }
    if let Some(a) = v.get("style_auroc") {
        println!(
            "style AU-ROC (same background vs different, cosine of S(x), {} images): {}",
            a["images"],
            a["auroc"]
                .as_f64()
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "n/a".into())
        );
    }
    if let Some(s) = v.get("style_transfer") {
        println!(
            "style transfer: background kept {}  new content (colour+shape) {}  both {}  ({} pairs)",
            pct(&s["background_kept"]),
            pct(&s["content_joint"]),
            pct(&s["both"]),
            s["pairs"]
        );
    }
}

fn save(img: &Rgb, dir: &Path, name: &str) -> Result<String> {
    img.save(&dir.join(name))?;
    Ok(name.to_string())
}

pub fn run(a: DemoArgs) -> Result<()> {
    let start = Instant::now();
    let device = parse_device(&a.device)?;
    if a.batch_size < 2 {
        anyhow::bail!("--batch-size must be at least 2, got {}", a.batch_size);
    }
    std::fs::create_dir_all(&a.out)?;
    let run = RunDir::create(&a.out.join("run"))?;
    let data = ShapesConfig {
        image_size: 32,
        max_objects: 1,
        train_size: 10_000,
        seed: a.seed,
        ..Default::default()
    };
    let shapes = Shapes::new(data.clone())?;
    println!("[1/4] training the text encoder on shapes captions");
    let topts = TextTrainOptions {
        steps: a.text_steps,
        seed: a.seed,
        ..Default::default()
    };
    let enc_path = run.root.join("text_encoder.safetensors");
    let text = train_and_save(&shapes, GruEncoderConfig::tiny(), &topts, device, &enc_path)?;
    let encoder = text.encoder;
    println!(
        "      held-in test retrieval {:.1}%",
        100.0 * text.test_retrieval
    );

    let cfg = GanIntClsConfig {
        text_dim: 128,
        ngf: a.width,
        ndf: a.width,
        diversity_weight: a.diversity,
        lr: a.lr,
        ema_decay: a.ema,
        batch_size: a.batch_size,
        ..GanIntClsConfig::tiny()
    };
    let opts = TrainOptions {
        steps: 100_000,
        max_seconds: (a.minutes * 60.0) as u64,
        style_steps: 200,
        text_steps: topts.steps,
        seed: a.seed,
        sample_every: 500,
        checkpoint_every: 1000,
        log_every: 20,
        progress: true,
    };
    run.write_config(&ResolvedConfig {
        model: "gan-int-cls".into(),
        versions: versions(),
        device: device_name(device),
        text_encoder: encoder.source.clone(),
        gan: cfg.clone(),
        data: data.clone(),
        train: opts.clone(),
    })?;
    let tensors = ShapesTensors::build(&shapes, Split::Train, &encoder, device)?;
    tch::manual_seed(a.seed as i64);
    let model = GanIntClsModel::new(cfg, encoder, device);
    let untrained = shapes_accuracy(&model, &shapes, Split::Test, a.samples, 99)?;
    let mut trainer = Trainer::new(model, tensors, data.clone(), a.seed);
    println!(
        "[2/4] training GAN-INT-CLS (tiny, 32x32, width {}) for {:.1} min, then the style encoder",
        a.width, a.minutes
    );
    let report = train_run(&mut trainer, &run, &opts, &StopFlag::default())?;
    println!("      {} steps in {:.0} s", report.steps, report.seconds);

    println!("[3/4] scoring samples with the analytic checker");
    let model = &trainer.model;
    let mut summary = evaluate(model, &data, a.samples, None)?;
    summary["untrained"] = serde_json::to_value(untrained)?;
    summary["steps"] = json!(report.steps);
    summary["train_seconds"] = json!(report.seconds);
    summary["text_encoder_retrieval"] = json!(text.test_retrieval);
    summary["device"] = json!(device_name(device));
    summary["versions"] = json!(versions());

    println!("[4/4] writing grids, interpolations and the summary");
    let dir = &a.out;
    let z = model.noise(8, 7);
    let mut files = Vec::new();
    for (split, name) in [
        (Split::Test, "held_in.png"),
        (Split::HeldOut, "held_out.png"),
    ] {
        let mut rows = Vec::new();
        for i in 0..6 {
            let cap = shapes.sample(split, i).captions[0].clone();
            let (h, _) = model.embed(&[cap.as_str()])?;
            rows.push((
                tensor_to_images(&model.generate(&z, &h.repeat([8, 1]))),
                Some(cap),
            ));
        }
        files.push((
            format!(
                "Samples for {} captions (8 noise vectors each)",
                split.name()
            ),
            save(&grid(&rows, 2), dir, name)?,
        ));
    }
    let pairs = [
        (
            "a small red circle in the top left",
            "a small blue circle in the top left",
        ),
        (
            "a large yellow square in the centre",
            "a large yellow triangle in the centre",
        ),
        (
            "a small white square on the left",
            "a small white square on the right",
        ),
    ];
    let mut rows = Vec::new();
    let z1 = model.noise(1, 11).repeat([8, 1]);
    for (t1, t2) in pairs {
        let (h, _) = model.embed(&[t1, t2])?;
        let w = Tensor::linspace(0.0, 1.0, 8, (tch::Kind::Float, device)).unsqueeze(1);
        let hs = h.get(0).unsqueeze(0) * (1.0 - &w) + h.get(1).unsqueeze(0) * &w;
        rows.push((
            tensor_to_images(&model.generate(&z1, &hs)),
            Some(format!("{t1} -> {t2}")),
        ));
    }
    files.push((
        "Sentence interpolation (fixed noise)".into(),
        save(&grid(&rows, 2), dir, "sentence_interpolation.png")?,
    ));
    let mut rows = Vec::new();
    for (k, t) in [
        "a big green square at the bottom",
        "a small orange triangle in the top right",
    ]
    .iter()
    .enumerate()
    {
        let zz = model.noise(2, 20 + k as u64);
        let w = Tensor::linspace(0.0, 1.0, 8, (tch::Kind::Float, device)).unsqueeze(1);
        let zs = zz.get(0).unsqueeze(0) * (1.0 - &w) + zz.get(1).unsqueeze(0) * &w;
        let (h, _) = model.embed(&[t])?;
        rows.push((
            tensor_to_images(&model.generate(&zs, &h.repeat([8, 1]))),
            Some(format!("{t} (noise interpolation)")),
        ));
    }
    files.push((
        "Noise interpolation (fixed text): the style changes, the content stays".into(),
        save(&grid(&rows, 2), dir, "noise_interpolation.png")?,
    ));
    // style transfer: query images and the new captions' results
    let queries: Vec<_> = (0..8)
        .map(|i| shapes.sample(Split::Test, 100 + i))
        .collect();
    let q: Vec<&[u8]> = queries.iter().map(|s| s.pixels.as_slice()).collect();
    let mut rows = vec![(
        tensor_to_images(&images_to_tensor(&q, 32)),
        Some("query images (style)".to_string()),
    )];
    for t in [
        "a large red circle in the centre",
        "a small blue square in the bottom right",
    ] {
        let caps = vec![t; 8];
        rows.push((
            tensor_to_images(&style_transfer(model, &q, 32, &caps)?),
            Some(t.to_string()),
        ));
    }
    files.push((
        "Style transfer: G(S(query), new text)".into(),
        save(&grid(&rows, 2), dir, "style_transfer.png")?,
    ));
    let last_sample = run.sample(trainer.step);

    summary["images"] = json!(files.iter().map(|f| f.1.clone()).collect::<Vec<_>>());
    summary["total_seconds"] = json!(start.elapsed().as_secs_f64());
    t2i::imageio::write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let html = html_summary(&summary, &files);
    t2i::imageio::write_atomic(&dir.join("index.html"), html.as_bytes())?;
    print_summary(&summary);
    println!("demo finished in {:.0} s", start.elapsed().as_secs_f64());
    println!("summary: {}", dir.join("index.html").display());
    println!("scores:  {}", dir.join("summary.json").display());
    println!(
        "run:     {} (last grid {})",
        run.root.display(),
        last_sample.display()
    );
    Ok(())
}

fn html_summary(s: &Value, files: &[(String, String)]) -> String {
    let pct = |x: &Value| {
        x.as_f64()
            .map(|f| format!("{:.1}%", 100.0 * f))
            .unwrap_or_else(|| "n/a".into())
    };
    let mut rows = String::new();
    for (key, label) in [
        ("untrained", "untrained generator"),
        ("held_in", "held-in captions"),
        ("held_out", "held-out compositions"),
    ] {
        if let Some(v) = s.get(key) {
            rows += &format!(
                "<tr><td>{label}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                pct(&v["colour"]),
                pct(&v["shape"]),
                pct(&v["joint"]),
                pct(&v["size"]),
                pct(&v["position"]),
                v["samples"]
            );
        }
    }
    let style = s
        .get("style_transfer")
        .map(|v| {
            format!(
                "<p>Style transfer over {} pairs: background kept {}, new caption's colour+shape {}, both {}.</p>",
                v["pairs"],
                pct(&v["background_kept"]),
                pct(&v["content_joint"]),
                pct(&v["both"])
            )
        })
        .unwrap_or_default();
    let imgs: String = files
        .iter()
        .map(|(t, f)| format!("<h2>{t}</h2>\n<img src=\"{f}\" style=\"image-rendering:pixelated;max-width:100%\">\n"))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>t2i demo: GAN-INT-CLS on shapes</title>\
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .8em;text-align:right}}td:first-child{{text-align:left}}</style></head><body>\n\
<h1>GAN-INT-CLS (tiny) on the shapes data set</h1>\n\
<p>{} training steps in {:.0} s on {} ({}). Scores by the analytic checker (no learned model): {}. Chance for colour+shape is {:.1}%.</p>\n\
<table><tr><th></th><th>colour</th><th>shape</th><th>colour+shape</th><th>size</th><th>position</th><th>samples</th></tr>\n{rows}</table>\n{style}\n{imgs}</body></html>\n",
        s["steps"],
        s["train_seconds"].as_f64().unwrap_or(0.0),
        s["device"].as_str().unwrap_or(""),
        s["versions"].as_str().unwrap_or(""),
        s["protocol"].as_str().unwrap_or(""),
        100.0 * ShapesScores::JOINT_CHANCE,
    )
}
