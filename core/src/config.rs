//! [`HubConfig`]: every limit and timeout of a hub, in one place.

use crate::presence_feed::PresenceConfig;
use std::fmt;
use std::time::Duration;

/// Limits, timeouts and names that shape a [`Hub`](crate::Hub).
///
/// Build one from [`HubConfig::default`] with struct update syntax:
///
/// ```
/// use ssehub_core::HubConfig;
/// use std::time::Duration;
///
/// let config = HubConfig {
///     epoch: 1_732_500_000_000,
///     heartbeat_interval: Some(Duration::from_secs(10)),
///     ..HubConfig::default()
/// };
/// assert_eq!(config.queue_max_frames, HubConfig::default().queue_max_frames);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Epoch of this hub instance, the first half of every event id. Use a
    /// value that changes across restarts (the adapter uses the start time
    /// in milliseconds), so that ids from a previous instance are
    /// recognised and answered with a reset. The core never reads a clock.
    pub epoch: u64,
    /// Most clients (reserved or active) at once.
    pub max_clients: usize,
    /// Most topics one client may subscribe to.
    pub max_topics_per_client: usize,
    /// Most clients that share one peer tag (e.g. one IP address).
    pub max_clients_per_peer: usize,
    /// Most topics the hub keeps at once (with subscribers or retained events).
    pub max_topics: usize,
    /// Most topics one client (one connection) may create by subscribing,
    /// over its lifetime: topics that did not exist when it asked for
    /// them. 0: subscribers create no topics, only publishers do.
    pub max_created_topics_per_client: usize,
    /// Most topics that clients sharing one peer tag may have created by
    /// subscribing and that still exist. Creating topics is what fills the
    /// table, so this, not the per-peer client limit, is what bounds how
    /// much of it one address can take.
    pub max_created_topics_per_peer: usize,
    /// Hub-wide bound of the bytes all replay rings retain together. Past
    /// it, the oldest retained events are evicted first (with their gap
    /// recorded, so a client that needed them gets a reset).
    pub replay_max_total_bytes: usize,
    /// Bound of a client's queue in frames.
    pub queue_max_frames: usize,
    /// Bound of a client's queue in bytes.
    pub queue_max_bytes: usize,
    /// Largest encoded frame that `publish` or `send` accepts.
    pub max_event_bytes: usize,
    /// Events each topic retains for replay.
    pub replay_capacity: usize,
    /// Age after which retained events expire (checked by `tick`).
    pub replay_max_age: Option<Duration>,
    /// Send a heartbeat after this long without any frame to a client.
    pub heartbeat_interval: Option<Duration>,
    /// Send heartbeats as this named event (with empty data) instead of a
    /// comment, so browser scripts can see them.
    pub heartbeat_event: Option<String>,
    /// Close a client with `IdleTimeout` when no flush was reported for this
    /// long. Only meaningful when the adapter reports flushes. A quiet
    /// client stays alive only through heartbeats, so [`validate`] wants
    /// a heartbeat and this at least `heartbeat_interval + timer_resolution`.
    ///
    /// [`validate`]: HubConfig::validate
    pub idle_timeout: Option<Duration>,
    /// Close a client with `WriteStalled` when its queue is non-empty and no
    /// flush was reported for this long.
    pub write_stall_timeout: Option<Duration>,
    /// Name of the event that tells a client its `Last-Event-ID` cannot be
    /// honoured and it must resynchronise.
    pub reset_event: String,
    /// `retry:` hints of the shutdown frames are spread over this window,
    /// per client, so a restart is not met by every client at once.
    pub shutdown_retry_window: (Duration, Duration),
    /// Granularity of deadlines: they fire at most this much late, never early.
    pub timer_resolution: Duration,
    /// Join/leave events: the topic patterns that have them (none by
    /// default) and their per-topic rate limit.
    pub presence: PresenceConfig,
    /// Who assigns event ids: this hub ([`Sequencing::Local`], the
    /// default), or a backplane that orders events for several hubs
    /// ([`Sequencing::External`]).
    pub sequencing: Sequencing,
}

