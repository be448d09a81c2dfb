//! Conformance suite for rate limiters: admission bounds, exact retry-after, no over-admission under concurrency.
