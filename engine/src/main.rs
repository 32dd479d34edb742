//! The `smsflow` binary.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// What is logged without `SMSFLOW_LOG`: warnings from everything, and the engine's own
/// milestones (flows loaded and reloaded, handoffs, blocked texts) at info.
const DEFAULT_LOG: &str = "warn,smsflow=info";

#[tokio::main]
async fn main() -> ExitCode {
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SMSFLOW_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match smsflow::cli::Cli::parse().run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
