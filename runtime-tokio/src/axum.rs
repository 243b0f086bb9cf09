//! axum integration (feature `axum`): the hub's SSE endpoint as a handler
//! and as a `Router` fragment.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use ssehub_core::{Hub, HubConfig};
//! use ssehub_tokio::{Driver, SseEndpoint};
//! use std::time::Duration;
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Hub::new(HubConfig::default(), ssehub_tokio::now());
//! let _driver = Driver::spawn(hub.clone(), Duration::from_secs(1));
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "my app" }))
//!     .merge(ssehub_tokio::axum::routes("/events", SseEndpoint::new(hub.clone())));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! The per-IP limit needs the peer address: serve with
//! `app.into_make_service_with_connect_info::<SocketAddr>()` and the
//! handler picks up [`ConnectInfo`]. axum owns the sockets, so a body
//! dropped after a failed write counts as `ClientGone`, not `WriteError`
//! (see [`crate::io`]).

use crate::endpoint::{ConnInfo, SseEndpoint};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;

/// The SSE handler: `GET` opens a stream, `OPTIONS` answers a CORS
/// preflight. Route it yourself when your state can give an
/// [`SseEndpoint`] (`impl FromRef<YourState> for SseEndpoint`).
pub async fn events(State(endpoint): State<SseEndpoint>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let conn = ConnInfo {
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0),
        tracker: None,
    };
    endpoint.handle(&parts, &conn).map(axum::body::Body::new)
}

/// A router serving [`events`] at `path` (`GET` and `OPTIONS`), to
/// `merge` into an application of any state type.
///
/// # Panics
///
/// If `path` is not a valid axum route path (as [`Router::route`]).
pub fn routes<S>(path: &str, endpoint: SseEndpoint) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(path, get(events).options(events))
        .with_state(endpoint)
}
