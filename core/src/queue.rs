//! The per-client queue: bounded, shared between the hub (producer) and the
//! client's writer (the single reader), runtime-agnostic.
//!
//! The hub pushes cheap clones of encoded frames; the writer drains them in
//! batches without blocking ([`ClientStream::drain`]), asynchronously through
//! a [`std::task::Waker`] ([`ClientStream::poll_drain`]) or by blocking a
//! thread ([`ClientStream::recv_blocking`]).
//!
//! Invariants:
//! - **bounded**: at most `max_frames` frames and `max_bytes` bytes are
//!   queued; a push that does not fit closes the queue with
//!   [`CloseReason::SlowConsumer`] instead of dropping the frame (I7);
//! - **closed is final**: once closed, no push succeeds (I3); the reader
//!   still drains what was queued before the close, then sees the reason;
//! - **no lost wake-up**: the reader registers its waker, and pushes and
//!   closes take it, under the same lock, so a frame or close that lands
//!   after the reader saw an empty queue always wakes it.
//!
//! Time stamps (for heartbeats and stall detection) are nanoseconds on the
//! hub's injected clock, recorded here because the queue lock is already
//! held on every push and flush.

use crate::metrics::Metrics;
use crate::reason::CloseReason;
use crate::sync::{Arc, Condvar, Mutex};
use crate::{ClientId, Hub};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::task::{Context, Poll, Waker};

/// Result of a push onto a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Push {
    /// The frame is queued.
    Queued,
    /// The queue was full: it is now closed with `SlowConsumer`.
    Overflowed,
    /// The queue was already closed for this reason; nothing was queued.
    Closed(CloseReason),
}

impl Push {
    /// `true` for [`Push::Queued`].
    pub(crate) fn is_queued(&self) -> bool {
        matches!(self, Self::Queued)
    }
}

pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    max_frames: usize,
    max_bytes: usize,
}

struct State {
    frames: VecDeque<Bytes>,
    bytes: usize,
    closed: Option<CloseReason>,
    waker: Option<Waker>,
    /// Clock of the last push (any frame), for heartbeats.
    last_push: u64,
    /// Clock of the last reported flush, for the idle timeout.
    last_flush: u64,
    /// Clock since which a non-empty queue has made no flush progress.
    stall_since: Option<u64>,
    /// Readers blocked in `recv_blocking`.
    blocked: usize,
    /// Deepest this queue has been; the hub-wide gauge is raised only when
    /// this grows, so a push does not touch a shared cache line.
    high_water: usize,
}

/// What a drain found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    /// This many frames were moved into the caller's buffer.
    Frames(usize),
    /// Nothing queued right now; the client is open.
    Empty,
    /// Nothing left, and the client was closed for this reason: the writer
    /// should finish the response.
    Closed(CloseReason),
}

/// Timestamps the deadline check reads, taken under one lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Activity {
    pub(crate) last_push: u64,
    pub(crate) last_flush: u64,
    pub(crate) stall_since: Option<u64>,
    pub(crate) empty: bool,
}

