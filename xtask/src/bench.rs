//! `cargo xtask bench`: runs the peer benchmarks and rewrites
//! `docs/benchmarks.md` and `docs/benchmarks.svg` from criterion's results.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::process;

pub(crate) const HELP: &str = "\
cargo xtask bench [--no-run] [--quick] [AREA ...]

Runs the criterion benchmarks of the gopulse-benches package, product and
peer crate in the same run, and rewrites docs/benchmarks.md (one table per
area: product, peer, ratio, target, command, machine) and docs/benchmarks.svg
(the ratios as bars, with each target marked).

Areas: ratelimit, id, cache, lock, mq, sched, conc (default: all). The Redis
benchmarks need the Redis server on 127.0.0.1:6379.

Options:
  --no-run   only rewrite the report from the results already under
             target/criterion
  --quick    1 s warm-up and 3 s measurement per benchmark instead of
             criterion's defaults

Touches: target/ (builds and criterion results) and the two files under docs/.
";

const AREAS: [&str; 7] = ["ratelimit", "id", "cache", "lock", "mq", "sched", "conc"];

/// One product-against-peer comparison: two criterion benchmark ids of the
/// same group and the target for product time over peer time.
struct Comparison {
    area: &'static str,
    workload: &'static str,
    product: &'static str,
    peer: &'static str,
    /// The largest acceptable product time ÷ peer time.
    target: f64,
}

