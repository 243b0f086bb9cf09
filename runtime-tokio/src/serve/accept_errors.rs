//! What the accept loop does when `accept` fails or a connection is
//! refused: back off (only when the failure is a shortage that retrying at
//! once cannot cure) and log at a bounded rate, with a count of what was not
//! logged.
//!
//! While descriptors are exhausted every `accept` fails at once, as often
//! as the loop asks; without a bound the log would grow by a line per
//! attempt. [`RateLimitedLog`] lets one line through per period and counts
//! the rest, reported with the next line that gets through.

use std::io;
use std::time::Duration;
use tokio::time::Instant;

/// How often a repeated warning is written at most.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(5);
/// The first back-off after a resource shortage.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
/// The longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Lets one event through per period and counts those held back.
#[derive(Debug)]
pub(crate) struct RateLimitedLog {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(held back since the last one)` when this event may be logged.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Events held back since the last one let through (and forgets them).
    pub(crate) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// Back-off and logging of failed `accept` calls.
#[derive(Debug)]
pub(crate) struct AcceptErrors {
    backoff: Duration,
    log: RateLimitedLog,
}

impl AcceptErrors {
    pub(crate) fn new() -> Self {
        Self {
            backoff: FIRST_BACKOFF,
            log: RateLimitedLog::new(LOG_EVERY),
        }
    }

    /// An `accept` succeeded: the next shortage starts from the first
    /// back-off again.
    pub(crate) fn succeeded(&mut self) {
        self.backoff = FIRST_BACKOFF;
    }

    /// Failures not logged since the last line (and forgets them), for a
    /// final summary.
    pub(crate) fn take_suppressed(&mut self) -> u64 {
        self.log.take_suppressed()
    }

    /// Records a failed `accept` (logging it if the rate allows) and returns
    /// how long to wait before the next: nothing for an error of that one
    /// connection (it was aborted before we took it), a doubling back-off
    /// for a shortage of descriptors or memory, unless `freed` says a
    /// descriptor was just released to cure it.
    pub(crate) fn failed(&mut self, error: &io::Error, freed: bool, now: Instant) -> Duration {
        let shortage = is_shortage(error);
        if let Some(suppressed) = self.log.allow(now) {
            tracing::warn!(
                %error,
                suppressed,
                shortage,
                "accept failed (at most one such line every {}s; `suppressed` counts the others)",
                LOG_EVERY.as_secs()
            );
        }
        if !shortage {
            return Duration::ZERO;
        }
        if freed {
            return FIRST_BACKOFF;
        }
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        pause
    }
}

/// Out of descriptors (process or system) or kernel memory: retrying at
/// once fails the same way.
pub(crate) fn is_shortage(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            error.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        error.kind() == io::ErrorKind::OutOfMemory
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_the_rest_counted() {
        let start = Instant::now();
        let mut log = RateLimitedLog::new(Duration::from_secs(5));
        assert_eq!(log.allow(start), Some(0));
        // An attempt every 50 ms for 25 s: 500 attempts.
        let mut lines = vec![];
        for i in 1..500u32 {
            if let Some(held) = log.allow(start + Duration::from_millis(50) * i) {
                lines.push(held);
            }
        }
        assert_eq!(lines, [99, 99, 99, 99], "one line per 5 s, with the count");
    }

    #[test]
    fn shortages_back_off_doubling_to_a_cap_and_success_resets() {
        let now = Instant::now();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let mut errors = AcceptErrors::new();
        let pauses: Vec<Duration> = (0..12)
            .map(|_| errors.failed(&emfile, false, now))
            .collect();
        assert_eq!(pauses[0], Duration::from_millis(1));
        assert_eq!(pauses[1], Duration::from_millis(2));
        assert_eq!(pauses[11], Duration::from_secs(1));
        assert_eq!(errors.failed(&emfile, true, now), FIRST_BACKOFF);
        errors.succeeded();
        assert_eq!(errors.failed(&emfile, false, now), FIRST_BACKOFF);
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(errors.failed(&aborted, false, now), Duration::ZERO);
    }
}
