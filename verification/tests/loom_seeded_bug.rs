//! The checker bites: loom finds the seeded bug of
//! [`ssehub_verification::mutant`] on its own.
//!
//! One thread registers a client in the Node order while the client's
//! transport closes on another. Some interleaving runs the close hook
//! between arming it and inserting the client; the model then finds a
//! registered client with a dead transport (I1) and `len() != 0` although
//! every client was closed (I5). The test is `should_panic` on "I1", so the
//! suite fails if loom ever stops finding the leak. The same model on the
//! fixed order passes, so the failure is the bug's and not the model's.

#![cfg(ssehub_loom)]

use loom::thread;
use ssehub_core::sync::Arc;
use ssehub_verification::model::run_model;
use ssehub_verification::mutant::{NodeRegistry, Order, Transport};

fn register_vs_close(order: Order) {
    let registry = NodeRegistry::new(order);
    let transport = Transport::new();
    let closer = {
        let transport = Arc::clone(&transport);
        thread::spawn(move || transport.close())
    };
    registry.register(&transport);
    closer.join().unwrap();
    if let Err(violation) = registry.check_invariants() {
        panic!("{violation}");
    }
    assert_eq!(
        registry.len(),
        0,
        "I5: len() == 0 once every client has been closed"
    );
}

#[test]
#[should_panic(expected = "I1")]
fn node_order_registration_leaks_a_client_closed_mid_registration() {
    run_model("seeded_bug_node_order", || register_vs_close(Order::Node));
}

#[test]
fn insert_first_registration_survives_every_close_interleaving() {
    run_model("seeded_bug_insert_first", || {
        register_vs_close(Order::InsertFirst)
    });
}
