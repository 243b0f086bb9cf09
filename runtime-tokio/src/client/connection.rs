//! The connection driver: runs the core's [`ReconnectPolicy`] and
//! [`Decoder`] over hyper's client, one item at a time.
//!
//! The driver is a loop over a [`Phase`]; every wait (connecting, backing
//! off, reading) races the [`Shared`] control signal, so `close()` and
//! `reconnect()` take effect at once, whatever the driver is waiting for.
//! Items go through a small queue so that an error is always yielded just
//! before the state change it causes, and a fatal event before `Closed`.

use super::builder::{check_scheme, Builder, HttpVersion};
use super::error::ClientError;
use super::redirect;
use super::tls;
use super::{ClientEvent, Shared};
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER,
};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ssehub_core::codec::{Decoder, Frame};
use ssehub_core::reconnect::{Action, ReconnectPolicy, SplitMix64, State};
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::{sleep_until, Instant};

/// What the driver is doing.
enum Phase {
    /// Not started: the first poll asks the policy.
    Start,
    /// Making a connection attempt now.
    Connect { last_event_id: Option<String> },
    /// Waiting before the next attempt.
    Backoff {
        until: Instant,
        last_event_id: Option<String>,
    },
    /// Reading an open stream.
    Open(Box<Reading>),
    /// Closed for good: yields what is queued, then ends.
    Closed,
}

struct Reading {
    body: Incoming,
    decoder: Decoder,
    /// When the liveness timeout fires, unless bytes arrive first.
    deadline: Option<Instant>,
    /// When the connection counts as healthy (the policy's
    /// `healthy_after`), unless already reported.
    healthy_at: Option<Instant>,
}

/// A response that ends the redirect chain, and what went wrong on the way.
struct Answered {
    response: Response<Incoming>,
    problem: Option<ClientError>,
}

/// What one read of an open stream produced.
enum ReadOutcome {
    Data(Bytes),
    End,
    Failed(ClientError),
}

/// The state of one [`EventSource`](super::EventSource), owned by its
/// stream.
pub(crate) struct Driver {
    url: Uri,
    headers: HeaderMap,
    /// Makes a fresh client (so a fresh connection pool) for each attempt.
    client: hyper_util::client::legacy::Builder,
    /// `http://` as is, `https://` through rustls (ALPN per the version).
    connector: HttpsConnector<HttpConnector>,
    policy: ReconnectPolicy<SplitMix64>,
    shared: Arc<Shared>,
    phase: Phase,
    queue: VecDeque<ClientEvent>,
    reported: Option<State>,
    max_line_len: usize,
    max_event_len: usize,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
    max_redirects: u32,
    locally_closed: bool,
}

impl Driver {
    pub(crate) fn new(
        url: Uri,
        builder: Builder,
        tls: Arc<rustls::ClientConfig>,
        shared: Arc<Shared>,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The TLS layer above handles `https://`.
        http.enforce_http(false);
        let connector = HttpsConnector::from((http, tls));
        let mut client = Client::builder(TokioExecutor::new());
        client
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_only(builder.version == HttpVersion::Http2);
        let seed = builder.seed.unwrap_or_else(random_seed);
        let mut policy = ReconnectPolicy::new(builder.reconnect, SplitMix64::new(seed));
        if let Some(id) = builder.last_event_id {
            policy = policy.with_last_event_id(id);
        }
        let mut headers = builder.headers;
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("text/event-stream"));
        headers
            .entry(CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-cache"));
        Self {
            url,
            headers,
            client,
            connector,
            policy,
            shared,
            phase: Phase::Start,
            queue: VecDeque::new(),
            reported: None,
            max_line_len: builder.max_line_len,
            max_event_len: builder.max_event_len,
            connect_timeout: builder.connect_timeout,
            read_timeout: builder.read_timeout,
            max_redirects: builder.max_redirects,
            locally_closed: false,
        }
    }

