//! Counting unsettled deliveries, for the drain of a subscriber's close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pulse_core::clock::Clock;
use tokio::sync::Notify;

/// Counts the deliveries a subscriber handed out and not yet settled or
/// dropped.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    unsettled: AtomicUsize,
    settled: Notify,
}

impl Tracker {
    /// Records a delivery handed out.
    pub(crate) fn start(&self) {
        self.unsettled.fetch_add(1, Ordering::AcqRel);
    }

    /// Records a delivery settled or dropped.
    pub(crate) fn done(&self) {
        if self.unsettled.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// Waits until every delivery handed out is settled, for at most
    /// `timeout`. Returns how many were still unsettled.
    pub(crate) async fn drain(&self, clock: &dyn Clock, timeout: Duration) -> usize {
        let settled = async {
            loop {
                let notified = self.settled.notified();
                if self.unsettled.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::select! {
            () = settled => 0,
            () = clock.sleep(timeout) => {
                let left = self.unsettled.load(Ordering::Acquire);
                tracing::warn!(target: "pulse_mq", unsettled = left, "subscriber closed with unsettled deliveries; they are redelivered after the visibility timeout");
                left
            }
        }
    }
}
