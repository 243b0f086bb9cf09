//! [`SseEndpoint`]: turns an HTTP request into a registered client and its
//! SSE response — the part of the hub server that embedders reuse as is.
//!
//! - `GET ?topic=a&topic=b` subscribes to the topics named (at least one);
//!   `Last-Event-ID` comes from the header, or from the `lastEventId`
//!   query parameter that EventSource polyfills send; other parameters are
//!   ignored, a malformed query string is a 400;
//! - the [`Authorizer`] hook runs before anything is reserved and answers
//!   401/403 with a JSON body; the [`AccessCheck`] hook runs after the query
//!   is parsed, sees the topics asked for, and may grant access only
//!   until an instant ([`Access::until`], e.g. a JWT's `exp`);
//! - invariant **ACCESS-EXPIRY**: a stream granted until `t` is sent the
//!   fatal event and closed at `t` (tokio time, so paused-time tests drive
//!   it). The timer belongs to the response body: a stream that ends
//!   earlier leaves no timer behind. The close is [`Hub::close_with`] with
//!   the fatal event, as a fatal kick's: the event is the last frame. The body must be polled for the timer to act; a peer
//!   that stops reading is closed by the stall timeout instead;
//! - the peer's IP address is the core's peer tag, so `max_clients_per_peer`
//!   is a per-IP limit; limits answer 503 with `Retry-After`;
//! - CORS (invariant **CORS-CRED**: credentials are granted only to an
//!   origin listed by name): a request whose `Origin` is listed gets
//!   `Access-Control-Allow-Origin: <origin>` and
//!   `Access-Control-Allow-Credentials: true` (cross-origin EventSource with
//!   `withCredentials`); with `*` configured, any other origin gets
//!   `Access-Control-Allow-Origin: *` and no credentials, so a browser never
//!   sends cookies to the hub on behalf of an unlisted site, and the origin
//!   is never reflected. `OPTIONS` preflights are answered the same way.

use crate::body::SseBody;
use crate::io::WriteTracker;
use crate::respond::{json_error, open, BoxBody, SseSettings};
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use ssehub_core::codec::Event;
use ssehub_core::{ClientId, CloseReason, Hub, ReserveOptions};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

/// What the endpoint knows of the connection a request came on.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    /// The peer's address, if known (it feeds the per-IP limit).
    pub peer: Option<SocketAddr>,
    /// The connection's write tracker, if its transport is a
    /// [`TrackedIo`](crate::TrackedIo).
    pub tracker: Option<WriteTracker>,
}

/// The auth hook: sees the request head before anything is reserved.
pub type Authorizer = Arc<dyn Fn(&Parts) -> Result<(), Rejection> + Send + Sync>;

/// The access hook: sees the request head and the topics asked for (after
/// the query is parsed, before anything is reserved) and grants access,
/// possibly until an instant.
pub type AccessCheck = Arc<dyn Fn(&Parts, &[String]) -> Result<Access, Rejection> + Send + Sync>;

/// What an [`AccessCheck`] grants a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    expires_at: Option<SystemTime>,
    subject: Option<String>,
}

impl Access {
    /// For as long as the stream lasts.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Until `at` (wall-clock, as a JWT's `exp`): then the stream is sent
    /// the fatal event and closed.
    pub fn until(at: SystemTime) -> Self {
        Self {
            expires_at: Some(at),
            subject: None,
        }
    }

    /// Names who the stream is (a JWT's `sub`): the `sub` of its join and
    /// leave events on topics with presence.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Who the stream is, if the check said.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// When access ends, if it does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

/// An auth hook's refusal: 401 (no or unknown credentials) or 403
/// (credentials that do not allow this).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    message: String,
}

