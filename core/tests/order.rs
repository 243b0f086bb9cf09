//! The hub-wide order (I7) and final frames, with real threads.
//!
//! The first three tests are regressions for what the adversarial review
//! found: before the sequencer, two publishes on different topics could
//! reach a client on both in the opposite order of their ids (so a replay
//! from the later id silently lost the earlier event), and a publish could
//! slip in after the shutdown frame or a kick's fatal frame. Each failed on
//! the code before the fix; the loom models in `verification/` prove the
//! same properties exhaustively for small cases.

use ssehub_core::codec::Event;
use ssehub_core::{
    ClientStream, CloseOutcome, CloseReason, Drain, EventId, Hub, HubConfig, ReserveOptions,
    SendError,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

fn config() -> HubConfig {
    HubConfig {
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        replay_max_age: None,
        queue_max_frames: 100_000,
        queue_max_bytes: 1 << 30,
        ..HubConfig::default()
    }
}

fn drain_all(stream: &ClientStream) -> Vec<String> {
    let mut out = Vec::new();
    while let Drain::Frames(_) = stream.drain(&mut out, 1024) {}
    out.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// The `seq` of every frame that carries an id.
fn seqs(frames: &[String]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| f.strip_prefix("id: "))
        .map(|rest| rest.split('\n').next().unwrap_or(""))
        .map(|id| id.parse::<EventId>().expect("hub ids parse").seq())
        .collect()
}

fn subscriber(hub: &Hub, topics: &[&str]) -> ClientStream {
    let r = hub
        .reserve(ReserveOptions::new().topics(topics.iter().copied()))
        .unwrap();
    let stream = r.stream();
    r.activate().unwrap();
    stream
}

#[test]
fn publishes_on_two_topics_reach_a_shared_subscriber_in_id_order() {
    let hub = Hub::new(config(), Instant::now());
    // Many subscribers on `b`, ahead of the shared client in its fan-out,
    // make that push late, so a publish on `a` that takes a later id can
    // reach the shared client first without the sequencer.
    let _crowd: Vec<_> = (0..5_000).map(|_| subscriber(&hub, &["b"])).collect();
    let both = subscriber(&hub, &["a", "b"]);
    let start = Arc::new(Barrier::new(2));
    let publishers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|topic| {
            let hub = hub.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for n in 0..1_000 {
                    hub.publish(topic, &Event::new(format!("{topic}{n}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let frames = drain_all(&both);
    let got = seqs(&frames);
    assert_eq!(got.len(), 2_000, "every event arrives once");
    for pair in got.windows(2) {
        assert!(
            pair[0] < pair[1],
            "I7: id {} arrived after id {}",
            pair[1],
            pair[0]
        );
    }
    // I8: reconnecting after any prefix replays exactly the rest.
    let epoch = hub.config().epoch;
    for cut in [0, 1, 17, 150, 999, 1_000, 1_451, 1_998] {
        let last = EventId::new(epoch, got[cut]).to_string();
        let r = hub
            .reserve(ReserveOptions::new().topics(["a", "b"]).last_event_id(last))
            .unwrap();
        let stream = r.stream();
        let id = r.activate().unwrap();
        assert_eq!(
            seqs(&drain_all(&stream)),
            got[cut + 1..],
            "replay after {cut}"
        );
        let _ = hub.close(id, CloseReason::ClientGone);
    }
}

/// Publishes large events to `topic` until `stop`, counting them.
fn publisher(hub: &Hub, topic: &'static str, stop: &Arc<AtomicBool>, count: &Arc<AtomicU64>) {
    let big = "line\n".repeat(2_000);
    while !stop.load(Ordering::Acquire) {
        match hub.publish(topic, &Event::new(big.clone())) {
            Ok(_) => {
                count.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => return,
        }
    }
}

#[test]
fn the_shutdown_frame_is_the_last_frame_under_concurrent_publishes() {
    for _round in 0..5 {
        let hub = Hub::new(config(), Instant::now());
        let streams: Vec<_> = (0..3_000).map(|_| subscriber(&hub, &["t"])).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let handle = {
            let (hub, stop, count) = (hub.clone(), Arc::clone(&stop), Arc::clone(&count));
            std::thread::spawn(move || publisher(&hub, "t", &stop, &count))
        };
        while count.load(Ordering::Acquire) < 2 {
            std::thread::yield_now();
        }
        hub.shutdown(Some(&Event::new("bye").with_event("shutdown")))
            .unwrap();
        stop.store(true, Ordering::Release);
        handle.join().unwrap();
        for stream in &streams {
            let frames = drain_all(stream);
            let last = frames.last().expect("a final frame");
            assert!(
                last.contains("event: shutdown\ndata: bye\n\n"),
                "a frame came after the shutdown frame: {:?}",
                &last[..last.len().min(40)]
            );
            assert_eq!(stream.closed_reason(), Some(CloseReason::Shutdown));
        }
    }
}

#[test]
fn a_kick_with_a_fatal_event_is_the_last_frame_under_concurrent_publishes() {
    let hub = Hub::new(config(), Instant::now());
    let _crowd: Vec<_> = (0..2_000).map(|_| subscriber(&hub, &["t"])).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let handle = {
        let (hub, stop, count) = (hub.clone(), Arc::clone(&stop), Arc::clone(&count));
        std::thread::spawn(move || publisher(&hub, "t", &stop, &count))
    };
    let fatal = Event::new("{}").with_event("fatal");
    for _ in 0..200 {
        let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = r.stream();
        let id = r.activate().unwrap();
        let seen = count.load(Ordering::Acquire);
        while count.load(Ordering::Acquire) == seen {
            std::thread::yield_now();
        }
        assert_eq!(
            hub.close_with(id, CloseReason::Kicked, Some(&fatal)),
            Ok(CloseOutcome::Closed)
        );
        let frames = drain_all(&stream);
        assert_eq!(
            frames.last().map(String::as_str),
            Some("event: fatal\ndata: {}\n\n")
        );
        assert_eq!(stream.closed_reason(), Some(CloseReason::Kicked));
    }
    stop.store(true, Ordering::Release);
    handle.join().unwrap();
}

#[test]
fn close_with_on_a_reserved_client_ends_its_stream_with_the_event() {
    let hub = Hub::new(config(), Instant::now());
    let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    let stream = r.stream();
    hub.send(r.id(), &Event::new("hello")).unwrap();
    let fatal = Event::new("no").with_event("fatal");
    assert_eq!(
        hub.close_with(r.id(), CloseReason::Kicked, Some(&fatal)),
        Ok(CloseOutcome::Deferred)
    );
    assert!(r.activate().is_err());
    assert_eq!(
        drain_all(&stream),
        ["data: hello\n\n", "event: fatal\ndata: no\n\n"]
    );
    assert_eq!(hub.len(), 0);
    // Closing again changes nothing and queues nothing (I6).
    assert!(hub
        .close_with(stream.id(), CloseReason::Kicked, Some(&fatal))
        .is_ok());
    assert!(drain_all(&stream).is_empty());
}

#[test]
fn close_with_refuses_an_unencodable_event_and_leaves_the_client_open() {
    let hub = Hub::new(config(), Instant::now());
    let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    let id = r.activate().unwrap();
    let bad = Event::new("x").with_event("bad\nname");
    assert!(hub.close_with(id, CloseReason::Kicked, Some(&bad)).is_err());
    assert!(hub.is_active(id));
}

#[test]
fn send_frame_refuses_frames_that_would_break_the_order() {
    let hub = Hub::new(config(), Instant::now());
    let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    let stream = r.stream();
    let id = r.activate().unwrap();
    for frame in [
        &b"id: 0-99\ndata: x\n\n"[..],
        b"data: x\nid\n\n",
        b"data: no blank line\n",
        b"data: x\r\n\r\n",
    ] {
        assert!(matches!(
            hub.send_frame(id, bytes::Bytes::copy_from_slice(frame)),
            Err(SendError::InvalidFrame { .. })
        ));
    }
    hub.send_frame(id, bytes::Bytes::from_static(b"retry: 10\n\n"))
        .unwrap();
    assert_eq!(drain_all(&stream), ["retry: 10\n\n"]);
}
