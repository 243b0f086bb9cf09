//! Join/leave events (`--presence`) over loopback with real HTTP clients:
//! a watcher sees another client's join (with its JWT `sub`) then its
//! leave when it hangs up, topics without presence get nothing, and with
//! every change coalesced the watcher's view (applied from `presence`
//! summaries only) converges to the truth. Plus counts after connects and
//! disconnects that overlap, checked against `GET /topics/{topic}`.
//! Waiting is on frames or on the API, never a sleep.

mod common;

use common::{publish, request, subscribe, Raw, TOKEN};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use ssehub_core::PresenceConfig;
use ssehub_tokio::server::{JwtAuth, Server};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &[u8] = b"presence-secret-0123456789abcdef";

fn token(sub: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = json!({"sub": sub, "exp": exp, "ssehub": {"subscribe": ["**"]}});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn server(patterns: &[&str], burst: u32, jwt: bool) -> Server {
    let mut config = common::config();
    config.hub.presence = PresenceConfig {
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        window: Duration::from_millis(100),
        burst,
        ..PresenceConfig::default()
    };
    if jwt {
        config.jwt = Some(JwtAuth::hs256(SECRET).unwrap());
    }
    common::start(config).await
}

/// A frame's event name and JSON data.
fn parse(frame: &str) -> (String, Value) {
    assert!(
        !frame.lines().any(|l| l.starts_with("id:")),
        "presence events carry no id: {frame:?}"
    );
    let name = frame
        .lines()
        .find_map(|l| l.strip_prefix("event: "))
        .unwrap_or("message")
        .to_owned();
    let data = frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data");
    (name, serde_json::from_str(data).unwrap_or(Value::Null))
}

/// The next frame that is not a heartbeat comment.
async fn next_event(raw: &mut Raw) -> (String, Value) {
    let frame = tokio::time::timeout(
        Duration::from_secs(20),
        raw.frame_where(|f| !f.starts_with(':')),
    )
    .await
    .expect("an event in time");
    parse(&frame)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_the_join_with_the_jwt_subject_then_the_leave() {
    let server = server(&["rooms/*"], 10, true).await;
    let addr = server.local_addr();
    let auth = |sub: &str| format!("Authorization: Bearer {}\r\n", token(sub));
    let (mut watcher, _) = subscribe(addr, "/events?topic=rooms/a", &auth("watcher")).await;
    let (mut news, _) = subscribe(addr, "/events?topic=news", &auth("reader")).await;

    // Alice authenticates with ?access_token=, on both topics.
    let path = format!(
        "/events?topic=rooms/a&topic=news&access_token={}",
        token("alice")
    );
    let (alice, alice_id) = subscribe(addr, &path, "").await;
    let (name, data) = next_event(&mut watcher).await;
    assert_eq!(name, "join");
    assert_eq!(
        data,
        json!({"topic": "rooms/a", "client": alice_id, "sub": "alice", "subscribers": 2})
    );

    // A client without a JWT subject (the admin token is not a JWT here:
    // streams need a JWT, so use one without `sub`).
    let no_sub = {
        let claims = json!({"ssehub": {"subscribe": ["**"]}});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    let (bob, bob_id) = subscribe(
        addr,
        "/events?topic=rooms/a",
        &format!("Authorization: Bearer {no_sub}\r\n"),
    )
    .await;
    let (name, data) = next_event(&mut watcher).await;
    assert_eq!(name, "join");
    assert_eq!(data["client"], bob_id);
    assert!(data.get("sub").is_none(), "{data}");

    drop(alice);
    let (name, data) = next_event(&mut watcher).await;
    assert_eq!(name, "leave");
    assert_eq!(
        data,
        json!({"topic": "rooms/a", "client": alice_id, "sub": "alice", "subscribers": 2})
    );
    drop(bob);
    let (name, data) = next_event(&mut watcher).await;
    assert_eq!((name.as_str(), &data["client"]), ("leave", &json!(bob_id)));

    // `news` has no presence: the first thing its reader gets after
    // alice came and went is the event published now.
    let (status, _) = publish(addr, r#"{"topic":"news","data":"marker"}"#).await;
    assert_eq!(status, 200);
    let frame = news.frame_where(|f| !f.starts_with(':')).await;
    assert!(frame.ends_with("data: marker\n\n"), "{frame:?}");
}

/// The set of clients a watcher believes present, from `presence`
/// summaries only (burst 0: no individual event may arrive).
fn apply(view: &mut BTreeSet<String>, name: &str, data: &Value) {
    assert_eq!(name, "presence", "burst 0 coalesces everything: {data}");
    for c in data["joined"].as_array().unwrap() {
        let id = c["client"].as_str().unwrap().to_owned();
        assert!(view.insert(id), "joined twice: {data}");
    }
    for c in data["left"].as_array().unwrap() {
        let id = c["client"].as_str().unwrap();
        assert!(view.remove(id), "leave before join: {data}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_change_coalesced_the_summaries_converge_to_the_truth() {
    const N: usize = 12;
    let server = server(&["room"], 0, false).await;
    let addr = server.local_addr();
    let (mut watcher, watcher_id) = subscribe(addr, "/events?topic=room", "").await;
    let connecting: Vec<_> = (0..N)
        .map(|_| tokio::spawn(async move { subscribe(addr, "/events?topic=room", "").await }))
        .collect();
    let mut streams = Vec::new();
    for task in connecting {
        streams.push(task.await.expect("connect task"));
    }
    let mut truth: BTreeSet<String> = streams.iter().map(|(_, id)| id.clone()).collect();
    truth.insert(watcher_id.clone());
    let mut view = BTreeSet::new();
    while view != truth {
        let (name, data) = next_event(&mut watcher).await;
        apply(&mut view, &name, &data);
    }

    let hanging_up: Vec<_> = streams
        .into_iter()
        .map(|(raw, _)| tokio::spawn(async move { drop(raw) }))
        .collect();
    for task in hanging_up {
        task.await.expect("hang-up task");
    }
    let alone = BTreeSet::from([watcher_id]);
    while view != alone {
        let (name, data) = next_event(&mut watcher).await;
        apply(&mut view, &name, &data);
    }
}

/// `GET /topics/{topic}` with the admin token.
async fn topic(addr: SocketAddr, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = request(addr, "GET", path, &[("Authorization", &auth)], "").await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_equal_the_truth_after_overlapping_connects_and_disconnects() {
    const N: usize = 32;
    let server = server(&["counted"], 10, false).await;
    let addr = server.local_addr();
    // Every task connects; odd ones hang up at once, while even ones are
    // still connecting: connects and disconnects overlap on two threads.
    let tasks: Vec<_> = (0..N)
        .map(|n| {
            tokio::spawn(async move {
                let (raw, id) = subscribe(addr, "/events?topic=counted", "").await;
                if n % 2 == 1 {
                    drop(raw);
                    None
                } else {
                    Some((raw, id))
                }
            })
        })
        .collect();
    let mut kept: Vec<(Raw, String)> = Vec::new();
    for task in tasks {
        kept.extend(task.await.expect("client task"));
    }
    let truth: BTreeSet<String> = kept.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(truth.len(), N / 2);
    // The hang-ups are noticed asynchronously: ask until the count is
    // right, then the list must be exactly the kept ids.
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (status, body) = topic(addr, "/topics/counted").await;
            if status == 200 && body["subscribers"] == N / 2 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(found.is_ok(), "the count never reached {}", N / 2);
    let (status, body) = topic(addr, "/topics/counted?clients=true&limit=1000").await;
    assert_eq!(status, 200);
    let listed: BTreeSet<String> = body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, truth);
    assert_eq!(server.hub().subscriber_count("counted"), N / 2);
    server.hub().check_invariants().unwrap();

    drop(kept);
    let gone = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if topic(addr, "/topics/counted").await.0 == 404 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the topic outlived its subscribers");
    assert_eq!(server.hub().len(), 0);
}
