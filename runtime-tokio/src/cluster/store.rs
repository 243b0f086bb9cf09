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

    /// Replaces `node`'s presence with `counts` (topic, subscribers),
    /// expiring after `ttl` unless written again (see `PRESENCE_WRITE`).
    ///
    /// # Errors
    ///
    /// [`BackplaneError`].
    pub async fn write_presence(
        &self,
        node: &str,
        ttl: Duration,
        counts: &[(String, usize)],
    ) -> Result<(), BackplaneError> {
        let mut invocation = self.inner.presence_write.prepare_invoke();
        invocation
            .arg(self.inner.keys.prefix())
            .arg(node)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        for (topic, count) in counts {
            invocation.arg(topic).arg(*count);
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

fn text(value: redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        redis::Value::SimpleString(s) => Some(s),
        redis::Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}
