//! The backplane's scripts against a real `redis-server` (started by the
//! test, see `common::redis_server`): sequencing, the history cut and the
//! "newest gone" rule for trimmed, expired and flushed history.

mod common;

use common::redis_server::RedisServer;
use ssehub_tokio::cluster::{BackplaneError, Keys, Retention, Store};
use std::time::Duration;

fn store(url: &str, max_len: usize) -> Store {
    Store::new(
        redis::Client::open(url).unwrap(),
        Keys::new("test"),
        Retention {
            max_len,
            age: Duration::from_secs(300),
            meta_ttl: Duration::from_secs(3600),
        },
        Duration::from_secs(5),
    )
}

fn topics(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn one_sequence_across_topics_and_a_cut_reads_each_topic_after_a_seq() {
    let redis = RedisServer::start();
    let store = store(&redis.url(), 1000);
    let (epoch, first) = store.publish("a", b"data: 1\n\n", 77).await.unwrap();
    assert_eq!(
        (epoch, first),
        (77, 1),
        "the candidate epoch is taken when none is set"
    );
    let (epoch2, second) = store.publish("b", b"data: 2\n\n", 99).await.unwrap();
    assert_eq!((epoch2, second), (77, 2), "an existing epoch is kept");
    store.publish("a", b"data: 3\n\n", 99).await.unwrap();

    let cut = store
        .cut(1, &topics(&["a", "b", "none"]), 99)
        .await
        .unwrap();
    assert_eq!((cut.epoch, cut.top), (77, 3));
    let a = &cut.topics[0];
    assert_eq!(a.topic, "a");
    assert_eq!(a.complete_after, 0);
    assert_eq!(a.events, [(3, bytes::Bytes::from_static(b"data: 3\n\n"))]);
    assert_eq!(cut.topics[1].events.len(), 1, "b's event 2 is after 1");
    assert_eq!(cut.topics[2].events, []);
    assert_eq!(cut.topics[2].complete_after, 0, "a topic never published");
}

#[tokio::test]
async fn trimmed_history_is_reported_as_gone() {
    let redis = RedisServer::start();
    // MAXLEN ~ trims whole nodes of 100 entries: publish well past them.
    let store = store(&redis.url(), 10);
    for i in 1..=400u64 {
        store
            .publish("t", format!("data: {i}\n\n").as_bytes(), 1)
            .await
            .unwrap();
    }
    let cut = store.cut(0, &topics(&["t"]), 1).await.unwrap();
    let t = &cut.topics[0];
    assert!(t.complete_after > 0, "trimmed entries are reported");
    assert_eq!(t.events.first().unwrap().0, t.complete_after + 1);
    assert_eq!(t.events.last().unwrap().0, 400);
}

#[tokio::test]
async fn an_expired_stream_leaves_its_top_as_gone_and_a_new_stream_keeps_it() {
    let redis = RedisServer::start();
    let store = store(&redis.url(), 1000);
    store.publish("t", b"data: 1\n\n", 5).await.unwrap();
    store.publish("u", b"data: 2\n\n", 5).await.unwrap();
    // What EXPIRE does when the history age passes.
    redis.cmd(&["DEL", "test:5:t:t"]).await;
    let cut = store.cut(0, &topics(&["t"]), 5).await.unwrap();
    assert_eq!(cut.topics[0].complete_after, 1);
    assert_eq!(cut.topics[0].events, []);
    // A new event recreates the stream; the expired one stays gone.
    store.publish("t", b"data: 3\n\n", 5).await.unwrap();
    let cut = store.cut(0, &topics(&["t"]), 5).await.unwrap();
    assert_eq!(cut.topics[0].complete_after, 1);
    assert_eq!(cut.topics[0].events.len(), 1);
    assert_eq!(cut.topics[0].events[0].0, 3);
}

#[tokio::test]
async fn a_flush_starts_a_new_epoch_from_seq_one() {
    let redis = RedisServer::start();
    let store = store(&redis.url(), 1000);
    assert_eq!(store.publish("t", b"data: 1\n\n", 5).await.unwrap(), (5, 1));
    redis.cmd(&["FLUSHALL"]).await;
    let cut = store.cut(0, &topics(&["t"]), 6).await.unwrap();
    assert_eq!(
        (cut.epoch, cut.top),
        (6, 0),
        "the reader creates the new epoch"
    );
    assert_eq!(store.publish("t", b"data: 2\n\n", 7).await.unwrap(), (6, 1));
}

#[tokio::test]
async fn a_redis_that_is_gone_is_an_error_not_a_hang() {
    let mut redis = RedisServer::start();
    let store = store(&redis.url(), 1000);
    store.publish("t", b"data: 1\n\n", 5).await.unwrap();
    redis.kill();
    let error = store.publish("t", b"data: 2\n\n", 5).await.unwrap_err();
    assert!(
        matches!(error, BackplaneError::Redis(_) | BackplaneError::Timeout),
        "{error}"
    );
    redis.restart();
    // The connection manager reconnects by itself; the restarted server is
    // empty, so a new epoch begins.
    let mut published = None;
    for _ in 0..50 {
        match store.publish("t", b"data: 3\n\n", 8).await {
            Ok(id) => {
                published = Some(id);
                break;
            }
            Err(_) => tokio::task::yield_now().await,
        }
    }
    assert_eq!(published, Some((8, 1)));
}
