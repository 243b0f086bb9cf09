//! A reconnecting Server-Sent Events client: hyper's HTTP/1.1 and HTTP/2
//! client driving the core's sans-IO [`Decoder`](ssehub_core::codec::Decoder)
//! and [`ReconnectPolicy`](ssehub_core::reconnect::ReconnectPolicy).
//!
//! [`EventSource`] is a [`Stream`](futures_core::Stream) of [`ClientEvent`]s:
//! the events the server sends ([`ClientEvent::Message`]), every state change
//! ([`ClientEvent::State`]: `Connecting`, `Open`,
//! `Reconnecting { attempt, delay }`, `Closed(CloseInfo)`), and the errors
//! behind reconnects ([`ClientEvent::Error`]). A [`Handle`] closes it or
//! reconnects it from anywhere.
//!
//! # Behaviour
//!
//! - **Responses** are classified by the core's
//!   [`classify`](ssehub_core::reconnect::classify): 200 with
//!   `text/event-stream` opens; 204, other 2xx, a wrong content type and
//!   4xx other than 408/429 close for good (`fatal: true`); 5xx, 408, 429,
//!   network errors and timeouts are retried.
//! - **Backoff**: exponential with full jitter from the base delay (the
//!   server's `retry:` once it sent one), capped, with the server's
//!   `Retry-After` as a floor; every delay is at most a day
//!   ([`DELAY_LIMIT`](ssehub_core::reconnect::DELAY_LIMIT)), whatever the
//!   server sends. The attempt counter resets only once a connection is
//!   healthy: open for [`Builder::healthy_after`] (5 s), or past
//!   [`Builder::healthy_events`] events (2: more than a greeting); or on
//!   [`Handle::reconnect`]. A server that sends one event per connection
//!   and hangs up is therefore backed off from, not hammered.
//! - **`Last-Event-ID`** is sent on every reconnect (and on the first
//!   connection if [`Builder::last_event_id`] set one), so the server
//!   replays what was missed. An id the server sent that cannot be a header
//!   value (a control character other than tab, which the `http` crate
//!   refuses) is never dropped silently: the stream closes with
//!   `Closed { reason: UnsendableLastEventId, fatal: true }`.
//! - **Redirects** (301, 302, 303, 307, 308) are followed within an attempt,
//!   up to [`Builder::max_redirects`], a relative `Location` resolved
//!   against the URL that answered. They do not count as reconnection
//!   attempts, and reconnects start from the original URL again (as browsers
//!   do). Credentials (`Authorization`, `Cookie`) do not follow a redirect
//!   to another origin.
//! - **Liveness**: an open stream that sends no bytes at all for
//!   [`Builder::read_timeout`] (heartbeats included) is dropped and
//!   reconnected, since a half-open TCP connection never errors by itself.
//! - **Limits**: a line or event over [`Builder::max_line_len`] /
//!   [`Builder::max_event_len`] drops the connection before it is buffered
//!   ([`ClientError::Decode`]). As the policy treats every broken stream,
//!   the client then reconnects with backoff: a server that sent one bad
//!   event recovers; one that always sends it makes the client back off to
//!   the cap, and [`Builder::max_attempts`] bounds how long it insists
//!   (the attempt counter only resets after a healthy connection).
//! - **The fatal event** ([`Builder::fatal_event`]): delivered as a
//!   message, then `Closed { reason: FatalEvent, fatal: true }`.
//! - **Closing**: [`Handle::close`] is final and immediate, also during a
//!   backoff sleep or a connection attempt: the connection is dropped,
//!   queued items are discarded, the stream yields
//!   `Closed { is_local: true }` and ends. After any `Closed` the stream
//!   ends (`None`); build a new one to start again.
//! - **Transport**: `http://` and `https://`. Over cleartext HTTP/1.1 by
//!   default, or HTTP/2 with prior knowledge ([`HttpVersion::Http2`]); over
//!   TLS (rustls, `ring` provider) ALPN offers `h2` and `http/1.1` and the
//!   server picks ([`HttpVersion::Auto`]). The default roots are Mozilla's
//!   (`webpki-roots`); [`Builder::root_certificates`] switches to the
//!   platform's store, [`Builder::add_root_certificate`] /
//!   [`Builder::add_root_certificates_pem`] add a private CA, and
//!   [`Builder::tls_config`] takes a whole `rustls::ClientConfig`.
//!   Redirects may cross between http and https; credentials never follow
//!   a downgrade to http (nor any change of origin).
//! - **A refused certificate** (unknown issuer, wrong host, expired, …) is
//!   fatal: [`ClientError::Tls`] then `Closed { reason: FatalConnectError,
//!   fatal: true }`, with no retry loop. Other TLS failures are retried.
//!
//! # Item order
//!
//! An [`ClientEvent::Error`] comes just before the state change it causes;
//! a connection that ended cleanly yields no error, only `Reconnecting`.
//! Statuses the server means as final are not errors: the `Closed` state's
//! [`CloseInfo`](ssehub_core::reconnect::CloseInfo) carries the reason and
//! status.
//!
//! # Examples
//!
//! ```no_run
//! use ssehub_core::reconnect::State;
//! use ssehub_tokio::client::{ClientEvent, EventSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut events = EventSource::builder("http://127.0.0.1:8080/events?topic=news")
//!     .fatal_event("fatal")
//!     .build()?;
//! let handle = events.handle();
//! // `next()` is `StreamExt::next` without the import: `EventSource` is a `Stream`.
//! while let Some(item) = events.next().await {
//!     match item {
//!         ClientEvent::Message(event) => {
//!             println!("{} {}: {}", event.last_event_id, event.event, event.data);
//!             if event.data == "bye" {
//!                 handle.close(); // the next item is `Closed`, then the end
//!             }
//!         }
//!         ClientEvent::State(State::Closed(info)) => println!("closed: {info}"),
//!         ClientEvent::State(state) => println!("state: {state:?}"),
//!         ClientEvent::Error(error) => eprintln!("error: {error}"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! <!-- Full paths: `pub mod client` also has an outer doc comment, and
//! rustdoc resolves the links of such merged docs from the crate root. -->
//! [`Builder::fatal_event`]: crate::client::Builder::fatal_event
//! [`Builder::healthy_after`]: crate::client::Builder::healthy_after
//! [`Builder::healthy_events`]: crate::client::Builder::healthy_events
//! [`Builder::last_event_id`]: crate::client::Builder::last_event_id
//! [`Builder::max_attempts`]: crate::client::Builder::max_attempts
//! [`Builder::max_event_len`]: crate::client::Builder::max_event_len
//! [`Builder::max_line_len`]: crate::client::Builder::max_line_len
//! [`Builder::max_redirects`]: crate::client::Builder::max_redirects
//! [`Builder::read_timeout`]: crate::client::Builder::read_timeout
//! [`ClientError::Decode`]: crate::client::ClientError::Decode
//! [`ClientEvent::Error`]: crate::client::ClientEvent::Error
//! [`ClientEvent::Message`]: crate::client::ClientEvent::Message
//! [`ClientEvent::State`]: crate::client::ClientEvent::State
//! [`ClientEvent`]: crate::client::ClientEvent
//! [`EventSource`]: crate::client::EventSource
//! [`Handle::close`]: crate::client::Handle::close
//! [`Handle::reconnect`]: crate::client::Handle::reconnect
//! [`Handle`]: crate::client::Handle
//! [`HttpVersion::Http2`]: crate::client::HttpVersion::Http2
//! [`HttpVersion::Auto`]: crate::client::HttpVersion::Auto
//! [`Builder::root_certificates`]: crate::client::Builder::root_certificates
//! [`Builder::add_root_certificate`]: crate::client::Builder::add_root_certificate
//! [`Builder::add_root_certificates_pem`]: crate::client::Builder::add_root_certificates_pem
//! [`Builder::tls_config`]: crate::client::Builder::tls_config
//! [`ClientError::Tls`]: crate::client::ClientError::Tls

