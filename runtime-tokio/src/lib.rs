//! Tokio adapter for ssehub (in progress).
