//! Client slots: the generation-tagged slabs, one entry per client, and the
//! state each entry is in.
//!
//! The registry is split into [`SHARDS`] shards, each a slab with its own
//! lock, deadlines and state counters, so that connects and closes on
//! different threads do not queue on one lock. A client's slot lives in
//! shard `index % SHARDS`, at `index / SHARDS` of that shard's slab; a new
//! client goes to its reserving thread's home shard
//! ([`thread_home`](crate::sync::thread_home)).
//!
//! Invariants:
//! - **I4**: every lookup goes through [`Registry::lookup`], which checks
//!   the generation, so a stale [`ClientId`] never reaches a slot's new
//!   occupant; generations are counted per shard, and an id names its
//!   shard, so ids of different shards never meet;
//! - **S1** (shards): a client is only ever touched under its own shard's
//!   lock; a path that needs several shards (shutdown, a new epoch, the
//!   checker, the replay budget, replay expiry) takes all of them in index
//!   order ([`Hub::lock_all`](super::Hub)), before any other lock;
//! - `active` and `pending` count the entries of a shard in those states,
//!   the hub's client count the entries of all shards, and the peer counts
//!   the entries of each peer tag (checked by `check_invariants`).

use super::lifecycle::CloseOutcome;
use crate::deadline::Deadlines;
use crate::queue::Queue;
use crate::reason::CloseReason;
use crate::sync::{Arc, Mutex, SharedStr};
use crate::topics::Topic;
use crate::ClientId;
use slab::Slab;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::num::NonZeroU64;

/// Registry shards. A power of two, so `index % SHARDS` is a mask. Under
/// loom two, enough for every cross-shard interleaving a model needs.
#[cfg(not(ssehub_loom))]
pub(super) const SHARDS: usize = 16;
/// Registry shards (loom).
#[cfg(ssehub_loom)]
pub(super) const SHARDS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotState {
    Reserved,
    ClosePending(CloseReason),
    Active,
}

/// A client's topic names: inline for a one-topic client (the common case),
/// so reserving one allocates no vector.
pub(super) type Names = SmallVec<[SharedStr; 1]>;

/// A client's joined topics, in the order of its [`Names`]; inline for one.
pub(super) type Joined = SmallVec<[Arc<Topic>; 1]>;

pub(super) struct Entry {
    pub(super) generation: NonZeroU64,
    pub(super) state: SlotState,
    pub(super) queue: Arc<Queue>,
    pub(super) peer: Option<SharedStr>,
    /// The client's topic set, sorted and unique (I2).
    pub(super) names: Names,
    /// Once active: the topics of `names`, in the same order. While
    /// reserved: the topics `reserve` found for every name (or none), for
    /// activation to join without a second lookup; any change to `names`
    /// before activation clears it.
    pub(super) joined: Joined,
    /// Boxed rather than a `String`: with `created` a `u32`, an entry is
    /// 128 bytes, which the slab moves inline instead of calling `memcpy`.
    pub(super) last_event_id: Option<Box<str>>,
    /// Topics this client has created by subscribing (its budget spent;
    /// saturating).
    pub(super) created: u32,
    /// Who the client is (a JWT `sub`), for presence events.
    pub(super) subject: Option<SharedStr>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        crate::spare::give(&mut self.queue);
    }
}

impl Entry {
    /// Adds `n` topics created to the client's budget spent.
    pub(super) fn add_created(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.created = self.created.saturating_add(n);
    }

    /// Where `topic` is (or would go) in the sorted topic set.
    pub(super) fn position(&self, topic: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|n| (**n).cmp(topic))
    }
}

/// The shard a client's slot lives in.
pub(super) fn shard_of(id: ClientId) -> usize {
    id.index() as usize % SHARDS
}

/// Where a client index is in its shard's slab.
fn local(index: u32) -> usize {
    index as usize / SHARDS
}

/// One registry shard, alone on its cache lines.
#[repr(align(128))]
pub(super) struct Shard(pub(super) Mutex<Registry>);

impl Shard {
    pub(super) fn new(shard: usize, resolution: u64) -> Self {
        Self(Mutex::new(Registry {
            shard,
            slots: Slab::new(),
            next_generation: 1,
            deadlines: Deadlines::new(resolution),
            shutting_down: false,
            pending: 0,
            active: 0,
        }))
    }
}

/// One shard of the registry: its slots and their deadlines.
pub(super) struct Registry {
    /// This shard's number: the index of each of its slots modulo [`SHARDS`].
    shard: usize,
    slots: Slab<Entry>,
    pub(super) next_generation: u64,
    /// Keyed by the slot's place in this shard's slab.
    deadlines: Deadlines,
    pub(super) shutting_down: bool,
    pub(super) pending: usize,
    pub(super) active: usize,
}

impl Registry {
    /// The client index of this shard's slab slot `local`, if it fits a
    /// `u32`.
    fn global(&self, local: usize) -> Option<u32> {
        local
            .checked_mul(SHARDS)
            .and_then(|i| i.checked_add(self.shard))
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The index the next inserted client gets, if it fits a `u32`.
    pub(super) fn next_index(&self) -> Option<u32> {
        self.global(self.slots.vacant_key())
    }

    /// Inserts a new entry; its client index. The caller checked
    /// [`next_index`](Self::next_index) under the same lock.
    pub(super) fn insert(&mut self, entry: Entry) -> u32 {
        let local = self.slots.insert(entry);
        self.global(local).unwrap_or(u32::MAX)
    }

    /// Clients in this shard, in any state.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Every entry with its client index.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> + '_ {
        self.slots
            .iter()
            .filter_map(|(local, entry)| Some((self.global(local)?, entry)))
    }

