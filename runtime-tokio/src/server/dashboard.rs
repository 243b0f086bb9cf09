//! The live dashboard: `GET /dashboard`, a self-contained page
//! (`dashboard.html`, inline SVG charts, the browser client from
//! `/ssehub.js`), fed by `GET /dashboard/stream`, an SSE stream of the
//! hub's own stats.
//!
//! The hub serves its own events: a dashboard stream is an ordinary hub
//! client subscribed to [`STATS_TOPIC`], and one [`Sampler`] task publishes
//! a [`STATS_EVENT`] there every `stats_interval`. On a clustered node,
//! whose events come only from the backplane's order, the sampler sends
//! its node's stats to that node's watchers directly (no id), and adds
//! `cluster`: every live node's totals (`[{node, connections,
//! subscribers, topics}]`, from the presence each node keeps in Redis, see
//! `crate::cluster`), or `null` with `cluster_error` when Redis cannot be
//! read within the interval (the node's own figures still go out).
//! Unclustered, the event has no `cluster` field. Heartbeats, kicks,
//! limits and the shutdown event apply to dashboard streams as to any.
//!
//! # Invariants
//!
//! - **Reserved topics stay the hub's.** Topics starting with
//!   [`RESERVED_PREFIX`] are published to only by the sampler and
//!   subscribed to only through `GET /dashboard/stream`, which needs the
//!   admin token: `POST /publish` and `GET /events` refuse them (403).
//! - **Quiet when unwatched.** The sampler reads the counters every
//!   interval (so that rates are always over one interval) but publishes
//!   only while the stats topic has subscribers.
//! - **Rates are the traffic's, not the dashboard's.** The sampler's own
//!   publishes and the deliveries they made are subtracted from the
//!   counters before rates and totals are computed; rates are deltas over
//!   the elapsed tokio time (paused-time tests see exact figures).

use super::routes::Answer;
use crate::cluster::Backplane;
use crate::respond::full;
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use serde_json::{json, Map, Value};
use ssehub_core::codec::Event;
use ssehub_core::{
    ClientPage, Hub, MetricsSnapshot, Sequencing, TopicPage, TopicSort, MAX_PRESENCE_PAGE,
};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The prefix of topics only the hub itself publishes to.
pub(crate) const RESERVED_PREFIX: &str = "$ssehub/";

/// The topic the stats events are published to.
pub(crate) const STATS_TOPIC: &str = "$ssehub/stats";

/// The name of a stats event.
pub(crate) const STATS_EVENT: &str = "stats";

/// How many topics a stats event lists, most subscribed first.
pub(crate) const TOP_TOPICS: usize = 10;

/// The page, as built into the binary.
const PAGE: &str = include_str!("dashboard.html");

/// Whether `topic` is one only the hub publishes to.
pub(crate) fn is_reserved(topic: &str) -> bool {
    topic.starts_with(RESERVED_PREFIX)
}

/// `GET /dashboard`: the page (it asks for the token itself).
pub(crate) fn page() -> Answer {
    let mut response = Response::new(full(Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Inline script and style only; data only from this origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self' 'unsafe-inline'; \
             style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        ),
    );
    response
}

/// The stats sampler task; aborted when dropped.
#[derive(Debug)]
pub(crate) struct Sampler(JoinHandle<()>);

impl Drop for Sampler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Sampler {
    /// Stops sampling (publishes nothing more).
    pub(crate) fn stop(&self) {
        self.0.abort();
    }

    /// Starts sampling `hub` every `interval` (at least 10 ms); the stats
    /// name the node `node` (the cluster's name for it), else the host.
    /// With a `backplane`, each event also lists the cluster's nodes.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) fn spawn(
        hub: Hub,
        interval: Duration,
        node: Option<String>,
        backplane: Option<Backplane>,
    ) -> Self {
        let interval = interval.max(Duration::from_millis(10));
        // The first interval starts now, not when the task first runs.
        let baseline = (Instant::now(), Totals::of(&hub.metrics(), Own::default()));
        Self(tokio::spawn(sample_forever(
            hub,
            interval,
            baseline,
            node.unwrap_or_else(node_name),
            backplane,
        )))
    }
}

