//! [`open`]: registers one client with the hub and builds its SSE response,
//! in the order that cannot leak (SPEC §2, §7):
//!
//! 1. **reserve** a slot ([`Hub::reserve`]); the client is not yet visible;
//! 2. **arm the close hook**: a [`CloseGuard`](ssehub_core::CloseGuard)
//!    owned by the [`SseBody`], so from here on dropping the body — on any
//!    error path below, or when hyper drops it — closes the client;
//! 3. **response headers** (`Content-Type: text/event-stream`,
//!    `Cache-Control: no-cache`, `X-Accel-Buffering: no`, `Client-Id`);
//! 4. **initial frames**: unless disabled, an `event: welcome` whose data
//!    is `{"clientId":"<id>"}`, with the `retry:` hint in the same block,
//!    encoded by the hub and queued with
//!    [`Reservation::send_welcome`] so it precedes everything else;
//!    without a welcome, the body writes the `retry:` line into the first
//!    event block it hands out (invariant **RETRY-IN-BLOCK**: the hint never
//!    forms a block of its own, which httpx-sse and similar clients report
//!    as an empty message);
//! 5. **activate**, which queues the replay (or the reset event) and makes
//!    the client visible to broadcasts.
//!
//! On an externally sequenced hub (a cluster node), [`open_resuming`] reads
//! the backplane's history between steps 1 and 2, for a client resuming
//! with an id of the hub's epoch, and hands it to the reservation.
//!
//! A failure at any step returns an [`OpenError`] and leaves nothing behind:
//! the body's guard marks the reserved client `ClosePending`, and dropping
//! the reservation frees the slot (or `activate` already did).

use crate::body::SseBody;
use crate::io::WriteTracker;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use ssehub_core::codec::{welcome_frame, EncodeError, Event};
use ssehub_core::{
    ActivateError, ClientId, EventId, History, Hub, Reservation, ReserveError, ReserveOptions,
    SendError,
};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The response body type of every route in this crate: an SSE stream or a
/// short fixed body, boxed.
pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A fixed response body.
pub fn full(bytes: impl Into<Bytes>) -> BoxBody {
    Full::new(bytes.into()).boxed()
}

/// A JSON error response `{"error": "<message>"}` with `status`.
pub fn json_error(status: StatusCode, message: &str) -> Response<BoxBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// How [`open`] shapes each stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseSettings {
    /// The `retry:` hint that opens every stream (the browser's reconnect
    /// delay); `None` sends none.
    pub retry: Option<Duration>,
    /// Open every stream with a named event carrying `{"clientId": "<id>"}`,
    /// for browser code, which cannot read the `Client-Id` header.
    pub welcome: bool,
    /// Name of that event.
    pub welcome_event: String,
    /// Most queued frames joined into one body frame.
    pub max_batch: usize,
    /// `Retry-After` of a 503 answer (hub full, shutting down).
    pub busy_retry_after: Duration,
}

impl Default for SseSettings {
    fn default() -> Self {
        Self {
            retry: Some(Duration::from_secs(3)),
            welcome: true,
            welcome_event: "welcome".to_owned(),
            max_batch: 64,
            busy_retry_after: Duration::from_secs(5),
        }
    }
}

impl SseSettings {
    /// The frames that open every stream of client `id`: the welcome event
    /// with the `retry:` hint in its block, or nothing when the welcome is
    /// off (the hint then goes with the first event, see
    /// [`SseSettings::first_event_line`]).
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if `welcome_event` contains a line break.
    pub fn initial_frames(&self, id: ClientId) -> Result<Bytes, EncodeError> {
        if self.welcome {
            welcome_frame(&self.welcome_event, self.retry, id)
        } else {
            Ok(Bytes::new())
        }
    }

    /// The `retry: <ms>\n` field line the body writes into the first event
    /// block when no welcome carries the hint; `None` when the welcome
    /// carries it or there is no hint.
    pub fn first_event_line(&self) -> Option<Bytes> {
        let retry = self.retry.filter(|_| !self.welcome)?;
        let mut buf = BytesMut::new();
        // A data-less event is `retry: <ms>\n\n`: the field line and the
        // blank line ending the block, which is dropped.
        Event::empty().with_retry(retry).encode(&mut buf).ok()?;
        buf.truncate(buf.len().saturating_sub(1));
        Some(buf.freeze())
    }
}

