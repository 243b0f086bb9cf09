//! The admin routes with a JWT admin claim (`"ssehub": {"admin": true}`,
//! JWT-ADMIN) over loopback with real HTTP clients: an admin JWT opens
//! `GET /topics*`, `GET /dashboard/stream`, `DELETE /clients/{id}`,
//! `POST /clients/{id}/send` and `POST /publish` to any topic; a verified
//! JWT without the claim is 403, an expired or forged admin JWT 401; the
//! admin token keeps working, and without JWT configured a JWT is just a
//! wrong token (403).

mod common;

use common::{open, request, subscribe, TOKEN};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use ssehub_tokio::server::{JwtAuth, Server};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &[u8] = b"admin-jwt-secret-0123456789abcdef";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign_with(secret: &[u8], claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn sign(claims: Value) -> String {
    sign_with(SECRET, claims)
}

fn admin() -> String {
    sign(json!({"sub": "ops", "exp": now_secs() + 3600, "ssehub": {"admin": true}}))
}

async fn server(jwt: bool) -> Server {
    let mut config = common::config();
    if jwt {
        config.jwt = Some(JwtAuth::hs256(SECRET).unwrap());
    }
    common::start(config).await
}

/// `method path` with `Authorization: Bearer token`; status and error text.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let (status, _, body) = request(addr, method, path, &headers, body).await;
    let error = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, error)
}

#[tokio::test]
async fn an_admin_jwt_opens_every_admin_route() {
    let server = server(true).await;
    let addr = server.local_addr();
    let stream = sign(json!({"ssehub": {"subscribe": ["**"]}}));
    let (_raw, id) = subscribe(
        addr,
        "/events?topic=news",
        &format!("Authorization: Bearer {stream}\r\n"),
    )
    .await;
    let admin = admin();
    assert_eq!(call(addr, "GET", "/topics", &admin, "").await.0, 200);
    assert_eq!(
        call(addr, "GET", "/topics/news?clients=true", &admin, "")
            .await
            .0,
        200
    );
    // No `publish` claim, yet any topic: an admin credential.
    let body = r#"{"topic":"anything/at/all","data":"x"}"#;
    assert_eq!(call(addr, "POST", "/publish", &admin, body).await.0, 200);
    let send = format!("/clients/{id}/send");
    assert_eq!(
        call(addr, "POST", &send, &admin, r#"{"data":"hi"}"#)
            .await
            .0,
        200
    );
    let (_stats, head) = open(
        addr,
        "/dashboard/stream",
        &format!("Authorization: Bearer {admin}\r\n"),
    )
    .await;
    assert_eq!(head.status, 200);
    let kick = format!("/clients/{id}");
    assert_eq!(call(addr, "DELETE", &kick, &admin, "").await.0, 200);
    // The admin token still works beside it.
    assert_eq!(call(addr, "GET", "/topics", TOKEN, "").await.0, 200);
}

#[tokio::test]
async fn a_jwt_without_the_claim_is_403_an_expired_or_forged_one_401() {
    let server = server(true).await;
    let addr = server.local_addr();
    let exp = now_secs() + 3600;
    let refused = [
        (
            sign(json!({"exp": exp, "ssehub": {"subscribe": ["**"], "publish": ["**"]}})),
            403,
        ),
        (sign(json!({"exp": exp, "ssehub": {"admin": false}})), 403),
        (sign(json!({"exp": exp, "admin": true})), 403),
        (
            sign(json!({"exp": now_secs() - 1, "ssehub": {"admin": true}})),
            401,
        ),
        (
            sign_with(
                b"another-secret-0123456789abcdef!!",
                json!({"exp": exp, "ssehub": {"admin": true}}),
            ),
            401,
        ),
        ("not-the-token".to_owned(), 403),
    ];
    for (token, want) in &refused {
        for (method, path, body) in [
            ("GET", "/topics", ""),
            ("GET", "/topics/news", ""),
            ("GET", "/dashboard/stream", ""),
            ("DELETE", "/clients/0.1", ""),
            ("POST", "/clients/0.1/send", r#"{"data":"x"}"#),
        ] {
            let (status, error) = call(addr, method, path, token, body).await;
            assert_eq!(status, *want, "{method} {path}: {error}");
        }
    }
    let (_, error) = call(addr, "GET", "/topics", &refused[0].0, "").await;
    assert!(error.contains("admin"), "{error}");
    let (_, error) = call(addr, "GET", "/topics", &refused[3].0, "").await;
    assert!(error.contains("expired"), "{error}");
    // A JWT's `publish` claim still works for publishing, admin or not.
    let body = r#"{"topic":"news","data":"x"}"#;
    assert_eq!(
        call(addr, "POST", "/publish", &refused[0].0, body).await.0,
        200
    );
    assert_eq!(
        call(addr, "POST", "/publish", &refused[1].0, body).await.0,
        403
    );
    assert_eq!(server.hub().len(), 0);
}

#[tokio::test]
async fn without_jwt_configured_an_admin_jwt_is_a_wrong_token() {
    let server = server(false).await;
    let addr = server.local_addr();
    assert_eq!(call(addr, "GET", "/topics", &admin(), "").await.0, 403);
    assert_eq!(call(addr, "GET", "/topics", TOKEN, "").await.0, 200);
}
