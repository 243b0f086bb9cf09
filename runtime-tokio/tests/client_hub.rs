//! The reconnecting client against the real `ssehub` server, in process on
//! an ephemeral port, over HTTP/1.1 and HTTP/2: events arrive, a kick drops
//! the connection, the client reconnects with `Last-Event-ID` and gets
//! exactly the events it missed, once each; a fatal kick ends it; the
//! subscribe token is sent.
//!
//! Time is tokio's paused clock (the server's `retry:` backoff, heartbeats
//! and ticks advance it automatically).

use ssehub_core::codec::Event;
use ssehub_core::{ClientId, CloseReason as HubCloseReason};
use ssehub_tokio::client::{
    ClientEvent, CloseReason, EventSource, HttpVersion, MessageEvent, State,
};
use ssehub_tokio::server::{Server, ServerConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "client-test-token";

async fn start_server(subscribe_token: Option<&str>) -> Server {
    let config = ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        token: TOKEN.to_owned(),
        subscribe_token: subscribe_token.map(str::to_owned),
        ..ServerConfig::default()
    };
    Server::start(config).await.unwrap()
}

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(24 * 3600), future)
        .await
        .expect("the test is stuck")
}

async fn next(events: &mut EventSource) -> ClientEvent {
    bounded(events.next()).await.expect("the stream ended")
}

async fn next_state(events: &mut EventSource) -> State {
    match next(events).await {
        ClientEvent::State(state) => state,
        other => panic!("expected a state change, got {other:?}"),
    }
}

