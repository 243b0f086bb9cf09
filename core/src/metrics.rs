//! Counters the hub keeps as it works, and [`MetricsSnapshot`], the cheap
//! copy an operator reads (the server renders it as Prometheus text).
//!
//! Counters are relaxed atomics that loom does not model (see
//! `sync::Counter`): they record what happened and decide nothing.

use crate::reason::CloseReason;
use crate::sync::Counter;

/// One stripe of the counters.
#[derive(Debug, Default)]
pub(crate) struct Cells {
    pub(crate) events_published: Counter,
    pub(crate) frames_delivered: Counter,
    pub(crate) bytes_delivered: Counter,
    pub(crate) closes: [Counter; CloseReason::COUNT],
    pub(crate) replay_hits: Counter,
    pub(crate) replay_resets: Counter,
    pub(crate) queue_high_water: Counter,
    pub(crate) heartbeats: Counter,
    pub(crate) events_expired: Counter,
    pub(crate) events_evicted: Counter,
    pub(crate) topics_evicted: Counter,
}

impl Cells {
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closes[reason.index()].add(1);
    }
}

/// A stripe alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(Cells);

/// Stripes: each thread counts in the stripe of its home number, so
/// threads that connect, close and drain at once do not pass one cache
/// line back and forth for every count. A snapshot adds the stripes up
/// (and takes the largest high-water mark).
const STRIPES: usize = 8;

/// The hub's counters, striped by thread (see [`STRIPES`]).
#[derive(Debug)]
pub(crate) struct Metrics {
    stripes: Box<[Stripe]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }
}

impl Metrics {
    /// This thread's stripe. (Under loom always the first: counters are
    /// not modelled, and the home number would add a modelled step.)
    pub(crate) fn here(&self) -> &Cells {
        #[cfg(not(ssehub_loom))]
        let index = crate::sync::thread_home() % STRIPES;
        #[cfg(ssehub_loom)]
        let index = 0;
        &self.stripes[index].0
    }

    /// Counts a close for `reason`.
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.here().closed(reason);
    }

    fn sum(&self, field: impl Fn(&Cells) -> &Counter) -> u64 {
        self.stripes.iter().map(|s| field(&s.0).get()).sum()
    }
}

/// A point-in-time copy of the hub's state and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Clients reserved but not yet activated (including those whose close
    /// is pending).
    pub clients_reserved: u64,
    /// Clients reserved whose close arrived before activation.
    pub clients_close_pending: u64,
    /// Active clients, visible to broadcasts.
    pub clients_active: u64,
    /// Topics kept (with subscribers or retained events).
    pub topics: u64,
    /// Events published since start.
    pub events_published: u64,
    /// Frames handed to writers since start.
    pub frames_delivered: u64,
    /// Bytes handed to writers since start.
    pub bytes_delivered: u64,
    /// Closes since start, by reason, in [`CloseReason::ALL`] order.
    pub closes: [(CloseReason, u64); CloseReason::COUNT],
    /// Reconnects whose `Last-Event-ID` was honoured by a replay.
    pub replay_hits: u64,
    /// Reconnects answered with a reset event.
    pub replay_resets: u64,
    /// Deepest any client queue has been, in frames.
    pub queue_high_water: u64,
    /// Heartbeat frames enqueued since start.
    pub heartbeats: u64,
    /// Retained events expired by age since start.
    pub events_expired: u64,
    /// Retained events evicted to keep all rings within
    /// `replay_max_total_bytes`.
    pub events_evicted: u64,
    /// Subscriber-less topics evicted to make room in a full table for a
    /// publish to a new topic.
    pub topics_evicted: u64,
    /// Bytes all replay rings retain now.
    pub retained_bytes: u64,
}

impl MetricsSnapshot {
    /// Closes for one reason.
    pub fn closes_for(&self, reason: CloseReason) -> u64 {
        self.closes[reason.index()].1
    }
}

impl Metrics {
    pub(crate) fn snapshot_counters(&self) -> MetricsSnapshot {
        let mut closes = [(CloseReason::ClientGone, 0); CloseReason::COUNT];
        for (slot, reason) in closes.iter_mut().zip(CloseReason::ALL) {
            *slot = (reason, self.sum(|c| &c.closes[reason.index()]));
        }
        MetricsSnapshot {
            events_published: self.sum(|c| &c.events_published),
            frames_delivered: self.sum(|c| &c.frames_delivered),
            bytes_delivered: self.sum(|c| &c.bytes_delivered),
            closes,
            replay_hits: self.sum(|c| &c.replay_hits),
            replay_resets: self.sum(|c| &c.replay_resets),
            queue_high_water: self
                .stripes
                .iter()
                .map(|s| s.0.queue_high_water.get())
                .max()
                .unwrap_or(0),
            heartbeats: self.sum(|c| &c.heartbeats),
            events_expired: self.sum(|c| &c.events_expired),
            events_evicted: self.sum(|c| &c.events_evicted),
            topics_evicted: self.sum(|c| &c.topics_evicted),
            retained_bytes: 0,
            clients_reserved: 0,
            clients_close_pending: 0,
            clients_active: 0,
            topics: 0,
        }
    }
}
