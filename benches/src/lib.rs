//! Criterion benchmarks of gopulse against its peer crates; see `benches/`.
