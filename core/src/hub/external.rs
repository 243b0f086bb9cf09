//! Events sequenced by a backplane ([`Sequencing::External`]): several hubs
//! apply one order that a shared service (Redis, in `ssehub-tokio`)
//! assigns, so every node writes byte-identical `id:` lines and a client
//! can resume on any node.
//!
//! The core does no IO. Its caller feeds it the backplane's events in
//! order ([`Hub::apply`]), tells it when the backplane's epoch changed
//! ([`Hub::begin_epoch`]) and when events could not be caught up
//! ([`Hub::lose_topic`], [`Hub::finish_catch_up`]), and reads history for
//! resumes ([`Reservation::supply_history`]).
//!
//! Invariants (DESIGN.md §4 and §6, "Externally sequenced hubs"):
//! - **X1** (one order): `apply` takes the sequencer and pushes exactly as
//!   `publish` does (I7), with the backplane's sequence number; an event
//!   not newer than the hub's position is a duplicate and changes nothing,
//!   so replays of the backplane (after a reconnect, a catch-up racing
//!   live messages) are idempotent.
//! - **X2** (nothing claimed that is not held): the hub's position only
//!   moves past events that were applied or recorded as lost. A ring never
//!   claims events it did not get: `begin_epoch` restarts every ring at
//!   the new top, `lose_topic` and `finish_catch_up` mark the gaps of
//!   topics not caught up, and topics created later start past what the
//!   node skipped.
//! - **X3** (no silent skip for live clients): when the epoch changes or a
//!   topic's events are lost, every live client concerned gets a `reset`
//!   event, pushed in the hub-wide order, before any later event.
//!
//! [`Sequencing::External`]: crate::Sequencing::External
//! [`Reservation::supply_history`]: crate::Reservation::supply_history

use super::frames::{check_direct_frame, ID_FIELD_MAX};
use super::slots::SlotState;
use super::{Hub, PublishReport, Shared};
use crate::config::Sequencing;
use crate::error::ApplyError;
use crate::sync::{Arc, Ordering, SharedStr};
use crate::topics::{validate_topic, Topic, TopicState};
use crate::EventId;
use bytes::Bytes;
use std::collections::HashSet;

/// What [`Hub::apply`] did with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Applied {
    /// The event was new: it was retained and pushed to this node's
    /// subscribers (slow ones were closed, as by `publish`).
    Delivered(PublishReport),
    /// The event is not newer than the hub's position: already applied
    /// (or recorded as lost). Nothing changed.
    Duplicate,
    /// The event was new, but its topic does not exist here and the topic
    /// table is full: nobody on this node subscribes to it. The hub's
    /// position moved past it and the topic's name remembers the gap, so
    /// a resume on this node needs the backplane's history for it.
    NotRetained {
        /// The event's id.
        id: EventId,
    },
}

impl Hub {
    /// Applies an event that a backplane sequenced: `body` is the event
    /// encoded without an `id:` line ([`Hub::encode_body`] on the
    /// publishing node), `id` its place in the backplane's order. The hub
    /// adds the `id:` line, retains the frame for replay and pushes it to
    /// the topic's subscribers, in one step of the hub-wide order (X1).
    ///
    /// Events must be applied in increasing id order; ids may skip (the
    /// events of other topics a node did not read). An event whose
    /// sequence number is not above the hub's position is a duplicate.
    ///
    /// # Errors
    ///
    /// [`ApplyError`]: a hub that sequences its own events, an event of
    /// another epoch (call [`Hub::begin_epoch`] first), an invalid topic or
    /// body, an oversized event, a shut-down hub. Nothing changed then.
    pub fn apply(&self, topic: &str, id: EventId, body: &[u8]) -> Result<Applied, ApplyError> {
        let shared = &*self.shared;
        if shared.config.sequencing != Sequencing::External {
            return Err(ApplyError::LocallySequenced);
        }
        validate_topic(topic).map_err(ApplyError::InvalidTopic)?;
        check_direct_frame(body).map_err(|reason| ApplyError::InvalidBody { reason })?;
        let limit = shared.config.max_event_bytes;
        let size = body.len() + ID_FIELD_MAX;
        if size > limit {
            return Err(ApplyError::TooLarge { size, limit });
        }
        let now = self.push_time();
        let mut slow = Vec::new();
        let placed = {
            let _order = shared.sequencer.lock();
            if shared.shut_down.load(Ordering::Acquire) {
                return Err(ApplyError::ShutDown);
            }
            let expected = self.epoch();
            if id.epoch() != expected {
                return Err(ApplyError::EpochMismatch {
                    expected,
                    found: id.epoch(),
                });
            }
            if id.seq() <= shared.seq.load(Ordering::Acquire) {
                return Ok(Applied::Duplicate);
            }
            match self.place(topic, body, Some(id.seq()), now, &mut slow) {
                Ok(placed) => placed,
                // `place` refuses only for the topic table, and only a
                // topic that does not exist here: nobody on this node
                // subscribes to it. The order moves on; the name remembers
                // what it did not get (X2).
                Err(_) => {
                    shared.seq.store(id.seq(), Ordering::Release);
                    let mut map = shared.topics.write();
                    map.mark_lost(&SharedStr::from(topic), id.seq());
                    map.trim();
                    return Ok(Applied::NotRetained { id });
                }
            }
        };
        shared.metrics.here().events_published.add(1);
        Ok(Applied::Delivered(self.after_place(placed, slow)))
    }

