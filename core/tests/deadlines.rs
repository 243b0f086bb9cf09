//! Heartbeats, idle and stall timeouts driven by the injected clock, and
//! shutdown.

use ssehub_core::codec::Event;
use ssehub_core::{
    ClientStream, Clock, CloseReason, Drain, Hub, HubConfig, ManualClock, ReserveOptions,
};
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);

fn config() -> HubConfig {
    HubConfig {
        heartbeat_interval: Some(15 * S),
        idle_timeout: Some(40 * S),
        write_stall_timeout: Some(30 * S),
        replay_capacity: 0,
        ..HubConfig::default()
    }
}

fn drain_all(stream: &ClientStream) -> Vec<String> {
    let mut out = Vec::new();
    while let Drain::Frames(_) = stream.drain(&mut out, 64) {}
    out.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn quiet_topic_client_that_flushes_heartbeats_is_never_idle_closed() {
    let t0 = Instant::now();
    let hub = Hub::new(config(), t0);
    let r = hub.reserve(ReserveOptions::new().topic("quiet")).unwrap();
    let stream = r.stream();
    let id = r.activate().unwrap();
    let mut heartbeats = 0;
    for second in 1..=600 {
        let now = t0 + second * S;
        let report = hub.tick(now);
        assert!(
            report.closed.is_empty(),
            "closed at {second}s: {:?}",
            report.closed
        );
        let frames = drain_all(&stream);
        if !frames.is_empty() {
            assert!(
                frames.iter().all(|f| f == ":\n\n"),
                "heartbeats are bare comments"
            );
            heartbeats += frames.len();
            stream.flushed(now);
        }
    }
    assert!(hub.is_active(id));
    assert_eq!(heartbeats, 40, "one heartbeat per 15 s over 600 s");
    assert_eq!(hub.metrics().heartbeats, 40);
}

#[test]
fn client_that_stops_flushing_is_closed() {
    let t0 = Instant::now();
    let hub = Hub::new(
        HubConfig {
            write_stall_timeout: None,
            ..config()
        },
        t0,
    );
    let r = hub.reserve(ReserveOptions::new().topic("quiet")).unwrap();
    let stream = r.stream();
    let id = r.activate().unwrap();
    let mut closed_at = None;
    for second in 1..=120 {
        let now = t0 + second * S;
        let report = hub.tick(now);
        drain_all(&stream); // drained, but never reported flushed
        if let Some(&(closed, reason)) = report.closed.first() {
            assert_eq!((closed, reason), (id, CloseReason::IdleTimeout));
            closed_at = Some(second);
            break;
        }
    }
    assert_eq!(
        closed_at,
        Some(40),
        "idle from the last flush (activation), 40 s"
    );
    assert_eq!(
        stream.drain(&mut Vec::new(), 1),
        Drain::Closed(CloseReason::IdleTimeout)
    );
    assert_eq!(hub.deadline_count(), 0);
}

#[test]
fn a_queue_that_is_not_drained_stalls() {
    let t0 = Instant::now();
    let hub = Hub::new(
        HubConfig {
            idle_timeout: None,
            ..config()
        },
        t0,
    );
    let r = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let _stream = r.stream();
    let id = r.activate().unwrap();
    hub.tick(t0 + 5 * S);
    hub.publish("a", &Event::new("stuck")).unwrap();
    let mut closed_at = None;
    for second in 6..=100 {
        if let Some(&(closed, reason)) = hub.tick(t0 + second * S).closed.first() {
            assert_eq!((closed, reason), (id, CloseReason::WriteStalled));
            closed_at = Some(second);
            break;
        }
    }
    assert_eq!(
        closed_at,
        Some(35),
        "stalled 30 s after the frame was queued at 5 s"
    );
}

#[test]
fn tick_reports_the_next_deadline() {
    let t0 = Instant::now();
    let hub = Hub::new(config(), t0);
    assert_eq!(hub.tick(t0).next_deadline, None);
    let _id = hub
        .reserve(ReserveOptions::new())
        .unwrap()
        .activate()
        .unwrap();
    assert_eq!(hub.tick(t0).next_deadline, Some(t0 + 15 * S));
}

#[test]
fn named_heartbeat_event_is_visible_to_page_scripts() {
    let t0 = Instant::now();
    let config = HubConfig {
        heartbeat_event: Some("ping".into()),
        ..config()
    };
    let hub = Hub::new(config, t0);
    let r = hub.reserve(ReserveOptions::new()).unwrap();
    let stream = r.stream();
    r.activate().unwrap();
    assert_eq!(hub.tick(t0 + 15 * S).heartbeats, 1);
    assert_eq!(drain_all(&stream), ["event: ping\ndata\n\n"]);
}

#[test]
fn shutdown_sends_a_final_frame_with_jittered_retry_and_closes_everyone() {
    let t0 = Instant::now();
    let hub = Hub::new(config(), t0);
    let mut streams = Vec::new();
    for _ in 0..20 {
        let r = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
        streams.push(r.stream());
        r.activate().unwrap();
    }
    let pending = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let report = hub
        .shutdown(Some(&Event::new("bye").with_event("shutdown")))
        .unwrap();
    assert_eq!((report.closed, report.pending), (20, 1));
    assert!(pending.activate().is_err());
    assert!(hub.reserve(ReserveOptions::new()).is_err());
    assert!(hub.publish("a", &Event::new("late")).is_err());
    let mut retries = std::collections::BTreeSet::new();
    for stream in &streams {
        let frames = drain_all(stream);
        assert_eq!(frames.len(), 1);
        let frame = &frames[0];
        assert!(
            frame.ends_with("event: shutdown\ndata: bye\n\n"),
            "{frame:?}"
        );
        let retry: u64 = frame
            .lines()
            .next()
            .unwrap()
            .strip_prefix("retry: ")
            .unwrap()
            .parse()
            .unwrap();
        assert!((1000..=10_000).contains(&retry));
        retries.insert(retry);
        assert_eq!(
            stream.drain(&mut Vec::new(), 1),
            Drain::Closed(CloseReason::Shutdown)
        );
    }
    assert!(retries.len() > 10, "retry hints are spread: {retries:?}");
    assert_eq!(hub.len(), 0);
    assert_eq!(hub.deadline_count(), 0);
    hub.check_invariants().unwrap();
}

#[test]
fn blocking_reader_wakes_on_push_and_on_close() {
    let hub = Hub::new(config(), Instant::now());
    let r = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let stream = r.stream();
    let id = r.activate().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let mut out = Vec::new();
            match stream.recv_blocking(&mut out, 8) {
                Drain::Frames(_) => got.extend(out),
                Drain::Closed(reason) => return (got.len(), reason),
                Drain::Empty => unreachable!("recv_blocking never returns Empty"),
            }
        }
    });
    for _ in 0..100 {
        hub.publish("a", &Event::new("x")).unwrap();
    }
    let _ = hub.close(id, CloseReason::Kicked);
    assert_eq!(reader.join().unwrap(), (100, CloseReason::Kicked));
}

