//! Following redirects: which statuses redirect, resolving a `Location`
//! against the URL that answered, and which headers may follow it.

use http::uri::{Parts, PathAndQuery, Scheme};
use http::{HeaderMap, StatusCode, Uri};

/// Whether `status` is a redirect the client follows (the method stays
/// `GET` for all of them, so 303 needs no special case).
pub(crate) fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Resolves a `Location` value against `base` (RFC 3986 §5.2, for the
/// reference forms servers send: absolute, network-path, absolute-path,
/// relative-path and query-only). A fragment is dropped (it never reaches
/// the server). `None` if the result is not a valid absolute URI.
pub(crate) fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.trim();
    let location = location.split_once('#').map_or(location, |(l, _)| l);
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let (base_path, base_query) = (base.path(), base.query());

    let joined = if has_scheme(location) {
        let uri: Uri = location.parse().ok()?;
        let (path, query) = split_query(uri.path_and_query().map_or("/", PathAndQuery::as_str));
        format!(
            "{}://{}{}{}",
            uri.scheme_str()?,
            uri.authority()?.as_str(),
            remove_dot_segments(path),
            query
        )
    } else if let Some(rest) = location.strip_prefix("//") {
        let (authority, path_query) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (path, query) = split_query(path_query);
        format!("{scheme}://{authority}{}{query}", remove_dot_segments(path))
    } else if location.starts_with('/') {
        let (path, query) = split_query(location);
        format!("{scheme}://{authority}{}{query}", remove_dot_segments(path))
    } else if location.is_empty() {
        let query = base_query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{scheme}://{authority}{base_path}{query}")
    } else if location.starts_with('?') {
        format!("{scheme}://{authority}{base_path}{location}")
    } else {
        let (path, query) = split_query(location);
        let directory = base_path.rfind('/').map_or("/", |at| &base_path[..=at]);
        let merged = format!("{directory}{path}");
        format!(
            "{scheme}://{authority}{}{query}",
            remove_dot_segments(&merged)
        )
    };
    let uri: Uri = joined.parse().ok()?;
    // Normalise an empty path to `/`.
    let mut parts = Parts::from(uri);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts).ok()
}

/// Whether two URLs are of the same origin (scheme, host, port).
pub(crate) fn same_origin(a: &Uri, b: &Uri) -> bool {
    a.scheme() == b.scheme()
        && a.host().map(str::to_ascii_lowercase) == b.host().map(str::to_ascii_lowercase)
        && effective_port(a) == effective_port(b)
}

/// Whether a redirect from `from` to `to` leaves TLS (`https` → `http`).
pub(crate) fn is_downgrade(from: &Uri, to: &Uri) -> bool {
    from.scheme() == Some(&Scheme::HTTPS) && to.scheme() != Some(&Scheme::HTTPS)
}

/// Removes the credentials a redirect to another origin must not carry
/// (as browsers and curl do): `Authorization`, `Proxy-Authorization`,
/// `Cookie`.
pub(crate) fn strip_credentials(headers: &mut HeaderMap) {
    headers.remove(http::header::AUTHORIZATION);
    headers.remove(http::header::PROXY_AUTHORIZATION);
    headers.remove(http::header::COOKIE);
}

fn effective_port(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme() {
        Some(s) if *s == Scheme::HTTP => Some(80),
        Some(s) if *s == Scheme::HTTPS => Some(443),
        _ => None,
    })
}

/// `scheme ":"` where scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ),
/// before any `/`, `?`.
fn has_scheme(reference: &str) -> bool {
    let Some(colon) = reference.find(':') else {
        return false;
    };
    let scheme = &reference[..colon];
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Splits `path?query` into the path and `?query` (empty if none).
fn split_query(path_query: &str) -> (&str, &str) {
    match path_query.find('?') {
        Some(at) => path_query.split_at(at),
        None => (path_query, ""),
    }
}

/// RFC 3986 §5.2.4 on an absolute path (or an empty one, which becomes `/`).
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            other => {
                out.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len().max(1));
    for segment in &out {
        result.push('/');
        result.push_str(segment);
    }
    if trailing_slash || result.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: &str, location: &str) -> String {
        resolve(&base.parse().unwrap(), location)
            .map(|u| u.to_string())
            .unwrap_or_else(|| "<none>".into())
    }

    #[test]
    fn reference_forms_resolve_against_the_current_url() {
        let base = "http://a.example:8080/b/c/d?q=1";
        assert_eq!(r(base, "http://other/x?y"), "http://other/x?y");
        assert_eq!(r(base, "https://other"), "https://other/");
        assert_eq!(r(base, "//other:81/p?z"), "http://other:81/p?z");
        assert_eq!(r(base, "//other"), "http://other/");
        assert_eq!(
            r(base, "/events?topic=a"),
            "http://a.example:8080/events?topic=a"
        );
        assert_eq!(r(base, "g"), "http://a.example:8080/b/c/g");
        assert_eq!(r(base, "./g?x"), "http://a.example:8080/b/c/g?x");
        assert_eq!(r(base, "../g"), "http://a.example:8080/b/g");
        assert_eq!(r(base, "../../../../g"), "http://a.example:8080/g");
        assert_eq!(r(base, "g/"), "http://a.example:8080/b/c/g/");
        assert_eq!(r(base, ".."), "http://a.example:8080/b/");
        assert_eq!(r(base, "?y=2"), "http://a.example:8080/b/c/d?y=2");
        assert_eq!(r(base, ""), "http://a.example:8080/b/c/d?q=1");
        assert_eq!(r(base, "/x#frag"), "http://a.example:8080/x");
        assert_eq!(r(base, "/a/./b/../c"), "http://a.example:8080/a/c");
    }

    #[test]
    fn garbage_locations_are_rejected() {
        assert_eq!(r("http://a/b", "http://"), "<none>");
        assert_eq!(r("http://a/b", "/sp ace"), "<none>");
    }

    #[test]
    fn origins_compare_scheme_host_and_effective_port() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(same_origin(
            &u("http://A.example/x"),
            &u("http://a.example:80/y")
        ));
        assert!(!same_origin(
            &u("http://a.example/"),
            &u("https://a.example/")
        ));
        assert!(!same_origin(
            &u("http://a.example/"),
            &u("http://a.example:81/")
        ));
        assert!(!same_origin(
            &u("http://a.example/"),
            &u("http://b.example/")
        ));
    }

    #[test]
    fn leaving_tls_is_a_downgrade() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(is_downgrade(&u("https://a/x"), &u("http://a/x")));
        assert!(!is_downgrade(&u("http://a/x"), &u("https://a/x")));
        assert!(!is_downgrade(&u("https://a/x"), &u("https://b/x")));
        assert!(!is_downgrade(&u("http://a/x"), &u("http://b/x")));
    }

    #[test]
    fn redirect_statuses() {
        for s in [301, 302, 303, 307, 308] {
            assert!(is_redirect(StatusCode::from_u16(s).unwrap()));
        }
        for s in [200, 204, 300, 304, 305, 400] {
            assert!(!is_redirect(StatusCode::from_u16(s).unwrap()));
        }
    }
}
