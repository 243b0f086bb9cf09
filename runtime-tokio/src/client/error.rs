//! The client's error types: [`BuildError`] (a builder setting is invalid)
//! and [`ClientError`] (why a connection failed; reported in the stream).

use super::tls::TlsErrorKind;
use ssehub_core::codec::DecodeError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A shareable error source (keeps [`ClientError`] `Clone`).
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`Builder::build`](super::Builder::build) refused its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The URL does not parse as an absolute `http://` URL.
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL's scheme is neither `http` nor `https`.
    UnsupportedScheme(String),
    /// A header name or value given to
    /// [`Builder::header`](super::Builder::header) is invalid.
    InvalidHeader(String),
    /// The TLS settings cannot be used: a root certificate PEM that does
    /// not parse or that rustls refuses, a platform trust store without a
    /// usable root.
    Tls(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Self::UnsupportedScheme(scheme) => write!(
                f,
                "unsupported URL scheme {scheme:?} (this client speaks http and https)"
            ),
            Self::InvalidHeader(what) => write!(f, "invalid header: {what}"),
            Self::Tls(what) => write!(f, "unusable TLS settings: {what}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Why a connection attempt or an open stream failed.
///
/// Yielded as [`ClientEvent::Error`](super::ClientEvent::Error) just before
/// the state change it causes (`Reconnecting`, or `Closed` when the policy
/// gives up). Statuses the server means as final (204, 401, 404, a wrong
/// content type, the fatal event) are not errors: the `Closed` state's
/// [`CloseInfo`](ssehub_core::reconnect::CloseInfo) says it all.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection could not be made or the request not sent (refused,
    /// reset, DNS, TLS handshake failure other than a refused certificate,
    /// protocol error before the response headers).
    Connect(ErrorSource),
    /// The server's TLS certificate was refused. Fatal: retrying cannot fix
    /// it, so the stream closes (`Closed { reason: FatalConnectError,
    /// fatal: true }`) instead of reconnecting.
    Tls {
        /// Why it was refused.
        kind: TlsErrorKind,
        /// The error from rustls, with its context.
        source: ErrorSource,
    },
    /// No response headers within the configured connect timeout.
    ConnectTimeout(Duration),
    /// The server answered with a status that is retried (5xx, 408, 429).
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, if it sent a readable one: the next
        /// delay is at least this.
        retry_after: Option<Duration>,
    },
    /// Reading the open stream failed (connection reset, protocol error).
    Read(ErrorSource),
    /// The open stream sent no bytes (heartbeats included) for this long:
    /// the connection is presumed dead (a half-open TCP connection never
    /// errors by itself).
    Liveness(Duration),
    /// The stream broke the configured limits
    /// ([`Builder::max_line_len`](super::Builder::max_line_len),
    /// [`Builder::max_event_len`](super::Builder::max_event_len)). The
    /// connection is dropped at once, so memory stays bounded.
    Decode(DecodeError),
    /// More redirects than [`Builder::max_redirects`](super::Builder::max_redirects)
    /// allows; the last redirect response closes the stream (a 3xx is fatal).
    TooManyRedirects {
        /// The limit.
        limit: u32,
    },
    /// A redirect without a usable `Location` (missing, unparseable, or to a
    /// scheme this client cannot speak); it closes the stream.
    InvalidRedirect {
        /// The `Location` value, if there was one.
        location: Option<String>,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(source) => {
                f.write_str("connection failed: ")?;
                write_chain(f, &**source)
            }
            Self::Tls { kind, source } => {
                write!(f, "the server's TLS certificate is {kind}: ")?;
                write_chain(f, &**source)
            }
            Self::ConnectTimeout(after) => {
                write!(f, "no response headers within {after:?}")
            }
            Self::Status {
                status,
                retry_after,
            } => {
                write!(f, "the server answered {status}")?;
                if let Some(after) = retry_after {
                    write!(f, " (Retry-After {after:?})")?;
                }
                Ok(())
            }
            Self::Read(source) => {
                f.write_str("reading the stream failed: ")?;
                write_chain(f, &**source)
            }
            Self::Liveness(after) => write!(
                f,
                "no bytes from the server for {after:?}: the connection is presumed dead"
            ),
            Self::Decode(error) => write!(f, "malformed stream: {error}"),
            Self::TooManyRedirects { limit } => {
                write!(f, "more than {limit} redirects")
            }
            Self::InvalidRedirect { location: None } => {
                f.write_str("redirect without a Location header")
            }
            Self::InvalidRedirect {
                location: Some(location),
            } => write!(f, "unusable redirect Location {location:?}"),
        }
    }
}

/// Writes an error and its sources (hyper's errors say little at the top:
/// "client error (Connect)" hides the "connection refused" below it).
fn write_chain(
    f: &mut fmt::Formatter<'_>,
    error: &(dyn std::error::Error + 'static),
) -> fmt::Result {
    write!(f, "{error}")?;
    let mut source = error.source();
    while let Some(inner) = source {
        write!(f, ": {inner}")?;
        source = inner.source();
    }
    Ok(())
}

impl ClientError {
    /// Whether this error ends the stream rather than causing a reconnect
    /// (today: a refused TLS certificate).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Tls { .. })
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(source) | Self::Read(source) | Self::Tls { source, .. } => {
                Some(&**source)
            }
            Self::Decode(error) => Some(error),
            _ => None,
        }
    }
}
