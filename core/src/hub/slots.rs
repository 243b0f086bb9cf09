//! Client slots: the generation-tagged slab, one entry per client, and the
//! state each entry is in.
//!
//! Invariants:
//! - **I4**: every lookup goes through [`Registry::lookup`], which checks
//!   the generation, so a stale [`ClientId`] never reaches a slot's new
//!   occupant;
//! - `active` and `pending` count the entries in those states, and `peers`
//!   counts the entries of each peer tag (checked by `check_invariants`).

use super::lifecycle::CloseOutcome;
use crate::deadline::Deadlines;
use crate::queue::Queue;
use crate::reason::CloseReason;
use crate::sync::{Arc, SharedStr};
use crate::topics::Topic;
use crate::ClientId;
use slab::Slab;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::num::NonZeroU64;

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
    /// Once active: the topics of `names`, in the same order.
    pub(super) joined: Joined,
    pub(super) last_event_id: Option<String>,
    /// Topics this client has created by subscribing (its budget spent).
    pub(super) created: usize,
    /// Who the client is (a JWT `sub`), for presence events.
    pub(super) subject: Option<SharedStr>,
}

impl Entry {
    /// Where `topic` is (or would go) in the sorted topic set.
    pub(super) fn position(&self, topic: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|n| (**n).cmp(topic))
    }
}

pub(super) struct Registry {
    pub(super) slots: Slab<Entry>,
    pub(super) next_generation: u64,
    pub(super) deadlines: Deadlines,
    pub(super) peers: HashMap<SharedStr, usize>,
    pub(super) shutting_down: bool,
    pub(super) pending: usize,
    pub(super) active: usize,
}

impl Registry {
    /// The one place that resolves a `ClientId`: the generation must match
    /// (I4).
    pub(super) fn lookup(&self, id: ClientId) -> Option<&Entry> {
        self.slots
            .get(id.index() as usize)
            .filter(|e| e.generation == id.generation())
    }

    pub(super) fn lookup_mut(&mut self, id: ClientId) -> Option<&mut Entry> {
        self.slots
            .get_mut(id.index() as usize)
            .filter(|e| e.generation == id.generation())
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

    /// Frees a slot and its peer count; the caller handles topics.
    pub(super) fn free(&mut self, index: u32) -> Entry {
        let entry = self.slots.remove(index as usize);
        self.deadlines.remove(index);
        match entry.state {
            SlotState::Active => self.active -= 1,
            SlotState::ClosePending(_) => self.pending -= 1,
            SlotState::Reserved => {}
        }
        if let Some(peer) = &entry.peer {
            if let Some(count) = self.peers.get_mut(peer) {
                *count -= 1;
                if *count == 0 {
                    self.peers.remove(peer);
                }
            }
        }
        entry
    }
}
