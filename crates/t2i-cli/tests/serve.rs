//! `t2i serve` against a running server on loopback: the model list, every
//! kind of generation through the model-family interface, a clear JSON 4xx
//! for each bad request, 503 + Retry-After on a full queue, and a clean exit
//! on Ctrl-C (SIGINT).

mod common;

use common::{tiny_train, Server};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn t2i_train(dir: &PathBuf, extra: &[&str]) {
    let _ = std::fs::remove_dir_all(dir);
    let mut args = vec!["--steps", "3"];
    args.extend_from_slice(extra);
    let out = tiny_train(dir, &args);
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    /// One HTTP/1.1 request; returns status, headers (lower-case) and body.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // the server may answer (413) before the whole body is sent
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete HTTP answer");
        let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head, raw[split + 4..].to_vec())
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, _, b) = self.request("POST", path, body.to_string().as_bytes());
        (status, serde_json::from_slice(&b).expect("a JSON answer"))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, b) = self.request("GET", path, b"");
        (status, serde_json::from_slice(&b).expect("a JSON answer"))
    }
}

fn png_count(v: &Value) -> usize {
    v.as_array()
        .unwrap()
        .iter()
        .filter(|u| u.as_str().unwrap().starts_with("data:image/png;base64,"))
        .count()
}

