//! Registry benches: the reserve → activate → close cycle (one and two
//! threads) against baseline A's register → subscribe → unsubAll, and
//! subscribe/unsubscribe churn on a topic that is being published to.
//!
//! Like for like:
//! - **cycle**: A's `register_client` formats and queues its `connected`
//!   event, so ssehub's cycle queues what the adapter opens every stream
//!   with: the `welcome` event carrying the client id and the `retry:`
//!   hint, encoded and queued before activation
//!   (`Reservation::send_welcome`, as `respond::open_with` does). Each side
//!   builds its event as its production path does: A `format!`s it, the
//!   hub writes it into one buffer (`codec::welcome_frame`).
//! - **churn**: the publisher on both sides sends at the same fixed rate
//!   ([`CHURN_RATE`] events a second, each to 1 000 subscribers, which it
//!   drains), so the churner's figure is what a subscribe + unsubscribe
//!   costs beside the same publishing load, not how long each side's
//!   publisher holds its locks when it runs flat out. Each side prints the
//!   events it published and the rate it reached.
//!
//! The cycle is timed twice: `cycle/*` in wall time (throughput: the
//! 2-thread figure shows whether two threads scale) and `cycle_cpu/*` in
//! the CPU time of the cycling threads (what a cycle costs, robust to the
//! other processes of a shared machine taking the cores).
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

/// The adapter's `retry:` hint (its default).
const RETRY: Duration = Duration::from_secs(3);

fn ssehub_cycle(hub: &Hub, topic: &str) {
    let reservation = hub
        .reserve(ReserveOptions::new().topic(topic))
        .expect("reserve");
    let stream = reservation.stream();
    // The initial frames, as the adapter queues them before activation.
    reservation
        .send_welcome("welcome", Some(RETRY))
        .expect("send the welcome");
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

/// What [`parallel`] reports as the time of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// Wall time from the start barrier to the end barrier: throughput.
    Wall,
    /// CPU time the cycling threads spent, summed (`CLOCK_THREAD_CPUTIME_ID`):
    /// what a cycle costs, not counting the time other processes on this
    /// shared machine held the cores.
    Cpu,
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `iters` cycles split over `threads` threads; returns the wall time
/// or the summed CPU time of the threads.
fn parallel<F>(iters: u64, threads: usize, clock: Clock, cycle: F) -> Duration
where
    F: Fn(usize) + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                let cycle = &cycle;
                let share = iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
                scope.spawn(move || {
                    barrier.wait();
                    let start = thread_cpu();
                    for _ in 0..share {
                        cycle(t);
                    }
                    let cpu = thread_cpu() - start;
                    barrier.wait();
                    cpu
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        let wall = start.elapsed();
        let cpu: Duration = workers
            .into_iter()
            .map(|w| w.join().expect("cycling thread"))
            .sum();
        match clock {
            Clock::Wall => wall,
            Clock::Cpu => cpu,
        }
    })
}

fn cycle(c: &mut Criterion) {
    // Each thread uses its own topic, as independent connections would.
    let topics = ["topic-0", "topic-1"];
    for (name, clock) in [("cycle", Clock::Wall), ("cycle_cpu", Clock::Cpu)] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
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
                b.iter_custom(|iters| {
                    parallel(iters, threads, clock, |t| ssehub_cycle(&hub, topics[t]))
                })
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
                b.iter_custom(|iters| {
                    parallel(iters, threads, clock, |t| node_cycle(&node, topics[t]))
                })
            });
        }
        group.finish();
    }
}

/// What one clone + drop of the hub's handle (an `Arc`) costs, alone and
/// with two threads doing it to the same handle, in the same harness as
/// the cycle: a `Reservation` and a `ClientStream` each hold one, so this
/// is the price of holding the hub instead of borrowing it.
fn hub_clone(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub_clone");
    group.throughput(Throughput::Elements(1));
    let hub = hub();
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("wall", threads), |b| {
            b.iter_custom(|iters| {
                parallel(iters, threads, Clock::Wall, |_| {
                    drop(black_box(hub.clone()));
                })
            })
        });
    }
    group.finish();
}

/// Events a second the churn bench's publisher sends, on both sides (low
/// enough that either side keeps up on a loaded 2-core machine).
const CHURN_RATE: u64 = 100;

/// Calls `publish` [`CHURN_RATE`] times a second until `stop`. A late
/// publish is sent at once, so both sides send the same number of events
/// over the same time as long as they keep up on average (the printed rate
/// says whether they did); a side more than a second behind gives up the
/// backlog. Returns the events published and the time it ran.
fn at_fixed_rate(stop: &AtomicBool, mut publish: impl FnMut()) -> (u64, Duration) {
    let period = Duration::from_nanos(1_000_000_000 / CHURN_RATE);
    let start = Instant::now();
    let mut next = start;
    let mut published = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(1)));
            continue;
        }
        publish();
        published += 1;
        next += period;
        if now > next + Duration::from_secs(1) {
            next = now;
        }
    }
    (published, start.elapsed())
}

fn report_rate(side: &str, (published, elapsed): (u64, Duration)) {
    eprintln!(
        "churn_while_publishing/{side}: published {published} events in {:.2} s \
         ({:.0}/s, target {CHURN_RATE}/s)",
        elapsed.as_secs_f64(),
        published as f64 / elapsed.as_secs_f64()
    );
}

/// Subscribe + unsubscribe of one client on the topic a background thread
/// publishes to at [`CHURN_RATE`] events a second (1 000 subscribers,
/// drained by the publisher). One element = one subscribe or one
/// unsubscribe.
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
                at_fixed_rate(&stop, || {
                    hub.publish("hot", &event).expect("publish");
                    for s in &streams {
                        out.clear();
                        let _ = s.drain(&mut out, 64);
                    }
                })
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
    report_rate("ssehub", published);

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
                at_fixed_rate(&stop, || {
                    node.broadcast("hot", r#""churn payload 0123456789""#);
                    for q in queues {
                        q.lock().clear();
                    }
                })
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
    report_rate("baseline_a", published);
    group.finish();
}

criterion_group!(benches, cycle, hub_clone, churn);
criterion_main!(benches);
