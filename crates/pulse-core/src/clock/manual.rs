use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::time::duration_nanos;
use super::{Clock, MonoTime, Sleep, WallTime};

/// A clock that moves only when a test moves it.
///
/// Clones share one timeline. [`advance`](ManualClock::advance) moves the
/// monotonic and the wall reading together and wakes every sleeper whose
/// deadline has been reached. The wall reading can also be stepped on its
/// own, backwards or forwards, to simulate an NTP step or a suspend, while the
/// monotonic reading never decreases.
///
/// The monotonic reading starts at zero and the wall reading at
/// 2026-01-01T00:00:00Z unless [`with_wall`](ManualClock::with_wall) says
/// otherwise. Sleeping needs no runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_core::clock::{Clock, ManualClock, WallTime};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = ManualClock::new();
/// let sleeper = tokio::spawn({
///     let clock = clock.clone();
///     async move { clock.sleep(Duration::from_secs(30)).await }
/// });
///
/// // Let the task register its sleep, then move time past its deadline.
/// while clock.sleeper_count() == 0 {
///     tokio::task::yield_now().await;
/// }
/// clock.advance(Duration::from_secs(30));
/// sleeper.await.unwrap();
///
/// // The wall clock can step back on its own; the monotonic one cannot.
/// let before = clock.now();
/// clock.step_wall_back(Duration::from_secs(5));
/// assert_eq!(clock.now(), before);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    mono: AtomicU64,
    wall: AtomicU64,
    sleepers: Mutex<Sleepers>,
}

#[derive(Debug, Default)]
struct Sleepers {
    next_id: u64,
    by_deadline: BTreeMap<(u64, u64), Waker>,
}

/// 2026-01-01T00:00:00Z, the default wall reading of a new manual clock.
const DEFAULT_WALL: WallTime = WallTime::from_secs(1_767_225_600);

