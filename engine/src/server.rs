//! `smsflow serve`: the engine as a long-running HTTP server.
//!
//! It opens the store, loads the plugins and flows, starts the inbox, timer and outbox workers
//! and the flow-folder watcher, and serves:
//!
//! - `POST /webhooks/twilio`, `POST /webhooks/twilio/status`: Twilio's inbound and status
//!   webhooks, verified with `X-Twilio-Signature` (enabled by `[provider] auth_token`);
//! - `POST /webhooks/telnyx`: Telnyx's, verified with ed25519 (enabled by
//!   `[provider] telnyx_public_key`);
//! - `GET /healthz`;
//! - `POST /v1/flows/{flow_id}/start` with `{"to": "+1...", "fields": {...}, "locale": "es"}`;
//! - `GET /v1/conversations/{phone}`: state, fields, transcript and outbound texts, each with
//!   its compliance gate decision;
//! - `POST /v1/conversations/{phone}/reply` with `{"agent": "ana", "text": "..."}`: an agent's
//!   reply, through the same gate as every text;
//! - `POST /v1/consent`: an opt-in with its evidence, into the consent ledger.
//!
//! `/v1` requires `Authorization: Bearer <server.api_token>`. Every body is limited to 64 KiB
//! before it is read. An inbound text is acknowledged only once it is on disk, and only after
//! compliance has screened it: a STOP is in the ledger before the provider hears 2xx.

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

use crate::clock::SharedClock;
use crate::compliance::Screening;
use crate::compliance::gate::Gate;
use crate::compliance::ledger::{ConsentClass, ConsentEvent, ConsentSource, NewConsent};
use crate::config::{Config, ProviderKind};
use crate::events::Events;
use crate::flow::conversation::Event;
use crate::flow::runtime::{Runtime, RuntimeError, StartRequest};
use crate::inbox::{Accepted, Inbox, InboxSettings};
use crate::ingress::{telnyx, twilio};
use crate::outbound::telnyx::TelnyxProvider;
use crate::outbound::twilio::TwilioProvider;
use crate::outbound::{ConsoleProvider, Outbox, OutboxSettings, Provider};
use crate::phone::parse_e164;
use crate::plugin::PluginHost;
use crate::store::Store;

/// How long shutdown waits for work in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Request bodies larger than this are refused before they are read.
const MAX_BODY_BYTES: usize = 64 * 1024;

struct AppState {
    runtime: Arc<Runtime>,
    inbox: Arc<Inbox>,
    events: Arc<Events>,
    clock: SharedClock,
    api_token: Option<String>,
    our_number: String,
    public_url: Option<String>,
    twilio_auth_token: Option<String>,
    telnyx_public_key: Option<String>,
}

