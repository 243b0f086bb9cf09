//! The presence routes over loopback, with real HTTP clients: counts and
//! client lists after concurrent connects and disconnects, sorting and
//! cursor pagination of `GET /topics`, topics with `/` in the path, the
//! admin token, and 400/404/405 for everything a client can get wrong.
//! Waiting is on the API itself (a bounded retry of a request), never a
//! sleep.

mod common;

use common::{publish, request, subscribe, Raw, TOKEN};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// `GET path` with the admin token; status and JSON body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    get_as(addr, path, Some(TOKEN)).await
}

async fn get_as(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, _, body) = request(addr, "GET", path, &headers, "").await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    (status, value)
}

/// Asks `GET path` until `done` holds for its body (bounded: each try is a
/// full request, answered by the server; no sleep between them).
async fn until(addr: SocketAddr, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (status, body) = get(addr, path).await;
            if status == 200 && done(&body) {
                return body;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting until {what}"))
}

/// Every client id of `topic` (encoded for the path), `limit` a page.
async fn client_ids(addr: SocketAddr, topic: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = get(
            addr,
            &format!("/topics/{topic}?clients=true&limit={limit}{cursor}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let page = body["clients"].as_array().expect("clients");
        assert!(page.len() <= limit);
        ids.extend(page.iter().map(|id| id.as_str().expect("an id").to_owned()));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

/// Every `(topic, subscribers)` of `GET /topics?{query}`, page by page.
async fn all_topics(addr: SocketAddr, query: &str) -> Vec<(String, u64)> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = get(addr, &format!("/topics?{query}{cursor}")).await;
        assert_eq!(status, 200, "{body}");
        for topic in body["topics"].as_array().expect("topics") {
            seen.push((
                topic["topic"].as_str().expect("name").to_owned(),
                topic["subscribers"].as_u64().expect("count"),
            ));
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_client_lists_follow_concurrent_connects_and_disconnects() {
    const N: usize = 24;
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    // Each connect is its own task, so they run in parallel on the
    // runtime's threads as well as interleaved.
    let connecting: Vec<_> = (0..N)
        .map(|n| {
            tokio::spawn(async move {
                let path = if n % 3 == 0 {
                    "/events?topic=rooms/1&topic=lobby"
                } else {
                    "/events?topic=rooms/1"
                };
                subscribe(addr, path, "").await
            })
        })
        .collect();
    let mut streams: Vec<(Raw, String)> = Vec::new();
    for task in connecting {
        streams.push(task.await.expect("connect task"));
    }
    let all: BTreeSet<String> = streams.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(all.len(), N);

    let body = until(addr, "/topics/rooms/1", "every stream is counted", |b| {
        b["subscribers"] == N
    })
    .await;
    assert_eq!(body["topic"], "rooms/1");
    let listed: BTreeSet<String> = client_ids(addr, "rooms%2F1", 5).await.into_iter().collect();
    assert_eq!(listed, all);
    let lobby = until(addr, "/topics/lobby", "the lobby is counted", |b| {
        b["subscribers"] == N / 3
    })
    .await;
    assert_eq!(lobby["last_event_id"], Value::Null);

    // Half of them leave at once; the other half stay.
    let (leaving, staying): (Vec<_>, Vec<_>) = streams
        .into_iter()
        .enumerate()
        .partition(|(n, _)| n % 2 == 0);
    // The leavers hang up in parallel too.
    let hanging_up: Vec<_> = leaving
        .into_iter()
        .map(|(_, (raw, _))| tokio::spawn(async move { drop(raw) }))
        .collect();
    for task in hanging_up {
        task.await.expect("hang-up task");
    }
    until(addr, "/topics/rooms/1", "the leavers are gone", |b| {
        b["subscribers"] == N / 2
    })
    .await;
    let remaining: BTreeSet<String> = staying.iter().map(|(_, (_, id))| id.clone()).collect();
    let listed: BTreeSet<String> = client_ids(addr, "rooms/1", 7).await.into_iter().collect();
    assert_eq!(listed, remaining);
    assert_eq!(server.hub().subscriber_count("rooms/1"), N / 2);
    // n % 3 == 0 and odd: 3, 9, 15, 21 stay in the lobby.
    until(addr, "/topics/lobby", "the lobby's leavers are gone", |b| {
        b["subscribers"] == 4
    })
    .await;

    drop(staying);
    let body = until(addr, "/topics", "every topic is gone", |b| b["total"] == 0).await;
    assert_eq!(body["topics"], serde_json::json!([]));
    assert_eq!(body["next_cursor"], Value::Null);
    let (status, _) = get(addr, "/topics/rooms/1").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn topics_are_sorted_by_subscribers_or_name_and_paginated_by_cursor() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let mut streams = Vec::new();
    for (topic, count) in [("s3", 3), ("s2", 2), ("s1", 1)] {
        for _ in 0..count {
            streams.push(subscribe(addr, &format!("/events?topic={topic}"), "").await);
        }
        until(
            addr,
            &format!("/topics/{topic}"),
            "the stream is counted",
            |b| b["subscribers"] == count,
        )
        .await;
    }
    let mut last_id = String::new();
    for topic in ["p0", "p1", "p2", "a/b+c"] {
        let (status, body) = publish(addr, &format!(r#"{{"topic":"{topic}","data":"x"}}"#)).await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).expect("JSON");
        last_id = body["id"].as_str().expect("id").to_owned();
    }
    let by_count = [
        ("s3", 3),
        ("s2", 2),
        ("s1", 1),
        ("a/b+c", 0),
        ("p0", 0),
        ("p1", 0),
        ("p2", 0),
    ]
    .map(|(t, n)| (t.to_owned(), n));
    for limit in [1, 2, 3, 7, 1000] {
        let seen = all_topics(addr, &format!("limit={limit}")).await;
        assert_eq!(seen, by_count, "limit {limit}");
    }
    let mut by_name = by_count.to_vec();
    by_name.sort();
    assert_eq!(all_topics(addr, "sort=name&limit=3").await, by_name);
    let (_, first) = get(addr, "/topics?limit=2").await;
    assert_eq!(first["total"], 7);
    assert_eq!(first["topics"].as_array().map(Vec::len), Some(2));

    // The figures of one topic, by the path as is and percent-encoded
    // (`+` is a plus sign in a path).
    for path in ["/topics/a/b+c", "/topics/a%2Fb%2Bc", "/topics/a/b%2bc"] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["topic"], "a/b+c");
        assert_eq!(body["subscribers"], 0);
        assert_eq!(body["retained"], 1);
        assert_eq!(body["last_event_id"], last_id.as_str());
        assert_eq!(body["events_last_minute"], 1);
        assert!(body["events_per_second"].as_f64().is_some_and(|r| r > 0.0));
        assert!(body.get("clients").is_none(), "no ids unless asked");
    }
    let (_, s3) = get(addr, "/topics/s3?clients=true&limit=2").await;
    assert_eq!(s3["clients"].as_array().map(Vec::len), Some(2));
    assert!(s3["next_cursor"].is_string());
    drop(streams);
}

#[tokio::test]
async fn presence_routes_need_the_admin_token_and_refuse_bad_queries() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (_stream, id) = subscribe(addr, "/events?topic=a", "").await;
    until(addr, "/topics/a", "the stream is counted", |b| {
        b["subscribers"] == 1
    })
    .await;
    for path in ["/topics", "/topics/a", "/topics/a?clients=true"] {
        let (status, head, body) = request(addr, "GET", path, &[], "").await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(head.header("www-authenticate"), Some("Bearer"));
        assert!(body.contains("Bearer"), "{body}");
        let (status, body) = get_as(addr, path, Some("wrong-token-123")).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body["error"].is_string());
        // A bad query is refused only after the token: 401 first.
        let (status, _) = get_as(addr, &format!("{path}?limit=0"), None).await;
        assert_eq!(status, 401);
    }
    let (status, body) = get(addr, "/topics/a?clients=true").await;
    assert_eq!(status, 200);
    assert_eq!(body["clients"], serde_json::json!([id]));

    for path in [
        "/topics?limit=0",
        "/topics?limit=1001",
        "/topics?limit=ten",
        "/topics?limit=-1",
        "/topics?limit=99999999999999999999999",
        "/topics?sort=size",
        "/topics?cursor=garbage",
        "/topics?cursor=1-6",
        "/topics?limit=1&limit=2",
        "/topics?offset=2",
        "/topics?limit=%zz",
        "/topics/a?clients=maybe",
        "/topics/a?limit=2",
        "/topics/a?clients=true&cursor=3",
        "/topics/a?clients=true&cursor=3.0",
        "/topics/a?clients=true&limit=0",
        "/topics/a%zz",
        "/topics/a%FF",
        "/topics/a%0Ab",
        "/topics/",
        &format!("/topics/{}", "x".repeat(257)),
    ] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let (status, body) = get(addr, "/topics/nobody-here").await;
    assert_eq!(status, 404);
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("nobody-here")));
    let auth = format!("Bearer {TOKEN}");
    let (status, head, _) = request(addr, "POST", "/topics", &[("Authorization", &auth)], "").await;
    assert_eq!(status, 405);
    assert_eq!(head.header("allow"), Some("GET"));
    // The hub is untouched by all of it.
    assert_eq!(server.hub().topic_count(), 1);
    assert_eq!(server.hub().len(), 1);
}