mod builder;
mod connection;
mod error;
mod redirect;
mod tls;

pub use builder::{
    Builder, HttpVersion, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_REDIRECTS, DEFAULT_READ_TIMEOUT,
};
pub use error::{BuildError, ClientError, ErrorSource};
/// The rustls version this client is built with, for
/// [`Builder::tls_config`] and [`Builder::add_root_certificate`].
pub use rustls;
pub use ssehub_core::codec::MessageEvent;
pub use ssehub_core::reconnect::{CloseInfo, CloseReason, State};
pub use tls::{RootCertificates, TlsErrorKind};

use connection::Driver;
use futures_core::{FusedStream, Stream};
use http::Uri;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Notify;

/// One item of an [`EventSource`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// An event the server sent (its `last_event_id` is the id a reconnect
    /// will send).
    Message(MessageEvent),
    /// The connection's state changed.
    State(State),
    /// A connection attempt or an open stream failed; the next item is the
    /// state change it causes.
    Error(ClientError),
}

/// The control signal between [`Handle`]s and the stream.
#[derive(Debug, Default)]
struct Shared {
    closed: AtomicBool,
    reconnect: AtomicBool,
    /// Wakes the stream out of whatever it waits for (a permit is stored
    /// when it is not waiting, so no signal is lost).
    notify: Notify,
}

