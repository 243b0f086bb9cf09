//! `GET /ssehub.js`: the browser client, `runtime-tokio/js/ssehub.js`,
//! compiled into the binary.
//!
//! # Invariants
//!
//! - **One version per build.** The script is a constant of the binary, so
//!   its entity tag is computed at build time (FNV-1a 64 of its bytes): the
//!   tag changes exactly when the script does.
//! - **Cacheable, never stale.** `Cache-Control: no-cache` lets a browser
//!   keep the script and revalidate it on each use; a request whose
//!   `If-None-Match` lists the tag (or `*`), weakly compared, gets `304 Not
//!   Modified` with no body.

use crate::respond::{full, BoxBody};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

/// The script's source.
pub(crate) const SCRIPT: &str = include_str!("../../js/ssehub.js");

/// The strong entity tag of [`SCRIPT`], quotes included.
pub(crate) const ETAG: &str = match std::str::from_utf8(&ETAG_BYTES) {
    Ok(tag) => tag,
    // Unreachable: the tag is ASCII by construction (checked at build time).
    Err(_) => panic!("the entity tag is ASCII"),
};

const ETAG_BYTES: [u8; 18] = quoted_hex(fnv1a(SCRIPT.as_bytes()));

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

const fn quoted_hex(value: u64) -> [u8; 18] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

/// The answer to `GET /ssehub.js` with these request headers: the script,
/// or 304 when the client's copy is current.
pub(crate) fn response(request: &HeaderMap) -> Response<BoxBody> {
    let current = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ETAG);
    let mut response = if current {
        let mut response = Response::new(full(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(full(Bytes::from_static(SCRIPT.as_bytes())));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static(ETAG));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_the_quoted_fnv1a_of_the_script() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(ETAG, format!("\"{:016x}\"", fnv1a(SCRIPT.as_bytes())));
    }

    #[test]
    fn if_none_match_is_compared_weakly_in_lists() {
        let status = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            response(&headers).status()
        };
        assert_eq!(status(ETAG), StatusCode::NOT_MODIFIED);
        assert_eq!(status(&format!("W/{ETAG}")), StatusCode::NOT_MODIFIED);
        assert_eq!(status(&format!("\"x\", {ETAG}")), StatusCode::NOT_MODIFIED);
        assert_eq!(status("*"), StatusCode::NOT_MODIFIED);
        assert_eq!(status("\"0000000000000000\""), StatusCode::OK);
        assert_eq!(response(&HeaderMap::new()).status(), StatusCode::OK);
    }
}
