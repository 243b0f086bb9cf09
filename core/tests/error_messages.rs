//! Every error says what went wrong in its `Display`, with the values that
//! matter (limits, sizes, positions, reasons): these texts reach operators
//! through logs and HTTP answers.

use ssehub_core::codec::EncodeError;
use ssehub_core::{
    ActivateError, CloseReason, ConfigError, InvariantViolation, PublishError, ReserveError,
    SendError, SubscribeError, TopicError,
};
use std::time::Duration;

fn text(error: &dyn std::error::Error) -> String {
    error.to_string()
}

#[test]
fn topic_and_reserve_errors() {
    assert_eq!(text(&TopicError::Empty), "topic name is empty");
    assert_eq!(
        text(&TopicError::TooLong { len: 300 }),
        "topic name is 300 bytes, over 256"
    );
    assert_eq!(
        text(&TopicError::ControlCharacter { at: 3 }),
        "topic name has a control character at byte 3"
    );
    assert_eq!(text(&ReserveError::ShuttingDown), "hub is shutting down");
    assert_eq!(
        text(&ReserveError::TooManyClients { limit: 5 }),
        "client limit of 5 reached"
    );
    assert_eq!(
        text(&ReserveError::TooManyClientsForPeer { limit: 2 }),
        "per-peer client limit of 2 reached"
    );
    assert_eq!(
        text(&ReserveError::TooManyTopics { limit: 64 }),
        "more than 64 topics requested"
    );
    assert_eq!(
        text(&ReserveError::InvalidTopic {
            topic: "a\u{1}".into(),
            error: TopicError::ControlCharacter { at: 1 },
        }),
        "topic \"a\\u{1}\": topic name has a control character at byte 1"
    );
}

#[test]
fn activate_subscribe_publish_and_send_errors() {
    assert_eq!(
        text(&ActivateError::ClosedBeforeActivation(CloseReason::Kicked)),
        "client closed (kicked) before activation"
    );
    assert_eq!(
        text(&ActivateError::TooManyTopics { limit: 9 }),
        "hub topic limit of 9 reached"
    );
    assert_eq!(
        text(&SubscribeError::UnknownClient),
        "no live client with this id"
    );
    assert_eq!(
        text(&SubscribeError::InvalidTopic(TopicError::Empty)),
        "invalid topic: topic name is empty"
    );
    assert_eq!(
        text(&SubscribeError::TooManyTopicsForClient { limit: 4 }),
        "client already has 4 topics"
    );
    assert_eq!(
        text(&SubscribeError::TooManyTopics { limit: 8 }),
        "hub topic limit of 8 reached"
    );
    assert_eq!(
        text(&PublishError::InvalidTopic(TopicError::Empty)),
        "invalid topic: topic name is empty"
    );
    let too_large = EncodeError::TooLarge { size: 10, limit: 4 };
    assert_eq!(
        text(&PublishError::Encode(too_large)),
        "cannot encode event: encoded event is 10 bytes, over the limit of 4"
    );
    assert_eq!(
        text(&PublishError::TooManyTopics { limit: 7 }),
        "hub topic limit of 7 reached"
    );
    assert_eq!(text(&PublishError::ShutDown), "hub has been shut down");
    assert_eq!(
        text(&SendError::UnknownClient),
        "no live client with this id"
    );
    assert_eq!(
        text(&SendError::Encode(EncodeError::IdHasNul)),
        "cannot encode event: event id contains NUL"
    );
    assert_eq!(
        text(&SendError::SlowConsumer),
        "client queue full; client closed as slow consumer"
    );
    assert_eq!(
        text(&SendError::Closed(CloseReason::Shutdown)),
        "client already closed (shutdown)"
    );
}

#[test]
fn invariant_and_config_errors() {
    let violation = InvariantViolation {
        invariant: "I5",
        detail: "client 3.1 left behind".into(),
    };
    assert_eq!(text(&violation), "I5 violated: client 3.1 left behind");
    assert_eq!(
        text(&ConfigError::Zero("max_clients")),
        "max_clients must be at least 1"
    );
    assert_eq!(
        text(&ConfigError::ZeroDuration("idle_timeout")),
        "idle_timeout must be longer than zero"
    );
    assert_eq!(
        text(&ConfigError::BadEventName("reset_event")),
        "reset_event must not contain CR or LF"
    );
    assert_eq!(
        text(&ConfigError::InvertedWindow),
        "shutdown_retry_window ends before it starts"
    );
    assert_eq!(
        text(&ConfigError::IdleBeforeHeartbeat {
            idle_timeout: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(15),
            timer_resolution: Duration::from_millis(10),
        }),
        "idle_timeout (15s) must be at least heartbeat_interval (15s) plus timer_resolution (10ms), \
         or healthy quiet clients are dropped as idle"
    );
}

#[test]
fn budget_and_frame_errors() {
    assert_eq!(
        text(&ActivateError::TopicBudget { limit: 16 }),
        "budget of 16 new topics created by subscribing spent"
    );
    assert_eq!(
        text(&SubscribeError::TopicBudget { limit: 3 }),
        "budget of 3 new topics created by subscribing spent"
    );
    assert_eq!(
        text(&SendError::InvalidFrame {
            reason: "a direct frame must not set an id"
        }),
        "invalid frame: a direct frame must not set an id"
    );
}

#[test]
fn apply_and_history_errors() {
    use ssehub_core::{ApplyError, HistoryError};
    assert_eq!(
        text(&ApplyError::LocallySequenced),
        "this hub sequences its own events"
    );
    assert_eq!(text(&ApplyError::ShutDown), "hub has been shut down");
    assert_eq!(
        text(&ApplyError::TooManyTopics { limit: 3 }),
        "hub topic limit of 3 reached"
    );
    assert_eq!(
        text(&HistoryError::OutOfOrder { topic: "t".into() }),
        "history of \"t\" is out of order or out of its range"
    );
    assert_eq!(
        text(&HistoryError::BadRange { topic: "t".into() }),
        "history of \"t\" is complete after a point past its end"
    );
}
