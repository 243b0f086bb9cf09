//! Loom models of a client's lifecycle on the real [`Hub`]: activation
//! racing a close, the deferred cleanup of a close that came first, two
//! closes racing each other, a shutdown racing a new reservation, and a
//! reservation's initial frame racing a close.
//!
//! Each model ends by closing whatever is left and asserting the hub is
//! settled (I5, `assert_settled`).

#![cfg(ssehub_loom)]

use loom::thread;
use ssehub_core::codec::Event;
use ssehub_core::{
    ActivateError, CloseOutcome, CloseReason, Drain, Hub, HubConfig, PublishError, ReserveError,
    ReserveOptions, SendError,
};
use ssehub_verification::model::{assert_settled, drain_all, quiet_config, run_model, Seen};
use std::time::{Duration, Instant};

/// Quiet, but with a heartbeat, so that activation schedules a deadline
/// and the close must remove it.
fn heartbeat_config() -> HubConfig {
    HubConfig {
        heartbeat_interval: Some(Duration::from_secs(1)),
        ..quiet_config()
    }
}

/// Model 1. One thread activates a reservation while another closes its id
/// (the adapter's close hook firing mid-registration). Whichever wins, the
/// outcomes agree (a `Deferred` close makes activation fail, a `Closed` one
/// means activation succeeded first), the writer sees the close (I1), a
/// second close changes nothing (I6), and nothing is left (I5).
#[test]
fn close_racing_activate_leaves_nothing() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("close_vs_activate", move || {
        let hub = Hub::new(heartbeat_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let id = reservation.id();
        let stream = reservation.stream();

        let activator = thread::spawn(move || reservation.activate());
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(id, CloseReason::ClientGone))
        };
        let activated = activator.join().unwrap();
        let closed = closer.join().unwrap();

        match (closed, activated) {
            (
                CloseOutcome::Deferred,
                Err(ActivateError::ClosedBeforeActivation(CloseReason::ClientGone)),
            ) => record.record("close first: deferred"),
            (CloseOutcome::Closed, Ok(activated)) => {
                assert_eq!(activated, id);
                record.record("activate first: closed");
            }
            other => panic!("I1: close and activate disagree: {other:?}"),
        }
        assert!(!hub.is_active(id), "I1: no active client after its close");
        assert_eq!(
            hub.close(id, CloseReason::Kicked),
            CloseOutcome::AlreadyClosed,
            "I6: a second close changes nothing"
        );
        let (frames, end) = drain_all(&stream);
        assert!(frames.is_empty(), "I3: nothing enqueued: {frames:?}");
        assert_eq!(
            end,
            Drain::Closed(CloseReason::ClientGone),
            "I1: the writer learns of the close"
        );
        assert_eq!(hub.subscriber_count("t"), 0, "I2: not indexed after close");
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["activate first: closed", "close first: deferred"]);
}

/// Model 2. The close comes first (`Deferred`); then activation (which must
/// run the deferred cleanup) races a send to the id and a second close. The
/// send never gets in (I3), the second close reports `AlreadyClosed` (I6),
/// activation fails with the first close's reason, and nothing is left (I5).
#[test]
fn close_before_activate_then_activate_runs_the_deferred_cleanup() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("close_before_activate_then_activate", move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let id = reservation.id();
        let stream = reservation.stream();
        assert_eq!(
            hub.close(id, CloseReason::ClientGone),
            CloseOutcome::Deferred
        );

        let activator = thread::spawn(move || reservation.activate());
        let other = {
            let hub = hub.clone();
            thread::spawn(move || {
                let sent = hub.send(id, &Event::new("late"));
                (sent, hub.close(id, CloseReason::Kicked))
            })
        };
        let activated = activator.join().unwrap();
        let (sent, closed_again) = other.join().unwrap();

        assert_eq!(
            activated,
            Err(ActivateError::ClosedBeforeActivation(
                CloseReason::ClientGone
            )),
            "I5: the deferred cleanup reports the first close"
        );
        assert!(
            matches!(
                sent,
                Err(SendError::Closed(CloseReason::ClientGone) | SendError::UnknownClient)
            ),
            "I3: nothing is enqueued after a close: {sent:?}"
        );
        record.record(match sent {
            Err(SendError::Closed(_)) => "send before cleanup",
            _ => "send after cleanup",
        });
        assert_eq!(
            closed_again,
            CloseOutcome::AlreadyClosed,
            "I6: a second close changes nothing"
        );
        let (frames, end) = drain_all(&stream);
        assert!(frames.is_empty(), "I3: {frames:?}");
        assert_eq!(end, Drain::Closed(CloseReason::ClientGone));
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["send after cleanup", "send before cleanup"]);
}

