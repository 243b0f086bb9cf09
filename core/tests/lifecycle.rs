//! Registration, close and slot reuse: I1, I3, I4, I5, I6.

use bytes::Bytes;
use ssehub_core::codec::Event;
use ssehub_core::{
    ActivateError, ClientStream, CloseOutcome, CloseReason, Drain, Hub, HubConfig, PublishError,
    ReserveOptions, SendError, SubscribeError,
};
use std::time::Instant;

fn quiet() -> HubConfig {
    HubConfig {
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        replay_capacity: 0,
        ..HubConfig::default()
    }
}

fn frames(stream: &ClientStream) -> Vec<String> {
    let mut out = Vec::new();
    while let Drain::Frames(_) = stream.drain(&mut out, 64) {}
    out.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

fn assert_empty(hub: &Hub) {
    assert_eq!(hub.len(), 0, "I5: a client slot survived");
    assert_eq!(hub.topic_count(), 0, "I5: a topic survived");
    assert_eq!(hub.deadline_count(), 0, "I5: a deadline survived");
    hub.check_invariants().unwrap();
}

#[test]
fn close_before_activate_leaves_nothing() {
    let hub = Hub::new(quiet(), Instant::now());
    let reservation = hub
        .reserve(ReserveOptions::new().topic("a").topic("b").peer("1.2.3.4"))
        .unwrap();
    let id = reservation.id();
    let stream = reservation.stream();
    assert_eq!(
        hub.close(id, CloseReason::ClientGone),
        CloseOutcome::Deferred
    );
    assert_eq!(
        hub.close(id, CloseReason::ClientGone),
        CloseOutcome::AlreadyClosed,
        "I6"
    );
    assert_eq!(
        stream.drain(&mut Vec::new(), 8),
        Drain::Closed(CloseReason::ClientGone)
    );
    assert_eq!(
        hub.send(id, &Event::new("late")),
        Err(SendError::Closed(CloseReason::ClientGone)),
        "I3: nothing is enqueued after close"
    );
    assert_eq!(
        reservation.activate(),
        Err(ActivateError::ClosedBeforeActivation(
            CloseReason::ClientGone
        ))
    );
    assert_eq!(hub.subscriber_count("a"), 0);
    assert_empty(&hub);
    let metrics = hub.metrics();
    assert_eq!(
        metrics.closes_for(CloseReason::ClientGone),
        1,
        "one close, counted once"
    );
    assert_eq!(metrics.clients_close_pending, 0);
}

#[test]
fn dropped_reservation_leaks_nothing() {
    let hub = Hub::new(quiet(), Instant::now());
    let reservation = hub
        .reserve(ReserveOptions::new().topic("a").peer("p"))
        .unwrap();
    let stream = reservation.stream();
    drop(reservation);
    assert_eq!(
        stream.drain(&mut Vec::new(), 8),
        Drain::Closed(CloseReason::ClientGone)
    );
    assert_empty(&hub);
    // The peer count was released too: the limit of one admits a new client.
    let hub = Hub::new(
        HubConfig {
            max_clients_per_peer: 1,
            ..quiet()
        },
        Instant::now(),
    );
    drop(hub.reserve(ReserveOptions::new().peer("p")).unwrap());
    let again = hub.reserve(ReserveOptions::new().peer("p")).unwrap();
    assert!(hub.reserve(ReserveOptions::new().peer("p")).is_err());
    drop(again);
}

#[test]
fn dropping_a_close_pending_reservation_also_cleans_up() {
    let hub = Hub::new(quiet(), Instant::now());
    let reservation = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let _ = hub.close(reservation.id(), CloseReason::Kicked);
    drop(reservation);
    assert_empty(&hub);
}

#[test]
fn close_after_activate_removes_from_every_topic() {
    let hub = Hub::new(quiet(), Instant::now());
    let r = hub
        .reserve(ReserveOptions::new().topics(["a", "b"]))
        .unwrap();
    let stream = r.stream();
    let id = r.activate().unwrap();
    let other = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let other_stream = other.stream();
    let other_id = other.activate().unwrap();
    assert_eq!(hub.subscriber_count("a"), 2);
    assert_eq!(hub.close(id, CloseReason::ClientGone), CloseOutcome::Closed);
    assert_eq!(hub.subscriber_count("a"), 1, "I1");
    assert_eq!(hub.subscriber_count("b"), 0, "I1");
    let report = hub.publish("b", &Event::new("x")).unwrap();
    assert_eq!(
        report.delivered, 0,
        "I3: publish after close reaches nobody"
    );
    hub.publish("a", &Event::new("y")).unwrap();
    assert_eq!(
        stream.drain(&mut Vec::new(), 8),
        Drain::Closed(CloseReason::ClientGone)
    );
    assert_eq!(frames(&other_stream).len(), 1);
    assert_eq!(
        hub.close(id, CloseReason::Kicked),
        CloseOutcome::AlreadyClosed,
        "I6"
    );
    let _ = hub.close(other_id, CloseReason::ClientGone);
    assert_empty(&hub);
}

#[test]
fn stale_id_never_touches_the_slots_new_occupant() {
    let hub = Hub::new(quiet(), Instant::now());
    let first = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let old = first.activate().unwrap();
    let _ = hub.close(old, CloseReason::ClientGone);
    let second = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let stream = second.stream();
    let new = second.activate().unwrap();
    assert_eq!(old.index(), new.index(), "the slot was reused");
    assert_ne!(old, new);

    assert_eq!(
        hub.send(old, &Event::new("for old")),
        Err(SendError::UnknownClient),
        "I4"
    );
    assert_eq!(
        hub.subscribe(old, "b"),
        Err(SubscribeError::UnknownClient),
        "I4"
    );
    assert_eq!(
        hub.unsubscribe(old, "a"),
        Err(SubscribeError::UnknownClient),
        "I4"
    );
    assert!(!hub.flushed(old, Instant::now()), "I4");
    assert_eq!(
        hub.close(old, CloseReason::Kicked),
        CloseOutcome::AlreadyClosed,
        "I4"
    );
    assert!(hub.is_active(new));
    assert!(
        frames(&stream).is_empty(),
        "I4: nothing reached the new occupant"
    );
    assert_eq!(hub.client_topics(new).unwrap(), ["a"]);

    let never = "7.999999".parse().unwrap();
    assert_eq!(hub.close(never, CloseReason::Kicked), CloseOutcome::Unknown);
    let _ = hub.close(new, CloseReason::ClientGone);
    assert_empty(&hub);
}

#[test]
fn subscribe_and_unsubscribe_follow_the_client() {
    let hub = Hub::new(quiet(), Instant::now());
    let r = hub.reserve(ReserveOptions::new()).unwrap();
    let id = r.id();
    assert_eq!(
        hub.subscribe(id, "pre"),
        Ok(true),
        "a reserved client can subscribe"
    );
    let stream = r.stream();
    let id = r.activate().unwrap();
    assert_eq!(hub.subscribe(id, "live"), Ok(true));
    assert_eq!(hub.subscribe(id, "live"), Ok(false));
    assert_eq!(hub.client_topics(id).unwrap(), ["live", "pre"]);
    hub.publish("pre", &Event::new("1")).unwrap();
    hub.publish("live", &Event::new("2")).unwrap();
    assert_eq!(frames(&stream).len(), 2);
    assert_eq!(hub.unsubscribe(id, "pre"), Ok(true));
    assert_eq!(hub.unsubscribe(id, "pre"), Ok(false));
    assert_eq!(hub.publish("pre", &Event::new("3")).unwrap().delivered, 0);
    assert_eq!(hub.topic_count(), 1, "I5: the unused topic was dropped");
    assert!(matches!(
        hub.subscribe(id, "bad\n"),
        Err(SubscribeError::InvalidTopic(_))
    ));
    hub.check_invariants().unwrap();
    let _ = hub.close(id, CloseReason::ClientGone);
    assert_empty(&hub);
}

#[test]
fn limits_are_typed_errors() {
    use ssehub_core::{PublishError, ReserveError};
    let config = HubConfig {
        max_clients: 2,
        max_topics_per_client: 2,
        max_topics: 2,
        max_event_bytes: 64,
        ..quiet()
    };
    let hub = Hub::new(config, Instant::now());
    assert_eq!(
        hub.reserve(ReserveOptions::new().topics(["a", "b", "c"]))
            .unwrap_err(),
        ReserveError::TooManyTopics { limit: 2 }
    );
    assert!(matches!(
        hub.reserve(ReserveOptions::new().topic("")).unwrap_err(),
        ReserveError::InvalidTopic { .. }
    ));
    let a = hub
        .reserve(ReserveOptions::new().topics(["a", "b"]))
        .unwrap();
    let a = a.activate().unwrap();
    let b = hub.reserve(ReserveOptions::new()).unwrap();
    assert_eq!(
        hub.reserve(ReserveOptions::new()).unwrap_err(),
        ReserveError::TooManyClients { limit: 2 }
    );
    let b = b.activate().unwrap();
    assert_eq!(
        hub.subscribe(b, "c"),
        Err(SubscribeError::TooManyTopics { limit: 2 })
    );
    assert_eq!(
        hub.subscribe(a, "c"),
        Err(SubscribeError::TooManyTopicsForClient { limit: 2 })
    );
    // With nothing retained, a publish to a topic nobody reads needs no
    // topic at all: it is numbered, delivered to no one, and the full table
    // is left as it was.
    assert_eq!(hub.publish("c", &Event::new("x")).unwrap().delivered, 0);
    assert_eq!(hub.topic_count(), 2);
    assert!(matches!(
        hub.publish("a", &Event::new("x".repeat(100))).unwrap_err(),
        PublishError::Encode(_)
    ));
    assert!(matches!(
        hub.publish("a", &Event::new("x").with_event("bad\r"))
            .unwrap_err(),
        PublishError::Encode(_)
    ));
    let _ = hub.close(a, CloseReason::ClientGone);
    let _ = hub.close(b, CloseReason::ClientGone);
    assert_empty(&hub);
}

#[test]
fn publishing_to_a_new_topic_past_the_limit_is_a_typed_error() {
    let hub = Hub::new(
        HubConfig {
            max_topics: 1,
            replay_capacity: 4,
            ..quiet()
        },
        Instant::now(),
    );
    // A subscriber on "a": a topic with subscribers is never evicted to
    // make room, so the table stays full.
    let r = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    r.activate().unwrap();
    let before = hub.last_event_id();
    hub.publish("a", &Event::new("x")).unwrap();
    assert_eq!(
        hub.publish("b", &Event::new("x")).unwrap_err(),
        PublishError::TooManyTopics { limit: 1 }
    );
    // The refused publish consumed no id.
    let next = hub.publish("a", &Event::new("y")).unwrap().id;
    assert_eq!(next.seq(), before.seq() + 2);
    hub.check_invariants().unwrap();
}

#[test]
fn the_client_counts_follow_the_states() {
    let hub = Hub::new(quiet(), Instant::now());
    assert!(hub.is_empty());
    let reserved = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    assert!(!hub.is_empty());
    let active = hub
        .reserve(ReserveOptions::new().topic("a"))
        .unwrap()
        .activate()
        .unwrap();
    let m = hub.metrics();
    assert_eq!(
        (
            m.clients_reserved,
            m.clients_active,
            m.clients_close_pending
        ),
        (1, 1, 0)
    );
    let _ = hub.close(reserved.id(), CloseReason::ClientGone);
    let m = hub.metrics();
    assert_eq!(
        (
            m.clients_reserved,
            m.clients_active,
            m.clients_close_pending
        ),
        (1, 1, 1)
    );
    drop(reserved);
    let _ = hub.close(active, CloseReason::ClientGone);
    assert!(hub.is_empty());
}

#[test]
fn close_guard_closes_on_drop_unless_disarmed() {
    let hub = Hub::new(quiet(), Instant::now());
    let id = hub
        .reserve(ReserveOptions::new().topic("a"))
        .unwrap()
        .activate()
        .unwrap();
    let mut guard = hub.close_guard(id);
    guard.set_reason(CloseReason::WriteError);
    drop(guard);
    assert!(!hub.is_active(id));
    assert_eq!(hub.metrics().closes_for(CloseReason::WriteError), 1);
    let id = hub
        .reserve(ReserveOptions::new())
        .unwrap()
        .activate()
        .unwrap();
    hub.close_guard(id).disarm();
    assert!(hub.is_active(id));
    let _ = hub.close(id, CloseReason::ClientGone);
    assert_empty(&hub);
}

#[test]
fn public_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Hub>();
    assert_send_sync::<ClientStream>();
    assert_send_sync::<ssehub_core::Reservation>();
    assert_send_sync::<ssehub_core::CloseGuard>();
}

