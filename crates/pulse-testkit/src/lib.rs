//! Conformance suites, fault injection and service helpers for testing gopulse backends.
