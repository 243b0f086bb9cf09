//! A proptest state machine: random sequences of every registry operation
//! run against the real [`Hub`] and against a deliberately plain reference
//! model (`BTreeMap`s, no concurrency, no cleverness), step by step.
//!
//! The model predicts every return value (error variants included), which
//! clients are live and in which state, each client's topic set, which
//! topics the hub keeps, and the exact frames each client's stream yields:
//! events in publish order with their ids (I7), replays and reset markers
//! after a `Last-Event-ID` (I8), heartbeats, shutdown frames, and the close
//! reason at the end of each stream. After every step the hub's structural
//! invariants hold (`check_invariants`: I1, I2, I5) and its counts match
//! the model's; stale and never-issued ids are used throughout (I4, I6).
//! Each case ends by closing everything and checking nothing is left (I5).
//!
//! Time is injected: the model and the hub share one clock that `Tick` and
//! `Flushed` move forward, so deadlines are predicted exactly.
//!
//! Cases: 6 000 with timeouts and tight limits + 4 000 replay-heavy ones
//! without timeouts, set with `ProptestConfig::cases` (the `PROPTEST_CASES`
//! environment variable overrides both).

#![cfg(not(ssehub_loom))]

use proptest::prelude::*;
use ssehub_core::codec::{EncodeError, Event};
use ssehub_core::{
    ActivateError, ClientId, ClientStream, CloseOutcome, CloseReason, Drain, EventId, Hub,
    HubConfig, PublishError, PublishReport, Reservation, ReserveError, ReserveOptions, SendError,
    ShutdownReport, SubscribeError, TopicError,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// A topic name: one of a small pool (so clients share topics and the topic
/// limit is reached), or an invalid one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topic {
    A,
    B,
    C,
    D,
    /// The empty name, refused with `TopicError::Empty`.
    Invalid,
}

impl Topic {
    fn name(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
            Self::C => "c",
            Self::D => "d",
            Self::Invalid => "",
        }
    }
}

/// Event data, sized around the limits (`max_event_bytes` is 256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Data {
    /// `d<n>`.
    Small(u8),
    /// Two lines, `m<n>` and `x`.
    Lines(u8),
    /// 220 bytes: too large to publish (with its id), small enough to send.
    Big,
    /// 300 bytes: too large for either.
    Huge,
}

impl Data {
    fn text(self) -> String {
        match self {
            Self::Small(n) => format!("d{n}"),
            Self::Lines(n) => format!("m{n}\nx"),
            Self::Big => "b".repeat(220),
            Self::Huge => "h".repeat(300),
        }
    }
}

/// The `Last-Event-ID` a reserving client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LastId {
    /// The id of the event `back` publishes ago (at reserve time).
    Recent(u8),
    /// An id newer than anything published.
    Future,
    /// An id of another hub instance (epoch).
    Foreign,
    /// Not an event id at all.
    Garbage,
}

/// A reference to a client: an index into the ids handed out so far (so
/// it stays meaningful while shrinking), or a never-issued id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Issued(u8),
    Unknown(u8),
}

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        topics: Vec<Topic>,
        last: Option<LastId>,
        peer: Option<u8>,
    },
    /// Activates the n-th outstanding reservation.
    Activate(u8),
    /// Drops the n-th outstanding reservation without activating it.
    DropReservation(u8),
    Close(Who, CloseReason),
    Subscribe(Who, Topic),
    Unsubscribe(Who, Topic),
    Publish(Topic, Data),
    Send(Who, Data),
    /// Moves the clock forward by this many milliseconds and ticks.
    Tick(u8),
    /// Moves the clock forward by this many milliseconds and reports a
    /// flush.
    Flushed(Who, u8),
    /// Drains up to this many frames from a client's stream.
    Drain(Who, u8),
    Shutdown(Option<Data>),
    /// Drains an active client's stream to the end of what is queued, closes
    /// it as the transport would, and reconnects with the same topics and
    /// the last id it received as its `Last-Event-ID` (I8 across topics).
    Reconnect(Who),
}

fn topic() -> impl Strategy<Value = Topic> {
    prop_oneof![
        6 => prop_oneof![Just(Topic::A), Just(Topic::B), Just(Topic::C), Just(Topic::D)],
        1 => Just(Topic::Invalid),
    ]
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        8 => (0u8..10).prop_map(Data::Small),
        2 => (0u8..10).prop_map(Data::Lines),
        1 => Just(Data::Big),
        1 => Just(Data::Huge),
    ]
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        9 => any::<u8>().prop_map(Who::Issued),
        1 => (0u8..8).prop_map(Who::Unknown),
    ]
}

fn last_id() -> impl Strategy<Value = Option<LastId>> {
    prop_oneof![
        3 => Just(None),
        4 => (0u8..6).prop_map(|n| Some(LastId::Recent(n))),
        1 => Just(Some(LastId::Future)),
        1 => Just(Some(LastId::Foreign)),
        1 => Just(Some(LastId::Garbage)),
    ]
}

fn reason() -> impl Strategy<Value = CloseReason> {
    (0..CloseReason::COUNT).prop_map(|i| CloseReason::ALL[i])
}

