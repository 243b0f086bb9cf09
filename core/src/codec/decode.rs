//! The incremental decoder: `text/event-stream` bytes → [`Frame`]s, following
//! the WHATWG HTML "server-sent events" parsing and interpretation rules.
//!
//! Feed the [`Decoder`] byte chunks as they arrive, split anywhere (inside a
//! line, inside a CRLF pair, inside a UTF-8 sequence or the BOM), and pull the
//! frames it completed with [`Decoder::next_frame`] (or feed and iterate in
//! one go with [`Decoder::decode`]).
//!
//! # What the rules say, and what this decoder does
//!
//! - One leading UTF-8 byte order mark is stripped; a later one is content.
//! - Lines end with CRLF, LF or a lone CR, also when the CR ends one chunk and
//!   the LF starts the next.
//! - A line starting with `:` is a comment: ignored, or reported as
//!   [`Frame::Comment`] when [`Decoder::with_comments`] asked for it.
//! - `name: value` splits at the first colon and strips one leading space
//!   from the value; a line without a colon is a field name with an empty
//!   value. Unknown field names are ignored.
//! - `event` sets the event type, `data` appends the value and a LF to the data
//!   buffer, `id` sets the last event id buffer unless the value contains NUL,
//!   `retry` made of ASCII digits only is reported at once as
//!   [`Frame::Retry`] (other values are ignored).
//! - A blank line dispatches: the last event id becomes the id buffer's value
//!   (it persists across events), then, if the data buffer is empty, nothing
//!   is dispatched (but a changed last event id is reported as
//!   [`Frame::LastEventId`]); otherwise one trailing LF is removed and a
//!   [`Frame::Event`] is produced, with type `message` unless an `event` field
//!   said otherwise. The event type and data buffers are then cleared.
//! - Bytes are decoded as UTF-8 with replacement (U+FFFD for each maximal
//!   invalid subsequence). Decoding each field separately is equivalent to
//!   decoding the whole stream, because CR, LF, `:` and space are ASCII and
//!   never part of a multi-byte sequence.
//! - An incomplete event at the end of the stream is discarded: there is no
//!   `finish` step.
//!
//! # Invariants
//!
//! - **Bounded memory.** The pending-line buffer never holds more than
//!   [`Decoder::max_line_len`] bytes, whatever the size of the chunk fed;
//!   the data buffer never holds more than [`Decoder::max_event_len`] + 1
//!   bytes (the +1 is the trailing LF the dispatch removes). A line or an
//!   event over its limit is a [`DecodeError`], never an allocation.
//! - **Order.** Frames come out in stream order. A `retry` is reported when
//!   its line is read, not when the event ends, as the spec applies it at
//!   once.
//! - **Failure is final.** After a [`DecodeError`] the decoder ignores further
//!   input and frees its buffers; [`Decoder::next_frame`] first returns the
//!   frames completed before the offending line, then the error on every
//!   call. Decode a new connection with a new `Decoder`.
//! - No input makes the decoder panic.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// The default [`Decoder::max_line_len`]: 1 MiB.
pub const DEFAULT_MAX_LINE_LEN: usize = 1 << 20;

/// The default [`Decoder::max_event_len`]: 4 MiB.
pub const DEFAULT_MAX_EVENT_LEN: usize = 4 << 20;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A dispatched event, as a browser's `MessageEvent` would carry it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageEvent {
    /// The event type: the last `event` field of the block, or `"message"`
    /// when there was none (or it was empty).
    pub event: String,
    /// The `data` lines of the block joined with LF (any line break in the
    /// original data comes back as LF).
    pub data: String,
    /// The last event id string at dispatch: the most recent `id` field of
    /// this stream (or of an earlier event), `""` if none was seen. This is
    /// the value to send as `Last-Event-ID` when reconnecting.
    pub last_event_id: String,
}

/// One item decoded from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// A blank line ended a block with data: an event to deliver.
    Event(MessageEvent),
    /// A `retry` field: the server's reconnection time. It applies at once,
    /// whether or not its block is dispatched.
    Retry(Duration),
    /// A blank line ended a block without data that changed the last event id
    /// (for example a lone `id: 42`). Nothing is delivered, but the id a
    /// reconnect must send is now this one.
    LastEventId(String),
    /// A comment line's text, one leading space stripped. Only reported when
    /// [`Decoder::with_comments`] is on.
    Comment(String),
}