/// The sampler's own traffic, subtracted from the hub's counters.
#[derive(Clone, Copy, Debug, Default)]
struct Own {
    published: u64,
    delivered: u64,
}

/// Counters with the sampler's own traffic taken out.
#[derive(Clone, Copy, Debug)]
struct Totals {
    published: u64,
    delivered: u64,
}

impl Totals {
    fn of(metrics: &MetricsSnapshot, own: Own) -> Self {
        Self {
            published: metrics.events_published.saturating_sub(own.published),
            delivered: metrics.frames_delivered.saturating_sub(own.delivered),
        }
    }
}

async fn sample_forever(
    hub: Hub,
    interval: Duration,
    mut previous: (Instant, Totals),
    node: String,
    backplane: Option<Backplane>,
) {
    let mut ticker = tokio::time::interval_at(previous.0 + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut own = Own::default();
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let metrics = hub.metrics();
        let totals = Totals::of(&metrics, own);
        let elapsed = now.duration_since(previous.0);
        let mut stats = stats(&hub, &metrics, previous.1, totals, elapsed, &node);
        previous = (now, totals);
        let watchers = watchers(&hub);
        if watchers == 0 {
            continue;
        }
        if let (Some(backplane), Value::Object(fields)) = (&backplane, &mut stats) {
            add_cluster(fields, backplane, interval).await;
        }
        let event = Event::new(stats.to_string()).with_event(STATS_EVENT);
        if hub.config().sequencing == Sequencing::External {
            // A clustered hub takes events only from the backplane's
            // order; a node's own stats go to its own watchers directly.
            own.delivered += send_to_watchers(&hub, &event);
            continue;
        }
        match hub.publish(STATS_TOPIC, &event) {
            Ok(report) => {
                own.published += 1;
                own.delivered += report.delivered as u64;
            }
            // Full queues or a shutdown: the next sample will try again.
            Err(error) => tracing::debug!(%error, "stats event not published"),
        }
    }
}

/// How long a sample waits for the cluster's nodes at most: an interval,
/// but not less than this (a busy Redis still answers in time).
const CLUSTER_READ_MIN: Duration = Duration::from_millis(250);

/// Adds `cluster` (every live node's totals, by name) to a stats event,
/// or `cluster: null` and `cluster_error` when Redis does not answer
/// within the interval.
async fn add_cluster(fields: &mut Map<String, Value>, backplane: &Backplane, interval: Duration) {
    let read = tokio::time::timeout(interval.max(CLUSTER_READ_MIN), backplane.cluster_nodes());
    let error = match read.await {
        Ok(Ok(nodes)) => {
            let nodes: Vec<Value> = nodes
                .into_iter()
                .map(|(node, totals)| {
                    json!({
                        "node": node,
                        "connections": totals.connections,
                        "subscribers": totals.subscribers,
                        "topics": totals.topics,
                    })
                })
                .collect();
            fields.insert("cluster".to_owned(), Value::Array(nodes));
            return;
        }
        Ok(Err(error)) => error.to_string(),
        Err(_) => "redis did not answer within the stats interval".to_owned(),
    };
    fields.insert("cluster".to_owned(), Value::Null);
    fields.insert("cluster_error".to_owned(), json!(error));
}

/// Sends `event` (without an id, like any direct send) to every
/// subscriber of the stats topic on this node; returns how many took it.
fn send_to_watchers(hub: &Hub, event: &Event) -> u64 {
    let Ok(frame) = event.to_bytes() else {
        return 0;
    };
    let mut sent = 0;
    let mut page = ClientPage::new().limit(MAX_PRESENCE_PAGE);
    loop {
        let Some(list) = hub
            .topic_presence(STATS_TOPIC, Some(&page))
            .and_then(|p| p.clients)
        else {
            return sent;
        };
        for id in list.ids {
            match hub.send_frame(id, frame.clone()) {
                Ok(()) => sent += 1,
                // Closed meanwhile, or a full queue: the next sample
                // tries again.
                Err(error) => tracing::debug!(%error, "stats event not sent"),
            }
        }
        match list.next {
            Some(after) => page = page.after(after),
            None => return sent,
        }
    }
}

