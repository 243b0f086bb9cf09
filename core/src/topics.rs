//! Topics: validated names, the subscriber index of each topic, and its
//! replay ring, under one lock per topic.
//!
//! A topic's subscriber list is a dense `Vec` (fan-out walks contiguous
//! memory) with a position map for O(1) removal.
//!
//! Invariants:
//! - **I2** (with the registry): a client is in `subs` of topic T exactly
//!   when T is in that client's topic set;
//! - a topic whose `dead` flag is set is in no map and takes no subscriber
//!   or event; publishers that find it dead look the name up again;
//! - **I5**: a topic is kept while it has subscribers or retained events,
//!   and dropped from the map once it has neither;
//! - **P1** (presence counters): `last_seq` is the newest sequence number
//!   published on this topic in its life (0: none), so it is at least every
//!   retained event's and at most the hub's; `rate` counts those publishes
//!   per second of their push stamp. Both change only in `publish`, under
//!   the topic lock it already holds.

use crate::error::TopicError;
use crate::id::IdHashBuilder;
use crate::queue::Queue;
use crate::replay::ReplayRing;
use crate::sync::{Arc, Mutex, SharedStr};
use crate::ClientId;
use std::collections::HashMap;

/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// Checks a topic name: 1..=256 bytes of UTF-8 with no control characters.
///
/// # Errors
///
/// [`TopicError`] says which rule the name breaks.
///
/// # Examples
///
/// ```
/// use ssehub_core::{validate_topic, TopicError};
///
/// assert!(validate_topic("prices/eur-usd").is_ok());
/// assert_eq!(validate_topic(""), Err(TopicError::Empty));
/// assert_eq!(validate_topic("a\nb"), Err(TopicError::ControlCharacter { at: 1 }));
/// ```
pub fn validate_topic(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: name.len() });
    }
    if name.is_ascii() {
        // The common case, without decoding: C0 controls and DEL.
        return match name.bytes().position(|b| b < 0x20 || b == 0x7f) {
            Some(at) => Err(TopicError::ControlCharacter { at }),
            None => Ok(()),
        };
    }
    match name.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, _)) => Err(TopicError::ControlCharacter { at }),
        None => Ok(()),
    }
}

pub(crate) struct Topic {
    pub(crate) name: SharedStr,
    /// The peer tag of the client whose subscription created the topic,
    /// charged against `max_created_topics_per_peer` while it exists.
    pub(crate) creator: Option<SharedStr>,
    pub(crate) state: Mutex<TopicState>,
}

pub(crate) struct Subscriber {
    pub(crate) id: ClientId,
    pub(crate) queue: Arc<Queue>,
}

pub(crate) struct TopicState {
    pub(crate) subs: Vec<Subscriber>,
    pos: HashMap<ClientId, usize, IdHashBuilder>,
    pub(crate) ring: ReplayRing,
    /// The expiry bucket this topic is filed under, while its ring is not
    /// empty and events expire by age.
    pub(crate) expiry: Option<u64>,
    pub(crate) dead: bool,
    /// The newest sequence number published on this topic (0: none yet).
    pub(crate) last_seq: u64,
    /// Publishes per second over the last minute; allocated on the first
    /// publish, so topics that only have subscribers do not pay for it.
    pub(crate) rate: Option<Box<RateWindow>>,
    /// Join/leave events' rate limit and coalescing buffer, on a topic
    /// with presence events, from its first change.
    pub(crate) feed: Option<Box<crate::presence_feed::PresenceFeed>>,
}

/// Nanoseconds in a second: the width of one [`RateWindow`] bucket.
pub(crate) const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Events per second of clock time over the last [`RateWindow::SECONDS`]
/// seconds: a ring of one-second buckets, indexed by `second % SECONDS`.
///
/// Invariant: the buckets hold the seconds `newest - SECONDS + 1 ..=
/// newest` (older buckets are zeroed as `newest` moves forward), so a read
/// sums only buckets whose second is inside both that span and the
/// reader's window. Recording and reading are O(1) amortized and O(SECONDS)
/// at worst; the ring is 248 bytes.
#[derive(Debug)]
pub(crate) struct RateWindow {
    counts: [u32; Self::SECONDS as usize],
    newest: u64,
}

impl RateWindow {
    /// The window: one minute.
    pub(crate) const SECONDS: u64 = 60;

    fn new(second: u64) -> Self {
        Self {
            counts: [0; Self::SECONDS as usize],
            newest: second,
        }
    }

