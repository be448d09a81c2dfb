//! Every way the wall clock can misbehave, with a manual clock.

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use pulse_core::clock::{Clock, ManualClock, WallTime};
use pulse_core::error::ErrorKind;
use pulse_id::{ClockPolicy, IdError, Layout, Snowflake, SnowflakeBuilder};

fn generator(clock: &ManualClock, policy: ClockPolicy) -> Snowflake<ManualClock> {
    SnowflakeBuilder::new(Layout::twitter(), clock.clone())
        .clock_tolerance(Duration::from_millis(5))
        .clock_policy(policy)
        .build()
        .unwrap()
}

#[test]
fn small_step_back_continues_last_tick() {
    let clock = ManualClock::new();
    let ids = generator(&clock, ClockPolicy::Fail);
    let first = ids.next_id().unwrap();

    clock.step_wall_back(Duration::from_millis(3));
    let second = ids.try_next_id().unwrap();
    assert!(second > first);
    assert_eq!(
        ids.layout().decode(second).tick,
        ids.layout().decode(first).tick
    );
}

#[test]
fn small_step_back_waits_when_tick_used_up() {
    let clock = ManualClock::new();
    let ids = generator(&clock, ClockPolicy::Fail);
    let last = ids.next_batch(4096).unwrap().last().unwrap();
    let last_tick = ids.layout().decode(last).tick;
    clock.step_wall_back(Duration::from_millis(4));

    let err = ids.try_next_id().unwrap_err();
    assert!(
        matches!(err, IdError::WouldBlock { wait_for_tick, .. } if wait_for_tick == last_tick + 1)
    );

    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        let ids = &ids;
        scope.spawn(move || sender.send(ids.next_id()).unwrap());

        // Still 4 ms behind, then 1 ms behind: the call keeps waiting.
        assert!(receiver.recv_timeout(Duration::from_millis(50)).is_err());
        clock.advance(Duration::from_millis(3));
        assert!(receiver.recv_timeout(Duration::from_millis(50)).is_err());

        // Back in the last tick: still waiting, because that tick is used up.
        clock.advance(Duration::from_millis(1));
        assert!(receiver.recv_timeout(Duration::from_millis(50)).is_err());

        clock.advance(Duration::from_millis(1));
        let id = receiver
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .unwrap();
        assert!(id > last);
        assert_eq!(ids.layout().decode(id).tick, last_tick + 1);
    });
}

#[test]
fn large_step_back_fails_by_default() {
    let clock = ManualClock::new();
    let ids = generator(&clock, ClockPolicy::Fail);
    let first = ids.next_id().unwrap();
    let first_ms = ids.layout().decode(first).timestamp.as_millis();

    clock.step_wall_back(Duration::from_millis(6));
    let err = ids.next_id().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ClockFault);
    match err {
        IdError::ClockMovedBack {
            last_ms,
            behind_ms,
            tolerance_ms,
        } => {
            assert_eq!(last_ms, first_ms);
            assert_eq!(behind_ms, 6);
            assert_eq!(tolerance_ms, 5);
        }
        other => panic!("expected ClockMovedBack, got {other:?}"),
    }
    assert!(matches!(
        ids.try_next_id(),
        Err(IdError::ClockMovedBack { .. })
    ));

    // Once the clock is back within the tolerance, IDs resume above the last.
    clock.advance(Duration::from_millis(1));
    assert!(ids.next_id().unwrap() > first);
}

#[test]
fn large_step_back_continues_when_asked() {
    let clock = ManualClock::new();
    let ids = generator(&clock, ClockPolicy::ContinueFromLast);
    let first = ids.next_id().unwrap();
    let first_tick = ids.layout().decode(first).tick;

    clock.step_wall_back(Duration::from_secs(3600));
    let mut last = first;
    for _ in 0..10_000 {
        let id = ids.try_next_id().unwrap();
        assert!(id > last);
        last = id;
    }

    // 10,001 IDs from the last tick on: the timestamp ran ahead by two ticks.
    assert_eq!(ids.layout().decode(last).tick, first_tick + 2);
}

