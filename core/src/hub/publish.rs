//! Publish and send: the hub-wide order.
//!
//! # The order (I7)
//!
//! `publish` holds the sequencer while it assigns the event's sequence
//! number and pushes the event into every subscriber's queue and its
//! topic's ring. Publishes therefore happen one after another, each whole,
//! in the order of their ids, and every queue sees a subsequence of that
//! order: a client on topics `a` and `b` can never get id 5 before id 4.
//! The price is that publishes to different topics no longer run in
//! parallel; encoding (the expensive part of a large event) stays outside
//! the lock, and the push itself costs about 15 ns per subscriber
//! (DESIGN.md §4 and benches/RESULTS.md give the measurements).
//!
//! `send` writes a frame with no `id:` field, so it cannot move a client's
//! `Last-Event-ID` and needs no place in the order; it takes only the
//! client's queue lock. Pre-encoded frames are checked for that
//! ([`Hub::send_frame`]).
//!
//! Invariants:
//! - **I7**: ids are assigned and pushed under the sequencer; a push that
//!   does not fit closes the client with `SlowConsumer`, never skips it;
//! - **I3**: a closed queue takes nothing (the queue refuses the push);
//! - **I5**: `publish` creates a topic only together with its first
//!   retained event, under the map's write lock, so no topic is ever
//!   visible with neither subscribers nor events on its account;
//! - **P1**: the topic's presence counters (last seq, rate window) are
//!   updated in the same critical section as its ring.

use super::frames::{check_direct_frame, ID_FIELD_MAX};
use super::Hub;
use crate::codec::{EncodeError, Event};
use crate::config::Sequencing;
use crate::error::{PublishError, SendError};
use crate::queue::{Push, Queue};
use crate::reason::CloseReason;
use crate::sync::{Arc, Ordering, SharedStr};
use crate::topics::{validate_topic, Topic, TopicMap, TopicState};
use crate::{ClientId, EventId};
use bytes::{Bytes, BytesMut};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What a publish did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishReport {
    /// The id assigned to the event.
    pub id: EventId,
    /// Subscribers whose queue took the event.
    pub delivered: usize,
    /// Subscribers whose queue was full; each was closed with
    /// [`CloseReason::SlowConsumer`] before `publish` returned.
    pub slow_consumers: Vec<ClientId>,
}

/// What happened under the sequencer, for the work done after it.
pub(super) struct Placed {
    epoch: u64,
    seq: u64,
    delivered: usize,
    /// The topic, with the expiry bucket to file it under and whether the
    /// publish left it unused.
    topic: Option<(Arc<Topic>, Option<u64>, bool)>,
}

impl Hub {
    /// Publishes an event to every subscriber of `topic`: assigns the next
    /// id, encodes the frame once, retains it for replay and pushes a clone
    /// to each subscriber's queue, all in one step of the hub-wide order
    /// (I7). Subscribers whose queue is full are closed with
    /// [`CloseReason::SlowConsumer`]. The event's own `id` field, if any,
    /// is replaced.
    ///
    /// With `replay_capacity == 0`, publishing to a topic nobody subscribes
    /// to assigns an id and delivers to no one, without creating the topic.
    ///
    /// # Errors
    ///
    /// [`PublishError`]: invalid topic, unencodable or oversized event, the
    /// topic limit, a shut-down hub, or a hub whose events a backplane
    /// sequences ([`PublishError::ExternallySequenced`]: publish there and
    /// [`Hub::apply`] what it orders). Nothing was published then and no
    /// id was consumed.
    pub fn publish(&self, topic: &str, event: &Event) -> Result<PublishReport, PublishError> {
        validate_topic(topic).map_err(PublishError::InvalidTopic)?;
        let shared = &*self.shared;
        if shared.config.sequencing == Sequencing::External {
            return Err(PublishError::ExternallySequenced);
        }
        if shared.shut_down.load(Ordering::Acquire) {
            return Err(PublishError::ShutDown);
        }
        let body = self.encode_body(event)?;
        let now = self.push_time();
        let mut slow = Vec::new();
        let placed = {
            let _order = shared.sequencer.lock();
            // Checked again under the sequencer: `shutdown` sets the flag
            // while holding it, so no publish pushes after it returns.
            if shared.shut_down.load(Ordering::Acquire) {
                return Err(PublishError::ShutDown);
            }
            self.place(topic, &body, None, now, &mut slow)?
        };
        shared.metrics.here().events_published.add(1);
        Ok(self.after_place(placed, slow))
    }

