//! Join/leave events (`HubConfig::presence`): who receives them, what they
//! carry, their order (PR1: never a leave before the join), the per-topic
//! rate limit and the coalesced `presence` summary driven by the injected
//! `ManualClock`, and a real-thread race of activation, close and other
//! clients' joins. Every test ends with `check_invariants`.

use serde_json::Value;
use ssehub_core::codec::Event;
use ssehub_core::{
    ClientId, ClientStream, Clock, CloseReason, Drain, Hub, HubConfig, ManualClock, PresenceConfig,
    ReserveOptions,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn config(patterns: &[&str], burst: u32) -> HubConfig {
    HubConfig {
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        replay_max_age: None,
        presence: PresenceConfig {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            window: Duration::from_secs(1),
            burst,
            max_listed: 100,
        },
        ..HubConfig::default()
    }
}

fn connect(hub: &Hub, opts: ReserveOptions) -> (ClientId, ClientStream) {
    let r = hub.reserve(opts).unwrap();
    let stream = r.stream();
    (r.activate().unwrap(), stream)
}

fn on(topics: &[&str]) -> ReserveOptions {
    ReserveOptions::new().topics(topics.iter().map(|t| t.to_string()))
}

/// Every frame queued for `stream`, as `(event name, data)`; heartbeats
/// and comments never appear (there are none in these configs).
fn events(stream: &ClientStream) -> Vec<(String, Value)> {
    let mut frames = Vec::new();
    while let Drain::Frames(_) = stream.drain(&mut frames, 1024) {}
    frames
        .iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).unwrap();
            let presence = ["event: join", "event: leave", "event: presence"];
            if presence.iter().any(|p| text.starts_with(p)) {
                assert!(
                    !text.contains("\nid:"),
                    "presence events carry no id: {text}"
                );
            }
            let mut name = String::from("message");
            let mut data = None;
            for line in text.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap_or(Value::String(d.to_owned())));
                }
            }
            (name, data.unwrap_or(Value::Null))
        })
        .collect()
}

#[test]
fn other_subscribers_see_the_join_then_the_leave_with_the_subject() {
    let hub = Hub::new(config(&["rooms/*"], 10), Instant::now());
    let (watcher, watching) = connect(&hub, on(&["rooms/a"]));
    let before = hub.last_event_id();
    let (alice, alices) = connect(&hub, on(&["rooms/a"]).subject("alice"));
    assert_eq!(
        events(&watching),
        [(
            "join".to_owned(),
            serde_json::json!({"topic": "rooms/a", "client": alice.to_string(),
                "sub": "alice", "subscribers": 2})
        )]
    );
    assert_eq!(events(&alices), [], "nobody is told of their own join");
    // Not part of the hub-wide order: no id was consumed (I7, I8).
    assert_eq!(hub.last_event_id(), before);

    // subscribe/unsubscribe are changes too; a client without a subject
    // has no `sub`.
    let (bob, _bobs) = connect(&hub, on(&["lobby"]));
    assert!(hub.subscribe(bob, "rooms/a").unwrap());
    assert!(hub.unsubscribe(bob, "rooms/a").unwrap());
    let seen = events(&watching);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "join");
    assert_eq!(seen[0].1["client"], bob.to_string());
    assert!(seen[0].1.get("sub").is_none());
    assert_eq!(seen[1].0, "leave");
    assert_eq!(seen[1].1["subscribers"], 2);
    assert_eq!(events(&alices).len(), 2, "alice sees bob come and go");

    assert_eq!(
        hub.close(alice, CloseReason::ClientGone),
        ssehub_core::CloseOutcome::Closed
    );
    assert_eq!(
        events(&watching),
        [(
            "leave".to_owned(),
            serde_json::json!({"topic": "rooms/a", "client": alice.to_string(),
                "sub": "alice", "subscribers": 1})
        )]
    );
    // Published events and presence events share the queue in the order
    // they happened.
    hub.publish("rooms/a", &Event::new("hi")).unwrap();
    let (carol, _carols) = connect(&hub, on(&["rooms/a"]));
    let seen = events(&watching);
    assert_eq!(
        seen[0],
        ("message".to_owned(), Value::String("hi".to_owned()))
    );
    assert_eq!(seen[1].1["client"], carol.to_string());
    for id in [watcher, bob, carol] {
        let _ = hub.close(id, CloseReason::ClientGone);
    }
    hub.check_invariants().unwrap();
    assert_eq!(hub.len(), 0);
    assert_eq!(hub.topic_count(), 1, "rooms/a keeps its retained event");
}

