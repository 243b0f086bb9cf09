//! The one entry point of every loom model: [`run_model`].
//!
//! It builds a [`loom::model::Builder`] whose preemption bound comes from
//! `LOOM_MAX_PREEMPTIONS` (2 when unset, which keeps the whole suite within
//! a few minutes on two cores), names the model on stderr, and counts the
//! interleavings loom explored so that DESIGN.md (§10) can report them
//! (run the tests with `-- --nocapture` to see the counts).
//!
//! Beside it: the quiet configuration most models use, and the assertions
//! every model ends with.

use ssehub_core::{ClientStream, Drain, Hub, HubConfig};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set.
pub const DEFAULT_PREEMPTIONS: usize = 2;

/// The preemption bound in force: `LOOM_MAX_PREEMPTIONS`, else
/// [`DEFAULT_PREEMPTIONS`].
pub fn preemption_bound() -> usize {
    std::env::var("LOOM_MAX_PREEMPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_PREEMPTIONS)
}

/// Explores every interleaving of `model` within the preemption bound and
/// returns how many executions loom ran.
///
/// The counter is a plain `std` atomic outside the model, so loom does not
/// track it and it survives across executions.
///
/// # Panics
///
/// Whenever `model` panics in some interleaving (an invariant assertion, a
/// deadlock or a leak that loom detects); loom prints the failing schedule.
pub fn run_model<F>(name: &str, model: F) -> usize
where
    F: Fn() + Sync + Send + 'static,
{
    let bound = preemption_bound();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&executions);
    eprintln!("loom model {name}: exploring with preemption bound {bound}");
    let started = Instant::now();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    let explored = executions.load(Ordering::Relaxed);
    eprintln!(
        "loom model {name}: {explored} interleavings explored in {:.2?} (preemption bound {bound})",
        started.elapsed()
    );
    explored
}

/// A configuration with no clock-driven behaviour and no retained events:
/// the smallest state for models where time is irrelevant, and topics are
/// dropped as soon as their last subscriber goes (I5).
pub fn quiet_config() -> HubConfig {
    HubConfig {
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        replay_max_age: None,
        replay_capacity: 0,
        ..HubConfig::default()
    }
}

/// Drains `stream` without blocking: the frames as text, and how the drain
/// ended ([`Drain::Empty`] while open, [`Drain::Closed`] once closed).
pub fn drain_all(stream: &ClientStream) -> (Vec<String>, Drain) {
    let mut out = Vec::new();
    loop {
        match stream.drain(&mut out, 64) {
            Drain::Frames(_) => continue,
            end => {
                let frames = out
                    .iter()
                    .map(|frame| String::from_utf8_lossy(frame).into_owned())
                    .collect();
                return (frames, end);
            }
        }
    }
}

/// Asserts that a hub whose clients have all been closed is settled (I5):
/// the structural invariants hold, no client, deadline or subscriber is
/// left, and exactly `topics` topics are kept (those with retained events).
///
/// # Panics
///
/// With a message naming the broken invariant.
pub fn assert_settled(hub: &Hub, topics: usize) {
    if let Err(violation) = hub.check_invariants() {
        panic!("{violation}");
    }
    assert_eq!(hub.len(), 0, "I5: len() == 0 once every client is closed");
    assert_eq!(
        hub.deadline_count(),
        0,
        "I5: no deadline outlives its client"
    );
    assert_eq!(
        hub.topic_count(),
        topics,
        "I5: only topics with retained events are kept"
    );
}

/// The outcomes a model observed across all its interleavings, so that a
/// test can assert that loom really drove the race both ways (a model whose
/// threads never overlap proves nothing).
///
/// It lives outside the model (a `std` mutex loom does not track), and is
/// never held across a point where loom could switch threads.
#[derive(Clone, Debug, Default)]
pub struct Seen(Arc<std::sync::Mutex<BTreeSet<&'static str>>>);

impl Seen {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that one interleaving ended with `outcome`.
    pub fn record(&self, outcome: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(outcome);
    }

    /// Asserts that exactly `expected` were seen.
    ///
    /// # Panics
    ///
    /// When the seen set differs: the model misses a branch of the race (or
    /// reached one thought impossible).
    pub fn assert_exactly(&self, expected: &[&'static str]) {
        let seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let expected: BTreeSet<_> = expected.iter().copied().collect();
        assert_eq!(seen, expected, "the outcomes loom reached");
    }
}
