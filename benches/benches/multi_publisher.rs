//! The price of the hub-wide order: four threads publishing at once, each
//! to its own topic with 1 000 subscribers.
//!
//! Since the sequencer, publishes to different topics take turns (that is
//! what makes ids and push order agree for a client on several topics).
//! This bench measures what that costs. Each timed batch: four threads,
//! released together by a barrier, each publish `BATCH` events to their
//! own topic; the time is the wall time of the slowest, and criterion's
//! throughput is deliveries (frames pushed) per second. Queues are drained
//! between batches, outside the timing, on both sides of any comparison.
//!
//! Run against the code before a change, in the same run:
//! `benches/compare-rev.sh <rev> multi_publisher` (it builds this file
//! against `<rev>`'s core as well, and interleaves the two).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ssehub_core::codec::Event;
use ssehub_core::{ClientStream, Hub, HubConfig, ReserveOptions};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const THREADS: usize = 4;
const SUBSCRIBERS: usize = 1_000;
const BATCH: u64 = 64;
const PAYLOAD: &str = r#"{"type":"update","id":123456,"status":"ok"}"#;

fn hub_with_topics() -> (Hub, Vec<ClientStream>) {
    let hub = Hub::new(
        HubConfig {
            queue_max_frames: 1024,
            heartbeat_interval: None,
            idle_timeout: None,
            write_stall_timeout: None,
            ..HubConfig::default()
        },
        Instant::now(),
    );
    let streams = (0..THREADS * SUBSCRIBERS)
        .map(|n| {
            let r = hub
                .reserve(ReserveOptions::new().topic(format!("t{}", n % THREADS)))
                .expect("reserve");
            let stream = r.stream();
            r.activate().expect("activate");
            stream
        })
        .collect();
    (hub, streams)
}

/// One timed batch: every thread publishes `BATCH` events to its topic.
fn batch(hub: &Hub) -> Duration {
    let start = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (hub, start) = (hub.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                let topic = format!("t{t}");
                let event = Event::new(PAYLOAD);
                start.wait();
                for _ in 0..BATCH {
                    let report = hub.publish(&topic, &event).expect("publish");
                    assert_eq!(report.delivered, SUBSCRIBERS);
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for t in threads {
        t.join().expect("publisher");
    }
    began.elapsed()
}

fn multi_publisher(c: &mut Criterion) {
    let mut group = c.benchmark_group("multi_publisher");
    group.throughput(Throughput::Elements(
        THREADS as u64 * BATCH * SUBSCRIBERS as u64,
    ));
    let (hub, streams) = hub_with_topics();
    let mut out: Vec<Bytes> = Vec::new();
    group.bench_function("4x1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += batch(&hub);
                for s in &streams {
                    out.clear();
                    while let ssehub_core::Drain::Frames(_) = s.drain(&mut out, 256) {
                        out.clear();
                    }
                }
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, multi_publisher);
criterion_main!(benches);
