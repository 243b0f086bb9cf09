//! Shutdown frames: each active client's `retry:` hint is its own, drawn
//! from the whole `shutdown_retry_window`, so a restart is not met by every
//! client at once.

use ssehub_core::codec::Event;
use ssehub_core::{ClientStream, Drain, Hub, HubConfig, ReserveOptions, ShutdownReport};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn config(epoch: u64, lo_ms: u64, hi_ms: u64) -> HubConfig {
    HubConfig {
        epoch,
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        shutdown_retry_window: (Duration::from_millis(lo_ms), Duration::from_millis(hi_ms)),
        ..HubConfig::default()
    }
}

/// Activates `n` clients, shuts the hub down, and returns each client's
/// `retry:` hint in milliseconds, checking the rest of its final frame.
fn retry_hints(hub: &Hub, n: usize) -> Vec<u64> {
    let streams: Vec<ClientStream> = (0..n)
        .map(|_| {
            let reservation = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
            let stream = reservation.stream();
            reservation.activate().unwrap();
            stream
        })
        .collect();
    let report = hub.shutdown(Some(&Event::new("bye"))).unwrap();
    assert_eq!(
        report,
        ShutdownReport {
            closed: n,
            pending: 0
        }
    );
    streams
        .iter()
        .map(|stream| {
            let mut frames = Vec::new();
            while let Drain::Frames(_) = stream.drain(&mut frames, 8) {}
            assert_eq!(frames.len(), 1, "the final frame is the only one");
            let text = String::from_utf8(frames[0].to_vec()).unwrap();
            let rest = text.strip_prefix("retry: ").expect("a retry hint first");
            let (ms, body) = rest.split_once('\n').unwrap();
            assert_eq!(body, "data: bye\n\n");
            ms.parse().unwrap()
        })
        .collect()
}

#[test]
fn retry_hints_cover_both_ends_of_a_two_value_window() {
    let hub = Hub::new(config(0, 1000, 1001), Instant::now());
    let hints: BTreeSet<u64> = retry_hints(&hub, 64).into_iter().collect();
    assert_eq!(
        hints,
        BTreeSet::from([1000, 1001]),
        "the window's end is a possible hint too"
    );
}

#[test]
fn clients_get_different_retry_hints_spread_over_the_window() {
    // The low 8 bits of the epoch are all set: a jitter that mixed the
    // client's generation into it with `|` instead of `^` would give the
    // first 255 clients one and the same hint.
    let hub = Hub::new(config(1_732_500_000_255, 1000, 11_000), Instant::now());
    let hints = retry_hints(&hub, 100);
    assert!(
        hints.iter().all(|h| (1000..=11_000).contains(h)),
        "{hints:?}"
    );
    let distinct: BTreeSet<u64> = hints.iter().copied().collect();
    assert!(distinct.len() >= 90, "hints collide: {distinct:?}");
    // Spread: every tenth of the window gets some client.
    let deciles: BTreeSet<u64> = hints.iter().map(|h| ((h - 1000) / 1000).min(9)).collect();
    assert_eq!(deciles.len(), 10, "hints bunch up: {hints:?}");
}

#[test]
fn an_empty_window_gives_every_client_its_start() {
    let hub = Hub::new(config(7, 2500, 2500), Instant::now());
    assert!(retry_hints(&hub, 8).iter().all(|&h| h == 2500));
}

#[test]
fn the_jitter_depends_on_the_epoch() {
    // Same generations, different epochs: a restarted server (new epoch)
    // does not hand its clients the previous run's hints.
    let a = retry_hints(&Hub::new(config(1, 0, 1_000_000), Instant::now()), 16);
    let b = retry_hints(&Hub::new(config(2, 0, 1_000_000), Instant::now()), 16);
    assert_ne!(a, b);
}
