//! History a hub does not hold, read by its caller from a backplane and
//! handed to a reservation before activation.
//!
//! On an externally sequenced hub ([`Sequencing::External`]) a node sees
//! only the events published since it joined, so a client that resumes
//! there with an older `Last-Event-ID` needs events from the backplane's
//! retained history. The core does no IO: the adapter reads the history,
//! describes exactly what it covers, and [`Reservation::supply_history`]
//! checks it. At activation the core merges it with its own ring by
//! sequence number, under the topic locks (I8 across nodes; DESIGN.md §6,
//! "Externally sequenced hubs").
//!
//! What a [`TopicHistory`] promises: **every** event of `name` whose
//! sequence number is in `complete_after < seq <= through` is in
//! `events`, and nothing else is. The adapter must read `through` in the
//! same atomic step as the events (the stream's top), and set
//! `complete_after` at least as high as the newest event the backplane
//! has trimmed from the topic's stream.
//!
//! [`Sequencing::External`]: crate::Sequencing::External
//! [`Reservation::supply_history`]: crate::Reservation::supply_history

use bytes::Bytes;

/// Retained history of some topics, in one epoch of the backplane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The backplane epoch the sequence numbers belong to. A history of
    /// another epoch than the hub's at activation is ignored (the client
    /// gets a reset).
    pub epoch: u64,
    /// One entry per topic; a topic of the client's without an entry is
    /// not covered (the client gets a reset).
    pub topics: Vec<TopicHistory>,
}

/// The retained events of one topic in a range of sequence numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicHistory {
    /// The topic.
    pub name: String,
    /// Events newer than this are all listed (up to `through`); older ones
    /// may have been trimmed.
    pub complete_after: u64,
    /// The newest sequence number the read covers (the backplane's top
    /// when it read the topic's events).
    pub through: u64,
    /// `(seq, body)` in increasing `seq`: each body is the event encoded
    /// without an `id:` line, as [`Hub::encode_body`](crate::Hub::encode_body)
    /// writes it.
    pub events: Vec<(u64, Bytes)>,
}
