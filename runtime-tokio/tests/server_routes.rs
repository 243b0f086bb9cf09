//! The hub server's routes over loopback: auth, limits, request bodies,
//! query strings and ids that are wrong in every way a client can get
//! them wrong, metrics, health, CORS and the demo page. Every refusal is
//! JSON and leaves nothing in the hub.

mod common;

use common::{open, request, subscribe, Raw, TOKEN};
use std::net::SocketAddr;

fn error_of(body: &str) -> String {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"))
        .to_owned()
}

async fn post_json(addr: SocketAddr, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let auth = auth.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let (status, _, body) = request(addr, "POST", path, &headers, body).await;
    (status, body)
}

#[tokio::test]
async fn admin_routes_need_the_bearer_token() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (_raw, id) = subscribe(addr, "/events?topic=a", "").await;
    let publish = r#"{"topic":"a","data":"x"}"#;
    let send = format!("/clients/{id}/send");
    for path in ["/publish", send.as_str()] {
        let (status, head, body) = request(
            addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            publish,
        )
        .await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(head.header("www-authenticate"), Some("Bearer"));
        assert!(error_of(&body).contains("Bearer"));
        let (status, body) = post_json(addr, path, Some("wrong-token-123"), publish).await;
        assert_eq!(status, 403, "{path}: {body}");
        error_of(&body);
    }
    let kick = format!("/clients/{id}");
    let (status, _, _) = request(addr, "DELETE", &kick, &[], "").await;
    assert_eq!(status, 401);
    let (status, _, _) =
        request(addr, "DELETE", &kick, &[("Authorization", "Basic abc")], "").await;
    assert_eq!(status, 401);
    let (status, _, _) = request(
        addr,
        "DELETE",
        &kick,
        &[("Authorization", "Bearer nope-nope")],
        "",
    )
    .await;
    assert_eq!(status, 403);
    // Nothing was published, sent or kicked.
    assert_eq!(server.hub().metrics().events_published, 0);
    assert_eq!(server.hub().len(), 1);
}

#[tokio::test]
async fn the_subscribe_token_guards_streams_before_anything_is_reserved() {
    let mut config = common::config();
    config.subscribe_token = Some("sub-token-456".to_owned());
    let server = common::start(config).await;
    let addr = server.local_addr();
    let (mut raw, head) = open(addr, "/events?topic=a", "").await;
    assert_eq!(head.status, 401);
    assert!(error_of(&raw.body().await).contains("subscribe token"));
    let (mut raw, head) = open(addr, "/events?topic=a&access_token=bad-token-1", "").await;
    assert_eq!(head.status, 403);
    error_of(&raw.body().await);
    let (mut raw, head) = open(
        addr,
        "/events?topic=a",
        "Authorization: Bearer bad-token-2\r\n",
    )
    .await;
    assert_eq!(head.status, 403);
    error_of(&raw.body().await);
    assert_eq!(server.hub().len(), 0);
    assert_eq!(
        server
            .hub()
            .metrics()
            .closes
            .iter()
            .map(|c| c.1)
            .sum::<u64>(),
        0
    );

    let _a = subscribe(addr, "/events?topic=a&access_token=sub-token-456", "").await;
    let _b = subscribe(
        addr,
        "/events?topic=a",
        "Authorization: Bearer sub-token-456\r\n",
    )
    .await;
    assert_eq!(server.hub().subscriber_count("a"), 2);
}

#[tokio::test]
async fn connection_limits_answer_503_with_retry_after() {
    let mut config = common::config();
    config.hub.max_clients = 3;
    config.hub.max_clients_per_peer = 2;
    let server = common::start(config).await;
    let addr = server.local_addr();
    let _a = subscribe(addr, "/events?topic=a", "").await;
    let _b = subscribe(addr, "/events?topic=a", "").await;
    // Same IP (127.0.0.1) a third time: the per-peer limit.
    let (mut raw, head) = open(addr, "/events?topic=a", "").await;
    assert_eq!(head.status, 503);
    assert_eq!(head.header("retry-after"), Some("5"));
    assert!(error_of(&raw.body().await).contains("per-peer"));
    assert_eq!(server.hub().len(), 2);

    // From another loopback address the per-peer limit has room, the
    // total does not after one more.
    let other = |ip: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from((ip, 0)))
            .expect("bind another loopback address");
        let mut raw = Raw::from_stream(socket.connect(addr).await.unwrap());
        raw.send("GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        let head = raw.head().await;
        (raw, head)
    };
    let (_c, head) = other([127, 0, 0, 2]).await;
    assert_eq!(head.status, 200);
    let (mut raw, head) = other([127, 0, 0, 3]).await;
    assert_eq!(head.status, 503);
    assert!(head.header("retry-after").is_some());
    assert!(error_of(&raw.body().await).contains("client limit"));
    assert_eq!(server.hub().len(), 3);
    server.hub().check_invariants().unwrap();
}

