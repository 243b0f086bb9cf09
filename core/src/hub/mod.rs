//! The hub: the registry of clients and topics that every transport calls
//! into.
//!
//! | file | holds |
//! |---|---|
//! | `slots` | the generation-tagged slots and the client state machine's data |
//! | `lifecycle` | reserve → activate → close, the reservation and the close guard |
//! | `subscriptions` | subscribe, unsubscribe, finding, creating and dropping topics |
//! | `publish` | the hub-wide order: publish and send |
//! | `timers` | `tick`, `flushed`, heartbeats, idle/stall timeouts, replay expiry |
//! | `shutdown` | refusing new clients and sending every client its final frame |
//! | `frames` | the frames the hub writes itself: ids, reset, heartbeat, shutdown |
//! | `external` | events sequenced by a backplane: apply, epochs, lost history |
//! | `presence` | topic and subscriber snapshots for operators, without stalling publishing; join/leave events (PR1) |
//! | `invariants` | [`Hub::check_invariants`] |
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
//! registry shards (several only in index order) → `sequencer` → `topics`
//! (map) → a topic's state (several only in name order) → a queue. The
//! `expiry` set and the peer counts are leaves. No path takes a lock to the
//! left of one it holds. A client's own operations (reserve, activate,
//! subscribe, close) take only its shard; shutdown, a new epoch, the
//! checker, the replay budget and replay expiry take every shard (S1).
//! `publish` takes no registry shard while it holds the sequencer; it
//! closes slow consumers after releasing it. Presence snapshots take no registry shard
//! and no sequencer, and hold
//! one lock at a time (the map's, then each topic's). Join/leave events
//! are pushed under the topic lock of the change (topic → queue); the
//! sets of due summaries and of overflowed clients are leaves.
//!
//! # The hub-wide order (I7)
//!
//! Assigning an event's sequence number and pushing it to every subscriber
//! (and into its topic's ring) happen under one lock, the sequencer. So
//! the order in which events enter any queue is the order of their ids, for
//! clients on any number of topics. DESIGN.md §4 gives the argument.
//!
//! # Invariants
//!
//! I1–I8 as DESIGN.md names them; [`Hub::check_invariants`] checks the
//! structural ones (I1, I2, I4's bookkeeping, I5) at any quiescent point.

mod external;
mod frames;
mod invariants;
mod lifecycle;
mod presence;
mod publish;
mod shutdown;
mod slots;
mod subscriptions;
mod timers;

pub use external::Applied;
pub use lifecycle::{CloseGuard, CloseOutcome, Reservation, ReserveOptions};
pub use presence::{
    ClientList, ClientPage, ParseCursorError, ParseSortError, TopicCursor, TopicList, TopicPage,
    TopicPresence, TopicSort, TopicSummary, DEFAULT_PRESENCE_PAGE, MAX_PRESENCE_PAGE,
};
pub use publish::PublishReport;
pub use shutdown::ShutdownReport;
pub use timers::TickReport;

use crate::clock::Clock;
use crate::config::HubConfig;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::sync::{
    thread_home, Arc, AtomicBool, AtomicU64, Counter, Mutex, MutexGuard, Ordering, Padded, RwLock,
};
use crate::topics::TopicMap;
use crate::EventId;
use slots::{shard_of, PeerCounts, Registry, Shard, SHARDS};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

/// The configured durations in clock nanoseconds, converted once.
struct Nanos {
    heartbeat: Option<u64>,
    idle: Option<u64>,
    stall: Option<u64>,
    replay_age: Option<u64>,
}

/// Aligned so that the `Arc`'s reference counts, which every reservation
/// and stream moves, share no cache line with these fields; the fields
/// every connect or publish writes are [`Padded`] for the same reason.
#[repr(align(128))]
struct Shared {
    config: HubConfig,
    nanos: Nanos,
    start: Instant,
    /// Nanoseconds since `start`: the latest time the hub was told or read.
    clock: Padded<Counter>,
    /// Where push stamps come from, when the embedder gave a clock.
    source: Option<Box<dyn Clock>>,
    /// The newest sequence number assigned. Written only under `sequencer`.
    seq: Padded<AtomicU64>,
    /// The epoch of every id: `config.epoch`, or the backplane's
    /// ([`Hub::begin_epoch`]). Written only under every registry shard and
    /// `sequencer`, together with `seq`.
    epoch: AtomicU64,
    /// Serializes "assign a sequence number and push the event everywhere".
    sequencer: Mutex<()>,
    /// Set under `sequencer` (and every registry shard) by `shutdown`.
    shut_down: AtomicBool,
    /// The client registry, in shards (see `slots`).
    shards: Box<[Shard]>,
    /// Clients in any state, all shards together (`max_clients`). Not
    /// modelled by loom: its one decision, refuse or take, is a single
    /// atomic read-modify-write.
    clients: Padded<Counter>,
    /// Clients per peer tag (`max_clients_per_peer`); a leaf.
    peers: PeerCounts,
    topics: Padded<RwLock<TopicMap>>,
    /// `(bucket, topic)` for every topic whose ring has events that expire.
    expiry: Mutex<BTreeSet<(u64, crate::sync::SharedStr)>>,
    /// Bytes retained by all replay rings together.
    retained_bytes: Counter,
    /// Per peer tag: topics its clients created by subscribing that still
    /// exist. A leaf lock.
    peer_topics: Mutex<HashMap<crate::sync::SharedStr, usize>>,
    metrics: Metrics,
    resolution: u64,
    /// Join/leave summaries due, and clients a presence push overflowed.
    presence: presence::PresenceDue,
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
            .field("epoch", &self.epoch())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub whose time is what it is told: `now` here, then the instants
    /// passed to [`tick`](Self::tick) and [`flushed`](Self::flushed).
    ///
    /// Pushes are stamped with the latest instant told. A driver that calls
    /// `tick` on a fixed short interval (as the tokio adapter's did) keeps
    /// that stamp fresh; one that sleeps until
    /// [`TickReport::next_deadline`] should build the hub
    /// [`with_clock`](Self::with_clock) instead (see [`Clock`](crate::Clock)).
    pub fn new(config: HubConfig, now: Instant) -> Self {
        Self::build(config, now, None)
    }

