//! Event ids and replay across reconnects: I7, I8.

use ssehub_core::codec::Event;
use ssehub_core::{ClientStream, CloseReason, Drain, EventId, Hub, HubConfig, ReserveOptions};
use std::time::{Duration, Instant};

fn config(capacity: usize) -> HubConfig {
    HubConfig {
        epoch: 7,
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        replay_capacity: capacity,
        replay_max_age: Some(Duration::from_secs(60)),
        ..HubConfig::default()
    }
}

/// `(id, event name, data)` of each frame, in order.
fn events(stream: &ClientStream) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    while let Drain::Frames(_) = stream.drain(&mut out, 64) {}
    out.iter()
        .map(|frame| {
            let text = String::from_utf8_lossy(frame);
            let (mut id, mut name, mut data) = (String::new(), String::new(), String::new());
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_owned();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                }
            }
            (id, name, data)
        })
        .collect()
}

fn data(events: &[(String, String, String)]) -> Vec<&str> {
    events.iter().map(|(_, _, d)| d.as_str()).collect()
}

fn connect(
    hub: &Hub,
    topics: &[&str],
    last: Option<&str>,
) -> (ssehub_core::ClientId, ClientStream) {
    let mut opts = ReserveOptions::new().topics(topics.iter().copied());
    if let Some(last) = last {
        opts = opts.last_event_id(last);
    }
    let r = hub.reserve(opts).unwrap();
    let stream = r.stream();
    (r.activate().unwrap(), stream)
}

#[test]
fn only_subscriber_reconnects_and_gets_exactly_what_it_missed() {
    let hub = Hub::new(config(16), Instant::now());
    let (id, stream) = connect(&hub, &["solo"], None);
    let seen = hub.publish("solo", &Event::new("before")).unwrap().id;
    assert_eq!(data(&events(&stream)), ["before"]);
    let _ = hub.close(id, CloseReason::ClientGone);
    assert_eq!(
        hub.topic_count(),
        1,
        "the ring outlives the last subscriber"
    );
    for n in 0..3 {
        hub.publish("solo", &Event::new(format!("missed {n}")))
            .unwrap();
    }
    let (id, stream) = connect(&hub, &["solo"], Some(&seen.to_string()));
    let got = events(&stream);
    assert_eq!(data(&got), ["missed 0", "missed 1", "missed 2"], "I8");
    let ids: Vec<EventId> = got.iter().map(|(id, _, _)| id.parse().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "I7: strictly increasing ids"
    );
    assert_eq!(hub.metrics().replay_hits, 1);
    hub.publish("solo", &Event::new("live")).unwrap();
    assert_eq!(
        data(&events(&stream)),
        ["live"],
        "no duplicate after the replay"
    );
    let _ = hub.close(id, CloseReason::ClientGone);
}

#[test]
fn replay_merges_two_topics_in_id_order() {
    let hub = Hub::new(config(16), Instant::now());
    let start = hub.publish("a", &Event::new("a0")).unwrap().id;
    for (topic, text) in [
        ("b", "b1"),
        ("a", "a2"),
        ("c", "c3"),
        ("b", "b4"),
        ("a", "a5"),
    ] {
        hub.publish(topic, &Event::new(text)).unwrap();
    }
    let (_, stream) = connect(&hub, &["a", "b"], Some(&start.to_string()));
    assert_eq!(
        data(&events(&stream)),
        ["b1", "a2", "b4", "a5"],
        "I8: id order, no c"
    );
}

#[test]
fn evicted_malformed_foreign_and_future_ids_get_a_reset() {
    let hub = Hub::new(config(2), Instant::now());
    let first = hub.publish("a", &Event::new("1")).unwrap().id;
    for n in 2..=4 {
        hub.publish("a", &Event::new(n.to_string())).unwrap();
    }
    let newest = hub.last_event_id();
    for last in [
        first.to_string(),    // evicted: the ring holds only 3 and 4
        "garbage".to_owned(), // malformed
        "8-1".to_owned(),     // another epoch
        "7-999".to_owned(),   // from the future
        "7-01".to_owned(),    // not canonical
    ] {
        let (id, stream) = connect(&hub, &["a"], Some(&last));
        let got = events(&stream);
        assert_eq!(got.len(), 1, "{last}: only the reset");
        assert_eq!(got[0].1, "reset", "{last}");
        assert_eq!(
            got[0].0,
            newest.to_string(),
            "{last}: the reset moves the client's last id"
        );
        let _ = hub.close(id, CloseReason::ClientGone);
    }
    assert_eq!(hub.metrics().replay_resets, 5);
    // From the newest id, nothing is missing: an empty replay, no reset.
    let (_, stream) = connect(&hub, &["a"], Some(&newest.to_string()));
    assert!(events(&stream).is_empty());
}

#[test]
fn expired_events_count_as_a_gap() {
    let t0 = Instant::now();
    let hub = Hub::new(config(16), t0);
    let seen = hub.publish("a", &Event::new("old")).unwrap().id;
    hub.publish("a", &Event::new("missed")).unwrap();
    let report = hub.tick(t0 + Duration::from_secs(61));
    assert_eq!(report.expired_events, 2);
    assert_eq!(
        hub.topic_count(),
        0,
        "I5: a topic with nothing left is dropped"
    );
    let (_, stream) = connect(&hub, &["a"], Some(&seen.to_string()));
    let got = events(&stream);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1, "reset",
        "events lost with a dropped topic are not skipped silently"
    );
}

