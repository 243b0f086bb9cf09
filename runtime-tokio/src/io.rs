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

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
/// [`WriteTracker`]. Reads pass through untouched.
#[derive(Debug)]
pub struct TrackedIo<T> {
    inner: T,
    tracker: WriteTracker,
}

impl<T> TrackedIo<T> {
    /// Wraps `inner`, recording into `tracker`.
    pub fn new(inner: T, tracker: WriteTracker) -> Self {
        Self { inner, tracker }
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

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.tracker.observe(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.tracker.observe(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.tracker.observe(poll)
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
}
