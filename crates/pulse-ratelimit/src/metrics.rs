//! Allowed and rejected counters through the `metrics` facade.

use metrics::{Counter, counter};
use pulse_core::ratelimit::Decision;

/// The counter handles of one limiter, registered once so that a decision
/// costs one atomic add in the recorder, not a registry lookup.
#[derive(Clone)]
pub(crate) struct Counters {
    allowed: Counter,
    rejected: Counter,
}

impl Counters {
    pub(crate) fn new(name: &'static str, algorithm: &'static str) -> Self {
        Counters {
            allowed: counter!("pulse_ratelimit_allowed_total", "limiter" => name, "algorithm" => algorithm),
            rejected: counter!("pulse_ratelimit_rejected_total", "limiter" => name, "algorithm" => algorithm),
        }
    }

    #[inline]
    pub(crate) fn record(&self, decision: &Decision) {
        if decision.allowed {
            self.allowed.increment(1);
        } else {
            self.rejected.increment(1);
        }
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counters")
    }
}
