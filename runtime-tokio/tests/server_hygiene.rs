//! Connection hygiene of the hub server (SPEC §7 Hardening): connections
//! that never send a complete request head are closed within the
//! request-head timeout counted from accept (silence, a partial HTTP/1
//! head, an HTTP/2 preface with or without SETTINGS, `PRI` alone), idle
//! HTTP/2 connections are pinged and closed, a live stream outlives every
//! such bound, and the connection cap evicts silent connections before it
//! refuses anyone. `/healthz` answers throughout.
//!
//! Timeouts are short and real; every wait is for an event (EOF, a frame, a
//! status) under a generous upper bound. Nothing sleeps.

mod common;

use common::{open, request};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEAD_TIMEOUT: Duration = Duration::from_millis(700);
/// How long any expected event may take at most on a loaded machine.
const BOUND: Duration = Duration::from_secs(20);
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
const H2_SETTINGS_ACK: &[u8] = &[0, 0, 0, 4, 1, 0, 0, 0, 0];

fn hygienic_config() -> ssehub_tokio::server::ServerConfig {
    let mut config = common::config();
    config.request_head_timeout = Some(HEAD_TIMEOUT);
    config
}

/// Reads (and discards) until the server closes the connection; returns
/// how long after `since` that was.
async fn wait_closed(stream: &mut TcpStream, since: Instant) -> Duration {
    let closed = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection for {BOUND:?}"
    );
    since.elapsed()
}

async fn healthz(addr: SocketAddr) -> u16 {
    let answered = tokio::time::timeout(BOUND, request(addr, "GET", "/healthz", &[], "")).await;
    answered.expect("/healthz did not answer").0
}

/// Opens a connection, sends `prefix`, and checks that it is closed no
/// sooner than the head timeout and within the bound, while `/healthz`
/// answers.
async fn closed_at_the_head_timeout(prefix: &[u8]) {
    let server = common::start(hygienic_config()).await;
    let addr = server.local_addr();
    let connected = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(prefix).await.unwrap();
    assert_eq!(healthz(addr).await, 200);
    let after = wait_closed(&mut stream, connected).await;
    assert!(
        after >= HEAD_TIMEOUT,
        "closed after {after:?}, before the head timeout"
    );
    assert_eq!(healthz(addr).await, 200);
    common::wait_until("the connection is no longer counted", || {
        server.open_connections() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tcp_connection_is_closed_at_the_request_head_timeout() {
    closed_at_the_head_timeout(b"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_http1_head_is_closed_at_the_request_head_timeout() {
    closed_at_the_head_timeout(b"GET /healthz HTTP/1.1\r\nHost: te").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_preface_and_settings_without_a_request_is_closed_at_the_head_timeout() {
    closed_at_the_head_timeout(&[H2_PREFACE, H2_SETTINGS].concat()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pri_alone_is_closed_at_the_request_head_timeout() {
    closed_at_the_head_timeout(b"PRI").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_outlives_the_head_and_idle_timeouts() {
    let mut config = hygienic_config();
    config.connection_idle_timeout = Some(HEAD_TIMEOUT);
    // Longer than both bounds: the heartbeat shows the stream survived them.
    config.hub.heartbeat_interval = Some(HEAD_TIMEOUT * 3);
    let server = common::start(config).await;
    let opened = Instant::now();
    let (mut raw, head) = open(server.local_addr(), "/events?topic=alive", "").await;
    assert_eq!(head.status, 200);
    let heartbeat = tokio::time::timeout(BOUND, raw.frame_where(|f| f.starts_with(':')))
        .await
        .expect("no heartbeat");
    assert!(opened.elapsed() >= HEAD_TIMEOUT * 2, "{heartbeat:?}");
}

/// An HTTP/2 client (hyper) over cleartext with prior knowledge.
async fn h2_client(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, driver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_without_streams_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(500);
    let mut config = hygienic_config();
    config.connection_idle_timeout = Some(idle);
    let server = common::start(config).await;
    let (mut sender, driver) = h2_client(server.local_addr()).await;
    // Before the request: the server's idle timer starts after it.
    let sent = Instant::now();
    let response = sender
        .send_request(
            http::Request::get("http://test/healthz")
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    // The client keeps its end open; the server closes (GOAWAY) when idle.
    tokio::time::timeout(BOUND, driver)
        .await
        .expect("the idle HTTP/2 connection stayed open")
        .unwrap();
    assert!(sent.elapsed() >= idle, "{:?}", sent.elapsed());
    assert!(sender.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_are_pinged() {
    let mut config = common::config();
    config.h2_keep_alive_interval = Some(Duration::from_millis(200));
    let server = common::start(config).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(&[H2_PREFACE, H2_SETTINGS].concat())
        .await
        .unwrap();
    let pinged = tokio::time::timeout(BOUND, async {
        loop {
            let mut header = [0u8; 9];
            stream.read_exact(&mut header).await.unwrap();
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await.unwrap();
            match (header[3], header[4] & 1) {
                // The server's SETTINGS: acknowledge them.
                (4, 0) => stream.write_all(H2_SETTINGS_ACK).await.unwrap(),
                // A PING that is not an ACK.
                (6, 0) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(pinged.is_ok(), "no PING from the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_oldest_silent_connection_makes_room() {
    let mut config = common::config();
    config.max_connections = Some(4);
    // Long: only eviction can close the silent ones during the test.
    config.request_head_timeout = Some(Duration::from_secs(60));
    let server = common::start(config).await;
    let addr = server.local_addr();
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    common::wait_until("the silent connections are accepted", || {
        server.open_connections() == 4
    })
    .await;
    let started = Instant::now();
    // The request takes the place of the oldest silent connection.
    assert_eq!(healthz(addr).await, 200);
    wait_closed(&mut silent[0], started).await;
    assert!(started.elapsed() < Duration::from_secs(60));
    // The younger silent ones are still held, and room is made again.
    common::wait_until("the evicted and the answered connections are gone", || {
        server.open_connections() == 3
    })
    .await;
    silent.push(TcpStream::connect(addr).await.unwrap());
    assert_eq!(healthz(addr).await, 200);
    wait_closed(&mut silent[1], started).await;
    for younger in &silent[2..] {
        let mut byte = [0u8; 1];
        assert!(
            younger.try_read(&mut byte).is_err(),
            "a younger silent connection was closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_with_every_connection_busy_new_ones_are_refused() {
    let mut config = common::config();
    config.max_connections = Some(2);
    let server = common::start(config).await;
    let addr = server.local_addr();
    let (_a, head_a) = open(addr, "/events?topic=busy", "").await;
    let (_b, head_b) = open(addr, "/events?topic=busy", "").await;
    assert_eq!((head_a.status, head_b.status), (200, 200));
    // Refused at accept: closed without an answer.
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let _ = refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(BOUND, refused.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the refused connection was held");
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert_eq!(server.open_connections(), 2);
}
