use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::{self, Thread};
use std::time::{Duration, Instant, SystemTime};

use super::time::duration_nanos;
use super::{Clock, MonoTime, Sleep, WallTime};
use crate::error::ConfigError;

/// A clock read from a cached value that a background thread refreshes,
/// every millisecond by default.
///
/// A reading is one relaxed atomic load (about a nanosecond), where
/// [`FastClock`](super::FastClock) costs a few nanoseconds with an invariant
/// time-stamp counter and 35–40 ns on machines where `quanta` falls back to
/// the operating system's clock (many virtual machines).
///
/// # Precision
///
/// A reading is the time of the last refresh: it lags real time by up to
/// one refresh interval, and by more while the machine is so loaded that the
/// refresh thread is not scheduled. It never runs ahead of real time and
/// never decreases. That suits rate limits and ID timestamps at millisecond
/// granularity: a limiter reads time in steps of the interval, and decides on
/// a reading that is slightly old, so it never admits more than its quota;
/// it does not suit measuring durations shorter than a few intervals.
///
/// The wall reading is the system wall time taken when the clock was created
/// plus the monotonic time elapsed since, like `FastClock`'s: it never steps
/// back and does not follow later NTP adjustments.
///
/// # Cost
///
/// One thread per clock (shared by its clones), which wakes once per
/// interval and reads `Instant::now`. The thread stops within one interval
/// of the last clone being dropped. [`CoarseClock::shared`] hands out
/// clones of one process-wide clock, so that all users share one thread.
///
/// All `CoarseClock` values share one origin, so their [`MonoTime`] readings
/// can be compared with each other. Sleeping uses the tokio timer and needs a
/// tokio runtime with the time driver enabled.
///
/// # Examples
///
/// ```
/// use pulse_core::clock::{Clock, CoarseClock};
///
/// let clock = CoarseClock::shared();
/// let first = clock.now();
/// std::thread::sleep(std::time::Duration::from_millis(5));
/// assert!(clock.now() > first);
/// assert!(clock.wall().as_secs() > 1_600_000_000);
/// ```
#[derive(Clone, Debug)]
pub struct CoarseClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Nanoseconds since [`origin`] at the last refresh.
    nanos: AtomicU64,
    /// Wall time at creation minus the monotonic reading at creation, so
    /// that `wall = wall_offset + nanos`.
    wall_offset: u64,
    interval: Duration,
    /// The refresh thread, woken on drop so that it exits at once.
    thread: OnceLock<Thread>,
    /// Set by the refresh thread when it exits; read by the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    exited: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn elapsed_nanos() -> u64 {
    duration_nanos(origin().elapsed())
}

impl CoarseClock {
    /// The refresh interval of [`CoarseClock::new`] and [`CoarseClock::shared`].
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(1);

    /// The shortest refresh interval [`CoarseClock::with_interval`] accepts.
    pub const MIN_INTERVAL: Duration = Duration::from_micros(100);

    /// Creates a clock with its own refresh thread, refreshed every
    /// millisecond.
    ///
    /// Prefer [`CoarseClock::shared`] unless the clock needs a private
    /// thread.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot start a thread, like
    /// `std::thread::spawn`.
    pub fn new() -> Self {
        Self::start(Self::DEFAULT_INTERVAL)
    }

    /// Creates a clock refreshed every `interval`.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] for an interval shorter than 100 µs, which
    /// would keep a core busy for little gain.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot start a thread, like
    /// `std::thread::spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pulse_core::clock::CoarseClock;
    ///
    /// let clock = CoarseClock::with_interval(Duration::from_micros(500))?;
    /// assert_eq!(clock.interval(), Duration::from_micros(500));
    /// assert!(CoarseClock::with_interval(Duration::from_micros(10)).is_err());
    /// # Ok::<(), pulse_core::error::ConfigError>(())
    /// ```
    pub fn with_interval(interval: Duration) -> Result<Self, ConfigError> {
        if interval < Self::MIN_INTERVAL {
            return Err(ConfigError::new(
                "coarse clock refresh interval",
                format!("{interval:?}"),
                "use an interval of at least 100 µs",
            ));
        }
        Ok(Self::start(interval))
    }

    /// Returns a handle to the process-wide clock, refreshed every
    /// millisecond.
    ///
    /// Every handle alive at the same time shares one refresh thread. The
    /// thread stops when the last handle is dropped, and the next call
    /// starts a new one.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot start a thread, like
    /// `std::thread::spawn`.
    pub fn shared() -> Self {
        static SHARED: Mutex<Weak<Inner>> = Mutex::new(Weak::new());

        // A panic while the lock was held cannot leave the Weak half
        // written, so a poisoned lock is still usable.
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(inner) = shared.upgrade() {
            return CoarseClock { inner };
        }
        let clock = Self::start(Self::DEFAULT_INTERVAL);
        *shared = Arc::downgrade(&clock.inner);
        clock
    }

    /// Returns how often the cached reading is refreshed.
    pub fn interval(&self) -> Duration {
        self.inner.interval
    }

