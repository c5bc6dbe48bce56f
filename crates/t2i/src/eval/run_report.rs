//! A run's evaluation report (`t2i eval --run RUN`): the metrics of a run's last checkpoint and of each
//! saved checkpoint (metric against step), its training curves and sample
//! grids per caption, written to `RUN/eval/` as `eval.json` and
//! `report.html`.

use crate::checkpoint::{self, Checkpoint};
use crate::data::shapes::{Shapes, ShapesConfig, Split};
use crate::error::{Error, Result};
use crate::eval::report::{read_metrics_jsonl, smooth, Plot, Report};
use crate::imageio::{grid, tensor_to_images};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// What `t2i eval --run` takes besides the run folder.
#[derive(Debug, Clone)]
pub struct RunEvalOptions {
    pub device: tch::Device,
    /// Cache of prepared real images.
    pub cache: PathBuf,
    /// Noise seed.
    pub seed: u64,
    /// Generated samples per split (shapes).
    pub samples: usize,
    /// `shapes` or a list of data-set metrics (a CUB run).
    pub metric: String,
    /// The real data set's folder (a CUB run).
    pub data_root: Option<PathBuf>,
    /// The evaluator's DAMSM (a CUB run; default: the run's).
    pub damsm: Option<PathBuf>,
    /// A CLIP folder for clip-score (default: the DAMSM scores).
    pub clip: Option<PathBuf>,
    pub split: String,
    pub inception: Option<PathBuf>,
    pub classifier: Option<PathBuf>,
    pub num_samples: usize,
    pub samples_dir: Option<PathBuf>,
    pub flip_average: bool,
    /// R-precision of each saved checkpoint on the first N test captions.
    pub over_steps: usize,
}

