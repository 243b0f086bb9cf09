//! Deadlines keyed by slot, in buckets of the timer resolution.
//!
//! `BTreeMap<bucket, Vec<slot>>` plus each slot's position: scheduling,
//! rescheduling and removing are O(log B + 1) where B is the number of
//! distinct buckets in use (bounded by the longest timeout divided by the
//! resolution, independent of the number of clients), and popping what is
//! due costs O(log B) per due bucket plus O(1) per due slot. A tick with
//! nothing due looks at one map entry, however many clients there are.
//!
//! A connect and a close in the same resolution window (a client that
//! stays a moment, or a burst of them) schedule into one bucket and empty
//! it again. So the bucket a removal empties stays in the map, empty, until
//! another bucket empties or it falls due: the next schedule into that
//! window finds it instead of inserting a key, and the removal takes no key
//! out. A bucket that does leave the map keeps its vector in a small spare
//! list (at most [`SPARE_BUCKETS`], each of at most [`SPARE_SLOTS`] slots)
//! for the next new bucket.
//!
//! Invariants:
//! - a slot is in at most one bucket, and `pos[slot]` says exactly where;
//! - a deadline fires no earlier than its instant (buckets round up) and at
//!   most one resolution later;
//! - every spare vector is empty;
//! - at most one bucket in the map is empty, and it is `idle`.

use std::collections::BTreeMap;

#[derive(Debug)]
pub(crate) struct Deadlines {
    resolution: u64,
    buckets: BTreeMap<u64, Vec<u32>>,
    /// For each slot index: its bucket and position in that bucket.
    pos: Vec<Option<(u64, u32)>>,
    len: usize,
    /// Emptied bucket vectors, for the next new bucket.
    spare: Vec<Vec<u32>>,
    /// The one bucket left in the map empty, if any.
    idle: Option<u64>,
}

/// Emptied bucket vectors kept for reuse.
const SPARE_BUCKETS: usize = 4;
/// A bucket vector with room for more slots than this is freed instead.
const SPARE_SLOTS: usize = 64;

impl Deadlines {
    pub(crate) fn new(resolution_nanos: u64) -> Self {
        Self {
            resolution: resolution_nanos.max(1),
            buckets: BTreeMap::new(),
            pos: Vec::new(),
            len: 0,
            spare: Vec::new(),
            idle: None,
        }
    }

    /// Schedules (or moves) `slot`'s deadline to `at` (clock nanos).
    pub(crate) fn schedule(&mut self, slot: u32, at: u64) {
        let bucket = at.div_ceil(self.resolution);
        let index = slot as usize;
        if let Some(Some((current, _))) = self.pos.get(index) {
            if *current == bucket {
                return;
            }
        }
        self.remove(slot);
        if self.pos.len() <= index {
            self.pos.resize(index + 1, None);
        }
        let spare = &mut self.spare;
        let entries = self
            .buckets
            .entry(bucket)
            .or_insert_with(|| spare.pop().unwrap_or_default());
        self.pos[index] = Some((bucket, entries.len() as u32));
        entries.push(slot);
        self.len += 1;
        if self.idle == Some(bucket) {
            self.idle = None;
        }
    }

    /// Removes `slot`'s deadline, if any.
    pub(crate) fn remove(&mut self, slot: u32) {
        let Some(Some((bucket, at))) = self.pos.get_mut(slot as usize).map(Option::take) else {
            return;
        };
        self.len -= 1;
        let Some(entries) = self.buckets.get_mut(&bucket) else {
            return;
        };
        let at = at as usize;
        entries.swap_remove(at);
        if let Some(&moved) = entries.get(at) {
            if let Some(Some((_, p))) = self.pos.get_mut(moved as usize) {
                *p = at as u32;
            }
        }
        if entries.is_empty() {
            // This bucket becomes the idle one; an older idle one leaves.
            if let Some(older) = self.idle.replace(bucket) {
                if let Some(emptied) = self.buckets.remove(&older) {
                    self.keep(emptied);
                }
            }
        }
    }

