//! Single-flight: sharing, forgetting, and hand-off after a panic or a
//! cancelled leader.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pulse_conc::{BlockingSingleFlight, Error, LoadFlight, SingleFlight};
use pulse_core::error::ErrorKind;
use tokio::sync::oneshot;

/// Waits until `flight` has `count` keys running.
async fn until_in_flight<T: Clone>(flight: &SingleFlight<&'static str, T>, count: usize) {
    while flight.in_flight() != count {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_then_join_second_call() {
    let flight = Arc::new(SingleFlight::<&'static str, u32>::new());
    let runs = Arc::new(AtomicU32::new(0));
    let (release_first, first_gate) = oneshot::channel::<()>();
    let (release_second, second_gate) = oneshot::channel::<()>();

    // Call 1 runs and blocks.
    let call_1 = tokio::spawn({
        let (flight, runs) = (flight.clone(), runs.clone());
        async move {
            flight
                .run("k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    first_gate.await.unwrap();
                    1
                })
                .await
        }
    });
    until_in_flight(&flight, 1).await;

    // The key is forgotten; call 2 starts a new execution.
    assert!(flight.forget(&"k"));
    let call_2 = tokio::spawn({
        let (flight, runs) = (flight.clone(), runs.clone());
        async move {
            flight
                .run("k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    second_gate.await.unwrap();
                    2
                })
                .await
        }
    });
    until_in_flight(&flight, 1).await;
    while runs.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }

    // Call 1 ends; its clean-up must not remove call 2's entry.
    release_first.send(()).unwrap();
    assert_eq!(call_1.await.unwrap(), Ok(1));
    assert_eq!(flight.in_flight(), 1);

    // Call 3 starts while call 2 runs, and joins it: its first poll
    // registers it as a waiter of call 2.
    let call_3 = flight.run("k", || async {
        runs.fetch_add(1, Ordering::SeqCst);
        3
    });
    tokio::pin!(call_3);
    assert!(futures_util::poll!(&mut call_3).is_pending());
    release_second.send(()).unwrap();

    assert_eq!(call_2.await.unwrap(), Ok(2));
    assert_eq!(call_3.await, Ok(2));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the function ran twice in all"
    );
    assert_eq!(flight.in_flight(), 0);
}

#[tokio::test]
async fn panic_spares_caller_and_next_call_runs() {
    let flight = SingleFlight::<&'static str, u32>::new();

    let result = flight.run("k", || async { panic!("loader bug") }).await;
    assert_eq!(
        result,
        Err(Error::Panicked {
            message: "loader bug".to_owned()
        })
    );
    assert_eq!(flight.in_flight(), 0);

    let result = flight.run("k", || async { 5 }).await;
    assert_eq!(result, Ok(5), "the next call on the key runs again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_takes_over_after_panic() {
    let flight = Arc::new(SingleFlight::<&'static str, u32>::new());
    let (release, gate) = oneshot::channel::<()>();

    let leader = tokio::spawn({
        let flight = flight.clone();
        async move {
            flight
                .run("k", || async move {
                    gate.await.unwrap();
                    panic!("leader fails")
                })
                .await
        }
    });
    until_in_flight(&flight, 1).await;

    // The waiter joins the running call before the leader panics.
    let waiter = flight.run("k", || async { 9 });
    tokio::pin!(waiter);
    assert!(futures_util::poll!(&mut waiter).is_pending());
    release.send(()).unwrap();

    assert!(matches!(leader.await.unwrap(), Err(Error::Panicked { .. })));
    assert_eq!(waiter.await, Ok(9), "the waiter ran its own function");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_takes_over_after_cancel() {
    let flight = Arc::new(SingleFlight::<&'static str, u32>::new());
    let leader = tokio::spawn({
        let flight = flight.clone();
        async move { flight.run("k", std::future::pending::<u32>).await }
    });
    until_in_flight(&flight, 1).await;

    let waiter = flight.run("k", || async { 4 });
    tokio::pin!(waiter);
    assert!(futures_util::poll!(&mut waiter).is_pending());
    leader.abort();

    let result = tokio::time::timeout(Duration::from_secs(10), waiter).await;
    assert_eq!(result.unwrap(), Ok(4));
}

#[tokio::test]
async fn concurrent_callers_share_one_run() {
    let flight = SingleFlight::<&'static str, u32>::new();
    let runs = AtomicU32::new(0);
    let (release, gate) = tokio::sync::watch::channel(false);

    // Every caller is polled once, so all of them are in the call before
    // the leader's function can finish.
    let mut callers = Vec::new();
    for _ in 0..16 {
        let mut gate = gate.clone();
        let runs = &runs;
        let mut caller = Box::pin(flight.run("k", move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            gate.wait_for(|open| *open).await.unwrap();
            7
        }));
        assert!(futures_util::poll!(&mut caller).is_pending());
        callers.push(caller);
    }
    release.send(true).unwrap();
    for caller in callers {
        assert_eq!(caller.await, Ok(7));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Loads through the pulse-core trait, as a cache does.
async fn load<S, F, Fut>(flight: &S, key: u32, loader: F) -> pulse_core::Result<String>
where
    S: pulse_core::flight::SingleFlight<u32, String>,
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = pulse_core::Result<String>> + Send,
{
    flight.run(key, loader).await
}

#[tokio::test]
async fn core_trait_shares_errors() {
    let flight: LoadFlight<u32, String> = LoadFlight::new();
    let err = load(&flight, 1, || async {
        Err(pulse_core::Error::new(ErrorKind::Unavailable, "store down"))
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.to_string(), "store down");

    let err = load(&flight, 2, || async { panic!("decoder bug") })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);

    let value = load(&flight, 1, || async { Ok("ok".to_owned()) }).await;
    assert_eq!(value.unwrap(), "ok");
}

#[test]
fn blocking_forget_and_panic() {
    let flight = Arc::new(BlockingSingleFlight::<u32, u32>::new());

    let result = flight.run(1, || panic!("thread loader bug"));
    assert!(matches!(result, Err(Error::Panicked { .. })));
    assert_eq!(flight.run(1, || 2), Ok(2));

    // Many threads on one key: a slow leader shares its value.
    let runs = Arc::new(AtomicU32::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (flight, runs, barrier) = (flight.clone(), runs.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                flight.run(7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    70
                })
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), Ok(70));
    }
    assert!(runs.load(Ordering::SeqCst) >= 1);
    assert!(!flight.forget(&7), "the key was already forgotten");
}