/// Found by the verification suite: `subscribe` once looked at the topic
/// set and limit before the state, telling callers a dead client was
/// subscribed.
#[test]
fn subscribe_to_a_close_pending_client_is_refused() {
    let config = HubConfig {
        max_topics_per_client: 1,
        ..HubConfig::default()
    };
    let hub = Hub::new(config, Instant::now());
    let reservation = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let id = reservation.id();
    assert_eq!(
        hub.close(id, CloseReason::ClientGone),
        CloseOutcome::Deferred
    );
    assert_eq!(hub.client_topics(id), None, "the client is not live");
    assert_eq!(hub.unsubscribe(id, "a"), Err(SubscribeError::UnknownClient));

    assert_eq!(
        hub.subscribe(id, "a"),
        Err(SubscribeError::UnknownClient),
        "a topic it asked for at reserve time"
    );
    assert_eq!(
        hub.subscribe(id, "b"),
        Err(SubscribeError::UnknownClient),
        "a new topic, with the client at its topic limit"
    );
    drop(reservation);
    assert_eq!(hub.len(), 0);
}

/// A reserved client whose queue overflows (sends before activation) is
/// closed as a slow consumer, counted once, and its activation says so.
#[test]
fn overflow_before_activation_is_counted_once_as_slow_consumer() {
    let hub = Hub::new(
        HubConfig {
            queue_max_frames: 1,
            ..quiet()
        },
        Instant::now(),
    );
    let r = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    hub.send(r.id(), &Event::new("fits")).unwrap();
    assert_eq!(
        hub.send(r.id(), &Event::new("does not")),
        Err(SendError::SlowConsumer)
    );
    assert_eq!(
        r.activate(),
        Err(ActivateError::ClosedBeforeActivation(
            CloseReason::SlowConsumer
        ))
    );
    let metrics = hub.metrics();
    assert_eq!(metrics.closes_for(CloseReason::SlowConsumer), 1);
    let total: u64 = metrics.closes.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 1, "one client, one close");
    assert_empty(&hub);
}