impl ManualClock {
    /// Creates a clock at monotonic zero and wall time 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::with_wall(DEFAULT_WALL)
    }

    /// Creates a clock at monotonic zero and the given wall time.
    pub fn with_wall(wall: WallTime) -> Self {
        ManualClock {
            inner: Arc::new(Inner {
                mono: AtomicU64::new(0),
                wall: AtomicU64::new(wall.as_nanos()),
                sleepers: Mutex::new(Sleepers::default()),
            }),
        }
    }

    /// Moves both readings forward by `duration` and wakes the sleepers whose
    /// deadline has been reached.
    pub fn advance(&self, duration: Duration) {
        let nanos = duration_nanos(duration);
        self.step_wall_forward(duration);
        self.advance_monotonic_nanos(nanos);
    }

    /// Moves only the monotonic reading forward, as when the wall clock is
    /// held still, and wakes the sleepers whose deadline has been reached.
    pub fn advance_monotonic(&self, duration: Duration) {
        self.advance_monotonic_nanos(duration_nanos(duration));
    }

    /// Steps the wall reading back by `duration` (saturating at the epoch),
    /// as an NTP correction would. The monotonic reading does not move.
    pub fn step_wall_back(&self, duration: Duration) {
        let nanos = duration_nanos(duration);
        let _ = self
            .inner
            .wall
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |wall| {
                Some(wall.saturating_sub(nanos))
            });
    }

    /// Steps the wall reading forward by `duration`, as an NTP correction or
    /// a suspend would. The monotonic reading does not move.
    pub fn step_wall_forward(&self, duration: Duration) {
        let nanos = duration_nanos(duration);
        let _ = self
            .inner
            .wall
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |wall| {
                Some(wall.saturating_add(nanos))
            });
    }

    /// Sets the wall reading, in either direction. The monotonic reading does
    /// not move.
    pub fn set_wall(&self, wall: WallTime) {
        self.inner.wall.store(wall.as_nanos(), Ordering::SeqCst);
    }

    /// Returns how many sleep futures are waiting on this clock, so that a
    /// test can wait until a task has gone to sleep before it advances time.
    pub fn sleeper_count(&self) -> usize {
        self.sleepers().by_deadline.len()
    }

    /// Returns the earliest deadline any sleeper waits for, if one does.
    pub fn next_deadline(&self) -> Option<MonoTime> {
        self.sleepers()
            .by_deadline
            .keys()
            .next()
            .map(|&(deadline, _)| MonoTime::from_nanos(deadline))
    }

    fn advance_monotonic_nanos(&self, nanos: u64) {
        let previous = self
            .inner
            .mono
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |mono| {
                Some(mono.saturating_add(nanos))
            })
            .unwrap_or_else(|mono| mono);
        let now = previous.saturating_add(nanos);

        // The new reading is stored before the lock is taken, and a sleeper
        // checks the reading under the lock, so no wake-up is missed.
        let due: Vec<Waker> = {
            let mut sleepers = self.sleepers();
            let later = sleepers.by_deadline.split_off(&(now.saturating_add(1), 0));
            let due = std::mem::replace(&mut sleepers.by_deadline, later);
            due.into_values().collect()
        };
        for waker in due {
            waker.wake();
        }
    }

    fn sleepers(&self) -> MutexGuard<'_, Sleepers> {
        // A panic while the lock is held cannot leave the map inconsistent,
        // so a poisoned lock is still usable.
        self.inner
            .sleepers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> MonoTime {
        MonoTime::from_nanos(self.inner.mono.load(Ordering::SeqCst))
    }

    #[inline]
    fn wall(&self) -> WallTime {
        WallTime::from_nanos(self.inner.wall.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, deadline: MonoTime) -> Sleep {
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline: deadline.as_nanos(),
            id: None,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: u64,
    id: Option<u64>,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut sleepers = this.clock.sleepers();

        if this.clock.inner.mono.load(Ordering::SeqCst) >= this.deadline {
            if let Some(id) = this.id.take() {
                sleepers.by_deadline.remove(&(this.deadline, id));
            }
            return Poll::Ready(());
        }

        let id = *this.id.get_or_insert_with(|| {
            sleepers.next_id += 1;
            sleepers.next_id
        });
        sleepers
            .by_deadline
            .insert((this.deadline, id), cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.clock
                .sleepers()
                .by_deadline
                .remove(&(self.deadline, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn poll_once(sleep: &mut Sleep, flag: &Arc<Flag>) -> Poll<()> {
        let waker = Waker::from(flag.clone());
        sleep.as_mut().poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn sleep_wakes_on_advance() {
        let clock = ManualClock::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut sleep = clock.sleep(Duration::from_millis(10));

        assert!(poll_once(&mut sleep, &flag).is_pending());
        assert_eq!(clock.sleeper_count(), 1);

        clock.advance(Duration::from_millis(9));
        assert!(!flag.0.load(Ordering::SeqCst));

        clock.advance(Duration::from_millis(1));
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(poll_once(&mut sleep, &flag).is_ready());
        assert_eq!(clock.sleeper_count(), 0);
    }

    #[test]
    fn dropped_sleep_unregisters() {
        let clock = ManualClock::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut sleep = clock.sleep(Duration::from_secs(1));
        assert!(poll_once(&mut sleep, &flag).is_pending());
        drop(sleep);
        assert_eq!(clock.sleeper_count(), 0);
    }

    #[test]
    fn repolling_registers_once() {
        let clock = ManualClock::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut sleep = clock.sleep(Duration::from_secs(1));
        for _ in 0..5 {
            assert!(poll_once(&mut sleep, &flag).is_pending());
        }
        assert_eq!(clock.sleeper_count(), 1);
        assert_eq!(
            clock.next_deadline(),
            Some(MonoTime::from_nanos(1_000_000_000))
        );
    }

    #[test]
    fn past_deadline_is_ready() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(5));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut sleep = clock.sleep_until(MonoTime::from_nanos(1));
        assert!(poll_once(&mut sleep, &flag).is_ready());
    }

    #[test]
    fn wall_steps_leave_monotonic_alone() {
        let clock = ManualClock::new();
        let wall = clock.wall();
        clock.step_wall_back(Duration::from_secs(3));
        assert_eq!(clock.wall(), wall.saturating_sub(Duration::from_secs(3)));
        assert_eq!(clock.now(), MonoTime::ZERO);

        clock.step_wall_forward(Duration::from_secs(10));
        assert_eq!(clock.wall(), wall.saturating_add(Duration::from_secs(7)));

        clock.advance_monotonic(Duration::from_secs(1));
        assert_eq!(clock.wall(), wall.saturating_add(Duration::from_secs(7)));
        assert_eq!(clock.now(), MonoTime::from_nanos(1_000_000_000));
    }

    #[test]
    fn advance_saturates() {
        let clock = ManualClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), MonoTime::MAX);
        assert_eq!(clock.wall(), WallTime::from_nanos(u64::MAX));
    }

    #[test]
    fn clones_share_time() {
        let clock = ManualClock::new();
        let other = clock.clone();
        clock.advance(Duration::from_secs(2));
        assert_eq!(other.now(), MonoTime::from_nanos(2_000_000_000));
    }
}
