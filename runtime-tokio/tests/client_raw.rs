//! The reconnecting client against small hand-written HTTP servers (raw
//! responses over loopback): status classification, backoff bounds,
//! `Retry-After`, redirects, limits, liveness, local close.
//!
//! Time is tokio's paused clock: backoff sleeps and timeouts advance it
//! automatically, so nothing here really waits.

use ssehub_core::codec::DecodeError;
use ssehub_core::reconnect::DELAY_LIMIT;
use ssehub_tokio::client::{
    ClientError, ClientEvent, CloseReason, EventSource, HttpVersion, MessageEvent, State,
};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A test server: each accepted connection's request head is sent to
/// `requests`, then `handler(connection_index, stream)` answers.
struct RawServer {
    url: String,
    requests: mpsc::UnboundedReceiver<String>,
    connections: Arc<AtomicUsize>,
}

impl RawServer {
    async fn start<F, Fut>(path: &str, handler: F) -> Self
    where
        F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let (tx, requests) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let handler = Arc::new(handler);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let index = count.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    let head = read_head(&mut stream).await;
                    let _ = tx.send(head);
                    handler(index, stream).await;
                });
            }
        });
        Self {
            url,
            requests,
            connections,
        }
    }

    async fn request(&mut self) -> String {
        bounded(self.requests.recv()).await.unwrap()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Answers with a complete response and closes the connection.
async fn respond(mut stream: TcpStream, status_line: &str, headers: &str) {
    let response = format!(
        "HTTP/1.1 {status_line}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Starts an event stream with `body`, then keeps the connection open
/// (silently) if `hold`, else closes it.
async fn stream_events(mut stream: TcpStream, body: &str, hold: bool) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    if hold {
        // Keep the socket open without a timer (a timer would let paused
        // time stop at it).
        let mut sink = [0u8; 64];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    }
}

/// Guards a future that must finish (in paused time the guard only fires
/// if the test is stuck).
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(7 * 24 * 3600), future)
        .await
        .expect("the test is stuck")
}

async fn next(events: &mut EventSource) -> Option<ClientEvent> {
    bounded(events.next()).await
}

async fn next_state(events: &mut EventSource) -> State {
    match next(events).await {
        Some(ClientEvent::State(state)) => state,
        other => panic!("expected a state change, got {other:?}"),
    }
}

