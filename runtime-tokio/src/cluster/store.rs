//! [`Store`]: the command side of the backplane, one reconnecting
//! connection ([`ConnectionManager`]) running the scripts of
//! the [Lua scripts](super::scripts).
//!
//! The connection manager is created lazily, on first use, and kept: it
//! reconnects by itself when Redis comes back. Every call has a deadline
//! (`command_timeout`), so a Redis that hangs answers as a Redis that is
//! down: an error, never a stuck request.

use super::scripts::{self, Cut, Keys, ReplyError};
use super::BackplaneError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use ssehub_core::ClientId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Most topics read by one history script (bounds how long one script
/// holds Redis).
pub const HISTORY_BATCH: usize = 64;

/// History retention, as the publish script applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// `MAXLEN ~` of each topic's stream.
    pub max_len: usize,
    /// `EXPIRE` of a stream, refreshed by every publish to it.
    pub age: Duration,
    /// `EXPIRE` of a topic's meta hash (how long the hub remembers that a
    /// stream existed after it expired).
    pub meta_ttl: Duration,
}

/// One node's presence: its name and its subscribers per topic.
pub type NodePresence = (String, Vec<(String, u64)>);

/// A node's totals, as it writes them with its presence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeTotals {
    /// Its active clients (every stream, dashboards included).
    pub connections: u64,
    /// Its topics with at least one subscriber (all of them, also those
    /// past the cap on topics written).
    pub topics: u64,
    /// Its subscriptions: the sum of its topics' subscribers.
    pub subscribers: u64,
}

/// One topic's part of a node's presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPart {
    /// The topic.
    pub topic: String,
    /// The node's subscribers to it.
    pub subscribers: u64,
    /// The lowest of their client ids, in increasing order: all of them,
    /// or fewer when a cap was reached.
    pub clients: Vec<ClientId>,
}

/// What a node writes as its presence: one snapshot, replaced whole (CP1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceWrite {
    /// The node's totals.
    pub totals: NodeTotals,
    /// Its topics with subscribers (at most the cap on topics).
    pub topics: Vec<TopicPart>,
}

/// One live node's part of a topic, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeClients {
    /// The node's name.
    pub node: String,
    /// Its subscribers to the topic.
    pub subscribers: u64,
    /// The client ids it listed, in increasing order.
    pub clients: Vec<ClientId>,
}

impl NodeClients {
    /// Whether the node has subscribers it did not list (a cap was
    /// reached).
    pub fn truncated(&self) -> bool {
        (self.clients.len() as u64) < self.subscribers
    }
}

