//! Snowflake behaviour at the edges of a tick, driven by a manual clock.

use std::sync::mpsc;
use std::time::Duration;

use pulse_core::clock::{Clock, ManualClock};
use pulse_core::error::ErrorKind;
use pulse_core::id::IdGenerator;
use pulse_id::{IdError, Layout, Snowflake, SnowflakeBuilder};

fn twitter(clock: &ManualClock) -> Snowflake<ManualClock> {
    SnowflakeBuilder::new(Layout::twitter(), clock.clone())
        .worker_id(5)
        .build()
        .unwrap()
}

fn tick_now(layout: &Layout, clock: &ManualClock) -> u64 {
    layout.tick_of_ms(clock.wall().as_millis()).unwrap()
}

#[test]
fn one_tick_holds_4096_ids() {
    let clock = ManualClock::new();
    let ids = twitter(&clock);
    let tick = tick_now(ids.layout(), &clock);

    for expected in 0..4096 {
        let parts = ids.layout().decode(ids.try_next_id().unwrap());
        assert_eq!(parts.tick, tick);
        assert_eq!(parts.sequence, expected);
        assert_eq!(parts.worker_id, 5);
    }
}

#[test]
fn call_4097_would_block_until_next_tick() {
    let clock = ManualClock::new();
    let ids = twitter(&clock);
    let tick = tick_now(ids.layout(), &clock);
    for _ in 0..4096 {
        ids.try_next_id().unwrap();
    }

    let err = ids.try_next_id().unwrap_err();
    assert!(matches!(err, IdError::WouldBlock { wait_for_tick, .. } if wait_for_tick == tick + 1));
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    let through_trait = IdGenerator::try_next_id(&ids).unwrap_err();
    assert_eq!(through_trait.kind(), ErrorKind::WouldBlock);

    // Repeated calls do not reuse the stale tick either.
    assert!(ids.try_next_id().is_err());

    clock.advance(Duration::from_millis(1));
    let parts = ids.layout().decode(ids.try_next_id().unwrap());
    assert_eq!((parts.tick, parts.sequence), (tick + 1, 0));
}

#[test]
fn call_4097_waits_for_next_tick() {
    let clock = ManualClock::new();
    let ids = twitter(&clock);
    let tick = tick_now(ids.layout(), &clock);
    for _ in 0..4096 {
        ids.next_id().unwrap();
    }

    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        let ids = &ids;
        scope.spawn(move || sender.send(ids.next_id()).unwrap());

        // The call must still be waiting: the clock has not moved.
        let early = receiver.recv_timeout(Duration::from_millis(100));
        assert!(
            early.is_err(),
            "the 4097th call returned {early:?} without waiting"
        );

        clock.advance(Duration::from_millis(1));
        let id = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the waiting call returns once the clock moves")
            .unwrap();
        let parts = ids.layout().decode(id);
        assert_eq!((parts.tick, parts.sequence), (tick + 1, 0));
    });
}

#[test]
fn batch_takes_rest_of_tick() {
    let clock = ManualClock::new();
    let ids = twitter(&clock);
    let first = ids.next_id().unwrap();

    let batch = ids.next_batch(10_000).unwrap();
    assert_eq!(batch.len(), 4095);
    assert_eq!(batch.first(), first + 1);
    let all: Vec<u64> = batch.collect();
    assert_eq!(all.last().copied(), Some(first + 4095));

    // The tick is used up: a non-blocking call would wait.
    assert!(matches!(ids.try_next_id(), Err(IdError::WouldBlock { .. })));
}

#[test]
fn fill_spans_ticks() {
    let clock = ManualClock::new();
    let ids = twitter(&clock);
    let mut out = vec![0; 5000];

    std::thread::scope(|scope| {
        let filler = scope.spawn(|| ids.fill(&mut out));
        // The fill needs a second tick; move the clock until it finishes.
        while !filler.is_finished() {
            clock.advance(Duration::from_millis(1));
            std::thread::sleep(Duration::from_millis(5));
        }
        filler.join().unwrap().unwrap();
    });

    assert!(out.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn sonyflake_layout_uses_10ms_ticks() {
    let clock = ManualClock::new();
    let ids = SnowflakeBuilder::new(Layout::sonyflake(), clock.clone())
        .worker_id(65_535)
        .build()
        .unwrap();
    for _ in 0..256 {
        ids.try_next_id().unwrap();
    }
    assert!(ids.try_next_id().is_err(), "one 10 ms tick holds 256 IDs");

    clock.advance(Duration::from_millis(10));
    let parts = ids.layout().decode(ids.try_next_id().unwrap());
    assert_eq!(parts.worker_id, 65_535);
    assert_eq!(parts.sequence, 0);
    assert_eq!(parts.timestamp.as_millis() % 10, 0);
}

#[test]
fn worker_id_outside_layout_rejected() {
    let err = SnowflakeBuilder::new(Layout::twitter(), ManualClock::new())
        .worker_id(1024)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("1024"), "{err}");
}

#[test]
fn decode_gives_issue_time() {
    let clock = ManualClock::new();
    let ids = twitter(&clock);
    let id = ids.next_id().unwrap();
    let parts = ids.layout().decode(id);
    assert_eq!(parts.timestamp.as_millis(), clock.wall().as_millis());
    assert_eq!(ids.last_issued(), Some(parts.timestamp));
}

#[test]
fn works_as_trait_object() {
    let clock = ManualClock::new();
    let ids: std::sync::Arc<dyn IdGenerator<Id = u64>> = std::sync::Arc::new(twitter(&clock));
    let first = ids.next_id().unwrap();
    assert!(ids.next_id().unwrap() > first);
}