impl Shared {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn take_reconnect(&self) -> bool {
        self.reconnect.swap(false, Ordering::AcqRel)
    }

    /// Whether a `close()` or `reconnect()` waits to be carried out.
    fn has_command(&self) -> bool {
        self.is_closed() || self.reconnect.load(Ordering::Acquire)
    }

    async fn signalled(&self) {
        self.notify.notified().await;
    }
}

/// Closes or reconnects an [`EventSource`] from anywhere (another task,
/// a signal handler). Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Closes the stream for good, at once: the connection (or the backoff
    /// sleep, or the connection attempt) is dropped, items not yet yielded
    /// are discarded, and the stream yields `Closed { is_local: true }`,
    /// then ends. Idempotent.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.notify.notify_one();
    }

    /// Drops the current connection (or cuts the backoff short) and
    /// connects now, with the `Last-Event-ID`, resetting the backoff. Does
    /// nothing once the stream is closed.
    pub fn reconnect(&self) {
        if !self.shared.is_closed() {
            self.shared.reconnect.store(true, Ordering::Release);
            self.shared.notify.notify_one();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

type NextItem = Pin<Box<dyn Future<Output = (Option<ClientEvent>, Box<Driver>)> + Send>>;

enum Slot {
    /// Between items.
    Idle(Box<Driver>),
    /// Working on the next item.
    Busy(NextItem),
    /// Ended.
    Done,
}

/// A reconnecting SSE stream: a [`Stream`] of [`ClientEvent`]s. See the
/// [module docs](self) for its behaviour.
///
/// Lazy: nothing connects until it is first polled, which must happen
/// inside a tokio runtime (with the time driver enabled). Dropping it drops
/// the connection.
pub struct EventSource {
    shared: Arc<Shared>,
    slot: Slot,
}

impl fmt::Debug for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSource")
            .field("closed", &self.shared.is_closed())
            .field("ended", &matches!(self.slot, Slot::Done))
            .finish_non_exhaustive()
    }
}