    /// The next item, or `None` once closed and everything was yielded.
    pub(crate) async fn next(&mut self) -> Option<ClientEvent> {
        let shared = Arc::clone(&self.shared);
        loop {
            if shared.is_closed() && !self.locally_closed {
                self.close_locally();
            }
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if shared.take_reconnect() && !matches!(self.phase, Phase::Closed) {
                let action = self.policy.reconnect();
                self.apply(action);
                continue;
            }
            match &mut self.phase {
                Phase::Closed => return None,
                Phase::Start => {
                    let action = self.policy.start();
                    self.apply(action);
                }
                Phase::Connect { last_event_id } => {
                    let last_event_id = last_event_id.take();
                    let attempt = {
                        let attempt = tokio::time::timeout(
                            self.connect_timeout,
                            self.request(last_event_id.as_deref()),
                        );
                        tokio::pin!(attempt);
                        loop {
                            tokio::select! {
                                biased;
                                // Abandon the attempt only for a real command
                                // (a stale wake-up must not restart it).
                                () = shared.signalled() => if shared.has_command() {
                                    break None;
                                },
                                attempt = &mut attempt => break Some(attempt),
                            }
                        }
                    };
                    let Some(attempt) = attempt else {
                        self.phase = Phase::Connect { last_event_id };
                        continue;
                    };
                    let attempt =
                        attempt.unwrap_or(Err(ClientError::ConnectTimeout(self.connect_timeout)));
                    self.on_attempt(attempt, last_event_id);
                }
                Phase::Backoff {
                    until,
                    last_event_id,
                } => {
                    let until = *until;
                    tokio::select! {
                        biased;
                        () = shared.signalled() => continue,
                        () = sleep_until(until) => {
                            let last_event_id = last_event_id.take();
                            self.phase = Phase::Connect { last_event_id };
                        }
                    }
                }
                Phase::Open(reading) => {
                    let outcome = tokio::select! {
                        biased;
                        () = shared.signalled() => continue,
                        () = sleep_opt(reading.healthy_at) => {
                            reading.healthy_at = None;
                            let action = self.policy.on_healthy();
                            self.apply(action);
                            continue;
                        }
                        frame = reading.body.frame() => match frame {
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => ReadOutcome::Data(data),
                                Err(_trailers) => continue,
                            },
                            Some(Err(e)) => ReadOutcome::Failed(ClientError::Read(Arc::new(e))),
                            None => ReadOutcome::End,
                        },
                        () = sleep_opt(reading.deadline) => {
                            ReadOutcome::Failed(ClientError::Liveness(self.read_timeout.unwrap_or_default()))
                        }
                    };
                    self.on_read(outcome);
                }
            }
        }
    }

    /// `close()` was called: drop the connection and whatever is queued,
    /// and report the local close (or keep the server's close, if the
    /// policy had already closed).
    fn close_locally(&mut self) {
        self.locally_closed = true;
        if matches!(self.phase, Phase::Closed) {
            self.queue
                .retain(|item| matches!(item, ClientEvent::State(State::Closed(_))));
            return;
        }
        self.queue.clear();
        let action = self.policy.close();
        self.apply(action);
    }

    /// Carries out the policy's decision, then reports the state if it
    /// changed.
    fn apply(&mut self, action: Action) {
        match action {
            Action::Continue => {}
            Action::Connect { last_event_id } => self.phase = Phase::Connect { last_event_id },
            Action::ConnectAfter {
                delay,
                last_event_id,
                ..
            } => {
                self.phase = Phase::Backoff {
                    until: deadline_after(delay),
                    last_event_id,
                };
            }
            Action::Close(_) => self.phase = Phase::Closed,
        }
        self.report_state();
    }

    fn report_state(&mut self) {
        let state = self.policy.state();
        if self.reported.as_ref() != Some(state) {
            self.reported = Some(state.clone());
            self.queue.push_back(ClientEvent::State(state.clone()));
        }
    }

    /// Reports a connection attempt's outcome to the policy.
    fn on_attempt(
        &mut self,
        attempt: Result<Answered, ClientError>,
        last_event_id: Option<String>,
    ) {
        let Answered { response, problem } = match attempt {
            Ok(answered) => answered,
            Err(error) => {
                let fatal = error.is_fatal();
                self.queue.push_back(ClientEvent::Error(error));
                let action = if fatal {
                    self.policy.on_fatal_connect_error()
                } else {
                    self.policy.on_connect_error()
                };
                return self.apply(action);
            }
        };
        if let Some(problem) = problem {
            self.queue.push_back(ClientEvent::Error(problem));
        }
        let status = response.status().as_u16();
        let content_type = header_str(response.headers(), CONTENT_TYPE);
        let retry_after = header_str(response.headers(), RETRY_AFTER)
            .and_then(|value| ssehub_core::reconnect::parse_retry_after(value, SystemTime::now()));
        let action = self.policy.on_response(status, content_type, retry_after);
        if *self.policy.state() == State::Open {
            let decoder = Decoder::new()
                .with_max_line_len(self.max_line_len)
                .with_max_event_len(self.max_event_len)
                .with_last_event_id(last_event_id.unwrap_or_default());
            self.phase = Phase::Open(Box::new(Reading {
                body: response.into_body(),
                decoder,
                deadline: self.read_timeout.map(deadline_after),
                healthy_at: self.policy.config().healthy_after().map(deadline_after),
            }));
            self.report_state();
        } else {
            if matches!(action, Action::ConnectAfter { .. })
                || matches!(self.policy.state(), State::Closed(info) if !info.fatal)
            {
                self.queue
                    .push_back(ClientEvent::Error(ClientError::Status {
                        status,
                        retry_after,
                    }));
            }
            self.apply(action);
        }
    }

    /// Feeds what the open stream produced to the decoder and the policy.
    fn on_read(&mut self, outcome: ReadOutcome) {
        let Phase::Open(reading) = &mut self.phase else {
            return;
        };
        let data = match outcome {
            ReadOutcome::Data(data) => data,
            ReadOutcome::End => {
                let action = self.policy.on_stream_end();
                return self.apply(action);
            }
            ReadOutcome::Failed(error) => {
                self.queue.push_back(ClientEvent::Error(error));
                let action = self.policy.on_stream_error();
                return self.apply(action);
            }
        };
        if !data.is_empty() {
            reading.deadline = self.read_timeout.map(deadline_after);
        }
        reading.decoder.feed(&data);
        loop {
            let Phase::Open(reading) = &mut self.phase else {
                return;
            };
            let action = match reading.decoder.next_frame() {
                Ok(None) => return,
                Ok(Some(frame)) => {
                    let action = self.policy.on_frame(&frame);
                    if let Frame::Event(event) = frame {
                        self.queue.push_back(ClientEvent::Message(event));
                    }
                    action
                }
                Err(error) => {
                    self.queue
                        .push_back(ClientEvent::Error(ClientError::Decode(error)));
                    self.policy.on_stream_error()
                }
            };
            if action != Action::Continue {
                return self.apply(action);
            }
        }
    }

    /// One connection attempt: the request, and the redirects it leads to.
    ///
    /// Each attempt gets a new client, hence a new connection: a reconnect
    /// must not reuse a pooled HTTP/2 connection that may be the very
    /// half-open one the liveness timeout just gave up on (and a new
    /// connection lets a load balancer pick another backend). Redirects
    /// within the attempt share it.
    async fn request(&self, last_event_id: Option<&str>) -> Result<Answered, ClientError> {
        let client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>> =
            self.client.build(self.connector.clone());
        let mut url = self.url.clone();
        let mut headers = self.headers.clone();
        if let Some(id) = last_event_id {
            // The policy never asks to connect with an id that cannot be a
            // header value (it closes with `UnsendableLastEventId`); were
            // one to get here, the attempt fails loudly rather than going
            // without it (the server would take the client for a new one).
            let value = HeaderValue::from_str(id).map_err(|e| ClientError::Connect(Arc::new(e)))?;
            headers.insert("last-event-id", value);
        }
        let mut redirects = 0;
        loop {
            let mut request = Request::new(Empty::new());
            *request.uri_mut() = url.clone();
            *request.headers_mut() = headers.clone();
            let response = client.request(request).await.map_err(connect_error)?;
            if !redirect::is_redirect(response.status()) {
                return Ok(Answered {
                    response,
                    problem: None,
                });
            }
            if redirects == self.max_redirects {
                return Ok(Answered {
                    response,
                    problem: Some(ClientError::TooManyRedirects {
                        limit: self.max_redirects,
                    }),
                });
            }
            let location = header_str(response.headers(), LOCATION);
            let next = location
                .and_then(|location| redirect::resolve(&url, location))
                .filter(|next| next.scheme_str().is_some_and(|s| check_scheme(s).is_ok()));
            let Some(next) = next else {
                let location = location.map(str::to_owned);
                return Ok(Answered {
                    response,
                    problem: Some(ClientError::InvalidRedirect { location }),
                });
            };
            // Another origin, or a downgrade from https to http (which is
            // always another origin; named so the rule survives any change
            // to the origin check): the credentials stay behind.
            if !redirect::same_origin(&url, &next) || redirect::is_downgrade(&url, &next) {
                redirect::strip_credentials(&mut headers);
            }
            url = next;
            redirects += 1;
        }
    }
}

/// A failed request: a refused certificate is [`ClientError::Tls`] (fatal),
/// anything else [`ClientError::Connect`] (retried).
fn connect_error(error: hyper_util::client::legacy::Error) -> ClientError {
    match tls::certificate_refusal(&error) {
        Some(kind) => ClientError::Tls {
            kind,
            source: Arc::new(error),
        },
        None => ClientError::Connect(Arc::new(error)),
    }
}

fn header_str(headers: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `now + after`, saturated: a duration too long for the clock gives a
/// deadline about 30 years away (tokio's own "far future") instead of a
/// panic.
fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// What [`deadline_after`] falls back to: 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Sleeps until `deadline`, or forever without one.
async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A per-client random seed for the jitter, from the standard library's
/// randomly keyed hasher (no extra dependency).
fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = deadline_after(Duration::MAX);
        assert!(far >= now + Duration::from_secs(86_400 * 365));
        assert!(deadline_after(Duration::from_secs(u64::MAX)) >= far);
    }
}