const COMPARISONS: &[Comparison] = &[
    Comparison {
        area: "ratelimit",
        workload: "one key, one thread, admitted",
        product: "ratelimit/one_key_one_thread/admitted/pulse_gcra",
        peer: "ratelimit/one_key_one_thread/admitted/governor_direct",
        target: 0.8,
    },
    Comparison {
        area: "ratelimit",
        workload: "one key, one thread, rejected",
        product: "ratelimit/one_key_one_thread/rejected/pulse_gcra",
        peer: "ratelimit/one_key_one_thread/rejected/governor_direct",
        target: 0.8,
    },
    Comparison {
        area: "ratelimit",
        workload: "one key, 2 threads (target: 1.5× throughput)",
        product: "ratelimit/two_threads_one_key/admitted/pulse_gcra",
        peer: "ratelimit/two_threads_one_key/admitted/governor_direct",
        target: 1.0 / 1.5,
    },
    Comparison {
        area: "ratelimit",
        workload: "keyed check over 1000 keys",
        product: "ratelimit/keyed_1000_keys/pulse_keyed_gcra",
        peer: "ratelimit/keyed_1000_keys/governor_keyed",
        target: 0.8,
    },
    Comparison {
        area: "ratelimit",
        workload: "Redis GCRA decision vs one bare EVALSHA",
        product: "ratelimit/redis_gcra/pulse_redis_gcra",
        peer: "ratelimit/redis_gcra/bare_evalsha",
        target: 1.1,
    },
    Comparison {
        area: "id",
        workload: "Snowflake, 22 sequence bits, vs AtomicU64 fetch_add",
        product: "id/snowflake/snowflake_22_sequence_bits",
        peer: "id/snowflake/atomic_fetch_add",
        target: 3.0,
    },
    Comparison {
        area: "id",
        workload: "UUIDv7 monotonic across threads vs Uuid::now_v7",
        product: "id/uuid_v7/pulse_monotonic_v7",
        peer: "id/uuid_v7/uuid_now_v7",
        target: 0.3,
    },
    Comparison {
        area: "id",
        workload: "ULID shared across threads vs ulid::Generator (&mut)",
        product: "id/ulid/pulse_monotonic_ulid_shared",
        peer: "id/ulid/ulid_generator_mut",
        target: 1.0,
    },
    Comparison {
        area: "cache",
        workload: "local hit with TTL vs quick_cache get",
        product: "cache_local_hit/pulse_local_ttl",
        peer: "cache_local_hit/quick_cache",
        target: 1.5,
    },
    Comparison {
        area: "cache",
        workload: "local hit with TTL vs moka get",
        product: "cache_local_hit/pulse_local_ttl",
        peer: "cache_local_hit/moka_ttl",
        target: 1.0,
    },
    Comparison {
        area: "cache",
        workload: "near-cache hit vs local-tier hit",
        product: "cache_near_hit/pulse_near_get",
        peer: "cache_near_hit/pulse_local_string_key",
        target: 1.05,
    },
    Comparison {
        area: "lock",
        workload: "Redis acquire + release vs rslock's protocol",
        product: "lock/redis_acquire_release/pulse_redis_lock",
        peer: "lock/redis_acquire_release/rslock_protocol",
        target: 0.8,
    },
    Comparison {
        area: "lock",
        workload: "keyed mutex vs tokio Mutex in a sharded map",
        product: "lock/keyed_mutex/pulse_keyed_mutex",
        peer: "lock/keyed_mutex/dashmap_tokio_mutex",
        target: 1.2,
    },
    Comparison {
        area: "mq",
        workload: "Redis Streams publish 100k vs raw redis",
        product: "mq/redis_100k_16B/publish/pulse",
        peer: "mq/redis_100k_16B/publish/raw_redis",
        target: 1.1,
    },
    Comparison {
        area: "mq",
        workload: "Redis Streams consume 100k vs raw redis",
        product: "mq/redis_100k_16B/consume/pulse",
        peer: "mq/redis_100k_16B/consume/raw_redis",
        target: 1.1,
    },
    Comparison {
        area: "sched",
        workload: "schedule 1M delayed tasks vs DelayQueue",
        product: "sched/schedule_1M/pulse_sched::TimerWheel::insert",
        peer: "sched/schedule_1M/tokio_util::DelayQueue::insert",
        target: 1.0,
    },
    Comparison {
        area: "sched",
        workload: "add a pre-parsed cron job vs tokio-cron-scheduler",
        product: "sched/cron_add/pulse_sched add pre-parsed",
        peer: "sched/cron_add/tokio_cron_scheduler add (job built outside)",
        target: 0.02,
    },
    Comparison {
        area: "sched",
        workload: "parse + add a cron job vs tokio-cron-scheduler",
        product: "sched/cron_add/pulse_sched parse + add",
        peer: "sched/cron_add/tokio_cron_scheduler parse + add",
        target: 0.25,
    },
    Comparison {
        area: "conc",
        workload: "breaker closed-path call vs recloser",
        product: "conc/breaker_closed_call/pulse_conc",
        peer: "conc/breaker_closed_call/recloser",
        target: 1.0,
    },
    Comparison {
        area: "conc",
        workload: "worker pool, 1M tiny tasks vs tokio::spawn + JoinSet",
        product: "conc/pool_1m_tiny_tasks/pulse_conc_handles",
        peer: "conc/pool_1m_tiny_tasks/tokio_spawn_joinset",
        target: 1.5,
    },
    Comparison {
        area: "conc",
        workload: "single-flight, many keys vs a mutex around a map",
        product: "conc/single_flight_16k_calls_10k_keys/pulse_conc",
        peer: "conc/single_flight_16k_calls_10k_keys/mutex_map",
        target: 1.0,
    },
];

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut areas: Vec<&str> = Vec::new();
    let mut measure = true;
    let mut quick = false;
    for arg in args {
        match arg.as_str() {
            "--no-run" => measure = false,
            "--quick" => quick = true,
            area => match AREAS.iter().find(|known| **known == area) {
                Some(known) => areas.push(known),
                None => {
                    return Err(format!(
                        "unknown argument `{area}`; the areas are {}",
                        AREAS.join(", ")
                    ));
                }
            },
        }
    }
    if areas.is_empty() {
        areas = AREAS.to_vec();
    }

    let root = workspace_root();
    if measure {
        for area in &areas {
            let mut command = process::cargo();
            command
                .current_dir(&root)
                .args(["bench", "-p", "gopulse-benches", "--bench", area]);
            if quick {
                command.args(["--", "--warm-up-time", "1", "--measurement-time", "3"]);
            }
            process::run(command)?;
        }
    }

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let results = read_results(&target_dir.join("criterion"));
    let machine = machine();
    let command = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };

    let docs = root.join("docs");
    fs::create_dir_all(&docs)
        .map_err(|err| format!("failed to create {}: {err}", docs.display()))?;
    let mut report = render_report(&results, &machine, command);
    report.push_str(&notes_index(&docs));
    fs::write(docs.join("benchmarks.md"), report)
        .map_err(|err| format!("failed to write docs/benchmarks.md: {err}"))?;
    fs::write(docs.join("benchmarks.svg"), render_svg(&results))
        .map_err(|err| format!("failed to write docs/benchmarks.svg: {err}"))?;
    println!("wrote docs/benchmarks.md and docs/benchmarks.svg");
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Reads every benchmark's mean time, in nanoseconds, keyed by its full id.
fn read_results(criterion: &Path) -> BTreeMap<String, f64> {
    let mut results = BTreeMap::new();
    let mut pending = vec![criterion.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|name| name == "new") {
                if let Some((id, mean)) = read_one(&path) {
                    results.insert(id, mean);
                }
            } else {
                pending.push(path);
            }
        }
    }
    results
}

