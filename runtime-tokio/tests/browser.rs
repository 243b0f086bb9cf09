//! The demo page in headless Chromium: its EventSource receives a
//! published event, and after the server drops the connection (a kick) it
//! reconnects with `Last-Event-ID` and receives what was published while
//! it was away, by replay.
//!
//! Chromium is driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by NUL on fds 3 and 4),
//! which needs no WebSocket client. The page records what it sees in
//! `window.ssehubDemo`; the test evaluates promises in the page that
//! resolve once the expected state is there.
//!
//! Without Chromium the test is skipped, unless `CI` is set: then it fails.
//! `SSEHUB_CHROMIUM` names another binary.

mod common;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SSEHUB_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A DevTools-protocol session over Chromium's debugging pipe.
struct Cdp {
    child: Child,
    to_browser: ChildStdin,
    from_browser: BufReader<ChildStdout>,
    next_id: u64,
    session: Option<String>,
    profile: PathBuf,
    /// Protocol events read while waiting for a command's reply.
    events: Vec<Value>,
}

impl Cdp {
    async fn launch(binary: &PathBuf, url: &str) -> Self {
        Self::launch_with(binary, url, &[]).await
    }

    /// As [`launch`](Self::launch), with extra command-line flags.
    async fn launch_with(binary: &PathBuf, url: &str, flags: &[String]) -> Self {
        let profile = std::env::temp_dir().join(format!(
            "ssehub-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        // fd 3 (the browser's input) is our stdin pipe, fd 4 (its output)
        // our stdout pipe; the browser's own stdin/stdout go to /dev/null.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--mute-audio",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(flags)
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let to_browser = child.stdin.take().unwrap();
        let from_browser = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            to_browser,
            from_browser,
            next_id: 0,
            session: None,
            profile,
            events: Vec::new(),
        }
    }

    /// Sends a command (to the attached page if any) and returns its result.
    async fn call(&mut self, method: &str, params: Value, to_page: bool) -> Value {
        match self.try_call(method, params, to_page).await {
            Ok(result) => result,
            Err(error) => panic!("{method} failed: {error}"),
        }
    }

    /// As [`call`](Self::call), returning the protocol's error.
    async fn try_call(
        &mut self,
        method: &str,
        params: Value,
        to_page: bool,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if to_page {
            message["sessionId"] = json!(self.session.clone().expect("attached"));
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).await.unwrap();
        loop {
            let reply = self.read_message().await;
            if reply["id"] == json!(id) {
                if let Some(error) = reply.get("error") {
                    return Err(error.clone());
                }
                return Ok(reply["result"].clone());
            }
            if reply.get("method").is_some() {
                self.events.push(reply);
            }
        }
    }

    async fn read_message(&mut self) -> Value {
        let mut raw = Vec::new();
        let n = self.from_browser.read_until(0, &mut raw).await.unwrap();
        assert!(n > 0, "chromium closed the debugging pipe");
        raw.pop();
        serde_json::from_slice(&raw).unwrap()
    }

    /// Waits for the protocol event `method` (one already read counts).
    async fn wait_event(&mut self, method: &str) -> Value {
        if let Some(at) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(at);
        }
        loop {
            let message = self.read_message().await;
            if message["method"] == method {
                return message;
            }
        }
    }

    /// Navigates the attached page and waits for its load event, so that
    /// evaluations afterwards run in the page's own, settled context.
    async fn open(&mut self, url: &str) {
        self.call("Page.enable", json!({}), true).await;
        self.call("Page.navigate", json!({ "url": url }), true)
            .await;
        self.wait_event("Page.loadEventFired").await;
    }

