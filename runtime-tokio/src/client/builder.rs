//! [`Builder`]: the client's settings.

use super::error::BuildError;
use super::tls::{RootCertificates, TlsSettings};
use super::EventSource;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use http::Uri;
use rustls::pki_types::CertificateDer;
use ssehub_core::codec::decode::{DEFAULT_MAX_EVENT_LEN, DEFAULT_MAX_LINE_LEN};
use ssehub_core::reconnect::{is_sendable_last_event_id, ReconnectConfig};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The default [`Builder::connect_timeout`]: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`Builder::read_timeout`]: 45 s, three times the `ssehub`
/// server's default 15 s heartbeat interval.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(45);

/// The default [`Builder::max_redirects`]: 10.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// Which HTTP version the client speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/1.1 over cleartext; over TLS, whichever of HTTP/2 and HTTP/1.1
    /// the server picks by ALPN (HTTP/2 where it offers it), as browsers do.
    #[default]
    Auto,
    /// HTTP/1.1 only (over TLS, ALPN offers only `http/1.1`).
    Http1,
    /// HTTP/2 only: with prior knowledge (`h2c`) over cleartext, where the
    /// server must speak HTTP/2 on this port without negotiation, as the
    /// `ssehub` server does; over TLS, ALPN offers only `h2`.
    Http2,
}