impl EventSource {
    /// Starts configuring a stream from `url` (an absolute `http://` or
    /// `https://` URL, checked by [`Builder::build`]).
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder::new(url)
    }

    /// A stream from `url` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`]: the URL is not an absolute `http://` or
    /// `https://` URL.
    pub fn new(url: impl Into<String>) -> Result<Self, BuildError> {
        Builder::new(url).build()
    }

    pub(crate) fn from_builder(url: Uri, builder: Builder, tls: Arc<rustls::ClientConfig>) -> Self {
        let shared = Arc::new(Shared::default());
        let driver = Driver::new(url, builder, tls, Arc::clone(&shared));
        Self {
            shared,
            slot: Slot::Idle(Box::new(driver)),
        }
    }

    /// A handle that closes or reconnects this stream.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Same as [`Handle::close`].
    pub fn close(&self) {
        self.handle().close();
    }

    /// Same as [`Handle::reconnect`].
    pub fn reconnect(&self) {
        self.handle().reconnect();
    }

    /// The next item, `None` once the stream ended (the same as
    /// `StreamExt::next`, without importing it).
    pub async fn next(&mut self) -> Option<ClientEvent> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for EventSource {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        loop {
            match std::mem::replace(&mut self.slot, Slot::Done) {
                Slot::Idle(mut driver) => {
                    self.slot = Slot::Busy(Box::pin(async move {
                        let item = driver.next().await;
                        (item, driver)
                    }));
                }
                Slot::Busy(mut next) => {
                    return match next.as_mut().poll(cx) {
                        Poll::Ready((Some(item), driver)) => {
                            self.slot = Slot::Idle(driver);
                            Poll::Ready(Some(item))
                        }
                        Poll::Ready((None, _)) => Poll::Ready(None),
                        Poll::Pending => {
                            self.slot = Slot::Busy(next);
                            Poll::Pending
                        }
                    };
                }
                Slot::Done => return Poll::Ready(None),
            }
        }
    }
}

impl FusedStream for EventSource {
    fn is_terminated(&self) -> bool {
        matches!(self.slot, Slot::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_handles_are_thread_safe() {
        assert_send::<EventSource>();
        assert_send_sync::<Handle>();
        assert_send_sync::<ClientEvent>();
        assert_send_sync::<Builder>();
    }

    #[test]
    fn build_checks_the_url_and_headers() {
        assert!(matches!(
            EventSource::new("/events"),
            Err(BuildError::InvalidUrl { .. })
        ));
        assert!(matches!(
            EventSource::new("ftp://h/x"),
            Err(BuildError::UnsupportedScheme(s)) if s == "ftp"
        ));
        assert!(EventSource::new("https://h/x").is_ok());
        assert!(matches!(
            EventSource::builder("https://h/x")
                .add_root_certificates_pem("junk")
                .build(),
            Err(BuildError::Tls(_))
        ));
        assert!(matches!(
            EventSource::builder("http://h/x")
                .header("bad header", "v")
                .build(),
            Err(BuildError::InvalidHeader(_))
        ));
        assert!(matches!(
            EventSource::builder("http://h/x")
                .header("x-a", "line\nbreak")
                .build(),
            Err(BuildError::InvalidHeader(_))
        ));
        assert!(EventSource::new("http://127.0.0.1:1/events?topic=a").is_ok());
    }

    /// The core's rule for ids a reconnect can send is exactly the `http`
    /// crate's rule for header values.
    #[test]
    fn sendable_ids_agree_with_header_values() {
        for b in 0u8..=255 {
            let bytes = [b'7', b, b'x'];
            let Ok(id) = std::str::from_utf8(&bytes) else {
                continue;
            };
            assert_eq!(
                ssehub_core::reconnect::is_sendable_last_event_id(id),
                http::HeaderValue::from_str(id).is_ok(),
                "byte {b:#x}"
            );
        }
        assert!(ssehub_core::reconnect::is_sendable_last_event_id(
            "caf\u{e9}"
        ));
        assert!(http::HeaderValue::from_str("caf\u{e9}").is_ok());
    }

    #[test]
    fn credentials_do_not_print() {
        let builder = EventSource::builder("http://h/x").bearer_auth("hunter2");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }
}
