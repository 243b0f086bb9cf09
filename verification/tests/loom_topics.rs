//! Loom models of topics against closes on the real [`Hub`]: a subscribe
//! racing a close (I2, I5), and a publish and send with a stale id racing a
//! close whose slot is reused at once (I4, the ABA case).

#![cfg(ssehub_loom)]

use loom::thread;
use ssehub_core::codec::Event;
use ssehub_core::{
    CloseOutcome, CloseReason, Drain, Hub, ReserveOptions, SendError, SubscribeError,
};
use ssehub_verification::model::{assert_settled, drain_all, quiet_config, run_model, Seen};
use std::time::Instant;

/// Model 3. A subscribe to a new topic races the client's close. Either the
/// subscribe lands first and the close then removes the client from both
/// topics, or it finds the client gone; either way no topic indexes the
/// client (I2) and, with nothing retained, no topic is kept (I5).
#[test]
fn subscribe_racing_close_leaves_no_index_entry() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("subscribe_vs_close", move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
        let stream = reservation.stream();
        let id = reservation.activate().unwrap();

        let subscriber = {
            let hub = hub.clone();
            thread::spawn(move || hub.subscribe(id, "b"))
        };
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(id, CloseReason::ClientGone))
        };
        let subscribed = subscriber.join().unwrap();
        let closed = closer.join().unwrap();

        assert_eq!(closed, CloseOutcome::Closed, "I6: the one close closes");
        match subscribed {
            Ok(true) => record.record("subscribed, then closed"),
            Err(SubscribeError::UnknownClient) => record.record("closed, then refused"),
            other => panic!("I2: unexpected subscribe outcome {other:?}"),
        }
        assert_eq!(hub.client_topics(id), None, "I1: the client is gone");
        for topic in ["a", "b"] {
            assert_eq!(
                hub.subscriber_count(topic),
                0,
                "I2: {topic} still indexes the closed client"
            );
        }
        let (frames, end) = drain_all(&stream);
        assert!(frames.is_empty());
        assert_eq!(end, Drain::Closed(CloseReason::ClientGone), "I1");
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["closed, then refused", "subscribed, then closed"]);
}

/// Model 4 (ABA). Thread A (the main thread, which reserved X) closes
/// client X and at once reserves and activates client Y, which reuses X's
/// slot (same thread, so same registry shard). Thread B, holding X's now
/// stale id, sends to it and publishes to the topic both subscribe to.
///
/// The stale id never reaches Y (I4): Y's stream holds at most the
/// publish, never the send. X gets the send only if the send succeeded and
/// nothing after its close (I3). The publish's delivered count is exactly
/// the number of streams that got it (I7: no silent loss).
#[test]
fn stale_id_publish_and_send_never_reach_the_slot_reuser() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("publish_vs_close_slot_reuse", move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let x_stream = reservation.stream();
        let x = reservation.activate().unwrap();

        let stale = {
            let hub = hub.clone();
            thread::spawn(move || {
                let sent = hub.send(x, &Event::new("for-x"));
                let published = hub.publish("t", &Event::new("news")).unwrap();
                (sent, published)
            })
        };
        // Thread A is the main thread: it reserved X, so Y goes to the same
        // registry shard and reuses X's slot.
        assert_eq!(hub.close(x, CloseReason::ClientGone), CloseOutcome::Closed);
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let y_stream = reservation.stream();
        let y = reservation.activate().unwrap();
        let (sent, published) = stale.join().unwrap();

        assert_eq!(y.index(), x.index(), "the model must reuse X's slot");
        assert_ne!(y, x, "I4: a reused slot has a new generation");

        let (x_frames, x_end) = drain_all(&x_stream);
        let (y_frames, y_end) = drain_all(&y_stream);
        assert!(
            y_frames.iter().all(|f| !f.contains("for-x")),
            "I4: a send to the stale id reached the slot's new occupant: {y_frames:?}"
        );
        assert!(
            y_frames.iter().all(|f| f.ends_with("data: news\n\n")),
            "I4: {y_frames:?}"
        );
        assert_eq!(y_end, Drain::Empty, "Y is live");
        assert_eq!(x_end, Drain::Closed(CloseReason::ClientGone), "I1");
        match sent {
            Ok(()) => assert!(
                x_frames.first().is_some_and(|f| f == "data: for-x\n\n"),
                "a successful send lands on X: {x_frames:?}"
            ),
            Err(SendError::Closed(CloseReason::ClientGone) | SendError::UnknownClient) => {
                assert!(x_frames.iter().all(|f| !f.contains("for-x")), "I3");
            }
            Err(other) => panic!("unexpected send error {other:?}"),
        }
        let got_news = |frames: &[String]| frames.iter().filter(|f| f.contains("news")).count();
        assert_eq!(
            published.delivered,
            got_news(&x_frames) + got_news(&y_frames),
            "I7: delivered counts exactly the streams that got the event"
        );
        assert!(published.delivered <= 1, "X and Y never both subscribe");
        record.record(
            match (sent.is_ok(), got_news(&x_frames), got_news(&y_frames)) {
                (true, 1, 0) => "send and publish reach X",
                (true, 0, 1) => "send reaches X, publish reaches Y",
                (true, 0, 0) => "send reaches X, publish between",
                (false, 0, 1) => "both after the close, publish reaches Y",
                (false, 0, 0) => "both after the close, publish between",
                _ => "publish reaches X after a failed send",
            },
        );

        assert_eq!(hub.close(y, CloseReason::ClientGone), CloseOutcome::Closed);
        assert_eq!(
            hub.close(x, CloseReason::ClientGone),
            CloseOutcome::AlreadyClosed,
            "I6"
        );
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&[
        "both after the close, publish between",
        "both after the close, publish reaches Y",
        "send and publish reach X",
        "send reaches X, publish between",
        "send reaches X, publish reaches Y",
    ]);
}

