//! The sans-IO reconnect policy: when and how a client reconnects.
//!
//! [`ReconnectPolicy`] is a pure state machine. It does no IO and reads no
//! clock: the client reports what happened (a response arrived, the network
//! failed, an event was decoded, the stream ended, the user closed) and gets
//! back an [`Action`] saying what to do next (keep going, connect now,
//! connect after a delay, stop). Randomness for the jitter is injected
//! ([`RandomSource`]), so tests are deterministic.
//!
//! # States and transitions
//!
//! ```text
//!                 start / reconnect()
//!                 ┌──────────────┐
//!                 ▼              │
//!   new ──▶ Connecting ──200 + text/event-stream──▶ Open ──event──▶ Open
//!              │   ▲                                  │   (attempts reset)
//!   5xx, 408,  │   │ response / connect error         │ stream end / error
//!   429, net   ▼   │ (after the delay)                ▼
//!          Reconnecting { attempt, delay } ◀──────────┘
//!              │
//!   fatal status, wrong content type, fatal event, attempts exhausted,
//!   fatal connect error, unsendable id, close() from any state
//!              ▼
//!           Closed(CloseInfo)
//! ```
//!
//! - A response is classified by [`classify`]: 200 with a
//!   `text/event-stream` content type opens; every other 2xx (204 included:
//!   the server says stop), 1xx, 3xx (redirects are the transport's job) and
//!   4xx other than 408 and 429 are fatal; 5xx, 408, 429 and network errors
//!   are retried.
//! - Delay of retry number `n` (1-based): a uniformly random duration in
//!   `[0, min(max_delay, base · 2ⁿ⁻¹)]` ("full jitter"), where `base` is the
//!   server's last `retry:` value if it sent one, else
//!   [`ReconnectConfig::base_delay`]. A `Retry-After` on the failed response
//!   is a floor: the delay is `max(jittered, retry_after)`, and the cap does
//!   not cut the floor (the server knows when it will be back).
//! - **Saturation.** No delay exceeds [`DELAY_LIMIT`] (one day): a longer
//!   `Retry-After`, `retry:`, base or cap is cut to it, and every step of the
//!   computation saturates, so no input (`Retry-After: 18446744073709551615`,
//!   `retry: 99999999999999999999`) can overflow a clock in the caller.
//! - **Healthy connections reset the attempt counter**, and only they
//!   (backoff-reset rule, DESIGN.md): a connection is healthy once it has
//!   stayed open for [`ReconnectConfig::healthy_after`] (the caller reports
//!   it with [`ReconnectPolicy::on_healthy`], since the policy reads no
//!   clock), or has delivered [`ReconnectConfig::healthy_events`] events
//!   (default 2: more than a greeting such as the hub's `welcome`). Being
//!   merely opened, or delivering one event, is not enough: a server that
//!   answers every connection with one event and hangs up keeps backing
//!   off. [`ReconnectPolicy::reconnect`] resets the counter too. After a
//!   reset the next reconnect is retry 1, whose ceiling is the bare base
//!   (immediate for `retry: 0`, as browsers do).
//! - **An id that cannot be sent** as a `Last-Event-ID` header (a control
//!   character other than tab: see [`is_sendable_last_event_id`]) is never
//!   dropped silently: instead of reconnecting without it (the server
//!   would take the client for a new one and replay nothing), the policy
//!   closes with [`CloseReason::UnsendableLastEventId`].
//! - With [`ReconnectConfig::with_max_attempts`], the failure after the last
//!   allowed attempt closes with [`CloseReason::AttemptsExhausted`].
//!
//! # Invariants
//!
//! - `close()` is final: after it, every input returns [`Action::Continue`]
//!   and the state stays `Closed` with `is_local: true`.
//! - Inputs that do not fit the state (an event while reconnecting, a
//!   response while open, anything after a close) change nothing and return
//!   [`Action::Continue`].
//! - Every [`Action::Connect`] and [`Action::ConnectAfter`] carries the last
//!   event id seen so far (`None` when it is empty), for the
//!   `Last-Event-ID` header; that id is always
//!   [sendable](is_sendable_last_event_id).
//! - Every [`Action::ConnectAfter`] delay is at most [`DELAY_LIMIT`].

