//! The browser end, in headless Chromium against the real hub:
//!
//! - the demo page, on the native EventSource (`?client=native`): receives
//!   a published event, and after a kick reconnects with `Last-Event-ID`
//!   and receives by replay what was published while it was away;
//! - the demo page on ssehub.js (its default): an event name typed into the
//!   publish form is shown when it arrives, and a kick is survived;
//! - ssehub.js itself, loaded from `GET /ssehub.js` into a page of the hub:
//!   a 401 stops it without a retry; with a bearer header it connects and
//!   receives; a fatal kick stops it and `reconnect()` resumes it with
//!   `Last-Event-ID`; a 503 with `Retry-After` delays its reconnect; a
//!   restart of the hub resumes it with `Last-Event-ID` (answered with a
//!   reset by the new instance).
//!
//! Chromium is driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by NUL on fds 3 and 4),
//! which needs no WebSocket client. Pages record what they see in
//! `window.ssehubDemo` (the demo) or `window.t` (the ssehub.js harness);
//! the test evaluates promises in the page that resolve once the expected
//! state is there. One browser runs at a time (the tests take turns).
//!
//! Without Chromium the tests are skipped, unless `CI` is set: then they
//! fail. `SSEHUB_CHROMIUM` names another binary.

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
                    if (Date.now() - started > 20000) return reject(new Error("timed out: {what}; page saw " + JSON.stringify(window.ssehubDemo || window.t)));
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

    /// Evaluates `expression` (awaiting it if it is a promise) and returns
    /// its value as JSON.
    async fn eval(&mut self, expression: &str) -> Value {
        let params =
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true });
        let result = match self.try_call("Runtime.evaluate", params, true).await {
            Ok(result) => result,
            Err(error) => panic!("evaluating {expression}: {error}"),
        };
        if let Some(details) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {details}");
        }
        result["result"]["value"].clone()
    }

    async fn close(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One Chromium at a time: the tests take turns.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The browser binary, or `None` (skip) outside CI.
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

/// Chromium on `url` (a page of the hub), attached and loaded.
async fn browse(binary: &PathBuf, url: &str) -> Cdp {
    let mut browser = Cdp::launch(binary, "about:blank").await;
    browser.attach_to_page().await;
    browser.open(url).await;
    browser
}

/// Loads ssehub.js from the hub into the page and defines
/// `watch(name, url, options)`: a `SseHub` whose fetches, states, errors
/// and events are recorded in `window.t[name]` (its instance in `.hub`).
const HARNESS: &str = r#"(async () => {
    const { SseHub } = await import("/ssehub.js");
    window.t = {};
    window.watch = (name, url, options = {}) => {
        const rec = { fetches: 0, lastEventIds: [], states: [], opens: [], errors: [], events: [], closed: null };
        const fetchCounted = (input, init) => {
            rec.fetches += 1;
            rec.lastEventIds.push(init.headers.get("last-event-id"));
            return fetch(input, init);
        };
        const hub = new SseHub(url, { fetch: fetchCounted, ...options });
        Object.defineProperty(rec, "hub", { value: hub, enumerable: false });
        hub.addEventListener("statechange", (e) => {
            rec.states.push(e.state);
            if (e.state === "closed") rec.closed = e.info;
        });
        hub.addEventListener("open", () => rec.opens.push(performance.now()));
        hub.addEventListener("error", (e) => rec.errors.push({
            kind: e.kind, status: e.status, retryAfter: e.retryAfter, willRetry: e.willRetry,
            delay: e.delay, at: performance.now(),
        }));
        for (const type of ["message", "welcome", "fatal", "reset", "shutdown"]) {
            hub.addEventListener(type, (e) => rec.events.push({ type, data: e.data, id: e.lastEventId }));
        }
        window.t[name] = rec;
        return true;
    };
    return typeof SseHub;
})()"#;

/// The `welcome` event's client id, once `t[name]` got it.
async fn client_id_of(browser: &mut Cdp, name: &str) -> String {
    let welcome = browser
        .wait_for(
            "the welcome event",
            &format!("t.{name} && t.{name}.events.some(e => e.type === 'welcome')"),
            &format!("t.{name}.events.filter(e => e.type === 'welcome').pop()"),
        )
        .await;
    let data: Value = serde_json::from_str(welcome["data"].as_str().unwrap()).unwrap();
    data["clientId"].as_str().unwrap().to_owned()
}

