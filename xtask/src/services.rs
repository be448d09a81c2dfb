//! `cargo xtask services`: which local servers respond, and starting the
//! missing ones.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) const HELP: &str = "\
cargo xtask services [--no-start] [--require]

Reports which of the servers the tests use accept a TCP connection:
Redis, PostgreSQL, NATS and RabbitMQ. Each is looked up at the URL in its
variable (PULSE_REDIS_URL, PULSE_POSTGRES_URL, PULSE_NATS_URL,
PULSE_AMQP_URL) or at its default loopback address.

When run as root, a server that does not respond at its default loopback
address is started with its usual command, and the command waits up to
60 s for it to accept connections:

  Redis       redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379
              --save \"\" --appendonly no --dir /var/lib/redis
              --logfile /var/log/redis/ci.log
  PostgreSQL  pg_ctlcluster --skip-systemctl-redirect <version> main start
  NATS        start-stop-daemon --start --oknodo --background
              --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js
              -sd /var/lib/nats-server -l /var/log/nats-server.log
  RabbitMQ    rabbitmq-server -detached

Touches: opens and closes one TCP connection per server; as root, may
start those server processes (never stops or restarts a running one).

Options:
  --no-start  only report, start nothing
  --require   exit with an error when a server still does not respond
              (the default under CI=true)
";

/// A server the tests use.
struct Service {
    name: &'static str,
    env_var: &'static str,
    default_host: &'static str,
    default_port: u16,
    /// The shell command that starts it as root, or `None` when it cannot be
    /// started from here.
    start: fn() -> Option<String>,
    /// How long it usually needs after the start command returns.
    startup: Duration,
}

const SERVICES: &[Service] = &[
    Service {
        name: "Redis",
        env_var: "PULSE_REDIS_URL",
        default_host: "127.0.0.1",
        default_port: 6379,
        start: || {
            Some(
                "mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes \
                 --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no \
                 --dir /var/lib/redis --logfile /var/log/redis/ci.log"
                    .to_owned(),
            )
        },
        startup: Duration::from_secs(10),
    },
    Service {
        name: "PostgreSQL",
        env_var: "PULSE_POSTGRES_URL",
        default_host: "127.0.0.1",
        default_port: 5432,
        start: postgres_start_command,
        startup: Duration::from_secs(30),
    },
    Service {
        name: "NATS",
        env_var: "PULSE_NATS_URL",
        default_host: "127.0.0.1",
        default_port: 4222,
        start: || {
            Some(
                "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server \
                 -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
                    .to_owned(),
            )
        },
        startup: Duration::from_secs(10),
    },
    Service {
        name: "RabbitMQ",
        env_var: "PULSE_AMQP_URL",
        default_host: "127.0.0.1",
        default_port: 5672,
        start: || Some("rabbitmq-server -detached".to_owned()),
        // The Erlang VM and the broker take a while on a small machine.
        startup: Duration::from_secs(60),
    },
];

/// `pg_ctlcluster` needs the cluster's version, the one directory under
/// `/etc/postgresql`.
fn postgres_start_command() -> Option<String> {
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .max()?;
    Some(format!(
        "pg_ctlcluster --skip-systemctl-redirect {version} main start"
    ))
}

/// The address a service is probed at, and whether it is the default one
/// (only a default local server is ours to start).
struct Target {
    host: String,
    port: u16,
    is_default: bool,
}

impl Service {
    fn target(&self) -> Result<Target, String> {
        let configured = std::env::var(self.env_var)
            .ok()
            .filter(|value| !value.trim().is_empty());
        let Some(url) = configured else {
            return Ok(Target {
                host: self.default_host.to_owned(),
                port: self.default_port,
                is_default: true,
            });
        };

        let (host, port) = host_and_port(&url).ok_or_else(|| {
            format!(
                "{} is not a URL with a host (`scheme://[user@]host[:port]`); fix or unset it",
                self.env_var
            )
        })?;
        let port = port.unwrap_or(self.default_port);
        let is_default =
            port == self.default_port && matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1");
        Ok(Target {
            host,
            port,
            is_default,
        })
    }
}

