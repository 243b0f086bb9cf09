//! A multi-threaded churn soak on real threads: thousands of clients
//! reserved, activated, subscribed, sent to, published to and closed in
//! random order, with closes coming from another thread (some before
//! activation) and a publisher running throughout. At the end every client
//! has been closed, so the hub must hold nothing but the retained events'
//! topics (I5), and those go once their events expire.
//!
//! Deterministic per thread (a seeded xorshift), bounded in work, no
//! sleeps.

#![cfg(not(ssehub_loom))]

use ssehub_core::codec::Event;
use ssehub_core::{ActivateError, CloseReason, Hub, HubConfig, ReserveOptions};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const WORKERS: u64 = 4;
const CLIENTS_PER_WORKER: usize = 5_000;
const PUBLISHES: usize = 40_000;
const TOPICS: [&str; 8] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];

/// xorshift64*: enough randomness for an interleaving soak.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    fn topic(&mut self) -> &'static str {
        TOPICS[self.below(TOPICS.len())]
    }
}

#[test]
fn churn_from_many_threads_leaves_nothing_behind() {
    let start = Instant::now();
    let config = HubConfig {
        queue_max_frames: 16,
        replay_capacity: 4,
        replay_max_age: Some(Duration::from_secs(1)),
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        ..HubConfig::default()
    };
    let hub = Hub::new(config, start);
    let (to_closer, closes) = mpsc::channel();

    let closer = {
        let hub = hub.clone();
        thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let mut closed = 0usize;
            for id in closes {
                let reason = CloseReason::ALL[rng.below(CloseReason::COUNT)];
                let _ = hub.close(id, reason);
                closed += 1;
            }
            closed
        })
    };
    let publisher = {
        let hub = hub.clone();
        thread::spawn(move || {
            let mut rng = Rng(0xD1B5_4A32_D192_ED03);
            for n in 0..PUBLISHES {
                hub.publish(rng.topic(), &Event::new(format!("p{n}")))
                    .unwrap();
            }
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let hub = hub.clone();
            let to_closer = to_closer.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x5851_F42D_4C95_7F2D ^ ((w + 1) * 0x1405_7B7E_F767_814F));
                let mut deferred_failures = 0usize;
                let mut frames = Vec::new();
                for _ in 0..CLIENTS_PER_WORKER {
                    let mut opts = ReserveOptions::new().topic(rng.topic()).topic(rng.topic());
                    if rng.below(4) == 0 {
                        opts = opts.last_event_id(hub.last_event_id().to_string());
                    }
                    let reservation = hub.reserve(opts).unwrap();
                    let id = reservation.id();
                    let stream = reservation.stream();
                    match rng.below(10) {
                        // The close hook fires on another thread, racing
                        // the activation below.
                        0..=2 => {
                            to_closer.send(id).unwrap();
                            match reservation.activate() {
                                Ok(_) => {}
                                Err(ActivateError::ClosedBeforeActivation(_)) => {
                                    deferred_failures += 1;
                                }
                                Err(other) => panic!("activate: {other}"),
                            }
                        }
                        // An early return between reserve and activate.
                        3 => drop(reservation),
                        _ => {
                            let id = reservation.activate().unwrap();
                            if rng.below(2) == 0 {
                                let _ = hub.subscribe(id, rng.topic());
                            }
                            if rng.below(3) == 0 {
                                let _ = hub.unsubscribe(id, rng.topic());
                            }
                            let _ = hub.send(id, &Event::new("direct"));
                            frames.clear();
                            let _ = stream.drain(&mut frames, 8);
                            if rng.below(2) == 0 {
                                to_closer.send(id).unwrap();
                            } else {
                                let _ = hub.close(id, CloseReason::ClientGone);
                            }
                        }
                    }
                }
                deferred_failures
            })
        })
        .collect();
    drop(to_closer);

    let deferred: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    publisher.join().unwrap();
    let closed_remotely = closer.join().unwrap();
    assert!(closed_remotely > 0 && deferred <= closed_remotely);

    if let Err(violation) = hub.check_invariants() {
        panic!("{violation}");
    }
    assert_eq!(hub.len(), 0, "I5: len() == 0 once every client is closed");
    assert_eq!(hub.deadline_count(), 0, "I5: no deadline left");
    for topic in TOPICS {
        assert_eq!(
            hub.subscriber_count(topic),
            0,
            "I5: {topic} has subscribers"
        );
    }
    assert_eq!(
        hub.topic_count(),
        TOPICS.len(),
        "I5: only the topics' replay rings are kept"
    );
    let metrics = hub.metrics();
    assert_eq!(metrics.clients_active, 0);

    let report = hub.tick(start + Duration::from_secs(2));
    assert_eq!(report.expired_events, 4 * TOPICS.len());
    assert_eq!(hub.topic_count(), 0, "I5: topics go with their last event");
    hub.check_invariants().unwrap();
}