/// Operation weights: `timed` makes ticks and flushes frequent.
fn op(timed: bool) -> impl Strategy<Value = Op> {
    let tick = if timed { 4 } else { 1 };
    prop_oneof![
        6 => (proptest::collection::vec(topic(), 0..3), last_id(), proptest::option::of(0u8..3))
            .prop_map(|(topics, last, peer)| Op::Reserve { topics, last, peer }),
        6 => any::<u8>().prop_map(Op::Activate),
        1 => any::<u8>().prop_map(Op::DropReservation),
        3 => (who(), reason()).prop_map(|(w, r)| Op::Close(w, r)),
        3 => (who(), topic()).prop_map(|(w, t)| Op::Subscribe(w, t)),
        2 => (who(), topic()).prop_map(|(w, t)| Op::Unsubscribe(w, t)),
        8 => (topic(), data()).prop_map(|(t, d)| Op::Publish(t, d)),
        3 => (who(), data()).prop_map(|(w, d)| Op::Send(w, d)),
        tick => (0u8..40).prop_map(Op::Tick),
        tick => (who(), 0u8..20).prop_map(|(w, ms)| Op::Flushed(w, ms)),
        5 => (who(), 1u8..4).prop_map(|(w, n)| Op::Drain(w, n)),
        1 => proptest::option::of(data()).prop_map(Op::Shutdown),
        3 => who().prop_map(Op::Reconnect),
    ]
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

const EPOCH: u64 = 7;
/// Longest `id: <u64>-<u64>\n` line; publish counts it against the limit.
const ID_FIELD_MAX: usize = 46;
const MS: u64 = 1_000_000;

/// A frame the model expects on a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Frame {
    /// Exactly these bytes.
    Exact(Vec<u8>),
    /// `retry: <ms>\n` with `ms` in the shutdown window, then this body.
    Shutdown(Vec<u8>),
}

impl Frame {
    fn len(&self) -> usize {
        match self {
            Self::Exact(bytes) => bytes.len(),
            // Only ever force-pushed right before the queue closes, so its
            // exact size never decides anything.
            Self::Shutdown(body) => body.len() + 13,
        }
    }

    fn matches(&self, got: &[u8], window: (Duration, Duration)) -> bool {
        match self {
            Self::Exact(bytes) => bytes == got,
            Self::Shutdown(body) => {
                let Some(rest) = got.strip_prefix(b"retry: ") else {
                    return false;
                };
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    return false;
                };
                let ms: Option<u128> = std::str::from_utf8(&rest[..nl])
                    .ok()
                    .and_then(|s| s.parse().ok());
                let in_window =
                    ms.is_some_and(|ms| ms >= window.0.as_millis() && ms <= window.1.as_millis());
                in_window && &rest[nl + 1..] == body.as_slice()
            }
        }
    }
}

