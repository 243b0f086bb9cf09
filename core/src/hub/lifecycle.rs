//! A client's lifecycle: reserve → arm the close hook → activate → close,
//! in any interleaving with closes from other threads.
//!
//! Invariants:
//! - **I1**: after `close` returns, an active client is in no topic and its
//!   queue is closed;
//! - **I5**: a slot is freed exactly once, by whoever finishes last: the
//!   close of an `Active` client, or the reservation's `activate` or drop
//!   for a `Reserved`/`ClosePending` one;
//! - **I6**: a second close changes nothing and says so;
//! - a final frame ([`Hub::close_with`], shutdown) is queued and the queue
//!   closed in one step under the queue's lock, so nothing can follow it.

use super::frames::{check_direct_frame, ID_FIELD_MAX};
use super::slots::{Entry, Joined, Names, Registry, SlotState};
use super::subscriptions::{Budget, Refusal};
use super::Hub;
use crate::codec::{welcome_frame, EncodeError, Event};
use crate::config::Sequencing;
use crate::error::HistoryError;
use crate::error::{ActivateError, ReserveError, SendError};
use crate::history::History;
use crate::queue::{ClientStream, Queue};
use crate::reason::CloseReason;
use crate::sync::{Arc, MutexGuard, Ordering, SharedStr};
use crate::topics::{validate_topic, Topic, TopicState};
use crate::{ClientId, EventId};
use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;
use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

/// What [`Hub::close`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum CloseOutcome {
    /// The active client was removed from every index and its queue closed.
    Closed,
    /// The client was only reserved: it is marked `ClosePending`, its queue
    /// is closed, and its activation will clean up.
    Deferred,
    /// The id was handed out by this hub but is no longer live (closed
    /// before, or its slot was reused): nothing changed (I6, I4).
    AlreadyClosed,
    /// This hub never handed out the id: nothing changed.
    Unknown,
}

/// What a client asks for when it connects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReserveOptions {
    /// Inline for one topic: a one-topic client's options allocate no vector.
    topics: SmallVec<[String; 1]>,
    last_event_id: Option<String>,
    peer: Option<String>,
    subject: Option<String>,
}

impl ReserveOptions {
    /// No topics, no `Last-Event-ID`, no peer tag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a topic to subscribe to at activation.
    #[must_use]
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Adds several topics.
    #[must_use]
    pub fn topics<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// The `Last-Event-ID` the client sent, verbatim. Malformed or foreign
    /// ids are answered with a reset event, never with an error.
    #[must_use]
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self
    }

    /// An opaque tag (e.g. the peer's IP address) for the per-peer limit.
    #[must_use]
    pub fn peer(mut self, peer: impl Into<String>) -> Self {
        self.peer = Some(peer.into());
        self
    }

    /// Who the client is (e.g. a JWT's `sub`), carried as `sub` in the
    /// join/leave events of topics with presence; cut to
    /// [`MAX_SUBJECT_LEN`](crate::MAX_SUBJECT_LEN) bytes.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

/// A reserved client slot, not yet visible to broadcasts.
///
/// Arm the close hook with [`id`](Self::id), write headers and initial
/// frames, then [`activate`](Self::activate). Dropping a reservation without
/// activating frees the slot, so an early return or a panic between the
/// steps leaks nothing.
#[must_use = "dropping a reservation releases the client"]
pub struct Reservation {
    hub: Hub,
    id: ClientId,
    queue: Arc<Queue>,
    done: bool,
    /// History read from a backplane for the resume (externally
    /// sequenced hubs only).
    history: Option<Box<History>>,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// The reserved client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The reading end of the client's queue. Frames sent before activation
    /// (with [`Hub::send`]) come first, then the replay, then live events.
    pub fn stream(&self) -> ClientStream {
        ClientStream::new(self.id, Arc::clone(&self.queue), self.hub.clone())
    }

    /// Queues an encoded frame for the reserved client, ahead of whatever
    /// activation queues: its initial frames. The same as
    /// [`Hub::send_frame`] with [`id`](Self::id), without the registry
    /// lock, since the reservation holds the client's queue (and only the
    /// reservation frees a reserved slot).
    ///
    /// # Errors
    ///
    /// As [`Hub::send_frame`]: [`SendError::InvalidFrame`] or
    /// [`SendError::Encode`] for a frame it refuses, [`SendError::Closed`]
    /// once a close arrived, [`SendError::SlowConsumer`] if the frame
    /// overflowed the queue (which closes the client).
    pub fn send_frame(&self, frame: Bytes) -> Result<(), SendError> {
        self.hub.check_frame(&frame)?;
        self.hub.push_to(self.id, &self.queue, frame)
    }