/// Runs the server until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// When the store, the plugins or the flows cannot be loaded, or the address cannot be bound.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let our_number = parse_e164(&config.provider.from).context("[provider] from")?;
    let store = Store::open(&config.store.path)?;
    let clock = crate::clock::from_env()?;
    let mut plugins = PluginHost::new(&config.plugins, store.plugin_kv()?, clock.clone())?;
    plugins.load_dir(&config.plugins).await?;
    let plugins = Arc::new(plugins);
    let public_url = config
        .server
        .public_url
        .as_ref()
        .map(|url| url.trim_end_matches('/').to_owned());
    let provider: Arc<dyn Provider> = match config.provider.kind {
        ProviderKind::Console => Arc::new(ConsoleProvider),
        ProviderKind::Twilio => {
            let account_sid = config
                .provider
                .account_sid
                .as_deref()
                .context("[provider] kind = \"twilio\" needs account_sid")?;
            let auth_token = config
                .provider
                .auth_token
                .as_deref()
                .context("[provider] kind = \"twilio\" needs auth_token")?;
            let status_callback = public_url
                .as_ref()
                .map(|url| format!("{url}{TWILIO_STATUS_PATH}"));
            Arc::new(TwilioProvider::new(
                config
                    .provider
                    .api_base
                    .as_deref()
                    .unwrap_or(crate::outbound::twilio::DEFAULT_API_BASE),
                account_sid,
                auth_token,
                status_callback,
            )?)
        }
        ProviderKind::Telnyx => {
            let api_key = config
                .provider
                .api_key
                .as_deref()
                .context("[provider] kind = \"telnyx\" needs api_key")?;
            let webhook_url = public_url
                .as_ref()
                .map(|url| format!("{url}/webhooks/telnyx"));
            Arc::new(TelnyxProvider::new(
                config
                    .provider
                    .api_base
                    .as_deref()
                    .unwrap_or(crate::outbound::telnyx::DEFAULT_API_BASE),
                api_key,
                webhook_url,
            )?)
        }
    };
    let events = Arc::new(Events::new(&store, config.webhooks.clone(), clock.clone())?);
    if let Some(name) = &config.compliance.revocation_classifier {
        let world = plugins.get(name).map(|plugin| plugin.manifest.world);
        anyhow::ensure!(
            world == Some(crate::plugin::World::Classifier),
            "[compliance] revocation_classifier = \"{name}\" must name a loaded classifier plugin"
        );
    }
    let trees = store.trees()?;
    let gate = Gate::from_config(&config.compliance, &config.programs, &trees)?;
    let outbox = Arc::new(
        Outbox::new(
            trees,
            provider,
            gate,
            clock.clone(),
            OutboxSettings {
                max_attempts: config.provider.max_attempts,
                messages_per_second: config.provider.messages_per_second,
            },
        )
        .with_events(Arc::clone(&events)),
    );
    let runtime = Arc::new(
        Runtime::new(
            &store,
            Arc::clone(&plugins),
            clock.clone(),
            Arc::clone(&outbox),
        )?
        .with_events(Arc::clone(&events)),
    );
    let count = runtime
        .registry()
        .reload(&config.flows.dir, &plugins)
        .map_err(|errors| {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("the flows do not load:\n{}", errors.join("\n"))
        })?;
    tracing::info!(count, dir = %config.flows.dir.display(), "flows loaded");
    let inbox = Arc::new(Inbox::new(
        &store,
        clock.clone(),
        InboxSettings {
            max_attempts: config.inbox.max_attempts,
            lanes: config.inbox.workers,
            ..InboxSettings::default()
        },
    )?);

    let mut workers = vec![
        tokio::spawn(Arc::clone(&inbox).run(runtime.clone())),
        tokio::spawn(Arc::clone(&runtime).run_timers()),
        tokio::spawn(Arc::clone(&outbox).run()),
        tokio::spawn(Arc::clone(&events).run()),
    ];
    if config.flows.reload_interval_ms > 0 {
        let registry = Arc::clone(runtime.registry());
        let dir = config.flows.dir.clone();
        let interval = Duration::from_millis(config.flows.reload_interval_ms);
        workers.push(tokio::spawn(async move {
            registry.watch(&dir, plugins, interval).await;
        }));
    }

    let state = Arc::new(AppState {
        runtime: Arc::clone(&runtime),
        inbox: Arc::clone(&inbox),
        events,
        clock,
        api_token: config.server.api_token.clone(),
        our_number,
        public_url,
        twilio_auth_token: config.provider.auth_token.clone(),
        telnyx_public_key: config.provider.telnyx_public_key.clone(),
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(TWILIO_INBOUND_PATH, post(twilio_inbound))
        .route(TWILIO_STATUS_PATH, post(twilio_status))
        .route("/webhooks/telnyx", post(telnyx_webhook))
        .route("/v1/flows/{flow_id}/start", post(start_flow))
        .route("/v1/conversations/{phone}", get(conversation))
        .route("/v1/conversations/{phone}/reply", post(agent_reply))
        .route("/v1/consent", post(record_consent))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_oversized))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    println!("smsflow listening on http://{address}");
    // Requests in flight finish before this returns. Then the texts being processed and the
    // send being made finish too; whatever was not started is still in the store for the next
    // start.
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server failed")?;
    let unfinished = inbox.drain(SHUTDOWN_GRACE).await;
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "stopping with inbound texts still being processed; they will be redone at the next start"
        );
    }
    if !runtime.outbox().drain(SHUTDOWN_GRACE).await {
        tracing::warn!("stopping while a text was being handed to the provider");
    }
    for worker in workers {
        worker.abort();
    }
    store.flush().await?;
    Ok(())
}

/// Where Twilio posts inbound texts.
pub const TWILIO_INBOUND_PATH: &str = "/webhooks/twilio";
/// Where Twilio posts delivery reports.
pub const TWILIO_STATUS_PATH: &str = "/webhooks/twilio/status";

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

/// Refuses a body announced larger than [`MAX_BODY_BYTES`] before reading any of it; a body
/// without a length is cut off at the limit when read.
async fn refuse_oversized(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the {MAX_BODY_BYTES}-byte limit"),
        );
    }
    next.run(request).await
}

