//! [`Activity`]: what one connection is doing, so that the accept loop can
//! close it when it does nothing useful.
//!
//! A connection is in one of three phases, and each has its own bound:
//!
//! - **waiting for its first request** (from accept: the TLS handshake,
//!   the protocol preface, the first byte, a partial HTTP/1 head or
//!   HTTP/2 `HEADERS`): closed at the *request-head deadline*, counted
//!   from accept. The auto HTTP/1 + HTTP/2 builder reads the preface before
//!   hyper's own header timer starts, and HTTP/2 has none at all, so this
//!   is the only bound on that phase.
//! - **serving** (at least one request in flight: from the moment hyper
//!   hands a request head to the service until its response body is
//!   dropped, so a live SSE stream counts for its whole life): no timer
//!   here; the write timeout of [`crate::io`] and the hub's own deadlines
//!   bound a stream.
//! - **idle** (requests were served, none is in flight: an HTTP/1
//!   keep-alive connection between requests, an HTTP/2 connection with no
//!   open stream): closed gracefully after the *idle timeout*.
//!
//! Invariants:
//!
//! - **W1** every request the service sees holds one [`InFlight`] guard
//!   until its response body (or, if the request is abandoned first, its
//!   future) is dropped, so `in_flight` never undercounts a live stream and
//!   an idle timer never runs under one.
//! - **W2** only a connection that has not yet had a request can be
//!   evicted ([`Activity::evict`]): a legitimate client sends its request
//!   head right after connecting, so under descriptor pressure it is the
//!   silent connections that yield.

use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Shared state of one connection (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    had_request: AtomicBool,
    evicted: AtomicBool,
    changed: Notify,
}

/// Why [`Activity::expired`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// No complete request head by the request-head deadline.
    RequestHead,
    /// No request in flight for the idle timeout.
    Idle,
    /// Evicted by the accept loop to make room (before any request).
    Evicted,
}

impl Activity {
    /// Counts a request in flight until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.had_request.store(true, Ordering::Release);
        self.changed.notify_waiters();
        InFlight(Arc::clone(self))
    }

    /// `true` once the connection has had a request (it can no longer be
    /// evicted, W2).
    pub(crate) fn had_request(&self) -> bool {
        self.had_request.load(Ordering::Acquire)
    }

    /// Asks the connection to close if it has not had a request yet;
    /// returns whether it was asked.
    pub(crate) fn evict(&self) -> bool {
        if self.had_request() || self.evicted.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.changed.notify_waiters();
        true
    }

    /// Completes when the connection has overstayed its current phase:
    /// `head_deadline` before its first request, `idle` after the last
    /// request in flight ended (each `None`: no bound), or at eviction.
    pub(crate) async fn expired(
        &self,
        head_deadline: Option<Instant>,
        idle: Option<Duration>,
    ) -> Expired {
        loop {
            let mut changed = pin!(self.changed.notified());
            // Registered before the state is read, so no change is missed.
            changed.as_mut().enable();
            if self.evicted.load(Ordering::Acquire) {
                return Expired::Evicted;
            }
            let (deadline, why) = if self.in_flight.load(Ordering::Acquire) > 0 {
                (None, Expired::Idle)
            } else if self.had_request() {
                (idle.map(|idle| Instant::now() + idle), Expired::Idle)
            } else {
                (head_deadline, Expired::RequestHead)
            };
            match deadline {
                None => changed.await,
                Some(deadline) => tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(deadline) => return why,
                },
            }
        }
    }
}

/// One request in flight (W1); dropping it ends it.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

/// A response body that holds its request's [`InFlight`] guard until it is
/// dropped.
#[derive(Debug)]
pub(crate) struct Tracked<B> {
    inner: B,
    _guard: InFlight,
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, guard: InFlight) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_expires_at_its_head_deadline() {
        let activity = Arc::new(Activity::default());
        let start = Instant::now();
        let why = activity
            .expired(Some(start + Duration::from_secs(3)), None)
            .await;
        assert_eq!(why, Expired::RequestHead);
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timer_runs_only_while_no_request_is_in_flight() {
        let activity = Arc::new(Activity::default());
        let start = Instant::now();
        let guard = activity.begin();
        let watcher = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move {
                activity
                    .expired(
                        Some(start + Duration::from_secs(1)),
                        Some(Duration::from_secs(5)),
                    )
                    .await
            })
        };
        // A stream in flight for a minute outlives both bounds.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watcher.is_finished());
        assert!(!activity.evict(), "a connection that had a request stays");
        drop(guard);
        assert_eq!(watcher.await.unwrap(), Expired::Idle);
        assert_eq!(Instant::now() - start, Duration::from_secs(65));
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_ends_a_connection_that_had_no_request() {
        let activity = Arc::new(Activity::default());
        let watcher = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move { activity.expired(None, None).await })
        };
        tokio::task::yield_now().await;
        assert!(activity.evict());
        assert!(!activity.evict(), "only once");
        assert_eq!(watcher.await.unwrap(), Expired::Evicted);
    }
}
