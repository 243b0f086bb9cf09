//! JWT authorization of subscribers (and, with a `publish` claim, of
//! publishers): which topics a token lets its bearer read or write, and
//! until when.
//!
//! # Tokens
//!
//! - **Keys**: an HS256 shared secret ([`JwtAuth::hs256`]), or an RS256
//!   (RSA) or ES256 (P-256) public key in PEM ([`JwtAuth::from_public_key_pem`]).
//!   Exactly one algorithm is accepted per key, so a token cannot pick its
//!   own (no `alg: none`, no HS256 signed with a public key).
//! - **Claims**: `{"ssehub": {"subscribe": [...], "publish": [...]}}`, each
//!   a list of topic patterns (see [`TopicPattern`]); `exp` (optional, Unix
//!   seconds, no leeway) ends the stream at expiry; `nbf` is honoured.
//!   `"ssehub": {"admin": true}` makes the token an admin credential, as
//!   good as the admin token on every route that takes it (`/publish` to
//!   any topic, `/clients/*`, `/topics*`, `/dashboard/stream`). `sub`, a
//!   string, names the subscriber in the `join`/`leave` events of topics
//!   with presence. Other claims (`aud`, `iss`, …) are ignored.
//! - **Sources**, first present wins: `Authorization: Bearer <jwt>`, the
//!   `access_token` query parameter, the cookie named by
//!   [`JwtAuth::with_cookie`] (default `ssehub_token`). A browser's
//!   EventSource cannot set headers, hence the other two. Publishers send
//!   the header only (a cookie on a POST would invite cross-site requests).
//!
//! # Invariants
//!
//! - **JWT-NONE**: a token is accepted only if its signature verifies with
//!   the configured key under the one configured algorithm; `alg: none`
//!   and every other algorithm are 401.
//! - **JWT-TOPICS**: a stream opens only if every topic it names matches a
//!   `subscribe` pattern of its token (403 otherwise, nothing reserved); a
//!   JWT publish succeeds only if its topic matches a `publish` pattern.
//! - **JWT-EXP**: a stream opened with a token that has `exp` receives the
//!   fatal event and ends at `exp` (see `crate::endpoint`).
//! - **JWT-ADMIN**: a JWT opens an admin route only if it verifies (as
//!   above, `exp` included) and its claims say `"ssehub": {"admin": true}`
//!   (the boolean `true`, nothing else); a verified token without it is
//!   403, an expired or forged one 401.

use crate::endpoint::{Access, Rejection};
use http::request::Parts;
use http::{header, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The default name of the cookie that may carry the token.
pub const DEFAULT_COOKIE: &str = "ssehub_token";

/// A topic pattern of a token's claims: `/`-separated segments where
/// - `*` matches exactly one non-empty segment (`orders/*` matches
///   `orders/42`, not `orders` nor `orders/42/items`);
/// - `**` as the last segment matches one or more segments (`orders/**`
///   matches `orders/42` and `orders/42/items`; `**` alone matches every
///   topic);
/// - any other segment matches itself only (`**` elsewhere is literal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPattern(String);

impl TopicPattern {
    /// The pattern `pattern`.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    /// Whether `topic` matches.
    /// The same rules as the `--presence` patterns
    /// ([`ssehub_core::pattern_matches`]).
    pub fn matches(&self, topic: &str) -> bool {
        ssehub_core::pattern_matches(&self.0, topic)
    }
}

/// What a verified token grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Topics the bearer may read.
    pub subscribe: Vec<TopicPattern>,
    /// Topics the bearer may publish to.
    pub publish: Vec<TopicPattern>,
    /// When the token expires (`exp`), if it does.
    pub expires_at: Option<SystemTime>,
    /// `sub`, if the token has one.
    pub subject: Option<String>,
    /// `"ssehub": {"admin": true}`: an admin credential.
    pub admin: bool,
}

impl Grant {
    /// Whether the bearer may read `topic`.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.subscribe.iter().any(|p| p.matches(topic))
    }

    /// Whether the bearer may publish to `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|p| p.matches(topic))
    }
}

/// Why a token was refused (all answered 401).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// No token in any accepted place.
    Missing,
    /// `exp` has passed.
    Expired,
    /// The signature does not verify with the configured key, or the token
    /// uses another algorithm (`alg: none` included).
    BadSignature,
    /// Not a well-formed JWT, or claims of the wrong shape.
    Malformed(String),
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("a token is required"),
            Self::Expired => f.write_str("the token has expired"),
            Self::BadSignature => {
                f.write_str("the token's signature or algorithm does not match the configured key")
            }
            Self::Malformed(why) => write!(f, "the token is malformed: {why}"),
        }
    }
}

impl std::error::Error for JwtError {}