impl Rejection {
    /// 401 Unauthorized, with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message in the JSON body.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `{"error": "<message>"}` with the status (and `WWW-Authenticate` on
    /// a 401).
    pub fn to_response(&self) -> Response<BoxBody> {
        let mut response = json_error(self.status, &self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Rejection {}

/// Origins allowed to open streams cross-origin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Cors {
    /// `*` was configured: any origin may read streams, without
    /// credentials (`Access-Control-Allow-Origin: *`).
    any: bool,
    /// Origins allowed with credentials, compared byte for byte.
    listed: Vec<String>,
}

/// What CORS grants one request.
enum CorsGrant {
    /// A listed origin: echoed, with credentials.
    Credentialed(HeaderValue),
    /// `*` configured and the origin not listed: a literal `*`, which
    /// browsers never combine with credentials.
    Anonymous,
}

impl Cors {
    fn is_off(&self) -> bool {
        !self.any && self.listed.is_empty()
    }

    fn grant(&self, parts: &Parts) -> Option<CorsGrant> {
        let origin = parts.headers.get(header::ORIGIN)?;
        if self
            .listed
            .iter()
            .any(|o| o.as_bytes() == origin.as_bytes())
        {
            Some(CorsGrant::Credentialed(origin.clone()))
        } else if self.any {
            Some(CorsGrant::Anonymous)
        } else {
            None
        }
    }
}

/// The SSE endpoint: a hub, how streams are shaped, an optional auth hook
/// and CORS origins. Cheap to clone.
///
/// # Examples
///
/// ```
/// use ssehub_core::{Hub, HubConfig};
/// use ssehub_tokio::{endpoint::ConnInfo, Rejection, SseEndpoint};
///
/// let hub = Hub::new(HubConfig::default(), ssehub_tokio::now());
/// let endpoint = SseEndpoint::new(hub.clone())
///     .with_authorizer(|parts| match parts.headers.get("authorization") {
///         Some(_) => Ok(()),
///         None => Err(Rejection::unauthorized("a bearer token is required")),
///     });
/// let (parts, ()) = http::Request::get("/events?topic=news").body(()).unwrap().into_parts();
/// let response = endpoint.handle(&parts, &ConnInfo::default());
/// assert_eq!(response.status(), 401);
/// assert_eq!(hub.len(), 0);
/// ```
#[derive(Clone)]
pub struct SseEndpoint {
    hub: Hub,
    settings: Arc<SseSettings>,
    authorizer: Option<Authorizer>,
    access: Option<AccessCheck>,
    /// Sent before closing a stream whose access expired.
    expiry_event: Arc<Event>,
    cors: Arc<Cors>,
}

impl fmt::Debug for SseEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseEndpoint")
            .field("hub", &self.hub)
            .field("settings", &self.settings)
            .field("authorizer", &self.authorizer.is_some())
            .field("access", &self.access.is_some())
            .field("cors", &self.cors)
            .finish()
    }
}

