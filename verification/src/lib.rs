//! # ssehub-verification
//!
//! Evidence that the registry in `ssehub-core` keeps its invariants (I1–I8,
//! stated in the core's `registry` module docs and in DESIGN.md) under every
//! interleaving a model checker can reach, and under random operation
//! sequences checked against a plain reference model.
//!
//! | where | what |
//! |---|---|
//! | [`mutant`] | the seeded bug: a registry that registers in the Node order (arm the close hook, then insert), so we can show the checker catches it |
//! | `model` (loom builds only) | `run_model`, the one way every loom model is run |
//! | `tests/loom_*.rs` | loom models of the real [`ssehub_core::Hub`], compiled to nothing unless `--cfg ssehub_loom` |
//! | `tests/prop_registry.rs` | proptest state machine against a `BTreeMap` reference model |
//! | `tests/soak_churn.rs` | real threads, thousands of clients, ending with `len() == 0` (I5) |
//! | `tests/seeded_bug.rs` | the mutant's leak forced deterministically, and the real hub not leaking under the same order |
//!
//! The loom models run with
//!
//! ```text
//! RUSTFLAGS="--cfg ssehub_loom" LOOM_MAX_PREEMPTIONS=2 \
//!   CARGO_TARGET_DIR=target/loom \
//!   cargo test --release -p ssehub-verification --test 'loom_*'
//! ```
//!
//! See DESIGN.md §10 for what each model proves, which mutation of the
//! core it catches, and how many interleavings it explores.

#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

#[cfg(ssehub_loom)]
pub mod model;
pub mod mutant;
