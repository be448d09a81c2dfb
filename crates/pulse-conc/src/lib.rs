//! Worker pools, task groups, single-flight, circuit breaker, bulkhead and retry.
