//! Presence: who is subscribed to what, in numbers, without stalling
//! publishing.
//!
//! [`Hub::topics_snapshot`] lists topics (subscribers, retained events,
//! last event id, events in the last minute), sorted and paginated;
//! [`Hub::topic_presence`] describes one topic and, on request, a page of
//! its subscribers' ids.
//!
//! # How a snapshot is taken
//!
//! 1. Under the topic map's **read** lock, only the `Arc<Topic>` handles are
//!    cloned (one pointer copy per topic), and the lock is released.
//! 2. Each topic's lock is then taken **alone and briefly**, one topic at a
//!    time, to copy a few counters: O(1) per topic (O(60) for the rate
//!    window at worst). A topic found `dead` (dropped since step 1) is left
//!    out.
//! 3. Filtering by cursor, sorting and cutting the page happen on the copy,
//!    with no lock held.
//!
//! No registry shard and no sequencer are taken, so a snapshot never waits
//! for, nor holds up, a lifecycle operation, and a publish waits for it at
//! most for one topic's counter copy (or, in step 1, for a pointer copy
//! per topic while a topic is being created). The lock order (registry →
//! sequencer → map → topic → queue) is kept trivially: a snapshot holds at
//! most one lock at any time.
//!
//! A client page ([`Hub::topic_presence`] with a [`ClientPage`]) copies the
//! ids after the cursor under that one topic's lock: O(subscribers), the
//! same walk a publish to that topic makes, at a fraction of its cost per
//! subscriber (an id copy against a queue push).
//!
//! # Consistency
//!
//! Each topic's figures are consistent with one another: they are read
//! under its lock at one instant. The list as a whole is **not** a
//! global atomic snapshot: topics are read one after another while
//! publishes and subscriptions go on, so two topics' counts may come from
//! different instants, a topic created after step 1 is missing, and one
//! dropped during it is left out. Pages are cut by a keyset cursor (the
//! last entry's sort key), not an offset: a page never repeats an entry of
//! the previous one under the same sort key, but a topic whose count
//! changes between two pages may move across the cut and be seen twice or
//! not at all. This is what an operator's view needs, and what lets the
//! hub keep publishing while it is taken.
//!
//! # Join and leave events
//!
//! On a topic that [`PresenceConfig`](crate::PresenceConfig) covers, every
//! change of the subscriber set (activation, `subscribe`, `unsubscribe`,
//! close) is recorded in the topic's [`PresenceFeed`] **under the topic's
//! lock, in the critical section that makes the change**, and whatever the
//! feed says (a `join`/`leave` event, a window's `presence` summary) is
//! pushed to the topic's subscribers there and then, queue by queue (the
//! lock order's topic → queue step). A client's join is recorded where it
//! is subscribed, its leave where it is unsubscribed; both hold the same
//! topic lock, so its subscribers see them in that order (**PR1**): never a
//! `leave` before the `join` of the same client. A summary due at a
//! window's end is pushed by [`Hub::tick`] (or by the topic's next change),
//! which takes the topic's lock alone.
//!
//! These events carry no `id:` and are not retained: like [`Hub::send`]
//! they take no place in the hub-wide order (I7) and never move a
//! client's `Last-Event-ID` (I8). Taking the sequencer for them would
//! invert the lock order (activation and close hold topic locks, the
//! sequencer comes before topics), and replaying them would replay a
//! history of joins rather than the state.
//!
//! A presence push that overflows a queue closes it there (the queue does
//! that itself, as `SlowConsumer`); the registry's close, which needs the
//! client's registry shard that activation and close may hold, is deferred to
//! the next `tick` (the transport's close guard usually gets there first,
//! woken by the closed queue).
//!
//! Invariants:
//! - **P1**: `last_event_id` is the newest id published on the topic in
//!   its life (at least every retained event's, at most the hub's newest);
//!   [`Hub::check_invariants`] checks it;
//! - every page has at most [`MAX_PRESENCE_PAGE`] entries; `next` is `Some` exactly
//!   when entries after the page existed in this snapshot.

use super::Hub;
use crate::presence_feed::{Change, PresenceFeed};
use crate::queue::Push;
use crate::reason::CloseReason;
use crate::sync::{Arc, Mutex, Ordering, SharedStr};
use crate::topics::{RateWindow, Subscriber, Topic, TopicState};
use crate::{ClientId, EventId};
use bytes::Bytes;
use std::cmp::Ordering as CmpOrdering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The most entries (topics or client ids) one page holds.
pub const MAX_PRESENCE_PAGE: usize = 1000;

