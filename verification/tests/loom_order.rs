//! Loom models of the hub-wide order (I7, I8) and of final frames.
//!
//! Scope, stated so nobody reads more into it: each model runs the real
//! [`Hub`] with two or three threads and at most two topics, one event per
//! publisher, under the preemption bound CI sets (every model here is
//! explored exhaustively at that bound: the counts at 12 equal those at
//! 20, see DESIGN.md §10). Longer sequences and more topics are covered by
//! the proptest state machine and the real-thread stress test, not proved.

#![cfg(ssehub_loom)]

use loom::thread;
use ssehub_core::codec::Event;
use ssehub_core::{
    CloseOutcome, CloseReason, Drain, EventId, Hub, HubConfig, PublishError, ReserveOptions,
};
use ssehub_verification::model::{assert_settled, drain_all, quiet_config, run_model, Seen};
use std::time::Instant;

fn retaining_config() -> HubConfig {
    HubConfig {
        replay_capacity: 4,
        ..quiet_config()
    }
}

/// The `seq` of every frame that carries an id, in arrival order.
fn seqs(frames: &[String]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| f.strip_prefix("id: "))
        .filter_map(|rest| rest.split('\n').next())
        .map(|id| id.parse::<EventId>().expect("hub ids parse").seq())
        .collect()
}

/// Model 9. A client on topics `a` and `b`; one thread publishes to `a`,
/// another to `b`, and a third drains the client's queue meanwhile. The
/// client receives both events, once each, in id order (I7), and a
/// reconnect after any prefix of what it received replays exactly the rest
/// (I8). Without the sequencer, `b` could take the later id and push first.
#[test]
fn publishes_on_two_topics_reach_a_shared_subscriber_in_id_order() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("two_topics_order", move || {
        let hub = Hub::new(retaining_config(), Instant::now());
        let r = hub
            .reserve(ReserveOptions::new().topics(["a", "b"]))
            .unwrap();
        let stream = r.stream();
        let id = r.activate().unwrap();

        let publishers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|topic| {
                let hub = hub.clone();
                thread::spawn(move || hub.publish(topic, &Event::new(topic)).unwrap())
            })
            .collect();
        let reader = thread::spawn(move || {
            let (frames, end) = drain_all(&stream);
            assert_eq!(end, Drain::Empty);
            (frames, stream)
        });
        let reports: Vec<_> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
        let (mut frames, stream) = reader.join().unwrap();
        frames.extend(drain_all(&stream).0);

        let got = seqs(&frames);
        assert_eq!(got.len(), 2, "I7: each event arrives once: {frames:?}");
        assert!(got[0] < got[1], "I7: ids out of order: {got:?}");
        assert!(reports.iter().all(|r| r.delivered == 1));
        record.record(if frames[0].ends_with("data: a\n\n") {
            "a first"
        } else {
            "b first"
        });

        // I8 from every prefix: nothing, the first event, both.
        let epoch = hub.config().epoch;
        for (cut, last) in [0, got[0], got[1]].into_iter().enumerate() {
            let last = EventId::new(epoch, last).to_string();
            let r = hub
                .reserve(ReserveOptions::new().topics(["a", "b"]).last_event_id(last))
                .unwrap();
            let replay = r.stream();
            let again = r.activate().unwrap();
            assert_eq!(seqs(&drain_all(&replay).0), got[cut..], "I8 after {cut}");
            let _ = hub.close(again, CloseReason::ClientGone);
        }
        let _ = hub.close(id, CloseReason::ClientGone);
        assert_settled(&hub, 2);
    });
    seen.assert_exactly(&["a first", "b first"]);
}

/// Model 10. Shutdown races a publish. Either the publish finishes first
/// (its frame precedes the final frame) or it is refused; the shutdown
/// frame is the last frame either way, and nothing follows it.
#[test]
fn the_shutdown_frame_is_last_whatever_a_racing_publish_does() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("shutdown_vs_publish", move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = r.stream();
        r.activate().unwrap();

        let publisher = {
            let hub = hub.clone();
            thread::spawn(move || hub.publish("t", &Event::new("live")))
        };
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || {
                hub.shutdown(Some(&Event::new("bye").with_event("shutdown")))
                    .unwrap()
            })
        };
        let published = publisher.join().unwrap();
        let report = closer.join().unwrap();
        assert_eq!(report.closed, 1);

        let (frames, end) = drain_all(&stream);
        assert_eq!(end, Drain::Closed(CloseReason::Shutdown));
        let last = frames.last().expect("the final frame");
        assert!(
            last.ends_with("event: shutdown\ndata: bye\n\n"),
            "{frames:?}"
        );
        match published {
            Ok(report) => {
                assert_eq!(report.delivered, 1);
                assert_eq!(frames.len(), 2);
                assert!(frames[0].ends_with("data: live\n\n"));
                record.record("published, then shut down");
            }
            Err(PublishError::ShutDown) => {
                assert_eq!(frames.len(), 1);
                record.record("shut down, publish refused");
            }
            Err(other) => panic!("unexpected publish error {other}"),
        }
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["published, then shut down", "shut down, publish refused"]);
}

