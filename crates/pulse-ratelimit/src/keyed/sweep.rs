//! The background thread that drops idle keys.

use std::hash::Hash;
use std::sync::Weak;
use std::time::{Duration, Instant};

use pulse_core::clock::Clock;
use pulse_core::error::Error;
use pulse_core::task::Background;

use super::Shared;
use crate::policy::Policy;

/// How often the sweep thread checks its stop signal while it waits.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Starts the sweep thread. It holds only a weak reference, so the limiter
/// can be dropped while it sleeps; it exits at its next check after that.
pub(super) fn start<K, P, C>(
    background: &Background,
    shared: Weak<Shared<K, P, C>>,
    interval: Duration,
) -> Result<(), Error>
where
    K: Hash + Eq + Send + Sync + 'static,
    P: Policy,
    C: Clock,
{
    background.spawn_thread("sweep", move |stop| {
        // Real time paces the sweep; the limiter's own clock decides which
        // keys are idle, so a manual clock in tests still works.
        // An interval too long for `Instant` means no sweep at all, never a
        // panic that ends the thread.
        let mut next = Instant::now().checked_add(interval);
        while !stop.is_fired() {
            let now = Instant::now();
            match next {
                Some(at) if now >= at => {}
                Some(at) => {
                    std::thread::sleep((at - now).min(STOP_CHECK));
                    continue;
                }
                None => {
                    std::thread::sleep(STOP_CHECK);
                    continue;
                }
            }
            let Some(shared) = shared.upgrade() else {
                break;
            };
            let dropped = shared.sweep();
            drop(shared);
            if dropped > 0 {
                tracing::trace!(target: "pulse_ratelimit", dropped, "dropped idle keys");
            }
            next = Instant::now().checked_add(interval);
        }
        tracing::debug!(target: "pulse_ratelimit", "keyed limiter sweep stopped");
    })
}
