//! What presence snapshots cost publishing: one thread publishes to 1 000
//! subscribers spread over 100 topics (10 each) while another thread takes
//! snapshots in a loop, against the same publishing with no poller, in the
//! same run.
//!
//! Each timed batch publishes `ROUNDS` events to every topic (`ROUNDS` ×
//! 1 000 deliveries); queues are drained between batches, outside the
//! timing, on both sides. The poller alternates a full first page of
//! [`Hub::topics_snapshot`] (all 100 topics, sorted by subscribers) and a
//! [`Hub::topic_presence`] with a page of client ids, as fast as it can,
//! for the whole of its variant (warm-up included); it is started before
//! and stopped after that variant only. A third variant paces the poller
//! at one snapshot pair per millisecond (a dashboard refreshing 1 000
//! times faster than it needs to), which separates lock interference from
//! the CPU a tight loop takes away on a busy machine.
//!
//! On a machine with fewer free cores than threads, the poller also takes
//! CPU time from the publisher; the ratio then bounds lock interference
//! from above.
//!
//! `cargo bench -p ssehub-benches --bench presence -- --warm-up-time 1 --measurement-time 3`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ssehub_core::codec::Event;
use ssehub_core::{
    ClientPage, ClientStream, Drain, Hub, HubConfig, ReserveOptions, TopicPage, TopicSort,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPICS: usize = 100;
const SUBSCRIBERS: usize = 1_000;
const ROUNDS: u64 = 8;
const PAYLOAD: &str = r#"{"type":"update","id":123456,"status":"ok"}"#;

fn hub_with_topics() -> (Hub, Vec<String>, Vec<ClientStream>) {
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
    let topics: Vec<String> = (0..TOPICS).map(|n| format!("t{n:03}")).collect();
    let streams = (0..SUBSCRIBERS)
        .map(|n| {
            let r = hub
                .reserve(ReserveOptions::new().topic(topics[n % TOPICS].clone()))
                .expect("reserve");
            let stream = r.stream();
            r.activate().expect("activate");
            stream
        })
        .collect();
    (hub, topics, streams)
}

/// One timed batch: `ROUNDS` events to every topic.
fn batch(hub: &Hub, topics: &[String], event: &Event) -> Duration {
    let began = Instant::now();
    for _ in 0..ROUNDS {
        for topic in topics {
            let report = hub.publish(topic, event).expect("publish");
            assert_eq!(report.delivered, SUBSCRIBERS / TOPICS);
        }
    }
    began.elapsed()
}

fn drain(streams: &[ClientStream], out: &mut Vec<Bytes>) {
    for s in streams {
        out.clear();
        while let Drain::Frames(_) = s.drain(out, 256) {
            out.clear();
        }
    }
}

/// Snapshots in a loop until `stop`, `pause` between pairs, counting
/// them in `taken`.
fn poller(
    hub: Hub,
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
    pause: Option<Duration>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let page = TopicPage::new(TopicSort::Subscribers).limit(TOPICS);
        let clients = ClientPage::new().limit(100);
        while !stop.load(Ordering::Relaxed) {
            let list = hub.topics_snapshot(&page);
            assert_eq!(list.total, TOPICS);
            let one = hub
                .topic_presence("t042", Some(&clients))
                .expect("the topic exists");
            assert_eq!(one.summary.subscribers, SUBSCRIBERS / TOPICS);
            taken.fetch_add(2, Ordering::Relaxed);
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
        }
    })
}

fn presence(c: &mut Criterion) {
    let mut group = c.benchmark_group("presence");
    group.throughput(Throughput::Elements(ROUNDS * SUBSCRIBERS as u64));
    let (hub, topics, streams) = hub_with_topics();
    let event = Event::new(PAYLOAD);
    let mut out: Vec<Bytes> = Vec::new();
    let mut run = |group: &mut criterion::BenchmarkGroup<'_, _>, name: &str| {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += batch(&hub, &topics, &event);
                    drain(&streams, &mut out);
                }
                total
            });
        });
    };
    run(&mut group, "publish_no_poller");
    for (name, pause) in [
        ("publish_with_poller", None),
        ("publish_with_paced_poller", Some(Duration::from_millis(1))),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicU64::new(0));
        let began = Instant::now();
        let thread = poller(hub.clone(), Arc::clone(&stop), Arc::clone(&taken), pause);
        run(&mut group, name);
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("poller");
        let taken = taken.load(Ordering::Relaxed);
        let secs = began.elapsed().as_secs_f64();
        eprintln!(
            "presence/{name}: the poller took {taken} snapshots in {secs:.1} s ({:.0}/s)",
            taken as f64 / secs
        );
    }
    group.finish();
}

criterion_group!(benches, presence);
criterion_main!(benches);
