//! The web app of `t2i serve` driven end to end in headless Chromium through
//! WebDriver (Debian's `chromium` and `chromium-driver`, installed by
//! `scripts/setup_chromium.sh`): choose a model, type a caption, drag a box
//! on the layout canvas, generate, and check that images appear (with
//! attention maps for AttnGAN). Screenshots of the page go to
//! `T2I_SCREENSHOT_DIR` (default: the test's temp folder).
//!
//! The models are tiny runs trained here for a few steps; to photograph
//! trained models instead, set `T2I_SCREENSHOT_RUNS=GAWWN_RUN:ATTNGAN_RUN`.
//! Without chromedriver the test is skipped, unless `T2I_REQUIRE_FIXTURES`
//! is set (CI), where it fails.

mod common;

use common::{t2i, tiny_train, Server};
use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ok(args: &[&str]) {
    let out = t2i(args);
    assert!(
        out.status.success(),
        "t2i {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A GAWWN box model and an AttnGAN model, trained for a few steps.
fn tiny_models(dir: &Path) -> (PathBuf, PathBuf) {
    let p = |s: &str| dir.join(s).display().to_string();
    let o = tiny_train(
        &dir.join("gawwn-box"),
        &["--model", "gawwn", "--steps", "3"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // AttnGAN trains on the CUB layout: the shapes data set written as one
    ok(&[
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
    ]);
    ok(&[
        "train",
        "--model",
        "damsm",
        "--data",
        "cub",
        "--data-root",
        &p("data"),
        "--cache",
        &p("cache"),
        "--out",
        &p("damsm"),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--device",
        "cpu",
    ]);
    ok(&[
        "train",
        "--model",
        "attngan",
        "--data",
        "cub",
        "--data-root",
        &p("data"),
        "--cache",
        &p("cache"),
        "--damsm",
        &p("damsm/checkpoints/last.safetensors"),
        "--out",
        &p("attngan"),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]);
    (dir.join("gawwn-box"), dir.join("attngan"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, or None when it is not installed.
fn chromedriver() -> Option<(Killed, String)> {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let child = Killed(child);
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((child, format!("http://127.0.0.1:{port}")))
}

async fn browser(webdriver: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1100"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("a headless Chromium session")
}

/// Polls a JavaScript expression until it is truthy; its value.
async fn wait_js(c: &Client, expr: &str, what: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        let v = c
            .execute(&format!("return {expr};"), vec![])
            .await
            .expect("run script");
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return v;
        }
        if Instant::now() > until {
            let status = c
                .execute(
                    "return document.getElementById('status').textContent;",
                    vec![],
                )
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {what} (status line: {status})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Chooses the model whose id is `id` and types `caption`.
async fn choose(c: &Client, id: &str, caption: &str) {
    c.find(Locator::Id("model"))
        .await
        .unwrap()
        .select_by_value(id)
        .await
        .unwrap();
    let field = c.find(Locator::Id("caption")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(caption).await.unwrap();
}

/// Clicks Generate and waits until the page shows the answer's images.
async fn generate(c: &Client) -> usize {
    c.find(Locator::Id("generate"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let note = wait_js(
        c,
        "/image\\(s\\) in|error/i.test(document.getElementById('status').textContent) \
         && document.getElementById('status').textContent",
        "the generation",
    )
    .await;
    let error = c
        .execute(
            "return document.getElementById('status').className;",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(error, json!("error"), "the page reported an error: {note}");
    let drawn = c
        .execute(
            "return [...document.querySelectorAll('#results img.result')]\
             .filter(i => i.complete && i.naturalWidth > 0 && i.src.startsWith('data:image/png')).length;",
            vec![],
        )
        .await
        .unwrap();
    drawn.as_u64().unwrap() as usize
}

async fn screenshot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_generates_with_a_dragged_box_and_shows_attention_maps() {
    let Some((_driver, webdriver)) = chromedriver() else {
        assert!(
            std::env::var_os("T2I_REQUIRE_FIXTURES").is_none(),
            "chromedriver is not installed (scripts/setup_chromium.sh installs it)"
        );
        eprintln!("skipped: chromedriver is not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (gawwn, attngan) = match std::env::var("T2I_SCREENSHOT_RUNS") {
        Ok(v) => {
            let (a, b) = v
                .split_once(':')
                .expect("T2I_SCREENSHOT_RUNS=GAWWN_RUN:ATTNGAN_RUN");
            (PathBuf::from(a), PathBuf::from(b))
        }
        Err(_) => {
            let dir = tmp.path().to_path_buf();
            tokio::task::spawn_blocking(move || tiny_models(&dir))
                .await
                .unwrap()
        }
    };
    let shots = std::env::var_os("T2I_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    let server = Server::start(&[&gawwn, &attngan], &["--workers", "1"]);
    let url = format!("http://{}/", server.addr);
    let id = |p: &Path| p.file_name().unwrap().to_string_lossy().to_string();

    let c = browser(&webdriver).await;
    c.goto(&url).await.unwrap();
    wait_js(
        &c,
        "document.querySelectorAll('#model option').length === 2",
        "the model list",
    )
    .await;

    // GAWWN: drag a box in the left half of the canvas, then generate
    choose(&c, &id(&gawwn), "a red circle").await;
    wait_js(
        &c,
        "!document.getElementById('layout').hidden",
        "the layout canvas",
    )
    .await;
    let canvas = c.find(Locator::Id("layout-canvas")).await.unwrap();
    // the canvas is 256 px; offsets are from its centre
    let drag = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: canvas.clone(),
            duration: None,
            x: -102.0,
            y: -64.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveToElement {
            element: canvas.clone(),
            duration: Some(Duration::from_millis(200)),
            x: -26.0,
            y: 64.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    c.perform_actions(drag).await.unwrap();
    let b = c.execute("return box;", vec![]).await.unwrap();
    let b: Vec<f64> = serde_json::from_value(b).unwrap();
    let want = [26.0 / 256.0, 64.0 / 256.0, 76.0 / 256.0, 128.0 / 256.0];
    for (got, want) in b.iter().zip(want) {
        assert!(
            (got - want).abs() < 0.02,
            "box after the drag {b:?}, want {want:?}"
        );
    }
    let n = generate(&c).await;
    assert_eq!(n, 4, "four images (the page's default)");
    screenshot(&c, &shots, "serve-gawwn.png").await;

    // AttnGAN: the same caption; its attention maps appear under the images
    choose(&c, &id(&attngan), "a red circle").await;
    let n = generate(&c).await;
    assert_eq!(n, 4);
    wait_js(
        &c,
        "!document.getElementById('attention').hidden && \
         document.querySelector('#attention img').complete && \
         document.querySelector('#attention img').naturalWidth > 0",
        "the attention maps",
    )
    .await;
    screenshot(&c, &shots, "serve-attngan.png").await;
    c.close().await.unwrap();
}