/// Why a key could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtKeyError {
    /// The HS256 secret is shorter than 32 bytes (256 bits).
    WeakSecret,
    /// The PEM holds neither an RSA nor a P-256 public key.
    UnsupportedKey(String),
    /// The cookie name is empty or not an RFC 6265 token.
    BadCookieName,
}

impl fmt::Display for JwtKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WeakSecret => f.write_str("an HS256 secret needs at least 32 bytes (256 bits)"),
            Self::UnsupportedKey(why) => write!(
                f,
                "not a PEM RSA (RS256) or P-256 EC (ES256) public key: {why}"
            ),
            Self::BadCookieName => f.write_str("a cookie name must be a non-empty RFC 6265 token"),
        }
    }
}

impl std::error::Error for JwtKeyError {}

/// The claims read from a token; everything else is ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    ssehub: SsehubClaim,
}

#[derive(Debug, Default, Deserialize)]
struct SsehubClaim {
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    admin: bool,
}

/// A key, its one algorithm, and where tokens are looked for. Cheap to
/// clone.
#[derive(Clone)]
pub struct JwtAuth {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    cookie: Arc<str>,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: an HS256 secret would be printed.
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.validation.algorithms)
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Tokens signed with HS256 and `secret`.
    ///
    /// # Errors
    ///
    /// [`JwtKeyError::WeakSecret`] under 32 bytes.
    pub fn hs256(secret: &[u8]) -> Result<Self, JwtKeyError> {
        if secret.len() < 32 {
            return Err(JwtKeyError::WeakSecret);
        }
        Ok(Self::with_key(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ))
    }

    /// Tokens signed with RS256 (an RSA public key) or ES256 (a P-256
    /// public key), the key given in PEM (`BEGIN PUBLIC KEY` or
    /// `BEGIN RSA PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`JwtKeyError::UnsupportedKey`] for anything else.
    pub fn from_public_key_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::with_key(key, Algorithm::RS256));
        }
        match DecodingKey::from_ec_pem(pem) {
            Ok(key) => Ok(Self::with_key(key, Algorithm::ES256)),
            Err(e) => Err(JwtKeyError::UnsupportedKey(e.to_string())),
        }
    }

    fn with_key(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        // `exp` is optional (a token without it never expires); when
        // present it is exact: the stream ends at `exp`, so a token
        // accepted within a leeway would end at once.
        validation.set_required_spec_claims::<&str>(&[]);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
            cookie: Arc::from(DEFAULT_COOKIE),
        }
    }

    /// Looks for the token in the cookie `name` too (instead of
    /// [`DEFAULT_COOKIE`]).
    ///
    /// # Errors
    ///
    /// [`JwtKeyError::BadCookieName`] if `name` is not an RFC 6265 token.
    pub fn with_cookie(mut self, name: &str) -> Result<Self, JwtKeyError> {
        let separator = |b: u8| b"()<>@,;:\\\"/[]?={}".contains(&b);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && !separator(b)) {
            return Err(JwtKeyError::BadCookieName);
        }
        self.cookie = Arc::from(name);
        Ok(self)
    }

    /// The algorithm tokens must use.
    pub fn algorithm(&self) -> Algorithm {
        self.validation.algorithms[0]
    }

    /// The cookie tokens are looked for in.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// Verifies `token` and reads its grant.
    ///
    /// # Errors
    ///
    /// [`JwtError`]: expired, bad signature or algorithm, malformed.
    pub fn verify(&self, token: &str) -> Result<Grant, JwtError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::MissingAlgorithm => JwtError::BadSignature,
                _ => JwtError::Malformed(e.to_string()),
            },
        )?;
        let claims = data.claims;
        let patterns = |list: Vec<String>| list.into_iter().map(TopicPattern::new).collect();
        Ok(Grant {
            subscribe: patterns(claims.ssehub.subscribe),
            publish: patterns(claims.ssehub.publish),
            // An `exp` past what `SystemTime` holds never comes.
            expires_at: claims
                .exp
                .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp))),
            subject: claims.sub,
            admin: claims.ssehub.admin,
        })
    }

    /// The token of a stream request: `Authorization: Bearer`, else the
    /// `access_token` query parameter, else the cookie.
    pub fn token_of(&self, parts: &Parts) -> Option<String> {
        if let Some(token) = bearer(&parts.headers) {
            return Some(token);
        }
        let from_query = crate::query::parse(parts.uri.query().unwrap_or(""))
            .ok()
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(name, _)| name == "access_token")
                    .map(|(_, value)| value)
            });
        from_query.or_else(|| cookie(&parts.headers, &self.cookie))
    }

    /// The stream access check: a valid token whose `subscribe` claim
    /// covers every topic in `topics`.
    ///
    /// # Errors
    ///
    /// 401 for a missing or invalid token, 403 for a topic outside the
    /// claims.
    pub fn check_subscribe(&self, parts: &Parts, topics: &[String]) -> Result<Access, Rejection> {
        let token = self.token_of(parts).ok_or_else(|| {
            Rejection::unauthorized(format!(
                "a token is required: Authorization: Bearer, ?access_token= or the {} cookie",
                self.cookie
            ))
        })?;
        let grant = self
            .verify(&token)
            .map_err(|e| Rejection::unauthorized(e.to_string()))?;
        if let Some(topic) = topics.iter().find(|t| !grant.may_subscribe(t)) {
            return Err(Rejection::forbidden(format!(
                "the token does not allow subscribing to topic {topic:?}"
            )));
        }
        let access = match grant.expires_at {
            Some(at) => Access::until(at),
            None => Access::unlimited(),
        };
        Ok(match grant.subject {
            Some(subject) => access.with_subject(subject),
            None => access,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The value of cookie `name` (quotes stripped) from every `Cookie` header.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_names_one_segment_and_trailing_rest() {
        let m = |p: &str, t: &str| TopicPattern::new(p).matches(t);
        assert!(m("news", "news"));
        assert!(!m("news", "news/x"));
        assert!(!m("news", "new"));
        assert!(m("orders/*", "orders/42"));
        assert!(!m("orders/*", "orders"));
        assert!(!m("orders/*", "orders/"));
        assert!(!m("orders/*", "orders/42/items"));
        assert!(m("orders/*/items", "orders/42/items"));
        assert!(m("orders/**", "orders/42"));
        assert!(m("orders/**", "orders/42/items"));
        assert!(!m("orders/**", "orders"));
        assert!(!m("orders/**", "ordersx/1"));
        assert!(m("**", "anything/at/all"));
        assert!(!m("a/**/b", "a/x/b"));
        assert!(m("a/**/b", "a/**/b"));
        assert!(!m("*", "a/b"));
    }

    #[test]
    fn cookies_are_found_among_others_and_unquoted() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; ssehub_token=\"t.k.n\"".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, "ssehub_token").as_deref(), Some("t.k.n"));
        assert_eq!(cookie(&headers, "b"), None);
        headers.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
    }

    #[test]
    fn weak_secrets_unknown_keys_and_bad_cookie_names_are_refused() {
        assert_eq!(
            JwtAuth::hs256(b"short").unwrap_err(),
            JwtKeyError::WeakSecret
        );
        assert!(matches!(
            JwtAuth::from_public_key_pem(b"not a key").unwrap_err(),
            JwtKeyError::UnsupportedKey(_)
        ));
        let auth = JwtAuth::hs256(&[7; 32]).unwrap();
        assert_eq!(auth.algorithm(), Algorithm::HS256);
        assert!(auth.clone().with_cookie("a b").is_err());
        assert!(auth.clone().with_cookie("a;b").is_err());
        assert!(auth.clone().with_cookie("").is_err());
        assert_eq!(auth.with_cookie("jwt").unwrap().cookie(), "jwt");
    }

    #[test]
    fn any_exp_is_read_without_panicking() {
        let secret = [9u8; 32];
        let auth = JwtAuth::hs256(&secret).unwrap();
        let key = jsonwebtoken::EncodingKey::from_secret(&secret);
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
        };
        let grant = auth
            .verify(&sign(serde_json::json!({"exp": u64::MAX})))
            .unwrap();
        assert_eq!(grant.expires_at, None, "beyond SystemTime: never");
        let grant = auth
            .verify(&sign(serde_json::json!({"exp": 4_000_000_000u64})))
            .unwrap();
        assert!(grant.expires_at.is_some());
        assert!(grant.subscribe.is_empty() && grant.publish.is_empty());
        let grant = auth
            .verify(&sign(
                serde_json::json!({"sub": "alice", "ssehub": {"admin": true}}),
            ))
            .unwrap();
        assert!(grant.admin);
        assert_eq!(grant.subject.as_deref(), Some("alice"));
        assert!(!auth.verify(&sign(serde_json::json!({}))).unwrap().admin);
        for bad in [
            serde_json::json!({"ssehub": {"admin": "true"}}),
            serde_json::json!({"ssehub": {"admin": 1}}),
            serde_json::json!({"sub": 7}),
            serde_json::json!({"exp": -1}),
            serde_json::json!({"exp": "soon"}),
            serde_json::json!({"ssehub": {"subscribe": "not-a-list"}}),
        ] {
            assert!(auth.verify(&sign(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let auth = JwtAuth::hs256(b"a-very-secret-secret-of-32-bytes!!").unwrap();
        let text = format!("{auth:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(!text.to_lowercase().contains("key"), "{text}");
    }
}
