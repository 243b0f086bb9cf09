//! Boundaries of the registry that cargo-mutants found untested
//! (DESIGN.md §10, "Mutation testing"): each test names the mutant it
//! kills. Limits hold exactly at their value, the bookkeeping of a peer's
//! created topics survives a partial drop, a heartbeat never queues behind
//! unsent frames, and a ring's expiry is refiled after a partial expiry.

use ssehub_core::codec::EncodeError;
use ssehub_core::codec::Event;
use ssehub_core::{
    ActivateError, ClientId, CloseOutcome, Drain, Hub, HubConfig, ReserveError, ReserveOptions,
    SendError,
};
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);

fn quiet() -> HubConfig {
    HubConfig {
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        replay_max_age: None,
        ..HubConfig::default()
    }
}

fn join(hub: &Hub, topics: &[&str], peer: &str) -> Result<ClientId, ActivateError> {
    let reservation = hub
        .reserve(
            ReserveOptions::new()
                .topics(topics.iter().copied())
                .peer(peer),
        )
        .expect("reserve");
    reservation.activate()
}

/// Kills `flushed -> bool with false`.
#[test]
fn flushed_says_whether_the_id_is_live() {
    let t0 = Instant::now();
    let hub = Hub::new(quiet(), t0);
    let id = join(&hub, &["t"], "p").expect("activate");
    assert!(hub.flushed(id, t0 + S));
    let _ = hub.close(id, ssehub_core::CloseReason::ClientGone);
    assert!(!hub.flushed(id, t0 + S));
}

/// Kills `Registry::gone`'s `<` → `<=`: an id of the next generation, not
/// handed out yet, is unknown, not "already closed".
#[test]
fn an_id_from_the_next_generation_is_unknown() {
    let hub = Hub::new(quiet(), Instant::now());
    let id = join(&hub, &["t"], "p").expect("activate");
    let _ = hub.close(id, ssehub_core::CloseReason::ClientGone);
    assert_eq!(
        hub.close(id, ssehub_core::CloseReason::ClientGone),
        CloseOutcome::AlreadyClosed
    );
    let next: ClientId = format!("{}.{}", id.index(), id.generation().get() + 1)
        .parse()
        .expect("id");
    assert_eq!(
        hub.close(next, ssehub_core::CloseReason::ClientGone),
        CloseOutcome::Unknown
    );
}

/// Kills `topics_for`'s `>` → `>=` (both the table and the per-client
/// budget) and `+` → `*`: the limits hold exactly at their value.
#[test]
fn topic_limits_hold_exactly_at_their_value() {
    let config = HubConfig {
        max_topics: 3,
        max_created_topics_per_client: 2,
        ..quiet()
    };
    let hub = Hub::new(config, Instant::now());
    // Exactly the per-client budget: allowed.
    join(&hub, &["a", "b"], "p1").expect("two new topics fit a budget of two");
    // Two kept and two new would make 4 > 3: refused.
    assert_eq!(
        join(&hub, &["c", "d"], "p2"),
        Err(ActivateError::TooManyTopics { limit: 3 })
    );
    // Exactly the table's size: 2 + 1 = 3 is allowed.
    join(&hub, &["c"], "p3").expect("the table's last place");
    assert_eq!(hub.topic_count(), 3);
    // A full table refuses one more: 3 + 1 > 3 (and 3 * 1 > 3 is false).
    assert_eq!(
        join(&hub, &["e"], "p4"),
        Err(ActivateError::TooManyTopics { limit: 3 })
    );
}

/// Kills `uncharge_creator`'s `==` → `!=`: when one of a peer's two
/// created topics is dropped, the other still counts against its budget.
#[test]
fn a_peers_remaining_created_topic_still_counts_after_one_is_dropped() {
    let config = HubConfig {
        max_created_topics_per_peer: 2,
        replay_capacity: 0,
        ..quiet()
    };
    let hub = Hub::new(config, Instant::now());
    let first = join(&hub, &["a"], "peer").expect("first topic");
    let _second = join(&hub, &["b"], "peer").expect("second topic");
    let _ = hub.close(first, ssehub_core::CloseReason::ClientGone);
    assert_eq!(
        hub.topic_count(),
        1,
        "`a` was dropped with its last subscriber"
    );
    join(&hub, &["c"], "peer").expect("one place freed");
    assert_eq!(
        join(&hub, &["d"], "peer"),
        Err(ActivateError::TopicBudget { limit: 2 }),
        "`b` and `c` still count"
    );
    hub.check_invariants().expect("H2");
}

/// Kills `due_action`'s `||` → `&&`: a client whose queue still holds an
/// unsent frame gets no heartbeat behind it, however long it waits.
#[test]
fn no_heartbeat_queues_behind_unsent_frames() {
    let t0 = Instant::now();
    let config = HubConfig {
        heartbeat_interval: Some(15 * S),
        replay_capacity: 0,
        ..quiet()
    };
    let hub = Hub::new(config, t0);
    let reservation = hub
        .reserve(ReserveOptions::new().topic("t"))
        .expect("reserve");
    let stream = reservation.stream();
    reservation.activate().expect("activate");
    let _ = hub.publish("t", &Event::new("unsent")).expect("publish");
    for second in [16, 31, 46] {
        let _ = hub.tick(t0 + second * S);
    }
    let mut out = Vec::new();
    assert_eq!(
        stream.drain(&mut out, 64),
        Drain::Frames(1),
        "only the event: {out:?}"
    );
}

