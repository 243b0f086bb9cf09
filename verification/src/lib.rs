//! Verification support for ssehub (in progress).