    fn start(interval: Duration) -> Self {
        let nanos = elapsed_nanos();
        let wall = WallTime::from_system_time(SystemTime::now()).as_nanos();
        let exited = Arc::new(AtomicBool::new(false));
        let inner = Arc::new(Inner {
            nanos: AtomicU64::new(nanos),
            wall_offset: wall.saturating_sub(nanos),
            interval,
            thread: OnceLock::new(),
            exited: Arc::clone(&exited),
        });

        // The thread holds only a Weak, so that dropping the last handle
        // ends it: no thread outlives its clock.
        let weak = Arc::downgrade(&inner);
        let wall_offset = inner.wall_offset;
        let handle = thread::Builder::new()
            .name("pulse-coarse-clock".into())
            .spawn(move || refresh(weak, interval, wall_offset, exited))
            .expect("failed to start the coarse clock's refresh thread");
        let _ = inner.thread.set(handle.thread().clone());
        tracing::debug!(target: "pulse_core", ?interval, "coarse clock started");
        CoarseClock { inner }
    }

    /// Returns the flag the refresh thread sets when it exits (tests only).
    #[cfg(test)]
    fn exit_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.inner.exited)
    }
}

/// Stores the elapsed time once per interval until the clock is dropped.
fn refresh(clock: Weak<Inner>, interval: Duration, wall_offset: u64, exited: Arc<AtomicBool>) {
    let step = duration_nanos(interval).max(1);
    loop {
        let nanos = elapsed_nanos();
        match clock.upgrade() {
            // One writer and a monotonic source: a plain store keeps the
            // readings monotonic.
            Some(inner) => inner.nanos.store(nanos, Ordering::Relaxed),
            None => break,
        }

        // Wake when the wall reading crosses the next multiple of the
        // interval rather than one interval after this wake-up. Late
        // wake-ups then do not add up, and with a 1 ms interval every wall
        // millisecond gets a reading unless a wake-up is more than 1 ms
        // late, so an ID generator that fills each millisecond's sequence
        // skips no millisecond.
        let wall = wall_offset.saturating_add(nanos);
        let next_wall = (wall / step).saturating_add(1).saturating_mul(step);
        let next = next_wall.saturating_sub(wall_offset);
        let wait = next.saturating_sub(elapsed_nanos());

        // Drop unparks the thread, so that it exits at once rather than
        // after a long interval. A spurious wake only refreshes early.
        thread::park_timeout(Duration::from_nanos(wait));
    }
    exited.store(true, Ordering::Release);
    tracing::debug!(target: "pulse_core", "coarse clock stopped");
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::shared()
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> MonoTime {
        MonoTime::from_nanos(self.inner.nanos.load(Ordering::Relaxed))
    }

    #[inline]
    fn wall(&self) -> WallTime {
        WallTime::from_nanos(
            self.inner
                .wall_offset
                .saturating_add(self.inner.nanos.load(Ordering::Relaxed)),
        )
    }

    fn sleep_until(&self, deadline: MonoTime) -> Sleep {
        let clock = self.clone();
        Box::pin(async move {
            // The reading lags real time, so the first sleep may end before
            // the cached value reaches the deadline: loop until it has.
            loop {
                let now = clock.now();
                if now >= deadline {
                    return;
                }
                tokio::time::sleep(deadline - now).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits up to ten seconds for `done`, polling every millisecond.
    fn wait_for(done: impl Fn() -> bool) -> bool {
        let give_up = Instant::now() + Duration::from_secs(10);
        while Instant::now() < give_up {
            if done() {
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        done()
    }

    #[test]
    fn readings_never_decrease() {
        let clock = CoarseClock::new();
        let mut last = clock.now();
        let mut last_wall = clock.wall();
        for _ in 0..200_000 {
            let now = clock.now();
            let wall = clock.wall();
            assert!(now >= last, "{now:?} < {last:?}");
            assert!(wall >= last_wall);
            last = now;
            last_wall = wall;
        }
    }

    #[test]
    fn readings_advance_and_never_run_ahead() {
        let clock = CoarseClock::new();
        let first = clock.now();
        assert!(wait_for(|| clock.now() > first));

        // The reading is the elapsed time at the last refresh, never later
        // than the elapsed time now.
        let reading = clock.now();
        assert!(reading.as_nanos() <= elapsed_nanos());

        let wall = clock.wall();
        let system = WallTime::from_system_time(SystemTime::now());
        assert!(system.saturating_duration_since(wall) < Duration::from_secs(5));
    }

    #[test]
    fn thread_stops_after_last_handle_drops() {
        let clock = CoarseClock::with_interval(Duration::from_secs(60)).unwrap();
        let copy = clock.clone();
        let exited = clock.exit_flag();
        drop(clock);
        thread::sleep(Duration::from_millis(5));
        assert!(!exited.load(Ordering::Acquire), "a clone is still alive");

        // The interval is a minute: only the wake-up from Drop ends the
        // thread within the bounded wait.
        drop(copy);
        assert!(wait_for(|| exited.load(Ordering::Acquire)));
    }

    #[test]
    fn shared_hands_out_one_clock() {
        let first = CoarseClock::shared();
        let second = CoarseClock::shared();
        assert!(Arc::ptr_eq(&first.inner, &second.inner));
        assert_eq!(first.interval(), CoarseClock::DEFAULT_INTERVAL);
    }

    #[test]
    fn short_interval_is_rejected() {
        let err = CoarseClock::with_interval(Duration::from_micros(99)).unwrap_err();
        assert_eq!(err.field(), "coarse clock refresh interval");
        assert_eq!(err.value(), "99µs");
        assert!(CoarseClock::with_interval(Duration::ZERO).is_err());
        assert!(CoarseClock::with_interval(CoarseClock::MIN_INTERVAL).is_ok());
    }

    #[tokio::test]
    async fn sleep_reaches_the_deadline() {
        let clock = CoarseClock::new();
        let deadline = clock.now() + Duration::from_millis(20);
        clock.sleep_until(deadline).await;
        assert!(clock.now() >= deadline);
    }
}
