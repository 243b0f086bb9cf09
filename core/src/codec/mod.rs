//! The `text/event-stream` wire format, both ways, with no IO.
//!
//! - [`encode`]: [`Event`] → bytes. Rejects what cannot be represented
//!   (CR/LF in `event` or `id`, NUL in `id`) with a typed [`EncodeError`]
//!   instead of emitting a frame a client would parse differently.
//! - [`decode`]: bytes → events, incrementally, following the WHATWG HTML
//!   "server-sent events" parsing rules.
//!
//! Invariant (round trip): for every [`Event`] that [`Event::validate`]
//! accepts, feeding its encoding to a [`Decoder`] in any chunking yields
//! - a [`Frame::Comment`] per comment line (when comments are on),
//! - a [`Frame::Retry`] with the `retry` in whole milliseconds,
//! - then, if it has data, a [`Frame::Event`] with that data (CRLF and CR
//!   turned into LF), its `event` name (`"message"` if unset or empty) and
//!   its `id` as `last_event_id` (or the stream's previous id if unset);
//!   without data, a [`Frame::LastEventId`] if it changed the id.
//!
//! `core/tests/codec_roundtrip.rs` checks this with proptest.

pub mod decode;
pub mod encode;

pub use decode::{
    DecodeError, Decoder, Frame, Frames, MessageEvent, DEFAULT_MAX_EVENT_LEN, DEFAULT_MAX_LINE_LEN,
};
pub use encode::{comment_frame, welcome_frame, EncodeError, Event};
