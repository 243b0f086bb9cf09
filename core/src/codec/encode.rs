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
    buf.put_slice(b"retry: ");
    put_decimal_u128(buf, retry.as_millis());
    buf.put_u8(b'\n');
}

/// Writes `n` in decimal.
pub(crate) fn put_decimal(buf: &mut BytesMut, n: u64) {
    put_decimal_u128(buf, u128::from(n));
}

/// Writes `n` in decimal, from a stack buffer; values that fit a `u64`
/// (every real `retry:` hint) divide as `u64`, which is several times
/// cheaper than `u128` division.
fn put_decimal_u128(buf: &mut BytesMut, n: u128) {
    // `u128::MAX` has 39 digits.
    let mut digits = [0u8; 39];
    let mut at = digits.len();
    let mut push = |digit: u8| {
        at -= 1;
        digits[at] = b'0' + digit;
    };
    match u64::try_from(n) {
        Ok(mut small) => loop {
            push((small % 10) as u8);
            small /= 10;
            if small == 0 {
                break;
            }
        },
        Err(_) => {
            let mut big = n;
            loop {
                push((big % 10) as u8);
                big /= 10;
                if big == 0 {
                    break;
                }
            }
        }
    }
    buf.put_slice(&digits[at..]);
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
    const HEAD: &[u8] = b"data: {\"clientId\":\"";
    const TAIL: &[u8] = b"\"}\n\n";
    // `retry: ` + 39 digits + LF; `event: ` + name + LF; the id's two
    // numbers (10 + 20 digits) and its dot.
    let mut buf = BytesMut::with_capacity(47 + 8 + event.len() + HEAD.len() + 31 + TAIL.len());
    if let Some(retry) = retry {
        put_retry(&mut buf, retry);
    }
    put_field(&mut buf, b"event", event.as_bytes());
    buf.put_slice(HEAD);
    put_decimal(&mut buf, u64::from(id.index()));
    buf.put_u8(b'.');
    put_decimal(&mut buf, id.generation().get());
    buf.put_slice(TAIL);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: &Event) -> String {
        String::from_utf8(e.to_bytes().unwrap().to_vec()).unwrap()
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