/// Why a [`Decoder`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A line (without its line break) was longer than the limit in bytes.
    LineTooLong {
        /// The [`Decoder::max_line_len`] that was exceeded.
        limit: usize,
    },
    /// An event's data was longer than the limit in bytes.
    EventTooLarge {
        /// The [`Decoder::max_event_len`] that was exceeded.
        limit: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { limit } => {
                write!(
                    f,
                    "event stream line longer than the limit of {limit} bytes"
                )
            }
            Self::EventTooLarge { limit } => {
                write!(f, "event data larger than the limit of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Where the decoder is in stripping the leading byte order mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bom {
    /// This many bytes of the BOM have been seen at the very start.
    Checking(usize),
    /// Stripped, or the stream did not start with one.
    Done,
}

/// An incremental `text/event-stream` decoder for one connection.
///
/// # Examples
///
/// ```
/// use ssehub_core::codec::{Decoder, Frame};
///
/// let mut decoder = Decoder::new();
/// decoder.feed(b"id: 7\r\nevent: greet\r\ndata: hel");
/// assert_eq!(decoder.next_frame()?, None); // the event is not complete yet
/// decoder.feed(b"lo\r");
/// decoder.feed(b"\n\r\n");
/// match decoder.next_frame()? {
///     Some(Frame::Event(event)) => {
///         assert_eq!(event.event, "greet");
///         assert_eq!(event.data, "hello");
///         assert_eq!(event.last_event_id, "7");
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// assert_eq!(decoder.next_frame()?, None);
/// # Ok::<(), ssehub_core::codec::DecodeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    max_line_len: usize,
    max_event_len: usize,
    comments: bool,
    bom: Bom,
    /// The previous chunk ended with CR: a LF starting the next one belongs
    /// to the same line break.
    after_cr: bool,
    /// The incomplete last line of the input so far (≤ `max_line_len`).
    line: Vec<u8>,
    data: String,
    event_type: String,
    id_buffer: String,
    last_event_id: String,
    frames: VecDeque<Frame>,
    error: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the default limits ([`DEFAULT_MAX_LINE_LEN`],
    /// [`DEFAULT_MAX_EVENT_LEN`]) that skips comments.
    pub fn new() -> Self {
        Self {
            max_line_len: DEFAULT_MAX_LINE_LEN,
            max_event_len: DEFAULT_MAX_EVENT_LEN,
            comments: false,
            bom: Bom::Checking(0),
            after_cr: false,
            line: Vec::new(),
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            frames: VecDeque::new(),
            error: None,
        }
    }

    /// Sets the longest line accepted, in bytes, without its line break
    /// (field name and colon included).
    #[must_use]
    pub fn with_max_line_len(mut self, limit: usize) -> Self {
        self.max_line_len = limit;
        self
    }

    /// Sets the largest event data accepted, in bytes (after UTF-8 decoding,
    /// lines joined with LF).
    #[must_use]
    pub fn with_max_event_len(mut self, limit: usize) -> Self {
        self.max_event_len = limit;
        self
    }

    /// Reports comment lines as [`Frame::Comment`] (off by default, as in
    /// browsers). Useful for liveness checks on heartbeats.
    #[must_use]
    pub fn with_comments(mut self, on: bool) -> Self {
        self.comments = on;
        self
    }

    /// Starts the stream with this last event id instead of `""`.
    ///
    /// The spec starts each connection's buffer empty, so an event without
    /// `id` on a new connection reports `""`. Browsers carry the id over a
    /// reconnect, and a reconnecting client should do the same: seed each new
    /// connection's decoder with the id it sent as `Last-Event-ID`.
    #[must_use]
    pub fn with_last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = id.into();
        self.id_buffer.clone_from(&self.last_event_id);
        self
    }

    /// The line length limit in bytes.
    pub fn max_line_len(&self) -> usize {
        self.max_line_len
    }

    /// The event data size limit in bytes.
    pub fn max_event_len(&self) -> usize {
        self.max_event_len
    }

    /// The last event id string: the id of the last dispatch point (blank
    /// line) so far, `""` if none.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The error that stopped this decoder, if any.
    pub fn error(&self) -> Option<DecodeError> {
        self.error
    }

    /// Consumes a chunk of the stream, queueing the frames it completes.
    ///
    /// Memory stays bounded whatever the chunk's size: a partial line is
    /// kept only up to [`Decoder::max_line_len`]. After an error the chunk
    /// is ignored.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Bom::Checking(seen) = self.bom {
            chunk = self.strip_bom(seen, chunk);
        }
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while !chunk.is_empty() {
            let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.push_partial(chunk);
                return;
            };
            let (content, rest) = chunk.split_at(end);
            let break_is_cr = rest[0] == b'\r';
            chunk = &rest[1..];
            if break_is_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.line.is_empty() {
                if content.len() > self.max_line_len {
                    self.fail(DecodeError::LineTooLong {
                        limit: self.max_line_len,
                    });
                } else {
                    self.process_line(content);
                }
            } else {
                self.push_partial(content);
                if self.error.is_none() {
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line);
                    if self.error.is_none() {
                        // Keep the allocation (it is at most `max_line_len`).
                        self.line = line;
                        self.line.clear();
                    }
                }
            }
            if self.error.is_some() {
                return;
            }
        }
    }

    /// The next decoded frame, if one is complete.
    ///
    /// # Errors
    ///
    /// Once the frames completed before a failure have been returned, the
    /// [`DecodeError`] that stopped the decoder, on this and every later call.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        match self.frames.pop_front() {
            Some(frame) => Ok(Some(frame)),
            None => self.error.map_or(Ok(None), Err),
        }
    }

    /// Feeds `chunk` and iterates over the frames now complete.
    ///
    /// The iterator ends after the first error. Frames it does not pull stay
    /// queued for [`Decoder::next_frame`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ssehub_core::codec::{Decoder, Frame};
    ///
    /// let mut decoder = Decoder::new();
    /// let mut data = Vec::new();
    /// for chunk in [&b"data: a\n\nda"[..], b"ta: b\n", b"\n"] {
    ///     for frame in decoder.decode(chunk) {
    ///         if let Frame::Event(event) = frame? {
    ///             data.push(event.data);
    ///         }
    ///     }
    /// }
    /// assert_eq!(data, ["a", "b"]);
    /// # Ok::<(), ssehub_core::codec::DecodeError>(())
    /// ```
    pub fn decode(&mut self, chunk: &[u8]) -> Frames<'_> {
        self.feed(chunk);
        Frames {
            decoder: self,
            done: false,
        }
    }

    /// Consumes what it can of a possible BOM at the very start of the
    /// stream; returns the rest of the chunk.
    fn strip_bom<'c>(&mut self, mut seen: usize, chunk: &'c [u8]) -> &'c [u8] {
        let mut rest = chunk;
        while let Some((&byte, tail)) = rest.split_first() {
            if byte != BOM[seen] {
                // Not a BOM: the bytes taken for one are line content.
                self.bom = Bom::Done;
                self.push_partial(&BOM[..seen]);
                return rest;
            }
            seen += 1;
            rest = tail;
            if seen == BOM.len() {
                self.bom = Bom::Done;
                return rest;
            }
        }
        self.bom = Bom::Checking(seen);
        rest
    }

    /// Appends part of a line that is not complete yet, within the limit.
    fn push_partial(&mut self, part: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.line.len() + part.len() > self.max_line_len {
            self.fail(DecodeError::LineTooLong {
                limit: self.max_line_len,
            });
        } else {
            self.line.extend_from_slice(part);
        }
    }

    fn process_line(&mut self, line: &[u8]) {
        let Some((&first, after_first)) = line.split_first() else {
            self.dispatch();
            return;
        };
        if first == b':' {
            if self.comments {
                let text = strip_one_space(after_first);
                self.frames.push_back(Frame::Comment(lossy(text)));
            }
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => (&line[..colon], strip_one_space(&line[colon + 1..])),
            None => (line, &[][..]),
        };
        match name {
            b"event" => set_lossy(&mut self.event_type, value),
            b"data" => {
                let value = String::from_utf8_lossy(value);
                if self.data.len() + value.len() > self.max_event_len {
                    self.fail(DecodeError::EventTooLarge {
                        limit: self.max_event_len,
                    });
                } else {
                    self.data.push_str(&value);
                    self.data.push('\n');
                }
            }
            b"id" if !value.contains(&0) => set_lossy(&mut self.id_buffer, value),
            b"retry" => {
                if let Some(retry) = parse_retry(value) {
                    self.frames.push_back(Frame::Retry(retry));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let id_changed = self.last_event_id != self.id_buffer;
        if id_changed {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        if self.data.is_empty() {
            self.event_type.clear();
            if id_changed {
                self.frames
                    .push_back(Frame::LastEventId(self.last_event_id.clone()));
            }
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let event = if self.event_type.is_empty() {
            String::from("message")
        } else {
            std::mem::take(&mut self.event_type)
        };
        self.frames.push_back(Frame::Event(MessageEvent {
            event,
            data: std::mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        }));
    }

    fn fail(&mut self, error: DecodeError) {
        self.error = Some(error);
        self.line = Vec::new();
        self.data = String::new();
        self.event_type = String::new();
    }
}

/// The frames a [`Decoder::decode`] call completed. Ends after the first
/// error.
#[derive(Debug)]
pub struct Frames<'a> {
    decoder: &'a mut Decoder,
    done: bool,
}

impl Iterator for Frames<'_> {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.decoder.next_frame() {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

impl std::iter::FusedIterator for Frames<'_> {}

fn strip_one_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn set_lossy(target: &mut String, bytes: &[u8]) {
    target.clear();
    target.push_str(&String::from_utf8_lossy(bytes));
}

/// A `retry` value: ASCII digits only (at least one), in milliseconds.
/// Values beyond [`Duration::MAX`] saturate.
fn parse_retry(value: &[u8]) -> Option<Duration> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let millis = value.iter().fold(0u128, |acc, &digit| {
        acc.saturating_mul(10)
            .saturating_add(u128::from(digit - b'0'))
    });
    let nanos = ((millis % 1000) as u32) * 1_000_000;
    Some(match u64::try_from(millis / 1000) {
        Ok(secs) => Duration::new(secs, nanos),
        Err(_) => Duration::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(decoder: &mut Decoder) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            out.push(frame);
        }
        out
    }

    fn decode_all(input: &[u8]) -> Vec<Frame> {
        let mut decoder = Decoder::new();
        decoder.feed(input);
        frames(&mut decoder)
    }

    fn event(event: &str, data: &str, id: &str) -> Frame {
        Frame::Event(MessageEvent {
            event: event.into(),
            data: data.into(),
            last_event_id: id.into(),
        })
    }

    #[test]
    fn bom_split_over_chunks_is_stripped() {
        let mut decoder = Decoder::new();
        decoder.feed(b"\xEF");
        decoder.feed(b"\xBB");
        decoder.feed(b"\xBFdata: x\n\n");
        assert_eq!(frames(&mut decoder), [event("message", "x", "")]);
    }

    #[test]
    fn partial_bom_is_line_content() {
        // "\xEF\xBB" then "data" makes an unknown field name: ignored.
        let mut decoder = Decoder::new();
        decoder.feed(b"\xEF\xBB");
        decoder.feed(b"data: x\n\ndata: y\n\n");
        assert_eq!(frames(&mut decoder), [event("message", "y", "")]);
    }

    #[test]
    fn bom_prefix_counts_toward_the_line_limit() {
        let mut decoder = Decoder::new().with_max_line_len(1);
        decoder.feed(b"\xEF\xBB");
        decoder.feed(b"x");
        assert_eq!(
            decoder.next_frame(),
            Err(DecodeError::LineTooLong { limit: 1 })
        );
    }

    #[test]
    fn retry_parsing() {
        assert_eq!(parse_retry(b"1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry(b"0"), Some(Duration::ZERO));
        assert_eq!(parse_retry(b""), None);
        assert_eq!(parse_retry(b"1.5"), None);
        assert_eq!(parse_retry(b"-1"), None);
        assert_eq!(parse_retry(b" 1"), None);
        assert_eq!(parse_retry(&[b'9'; 100]), Some(Duration::MAX));
        assert_eq!(
            parse_retry(b"18446744073709551615999"),
            Some(Duration::new(u64::MAX, 999_000_000))
        );
    }

    #[test]
    fn failure_frees_buffers_and_ignores_input() {
        let mut decoder = Decoder::new().with_max_event_len(4);
        decoder.feed(b"data: 1\n\ndata: abc\ndata: d");
        decoder.feed(b"\n\ndata: 2\n\n");
        assert_eq!(decoder.line.capacity(), 0);
        assert_eq!(decoder.data.capacity(), 0);
        assert_eq!(decoder.next_frame(), Ok(Some(event("message", "1", ""))));
        let err = DecodeError::EventTooLarge { limit: 4 };
        assert_eq!(decoder.next_frame(), Err(err));
        assert_eq!(decoder.next_frame(), Err(err));
        assert_eq!(decoder.error(), Some(err));
    }

    #[test]
    fn decode_all_helper_smoke() {
        assert_eq!(decode_all(b"data:x\n\n"), [event("message", "x", "")]);
    }

    /// Makes the bytes the parser cares about frequent (generating a plain
    /// byte vector and mapping it is much cheaper than a weighted union).
    fn bias(byte: u8) -> u8 {
        const SPECIAL: &[u8] = b"\n\n\r: \0";
        match byte {
            0..=47 => SPECIAL[usize::from(byte) % SPECIAL.len()],
            _ => byte,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Arbitrary bytes in arbitrary chunks: no panic, and the buffers
        /// stay within their limits after every chunk.
        #[test]
        fn arbitrary_input_keeps_buffers_within_limits(
            input in proptest::collection::vec(any::<u8>(), 0..600)
                .prop_map(|bytes| bytes.into_iter().map(bias).collect::<Vec<u8>>()),
            cuts in proptest::collection::vec(1usize..40, 0..60),
            max_line in 0usize..48,
            max_event in 0usize..96,
            comments in any::<bool>(),
            prefix in prop_oneof![Just(&b""[..]), Just(&b"data"[..]), Just(&b"retry: "[..])],
        ) {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&input);
            let mut decoder = Decoder::new()
                .with_max_line_len(max_line)
                .with_max_event_len(max_event)
                .with_comments(comments);
            let mut rest = &bytes[..];
            let mut cuts = cuts.into_iter();
            while !rest.is_empty() {
                let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                decoder.feed(chunk);
                prop_assert!(decoder.line.len() <= max_line);
                prop_assert!(decoder.line.capacity() <= max_line.max(8) * 2);
                prop_assert!(decoder.data.len() <= max_event + 1);
                prop_assert!(decoder.event_type.len() <= 3 * max_line);
                prop_assert!(decoder.id_buffer.len() <= 3 * max_line);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(Frame::Event(e))) => prop_assert!(e.data.len() <= max_event),
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }

        /// One chunk or many: the same frames, the same error.
        #[test]
        fn chunking_does_not_change_the_result(
            input in proptest::collection::vec(
                prop_oneof![
                    3 => proptest::sample::select(b"data:id:event:retry: 12\n\r\xEF\xBB\xBF\x00x".to_vec()),
                    1 => any::<u8>(),
                ],
                0..300,
            ),
            cut in 1usize..16,
        ) {
            let collect = |decoder: &mut Decoder| {
                let mut out = Vec::new();
                loop {
                    match decoder.next_frame() {
                        Ok(Some(frame)) => out.push(Ok(frame)),
                        Ok(None) => break,
                        Err(e) => { out.push(Err(e)); break; }
                    }
                }
                out
            };
            let mut whole = Decoder::new().with_max_line_len(24).with_comments(true);
            whole.feed(&input);
            let expected = collect(&mut whole);
            let mut split = Decoder::new().with_max_line_len(24).with_comments(true);
            for chunk in input.chunks(cut) {
                split.feed(chunk);
            }
            prop_assert_eq!(collect(&mut split), expected);
        }
    }
}
