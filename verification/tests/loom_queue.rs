//! Loom models of a client's queue on the real [`Hub`]: the reader
//! registering its waker (or blocking on the condition variable) races a
//! push or a close. A lost wake-up leaves the reader parked forever, which
//! loom reports as a deadlock, so these models fail on any lost wake-up.

#![cfg(ssehub_loom)]

use loom::future::block_on;
use loom::thread;
use ssehub_core::codec::Event;
use ssehub_core::{CloseOutcome, CloseReason, Drain, Hub, ReserveOptions};
use ssehub_verification::model::{assert_settled, drain_all, quiet_config, run_model, Seen};
use std::future::poll_fn;
use std::time::Instant;

/// How the writer waits in a model.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// `poll_drain` under loom's `block_on`: parks until the waker fires.
    Waker,
    /// `recv_blocking`: waits on the queue's condition variable.
    Blocking,
}

/// What the other thread does to the active client.
#[derive(Clone, Copy, Debug)]
enum Writer {
    /// `send` one frame.
    Push,
    /// `close` the client.
    Close,
}

fn reader_vs_writer(name: &'static str, reader: Reader, writer: Writer) {
    let seen = Seen::new();
    let record = seen.clone();
    run_model(name, move || {
        let hub = Hub::new(quiet_config(), Instant::now());
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = reservation.stream();
        let id = reservation.activate().unwrap();

        let other = {
            let hub = hub.clone();
            thread::spawn(move || match writer {
                Writer::Push => hub.send(id, &Event::new("x")).unwrap(),
                Writer::Close => {
                    assert_eq!(hub.close(id, CloseReason::ClientGone), CloseOutcome::Closed)
                }
            })
        };
        let mut out = Vec::new();
        let got = match reader {
            Reader::Waker => {
                let mut polls = 0;
                let got = block_on(poll_fn(|cx| {
                    polls += 1;
                    stream.poll_drain(cx, &mut out, 8)
                }));
                record.record(if polls == 1 { "ready at once" } else { "woken" });
                got
            }
            Reader::Blocking => stream.recv_blocking(&mut out, 8),
        };
        other.join().unwrap();

        match writer {
            Writer::Push => {
                assert_eq!(got, Drain::Frames(1), "no lost wake-up");
                assert_eq!(&out[0][..], b"data: x\n\n");
                assert_eq!(hub.close(id, CloseReason::ClientGone), CloseOutcome::Closed);
            }
            Writer::Close => {
                assert_eq!(
                    got,
                    Drain::Closed(CloseReason::ClientGone),
                    "I1: woken by the close"
                );
            }
        }
        let (frames, end) = drain_all(&stream);
        assert!(frames.is_empty(), "I3: {frames:?}");
        assert_eq!(end, Drain::Closed(CloseReason::ClientGone));
        assert_settled(&hub, 0);
    });
    if let Reader::Waker = reader {
        seen.assert_exactly(&["ready at once", "woken"]);
    }
}

/// Model 7a. `poll_drain` registering its waker races a push: if the
/// reader saw the queue empty and returned `Pending`, the push wakes it.
#[test]
fn push_racing_waker_registration_always_wakes_the_reader() {
    reader_vs_writer("poll_drain_vs_push", Reader::Waker, Writer::Push);
}

/// Model 7b. `poll_drain` registering its waker races a close: the close
/// wakes the reader, which then sees `Closed` (I1).
#[test]
fn close_racing_waker_registration_always_wakes_the_reader() {
    reader_vs_writer("poll_drain_vs_close", Reader::Waker, Writer::Close);
}

/// Model 7c. A reader blocked in `recv_blocking` races a push.
#[test]
fn push_racing_blocking_receive_always_wakes_the_reader() {
    reader_vs_writer("recv_blocking_vs_push", Reader::Blocking, Writer::Push);
}

/// Model 7d. A reader blocked in `recv_blocking` races a close (I1: the
/// writer ends).
#[test]
fn close_racing_blocking_receive_always_wakes_the_reader() {
    reader_vs_writer("recv_blocking_vs_close", Reader::Blocking, Writer::Close);
}