#[test]
fn churn_on_another_topic_never_resets_a_client_that_missed_nothing() {
    // Regression: a dropped topic's evictions were folded into one map-wide
    // mark that every new topic started from, so a client that had seen
    // everything on `news` was reset because `other` lost an event.
    let t0 = Instant::now();
    let hub = Hub::new(config(16), t0);
    let seen = hub.publish("news", &Event::new("n1")).unwrap().id;
    hub.publish("other", &Event::new("o1")).unwrap();
    hub.tick(t0 + Duration::from_secs(61));
    assert_eq!(
        hub.topic_count(),
        0,
        "both rings expired, both topics dropped"
    );
    let (_, stream) = connect(&hub, &["news"], Some(&seen.to_string()));
    assert!(
        events(&stream).is_empty(),
        "nothing on news was missed: no reset, no replay"
    );
    assert_eq!(hub.metrics().replay_resets, 0);
    // The topic that did lose an event still answers its own client with a
    // reset (I8 holds per topic).
    let (_, stream) = connect(&hub, &["other"], Some(&seen.to_string()));
    assert_eq!(events(&stream)[0].1, "reset");
}

#[test]
fn replay_that_would_overflow_the_queue_resets_instead() {
    let hub = Hub::new(
        HubConfig {
            queue_max_frames: 2,
            ..config(16)
        },
        Instant::now(),
    );
    let seen = hub.publish("a", &Event::new("0")).unwrap().id;
    for n in 1..=3 {
        hub.publish("a", &Event::new(n.to_string())).unwrap();
    }
    let (id, stream) = connect(&hub, &["a"], Some(&seen.to_string()));
    let got = events(&stream);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "reset");
    assert!(hub.is_active(id));
}

#[test]
fn frames_sent_before_activation_come_first_then_replay_then_live() {
    let hub = Hub::new(config(16), Instant::now());
    let seen = hub.publish("a", &Event::new("0")).unwrap().id;
    hub.publish("a", &Event::new("1")).unwrap();
    let r = hub
        .reserve(
            ReserveOptions::new()
                .topic("a")
                .last_event_id(seen.to_string()),
        )
        .unwrap();
    let stream = r.stream();
    hub.send(r.id(), &Event::new("welcome").with_event("welcome"))
        .unwrap();
    // Published between reserve and activate: must arrive once, in order.
    hub.publish("a", &Event::new("2")).unwrap();
    r.activate().unwrap();
    hub.publish("a", &Event::new("3")).unwrap();
    let got = events(&stream);
    assert_eq!(
        data(&got),
        ["welcome", "1", "2", "3"],
        "I8 across the reserve/activate window"
    );
    assert_eq!(got[0].0, "", "direct sends carry no id");
}

#[test]
fn full_queue_closes_the_slow_consumer_only() {
    let hub = Hub::new(
        HubConfig {
            queue_max_frames: 3,
            ..config(0)
        },
        Instant::now(),
    );
    let (slow, slow_stream) = connect(&hub, &["a"], None);
    let (_, fast_stream) = connect(&hub, &["a"], None);
    let mut fast_seen = Vec::new();
    for n in 0..5 {
        let report = hub.publish("a", &Event::new(n.to_string())).unwrap();
        fast_seen.extend(events(&fast_stream));
        if n == 3 {
            assert_eq!(report.slow_consumers, [slow], "I7: closed, not skipped");
            assert_eq!(report.delivered, 1);
        }
    }
    assert_eq!(
        data(&fast_seen),
        ["0", "1", "2", "3", "4"],
        "I7: others unaffected"
    );
    assert!(!hub.is_active(slow));
    let got = events(&slow_stream);
    assert_eq!(
        data(&got),
        ["0", "1", "2"],
        "what fitted is still delivered, in order"
    );
    assert_eq!(
        slow_stream.drain(&mut Vec::new(), 1),
        Drain::Closed(CloseReason::SlowConsumer)
    );
    assert_eq!(hub.metrics().closes_for(CloseReason::SlowConsumer), 1);
    hub.check_invariants().unwrap();
}

#[test]
fn ids_are_epoch_dash_seq_and_strictly_increase_per_topic() {
    let hub = Hub::new(config(4), Instant::now());
    let (_, stream) = connect(&hub, &["a"], None);
    let mut last = None;
    for _ in 0..10 {
        let id = hub.publish("a", &Event::new("x")).unwrap().id;
        assert_eq!(id.epoch(), 7);
        assert!(last < Some(id));
        last = Some(id);
    }
    let got = events(&stream);
    assert_eq!(got.len(), 10);
    assert_eq!(got[9].0, last.unwrap().to_string());
}

/// With nothing retained (`replay_capacity == 0`), an event published to a
/// topic nobody subscribes to creates no topic; a client that later
/// resumes on it from before that event must still learn it missed one
/// (I8: a reset, never a silent skip).
#[test]
fn an_unretained_event_on_a_missing_topic_still_resets_an_older_resume() {
    let hub = Hub::new(config(0), Instant::now());
    let first = hub.publish("t", &Event::new("lost")).expect("publish").id;
    assert_eq!(hub.topic_count(), 0);
    let (_, stream) = connect(&hub, &["t"], Some("7-0"));
    let got = events(&stream);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, "reset");
    assert_eq!(got[0].0, first.to_string());
    // Resuming from the newest id misses nothing.
    let (_, stream) = connect(&hub, &["t"], Some(&first.to_string()));
    assert!(events(&stream).is_empty());
}
