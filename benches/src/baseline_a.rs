//! Baseline A: a faithful Rust port of the Node `ServerEventsManager` that
//! the seed issue (`registerClient` race) describes.
//!
//! The design, kept as it is:
//! - clients live in a `Mutex<HashMap<String, Client>>` keyed by a random
//!   UUID-shaped string (`crypto.randomUUID()`);
//! - `topic → set of client ids` and `client id → set of topics` are two
//!   more hash maps of strings;
//! - an inactivity timer per client (`resetTimeout`) is a deadline in a map
//!   keyed by the client id;
//! - a broadcast walks the topic's id set, looks every id up in the client
//!   map and formats the frame **for each client**
//!   (`` `data: ${json}\n\n` ``), then writes it.
//!
//! `res.write` stands in as a push onto the client's
//! `Mutex<VecDeque<String>>`: like Node's socket write buffer, it takes the
//! client's own string and returns at once. The registration order is the
//! fixed one (insert before arming the close path), which costs the same as
//! the buggy one.
//!
//! The port is honest, not tuned down: the JSON payload is serialised once
//! per broadcast (Node would also call `JSON.stringify` per client in the
//! naive variant), and the client map lock is taken once per broadcast
//! rather than once per subscriber.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a client may stay silent before the inactivity timer fires
/// (`INACTIVITY_TIMEOUT_MS` in the original).
pub const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(300);

/// The stand-in for a client's `res`: the frames written to it, in order.
pub type ClientQueue = Mutex<VecDeque<String>>;

/// One connected client, as the Node code keeps it.
#[derive(Debug)]
pub struct Client {
    /// The client's random id.
    pub id: String,
    /// Where `res.write` puts the frames.
    pub res: Arc<ClientQueue>,
}

/// The Node design's hub.
#[derive(Debug, Default)]
pub struct NodeStyleHub {
    clients: Mutex<HashMap<String, Client>>,
    topic_subscriptions: Mutex<HashMap<String, HashSet<String>>>,
    client_topics: Mutex<HashMap<String, HashSet<String>>>,
    client_timeouts: Mutex<HashMap<String, Instant>>,
    uuid_state: AtomicU64,
}

impl NodeStyleHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self {
            uuid_state: AtomicU64::new(0x853c_49e6_748f_ea9b),
            ..Self::default()
        }
    }

    /// `registerClient`: a new id, its inactivity timer, the initial
    /// `connected` event written to the client, and the insertion into the
    /// client map. Returns the id and the client's write buffer.
    pub fn register_client(&self) -> (String, Arc<ClientQueue>) {
        let id = self.random_uuid();
        let res: Arc<ClientQueue> = Arc::new(Mutex::new(VecDeque::new()));
        self.clients.lock().insert(
            id.clone(),
            Client {
                id: id.clone(),
                res: Arc::clone(&res),
            },
        );
        self.reset_timeout(&id);
        let connection_event = format!(r#"{{"type":"connected","clientId":"{id}"}}"#);
        res.lock()
            .push_back(format!("data: {connection_event}\n\n"));
        (id, res)
    }

    /// `subscribe(clientId, topic)`: `false` for an unknown client.
    pub fn subscribe(&self, client_id: &str, topic: &str) -> bool {
        if !self.clients.lock().contains_key(client_id) {
            return false;
        }
        self.topic_subscriptions
            .lock()
            .entry(topic.to_owned())
            .or_default()
            .insert(client_id.to_owned());
        self.client_topics
            .lock()
            .entry(client_id.to_owned())
            .or_default()
            .insert(topic.to_owned());
        self.reset_timeout(client_id);
        true
    }

    /// `unsubscribe(clientId, topic)`: `false` if it was not subscribed.
    pub fn unsubscribe(&self, client_id: &str, topic: &str) -> bool {
        let removed = {
            let mut subs = self.topic_subscriptions.lock();
            let removed = subs.get_mut(topic).is_some_and(|s| s.remove(client_id));
            if subs.get(topic).is_some_and(HashSet::is_empty) {
                subs.remove(topic);
            }
            removed
        };
        if let Some(topics) = self.client_topics.lock().get_mut(client_id) {
            topics.remove(topic);
        }
        removed
    }

    /// `unsubAll(clientId)`: the close handler's cleanup (timer, topics,
    /// client entry).
    pub fn unsub_all(&self, client_id: &str) {
        self.client_timeouts.lock().remove(client_id);
        let topics = self.client_topics.lock().remove(client_id);
        if let Some(topics) = topics {
            let mut subs = self.topic_subscriptions.lock();
            for topic in topics {
                if let Some(set) = subs.get_mut(&topic) {
                    set.remove(client_id);
                    if set.is_empty() {
                        subs.remove(&topic);
                    }
                }
            }
        }
        self.clients.lock().remove(client_id);
    }

    /// `broadcast(topic, payload)`: formats `data: <json>\n\n` for every
    /// subscriber and writes it to that subscriber. Returns how many got it.
    pub fn broadcast(&self, topic: &str, json: &str) -> usize {
        let subs = self.topic_subscriptions.lock();
        let Some(ids) = subs.get(topic) else {
            return 0;
        };
        let clients = self.clients.lock();
        let mut delivered = 0;
        for id in ids {
            if let Some(client) = clients.get(id) {
                let frame = format!("data: {json}\n\n");
                client.res.lock().push_back(frame);
                delivered += 1;
            }
        }
        delivered
    }

    /// Clients in the map.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// `true` when no client is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn reset_timeout(&self, client_id: &str) {
        self.client_timeouts
            .lock()
            .insert(client_id.to_owned(), Instant::now() + INACTIVITY_TIMEOUT);
    }

    /// A version-4-shaped UUID string from a splitmix64 stream (cheaper than
    /// Node's CSPRNG, which favours the baseline).
    fn random_uuid(&self) -> String {
        let a = splitmix64(self.uuid_state.fetch_add(1, Ordering::Relaxed));
        let b = splitmix64(a ^ 0x9E37_79B9_7F4A_7C15);
        let mut s = String::with_capacity(36);
        let _ = write!(
            s,
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        );
        s
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_subscribe_broadcast_close() {
        let hub = NodeStyleHub::new();
        let (id, res) = hub.register_client();
        assert_eq!(id.len(), 36);
        assert!(hub.subscribe(&id, "news"));
        assert_eq!(hub.broadcast("news", r#""hi""#), 1);
        let frames: Vec<String> = res.lock().drain(..).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1], "data: \"hi\"\n\n");
        assert!(hub.unsubscribe(&id, "news"));
        assert!(!hub.unsubscribe(&id, "news"));
        hub.unsub_all(&id);
        assert!(hub.is_empty());
        assert_eq!(hub.broadcast("news", "1"), 0);
    }

    #[test]
    fn ids_are_distinct() {
        let hub = NodeStyleHub::new();
        let a = hub.register_client().0;
        let b = hub.register_client().0;
        assert_ne!(a, b);
    }
}
