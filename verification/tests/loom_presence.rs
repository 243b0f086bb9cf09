//! Loom model of join/leave events (PR1) on the real [`Hub`]: a client's
//! activation racing its own close, while another client joins the same
//! presence topic. A watcher present throughout must never see a client's
//! `leave` before its `join`, must see exactly `join, leave` for a client
//! that was activated and nothing for one closed before, and nothing may
//! leak (I5).

#![cfg(ssehub_loom)]

use loom::thread;
use ssehub_core::{CloseOutcome, CloseReason, Hub, HubConfig, PresenceConfig, ReserveOptions};
use ssehub_verification::model::{assert_settled, drain_all, quiet_config, run_model, Seen};
use std::time::Instant;

fn presence_config() -> HubConfig {
    HubConfig {
        presence: PresenceConfig {
            patterns: vec!["room".to_owned()],
            ..PresenceConfig::default()
        },
        ..quiet_config()
    }
}

/// `(event name, client id)` of each presence frame a watcher received.
fn presence_events(frames: &[String]) -> Vec<(String, String)> {
    frames
        .iter()
        .map(|frame| {
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("not a presence event: {frame:?}"));
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("no data: {frame:?}"));
            let client = data
                .split("\"client\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no client: {data}"));
            (name.to_owned(), client.to_owned())
        })
        .collect()
}

/// Model: X's activation ∥ X's close ∥ Y's activation (both reserved first), all
/// on the presence topic `room`, watched by W from the start. Y is closed
/// after the threads join. W sees, per client, `[]` or `[join, leave]`,
/// never a leave first.
#[test]
fn activate_close_and_another_join_never_show_a_leave_before_its_join() {
    let seen = Seen::new();
    let record = seen.clone();
    run_model("presence_activate_close_join", move || {
        let hub = Hub::new(presence_config(), Instant::now());
        let watcher = hub.reserve(ReserveOptions::new().topic("room")).unwrap();
        let watching = watcher.stream();
        let w = watcher.activate().unwrap();
        let x = hub.reserve(ReserveOptions::new().topic("room")).unwrap();
        let x_id = x.id();

        let activator = thread::spawn(move || x.activate().is_ok());
        let closer = {
            let hub = hub.clone();
            thread::spawn(move || hub.close(x_id, CloseReason::ClientGone))
        };
        let y = hub.reserve(ReserveOptions::new().topic("room")).unwrap();
        let joiner = thread::spawn(move || y.activate().unwrap());
        let activated = activator.join().unwrap();
        let closed = closer.join().unwrap();
        let y = joiner.join().unwrap();
        assert_eq!(hub.close(y, CloseReason::ClientGone), CloseOutcome::Closed);

        let (frames, _) = drain_all(&watching);
        let events = presence_events(&frames);
        let of = |id: String| -> Vec<&str> {
            events
                .iter()
                .filter(|(_, client)| *client == id)
                .map(|(name, _)| name.as_str())
                .collect()
        };
        assert_eq!(
            of(y.to_string()),
            ["join", "leave"],
            "PR1 for Y: {events:?}"
        );
        match (activated, closed) {
            (true, CloseOutcome::Closed) => {
                assert_eq!(
                    of(x_id.to_string()),
                    ["join", "leave"],
                    "PR1 for X: {events:?}"
                );
                record.record("activated, then closed");
            }
            (false, CloseOutcome::Deferred) => {
                assert!(of(x_id.to_string()).is_empty(), "never joined: {events:?}");
                record.record("closed before activation");
            }
            other => panic!("I1: close and activate disagree: {other:?}"),
        }
        assert_eq!(events.len(), if activated { 4 } else { 2 }, "{events:?}");
        assert_eq!(hub.close(w, CloseReason::ClientGone), CloseOutcome::Closed);
        assert_settled(&hub, 0);
    });
    seen.assert_exactly(&["activated, then closed", "closed before activation"]);
}
