//! The structural invariant checker, for tests and model checking.
//!
//! It takes every lock in order and compares the slots, the topic map and
//! each topic's subscribers with one another. It is exact: every state it
//! can observe (it holds the registry lock, so no lifecycle operation is
//! half done) is one the invariants allow, or it is a bug.

use super::slots::SlotState;
use super::Hub;
use crate::error::InvariantViolation;
use crate::reason::CloseReason;
use crate::sync::{Arc, SharedStr};
use crate::ClientId;
use std::collections::HashMap;

impl Hub {
    /// Checks the structural invariants at this instant; meant for tests and
    /// model checking (it takes every lock in order).
    ///
    /// # Errors
    ///
    /// The first [`InvariantViolation`] found, named after DESIGN.md.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let shared = &*self.shared;
        let reg = shared.registry.lock();
        let map = shared.topics.read();
        let fail = |invariant, detail: String| Err(InvariantViolation { invariant, detail });
        let mut active = 0;
        let mut pending = 0;
        let mut peers: HashMap<SharedStr, usize> = HashMap::new();
        for (index, entry) in reg.slots.iter() {
            let id = ClientId::new(index as u32, entry.generation);
            if let Some(peer) = &entry.peer {
                *peers.entry(SharedStr::clone(peer)).or_default() += 1;
            }
            match entry.state {
                SlotState::Active => {
                    active += 1;
                    if let Some(reason) = entry.queue.closed_reason() {
                        // A queue overflowed by a publish that has not yet
                        // finished closing the client is the one window
                        // where this holds; it never outlives the publish.
                        if reason != CloseReason::SlowConsumer {
                            return fail("I1", format!("active client {id} has a closed queue"));
                        }
                    }
                    if entry.joined.len() != entry.names.len() {
                        return fail("I2", format!("client {id} joined/names length differ"));
                    }
                    for (name, topic) in entry.names.iter().zip(&entry.joined) {
                        let in_map = map.map.get(name).is_some_and(|t| Arc::ptr_eq(t, topic));
                        if !in_map || !topic.state.lock().contains(id) {
                            return fail("I2", format!("client {id} not indexed under {name:?}"));
                        }
                    }
                }
                SlotState::ClosePending(_) => {
                    pending += 1;
                    if entry.queue.closed_reason().is_none() {
                        return fail("I3", format!("close-pending client {id} has an open queue"));
                    }
                    if reg.deadlines.contains(index as u32) {
                        return fail("I5", format!("close-pending client {id} has a deadline"));
                    }
                }
                SlotState::Reserved => {
                    if reg.deadlines.contains(index as u32) {
                        return fail("I5", format!("reserved client {id} has a deadline"));
                    }
                }
            }
        }
        if active != reg.active || pending != reg.pending {
            return fail("I5", "state counters disagree with the slots".to_owned());
        }
        if peers.len() != reg.peers.len() || peers.iter().any(|(p, n)| reg.peers.get(p) != Some(n))
        {
            return fail("I5", "peer counts disagree with the slots".to_owned());
        }
        if reg.deadlines.len() > active {
            return fail("I5", "more deadlines than active clients".to_owned());
        }
        let mut retained = 0u64;
        let mut charged: HashMap<SharedStr, usize> = HashMap::new();
        for (name, topic) in &map.map {
            let state = topic.state.lock();
            retained += state.ring.bytes() as u64;
            if let Some(peer) = &topic.creator {
                *charged.entry(SharedStr::clone(peer)).or_default() += 1;
            }
            if state.dead {
                return fail("I5", format!("dead topic {name:?} still in the map"));
            }
            if state.is_unused() {
                return fail(
                    "I5",
                    format!("topic {name:?} kept with no subscriber or event"),
                );
            }
            let newest = shared.seq.load(crate::sync::Ordering::Acquire);
            if state.last_seq > newest || state.ring.after(state.last_seq).next().is_some() {
                return fail(
                    "P1",
                    format!("topic {name:?}: last published seq {} is behind its ring or ahead of the hub's {newest}", state.last_seq),
                );
            }
            if !self.presence_scheduled(name, &state) {
                return fail(
                    "PR2",
                    format!("topic {name:?}: a pending summary no tick flushes"),
                );
            }
            for sub in &state.subs {
                let ok = reg
                    .lookup(sub.id)
                    .is_some_and(|e| e.state == SlotState::Active && e.position(name).is_ok());
                if !ok {
                    return fail("I2", format!("topic {name:?} indexes {} wrongly", sub.id));
                }
            }
        }
        if retained != shared.retained_bytes.get() {
            return fail(
                "H1",
                format!(
                    "rings retain {retained} bytes, the hub-wide total says {}",
                    shared.retained_bytes.get()
                ),
            );
        }
        if charged != *shared.peer_topics.lock() {
            return fail(
                "H2",
                "topics charged to peers disagree with their creators".to_owned(),
            );
        }
        Ok(())
    }
}