/// The command side of the backplane. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    keys: Keys,
    retention: Retention,
    command_timeout: Duration,
    /// Created on first use; `ConnectionManager` is a cheap clone.
    conn: Mutex<Option<ConnectionManager>>,
    publish: Script,
    history: Script,
    probe: Script,
    presence_write: Script,
    presence_leave: Script,
    presence_read: Script,
    presence_clients: Script,
    presence_nodes: Script,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("keys", &self.inner.keys)
            .field("retention", &self.inner.retention)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store for `client` under `keys`. Connects on first use.
    pub fn new(
        client: Client,
        keys: Keys,
        retention: Retention,
        command_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                keys,
                retention,
                command_timeout,
                conn: Mutex::new(None),
                publish: Script::new(scripts::PUBLISH),
                history: Script::new(scripts::HISTORY),
                probe: Script::new(scripts::PROBE),
                presence_write: Script::new(scripts::PRESENCE_WRITE),
                presence_leave: Script::new(scripts::PRESENCE_LEAVE),
                presence_read: Script::new(scripts::PRESENCE_READ),
                presence_clients: Script::new(scripts::PRESENCE_CLIENTS),
                presence_nodes: Script::new(scripts::PRESENCE_NODES),
            }),
        }
    }

    /// The key names.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    async fn conn(&self) -> Result<ConnectionManager, BackplaneError> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1))
            .set_connection_timeout(Some(self.inner.command_timeout))
            .set_response_timeout(Some(self.inner.command_timeout));
        let conn = tokio::time::timeout(
            self.inner.command_timeout,
            self.inner.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| BackplaneError::Timeout)??;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn run(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<redis::Value, BackplaneError> {
        let mut conn = self.conn().await?;
        tokio::time::timeout(
            self.inner.command_timeout,
            invocation.invoke_async::<redis::Value>(&mut conn),
        )
        .await
        .map_err(|_| BackplaneError::Timeout)?
        .map_err(BackplaneError::from)
    }

    /// Sequences and publishes one event (its encoded `body`) on `topic`:
    /// returns its `(epoch, seq)`.
    ///
    /// # Errors
    ///
    /// [`BackplaneError`]: Redis unreachable, slow or refusing. A timeout
    /// is ambiguous: the event may have been published.
    pub async fn publish(
        &self,
        topic: &str,
        body: &[u8],
        candidate_epoch: u64,
    ) -> Result<(u64, u64), BackplaneError> {
        let retention = self.inner.retention;
        let mut invocation = self.inner.publish.prepare_invoke();
        invocation
            .arg(self.inner.keys.prefix())
            .arg(candidate_epoch.to_string())
            .arg(topic)
            .arg(body)
            .arg(retention.max_len.max(1))
            .arg(retention.age.as_secs().max(1))
            .arg(retention.meta_ttl.as_secs().max(1));
        let reply = self.run(invocation).await?;
        Ok(scripts::parse_published(&reply)?)
    }

    /// Reads, atomically per batch of [`HISTORY_BATCH`] topics, every event
    /// of `topics` after seq `after`, with the cluster's epoch and top.
    /// Later batches are cut at the first batch's top, so the whole answer
    /// is one cut.
    ///
    /// # Errors
    ///
    /// [`BackplaneError`].
    pub async fn cut(
        &self,
        after: u64,
        topics: &[String],
        candidate_epoch: u64,
    ) -> Result<Cut, BackplaneError> {
        let mut whole: Option<Cut> = None;
        let batches: Vec<&[String]> = if topics.is_empty() {
            vec![&[]]
        } else {
            topics.chunks(HISTORY_BATCH).collect()
        };
        for batch in batches {
            let mut invocation = self.inner.history.prepare_invoke();
            invocation
                .arg(self.inner.keys.prefix())
                .arg(candidate_epoch.to_string())
                .arg(after);
            for topic in batch {
                invocation.arg(topic.as_str());
            }
            let reply = self.run(invocation).await?;
            let mut cut = scripts::parse_cut(reply, batch)?;
            match whole.as_mut() {
                None => whole = Some(cut),
                Some(first) => {
                    if cut.epoch != first.epoch {
                        return Err(BackplaneError::EpochChanged);
                    }
                    for topic in &mut cut.topics {
                        topic.events.retain(|(seq, _)| *seq <= first.top);
                        topic.complete_after = topic.complete_after.min(first.top);
                    }
                    first.topics.append(&mut cut.topics);
                }
            }
        }
        whole.ok_or(BackplaneError::Reply(ReplyError("no history batch")))
    }

    /// Publishes `<epoch> <top>` on `channel` (a node's probe channel).
    ///
    /// # Errors
    ///
    /// [`BackplaneError`].
    pub async fn probe(&self, channel: &str) -> Result<(), BackplaneError> {
        let mut invocation = self.inner.probe.prepare_invoke();
        invocation.arg(self.inner.keys.prefix()).arg(channel);
        self.run(invocation).await.map(drop)
    }

    /// Replaces `node`'s presence with `part` (its totals, and per topic
    /// its subscribers and listed client ids), expiring after `ttl` unless
    /// written again (see `PRESENCE_WRITE`: CP1, CP2).
    ///
    /// # Errors
    ///
    /// [`BackplaneError`].
    pub async fn write_presence(
        &self,
        node: &str,
        ttl: Duration,
        part: &PresenceWrite,
    ) -> Result<(), BackplaneError> {
        let mut invocation = self.inner.presence_write.prepare_invoke();
        let totals = part.totals;
        invocation
            .arg(self.inner.keys.prefix())
            .arg(node)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(totals.connections)
            .arg(totals.topics)
            .arg(totals.subscribers);
        for topic in &part.topics {
            let ids: Vec<String> = topic.clients.iter().map(ToString::to_string).collect();
            invocation
                .arg(&topic.topic)
                .arg(topic.subscribers)
                .arg(ids.join(" "));
        }
        self.run(invocation).await.map(drop)
    }

    /// Removes `node`'s presence now.
    ///
    /// # Errors
    ///
    /// [`BackplaneError`].
    pub async fn leave_presence(&self, node: &str) -> Result<(), BackplaneError> {
        let mut invocation = self.inner.presence_leave.prepare_invoke();
        invocation.arg(self.inner.keys.prefix()).arg(node);
        self.run(invocation).await.map(drop)
    }

    /// The live nodes' presence: per node, `(topic, subscribers)`; with
    /// `topic`, only that topic's (and only nodes that have subscribers
    /// to it).
    ///
    /// # Errors
    ///
    /// [`BackplaneError`], and [`BackplaneError::Reply`] for a reply the
    /// script never returns.
    pub async fn read_presence(
        &self,
        topic: Option<&str>,
    ) -> Result<Vec<NodePresence>, BackplaneError> {
        let mut invocation = self.inner.presence_read.prepare_invoke();
        invocation.arg(self.inner.keys.prefix());
        if let Some(topic) = topic {
            invocation.arg(topic);
        }
        let reply = self.run(invocation).await?;
        parse_presence(reply).ok_or(BackplaneError::Reply(ReplyError("presence")))
    }

    /// `topic`'s subscribers and listed client ids on every live node that
    /// has subscribers to it, each node's from one write (CP1).
    ///
    /// # Errors
    ///
    /// [`BackplaneError`], and [`BackplaneError::Reply`] for a reply the
    /// script never returns.
    pub async fn read_topic_clients(
        &self,
        topic: &str,
    ) -> Result<Vec<NodeClients>, BackplaneError> {
        let mut invocation = self.inner.presence_clients.prepare_invoke();
        invocation.arg(self.inner.keys.prefix()).arg(topic);
        let reply = self.run(invocation).await?;
        parse_clients(reply).ok_or(BackplaneError::Reply(ReplyError("presence clients")))
    }

    /// Every live node's totals, by node.
    ///
    /// # Errors
    ///
    /// [`BackplaneError`], and [`BackplaneError::Reply`] for a reply the
    /// script never returns.
    pub async fn read_nodes(&self) -> Result<Vec<(String, NodeTotals)>, BackplaneError> {
        let mut invocation = self.inner.presence_nodes.prepare_invoke();
        invocation.arg(self.inner.keys.prefix());
        let reply = self.run(invocation).await?;
        parse_nodes(reply).ok_or(BackplaneError::Reply(ReplyError("presence nodes")))
    }
}