    /// Switches the hub to the backplane's epoch `epoch`, whose newest
    /// sequence number is `top`: at a node's start, and whenever the
    /// backplane lost its state (restarted without persistence, flushed)
    /// and began a new epoch. Every ring restarts empty at `top` and the
    /// gap memory is cleared: the old epoch's ids are all answered with a
    /// reset from now on. Every active client is pushed a `reset` event
    /// with id `<epoch>-<top>` (X3). Returns how many.
    ///
    /// Called with the hub's own epoch, it only moves the position up to
    /// `top` (and topics created later start past it), resetting nobody.
    pub fn begin_epoch(&self, epoch: u64, top: u64) -> usize {
        let shared = &*self.shared;
        let all = self.lock_all();
        let _order = shared.sequencer.lock();
        if epoch == self.epoch() {
            self.move_position(top);
            shared.topics.write().raise_floor(top);
            return 0;
        }
        shared.epoch.store(epoch, Ordering::Release);
        shared.seq.store(top, Ordering::Release);
        let topics: Vec<Arc<Topic>> = {
            let mut map = shared.topics.write();
            map.restart(top);
            map.map.values().cloned().collect()
        };
        let mut unused = Vec::new();
        for topic in &topics {
            let mut state = topic.state.lock();
            let before = state.ring.bytes();
            state.ring.restart(top);
            self.account_retained(before, 0);
            state.last_seq = 0;
            if state.is_unused() {
                unused.push(Arc::clone(topic));
            }
        }
        self.drop_unused(&unused);
        let now = self.push_time();
        let reset = self.reset_frame(top);
        let mut pushed = 0;
        for (_, entry) in all.iter().flat_map(|reg| reg.iter()) {
            if entry.state == SlotState::Active
                && entry
                    .queue
                    .force_push(reset.clone(), now, &shared.metrics)
                    .is_queued()
            {
                pushed += 1;
            }
        }
        shared.metrics.here().replay_resets.add(pushed as u64);
        pushed
    }

    /// Records that the events of `topic` up to sequence number `through`
    /// could not all be caught up (the backplane had trimmed them): a
    /// resume from before `through` on this node gets a reset, and the
    /// topic's live subscribers are pushed a `reset` event with id
    /// `<epoch>-<through>` now (X3). The hub's position moves up to
    /// `through`. Returns how many clients were reset.
    ///
    /// Apply every event recovered below `through` first: the reset's id
    /// must not be overtaken by an older event.
    pub fn lose_topic(&self, topic: &str, through: u64) -> usize {
        let shared = &*self.shared;
        let _order = shared.sequencer.lock();
        self.move_position(through);
        loop {
            let existing = shared.topics.read().map.get(topic).cloned();
            if let Some(found) = existing {
                let mut state = found.state.lock();
                if state.dead {
                    continue;
                }
                let reset = self.reset_frame(through);
                let pushed = lose_events(&mut state, through, &reset, self.push_time(), shared);
                shared.metrics.here().replay_resets.add(pushed as u64);
                return pushed;
            }
            let mut map = shared.topics.write();
            if map.map.contains_key(topic) {
                continue;
            }
            map.mark_lost(&SharedStr::from(topic), through);
            map.trim();
            return 0;
        }
    }

    /// Ends a catch-up: the caller has applied, in order, every event up
    /// to `through` of the topics named in `caught_up` (read from the
    /// backplane's history after it missed live messages). Atomically,
    /// under the topic table's lock so no topic can appear meanwhile:
    /// - every topic the hub has that is **not** in `caught_up` (one a
    ///   client created during the catch-up, one whose history was
    ///   trimmed) is marked as missing events up to `through`, and its
    ///   live subscribers are pushed a `reset` event (X3);
    /// - topics created later start their rings past `through` (X2);
    /// - the hub's position moves up to `through`.
    ///
    /// Returns how many clients were reset.
    pub fn finish_catch_up<S: AsRef<str>>(&self, caught_up: &[S], through: u64) -> usize {
        let shared = &*self.shared;
        let caught: HashSet<&str> = caught_up.iter().map(AsRef::as_ref).collect();
        let _order = shared.sequencer.lock();
        self.move_position(through);
        let mut map = shared.topics.write();
        map.raise_floor(through);
        let now = self.push_time();
        let reset = self.reset_frame(through);
        let mut pushed = 0;
        for topic in map.map.values() {
            if caught.contains(&*topic.name) {
                continue;
            }
            pushed += lose_events(&mut topic.state.lock(), through, &reset, now, shared);
        }
        shared.metrics.here().replay_resets.add(pushed as u64);
        pushed
    }

    /// The names of the topics the hub has (with subscribers or retained
    /// events), in no particular order: what a catch-up must read.
    pub fn topic_names(&self) -> Vec<String> {
        self.shared
            .topics
            .read()
            .map
            .keys()
            .map(|name| name.to_string())
            .collect()
    }

    /// Moves the position up to `through`, never down. Called with the
    /// sequencer held.
    fn move_position(&self, through: u64) {
        let seq = &self.shared.seq;
        if through > seq.load(Ordering::Acquire) {
            seq.store(through, Ordering::Release);
        }
    }
}

/// Marks `state`'s events up to `through` as lost (a resume from before
/// them gets a reset) and pushes `reset` to its live subscribers (X3), in
/// one critical section of the topic's lock. Returns how many took it.
fn lose_events(
    state: &mut TopicState,
    through: u64,
    reset: &Bytes,
    now: u64,
    shared: &Shared,
) -> usize {
    state.ring.mark_lost(through);
    state
        .subs
        .iter()
        .filter(|sub| {
            sub.queue
                .force_push(reset.clone(), now, &shared.metrics)
                .is_queued()
        })
        .count()
}
