//! The encoder: an [`Event`] builder and its `text/event-stream` framing.
//!
//! A frame is a sequence of `field: value` lines ended by a blank line.
//! `data` is split on CRLF, CR and LF into one `data:` line each, so any
//! string round-trips, including the empty string and trailing newlines.
//! Values that the decoder could not give back unchanged are refused:
//! [`EncodeError`] names which field and why.

use crate::ClientId;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::time::Duration;

/// One server-sent event, built field by field and encoded with
/// [`Event::encode`].
///
/// # Examples
///
/// ```
/// use ssehub_core::codec::Event;
///
/// let frame = Event::new("hello\nworld").with_event("greeting").to_bytes()?;
/// assert_eq!(&frame[..], b"event: greeting\ndata: hello\ndata: world\n\n");
/// # Ok::<(), ssehub_core::codec::EncodeError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    retry: Option<Duration>,
    comment: Option<String>,
}

/// Why an [`Event`] cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The `event` name contains CR or LF, which would end the field early.
    EventNameHasLineBreak,
    /// The `id` contains CR or LF, which would end the field early.
    IdHasLineBreak,
    /// The `id` contains NUL; decoders ignore such ids.
    IdHasNul,
    /// The encoded frame would exceed the caller's size limit.
    TooLarge {
        /// The encoded size in bytes.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EventNameHasLineBreak => f.write_str("event name contains CR or LF"),
            Self::IdHasLineBreak => f.write_str("event id contains CR or LF"),
            Self::IdHasNul => f.write_str("event id contains NUL"),
            Self::TooLarge { size, limit } => {
                write!(
                    f,
                    "encoded event is {size} bytes, over the limit of {limit}"
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}

impl Event {
    /// An event carrying `data` (which may contain any line breaks).
    pub fn new(data: impl Into<String>) -> Self {
        Self {
            data: Some(data.into()),
            ..Self::default()
        }
    }

    /// A frame with no data: only the fields set afterwards (for example a
    /// comment or a `retry:` hint). Decoders do not dispatch such a frame.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Sets the event type (`event:` field). Validated by [`Event::validate`].
    #[must_use]
    pub fn with_event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Sets the event id (`id:` field). Validated by [`Event::validate`].
    ///
    /// The hub assigns ids itself on publish and replaces this one.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the reconnection time hint (`retry:` field, in whole
    /// milliseconds: a fraction of a millisecond is dropped).
    #[must_use]
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Adds a comment (`:` lines), which decoders skip unless asked.
    #[must_use]
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// The `id` field, if set.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The `event` field, if set.
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The data, if set.
    pub fn data(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// The `retry` hint, if set.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// The comment, if set.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// Checks that every field can be encoded faithfully.
    ///
    /// # Errors
    ///
    /// [`EncodeError::EventNameHasLineBreak`], [`EncodeError::IdHasLineBreak`]
    /// or [`EncodeError::IdHasNul`].
    pub fn validate(&self) -> Result<(), EncodeError> {
        if let Some(id) = &self.id {
            validate_id(id)?;
        }
        if let Some(name) = &self.event {
            if has_line_break(name) {
                return Err(EncodeError::EventNameHasLineBreak);
            }
        }
        Ok(())
    }

    /// Appends this event's frame to `buf`.
    ///
    /// # Errors
    ///
    /// As [`Event::validate`]; nothing is written on error.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_with_id(self.id.as_deref(), buf)
    }

    /// Encodes this event into a fresh, shareable buffer.
    ///
    /// # Errors
    ///
    /// As [`Event::validate`].
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::with_capacity(self.encoded_len_hint(self.id.as_deref()));
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Encodes with `id` in place of the event's own id (the hub's path:
    /// ids are assigned at publish, without cloning the event).
    pub(crate) fn encode_with_id(
        &self,
        id: Option<&str>,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if let Some(id) = id {
            validate_id(id)?;
        }
        if let Some(name) = &self.event {
            if has_line_break(name) {
                return Err(EncodeError::EventNameHasLineBreak);
            }
        }
        buf.reserve(self.encoded_len_hint(id));
        if let Some(comment) = &self.comment {
            for line in split_lines(comment) {
                buf.put_u8(b':');
                if !line.is_empty() {
                    buf.put_u8(b' ');
                    buf.put_slice(line.as_bytes());
                }
                buf.put_u8(b'\n');
            }
        }
        if let Some(retry) = self.retry {
            put_retry(buf, retry);
        }
        if let Some(id) = id {
            put_field(buf, b"id", id.as_bytes());
        }
        if let Some(name) = &self.event {
            put_field(buf, b"event", name.as_bytes());
        }
        if let Some(data) = &self.data {
            for line in split_lines(data) {
                put_field(buf, b"data", line.as_bytes());
            }
        }
        buf.put_u8(b'\n');
        Ok(())
    }

    /// An upper bound on the encoded size, so encoding reserves once.
    pub(crate) fn encoded_len_hint(&self, id: Option<&str>) -> usize {
        // Per line: `data: ` + LF (7 bytes), `: ` + LF (3 bytes); a text has
        // at most one more line than it has CR and LF bytes.
        let lines = |s: &str| 1 + memchr::memchr2_iter(b'\r', b'\n', s.as_bytes()).count();
        let data = self.data.as_ref().map_or(0, |d| d.len() + 7 * lines(d));
        let comment = self.comment.as_ref().map_or(0, |c| c.len() + 3 * lines(c));
        let id = id.map_or(0, |i| i.len() + 5);
        let event = self.event.as_ref().map_or(0, |e| e.len() + 8);
        // `retry: ` + at most 23 digits (`Duration::MAX` in ms) + LF, and the
        // blank line.
        data + comment + id + event + 32
    }
}

/// A frame holding only a comment line, as used for heartbeats (`:\n\n` when
/// `text` is empty).
pub fn comment_frame(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 4);
    for line in split_lines(text) {
        buf.put_u8(b':');
        if !line.is_empty() {
            buf.put_u8(b' ');
            buf.put_slice(line.as_bytes());
        }
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

fn validate_id(id: &str) -> Result<(), EncodeError> {
    if has_line_break(id) {
        Err(EncodeError::IdHasLineBreak)
    } else if id.contains('\0') {
        Err(EncodeError::IdHasNul)
    } else {
        Ok(())
    }
}

fn has_line_break(s: &str) -> bool {
    s.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// Writes `name: value\n`; a value is separated by one space, which the
/// decoder strips, so values that start with a space survive.
fn put_field(buf: &mut BytesMut, name: &[u8], value: &[u8]) {
    buf.put_slice(name);
    if !value.is_empty() {
        buf.put_slice(b": ");
        buf.put_slice(value);
    }
    buf.put_u8(b'\n');
}

/// Splits on CRLF, CR and LF. Always yields at least one (maybe empty) line,
/// and a trailing break yields a trailing empty line, so that
/// `data:` lines joined with LF give back the input (line breaks normalised
/// to LF, as the decoder reports them).
fn split_lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr2(b'\r', b'\n', current.as_bytes()) {
            Some(pos) => {
                let skip = if current.as_bytes()[pos..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[pos + skip..]);
                Some(&current[..pos])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Writes `retry: <whole ms>\n`.
fn put_retry(buf: &mut BytesMut, retry: Duration) {
    // `retry: `, `u128::MAX`'s 39 digits, LF.
    let mut line = Backwards::<47>::new();
    line.put(b"\n");
    line.decimal_u128(retry.as_millis());
    line.put(b"retry: ");
    buf.put_slice(line.as_slice());
}

/// Writes `n` in decimal.
pub(crate) fn put_decimal(buf: &mut BytesMut, n: u64) {
    let mut digits = Backwards::<20>::new();
    digits.decimal(n);
    buf.put_slice(digits.as_slice());
}

/// A short run of bytes built on the stack from its end to its start, as
/// decimal digits come (lowest first), then copied into a frame in one
/// piece rather than a few bytes at a time.
///
/// # Panics
///
/// If more than `N` bytes are put: every caller's `N` is the longest run
/// its parts can make.
pub(crate) struct Backwards<const N: usize> {
    buf: [u8; N],
    start: usize,
}

impl<const N: usize> Backwards<N> {
    /// Nothing yet.
    pub(crate) fn new() -> Self {
        Self {
            buf: [0; N],
            start: N,
        }
    }

    /// Puts `bytes` before what is there.
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let start = self.start - bytes.len();
        self.buf[start..self.start].copy_from_slice(bytes);
        self.start = start;
    }

    /// Puts `n` in decimal (at most 20 digits) before what is there.
    pub(crate) fn decimal(&mut self, mut n: u64) {
        loop {
            self.start -= 1;
            self.buf[self.start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
    }

    /// Puts `n` in decimal (at most 39 digits) before what is there; a
    /// value that fits a `u64` (every real one) divides as `u64`, several
    /// times cheaper than `u128` division.
    fn decimal_u128(&mut self, mut n: u128) {
        while u64::try_from(n).is_err() {
            self.start -= 1;
            self.buf[self.start] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        // What is left fits a `u64` now.
        self.decimal(u64::try_from(n).unwrap_or(0));
    }

    /// What was put, in order.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// The frame that opens a stream and tells browser code its client id,
/// which it cannot read from the `Client-Id` response header:
/// `retry: <ms>` (when `retry` is given), `event: <event>` and
/// `data: {"clientId":"<id>"}`.
///
/// The bytes are those of encoding
/// `Event::new(json).with_event(event).with_retry(retry)` with that JSON,
/// built in one allocation, without a formatter or a JSON serializer: a
/// client id's text is digits and one dot, which JSON needs no escape
/// for. It sets no `id` and ends with a blank line, so it is a valid
/// direct frame (see [`Hub::send_frame`](crate::Hub::send_frame)).
///
/// # Errors
///
/// [`EncodeError::EventNameHasLineBreak`] if `event` holds a CR or LF.
///
/// # Examples
///
/// ```
/// use ssehub_core::codec::welcome_frame;
/// use std::time::Duration;
///
/// let id = "3.17".parse()?;
/// let frame = welcome_frame("welcome", Some(Duration::from_secs(3)), id)?;
/// assert_eq!(
///     &frame[..],
///     b"retry: 3000\nevent: welcome\ndata: {\"clientId\":\"3.17\"}\n\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn welcome_frame(
    event: &str,
    retry: Option<Duration>,
    id: ClientId,
) -> Result<Bytes, EncodeError> {
    if has_line_break(event) {
        return Err(EncodeError::EventNameHasLineBreak);
    }
    // The event line's end and the data line's start, in one piece.
    const HEAD: &[u8] = b"\ndata: {\"clientId\":\"";
    const TAIL: &[u8] = b"\"}\n\n";
    // The id's two numbers (10 + 20 digits), its dot and the tail.
    let mut id_tail = Backwards::<{ 10 + 1 + 20 + TAIL.len() }>::new();
    id_tail.put(TAIL);
    id_tail.decimal(id.generation().get());
    id_tail.put(b".");
    id_tail.decimal(u64::from(id.index()));
    // `retry: ` + 39 digits + LF; `event: ` + name; the head; the id.
    let mut buf = BytesMut::with_capacity(47 + 7 + event.len() + HEAD.len() + 35);
    if let Some(retry) = retry {
        put_retry(&mut buf, retry);
    }
    // As `put_field` writes it: no `: ` before an empty value.
    buf.put_slice(if event.is_empty() {
        b"event"
    } else {
        b"event: "
    });
    buf.put_slice(event.as_bytes());
    buf.put_slice(HEAD);
    buf.put_slice(id_tail.as_slice());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: &Event) -> String {
        String::from_utf8(e.to_bytes().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn retry_and_decimals_are_written_whole_at_both_ends_of_their_range() {
        for (ms, retry) in [
            (0u128, Duration::ZERO),
            (3_000, Duration::from_secs(3)),
            (u128::from(u64::MAX), Duration::from_millis(u64::MAX)),
            (Duration::MAX.as_millis(), Duration::MAX),
        ] {
            let frame = Event::empty().with_retry(retry).to_bytes().unwrap();
            assert_eq!(&frame[..], format!("retry: {ms}\n\n").as_bytes());
        }
        for n in [0, 9, 10, 1234567890, u64::MAX] {
            let mut buf = BytesMut::new();
            put_decimal(&mut buf, n);
            assert_eq!(&buf[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn data_lines_split_on_every_line_break() {
        assert_eq!(
            enc(&Event::new("a\r\nb\rc\nd")),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn empty_data_and_trailing_newline_are_kept() {
        assert_eq!(enc(&Event::new("")), "data\n\n");
        assert_eq!(enc(&Event::new("x\n")), "data: x\ndata\n\n");
    }

    #[test]
    fn leading_space_in_value_survives_the_strip() {
        assert_eq!(enc(&Event::new(" x")), "data:  x\n\n");
    }

    #[test]
    fn fields_are_validated() {
        assert_eq!(
            Event::new("x").with_event("a\nb").to_bytes(),
            Err(EncodeError::EventNameHasLineBreak)
        );
        assert_eq!(
            Event::new("x").with_id("1\r").to_bytes(),
            Err(EncodeError::IdHasLineBreak)
        );
        assert_eq!(
            Event::new("x").with_id("1\0").to_bytes(),
            Err(EncodeError::IdHasNul)
        );
    }

    #[test]
    fn retry_is_whole_milliseconds() {
        let e = Event::empty().with_retry(Duration::from_millis(1500));
        assert_eq!(enc(&e), "retry: 1500\n\n");
    }

    #[test]
    fn len_hint_is_an_upper_bound_even_for_many_short_lines() {
        let events = [
            Event::new("\n".repeat(100)),
            Event::new("\r\n".repeat(50)).with_comment("\r".repeat(70)),
            Event::new("").with_comment(""),
            Event::empty()
                .with_retry(Duration::MAX)
                .with_id("x".repeat(10))
                .with_event("e"),
            Event::new("a\rb\nc\r\nd".repeat(9)).with_event(""),
        ];
        for e in &events {
            let len = e.to_bytes().unwrap().len();
            assert!(e.encoded_len_hint(e.id()) >= len, "{e:?}: {len}");
        }
    }

    #[test]
    fn len_hint_bounds_every_field_even_beside_the_longest_retry() {
        // `retry:` with `Duration::MAX` uses up the hint's slack: each
        // field's own share must then cover it.
        let longest = Duration::MAX;
        let events = [
            Event::new("x").with_retry(longest),
            Event::new("").with_retry(longest),
            Event::new("x\ny\nz").with_retry(longest),
            Event::empty().with_comment("c").with_retry(longest),
            Event::empty().with_comment("c\nd\ne").with_retry(longest),
            Event::empty().with_event("e").with_retry(longest),
            Event::empty().with_id("i").with_retry(longest),
            Event::new("x\ny")
                .with_comment("c\nd")
                .with_event("e")
                .with_id("i")
                .with_retry(longest),
        ];
        for e in &events {
            let len = e.to_bytes().unwrap().len();
            assert!(e.encoded_len_hint(e.id()) >= len, "{e:?}: {len}");
        }
    }

    #[test]
    fn a_comment_is_written_before_the_fields() {
        let e = Event::new("x").with_comment("c");
        assert_eq!(e.comment(), Some("c"));
        assert_eq!(enc(&e), ": c\ndata: x\n\n");
    }

    #[test]
    fn comment_frame_is_a_bare_colon_for_heartbeats() {
        assert_eq!(&comment_frame("")[..], b":\n\n");
        assert_eq!(&comment_frame("a\nb")[..], b": a\n: b\n\n");
    }
}