    /// Queues the welcome that opens the client's stream (see
    /// [`welcome_frame`]: the `retry:` hint, event `event`, data
    /// `{"clientId":"<id>"}`), as [`send_frame`](Self::send_frame) would
    /// queue that frame. The hub encodes it for the reserved id, so it
    /// needs none of the checks a caller's frame does but the size limit.
    ///
    /// # Errors
    ///
    /// [`SendError::Encode`] if `event` holds a line break or the frame is
    /// over [`max_event_bytes`](crate::HubConfig::max_event_bytes);
    /// otherwise as [`send_frame`](Self::send_frame).
    pub fn send_welcome(&self, event: &str, retry: Option<Duration>) -> Result<(), SendError> {
        let frame = welcome_frame(event, retry, self.id).map_err(SendError::Encode)?;
        self.hub.check_frame_size(&frame)?;
        self.hub.push_to(self.id, &self.queue, frame)
    }

    /// Makes the client visible: replays what its `Last-Event-ID` missed (or
    /// queues a reset event), subscribes it to its topics, and arms its
    /// deadlines, atomically with respect to [`Hub::close`].
    ///
    /// # Errors
    ///
    /// [`ActivateError::ClosedBeforeActivation`] if a close arrived first
    /// (the deferred cleanup has run); [`ActivateError::TooManyTopics`] if
    /// the hub's topic limit stops it. Either way the slot is freed.
    pub fn activate(mut self) -> Result<ClientId, ActivateError> {
        self.done = true;
        let history = self.history.take();
        self.hub.activate(self.id, history.as_deref())
    }

    /// Where the client resumes from: its `Last-Event-ID`, when it is a
    /// well-formed id of the hub's current epoch. `None` when it sent
    /// none, or one that can only be answered with a reset. On an
    /// externally sequenced hub this is what the caller reads history
    /// after (every event of the client's topics newer than it) before
    /// [`supply_history`](Self::supply_history).
    pub fn resume_point(&self) -> Option<EventId> {
        let reg = self.hub.shard(self.id);
        let last = reg.lookup(self.id)?.last_event_id.as_deref()?;
        let last = last.parse::<EventId>().ok()?;
        (last.epoch() == self.hub.epoch()).then_some(last)
    }

    /// Hands over history read from a backplane, for the resume at
    /// [`activate`](Self::activate) on an externally sequenced hub. There
    /// the replay merges it with the hub's own ring by sequence number,
    /// under the topic locks: events up to `through` come from it, later
    /// ones from the ring or live, each exactly once. The client gets a
    /// reset instead when, for any of its topics, the history is missing,
    /// of another epoch, not complete after its id (`complete_after` is
    /// above it), or meets a gap of the ring. A local hub ignores it.
    ///
    /// # Errors
    ///
    /// [`HistoryError`] for a history that breaks its own promise (events
    /// out of order or out of range, invalid bodies); it is not kept.
    pub fn supply_history(&mut self, history: History) -> Result<(), HistoryError> {
        let limit = self.hub.shared.config.max_event_bytes;
        for topic in &history.topics {
            if topic.complete_after > topic.through {
                return Err(HistoryError::BadRange {
                    topic: topic.name.clone(),
                });
            }
            let mut previous = topic.complete_after;
            for (seq, body) in &topic.events {
                if *seq <= previous || *seq > topic.through {
                    return Err(HistoryError::OutOfOrder {
                        topic: topic.name.clone(),
                    });
                }
                previous = *seq;
                if check_direct_frame(body).is_err() || body.len() + ID_FIELD_MAX > limit {
                    return Err(HistoryError::InvalidBody {
                        topic: topic.name.clone(),
                        seq: *seq,
                    });
                }
            }
        }
        self.history = Some(Box::new(history));
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.hub.release(self.id);
        }
        crate::spare::give(&mut self.queue);
    }
}

