//! `cargo xtask`: the workspace's own automation, run as
//! `cargo xtask <command>` through the alias in `.cargo/config.toml`.
//!
//! Each command lives in a module of its own with a `HELP` text and a `run`
//! function; `main` only dispatches. Add a command by adding a module and a
//! line to [`COMMANDS`].

// The output is for people at a terminal, so printing to standard output is
// the point of this program.
#![allow(clippy::print_stdout)]

mod bench;
mod ci;
mod process;
mod release;
mod services;

use std::process::ExitCode;

/// A subcommand: its name, a one-line summary, its help text and its entry
/// point, which takes the arguments after the name.
struct Command {
    name: &'static str,
    summary: &'static str,
    help: &'static str,
    run: fn(&[String]) -> Result<(), String>,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "bench",
        summary: "run the peer benchmarks and rewrite docs/benchmarks.md",
        help: bench::HELP,
        run: bench::run,
    },
    Command {
        name: "ci",
        summary: "run every CI gate: services, fmt, clippy, tests, cargo-deny",
        help: ci::HELP,
        run: ci::run,
    },
    Command {
        name: "release",
        summary: "plan, prepare, verify, tag and publish releases of the crates",
        help: release::HELP,
        run: release::run,
    },
    Command {
        name: "services",
        summary: "report which local servers respond, and start missing ones as root",
        help: services::HELP,
        run: services::run,
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprint!("{}", overview());
        return ExitCode::FAILURE;
    };

    if matches!(name.as_str(), "-h" | "--help" | "help") {
        match args.get(1).and_then(|name| find(name)) {
            Some(command) => print!("{}", command.help),
            None => print!("{}", overview()),
        }
        return ExitCode::SUCCESS;
    }

    let Some(command) = find(name) else {
        eprintln!("error: unknown command `{name}`\n");
        eprint!("{}", overview());
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    if rest.iter().any(|arg| arg == "-h" || arg == "--help") {
        print!("{}", command.help);
        return ExitCode::SUCCESS;
    }

    match (command.run)(rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|command| command.name == name)
}

fn overview() -> String {
    let mut text = String::from(
        "Workspace automation for gopulse.\n\nUsage: cargo xtask <command> [options]\n\nCommands:\n",
    );
    for command in COMMANDS {
        text.push_str(&format!("  {:<10} {}\n", command.name, command.summary));
    }
    text.push_str("\nRun `cargo xtask <command> --help` for what a command does and touches.\n");
    text
}