    /// Encodes an event the way `publish` stores it, without an `id:` line
    /// (the hub adds it): the body a backplane carries to
    /// [`Hub::apply`] on every node, byte for byte.
    ///
    /// # Errors
    ///
    /// [`PublishError::Encode`] for an event that cannot be encoded, or
    /// that would exceed `max_event_bytes` with the longest `id:` line.
    pub fn encode_body(&self, event: &Event) -> Result<Bytes, PublishError> {
        let mut body = BytesMut::new();
        event
            .encode_with_id(None, &mut body)
            .map_err(PublishError::Encode)?;
        let limit = self.shared.config.max_event_bytes;
        let size = body.len() + ID_FIELD_MAX;
        if size > limit {
            return Err(PublishError::Encode(EncodeError::TooLarge { size, limit }));
        }
        Ok(body.freeze())
    }

    /// The work after the sequencer: the replay budget, expiry filing,
    /// dropping a topic the publish left unused, closing slow consumers.
    pub(super) fn after_place(&self, placed: Placed, slow: Vec<ClientId>) -> PublishReport {
        let shared = &*self.shared;
        self.enforce_replay_budget();
        if let Some((topic, expiry, unused)) = placed.topic {
            if let Some(bucket) = expiry {
                shared
                    .expiry
                    .lock()
                    .insert((bucket, SharedStr::clone(&topic.name)));
            }
            if unused {
                self.drop_unused(&[topic]);
            }
        }
        for &id in &slow {
            let _ = self.close(id, CloseReason::SlowConsumer);
        }
        PublishReport {
            id: EventId::new(placed.epoch, placed.seq),
            delivered: placed.delivered,
            slow_consumers: slow,
        }
    }

    /// Assigns the next sequence number (or `fixed`, an externally
    /// assigned one, newer than the hub's) and puts the event everywhere
    /// it goes. Called with the sequencer held.
    pub(super) fn place(
        &self,
        name: &str,
        body: &[u8],
        fixed: Option<u64>,
        now: u64,
        slow: &mut Vec<ClientId>,
    ) -> Result<Placed, PublishError> {
        let epoch = self.epoch();
        let shared = &*self.shared;
        loop {
            let existing = shared.topics.read().map.get(name).cloned();
            if let Some(topic) = existing {
                let mut state = topic.state.lock();
                if state.dead {
                    // Dropped since the lookup: look the name up again.
                    continue;
                }
                let seq = self.next_seq(fixed);
                let frame = self.frame_with_id(seq, body);
                let mut delivered = 0;
                for sub in &state.subs {
                    match sub.queue.push(frame.clone(), now, &shared.metrics) {
                        Push::Queued => delivered += 1,
                        Push::Overflowed => slow.push(sub.id),
                        Push::Closed(_) => {}
                    }
                }
                let before = state.ring.bytes();
                state.ring.push(seq, frame, now);
                self.account_retained(before, state.ring.bytes());
                state.record_publish(seq, now);
                let expiry = self.file_for_expiry(&mut state);
                let unused = state.is_unused();
                drop(state);
                return Ok(Placed {
                    epoch,
                    seq,
                    delivered,
                    topic: Some((topic, expiry, unused)),
                });
            }
            let capacity = shared.config.replay_capacity;
            if capacity == 0 {
                // Nobody to deliver to and nothing to retain. A topic of
                // this name created later must not claim the event (I8):
                // every topic created from now on starts past it.
                let seq = self.next_seq(fixed);
                shared.topics.write().raise_floor(seq);
                return Ok(Placed {
                    epoch,
                    seq,
                    delivered: 0,
                    topic: None,
                });
            }
            let mut map = shared.topics.write();
            if map.map.contains_key(name) {
                // An activation created it since the lookup.
                continue;
            }
            let limit = shared.config.max_topics;
            if map.map.len() >= limit && !self.evict_for_room(&mut map) {
                return Err(PublishError::TooManyTopics { limit });
            }
            // Created with its first event in place, under the map's write
            // lock: nobody sees the topic empty (I5).
            let seq = self.next_seq(fixed);
            let frame = self.frame_with_id(seq, body);
            let topic = map.create(&SharedStr::from(name), capacity, None);
            let mut state = topic.state.lock();
            state.ring.push(seq, frame, now);
            self.account_retained(0, state.ring.bytes());
            state.record_publish(seq, now);
            let expiry = self.file_for_expiry(&mut state);
            drop(state);
            drop(map);
            return Ok(Placed {
                epoch,
                seq,
                delivered: 0,
                topic: Some((topic, expiry, false)),
            });
        }
    }