/// `chunk` (whole SSE blocks, each ending in a blank line) with `line`
/// inserted at the start of its first block that holds a line other than a
/// comment; `None` if every block is comments only (heartbeats), so the
/// caller keeps `line` for a later chunk.
pub(crate) fn join_first_event_block(chunk: &[u8], line: &[u8]) -> Option<Bytes> {
    let mut start = 0;
    while start < chunk.len() {
        let block_end = chunk[start..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(chunk.len(), |at| start + at + 2);
        let block = &chunk[start..block_end];
        let only_comments = block
            .split(|&b| b == b'\n')
            .all(|l| l.is_empty() || l[0] == b':');
        if !only_comments {
            let mut joined = BytesMut::with_capacity(chunk.len() + line.len());
            joined.extend_from_slice(&chunk[..start]);
            joined.extend_from_slice(line);
            joined.extend_from_slice(&chunk[start..]);
            return Some(joined.freeze());
        }
        start = block_end;
    }
    None
}

/// Why [`open`] could not start a stream. Nothing was left in the hub.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The hub refused the reservation (limits, topic names, shutdown).
    Reserve(ReserveError),
    /// The initial frames could not be encoded (a bad `welcome_event`).
    Encode(EncodeError),
    /// The initial frames could not be queued (the client was closed
    /// meanwhile).
    Send(SendError),
    /// Activation failed (closed before activation, hub topic limit).
    Activate(ActivateError),
    /// The caller's `before_activate` hook refused the client.
    Refused {
        /// The status to answer with.
        status: StatusCode,
        /// Why, for the response body.
        message: String,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reserve(e) => write!(f, "{e}"),
            Self::Encode(e) => write!(f, "initial frames: {e}"),
            Self::Send(e) => write!(f, "initial frames: {e}"),
            Self::Activate(e) => write!(f, "{e}"),
            Self::Refused { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Reserve(e) => Some(e),
            Self::Encode(e) => Some(e),
            Self::Send(e) => Some(e),
            Self::Activate(e) => Some(e),
            Self::Refused { .. } => None,
        }
    }
}

