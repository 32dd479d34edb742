//! `smsflow serve`: the engine as a long-running HTTP server.
//!
//! It opens the store, loads the plugins and flows, starts the timer and outbox workers and
//! the flow-folder watcher, and serves the operator API:
//!
//! - `GET /healthz`
//! - `POST /v1/flows/{flow_id}/start` with `{"to": "+1...", "fields": {...}, "locale": "es"}`
//! - `GET /v1/conversations/{phone}`: state, fields, transcript and outbound texts
//!
//! `/v1` requires `Authorization: Bearer <server.api_token>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, ProviderKind};
use crate::flow::conversation::Event;
use crate::flow::runtime::{Runtime, RuntimeError, StartRequest};
use crate::outbound::{ConsoleProvider, Outbox, Provider};
use crate::phone::parse_e164;
use crate::plugin::PluginHost;
use crate::store::Store;

/// Request bodies larger than this are refused before they are read.
const MAX_BODY_BYTES: usize = 64 * 1024;

struct AppState {
    runtime: Arc<Runtime>,
    api_token: Option<String>,
    our_number: String,
}

/// Runs the server until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// When the store, the plugins or the flows cannot be loaded, or the address cannot be bound.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let our_number = parse_e164(&config.provider.from).context("[provider] from")?;
    let store = Store::open(&config.store.path)?;
    let clock: SharedClock = Arc::new(SystemClock);
    let mut plugins = PluginHost::new(&config.plugins, store.plugin_kv()?, clock.clone())?;
    plugins.load_dir(&config.plugins).await?;
    let plugins = Arc::new(plugins);
    let provider: Arc<dyn Provider> = match config.provider.kind {
        ProviderKind::Console => Arc::new(ConsoleProvider),
    };
    let outbox = Arc::new(Outbox::new(store.trees()?.outbox, provider));
    let runtime = Arc::new(Runtime::new(
        &store,
        Arc::clone(&plugins),
        clock,
        Arc::clone(&outbox),
    )?);
    let count = runtime
        .registry()
        .reload(&config.flows.dir, &plugins)
        .map_err(|errors| {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("the flows do not load:\n{}", errors.join("\n"))
        })?;
    tracing::info!(count, dir = %config.flows.dir.display(), "flows loaded");

    let workers = [
        tokio::spawn(Arc::clone(&runtime).run_timers()),
        tokio::spawn(Arc::clone(&outbox).run()),
    ];
    let watcher = (config.flows.reload_interval_ms > 0).then(|| {
        let registry = Arc::clone(runtime.registry());
        let dir = config.flows.dir.clone();
        let interval = Duration::from_millis(config.flows.reload_interval_ms);
        tokio::spawn(async move { registry.watch(&dir, plugins, interval).await })
    });

    let state = Arc::new(AppState {
        runtime,
        api_token: config.server.api_token.clone(),
        our_number,
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/flows/{flow_id}/start", post(start_flow))
        .route("/v1/conversations/{phone}", get(conversation))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    println!("smsflow listening on http://{address}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server failed")?;
    for worker in workers {
        worker.abort();
    }
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    store.flush().await?;
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

/// A JSON error answer: `{"error": "..."}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The refusal for a request without the API token, or `None` when it has it.
fn refuse_unauthorized(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &state.api_token else {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API is disabled: set [server] api_token in the config",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    // Compare in constant time: the token is a secret.
    let matches = given.is_some_and(|given| {
        given.len() == expected.len()
            && given
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    (!matches).then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    to: String,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    #[serde(default)]
    locale: Option<String>,
}

async fn start_flow(
    State(state): State<Arc<AppState>>,
    Path(flow_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = refuse_unauthorized(&state, &headers) {
        return response;
    }
    let body: StartBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a start request: {problem}"),
            );
        }
    };
    let to = match parse_e164(&body.to) {
        Ok(to) => to,
        Err(problem) => return error(StatusCode::UNPROCESSABLE_ENTITY, problem.to_string()),
    };
    let request = StartRequest {
        flow: flow_id,
        from: state.our_number.clone(),
        to,
        fields: body.fields,
        locale: body.locale,
    };
    match state.runtime.start(request).await {
        Ok(outcome) => (
            StatusCode::CREATED,
            Json(json!({
                "conversation": outcome.conversation,
                "sent": outcome.sent_texts(),
            })),
        )
            .into_response(),
        Err(RuntimeError::UnknownFlow(id)) => {
            error(StatusCode::NOT_FOUND, format!("no flow `{id}` is loaded"))
        }
        Err(problem @ RuntimeError::ConversationActive { .. }) => {
            error(StatusCode::CONFLICT, problem.to_string())
        }
        Err(RuntimeError::Store(problem)) => {
            tracing::error!("start failed: {problem:#}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the store failed")
        }
        Err(problem) => error(StatusCode::UNPROCESSABLE_ENTITY, problem.to_string()),
    }
}

async fn conversation(
    State(state): State<Arc<AppState>>,
    Path(phone): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = refuse_unauthorized(&state, &headers) {
        return response;
    }
    let phone = match parse_e164(&phone) {
        Ok(phone) => phone,
        Err(problem) => return error(StatusCode::UNPROCESSABLE_ENTITY, problem.to_string()),
    };
    let runtime = &state.runtime;
    let found = runtime
        .conversation(&state.our_number, &phone)
        .and_then(|conversation| {
            let transcript = runtime.transcript(&state.our_number, &phone)?;
            let messages = transcript
                .iter()
                .filter_map(|entry| match &entry.event {
                    Event::Outbound { message_id, .. } => Some(message_id),
                    _ => None,
                })
                .filter_map(|id| runtime.outbox().message(id).transpose())
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((conversation, transcript, messages))
        });
    match found {
        Ok((None, _, _)) => error(
            StatusCode::NOT_FOUND,
            format!("no conversation with {phone}"),
        ),
        Ok((Some(conversation), transcript, messages)) => Json(json!({
            "conversation": conversation,
            "transcript": transcript,
            "messages": messages,
        }))
        .into_response(),
        Err(problem) => {
            tracing::error!("conversation read failed: {problem:#}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the store failed")
        }
    }
}
