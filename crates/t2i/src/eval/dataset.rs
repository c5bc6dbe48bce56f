//! Metrics of a generator's samples on a data set in the CUB layout:
//! R-precision, FID, KID and the Inception Score, with the feature network
//! named in every figure. Samples can be kept in chunks on disk, so an
//! interrupted evaluation resumes where it stopped.

use crate::data::cub::CubSplit;
use crate::data::images::{load_cub, LoadOptions};
use crate::error::{Error, Result};
use crate::train::damsm::DamsmTrainer;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// What `eval` computes on a data set in the CUB layout.
pub struct DatasetEval<'a> {
    pub checkpoint: &'a Path,
    /// Any of r-precision, fid, kid, is.
    pub metrics: Vec<String>,
    pub damsm: Option<&'a Path>,
    /// A CLIP folder (Hugging Face layout) for clip-score; without it the
    /// DAMSM encoders score.
    pub clip: Option<&'a Path>,
    pub inception: Option<&'a Path>,
    /// The project's classifier (`train --model classifier`): feature network
    /// of fid, kid and is without `inception`.
    pub classifier: Option<&'a Path>,
    pub split: &'a str,
    pub seed: u64,
    pub device: tch::Device,
    /// Cache of prepared real images.
    pub cache: &'a Path,
    /// Samples to generate (0: one per image of the split); captions are
    /// reused in turn when there are more samples than images.
    pub num_samples: usize,
    /// Keep generated samples here in chunks, so an interrupted evaluation
    /// resumes where it stopped.
    pub samples_dir: Option<PathBuf>,
    /// R-precision: the DAMSM image encoder averages each image with its
    /// mirror image (`image.flip_average`); `None` keeps the checkpoint's.
    pub flip_average: Option<bool>,
    /// `control` (GAWWN): the part locator (`train --model part-locator`)
    /// that reads where the samples' birds are.
    pub part_locator: Option<&'a Path>,
    /// Draw without Compositional Attribute Adjustment (StyleT2I).
    pub no_caa: bool,
}