/// Extracts the host and port from `scheme://[user[:password]@]host[:port][/...]`.
fn host_and_port(url: &str) -> Option<(String, Option<u16>)> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);

    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(port) => Some(port.parse().ok().filter(|port| *port != 0)?),
        None => None,
    };
    Some((host.to_owned(), port))
}

fn responds(target: &Target) -> bool {
    let Ok(addrs) = (target.host.as_str(), target.port).to_socket_addrs() else {
        return false;
    };
    let addrs: Vec<SocketAddr> = addrs.collect();
    addrs
        .iter()
        .any(|addr| TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok())
}

fn is_root() -> bool {
    // `id -u` avoids unsafe code for `geteuid`.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn wait_until_responds(target: &Target, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if responds(target) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    responds(target)
}

/// Starts `service` with its usual command. Returns a message when the start
/// command is unavailable or fails.
fn start(service: &Service, target: &Target) -> Result<(), String> {
    let command = (service.start)()
        .ok_or_else(|| format!("no start command for {} on this machine", service.name))?;
    println!("  starting {}: {command}", service.name);
    let status = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .status()
        .map_err(|err| format!("cannot run `sh -c {command}`: {err}"))?;
    if !status.success() {
        return Err(format!("`{command}` failed with {status}"));
    }
    if wait_until_responds(target, service.startup) {
        Ok(())
    } else {
        Err(format!(
            "{} started but did not accept connections within {:?}",
            service.name, service.startup
        ))
    }
}

/// Entry point of `cargo xtask services`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut may_start = true;
    let mut require = crate::ci::ci_mode();
    for arg in args {
        match arg.as_str() {
            "--no-start" => may_start = false,
            "--require" => require = true,
            other => {
                return Err(format!(
                    "unknown option `{other}` for `services`; see --help"
                ));
            }
        }
    }
    check(may_start, require)
}

/// Reports every service, starts missing ones when allowed and possible,
/// and fails when `require` is set and one still does not respond.
pub(crate) fn check(may_start: bool, require: bool) -> Result<(), String> {
    let root = is_root();
    let mut missing = Vec::new();

    for service in SERVICES {
        let target = service.target()?;
        let shown = format!("{}:{}", target.host, target.port);
        if responds(&target) {
            println!("  {:<11} up       {shown}", service.name);
            continue;
        }

        let outcome = if !may_start {
            Err("not started (--no-start)".to_owned())
        } else if !target.is_default {
            Err(format!(
                "not started, because {} points elsewhere",
                service.env_var
            ))
        } else if !root {
            Err("not started, because starting servers needs root".to_owned())
        } else {
            start(service, &target)
        };
        match outcome {
            Ok(()) => println!("  {:<11} started  {shown}", service.name),
            Err(reason) => {
                println!("  {:<11} DOWN     {shown}: {reason}", service.name);
                missing.push(service.name);
            }
        }
    }

    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(", ");
    if require {
        Err(format!(
            "{list} not available; tests that need it fail under CI=true"
        ))
    } else {
        println!("  warning: {list} not available; tests that need it will be skipped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_parses_urls() {
        assert_eq!(
            host_and_port("redis://127.0.0.1:6379/0"),
            Some(("127.0.0.1".to_owned(), Some(6379)))
        );
        assert_eq!(
            host_and_port("postgres://u:p@db/test"),
            Some(("db".to_owned(), None))
        );
        assert_eq!(
            host_and_port("nats://[::1]:4222"),
            Some(("::1".to_owned(), Some(4222)))
        );
    }

    #[test]
    fn host_and_port_rejects_malformed() {
        assert_eq!(host_and_port("127.0.0.1:6379"), None);
        assert_eq!(host_and_port("redis://:6379"), None);
        assert_eq!(host_and_port("redis://h:port"), None);
        assert_eq!(host_and_port("redis://h:0"), None);
    }
}
