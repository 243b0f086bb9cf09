//! Externally sequenced hubs (DESIGN.md §11, X1–X3): applying a
//! backplane's order, epochs, lost history, and resumes that merge the
//! backplane's history with the node's ring.

use bytes::Bytes;
use proptest::prelude::*;
use ssehub_core::codec::Event;
use ssehub_core::{
    Applied, ApplyError, ClientStream, Drain, EventId, History, HistoryError, Hub, HubConfig,
    PublishError, ReserveOptions, Sequencing, TopicHistory,
};
use std::time::Instant;

const EPOCH: u64 = 77;

fn external() -> Hub {
    let hub = Hub::new(
        HubConfig {
            sequencing: Sequencing::External,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    hub.begin_epoch(EPOCH, 0);
    hub
}

fn body(hub: &Hub, data: &str) -> Bytes {
    hub.encode_body(&Event::new(data)).expect("encodable")
}

/// A body encoded by a hub whose event bound is 4 MiB.
fn external_body(data: &str) -> Bytes {
    let hub = Hub::new(
        HubConfig {
            sequencing: Sequencing::External,
            max_event_bytes: 4 << 20,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    body(&hub, data)
}

fn frames(stream: &ClientStream) -> Vec<String> {
    let mut out = Vec::new();
    let _ = stream.drain(&mut out, usize::MAX);
    out.iter()
        .map(|f| String::from_utf8(f.to_vec()).expect("utf-8"))
        .collect()
}

fn ids(frames: &[String]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("id: ")))
        .map(str::to_owned)
        .collect()
}

fn connect(
    hub: &Hub,
    topics: &[&str],
    last: Option<&str>,
    history: Option<History>,
) -> ClientStream {
    let mut opts = ReserveOptions::new().topics(topics.iter().copied());
    if let Some(last) = last {
        opts = opts.last_event_id(last);
    }
    let mut reservation = hub.reserve(opts).expect("reserve");
    if let Some(history) = history {
        reservation.supply_history(history).expect("valid history");
    }
    let stream = reservation.stream();
    reservation.activate().expect("activate");
    stream
}

#[test]
fn applied_frames_are_byte_identical_to_a_local_publish_and_across_nodes() {
    let local = Hub::new(
        HubConfig {
            epoch: EPOCH,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    let (a, b) = (external(), external());
    let la = connect(&local, &["t"], None, None);
    let sa = connect(&a, &["t"], None, None);
    let sb = connect(&b, &["t"], None, None);
    let event = Event::new("line one\nline two").with_event("update");
    let report = local.publish("t", &event).expect("publish");
    let encoded = a.encode_body(&event).expect("encode");
    for hub in [&a, &b] {
        match hub.apply("t", report.id, &encoded).expect("apply") {
            Applied::Delivered(r) => assert_eq!((r.id, r.delivered), (report.id, 1)),
            other => panic!("expected delivery, got {other:?}"),
        }
    }
    let expected = frames(&la);
    assert_eq!(expected.len(), 1);
    assert_eq!(frames(&sa), expected);
    assert_eq!(frames(&sb), expected);
    assert_eq!(a.last_event_id(), report.id);
}

#[test]
fn duplicates_and_older_ids_change_nothing() {
    let hub = external();
    let stream = connect(&hub, &["t"], None, None);
    let one = body(&hub, "one");
    assert!(matches!(
        hub.apply("t", EventId::new(EPOCH, 5), &one),
        Ok(Applied::Delivered(_))
    ));
    assert_eq!(
        hub.apply("t", EventId::new(EPOCH, 5), &one),
        Ok(Applied::Duplicate)
    );
    assert_eq!(
        hub.apply("t", EventId::new(EPOCH, 3), &one),
        Ok(Applied::Duplicate)
    );
    assert_eq!(ids(&frames(&stream)), ["77-5"]);
    assert_eq!(hub.last_event_id(), EventId::new(EPOCH, 5));
}

#[test]
fn each_sequencing_refuses_the_other_entry_point() {
    let hub = external();
    assert_eq!(
        hub.publish("t", &Event::new("x")),
        Err(PublishError::ExternallySequenced)
    );
    let local = Hub::new(HubConfig::default(), Instant::now());
    let encoded = body(&local, "x");
    assert_eq!(
        local.apply("t", EventId::new(0, 1), &encoded),
        Err(ApplyError::LocallySequenced)
    );
}

#[test]
fn bad_input_is_refused_with_a_typed_error_and_moves_nothing() {
    let hub = external();
    let good = body(&hub, "x");
    let id = EventId::new(EPOCH, 1);
    assert!(matches!(
        hub.apply("", id, &good),
        Err(ApplyError::InvalidTopic(_))
    ));
    assert!(matches!(
        hub.apply("t", id, b"id: 9\ndata: x\n\n"),
        Err(ApplyError::InvalidBody { .. })
    ));
    assert!(matches!(
        hub.apply("t", id, b"data: x\n"),
        Err(ApplyError::InvalidBody { .. })
    ));
    let huge = vec![b'x'; hub.config().max_event_bytes];
    let mut big = b"data: ".to_vec();
    big.extend_from_slice(&huge);
    big.extend_from_slice(b"\n\n");
    assert!(matches!(
        hub.apply("t", id, &big),
        Err(ApplyError::TooLarge { .. })
    ));
    assert_eq!(
        hub.apply("t", EventId::new(EPOCH + 1, 1), &good),
        Err(ApplyError::EpochMismatch {
            expected: EPOCH,
            found: EPOCH + 1
        })
    );
    assert_eq!(hub.last_event_id(), EventId::new(EPOCH, 0));
    assert_eq!(hub.topic_count(), 0);
}

#[test]
fn a_new_epoch_resets_live_clients_and_old_ids() {
    let hub = external();
    let stream = connect(&hub, &["t"], None, None);
    let x = body(&hub, "x");
    let _ = hub.apply("t", EventId::new(EPOCH, 1), &x).expect("apply");
    assert_eq!(hub.begin_epoch(EPOCH + 1, 4), 1, "one live client reset");
    let _ = hub
        .apply("t", EventId::new(EPOCH + 1, 5), &x)
        .expect("apply");
    let got = frames(&stream);
    assert_eq!(ids(&got), ["77-1", "78-4", "78-5"]);
    assert!(got[1].contains("event: reset"), "{got:?}");
    assert_eq!(
        hub.retained_bytes() as usize,
        got[2].len(),
        "old ring cleared"
    );
    // An id of the old epoch cannot be resumed, even with history.
    let history = History {
        epoch: EPOCH + 1,
        topics: vec![TopicHistory {
            name: "t".into(),
            through: 5,
            ..TopicHistory::default()
        }],
    };
    let old = connect(&hub, &["t"], Some("77-1"), Some(history));
    let got = frames(&old);
    assert_eq!(ids(&got), ["78-5"]);
    assert!(got[0].contains("event: reset"));
}

fn history(hub: &Hub, name: &str, complete_after: u64, through: u64, seqs: &[u64]) -> TopicHistory {
    TopicHistory {
        name: name.into(),
        complete_after,
        through,
        events: seqs
            .iter()
            .map(|s| (*s, body(hub, &format!("{name}{s}"))))
            .collect(),
    }
}

/// A node that joined the cluster at seq 6 and applied 7..=10: `a` has the
/// odd seqs, `b` the even ones.
fn node_from_six() -> Hub {
    let hub = Hub::new(
        HubConfig {
            sequencing: Sequencing::External,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    hub.begin_epoch(EPOCH, 6);
    for seq in 7..=10 {
        let topic = if seq % 2 == 1 { "a" } else { "b" };
        let encoded = body(&hub, &format!("{topic}{seq}"));
        let _ = hub
            .apply(topic, EventId::new(EPOCH, seq), &encoded)
            .expect("apply");
    }
    hub
}

#[test]
fn a_resume_merges_backplane_history_with_the_ring_exactly_once() {
    let hub = node_from_six();
    let h = History {
        epoch: EPOCH,
        topics: vec![
            history(&hub, "a", 0, 8, &[3, 5, 7]),
            history(&hub, "b", 0, 8, &[4, 6, 8]),
        ],
    };
    let stream = connect(&hub, &["a", "b"], Some("77-2"), Some(h));
    let got = frames(&stream);
    assert_eq!(
        ids(&got),
        ["77-3", "77-4", "77-5", "77-6", "77-7", "77-8", "77-9", "77-10"]
    );
    assert!(got[0].ends_with("data: a3\n\n"));
    assert!(got[7].ends_with("data: b10\n\n"));
    assert_eq!(hub.metrics().replay_hits, 1);
}

#[test]
fn history_newer_than_the_node_is_left_to_the_live_path() {
    let hub = node_from_six();
    // The backplane's top is 12 when the history is read; the node has
    // applied only up to 10.
    let h = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "a", 0, 12, &[5, 7, 9, 11])],
    };
    let stream = connect(&hub, &["a"], Some("77-4"), Some(h));
    for seq in 11..=12 {
        let topic = if seq % 2 == 1 { "a" } else { "b" };
        let encoded = body(&hub, &format!("{topic}{seq}"));
        let _ = hub
            .apply(topic, EventId::new(EPOCH, seq), &encoded)
            .expect("apply");
    }
    assert_eq!(ids(&frames(&stream)), ["77-5", "77-7", "77-9", "77-11"]);
}

#[test]
fn any_hole_in_the_coverage_is_a_reset() {
    let hub = node_from_six();
    let cases: Vec<(&str, History)> = vec![
        (
            "history trimmed past the client's id",
            History {
                epoch: EPOCH,
                topics: vec![history(&hub, "a", 3, 8, &[5, 7])],
            },
        ),
        (
            "history ends before what the node holds (event 6 is nowhere)",
            History {
                epoch: EPOCH,
                topics: vec![history(&hub, "a", 0, 5, &[3, 5])],
            },
        ),
        (
            "a topic without history",
            History {
                epoch: EPOCH,
                topics: vec![history(&hub, "b", 0, 8, &[4, 6, 8])],
            },
        ),
        (
            "history of another epoch",
            History {
                epoch: EPOCH + 1,
                topics: vec![history(&hub, "a", 0, 8, &[3, 5, 7])],
            },
        ),
    ];
    for (case, h) in cases {
        let stream = connect(&hub, &["a"], Some("77-2"), Some(h));
        let got = frames(&stream);
        assert_eq!(ids(&got), ["77-10"], "{case}");
        assert!(got[0].contains("event: reset"), "{case}");
    }
    let stream = connect(&hub, &["a"], Some("77-2"), None);
    assert!(
        frames(&stream)[0].contains("event: reset"),
        "no history at all"
    );
}

#[test]
fn supplied_history_that_breaks_its_promise_is_refused() {
    let hub = node_from_six();
    let mut reservation = hub
        .reserve(ReserveOptions::new().topic("a").last_event_id("77-2"))
        .expect("reserve");
    assert_eq!(reservation.resume_point(), Some(EventId::new(EPOCH, 2)));
    let out_of_order = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "a", 0, 8, &[5, 3])],
    };
    assert!(matches!(
        reservation.supply_history(out_of_order),
        Err(HistoryError::OutOfOrder { .. })
    ));
    let beyond = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "a", 0, 4, &[5])],
    };
    assert!(matches!(
        reservation.supply_history(beyond),
        Err(HistoryError::OutOfOrder { .. })
    ));
    let range = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "a", 9, 8, &[])],
    };
    assert!(matches!(
        reservation.supply_history(range),
        Err(HistoryError::BadRange { .. })
    ));
    let mut bad = history(&hub, "a", 0, 8, &[3]);
    bad.events[0].1 = Bytes::from_static(b"id: 1\ndata: x\n\n");
    assert!(matches!(
        reservation.supply_history(History {
            epoch: EPOCH,
            topics: vec![bad]
        }),
        Err(HistoryError::InvalidBody { seq: 3, .. })
    ));
    // A body exactly at the hub's event bound (with the longest id line
    // the hub may add) is taken; one past it (the history's node may have
    // a larger bound) is refused like a malformed one.
    let limit = HubConfig::default().max_event_bytes;
    let framing = body(&hub, "x").len() - 1;
    let mut exact = history(&hub, "a", 0, 8, &[4]);
    exact.events[0].1 = external_body(&"x".repeat(limit - 46 - framing));
    let mut other = hub
        .reserve(ReserveOptions::new().topic("a").last_event_id("77-2"))
        .expect("reserve");
    assert!(other
        .supply_history(History {
            epoch: EPOCH,
            topics: vec![exact]
        })
        .is_ok());
    drop(other);
    let mut large = history(&hub, "a", 0, 8, &[4]);
    large.events[0].1 = external_body(&"x".repeat(2 << 20));
    assert!(matches!(
        reservation.supply_history(History {
            epoch: EPOCH,
            topics: vec![large]
        }),
        Err(HistoryError::InvalidBody { seq: 4, .. })
    ));
    let stream = reservation.stream();
    reservation.activate().expect("activate");
    assert!(
        frames(&stream)[0].contains("event: reset"),
        "nothing was kept"
    );
    let foreign = hub
        .reserve(ReserveOptions::new().topic("a").last_event_id("12-2"))
        .expect("reserve");
    assert_eq!(foreign.resume_point(), None);
}

