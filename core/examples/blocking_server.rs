//! A blocking, thread-per-connection SSE server on `std::net`, using the
//! core alone: no tokio, no hyper. It shows what any transport must do to
//! embed `ssehub-core`.
//!
//! ```text
//! cargo run -p ssehub-core --example blocking_server -- 127.0.0.1:8090
//! curl -N 'http://127.0.0.1:8090/events?topic=news'
//! curl -X POST --data 'hello' 'http://127.0.0.1:8090/publish?topic=news'
//! ```
//!
//! Each connection gets a writer thread (the one that serves it) and, for
//! an event stream, a watcher thread that blocks on `read` and closes the
//! client when the peer hangs up, so a disconnect is noticed at once, not
//! at the next write.
//!
//! What keeps it bounded (copy all of it):
//! - at most [`Limits::max_connections`] connections hold threads (two for
//!   a stream, one otherwise); beyond that the accept loop answers `503`
//!   itself, without a thread;
//! - the request (head and body) must arrive within
//!   [`Limits::read_timeout`], so silent and trickling connections end;
//! - every write gives up after [`Limits::write_timeout`], so a peer that
//!   stops reading cannot pin its writer;
//! - however a stream ends (the peer hangs up, a write fails, or the hub
//!   closes the client: kick, slow consumer, idle, stall, shutdown, failed
//!   activation), the writer shuts the socket down both ways and joins the
//!   watcher: the peer sees the end of the stream, and no thread or socket
//!   outlives the client.

use ssehub_core::codec::Event;
use ssehub_core::{CloseReason, Drain, Hub, HubConfig, ReserveOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The parts of a request this server looks at.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    last_event_id: Option<String>,
    content_length: usize,
}

/// The resource bounds of [`serve_with`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most connections served at once; more are answered `503` by the
    /// accept loop.
    pub max_connections: usize,
    /// Time a connection has to deliver its whole request.
    pub read_timeout: Duration,
    /// Longest a single write may block before the client is dropped.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves connections from `listener` forever with [`Limits::default`].
#[allow(dead_code)]
pub fn serve(listener: TcpListener, hub: Hub) -> io::Result<()> {
    serve_with(listener, hub, Limits::default())
}

/// Serves connections from `listener` forever, one thread each (two for an
/// event stream), within `limits`. Threads are named `sse-conn-PORT` and
/// `sse-watch-PORT` after the listener's port.
///
/// # Errors
///
/// An error from `accept` or from spawning the driver thread.
pub fn serve_with(listener: TcpListener, hub: Hub, limits: Limits) -> io::Result<()> {
    // The driver: fires heartbeats and timeouts. The core never reads a
    // clock; this thread is its clock.
    let ticker = hub.clone();
    thread::Builder::new()
        .name("sse-tick".to_owned())
        .spawn(move || loop {
            let report = ticker.tick(Instant::now());
            let wait = report.next_deadline.map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(Instant::now())
            });
            thread::sleep(wait.min(Duration::from_secs(1)));
        })?;
    let port = listener.local_addr()?.port();
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(conn) => conn,
            // The peer gave up before we took it: not the listener's fault.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(error) => return Err(error),
        };
        let Some(slot) = Slot::take(&open, limits.max_connections) else {
            refuse(conn);
            continue;
        };
        let hub = hub.clone();
        let spawned = thread::Builder::new()
            .name(format!("sse-conn-{port}"))
            .spawn(move || {
                let _slot = slot;
                if let Err(error) = handle(conn, &hub, limits, port) {
                    eprintln!("connection error: {error}");
                }
            });
        if let Err(error) = spawned {
            // The closure, with the connection and its slot, was dropped.
            eprintln!("cannot spawn a connection thread: {error}");
        }
    }
    Ok(())
}

/// One of the `max_connections` places; released when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Self(Arc::clone(open)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers `503` on the accept thread, never blocking it: the socket is
/// non-blocking, the request already received is read (so closing sends a
/// FIN rather than a reset), and a fresh socket's send buffer takes the
/// short answer whole.
fn refuse(mut conn: TcpStream) {
    if conn.set_nonblocking(true).is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        if !matches!(conn.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
    let _ = respond(&mut conn, "503 Service Unavailable", "too many connections");
    let _ = conn.shutdown(Shutdown::Write);
}

/// Reads from a connection until a fixed deadline: the request as a whole,
/// not each read, is bounded, so a peer trickling bytes is cut off too.
struct DeadlineReader {
    conn: TcpStream,
    deadline: Instant,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request not received in time",
            ));
        }
        self.conn.set_read_timeout(Some(left))?;
        self.conn.read(buf)
    }
}