use crate::codec::{Frame, MessageEvent};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The default [`ReconnectConfig::base_delay`]: 3 s, as browsers commonly use.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_secs(3);

/// The default [`ReconnectConfig::max_delay`]: 60 s.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

/// The default [`ReconnectConfig::healthy_after`]: 5 s.
pub const DEFAULT_HEALTHY_AFTER: Duration = Duration::from_secs(5);

/// The default [`ReconnectConfig::healthy_events`]: 2, more than a greeting.
pub const DEFAULT_HEALTHY_EVENTS: u32 = 2;

/// The longest delay the policy ever asks for: one day. A longer
/// `Retry-After`, server `retry:`, configured base or cap is cut to it, so
/// `now + delay` cannot overflow any clock.
pub const DELAY_LIMIT: Duration = Duration::from_secs(24 * 60 * 60);

/// A source of uniformly distributed 64-bit values for the jitter.
///
/// Implemented by [`SplitMix64`] and by any `FnMut() -> u64` closure.
pub trait RandomSource {
    /// The next random value.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// A small, fast, deterministic generator (SplitMix64): good enough to
/// spread reconnects, not for anything secret.
///
/// # Examples
///
/// ```
/// use ssehub_core::reconnect::{RandomSource, SplitMix64};
///
/// let mut a = SplitMix64::new(42);
/// let mut b = SplitMix64::new(42);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed` (seed it differently per client, for
    /// example from the time and the process id, or clients stay in step).
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The policy's settings.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ssehub_core::reconnect::ReconnectConfig;
///
/// let config = ReconnectConfig::new()
///     .with_base_delay(Duration::from_millis(500))
///     .with_max_delay(Duration::from_secs(30))
///     .with_max_attempts(10)
///     .with_fatal_event("fatal");
/// assert_eq!(config.max_attempts(), Some(10));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconnectConfig {
    base_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    fatal_event: Option<String>,
    healthy_after: Option<Duration>,
    healthy_events: Option<u32>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ReconnectConfig {
    /// [`DEFAULT_BASE_DELAY`], [`DEFAULT_MAX_DELAY`], unlimited attempts, no
    /// fatal event, healthy after [`DEFAULT_HEALTHY_AFTER`] or
    /// [`DEFAULT_HEALTHY_EVENTS`] events.
    pub fn new() -> Self {
        Self {
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            max_attempts: None,
            fatal_event: None,
            healthy_after: Some(DEFAULT_HEALTHY_AFTER),
            healthy_events: Some(DEFAULT_HEALTHY_EVENTS),
        }
    }

    /// Sets the base of the exponential backoff, used until the server sends
    /// `retry:`.
    #[must_use]
    pub fn with_base_delay(mut self, base: Duration) -> Self {
        self.base_delay = base;
        self
    }

    /// Sets the cap on the jittered backoff (a `Retry-After` floor can still
    /// exceed it).
    #[must_use]
    pub fn with_max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// Gives up after this many consecutive failed reconnection attempts
    /// (`0`: never reconnect). Unlimited by default.
    #[must_use]
    pub fn with_max_attempts(mut self, max: u32) -> Self {
        self.max_attempts = Some(max);
        self
    }

    /// Names the event with which the server announces a fatal disconnect:
    /// receiving it closes the policy with `fatal: true`.
    #[must_use]
    pub fn with_fatal_event(mut self, name: impl Into<String>) -> Self {
        self.fatal_event = Some(name.into());
        self
    }

    /// A connection that stays open this long is healthy: it resets the
    /// attempt counter (the caller times it and reports
    /// [`ReconnectPolicy::on_healthy`]). `None`: time never makes a
    /// connection healthy.
    #[must_use]
    pub fn with_healthy_after(mut self, after: Option<Duration>) -> Self {
        self.healthy_after = after;
        self
    }

    /// A connection that delivers this many events is healthy: it resets
    /// the attempt counter. `None`: events never do (only
    /// [`healthy_after`](Self::healthy_after)). Values below 1 count as 1.
    ///
    /// The default, 2, lets the hub's `welcome` greeting alone not count; a
    /// server that always sends this many events per connection and then
    /// hangs up is retried at the base delay each time, so raise it (or set
    /// `None`) against such a server.
    #[must_use]
    pub fn with_healthy_events(mut self, events: Option<u32>) -> Self {
        self.healthy_events = events.map(|n| n.max(1));
        self
    }

    /// How long a connection must stay open to count as healthy.
    pub fn healthy_after(&self) -> Option<Duration> {
        self.healthy_after
    }

    /// How many events make a connection healthy.
    pub fn healthy_events(&self) -> Option<u32> {
        self.healthy_events
    }

    /// The configured backoff base.
    pub fn base_delay(&self) -> Duration {
        self.base_delay
    }

    /// The cap on the jittered backoff.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The maximum number of consecutive failed attempts, if limited.
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The fatal event name, if any.
    pub fn fatal_event(&self) -> Option<&str> {
        self.fatal_event.as_deref()
    }
}

/// Why the policy closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The application called [`ReconnectPolicy::close`].
    Local,
    /// The server answered with a status that means "stop" (see
    /// [`classify`]).
    HttpStatus,
    /// The server answered 200 without a `text/event-stream` content type.
    WrongContentType,
    /// The server sent the configured fatal event.
    FatalEvent,
    /// The configured maximum of consecutive attempts failed.
    AttemptsExhausted,
    /// The last event id the server sent cannot be sent back as a
    /// `Last-Event-ID` header (it holds a control character, see
    /// [`is_sendable_last_event_id`]); reconnecting without it would
    /// silently lose the events in between.
    UnsendableLastEventId,
    /// A connection attempt failed in a way retrying cannot fix (reported
    /// with [`ReconnectPolicy::on_fatal_connect_error`]: for example the
    /// server's TLS certificate is untrusted, expired or for another host).
    FatalConnectError,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Local => "closed locally",
            Self::HttpStatus => "the server answered with a fatal status",
            Self::WrongContentType => "the response is not text/event-stream",
            Self::FatalEvent => "the server sent its fatal event",
            Self::AttemptsExhausted => "reconnection attempts exhausted",
            Self::UnsendableLastEventId => {
                "the last event id cannot be sent as a Last-Event-ID header"
            }
            Self::FatalConnectError => "the connection failed in a way retrying cannot fix",
        })
    }
}

