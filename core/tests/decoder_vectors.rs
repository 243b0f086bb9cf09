//! The decoder against `tests/vectors/sse-decoder.json`, the vectors that
//! ssehub.js's parser also runs (`runtime-tokio/js/test/vectors.test.js`):
//! both parsers must give the same frames for the same bytes.
//!
//! Each vector is decoded as its chunks are given, whole, byte by byte and
//! in seeded random cuts; every way must give exactly the expected frames.

use serde_json::{json, Value};
use ssehub_core::codec::{DecodeError, Decoder, Frame};
use ssehub_core::reconnect::{RandomSource, SplitMix64};

const VECTORS: &str = include_str!("vectors/sse-decoder.json");

fn chunk_bytes(chunk: &Value) -> Vec<u8> {
    match chunk {
        Value::String(text) => text.as_bytes().to_vec(),
        Value::Object(map) => {
            let hex = map["hex"].as_str().expect("hex chunk");
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
                .collect()
        }
        other => panic!("bad chunk {other}"),
    }
}

fn decoder_for(options: &Value) -> Decoder {
    let mut decoder = Decoder::new();
    if let Some(n) = options["maxLineLength"].as_u64() {
        decoder = decoder.with_max_line_len(n as usize);
    }
    if let Some(n) = options["maxEventLength"].as_u64() {
        decoder = decoder.with_max_event_len(n as usize);
    }
    if let Some(on) = options["comments"].as_bool() {
        decoder = decoder.with_comments(on);
    }
    if let Some(id) = options["lastEventId"].as_str() {
        decoder = decoder.with_last_event_id(id);
    }
    decoder
}

/// Decodes `chunks` and renders the frames as the vectors write them.
fn decode(options: &Value, chunks: &[&[u8]]) -> Vec<Value> {
    let mut decoder = decoder_for(options);
    for chunk in chunks {
        decoder.feed(chunk);
    }
    let mut out = Vec::new();
    loop {
        match decoder.next_frame() {
            Ok(Some(Frame::Event(e))) => out.push(
                json!({"type": "event", "event": e.event, "data": e.data, "id": e.last_event_id}),
            ),
            Ok(Some(Frame::Retry(retry))) => {
                let ms = u64::try_from(retry.as_millis()).expect("vector retry values fit");
                out.push(json!({"type": "retry", "ms": ms}));
            }
            Ok(Some(Frame::LastEventId(id))) => out.push(json!({"type": "id", "id": id})),
            Ok(Some(Frame::Comment(text))) => out.push(json!({"type": "comment", "text": text})),
            Ok(Some(other)) => panic!("a frame the vectors cannot express: {other:?}"),
            Ok(None) => break,
            Err(error) => {
                let (kind, limit) = match error {
                    DecodeError::LineTooLong { limit } => ("line-too-long", limit),
                    DecodeError::EventTooLarge { limit } => ("event-too-large", limit),
                    other => panic!("an error the vectors cannot express: {other:?}"),
                };
                out.push(json!({"type": "error", "error": kind, "limit": limit}));
                break;
            }
        }
    }
    out
}

#[test]
fn every_vector_decodes_to_its_expected_frames_in_any_chunking() {
    let document: Value = serde_json::from_str(VECTORS).expect("valid JSON");
    let vectors = document["vectors"].as_array().expect("a vectors array");
    assert!(vectors.len() >= 50, "the vectors file is there");
    let mut rng = SplitMix64::new(18);
    let mut failures = Vec::new();
    for vector in vectors {
        let name = vector["name"].as_str().expect("a name");
        let options = &vector["options"];
        let expected = vector["expected"].as_array().expect("expected frames");
        let given: Vec<Vec<u8>> = vector["chunks"]
            .as_array()
            .expect("chunks")
            .iter()
            .map(chunk_bytes)
            .collect();
        let whole = given.concat();
        let mut ways: Vec<(String, Vec<&[u8]>)> = vec![
            ("as given".into(), given.iter().map(Vec::as_slice).collect()),
            ("whole".into(), vec![&whole[..]]),
            ("byte by byte".into(), whole.chunks(1).collect()),
        ];
        for round in 0..30 {
            let mut chunks = Vec::new();
            let mut rest = &whole[..];
            while !rest.is_empty() {
                // 0..=7 bytes: empty chunks happen too.
                let n = ((rng.next_u64() % 8) as usize).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                chunks.push(chunk);
                rest = tail;
            }
            ways.push((format!("random cuts #{round}"), chunks));
        }
        for (how, chunks) in ways {
            let actual = decode(options, &chunks);
            if actual != *expected {
                failures.push(format!(
                    "{name} ({how}):\n  expected {}\n  actual   {}",
                    Value::from(expected.clone()),
                    Value::from(actual)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