/// The page size when none is asked for.
pub const DEFAULT_PRESENCE_PAGE: usize = 100;

/// The order of [`Hub::topics_snapshot`]'s list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TopicSort {
    /// Most subscribers first; equal counts by name.
    #[default]
    Subscribers,
    /// By name (byte order).
    Name,
}

impl TopicSort {
    fn compare(self, a: (usize, &str), b: (usize, &str)) -> CmpOrdering {
        match self {
            Self::Subscribers => b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)),
            Self::Name => a.1.cmp(b.1),
        }
    }
}

impl FromStr for TopicSort {
    type Err = ParseSortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "subscribers" => Ok(Self::Subscribers),
            "name" => Ok(Self::Name),
            _ => Err(ParseSortError),
        }
    }
}

/// A sort order other than `subscribers` or `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseSortError;

impl fmt::Display for ParseSortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sort must be `subscribers` or `name`")
    }
}

impl std::error::Error for ParseSortError {}

/// Where a page of topics starts: strictly after the entry it was taken
/// from, under the page's sort.
///
/// Its text form, `<subscribers>-<name in lowercase hex>`, is safe in a
/// URL as it is and parsed strictly.
///
/// ```
/// use ssehub_core::TopicCursor;
///
/// let cursor: TopicCursor = "3-6e657773".parse()?;
/// assert_eq!(cursor.name(), "news");
/// assert_eq!(cursor.to_string(), "3-6e657773");
/// assert!("3-6e6577".parse::<TopicCursor>().is_ok());
/// assert!("3-6e6".parse::<TopicCursor>().is_err());
/// assert!("x-6e".parse::<TopicCursor>().is_err());
/// # Ok::<(), ssehub_core::ParseCursorError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TopicCursor {
    subscribers: usize,
    name: String,
}

impl TopicCursor {
    /// The subscriber count of the entry the cursor was taken from.
    pub fn subscribers(&self) -> usize {
        self.subscribers
    }

    /// The name of the entry the cursor was taken from.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for TopicCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.subscribers)?;
        self.name.bytes().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Why a [`TopicCursor`] did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseCursorError {
    /// No `-` between the count and the name.
    Shape,
    /// The count is not a decimal number.
    Count,
    /// The name is not lowercase hex pairs.
    Hex,
    /// The name is not UTF-8, or not a valid topic name.
    Name,
}

impl fmt::Display for ParseCursorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shape => "cursor must be <subscribers>-<hex name>",
            Self::Count => "cursor's subscriber count is not a decimal number",
            Self::Hex => "cursor's name is not lowercase hex",
            Self::Name => "cursor's name is not a valid topic name",
        })
    }
}

impl std::error::Error for ParseCursorError {}

impl FromStr for TopicCursor {
    type Err = ParseCursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, hex) = s.split_once('-').ok_or(ParseCursorError::Shape)?;
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseCursorError::Count);
        }
        let subscribers = count.parse().map_err(|_| ParseCursorError::Count)?;
        let digit = |b: u8| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            _ => Err(ParseCursorError::Hex),
        };
        let hex = hex.as_bytes();
        if hex.len() % 2 != 0 {
            return Err(ParseCursorError::Hex);
        }
        let bytes = hex
            .chunks_exact(2)
            .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect::<Result<Vec<u8>, _>>()?;
        let name = String::from_utf8(bytes).map_err(|_| ParseCursorError::Name)?;
        crate::topics::validate_topic(&name).map_err(|_| ParseCursorError::Name)?;
        Ok(Self { subscribers, name })
    }
}

/// Which page of topics [`Hub::topics_snapshot`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPage {
    sort: TopicSort,
    limit: usize,
    after: Option<TopicCursor>,
}

impl Default for TopicPage {
    fn default() -> Self {
        Self::new(TopicSort::default())
    }
}

impl TopicPage {
    /// The first [`DEFAULT_PRESENCE_PAGE`] topics in `sort` order.
    pub fn new(sort: TopicSort) -> Self {
        Self {
            sort,
            limit: DEFAULT_PRESENCE_PAGE,
            after: None,
        }
    }

    /// At most `limit` entries, clamped to `1..=`[`MAX_PRESENCE_PAGE`].
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, MAX_PRESENCE_PAGE);
        self
    }

    /// The entries strictly after `cursor` (a previous page's
    /// [`TopicList::next`]).
    #[must_use]
    pub fn after(mut self, cursor: TopicCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// The page size, after clamping.
    pub fn page_size(&self) -> usize {
        self.limit
    }
}