/// How a connection ended for good.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseInfo {
    /// Why.
    pub reason: CloseReason,
    /// The HTTP status involved: the fatal one, or for
    /// [`CloseReason::AttemptsExhausted`] the last failed attempt's (`None`
    /// after a network error).
    pub status: Option<u16>,
    /// The application closed (by [`ReconnectPolicy::close`]), rather than
    /// the server or the network.
    pub is_local: bool,
    /// The server said not to come back (fatal status, wrong content type,
    /// fatal event), sent an id the client cannot send back, or cannot be
    /// reached in a way retrying would fix (a refused certificate).
    pub fatal: bool,
}

impl CloseInfo {
    fn local() -> Self {
        Self {
            reason: CloseReason::Local,
            status: None,
            is_local: true,
            fatal: false,
        }
    }

    fn fatal(reason: CloseReason, status: Option<u16>) -> Self {
        Self {
            reason,
            status,
            is_local: false,
            fatal: true,
        }
    }
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)?;
        if let Some(status) = self.status {
            write!(f, " (status {status})")?;
        }
        Ok(())
    }
}

/// Where the connection is, for state callbacks or a state stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Connecting now (first connection, or after [`ReconnectPolicy::reconnect`]).
    Connecting,
    /// Connected and reading the stream.
    Open,
    /// Waiting `delay`, then making retry number `attempt`, until its outcome
    /// is reported.
    Reconnecting {
        /// The retry number, from 1; reset by a healthy connection (see the
        /// [module docs](self)).
        attempt: u32,
        /// The delay chosen before this attempt.
        delay: Duration,
    },
    /// Closed for good (or until [`ReconnectPolicy::reconnect`], unless the
    /// close was local).
    Closed(CloseInfo),
}

