//! Topics: validated names, the subscriber index of each topic, and its
//! replay ring, under one lock per topic.
//!
//! A topic's subscriber list is a dense `Vec` (fan-out walks contiguous
//! memory) with a position map for O(1) removal.
//!
//! Invariants:
//! - **I2** (with the registry): a client is in `subs` of topic T exactly
//!   when T is in that client's topic set;
//! - a topic whose `dead` flag is set is in no map and takes no subscriber
//!   or event; publishers that find it dead look the name up again;
//! - **I5**: a topic is kept while it has subscribers or retained events,
//!   and dropped from the map once it has neither.

use crate::error::TopicError;
use crate::id::IdHashBuilder;
use crate::queue::Queue;
use crate::replay::ReplayRing;
use crate::sync::{Arc, Mutex, SharedStr};
use crate::ClientId;
use std::collections::HashMap;

/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// Checks a topic name: 1..=256 bytes of UTF-8 with no control characters.
///
/// # Errors
///
/// [`TopicError`] says which rule the name breaks.
///
/// # Examples
///
/// ```
/// use ssehub_core::{validate_topic, TopicError};
///
/// assert!(validate_topic("prices/eur-usd").is_ok());
/// assert_eq!(validate_topic(""), Err(TopicError::Empty));
/// assert_eq!(validate_topic("a\nb"), Err(TopicError::ControlCharacter { at: 1 }));
/// ```
pub fn validate_topic(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: name.len() });
    }
    if name.is_ascii() {
        // The common case, without decoding: C0 controls and DEL.
        return match name.bytes().position(|b| b < 0x20 || b == 0x7f) {
            Some(at) => Err(TopicError::ControlCharacter { at }),
            None => Ok(()),
        };
    }
    match name.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, _)) => Err(TopicError::ControlCharacter { at }),
        None => Ok(()),
    }
}

pub(crate) struct Topic {
    pub(crate) name: SharedStr,
    pub(crate) state: Mutex<TopicState>,
}

pub(crate) struct Subscriber {
    pub(crate) id: ClientId,
    pub(crate) queue: Arc<Queue>,
}

pub(crate) struct TopicState {
    pub(crate) subs: Vec<Subscriber>,
    pos: HashMap<ClientId, usize, IdHashBuilder>,
    pub(crate) ring: ReplayRing,
    /// The expiry bucket this topic is filed under, while its ring is not
    /// empty and events expire by age.
    pub(crate) expiry: Option<u64>,
    pub(crate) dead: bool,
}

impl Topic {
    pub(crate) fn new(name: SharedStr, capacity: usize, evicted_newest: u64) -> Self {
        Self {
            name,
            state: Mutex::new(TopicState {
                subs: Vec::new(),
                pos: HashMap::default(),
                ring: ReplayRing::new(capacity, evicted_newest),
                expiry: None,
                dead: false,
            }),
        }
    }
}

impl TopicState {
    /// Adds a subscriber; `false` if it was already there.
    pub(crate) fn subscribe(&mut self, id: ClientId, queue: Arc<Queue>) -> bool {
        if self.pos.contains_key(&id) {
            return false;
        }
        self.pos.insert(id, self.subs.len());
        self.subs.push(Subscriber { id, queue });
        true
    }

    /// Removes a subscriber; `false` if it was not there.
    pub(crate) fn unsubscribe(&mut self, id: ClientId) -> bool {
        let Some(at) = self.pos.remove(&id) else {
            return false;
        };
        self.subs.swap_remove(at);
        if let Some(moved) = self.subs.get(at) {
            self.pos.insert(moved.id, at);
        }
        true
    }

    pub(crate) fn contains(&self, id: ClientId) -> bool {
        self.pos.contains_key(&id)
    }

    /// Neither subscribers nor retained events: the topic may be dropped.
    pub(crate) fn is_unused(&self) -> bool {
        self.subs.is_empty() && self.ring.is_empty()
    }
}

/// The name → topic map, and the newest sequence number any dropped topic
/// had evicted (a new topic starts from it, so that a client whose last id
/// predates events lost with a dropped topic is reset, not silently
/// replayed past them).
pub(crate) struct TopicMap {
    pub(crate) map: HashMap<SharedStr, Arc<Topic>>,
    pub(crate) watermark: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_validated() {
        assert!(validate_topic("a").is_ok());
        assert!(validate_topic(&"x".repeat(256)).is_ok());
        assert_eq!(
            validate_topic(&"x".repeat(257)),
            Err(TopicError::TooLong { len: 257 })
        );
        assert_eq!(
            validate_topic("é\u{7f}"),
            Err(TopicError::ControlCharacter { at: 2 })
        );
        assert!(validate_topic("ünïcødé/✓").is_ok());
    }
}
