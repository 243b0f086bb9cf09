//! The `ssehub` hub server, as a library so that tests (and embedders who
//! want the whole server) can start it in-process on any port.
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | flags and environment ([`Args`]), checked into a [`ServerConfig`] |
//! | [`jwt`] | JWT authorization: keys, claims, topic patterns, token sources |
//! | `routes` | the HTTP routes (`/events`, `/publish`, `/clients/{id}…`, `/metrics`, `/healthz`, `/`) |
//! | `metrics` | Prometheus text |
//! | `dashboard` | `GET /dashboard` (`dashboard.html`) and the stats sampler behind `GET /dashboard/stream` |
//! | `demo.html` | the demo page served at `/` |
//! | `script` | `GET /ssehub.js`, the browser client (`runtime-tokio/js/ssehub.js`) |
//!
//! ```no_run
//! use ssehub_tokio::server::{Server, ServerConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = ServerConfig {
//!     addr: "127.0.0.1:0".parse().unwrap(),
//!     ..ServerConfig::default()
//! };
//! let server = Server::start(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(())
//! # }
//! ```

pub mod config;
mod dashboard;
pub mod jwt;
mod metrics;
mod routes;
mod script;

pub use config::{Args, ConfigError, ServerConfig, TokenSource};
pub(crate) use dashboard::is_reserved;
pub use jwt::JwtAuth;

use crate::cluster::Backplane;
use crate::driver::Driver;
use crate::endpoint::ConnInfo;
use crate::serve::{self, ServeHandle, ServeOptions};
use routes::App;
use ssehub_core::codec::Event;
use ssehub_core::Hub;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A running hub server.
#[derive(Debug)]
pub struct Server {
    hub: Hub,
    config: Arc<ServerConfig>,
    serve: ServeHandle,
    driver: Driver,
    /// Publishes the dashboard's stats; stopped on shutdown (or drop).
    sampler: dashboard::Sampler,
    /// The cluster link (`config.cluster`); stopped on shutdown (or drop).
    backplane: Option<Backplane>,
}

/// What a graceful shutdown did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSummary {
    /// Streams that were sent the final event and closed.
    pub streams_closed: usize,
    /// Whether every connection finished before the drain deadline.
    pub drained_in_time: bool,
}

impl Server {
    /// Binds `config.addr`, starts the tick driver and serves.
    ///
    /// # Errors
    ///
    /// The bind error (address in use, permission denied, …).
    pub async fn start(config: ServerConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        Ok(Self::with_listener(listener, config))
    }

    /// Serves on an already bound listener (`config.addr` is ignored).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn with_listener(listener: TcpListener, config: ServerConfig) -> Self {
        let config = Arc::new(config);
        let hub = Hub::with_clock(config.hub.clone(), crate::TokioClock);
        let driver = Driver::spawn(hub.clone(), config.tick_interval);
        let backplane = config.cluster.clone().and_then(|cluster| {
            Backplane::start(hub.clone(), cluster)
                .map_err(|error| {
                    tracing::error!(%error, "cluster: cannot join; publishes will be refused");
                })
                .ok()
        });
        // Clustered, the stats name the node as the cluster knows it and
        // list the cluster's nodes.
        let sampler = dashboard::Sampler::spawn(
            hub.clone(),
            config.stats_interval,
            config.cluster.as_ref().map(|c| c.node_name.clone()),
            backplane.clone(),
        );
        let app = Arc::new(App::new(
            hub.clone(),
            Arc::clone(&config),
            backplane.clone(),
        ));
        let handler_app = Arc::clone(&app);
        // A connection whose socket took nothing for as long as a stalled
        // client is allowed is dropped (see `crate::io`), a little after the
        // core's own stall timeout so the core closes the client first, as
        // `WriteStalled`; the transport timeout only reclaims the socket.
        let options = ServeOptions {
            write_timeout: config
                .hub
                .write_stall_timeout
                .map(|t| t + 2 * config.tick_interval.max(Duration::from_secs(1))),
            send_buffer: config.send_buffer,
            request_head_timeout: config.request_head_timeout,
            idle_timeout: config.connection_idle_timeout,
            h2_keep_alive_interval: config.h2_keep_alive_interval,
            h2_keep_alive_timeout: config.h2_keep_alive_timeout,
            max_connections: config.max_connections,
            tls: config.tls.clone(),
        };
        // `GET /events` on the HTTP/1 fast path (see `crate::serve`).
        let streams: Option<serve::StreamRoute> = config.http1_fast_path.then(|| {
            let app = Arc::clone(&app);
            Arc::new(move |parts: &http::request::Parts, conn: &ConnInfo| {
                if parts.uri.path() == "/events" {
                    app.fast_events(parts, conn)
                } else {
                    None
                }
            }) as serve::StreamRoute
        });
        let serve = serve::spawn_routed(
            listener,
            options,
            move |request, conn| {
                let app = Arc::clone(&handler_app);
                async move { app.route(request, conn).await }
            },
            streams,
        );
        let _ = app.open_connections.set(serve.open_gauge());
        tracing::info!(addr = %serve.local_addr(), tls = config.tls.is_some(), "ssehub listening");
        Self {
            hub,
            config,
            serve,
            driver,
            sampler,
            backplane,
        }
    }

    /// The cluster link, when the server joined one (`config.cluster`).
    pub fn backplane(&self) -> Option<&Backplane> {
        self.backplane.as_ref()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.serve.local_addr()
    }

    /// HTTP connections being served now.
    pub fn open_connections(&self) -> usize {
        self.serve.open_connections()
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until<F: Future>(self, signal: F) -> ShutdownSummary {
        signal.await;
        self.shutdown().await
    }

    /// Graceful shutdown: stop accepting, send every stream the final
    /// event (`event: <shutdown_event>`, with its own jittered `retry:`)
    /// and close it, let the writers drain within `drain_timeout`, stop the
    /// driver.
    pub async fn shutdown(mut self) -> ShutdownSummary {
        self.serve.stop_accepting().await;
        self.sampler.stop();
        if let Some(backplane) = &self.backplane {
            backplane.stop();
        }
        let final_event = Event::new(serde_json::json!({"reason": "shutdown"}).to_string())
            .with_event(self.config.shutdown_event.as_str());
        let streams_closed = match self.hub.shutdown(Some(&final_event)) {
            Ok(report) => report.closed,
            Err(error) => {
                // The name was validated at startup; close without it.
                tracing::error!(%error, "final event not encodable; closing without it");
                self.hub.shutdown(None).map_or(0, |r| r.closed)
            }
        };
        tracing::info!(streams_closed, "shutting down: draining streams");
        let drained_in_time = self.serve.drain(self.config.drain_timeout).await;
        self.driver.stop().await;
        tracing::info!(drained_in_time, "shut down");
        ShutdownSummary {
            streams_closed,
            drained_in_time,
        }
    }
}

/// The demo page with the configured event names filled in.
fn demo_page(config: &ServerConfig) -> String {
    let names = serde_json::json!({
        "welcome": config.sse.welcome_event,
        "reset": config.hub.reset_event,
        "fatal": config.fatal_event,
        "shutdown": config.shutdown_event,
        "heartbeat": config.hub.heartbeat_event,
    })
    .to_string()
    // Inside a <script>: no `</script>` can be spelled by a name.
    .replace('<', "\\u003c");
    include_str!("demo.html").replace("/*CONFIG*/null", &names)
}
