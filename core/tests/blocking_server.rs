//! The std-only example server, over a real socket: the core embeds without
//! any async runtime, and every way a stream ends gives its threads and
//! sockets back.

#[path = "../examples/blocking_server.rs"]
mod server;

use ssehub_core::codec::Event;
use ssehub_core::{ClientId, CloseOutcome, CloseReason, Hub, HubConfig};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn start(hub: &Hub) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = hub.clone();
    std::thread::spawn(move || server::serve(listener, hub));
    addr
}

/// Waits (bounded) for a condition that another thread makes true.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

fn read_frame(reader: &mut impl BufRead) -> String {
    let mut frame = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended");
        if line == "\n" {
            return frame;
        }
        frame.push_str(&line);
    }
}

#[test]
fn blocking_server_streams_replays_and_notices_disconnects() {
    let hub = Hub::new(
        HubConfig {
            epoch: 3,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    let addr = start(&hub);

    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /events?topic=news HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        reader.read_line(&mut head).unwrap();
    }
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(head.contains("Content-Type: text/event-stream\r\n"));
    assert_eq!(read_frame(&mut reader), "retry: 2000\n");
    wait_until("the client is subscribed", || {
        hub.subscriber_count("news") == 1
    });

    let first = hub.publish("news", &Event::new("one")).unwrap().id;
    assert_eq!(read_frame(&mut reader), format!("id: {first}\ndata: one\n"));

    drop(reader);
    drop(conn);
    wait_until("the disconnect is noticed", || hub.is_empty());
    let missed = hub.publish("news", &Event::new("two")).unwrap().id;

    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET /events?topic=news HTTP/1.1\r\nLast-Event-ID: {first}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        reader.read_line(&mut head).unwrap();
    }
    assert_eq!(read_frame(&mut reader), "retry: 2000\n");
    assert_eq!(
        read_frame(&mut reader),
        format!("id: {missed}\ndata: two\n"),
        "I8 replay"
    );

    let mut publish = TcpStream::connect(addr).unwrap();
    publish
        .write_all(b"POST /publish?topic=news HTTP/1.1\r\nContent-Length: 5\r\n\r\nthree")
        .unwrap();
    let mut answer = String::new();
    publish.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(read_frame(&mut reader).ends_with("data: three\n"));
    drop(reader);
    drop(conn);
    wait_until("the second disconnect is noticed", || hub.is_empty());
}

/// Threads of the example server on `port` (named after it), from
/// `/proc/self/task`.
fn server_threads(port: u16) -> usize {
    let names = [format!("sse-conn-{port}"), format!("sse-watch-{port}")];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| names.iter().any(|name| comm.trim_end() == name))
        .count()
}

/// TCP sockets bound to local `port` that this process holds a descriptor
/// of (each counted once, however many clones): the listener plus every
/// accepted connection still open.
fn server_sockets(port: u16) -> usize {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port) {
                inodes.insert(format!("socket:[{}]", fields[9]));
            }
        }
    }
    let held: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|link| link.to_string_lossy().into_owned())
        .filter(|link| inodes.contains(link))
        .collect();
    held.len()
}

/// A client connection whose reads fail after 10 s instead of hanging the
/// suite when the server never ends a stream.
fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = BufReader::new(conn.try_clone().unwrap());
    (conn, reader)
}

/// Opens `GET /events` and reads the head and the `retry` frame.
fn open_stream(addr: SocketAddr, query: &str) -> (ClientId, TcpStream, BufReader<TcpStream>) {
    let (mut conn, mut reader) = connect(addr);
    write!(conn, "GET /events?{query} HTTP/1.1\r\n\r\n").unwrap();
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(reader.read_line(&mut head).unwrap() > 0, "no head: {head}");
    }
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let id = head
        .lines()
        .find_map(|line| line.strip_prefix("Client-Id: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(read_frame(&mut reader), "retry: 2000\n");
    (id, conn, reader)
}

/// Reads until the server ends the stream (EOF), returning what came
/// before it. Fails on a read timeout: the stream was never ended.
fn read_to_eof(reader: &mut impl Read) -> String {
    let mut rest = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&rest).into_owned(),
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => panic!("the stream was not ended: {error}"),
        }
    }
}

