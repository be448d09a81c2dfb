//! Conformance suite for locks: mutual exclusion checked by fencing tokens, expiry, lost signals.
