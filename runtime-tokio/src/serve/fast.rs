//! The HTTP/1 fast path for SSE streams: an idle stream costs its socket,
//! a small task and the hub's own client state, not hyper's per-connection
//! buffers (an 8 KiB read buffer and an 8 KiB head buffer that live as long
//! as the connection; see "Lean connections" in `benches/RESULTS.md`).
//!
//! A connection's first request head is read here (into a buffer dropped
//! once the head is parsed) and parsed with `httparse`. A plain HTTP/1.1
//! `GET` without a body, upgrade, `Expect` or `Connection` other than
//! `keep-alive` is offered to the server's [`StreamRoute`]; when the route
//! takes it, its response is written here: the head by hand (with `date`,
//! and `transfer-encoding: chunked` or `content-length`), then every body
//! frame as one vectored write of chunk-size line, data and CRLF.
//!
//! Everything else goes to hyper, with the bytes already read handed over
//! first ([`Rewind`], invariant REWIND-ORDER): another method or route,
//! HTTP/1.0, HTTP/2 (whose preface `httparse` refuses), a head larger than
//! [`MAX_HEAD`], anything that does not parse. After a response written
//! here, a keep-alive connection goes to hyper too, with whatever the peer
//! sent meanwhile.
//!
//! Invariants (the hyper path keeps the same ones):
//!
//! - **FAST-FLUSH** the body is polled for its next frame only once the
//!   previous frame has been written to the socket in full, so the body's
//!   flush report (see [`crate::body`]) is proof of progress; a peer that
//!   stops reading blocks the write, and the transport's write timeout
//!   ([`crate::io`]) ends the connection.
//! - **FAST-EOF** while a stream is open the socket is read (into a stack
//!   buffer), so a peer that closes is seen at once and its body dropped
//!   (the client is closed as `ClientGone`, or `WriteError` when a write
//!   had failed). Bytes the peer sends meanwhile are kept, up to
//!   [`MAX_LEFTOVER`], for hyper; past that the socket is no longer read.
//! - **W1** holds: the request is in flight (watchdog) from its head until
//!   its body is dropped; the request-head deadline and eviction bound the
//!   wait for the head as on the hyper path.
//! - On drain, a stream in flight is completed (as hyper completes an
//!   in-flight HTTP/1 response), then the connection is closed.

use super::rewind::Rewind;
use super::watchdog::Expired;
use super::Connection;
use crate::endpoint::ConnInfo;
use crate::io::{TrackedIo, WriteTracker};
use crate::respond::BoxBody;
use bytes::Bytes;
use http::request::Parts;
use http::{header, Response};
use http_body::Body;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The server's stream routes, offered every request the fast path can
/// serve: `Some(response)` to answer it here, `None` to leave it to the
/// regular handler (through hyper). It must not act on a request it
/// declines.
pub type StreamRoute = Arc<dyn Fn(&Parts, &ConnInfo) -> Option<Response<BoxBody>> + Send + Sync>;

/// A request head larger than this goes to hyper (which applies its own
/// limit).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Bytes received during a stream kept for hyper; past this the socket is
/// not read until the stream ends.
pub(crate) const MAX_LEFTOVER: usize = 4 * 1024;
/// First read of a request head: most heads fit.
const FIRST_READ: usize = 1024;
/// Headers `httparse` accepts here; more goes to hyper.
const MAX_HEADERS: usize = 48;

/// What becomes of the connection after the fast path.
pub(super) enum Next<I> {
    /// Nothing more: it was closed (or is to be dropped).
    Closed,
    /// hyper serves the rest, from these bytes on.
    Hyper(Rewind<TrackedIo<I>>),
}

/// What the head read so far says.
#[derive(Debug)]
enum Parsed {
    /// Not complete yet.
    Partial,
    /// A request the fast path may take: its head, and its length.
    Eligible(Box<Parts>, usize),
    /// For hyper.
    Other,
}

/// Parses the head in `buf` (see the module docs for what is eligible).
fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if request.method != Some("GET") || request.version != Some(1) {
        return Parsed::Other;
    }
    let Some(path) = request.path else {
        return Parsed::Other;
    };
    let mut builder = http::Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .version(http::Version::HTTP_11);
    for h in request.headers.iter() {
        let plain = if h.name.eq_ignore_ascii_case("content-length") {
            h.value == b"0"
        } else if h.name.eq_ignore_ascii_case("connection") {
            h.value.eq_ignore_ascii_case(b"keep-alive")
        } else {
            !(h.name.eq_ignore_ascii_case("transfer-encoding")
                || h.name.eq_ignore_ascii_case("upgrade")
                || h.name.eq_ignore_ascii_case("expect"))
        };
        if !plain {
            return Parsed::Other;
        }
        builder = builder.header(h.name, h.value);
    }
    match builder.body(()) {
        Ok(request) => Parsed::Eligible(Box::new(request.into_parts().0), len),
        Err(_) => Parsed::Other,
    }
}

