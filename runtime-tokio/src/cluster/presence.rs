//! Cluster-wide presence: each node keeps its part (subscribers per topic)
//! in Redis under a TTL it refreshes every presence interval, so any node
//! can answer `GET /topics/{topic}` with the cluster's count, and a node
//! that dies (or loses Redis) drops out within the TTL.
//!
//! Invariants:
//! - **CP1** (a node's part is one snapshot): the node's hash is replaced
//!   whole by one script (`PRESENCE_WRITE`), so readers never see half of
//!   two snapshots;
//! - **CP2** (the dead disappear): an entry lives `3 ×` the interval on
//!   Redis's clock unless refreshed; every read drops expired nodes first.
//!   A node that stops gracefully removes its part at once.
//!
//! The counts are as fresh as the interval: a connect shows in the
//! cluster's figures within one interval, a dead node's clients leave
//! them within the TTL.

use super::backplane::Shared;
use ssehub_core::{TopicPage, TopicSort, MAX_PRESENCE_PAGE};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How many intervals a node's presence outlives its last refresh.
pub(super) const TTL_INTERVALS: u32 = 3;

/// A node's subscribers per topic now (topics with at least one).
pub(crate) fn local_counts(shared: &Shared) -> Vec<(String, usize)> {
    let mut counts = Vec::new();
    let mut page = TopicPage::new(TopicSort::Name).limit(MAX_PRESENCE_PAGE);
    loop {
        let list = shared.hub.topics_snapshot(&page);
        counts.extend(
            list.topics
                .iter()
                .filter(|t| t.subscribers > 0)
                .map(|t| (t.name.clone(), t.subscribers)),
        );
        match list.next {
            Some(next) => page = page.after(next),
            None => return counts,
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
        let counts = local_counts(&shared);
        if let Err(error) = shared.store.write_presence(&node, ttl, &counts).await {
            tracing::debug!(%error, node = %node, "cluster: presence not written");
        }
    }
    if let Err(error) = shared.store.leave_presence(&node).await {
        tracing::debug!(%error, node = %node, "cluster: presence not removed (it expires)");
    }
}