/// What Compositional Attribute Adjustment corrected over the drawn
/// samples (one list of attribute phrases per sample), as JSON: samples,
/// samples corrected, and the count of each attribute corrected.
pub(crate) fn caa_report(fixed: &[Vec<String>]) -> serde_json::Value {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for w in fixed.iter().flatten() {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let any = fixed.iter().filter(|f| !f.is_empty()).count();
    serde_json::json!({
        "samples": fixed.len(),
        "samples_corrected": any,
        "attributes_corrected": counts,
    })
}

/// The report line of a [`caa_report`]: how many samples CAA corrected and
/// the eight attributes it corrected most.
pub(crate) fn caa_line(report: &serde_json::Value) -> String {
    let mut top: Vec<(&str, u64)> = report["attributes_corrected"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(w, n)| (w.as_str(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: Vec<String> = top
        .iter()
        .take(8)
        .map(|(w, n)| format!("{w} {n}"))
        .collect();
    format!(
        "Compositional Attribute Adjustment corrected {} of {} drawn samples{}",
        report["samples_corrected"],
        report["samples"],
        if named.is_empty() {
            String::new()
        } else {
            format!(" ({})", named.join(", "))
        }
    )
}

/// Images in [-1, 1] as stored 8-bit pixels (what a PNG would hold).
fn quantize(x: &Tensor) -> Tensor {
    ((x + 1.0) * 127.5)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
}

/// Where a layout-conditioned model drew, as the part locator reads it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LocatedControl {
    pub samples: usize,
    /// Mean IoU of the read box with the requested one.
    pub box_iou: f64,
    /// The same for the real images of those records (what the locator
    /// reaches on real birds).
    pub real_box_iou: f64,
    /// Keypoint models: mean distance of the read to the requested parts
    /// (fraction of the side).
    pub part_error: Option<f64>,
    pub real_part_error: Option<f64>,
}

/// Scores samples drawn at `layouts` (and the real images of `recs`) with
/// the part locator.
fn located_control(
    locator: &crate::train::part_locator::PartLocatorModel,
    images: &Tensor,
    layouts: &[crate::family::Layout],
    recs: &[&crate::data::cub::CubRecord],
    size: i64,
) -> Result<LocatedControl> {
    use crate::family::Layout;
    use crate::train::part_locator::box_iou;
    let side = crate::data::prepare::load_side(size as u32);
    let real: Vec<Tensor> = recs
        .iter()
        .map(|r| -> Result<Tensor> {
            let (img, _) = crate::data::prepare::load_crop(&r.image, Some(r.bbox), side)?;
            let o = (side as i64 - size) / 2;
            Ok(
                crate::imageio::images_to_tensor(&[img.as_raw().as_slice()], side)
                    .narrow(2, o, size)
                    .narrow(3, o, size),
            )
        })
        .collect::<Result<_>>()?;
    let real = Tensor::cat(&real, 0);
    let score = |x: &Tensor| -> Result<(f64, Option<f64>)> {
        let (b, p, _) = locator.locate(x);
        let b: Vec<f32> = Vec::try_from(b.contiguous().view([-1]))?;
        let p: Vec<f32> = Vec::try_from(p.contiguous().view([-1]))?;
        let k = locator.config.parts as usize;
        let (mut iou, mut err, mut err_n) = (0.0, 0.0, 0usize);
        for (i, l) in layouts.iter().enumerate() {
            let read = [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]];
            match l {
                Layout::Box(want) => iou += box_iou(*want, read) as f64,
                Layout::Keypoints(kp) => {
                    for (j, q) in kp.iter().enumerate().take(k) {
                        if let Some([x, y]) = q {
                            let (px, py) = (p[2 * (i * k + j)], p[2 * (i * k + j) + 1]);
                            err += (((px - x).powi(2) + (py - y).powi(2)) as f64).sqrt();
                            err_n += 1;
                        }
                    }
                }
            }
        }
        let n = layouts.len().max(1) as f64;
        Ok((iou / n, (err_n > 0).then(|| err / err_n as f64)))
    };
    let (box_iou_gen, part_gen) = score(images)?;
    let (box_iou_real, part_real) = score(&real)?;
    // keypoint models are asked for parts, not a box: their box IoU is
    // against the records' boxes
    let (box_iou_gen, box_iou_real) = if matches!(layouts.first(), Some(Layout::Keypoints(_))) {
        let boxes: Vec<Layout> = recs
            .iter()
            .map(|r| {
                crate::data::images::record_layout(r, side, Some(size as u32))
                    .map(|(b, _)| Layout::Box(b))
            })
            .collect::<Result<_>>()?;
        let rescore = |x: &Tensor| -> Result<f64> {
            let (b, _, _) = locator.locate(x);
            let b: Vec<f32> = Vec::try_from(b.contiguous().view([-1]))?;
            Ok(boxes
                .iter()
                .enumerate()
                .map(|(i, l)| match l {
                    Layout::Box(w) => {
                        box_iou(*w, [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) as f64
                    }
                    Layout::Keypoints(_) => 0.0,
                })
                .sum::<f64>()
                / boxes.len().max(1) as f64)
        };
        (rescore(images)?, rescore(&real)?)
    } else {
        (box_iou_gen, box_iou_real)
    };
    Ok(LocatedControl {
        samples: layouts.len(),
        box_iou: box_iou_gen,
        real_box_iou: box_iou_real,
        part_error: part_gen,
        real_part_error: part_real,
    })
}

/// For a layout-conditioned generator, each record's box or parts in the
/// generator's image (the official crop's centre); `None` for the others.
pub fn record_layouts(
    g: &dyn crate::family::Generator,
    recs: &[&crate::data::cub::CubRecord],
) -> Result<Option<Vec<crate::family::Layout>>> {
    use crate::family::Layout;
    let ctl = g.controls();
    if !(ctl.boxes || ctl.keypoints) {
        return Ok(None);
    }
    let size = g.image_size() as u32;
    let side = crate::data::prepare::load_side(size);
    recs.iter()
        .map(|r| {
            let (b, k) = crate::data::images::record_layout(r, side, Some(size))?;
            Ok(if ctl.boxes {
                Layout::Box(b)
            } else {
                Layout::Keypoints(k)
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// CLIP score of generated samples: the mean over samples of 100 x the
/// cosine of each sample and its caption, floored at 0 (Hessel et al. 2021).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClipScore {
    pub mean: f64,
    pub std: f64,
    pub samples: usize,
    /// The joint encoder that scored ("CLIP folder" or "DAMSM file").
    pub encoder: String,
}

/// Metrics of a generator checkpoint's samples for the first `limit`
/// images of a split of a data set in the CUB layout at `root`: one image
/// per real image, from one of its captions (chosen by `seed`).
/// R-precision with the DAMSM `damsm`; FID / KID against the split's real
/// images with Inception-v3 (pytorch-fid's weights), the project's
/// classifier, or else the DAMSM image encoder (labelled so); IS needs
/// Inception or the classifier. Returns JSON and one printable line per
/// metric.
pub fn generated_metrics(
    e: &DatasetEval,
    ck: &crate::checkpoint::Checkpoint,
    root: &Path,
    limit: usize,
) -> Result<(serde_json::Value, Vec<String>)> {
    let device = e.device;
    let cfg = |m: &str| Error::Config(m.to_string());
    use crate::eval::stats;
    use rand::{Rng, SeedableRng};
    let (checkpoint, split, seed) = (e.checkpoint, e.split, e.seed);
    let wants = |m: &str| e.metrics.iter().any(|x| x == m);
    let own_features = e.inception.is_none() && e.classifier.is_none();
    if (wants("r-precision") || (wants("fid") || wants("kid")) && own_features) && e.damsm.is_none()
    {
        return Err(cfg("scoring a generator's samples needs --damsm CHECKPOINT (r-precision, and fid/kid without --inception or --classifier)"));
    }
    if wants("clip-score") && e.clip.is_none() && e.damsm.is_none() {
        return Err(cfg(
            "clip-score needs --clip FOLDER (a CLIP model) or --damsm CHECKPOINT (scores with the DAMSM encoders)",
        ));
    }
    if wants("control") && e.part_locator.is_none() {
        return Err(cfg(
            "control needs --part-locator CHECKPOINT (t2i train --model part-locator)",
        ));
    }
    if wants("is") && own_features {
        return Err(cfg("the Inception Score needs --inception PATH (pytorch-fid's pt_inception-2015-12-05-*.pth) or --classifier CHECKPOINT (t2i train --model classifier)"));
    }
    let classifier = match (e.inception, e.classifier) {
        (None, Some(p)) => Some(crate::train::classifier::ClassifierModel::load(p, device)?),
        _ => None,
    };
    let kind = ck.meta("model")?.to_string();
    let mut g = crate::family::load_generator(ck, device)?;
    if e.no_caa {
        g.set_caa(false)?; // refused in one line by models without CAA
    }
    let damsm = e
        .damsm
        .map(|p| -> Result<DamsmTrainer> {
            let mut t = DamsmTrainer::from_checkpoint(&crate::checkpoint::load(p)?, device)?;
            if let Some(on) = e.flip_average {
                t.set_flip_average(on);
            }
            Ok(t)
        })
        .transpose()?;
    let inception = e
        .inception
        .map(|p| crate::models::inception::load(p, crate::models::inception::Variant::Fid, device))
        .transpose()?;
    let sp = CubSplit::parse(split).ok_or_else(|| cfg(&format!("unknown split '{split}'")))?;
    let cub = crate::data::cub::Cub::open(root, sp, crate::data::cub::CaptionLayout::Auto)?;
    eprintln!("{}", cub.report);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n_rec = cub.records.len();
    let n = if e.num_samples == 0 {
        n_rec
    } else {
        e.num_samples
    }
    .min(limit);
    let recs: Vec<&crate::data::cub::CubRecord> = (0..n).map(|i| &cub.records[i % n_rec]).collect();
    let caps: Vec<String> = recs
        .iter()
        .map(|r| r.captions[rng.gen_range(0..r.captions.len())].clone())
        .collect();
    let classes: Vec<i64> = recs.iter().map(|r| r.class as i64).collect();
    // a layout-conditioned model (GAWWN) draws at each real image's box or parts
    let layouts = record_layouts(g.as_ref(), &recs)?;
    // what CAA corrected, per freshly drawn sample (StyleT2I)
    let mut corrected: Option<Vec<Vec<String>>> = None;
    let mut generate = |c: &[&str], k: usize, s: u64| -> Result<Tensor> {
        let out = match &layouts {
            Some(l) => g.generate_at(c, &l[k * 50..k * 50 + c.len()], s)?,
            None => g.generate(c, s)?,
        };
        if let Some(fixed) = out.corrected {
            corrected.get_or_insert_with(Vec::new).extend(fixed);
        }
        Ok(out.images)
    };
    if let Some(d) = &e.samples_dir {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let pb = crate::progress::bar(caps.len() as u64, "generating", true);
    let mut imgs = Vec::new();
    let mut reused = 0usize;
    for (k, chunk) in caps.chunks(50).enumerate() {
        let file = e
            .samples_dir
            .as_ref()
            // samples drawn without CAA never stand in for samples with it
            .map(|d| {
                let tag = if e.no_caa { "-no-caa" } else { "" };
                d.join(format!("chunk-{k:05}{tag}.safetensors"))
            });
        let cached = file
            .as_ref()
            .filter(|f| f.is_file())
            .and_then(|f| Tensor::read_safetensors(f).ok())
            .and_then(|v| v.into_iter().find(|(n, _)| n == "images").map(|(_, t)| t))
            .filter(|t| t.size()[0] == chunk.len() as i64);
        let x = match cached {
            Some(t) => {
                reused += chunk.len();
                t
            }
            None => {
                let c: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let x = quantize(
                    &generate(&c, k, seed.wrapping_add(k as u64))?.to_device(tch::Device::Cpu),
                );
                if let Some(f) = &file {
                    let tmp = f.with_extension("tmp");
                    Tensor::write_safetensors(&[("images", &x)], &tmp)
                        .map_err(|e| cfg(&format!("writing {}: {e}", tmp.display())))?;
                    std::fs::rename(&tmp, f).map_err(|e| Error::io(f, e))?;
                }
                x
            }
        };
        imgs.push(x);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    if reused > 0 {
        eprintln!(
            "reused {reused} samples from {}",
            e.samples_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        );
    }
    let images = Tensor::cat(&imgs, 0).to_kind(Kind::Float) / 127.5 - 1.0;
    let size = images.size()[2];
    let mut v = serde_json::json!({
        "images": "generated",
        "generator": checkpoint.display().to_string(),
        "model": kind,
        "step": ck.meta("step")?,
        "damsm": e.damsm.map(|p| p.display().to_string()),
        "damsm_flip_average": damsm.as_ref().map(|t| t.config.image.flip_average),
        "inception": e.inception.map(|p| p.display().to_string()),
        "classifier": e.classifier.map(|p| p.display().to_string()),
        "split": split,
        "seed": seed,
        "samples": caps.len(),
    });
    let mut lines = Vec::new();
    if let Some(fixed) = &corrected {
        let report = caa_report(fixed);
        lines.push(caa_line(&report));
        v["caa"] = report;
    } else if g.controls().caa {
        v["caa"] = serde_json::json!(!e.no_caa);
    }
    if wants("r-precision") {
        let d = damsm
            .as_ref()
            .ok_or_else(|| cfg("r-precision needs --damsm"))?;
        let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
        let r = d.generated_r_precision(&images, &refs, &classes, seed)?;
        v["r_precision"] = serde_json::to_value(r).map_err(|e| cfg(&e.to_string()))?;
        v["r_precision_protocol"] = serde_json::json!("one sample per image of the split from one of its captions; that caption among 1 true + 99 captions of other classes by DAMSM sentence/image cosine; 10 folds");
        lines.push(format!(
            "R-precision (DAMSM {}): {:.2}% +- {:.2}",
            e.damsm.map(|p| p.display().to_string()).unwrap_or_default(),
            100.0 * r.mean,
            100.0 * r.std
        ));
    }
    if wants("clip-score") {
        let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
        let (scores, encoder) = match e.clip {
            Some(p) => {
                let clip = crate::text::clip::Clip::load(p, device)?;
                let mut all = Vec::new();
                for (k, c) in refs.chunks(50).enumerate() {
                    let x = images
                        .narrow(0, 50 * k as i64, c.len() as i64)
                        .to_device(device);
                    all.push(tch::no_grad(|| clip.score(&x, c))?);
                }
                (Tensor::cat(&all, 0), clip.label())
            }
            None => {
                let d = damsm
                    .as_ref()
                    .ok_or_else(|| cfg("clip-score needs --clip or --damsm"))?;
                let img = d.encode_image_tensor(&images);
                let txt = d.encode_caption_list(&refs)?;
                let name = e.damsm.map(|p| p.display().to_string()).unwrap_or_default();
                (
                    crate::text::clip::pair_score(&img, &txt),
                    format!("DAMSM {name}"),
                )
            }
        };
        let s = ClipScore {
            mean: scores.mean(Kind::Float).double_value(&[]),
            std: scores.std(true).double_value(&[]),
            samples: caps.len(),
            encoder: encoder.clone(),
        };
        lines.push(format!(
            "CLIP score by {encoder}: {:.2} +- {:.2} (100 x cosine of each sample and its caption)",
            s.mean, s.std
        ));
        v["clip_score"] = serde_json::to_value(&s).map_err(|e| cfg(&e.to_string()))?;
    }
    if wants("control") {
        let path = e
            .part_locator
            .ok_or_else(|| cfg("control needs --part-locator"))?;
        let layouts = layouts.as_ref().ok_or_else(|| {
            cfg("control scores a model that draws at boxes or keypoints (GAWWN)")
        })?;
        let locator = crate::train::part_locator::PartLocatorModel::load(path, device)?;
        let c = located_control(&locator, &images, layouts, &recs, size)?;
        lines.push(format!(
            "control read by the part locator {} (held-out real images: box IoU {:.3}, part error {:.1}%): samples' box IoU {:.3} (real test images at the same boxes {:.3}){}",
            path.display(),
            locator.held_out.map_or(f64::NAN, |h| h.box_iou),
            100.0 * locator.held_out.map_or(f64::NAN, |h| h.part_error),
            c.box_iou,
            c.real_box_iou,
            c.part_error.map_or(String::new(), |p| format!(
                ", part error {:.1}% of the side (real {:.1}%)",
                100.0 * p,
                100.0 * c.real_part_error.unwrap_or(f64::NAN)
            ))
        ));
        v["control"] = serde_json::to_value(c).map_err(|e| cfg(&e.to_string()))?;
        v["part_locator"] = serde_json::json!(path.display().to_string());
        if g.controls().keypoints {
            use crate::eval::control::{completion_line, completion_scores, mean_set, KeypointSet};
            let sets = |l: &[crate::family::Layout]| -> Vec<KeypointSet> {
                l.iter()
                    .filter_map(|x| match x {
                        crate::family::Layout::Keypoints(k) => Some(k.clone()),
                        crate::family::Layout::Box(_) => None,
                    })
                    .collect()
            };
            let train = crate::data::cub::Cub::open(
                root,
                CubSplit::Train,
                crate::data::cub::CaptionLayout::Auto,
            )?;
            let train_recs: Vec<&crate::data::cub::CubRecord> = train.records.iter().collect();
            let train_sets = sets(&record_layouts(g.as_ref(), &train_recs)?.unwrap_or_default());
            let k = caps.len().min(200);
            let real = sets(&layouts[..k]);
            let comp =
                completion_scores(g.as_ref(), &caps[..k], &real, &mean_set(&train_sets), seed)?;
            lines.push(completion_line(&comp));
            v["completion"] = serde_json::to_value(comp).map_err(|e| cfg(&e.to_string()))?;
        }
    }
    if wants("fid") || wants("kid") || wants("is") {
        // the split's real images, box-cropped and centred at the samples' size
        let (real, _) = load_cub(
            root,
            sp,
            &LoadOptions {
                size,
                cache: Some(e.cache),
                augment: false,
                progress: true,
            },
        )?;
        let n = real.captions.len();
        let mut r = crate::data::prepare::ImageBatcher::rng(0, 0);
        let mut parts = Vec::new();
        for start in (0..n).step_by(200) {
            let idx: Vec<usize> = (start..(start + 200).min(n)).collect();
            parts.extend(real.images.batch(&idx, &mut r, tch::Device::Cpu).pop());
        }
        let real_imgs = Tensor::cat(&parts, 0);
        let (name, fake_f, real_f, probs) = match (&inception, &classifier) {
            (None, Some(c)) => {
                let (f, p) = c.features(&images, 100);
                let (rf, _) = c.features(&real_imgs, 100);
                (
                    format!(
                        "{} (trained by t2i on this data set's training classes, held-out accuracy {:.1}%; not comparable to Inception figures)",
                        c.label(),
                        100.0 * c.val_accuracy
                    ),
                    f,
                    rf,
                    Some(p),
                )
            }
            (Some((_, net)), _) => {
                let pb = crate::progress::bar(2, "inception features", true);
                let f = net.features(&images, 50);
                pb.inc(1);
                let rf = net.features(&real_imgs, 50);
                pb.finish_and_clear();
                (
                    "Inception-v3 (pytorch-fid weights)".to_string(),
                    f.pool,
                    rf.pool,
                    Some(f.logits.softmax(1, Kind::Double)),
                )
            }
            (None, None) => {
                let d = damsm
                    .as_ref()
                    .ok_or_else(|| cfg("fid/kid need --inception, --classifier or --damsm"))?;
                (
                    format!(
                        "DAMSM image encoder {} (trained by t2i on this data set; not comparable to Inception FID)",
                        e.damsm.map(|p| p.display().to_string()).unwrap_or_default()
                    ),
                    d.encode_image_tensor(&images),
                    d.encode_image_tensor(&real_imgs),
                    None,
                )
            }
        };
        let label = match (&inception, &classifier) {
            (Some(_), _) => "",
            (None, Some(_)) => "CLS-",
            (None, None) => "DAMSM-",
        };
        v["feature_network"] = serde_json::json!(name);
        v["real_images"] = serde_json::json!(real_imgs.size()[0]);
        if wants("fid") {
            let f = stats::fid(&fake_f, &real_f)?;
            v[format!("{}fid", label.to_lowercase().replace('-', "_"))] = serde_json::json!(f);
            lines.push(format!("{label}FID: {f:.3}   (features: {name})"));
        }
        if wants("kid") {
            let (m, s) = stats::kid(&fake_f, &real_f, 1000, 100, seed)?;
            v[format!("{}kid", label.to_lowercase().replace('-', "_"))] =
                serde_json::json!({"mean": m, "std": s, "subset_size": 1000, "subsets": 100});
            lines.push(format!("{label}KID: {m:.5} +- {s:.5}"));
        }
        if wants("is") {
            let p = probs
                .ok_or_else(|| cfg("the Inception Score needs --inception or --classifier"))?;
            let (m, s) = stats::inception_score(&p, 10)?;
            let key = if label.is_empty() {
                "inception_score".to_string()
            } else {
                format!("{}is", label.to_lowercase().replace('-', "_"))
            };
            v[key] = serde_json::json!({"mean": m, "std": s, "splits": 10});
            lines.push(format!("{label}IS: {m:.3} +- {s:.3}   (classes: {name})"));
        }
    }
    Ok((v, lines))
}
