//! Cluster-wide presence over real HTTP and a real `redis-server`: each
//! node keeps its subscribers and a bounded list of client ids per topic
//! in Redis under a TTL (CP1, CP2, CP3), and `GET /topics/{topic}` on any
//! node reports the cluster's count and each node's part, and with
//! `?clients=true` each node's client ids, after concurrent connects and
//! disconnects, without a node that left (gracefully, or cut off from
//! Redis), and within the caps.
//!
//! Waiting is on the observable figure with a bound (the counts refresh
//! every 100 ms here), never a fixed sleep.

mod common;

use common::cluster::{config_for, node, wait_up};
use common::proxy::Proxy;
use common::redis_server::RedisServer;
use common::{request, start, subscribe, TOKEN};
use serde_json::json;
use serde_json::Value;
use ssehub_tokio::cluster::PresenceLimits;
use std::net::SocketAddr;
use std::time::Duration;

async fn topic(addr: SocketAddr, name: &str) -> (u16, Value) {
    get(addr, &format!("/topics/{name}")).await
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = request(addr, "GET", path, &[("Authorization", &auth)], "").await;
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, json)
}

/// Polls `GET path` on `addr` until its body satisfies `done` (bounded:
/// the figures refresh every 100 ms here; 20 s allows for a loaded
/// machine); returns that body.
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
    let (_, last) = get(addr, path).await;
    found.unwrap_or_else(|_| panic!("{what} never happened; last: {last}"))
}

/// Client ids in the hub's order (`<index>.<generation>`, numerically).
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    let key = |id: &String| {
        let (index, generation) = id.split_once('.').expect("index.generation");
        (
            index.parse::<u32>().expect("index"),
            generation.parse::<u64>().expect("generation"),
        )
    };
    ids.sort_by_key(key);
    ids
}

