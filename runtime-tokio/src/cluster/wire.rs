//! The backplane's PUB/SUB message: what the publish script sends on
//! `<prefix>:events` and every node decodes.
//!
//! ```text
//! <epoch> SP <seq> SP <published-ms> SP <topic-len> SP <topic><body>
//! ```
//!
//! The first four fields are ASCII decimal; `<topic>` is exactly
//! `<topic-len>` bytes and `<body>` is the rest: the event's encoded
//! fields without an `id:` line ([`Hub::encode_body`]), stored unchanged in
//! the topic's stream. Length-prefixing the topic makes the format
//! independent of what topic names may hold.
//!
//! `<published-ms>` is Redis's clock (`TIME`) when the script ran; a node
//! subtracts it from its own clock for the backplane lag metric only.
//!
//! [`Hub::encode_body`]: ssehub_core::Hub::encode_body

use bytes::Bytes;
use std::fmt;

/// One event as it travels on the events channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The cluster's epoch when the event was sequenced.
    pub epoch: u64,
    /// Its position in the cluster-wide order.
    pub seq: u64,
    /// Milliseconds since the Unix epoch on Redis's clock at publish.
    pub published_ms: u64,
    /// The topic.
    pub topic: String,
    /// The encoded event, without its `id:` line.
    pub body: Bytes,
}

/// A PUB/SUB payload that is not a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// A header field is missing or not a decimal number.
    Field(&'static str),
    /// The topic is shorter than its length says, or not UTF-8.
    Topic,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(name) => write!(f, "backplane message: bad or missing {name}"),
            Self::Topic => f.write_str("backplane message: truncated or non-UTF-8 topic"),
        }
    }
}

impl std::error::Error for WireError {}

impl Message {
    /// Decodes a payload of the events channel.
    ///
    /// # Errors
    ///
    /// [`WireError`] for anything that is not the format above.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let mut rest = payload;
        let mut field = |name: &'static str| -> Result<u64, WireError> {
            let end = rest
                .iter()
                .position(|&b| b == b' ')
                .ok_or(WireError::Field(name))?;
            let value = parse_decimal(&rest[..end]).ok_or(WireError::Field(name))?;
            rest = &rest[end + 1..];
            Ok(value)
        };
        let epoch = field("epoch")?;
        let seq = field("seq")?;
        let published_ms = field("time")?;
        let topic_len = field("topic length")?;
        let topic_len = usize::try_from(topic_len).map_err(|_| WireError::Topic)?;
        if rest.len() < topic_len {
            return Err(WireError::Topic);
        }
        let (topic, body) = rest.split_at(topic_len);
        let topic = std::str::from_utf8(topic).map_err(|_| WireError::Topic)?;
        Ok(Self {
            epoch,
            seq,
            published_ms,
            topic: topic.to_owned(),
            body: Bytes::copy_from_slice(body),
        })
    }

    /// Encodes as the publish script does (tests and tools; the script
    /// builds the payload inside Redis).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} {} {} {}",
            self.epoch,
            self.seq,
            self.published_ms,
            self.topic.len(),
            self.topic
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A non-empty run of ASCII digits that fits a `u64`.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_spaces_in_topic_and_body() {
        let message = Message {
            epoch: 18_446_744_073_709_551_615,
            seq: 42,
            published_ms: 1_700_000_000_000,
            topic: "a b".to_owned(),
            body: Bytes::from_static(b"data: x y\n\n"),
        };
        let encoded = message.encode();
        assert_eq!(
            encoded,
            b"18446744073709551615 42 1700000000000 3 a bdata: x y\n\n"
        );
        assert_eq!(Message::decode(&encoded), Ok(message));
    }

    #[test]
    fn malformed_payloads_are_typed_errors() {
        for (payload, error) in [
            (&b""[..], WireError::Field("epoch")),
            (b"1", WireError::Field("epoch")),
            (b"x 1 1 1 t", WireError::Field("epoch")),
            (b"1 -2 1 1 t", WireError::Field("seq")),
            (
                b"1 2 3 99999999999999999999 t",
                WireError::Field("topic length"),
            ),
            (b"1 2 3 5 abc", WireError::Topic),
            (b"1 2 3 1 \xff", WireError::Topic),
        ] {
            assert_eq!(Message::decode(payload), Err(error), "{payload:?}");
        }
    }
}
