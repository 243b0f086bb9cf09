//! A client's queue through the public API: the byte and frame bounds hold
//! exactly (a queue full to the byte is not overflowing, one byte more
//! is), drained frames give their room back however much a client is sent
//! over its life, and every reader is woken: the latest waker of
//! `poll_drain`, and a thread blocked in `recv_blocking` when an overflow
//! closes the queue.

use bytes::Bytes;
use ssehub_core::{
    ClientId, ClientStream, CloseReason, Drain, Hub, HubConfig, ReserveOptions, SendError,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// A 16-byte frame.
const FRAME: &[u8; 16] = b"data: 01234567\n\n";

fn hub(queue_max_frames: usize, queue_max_bytes: usize) -> Hub {
    Hub::new(
        HubConfig {
            queue_max_frames,
            queue_max_bytes,
            heartbeat_interval: None,
            idle_timeout: None,
            write_stall_timeout: None,
            replay_capacity: 0,
            ..HubConfig::default()
        },
        Instant::now(),
    )
}

fn client(hub: &Hub) -> (ClientId, ClientStream) {
    let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
    let stream = reservation.stream();
    (reservation.activate().unwrap(), stream)
}

fn send(hub: &Hub, id: ClientId) -> Result<(), SendError> {
    hub.send_frame(id, Bytes::from_static(FRAME))
}

fn drain_all(stream: &ClientStream) -> (usize, Drain) {
    let mut out = Vec::new();
    loop {
        match stream.drain(&mut out, 64) {
            Drain::Frames(_) => {}
            end => {
                assert!(out.iter().all(|f| f.as_ref() == FRAME));
                return (out.len(), end);
            }
        }
    }
}

#[test]
fn a_queue_full_to_the_byte_is_not_overflowing_and_one_frame_more_is() {
    let hub = hub(100, 4 * FRAME.len());
    let (id, stream) = client(&hub);
    for n in 1..=4 {
        assert_eq!(send(&hub, id), Ok(()), "frame {n} fits");
    }
    assert!(hub.is_active(id));
    assert_eq!(send(&hub, id), Err(SendError::SlowConsumer));
    assert!(!hub.is_active(id));
    assert_eq!(
        drain_all(&stream),
        (4, Drain::Closed(CloseReason::SlowConsumer))
    );
}

#[test]
fn a_queue_full_to_the_frame_is_not_overflowing_and_one_frame_more_is() {
    let hub = hub(4, 1 << 20);
    let (id, stream) = client(&hub);
    for n in 1..=4 {
        assert_eq!(send(&hub, id), Ok(()), "frame {n} fits");
    }
    assert_eq!(send(&hub, id), Err(SendError::SlowConsumer));
    assert_eq!(
        drain_all(&stream),
        (4, Drain::Closed(CloseReason::SlowConsumer))
    );
    assert_eq!(hub.metrics().queue_high_water, 4);
}

#[test]
fn drained_frames_give_their_bytes_back_over_any_lifetime() {
    let bound = 4 * FRAME.len();
    let hub = hub(100, bound);
    let (id, stream) = client(&hub);
    let rounds = 64;
    for round in 0..rounds {
        // Fill to the bound exactly, then drain it all, in uneven batches.
        for _ in 0..4 {
            assert_eq!(send(&hub, id), Ok(()), "round {round}");
        }
        let mut out = Vec::new();
        assert_eq!(stream.drain(&mut out, 3), Drain::Frames(3));
        assert_eq!(stream.drain(&mut out, 3), Drain::Frames(1));
        assert_eq!(stream.drain(&mut out, 3), Drain::Empty);
        stream.flushed(Instant::now());
    }
    let transported = rounds * bound;
    assert!(
        transported > 100 * bound / 2,
        "far more than the bound in total"
    );
    assert!(hub.is_active(id));
    let metrics = hub.metrics();
    assert_eq!(metrics.frames_delivered, 4 * rounds as u64);
    assert_eq!(metrics.bytes_delivered, transported as u64);
    assert_eq!(metrics.queue_high_water, 4);
    // The room is still exactly the bound.
    for _ in 0..4 {
        assert_eq!(send(&hub, id), Ok(()));
    }
    assert_eq!(send(&hub, id), Err(SendError::SlowConsumer));
}

#[test]
fn a_partial_drain_gives_back_exactly_the_drained_room() {
    let hub = hub(100, 4 * FRAME.len());
    let (id, stream) = client(&hub);
    for _ in 0..4 {
        assert_eq!(send(&hub, id), Ok(()));
    }
    let mut out = Vec::new();
    assert_eq!(stream.drain(&mut out, 1), Drain::Frames(1));
    assert_eq!(send(&hub, id), Ok(()), "the drained frame's room");
    assert_eq!(send(&hub, id), Err(SendError::SlowConsumer), "no more");
    assert_eq!(
        drain_all(&stream),
        (4, Drain::Closed(CloseReason::SlowConsumer))
    );
}

#[test]
fn a_stream_reports_its_client_and_why_it_was_closed() {
    let hub = hub(100, 1 << 20);
    let (id, stream) = client(&hub);
    assert_eq!(stream.id(), id);
    assert!(format!("{stream:?}").starts_with("ClientStream {"));
    assert!(format!("{stream:?}").contains(&format!("{id:?}")));
    assert_eq!(stream.closed_reason(), None);
    let _ = hub.close(id, CloseReason::Kicked);
    assert_eq!(stream.closed_reason(), Some(CloseReason::Kicked));
    let _ = hub.close(id, CloseReason::IdleTimeout);
    assert_eq!(
        stream.closed_reason(),
        Some(CloseReason::Kicked),
        "the first reason stands"
    );
    let metrics = hub.metrics();
    assert_eq!(metrics.closes_for(CloseReason::Kicked), 1);
    assert_eq!(metrics.closes_for(CloseReason::IdleTimeout), 0);
}

/// Counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn poll(stream: &ClientStream, waker: &Arc<CountingWaker>) -> Poll<Drain> {
    let waker = Waker::from(Arc::clone(waker));
    let mut cx = Context::from_waker(&waker);
    stream.poll_drain(&mut cx, &mut Vec::new(), 64)
}

