//! `ceiling`: a bare hyper HTTP/1.1 server answering Twilio inbound webhooks with empty TwiML,
//! the upper bound the bench compares smsflow with. Prints `ceiling listening on http://ADDR`.

use anyhow::Context as _;
use clap::Parser;

/// The bench's ceiling: HTTP alone, no engine.
#[derive(Debug, Parser)]
struct Args {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "{}http://{}",
        smsflow_bench::ceiling::ANNOUNCE,
        listener.local_addr()?
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        served = smsflow_bench::ceiling::serve(listener) => served,
        _ = terminate.recv() => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
