//! Time: flush reports, heartbeats, idle and stall timeouts, and the expiry
//! of retained events, all fired by [`Hub::tick`] on the injected clock.
//!
//! Invariants:
//! - `tick` costs O(what fires): deadlines sit in buckets, and a client is
//!   looked at only when its bucket is due;
//! - a healthy quiet client is never dropped (SPEC §5): the idle timeout
//!   counts from the last flush, and a heartbeat goes out after
//!   `heartbeat_interval` without any frame (`HubConfig::validate` refuses
//!   an idle timeout a heartbeat cannot beat);
//! - deadlines fire at most one `timer_resolution` late, never early.

use super::Hub;
use crate::queue::{ClientStream, Push, Queue};
use crate::reason::CloseReason;
use crate::sync::Arc;
use crate::ClientId;
use std::time::{Duration, Instant};

/// What a due client's deadlines call for.
enum Due {
    Close(CloseReason),
    Heartbeat,
    Nothing,
}

/// What a tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Heartbeat frames enqueued.
    pub heartbeats: usize,
    /// Clients closed, with the reason.
    pub closed: Vec<(ClientId, CloseReason)>,
    /// Retained events expired by age.
    pub expired_events: usize,
    /// When the next deadline is due, if any: a driver may sleep until then
    /// (build the hub [`with_clock`](Hub::with_clock) if it does, so frames
    /// pushed while it sleeps are stamped with their true time).
    pub next_deadline: Option<Instant>,
}

impl Hub {
    /// Records that the transport flushed `id`'s frames at `now`: resets its
    /// idle timeout and its stall clock. Returns `false` for an id that is
    /// not live. Writers holding the client's [`ClientStream`] should call
    /// [`ClientStream::flushed`] instead, which takes no hub-wide lock.
    pub fn flushed(&self, id: ClientId, now: Instant) -> bool {
        let queue = {
            let reg = self.shard(id);
            match reg.lookup(id) {
                Some(entry) => Arc::clone(&entry.queue),
                None => return false,
            }
        };
        queue.flushed(self.advance(now));
        true
    }

    /// Fires every deadline due at `now`: heartbeats, idle and stall
    /// timeouts, replay expiry. Costs O(what fires), not O(clients).
    pub fn tick(&self, now: Instant) -> TickReport {
        let shared = &*self.shared;
        let now = self.advance(now);
        let mut report = TickReport::default();
        let mut next = None;
        // One shard at a time: a tick never holds up the other shards'
        // connects and closes.
        for shard in shared.shards.iter() {
            let mut reg = shard.0.lock();
            for index in reg.pop_due(now) {
                let Some(entry) = reg.at(index) else {
                    continue;
                };
                if entry.state != super::slots::SlotState::Active {
                    continue;
                }
                let id = ClientId::new(index, entry.generation);
                let queue = Arc::clone(&entry.queue);
                let reason = match self.due_action(&queue, now) {
                    Due::Close(reason) => Some(reason),
                    Due::Heartbeat => {
                        report.heartbeats += 1;
                        None
                    }
                    Due::Nothing => None,
                };
                match reason {
                    Some(reason) => {
                        drop(self.close_active(&mut reg, index, reason, None));
                        report.closed.push((id, reason));
                    }
                    None => {
                        if let Some(at) = self.next_check(&queue, now) {
                            reg.schedule(index, at);
                        }
                    }
                }
            }
            next = [next, reg.next_deadline()].into_iter().flatten().min();
        }
        report.expired_events = self.expire_topics(now);
        let next_presence = self.flush_presence(now);
        let next_expiry = shared
            .expiry
            .lock()
            .first()
            .map(|(b, _)| b.saturating_mul(shared.resolution));
        report.next_deadline = [next, next_expiry, next_presence]
            .into_iter()
            .flatten()
            .min()
            .map(|nanos| shared.start + Duration::from_nanos(nanos));
        report
    }