#[test]
fn a_lost_topic_resets_its_live_subscribers_and_earlier_resumes() {
    let hub = node_from_six();
    let on_a = connect(&hub, &["a"], None, None);
    let on_b = connect(&hub, &["b"], None, None);
    assert_eq!(hub.lose_topic("a", 14), 1);
    let got = frames(&on_a);
    assert_eq!(ids(&got), ["77-14"]);
    assert!(got[0].contains("event: reset"));
    assert!(frames(&on_b).is_empty(), "other topics are not touched");
    assert_eq!(hub.last_event_id(), EventId::new(EPOCH, 14));
    // A resume from before the gap: reset, even with history that ends
    // before it. From the reset's id: exact.
    let h = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "a", 0, 10, &[7, 9])],
    };
    assert!(frames(&connect(&hub, &["a"], Some("77-6"), Some(h)))[0].contains("event: reset"));
    let h = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "a", 0, 14, &[])],
    };
    assert!(frames(&connect(&hub, &["a"], Some("77-14"), Some(h))).is_empty());
    // A topic the node does not have remembers the gap by name.
    assert_eq!(hub.lose_topic("c", 15), 0);
    let encoded = body(&hub, "c16");
    let _ = hub
        .apply("c", EventId::new(EPOCH, 16), &encoded)
        .expect("apply");
    let h = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "c", 0, 14, &[])],
    };
    assert!(frames(&connect(&hub, &["c"], Some("77-14"), Some(h)))[0].contains("event: reset"));
}