/// Model 17. The adapter's registration without the registry lock for its
/// initial frame: one thread queues the welcome through the reservation
/// (`Reservation::send_frame`, which holds the queue and takes no registry
/// lock) and activates, while another closes the id. Whatever the
/// interleaving: the frame is either queued before the close or refused
/// with the close's reason (I3), activation agrees with the close (I1),
/// the writer sees the close after at most the welcome, and nothing is
/// left (I5).
#[test]
fn a_reservations_initial_frame_racing_a_close() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("reservation_send_vs_close", move || {
        let hub = Hub::new(heartbeat_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let id = reservation.id();
        let stream = reservation.stream();

        let registrar = thread::spawn(move || {
            let sent = reservation.send_frame(bytes::Bytes::from_static(b"data: welcome\n\n"));
            (sent, reservation.activate())
        });
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(id, CloseReason::ClientGone))
        };
        let (sent, activated) = registrar.join().unwrap();
        let closed = closer.join().unwrap();

        let (frames, end) = drain_all(&stream);
        assert_eq!(end, Drain::Closed(CloseReason::ClientGone), "I1");
        match (&sent, &activated, closed) {
            (Ok(()), Ok(_), CloseOutcome::Closed) => record.record("sent, activated, closed"),
            (
                Ok(()),
                Err(ActivateError::ClosedBeforeActivation(CloseReason::ClientGone)),
                CloseOutcome::Deferred,
            ) => record.record("sent, closed, activation refused"),
            (
                Err(SendError::Closed(CloseReason::ClientGone)),
                Err(ActivateError::ClosedBeforeActivation(CloseReason::ClientGone)),
                CloseOutcome::Deferred,
            ) => record.record("closed, send refused"),
            other => panic!("I1/I3: send, activate and close disagree: {other:?}"),
        }
        let expected: &[&str] = if sent.is_ok() {
            &["data: welcome\n\n"]
        } else {
            &[]
        };
        assert_eq!(
            frames, expected,
            "I3: the welcome at most, and only before the close"
        );
        assert!(!hub.is_active(id), "I1");
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&[
        "closed, send refused",
        "sent, activated, closed",
        "sent, closed, activation refused",
    ]);
}

