//! One error enum per operation that can fail, each with a `Display` that
//! says what to change.

use crate::codec::EncodeError;
use crate::reason::CloseReason;
use std::fmt;

/// Why a topic name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is empty.
    Empty,
    /// The name is longer than 256 bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a control character at this byte offset.
    ControlCharacter {
        /// Byte offset of the character.
        at: usize,
    },
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("topic name is empty"),
            Self::TooLong { len } => write!(f, "topic name is {len} bytes, over 256"),
            Self::ControlCharacter { at } => {
                write!(f, "topic name has a control character at byte {at}")
            }
        }
    }
}

impl std::error::Error for TopicError {}

/// Why [`Hub::reserve`](crate::Hub::reserve) refused a client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReserveError {
    /// The hub is shutting down.
    ShuttingDown,
    /// `max_clients` are connected.
    TooManyClients {
        /// The configured limit.
        limit: usize,
    },
    /// `max_clients_per_peer` clients share this peer tag.
    TooManyClientsForPeer {
        /// The configured limit.
        limit: usize,
    },
    /// More topics than `max_topics_per_client` were asked for.
    TooManyTopics {
        /// The configured limit.
        limit: usize,
    },
    /// A topic name is invalid.
    InvalidTopic {
        /// The offending name, lossily truncated to 64 bytes.
        topic: String,
        /// What is wrong with it.
        error: TopicError,
    },
}

impl fmt::Display for ReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShuttingDown => f.write_str("hub is shutting down"),
            Self::TooManyClients { limit } => write!(f, "client limit of {limit} reached"),
            Self::TooManyClientsForPeer { limit } => {
                write!(f, "per-peer client limit of {limit} reached")
            }
            Self::TooManyTopics { limit } => write!(f, "more than {limit} topics requested"),
            Self::InvalidTopic { topic, error } => write!(f, "topic {topic:?}: {error}"),
        }
    }
}

impl std::error::Error for ReserveError {}

/// Why [`Reservation::activate`](crate::Reservation::activate) did not make
/// the client visible. In every case the slot has been freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivateError {
    /// A close arrived between `reserve` and `activate`; the deferred cleanup
    /// ran and nothing is left behind.
    ClosedBeforeActivation(CloseReason),
    /// Creating the client's topics would exceed `max_topics`.
    TooManyTopics {
        /// The configured limit.
        limit: usize,
    },
    /// The client (or its peer) may not create that many new topics:
    /// `max_created_topics_per_client` or `max_created_topics_per_peer`.
    TopicBudget {
        /// The limit that stopped it.
        limit: usize,
    },
}

impl fmt::Display for ActivateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClosedBeforeActivation(reason) => {
                write!(f, "client closed ({reason}) before activation")
            }
            Self::TooManyTopics { limit } => write!(f, "hub topic limit of {limit} reached"),
            Self::TopicBudget { limit } => {
                write!(
                    f,
                    "budget of {limit} new topics created by subscribing spent"
                )
            }
        }
    }
}

impl std::error::Error for ActivateError {}

/// Why a subscribe or unsubscribe was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// No live client has this id (closed, stale generation, never issued).
    UnknownClient,
    /// The topic name is invalid.
    InvalidTopic(TopicError),
    /// The client already has `max_topics_per_client` topics.
    TooManyTopicsForClient {
        /// The configured limit.
        limit: usize,
    },
    /// The hub already keeps `max_topics` topics.
    TooManyTopics {
        /// The configured limit.
        limit: usize,
    },
    /// The client (or its peer) may not create another topic:
    /// `max_created_topics_per_client` or `max_created_topics_per_peer`.
    TopicBudget {
        /// The limit that stopped it.
        limit: usize,
    },
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownClient => f.write_str("no live client with this id"),
            Self::InvalidTopic(e) => write!(f, "invalid topic: {e}"),
            Self::TooManyTopicsForClient { limit } => {
                write!(f, "client already has {limit} topics")
            }
            Self::TooManyTopics { limit } => write!(f, "hub topic limit of {limit} reached"),
            Self::TopicBudget { limit } => {
                write!(
                    f,
                    "budget of {limit} new topics created by subscribing spent"
                )
            }
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Why [`Hub::publish`](crate::Hub::publish) refused an event. Nothing was
/// published and no id was consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The topic name is invalid.
    InvalidTopic(TopicError),
    /// The event cannot be encoded.
    Encode(EncodeError),
    /// The topic does not exist and the hub already keeps `max_topics`.
    TooManyTopics {
        /// The configured limit.
        limit: usize,
    },
    /// The hub has been shut down.
    ShutDown,
    /// The hub's events are ordered by a backplane
    /// ([`Sequencing::External`](crate::Sequencing::External)): publish
    /// through it, and the hub gets the event through
    /// [`Hub::apply`](crate::Hub::apply).
    ExternallySequenced,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTopic(e) => write!(f, "invalid topic: {e}"),
            Self::Encode(e) => write!(f, "cannot encode event: {e}"),
            Self::TooManyTopics { limit } => write!(f, "hub topic limit of {limit} reached"),
            Self::ShutDown => f.write_str("hub has been shut down"),
            Self::ExternallySequenced => {
                f.write_str("events of this hub are sequenced by its backplane; publish there")
            }
        }
    }
}