/// Reads a response that may be cut short by a reset (a refused
/// connection whose request arrived after the server closed it).
fn read_response(conn: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn every_hub_side_close_ends_the_stream_and_frees_its_threads_and_socket() {
    const MAX: usize = 12;
    let hub = Hub::new(
        HubConfig {
            epoch: 5,
            max_topics: 1,
            queue_max_bytes: 64 << 20,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let port = addr.port();
    let limits = server::Limits {
        max_connections: MAX,
        read_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_millis(200),
    };
    let server_hub = hub.clone();
    std::thread::spawn(move || server::serve_with(listener, server_hub, limits));
    // The only topic the hub may hold, kept by its retained event.
    hub.publish("news", &Event::new("kept")).unwrap();
    let at_baseline = || server_threads(port) == 0 && server_sockets(port) == 1;
    wait_until("the server is idle", at_baseline);

    // Kicks: each stream holds a writer and a watcher until the hub
    // closes it; then the peer sees the end of the stream.
    let streams: Vec<_> = (0..MAX).map(|_| open_stream(addr, "topic=news")).collect();
    wait_until("every stream is served", || {
        hub.subscriber_count("news") == MAX
            && server_threads(port) == 2 * MAX
            && server_sockets(port) == 1 + MAX
    });
    // At the cap, the accept loop answers 503 itself, taking no thread.
    let (mut refused, _) = connect(addr);
    refused
        .write_all(b"GET /events?topic=news HTTP/1.1\r\n\r\n")
        .unwrap();
    let answer = read_response(&mut refused);
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert_eq!(server_threads(port), 2 * MAX, "a refusal takes no thread");
    for (id, _, _) in &streams {
        assert_eq!(hub.close(*id, CloseReason::Kicked), CloseOutcome::Closed);
    }
    for (_, _, mut reader) in streams {
        read_to_eof(&mut reader);
    }
    wait_until("the kicked streams are freed", at_baseline);

    // A failed activation (the topic table is full) ends the stream too.
    let (_, _, mut reader) = open_stream(addr, "topic=fresh");
    assert_eq!(read_to_eof(&mut reader), "");
    wait_until("the failed activation is freed", at_baseline);

    // A reader that stops: its writer blocks in a write once the socket
    // buffers are full (the queue holds more than they do), the hub closes
    // it as a slow consumer, and the write times out. Only then does the
    // peer read: reading would unblock the writer.
    let (id, _conn, mut stalled) = open_stream(addr, "topic=news");
    wait_until("the stalled stream is active", || hub.is_active(id));
    let big = "x".repeat(16 * 1024);
    while hub.is_active(id) {
        hub.publish("news", &Event::new(big.as_str())).unwrap();
    }
    wait_until("the blocked writer gives up", at_baseline);
    assert!(read_to_eof(&mut stalled).contains(&big));

    // Silent connections hold a thread each only until the read timeout.
    let silent: Vec<_> = (0..MAX).map(|_| connect(addr)).collect();
    for (_, mut reader) in silent {
        assert_eq!(read_to_eof(&mut reader), "");
    }
    wait_until("the silent connections are freed", at_baseline);

    // Shutdown: every stream gets the final event, then its end.
    let streams: Vec<_> = (0..3).map(|_| open_stream(addr, "topic=news")).collect();
    wait_until("the streams are subscribed", || {
        hub.subscriber_count("news") == 3
    });
    hub.shutdown(Some(&Event::new("bye"))).unwrap();
    for (_, _, mut reader) in streams {
        assert!(read_to_eof(&mut reader).contains("data: bye\n"));
    }
    wait_until("the shut-down streams are freed", at_baseline);
}
