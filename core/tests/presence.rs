//! Presence snapshots: counts after subscribes and closes, sorting and
//! keyset pagination of topics and of a topic's clients, the last event
//! id, and the per-topic rate window driven by the injected clock. Every
//! test ends with `check_invariants` (P1: the last published seq is
//! between the ring's newest and the hub's).

use ssehub_core::codec::Event;
use ssehub_core::{
    ClientId, ClientPage, ClientStream, CloseReason, Hub, HubConfig, ManualClock, ReserveOptions,
    TopicCursor, TopicPage, TopicSort, TopicSummary, MAX_PRESENCE_PAGE,
};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn config() -> HubConfig {
    HubConfig {
        heartbeat_interval: None,
        idle_timeout: None,
        write_stall_timeout: None,
        replay_max_age: None,
        ..HubConfig::default()
    }
}

fn connect(hub: &Hub, topics: &[&str]) -> (ClientId, ClientStream) {
    let r = hub
        .reserve(ReserveOptions::new().topics(topics.iter().map(|t| t.to_string())))
        .unwrap();
    let stream = r.stream();
    (r.activate().unwrap(), stream)
}

fn count(hub: &Hub, topic: &str) -> Option<usize> {
    hub.topic_presence(topic, None)
        .map(|p| p.summary.subscribers)
}

/// Every page of the snapshot in `sort` order, `limit` at a time.
fn walk(hub: &Hub, sort: TopicSort, limit: usize) -> Vec<TopicSummary> {
    let mut all = Vec::new();
    let mut page = TopicPage::new(sort).limit(limit);
    loop {
        let list = hub.topics_snapshot(&page);
        assert!(list.topics.len() <= limit);
        all.extend(list.topics);
        match list.next {
            Some(cursor) => page = TopicPage::new(sort).limit(limit).after(cursor),
            None => return all,
        }
    }
}

#[test]
fn counts_follow_subscribes_unsubscribes_and_closes() {
    let hub = Hub::new(config(), Instant::now());
    assert_eq!(count(&hub, "a"), None);
    let clients: Vec<_> = (0..3).map(|_| connect(&hub, &["a"])).collect();
    let (both, _both_stream) = connect(&hub, &["a", "b"]);
    assert_eq!(count(&hub, "a"), Some(4));
    assert_eq!(count(&hub, "b"), Some(1));

    hub.unsubscribe(both, "a").unwrap();
    assert_eq!(count(&hub, "a"), Some(3));
    let (first, _) = &clients[0];
    let _ = hub.close(*first, CloseReason::ClientGone);
    assert_eq!(count(&hub, "a"), Some(2));
    hub.subscribe(clients[1].0, "b").unwrap();
    assert_eq!(count(&hub, "b"), Some(2));
    hub.check_invariants().unwrap();

    let list = hub.topics_snapshot(&TopicPage::default());
    assert_eq!(list.total, 2);
    let figures: Vec<_> = list
        .topics
        .iter()
        .map(|t| (t.name.as_str(), t.subscribers))
        .collect();
    assert_eq!(figures, [("a", 2), ("b", 2)]);

    for (id, _) in &clients[1..] {
        let _ = hub.close(*id, CloseReason::ClientGone);
    }
    let _ = hub.close(both, CloseReason::ClientGone);
    // Nothing retained and nobody subscribed: the topics are gone (I5).
    assert_eq!(count(&hub, "a"), None);
    assert_eq!(hub.topics_snapshot(&TopicPage::default()).total, 0);
    hub.check_invariants().unwrap();
}

#[test]
fn topics_sort_by_subscribers_then_name_and_every_page_walk_sees_each_once() {
    let hub = Hub::new(config(), Instant::now());
    let mut streams = Vec::new();
    // t00..t24: topic n has n % 5 subscribers; those with none exist
    // because an event was published to them.
    for n in 0..25usize {
        let name = format!("t{n:02}");
        for _ in 0..n % 5 {
            streams.push(connect(&hub, &[&name]));
        }
        if n % 5 == 0 {
            hub.publish(&name, &Event::new("x")).unwrap();
        }
    }
    let mut expected: Vec<(usize, String)> =
        (0..25usize).map(|n| (n % 5, format!("t{n:02}"))).collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for limit in [1, 4, 7, 25, 100] {
        let seen: Vec<_> = walk(&hub, TopicSort::Subscribers, limit)
            .into_iter()
            .map(|t| (t.subscribers, t.name))
            .collect();
        assert_eq!(seen, expected, "limit {limit}");
    }
    let by_name: Vec<_> = walk(&hub, TopicSort::Name, 6)
        .into_iter()
        .map(|t| t.name)
        .collect();
    let names: Vec<_> = (0..25).map(|n| format!("t{n:02}")).collect();
    assert_eq!(by_name, names);

    let first = hub.topics_snapshot(&TopicPage::new(TopicSort::Subscribers).limit(3));
    assert_eq!(first.total, 25);
    assert_eq!(first.topics[0].name, "t04");
    let cursor = first.next.clone().unwrap();
    assert_eq!((cursor.subscribers(), cursor.name()), (4, "t14"));
    // The cursor survives its text form, as a server hands it out.
    let again: TopicCursor = cursor.to_string().parse().unwrap();
    let second = hub.topics_snapshot(&TopicPage::new(TopicSort::Subscribers).limit(3).after(again));
    assert_eq!(second.topics[0].name, "t19");
    hub.check_invariants().unwrap();
}