#[test]
fn a_client_on_several_presence_topics_joins_each() {
    let hub = Hub::new(config(&["rooms/**", "lobby"], 10), Instant::now());
    let (_w1, lobby) = connect(&hub, on(&["lobby"]));
    let (_w2, deep) = connect(&hub, on(&["rooms/a/b"]));
    let (x, _) = connect(&hub, on(&["lobby", "rooms/a/b", "news"]));
    let lobby = events(&lobby);
    let deep = events(&deep);
    assert_eq!(lobby.len(), 1);
    assert_eq!(lobby[0].1["topic"], "lobby");
    assert_eq!(deep.len(), 1);
    assert_eq!(deep[0].1["topic"], "rooms/a/b");
    assert_eq!(deep[0].1["client"], x.to_string());
    hub.check_invariants().unwrap();
}

#[test]
fn topics_without_presence_get_nothing() {
    for config in [config(&["rooms/*"], 10), config(&[], 10)] {
        let hub = Hub::new(config, Instant::now());
        let (_w, news) = connect(&hub, on(&["news"]));
        let (_v, nested) = connect(&hub, on(&["rooms/a/b"]));
        let (x, _) = connect(&hub, on(&["news", "rooms/a/b"]));
        assert!(hub.subscribe(x, "rooms").unwrap());
        let _ = hub.close(x, CloseReason::ClientGone);
        hub.tick(Instant::now() + Duration::from_secs(5));
        assert_eq!(events(&news), []);
        assert_eq!(events(&nested), []);
        hub.check_invariants().unwrap();
    }
}

#[test]
fn churn_is_rate_limited_per_topic_and_coalesced_into_one_net_summary() {
    let start = Instant::now();
    let clock = ManualClock::new(start);
    let hub = Hub::with_clock(config(&["rooms/*"], 3), clock.clone());
    let (watcher, watching) = connect(&hub, on(&["rooms/a"]));
    let (_other, other_room) = connect(&hub, on(&["rooms/b"]));
    // The watcher's own join was the first change of rooms/a's window.
    let joined: Vec<ClientId> = (0..10).map(|_| connect(&hub, on(&["rooms/a"])).0).collect();
    let seen = events(&watching);
    assert_eq!(
        seen.len(),
        2,
        "the burst of 3 includes the watcher's own join: {seen:?}"
    );
    assert!(seen.iter().all(|(name, _)| name == "join"));
    // Another topic has its own window and burst.
    let (y, _) = connect(&hub, on(&["rooms/b"]));
    assert_eq!(
        events(&other_room).len(),
        1,
        "rooms/b is not limited by rooms/a"
    );

    // Coalesced: joined[2] and joined[3] come and go within the window
    // (in neither list); joined[0], announced, leaves.
    for &id in &[joined[2], joined[3], joined[0]] {
        let _ = hub.close(id, CloseReason::ClientGone);
    }
    hub.check_invariants().unwrap();
    let report = hub.tick(clock.now());
    assert_eq!(events(&watching), [], "nothing before the window ends");
    assert_eq!(report.next_deadline, Some(start + Duration::from_secs(1)));

    clock.advance(Duration::from_secs(1));
    let report = hub.tick(clock.now());
    assert_eq!(report.next_deadline, None, "nothing else is due");
    let seen = events(&watching);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "presence");
    let listed = |key: &str| -> Vec<String> {
        seen[0].1[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["client"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut expected: Vec<ClientId> = joined[4..].to_vec();
    expected.sort();
    assert_eq!(
        listed("joined"),
        expected.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    assert_eq!(listed("left"), [joined[0].to_string()]);
    assert_eq!(seen[0].1["joins"], 6);
    assert_eq!(seen[0].1["leaves"], 1);
    assert_eq!(seen[0].1["subscribers"], 1 + 10 - 3);
    assert_eq!(hub.subscriber_count("rooms/a"), 8);

    // A new window: individual events again.
    let _ = hub.close(joined[1], CloseReason::ClientGone);
    let seen = events(&watching);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "leave");
    assert_eq!(seen[0].1["client"], joined[1].to_string());
    let _ = (watcher, y);
    hub.check_invariants().unwrap();
}

#[test]
fn a_summary_is_pushed_before_the_next_windows_first_event() {
    let clock = ManualClock::new(Instant::now());
    let hub = Hub::with_clock(config(&["room"], 0), clock.clone());
    let (watcher, watching) = connect(&hub, on(&["room"]));
    let (x, _) = connect(&hub, on(&["room"]));
    // No tick: the next change, in the next window, pushes the summary.
    clock.advance(Duration::from_secs(2));
    let _ = hub.close(x, CloseReason::ClientGone);
    let seen = events(&watching);
    assert_eq!(seen.len(), 1, "burst 0: the leave waits for its window");
    assert_eq!(seen[0].0, "presence");
    // The watcher's own join was coalesced too: a summary goes to every
    // subscriber and may list the receiver.
    assert_eq!(
        seen[0].1["joined"],
        serde_json::json!([{"client": watcher.to_string()}, {"client": x.to_string()}])
    );
    clock.advance(Duration::from_secs(1));
    hub.tick(clock.now());
    let seen = events(&watching);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1["left"][0]["client"], x.to_string());

    // Burst 1: the watcher's join was the window's one event, x's join is
    // coalesced; x's leave in the next window comes after the summary
    // that announces x (PR1), not before it.
    let hub = Hub::with_clock(config(&["room"], 1), clock.clone());
    let (_watcher, watching) = connect(&hub, on(&["room"]));
    let (x, _) = connect(&hub, on(&["room"]));
    assert_eq!(events(&watching), []);
    clock.advance(Duration::from_secs(2));
    let _ = hub.close(x, CloseReason::ClientGone);
    let seen = events(&watching);
    let names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["presence", "leave"]);
    assert_eq!(
        seen[0].1["joined"],
        serde_json::json!([{"client": x.to_string()}])
    );
    assert_eq!(seen[1].1["client"], x.to_string());
    hub.check_invariants().unwrap();
}

