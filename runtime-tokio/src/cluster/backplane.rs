//! [`Backplane`]: one node's membership in a cluster: publishing through
//! Redis, following the events channel (`follower`), and reading history
//! for resumes.

use super::follower;
use super::metrics::{bump, BackplaneCounters, Counters, LinkState};
use super::store::{NodeClients, NodePresence, NodeTotals, Store};
use super::{BackplaneError, ClusterConfig, Keys};
use ssehub_core::codec::Event;
use ssehub_core::{EventId, History, Hub, PublishError, TopicHistory};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a clustered publish failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterPublishError {
    /// The event or topic is invalid (as for a local publish): nothing
    /// reached Redis.
    Refused(PublishError),
    /// Redis could not sequence it (down, slow): retry later.
    Backplane(BackplaneError),
}

impl fmt::Display for ClusterPublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(e) => write!(f, "{e}"),
            Self::Backplane(e) => write!(f, "cannot publish through the backplane: {e}"),
        }
    }
}

impl std::error::Error for ClusterPublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Refused(e) => Some(e),
            Self::Backplane(e) => Some(e),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) hub: Hub,
    pub(crate) store: Store,
    pub(crate) client: redis::Client,
    pub(crate) config: ClusterConfig,
    pub(crate) counters: Counters,
    /// Notified whenever the hub's position moves (events applied, a
    /// catch-up or a new epoch): resumes wait on it for a lagging node.
    pub(crate) advanced: tokio::sync::Notify,
    /// Asks the follower to probe now: a resume saw Redis in an epoch the
    /// node has not begun. A permit is kept if the follower is busy.
    pub(crate) probe_now: tokio::sync::Notify,
    /// Set while the follower catches up (CATCH-UP), cleared, with
    /// `advanced` notified, when it ends, however it ends.
    pub(crate) catching_up: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Waits until the hub's position reaches `seq` of `epoch`, at most
    /// `within`; whether it did.
    async fn reach(&self, epoch: u64, seq: u64, within: std::time::Duration) -> bool {
        let reached = |position: EventId| position.epoch() == epoch && position.seq() >= seq;
        // A position in another epoch will not move to `seq` of this one.
        self.wait_for(within, |position| {
            position.epoch() != epoch || reached(position)
        })
        .await;
        reached(self.hub.last_event_id())
    }

    /// Has the follower probe now, then waits until the hub has begun
    /// `epoch` and ended the catch-up that began it, at most `within`;
    /// whether it has.
    async fn reach_epoch(&self, epoch: u64, within: std::time::Duration) -> bool {
        let done = |position: EventId| {
            position.epoch() == epoch && !self.catching_up.load(Ordering::SeqCst)
        };
        self.probe_now.notify_one();
        self.wait_for(within, done).await;
        done(self.hub.last_event_id())
    }

    /// Waits, at most `within`, until `done` holds of the hub's position,
    /// checked again each time `advanced` is notified.
    async fn wait_for(&self, within: std::time::Duration, done: impl Fn(EventId) -> bool) {
        let wait = async {
            loop {
                let advanced = self.advanced.notified();
                tokio::pin!(advanced);
                advanced.as_mut().enable();
                if done(self.hub.last_event_id()) {
                    return;
                }
                advanced.await;
            }
        };
        let _ = tokio::time::timeout(within, wait).await;
    }
}

/// A node's link to the cluster. Cheap to clone; the follower task stops
/// when [`Backplane::stop`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Backplane {
    shared: Arc<Shared>,
    task: Arc<TaskGuard>,
}

struct TaskGuard {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
    presence: JoinHandle<()>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.handle.abort();
        self.presence.abort();
    }
}

/// The cluster's subscribers of one topic, as the live nodes reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterCount {
    /// All nodes together.
    pub subscribers: u64,
    /// Per node that has subscribers to the topic, by name.
    pub nodes: Vec<(String, u64)>,
}

