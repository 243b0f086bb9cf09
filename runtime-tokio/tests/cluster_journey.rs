//! The issue's "done when": one client on two topics, moved across three
//! nodes through every fault, ends with exactly the events that were
//! published, with a reset exactly where history was truly gone (the
//! flush, the restart without persistence).

mod common;

use common::cluster::{datas, link, node, publish_ok, wait_up, Client};
use common::proxy::Proxy;
use common::redis_server::RedisServer;
use common::{publish, wait_until};
use ssehub_tokio::cluster::LinkState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_two_topics_through_every_fault_sees_exactly_what_was_published() {
    let mut redis = RedisServer::start();
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&redis.url(), "a").await;
    let b = node(&proxy.url(), "b").await;
    let c = node(&redis.url(), "c").await;
    let mut expected: Vec<&str> = Vec::new();
    let mut client = Client::open(a.local_addr(), &["x", "y"]).await;

    // Publish anywhere, receive on A.
    publish_ok(b.local_addr(), "x", "1").await;
    publish_ok(c.local_addr(), "y", "2").await;
    publish_ok(c.local_addr(), "other", "not mine").await;
    expected.extend(["1", "2"]);
    client.read_until("2").await;

    // Away while events are published; resume on B.
    client.disconnect();
    publish_ok(a.local_addr(), "y", "3").await;
    expected.push("3");
    client.reconnect(b.local_addr()).await;
    client.read_until("3").await;

    // B is cut off from Redis while the client streams from it.
    proxy.cut();
    wait_until("b notices the cut", || link(&b) != LinkState::Up).await;
    publish_ok(a.local_addr(), "x", "4").await;
    publish_ok(c.local_addr(), "y", "5").await;
    expected.extend(["4", "5"]);
    proxy.resume();
    client.read_until("5").await;

    // Every PUB/SUB connection killed; the client moves to C meanwhile.
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    publish_ok(a.local_addr(), "x", "6").await;
    expected.push("6");
    client.disconnect();
    client.reconnect(c.local_addr()).await;
    client.read_until("6").await;

    // C is killed mid-stream; the client resumes on A.
    drop(c);
    client.disconnect();
    publish_ok(b.local_addr(), "y", "7").await;
    expected.push("7");
    client.reconnect(a.local_addr()).await;
    client.read_until("7").await;

    // Redis flushed: history is gone, the client is told.
    redis.cmd(&["FLUSHALL"]).await;
    publish_ok(b.local_addr(), "x", "8").await;
    expected.extend(["reset", "8"]);
    client.read_until("8").await;

    // Redis killed and restarted empty.
    redis.kill();
    wait_until("a notices", || link(&a) != LinkState::Up).await;
    let (status, _) = publish(a.local_addr(), r#"{"topic":"x","data":"refused"}"#).await;
    assert_eq!(status, 503, "nothing is published while Redis is down");
    redis.restart();
    wait_up(&a).await;
    wait_up(&b).await;
    publish_ok(b.local_addr(), "y", "9").await;
    expected.extend(["reset", "9"]);
    client.read_until("9").await;

    // And a last move, to B, with events published while away.
    client.disconnect();
    publish_ok(a.local_addr(), "x", "10").await;
    publish_ok(a.local_addr(), "other", "still not mine").await;
    publish_ok(a.local_addr(), "y", "11").await;
    expected.extend(["10", "11"]);
    client.reconnect(b.local_addr()).await;
    client.read_until("11").await;

    assert_eq!(datas(&client.seen), expected, "{:?}", client.seen);
}
