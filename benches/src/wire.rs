//! The load generator's minimal HTTP/1.1 and `text/event-stream` reading.
//!
//! The load generator keeps thousands of connections on the same two cores
//! as the server it measures, so its reader must cost little: no HTTP
//! client stack, no `String` per event. It parses the response head
//! ([`parse_response_head`]), undoes chunked transfer coding
//! ([`Dechunker`]) and hands the value of every `data:` line of each
//! complete event to a callback ([`SseScanner`]). It relies on what both
//! servers under test send (LF line ends, one `data:` line per event); the
//! full WHATWG decoder is `ssehub_core::codec::Decoder`, benched in
//! `benches/codec.rs`.
//!
//! Payloads carry a stamp, `"<seq> <nanos> <padding>"`, written by
//! [`write_stamp`] and read back by [`parse_stamp`]: the publish time in
//! nanoseconds since the load generator started, comparable because the
//! publisher and the readers share one process and one `Instant`.

use std::fmt;

/// Why a response could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The status line or a header was not valid HTTP/1.x.
    BadHead(String),
    /// A chunk size line was not hexadecimal.
    BadChunk,
    /// The response head grew past the limit without ending.
    HeadTooLarge,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHead(why) => write!(f, "malformed response head: {why}"),
            Self::BadChunk => f.write_str("malformed chunk size line"),
            Self::HeadTooLarge => f.write_str("response head larger than 64 KiB"),
        }
    }
}

impl std::error::Error for WireError {}

/// Longest response head accepted.
pub const MAX_HEAD: usize = 64 << 10;

/// The parts of a response head the load generator needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// `Content-Type`, if given.
    pub content_type: Option<String>,
    /// Bytes of the head, including the blank line; the body starts there.
    pub len: usize,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while it is
/// incomplete.
///
/// # Errors
///
/// [`WireError`] for a malformed or oversized head.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, WireError> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(WireError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| WireError::BadHead("not UTF-8".to_owned()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(WireError::BadHead(format!("status line {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| WireError::BadHead(format!("status line {status_line:?}")))?;
    let mut parsed = ResponseHead {
        status,
        chunked: false,
        content_length: None,
        content_type: None,
        len: end + 4,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(WireError::BadHead(format!("header {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("content-type") {
            parsed.content_type = Some(value.to_owned());
        }
    }
    Ok(Some(parsed))
}

/// Where a [`Dechunker`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk size line.
    Size,
    /// This many bytes of chunk data remain.
    Data(usize),
    /// This many bytes of the CRLF after a chunk's data remain.
    DataEnd(u8),
    /// The last (zero-sized) chunk was seen.
    Done,
}

/// Undoes `Transfer-Encoding: chunked`, fed arbitrary pieces.
#[derive(Clone, Debug)]
pub struct Dechunker {
    state: ChunkState,
    size_line: Vec<u8>,
}

impl Default for Dechunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Dechunker {
    /// A de-chunker at the start of a body.
    pub fn new() -> Self {
        Self {
            state: ChunkState::Size,
            size_line: Vec::new(),
        }
    }

    /// `true` once the terminating zero-sized chunk was read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Appends the payload bytes of `input` to `out`.
    ///
    /// # Errors
    ///
    /// [`WireError::BadChunk`] for a size line that is not hexadecimal.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        self.size_line.extend_from_slice(input);
                        if self.size_line.len() > 1024 {
                            return Err(WireError::BadChunk);
                        }
                        return Ok(());
                    };
                    self.size_line.extend_from_slice(&input[..nl]);
                    input = &input[nl + 1..];
                    let size = parse_chunk_size(&self.size_line)?;
                    self.size_line.clear();
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(remaining) => {
                    let n = remaining.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if n == remaining {
                        ChunkState::DataEnd(2)
                    } else {
                        ChunkState::Data(remaining - n)
                    };
                }
                ChunkState::DataEnd(left) => {
                    input = &input[1..];
                    self.state = if left == 1 {
                        ChunkState::Size
                    } else {
                        ChunkState::DataEnd(left - 1)
                    };
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, WireError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).map_err(|_| WireError::BadChunk)?;
    usize::from_str_radix(digits.trim(), 16).map_err(|_| WireError::BadChunk)
}