/// What the client must do next.
#[must_use = "the action says whether to connect, wait or stop"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to change: keep reading (or keep waiting).
    Continue,
    /// Drop any current connection and connect now.
    Connect {
        /// The `Last-Event-ID` header to send, if any.
        last_event_id: Option<String>,
    },
    /// Drop any current connection, wait `delay`, then connect and report
    /// the outcome.
    ConnectAfter {
        /// How long to wait.
        delay: Duration,
        /// The retry number, from 1.
        attempt: u32,
        /// The `Last-Event-ID` header to send, if any.
        last_event_id: Option<String>,
    },
    /// Drop any current connection and stop.
    Close(CloseInfo),
}

/// What a response's status and content type mean for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The stream is open.
    Open,
    /// A transient failure: back off and retry.
    Retry,
    /// Stop, for this reason.
    Fatal(CloseReason),
}

/// Classifies a response by its status and `Content-Type` header.
///
/// | status | verdict |
/// |---|---|
/// | 200 with `text/event-stream` (any case, parameters allowed) | open |
/// | 200 with another or no content type | fatal ([`CloseReason::WrongContentType`]) |
/// | other 2xx (204: the server says stop), 1xx, 3xx | fatal ([`CloseReason::HttpStatus`]) |
/// | 408, 429, 5xx | retry |
/// | other 4xx, anything outside 100..=599 | fatal ([`CloseReason::HttpStatus`]) |
///
/// # Examples
///
/// ```
/// use ssehub_core::reconnect::{classify, CloseReason, Verdict};
///
/// assert_eq!(classify(200, Some("Text/Event-Stream; charset=utf-8")), Verdict::Open);
/// assert_eq!(classify(503, None), Verdict::Retry);
/// assert_eq!(classify(404, None), Verdict::Fatal(CloseReason::HttpStatus));
/// assert_eq!(classify(200, Some("text/html")), Verdict::Fatal(CloseReason::WrongContentType));
/// ```
pub fn classify(status: u16, content_type: Option<&str>) -> Verdict {
    match status {
        200 if content_type.is_some_and(is_event_stream) => Verdict::Open,
        200 => Verdict::Fatal(CloseReason::WrongContentType),
        408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Fatal(CloseReason::HttpStatus),
    }
}

fn is_event_stream(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().eq_ignore_ascii_case("text/event-stream")
}

