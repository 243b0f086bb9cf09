//! The hub server's routes. Every error answer is JSON `{"error": "..."}`.
//!
//! | route | does | errors |
//! |---|---|---|
//! | `GET /events?topic=a&topic=b` | opens a stream ([`SseEndpoint`]) | 400 query, 401/403 subscribe token or JWT, 503 limits |
//! | `POST /publish` `{topic, event?, data}` | publishes, answers `{"id", "delivered"}` (clustered: `{"id"}`, the event is sequenced by Redis and delivered by every node; 503 + `Retry-After` while Redis is unreachable) | 401/403 (admin token, or a JWT whose `publish` claim covers the topic), 413 too large, 415 not JSON, 400 malformed JSON, 422 unknown fields or bad topic, 503 |
//! | `POST /clients/{id}/send` `{event?, data}` | sends to one client, answers `{"sent": true}` | 400 bad id, 404 unknown client, as publish |
//! | `DELETE /clients/{id}[?fatal=true]` | kicks (after the fatal event), answers `{"closed": true}` | 400 bad id or query, 404 unknown client |
//! | `GET /topics?limit=&cursor=&sort=subscribers\|name` | lists topics (subscribers, retained, last event id, events/s), paginated (`presence`) | 401/403 admin token or admin JWT, 400 query |
//! | `GET /topics/{topic}[?clients=true&limit=&cursor=]` | one topic's figures, optionally a page of its client ids | 401/403 admin token or admin JWT, 400 query or topic, 404 unknown topic |
//! | `GET /metrics` | Prometheus text | |
//! | `GET /healthz` | `{"status": "ok"}`; clustered, `"degraded"` while Redis is unreachable, with `"redis"` and `"node"` | |
//! | `GET /` | the demo page | |
//! | `GET /dashboard` | the live dashboard page (`dashboard`); it asks for the admin token | |
//! | `GET /dashboard/stream` | an SSE stream of the hub's stats (`dashboard`) | 401/403 admin token or admin JWT, 503 limits |
//! | `GET /ssehub.js` | the browser client, with an `ETag` (304 on `If-None-Match`) | |
//!
//! "The admin token" is `--token`, or, with JWT configured, a JWT whose
//! claims say `"ssehub": {"admin": true}` (`jwt`, JWT-ADMIN): every route
//! that takes one takes the other.
//!
//! Topics starting with `$ssehub/` are the hub's own: `POST /publish`
//! and `GET /events` refuse them (403); the stats topic is opened by
//! `GET /dashboard/stream`, with the admin token.
//!
//! `data` may be any JSON value: a string is sent as is, anything else as
//! its compact JSON text.

use super::config::ServerConfig;
use super::dashboard;
use super::jwt::{bearer, Grant, JwtError};
use super::metrics::{self, ServerFigures};
use crate::cluster::{Backplane, ClusterPublishError, LinkState};
use crate::endpoint::{ConnInfo, Rejection, SseEndpoint};
use crate::respond::{full, json_error, BoxBody};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use ssehub_core::codec::{EncodeError, Event};
use ssehub_core::{ClientId, CloseOutcome, CloseReason, Hub, PublishError, SendError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

mod presence;

/// `POST /publish` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    topic: String,
    #[serde(default)]
    event: Option<String>,
    data: serde_json::Value,
}

/// `POST /clients/{id}/send` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    #[serde(default)]
    event: Option<String>,
    data: serde_json::Value,
}

/// The application: everything a request needs.
pub(crate) struct App {
    hub: Hub,
    config: Arc<ServerConfig>,
    endpoint: SseEndpoint,
    /// `GET /dashboard/stream`: no CORS, no subscribe hooks (the admin
    /// token is checked first).
    stats_endpoint: SseEndpoint,
    demo_page: Bytes,
    start_time_seconds: f64,
    pub(crate) open_connections: OnceLock<Arc<AtomicUsize>>,
    /// The cluster link: publishes go through Redis, resumes read its
    /// history.
    backplane: Option<Backplane>,
}

pub(super) type Answer = Response<BoxBody>;

