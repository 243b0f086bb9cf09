//! Join/leave events: which topics have them ([`PresenceConfig`], topic
//! patterns), and the per-topic state that rate-limits and coalesces them
//! ([`PresenceFeed`]).
//!
//! The hub (`hub/presence.rs`) records each change of a presence topic's
//! subscriber set in the topic's feed, under the topic's lock, and pushes
//! what the feed says to the topic's subscribers in the same critical
//! section. This module holds no lock and reads no clock: it is a state
//! machine over the hub's clock readings, so tests drive it by hand.
//!
//! # Rate limit and coalescing
//!
//! Time is cut, per topic, into windows of `window` that start at the first
//! change after the previous window ended. In a window, the first `burst`
//! changes go out one event each (`join` / `leave`); the changes after them
//! are coalesced into one `presence` summary, pushed when the window ends
//! (by the hub's `tick`, or by the next change, whichever comes first). So a
//! topic's subscribers receive at most `burst + 1` presence events per
//! window, however high the churn.
//!
//! A summary is the **net** change since the subscribers' last view: a
//! client that joined and left within the coalesced part of the window
//! appears in neither list; one that left and came back neither.
//!
//! Invariants:
//! - **PR1** (with the hub): a topic's presence events are pushed in the
//!   order its changes happened: a pending summary is pushed before any
//!   later `join`/`leave`, and individual events are never sent while a
//!   summary is pending. So no subscriber sees a client's `leave` before
//!   its `join`;
//! - **PR2**: at most `burst` individual events per window, plus one
//!   summary when the window ends; a summary lists at most `max_listed`
//!   clients per list and counts all of them.

use crate::id::IdHashBuilder;
use crate::sync::SharedStr;
use crate::ClientId;
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Join/leave events, opt-in per topic pattern (off by default).
///
/// ```
/// use ssehub_core::{HubConfig, PresenceConfig};
/// use std::time::Duration;
///
/// let config = HubConfig {
///     presence: PresenceConfig {
///         patterns: vec!["rooms/*".to_owned()],
///         window: Duration::from_secs(1),
///         ..PresenceConfig::default()
///     },
///     ..HubConfig::default()
/// };
/// assert!(config.presence.covers("rooms/lobby"));
/// assert!(!config.presence.covers("news"));
/// assert_eq!(config.validate(), Ok(()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceConfig {
    /// Topics whose subscribers receive `join`/`leave` events, as
    /// `/`-separated patterns (the JWT claims' syntax): `*` matches one
    /// non-empty segment, `**` as the last segment one or more segments,
    /// anything else itself. Empty: no topic has presence events.
    pub patterns: Vec<String>,
    /// The rate-limit window, per topic.
    pub window: Duration,
    /// Individual `join`/`leave` events per topic and window; later
    /// changes in the window are coalesced into one `presence` summary.
    /// 0: every change is coalesced.
    pub burst: u32,
    /// Most clients a summary lists in each of `joined` and `left` (the
    /// counts are always complete).
    pub max_listed: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            patterns: Vec::new(),
            window: Duration::from_secs(1),
            burst: 10,
            max_listed: 100,
        }
    }
}

impl PresenceConfig {
    /// Whether `topic` has presence events.
    pub fn covers(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| pattern_matches(p, topic))
    }
}

/// Whether `topic` matches `pattern`: `/`-separated segments where `*`
/// matches exactly one non-empty segment, `**` as the last segment matches
/// one or more segments (alone, every topic), and any other segment
/// matches itself.
///
/// ```
/// use ssehub_core::pattern_matches;
///
/// assert!(pattern_matches("rooms/*", "rooms/lobby"));
/// assert!(!pattern_matches("rooms/*", "rooms/lobby/2"));
/// assert!(pattern_matches("rooms/**", "rooms/lobby/2"));
/// assert!(!pattern_matches("rooms/**", "rooms"));
/// ```
pub fn pattern_matches(pattern: &str, topic: &str) -> bool {
    let mut pattern = pattern.split('/').peekable();
    let mut topic = topic.split('/');
    loop {
        match (pattern.next(), topic.next()) {
            (None, None) => return true,
            (Some("**"), Some(_)) if pattern.peek().is_none() => return true,
            (Some("*"), Some(segment)) if !segment.is_empty() => {}
            (Some(want), Some(segment)) if want == segment => {}
            _ => return false,
        }
    }
}