/// Why [`Hub::apply`](crate::Hub::apply) refused an externally sequenced
/// event. Nothing was applied and the hub's position did not move.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyError {
    /// The hub assigns its own ids ([`Sequencing::Local`](crate::Sequencing::Local)).
    LocallySequenced,
    /// The event's epoch is not the hub's: the backplane changed epochs
    /// and [`Hub::begin_epoch`](crate::Hub::begin_epoch) must run first.
    EpochMismatch {
        /// The hub's epoch.
        expected: u64,
        /// The event's.
        found: u64,
    },
    /// The topic name is invalid.
    InvalidTopic(TopicError),
    /// The body is not whole events as the encoder writes them (ending
    /// with a blank line, LF line ends, no `id` field of its own).
    InvalidBody {
        /// Which rule the body breaks.
        reason: &'static str,
    },
    /// The body with its `id:` line is larger than `max_event_bytes`.
    TooLarge {
        /// Its size with the longest `id:` line.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The topic does not exist and the hub already keeps `max_topics`.
    TooManyTopics {
        /// The configured limit.
        limit: usize,
    },
    /// The hub has been shut down.
    ShutDown,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LocallySequenced => f.write_str("this hub sequences its own events"),
            Self::EpochMismatch { expected, found } => {
                write!(f, "event of epoch {found}, hub is in epoch {expected}")
            }
            Self::InvalidTopic(e) => write!(f, "invalid topic: {e}"),
            Self::InvalidBody { reason } => write!(f, "invalid event body: {reason}"),
            Self::TooLarge { size, limit } => {
                write!(f, "event of {size} bytes exceeds the limit of {limit}")
            }
            Self::TooManyTopics { limit } => write!(f, "hub topic limit of {limit} reached"),
            Self::ShutDown => f.write_str("hub has been shut down"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// Why [`Reservation::supply_history`](crate::Reservation::supply_history)
/// refused a history. The reservation is unchanged: without a history, a
/// resume on an externally sequenced hub gets a reset.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryError {
    /// A topic's events are not in strictly increasing order, or lie
    /// outside `complete_after < seq <= through`.
    OutOfOrder {
        /// The topic.
        topic: String,
    },
    /// `complete_after` is above `through`.
    BadRange {
        /// The topic.
        topic: String,
    },
    /// An event body is not whole events without an `id` field, or is
    /// larger than `max_event_bytes`.
    InvalidBody {
        /// The topic.
        topic: String,
        /// The event's sequence number.
        seq: u64,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfOrder { topic } => {
                write!(
                    f,
                    "history of {topic:?} is out of order or out of its range"
                )
            }
            Self::BadRange { topic } => {
                write!(
                    f,
                    "history of {topic:?} is complete after a point past its end"
                )
            }
            Self::InvalidBody { topic, seq } => {
                write!(f, "history of {topic:?}: event {seq} has an invalid body")
            }
        }
    }
}

impl std::error::Error for HistoryError {}

impl std::error::Error for PublishError {}

/// Why [`Hub::send`](crate::Hub::send) did not enqueue an event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No live client has this id (closed, stale generation, never issued).
    UnknownClient,
    /// The event cannot be encoded.
    Encode(EncodeError),
    /// The client's queue was full: it has been closed as a slow consumer.
    SlowConsumer,
    /// The client was closed, for this reason, before the event got in.
    Closed(CloseReason),
    /// A pre-encoded frame given to [`Hub::send_frame`](crate::Hub::send_frame)
    /// is not one whole event as the encoder writes it (it must end with a
    /// blank line, contain no CR, and set no `id`, which would move the
    /// client's `Last-Event-ID` out of the hub-wide order).
    InvalidFrame {
        /// Which rule the frame breaks.
        reason: &'static str,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownClient => f.write_str("no live client with this id"),
            Self::Encode(e) => write!(f, "cannot encode event: {e}"),
            Self::SlowConsumer => f.write_str("client queue full; client closed as slow consumer"),
            Self::Closed(reason) => write!(f, "client already closed ({reason})"),
            Self::InvalidFrame { reason } => write!(f, "invalid frame: {reason}"),
        }
    }
}

impl std::error::Error for SendError {}

/// A broken invariant found by [`Hub::check_invariants`](crate::Hub::check_invariants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    /// The invariant's name as DESIGN.md gives it (`"I1"` … `"I8"`).
    pub invariant: &'static str,
    /// What was found.
    pub detail: String,
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.invariant, self.detail)
    }
}

impl std::error::Error for InvariantViolation {}