    /// Makes room in a full topic table for a publish to a new topic: of a
    /// sample of topics, the one without subscribers whose oldest retained
    /// event is the oldest is evicted, its events recorded as lost (a
    /// client resuming on it gets a reset). Topics with subscribers are
    /// never evicted. `false` if the sample had none to evict. Called with
    /// the sequencer and the map's write lock held; the sample bounds the
    /// time spent under them.
    fn evict_for_room(&self, map: &mut TopicMap) -> bool {
        const SAMPLE: usize = 64;
        // Start the sample somewhere else each time, so that a run of
        // topics with subscribers cannot hide the evictable ones for good.
        let start = (self.shared.seq.load(Ordering::Acquire) as usize) % map.map.len().max(1);
        let victim = map
            .map
            .values()
            .cycle()
            .skip(start)
            .take(SAMPLE.min(map.map.len()))
            .filter_map(|topic| {
                let state = topic.state.lock();
                let oldest = state.ring.oldest_seq()?;
                (state.subs.is_empty() && !state.dead).then(|| (oldest, Arc::clone(topic)))
            })
            .min_by_key(|(oldest, _)| *oldest);
        let Some((_, topic)) = victim else {
            return false;
        };
        let mut state = topic.state.lock();
        let before = state.ring.bytes();
        state.ring.clear();
        self.account_retained(before, 0);
        state.dead = true;
        let evicted = state.ring.evicted_newest();
        drop(state);
        map.retire(&topic, evicted);
        map.trim();
        self.uncharge_creator(&topic);
        self.shared.metrics.here().topics_evicted.add(1);
        true
    }

