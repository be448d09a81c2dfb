//! Conformance suite for cache stores: set, get and delete with TTL, byte
//! values intact, many keys in one call, and typed errors for bad input.
//!
//! A backend describes itself with a [`CacheSetup`] and runs [`run_all`],
//! or the checks one by one. Every check uses keys of its own under the
//! setup's prefix, so checks may share a server and run in parallel.
//!
//! | check | what it promises |
//! | --- | --- |
//! | [`set_get_delete`] | a written value is read back, a deleted one is gone, and `delete` returns whether it was there |
//! | [`overwrite`] | the last write wins |
//! | [`values_round_trip`] | empty, binary and large values come back byte for byte |
//! | [`get_many_in_order`] | `get_many` answers in the order of the keys, `None` for missing ones |
//! | [`ttl_expires`] | a value written with a TTL disappears once it passed, and one without stays |
//! | [`rejects_zero_ttl`] | a TTL of zero is refused with an invalid-input error, not stored |
//!
//! The near-cache promises (no value served after its invalidation was
//! processed, no racing fetch kept, bounded staleness) need two instances
//! and a shared server; `pulse-cache` checks them in its own tests.
//!
//! The checks panic with a message naming the backend and the broken
//! promise, as test assertions do. The TTL check waits real time, with a
//! bound generous enough for a loaded machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_core::cache::{CacheStore, DynCacheStore};
use pulse_core::error::ErrorKind;

/// A cache store under test.
#[derive(Clone)]
pub struct CacheSetup {
    /// A short name for failure messages ("local", "redis", "near").
    pub name: String,
    /// The store.
    pub store: Arc<dyn DynCacheStore>,
    /// A prefix for this run's keys.
    pub prefix: String,
    /// The TTL of the expiry check: long enough for one round trip on a
    /// loaded machine, short enough to wait out.
    pub short_ttl: Duration,
    /// How long after the TTL the value may still be visible (a near cache
    /// learns of remote expiry through its invalidation stream).
    pub expiry_slack: Duration,
}

impl CacheSetup {
    /// Describes a store with defaults: a short TTL of 200 ms and 5 s of
    /// slack for the expiry to show.
    pub fn new(
        name: impl Into<String>,
        store: Arc<dyn DynCacheStore>,
        prefix: impl Into<String>,
    ) -> Self {
        CacheSetup {
            name: name.into(),
            store,
            prefix: prefix.into(),
            short_ttl: Duration::from_millis(200),
            expiry_slack: Duration::from_secs(5),
        }
    }

    fn key(&self, check: &str) -> String {
        format!("{}:{check}", self.prefix)
    }

    fn store(&self) -> &dyn DynCacheStore {
        &*self.store
    }
}

/// Runs every check in turn.
pub async fn run_all(setup: &CacheSetup) {
    set_get_delete(setup).await;
    overwrite(setup).await;
    values_round_trip(setup).await;
    get_many_in_order(setup).await;
    ttl_expires(setup).await;
    rejects_zero_ttl(setup).await;
}

/// Checks that a written value is read back and a deleted one is gone.
pub async fn set_get_delete(setup: &CacheSetup) {
    let name = &setup.name;
    let store = setup.store();
    let key = setup.key("set-get-delete");

    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "{name}: a fresh key must be empty"
    );
    store
        .set(&key, Bytes::from_static(b"v1"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"v1"[..]),
        "{name}: a written value must be read back"
    );
    assert!(
        store.delete(&key).await.unwrap(),
        "{name}: delete of a present key must say true"
    );
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "{name}: a deleted key must be gone"
    );
    assert!(
        !store.delete(&key).await.unwrap(),
        "{name}: delete of a missing key must say false"
    );
}

/// Checks that the last write wins.
pub async fn overwrite(setup: &CacheSetup) {
    let name = &setup.name;
    let store = setup.store();
    let key = setup.key("overwrite");

    store
        .set(&key, Bytes::from_static(b"first"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    store
        .set(&key, Bytes::from_static(b"second"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"second"[..]),
        "{name}: a read after an overwrite must see the new value"
    );
    store.delete(&key).await.unwrap();
}

/// Checks that empty, binary and large values come back byte for byte.
pub async fn values_round_trip(setup: &CacheSetup) {
    let name = &setup.name;
    let store = setup.store();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..256 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let cases = [
        ("empty", Vec::new()),
        ("binary", all_bytes),
        ("large", large),
    ];

    for (case, value) in cases {
        let key = setup.key(&format!("round-trip-{case}"));
        store
            .set(&key, Bytes::from(value.clone()), None)
            .await
            .unwrap();
        let read = store.get(&key).await.unwrap();
        assert_eq!(
            read.as_deref(),
            Some(value.as_slice()),
            "{name}: the {case} value must come back unchanged"
        );
        store.delete(&key).await.unwrap();
    }
}

/// Checks that `get_many` returns values in the order of the keys.
pub async fn get_many_in_order(setup: &CacheSetup) {
    let name = &setup.name;
    let store = setup.store();
    let keys: Vec<String> = (0..5).map(|i| setup.key(&format!("many-{i}"))).collect();
    for (i, key) in keys.iter().enumerate() {
        if i % 2 == 0 {
            store
                .set(key, Bytes::from(format!("value-{i}")), None)
                .await
                .unwrap();
        }
    }

    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = store.get_many(&refs).await.unwrap();
    assert_eq!(values.len(), keys.len(), "{name}: one answer per key");
    for (i, value) in values.iter().enumerate() {
        let expected = (i % 2 == 0).then(|| format!("value-{i}"));
        assert_eq!(
            value.as_deref(),
            expected.as_deref().map(str::as_bytes),
            "{name}: answer {i} of get_many is out of place"
        );
    }
    assert!(
        store.get_many(&[]).await.unwrap().is_empty(),
        "{name}: no keys, no answers"
    );
    for key in &keys {
        store.delete(key).await.unwrap();
    }
}

/// Checks that a value with a TTL disappears once it passed and one
/// without stays.
pub async fn ttl_expires(setup: &CacheSetup) {
    let name = &setup.name;
    let store = setup.store();
    let short = setup.key("ttl-short");
    let kept = setup.key("ttl-none");

    store
        .set(&short, Bytes::from_static(b"brief"), Some(setup.short_ttl))
        .await
        .unwrap();
    store
        .set(&kept, Bytes::from_static(b"kept"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get(&short).await.unwrap().as_deref(),
        Some(&b"brief"[..]),
        "{name}: a value must be visible before its TTL"
    );

    tokio::time::sleep(setup.short_ttl).await;
    let deadline = Instant::now() + setup.expiry_slack;
    while store.get(&short).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "{name}: a value was still visible {:?} after its TTL of {:?}",
            setup.expiry_slack,
            setup.short_ttl
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.get(&kept).await.unwrap().as_deref(),
        Some(&b"kept"[..]),
        "{name}: a value without TTL must stay"
    );
    store.delete(&kept).await.unwrap();
}

/// Checks that a TTL of zero is rejected and nothing is stored.
pub async fn rejects_zero_ttl(setup: &CacheSetup) {
    let name = &setup.name;
    let store = setup.store();
    let key = setup.key("zero-ttl");

    let err = store
        .set(&key, Bytes::from_static(b"v"), Some(Duration::ZERO))
        .await
        .expect_err("a TTL of zero must be refused");
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "{name}: wrong kind for a zero TTL: {err}"
    );
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "{name}: a refused write must store nothing"
    );
}
