//! The `text/event-stream` wire format, both ways, with no IO.
//!
//! - [`encode`]: [`Event`] → bytes. Rejects what cannot be represented
//!   (CR/LF in `event` or `id`, NUL in `id`) with a typed [`EncodeError`]
//!   instead of emitting a frame a client would parse differently.
//! - [`decode`]: bytes → events, incrementally, following the WHATWG HTML
//!   "server-sent events" parsing rules.
//!
//! Invariant: for every `Event` that [`Event::validate`] accepts, decoding its
//! encoding (in any chunking) yields the same `id`, `event`, `data` and
//! `retry`.

pub mod decode;
pub mod encode;

pub use decode::{DecodeError, Decoder, Frame, Frames, MessageEvent};
pub use encode::{comment_frame, EncodeError, Event};