#[test]
fn a_cursor_stays_valid_when_its_topic_is_gone() {
    let hub = Hub::new(config(), Instant::now());
    let mut clients = Vec::new();
    for name in ["a", "b", "c", "d"] {
        clients.push(connect(&hub, &[name]));
    }
    let first = hub.topics_snapshot(&TopicPage::new(TopicSort::Name).limit(2));
    assert_eq!(first.next.as_ref().map(TopicCursor::name), Some("b"));
    // "b" is dropped (its only client leaves) before the next page.
    let _ = hub.close(clients[1].0, CloseReason::ClientGone);
    let second = hub.topics_snapshot(
        &TopicPage::new(TopicSort::Name)
            .limit(2)
            .after(first.next.unwrap()),
    );
    let names: Vec<_> = second.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c", "d"]);
    assert_eq!(second.next, None);
    assert_eq!(second.total, 3);
    hub.check_invariants().unwrap();
}

#[test]
fn pages_never_exceed_the_cap() {
    let hub = Hub::new(
        HubConfig {
            max_topics: 3000,
            ..config()
        },
        Instant::now(),
    );
    for n in 0..(MAX_PRESENCE_PAGE + 5) {
        hub.publish(&format!("t{n:05}"), &Event::new("x")).unwrap();
    }
    let list = hub.topics_snapshot(&TopicPage::new(TopicSort::Name).limit(usize::MAX));
    assert_eq!(list.topics.len(), MAX_PRESENCE_PAGE);
    assert_eq!(list.total, MAX_PRESENCE_PAGE + 5);
    let rest = hub.topics_snapshot(
        &TopicPage::new(TopicSort::Name)
            .limit(usize::MAX)
            .after(list.next.unwrap()),
    );
    assert_eq!(rest.topics.len(), 5);
    assert_eq!(rest.next, None);
    hub.check_invariants().unwrap();
}

#[test]
fn client_ids_are_paginated_in_id_order_and_match_the_count() {
    let hub = Hub::new(config(), Instant::now());
    let clients: Vec<_> = (0..7).map(|_| connect(&hub, &["room"])).collect();
    let _other = connect(&hub, &["elsewhere"]);
    let mut seen = Vec::new();
    let mut page = ClientPage::new().limit(3);
    loop {
        let presence = hub.topic_presence("room", Some(&page)).unwrap();
        assert_eq!(presence.summary.subscribers, 7);
        let list = presence.clients.unwrap();
        assert!(list.ids.len() <= 3);
        seen.extend(list.ids);
        match list.next {
            Some(next) => page = ClientPage::new().limit(3).after(next),
            None => break,
        }
    }
    let expected: BTreeSet<ClientId> = clients.iter().map(|(id, _)| *id).collect();
    assert_eq!(seen, expected.iter().copied().collect::<Vec<_>>());
    // Without a page, no ids are copied.
    assert_eq!(hub.topic_presence("room", None).unwrap().clients, None);
    // A closed client leaves the list at once.
    let _ = hub.close(clients[2].0, CloseReason::Kicked);
    let list = hub
        .topic_presence("room", Some(&ClientPage::new()))
        .unwrap()
        .clients
        .unwrap();
    assert_eq!(list.ids.len(), 6);
    assert!(!list.ids.contains(&clients[2].0));
    assert_eq!(list.next, None);
    hub.check_invariants().unwrap();
}

#[test]
fn the_last_event_id_is_the_newest_published_on_the_topic_even_once_evicted() {
    let hub = Hub::new(
        HubConfig {
            replay_capacity: 2,
            ..config()
        },
        Instant::now(),
    );
    let _client = connect(&hub, &["a"]);
    assert_eq!(
        hub.topic_presence("a", None).unwrap().summary.last_event_id,
        None
    );
    let mut last = None;
    for _ in 0..3 {
        last = Some(hub.publish("a", &Event::new("x")).unwrap().id);
    }
    hub.publish("b", &Event::new("y")).unwrap();
    let a = hub.topic_presence("a", None).unwrap().summary;
    assert_eq!(a.last_event_id, last);
    assert_eq!(a.retained, 2);
    assert!(a.retained_bytes > 0);
    let b = hub.topic_presence("b", None).unwrap().summary;
    assert_eq!(b.last_event_id, Some(hub.last_event_id()));
    assert_eq!((b.subscribers, b.retained), (0, 1));
    hub.check_invariants().unwrap();
}

