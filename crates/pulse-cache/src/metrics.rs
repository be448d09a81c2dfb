//! Metrics through the `metrics` facade.
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `pulse_cache_remote_calls_total` | counter | `op`, `outcome` (`ok`, `error`) |
//! | `pulse_cache_invalidations_total` | counter | `kind` (`key`, `all`, `interrupted`, `closed`) |
//! | `pulse_cache_loads_total` | counter | `outcome` (`ok`, `error`) |

use pulse_core::cache::Invalidation;

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

#[cfg(feature = "redis")]
pub(crate) fn remote_call(op: &'static str, ok: bool) {
    metrics::counter!("pulse_cache_remote_calls_total", "op" => op, "outcome" => outcome(ok))
        .increment(1);
}

pub(crate) fn invalidation(event: &Option<Invalidation>) {
    let kind = match event {
        Some(Invalidation::Key(_)) => "key",
        Some(Invalidation::All) => "all",
        Some(Invalidation::Interrupted) => "interrupted",
        None => "closed",
    };
    metrics::counter!("pulse_cache_invalidations_total", "kind" => kind).increment(1);
}

pub(crate) fn load(ok: bool) {
    metrics::counter!("pulse_cache_loads_total", "outcome" => outcome(ok)).increment(1);
}
