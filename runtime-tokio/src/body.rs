//! [`SseBody`]: one client's response body. It drains the client's queue
//! in batches, hands hyper one coalesced frame per batch, reports flush
//! progress to the core, and owns the client's close hook.
//!
//! # Flush reporting
//!
//! hyper pulls a body: it calls [`Body::poll_frame`] only when it is ready
//! to take another frame, which is after it has written the previous one
//! to the transport or accepted it into its own bounded write buffer
//! (HTTP/1: `max_buf_size`; HTTP/2: the stream's flow-control capacity).
//! So entering `poll_frame` after having handed out a frame is proof that
//! the previous frame made progress towards the peer, and the body reports
//! [`ClientStream::flushed`] at that moment. A peer that stops reading fills
//! the socket and hyper's buffer, hyper stops polling, no flush is reported,
//! and the core's stall timeout (or the queue bound) closes the client —
//! which is the point.
//!
//! # Close reasons
//!
//! The body ends (`None`) when the core closes the client ([`Drain::Closed`]),
//! after every frame queued before the close has been handed out (a kick's
//! fatal event, the shutdown frame). When hyper drops the body early, the
//! [`CloseGuard`] it owns closes the client with `ClientGone`, or with
//! `WriteError` when the connection's [`WriteTracker`] saw a write fail
//! (see [`crate::io`] for how the two are told apart).

use crate::io::WriteTracker;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use ssehub_core::{ClientStream, CloseGuard, CloseReason, Drain};
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The streaming body of one SSE response.
///
/// Build it with [`open`](crate::open) (which also registers the client);
/// it is `Send + Sync + Unpin` and never fails (`Error = Infallible`).
pub struct SseBody {
    stream: ClientStream,
    guard: Option<CloseGuard>,
    tracker: Option<WriteTracker>,
    batch: Vec<Bytes>,
    max_batch: usize,
    /// A frame was handed to hyper and its progress is not yet reported.
    unconfirmed: bool,
    done: bool,
    /// Field lines to write at the start of the first event block (the
    /// `retry:` hint when no welcome carries it); see
    /// [`SseBody::with_first_event_line`].
    first_event_line: Option<Bytes>,
}

impl fmt::Debug for SseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseBody")
            .field("id", &self.stream.id())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl SseBody {
    /// A body reading `stream`, closing through `guard` when dropped before
    /// the client is closed, at most `max_batch` queued frames per body
    /// frame.
    pub fn new(
        stream: ClientStream,
        guard: CloseGuard,
        tracker: Option<WriteTracker>,
        max_batch: usize,
    ) -> Self {
        Self {
            stream,
            guard: Some(guard),
            tracker,
            // Grown on demand: an idle client should not carry a batch
            // buffer sized for a burst (2 KiB per connection at 64 frames).
            batch: Vec::new(),
            max_batch: max_batch.max(1),
            unconfirmed: false,
            done: false,
            first_event_line: None,
        }
    }

    /// Writes `line` (complete field lines, such as `retry: 3000\n`) at
    /// the start of the first block handed out that is not only comments,
    /// so it travels inside an event's block rather than as a block of its
    /// own (which lenient clients report as an empty message).
    #[must_use]
    pub fn with_first_event_line(mut self, line: Bytes) -> Self {
        self.first_event_line = Some(line).filter(|l| !l.is_empty());
        self
    }

    /// The client this body writes to.
    pub fn client_id(&self) -> ssehub_core::ClientId {
        self.stream.id()
    }

    /// Joins the drained batch into one chunk: the single frame itself when
    /// there is one (no copy), otherwise one contiguous buffer.
    fn coalesce(batch: &mut Vec<Bytes>) -> Bytes {
        if batch.len() == 1 {
            return batch.pop().unwrap_or_default();
        }
        let len = batch.iter().map(Bytes::len).sum();
        let mut buf = BytesMut::with_capacity(len);
        for frame in batch.drain(..) {
            buf.extend_from_slice(&frame);
        }
        buf.freeze()
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.unconfirmed {
            // hyper asks for more: the previous frame was written (or taken
            // into hyper's bounded buffer). See the module docs.
            this.stream.flushed(crate::now());
            this.unconfirmed = false;
        }
        this.batch.clear();
        match this.stream.poll_drain(cx, &mut this.batch, this.max_batch) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Drain::Frames(_)) => {
                this.unconfirmed = true;
                let mut chunk = Self::coalesce(&mut this.batch);
                if let Some(line) = &this.first_event_line {
                    if let Some(joined) = crate::respond::join_first_event_block(&chunk, line) {
                        chunk = joined;
                        this.first_event_line = None;
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Drain::Empty) => {
                // `poll_drain` registers the waker instead of reporting an
                // empty open queue; should that change, poll again.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Drain::Closed(reason)) => {
                tracing::debug!(client = %this.stream.id(), %reason, "stream ended");
                this.done = true;
                if let Some(guard) = this.guard.take() {
                    // Already closed by the core: nothing left to close.
                    guard.disarm();
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.as_mut() {
            let reason = match &self.tracker {
                Some(tracker) if tracker.failed() => CloseReason::WriteError,
                _ => CloseReason::ClientGone,
            };
            guard.set_reason(reason);
            tracing::debug!(client = %self.stream.id(), %reason, "response body dropped");
        }
        // The guard, dropped with the other fields, closes the client.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssehub_core::{codec::Event, Hub, HubConfig, ReserveOptions};
    use std::future::poll_fn;

    fn assert_send_sync_unpin<T: Send + Sync + Unpin>() {}

    #[test]
    fn body_is_send_sync_unpin() {
        assert_send_sync_unpin::<SseBody>();
    }

    fn active_body(hub: &Hub) -> SseBody {
        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let guard = hub.close_guard(reservation.id());
        let body = SseBody::new(reservation.stream(), guard, None, 16);
        reservation.activate().unwrap();
        body
    }

    #[tokio::test]
    async fn queued_frames_are_coalesced_into_one_body_frame() {
        let hub = Hub::new(HubConfig::default(), crate::now());
        let mut body = active_body(&hub);
        for data in ["a", "b", "c"] {
            hub.publish("t", &Event::new(data)).unwrap();
        }
        let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        let text = String::from_utf8(frame.to_vec()).unwrap();
        assert_eq!(text.matches("data: ").count(), 3, "{text}");
    }

    #[tokio::test]
    async fn body_ends_after_close_and_dropping_it_leaves_nothing() {
        let hub = Hub::new(HubConfig::default(), crate::now());
        let mut body = active_body(&hub);
        let _ = hub.close(body.client_id(), CloseReason::Kicked);
        let end = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(end.is_none());
        assert!(body.is_end_stream());
        drop(body);
        assert_eq!(hub.len(), 0);
        assert_eq!(hub.metrics().closes_for(CloseReason::ClientGone), 0);
    }

    #[tokio::test]
    async fn dropping_the_body_closes_as_client_gone_or_write_error() {
        let hub = Hub::new(HubConfig::default(), crate::now());
        drop(active_body(&hub));
        assert_eq!(hub.len(), 0);
        assert_eq!(hub.metrics().closes_for(CloseReason::ClientGone), 1);

        let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let tracker = WriteTracker::new();
        let guard = hub.close_guard(reservation.id());
        let body = SseBody::new(reservation.stream(), guard, Some(tracker.clone()), 16);
        reservation.activate().unwrap();
        tracker.record_failure();
        drop(body);
        assert_eq!(hub.len(), 0);
        assert_eq!(hub.metrics().closes_for(CloseReason::WriteError), 1);
    }
}