impl Queue {
    pub(crate) fn new(max_frames: usize, max_bytes: usize, now: u64) -> Self {
        Self {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                closed: None,
                waker: None,
                last_push: now,
                last_flush: now,
                stall_since: None,
                blocked: 0,
                high_water: 0,
            }),
            ready: Condvar::new(),
            max_frames,
            max_bytes,
        }
    }

    /// Empties a queue nobody else holds, for reuse ([`crate::spare`], R1):
    /// frames, waker and close reason dropped, counters zeroed. `false`
    /// (and nothing kept) when its ring has grown past `max_ring` frames.
    pub(crate) fn empty_for_reuse(&mut self, max_ring: usize) -> bool {
        let state = self.state.get_mut();
        if state.frames.capacity() > max_ring {
            return false;
        }
        state.frames.clear();
        state.bytes = 0;
        state.closed = None;
        state.waker = None;
        state.stall_since = None;
        state.blocked = 0;
        state.high_water = 0;
        true
    }

    /// Readies an emptied queue for a new client: its bounds, and its
    /// clocks at `now`, as [`Queue::new`] sets them.
    pub(crate) fn renew(&mut self, max_frames: usize, max_bytes: usize, now: u64) {
        self.max_frames = max_frames;
        self.max_bytes = max_bytes;
        let state = self.state.get_mut();
        state.last_push = now;
        state.last_flush = now;
    }

    /// Pushes a frame, respecting the bound; overflowing closes the queue
    /// with `SlowConsumer` (I7).
    pub(crate) fn push(&self, frame: Bytes, now: u64, metrics: &Metrics) -> Push {
        self.push_inner(frame, now, false, metrics)
    }

    /// Pushes a frame past the bound (the one final frame of a shutdown or a
    /// replay batch that was sized beforehand).
    pub(crate) fn force_push(&self, frame: Bytes, now: u64, metrics: &Metrics) -> Push {
        self.push_inner(frame, now, true, metrics)
    }

    fn push_inner(&self, frame: Bytes, now: u64, force: bool, metrics: &Metrics) -> Push {
        let mut state = self.state.lock();
        if let Some(reason) = state.closed {
            return Push::Closed(reason);
        }
        let len = frame.len();
        if !force
            && (state.frames.len() >= self.max_frames
                || state.bytes.saturating_add(len) > self.max_bytes)
        {
            let waker = state.close(CloseReason::SlowConsumer);
            let blocked = state.blocked > 0;
            drop(state);
            self.wake(waker, blocked);
            return Push::Overflowed;
        }
        if state.frames.is_empty() {
            state.stall_since = Some(now);
        }
        state.frames.push_back(frame);
        state.bytes += len;
        state.last_push = now;
        if state.frames.len() > state.high_water {
            state.high_water = state.frames.len();
            metrics.here().queue_high_water.max(state.high_water as u64);
        }
        let waker = state.waker.take();
        let blocked = state.blocked > 0;
        drop(state);
        self.wake(waker, blocked);
        Push::Queued
    }

    /// Closes the queue and returns the reason in effect: `reason`, or the
    /// earlier one if it was already closed (the first reason stands).
    /// `last`, if given, is queued (past the bound) in the same step, so it
    /// is the final frame the reader sees; on a queue already closed it is
    /// dropped.
    pub(crate) fn close(&self, reason: CloseReason, last: Option<Bytes>) -> CloseReason {
        let mut state = self.state.lock();
        if let Some(earlier) = state.closed {
            return earlier;
        }
        if let Some(frame) = last {
            state.bytes += frame.len();
            state.frames.push_back(frame);
        }
        let waker = state.close(reason);
        let blocked = state.blocked > 0;
        drop(state);
        self.wake(waker, blocked);
        reason
    }

    /// The reason the queue was closed for, if it was.
    pub(crate) fn closed_reason(&self) -> Option<CloseReason> {
        self.state.lock().closed
    }

    /// Frames and bytes that fit before the bound.
    pub(crate) fn room(&self) -> (usize, usize) {
        let state = self.state.lock();
        (
            self.max_frames.saturating_sub(state.frames.len()),
            self.max_bytes.saturating_sub(state.bytes),
        )
    }

    pub(crate) fn flushed(&self, now: u64) {
        let mut state = self.state.lock();
        state.last_flush = state.last_flush.max(now);
        state.stall_since = if state.frames.is_empty() {
            None
        } else {
            Some(now)
        };
    }

    pub(crate) fn activity(&self) -> Activity {
        let state = self.state.lock();
        Activity {
            last_push: state.last_push,
            last_flush: state.last_flush,
            stall_since: state.stall_since,
            empty: state.frames.is_empty(),
        }
    }

    fn wake(&self, waker: Option<Waker>, blocked: bool) {
        if let Some(waker) = waker {
            waker.wake();
        }
        if blocked {
            self.ready.notify_all();
        }
    }

    fn drain_locked(state: &mut State, out: &mut Vec<Bytes>, max: usize) -> Drain {
        let n = state.frames.len().min(max.max(1));
        if n == 0 {
            return match state.closed {
                Some(reason) => Drain::Closed(reason),
                None => Drain::Empty,
            };
        }
        for frame in state.frames.drain(..n) {
            state.bytes -= frame.len();
            out.push(frame);
        }
        Drain::Frames(n)
    }
}

impl State {
    /// Marks closed and hands back the waker to wake once unlocked.
    fn close(&mut self, reason: CloseReason) -> Option<Waker> {
        self.closed = Some(reason);
        self.stall_since = None;
        self.waker.take()
    }
}

/// The reading end of one client's queue, handed to the transport that
/// writes the client's response.
///
/// There is one logical reader per client: `poll_drain` keeps a single
/// waker, the last one registered.
pub struct ClientStream {
    id: ClientId,
    pub(crate) queue: Arc<Queue>,
    pub(crate) hub: Hub,
}

impl fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        crate::spare::give(&mut self.queue);
    }
}

impl ClientStream {
    pub(crate) fn new(id: ClientId, queue: Arc<Queue>, hub: Hub) -> Self {
        Self { id, queue, hub }
    }

    /// The client this stream belongs to.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Moves up to `max` queued frames (at least one) into `out` without
    /// blocking.
    pub fn drain(&self, out: &mut Vec<Bytes>, max: usize) -> Drain {
        let mut state = self.queue.state.lock();
        let start = out.len();
        let drain = Queue::drain_locked(&mut state, out, max);
        drop(state);
        self.count(out, start, drain)
    }

    /// Like [`drain`](Self::drain), but when the queue is empty and open,
    /// registers `cx`'s waker and returns `Pending`; the next push or close
    /// wakes it.
    pub fn poll_drain(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
        max: usize,
    ) -> Poll<Drain> {
        let mut state = self.queue.state.lock();
        let start = out.len();
        match Queue::drain_locked(&mut state, out, max) {
            Drain::Empty => {
                match &mut state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            drain => {
                drop(state);
                Poll::Ready(self.count(out, start, drain))
            }
        }
    }

    /// Blocks the calling thread until frames are queued or the client is
    /// closed; never returns [`Drain::Empty`].
    pub fn recv_blocking(&self, out: &mut Vec<Bytes>, max: usize) -> Drain {
        let mut state = self.queue.state.lock();
        let start = out.len();
        loop {
            match Queue::drain_locked(&mut state, out, max) {
                Drain::Empty => {
                    state.blocked += 1;
                    self.queue.ready.wait(&mut state);
                    state.blocked -= 1;
                }
                drain => {
                    drop(state);
                    return self.count(out, start, drain);
                }
            }
        }
    }

    /// The reason the client was closed for, once it was.
    pub fn closed_reason(&self) -> Option<CloseReason> {
        self.queue.closed_reason()
    }

    fn count(&self, out: &[Bytes], start: usize, drain: Drain) -> Drain {
        if let Drain::Frames(n) = drain {
            let bytes: usize = out[start..].iter().map(Bytes::len).sum();
            let cells = self.hub.metrics_counters().here();
            cells.frames_delivered.add(n as u64);
            cells.bytes_delivered.add(bytes as u64);
        }
        drain
    }
}
