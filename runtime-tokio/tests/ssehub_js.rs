//! `ssehub.js`, the browser client: the hub serves it (with an `ETag` and
//! 304 on `If-None-Match`), its Node unit tests pass, and its parser agrees
//! with the core decoder on random streams.
//!
//! The Node tests run under `node --test` (Node 20+, no npm packages).
//! Without Node they are skipped, unless `CI` is set: then they fail.
//! `SSEHUB_NODE` names another binary.

mod common;

use serde_json::{json, Value};
use ssehub_core::codec::{Decoder, Frame};
use ssehub_core::reconnect::{RandomSource, SplitMix64};
use std::path::{Path, PathBuf};
use std::process::Command;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// The Node binary, or `None` (skip) outside CI.
fn node() -> Option<PathBuf> {
    let binary =
        std::env::var_os("SSEHUB_NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
    match Command::new(&binary).arg("--version").output() {
        Ok(out) if out.status.success() => Some(binary),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "node is required in CI (apt-get install -y nodejs, or set SSEHUB_NODE)"
            );
            eprintln!("skipped: no node (install Node 20+, or set SSEHUB_NODE)");
            None
        }
    }
}

#[tokio::test]
async fn the_hub_serves_the_repository_file_with_an_etag_and_answers_304() {
    let server = common::start(common::config()).await;
    let addr = server.local_addr();
    let (status, head, body) = common::request(addr, "GET", "/ssehub.js", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(head.header("cache-control"), Some("no-cache"));
    let on_disk = std::fs::read_to_string(js_dir().join("ssehub.js")).unwrap();
    assert_eq!(body, on_disk, "the served script is the repository's file");
    let etag = head.header("etag").expect("an ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18,
        "{etag}"
    );

    let (status, head, body) =
        common::request(addr, "GET", "/ssehub.js", &[("If-None-Match", &etag)], "").await;
    assert_eq!(status, 304);
    assert_eq!(body, "");
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let stale = "\"0123456789abcdef\"";
    let (status, _, body) =
        common::request(addr, "GET", "/ssehub.js", &[("If-None-Match", stale)], "").await;
    assert_eq!(status, 200);
    assert_eq!(body, on_disk);

    let (status, head, _) = common::request(addr, "POST", "/ssehub.js", &[], "").await;
    assert_eq!(status, 405);
    assert_eq!(head.header("allow"), Some("GET"));
}

#[test]
fn node_unit_tests_pass() {
    let Some(node) = node() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(js_dir().join("test"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".test.js"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the test files are there: {files:?}");
    let out = Command::new(node)
        .arg("--test")
        .args(&files)
        .current_dir(js_dir())
        .output()
        .expect("run node --test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");
}

/// Random streams made mostly of the bytes the parsers care about.
fn random_stream(rng: &mut SplitMix64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"data:id:event:retry: 12\n\n\r\r:x\0";
    const ODD: &[u8] = &[0xEF, 0xBB, 0xBF, 0xFF, 0xC3, 0xA9, 0xE2, 0x82, 0xF0, 0x80];
    let len = (rng.next_u64() % 300) as usize;
    (0..len)
        .map(|_| {
            let r = rng.next_u64();
            if r % 100 < 6 {
                ODD[(r >> 8) as usize % ODD.len()]
            } else {
                ALPHABET[(r >> 8) as usize % ALPHABET.len()]
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The core decoder's frames for `input`, as the vectors write them; `None`
/// if a retry value is beyond what a JS number holds exactly.
fn core_frames(input: &[u8], options: &Value) -> Option<Vec<Value>> {
    let mut decoder = Decoder::new()
        .with_max_line_len(options["maxLineLength"].as_u64().unwrap_or(1 << 20) as usize)
        .with_max_event_len(options["maxEventLength"].as_u64().unwrap_or(4 << 20) as usize)
        .with_comments(options["comments"].as_bool().unwrap_or(false));
    decoder.feed(input);
    let mut out = Vec::new();
    loop {
        match decoder.next_frame() {
            Ok(Some(Frame::Event(e))) => out.push(
                json!({"type": "event", "event": e.event, "data": e.data, "id": e.last_event_id}),
            ),
            Ok(Some(Frame::Retry(retry))) => {
                let ms = u64::try_from(retry.as_millis())
                    .ok()
                    .filter(|ms| *ms < 1 << 53)?;
                out.push(json!({"type": "retry", "ms": ms}));
            }
            Ok(Some(Frame::LastEventId(id))) => out.push(json!({"type": "id", "id": id})),
            Ok(Some(Frame::Comment(text))) => out.push(json!({"type": "comment", "text": text})),
            Ok(Some(other)) => panic!("unexpected frame {other:?}"),
            Ok(None) => break,
            Err(error) => {
                let (kind, limit) = match error {
                    ssehub_core::codec::DecodeError::LineTooLong { limit } => {
                        ("line-too-long", limit)
                    }
                    ssehub_core::codec::DecodeError::EventTooLarge { limit } => {
                        ("event-too-large", limit)
                    }
                    other => panic!("unexpected error {other:?}"),
                };
                out.push(json!({"type": "error", "error": kind, "limit": limit}));
                break;
            }
        }
    }
    Some(out)
}

#[test]
fn the_js_parser_gives_the_core_decoders_frames_on_random_streams() {
    let Some(node) = node() else { return };
    let mut rng = SplitMix64::new(0x0005_EE4B);
    let mut vectors = Vec::new();
    while vectors.len() < 3000 {
        let input = random_stream(&mut rng);
        let options = match rng.next_u64() % 3 {
            0 => json!({"maxLineLength": 24, "maxEventLength": 40, "comments": true}),
            1 => json!({"comments": true}),
            _ => json!({}),
        };
        let Some(expected) = core_frames(&input, &options) else {
            continue;
        };
        // Cut where the generator says; the JS side also re-cuts at random.
        let mut chunks = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = ((rng.next_u64() % 9) as usize).min(rest.len());
            chunks.push(json!({"hex": hex(&rest[..n])}));
            rest = &rest[n..];
        }
        vectors.push(json!({
            "name": format!("random #{}", vectors.len()),
            "chunks": chunks,
            "options": options,
            "expected": expected,
        }));
    }
    let file =
        std::env::temp_dir().join(format!("ssehub-differential-{}.json", std::process::id()));
    std::fs::write(&file, json!({"vectors": vectors}).to_string()).unwrap();
    let out = Command::new(node)
        .arg(js_dir().join("testing").join("vectors.js"))
        .arg(&file)
        .output()
        .expect("run node");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "the JS parser disagrees with the core decoder:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3000 vectors, 0 mismatches"), "{stdout}");
}
