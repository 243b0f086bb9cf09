//! Subscriptions: subscribe and unsubscribe a live client, and find,
//! create and drop the topics they name.
//!
//! Invariants:
//! - **I2**: a client is indexed under a topic exactly when the topic is in
//!   its sorted name set; both change together under the registry lock;
//! - **I5**: a topic left with neither subscribers nor retained events is
//!   dropped before the registry lock is released, by whoever left it so.
//!   The one path that can leave a topic unused without the registry lock,
//!   `publish`, never creates a topic it would leave unused (see
//!   `publish`), so the checker never sees a stray empty topic.

use super::slots::SlotState;
use super::Hub;
use crate::error::SubscribeError;
use crate::sync::{Arc, SharedStr};
use crate::topics::{validate_topic, Topic};
use crate::ClientId;

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
        let mut reg = self.shared.registry.lock();
        let entry = reg.live_mut(id).ok_or(SubscribeError::UnknownClient)?;
        let Err(at) = entry.position(topic) else {
            return Ok(false);
        };
        let limit = self.shared.config.max_topics_per_client;
        if entry.names.len() >= limit {
            return Err(SubscribeError::TooManyTopicsForClient { limit });
        }
        let name = if entry.state == SlotState::Active {
            let topic = self
                .topic(topic)
                .map_err(|limit| SubscribeError::TooManyTopics { limit })?;
            topic.state.lock().subscribe(id, Arc::clone(&entry.queue));
            let name = SharedStr::clone(&topic.name);
            entry.joined.insert(at, topic);
            name
        } else {
            // Reserved: recorded now, subscribed at activation.
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
        let mut reg = self.shared.registry.lock();
        let entry = reg.live_mut(id).ok_or(SubscribeError::UnknownClient)?;
        let Ok(at) = entry.position(topic) else {
            return Ok(false);
        };
        entry.names.remove(at);
        if entry.state == SlotState::Active {
            let topic = entry.joined.remove(at);
            let unused = {
                let mut state = topic.state.lock();
                state.unsubscribe(id);
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
    /// with the registry lock held.
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
        }
        map.trim();
    }

    /// The topic named, created if missing (without allocating when it
    /// exists); `Err(limit)` if creating it would exceed `max_topics`.
    /// Called with the registry lock held.
    fn topic(&self, name: &str) -> Result<Arc<Topic>, usize> {
        if let Some(topic) = self.shared.topics.read().map.get(name) {
            return Ok(Arc::clone(topic));
        }
        let name = SharedStr::from(name);
        let mut topics = self.topics_for(std::slice::from_ref(&name))?;
        topics.pop().ok_or(self.shared.config.max_topics)
    }

    /// The topics named, created where missing; `Err(limit)` if that would
    /// exceed `max_topics`. Called with the registry lock held, so a topic
    /// created here gets its subscriber before any checker can look.
    pub(super) fn topics_for(&self, names: &[SharedStr]) -> Result<Vec<Arc<Topic>>, usize> {
        {
            let map = self.shared.topics.read();
            let found: Vec<_> = names
                .iter()
                .filter_map(|n| map.map.get(n).cloned())
                .collect();
            if found.len() == names.len() {
                return Ok(found);
            }
        }
        let mut map = self.shared.topics.write();
        let missing = names.iter().filter(|n| !map.map.contains_key(*n)).count();
        let limit = self.shared.config.max_topics;
        if map.map.len() + missing > limit {
            return Err(limit);
        }
        let capacity = self.shared.config.replay_capacity;
        let topics = names
            .iter()
            .map(|name| match map.map.get(name) {
                Some(topic) => Arc::clone(topic),
                None => map.create(name, capacity),
            })
            .collect();
        Ok(topics)
    }
}
