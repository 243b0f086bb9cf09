//! An accept loop that serves HTTP/1.1 and HTTP/2 (hyper-util's `auto`
//! builder, chosen per connection from the client's preface) with a
//! request handler, bounds what each connection may hold, and shuts down
//! gracefully:
//!
//! 1. [`ServeHandle::stop_accepting`]: the listener is closed, no new
//!    connection is taken;
//! 2. (the caller shuts the hub down: every stream gets its final frame and
//!    ends);
//! 3. [`ServeHandle::drain`]: every connection is told to finish (HTTP/1:
//!    no keep-alive, the in-flight response completes; HTTP/2: `GOAWAY`),
//!    and connections still open at the deadline are dropped.
//!
//! Each connection's transport is a [`TrackedIo`], so the streams it serves
//! can tell a write error from a client that went away, and a peer that
//! stops reading is disconnected after [`ServeOptions::write_timeout`].
//!
//! # Connection hygiene
//!
//! The server faces the internet, so no connection may hold a descriptor
//! for nothing (the phases and invariants W1, W2 are in `watchdog`):
//!
//! - a connection that has not sent a complete request head within
//!   [`ServeOptions::request_head_timeout`] *of its accept* is dropped:
//!   silence, a partial HTTP/1 head, an HTTP/2 preface (with or without
//!   `SETTINGS`) and no `HEADERS`, a TLS handshake that stalls;
//! - a connection with no request in flight (HTTP/1 keep-alive between
//!   requests, HTTP/2 with no stream) is closed gracefully after
//!   [`ServeOptions::idle_timeout`]; HTTP/2 connections are pinged every
//!   [`ServeOptions::h2_keep_alive_interval`] and dropped when a ping goes
//!   unanswered, so a half-open one does not stay;
//! - at most [`ServeOptions::max_connections`] are open: at the cap (and
//!   when `accept` fails for want of descriptors) the oldest connection
//!   that has not had a request yet is evicted to make room, and if there
//!   is none the new connection is refused (closed at accept);
//! - a failing `accept` backs off and is logged at a bounded rate.

mod accept_errors;
mod fast;
pub mod nofile;
mod rewind;
pub mod tls;
mod watchdog;

pub use fast::StreamRoute;

use crate::endpoint::ConnInfo;
use crate::io::{TrackedIo, WriteTracker};
use crate::respond::BoxBody;
use accept_errors::{AcceptErrors, RateLimitedLog, LOG_EVERY};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rewind::Rewind;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use watchdog::{Activity, Expired, Tracked};

/// Handle of a running accept loop. Dropping it drops every connection at
/// once; use [`shutdown`](Self::shutdown) for a graceful end.
#[derive(Debug)]
pub struct ServeHandle {
    local_addr: SocketAddr,
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Accepted>>,
    accepted: Option<Accepted>,
}

/// What the accept loop hands back when it stops: the connections still
/// being served, and the signal that tells them to finish.
#[derive(Debug)]
struct Accepted {
    finish: watch::Sender<bool>,
    connections: JoinSet<()>,
}

/// How connections are served.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Drop a connection whose socket has accepted no byte for this long
    /// while a write was pending (see [`crate::io`]); `None`: never.
    pub write_timeout: Option<Duration>,
    /// `SO_SNDBUF` of every accepted socket, in bytes; `None` leaves the
    /// kernel's autotuning (which grows a loopback buffer to ~4 MiB).
    ///
    /// A cap bounds the kernel memory a client that stops reading can pin
    /// and lets the core see the stall sooner (its queue only grows once
    /// the socket is full), at the cost of throughput to far-away, fast
    /// readers. Linux doubles the value for its own bookkeeping.
    pub send_buffer: Option<usize>,
    /// Drop a connection that has not sent a complete first request head
    /// this long after its accept (the handshake, preface and first byte
    /// included). Later HTTP/1 heads get as long from the end of the
    /// previous response (hyper's header timer), which therefore also
    /// bounds how long an HTTP/1 keep-alive connection waits idle.
    /// `None`: never.
    pub request_head_timeout: Option<Duration>,
    /// Close a connection gracefully after it has had no request in flight
    /// for this long (HTTP/2 with no open stream; HTTP/1 keep-alive too,
    /// though there the shorter request-head timeout usually ends the wait
    /// first); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Send an HTTP/2 `PING` after this long without a frame from the
    /// peer; `None`: never.
    pub h2_keep_alive_interval: Option<Duration>,
    /// Drop an HTTP/2 connection whose `PING` is not answered within this.
    pub h2_keep_alive_timeout: Duration,
    /// Most connections open at once (see the module docs for what
    /// happens at the cap); `None`: no cap.
    pub max_connections: Option<usize>,
    /// Serve TLS (ALPN `h2`, `http/1.1`) with this configuration; `None`:
    /// cleartext. The handshake counts against the request-head timeout.
    pub tls: Option<tls::Tls>,
}

