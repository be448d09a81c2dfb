//! Finding the shared servers: Redis, PostgreSQL, NATS and RabbitMQ.
//!
//! Each helper returns the server's URL when it accepts a TCP connection. The
//! URL comes from an environment variable, or is the default loopback address:
//!
//! | helper | variable | default |
//! | --- | --- | --- |
//! | [`redis_url`] | `PULSE_REDIS_URL` | `redis://127.0.0.1:6379` |
//! | [`postgres_url`] | `PULSE_POSTGRES_URL` | `postgres://postgres@127.0.0.1:5432/test` |
//! | [`nats_url`] | `PULSE_NATS_URL` | `nats://127.0.0.1:4222` |
//! | [`amqp_url`] | `PULSE_AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` |
//!
//! When the server does not accept a connection within two seconds, the
//! `CI` variable decides what happens:
//!
//! - with `CI=true` (or `CI=1`) the helper panics, so the test fails and a
//!   missing server cannot pass unnoticed;
//! - otherwise it writes a `SKIPPED` line to the real standard error (past the
//!   test harness's output capture) that names the test, the server and how to
//!   start it, and returns `None`, so the test returns early.
//!
//! The probe only opens and closes a TCP connection; it does not log in.
//!
//! ```
//! # async fn run() {
//! let Some(url) = pulse_testkit::services::redis_url() else { return };
//! // ... connect to `url` and test against the real server ...
//! # let _ = url;
//! # }
//! ```

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use pulse_core::error::{ConfigError, redact_url};

/// How long the probe waits for each address of a server to accept.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A shared server that tests may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// Redis 7, for the Redis backends.
    Redis,
    /// PostgreSQL, for the PostgreSQL backends.
    Postgres,
    /// NATS with JetStream.
    Nats,
    /// RabbitMQ (AMQP 0.9.1).
    Amqp,
}

impl Service {
    /// Every service, in the order `cargo xtask services` reports them.
    pub const ALL: [Service; 4] = [
        Service::Redis,
        Service::Postgres,
        Service::Nats,
        Service::Amqp,
    ];

