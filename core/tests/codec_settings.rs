//! A decoder reports the limits and the last event id it was built with,
//! so a client can carry them over to its next connection's decoder.

use ssehub_core::codec::{Decoder, DEFAULT_MAX_EVENT_LEN, DEFAULT_MAX_LINE_LEN};

#[test]
fn a_decoder_reports_its_limits_and_last_event_id() {
    let decoder = Decoder::new();
    assert_eq!(decoder.max_line_len(), DEFAULT_MAX_LINE_LEN);
    assert_eq!(decoder.max_event_len(), DEFAULT_MAX_EVENT_LEN);
    assert_eq!(decoder.last_event_id(), "");
    let decoder = Decoder::new()
        .with_max_line_len(77)
        .with_max_event_len(1234)
        .with_last_event_id("5-9");
    assert_eq!(decoder.max_line_len(), 77);
    assert_eq!(decoder.max_event_len(), 1234);
    assert_eq!(decoder.last_event_id(), "5-9");
}