impl Default for ServeOptions {
    /// A 30 s write timeout, the kernel's send buffer sizing, a 10 s
    /// request-head timeout, a 60 s idle timeout, HTTP/2 pings every 30 s
    /// answered within 20 s, no connection cap, cleartext.
    fn default() -> Self {
        Self {
            write_timeout: Some(Duration::from_secs(30)),
            send_buffer: None,
            request_head_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(60)),
            h2_keep_alive_interval: Some(Duration::from_secs(30)),
            h2_keep_alive_timeout: Duration::from_secs(20),
            max_connections: None,
            tls: None,
        }
    }
}

/// Applies the per-connection socket options of `options` to `stream`.
fn configure(stream: &tokio::net::TcpStream, options: &ServeOptions) {
    let _ = stream.set_nodelay(true);
    if let Some(size) = options.send_buffer {
        if let Err(error) = socket2::SockRef::from(stream).set_send_buffer_size(size) {
            tracing::warn!(%error, size, "could not set SO_SNDBUF");
        }
    }
}

/// The HTTP/1 + HTTP/2 builder with the timers of `options`.
fn builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.request_head_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(options.h2_keep_alive_interval)
        .keep_alive_timeout(options.h2_keep_alive_timeout);
    builder
}

/// Serves every connection accepted on `listener` with `handler`, on the
/// current tokio runtime, with the default [`ServeOptions`].
///
/// # Panics
///
/// Outside a tokio runtime (as [`tokio::spawn`]).
pub fn spawn<H, Fut>(listener: TcpListener, handler: H) -> ServeHandle
where
    H: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    spawn_with(listener, ServeOptions::default(), handler)
}

/// Like [`spawn`], with `options`.
///
/// # Panics
///
/// Outside a tokio runtime (as [`tokio::spawn`]).
pub fn spawn_with<H, Fut>(listener: TcpListener, options: ServeOptions, handler: H) -> ServeHandle
where
    H: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    spawn_routed(listener, options, handler, None)
}

/// Like [`spawn_with`], with the HTTP/1 fast path for the requests
/// `streams` takes (see `serve::fast`: a connection's first request, when
/// it is a plain HTTP/1.1 `GET`, is offered to `streams` first, and
/// answered without hyper when taken); `None`: everything goes to hyper.
///
/// # Panics
///
/// Outside a tokio runtime (as [`tokio::spawn`]).
pub fn spawn_routed<H, Fut>(
    listener: TcpListener,
    options: ServeOptions,
    handler: H,
    streams: Option<StreamRoute>,
) -> ServeHandle
where
    H: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let local_addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let open = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(
        listener,
        Arc::new(options),
        Arc::new(handler),
        streams,
        Arc::clone(&open),
        stopped,
    ));
    ServeHandle {
        local_addr,
        open,
        stop: Some(stop),
        task: Some(task),
        accepted: None,
    }
}

