//! Where segment ranges come from.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::error::Result;

/// A store that reserves ranges of IDs, one round trip per range.
///
/// # Contract for implementors
///
/// - `reserve(name, count)` returns the first ID of a range of `count` IDs
///   that no earlier or concurrent call for `name` returned, from any
///   process. Ranges of one name increase: a later call returns a larger
///   first ID.
/// - IDs start at 1, so 0 is never issued.
/// - A failed call may still have reserved the range; the IDs are then
///   skipped, never handed out twice.
pub trait SegmentSource: Send + Sync + 'static {
    /// Reserves `count` IDs for `name` and returns the first.
    fn reserve(&self, name: &str, count: u64) -> impl Future<Output = Result<u64>> + Send;

    /// Returns the backend name for logs, such as `memory` or `redis`.
    fn backend(&self) -> &'static str;
}

/// An in-process source: a counter per name, for tests and single-process
/// services.
///
/// # Examples
///
/// ```
/// use pulse_id::{MemorySource, SegmentSource};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let source = MemorySource::new();
/// assert_eq!(source.reserve("orders", 100).await.unwrap(), 1);
/// assert_eq!(source.reserve("orders", 100).await.unwrap(), 101);
/// # });
/// ```
#[derive(Debug, Default)]
pub struct MemorySource {
    next: Mutex<HashMap<String, u64>>,
}

impl MemorySource {
    /// Creates a source whose names all start at 1.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SegmentSource for MemorySource {
    async fn reserve(&self, name: &str, count: u64) -> Result<u64> {
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counter = next.entry(name.to_owned()).or_insert(1);
        let first = *counter;
        *counter = counter.saturating_add(count);
        Ok(first)
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
