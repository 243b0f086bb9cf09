//! The decoder against the WHATWG HTML "server-sent events" examples and
//! each parsing rule, one test per rule.

use ssehub_core::codec::{DecodeError, Decoder, Frame, MessageEvent};
use std::time::Duration;

fn collect(decoder: &mut Decoder) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(frame) = decoder.next_frame().expect("no decode error") {
        out.push(frame);
    }
    out
}

/// Decodes `chunks` in order with a default decoder.
fn decode_chunks(chunks: &[&[u8]]) -> Vec<Frame> {
    let mut decoder = Decoder::new();
    for chunk in chunks {
        decoder.feed(chunk);
    }
    collect(&mut decoder)
}

fn decode(input: &str) -> Vec<Frame> {
    decode_chunks(&[input.as_bytes()])
}

/// Decodes byte by byte, so every boundary is exercised.
fn decode_bytewise(input: &[u8]) -> Vec<Frame> {
    let chunks: Vec<&[u8]> = input.chunks(1).collect();
    decode_chunks(&chunks)
}

fn ev(event: &str, data: &str, id: &str) -> Frame {
    Frame::Event(MessageEvent {
        event: event.into(),
        data: data.into(),
        last_event_id: id.into(),
    })
}

fn msg(data: &str) -> Frame {
    ev("message", data, "")
}

fn check(input: &str, expected: &[Frame]) {
    assert_eq!(decode(input), expected, "whole input");
    assert_eq!(decode_bytewise(input.as_bytes()), expected, "byte by byte");
}

// ---- The spec's examples -------------------------------------------------

#[test]
fn spec_intro_three_messages() {
    check(
        "data: This is the first message.\n\n\
         data: This is the second message, it\n\
         data: has two lines.\n\n\
         data: This is the third message.\n\n",
        &[
            msg("This is the first message."),
            msg("This is the second message, it\nhas two lines."),
            msg("This is the third message."),
        ],
    );
}

#[test]
fn spec_add_and_remove_event_types() {
    check(
        "event: add\ndata: 73857293\n\n\
         event: remove\ndata: 2153\n\n\
         event: add\ndata: 113411\n\n",
        &[
            ev("add", "73857293", ""),
            ev("remove", "2153", ""),
            ev("add", "113411", ""),
        ],
    );
}

#[test]
fn spec_stock_ticker_multi_line_data() {
    check("data: YHOO\ndata: +2\ndata: 10\n\n", &[msg("YHOO\n+2\n10")]);
}

#[test]
fn spec_first_second_third_event_with_ids() {
    // The comment is ignored; `id` with no value resets the last event id;
    // only one of the two spaces before "third event" is stripped.
    check(
        ": test stream\n\n\
         data: first event\nid: 1\n\n\
         data:second event\nid\n\n\
         data:  third event\n",
        &[ev("message", "first event", "1"), msg("second event")],
    );
    // The third block has no blank line yet: it is dispatched only once
    // one arrives.
    check(
        ": test stream\n\n\
         data: first event\nid: 1\n\n\
         data:second event\nid\n\n\
         data:  third event\n\n",
        &[
            ev("message", "first event", "1"),
            msg("second event"),
            msg(" third event"),
        ],
    );
}

#[test]
fn spec_data_lines_without_colon() {
    // Two events: "" and "\n". The last block never ends and is discarded.
    check("data\n\ndata\ndata\n\ndata:", &[msg(""), msg("\n")]);
}

#[test]
fn spec_one_space_after_colon_is_optional() {
    check("data:test\n\ndata: test\n\n", &[msg("test"), msg("test")]);
}

// ---- One test per rule ---------------------------------------------------

#[test]
fn leading_bom_is_stripped_once() {
    let mut input = b"\xEF\xBB\xBFdata: a\n\n".to_vec();
    assert_eq!(decode_bytewise(&input), [msg("a")]);
    // A second BOM makes the field name "\u{FEFF}data": unknown, ignored.
    input.splice(0..0, *b"\xEF\xBB\xBF");
    assert_eq!(decode_chunks(&[&input]), []);
    assert_eq!(decode_bytewise(&input), []);
}

#[test]
fn bom_not_at_the_start_is_content() {
    check("data: \u{FEFF}x\n\n", &[msg("\u{FEFF}x")]);
}

#[test]
fn lf_cr_and_crlf_all_end_lines() {
    let expected = [ev("e", "a\nb", "")];
    check("event: e\ndata: a\ndata: b\n\n", &expected);
    check("event: e\rdata: a\rdata: b\r\r", &expected);
    check("event: e\r\ndata: a\r\ndata: b\r\n\r\n", &expected);
    check("event: e\r\ndata: a\rdata: b\n\r\n", &expected);
}

#[test]
fn crlf_split_across_chunks_is_one_line_break() {
    // Were the LF taken as a second line break, "a" would be dispatched
    // alone.
    assert_eq!(
        decode_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
        [msg("a\nb")]
    );
    // Even with empty chunks in between.
    assert_eq!(
        decode_chunks(&[b"data: a\r", b"", b"", b"\ndata: b\r\n\r\n"]),
        [msg("a\nb")]
    );
}

