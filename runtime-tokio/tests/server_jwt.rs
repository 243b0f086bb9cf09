//! JWT authorization of the hub server over loopback (issue 14, item 5):
//! every token source, HS256/RS256/ES256 keys, a wrong key, `alg: none`,
//! algorithm confusion, expired tokens, topics outside the claims (403,
//! nothing reserved), a stream ended by its token's expiry with the fatal
//! event, and publishers authorized by a `publish` claim.

mod common;

use common::{open, request, Raw, TOKEN};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use ssehub_core::CloseReason;
use ssehub_tokio::server::{JwtAuth, Server};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &[u8] = b"jwt-test-secret-0123456789abcdef";

fn key_file(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/");
    std::fs::read(format!("{path}{name}")).expect("test key")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token with `claims` under `ssehub`, valid for an hour.
fn hs256(claims: Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), claims)
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    let body = json!({"sub": "test", "exp": now_secs() + 3600, "ssehub": claims});
    encode(&Header::new(alg), &body, key).expect("sign")
}

async fn server_with(auth: JwtAuth) -> Server {
    let mut config = common::config();
    config.jwt = Some(auth);
    common::start(config).await
}

async fn hs_server() -> Server {
    server_with(JwtAuth::hs256(SECRET).unwrap()).await
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Opens `path` with extra header lines; on 200 reads the welcome.
async fn stream(addr: SocketAddr, path: &str, extra: &str) -> (u16, Raw) {
    let (mut raw, head) = open(addr, path, extra).await;
    if head.status == 200 {
        let welcome = raw.frame().await.expect("welcome");
        assert!(welcome.contains("event: welcome"), "{welcome}");
    }
    (head.status, raw)
}

async fn status_of(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let (mut raw, head) = open(addr, path, extra).await;
    if head.status == 200 {
        return (200, String::new());
    }
    if head.status == 401 {
        assert_eq!(head.header("www-authenticate"), Some("Bearer"));
    }
    (head.status, error_of(&raw.body().await))
}

#[tokio::test]
async fn every_token_source_opens_a_stream() {
    let server = hs_server().await;
    let addr = server.local_addr();
    let token = hs256(json!({"subscribe": ["orders/*", "news"]}));
    let path = "/events?topic=orders/1&topic=news";
    let (status, _header) = stream(addr, path, &format!("Authorization: Bearer {token}\r\n")).await;
    assert_eq!(status, 200, "Authorization header");
    let (status, _query) = stream(addr, &format!("{path}&access_token={token}"), "").await;
    assert_eq!(status, 200, "access_token query parameter");
    let cookie = format!("Cookie: theme=dark; ssehub_token={token}\r\n");
    let (status, _cookie) = stream(addr, path, &cookie).await;
    assert_eq!(status, 200, "default cookie");
    assert_eq!(server.hub().len(), 3);
    // The first source present is the one checked: a bad header is not
    // rescued by a good cookie.
    let (status, _) = status_of(
        addr,
        path,
        &format!("Authorization: Bearer not.a.jwt\r\n{cookie}"),
    )
    .await;
    assert_eq!(status, 401, "header before cookie");
    let (status, _) = status_of(addr, &format!("{path}&access_token=not.a.jwt"), &cookie).await;
    assert_eq!(status, 401, "query before cookie");

    // The cookie's name is configurable; the default name then is not read.
    let server = server_with(JwtAuth::hs256(SECRET).unwrap().with_cookie("auth").unwrap()).await;
    let addr = server.local_addr();
    let (status, _) = stream(addr, path, &format!("Cookie: auth={token}\r\n")).await;
    assert_eq!(status, 200, "configured cookie");
    let (status, error) = status_of(addr, path, &cookie).await;
    assert_eq!(status, 401, "{error}");
    assert!(error.contains("auth cookie"), "{error}");
}

#[tokio::test]
async fn missing_wrong_forged_and_expired_tokens_are_401_outside_topics_403() {
    let server = hs_server().await;
    let addr = server.local_addr();
    let path = "/events?topic=orders/1";
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");

    let (status, error) = status_of(addr, path, "").await;
    assert_eq!(status, 401, "no token: {error}");
    let (status, _) = status_of(addr, path, &bearer("not.a.jwt")).await;
    assert_eq!(status, 401, "garbage");

    let claims = json!({"subscribe": ["orders/*"]});
    let wrong_key = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-0123456789abcdefgh"),
        claims.clone(),
    );
    let (status, error) = status_of(addr, path, &bearer(&wrong_key)).await;
    assert_eq!(status, 401, "wrong key: {error}");
    assert!(error.contains("signature"), "{error}");

    // `alg: none`, unsigned, carrying claims that would otherwise pass.
    let b64 = |v: &Value| base64url(v.to_string().as_bytes());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"exp": now_secs() + 3600, "ssehub": claims}))
    );
    let (status, _) = status_of(addr, path, &bearer(&none)).await;
    assert_eq!(status, 401, "alg none");
    let (status, _) = status_of(addr, &format!("{path}&access_token={none}"), "").await;
    assert_eq!(status, 401, "alg none in the query");

    let expired = encode(
        &Header::new(Algorithm::HS256),
        &json!({"exp": now_secs() - 1, "ssehub": claims}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let (status, error) = status_of(addr, path, &bearer(&expired)).await;
    assert_eq!(status, 401, "expired: {error}");
    assert!(error.contains("expired"), "{error}");

    // A valid token, but one topic of two outside its claims: 403.
    let token = hs256(claims.clone());
    for outside in [
        "/events?topic=orders/1&topic=news",
        "/events?topic=orders",
        "/events?topic=orders/1/items",
    ] {
        let (status, error) = status_of(addr, outside, &bearer(&token)).await;
        assert_eq!(status, 403, "{outside}: {error}");
        assert!(error.contains("topic"), "{error}");
    }
    // A token without a subscribe claim reads nothing.
    let (status, _) = status_of(addr, path, &bearer(&hs256(json!({})))).await;
    assert_eq!(status, 403);
    assert_eq!(server.hub().len(), 0, "no refusal reserved anything");
    assert_eq!(server.hub().subscriber_count("orders/1"), 0);
}

#[tokio::test]
async fn rs256_and_es256_public_keys_accept_their_own_signatures_only() {
    let rsa = EncodingKey::from_rsa_pem(&key_file("rsa_private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&key_file("ec_private.pem")).unwrap();
    let claims = json!({"subscribe": ["**"]});
    let rs256 = sign(Algorithm::RS256, &rsa, claims.clone());
    let es256 = sign(Algorithm::ES256, &ec, claims.clone());
    for (public, good, bad) in [
        ("rsa_public.pem", &rs256, &es256),
        ("ec_public.pem", &es256, &rs256),
    ] {
        let pem = key_file(public);
        let server = server_with(JwtAuth::from_public_key_pem(&pem).unwrap()).await;
        let addr = server.local_addr();
        let path = "/events?topic=any/thing";
        let (status, _) = stream(addr, path, &format!("Authorization: Bearer {good}\r\n")).await;
        assert_eq!(status, 200, "{public}");
        let (status, _) = status_of(addr, path, &format!("Authorization: Bearer {bad}\r\n")).await;
        assert_eq!(status, 401, "{public}: the other key");
        // Algorithm confusion: HS256 "signed" with the public key's bytes.
        let confused = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(&pem),
            claims.clone(),
        );
        let (status, _) =
            status_of(addr, path, &format!("Authorization: Bearer {confused}\r\n")).await;
        assert_eq!(status, 401, "{public}: HS256 with the public key");
        let (status, _) = status_of(
            addr,
            path,
            &format!("Authorization: Bearer {}\r\n", hs256(claims.clone())),
        )
        .await;
        assert_eq!(status, 401, "{public}: HS256");
    }
}

#[tokio::test]
async fn a_stream_ends_at_its_tokens_expiry_with_the_fatal_event() {
    let mut config = common::config();
    config.jwt = Some(JwtAuth::hs256(SECRET).unwrap());
    config.fatal_event = "go-away".to_owned();
    let server = common::start(config).await;
    let addr = server.local_addr();
    // `exp` has a one-second resolution: this one is 1 to 2 s away.
    let exp = now_secs() + 2;
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"exp": exp, "ssehub": {"subscribe": ["t"]}}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let (status, mut raw) =
        stream(addr, &format!("/events?topic=t&access_token={token}"), "").await;
    assert_eq!(status, 200);
    // Live events flow until the expiry.
    let (status, body) = common::publish(addr, r#"{"topic":"t","data":"before"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(raw.frame().await.unwrap().ends_with("data: before\n\n"));
    let last = tokio::time::timeout(std::time::Duration::from_secs(20), raw.frame())
        .await
        .expect("the stream ends within 20 s of a 2 s token")
        .expect("a final frame");
    assert_eq!(
        last,
        "event: go-away\ndata: {\"reason\":\"token_expired\"}\n\n"
    );
    assert!(now_secs() >= exp, "not before exp");
    assert_eq!(
        raw.frame().await,
        None,
        "the stream ends after the fatal event"
    );
    assert!(raw.done, "the response ended cleanly");
    assert_eq!(server.hub().metrics().closes_for(CloseReason::Kicked), 1);
    common::wait_until("the client is gone", || server.hub().is_empty()).await;
}

#[tokio::test]
async fn publishers_may_use_a_publish_claim_for_their_topics_only() {
    let server = hs_server().await;
    let addr = server.local_addr();
    let post = |auth: String, body: &'static str| async move {
        let (status, _, body) = request(
            addr,
            "POST",
            "/publish",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await;
        (status, body)
    };
    let publisher = hs256(json!({"publish": ["orders/*"]}));
    let (status, body) = post(
        format!("Bearer {publisher}"),
        r#"{"topic":"orders/7","data":"x"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        format!("Bearer {publisher}"),
        r#"{"topic":"news","data":"x"}"#,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).contains("publishing"), "{body}");
    let reader = hs256(json!({"subscribe": ["**"]}));
    let (status, _) = post(
        format!("Bearer {reader}"),
        r#"{"topic":"orders/7","data":"x"}"#,
    )
    .await;
    assert_eq!(status, 403, "a subscribe claim does not publish");
    let (status, _) = post(
        "Bearer not.a.jwt".to_owned(),
        r#"{"topic":"orders/7","data":"x"}"#,
    )
    .await;
    assert_eq!(status, 401);
    // The admin token still publishes anywhere; JWTs do not reach the
    // other admin routes.
    let (status, _) = post(format!("Bearer {TOKEN}"), r#"{"topic":"news","data":"x"}"#).await;
    assert_eq!(status, 200);
    let (status, _, _) = request(
        addr,
        "DELETE",
        "/clients/0.1",
        &[("Authorization", &format!("Bearer {publisher}"))],
        "",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(server.hub().metrics().events_published, 2);
}

/// RFC 4648 base64url without padding (for the hand-made `alg: none` token).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