/// Kills `expire_topics`' deleted `!`: after a tick expires a ring's
/// older events, the ring is filed again for the rest, which expire on
/// time.
#[test]
fn a_partly_expired_ring_expires_the_rest_on_time() {
    let t0 = Instant::now();
    let config = HubConfig {
        replay_max_age: Some(60 * S),
        ..quiet()
    };
    let hub = Hub::new(config, t0);
    let _ = hub.publish("t", &Event::new("old")).expect("publish");
    let _ = hub.tick(t0 + 50 * S);
    let _ = hub.publish("t", &Event::new("newer")).expect("publish");
    let report = hub.tick(t0 + 61 * S);
    assert_eq!(report.expired_events, 1, "{report:?}");
    assert_eq!(hub.topic_count(), 1);
    let report = hub.tick(t0 + 111 * S);
    assert_eq!(report.expired_events, 1, "the rest expired too: {report:?}");
    assert_eq!(hub.topic_count(), 0);
    assert_eq!(hub.retained_bytes(), 0);
}

/// Kills `*count == 0` -> `!= 0` in `reserve`: a refused reservation must
/// leave the peer's count as it was, so the peer stays at its limit.
#[test]
fn a_peer_at_its_limit_stays_refused() {
    let hub = Hub::new(
        HubConfig {
            max_clients_per_peer: 1,
            ..quiet()
        },
        Instant::now(),
    );
    let first = hub.reserve(ReserveOptions::new().peer("p")).expect("first");
    for _ in 0..3 {
        assert!(matches!(
            hub.reserve(ReserveOptions::new().peer("p")),
            Err(ReserveError::TooManyClientsForPeer { .. })
        ));
    }
    hub.check_invariants().expect("invariants");
    drop(first);
    let again = hub.reserve(ReserveOptions::new().peer("p")).expect("freed");
    drop(again);
    hub.check_invariants().expect("invariants");
}

/// Kills `body.len() > limit` -> `==` and `>=` in `encode_direct`: a direct
/// event exactly at `max_event_bytes` is sent, one byte more (or far more)
/// is refused.
#[test]
fn a_direct_event_exactly_at_the_size_bound_is_sent() {
    const LIMIT: usize = 600;
    let t0 = Instant::now();
    let hub = Hub::new(
        HubConfig {
            max_event_bytes: LIMIT,
            ..quiet()
        },
        t0,
    );
    let reservation = hub
        .reserve(ReserveOptions::new().topic("t"))
        .expect("reserve");
    let stream = reservation.stream();
    let id = reservation.activate().expect("activate");
    // `data: ` + data + two line feeds.
    let framing = "data: \n\n".len();
    let fits = Event::new("x".repeat(LIMIT - framing));
    hub.send(id, &fits).expect("exactly at the bound");
    for over in [1, 1000] {
        let event = Event::new("x".repeat(LIMIT - framing + over));
        assert!(
            matches!(
                hub.send(id, &event),
                Err(SendError::Encode(EncodeError::TooLarge {
                    limit: LIMIT,
                    ..
                }))
            ),
            "{over} byte(s) over"
        );
    }
    let mut frames = Vec::new();
    let _ = stream.drain(&mut frames, usize::MAX);
    assert_eq!(frames.iter().map(|f| f.len()).collect::<Vec<_>>(), [LIMIT]);
}

/// Kills `frame.len() > limit` -> `>=` in `check_frame`: an encoded frame
/// exactly at `max_event_bytes` is sent as it is.
#[test]
fn a_frame_exactly_at_the_size_bound_is_sent() {
    const LIMIT: usize = 300;
    let hub = Hub::new(
        HubConfig {
            max_event_bytes: LIMIT,
            ..quiet()
        },
        Instant::now(),
    );
    let reservation = hub
        .reserve(ReserveOptions::new().topic("t"))
        .expect("reserve");
    let stream = reservation.stream();
    let id = reservation.activate().expect("activate");
    let framing = "data: \n\n".len();
    let frame = Event::new("x".repeat(LIMIT - framing))
        .to_bytes()
        .expect("encode");
    assert_eq!(frame.len(), LIMIT);
    hub.send_frame(id, frame.clone())
        .expect("exactly at the bound");
    let over = Event::new("x".repeat(LIMIT - framing + 1))
        .to_bytes()
        .expect("encode");
    assert!(matches!(
        hub.send_frame(id, over),
        Err(SendError::Encode(EncodeError::TooLarge {
            limit: LIMIT,
            ..
        }))
    ));
    let mut frames = Vec::new();
    let _ = stream.drain(&mut frames, usize::MAX);
    assert_eq!(frames, [frame]);
}