    /// Moves every slot due at `now` into `out`, removing their deadlines.
    pub(crate) fn pop_due(&mut self, now: u64, out: &mut Vec<u32>) {
        let limit = now / self.resolution;
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > limit {
                break;
            }
            if self.idle == Some(*entry.key()) {
                self.idle = None;
            }
            let slots = entry.remove();
            for &slot in &slots {
                if let Some(p) = self.pos.get_mut(slot as usize) {
                    *p = None;
                }
            }
            self.len -= slots.len();
            out.extend_from_slice(&slots);
            self.keep(slots);
        }
    }

    /// Keeps an emptied bucket vector for reuse, if there is room.
    fn keep(&mut self, mut slots: Vec<u32>) {
        if self.spare.len() < SPARE_BUCKETS && slots.capacity() <= SPARE_SLOTS {
            slots.clear();
            self.spare.push(slots);
        }
    }

    /// The earliest scheduled instant (clock nanos).
    pub(crate) fn next(&self) -> Option<u64> {
        // At most one key to skip: the idle bucket.
        self.buckets
            .keys()
            .find(|&&b| Some(b) != self.idle)
            .map(|b| b.saturating_mul(self.resolution))
    }

    pub(crate) fn contains(&self, slot: u32) -> bool {
        matches!(self.pos.get(slot as usize), Some(Some(_)))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_never_early() {
        let mut d = Deadlines::new(10);
        d.schedule(1, 25);
        d.schedule(2, 5);
        d.schedule(3, 30);
        let mut out = Vec::new();
        d.pop_due(20, &mut out);
        assert_eq!(out, [2]);
        out.clear();
        d.pop_due(29, &mut out);
        assert!(out.is_empty(), "25 rounds up to 30");
        d.pop_due(30, &mut out);
        out.sort_unstable();
        assert_eq!(out, [1, 3]);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn reschedule_and_remove_keep_positions_exact() {
        let mut d = Deadlines::new(1);
        for slot in 0..10 {
            d.schedule(slot, 100);
        }
        d.remove(0);
        d.remove(5);
        d.schedule(9, 50);
        assert_eq!(d.len(), 8);
        assert!(!d.contains(5) && d.contains(9));
        let mut out = Vec::new();
        d.pop_due(50, &mut out);
        assert_eq!(out, [9]);
        out.clear();
        d.pop_due(100, &mut out);
        out.sort_unstable();
        assert_eq!(out, [1, 2, 3, 4, 6, 7, 8]);
        assert_eq!(d.len(), 0);
        assert_eq!(d.next(), None);
    }

    #[test]
    fn an_emptied_bucket_stays_for_the_next_schedule_and_only_one_does() {
        let mut d = Deadlines::new(1);
        for _ in 0..3 {
            d.schedule(7, 100);
            d.remove(7);
            assert_eq!(d.buckets.len(), 1, "the emptied bucket stays");
            assert_eq!(d.idle, Some(100));
            assert_eq!(d.next(), None, "an empty bucket is no deadline");
            assert!(d.spare.is_empty(), "no vector left the map");
        }
        d.schedule(7, 100);
        assert_eq!(d.idle, None, "the idle bucket is in use again");
        assert_eq!(d.next(), Some(100));
        d.schedule(8, 50);
        d.remove(8);
        assert_eq!(d.idle, Some(50));
        assert_eq!(d.next(), Some(100), "the idle bucket before it is skipped");
        d.remove(7);
        assert_eq!(
            d.idle,
            Some(100),
            "the newer emptied bucket is the idle one"
        );
        assert_eq!(d.buckets.len(), 1, "the older one left the map");
        assert_eq!(d.spare.len(), 1, "and kept its vector");
        let mut out = Vec::new();
        d.pop_due(1_000, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            (d.idle, d.buckets.len()),
            (None, 0),
            "an idle bucket falls due too"
        );
    }

    #[test]
    fn spare_vectors_are_bounded_empty_and_reused() {
        let mut d = Deadlines::new(1);
        for slot in 0..10 {
            d.schedule(slot, u64::from(slot));
        }
        let mut out = Vec::new();
        d.pop_due(100, &mut out);
        out.sort_unstable();
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert_eq!(d.spare.len(), SPARE_BUCKETS);
        assert!(d.spare.iter().all(Vec::is_empty));
        // A reused vector starts empty: each slot is alone in its bucket.
        d.schedule(3, 500);
        d.schedule(4, 501);
        assert_eq!(d.spare.len(), SPARE_BUCKETS - 2);
        out.clear();
        d.pop_due(500, &mut out);
        assert_eq!(out, [3]);
        assert_eq!(d.len(), 1);
    }
}