#[test]
fn cr_at_chunk_end_followed_by_cr_is_a_blank_line() {
    assert_eq!(
        decode_chunks(&[b"data: a\r", b"\rdata: b\n\n"]),
        [msg("a"), msg("b")]
    );
}

#[test]
fn line_without_colon_is_a_name_with_empty_value() {
    check("data\n\n", &[msg("")]);
    // `event` alone sets the type to "", which means "message".
    check("event\ndata: x\n\n", &[msg("x")]);
}

#[test]
fn only_one_leading_space_is_stripped() {
    check("data:   x  \n\n", &[msg("  x  ")]);
    check("event:  spaced\ndata:\tx\n\n", &[ev(" spaced", "\tx", "")]);
}

#[test]
fn value_splits_at_the_first_colon_only() {
    check("data: a:b: c\n\n", &[msg("a:b: c")]);
}

#[test]
fn unknown_fields_and_wrong_case_are_ignored() {
    check(
        "foo: bar\nData: no\nDATA: no\n data: no\nid : no\ndata: yes\n\n",
        &[msg("yes")],
    );
}

#[test]
fn retry_with_digits_is_reported_at_once() {
    // No data: nothing dispatched, but the retry still applies.
    check(
        "retry: 2500\n\n",
        &[Frame::Retry(Duration::from_millis(2500))],
    );
    check(
        "retry: 10\ndata: x\n\n",
        &[Frame::Retry(Duration::from_millis(10)), msg("x")],
    );
    check("retry:0\n\n", &[Frame::Retry(Duration::ZERO)]);
}

#[test]
fn retry_with_anything_but_digits_is_ignored() {
    for value in ["", "1.5", "-1", "+1", "1e3", "10 ", " 10 ", "ten", "٣"] {
        let input = format!("retry: {value}\ndata: x\n\n");
        assert_eq!(decode(&input), [msg("x")], "retry: {value:?}");
    }
    check("retry\ndata: x\n\n", &[msg("x")]);
}

#[test]
fn id_containing_nul_is_ignored() {
    check(
        "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n",
        &[ev("message", "a", "1"), ev("message", "b", "1")],
    );
}

#[test]
fn last_event_id_persists_across_events() {
    check(
        "id: 7\ndata: a\n\ndata: b\n\nevent: e\ndata: c\n\n",
        &[
            ev("message", "a", "7"),
            ev("message", "b", "7"),
            ev("e", "c", "7"),
        ],
    );
}

#[test]
fn id_is_set_by_a_block_without_data() {
    // The block is not dispatched, but the id counts: reported once as a
    // LastEventId frame, then carried by the next event.
    check(
        "id: 5\n\ndata: a\n\nid: 5\n\n",
        &[Frame::LastEventId("5".into()), ev("message", "a", "5")],
    );
    // An empty id resets it.
    check(
        "id: 5\ndata: a\n\nid\n\ndata: b\n\n",
        &[
            ev("message", "a", "5"),
            Frame::LastEventId(String::new()),
            msg("b"),
        ],
    );
}

#[test]
fn id_takes_effect_only_at_the_blank_line() {
    let mut decoder = Decoder::new();
    decoder.feed(b"id: 9\ndata: a\n");
    assert_eq!(decoder.last_event_id(), "");
    decoder.feed(b"\n");
    assert_eq!(decoder.last_event_id(), "9");
    assert_eq!(collect(&mut decoder), [ev("message", "a", "9")]);
}

#[test]
fn empty_data_buffer_is_not_dispatched_and_resets_the_type() {
    check("event: e\n\ndata: x\n\n", &[msg("x")]);
    check("\n\n\n", &[]);
    check(": only a comment\n\n", &[]);
}

#[test]
fn one_trailing_lf_is_removed_from_data() {
    check("data: a\ndata\n\n", &[msg("a\n")]);
    check("data\ndata\ndata\n\n", &[msg("\n\n")]);
}

#[test]
fn default_event_type_is_message() {
    check("data: x\n\n", &[msg("x")]);
    check("event: \ndata: x\n\n", &[msg("x")]);
    check("event: a\nevent: b\ndata: x\n\n", &[ev("b", "x", "")]);
}

#[test]
fn comments_are_reported_only_on_request() {
    let input = b":\n: hello\n:  two spaces\ndata: x\n\n";
    assert_eq!(decode_chunks(&[input]), [msg("x")]);

    let mut decoder = Decoder::new().with_comments(true);
    decoder.feed(input);
    assert_eq!(
        collect(&mut decoder),
        [
            Frame::Comment(String::new()),
            Frame::Comment("hello".into()),
            Frame::Comment(" two spaces".into()),
            msg("x"),
        ]
    );
}