/// A hub (`config` with a replay ring of 8) that has published one event
/// "old" on `t`, and a reservation on `t` resuming from that event, so its
/// activation replays only what comes after.
fn resuming_after_one_event(config: HubConfig) -> (Hub, ssehub_core::Reservation) {
    let hub = Hub::new(
        HubConfig {
            replay_capacity: 8,
            ..config
        },
        Instant::now(),
    );
    let first = hub.publish("t", &Event::new("old")).unwrap().id;
    let r = hub
        .reserve(
            ReserveOptions::new()
                .topic("t")
                .last_event_id(first.to_string()),
        )
        .unwrap();
    (hub, r)
}

/// `Reservation::send_frame` is `Hub::send_frame` for the reserved client:
/// the same checks, the frame ahead of replay and live events, refused
/// once a close arrived, and an overflow closes the client once.
#[test]
fn a_reservation_queues_its_initial_frames_like_send_frame() {
    let (hub, r) = resuming_after_one_event(HubConfig {
        queue_max_frames: 3,
        ..quiet()
    });
    let stream = r.stream();
    for bad in [&b"id: 1\ndata: x\n\n"[..], b"data: no blank line\n"] {
        assert!(matches!(
            r.send_frame(Bytes::copy_from_slice(bad)),
            Err(SendError::InvalidFrame { .. })
        ));
    }
    let too_big = Bytes::from(format!(
        "data: {}\n\n",
        "x".repeat(hub.config().max_event_bytes)
    ));
    assert!(matches!(r.send_frame(too_big), Err(SendError::Encode(_))));
    r.send_frame(Bytes::from_static(
        b"retry: 3000\nevent: welcome\ndata: {}\n\n",
    ))
    .unwrap();
    hub.publish("t", &Event::new("missed")).unwrap();
    let id = r.activate().unwrap();
    hub.publish("t", &Event::new("live")).unwrap();
    let got = frames(&stream);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], "retry: 3000\nevent: welcome\ndata: {}\n\n");
    assert!(
        got[1].ends_with("data: missed\n\n"),
        "replay second: {got:?}"
    );
    assert!(got[2].ends_with("data: live\n\n"), "live last: {got:?}");
    assert_eq!(hub.close(id, CloseReason::ClientGone), CloseOutcome::Closed);

    // After a close: refused, nothing queued (I3).
    let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    assert_eq!(
        hub.close(r.id(), CloseReason::Kicked),
        CloseOutcome::Deferred
    );
    assert_eq!(
        r.send_frame(Bytes::from_static(b"data: late\n\n")),
        Err(SendError::Closed(CloseReason::Kicked))
    );
    drop(r);

    // Overflow: closed as a slow consumer, counted once.
    let r = hub.reserve(ReserveOptions::new()).unwrap();
    for _ in 0..3 {
        r.send_frame(Bytes::from_static(b"data: x\n\n")).unwrap();
    }
    assert_eq!(
        r.send_frame(Bytes::from_static(b"data: x\n\n")),
        Err(SendError::SlowConsumer)
    );
    assert_eq!(
        r.activate(),
        Err(ActivateError::ClosedBeforeActivation(
            CloseReason::SlowConsumer
        ))
    );
    assert_eq!(hub.metrics().closes_for(CloseReason::SlowConsumer), 1);
    // Topic `t` stays for its retained events; no client remains (I5).
    assert_eq!(hub.len(), 0);
    assert_eq!(hub.deadline_count(), 0);
    hub.check_invariants().unwrap();
}

