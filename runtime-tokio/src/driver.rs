//! [`Driver`]: the one task that feeds the hub its clock.
//!
//! It calls [`Hub::tick`](ssehub_core::Hub::tick) with [`crate::now`], then sleeps until the
//! report's `next_deadline`, but never longer than `max_sleep`: a client
//! activated meanwhile may have a deadline earlier than the one the driver
//! went to sleep for, so `max_sleep` bounds how late a heartbeat or a
//! timeout can fire. It never sleeps less than the hub's timer resolution,
//! so a due-but-not-yet-fired bucket cannot make it spin.
//!
//! Under tokio's paused time (`#[tokio::test(start_paused = true)]`) the
//! sleeps are virtual and `now()` is the paused clock, so tests drive
//! heartbeats and timeouts without waiting.

use ssehub_core::Hub;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Handle of the tick task. Dropping it stops the task.
#[derive(Debug)]
pub struct Driver {
    stop: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl Driver {
    /// Spawns the tick task for `hub` on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`tokio::spawn`]).
    pub fn spawn(hub: Hub, max_sleep: Duration) -> Self {
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(hub, max_sleep, Arc::clone(&stop)));
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops the task and waits for it to end.
    pub async fn stop(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(hub: Hub, max_sleep: Duration, stop: Arc<Notify>) {
    let min_sleep = hub.config().timer_resolution.max(Duration::from_millis(1));
    let max_sleep = max_sleep.max(min_sleep);
    loop {
        let report = hub.tick(crate::now());
        if report.heartbeats > 0 || !report.closed.is_empty() || report.expired_events > 0 {
            tracing::trace!(
                heartbeats = report.heartbeats,
                closed = report.closed.len(),
                expired = report.expired_events,
                "tick"
            );
        }
        for (id, reason) in &report.closed {
            tracing::debug!(client = %id, %reason, "closed by deadline");
        }
        let now = Instant::now();
        let wake = report
            .next_deadline
            .map(Instant::from_std)
            .unwrap_or(now + max_sleep)
            .clamp(now + min_sleep, now + max_sleep);
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = stop.notified() => return,
        }
    }
}