    /// Brings the replay rings back under `replay_max_total_bytes` (to 7/8
    /// of it, so that a hub at the bound does not pay this on every
    /// publish): evicts the oldest retained events hub-wide first, across
    /// topics, each recorded as lost. Topics left with neither subscribers
    /// nor events are dropped (I5) before the registry shards, all held
    /// throughout, are released.
    fn enforce_replay_budget(&self) {
        let shared = &*self.shared;
        let budget = shared.config.replay_max_total_bytes as u64;
        if shared.retained_bytes.get() <= budget {
            return;
        }
        let target = budget - budget / 8;
        // Every shard: no checker sees a topic this leaves unused before
        // it is dropped.
        let _all = self.lock_all();
        let topics: Vec<Arc<Topic>> = shared.topics.read().map.values().cloned().collect();
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = topics
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.state.lock().ring.oldest_seq().map(|s| Reverse((s, i))))
            .collect();
        let mut unused = Vec::new();
        while shared.retained_bytes.get() > target {
            let Some(Reverse((_, i))) = heap.pop() else {
                break;
            };
            let topic = &topics[i];
            let mut state = topic.state.lock();
            let before = state.ring.bytes();
            state.ring.evict_oldest();
            self.account_retained(before, state.ring.bytes());
            shared.metrics.here().events_evicted.add(1);
            match state.ring.oldest_seq() {
                Some(next) => heap.push(Reverse((next, i))),
                None if state.is_unused() => unused.push(Arc::clone(topic)),
                None => {}
            }
        }
        self.drop_unused(&unused);
    }

    /// The next sequence number, or `fixed` when the backplane assigned
    /// it. Called with the sequencer held, so the load and the store are
    /// one step.
    fn next_seq(&self, fixed: Option<u64>) -> u64 {
        let seq = fixed.unwrap_or_else(|| self.shared.seq.load(Ordering::Acquire) + 1);
        self.shared.seq.store(seq, Ordering::Release);
        seq
    }

    /// The expiry bucket a topic whose ring just took an event must be
    /// filed under, if it is not filed yet.
    fn file_for_expiry(&self, state: &mut TopicState) -> Option<u64> {
        let shared = &*self.shared;
        let (Some(age), None, Some(oldest)) = (
            shared.nanos.replay_age,
            state.expiry,
            state.ring.oldest_at(),
        ) else {
            return None;
        };
        let bucket = oldest.saturating_add(age).div_ceil(shared.resolution);
        state.expiry = Some(bucket);
        Some(bucket)
    }

    /// Sends an event to one client (reserved or active). Direct sends are
    /// not retained for replay and carry no `id:` field (the event's own id
    /// is dropped), so they never move the client's `Last-Event-ID`.
    ///
    /// # Errors
    ///
    /// [`SendError`]: unknown or stale id (I4), unencodable or oversized
    /// event, a full queue (the client is then closed as a slow consumer),
    /// or a client already closed.
    pub fn send(&self, id: ClientId, event: &Event) -> Result<(), SendError> {
        let frame = self.encode_direct(event).map_err(SendError::Encode)?;
        self.push_direct(id, frame)
    }

    /// Sends an already encoded frame to one client (see [`Hub::send`]).
    ///
    /// # Errors
    ///
    /// As [`Hub::send`], and [`SendError::InvalidFrame`] for a frame that
    /// is not whole events as the encoder writes them, or that sets an id.
    pub fn send_frame(&self, id: ClientId, frame: Bytes) -> Result<(), SendError> {
        self.check_frame(&frame)?;
        self.push_direct(id, frame)
    }

    /// What [`send_frame`](Self::send_frame) accepts: whole events as the
    /// encoder writes them, without an id, within `max_event_bytes`.
    pub(super) fn check_frame(&self, frame: &Bytes) -> Result<(), SendError> {
        check_direct_frame(frame).map_err(|reason| SendError::InvalidFrame { reason })?;
        self.check_frame_size(frame)
    }

    /// Refuses a frame over `max_event_bytes`.
    pub(super) fn check_frame_size(&self, frame: &Bytes) -> Result<(), SendError> {
        let limit = self.shared.config.max_event_bytes;
        if frame.len() > limit {
            let size = frame.len();
            return Err(SendError::Encode(EncodeError::TooLarge { size, limit }));
        }
        Ok(())
    }

    fn push_direct(&self, id: ClientId, frame: Bytes) -> Result<(), SendError> {
        let queue = {
            let reg = self.shard(id);
            let entry = reg.lookup(id).ok_or(SendError::UnknownClient)?;
            Arc::clone(&entry.queue)
        };
        self.push_to(id, &queue, frame)
    }

    /// Pushes a direct frame onto client `id`'s `queue`; an overflow closes
    /// the client (`SlowConsumer`).
    pub(super) fn push_to(
        &self,
        id: ClientId,
        queue: &Queue,
        frame: Bytes,
    ) -> Result<(), SendError> {
        match queue.push(frame, self.push_time(), &self.shared.metrics) {
            Push::Queued => Ok(()),
            Push::Closed(reason) => Err(SendError::Closed(reason)),
            Push::Overflowed => {
                let _ = self.close(id, CloseReason::SlowConsumer);
                Err(SendError::SlowConsumer)
            }
        }
    }
}
