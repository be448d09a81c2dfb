//! Distributed building blocks for Rust services: caches, IDs, locks, queues, rate limiters, schedulers.
