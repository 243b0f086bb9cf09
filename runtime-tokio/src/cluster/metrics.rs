//! The backplane's counters and its link state, rendered into `/metrics`
//! beside the hub's.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Upper bounds (ms) of the lag histogram's buckets.
const LAG_BUCKETS_MS: [u64; 9] = [1, 2, 5, 10, 25, 50, 100, 500, 2500];

/// Where the node's link to Redis stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Connecting (at start, or after losing the link): publishes and
    /// history reads may fail, live events wait.
    Connecting,
    /// Subscribed and caught up: events flow.
    Up,
    /// The link was lost; reconnecting with backoff.
    Down,
}

impl LinkState {
    /// `connecting`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Up => "up",
            Self::Down => "down",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Up,
            2 => Self::Down,
            _ => Self::Connecting,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Connecting => 0,
            Self::Up => 1,
            Self::Down => 2,
        }
    }
}

/// A copy of a node's backplane counters ([`Backplane::counters`](super::Backplane::counters)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneCounters {
    /// Events applied from the backplane.
    pub applied: u64,
    /// Gaps detected in the ids.
    pub gaps: u64,
    /// Catch-ups from the streams.
    pub catch_ups: u64,
    /// New epochs followed.
    pub epoch_changes: u64,
    /// Topics recorded lost (trimmed before a catch-up).
    pub lost_topics: u64,
    /// Subscriptions lost and reopened.
    pub reconnects: u64,
    /// Probes sent.
    pub probes: u64,
    /// Publishes that failed.
    pub publish_errors: u64,
}

/// Counters of one node's backplane. Relaxed atomics: figures, not
/// synchronisation.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    state: AtomicU8,
    pub(crate) published: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) applied: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) catch_ups: AtomicU64,
    pub(crate) epoch_changes: AtomicU64,
    pub(crate) lost_topics: AtomicU64,
    pub(crate) lost_resets: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) probes: AtomicU64,
    pub(crate) probe_timeouts: AtomicU64,
    pub(crate) history_reads: AtomicU64,
    pub(crate) history_failures: AtomicU64,
    pub(crate) bad_messages: AtomicU64,
    lag_buckets: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
    lag_sum_ms: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Sets the state; returns the previous one.
    pub(crate) fn set_state(&self, state: LinkState) -> LinkState {
        LinkState::from_u8(self.state.swap(state.to_u8(), Ordering::Relaxed))
    }

    pub(crate) fn snapshot(&self) -> BackplaneCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BackplaneCounters {
            applied: get(&self.applied),
            gaps: get(&self.gaps),
            catch_ups: get(&self.catch_ups),
            epoch_changes: get(&self.epoch_changes),
            lost_topics: get(&self.lost_topics),
            reconnects: get(&self.reconnects),
            probes: get(&self.probes),
            publish_errors: get(&self.publish_errors),
        }
    }

    pub(crate) fn observe_lag(&self, ms: u64) {
        let bucket = LAG_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LAG_BUCKETS_MS.len());
        self.lag_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.lag_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Prometheus text (format 0.0.4), labelled with the node's name.
    pub(crate) fn render(&self, node: &str, out: &mut String) {
        let node = node.replace(['\\', '"', '\n'], "_");
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{{node=\"{node}\"}} {value}");
        };
        let state = self.state();
        family(
            "ssehub_redis_up",
            "gauge",
            "1 when the node is subscribed to Redis and caught up.",
            u64::from(state == LinkState::Up),
        );
        for (name, help, counter) in [
            (
                "ssehub_cluster_published_total",
                "Events this node published through Redis.",
                &self.published,
            ),
            (
                "ssehub_cluster_publish_errors_total",
                "Publishes that failed (Redis down or slow): answered 503.",
                &self.publish_errors,
            ),
            (
                "ssehub_cluster_applied_total",
                "Events applied from the backplane.",
                &self.applied,
            ),
            (
                "ssehub_cluster_duplicates_total",
                "Backplane events already applied (replays after a catch-up).",
                &self.duplicates,
            ),
            (
                "ssehub_cluster_gaps_total",
                "Gaps detected in the backplane's ids (missed PUB/SUB messages).",
                &self.gaps,
            ),
            (
                "ssehub_cluster_catch_ups_total",
                "Catch-ups from the topic streams.",
                &self.catch_ups,
            ),
            (
                "ssehub_cluster_epoch_changes_total",
                "New epochs seen (Redis flushed or restarted empty).",
                &self.epoch_changes,
            ),
            (
                "ssehub_cluster_lost_topics_total",
                "Topics whose missed events were trimmed from Redis before a catch-up.",
                &self.lost_topics,
            ),
            (
                "ssehub_cluster_lost_history_resets_total",
                "Clients sent a reset because history was lost (catch-up or epoch change).",
                &self.lost_resets,
            ),
            (
                "ssehub_cluster_reconnects_total",
                "Times the subscription to Redis was lost and reopened.",
                &self.reconnects,
            ),
            (
                "ssehub_cluster_probes_total",
                "Liveness probes sent on a quiet subscription.",
                &self.probes,
            ),
            (
                "ssehub_cluster_probe_timeouts_total",
                "Probes not seen back: the subscription was restarted.",
                &self.probe_timeouts,
            ),
            (
                "ssehub_cluster_history_reads_total",
                "Resumes that read history from Redis.",
                &self.history_reads,
            ),
            (
                "ssehub_cluster_history_failures_total",
                "Resumes whose history read failed (the client got a reset).",
                &self.history_failures,
            ),
            (
                "ssehub_cluster_bad_messages_total",
                "Messages on the events channel that did not decode.",
                &self.bad_messages,
            ),
        ] {
            let kind = "counter";
            family(name, kind, help, get(counter));
        }
        let name = "ssehub_cluster_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Backplane lag: Redis's publish time to applied on this node."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in LAG_BUCKETS_MS.iter().enumerate() {
            cumulative += get(&self.lag_buckets[i]);
            let _ = writeln!(
                out,
                "{name}_bucket{{node=\"{node}\",le=\"{}\"}} {cumulative}",
                *bound as f64 / 1000.0
            );
        }
        cumulative += get(&self.lag_buckets[LAG_BUCKETS_MS.len()]);
        let _ = writeln!(
            out,
            "{name}_bucket{{node=\"{node}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "{name}_sum{{node=\"{node}\"}} {}",
            get(&self.lag_sum_ms) as f64 / 1000.0
        );
        let _ = writeln!(out, "{name}_count{{node=\"{node}\"}} {cumulative}");
    }
}
