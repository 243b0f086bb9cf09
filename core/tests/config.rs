//! `HubConfig::validate` refuses timeouts that drop a healthy quiet client
//! (SPEC §5), and every configuration it accepts keeps such a client alive
//! under a driver that ticks exactly at `TickReport::next_deadline`.

use ssehub_core::{ClientStream, CloseReason, ConfigError, Drain, Hub, HubConfig, ReserveOptions};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

fn timeouts(
    heartbeat: Option<Duration>,
    idle: Option<Duration>,
    resolution: Duration,
) -> HubConfig {
    HubConfig {
        heartbeat_interval: heartbeat,
        idle_timeout: idle,
        write_stall_timeout: None,
        replay_capacity: 0,
        timer_resolution: resolution,
        ..HubConfig::default()
    }
}

#[test]
fn an_idle_timeout_without_heartbeats_is_refused() {
    let config = timeouts(None, Some(60 * 1000 * MS), 10 * MS);
    assert_eq!(config.validate(), Err(ConfigError::IdleWithoutHeartbeat));
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("heartbeat_interval"));
    // Neither, or heartbeats alone, are fine.
    assert_eq!(timeouts(None, None, 10 * MS).validate(), Ok(()));
    assert_eq!(timeouts(Some(MS), None, 10 * MS).validate(), Ok(()));
}

#[test]
fn an_idle_timeout_not_past_the_heartbeat_tick_is_refused() {
    let refused = [
        (1000, 1000, 10), // equal
        (2000, 1000, 10), // shorter
        (1001, 1005, 10), // longer, but in the heartbeat's tick
        (1000, 1009, 10), // one millisecond short of the boundary
    ];
    for (heartbeat, idle, resolution) in refused {
        let config = timeouts(Some(heartbeat * MS), Some(idle * MS), resolution * MS);
        assert_eq!(
            config.validate(),
            Err(ConfigError::IdleBeforeHeartbeat {
                idle_timeout: idle * MS,
                heartbeat_interval: heartbeat * MS,
                timer_resolution: resolution * MS,
            }),
            "heartbeat {heartbeat} ms, idle {idle} ms, resolution {resolution} ms"
        );
    }
    let message = timeouts(Some(1000 * MS), Some(1000 * MS), 10 * MS)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("idle_timeout") && message.contains("heartbeat_interval"),
        "{message}"
    );
    assert_eq!(
        timeouts(Some(1000 * MS), Some(1010 * MS), 10 * MS).validate(),
        Ok(())
    );
    assert_eq!(HubConfig::default().validate(), Ok(()));
}

#[test]
fn a_shutdown_window_of_one_instant_is_valid_and_an_inverted_one_is_not() {
    let window = |lo, hi| HubConfig {
        shutdown_retry_window: (Duration::from_secs(lo), Duration::from_secs(hi)),
        ..HubConfig::default()
    };
    assert_eq!(window(3, 3).validate(), Ok(()));
    assert_eq!(window(3, 2).validate(), Err(ConfigError::InvertedWindow));
}

fn drain_all(stream: &ClientStream) -> usize {
    let mut out = Vec::new();
    while let Drain::Frames(_) = stream.drain(&mut out, 64) {}
    out.len()
}

/// Drives one client on a quiet topic, ticking exactly at each
/// `next_deadline` and flushing what it drained at that instant. Returns
/// the heartbeats seen, or the close.
fn drive_quiet_client(config: HubConfig, rounds: usize) -> Result<usize, CloseReason> {
    let t0 = Instant::now();
    let hub = Hub::new(config, t0);
    let reservation = hub.reserve(ReserveOptions::new().topic("quiet")).unwrap();
    let stream = reservation.stream();
    reservation.activate().unwrap();
    let mut now = t0;
    let mut heartbeats = 0;
    for _ in 0..rounds {
        let report = hub.tick(now);
        if let Some(&(_, reason)) = report.closed.first() {
            return Err(reason);
        }
        let frames = drain_all(&stream);
        if frames > 0 {
            heartbeats += frames;
            stream.flushed(now);
        }
        match report.next_deadline {
            Some(next) => now = next.max(now),
            None => break,
        }
    }
    Ok(heartbeats)
}

#[test]
fn refused_configurations_drop_a_healthy_quiet_client() {
    let cases = [
        timeouts(None, Some(1000 * MS), 10 * MS),
        timeouts(Some(1000 * MS), Some(1000 * MS), 10 * MS),
        timeouts(Some(1001 * MS), Some(1005 * MS), 10 * MS),
    ];
    for config in cases {
        assert!(config.validate().is_err());
        assert_eq!(
            drive_quiet_client(config.clone(), 200),
            Err(CloseReason::IdleTimeout),
            "{config:?}"
        );
    }
}

#[test]
fn accepted_configurations_keep_a_healthy_quiet_client() {
    for resolution in [1, 7, 10, 250] {
        for heartbeat in [1, 9, 1000, 1001, 1009] {
            let heartbeat = heartbeat * MS;
            let resolution = resolution * MS;
            for extra in [Duration::ZERO, MS, heartbeat] {
                let config = timeouts(
                    Some(heartbeat),
                    Some(heartbeat + resolution + extra),
                    resolution,
                );
                assert_eq!(config.validate(), Ok(()));
                let heartbeats = drive_quiet_client(config.clone(), 200);
                assert!(
                    matches!(heartbeats, Ok(n) if n >= 50),
                    "{heartbeats:?} with {config:?}"
                );
            }
        }
    }
}

#[test]
fn the_hub_hands_back_the_configuration_it_was_built_with() {
    let config = HubConfig {
        epoch: 42,
        reset_event: "gap".to_owned(),
        ..timeouts(Some(10 * MS), Some(30 * MS), MS)
    };
    let hub = Hub::new(config.clone(), Instant::now());
    assert_eq!(hub.config(), &config);
}