/// The next message that is not the server's `welcome`, and the client id
/// of any `welcome` passed on the way.
async fn next_message(events: &mut EventSource, welcome: &mut Option<ClientId>) -> MessageEvent {
    loop {
        match next(events).await {
            ClientEvent::Message(event) if event.event == "welcome" => {
                *welcome = Some(client_id(&event));
            }
            ClientEvent::Message(event) => return event,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

fn client_id(welcome: &MessageEvent) -> ClientId {
    let json: serde_json::Value = serde_json::from_str(&welcome.data).unwrap();
    json["clientId"].as_str().unwrap().parse().unwrap()
}

/// Connects and waits for the stream to open and the welcome to arrive.
async fn open(server: &Server, version: HttpVersion) -> (EventSource, ClientId) {
    let url = format!("http://{}/events?topic=news", server.local_addr());
    let mut events = EventSource::builder(url)
        .http_version(version)
        .fatal_event(server.config().fatal_event.clone())
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    let welcome = match next(&mut events).await {
        ClientEvent::Message(event) if event.event == "welcome" => client_id(&event),
        other => panic!("expected the welcome event, got {other:?}"),
    };
    (events, welcome)
}

fn publish(server: &Server, data: &str) -> String {
    let report = server
        .hub()
        .publish("news", &Event::new(data))
        .expect("publish");
    report.id.to_string()
}

async fn reconnect_replays_exactly_the_missed_events(version: HttpVersion) {
    let server = start_server(None).await;
    let (mut events, id) = open(&server, version).await;
    let mut welcome = None;

    let mut ids = Vec::new();
    for data in ["1", "2", "3"] {
        ids.push(publish(&server, data));
        let event = next_message(&mut events, &mut welcome).await;
        assert_eq!(event.data, data);
        assert_eq!(&event.last_event_id, ids.last().unwrap());
    }

    // The server drops the connection.
    let _ = server.hub().close(id, HubCloseReason::Kicked);
    let state = loop {
        match next(&mut events).await {
            // A reset instead of a clean end is fine too.
            ClientEvent::Error(_) => continue,
            ClientEvent::State(state) => break state,
            other => panic!("unexpected {other:?}"),
        }
    };
    let State::Reconnecting { attempt: 1, delay } = state else {
        panic!("expected the first reconnect, got {state:?}");
    };
    // The server's `retry:` hint is the base of the backoff.
    assert!(delay <= server.config().sse.retry.unwrap());

    // Published while the client is away: they must be replayed.
    ids.push(publish(&server, "4"));
    ids.push(publish(&server, "5"));
    assert_eq!(next_state(&mut events).await, State::Open);
    let mut replayed = Vec::new();
    for _ in 0..2 {
        replayed.push(next_message(&mut events, &mut welcome).await);
    }
    assert_eq!(
        replayed.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["4", "5"]
    );
    assert_eq!(replayed[1].last_event_id, ids[4]);
    // A new connection, so a new client id.
    let new_id = match welcome {
        Some(new_id) => new_id,
        None => {
            let mut later = None;
            let _ = publish(&server, "6");
            let event = next_message(&mut events, &mut later).await;
            assert_eq!(event.data, "6");
            later.expect("the new connection's welcome")
        }
    };
    assert_ne!(new_id, id);

    // Live again, and nothing duplicated or left over.
    ids.push(publish(&server, "7"));
    let event = next_message(&mut events, &mut None).await;
    assert_eq!(event.data, "7");
    assert_eq!(&event.last_event_id, ids.last().unwrap());
    let quiet = tokio::time::timeout(Duration::from_secs(1), events.next()).await;
    assert!(quiet.is_err(), "unexpected {quiet:?}");
}

#[tokio::test(start_paused = true)]
async fn http1_reconnect_after_a_kick_replays_exactly_the_missed_events() {
    reconnect_replays_exactly_the_missed_events(HttpVersion::Http1).await;
}

#[tokio::test(start_paused = true)]
async fn http2_reconnect_after_a_kick_replays_exactly_the_missed_events() {
    reconnect_replays_exactly_the_missed_events(HttpVersion::Http2).await;
}

/// `DELETE /clients/{id}?fatal=true` with the admin token; the status.
async fn kick_over_http(server: &Server, id: ClientId) -> u16 {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let request = format!(
        "DELETE /clients/{id}?fatal=true HTTP/1.1\r\nHost: hub\r\n\
         Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    response[9..12].parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_fatal_kick_over_the_delete_route_ends_the_client_for_good() {
    let server = start_server(None).await;
    let (mut events, id) = open(&server, HttpVersion::Http1).await;
    assert_eq!(kick_over_http(&server, id).await, 200);
    let fatal = next_message(&mut events, &mut None).await;
    assert_eq!(fatal.event, server.config().fatal_event);
    let State::Closed(info) = next_state(&mut events).await else {
        panic!("expected Closed");
    };
    assert_eq!(info.reason, CloseReason::FatalEvent);
    assert!(info.fatal && !info.is_local);
    assert!(bounded(events.next()).await.is_none());
    assert_eq!(server.hub().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_subscribe_token_is_sent_and_a_missing_one_is_fatal() {
    let server = start_server(Some("sub-secret")).await;
    let url = format!("http://{}/events?topic=news", server.local_addr());

    let mut denied = EventSource::new(url.as_str()).unwrap();
    assert_eq!(next_state(&mut denied).await, State::Connecting);
    let State::Closed(info) = next_state(&mut denied).await else {
        panic!("expected Closed");
    };
    assert_eq!(
        (info.reason, info.status),
        (CloseReason::HttpStatus, Some(401))
    );
    assert!(info.fatal);

    let mut allowed = EventSource::builder(url.as_str())
        .bearer_auth("sub-secret")
        .build()
        .unwrap();
    assert_eq!(next_state(&mut allowed).await, State::Connecting);
    assert_eq!(next_state(&mut allowed).await, State::Open);
    let mut welcome = None;
    publish(&server, "hello");
    assert_eq!(next_message(&mut allowed, &mut welcome).await.data, "hello");
    assert!(welcome.is_some());
}

#[tokio::test(start_paused = true)]
async fn http2_a_liveness_timeout_reconnects_and_resumes() {
    // The server's heartbeat (15 s) is slower than the client's liveness
    // timeout: the client gives up on the quiet connection and reconnects.
    let server = start_server(None).await;
    let url = format!("http://{}/events?topic=news", server.local_addr());
    let mut events = EventSource::builder(url)
        .http_version(HttpVersion::Http2)
        .read_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    assert_eq!(next_state(&mut events).await, State::Connecting);
    assert_eq!(next_state(&mut events).await, State::Open);
    let mut welcome = None;
    let first = publish(&server, "before");
    assert_eq!(next_message(&mut events, &mut welcome).await.data, "before");
    match next(&mut events).await {
        ClientEvent::Error(ssehub_tokio::client::ClientError::Liveness(t)) => {
            assert_eq!(t, Duration::from_secs(5));
        }
        other => panic!("expected the liveness timeout, got {other:?}"),
    }
    assert!(matches!(
        next_state(&mut events).await,
        State::Reconnecting { attempt: 1, .. }
    ));
    let missed = publish(&server, "while away");
    assert_eq!(next_state(&mut events).await, State::Open);
    let event = next_message(&mut events, &mut welcome).await;
    assert_eq!(event.data, "while away");
    assert_eq!(event.last_event_id, missed);
    assert_ne!(first, missed);
}