#[test]
fn a_presence_push_that_overflows_closes_the_slow_subscriber_at_the_next_tick() {
    let hub = Hub::new(
        HubConfig {
            queue_max_frames: 1,
            ..config(&["room"], 10)
        },
        Instant::now(),
    );
    let (slow, slow_stream) = connect(&hub, on(&["room"]));
    let (_a, _) = connect(&hub, on(&["room"]));
    // The first join filled its queue; the second overflows it.
    let (_b, _) = connect(&hub, on(&["room"]));
    assert_eq!(slow_stream.closed_reason(), Some(CloseReason::SlowConsumer));
    assert!(hub.is_active(slow), "the registry close waits for the tick");
    hub.tick(Instant::now());
    assert!(!hub.is_active(slow));
    assert_eq!(hub.subscriber_count("room"), 2);
    assert_eq!(hub.metrics().closes_for(CloseReason::SlowConsumer), 1);
    hub.check_invariants().unwrap();
}

#[test]
fn shutdown_sends_no_leaves() {
    let hub = Hub::new(config(&["room"], 10), Instant::now());
    let (_w, watching) = connect(&hub, on(&["room"]));
    let (_x, _) = connect(&hub, on(&["room"]));
    assert_eq!(events(&watching).len(), 1);
    hub.shutdown(None).unwrap();
    let seen = events(&watching);
    assert!(seen.iter().all(|(name, _)| name == "message"), "{seen:?}");
    assert_eq!(hub.len(), 0);
}

/// What an observer present from the start knows: the set of clients
/// present, applied event by event. A join of a client it holds, or a
/// leave of one it does not, breaks PR1.
#[derive(Default)]
struct View {
    present: BTreeSet<String>,
    seen: HashMap<String, Vec<bool>>,
}

impl View {
    fn apply(&mut self, name: &str, data: &Value) {
        let mut change = |client: &str, joined: bool| {
            self.seen.entry(client.to_owned()).or_default().push(joined);
            if joined {
                assert!(
                    self.present.insert(client.to_owned()),
                    "joined twice: {client}"
                );
            } else {
                assert!(self.present.remove(client), "leave before join: {client}");
            }
        };
        match name {
            "join" | "leave" => change(data["client"].as_str().unwrap(), name == "join"),
            "presence" => {
                for (key, joined) in [("joined", true), ("left", false)] {
                    for c in data[key].as_array().unwrap() {
                        change(c["client"].as_str().unwrap(), joined);
                    }
                }
            }
            other => panic!("unexpected event {other}"),
        }
    }
}

