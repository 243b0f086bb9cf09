//! TLS for the tests: self-signed certificates made at test time (rcgen;
//! nothing that expires is checked in), a server configuration using
//! them, and a client connection (tokio-rustls) trusting them with a
//! chosen ALPN list.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use ssehub_tokio::serve::tls::Tls;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as
/// PEM files.
pub struct TestCert {
    pub der: CertificateDer<'static>,
    /// base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub spki_sha256: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestCert {
    /// Makes a certificate and writes `{name}.crt` / `{name}.key` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, made.cert.pem()).unwrap();
        std::fs::write(&key_path, made.signing_key.serialize_pem()).unwrap();
        let spki = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&made.signing_key),
        );
        Self {
            der: made.cert.der().clone(),
            spki_sha256: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                spki.as_ref(),
            ),
            cert_path,
            key_path,
        }
    }

    /// Makes the certificate of `other` the one in this one's files.
    pub fn overwrite_with(&self, other: &TestCert) {
        std::fs::copy(&other.cert_path, &self.cert_path).unwrap();
        std::fs::copy(&other.key_path, &self.key_path).unwrap();
    }

    /// The server configuration serving this certificate.
    pub fn server(&self) -> Tls {
        Tls::from_pem_files(&self.cert_path, &self.key_path).unwrap()
    }
}

/// A fresh directory under the system's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ssehub-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client configuration trusting `roots` and offering `alpn`.
pub fn client_config(roots: &[&CertificateDer<'static>], alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` as `localhost`.
pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// The ALPN protocol and the certificate the server presented.
pub fn negotiated(stream: &TlsStream<TcpStream>) -> (Option<Vec<u8>>, CertificateDer<'static>) {
    let (_, session) = stream.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let cert = session.peer_certificates().unwrap()[0].clone();
    (alpn, cert)
}

pub type Sender<B> = hyper::client::conn::http1::SendRequest<B>;
pub type Sender2<B> = hyper::client::conn::http2::SendRequest<B>;

/// HTTP/1.1 over `stream` (the connection is driven by a task).
pub async fn http1(stream: TlsStream<TcpStream>) -> Sender<http_body_util::Full<Bytes>> {
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// HTTP/2 over `stream` (the connection is driven by a task).
pub async fn http2(stream: TlsStream<TcpStream>) -> Sender2<http_body_util::Full<Bytes>> {
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// `GET path` (or `POST` with `body`) request with `Host: localhost`.
pub fn request(method: &str, path: &str, body: &str) -> http::Request<http_body_util::Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .header("authorization", format!("Bearer {}", super::TOKEN))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// Reads `body` until what was read contains `needle`; returns all of it.
pub async fn read_until(body: &mut Incoming, needle: &str) -> String {
    let mut seen = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(needle) {
            let frame = body.frame().await.expect("body ended").unwrap();
            if let Ok(data) = frame.into_data() {
                seen.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{needle:?} not received; got {seen:?}");
    seen
}
