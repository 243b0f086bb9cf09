//! Codec throughput (`Throughput::Bytes`, so criterion reports MB/s of
//! encoded stream) for a small event and a 4 KiB one:
//!
//! - `encode/ssehub`: `Event::encode` into a reused `BytesMut`;
//! - `encode/axum`: building the `axum::response::sse::Event` that
//!   baseline B formats per subscriber (same fields, passed as `&str`, so
//!   neither side copies its inputs), for reference;
//! - `decode/ssehub`: `codec::Decoder` fed 64 encoded events at once,
//!   pulling every frame;
//! - `decode/ssehub_chunked`: the same stream fed in 1 500-byte pieces
//!   (one loopback segment's worth), as a client reads it.
//!
//! Run: `cargo bench -p ssehub-benches --bench codec`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssehub_core::codec::{Decoder, Event, Frame};
use std::hint::black_box;

const EVENTS_PER_STREAM: usize = 64;

fn cases() -> Vec<(&'static str, Event)> {
    let small = Event::new(r#"{"type":"update","id":123456,"status":"ok"}"#)
        .with_event("update")
        .with_id("1732500000000-42");
    // 4 KiB of data over 64-byte lines, so the line splitting is exercised.
    let line = "0123456789abcdef".repeat(4);
    let big_data = vec![line; 64].join("\n");
    let big = Event::new(big_data)
        .with_event("snapshot")
        .with_id("1732500000000-43");
    vec![("small", small), ("4KiB", big)]
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, event) in cases() {
        let len = event.to_bytes().expect("encodable").len();
        group.throughput(Throughput::Bytes(len as u64));
        let mut buf = BytesMut::with_capacity(len * 2);
        group.bench_function(BenchmarkId::new("ssehub", name), |b| {
            b.iter(|| {
                buf.clear();
                event.encode(&mut buf).expect("encodable");
                black_box(&buf);
            })
        });
        // Borrowed fields, as ssehub's encoder borrows its event's: the
        // axum side pays for its own buffer, not for copies of the inputs.
        let id = event.id().unwrap_or_default();
        let kind = event.event().unwrap_or_default();
        let data = event.data().unwrap_or_default();
        group.bench_function(BenchmarkId::new("axum", name), |b| {
            b.iter(|| {
                black_box(
                    axum::response::sse::Event::default()
                        .id(black_box(id))
                        .event(black_box(kind))
                        .data(black_box(data)),
                )
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, event) in cases() {
        let mut stream = BytesMut::new();
        for _ in 0..EVENTS_PER_STREAM {
            event.encode(&mut stream).expect("encodable");
        }
        let stream = stream.freeze();
        group.throughput(Throughput::Bytes(stream.len() as u64));
        let run = |chunk: usize| {
            let mut decoder = Decoder::new();
            let mut events = 0;
            for piece in stream.chunks(chunk) {
                for frame in decoder.decode(piece) {
                    if let Frame::Event(event) = frame.expect("valid stream") {
                        black_box(&event);
                        events += 1;
                    }
                }
            }
            assert_eq!(events, EVENTS_PER_STREAM);
        };
        group.bench_function(BenchmarkId::new("ssehub", name), |b| {
            b.iter(|| run(stream.len()))
        });
        group.bench_function(BenchmarkId::new("ssehub_chunked", name), |b| {
            b.iter(|| run(1_500))
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
