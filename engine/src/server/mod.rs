//! `smsflow serve`: the engine behind HTTP.
//!
//! [`router`] builds the routes, grouped by who may call them ([`providers`]' webhooks,
//! [`operator`]'s `/v1` API behind a bearer-token layer, `agent_api`'s `/v1/agent` calls as
//! the agent [`agent_auth`] resolves, the [`pages`]); [`error::ApiError`] is
//! the one place failures become statuses. [`serve`] builds the engine from the config
//! ([`crate::engine`]), serves until Ctrl-C or SIGTERM, then lets the work in progress finish.
//!
//! Every body is limited to 64 KiB before it is read. An inbound text is acknowledged only once
//! it is on disk, and only after compliance has screened it: a STOP is in the ledger before the
//! provider hears 2xx.

mod agent_api;
pub mod agent_auth;
mod agents;
mod auth;
mod campaigns;
mod contacts;
mod dead_letters;
pub mod error;
mod measure;
mod operator;
pub mod pages;
mod providers;
mod records;
mod router;
mod sign_in_limit;

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
    if config.cluster.is_some() {
        return serve_cluster_node(config).await;
    }
    if config.compliance.brand.is_none() {
        tracing::warn!(
            "`[compliance] brand` is not set: a HELP from a number no flow has texted is answered \
             with no brand; `smsflow check --config` lists every program without one"
        );
    }
    let engine = EngineBuilder::from_config(&config).build().await?;
    let workers = engine.spawn_workers();
    serve_front(&engine, &config, None).await?;
    // Requests in flight finished. Then the texts being processed and the sends being made
    // finish too; whatever was not started is still in the store for the next start.
    engine.drain(SHUTDOWN_GRACE).await;
    workers.abort();
    engine.store().flush().await?;
    Ok(())
}

/// `serve` with `[cluster]`: the node's own engine serves the API, its partitions' engines
/// apply the inputs it publishes; on SIGTERM every partition is handed over.
async fn serve_cluster_node(config: Config) -> anyhow::Result<()> {
    let front = EngineBuilder::from_config(&config).build().await?;
    let node = crate::cluster::node::start(&config, &front).await?;
    let cluster = (Arc::clone(&node.ingress), Arc::clone(&node.report));
    serve_front(&front, &config, Some(cluster)).await?;
    node.leave().await?;
    front.store().flush().await?;
    Ok(())
}

/// The cluster parts the HTTP side uses: the ingress that publishes to partitions, and the
/// node's report.
pub type ClusterFront = (
    Arc<crate::cluster::ingress::ClusterIngress>,
    crate::cluster::node::SharedReport,
);

/// Asks the owner of the contact's partition.
///
/// # Errors
///
/// 503 when no owner answers in time (a failover is in progress): the client should retry.
pub(crate) async fn cluster_read(
    ingress: &crate::cluster::ingress::ClusterIngress,
    read: &crate::cluster::rpc::Read,
) -> Result<crate::cluster::rpc::Answer, error::ApiError> {
    ingress
        .read(read)
        .await
        .map_err(|error| error::ApiError::store("the partition's owner did not answer", &error))
}

/// An owner's answer that is not the one asked for, as the API's error.
pub(crate) fn cluster_refusal(answer: crate::cluster::rpc::Answer) -> error::ApiError {
    match answer {
        crate::cluster::rpc::Answer::NotFound { what } => error::ApiError::NotFound(what),
        crate::cluster::rpc::Answer::Failed { error } => {
            error::ApiError::store("the partition's owner failed to read", &error)
        }
        other => error::ApiError::store(
            "the partition's owner answered another read",
            &format!("{other:?}"),
        ),
    }
}

/// Serves `engine`'s API until Ctrl-C or SIGTERM; requests in flight finish before this
/// returns. With `cluster`, texts and starts go to their partitions instead of `engine`.
///
/// # Errors
///
/// When `[server]`'s limits are wrong or the address cannot be bound.
pub(crate) async fn serve_front(
    engine: &crate::engine::Engine,
    config: &Config,
    cluster: Option<ClusterFront>,
) -> anyhow::Result<()> {
    let limits = config.server.connection_limits(SHUTDOWN_GRACE);
    limits.check().context("[server]")?;
    let mut state = AppState::new(engine, config)?;
    state.cluster = cluster;
    let listener = bind(&config.server.listen).await?;
    println!("smsflow listening on http://{}", listener.local_addr()?);
    crate::listener::serve(listener, router(Arc::new(state)), limits, shutdown_signal())
        .await
        .context("the server failed")
}

/// Connections the kernel queues while the server is at its connection cap. The standard
/// library's default is 128; a burst of provider retries is larger than that.
const ACCEPT_BACKLOG: u32 = 1024;

/// Listens on `address` with [`ACCEPT_BACKLOG`].
async fn bind(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let cannot = || format!("cannot listen on {address}");
    let address = tokio::net::lookup_host(address)
        .await
        .with_context(cannot)?
        .next()
        .with_context(cannot)?;
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .with_context(cannot)?;
    socket.set_reuseaddr(true).with_context(cannot)?;
    socket.bind(address).with_context(cannot)?;
    socket.listen(ACCEPT_BACKLOG).with_context(cannot)
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
