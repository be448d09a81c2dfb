//! The private `redis-server` helper, checked with a real Redis client.

use std::net::TcpStream;
use std::time::Duration;

use pulse_testkit::redis_server::RedisServer;
use redis::AsyncCommands;

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn connect(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

#[tokio::test]
async fn server_answers_commands() -> TestResult {
    let redis = RedisServer::start()?;
    let mut conn = connect(&redis.url()).await?;

    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");
    conn.set::<_, _, ()>("greeting", "hello").await?;
    let value: String = conn.get("greeting").await?;
    assert_eq!(value, "hello");
    Ok(())
}

#[tokio::test]
async fn killed_server_restarts_on_same_port() -> TestResult {
    let mut redis = RedisServer::start()?;
    let url = redis.url();
    let port = redis.port();
    let first_pid = redis.pid();
    connect(&url).await?.set::<_, _, ()>("k", "v").await?;

    redis.kill();
    assert!(!redis.is_running());
    assert_eq!(redis.pid(), None);
    assert!(TcpStream::connect(redis.addr()).is_err());

    redis.restart()?;
    assert!(redis.is_running());
    assert_eq!(redis.port(), port);
    assert_eq!(redis.url(), url);
    assert_ne!(redis.pid(), first_pid);

    // The new server replies, and it is empty because nothing was saved.
    let mut conn = connect(&url).await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");
    let value: Option<String> = conn.get("k").await?;
    assert_eq!(value, None);
    Ok(())
}

#[test]
fn restart_of_running_server_replaces_it() -> TestResult {
    let mut redis = RedisServer::start()?;
    let first_pid = redis.pid();
    redis.restart()?;
    assert!(redis.is_running());
    assert_ne!(redis.pid(), first_pid);
    Ok(())
}

#[test]
fn drop_kills_child() -> TestResult {
    let redis = RedisServer::start()?;
    let addr = redis.addr();
    assert!(TcpStream::connect(addr).is_ok());

    drop(redis);
    assert!(TcpStream::connect(addr).is_err());
    Ok(())
}

#[test]
fn panic_kills_child() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let test_thread = std::thread::spawn(move || {
        let redis = RedisServer::start().expect("redis-server starts");
        sender.send(redis.addr()).unwrap();
        panic!("a failing test");
    });

    assert!(test_thread.join().is_err());
    let addr = receiver.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn parallel_starts_get_distinct_ports() -> TestResult {
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(RedisServer::start))
        .collect();
    let mut servers = Vec::new();
    for thread in threads {
        servers.push(thread.join().expect("start does not panic")?);
    }

    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &mut servers {
        assert!(server.is_running(), "{server:?}");
    }
    Ok(())
}
