//! Free-form captions scored by the shapes checker on what they name
//! (`t2i eval --captions FILE`): "a green triangle" is right when the drawn
//! object is green and a triangle, whatever its size and place. Each
//! caption's score stands next to the same request phrased as the data
//! set's full captions phrase it (the captions of test images that the
//! caption describes), so the phrasing's cost reads directly.

use crate::data::checker::{check, Detected, Reading};
use crate::data::shapes::{read_caption, CaptionSpec, Mention, Shapes, Split};
use crate::error::{Error, Result};
use crate::family::Generator;
use crate::imageio::tensor_to_images;
use serde::Serialize;
use std::path::Path;

/// Names of the attribute subsets, indexed by a bit mask (colour 1, shape
/// 2, size 4, position 8).
fn subset_name(mask: usize) -> String {
    let names = ["colour", "shape", "size", "position"];
    let v: Vec<&str> = (0..4)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| names[b])
        .collect();
    v.join("+")
}

/// The attributes a mention names, as a bit mask.
fn named_mask(m: &Mention) -> usize {
    usize::from(m.colour.is_some())
        | usize::from(m.shape.is_some()) << 1
        | usize::from(m.size.is_some()) << 2
        | usize::from(m.position.is_some()) << 3
}

/// Which attributes of `m` the detected object `d` has (bit mask over all
/// four, named or not).
fn right_mask(m: &Mention, d: &Detected) -> usize {
    let ok = |want: Option<usize>, have: usize| want == Some(have);
    usize::from(ok(m.colour, d.colour))
        | usize::from(ok(m.shape, d.shape)) << 1
        | usize::from(ok(m.size, d.size)) << 2
        | usize::from(ok(m.position, d.position)) << 3
}

/// For each mention, the attributes drawn right (bit mask; 0 when no
/// object is left for it). Mentions take the unused object that agrees with
/// most of what they name (the largest on ties).
fn match_mentions(spec: &CaptionSpec, reading: &Reading) -> Vec<usize> {
    let mut used = vec![false; reading.objects.len()];
    spec.objects
        .iter()
        .map(|m| {
            let best = reading
                .objects
                .iter()
                .enumerate()
                .filter(|(i, _)| !used[*i])
                .map(|(i, d)| (i, right_mask(m, d)))
                .max_by_key(|&(i, r)| (r.count_ones(), std::cmp::Reverse(i)));
            match best {
                Some((i, r)) => {
                    used[i] = true;
                    r
                }
                None => 0,
            }
        })
        .collect()
}

/// The checker's score of one free-form caption.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionScore {
    pub caption: String,
    /// What the caption names, as the reader understood it (e.g.
    /// `colour+shape`); `two objects: ...` for two mentions.
    pub names: String,
    /// Images generated.
    pub samples: usize,
    /// Fraction of images with every named attribute of every mentioned
    /// object drawn right.
    pub all_named: f64,
    /// The same request in the data set's phrasing: the score, on the same
    /// attributes, of the full captions of test images the caption
    /// describes (`None` when no test image fits).
    pub template: Option<f64>,
    /// How many such captions were drawn.
    pub template_samples: usize,
    /// Per named attribute, the fraction of mentioned objects drawn right.
    pub colour: Option<f64>,
    pub shape: Option<f64>,
    pub size: Option<f64>,
    pub position: Option<f64>,
    /// Fraction of images with as many objects as the caption mentions.
    pub count: f64,
}

/// A caption of the file that could not be scored, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub caption: String,
    pub reason: String,
}

/// Everything `t2i eval --captions` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionReport {
    pub protocol: String,
    pub captions: Vec<CaptionScore>,
    pub skipped: Vec<Skipped>,
    /// Mean of `all_named` over the scored captions.
    pub mean_all_named: f64,
    /// Captions with a template score.
    pub with_template: usize,
    /// Mean of `all_named` over the captions with a template score.
    pub mean_all_named_with_template: f64,
    /// Mean of `template` over the same captions.
    pub mean_template: f64,
    /// Captions within 10 points of their template score (or above).
    pub within_10_points: usize,
}

/// The captions of a file: one per line; blank lines and lines starting
/// with `#` are skipped.
pub fn read_caption_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let caps: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if caps.is_empty() {
        return Err(Error::Config(format!(
            "{}: no caption (one per line; '#' starts a comment)",
            path.display()
        )));
    }
    Ok(caps)
}

/// `n` images of `captions` (in turn) with noise from `seed`, in batches
/// of 100.
fn generate_many(
    model: &dyn Generator,
    captions: &[&str],
    n: usize,
    seed: u64,
) -> Result<Vec<crate::imageio::Rgb>> {
    let mut out = Vec::with_capacity(n);
    let mut k = 0;
    while k < n {
        let m = (n - k).min(100);
        let caps: Vec<&str> = (k..k + m).map(|i| captions[i % captions.len()]).collect();
        let g = model.generate(&caps, seed.wrapping_add(k as u64))?;
        out.extend(tensor_to_images(&g.images));
        k += m;
    }
    Ok(out)
}

/// Up to `n` full captions of test images that `spec` describes (the
/// held-in test split, then the held-out one, the first `100 n` images of
/// each): the same request, phrased as the data set's templates phrase it.
fn template_requests(shapes: &Shapes, spec: &CaptionSpec, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for split in [Split::Test, Split::HeldOut] {
        for i in 0..100 * n {
            if out.len() == n {
                return out;
            }
            let s = shapes.sample(split, i);
            if spec.describes(&s.objects) {
                out.push(super::shapes::full_caption(&s, i).to_string());
            }
        }
    }
    out
}

