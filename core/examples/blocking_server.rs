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
//! Each connection gets a writer thread (the one that accepted it) and a
//! watcher thread that blocks on `read` and closes the client when the peer
//! hangs up, so a disconnect is noticed at once, not at the next write.

use ssehub_core::codec::Event;
use ssehub_core::{CloseReason, Drain, Hub, HubConfig, ReserveOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The parts of a request this server looks at.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    last_event_id: Option<String>,
    content_length: usize,
}

/// Serves connections from `listener` forever, one thread each.
pub fn serve(listener: TcpListener, hub: Hub) -> io::Result<()> {
    // The driver: fires heartbeats and timeouts. The core never reads a
    // clock; this thread is its clock.
    let ticker = hub.clone();
    std::thread::spawn(move || loop {
        let report = ticker.tick(Instant::now());
        let wait = report.next_deadline.map_or(Duration::from_secs(1), |at| {
            at.saturating_duration_since(Instant::now())
        });
        std::thread::sleep(wait.min(Duration::from_secs(1)));
    });
    for conn in listener.incoming() {
        let conn = conn?;
        let hub = hub.clone();
        std::thread::spawn(move || {
            if let Err(error) = handle(conn, &hub) {
                eprintln!("connection error: {error}");
            }
        });
    }
    Ok(())
}

fn handle(conn: TcpStream, hub: &Hub) -> io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let request = read_request(&mut reader)?;
    let mut conn = conn;
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/events") => stream_events(conn, reader, hub, request),
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

fn stream_events(
    mut conn: TcpStream,
    mut reader: BufReader<TcpStream>,
    hub: &Hub,
    request: Request,
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
    // 2. arm the close hook: the guard closes the client however this
    //    function ends, and the watcher closes it when the peer hangs up.
    let mut guard = hub.close_guard(id);
    let watcher_hub = hub.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 512];
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        let _ = watcher_hub.close(id, CloseReason::ClientGone);
    });
    // 3. headers and the initial frame
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         Client-Id: {id}\r\nConnection: close\r\n\r\nretry: 2000\n\n"
    );
    if let Err(error) = conn.write_all(head.as_bytes()) {
        guard.set_reason(CloseReason::WriteError);
        return Err(error);
    }
    // 4. activate: replay (or reset), then live events
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
                    guard.set_reason(CloseReason::WriteError);
                    return Err(error);
                }
                stream.flushed(Instant::now());
            }
            Drain::Closed(_) | Drain::Empty => return Ok(()),
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Request> {
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
    serve(
        listener,
        Hub::new(
            HubConfig {
                epoch,
                ..HubConfig::default()
            },
            Instant::now(),
        ),
    )
}
