//! `t2i bench --server URL`: a load test of a running `t2i serve`. Sends a
//! burst of concurrent generation requests over loopback, one connection
//! each, and reports the answers by status, latency percentiles of the
//! successful ones, throughput, the server's peak memory (from its
//! `/api/health`) and whether it still answers a request after the burst.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// `host:port` of the server.
    pub addr: String,
    /// Model id (default: the server's first).
    pub model: Option<String>,
    /// Caption (default: one fitting the model's data set).
    pub caption: Option<String>,
    /// Generation requests in the burst.
    pub requests: usize,
    /// Requests open at once.
    pub concurrency: usize,
    /// Images per request.
    pub images: usize,
    /// Give up on one request after this long.
    pub timeout: Duration,
}

/// `http://host:port/` or `host:port` to `host:port`.
pub fn parse_addr(url: &str) -> Result<String> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(_) => bail!("--server {url:?}: only plain http:// servers can be load-tested"),
        None => url,
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || !host.contains(':') {
        bail!("--server {url:?}: expected host:port, e.g. http://127.0.0.1:8080");
    }
    Ok(host.to_string())
}

/// One HTTP/1.1 request on its own connection: status and body.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>)> {
    let exchange = async {
        let mut s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("malformed HTTP answer")?;
        let status_line = String::from_utf8_lossy(&raw[..split]);
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("malformed HTTP status line")?;
        Ok::<_, anyhow::Error>((status, raw[split + 4..].to_vec()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} s", timeout.as_secs()))?
}

async fn get_json(addr: &str, path: &str) -> Result<Value> {
    let (status, body) = request(addr, "GET", path, b"", Duration::from_secs(30)).await?;
    if status != 200 {
        bail!("GET {path} answered {status}");
    }
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
}

/// The measured burst.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub server: String,
    pub model: String,
    pub caption: String,
    pub requests: usize,
    pub concurrency: usize,
    pub images_per_request: usize,
    /// Answers by HTTP status (`"error"`: no HTTP answer at all).
    pub statuses: BTreeMap<String, usize>,
    /// Latency of the 200 answers, milliseconds.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Wall time of the burst, seconds.
    pub wall_s: f64,
    /// Successful requests per second over the burst.
    pub requests_per_s: f64,
    /// Images per second over the burst.
    pub images_per_s: f64,
    /// The server's resident memory before the burst and its peak after, MiB.
    pub rss_before_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// A generation request after the burst was answered 200.
    pub answers_after: bool,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(plan: LoadPlan) -> Result<LoadReport> {
    if plan.requests == 0 || plan.concurrency == 0 || plan.images == 0 {
        bail!("--requests, --concurrency and --images must be at least 1");
    }
    let addr = plan.addr.clone();
    let models = get_json(&addr, "/api/models").await?;
    let list = models["models"].as_array().cloned().unwrap_or_default();
    let model = match &plan.model {
        Some(id) => list
            .iter()
            .find(|m| m["id"] == id.as_str())
            .with_context(|| format!("the server has no model {id:?}"))?,
        None => list.first().context("the server lists no model")?,
    };
    let id = model["id"].as_str().unwrap_or_default().to_string();
    let caption = plan.caption.clone().unwrap_or_else(|| {
        if model["data"] == "shapes" {
            "a red circle".into()
        } else {
            "this bird is red with black wings".into()
        }
    });
    let before = get_json(&addr, "/api/health").await?;

    let gate = Arc::new(tokio::sync::Semaphore::new(plan.concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(plan.requests);
    for i in 0..plan.requests {
        let body = serde_json::to_vec(&json!({
            "model": id, "caption": caption, "n": plan.images, "seed": i,
        }))?;
        let addr = addr.clone();
        let gate = gate.clone();
        let timeout = plan.timeout;
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let t = Instant::now();
            let answer = request(&addr, "POST", "/api/generate", &body, timeout).await;
            (answer.map(|(s, _)| s), t.elapsed())
        }));
    }
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut ok_ms = Vec::new();
    let mut first_error = None;
    for t in tasks {
        let (answer, took) = t.await.context("a request task failed")?;
        let key = match answer {
            Ok(s) => {
                if s == 200 {
                    ok_ms.push(took.as_secs_f64() * 1e3);
                }
                s.to_string()
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                "error".to_string()
            }
        };
        *statuses.entry(key).or_default() += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    if let Some(e) = first_error {
        tracing::warn!("some requests got no HTTP answer, e.g.: {e}");
    }
    ok_ms.sort_by(f64::total_cmp);

    let after_body = serde_json::to_vec(&json!({ "model": id, "caption": caption, "n": 1 }))?;
    let answers_after = matches!(
        request(&addr, "POST", "/api/generate", &after_body, plan.timeout).await,
        Ok((200, _))
    );
    let after = get_json(&addr, "/api/health").await?;
    Ok(LoadReport {
        server: addr,
        model: id,
        caption,
        requests: plan.requests,
        concurrency: plan.concurrency,
        images_per_request: plan.images,
        statuses,
        p50_ms: percentile(&ok_ms, 0.5),
        p90_ms: percentile(&ok_ms, 0.9),
        p99_ms: percentile(&ok_ms, 0.99),
        max_ms: ok_ms.last().copied().unwrap_or(f64::NAN),
        wall_s: wall,
        requests_per_s: ok_ms.len() as f64 / wall,
        images_per_s: (ok_ms.len() * plan.images) as f64 / wall,
        rss_before_mib: before["rss_mib"].as_f64(),
        peak_rss_mib: after["peak_rss_mib"].as_f64(),
        answers_after,
    })
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0} MiB"));
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        writeln!(
            f,
            "load test of {} (model {}, {} image(s) per request)",
            self.server, self.model, self.images_per_request
        )?;
        writeln!(
            f,
            "  {} requests, {} at once: {}",
            self.requests,
            self.concurrency,
            statuses.join(", ")
        )?;
        writeln!(
            f,
            "  latency of 200s: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )?;
        writeln!(
            f,
            "  throughput: {:.2} requests/s, {:.2} images/s over {:.1} s",
            self.requests_per_s, self.images_per_s, self.wall_s
        )?;
        writeln!(
            f,
            "  server memory: {} before, peak {}",
            mib(self.rss_before_mib),
            mib(self.peak_rss_mib)
        )?;
        write!(
            f,
            "  answers after the burst: {}",
            if self.answers_after { "yes" } else { "NO" }
        )
    }
}
