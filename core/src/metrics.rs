//! Counters the hub keeps as it works, and [`MetricsSnapshot`], the cheap
//! copy an operator reads (the server renders it as Prometheus text).
//!
//! Counters are relaxed atomics that loom does not model (see
//! `sync::Counter`): they record what happened and decide nothing.

use crate::reason::CloseReason;
use crate::sync::Counter;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
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

impl Metrics {
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closes[reason.index()].add(1);
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
            *slot = (reason, self.closes[reason.index()].get());
        }
        MetricsSnapshot {
            events_published: self.events_published.get(),
            frames_delivered: self.frames_delivered.get(),
            bytes_delivered: self.bytes_delivered.get(),
            closes,
            replay_hits: self.replay_hits.get(),
            replay_resets: self.replay_resets.get(),
            queue_high_water: self.queue_high_water.get(),
            heartbeats: self.heartbeats.get(),
            events_expired: self.events_expired.get(),
            events_evicted: self.events_evicted.get(),
            topics_evicted: self.topics_evicted.get(),
            retained_bytes: 0,
            clients_reserved: 0,
            clients_close_pending: 0,
            clients_active: 0,
            topics: 0,
        }
    }
}