    /// A hub that reads `clock` once per push (publish, send, replay), so
    /// heartbeat and stall deadlines count from the true time of the last
    /// frame, however seldom `tick` runs. Deadlines still fire only in
    /// [`tick`](Self::tick).
    pub fn with_clock(config: HubConfig, clock: impl Clock) -> Self {
        let now = clock.now();
        Self::build(config, now, Some(Box::new(clock)))
    }

    fn build(config: HubConfig, now: Instant, source: Option<Box<dyn Clock>>) -> Self {
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
                clock: Padded::default(),
                source,
                seq: Padded(AtomicU64::new(0)),
                epoch: AtomicU64::new(config.epoch),
                sequencer: Mutex::new(()),
                shut_down: AtomicBool::new(false),
                shards: (0..SHARDS).map(|i| Shard::new(i, resolution)).collect(),
                clients: Padded::default(),
                peers: PeerCounts::new(),
                topics: Padded(RwLock::new(TopicMap::new(config.max_topics))),
                expiry: Mutex::new(BTreeSet::new()),
                retained_bytes: Counter::default(),
                peer_topics: Mutex::new(HashMap::new()),
                metrics: Metrics::default(),
                resolution,
                presence: presence::PresenceDue::new(),
                nanos,
                config,
            }),
        }
    }

    /// The configuration the hub was built with.
    pub fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    /// Clients in any state (reserved, close-pending, active).
    pub fn len(&self) -> usize {
        usize::try_from(self.shared.clients.get()).unwrap_or(usize::MAX)
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
    pub fn client_topics(&self, id: crate::ClientId) -> Option<Vec<String>> {
        let mut reg = self.shard(id);
        let entry = reg.live_mut(id)?;
        Some(entry.names.iter().map(|n| n.to_string()).collect())
    }

    /// `true` when `id` is an active client.
    pub fn is_active(&self, id: crate::ClientId) -> bool {
        let reg = self.shard(id);
        reg.lookup(id)
            .is_some_and(|e| e.state == slots::SlotState::Active)
    }

    /// Deadlines currently scheduled (one per active client with a timeout
    /// or heartbeat configured).
    pub fn deadline_count(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|s| s.0.lock().deadline_count())
            .sum()
    }

    /// The id of the newest event published (or applied); the next one
    /// gets a greater one. Epoch and sequence number are read together.
    pub fn last_event_id(&self) -> EventId {
        let _order = self.shared.sequencer.lock();
        EventId::new(self.epoch(), self.shared.seq.load(Ordering::Acquire))
    }

    /// The epoch of the ids this hub writes now.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// A point-in-time copy of the hub's state and counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.shared.metrics.snapshot_counters();
        for shard in self.shared.shards.iter() {
            let reg = shard.0.lock();
            snapshot.clients_active += reg.active as u64;
            snapshot.clients_close_pending += reg.pending as u64;
            snapshot.clients_reserved += (reg.len() - reg.active) as u64;
        }
        snapshot.topics = self.topic_count() as u64;
        snapshot.retained_bytes = self.retained_bytes();
        snapshot
    }

    /// Bytes all replay rings retain together (bounded by
    /// `replay_max_total_bytes`, give or take the event being published).
    pub fn retained_bytes(&self) -> u64 {
        self.shared.retained_bytes.get()
    }

    /// Applies the change of one ring operation to the hub-wide total.
    fn account_retained(&self, before: usize, after: usize) {
        if after > before {
            self.shared.retained_bytes.add((after - before) as u64);
        } else {
            self.shared.retained_bytes.sub((before - after) as u64);
        }
    }

    /// Client `id`'s registry shard, locked.
    fn shard(&self, id: crate::ClientId) -> MutexGuard<'_, Registry> {
        self.shared.shards[shard_of(id)].0.lock()
    }

    /// This thread's home shard (where it reserves), locked.
    fn home_shard(&self) -> MutexGuard<'_, Registry> {
        self.shared.shards[thread_home() % SHARDS].0.lock()
    }

    /// Every registry shard, locked in index order (S1): what the single
    /// registry lock was, for the paths that need all clients at once.
    fn lock_all(&self) -> Vec<MutexGuard<'_, Registry>> {
        self.shared.shards.iter().map(|s| s.0.lock()).collect()
    }

    /// Frees slot `index` of `reg` and the hub-wide counts it held.
    fn free(&self, reg: &mut Registry, index: u32) -> slots::Entry {
        let entry = reg.free(index);
        self.shared.clients.sub(1);
        if let Some(peer) = &entry.peer {
            self.shared.peers.release(peer);
        }
        entry
    }

    pub(crate) fn metrics_counters(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The time to stamp a push with: the clock's, if the hub has one, else
    /// the latest instant it was told.
    fn push_time(&self) -> u64 {
        match &self.shared.source {
            Some(clock) => self.advance(clock.now()),
            None => self.shared.clock.get(),
        }
    }

    /// Moves the hub clock forward to `now` (never back); returns the clock.
    fn advance(&self, now: Instant) -> u64 {
        let nanos = duration_nanos(now.saturating_duration_since(self.shared.start));
        self.shared.clock.max(nanos);
        self.shared.clock.get()
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
