//! Loom models of an externally sequenced hub (DESIGN.md §11, X1–X3): a
//! node applying a backplane's order while clients resume with history
//! read from the backplane.
//!
//! Scope: the real [`Hub`] in `Sequencing::External`, two threads, one or
//! two topics, at most two applied events, under CI's preemption bound.
//! What the models do not cover (the backplane itself, long sequences,
//! many topics) is covered by the proptest in `core/tests/external.rs`
//! and the cluster tests against a real Redis, not proved.

#![cfg(ssehub_loom)]

use bytes::Bytes;
use loom::thread;
use ssehub_core::codec::Event;
use ssehub_core::{
    Drain, EventId, History, Hub, HubConfig, ReserveOptions, Sequencing, TopicHistory,
};
use ssehub_verification::model::{drain_all, quiet_config, run_model, Seen};
use std::time::Instant;

const EPOCH: u64 = 5;

fn node(joined: u64) -> Hub {
    let hub = Hub::new(
        HubConfig {
            sequencing: Sequencing::External,
            replay_capacity: 4,
            ..quiet_config()
        },
        Instant::now(),
    );
    hub.begin_epoch(EPOCH, joined);
    hub
}

fn body(seq: u64) -> Bytes {
    Event::new(format!("e{seq}")).to_bytes().unwrap()
}

fn ids(frames: &[String]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("id: ")))
        .map(str::to_owned)
        .collect()
}

/// Model 14. A node joined the order at 1 and applies 2 and 3 on topic
/// `a` while a client resumes from 1 with history read from the backplane
/// when its top was 3 (events 2 and 3). Whether the node has applied none,
/// one or both when the client activates, the client gets 2 and 3, each
/// once, in order: events up to the node's position from the history or
/// the ring, later ones live (X1, I8 across nodes). Without the cut
/// filter, the history's 3 and the live 3 would both arrive.
#[test]
fn history_and_live_meet_exactly_once() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("history_meets_live", move || {
        let hub = node(1);
        let applier = {
            let hub = hub.clone();
            thread::spawn(move || {
                for seq in [2, 3] {
                    let _ = hub
                        .apply("a", EventId::new(EPOCH, seq), &body(seq))
                        .unwrap();
                }
            })
        };
        let mut r = hub
            .reserve(ReserveOptions::new().topic("a").last_event_id("5-1"))
            .unwrap();
        r.supply_history(History {
            epoch: EPOCH,
            topics: vec![TopicHistory {
                name: "a".into(),
                complete_after: 0,
                through: 3,
                events: vec![(2, body(2)), (3, body(3))],
            }],
        })
        .unwrap();
        let stream = r.stream();
        let position = hub.last_event_id().seq();
        r.activate().unwrap();
        applier.join().unwrap();
        let (frames, end) = drain_all(&stream);
        assert_eq!(end, Drain::Empty);
        assert_eq!(ids(&frames), ["5-2", "5-3"], "X1: {frames:?}");
        assert!(frames[1].ends_with("data: e3\n\n"));
        record.record(match position {
            1 => "activated before the applies began",
            _ => "activated after some applies",
        });
    });
    seen.assert_exactly(&[
        "activated before the applies began",
        "activated after some applies",
    ]);
}

/// Model 15. A node at position 2 (topic `a` only) finishes a catch-up
/// that read only `a`, up to 4, while a client resumes from 2 on `c`, a
/// topic the node does not have, whose events 3 and 4 the node never got.
/// If the activation creates `c` first, the catch-up's end resets its live
/// subscriber; if the catch-up ends first, `c`'s new ring starts past 4 and
/// the resume is reset. Either way the client's only frame is a reset with
/// id 4 and nothing is skipped silently (X2, X3).
#[test]
fn a_catch_up_never_lets_a_new_topic_claim_what_it_skipped() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("catch_up_vs_new_topic", move || {
        let hub = node(0);
        for seq in [1, 2] {
            let _ = hub
                .apply("a", EventId::new(EPOCH, seq), &body(seq))
                .unwrap();
        }
        let catch_up = {
            let hub = hub.clone();
            thread::spawn(move || hub.finish_catch_up(&["a"], 4))
        };
        let mut r = hub
            .reserve(ReserveOptions::new().topic("c").last_event_id("5-2"))
            .unwrap();
        r.supply_history(History {
            epoch: EPOCH,
            topics: vec![TopicHistory {
                name: "c".into(),
                complete_after: 0,
                through: 2,
                events: vec![],
            }],
        })
        .unwrap();
        let stream = r.stream();
        r.activate().unwrap();
        let reset_live = catch_up.join().unwrap();
        let (frames, _) = drain_all(&stream);
        assert_eq!(ids(&frames), ["5-4"], "X3: {frames:?}");
        assert!(frames[0].contains("event: reset"));
        record.record(if reset_live == 1 {
            "reset live by the catch-up"
        } else {
            "reset at activation"
        });
    });
    seen.assert_exactly(&["reset live by the catch-up", "reset at activation"]);
}

/// Model 16. The backplane's epoch changes (a flush) while the node
/// applies the old epoch's last event to an active client. The client sees
/// the old event (or not) strictly before the reset of the new epoch, and
/// nothing of the old epoch after it (X3).
#[test]
fn a_new_epoch_is_a_clean_cut_for_live_clients() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("epoch_cut", move || {
        let hub = node(0);
        let r = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
        let stream = r.stream();
        r.activate().unwrap();
        let applier = {
            let hub = hub.clone();
            thread::spawn(move || hub.apply("a", EventId::new(EPOCH, 1), &body(1)).is_ok())
        };
        let reset = hub.begin_epoch(EPOCH + 1, 0);
        let applied = applier.join().unwrap();
        let (frames, _) = drain_all(&stream);
        assert_eq!(reset, 1);
        let got = ids(&frames);
        if applied {
            assert_eq!(got, ["5-1", "6-0"], "{frames:?}");
            record.record("old event, then reset");
        } else {
            assert_eq!(got, ["6-0"], "{frames:?}");
            record.record("refused as the old epoch");
        }
        assert!(frames.last().unwrap().contains("event: reset"));
    });
    seen.assert_exactly(&["old event, then reset", "refused as the old epoch"]);
}
