//! The clock that tests move by hand, re-exported from `pulse_core`.
//!
//! Prefer it to real time: a test that advances a [`ManualClock`] runs in
//! microseconds and cannot flake on a loaded machine.
//!
//! ```
//! use std::time::Duration;
//! use pulse_testkit::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let start = clock.now();
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now().saturating_duration_since(start), Duration::from_secs(90));
//! ```

#[doc(no_inline)]
pub use pulse_core::clock::{Clock, ManualClock, MonoTime, WallTime};