/// One topic's figures, read under its lock at one instant.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TopicSummary {
    /// The topic's name.
    pub name: String,
    /// Active clients subscribed.
    pub subscribers: usize,
    /// Events retained for replay.
    pub retained: usize,
    /// Bytes of the retained frames.
    pub retained_bytes: usize,
    /// The newest event published on the topic since it was created (it
    /// may no longer be retained); `None` if none was.
    pub last_event_id: Option<EventId>,
    /// Events published on the topic in the last minute: the current
    /// second of the hub's clock and the 59 before it.
    pub events_last_minute: u64,
}

impl TopicSummary {
    /// `events_last_minute` as a rate per second.
    pub fn events_per_second(&self) -> f64 {
        self.events_last_minute as f64 / RateWindow::SECONDS as f64
    }
}

/// A page of [`Hub::topics_snapshot`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TopicList {
    /// At most the page's limit, in its sort order.
    pub topics: Vec<TopicSummary>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<TopicCursor>,
    /// Topics in the snapshot (all pages).
    pub total: usize,
}

/// Which page of a topic's subscribers [`Hub::topic_presence`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientPage {
    limit: usize,
    after: Option<ClientId>,
}

impl Default for ClientPage {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientPage {
    /// The first [`DEFAULT_PRESENCE_PAGE`] ids, in id order.
    pub fn new() -> Self {
        Self {
            limit: DEFAULT_PRESENCE_PAGE,
            after: None,
        }
    }

    /// At most `limit` ids, clamped to `1..=`[`MAX_PRESENCE_PAGE`].
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, MAX_PRESENCE_PAGE);
        self
    }

    /// The ids strictly after `id` (a previous page's [`ClientList::next`]).
    #[must_use]
    pub fn after(mut self, id: ClientId) -> Self {
        self.after = Some(id);
        self
    }
}

/// A page of a topic's subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientList {
    /// At most the page's limit, in increasing id order.
    pub ids: Vec<ClientId>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ClientId>,
}

/// What [`Hub::topic_presence`] found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TopicPresence {
    /// The topic's figures.
    pub summary: TopicSummary,
    /// The page of subscriber ids, when one was asked for; read under the
    /// same lock as `summary`, so `summary.subscribers` counts them.
    pub clients: Option<ClientList>,
}

/// A topic's figures as copied, with the name still shared.
struct Row {
    name: SharedStr,
    subscribers: usize,
    retained: usize,
    retained_bytes: usize,
    last_seq: u64,
    events_last_minute: u64,
}

impl Hub {
    /// A page of the topics, with each topic's subscribers, retained
    /// events, last event id and events in the last minute.
    ///
    /// Per-topic consistent, not a global atomic snapshot: each topic's
    /// figures are read under its lock at one instant, one topic after
    /// another, while publishing goes on; a topic created meanwhile is
    /// missing, one dropped meanwhile left out. Pages are cut by a keyset
    /// cursor, so an entry whose count changes between two pages may be
    /// seen twice or not at all. Takes no registry lock and no sequencer,
    /// and holds one lock at a time (DESIGN.md §6, "Presence").
    pub fn topics_snapshot(&self, page: &TopicPage) -> TopicList {
        let topics: Vec<Arc<Topic>> = self.shared.topics.read().map.values().cloned().collect();
        let now = self.push_time();
        let mut rows: Vec<Row> = topics.iter().filter_map(|t| row(t, now)).collect();
        drop(topics);
        let total = rows.len();
        let sort = page.sort;
        if let Some(after) = &page.after {
            let cut = (after.subscribers, after.name.as_str());
            rows.retain(|r| sort.compare((r.subscribers, &r.name), cut) == CmpOrdering::Greater);
        }
        let order =
            |a: &Row, b: &Row| sort.compare((a.subscribers, &a.name), (b.subscribers, &b.name));
        let limit = page.limit;
        if rows.len() > limit + 1 {
            // Only the page and the one entry that says there is more
            // need sorting.
            rows.select_nth_unstable_by(limit, order);
            rows.truncate(limit + 1);
        }
        rows.sort_unstable_by(order);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = rows.last().filter(|_| more).map(|r| TopicCursor {
            subscribers: r.subscribers,
            name: r.name.to_string(),
        });
        TopicList {
            topics: rows.into_iter().map(|r| self.summary(r)).collect(),
            next,
            total,
        }
    }

