//! `cargo xtask ci`: every gate a change must pass, in the order CI runs them.

use std::time::Instant;

use crate::process::{self, cargo};

pub(crate) const HELP: &str = "\
cargo xtask ci [STEP...]

Runs the CI gates and prints a summary with each step's time. Without
arguments it runs every step, in this order; with arguments, only those:

  services  cargo xtask services: report the servers the tests use and,
            as root, start missing ones (a missing one fails under CI=true)
  fmt       cargo fmt --all -- --check
  clippy    cargo clippy --keep-going --workspace --all-targets --all-features
            -- -D warnings
  test      cargo test --workspace --exclude gopulse-benches --all-features
            (unit, integration and doc tests), then the test totals
  deny      cargo deny check bans licenses sources

A failing step does not stop the later ones; the command fails at the end
if any step failed. Advisories are not checked, because cargo-deny fetches
its advisory database from GitHub, which CI machines cannot reach; run
`cargo deny check advisories` where it can.

Touches: the build directory (CARGO_TARGET_DIR, default target/); as root,
may start local servers. Changes no source file.
";

/// A step's name and the function that runs it.
type Step = (&'static str, fn() -> StepResult);

/// The steps, in the order they run.
const STEPS: &[Step] = &[
    ("services", services),
    ("fmt", fmt),
    ("clippy", clippy),
    ("test", test),
    ("deny", deny),
];

/// The report of a step: success or a failure message, and extra summary
/// lines.
struct StepResult {
    outcome: Result<(), String>,
    notes: Vec<String>,
}

impl<T> From<Result<T, String>> for StepResult {
    fn from(outcome: Result<T, String>) -> Self {
        StepResult {
            outcome: outcome.map(|_| ()),
            notes: Vec::new(),
        }
    }
}

/// Returns whether `CI` is `true` or `1`, the setting under which tests fail
/// instead of skipping when a server is missing.
pub(crate) fn ci_mode() -> bool {
    std::env::var("CI")
        .map(|value| value.eq_ignore_ascii_case("true") || value == "1")
        .unwrap_or(false)
}

/// Entry point of `cargo xtask ci`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    for arg in args {
        if !STEPS.iter().any(|(name, _)| name == arg) {
            let names: Vec<&str> = STEPS.iter().map(|(name, _)| *name).collect();
            return Err(format!(
                "unknown step `{arg}`; the steps are {}",
                names.join(", ")
            ));
        }
    }
    let selected: Vec<_> = STEPS
        .iter()
        .filter(|(name, _)| args.is_empty() || args.iter().any(|arg| arg == name))
        .collect();

    let mut summary = Vec::new();
    let mut failed = Vec::new();
    for (name, step) in selected {
        println!("\n==> {name}");
        let started = Instant::now();
        let result = step();
        let seconds = started.elapsed().as_secs_f64();
        let line = match &result.outcome {
            Ok(()) => format!("  {name:<9} ok      {seconds:>7.1}s"),
            Err(message) => {
                failed.push(*name);
                format!("  {name:<9} FAILED  {seconds:>7.1}s  {message}")
            }
        };
        summary.push(line);
        summary.extend(
            result
                .notes
                .into_iter()
                .map(|note| format!("            {note}")),
        );
    }

    println!("\n==> summary");
    for line in &summary {
        println!("{line}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed steps: {}", failed.join(", ")))
    }
}

fn services() -> StepResult {
    crate::services::check(true, ci_mode()).into()
}

fn fmt() -> StepResult {
    let mut command = cargo();
    command.args(["fmt", "--all", "--", "--check"]);
    process::run(command).into()
}

fn clippy() -> StepResult {
    let mut command = cargo();
    command.args([
        "clippy",
        // Report every crate that fails, not only the first.
        "--keep-going",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    process::run(command).into()
}

fn test() -> StepResult {
    let mut command = cargo();
    command.args([
        "test",
        // Run every test binary, so one failure does not hide the others.
        "--no-fail-fast",
        "--workspace",
        "--exclude",
        "gopulse-benches",
        "--all-features",
    ]);
    let run = process::run_filtered(command, |line| line.starts_with("test result:"));
    let totals = TestTotals::from_lines(&run.kept);
    StepResult {
        outcome: run.outcome,
        notes: vec![totals.to_string()],
    }
}

fn deny() -> StepResult {
    // A plain `cargo deny` of a missing subcommand fails with a confusing
    // "no such command"; this check names the fix instead.
    let probe = cargo().args(["deny", "--version"]).output();
    let problem = match probe {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "`cargo deny --version` failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(err) => Some(format!("cannot run cargo: {err}")),
    };
    if let Some(problem) = problem {
        return StepResult::from(Err::<(), _>(format!(
            "{problem}; if cargo-deny is missing, run `cargo install --locked cargo-deny`"
        )));
    }

    let mut command = cargo();
    command.args(["deny", "check", "bans", "licenses", "sources"]);
    process::run(command).into()
}

/// The totals of the `test result:` lines of one `cargo test` run.
#[derive(Debug, Default, PartialEq, Eq)]
struct TestTotals {
    binaries: u32,
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    fn from_lines(lines: &[String]) -> Self {
        let mut totals = TestTotals::default();
        for line in lines {
            totals.binaries += 1;
            totals.passed += count_before(line, " passed");
            totals.failed += count_before(line, " failed");
            totals.ignored += count_before(line, " ignored");
        }
        totals
    }
}

impl std::fmt::Display for TestTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tests: {} passed, {} failed, {} ignored, in {} test binaries",
            self.passed, self.failed, self.ignored, self.binaries
        )
    }
}

/// Reads the number just before `label` in a line such as
/// `test result: ok. 14 passed; 0 failed; 2 ignored; ...`.
fn count_before(line: &str, label: &str) -> u64 {
    line.find(label)
        .and_then(|end| line[..end].rsplit([' ', '.']).next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_result_lines() {
        let lines = [
            "test result: ok. 14 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.13s",
            "test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.0s",
        ]
        .map(String::from);
        let totals = TestTotals::from_lines(&lines);
        assert_eq!(
            totals,
            TestTotals {
                binaries: 2,
                passed: 17,
                failed: 1,
                ignored: 2
            }
        );
    }
}
