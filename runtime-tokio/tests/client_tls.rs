//! The client over TLS, against servers made in the test with certificates
//! made in the test (`rcgen`; nothing checked in, nothing that expires):
//! the hub's SSE endpoint behind tokio-rustls, over HTTP/1.1 and HTTP/2
//! (ALPN), reconnecting with `Last-Event-ID`; redirects between http and
//! https; and the certificate refusals that must be fatal, not retried.
//!
//! Real time (TLS handshakes are real work); every wait is on an event,
//! bounded by a generous guard.

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use ssehub_core::codec::Event;
use ssehub_core::{ClientId, CloseReason as HubCloseReason, Hub, HubConfig};
use ssehub_tokio::client::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ssehub_tokio::client::{
    rustls, ClientError, ClientEvent, CloseReason, EventSource, HttpVersion, MessageEvent, State,
    TlsErrorKind,
};
use ssehub_tokio::endpoint::ConnInfo;
use ssehub_tokio::respond::{full, BoxBody};
use ssehub_tokio::{Driver, SseEndpoint, SseSettings};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

// ---- Certificates ----------------------------------------------------------

/// A test CA and the certificates it issues.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate chain and its key.
struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { ca }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A leaf for `names`, valid from `not_before` to `not_after` (years).
    fn issue_for(&self, names: &[&str], not_before: i32, not_after: i32) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "ssehub test server");
        params.not_before = rcgen::date_time_ymd(not_before, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        ServerCert {
            chain: vec![cert.der().clone(), self.ca.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }

    /// A valid leaf for `localhost`.
    fn issue(&self) -> ServerCert {
        self.issue_for(&["localhost"], 2020, 4000)
    }
}

fn server_config(cert: ServerCert, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain, cert.key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1_ONLY: &[&[u8]] = &[b"http/1.1"];

// ---- Servers ---------------------------------------------------------------

/// What a test server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    version: Version,
    headers: http::HeaderMap,
}

/// A server on loopback, cleartext or TLS, answering with `handler`.
struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted (TLS or not, handshake done or not).
    accepted: Arc<Mutex<usize>>,
    seen_tx: tokio::sync::watch::Sender<usize>,
}

impl TestServer {
    async fn start<H, Fut>(tls: Option<Arc<rustls::ServerConfig>>, handler: H) -> Self
    where
        H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let (seen_tx, _) = tokio::sync::watch::channel(0);
        let handler = Arc::new(handler);
        let (seen2, accepted2, seen_tx2) =
            (Arc::clone(&seen), Arc::clone(&accepted), seen_tx.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                *accepted2.lock().unwrap() += 1;
                let (handler, seen, seen_tx) =
                    (Arc::clone(&handler), Arc::clone(&seen2), seen_tx2.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        seen.lock().unwrap().push(Seen {
                            version: request.version(),
                            headers: request.headers().clone(),
                        });
                        seen_tx.send_modify(|n| *n += 1);
                        let response = handler(request);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(config) => {
                            // A refused handshake just ends the connection.
                            let Ok(stream) = TlsAcceptor::from(config).accept(tcp).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            seen,
            accepted,
            seen_tx,
        }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        format!("{scheme}://{host}:{}{path}", self.addr.port())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }

    /// Waits until the server has seen `n` requests.
    async fn wait_requests(&self, n: usize) {
        let mut rx = self.seen_tx.subscribe();
        bounded(rx.wait_for(|seen| *seen >= n)).await.unwrap();
    }
}

/// A hub behind a TLS server offering `alpn`; streams open with a short
/// `retry:` so reconnects are quick.
struct TlsHub {
    hub: Hub,
    driver: Driver,
    server: TestServer,
    /// The id of every client the endpoint opened, in order.
    clients: Arc<Mutex<Vec<ClientId>>>,
}

async fn tls_hub(pki: &Pki, alpn: &[&[u8]]) -> TlsHub {
    let hub = Hub::new(HubConfig::default(), ssehub_tokio::now());
    let driver = Driver::spawn(hub.clone(), Duration::from_millis(100));
    let endpoint = SseEndpoint::new(hub.clone()).with_settings(SseSettings {
        retry: Some(Duration::from_millis(20)),
        ..SseSettings::default()
    });
    let clients = Arc::new(Mutex::new(Vec::new()));
    let opened = Arc::clone(&clients);
    let server = TestServer::start(Some(server_config(pki.issue(), alpn)), move |request| {
        let response = endpoint.handle(&request.into_parts().0, &ConnInfo::default());
        if let Some(id) = response
            .headers()
            .get("client-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            opened.lock().unwrap().push(id);
        }
        async move { response }
    })
    .await;
    TlsHub {
        hub,
        driver,
        server,
        clients,
    }
}

// ---- Client helpers --------------------------------------------------------

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the test is stuck")
}

