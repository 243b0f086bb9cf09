//! The real `ssehub` binary as a child process: started on an ephemeral
//! port (read back from its log), its stderr collected, stopped with a
//! signal.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BOUND: Duration = Duration::from_secs(30);

pub struct ChildHub {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl ChildHub {
    /// Runs `wrapper... ssehub --addr 127.0.0.1:0 --token TOKEN args...`
    /// (`wrapper` may be empty, or e.g. `prlimit --nofile=64:64 --`).
    pub async fn spawn(wrapper: &[&str], args: &[&str]) -> Self {
        let binary = env!("CARGO_BIN_EXE_ssehub");
        let (program, before) = match wrapper.split_first() {
            Some((program, rest)) => (*program, [rest, &[binary]].concat()),
            None => (binary, Vec::new()),
        };
        let mut child = Command::new(program)
            .args(before)
            .args(["--addr", "127.0.0.1:0", "--token", super::TOKEN])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start ssehub");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = tokio::time::timeout(BOUND, async {
            loop {
                let line = lines.next_line().await.unwrap().expect("ssehub exited");
                log.lock().unwrap().push(line.clone());
                if let Some((_, addr)) = line.split_once("ssehub listening addr=") {
                    let addr = addr.split_whitespace().next().unwrap();
                    return addr.parse::<SocketAddr>().unwrap();
                }
            }
        })
        .await
        .expect("ssehub did not start");
        let reader = {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap().push(line);
                }
            })
        };
        Self {
            child,
            addr,
            log,
            reader,
        }
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the server.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id().unwrap()).unwrap();
        // SAFETY: `kill` takes plain integers and touches no memory of ours;
        // `pid` is our own child, not yet reaped, so it names that process.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "{}", std::io::Error::last_os_error());
    }

    /// Waits until a log line contains `needle` (lines so far count).
    pub async fn wait_for_log(&self, needle: &str) -> String {
        let log = Arc::clone(&self.log);
        let mut found = None;
        super::wait_until(&format!("the log says {needle:?}"), || {
            found = log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
                .cloned();
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    /// SIGTERM, wait for a graceful exit; returns the whole log.
    pub async fn stop(mut self) -> Vec<String> {
        self.signal(libc::SIGTERM);
        let status = tokio::time::timeout(BOUND, self.child.wait())
            .await
            .expect("ssehub did not exit")
            .unwrap();
        assert!(status.success(), "{status}");
        self.reader.await.unwrap();
        let log = self.log.lock().unwrap().clone();
        log
    }
}

/// The lines of `log` that contain `needle`.
pub fn lines_with<'a>(log: &'a [String], needle: &str) -> Vec<&'a String> {
    log.iter().filter(|l| l.contains(needle)).collect()
}