/// Fraction of `images` with every attribute `spec` names drawn right,
/// per-attribute hits and totals (colour, shape, size, position), and the
/// fraction with as many objects as mentions.
fn score_images(
    spec: &CaptionSpec,
    images: &[crate::imageio::Rgb],
    size: u32,
    max_objects: usize,
) -> (f64, [(usize, usize); 4], f64) {
    let masks: Vec<usize> = spec.objects.iter().map(named_mask).collect();
    let max_obj = spec.objects.len().max(max_objects);
    let (mut all, mut count) = (0usize, 0usize);
    let mut attr = [(0usize, 0usize); 4];
    for img in images {
        let reading = check(&img.data, size, max_obj);
        let rights = match_mentions(spec, &reading);
        all += usize::from(rights.iter().zip(&masks).all(|(r, m)| r & m == *m));
        count += usize::from(reading.objects.len() == spec.objects.len());
        for (r, m) in rights.iter().zip(&masks) {
            for (b, a) in attr.iter_mut().enumerate() {
                if m & (1 << b) != 0 {
                    a.0 += usize::from(r & (1 << b) != 0);
                    a.1 += 1;
                }
            }
        }
    }
    let k = images.len().max(1) as f64;
    (all as f64 / k, attr, count as f64 / k)
}

/// Scores each caption over `n` images (noise from `seed`) and sets it
/// beside the same request in the data set's own phrasing: the full
/// captions of up to `n` test images that the caption describes, scored
/// on the same attributes.
pub fn score_captions(
    model: &dyn Generator,
    shapes: &Shapes,
    captions: &[String],
    n: usize,
    seed: u64,
) -> Result<CaptionReport> {
    let size = shapes.config.image_size;
    let max_obj = shapes.config.max_objects as usize;
    let mut scored = Vec::new();
    let mut skipped = Vec::new();
    for caption in captions {
        let spec = read_caption(caption);
        if spec.objects.is_empty() {
            skipped.push(Skipped {
                caption: caption.clone(),
                reason: "names no colour, shape, size or position the checker reads".into(),
            });
            continue;
        }
        let images = match generate_many(model, &[caption.as_str()], n, seed) {
            Ok(i) => i,
            Err(e) => {
                skipped.push(Skipped {
                    caption: caption.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let (all_named, attr, count) = score_images(&spec, &images, size, max_obj);
        let requests = template_requests(shapes, &spec, n);
        let template = if requests.is_empty() {
            None
        } else {
            let refs: Vec<&str> = requests.iter().map(String::as_str).collect();
            let images = generate_many(model, &refs, requests.len(), seed)?;
            Some(score_images(&spec, &images, size, max_obj).0)
        };
        let masks: Vec<usize> = spec.objects.iter().map(named_mask).collect();
        let names = match masks.as_slice() {
            [m] => subset_name(*m),
            ms => format!(
                "{} objects: {}",
                ms.len(),
                ms.iter()
                    .map(|m| subset_name(*m))
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
        };
        let frac = |a: (usize, usize)| (a.1 > 0).then(|| a.0 as f64 / a.1 as f64);
        scored.push(CaptionScore {
            caption: caption.clone(),
            names,
            samples: n,
            all_named,
            template,
            template_samples: requests.len(),
            colour: frac(attr[0]),
            shape: frac(attr[1]),
            size: frac(attr[2]),
            position: frac(attr[3]),
            count,
        });
    }
    let with_ref: Vec<&CaptionScore> = scored.iter().filter(|c| c.template.is_some()).collect();
    let k = with_ref.len().max(1) as f64;
    Ok(CaptionReport {
        protocol: format!(
            "{n} images per caption (noise seed {seed}), analytic shapes checker, only the attributes each caption names; template: the full captions of up to {n} test images the caption describes, same attributes"
        ),
        mean_all_named: scored.iter().map(|c| c.all_named).sum::<f64>() / scored.len().max(1) as f64,
        mean_template: with_ref.iter().filter_map(|c| c.template).sum::<f64>() / k,
        mean_all_named_with_template: with_ref.iter().map(|c| c.all_named).sum::<f64>() / k,
        within_10_points: with_ref
            .iter()
            .filter(|c| c.template.is_some_and(|t| c.all_named >= t - 0.10))
            .count(),
        with_template: with_ref.len(),
        captions: scored,
        skipped,
    })
}

/// The lines that show a [`CaptionReport`].
pub fn report_lines(r: &CaptionReport) -> Vec<String> {
    let pct = |x: f64| format!("{:5.1}%", 100.0 * x);
    let mut lines = vec![format!(
        "{:<44} {:<26} {:>8} {:>8} {:>7}",
        "caption", "names", "right", "template", "objects"
    )];
    for c in &r.captions {
        let cap: String = if c.caption.chars().count() > 44 {
            c.caption.chars().take(41).collect::<String>() + "..."
        } else {
            c.caption.clone()
        };
        lines.push(format!(
            "{cap:<44} {:<26} {:>8} {:>8} {:>7}",
            c.names,
            pct(c.all_named),
            c.template.map(pct).unwrap_or_else(|| "n/a".into()),
            pct(c.count)
        ));
    }
    for s in &r.skipped {
        lines.push(format!("skipped: \"{}\": {}", s.caption, s.reason));
    }
    lines.push(format!(
        "{} captions: every named attribute right {} on average; the {} with a template: {} against {} for the same requests in full template captions; {} within 10 points of their template",
        r.captions.len(),
        pct(r.mean_all_named),
        r.with_template,
        pct(r.mean_all_named_with_template),
        pct(r.mean_template),
        r.within_10_points,
    ));
    lines
}
