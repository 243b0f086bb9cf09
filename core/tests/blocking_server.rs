//! The std-only example server, over a real socket: the core embeds without
//! any async runtime.

#[path = "../examples/blocking_server.rs"]
mod server;

use ssehub_core::codec::Event;
use ssehub_core::{Hub, HubConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
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