impl SseEndpoint {
    /// An endpoint for `hub` with default [`SseSettings`], no auth, no CORS.
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            settings: Arc::new(SseSettings::default()),
            authorizer: None,
            access: None,
            expiry_event: Arc::new(expiry_event("fatal")),
            cors: Arc::new(Cors::default()),
        }
    }

    /// Runs `check` on every stream request once its query is parsed, with
    /// the topics asked for, before reserving anything; the stream ends at
    /// the [`Access`] it grants (see the module docs).
    #[must_use]
    pub fn with_access_check<F>(mut self, check: F) -> Self
    where
        F: Fn(&Parts, &[String]) -> Result<Access, Rejection> + Send + Sync + 'static,
    {
        self.access = Some(Arc::new(check));
        self
    }

    /// Names the event sent before a stream whose access expired is closed
    /// (`fatal` by default, as the kick route's); its data is
    /// `{"reason":"token_expired"}`.
    #[must_use]
    pub fn with_fatal_event(mut self, name: &str) -> Self {
        self.expiry_event = Arc::new(expiry_event(name));
        self
    }

    /// Shapes streams with `settings`.
    #[must_use]
    pub fn with_settings(mut self, settings: SseSettings) -> Self {
        self.settings = Arc::new(settings);
        self
    }

    /// Runs `authorize` on every request before reserving anything.
    #[must_use]
    pub fn with_authorizer<F>(mut self, authorize: F) -> Self
    where
        F: Fn(&Parts) -> Result<(), Rejection> + Send + Sync + 'static,
    {
        self.authorizer = Some(Arc::new(authorize));
        self
    }

    /// Allows these origins (`scheme://host[:port]`) to open streams
    /// cross-origin, with credentials (cookies, `withCredentials`). `*`
    /// among them lets any other origin open streams too, but without
    /// credentials: an unlisted origin is never echoed back.
    #[must_use]
    pub fn with_cors_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cors = Cors::default();
        for origin in origins.into_iter().map(Into::into) {
            if origin == "*" {
                cors.any = true;
            } else {
                cors.listed.push(origin);
            }
        }
        self.cors = Arc::new(cors);
        self
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// How streams are shaped.
    pub fn settings(&self) -> &SseSettings {
        &self.settings
    }

    /// Answers one request: a stream, a preflight, or an error response
    /// (JSON `{"error": ...}`). Never panics; every refusal leaves nothing
    /// in the hub.
    pub fn handle(&self, parts: &Parts, conn: &ConnInfo) -> Response<BoxBody> {
        let grant = self.cors.grant(parts);
        let mut response = match parts.method {
            Method::GET => self.get(parts, conn),
            Method::OPTIONS => {
                let mut response = Response::new(crate::respond::full(""));
                *response.status_mut() = StatusCode::NO_CONTENT;
                if grant.is_some() {
                    let headers = response.headers_mut();
                    headers.insert(
                        header::ACCESS_CONTROL_ALLOW_METHODS,
                        HeaderValue::from_static("GET"),
                    );
                    headers.insert(
                        header::ACCESS_CONTROL_ALLOW_HEADERS,
                        HeaderValue::from_static("last-event-id, cache-control, authorization"),
                    );
                    headers.insert(
                        header::ACCESS_CONTROL_MAX_AGE,
                        HeaderValue::from_static("600"),
                    );
                }
                response
            }
            _ => {
                let mut response =
                    json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET to open a stream");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, OPTIONS"));
                response
            }
        };
        if let Some(grant) = grant {
            let headers = response.headers_mut();
            match grant {
                CorsGrant::Credentialed(origin) => {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                    headers.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
                CorsGrant::Anonymous => {
                    headers.insert(
                        header::ACCESS_CONTROL_ALLOW_ORIGIN,
                        HeaderValue::from_static("*"),
                    );
                }
            }
            // `retry-after` too: a page's `ssehub.js` on another origin must
            // see a 503's floor to honour it, as a same-origin page does.
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("client-id, retry-after"),
            );
        }
        if !self.cors.is_off() {
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static("origin"));
        }
        response
    }

    /// The request's [`ReserveOptions`]: topics and `Last-Event-ID` from the
    /// request, the peer's IP address as the peer tag.
    ///
    /// # Errors
    ///
    /// A 400 response for a malformed query string or no topic.
    #[allow(clippy::result_large_err)]
    pub fn reserve_options(
        &self,
        parts: &Parts,
        conn: &ConnInfo,
    ) -> Result<ReserveOptions, Response<BoxBody>> {
        self.stream_request(parts, conn).map(|(opts, _)| opts)
    }

    /// [`SseEndpoint::reserve_options`] and the topics asked for.
    #[allow(clippy::result_large_err)]
    fn stream_request(
        &self,
        parts: &Parts,
        conn: &ConnInfo,
    ) -> Result<(ReserveOptions, Vec<String>), Response<BoxBody>> {
        let pairs = crate::query::parse(parts.uri.query().unwrap_or(""))
            .map_err(|e| json_error(StatusCode::BAD_REQUEST, &e.to_string()))?;
        let mut opts = ReserveOptions::new();
        let mut topics = Vec::new();
        let mut query_last_id = None;
        for (name, value) in pairs {
            match name.as_str() {
                "topic" => topics.push(value),
                "lastEventId" => query_last_id = Some(value),
                _ => {}
            }
        }
        for topic in &topics {
            opts = opts.topic(topic.clone());
        }
        if topics.is_empty() {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                "at least one `topic` query parameter is required",
            ));
        }
        let header_last_id = parts
            .headers
            .get("last-event-id")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        // The header wins: a polyfill's query parameter is the fallback.
        if let Some(last) = header_last_id.or(query_last_id) {
            if !last.is_empty() {
                opts = opts.last_event_id(last);
            }
        }
        if let Some(peer) = conn.peer {
            opts = opts.peer(peer.ip().to_string());
        }
        Ok((opts, topics))
    }

    fn get(&self, parts: &Parts, conn: &ConnInfo) -> Response<BoxBody> {
        if let Some(authorize) = &self.authorizer {
            if let Err(rejection) = authorize(parts) {
                tracing::debug!(%rejection, "stream refused by the auth hook");
                return rejection.to_response();
            }
        }
        let (mut opts, topics) = match self.stream_request(parts, conn) {
            Ok(request) => request,
            Err(response) => return response,
        };
        let access = match &self.access {
            None => Access::unlimited(),
            Some(check) => match check(parts, &topics) {
                Ok(access) => access,
                Err(rejection) => {
                    tracing::debug!(%rejection, "stream refused by the access check");
                    return rejection.to_response();
                }
            },
        };
        if let Some(subject) = access.subject() {
            opts = opts.subject(subject);
        }
        match open(&self.hub, &self.settings, opts, conn.tracker.clone()) {
            Ok(response) => match access.expires_at {
                None => response.map(BodyExt::boxed),
                Some(at) => {
                    let event = Arc::clone(&self.expiry_event);
                    let hub = self.hub.clone();
                    response.map(|body| ExpiringBody::new(body, hub, at, event).boxed())
                }
            },
            Err(error) => {
                tracing::debug!(%error, peer = ?conn.peer, "stream refused");
                error.to_response(self.settings.busy_retry_after)
            }
        }
    }
}