/// `Reservation::send_welcome` queues the hub-encoded welcome ahead of the
/// replay, as `send_frame` would queue the same bytes; a bad name, a frame
/// over `max_event_bytes` and a close that came first are refused, and
/// nothing is queued for them.
#[test]
fn a_reservation_queues_the_welcome_ahead_of_its_replay() {
    use ssehub_core::codec::{welcome_frame, EncodeError};
    use std::time::Duration;
    let (hub, r) = resuming_after_one_event(HubConfig {
        max_event_bytes: 64,
        ..quiet()
    });
    let stream = r.stream();
    let retry = Some(Duration::from_secs(3));
    assert_eq!(
        r.send_welcome("wel\ncome", retry),
        Err(SendError::Encode(EncodeError::EventNameHasLineBreak))
    );
    assert!(matches!(
        r.send_welcome(&"w".repeat(64), retry),
        Err(SendError::Encode(EncodeError::TooLarge { limit: 64, .. }))
    ));
    r.send_welcome("welcome", retry).unwrap();
    hub.publish("t", &Event::new("missed")).unwrap();
    let id = r.activate().unwrap();
    let got = frames(&stream);
    assert_eq!(got.len(), 2, "{got:?}");
    let welcome = welcome_frame("welcome", retry, id).unwrap();
    assert_eq!(got[0].as_bytes(), &welcome[..]);
    assert_eq!(
        got[0],
        format!("retry: 3000\nevent: welcome\ndata: {{\"clientId\":\"{id}\"}}\n\n")
    );
    assert!(
        got[1].ends_with("data: missed\n\n"),
        "replay second: {got:?}"
    );
    assert_eq!(hub.close(id, CloseReason::ClientGone), CloseOutcome::Closed);

    let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    let stream = r.stream();
    assert_eq!(
        hub.close(r.id(), CloseReason::Kicked),
        CloseOutcome::Deferred
    );
    assert_eq!(
        r.send_welcome("welcome", retry),
        Err(SendError::Closed(CloseReason::Kicked))
    );
    drop(r);
    assert!(frames(&stream).is_empty());
    // Topic `t` stays for its retained events; no client remains (I5).
    assert_eq!(hub.len(), 0);
    hub.check_invariants().unwrap();
}