#[test]
fn invalid_utf8_is_replaced() {
    assert_eq!(
        decode_chunks(&[b"data: a\xFF\xC3b\n\nevent: \xE2\x82\n\xF0\x9F\x98\x80: x\ndata: c\n\n"]),
        [msg("a\u{FFFD}\u{FFFD}b"), ev("\u{FFFD}", "c", "")]
    );
}

#[test]
fn utf8_split_across_chunks_is_kept() {
    let input = "data: h\u{e9}llo \u{1F600}\n\n".as_bytes();
    assert_eq!(decode_bytewise(input), [msg("h\u{e9}llo \u{1F600}")]);
}

#[test]
fn incomplete_event_at_end_of_stream_is_not_dispatched() {
    check("data: a\n\ndata: b\n", &[msg("a")]);
    check("data: a\n\ndata: b", &[msg("a")]);
}

#[test]
fn seeded_last_event_id_carries_over_a_reconnect() {
    let mut decoder = Decoder::new().with_last_event_id("41");
    decoder.feed(b"data: x\n\nid: 42\n\n");
    assert_eq!(
        collect(&mut decoder),
        [ev("message", "x", "41"), Frame::LastEventId("42".into())]
    );
}

// ---- Limits --------------------------------------------------------------

#[test]
fn line_at_the_limit_is_accepted() {
    let mut decoder = Decoder::new().with_max_line_len(8);
    decoder.feed(b"data: ab\n\n");
    decoder.feed(b"data: ");
    decoder.feed(b"cd\r");
    decoder.feed(b"\n");
    assert_eq!(collect(&mut decoder), [msg("ab")]);
}

#[test]
fn huge_chunk_without_line_break_fails_without_buffering() {
    let mut decoder = Decoder::new().with_max_line_len(1024);
    decoder.feed(b"data: ok\n\n");
    decoder.feed(&vec![b'x'; 10 << 20]);
    assert_eq!(decoder.next_frame(), Ok(Some(msg("ok"))));
    assert_eq!(
        decoder.next_frame(),
        Err(DecodeError::LineTooLong { limit: 1024 })
    );
}

#[test]
fn long_line_split_over_chunks_fails() {
    let mut decoder = Decoder::new().with_max_line_len(10);
    for _ in 0..5 {
        decoder.feed(b"data: ");
    }
    assert_eq!(
        decoder.error(),
        Some(DecodeError::LineTooLong { limit: 10 })
    );
}

#[test]
fn long_complete_line_fails_too() {
    let mut decoder = Decoder::new().with_max_line_len(10);
    decoder.feed(b": this comment is too long\n");
    assert_eq!(
        decoder.next_frame(),
        Err(DecodeError::LineTooLong { limit: 10 })
    );
}

#[test]
fn event_data_at_the_limit_is_accepted_and_one_more_byte_fails() {
    let mut decoder = Decoder::new().with_max_event_len(5);
    decoder.feed(b"data: ab\ndata: cd\n\n");
    assert_eq!(decoder.next_frame(), Ok(Some(msg("ab\ncd"))));
    decoder.feed(b"data: ab\ndata: cde\n\n");
    assert_eq!(
        decoder.next_frame(),
        Err(DecodeError::EventTooLarge { limit: 5 })
    );
}

#[test]
fn limits_count_from_each_event_and_line_anew() {
    let mut decoder = Decoder::new().with_max_line_len(8).with_max_event_len(2);
    for _ in 0..1000 {
        decoder.feed(b"data: ab\n\n");
    }
    assert_eq!(collect(&mut decoder).len(), 1000);
}

#[test]
fn after_an_error_input_is_ignored_and_the_error_repeats() {
    let mut decoder = Decoder::new().with_max_line_len(4);
    decoder.feed(b"data\n\ndata: too long\n\ndata\n\n");
    assert_eq!(decoder.next_frame(), Ok(Some(msg(""))));
    let error = DecodeError::LineTooLong { limit: 4 };
    assert_eq!(decoder.next_frame(), Err(error));
    decoder.feed(b"data\n\n");
    assert_eq!(decoder.next_frame(), Err(error));
    assert_eq!(decoder.error(), Some(error));
}

#[test]
fn decode_iterator_stops_after_the_error() {
    let mut decoder = Decoder::new().with_max_line_len(4);
    let frames: Vec<_> = decoder.decode(b"data\n\ndata: too long\n").collect();
    assert_eq!(
        frames,
        [Ok(msg("")), Err(DecodeError::LineTooLong { limit: 4 })]
    );
}

#[test]
fn errors_display_their_limit() {
    assert_eq!(
        DecodeError::LineTooLong { limit: 3 }.to_string(),
        "event stream line longer than the limit of 3 bytes"
    );
    assert_eq!(
        DecodeError::EventTooLarge { limit: 9 }.to_string(),
        "event data larger than the limit of 9 bytes"
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> =
        Box::new(DecodeError::EventTooLarge { limit: 9 });
    assert!(boxed.source().is_none());
}

#[test]
fn decoder_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Decoder>();
    assert_send_sync::<Frame>();
}