impl OpenError {
    /// The HTTP status to answer with: 400 for what the client asked wrong
    /// (topic names, too many topics), 503 for what may pass if retried
    /// (limits, shutdown, a close racing the registration), 500 for a bad
    /// server configuration.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Reserve(
                ReserveError::InvalidTopic { .. } | ReserveError::TooManyTopics { .. },
            ) => StatusCode::BAD_REQUEST,
            Self::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Refused { status, .. } => *status,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON error response, with `Retry-After` on a 503.
    pub fn to_response(&self, retry_after: Duration) -> Response<BoxBody> {
        let status = self.status();
        let mut response = json_error(status, &self.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let secs = retry_after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Registers a client and returns its SSE response (see the module docs
/// for the order).
///
/// `tracker` is the connection's [`WriteTracker`], if the transport is
/// wrapped in a [`TrackedIo`](crate::TrackedIo); without it a dropped body
/// always counts as `ClientGone`.
///
/// # Errors
///
/// [`OpenError`]; the hub holds nothing of the client afterwards.
///
/// # Examples
///
/// ```
/// use ssehub_core::{Hub, HubConfig, ReserveOptions};
/// use ssehub_tokio::{open, SseSettings};
///
/// let hub = Hub::new(HubConfig::default(), ssehub_tokio::now());
/// let response = open(&hub, &SseSettings::default(), ReserveOptions::new().topic("news"), None)?;
/// assert_eq!(response.headers()["content-type"], "text/event-stream");
/// assert_eq!(hub.subscriber_count("news"), 1);
/// drop(response); // the client went away
/// assert_eq!(hub.len(), 0);
/// # Ok::<(), ssehub_tokio::OpenError>(())
/// ```
pub fn open(
    hub: &Hub,
    settings: &SseSettings,
    reserve: ReserveOptions,
    tracker: Option<WriteTracker>,
) -> Result<Response<SseBody>, OpenError> {
    open_with(hub, settings, reserve, tracker, |_| Ok(()))
}

/// Like [`open`], running `before_activate` with the reserved id after the
/// initial frames are queued and before activation: the place to queue
/// more frames of your own ([`Hub::send`]) or add topics
/// ([`Hub::subscribe`]). An `Err` from it aborts the registration.
///
/// # Errors
///
/// As [`open`], and whatever `before_activate` returns.
pub fn open_with<F>(
    hub: &Hub,
    settings: &SseSettings,
    reserve: ReserveOptions,
    tracker: Option<WriteTracker>,
    before_activate: F,
) -> Result<Response<SseBody>, OpenError>
where
    F: FnOnce(ClientId) -> Result<(), OpenError>,
{
    // 1. Reserve.
    let reservation = hub.reserve(reserve).map_err(OpenError::Reserve)?;
    register(hub, settings, reservation, tracker, before_activate)
}

/// Steps 2–5 of the registration order, on a reservation.
fn register<F>(
    hub: &Hub,
    settings: &SseSettings,
    reservation: Reservation,
    tracker: Option<WriteTracker>,
    before_activate: F,
) -> Result<Response<SseBody>, OpenError>
where
    F: FnOnce(ClientId) -> Result<(), OpenError>,
{
    let id = reservation.id();
    // 2. Arm the close hook: the body owns it from now on. On every early
    //    return below the body drops first (closing the reserved client,
    //    which marks it ClosePending), then the reservation (freeing it).
    let mut body = SseBody::new(
        reservation.stream(),
        hub.close_guard(id),
        tracker,
        settings.max_batch,
    );
    if let Some(line) = settings.first_event_line() {
        body = body.with_first_event_line(line);
    }
    // 3. Headers.
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert("client-id", client_id_header(id));
    // 4. Initial frames, queued before anything else can be.
    if settings.welcome {
        // Encoded by the hub for the reserved id (`initial_frames`' bytes).
        reservation
            .send_welcome(&settings.welcome_event, settings.retry)
            .map_err(|error| match error {
                SendError::Encode(error) => OpenError::Encode(error),
                other => OpenError::Send(other),
            })?;
    }
    before_activate(id)?;
    // 5. Activate: replay or reset, then live events.
    reservation.activate().map_err(OpenError::Activate)?;
    tracing::debug!(client = %id, "client activated");
    Ok(response.map(|()| body))
}

/// Reads history a hub does not hold, for resumes on an externally
/// sequenced hub (the cluster backplane): every event of `topics` after
/// `after`, or `None` when it cannot be read (the client gets a reset).
pub trait HistorySource: Send + Sync + 'static {
    /// The history of `topics` after `after`.
    fn history<'a>(
        &'a self,
        after: EventId,
        topics: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Option<History>> + Send + 'a>>;
}

/// Like [`open`], for an externally sequenced hub: between reserve and
/// activation, a client resuming from an id of the hub's epoch
/// ([`Reservation::resume_point`](ssehub_core::Reservation::resume_point))
/// gets the history of its `topics` from `source`, which the core merges
/// with its ring at activation. A client that goes away during the read
/// frees its reservation (the future is dropped).
///
/// # Errors
///
/// As [`open`].
pub async fn open_resuming(
    hub: &Hub,
    settings: &SseSettings,
    reserve: ReserveOptions,
    tracker: Option<WriteTracker>,
    topics: &[String],
    source: &dyn HistorySource,
) -> Result<Response<SseBody>, OpenError> {
    let mut reservation = hub.reserve(reserve).map_err(OpenError::Reserve)?;
    if let Some(after) = reservation.resume_point() {
        if let Some(history) = source.history(after, topics).await {
            if let Err(error) = reservation.supply_history(history) {
                tracing::warn!(%error, "backplane history refused; the client gets a reset");
            }
        }
    }
    register(hub, settings, reservation, tracker, |_| Ok(()))
}

/// `<index>.<generation>`: digits and a dot, always a valid header value.
fn client_id_header(id: ClientId) -> HeaderValue {
    HeaderValue::try_from(id.to_string()).unwrap_or(HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssehub_core::{CloseReason, HubConfig};

    fn hub(config: HubConfig) -> Hub {
        Hub::new(config, crate::now())
    }

    #[test]
    fn a_refused_reservation_leaves_nothing() {
        let hub = hub(HubConfig {
            max_clients: 1,
            ..HubConfig::default()
        });
        let first = open(&hub, &SseSettings::default(), ReserveOptions::new(), None).unwrap();
        let err = open(&hub, &SseSettings::default(), ReserveOptions::new(), None).unwrap_err();
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            err.to_response(Duration::from_secs(7)).headers()["retry-after"],
            "7"
        );
        assert_eq!(hub.len(), 1);
        drop(first);
        assert_eq!(hub.len(), 0);
    }

    #[test]
    fn a_bad_topic_is_a_bad_request_and_leaves_nothing() {
        let hub = hub(HubConfig::default());
        let err = open(
            &hub,
            &SseSettings::default(),
            ReserveOptions::new().topic(""),
            None,
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(hub.len(), 0);
    }

    #[test]
    fn a_failing_initial_frame_leaves_nothing() {
        let hub = hub(HubConfig::default());
        let settings = SseSettings {
            welcome_event: "bad\nname".to_owned(),
            ..SseSettings::default()
        };
        let err = open(&hub, &settings, ReserveOptions::new().topic("t"), None).unwrap_err();
        assert!(matches!(err, OpenError::Encode(_)));
        assert_eq!(hub.len(), 0);
        assert_eq!(hub.subscriber_count("t"), 0);
    }

    #[test]
    fn a_close_before_activation_leaves_nothing() {
        let hub = hub(HubConfig::default());
        let err = open_with(
            &hub,
            &SseSettings::default(),
            ReserveOptions::new().topic("t"),
            None,
            |id| {
                let _ = hub.close(id, CloseReason::Kicked);
                Ok(())
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            OpenError::Activate(ActivateError::ClosedBeforeActivation(CloseReason::Kicked))
        ));
        assert_eq!(hub.len(), 0);
        hub.check_invariants().unwrap();
    }

    #[test]
    fn a_refusing_hook_or_a_panic_before_activation_leaves_nothing() {
        let hub = hub(HubConfig::default());
        let err = open_with(
            &hub,
            &SseSettings::default(),
            ReserveOptions::new().topic("t"),
            None,
            |_| {
                Err(OpenError::Refused {
                    status: StatusCode::FORBIDDEN,
                    message: "no".to_owned(),
                })
            },
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert_eq!(hub.len(), 0);

        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = open_with(
                &hub,
                &SseSettings::default(),
                ReserveOptions::new().topic("t"),
                None,
                |_| panic!("between the steps"),
            );
        }));
        assert!(panicked.is_err());
        assert_eq!(hub.len(), 0);
        hub.check_invariants().unwrap();
    }

    #[test]
    fn a_hub_topic_limit_at_activation_leaves_nothing() {
        let hub = hub(HubConfig {
            max_topics: 1,
            ..HubConfig::default()
        });
        let _first = open(
            &hub,
            &SseSettings::default(),
            ReserveOptions::new().topic("a"),
            None,
        )
        .unwrap();
        let err = open(
            &hub,
            &SseSettings::default(),
            ReserveOptions::new().topic("b"),
            None,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            OpenError::Activate(ActivateError::TooManyTopics { .. })
        ));
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(hub.len(), 1);
    }

    /// Regression (issue 14, item 6): the hint used to be a block of its own
    /// (`retry: 3000\n\n`), an empty message to httpx-sse.
    #[test]
    fn the_retry_hint_is_inside_the_welcome_block() {
        let hub = hub(HubConfig::default());
        let response = open(&hub, &SseSettings::default(), ReserveOptions::new(), None).unwrap();
        let id = response.headers()["client-id"].to_str().unwrap().to_owned();
        let frames = SseSettings::default()
            .initial_frames(id.parse().unwrap())
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&frames).unwrap(),
            format!("retry: 3000\nevent: welcome\ndata: {{\"clientId\":\"{id}\"}}\n\n")
        );
        assert_eq!(SseSettings::default().first_event_line(), None);
        let quiet = SseSettings {
            welcome: false,
            ..SseSettings::default()
        };
        assert!(quiet
            .initial_frames(id.parse().unwrap())
            .unwrap()
            .is_empty());
        assert_eq!(quiet.first_event_line().unwrap(), "retry: 3000\n");
        let silent = SseSettings {
            welcome: false,
            retry: None,
            ..SseSettings::default()
        };
        assert_eq!(silent.first_event_line(), None);
    }

    #[test]
    fn the_first_event_line_skips_comment_blocks() {
        let join = |chunk: &str| {
            join_first_event_block(chunk.as_bytes(), b"retry: 5\n")
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
        };
        assert_eq!(
            join("id: 1\ndata: a\n\n").unwrap(),
            "retry: 5\nid: 1\ndata: a\n\n"
        );
        assert_eq!(
            join(":\n\n: hb\n\nevent: x\ndata: a\n\ndata: b\n\n").unwrap(),
            ":\n\n: hb\n\nretry: 5\nevent: x\ndata: a\n\ndata: b\n\n"
        );
        // A comment and data in one block is an event block.
        assert_eq!(
            join(": c\ndata: a\n\n").unwrap(),
            "retry: 5\n: c\ndata: a\n\n"
        );
        assert_eq!(join(":\n\n: hb\n\n"), None);
        assert_eq!(join(""), None);
    }
}