/// Model 11. A kick with a fatal event races a publish to the kicked
/// client's topic: the fatal event is the last frame, and the publish is
/// either delivered before it or to no one.
#[test]
fn a_fatal_kick_is_last_whatever_a_racing_publish_does() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("kick_with_fatal_vs_publish", move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = r.stream();
        let id = r.activate().unwrap();

        let publisher = {
            let hub = hub.clone();
            thread::spawn(move || hub.publish("t", &Event::new("live")).unwrap())
        };
        let kicker = {
            let hub = hub.clone();
            thread::spawn(move || {
                let fatal = Event::new("{}").with_event("fatal");
                hub.close_with(id, CloseReason::Kicked, Some(&fatal))
            })
        };
        let report = publisher.join().unwrap();
        assert_eq!(kicker.join().unwrap(), Ok(CloseOutcome::Closed));

        let (frames, end) = drain_all(&stream);
        assert_eq!(end, Drain::Closed(CloseReason::Kicked));
        assert_eq!(
            frames.last().map(String::as_str),
            Some("event: fatal\ndata: {}\n\n")
        );
        assert_eq!(
            frames.len(),
            1 + report.delivered,
            "I7: delivered means received"
        );
        record.record(if report.delivered == 1 {
            "delivered, then kicked"
        } else {
            "kicked, delivered to no one"
        });
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["delivered, then kicked", "kicked, delivered to no one"]);
}

/// Model 12. The churn flake, made exact: a publish races the close of its
/// topic's last subscriber while a third thread runs the invariant checker.
/// With nothing retained, no interleaving may show the checker a topic with
/// neither subscribers nor events (I5): the publish must not create a topic
/// it would leave empty.
#[test]
fn no_checker_sees_an_empty_topic_while_a_publish_races_the_last_close() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("publish_vs_last_close_vs_checker", move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let _stream = r.stream();
        let id = r.activate().unwrap();

        let publisher = {
            let hub = hub.clone();
            thread::spawn(move || hub.publish("t", &Event::new("x")).unwrap())
        };
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(id, CloseReason::ClientGone))
        };
        if let Err(violation) = hub.check_invariants() {
            panic!("{violation}");
        }
        let report = publisher.join().unwrap();
        assert_eq!(closer.join().unwrap(), CloseOutcome::Closed);
        record.record(if report.delivered == 1 {
            "delivered, then closed"
        } else {
            "closed, delivered to no one"
        });
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["closed, delivered to no one", "delivered, then closed"]);
}

/// Model 13. A client on `a` and `b` is closed while one thread publishes
/// to `a` and then to `b`. The close leaves the client's topics one lock at
/// a time while publishes go on, so what the client receives must still be
/// a prefix of what was published to it: never `b`'s event without `a`'s
/// (that client would resume past `a` and lose it silently, I7). Found by
/// `stress_order`: the close used to close the queue only after leaving
/// every topic.
#[test]
fn a_closing_client_on_two_topics_receives_a_prefix_of_its_events() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("close_vs_publishes_on_two_topics", move || {
        // Events are retained, so a publish that finds no subscriber keeps its
        // topic and needs no registry lock: with nothing retained it would
        // wait for the close to finish and the race could not happen.
        let hub = Hub::new(retaining_config(), Instant::now());
        let r = hub
            .reserve(ReserveOptions::new().topics(["a", "b"]))
            .unwrap();
        let stream = r.stream();
        let id = r.activate().unwrap();

        let publisher = {
            let hub = hub.clone();
            thread::spawn(move || {
                let a = hub.publish("a", &Event::new("a")).unwrap();
                let b = hub.publish("b", &Event::new("b")).unwrap();
                (a, b)
            })
        };
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(id, CloseReason::Kicked))
        };
        let (a, b) = publisher.join().unwrap();
        assert_eq!(closer.join().unwrap(), CloseOutcome::Closed);

        let (frames, end) = drain_all(&stream);
        assert_eq!(end, Drain::Closed(CloseReason::Kicked));
        let got = seqs(&frames);
        let published = [a.id.seq(), b.id.seq()];
        assert_eq!(got, published[..got.len()], "I7: a gap before {got:?}");
        assert_eq!(
            a.delivered + b.delivered,
            got.len(),
            "delivered means received"
        );
        record.record(match got.len() {
            0 => "closed before both",
            1 => "closed between",
            _ => "closed after both",
        });
        assert_settled(&hub, 2);
    });
    seen.assert_exactly(&["closed after both", "closed before both", "closed between"]);
}