fn read_one(dir: &Path) -> Option<(String, f64)> {
    let benchmark: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("benchmark.json")).ok()?).ok()?;
    let estimates: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("estimates.json")).ok()?).ok()?;
    let id = benchmark["full_id"].as_str()?.to_owned();
    let mean = estimates["mean"]["point_estimate"].as_f64()?;
    Some((id, mean))
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores ({cpu})")
}

fn format_time(nanos: f64) -> String {
    if nanos >= 1e9 {
        format!("{:.2} s", nanos / 1e9)
    } else if nanos >= 1e6 {
        format!("{:.2} ms", nanos / 1e6)
    } else if nanos >= 1e3 {
        format!("{:.2} µs", nanos / 1e3)
    } else {
        format!("{nanos:.1} ns")
    }
}

fn ratio(results: &BTreeMap<String, f64>, comparison: &Comparison) -> Option<f64> {
    let product = results.get(comparison.product)?;
    let peer = results.get(comparison.peer)?;
    (*peer > 0.0).then(|| product / peer)
}

fn render_report(results: &BTreeMap<String, f64>, machine: &str, command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Each row compares a gopulse primitive with its peer crate, measured in the same \
         criterion run. The ratio is product time ÷ peer time (lower is better); the \
         target is the largest ratio we accept. Absolute times on a shared machine are \
         noise; the ratio is the figure. A row without numbers was not measured in the \
         last run (a Redis benchmark without Redis, say). On a shared 2-core machine \
         the same ratio moves by 10 to 20% between runs; the notes of each area give \
         the spread seen.\n"
    );
    let _ = writeln!(out, "- Command: `{command}`");
    let _ = writeln!(out, "- Machine: {machine}\n");
    let _ = writeln!(out, "![ratio per comparison](benchmarks.svg)\n");

    for area in AREAS {
        let _ = writeln!(out, "## {area}\n");
        let _ = writeln!(out, "| workload | product | peer | ratio | target | met |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
        for comparison in COMPARISONS.iter().filter(|c| c.area == area) {
            let product = results
                .get(comparison.product)
                .map_or("-".to_owned(), |t| format_time(*t));
            let peer = results
                .get(comparison.peer)
                .map_or("-".to_owned(), |t| format_time(*t));
            let (ratio_text, met) = match ratio(results, comparison) {
                Some(ratio) => (
                    format!("{ratio:.3}"),
                    if ratio <= comparison.target {
                        "yes"
                    } else {
                        "no"
                    },
                ),
                None => ("-".to_owned(), "not measured"),
            };
            let _ = writeln!(
                out,
                "| {} | {product} | {peer} | {ratio_text} | ≤ {:.3} | {met} |",
                comparison.workload, comparison.target
            );
        }
        let _ = writeln!(out);
    }
    out
}

