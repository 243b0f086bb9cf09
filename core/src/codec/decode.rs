//! The incremental decoder (WHATWG HTML "server-sent events" parsing rules).
