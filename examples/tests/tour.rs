//! The tour with a small workload: every event handled once, every
//! follow-up fired, and the same admitted counts on every backend for one
//! seed.

use gopulse_examples::tour::{self, Backend, Config, Summary};

fn small(backend: Backend) -> Config {
    Config {
        backend,
        requests: 600,
        tenants: 3,
        seed: 11,
        pace: 0,
        progress: false,
    }
}

async fn run(backend: Backend) -> Summary {
    tour::run(&small(backend)).await.expect("the tour runs")
}

fn assert_consistent(summary: &Summary) {
    assert_eq!(summary.requests(), 600);
    assert_eq!(
        summary.published,
        summary.admitted(),
        "every admitted order publishes"
    );
    assert_eq!(summary.handled, summary.published, "every event is handled");
    assert_eq!(summary.duplicates, 0);
    assert_eq!(summary.ids_issued, summary.admitted());
    assert_eq!(summary.locks_taken, summary.admitted());
    assert_eq!(summary.follow_ups_fired, summary.admitted());
    assert!(summary.rejected() > 0, "the first tenant exceeds its rate");
}

/// Reads the number after `label` in the printed table.
fn printed(table: &str, label: &str) -> u64 {
    table
        .lines()
        .find(|line| line.starts_with(label))
        .and_then(|line| {
            line.split_whitespace()
                .nth(label.split_whitespace().count())
        })
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` row in:\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_counts_add_up() {
    let summary = run(Backend::Memory).await;
    assert_consistent(&summary);

    let table = summary.to_string();
    assert_eq!(printed(&table, "events published"), summary.published);
    assert_eq!(printed(&table, "events handled"), summary.published);
    assert_eq!(printed(&table, "duplicates"), 0);
    assert_eq!(printed(&table, "follow-ups fired"), summary.admitted());
    assert_eq!(printed(&table, "total"), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_admissions() {
    let first = run(Backend::Memory).await;
    let second = run(Backend::Memory).await;
    assert_eq!(first.tenants, second.tenants);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_matches_memory() {
    let Some(_url) = pulse_testkit::services::redis_url() else {
        return;
    };
    let memory = run(Backend::Memory).await;
    let redis = run(Backend::Redis).await;
    assert_consistent(&redis);
    assert_eq!(
        redis.tenants, memory.tenants,
        "one seed admits the same requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_matches_memory() {
    let Some(_url) = pulse_testkit::services::postgres_url() else {
        return;
    };
    let memory = run(Backend::Memory).await;
    let postgres = run(Backend::Postgres).await;
    assert_consistent(&postgres);
    assert_eq!(
        postgres.tenants, memory.tenants,
        "one seed admits the same requests"
    );
}
