//! Property tests: decoding an encoded stream gives the events back, in any
//! chunking, and arbitrary bytes never break the decoder.

use proptest::prelude::*;
use ssehub_core::codec::{welcome_frame, Decoder, Event, Frame, MessageEvent};
use std::time::Duration;

/// Text rich in the characters the codec treats specially, plus any BMP
/// character and some astral ones (mapping plain integers is much cheaper to
/// generate than a weighted union of characters).
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u16>(), 0..24)
        .prop_map(|units| units.into_iter().map(to_char).collect())
}

fn to_char(unit: u16) -> char {
    match unit % 64 {
        0..=5 => '\n',
        6..=10 => '\r',
        11 => ':',
        12..=15 => ' ',
        16 => '\u{FEFF}',
        17 => '\0',
        18 => char::from_u32(0x1F600 + u32::from(unit >> 6)).unwrap_or('x'),
        _ => char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}'),
    }
}

/// A text without CR or LF (and without NUL when `no_nul`).
fn single_line(no_nul: bool) -> impl Strategy<Value = String> {
    text().prop_map(move |s| {
        s.chars()
            .filter(|&c| c != '\r' && c != '\n' && !(no_nul && c == '\0'))
            .collect()
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        proptest::option::of(text()),
        proptest::option::of(prop_oneof![single_line(false), Just("message".to_owned())]),
        proptest::option::of(single_line(true)),
        proptest::option::of(any::<u64>()),
        proptest::option::of(text()),
    )
        .prop_map(|(data, name, id, retry, comment)| {
            let mut e = match data {
                Some(data) => Event::new(data),
                None => Event::empty(),
            };
            if let Some(name) = name {
                e = e.with_event(name);
            }
            if let Some(id) = id {
                e = e.with_id(id);
            }
            if let Some(ms) = retry {
                e = e.with_retry(Duration::from_millis(ms));
            }
            if let Some(comment) = comment {
                e = e.with_comment(comment);
            }
            e
        })
}

fn normalise_line_breaks(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// The plain model of what a decoder must report for `events`.
fn expected_frames(events: &[Event]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut last_event_id = String::new();
    for e in events {
        if let Some(comment) = e.comment() {
            for line in normalise_line_breaks(comment).split('\n') {
                frames.push(Frame::Comment(line.to_owned()));
            }
        }
        if let Some(retry) = e.retry() {
            frames.push(Frame::Retry(retry));
        }
        let id_changed = e.id().is_some_and(|id| id != last_event_id);
        if let Some(id) = e.id() {
            last_event_id = id.to_owned();
        }
        match e.data() {
            Some(data) => frames.push(Frame::Event(MessageEvent {
                event: match e.event() {
                    None | Some("") => "message".to_owned(),
                    Some(name) => name.to_owned(),
                },
                data: normalise_line_breaks(data),
                last_event_id: last_event_id.clone(),
            })),
            None if id_changed => frames.push(Frame::LastEventId(last_event_id.clone())),
            None => {}
        }
    }
    frames
}

/// Splits `bytes` at the given chunk sizes (the rest in one last chunk).
fn chunked<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    for &size in sizes {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks.push(rest);
    chunks
}

fn decode_all(decoder: &mut Decoder, chunks: &[&[u8]]) -> Vec<Frame> {
    let mut frames = Vec::new();
    for chunk in chunks {
        for frame in decoder.decode(chunk) {
            frames.push(frame.expect("a valid encoding decodes without error"));
        }
    }
    frames
}

/// Makes the bytes and words the parser cares about frequent (mapping a
/// plain byte vector is much cheaper to generate than a weighted union).
fn bias(bytes: Vec<u8>) -> Vec<u8> {
    const WORDS: [&[u8]; 10] = [
        b"\n",
        b"\r",
        b"\r\n",
        b": ",
        b"\0",
        b"data",
        b"id",
        b"event",
        b"retry",
        b"\xEF\xBB\xBF",
    ];
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for byte in bytes {
        match byte {
            0..=79 => out.extend_from_slice(WORDS[usize::from(byte) % WORDS.len()]),
            80..=89 => out.push(b'0' + byte - 80),
            _ => out.push(byte),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decode_of_encode_gives_the_events_back(
        events in proptest::collection::vec(event(), 1..6),
        sizes in proptest::collection::vec(1usize..12, 0..64),
    ) {
        let mut wire = bytes::BytesMut::new();
        for e in &events {
            e.encode(&mut wire).expect("generated events are valid");
        }
        let mut decoder = Decoder::new().with_comments(true);
        let frames = decode_all(&mut decoder, &chunked(&wire, &sizes));
        prop_assert_eq!(frames, expected_frames(&events));
    }

    #[test]
    fn decode_of_encode_byte_by_byte(events in proptest::collection::vec(event(), 1..4)) {
        let mut wire = bytes::BytesMut::new();
        for e in &events {
            e.encode(&mut wire).expect("generated events are valid");
        }
        let chunks: Vec<&[u8]> = wire.chunks(1).collect();
        let mut decoder = Decoder::new().with_comments(true);
        prop_assert_eq!(decode_all(&mut decoder, &chunks), expected_frames(&events));
    }

    /// The same stream with every line break rewritten as LF, CR or CRLF
    /// (as other servers send them), split anywhere, CRLF pairs included.
    #[test]
    fn any_line_break_style_decodes_the_same(
        events in proptest::collection::vec(event(), 1..6),
        styles in proptest::collection::vec(0u8..3, 0..256),
        sizes in proptest::collection::vec(1usize..6, 0..128),
    ) {
        let mut wire = bytes::BytesMut::new();
        for e in &events {
            e.encode(&mut wire).expect("generated events are valid");
        }
        let mut styles = styles.into_iter().cycle().chain(std::iter::repeat(0));
        let mut restyled: Vec<u8> = Vec::with_capacity(wire.len() * 2);
        for &byte in wire.iter() {
            if byte != b'\n' {
                restyled.push(byte);
                continue;
            }
            match styles.next() {
                Some(1) => restyled.push(b'\r'),
                // A LF right after a lone CR would merge with it into one
                // CRLF break: write CRLF instead.
                Some(2) => restyled.extend_from_slice(b"\r\n"),
                _ if restyled.last() == Some(&b'\r') => restyled.extend_from_slice(b"\r\n"),
                _ => restyled.push(b'\n'),
            }
        }
        let mut decoder = Decoder::new().with_comments(true);
        let frames = decode_all(&mut decoder, &chunked(&restyled, &sizes));
        prop_assert_eq!(frames, expected_frames(&events));
    }

    #[test]
    fn encode_refuses_exactly_what_decode_could_not_give_back(
        name in text(),
        id in text(),
    ) {
        let e = Event::new("x").with_event(name.clone()).with_id(id.clone());
        let representable = !name.contains(['\r', '\n']) && !id.contains(['\r', '\n', '\0']);
        prop_assert_eq!(e.validate().is_ok(), representable);
        prop_assert_eq!(e.to_bytes().is_ok(), representable);
    }

    /// Arbitrary bytes, arbitrary chunks, small limits: never a panic, never
    /// an event over the limit, and once failed, failed for good.
    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..512).prop_map(bias),
        sizes in proptest::collection::vec(1usize..64, 0..32),
        max_line in 0usize..64,
        max_event in 0usize..64,
        comments in any::<bool>(),
    ) {
        let mut decoder = Decoder::new()
            .with_max_line_len(max_line)
            .with_max_event_len(max_event)
            .with_comments(comments);
        let mut failed = None;
        for chunk in chunked(&input, &sizes) {
            decoder.feed(chunk);
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        prop_assert!(failed.is_none());
                        if let Frame::Event(e) = frame {
                            prop_assert!(e.data.len() <= max_event);
                            prop_assert!(!e.event.is_empty());
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        prop_assert!(failed.is_none() || failed == Some(error));
                        failed = Some(error);
                        break;
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `welcome_frame` writes the bytes the encoder writes for the same
    /// event with its JSON from a serializer, for any id, name and hint,
    /// and a decoder gives back the client id; a name with a line break
    /// is refused, as the encoder refuses it.
    #[test]
    fn the_welcome_frame_is_the_encoded_welcome_event(
        index in any::<u32>(),
        generation in 1u64..,
        name in text(),
        retry_ms in proptest::option::of(any::<u64>()),
    ) {
        let id: ssehub_core::ClientId = format!("{index}.{generation}").parse().unwrap();
        let retry = retry_ms.map(Duration::from_millis);
        let json = serde_json::json!({ "clientId": id.to_string() }).to_string();
        let mut event = Event::new(json).with_event(name.as_str());
        if let Some(retry) = retry {
            event = event.with_retry(retry);
        }
        let built = welcome_frame(&name, retry, id);
        match event.to_bytes() {
            Ok(expected) => {
                let built = built.expect("the encoder accepts this name");
                prop_assert_eq!(&built[..], &expected[..]);
                let mut decoder = Decoder::new();
                let frames = decode_all(&mut decoder, &[&built[..]]);
                let data = frames.iter().find_map(|f| match f {
                    Frame::Event(e) => Some(e.data.clone()),
                    _ => None,
                });
                let data: serde_json::Value =
                    serde_json::from_str(&data.expect("one event")).unwrap();
                let text = id.to_string();
                prop_assert_eq!(data["clientId"].as_str(), Some(text.as_str()));
            }
            Err(error) => prop_assert_eq!(built, Err(error)),
        }
    }
}
