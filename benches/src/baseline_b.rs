//! Baseline B: what axum users write today for server-sent events.
//!
//! - one `tokio::sync::broadcast` channel per topic, in a
//!   `Mutex<HashMap<String, broadcast::Sender<Message>>>`;
//! - each connection holds a `broadcast::Receiver` per topic, wrapped in a
//!   `BroadcastStream`, and maps every message to an
//!   `axum::response::sse::Event` (formatted per subscriber, on the
//!   receiver's side), served by `axum::response::sse::Sse` with
//!   `KeepAlive`;
//! - a lagging receiver silently skips what it missed (the usual
//!   `filter_map` over `Lagged`), and a stalled one is never closed: the
//!   ring simply overwrites its slots.
//!
//! B is given the cheap version of each choice, so a comparison with it
//! never flatters ssehub: a [`Message`] shares its strings (`Arc<str>`), so
//! the clone every receiver takes is reference counts, not copies, and
//! [`to_sse_event`] formats the id on the stack. The server sets
//! `TCP_NODELAY` on every connection, as ssehub does.
//!
//! [`router`] is the complete server (`GET /events?topic=…`,
//! `POST /publish`, `GET /healthz`) that `baseline_b_server` runs; the
//! criterion fan-out bench uses [`BroadcastHub`] and [`to_sse_event`]
//! directly.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{StreamExt, StreamMap};

/// What travels through a topic's broadcast channel (cloned for every
/// receiver, as `broadcast` does: the strings are shared, so a clone costs
/// reference-count increments, never a copy of the data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The id the server assigned (a global counter).
    pub id: u64,
    /// The event name, if any.
    pub event: Option<Arc<str>>,
    /// The data.
    pub data: Arc<str>,
}

/// Topic → broadcast sender.
#[derive(Debug)]
pub struct BroadcastHub {
    topics: Mutex<HashMap<String, broadcast::Sender<Message>>>,
    capacity: usize,
    next_id: AtomicU64,
}

impl BroadcastHub {
    /// A hub whose channels hold `capacity` messages (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            topics: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            next_id: AtomicU64::new(0),
        }
    }

    /// A receiver of `topic`, creating its channel if needed.
    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Message> {
        let mut topics = self.topics.lock();
        match topics.get(topic) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(self.capacity);
                topics.insert(topic.to_owned(), sender);
                receiver
            }
        }
    }

    /// Sends to every receiver of `topic`; returns the id assigned and how
    /// many receivers there were.
    pub fn publish(
        &self,
        topic: &str,
        event: Option<Arc<str>>,
        data: impl Into<Arc<str>>,
    ) -> (u64, usize) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let data = data.into();
        let sender = self.topics.lock().get(topic).cloned();
        let delivered = match sender {
            Some(sender) => sender.send(Message { id, event, data }).unwrap_or(0),
            None => 0,
        };
        (id, delivered)
    }
}

/// The per-subscriber formatting, as the `Sse` stream does it: the fields
/// are borrowed from the shared message, and the id is formatted on the
/// stack (no allocation but the `Event`'s own buffer).
pub fn to_sse_event(message: &Message) -> Event {
    let mut digits = [0u8; 20];
    let event = Event::default()
        .id(format_u64(message.id, &mut digits))
        .data(&*message.data);
    match &message.event {
        Some(name) => event.event(&**name),
        None => event,
    }
}

/// `n` in decimal, written at the end of `buf`.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[start..]).unwrap_or("0")
}

/// Shared state of the baseline server.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The topics.
    pub hub: Arc<BroadcastHub>,
    /// The bearer token `POST /publish` needs.
    pub token: Arc<str>,
}

/// The baseline server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/events", get(events))
        .route("/publish", post(publish))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// The `topic` parameters of a query string (no percent-decoding needed
/// for the benchmark's names, but `+` and `%XX` are handled).
pub fn query_topics(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "topic")
        .map(|(_, value)| percent_decode(value))
        .filter(|topic| !topic.is_empty())
        .collect()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn events(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let topics = query_topics(query.as_deref().unwrap_or(""));
    if topics.is_empty() {
        return (StatusCode::BAD_REQUEST, "at least one topic= is required\n").into_response();
    }
    let mut streams = StreamMap::new();
    for topic in topics {
        let receiver = state.hub.subscribe(&topic);
        streams.insert(topic, BroadcastStream::new(receiver));
    }
    let stream = streams.filter_map(|(_, item)| match item {
        Ok(message) => Some(Ok::<_, Infallible>(to_sse_event(&message))),
        // Lagged: the receiver missed messages; skip them, as usual.
        Err(_) => None,
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The body of `POST /publish`.
#[derive(Debug, Deserialize)]
pub struct PublishBody {
    /// Topic to publish to.
    pub topic: String,
    /// Optional event name.
    pub event: Option<String>,
    /// The data.
    pub data: String,
}

async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<PublishBody>,
) -> Response {
    let expected = format!("Bearer {}", state.token);
    let authorized = headers
        .get(axum::http::header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes());
    if !authorized {
        return (StatusCode::UNAUTHORIZED, "bad or missing bearer token\n").into_response();
    }
    let event = body.event.map(Arc::from);
    let (id, delivered) = state.hub.publish(&body.topic, event, body.data);
    Json(serde_json::json!({ "id": id.to_string(), "delivered": delivered })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_reaches_every_receiver() {
        let hub = BroadcastHub::new(8);
        let mut a = hub.subscribe("t");
        let mut b = hub.subscribe("t");
        assert_eq!(hub.publish("t", None, "x").1, 2);
        assert_eq!(a.try_recv().map(|m| m.data), Ok(Arc::from("x")));
        assert_eq!(b.try_recv().map(|m| m.id), Ok(1));
        assert_eq!(hub.publish("other", None, "y").1, 0);
    }

    #[test]
    fn ids_are_formatted_in_decimal() {
        let mut buf = [0u8; 20];
        assert_eq!(format_u64(0, &mut buf), "0");
        assert_eq!(format_u64(1_234_567_890, &mut buf), "1234567890");
        assert_eq!(format_u64(u64::MAX, &mut buf), u64::MAX.to_string());
    }

    #[test]
    fn topics_are_parsed_from_the_query() {
        assert_eq!(query_topics("topic=a&x=1&topic=b%2Fc"), ["a", "b/c"]);
        assert!(query_topics("").is_empty());
    }
}