/// Whether `id` can be sent as a `Last-Event-ID` header value: every byte
/// is a tab, or at least a space and not DEL (RFC 9110 `field-value`, as
/// the `http` crate checks it). The decoder already refuses NUL, CR and LF
/// in ids; other control characters (`7\x01x`) reach here and are
/// refused.
///
/// # Examples
///
/// ```
/// use ssehub_core::reconnect::is_sendable_last_event_id;
///
/// assert!(is_sendable_last_event_id("1700000000-41"));
/// assert!(is_sendable_last_event_id("caf\u{e9}\ttab"));
/// assert!(!is_sendable_last_event_id("7\u{1}x"));
/// assert!(!is_sendable_last_event_id("del\u{7f}"));
/// ```
pub fn is_sendable_last_event_id(id: &str) -> bool {
    id.bytes().all(|b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

/// Parses a `Retry-After` header value: delta-seconds (`"120"`) or an
/// IMF-fixdate (`"Sun, 06 Nov 1994 08:49:37 GMT"`), the latter measured from
/// `now` (a date in the past gives zero).
///
/// Returns `None` for anything else, including the obsolete RFC 850 and
/// asctime date forms, which RFC 9110 forbids senders to generate: an
/// unreadable `Retry-After` is ignored, not an error.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use ssehub_core::reconnect::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // 08:49:30 that day
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
///     Some(Duration::from_secs(7)),
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.bytes().fold(0u64, |acc, digit| {
            acc.saturating_mul(10)
                .saturating_add(u64::from(digit - b'0'))
        });
        return Some(Duration::from_secs(secs));
    }
    let at = parse_imf_fixdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `day-name "," SP 2DIGIT SP month SP 4DIGIT SP 2DIGIT ":" 2DIGIT ":" 2DIGIT SP "GMT"`.
fn parse_imf_fixdate(value: &str) -> Option<SystemTime> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = value.split(' ');
    let day_name = parts.next()?.strip_suffix(',')?;
    let day = parts.next()?;
    let month = parts.next()?;
    let year = parts.next()?;
    let time = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() || !DAYS.contains(&day_name) {
        return None;
    }
    let day = digits(day, 2)?;
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let year = digits(year, 4)?;
    let mut hms = time.split(':');
    let hour = digits(hms.next()?, 2)?;
    let minute = digits(hms.next()?, 2)?;
    let second = digits(hms.next()?, 2)?;
    if hms.next().is_some()
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    // Years before 1970 count as "long past".
    let secs = u64::try_from(secs).unwrap_or(0);
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn digits(s: &str, len: usize) -> Option<i64> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: i64, month: u64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1..=12).
fn days_from_civil(year: i64, month: u64, day: i64) -> i64 {
    // Count years from March, so the leap day ends the year.
    let (year, month) = if month <= 2 {
        (year - 1, month as i64 + 9)
    } else {
        (year, month as i64 - 3)
    };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The reconnect state machine. See the [module docs](self) for the rules.
///
/// # Examples
///
/// A server that fails once, then serves an event, then ends the stream:
///
/// ```
/// use std::time::Duration;
/// use ssehub_core::codec::MessageEvent;
/// use ssehub_core::reconnect::{Action, ReconnectConfig, ReconnectPolicy, SplitMix64, State};
///
/// let config = ReconnectConfig::new().with_base_delay(Duration::from_secs(1));
/// let mut policy = ReconnectPolicy::new(config, SplitMix64::new(7));
/// assert_eq!(policy.start(), Action::Connect { last_event_id: None });
///
/// let Action::ConnectAfter { delay, attempt: 1, .. } = policy.on_response(503, None, None) else {
///     panic!("a 503 is retried");
/// };
/// assert!(delay <= Duration::from_secs(1));
///
/// assert_eq!(policy.on_response(200, Some("text/event-stream"), None), Action::Continue);
/// assert_eq!(policy.state(), &State::Open);
/// let event = MessageEvent { event: "message".into(), data: "hi".into(), last_event_id: "41".into() };
/// assert_eq!(policy.on_event(&event), Action::Continue);
/// // One event is no proof of health (it may be a greeting); staying open
/// // for `healthy_after` is, as reported by the caller's timer.
/// assert_eq!(policy.on_healthy(), Action::Continue);
///
/// match policy.on_stream_end() {
///     Action::ConnectAfter { attempt, last_event_id, .. } => {
///         assert_eq!(attempt, 1); // reset: the connection was healthy
///         assert_eq!(last_event_id.as_deref(), Some("41"));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
pub struct ReconnectPolicy<R = SplitMix64> {
    config: ReconnectConfig,
    rng: R,
    state: State,
    /// Consecutive failures since the last healthy connection (or manual
    /// reconnect): the number of the retry being scheduled.
    failures: u32,
    /// Events delivered by the open connection (for `healthy_events`).
    events_this_connection: u32,
    server_retry: Option<Duration>,
    last_event_id: Option<String>,
}

impl<R> fmt::Debug for ReconnectPolicy<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectPolicy")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("failures", &self.failures)
            .field("server_retry", &self.server_retry)
            .field("last_event_id", &self.last_event_id)
            .finish_non_exhaustive()
    }
}

impl<R: RandomSource> ReconnectPolicy<R> {
    /// A policy in state [`State::Connecting`], drawing jitter from `rng`.
    pub fn new(config: ReconnectConfig, rng: R) -> Self {
        Self {
            config,
            rng,
            state: State::Connecting,
            failures: 0,
            events_this_connection: 0,
            server_retry: None,
            last_event_id: None,
        }
    }

