//! Reading time on the hit path.
//!
//! One reading of [`FastClock`](pulse_core::clock::FastClock) costs more than
//! a whole hash-map lookup on some machines (virtual machines often trap the
//! time-stamp counter). A cache hit therefore reads a coarse copy of the
//! clock, an atomic that one process-wide ticker thread refreshes every
//! millisecond for all caches. A cache built with an explicit clock (a
//! `ManualClock` in tests) reads that clock directly instead.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::Duration;

use pulse_core::clock::Clock;

/// How often the ticker refreshes the coarse readings.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// The time source of one cache.
#[derive(Clone, Debug)]
pub(crate) enum TimeSource {
    /// Reads the clock on every call.
    Exact(Arc<dyn Clock>),
    /// Reads an atomic that the ticker refreshes.
    Coarse(Arc<CoarseTime>),
}

impl TimeSource {
    /// A coarse reading of `clock`, refreshed every [`TICK`].
    pub(crate) fn coarse(clock: Arc<dyn Clock>) -> Self {
        let coarse = Arc::new(CoarseTime {
            now: AtomicU64::new(clock.now().as_nanos()),
            clock,
        });
        Ticker::register(&coarse);
        TimeSource::Coarse(coarse)
    }

    /// Returns monotonic nanoseconds.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self {
            TimeSource::Coarse(coarse) => coarse.now.load(Ordering::Relaxed),
            TimeSource::Exact(clock) => clock.now().as_nanos(),
        }
    }

    /// Returns the clock behind this source.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        match self {
            TimeSource::Coarse(coarse) => &coarse.clock,
            TimeSource::Exact(clock) => clock,
        }
    }
}

/// A copy of a clock's monotonic reading, at most one tick old.
#[derive(Debug)]
pub(crate) struct CoarseTime {
    now: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl CoarseTime {
    fn refresh(&self) {
        self.now
            .store(self.clock.now().as_nanos(), Ordering::Relaxed);
    }
}

/// The process-wide ticker. Its thread runs while at least one cache holds a
/// coarse time source and exits when the last one is dropped.
struct Ticker {
    sources: Mutex<Vec<Weak<CoarseTime>>>,
    running: AtomicBool,
}

static TICKER: Ticker = Ticker {
    sources: Mutex::new(Vec::new()),
    running: AtomicBool::new(false),
};

impl Ticker {
    fn register(source: &Arc<CoarseTime>) {
        TICKER.lock().push(Arc::downgrade(source));
        if !TICKER.running.swap(true, Ordering::SeqCst) {
            let started = thread::Builder::new()
                .name("pulse-cache-ticker".into())
                .spawn(|| TICKER.run());
            if let Err(err) = started {
                // Without the thread the readings stay frozen, so entries
                // would never expire; say so loudly.
                TICKER.running.store(false, Ordering::SeqCst);
                tracing::error!(target: "pulse_cache", error = %err, "cannot start the clock ticker thread; cache expiry will lag");
            }
        }
    }

    fn run(&self) {
        tracing::debug!(target: "pulse_cache", "clock ticker started");
        loop {
            thread::sleep(TICK);
            let mut sources = self.lock();
            sources.retain(|weak| match weak.upgrade() {
                Some(source) => {
                    source.refresh();
                    true
                }
                None => false,
            });

            // Decide under the lock, so a cache registering now either sees
            // `running` still set or starts a new thread.
            if sources.is_empty() {
                self.running.store(false, Ordering::SeqCst);
                tracing::debug!(target: "pulse_cache", "clock ticker stopped: no cache left");
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<CoarseTime>>> {
        self.sources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
