//! # ssehub-benches
//!
//! Benchmarks of ssehub against the designs it replaces, measured in the
//! same run (SPEC §10, issue 8). Not published.
//!
//! | item | what |
//! |---|---|
//! | [`baseline_a`] | a faithful port of the Node `ServerEventsManager` (string-keyed maps, a frame formatted per client) |
//! | [`baseline_b`] | the axum idiom: a `tokio::sync::broadcast` channel per topic and `axum::response::sse::Sse` |
//! | [`floor`] | the least any fan-out can do: one `Bytes` clone and one locked push per subscriber |
//! | [`wire`] | the load generator's minimal HTTP/1.1 + `text/event-stream` reader (de-chunking, `data:` extraction) |
//! | [`procstat`] | RSS and CPU time of a process from `/proc` |
//! | [`tasks`] | parked reader tasks and their wakers, for the fan-out bench's `+wake` rows |
//! | [`transport`] | the load generator's connections: cleartext or TLS |
//!
//! The criterion benches are in `benches/benches/`, the end-to-end load
//! generator in `src/bin/loadgen.rs`, baseline B's server in
//! `src/bin/baseline_b_server.rs`, and the comparison script and its
//! results in `run-comparison.sh` and `RESULTS.md`.

#![deny(missing_docs, rust_2018_idioms)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod baseline_a;
pub mod baseline_b;
pub mod floor;
pub mod procstat;
pub mod tasks;
pub mod transport;
pub mod wire;
