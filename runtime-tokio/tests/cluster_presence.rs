//! Cluster-wide presence over real HTTP and a real `redis-server`: each
//! node keeps its subscribers per topic in Redis under a TTL (CP1, CP2),
//! and `GET /topics/{topic}` on any node reports the cluster's count and
//! each node's part, after concurrent connects and disconnects, and
//! without a node that left (gracefully, or cut off from Redis).
//!
//! Waiting is on the observable figure with a bound (the counts refresh
//! every 100 ms here), never a fixed sleep.

mod common;

use common::cluster::{node, wait_up};
use common::proxy::Proxy;
use common::redis_server::RedisServer;
use common::{request, subscribe, TOKEN};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

async fn topic(addr: SocketAddr, name: &str) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = request(
        addr,
        "GET",
        &format!("/topics/{name}"),
        &[("Authorization", &auth)],
        "",
    )
    .await;
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, json)
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