async fn next_error(events: &mut EventSource) -> ClientError {
    match next(events).await {
        Some(ClientEvent::Error(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn next_message(events: &mut EventSource) -> MessageEvent {
    match next(events).await {
        Some(ClientEvent::Message(event)) => event,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn expect_reconnecting(events: &mut EventSource, attempt: u32, max: Duration) -> Duration {
    match next_state(events).await {
        State::Reconnecting { attempt: a, delay } => {
            assert_eq!(a, attempt);
            assert!(delay <= max, "delay {delay:?} over the bound {max:?}");
            delay
        }
        other => panic!("expected Reconnecting {{ attempt: {attempt} }}, got {other:?}"),
    }
}

async fn expect_closed(events: &mut EventSource) -> ssehub_tokio::client::CloseInfo {
    let info = match next_state(events).await {
        State::Closed(info) => info,
        other => panic!("expected Closed, got {other:?}"),
    };
    assert!(next(events).await.is_none(), "the stream ends after Closed");
    assert!(events.next().await.is_none(), "and stays ended");
    info
}

#[tokio::test(start_paused = true)]
async fn no_content_is_fatal_and_never_retried() {
    let server = RawServer::start("/events", |_, s| respond(s, "204 No Content", "")).await;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    let info = expect_closed(&mut events).await;
    assert_eq!(info.reason, CloseReason::HttpStatus);
    assert_eq!(info.status, Some(204));
    assert!(info.fatal && !info.is_local);
    assert_eq!(server.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn unauthorized_and_not_found_are_fatal() {
    for (status_line, code) in [("401 Unauthorized", 401), ("404 Not Found", 404)] {
        let server = RawServer::start("/events", move |_, s| respond(s, status_line, "")).await;
        let mut events = EventSource::builder(&server.url)
            .base_delay(Duration::from_millis(10))
            .build()
            .unwrap();
        assert_eq!(next_state(&mut events).await, State::Connecting);
        let info = expect_closed(&mut events).await;
        assert_eq!(info.reason, CloseReason::HttpStatus);
        assert_eq!(info.status, Some(code));
        assert!(info.fatal);
        assert_eq!(server.connections(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn wrong_content_type_is_fatal() {
    let server = RawServer::start("/events", |_, s| {
        respond(s, "200 OK", "Content-Type: text/html\r\n")
    })
    .await;
    let mut events = EventSource::new(&server.url).unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    let info = expect_closed(&mut events).await;
    assert_eq!(info.reason, CloseReason::WrongContentType);
    assert_eq!(info.status, Some(200));
    assert!(info.fatal);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_growing_bounded_delays() {
    let server = RawServer::start("/events", |i, s| async move {
        if i < 3 {
            respond(s, "500 Internal Server Error", "").await;
        } else {
            stream_events(s, "data: finally\n\n", true).await;
        }
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(300))
        .jitter_seed(1)
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    // Retry n waits at most min(cap, base · 2ⁿ⁻¹), and the next attempt
    // does not come before that delay.
    let mut previous: Option<(Instant, Duration)> = None;
    for (attempt, bound) in [(1, 100), (2, 200), (3, 300)] {
        let error = next_error(&mut events).await;
        if let Some((since, delay)) = previous {
            assert!(since.elapsed() >= delay);
        }
        assert!(
            matches!(
                error,
                ClientError::Status {
                    status: 500,
                    retry_after: None
                }
            ),
            "{error:?}"
        );
        let delay = expect_reconnecting(&mut events, attempt, Duration::from_millis(bound)).await;
        previous = Some((Instant::now(), delay));
    }
    assert_eq!(next_state(&mut events).await, State::Open);
    let (since, delay) = previous.unwrap();
    assert!(since.elapsed() >= delay);
    assert_eq!(next_message(&mut events).await.data, "finally");
    assert_eq!(server.connections(), 4);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_a_floor_above_the_cap() {
    let server = RawServer::start("/events", |i, s| async move {
        if i == 0 {
            respond(s, "503 Service Unavailable", "Retry-After: 5\r\n").await;
        } else {
            stream_events(s, "data: back\n\n", true).await;
        }
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    let error = next_error(&mut events).await;
    assert!(
        matches!(error, ClientError::Status { status: 503, retry_after: Some(d) } if d == Duration::from_secs(5)),
        "{error:?}"
    );
    let delay = expect_reconnecting(&mut events, 1, Duration::from_secs(5)).await;
    assert_eq!(delay, Duration::from_secs(5), "Retry-After is the floor");
    let since = Instant::now();
    assert_eq!(next_state(&mut events).await, State::Open);
    assert!(since.elapsed() >= Duration::from_secs(5));
    assert_eq!(next_message(&mut events).await.data, "back");
}

#[tokio::test(start_paused = true)]
async fn refused_connections_are_retried_until_attempts_run_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    drop(listener);
    let mut events = EventSource::builder(url)
        .base_delay(Duration::from_millis(100))
        .max_attempts(2)
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    for (attempt, bound) in [(1, 100), (2, 200)] {
        let error = next_error(&mut events).await;
        assert!(matches!(error, ClientError::Connect(_)), "{error:?}");
        // The message reaches down to the cause, not just hyper's summary.
        assert!(
            error.to_string().to_lowercase().contains("refused"),
            "{error}"
        );
        expect_reconnecting(&mut events, attempt, Duration::from_millis(bound)).await;
    }
    assert!(matches!(
        next_error(&mut events).await,
        ClientError::Connect(_)
    ));
    let info = expect_closed(&mut events).await;
    assert_eq!(info.reason, CloseReason::AttemptsExhausted);
    assert_eq!(info.status, None);
    assert!(!info.fatal && !info.is_local);
}

#[tokio::test(start_paused = true)]
async fn the_servers_fatal_event_is_delivered_then_ends_the_stream() {
    let server = RawServer::start("/events", |_, s| {
        stream_events(
            s,
            "id: 1\ndata: a\n\nevent: fatal\ndata: logged out\n\ndata: never\n\n",
            true,
        )
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .fatal_event("fatal")
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "a");
    let fatal = next_message(&mut events).await;
    assert_eq!(
        (fatal.event.as_str(), fatal.data.as_str()),
        ("fatal", "logged out")
    );
    let info = expect_closed(&mut events).await;
    assert_eq!(info.reason, CloseReason::FatalEvent);
    assert!(info.fatal && !info.is_local);
    assert_eq!(server.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_line_over_the_limit_is_a_clear_error_not_a_buffer() {
    // The server streams one endless line: 16 MiB without a line break.
    let server = RawServer::start("/events", |_, mut s| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(b"data: ").await;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..256 {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .max_line_len(1024)
        .max_attempts(0)
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    let error = next_error(&mut events).await;
    assert!(
        matches!(
            error,
            ClientError::Decode(DecodeError::LineTooLong { limit: 1024 })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("1024"), "{error}");
    let info = expect_closed(&mut events).await;
    assert_eq!(info.reason, CloseReason::AttemptsExhausted);
}

#[tokio::test(start_paused = true)]
async fn an_event_over_the_limit_reconnects_and_a_good_stream_recovers() {
    let server = RawServer::start("/events", |i, s| async move {
        if i == 0 {
            let big = "data: 0123456789\n".repeat(20);
            stream_events(s, &format!("id: 1\ndata: ok\n\n{big}\n"), true).await;
        } else {
            stream_events(s, "id: 2\ndata: fine\n\n", true).await;
        }
    })
    .await;
    let mut server = server;
    let mut events = EventSource::builder(&server.url)
        .max_event_len(100)
        .base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "ok");
    assert!(matches!(
        next_error(&mut events).await,
        ClientError::Decode(DecodeError::EventTooLarge { limit: 100 })
    ));
    expect_reconnecting(&mut events, 1, Duration::from_millis(10)).await;
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "fine");
    let _first = server.request().await;
    let second = server.request().await.to_ascii_lowercase();
    assert!(second.contains("last-event-id: 1\r\n"), "{second}");
}

#[tokio::test(start_paused = true)]
async fn a_relative_redirect_is_followed_with_the_same_headers() {
    let mut server = RawServer::start("/old/events?topic=a", |i, s| async move {
        match i {
            0 => {
                respond(
                    s,
                    "307 Temporary Redirect",
                    "Location: ../new/events?topic=a\r\n",
                )
                .await
            }
            _ => stream_events(s, "data: moved\n\n", true).await,
        }
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .bearer_auth("token")
        .last_event_id("7")
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "moved");
    let first = server.request().await;
    assert!(
        first.starts_with("GET /old/events?topic=a HTTP/1.1\r\n"),
        "{first}"
    );
    let second = server.request().await;
    assert!(
        second.starts_with("GET /new/events?topic=a HTTP/1.1\r\n"),
        "{second}"
    );
    let second = second.to_ascii_lowercase();
    assert!(
        second.contains("authorization: bearer token\r\n"),
        "{second}"
    );
    assert!(second.contains("last-event-id: 7\r\n"), "{second}");
    assert!(second.contains("accept: text/event-stream\r\n"), "{second}");
}

#[tokio::test(start_paused = true)]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let mut target = RawServer::start("/", |_, s| stream_events(s, "data: there\n\n", true)).await;
    let location = format!(
        "Location: {}events\r\n",
        target.url.replace("127.0.0.1", "localhost")
    );
    let origin = RawServer::start("/events", move |_, s| {
        let location = location.clone();
        async move { respond(s, "302 Found", &location).await }
    })
    .await;
    let mut events = EventSource::builder(&origin.url)
        .bearer_auth("token")
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "there");
    let request = target.request().await.to_ascii_lowercase();
    assert!(!request.contains("authorization"), "{request}");
}

#[tokio::test(start_paused = true)]
async fn too_many_redirects_close_the_stream() {
    let server = RawServer::start("/events", |_, s| {
        respond(s, "302 Found", "Location: /events\r\n")
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .max_redirects(3)
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert!(matches!(
        next_error(&mut events).await,
        ClientError::TooManyRedirects { limit: 3 }
    ));
    let info = expect_closed(&mut events).await;
    assert_eq!(
        (info.reason, info.status),
        (CloseReason::HttpStatus, Some(302))
    );
    assert_eq!(server.connections(), 4, "the request and 3 redirects");
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_reconnected_after_the_liveness_timeout() {
    let mut server = RawServer::start("/events", |i, s| async move {
        match i {
            0 => stream_events(s, "id: 1\ndata: a\n\n", true).await,
            _ => stream_events(s, ": heartbeat\n\nid: 2\ndata: b\n\n", true).await,
        }
    })
    .await;
    let timeout = Duration::from_secs(30);
    let mut events = EventSource::builder(&server.url)
        .heartbeat(Duration::from_secs(10), 3)
        .base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "a");
    let since = Instant::now();
    let error = next_error(&mut events).await;
    assert!(
        matches!(error, ClientError::Liveness(t) if t == timeout),
        "{error:?}"
    );
    assert!(since.elapsed() >= timeout);
    expect_reconnecting(&mut events, 1, Duration::from_millis(10)).await;
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "b");
    let _first = server.request().await;
    let second = server.request().await.to_ascii_lowercase();
    assert!(second.contains("last-event-id: 1\r\n"), "{second}");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_quiet_stream_alive() {
    let server = RawServer::start("/events", |_, mut s| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
        let _ = s.write_all(head.as_bytes()).await;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            if s.write_all(b":\n\n").await.is_err() {
                return;
            }
        }
        let _ = s.write_all(b"data: still here\n\n").await;
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .read_timeout(Some(Duration::from_secs(30)))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    // 200 s of comments only, each within the 30 s timeout: no reconnect.
    assert_eq!(next_message(&mut events).await.data, "still here");
    assert_eq!(server.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn close_during_backoff_ends_the_stream_at_once() {
    let server = RawServer::start("/events", |_, s| {
        respond(s, "503 Service Unavailable", "Retry-After: 3600\r\n")
    })
    .await;
    let mut events = EventSource::new(&server.url).unwrap();
    let handle = events.handle();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    let _ = next_error(&mut events).await;
    expect_reconnecting(&mut events, 1, Duration::from_secs(3600)).await;
    let since = Instant::now();
    // Close from another task while the stream sleeps.
    let closer = tokio::spawn(async move {
        tokio::task::yield_now().await;
        handle.close();
    });
    let info = expect_closed(&mut events).await;
    closer.await.unwrap();
    assert_eq!(info.reason, CloseReason::Local);
    assert!(info.is_local && !info.fatal);
    assert!(
        since.elapsed() < Duration::from_secs(1),
        "{:?}",
        since.elapsed()
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn close_drops_queued_events_and_an_open_connection() {
    let server = RawServer::start("/events", |_, s| {
        stream_events(s, "data: 1\n\ndata: 2\n\ndata: 3\n\n", true)
    })
    .await;
    let mut events = EventSource::new(&server.url).unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "1");
    events.close();
    events.close();
    let info = expect_closed(&mut events).await;
    assert!(info.is_local);
    assert!(events.handle().is_closed());
}

#[tokio::test(start_paused = true)]
async fn reconnect_connects_now_with_the_last_event_id_and_resets_backoff() {
    let mut server = RawServer::start("/events", |_, s| {
        stream_events(s, "id: 5\ndata: five\n\n", true)
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "five");
    events.reconnect();
    let since = Instant::now();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert!(since.elapsed() < Duration::from_secs(1));
    let _first = server.request().await;
    let second = server.request().await.to_ascii_lowercase();
    assert!(second.contains("last-event-id: 5\r\n"), "{second}");
}

#[tokio::test(start_paused = true)]
async fn the_servers_retry_field_becomes_the_backoff_base() {
    let server = RawServer::start("/events", |i, s| async move {
        if i == 0 {
            stream_events(s, "retry: 50\ndata: x\n\n", false).await;
        } else {
            stream_events(s, "data: y\n\n", true).await;
        }
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "x");
    // A clean end of stream: no error, just the reconnect.
    expect_reconnecting(&mut events, 1, Duration::from_millis(50)).await;
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "y");
    assert_eq!(server.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hung_server_is_a_connect_timeout() {
    let server = RawServer::start("/events", |_, s| async move {
        // Reads the request, never answers.
        let _keep = s;
        std::future::pending::<()>().await;
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .connect_timeout(Duration::from_secs(5))
        .max_attempts(0)
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    let error = next_error(&mut events).await;
    assert!(matches!(error, ClientError::ConnectTimeout(t) if t == Duration::from_secs(5)));
    assert_eq!(
        expect_closed(&mut events).await.reason,
        CloseReason::AttemptsExhausted
    );
}

#[tokio::test(start_paused = true)]
async fn http2_prior_knowledge_needs_an_http2_server() {
    // An HTTP/1-only server cannot answer an HTTP/2 preface: a connect
    // error (retried), never a hang.
    let server = RawServer::start("/events", |_, s| respond(s, "200 OK", "")).await;
    let mut events = EventSource::builder(&server.url)
        .http_version(HttpVersion::Http2)
        .max_attempts(0)
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert!(matches!(
        next_error(&mut events).await,
        ClientError::Connect(_)
    ));
    assert_eq!(
        expect_closed(&mut events).await.reason,
        CloseReason::AttemptsExhausted
    );
}

#[tokio::test(start_paused = true)]
async fn close_during_a_connection_attempt_ends_the_stream_at_once() {
    let server = RawServer::start("/events", |_, s| async move {
        let _keep = s;
        std::future::pending::<()>().await;
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .connect_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let handle = events.handle();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    let since = Instant::now();
    let closer = tokio::spawn(async move {
        // Let the request reach the server first.
        tokio::task::yield_now().await;
        handle.close();
    });
    let info = expect_closed(&mut events).await;
    closer.await.unwrap();
    assert!(info.is_local);
    assert!(since.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn reconnect_during_backoff_connects_now() {
    let server = RawServer::start("/events", |i, s| async move {
        if i == 0 {
            respond(s, "503 Service Unavailable", "Retry-After: 3600\r\n").await;
        } else {
            stream_events(s, "data: early\n\n", true).await;
        }
    })
    .await;
    let mut events = EventSource::new(&server.url).unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    let _ = next_error(&mut events).await;
    expect_reconnecting(&mut events, 1, Duration::from_secs(3600)).await;
    let since = Instant::now();
    events.reconnect();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "early");
    assert!(since.elapsed() < Duration::from_secs(1));
}

// ---- Hardening: saturated delays, growing backoff, unsendable ids --------

/// `Retry-After: 18446744073709551615` used to become a floor of `u64::MAX`
/// seconds and `Instant::now() + delay` panicked in the polling task. Now
/// the delay is cut to `DELAY_LIMIT` (a day) and the client waits it out.
#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_neither_panics_nor_exceeds_the_limit() {
    let server = RawServer::start("/events", |i, s| async move {
        if i == 0 {
            respond(
                s,
                "503 Service Unavailable",
                "Retry-After: 18446744073709551615\r\n",
            )
            .await;
        } else {
            respond(s, "204 No Content", "").await;
        }
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    match next_error(&mut events).await {
        ClientError::Status {
            status: 503,
            retry_after: Some(after),
        } => assert_eq!(after, Duration::from_secs(u64::MAX)),
        other => panic!("expected a 503, got {other:?}"),
    }
    let start = Instant::now();
    let delay = expect_reconnecting(&mut events, 1, DELAY_LIMIT).await;
    assert_eq!(delay, DELAY_LIMIT);
    let info = expect_closed(&mut events).await;
    assert_eq!(info.status, Some(204));
    assert!(start.elapsed() >= DELAY_LIMIT);
    assert_eq!(server.connections(), 2);
}

/// `retry: 18446744073709551615` with no cap and an unbounded liveness
/// timeout: every deadline saturates instead of overflowing the clock.
#[tokio::test(start_paused = true)]
async fn a_huge_retry_field_and_unbounded_timeouts_do_not_panic() {
    let server = RawServer::start("/events", |i, s| async move {
        if i == 0 {
            stream_events(s, "retry: 18446744073709551615\ndata: x\n\n", false).await;
        } else {
            respond(s, "204 No Content", "").await;
        }
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .max_delay(Duration::MAX)
        .read_timeout(Some(Duration::MAX))
        .healthy_after(Some(Duration::MAX))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "x");
    let delay = expect_reconnecting(&mut events, 1, DELAY_LIMIT).await;
    assert!(delay <= DELAY_LIMIT);
    assert_eq!(expect_closed(&mut events).await.status, Some(204));
}

/// Hardening item 8: a server that sends `retry: 0`, one event and closes,
/// every time. The attempt counter used to reset on that one event, so
/// every retry was attempt 1 with a zero delay (512 connections a second).
/// Now the first reconnect is immediate and the delays grow from there.
#[tokio::test(start_paused = true)]
async fn one_event_per_connection_backs_off_more_and_more() {
    let server = RawServer::start("/events", |i, s| async move {
        let body = format!("retry: 0\nid: {i}\ndata: x\n\n");
        stream_events(s, &body, false).await;
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .max_delay(Duration::from_secs(30))
        .jitter_seed(1)
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    let mut delays = Vec::new();
    for attempt in 1..=16u32 {
        assert_eq!(next_state(&mut events).await, State::Open);
        assert_eq!(next_message(&mut events).await.data, "x");
        // Ceiling of retry n: 0 for the first, then 1 ms · 2ⁿ⁻¹, capped.
        let ceiling = if attempt == 1 {
            Duration::ZERO
        } else {
            (Duration::from_millis(1) * 2u32.pow(attempt - 1)).min(Duration::from_secs(30))
        };
        delays.push(expect_reconnecting(&mut events, attempt, ceiling).await);
    }
    assert_eq!(
        delays[0],
        Duration::ZERO,
        "the first reconnect is immediate"
    );
    let early: Duration = delays[..8].iter().sum();
    let late: Duration = delays[8..].iter().sum();
    assert!(late > early * 4, "delays grow: {delays:?}");
    // Each state comes before its wait: all but the last were waited out.
    let waited: Duration = delays[..15].iter().sum();
    assert!(start.elapsed() >= waited, "the client really waited them");
    events.close();
}

/// A connection that stays open for `healthy_after` resets the backoff,
/// even if it delivers only one event.
#[tokio::test(start_paused = true)]
async fn a_connection_open_long_enough_resets_the_backoff() {
    let server = RawServer::start("/events", |i, s| async move {
        if i < 3 {
            respond(s, "503 Service Unavailable", "").await;
        } else {
            // One event, then silence (heartbeat-free), then the client
            // gives up on it by the liveness timeout.
            stream_events(s, "data: x\n\n", true).await;
        }
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_millis(100))
        .healthy_after(Some(Duration::from_secs(5)))
        .read_timeout(Some(Duration::from_secs(20)))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    for attempt in 1..=3 {
        let _ = next_error(&mut events).await;
        expect_reconnecting(&mut events, attempt, Duration::from_secs(1)).await;
    }
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "x");
    assert!(matches!(
        next_error(&mut events).await,
        ClientError::Liveness(_)
    ));
    // Open for 20 s > healthy_after: retry 1 again, not 4.
    expect_reconnecting(&mut events, 1, Duration::from_millis(100)).await;
    events.close();
}

/// Hardening item 9: an id with a control character used to make the
/// reconnect go without `Last-Event-ID`, silently (the server then took the
/// client for a new one). Now the stream closes with a typed reason and
/// makes no second connection.
#[tokio::test(start_paused = true)]
async fn an_id_that_cannot_be_a_header_closes_instead_of_being_dropped() {
    let server = RawServer::start("/events", |_, s| async move {
        stream_events(s, "id: 7\u{1}x\ndata: a\n\n", false).await;
    })
    .await;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    let message = next_message(&mut events).await;
    assert_eq!(message.last_event_id, "7\u{1}x");
    let info = expect_closed(&mut events).await;
    assert_eq!(info.reason, CloseReason::UnsendableLastEventId);
    assert!(info.fatal && !info.is_local);
    assert_eq!(server.connections(), 1, "no reconnect without the id");
}

/// Ids that are valid header values (non-ASCII UTF-8, an inner tab) are
/// sent on the reconnect byte for byte.
#[tokio::test(start_paused = true)]
async fn an_unusual_but_sendable_id_is_sent_on_reconnect() {
    let server = RawServer::start("/events", |i, s| async move {
        if i == 0 {
            stream_events(s, "id: caf\u{e9}\t9\ndata: a\n\n", false).await;
        } else {
            stream_events(s, "data: b\n\n", true).await;
        }
    })
    .await;
    let mut server = server;
    let mut events = EventSource::builder(&server.url)
        .base_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(
        next_message(&mut events).await.last_event_id,
        "caf\u{e9}\t9"
    );
    expect_reconnecting(&mut events, 1, Duration::from_millis(10)).await;
    assert_eq!(next_state(&mut events).await, State::Open);
    assert_eq!(next_message(&mut events).await.data, "b");
    let _first = server.request().await;
    let second = server.request().await;
    assert!(
        second
            .to_ascii_lowercase()
            .contains("last-event-id: caf\u{e9}\t9\r\n"),
        "{second:?}"
    );
}

#[test]
fn a_starting_id_that_cannot_be_sent_is_refused_by_the_builder() {
    assert!(matches!(
        EventSource::builder("http://127.0.0.1:1/events")
            .last_event_id("7\u{1}x")
            .build(),
        Err(ssehub_tokio::client::BuildError::InvalidHeader(_))
    ));
}