#[test]
fn poll_drain_wakes_the_task_that_polled_last() {
    let hub = hub(100, 1 << 20);
    let (id, stream) = client(&hub);
    let (first, moved) = (Arc::default(), Arc::default());
    assert_eq!(poll(&stream, &first), Poll::Pending);
    // The task moved (another executor thread, another waker).
    assert_eq!(poll(&stream, &moved), Poll::Pending);
    assert_eq!(send(&hub, id), Ok(()));
    assert_eq!(moved.count(), 1, "the latest waker is woken");
    assert_eq!(first.count(), 0, "a replaced waker is not");
    assert_eq!(poll(&stream, &moved), Poll::Ready(Drain::Frames(1)));

    // The same waker polled twice is kept, and woken once per push.
    assert_eq!(poll(&stream, &moved), Poll::Pending);
    assert_eq!(poll(&stream, &moved), Poll::Pending);
    assert_eq!(send(&hub, id), Ok(()));
    assert_eq!(moved.count(), 2);
    assert_eq!(poll(&stream, &moved), Poll::Ready(Drain::Frames(1)));

    // A close wakes the latest waker too.
    assert_eq!(poll(&stream, &first), Poll::Pending);
    let _ = hub.close(id, CloseReason::Kicked);
    assert_eq!(first.count(), 1);
    assert_eq!(moved.count(), 2);
    assert_eq!(
        poll(&stream, &first),
        Poll::Ready(Drain::Closed(CloseReason::Kicked))
    );
}

/// The scheduler state of one of this process's threads (`S` when it is
/// asleep, e.g. parked on a condition variable).
fn thread_state(tid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.trim_start().chars().next()
}

/// Runs `read` on `stream` in a new thread and returns once that thread is
/// asleep (blocked in `recv_blocking`: it has nothing else to sleep on),
/// with the receiver of what `read` returns.
fn blocked_reader<T: Send + 'static>(
    stream: ClientStream,
    read: impl FnOnce(&ClientStream) -> T + Send + 'static,
) -> (mpsc::Receiver<T>, std::thread::JoinHandle<()>) {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let me = std::fs::read_link("/proc/thread-self").unwrap();
        let tid = me.file_name().unwrap().to_string_lossy().into_owned();
        tid_tx.send(tid).unwrap();
        done_tx.send(read(&stream)).unwrap();
    });
    let tid = tid_rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while thread_state(&tid) != Some('S') {
        assert!(Instant::now() < deadline, "the reader never blocked");
        std::thread::yield_now();
    }
    (done_rx, reader)
}

#[test]
fn a_thread_blocked_in_recv_wakes_when_an_overflow_closes_the_queue() {
    // Any frame overflows this queue, even into an empty queue.
    let hub = hub(100, FRAME.len() - 1);
    let (id, stream) = client(&hub);
    let (done_rx, reader) = blocked_reader(stream, |stream| {
        let mut out = Vec::new();
        let drain = stream.recv_blocking(&mut out, 64);
        (drain, out.len())
    });
    assert_eq!(done_rx.try_recv(), Err(mpsc::TryRecvError::Empty));
    assert_eq!(send(&hub, id), Err(SendError::SlowConsumer));
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(10)),
        Ok((Drain::Closed(CloseReason::SlowConsumer), 0)),
        "the blocked reader was not woken by the overflow close"
    );
    reader.join().unwrap();
}

#[test]
fn a_thread_blocked_in_recv_wakes_for_a_frame() {
    let hub = hub(100, 1 << 20);
    let (id, stream) = client(&hub);
    let (done_rx, reader) = blocked_reader(stream, |stream| {
        let mut out = Vec::new();
        let drain = stream.recv_blocking(&mut out, 64);
        (drain, out.len())
    });
    assert_eq!(send(&hub, id), Ok(()));
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(10)),
        Ok((Drain::Frames(1), 1))
    );
    reader.join().unwrap();
}

/// Kills `state.blocked > 0` -> `== 0` / `< 0` in `Queue::close`: a thread
/// blocked in `recv_blocking` when the hub closes its client (a kick)
/// wakes, drains what is left and sees the close.
#[test]
fn a_thread_blocked_in_recv_wakes_when_its_client_is_closed() {
    let hub = hub(100, 1 << 20);
    let (id, stream) = client(&hub);
    let (done_rx, reader) = blocked_reader(stream, |stream| {
        let mut out = Vec::new();
        let mut drains = Vec::new();
        loop {
            let drain = stream.recv_blocking(&mut out, 64);
            drains.push(drain);
            if let Drain::Closed(_) = drain {
                return drains;
            }
        }
    });
    assert_eq!(done_rx.try_recv(), Err(mpsc::TryRecvError::Empty));
    let _ = hub.close(id, CloseReason::Kicked);
    let drains = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocked reader was not woken by the close");
    assert_eq!(drains.last(), Some(&Drain::Closed(CloseReason::Kicked)));
    reader.join().unwrap();
}
