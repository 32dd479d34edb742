//! The `smsflow` binary.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// What is logged without `SMSFLOW_LOG`: warnings from everything, and the engine's own
/// milestones (flows loaded and reloaded, handoffs, blocked texts) at info.
const DEFAULT_LOG: &str = "warn,smsflow=info";

#[tokio::main]
async fn main() -> ExitCode {
    let (otlp, provider) = match smsflow::telemetry::otlp_endpoint() {
        Some(endpoint) => match smsflow::telemetry::otlp_tracer(&endpoint) {
            Ok((tracer, provider)) => (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            ),
            Err(error) => {
                eprintln!("error: OTLP export to {endpoint}: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => (None, None),
    };
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_env("SMSFLOW_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        );
    tracing_subscriber::registry().with(otlp).with(logs).init();
    let code = match smsflow::cli::Cli::parse().run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    if let Some(provider) = provider {
        // Flush what is buffered.
        let _ = provider.shutdown();
    }
    code
}