    /// Starts with this last event id (for example one persisted by an
    /// earlier session); an empty id means none.
    #[must_use]
    pub fn with_last_event_id(mut self, id: impl Into<String>) -> Self {
        self.set_last_event_id(id.into());
        self
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The settings.
    pub fn config(&self) -> &ReconnectConfig {
        &self.config
    }

    /// The last event id seen (`None` if none, or if the stream set it to
    /// the empty string).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The base of the backoff now: the server's `retry:` if it sent one,
    /// else the configured base; at most [`DELAY_LIMIT`].
    pub fn base_delay(&self) -> Duration {
        self.server_retry
            .unwrap_or(self.config.base_delay)
            .min(DELAY_LIMIT)
    }

    /// The consecutive failures counted so far (the attempt number of the
    /// last scheduled retry; 0 after a healthy connection).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The first action: connect now, while the state is
    /// [`State::Connecting`] (otherwise [`Action::Continue`]); or close with
    /// [`CloseReason::UnsendableLastEventId`] if the starting id cannot be
    /// sent.
    pub fn start(&mut self) -> Action {
        match self.state {
            State::Connecting => self.connect_now(),
            _ => Action::Continue,
        }
    }

    /// Reports the response to a connection attempt, with its `Retry-After`
    /// if any (see [`parse_retry_after`]).
    ///
    /// Opens ([`Action::Continue`]), schedules a retry, or closes, as
    /// [`classify`] says. Ignored unless connecting or reconnecting.
    pub fn on_response(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        retry_after: Option<Duration>,
    ) -> Action {
        if !self.is_connecting() {
            return Action::Continue;
        }
        match classify(status, content_type) {
            Verdict::Open => {
                self.state = State::Open;
                self.events_this_connection = 0;
                Action::Continue
            }
            Verdict::Retry => self.schedule(Some(status), retry_after),
            Verdict::Fatal(reason) => self.close_with(CloseInfo::fatal(reason, Some(status))),
        }
    }

    /// Reports that a connection attempt failed before any response
    /// (DNS, refused, TLS, timeout). Ignored unless connecting or
    /// reconnecting.
    pub fn on_connect_error(&mut self) -> Action {
        if !self.is_connecting() {
            return Action::Continue;
        }
        self.schedule(None, None)
    }

    /// Reports that a connection attempt failed in a way retrying cannot
    /// fix (a refused TLS certificate): closes with
    /// [`CloseReason::FatalConnectError`], `fatal: true`. Ignored unless
    /// connecting or reconnecting.
    pub fn on_fatal_connect_error(&mut self) -> Action {
        if !self.is_connecting() {
            return Action::Continue;
        }
        self.close_with(CloseInfo::fatal(CloseReason::FatalConnectError, None))
    }

    /// Reports a decoded frame: the shorthand for [`Self::on_event`],
    /// [`Self::on_retry`] and [`Self::on_last_event_id`]. Comments change
    /// nothing.
    pub fn on_frame(&mut self, frame: &Frame) -> Action {
        match frame {
            Frame::Event(event) => self.on_event(event),
            Frame::Retry(retry) => self.on_retry(*retry),
            Frame::LastEventId(id) => self.on_last_event_id(id),
            _ => Action::Continue,
        }
    }

    /// Reports a delivered event: records its last event id, counts it
    /// towards [`ReconnectConfig::healthy_events`] (resetting the attempt
    /// counter when reached), and closes if it is the configured fatal
    /// event. Ignored unless open.
    pub fn on_event(&mut self, event: &MessageEvent) -> Action {
        if self.state != State::Open {
            return Action::Continue;
        }
        self.set_last_event_id(event.last_event_id.clone());
        self.events_this_connection = self.events_this_connection.saturating_add(1);
        if self
            .config
            .healthy_events
            .is_some_and(|n| self.events_this_connection >= n)
        {
            self.failures = 0;
        }
        if self.config.fatal_event.as_deref() == Some(event.event.as_str()) {
            return self.close_with(CloseInfo::fatal(CloseReason::FatalEvent, None));
        }
        Action::Continue
    }

    /// Reports a last event id set by a block without data
    /// ([`Frame::LastEventId`]). Ignored unless open.
    pub fn on_last_event_id(&mut self, id: &str) -> Action {
        if self.state == State::Open {
            self.set_last_event_id(id.to_owned());
        }
        Action::Continue
    }

    /// Reports that the open connection has stayed open for
    /// [`ReconnectConfig::healthy_after`]: it is healthy, and the attempt
    /// counter resets. The caller times this (the policy reads no clock),
    /// from the moment the response opened the stream. Ignored unless open.
    pub fn on_healthy(&mut self) -> Action {
        if self.state == State::Open {
            self.failures = 0;
        }
        Action::Continue
    }

    /// Reports the server's `retry:` value: from now on the base of the
    /// backoff (cut to [`DELAY_LIMIT`]). Ignored once closed.
    pub fn on_retry(&mut self, retry: Duration) -> Action {
        if !matches!(self.state, State::Closed(_)) {
            self.server_retry = Some(retry);
        }
        Action::Continue
    }

    /// Reports that the open stream ended cleanly. Schedules a reconnect.
    /// Ignored unless open.
    pub fn on_stream_end(&mut self) -> Action {
        self.on_disconnect()
    }

    /// Reports that the open stream failed (read error, liveness timeout,
    /// decode error). Schedules a reconnect. Ignored unless open.
    pub fn on_stream_error(&mut self) -> Action {
        self.on_disconnect()
    }

    /// Closes for good, locally. Returns [`Action::Close`] the first time,
    /// [`Action::Continue`] when already closed; from now on every input is
    /// ignored and [`Self::reconnect`] does nothing.
    pub fn close(&mut self) -> Action {
        match &self.state {
            State::Closed(info) if info.is_local => Action::Continue,
            State::Closed(_) => {
                // Already stopped by the server: make the stop final.
                self.state = State::Closed(CloseInfo::local());
                Action::Continue
            }
            _ => self.close_with(CloseInfo::local()),
        }
    }

    /// Reconnects now, at the application's request: resets the attempt
    /// counter (the server's `retry:` stays the base). Also revives a policy
    /// the server or exhausted attempts closed, but not a local close.
    ///
    /// Closes with [`CloseReason::UnsendableLastEventId`] instead if the
    /// last event id cannot be sent.
    pub fn reconnect(&mut self) -> Action {
        if matches!(&self.state, State::Closed(info) if info.is_local) {
            return Action::Continue;
        }
        self.failures = 0;
        self.state = State::Connecting;
        self.connect_now()
    }

    fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting | State::Reconnecting { .. })
    }

    fn on_disconnect(&mut self) -> Action {
        if self.state != State::Open {
            return Action::Continue;
        }
        self.schedule(None, None)
    }

    fn connect_now(&mut self) -> Action {
        if let Some(close) = self.refuse_unsendable_id() {
            return close;
        }
        Action::Connect {
            last_event_id: self.last_event_id.clone(),
        }
    }

    /// Closes if the id a reconnect would send cannot be a header value.
    fn refuse_unsendable_id(&mut self) -> Option<Action> {
        let id = self.last_event_id.as_deref()?;
        if is_sendable_last_event_id(id) {
            return None;
        }
        Some(self.close_with(CloseInfo::fatal(CloseReason::UnsendableLastEventId, None)))
    }

    fn set_last_event_id(&mut self, id: String) {
        self.last_event_id = if id.is_empty() { None } else { Some(id) };
    }

    fn close_with(&mut self, info: CloseInfo) -> Action {
        self.state = State::Closed(info.clone());
        Action::Close(info)
    }

    /// One more consecutive failure: wait and retry, or give up.
    fn schedule(&mut self, status: Option<u16>, retry_after: Option<Duration>) -> Action {
        if let Some(close) = self.refuse_unsendable_id() {
            return close;
        }
        self.failures = self.failures.saturating_add(1);
        if self
            .config
            .max_attempts
            .is_some_and(|max| self.failures > max)
        {
            return self.close_with(CloseInfo {
                reason: CloseReason::AttemptsExhausted,
                status,
                is_local: false,
                fatal: false,
            });
        }
        let cap = self.config.max_delay.min(DELAY_LIMIT);
        let ceiling = backoff_ceiling(self.base_delay(), cap, self.failures);
        let floor = retry_after.unwrap_or_default().min(DELAY_LIMIT);
        let delay = full_jitter(ceiling, self.rng.next_u64()).max(floor);
        self.state = State::Reconnecting {
            attempt: self.failures,
            delay,
        };
        Action::ConnectAfter {
            delay,
            attempt: self.failures,
            last_event_id: self.last_event_id.clone(),
        }
    }
}