#[test]
fn finishing_a_catch_up_resets_topics_not_caught_up_and_later_ones_start_past_it() {
    let hub = node_from_six();
    let on_a = connect(&hub, &["a"], None, None);
    let on_b = connect(&hub, &["b"], None, None);
    // The node caught `a` up to 20 (say seq 13 on it); `b` was trimmed.
    let encoded = body(&hub, "a13");
    let _ = hub
        .apply("a", EventId::new(EPOCH, 13), &encoded)
        .expect("apply");
    assert_eq!(hub.finish_catch_up(&["a"], 20), 1);
    assert_eq!(ids(&frames(&on_a)), ["77-13"]);
    let got = frames(&on_b);
    assert_eq!(ids(&got), ["77-20"]);
    assert!(got[0].contains("event: reset"));
    // A topic first seen after the catch-up does not claim 14..=20.
    let encoded = body(&hub, "d21");
    let _ = hub
        .apply("d", EventId::new(EPOCH, 21), &encoded)
        .expect("apply");
    let h = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "d", 0, 12, &[])],
    };
    assert!(frames(&connect(&hub, &["d"], Some("77-12"), Some(h)))[0].contains("event: reset"));
    let h = History {
        epoch: EPOCH,
        topics: vec![history(&hub, "d", 0, 20, &[])],
    };
    assert_eq!(
        ids(&frames(&connect(&hub, &["d"], Some("77-12"), Some(h)))),
        ["77-21"]
    );
    let mut names = hub.topic_names();
    names.sort();
    assert_eq!(names, ["a", "b", "d"]);
}