    /// The client indices of every entry.
    pub(super) fn indices(&self) -> Vec<u32> {
        self.iter().map(|(index, _)| index).collect()
    }

    /// The one place that resolves a `ClientId`: the generation must match
    /// (I4). The caller holds the id's shard ([`shard_of`]).
    pub(super) fn lookup(&self, id: ClientId) -> Option<&Entry> {
        debug_assert_eq!(shard_of(id), self.shard, "looked up in another shard");
        self.slots
            .get(local(id.index()))
            .filter(|e| e.generation == id.generation())
    }

    pub(super) fn lookup_mut(&mut self, id: ClientId) -> Option<&mut Entry> {
        debug_assert_eq!(shard_of(id), self.shard, "looked up in another shard");
        self.slots
            .get_mut(local(id.index()))
            .filter(|e| e.generation == id.generation())
    }

    /// The entry at client index `index`, whatever its generation.
    pub(super) fn at(&self, index: u32) -> Option<&Entry> {
        self.slots.get(local(index))
    }

    /// The entry at client index `index`, whatever its generation.
    pub(super) fn at_mut(&mut self, index: u32) -> Option<&mut Entry> {
        self.slots.get_mut(local(index))
    }

    /// A client that callers may still address: reserved or active. A
    /// close-pending client is gone as far as they are concerned.
    pub(super) fn live_mut(&mut self, id: ClientId) -> Option<&mut Entry> {
        self.lookup_mut(id)
            .filter(|e| !matches!(e.state, SlotState::ClosePending(_)))
    }

    pub(super) fn gone(&self, id: ClientId) -> CloseOutcome {
        if id.generation().get() < self.next_generation {
            CloseOutcome::AlreadyClosed
        } else {
            CloseOutcome::Unknown
        }
    }

    /// Schedules (or moves) client `index`'s deadline.
    pub(super) fn schedule(&mut self, index: u32, at: u64) {
        self.deadlines.schedule(local(index) as u32, at);
    }

    /// `true` when client `index` has a deadline.
    pub(super) fn has_deadline(&self, index: u32) -> bool {
        self.deadlines.contains(local(index) as u32)
    }

    /// Deadlines scheduled in this shard.
    pub(super) fn deadline_count(&self) -> usize {
        self.deadlines.len()
    }

    /// The earliest deadline of this shard.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.deadlines.next()
    }

    /// Removes the deadlines due at `now`; the client indices they were for.
    pub(super) fn pop_due(&mut self, now: u64) -> Vec<u32> {
        let mut due = Vec::new();
        self.deadlines.pop_due(now, &mut due);
        due.into_iter()
            .filter_map(|local| self.global(local as usize))
            .collect()
    }

    /// Frees a slot; the caller handles the hub-wide counts
    /// ([`Hub::free`](super::Hub)) and topics.
    pub(super) fn free(&mut self, index: u32) -> Entry {
        let entry = self.slots.remove(local(index));
        self.deadlines.remove(local(index) as u32);
        match entry.state {
            SlotState::Active => self.active -= 1,
            SlotState::ClosePending(_) => self.pending -= 1,
            SlotState::Reserved => {}
        }
        entry
    }
}

/// Clients per peer tag, hub-wide, in [`SHARDS`] maps chosen by the tag's
/// hash: a leaf below the registry shards, never held with another of its
/// own maps.
pub(super) struct PeerCounts {
    maps: Box<[Mutex<HashMap<SharedStr, usize>>]>,
    /// A fixed-key hasher: the same tag always picks the same map.
    hasher: BuildHasherDefault<DefaultHasher>,
}

impl PeerCounts {
    pub(super) fn new() -> Self {
        Self {
            maps: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: BuildHasherDefault::default(),
        }
    }

    fn map(&self, peer: &str) -> &Mutex<HashMap<SharedStr, usize>> {
        let index = self.hasher.hash_one(peer) as usize % self.maps.len();
        &self.maps[index]
    }

    /// Counts one more client of `peer` unless it has `limit` already.
    pub(super) fn acquire(&self, peer: &SharedStr, limit: usize) -> bool {
        let mut map = self.map(peer).lock();
        let count = map.entry(SharedStr::clone(peer)).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                map.remove(peer);
            }
            return false;
        }
        *count += 1;
        true
    }

    /// Counts one client of `peer` fewer.
    pub(super) fn release(&self, peer: &str) {
        let mut map = self.map(peer).lock();
        if let Some(count) = map.get_mut(peer) {
            *count -= 1;
            if *count == 0 {
                map.remove(peer);
            }
        }
    }

    /// Every tag's count (for the checker).
    pub(super) fn snapshot(&self) -> HashMap<SharedStr, usize> {
        let mut all = HashMap::new();
        for map in self.maps.iter() {
            all.extend(map.lock().iter().map(|(p, n)| (SharedStr::clone(p), *n)));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_fits_the_size_the_slab_moves_without_memcpy() {
        // 128 bytes: eight 16-byte moves, the most the compiler inlines
        // for a copy on x86-64; past it every insert and free calls memcpy.
        assert!(
            std::mem::size_of::<Entry>() <= 128,
            "Entry grew to {} bytes",
            std::mem::size_of::<Entry>()
        );
    }
}