#[tokio::test]
async fn bad_publish_bodies_get_4xx_json_errors() {
    let mut config = common::config();
    config.max_body_bytes = 1024;
    config.hub.max_event_bytes = 1024;
    let server = common::start(config).await;
    let addr = server.local_addr();
    let big = format!(r#"{{"topic":"a","data":"{}"}}"#, "x".repeat(2000));
    let cases: &[(&str, u16, &str)] = &[
        (r#"{"topic":"a","data":"#, 400, "invalid JSON"),
        ("not json", 400, "invalid JSON"),
        (
            r#"{"topic":"a","data":"x","extra":1}"#,
            422,
            "unknown field",
        ),
        (r#"{"topic":"a"}"#, 422, "missing field"),
        (r#"{"data":"x"}"#, 422, "missing field"),
        (r#"{"topic":5,"data":"x"}"#, 422, "invalid type"),
        (r#"{"topic":"","data":"x"}"#, 422, "topic"),
        (r#"{"topic":"a\u0001b","data":"x"}"#, 422, "control"),
        (
            r#"{"topic":"a","event":"two\nlines","data":"x"}"#,
            422,
            "event name",
        ),
        (big.as_str(), 413, "over 1024"),
    ];
    for (body, status, needle) in cases {
        let (got, answer) = post_json(addr, "/publish", Some(TOKEN), body).await;
        assert_eq!(got, *status, "{body}: {answer}");
        let error = error_of(&answer);
        assert!(error.contains(needle), "{body}: {error}");
    }
    // The wrong content type, or none.
    let auth = format!("Bearer {TOKEN}");
    for headers in [
        vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "text/plain"),
        ],
        vec![("Authorization", auth.as_str())],
    ] {
        let (status, _, body) = request(addr, "POST", "/publish", &headers, "{}").await;
        assert_eq!(status, 415);
        assert!(error_of(&body).contains("application/json"));
    }
    // `application/json; charset=utf-8` is JSON.
    let (status, _, _) = request(
        addr,
        "POST",
        "/publish",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        r#"{"topic":"a","data":"ok"}"#,
    )
    .await;
    assert_eq!(status, 200);
    // Oversized without a Content-Length: refused while reading.
    let mut raw = Raw::connect(addr).await;
    raw.send(&format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ))
    .await;
    for _ in 0..4 {
        raw.send(&format!("200\r\n{}\r\n", "x".repeat(512))).await;
    }
    raw.send("0\r\n\r\n").await;
    let head = raw.head().await;
    assert_eq!(head.status, 413);
    assert_eq!(server.hub().metrics().events_published, 1);
}

#[tokio::test]
async fn garbage_query_strings_and_ids_are_400_unknown_clients_404() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    for path in [
        "/events?topic=%zz",
        "/events?topic=%",
        "/events?topic=%ff",
        "/events",
        "/events?other=1",
        "/events?topic=",
        "/events?topic=a%01b",
    ] {
        let (mut raw, head) = open(addr, path, "").await;
        assert_eq!(head.status, 400, "{path}");
        error_of(&raw.body().await);
    }
    let many: String = (0..65).map(|i| format!("topic=t{i}&")).collect();
    let (mut raw, head) = open(addr, &format!("/events?{many}"), "").await;
    assert_eq!(head.status, 400);
    assert!(error_of(&raw.body().await).contains("topics"));
    assert_eq!(server.hub().len(), 0);

    let send_body = r#"{"data":"x"}"#;
    for id in ["abc", "1.0", "-1.2", "1.2.3", "01.2", "4294967296.1", "%20"] {
        let (status, body) =
            post_json(addr, &format!("/clients/{id}/send"), Some(TOKEN), send_body).await;
        assert_eq!(status, 400, "{id}: {body}");
        assert!(error_of(&body).contains("client id"));
        let auth = format!("Bearer {TOKEN}");
        let (status, _, _) = request(
            addr,
            "DELETE",
            &format!("/clients/{id}"),
            &[("Authorization", &auth)],
            "",
        )
        .await;
        assert_eq!(status, 400, "{id}");
    }
    let (status, body) = post_json(addr, "/clients/7.9999/send", Some(TOKEN), send_body).await;
    assert_eq!(status, 404);
    error_of(&body);
    let auth = format!("Bearer {TOKEN}");
    let (status, _, _) = request(
        addr,
        "DELETE",
        "/clients/7.9999",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 404);
    let (_raw, id) = subscribe(addr, "/events?topic=a", "").await;
    let (status, _, body) = request(
        addr,
        "DELETE",
        &format!("/clients/{id}?fatal=maybe"),
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("fatal"));
    assert_eq!(server.hub().len(), 1);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (status, _, body) = request(addr, "GET", "/nope", &[], "").await;
    assert_eq!(status, 404);
    error_of(&body);
    for (method, path, allow) in [
        ("GET", "/publish", "POST"),
        ("POST", "/events", "GET, OPTIONS"),
        ("PUT", "/clients/1.1", "DELETE"),
        ("POST", "/metrics", "GET"),
    ] {
        let (status, head, body) = request(addr, method, path, &[], "").await;
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(head.header("allow"), Some(allow));
        error_of(&body);
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_health_is_ok() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (_raw, _) = subscribe(addr, "/events?topic=m", "").await;
    common::publish(addr, r#"{"topic":"m","data":"x"}"#).await;
    let (status, head, body) = request(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    assert!(head
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    for line in [
        "ssehub_clients{state=\"active\"} 1",
        "ssehub_events_published_total 1",
        "ssehub_closes_total{reason=\"client_gone\"} 0",
        "# TYPE ssehub_frames_delivered_total counter",
        "ssehub_topics 1",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    assert!(body.contains("ssehub_http_connections_open "));
    assert!(body.contains("process_start_time_seconds "));
    let (status, _, body) = request(addr, "GET", "/healthz", &[], "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
}

#[tokio::test]
async fn cors_allows_configured_origins_with_credentials() {
    let mut config = common::config();
    config.cors_origins = vec!["https://app.example".to_owned()];
    let server = common::start(config).await;
    let addr = server.local_addr();
    let (_raw, head) = open(addr, "/events?topic=c", "Origin: https://app.example\r\n").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        head.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(head.header("vary"), Some("origin"));
    // The page may read the client id, and a 503's Retry-After (ssehub.js
    // honours it as a floor, across origins too).
    assert_eq!(
        head.header("access-control-expose-headers"),
        Some("client-id, retry-after")
    );
    let (_raw, head) = open(addr, "/events?topic=c", "Origin: https://evil.example\r\n").await;
    assert_eq!(head.header("access-control-allow-origin"), None);
    // Errors carry CORS headers too, so the page can read why.
    let (_raw, head) = open(addr, "/events", "Origin: https://app.example\r\n").await;
    assert_eq!(head.status, 400);
    assert_eq!(
        head.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let (status, head, _) = request(
        addr,
        "OPTIONS",
        "/events?topic=c",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "last-event-id"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(head.header("access-control-allow-methods"), Some("GET"));
    assert!(head
        .header("access-control-allow-headers")
        .unwrap()
        .contains("last-event-id"));
    assert_eq!(server.hub().len(), 2);
}

/// Regression (issue 14, item 4): `*` used to echo any origin together with
/// `Access-Control-Allow-Credentials: true`, exposing cookie-authorized
/// streams to every web site.
#[tokio::test]
async fn cors_star_never_reflects_an_origin_nor_grants_credentials() {
    let mut config = common::config();
    config.cors_origins = vec!["*".to_owned(), "https://app.example".to_owned()];
    let server = common::start(config).await;
    let addr = server.local_addr();
    // Any unlisted origin: a literal `*`, never credentials.
    let (_raw, head) = open(addr, "/events?topic=c", "Origin: https://evil.example\r\n").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("access-control-allow-origin"), Some("*"));
    assert_eq!(head.header("access-control-allow-credentials"), None);
    assert_eq!(head.header("vary"), Some("origin"));
    let (status, head, _) = request(
        addr,
        "OPTIONS",
        "/events?topic=c",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(head.header("access-control-allow-origin"), Some("*"));
    assert_eq!(head.header("access-control-allow-credentials"), None);
    // The listed origin keeps its credentials.
    let (_raw, head) = open(addr, "/events?topic=c", "Origin: https://app.example\r\n").await;
    assert_eq!(
        head.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        head.header("access-control-allow-credentials"),
        Some("true")
    );

    // `*` alone: no origin ever gets credentials.
    let mut config = common::config();
    config.cors_origins = vec!["*".to_owned()];
    let server = common::start(config).await;
    for origin in ["https://app.example", "null", "http://localhost:1"] {
        let (_raw, head) = open(
            server.local_addr(),
            "/events?topic=c",
            &format!("Origin: {origin}\r\n"),
        )
        .await;
        assert_eq!(head.header("access-control-allow-origin"), Some("*"));
        assert_eq!(head.header("access-control-allow-credentials"), None);
    }
    // No Origin header (same-origin or not a browser): no CORS headers.
    let (_raw, head) = open(server.local_addr(), "/events?topic=c", "").await;
    assert_eq!(head.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn the_demo_page_is_served_inline_with_the_configured_event_names() {
    let mut config = common::config();
    config.fatal_event = "go-away".to_owned();
    let server = common::start(config).await;
    let (status, head, body) = request(server.local_addr(), "GET", "/", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(body.contains("new EventSource("));
    assert!(body.contains(r#""fatal":"go-away""#));
    assert!(!body.contains("/*CONFIG*/"));
    assert!(!body.contains("src=\"http"), "no external assets");
}