/// Model 6a. Two threads close the same active client with different
/// reasons: exactly one gets `Closed` and its reason is the one the writer
/// sees; the other gets `AlreadyClosed` (I6).
#[test]
fn double_close_of_an_active_client_closes_exactly_once() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("double_close_active", move || {
        let hub = Hub::new(heartbeat_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = reservation.stream();
        let id = reservation.activate().unwrap();

        let closers: Vec<_> = [CloseReason::ClientGone, CloseReason::Kicked]
            .into_iter()
            .map(|reason| {
                let hub = hub.clone();
                thread::spawn(move || (reason, hub.close(id, reason)))
            })
            .collect();
        let outcomes: Vec<_> = closers.into_iter().map(|t| t.join().unwrap()).collect();

        let winners: Vec<_> = outcomes
            .iter()
            .filter(|(_, outcome)| *outcome == CloseOutcome::Closed)
            .collect();
        assert_eq!(winners.len(), 1, "I6: exactly one Closed: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|(_, o)| matches!(o, CloseOutcome::Closed | CloseOutcome::AlreadyClosed)),
            "I6: the other close reports AlreadyClosed: {outcomes:?}"
        );
        let (frames, end) = drain_all(&stream);
        assert!(frames.is_empty());
        assert_eq!(
            end,
            Drain::Closed(winners[0].0),
            "I6: the first close's reason stands"
        );
        record.record(winners[0].0.as_str());
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["client_gone", "kicked"]);
}

/// Model 6b. Two threads close the same reserved client: exactly one gets
/// `Deferred`, the other `AlreadyClosed` (I6); dropping the reservation
/// then frees the slot (I5).
#[test]
fn double_close_of_a_reserved_client_defers_exactly_once() {
    run_model("double_close_reserved", || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let id = reservation.id();

        let closers: Vec<_> = [CloseReason::ClientGone, CloseReason::Kicked]
            .into_iter()
            .map(|reason| {
                let hub = hub.clone();
                thread::spawn(move || hub.close(id, reason))
            })
            .collect();
        let mut outcomes: Vec<_> = closers.into_iter().map(|t| t.join().unwrap()).collect();
        outcomes.sort_by_key(|o| *o == CloseOutcome::Deferred);
        assert_eq!(
            outcomes,
            [CloseOutcome::AlreadyClosed, CloseOutcome::Deferred],
            "I6: exactly one close is deferred"
        );
        assert_eq!(hub.len(), 1, "the slot waits for its reservation");
        drop(reservation);
        assert_settled(&hub, 0);
    });
}

/// Model 8. A shutdown races a client's reserve and activate. Either the
/// reserve is refused, or the client is marked `ClosePending` and its
/// activation fails with `Shutdown`, or it was active and got the final
/// frame before being closed with `Shutdown`. In every case the hub is
/// empty with no further close (I1, I5), and stays closed to new clients
/// and publishes.
#[test]
fn shutdown_racing_reserve_leaves_no_client_behind() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("shutdown_vs_reserve", move || {
        let hub = Hub::new(quiet_config(), Instant::now());

        let shutter = {
            let hub = hub.clone();
            thread::spawn(move || hub.shutdown(Some(&Event::new("bye"))).unwrap())
        };
        let connector = {
            let hub = hub.clone();
            thread::spawn(
                move || match hub.reserve(ReserveOptions::new().topic("t")) {
                    Err(error) => Err(error),
                    Ok(reservation) => {
                        let stream = reservation.stream();
                        Ok((reservation.activate(), stream))
                    }
                },
            )
        };
        let report = shutter.join().unwrap();
        let connected = connector.join().unwrap();

        match connected {
            Err(ReserveError::ShuttingDown) => {
                assert_eq!((report.closed, report.pending), (0, 0));
                record.record("refused");
            }
            Ok((Err(ActivateError::ClosedBeforeActivation(CloseReason::Shutdown)), stream)) => {
                assert_eq!((report.closed, report.pending), (0, 1));
                let (frames, end) = drain_all(&stream);
                assert!(frames.is_empty(), "I3: {frames:?}");
                assert_eq!(end, Drain::Closed(CloseReason::Shutdown));
                record.record("pending");
            }
            Ok((Ok(_), stream)) => {
                assert_eq!((report.closed, report.pending), (1, 0));
                let (frames, end) = drain_all(&stream);
                assert_eq!(frames.len(), 1, "the final frame: {frames:?}");
                assert!(frames[0].starts_with("retry: "), "{frames:?}");
                assert!(frames[0].ends_with("data: bye\n\n"), "{frames:?}");
                assert_eq!(end, Drain::Closed(CloseReason::Shutdown), "I1");
                record.record("active");
            }
            Ok((other, _)) => panic!("I1: unexpected activation after shutdown: {other:?}"),
            Err(other) => panic!("unexpected reserve error: {other:?}"),
        }
        assert_settled(&hub, 0);
        assert!(matches!(
            hub.reserve(ReserveOptions::new()),
            Err(ReserveError::ShuttingDown)
        ));
        assert_eq!(
            hub.publish("t", &Event::new("after")),
            Err(PublishError::ShutDown)
        );
    });
    seen.assert_exactly(&["active", "pending", "refused"]);
}