fn handle(conn: TcpStream, hub: &Hub, limits: Limits, port: u16) -> io::Result<()> {
    conn.set_write_timeout(Some(limits.write_timeout))?;
    let mut reader = BufReader::new(DeadlineReader {
        conn: conn.try_clone()?,
        deadline: Instant::now() + limits.read_timeout,
    });
    let request = read_request(&mut reader)?;
    let mut conn = conn;
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/events") => {
            let watched = reader.into_inner().conn;
            stream_events(conn, watched, hub, request, port)
        }
        ("POST", "/publish") => {
            let mut body = vec![0; request.content_length.min(1 << 20)];
            reader.read_exact(&mut body)?;
            let topic = request
                .query
                .iter()
                .find(|(k, _)| k == "topic")
                .map(|(_, v)| v.as_str());
            let data = String::from_utf8_lossy(&body);
            match topic.map(|t| hub.publish(t, &Event::new(data.as_ref()))) {
                Some(Ok(report)) => respond(&mut conn, "200 OK", &report.id.to_string()),
                Some(Err(error)) => respond(&mut conn, "400 Bad Request", &error.to_string()),
                None => respond(&mut conn, "400 Bad Request", "missing topic"),
            }
        }
        _ => respond(&mut conn, "404 Not Found", "not found"),
    }
}

/// Ends an event stream when dropped, on every path out of
/// [`stream_events`]: shuts the socket down both ways (the peer sees the
/// end of the stream, the watcher's `read` returns) and joins the watcher.
struct StreamEnd {
    conn: TcpStream,
    watcher: Option<JoinHandle<()>>,
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        let _ = self.conn.shutdown(Shutdown::Both);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

fn stream_events(
    mut conn: TcpStream,
    watched: TcpStream,
    hub: &Hub,
    request: Request,
    port: u16,
) -> io::Result<()> {
    let topics = request
        .query
        .iter()
        .filter(|(k, _)| k == "topic")
        .map(|(_, v)| v.clone());
    let mut opts = ReserveOptions::new().topics(topics);
    if let Some(last) = request.last_event_id {
        opts = opts.last_event_id(last);
    }
    if let Ok(peer) = conn.peer_addr() {
        opts = opts.peer(peer.ip().to_string());
    }
    // 1. reserve
    let reservation = match hub.reserve(opts) {
        Ok(reservation) => reservation,
        Err(error) => return respond(&mut conn, "503 Service Unavailable", &error.to_string()),
    };
    let id = reservation.id();
    let stream = reservation.stream();
    // 2. arm the close hooks. Declared first, `end` drops last: the guard
    //    below closes the client with its reason, then `end` shuts the
    //    socket and joins the watcher, which closes the client when the
    //    peer hangs up. The request is in; from now on a silent peer is
    //    the normal case, so the watcher's read has no timeout.
    let mut end = StreamEnd {
        conn: conn.try_clone()?,
        watcher: None,
    };
    let mut guard = hub.close_guard(id);
    watched.set_read_timeout(None)?;
    let watcher_hub = hub.clone();
    end.watcher = Some(
        thread::Builder::new()
            .name(format!("sse-watch-{port}"))
            .spawn(move || {
                let mut watched = watched;
                let mut sink = [0u8; 512];
                loop {
                    match watched.read(&mut sink) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = watcher_hub.close(id, CloseReason::ClientGone);
            })?,
    );
    // 3. headers and the initial frame
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         Client-Id: {id}\r\nConnection: close\r\n\r\nretry: 2000\n\n"
    );
    if let Err(error) = conn.write_all(head.as_bytes()) {
        guard.set_reason(write_failure(&error));
        return Err(error);
    }
    // 4. activate: replay (or reset), then live events. On failure the
    //    client is already gone; `end` ends the stream.
    if reservation.activate().is_err() {
        return Ok(());
    }
    // 5. write what the hub queues until the client is closed
    let mut frames = Vec::new();
    loop {
        frames.clear();
        match stream.recv_blocking(&mut frames, 64) {
            Drain::Frames(_) => {
                let batch: Vec<u8> = frames.concat();
                if let Err(error) = conn.write_all(&batch).and_then(|()| conn.flush()) {
                    guard.set_reason(write_failure(&error));
                    return Err(error);
                }
                stream.flushed(Instant::now());
            }
            // Closed by the hub (or by the watcher): `end` ends the stream.
            Drain::Closed(_) | Drain::Empty => return Ok(()),
        }
    }
}

/// A write that timed out means the peer stopped reading: a stall.
fn write_failure(error: &io::Error) -> CloseReason {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => CloseReason::WriteStalled,
        _ => CloseReason::WriteError,
    }
}

fn read_request(reader: &mut impl BufRead) -> io::Result<Request> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    reader.by_ref().take(8192).read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().ok_or_else(|| bad("no method"))?, parts.next());
    let target = target.ok_or_else(|| bad("no target"))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        last_event_id: None,
        content_length: 0,
    };
    for _ in 0..100 {
        let mut header = String::new();
        reader.by_ref().take(8192).read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            return Ok(request);
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("last-event-id") {
                request.last_event_id = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("content-length") {
                request.content_length = value.parse().map_err(|_| bad("content-length"))?;
            }
        }
    }
    Err(bad("too many headers"))
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes())
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("blocking SSE server on http://{addr}/events?topic=news");
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let config = HubConfig {
        epoch,
        ..HubConfig::default()
    };
    // Refuse a configuration that cannot work before serving anyone.
    config
        .validate()
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    serve(listener, Hub::new(config, Instant::now()))
}