impl App {
    pub(crate) fn new(hub: Hub, config: Arc<ServerConfig>, backplane: Option<Backplane>) -> Self {
        let stats_endpoint = SseEndpoint::new(hub.clone())
            .with_settings(config.sse.clone())
            .with_fatal_event(&config.fatal_event);
        let mut endpoint = SseEndpoint::new(hub.clone())
            .with_settings(config.sse.clone())
            .with_fatal_event(&config.fatal_event)
            .with_cors_origins(config.cors_origins.iter().cloned());
        if let Some(backplane) = &backplane {
            endpoint = endpoint.with_history(Arc::new(backplane.clone()));
        }
        if let Some(jwt) = config.jwt.clone() {
            endpoint =
                endpoint.with_access_check(move |parts, topics| jwt.check_subscribe(parts, topics));
        }
        if let Some(token) = config.subscribe_token.clone() {
            endpoint = endpoint.with_authorizer(move |parts| {
                let query_token = crate::query::parse(parts.uri.query().unwrap_or(""))
                    .ok()
                    .and_then(|pairs| {
                        pairs
                            .into_iter()
                            .find(|(name, _)| name == "access_token")
                            .map(|(_, value)| value)
                    });
                match bearer(&parts.headers).or(query_token) {
                    None => Err(Rejection::unauthorized(
                        "a subscribe token is required (Authorization: Bearer or ?access_token=)",
                    )),
                    Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
                    Some(_) => Err(Rejection::forbidden("the subscribe token is not valid")),
                }
            });
        }
        let demo_page = Bytes::from(super::demo_page(&config));
        let start_time_seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            hub,
            config,
            endpoint,
            stats_endpoint,
            demo_page,
            start_time_seconds,
            open_connections: OnceLock::new(),
            backplane,
        }
    }

    pub(crate) async fn route(&self, request: Request<Incoming>, conn: ConnInfo) -> Answer {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let response = match (segments.as_slice(), &method) {
            (["events"], _) => match self.check_reserved_topics(&request) {
                Err(response) => response,
                Ok(()) => {
                    self.endpoint
                        .handle_async(&request.into_parts().0, &conn)
                        .await
                }
            },
            (["dashboard"], &Method::GET) => dashboard::page(),
            (["dashboard", "stream"], &Method::GET) => self.stats_stream(request, &conn),
            ([""], &Method::GET) => self.demo(),
            (["ssehub.js"], &Method::GET) => super::script::response(request.headers()),
            (["ssehub.js"], _) => method_not_allowed("GET"),
            (["healthz"], &Method::GET) => self.health(),
            (["metrics"], &Method::GET) => self.metrics(),
            (["topics", ..], &Method::GET) => match self.check_token(&request) {
                Err(response) => response,
                Ok(()) => match path.strip_prefix("/topics/") {
                    None => presence::list(&self.hub, request.uri().query()),
                    Some(raw) => match &self.backplane {
                        None => presence::topic(&self.hub, raw, request.uri().query()),
                        Some(backplane) => {
                            presence::cluster_topic(
                                &self.hub,
                                backplane,
                                raw,
                                request.uri().query(),
                            )
                            .await
                        }
                    },
                },
            },
            (["publish"], &Method::POST) => self.publish(request).await,
            (["clients", id, "send"], &Method::POST) => {
                let id = (*id).to_owned();
                self.send(&id, request).await
            }
            (["clients", id], &Method::DELETE) => {
                let id = (*id).to_owned();
                self.kick(&id, &request)
            }
            ([""] | ["healthz"] | ["metrics"] | ["dashboard"] | ["dashboard", "stream"], _) => {
                method_not_allowed("GET")
            }
            (["publish"] | ["clients", _, "send"], _) => method_not_allowed("POST"),
            (["clients", _], _) => method_not_allowed("DELETE"),
            (["topics", ..], _) => method_not_allowed("GET"),
            _ => json_error(StatusCode::NOT_FOUND, "no such route"),
        };
        tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
        response
    }

    /// `/events` from the HTTP/1 fast path (see `crate::serve`): `None`
    /// for a stream that must read history first (a resume on a clustered
    /// node), which then takes the hyper path and [`App::route`]'s
    /// asynchronous handling.
    pub(crate) fn fast_events(
        &self,
        parts: &http::request::Parts,
        conn: &ConnInfo,
    ) -> Option<Answer> {
        (!self.endpoint.reads_history_for(parts)).then(|| self.events(parts, conn))
    }

    /// `/events`: reserved topics refused, then the endpoint.
    pub(crate) fn events(&self, parts: &http::request::Parts, conn: &ConnInfo) -> Answer {
        let mut probe = Request::new(());
        *probe.uri_mut() = parts.uri.clone();
        match self.check_reserved_topics(&probe) {
            Err(response) => response,
            Ok(()) => self.endpoint.handle(parts, conn),
        }
    }

    fn demo(&self) -> Answer {
        let mut response = Response::new(full(self.demo_page.clone()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// `{"status": "ok"}`; clustered, `"degraded"` while the link to
    /// Redis is not up (streams go on, publishes answer 503), with the
    /// link's state.
    fn health(&self) -> Answer {
        let Some(backplane) = &self.backplane else {
            return json(StatusCode::OK, serde_json::json!({"status": "ok"}));
        };
        let state = backplane.state();
        let status = if state == LinkState::Up {
            "ok"
        } else {
            "degraded"
        };
        json(
            StatusCode::OK,
            serde_json::json!({"status": status, "redis": state.as_str(), "node": backplane.node_name()}),
        )
    }

    fn metrics(&self) -> Answer {
        let figures = ServerFigures {
            open_connections: self
                .open_connections
                .get()
                .map_or(0, |n| n.load(Ordering::Relaxed)),
            start_time_seconds: self.start_time_seconds,
        };
        let mut text = metrics::render(&self.hub.metrics(), figures);
        if let Some(backplane) = &self.backplane {
            backplane.render_metrics(&mut text);
        }
        let mut response = Response::new(full(text));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    async fn publish(&self, request: Request<Incoming>) -> Answer {
        let publisher = match self.publisher(&request) {
            Ok(publisher) => publisher,
            Err(response) => return response,
        };
        let body: PublishRequest = match self.json_body(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        if dashboard::is_reserved(&body.topic) {
            return Rejection::forbidden(format!(
                "topic {:?} is reserved for the hub's own events",
                body.topic
            ))
            .to_response();
        }
        if let Some(grant) = publisher {
            if !grant.may_publish(&body.topic) {
                return Rejection::forbidden(format!(
                    "the token does not allow publishing to topic {:?}",
                    body.topic
                ))
                .to_response();
            }
        }
        let event = event_of(body.event, &body.data);
        if let Some(backplane) = &self.backplane {
            return match backplane.publish(&body.topic, &event).await {
                Ok(id) => json(StatusCode::OK, serde_json::json!({"id": id.to_string()})),
                Err(ClusterPublishError::Refused(error)) => self.publish_refused(&error),
                Err(error @ ClusterPublishError::Backplane(_)) => self.busy(json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &error.to_string(),
                )),
            };
        }
        match self.hub.publish(&body.topic, &event) {
            Ok(report) => json(
                StatusCode::OK,
                serde_json::json!({"id": report.id.to_string(), "delivered": report.delivered}),
            ),
            Err(error) => self.publish_refused(&error),
        }
    }

    fn publish_refused(&self, error: &PublishError) -> Answer {
        let status = match error {
            PublishError::InvalidTopic(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PublishError::Encode(EncodeError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            PublishError::Encode(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        self.busy(json_error(status, &error.to_string()))
    }

    async fn send(&self, id: &str, request: Request<Incoming>) -> Answer {
        let id = match self.authorized_id(id, &request) {
            Ok(id) => id,
            Err(response) => return response,
        };
        if let Err(response) = self.check_token(&request) {
            return response;
        }
        let body: SendRequest = match self.json_body(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        match self.hub.send(id, &event_of(body.event, &body.data)) {
            Ok(()) => json(StatusCode::OK, serde_json::json!({"sent": true})),
            Err(error) => {
                let status = match &error {
                    SendError::UnknownClient | SendError::Closed(_) => StatusCode::NOT_FOUND,
                    SendError::Encode(EncodeError::TooLarge { .. }) => {
                        StatusCode::PAYLOAD_TOO_LARGE
                    }
                    SendError::Encode(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                self.busy(json_error(status, &error.to_string()))
            }
        }
    }

    fn kick(&self, id: &str, request: &Request<Incoming>) -> Answer {
        let id = match self.authorized_id(id, request) {
            Ok(id) => id,
            Err(response) => return response,
        };
        let pairs = match crate::query::parse(request.uri().query().unwrap_or("")) {
            Ok(pairs) => pairs,
            Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let mut fatal = false;
        for (name, value) in pairs {
            if name == "fatal" {
                fatal = match value.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return json_error(StatusCode::BAD_REQUEST, "fatal must be true or false"),
                };
            }
        }
        let fatal_event = fatal.then(|| {
            Event::new(serde_json::json!({"reason": "kicked"}).to_string())
                .with_event(self.config.fatal_event.as_str())
        });
        // One step: the fatal event is the last frame, no publish after it.
        match self
            .hub
            .close_with(id, CloseReason::Kicked, fatal_event.as_ref())
        {
            Ok(CloseOutcome::Closed | CloseOutcome::Deferred) => {
                tracing::info!(client = %id, fatal, "client kicked");
                json(StatusCode::OK, serde_json::json!({"closed": true}))
            }
            Ok(_) => json_error(StatusCode::NOT_FOUND, "no live client with this id"),
            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }

    /// `GET /dashboard/stream`: with the admin token, a stream of the
    /// stats topic (whatever the query asked for).
    fn stats_stream(&self, request: Request<Incoming>, conn: &ConnInfo) -> Answer {
        if let Err(response) = self.check_token(&request) {
            return response;
        }
        let (mut parts, _) = request.into_parts();
        let mut uri = http::uri::Parts::default();
        uri.path_and_query = Some(http::uri::PathAndQuery::from_static(
            "/dashboard/stream?topic=%24ssehub%2Fstats",
        ));
        match http::Uri::from_parts(uri) {
            Ok(uri) => parts.uri = uri,
            Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
        self.stats_endpoint.handle(&parts, conn)
    }

    /// Reserved topics are not opened by `GET /events` (403), whatever
    /// the credentials: their stream is `GET /dashboard/stream`. A query
    /// that does not parse is left to the endpoint (400).
    #[allow(clippy::result_large_err)]
    fn check_reserved_topics<B>(&self, request: &Request<B>) -> Result<(), Answer> {
        let reserved = crate::query::parse(request.uri().query().unwrap_or(""))
            .ok()
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(name, value)| name == "topic" && dashboard::is_reserved(value))
            });
        match reserved {
            Some((_, topic)) => Err(Rejection::forbidden(format!(
                "topic {topic:?} is reserved for the hub's own events (see GET /dashboard/stream)"
            ))
            .to_response()),
            None => Ok(()),
        }
    }

    /// Checks the admin token, then parses the client id (400 on garbage).
    #[allow(clippy::result_large_err)]
    fn authorized_id<B>(&self, id: &str, request: &Request<B>) -> Result<ClientId, Answer> {
        self.check_token(request)?;
        id.parse::<ClientId>().map_err(|e| {
            json_error(
                StatusCode::BAD_REQUEST,
                &format!("client id {id:?}: {e} (expected <index>.<generation>, as in the Client-Id header)"),
            )
        })
    }

    /// Who may publish: the admin token (`None`: any topic), or, with JWT
    /// configured, a bearer JWT (its grant; the topic is checked once the
    /// body is read). Only the header counts: a cookie would let other
    /// sites publish through a visitor's browser.
    #[allow(clippy::result_large_err)]
    fn publisher<B>(&self, request: &Request<B>) -> Result<Option<Grant>, Answer> {
        let admin = self.check_token(request);
        let Some(jwt) = &self.config.jwt else {
            return admin.map(|()| None);
        };
        match (admin, bearer(request.headers())) {
            (Ok(()), _) => Ok(None),
            (Err(answer), None) => Err(answer),
            (Err(_), Some(token)) => jwt
                .verify(&token)
                .map(Some)
                .map_err(|e| Rejection::unauthorized(e.to_string()).to_response()),
        }
    }

    /// The admin check: `Authorization: Bearer` with the admin token or,
    /// with JWT configured, a JWT whose claims say
    /// `"ssehub": {"admin": true}` (JWT-ADMIN). 401: no credentials, or a
    /// JWT that is expired or fails verification; 403: anything else.
    #[allow(clippy::result_large_err)]
    fn check_token<B>(&self, request: &Request<B>) -> Result<(), Answer> {
        let Some(given) = bearer(request.headers()) else {
            return Err(Rejection::unauthorized(
                "this route needs `Authorization: Bearer <token>` (the admin token or an admin JWT)",
            )
            .to_response());
        };
        if constant_time_eq(given.as_bytes(), self.config.token.as_bytes()) {
            return Ok(());
        }
        if let Some(jwt) = &self.config.jwt {
            match jwt.verify(&given) {
                Ok(grant) if grant.admin => return Ok(()),
                Ok(_) => return Err(Rejection::forbidden(
                    "the token does not grant admin access (claim \"ssehub\": {\"admin\": true})",
                )
                .to_response()),
                Err(error @ (JwtError::Expired | JwtError::BadSignature)) => {
                    return Err(Rejection::unauthorized(error.to_string()).to_response())
                }
                // Not a JWT at all: a wrong admin token.
                Err(_) => {}
            }
        }
        Err(Rejection::forbidden("the token is not valid").to_response())
    }

    /// Content type, size limit (while reading), JSON. The caller checked
    /// the credentials.
    async fn json_body<T: serde::de::DeserializeOwned>(
        &self,
        request: Request<Incoming>,
    ) -> Result<T, Answer> {
        let json_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !json_type {
            return Err(json_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ));
        }
        let limit = self.config.max_body_bytes;
        let too_large = || {
            json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body is over {limit} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let bytes = match Limited::new(request.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(error) => {
                return Err(json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("could not read the request body: {error}"),
                ))
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            let status = if e.is_data() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_REQUEST
            };
            json_error(status, &format!("invalid JSON body: {e}"))
        })
    }

    /// Adds `Retry-After` to a 503.
    fn busy(&self, mut response: Answer) -> Answer {
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            let secs = self.config.sse.busy_retry_after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn event_of(name: Option<String>, data: &serde_json::Value) -> Event {
    let data = match data {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let event = Event::new(data);
    match name {
        Some(name) => event.with_event(name),
        None => event,
    }
}

pub(super) fn json(status: StatusCode, value: serde_json::Value) -> Answer {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn method_not_allowed(allow: &'static str) -> Answer {
    let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