#[test]
fn the_rate_window_counts_the_last_minute_of_the_injected_clock() {
    let clock = ManualClock::new(Instant::now());
    let hub = Hub::with_clock(config(), clock.clone());
    let _client = connect(&hub, &["busy"]);
    let rate = |hub: &Hub| {
        let summary = hub.topic_presence("busy", None).unwrap().summary;
        (summary.events_last_minute, summary.events_per_second())
    };
    assert_eq!(rate(&hub), (0, 0.0));
    for _ in 0..30 {
        hub.publish("busy", &Event::new("x")).unwrap();
    }
    clock.advance(Duration::from_secs(30));
    for _ in 0..30 {
        hub.publish("busy", &Event::new("x")).unwrap();
    }
    assert_eq!(rate(&hub), (60, 1.0));
    // The first 30 were published in second 0; at second 60 they are out.
    clock.advance(Duration::from_secs(30));
    assert_eq!(rate(&hub).0, 30);
    clock.advance(Duration::from_millis(29_999));
    assert_eq!(rate(&hub).0, 30, "second 89 still holds second 30");
    clock.advance(Duration::from_millis(1));
    assert_eq!(rate(&hub), (0, 0.0));
    // The list reads the same window.
    let list = hub.topics_snapshot(&TopicPage::default());
    assert_eq!(list.topics[0].events_last_minute, 0);
    hub.publish("busy", &Event::new("x")).unwrap();
    let list = hub.topics_snapshot(&TopicPage::default());
    assert_eq!(list.topics[0].events_last_minute, 1);
    hub.check_invariants().unwrap();
}

#[test]
fn snapshots_taken_while_publishing_see_each_topic_move_forward_only() {
    let hub = Hub::new(
        HubConfig {
            queue_max_frames: 100_000,
            ..config()
        },
        Instant::now(),
    );
    let _clients: Vec<_> = (0..8).map(|n| connect(&hub, &[&format!("t{n}")])).collect();
    let publisher = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            for n in 0..4000 {
                hub.publish(&format!("t{}", n % 8), &Event::new("x"))
                    .unwrap();
            }
        })
    };
    let mut newest = [None; 8];
    let mut rounds = 0;
    loop {
        let finished = publisher.is_finished();
        let list = hub.topics_snapshot(&TopicPage::new(TopicSort::Name));
        assert_eq!(list.total, 8);
        for (n, topic) in list.topics.iter().enumerate() {
            assert_eq!(topic.subscribers, 1);
            assert!(topic.last_event_id >= newest[n], "{} went back", topic.name);
            newest[n] = topic.last_event_id;
        }
        rounds += 1;
        if finished {
            break;
        }
    }
    publisher.join().unwrap();
    assert!(rounds >= 1);
    // At a quiescent point (H1 is exact only between publishes).
    hub.check_invariants().unwrap();
    let total: u64 = hub
        .topics_snapshot(&TopicPage::default())
        .topics
        .iter()
        .map(|t| t.events_last_minute)
        .sum();
    assert_eq!(total, 4000);
}

#[test]
fn sort_orders_parse_from_their_names() {
    assert_eq!("name".parse(), Ok(TopicSort::Name));
    assert_eq!("subscribers".parse(), Ok(TopicSort::Subscribers));
    assert!("newest".parse::<TopicSort>().is_err());
}

#[test]
fn a_client_page_exactly_full_ends_the_list() {
    let hub = Hub::new(config(), Instant::now());
    let clients: Vec<_> = (0..3).map(|_| connect(&hub, &["room"])).collect();
    let list = hub
        .topic_presence("room", Some(&ClientPage::new().limit(3)))
        .unwrap()
        .clients
        .unwrap();
    let expected: Vec<ClientId> = clients
        .iter()
        .map(|(id, _)| *id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(list.ids, expected);
    assert_eq!(list.next, None, "nothing after a page that holds them all");
}

/// Kills `rows.len() > limit + 1` -> `limit - 1` in `topics_snapshot`
/// (`select_nth_unstable` past the end panics): a page that holds every
/// topic exactly is the last.
#[test]
fn a_topic_page_exactly_full_ends_the_list() {
    let hub = Hub::new(config(), Instant::now());
    let _clients: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|t| connect(&hub, &[t]))
        .collect();
    for sort in [TopicSort::Name, TopicSort::Subscribers] {
        let list = hub.topics_snapshot(&TopicPage::new(sort).limit(3));
        let mut names: Vec<&str> = list.topics.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(list.next, None, "nothing after a page that holds them all");
    }
}

/// The texts of the query errors, which reach operators in HTTP answers.
#[test]
fn presence_query_errors_say_what_is_wrong() {
    use ssehub_core::{ParseCursorError, ParseSortError, TopicCursor, TopicSort};
    assert_eq!(
        ParseSortError.to_string(),
        "sort must be `subscribers` or `name`"
    );
    assert_eq!("size".parse::<TopicSort>(), Err(ParseSortError));
    for (cursor, message) in [
        ("12", "cursor must be <subscribers>-<hex name>"),
        ("x-61", "cursor's subscriber count is not a decimal number"),
        ("1-6G", "cursor's name is not lowercase hex"),
        ("1-0a", "cursor's name is not a valid topic name"),
    ] {
        let error: ParseCursorError = cursor.parse::<TopicCursor>().unwrap_err();
        assert_eq!(error.to_string(), message, "{cursor}");
    }
}
