//! The ID-generator contract.
//!
//! ID generation is synchronous: it sits on hot paths and must not need a
//! runtime. The trait is object-safe as it stands, so a generator chosen at
//! run time is an `Arc<dyn IdGenerator<Id = u64>>`.
//!
//! # Contract for implementors
//!
//! - One generator never returns the same ID twice, and its IDs never
//!   decrease, whatever the wall clock does.
//! - A generator that cannot issue an ID without breaking that promise (the
//!   clock stepped back too far, its worker-id lease was lost, a
//!   non-blocking call would have to wait) returns a typed error instead:
//!   [`ErrorKind::ClockFault`](crate::error::ErrorKind::ClockFault),
//!   [`ErrorKind::NotOwner`](crate::error::ErrorKind::NotOwner) or
//!   [`ErrorKind::WouldBlock`](crate::error::ErrorKind::WouldBlock).
//! - `try_next_id` never waits; `next_id` may wait for at most about one
//!   tick plus the generator's clock tolerance.
//! - The hot path allocates nothing and takes no lock where an atomic will
//!   do.

use std::fmt::Debug;
use std::sync::Arc;

use crate::error::Result;

/// A source of unique, time-ordered IDs.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use pulse_core::id::IdGenerator;
///
/// struct Counter(AtomicU64);
///
/// impl IdGenerator for Counter {
///     type Id = u64;
///     fn next_id(&self) -> pulse_core::error::Result<u64> {
///         Ok(self.0.fetch_add(1, Ordering::Relaxed))
///     }
/// }
///
/// fn two<G: IdGenerator>(ids: &G) -> (G::Id, G::Id) {
///     (ids.next_id().unwrap(), ids.next_id().unwrap())
/// }
///
/// let counter = Counter(AtomicU64::new(1));
/// assert_eq!(two(&counter), (1, 2));
/// let shared: Arc<dyn IdGenerator<Id = u64>> = Arc::new(counter);
/// assert_eq!(shared.next_id().unwrap(), 3);
/// ```
pub trait IdGenerator: Send + Sync {
    /// The ID type.
    type Id: Copy + Ord + Debug + Send + Sync + 'static;

    /// Issues the next ID. It may wait briefly (for the clock to reach the
    /// next tick, say) where the generator's docs say so.
    fn next_id(&self) -> Result<Self::Id>;

    /// Issues the next ID without waiting. Where [`next_id`](IdGenerator::next_id)
    /// would wait, it fails with
    /// [`ErrorKind::WouldBlock`](crate::error::ErrorKind::WouldBlock).
    ///
    /// The default calls `next_id`, which suits generators that never wait.
    fn try_next_id(&self) -> Result<Self::Id> {
        self.next_id()
    }
}

impl<G: IdGenerator + ?Sized> IdGenerator for Arc<G> {
    type Id = G::Id;

    #[inline]
    fn next_id(&self) -> Result<Self::Id> {
        (**self).next_id()
    }

    #[inline]
    fn try_next_id(&self) -> Result<Self::Id> {
        (**self).try_next_id()
    }
}

impl<G: IdGenerator + ?Sized> IdGenerator for &G {
    type Id = G::Id;

    #[inline]
    fn next_id(&self) -> Result<Self::Id> {
        (**self).next_id()
    }

    #[inline]
    fn try_next_id(&self) -> Result<Self::Id> {
        (**self).try_next_id()
    }
}