/// A driver that sleeps until `next_deadline` and a frame published while it
/// sleeps: the frame must count from when it was pushed, not from the last
/// instant the hub was told.
#[test]
fn a_push_between_ticks_is_stamped_with_its_own_time() {
    let t0 = Instant::now();
    let clock = ManualClock::new(t0);
    let hub = Hub::with_clock(
        HubConfig {
            heartbeat_interval: Some(S),
            idle_timeout: Some(10 * S),
            write_stall_timeout: Some(S),
            replay_capacity: 0,
            ..HubConfig::default()
        },
        clock.clone(),
    );
    let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    let stream = r.stream();
    let id = r.activate().unwrap();
    let wake = hub.tick(t0).next_deadline.expect("a deadline");
    assert_eq!(wake, t0 + S);
    // The driver sleeps; 900 ms in, an event is published and stays queued
    // (the writer is slow, not stalled yet).
    clock.advance(Duration::from_millis(900));
    hub.publish("t", &Event::new("fresh")).unwrap();
    clock.set(wake);
    let report = hub.tick(wake);
    assert!(
        report.closed.is_empty(),
        "closed as stalled 100 ms after the frame was queued: {report:?}"
    );
    // The writer flushes it now; no heartbeat may follow the data frame
    // 100 ms later.
    assert_eq!(drain_all(&stream), ["id: 0-1\ndata: fresh\n\n"]);
    stream.flushed(clock.now());
    let report = hub.tick(clock.now());
    assert_eq!(report.heartbeats, 0, "a heartbeat right after a data frame");
    assert!(drain_all(&stream).is_empty());
    // A full interval after the frame, the heartbeat is due.
    let next = report.next_deadline.expect("a deadline");
    assert!(next <= t0 + Duration::from_millis(1900) + S);
    clock.set(t0 + Duration::from_millis(1900));
    assert_eq!(hub.tick(clock.now()).heartbeats, 1);
    assert!(hub.is_active(id));
}

/// The same driver with a hub that only knows what it is told shows the
/// stale stamp (documented on `Hub::new`): this is why the adapter builds
/// its hub with a clock.
#[test]
fn without_a_clock_a_push_is_stamped_with_the_last_instant_told() {
    let t0 = Instant::now();
    let hub = Hub::new(
        HubConfig {
            heartbeat_interval: None,
            idle_timeout: None,
            write_stall_timeout: Some(S),
            replay_capacity: 0,
            ..HubConfig::default()
        },
        t0,
    );
    let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    let _stream = r.stream();
    let id = r.activate().unwrap();
    hub.publish("t", &Event::new("x")).unwrap();
    let report = hub.tick(t0 + S);
    assert_eq!(report.closed, [(id, CloseReason::WriteStalled)]);
}

#[test]
fn each_active_client_with_a_timeout_has_one_deadline() {
    let hub = Hub::new(config(), Instant::now());
    let reserved = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    assert_eq!(hub.deadline_count(), 0, "a reserved client has none");
    let a = reserved.activate().unwrap();
    let b = hub
        .reserve(ReserveOptions::new())
        .unwrap()
        .activate()
        .unwrap();
    assert_eq!(hub.deadline_count(), 2);
    let _ = hub.close(a, CloseReason::Kicked);
    assert_eq!(hub.deadline_count(), 1);
    let _ = hub.close(b, CloseReason::Kicked);
    assert_eq!(hub.deadline_count(), 0);
    // Nothing to time: no deadline at all.
    let untimed = Hub::new(
        HubConfig {
            heartbeat_interval: None,
            idle_timeout: None,
            write_stall_timeout: None,
            ..config()
        },
        Instant::now(),
    );
    let _c = untimed
        .reserve(ReserveOptions::new())
        .unwrap()
        .activate()
        .unwrap();
    assert_eq!(untimed.deadline_count(), 0);
}
