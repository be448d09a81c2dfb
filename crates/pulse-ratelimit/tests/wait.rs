//! Waiting for permits: first come first served, cancel-safe, and a
//! blocking variant.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::clock::ManualClock;
use pulse_ratelimit::{FixedWindow, Gcra, LeakyQueue, Quota, RateLimitError};

async fn until_sleepers(clock: &ManualClock, count: usize) {
    while clock.sleeper_count() < count {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn waiters_served_in_arrival_order() {
    let clock = ManualClock::new();
    let limiter = Arc::new(Gcra::with_clock(
        Quota::per_second(1).unwrap(),
        clock.clone(),
    ));
    limiter.until_ready().await.unwrap();

    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for waiter in 0..3 {
        let limiter = limiter.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            limiter.until_ready().await.unwrap();
            order.lock().unwrap().push(waiter);
        }));
        until_sleepers(&clock, waiter + 1).await;
    }

    // Each second frees one permit, for the next waiter in line.
    for served in 1..=3 {
        clock.advance(Duration::from_secs(1));
        while order.lock().unwrap().len() < served {
            tokio::task::yield_now().await;
        }
        assert_eq!(order.lock().unwrap().len(), served);
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    assert!(!limiter.check().allowed, "the waiters took the permits");
}

#[tokio::test]
async fn cancelled_wait_gives_back_reservation() {
    let clock = ManualClock::new();
    let limiter = Gcra::with_clock(Quota::per_second(1).unwrap(), clock.clone());
    assert!(limiter.check().allowed);

    {
        let waiter = limiter.until_ready_n(1);
        tokio::pin!(waiter);
        assert!(futures_poll(waiter.as_mut()).is_pending());
        assert!(!limiter.check().allowed, "the waiter holds the next permit");
    }

    // Dropped: after one second exactly one permit is back, as if the waiter
    // had never come.
    clock.advance(Duration::from_secs(1));
    assert!(limiter.check().allowed);
    assert!(!limiter.check().allowed);
}

#[tokio::test]
async fn queue_spaces_waiters() {
    let clock = ManualClock::new();
    let queue = Arc::new(LeakyQueue::with_clock(
        Quota::per_second(10).unwrap(),
        clock.clone(),
    ));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move { queue.until_ready().await }));
    }
    // The first goes at once, the others wait 100 ms and 200 ms.
    until_sleepers(&clock, 2).await;
    assert_eq!(
        clock.next_deadline(),
        Some(pulse_core::clock::MonoTime::from_nanos(100_000_000))
    );
    clock.advance(Duration::from_millis(200));
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn window_waiter_waits_for_next_window() {
    let clock = ManualClock::new();
    let window = Arc::new(FixedWindow::with_clock(
        Quota::per_second(2).unwrap(),
        clock.clone(),
    ));
    window.until_ready_n(2).await.unwrap();
    let waiter = tokio::spawn({
        let window = window.clone();
        async move { window.until_ready().await }
    });
    until_sleepers(&clock, 1).await;
    clock.advance(Duration::from_secs(1));
    waiter.await.unwrap().unwrap();
}

#[tokio::test]
async fn cost_above_burst_is_an_error() {
    let limiter = Gcra::with_clock(Quota::per_second(2).unwrap(), ManualClock::new());
    let err = limiter.until_ready_n(3).await.unwrap_err();
    assert!(matches!(
        err,
        RateLimitError::CostTooLarge { cost: 3, burst: 2 }
    ));
    assert!(matches!(
        limiter.until_ready_blocking_n(3),
        Err(RateLimitError::CostTooLarge { .. })
    ));
}

#[test]
fn blocking_wait_follows_clock() {
    let clock = ManualClock::new();
    let limiter = Arc::new(Gcra::with_clock(
        Quota::per_second(1).unwrap(),
        clock.clone(),
    ));
    limiter.until_ready_blocking().unwrap();
    let waiter = std::thread::spawn({
        let limiter = limiter.clone();
        move || limiter.until_ready_blocking()
    });
    std::thread::sleep(Duration::from_millis(20));
    assert!(!waiter.is_finished());
    clock.advance(Duration::from_secs(1));
    waiter.join().unwrap().unwrap();
}

fn futures_poll<F: std::future::Future>(
    future: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test]
async fn keyed_wait_gives_back_on_cancel() {
    let clock = ManualClock::new();
    let limiter = Arc::new(
        pulse_ratelimit::KeyedGcra::<String>::builder(Quota::per_second(1).unwrap())
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    limiter.until_ready("tenant").await.unwrap();

    {
        let waiter = limiter.until_ready("tenant");
        tokio::pin!(waiter);
        assert!(futures_poll(waiter.as_mut()).is_pending());
        assert!(
            !limiter.check("tenant").allowed,
            "the waiter holds the next permit"
        );
    }
    clock.advance(Duration::from_secs(1));
    assert!(
        limiter.check("tenant").allowed,
        "the cancelled waiter gave its permit back"
    );
    assert!(!limiter.check("tenant").allowed);

    // A waiter that is not cancelled gets the next permit when it is due.
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.until_ready("tenant").await }
    });
    until_sleepers(&clock, 1).await;
    clock.advance(Duration::from_secs(1));
    waiter.await.unwrap().unwrap();
    assert!(
        limiter.check("other").allowed,
        "other keys are not affected"
    );
}