    /// Checks one due client: stalled, idle, or owed a heartbeat (queued
    /// here, if its queue is empty).
    fn due_action(&self, queue: &Queue, now: u64) -> Due {
        let shared = &*self.shared;
        let nanos = &shared.nanos;
        let activity = queue.activity();
        let stalled = nanos.stall.is_some_and(|t| {
            activity
                .stall_since
                .is_some_and(|since| !activity.empty && since.saturating_add(t) <= now)
        });
        if stalled {
            return Due::Close(CloseReason::WriteStalled);
        }
        if nanos
            .idle
            .is_some_and(|t| activity.last_flush.saturating_add(t) <= now)
        {
            return Due::Close(CloseReason::IdleTimeout);
        }
        let Some(hb) = nanos.heartbeat else {
            return Due::Nothing;
        };
        if !activity.empty || activity.last_push.saturating_add(hb) > now {
            return Due::Nothing;
        }
        match queue.push(self.heartbeat_frame(), now, &shared.metrics) {
            Push::Queued => {
                shared.metrics.here().heartbeats.add(1);
                Due::Heartbeat
            }
            Push::Overflowed => Due::Close(CloseReason::SlowConsumer),
            Push::Closed(reason) => Due::Close(reason),
        }
    }

    /// Expires retained events by age; drops topics left unused. Takes
    /// every registry shard when something is due, so no checker sees a
    /// topic it leaves unused before it is dropped.
    fn expire_topics(&self, now: u64) -> usize {
        let shared = &*self.shared;
        let Some(age) = shared.nanos.replay_age else {
            return 0;
        };
        let limit = now / shared.resolution;
        let due = shared
            .expiry
            .lock()
            .first()
            .is_some_and(|(b, _)| *b <= limit);
        if !due {
            return 0;
        }
        let _all = self.lock_all();
        let mut due = Vec::new();
        {
            let mut expiry = shared.expiry.lock();
            while expiry.first().is_some_and(|(b, _)| *b <= limit) {
                if let Some(item) = expiry.pop_first() {
                    due.push(item);
                }
            }
        }
        let cutoff = now.saturating_sub(age);
        let mut expired = 0;
        let mut unused = Vec::new();
        let mut refile = Vec::new();
        for (bucket, name) in due {
            let Some(topic) = shared.topics.read().map.get(&name).cloned() else {
                continue;
            };
            let mut state = topic.state.lock();
            if state.expiry != Some(bucket) {
                continue;
            }
            let before = state.ring.bytes();
            expired += state.ring.expire(cutoff);
            self.account_retained(before, state.ring.bytes());
            state.expiry = state
                .ring
                .oldest_at()
                .map(|oldest| oldest.saturating_add(age).div_ceil(shared.resolution));
            if let Some(next) = state.expiry {
                refile.push((next, crate::sync::SharedStr::clone(&topic.name)));
            }
            if state.is_unused() {
                unused.push(Arc::clone(&topic));
            }
        }
        if !refile.is_empty() {
            shared.expiry.lock().extend(refile);
        }
        shared.metrics.here().events_expired.add(expired as u64);
        self.drop_unused(&unused);
        expired
    }

    /// When a client's deadlines next need a look: the earliest of its
    /// heartbeat, idle and stall deadlines. An empty queue cannot stall
    /// sooner than `now + stall`, so that bound stands in for it.
    pub(super) fn next_check(&self, queue: &Queue, now: u64) -> Option<u64> {
        let nanos = &self.shared.nanos;
        let activity = queue.activity();
        let hb = nanos.heartbeat.map(|hb| {
            let due = activity.last_push.saturating_add(hb);
            if due > now {
                due
            } else {
                now.saturating_add(hb)
            }
        });
        let idle = nanos.idle.map(|t| activity.last_flush.saturating_add(t));
        let stall = nanos.stall.map(|t| {
            let since = match activity.stall_since {
                Some(since) if !activity.empty => since,
                _ => now,
            };
            since.saturating_add(t)
        });
        [hb, idle, stall].into_iter().flatten().min()
    }
}

impl ClientStream {
    /// Records that the transport flushed this client's frames at `now`
    /// (see [`Hub::flushed`]), without any hub-wide lock.
    pub fn flushed(&self, now: Instant) {
        self.queue.flushed(self.hub.advance(now));
    }
}
