//! The reconnect policy: classification, backoff, resets, close and the
//! fatal event, each through the public state machine.

use proptest::prelude::*;
use ssehub_core::codec::{Frame, MessageEvent};
use ssehub_core::reconnect::{
    classify, is_sendable_last_event_id, parse_retry_after, Action, CloseInfo, CloseReason,
    ReconnectConfig, ReconnectPolicy, SplitMix64, State, Verdict, DELAY_LIMIT,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SSE: Option<&str> = Some("text/event-stream");
const SEC: Duration = Duration::from_secs(1);

fn config() -> ReconnectConfig {
    ReconnectConfig::new()
        .with_base_delay(SEC)
        .with_max_delay(Duration::from_secs(30))
}

/// A policy whose jitter always picks the top of the range, so delays equal
/// the backoff ceiling.
fn max_jitter(config: ReconnectConfig) -> ReconnectPolicy<impl FnMut() -> u64> {
    ReconnectPolicy::new(config, || u64::MAX)
}

fn message(event: &str, id: &str) -> MessageEvent {
    MessageEvent {
        event: event.into(),
        data: "x".into(),
        last_event_id: id.into(),
    }
}

fn open<R: ssehub_core::reconnect::RandomSource>(policy: &mut ReconnectPolicy<R>) {
    assert_eq!(policy.on_response(200, SSE, None), Action::Continue);
    assert_eq!(policy.state(), &State::Open);
}

fn delay_of(action: &Action) -> Duration {
    match action {
        Action::ConnectAfter { delay, .. } => *delay,
        other => panic!("expected ConnectAfter, got {other:?}"),
    }
}

fn attempt_of(action: &Action) -> u32 {
    match action {
        Action::ConnectAfter { attempt, .. } => *attempt,
        other => panic!("expected ConnectAfter, got {other:?}"),
    }
}

fn close_info(action: Action) -> CloseInfo {
    match action {
        Action::Close(info) => info,
        other => panic!("expected Close, got {other:?}"),
    }
}

// ---- Classification ------------------------------------------------------

#[test]
fn event_stream_content_type_is_matched_leniently() {
    for ct in [
        "text/event-stream",
        "TEXT/Event-Stream",
        "text/event-stream; charset=utf-8",
        " text/event-stream ;charset=UTF-8",
    ] {
        assert_eq!(classify(200, Some(ct)), Verdict::Open, "{ct:?}");
    }
    for ct in [
        None,
        Some(""),
        Some("text/plain"),
        Some("text/event-streams"),
        Some("text/event"),
        Some("application/json; text/event-stream"),
    ] {
        assert_eq!(
            classify(200, ct),
            Verdict::Fatal(CloseReason::WrongContentType),
            "{ct:?}"
        );
    }
}

#[test]
fn each_status_class_is_classified() {
    let retry = [408, 429, 500, 502, 503, 504, 599];
    let fatal = [
        0, 100, 101, 199, 201, 202, 204, 206, 299, 301, 302, 304, 307, 308, 400, 401, 403, 404,
        405, 406, 409, 410, 418, 499, 600, 999,
    ];
    for status in retry {
        assert_eq!(classify(status, SSE), Verdict::Retry, "{status}");
    }
    for status in fatal {
        assert_eq!(
            classify(status, SSE),
            Verdict::Fatal(CloseReason::HttpStatus),
            "{status}"
        );
    }
}

#[test]
fn fatal_response_closes_with_its_status() {
    for (status, ct, reason) in [
        (204, SSE, CloseReason::HttpStatus),
        (401, None, CloseReason::HttpStatus),
        (403, None, CloseReason::HttpStatus),
        (404, None, CloseReason::HttpStatus),
        (410, None, CloseReason::HttpStatus),
        (302, None, CloseReason::HttpStatus),
        (201, SSE, CloseReason::HttpStatus),
        (200, Some("text/html"), CloseReason::WrongContentType),
        (200, None, CloseReason::WrongContentType),
    ] {
        let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(1));
        let _ = policy.start();
        let info = close_info(policy.on_response(status, ct, Some(SEC)));
        assert_eq!(info.reason, reason);
        assert_eq!(info.status, Some(status));
        assert!(info.fatal);
        assert!(!info.is_local);
        assert_eq!(policy.state(), &State::Closed(info));
    }
}

