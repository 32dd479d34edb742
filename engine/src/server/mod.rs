//! `smsflow serve`: the engine behind HTTP.
//!
//! [`router`] builds the routes, grouped by who may call them ([`providers`]' webhooks,
//! [`operator`]'s `/v1` API behind a bearer-token layer, public pages); [`error::ApiError`] is
//! the one place failures become statuses. [`serve`] builds the engine from the config
//! ([`crate::engine`]), serves until Ctrl-C or SIGTERM, then lets the work in progress finish.
//!
//! Every body is limited to 64 KiB before it is read. An inbound text is acknowledged only once
//! it is on disk, and only after compliance has screened it: a STOP is in the ledger before the
//! provider hears 2xx.

mod auth;
pub mod error;
mod operator;
mod providers;
mod router;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

pub use self::router::{AppState, router};
use crate::config::Config;
use crate::engine::EngineBuilder;

/// How long shutdown waits for work in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Request bodies larger than this are refused before they are read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub use crate::ingress::{TELNYX_PATH, TWILIO_INBOUND_PATH, TWILIO_STATUS_PATH};

/// Runs the server until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// When the engine cannot be built (store, plugins, flows, provider settings) or the address
/// cannot be bound.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let engine = EngineBuilder::from_config(&config).build().await?;
    let workers = engine.spawn_workers();
    let state = Arc::new(AppState::new(&engine, &config)?);
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    println!("smsflow listening on http://{}", listener.local_addr()?);
    // Requests in flight finish before this returns. Then the texts being processed and the
    // sends being made finish too; whatever was not started is still in the store for the next
    // start.
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server failed")?;
    engine.drain(SHUTDOWN_GRACE).await;
    workers.abort();
    engine.store().flush().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
