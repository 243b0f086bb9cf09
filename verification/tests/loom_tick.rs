//! Loom models of deadlines against closes on the real [`Hub`]. Loom has no
//! time: the clock is injected, so the models drive `tick(Instant)` by hand
//! with instants computed from one `Instant::now()`.

#![cfg(ssehub_loom)]

use loom::thread;
use ssehub_core::{CloseOutcome, CloseReason, Drain, Hub, HubConfig, ReserveOptions};
use ssehub_verification::model::{assert_settled, drain_all, quiet_config, run_model, Seen};
use std::time::{Duration, Instant};

fn timed_config() -> HubConfig {
    HubConfig {
        heartbeat_interval: Some(Duration::from_secs(1)),
        idle_timeout: Some(Duration::from_secs(3)),
        timer_resolution: Duration::from_millis(1),
        ..quiet_config()
    }
}

/// Model 5a. A tick past the idle timeout races a close of the same client.
/// Exactly one of them closes it (I6): if the tick did, it reports
/// `IdleTimeout` and the close reports `AlreadyClosed`; if the close did,
/// the tick finds nothing due. The writer sees the winner's reason (I1) and
/// no deadline outlives the client (I5).
#[test]
fn idle_timeout_tick_racing_close_closes_exactly_once() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("tick_idle_vs_close", move || {
        let start = Instant::now();
        let hub = Hub::new(timed_config(), start);
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = reservation.stream();
        let id = reservation.activate().unwrap();
        assert_eq!(hub.deadline_count(), 1);

        let ticker = {
            let hub = hub.clone();
            thread::spawn(move || hub.tick(start + Duration::from_secs(5)))
        };
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(id, CloseReason::ClientGone))
        };
        let report = ticker.join().unwrap();
        let closed = closer.join().unwrap();

        let winner = match closed {
            CloseOutcome::Closed => {
                assert!(report.closed.is_empty(), "I6: closed twice: {report:?}");
                record.record("close first");
                CloseReason::ClientGone
            }
            CloseOutcome::AlreadyClosed => {
                assert_eq!(report.closed, [(id, CloseReason::IdleTimeout)], "I6");
                record.record("tick first");
                CloseReason::IdleTimeout
            }
            other => panic!("I6: unexpected close outcome {other:?}"),
        };
        assert_eq!(report.heartbeats, 0, "idle wins over the heartbeat");
        let (frames, end) = drain_all(&stream);
        assert!(frames.is_empty(), "I3: {frames:?}");
        assert_eq!(end, Drain::Closed(winner), "I1: the writer sees the winner");
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["close first", "tick first"]);
}

/// Model 5b. A tick due for a heartbeat races a close. A heartbeat is
/// enqueued only if the tick came first, then the client is closed and
/// nothing follows (I3); the tick never closes the client (it is not idle),
/// and no deadline remains after the close (I5).
#[test]
fn heartbeat_tick_racing_close_never_writes_after_the_close() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("tick_heartbeat_vs_close", move || {
        let start = Instant::now();
        let hub = Hub::new(timed_config(), start);
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = reservation.stream();
        let id = reservation.activate().unwrap();

        let ticker = {
            let hub = hub.clone();
            thread::spawn(move || hub.tick(start + Duration::from_millis(1500)))
        };
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(id, CloseReason::ClientGone))
        };
        let report = ticker.join().unwrap();
        assert_eq!(closer.join().unwrap(), CloseOutcome::Closed, "I6");

        assert!(
            report.closed.is_empty(),
            "the client was not idle: {report:?}"
        );
        let (frames, end) = drain_all(&stream);
        assert_eq!(end, Drain::Closed(CloseReason::ClientGone), "I1");
        match report.heartbeats {
            0 => {
                assert!(frames.is_empty(), "I3: {frames:?}");
                record.record("close first");
            }
            1 => {
                assert_eq!(frames, [":\n\n"], "one heartbeat, before the close");
                record.record("heartbeat first");
            }
            n => panic!("{n} heartbeats for one client"),
        }
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["close first", "heartbeat first"]);
}
