//! # ssehub-tokio
//!
//! A thin tokio/hyper 1 adapter for [`ssehub_core`]: it moves the core's
//! frames onto HTTP responses and feeds the core its clock. Everything that
//! decides (who gets what, when a client is closed, replay, limits) lives
//! in the core; this crate only does IO.
//!
//! | module | holds |
//! |---|---|
//! | [`body`] | [`SseBody`]: one client's response body, draining its queue |
//! | [`respond`] | [`open`]: the registration order (reserve → close hook → headers → initial frames → activate) and [`OpenError`] |
//! | [`endpoint`] | [`SseEndpoint`]: an HTTP request → a registered client (query, `Last-Event-ID`, auth hook, CORS) |
//! | [`driver`] | [`Driver`]: the one task that calls [`Hub::tick`](ssehub_core::Hub::tick) |
//! | [`io`] | [`TrackedIo`]: tells a write error from a client that went away |
//! | [`serve`] | an accept loop over hyper-util's HTTP/1 + HTTP/2 builder, with graceful shutdown |
//! | [`cluster`] | the Redis backplane: several nodes acting as one hub (SPEC §11) |
//! | [`server`] | the `ssehub` hub server: config, routes, metrics, demo page |
//! | `axum` | (feature `axum`) the SSE endpoint as an axum `Router` fragment |
//!
//! ```no_run
//! use ssehub_core::{Hub, HubConfig};
//! use ssehub_tokio::{serve, Driver, SseEndpoint};
//! use std::time::Duration;
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Hub::new(HubConfig::default(), ssehub_tokio::now());
//! let driver = Driver::spawn(hub.clone(), Duration::from_secs(1));
//! let endpoint = SseEndpoint::new(hub.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // Route every request to the SSE endpoint (a real server routes first).
//! let handle = serve::spawn(listener, move |req, conn| {
//!     let endpoint = endpoint.clone();
//!     async move { endpoint.handle(&req.into_parts().0, &conn) }
//! });
//! # drop((driver, handle));
//! # Ok(())
//! # }
//! ```

#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "axum")]
pub mod axum;
pub mod body;
/// The reconnecting SSE client: [`client::EventSource`], a `Stream` of events and state changes.
pub mod client;
pub mod cluster;
pub mod driver;
pub mod endpoint;
pub mod io;
mod query;
pub mod respond;
pub mod serve;
pub mod server;

pub use body::SseBody;
pub use driver::Driver;
pub use endpoint::{Authorizer, Rejection, SseEndpoint};
pub use io::{TrackedIo, WriteTracker};
pub use respond::{open, OpenError, SseSettings};

/// The hub's clock as this adapter reads it: tokio's [`Instant`] converted to
/// [`std::time::Instant`], so that tokio's paused time (in tests) drives the
/// hub's deadlines exactly as real time does in production.
///
/// Every `Instant` this crate hands the core comes from here: the one passed
/// to [`Hub::new`](ssehub_core::Hub::new), the driver's ticks and the flush
/// reports. Use it for your own calls into the hub too.
///
/// [`Instant`]: tokio::time::Instant
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// [`now`] as a [`Clock`](ssehub_core::Clock): build hubs with
/// [`Hub::with_clock`](ssehub_core::Hub::with_clock)`(config, TokioClock)`
/// so every push is stamped with tokio's time (paused in tests), however
/// long the driver sleeps between ticks.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl ssehub_core::Clock for TokioClock {
    fn now(&self) -> std::time::Instant {
        now()
    }
}