    /// Returns the product name, as used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Service::Redis => "Redis",
            Service::Postgres => "PostgreSQL",
            Service::Nats => "NATS",
            Service::Amqp => "RabbitMQ",
        }
    }

    /// Returns the environment variable that overrides the default URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Redis => "PULSE_REDIS_URL",
            Service::Postgres => "PULSE_POSTGRES_URL",
            Service::Nats => "PULSE_NATS_URL",
            Service::Amqp => "PULSE_AMQP_URL",
        }
    }

    /// Returns the URL used when the environment variable is not set.
    pub fn default_url(self) -> &'static str {
        match self {
            Service::Redis => "redis://127.0.0.1:6379",
            Service::Postgres => "postgres://postgres@127.0.0.1:5432/test",
            Service::Nats => "nats://127.0.0.1:4222",
            Service::Amqp => "amqp://guest:guest@127.0.0.1:5672/%2f",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Service::Redis => 6379,
            Service::Postgres => 5432,
            Service::Nats => 4222,
            Service::Amqp => 5672,
        }
    }

    fn schemes(self) -> &'static [&'static str] {
        match self {
            Service::Redis => &["redis", "rediss"],
            Service::Postgres => &["postgres", "postgresql"],
            Service::Nats => &["nats", "tls"],
            Service::Amqp => &["amqp", "amqps"],
        }
    }

    /// Returns the configured URL: the environment variable when it is set
    /// and not empty, otherwise [`default_url`](Service::default_url).
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the variable and its (redacted) value
    /// when the URL has the wrong scheme or no host.
    pub fn url(self) -> Result<String, ConfigError> {
        let url = match std::env::var(self.env_var()) {
            Ok(value) if !value.trim().is_empty() => value.trim().to_owned(),
            _ => self.default_url().to_owned(),
        };
        self.socket_target(&url)?;
        Ok(url)
    }

    /// Returns whether the configured server accepts a TCP connection within
    /// two seconds.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] when the configured URL is malformed.
    pub fn is_reachable(self) -> Result<bool, ConfigError> {
        let url = self.url()?;
        Ok(matches!(self.probe(&url)?, Probe::Up))
    }

    /// Splits `url` into the host and port the probe connects to.
    fn socket_target(self, url: &str) -> Result<(String, u16), ConfigError> {
        let invalid = |fix: String| ConfigError::new(self.env_var(), redact_url(url), fix);

        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(format!(
                "use a URL such as `{}`",
                self.default_url()
            )));
        };
        if !self
            .schemes()
            .contains(&scheme.to_ascii_lowercase().as_str())
        {
            return Err(invalid(format!(
                "use one of the schemes {:?} for {}",
                self.schemes(),
                self.name()
            )));
        }

        // The authority ends at the path, query or fragment, and the host
        // starts after the user information.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);

        let (host, port) = split_host_port(host_port)
            .ok_or_else(|| invalid("give the port as a number from 1 to 65535".to_owned()))?;
        if host.is_empty() {
            return Err(invalid(format!(
                "give a host name or address, as in `{}`",
                self.default_url()
            )));
        }
        Ok((host.to_owned(), port.unwrap_or(self.default_port())))
    }

    fn probe(self, url: &str) -> Result<Probe, ConfigError> {
        let (host, port) = self.socket_target(url)?;
        let addrs: Vec<SocketAddr> = match (host.as_str(), port).to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(err) => {
                return Ok(Probe::Down {
                    reason: format!("cannot resolve `{host}`: {err}"),
                });
            }
        };

        let mut last_error = format!("`{host}` resolved to no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
                Ok(_) => return Ok(Probe::Up),
                Err(err) => last_error = format!("connecting to {addr} failed: {err}"),
            }
        }
        Ok(Probe::Down { reason: last_error })
    }

    /// Returns a hint on how to get the server running.
    fn start_hint(self) -> String {
        format!(
            "start {} (as root, `cargo xtask services` starts every missing server) \
             or point {} at a running one",
            self.name(),
            self.env_var()
        )
    }
}

/// Splits `host:port`, `host`, `[v6]:port` or `[v6]`. Returns `None` when the
/// port is present but not a valid non-zero port number.
fn split_host_port(host_port: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };

    match port {
        None => Some((host, None)),
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => None,
            Ok(port) => Some((host, Some(port))),
        },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Up,
    Down { reason: String },
}

/// Returns whether the `CI` environment variable is `true` or `1`, the
/// setting under which a missing server fails a test instead of skipping it.
pub fn ci_mode() -> bool {
    std::env::var("CI")
        .map(|value| value.eq_ignore_ascii_case("true") || value == "1")
        .unwrap_or(false)
}

/// Returns the Redis URL when Redis accepts connections; see the [module docs](self).
///
/// # Panics
///
/// Panics when `PULSE_REDIS_URL` is malformed, or when Redis does not answer
/// and `CI=true`.
pub fn redis_url() -> Option<String> {
    require(Service::Redis)
}

/// Returns the PostgreSQL URL when PostgreSQL accepts
/// connections; see the
/// [module docs](self).
///
/// # Panics
///
/// Panics when `PULSE_POSTGRES_URL` is malformed, or when PostgreSQL does not
/// answer and `CI=true`.
pub fn postgres_url() -> Option<String> {
    require(Service::Postgres)
}

/// Returns the NATS URL when NATS accepts connections; see the [module docs](self).
///
/// # Panics
///
/// Panics when `PULSE_NATS_URL` is malformed, or when NATS does not answer
/// and `CI=true`.
pub fn nats_url() -> Option<String> {
    require(Service::Nats)
}

/// Returns the RabbitMQ URL when RabbitMQ accepts
/// connections; see the
/// [module docs](self).
///
/// # Panics
///
/// Panics when `PULSE_AMQP_URL` is malformed, or when RabbitMQ does not
/// answer and `CI=true`.
pub fn amqp_url() -> Option<String> {
    require(Service::Amqp)
}

