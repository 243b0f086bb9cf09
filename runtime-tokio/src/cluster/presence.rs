//! Cluster-wide presence: each node keeps its part (subscribers and a
//! bounded list of client ids per topic, and its totals) in Redis under a
//! TTL it refreshes every presence interval, so any node can answer
//! `GET /topics/{topic}` (and `?clients=true`) with the cluster's figures,
//! the dashboard can show every node, and a node that dies (or loses
//! Redis) drops out within the TTL.
//!
//! Invariants:
//! - **CP1** (a node's part is one snapshot): the node's hashes (counts,
//!   client ids, totals) are replaced whole by one script
//!   (`PRESENCE_WRITE`), so readers never see half of two snapshots, and a
//!   topic's count and ids come from one read of the topic;
//! - **CP2** (the dead disappear): an entry lives `3 ×` the interval on
//!   Redis's clock unless refreshed; every read drops expired nodes first.
//!   A node that stops gracefully removes its part at once;
//! - **CP3** (bounded): a node writes at most [`PresenceLimits::topics`]
//!   topics (its busiest), at most [`PresenceLimits::clients_per_topic`]
//!   ids per topic (the lowest, in id order) and at most
//!   [`PresenceLimits::clients_per_node`] ids in all (busiest topics
//!   first); a topic whose ids were cut is written with its full count, so
//!   readers see that the list is truncated (fewer ids than subscribers).
//!   The totals count every topic, written or not.
//!
//! The figures are as fresh as the interval: a connect shows in the
//! cluster's figures within one interval, a dead node's clients leave
//! them within the TTL.

use super::backplane::Shared;
use super::store::{NodeTotals, PresenceWrite, TopicPart};
use crate::server::is_reserved;
use ssehub_core::{ClientPage, Hub, TopicPage, TopicSort, MAX_PRESENCE_PAGE};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How many intervals a node's presence outlives its last refresh.
pub(super) const TTL_INTERVALS: u32 = 3;

/// Default of [`PresenceLimits::topics`].
pub const PRESENCE_TOPICS: usize = 10_000;

/// Default of [`PresenceLimits::clients_per_topic`]: one full page.
pub const PRESENCE_CLIENTS_PER_TOPIC: usize = MAX_PRESENCE_PAGE;

/// Default of [`PresenceLimits::clients_per_node`].
pub const PRESENCE_CLIENTS_PER_NODE: usize = 20_000;

/// How much of its presence a node writes to Redis (CP3). With the
/// defaults a node's part is at most 10 000 counts and 20 000 ids
/// (a few hundred KB), whatever its clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceLimits {
    /// Most topics written (the busiest by subscribers).
    pub topics: usize,
    /// Most client ids written per topic, at most [`MAX_PRESENCE_PAGE`]
    /// (larger values act as it); `0` lists none.
    pub clients_per_topic: usize,
    /// Most client ids written in all.
    pub clients_per_node: usize,
}

impl Default for PresenceLimits {
    fn default() -> Self {
        Self {
            topics: PRESENCE_TOPICS,
            clients_per_topic: PRESENCE_CLIENTS_PER_TOPIC,
            clients_per_node: PRESENCE_CLIENTS_PER_NODE,
        }
    }
}

impl PresenceLimits {
    /// With at most `n` client ids per topic.
    #[must_use]
    pub fn clients_per_topic(mut self, n: usize) -> Self {
        self.clients_per_topic = n;
        self
    }

    /// With at most `n` client ids per node.
    #[must_use]
    pub fn clients_per_node(mut self, n: usize) -> Self {
        self.clients_per_node = n;
        self
    }

    /// With at most `n` topics per node.
    #[must_use]
    pub fn topics(mut self, n: usize) -> Self {
        self.topics = n;
        self
    }
}