    /// One topic's figures and, with `clients`, a page of its subscribers'
    /// ids; `None` for a topic the hub does not keep (never created, or
    /// dropped: no subscribers and nothing retained).
    ///
    /// Takes the map's read lock, then that topic's lock alone; the
    /// figures and the ids are read under that one lock, at one instant.
    /// Copying the ids is O(subscribers), the walk a publish to the topic
    /// makes anyway.
    pub fn topic_presence(
        &self,
        name: &str,
        clients: Option<&ClientPage>,
    ) -> Option<TopicPresence> {
        loop {
            let topic = self.shared.topics.read().map.get(name).cloned()?;
            let now = self.push_time();
            let state = topic.state.lock();
            if state.dead {
                // Dropped since the lookup: a new topic may have the name.
                continue;
            }
            let ids: Option<Vec<ClientId>> = clients.map(|page| {
                state
                    .subs
                    .iter()
                    .map(|s| s.id)
                    .filter(|id| page.after.is_none_or(|after| *id > after))
                    .collect()
            });
            let row = row_of(&topic.name, &state, now);
            drop(state);
            let clients = clients.zip(ids).map(|(page, mut ids)| {
                let limit = page.limit;
                if ids.len() > limit + 1 {
                    ids.select_nth_unstable(limit);
                    ids.truncate(limit + 1);
                }
                ids.sort_unstable();
                let more = ids.len() > limit;
                ids.truncate(limit);
                let next = ids.last().copied().filter(|_| more);
                ClientList { ids, next }
            });
            return Some(TopicPresence {
                summary: self.summary(row),
                clients,
            });
        }
    }

    fn summary(&self, row: Row) -> TopicSummary {
        TopicSummary {
            name: row.name.to_string(),
            subscribers: row.subscribers,
            retained: row.retained,
            retained_bytes: row.retained_bytes,
            last_event_id: (row.last_seq > 0).then(|| EventId::new(self.epoch(), row.last_seq)),
            events_last_minute: row.events_last_minute,
        }
    }
}

/// The hub's side of join/leave events: when each topic's pending
/// summary is due, and the clients a presence push overflowed. Both locks
/// are leaves: taken under a topic lock (or none), never held while
/// another lock is taken.
pub(super) struct PresenceDue {
    /// `(due instant, topic name)` of every topic with a pending summary.
    pub(super) due: Mutex<BTreeSet<(u64, SharedStr)>>,
    /// Clients whose queue a presence push overflowed (and closed); the
    /// registry's close follows at the next tick.
    slow: Mutex<Vec<ClientId>>,
}

impl PresenceDue {
    pub(super) fn new() -> Self {
        Self {
            due: Mutex::new(BTreeSet::new()),
            slow: Mutex::new(Vec::new()),
        }
    }
}