    async fn attach_to_page(&mut self) {
        for _ in 0..200 {
            let targets = self.call("Target.getTargets", json!({}), false).await;
            let page = targets["targetInfos"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["type"] == "page")
                .cloned();
            if let Some(page) = page {
                let attached = self
                    .call(
                        "Target.attachToTarget",
                        json!({ "targetId": page["targetId"], "flatten": true }),
                        false,
                    )
                    .await;
                self.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("chromium opened no page");
    }

    /// Evaluates `condition` (a JS expression) in the page until it is
    /// truthy, and returns `value` (a JS expression) then, as JSON.
    async fn wait_for(&mut self, what: &str, condition: &str, value: &str) -> Value {
        let expression = format!(
            r#"new Promise((resolve, reject) => {{
                const started = Date.now();
                const check = () => {{
                    let ok = false;
                    try {{ ok = Boolean({condition}); }} catch (_) {{}}
                    if (ok) return resolve(JSON.stringify({value}));
                    if (Date.now() - started > 20000) return reject(new Error("timed out: {what}; page saw " + JSON.stringify(window.ssehubDemo)));
                    setTimeout(check, 25);
                }};
                check();
            }})"#
        );
        let params =
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true });
        let result = match self.try_call("Runtime.evaluate", params, true).await {
            Ok(result) => result,
            Err(error) => panic!("waiting for {what}: {error}"),
        };
        if let Some(details) = result.get("exceptionDetails") {
            panic!("waiting for {what}: {details}");
        }
        serde_json::from_str(result["result"]["value"].as_str().unwrap()).unwrap()
    }

    async fn close(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_receives_events_and_replays_after_a_reconnect() {
    let Some(binary) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI (apt-get install -y chromium, or set SSEHUB_CHROMIUM)"
        );
        eprintln!("skipped: no chromium (install it, or set SSEHUB_CHROMIUM)");
        return;
    };
    let mut config = common::config();
    // Long enough that the event published right after the kick is
    // published while the browser is away.
    config.sse.retry = Some(Duration::from_secs(2));
    let server = common::start(config).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();

    let run = async {
        let mut browser = Cdp::launch(&binary, "about:blank").await;
        browser.attach_to_page().await;
        browser.open(&format!("http://{addr}/?topic=browser")).await;
        let client_id = browser
            .wait_for(
                "the welcome event",
                "window.ssehubDemo && ssehubDemo.clientId && ssehubDemo.states.includes('open')",
                "ssehubDemo.clientId",
            )
            .await;
        let client_id = client_id.as_str().unwrap().to_owned();

        let (status, body) = common::publish(addr, r#"{"topic":"browser","data":"first"}"#).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""delivered":1"#), "{body}");
        let first = browser
            .wait_for(
                "the first event",
                "ssehubDemo.received.some(e => e.kind === 'message' && e.data === 'first')",
                "ssehubDemo.received.find(e => e.data === 'first')",
            )
            .await;
        assert!(first["id"].as_str().unwrap().ends_with("-1"), "{first}");

        // The server drops the connection; what is published meanwhile
        // reaches nobody live...
        let auth = format!("Bearer {}", common::TOKEN);
        let (status, _, _) = common::request(
            addr,
            "DELETE",
            &format!("/clients/{client_id}"),
            &[("Authorization", &auth)],
            "",
        )
        .await;
        assert_eq!(status, 200);
        let missed = hub
            .publish("browser", &ssehub_core::codec::Event::new("missed"))
            .unwrap();
        assert_eq!(
            missed.delivered, 0,
            "the browser reconnected before the publish"
        );

        // ...and arrives by replay once EventSource reconnects.
        let seen = browser
            .wait_for(
                "the missed event after the reconnect",
                "ssehubDemo.received.some(e => e.data === 'missed')",
                "ssehubDemo",
            )
            .await;
        let received = seen["received"].as_array().unwrap();
        let kinds: Vec<&str> = received
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["welcome", "message", "welcome", "message"],
            "{seen}"
        );
        assert_eq!(received[3]["id"], json!(missed.id.to_string()));
        assert_ne!(seen["clientId"], json!(client_id), "a new connection");
        let states: Vec<&str> = seen["states"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(states, ["connecting", "open", "connecting", "open"]);
        assert_eq!(hub.metrics().replay_hits, 1);
        assert_eq!(hub.metrics().replay_resets, 0);
        browser.close().await;
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test took over 90 s");
    let hub = server.hub().clone();
    common::wait_until("the browser's client is gone", || hub.is_empty()).await;
}

/// Opens `count` EventSources on `topic` from the page; `window.streams`
/// counts those that got their welcome and the messages `data` received.
const OPEN_STREAMS: &str = r#"
    window.streams = { list: [], opened: 0, received: 0 };
    for (let i = 0; i < COUNT; i++) {
        const es = new EventSource('/events?topic=many');
        es.addEventListener('welcome', () => { streams.opened++; });
        es.onmessage = (e) => { if (e.data === 'to every stream') streams.received++; };
        streams.list.push(es);
    }
    true
"#;

async fn open_streams(browser: &mut Cdp, count: usize) {
    let expression = OPEN_STREAMS.replace("COUNT", &count.to_string());
    let params = json!({ "expression": expression, "returnByValue": true });
    browser.call("Runtime.evaluate", params, true).await;
}

/// Skips (or fails in CI) without Chromium.
fn chromium_or_skip() -> Option<PathBuf> {
    let binary = chromium();
    if binary.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI (apt-get install -y chromium, or set SSEHUB_CHROMIUM)"
        );
        eprintln!("skipped: no chromium (install it, or set SSEHUB_CHROMIUM)");
    }
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_streams_from_one_page_share_one_http2_connection_over_tls() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let dir = common::tls::temp_dir("browser-tls");
    let cert = common::tls::TestCert::new(&dir, "hub");
    let mut config = common::config();
    config.tls = Some(cert.server());
    // Chromium may open a spare socket (a backup connect) that never
    // carries a request; short bounds let the server close any such.
    config.request_head_timeout = Some(Duration::from_secs(1));
    config.connection_idle_timeout = Some(Duration::from_secs(1));
    let server = common::start(config).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();
    let run = async {
        let trust = format!("--ignore-certificate-errors-spki-list={}", cert.spki_sha256);
        let mut browser = Cdp::launch_with(&binary, "about:blank", &[trust]).await;
        browser.attach_to_page().await;
        browser.open(&format!("https://{addr}/healthz")).await;
        open_streams(&mut browser, 10).await;
        browser
            .wait_for(
                "ten open streams",
                "streams.opened === 10",
                "streams.opened",
            )
            .await;
        assert_eq!(hub.len(), 10);
        // Every connection without a live stream is closed by now or soon:
        // the ten streams share the one that stays, so it is HTTP/2.
        common::wait_until("one connection left", || server.open_connections() == 1).await;
        assert_eq!(hub.len(), 10);
        let published = hub
            .publish("many", &ssehub_core::codec::Event::new("to every stream"))
            .unwrap();
        assert_eq!(published.delivered, 10);
        browser
            .wait_for(
                "the event on every stream",
                "streams.received === 10",
                "streams.received",
            )
            .await;
        browser.close().await;
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test took over 90 s");
    common::wait_until("the browser's clients are gone", || hub.is_empty()).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_cleartext_http1_the_seventh_stream_waits_for_a_free_connection() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();
    let run = async {
        let mut browser = Cdp::launch(&binary, "about:blank").await;
        browser.attach_to_page().await;
        browser.open(&format!("http://{addr}/healthz")).await;
        open_streams(&mut browser, 10).await;
        let waiting = browser
            .wait_for(
                "six open streams",
                "streams.opened >= 6",
                "streams.list.filter(es => es.readyState === EventSource.CONNECTING).length",
            )
            .await;
        // An event round trip to the six: the other four are still queued
        // in the browser, with no request sent.
        let published = hub
            .publish("many", &ssehub_core::codec::Event::new("to every stream"))
            .unwrap();
        assert_eq!(published.delivered, 6);
        let seen = browser
            .wait_for(
                "the event on the six",
                "streams.received === 6",
                "[streams.opened, streams.list.filter(es => es.readyState === EventSource.CONNECTING).length]",
            )
            .await;
        assert_eq!(waiting, json!(4));
        assert_eq!(seen, json!([6, 4]));
        assert_eq!(hub.len(), 6);
        assert_eq!(server.open_connections(), 6);
        // Closing one frees its connection: the seventh opens on it.
        browser
            .call(
                "Runtime.evaluate",
                json!({ "expression": "streams.list.find(es => es.readyState === EventSource.OPEN).close()" }),
                true,
            )
            .await;
        browser
            .wait_for(
                "the seventh stream",
                "streams.opened === 7",
                "streams.opened",
            )
            .await;
        browser.close().await;
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test took over 90 s");
    common::wait_until("the browser's clients are gone", || hub.is_empty()).await;
}