#[test]
fn serves_every_control_and_refuses_bad_requests() {
    let base = std::env::temp_dir().join(format!("t2i-serve-test-{}", std::process::id()));
    let gic = base.join("gic");
    let boxes = base.join("boxes");
    let kp = base.join("kp");
    t2i_train(&gic, &["--style-steps", "2"]);
    t2i_train(&boxes, &["--model", "gawwn"]);
    t2i_train(&kp, &["--model", "gawwn", "--set", "condition=keypoints"]);
    let server = Server::start(&[&gic, &boxes, &kp], &["--workers", "1"]);

    // the page and its scripts
    let (status, head, page) = server.request("GET", "/", b"");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"));
    assert!(String::from_utf8_lossy(&page).contains("layout-canvas"));
    let (status, _, _) = server.request("GET", "/app.js", b"");
    assert_eq!(status, 200);

    // the model list says what each model accepts
    let (status, list) = server.get("/api/models");
    assert_eq!(status, 200);
    let models = list["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    let find = |id: &str| models.iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(find("gic")["family"], "gan-int-cls");
    assert_eq!(find("gic")["controls"]["interpolate"], true);
    assert_eq!(find("boxes")["controls"]["boxes"], true);
    assert_eq!(find("kp")["controls"]["keypoints"], true);
    assert_eq!(find("kp")["parts"].as_array().unwrap().len(), 5);
    assert_eq!(find("gic")["data"], "shapes");

    // generation, the same answer for the same seed
    let req = json!({"model": "gic", "caption": "a red circle", "n": 3, "seed": 7});
    let (status, a) = server.post("/api/generate", &req);
    assert_eq!(status, 200, "{a}");
    assert_eq!(png_count(&a["images"]), 3);
    let (_, b) = server.post("/api/generate", &req);
    assert_eq!(a["images"], b["images"]);
    // "a red circle" leaves size and position out: each image says what it
    // was drawn as
    let drawn = a["drawn_as"].as_array().unwrap();
    assert_eq!(drawn.len(), 3);
    for d in drawn {
        let spec = t2i::data::shapes::read_caption(d.as_str().unwrap());
        assert!(spec.is_full(), "{d}");
        let first = spec.objects[0];
        assert_eq!((first.colour, first.shape), (Some(0), Some(0)), "{d}");
    }
    let (status, i) = server.post(
        "/api/interpolate",
        &json!({"model": "gic", "caption": "a red circle", "to": "a blue square", "steps": 4}),
    );
    assert_eq!(status, 200, "{i}");
    assert_eq!(png_count(&i["images"]), 4);
    let (status, st) = server.post(
        "/api/style-transfer",
        &json!({"model": "gic", "caption": "a blue square", "image": a["images"][0]}),
    );
    assert_eq!(status, 200, "{st}");
    assert_eq!(png_count(&st["images"]), 1);

    // boxes and keypoints, with completion
    let (status, g) = server.post(
        "/api/generate",
        &json!({"model": "boxes", "caption": "a green square", "n": 2, "box": [0.1, 0.2, 0.5, 0.4]}),
    );
    assert_eq!(status, 200, "{g}");
    let drawn: Vec<f64> = g["layouts"][1]["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (d, w) in drawn.iter().zip([0.1, 0.2, 0.5, 0.4]) {
        assert!((d - w).abs() < 1e-6, "{drawn:?}");
    }
    let (status, g) = server.post(
        "/api/generate",
        &json!({"model": "boxes", "caption": "a green square", "sweep": 4}),
    );
    assert_eq!(status, 200, "{g}");
    assert_eq!(png_count(&g["images"]), 4);
    let (status, g) = server.post(
        "/api/generate",
        &json!({"model": "kp", "caption": "a red circle", "n": 2,
                "keypoints": {"top": [0.5, 0.25]}, "complete_keypoints": true}),
    );
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["completed"], true);
    let l = &g["layouts"][0];
    assert_eq!(l["keypoints"]["top"], json!([0.5, 0.25])); // exact in f32
    assert_eq!(l["given"], json!(["top"]));
    let (status, k) = server.post(
        "/api/keypoints",
        &json!({"model": "kp", "caption": "a red circle", "keypoints": {"centre": [0.4, 0.6]}}),
    );
    assert_eq!(status, 200, "{k}");
    let c = &k["keypoints"]["centre"];
    assert!((c[0].as_f64().unwrap() - 0.4).abs() < 1e-6, "{c}");
    assert!((c[1].as_f64().unwrap() - 0.6).abs() < 1e-6, "{c}");

    // bad requests: a 4xx with a JSON message each
    let big = vec![b'x'; 10 << 20];
    let (status, _, body) = server.request("POST", "/api/generate", &big);
    assert_eq!(status, 413);
    let msg: Value = serde_json::from_slice(&body).unwrap();
    assert!(msg["error"].as_str().unwrap().contains("too large"));
    for (path, body, code, needle) in [
        ("/api/generate", json!({"model": "gic"}), 400, "caption"),
        (
            "/api/generate",
            json!({"model": "gic", "caption": "  "}),
            400,
            "empty",
        ),
        (
            "/api/generate",
            json!({"model": "gic", "caption": "a red circle", "n": 1_000_000}),
            400,
            "\"n\" must be",
        ),
        (
            "/api/generate",
            json!({"model": "nope", "caption": "a red circle"}),
            404,
            "unknown model",
        ),
        (
            "/api/generate",
            json!({"caption": "a red circle"}),
            400,
            "\"model\" is required",
        ),
        (
            "/api/generate",
            json!({"model": "boxes", "caption": "a red circle", "box": [0.8, 0.1, 0.5, 0.5]}),
            422,
            "not inside",
        ),
        (
            "/api/generate",
            json!({"model": "boxes", "caption": "a red circle", "box": [0.1, 0.1, 0.0, 0.5]}),
            422,
            "positive",
        ),
        (
            "/api/generate",
            json!({"model": "kp", "caption": "a red circle", "keypoints": {"beak": [0.5, 0.5]}}),
            422,
            "unknown part",
        ),
        (
            "/api/generate",
            json!({"model": "gic", "caption": "a red circle", "box": [0.1, 0.1, 0.5, 0.5]}),
            422,
            "takes no box",
        ),
        (
            "/api/generate",
            json!({"model": "gic", "caption": "a red circle", "colour": "red"}),
            400,
            "unknown field",
        ),
        (
            "/api/attention",
            json!({"model": "gic", "caption": "a red circle"}),
            422,
            "attention",
        ),
        (
            "/api/interpolate",
            json!({"model": "boxes", "caption": "a red circle"}),
            422,
            "interpolation",
        ),
        (
            "/api/generate",
            json!({"model": "gic", "caption": "zzz qqq"}),
            422,
            "vocabulary",
        ),
        ("/api/nothing", json!({}), 404, "no such endpoint"),
    ] {
        let (status, v) = server.post(path, &body);
        assert_eq!(status, code, "{body}: {v}");
        let e = v["error"].as_str().unwrap_or_else(|| panic!("{body}: {v}"));
        assert!(e.contains(needle), "{body}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let (status, _, body) = server.request("POST", "/api/generate", b"{not json");
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("invalid request"));

    // still serving
    let (status, _) = server.post(
        "/api/generate",
        &json!({"model": "gic", "caption": "a blue square"}),
    );
    assert_eq!(status, 200);
    drop(server);

    // a full queue answers 503 with Retry-After, nothing else fails
    let server = Server::start(
        &[&boxes],
        &["--workers", "1", "--queue", "1", "--max-images", "256"],
    );
    let server = std::sync::Arc::new(server);
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let s = server.clone();
            std::thread::spawn(move || {
                let body = json!({"caption": "a red circle", "n": 256, "seed": i});
                s.request("POST", "/api/generate", body.to_string().as_bytes())
            })
        })
        .collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(ok + busy.len(), answers.len(), "only 200 and 503 expected");
    assert!(ok >= 1 && !busy.is_empty(), "ok {ok}, busy {}", busy.len());
    assert!(busy.iter().all(|a| a.1.contains("retry-after: 1")));
    let (status, _) = server.get("/api/health");
    assert_eq!(status, 200);

    // Ctrl-C: a clean exit
    let mut server = std::sync::Arc::try_unwrap(server).ok().unwrap();
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&base);
}