#[test]
fn retryable_responses_and_network_errors_reconnect() {
    for status in [408, 429, 500, 503] {
        let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(2));
        let action = policy.on_response(status, None, None);
        assert_eq!(attempt_of(&action), 1, "{status}");
        assert!(matches!(
            policy.state(),
            State::Reconnecting { attempt: 1, .. }
        ));
    }
    let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(3));
    assert_eq!(attempt_of(&policy.on_connect_error()), 1);
    assert_eq!(attempt_of(&policy.on_connect_error()), 2);
    // A stream that opened and then failed also reconnects.
    open(&mut policy);
    assert_eq!(attempt_of(&policy.on_stream_error()), 3);
}

#[test]
fn response_while_reconnecting_opens() {
    let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(4));
    let _ = policy.on_connect_error();
    open(&mut policy);
}

#[test]
fn inputs_that_do_not_fit_the_state_are_ignored() {
    let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(5));
    // Stream inputs before the stream opened.
    assert_eq!(policy.on_event(&message("m", "1")), Action::Continue);
    assert_eq!(policy.on_stream_end(), Action::Continue);
    assert_eq!(policy.on_last_event_id("2"), Action::Continue);
    assert_eq!(policy.last_event_id(), None);
    assert_eq!(policy.state(), &State::Connecting);
    // Connect outcomes once open.
    open(&mut policy);
    assert_eq!(policy.on_response(503, None, None), Action::Continue);
    assert_eq!(policy.on_connect_error(), Action::Continue);
    assert_eq!(policy.start(), Action::Continue);
    assert_eq!(policy.state(), &State::Open);
}

// ---- Backoff -------------------------------------------------------------

#[test]
fn delays_double_up_to_the_cap() {
    let mut policy = max_jitter(config());
    let delays: Vec<_> = (0..8)
        .map(|_| delay_of(&policy.on_connect_error()))
        .collect();
    let secs: Vec<_> = delays.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
}

#[test]
fn every_delay_lies_between_the_floor_and_the_cap() {
    let cap = Duration::from_secs(30);
    for seed in 0..200 {
        let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(seed));
        for attempt in 1..=12u32 {
            let ceiling = (SEC * 2u32.pow(attempt - 1)).min(cap);
            let delay = delay_of(&policy.on_connect_error());
            assert!(delay <= ceiling, "seed {seed} attempt {attempt}: {delay:?}");
        }
        // With a Retry-After floor.
        let floor = Duration::from_secs(5);
        for _ in 0..12 {
            let delay = delay_of(&policy.on_response(503, None, Some(floor)));
            assert!(floor <= delay && delay <= cap, "seed {seed}: {delay:?}");
        }
    }
}

#[test]
fn mean_delay_grows_with_attempts_until_the_cap() {
    let cap = Duration::from_secs(30);
    let runs = 2000u32;
    let mut sums = [Duration::ZERO; 8];
    for seed in 0..runs {
        let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(u64::from(seed)));
        for sum in &mut sums {
            *sum += delay_of(&policy.on_connect_error());
        }
    }
    let means: Vec<f64> = sums
        .iter()
        .map(|s| s.as_secs_f64() / f64::from(runs))
        .collect();
    // Full jitter: the mean is half the ceiling (1, 2, 4, 8, 16, 30, 30, 30 s).
    for (mean, ceiling) in means
        .iter()
        .zip([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0])
    {
        let expected = ceiling / 2.0;
        assert!((mean - expected).abs() < expected * 0.1, "means {means:?}");
    }
    for pair in means[..6].windows(2) {
        assert!(pair[1] > pair[0] * 1.5, "means {means:?}");
    }
    assert!(means[7] <= cap.as_secs_f64() / 2.0 * 1.1);
}

