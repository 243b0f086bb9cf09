//! Prometheus text exposition of the hub's [`MetricsSnapshot`], the
//! server's open connections, and a few process figures that Linux gives
//! for the price of reading a file.

use ssehub_core::MetricsSnapshot;
use std::fmt::Write;

/// Server-level figures rendered beside the hub's.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServerFigures {
    pub(crate) open_connections: usize,
    pub(crate) start_time_seconds: f64,
}

/// The exposition text (format version 0.0.4).
pub(crate) fn render(m: &MetricsSnapshot, server: ServerFigures) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    };
    let n = |v: u64| v as f64;
    metric(
        "ssehub_clients",
        "gauge",
        "Clients by state (reserved includes close_pending).",
        &[
            ("state=\"reserved\"", n(m.clients_reserved)),
            ("state=\"close_pending\"", n(m.clients_close_pending)),
            ("state=\"active\"", n(m.clients_active)),
        ],
    );
    metric(
        "ssehub_topics",
        "gauge",
        "Topics kept (with subscribers or retained events).",
        &[("", n(m.topics))],
    );
    metric(
        "ssehub_events_published_total",
        "counter",
        "Events published.",
        &[("", n(m.events_published))],
    );
    metric(
        "ssehub_frames_delivered_total",
        "counter",
        "Frames handed to writers.",
        &[("", n(m.frames_delivered))],
    );
    metric(
        "ssehub_bytes_delivered_total",
        "counter",
        "Bytes handed to writers.",
        &[("", n(m.bytes_delivered))],
    );
    let closes: Vec<(String, f64)> = m
        .closes
        .iter()
        .map(|(reason, count)| (format!("reason=\"{}\"", reason.as_str()), n(*count)))
        .collect();
    let closes: Vec<(&str, f64)> = closes.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    metric(
        "ssehub_closes_total",
        "counter",
        "Client closes by reason.",
        &closes,
    );
    metric(
        "ssehub_replay_hits_total",
        "counter",
        "Reconnects whose Last-Event-ID was honoured by a replay.",
        &[("", n(m.replay_hits))],
    );
    metric(
        "ssehub_replay_resets_total",
        "counter",
        "Reconnects answered with a reset event.",
        &[("", n(m.replay_resets))],
    );
    metric(
        "ssehub_queue_depth_high_water",
        "gauge",
        "Deepest any client queue has been, in frames.",
        &[("", n(m.queue_high_water))],
    );
    metric(
        "ssehub_heartbeats_total",
        "counter",
        "Heartbeat frames enqueued.",
        &[("", n(m.heartbeats))],
    );
    metric(
        "ssehub_events_expired_total",
        "counter",
        "Retained events expired by age.",
        &[("", n(m.events_expired))],
    );
    metric(
        "ssehub_http_connections_open",
        "gauge",
        "HTTP connections being served.",
        &[("", server.open_connections as f64)],
    );
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
        &[("", server.start_time_seconds)],
    );
    if let Some(rss) = resident_memory_bytes() {
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            &[("", rss as f64)],
        );
    }
    if let Some(fds) = open_fds() {
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            &[("", fds as f64)],
        );
    }
    out
}

/// Resident set size from `/proc/self/statm` (Linux; `None` elsewhere).
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The page size is 4 KiB on the platforms this reads /proc on; reading
    // it exactly would take libc for one number.
    Some(pages * 4096)
}

/// Entries of `/proc/self/fd` (Linux; `None` elsewhere).
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}
