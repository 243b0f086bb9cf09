//! Publish fan-out: the cost per delivered frame at 1, 100 and 10 000
//! subscribers (`Throughput::Elements(subscribers)`, so criterion's
//! "elem/s" is frames delivered per second).
//!
//! | id | what one iteration does |
//! |---|---|
//! | `floor` | per subscriber: one `Bytes` clone + one push on a `Mutex<VecDeque<Bytes>>` |
//! | `ssehub` | `Hub::publish`: id, encode once, replay ring, push to every queue |
//! | `ssehub+drain` | the same, plus every subscriber's writer draining its frame |
//! | `ssehub+wake` | `ssehub+drain` with every writer a parked task: each push wakes it, and each woken writer drains and parks again (`poll_drain`) |
//! | `baseline_a` | the Node design's broadcast: a `format!` per subscriber, pushed to its queue |
//! | `baseline_a+drain` | the same, plus every subscriber taking its string |
//! | `baseline_b` | `broadcast::Sender::send`, then every receiver's `try_recv` and the `axum::response::sse::Event` it formats |
//! | `baseline_b+wake` | `baseline_b` with every receiver a parked task polling its `BroadcastStream`, as B's server does: the send wakes it, it takes and formats its message and parks again |
//!
//! Like for like: `ssehub+drain` against `baseline_b` and
//! `baseline_a+drain` (every subscriber's side of the work inside the
//! timing on both sides), `ssehub+wake` against `baseline_b+wake` (plus
//! the wake-ups every real push pays, with the same waker on both sides,
//! [`ssehub_benches::tasks`]). `ssehub` alone is compared with the floor
//! only, which drains nothing either. B's messages share their strings
//! (`Arc<str>`), so a receiver's clone copies no data.
//!
//! In `floor`, `ssehub` and `baseline_a`, queues are drained between timed
//! batches (outside the timing) so the bench measures fan-out, not queue
//! growth or overflow; the batch size keeps at most ~100 000 frames
//! queued.
//!
//! Run: `cargo bench -p ssehub-benches --bench fanout`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::Stream;
use ssehub_benches::baseline_a::NodeStyleHub;
use ssehub_benches::baseline_b::{to_sse_event, BroadcastHub, Message};
use ssehub_benches::floor::FloorQueues;
use ssehub_benches::tasks::Tasks;
use ssehub_core::codec::Event;
use ssehub_core::{ClientStream, Drain, Hub, HubConfig, ReserveOptions};
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_stream::wrappers::BroadcastStream;

/// A small payload, as a JSON notification would be.
const PAYLOAD: &str = r#"{"type":"update","id":123456,"status":"ok"}"#;
const SIZES: [usize; 3] = [1, 100, 10_000];
/// Frames a batch may leave queued in total before an untimed drain.
const QUEUED_LIMIT: u64 = 100_000;

fn batch_len(subscribers: usize) -> u64 {
    (QUEUED_LIMIT / subscribers as u64).clamp(1, 512)
}

/// Runs `iters` timed calls of `timed`, in batches of `batch`, calling the
/// untimed `between` after each batch.
fn batched(iters: u64, batch: u64, mut timed: impl FnMut(), mut between: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(batch);
        let start = Instant::now();
        for _ in 0..n {
            timed();
        }
        total += start.elapsed();
        between();
        left -= n;
    }
    total
}

fn ssehub_with(subscribers: usize) -> (Hub, Vec<ClientStream>) {
    let config = HubConfig {
        queue_max_frames: 1024,
        // Replay is on (the default ring), as in production.
        ..HubConfig::default()
    };
    let hub = Hub::new(config, Instant::now());
    let streams = (0..subscribers)
        .map(|_| {
            let r = hub
                .reserve(ReserveOptions::new().topic("t"))
                .expect("reserve");
            let s = r.stream();
            r.activate().expect("activate");
            s
        })
        .collect();
    (hub, streams)
}

fn drain_streams(streams: &[ClientStream], out: &mut Vec<Bytes>) {
    for s in streams {
        out.clear();
        let _ = s.drain(out, usize::MAX);
    }
}

/// One poll of an ssehub writer task: drain until the queue is empty,
/// which parks the task on it again (as the adapter's body does).
fn poll_writer(stream: &ClientStream, cx: &mut Context<'_>, out: &mut Vec<Bytes>) {
    loop {
        out.clear();
        match stream.poll_drain(cx, out, 64) {
            Poll::Ready(Drain::Frames(_)) => {
                black_box(&*out);
            }
            Poll::Ready(_) | Poll::Pending => break,
        }
    }
}

