//! TLS for `https://` URLs: which roots the client trusts, the rustls
//! configuration it builds from the [`Builder`](super::Builder) settings,
//! and which TLS failures are fatal.
//!
//! # Invariants
//!
//! - The crypto provider is rustls's `ring`, named explicitly, so the
//!   client never depends on (or panics for the lack of) a process-wide
//!   default provider. A custom [`rustls::ClientConfig`] keeps its own.
//! - ALPN always follows [`HttpVersion`]: `h2` and `http/1.1` for
//!   [`HttpVersion::Auto`], one of them otherwise; a custom configuration's
//!   own ALPN list is replaced (on a copy).
//! - A certificate the client refuses (unknown issuer, wrong host,
//!   expired, not yet valid, revoked, malformed) is fatal: retrying cannot
//!   fix it, so the stream closes at once
//!   ([`ClientError::Tls`](super::ClientError::Tls)). Every other TLS
//!   failure (reset mid-handshake, alert) is retried like any connect
//!   error.

use super::builder::HttpVersion;
use super::error::BuildError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use std::fmt;
use std::sync::Arc;

/// The certificate authorities an `https://` stream trusts, besides those
/// added with [`Builder::add_root_certificate`](super::Builder::add_root_certificate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootCertificates {
    /// Mozilla's root program, compiled in (`webpki-roots`): the same on
    /// every machine, updated with the crate.
    #[default]
    Webpki,
    /// The platform's trust store (`rustls-native-certs`: on Linux the
    /// system bundle, honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`), loaded
    /// when the stream is built.
    Native,
    /// None: only the certificates added to the builder.
    Empty,
}

/// Why a server's certificate was refused (see
/// [`ClientError::Tls`](super::ClientError::Tls)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// Not issued by a trusted authority (self-signed, or an unknown CA).
    UnknownIssuer,
    /// Valid, but for another host name.
    WrongHost,
    /// Expired.
    Expired,
    /// Not valid yet.
    NotYetValid,
    /// Revoked, malformed, badly signed, or otherwise unusable.
    Invalid,
}

impl fmt::Display for TlsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownIssuer => "not issued by a trusted authority",
            Self::WrongHost => "not valid for this host name",
            Self::Expired => "expired",
            Self::NotYetValid => "not valid yet",
            Self::Invalid => "invalid",
        })
    }
}

/// The TLS settings a [`Builder`](super::Builder) collects.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    pub(crate) roots: RootCertificates,
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
    /// A PEM given to the builder that did not parse (reported by `build`).
    pub(crate) pem_error: Option<String>,
    pub(crate) config: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("roots", &self.roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("custom_config", &self.config.is_some())
            .finish()
    }
}

impl TlsSettings {
    /// Adds every certificate of a PEM bundle; a bundle with none, or one
    /// that does not parse, is remembered as an error for `build`.
    pub(crate) fn add_pem(&mut self, pem: &[u8]) {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            match cert {
                Ok(cert) => {
                    self.extra_roots.push(cert);
                    added += 1;
                }
                Err(error) => {
                    self.pem_error = Some(format!("root certificate PEM: {error}"));
                    return;
                }
            }
        }
        if added == 0 {
            self.pem_error = Some("root certificate PEM: no CERTIFICATE block".to_owned());
        }
    }

    /// The rustls configuration for these settings, with the ALPN list for
    /// `version`.
    ///
    /// # Errors
    ///
    /// [`BuildError::Tls`] for a PEM that did not parse, a root certificate
    /// rustls refuses, an empty platform store, or a provider without a
    /// safe protocol version.
    pub(crate) fn client_config(
        &self,
        version: HttpVersion,
    ) -> Result<Arc<ClientConfig>, BuildError> {
        if let Some(error) = &self.pem_error {
            return Err(BuildError::Tls(error.clone()));
        }
        let mut config = match &self.config {
            Some(config) => ClientConfig::clone(config),
            None => self.default_config()?,
        };
        config.alpn_protocols = match version {
            HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
            HttpVersion::Http2 => vec![b"h2".to_vec()],
            HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        Ok(Arc::new(config))
    }

    fn default_config(&self) -> Result<ClientConfig, BuildError> {
        let mut roots = RootCertStore::empty();
        match self.roots {
            RootCertificates::Webpki => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            RootCertificates::Native => {
                let loaded = rustls_native_certs::load_native_certs();
                let (added, _unparsable) = roots.add_parsable_certificates(loaded.certs);
                if added == 0 {
                    let why = loaded
                        .errors
                        .first()
                        .map_or_else(|| "no certificate found".to_owned(), ToString::to_string);
                    return Err(BuildError::Tls(format!(
                        "the platform's trust store has no usable root: {why}"
                    )));
                }
            }
            RootCertificates::Empty => {}
        }
        for cert in &self.extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| BuildError::Tls(format!("root certificate refused: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// The certificate refusal somewhere in `error`'s chain, if any.
///
/// `io::Error` hides the error it wraps from `source()` (it skips to that
/// error's own source), so each `io::Error` on the way is opened with
/// `get_ref`.
pub(crate) fn certificate_refusal(
    error: &(dyn std::error::Error + 'static),
) -> Option<TlsErrorKind> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(rustls::Error::InvalidCertificate(cert)) = error.downcast_ref::<rustls::Error>()
        {
            return Some(kind_of(cert));
        }
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(kind) = certificate_refusal(inner) {
                return Some(kind);
            }
        }
        next = error.source();
    }
    None
}

fn kind_of(error: &CertificateError) -> TlsErrorKind {
    match error {
        CertificateError::UnknownIssuer => TlsErrorKind::UnknownIssuer,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsErrorKind::WrongHost
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            TlsErrorKind::Expired
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsErrorKind::NotYetValid
        }
        _ => TlsErrorKind::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_found_through_io_errors() {
        let rustls_error = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        let wrapped = std::io::Error::other(io);
        assert_eq!(
            certificate_refusal(&wrapped),
            Some(TlsErrorKind::UnknownIssuer)
        );
        let other = std::io::Error::other(rustls::Error::HandshakeNotComplete);
        assert_eq!(certificate_refusal(&other), None);
        assert_eq!(kind_of(&CertificateError::Expired), TlsErrorKind::Expired);
        assert_eq!(
            kind_of(&CertificateError::NotValidForName),
            TlsErrorKind::WrongHost
        );
        assert_eq!(
            kind_of(&CertificateError::BadSignature),
            TlsErrorKind::Invalid
        );
    }

    #[test]
    fn alpn_follows_the_http_version() {
        let settings = TlsSettings::default();
        let alpn = |v| settings.client_config(v).unwrap().alpn_protocols.clone();
        assert_eq!(
            alpn(HttpVersion::Auto),
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(alpn(HttpVersion::Http1), [b"http/1.1".to_vec()]);
        assert_eq!(alpn(HttpVersion::Http2), [b"h2".to_vec()]);
    }

    #[test]
    fn bad_pem_is_a_build_error() {
        let mut settings = TlsSettings::default();
        settings.add_pem(b"not a certificate");
        assert!(matches!(
            settings.client_config(HttpVersion::Auto),
            Err(BuildError::Tls(_))
        ));
    }
}