/// Splits a `text/event-stream` (LF line ends) into events and reports the
/// value of each `data:` line of every complete event.
#[derive(Clone, Debug, Default)]
pub struct SseScanner {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the blank line.
    scanned: usize,
    events: u64,
    comments: u64,
}

impl SseScanner {
    /// An empty scanner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Complete events seen (with or without data).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Comment-only frames seen (heartbeats).
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// Adds stream bytes, calling `on_data` with the value of every `data:`
    /// line of each event they complete.
    pub fn feed(&mut self, bytes: &[u8], mut on_data: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        let mut from = self.scanned.saturating_sub(1).max(start);
        while let Some(at) = find(&self.buf[from..], b"\n\n") {
            let end = from + at;
            let frame = &self.buf[start..end];
            let mut data = false;
            let mut comment = false;
            for line in frame.split(|&b| b == b'\n') {
                if let Some(value) = line.strip_prefix(b"data:") {
                    data = true;
                    on_data(value.strip_prefix(b" ").unwrap_or(value));
                } else if line.first() == Some(&b':') {
                    comment = true;
                }
            }
            if data {
                self.events += 1;
            } else if comment {
                self.comments += 1;
            } else {
                self.events += 1;
            }
            start = end + 2;
            from = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
    }
}

/// Writes a payload stamp: `"<seq> <nanos> "` followed by `pad` bytes of
/// `x`, so events of any size carry the same header.
pub fn write_stamp(out: &mut String, seq: u64, nanos: u64, pad: usize) {
    use std::fmt::Write as _;
    out.clear();
    let _ = write!(out, "{seq} {nanos} ");
    out.extend(std::iter::repeat_n('x', pad));
}

/// Reads a stamp written by [`write_stamp`]: `(seq, nanos)`.
pub fn parse_stamp(data: &[u8]) -> Option<(u64, u64)> {
    let mut parts = data.splitn(3, |&b| b == b' ');
    let seq = parse_u64(parts.next()?)?;
    let nanos = parse_u64(parts.next()?)?;
    Some((seq, nanos))
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_parsed() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nrest";
        let head = parse_response_head(raw).expect("valid").expect("complete");
        assert_eq!(head.status, 200);
        assert!(head.chunked);
        assert_eq!(head.content_type.as_deref(), Some("text/event-stream"));
        assert_eq!(&raw[head.len..], b"rest");
        assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert!(parse_response_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn chunks_split_anywhere_are_joined() {
        let body = b"7\r\ndata: a\r\n3;ext=1\r\n\n\nd\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut d = Dechunker::new();
            let mut out = Vec::new();
            d.feed(&body[..split], &mut out).expect("valid");
            d.feed(&body[split..], &mut out).expect("valid");
            assert_eq!(out, b"data: a\n\nd");
            assert!(d.is_done());
        }
        assert_eq!(
            Dechunker::new().feed(b"zz\r\n", &mut Vec::new()),
            Err(WireError::BadChunk)
        );
    }

    #[test]
    fn events_split_anywhere_are_found() {
        let stream = b"id: 1\ndata: 1 20 xx\n\n:\n\nevent: e\ndata: 2 30 \n\n";
        for split in 0..stream.len() {
            let mut s = SseScanner::new();
            let mut seen = Vec::new();
            s.feed(&stream[..split], |d| seen.push(parse_stamp(d)));
            s.feed(&stream[split..], |d| seen.push(parse_stamp(d)));
            assert_eq!(seen, [Some((1, 20)), Some((2, 30))], "split at {split}");
            assert_eq!((s.events(), s.comments()), (2, 1));
        }
    }

    #[test]
    fn stamps_round_trip() {
        let mut s = String::new();
        write_stamp(&mut s, 42, 123_456, 5);
        assert_eq!(s, "42 123456 xxxxx");
        assert_eq!(parse_stamp(s.as_bytes()), Some((42, 123_456)));
        assert_eq!(parse_stamp(b"x 1"), None);
    }
}
