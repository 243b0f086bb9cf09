//! The hub server over TLS (rustls), with certificates made at test time:
//! streams on HTTP/1.1 and on HTTP/2 (chosen by ALPN), a stalled handshake
//! closed at the request-head timeout, and certificate reloads (the API,
//! and SIGHUP to the binary) that reach new connections while an open
//! stream keeps receiving.

mod common;

use common::child::ChildHub;
use common::tls::{self as t, TestCert};
use ssehub_core::codec::Event;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOUND: Duration = Duration::from_secs(20);

async fn tls_server(cert: &TestCert) -> ssehub_tokio::server::Server {
    let mut config = common::config();
    config.tls = Some(cert.server());
    config.request_head_timeout = Some(Duration::from_millis(700));
    common::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_tls_on_http1() {
    let dir = t::temp_dir("tls-h1");
    let cert = TestCert::new(&dir, "hub");
    let server = tls_server(&cert).await;
    let stream = t::connect(
        server.local_addr(),
        t::client_config(&[&cert.der], &[b"http/1.1"]),
    )
    .await;
    assert_eq!(t::negotiated(&stream).0.as_deref(), Some(&b"http/1.1"[..]));
    let mut sender = t::http1(stream).await;
    let response = sender
        .send_request(t::request("GET", "/events?topic=tls", ""))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);
    let mut body = response.into_body();
    t::read_until(&mut body, "event: welcome").await;
    server
        .hub()
        .publish("tls", &Event::new("over tls"))
        .unwrap();
    t::read_until(&mut body, "data: over tls\n\n").await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_tls_on_http2_share_one_connection() {
    let dir = t::temp_dir("tls-h2");
    let cert = TestCert::new(&dir, "hub");
    let server = tls_server(&cert).await;
    let stream = t::connect(
        server.local_addr(),
        t::client_config(&[&cert.der], &[b"h2", b"http/1.1"]),
    )
    .await;
    assert_eq!(t::negotiated(&stream).0.as_deref(), Some(&b"h2"[..]));
    let mut sender = t::http2(stream).await;
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let response = sender
            .send_request(t::request("GET", "/events?topic=tls2", ""))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let mut body = response.into_body();
        t::read_until(&mut body, "event: welcome").await;
        bodies.push(body);
    }
    assert_eq!(server.open_connections(), 1);
    let published = server.hub().publish("tls2", &Event::new("to all")).unwrap();
    assert_eq!(published.delivered, 3);
    for body in &mut bodies {
        t::read_until(body, "data: to all\n\n").await;
    }
    // Publishing over the same TLS connection works too.
    let response = sender
        .send_request(t::request(
            "POST",
            "/publish",
            r#"{"topic":"tls2","data":"posted"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for body in &mut bodies {
        t::read_until(body, "data: posted\n\n").await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_closed_at_the_request_head_timeout() {
    let dir = t::temp_dir("tls-stall");
    let cert = TestCert::new(&dir, "hub");
    let server = tls_server(&cert).await;
    let addr = server.local_addr();
    // Silence, and a ClientHello record header that promises bytes never sent.
    for prefix in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let connected = Instant::now();
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(prefix).await.unwrap();
        // A real client is served meanwhile.
        let mut sender =
            t::http1(t::connect(addr, t::client_config(&[&cert.der], &[])).await).await;
        let health = sender
            .send_request(t::request("GET", "/healthz", ""))
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(BOUND, stalled.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a stalled handshake was held for {BOUND:?}");
        assert!(connected.elapsed() >= Duration::from_millis(700));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reaches_new_connections_while_an_open_stream_keeps_receiving() {
    let dir = t::temp_dir("tls-reload");
    let first = TestCert::new(&dir, "hub");
    let second = TestCert::new(&dir, "next");
    let mut config = common::config();
    let tls = first.server();
    config.tls = Some(tls.clone());
    let server = common::start(config).await;
    let addr = server.local_addr();
    let trust = || t::client_config(&[&first.der, &second.der], &[b"h2"]);

    let before = t::connect(addr, trust()).await;
    assert_eq!(t::negotiated(&before).1, first.der);
    let mut old = t::http2(before).await;
    let response = old
        .send_request(t::request("GET", "/events?topic=reload", ""))
        .await
        .unwrap();
    let mut open_stream = response.into_body();
    t::read_until(&mut open_stream, "event: welcome").await;

    first.overwrite_with(&second);
    tls.reload().unwrap();
    let after = t::connect(addr, trust()).await;
    assert_eq!(t::negotiated(&after).1, second.der);

    server
        .hub()
        .publish("reload", &Event::new("still here"))
        .unwrap();
    t::read_until(&mut open_stream, "data: still here\n\n").await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_binary_s_certificate_without_dropping_streams() {
    let dir = t::temp_dir("tls-sighup");
    let first = TestCert::new(&dir, "hub");
    let second = TestCert::new(&dir, "next");
    let (cert, key) = (
        first.cert_path.to_str().unwrap().to_owned(),
        first.key_path.to_str().unwrap().to_owned(),
    );
    let hub = ChildHub::spawn(&[], &["--tls-cert", &cert, "--tls-key", &key]).await;
    let trust = || t::client_config(&[&first.der, &second.der], &[b"http/1.1"]);

    let before = t::connect(hub.addr, trust()).await;
    assert_eq!(t::negotiated(&before).1, first.der);
    let mut old = t::http1(before).await;
    let response = old
        .send_request(t::request("GET", "/events?topic=hup", ""))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut open_stream = response.into_body();
    t::read_until(&mut open_stream, "event: welcome").await;

    first.overwrite_with(&second);
    hub.signal(libc::SIGHUP);
    hub.wait_for_log("TLS certificate reloaded").await;
    let after = t::connect(hub.addr, trust()).await;
    assert_eq!(t::negotiated(&after).1, second.der);
    let mut publisher = t::http1(after).await;
    let published = publisher
        .send_request(t::request(
            "POST",
            "/publish",
            r#"{"topic":"hup","data":"after the reload"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    t::read_until(&mut open_stream, "data: after the reload\n\n").await;
    drop((old, open_stream, publisher));
    hub.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