/// Returns the URL of `service` when it accepts connections, and otherwise fails the test
/// under `CI=true` or skips it loudly.
///
/// # Panics
///
/// Panics when the configured URL is malformed, because a test run with a
/// wrong setting must not look like a run without the server, and when the
/// server does not answer and `CI=true`.
pub fn require(service: Service) -> Option<String> {
    let url = match service.url() {
        Ok(url) => url,
        Err(err) => panic!("{err}"),
    };
    let probe = match service.probe(&url) {
        Ok(probe) => probe,
        Err(err) => panic!("{err}"),
    };
    decide(service, url, probe, ci_mode())
}

/// Turns a probe result into the helper's answer: the URL, a skip, or (under
/// CI) a panic.
fn decide(service: Service, url: String, probe: Probe, ci: bool) -> Option<String> {
    let Probe::Down { reason } = probe else {
        return Some(url);
    };

    let shown_url = redact_url(&url);
    if ci {
        panic!(
            "{} is not reachable at {shown_url} ({reason}), and CI=true turns a missing \
             server into a test failure: {}",
            service.name(),
            service.start_hint()
        );
    }

    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    let line = format!(
        "\n*** SKIPPED {test}: {} is not reachable at {shown_url} ({reason}); {} ***\n",
        service.name(),
        service.start_hint()
    );
    // Written to the process's standard error directly: `eprintln!` output
    // is captured by the test harness and shown only for failed tests.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    tracing::warn!(
        target: "pulse_testkit",
        service = service.name(),
        url = %shown_url,
        %reason,
        "test skipped: server not reachable"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Returns a loopback port that nothing listens on.
    fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn closed_port_probes_down() {
        let url = format!("redis://127.0.0.1:{}", closed_port());
        let probe = Service::Redis.probe(&url).unwrap();
        assert!(matches!(probe, Probe::Down { .. }), "{probe:?}");
    }

    #[test]
    fn listening_port_probes_up() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("nats://{}", listener.local_addr().unwrap());
        assert_eq!(Service::Nats.probe(&url).unwrap(), Probe::Up);
    }

    #[test]
    fn missing_server_skips_outside_ci() {
        let url = format!("postgres://postgres@127.0.0.1:{}/test", closed_port());
        let probe = Service::Postgres.probe(&url).unwrap();
        assert_eq!(decide(Service::Postgres, url, probe, false), None);
    }

    #[test]
    #[should_panic(expected = "CI=true")]
    fn missing_server_fails_under_ci() {
        let url = format!("redis://127.0.0.1:{}", closed_port());
        let probe = Service::Redis.probe(&url).unwrap();
        decide(Service::Redis, url, probe, true);
    }

    #[test]
    fn present_server_returns_url_under_ci() {
        let url = "amqp://127.0.0.1:5672".to_owned();
        assert_eq!(
            decide(Service::Amqp, url.clone(), Probe::Up, true),
            Some(url)
        );
    }

    #[test]
    fn malformed_urls_are_rejected_with_value() {
        let cases = [
            (Service::Redis, "127.0.0.1:6379"),
            (Service::Redis, "http://127.0.0.1:6379"),
            (Service::Postgres, "postgres://user:hunter2@/test"),
            (Service::Nats, "nats://127.0.0.1:port"),
            (Service::Amqp, "amqp://127.0.0.1:0"),
        ];
        for (service, url) in cases {
            let err = service.socket_target(url).unwrap_err();
            assert_eq!(err.field(), service.env_var(), "{url}");
            assert_eq!(err.value(), redact_url(url), "{url}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn targets_take_default_ports() {
        assert_eq!(
            Service::Postgres.socket_target("postgresql://u:p@db.local/test?x=1"),
            Ok(("db.local".to_owned(), 5432))
        );
        assert_eq!(
            Service::Redis.socket_target("redis://[::1]:7000/0"),
            Ok(("::1".to_owned(), 7000))
        );
        assert_eq!(
            Service::Amqp.socket_target(Service::Amqp.default_url()),
            Ok(("127.0.0.1".to_owned(), 5672))
        );
    }
}
