//! The axum path frees a stalled reader's socket, as the `ssehub` server
//! does (hardening issue, item 7): under `ssehub_tokio::axum::serve` with a
//! `TrackedListener`, a reader that stops is closed by the hub and its
//! connection dropped by the write timeout, so the peer sees the end of
//! the connection. Under plain `axum::serve` it stayed open forever.
//!
//! Real time with short timeouts; the test waits on the events (the hub's
//! close, the tracker's failure, the peer's EOF), never sleeps.

#![cfg(feature = "axum")]

mod common;

use axum::extract::ConnectInfo;
use axum::Router;
use common::{wait_until, Raw};
use ssehub_core::codec::Event;
use ssehub_core::{CloseReason, Hub, HubConfig};
use ssehub_tokio::axum::{SseConnectInfo, TrackedListener};
use ssehub_tokio::{Driver, SseEndpoint, WriteTracker};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const STALL: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves the hub's endpoint with `ssehub_tokio::axum::serve`; every
/// request's write tracker is recorded in `trackers`, so the test can wait
/// for the write timeout to fire.
async fn serve(hub: &Hub, trackers: Arc<Mutex<Vec<WriteTracker>>>) -> SocketAddr {
    let app: Router = ssehub_tokio::axum::routes("/events", SseEndpoint::new(hub.clone())).layer(
        axum::middleware::map_request(move |request: axum::extract::Request| {
            let trackers = Arc::clone(&trackers);
            async move {
                if let Some(ConnectInfo(info)) =
                    request.extensions().get::<ConnectInfo<SseConnectInfo>>()
                {
                    trackers.lock().unwrap().push(info.tracker.clone());
                }
                request
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = TrackedListener::new(listener).with_write_timeout(Some(WRITE_TIMEOUT));
    tokio::spawn(async move {
        ssehub_tokio::axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// Opens a stream from a socket with a small receive buffer, then never
/// reads again; returns it with its client id.
async fn stalled_reader(addr: SocketAddr, topic: &str) -> Raw {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut raw = Raw::from_stream(socket.connect(addr).await.unwrap());
    raw.send(&format!(
        "GET /events?topic={topic} HTTP/1.1\r\nHost: t\r\n\r\n"
    ))
    .await;
    let head = raw.head().await;
    assert_eq!(head.status, 200);
    raw
}

#[tokio::test]
async fn a_reader_that_stops_is_closed_and_its_socket_freed() {
    let hub = Hub::new(
        HubConfig {
            queue_max_frames: 1 << 20,
            queue_max_bytes: 1 << 30,
            write_stall_timeout: Some(STALL),
            ..HubConfig::default()
        },
        ssehub_tokio::now(),
    );
    let driver = Driver::spawn(hub.clone(), Duration::from_millis(100));
    let trackers = Arc::default();
    let addr = serve(&hub, Arc::clone(&trackers)).await;
    let mut stalled = stalled_reader(addr, "big").await;

    // Far more than the socket buffers and hyper's hold: the writer stalls.
    let start = Instant::now();
    let event = Event::new("y".repeat(256 * 1024));
    for _ in 0..64 {
        hub.publish("big", &event).unwrap();
        tokio::task::yield_now().await;
    }
    wait_until("the hub closes the stalled client", || hub.is_empty()).await;
    // The hub's stall timeout (shorter than the write timeout) closed it.
    let metrics = hub.metrics();
    assert_eq!(
        metrics.closes_for(CloseReason::WriteStalled),
        1,
        "write error: {}, gone: {}",
        metrics.closes_for(CloseReason::WriteError),
        metrics.closes_for(CloseReason::ClientGone)
    );

    // hyper, blocked on the full socket, never polls the closed body again;
    // the write timeout fails the pending write and hyper drops the
    // connection. (Under plain `axum::serve`, or without a write timeout,
    // this never happens: the connection stays ESTABLISHED.)
    let tracker = trackers.lock().unwrap()[0].clone();
    wait_until("the write timeout drops the connection", || {
        tracker.failed()
    })
    .await;
    let freed_after = start.elapsed();
    // The peer sees the end of the connection: what the kernel still held,
    // then EOF (or a reset), never a stream that stays open.
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            match stalled.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    let total = drained.expect("the peer never saw the connection end");
    assert!(total < 64 * 256 * 1024, "the peer did not get everything");
    // Within the stall and write timeouts, with room for a busy machine.
    assert!(
        freed_after < STALL + WRITE_TIMEOUT + Duration::from_secs(10),
        "{freed_after:?}"
    );
    assert!(hub.is_empty());
    hub.check_invariants().unwrap();
    driver.stop().await;
}

/// The connect info reaches the endpoint: the per-IP limit sees the peer,
/// and a healthy reader is served normally.
#[tokio::test]
async fn serve_attaches_the_peer_and_the_write_tracker() {
    let hub = Hub::new(
        HubConfig {
            max_clients_per_peer: 1,
            ..HubConfig::default()
        },
        ssehub_tokio::now(),
    );
    let trackers = Arc::default();
    let addr = serve(&hub, Arc::clone(&trackers)).await;
    let (mut raw, _) = common::subscribe(addr, "/events?topic=ax", "").await;
    let report = hub.publish("ax", &Event::new("via axum")).unwrap();
    assert_eq!(
        raw.frame().await.unwrap(),
        format!("id: {}\ndata: via axum\n\n", report.id)
    );
    let (_second, head) = common::open(addr, "/events?topic=ax", "").await;
    assert_eq!(head.status, 503, "one client per IP: the peer was known");
    assert_eq!(
        trackers.lock().unwrap().len(),
        2,
        "the tracker reached the request"
    );
    drop(raw);
    wait_until("the client is gone", || hub.is_empty()).await;
    // The type is nameable by users who call `axum::serve` themselves.
    let _: fn(SseConnectInfo) -> SocketAddr = |info| info.peer;
}
