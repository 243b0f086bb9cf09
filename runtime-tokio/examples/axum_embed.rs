//! Embedding the hub in an existing axum application: one `merge` adds the
//! SSE endpoint; the application's own handlers publish through the hub.
//!
//! ```text
//! cargo run -p ssehub-tokio --features axum --example axum_embed
//! curl -N 'http://127.0.0.1:3000/events?topic=news'            # in one terminal
//! curl -d 'hello' http://127.0.0.1:3000/news                     # in another
//! ```
//!
//! `AXUM_EMBED_ADDR` changes the address. Served through
//! `ssehub_tokio::axum::serve` and a `TrackedListener`, so a subscriber
//! that stops reading is disconnected after the write timeout (30 s), as
//! under the `ssehub` server. Ctrl-C shuts down gracefully:
//! every stream gets a final `bye` event, then axum's graceful shutdown
//! completes because the streams end.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use ssehub_core::codec::Event;
use ssehub_core::{Hub, HubConfig};
use ssehub_tokio::axum::TrackedListener;
use ssehub_tokio::{Driver, SseEndpoint};
use std::net::SocketAddr;
use std::time::Duration;

/// The application's own state, which happens to hold the hub.
#[derive(Clone)]
struct AppState {
    hub: Hub,
}

/// An application handler that publishes what it is given.
async fn announce(State(state): State<AppState>, body: String) -> String {
    match state.hub.publish("news", &Event::new(body)) {
        Ok(report) => format!(
            "published {} to {} client(s)\n",
            report.id, report.delivered
        ),
        Err(error) => format!("not published: {error}\n"),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::var("AXUM_EMBED_ADDR")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));

    // The hub and its clock.
    let hub = Hub::new(HubConfig::default(), ssehub_tokio::now());
    let driver = Driver::spawn(hub.clone(), Duration::from_secs(1));

    // The existing app, plus the SSE endpoint in one line.
    let app = Router::new()
        .route("/", get(|| async { "subscribe at /events?topic=news\n" }))
        .route("/news", post(announce))
        .with_state(AppState { hub: hub.clone() })
        .merge(ssehub_tokio::axum::routes(
            "/events",
            SseEndpoint::new(hub.clone()),
        ));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown_hub = hub.clone();
    // `axum::serve` with a write timeout on every socket (a reader that
    // stops is disconnected, not held forever) and the connect info the
    // endpoint needs (peer address for the per-IP limit, write tracker).
    ssehub_tokio::axum::serve(TrackedListener::new(listener), app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Ends every stream, so axum's graceful shutdown can complete.
            let _ = shutdown_hub.shutdown(Some(&Event::new("bye").with_event("shutdown")));
        })
        .await?;
    driver.stop().await;
    Ok(())
}
