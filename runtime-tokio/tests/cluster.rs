//! Several hub nodes joined through a real `redis-server` (started by the
//! test): publish on any node, receive on every node with byte-identical
//! ids, resume on any node exactly.

mod common;

use common::cluster::{datas, node, publish_ok, seq_of, wait_applied, Client, Seen};
use common::redis_server::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_b_reaches_a_and_c_with_identical_ids() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let c = node(&redis.url(), "c").await;
    let mut on_a = Client::open(a.local_addr(), &["news"]).await;
    let mut on_c = Client::open(c.local_addr(), &["news"]).await;
    let id = publish_ok(b.local_addr(), "news", "hello").await;
    let id2 = publish_ok(a.local_addr(), "news", "again").await;
    assert_eq!(
        seq_of(&id2),
        seq_of(&id) + 1,
        "one sequence for the cluster"
    );
    let seen_a = on_a.read(2).await;
    let seen_c = on_c.read(2).await;
    assert_eq!(seen_a, seen_c, "byte-identical ids and data on every node");
    assert_eq!(
        seen_a,
        [
            Seen::Event(id.clone(), "hello".to_owned()),
            Seen::Event(id2, "again".to_owned())
        ]
    );
    // The publishing node applies its own event from the channel too.
    wait_applied(&b, seq_of(&id) + 1).await;
    let (status, _, health) = common::request(b.local_addr(), "GET", "/healthz", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(health, r#"{"node":"b","redis":"up","status":"ok"}"#);
    let (_, _, metrics) = common::request(c.local_addr(), "GET", "/metrics", &[], "").await;
    for line in [
        "ssehub_redis_up{node=\"c\"} 1",
        "ssehub_cluster_applied_total{node=\"c\"} 2",
        "ssehub_cluster_gaps_total{node=\"c\"} 0",
        "ssehub_cluster_lag_seconds_count{node=\"c\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_two_topics_resumes_exactly_on_each_node_in_turn() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let c = node(&redis.url(), "c").await;
    let nodes = [&a, &b, &c];
    let mut client = Client::open(a.local_addr(), &["x", "y"]).await;
    let mut published = Vec::new();
    let mut n = 0;
    // Each round: publish on every node and on an unrelated topic, read
    // part, disconnect, publish more while away, resume on the next node.
    for round in 0..6 {
        for (i, node) in nodes.iter().enumerate() {
            let topic = ["x", "y", "other"][(n + i) % 3];
            n += 1;
            let data = format!("r{round}-{n}");
            publish_ok(node.local_addr(), topic, &data).await;
            if topic != "other" {
                published.push(data);
            }
        }
        client
            .read_until(published.last().expect("published"))
            .await;
        client.disconnect();
        for node in nodes {
            n += 1;
            let topic = ["x", "y"][n % 2];
            let data = format!("away{round}-{n}");
            publish_ok(node.local_addr(), topic, &data).await;
            published.push(data);
        }
        let next = nodes[(round + 1) % 3];
        client.reconnect(next.local_addr()).await;
        client
            .read_until(published.last().expect("published"))
            .await;
    }
    assert_eq!(
        datas(&client.seen),
        published,
        "exactly what was published, in order"
    );
    let seqs: Vec<u64> = client
        .seen
        .iter()
        .map(|s| match s {
            Seen::Event(id, _) | Seen::Reset(id) => seq_of(id),
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_late_resumes_a_client_from_redis_history() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let mut client = Client::open(a.local_addr(), &["x", "y"]).await;
    publish_ok(a.local_addr(), "x", "1").await;
    client.read(1).await;
    client.disconnect();
    publish_ok(a.local_addr(), "y", "2").await;
    publish_ok(a.local_addr(), "z", "not mine").await;
    publish_ok(a.local_addr(), "x", "3").await;
    // B never saw those events: they come from the streams.
    let b = node(&redis.url(), "b").await;
    client.reconnect(b.local_addr()).await;
    publish_ok(a.local_addr(), "y", "4").await;
    client.read_until("4").await;
    assert_eq!(datas(&client.seen), ["1", "2", "3", "4"]);
}

/// A clustered node refuses local publishes (the backplane orders every
/// event), so its dashboard stream gets the node's own stats by direct
/// sends: they keep arriving, name the node, and carry no id; and they
/// list every node of the cluster with its figures, read from the
/// presence in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clustered_nodes_dashboard_stream_gets_its_stats_and_every_nodes() {
    let redis = RedisServer::start();
    let mut config = common::cluster::config_for(&redis.url(), "dash");
    config.stats_interval = std::time::Duration::from_millis(40);
    let a = common::start(config).await;
    common::cluster::wait_up(&a).await;
    let b = node(&redis.url(), "b").await;
    let _on_a: Vec<_> = futures_util::future::join_all(
        (0..2).map(|_| common::subscribe(a.local_addr(), "/events?topic=news", "")),
    )
    .await;
    let _on_b = common::subscribe(b.local_addr(), "/events?topic=news&topic=x", "").await;
    let (mut raw, head) = common::open(
        a.local_addr(),
        "/dashboard/stream",
        &format!("Authorization: Bearer {}\r\n", common::TOKEN),
    )
    .await;
    assert_eq!(head.status, 200, "{head:?}");
    // dash: its two clients and the dashboard; b: one client on two
    // topics. The dashboard's own topic is not counted as a topic.
    let want = serde_json::json!([
        {"node": "b", "connections": 1, "subscribers": 2, "topics": 2},
        {"node": "dash", "connections": 3, "subscribers": 2, "topics": 1},
    ]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = serde_json::Value::Null;
    while last["cluster"] != want {
        let frame =
            tokio::time::timeout_at(deadline, raw.frame_where(|f| f.contains("event: stats\n")))
                .await
                .unwrap_or_else(|_| panic!("the stats never listed both nodes; last: {last}"));
        assert!(
            !frame.contains("\nid:") && !frame.starts_with("id:"),
            "{frame:?}"
        );
        let data = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data");
        last = serde_json::from_str(data).expect("json");
        assert_eq!(last["node"], "dash", "{last}");
    }
    assert_eq!(last["connections"], 3, "the node's own figure: {last}");
    // And they keep coming.
    tokio::time::timeout_at(deadline, raw.frame_where(|f| f.contains("event: stats\n")))
        .await
        .expect("another stats event");
}

/// Redis away: the node's own stats still go out, with `cluster: null`
/// and `cluster_error` saying why; back, the nodes are listed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clustered_dashboard_says_when_redis_cannot_be_read() {
    let redis = RedisServer::start();
    let proxy = common::proxy::Proxy::start(redis.addr()).await;
    let mut config = common::cluster::config_for(&proxy.url(), "dash");
    config.stats_interval = std::time::Duration::from_millis(40);
    let a = common::start(config).await;
    common::cluster::wait_up(&a).await;
    let (mut raw, head) = common::open(
        a.local_addr(),
        "/dashboard/stream",
        &format!("Authorization: Bearer {}\r\n", common::TOKEN),
    )
    .await;
    assert_eq!(head.status, 200, "{head:?}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    // The last stats event seen, for the failure message.
    let mut last = serde_json::Value::Null;
    let mut next = async |what: &str| -> serde_json::Value {
        let frame =
            tokio::time::timeout_at(deadline, raw.frame_where(|f| f.contains("event: stats\n")))
                .await
                .unwrap_or_else(|_| panic!("no stats event: {what}; the last one: {last}"));
        let data = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data");
        last = serde_json::from_str(data).expect("json");
        last.clone()
    };
    loop {
        let stats = next("listing the node").await;
        if stats["cluster"].as_array().is_some_and(|n| n.len() == 1) {
            assert_eq!(stats["cluster"][0]["node"], "dash", "{stats}");
            assert!(stats.get("cluster_error").is_none(), "{stats}");
            break;
        }
    }
    proxy.cut();
    loop {
        let stats = next("saying redis is away").await;
        if stats["cluster"].is_null() {
            assert!(
                stats["cluster_error"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty()),
                "{stats}"
            );
            assert_eq!(stats["connections"], 1, "the node's own figures: {stats}");
            break;
        }
    }
    proxy.resume();
    loop {
        let stats = next("listing the node again").await;
        if stats["cluster"].as_array().is_some_and(|n| n.len() == 1) {
            break;
        }
    }
}
