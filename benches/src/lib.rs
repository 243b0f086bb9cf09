//! Benchmarks and baselines for ssehub (in progress).
