//! A topic's replay ring: the newest events, retained so that a client that
//! reconnects with a `Last-Event-ID` gets exactly what it missed (I8).
//!
//! Sequence numbers are hub-wide, so one topic's events are not contiguous.
//! A ring therefore remembers the newest sequence number it has evicted: a
//! client whose last id is older than that has missed events that are gone,
//! and must be reset instead of replayed.
//!
//! Invariants:
//! - events are in strictly increasing `seq` order (they are pushed under the
//!   topic lock in the order their `seq` was taken);
//! - `evicted_newest` is at least every evicted event's `seq`;
//! - `bytes` is the sum of the retained frames' lengths (the hub adds the
//!   change of every ring operation to its hub-wide total).

use bytes::Bytes;
use std::collections::VecDeque;

#[derive(Debug)]
pub(crate) struct Retained {
    pub(crate) seq: u64,
    pub(crate) frame: Bytes,
    pub(crate) at: u64,
}

#[derive(Debug)]
pub(crate) struct ReplayRing {
    events: VecDeque<Retained>,
    capacity: usize,
    evicted_newest: u64,
    bytes: usize,
}

impl ReplayRing {
    pub(crate) fn new(capacity: usize, evicted_newest: u64) -> Self {
        Self {
            events: VecDeque::new(),
            capacity,
            evicted_newest,
            bytes: 0,
        }
    }

    /// Retains an event, evicting the oldest beyond capacity.
    pub(crate) fn push(&mut self, seq: u64, frame: Bytes, at: u64) {
        self.bytes += frame.len();
        self.events.push_back(Retained { seq, frame, at });
        while self.events.len() > self.capacity {
            self.evict_oldest();
        }
    }

    /// Evicts the oldest event, recording it as lost; `false` if empty.
    pub(crate) fn evict_oldest(&mut self) -> bool {
        match self.events.pop_front() {
            Some(old) => {
                self.evicted_newest = self.evicted_newest.max(old.seq);
                self.bytes -= old.frame.len();
                true
            }
            None => false,
        }
    }

    /// Drops everything and starts over at `floor`, forgetting what was
    /// evicted: for a new epoch, whose sequence numbers start again.
    pub(crate) fn restart(&mut self, floor: u64) {
        self.events.clear();
        self.bytes = 0;
        self.evicted_newest = floor;
    }

    /// Records that events up to `through` may be missing, whether or not
    /// they were ever retained: a resume from before it gets a reset.
    pub(crate) fn mark_lost(&mut self, through: u64) {
        self.evicted_newest = self.evicted_newest.max(through);
    }

    /// Evicts everything, recording it as lost.
    pub(crate) fn clear(&mut self) {
        while self.evict_oldest() {}
    }

    /// Events retained.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Bytes of the frames retained.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drops events retained at or before `cutoff`; returns how many.
    pub(crate) fn expire(&mut self, cutoff: u64) -> usize {
        let mut n = 0;
        while self.events.front().is_some_and(|e| e.at <= cutoff) && self.evict_oldest() {
            n += 1;
        }
        n
    }

    /// `true` when an event newer than `last` has been evicted.
    pub(crate) fn has_gap_after(&self, last: u64) -> bool {
        self.evicted_newest > last
    }

    /// Retained events newer than `last`, oldest first.
    pub(crate) fn after(&self, last: u64) -> impl Iterator<Item = &Retained> {
        let start = self.events.partition_point(|e| e.seq <= last);
        self.events.range(start..)
    }

    /// The `seq` of the oldest retained event.
    pub(crate) fn oldest_seq(&self) -> Option<u64> {
        self.events.front().map(|e| e.seq)
    }

    pub(crate) fn oldest_at(&self) -> Option<u64> {
        self.events.front().map(|e| e.at)
    }

    pub(crate) fn evicted_newest(&self) -> u64 {
        self.evicted_newest
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(r: &ReplayRing, last: u64) -> Vec<u64> {
        r.after(last).map(|e| e.seq).collect()
    }

    #[test]
    fn evicting_records_the_newest_lost_seq() {
        let mut r = ReplayRing::new(2, 0);
        for seq in [3, 7, 9] {
            r.push(seq, Bytes::new(), 0);
        }
        assert_eq!(seqs(&r, 0), [7, 9]);
        assert!(r.has_gap_after(2), "3 was evicted");
        assert!(!r.has_gap_after(3));
        assert_eq!(seqs(&r, 7), [9]);
    }

    #[test]
    fn expiry_by_age_also_counts_as_eviction() {
        let mut r = ReplayRing::new(10, 0);
        r.push(1, Bytes::new(), 10);
        r.push(2, Bytes::new(), 20);
        assert_eq!(r.expire(15), 1);
        assert!(r.has_gap_after(0));
        assert_eq!(r.oldest_at(), Some(20));
    }

    #[test]
    fn zero_capacity_retains_nothing_but_remembers() {
        let mut r = ReplayRing::new(0, 0);
        r.push(5, Bytes::new(), 0);
        assert!(r.is_empty());
        assert!(r.has_gap_after(4));
    }
}
