//! The hub: client slots and their lifecycle, topics, publish and send,
//! deadlines and shutdown.
//!
//! # Client state machine
//!
//! ```text
//!             reserve                 activate
//!   (vacant) ─────────▶ Reserved ───────────────▶ Active ──close──▶ (vacant)
//!                          │                        │
//!                    close │                        └─ tick (idle, stall),
//!                          ▼                           publish (slow consumer),
//!                     ClosePending ──activate──▶ (vacant) + Err(ClosedBeforeActivation)
//!
//!   dropping the Reservation of a Reserved or ClosePending slot ──▶ (vacant)
//! ```
//!
//! A slot is freed exactly once, by whoever finishes last: `close` frees an
//! `Active` slot; on a `Reserved` slot it only marks `ClosePending` (and
//! closes the queue, so nothing can be enqueued any more), and the
//! reservation's `activate` or drop frees it. This is the "added" flag of
//! the original bug report, made a state.
//!
//! # Lock order
//!
//! `registry` → `topics` (map) → a topic's state (several only in name
//! order) → a queue. The `expiry` set is a leaf. `publish` takes no
//! registry lock on its path; it closes slow consumers after releasing the
//! topic lock.
//!
//! # Invariants
//!
//! I1–I8 as DESIGN.md names them; [`Hub::check_invariants`] checks the
//! structural ones (I1, I2, I4's bookkeeping, I5) at any quiescent point.

use crate::codec::{comment_frame, EncodeError, Event};
use crate::config::HubConfig;
use crate::deadline::Deadlines;
use crate::error::{
    ActivateError, InvariantViolation, PublishError, ReserveError, SendError, SubscribeError,
};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::queue::{ClientStream, Push, Queue};
use crate::sync::{
    Arc, AtomicBool, AtomicU64, Counter, Mutex, MutexGuard, Ordering, RwLock, SharedStr,
};
use crate::topics::{validate_topic, Topic, TopicMap, TopicState};
use crate::{ClientId, EventId};
use bytes::{BufMut, Bytes, BytesMut};
use slab::Slab;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// Why a client was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The transport went away (response body dropped, socket closed).
    ClientGone,
    /// Writing to the transport failed.
    WriteError,
    /// The queue was non-empty with no flush progress for the stall timeout.
    WriteStalled,
    /// No flush was reported for the idle timeout.
    IdleTimeout,
    /// The queue was full; the client should reconnect and replay.
    SlowConsumer,
    /// The server decided to disconnect the client.
    Kicked,
    /// The hub shut down.
    Shutdown,
}

impl CloseReason {
    /// How many reasons there are.
    pub const COUNT: usize = 7;
    /// Every reason, in a fixed order.
    pub const ALL: [CloseReason; Self::COUNT] = [
        Self::ClientGone,
        Self::WriteError,
        Self::WriteStalled,
        Self::IdleTimeout,
        Self::SlowConsumer,
        Self::Kicked,
        Self::Shutdown,
    ];

    /// A stable snake_case name (for logs and metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientGone => "client_gone",
            Self::WriteError => "write_error",
            Self::WriteStalled => "write_stalled",
            Self::IdleTimeout => "idle_timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::Kicked => "kicked",
            Self::Shutdown => "shutdown",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    topics: Vec<String>,
    last_event_id: Option<String>,
    peer: Option<String>,
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
}

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

/// What a tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Heartbeat frames enqueued.
    pub heartbeats: usize,
    /// Clients closed, with the reason.
    pub closed: Vec<(ClientId, CloseReason)>,
    /// Retained events expired by age.
    pub expired_events: usize,
    /// When the next deadline is due, if any: a driver may sleep until then.
    pub next_deadline: Option<Instant>,
}

/// What a shutdown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Active clients that got the final frame and were closed.
    pub closed: usize,
    /// Reserved clients marked `ClosePending`.
    pub pending: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Reserved,
    ClosePending(CloseReason),
    Active,
}

struct Entry {
    generation: NonZeroU64,
    state: SlotState,
    queue: Arc<Queue>,
    peer: Option<SharedStr>,
    /// The client's topic set, sorted and unique (I2).
    names: Vec<SharedStr>,
    /// Once active: the topics of `names`, in the same order.
    joined: Vec<Arc<Topic>>,
    last_event_id: Option<String>,
}

impl Entry {
    /// Where `topic` is (or would go) in the sorted topic set.
    fn position(&self, topic: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|n| (**n).cmp(topic))
    }
}

struct Registry {
    slots: Slab<Entry>,
    next_generation: u64,
    deadlines: Deadlines,
    peers: HashMap<SharedStr, usize>,
    shutting_down: bool,
    pending: usize,
    active: usize,
}

