//! [`HubConfig`]: every limit and timeout of a hub, in one place.

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
    /// long. Only meaningful when the adapter reports flushes.
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
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            epoch: 0,
            max_clients: 100_000,
            max_topics_per_client: 64,
            max_clients_per_peer: 10_000,
            max_topics: 100_000,
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
        }
    }
}
