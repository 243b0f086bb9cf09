//! Faults between hub nodes and a real `redis-server`, injected with a
//! TCP proxy the test controls, `CLIENT KILL TYPE pubsub`, a lost
//! message, `FLUSHALL`, killing and restarting Redis, and killing a node.
//! Every case ends with the client's exact event sequence: what was
//! published, or an explicit reset where history is truly gone.

mod common;

use common::cluster::{
    datas, epoch_of, link, node, position, publish_ok, seq_of, wait_applied, wait_up, Client, Seen,
};
use common::proxy::Proxy;
use common::redis_server::RedisServer;
use common::{publish, request, wait_until};
use ssehub_tokio::cluster::LinkState;

async fn health(addr: std::net::SocketAddr) -> serde_json::Value {
    let (status, _, body) = request(addr, "GET", "/healthz", &[], "").await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_degrades_then_catches_up_exactly() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&proxy.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let mut client = Client::open(a.local_addr(), &["x", "y"]).await;
    publish_ok(b.local_addr(), "x", "1").await;
    client.read(1).await;

    proxy.cut();
    wait_until("a notices", || link(&a) != LinkState::Up).await;
    let status = health(a.local_addr()).await;
    assert_eq!(status["status"], "degraded", "{status}");
    let auth = format!("Bearer {}", common::TOKEN);
    let (code, head, _) = request(
        a.local_addr(),
        "POST",
        "/publish",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"topic":"x","data":"refused"}"#,
    )
    .await;
    assert_eq!(code, 503);
    assert!(head.header("retry-after").is_some());
    // Published while a is cut off: a gets them from the streams.
    for data in ["2", "3", "4"] {
        publish_ok(b.local_addr(), ["x", "y"][data.len() % 2], data).await;
    }
    proxy.resume();
    wait_up(&a).await;
    assert_eq!(health(a.local_addr()).await["status"], "ok");
    publish_ok(a.local_addr(), "y", "5").await;
    client.read_until("5").await;
    assert_eq!(datas(&client.seen), ["1", "2", "3", "4", "5"]);
    let counters = a.backplane().unwrap().counters();
    assert!(
        counters.reconnects >= 1 && counters.catch_ups >= 1,
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_subscriptions_reconnect_and_miss_nothing() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let mut on_a = Client::open(a.local_addr(), &["x"]).await;
    let mut on_b = Client::open(b.local_addr(), &["x"]).await;
    publish_ok(a.local_addr(), "x", "1").await;
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    // Racing the nodes' reconnects: each event is live or caught up.
    for data in ["2", "3", "4"] {
        publish_ok(b.local_addr(), "x", data).await;
    }
    for client in [&mut on_a, &mut on_b] {
        client.read_until("4").await;
        assert_eq!(datas(&client.seen), ["1", "2", "3", "4"]);
    }
    for node in [&a, &b] {
        wait_until("reconnected", || {
            node.backplane().unwrap().counters().reconnects >= 1 && link(node) == LinkState::Up
        })
        .await;
    }
}