#[test]
fn an_event_for_a_full_table_moves_the_order_on_and_is_remembered_lost() {
    let hub = Hub::new(
        HubConfig {
            sequencing: Sequencing::External,
            max_topics: 1,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    hub.begin_epoch(EPOCH, 0);
    let live = connect(&hub, &["a"], None, None);
    let x = body(&hub, "x");
    assert_eq!(
        hub.apply("b", EventId::new(EPOCH, 1), &x),
        Ok(Applied::NotRetained {
            id: EventId::new(EPOCH, 1)
        })
    );
    assert!(matches!(
        hub.apply("a", EventId::new(EPOCH, 2), &x),
        Ok(Applied::Delivered(_))
    ));
    assert_eq!(ids(&frames(&live)), ["77-2"]);
    assert_eq!(hub.last_event_id(), EventId::new(EPOCH, 2));
}

// The property: whatever point a node joined the order at, whichever
// events it got twice, wherever a client's id and the history's range
// fall, and whenever the history was read, the client gets exactly the
// events of its topics after its id, in order, each once, or a reset
// followed by exactly the events after the reset's id.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]
    #[test]
    fn resumes_on_any_node_are_exact_or_reset(
        topics_of in prop::collection::vec(0u8..3, 1..40),
        joined in 0usize..40,
        last in 0usize..40,
        read_at in 0usize..40,
        trimmed in 0usize..40,
        applied_before in 0usize..40,
        client in prop::sample::subsequence(vec!["t0", "t1", "t2"], 1..=3),
        replays in prop::collection::vec(0usize..40, 0..6),
    ) {
        let n = topics_of.len() as u64;
        let name = |seq: u64| format!("t{}", topics_of[(seq - 1) as usize]);
        let joined = (joined as u64).min(n);
        let last = (last as u64).min(n);
        let read_at = (read_at as u64).min(n);
        let trimmed = (trimmed as u64).min(read_at);
        let applied_before = (applied_before as u64).clamp(joined, n);
        let hub = Hub::new(
            HubConfig { sequencing: Sequencing::External, ..HubConfig::default() },
            Instant::now(),
        );
        hub.begin_epoch(EPOCH, joined);
        let apply = |seq: u64| {
            let encoded = body(&hub, &format!("e{seq}"));
            hub.apply(&name(seq), EventId::new(EPOCH, seq), &encoded).expect("apply")
        };
        for seq in joined + 1..=applied_before {
            let _ = apply(seq);
            for &again in &replays {
                let again = again as u64;
                if again >= 1 && again <= seq {
                    prop_assert_eq!(apply(again), Applied::Duplicate);
                }
            }
        }
        let h = History {
            epoch: EPOCH,
            topics: client.iter().map(|t| TopicHistory {
                name: (*t).to_owned(),
                complete_after: trimmed,
                through: read_at,
                events: (trimmed + 1..=read_at)
                    .filter(|s| name(*s) == *t)
                    .map(|s| (s, body(&hub, &format!("e{s}"))))
                    .collect(),
            }).collect(),
        };
        let stream = connect(&hub, &client, Some(&format!("{EPOCH}-{last}")), Some(h));
        for seq in applied_before + 1..=n {
            let _ = apply(seq);
        }
        let got = frames(&stream);
        let mine = |from: u64| -> Vec<String> {
            (from + 1..=n)
                .filter(|s| client.contains(&name(*s).as_str()))
                .map(|s| format!("{EPOCH}-{s}"))
                .collect()
        };
        let cut = applied_before;
        let exact = last <= cut && trimmed <= last && last.max(read_at) >= joined;
        if exact {
            prop_assert_eq!(ids(&got), mine(last));
            for f in &got {
                prop_assert!(!f.contains("event: reset"));
            }
        } else {
            prop_assert!(!got.is_empty() && got[0].contains("event: reset"), "{:?}", got);
            let mut want = vec![format!("{EPOCH}-{cut}")];
            want.extend(mine(cut));
            prop_assert_eq!(ids(&got), want);
        }
    }
}

#[test]
fn the_stream_is_never_closed_by_a_reset() {
    let hub = node_from_six();
    let stream = connect(&hub, &["a"], None, None);
    let _ = hub.lose_topic("a", 12);
    let mut out = Vec::new();
    assert_eq!(stream.drain(&mut out, 16), Drain::Frames(1));
    assert_eq!(stream.drain(&mut out, 16), Drain::Empty);
}

#[test]
fn a_new_epoch_restarts_every_ring_at_its_top() {
    let hub = external();
    let _live = connect(&hub, &["t"], None, None);
    let x = body(&hub, "x");
    for seq in 1..=2 {
        let _ = hub.apply("t", EventId::new(EPOCH, seq), &x).expect("apply");
    }
    hub.begin_epoch(EPOCH + 1, 4);
    let _ = hub
        .apply("t", EventId::new(EPOCH + 1, 5), &x)
        .expect("apply");
    // The old epoch's events are gone from the ring, not just from the
    // hub-wide byte total.
    hub.check_invariants().expect("invariants");
    // The node never held the new epoch's events up to 4: a resume from
    // inside that span is a reset, not a replay that skips 3 and 4.
    let got = frames(&connect(&hub, &["t"], Some("78-2"), None));
    assert_eq!(got, ["id: 78-5\nevent: reset\ndata\n\n"]);
}

/// The size bound of `apply` counts the body and the longest `id:` line
/// the hub may add (46 bytes: `id: ` + two 20-digit numbers + `-` + LF),
/// and a frame exactly at the bound is taken.
#[test]
fn apply_takes_a_frame_exactly_at_the_size_bound_and_refuses_one_byte_more() {
    const LIMIT: usize = 1000;
    const ID_LINE_MAX: usize = 4 + 20 + 1 + 20 + 1;
    let hub = Hub::new(
        HubConfig {
            sequencing: Sequencing::External,
            max_event_bytes: LIMIT,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    hub.begin_epoch(EPOCH, 0);
    let stream = connect(&hub, &["t"], None, None);
    let framing = body(&hub, "x").len() - 1;
    let fits = body(&hub, &"x".repeat(LIMIT - ID_LINE_MAX - framing));
    assert_eq!(fits.len() + ID_LINE_MAX, LIMIT);
    // Encoded by a hub with a larger bound: this one refuses it.
    let over = external_body(&"x".repeat(LIMIT - ID_LINE_MAX - framing + 1));
    assert_eq!(
        hub.apply("t", EventId::new(EPOCH, 1), &over),
        Err(ApplyError::TooLarge {
            size: LIMIT + 1,
            limit: LIMIT
        })
    );
    assert!(matches!(
        hub.apply("t", EventId::new(EPOCH, 1), &fits),
        Ok(Applied::Delivered(_))
    ));
    assert_eq!(ids(&frames(&stream)), [format!("{EPOCH}-1")]);
}
