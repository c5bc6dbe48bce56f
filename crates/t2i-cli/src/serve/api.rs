//! The JSON HTTP API. Every model is driven through the library's
//! [`Generator`] interface and its [`Controls`]: nothing here names a model
//! family. Images travel as PNG data URLs.

use super::pool::Pool;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use t2i::family::{Controls, Generator, Layout};
use t2i::imageio::{tensor_to_images, Rgb};

/// An error answered as `{"error": message}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn busy() -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy (generation queue full); retry shortly",
            )
        }
    }
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "generation did not finish within the request timeout",
        )
    }
    fn from_library(e: t2i::error::Error) -> Self {
        // errors of the library at this point are about the request (a box,
        // a part name, a control the model lacks, unknown words)
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
        r
    }
}

/// Limits on what one request may ask.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Images per request (`n`, interpolation steps, sweep length).
    pub max_images: usize,
    /// Characters per caption.
    pub max_caption: usize,
    /// Time from arrival to answer.
    pub timeout: Duration,
}

/// What `GET /api/models` says of a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Name used in requests (the run folder's name).
    pub id: String,
    pub family: String,
    pub preset: String,
    /// Data set it was trained on.
    pub data: String,
    pub image_size: i64,
    pub controls: Controls,
    /// Keypoint models' part names (the order of `keypoints` answers).
    pub parts: Vec<String>,
    /// The checkpoint file.
    pub checkpoint: String,
}

/// A loaded model, shared by all workers (one request at a time uses it).
pub struct Model {
    pub info: ModelInfo,
    pub generator: Mutex<Box<dyn Generator>>,
}

/// Everything the handlers share.
pub struct AppState {
    pub models: Vec<Arc<Model>>,
    pub pool: Pool,
    pub limits: Limits,
}

impl AppState {
    fn model(&self, id: Option<&str>) -> Result<Arc<Model>, ApiError> {
        let names = || {
            self.models
                .iter()
                .map(|m| m.info.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match id {
            None if self.models.len() == 1 => Ok(self.models[0].clone()),
            None => Err(ApiError::bad(format!(
                "\"model\" is required (models: {})",
                names()
            ))),
            Some(id) => self
                .models
                .iter()
                .find(|m| m.info.id == id)
                .cloned()
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("unknown model {id:?} (models: {})", names()),
                    )
                }),
        }
    }

    fn caption<'a>(&self, field: &str, c: &'a str) -> Result<&'a str, ApiError> {
        let c = c.trim();
        if c.is_empty() {
            return Err(ApiError::bad(format!("\"{field}\" is empty")));
        }
        let chars = c.chars().count();
        if chars > self.limits.max_caption {
            return Err(ApiError::bad(format!(
                "\"{field}\" has {chars} characters; at most {} are allowed",
                self.limits.max_caption
            )));
        }
        Ok(c)
    }

    fn count(&self, field: &str, n: usize, min: usize) -> Result<usize, ApiError> {
        if n < min || n > self.limits.max_images {
            return Err(ApiError::bad(format!(
                "\"{field}\" must be in {min}..={}, got {n}",
                self.limits.max_images
            )));
        }
        Ok(n)
    }

    /// Runs `f` with the model's generator on a worker.
    async fn with_model<T, F>(&self, model: Arc<Model>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Generator) -> Result<T, ApiError> + Send + 'static,
    {
        let deadline = Instant::now() + self.limits.timeout;
        self.pool
            .run(deadline, move || {
                let g = model.generator.lock().unwrap_or_else(|e| e.into_inner());
                tch::no_grad(|| f(g.as_ref()))
            })
            .await
    }
}

/// A request body parsed as JSON into `T`, with the problem named when it
/// is not (too large, not JSON, a missing or mistyped field).
fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body too large".to_string()
        } else {
            format!("cannot read the request body: {e}")
        };
        ApiError::new(status, msg)
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("invalid request: {e}")))
}

fn data_url(img: &Rgb) -> Result<String, ApiError> {
    let png = img
        .png()
        .map_err(|e| ApiError::internal(format!("cannot encode a PNG: {e}")))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

fn data_urls(t: &tch::Tensor) -> Result<Vec<String>, ApiError> {
    tensor_to_images(t).iter().map(data_url).collect()
}

fn lib<T>(r: t2i::error::Result<T>) -> Result<T, ApiError> {
    r.map_err(ApiError::from_library)
}

fn millis(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Liveness plus what an operator watches: the queue and the memory.
pub async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "pool": s.pool.stats(),
        "rss_mib": proc_status_mib("VmRSS:"),
        "peak_rss_mib": proc_status_mib("VmHWM:"),
    }))
}

