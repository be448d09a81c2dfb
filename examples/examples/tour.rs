//! The gopulse tour: a small order service that uses every primitive.
//!
//! ```text
//! cargo run --example tour                      # in-process backends
//! cargo run --example tour -- --backend redis   # the same workload on Redis
//! cargo run --example tour -- --help
//! ```

use std::io::IsTerminal;
use std::process::ExitCode;

use gopulse_examples::tour::{self, args};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let config = match args::parse(&arguments) {
        Ok(args::Parsed::Run(config)) => config,
        Ok(args::Parsed::Help) => {
            eprint!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };

    match tour::run(&config).await {
        Ok(summary) => {
            #[allow(clippy::print_stdout, reason = "the table is the program's output")]
            {
                println!("{summary}");
            }
            if summary.is_consistent() {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: events or follow-ups went missing or were handled twice");
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
