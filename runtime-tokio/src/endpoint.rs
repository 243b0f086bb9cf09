//! [`SseEndpoint`]: turns an HTTP request into a registered client and its
//! SSE response — the part of the hub server that embedders reuse as is.
//!
//! - `GET ?topic=a&topic=b` subscribes to the topics named (at least one);
//!   `Last-Event-ID` comes from the header, or from the `lastEventId`
//!   query parameter that EventSource polyfills send; other parameters are
//!   ignored, a malformed query string is a 400;
//! - the [`Authorizer`] hook runs before anything is reserved and answers
//!   401/403 with a JSON body;
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

use crate::io::WriteTracker;
use crate::respond::{json_error, open, BoxBody, SseSettings};
use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use ssehub_core::{Hub, ReserveOptions};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

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
    cors: Arc<Cors>,
}

impl fmt::Debug for SseEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseEndpoint")
            .field("hub", &self.hub)
            .field("settings", &self.settings)
            .field("authorizer", &self.authorizer.is_some())
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
            cors: Arc::new(Cors::default()),
        }
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
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("client-id"),
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
        let pairs = crate::query::parse(parts.uri.query().unwrap_or(""))
            .map_err(|e| json_error(StatusCode::BAD_REQUEST, &e.to_string()))?;
        let mut opts = ReserveOptions::new();
        let mut topics = 0;
        let mut query_last_id = None;
        for (name, value) in pairs {
            match name.as_str() {
                "topic" => {
                    opts = opts.topic(value);
                    topics += 1;
                }
                "lastEventId" => query_last_id = Some(value),
                _ => {}
            }
        }
        if topics == 0 {
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
        Ok(opts)
    }

    fn get(&self, parts: &Parts, conn: &ConnInfo) -> Response<BoxBody> {
        if let Some(authorize) = &self.authorizer {
            if let Err(rejection) = authorize(parts) {
                tracing::debug!(%rejection, "stream refused by the auth hook");
                return rejection.to_response();
            }
        }
        let opts = match self.reserve_options(parts, conn) {
            Ok(opts) => opts,
            Err(response) => return response,
        };
        match open(&self.hub, &self.settings, opts, conn.tracker.clone()) {
            Ok(response) => response.map(BodyExt::boxed),
            Err(error) => {
                tracing::debug!(%error, peer = ?conn.peer, "stream refused");
                error.to_response(self.settings.busy_retry_after)
            }
        }
    }
}