#[test]
fn last_issued_at_start_is_respected() {
    let clock = ManualClock::new();
    let persisted = clock.wall().saturating_add(Duration::from_millis(3));
    let ids = SnowflakeBuilder::new(Layout::twitter(), clock.clone())
        .last_issued(persisted)
        .build()
        .unwrap();

    // 3 ms behind the persisted timestamp: within tolerance, so wait.
    assert!(matches!(ids.try_next_id(), Err(IdError::WouldBlock { .. })));
    clock.advance(Duration::from_millis(4));
    let parts = ids.layout().decode(ids.next_id().unwrap());
    assert!(parts.timestamp > persisted);
}

#[test]
fn last_issued_far_ahead_fails() {
    let clock = ManualClock::new();
    let persisted = clock.wall().saturating_add(Duration::from_secs(60));
    let ids = SnowflakeBuilder::new(Layout::twitter(), clock.clone())
        .last_issued(persisted)
        .build()
        .unwrap();
    assert!(matches!(
        ids.next_id(),
        Err(IdError::ClockMovedBack {
            behind_ms: 60_000,
            ..
        })
    ));
}

#[test]
fn clock_before_epoch_fails() {
    let clock = ManualClock::with_wall(WallTime::from_millis(1_000));
    let ids = generator(&clock, ClockPolicy::ContinueFromLast);
    let err = ids.next_id().unwrap_err();
    assert!(matches!(err, IdError::BeforeEpoch { now_ms: 1_000, .. }));
    assert_eq!(err.kind(), ErrorKind::ClockFault);
}

#[test]
fn timestamp_overflow_fails() {
    let layout = Layout::builder()
        .timestamp_bits(20)
        .epoch(WallTime::from_millis(0))
        .build()
        .unwrap();
    let clock = ManualClock::with_wall(WallTime::from_millis(1 << 20));
    let ids = SnowflakeBuilder::new(layout, clock).build().unwrap();
    assert!(matches!(
        ids.next_id(),
        Err(IdError::TimestampOverflow { bits: 20, .. })
    ));
}

#[test]
fn forward_jump_then_back_never_repeats() {
    let clock = ManualClock::new();
    let ids = generator(&clock, ClockPolicy::Fail);
    let before = ids.next_id().unwrap();
    clock.step_wall_forward(Duration::from_secs(10));
    let ahead = ids.next_id().unwrap();
    clock.step_wall_back(Duration::from_secs(10));
    assert!(matches!(ids.next_id(), Err(IdError::ClockMovedBack { .. })));
    assert!(ahead > before);
}

/// One clock move of a property-test script.
#[derive(Clone, Debug)]
enum Move {
    Forward(u64),
    Back(u64),
    Issue(u16),
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    let one = prop_oneof![
        (0u64..30).prop_map(Move::Forward),
        (0u64..30).prop_map(Move::Back),
        (1u16..300).prop_map(Move::Issue),
    ];
    proptest::collection::vec(one, 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the clock readings, the IDs that do come out strictly
    /// increase, with either policy and a small sequence that often runs out.
    #[test]
    fn no_reading_sequence_repeats_or_decreases(
        script in moves(),
        continue_from_last in any::<bool>(),
        tolerance_ms in 0u64..10,
    ) {
        let layout = Layout::builder().worker_bits(10).sequence_bits(4).timestamp_bits(41).build().unwrap();
        let clock = ManualClock::new();
        let policy = if continue_from_last { ClockPolicy::ContinueFromLast } else { ClockPolicy::Fail };
        let ids = SnowflakeBuilder::new(layout, clock.clone())
            .worker_id(3)
            .clock_tolerance(Duration::from_millis(tolerance_ms))
            .clock_policy(policy)
            .build()
            .unwrap();

        let mut last = 0u64;
        for step in script {
            match step {
                Move::Forward(ms) => clock.step_wall_forward(Duration::from_millis(ms)),
                Move::Back(ms) => clock.step_wall_back(Duration::from_millis(ms)),
                Move::Issue(count) => {
                    for _ in 0..count {
                        match ids.try_next_id() {
                            Ok(id) => {
                                prop_assert!(id > last, "id {id} after {last}");
                                last = id;
                            }
                            // Waiting within the tolerance is allowed under both policies.
                            Err(IdError::WouldBlock { .. }) => {}
                            Err(IdError::ClockMovedBack { .. }) => {
                                prop_assert_eq!(policy, ClockPolicy::Fail);
                            }
                            Err(other) => prop_assert!(false, "unexpected error {other}"),
                        }
                    }
                }
            }
        }
    }
}
