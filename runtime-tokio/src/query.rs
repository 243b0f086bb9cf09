//! A strict `application/x-www-form-urlencoded` query parser: percent
//! escapes must be complete hex pairs and the result valid UTF-8, or the
//! whole query is refused (the caller answers 400).

use std::fmt;

/// Why a query string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QueryError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadEscape => "malformed percent-escape in query string",
            Self::NotUtf8 => "query string is not UTF-8 once decoded",
        })
    }
}

/// The `(name, value)` pairs of `query` (without the `?`), in order, empty
/// segments (`a=1&&b=2`) skipped.
pub(crate) fn parse(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut pairs = Vec::new();
    for segment in query.split('&').filter(|s| !s.is_empty()) {
        let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

/// Percent-decodes one component, `+` meaning a space.
pub(crate) fn decode(s: &str) -> Result<String, QueryError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err(QueryError::BadEscape),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repeated_names_escapes_and_plus() {
        assert_eq!(
            parse("topic=a&topic=b%2Fc&&lastEventId=1-2&x+y=%C3%A9").unwrap(),
            vec![
                ("topic".into(), "a".into()),
                ("topic".into(), "b/c".into()),
                ("lastEventId".into(), "1-2".into()),
                ("x y".into(), "é".into()),
            ]
        );
        assert_eq!(parse("flag").unwrap(), vec![("flag".into(), String::new())]);
    }

    #[test]
    fn refuses_broken_escapes_and_invalid_utf8() {
        assert_eq!(parse("topic=%"), Err(QueryError::BadEscape));
        assert_eq!(parse("topic=%4"), Err(QueryError::BadEscape));
        assert_eq!(parse("topic=%zz"), Err(QueryError::BadEscape));
        assert_eq!(parse("topic=%ff"), Err(QueryError::NotUtf8));
    }
}