/// Closes a client when dropped, unless disarmed: the close hook a
/// transport owns for as long as the client's response lives.
#[must_use = "dropping the guard closes the client at once"]
pub struct CloseGuard {
    hub: Hub,
    id: ClientId,
    reason: Option<CloseReason>,
}

impl fmt::Debug for CloseGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseGuard")
            .field("id", &self.id)
            .field("reason", &self.reason)
            .finish()
    }
}

impl CloseGuard {
    /// The reason the drop will close with (`ClientGone` unless changed).
    pub fn set_reason(&mut self, reason: CloseReason) {
        if self.reason.is_some() {
            self.reason = Some(reason);
        }
    }

    /// Drop without closing.
    pub fn disarm(mut self) {
        self.reason = None;
    }
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if let Some(reason) = self.reason {
            let _ = self.hub.close(self.id, reason);
        }
    }
}

impl Hub {
    /// Reserves a slot for a connecting client (step 1 of registration).
    ///
    /// # Errors
    ///
    /// [`ReserveError`] when the hub is shutting down, a limit is reached or
    /// a topic name is invalid. Nothing is left behind.
    pub fn reserve(&self, opts: ReserveOptions) -> Result<Reservation, ReserveError> {
        let config = &self.shared.config;
        // Each name with the topic of that name, if it exists: the name is
        // shared rather than allocated, and activation joins the topics
        // found here without a second lookup (unless one has been dropped
        // by then: S2).
        let mut pairs: SmallVec<[(SharedStr, Option<Arc<Topic>>); 1]> =
            SmallVec::with_capacity(opts.topics.len());
        if !opts.topics.is_empty() {
            let map = self.shared.topics.read();
            for topic in opts.topics {
                if let Err(error) = validate_topic(&topic) {
                    return Err(ReserveError::InvalidTopic {
                        topic: truncate(&topic, 64),
                        error,
                    });
                }
                pairs.push(match map.map.get_key_value(topic.as_str()) {
                    Some((name, found)) => (SharedStr::clone(name), Some(Arc::clone(found))),
                    None => (SharedStr::from(topic), None),
                });
            }
        }
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        let all_found = pairs.iter().all(|(_, topic)| topic.is_some());
        let mut names = Names::with_capacity(pairs.len());
        let mut found = Joined::new();
        for (name, topic) in pairs {
            names.push(name);
            if let Some(topic) = topic.filter(|_| all_found) {
                found.push(topic);
            }
        }
        if names.len() > config.max_topics_per_client {
            return Err(ReserveError::TooManyTopics {
                limit: config.max_topics_per_client,
            });
        }
        let now = self.push_time();
        // Allocated before the lock: the registry's critical section stays short.
        let queue = crate::spare::take(config.queue_max_frames, config.queue_max_bytes, now);
        let mut reg = self.home_shard();
        if reg.shutting_down {
            return Err(ReserveError::ShuttingDown);
        }
        let too_many = ReserveError::TooManyClients {
            limit: config.max_clients,
        };
        if reg.next_index().is_none() {
            return Err(too_many);
        }
        let limit = u64::try_from(config.max_clients).unwrap_or(u64::MAX);
        if !self.shared.clients.increment_below(limit) {
            return Err(too_many);
        }
        let peer: Option<SharedStr> = opts.peer.map(SharedStr::from);
        if let Some(peer) = &peer {
            if !self.shared.peers.acquire(peer, config.max_clients_per_peer) {
                self.shared.clients.sub(1);
                return Err(ReserveError::TooManyClientsForPeer {
                    limit: config.max_clients_per_peer,
                });
            }
        }
        let generation = NonZeroU64::new(reg.next_generation).unwrap_or(NonZeroU64::MIN);
        reg.next_generation += 1;
        let index = reg.insert(Entry {
            generation,
            state: SlotState::Reserved,
            queue: Arc::clone(&queue),
            peer,
            names,
            joined: found,
            last_event_id: opts.last_event_id.map(String::into_boxed_str),
            created: 0,
            subject: opts.subject.map(crate::presence_feed::bounded_subject),
        });
        // `next_index()` fits a `u32`: checked above under the same lock.
        let id = ClientId::new(index, generation);
        drop(reg);
        Ok(Reservation {
            hub: self.clone(),
            id,
            queue,
            done: false,
            history: None,
        })
    }

