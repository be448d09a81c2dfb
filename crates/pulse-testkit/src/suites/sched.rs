//! Conformance suite for scheduler job stores: persistence across restarts, one run per slot.
