//! The Redis store and the near cache over TLS (`rediss://`), against a
//! private redis-server that listens only on a TLS port and needs a
//! password. The certificate is a throwaway self-signed one made with the
//! `openssl` command.
#![cfg(feature = "tls")]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_cache::NearCache;
use pulse_cache::redis::RedisStore;
use pulse_core::cache::CacheStore;

const PASSWORD: &str = "tls-test-secret";

/// A redis-server on a TLS-only loopback port, killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tools_present() -> bool {
    ["redis-server", "openssl"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

fn make_certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl could not make a certificate");
}

fn start_tls_redis() -> TlsRedis {
    let dir = std::env::temp_dir().join(pulse_testkit::unique_prefix("pulse-cache-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificate(&dir);

    // Another test may take the port between the probe and the bind, so a
    // failed start is retried on a new port.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .args(["--requirepass", PASSWORD])
            .arg("--tls-cert-file")
            .arg(dir.join("cert.pem"))
            .arg("--tls-key-file")
            .arg(dir.join("key.pem"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");

        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return TlsRedis { child, port, dir };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not start a TLS redis-server");
}

fn tls_url(port: u16, password: &str) -> String {
    format!("rediss://:{password}@127.0.0.1:{port}/#insecure")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_round_trips_over_tls() {
    if !tools_present() {
        assert!(
            !pulse_testkit::services::ci_mode(),
            "CI needs redis-server and openssl"
        );
        eprintln!("*** SKIPPED store_round_trips_over_tls: redis-server or openssl is missing ***");
        return;
    }
    let server = start_tls_redis();
    let store = RedisStore::builder()
        .url(tls_url(server.port, PASSWORD))
        .prefix(pulse_testkit::unique_prefix("tls"))
        .build()
        .expect("valid store");

    store
        .set("greeting", Bytes::from_static(b"hello"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get("greeting").await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert!(store.delete("greeting").await.unwrap());
    assert_eq!(store.get("greeting").await.unwrap(), None);

    // The near cache's invalidation listener connects over TLS too.
    let near = NearCache::<u64, _>::builder(store).build().unwrap();
    assert!(
        near.wait_coherent(Duration::from_secs(10)).await,
        "listener never connected"
    );
    near.set("n", &7).await.unwrap();
    assert_eq!(near.get("n").await.unwrap(), Some(7));
    near.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_error_hides_it() {
    if !tools_present() {
        assert!(
            !pulse_testkit::services::ci_mode(),
            "CI needs redis-server and openssl"
        );
        eprintln!(
            "*** SKIPPED wrong_password_error_hides_it: redis-server or openssl is missing ***"
        );
        return;
    }
    let server = start_tls_redis();
    let wrong = "not-the-password-42";
    let store = RedisStore::builder()
        .url(tls_url(server.port, wrong))
        .prefix(pulse_testkit::unique_prefix("tls"))
        .timeout(Duration::from_secs(3))
        .build()
        .expect("valid store");

    let err = store.get("k").await.expect_err("the password is wrong");
    let rendered = format!("{err} {err:?}");
    assert!(!rendered.contains(wrong), "the password leaked: {rendered}");
}