fn body(data: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in data.split('\n') {
        out.extend_from_slice(b"data");
        if !line.is_empty() {
            out.extend_from_slice(b": ");
            out.extend_from_slice(line.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

fn with_id(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("id: {EPOCH}-{seq}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Push {
    Queued,
    Overflowed,
    Closed(CloseReason),
}

/// A client's queue as the model sees it; outlives the client, as the
/// stream does.
#[derive(Debug)]
struct MQueue {
    frames: VecDeque<Frame>,
    bytes: usize,
    closed: Option<CloseReason>,
    last_push: u64,
    last_flush: u64,
    stall_since: Option<u64>,
}

impl MQueue {
    fn new(now: u64) -> Self {
        Self {
            frames: VecDeque::new(),
            bytes: 0,
            closed: None,
            last_push: now,
            last_flush: now,
            stall_since: None,
        }
    }

    fn push(&mut self, frame: Frame, now: u64, force: bool, config: &HubConfig) -> Push {
        if let Some(reason) = self.closed {
            return Push::Closed(reason);
        }
        if !force
            && (self.frames.len() >= config.queue_max_frames
                || self.bytes + frame.len() > config.queue_max_bytes)
        {
            self.close(CloseReason::SlowConsumer);
            return Push::Overflowed;
        }
        if self.frames.is_empty() {
            self.stall_since = Some(now);
        }
        self.bytes += frame.len();
        self.frames.push_back(frame);
        self.last_push = now;
        Push::Queued
    }

    fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.stall_since = None;
        }
    }

    fn flushed(&mut self, now: u64) {
        self.last_flush = self.last_flush.max(now);
        self.stall_since = if self.frames.is_empty() {
            None
        } else {
            Some(now)
        };
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Reserved,
    ClosePending(CloseReason),
    Active,
}

#[derive(Debug)]
struct MClient {
    state: State,
    topics: BTreeSet<&'static str>,
    peer: Option<u8>,
    last_event_id: Option<String>,
    /// When an active client's deadlines are next looked at.
    check_at: Option<u64>,
}

#[derive(Debug, Default)]
struct MTopic {
    /// `(seq, frame, published at)`, oldest first.
    ring: VecDeque<(u64, Vec<u8>, u64)>,
    evicted_newest: u64,
}

/// The reference model: what the hub should do, written the obvious way.
#[derive(Debug)]
struct Model {
    config: HubConfig,
    now: u64,
    seq: u64,
    next_generation: u64,
    shut_down: bool,
    clients: BTreeMap<ClientId, MClient>,
    queues: BTreeMap<ClientId, MQueue>,
    topics: BTreeMap<&'static str, MTopic>,
    /// Per dropped topic name, the newest seq it had evicted.
    gaps: BTreeMap<&'static str, u64>,
    /// Where forgotten gaps went: every new topic starts at least here.
    floor: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Model {
    fn new(config: HubConfig) -> Self {
        Self {
            config,
            now: 0,
            seq: 0,
            next_generation: 1,
            shut_down: false,
            clients: BTreeMap::new(),
            queues: BTreeMap::new(),
            topics: BTreeMap::new(),
            gaps: BTreeMap::new(),
            floor: 0,
        }
    }

    fn subscribers<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = ClientId> + 'a {
        self.clients
            .iter()
            .filter(move |(_, c)| c.state == State::Active && c.topics.contains(topic))
            .map(|(id, _)| *id)
    }

    fn active(&self) -> usize {
        self.clients
            .values()
            .filter(|c| c.state == State::Active)
            .count()
    }

    /// Topics with neither subscribers nor retained events are dropped
    /// (I5); what each had evicted is remembered under its name, in a
    /// memory of at most `max_topics` names whose older half folds into
    /// `floor` when a batch overflows it.
    fn drop_unused(&mut self) {
        let unused: Vec<&'static str> = self
            .topics
            .iter()
            .filter(|(name, t)| t.ring.is_empty() && self.subscribers(name).next().is_none())
            .map(|(name, _)| *name)
            .collect();
        for name in unused {
            if let Some(topic) = self.topics.remove(name) {
                if topic.evicted_newest > self.floor {
                    let gap = self.gaps.entry(name).or_insert(0);
                    *gap = (*gap).max(topic.evicted_newest);
                }
            }
        }
        self.trim_gaps();
    }

    /// The gap memory holds at most `max_topics` names; a batch that
    /// overflows it folds the older half into `floor`.
    fn trim_gaps(&mut self) {
        if self.gaps.len() > self.config.max_topics.max(1) {
            let mut marks: Vec<u64> = self.gaps.values().copied().collect();
            marks.sort_unstable();
            self.floor = self.floor.max(marks[marks.len() / 2]);
            let floor = self.floor;
            self.gaps.retain(|_, mark| *mark > floor);
        }
    }

    /// Creates the named topics where missing, unless that would exceed
    /// `max_topics`.
    fn create_topics(&mut self, names: &[&'static str]) -> Result<(), usize> {
        let missing = names
            .iter()
            .filter(|n| !self.topics.contains_key(*n))
            .count();
        if self.topics.len() + missing > self.config.max_topics {
            return Err(self.config.max_topics);
        }
        for name in names {
            if !self.topics.contains_key(name) {
                let evicted_newest = self.gaps.remove(name).unwrap_or(0).max(self.floor);
                self.topics.insert(
                    name,
                    MTopic {
                        ring: VecDeque::new(),
                        evicted_newest,
                    },
                );
            }
        }
        Ok(())
    }

    fn next_check(&self, id: ClientId) -> Option<u64> {
        let q = &self.queues[&id];
        let now = self.now;
        let hb = self.config.heartbeat_interval.map(|hb| {
            let due = q.last_push + nanos(hb);
            if due > now {
                due
            } else {
                now + nanos(hb)
            }
        });
        let idle = self.config.idle_timeout.map(|t| q.last_flush + nanos(t));
        let stall = self.config.write_stall_timeout.map(|t| {
            let since = match q.stall_since {
                Some(since) if !q.frames.is_empty() => since,
                _ => now,
            };
            since + nanos(t)
        });
        [hb, idle, stall].into_iter().flatten().min()
    }

    fn free(&mut self, id: ClientId) {
        self.clients.remove(&id);
    }

    fn close_active(&mut self, id: ClientId, reason: CloseReason) {
        self.free(id);
        if let Some(q) = self.queues.get_mut(&id) {
            q.close(reason);
        }
        self.drop_unused();
    }

    fn gone(&self, id: ClientId) -> CloseOutcome {
        if id.generation().get() < self.next_generation {
            CloseOutcome::AlreadyClosed
        } else {
            CloseOutcome::Unknown
        }
    }

    fn reserve(&mut self, topics: &[Topic], peer: Option<u8>) -> Result<u64, ReserveError> {
        let mut names = BTreeSet::new();
        for t in topics {
            if *t == Topic::Invalid {
                return Err(ReserveError::InvalidTopic {
                    topic: String::new(),
                    error: TopicError::Empty,
                });
            }
            names.insert(t.name());
        }
        if names.len() > self.config.max_topics_per_client {
            return Err(ReserveError::TooManyTopics {
                limit: self.config.max_topics_per_client,
            });
        }
        if self.shut_down {
            return Err(ReserveError::ShuttingDown);
        }
        if self.clients.len() >= self.config.max_clients {
            return Err(ReserveError::TooManyClients {
                limit: self.config.max_clients,
            });
        }
        if let Some(p) = peer {
            let same = self.clients.values().filter(|c| c.peer == Some(p)).count();
            if same >= self.config.max_clients_per_peer {
                return Err(ReserveError::TooManyClientsForPeer {
                    limit: self.config.max_clients_per_peer,
                });
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        Ok(generation)
    }

    /// Records the client the hub handed out for a successful reserve.
    fn reserved(&mut self, id: ClientId, topics: &[Topic], last: Option<String>, peer: Option<u8>) {
        self.clients.insert(
            id,
            MClient {
                state: State::Reserved,
                topics: topics.iter().map(|t| t.name()).collect(),
                peer,
                last_event_id: last,
                check_at: None,
            },
        );
        self.queues.insert(id, MQueue::new(self.now));
    }

    fn activate(&mut self, id: ClientId) -> Result<ClientId, ActivateError> {
        let client = &self.clients[&id];
        match client.state {
            State::ClosePending(reason) => {
                self.free(id);
                return Err(ActivateError::ClosedBeforeActivation(reason));
            }
            State::Active => unreachable!("a reservation is activated once"),
            State::Reserved => {}
        }
        let names: Vec<&'static str> = client.topics.iter().copied().collect();
        if let Err(limit) = self.create_topics(&names) {
            self.free(id);
            self.queues.get_mut(&id).unwrap().close(CloseReason::Kicked);
            return Err(ActivateError::TooManyTopics { limit });
        }
        let now = self.now;
        let last = self.clients.get_mut(&id).unwrap().last_event_id.take();
        if let Some(last) = last {
            let cut = self.seq;
            let replay = match last.parse::<EventId>() {
                Ok(last) if last.epoch() == EPOCH && last.seq() <= cut => {
                    let topics: Vec<&MTopic> = names.iter().map(|n| &self.topics[n]).collect();
                    if topics.iter().any(|t| t.evicted_newest > last.seq()) {
                        None
                    } else {
                        let mut events: Vec<(u64, Vec<u8>)> = topics
                            .iter()
                            .flat_map(|t| t.ring.iter())
                            .filter(|(seq, _, _)| *seq > last.seq())
                            .map(|(seq, frame, _)| (*seq, frame.clone()))
                            .collect();
                        events.sort_by_key(|(seq, _)| *seq);
                        let q = &self.queues[&id];
                        let room_frames =
                            self.config.queue_max_frames.saturating_sub(q.frames.len());
                        let room_bytes = self.config.queue_max_bytes.saturating_sub(q.bytes);
                        let size: usize = events.iter().map(|(_, f)| f.len()).sum();
                        (events.len() <= room_frames && size <= room_bytes).then_some(events)
                    }
                }
                _ => None,
            };
            let config = self.config.clone();
            let q = self.queues.get_mut(&id).unwrap();
            match replay {
                Some(events) => {
                    for (_, frame) in events {
                        let _ = q.push(Frame::Exact(frame), now, true, &config);
                    }
                }
                None => {
                    let mut reset = format!("event: {}\n", config.reset_event).into_bytes();
                    reset.extend_from_slice(b"data\n\n");
                    let _ = q.push(Frame::Exact(with_id(cut, &reset)), now, true, &config);
                }
            }
        }
        self.clients.get_mut(&id).unwrap().state = State::Active;
        let check = self.next_check(id);
        self.clients.get_mut(&id).unwrap().check_at = check;
        Ok(id)
    }

    fn release(&mut self, id: ClientId) {
        match self.clients[&id].state {
            State::Reserved => {
                self.free(id);
                self.queues
                    .get_mut(&id)
                    .unwrap()
                    .close(CloseReason::ClientGone);
            }
            State::ClosePending(_) => self.free(id),
            State::Active => unreachable!("an active client has no reservation"),
        }
    }

    fn close(&mut self, id: ClientId, reason: CloseReason) -> CloseOutcome {
        let Some(client) = self.clients.get_mut(&id) else {
            return self.gone(id);
        };
        match client.state {
            State::Reserved => {
                client.state = State::ClosePending(reason);
                self.queues.get_mut(&id).unwrap().close(reason);
                CloseOutcome::Deferred
            }
            State::ClosePending(_) => CloseOutcome::AlreadyClosed,
            State::Active => {
                self.close_active(id, reason);
                CloseOutcome::Closed
            }
        }
    }

    fn subscribe(&mut self, id: ClientId, topic: Topic) -> Result<bool, SubscribeError> {
        if topic == Topic::Invalid {
            return Err(SubscribeError::InvalidTopic(TopicError::Empty));
        }
        let name = topic.name();
        let limit = self.config.max_topics_per_client;
        let Some(client) = self.clients.get(&id) else {
            return Err(SubscribeError::UnknownClient);
        };
        // A close-pending client is not live (once a bug: the core looked
        // at the topic set first; see `lifecycle::subscribe_to_a_close_pending_client_is_refused`).
        if let State::ClosePending(_) = client.state {
            return Err(SubscribeError::UnknownClient);
        }
        if client.topics.contains(name) {
            return Ok(false);
        }
        if client.topics.len() >= limit {
            return Err(SubscribeError::TooManyTopicsForClient { limit });
        }
        if client.state == State::Active {
            self.create_topics(&[name])
                .map_err(|limit| SubscribeError::TooManyTopics { limit })?;
        }
        self.clients.get_mut(&id).unwrap().topics.insert(name);
        Ok(true)
    }

    fn unsubscribe(&mut self, id: ClientId, topic: Topic) -> Result<bool, SubscribeError> {
        if topic == Topic::Invalid {
            return Err(SubscribeError::InvalidTopic(TopicError::Empty));
        }
        let Some(client) = self.clients.get_mut(&id) else {
            return Err(SubscribeError::UnknownClient);
        };
        if let State::ClosePending(_) = client.state {
            return Err(SubscribeError::UnknownClient);
        }
        let removed = client.topics.remove(topic.name());
        self.drop_unused();
        Ok(removed)
    }

    fn publish(
        &mut self,
        topic: Topic,
        data: Data,
    ) -> Result<(u64, usize, Vec<ClientId>), PublishError> {
        if topic == Topic::Invalid {
            return Err(PublishError::InvalidTopic(TopicError::Empty));
        }
        if self.shut_down {
            return Err(PublishError::ShutDown);
        }
        let body = body(&data.text());
        let size = body.len() + ID_FIELD_MAX;
        let limit = self.config.max_event_bytes;
        if size > limit {
            return Err(PublishError::Encode(EncodeError::TooLarge { size, limit }));
        }
        let name = topic.name();
        if !self.topics.contains_key(name) && self.topics.len() >= self.config.max_topics {
            // A full table: the subscriber-less topic with the oldest
            // retained event makes room, its events recorded as lost.
            let victim = self
                .topics
                .iter()
                .filter(|(n, t)| !t.ring.is_empty() && self.subscribers(n).next().is_none())
                .min_by_key(|(_, t)| t.ring.front().map(|(seq, _, _)| *seq))
                .map(|(n, _)| *n);
            if let Some(victim) = victim {
                let mut gone = self.topics.remove(victim).unwrap();
                while let Some((seq, _, _)) = gone.ring.pop_front() {
                    gone.evicted_newest = gone.evicted_newest.max(seq);
                }
                if gone.evicted_newest > self.floor {
                    let gap = self.gaps.entry(victim).or_insert(0);
                    *gap = (*gap).max(gone.evicted_newest);
                }
                self.trim_gaps();
            }
        }
        self.create_topics(&[name])
            .map_err(|limit| PublishError::TooManyTopics { limit })?;
        self.seq += 1;
        let seq = self.seq;
        let frame = with_id(seq, &body);
        let now = self.now;
        let config = self.config.clone();
        let subs: Vec<ClientId> = self.subscribers(name).collect();
        let (mut delivered, mut slow) = (0, Vec::new());
        for id in subs {
            let q = self.queues.get_mut(&id).unwrap();
            match q.push(Frame::Exact(frame.clone()), now, false, &config) {
                Push::Queued => delivered += 1,
                Push::Overflowed => slow.push(id),
                Push::Closed(_) => {}
            }
        }
        let t = self.topics.get_mut(name).unwrap();
        t.ring.push_back((seq, frame, now));
        while t.ring.len() > config.replay_capacity {
            let (old, _, _) = t.ring.pop_front().unwrap();
            t.evicted_newest = t.evicted_newest.max(old);
        }
        for &id in &slow {
            let _ = self.close(id, CloseReason::SlowConsumer);
        }
        self.drop_unused();
        Ok((seq, delivered, slow))
    }

    fn send(&mut self, id: ClientId, data: Data) -> Result<(), SendError> {
        let body = body(&data.text());
        let limit = self.config.max_event_bytes;
        if body.len() > limit {
            return Err(SendError::Encode(EncodeError::TooLarge {
                size: body.len(),
                limit,
            }));
        }
        if !self.clients.contains_key(&id) {
            return Err(SendError::UnknownClient);
        }
        let (now, config) = (self.now, self.config.clone());
        match self
            .queues
            .get_mut(&id)
            .unwrap()
            .push(Frame::Exact(body), now, false, &config)
        {
            Push::Queued => Ok(()),
            Push::Closed(reason) => Err(SendError::Closed(reason)),
            Push::Overflowed => {
                let _ = self.close(id, CloseReason::SlowConsumer);
                Err(SendError::SlowConsumer)
            }
        }
    }

    fn flushed(&mut self, id: ClientId, at: u64) -> bool {
        if !self.clients.contains_key(&id) {
            return false;
        }
        self.now = self.now.max(at);
        let now = self.now;
        self.queues.get_mut(&id).unwrap().flushed(now);
        true
    }

    /// `(heartbeats, closed, expired events)`.
    fn tick(&mut self, at: u64) -> (usize, BTreeMap<ClientId, CloseReason>, usize) {
        self.now = self.now.max(at);
        let now = self.now;
        let config = self.config.clone();
        let due: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.state == State::Active && c.check_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        let (mut heartbeats, mut closed) = (0, BTreeMap::new());
        for id in due {
            let q = self.queues.get_mut(&id).unwrap();
            let empty = q.frames.is_empty();
            let stalled = config.write_stall_timeout.is_some_and(|t| {
                q.stall_since
                    .is_some_and(|since| !empty && since + nanos(t) <= now)
            });
            let idle = config
                .idle_timeout
                .is_some_and(|t| q.last_flush + nanos(t) <= now);
            let reason = if stalled {
                Some(CloseReason::WriteStalled)
            } else if idle {
                Some(CloseReason::IdleTimeout)
            } else if let Some(hb) = config.heartbeat_interval {
                if q.last_push + nanos(hb) <= now && empty {
                    match q.push(Frame::Exact(b":\n\n".to_vec()), now, false, &config) {
                        Push::Queued => {
                            heartbeats += 1;
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
                    self.close_active(id, reason);
                    closed.insert(id, reason);
                }
                None => {
                    let check = self.next_check(id);
                    self.clients.get_mut(&id).unwrap().check_at = check;
                }
            }
        }
        let mut expired = 0;
        if let Some(age) = config.replay_max_age {
            for topic in self.topics.values_mut() {
                while topic
                    .ring
                    .front()
                    .is_some_and(|(_, _, at)| at + nanos(age) <= now)
                {
                    let (seq, _, _) = topic.ring.pop_front().unwrap();
                    topic.evicted_newest = topic.evicted_newest.max(seq);
                    expired += 1;
                }
            }
        }
        self.drop_unused();
        (heartbeats, closed, expired)
    }

    fn shutdown(&mut self, data: Option<Data>) -> ShutdownReport {
        let body = data.map_or_else(|| b"\n".to_vec(), |d| body(&d.text()));
        self.shut_down = true;
        let (now, config) = (self.now, self.config.clone());
        let mut report = ShutdownReport::default();
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            match self.clients[&id].state {
                State::Reserved => {
                    self.clients.get_mut(&id).unwrap().state =
                        State::ClosePending(CloseReason::Shutdown);
                    self.queues
                        .get_mut(&id)
                        .unwrap()
                        .close(CloseReason::Shutdown);
                    report.pending += 1;
                }
                State::ClosePending(_) => {}
                State::Active => {
                    let q = self.queues.get_mut(&id).unwrap();
                    let _ = q.push(Frame::Shutdown(body.clone()), now, true, &config);
                    self.close_active(id, CloseReason::Shutdown);
                    report.closed += 1;
                }
            }
        }
        report
    }

    /// What a drain of up to `max` frames yields: the frames, and the
    /// `Drain` value.
    fn drain(&mut self, id: ClientId, max: usize) -> (Vec<Frame>, Drain) {
        let q = self.queues.get_mut(&id).unwrap();
        let n = q.frames.len().min(max.max(1));
        if n == 0 {
            return (Vec::new(), q.closed.map_or(Drain::Empty, Drain::Closed));
        }
        let frames: Vec<Frame> = q.frames.drain(..n).collect();
        q.bytes -= frames.iter().map(Frame::len).sum::<usize>();
        (frames, Drain::Frames(n))
    }
}

// ---------------------------------------------------------------------------
// The harness: one hub, one model, every step compared
// ---------------------------------------------------------------------------

struct Harness {
    hub: Hub,
    model: Model,
    start: Instant,
    /// Every id handed out, in order (ops refer to them by index).
    issued: Vec<ClientId>,
    reservations: BTreeMap<ClientId, Reservation>,
    streams: BTreeMap<ClientId, ClientStream>,
    /// The ids each client has received so far, in order (I7).
    received: BTreeMap<ClientId, Vec<u64>>,
    /// `(seq, topic)` of every publish, the ground truth for I8.
    published: Vec<(u64, &'static str)>,
    /// The last frame each stream yielded.
    last_frames: BTreeMap<ClientId, String>,
}

impl Harness {
    fn new(config: HubConfig) -> Self {
        let start = Instant::now();
        Self {
            hub: Hub::new(config.clone(), start),
            model: Model::new(config),
            start,
            issued: Vec::new(),
            reservations: BTreeMap::new(),
            streams: BTreeMap::new(),
            received: BTreeMap::new(),
            published: Vec::new(),
            last_frames: BTreeMap::new(),
        }
    }

    fn resolve(&self, who: Who) -> ClientId {
        match who {
            Who::Issued(n) if !self.issued.is_empty() => {
                self.issued[n as usize % self.issued.len()]
            }
            Who::Issued(n) | Who::Unknown(n) => {
                // A generation no hub in these tests reaches: never issued.
                format!("{}.{}", n % 8, 1_000_000 + u64::from(n))
                    .parse()
                    .unwrap()
            }
        }
    }

    fn nth_reservation(&self, n: u8) -> Option<ClientId> {
        let len = self.reservations.len();
        (len > 0).then(|| *self.reservations.keys().nth(n as usize % len).unwrap())
    }

    fn at(&self, nanos: u64) -> Instant {
        self.start + Duration::from_nanos(nanos)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Reserve { topics, last, peer } => {
                let last = last.map(|l| match l {
                    LastId::Recent(back) => {
                        format!("{EPOCH}-{}", self.model.seq.saturating_sub(u64::from(back)))
                    }
                    LastId::Future => format!("{EPOCH}-{}", self.model.seq + 5),
                    LastId::Foreign => format!("{}-{}", EPOCH + 1, self.model.seq),
                    LastId::Garbage => "garbage".to_owned(),
                });
                let mut opts = ReserveOptions::new().topics(topics.iter().map(|t| t.name()));
                if let Some(last) = &last {
                    opts = opts.last_event_id(last.clone());
                }
                if let Some(p) = peer {
                    opts = opts.peer(format!("peer-{p}"));
                }
                let expected = self.model.reserve(topics, *peer);
                match (self.hub.reserve(opts), expected) {
                    (Ok(reservation), Ok(generation)) => {
                        let id = reservation.id();
                        prop_assert_eq!(id.generation().get(), generation, "I4: fresh generation");
                        prop_assert!(!self.model.clients.contains_key(&id), "I4: slot in use");
                        self.model.reserved(id, topics, last, *peer);
                        self.issued.push(id);
                        self.streams.insert(id, reservation.stream());
                        self.reservations.insert(id, reservation);
                    }
                    (Err(got), Err(want)) => prop_assert_eq!(got, want),
                    (got, want) => {
                        return Err(TestCaseError::fail(format!(
                            "reserve: hub {:?}, model {want:?}",
                            got.map(|r| r.id())
                        )))
                    }
                }
            }
            Op::Activate(n) => {
                if let Some(id) = self.nth_reservation(*n) {
                    let reservation = self.reservations.remove(&id).unwrap();
                    prop_assert_eq!(reservation.activate(), self.model.activate(id), "activate");
                }
            }
            Op::DropReservation(n) => {
                if let Some(id) = self.nth_reservation(*n) {
                    drop(self.reservations.remove(&id));
                    self.model.release(id);
                }
            }
            Op::Close(who, reason) => {
                let id = self.resolve(*who);
                prop_assert_eq!(
                    self.hub.close(id, *reason),
                    self.model.close(id, *reason),
                    "I6: close outcome"
                );
            }
            Op::Subscribe(who, topic) => {
                let id = self.resolve(*who);
                prop_assert_eq!(
                    self.hub.subscribe(id, topic.name()),
                    self.model.subscribe(id, *topic),
                    "subscribe"
                );
            }
            Op::Unsubscribe(who, topic) => {
                let id = self.resolve(*who);
                prop_assert_eq!(
                    self.hub.unsubscribe(id, topic.name()),
                    self.model.unsubscribe(id, *topic),
                    "unsubscribe"
                );
            }
            Op::Publish(topic, data) => {
                let got = self.hub.publish(topic.name(), &Event::new(data.text()));
                let want = self.model.publish(*topic, *data);
                match (got, want) {
                    (Ok(report), Ok((seq, delivered, slow))) => {
                        let PublishReport {
                            id,
                            delivered: got_delivered,
                            slow_consumers,
                        } = report;
                        prop_assert_eq!(id, EventId::new(EPOCH, seq), "I7: ids increase");
                        self.published.push((seq, topic.name()));
                        prop_assert_eq!(got_delivered, delivered, "delivered");
                        let got_slow: BTreeSet<_> = slow_consumers.into_iter().collect();
                        let want_slow: BTreeSet<_> = slow.into_iter().collect();
                        prop_assert_eq!(got_slow, want_slow, "I7: slow consumers");
                    }
                    (Err(got), Err(want)) => prop_assert_eq!(got, want),
                    (got, want) => {
                        return Err(TestCaseError::fail(format!(
                            "publish: hub {got:?}, model {want:?}"
                        )))
                    }
                }
            }
            Op::Send(who, data) => {
                let id = self.resolve(*who);
                prop_assert_eq!(
                    self.hub.send(id, &Event::new(data.text())),
                    self.model.send(id, *data),
                    "I4: send"
                );
            }
            Op::Tick(ms) => {
                let at = self.model.now + u64::from(*ms) * MS;
                let report = self.hub.tick(self.at(at));
                let (heartbeats, closed, expired) = self.model.tick(at);
                prop_assert_eq!(report.heartbeats, heartbeats, "heartbeats");
                let got: BTreeMap<_, _> = report.closed.iter().copied().collect();
                prop_assert_eq!(
                    got.len(),
                    report.closed.len(),
                    "I6: closed twice in one tick"
                );
                prop_assert_eq!(got, closed, "timeouts");
                prop_assert_eq!(report.expired_events, expired, "expired events");
            }
            Op::Flushed(who, ms) => {
                let id = self.resolve(*who);
                let at = self.model.now + u64::from(*ms) * MS;
                prop_assert_eq!(
                    self.hub.flushed(id, self.at(at)),
                    self.model.flushed(id, at),
                    "flushed"
                );
            }
            Op::Drain(who, max) => {
                let id = self.resolve(*who);
                if self.streams.contains_key(&id) {
                    self.drain(id, usize::from(*max))?;
                }
            }
            Op::Shutdown(data) => {
                let event = data.map(|d| Event::new(d.text()));
                let report = self.hub.shutdown(event.as_ref()).unwrap();
                prop_assert_eq!(report, self.model.shutdown(*data), "shutdown");
            }
            Op::Reconnect(who) => self.reconnect(self.resolve(*who))?,
        }
        Ok(())
    }

    /// Op::Reconnect: the old client reads what it has, goes away, and a
    /// new one resumes from the last id it saw. If the hub replays rather
    /// than resets, the replay is exactly the events published on the
    /// client's topics after that id: all of them, in id order (I8).
    fn reconnect(&mut self, id: ClientId) -> Result<(), TestCaseError> {
        let Some(client) = self.model.clients.get(&id) else {
            return Ok(());
        };
        if client.state != State::Active || !self.streams.contains_key(&id) {
            return Ok(());
        }
        let topics: Vec<&'static str> = client.topics.iter().copied().collect();
        let peer = client.peer;
        while let Drain::Frames(_) = self.drain(id, 64)? {}
        prop_assert_eq!(
            self.hub.close(id, CloseReason::ClientGone),
            self.model.close(id, CloseReason::ClientGone),
            "close before reconnect"
        );
        let last = self.received.get(&id).and_then(|ids| ids.last().copied());
        let mut opts = ReserveOptions::new().topics(topics.iter().copied());
        let last_text = last.map(|seq| EventId::new(EPOCH, seq).to_string());
        if let Some(text) = &last_text {
            opts = opts.last_event_id(text.clone());
        }
        if let Some(p) = peer {
            opts = opts.peer(format!("peer-{p}"));
        }
        let as_topics: Vec<Topic> = topics
            .iter()
            .map(|name| match *name {
                "a" => Topic::A,
                "b" => Topic::B,
                "c" => Topic::C,
                _ => Topic::D,
            })
            .collect();
        let expected = self.model.reserve(&as_topics, peer);
        let reservation = match (self.hub.reserve(opts), expected) {
            (Ok(reservation), Ok(_)) => reservation,
            (Err(got), Err(want)) => {
                prop_assert_eq!(got, want);
                return Ok(());
            }
            (got, want) => {
                return Err(TestCaseError::fail(format!(
                    "reconnect reserve: hub {:?}, model {want:?}",
                    got.map(|r| r.id())
                )))
            }
        };
        let new = reservation.id();
        self.model.reserved(new, &as_topics, last_text, peer);
        self.issued.push(new);
        self.streams.insert(new, reservation.stream());
        let activated = reservation.activate();
        prop_assert_eq!(activated, self.model.activate(new), "reconnect activate");
        if activated.is_err() {
            return Ok(());
        }
        while let Drain::Frames(_) = self.drain(new, 64)? {}
        let Some(last) = last else { return Ok(()) };
        let got = self.received.get(&new).cloned().unwrap_or_default();
        let reset = self.model.config.reset_event.clone();
        let was_reset = got.len() == 1 && self.last_frame_was(new, &reset);
        if !was_reset {
            let missed: Vec<u64> = self
                .published
                .iter()
                .filter(|(seq, topic)| *seq > last && topics.contains(topic))
                .map(|(seq, _)| *seq)
                .collect();
            prop_assert_eq!(
                got,
                missed,
                "I8: the replay after {} is what was missed",
                last
            );
        }
        Ok(())
    }

    fn last_frame_was(&self, id: ClientId, event: &str) -> bool {
        self.last_frames
            .get(&id)
            .is_some_and(|f| f.contains(&format!("event: {event}\n")))
    }

    fn drain(&mut self, id: ClientId, max: usize) -> Result<Drain, TestCaseError> {
        let stream = &self.streams[&id];
        let mut got = Vec::new();
        let drained = stream.drain(&mut got, max);
        let (want, want_drain) = self.model.drain(id, max);
        prop_assert_eq!(drained, want_drain, "drain of {}", id);
        for frame in &got {
            let text = String::from_utf8_lossy(frame).into_owned();
            if let Some(seq) = text
                .strip_prefix("id: ")
                .and_then(|rest| rest.split('\n').next())
                .and_then(|id| id.parse::<EventId>().ok())
                .map(EventId::seq)
            {
                let ids = self.received.entry(id).or_default();
                if let Some(&prev) = ids.last() {
                    prop_assert!(
                        prev < seq,
                        "I7: client {} got id {} after {}",
                        id,
                        seq,
                        prev
                    );
                }
                ids.push(seq);
            }
            self.last_frames.insert(id, text);
        }
        let window = self.model.config.shutdown_retry_window;
        for (got, want) in got.iter().zip(&want) {
            prop_assert!(
                want.matches(got, window),
                "I7/I8: client {} got {:?}, expected {:?}",
                id,
                String::from_utf8_lossy(got),
                want
            );
        }
        Ok(drained)
    }

    /// After every step: the structural invariants, and the model's view of
    /// clients and topics.
    fn check(&self) -> Result<(), TestCaseError> {
        if let Err(violation) = self.hub.check_invariants() {
            return Err(TestCaseError::fail(violation.to_string()));
        }
        let model = &self.model;
        prop_assert_eq!(self.hub.len(), model.clients.len(), "I5: len");
        prop_assert_eq!(self.hub.topic_count(), model.topics.len(), "I5: topics");
        let deadlines = model
            .clients
            .values()
            .filter(|c| c.state == State::Active && c.check_at.is_some())
            .count();
        prop_assert_eq!(self.hub.deadline_count(), deadlines, "I5: deadlines");
        for name in ["a", "b", "c", "d"] {
            prop_assert_eq!(
                self.hub.subscriber_count(name),
                model.subscribers(name).count(),
                "I2: subscribers of {}",
                name
            );
        }
        for (id, client) in &model.clients {
            prop_assert_eq!(self.hub.is_active(*id), client.state == State::Active, "I1");
            let topics = match client.state {
                State::ClosePending(_) => None,
                _ => Some(
                    client
                        .topics
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>(),
                ),
            };
            prop_assert_eq!(self.hub.client_topics(*id), topics, "I2: topics of {}", id);
        }
        let metrics = self.hub.metrics();
        prop_assert_eq!(metrics.clients_active, model.active() as u64, "metrics");
        Ok(())
    }

    /// Ends a case: drains every stream, closes every client, and checks
    /// that only topics with retained events are left (I5).
    fn finish(mut self) -> Result<(), TestCaseError> {
        for id in self.streams.keys().copied().collect::<Vec<_>>() {
            while let Drain::Frames(_) = self.drain(id, 64)? {}
        }
        for id in self.reservations.keys().copied().collect::<Vec<_>>() {
            drop(self.reservations.remove(&id));
            self.model.release(id);
        }
        for id in self.model.clients.keys().copied().collect::<Vec<_>>() {
            prop_assert_eq!(
                self.hub.close(id, CloseReason::Kicked),
                self.model.close(id, CloseReason::Kicked)
            );
        }
        self.check()?;
        prop_assert_eq!(self.hub.len(), 0, "I5: len() == 0 once all are closed");
        prop_assert_eq!(self.hub.deadline_count(), 0, "I5: no deadline left");
        for id in self.streams.keys().copied().collect::<Vec<_>>() {
            let end = self.drain(id, 64)?;
            prop_assert!(matches!(end, Drain::Closed(_)), "I1: {} ends closed", id);
        }
        Ok(())
    }
}

fn run(config: HubConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(config);
    for op in ops {
        harness.apply(op)?;
        harness.check()?;
    }
    harness.finish()
}

/// Tight limits and every timeout, so that slow consumers, limits,
/// heartbeats, idle and stall timeouts and replay expiry all happen.
fn timed_config() -> HubConfig {
    HubConfig {
        epoch: EPOCH,
        max_clients: 5,
        max_topics_per_client: 2,
        max_clients_per_peer: 2,
        max_topics: 3,
        queue_max_frames: 4,
        queue_max_bytes: 600,
        max_event_bytes: 256,
        replay_capacity: 3,
        replay_max_age: Some(Duration::from_millis(100)),
        heartbeat_interval: Some(Duration::from_millis(20)),
        heartbeat_event: None,
        idle_timeout: Some(Duration::from_millis(60)),
        write_stall_timeout: Some(Duration::from_millis(40)),
        reset_event: "reset".to_owned(),
        shutdown_retry_window: (Duration::from_secs(1), Duration::from_secs(10)),
        timer_resolution: Duration::from_nanos(1),
        ..HubConfig::default()
    }
}

/// No clock at all, roomier queues and rings: long replay and reset
/// histories across reconnects.
fn replay_config() -> HubConfig {
    HubConfig {
        max_clients: 6,
        max_topics_per_client: 3,
        max_topics: 4,
        queue_max_frames: 8,
        queue_max_bytes: 1200,
        replay_capacity: 4,
        replay_max_age: None,
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        ..timed_config()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6_000, ..ProptestConfig::default() })]

    /// Every operation, with timeouts and tight limits.
    #[test]
    fn hub_matches_the_reference_model(ops in proptest::collection::vec(op(true), 1..50)) {
        run(timed_config(), &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    /// Reconnects with every kind of `Last-Event-ID` against long histories
    /// (I8), without a clock.
    #[test]
    fn replay_matches_the_reference_model(ops in proptest::collection::vec(op(false), 1..60)) {
        run(replay_config(), &ops)?;
    }
}
