//! Real threads reserving, activating, closing (some before activation, some
//! from another thread), subscribing and publishing in random order: when
//! every client has been closed, nothing is left (I5), and the indexes agree
//! throughout (I2).

use ssehub_core::codec::Event;
use ssehub_core::{CloseReason, Drain, Hub, HubConfig, ReserveOptions};
use std::sync::mpsc;
use std::time::Instant;

/// A small deterministic PRNG, so a failure reproduces with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TOPICS: [&str; 4] = ["t0", "t1", "t2", "t3"];

#[test]
fn multi_threaded_churn_ends_with_nothing_left() {
    let hub = Hub::new(
        HubConfig {
            replay_capacity: 0,
            queue_max_frames: 64,
            heartbeat_interval: None,
            idle_timeout: None,
            write_stall_timeout: None,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    let (to_closer, closer_rx) = mpsc::channel();
    let closer = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            let mut closed = 0;
            for id in closer_rx {
                let _ = hub.close(id, CloseReason::ClientGone);
                closed += 1;
            }
            closed
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|seed| {
            let hub = hub.clone();
            let to_closer = to_closer.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1));
                let mut live = Vec::new();
                for _ in 0..2_000 {
                    match rng.below(6) {
                        0 | 1 => {
                            let topic = TOPICS[rng.below(4) as usize];
                            let r = hub.reserve(ReserveOptions::new().topic(topic)).unwrap();
                            if rng.below(4) == 0 {
                                // The close hook fires from another thread,
                                // racing the activation below.
                                to_closer.send(r.id()).unwrap();
                            }
                            if rng.below(10) == 0 {
                                drop(r);
                            } else if let Ok(id) = r.activate() {
                                live.push(id);
                            }
                        }
                        2 => {
                            let _ = hub.publish(TOPICS[rng.below(4) as usize], &Event::new("x"));
                        }
                        3 if !live.is_empty() => {
                            let id = live[rng.below(live.len() as u64) as usize];
                            let _ = hub.subscribe(id, TOPICS[rng.below(4) as usize]);
                        }
                        4 if !live.is_empty() => {
                            let at = rng.below(live.len() as u64) as usize;
                            let id = live.swap_remove(at);
                            if rng.below(2) == 0 {
                                to_closer.send(id).unwrap();
                            } else {
                                let _ = hub.close(id, CloseReason::Kicked);
                            }
                        }
                        _ => {
                            let id = live.get(rng.below(live.len().max(1) as u64) as usize);
                            if let Some(&id) = id {
                                let _ = hub.unsubscribe(id, TOPICS[rng.below(4) as usize]);
                            }
                        }
                    }
                }
                for id in live {
                    let _ = hub.close(id, CloseReason::ClientGone);
                }
            })
        })
        .collect();
    // Meanwhile, the invariants hold at every point this thread looks.
    for _ in 0..50 {
        hub.check_invariants().unwrap();
        std::thread::yield_now();
    }
    for worker in workers {
        worker.join().unwrap();
    }
    drop(to_closer);
    let closed_by_closer = closer.join().unwrap();
    assert!(
        closed_by_closer > 100,
        "the closer thread raced enough: {closed_by_closer}"
    );
    assert_eq!(hub.len(), 0, "I5");
    assert_eq!(hub.topic_count(), 0, "I5");
    assert_eq!(hub.deadline_count(), 0, "I5");
    hub.check_invariants().unwrap();
    let metrics = hub.metrics();
    assert_eq!(metrics.clients_active + metrics.clients_reserved, 0);
}

#[test]
fn publishers_and_closers_never_deliver_after_close() {
    // I3: once close returned, the client's stream ends and nothing more
    // arrives, however many publishers are running.
    let hub = Hub::new(
        HubConfig {
            replay_capacity: 0,
            queue_max_frames: 1 << 20,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    let r = hub.reserve(ReserveOptions::new().topic("a")).unwrap();
    let stream = r.stream();
    let id = r.activate().unwrap();
    let publishers: Vec<_> = (0..2)
        .map(|_| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    hub.publish("a", &Event::new("x")).unwrap();
                }
            })
        })
        .collect();
    let _ = hub.close(id, CloseReason::Kicked);
    let mut frames = Vec::new();
    while let Drain::Frames(_) = stream.drain(&mut frames, 1024) {}
    let at_close = frames.len();
    for p in publishers {
        p.join().unwrap();
    }
    assert_eq!(
        stream.drain(&mut frames, 1024),
        Drain::Closed(CloseReason::Kicked)
    );
    assert_eq!(
        frames.len(),
        at_close,
        "I3: nothing enqueued after close returned"
    );
}
