//! axum integration (feature `axum`): the hub's SSE endpoint as a handler
//! and as a `Router` fragment, and [`serve`], which runs a router with the
//! same connection hygiene as the `ssehub` server.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use ssehub_core::{Hub, HubConfig};
//! use ssehub_tokio::axum::TrackedListener;
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
//! // Not `axum::serve(listener, app)`: see "Stalled readers" below.
//! ssehub_tokio::axum::serve(TrackedListener::new(listener), app).await
//! # }
//! ```
//!
//! # Stalled readers
//!
//! A peer that stops reading (but keeps its TCP connection open) never
//! makes a write fail. The hub closes its client (`WriteStalled` or
//! `SlowConsumer`), but hyper, blocked on the full socket, never polls the
//! body again: under a plain `axum::serve(TcpListener, …)` the connection,
//! its socket buffers and hyper's buffered frames stay forever, and the
//! hub's limits no longer count it, because its slot is free.
//!
//! [`TrackedListener`] is the fix, as in the `ssehub` server (see
//! [`crate::io`]): every accepted socket is a [`TrackedIo`] with a write
//! timeout (30 s by default, as [`ServeOptions`](crate::serve::ServeOptions)),
//! so a write pending without progress for that long fails, hyper drops
//! the connection and the peer sees the end of it. A stalled reader's
//! socket is therefore freed within the hub's `write_stall_timeout` plus
//! the write timeout. [`serve`] also attaches [`SseConnectInfo`], so the
//! endpoint gets the peer address (per-IP limit) and the connection's
//! [`WriteTracker`] (a failed write closes the client as `WriteError`,
//! not `ClientGone`).
//!
//! Without [`serve`], pass `app.into_make_service_with_connect_info::<SseConnectInfo>()`
//! to `axum::serve` with a [`TrackedListener`] yourself; plain
//! `ConnectInfo<SocketAddr>` still works for the per-IP limit.

use crate::endpoint::{ConnInfo, SseEndpoint};
use crate::io::{TrackedIo, WriteTracker};
use axum::extract::connect_info::{Connected, IntoMakeServiceWithConnectInfo};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::AddExtension;
use axum::response::Response;
use axum::routing::get;
use axum::serve::{IncomingStream, Listener, Serve};
use axum::Router;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The default [`TrackedListener::with_write_timeout`]: 30 s, as the
/// `ssehub` server's default.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The SSE handler: `GET` opens a stream, `OPTIONS` answers a CORS
/// preflight. Route it yourself when your state can give an
/// [`SseEndpoint`] (`impl FromRef<YourState> for SseEndpoint`).
///
/// It takes the peer address and write tracker from
/// `ConnectInfo<SseConnectInfo>` (see [`serve`]), else the peer address
/// from `ConnectInfo<SocketAddr>`.
pub async fn events(State(endpoint): State<SseEndpoint>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let conn = match parts.extensions.get::<ConnectInfo<SseConnectInfo>>() {
        Some(ConnectInfo(info)) => ConnInfo {
            peer: Some(info.peer),
            tracker: Some(info.tracker.clone()),
        },
        None => ConnInfo {
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
            tracker: None,
        },
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

/// A TCP listener for `axum::serve` whose connections are [`TrackedIo`]s
/// with a write timeout, so a reader that stops is disconnected (see the
/// [module docs](self)). Sockets get `TCP_NODELAY`, as under the `ssehub`
/// server.
#[derive(Debug)]
pub struct TrackedListener {
    inner: TcpListener,
    write_timeout: Option<Duration>,
    send_buffer: Option<usize>,
}

impl TrackedListener {
    /// Wraps `listener`, with a [`DEFAULT_WRITE_TIMEOUT`] and the kernel's
    /// send buffer sizing.
    pub fn new(listener: TcpListener) -> Self {
        Self {
            inner: listener,
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            send_buffer: None,
        }
    }

    /// Drops a connection whose socket has accepted no byte for this long
    /// while a write was pending (`None`: never, as plain `axum::serve`).
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets `SO_SNDBUF` of every accepted socket (see
    /// [`ServeOptions::send_buffer`](crate::serve::ServeOptions::send_buffer));
    /// `None` leaves the kernel's autotuning.
    #[must_use]
    pub fn with_send_buffer(mut self, bytes: Option<usize>) -> Self {
        self.send_buffer = bytes;
        self
    }

    /// The wrapped listener.
    pub fn into_inner(self) -> TcpListener {
        self.inner
    }

    fn configure(&self, stream: &TcpStream) {
        let _ = stream.set_nodelay(true);
        if let Some(size) = self.send_buffer {
            if let Err(error) = socket2::SockRef::from(stream).set_send_buffer_size(size) {
                tracing::warn!(%error, size, "could not set SO_SNDBUF");
            }
        }
    }
}

impl Listener for TrackedListener {
    type Io = TrackedIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    self.configure(&stream);
                    let io = TrackedIo::new(stream, WriteTracker::new())
                        .with_write_timeout(self.write_timeout);
                    return (io, peer);
                }
                // A connection that died in the backlog: take the next.
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                // EMFILE and friends: back off instead of spinning (as
                // axum's own listener does).
                Err(error) => {
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// What [`serve`] attaches to every request as `ConnectInfo`: the peer's
/// address and its connection's [`WriteTracker`].
#[derive(Clone, Debug)]
pub struct SseConnectInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The connection's write tracker.
    pub tracker: WriteTracker,
}

impl Connected<IncomingStream<'_, TrackedListener>> for SseConnectInfo {
    fn connect_info(stream: IncomingStream<'_, TrackedListener>) -> Self {
        Self {
            peer: *stream.remote_addr(),
            tracker: stream.io().tracker().clone(),
        }
    }
}

/// The future [`serve`] returns (await it, or chain
/// `.with_graceful_shutdown(…)` as on `axum::serve`).
pub type TrackedServe = Serve<
    TrackedListener,
    IntoMakeServiceWithConnectInfo<Router, SseConnectInfo>,
    AddExtension<Router, ConnectInfo<SseConnectInfo>>,
>;

/// `axum::serve` over a [`TrackedListener`], with [`SseConnectInfo`]
/// attached: stalled readers are disconnected after the listener's write
/// timeout, write errors are told from clients that left, and the per-IP
/// limit sees the peer. As with `axum::serve`, awaiting it fails only if
/// the listener does.
pub fn serve(listener: TrackedListener, router: Router) -> TrackedServe {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SseConnectInfo>(),
    )
}
