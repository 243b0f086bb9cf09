//! An accept loop that serves HTTP/1.1 and HTTP/2 (hyper-util's `auto`
//! builder, chosen per connection from the client's preface) with a
//! request handler, and shuts down gracefully:
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

use crate::endpoint::ConnInfo;
use crate::io::{TrackedIo, WriteTracker};
use crate::respond::BoxBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

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
/// being served.
#[derive(Debug)]
struct Accepted {
    graceful: GracefulShutdown,
    connections: JoinSet<()>,
}

/// How connections are served.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl Default for ServeOptions {
    /// A 30 s write timeout, the kernel's send buffer sizing.
    fn default() -> Self {
        Self {
            write_timeout: Some(Duration::from_secs(30)),
            send_buffer: None,
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
    let local_addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let open = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(
        listener,
        options,
        Arc::new(handler),
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
            graceful,
            mut connections,
        }) = self.accepted.take()
        else {
            return true;
        };
        let in_time = tokio::time::timeout(deadline, graceful.shutdown())
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

async fn accept_loop<H, Fut>(
    listener: TcpListener,
    options: ServeOptions,
    handler: Arc<H>,
    open: Arc<AtomicUsize>,
    mut stopped: oneshot::Receiver<()>,
) -> Accepted
where
    H: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        configure(&stream, &options);
        let tracker = WriteTracker::new();
        let io = TokioIo::new(
            TrackedIo::new(stream, tracker.clone()).with_write_timeout(options.write_timeout),
        );
        let info = ConnInfo {
            peer: Some(peer),
            tracker: Some(tracker),
        };
        let handler = Arc::clone(&handler);
        let service = service_fn(move |request| {
            let response = handler(request, info.clone());
            async move { Ok::<_, Infallible>(response.await) }
        });
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let open = Arc::clone(&open);
        open.fetch_add(1, Ordering::Relaxed);
        connections.spawn(async move {
            let connection = builder.serve_connection(io, service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    Accepted {
        graceful,
        connections,
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

    #[tokio::test]
    async fn default_options_leave_the_send_buffer_to_the_kernel() {
        let (server, _client) = accepted_pair().await;
        let before = socket2::SockRef::from(&server).send_buffer_size().unwrap();
        configure(&server, &ServeOptions::default());
        let after = socket2::SockRef::from(&server).send_buffer_size().unwrap();
        assert_eq!(before, after);
    }
}