/// The longest subject (a JWT `sub`) carried in presence events, in bytes;
/// longer ones are cut at a character boundary.
pub const MAX_SUBJECT_LEN: usize = 256;

/// A subject cut to [`MAX_SUBJECT_LEN`] bytes.
pub(crate) fn bounded_subject(subject: String) -> SharedStr {
    let mut end = subject.len().min(MAX_SUBJECT_LEN);
    while !subject.is_char_boundary(end) {
        end -= 1;
    }
    SharedStr::from(&subject[..end])
}

/// One change of a topic's subscriber set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) id: ClientId,
    pub(crate) subject: Option<SharedStr>,
    pub(crate) joined: bool,
}

/// What the hub must push after recording a change, in this order.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// A summary of the window that ended (PR1: it goes first).
    pub(crate) summary: Option<Bytes>,
    /// The change's own `join`/`leave` event, if it is not coalesced.
    pub(crate) event: Option<Bytes>,
    /// The instant (hub clock) a summary is now pending for: the hub must
    /// make its `tick` flush the topic then.
    pub(crate) schedule: Option<u64>,
}

/// A presence topic's rate limiter and coalescing buffer. Lives in the
/// topic's state, under its lock.
#[derive(Debug)]
pub(crate) struct PresenceFeed {
    window_start: u64,
    /// Individual events sent in the current window.
    sent: u32,
    /// The net change coalesced in this window, not yet pushed; `None`
    /// when nothing is pending.
    pending: Option<HashMap<ClientId, Change, IdHashBuilder>>,
}

impl PresenceFeed {
    /// A feed whose first window starts at `now`.
    pub(crate) fn new(now: u64) -> Self {
        Self {
            window_start: now,
            sent: 0,
            pending: None,
        }
    }

    /// When the current window ends.
    pub(crate) fn window_end(&self, config: &PresenceConfig) -> u64 {
        self.window_start.saturating_add(nanos(config.window))
    }

    /// Whether a summary is pending.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Records `change` at hub clock `now` on `topic` (which now has
    /// `subscribers`), and says what to push.
    pub(crate) fn record(
        &mut self,
        change: Change,
        topic: &str,
        subscribers: usize,
        now: u64,
        config: &PresenceConfig,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        if now >= self.window_end(config) {
            outcome.summary = self.flush(topic, subscribers, config);
            self.window_start = now;
            self.sent = 0;
        }
        if self.pending.is_none() && self.sent < config.burst {
            self.sent += 1;
            outcome.event = Some(individual(&change, topic, subscribers));
            return outcome;
        }
        let pending = match &mut self.pending {
            Some(pending) => pending,
            None => {
                outcome.schedule = Some(self.window_end(config));
                self.pending.insert(HashMap::default())
            }
        };
        // Net change: a join cancels a pending leave of the same client
        // and the other way round (PR1: the subscribers never saw either).
        match pending.get(&change.id) {
            Some(earlier) if earlier.joined != change.joined => {
                pending.remove(&change.id);
            }
            _ => {
                pending.insert(change.id, change);
            }
        }
        outcome
    }

    /// The pending summary, if any, taken (an empty net change is no
    /// summary).
    pub(crate) fn flush(
        &mut self,
        topic: &str,
        subscribers: usize,
        config: &PresenceConfig,
    ) -> Option<Bytes> {
        let pending = self.pending.take()?;
        if pending.is_empty() {
            return None;
        }
        let mut changes: Vec<Change> = pending.into_values().collect();
        changes.sort_unstable_by_key(|c| c.id);
        Some(summary(&changes, topic, subscribers, config.max_listed))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `event: join|leave` with `{"topic","client","sub"?,"subscribers"}`.
fn individual(change: &Change, topic: &str, subscribers: usize) -> Bytes {
    let name = if change.joined { "join" } else { "leave" };
    let mut out = format!("event: {name}\ndata: {{\"topic\":");
    json_string(&mut out, topic);
    out.push(',');
    client_fields(&mut out, change);
    let _ = write!(out, ",\"subscribers\":{subscribers}}}\n\n");
    Bytes::from(out)
}

/// `event: presence` with the net change of a window.
fn summary(changes: &[Change], topic: &str, subscribers: usize, max_listed: usize) -> Bytes {
    let mut out = String::from("event: presence\ndata: {\"topic\":");
    json_string(&mut out, topic);
    let mut counts = [0usize; 2];
    for (key, joined) in [("joined", true), ("left", false)] {
        let _ = write!(out, ",\"{key}\":[");
        let mut listed = 0;
        for change in changes.iter().filter(|c| c.joined == joined) {
            counts[usize::from(joined)] += 1;
            if listed == max_listed {
                continue;
            }
            if listed > 0 {
                out.push(',');
            }
            out.push('{');
            client_fields(&mut out, change);
            out.push('}');
            listed += 1;
        }
        out.push(']');
    }
    let _ = write!(
        out,
        ",\"joins\":{},\"leaves\":{},\"subscribers\":{subscribers}}}\n\n",
        counts[1], counts[0]
    );
    Bytes::from(out)
}

/// `"client":"<id>"` and, with a subject, `,"sub":"<subject>"`.
fn client_fields(out: &mut String, change: &Change) {
    let _ = write!(out, "\"client\":\"{}\"", change.id);
    if let Some(subject) = &change.subject {
        out.push_str(",\"sub\":");
        json_string(out, subject);
    }
}

/// Appends `s` as a JSON string: quotes, backslashes and every control
/// character escaped, so the `data:` line stays one line.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn id(n: u32) -> ClientId {
        ClientId::new(n, NonZeroU64::new(u64::from(n) + 1).unwrap())
    }