impl Hub {
    /// Records that `id` joined `topics`, whose states (`states`, in the
    /// same order) the caller holds locked, right after subscribing it:
    /// activation's hook.
    pub(super) fn presence_joined_all(
        &self,
        id: ClientId,
        subject: Option<&SharedStr>,
        topics: &[Arc<Topic>],
        states: &mut [crate::sync::MutexGuard<'_, TopicState>],
    ) {
        if self.shared.config.presence.patterns.is_empty() {
            return;
        }
        for (topic, state) in topics.iter().zip(states.iter_mut()) {
            self.presence_change(&topic.name, state, id, subject, true);
        }
    }

    /// Records that `id` joined (`joined`) or left the topic `name`, whose
    /// state the caller holds locked and has just changed, and pushes what
    /// the topic's feed says: a pending summary first, then the change's
    /// own event to every subscriber but `id` (PR1). Nothing on a topic no
    /// pattern covers, nor once the hub is shut down.
    pub(super) fn presence_change(
        &self,
        name: &SharedStr,
        state: &mut TopicState,
        id: ClientId,
        subject: Option<&SharedStr>,
        joined: bool,
    ) {
        let shared = &*self.shared;
        let config = &shared.config.presence;
        if config.patterns.is_empty()
            || shared.shut_down.load(Ordering::Acquire)
            || !config.covers(name)
        {
            return;
        }
        let now = self.push_time();
        let subscribers = state.subs.len();
        let change = Change {
            id,
            subject: subject.cloned(),
            joined,
        };
        let outcome = state
            .feed
            .get_or_insert_with(|| Box::new(PresenceFeed::new(now)))
            .record(change, name, subscribers, now, config);
        if let Some(at) = outcome.schedule {
            shared
                .presence
                .due
                .lock()
                .insert((at, SharedStr::clone(name)));
        }
        let mut slow = Vec::new();
        if let Some(summary) = &outcome.summary {
            self.push_presence(&state.subs, None, summary, now, &mut slow);
        }
        if let Some(event) = &outcome.event {
            self.push_presence(&state.subs, Some(id), event, now, &mut slow);
        }
        if !slow.is_empty() {
            shared.presence.slow.lock().extend(slow);
        }
    }

    /// Pushes a presence frame to every subscriber but `except`; the ids
    /// whose queue overflowed (and closed) go to `slow`.
    fn push_presence(
        &self,
        subs: &[Subscriber],
        except: Option<ClientId>,
        frame: &Bytes,
        now: u64,
        slow: &mut Vec<ClientId>,
    ) {
        for sub in subs.iter().filter(|s| Some(s.id) != except) {
            if let Push::Overflowed = sub.queue.push(frame.clone(), now, &self.shared.metrics) {
                slow.push(sub.id);
            }
        }
    }

    /// PR2's bookkeeping, for the checker: a topic with a pending summary
    /// is filed under its window's end, so a tick will flush it.
    pub(super) fn presence_scheduled(&self, name: &SharedStr, state: &TopicState) -> bool {
        let Some(feed) = state.feed.as_ref().filter(|f| f.is_pending()) else {
            return true;
        };
        let at = feed.window_end(&self.shared.config.presence);
        self.shared
            .presence
            .due
            .lock()
            .contains(&(at, SharedStr::clone(name)))
    }

    /// The tick's part: pushes the summaries due at `now`, closes the
    /// clients presence pushes overflowed, and returns when the next
    /// summary is due. Called with no lock held; takes each due topic's
    /// lock alone.
    pub(super) fn flush_presence(&self, now: u64) -> Option<u64> {
        let shared = &*self.shared;
        let config = &shared.config.presence;
        if config.patterns.is_empty() {
            return None;
        }
        let due: Vec<(u64, SharedStr)> = {
            let mut set = shared.presence.due.lock();
            let later = set.split_off(&(now.saturating_add(1), SharedStr::from("")));
            std::mem::replace(&mut *set, later).into_iter().collect()
        };
        let mut slow = std::mem::take(&mut *shared.presence.slow.lock());
        for (_, name) in due {
            let Some(topic) = shared.topics.read().map.get(&name).cloned() else {
                continue;
            };
            let mut guard = topic.state.lock();
            let state = &mut *guard;
            let Some(feed) = state.feed.as_mut().filter(|f| f.is_pending()) else {
                continue;
            };
            let end = feed.window_end(config);
            if now < end {
                // A topic of the same name, re-created since: its own
                // window ends later.
                shared.presence.due.lock().insert((end, name));
                continue;
            }
            if let Some(summary) = feed.flush(&name, state.subs.len(), config) {
                self.push_presence(&state.subs, None, &summary, now, &mut slow);
            }
        }
        for id in slow {
            let _ = self.close(id, CloseReason::SlowConsumer);
        }
        shared.presence.due.lock().first().map(|(at, _)| *at)
    }
}

/// Copies one topic's figures under its lock; `None` if it was dropped.
fn row(topic: &Topic, now: u64) -> Option<Row> {
    let state = topic.state.lock();
    (!state.dead).then(|| row_of(&topic.name, &state, now))
}

/// The figures of a topic whose lock the caller holds.
fn row_of(name: &SharedStr, state: &TopicState, now: u64) -> Row {
    Row {
        name: SharedStr::clone(name),
        subscribers: state.subs.len(),
        retained: state.ring.len(),
        retained_bytes: state.ring.bytes(),
        last_seq: state.last_seq,
        events_last_minute: state.events_last_minute(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = TopicCursor {
            subscribers: 12,
            name: "orders/42 ✓".to_owned(),
        };
        let text = cursor.to_string();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-'));
        assert_eq!(text.parse::<TopicCursor>(), Ok(cursor));
        for (bad, error) in [
            ("", ParseCursorError::Shape),
            ("12", ParseCursorError::Shape),
            ("-61", ParseCursorError::Count),
            ("+1-61", ParseCursorError::Count),
            ("99999999999999999999999-61", ParseCursorError::Count),
            ("1-6", ParseCursorError::Hex),
            ("1-6G", ParseCursorError::Hex),
            ("1-6A", ParseCursorError::Hex),
            ("1-", ParseCursorError::Name),
            ("1-ff", ParseCursorError::Name),
            ("1-0a", ParseCursorError::Name),
        ] {
            assert_eq!(bad.parse::<TopicCursor>(), Err(error), "{bad:?}");
        }
    }

    #[test]
    fn pages_are_clamped() {
        assert_eq!(TopicPage::default().limit(0).page_size(), 1);
        assert_eq!(
            TopicPage::default().limit(usize::MAX).page_size(),
            MAX_PRESENCE_PAGE
        );
        assert_eq!(ClientPage::new().limit(0).limit, 1);
    }
}
