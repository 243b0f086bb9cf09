//! httpx-sse (Python), a real third-party SSE client, against the hub
//! server: a fresh stream yields the welcome, then the published events,
//! and nothing else — in particular no empty message for the `retry:` hint
//! (issue 14, item 6; SPEC §7 "interop").
//!
//! The client is `tests/python/httpx_sse_client.py`, run with `python3`
//! (`SSEHUB_PYTHON` overrides). `.ci/run` installs `httpx` and `httpx-sse`;
//! without them the tests are skipped, unless `CI` is set: then they fail.

mod common;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn python() -> String {
    std::env::var("SSEHUB_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether `python3` can import httpx-sse; if not, fails in CI and returns
/// false (skip) elsewhere.
async fn httpx_sse_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import httpx, httpx_sse"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "httpx-sse is required in CI (python3 -m pip install httpx httpx-sse)"
        );
        eprintln!(
            "skipped: python3 cannot import httpx_sse (python3 -m pip install httpx httpx-sse)"
        );
    }
    ok
}

/// The Python client reading `url` until it has seen `count` events.
struct PyClient {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl PyClient {
    async fn spawn(url: &str, count: usize) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/httpx_sse_client.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(url)
            .arg(count.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python3");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut client = Self {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        assert_eq!(client.line().await.as_deref(), Some("ready"));
        client
    }

    async fn line(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("the Python client answered within 30 s")
            .expect("read the Python client's stdout")
    }

    /// Every event the client printed, until it exits; checks it exited 0.
    async fn events(mut self) -> Vec<Value> {
        let mut events = Vec::new();
        while let Some(line) = self.line().await {
            events.push(serde_json::from_str(&line).expect("one JSON object per line"));
        }
        let status = self.child.wait().await.expect("wait for python3");
        assert!(status.success(), "the Python client failed: {status}");
        events
    }
}

#[tokio::test]
async fn httpx_sse_sees_the_welcome_then_the_events_and_nothing_else() {
    if !httpx_sse_available().await {
        return;
    }
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let client = PyClient::spawn(&format!("http://{addr}/events?topic=py"), 3).await;
    let (status, first) =
        common::publish(addr, r#"{"topic":"py","event":"note","data":"one"}"#).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = common::publish(addr, r#"{"topic":"py","data":"two\nlines"}"#).await;
    assert_eq!(status, 200, "{second}");
    let id = |answer: &str| serde_json::from_str::<Value>(answer).unwrap()["id"].clone();
    assert_eq!(server.hub().len(), 1);
    let events = client.events().await;
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[0]["event"], "welcome");
    assert_eq!(events[0]["retry"], 3000);
    let welcome: Value = serde_json::from_str(events[0]["data"].as_str().unwrap()).unwrap();
    assert!(welcome["clientId"].is_string(), "{welcome}");
    assert_eq!(
        events[1],
        json!({"event": "note", "data": "one", "id": id(&first), "retry": null})
    );
    assert_eq!(
        events[2],
        json!({"event": "message", "data": "two\nlines", "id": id(&second), "retry": null})
    );
}

#[tokio::test]
async fn httpx_sse_without_a_welcome_sees_only_the_events() {
    if !httpx_sse_available().await {
        return;
    }
    let mut config = common::config();
    config.sse.welcome = false;
    let server = common::start(config).await;
    let addr = server.local_addr();
    let client = PyClient::spawn(&format!("http://{addr}/events?topic=py"), 2).await;
    let (status, first) = common::publish(addr, r#"{"topic":"py","data":"one"}"#).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = common::publish(addr, r#"{"topic":"py","data":"two"}"#).await;
    assert_eq!(status, 200, "{second}");
    let id = |answer: &str| serde_json::from_str::<Value>(answer).unwrap()["id"].clone();
    let events = client.events().await;
    assert_eq!(
        events,
        [
            json!({"event": "message", "data": "one", "id": id(&first), "retry": 3000}),
            json!({"event": "message", "data": "two", "id": id(&second), "retry": null}),
        ]
    );
}