/// Polls `GET /topics/{name}` on `addr` until its `cluster` field equals
/// `want` (bounded).
async fn cluster_becomes(addr: SocketAddr, name: &str, want: Value) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (status, body) = topic(addr, name).await;
            if status == 200 && body["cluster"] == want {
                return body;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let (_, last) = topic(addr, name).await;
    found.unwrap_or_else(|_| panic!("cluster figure never became {want}; last: {last}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_cluster_wide_after_concurrent_connects_and_disconnects() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let c = node(&redis.url(), "c").await;
    // Five clients connect to a and b at once; two of a's hang up while
    // the others are still connecting.
    let opens = (0..5).map(|i| {
        let addr = if i % 2 == 0 {
            a.local_addr()
        } else {
            b.local_addr()
        };
        async move { subscribe(addr, "/events?topic=room", "").await.0 }
    });
    let mut streams: Vec<_> = futures_util::future::join_all(opens).await;
    let gone: Vec<_> = vec![streams.remove(0), streams.remove(1)];
    let more =
        (0..2).map(|_| async { subscribe(a.local_addr(), "/events?topic=room", "").await.0 });
    let (more, ()) = tokio::join!(futures_util::future::join_all(more), async { drop(gone) });
    streams.extend(more);
    // Clients 0, 2, 4 went to a and 1, 3 to b; 0 and 2 hung up and two
    // more joined a: a has 3, b has 2.
    let want = serde_json::json!({"subscribers": 5, "nodes": {"a": 3, "b": 2}});
    let body = cluster_becomes(c.local_addr(), "room", want.clone()).await;
    assert_eq!(body["subscribers"], 0, "c's own figure is its own: {body}");
    let body = cluster_becomes(a.local_addr(), "room", want).await;
    assert_eq!(body["subscribers"], 3, "{body}");
    // An unknown topic is still 404 everywhere.
    assert_eq!(topic(c.local_addr(), "nobody").await.0, 404);
    // Everyone hangs up: no node has the topic, c answers 404.
    drop(streams);
    let gone = tokio::time::timeout(Duration::from_secs(20), async {
        while topic(c.local_addr(), "room").await.0 != 404 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the topic never left the cluster's counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_drops_out_of_the_counts() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&redis.url(), "a").await;
    let b = node(&proxy.url(), "b").await;
    let d = node(&redis.url(), "d").await;
    let _on_a = subscribe(a.local_addr(), "/events?topic=room", "").await;
    let _on_b = subscribe(b.local_addr(), "/events?topic=room", "").await;
    let _on_d = subscribe(d.local_addr(), "/events?topic=room", "").await;
    let all = serde_json::json!({"subscribers": 3, "nodes": {"a": 1, "b": 1, "d": 1}});
    cluster_becomes(a.local_addr(), "room", all).await;
    // b loses Redis (its part can no longer be refreshed): gone within
    // the TTL, while its stream itself stays open.
    proxy.cut();
    let without_b = serde_json::json!({"subscribers": 2, "nodes": {"a": 1, "d": 1}});
    cluster_becomes(a.local_addr(), "room", without_b).await;
    // b comes back: counted again.
    proxy.resume();
    wait_up(&b).await;
    let all = serde_json::json!({"subscribers": 3, "nodes": {"a": 1, "b": 1, "d": 1}});
    cluster_becomes(a.local_addr(), "room", all).await;
    // d stops (gracefully): its part goes.
    drop(d);
    let without_d = serde_json::json!({"subscribers": 2, "nodes": {"a": 1, "b": 1}});
    cluster_becomes(a.local_addr(), "room", without_d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_lists_are_cluster_wide_and_paged_per_node() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let c = node(&redis.url(), "c").await;
    let (_s1, a1) = subscribe(a.local_addr(), "/events?topic=room", "").await;
    let (_s2, a2) = subscribe(a.local_addr(), "/events?topic=room&topic=other", "").await;
    let (_s3, b1) = subscribe(b.local_addr(), "/events?topic=room", "").await;
    let on_a = sorted(vec![a1.clone(), a2.clone()]);
    let want = json!({
        "a": {"subscribers": 2, "clients": on_a, "next_cursor": null, "truncated": false},
        "b": {"subscribers": 1, "clients": [b1], "next_cursor": null, "truncated": false},
    });
    // Read from c, which has no client of its own.
    let body = until(
        c.local_addr(),
        "/topics/room?clients=true",
        "a and b listed on c",
        |body| body["cluster_clients"] == want,
    )
    .await;
    assert_eq!(body["clients"], json!([]), "c's own list: {body}");
    assert_eq!(
        body["cluster"],
        json!({"subscribers": 3, "nodes": {"a": 2, "b": 1}}),
        "the counts come from the same read: {body}"
    );
    // Read from a: its live list, and everyone's from Redis.
    let body = until(
        a.local_addr(),
        "/topics/room?clients=true",
        "a and b listed on a",
        |body| body["cluster_clients"] == want,
    )
    .await;
    assert_eq!(body["clients"], json!(on_a), "{body}");
    // Paged per node with the local list's `limit` and `cursor`.
    let (status, first) = get(c.local_addr(), "/topics/room?clients=true&limit=1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["cluster_clients"]["a"],
        json!({"subscribers": 2, "clients": [on_a[0]], "next_cursor": on_a[0], "truncated": false})
    );
    assert_eq!(first["cluster_clients"]["b"]["next_cursor"], Value::Null);
    let cursor = on_a[0].clone();
    let (_, second) = get(
        c.local_addr(),
        &format!("/topics/room?clients=true&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        second["cluster_clients"]["a"],
        json!({"subscribers": 2, "clients": [on_a[1]], "next_cursor": null, "truncated": false})
    );
    // Without clients=true the answer has no lists.
    let (_, plain) = topic(c.local_addr(), "room").await;
    assert!(plain.get("cluster_clients").is_none(), "{plain}");
    // Another topic lists only its own subscribers.
    until(c.local_addr(), "/topics/other?clients=true", "other listed", |body| {
        body["cluster_clients"]
            == json!({"a": {"subscribers": 1, "clients": [a2], "next_cursor": null, "truncated": false}})
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_or_stopped_leaves_the_lists_and_redis_down_still_answers_locally() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&redis.url(), "a").await;
    let b = node(&proxy.url(), "b").await;
    let d = node(&redis.url(), "d").await;
    let (_on_a, id_a) = subscribe(a.local_addr(), "/events?topic=room", "").await;
    let (_on_b, id_b) = subscribe(b.local_addr(), "/events?topic=room", "").await;
    let (_on_d, _) = subscribe(d.local_addr(), "/events?topic=room", "").await;
    let nodes = |body: &Value| -> Vec<String> {
        body["cluster_clients"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    until(
        a.local_addr(),
        "/topics/room?clients=true",
        "a, b and d listed",
        |body| nodes(body) == ["a", "b", "d"],
    )
    .await;
    // b loses Redis: its list is gone within the TTL (its stream stays).
    proxy.cut();
    let body = until(
        a.local_addr(),
        "/topics/room?clients=true",
        "b dropped out",
        |body| nodes(body) == ["a", "d"],
    )
    .await;
    assert_eq!(body["cluster_clients"]["a"]["clients"], json!([id_a]));
    // On b itself the local answer still works, and says why the
    // cluster's is missing.
    let (status, body) = get(b.local_addr(), "/topics/room?clients=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clients"], json!([id_b]), "{body}");
    assert_eq!(body["cluster"], Value::Null, "{body}");
    assert_eq!(body["cluster_clients"], Value::Null, "{body}");
    assert!(
        body["cluster_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    // b comes back: listed again.
    proxy.resume();
    wait_up(&b).await;
    until(
        a.local_addr(),
        "/topics/room?clients=true",
        "b listed again",
        |body| nodes(body) == ["a", "b", "d"],
    )
    .await;
    // d stops: its list goes at once (and within the TTL at worst).
    drop(d);
    until(
        a.local_addr(),
        "/topics/room?clients=true",
        "d dropped out",
        |body| nodes(body) == ["a", "b"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_honour_the_caps_and_say_when_they_were_cut() {
    let redis = RedisServer::start();
    let mut config = config_for(&redis.url(), "a");
    let cluster = config.cluster.as_mut().expect("clustered");
    cluster.presence_limits = PresenceLimits::default()
        .clients_per_topic(2)
        .clients_per_node(3)
        .topics(2);
    let a = start(config).await;
    wait_up(&a).await;
    let c = node(&redis.url(), "c").await;
    let mut streams = Vec::new();
    let mut big = Vec::new();
    let mut mid = Vec::new();
    for (topic, n) in [("big", 3), ("mid", 2), ("small", 1)] {
        for _ in 0..n {
            let (stream, id) =
                subscribe(a.local_addr(), &format!("/events?topic={topic}"), "").await;
            streams.push(stream);
            match topic {
                "big" => big.push(id),
                "mid" => mid.push(id),
                _ => {}
            }
        }
    }
    let (big, mid) = (sorted(big), sorted(mid));
    // big: 2 of 3 (the per-topic cap), the lowest ids.
    until(c.local_addr(), "/topics/big?clients=true", "big capped", |body| {
        body["cluster_clients"]
            == json!({"a": {"subscribers": 3, "clients": big[..2], "next_cursor": null, "truncated": true}})
    })
    .await;
    // mid: what the node's budget of 3 left, 1 of 2.
    until(c.local_addr(), "/topics/mid?clients=true", "mid cut by the node cap", |body| {
        body["cluster_clients"]
            == json!({"a": {"subscribers": 2, "clients": mid[..1], "next_cursor": null, "truncated": true}})
    })
    .await;
    // small: past the cap of two topics, not written at all, though a's
    // totals (written with the same snapshot, CP1) count it: c does not
    // know the topic, while a (its own) does.
    let backplane = c.backplane().expect("clustered");
    let totals = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(nodes) = backplane.cluster_nodes().await {
                if let Some((_, totals)) = nodes.into_iter().find(|(n, _)| n == "a") {
                    if totals.topics == 3 {
                        return totals;
                    }
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a's totals count its three topics");
    assert_eq!((totals.connections, totals.subscribers), (6, 6));
    let (status, body) = topic(c.local_addr(), "small").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(a.local_addr(), "/topics/small?clients=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscribers"], 1, "{body}");
    assert_eq!(body["cluster_clients"], json!({}), "{body}");
}
