//! `t2i serve`: a local web app and JSON HTTP API over trained models
//! (axum + tokio). Models are loaded once; generation runs on a bounded pool
//! of worker threads (see [`pool`]); the page is plain HTML/JS/CSS embedded
//! in the binary.

pub mod api;
pub mod load;
pub mod pool;

use anyhow::{bail, Context, Result};
use api::{AppState, Limits, Model, ModelInfo};
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// A run folder or checkpoint file to serve; repeat for several models.
    #[arg(long = "run", required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Address to bind (loopback unless you choose otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Generation threads (each runs one request at a time).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Requests that may wait for a worker; more are answered 503.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub queue: u32,
    /// Seconds a request may take from arrival to answer (then 504).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub timeout: u32,
    /// Images one request may ask for.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_images: u32,
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// Request bodies above this are refused (a style-transfer upload fits).
pub const MAX_BODY: usize = 4 << 20;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// Loads each run's model; ids are the run folders' names (made unique).
pub fn load_models(runs: &[PathBuf], device: tch::Device) -> Result<Vec<Arc<Model>>> {
    let mut models: Vec<Arc<Model>> = Vec::new();
    for run in runs {
        let file = t2i::checkpoint::checkpoint_file(run)?;
        let ck = t2i::checkpoint::load(&file)?;
        let g = t2i::family::load_generator(&ck, device)
            .with_context(|| format!("cannot load {}", file.display()))?;
        // checkpoints store their config as JSON or TOML
        let meta_value = |key: &str| -> serde_json::Value {
            let Some(text) = ck.meta.get(key) else {
                return serde_json::Value::Null;
            };
            serde_json::from_str(text)
                .ok()
                .or_else(|| {
                    toml::from_str::<toml::Value>(text)
                        .ok()
                        .and_then(|t| serde_json::to_value(t).ok())
                })
                .unwrap_or_default()
        };
        let config = meta_value("config");
        let data_meta = meta_value("data");
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let base = if run.is_dir() {
            run.file_name()
        } else {
            run.file_stem()
        }
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
        let mut id = base.clone();
        let mut k = 2;
        while models.iter().any(|m| m.info.id == id) {
            id = format!("{base}-{k}");
            k += 1;
        }
        let info = ModelInfo {
            id,
            family: g.family().to_string(),
            preset: text(&config["preset"]),
            data: [&config["data"]["name"], &data_meta["name"], &config["data"]]
                .into_iter()
                .map(text)
                .find(|d| !d.is_empty())
                // only the built-in shapes data set stores its generator
                // settings (`max_objects`...) as the checkpoint's `data`
                .or_else(|| data_meta.get("max_objects").map(|_| "shapes".into()))
                .or_else(|| run_data_name(&file))
                .unwrap_or_else(|| "unknown".into()),
            image_size: g.image_size(),
            controls: g.controls(),
            parts: g.part_names(),
            checkpoint: file.display().to_string(),
        };
        tracing::info!(
            "model {}: {} {} on {} ({} px)",
            info.id,
            info.family,
            info.preset,
            info.data,
            info.image_size
        );
        models.push(Arc::new(Model {
            info,
            generator: Mutex::new(g),
        }));
    }
    Ok(models)
}

/// The data set named by the run folder's `config.toml` of a checkpoint in
/// `RUN/checkpoints/`.
fn run_data_name(checkpoint: &std::path::Path) -> Option<String> {
    let run = checkpoint.parent()?.parent()?;
    let text = std::fs::read_to_string(run.join("config.toml")).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    let name = v.get("config")?.get("data")?.get("name")?.as_str()?;
    Some(name.to_string())
}

/// The app: API routes, the page, JSON 404s, the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route("/api/health", get(api::health))
        .route("/api/models", get(api::models))
        .route("/api/generate", post(api::generate))
        .route("/api/interpolate", post(api::interpolate))
        .route("/api/style-transfer", post(api::style_transfer))
        .route("/api/attention", post(api::attention))
        .route("/api/keypoints", post(api::keypoints))
        .fallback(|| async { api::not_found().await.into_response() })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down (Ctrl-C): finishing open requests");
}

pub fn run(a: ServeArgs) -> Result<()> {
    let device = t2i::device::parse_device(&a.device)?;
    let addr: SocketAddr = format!("{}:{}", a.host, a.port)
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (a.host.as_str(), a.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut it| it.next())
                .ok_or(())
        })
        .map_err(|_| {
            anyhow::anyhow!(
                "--host {:?} is not an address this machine can bind",
                a.host
            )
        })?;
    let models = load_models(&a.runs, device)?;
    if models.is_empty() {
        bail!("no model to serve");
    }
    // the workers share the cores: libtorch's threads per request
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = a.workers as usize;
    tch::set_num_threads((cores / workers).max(1) as i32);
    let state = Arc::new(AppState {
        models,
        pool: pool::Pool::new(workers, a.queue as usize).context("cannot start the workers")?,
        limits: Limits {
            max_images: a.max_images as usize,
            max_caption: 500,
            timeout: Duration::from_secs(a.timeout as u64),
        },
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        // the line scripts and tests wait for
        println!("listening on http://{local}/");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("server error")
    })
}