impl fmt::Debug for Backplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backplane")
            .field("node", &self.shared.config.node_name)
            .field("prefix", &self.shared.config.prefix)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Backplane {
    /// Joins the cluster: spawns the follower, which connects (retrying
    /// with backoff until Redis answers), moves `hub` to the cluster's
    /// epoch and applies every event published from then on. `hub` must
    /// be externally sequenced ([`ssehub_core::Sequencing::External`]).
    ///
    /// # Errors
    ///
    /// [`BackplaneError::Redis`] for a URL that does not parse; Redis
    /// being down is not an error here (the node is `Connecting`).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(hub: Hub, config: ClusterConfig) -> Result<Self, BackplaneError> {
        let client = redis::Client::open(config.url.as_str())?;
        let store = Store::new(
            client.clone(),
            Keys::new(config.prefix.clone()),
            config.retention,
            config.command_timeout,
        );
        let shared = Arc::new(Shared {
            hub,
            store,
            client,
            config,
            counters: Counters::default(),
            advanced: tokio::sync::Notify::new(),
            probe_now: tokio::sync::Notify::new(),
            catching_up: std::sync::atomic::AtomicBool::new(false),
        });
        let (stop, stopped) = watch::channel(false);
        let presence = tokio::spawn(super::presence::run(Arc::clone(&shared), stopped.clone()));
        let handle = tokio::spawn(follower::run(Arc::clone(&shared), stopped));
        tracing::info!(
            node = %shared.config.node_name,
            prefix = %shared.config.prefix,
            "cluster: joining through redis"
        );
        Ok(Self {
            shared,
            task: Arc::new(TaskGuard {
                stop,
                handle,
                presence,
            }),
        })
    }

    /// The cluster-wide subscribers of `topic`: every live node's part
    /// (refreshed every `presence_interval`; a node that stopped
    /// refreshing drops out within three intervals).
    ///
    /// # Errors
    ///
    /// [`BackplaneError`]: Redis unreachable or slow.
    pub async fn cluster_count(&self, topic: &str) -> Result<ClusterCount, BackplaneError> {
        let nodes = self.shared.store.read_presence(Some(topic)).await?;
        let mut count = ClusterCount::default();
        for (node, topics) in nodes {
            let n: u64 = topics.iter().map(|(_, c)| c).sum();
            count.subscribers += n;
            count.nodes.push((node, n));
        }
        count.nodes.sort();
        Ok(count)
    }

    /// Every live node's subscribers per topic: `(node, [(topic, n)])`.
    ///
    /// # Errors
    ///
    /// [`BackplaneError`].
    pub async fn cluster_presence(&self) -> Result<Vec<NodePresence>, BackplaneError> {
        let mut nodes = self.shared.store.read_presence(None).await?;
        nodes.sort();
        Ok(nodes)
    }

    /// `topic`'s subscribers and listed client ids on every live node that
    /// has subscribers to it, by node name; each node's count and ids come
    /// from one of its writes (CP1) and its list is bounded (CP3:
    /// [`NodeClients::truncated`] says when it was cut).
    ///
    /// # Errors
    ///
    /// [`BackplaneError`]: Redis unreachable or slow.
    pub async fn cluster_clients(&self, topic: &str) -> Result<Vec<NodeClients>, BackplaneError> {
        let mut nodes = self.shared.store.read_topic_clients(topic).await?;
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    /// Every live node's totals (connections, topics, subscriptions), by
    /// node name, as fresh as the presence interval.
    ///
    /// # Errors
    ///
    /// [`BackplaneError`]: Redis unreachable or slow.
    pub async fn cluster_nodes(&self) -> Result<Vec<(String, NodeTotals)>, BackplaneError> {
        let mut nodes = self.shared.store.read_nodes().await?;
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(nodes)
    }

    /// The link's state now.
    pub fn state(&self) -> LinkState {
        self.shared.counters.state()
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.shared.config.node_name
    }

    /// The command store (scripts), e.g. for tools and tests.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Publishes `event` on `topic` through Redis and returns its id. The
    /// event reaches this node's subscribers as every other node's: from
    /// the events channel, in order.
    ///
    /// # Errors
    ///
    /// [`ClusterPublishError::Refused`] for an invalid topic or event;
    /// [`ClusterPublishError::Backplane`] when Redis cannot take it. A
    /// timeout is ambiguous: the event may have been published.
    pub async fn publish(
        &self,
        topic: &str,
        event: &Event,
    ) -> Result<EventId, ClusterPublishError> {
        ssehub_core::validate_topic(topic)
            .map_err(|e| ClusterPublishError::Refused(PublishError::InvalidTopic(e)))?;
        let body = self
            .shared
            .hub
            .encode_body(event)
            .map_err(ClusterPublishError::Refused)?;
        match self
            .shared
            .store
            .publish(topic, &body, candidate_epoch())
            .await
        {
            Ok((epoch, seq)) => {
                bump(&self.shared.counters.published);
                Ok(EventId::new(epoch, seq))
            }
            Err(error) => {
                bump(&self.shared.counters.publish_errors);
                tracing::warn!(%error, topic, "cluster: publish failed");
                Err(ClusterPublishError::Backplane(error))
            }
        }
    }

    /// Reads from Redis every event of `topics` after `after`, for a
    /// resume ([`ssehub_core::Reservation::supply_history`]).
    ///
    /// # Errors
    ///
    /// [`BackplaneError`]; the caller answers the resume with a reset.
    pub async fn history(
        &self,
        after: EventId,
        topics: &[String],
    ) -> Result<History, BackplaneError> {
        bump(&self.shared.counters.history_reads);
        let cut = match self
            .shared
            .store
            .cut(after.seq(), topics, candidate_epoch())
            .await
        {
            Ok(cut) => cut,
            Err(error) => {
                bump(&self.shared.counters.history_failures);
                tracing::warn!(%error, "cluster: history read failed; the resume gets a reset");
                return Err(error);
            }
        };
        // The core replays only up to its own position: a node that has
        // not yet applied the client's last event (its subscription lags
        // the node the client came from) would answer with a reset. Wait
        // for it, briefly; an id above Redis's top is bogus, not lag.
        if cut.epoch == after.epoch()
            && after.seq() <= cut.top
            && !self
                .shared
                .reach(
                    after.epoch(),
                    after.seq(),
                    self.shared.config.command_timeout,
                )
                .await
        {
            tracing::warn!(
                after = %after,
                position = %self.shared.hub.last_event_id(),
                "cluster: this node lags the client's id; the resume gets a reset"
            );
        }
        // Redis is in an epoch this node has not begun (a flush or a
        // restart that no message has shown it yet). Resumed now, the
        // client would get the reset of its old id, then a second one when
        // the node's own epoch change reaches its stream. Have the node
        // look now, and wait for it, briefly, as for a lagging position.
        if cut.epoch != self.shared.hub.epoch()
            && !self
                .shared
                .reach_epoch(cut.epoch, self.shared.config.command_timeout)
                .await
        {
            tracing::warn!(
                redis_epoch = cut.epoch,
                position = %self.shared.hub.last_event_id(),
                "cluster: this node has not begun Redis's epoch; the resume may be reset twice"
            );
        }
        let topics = cut
            .topics
            .into_iter()
            .map(|topic| {
                let complete_after = topic.complete_after.max(after.seq()).min(cut.top);
                TopicHistory {
                    name: topic.topic,
                    complete_after,
                    through: cut.top,
                    events: topic
                        .events
                        .into_iter()
                        .filter(|(seq, _)| *seq > complete_after && *seq <= cut.top)
                        .collect(),
                }
            })
            .collect();
        Ok(History {
            epoch: cut.epoch,
            topics,
        })
    }

    /// The backplane's counters now.
    pub fn counters(&self) -> BackplaneCounters {
        self.shared.counters.snapshot()
    }

    /// Appends the backplane's metrics (Prometheus text) to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        self.shared
            .counters
            .render(&self.shared.config.node_name, out);
    }

    /// Stops following the cluster (the node keeps serving what it has).
    pub fn stop(&self) {
        let _ = self.task.stop.send(true);
    }
}

/// A fresh random epoch for the scripts to take when Redis has none: a
/// new one per call, so an epoch never comes back after a flush.
pub(crate) fn candidate_epoch() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    // Nonzero, and within JavaScript's exact integers for clients that
    // parse ids (they should not, but a short id is kinder).
    (hasher.finish() & ((1 << 53) - 1)).max(1)
}

impl crate::respond::HistorySource for Backplane {
    fn history<'a>(
        &'a self,
        after: EventId,
        topics: &'a [String],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<History>> + Send + 'a>> {
        Box::pin(async move { Backplane::history(self, after, topics).await.ok() })
    }
}
