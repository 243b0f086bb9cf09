//! # ssehub-core
//!
//! The synchronous, runtime-agnostic heart of ssehub: a registry of
//! Server-Sent Events clients that cannot leak, lose or misroute a client,
//! whatever order connects, closes, subscriptions and broadcasts happen in.
//! No async, no IO, no clock: transports call in, and the core hands back
//! values (frames, reports, decisions) for them to act on.
//!
//! | module | holds |
//! |---|---|
//! | `hub` | [`Hub`]: client slots and their lifecycle, subscriptions, the hub-wide publish order, timers, shutdown, presence snapshots |
//! | `reason` | [`CloseReason`], shared by every layer below the hub |
//! | `clock` | [`Clock`]: the time source a hub may stamp pushes with |
//! | `topics` | topic names, subscriber indexes, replay rings |
//! | `presence_feed` | [`PresenceConfig`] (which topics have join/leave events) and each topic's rate limiter and coalescing buffer |
//! | `queue` | the bounded per-client queue and its reader, [`ClientStream`] |
//! | `deadline` | heartbeat / idle / stall deadlines in O(what fires) |
//! | [`codec`] | the `text/event-stream` encoder and incremental decoder |
//! | [`reconnect`] | the client's sans-IO reconnect policy |
//! | [`metrics`] | [`MetricsSnapshot`] |
//! | `sync` | the lock/atomic facade that loom swaps out (`--cfg ssehub_loom`) |
//!
//! The invariants I1–I8 that every change must keep are stated in the
//! hub's module docs and in DESIGN.md.
//!
//! ```
//! use ssehub_core::{codec::Event, CloseReason, Hub, HubConfig, ReserveOptions};
//! use std::time::Instant;
//!
//! let hub = Hub::new(HubConfig::default(), Instant::now());
//! let reservation = hub.reserve(ReserveOptions::new().topic("news"))?;
//! let id = reservation.id();
//! // A close that arrives before activation is deferred, not lost:
//! assert_eq!(hub.close(id, CloseReason::ClientGone), ssehub_core::CloseOutcome::Deferred);
//! assert!(reservation.activate().is_err());
//! assert_eq!(hub.len(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod clock;
pub mod codec;
mod config;
mod deadline;
mod error;
mod history;
mod hub;
mod id;
pub mod metrics;
mod presence_feed;
mod queue;
mod reason;
pub mod reconnect;
mod replay;
mod spare;
#[doc(hidden)]
pub mod sync;
mod topics;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, HubConfig, Sequencing};
pub use error::{
    ActivateError, ApplyError, HistoryError, InvariantViolation, PublishError, ReserveError,
    SendError, SubscribeError, TopicError,
};
pub use history::{History, TopicHistory};
pub use hub::{
    Applied, ClientList, ClientPage, CloseGuard, CloseOutcome, Hub, ParseCursorError,
    ParseSortError, PublishReport, Reservation, ReserveOptions, ShutdownReport, TickReport,
    TopicCursor, TopicList, TopicPage, TopicPresence, TopicSort, TopicSummary,
    DEFAULT_PRESENCE_PAGE, MAX_PRESENCE_PAGE,
};
pub use id::{ClientId, EventId, ParseIdError};
pub use metrics::MetricsSnapshot;
pub use presence_feed::{pattern_matches, PresenceConfig, MAX_SUBJECT_LEN};
pub use queue::{ClientStream, Drain};
pub use reason::CloseReason;
pub use topics::{validate_topic, MAX_TOPIC_LEN};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