    fn activate(&self, id: ClientId, history: Option<&History>) -> Result<ClientId, ActivateError> {
        let mut reg = self.shard(id);
        let Some(entry) = reg.lookup(id) else {
            // Only the reservation frees a Reserved/ClosePending slot.
            return Err(ActivateError::ClosedBeforeActivation(
                CloseReason::ClientGone,
            ));
        };
        match entry.state {
            SlotState::Active => return Ok(id),
            SlotState::ClosePending(reason) => {
                // The deferred cleanup: the close already ran and closed the
                // queue; now the slot goes (I5).
                drop(self.free(&mut reg, id.index()));
                return Err(ActivateError::ClosedBeforeActivation(reason));
            }
            SlotState::Reserved => {}
        }
        let now = self.push_time();
        let refusal = loop {
            let Some(entry) = reg.lookup_mut(id) else {
                return Err(ActivateError::ClosedBeforeActivation(
                    CloseReason::ClientGone,
                ));
            };
            // The topics reserve found, if it found them all (a reserved
            // entry's `joined`); else, or once one of them turned out dead,
            // a lookup that creates what is missing.
            let prefetched = std::mem::take(&mut entry.joined);
            let (topics, created) = if !prefetched.is_empty() || entry.names.is_empty() {
                (prefetched, 0)
            } else {
                let budget = Budget {
                    spent: entry.created as usize,
                    peer: entry.peer.as_ref(),
                };
                match self.topics_for(&entry.names, budget) {
                    Ok(found) => found,
                    Err(refusal) => break refusal,
                }
            };
            if !self.join_all(id, entry, topics, history, now) {
                // A topic found or created above was dropped (it had no
                // subscriber yet, and a close or an expiry on another
                // shard left it unused) before its lock was taken: find
                // or create it again (S2).
                continue;
            }
            entry.add_created(created);
            entry.state = SlotState::Active;
            let next = self.next_check(&entry.queue, now);
            reg.active += 1;
            if let Some(at) = next {
                reg.schedule(id.index(), at);
            }
            return Ok(id);
        };
        let entry = self.free(&mut reg, id.index());
        self.close_queue(&entry.queue, CloseReason::Kicked, None);
        Err(match refusal {
            Refusal::Table(limit) => ActivateError::TooManyTopics { limit },
            Refusal::Budget(limit) => ActivateError::TopicBudget { limit },
        })
    }

    /// Locks every one of `topics` in name order and, unless one of them
    /// is dead, queues the client's replay and subscribes it to them all
    /// (`join_locked`); `false` if one was dead (nothing changed then).
    /// All of a client's topics locked together: the replay cut and the
    /// live subscription meet at one point (I8). One topic (the common
    /// case) needs no vector of guards.
    fn join_all(
        &self,
        id: ClientId,
        entry: &mut Entry,
        topics: Joined,
        history: Option<&History>,
        now: u64,
    ) -> bool {
        match topics.as_slice() {
            [] => self.join_locked(id, entry, &[], &mut [], history, now),
            [topic] => {
                let mut guards = [topic.state.lock()];
                if guards[0].dead {
                    return false;
                }
                self.join_locked(id, entry, &topics, &mut guards, history, now);
            }
            many => {
                let mut guards: Vec<_> = many.iter().map(|t| t.state.lock()).collect();
                if guards.iter().any(|g| g.dead) {
                    return false;
                }
                self.join_locked(id, entry, many, &mut guards, history, now);
            }
        }
        entry.joined = topics;
        true
    }