/// Subscribers of the stats topic.
fn watchers(hub: &Hub) -> usize {
    hub.topic_presence(STATS_TOPIC, None)
        .map_or(0, |p| p.summary.subscribers)
}

/// One stats event's JSON.
fn stats(
    hub: &Hub,
    metrics: &MetricsSnapshot,
    before: Totals,
    now: Totals,
    elapsed: Duration,
    node: &str,
) -> Value {
    let seconds = elapsed.as_secs_f64();
    let rate = |after: u64, before: u64| {
        if seconds > 0.0 {
            after.saturating_sub(before) as f64 / seconds
        } else {
            0.0
        }
    };
    let closes: Map<String, Value> = metrics
        .closes
        .iter()
        .map(|(reason, count)| (reason.as_str().to_owned(), json!(count)))
        .collect();
    let list = hub.topics_snapshot(&TopicPage::new(TopicSort::Subscribers).limit(TOP_TOPICS + 1));
    let top: Vec<Value> = list
        .topics
        .iter()
        .filter(|t| !is_reserved(&t.name))
        .take(TOP_TOPICS)
        .map(|t| {
            json!({
                "topic": t.name,
                "subscribers": t.subscribers,
                "events_per_second": t.events_per_second(),
            })
        })
        .collect();
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "node": node,
        "at_ms": at_ms,
        "interval_ms": elapsed.as_millis() as u64,
        "connections": metrics.clients_active,
        "dashboards": watchers(hub),
        "publishes_per_second": rate(now.published, before.published),
        "deliveries_per_second": rate(now.delivered, before.delivered),
        "published_total": now.published,
        "delivered_total": now.delivered,
        "closes": closes,
        "replay": {"hits": metrics.replay_hits, "resets": metrics.replay_resets},
        "topics": list.total.saturating_sub(usize::from(hub.topic_presence(STATS_TOPIC, None).is_some())),
        "top_topics": top,
    })
}

/// This node's name: the host name, else `"local"`.
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssehub_core::{ClientStream, Drain, HubConfig, ReserveOptions};

    /// The next stats event queued for `stream`, as JSON.
    async fn next_stats(stream: &ClientStream) -> Value {
        loop {
            let mut frames = Vec::new();
            let drained = std::future::poll_fn(|cx| stream.poll_drain(cx, &mut frames, 16)).await;
            assert!(matches!(drained, Drain::Frames(_)), "{drained:?}");
            for frame in frames {
                let text = String::from_utf8(frame.to_vec()).unwrap();
                if text.contains("event: stats\n") {
                    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                    return serde_json::from_str(data).unwrap();
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rates_are_deltas_over_tokio_time_without_the_samplers_own_events() {
        let hub = Hub::with_clock(HubConfig::default(), crate::TokioClock);
        let reservation = hub
            .reserve(ReserveOptions::new().topic(STATS_TOPIC))
            .unwrap();
        let stream = reservation.stream();
        reservation.activate().unwrap();
        let started = Instant::now();
        let _sampler = Sampler::spawn(hub.clone(), Duration::from_secs(2), None, None);
        for _ in 0..4 {
            hub.publish("news", &Event::new("x")).unwrap();
        }

        let first = next_stats(&stream).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(first["interval_ms"], 2000);
        assert_eq!(first["published_total"], 4);
        assert_eq!(first["publishes_per_second"], 2.0);
        assert_eq!(first["connections"], 1);
        assert_eq!(first["dashboards"], 1);
        assert_eq!(first["topics"], 1, "news; not the stats topic");
        assert!(first.get("cluster").is_none(), "unclustered: {first}");

        // Nothing published since: the sampler's own event is not counted.
        let second = next_stats(&stream).await;
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        assert_eq!(second["published_total"], 4);
        assert_eq!(second["publishes_per_second"], 0.0);
        assert_eq!(second["deliveries_per_second"], 0.0);
        assert_eq!(hub.metrics().events_published, 6);
    }

    #[test]
    fn the_stats_topic_is_valid_and_reserved() {
        assert!(ssehub_core::validate_topic(STATS_TOPIC).is_ok());
        assert!(is_reserved(STATS_TOPIC));
        assert!(!is_reserved("ssehub/stats"));
        assert!(!is_reserved("news"));
    }
}