/// A run's checkpoints by step (`step-N.safetensors`), ascending.
fn step_checkpoints(run: &Path) -> Vec<(i64, PathBuf)> {
    let mut v: Vec<(i64, PathBuf)> = std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let step = name
                        .strip_prefix("step-")?
                        .strip_suffix(".safetensors")?
                        .parse()
                        .ok()?;
                    Some((step, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{:.1}%", 100.0 * x))
        .unwrap_or_else(|| "n/a".into())
}

/// Images for `n` samples of one caption.
fn samples(ck: &Checkpoint, caption: &str, n: i64, seed: u64, device: Device) -> Result<Tensor> {
    let g = crate::family::load_generator(ck, device)?;
    Ok(g.generate(&vec![caption; n as usize], seed)?.images)
}

pub fn eval_run(a: &RunEvalOptions, run: &Path) -> Result<()> {
    let device = a.device;
    let last = run.join("checkpoints").join("last.safetensors");
    if !last.is_file() {
        return Err(Error::Config(format!(
            "{} has no checkpoints/last.safetensors: not a run folder",
            run.display()
        )));
    }
    let ck = checkpoint::load(&last)?;
    let model = ck.meta("model")?.to_string();
    let config: toml::Value = std::fs::read_to_string(run.join("config.toml"))
        .ok()
        .and_then(|s| toml::from_str(&s).ok())
        .unwrap_or(toml::Value::Table(Default::default()));
    // the data set of the run's config (shapes unless it names another)
    let on_shapes = config
        .get("config")
        .and_then(|c| c.get("data"))
        .and_then(|d| d.get("name"))
        .and_then(|n| n.as_str())
        .is_none_or(|n| n == "shapes");
    if let Err(e) = crate::family::load_generator(&ck, device) {
        return Err(Error::Config(format!(
            "eval --run scores generators; {} is a {model} run: {e}",
            run.display()
        )));
    }
    let out_dir = run.join("eval");
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let mut report = Report {
        title: format!("t2i evaluation: {model} run {}", run.display()),
        notes: vec![
            format!("checkpoint {} (step {})", last.display(), ck.meta("step")?),
            format!(
                "versions {}; device {}",
                crate::versions(),
                crate::device::device_name(device)
            ),
            format!(
                "command: t2i {}",
                std::env::args().skip(1).collect::<Vec<_>>().join(" ")
            ),
        ],
        ..Default::default()
    };
    let mut result =
        json!({"run": run.display().to_string(), "model": model, "step": ck.meta("step")?});
    let steps = step_checkpoints(run);

    // the metrics of the last checkpoint, and the main one against the step
    let mut curve = Vec::new();
    let sample_caps: Vec<String>;
    if on_shapes {
        let data: ShapesConfig = crate::eval::shapes::shapes_data(&ck)?;
        let score = |ck: &Checkpoint, n: usize| -> Result<Value> {
            let g = crate::family::load_generator(ck, device)?;
            crate::eval::shapes::evaluate(g.as_ref(), &data, n, a.seed)
        };
        let v = score(&ck, a.samples)?;
        let protocol = v["protocol"].as_str().unwrap_or_default().to_string();
        for (key, label) in [
            ("held_in", "held-in captions"),
            ("held_out", "held-out compositions"),
            ("first_stage", "first stage"),
        ] {
            if let Some(s) = v.get(key) {
                for m in ["colour", "shape", "joint"] {
                    report
                        .table
                        .push((format!("{label}: {m}"), pct(&s[m]), protocol.clone()));
                }
            }
        }
        if let Some(s) = v.get("style_transfer") {
            report.table.push((
                "style transfer: background kept".into(),
                pct(&s["background_kept"]),
                format!("{} pairs, checker", s["pairs"]),
            ));
        }
        if let Some(s) = v.get("style_auroc") {
            report.table.push((
                "style AU-ROC".into(),
                s["auroc"]
                    .as_f64()
                    .map(|x| format!("{x:.3}"))
                    .unwrap_or_else(|| "n/a".into()),
                s["protocol"].as_str().unwrap_or_default().into(),
            ));
        }
        result["metrics"] = v;
        let pb = crate::progress::bar(steps.len() as u64, "checkpoints", true);
        for (step, p) in &steps {
            let v = score(&checkpoint::load(p)?, a.samples.min(200))?;
            curve.push((*step as f64, v["held_in"]["joint"].as_f64().unwrap_or(0.0)));
            pb.inc(1);
        }
        pb.finish_and_clear();
        if !curve.is_empty() {
            report.plots.push(Plot {
                title: "joint colour+shape accuracy (checker)".into(),
                x_label: "step".into(),
                y_label: "accuracy".into(),
                series: vec![("held-in, 200 samples".into(), curve.clone())],
            });
        }
        let shapes = Shapes::new(ShapesConfig {
            test_size: 8,
            ..data.clone()
        })?;
        sample_caps = (0..3)
            .map(|i| shapes.sample(Split::Test, i).captions[0].clone())
            .chain((0..2).map(|i| shapes.sample(Split::HeldOut, i).captions[0].clone()))
            .collect();
    } else {
        let root = a
            .data_root
            .as_deref()
            .ok_or_else(|| Error::Config("--data-root is required to evaluate a CUB run".into()))?;
        let ck_damsm = ck.meta("damsm").ok().map(PathBuf::from);
        let damsm = a
            .damsm
            .clone()
            .or(ck_damsm.filter(|p| p.is_file()))
            .ok_or_else(|| {
                Error::Config("--damsm CHECKPOINT is required (the evaluator's DAMSM)".into())
            })?;
        let metrics: Vec<String> = if a.metric == "shapes" {
            vec!["r-precision".into(), "fid".into(), "kid".into()]
        } else {
            a.metric.split(',').map(|m| m.trim().to_string()).collect()
        };
        let cache = a.cache.clone();
        let e = crate::eval::dataset::DatasetEval {
            checkpoint: &last,
            metrics: metrics.clone(),
            damsm: Some(&damsm),
            clip: a.clip.as_deref(),
            inception: a.inception.as_deref(),
            classifier: a.classifier.as_deref(),
            split: &a.split,
            seed: a.seed,
            device,
            cache: &cache,
            num_samples: a.num_samples,
            flip_average: a.flip_average.then_some(true),
            part_locator: None,
            no_caa: false,
            samples_dir: Some(a.samples_dir.clone().unwrap_or_else(|| {
                out_dir.join(format!(
                    "samples-step{}-seed{}-n{}",
                    ck.meta("step").unwrap_or("0"),
                    a.seed,
                    a.num_samples
                ))
            })),
        };
        let (v, lines) = crate::eval::dataset::generated_metrics(&e, &ck, root, usize::MAX)?;
        for l in &lines {
            println!("{l}");
        }
        if let Some(r) = v.get("r_precision") {
            report.table.push((
                "R-precision".into(),
                format!(
                    "{:.2}% ± {:.2}",
                    100.0 * r["mean"].as_f64().unwrap_or(0.0),
                    100.0 * r["std"].as_f64().unwrap_or(0.0)
                ),
                v["r_precision_protocol"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            ));
        }
        for key in ["fid", "damsm_fid"] {
            if let Some(f) = v.get(key).and_then(|f| f.as_f64()) {
                report.table.push((
                    if key == "fid" { "FID" } else { "DAMSM-FID" }.into(),
                    format!("{f:.3}"),
                    format!(
                        "features: {}",
                        v["feature_network"].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        for key in ["kid", "damsm_kid"] {
            if let Some(k) = v.get(key) {
                report.table.push((
                    if key == "kid" { "KID" } else { "DAMSM-KID" }.into(),
                    format!(
                        "{:.5} ± {:.5}",
                        k["mean"].as_f64().unwrap_or(0.0),
                        k["std"].as_f64().unwrap_or(0.0)
                    ),
                    format!("{} subsets of {}", k["subsets"], k["subset_size"]),
                ));
            }
        }
        if let Some(s) = v.get("inception_score") {
            report.table.push((
                "Inception Score".into(),
                format!(
                    "{:.3} ± {:.3}",
                    s["mean"].as_f64().unwrap_or(0.0),
                    s["std"].as_f64().unwrap_or(0.0)
                ),
                "10 splits".into(),
            ));
        }
        result["metrics"] = v;
        if metrics.iter().any(|m| m == "r-precision") && a.over_steps > 0 {
            let pb = crate::progress::bar(steps.len() as u64, "checkpoints", true);
            for (step, p) in &steps {
                let cks = checkpoint::load(p)?;
                let e = crate::eval::dataset::DatasetEval {
                    checkpoint: p,
                    metrics: vec!["r-precision".into()],
                    damsm: Some(&damsm),
                    clip: None,
                    inception: None,
                    classifier: None,
                    split: &a.split,
                    seed: a.seed,
                    device,
                    cache: &cache,
                    num_samples: 0,
                    samples_dir: None,
                    flip_average: a.flip_average.then_some(true),
                    part_locator: None,
                    no_caa: false,
                };
                let (v, _) = crate::eval::dataset::generated_metrics(&e, &cks, root, a.over_steps)?;
                curve.push((
                    *step as f64,
                    v["r_precision"]["mean"].as_f64().unwrap_or(0.0),
                ));
                pb.inc(1);
            }
            pb.finish_and_clear();
            if !curve.is_empty() {
                report.plots.push(Plot {
                    title: "R-precision of samples".into(),
                    x_label: "step".into(),
                    y_label: "R-precision".into(),
                    series: vec![(
                        format!("first {} test captions", a.over_steps),
                        curve.clone(),
                    )],
                });
            }
        }
        let test = crate::data::cub::Cub::open(
            root,
            crate::data::cub::CubSplit::Test,
            crate::data::cub::CaptionLayout::Auto,
        )?;
        sample_caps = test
            .records
            .iter()
            .step_by((test.len() / 6).max(1))
            .take(6)
            .map(|r| r.captions[0].clone())
            .collect();
    }
    result["metric_vs_step"] = json!(curve);

    // training curves
    let mpath = run.join("metrics.jsonl");
    if mpath.is_file() {
        let m = read_metrics_jsonl(&mpath)?;
        let losses: Vec<(String, Vec<(f64, f64)>)> = m
            .iter()
            .filter(|(k, _)| {
                k.starts_with("loss") || ["w_loss", "s_loss", "kl"].contains(&k.as_str())
            })
            .map(|(k, p)| (k.clone(), smooth(p, 10)))
            .collect();
        if !losses.is_empty() {
            report.plots.push(Plot {
                title: "training losses (moving average of 10 logs)".into(),
                x_label: "step".into(),
                y_label: "loss".into(),
                series: losses,
            });
        }
        let d: Vec<(String, Vec<(f64, f64)>)> = ["d_real", "d_wrong", "d_fake"]
            .iter()
            .filter_map(|k| m.get(*k).map(|p| (k.to_string(), smooth(p, 10))))
            .collect();
        if !d.is_empty() {
            report.plots.push(Plot {
                title: "D's mean verdicts".into(),
                x_label: "step".into(),
                y_label: "probability".into(),
                series: d,
            });
        }
    }

    // one grid per caption
    for (i, cap) in sample_caps.iter().enumerate() {
        let x = samples(&ck, cap, 8, a.seed, device)?;
        // small samples shown at 64 pixels or more (nearest: no smoothing)
        let side = x.size()[2];
        let x = if side < 64 {
            let s = side * ((64 + side - 1) / side);
            x.upsample_nearest2d([s, s], None, None)
        } else {
            x
        };
        let img = grid(&[(tensor_to_images(&x), None)], 2);
        let name = format!("caption-{i}.png");
        img.save(&out_dir.join(&name))?;
        report.images.push((cap.clone(), name));
    }
    result["captions"] = json!(sample_caps);
    let json_path = out_dir.join("eval.json");
    crate::imageio::write_atomic(
        &json_path,
        serde_json::to_string_pretty(&result)
            .map_err(|e| Error::Config(e.to_string()))?
            .as_bytes(),
    )?;
    let html_path = out_dir.join("report.html");
    crate::imageio::write_atomic(&html_path, report.html()?.as_bytes())?;
    for (m, v, _) in &report.table {
        println!("{m}: {v}");
    }
    println!("wrote {} and {}", json_path.display(), html_path.display());
    Ok(())
}
