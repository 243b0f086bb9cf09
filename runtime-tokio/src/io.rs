//! [`TrackedIo`]: a transport wrapper that remembers whether a write failed,
//! so a dropped response body can tell a write error from a client that
//! went away.
//!
//! hyper reports neither to the body: when the connection ends, for
//! whatever reason, it simply drops the body. The body's close hook fires
//! from that drop and must pick a [`CloseReason`](ssehub_core::CloseReason):
//!
//! - [`WriteError`](ssehub_core::CloseReason::WriteError) when the
//!   connection's transport returned an error from a write, flush or
//!   shutdown (`EPIPE`, `ECONNRESET` on send, …) — recorded here;
//! - [`ClientGone`](ssehub_core::CloseReason::ClientGone) otherwise: the
//!   peer closed its end cleanly (hyper sees EOF on read mid-response), an
//!   HTTP/2 stream was reset, or the server dropped the connection.
//!
//! The distinction is per connection: on HTTP/2 a write error ends every
//! stream of the connection, and every one of them is closed with
//! `WriteError`, which is what happened to each. Without a tracker (for
//! example under `axum::serve`, which owns the sockets) every drop counts as
//! `ClientGone`.
//!
//! # Write timeout
//!
//! A peer that stops reading (but keeps its TCP connection open, acking
//! with a zero window) never makes a write fail: the core closes its client
//! (`WriteStalled` or `SlowConsumer`), but hyper, blocked on a full socket,
//! never polls the body again, so the response never ends and the
//! connection with hyper's buffered bytes would stay forever. With a write
//! timeout, a write that has been pending without any progress for that
//! long fails with [`io::ErrorKind::TimedOut`]: hyper drops the connection,
//! and the tracker records it as a write error. The timer runs only while a
//! write is pending, so idle and healthy connections cost nothing.
//!
//! Not covered: on HTTP/2 a peer that stops reading one stream exhausts
//! that stream's flow-control window, not the socket; hyper then waits for
//! window capacity without polling the body, so such a stream outlives its
//! closed client until the peer reads or the connection ends (the socket
//! keeps moving for the other streams, so no write times out).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Shared flag of one connection: did any write to its transport fail?
///
/// Cheap to clone; every response body of the connection holds a clone.
#[derive(Clone, Debug, Default)]
pub struct WriteTracker {
    failed: Arc<AtomicBool>,
}

impl WriteTracker {
    /// A tracker that has seen no failure.
    pub fn new() -> Self {
        Self::default()
    }

    /// `true` once a write, flush or shutdown of the transport failed.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Records a failed write (the wrapper does this itself).
    pub fn record_failure(&self) {
        self.failed.store(true, Ordering::Release);
    }

    fn observe<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(_)) = &poll {
            self.record_failure();
        }
        poll
    }
}

/// A transport (e.g. a `TcpStream`) whose write errors are recorded in a
/// [`WriteTracker`], with an optional write timeout (see the module docs).
/// Reads pass through untouched.
#[derive(Debug)]
pub struct TrackedIo<T> {
    inner: T,
    tracker: WriteTracker,
    write_timeout: Option<Duration>,
    /// Armed while a write is pending without progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> TrackedIo<T> {
    /// Wraps `inner`, recording into `tracker`; no write timeout.
    pub fn new(inner: T, tracker: WriteTracker) -> Self {
        Self {
            inner,
            tracker,
            write_timeout: None,
            stalled: None,
        }
    }

    /// Fails a write that has been pending without progress for `timeout`
    /// (`None`: never).
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The tracker this transport records into.
    pub fn tracker(&self) -> &WriteTracker {
        &self.tracker
    }

    /// The wrapped transport.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T> TrackedIo<T> {
    /// Records the outcome of a write: progress disarms the stall timer, a
    /// pending write arms it (once) and fails when it has run out.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Pending => {
                let Some(timeout) = self.write_timeout else {
                    return Poll::Pending;
                };
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.stalled = None;
                    self.tracker.record_failure();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "write made no progress within the write timeout",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stalled = None;
                self.tracker.observe(ready)
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.tracker.observe(poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_failed_write_is_recorded_and_a_good_one_is_not() {
        let (a, b) = tokio::io::duplex(64);
        let tracker = WriteTracker::new();
        let mut io = TrackedIo::new(a, tracker.clone());
        io.write_all(b"ok").await.unwrap();
        assert!(!tracker.failed());
        drop(b);
        assert!(io.write_all(b"lost").await.is_err());
        assert!(tracker.failed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_without_progress_times_out_and_counts_as_failed() {
        let (a, mut b) = tokio::io::duplex(8);
        let tracker = WriteTracker::new();
        let mut io =
            TrackedIo::new(a, tracker.clone()).with_write_timeout(Some(Duration::from_secs(3)));
        // Progress keeps it alive: the reader drains in time.
        let start = tokio::time::Instant::now();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = tokio::io::AsyncReadExt::read(&mut b, &mut buf).await;
            }
            b
        });
        io.write_all(&[0u8; 32]).await.unwrap();
        assert!(!tracker.failed());
        let _b = reader.await.unwrap();
        // Now nobody reads: the pending write fails after the timeout.
        let err = io.write_all(&[0u8; 32]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(tracker.failed());
        assert!(tokio::time::Instant::now() - start >= Duration::from_secs(11));
    }
}