    fn change(n: u32, joined: bool) -> Change {
        Change {
            id: id(n),
            subject: None,
            joined,
        }
    }

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    const SECOND: u64 = 1_000_000_000;

    fn config(burst: u32) -> PresenceConfig {
        PresenceConfig {
            patterns: vec!["**".to_owned()],
            window: Duration::from_secs(1),
            burst,
            max_listed: 2,
        }
    }

    #[test]
    fn patterns_match_like_the_jwt_claims() {
        let m = pattern_matches;
        assert!(m("news", "news"));
        assert!(!m("news", "news/x"));
        assert!(m("rooms/*", "rooms/a"));
        assert!(!m("rooms/*", "rooms/"));
        assert!(!m("rooms/*", "rooms"));
        assert!(m("rooms/*/chat", "rooms/a/chat"));
        assert!(m("rooms/**", "rooms/a/b"));
        assert!(!m("rooms/**", "rooms"));
        assert!(m("**", "x"));
        assert!(!m("a/**/b", "a/x/b"));
        let config = PresenceConfig {
            patterns: vec!["a".to_owned(), "rooms/*".to_owned()],
            ..PresenceConfig::default()
        };
        assert!(config.covers("a") && config.covers("rooms/z") && !config.covers("b"));
        assert!(!PresenceConfig::default().covers("a"));
    }

