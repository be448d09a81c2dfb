//! Conformance suite for cache stores: set, get and delete with TTL, codec round trips, invalidations.
