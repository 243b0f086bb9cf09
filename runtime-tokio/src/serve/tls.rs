//! [`Tls`]: the server's TLS configuration (rustls with the `ring`
//! provider), loaded from PEM files and reloadable while serving.
//!
//! ALPN offers `h2` then `http/1.1`, so browsers get HTTP/2 (one
//! connection for all of a page's streams) and everything else HTTP/1.1.
//! The certificate is served through a resolver that holds the current
//! [`CertifiedKey`]: [`Tls::reload`] swaps it, so connections accepted
//! afterwards get the new certificate while established ones (and the
//! streams on them) are untouched. A reload that fails leaves the previous
//! certificate in force.
//!
//! The handshake runs inside the connection's request-head deadline (see
//! [`crate::serve`]): a client that stalls it is dropped like one that
//! never sends a request head.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// Why a certificate or key could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file holds no PEM certificate (or a malformed one).
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no PEM private key (PKCS#8, PKCS#1 or SEC1), or a
    /// malformed one.
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the key (unsupported type), the key does not match the
    /// certificate, or the configuration could not be built.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::NoCertificate { path } => {
                write!(f, "{} holds no PEM certificate", path.display())
            }
            Self::NoKey { path } => write!(f, "{} holds no PEM private key", path.display()),
            Self::Rustls(error) => write!(f, "TLS: {error}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Rustls(error) => Some(error),
            _ => None,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(error: rustls::Error) -> Self {
        Self::Rustls(error)
    }
}

/// The server's TLS configuration. Cheap to clone: clones share the
/// certificate, so [`reload`](Self::reload) on any of them affects all.
#[derive(Clone)]
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Current>,
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("alpn", &["h2", "http/1.1"])
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads a certificate chain (PEM, leaf first) and its private key
    /// (PEM) and builds a server configuration offering `h2` and
    /// `http/1.1`.
    ///
    /// # Errors
    ///
    /// [`TlsError`] naming the file: unreadable, no certificate or key in
    /// it, an unsupported key, or a key that does not match the
    /// certificate.
    pub fn from_pem_files(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (cert.into(), key.into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load(&cert_path, &key_path, &provider)?;
        let resolver = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            cert_path,
            key_path,
            provider,
            resolver,
            config: Arc::new(config),
        })
    }

    /// Reads the certificate and key files again and serves them to
    /// connections accepted from now on. On error the previous certificate
    /// stays in force.
    ///
    /// # Errors
    ///
    /// As [`from_pem_files`](Self::from_pem_files).
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load(&self.cert_path, &self.key_path, &self.provider)?;
        *self
            .resolver
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The acceptor for new connections.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }
}

/// Reads and checks a certificate chain and its key.
fn load(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert_path)?)
        .collect::<Result<_, _>>()
        .ok()
        .filter(|certs: &Vec<_>| !certs.is_empty())
        .ok_or_else(|| TlsError::NoCertificate {
            path: cert_path.to_owned(),
        })?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|_| TlsError::NoKey {
        path: key_path.to_owned(),
    })?;
    let signing_key = provider.key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match()?;
    Ok(certified)
}

/// The certificate resolver: always the current certificate.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        (c, k)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ssehub-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_handle_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Tls>();
        assert_send_sync::<crate::serve::ServeOptions>();
    }

    #[test]
    fn bad_files_are_typed_errors_naming_the_file() {
        let dir = temp_dir("bad");
        let (cert, key) = write_pair(&dir, "a");
        let (_, other_key) = write_pair(&dir, "b");
        let missing = dir.join("missing.pem");
        assert!(matches!(
            Tls::from_pem_files(&missing, &key),
            Err(TlsError::Read { path, .. }) if path == missing
        ));
        assert!(matches!(
            Tls::from_pem_files(&key, &key),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(matches!(
            Tls::from_pem_files(&cert, &cert),
            Err(TlsError::NoKey { .. })
        ));
        let mismatch = Tls::from_pem_files(&cert, &other_key).unwrap_err();
        assert!(matches!(mismatch, TlsError::Rustls(_)), "{mismatch}");
        let tls = Tls::from_pem_files(&cert, &key).unwrap();
        // A failed reload keeps the certificate in force.
        std::fs::write(&cert, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert!(format!("{tls:?}").contains("h2"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
