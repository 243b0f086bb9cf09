//! The frames the hub writes itself: the `id:` line of published events,
//! the reset event, heartbeats and shutdown frames, and the check that a
//! pre-encoded direct frame cannot disturb the hub-wide order.

use super::Hub;
use crate::codec::encode::{put_decimal, Backwards};
use crate::codec::{comment_frame, Event};
use crate::ClientId;
use bytes::{BufMut, Bytes, BytesMut};

/// Longest `id: <u64>-<u64>\n` line.
pub(super) const ID_FIELD_MAX: usize = 4 + 20 + 1 + 20 + 1;

impl Hub {
    pub(super) fn frame_with_id(&self, seq: u64, body: &[u8]) -> Bytes {
        let mut line = Backwards::<ID_FIELD_MAX>::new();
        line.put(b"\n");
        line.decimal(seq);
        line.put(b"-");
        line.decimal(self.epoch());
        line.put(b"id: ");
        let mut buf = BytesMut::with_capacity(body.len() + ID_FIELD_MAX);
        buf.put_slice(line.as_slice());
        buf.put_slice(body);
        buf.freeze()
    }

    pub(super) fn reset_frame(&self, cut: u64) -> Bytes {
        let mut body = BytesMut::new();
        let event = Event::new("").with_event(self.shared.config.reset_event.clone());
        match event.encode_with_id(None, &mut body) {
            Ok(()) => self.frame_with_id(cut, &body),
            // A reset name with a line break was configured: fall back to
            // the default name rather than send a broken frame.
            Err(_) => self.frame_with_id(cut, b"event: reset\ndata\n\n"),
        }
    }

    pub(super) fn heartbeat_frame(&self) -> Bytes {
        match &self.shared.config.heartbeat_event {
            Some(name) => Event::new("")
                .with_event(name.clone())
                .to_bytes()
                .unwrap_or_else(|_| comment_frame("")),
            None => comment_frame(""),
        }
    }

    pub(super) fn shutdown_frame(&self, id: ClientId, body: &[u8]) -> Bytes {
        let (lo, hi) = self.shared.config.shutdown_retry_window;
        let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
        let span = hi.saturating_sub(lo);
        let jitter = if span == 0 {
            0
        } else {
            splitmix64(id.generation().get() ^ self.epoch()) % (span + 1)
        };
        let mut buf = BytesMut::with_capacity(body.len() + 32);
        buf.put_slice(b"retry: ");
        put_decimal(&mut buf, lo + jitter);
        buf.put_u8(b'\n');
        buf.put_slice(body);
        buf.freeze()
    }
}

/// Checks a pre-encoded direct frame: one or more whole events as the
/// encoder writes them (LF line ends, ending with a blank line), none of
/// whose lines is an `id` field. A frame that set an id would move the
/// client's `Last-Event-ID` outside the hub-wide order (I7); one without
/// its blank line would merge with the next published event.
pub(super) fn check_direct_frame(frame: &[u8]) -> Result<(), &'static str> {
    if frame.is_empty() {
        return Err("empty frame");
    }
    if !(frame == b"\n" || frame.ends_with(b"\n\n")) {
        return Err("a frame must end with a blank line");
    }
    if memchr::memchr(b'\r', frame).is_some() {
        return Err("a frame must use LF line ends");
    }
    let sets_id = frame.split(|&b| b == b'\n').any(|line| {
        line.strip_prefix(b"id")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b':')
    });
    if sets_id {
        return Err("a direct frame must not set an id");
    }
    Ok(())
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::{check_direct_frame, splitmix64, ID_FIELD_MAX};

    #[test]
    fn the_id_field_bound_is_the_longest_id_line() {
        // `frame_with_id` sizes its buffer with it: the longest line must
        // fit, so the frame is written without a reallocation.
        let longest = format!("id: {}-{}\n", u64::MAX, u64::MAX);
        assert_eq!(ID_FIELD_MAX, longest.len());
    }

    #[test]
    fn splitmix64_matches_the_reference_generator() {
        // Vigna's splitmix64.c: seed 0 gives 0xe220a8397b1dcdaf first, and
        // seed 1234567 the sequence below (its state advances by the golden
        // gamma, which `splitmix64` adds to its argument).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        let gamma = 0x9E37_79B9_7F4A_7C15_u64;
        let expected = [
            6_457_827_717_110_365_317,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
        ];
        for (i, want) in (0u64..).zip(expected) {
            assert_eq!(
                splitmix64(1_234_567u64.wrapping_add(gamma.wrapping_mul(i))),
                want
            );
        }
    }

    #[test]
    fn direct_frames_must_be_whole_and_set_no_id() {
        assert!(check_direct_frame(b"retry: 3000\n\n").is_ok());
        assert!(check_direct_frame(b"event: welcome\ndata: {}\n\n").is_ok());
        assert!(check_direct_frame(b":\n\n").is_ok());
        assert!(check_direct_frame(b"data: idle\n\n").is_ok());
        assert!(check_direct_frame(b"data: x\n").is_err());
        assert!(check_direct_frame(b"").is_err());
        assert!(check_direct_frame(b"data: x\r\n\r\n").is_err());
        assert!(check_direct_frame(b"id: 1-9\ndata: x\n\n").is_err());
        assert!(check_direct_frame(b"data: x\nid\n\n").is_err());
        // `identity:` is an unknown field, not `id`.
        assert!(check_direct_frame(b"identity: 1\ndata: x\n\n").is_ok());
    }
}