async fn next(events: &mut EventSource) -> ClientEvent {
    bounded(events.next())
        .await
        .expect("the stream ended early")
}

/// The next message, skipping state changes (errors fail the test).
async fn next_message(events: &mut EventSource) -> MessageEvent {
    loop {
        match next(events).await {
            ClientEvent::Message(message) => return message,
            ClientEvent::State(State::Closed(info)) => panic!("closed: {info:?}"),
            ClientEvent::State(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads up to and including the hub's welcome, then publishes `data` to
/// `topic` and returns the message that arrives.
async fn receive_published(
    events: &mut EventSource,
    hub: &Hub,
    topic: &str,
    data: &str,
) -> MessageEvent {
    assert_eq!(next_message(events).await.event, "welcome");
    let report = hub.publish(topic, &Event::new(data)).unwrap();
    let message = next_message(events).await;
    assert_eq!(message.data, data);
    assert_eq!(message.last_event_id, report.id.to_string());
    message
}

/// Expects the typed TLS error, then a fatal close, then the end.
async fn expect_refused(events: &mut EventSource, kind: TlsErrorKind) {
    assert_eq!(next(events).await.state(), Some(State::Connecting));
    match next(events).await {
        ClientEvent::Error(ClientError::Tls { kind: got, source }) => {
            assert_eq!(got, kind, "{source}");
            assert!(
                ClientError::Tls { kind, source }.is_fatal(),
                "a refused certificate is fatal"
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    match next(events).await {
        ClientEvent::State(State::Closed(info)) => {
            assert_eq!(info.reason, CloseReason::FatalConnectError);
            assert!(info.fatal && !info.is_local);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(bounded(events.next()).await.is_none(), "no retry loop");
}

trait StateOf {
    fn state(self) -> Option<State>;
}

impl StateOf for ClientEvent {
    fn state(self) -> Option<State> {
        match self {
            ClientEvent::State(state) => Some(state),
            _ => None,
        }
    }
}

fn client(url: &str, pki: &Pki) -> ssehub_tokio::client::Builder {
    EventSource::builder(url)
        .add_root_certificates_pem(pki.ca_pem())
        .base_delay(Duration::from_millis(20))
        .jitter_seed(3)
}

// ---- Streams over TLS --------------------------------------------------------

#[tokio::test]
async fn https_over_http1_when_the_server_offers_only_http1() {
    let pki = Pki::new("ssehub test CA");
    let TlsHub {
        hub,
        driver,
        server,
        ..
    } = tls_hub(&pki, H1_ONLY).await;
    let mut events = client(&server.url("https", "/events?topic=t"), &pki)
        .build()
        .unwrap();
    receive_published(&mut events, &hub, "t", "over h1").await;
    assert_eq!(server.seen()[0].version, Version::HTTP_11);
    events.close();
    driver.stop().await;
}

#[tokio::test]
async fn alpn_negotiates_http2_where_the_server_offers_it() {
    let pki = Pki::new("ssehub test CA");
    let TlsHub {
        hub,
        driver,
        server,
        ..
    } = tls_hub(&pki, H2_AND_H1).await;
    // The default (Auto) and an explicit HTTP/2 both end up on HTTP/2.
    for version in [HttpVersion::Auto, HttpVersion::Http2] {
        let mut events = client(&server.url("https", "/events?topic=t"), &pki)
            .http_version(version)
            .build()
            .unwrap();
        receive_published(&mut events, &hub, "t", "over h2").await;
        events.close();
        assert!(bounded(events.next()).await.is_some(), "Closed");
    }
    let versions: Vec<Version> = server.seen().iter().map(|s| s.version).collect();
    assert_eq!(versions, [Version::HTTP_2, Version::HTTP_2]);
    // HTTP/1.1 asked for: ALPN offers only http/1.1.
    let mut events = client(&server.url("https", "/events?topic=t"), &pki)
        .http_version(HttpVersion::Http1)
        .build()
        .unwrap();
    receive_published(&mut events, &hub, "t", "over h1").await;
    assert_eq!(server.seen()[2].version, Version::HTTP_11);
    driver.stop().await;
}

#[tokio::test]
async fn reconnects_over_https_with_the_last_event_id() {
    for alpn in [H1_ONLY, H2_AND_H1] {
        let pki = Pki::new("ssehub test CA");
        let TlsHub {
            hub,
            driver,
            server,
            clients,
        } = tls_hub(&pki, alpn).await;
        let mut events = client(&server.url("https", "/events?topic=r"), &pki)
            .build()
            .unwrap();
        let first = receive_published(&mut events, &hub, "r", "one").await;
        // The hub drops the client, then publishes what it will miss.
        let id = clients.lock().unwrap()[0];
        let _ = hub.close(id, HubCloseReason::Kicked);
        let missed = hub.publish("r", &Event::new("two")).unwrap();
        // (The stream is lazy: reading it drives the reconnect.)
        assert_eq!(next_message(&mut events).await.event, "welcome");
        let replayed = next_message(&mut events).await;
        assert_eq!(
            (replayed.data.as_str(), replayed.last_event_id),
            ("two", missed.id.to_string())
        );
        server.wait_requests(2).await;
        let second = &server.seen()[1];
        assert_eq!(
            second.headers.get("last-event-id").unwrap(),
            first.last_event_id.as_str(),
            "the reconnect over https resumes"
        );
        events.close();
        driver.stop().await;
    }
}

// ---- Refused certificates are fatal ---------------------------------------

#[tokio::test]
async fn an_untrusted_certificate_is_fatal() {
    let pki = Pki::new("ssehub test CA");
    let TlsHub { driver, server, .. } = tls_hub(&pki, H2_AND_H1).await;
    let stranger = Pki::new("someone else's CA");
    // Trusting another CA (and not the webpki roots either).
    let mut events = client(&server.url("https", "/events?topic=t"), &stranger)
        .build()
        .unwrap();
    expect_refused(&mut events, TlsErrorKind::UnknownIssuer).await;
    assert_eq!(server.accepted(), 1, "one attempt, no retry loop");
    driver.stop().await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_fatal() {
    let pki = Pki::new("ssehub test CA");
    let cert = pki.issue_for(&["other.example"], 2020, 4000);
    let server = TestServer::start(Some(server_config(cert, H2_AND_H1)), |_| async {
        Response::new(full("unreachable"))
    })
    .await;
    let mut events = client(&server.url("https", "/events"), &pki)
        .build()
        .unwrap();
    expect_refused(&mut events, TlsErrorKind::WrongHost).await;
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn an_expired_certificate_is_fatal() {
    let pki = Pki::new("ssehub test CA");
    let cert = pki.issue_for(&["localhost"], 2019, 2021);
    let server = TestServer::start(Some(server_config(cert, H2_AND_H1)), |_| async {
        Response::new(full("unreachable"))
    })
    .await;
    let mut events = client(&server.url("https", "/events"), &pki)
        .build()
        .unwrap();
    expect_refused(&mut events, TlsErrorKind::Expired).await;
    assert_eq!(server.accepted(), 1);
}

// ---- Redirects between http and https ---------------------------------------

fn redirect_to(location: String) -> Response<BoxBody> {
    Response::builder()
        .status(307)
        .header("location", location)
        .body(full(""))
        .unwrap()
}

/// http → https: followed, credentials and all stay on the same host...
/// but another origin, so they are dropped; the stream opens over TLS.
#[tokio::test]
async fn a_redirect_from_http_to_https_is_followed() {
    let pki = Pki::new("ssehub test CA");
    let TlsHub {
        hub,
        driver,
        server: tls,
        ..
    } = tls_hub(&pki, H2_AND_H1).await;
    let target = tls.url("https", "/events?topic=up");
    let plain = TestServer::start(None, move |_| {
        let target = target.clone();
        async move { redirect_to(target) }
    })
    .await;
    let mut events = client(&plain.url("http", "/events"), &pki)
        .bearer_auth("secret")
        .build()
        .unwrap();
    receive_published(&mut events, &hub, "up", "upgraded").await;
    assert!(plain.seen()[0].headers.contains_key("authorization"));
    assert!(
        !tls.seen()[0].headers.contains_key("authorization"),
        "another origin: no credentials"
    );
    events.close();
    driver.stop().await;
}

/// https → http (a downgrade): followed, but the credentials stay behind.
#[tokio::test]
async fn credentials_never_follow_a_downgrade_to_http() {
    let pki = Pki::new("ssehub test CA");
    let plain = TestServer::start(None, |_| async {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(full("data: in the clear\n\n"))
            .unwrap()
    })
    .await;
    let target = plain.url("http", "/events");
    let tls = TestServer::start(Some(server_config(pki.issue(), H2_AND_H1)), move |_| {
        let target = target.clone();
        async move { redirect_to(target) }
    })
    .await;
    let mut events = client(&tls.url("https", "/events"), &pki)
        .bearer_auth("secret")
        .header("cookie", "session=1")
        .max_attempts(0)
        .build()
        .unwrap();
    assert_eq!(next_message(&mut events).await.data, "in the clear");
    let sent = &tls.seen()[0].headers;
    assert!(sent.contains_key("authorization") && sent.contains_key("cookie"));
    let downgraded = &plain.seen()[0].headers;
    assert!(!downgraded.contains_key("authorization"), "{downgraded:?}");
    assert!(!downgraded.contains_key("cookie"), "{downgraded:?}");
}
