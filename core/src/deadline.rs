//! Deadlines keyed by slot, in buckets of the timer resolution.
//!
//! `BTreeMap<bucket, Vec<slot>>` plus each slot's position: scheduling,
//! rescheduling and removing are O(log B + 1) where B is the number of
//! distinct buckets in use (bounded by the longest timeout divided by the
//! resolution, independent of the number of clients), and popping what is
//! due costs O(log B) per due bucket plus O(1) per due slot. A tick with
//! nothing due looks at one map entry, however many clients there are.
//!
//! Invariants:
//! - a slot is in at most one bucket, and `pos[slot]` says exactly where;
//! - a deadline fires no earlier than its instant (buckets round up) and at
//!   most one resolution later.

use std::collections::BTreeMap;

#[derive(Debug)]
pub(crate) struct Deadlines {
    resolution: u64,
    buckets: BTreeMap<u64, Vec<u32>>,
    /// For each slot index: its bucket and position in that bucket.
    pos: Vec<Option<(u64, u32)>>,
    len: usize,
}

impl Deadlines {
    pub(crate) fn new(resolution_nanos: u64) -> Self {
        Self {
            resolution: resolution_nanos.max(1),
            buckets: BTreeMap::new(),
            pos: Vec::new(),
            len: 0,
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
        let entries = self.buckets.entry(bucket).or_default();
        self.pos[index] = Some((bucket, entries.len() as u32));
        entries.push(slot);
        self.len += 1;
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
            self.buckets.remove(&bucket);
        }
    }

    /// Moves every slot due at `now` into `out`, removing their deadlines.
    pub(crate) fn pop_due(&mut self, now: u64, out: &mut Vec<u32>) {
        let limit = now / self.resolution;
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > limit {
                break;
            }
            let slots = entry.remove();
            for &slot in &slots {
                if let Some(p) = self.pos.get_mut(slot as usize) {
                    *p = None;
                }
            }
            self.len -= slots.len();
            out.extend(slots);
        }
    }

    /// The earliest scheduled instant (clock nanos).
    pub(crate) fn next(&self) -> Option<u64> {
        self.buckets
            .keys()
            .next()
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
}
