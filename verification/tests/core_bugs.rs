//! Bugs in `ssehub-core` found while building the verification suite.
//!
//! Each test here FAILS against the core as it stands and passes once the
//! bug is fixed; none is ignored, so the suite stays red until the lead
//! fixes the core. The reproduction is the test itself.

#![cfg(not(ssehub_loom))]

use ssehub_core::{CloseOutcome, CloseReason, Hub, HubConfig, ReserveOptions, SubscribeError};
use std::time::Instant;

/// `subscribe` on a client whose close is pending (closed before
/// activation) must answer `UnknownClient`, as `unsubscribe`,
/// `client_topics` and the docs ("a live client") do. The core checks the
/// client's topic set and limit before its state, so it answers `Ok(false)`
/// for a topic the client asked for at reserve time, and
/// `TooManyTopicsForClient` when the client is at its limit: a caller is
/// told a dead client is subscribed.
#[test]
fn bug_subscribe_to_a_close_pending_client_is_refused() {
    let config = HubConfig {
        max_topics_per_client: 1,
        ..HubConfig::default()
    };
    let hub = Hub::new(config, Instant::now());
    let reservation = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let id = reservation.id();
    assert_eq!(
        hub.close(id, CloseReason::ClientGone),
        CloseOutcome::Deferred
    );
    assert_eq!(hub.client_topics(id), None, "the client is not live");
    assert_eq!(hub.unsubscribe(id, "a"), Err(SubscribeError::UnknownClient));

    assert_eq!(
        hub.subscribe(id, "a"),
        Err(SubscribeError::UnknownClient),
        "a topic it asked for at reserve time"
    );
    assert_eq!(
        hub.subscribe(id, "b"),
        Err(SubscribeError::UnknownClient),
        "a new topic, with the client at its topic limit"
    );
    drop(reservation);
    assert_eq!(hub.len(), 0);
}
