//! The fault-injecting proxy, between a real Redis client and a private
//! `redis-server`.

use std::time::{Duration, Instant};

use pulse_testkit::proxy::Proxy;
use pulse_testkit::redis_server::RedisServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The bound for a step that should take milliseconds; generous for a loaded
/// machine.
const STEP_BOUND: Duration = Duration::from_secs(10);

async fn ping(url: &str) -> redis::RedisResult<String> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    redis::cmd("PING").query_async(&mut conn).await
}

/// Waits until `condition` holds, for at most [`STEP_BOUND`].
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + STEP_BOUND;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

#[tokio::test]
async fn cut_surfaces_as_client_error() -> TestResult {
    let redis = RedisServer::start()?;
    let proxy = Proxy::start(redis.addr()).await?;
    let url = format!("redis://{}", proxy.addr());

    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");

    proxy.cut();
    assert!(proxy.is_cut());

    // The live connection fails, and so does a new one.
    let live = tokio::time::timeout(
        STEP_BOUND,
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await?;
    assert!(live.is_err(), "{live:?}");
    let fresh = tokio::time::timeout(STEP_BOUND, ping(&url)).await?;
    assert!(fresh.is_err(), "{fresh:?}");

    proxy.restore();
    let restored = tokio::time::timeout(STEP_BOUND, ping(&url)).await??;
    assert_eq!(restored, "PONG");
    Ok(())
}

#[tokio::test]
async fn delay_holds_each_reply() -> TestResult {
    let redis = RedisServer::start()?;
    let proxy = Proxy::start(redis.addr()).await?;
    let url = format!("redis://{}", proxy.addr());
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    proxy.set_delay(Duration::from_millis(100));
    let started = Instant::now();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");

    // Only a lower bound: the request and the reply each wait the delay.
    assert!(started.elapsed() >= Duration::from_millis(200));
    Ok(())
}

#[tokio::test]
async fn cut_closes_live_connections() -> TestResult {
    let redis = RedisServer::start()?;
    let proxy = Proxy::start(redis.addr()).await?;
    let url = format!("redis://{}", proxy.addr());
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert!(eventually(|| proxy.active_connections() == 1).await);

    proxy.cut();
    assert!(eventually(|| proxy.active_connections() == 0).await);
    Ok(())
}