/// One poll of a baseline B connection task: take and format every
/// message until the stream is pending, which parks the task again (as
/// B's `Sse` body does).
fn poll_receiver(stream: &mut BroadcastStream<Message>, cx: &mut Context<'_>) {
    while let Poll::Ready(Some(item)) = Pin::new(&mut *stream).poll_next(cx) {
        if let Ok(message) = item {
            let _event = black_box(to_sse_event(&message));
        }
    }
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for &subscribers in &SIZES {
        group.throughput(Throughput::Elements(subscribers as u64));
        let batch = batch_len(subscribers);
        if subscribers >= 10_000 {
            group.sample_size(30);
        }

        // The floor.
        let floor = FloorQueues::new(subscribers);
        let frame = Event::new(PAYLOAD).to_bytes().expect("encode");
        group.bench_function(BenchmarkId::new("floor", subscribers), |b| {
            b.iter_custom(|iters| {
                batched(
                    iters,
                    batch,
                    || {
                        black_box(floor.fan_out(&frame));
                    },
                    || {
                        floor.drain_all();
                    },
                )
            })
        });
        drop(floor);

        // ssehub, publish only.
        let (hub, streams) = ssehub_with(subscribers);
        let event = Event::new(PAYLOAD);
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::new("ssehub", subscribers), |b| {
            b.iter_custom(|iters| {
                batched(
                    iters,
                    batch,
                    || {
                        let report = hub.publish("t", &event).expect("publish");
                        debug_assert_eq!(report.delivered, subscribers);
                        black_box(report);
                    },
                    || drain_streams(&streams, &mut out),
                )
            })
        });
        // ssehub, publish + every writer's drain.
        group.bench_function(BenchmarkId::new("ssehub+drain", subscribers), |b| {
            b.iter(|| {
                black_box(hub.publish("t", &event).expect("publish"));
                drain_streams(&streams, &mut out);
            })
        });
        // ssehub, every writer a task woken by its push.
        let mut tasks = Tasks::new(subscribers);
        tasks.poll_all(|i, cx| poll_writer(&streams[i], cx, &mut out));
        group.bench_function(BenchmarkId::new("ssehub+wake", subscribers), |b| {
            b.iter(|| {
                black_box(hub.publish("t", &event).expect("publish"));
                let ran = tasks.run(|i, cx| poll_writer(&streams[i], cx, &mut out));
                debug_assert_eq!(ran, subscribers);
            })
        });
        drop(tasks);
        drop(streams);
        drop(hub);

        // Baseline A.
        let node = NodeStyleHub::new();
        let queues: Vec<_> = (0..subscribers)
            .map(|_| {
                let (id, res) = node.register_client();
                node.subscribe(&id, "t");
                res
            })
            .collect();
        let drain_a = || {
            for q in &queues {
                q.lock().clear();
            }
        };
        drain_a();
        group.bench_function(BenchmarkId::new("baseline_a", subscribers), |b| {
            b.iter_custom(|iters| {
                batched(
                    iters,
                    batch,
                    || {
                        black_box(node.broadcast("t", PAYLOAD));
                    },
                    drain_a,
                )
            })
        });
        group.bench_function(BenchmarkId::new("baseline_a+drain", subscribers), |b| {
            b.iter(|| {
                black_box(node.broadcast("t", PAYLOAD));
                for q in &queues {
                    black_box(q.lock().pop_front());
                }
            })
        });
        drop(queues);
        drop(node);

        // Baseline B.
        let hub_b = BroadcastHub::new(1024);
        let mut receivers: Vec<_> = (0..subscribers).map(|_| hub_b.subscribe("t")).collect();
        group.bench_function(BenchmarkId::new("baseline_b", subscribers), |b| {
            b.iter(|| {
                let (_, delivered) = hub_b.publish("t", None, PAYLOAD);
                debug_assert_eq!(delivered, subscribers);
                for rx in &mut receivers {
                    let message = rx.try_recv().expect("message");
                    let _event = black_box(to_sse_event(&message));
                }
            })
        });
        // Baseline B, every receiver a task woken by the send.
        let mut streams_b: Vec<_> = receivers.into_iter().map(BroadcastStream::new).collect();
        let mut tasks = Tasks::new(subscribers);
        tasks.poll_all(|i, cx| poll_receiver(&mut streams_b[i], cx));
        group.bench_function(BenchmarkId::new("baseline_b+wake", subscribers), |b| {
            b.iter(|| {
                let (_, delivered) = hub_b.publish("t", None, PAYLOAD);
                debug_assert_eq!(delivered, subscribers);
                let ran = tasks.run(|i, cx| poll_receiver(&mut streams_b[i], cx));
                debug_assert_eq!(ran, subscribers);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
