//! Waiting for permits: `until_ready` in async code, `until_ready_blocking`
//! on threads.
//!
//! GCRA, the token bucket and both leaky buckets reserve: a waiter moves the
//! limiter's instant forward by its cost at once. That puts it in line
//! behind every earlier waiter (first come, first served), and later `check`
//! calls see the capacity as taken. A waiter cancelled before its turn
//! gives back exactly the cost it reserved when it is the last in line;
//! otherwise, or once its turn has come, the permits stay taken, since
//! others may have counted from them. The window algorithms cannot reserve
//! ahead, so their async waiters take turns through a first-in-first-out
//! queue and poll with the decision's `retry_after`; a cancelled one has
//! reserved nothing.

use std::time::Duration;

use pulse_core::clock::{Clock, MonoTime};

use crate::error::RateLimitError;
use crate::limiter::Limiter;
use crate::policy::Policy;

/// The maximum time a blocking wait sleeps before it reads the clock again,
/// so that it also follows a clock that a test moves.
const BLOCKING_POLL: Duration = Duration::from_millis(5);

/// Gives back a reservation unless it was used.
struct Reservation<'a, P: Policy, C: Clock> {
    limiter: &'a Limiter<P, C>,
    cost: u32,
    ready_at: u64,
    used: bool,
}

impl<P: Policy, C: Clock> Drop for Reservation<'_, P, C> {
    fn drop(&mut self) {
        // Past its ready time the reservation could have been used; keep it.
        if !self.used && self.limiter.clock().now().as_nanos() < self.ready_at {
            self.limiter
                .policy()
                .unreserve(self.limiter.state(), self.ready_at, self.cost);
            tracing::trace!(target: "pulse_ratelimit", cost = self.cost, "cancelled wait gave back its reservation");
        }
    }
}

impl<P: Policy, C: Clock> Limiter<P, C> {
    /// Waits until one permit is available and takes it.
    ///
    /// # Errors
    ///
    /// Never for a cost of one; see [`until_ready_n`](Limiter::until_ready_n).
    pub async fn until_ready(&self) -> Result<(), RateLimitError> {
        self.until_ready_n(1).await
    }

    /// Waits until `cost` permits are available and takes them, first come
    /// first served.
    ///
    /// Cancel-safe: dropping the future before its turn gives back exactly
    /// what it had reserved if no later caller has taken permits since (a
    /// give-back behind them could admit the same permits twice; they stay
    /// taken instead). Sleeping goes through the limiter's clock, so a
    /// [`ManualClock`](pulse_core::clock::ManualClock) wakes it when a test
    /// advances time; other clocks need a tokio runtime with timers.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::CostTooLarge`] when `cost` exceeds the burst, which
    /// no wait can grant.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pulse_core::clock::ManualClock;
    /// use pulse_ratelimit::{Gcra, Quota};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new();
    /// let limiter = Gcra::with_clock(Quota::per_second(1)?, clock.clone());
    /// limiter.until_ready().await?;
    ///
    /// let waiter = limiter.until_ready();
    /// tokio::pin!(waiter);
    /// assert!(futures_poll_once(waiter.as_mut()).is_pending());
    /// clock.advance(Duration::from_secs(1));
    /// waiter.await?;
    /// # Ok::<(), pulse_ratelimit::RateLimitError>(())
    /// # }).unwrap();
    /// # fn futures_poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    /// #     f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    /// # }
    /// ```
    pub async fn until_ready_n(&self, cost: u32) -> Result<(), RateLimitError> {
        self.ensure_admissible(cost)?;
        let now = self.clock().now();
        if let Some(ready_at) = self.policy().reserve(self.state(), now.as_nanos(), cost) {
            let mut reservation = Reservation {
                limiter: self,
                cost,
                ready_at,
                used: false,
            };
            if ready_at > now.as_nanos() {
                self.clock()
                    .sleep_until(MonoTime::from_nanos(ready_at))
                    .await;
            }
            reservation.used = true;
            return Ok(());
        }

        // The tokio mutex queues its waiters in order, which makes the
        // polling waiters first come, first served among themselves.
        let _turn = self.waiters.lock().await;
        loop {
            let decision = self.check_n(cost);
            if decision.allowed {
                return Ok(());
            }
            self.clock().sleep(decision.retry_after).await;
        }
    }

    /// Blocks the thread until one permit is available and takes it.
    ///
    /// # Errors
    ///
    /// Never for a cost of one.
    pub fn until_ready_blocking(&self) -> Result<(), RateLimitError> {
        self.until_ready_blocking_n(1)
    }

    /// Blocks the thread until `cost` permits are available and takes them.
    ///
    /// Reserving algorithms serve blocked threads first come, first served;
    /// for the window algorithms blocked threads poll and the order is not
    /// guaranteed. Do not call it on an async runtime's thread.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::CostTooLarge`] when `cost` exceeds the burst.
    pub fn until_ready_blocking_n(&self, cost: u32) -> Result<(), RateLimitError> {
        self.ensure_admissible(cost)?;
        let now = self.clock().now();
        if let Some(ready_at) = self.policy().reserve(self.state(), now.as_nanos(), cost) {
            self.sleep_blocking_until(ready_at);
            return Ok(());
        }
        loop {
            let decision = self.check_n(cost);
            if decision.allowed {
                return Ok(());
            }
            let deadline = self.clock().now().saturating_add(decision.retry_after);
            self.sleep_blocking_until(deadline.as_nanos());
        }
    }

    fn sleep_blocking_until(&self, deadline: u64) {
        loop {
            let now = self.clock().now().as_nanos();
            if now >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_nanos(deadline - now).min(BLOCKING_POLL));
        }
    }

    fn ensure_admissible(&self, cost: u32) -> Result<(), RateLimitError> {
        let burst = self.quota().burst();
        if cost > burst {
            return Err(RateLimitError::CostTooLarge { cost, burst });
        }
        Ok(())
    }
}