/// Model 9 (I8). A reconnecting client (`Last-Event-ID` older than every
/// retained event) activates while another event is published on its
/// topic. The replay cut and the live subscription meet at one point: the
/// client gets both events, in id order, each exactly once, whether the
/// second one arrives by replay or live.
#[test]
fn publish_racing_replaying_activate_neither_drops_nor_duplicates() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("publish_vs_replaying_activate", move || {
        let config = ssehub_core::HubConfig {
            replay_capacity: 4,
            ..quiet_config()
        };
        let hub = Hub::new(config, Instant::now());
        let first = hub.publish("t", &Event::new("one")).unwrap().id;
        let reservation = hub
            .reserve(ReserveOptions::new().topic("t").last_event_id("0-0"))
            .unwrap();
        let stream = reservation.stream();

        let activator = thread::spawn(move || reservation.activate().unwrap());
        let publisher = {
            let hub = hub.clone();
            thread::spawn(move || hub.publish("t", &Event::new("two")).unwrap())
        };
        let id = activator.join().unwrap();
        let second = publisher.join().unwrap();

        let (frames, end) = drain_all(&stream);
        assert_eq!(end, Drain::Empty);
        assert_eq!(
            frames,
            [
                format!("id: {first}\ndata: one\n\n"),
                format!("id: {}\ndata: two\n\n", second.id),
            ],
            "I8: replay then live, in id order, each once"
        );
        record.record(if second.delivered == 1 {
            "live"
        } else {
            "replayed"
        });
        assert_eq!(hub.close(id, CloseReason::ClientGone), CloseOutcome::Closed);
        assert_settled(&hub, 1);
    });
    seen.assert_exactly(&["live", "replayed"]);
}

/// Model 18 (S2, shards). Client X, reserved by the main thread, is the
/// one subscriber of `t`, with nothing retained (capacity 0). Thread A
/// reserves and activates Y on `t`; A is another thread, so Y lives in
/// another registry shard than X (the model asserts it). Thread B closes X,
/// which leaves `t` unused and drops it, under X's shard only, while Y's
/// activation, under Y's shard, may already have found `t`.
///
/// Whatever the order, Y ends up indexed under a live `t` in the map (I2):
/// an activation that finds its topic dead once it holds the topic's lock
/// looks it up again (and creates it). A publish then reaches Y and only Y.
/// Without the recheck, Y would be subscribed to a topic no publish finds.
#[test]
fn an_activation_racing_the_drop_of_its_topic_on_another_shard_lands_on_a_live_topic() {
    run_model("activate_vs_drop_on_another_shard", move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let x_stream = reservation.stream();
        let x = reservation.activate().unwrap();

        let joiner = {
            let hub = hub.clone();
            thread::spawn(move || {
                let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
                let y_stream = reservation.stream();
                let y = reservation.activate().unwrap();
                (y, y_stream)
            })
        };
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(x, CloseReason::ClientGone))
        };
        let (y, y_stream) = joiner.join().unwrap();
        assert_eq!(closer.join().unwrap(), CloseOutcome::Closed);
        assert_ne!(
            y.index() % 2,
            x.index() % 2,
            "the model must put X and Y in different shards"
        );

        if let Err(violation) = hub.check_invariants() {
            panic!("{violation}");
        }
        assert_eq!(hub.subscriber_count("t"), 1, "I2: Y is indexed under t");
        let report = hub.publish("t", &Event::new("news")).unwrap();
        assert_eq!(report.delivered, 1, "I2: the publish finds Y");
        let (y_frames, _) = drain_all(&y_stream);
        assert_eq!(y_frames.len(), 1, "Y gets the publish: {y_frames:?}");
        let (x_frames, x_end) = drain_all(&x_stream);
        assert!(x_frames.is_empty(), "X was closed first: {x_frames:?}");
        assert_eq!(x_end, Drain::Closed(CloseReason::ClientGone));
        assert_eq!(hub.close(y, CloseReason::ClientGone), CloseOutcome::Closed);
        assert_settled(&hub, 0);
    });
}

/// Model 19 (S2, shards). As model 18, with an active Y (on no topic)
/// subscribing to `t` instead of activating on it: a subscribe that finds
/// its topic dead once it holds the topic's lock looks it up again.
#[test]
fn a_subscribe_racing_the_drop_of_its_topic_on_another_shard_lands_on_a_live_topic() {
    run_model("subscribe_vs_drop_on_another_shard", move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        drop(reservation.stream());
        let x = reservation.activate().unwrap();

        let joiner = {
            let hub = hub.clone();
            thread::spawn(move || {
                let reservation = hub.reserve(ReserveOptions::new()).unwrap();
                let y_stream = reservation.stream();
                let y = reservation.activate().unwrap();
                assert_eq!(hub.subscribe(y, "t"), Ok(true));
                (y, y_stream)
            })
        };
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(x, CloseReason::ClientGone))
        };
        let (y, y_stream) = joiner.join().unwrap();
        assert_eq!(closer.join().unwrap(), CloseOutcome::Closed);
        assert_ne!(y.index() % 2, x.index() % 2, "X and Y in different shards");

        if let Err(violation) = hub.check_invariants() {
            panic!("{violation}");
        }
        let report = hub.publish("t", &Event::new("news")).unwrap();
        assert_eq!(report.delivered, 1, "I2: the publish finds Y");
        let (y_frames, _) = drain_all(&y_stream);
        assert_eq!(y_frames.len(), 1, "Y gets the publish: {y_frames:?}");
        assert_eq!(hub.close(y, CloseReason::ClientGone), CloseOutcome::Closed);
        assert_settled(&hub, 0);
    });
}