impl Registry {
    /// The one place that resolves a `ClientId`: the generation must match
    /// (I4).
    fn lookup(&self, id: ClientId) -> Option<&Entry> {
        self.slots
            .get(id.index() as usize)
            .filter(|e| e.generation == id.generation())
    }

    fn lookup_mut(&mut self, id: ClientId) -> Option<&mut Entry> {
        self.slots
            .get_mut(id.index() as usize)
            .filter(|e| e.generation == id.generation())
    }

    /// A client that callers may still address: reserved or active. A
    /// close-pending client is gone as far as they are concerned.
    fn live_mut(&mut self, id: ClientId) -> Option<&mut Entry> {
        self.lookup_mut(id)
            .filter(|e| !matches!(e.state, SlotState::ClosePending(_)))
    }

    fn gone(&self, id: ClientId) -> CloseOutcome {
        if id.generation().get() < self.next_generation {
            CloseOutcome::AlreadyClosed
        } else {
            CloseOutcome::Unknown
        }
    }

    /// Frees a slot and its peer count; the caller handles topics.
    fn free(&mut self, index: u32) -> Entry {
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

/// The configured durations in clock nanoseconds, converted once.
struct Nanos {
    heartbeat: Option<u64>,
    idle: Option<u64>,
    stall: Option<u64>,
    replay_age: Option<u64>,
}

struct Shared {
    config: HubConfig,
    nanos: Nanos,
    start: Instant,
    /// Nanoseconds since `start`: the latest time the hub was told.
    clock: Counter,
    seq: AtomicU64,
    shut_down: AtomicBool,
    registry: Mutex<Registry>,
    topics: RwLock<TopicMap>,
    /// `(bucket, topic)` for every topic whose ring has events that expire.
    expiry: Mutex<BTreeSet<(u64, SharedStr)>>,
    metrics: Metrics,
    resolution: u64,
}

/// The registry of clients and topics. Cheap to clone (a shared handle);
/// every method takes `&self` and may be called from any thread.
///
/// # Examples
///
/// ```
/// use ssehub_core::{codec::Event, Drain, Hub, HubConfig, ReserveOptions};
/// use std::time::Instant;
///
/// let hub = Hub::new(HubConfig::default(), Instant::now());
/// let reservation = hub.reserve(ReserveOptions::new().topic("news"))?;
/// let stream = reservation.stream();
/// let id = reservation.activate()?;
///
/// let report = hub.publish("news", &Event::new("hello"))?;
/// assert_eq!(report.delivered, 1);
///
/// let mut frames = Vec::new();
/// assert_eq!(stream.drain(&mut frames, 16), Drain::Frames(1));
/// assert!(frames[0].ends_with(b"data: hello\n\n"));
///
/// let _ = hub.close(id, ssehub_core::CloseReason::ClientGone);
/// assert_eq!(hub.len(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &self.shared.config.epoch)
            .field("len", &self.len())
            .finish_non_exhaustive()
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
        self.hub.activate(self.id)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.hub.release(self.id);
        }
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
    /// A hub whose injected clock starts at `now`.
    pub fn new(config: HubConfig, now: Instant) -> Self {
        let resolution = duration_nanos(config.timer_resolution).max(1);
        let nanos = Nanos {
            heartbeat: config.heartbeat_interval.map(duration_nanos),
            idle: config.idle_timeout.map(duration_nanos),
            stall: config.write_stall_timeout.map(duration_nanos),
            replay_age: config.replay_max_age.map(duration_nanos),
        };
        Self {
            shared: Arc::new(Shared {
                start: now,
                clock: Counter::default(),
                seq: AtomicU64::new(0),
                shut_down: AtomicBool::new(false),
                registry: Mutex::new(Registry {
                    slots: Slab::new(),
                    next_generation: 1,
                    deadlines: Deadlines::new(resolution),
                    peers: HashMap::new(),
                    shutting_down: false,
                    pending: 0,
                    active: 0,
                }),
                topics: RwLock::new(TopicMap {
                    map: HashMap::new(),
                    watermark: 0,
                }),
                expiry: Mutex::new(BTreeSet::new()),
                metrics: Metrics::default(),
                resolution,
                nanos,
                config,
            }),
        }
    }

