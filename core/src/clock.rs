//! The time source a hub stamps pushes with.
//!
//! The core never reads a clock by itself. Deadlines are driven by the
//! instants the caller passes to [`Hub::tick`](crate::Hub::tick) and
//! [`Hub::flushed`](crate::Hub::flushed); a hub built with
//! [`Hub::with_clock`](crate::Hub::with_clock) also asks its [`Clock`] for
//! the time of every push (publish, send, replay), once per operation and
//! never per subscriber.
//!
//! Why pushes need it: the heartbeat and stall deadlines count from the
//! last push. A hub built with [`Hub::new`](crate::Hub::new) knows only the
//! last instant it was told, so a driver that sleeps until
//! [`TickReport::next_deadline`](crate::TickReport::next_deadline) would see
//! a frame queued while it slept stamped with the time it fell asleep: a
//! heartbeat right after that frame, or a stall close too early. With a
//! clock the stamp is the time of the push.
//!
//! Invariant: the hub's clock never runs backwards; an instant older than
//! one already seen is taken as the newer one.

use crate::sync::{Counter, PlainArc};
use std::fmt;
use std::time::{Duration, Instant};

/// A source of the current instant, injected into a hub.
///
/// Implement it over your runtime's clock (the tokio adapter uses tokio's,
/// so paused test time drives the hub too), or use [`SystemClock`] or
/// [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// [`Instant::now`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told: for tests and simulations.
///
/// Clones share the same time. Advance it from one thread at a time (a
/// test's driver); readers may be anywhere.
///
/// ```
/// use ssehub_core::{Clock, ManualClock};
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let clock = ManualClock::new(start);
/// clock.advance(Duration::from_millis(100));
/// assert_eq!(clock.now(), start + Duration::from_millis(100));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    start: Instant,
    offset: PlainArc<Counter>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &Duration::from_nanos(self.offset.get()))
            .finish()
    }
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            offset: PlainArc::new(Counter::default()),
        }
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Advance by raising to the sum: saturating, and never backwards.
        self.offset.max(self.offset.get().saturating_add(by));
    }

    /// Sets the clock to `to`, or leaves it where it is if `to` is older.
    pub fn set(&self, to: Instant) {
        let to =
            u64::try_from(to.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        self.offset.max(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let nanos = self.offset.get();
        self.start
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(self.start)
    }
}