/// The settings of an [`EventSource`], validated by [`Builder::build`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ssehub_tokio::client::EventSource;
///
/// let events = EventSource::builder("http://127.0.0.1:8080/events?topic=news")
///     .bearer_auth("secret")
///     .last_event_id("1700000000-41")
///     .base_delay(Duration::from_millis(500))
///     .max_delay(Duration::from_secs(30))
///     .max_attempts(20)
///     .fatal_event("fatal")
///     .max_line_len(64 * 1024)
///     .read_timeout(Some(Duration::from_secs(45)))
///     .build()?;
/// # drop(events);
/// # Ok::<(), ssehub_tokio::client::BuildError>(())
/// ```
#[derive(Clone)]
pub struct Builder {
    url: String,
    pub(crate) headers: HeaderMap,
    header_error: Option<String>,
    pub(crate) reconnect: ReconnectConfig,
    pub(crate) last_event_id: Option<String>,
    pub(crate) max_line_len: usize,
    pub(crate) max_event_len: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) max_redirects: u32,
    pub(crate) version: HttpVersion,
    pub(crate) seed: Option<u64>,
    pub(crate) tls: TlsSettings,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values marked sensitive (credentials) print as `Sensitive`.
        f.debug_struct("Builder")
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("reconnect", &self.reconnect)
            .field("last_event_id", &self.last_event_id)
            .field("max_line_len", &self.max_line_len)
            .field("max_event_len", &self.max_event_len)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_redirects", &self.max_redirects)
            .field("version", &self.version)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: HeaderMap::new(),
            header_error: None,
            reconnect: ReconnectConfig::new(),
            last_event_id: None,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            max_event_len: DEFAULT_MAX_EVENT_LEN,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            version: HttpVersion::Auto,
            seed: None,
            tls: TlsSettings::default(),
        }
    }

    /// Adds a request header, sent on every connection (reconnects and
    /// redirects to the same origin included). An invalid name or value is
    /// reported by [`build`](Self::build).
    ///
    /// `Authorization`, `Proxy-Authorization` and `Cookie` are not sent to
    /// a redirect target of another origin.
    #[must_use]
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: fmt::Display,
        V: TryInto<HeaderValue>,
        V::Error: fmt::Display,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(mut value)) => {
                if name == AUTHORIZATION {
                    value.set_sensitive(true);
                }
                self.headers.append(name, value);
            }
            (Err(e), _) => self.header_error = Some(format!("name: {e}")),
            (_, Err(e)) => self.header_error = Some(format!("value: {e}")),
        }
        self
    }

    /// Sends `Authorization: Bearer <token>` (as the `ssehub` server's
    /// auth hook expects).
    #[must_use]
    pub fn bearer_auth(self, token: impl fmt::Display) -> Self {
        self.header(AUTHORIZATION, format!("Bearer {token}"))
    }

    /// Starts from this event id: the first request already sends it as
    /// `Last-Event-ID`, so the server replays what came after it (for
    /// example an id persisted by an earlier run). Empty means none.
    #[must_use]
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.last_event_id = (!id.is_empty()).then_some(id);
        self
    }

    /// Replaces the whole reconnect policy configuration (the knobs below
    /// each set one of its fields).
    #[must_use]
    pub fn reconnect_config(mut self, config: ReconnectConfig) -> Self {
        self.reconnect = config;
        self
    }

    /// The base of the exponential backoff until the server sends `retry:`
    /// (default 3 s). See [`ReconnectConfig::with_base_delay`].
    #[must_use]
    pub fn base_delay(mut self, base: Duration) -> Self {
        self.reconnect = self.reconnect.with_base_delay(base);
        self
    }

    /// The cap on the jittered backoff (default 60 s; a `Retry-After` can
    /// exceed it). See [`ReconnectConfig::with_max_delay`].
    #[must_use]
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.reconnect = self.reconnect.with_max_delay(max);
        self
    }

    /// Gives up after this many consecutive failed attempts (unlimited by
    /// default; `0` never reconnects). See
    /// [`ReconnectConfig::with_max_attempts`].
    #[must_use]
    pub fn max_attempts(mut self, max: u32) -> Self {
        self.reconnect = self.reconnect.with_max_attempts(max);
        self
    }

    /// A connection that stays open this long is healthy and resets the
    /// backoff (default 5 s; `None`: time alone never does). See
    /// [`ReconnectConfig::with_healthy_after`].
    #[must_use]
    pub fn healthy_after(mut self, after: Option<Duration>) -> Self {
        self.reconnect = self.reconnect.with_healthy_after(after);
        self
    }

    /// A connection that delivers this many events is healthy and resets
    /// the backoff (default 2: more than a greeting; `None`: events alone
    /// never do). See [`ReconnectConfig::with_healthy_events`].
    #[must_use]
    pub fn healthy_events(mut self, events: Option<u32>) -> Self {
        self.reconnect = self.reconnect.with_healthy_events(events);
        self
    }

    /// The event name with which the server announces a fatal disconnect:
    /// the event is delivered, then the stream closes with `fatal: true`.
    #[must_use]
    pub fn fatal_event(mut self, name: impl Into<String>) -> Self {
        self.reconnect = self.reconnect.with_fatal_event(name);
        self
    }

    /// The longest line accepted, in bytes (default 1 MiB). A longer line
    /// drops the connection with [`ClientError::Decode`](super::ClientError::Decode)
    /// before it is buffered, then the policy reconnects.
    #[must_use]
    pub fn max_line_len(mut self, limit: usize) -> Self {
        self.max_line_len = limit;
        self
    }

    /// The largest event data accepted, in bytes (default 4 MiB); as for
    /// [`max_line_len`](Self::max_line_len).
    #[must_use]
    pub fn max_event_len(mut self, limit: usize) -> Self {
        self.max_event_len = limit;
        self
    }

    /// The time allowed to get the response headers of one attempt, TCP
    /// connect and redirects included (default 10 s). Past it the attempt
    /// fails with [`ClientError::ConnectTimeout`](super::ClientError::ConnectTimeout)
    /// and is retried.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The liveness timeout: an open stream that sends no bytes at all
    /// (heartbeats included) for this long is dropped and reconnected
    /// ([`ClientError::Liveness`](super::ClientError::Liveness)), because a
    /// half-open TCP connection never errors by itself. Default 45 s;
    /// `None` waits forever.
    #[must_use]
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Sets the [`read_timeout`](Self::read_timeout) to `missed` times the
    /// server's heartbeat interval (`missed` is at least 1).
    #[must_use]
    pub fn heartbeat(self, interval: Duration, missed: u32) -> Self {
        self.read_timeout(Some(interval.saturating_mul(missed.max(1))))
    }

    /// The most redirects (301, 302, 303, 307, 308) followed within one
    /// connection attempt (default 10). They are not reconnection attempts;
    /// reconnects start again from the URL given to the builder.
    #[must_use]
    pub fn max_redirects(mut self, limit: u32) -> Self {
        self.max_redirects = limit;
        self
    }

    /// The HTTP version to speak (default [`HttpVersion::Auto`]: HTTP/1.1
    /// over cleartext, negotiated by ALPN over TLS).
    #[must_use]
    pub fn http_version(mut self, version: HttpVersion) -> Self {
        self.version = version;
        self
    }

    /// Which authorities `https://` streams trust (default
    /// [`RootCertificates::Webpki`]; [`RootCertificates::Native`] for the
    /// platform's store). Ignored with [`tls_config`](Self::tls_config).
    #[must_use]
    pub fn root_certificates(mut self, roots: RootCertificates) -> Self {
        self.tls.roots = roots;
        self
    }

    /// Trusts this certificate authority too (DER), for example a private
    /// CA. Ignored with [`tls_config`](Self::tls_config); a certificate
    /// rustls refuses is reported by [`build`](Self::build).
    #[must_use]
    pub fn add_root_certificate(mut self, der: impl Into<CertificateDer<'static>>) -> Self {
        self.tls.extra_roots.push(der.into());
        self
    }

    /// Trusts every certificate of a PEM bundle too (the contents of a
    /// `ca.pem` file). A bundle without a `CERTIFICATE` block, or that does
    /// not parse, is reported by [`build`](Self::build). Ignored with
    /// [`tls_config`](Self::tls_config).
    #[must_use]
    pub fn add_root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls.add_pem(pem.as_ref());
        self
    }

    /// Uses this rustls configuration for `https://` streams (client
    /// certificates, a custom verifier, another crypto provider, …),
    /// instead of the one built from [`root_certificates`](Self::root_certificates)
    /// and [`add_root_certificate`](Self::add_root_certificate). Its ALPN
    /// list is replaced, on a copy, by the one
    /// [`http_version`](Self::http_version) calls for.
    #[must_use]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self
    }

    /// Seeds the backoff jitter (default: a random seed per client, so
    /// clients do not reconnect in step). For reproducible tests.
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the settings and makes the [`EventSource`]. Nothing connects
    /// until the stream is first polled (inside a tokio runtime).
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidUrl`] for a URL that is not absolute,
    /// [`BuildError::UnsupportedScheme`] for a scheme other than `http` and
    /// `https`, [`BuildError::Tls`] for TLS settings that cannot be used
    /// (a PEM that does not parse, an empty platform trust store),
    /// [`BuildError::InvalidHeader`] for a header given to
    /// [`header`](Self::header) that is not valid HTTP, or a
    /// [`last_event_id`](Self::last_event_id) that cannot be a header value
    /// (a control character other than tab).
    pub fn build(self) -> Result<EventSource, BuildError> {
        if let Some(what) = &self.header_error {
            return Err(BuildError::InvalidHeader(what.clone()));
        }
        if let Some(id) = &self.last_event_id {
            if !is_sendable_last_event_id(id) {
                return Err(BuildError::InvalidHeader(format!(
                    "Last-Event-ID {id:?}: control characters cannot be sent"
                )));
            }
        }
        let url = parse_url(&self.url)?;
        let tls = self.tls.client_config(self.version)?;
        Ok(EventSource::from_builder(url, self, tls))
    }
}

/// Parses and checks the stream's URL.
pub(crate) fn parse_url(url: &str) -> Result<Uri, BuildError> {
    let invalid = |reason: &str| BuildError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| invalid("not an absolute URL (no scheme)"))?;
    check_scheme(scheme)?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(uri)
}

/// The schemes this client speaks.
pub(crate) fn check_scheme(scheme: &str) -> Result<(), BuildError> {
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Ok(())
    } else {
        Err(BuildError::UnsupportedScheme(scheme.to_owned()))
    }
}
