//! Identifiers: [`ClientId`] (a generation-tagged slot key) and [`EventId`]
//! (`<epoch>-<seq>`), each with a stable text form and a strict parser.
//!
//! Invariants:
//! - a `ClientId`'s generation comes from a hub-wide counter and is never
//!   reused, so a freed-and-reused slot has a different id (I4);
//! - the text forms round-trip: `id.to_string().parse() == Ok(id)`, and the
//!   parsers reject everything else (signs, spaces, leading zeros, overflow).

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

/// The handle of one client: its slot index and the generation that was
/// current when the slot was handed out.
///
/// Text form: `<index>.<generation>`, e.g. `3.17`.
///
/// # Examples
///
/// ```
/// use ssehub_core::ClientId;
///
/// let id: ClientId = "3.17".parse()?;
/// assert_eq!(id.index(), 3);
/// assert_eq!(id.to_string(), "3.17");
/// assert!("3.0".parse::<ClientId>().is_err());
/// # Ok::<(), ssehub_core::ParseIdError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    index: u32,
    generation: NonZeroU64,
}

impl ClientId {
    pub(crate) fn new(index: u32, generation: NonZeroU64) -> Self {
        Self { index, generation }
    }

    /// The slot index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The generation tag.
    pub fn generation(self) -> NonZeroU64 {
        self.generation
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.generation)
    }
}

impl FromStr for ClientId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (index, generation) = s.split_once('.').ok_or(ParseIdError::Malformed)?;
        let index = parse_decimal(index)?;
        let index = u32::try_from(index).map_err(|_| ParseIdError::OutOfRange)?;
        let generation = NonZeroU64::new(parse_decimal(generation)?).ok_or(ParseIdError::Zero)?;
        Ok(Self { index, generation })
    }
}

/// A hasher for maps keyed by [`ClientId`]: one multiply per word.
///
/// Client ids are handed out by the hub, never chosen by a peer, so the
/// hash-flooding resistance of SipHash buys nothing here, and its cost is
/// paid on every subscribe and unsubscribe. (Topic names, which peers do
/// choose, keep `std`'s SipHash.)
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing; the rotation spreads the high bits the
        // multiply produces into the low bits hashbrown indexes with.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Builds [`IdHasher`]s.
pub(crate) type IdHashBuilder = std::hash::BuildHasherDefault<IdHasher>;

/// The id of a published event: the hub's epoch and a hub-wide sequence
/// number. Text form `<epoch>-<seq>`, e.g. `1732500000000-42`.
///
/// # Examples
///
/// ```
/// use ssehub_core::EventId;
///
/// let id: EventId = "7-42".parse()?;
/// assert_eq!((id.epoch(), id.seq()), (7, 42));
/// assert!("7-".parse::<EventId>().is_err());
/// # Ok::<(), ssehub_core::ParseIdError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    epoch: u64,
    seq: u64,
}

impl EventId {
    /// An id from its parts.
    pub fn new(epoch: u64, seq: u64) -> Self {
        Self { epoch, seq }
    }

    /// The epoch of the hub instance that assigned it.
    pub fn epoch(self) -> u64 {
        self.epoch
    }

    /// The hub-wide sequence number.
    pub fn seq(self) -> u64 {
        self.seq
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.seq)
    }
}

impl FromStr for EventId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (epoch, seq) = s.split_once('-').ok_or(ParseIdError::Malformed)?;
        Ok(Self {
            epoch: parse_decimal(epoch)?,
            seq: parse_decimal(seq)?,
        })
    }
}

/// Why a [`ClientId`] or [`EventId`] text was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseIdError {
    /// Not two decimal numbers joined by the separator.
    Malformed,
    /// A number does not fit its type.
    OutOfRange,
    /// The generation is zero, which no hub ever hands out.
    Zero,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed id",
            Self::OutOfRange => "id number out of range",
            Self::Zero => "id generation is zero",
        })
    }
}

impl std::error::Error for ParseIdError {}

/// Canonical unsigned decimal: ASCII digits only, no sign, no leading zero
/// (except `0` itself), at most 20 digits.
fn parse_decimal(s: &str) -> Result<u64, ParseIdError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(ParseIdError::Malformed);
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return Err(ParseIdError::Malformed);
    }
    s.parse().map_err(|_| ParseIdError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_round_trips() {
        let id = ClientId::new(u32::MAX, NonZeroU64::new(u64::MAX).unwrap());
        assert_eq!(id.to_string().parse::<ClientId>(), Ok(id));
    }

    #[test]
    fn client_id_parser_rejects_garbage() {
        for bad in [
            "", ".", "1.", ".1", "1.2.3", "+1.2", "1.-2", " 1.2", "01.2", "1.02", "a.b",
        ] {
            assert_eq!(
                bad.parse::<ClientId>(),
                Err(ParseIdError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            "4294967296.1".parse::<ClientId>(),
            Err(ParseIdError::OutOfRange)
        );
        assert_eq!(
            "1.99999999999999999999".parse::<ClientId>(),
            Err(ParseIdError::OutOfRange)
        );
        assert_eq!("1.0".parse::<ClientId>(), Err(ParseIdError::Zero));
    }

    #[test]
    fn event_id_round_trips_and_rejects_garbage() {
        let id = EventId::new(1_732_500_000_000, 42);
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
        for bad in ["", "-", "1-", "-1", "1-2-3", "1_2", "x-1", "1- 2", "00-1"] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!(ParseIdError::Malformed.to_string(), "malformed id");
        assert_eq!(
            ParseIdError::OutOfRange.to_string(),
            "id number out of range"
        );
        assert_eq!(ParseIdError::Zero.to_string(), "id generation is zero");
    }

    #[test]
    fn id_hasher_tells_every_part_of_an_id_apart() {
        use std::collections::HashSet;
        use std::hash::{BuildHasher, Hasher};
        let build = IdHashBuilder::default();
        let mut seen = HashSet::new();
        for index in 0..64 {
            for generation in 1..=64 {
                let id = ClientId::new(index, NonZeroU64::new(generation).unwrap());
                assert!(seen.insert(build.hash_one(id)), "{id} collides");
            }
        }
        // Raw bytes are hashed byte by byte, in order.
        let hash_bytes = |bytes: &[u8]| {
            let mut hasher = build.build_hasher();
            hasher.write(bytes);
            hasher.finish()
        };
        let words: HashSet<u64> = [&b""[..], b"a", b"b", b"ab", b"ba", b"aa"]
            .into_iter()
            .map(hash_bytes)
            .collect();
        assert_eq!(words.len(), 6);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        #[test]
        fn ids_round_trip(index: u32, generation in 1u64.., epoch: u64, seq: u64) {
            let id = ClientId::new(index, NonZeroU64::new(generation).unwrap());
            proptest::prop_assert_eq!(id.to_string().parse::<ClientId>(), Ok(id));
            let event = EventId::new(epoch, seq);
            proptest::prop_assert_eq!(event.to_string().parse::<EventId>(), Ok(event));
        }

        #[test]
        fn parsers_accept_exactly_the_canonical_form(text in "\\PC{0,30}|[0-9.+-]{0,30}") {
            // Never panics; whatever parses prints back to the same text.
            if let Ok(id) = text.parse::<ClientId>() {
                proptest::prop_assert_eq!(id.to_string(), text.clone());
            }
            if let Ok(id) = text.parse::<EventId>() {
                proptest::prop_assert_eq!(id.to_string(), text);
            }
        }
    }
}