/// Who assigns the ids of a hub's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sequencing {
    /// [`Hub::publish`](crate::Hub::publish) assigns them: one process,
    /// no external service.
    #[default]
    Local,
    /// A backplane assigns them (one order for a cluster of hubs), and
    /// events enter only through [`Hub::apply`](crate::Hub::apply); the
    /// epoch follows the backplane's ([`Hub::begin_epoch`](crate::Hub::begin_epoch)).
    /// `publish` is refused, and a resume needs the history the caller
    /// reads from the backplane ([`Reservation::supply_history`](crate::Reservation::supply_history)).
    External,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            epoch: 0,
            max_clients: 100_000,
            max_topics_per_client: 64,
            max_clients_per_peer: 10_000,
            max_topics: 100_000,
            max_created_topics_per_client: 16,
            max_created_topics_per_peer: 1_000,
            replay_max_total_bytes: 256 << 20,
            queue_max_frames: 1024,
            queue_max_bytes: 4 << 20,
            max_event_bytes: 1 << 20,
            replay_capacity: 1024,
            replay_max_age: Some(Duration::from_secs(300)),
            heartbeat_interval: Some(Duration::from_secs(15)),
            heartbeat_event: None,
            idle_timeout: Some(Duration::from_secs(60)),
            write_stall_timeout: Some(Duration::from_secs(30)),
            reset_event: "reset".to_owned(),
            shutdown_retry_window: (Duration::from_secs(1), Duration::from_secs(10)),
            timer_resolution: Duration::from_millis(10),
            presence: PresenceConfig::default(),
            sequencing: Sequencing::Local,
        }
    }
}

