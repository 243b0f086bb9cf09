//! Registry benches: the reserve → activate → close cycle (one and two
//! threads) against baseline A's register → subscribe → unsubAll, and
//! subscribe/unsubscribe churn on a topic that is being published to.
//!
//! Run: `cargo bench -p ssehub-benches --bench registry`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssehub_benches::baseline_a::NodeStyleHub;
use ssehub_core::codec::Event;
use ssehub_core::{CloseReason, Drain, Hub, HubConfig, ReserveOptions};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A hub whose deadlines are real (the defaults), so activation pays for
/// scheduling them, as it does in production.
fn hub() -> Hub {
    Hub::new(HubConfig::default(), Instant::now())
}

fn ssehub_cycle(hub: &Hub, topic: &str) {
    let reservation = hub
        .reserve(ReserveOptions::new().topic(topic))
        .expect("reserve");
    let stream = reservation.stream();
    let id = reservation.activate().expect("activate");
    black_box(&stream);
    let _ = black_box(hub.close(id, CloseReason::ClientGone));
}

fn node_cycle(hub: &NodeStyleHub, topic: &str) {
    let (id, res) = hub.register_client();
    hub.subscribe(&id, topic);
    black_box(&res);
    hub.unsub_all(&id);
}

/// Runs `iters` cycles split over `threads` threads; returns the wall time.
fn parallel<F>(iters: u64, threads: usize, cycle: F) -> Duration
where
    F: Fn(usize) + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let barrier = &barrier;
            let cycle = &cycle;
            let share = iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..share {
                    cycle(t);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle");
    group.throughput(Throughput::Elements(1));
    // Each thread uses its own topic, as independent connections would.
    let topics = ["topic-0", "topic-1"];
    for threads in [1usize, 2] {
        let hub = hub();
        // Keep one long-lived subscriber per topic so the topic persists
        // (its creation is not what the cycle measures).
        let _keep: Vec<_> = topics
            .iter()
            .map(|t| {
                let r = hub.reserve(ReserveOptions::new().topic(*t)).expect("r");
                let s = r.stream();
                r.activate().expect("activate");
                s
            })
            .collect();
        group.bench_function(BenchmarkId::new("ssehub", threads), |b| {
            b.iter_custom(|iters| parallel(iters, threads, |t| ssehub_cycle(&hub, topics[t])))
        });
        let node = NodeStyleHub::new();
        let _keep_a: Vec<_> = topics
            .iter()
            .map(|t| {
                let (id, res) = node.register_client();
                node.subscribe(&id, t);
                res
            })
            .collect();
        group.bench_function(BenchmarkId::new("baseline_a", threads), |b| {
            b.iter_custom(|iters| parallel(iters, threads, |t| node_cycle(&node, topics[t])))
        });
    }
    group.finish();
}

/// Subscribe + unsubscribe of one client on the topic a background thread
/// publishes to (1 000 subscribers, drained by the publisher) as fast as
/// it can. One element = one subscribe or one unsubscribe.
fn churn(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 1_000;
    let mut group = c.benchmark_group("churn_while_publishing");
    group.throughput(Throughput::Elements(2));

    // ssehub
    let hub = hub();
    let streams: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let r = hub.reserve(ReserveOptions::new().topic("hot")).expect("r");
            let s = r.stream();
            r.activate().expect("activate");
            s
        })
        .collect();
    let churner = hub.reserve(ReserveOptions::new()).expect("r");
    let churner_stream = churner.stream();
    let churner = churner.activate().expect("activate");
    let stop = Arc::new(AtomicBool::new(false));
    let published = std::thread::scope(|scope| {
        let publisher = {
            let hub = hub.clone();
            let stop = Arc::clone(&stop);
            scope.spawn(move || {
                let event = Event::new("churn payload 0123456789");
                let mut out = Vec::new();
                let mut published = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    hub.publish("hot", &event).expect("publish");
                    published += 1;
                    for s in &streams {
                        out.clear();
                        let _ = s.drain(&mut out, 64);
                    }
                }
                published
            })
        };
        let mut out = Vec::new();
        group.bench_function("ssehub", |b| {
            b.iter(|| {
                assert!(hub.subscribe(churner, "hot").expect("subscribe"));
                assert!(hub.unsubscribe(churner, "hot").expect("unsubscribe"));
                out.clear();
                if let Drain::Frames(_) = churner_stream.drain(&mut out, 64) {
                    black_box(&out);
                }
            })
        });
        stop.store(true, Ordering::Relaxed);
        publisher.join().expect("publisher")
    });
    eprintln!("churn/ssehub: the publisher sent {published} events meanwhile");

    // baseline A
    let node = NodeStyleHub::new();
    let queues: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let (id, res) = node.register_client();
            node.subscribe(&id, "hot");
            res
        })
        .collect();
    let (churn_id, churn_res) = node.register_client();
    stop.store(false, Ordering::Relaxed);
    let published = std::thread::scope(|scope| {
        let publisher = {
            let node = &node;
            let stop = Arc::clone(&stop);
            let queues = &queues;
            scope.spawn(move || {
                let mut published = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    node.broadcast("hot", r#""churn payload 0123456789""#);
                    published += 1;
                    for q in queues {
                        q.lock().clear();
                    }
                }
                published
            })
        };
        group.bench_function("baseline_a", |b| {
            b.iter(|| {
                assert!(node.subscribe(&churn_id, "hot"));
                assert!(node.unsubscribe(&churn_id, "hot"));
                churn_res.lock().clear();
            })
        });
        stop.store(true, Ordering::Relaxed);
        publisher.join().expect("publisher")
    });
    eprintln!("churn/baseline_a: the publisher sent {published} events meanwhile");
    group.finish();
}

criterion_group!(benches, cycle, churn);
criterion_main!(benches);
