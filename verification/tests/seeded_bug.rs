//! The seeded bug, forced deterministically (no scheduler needed): the
//! transport closes inside the registration window, after the close hook is
//! armed and before the client is inserted.
//!
//! - The Node-order mutant leaks: the close ran on nothing, the insert then
//!   registers a dead client (I1) that nothing will remove (I5).
//! - The fixed order (insert first) does not.
//! - The real [`Hub`], driven through the same steps (reserve, arm the close
//!   guard, write headers, transport closes, activate), leaves nothing.
//!
//! `loom_seeded_bug.rs` shows that the model checker finds the same window
//! on its own.

#![cfg(not(ssehub_loom))]

use ssehub_core::{ActivateError, CloseReason, Drain, Hub, HubConfig, ReserveOptions};
use ssehub_verification::mutant::{NodeRegistry, Order, Transport};
use std::time::Instant;

#[test]
fn node_order_leaks_a_client_closed_inside_the_registration_window() {
    let registry = NodeRegistry::new(Order::Node);
    let transport = Transport::new();
    let id = registry.register_with(&transport, |_| transport.close());
    assert!(!transport.is_live());
    assert_eq!(
        registry.len(),
        1,
        "the dead client was inserted after its close"
    );
    let violation = registry.check_invariants().unwrap_err();
    assert!(violation.starts_with("I1"), "{violation}");
    // Another path still finds the dead client and subscribes it.
    assert!(registry.subscribe(id, "news"));
    // Nothing will ever close it again: the hook has already run.
    transport.close();
    assert_eq!(registry.len(), 1, "I5: the leak is permanent");
}

#[test]
fn node_order_is_fine_when_the_close_comes_after_registration() {
    let registry = NodeRegistry::new(Order::Node);
    let transport = Transport::new();
    registry.register(&transport);
    assert_eq!(registry.check_invariants(), Ok(()));
    transport.close();
    assert!(registry.is_empty());
}

#[test]
fn insert_first_order_leaves_nothing_when_closed_inside_the_window() {
    let registry = NodeRegistry::new(Order::InsertFirst);
    let transport = Transport::new();
    let id = registry.register_with(&transport, |_| transport.close());
    assert!(registry.is_empty(), "the hook removed the inserted client");
    assert_eq!(registry.check_invariants(), Ok(()));
    assert!(!registry.subscribe(id, "news"));
}

#[test]
fn real_hub_leaves_nothing_when_closed_inside_the_registration_window() {
    let config = HubConfig {
        replay_capacity: 0,
        ..HubConfig::default()
    };
    let hub = Hub::new(config, Instant::now());
    // reserve → arm the close hook → headers → (transport closes) → activate.
    let reservation = hub.reserve(ReserveOptions::new().topic("news")).unwrap();
    let id = reservation.id();
    let stream = reservation.stream();
    let guard = hub.close_guard(id);
    drop(guard); // the transport closes inside the window
    assert_eq!(
        hub.len(),
        1,
        "the slot waits for its reservation (ClosePending)"
    );
    assert_eq!(
        reservation.activate(),
        Err(ActivateError::ClosedBeforeActivation(
            CloseReason::ClientGone
        ))
    );
    assert_eq!(hub.len(), 0, "I5: the deferred cleanup ran");
    assert_eq!(hub.topic_count(), 0);
    assert_eq!(hub.subscriber_count("news"), 0);
    assert_eq!(hub.deadline_count(), 0);
    assert_eq!(
        stream.drain(&mut Vec::new(), 8),
        Drain::Closed(CloseReason::ClientGone),
        "I1: the writer sees the close"
    );
    assert!(hub.subscribe(id, "news").is_err(), "I4: the id is dead");
    hub.check_invariants().unwrap();
}