#[test]
fn an_invalid_topic_is_named_in_the_error_cut_at_a_char_boundary() {
    use ssehub_core::{ReserveError, TopicError};
    let hub = Hub::new(quiet(), Instant::now());
    assert_eq!(
        hub.reserve(ReserveOptions::new().topic("a\nb"))
            .unwrap_err(),
        ReserveError::InvalidTopic {
            topic: "a\nb".to_owned(),
            error: TopicError::ControlCharacter { at: 1 },
        }
    );
    // 401 bytes; byte 64 is inside an `é`, so the name is cut at 63.
    let long = format!("a{}", "é".repeat(200));
    assert_eq!(
        hub.reserve(ReserveOptions::new().topic(long.clone()))
            .unwrap_err(),
        ReserveError::InvalidTopic {
            topic: long[..63].to_owned(),
            error: TopicError::TooLong { len: 401 },
        }
    );
    assert_empty(&hub);
}

/// Reserve finds the topics that exist and activation joins those without
/// a second lookup; when one of them was dropped in between (its last
/// subscriber left), activation must find it dead and create it again,
/// or the client would be subscribed to a topic no publish reaches (S2).
#[test]
fn a_topic_dropped_between_reserve_and_activate_is_created_again() {
    let hub = Hub::new(quiet(), Instant::now());
    let first = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    drop(first.stream());
    let first = first.activate().unwrap();
    // Found at reserve: "t" exists with one subscriber.
    let late = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    let stream = late.stream();
    assert_eq!(
        hub.close(first, CloseReason::ClientGone),
        CloseOutcome::Closed
    );
    assert_eq!(hub.topic_count(), 0, "the last close dropped t");
    let late = late.activate().unwrap();
    hub.check_invariants().unwrap();
    assert_eq!(hub.subscriber_count("t"), 1);
    assert_eq!(hub.publish("t", &Event::new("news")).unwrap().delivered, 1);
    assert!(frames(&stream).concat().contains("data: news"));
    assert_eq!(
        hub.close(late, CloseReason::ClientGone),
        CloseOutcome::Closed
    );
    assert_empty(&hub);
}

