//! Helpers shared by the server tests: an in-process server on an
//! ephemeral port, a raw HTTP/1.1 client that reads exact bytes, and a
//! bounded wait on a condition (no sleeps).

#![allow(dead_code)]

pub mod child;
pub mod tls;

use ssehub_tokio::server::{Server, ServerConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TOKEN: &str = "test-token-0123";

/// A config for tests: port 0, a known token, no welcome jitter surprises.
///
/// Streams take the HTTP/1 fast path unless `SSEHUB_HTTP1_FAST_PATH=false`
/// (CI runs the tests both ways, so neither path can rot; the variable
/// reaches the `ssehub` children too).
pub fn config() -> ServerConfig {
    ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        token: TOKEN.to_owned(),
        http1_fast_path: fast_path(),
        ..ServerConfig::default()
    }
}

/// Whether this run serves streams on the HTTP/1 fast path (see
/// [`config`]).
pub fn fast_path() -> bool {
    std::env::var("SSEHUB_HTTP1_FAST_PATH").map_or(true, |v| v != "false")
}

pub async fn start(config: ServerConfig) -> Server {
    Server::start(config).await.expect("bind an ephemeral port")
}

/// Polls `condition` (yielding to the runtime between polls) until it
/// holds; fails after a generous bound. Never sleeps.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// An HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1.1 connection reading one response: head, then a body that
/// is de-chunked on the fly.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// De-chunked body bytes not yet consumed.
    body: Vec<u8>,
    chunked: bool,
    /// Bytes left in the current chunk (chunked) or body (content-length).
    remaining: Option<usize>,
    pub done: bool,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).await.expect("connect"))
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            body: Vec::new(),
            chunked: false,
            remaining: None,
            done: false,
        }
    }

    pub async fn send(&mut self, request: &str) {
        self.stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads the status line and headers.
    pub async fn head(&mut self) -> Head {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let text = String::from_utf8(self.buf[..end].to_vec()).expect("utf-8 head");
                self.buf.drain(..end + 4);
                let mut lines = text.split("\r\n");
                let status_line = lines.next().unwrap_or_default();
                let status = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let head = Head { status, headers };
                self.chunked = head
                    .header("transfer-encoding")
                    .is_some_and(|v| v.contains("chunked"));
                if !self.chunked {
                    self.remaining = head.header("content-length").and_then(|v| v.parse().ok());
                }
                return head;
            }
            assert!(self.fill().await, "connection closed before the head");
        }
    }

    /// Moves de-chunked body bytes from `buf` to `body`; returns false when
    /// more input is needed.
    fn decode(&mut self) -> bool {
        if self.done {
            return false;
        }
        if !self.chunked {
            let take = match self.remaining {
                Some(left) => left.min(self.buf.len()),
                None => self.buf.len(),
            };
            self.body.extend(self.buf.drain(..take));
            if let Some(left) = self.remaining.as_mut() {
                *left -= take;
                if *left == 0 {
                    self.done = true;
                }
            }
            return take > 0;
        }
        let mut progress = false;
        loop {
            match self.remaining {
                Some(0) => {
                    // CRLF after the chunk data.
                    if self.buf.len() < 2 {
                        return progress;
                    }
                    assert_eq!(&self.buf[..2], b"\r\n", "chunk not followed by CRLF");
                    self.buf.drain(..2);
                    self.remaining = None;
                }
                Some(left) => {
                    if self.buf.is_empty() {
                        return progress;
                    }
                    let take = left.min(self.buf.len());
                    self.body.extend(self.buf.drain(..take));
                    self.remaining = Some(left - take);
                    progress = true;
                }
                None => {
                    let Some(end) = find(&self.buf, b"\r\n") else {
                        return progress;
                    };
                    let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 2);
                    let size = usize::from_str_radix(line.trim(), 16)
                        .unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
                    if size == 0 {
                        self.done = true;
                        return true;
                    }
                    self.remaining = Some(size);
                }
            }
        }
    }

    /// The next SSE frame (up to and including its blank line), or `None`
    /// at the end of the body or connection.
    pub async fn frame(&mut self) -> Option<String> {
        loop {
            if let Some(end) = find(&self.body, b"\n\n") {
                let frame: Vec<u8> = self.body.drain(..end + 2).collect();
                return Some(String::from_utf8(frame).expect("utf-8 frame"));
            }
            if !self.decode() && (self.done || !self.fill().await) {
                self.done = true;
                return None;
            }
        }
    }

    /// Frames until one satisfies `pred` (which is returned), failing at the
    /// end of the stream.
    pub async fn frame_where(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let frame = self.frame().await.expect("stream ended");
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// The whole remaining body (for short responses).
    pub async fn body(&mut self) -> String {
        loop {
            self.decode();
            if self.done || !self.fill().await {
                break;
            }
        }
        self.decode();
        String::from_utf8(std::mem::take(&mut self.body)).expect("utf-8 body")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Opens `GET path` with extra header lines (each ending in CRLF) and
/// reads the head.
pub async fn open(addr: SocketAddr, path: &str, extra: &str) -> (Raw, Head) {
    let mut raw = Raw::connect(addr).await;
    raw.send(&format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n{extra}\r\n"
    ))
    .await;
    let head = raw.head().await;
    (raw, head)
}

/// Opens a stream and reads the welcome event (with the `retry:` hint in
/// its block); returns the connection and the client id.
pub async fn subscribe(addr: SocketAddr, path: &str, extra: &str) -> (Raw, String) {
    let (mut raw, head) = open(addr, path, extra).await;
    assert_eq!(head.status, 200, "{head:?}");
    let id = head
        .header("client-id")
        .expect("Client-Id header")
        .to_owned();
    let welcome = raw.frame().await.expect("welcome");
    let (retry, rest) = welcome.split_once('\n').expect("a line");
    assert!(
        retry
            .strip_prefix("retry: ")
            .is_some_and(|ms| ms.parse::<u64>().is_ok()),
        "{welcome:?}"
    );
    assert_eq!(
        rest,
        format!("event: welcome\ndata: {{\"clientId\":\"{id}\"}}\n\n")
    );
    (raw, id)
}

/// A one-shot request with `Connection: close`; returns status, head and
/// body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Head, String) {
    let mut raw = Raw::connect(addr).await;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    raw.send(&req).await;
    let head = raw.head().await;
    let body = raw.body().await;
    (head.status, head, body)
}

/// `POST /publish` with the test token; returns status and body.
pub async fn publish(addr: SocketAddr, json: &str) -> (u16, String) {
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = request(
        addr,
        "POST",
        "/publish",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        json,
    )
    .await;
    (status, body)
}

/// The `id:` line of a frame.
pub fn event_id(frame: &str) -> String {
    frame
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("no id in {frame:?}"))
        .to_owned()
}
