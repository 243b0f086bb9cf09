//! Subscriptions: subscribe and unsubscribe a live client, and find,
//! create and drop the topics they name.
//!
//! Invariants:
//! - **I2**: a client is indexed under a topic exactly when the topic is in
//!   its sorted name set; both change together under the client's registry
//!   shard;
//! - **S2**: a client is never subscribed to a dropped topic: a topic found
//!   (or created) under the map's lock may be dropped by another shard's
//!   close before the joiner holds the topic's lock, so the joiner rechecks
//!   `dead` there and finds or creates the topic again;
//! - **I5**: a topic left with neither subscribers nor retained events is
//!   dropped before the registry shards its maker held are released, by
//!   whoever left it so. The one path that can leave a topic unused
//!   without any shard, `publish`, never creates a topic it would leave
//!   unused (see `publish`), so the checker never sees a stray empty topic;
//! - **topic budget** (hardening): a client creates at most
//!   `max_created_topics_per_client` topics by subscribing over its life,
//!   and the clients of one peer tag at most `max_created_topics_per_peer`
//!   that still exist; subscribing to topics that exist is never limited
//!   by either, nor by a full table.

use super::slots::{Joined, SlotState};
use super::Hub;
use crate::error::SubscribeError;
use crate::sync::{Arc, SharedStr};
use crate::topics::{validate_topic, Topic};
use crate::ClientId;

/// Why topics could not be found or created for a client.
pub(super) enum Refusal {
    /// `max_topics` would be exceeded.
    Table(usize),
    /// The client's or its peer's creation budget would be exceeded.
    Budget(usize),
}

/// What a client may still create: its own spending so far, and the peer
/// tag its creations are charged to.
#[derive(Clone, Copy)]
pub(super) struct Budget<'a> {
    pub(super) spent: usize,
    pub(super) peer: Option<&'a SharedStr>,
}

impl Hub {
    /// Subscribes a live (reserved or active) client to one more topic.
    /// Returns `false` if it was already subscribed.
    ///
    /// An active client receives the topic's events published from now on;
    /// nothing is replayed.
    ///
    /// # Errors
    ///
    /// [`SubscribeError`]: unknown or stale id (I4), invalid name, limits.
    pub fn subscribe(&self, id: ClientId, topic: &str) -> Result<bool, SubscribeError> {
        validate_topic(topic).map_err(SubscribeError::InvalidTopic)?;
        let mut reg = self.shard(id);
        let entry = reg.live_mut(id).ok_or(SubscribeError::UnknownClient)?;
        let Err(at) = entry.position(topic) else {
            return Ok(false);
        };
        let limit = self.shared.config.max_topics_per_client;
        if entry.names.len() >= limit {
            return Err(SubscribeError::TooManyTopicsForClient { limit });
        }
        let name = if entry.state == SlotState::Active {
            let name = SharedStr::from(topic);
            let topic = loop {
                let budget = Budget {
                    spent: entry.created as usize,
                    peer: entry.peer.as_ref(),
                };
                let (mut found, created) = self
                    .topics_for(std::slice::from_ref(&name), budget)
                    .map_err(|refusal| match refusal {
                        Refusal::Table(limit) => SubscribeError::TooManyTopics { limit },
                        Refusal::Budget(limit) => SubscribeError::TopicBudget { limit },
                    })?;
                let topic = found.pop().ok_or(SubscribeError::TooManyTopics {
                    limit: self.shared.config.max_topics,
                })?;
                let mut state = topic.state.lock();
                if state.dead {
                    // Dropped by another shard's close or an expiry before
                    // this lock: find or create it again (S2).
                    continue;
                }
                entry.add_created(created);
                state.subscribe(id, Arc::clone(&entry.queue));
                self.presence_change(&topic.name, &mut state, id, entry.subject.as_ref(), true);
                drop(state);
                break topic;
            };
            let name = SharedStr::clone(&topic.name);
            entry.joined.insert(at, topic);
            name
        } else {
            // Reserved: recorded now, subscribed at activation (which
            // looks every name up again).
            entry.joined.clear();
            SharedStr::from(topic)
        };
        entry.names.insert(at, name);
        Ok(true)
    }