async fn kick(addr: std::net::SocketAddr, client_id: &str, fatal: bool) {
    let auth = format!("Bearer {}", common::TOKEN);
    let path = if fatal {
        format!("/clients/{client_id}?fatal=true")
    } else {
        format!("/clients/{client_id}")
    };
    let (status, _, body) =
        common::request(addr, "DELETE", &path, &[("Authorization", &auth)], "").await;
    assert_eq!(status, 200, "{body}");
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_on_native_event_source_replays_after_a_reconnect() {
    let _turn = BROWSER.lock().await;
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let mut config = common::config();
    // Long enough that the event published right after the kick is
    // published while the browser is away (the native EventSource waits
    // exactly this long).
    config.sse.retry = Some(Duration::from_secs(2));
    let server = common::start(config).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();

    let run = async {
        let mut browser = browse(
            &binary,
            &format!("http://{addr}/?topic=browser&client=native"),
        )
        .await;
        let client_id = browser
            .wait_for(
                "the welcome event",
                "window.ssehubDemo && ssehubDemo.clientId && ssehubDemo.states.includes('open')",
                "ssehubDemo.clientId",
            )
            .await;
        let client_id = client_id.as_str().unwrap().to_owned();
        assert_eq!(browser.eval("ssehubDemo.client").await, json!("native"));

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
        kick(addr, &client_id, false).await;
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
        assert_eq!(
            strings(&seen["states"]),
            ["connecting", "open", "connecting", "open"]
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_on_ssehub_js_shows_named_events_and_survives_a_kick() {
    let _turn = BROWSER.lock().await;
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let mut config = common::config();
    config.sse.retry = Some(Duration::from_millis(500));
    let server = common::start(config).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();

    let run = async {
        let mut browser = browse(&binary, &format!("http://{addr}/?topic=demo")).await;
        let client_id = browser
            .wait_for(
                "the welcome event",
                "window.ssehubDemo && ssehubDemo.clientId && ssehubDemo.states.includes('open')",
                "ssehubDemo.clientId",
            )
            .await;
        let client_id = client_id.as_str().unwrap().to_owned();
        assert_eq!(browser.eval("ssehubDemo.client").await, json!("ssehub"));

        // A user types an event name into the publish form: the page shows
        // that event when it arrives.
        let form = format!(
            r#"(() => {{
                const $ = (id) => document.getElementById(id);
                $("pub-event").value = "price";
                $("pub-data").value = "42";
                $("pub-token").value = "{token}";
                $("publish").requestSubmit();
                return true;
            }})()"#,
            token = common::TOKEN
        );
        browser.eval(&form).await;
        let price = browser
            .wait_for(
                "the named event published from the form",
                "ssehubDemo.received.some(e => e.kind === 'price')",
                "ssehubDemo.received.find(e => e.kind === 'price')",
            )
            .await;
        assert_eq!(price["data"], json!("42"));
        let result = browser
            .wait_for(
                "the publish answer",
                "document.getElementById('pub-result').textContent.startsWith('published')",
                "document.getElementById('pub-result').textContent",
            )
            .await;
        assert!(
            result.as_str().unwrap().ends_with("to 1 client(s)"),
            "{result}"
        );

        // A kick: ssehub.js reconnects with Last-Event-ID after its jittered
        // backoff; the event is replayed or, if it was back already,
        // delivered live. Either way once, after the reconnect.
        kick(addr, &client_id, false).await;
        let missed = hub
            .publish("demo", &ssehub_core::codec::Event::new("missed"))
            .unwrap();
        let seen = browser
            .wait_for(
                "the missed event after the reconnect",
                "ssehubDemo.received.some(e => e.data === 'missed')",
                "ssehubDemo",
            )
            .await;
        let kinds: Vec<&str> = seen["received"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["welcome", "price", "welcome", "message"], "{seen}");
        assert_eq!(seen["received"][3]["id"], json!(missed.id.to_string()));
        assert_eq!(
            strings(&seen["states"]),
            ["connecting", "open", "connecting", "open"]
        );
        assert_eq!(seen["errors"], json!([]), "a clean end is not an error");
        // The reconnect sent the price event's id: a resume, not a reset.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssehub_js_with_a_bearer_header_receives_stops_on_fatal_and_401_and_reconnects_on_demand() {
    let _turn = BROWSER.lock().await;
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let mut config = common::config();
    config.subscribe_token = Some("sub-token-42".to_owned());
    let server = common::start(config).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();

    let run = async {
        let mut browser = browse(&binary, &format!("http://{addr}/healthz")).await;
        assert_eq!(browser.eval(HARNESS).await, json!("function"));

        // Without the token: 401, fatal, no retry.
        browser
            .eval(r#"watch("anon", "/events?topic=private", { baseDelay: 10 })"#)
            .await;
        let anon = browser
            .wait_for("the 401 stop", "t.anon.closed", "t.anon")
            .await;
        assert_eq!(
            anon["closed"],
            json!({"reason": "http-status", "status": 401, "isLocal": false, "fatal": true})
        );
        assert_eq!(anon["errors"].as_array().unwrap().len(), 1, "{anon}");
        assert_eq!(anon["errors"][0]["kind"], json!("fatal-status"));
        assert_eq!(anon["errors"][0]["willRetry"], json!(false));
        assert_eq!(anon["fetches"], json!(1));

        // With it, as a header: open, events.
        browser
            .eval(r#"watch("auth", "/events?topic=private", { headers: { Authorization: "Bearer sub-token-42" }, baseDelay: 10 })"#)
            .await;
        let client_id = client_id_of(&mut browser, "auth").await;
        for data in ["one", "two"] {
            let (status, body) =
                common::publish(addr, &format!(r#"{{"topic":"private","data":"{data}"}}"#)).await;
            assert_eq!(status, 200, "{body}");
        }
        let auth = browser
            .wait_for(
                "two events",
                "t.auth.events.filter(e => e.type === 'message').length === 2",
                "t.auth",
            )
            .await;
        let two_id = auth["events"][2]["id"].as_str().unwrap().to_owned();
        assert_eq!(auth["events"][2]["data"], json!("two"));

        // A fatal kick: the fatal event, a fatal-event error, closed.
        kick(addr, &client_id, true).await;
        let auth = browser
            .wait_for("the fatal stop", "t.auth.closed", "t.auth")
            .await;
        assert_eq!(
            auth["closed"],
            json!({"reason": "fatal-event", "status": null, "isLocal": false, "fatal": true})
        );
        assert_eq!(auth["events"][3]["type"], json!("fatal"));
        assert_eq!(auth["events"][3]["data"], json!(r#"{"reason":"kicked"}"#));
        assert_eq!(auth["errors"][0]["kind"], json!("fatal-event"));
        assert_eq!(strings(&auth["states"]), ["connecting", "open", "closed"]);
        common::wait_until("the kicked client is gone", || hub.is_empty()).await;

        // Neither retried meanwhile; the retry button resumes the stopped
        // one with Last-Event-ID.
        assert_eq!(
            browser.eval("[t.anon.fetches, t.auth.fetches]").await,
            json!([1, 1])
        );
        assert_eq!(browser.eval("t.auth.hub.reconnect()").await, json!(true));
        let auth = browser
            .wait_for(
                "the manual reconnect",
                "t.auth.opens.length === 2",
                "t.auth",
            )
            .await;
        assert_eq!(auth["lastEventIds"], json!([null, two_id]));
        let (status, body) = common::publish(addr, r#"{"topic":"private","data":"three"}"#).await;
        assert_eq!(status, 200, "{body}");
        browser
            .wait_for(
                "an event after the manual reconnect",
                "t.auth.events.some(e => e.data === 'three')",
                "t.auth",
            )
            .await;
        assert_eq!(hub.metrics().replay_hits, 1, "the reconnect resumed");
        assert_eq!(browser.eval("t.anon.fetches").await, json!(1));
        browser.eval("t.auth.hub.close()").await;
        browser.close().await;
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test took over 90 s");
    let hub = server.hub().clone();
    common::wait_until("the browser's client is gone", || hub.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssehub_js_waits_out_a_503_retry_after() {
    let _turn = BROWSER.lock().await;
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let mut config = common::config();
    config.hub.max_clients = 1;
    config.sse.busy_retry_after = Duration::from_secs(2);
    let server = common::start(config).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();

    let run = async {
        let mut browser = browse(&binary, &format!("http://{addr}/healthz")).await;
        assert_eq!(browser.eval(HARNESS).await, json!("function"));
        // The hub's only slot is taken.
        let (holder, _) = common::subscribe(addr, "/events?topic=busy", "").await;

        // Without Retry-After this page would retry within 50 ms.
        browser
            .eval(r#"watch("busy", "/events?topic=busy", { baseDelay: 10, maxDelay: 50 })"#)
            .await;
        let busy = browser
            .wait_for("the 503", "t.busy.errors.length >= 1", "t.busy")
            .await;
        let error = &busy["errors"][0];
        assert_eq!(error["kind"], json!("status"));
        assert_eq!(error["status"], json!(503));
        assert_eq!(error["retryAfter"], json!(2000));
        assert_eq!(error["willRetry"], json!(true));
        assert!(error["delay"].as_f64().unwrap() >= 2000.0, "{error}");

        drop(holder);
        common::wait_until("the slot is free", || hub.is_empty()).await;
        let busy = browser
            .wait_for(
                "the open after the wait",
                "t.busy.opens.length === 1",
                "t.busy",
            )
            .await;
        let waited = busy["opens"][0].as_f64().unwrap() - error["at"].as_f64().unwrap();
        assert!(waited >= 1999.0, "reconnected {waited} ms after the 503");
        // Every refusal (one, unless this machine took over 2 s to free the
        // slot) was waited out the same way.
        for refusal in busy["errors"].as_array().unwrap() {
            assert_eq!(refusal["status"], json!(503), "{busy}");
            assert!(refusal["delay"].as_f64().unwrap() >= 2000.0, "{busy}");
        }
        assert_eq!(
            busy["fetches"].as_u64().unwrap(),
            busy["errors"].as_array().unwrap().len() as u64 + 1
        );
        browser.eval("t.busy.hub.close()").await;
        browser.close().await;
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test took over 90 s");
    let hub = server.hub().clone();
    common::wait_until("the browser's client is gone", || hub.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssehub_js_resumes_with_last_event_id_after_a_hub_restart() {
    let _turn = BROWSER.lock().await;
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let instance = |epoch: u64| {
        let mut config = common::config();
        config.hub.epoch = epoch;
        config.hub.shutdown_retry_window = (Duration::from_millis(50), Duration::from_millis(100));
        config.drain_timeout = Duration::from_secs(2);
        config
    };
    let first = common::start(instance(1)).await;
    let addr = first.local_addr();

    let run = async {
        let mut browser = browse(&binary, &format!("http://{addr}/healthz")).await;
        assert_eq!(browser.eval(HARNESS).await, json!("function"));
        browser
            .eval(r#"watch("r", "/events?topic=restart", { baseDelay: 50, maxDelay: 200 })"#)
            .await;
        client_id_of(&mut browser, "r").await;
        let (status, body) = common::publish(addr, r#"{"topic":"restart","data":"before"}"#).await;
        assert_eq!(status, 200, "{body}");
        let before = browser
            .wait_for(
                "the event before the restart",
                "t.r.events.some(e => e.data === 'before')",
                "t.r.events.find(e => e.data === 'before')",
            )
            .await;
        assert_eq!(before["id"], json!("1-1"));

        // The hub restarts on the same address as a new instance.
        let summary = first.shutdown().await;
        assert_eq!(summary.streams_closed, 1);
        let mut config = instance(2);
        config.addr = addr;
        let second = common::start(config).await;

        let r = browser
            .wait_for(
                "the reset from the new instance",
                "t.r.events.some(e => e.type === 'reset')",
                "t.r",
            )
            .await;
        // The reconnect that reached the new instance sent the last id.
        assert_eq!(
            r["lastEventIds"].as_array().unwrap().last().unwrap(),
            "1-1",
            "{r}"
        );
        assert!(
            r["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "shutdown"),
            "{r}"
        );
        assert_eq!(second.hub().metrics().replay_resets, 1);
        assert!(r["closed"].is_null(), "{r}");

        let (status, body) = common::publish(addr, r#"{"topic":"restart","data":"after"}"#).await;
        assert_eq!(status, 200, "{body}");
        let after = browser
            .wait_for(
                "an event from the new instance",
                "t.r.events.some(e => e.data === 'after')",
                "t.r.events.find(e => e.data === 'after')",
            )
            .await;
        assert!(after["id"].as_str().unwrap().starts_with("2-"), "{after}");
        browser.eval("t.r.hub.close()").await;
        browser.close().await;
        second
    };
    let second = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test took over 90 s");
    let hub = second.hub().clone();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_streams_from_one_page_share_one_http2_connection_over_tls() {
    let _turn = BROWSER.lock().await;
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
    let _turn = BROWSER.lock().await;
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

/// Publishes `round % 7 + 1` events to `news` per round, each round
/// followed by the dashboard's next sample; returns how many were
/// published and the last one's id.
async fn publish_rounds(
    browser: &mut Cdp,
    addr: std::net::SocketAddr,
    rounds: std::ops::Range<u64>,
) -> (u64, String) {
    let (mut published, mut last_id) = (0, String::new());
    for round in rounds {
        for _ in 0..round % 7 + 1 {
            let (status, body) = common::publish(addr, r#"{"topic":"news","data":"x"}"#).await;
            assert_eq!(status, 200, "{body}");
            let answer: Value = serde_json::from_str(&body).unwrap();
            last_id = answer["id"].as_str().unwrap().to_owned();
            published += 1;
        }
        let samples = browser.eval("dashboard.samples").await;
        browser
            .wait_for(
                "the next sample",
                &format!("dashboard.samples > {samples}"),
                "true",
            )
            .await;
    }
    (published, last_id)
}

/// The dashboard (`GET /dashboard`): a wrong token is refused and
/// forgotten; the right one, typed into the form, is kept in session
/// storage only; the SVG charts draw and their figures follow connects,
/// publishes and a kick. The screenshot goes to `target/dashboard.png`
/// (the CI artifact), and to `docs/dashboard.png` (the README's) when
/// `SSEHUB_UPDATE_SCREENSHOT=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_draws_live_stats_that_follow_connects_and_publishes() {
    let _turn = BROWSER.lock().await;
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let config = ssehub_tokio::server::ServerConfig {
        stats_interval: Duration::from_millis(100),
        ..common::config()
    };
    let server = common::start(config).await;
    let addr = server.local_addr();

    let run = async {
        let mut browser = Cdp::launch(&binary, "about:blank").await;
        browser.attach_to_page().await;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": 1000, "height": 700, "deviceScaleFactor": 1, "mobile": false }),
                true,
            )
            .await;
        browser.open(&format!("http://{addr}/dashboard")).await;
        browser
            .wait_for(
                "the token form",
                "window.dashboard && !document.getElementById('login').hidden",
                "true",
            )
            .await;
        let submit = |token: &str| {
            format!(
                "document.getElementById('token').value = {token:?}; \
                 document.getElementById('login').requestSubmit(); true"
            )
        };

        // A wrong token: 403, back to the form, nothing kept.
        browser.eval(&submit("wrong")).await;
        let refused = browser
            .wait_for(
                "the refusal",
                "document.getElementById('login-error').textContent !== '' && !document.getElementById('login').hidden",
                "[dashboard.error, sessionStorage.getItem('ssehub.adminToken'), document.getElementById('login-error').textContent]",
            )
            .await;
        assert_eq!(refused[0], json!({"kind": "fatal-status", "status": 403}));
        assert_eq!(refused[1], Value::Null);

        // The right one: live, kept for this tab only, charts drawn.
        browser.eval(&submit(common::TOKEN)).await;
        let first = browser
            .wait_for(
                "the first stats",
                "dashboard.samples >= 1 && dashboard.state === 'live'",
                "dashboard.last",
            )
            .await;
        assert_eq!(first["connections"], json!(1), "{first}");
        assert_eq!(
            browser
                .eval("[sessionStorage.getItem('ssehub.adminToken'), localStorage.length]")
                .await,
            json!([common::TOKEN, 0])
        );
        assert_eq!(
            browser
                .eval("document.querySelectorAll('#chart-connections polyline[data-last=\"1\"]').length")
                .await,
            json!(1)
        );

        // Connects: the clients count and the top topics follow.
        let (news, news_id) = common::subscribe(addr, "/events?topic=news", "").await;
        let (_news2, _) = common::subscribe(addr, "/events?topic=news&topic=sport", "").await;
        let (_sport, _) = common::subscribe(addr, "/events?topic=sport", "").await;
        let (_weather, _) = common::subscribe(addr, "/events?topic=weather", "").await;
        let drawn = browser
            .wait_for(
                "the connects",
                "document.getElementById('connections').textContent === '5' \
                 && document.querySelectorAll('#chart-topics rect').length === 3",
                "[...document.querySelectorAll('#chart-topics rect')].map(r => [r.dataset.name, r.dataset.value])",
            )
            .await;
        assert_eq!(
            drawn,
            json!([["news", "2"], ["sport", "2"], ["weather", "1"]])
        );

        // Publishes, spread over samples: totals, rates and the rate chart.
        let (published, last_id) = publish_rounds(&mut browser, addr, 0..12).await;
        let shown = browser
            .wait_for(
                "the publishes",
                &format!("document.getElementById('published-total').textContent === '{published}'"),
                "[dashboard.history.publishes.some(r => r > 0), document.querySelectorAll('#chart-rates polyline').length]",
            )
            .await;
        assert_eq!(shown, json!([true, 2]));

        // A kick: a close by reason, drawn.
        kick(addr, &news_id, false).await;
        drop(news);
        let kicked = browser
            .wait_for(
                "the kick",
                "document.querySelector('#chart-closes rect[data-name=\"kicked\"]')",
                "document.querySelector('#chart-closes rect[data-name=\"kicked\"]').dataset.value",
            )
            .await;
        assert_eq!(kicked, json!("1"));
        browser
            .wait_for(
                "the connections after the kick",
                "document.getElementById('connections').textContent === '4'",
                "true",
            )
            .await;

        // A reconnect with Last-Event-ID: a replay hit.
        let (_back, _) = common::subscribe(
            addr,
            "/events?topic=news",
            &format!("Last-Event-ID: {last_id}\r\n"),
        )
        .await;
        browser
            .wait_for(
                "the replay hit",
                "document.getElementById('replay-hits').textContent === '1' \
                 && document.getElementById('connections').textContent === '5'",
                "true",
            )
            .await;

        // Traffic up to the screenshot, so the picture shows rates.
        publish_rounds(&mut browser, addr, 12..24).await;
        assert!(
            browser
                .eval("dashboard.last.publishes_per_second")
                .await
                .as_f64()
                .unwrap()
                > 0.0
        );

        let shot = browser
            .call("Page.captureScreenshot", json!({ "format": "png" }), true)
            .await;
        let png = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            shot["data"].as_str().expect("image data"),
        )
        .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("dashboard.png"), &png).unwrap();
        if std::env::var_os("SSEHUB_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
            std::fs::write(root.join("docs/dashboard.png"), &png).unwrap();
        }
        browser.close().await;
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test took over 90 s");
}

/// The dashboard of a clustered node lists every live node (from the
/// presence in Redis), its own in bold, with a bar per node; the figures
/// follow a connect on another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clustered_dashboard_shows_every_node() {
    let _turn = BROWSER.lock().await;
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let redis = common::redis_server::RedisServer::start();
    let mut config = common::cluster::config_for(&redis.url(), "dash");
    config.stats_interval = Duration::from_millis(100);
    let dash = common::start(config).await;
    common::cluster::wait_up(&dash).await;
    let other = common::cluster::node(&redis.url(), "other").await;
    let addr = dash.local_addr();

    let run = async {
        let mut browser = browse(&binary, &format!("http://{addr}/dashboard")).await;
        browser
            .wait_for(
                "the token form",
                "window.dashboard && !document.getElementById('login').hidden",
                "true",
            )
            .await;
        browser
            .eval(&format!(
                "document.getElementById('token').value = {:?}; \
                 document.getElementById('login').requestSubmit(); true",
                common::TOKEN
            ))
            .await;
        let rows = "[...document.querySelectorAll('#nodes tr')].map(tr => \
                    [tr.className, ...[...tr.cells].map(td => td.textContent)])";
        // dash: the dashboard itself (its topic is not counted); other:
        // nobody yet.
        let want = json!([
            ["self", "dash", "1", "0", "0"],
            ["", "other", "0", "0", "0"]
        ]);
        let shown = browser
            .wait_for(
                "both nodes",
                &format!("JSON.stringify({rows}) === {:?}", want.to_string()),
                rows,
            )
            .await;
        assert_eq!(shown, want);
        let (_on_other, _) =
            common::subscribe(other.local_addr(), "/events?topic=news&topic=sport", "").await;
        let shown = browser
            .wait_for(
                "the connect on the other node",
                "document.querySelector('#nodes tr[data-node=\"other\"]').cells[1].textContent === '1'",
                &format!(
                    "[{rows}, [...document.querySelectorAll('#chart-nodes rect')].map(r => [r.dataset.name, r.dataset.value]), \
                     document.getElementById('chart-nodes').hasAttribute('hidden')]"
                ),
            )
            .await;
        assert_eq!(
            shown,
            json!([
                [
                    ["self", "dash", "1", "0", "0"],
                    ["", "other", "1", "2", "2"]
                ],
                [["dash", "1"], ["other", "1"]],
                false
            ])
        );
        browser.close().await;
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test took over 90 s");
}
