//! Lease settings that would panic, spin on the store, or lose the lease
//! between two renewals are typed errors naming the field.

use std::time::Duration;

use pulse_core::clock::ManualClock;
use pulse_core::error::ErrorKind;
use pulse_id::{
    IdError, Layout, LeasedSnowflake, LeasedSnowflakeConfig, MemoryWorkerLeases, SnowflakeBuilder,
};

async fn start_error(config: LeasedSnowflakeConfig) -> IdError {
    let clock = ManualClock::new();
    let leases = MemoryWorkerLeases::with_clock(clock.clone());
    let builder = SnowflakeBuilder::new(Layout::twitter(), clock);
    match LeasedSnowflake::start(leases, builder, config).await {
        Ok(ids) => {
            ids.shutdown().await;
            panic!("the settings were accepted");
        }
        Err(err) => err,
    }
}

fn assert_rejects(err: &IdError, field: &str) {
    let IdError::Config(config) = err else {
        panic!("expected a settings error, got {err:?}");
    };
    assert_eq!(config.field(), field);
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[tokio::test]
async fn longest_ttl_rejected() {
    for ttl in [Duration::from_secs(24 * 3600 + 1), Duration::MAX] {
        let config = LeasedSnowflakeConfig {
            ttl,
            ..LeasedSnowflakeConfig::default()
        };
        assert_rejects(&start_error(config).await, "ttl");
    }
}

#[tokio::test]
async fn longest_skew_rejected() {
    let config = LeasedSnowflakeConfig {
        max_clock_skew: Duration::MAX,
        ..LeasedSnowflakeConfig::default()
    };
    assert_rejects(&start_error(config).await, "max_clock_skew");
}

#[tokio::test]
async fn renewal_outside_ttl_rejected() {
    for every in [Duration::ZERO, Duration::from_secs(10), Duration::MAX] {
        let config = LeasedSnowflakeConfig {
            ttl: Duration::from_secs(10),
            renew_every: Some(every),
            ..LeasedSnowflakeConfig::default()
        };
        assert_rejects(&start_error(config).await, "renew_every");
    }
}

#[tokio::test]
async fn zero_retry_delay_rejected() {
    let config = LeasedSnowflakeConfig {
        retry_delay: Duration::ZERO,
        ..LeasedSnowflakeConfig::default()
    };
    assert_rejects(&start_error(config).await, "retry_delay");
}
