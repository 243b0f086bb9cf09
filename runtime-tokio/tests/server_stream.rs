//! The hub server's streams over real loopback sockets: exact bytes,
//! heartbeats (paused time), disconnects, replay and reset, slow readers,
//! churn, kicks, HTTP/2 and graceful shutdown. Nothing sleeps: tests wait
//! on the bytes they expect or on a hub condition.

mod common;

use common::{event_id, open, publish, request, subscribe, wait_until, Raw, TOKEN};
use ssehub_core::CloseReason;
use std::time::Duration;

#[tokio::test]
async fn stream_opens_with_headers_retry_hint_welcome_then_events_with_ids() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (mut raw, head) = open(addr, "/events?topic=news", "").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("cache-control"), Some("no-cache"));
    assert_eq!(head.header("x-accel-buffering"), Some("no"));
    let id = head.header("client-id").unwrap().to_owned();
    assert!(id.parse::<ssehub_core::ClientId>().is_ok(), "{id}");

    // The retry hint travels inside the welcome's block, never alone.
    assert_eq!(
        raw.frame().await.unwrap(),
        format!("retry: 3000\nevent: welcome\ndata: {{\"clientId\":\"{id}\"}}\n\n")
    );

    let (status, body) = publish(
        addr,
        r#"{"topic":"news","event":"headline","data":"hello\nworld"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["delivered"], 1);
    let published_id = answer["id"].as_str().unwrap().to_owned();
    assert_eq!(
        raw.frame().await.unwrap(),
        format!("id: {published_id}\nevent: headline\ndata: hello\ndata: world\n\n")
    );

    // Non-string data is sent as its JSON text; ids strictly increase.
    let (_, body) = publish(addr, r#"{"topic":"news","data":{"n":2}}"#).await;
    let second: serde_json::Value = serde_json::from_str(&body).unwrap();
    let second_id = second["id"].as_str().unwrap().to_owned();
    assert_eq!(
        raw.frame().await.unwrap(),
        format!("id: {second_id}\ndata: {{\"n\":2}}\n\n")
    );
    let seq = |id: &str| id.split_once('-').unwrap().1.parse::<u64>().unwrap();
    assert!(seq(&second_id) > seq(&published_id));
}

#[tokio::test(start_paused = true)]
async fn quiet_topic_gets_heartbeats_and_a_healthy_client_is_never_dropped_as_idle() {
    let mut config = common::config();
    config.hub.heartbeat_interval = Some(Duration::from_secs(5));
    config.hub.idle_timeout = Some(Duration::from_secs(12));
    let server = common::start(config).await;
    let (mut raw, id) = subscribe(server.local_addr(), "/events?topic=quiet", "").await;
    let id: ssehub_core::ClientId = id.parse().unwrap();

    let start = tokio::time::Instant::now();
    let mut last = start;
    for _ in 0..12 {
        assert_eq!(raw.frame().await.unwrap(), ":\n\n");
        let now = tokio::time::Instant::now();
        let gap = now - last;
        // Due after 5 s of silence; the driver wakes at least every second.
        assert!(gap >= Duration::from_secs(5), "{gap:?}");
        assert!(gap <= Duration::from_millis(6_100), "{gap:?}");
        last = now;
    }
    // A minute of virtual time, five idle timeouts' worth, and still alive:
    // the idle clock follows flushes, and heartbeats are flushed.
    assert!(last - start >= Duration::from_secs(60));
    assert!(server.hub().is_active(id));
    assert_eq!(
        server.hub().metrics().closes_for(CloseReason::IdleTimeout),
        0
    );
    assert!(server.hub().metrics().heartbeats >= 12);

    // Events still flow between heartbeats.
    let report = server
        .hub()
        .publish("quiet", &ssehub_core::codec::Event::new("late"))
        .unwrap();
    assert_eq!(
        raw.frame().await.unwrap(),
        format!("id: {}\ndata: late\n\n", report.id)
    );
    assert_eq!(raw.frame().await.unwrap(), ":\n\n");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_gone_at_once() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();
    let (mut a, _) = subscribe(addr, "/events?topic=t", "").await;
    let (b, b_id) = subscribe(addr, "/events?topic=t&topic=u", "").await;
    let (mut c, _) = subscribe(addr, "/events?topic=t", "").await;
    assert_eq!(hub.len(), 3);
    assert_eq!(hub.subscriber_count("t"), 3);

    drop(b);
    wait_until("the dropped client is closed", || hub.len() == 2).await;
    let metrics = hub.metrics();
    assert_eq!(metrics.clients_active, 2);
    assert_eq!(
        metrics.closes_for(CloseReason::ClientGone) + metrics.closes_for(CloseReason::WriteError),
        1
    );
    assert_eq!(hub.subscriber_count("t"), 2);
    assert_eq!(hub.subscriber_count("u"), 0);
    assert!(!hub.is_active(b_id.parse().unwrap()));
    hub.check_invariants().unwrap();

    // The others are unaffected.
    let (status, _) = publish(addr, r#"{"topic":"t","data":"still here"}"#).await;
    assert_eq!(status, 200);
    for raw in [&mut a, &mut c] {
        assert!(raw.frame().await.unwrap().ends_with("data: still here\n\n"));
    }
}

#[tokio::test]
async fn reconnect_with_last_event_id_replays_exactly_what_was_missed() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();
    let (mut raw, _) = subscribe(addr, "/events?topic=a&topic=b", "").await;
    publish(addr, r#"{"topic":"a","data":"1"}"#).await;
    publish(addr, r#"{"topic":"b","data":"2"}"#).await;
    raw.frame().await.unwrap();
    let seen = event_id(&raw.frame().await.unwrap());
    drop(raw);
    wait_until("the client is gone", || hub.is_empty()).await;

    // Missed while away: two on our topics, one elsewhere.
    let mut missed = Vec::new();
    for (topic, data) in [("b", "3"), ("elsewhere", "x"), ("a", "4")] {
        let (_, body) = publish(addr, &format!(r#"{{"topic":"{topic}","data":"{data}"}}"#)).await;
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if topic != "elsewhere" {
            missed.push(format!("id: {id}\ndata: {data}\n\n"));
        }
    }

    let (mut raw, _) = subscribe(
        addr,
        "/events?topic=a&topic=b",
        &format!("Last-Event-ID: {seen}\r\n"),
    )
    .await;
    assert_eq!(raw.frame().await.unwrap(), missed[0]);
    assert_eq!(raw.frame().await.unwrap(), missed[1]);
    // Then live, nothing duplicated in between.
    let (_, body) = publish(addr, r#"{"topic":"a","data":"live"}"#).await;
    let live = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        raw.frame().await.unwrap(),
        format!("id: {live}\ndata: live\n\n")
    );
    assert_eq!(hub.metrics().replay_hits, 1);
    assert_eq!(hub.metrics().replay_resets, 0);
}

#[tokio::test]
async fn last_event_id_query_parameter_replays_for_polyfills() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (_, body) = publish(addr, r#"{"topic":"p","data":"first"}"#).await;
    let first = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    publish(addr, r#"{"topic":"p","data":"second"}"#).await;
    let (mut raw, _) = subscribe(addr, &format!("/events?topic=p&lastEventId={first}"), "").await;
    assert!(raw.frame().await.unwrap().ends_with("data: second\n\n"));
    assert_eq!(server.hub().metrics().replay_hits, 1);
}

#[tokio::test]
async fn an_evicted_or_foreign_last_event_id_gets_the_reset_event() {
    let mut config = common::config();
    config.hub.replay_capacity = 2;
    let server = common::start(config).await;
    let addr = server.local_addr();
    let (_, body) = publish(addr, r#"{"topic":"r","data":"0"}"#).await;
    let oldest = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 1..=3 {
        publish(addr, &format!(r#"{{"topic":"r","data":"{n}"}}"#)).await;
    }
    for last in [oldest.as_str(), "1-1", "garbage"] {
        let (mut raw, _) = subscribe(
            addr,
            "/events?topic=r",
            &format!("Last-Event-ID: {last}\r\n"),
        )
        .await;
        let reset = raw.frame().await.unwrap();
        assert!(reset.contains("event: reset\n"), "{last}: {reset:?}");
        assert!(reset.starts_with("id: "), "{reset:?}");
    }
    assert_eq!(server.hub().metrics().replay_resets, 3);
}

#[tokio::test]
async fn a_slow_reader_is_closed_and_publishing_to_others_is_not_held_up() {
    let mut config = common::config();
    config.hub.queue_max_frames = 8;
    config.hub.queue_max_bytes = 1 << 20;
    let server = common::start(config).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();

    // The slow reader: a small receive window, and it never reads past the
    // welcome.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = Raw::from_stream(socket.connect(addr).await.unwrap());
    slow.send("GET /events?topic=firehose HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let slow_id: ssehub_core::ClientId = slow
        .head()
        .await
        .header("client-id")
        .unwrap()
        .parse()
        .unwrap();

    // The fast reader reads everything in its own task.
    let (mut fast, _) = subscribe(addr, "/events?topic=firehose", "").await;
    let fast_reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while let Some(frame) = fast.frame().await {
            if frame.contains("event: end") {
                break;
            }
            ids.push(event_id(&frame));
        }
        ids
    });

    let payload = "x".repeat(64 * 1024);
    let event = ssehub_core::codec::Event::new(payload);
    let mut published = Vec::new();
    for _ in 0..2_000 {
        let report = hub.publish("firehose", &event).unwrap();
        published.push(report.id.to_string());
        if !hub.is_active(slow_id) {
            break;
        }
        // Let the writers run between publishes (one-threaded runtime).
        tokio::task::yield_now().await;
    }
    assert!(!hub.is_active(slow_id), "the slow reader was never closed");
    let metrics = hub.metrics();
    assert_eq!(
        metrics.closes_for(CloseReason::SlowConsumer)
            + metrics.closes_for(CloseReason::WriteStalled),
        1
    );
    hub.publish(
        "firehose",
        &ssehub_core::codec::Event::new("").with_event("end"),
    )
    .unwrap();
    let received = fast_reader.await.unwrap();
    assert_eq!(
        received, published,
        "the fast reader got every event, in order"
    );
    drop(slow);
    wait_until("the slow reader's connection is gone", || hub.len() == 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_stops_with_a_roomy_queue_is_closed_as_write_stalled() {
    let mut config = common::config();
    config.hub.queue_max_frames = 1 << 20;
    config.hub.queue_max_bytes = 1 << 30;
    config.hub.write_stall_timeout = Some(Duration::from_secs(10));
    config.hub.heartbeat_interval = Some(Duration::from_secs(5));
    config.hub.idle_timeout = Some(Duration::from_secs(60));
    let server = common::start(config).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = Raw::from_stream(socket.connect(addr).await.unwrap());
    stalled
        .send("GET /events?topic=big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let id: ssehub_core::ClientId = stalled
        .head()
        .await
        .header("client-id")
        .unwrap()
        .parse()
        .unwrap();
    // Far more than the socket buffers and hyper's hold: the writer stalls.
    let event = ssehub_core::codec::Event::new("y".repeat(256 * 1024));
    for _ in 0..64 {
        hub.publish("big", &event).unwrap();
        tokio::task::yield_now().await;
    }
    let start = tokio::time::Instant::now();
    wait_for_close(&hub, id).await;
    assert!(tokio::time::Instant::now() - start >= Duration::from_secs(1));
    assert_eq!(hub.metrics().closes_for(CloseReason::WriteStalled), 1);
    assert_eq!(hub.metrics().closes_for(CloseReason::SlowConsumer), 0);
    // hyper, blocked on the full socket, would hold the connection forever;
    // the write timeout drops it.
    for _ in 0..600 {
        if server.open_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.open_connections(),
        0,
        "the stalled connection was dropped"
    );
    assert!(hub.is_empty());
    drop(stalled);
}

/// Lets paused time run (sleeping in virtual time) until `id` is closed.
async fn wait_for_close(hub: &ssehub_core::Hub, id: ssehub_core::ClientId) {
    for _ in 0..600 {
        if !hub.is_active(id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("client {id} was never closed");
}

#[tokio::test]
async fn a_thousand_connections_opened_and_dropped_in_random_order_leave_nothing() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let hub = server.hub().clone();
    let mut conns = Vec::with_capacity(1000);
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..1000 {
        let mut raw = Raw::connect(addr).await;
        raw.send(&format!(
            "GET /events?topic=churn-{}&topic=all HTTP/1.1\r\nHost: t\r\n\r\n",
            i % 7
        ))
        .await;
        // Every fifth connection is dropped before its response is read:
        // its close races the registration.
        if next() % 5 != 0 {
            assert_eq!(raw.head().await.status, 200);
        }
        conns.push(raw);
    }
    // Random order (Fisher–Yates), with publishes in between.
    for i in (1..conns.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        conns.swap(i, j);
    }
    let mut dropped = 0;
    while let Some(raw) = conns.pop() {
        drop(raw);
        dropped += 1;
        if dropped % 100 == 0 {
            let _ = hub.publish("all", &ssehub_core::codec::Event::new("tick"));
            tokio::task::yield_now().await;
        }
    }
    wait_until("every client is gone", || hub.is_empty()).await;
    let metrics = hub.metrics();
    assert_eq!(metrics.clients_active + metrics.clients_reserved, 0);
    assert_eq!(
        metrics.closes_for(CloseReason::ClientGone) + metrics.closes_for(CloseReason::WriteError),
        1000
    );
    assert_eq!(hub.subscriber_count("all"), 0);
    assert_eq!(hub.deadline_count(), 0);
    hub.check_invariants().unwrap();
}

/// Regression (issue 14, item 6): without a welcome, the stream used to
/// open with `retry: 3000` as a block of its own.
#[tokio::test(start_paused = true)]
async fn without_a_welcome_the_retry_hint_joins_the_first_event_not_a_heartbeat() {
    let mut config = common::config();
    config.sse.welcome = false;
    config.hub.heartbeat_interval = Some(Duration::from_secs(5));
    config.hub.idle_timeout = None;
    let server = common::start(config).await;
    let addr = server.local_addr();
    let (mut raw, head) = open(addr, "/events?topic=q", "").await;
    assert_eq!(head.status, 200);
    // A heartbeat comes first: the hint waits for an event.
    assert_eq!(raw.frame().await.unwrap(), ":\n\n");
    let (status, body) = publish(addr, r#"{"topic":"q","data":"first"}"#).await;
    assert_eq!(status, 200, "{body}");
    let first = raw.frame().await.unwrap();
    assert_eq!(
        first,
        format!("retry: 3000\nid: {}\ndata: first\n\n", event_id(&first))
    );
    let (_, body) = publish(addr, r#"{"topic":"q","data":"second"}"#).await;
    assert_eq!(status, 200, "{body}");
    let second = raw.frame().await.unwrap();
    assert_eq!(
        second,
        format!("id: {}\ndata: second\n\n", event_id(&second))
    );
}

#[tokio::test]
async fn a_fatal_kick_sends_the_fatal_event_then_ends_the_stream() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (mut raw, id) = subscribe(addr, "/events?topic=k", "").await;
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = request(
        addr,
        "DELETE",
        &format!("/clients/{id}?fatal=true"),
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        raw.frame().await.unwrap(),
        "event: fatal\ndata: {\"reason\":\"kicked\"}\n\n"
    );
    assert_eq!(raw.frame().await, None, "the stream ends after the kick");
    assert!(raw.done, "the response ended cleanly (last chunk)");
    assert_eq!(server.hub().metrics().closes_for(CloseReason::Kicked), 1);
    assert!(server.hub().is_empty());

    // A plain kick ends the stream without the event; a second is a 404.
    let (mut raw, id) = subscribe(addr, "/events?topic=k", "").await;
    let path = format!("/clients/{id}");
    let headers = [("Authorization", auth.as_str())];
    assert_eq!(request(addr, "DELETE", &path, &headers, "").await.0, 200);
    assert_eq!(raw.frame().await, None);
    assert_eq!(request(addr, "DELETE", &path, &headers, "").await.0, 404);
}

#[tokio::test]
async fn send_reaches_one_client_only() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (mut a, a_id) = subscribe(addr, "/events?topic=s", "").await;
    let (mut b, _) = subscribe(addr, "/events?topic=s", "").await;
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, _, body) = request(
        addr,
        "POST",
        &format!("/clients/{a_id}/send"),
        &headers,
        r#"{"event":"private","data":"for a"}"#,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"sent":true}"#));
    publish(addr, r#"{"topic":"s","data":"for all"}"#).await;
    assert_eq!(a.frame().await.unwrap(), "event: private\ndata: for a\n\n");
    assert!(a.frame().await.unwrap().ends_with("data: for all\n\n"));
    assert!(b.frame().await.unwrap().ends_with("data: for all\n\n"));
}

#[tokio::test]
async fn streams_work_over_http2() {
    use http_body_util::BodyExt;
    let server = common::start(common::config()).await;
    let stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get(format!("http://{}/events?topic=h2", server.local_addr()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let id = response.headers()["client-id"].to_str().unwrap().to_owned();
    let mut body = response.into_body();
    let mut text = String::new();
    let report = server
        .hub()
        .publish("h2", &ssehub_core::codec::Event::new("over h2"))
        .unwrap();
    let expected = format!(
        "retry: 3000\nevent: welcome\ndata: {{\"clientId\":\"{id}\"}}\n\nid: {}\ndata: over h2\n\n",
        report.id
    );
    while text.len() < expected.len() {
        let frame = body.frame().await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
    }
    assert_eq!(text, expected);
    drop(body);
    let hub = server.hub().clone();
    wait_until("the h2 stream's client is gone", || hub.is_empty()).await;
}

#[tokio::test]
async fn graceful_shutdown_delivers_the_final_event_to_every_client() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for i in 0..25 {
        clients.push(
            subscribe(addr, &format!("/events?topic=g{}", i % 3), "")
                .await
                .0,
        );
    }
    let hub = server.hub().clone();
    let summary = server.shutdown().await;
    assert_eq!(summary.streams_closed, 25);
    assert!(summary.drained_in_time);
    for raw in &mut clients {
        let last = raw.frame().await.expect("the final frame");
        let mut lines = last.lines();
        let retry: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("retry: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no retry hint in {last:?}"));
        assert!((1_000..=10_000).contains(&retry), "{retry}");
        assert_eq!(
            lines.collect::<Vec<_>>(),
            ["event: shutdown", "data: {\"reason\":\"shutdown\"}", ""]
        );
        assert_eq!(raw.frame().await, None, "then the stream ends");
    }
    assert!(hub.is_empty());
    assert_eq!(hub.metrics().closes_for(CloseReason::Shutdown), 25);
    // The listener is closed: nobody new gets in.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