    /// The configuration the hub was built with.
    pub fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    /// Reserves a slot for a connecting client (step 1 of registration).
    ///
    /// # Errors
    ///
    /// [`ReserveError`] when the hub is shutting down, a limit is reached or
    /// a topic name is invalid. Nothing is left behind.
    pub fn reserve(&self, opts: ReserveOptions) -> Result<Reservation, ReserveError> {
        let config = &self.shared.config;
        let mut names: Vec<SharedStr> = Vec::with_capacity(opts.topics.len());
        if !opts.topics.is_empty() {
            // Share the name of a topic that exists rather than allocate.
            let map = self.shared.topics.read();
            for topic in opts.topics {
                if let Err(error) = validate_topic(&topic) {
                    return Err(ReserveError::InvalidTopic {
                        topic: truncate(&topic, 64),
                        error,
                    });
                }
                names.push(match map.map.get_key_value(topic.as_str()) {
                    Some((name, _)) => SharedStr::clone(name),
                    None => SharedStr::from(topic),
                });
            }
        }
        names.sort_unstable();
        names.dedup();
        if names.len() > config.max_topics_per_client {
            return Err(ReserveError::TooManyTopics {
                limit: config.max_topics_per_client,
            });
        }
        let now = self.now_nanos();
        // Allocated before the lock: the registry's critical section stays short.
        let queue = Arc::new(Queue::new(
            config.queue_max_frames,
            config.queue_max_bytes,
            now,
        ));
        let mut reg = self.shared.registry.lock();
        if reg.shutting_down {
            return Err(ReserveError::ShuttingDown);
        }
        if reg.slots.len() >= config.max_clients || reg.slots.vacant_key() > u32::MAX as usize {
            return Err(ReserveError::TooManyClients {
                limit: config.max_clients,
            });
        }
        let peer: Option<SharedStr> = opts.peer.map(SharedStr::from);
        if let Some(peer) = &peer {
            let count = reg.peers.entry(SharedStr::clone(peer)).or_insert(0);
            if *count >= config.max_clients_per_peer {
                if *count == 0 {
                    reg.peers.remove(peer);
                }
                return Err(ReserveError::TooManyClientsForPeer {
                    limit: config.max_clients_per_peer,
                });
            }
            *count += 1;
        }
        let generation = NonZeroU64::new(reg.next_generation).unwrap_or(NonZeroU64::MIN);
        reg.next_generation += 1;
        let index = reg.slots.insert(Entry {
            generation,
            state: SlotState::Reserved,
            queue: Arc::clone(&queue),
            peer,
            names,
            joined: Vec::new(),
            last_event_id: opts.last_event_id,
        });
        // `vacant_key() <= u32::MAX` was checked above under the same lock.
        let id = ClientId::new(index as u32, generation);
        drop(reg);
        Ok(Reservation {
            hub: self.clone(),
            id,
            queue,
            done: false,
        })
    }