impl ServeHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections being served now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The live counter behind [`open_connections`](Self::open_connections).
    pub(crate) fn open_gauge(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.open)
    }

    /// Closes the listener and returns once no connection will be accepted
    /// any more. Connections already accepted go on.
    pub async fn stop_accepting(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(accepted) => self.accepted = Some(accepted),
                Err(e) => tracing::error!(error = %e, "accept loop failed"),
            }
        }
    }

    /// Asks every connection to finish and waits up to `deadline` for them;
    /// the rest are dropped. Returns `true` when all finished in time.
    /// Stops accepting first if that was not done.
    pub async fn drain(&mut self, deadline: Duration) -> bool {
        self.stop_accepting().await;
        let Some(Accepted {
            finish,
            mut connections,
        }) = self.accepted.take()
        else {
            return true;
        };
        finish.send_replace(true);
        let in_time = tokio::time::timeout(deadline, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !in_time {
            tracing::warn!(
                remaining = connections.len(),
                "connections still open at the drain deadline: dropping them"
            );
        }
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        in_time
    }

    /// [`stop_accepting`](Self::stop_accepting) then
    /// [`drain`](Self::drain).
    pub async fn shutdown(mut self, deadline: Duration) -> bool {
        self.stop_accepting().await;
        self.drain(deadline).await
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Connections accepted but without a request yet, oldest first: the ones
/// that may be evicted to make room (W2).
#[derive(Debug, Default)]
struct Evictable(VecDeque<Arc<Activity>>);

impl Evictable {
    /// Forgets connections that had a request or ended. Only the front is
    /// looked at, unless the queue has grown well past the open connections
    /// (a silent one at the front, with head timeouts off).
    fn prune(&mut self, open: usize) {
        let gone = |a: &Arc<Activity>| a.had_request() || Arc::strong_count(a) == 1;
        while self.0.front().is_some_and(gone) {
            self.0.pop_front();
        }
        if self.0.len() > 2 * open + 16 {
            self.0.retain(|a| !gone(a));
        }
    }

    /// Evicts the oldest connection still without a request; `false` if
    /// there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some(activity) = self.0.pop_front() {
            if Arc::strong_count(&activity) > 1 && activity.evict() {
                return true;
            }
        }
        false
    }
}

async fn accept_loop<H, Fut>(
    listener: TcpListener,
    options: Arc<ServeOptions>,
    handler: Arc<H>,
    streams: Option<StreamRoute>,
    open: Arc<AtomicUsize>,
    mut stopped: oneshot::Receiver<()>,
) -> Accepted
where
    H: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let builder = Arc::new(builder(&options));
    let tls = options.tls.as_ref().map(tls::Tls::acceptor);
    let (finish, finishing) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut evictable = Evictable::default();
    let mut accept_errors = AcceptErrors::new();
    let mut refusals = RateLimitedLog::new(LOG_EVERY);
    loop {
        // At the cap one connection may be accepted while an evicted one is
        // closing, no more: the cap is exceeded by one at most.
        let room = options
            .max_connections
            .is_none_or(|max| open.load(Ordering::Relaxed) <= max);
        let accepted = tokio::select! {
            biased;
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept(), if room => accepted,
        };
        evictable.prune(open.load(Ordering::Relaxed));
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                accept_errors.succeeded();
                accepted
            }
            Err(error) => {
                // Out of descriptors: a silent connection yields its own.
                let freed = accept_errors::is_shortage(&error) && evictable.evict_oldest();
                let pause = accept_errors.failed(&error, freed, Instant::now());
                if !pause.is_zero() {
                    // A connection that ends frees a descriptor: try again.
                    tokio::select! {
                        biased;
                        _ = &mut stopped => break,
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                continue;
            }
        };
        let accepted_at = Instant::now();
        if let Some(max) = options.max_connections {
            if open.load(Ordering::Relaxed) >= max && !evictable.evict_oldest() {
                if let Some(suppressed) = refusals.allow(accepted_at) {
                    tracing::warn!(
                        %peer,
                        max_connections = max,
                        suppressed,
                        "connection cap reached and every connection is in use: refusing connections \
                         (at most one such line every {}s; `suppressed` counts the others)",
                        LOG_EVERY.as_secs()
                    );
                }
                drop(stream);
                continue;
            }
        }
        configure(&stream, &options);
        let activity = Arc::new(Activity::default());
        evictable.0.push_back(Arc::clone(&activity));
        open.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            builder: Arc::clone(&builder),
            options: Arc::clone(&options),
            activity,
            head_deadline: options.request_head_timeout.map(|t| accepted_at + t),
            finishing: finishing.clone(),
            peer,
        };
        connections.spawn(connection.task(
            stream,
            Arc::clone(&handler),
            streams.clone(),
            tls.clone(),
            Arc::clone(&open),
        ));
    }
    drop(listener);
    let (errors, refused) = (accept_errors.take_suppressed(), refusals.take_suppressed());
    if errors + refused > 0 {
        tracing::warn!(
            accept_errors = errors,
            refused,
            "accept loop stopped; failed accepts and refused connections not logged above"
        );
    }
    Accepted {
        finish,
        connections,
    }
}

