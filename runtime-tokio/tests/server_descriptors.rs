//! The `ssehub` binary under a low open-file limit (`prlimit --nofile=64`),
//! flooded with silent connections: a legitimate `/healthz` still answers,
//! and the log stays bounded.
//!
//! - With the default cap (sized from the limit) descriptors never run
//!   out: at the cap the oldest silent connection makes room.
//! - With a cap above what the limit allows (warned about at start),
//!   `accept` fails with `EMFILE`: a silent connection is evicted to free a
//!   descriptor, and the failures are logged at most once per period, with
//!   the count of the rest.
//!
//! Skipped without `prlimit` (util-linux), unless `CI` is set: then fails.

mod common;

use common::child::ChildHub;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const NOFILE: u64 = 64;
const SILENT: usize = 200;
const BOUND: Duration = Duration::from_secs(30);

fn prlimit_available() -> bool {
    let found = std::process::Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "prlimit (util-linux) is required in CI"
        );
        eprintln!("skipped: no prlimit");
    }
    found
}

async fn spawn_hub(extra: &[&str]) -> ChildHub {
    let nofile = format!("--nofile={NOFILE}:{NOFILE}");
    let mut args = vec!["--request-head-timeout", "60s"];
    args.extend_from_slice(extra);
    ChildHub::spawn(&["prlimit", &nofile, "--"], &args).await
}

async fn flood_then_healthz(addr: SocketAddr) -> Vec<TcpStream> {
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let (status, _, body) =
        tokio::time::timeout(BOUND, common::request(addr, "GET", "/healthz", &[], ""))
            .await
            .expect("/healthz did not answer under the flood");
    assert_eq!(status, 200, "{body}");
    silent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cap_keeps_descriptors_for_a_legitimate_request() {
    if !prlimit_available() {
        return;
    }
    let hub = spawn_hub(&[]).await;
    let silent = flood_then_healthz(hub.addr).await;
    drop(silent);
    let log = hub.stop().await;
    let limit = common::child::lines_with(&log, "open-file limit open_files=");
    assert!(
        limit.len() == 1
            && limit[0].contains("open_files=64")
            && limit[0].contains("max_connections=48"),
        "{log:#?}"
    );
    assert!(
        common::child::lines_with(&log, "accept failed").is_empty(),
        "{log:#?}"
    );
    assert!(
        common::child::lines_with(&log, "--max-clients (100000) exceeds").len() == 1,
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_a_silent_connection_yields_and_the_log_stays_bounded() {
    if !prlimit_available() {
        return;
    }
    let started = Instant::now();
    let hub = spawn_hub(&["--max-connections", "1000"]).await;
    let silent = flood_then_healthz(hub.addr).await;
    drop(silent);
    let log = hub.stop().await;
    assert_eq!(
        common::child::lines_with(&log, "--max-connections (1000) exceeds").len(),
        1,
        "{log:#?}"
    );
    let failed = common::child::lines_with(&log, "accept failed");
    let periods = started.elapsed().as_secs() / 5 + 1;
    assert!(
        !failed.is_empty() && failed.len() as u64 <= periods,
        "{} lines in {periods} periods: {log:#?}",
        failed.len()
    );
    // The summary at exit counts the failures that were not logged: many.
    let summary = common::child::lines_with(&log, "accept loop stopped");
    assert_eq!(summary.len(), 1, "{log:#?}");
    let held_back: u64 = summary[0]
        .split("accept_errors=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", summary[0]));
    assert!(held_back >= 50, "{}", summary[0]);
}