/// A JSON error answer: `{"error": "..."}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Parses a JSON request body, or the 400 that says why it is not `what`.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|problem| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the body is not {what}: {problem}"),
        ))
    })
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
    let body: StartBody = match json_body(&body, "a start request") {
        Ok(body) => body,
        Err(response) => return *response,
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

/// `POST /v1/consent`: an opt-in collected elsewhere (a web form, a signed paper, an import),
/// with its evidence.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    phone: Option<String>,
    program: Option<String>,
    class: Option<String>,
    source: Option<String>,
    disclosure: Option<String>,
    #[serde(default)]
    frequency: Option<String>,
    /// For a web form: the page, and the visitor's IP address and user agent.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
}

async fn record_consent(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = refuse_unauthorized(&state, &headers) {
        return response;
    }
    let body: ConsentBody = match json_body(&body, "a consent record") {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let present = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let fields = [
        ("phone", present(&body.phone)),
        ("program", present(&body.program)),
        ("class", present(&body.class)),
        ("source", present(&body.source)),
        ("disclosure", present(&body.disclosure)),
    ];
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect();
    let [
        (_, Some(phone)),
        (_, Some(program)),
        (_, Some(class)),
        (_, Some(source)),
        (_, Some(disclosure)),
    ] = fields
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "a consent record needs {}: the evidence is incomplete",
                missing.join(", ")
            ),
        );
    };
    let phone = match parse_e164(&phone) {
        Ok(phone) => phone,
        Err(problem) => return error(StatusCode::UNPROCESSABLE_ENTITY, problem.to_string()),
    };
    let class = match class.as_str() {
        "marketing" => ConsentClass::Marketing,
        "transactional" => ConsentClass::Transactional,
        other => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("class is `{other}`: write \"marketing\" or \"transactional\""),
            );
        }
    };
    let known_program = state.runtime.compliance().program(&program).is_some()
        || state
            .runtime
            .registry()
            .current()
            .by_id
            .values()
            .any(|flow| flow.program == program);
    if !known_program {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no flow or [programs] entry has program `{program}`"),
        );
    }
    let source = match (body.url, body.ip, body.user_agent) {
        (Some(url), Some(ip), Some(user_agent)) => ConsentSource::WebForm {
            url,
            ip,
            user_agent,
        },
        (None, None, None) => ConsentSource::Api {
            actor: Some(source),
        },
        _ => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "web form evidence needs url, ip and user_agent together",
            );
        }
    };
    let record = state.runtime.compliance().ledger().append(NewConsent {
        number: phone,
        program,
        class,
        event: ConsentEvent::OptIn,
        source,
        disclosure: Some(disclosure),
        frequency: present(&body.frequency),
        raw_text: None,
        at_ms: state.clock.now_ms(),
    });
    let flushed = match record {
        Ok(record) => state.runtime.store().flush().await.map(|()| record),
        Err(problem) => Err(problem),
    };
    match flushed {
        Ok(record) => (StatusCode::CREATED, Json(json!({ "recorded": record }))).into_response(),
        Err(problem) => {
            tracing::error!("consent not recorded: {problem:#}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the store failed; retry")
        }
    }
}

/// `POST /v1/conversations/{phone}/reply`: a person's reply from the agent inbox.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentReplyBody {
    agent: String,
    text: String,
}

async fn agent_reply(
    State(state): State<Arc<AppState>>,
    Path(phone): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = refuse_unauthorized(&state, &headers) {
        return response;
    }
    let phone = match parse_e164(&phone) {
        Ok(phone) => phone,
        Err(problem) => return error(StatusCode::UNPROCESSABLE_ENTITY, problem.to_string()),
    };
    let body: AgentReplyBody = match json_body(&body, "a reply") {
        Ok(body) => body,
        Err(response) => return *response,
    };
    if body.text.trim().is_empty() || body.agent.trim().is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a reply needs an agent and a text",
        );
    }
    match state
        .runtime
        .agent_reply(&state.our_number, &phone, &body.agent, &body.text)
        .await
    {
        Ok(outcome) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "queued": outcome.queued_ids(),
                "note": "queued: the compliance gate decides when it is sent; see GET /v1/conversations",
            })),
        )
            .into_response(),
        Err(RuntimeError::NoConversation(contact)) => {
            error(StatusCode::NOT_FOUND, format!("no conversation with {contact}"))
        }
        Err(problem) => {
            tracing::error!("agent reply failed: {problem:#}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the store failed; retry")
        }
    }
}

