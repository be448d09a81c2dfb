//! pulse-mq: the in-memory broker, and Redis Streams against the raw
//! `redis` client doing the same XADD / XREADGROUP / XACK work, in the same
//! criterion run.
//!
//! Run with `cargo bench -p gopulse-benches --bench mq -- --warm-up-time 1 --measurement-time 3`.
//! The Redis cases run on a private `redis-server` started for the bench,
//! so that the shared server carries no bench load. They are skipped when
//! `redis-server` is not installed.
//!
//! Each iteration moves 100,000 messages of 16 bytes; criterion reports
//! the throughput in messages per second. Publishing uses batches of 1,000
//! (one pipeline each); consuming reads 500 entries per `XREADGROUP` and
//! acks each message.
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use deadpool_redis::redis::{self, Value};
use pulse_core::mq::{Message, Publisher, Subscriber, Subscription};
use pulse_mq::MemoryBroker;
use pulse_mq::redis::RedisStreams;

const MESSAGES: usize = 100_000;
const PUBLISH_BATCH: usize = 1_000;
const READ_BATCH: usize = 500;
const PAYLOAD: &[u8; 16] = b"0123456789abcdef";

fn messages() -> Vec<Message> {
    (0..MESSAGES)
        .map(|i| Message::new(format!("m-{i}"), &PAYLOAD[..]))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("mq/memory_100k_16B");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(10);
    group.bench_function("publish_then_consume", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let broker = MemoryBroker::new();
                    let publisher = broker.publisher();
                    let mut subscription =
                        broker.subscriber().subscribe("bench", "g").await.unwrap();
                    let batches: Vec<Vec<Message>> = messages()
                        .chunks(PUBLISH_BATCH)
                        .map(<[Message]>::to_vec)
                        .collect();
                    let start = Instant::now();
                    for batch in batches {
                        publisher.publish_batch("bench", batch).await.unwrap();
                    }
                    for _ in 0..MESSAGES {
                        let delivery = subscription.next().await.unwrap().unwrap();
                        delivery.ack().await.unwrap();
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    });
    group.finish();
}

/// Publishes with pipelined XADDs, as both sides do.
async fn raw_publish(conn: &mut deadpool_redis::Connection, key: &str, messages: &[Message]) {
    for chunk in messages.chunks(PUBLISH_BATCH) {
        let mut pipe = redis::pipe();
        for message in chunk {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("id")
                .arg(&message.id)
                .arg("p")
                .arg(&message.payload[..])
                .ignore();
        }
        let _: () = pipe.query_async(conn).await.unwrap();
    }
}

/// Consumes with XREADGROUP and one XACK per read batch.
async fn raw_consume(conn: &mut deadpool_redis::Connection, key: &str) {
    let mut received = 0;
    while received < MESSAGES {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(200)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(conn)
            .await
            .unwrap();
        let ids = entry_ids(reply);
        if ids.is_empty() {
            continue;
        }
        received += ids.len();
        let _: i64 = redis::cmd("XACK")
            .arg(key)
            .arg("g")
            .arg(&ids)
            .query_async(conn)
            .await
            .unwrap();
    }
}

fn entry_ids(reply: Value) -> Vec<Vec<u8>> {
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for stream in streams {
        let Value::Array(mut pair) = stream else {
            continue;
        };
        let Some(Value::Array(entries)) = pair.pop() else {
            continue;
        };
        for entry in entries {
            if let Value::Array(mut fields) = entry {
                if let Some(Value::BulkString(id)) = fields.drain(..).next() {
                    ids.push(id);
                }
            }
        }
    }
    ids
}

async fn create_group(conn: &mut deadpool_redis::Connection, key: &str) {
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .unwrap();
}

async fn delete(conn: &mut deadpool_redis::Connection, key: &str) {
    let _: i64 = redis::cmd("DEL").arg(key).query_async(conn).await.unwrap();
}

fn redis_streams(c: &mut Criterion) {
    let server = match pulse_testkit::redis_server::RedisServer::start() {
        Ok(server) => server,
        Err(err) => {
            eprintln!("SKIPPED mq/redis benches: no private redis-server ({err})");
            return;
        }
    };
    let rt = runtime();
    let streams = RedisStreams::from_url(&server.url())
        .unwrap()
        .prefix("bench")
        .batch(READ_BATCH);
    let pool = streams.pool().clone();
    let mut round = 0u64;
    let mut next_key = move || {
        round += 1;
        format!("bench:t{round}")
    };

    let mut group = c.benchmark_group("mq/redis_100k_16B");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(10);

    group.bench_function(BenchmarkId::new("publish", "pulse"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let publisher = streams.publisher();
                for _ in 0..iters {
                    let key = next_key();
                    let topic = key.trim_start_matches("bench:").to_owned();
                    let batches: Vec<Vec<Message>> = messages()
                        .chunks(PUBLISH_BATCH)
                        .map(<[Message]>::to_vec)
                        .collect();
                    let start = Instant::now();
                    for batch in batches {
                        publisher.publish_batch(&topic, batch).await.unwrap();
                    }
                    total += start.elapsed();
                    delete(&mut pool.get().await.unwrap(), &key).await;
                }
                total
            })
        });
    });
    group.bench_function(BenchmarkId::new("publish", "raw_redis"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut conn = pool.get().await.unwrap();
                for _ in 0..iters {
                    let key = next_key();
                    let batch = messages();
                    let start = Instant::now();
                    raw_publish(&mut conn, &key, &batch).await;
                    total += start.elapsed();
                    delete(&mut conn, &key).await;
                }
                total
            })
        });
    });

    group.bench_function(BenchmarkId::new("consume", "pulse"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let key = next_key();
                    let topic = key.trim_start_matches("bench:").to_owned();
                    let mut conn = pool.get().await.unwrap();
                    raw_publish(&mut conn, &key, &messages()).await;
                    create_group(&mut conn, &key).await;
                    drop(conn);
                    let subscriber = streams.subscriber();
                    let mut subscription = subscriber.subscribe(&topic, "g").await.unwrap();
                    let start = Instant::now();
                    for _ in 0..MESSAGES {
                        let delivery = subscription.next().await.unwrap().unwrap();
                        delivery.ack().await.unwrap();
                    }
                    subscriber.close().await.unwrap();
                    total += start.elapsed();
                    drop(subscription);
                    delete(&mut pool.get().await.unwrap(), &key).await;
                }
                total
            })
        });
    });
    group.bench_function(BenchmarkId::new("consume", "raw_redis"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut conn = pool.get().await.unwrap();
                for _ in 0..iters {
                    let key = next_key();
                    raw_publish(&mut conn, &key, &messages()).await;
                    create_group(&mut conn, &key).await;
                    let start = Instant::now();
                    raw_consume(&mut conn, &key).await;
                    total += start.elapsed();
                    delete(&mut conn, &key).await;
                }
                total
            })
        });
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, memory, redis_streams);
criterion_main!(benches);