/// Activation ∥ close of the same client ∥ other clients joining and
/// leaving, on real threads; a ticker advances a `ManualClock` so windows
/// end and summaries flush meanwhile. The observer's view must never see a
/// leave before a join, must end empty, and with no coalescing must see
/// exactly `[join, leave]` for every activated client and nothing for one
/// closed before activation. Nothing leaks.
fn race(burst: u32, rounds: usize) {
    let clock = ManualClock::new(Instant::now());
    let mut config = config(&["room"], burst);
    config.queue_max_frames = 1 << 20;
    config.queue_max_bytes = 1 << 30;
    config.presence.window = Duration::from_millis(5);
    config.presence.max_listed = usize::MAX;
    let hub = Hub::with_clock(config, clock.clone());
    let (observer, observing) = connect(&hub, on(&["room"]));
    let done = Arc::new(AtomicBool::new(false));

    let (ids, closing) = mpsc::channel::<ClientId>();
    let closer = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            for id in closing {
                let _ = hub.close(id, CloseReason::ClientGone);
            }
        })
    };
    let activator = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            let mut activated = Vec::new();
            let mut refused = Vec::new();
            for n in 0..rounds {
                let opts = on(&["room"]).subject(format!("u{n}"));
                let r = hub.reserve(opts).unwrap();
                let id = r.id();
                ids.send(id).unwrap();
                match r.activate() {
                    Ok(id) => activated.push(id),
                    Err(_) => refused.push(id),
                }
            }
            (activated, refused)
        })
    };
    let joiner = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            for _ in 0..rounds {
                let (id, _) = connect(&hub, on(&["room"]));
                all.push(id);
                let _ = hub.close(id, CloseReason::ClientGone);
            }
            all
        })
    };
    let ticker = {
        let hub = hub.clone();
        let clock = clock.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            // Time moves on more often than it ticks, so windows also end
            // with no tick: their summaries go out with the next change.
            let mut n = 0u32;
            while !done.load(Ordering::Acquire) {
                clock.advance(Duration::from_millis(1));
                n += 1;
                if n % 8 == 0 {
                    hub.tick(clock.now());
                }
                std::thread::yield_now();
            }
        })
    };
    let (activated, refused) = activator.join().unwrap();
    closer.join().unwrap();
    let joined = joiner.join().unwrap();
    done.store(true, Ordering::Release);
    ticker.join().unwrap();
    clock.advance(Duration::from_secs(1));
    hub.tick(clock.now());

    let mut view = View::default();
    for (name, data) in events(&observing) {
        view.apply(&name, &data);
    }
    assert_eq!(view.present, BTreeSet::new(), "everyone left");
    if burst == u32::MAX {
        for id in activated.iter().chain(&joined) {
            assert_eq!(
                view.seen.get(&id.to_string()),
                Some(&vec![true, false]),
                "{id}"
            );
        }
        for id in &refused {
            assert_eq!(view.seen.get(&id.to_string()), None, "{id}");
        }
    }
    assert_eq!(hub.len(), 1, "only the observer is left");
    hub.check_invariants().unwrap();
    let _ = hub.close(observer, CloseReason::ClientGone);
    hub.check_invariants().unwrap();
    assert_eq!(hub.len(), 0);
    assert_eq!(hub.topic_count(), 0);
}

#[test]
fn activate_close_and_other_joins_race_without_a_leave_before_a_join() {
    race(u32::MAX, 2000);
}

#[test]
fn coalesced_summaries_under_a_racing_churn_keep_the_view_exact() {
    race(2, 2000);
}

/// Kills `patterns.is_empty() || shut_down` -> `&&` in `presence_change`:
/// once the hub is shut down, the clients it closes announce nothing to
/// each other: every client's stream ends with the shutdown frame.
#[test]
fn a_shutdown_announces_no_leaves() {
    let hub = Hub::new(config(&["rooms/*"], 10), Instant::now());
    let (_a, sa) = connect(&hub, on(&["rooms/x"]));
    let (_b, sb) = connect(&hub, on(&["rooms/x"]));
    let (_c, sc) = connect(&hub, on(&["rooms/x"]));
    for stream in [&sa, &sb, &sc] {
        let _ = events(stream);
    }
    hub.shutdown(Some(&Event::new("bye").with_event("shutdown")))
        .unwrap();
    for stream in [&sa, &sb, &sc] {
        let got = events(stream);
        let names: Vec<&str> = got.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["shutdown"], "{got:?}");
    }
    hub.check_invariants().unwrap();
}