/// Verifies and parses a Twilio webhook: its form parameters, or the refusal to send back.
fn twilio_params(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Box<Response>> {
    let (Some(auth_token), Some(public_url)) = (&state.twilio_auth_token, &state.public_url) else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "Twilio webhooks are off: set [provider] auth_token and [server] public_url",
        )));
    };
    let params = twilio::parse_form(body)
        .map_err(|problem| Box::new(error(StatusCode::BAD_REQUEST, problem.to_string())))?;
    let given = headers
        .get("x-twilio-signature")
        .and_then(|value| value.to_str().ok());
    twilio::verify(&format!("{public_url}{path}"), &params, auth_token, given)
        .map_err(|problem| Box::new(error(StatusCode::FORBIDDEN, problem.to_string())))?;
    Ok(params)
}

async fn twilio_inbound(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let params = match twilio_params(&state, TWILIO_INBOUND_PATH, &headers, &body) {
        Ok(params) => params,
        Err(refusal) => return *refusal,
    };
    let text = match twilio::inbound_text(&params, &state.our_number) {
        Ok(text) => text,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem.to_string()),
    };
    match accept(&state, text).await {
        Ok(()) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            twilio::EMPTY_TWIML,
        )
            .into_response(),
        Err(problem) => {
            // Not acknowledged: Twilio retries.
            tracing::error!("inbound text not stored: {problem:#}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the store failed; retry")
        }
    }
}

async fn twilio_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let params = match twilio_params(&state, TWILIO_STATUS_PATH, &headers, &body) {
        Ok(params) => params,
        Err(refusal) => return *refusal,
    };
    let update = match twilio::status_update(&params) {
        Ok(update) => update,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem.to_string()),
    };
    match record_status(&state, "twilio", &update) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(problem) => {
            tracing::error!("status not recorded: {problem:#}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the store failed; retry")
        }
    }
}

async fn telnyx_webhook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(public_key) = &state.telnyx_public_key else {
        return error(
            StatusCode::NOT_FOUND,
            "Telnyx webhooks are off: set [provider] telnyx_public_key",
        );
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let now_s = state.clock.now_ms() / 1000;
    if let Err(problem) = telnyx::verify(
        public_key,
        header("telnyx-timestamp"),
        header("telnyx-signature-ed25519"),
        &body,
        now_s,
    ) {
        return error(StatusCode::FORBIDDEN, problem.to_string());
    }
    let event = match telnyx::parse(&body, &state.our_number) {
        Ok(event) => event,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem.to_string()),
    };
    let stored = match event {
        telnyx::TelnyxEvent::Inbound(text) => accept(&state, text).await,
        telnyx::TelnyxEvent::Status(update) => record_status(&state, "telnyx", &update),
        telnyx::TelnyxEvent::Other(_) => Ok(()),
    };
    match stored {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(problem) => {
            tracing::error!("Telnyx webhook not stored: {problem:#}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the store failed; retry")
        }
    }
}

/// Stores an inbound text in the inbox and reports it; a duplicate changes nothing.
async fn accept(state: &AppState, text: crate::ingress::InboundText) -> anyhow::Result<()> {
    let data = json!({
        "provider": text.provider,
        "message_id": text.message_id,
        "from": text.from,
        "to": text.to,
        "body": text.body,
    });
    if state.inbox.seen(&text)? {
        return Ok(());
    }
    // Before the acknowledgement: a STOP is in the ledger, and on disk with the text, before
    // the provider hears 2xx.
    let screening = state
        .runtime
        .screen_inbound(
            &format!("{}:{}", text.provider, text.message_id),
            &text.from,
            &text.to,
            &text.body,
        )
        .await?;
    let opted_out = matches!(screening, Screening::OptedOut { .. });
    if let Accepted::Stored(_) = state.inbox.accept_screened(text, screening).await? {
        state.events.emit("message.received", data.clone())?;
        if opted_out {
            state.events.emit(
                "contact.opted_out",
                json!({ "phone": data["from"], "source": "keyword", "text": data["body"] }),
            )?;
        }
    }
    Ok(())
}

/// Applies a delivery report to the outbox and reports it.
fn record_status(
    state: &AppState,
    provider: &str,
    update: &crate::ingress::StatusUpdate,
) -> anyhow::Result<()> {
    if state.runtime.outbox().record_status(provider, update)? {
        state.events.emit(
            "message.status",
            json!({
                "provider": provider,
                "provider_message_id": update.message_id,
                "status": update.status,
                "error_code": update.error_code,
            }),
        )?;
    }
    Ok(())
}
