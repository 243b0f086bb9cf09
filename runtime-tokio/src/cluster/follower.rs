//! The follower: the one task per node that subscribes to the events
//! channel and applies the cluster's events to the hub, in order.
//!
//! A session: connect → `SUBSCRIBE` the events channel and the node's
//! probe channel → catch up (messages that arrive meanwhile wait in the
//! subscription's buffer) → apply messages as they come. Ends when the
//! connection drops or a probe goes unanswered; the next session starts
//! after a backoff.
//!
//! Invariants:
//! - **FOLLOW-ORDER**: the hub's position is the newest seq the node has
//!   accounted for (applied, duplicate, or recorded lost). A message with
//!   seq `position + 1` is applied; one at or below is a duplicate; one
//!   above `position + 1` is a **gap** (messages were missed), answered
//!   by a catch-up before it is applied. So the hub sees the cluster's
//!   events in seq order, each once, or an explicit loss.
//! - **CATCH-UP**: subscribe first, then read the streams' cut `(position,
//!   top]` in one script: every event up to `top` is in the cut, every
//!   later one arrives on the subscription. Events are applied merged by
//!   seq; a topic whose stream was trimmed past `position` is recorded
//!   lost (`Hub::lose_topic`) at its place in that order; the catch-up
//!   ends with `Hub::finish_catch_up`, which resets topics created
//!   meanwhile. A cut of another epoch moves the hub to its start
//!   (`Hub::begin_epoch(epoch, 0)`: every live client gets a reset), then
//!   catches up from there, so live clients get the new epoch's events
//!   after their reset.
//! - **PROBE**: a subscription silent for `probe_interval` is probed: the
//!   probe script publishes the top seq on the node's own channel, behind
//!   every event already published. Seen back with a top above the
//!   position: a gap (the tail was missed). Not seen within
//!   `probe_timeout`: the subscription is dead, restart it. A resume that
//!   finds Redis in an epoch the node has not begun asks for a probe at
//!   once (`probe_now`) and waits, bounded, until the catch-up that begins
//!   the epoch has ended (`catching_up` cleared): its client is reset once,
//!   not once by its old id and again by the node's epoch change.

use super::backplane::Shared;
use super::metrics::{bump, LinkState};
use super::scripts::parse_probe;
use super::wire::Message;
use super::BackplaneError;
use futures_core::Stream;
use ssehub_core::{Applied, ApplyError, EventId};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// No message within the wait, or a request to probe now.
struct Quiet;

/// How a session ended.
enum Ended {
    Stopped,
    Lost(String),
}

pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = shared.config.reconnect_min;
    loop {
        let was_up = matches!(shared.counters.state(), LinkState::Up);
        match session(&shared, &mut stop, &mut backoff).await {
            Ended::Stopped => return,
            Ended::Lost(reason) => {
                bump(&shared.counters.reconnects);
                let before = shared.counters.set_state(LinkState::Down);
                if before != LinkState::Down {
                    tracing::warn!(node = %shared.config.node_name, %reason, was_up, "cluster: link to redis lost; reconnecting");
                } else {
                    tracing::debug!(node = %shared.config.node_name, %reason, "cluster: reconnect failed");
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(shared.config.reconnect_max);
    }
}

async fn session(
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Ended {
    let timeout = shared.config.command_timeout;
    let keys = shared.store.keys();
    let (events, probe) = (keys.events(), keys.probe(&shared.config.node_name));
    let connect = async {
        let mut pubsub = shared.client.get_async_pubsub().await?;
        pubsub.subscribe(&events).await?;
        pubsub.subscribe(&probe).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let pubsub = match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return Ended::Lost(format!("subscribe: {e}")),
        Err(_) => return Ended::Lost("subscribe: timed out".to_owned()),
    };
    let (_sink, mut messages) = pubsub.split();
    if let Err(error) = catch_up(shared).await {
        return Ended::Lost(format!("catch-up: {error}"));
    }
    *backoff = shared.config.reconnect_min;
    let before = shared.counters.set_state(LinkState::Up);
    if before != LinkState::Up {
        tracing::info!(
            node = %shared.config.node_name,
            position = %shared.hub.last_event_id(),
            "cluster: subscribed and caught up"
        );
    }
    let mut probing = false;
    loop {
        let wait = if probing {
            shared.config.probe_timeout
        } else {
            shared.config.probe_interval
        };
        let next = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return Ended::Stopped,
            // A resume saw Redis in another epoch: probe now, as if quiet.
            () = shared.probe_now.notified(), if !probing => Err(Quiet),
            next = tokio::time::timeout(wait, std::future::poll_fn(|cx| std::pin::Pin::new(&mut messages).poll_next(cx))) => next.map_err(|_| Quiet),
        };
        match next {
            Ok(None) => return Ended::Lost("subscription closed".to_owned()),
            Ok(Some(message)) => {
                let outcome = if message.get_channel_name() == events {
                    on_event(shared, message.get_payload_bytes()).await
                } else {
                    probing = false;
                    on_probe(shared, message.get_payload_bytes()).await
                };
                if let Err(error) = outcome {
                    return Ended::Lost(format!("catch-up: {error}"));
                }
            }
            Err(Quiet) if probing => {
                bump(&shared.counters.probe_timeouts);
                return Ended::Lost("probe not seen back".to_owned());
            }
            Err(Quiet) => {
                bump(&shared.counters.probes);
                if let Err(error) = shared.store.probe(&probe).await {
                    return Ended::Lost(format!("probe: {error}"));
                }
                probing = true;
            }
        }
    }
}

async fn on_event(shared: &Shared, payload: &[u8]) -> Result<(), BackplaneError> {
    let message = match Message::decode(payload) {
        Ok(message) => message,
        // `apply`'s own checks: a body another writer put on the channel.
        Err(error) => {
            bump(&shared.counters.bad_messages);
            tracing::warn!(%error, "cluster: ignoring a malformed message on the events channel");
            return Ok(());
        }
    };
    let hub = &shared.hub;
    let position = hub.last_event_id();
    if message.epoch != position.epoch() || message.seq > position.seq() + 1 {
        if message.epoch == position.epoch() {
            bump(&shared.counters.gaps);
            tracing::warn!(
                node = %shared.config.node_name,
                position = position.seq(),
                received = message.seq,
                "cluster: gap in the events channel; catching up"
            );
        }
        catch_up(shared).await?;
    }
    let position = hub.last_event_id();
    if message.epoch != position.epoch() || message.seq <= position.seq() {
        bump(&shared.counters.duplicates);
        return Ok(());
    }
    apply(
        shared,
        &message.topic,
        EventId::new(message.epoch, message.seq),
        &message.body,
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    shared
        .counters
        .observe_lag(now_ms.saturating_sub(message.published_ms));
    Ok(())
}

async fn on_probe(shared: &Shared, payload: &[u8]) -> Result<(), BackplaneError> {
    let Some((epoch, top)) = parse_probe(payload) else {
        bump(&shared.counters.bad_messages);
        return Ok(());
    };
    let position = shared.hub.last_event_id();
    if epoch != position.epoch() || top > position.seq() {
        if epoch == position.epoch() {
            bump(&shared.counters.gaps);
            tracing::warn!(
                node = %shared.config.node_name,
                position = position.seq(),
                top,
                "cluster: the probe found missed events; catching up"
            );
        }
        catch_up(shared).await?;
    }
    Ok(())
}

fn apply(shared: &Shared, topic: &str, id: EventId, body: &[u8]) {
    let applied = shared.hub.apply(topic, id, body);
    shared.advanced.notify_waiters();
    match applied {
        Ok(Applied::Delivered(_) | Applied::NotRetained { .. }) => bump(&shared.counters.applied),
        Ok(Applied::Duplicate) => bump(&shared.counters.duplicates),
        Err(error @ (ApplyError::EpochMismatch { .. } | ApplyError::ShutDown)) => {
            tracing::debug!(%error, %id, "cluster: event not applied");
        }
        // `apply`'s own checks: a body another writer put on the channel.
        Err(error) => {
            bump(&shared.counters.bad_messages);
            tracing::warn!(%error, %id, topic, "cluster: event refused by the hub");
        }
    }
}

/// Clears `catching_up` when a catch-up ends, by any path, and tells the
/// resumes waiting on it.
struct CatchingUp<'a>(&'a Shared);

impl Drop for CatchingUp<'_> {
    fn drop(&mut self) {
        self.0.catching_up.store(false, Ordering::SeqCst);
        self.0.advanced.notify_waiters();
    }
}

/// One step of a catch-up, in seq order.
enum Step {
    Apply(String, bytes::Bytes),
    Lose(String),
}

/// CATCH-UP: reads the cut after the hub's position for every topic the
/// hub has and applies it; or moves the hub to a new epoch.
async fn catch_up(shared: &Shared) -> Result<(), BackplaneError> {
    shared.catching_up.store(true, Ordering::SeqCst);
    let _ended = CatchingUp(shared);
    let hub = &shared.hub;
    let mut position = hub.last_event_id();
    let mut topics = hub.topic_names();
    let mut cut = shared
        .store
        .cut(position.seq(), &topics, super::backplane::candidate_epoch())
        .await?;
    if cut.epoch != position.epoch() {
        // A new epoch: live clients get a reset at its start, then every
        // event of the epoch on their topics, from the streams.
        let reset = hub.begin_epoch(cut.epoch, 0);
        bump(&shared.counters.epoch_changes);
        shared
            .counters
            .lost_resets
            .fetch_add(reset as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            node = %shared.config.node_name,
            from = position.epoch(),
            to = cut.epoch,
            top = cut.top,
            clients_reset = reset,
            "cluster: following a new epoch"
        );
        position = hub.last_event_id();
        topics = hub.topic_names();
        cut = shared
            .store
            .cut(position.seq(), &topics, super::backplane::candidate_epoch())
            .await?;
        if cut.epoch != position.epoch() {
            // Changed again meanwhile: the next message or probe retries.
            return Err(BackplaneError::EpochChanged);
        }
    }
    bump(&shared.counters.catch_ups);
    // (seq, 0) an event, (seq, 1) the loss of a topic through seq: after
    // every event below it, before every event above it.
    let mut steps: BTreeMap<(u64, u8), Step> = BTreeMap::new();
    let mut caught_up = Vec::with_capacity(cut.topics.len());
    for topic in cut.topics {
        let gone = topic.complete_after.min(cut.top);
        if gone > position.seq() {
            steps.insert((gone, 1), Step::Lose(topic.topic.clone()));
        }
        for (seq, body) in topic.events {
            if seq > gone && seq <= cut.top {
                steps.insert((seq, 0), Step::Apply(topic.topic.clone(), body));
            }
        }
        caught_up.push(topic.topic);
    }
    let (mut applied, mut lost) = (0usize, 0usize);
    for ((seq, _), step) in steps {
        match step {
            Step::Apply(topic, body) => {
                apply(shared, &topic, EventId::new(cut.epoch, seq), &body);
                applied += 1;
            }
            Step::Lose(topic) => {
                let reset = hub.lose_topic(&topic, seq);
                bump(&shared.counters.lost_topics);
                shared
                    .counters
                    .lost_resets
                    .fetch_add(reset as u64, std::sync::atomic::Ordering::Relaxed);
                lost += 1;
                tracing::warn!(
                    node = %shared.config.node_name,
                    topic,
                    through = seq,
                    clients_reset = reset,
                    "cluster: events trimmed from redis before this node caught up; topic reset"
                );
            }
        }
    }
    let reset = hub.finish_catch_up(&caught_up, cut.top);
    shared.advanced.notify_waiters();
    shared
        .counters
        .lost_resets
        .fetch_add(reset as u64, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        node = %shared.config.node_name,
        from = position.seq(),
        through = cut.top,
        topics = caught_up.len(),
        applied,
        lost,
        clients_reset = reset,
        "cluster: caught up"
    );
    Ok(())
}