/// Links each area's notes (what limits a ratio, memory and staleness
/// figures) kept beside the report.
fn notes_index(docs: &Path) -> String {
    let mut out = String::new();
    let areas: Vec<&str> = AREAS
        .iter()
        .copied()
        .filter(|area| docs.join("bench").join(format!("{area}.md")).exists())
        .collect();
    if !areas.is_empty() {
        let _ = writeln!(
            out,
            "## Notes per area
"
        );
        let _ = writeln!(
            out,
            "What limits each ratio, and the figures a ratio cannot show (memory per entry, \
             staleness, lateness), are in the notes of each area:\n"
        );
        for area in areas {
            let _ = writeln!(out, "- [{area}](bench/{area}.md)");
        }
    }
    out
}

fn render_svg(results: &BTreeMap<String, f64>) -> String {
    const ROW: usize = 26;
    const LABEL: usize = 430;
    const BAR: f64 = 420.0;
    // Bars are drawn on a log scale from 0.01 to 10, because the targets span
    // 0.02 to 3.
    let scale = |ratio: f64| (ratio.clamp(0.01, 10.0).log10() + 2.0) / 3.0 * BAR;

    let height = 40 + ROW * COMPARISONS.len() + 30;
    let width = LABEL + BAR as usize + 120;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"20\" font-size=\"14\">gopulse ÷ peer time (log scale, lower is better; black tick = target)</text>"
    );
    for (row, comparison) in COMPARISONS.iter().enumerate() {
        let y = 40 + row * ROW;
        let label = format!("{}: {}", comparison.area, comparison.workload).replace('&', "&amp;");
        let _ = writeln!(out, "<text x=\"10\" y=\"{}\">{label}</text>", y + 14);
        let target_x = LABEL as f64 + scale(comparison.target);
        match ratio(results, comparison) {
            Some(ratio) => {
                let colour = if ratio <= comparison.target {
                    "#2e8b57"
                } else {
                    "#cd5c5c"
                };
                let _ = writeln!(
                    out,
                    "<rect x=\"{LABEL}\" y=\"{}\" width=\"{:.1}\" height=\"16\" fill=\"{colour}\"/>",
                    y + 2,
                    scale(ratio).max(1.0)
                );
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{}\">{ratio:.3}</text>",
                    LABEL as f64 + scale(ratio) + 6.0,
                    y + 14
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "<text x=\"{LABEL}\" y=\"{}\" fill=\"grey\">not measured</text>",
                    y + 14
                );
            }
        }
        let _ = writeln!(
            out,
            "<line x1=\"{target_x:.1}\" y1=\"{}\" x2=\"{target_x:.1}\" y2=\"{}\" stroke=\"black\" stroke-width=\"2\"/>",
            y,
            y + 20
        );
    }
    let axis_y = 40 + ROW * COMPARISONS.len() + 15;
    for (ratio, text) in [(0.01, "0.01"), (0.1, "0.1"), (1.0, "1"), (10.0, "10")] {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{axis_y}\" fill=\"grey\">{text}</text>",
            LABEL as f64 + scale(ratio) - 6.0
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_shows_ratio_and_target() {
        let mut results = BTreeMap::new();
        results.insert("conc/breaker_closed_call/pulse_conc".to_owned(), 5.0);
        results.insert("conc/breaker_closed_call/recloser".to_owned(), 10.0);
        let report = render_report(&results, "2 cores (test)", "cargo xtask bench");
        assert!(report.contains("| breaker closed-path call vs recloser | 5.0 ns | 10.0 ns | 0.500 | ≤ 1.000 | yes |"), "{report}");
        assert!(report.contains("not measured"));
        let svg = render_svg(&results);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn comparisons_name_known_areas() {
        for comparison in COMPARISONS {
            assert!(AREAS.contains(&comparison.area), "{}", comparison.area);
            assert!(comparison.target > 0.0);
            assert_ne!(comparison.product, comparison.peer);
        }
    }
}
