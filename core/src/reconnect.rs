//! The sans-IO reconnect policy: when and how a client reconnects.