    fn activate(&self, id: ClientId) -> Result<ClientId, ActivateError> {
        let shared = &*self.shared;
        let mut reg = shared.registry.lock();
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
                reg.free(id.index());
                return Err(ActivateError::ClosedBeforeActivation(reason));
            }
            SlotState::Reserved => {}
        }
        let topics = match self.topics_for(&entry.names) {
            Ok(topics) => topics,
            Err(limit) => {
                let entry = reg.free(id.index());
                self.close_queue(&entry.queue, CloseReason::Kicked);
                return Err(ActivateError::TooManyTopics { limit });
            }
        };
        let now = self.now_nanos();
        let Some(entry) = reg.lookup_mut(id) else {
            return Err(ActivateError::ClosedBeforeActivation(
                CloseReason::ClientGone,
            ));
        };
        // All of the client's topics, locked in name order: the replay cut
        // and the live subscription meet at one point (I8). One topic (the
        // common case) needs no vector of guards.
        match topics.as_slice() {
            [] => self.join_locked(id, entry, &mut [], now),
            [topic] => self.join_locked(id, entry, &mut [topic.state.lock()], now),
            many => {
                let mut guards: Vec<_> = many.iter().map(|t| t.state.lock()).collect();
                self.join_locked(id, entry, &mut guards, now);
            }
        }
        entry.joined = topics;
        entry.state = SlotState::Active;
        let next = self.next_check(&entry.queue, now);
        reg.active += 1;
        if let Some(at) = next {
            reg.deadlines.schedule(id.index(), at);
        }
        Ok(id)
    }

    /// Queues the replay (or a reset) and subscribes, with every one of the
    /// client's topics locked (`guards`, in name order).
    fn join_locked(
        &self,
        id: ClientId,
        entry: &mut Entry,
        guards: &mut [MutexGuard<'_, TopicState>],
        now: u64,
    ) {
        let shared = &*self.shared;
        if let Some(last) = entry.last_event_id.take() {
            let cut = shared.seq.load(Ordering::Acquire);
            let replay = match last.parse::<EventId>() {
                Ok(last) if last.epoch() == shared.config.epoch && last.seq() <= cut => {
                    if guards.iter().any(|g| g.ring.has_gap_after(last.seq())) {
                        None
                    } else {
                        let mut events: Vec<(u64, Bytes)> = guards
                            .iter()
                            .flat_map(|g| g.ring.after(last.seq()))
                            .map(|e| (e.seq, e.frame.clone()))
                            .collect();
                        events.sort_unstable_by_key(|(seq, _)| *seq);
                        let (frames, bytes) = entry.queue.room();
                        let size: usize = events.iter().map(|(_, f)| f.len()).sum();
                        (events.len() <= frames && size <= bytes).then_some(events)
                    }
                }
                _ => None,
            };
            match replay {
                Some(events) => {
                    for (_, frame) in events {
                        let _ = entry.queue.force_push(frame, now, &shared.metrics);
                    }
                    shared.metrics.replay_hits.add(1);
                }
                None => {
                    let reset = self.reset_frame(cut);
                    let _ = entry.queue.force_push(reset, now, &shared.metrics);
                    shared.metrics.replay_resets.add(1);
                }
            }
        }
        for guard in guards.iter_mut() {
            guard.subscribe(id, Arc::clone(&entry.queue));
        }
    }

    /// Frees a reservation dropped without activation.
    fn release(&self, id: ClientId) {
        let mut reg = self.shared.registry.lock();
        let Some(entry) = reg.lookup(id) else { return };
        match entry.state {
            SlotState::Reserved => {
                let entry = reg.free(id.index());
                self.close_queue(&entry.queue, CloseReason::ClientGone);
            }
            SlotState::ClosePending(_) => {
                reg.free(id.index());
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
        let mut reg = self.shared.registry.lock();
        let Some(entry) = reg.lookup_mut(id) else {
            return reg.gone(id);
        };
        match entry.state {
            SlotState::Reserved => {
                let reason = self.close_queue(&entry.queue, reason);
                entry.state = SlotState::ClosePending(reason);
                reg.pending += 1;
                CloseOutcome::Deferred
            }
            SlotState::ClosePending(_) => CloseOutcome::AlreadyClosed,
            SlotState::Active => {
                let entry = self.close_active(&mut reg, id.index(), reason);
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

    /// Closes an active client (I1): out of every topic, queue closed, slot
    /// freed. Returns the freed entry so the caller can drop it (its
    /// vectors and reference counts) after releasing the registry lock.
    #[must_use = "drop the entry after releasing the registry lock"]
    fn close_active(&self, reg: &mut Registry, index: u32, reason: CloseReason) -> Entry {
        let entry = reg.free(index);
        let mut unused = Vec::new();
        for topic in &entry.joined {
            let mut state = topic.state.lock();
            state.unsubscribe(ClientId::new(index, entry.generation));
            if state.is_unused() {
                unused.push(Arc::clone(topic));
            }
        }
        self.close_queue(&entry.queue, reason);
        self.drop_unused(&unused);
        entry
    }

    /// Closes a client's queue and counts the close once, under the reason
    /// in effect: the first to close the queue decides. (Only an
    /// overflowing push closes a queue without the registry lock, and it
    /// leaves the counting to the registry close that follows.)
    fn close_queue(&self, queue: &Queue, reason: CloseReason) -> CloseReason {
        let effective = queue.close(reason);
        self.shared.metrics.closed(effective);
        effective
    }

    /// Drops topics that have neither subscribers nor retained events (I5).
    /// Called with the registry lock held.
    fn drop_unused(&self, candidates: &[Arc<Topic>]) {
        if candidates.is_empty() {
            return;
        }
        let mut map = self.shared.topics.write();
        for topic in candidates {
            let mut state = topic.state.lock();
            if state.dead || !state.is_unused() {
                continue;
            }
            state.dead = true;
            map.watermark = map.watermark.max(state.ring.evicted_newest());
            if map
                .map
                .get(&topic.name)
                .is_some_and(|t| Arc::ptr_eq(t, topic))
            {
                map.map.remove(&topic.name);
            }
        }
    }

    /// The topic named, created if missing (without allocating when it
    /// exists: the publish path); `Err(limit)` if creating it would exceed
    /// `max_topics`.
    fn topic(&self, name: &str) -> Result<Arc<Topic>, usize> {
        if let Some(topic) = self.shared.topics.read().map.get(name) {
            return Ok(Arc::clone(topic));
        }
        let name = SharedStr::from(name);
        let mut topics = self.topics_for(std::slice::from_ref(&name))?;
        topics.pop().ok_or(self.shared.config.max_topics)
    }

    /// The topics named, created where missing; `Err(limit)` if that would
    /// exceed `max_topics`.
    fn topics_for(&self, names: &[SharedStr]) -> Result<Vec<Arc<Topic>>, usize> {
        {
            let map = self.shared.topics.read();
            let found: Vec<_> = names
                .iter()
                .filter_map(|n| map.map.get(n).cloned())
                .collect();
            if found.len() == names.len() {
                return Ok(found);
            }
        }
        let mut map = self.shared.topics.write();
        let missing = names.iter().filter(|n| !map.map.contains_key(*n)).count();
        let limit = self.shared.config.max_topics;
        if map.map.len() + missing > limit {
            return Err(limit);
        }
        let mut topics = Vec::with_capacity(names.len());
        for name in names {
            let watermark = map.watermark;
            let capacity = self.shared.config.replay_capacity;
            let topic = map.map.entry(SharedStr::clone(name)).or_insert_with(|| {
                Arc::new(Topic::new(SharedStr::clone(name), capacity, watermark))
            });
            topics.push(Arc::clone(topic));
        }
        Ok(topics)
    }

    /// Subscribes a live (reserved or active) client to one more topic.
    /// Returns `false` if it was already subscribed.
    ///
    /// # Errors
    ///
    /// [`SubscribeError`]: unknown or stale id (I4), invalid name, limits.
    pub fn subscribe(&self, id: ClientId, topic: &str) -> Result<bool, SubscribeError> {
        validate_topic(topic).map_err(SubscribeError::InvalidTopic)?;
        let mut reg = self.shared.registry.lock();
        let entry = reg.live_mut(id).ok_or(SubscribeError::UnknownClient)?;
        let Err(at) = entry.position(topic) else {
            return Ok(false);
        };
        let limit = self.shared.config.max_topics_per_client;
        if entry.names.len() >= limit {
            return Err(SubscribeError::TooManyTopicsForClient { limit });
        }
        let name = if entry.state == SlotState::Active {
            let topic = self
                .topic(topic)
                .map_err(|limit| SubscribeError::TooManyTopics { limit })?;
            topic.state.lock().subscribe(id, Arc::clone(&entry.queue));
            let name = SharedStr::clone(&topic.name);
            entry.joined.insert(at, topic);
            name
        } else {
            // Reserved: recorded now, subscribed at activation.
            SharedStr::from(topic)
        };
        entry.names.insert(at, name);
        Ok(true)
    }

    /// Unsubscribes a live client from a topic. Returns `false` if it was
    /// not subscribed.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::UnknownClient`] for an unknown or stale id (I4),
    /// [`SubscribeError::InvalidTopic`] for an invalid name.
    pub fn unsubscribe(&self, id: ClientId, topic: &str) -> Result<bool, SubscribeError> {
        validate_topic(topic).map_err(SubscribeError::InvalidTopic)?;
        let mut reg = self.shared.registry.lock();
        let entry = reg.live_mut(id).ok_or(SubscribeError::UnknownClient)?;
        let Ok(at) = entry.position(topic) else {
            return Ok(false);
        };
        entry.names.remove(at);
        if entry.state == SlotState::Active {
            let topic = entry.joined.remove(at);
            let unused = {
                let mut state = topic.state.lock();
                state.unsubscribe(id);
                state.is_unused()
            };
            if unused {
                self.drop_unused(&[topic]);
            }
        }
        Ok(true)
    }

    /// Publishes an event to every subscriber of `topic`: assigns the next
    /// id, encodes the frame once, retains it for replay and pushes a clone
    /// to each subscriber's queue. Subscribers whose queue is full are closed
    /// with [`CloseReason::SlowConsumer`] (I7). The event's own `id` field,
    /// if any, is replaced.
    ///
    /// # Errors
    ///
    /// [`PublishError`]: invalid topic, unencodable or oversized event, the
    /// topic limit, or a shut-down hub. Nothing was published then.
    pub fn publish(&self, topic: &str, event: &Event) -> Result<PublishReport, PublishError> {
        validate_topic(topic).map_err(PublishError::InvalidTopic)?;
        let shared = &*self.shared;
        if shared.shut_down.load(Ordering::Acquire) {
            return Err(PublishError::ShutDown);
        }
        let mut body = BytesMut::new();
        event
            .encode_with_id(None, &mut body)
            .map_err(PublishError::Encode)?;
        let limit = shared.config.max_event_bytes;
        let size = body.len() + ID_FIELD_MAX;
        if size > limit {
            return Err(PublishError::Encode(EncodeError::TooLarge { size, limit }));
        }
        let now = self.now_nanos();
        let mut slow = Vec::new();
        let (seq, delivered, expiry, unused, topic) = loop {
            let topic = self
                .topic(topic)
                .map_err(|limit| PublishError::TooManyTopics { limit })?;
            let mut state = topic.state.lock();
            if state.dead {
                continue;
            }
            let seq = shared.seq.fetch_add(1, Ordering::AcqRel) + 1;
            let frame = self.frame_with_id(seq, &body);
            let mut delivered = 0;
            for sub in &state.subs {
                match sub.queue.push(frame.clone(), now, &shared.metrics) {
                    Push::Queued => delivered += 1,
                    Push::Overflowed => slow.push(sub.id),
                    Push::Closed(_) => {}
                }
            }
            state.ring.push(seq, frame, now);
            let mut expiry = None;
            if let (Some(age), None, Some(oldest)) = (
                shared.nanos.replay_age,
                state.expiry,
                state.ring.oldest_at(),
            ) {
                let bucket = oldest.saturating_add(age).div_ceil(shared.resolution);
                state.expiry = Some(bucket);
                expiry = Some(bucket);
            }
            let unused = state.is_unused();
            drop(state);
            break (seq, delivered, expiry, unused, topic);
        };
        shared.metrics.events_published.add(1);
        if let Some(bucket) = expiry {
            shared
                .expiry
                .lock()
                .insert((bucket, SharedStr::clone(&topic.name)));
        }
        for &id in &slow {
            let _ = self.close(id, CloseReason::SlowConsumer);
        }
        if unused {
            let _reg = self.shared.registry.lock();
            self.drop_unused(&[topic]);
        }
        Ok(PublishReport {
            id: EventId::new(shared.config.epoch, seq),
            delivered,
            slow_consumers: slow,
        })
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
        let mut body = BytesMut::new();
        event
            .encode_with_id(None, &mut body)
            .map_err(SendError::Encode)?;
        let limit = self.shared.config.max_event_bytes;
        if body.len() > limit {
            let size = body.len();
            return Err(SendError::Encode(EncodeError::TooLarge { size, limit }));
        }
        self.send_frame(id, body.freeze())
    }

    /// Sends an already encoded frame to one client (see [`Hub::send`]).
    ///
    /// # Errors
    ///
    /// As [`Hub::send`], without the encoding errors.
    pub fn send_frame(&self, id: ClientId, frame: Bytes) -> Result<(), SendError> {
        let queue = {
            let reg = self.shared.registry.lock();
            let entry = reg.lookup(id).ok_or(SendError::UnknownClient)?;
            Arc::clone(&entry.queue)
        };
        match queue.push(frame, self.now_nanos(), &self.shared.metrics) {
            Push::Queued => Ok(()),
            Push::Closed(reason) => Err(SendError::Closed(reason)),
            Push::Overflowed => {
                let _ = self.close(id, CloseReason::SlowConsumer);
                Err(SendError::SlowConsumer)
            }
        }
    }

    /// Records that the transport flushed `id`'s frames at `now`: resets its
    /// idle timeout and its stall clock. Returns `false` for an id that is
    /// not live. Writers holding the client's [`ClientStream`] should call
    /// [`ClientStream::flushed`] instead, which takes no hub-wide lock.
    pub fn flushed(&self, id: ClientId, now: Instant) -> bool {
        let queue = {
            let reg = self.shared.registry.lock();
            match reg.lookup(id) {
                Some(entry) => Arc::clone(&entry.queue),
                None => return false,
            }
        };
        queue.flushed(self.advance(now));
        true
    }

    /// Fires every deadline due at `now`: heartbeats, idle and stall
    /// timeouts, replay expiry. Costs O(what fires), not O(clients).
    pub fn tick(&self, now: Instant) -> TickReport {
        let shared = &*self.shared;
        let now = self.advance(now);
        let mut report = TickReport::default();
        let mut reg = shared.registry.lock();
        let mut due = Vec::new();
        reg.deadlines.pop_due(now, &mut due);
        for index in due {
            let Some(entry) = reg.slots.get(index as usize) else {
                continue;
            };
            if entry.state != SlotState::Active {
                continue;
            }
            let id = ClientId::new(index, entry.generation);
            let queue = Arc::clone(&entry.queue);
            let activity = queue.activity();
            let nanos = &shared.nanos;
            let stalled = nanos.stall.and_then(|t| {
                let since = activity.stall_since?;
                (!activity.empty && since.saturating_add(t) <= now).then_some(())
            });
            let idle = nanos
                .idle
                .filter(|t| activity.last_flush.saturating_add(*t) <= now);
            let reason = if stalled.is_some() {
                Some(CloseReason::WriteStalled)
            } else if idle.is_some() {
                Some(CloseReason::IdleTimeout)
            } else if let Some(hb) = nanos.heartbeat {
                let due = activity.last_push.saturating_add(hb) <= now;
                if due && activity.empty {
                    match queue.push(self.heartbeat_frame(), now, &shared.metrics) {
                        Push::Queued => {
                            report.heartbeats += 1;
                            shared.metrics.heartbeats.add(1);
                            None
                        }
                        Push::Overflowed => Some(CloseReason::SlowConsumer),
                        Push::Closed(reason) => Some(reason),
                    }
                } else {
                    None
                }
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    drop(self.close_active(&mut reg, index, reason));
                    report.closed.push((id, reason));
                }
                None => {
                    if let Some(at) = self.next_check(&queue, now) {
                        reg.deadlines.schedule(index, at);
                    }
                }
            }
        }
        report.expired_events = self.expire_topics(now);
        let next = reg.deadlines.next();
        drop(reg);
        let next_expiry = shared
            .expiry
            .lock()
            .first()
            .map(|(b, _)| b.saturating_mul(shared.resolution));
        report.next_deadline = match (next, next_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|nanos| shared.start + Duration::from_nanos(nanos));
        report
    }

    /// Expires retained events by age; drops topics left unused. Called with
    /// the registry lock held.
    fn expire_topics(&self, now: u64) -> usize {
        let shared = &*self.shared;
        let Some(age) = shared.nanos.replay_age else {
            return 0;
        };
        let limit = now / shared.resolution;
        let mut due = Vec::new();
        {
            let mut expiry = shared.expiry.lock();
            while expiry.first().is_some_and(|(b, _)| *b <= limit) {
                if let Some(item) = expiry.pop_first() {
                    due.push(item);
                }
            }
        }
        let cutoff = now.saturating_sub(age);
        let mut expired = 0;
        let mut unused = Vec::new();
        let mut refile = Vec::new();
        for (bucket, name) in due {
            let Some(topic) = shared.topics.read().map.get(&name).cloned() else {
                continue;
            };
            let mut state = topic.state.lock();
            if state.expiry != Some(bucket) {
                continue;
            }
            expired += state.ring.expire(cutoff);
            state.expiry = state
                .ring
                .oldest_at()
                .map(|oldest| oldest.saturating_add(age).div_ceil(shared.resolution));
            if let Some(next) = state.expiry {
                refile.push((next, SharedStr::clone(&topic.name)));
            }
            if state.is_unused() {
                unused.push(Arc::clone(&topic));
            }
        }
        if !refile.is_empty() {
            shared.expiry.lock().extend(refile);
        }
        shared.metrics.events_expired.add(expired as u64);
        self.drop_unused(&unused);
        expired
    }

    /// Refuses new clients, queues `final_event` (if any) to every active
    /// client with its own jittered `retry:` hint, and closes them all with
    /// [`CloseReason::Shutdown`]. Reserved clients become `ClosePending`.
    /// Later publishes fail with [`PublishError::ShutDown`].
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if `final_event` cannot be encoded; nothing changed.
    pub fn shutdown(&self, final_event: Option<&Event>) -> Result<ShutdownReport, EncodeError> {
        let shared = &*self.shared;
        let mut body = BytesMut::new();
        match final_event {
            Some(event) => event.encode_with_id(None, &mut body)?,
            None => body.put_u8(b'\n'),
        }
        let now = self.now_nanos();
        let mut reg = shared.registry.lock();
        reg.shutting_down = true;
        shared.shut_down.store(true, Ordering::Release);
        let mut report = ShutdownReport::default();
        let indices: Vec<usize> = reg.slots.iter().map(|(i, _)| i).collect();
        for index in indices {
            let Some(entry) = reg.slots.get_mut(index) else {
                continue;
            };
            let index = index as u32;
            match entry.state {
                SlotState::Reserved => {
                    let reason = self.close_queue(&entry.queue, CloseReason::Shutdown);
                    entry.state = SlotState::ClosePending(reason);
                    reg.pending += 1;
                    report.pending += 1;
                }
                SlotState::ClosePending(_) => {}
                SlotState::Active => {
                    let id = ClientId::new(index, entry.generation);
                    let frame = self.shutdown_frame(id, &body);
                    let _ = entry.queue.force_push(frame, now, &shared.metrics);
                    drop(self.close_active(&mut reg, index, CloseReason::Shutdown));
                    report.closed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Clients in any state (reserved, close-pending, active).
    pub fn len(&self) -> usize {
        self.shared.registry.lock().slots.len()
    }

    /// `true` when no client holds a slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Topics kept (with subscribers or retained events).
    pub fn topic_count(&self) -> usize {
        self.shared.topics.read().map.len()
    }

    /// Subscribers of `topic` (0 for an unknown topic).
    pub fn subscriber_count(&self, topic: &str) -> usize {
        let topic = self.shared.topics.read().map.get(topic).cloned();
        topic.map_or(0, |t| t.state.lock().subs.len())
    }

    /// The topics a live client is subscribed to, sorted; `None` for an id
    /// that is not live.
    pub fn client_topics(&self, id: ClientId) -> Option<Vec<String>> {
        let mut reg = self.shared.registry.lock();
        let entry = reg.live_mut(id)?;
        Some(entry.names.iter().map(|n| n.to_string()).collect())
    }

    /// `true` when `id` is an active client.
    pub fn is_active(&self, id: ClientId) -> bool {
        let reg = self.shared.registry.lock();
        reg.lookup(id).is_some_and(|e| e.state == SlotState::Active)
    }

    /// Deadlines currently scheduled (one per active client with a timeout
    /// or heartbeat configured).
    pub fn deadline_count(&self) -> usize {
        self.shared.registry.lock().deadlines.len()
    }

    /// The id the next publish will be greater than.
    pub fn last_event_id(&self) -> EventId {
        EventId::new(
            self.shared.config.epoch,
            self.shared.seq.load(Ordering::Acquire),
        )
    }

    /// A point-in-time copy of the hub's state and counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.shared.metrics.snapshot_counters();
        {
            let reg = self.shared.registry.lock();
            snapshot.clients_active = reg.active as u64;
            snapshot.clients_close_pending = reg.pending as u64;
            snapshot.clients_reserved = (reg.slots.len() - reg.active) as u64;
        }
        snapshot.topics = self.topic_count() as u64;
        snapshot
    }

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
        for (name, topic) in &map.map {
            let state = topic.state.lock();
            if state.dead {
                return fail("I5", format!("dead topic {name:?} still in the map"));
            }
            if state.is_unused() {
                return fail(
                    "I5",
                    format!("topic {name:?} kept with no subscriber or event"),
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
        Ok(())
    }

    // ---- helpers ----

    pub(crate) fn metrics_counters(&self) -> &Metrics {
        &self.shared.metrics
    }

    fn now_nanos(&self) -> u64 {
        self.shared.clock.get()
    }

    /// Moves the hub clock forward to `now` (never back); returns the clock.
    fn advance(&self, now: Instant) -> u64 {
        let nanos = duration_nanos(now.saturating_duration_since(self.shared.start));
        self.shared.clock.max(nanos);
        self.shared.clock.get()
    }

    /// When a client's deadlines next need a look: the earliest of its
    /// heartbeat, idle and stall deadlines. An empty queue cannot stall
    /// sooner than `now + stall`, so that bound stands in for it.
    fn next_check(&self, queue: &Queue, now: u64) -> Option<u64> {
        let nanos = &self.shared.nanos;
        let activity = queue.activity();
        let hb = nanos.heartbeat.map(|hb| {
            let due = activity.last_push.saturating_add(hb);
            if due > now {
                due
            } else {
                now.saturating_add(hb)
            }
        });
        let idle = nanos.idle.map(|t| activity.last_flush.saturating_add(t));
        let stall = nanos.stall.map(|t| {
            let since = match activity.stall_since {
                Some(since) if !activity.empty => since,
                _ => now,
            };
            since.saturating_add(t)
        });
        [hb, idle, stall].into_iter().flatten().min()
    }

    fn frame_with_id(&self, seq: u64, body: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(body.len() + ID_FIELD_MAX);
        buf.put_slice(b"id: ");
        put_decimal(&mut buf, self.shared.config.epoch);
        buf.put_u8(b'-');
        put_decimal(&mut buf, seq);
        buf.put_u8(b'\n');
        buf.put_slice(body);
        buf.freeze()
    }

    fn reset_frame(&self, cut: u64) -> Bytes {
        let mut body = BytesMut::new();
        let event = Event::new("").with_event(self.shared.config.reset_event.clone());
        match event.encode_with_id(None, &mut body) {
            Ok(()) => self.frame_with_id(cut, &body),
            // A reset name with a line break was configured: fall back to
            // the default name rather than send a broken frame.
            Err(_) => self.frame_with_id(cut, b"event: reset\ndata\n\n"),
        }
    }

    fn heartbeat_frame(&self) -> Bytes {
        match &self.shared.config.heartbeat_event {
            Some(name) => Event::new("")
                .with_event(name.clone())
                .to_bytes()
                .unwrap_or_else(|_| comment_frame("")),
            None => comment_frame(""),
        }
    }

    fn shutdown_frame(&self, id: ClientId, body: &[u8]) -> Bytes {
        let (lo, hi) = self.shared.config.shutdown_retry_window;
        let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
        let span = hi.saturating_sub(lo);
        let jitter = if span == 0 {
            0
        } else {
            splitmix64(id.generation().get() ^ self.shared.config.epoch) % (span + 1)
        };
        let mut buf = BytesMut::with_capacity(body.len() + 32);
        buf.put_slice(b"retry: ");
        put_decimal(&mut buf, lo + jitter);
        buf.put_u8(b'\n');
        buf.put_slice(body);
        buf.freeze()
    }
}

impl ClientStream {
    /// Records that the transport flushed this client's frames at `now`
    /// (see [`Hub::flushed`]), without any hub-wide lock.
    pub fn flushed(&self, now: Instant) {
        self.queue.flushed(self.hub.advance(now));
    }
}

/// Longest `id: <u64>-<u64>\n` line.
const ID_FIELD_MAX: usize = 4 + 20 + 1 + 20 + 1;

fn put_decimal(buf: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&digits[at..]);
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