    fn bucket(second: u64) -> usize {
        (second % Self::SECONDS) as usize
    }

    /// Counts one event stamped in `second` (clock seconds). An event older
    /// than the span the ring holds (a publish that read the clock long
    /// before it got the lock) is not counted.
    pub(crate) fn record(&mut self, second: u64) {
        if second > self.newest {
            if second - self.newest >= Self::SECONDS {
                self.counts = [0; Self::SECONDS as usize];
            } else {
                for s in self.newest + 1..=second {
                    self.counts[Self::bucket(s)] = 0;
                }
            }
            self.newest = second;
        } else if self.newest - second >= Self::SECONDS {
            return;
        }
        let count = &mut self.counts[Self::bucket(second)];
        *count = count.saturating_add(1);
    }

    /// Events stamped in the window that ends with `second`: that second
    /// (so far) and the `SECONDS - 1` before it.
    pub(crate) fn count(&self, second: u64) -> u64 {
        let low = second
            .saturating_sub(Self::SECONDS - 1)
            .max(self.newest.saturating_sub(Self::SECONDS - 1));
        let high = second.min(self.newest);
        (low..=high)
            .map(|s| u64::from(self.counts[Self::bucket(s)]))
            .sum()
    }
}

impl Topic {
    pub(crate) fn new(
        name: SharedStr,
        capacity: usize,
        evicted_newest: u64,
        creator: Option<SharedStr>,
    ) -> Self {
        Self {
            name,
            creator,
            state: Mutex::new(TopicState {
                subs: Vec::new(),
                pos: HashMap::default(),
                ring: ReplayRing::new(capacity, evicted_newest),
                expiry: None,
                dead: false,
                last_seq: 0,
                rate: None,
                feed: None,
            }),
        }
    }
}

impl TopicState {
    /// Adds a subscriber; `false` if it was already there.
    pub(crate) fn subscribe(&mut self, id: ClientId, queue: Arc<Queue>) -> bool {
        if self.pos.contains_key(&id) {
            return false;
        }
        self.pos.insert(id, self.subs.len());
        self.subs.push(Subscriber { id, queue });
        true
    }

    /// Removes a subscriber; `false` if it was not there.
    pub(crate) fn unsubscribe(&mut self, id: ClientId) -> bool {
        let Some(at) = self.pos.remove(&id) else {
            return false;
        };
        self.subs.swap_remove(at);
        if let Some(moved) = self.subs.get(at) {
            self.pos.insert(moved.id, at);
        }
        true
    }

    pub(crate) fn contains(&self, id: ClientId) -> bool {
        self.pos.contains_key(&id)
    }

    /// Updates the presence counters (P1) for an event published on this
    /// topic with sequence number `seq`, pushed at clock time `now`.
    pub(crate) fn record_publish(&mut self, seq: u64, now: u64) {
        self.last_seq = self.last_seq.max(seq);
        let second = now / NANOS_PER_SECOND;
        self.rate
            .get_or_insert_with(|| Box::new(RateWindow::new(second)))
            .record(second);
    }

    /// Events published on this topic in the minute that ends with clock
    /// time `now` (whole seconds; see [`RateWindow`]).
    pub(crate) fn events_last_minute(&self, now: u64) -> u64 {
        self.rate
            .as_ref()
            .map_or(0, |rate| rate.count(now / NANOS_PER_SECOND))
    }

    /// Neither subscribers nor retained events: the topic may be dropped.
    pub(crate) fn is_unused(&self) -> bool {
        self.subs.is_empty() && self.ring.is_empty()
    }
}

/// The name → topic map, and what dropped topics had lost.
///
/// Gap memory (I8): a topic dropped after evicting events leaves its name
/// and the newest sequence number it evicted in `gaps`; if the name comes
/// back, its new ring starts from that number, so a client whose last id
/// predates the lost events is reset instead of silently replayed past
/// them. Only that name is affected: churn on other topics never resets
/// anyone. The memory is bounded (`bound` names); when full, the older
/// half is forgotten by folding it into `floor`, which every new topic
/// starts from. Forgetting can only cause a reset, never a skip.
pub(crate) struct TopicMap {
    pub(crate) map: HashMap<SharedStr, Arc<Topic>>,
    gaps: HashMap<SharedStr, u64>,
    floor: u64,
    bound: usize,
}