/// The response head as hyper would write it: status line, the headers,
/// `date` unless set, then the framing header.
fn encode_head(parts: &http::response::Parts, length: Option<u64>) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("<none>")
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match length {
        Some(length) => {
            head.extend_from_slice(b"content-length: ");
            head.extend_from_slice(length.to_string().as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Writes every byte of `bufs` (empty ones allowed), vectored.
async fn write_all<W: AsyncWrite + Unpin>(io: &mut W, mut bufs: [&[u8]; 3]) -> io::Result<()> {
    let mut first = 0;
    loop {
        while first < bufs.len() && bufs[first].is_empty() {
            first += 1;
        }
        if first == bufs.len() {
            return Ok(());
        }
        let slices = [
            IoSlice::new(bufs[0]),
            IoSlice::new(bufs[1]),
            IoSlice::new(bufs[2]),
        ];
        let mut n =
            poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, &slices[first..])).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let buf = bufs[first];
            let take = n.min(buf.len());
            bufs[first] = &buf[take..];
            n -= take;
            if bufs[first].is_empty() {
                first += 1;
            }
        }
    }
}

/// The chunk-size line of a `len`-byte chunk, in `line`; returns its
/// length.
fn chunk_line(len: usize, line: &mut [u8; 20]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in line[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[(len >> shift) & 0xf];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    digits + 2
}

/// Reads what the peer sends during a stream into `kept` (FAST-EOF):
/// `Ok(0)` at EOF. The read buffer lives on the stack of one poll only.
async fn watch_read<I: AsyncRead + Unpin>(io: &mut I, kept: &mut Vec<u8>) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut stack = [0u8; 512];
        let room = MAX_LEFTOVER.saturating_sub(kept.len()).min(stack.len());
        let mut buf = ReadBuf::new(&mut stack[..room.max(1)]);
        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                kept.extend_from_slice(buf.filled());
                Poll::Ready(Ok(buf.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// What the first bytes of a connection are.
enum Head {
    /// A request the fast path may take: its head, the head's length, and
    /// the bytes read (the head and what followed it).
    Eligible(Box<Parts>, usize, Vec<u8>),
    /// For hyper, with the bytes read.
    Other(Vec<u8>),
    /// Closed, timed out, evicted, or told to finish before a head came.
    Closed,
}

/// Reads the connection's first request head, within the request-head
/// deadline (and until eviction or drain).
async fn read_head<I: AsyncRead + Unpin>(conn: &mut Connection, io: &mut TrackedIo<I>) -> Head {
    let peer = conn.peer;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.reserve(if buf.is_empty() {
            FIRST_READ
        } else {
            buf.len()
        });
        let read = tokio::select! {
            read = tokio::io::AsyncReadExt::read_buf(io, &mut buf) => read,
            expired = conn.activity.expired(conn.head_deadline, None) => {
                match expired {
                    Expired::Evicted => tracing::debug!(%peer, "evicted to make room: dropping the connection"),
                    _ => tracing::debug!(%peer, "no request head in time: dropping the connection"),
                }
                return Head::Closed;
            }
            _ = conn.finishing.wait_for(|finish| *finish) => return Head::Closed,
        };
        match read {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(_) => {}
        }
        match parse(&buf) {
            Parsed::Partial if buf.len() < MAX_HEAD => {}
            Parsed::Partial | Parsed::Other => return Head::Other(buf),
            Parsed::Eligible(request, len) => return Head::Eligible(request, len, buf),
        }
    }
}

/// Serves the connection's first request if it is a stream request the
/// route takes (see the module docs), and says what happens next.
pub(super) async fn serve<I>(
    conn: &mut Connection,
    mut io: TrackedIo<I>,
    tracker: &WriteTracker,
    route: &StreamRoute,
) -> Next<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let peer = conn.peer;
    // Boxed: the head phase's timers and buffers are needed once, and
    // would otherwise size the task of every idle stream.
    let head = Box::pin(read_head(conn, &mut io)).await;
    // The request and response heads live in this block only, so that
    // they take no room in the future across the stream's awaits.
    let (in_flight, mut body, length, head, mut kept) = {
        let (request, len, mut buf) = match head {
            Head::Eligible(request, len, buf) => (request, len, buf),
            Head::Other(buf) => return Next::Hyper(Rewind::new(io, buf.into())),
            Head::Closed => return Next::Closed,
        };
        // W1: in flight from the head until the body is dropped.
        let in_flight = conn.activity.begin();
        let info = ConnInfo {
            peer: Some(peer),
            tracker: Some(tracker.clone()),
        };
        let Some(response) = route(&request, &info) else {
            drop(in_flight);
            return Next::Hyper(Rewind::new(io, buf.into()));
        };
        // What the peer sent after the head stays for hyper.
        buf.drain(..len);
        buf.shrink_to_fit();
        let (parts, body) = response.into_parts();
        let length = body.size_hint().exact();
        (in_flight, body, length, encode_head(&parts, length), buf)
    };
    let written = write_all(&mut io, [&head, &[], &[]]).await;
    drop(head);
    if written.is_err() {
        return Next::Closed;
    }
    let mut closing = *conn.finishing.borrow();
    {
        // Created once: registering with the drain signal (shared by every
        // connection) on each frame would take its lock once per delivery.
        let mut finish = std::pin::pin!(conn.finishing.wait_for(|finish| *finish));
        loop {
            enum Step {
                Frame(Option<Result<http_body::Frame<Bytes>, std::convert::Infallible>>),
                Read(io::Result<usize>),
                Finish,
            }
            let step = tokio::select! {
                biased;
                frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)) => Step::Frame(frame),
                read = watch_read(&mut io, &mut kept), if kept.len() < MAX_LEFTOVER => Step::Read(read),
                _ = finish.as_mut(), if !closing => Step::Finish,
            };
            match step {
                Step::Finish => closing = true,
                Step::Read(Ok(0) | Err(_)) => {
                    tracing::debug!(%peer, "peer closed during a stream");
                    return Next::Closed;
                }
                Step::Read(Ok(_)) => {}
                Step::Frame(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let written = match length {
                        Some(_) => write_all(&mut io, [&data, &[], &[]]).await,
                        None if data.is_empty() => Ok(()),
                        None => {
                            let mut line = [0u8; 20];
                            let n = chunk_line(data.len(), &mut line);
                            write_all(&mut io, [&line[..n], &data, b"\r\n"]).await
                        }
                    };
                    if let Err(error) = written {
                        tracing::debug!(%peer, %error, "stream write failed");
                        return Next::Closed;
                    }
                }
                Step::Frame(Some(Err(never))) => match never {},
                Step::Frame(None) => break,
            }
        }
    }
    drop(body);
    drop(in_flight);
    if length.is_none() && write_all(&mut io, [b"0\r\n\r\n", &[], &[]]).await.is_err() {
        return Next::Closed;
    }
    if closing || *conn.finishing.borrow() {
        let _ = io.shutdown().await;
        return Next::Closed;
    }
    Next::Hyper(Rewind::new(io, kept.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lines_are_lowercase_hex() {
        let mut line = [0u8; 20];
        for (len, text) in [
            (0, "0\r\n"),
            (9, "9\r\n"),
            (255, "ff\r\n"),
            (4096, "1000\r\n"),
        ] {
            let n = chunk_line(len, &mut line);
            assert_eq!(&line[..n], text.as_bytes());
        }
    }

    #[test]
    fn only_plain_http11_gets_are_eligible() {
        let eligible = |head: &str| matches!(parse(head.as_bytes()), Parsed::Eligible(..));
        assert!(eligible(
            "GET /events?topic=a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
        ));
        assert!(matches!(
            parse(b"GET /events HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        ));
        for other in [
            "POST /events HTTP/1.1\r\n\r\n",
            "GET /events HTTP/1.0\r\n\r\n",
            "GET /events HTTP/1.1\r\nConnection: close\r\n\r\n",
            "GET /events HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
            "GET /events HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "GET /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /events HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET /events HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert!(
                matches!(parse(other.as_bytes()), Parsed::Other),
                "{other:?}"
            );
        }
    }

    #[test]
    fn the_head_carries_date_and_framing_and_not_the_bodys_own() {
        let response = Response::builder()
            .header("content-type", "text/event-stream")
            .header("content-length", "99")
            .body(())
            .unwrap();
        let (parts, ()) = response.into_parts();
        let head = String::from_utf8(encode_head(&parts, None)).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ndate: "));
        assert!(
            head.ends_with("GMT\r\ntransfer-encoding: chunked\r\n\r\n"),
            "{head}"
        );
        assert!(!head.contains("99"));
        let head = String::from_utf8(encode_head(&parts, Some(12))).unwrap();
        assert!(head.ends_with("content-length: 12\r\n\r\n"), "{head}");
    }

    #[tokio::test]
    async fn vectored_writes_survive_short_writes() {
        let (mut a, mut b) = tokio::io::duplex(3);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut all)
                .await
                .unwrap();
            all
        });
        write_all(&mut a, [b"5\r\n", b"hello", b"\r\n"])
            .await
            .unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), b"5\r\nhello\r\n");
    }
}
