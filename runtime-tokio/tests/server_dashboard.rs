//! The dashboard routes over loopback: `GET /dashboard` (the page) and
//! `GET /dashboard/stream` (the hub's own stats as SSE): the admin token
//! (401/403), the reserved stats topic (refused by `/events` and
//! `/publish`), the JSON shape of a stats event, and figures that follow a
//! connect, a publish, a kick and a shutdown. Waiting is on the next stats
//! events (a short `stats_interval`), never a sleep.

mod common;

use common::{open, publish, request, subscribe, Raw, TOKEN};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

fn config() -> ssehub_tokio::server::ServerConfig {
    ssehub_tokio::server::ServerConfig {
        stats_interval: Duration::from_millis(40),
        ..common::config()
    }
}

/// Opens the stats stream with the admin token; returns it after the
/// welcome event.
async fn stats_stream(addr: SocketAddr) -> Raw {
    let (mut raw, head) = open(
        addr,
        "/dashboard/stream",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
    )
    .await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let welcome = raw.frame().await.expect("welcome");
    assert!(welcome.contains("event: welcome"), "{welcome:?}");
    raw
}

/// The next stats event's JSON.
async fn next_stats(raw: &mut Raw) -> Value {
    let frame = raw.frame_where(|f| f.contains("event: stats\n")).await;
    let data = frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data in {frame:?}"));
    serde_json::from_str(data).unwrap_or_else(|e| panic!("not JSON ({e}): {data:?}"))
}

/// Stats events until one satisfies `done` (bounded).
async fn stats_until(raw: &mut Raw, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let stats = next_stats(raw).await;
            if done(&stats) {
                return stats;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting until {what}"))
}

#[tokio::test]
async fn the_page_is_served_and_the_stream_needs_the_admin_token() {
    let server = common::start(config()).await;
    let addr = server.local_addr();

    let (status, head, body) = request(addr, "GET", "/dashboard", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(body.contains("/dashboard/stream") && body.contains("/ssehub.js"));
    assert!(body.contains("sessionStorage") && !body.contains("localStorage"));
    assert!(!body.contains("https://"), "no external resources");

    let (status, _, body) = request(addr, "GET", "/dashboard/stream", &[], "").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, _, body) = request(
        addr,
        "GET",
        "/dashboard/stream",
        &[("Authorization", "Bearer wrong")],
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = request(addr, "POST", "/dashboard/stream", &[], "").await;
    assert_eq!(status, 405);
    assert_eq!(server.hub().metrics().clients_reserved, 0);
    assert_eq!(server.hub().metrics().clients_active, 0);

    // The stats topic is the hub's: not through /events, even as admin,
    // and nobody publishes to it.
    let auth = format!("Bearer {TOKEN}");
    for path in [
        "/events?topic=%24ssehub%2Fstats",
        "/events?topic=news&topic=$ssehub/anything",
    ] {
        let (status, _, body) = request(addr, "GET", path, &[("Authorization", &auth)], "").await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, body) = publish(addr, r#"{"topic":"$ssehub/stats","data":"fake"}"#).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(server.hub().metrics().events_published, 0);
}

#[tokio::test]
async fn a_stats_event_has_every_figure() {
    let server = common::start(config()).await;
    let mut raw = stats_stream(server.local_addr()).await;
    let stats = next_stats(&mut raw).await;
    let object = stats.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "at_ms",
            "closes",
            "connections",
            "dashboards",
            "delivered_total",
            "deliveries_per_second",
            "interval_ms",
            "node",
            "published_total",
            "publishes_per_second",
            "replay",
            "top_topics",
            "topics"
        ]
    );
    assert!(!stats["node"].as_str().expect("node").is_empty());
    assert_eq!(stats["connections"], 1, "the dashboard itself: {stats}");
    assert_eq!(stats["dashboards"], 1, "{stats}");
    assert_eq!(stats["published_total"], 0, "its own events not counted");
    assert_eq!(stats["publishes_per_second"], 0.0);
    assert!(stats["deliveries_per_second"].is_f64());
    assert!(stats["interval_ms"].as_u64().expect("interval") >= 1);
    assert_eq!(stats["replay"], serde_json::json!({"hits": 0, "resets": 0}));
    assert_eq!(stats["topics"], 0, "the stats topic is not counted");
    assert_eq!(stats["top_topics"], serde_json::json!([]));
    let closes = stats["closes"].as_object().expect("closes");
    assert!(closes.contains_key("shutdown") && closes.contains_key("slow_consumer"));
    assert!(closes.values().all(|n| n == 0), "{stats}");
    assert_eq!(closes["kicked"], 0);
}

#[tokio::test]
async fn the_figures_follow_connects_publishes_and_kicks() {
    let server = common::start(config()).await;
    let addr = server.local_addr();
    let mut stats = stats_stream(addr).await;
    let first = next_stats(&mut stats).await;
    assert_eq!(first["connections"], 1);

    // A connect: one more client, its topic on top.
    let (mut news, news_id) = subscribe(addr, "/events?topic=news", "").await;
    let (_quiet, _) = subscribe(addr, "/events?topic=quiet&topic=news", "").await;
    let seen = stats_until(&mut stats, "two clients", |s| s["connections"] == 3).await;
    assert_eq!(seen["topics"], 2, "{seen}");
    assert_eq!(seen["top_topics"][0]["topic"], "news", "{seen}");
    assert_eq!(seen["top_topics"][0]["subscribers"], 2, "{seen}");
    assert_eq!(seen["top_topics"][1]["topic"], "quiet", "{seen}");
    assert_eq!(seen["top_topics"][1]["subscribers"], 1, "{seen}");
    let delivered_before = seen["delivered_total"].as_u64().expect("a count");

    // A publish: counted once, with a rate over the interval it fell in,
    // and its two deliveries.
    let (status, body) = publish(addr, r#"{"topic":"news","data":"hello"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(news.frame_where(|f| f.contains("hello")).await.len() > 1);
    let seen = stats_until(&mut stats, "the publish", |s| s["published_total"] == 1).await;
    assert!(
        seen["publishes_per_second"].as_f64().expect("a rate") > 0.0,
        "{seen}"
    );
    let seen = stats_until(&mut stats, "its deliveries", |s| {
        s["delivered_total"].as_u64().expect("a count") >= delivered_before + 2
    })
    .await;
    assert_eq!(seen["published_total"], 1, "{seen}");
    // The next interval has no publish: the rate falls back to zero.
    let seen = stats_until(&mut stats, "a quiet interval", |s| {
        s["publishes_per_second"] == 0.0
    })
    .await;
    assert_eq!(seen["published_total"], 1, "{seen}");

    // A kick: a close by reason, one client fewer.
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = request(
        addr,
        "DELETE",
        &format!("/clients/{news_id}"),
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen = stats_until(&mut stats, "the kick", |s| s["closes"]["kicked"] == 1).await;
    assert_eq!(seen["connections"], 2, "{seen}");
    assert_eq!(seen["top_topics"][0]["subscribers"], 1, "{seen}");
}

#[tokio::test]
async fn a_dashboard_stream_ends_with_the_shutdown_event() {
    let server = common::start(config()).await;
    let mut stats = stats_stream(server.local_addr()).await;
    next_stats(&mut stats).await;
    let summary = server.shutdown().await;
    assert_eq!(summary.streams_closed, 1);
    let mut last = None;
    while let Some(frame) = stats.frame().await {
        last = Some(frame);
    }
    let last = last.expect("a final frame");
    assert!(last.contains("event: shutdown"), "{last:?}");
}