impl TopicMap {
    /// An empty map that remembers the gaps of up to `bound` dropped names.
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            map: HashMap::new(),
            gaps: HashMap::new(),
            floor: 0,
            bound: bound.max(1),
        }
    }

    /// Creates the topic `name` (which must be missing), its ring starting
    /// from whatever a dropped topic of that name had evicted.
    pub(crate) fn create(
        &mut self,
        name: &SharedStr,
        capacity: usize,
        creator: Option<SharedStr>,
    ) -> Arc<Topic> {
        let evicted = self.gaps.remove(name).unwrap_or(0).max(self.floor);
        let topic = Arc::new(Topic::new(
            SharedStr::clone(name),
            capacity,
            evicted,
            creator,
        ));
        self.map.insert(SharedStr::clone(name), Arc::clone(&topic));
        topic
    }

    /// Removes a dead topic and remembers the newest sequence number it had
    /// evicted.
    pub(crate) fn retire(&mut self, topic: &Arc<Topic>, evicted: u64) {
        if self
            .map
            .get(&topic.name)
            .is_some_and(|t| Arc::ptr_eq(t, topic))
        {
            self.map.remove(&topic.name);
        }
        if evicted <= self.floor {
            return;
        }
        let gap = self.gaps.entry(SharedStr::clone(&topic.name)).or_insert(0);
        *gap = (*gap).max(evicted);
    }

    /// Records that the events of `name` (which is not in the map) up to
    /// `through` are missing here; call `trim` after.
    pub(crate) fn mark_lost(&mut self, name: &SharedStr, through: u64) {
        if through <= self.floor {
            return;
        }
        let gap = self.gaps.entry(SharedStr::clone(name)).or_insert(0);
        *gap = (*gap).max(through);
    }

    /// Every topic created from now on starts past `through`.
    pub(crate) fn raise_floor(&mut self, through: u64) {
        if through > self.floor {
            self.floor = through;
            self.gaps.retain(|_, mark| *mark > through);
        }
    }

    /// Forgets every gap and starts the floor at `floor`: for a new epoch.
    pub(crate) fn restart(&mut self, floor: u64) {
        self.gaps.clear();
        self.floor = floor;
    }

    /// Keeps the gap memory within its bound, after a batch of `retire`s:
    /// folds the older half into `floor` when it is over (amortized O(1)
    /// per retired topic). Done per batch, not per topic, so the result
    /// does not depend on the order a batch retires its topics in.
    pub(crate) fn trim(&mut self) {
        if self.gaps.len() <= self.bound {
            return;
        }
        let mut marks: Vec<u64> = self.gaps.values().copied().collect();
        let middle = marks.len() / 2;
        let (_, median, _) = marks.select_nth_unstable(middle);
        self.floor = self.floor.max(*median);
        let floor = self.floor;
        self.gaps.retain(|_, mark| *mark > floor);
    }

    /// The gap recorded for a dropped name (for tests of the memory).
    #[cfg(test)]
    fn gap(&self, name: &str) -> u64 {
        self.gaps.get(name).copied().unwrap_or(0).max(self.floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_validated() {
        assert!(validate_topic("a").is_ok());
        assert!(validate_topic(&"x".repeat(256)).is_ok());
        assert_eq!(
            validate_topic(&"x".repeat(257)),
            Err(TopicError::TooLong { len: 257 })
        );
        assert_eq!(
            validate_topic("é\u{7f}"),
            Err(TopicError::ControlCharacter { at: 2 })
        );
        assert!(validate_topic("ünïcødé/✓").is_ok());
        // Space is the first byte after the C0 controls: allowed.
        assert!(validate_topic("a b").is_ok());
        assert_eq!(
            validate_topic("a\u{1f}b"),
            Err(TopicError::ControlCharacter { at: 1 })
        );
    }

    fn retire_with(map: &mut TopicMap, name: &str, evicted: u64) {
        let topic = map.create(&SharedStr::from(name), 4, None);
        topic.state.lock().dead = true;
        map.retire(&topic, evicted);
        map.trim();
    }

    #[test]
    fn the_rate_window_counts_the_last_sixty_seconds() {
        let mut rate = RateWindow::new(0);
        rate.record(0);
        rate.record(0);
        rate.record(30);
        assert_eq!(rate.count(0), 2);
        assert_eq!(rate.count(59), 3);
        assert_eq!(rate.count(60), 1, "second 0 left the window");
        assert_eq!(rate.count(89), 1);
        assert_eq!(rate.count(90), 0);
        // A reader behind the newest event sees only its own window.
        assert_eq!(rate.count(10), 2);
        // Moving forward zeroes what the ring reuses.
        rate.record(61);
        assert_eq!(rate.count(61), 2);
        rate.record(200);
        assert_eq!(rate.count(200), 1);
        // Too old to be in the ring: not counted, not wrapped onto a
        // newer bucket.
        rate.record(100);
        assert_eq!(rate.count(200), 1);
        rate.record(u64::MAX);
        assert_eq!(rate.count(u64::MAX), 1);
    }

    #[test]
    fn a_reader_behind_the_newest_second_does_not_see_it() {
        // The newest event (second 100) sits in bucket 40; a reader at
        // second 95 sums seconds 41..=95, which must stop short of it.
        let mut rate = RateWindow::new(100);
        rate.record(100);
        assert_eq!(rate.count(95), 0);
        assert_eq!(rate.count(100), 1);
        rate.record(45);
        assert_eq!(rate.count(95), 1, "second 45 is in 41..=95");
        assert_eq!(rate.count(104), 2);
        assert_eq!(rate.count(105), 1, "second 45 left the window");
    }

    #[test]
    fn a_full_gap_memory_forgets_exactly_its_older_half() {
        let mut map = TopicMap::new(4);
        for n in 1..=4u64 {
            retire_with(&mut map, &format!("t{n}"), n);
        }
        assert_eq!(map.gaps.len(), 4, "at the bound, nothing is forgotten");
        assert_eq!(map.floor, 0);
        retire_with(&mut map, "t5", 5);
        // Five marks 1..=5: the median, 3, becomes the floor, and only the
        // marks above it are still remembered by name.
        assert_eq!(map.floor, 3);
        let mut kept: Vec<u64> = map.gaps.values().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, [4, 5]);
        assert_eq!(map.gap("t1"), 3, "forgotten names reset from the floor");
        assert_eq!(map.gap("t4"), 4);
        // A loss at or below the floor is covered by it: not remembered.
        retire_with(&mut map, "t0", 2);
        assert_eq!(map.gaps.len(), 2);
    }

    #[test]
    fn raising_the_floor_keeps_the_gaps_above_it() {
        let mut map = TopicMap::new(8);
        retire_with(&mut map, "low", 4);
        retire_with(&mut map, "even", 6);
        retire_with(&mut map, "high", 10);
        map.raise_floor(6);
        assert_eq!(map.gap("high"), 10, "a loss above the floor is kept");
        assert_eq!(map.gap("low"), 6);
        assert_eq!(map.gap("fresh"), 6);
        assert_eq!(map.gaps.len(), 1, "marks the floor covers are dropped");
        map.raise_floor(5);
        assert_eq!(map.gap("fresh"), 6, "the floor never moves down");
    }

    #[test]
    fn a_restart_forgets_every_gap_and_the_old_floor() {
        let mut map = TopicMap::new(8);
        retire_with(&mut map, "old", 9);
        map.raise_floor(7);
        map.restart(2);
        assert_eq!(map.gap("old"), 2);
        assert_eq!(map.gap("fresh"), 2);
    }

    #[test]
    fn gap_memory_is_per_name() {
        let mut map = TopicMap::new(8);
        retire_with(&mut map, "other", 9);
        assert_eq!(map.gap("other"), 9);
        assert_eq!(map.gap("news"), 0, "another name's loss must not leak");
        let news = map.create(&SharedStr::from("news"), 4, None);
        assert!(!news.state.lock().ring.has_gap_after(1));
        let other = map.create(&SharedStr::from("other"), 4, None);
        assert!(other.state.lock().ring.has_gap_after(8));
        assert!(!other.state.lock().ring.has_gap_after(9));
    }

    #[test]
    fn gap_memory_stays_bounded_and_only_ever_errs_towards_reset() {
        let mut map = TopicMap::new(4);
        for n in 1..=100u64 {
            retire_with(&mut map, &format!("t{n}"), n);
            assert!(map.gaps.len() <= 4);
        }
        // Every name still reports a gap at least as new as its own loss.
        for n in 1..=100u64 {
            assert!(map.gap(&format!("t{n}")) >= n, "t{n} forgot its gap");
        }
        // And a name never dropped is reset only below the floor.
        assert!(map.gap("fresh") < 100);
    }
}