/// A memory figure of this process from `/proc/self/status` (Linux), in MiB.
fn proc_status_mib(key: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

pub async fn models(State(s): State<Arc<AppState>>) -> Json<Value> {
    let list: Vec<&ModelInfo> = s.models.iter().map(|m| &m.info).collect();
    Json(json!({
        "models": list,
        "limits": {
            "max_images": s.limits.max_images,
            "max_caption_chars": s.limits.max_caption,
            "timeout_seconds": s.limits.timeout.as_secs_f64(),
        }
    }))
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint (see GET /api/models)",
    )
}

fn one() -> usize {
    1
}

/// `POST /api/generate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    model: Option<String>,
    caption: String,
    #[serde(default = "one")]
    n: usize,
    #[serde(default)]
    seed: u64,
    /// `[x, y, w, h]` in fractions of the image (box models).
    #[serde(rename = "box")]
    bbox: Option<[f64; 4]>,
    /// Part name to `[x, y]` in fractions (keypoint models).
    keypoints: Option<BTreeMap<String, [f64; 2]>>,
    /// Fill the parts not given with the keypoint generator.
    #[serde(default)]
    complete_keypoints: bool,
    /// The box (or keypoints) moving from left to right over this many
    /// images, same caption and noise.
    sweep: Option<usize>,
}

/// Keypoints given as part name -> `[x, y]`, checked by the library's
/// parser as the CLI's `--keypoints` are.
fn keypoint_map(
    k: &BTreeMap<String, [f64; 2]>,
    info: &ModelInfo,
) -> Result<Vec<Option<[f32; 2]>>, ApiError> {
    let text: Vec<String> = k.iter().map(|(p, [x, y])| format!("{p}={x},{y}")).collect();
    lib(t2i::placement::parse_keypoints(
        &text.join(";"),
        &info.parts,
        info.image_size,
    ))
}

fn layout_json(parts: &[String], l: &Layout, given: &[bool]) -> Value {
    match l {
        Layout::Box(b) => json!({ "box": b }),
        Layout::Keypoints(kp) => {
            let points: BTreeMap<&str, Value> = parts
                .iter()
                .zip(kp)
                .map(|(p, k)| (p.as_str(), json!(k)))
                .collect();
            let given: Vec<&str> = parts
                .iter()
                .zip(given)
                .filter(|(_, g)| **g)
                .map(|(p, _)| p.as_str())
                .collect();
            json!({ "keypoints": points, "given": given })
        }
    }
}

pub async fn generate(
    State(s): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let start = Instant::now();
    let r: GenerateRequest = parse(body)?;
    let model = s.model(r.model.as_deref())?;
    let caption = s.caption("caption", &r.caption)?.to_string();
    let n = s.count("n", r.n, 1)?;
    if let Some(k) = r.sweep {
        s.count("sweep", k, 2)?;
    }
    let info = model.info.clone();
    let ctl = info.controls;
    let placed = ctl.boxes || ctl.keypoints;
    if !placed
        && (r.bbox.is_some() || r.keypoints.is_some() || r.complete_keypoints || r.sweep.is_some())
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "model {:?} ({}) takes no box, keypoints or sweep",
                info.id, info.family
            ),
        ));
    }
    let size = info.image_size;
    let request = t2i::placement::Request {
        bbox: r
            .bbox
            .map(|b| {
                t2i::placement::parse_box(&format!("{},{},{},{}", b[0], b[1], b[2], b[3]), size)
            })
            .transpose()
            .map_err(ApiError::from_library)?,
        keypoints: match &r.keypoints {
            Some(k) if !k.is_empty() => Some(keypoint_map(k, &info)?),
            _ => None,
        },
        complete: r.complete_keypoints,
        sweep: r.sweep,
    };
    let seed = r.seed;
    s.with_model(model, move |g| {
        let unknown = lib(g.unknown_words(&caption))?;
        if placed {
            let out = lib(t2i::placement::generate(g, &caption, &request, n, seed))?;
            let parts = g.part_names();
            let layouts: Vec<Value> = out
                .layouts
                .iter()
                .map(|l| layout_json(&parts, l, &out.given))
                .collect();
            Ok(Json(json!({
                "model": info.id,
                "caption": caption,
                "seed": seed,
                "images": data_urls(&out.images)?,
                "layouts": layouts,
                "completed": out.completed,
                "drawn_as": out.drawn_as,
                "unknown_words": unknown,
                "ms": millis(start),
            })))
        } else {
            let caps = vec![caption.as_str(); n];
            let out = lib(g.generate(&caps, seed))?;
            let stages = match &out.first_stage {
                Some(f) => Some(data_urls(f)?),
                None => None,
            };
            Ok(Json(json!({
                "model": info.id,
                "caption": caption,
                "seed": seed,
                "images": data_urls(&out.images)?,
                "first_stage": stages,
                "drawn_as": out.drawn_as,
                "unknown_words": unknown,
                "ms": millis(start),
            })))
        }
    })
    .await
}