/// The event sent before a stream whose access expired is closed.
fn expiry_event(name: &str) -> Event {
    Event::new(r#"{"reason":"token_expired"}"#).with_event(name)
}

/// An [`SseBody`] that sends the expiry event and closes its client at a
/// deadline (invariant ACCESS-EXPIRY). The timer lives and dies with the
/// body.
struct ExpiringBody {
    inner: SseBody,
    /// `None` once fired.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    hub: Hub,
    id: ClientId,
    event: Arc<Event>,
}

impl ExpiringBody {
    /// Expires at wall-clock `at`, measured on tokio's clock from now.
    fn new(inner: SseBody, hub: Hub, at: SystemTime, event: Arc<Event>) -> Self {
        // Already past (the token expired between its check and here): at
        // once. `tokio::time::sleep` saturates far-future deadlines.
        let left = at
            .duration_since(SystemTime::now())
            .unwrap_or(std::time::Duration::ZERO);
        Self {
            id: inner.client_id(),
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(left))),
            hub,
            event,
        }
    }
}

impl Body for ExpiringBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.deadline = None;
                // One step: the fatal event is the last frame.
                let outcome = this
                    .hub
                    .close_with(this.id, CloseReason::Kicked, Some(&this.event))
                    .unwrap_or_else(|error| {
                        // A name that cannot be encoded: close without it.
                        tracing::error!(%error, "expiry event not encodable");
                        this.hub.close(this.id, CloseReason::Kicked)
                    });
                tracing::info!(client = %this.id, ?outcome, "access expired: stream closed");
            }
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssehub_core::HubConfig;
    use std::future::poll_fn;
    use std::time::Duration;

    async fn next_frame(body: &mut BoxBody) -> Option<String> {
        let frame = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        let data = frame.ok()?.into_data().ok()?;
        Some(String::from_utf8(data.to_vec()).unwrap())
    }

    /// ACCESS-EXPIRY on tokio's clock: nothing ends the stream before the
    /// grant's end, the fatal event and the end come at it.
    #[tokio::test(start_paused = true)]
    async fn access_until_an_instant_ends_the_stream_then_with_the_fatal_event() {
        let hub = Hub::new(HubConfig::default(), crate::now());
        let lifetime = Duration::from_secs(3600);
        let until = SystemTime::now() + lifetime;
        let endpoint = SseEndpoint::new(hub.clone())
            .with_fatal_event("bye")
            .with_access_check(move |_, topics| {
                assert_eq!(topics, ["a", "b"]);
                Ok(Access::until(until))
            });
        let (parts, ()) = http::Request::get("/events?topic=a&topic=b")
            .body(())
            .unwrap()
            .into_parts();
        let mut body = endpoint.handle(&parts, &ConnInfo::default()).into_body();
        let start = tokio::time::Instant::now();
        assert!(next_frame(&mut body)
            .await
            .unwrap()
            .contains("event: welcome"));
        hub.publish("a", &Event::new("live")).unwrap();
        assert!(next_frame(&mut body)
            .await
            .unwrap()
            .ends_with("data: live\n\n"));
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Paused time jumps to the next timer: the expiry.
        assert_eq!(
            next_frame(&mut body).await.unwrap(),
            "event: bye\ndata: {\"reason\":\"token_expired\"}\n\n"
        );
        assert!(start.elapsed() >= lifetime - Duration::from_secs(1));
        assert_eq!(next_frame(&mut body).await, None);
        assert_eq!(hub.metrics().closes_for(CloseReason::Kicked), 1);
        drop(body);
        assert_eq!(hub.len(), 0);
    }

    #[tokio::test]
    async fn a_refused_access_check_reserves_nothing_and_a_dropped_expiring_body_leaves_nothing() {
        let hub = Hub::new(HubConfig::default(), crate::now());
        let endpoint = SseEndpoint::new(hub.clone())
            .with_access_check(|_, _| Err(Rejection::forbidden("not yours")));
        let (parts, ()) = http::Request::get("/events?topic=a")
            .body(())
            .unwrap()
            .into_parts();
        let response = endpoint.handle(&parts, &ConnInfo::default());
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(hub.len(), 0);

        let far = SystemTime::now() + Duration::from_secs(u32::MAX.into());
        let endpoint =
            SseEndpoint::new(hub.clone()).with_access_check(move |_, _| Ok(Access::until(far)));
        let response = endpoint.handle(&parts, &ConnInfo::default());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(hub.len(), 1);
        drop(response);
        assert_eq!(hub.len(), 0);
        assert_eq!(hub.metrics().closes_for(CloseReason::ClientGone), 1);
    }
}