/// `{node, {topic, count, ...}, ...}` as `PRESENCE_READ` returns it.
fn parse_presence(reply: redis::Value) -> Option<Vec<NodePresence>> {
    let redis::Value::Array(items) = reply else {
        return None;
    };
    let mut nodes = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let Some(node) = items.next() {
        let node = text(node)?;
        let redis::Value::Array(pairs) = items.next()? else {
            return None;
        };
        let mut counts = Vec::with_capacity(pairs.len() / 2);
        let mut pairs = pairs.into_iter();
        while let Some(topic) = pairs.next() {
            let topic = text(topic)?;
            let count = text(pairs.next()?)?.parse().ok()?;
            counts.push((topic, count));
        }
        nodes.push((node, counts));
    }
    Some(nodes)
}

/// `{node, count, ids, ...}` as `PRESENCE_CLIENTS` returns it.
fn parse_clients(reply: redis::Value) -> Option<Vec<NodeClients>> {
    let redis::Value::Array(items) = reply else {
        return None;
    };
    if items.len() % 3 != 0 {
        return None;
    }
    let mut nodes = Vec::with_capacity(items.len() / 3);
    let mut items = items.into_iter();
    while let (Some(node), Some(count), Some(ids)) = (items.next(), items.next(), items.next()) {
        let clients = text(ids)?
            .split_ascii_whitespace()
            .map(|id| id.parse().ok())
            .collect::<Option<Vec<ClientId>>>()?;
        nodes.push(NodeClients {
            node: text(node)?,
            subscribers: text(count)?.parse().ok()?,
            clients,
        });
    }
    Some(nodes)
}

/// `{node, connections, topics, subscribers, ...}` as `PRESENCE_NODES`
/// returns it.
fn parse_nodes(reply: redis::Value) -> Option<Vec<(String, NodeTotals)>> {
    let redis::Value::Array(items) = reply else {
        return None;
    };
    if items.len() % 4 != 0 {
        return None;
    }
    let number = |value: redis::Value| text(value)?.parse::<u64>().ok();
    let mut nodes = Vec::with_capacity(items.len() / 4);
    let mut items = items.into_iter();
    while let Some(node) = items.next() {
        let node = text(node)?;
        let totals = NodeTotals {
            connections: number(items.next()?)?,
            topics: number(items.next()?)?,
            subscribers: number(items.next()?)?,
        };
        nodes.push((node, totals));
    }
    Some(nodes)
}

fn text(value: redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        redis::Value::SimpleString(s) => Some(s),
        redis::Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn client_lists_and_totals_parse_and_bad_shapes_are_refused() {
        let reply = Value::Array(vec![
            bulk("a"),
            bulk("3"),
            bulk("1.1 2.5"),
            bulk("b"),
            bulk("1"),
            bulk(""),
        ]);
        let nodes = parse_clients(reply).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            nodes[0].clients,
            ["1.1".parse::<ClientId>().unwrap(), "2.5".parse().unwrap()]
        );
        assert!(nodes[0].truncated() && nodes[1].truncated());
        assert_eq!((nodes[1].node.as_str(), nodes[1].subscribers), ("b", 1));
        assert!(parse_clients(Value::Array(vec![bulk("a"), bulk("1"), bulk("1.0")])).is_none());
        assert!(parse_clients(Value::Array(vec![bulk("a"), bulk("1")])).is_none());
        assert!(parse_clients(Value::Array(vec![bulk("a"), bulk("x"), bulk("")])).is_none());

        let reply = Value::Array(vec![bulk("a"), bulk("4"), bulk("2"), Value::Int(5)]);
        assert_eq!(
            parse_nodes(reply).unwrap(),
            [(
                "a".to_owned(),
                NodeTotals {
                    connections: 4,
                    topics: 2,
                    subscribers: 5
                }
            )]
        );
        assert!(parse_nodes(Value::Array(vec![bulk("a"), bulk("4")])).is_none());
        assert!(parse_nodes(Value::Array(vec![
            bulk("a"),
            bulk("-1"),
            bulk("0"),
            bulk("0")
        ]))
        .is_none());
        assert!(parse_nodes(Value::Nil).is_none());
    }
}