/// An event whose PUB/SUB message was lost (written as the script does,
/// without the PUBLISH): the next message shows the gap, or, when no
/// message follows, the probe finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_message_is_found_by_the_gap_or_by_the_probe() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let mut client = Client::open(a.local_addr(), &["x"]).await;
    let first = publish_ok(a.local_addr(), "x", "1").await;
    client.read(1).await;
    let epoch = epoch_of(&first).to_owned();
    let lose = |data: &'static str| {
        let redis = &redis;
        let epoch = epoch.clone();
        async move {
            let seq = match redis.cmd(&["INCR", "t:seq"]).await {
                redis::Value::Int(n) => n.to_string(),
                other => panic!("{other:?}"),
            };
            let body = format!("data: {data}\n\n");
            redis
                .cmd(&[
                    "XADD",
                    &format!("t:{epoch}:t:x"),
                    &format!("{seq}-0"),
                    "b",
                    &body,
                ])
                .await;
        }
    };
    lose("2").await;
    publish_ok(a.local_addr(), "x", "3").await;
    client.read_until("3").await;
    assert_eq!(datas(&client.seen), ["1", "2", "3"]);
    assert_eq!(a.backplane().unwrap().counters().gaps, 1);
    // The tail: nothing follows the lost message; the idle probe finds it.
    lose("4").await;
    client.read_until("4").await;
    assert_eq!(datas(&client.seen), ["1", "2", "3", "4"]);
    assert!(a.backplane().unwrap().counters().probes >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_starts_a_new_epoch_and_clients_get_a_reset() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let mut client = Client::open(a.local_addr(), &["x"]).await;
    // A subscriber of x on b too, so that b has the topic when it catches
    // up with the new epoch (a topic created during a catch-up is reset
    // when the catch-up ends: DESIGN 11.3).
    let mut keeper = Client::open(b.local_addr(), &["x"]).await;
    let old = publish_ok(b.local_addr(), "x", "1").await;
    client.read(1).await;
    keeper.read(1).await;
    redis.cmd(&["FLUSHALL"]).await;
    let new = publish_ok(b.local_addr(), "x", "2").await;
    assert_ne!(epoch_of(&new), epoch_of(&old));
    let seen = client.read_until("2").await;
    assert!(matches!(seen[0], Seen::Reset(_)), "{seen:?}");
    assert_eq!(datas(&client.seen), ["1", "reset", "2"]);
    // A resume with the old epoch's id, anywhere: a reset, never a skip.
    // One reset: b has x from before the flush (the keeper), so its
    // catch-up with the new epoch covers x and does not reset x's
    // subscribers when it ends. Without the keeper, x was created on b by
    // this client, possibly during that catch-up, and its stream got a
    // second reset when the catch-up ended (never a skip; DESIGN 11.3):
    // that failed this test once in CI.
    let mut late = Client::open(b.local_addr(), &["x"]).await;
    late.last_id = Some(old);
    late.reconnect(b.local_addr()).await;
    let third = publish_ok(a.local_addr(), "x", "3").await;
    late.read_until("3").await;
    // The reset says where the stream starts again (b's position in the
    // new epoch when the client was activated); exactly the events after
    // it follow: "2" too, if b had begun the epoch but not applied "2".
    let Seen::Reset(reset) = &late.seen[0] else {
        panic!("no reset first: {:?}", late.seen)
    };
    assert_eq!(
        epoch_of(reset),
        epoch_of(&new),
        "the reset is in the new epoch"
    );
    let mut want = vec!["reset"];
    want.extend(
        [(&new, "2"), (&third, "3")]
            .into_iter()
            .filter(|(id, _)| seq_of(id) > seq_of(reset))
            .map(|(_, data)| data),
    );
    assert_eq!(datas(&late.seen), want);
    keeper.read_until("3").await;
    assert_eq!(datas(&keeper.seen), ["1", "reset", "2", "3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_finds_redis_in_a_new_epoch_first_is_reset_once() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let mut keeper = Client::open(b.local_addr(), &["x"]).await;
    let old = publish_ok(a.local_addr(), "x", "1").await;
    keeper.read(1).await;
    redis.cmd(&["FLUSHALL"]).await;
    // Nothing has told b of the flush (no publish since; its probe runs
    // every 500 ms): the resume's own history read is what finds the new
    // epoch (the script creates it). Without the resume having b look at
    // once and waiting for it, the stream got the reset of its old id and
    // then b's epoch change as a second one.
    let mut late = Client::open(b.local_addr(), &["x"]).await;
    late.last_id = Some(old.clone());
    late.reconnect(b.local_addr()).await;
    let third = publish_ok(a.local_addr(), "x", "3").await;
    late.read_until("3").await;
    assert_eq!(datas(&late.seen), ["reset", "3"]);
    let Seen::Reset(reset) = &late.seen[0] else {
        unreachable!("datas said reset first")
    };
    assert_eq!(
        epoch_of(reset),
        epoch_of(&third),
        "the reset is in the new epoch"
    );
    assert_ne!(epoch_of(&third), epoch_of(&old));
    keeper.read_until("3").await;
    assert_eq!(datas(&keeper.seen), ["1", "reset", "3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_empty_degrades_then_resets() {
    let mut redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let mut client = Client::open(a.local_addr(), &["x"]).await;
    publish_ok(b.local_addr(), "x", "1").await;
    client.read(1).await;
    redis.kill();
    wait_until("both notice", || {
        link(&a) != LinkState::Up && link(&b) != LinkState::Up
    })
    .await;
    assert_eq!(health(b.local_addr()).await["status"], "degraded");
    let (code, _) = publish(b.local_addr(), r#"{"topic":"x","data":"refused"}"#).await;
    assert_eq!(code, 503);
    // A resume while Redis is down cannot read history: a reset.
    let mut resumer = Client::open(b.local_addr(), &["x"]).await;
    resumer.last_id.clone_from(&client.last_id);
    resumer.reconnect(b.local_addr()).await;
    assert!(matches!(resumer.read(1).await[0], Seen::Reset(_)));
    redis.restart();
    wait_up(&a).await;
    wait_up(&b).await;
    publish_ok(b.local_addr(), "x", "2").await;
    client.read_until("2").await;
    assert_eq!(datas(&client.seen), ["1", "reset", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_node_resumes_exactly_on_another() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), "a").await;
    let b = node(&redis.url(), "b").await;
    let c = node(&redis.url(), "c").await;
    let mut client = Client::open(a.local_addr(), &["x", "y"]).await;
    publish_ok(c.local_addr(), "x", "1").await;
    publish_ok(c.local_addr(), "y", "2").await;
    client.read(2).await;
    drop(a);
    client.disconnect();
    let last = publish_ok(c.local_addr(), "x", "3").await;
    // b applies 3 before the resume, or after it: exact either way.
    if seq_of(&last) % 2 == 0 {
        wait_applied(&b, seq_of(&last)).await;
    }
    client.reconnect(b.local_addr()).await;
    publish_ok(c.local_addr(), "y", "4").await;
    client.read_until("4").await;
    assert_eq!(datas(&client.seen), ["1", "2", "3", "4"]);
    assert!(position(&b) >= seq_of(&last));
}