#[test]
fn same_seed_same_delays() {
    let run = |seed| {
        let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(seed));
        (0..10)
            .map(|_| delay_of(&policy.on_connect_error()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn server_retry_replaces_the_configured_base() {
    let mut policy = max_jitter(config());
    open(&mut policy);
    assert_eq!(
        policy.on_frame(&Frame::Retry(Duration::from_millis(200))),
        Action::Continue
    );
    assert_eq!(policy.base_delay(), Duration::from_millis(200));
    let delays: Vec<_> = (0..3)
        .map(|i| {
            if i == 0 {
                delay_of(&policy.on_stream_end())
            } else {
                delay_of(&policy.on_connect_error())
            }
        })
        .collect();
    assert_eq!(
        delays,
        [200, 400, 800].map(Duration::from_millis),
        "exponential from the server's base"
    );
}

#[test]
fn server_retry_is_still_capped() {
    let mut policy = max_jitter(config());
    open(&mut policy);
    let _ = policy.on_retry(Duration::from_secs(3600));
    assert_eq!(delay_of(&policy.on_stream_end()), Duration::from_secs(30));
}

#[test]
fn retry_after_is_a_floor_that_the_cap_does_not_cut() {
    let mut policy = max_jitter(config());
    // Floor above the cap: honoured.
    let long = Duration::from_secs(120);
    assert_eq!(delay_of(&policy.on_response(503, None, Some(long))), long);
    // Floor below the jittered delay: the jittered delay wins.
    let mut policy = max_jitter(config());
    let short = Duration::from_millis(10);
    assert_eq!(delay_of(&policy.on_response(429, None, Some(short))), SEC);
    // Floor with the lowest jitter: the floor.
    let mut policy = ReconnectPolicy::new(config(), || 0);
    assert_eq!(delay_of(&policy.on_response(503, None, Some(short))), short);
    assert_eq!(delay_of(&policy.on_connect_error()), Duration::ZERO);
}

#[test]
fn retry_after_and_server_retry_combine() {
    let mut policy = max_jitter(config());
    open(&mut policy);
    let _ = policy.on_retry(Duration::from_millis(100));
    assert_eq!(
        delay_of(&policy.on_stream_end()),
        Duration::from_millis(100)
    );
    let floor = Duration::from_secs(7);
    assert_eq!(delay_of(&policy.on_response(503, None, Some(floor))), floor);
}

// ---- Resets --------------------------------------------------------------

#[test]
fn attempts_reset_only_after_a_healthy_connection() {
    let mut policy = max_jitter(config());
    open(&mut policy);
    assert_eq!(attempt_of(&policy.on_stream_end()), 1);
    // Opened, but hung up before any event: keep backing off.
    open(&mut policy);
    assert_eq!(attempt_of(&policy.on_stream_end()), 2);
    open(&mut policy);
    let _ = policy.on_frame(&Frame::Comment(String::new()));
    let _ = policy.on_frame(&Frame::Retry(SEC));
    assert_eq!(attempt_of(&policy.on_stream_end()), 3);
    // One event (a greeting, say) is not enough either.
    open(&mut policy);
    assert_eq!(policy.on_event(&message("welcome", "")), Action::Continue);
    assert_eq!(attempt_of(&policy.on_stream_end()), 4);
    // More than a greeting: the next failure is attempt 1 again.
    open(&mut policy);
    let _ = policy.on_event(&message("welcome", ""));
    assert_eq!(policy.failures(), 4);
    let _ = policy.on_event(&message("message", ""));
    assert_eq!(policy.failures(), 0);
    let action = policy.on_stream_end();
    assert_eq!(attempt_of(&action), 1);
    assert_eq!(delay_of(&action), SEC);
    // Staying open for `healthy_after` (reported by the caller) also resets,
    // without any event.
    let _ = policy.on_connect_error();
    open(&mut policy);
    assert_eq!(policy.on_healthy(), Action::Continue);
    assert_eq!(attempt_of(&policy.on_stream_end()), 1);
}

/// Item 8 of the hardening issue: a server that answers every connection
/// with `retry: 0`, one event and a close. Before the fix every retry was
/// attempt 1 with a zero ceiling: a tight reconnect loop.
#[test]
fn one_event_per_connection_still_backs_off() {
    let mut policy = max_jitter(config());
    let mut delays = Vec::new();
    for _ in 0..16 {
        open(&mut policy);
        let _ = policy.on_retry(Duration::ZERO);
        let _ = policy.on_event(&message("message", "1"));
        let action = policy.on_stream_end();
        delays.push(delay_of(&action));
    }
    // The first reconnect is immediate, as browsers do with `retry: 0`.
    assert_eq!(delays[0], Duration::ZERO);
    assert!(delays[1] > Duration::ZERO, "{delays:?}");
    assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
    assert_eq!(delays[15], Duration::from_secs(30), "grows to the cap");
}

#[test]
fn healthy_thresholds_are_configurable() {
    // Events never reset: only time does.
    let mut policy = max_jitter(config().with_healthy_events(None));
    let _ = policy.on_connect_error();
    open(&mut policy);
    for _ in 0..100 {
        let _ = policy.on_event(&message("message", "1"));
    }
    assert_eq!(attempt_of(&policy.on_stream_end()), 2);
    // One event is enough when so configured (0 counts as 1).
    let mut policy = max_jitter(config().with_healthy_events(Some(0)));
    assert_eq!(policy.config().healthy_events(), Some(1));
    let _ = policy.on_connect_error();
    open(&mut policy);
    let _ = policy.on_event(&message("message", "1"));
    assert_eq!(attempt_of(&policy.on_stream_end()), 1);
    // Defaults.
    let defaults = ReconnectConfig::new();
    assert_eq!(defaults.healthy_after(), Some(Duration::from_secs(5)));
    assert_eq!(defaults.healthy_events(), Some(2));
    // `on_healthy` outside an open stream changes nothing.
    let mut policy = max_jitter(config());
    let _ = policy.on_connect_error();
    assert_eq!(policy.on_healthy(), Action::Continue);
    assert_eq!(attempt_of(&policy.on_connect_error()), 2);
}

#[test]
fn manual_reconnect_resets_backoff_and_connects_now() {
    let mut policy = max_jitter(config()).with_last_event_id("7");
    for _ in 0..5 {
        let _ = policy.on_connect_error();
    }
    assert_eq!(
        policy.reconnect(),
        Action::Connect {
            last_event_id: Some("7".into())
        }
    );
    assert_eq!(policy.state(), &State::Connecting);
    assert_eq!(attempt_of(&policy.on_connect_error()), 1);
    // Also from an open stream.
    open(&mut policy);
    assert!(matches!(policy.reconnect(), Action::Connect { .. }));
    assert_eq!(policy.state(), &State::Connecting);
}

#[test]
fn manual_reconnect_revives_a_policy_the_server_closed() {
    let mut policy = max_jitter(config());
    let _ = close_info(policy.on_response(404, None, None));
    assert!(matches!(policy.reconnect(), Action::Connect { .. }));
    open(&mut policy);
}

// ---- Close, max attempts, fatal event -------------------------------------

#[test]
fn local_close_is_final() {
    let mut policy = max_jitter(config());
    open(&mut policy);
    let info = close_info(policy.close());
    assert_eq!(info.reason, CloseReason::Local);
    assert!(info.is_local);
    assert!(!info.fatal);
    assert_eq!(info.status, None);
    let closed = State::Closed(info);
    assert_eq!(policy.state(), &closed);
    // Nothing reconnects after a local close.
    assert_eq!(policy.close(), Action::Continue);
    assert_eq!(policy.on_stream_end(), Action::Continue);
    assert_eq!(policy.on_stream_error(), Action::Continue);
    assert_eq!(policy.on_connect_error(), Action::Continue);
    assert_eq!(policy.on_response(503, None, None), Action::Continue);
    assert_eq!(policy.on_response(200, SSE, None), Action::Continue);
    assert_eq!(policy.on_event(&message("m", "9")), Action::Continue);
    assert_eq!(policy.on_retry(SEC), Action::Continue);
    assert_eq!(policy.reconnect(), Action::Continue);
    assert_eq!(policy.start(), Action::Continue);
    assert_eq!(policy.state(), &closed);
}

#[test]
fn close_while_reconnecting_stops_the_wait() {
    let mut policy = max_jitter(config());
    let _ = policy.on_connect_error();
    assert!(close_info(policy.close()).is_local);
    assert_eq!(policy.on_response(200, SSE, None), Action::Continue);
}

#[test]
fn close_after_a_server_close_makes_it_final() {
    let mut policy = max_jitter(config());
    let _ = close_info(policy.on_response(401, None, None));
    assert_eq!(policy.close(), Action::Continue);
    assert_eq!(policy.reconnect(), Action::Continue);
    assert!(matches!(policy.state(), State::Closed(info) if info.is_local));
}

#[test]
fn max_attempts_gives_up_with_the_last_status() {
    let mut policy = max_jitter(config().with_max_attempts(3));
    assert_eq!(attempt_of(&policy.on_response(503, None, None)), 1);
    assert_eq!(attempt_of(&policy.on_connect_error()), 2);
    assert_eq!(attempt_of(&policy.on_response(502, None, None)), 3);
    let info = close_info(policy.on_response(500, None, None));
    assert_eq!(info.reason, CloseReason::AttemptsExhausted);
    assert_eq!(info.status, Some(500));
    assert!(!info.fatal);
    assert!(!info.is_local);

    let mut policy = max_jitter(config().with_max_attempts(1));
    let _ = policy.on_connect_error();
    let info = close_info(policy.on_connect_error());
    assert_eq!(info.reason, CloseReason::AttemptsExhausted);
    assert_eq!(info.status, None);
}

#[test]
fn zero_max_attempts_never_reconnects() {
    let mut policy = max_jitter(config().with_max_attempts(0));
    open(&mut policy);
    let info = close_info(policy.on_stream_end());
    assert_eq!(info.reason, CloseReason::AttemptsExhausted);
}

#[test]
fn a_healthy_connection_restores_the_attempt_budget() {
    let mut policy = max_jitter(config().with_max_attempts(2));
    let _ = policy.on_connect_error();
    let _ = policy.on_connect_error();
    open(&mut policy);
    let _ = policy.on_event(&message("message", "1"));
    let _ = policy.on_event(&message("message", "2"));
    assert_eq!(attempt_of(&policy.on_stream_end()), 1);
    assert_eq!(attempt_of(&policy.on_connect_error()), 2);
    let _ = close_info(policy.on_connect_error());
}

#[test]
fn fatal_event_closes_for_good() {
    let mut policy = max_jitter(config().with_fatal_event("fatal"));
    open(&mut policy);
    assert_eq!(policy.on_event(&message("message", "1")), Action::Continue);
    let info = close_info(policy.on_frame(&Frame::Event(message("fatal", "2"))));
    assert_eq!(info.reason, CloseReason::FatalEvent);
    assert!(info.fatal);
    assert!(!info.is_local);
    assert_eq!(info.status, None);
    assert_eq!(policy.on_stream_end(), Action::Continue);
    assert_eq!(policy.last_event_id(), Some("2"));
}

#[test]
fn without_a_configured_fatal_event_no_name_is_fatal() {
    let mut policy = max_jitter(config());
    open(&mut policy);
    for name in ["fatal", "error", "close", ""] {
        assert_eq!(policy.on_event(&message(name, "")), Action::Continue);
    }
    assert_eq!(policy.state(), &State::Open);
}

// ---- Last event id -------------------------------------------------------

#[test]
fn last_event_id_is_carried_in_connect_actions() {
    let mut policy = max_jitter(config());
    assert_eq!(
        policy.start(),
        Action::Connect {
            last_event_id: None
        }
    );
    open(&mut policy);
    let _ = policy.on_event(&message("message", "5"));
    match policy.on_stream_end() {
        Action::ConnectAfter { last_event_id, .. } => {
            assert_eq!(last_event_id.as_deref(), Some("5"));
        }
        other => panic!("{other:?}"),
    }
    // Still carried by later attempts.
    match policy.on_response(503, None, None) {
        Action::ConnectAfter { last_event_id, .. } => {
            assert_eq!(last_event_id.as_deref(), Some("5"));
        }
        other => panic!("{other:?}"),
    }
    // A block with only an id moves it.
    open(&mut policy);
    let _ = policy.on_frame(&Frame::LastEventId("6".into()));
    assert_eq!(policy.last_event_id(), Some("6"));
    // An empty id clears it: no Last-Event-ID header.
    let _ = policy.on_event(&message("message", ""));
    assert_eq!(
        policy.reconnect(),
        Action::Connect {
            last_event_id: None
        }
    );
}

#[test]
fn seeded_last_event_id_is_sent_on_the_first_connect() {
    let mut policy = ReconnectPolicy::new(config(), SplitMix64::new(0)).with_last_event_id("1-42");
    assert_eq!(
        policy.start(),
        Action::Connect {
            last_event_id: Some("1-42".into())
        }
    );
    let empty = ReconnectPolicy::new(config(), SplitMix64::new(0)).with_last_event_id("");
    assert_eq!(empty.last_event_id(), None);
}

// ---- Retry-After ---------------------------------------------------------

#[test]
fn retry_after_delta_seconds() {
    let now = SystemTime::now();
    assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after(" 30 ", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        Some(Duration::from_secs(u64::MAX))
    );
    for bad in ["", "-1", "1.5", "+3", "3s", "0x10"] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn retry_after_http_date() {
    // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch.
    let date = "Sun, 06 Nov 1994 08:49:37 GMT";
    let at = UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(
        parse_retry_after(date, at - Duration::from_secs(90)),
        Some(Duration::from_secs(90))
    );
    assert_eq!(parse_retry_after(date, at), Some(Duration::ZERO));
    // In the past: retry now.
    assert_eq!(
        parse_retry_after(date, at + Duration::from_secs(5)),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after("Thu, 29 Feb 2024 23:59:60 GMT", UNIX_EPOCH),
        Some(Duration::from_secs(1_709_251_200))
    );
    assert_eq!(
        parse_retry_after("Wed, 31 Dec 1969 23:59:59 GMT", UNIX_EPOCH),
        Some(Duration::ZERO)
    );
}

#[test]
fn retry_after_rejects_other_date_forms() {
    let now = UNIX_EPOCH;
    for bad in [
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 30 Feb 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:49 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT extra",
        "Sun 06 Nov 1994 08:49:37 GMT",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn close_info_displays_reason_and_status() {
    let mut policy = max_jitter(config());
    let info = close_info(policy.on_response(403, None, None));
    assert_eq!(
        info.to_string(),
        "the server answered with a fatal status (status 403)"
    );
}

#[test]
fn policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ReconnectPolicy<SplitMix64>>();
    assert_send_sync::<Action>();
    assert_send_sync::<State>();
}

/// `retry: 0` reconnects at once, but a server that keeps failing is not
/// hammered in a tight loop: consecutive failures still back off.
#[test]
fn zero_server_retry_still_backs_off_on_repeated_failures() {
    let mut policy = max_jitter(config());
    open(&mut policy);
    let _ = policy.on_retry(Duration::ZERO);
    assert_eq!(delay_of(&policy.on_stream_end()), Duration::ZERO);
    let delays: Vec<Duration> = (0..20)
        .map(|_| delay_of(&policy.on_connect_error()))
        .collect();
    assert_eq!(delays[0], Duration::from_millis(2));
    assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
    assert_eq!(delays[19], Duration::from_secs(30), "grows to the cap");
}

// ---- Saturation (hardening issue, item 3) --------------------------------

/// `Retry-After: 18446744073709551615` parsed and fed to the policy: the
/// delay is cut to `DELAY_LIMIT`, so `Instant::now() + delay` cannot
/// overflow (before the fix it was `u64::MAX` seconds and the client
/// panicked).
#[test]
fn huge_retry_after_is_cut_to_the_delay_limit() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let parsed = parse_retry_after("18446744073709551615", now).unwrap();
    let mut policy = max_jitter(config());
    let delay = delay_of(&policy.on_response(503, None, Some(parsed)));
    assert_eq!(delay, DELAY_LIMIT);
    assert!(std::time::Instant::now().checked_add(delay).is_some());
    let delay = delay_of(&policy.on_response(503, None, Some(Duration::MAX)));
    assert_eq!(delay, DELAY_LIMIT);
    // A Retry-After date far in the future too.
    let far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now).unwrap();
    assert_eq!(
        delay_of(&policy.on_response(429, None, Some(far))),
        DELAY_LIMIT
    );
}

/// `retry: 18446744073709551615` (the decoder saturates it to
/// `Duration::MAX`) with an unbounded cap: still within the limit.
#[test]
fn huge_server_retry_and_cap_are_cut_to_the_delay_limit() {
    let mut policy = max_jitter(config().with_max_delay(Duration::MAX));
    open(&mut policy);
    let _ = policy.on_frame(&Frame::Retry(Duration::MAX));
    assert_eq!(policy.base_delay(), DELAY_LIMIT);
    assert_eq!(delay_of(&policy.on_stream_end()), DELAY_LIMIT);
    for _ in 0..100 {
        assert_eq!(delay_of(&policy.on_connect_error()), DELAY_LIMIT);
    }
    let mut policy = max_jitter(
        ReconnectConfig::new()
            .with_base_delay(Duration::MAX)
            .with_max_delay(Duration::MAX),
    );
    assert_eq!(delay_of(&policy.on_connect_error()), DELAY_LIMIT);
}

proptest! {
    /// No input makes a delay exceed the limit (and so overflow a clock),
    /// and no input panics.
    #[test]
    fn every_delay_is_within_the_limit(
        base in any::<u64>(),
        cap in any::<u64>(),
        retry_ms in proptest::option::of(any::<u64>()),
        inputs in proptest::collection::vec((0u8..5, any::<u64>()), 1..40),
        seed in any::<u64>(),
    ) {
        let config = ReconnectConfig::new()
            .with_base_delay(Duration::from_nanos(base))
            .with_max_delay(Duration::from_secs(cap));
        let mut policy = ReconnectPolicy::new(config, SplitMix64::new(seed));
        for (kind, value) in inputs {
            let action = match kind {
                0 => policy.on_connect_error(),
                1 => policy.on_response(503, None, Some(Duration::from_secs(value))),
                2 => policy.on_response(200, SSE, None),
                3 => {
                    if let Some(ms) = retry_ms {
                        let _ = policy.on_retry(Duration::from_millis(ms).saturating_mul(1000));
                    }
                    policy.on_stream_end()
                }
                _ => policy.on_response(429, None, Some(Duration::new(value, 999_999_999))),
            };
            if let Action::ConnectAfter { delay, .. } = action {
                prop_assert!(delay <= DELAY_LIMIT, "{delay:?}");
                prop_assert!(std::time::Instant::now().checked_add(delay).is_some());
            }
        }
    }
}

// ---- Unsendable ids (hardening issue, item 9) -----------------------------

#[test]
fn sendable_ids_are_those_a_header_value_can_hold() {
    assert!(is_sendable_last_event_id(""));
    assert!(is_sendable_last_event_id("1700000000-41"));
    assert!(is_sendable_last_event_id("tab\there, caf\u{e9} \u{1F600}"));
    for bad in ["7\u{1}x", "\u{1f}", "a\u{7f}", "\u{8}"] {
        assert!(!is_sendable_last_event_id(bad), "{bad:?}");
    }
}

/// An id with a control character is never dropped silently: the reconnect
/// that would have to go without it closes, typed.
#[test]
fn an_unsendable_id_closes_instead_of_reconnecting_without_it() {
    let mut policy = max_jitter(config());
    open(&mut policy);
    let _ = policy.on_event(&message("message", "7\u{1}x"));
    assert_eq!(policy.last_event_id(), Some("7\u{1}x"));
    let info = close_info(policy.on_stream_end());
    assert_eq!(info.reason, CloseReason::UnsendableLastEventId);
    assert!(info.fatal && !info.is_local);
    // A manual reconnect cannot revive it without the id either.
    let info = close_info(policy.reconnect());
    assert_eq!(info.reason, CloseReason::UnsendableLastEventId);
    // A later sendable id clears it.
    let mut policy = max_jitter(config());
    open(&mut policy);
    let _ = policy.on_event(&message("message", "7\u{1}x"));
    let _ = policy.on_frame(&Frame::LastEventId("8".into()));
    assert_eq!(attempt_of(&policy.on_stream_end()), 1);
    // A starting id that cannot be sent closes at once.
    let mut policy = max_jitter(config()).with_last_event_id("\u{2}");
    assert_eq!(
        close_info(policy.start()).reason,
        CloseReason::UnsendableLastEventId
    );
}

#[test]
fn config_accessors_return_what_was_set() {
    let config = ReconnectConfig::new()
        .with_base_delay(Duration::from_millis(1500))
        .with_max_delay(Duration::from_secs(45))
        .with_max_attempts(7)
        .with_fatal_event("gone")
        .with_healthy_after(Some(Duration::from_secs(9)))
        .with_healthy_events(None);
    assert_eq!(config.base_delay(), Duration::from_millis(1500));
    assert_eq!(config.max_delay(), Duration::from_secs(45));
    assert_eq!(config.max_attempts(), Some(7));
    assert_eq!(config.fatal_event(), Some("gone"));
    assert_eq!(config.healthy_after(), Some(Duration::from_secs(9)));
    assert_eq!(config.healthy_events(), None);
    let off = config.with_healthy_after(None);
    assert_eq!(off.healthy_after(), None);
    assert_eq!(
        off.base_delay(),
        Duration::from_millis(1500),
        "the rest kept"
    );
    let defaults = ReconnectConfig::new();
    assert_eq!(defaults.max_attempts(), None);
    assert_eq!(defaults.fatal_event(), None);
    assert_eq!(defaults.base_delay(), Duration::from_secs(3));
    assert_eq!(defaults.max_delay(), Duration::from_secs(60));
}

#[test]
fn the_delay_limit_is_one_day() {
    assert_eq!(DELAY_LIMIT, Duration::from_secs(86_400));
}

#[test]
fn splitmix64_matches_the_reference_generator() {
    use ssehub_core::reconnect::RandomSource;
    // Vigna's splitmix64.c, seeded with 1234567 (and 0).
    let mut rng = SplitMix64::new(1_234_567);
    let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
    assert_eq!(
        got,
        [
            6_457_827_717_110_365_317,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ]
    );
    assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
}

#[test]
fn retry_after_dates_are_checked_field_by_field() {
    let now = UNIX_EPOCH;
    // 2000 is a leap year (divisible by 400); April has 30 days.
    assert_eq!(
        parse_retry_after("Tue, 29 Feb 2000 12:00:00 GMT", now),
        Some(Duration::from_secs(951_825_600))
    );
    assert_eq!(
        parse_retry_after("Wed, 30 Apr 2025 00:00:00 GMT", now),
        Some(Duration::from_secs(1_745_971_200))
    );
    for bad in [
        "Thu, 31 Apr 2025 00:00:00 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 08:49:37:00 GMT",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn a_fatal_connect_error_closes_only_while_connecting() {
    let mut policy = max_jitter(config());
    let _ = policy.start();
    match policy.on_fatal_connect_error() {
        Action::Close(info) => {
            assert_eq!(info.reason, CloseReason::FatalConnectError);
            assert!(info.fatal && !info.is_local, "{info:?}");
        }
        other => panic!("expected Close, got {other:?}"),
    }
    // An open stream is not a connection attempt: nothing to close for.
    let mut policy = max_jitter(config());
    let _ = policy.start();
    open(&mut policy);
    assert_eq!(policy.on_fatal_connect_error(), Action::Continue);
    assert_eq!(policy.state(), &State::Open);
}
