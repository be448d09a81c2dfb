//! Running commands and timing them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Returns the cargo that runs this program, so that `cargo +toolchain
/// xtask` uses one toolchain throughout.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
}

/// Shows a command as a shell line would, for logs.
pub(crate) fn display(command: &Command) -> String {
    // The program's file name is enough: `cargo`, not the toolchain path.
    let program = std::path::Path::new(command.get_program());
    let mut line = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `command` with inherited output and returns how long it took.
///
/// # Errors
///
/// Returns a message naming the command when it cannot start or exits with
/// a failure status.
pub(crate) fn run(mut command: Command) -> Result<Duration, String> {
    let command_line = display(&command);
    println!("$ {command_line}");
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|err| format!("cannot run `{command_line}`: {err}"))?;
    if status.success() {
        Ok(started.elapsed())
    } else {
        Err(format!("`{command_line}` failed with {status}"))
    }
}

/// The outcome of [`run_filtered`].
pub(crate) struct Filtered {
    /// `Ok` when the command exited successfully, otherwise a message naming
    /// it and its exit status.
    pub(crate) outcome: Result<(), String>,
    /// The output lines the filter kept, also when the command failed.
    pub(crate) kept: Vec<String>,
}

/// Runs `command`, streaming its standard output while keeping the lines for
/// which `keep` returns true.
pub(crate) fn run_filtered(mut command: Command, keep: impl Fn(&str) -> bool) -> Filtered {
    let command_line = display(&command);
    println!("$ {command_line}");
    let mut kept = Vec::new();
    let mut child = match command.stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(err) => {
            return Filtered {
                outcome: Err(format!("cannot run `{command_line}`: {err}")),
                kept,
            };
        }
    };

    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            if keep(&line) {
                kept.push(line);
            }
        }
    }

    let outcome = match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("`{command_line}` failed with {status}")),
        Err(err) => Err(format!("waiting for `{command_line}` failed: {err}")),
    };
    Filtered { outcome, kept }
}