    /// Queues the replay (or a reset) and subscribes, with every one of the
    /// client's topics locked (`guards`, in name order, one per `topics`).
    ///
    /// Why the cut is exact (I8): a publish assigns its sequence number
    /// only once it holds its topic's lock, and pushes everywhere before
    /// it lets the sequencer go. So, with these topics locked, every event
    /// numbered up to `cut` on them is already in their rings, and every
    /// later one will be pushed to this client live, after the replay.
    /// With a backplane's history (X1), events up to the history's
    /// `through` come from it and later ones from the ring; events above
    /// `cut` are left to the live path.
    fn join_locked(
        &self,
        id: ClientId,
        entry: &mut Entry,
        topics: &[Arc<Topic>],
        guards: &mut [MutexGuard<'_, TopicState>],
        history: Option<&History>,
        now: u64,
    ) {
        let shared = &*self.shared;
        if let Some(last) = entry.last_event_id.take() {
            let cut = shared.seq.load(Ordering::Acquire);
            let epoch = self.epoch();
            let replay = match last.parse::<EventId>() {
                Ok(last) if last.epoch() == epoch && last.seq() <= cut => {
                    match shared.config.sequencing {
                        Sequencing::Local => local_replay(guards, last.seq()),
                        Sequencing::External => history
                            .filter(|h| h.epoch == epoch)
                            .and_then(|h| self.merged_replay(topics, guards, h, last.seq(), cut)),
                    }
                    .filter(|events| {
                        let (frames, bytes) = entry.queue.room();
                        let size: usize = events.iter().map(|(_, f)| f.len()).sum();
                        events.len() <= frames && size <= bytes
                    })
                }
                _ => None,
            };
            match replay {
                Some(events) => {
                    for (_, frame) in events {
                        let _ = entry.queue.force_push(frame, now, &shared.metrics);
                    }
                    shared.metrics.here().replay_hits.add(1);
                }
                None => {
                    let reset = self.reset_frame(cut);
                    let _ = entry.queue.force_push(reset, now, &shared.metrics);
                    shared.metrics.here().replay_resets.add(1);
                }
            }
        }
        for guard in guards.iter_mut() {
            guard.subscribe(id, Arc::clone(&entry.queue));
        }
        self.presence_joined_all(id, entry.subject.as_ref(), topics, guards);
    }

    /// The events after `after` from a backplane's history and the rings,
    /// each once, in order; `None` when together they do not cover every
    /// event of the topics in `after < seq <= cut`.
    fn merged_replay(
        &self,
        topics: &[Arc<Topic>],
        guards: &[MutexGuard<'_, TopicState>],
        history: &History,
        after: u64,
        cut: u64,
    ) -> Option<Vec<(u64, Bytes)>> {
        let mut events = Vec::new();
        for (topic, guard) in topics.iter().zip(guards) {
            let read = history.topics.iter().find(|t| *t.name == *topic.name)?;
            if read.complete_after > after {
                return None;
            }
            // The history holds the topic's events in (after, through]; the
            // ring must hold every later one.
            let held_from = after.max(read.through);
            if guard.ring.has_gap_after(held_from) {
                return None;
            }
            events.extend(
                read.events
                    .iter()
                    .filter(|(seq, _)| *seq > after && *seq <= cut)
                    .map(|(seq, body)| (*seq, self.frame_with_id(*seq, body))),
            );
            events.extend(
                guard
                    .ring
                    .after(held_from)
                    .map(|e| (e.seq, e.frame.clone())),
            );
        }
        events.sort_unstable_by_key(|(seq, _)| *seq);
        Some(events)
    }

    /// Frees a reservation dropped without activation.
    fn release(&self, id: ClientId) {
        let mut reg = self.shard(id);
        let Some(entry) = reg.lookup(id) else { return };
        match entry.state {
            SlotState::Reserved => {
                let entry = self.free(&mut reg, id.index());
                self.close_queue(&entry.queue, CloseReason::ClientGone, None);
            }
            SlotState::ClosePending(_) => {
                drop(self.free(&mut reg, id.index()));
            }
            SlotState::Active => {}
        }
    }

    /// Closes a client, before, during or after activation, from any thread.
    ///
    /// Idempotent (I6): on an active client it removes the client from every
    /// topic, closes its queue (waking its writer) and frees the slot (I1);
    /// on a reserved one it marks the close pending; on anything else it
    /// changes nothing and says so.
    pub fn close(&self, id: ClientId, reason: CloseReason) -> CloseOutcome {
        self.close_frame(id, reason, None)
    }

    /// Closes a client as [`close`](Self::close) does, with `last` as the
    /// final frame it receives (for example the fatal event of a kick):
    /// queuing it and closing the queue are one step, so no publish or send
    /// can slip in after it. Frames queued before it are still delivered.
    /// The event carries no `id:` field, like [`send`](Self::send).
    ///
    /// If the client's queue was already closed (it overflowed, or a close
    /// won the race) the outcome says so and `last` is not queued.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if `last` cannot be encoded or exceeds
    /// `max_event_bytes`; the client is then not closed.
    pub fn close_with(
        &self,
        id: ClientId,
        reason: CloseReason,
        last: Option<&Event>,
    ) -> Result<CloseOutcome, EncodeError> {
        let frame = match last {
            Some(event) => Some(self.encode_direct(event)?),
            None => None,
        };
        Ok(self.close_frame(id, reason, frame))
    }

    fn close_frame(&self, id: ClientId, reason: CloseReason, last: Option<Bytes>) -> CloseOutcome {
        let mut reg = self.shard(id);
        let Some(entry) = reg.lookup_mut(id) else {
            return reg.gone(id);
        };
        match entry.state {
            SlotState::Reserved => {
                let reason = self.close_queue(&entry.queue, reason, last);
                entry.state = SlotState::ClosePending(reason);
                reg.pending += 1;
                CloseOutcome::Deferred
            }
            SlotState::ClosePending(_) => CloseOutcome::AlreadyClosed,
            SlotState::Active => {
                let entry = self.close_active(&mut reg, id.index(), reason, last);
                drop(reg);
                drop(entry);
                CloseOutcome::Closed
            }
        }
    }

    /// A guard that closes `id` with `ClientGone` when dropped.
    pub fn close_guard(&self, id: ClientId) -> CloseGuard {
        CloseGuard {
            hub: self.clone(),
            id,
            reason: Some(CloseReason::ClientGone),
        }
    }

    /// Closes an active client (I1): slot freed, queue closed (with `last`
    /// as its final frame), then out of every topic. Returns the freed entry so
    /// the caller can drop it (its vectors and reference counts) after
    /// releasing the registry shard.
    #[must_use = "drop the entry after releasing the registry shard"]
    pub(super) fn close_active(
        &self,
        reg: &mut Registry,
        index: u32,
        reason: CloseReason,
        last: Option<Bytes>,
    ) -> Entry {
        let entry = self.free(reg, index);
        // The queue closes first: the client's topics are left one lock at
        // a time, and publishes (which hold no registry lock) go on
        // meanwhile. Were the queue still open, an event on a topic not
        // yet left could arrive after one on a topic already left had been
        // missed, and the client would resume past the gap (I7).
        self.close_queue(&entry.queue, reason, last);
        let mut unused = Vec::new();
        for topic in &entry.joined {
            let mut state = topic.state.lock();
            let id = ClientId::new(index, entry.generation);
            state.unsubscribe(id);
            self.presence_change(&topic.name, &mut state, id, entry.subject.as_ref(), false);
            if state.is_unused() {
                unused.push(Arc::clone(topic));
            }
        }
        self.drop_unused(&unused);
        entry
    }

    /// Closes a client's queue (queuing `last` first, in the same step) and
    /// counts the close once, under the reason in effect: the first to close
    /// the queue decides. (Only an overflowing push closes a queue without
    /// a registry shard, and it leaves the counting to the registry close
    /// that follows.)
    pub(super) fn close_queue(
        &self,
        queue: &Queue,
        reason: CloseReason,
        last: Option<Bytes>,
    ) -> CloseReason {
        let effective = queue.close(reason, last);
        self.shared.metrics.closed(effective);
        effective
    }

    /// Encodes an event for one client: no `id:` field, within
    /// `max_event_bytes`.
    pub(super) fn encode_direct(&self, event: &Event) -> Result<Bytes, EncodeError> {
        let mut body = BytesMut::new();
        event.encode_with_id(None, &mut body)?;
        let limit = self.shared.config.max_event_bytes;
        if body.len() > limit {
            let size = body.len();
            return Err(EncodeError::TooLarge { size, limit });
        }
        Ok(body.freeze())
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The events after `after` in the rings, in order; `None` when a ring has
/// lost one.
fn local_replay(guards: &[MutexGuard<'_, TopicState>], after: u64) -> Option<Vec<(u64, Bytes)>> {
    if guards.iter().any(|g| g.ring.has_gap_after(after)) {
        return None;
    }
    let mut events: Vec<(u64, Bytes)> = guards
        .iter()
        .flat_map(|g| g.ring.after(after))
        .map(|e| (e.seq, e.frame.clone()))
        .collect();
    events.sort_unstable_by_key(|(seq, _)| *seq);
    Some(events)
}
