//! Sans-IO core of ssehub (work in progress).
pub mod codec;
pub mod reconnect;
#[allow(dead_code)]
mod sync;
