//! Feeds arbitrary bytes to the decoder, split at positions the fuzzer also
//! chooses, with small limits, and checks the decoder's promises: no panic,
//! no event over the limit, no buffer growth past the limits (observable as
//! frames), and failure being final.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ssehub_core::codec::{Decoder, Frame};

fuzz_target!(|input: &[u8]| {
    // The first bytes choose the settings and the chunk sizes; the rest is
    // the stream.
    let Some((&[line, event, flags, step], stream)) = input.split_first_chunk::<4>() else {
        return;
    };
    let max_line = usize::from(line);
    let max_event = usize::from(event);
    let step = usize::from(step).max(1);
    let mut decoder = Decoder::new()
        .with_max_line_len(max_line)
        .with_max_event_len(max_event)
        .with_comments(flags & 1 == 1);
    let mut failed = None;
    for chunk in stream.chunks(step) {
        decoder.feed(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(failed.is_none(), "a frame after an error");
                    match frame {
                        Frame::Event(e) => {
                            assert!(e.data.len() <= max_event);
                            assert!(!e.event.is_empty());
                            assert!(e.event.len() <= 3 * max_line.max(3));
                            assert!(!e.last_event_id.contains('\0'));
                        }
                        Frame::Comment(text) => assert!(text.len() <= 3 * max_line),
                        Frame::LastEventId(id) => assert!(!id.contains('\0')),
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    assert!(failed.is_none() || failed == Some(error));
                    failed = Some(error);
                    break;
                }
            }
        }
    }
});
