//! `Hub::tick` with 100 000 (and, for comparison, 10 000) active clients
//! of which 0, 10 or 1 000 are due: SPEC §5 wants the cost to follow what
//! fires, not the number of clients.
//!
//! Setup: heartbeats every `H = clients / 1000` seconds and no idle or
//! stall timeout; client `i` is activated at `i × H / clients`, so
//! deadlines are spread evenly, 1 000 per second of hub time whatever the
//! client count. Each iteration advances the injected clock by `due` ms,
//! firing `due` heartbeat deadlines (re-armed one `H` later). A client's
//! queue is not drained, so after its first heartbeat a due deadline finds
//! a non-empty queue and is only re-armed; the first pass pushes a
//! heartbeat. Both paths pop, look up and reschedule the deadline.
//!
//! Run: `cargo bench -p ssehub-benches --bench tick`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssehub_core::{ClientStream, Hub, HubConfig, ReserveOptions};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Deadlines that come due per second of hub time.
const DUE_PER_SECOND: u64 = 1_000;

fn spread_hub(clients: usize, start: Instant) -> (Hub, Vec<ClientStream>) {
    let period = Duration::from_millis(clients as u64 * 1_000 / DUE_PER_SECOND);
    let config = HubConfig {
        max_clients: clients.max(1),
        max_clients_per_peer: clients.max(1),
        heartbeat_interval: Some(period),
        idle_timeout: None,
        write_stall_timeout: None,
        replay_max_age: None,
        timer_resolution: Duration::from_millis(1),
        ..HubConfig::default()
    };
    let hub = Hub::new(config, start);
    let step = period / clients as u32;
    let streams = (0..clients)
        .map(|i| {
            // Move the injected clock so each client's heartbeat deadline
            // lands at its own instant.
            hub.tick(start + step * i as u32);
            let r = hub
                .reserve(ReserveOptions::new().topic("quiet"))
                .expect("reserve");
            let s = r.stream();
            r.activate().expect("activate");
            s
        })
        .collect();
    // The clock now stands just before the first deadline is due.
    hub.tick(start + period - Duration::from_millis(1));
    (hub, streams)
}

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick");
    for clients in [10_000usize, 100_000] {
        let start = Instant::now();
        let (hub, streams) = spread_hub(clients, start);
        assert_eq!(hub.deadline_count(), clients);
        let period = Duration::from_millis(clients as u64 * 1_000 / DUE_PER_SECOND);
        let mut now = start + period - Duration::from_millis(1);
        for due in [0u64, 10, 1_000] {
            group.throughput(Throughput::Elements(due.max(1)));
            let step = Duration::from_millis(due * 1_000 / DUE_PER_SECOND);
            group.bench_function(BenchmarkId::new(format!("{clients}_clients"), due), |b| {
                b.iter(|| {
                    now += step;
                    black_box(hub.tick(now))
                })
            });
        }
        // Check the premise: with every queue drained, a 1 s step finds
        // about 1 000 due clients, each getting a heartbeat.
        let mut out = Vec::new();
        for s in &streams {
            out.clear();
            let _ = s.drain(&mut out, usize::MAX);
        }
        now += Duration::from_secs(1);
        let report = hub.tick(now);
        eprintln!(
            "tick/{clients}: a 1 s step sent {} heartbeats (expected ~{DUE_PER_SECOND})",
            report.heartbeats
        );
        drop(streams);
    }
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