/// `POST /api/interpolate`: sentence interpolation (`to` given) or noise
/// interpolation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterpolateRequest {
    model: Option<String>,
    caption: String,
    to: Option<String>,
    #[serde(default = "eight")]
    steps: usize,
    #[serde(default)]
    seed: u64,
}

fn eight() -> usize {
    8
}

pub async fn interpolate(
    State(s): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let start = Instant::now();
    let r: InterpolateRequest = parse(body)?;
    let model = s.model(r.model.as_deref())?;
    let caption = s.caption("caption", &r.caption)?.to_string();
    let to =
        r.to.as_deref()
            .map(|t| s.caption("to", t).map(str::to_string))
            .transpose()?;
    let steps = s.count("steps", r.steps, 2)?;
    let seed = r.seed;
    let id = model.info.id.clone();
    s.with_model(model, move |g| {
        let images = match &to {
            Some(t) => lib(g.interpolate(&caption, t, steps as i64, seed))?,
            None => lib(g.noise_interpolate(&caption, steps as i64, seed))?,
        };
        Ok(Json(json!({
            "model": id,
            "caption": caption,
            "to": to,
            "seed": seed,
            "images": data_urls(&images)?,
            "ms": millis(start),
        })))
    })
    .await
}

/// `POST /api/style-transfer`: the style (background, pose) of `image` with
/// the content of `caption`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleRequest {
    model: Option<String>,
    caption: String,
    /// A PNG or JPEG, base64 or as a data URL.
    image: String,
}

pub async fn style_transfer(
    State(s): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let start = Instant::now();
    let r: StyleRequest = parse(body)?;
    let model = s.model(r.model.as_deref())?;
    let caption = s.caption("caption", &r.caption)?.to_string();
    let b64 = match r.image.split_once(";base64,") {
        Some((_, data)) => data,
        None => r.image.as_str(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| ApiError::bad(format!("\"image\" is not base64: {e}")))?;
    let size = model.info.image_size as u32;
    let query = Rgb::decode(&bytes, size).map_err(|e| ApiError::bad(e.to_string()))?;
    let id = model.info.id.clone();
    s.with_model(model, move |g| {
        let q = t2i::imageio::images_to_tensor(&[query.data.as_slice()], size);
        let x = lib(g.style_transfer(&q, &[caption.as_str()]))?;
        Ok(Json(json!({
            "model": id,
            "caption": caption,
            "query": data_url(&query)?,
            "images": data_urls(&x)?,
            "ms": millis(start),
        })))
    })
    .await
}

/// `POST /api/attention`: the word attention maps of the first sample.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionRequest {
    model: Option<String>,
    caption: String,
    #[serde(default)]
    seed: u64,
    #[serde(default = "six")]
    top_words: usize,
}

fn six() -> usize {
    6
}

pub async fn attention(
    State(s): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let start = Instant::now();
    let r: AttentionRequest = parse(body)?;
    let model = s.model(r.model.as_deref())?;
    let caption = s.caption("caption", &r.caption)?.to_string();
    if !(1..=16).contains(&r.top_words) {
        return Err(ApiError::bad(format!(
            "\"top_words\" must be in 1..=16, got {}",
            r.top_words
        )));
    }
    let (seed, top) = (r.seed, r.top_words);
    let id = model.info.id.clone();
    s.with_model(model, move |g| {
        let fig = lib(g.attention_figure(&caption, seed, top))?;
        Ok(Json(json!({
            "model": id,
            "caption": caption,
            "seed": seed,
            "image": data_url(&fig)?,
            "ms": millis(start),
        })))
    })
    .await
}

/// `POST /api/keypoints`: G_k's full set of keypoints from the given ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeypointRequest {
    model: Option<String>,
    caption: String,
    #[serde(default)]
    keypoints: BTreeMap<String, [f64; 2]>,
    #[serde(default)]
    seed: u64,
}

pub async fn keypoints(
    State(s): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let r: KeypointRequest = parse(body)?;
    let model = s.model(r.model.as_deref())?;
    let caption = s.caption("caption", &r.caption)?.to_string();
    let info = model.info.clone();
    if !info.controls.keypoints {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("model {:?} ({}) takes no keypoints", info.id, info.family),
        ));
    }
    let given = if r.keypoints.is_empty() {
        vec![None; info.parts.len()]
    } else {
        keypoint_map(&r.keypoints, &info)?
    };
    let seed = r.seed;
    s.with_model(model, move |g| {
        let full = lib(g.complete_keypoints(&caption, &given, seed))?;
        let mask: Vec<bool> = given.iter().map(Option::is_some).collect();
        Ok(Json(layout_json(
            &info.parts,
            &Layout::Keypoints(full),
            &mask,
        )))
    })
    .await
}