    #[test]
    fn subjects_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_SUBJECT_LEN);
        let cut = bounded_subject(long);
        assert!(cut.len() <= MAX_SUBJECT_LEN && cut.len() >= MAX_SUBJECT_LEN - 1);
        assert_eq!(&*bounded_subject("alice".to_owned()), "alice");
    }

    #[test]
    fn events_are_one_line_of_escaped_json() {
        let joined = Change {
            id: id(3),
            subject: Some(SharedStr::from("a\"l\\i\nce\u{2028}")),
            joined: true,
        };
        let frame = individual(&joined, "rooms/\"x\"", 2);
        let frame = text(&frame);
        assert!(frame.starts_with("event: join\ndata: "), "{frame}");
        assert!(
            frame.ends_with("\n\n") && frame.matches('\n').count() == 3,
            "{frame}"
        );
        let data: serde_json::Value =
            serde_json::from_str(frame["event: join\ndata: ".len()..].trim_end()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"topic": "rooms/\"x\"", "client": "3.4",
                "sub": "a\"l\\i\nce\u{2028}", "subscribers": 2})
        );
        let leave = text(&individual(&change(5, false), "t", 0)).to_owned();
        assert!(leave.starts_with("event: leave\n") && !leave.contains("\"sub\""));
    }

    #[test]
    fn the_burst_goes_out_then_the_rest_is_one_net_summary_at_the_window_end() {
        let config = config(2);
        let mut feed = PresenceFeed::new(0);
        let a = feed.record(change(1, true), "t", 1, 0, &config);
        assert!(a.event.is_some() && a.summary.is_none() && a.schedule.is_none());
        assert!(feed
            .record(change(2, true), "t", 2, 1, &config)
            .event
            .is_some());
        // The third change is coalesced, and a flush is scheduled at the end.
        let c = feed.record(change(3, true), "t", 3, 2, &config);
        assert!(c.event.is_none());
        assert_eq!(c.schedule, Some(SECOND));
        // Joined and left in the coalesced part: in neither list.
        let d = feed.record(change(3, false), "t", 2, 3, &config);
        assert!(d.event.is_none() && d.schedule.is_none());
        // Announced before, left, came back: no change either.
        feed.record(change(1, false), "t", 1, 4, &config);
        feed.record(change(1, true), "t", 2, 5, &config);
        assert!(feed.is_pending());
        assert_eq!(feed.flush("t", 2, &config), None, "a net change of nothing");
        assert!(!feed.is_pending());

        // Still the same window: coalesced again.
        for n in 10..14 {
            feed.record(change(n, true), "t", 0, 6, &config);
        }
        feed.record(change(2, false), "t", 0, 7, &config);
        // The next window's first change pushes the summary before itself.
        let e = feed.record(change(20, true), "t", 7, SECOND + 7, &config);
        let summary = e.summary.expect("the window's summary");
        let data: serde_json::Value =
            serde_json::from_str(text(&summary)["event: presence\ndata: ".len()..].trim_end())
                .unwrap();
        assert_eq!(
            data,
            serde_json::json!({"topic": "t",
                "joined": [{"client": "10.11"}, {"client": "11.12"}],
                "left": [{"client": "2.3"}],
                "joins": 4, "leaves": 1, "subscribers": 7})
        );
        assert!(e.event.is_some(), "a new window starts with a fresh burst");
    }

    #[test]
    fn with_no_burst_every_change_waits_for_the_window_end() {
        let config = config(0);
        let mut feed = PresenceFeed::new(0);
        let a = feed.record(change(1, true), "t", 1, 5, &config);
        assert!(a.event.is_none());
        assert_eq!(a.schedule, Some(SECOND));
        let summary = feed.flush("t", 1, &config).unwrap();
        assert!(text(&summary).contains("\"joins\":1,\"leaves\":0"));
    }

    #[test]
    fn json_strings_escape_exactly_the_controls_and_the_line_separators() {
        // Every escaped class, its neighbours that stay as they are, and
        // the short escapes.
        let cases: &[(&str, &str)] = &[
            ("\u{0}", "\\u0000"),
            ("\u{1}", "\\u0001"),
            ("\u{1f}", "\\u001f"),
            (" ", " "),
            ("~", "~"),
            ("\u{7f}", "\\u007f"),
            ("\u{80}", "\u{80}"),
            ("\u{2027}", "\u{2027}"),
            ("\u{2028}", "\\u2028"),
            ("\u{2029}", "\\u2029"),
            ("\u{202a}", "\u{202a}"),
            ("é", "é"),
            ("\"", "\\\""),
            ("\\", "\\\\"),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
        ];
        for (raw, escaped) in cases {
            let mut out = String::new();
            json_string(&mut out, raw);
            assert_eq!(out, format!("\"{escaped}\""), "{raw:?}");
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(&back, raw);
        }
    }

    #[test]
    fn a_subject_is_cut_to_the_last_boundary_at_or_below_the_bound() {
        // "a" then two-byte characters: every char boundary past the
        // first byte is odd, so the bound (even) falls inside a character
        // and the cut moves one byte down, never up.
        let subject = format!("a{}", "é".repeat(MAX_SUBJECT_LEN));
        let cut = bounded_subject(subject.clone());
        assert_eq!(cut.len(), MAX_SUBJECT_LEN - 1);
        assert_eq!(&*cut, &subject[..MAX_SUBJECT_LEN - 1]);
        let exact = "b".repeat(MAX_SUBJECT_LEN + 5);
        assert_eq!(bounded_subject(exact).len(), MAX_SUBJECT_LEN);
    }

    #[test]
    fn a_repeated_change_of_one_client_counts_once_in_the_net_change() {
        let config = config(0);
        let mut feed = PresenceFeed::new(0);
        feed.record(change(1, true), "t", 1, 1, &config);
        feed.record(change(1, true), "t", 1, 2, &config);
        feed.record(change(2, false), "t", 1, 3, &config);
        feed.record(change(2, false), "t", 1, 4, &config);
        let summary = feed.flush("t", 1, &config).expect("a net change");
        let data: serde_json::Value =
            serde_json::from_str(text(&summary)["event: presence\ndata: ".len()..].trim_end())
                .unwrap();
        assert_eq!(
            data,
            serde_json::json!({"topic": "t", "joined": [{"client": "1.2"}],
                "left": [{"client": "2.3"}], "joins": 1, "leaves": 1, "subscribers": 1})
        );
    }
}