/// One accepted connection and what bounds it.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    options: Arc<ServeOptions>,
    activity: Arc<Activity>,
    /// When the first request head must be complete.
    head_deadline: Option<Instant>,
    finishing: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl Connection {
    /// The task serving one accepted connection (over TLS when `tls` is
    /// set); it counts itself out of `open` when it ends.
    async fn task<H, Fut>(
        self,
        stream: tokio::net::TcpStream,
        handler: Arc<H>,
        streams: Option<StreamRoute>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        open: Arc<AtomicUsize>,
    ) where
        H: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        match tls {
            None => self.serve(stream, handler, streams).await,
            // Boxed: the TLS state would otherwise size every task.
            Some(acceptor) => {
                Box::pin(async move {
                    if let Some(stream) = self.handshake(acceptor, stream).await {
                        self.serve(stream, handler, streams).await;
                    }
                })
                .await;
            }
        }
        open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The TLS handshake, within the request-head deadline (and ended by
    /// an eviction); `None` if it failed or did not finish in time.
    async fn handshake(
        &self,
        acceptor: tokio_rustls::TlsAcceptor,
        stream: tokio::net::TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        let peer = self.peer;
        tokio::select! {
            result = acceptor.accept(stream) => match result {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    None
                }
            },
            expired = self.activity.expired(self.head_deadline, None) => {
                tracing::debug!(%peer, ?expired, "TLS handshake not finished in time: dropping the connection");
                None
            }
        }
    }

    /// Serves HTTP on `io` until the connection ends, is closed for
    /// overstaying a phase, or is told to finish: the first request through
    /// the fast path when `streams` takes it, the rest through hyper.
    async fn serve<I, H, Fut>(mut self, io: I, handler: Arc<H>, streams: Option<StreamRoute>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        let tracker = WriteTracker::new();
        let io = TrackedIo::new(io, tracker.clone()).with_write_timeout(self.options.write_timeout);
        let io = match streams {
            None => Rewind::new(io, bytes::Bytes::new()),
            Some(route) => match fast::serve(&mut self, io, &tracker, &route).await {
                fast::Next::Closed => return,
                fast::Next::Hyper(io) => io,
            },
        };
        // Boxed: hyper's connection state is large, and an idle fast-path
        // stream should not carry its size.
        Box::pin(self.serve_hyper(io, tracker, handler)).await;
    }

    /// Serves HTTP with hyper on `io` (see [`Connection::serve`]).
    async fn serve_hyper<I, H, Fut>(
        mut self,
        io: Rewind<TrackedIo<I>>,
        tracker: WriteTracker,
        handler: Arc<H>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        let peer = self.peer;
        let io = TokioIo::new(io);
        let info = ConnInfo {
            peer: Some(peer),
            tracker: Some(tracker),
        };
        let activity = Arc::clone(&self.activity);
        let service = service_fn(move |request| {
            // W1: from the head to the end of the response body.
            let in_flight = activity.begin();
            let response = handler(request, info.clone());
            async move {
                let response = response.await;
                Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight)))
            }
        });
        let mut connection = pin!(self.builder.serve_connection(io, service));
        let mut closing = false;
        // Once asked to close for idleness, how long the peer has to let go.
        let mut grace: Option<Instant> = None;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                _ = self.finishing.wait_for(|finish| *finish), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                expired = self.activity.expired(self.head_deadline, self.options.idle_timeout), if !closing => {
                    match expired {
                        Expired::RequestHead => {
                            tracing::debug!(%peer, "no request head in time: dropping the connection");
                            return;
                        }
                        Expired::Evicted => {
                            tracing::debug!(%peer, "evicted to make room: dropping the connection");
                            return;
                        }
                        Expired::Idle => {
                            tracing::debug!(%peer, "idle: closing the connection");
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                            grace = Some(Instant::now() + self.options.request_head_timeout.unwrap_or(Duration::from_secs(10)));
                        }
                    }
                }
                () = sleep_until_some(grace) => {
                    tracing::debug!(%peer, "idle connection did not close in time: dropping it");
                    return;
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever when `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn accepted_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn send_buffer_option_caps_the_accepted_socket() {
        let (server, _client) = accepted_pair().await;
        let autotuned = socket2::SockRef::from(&server).send_buffer_size().unwrap();
        let options = ServeOptions {
            send_buffer: Some(32 * 1024),
            ..ServeOptions::default()
        };
        configure(&server, &options);
        let capped = socket2::SockRef::from(&server).send_buffer_size().unwrap();
        // Linux reports twice the requested size (its bookkeeping share).
        assert!(
            (32 * 1024..=64 * 1024).contains(&capped),
            "SO_SNDBUF {capped}, autotuned start {autotuned}"
        );
        assert!(server.nodelay().unwrap());
    }

    /// A body of two frames and no known length (so: chunked).
    struct TwoFrames(u8);

    impl http_body::Body for TwoFrames {
        type Data = bytes::Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
            self.0 += 1;
            std::task::Poll::Ready(match self.0 {
                1 => Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
                    b"fast ",
                )))),
                2 => Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
                    b"stream",
                )))),
                _ => None,
            })
        }
    }

    /// A server whose hyper handler answers `hyper <path>` and whose stream
    /// route takes `/fast` (chunked) and `/fast-full` (with a length).
    async fn routed_server() -> ServeHandle {
        use http_body_util::BodyExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let route: StreamRoute = Arc::new(|parts: &http::request::Parts, conn: &ConnInfo| {
            assert!(conn.tracker.is_some() && conn.peer.is_some());
            match parts.uri.path() {
                "/fast" => Some(Response::new(TwoFrames(0).boxed())),
                "/fast-full" => Some(Response::new(crate::respond::full("fast full"))),
                _ => None,
            }
        });
        spawn_routed(
            listener,
            ServeOptions::default(),
            |request: Request<Incoming>, _| {
                let text = format!("hyper {}", request.uri().path());
                async move { Response::new(crate::respond::full(text)) }
            },
            Some(route),
        )
    }

    /// Reads from `stream` until `expected` has arrived in full (bounded),
    /// then checks nothing else came before it.
    async fn read_exactly(stream: &mut tokio::net::TcpStream, expected: &[u8]) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut got = vec![0u8; expected.len()];
        tokio::time::timeout(Duration::from_secs(20), stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        got
    }

    /// Strips the `date` line (the only header that varies).
    fn without_date(text: &[u8]) -> String {
        String::from_utf8_lossy(text)
            .split("\r\n")
            .filter(|line| !line.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[tokio::test]
    async fn the_stream_route_answers_first_and_hyper_gets_the_rest_with_pipelined_bytes() {
        use tokio::io::AsyncWriteExt;
        let server = routed_server().await;
        let mut client = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        // Two requests in one write: the second reaches hyper intact.
        client
            .write_all(
                b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\nGET /next HTTP/1.1\r\nhost: x\r\n\r\n",
            )
            .await
            .unwrap();
        let fast = "HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfast \r\n6\r\nstream\r\n0\r\n\r\n";
        let got = read_exactly(&mut client, fast.as_bytes()).await;
        assert_eq!(without_date(&got), without_date(fast.as_bytes()));
        let hyper = "HTTP/1.1 200 OK\r\ncontent-length: 11\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\nhyper /next";
        let got = read_exactly(&mut client, hyper.as_bytes()).await;
        assert_eq!(without_date(&got), without_date(hyper.as_bytes()));
    }

    #[tokio::test]
    async fn declined_and_ineligible_requests_reach_hyper_byte_for_byte() {
        use tokio::io::AsyncWriteExt;
        let server = routed_server().await;
        for (request, path) in [
            // Declined by the route.
            ("GET /other HTTP/1.1\r\nhost: x\r\n\r\n", "/other"),
            // Not eligible: another method, HTTP/1.0, `Connection: close`.
            ("DELETE /fast HTTP/1.1\r\nhost: x\r\n\r\n", "/fast"),
            ("GET /fast HTTP/1.0\r\nhost: x\r\n\r\n", "/fast"),
            ("GET /fast HTTP/1.1\r\nconnection: close\r\n\r\n", "/fast"),
        ] {
            let mut client = tokio::net::TcpStream::connect(server.local_addr())
                .await
                .unwrap();
            // In two writes: the head read so far is handed over too.
            let (a, b) = request.split_at(7);
            client.write_all(a.as_bytes()).await.unwrap();
            client.flush().await.unwrap();
            tokio::task::yield_now().await;
            client.write_all(b.as_bytes()).await.unwrap();
            let body = format!("hyper {path}");
            let mut all = Vec::new();
            let read = async {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 512];
                while !String::from_utf8_lossy(&all).ends_with(&body) {
                    let n = client.read(&mut buf).await.unwrap();
                    assert_ne!(n, 0, "closed early: {request:?}");
                    all.extend_from_slice(&buf[..n]);
                }
            };
            tokio::time::timeout(Duration::from_secs(20), read)
                .await
                .unwrap();
            assert!(all.starts_with(b"HTTP/1."), "{request:?}");
        }
        // A known length is framed with it, not chunked.
        let mut client = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        client
            .write_all(b"GET /fast-full HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let full = "HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncontent-length: 9\r\n\r\nfast full";
        let got = read_exactly(&mut client, full.as_bytes()).await;
        assert_eq!(without_date(&got), without_date(full.as_bytes()));
    }

    /// What an idle fast-path stream's task carries inline (the hyper
    /// path and TLS are boxed away). `--nocapture` prints the figure
    /// quoted in `benches/RESULTS.md`.
    #[tokio::test]
    async fn a_connection_task_is_small() {
        let (server, _client) = accepted_pair().await;
        let (_finish, finishing) = watch::channel(false);
        let options = Arc::new(ServeOptions::default());
        let connection = Connection {
            builder: Arc::new(builder(&options)),
            options,
            activity: Arc::new(Activity::default()),
            head_deadline: None,
            finishing,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        };
        let handler = Arc::new(|_: Request<Incoming>, _: ConnInfo| async {
            Response::new(crate::respond::full(""))
        });
        let route: StreamRoute = Arc::new(|_: &http::request::Parts, _: &ConnInfo| None);
        let task = connection.task(server, handler, Some(route), None, Arc::default());
        let size = std::mem::size_of_val(&task);
        println!("connection task future: {size} bytes");
        // hyper's connection inline would be more than twice this.
        assert!(size <= 2048, "{size} bytes");
    }

    #[tokio::test]
    async fn default_options_leave_the_send_buffer_to_the_kernel() {
        let (server, _client) = accepted_pair().await;
        let before = socket2::SockRef::from(&server).send_buffer_size().unwrap();
        configure(&server, &ServeOptions::default());
        let after = socket2::SockRef::from(&server).send_buffer_size().unwrap();
        assert_eq!(before, after);
    }
}