/// A reserved client's topic set changed by subscribe or unsubscribe is
/// looked up afresh at activation, not taken from what reserve found.
#[test]
fn subscribing_or_unsubscribing_a_reserved_client_is_honoured_at_activation() {
    let hub = Hub::new(quiet(), Instant::now());
    let keeper = hub
        .reserve(ReserveOptions::new().topic("a").topic("b"))
        .unwrap();
    drop(keeper.stream());
    let keeper = keeper.activate().unwrap();

    let added = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    assert_eq!(hub.subscribe(added.id(), "c"), Ok(true));
    let added = added.activate().unwrap();
    assert_eq!(
        hub.client_topics(added),
        Some(vec!["a".to_owned(), "c".to_owned()])
    );
    assert_eq!(hub.subscriber_count("c"), 1);

    let removed = hub
        .reserve(ReserveOptions::new().topic("a").topic("b"))
        .unwrap();
    assert_eq!(hub.unsubscribe(removed.id(), "a"), Ok(true));
    let removed = removed.activate().unwrap();
    assert_eq!(hub.client_topics(removed), Some(vec!["b".to_owned()]));
    assert_eq!(hub.subscriber_count("a"), 2, "keeper and added only");
    assert_eq!(hub.subscriber_count("b"), 2, "keeper and removed");
    hub.check_invariants().unwrap();
    for id in [keeper, added, removed] {
        assert_eq!(hub.close(id, CloseReason::ClientGone), CloseOutcome::Closed);
    }
    assert_empty(&hub);
}
