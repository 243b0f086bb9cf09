//! The cluster backplane (SPEC §11): several `ssehub` nodes acting as one
//! hub through Redis.
//!
//! | module | holds |
//! |---|---|
//! | [`Backplane`] | a node's link: publish through Redis, history for resumes, metrics |
//! | `follower` | the task applying the events channel in order: gaps, catch-ups, probes, epochs |
//! | `presence` | this node's subscribers and client ids per topic in Redis under a TTL, bounded; cluster-wide counts and lists |
//! | `metrics` | counters, [`LinkState`] and their Prometheus text |
//! | [`scripts`] | the Lua scripts (publish, history cut, probe), key names, typed replies |
//! | [`store`] | [`Store`]: the command connection running them |
//! | [`wire`] | [`Message`]: the events channel's payload |
//!
//! Data flow, one way as in the rest of the adapter: `POST /publish` on any
//! node runs the publish script, which assigns the cluster-wide
//! `<epoch>-<seq>`, appends to the topic's stream and publishes on the one
//! events channel (invariant ONE-STEP, [`scripts`]). Every node follows
//! that channel and applies each event to its hub in seq order; a node
//! never applies its own publishes directly, so every node writes the same
//! `id:` lines in the same order (DESIGN.md "Cluster").

mod backplane;
mod follower;
mod metrics;
mod presence;
pub mod scripts;
pub mod store;
pub mod wire;

pub use backplane::{Backplane, ClusterCount, ClusterPublishError};
pub use metrics::{BackplaneCounters, LinkState};
pub use presence::{
    PresenceLimits, PRESENCE_CLIENTS_PER_NODE, PRESENCE_CLIENTS_PER_TOPIC, PRESENCE_TOPICS,
};
pub use scripts::{Cut, Keys, ReplyError, TopicCut};
pub use store::{
    NodeClients, NodePresence, NodeTotals, PresenceWrite, Retention, Store, TopicPart,
};
pub use wire::{Message, WireError};

use std::fmt;
use std::time::Duration;

/// Why a backplane operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BackplaneError {
    /// Redis refused the command or the connection failed.
    Redis(redis::RedisError),
    /// Redis did not answer within the command timeout.
    Timeout,
    /// Redis answered something the scripts never return.
    Reply(ReplyError),
    /// The epoch changed between two reads that had to see the same one.
    EpochChanged,
}

impl fmt::Display for BackplaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "redis: {e}"),
            Self::Timeout => f.write_str("redis did not answer in time"),
            Self::Reply(e) => write!(f, "{e}"),
            Self::EpochChanged => f.write_str("the cluster's epoch changed during the read"),
        }
    }
}

impl std::error::Error for BackplaneError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            Self::Reply(e) => Some(e),
            Self::Timeout | Self::EpochChanged => None,
        }
    }
}

impl From<redis::RedisError> for BackplaneError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

impl From<ReplyError> for BackplaneError {
    fn from(e: ReplyError) -> Self {
        Self::Reply(e)
    }
}

/// How a node joins a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The Redis URL (`redis://host:port/db`, `redis+unix:///path`).
    pub url: String,
    /// This node's name: its probe channel, logs and metrics.
    pub node_name: String,
    /// Prefix of every key and channel, so hubs can share one Redis.
    pub prefix: String,
    /// History kept in Redis per topic.
    pub retention: Retention,
    /// After this long without any message on the subscription, the node
    /// probes it.
    pub probe_interval: Duration,
    /// A probe not seen back within this restarts the subscription.
    pub probe_timeout: Duration,
    /// Deadline of every Redis command.
    pub command_timeout: Duration,
    /// First delay between reconnects of the subscription (doubling).
    pub reconnect_min: Duration,
    /// Longest delay between reconnects.
    pub reconnect_max: Duration,
    /// How often this node refreshes its presence (subscribers per topic)
    /// in Redis; it expires after three intervals without a refresh.
    pub presence_interval: Duration,
    /// How much of its presence this node writes to Redis (topics, client
    /// ids per topic and in all; invariant CP3).
    pub presence_limits: PresenceLimits,
}

impl ClusterConfig {
    /// Defaults for `url`: prefix `ssehub`, a random node name, 1024 events
    /// and 5 minutes of history per topic, meta kept a day, probes after 5 s
    /// of silence, 2 s command timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_name: format!("node-{}", &crate::server::config::random_token()[..8]),
            prefix: "ssehub".to_owned(),
            retention: Retention {
                max_len: 1024,
                age: Duration::from_secs(300),
                meta_ttl: Duration::from_secs(24 * 3600),
            },
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            presence_interval: Duration::from_secs(2),
            presence_limits: PresenceLimits::default(),
        }
    }

    /// With this node name.
    #[must_use]
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = name.into();
        self
    }

    /// With this key prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}