    /// Unsubscribes a live client from a topic. Returns `false` if it was
    /// not subscribed.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::UnknownClient`] for an unknown or stale id (I4),
    /// [`SubscribeError::InvalidTopic`] for an invalid name.
    pub fn unsubscribe(&self, id: ClientId, topic: &str) -> Result<bool, SubscribeError> {
        validate_topic(topic).map_err(SubscribeError::InvalidTopic)?;
        let mut reg = self.shard(id);
        let entry = reg.live_mut(id).ok_or(SubscribeError::UnknownClient)?;
        let Ok(at) = entry.position(topic) else {
            return Ok(false);
        };
        entry.names.remove(at);
        if entry.state != SlotState::Active {
            // Reserved: activation looks every name up again.
            entry.joined.clear();
        } else {
            let topic = entry.joined.remove(at);
            let unused = {
                let mut state = topic.state.lock();
                state.unsubscribe(id);
                self.presence_change(&topic.name, &mut state, id, entry.subject.as_ref(), false);
                state.is_unused()
            };
            if unused {
                self.drop_unused(&[topic]);
            }
        }
        Ok(true)
    }

    /// Drops topics that have neither subscribers nor retained events (I5),
    /// remembering what each had evicted (see `TopicMap::retire`). Called
    /// with the registry shards that made them unused held (S2 covers a
    /// joiner on another shard).
    pub(super) fn drop_unused(&self, candidates: &[Arc<Topic>]) {
        if candidates.is_empty() {
            return;
        }
        let mut map = self.shared.topics.write();
        for topic in candidates {
            let mut state = topic.state.lock();
            if state.dead || !state.is_unused() {
                continue;
            }
            state.dead = true;
            let evicted = state.ring.evicted_newest();
            drop(state);
            map.retire(topic, evicted);
            self.uncharge_creator(topic);
        }
        map.trim();
    }

    /// A dropped or evicted topic no longer counts against its creator's
    /// peer budget.
    pub(super) fn uncharge_creator(&self, topic: &Topic) {
        let Some(peer) = &topic.creator else { return };
        let mut charged = self.shared.peer_topics.lock();
        if let Some(count) = charged.get_mut(peer) {
            *count -= 1;
            if *count == 0 {
                charged.remove(peer);
            }
        }
    }

    /// The topics named, created where missing, and how many were created;
    /// refused if that would exceed `max_topics` or the client's or its
    /// peer's creation budget. Called with the client's registry shard held,
    /// so a topic created here gets its subscriber before any checker (which
    /// takes every shard) can look.
    pub(super) fn topics_for(
        &self,
        names: &[SharedStr],
        budget: Budget<'_>,
    ) -> Result<(Joined, usize), Refusal> {
        {
            let map = self.shared.topics.read();
            let found: Joined = names
                .iter()
                .filter_map(|n| map.map.get(n).cloned())
                .collect();
            if found.len() == names.len() {
                return Ok((found, 0));
            }
        }
        let config = &self.shared.config;
        let mut map = self.shared.topics.write();
        let missing = names.iter().filter(|n| !map.map.contains_key(*n)).count();
        if map.map.len() + missing > config.max_topics {
            return Err(Refusal::Table(config.max_topics));
        }
        let per_client = config.max_created_topics_per_client;
        if budget.spent + missing > per_client {
            return Err(Refusal::Budget(per_client));
        }
        if let Some(peer) = budget.peer {
            let per_peer = config.max_created_topics_per_peer;
            let mut charged = self.shared.peer_topics.lock();
            let count = charged.get(peer).copied().unwrap_or(0);
            if count + missing > per_peer {
                return Err(Refusal::Budget(per_peer));
            }
            if missing > 0 {
                charged.insert(SharedStr::clone(peer), count + missing);
            }
        }
        let creator = budget.peer.cloned();
        let topics = names
            .iter()
            .map(|name| match map.map.get(name) {
                Some(topic) => Arc::clone(topic),
                None => map.create(name, config.replay_capacity, creator.clone()),
            })
            .collect();
        Ok((topics, missing))
    }
}