/// A node's presence now, within `limits` (CP3). Topics the hub reserves
/// (the dashboard's) are written but left out of the totals.
pub(crate) fn snapshot(hub: &Hub, limits: &PresenceLimits) -> PresenceWrite {
    let mut part = PresenceWrite {
        totals: NodeTotals {
            connections: hub.metrics().clients_active,
            ..NodeTotals::default()
        },
        topics: Vec::new(),
    };
    let mut budget = limits.clients_per_node;
    // Pages are cut by a keyset cursor: a topic whose count moved may be
    // seen twice; it counts once.
    let mut seen = HashSet::new();
    let mut page = TopicPage::new(TopicSort::Subscribers).limit(MAX_PRESENCE_PAGE);
    loop {
        let list = hub.topics_snapshot(&page);
        let mut rest_empty = false;
        for topic in &list.topics {
            if topic.subscribers == 0 {
                // Most subscribers first: the rest have none either.
                rest_empty = true;
                break;
            }
            if !seen.insert(topic.name.clone()) {
                continue;
            }
            if !is_reserved(&topic.name) {
                part.totals.topics += 1;
                part.totals.subscribers += topic.subscribers as u64;
            }
            if part.topics.len() >= limits.topics {
                continue;
            }
            let take = limits.clients_per_topic.min(budget);
            let (subscribers, clients) = if take == 0 {
                (topic.subscribers, Vec::new())
            } else {
                // Count and ids under one lock (CP1's "one read").
                match hub.topic_presence(&topic.name, Some(&ClientPage::new().limit(take))) {
                    Some(now) => (
                        now.summary.subscribers,
                        now.clients.map(|c| c.ids).unwrap_or_default(),
                    ),
                    None => continue,
                }
            };
            if subscribers == 0 {
                continue;
            }
            budget -= clients.len().min(budget);
            part.topics.push(TopicPart {
                topic: topic.name.clone(),
                subscribers: subscribers as u64,
                clients,
            });
        }
        match list.next {
            Some(next) if !rest_empty => page = page.after(next),
            _ => return part,
        }
    }
}

/// Writes this node's presence every interval until stopped, then removes
/// it (best effort: if Redis is away, the TTL does it).
pub(crate) async fn run(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let interval = shared
        .config
        .presence_interval
        .max(Duration::from_millis(10));
    let ttl = interval * TTL_INTERVALS;
    let node = shared.config.node_name.clone();
    let limits = shared.config.presence_limits;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => break,
        }
        if *stopped.borrow() {
            break;
        }
        let part = snapshot(&shared.hub, &limits);
        if let Err(error) = shared.store.write_presence(&node, ttl, &part).await {
            tracing::debug!(%error, node = %node, "cluster: presence not written");
        }
    }
    if let Err(error) = shared.store.leave_presence(&node).await {
        tracing::debug!(%error, node = %node, "cluster: presence not removed (it expires)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssehub_core::{ClientStream, HubConfig, ReserveOptions};

    fn join(hub: &Hub, topics: &[&str]) -> ClientStream {
        let mut options = ReserveOptions::new();
        for topic in topics {
            options = options.topic(*topic);
        }
        let reservation = hub.reserve(options).unwrap();
        let stream = reservation.stream();
        reservation.activate().unwrap();
        stream
    }

    #[test]
    fn the_snapshot_honours_every_cap_and_keeps_full_counts() {
        let hub = Hub::new(HubConfig::default(), std::time::Instant::now());
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(join(&hub, &["busy", "quiet"]));
        }
        clients.push(join(&hub, &["busy"]));
        clients.push(join(&hub, &["$ssehub/stats"]));
        let all = snapshot(&hub, &PresenceLimits::default());
        assert_eq!(
            all.totals,
            NodeTotals {
                connections: 5,
                topics: 2,
                subscribers: 7
            },
            "the reserved topic is left out of the totals"
        );
        let busy = &all.topics[0];
        assert_eq!((busy.topic.as_str(), busy.subscribers), ("busy", 4));
        assert_eq!(busy.clients.len(), 4);
        assert!(busy.clients.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(all.topics.len(), 3);

        let capped = snapshot(
            &hub,
            &PresenceLimits::default()
                .clients_per_topic(2)
                .clients_per_node(3)
                .topics(2),
        );
        assert_eq!(capped.totals, all.totals, "totals count every topic");
        let parts: Vec<(&str, u64, usize)> = capped
            .topics
            .iter()
            .map(|t| (t.topic.as_str(), t.subscribers, t.clients.len()))
            .collect();
        assert_eq!(parts, [("busy", 4, 2), ("quiet", 3, 1)]);
        assert_eq!(capped.topics[0].clients, busy.clients[..2]);
        let none = snapshot(&hub, &PresenceLimits::default().clients_per_topic(0));
        assert!(none.topics.iter().all(|t| t.clients.is_empty()));
        assert_eq!(none.topics.len(), 3);
    }
}
