//! Why a client was closed: the one vocabulary shared by the hub, its
//! queues, its errors and its metrics.
//!
//! It lives below all of them, so none has to reach up into the hub for it.

use std::fmt;

/// Why a client was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The transport went away (response body dropped, socket closed).
    ClientGone,
    /// Writing to the transport failed.
    WriteError,
    /// The queue was non-empty with no flush progress for the stall timeout.
    WriteStalled,
    /// No flush was reported for the idle timeout.
    IdleTimeout,
    /// The queue was full; the client should reconnect and replay.
    SlowConsumer,
    /// The server decided to disconnect the client.
    Kicked,
    /// The hub shut down.
    Shutdown,
}

impl CloseReason {
    /// How many reasons there are.
    pub const COUNT: usize = 7;
    /// Every reason, in a fixed order.
    pub const ALL: [CloseReason; Self::COUNT] = [
        Self::ClientGone,
        Self::WriteError,
        Self::WriteStalled,
        Self::IdleTimeout,
        Self::SlowConsumer,
        Self::Kicked,
        Self::Shutdown,
    ];

    /// A stable snake_case name (for logs and metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientGone => "client_gone",
            Self::WriteError => "write_error",
            Self::WriteStalled => "write_stalled",
            Self::IdleTimeout => "idle_timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::Kicked => "kicked",
            Self::Shutdown => "shutdown",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
