//! Cluster test helpers: hub nodes joined through a test `redis-server`
//! (or a proxy in front of it), and an SSE client that records the event
//! frames it receives and resumes with its `Last-Event-ID`.

use super::{config, publish, subscribe, wait_until, Raw};
use ssehub_tokio::cluster::{ClusterConfig, LinkState};
use ssehub_tokio::server::Server;
use std::net::SocketAddr;
use std::time::Duration;

/// Starts a node on an ephemeral port, joined to the cluster at `url`
/// with the test prefix, and waits until it is subscribed and caught up.
pub async fn node(url: &str, name: &str) -> Server {
    let server = node_unwaited(url, name).await;
    wait_up(&server).await;
    server
}

pub async fn node_unwaited(url: &str, name: &str) -> Server {
    super::start(config_for(url, name)).await
}

/// The configuration of a test node named `name` joined to `url`.
pub fn config_for(url: &str, name: &str) -> ssehub_tokio::server::ServerConfig {
    let mut config = config();
    config.hub.sequencing = ssehub_core::Sequencing::External;
    let mut cluster = ClusterConfig::new(url).node_name(name).prefix("t");
    // Faults are detected by events; these only bound how long a silent
    // link may hide one.
    cluster.probe_interval = Duration::from_millis(500);
    cluster.probe_timeout = Duration::from_secs(2);
    cluster.reconnect_max = Duration::from_millis(200);
    // Presence parts refresh fast, so a dead node drops out in 300 ms.
    cluster.presence_interval = Duration::from_millis(100);
    config.cluster = Some(cluster);
    config
}

pub fn link(server: &Server) -> LinkState {
    server.backplane().expect("clustered").state()
}

pub async fn wait_up(server: &Server) {
    wait_until("the node is up", || link(server) == LinkState::Up).await;
}

/// The newest seq a node has applied.
pub fn position(server: &Server) -> u64 {
    server.hub().last_event_id().seq()
}

/// Waits until `server` has applied (or accounted for) seq `seq`.
pub async fn wait_applied(server: &Server, seq: u64) {
    wait_until(&format!("seq {seq} applied"), || position(server) >= seq).await;
}

/// Publishes `data` on `topic` through `addr`; returns the id.
pub async fn publish_ok(addr: SocketAddr, topic: &str, data: &str) -> String {
    let (status, body) = publish(addr, &format!(r#"{{"topic":"{topic}","data":"{data}"}}"#)).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["id"].as_str().expect("id").to_owned()
}

/// The epoch of an id `<epoch>-<seq>`.
pub fn epoch_of(id: &str) -> &str {
    id.split_once('-').expect("epoch-seq").0
}

/// The seq of an id `<epoch>-<seq>`.
pub fn seq_of(id: &str) -> u64 {
    id.split_once('-')
        .expect("epoch-seq")
        .1
        .parse()
        .expect("seq")
}

/// One event frame as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// `(id, data)`.
    Event(String, String),
    /// A reset, with its id.
    Reset(String),
}

/// A stream on some node for some topics; remembers the last id.
pub struct Client {
    raw: Option<Raw>,
    pub last_id: Option<String>,
    pub seen: Vec<Seen>,
    topics: Vec<String>,
}

impl Client {
    pub async fn open(addr: SocketAddr, topics: &[&str]) -> Self {
        let mut client = Self {
            raw: None,
            last_id: None,
            seen: Vec::new(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        };
        client.reconnect(addr).await;
        client
    }

    /// Opens a new stream on `addr` with the last id seen.
    pub async fn reconnect(&mut self, addr: SocketAddr) {
        let query: Vec<String> = self.topics.iter().map(|t| format!("topic={t}")).collect();
        let path = format!("/events?{}", query.join("&"));
        let extra = match &self.last_id {
            Some(id) => format!("Last-Event-ID: {id}\r\n"),
            None => String::new(),
        };
        let (raw, _) = subscribe(addr, &path, &extra).await;
        self.raw = Some(raw);
    }

    /// Reads frames until `n` more events or resets were seen (heartbeats
    /// and others skipped); returns them.
    pub async fn read(&mut self, n: usize) -> Vec<Seen> {
        let mut out = Vec::new();
        // One bound for the whole read: heartbeats must not extend it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while out.len() < n {
            let raw = self.raw.as_mut().expect("connected");
            let frame = tokio::time::timeout_at(deadline, raw.frame())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out after {out:?} (seen before: {:?})", self.seen)
                })
                .unwrap_or_else(|| panic!("stream ended after {out:?}"));
            let id = frame.lines().find_map(|l| l.strip_prefix("id: "));
            let Some(id) = id else { continue };
            self.last_id = Some(id.to_owned());
            let seen = if frame.lines().any(|l| l == "event: reset") {
                Seen::Reset(id.to_owned())
            } else {
                let data: Vec<&str> = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                Seen::Event(id.to_owned(), data.join("\n"))
            };
            out.push(seen.clone());
            self.seen.push(seen);
        }
        out
    }

    /// Reads until the event with data `data` (inclusive).
    pub async fn read_until(&mut self, data: &str) -> Vec<Seen> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let seen = self.read(1).await.remove(0);
            out.push(seen.clone());
            if matches!(&seen, Seen::Event(_, d) if d == data) {
                return out;
            }
        }
        panic!("{data:?} never came: {out:?}");
    }

    /// Drops the connection (the client went away).
    pub fn disconnect(&mut self) {
        self.raw = None;
    }
}

/// Event data of what was seen, resets as `"reset"`.
pub fn datas(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| match s {
            Seen::Event(_, d) => d.clone(),
            Seen::Reset(_) => "reset".to_owned(),
        })
        .collect()
}