/// The smallest base that consecutive failures grow from. A server's
/// `retry: 0` asks for an immediate first reconnect, and gets it; but a
/// zero base never grows, so a server that keeps failing would be hammered
/// in a tight loop. From the second attempt on, growth starts from at least
/// this.
pub const MIN_GROWTH_BASE: Duration = Duration::from_millis(1);

/// `min(cap, base · 2^(attempt − 1))`, without overflow; from the second
/// attempt on, `base` is at least [`MIN_GROWTH_BASE`].
fn backoff_ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    if attempt <= 1 {
        return base.min(cap);
    }
    let base = base.max(MIN_GROWTH_BASE);
    let grown = 1u128
        .checked_shl(attempt.saturating_sub(1))
        .and_then(|factor| base.as_nanos().checked_mul(factor));
    match grown {
        // `nanos < cap.as_nanos()`, so the seconds fit in a u64.
        Some(nanos) if nanos < cap.as_nanos() => Duration::new(
            u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX),
            (nanos % 1_000_000_000) as u32,
        ),
        _ => cap,
    }
}

/// A uniform duration in `[0, ceiling]`, from one random value (ceilings
/// beyond `u64::MAX` nanoseconds, about 584 years, are treated as that).
fn full_jitter(ceiling: Duration, random: u64) -> Duration {
    let span = u128::from(u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX)) + 1;
    let nanos = (span * u128::from(random)) >> 64;
    // `nanos < span <= 2^64`: it fits.
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spans_zero_to_ceiling_inclusive() {
        let ceiling = Duration::from_secs(2);
        assert_eq!(full_jitter(ceiling, 0), Duration::ZERO);
        assert_eq!(full_jitter(ceiling, u64::MAX), ceiling);
        assert_eq!(full_jitter(ceiling, 1 << 63), Duration::from_secs(1));
        assert_eq!(
            full_jitter(Duration::MAX, u64::MAX),
            Duration::from_nanos(u64::MAX)
        );
        assert_eq!(full_jitter(Duration::ZERO, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn ceiling_doubles_then_caps_without_overflow() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(10);
        assert_eq!(backoff_ceiling(base, cap, 1), base);
        assert_eq!(backoff_ceiling(base, cap, 2), base * 2);
        assert_eq!(backoff_ceiling(base, cap, 4), base * 8);
        assert_eq!(backoff_ceiling(base, cap, 8), cap);
        assert_eq!(backoff_ceiling(base, cap, 33), cap);
        assert_eq!(backoff_ceiling(base, cap, u32::MAX), cap);
        // A zero base is honoured once, then grows from 1 ms.
        assert_eq!(backoff_ceiling(Duration::ZERO, cap, 1), Duration::ZERO);
        assert_eq!(backoff_ceiling(Duration::ZERO, cap, 3), MIN_GROWTH_BASE * 4);
        assert_eq!(backoff_ceiling(Duration::ZERO, cap, u32::MAX), cap);
        assert_eq!(
            backoff_ceiling(Duration::MAX, Duration::MAX, 40),
            Duration::MAX
        );
        // A sub-millisecond base grows from MIN_GROWTH_BASE after the first
        // attempt, without overflow.
        let tiny = Duration::from_nanos(1);
        assert_eq!(backoff_ceiling(tiny, Duration::MAX, 1), tiny);
        assert_eq!(
            backoff_ceiling(tiny, Duration::MAX, 41),
            MIN_GROWTH_BASE * (1 << 20) * (1 << 20)
        );
        assert_eq!(backoff_ceiling(tiny, Duration::MAX, 200), Duration::MAX);
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1994, 11, 6), 9075);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn splitmix_is_deterministic_and_varied() {
        let mut rng = SplitMix64::new(0);
        let first: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        let mut again = SplitMix64::new(0);
        assert_eq!(first, (0..4).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert!(first.windows(2).all(|w| w[0] != w[1]));
    }
}