/// A [`HubConfig`] value that cannot work, found by [`HubConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit or bound that must be at least 1 is 0.
    Zero(&'static str),
    /// A duration that must be positive is zero.
    ZeroDuration(&'static str),
    /// An event name that would break the frame (CR or LF in it).
    BadEventName(&'static str),
    /// The shutdown retry window ends before it starts.
    InvertedWindow,
    /// A presence pattern that no topic name could match (empty, too
    /// long, or with a control character).
    PresencePattern(String),
    /// An idle timeout without heartbeats: a healthy client on a quiet topic
    /// receives nothing, flushes nothing, and is dropped as idle.
    IdleWithoutHeartbeat,
    /// The idle timeout is shorter than `heartbeat_interval +
    /// timer_resolution`: the idle deadline can fire before (or in the same
    /// tick as) the heartbeat that would have kept a healthy quiet client
    /// alive, since each deadline may fire up to one resolution late.
    IdleBeforeHeartbeat {
        /// The configured idle timeout.
        idle_timeout: Duration,
        /// The configured heartbeat interval.
        heartbeat_interval: Duration,
        /// The configured timer resolution.
        timer_resolution: Duration,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zero(field) => write!(f, "{field} must be at least 1"),
            Self::ZeroDuration(field) => write!(f, "{field} must be longer than zero"),
            Self::BadEventName(field) => write!(f, "{field} must not contain CR or LF"),
            Self::InvertedWindow => f.write_str("shutdown_retry_window ends before it starts"),
            Self::PresencePattern(pattern) => write!(
                f,
                "presence pattern {pattern:?} is not a valid topic pattern"
            ),
            Self::IdleWithoutHeartbeat => f.write_str(
                "idle_timeout needs heartbeat_interval, or healthy quiet clients are dropped as idle",
            ),
            Self::IdleBeforeHeartbeat {
                idle_timeout,
                heartbeat_interval,
                timer_resolution,
            } => write!(
                f,
                "idle_timeout ({idle_timeout:?}) must be at least heartbeat_interval ({heartbeat_interval:?}) \
                 plus timer_resolution ({timer_resolution:?}), or healthy quiet clients are dropped as idle"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl HubConfig {
    /// Checks that the configuration can work. [`Hub::new`](crate::Hub::new)
    /// accepts any value (degenerate ones behave as documented: a zero
    /// queue bound closes every client as a slow consumer at its first
    /// frame); servers should call this on user-supplied configuration.
    ///
    /// Besides zero bounds and malformed names, it refuses timeouts that
    /// would drop a healthy quiet client (SPEC §5): an idle timeout without
    /// heartbeats, or one shorter than `heartbeat_interval +
    /// timer_resolution`.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let counts = [
            ("max_clients", self.max_clients),
            ("max_topics_per_client", self.max_topics_per_client),
            ("max_clients_per_peer", self.max_clients_per_peer),
            ("max_topics", self.max_topics),
            ("queue_max_frames", self.queue_max_frames),
            ("queue_max_bytes", self.queue_max_bytes),
            ("max_event_bytes", self.max_event_bytes),
            ("replay_max_total_bytes", self.replay_max_total_bytes),
        ];
        if let Some((field, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError::Zero(field));
        }
        let durations = [
            ("replay_max_age", self.replay_max_age),
            ("heartbeat_interval", self.heartbeat_interval),
            ("idle_timeout", self.idle_timeout),
            ("write_stall_timeout", self.write_stall_timeout),
            ("timer_resolution", Some(self.timer_resolution)),
        ];
        if let Some((field, _)) = durations.iter().find(|(_, d)| *d == Some(Duration::ZERO)) {
            return Err(ConfigError::ZeroDuration(field));
        }
        let names = [
            ("reset_event", Some(self.reset_event.as_str())),
            ("heartbeat_event", self.heartbeat_event.as_deref()),
        ];
        for (field, name) in names {
            if name.is_some_and(|n| n.contains(['\r', '\n'])) {
                return Err(ConfigError::BadEventName(field));
            }
        }
        if self.shutdown_retry_window.0 > self.shutdown_retry_window.1 {
            return Err(ConfigError::InvertedWindow);
        }
        let bad_pattern = |p: &&String| crate::topics::validate_topic(p).is_err();
        if let Some(bad) = self.presence.patterns.iter().find(bad_pattern) {
            return Err(ConfigError::PresencePattern(bad.clone()));
        }
        self.check_idle_after_heartbeat()
    }

    /// SPEC §5: a healthy quiet client is never dropped. Its only traffic is
    /// heartbeats, so the heartbeat must fire, and be flushed, before the
    /// idle deadline. Both deadlines round up to the timer resolution, so
    /// the heartbeat's tick comes strictly before the idle one only when
    /// `idle_timeout >= heartbeat_interval + timer_resolution`.
    fn check_idle_after_heartbeat(&self) -> Result<(), ConfigError> {
        let Some(idle_timeout) = self.idle_timeout else {
            return Ok(());
        };
        let Some(heartbeat_interval) = self.heartbeat_interval else {
            return Err(ConfigError::IdleWithoutHeartbeat);
        };
        let earliest = heartbeat_interval.saturating_add(self.timer_resolution);
        if idle_timeout < earliest {
            return Err(ConfigError::IdleBeforeHeartbeat {
                idle_timeout,
                heartbeat_interval,
                timer_resolution: self.timer_resolution,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_each_bad_value_is_named() {
        assert_eq!(HubConfig::default().validate(), Ok(()));
        let bad = HubConfig {
            queue_max_frames: 0,
            ..HubConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::Zero("queue_max_frames")));
        let bad = HubConfig {
            idle_timeout: Some(Duration::ZERO),
            ..HubConfig::default()
        };
        assert_eq!(
            bad.validate(),
            Err(ConfigError::ZeroDuration("idle_timeout"))
        );
        let bad = HubConfig {
            reset_event: "a\nb".into(),
            ..HubConfig::default()
        };
        assert_eq!(
            bad.validate(),
            Err(ConfigError::BadEventName("reset_event"))
        );
        let bad = HubConfig {
            shutdown_retry_window: (Duration::from_secs(2), Duration::from_secs(1)),
            ..HubConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::InvertedWindow));
    }
}
