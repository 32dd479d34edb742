//! The routes, grouped by who may call them, and the state handlers share.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use super::error::ApiError;
use super::{MAX_BODY_BYTES, TELNYX_PATH, TWILIO_INBOUND_PATH, TWILIO_STATUS_PATH};
use super::{
    agent_api, agent_auth, agents, auth, campaigns, contacts, dead_letters, measure, operator,
    pages, providers, records,
};
use crate::agents::Agents;
use crate::clock::SharedClock;
use crate::compliance::Compliance;
use crate::config::Config;
use crate::engine::Engine;
use crate::events::Events;
use crate::flow::runtime::Runtime;
use crate::handoff::Desk;
use crate::inbox::Inbox;
use crate::ingress::accept::Ingest;
use crate::outbound::Outbox;
use crate::phone::parse_e164;

/// What the handlers share: the engine's parts they call and the settings of the edges.
pub struct AppState {
    pub(super) agents: Arc<Agents>,
    pub(super) campaigns: Arc<crate::campaigns::Campaigns>,
    pub(super) measurement: Arc<crate::measure::Measurement>,
    pub(super) metrics: Arc<crate::measure::metrics::Metrics>,
    pub(super) contacts: Arc<crate::contacts::Contacts>,
    pub(super) desk: Arc<Desk>,
    pub(super) ingest: Arc<Ingest>,
    pub(super) runtime: Arc<Runtime>,
    pub(super) inbox: Arc<Inbox>,
    pub(super) outbox: Arc<Outbox>,
    pub(super) events: Option<Arc<Events>>,
    pub(super) compliance: Arc<Compliance>,
    pub(super) clock: SharedClock,
    /// The SHA-256 of `[server] api_token`; no token disables the operator API.
    pub(super) api_token_digest: Option<[u8; 32]>,
    pub(super) our_number: String,
    pub(super) public_url: Option<String>,
    pub(super) twilio_auth_token: Option<String>,
    pub(super) telnyx_public_key: Option<String>,
    /// Whether `/metrics` needs the operator token.
    pub(super) metrics_need_token: bool,
    /// Whether `/simulator` is served.
    pub(super) simulator: bool,
    /// Slots for argon2 checks of secrets not seen before.
    pub(super) argon2_checks: tokio::sync::Semaphore,
    /// Wrong agent secrets per client address.
    pub(super) sign_ins: super::sign_in_limit::SignInLimit,
    /// In cluster mode: where texts and starts go instead of this engine, and the node's report.
    pub(super) cluster: Option<super::ClusterFront>,
}

impl AppState {
    /// The state for `engine` with `config`'s edge settings.
    ///
    /// # Errors
    ///
    /// When `[provider] from` is not an E.164 number.
    pub fn new(engine: &Engine, config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            agents: Arc::clone(engine.agents()),
            campaigns: Arc::clone(engine.campaigns()),
            measurement: Arc::clone(engine.measurement()),
            metrics: Arc::new(crate::measure::metrics::Metrics::new(
                Arc::clone(engine.inbox()),
                Arc::clone(engine.outbox()),
                Arc::clone(engine.campaigns()),
            )),
            contacts: Arc::clone(engine.contacts()),
            desk: Arc::clone(engine.desk()),
            ingest: Arc::clone(engine.ingest()),
            runtime: Arc::clone(engine.runtime()),
            inbox: Arc::clone(engine.inbox()),
            outbox: Arc::clone(engine.outbox()),
            events: engine.events().cloned(),
            compliance: Arc::clone(engine.runtime().compliance()),
            clock: engine.clock().clone(),
            api_token_digest: config.server.api_token.as_deref().map(auth::digest),
            our_number: parse_e164(&config.provider.from)
                .map_err(|error| anyhow::anyhow!("[provider] from: {error}"))?,
            public_url: config
                .server
                .public_url
                .as_ref()
                .map(|url| url.trim_end_matches('/').to_owned()),
            twilio_auth_token: config.provider.auth_token.clone(),
            telnyx_public_key: config.provider.telnyx_public_key.clone(),
            simulator: config.server.simulator,
            metrics_need_token: config.server.metrics_need_token,
            argon2_checks: tokio::sync::Semaphore::new(super::agent_auth::ARGON2_CHECKS),
            sign_ins: super::sign_in_limit::SignInLimit::default(),
            cluster: None,
        })
    }

    /// Accepts a verified inbound text: into this engine, or in cluster mode into its
    /// contact's partition. Returns once it is durable.
    pub(super) async fn accept(&self, text: crate::sms::InboundText) -> Result<(), ApiError> {
        match &self.cluster {
            Some((ingress, _)) => {
                ingress.accept(text).await?;
            }
            None => {
                self.ingest.accept(text).await?;
            }
        }
        Ok(())
    }
}

/// Routes whose data is kept per store and not yet partitioned (the agent inbox and handoffs,
/// contacts and campaigns, dead letters, reports): a cluster node answers them 501 rather than
/// from its own store, which holds none of the cluster's conversations.
const SINGLE_NODE_ONLY: &[&str] = &[
    "/v1/agent",
    "/v1/agents",
    "/v1/campaigns",
    "/v1/contacts",
    "/v1/conversions",
    "/v1/dlq",
    "/v1/events",
    "/v1/inbox",
    "/v1/outbox",
    "/v1/report",
    "/v1/segments",
    "/v1/consent/verify",
    "/inbox",
    "/simulator",
];

/// Whether `path` is one of [`SINGLE_NODE_ONLY`], or an agent's reply to a conversation.
fn single_node_only(path: &str) -> bool {
    let under = |prefix: &&str| {
        path.strip_prefix(*prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '.', '?']))
    };
    SINGLE_NODE_ONLY.iter().any(under)
        || (path.starts_with("/v1/conversations/") && path.ends_with("/reply"))
}

/// In cluster mode, answers [`SINGLE_NODE_ONLY`] routes 501.
async fn cluster_guard(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if state.cluster.is_some() && single_node_only(path) {
        return ApiError::NotInCluster(format!("`{path}`")).into_response();
    }
    next.run(request).await
}

/// Every route: public ones, the providers' webhooks (each verified by its own signature), the
/// operator API (behind its bearer token), the agent API (as the calling agent) and the pages.
pub fn router(state: Arc<AppState>) -> Router {
    let providers = Router::new()
        .route(TWILIO_INBOUND_PATH, post(providers::twilio_inbound))
        .route(TWILIO_STATUS_PATH, post(providers::twilio_status))
        .route(TELNYX_PATH, post(providers::telnyx_webhook))
        .route_layer(axum::middleware::from_fn(timed));
    let operator = Router::new()
        .route("/v1/flows/{flow_id}/start", post(operator::start_flow))
        .route("/v1/conversations/{phone}", get(operator::conversation))
        .route(
            "/v1/conversations/{phone}/reply",
            post(operator::agent_reply),
        )
        .route("/v1/consent", post(operator::record_consent))
        .route("/v1/status", get(operator::status))
        .route("/v1/cluster", get(operator::cluster))
        .route("/v1/inbox", get(records::inbox))
        .route("/v1/dlq", get(records::dead_letters))
        .route("/v1/dlq/replay", post(dead_letters::replay_inbound))
        .route("/v1/outbox/failed", get(dead_letters::failed))
        .route("/v1/outbox/replay", post(dead_letters::replay_outbound))
        .route("/v1/events/dead", get(dead_letters::event_dead_letters))
        .route("/v1/events/replay", post(dead_letters::replay_events))
        .route("/v1/consent/verify", get(records::consent_verify))
        .route("/v1/consent/{phone}", get(records::consent_export))
        .route(
            "/v1/agents",
            get(agents::list_agents).post(agents::add_agent),
        )
        .route("/v1/agents/{name}/disable", post(agents::disable_agent))
        .merge(audience_routes())
        .merge(measure_routes())
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_bearer,
        ))
        .route_layer(axum::middleware::from_fn(timed));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/l/{code}", get(measure::click))
        .route("/metrics", get(measure::metrics))
        .merge(providers)
        .merge(operator)
        .merge(agent_routes(&state))
        .merge(pages())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            cluster_guard,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_oversized))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Contacts, segments and campaigns under the operator token.
fn audience_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/contacts", get(contacts::list).post(contacts::create))
        .route(
            CONTACTS_IMPORT_PATH,
            post(contacts::import).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/contacts/{phone}",
            get(contacts::read)
                .patch(contacts::patch)
                .delete(contacts::erase),
        )
        .route(
            CAMPAIGNS_PATH,
            get(campaigns::list)
                .post(campaigns::create)
                .layer(DefaultBodyLimit::max(MAX_CAMPAIGN_BODY_BYTES)),
        )
        .route("/v1/campaigns/{id}", get(campaigns::read))
        .route("/v1/campaigns/{id}/{change}", post(campaigns::change))
        .route("/v1/segments", get(contacts::saved))
        .route("/v1/segments/preview", post(contacts::preview))
        .route("/v1/segments/{name}", axum::routing::put(contacts::save))
}

/// Measurement under the operator token: conversions and the report.
fn measure_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/conversions", post(measure::convert))
        .route("/v1/report", get(measure::report))
        .route("/v1/report.svg", get(measure::report_svg))
        .route("/v1/report.csv", get(measure::report_csv))
}

/// `/v1/agent/...`: sign-in is open; every other call resolves the calling agent first.
fn agent_routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    const ONE: &str = "/v1/agent/conversations/{phone}";
    let signed_in = Router::new()
        .route("/v1/agent/session", delete(agent_api::sign_out))
        .route("/v1/agent/me", get(agent_api::whoami))
        .route("/v1/agent/presence", post(agent_api::set_presence))
        .route("/v1/agent/queues", get(agent_api::queues))
        .route("/v1/agent/conversations", get(agent_api::conversations))
        .route(ONE, get(agent_api::conversation))
        .route(&format!("{ONE}/claim"), post(agent_api::claim))
        .route(&format!("{ONE}/assign"), post(agent_api::assign))
        .route(&format!("{ONE}/reply"), post(agent_api::reply))
        .route(&format!("{ONE}/note"), post(agent_api::note))
        .route(&format!("{ONE}/snooze"), post(agent_api::snooze))
        .route(&format!("{ONE}/resolve"), post(agent_api::resolve))
        .route(&format!("{ONE}/release"), post(agent_api::release))
        .route(&format!("{ONE}/viewing"), post(agent_api::viewing))
        .route(
            &format!("{ONE}/canned/{{shortcode}}"),
            get(agent_api::canned_render),
        )
        .route("/v1/agent/canned", get(agent_api::canned_list))
        .route("/v1/agent/segments", post(agent_api::segments))
        .route("/v1/agent/events", get(agent_api::events))
        .route("/v1/agent/report", get(measure::agent_report))
        .route("/v1/agent/report.svg", get(measure::agent_report_svg))
        .route("/v1/agent/report.csv", get(measure::agent_report_csv))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            agent_auth::require_agent,
        ));
    Router::new()
        .route("/v1/agent/session", post(agent_api::sign_in))
        .merge(signed_in)
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            agent_api::stamp_now,
        ))
}

/// The inbox page and the simulator (which answers 404 unless it is on).
fn pages() -> Router<Arc<AppState>> {
    Router::new()
        .route("/inbox", get(pages::inbox_html))
        .route("/inbox/app.js", get(pages::inbox_js))
        .route("/inbox/app.css", get(pages::inbox_css))
        .route("/reports", get(pages::reports_html))
        .route("/reports/app.js", get(pages::reports_js))
        .route("/reports/app.css", get(pages::reports_css))
        .route("/simulator", get(pages::simulator_html))
        .route("/simulator/app.js", get(pages::simulator_js))
        .route("/simulator/app.css", get(pages::simulator_css))
        .route("/simulator/send", post(pages::simulator_send))
        .route("/simulator/thread", get(pages::simulator_thread))
}

/// The CSV import, whose body is read as it arrives and may be any size.
const CONTACTS_IMPORT_PATH: &str = "/v1/contacts/import";

/// Times each request for `/metrics` by its route (matched, so ids do not make new series).
async fn timed(
    matched: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let began = std::time::Instant::now();
    let route = matched.as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    crate::metrics::observe(
        &crate::metrics::instruments().http,
        &[("route", &route), ("status", &status)],
        began.elapsed(),
    );
    response
}

/// Where campaigns are created: its body may list up to 100,000 numbers.
const CAMPAIGNS_PATH: &str = "/v1/campaigns";

/// The largest campaign body: 100,000 listed numbers in JSON, with room to spare.
const MAX_CAMPAIGN_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Error answers are JSON everywhere: the framework's own refusals (a body cut off at its limit
/// while read, a query or path that does not parse) come as plain text, and are rewritten to
/// `{"error": "..."}` here with their status kept.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/plain"));
    if !plain || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_owned(),
    };
    (
        parts.status,
        axum::Json(serde_json::json!({ "error": text })),
    )
        .into_response()
}

/// Refuses a body announced larger than its route's limit ([`MAX_BODY_BYTES`], more for a
/// campaign's list, none for the CSV import, which is streamed) before reading any of it; a
/// body without a length is cut off at the limit when read.
async fn refuse_oversized(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let limit = match request.uri().path() {
        CONTACTS_IMPORT_PATH => None,
        CAMPAIGNS_PATH => Some(MAX_CAMPAIGN_BODY_BYTES),
        _ => Some(MAX_BODY_BYTES),
    };
    if let Some(limit) = limit
        && announced.is_some_and(|length| length > limit as u64)
    {
        return ApiError::PayloadTooLarge(limit).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod cluster_guard_tests {
    use super::single_node_only;

    #[test]
    fn single_node_routes_are_told_apart_from_the_clusters() {
        for path in [
            "/v1/agent/me",
            "/v1/agents",
            "/v1/contacts/import",
            "/inbox",
            "/inbox/app.js",
            "/v1/conversations/+12125550100/reply",
            "/v1/consent/verify",
        ] {
            assert!(single_node_only(path), "{path}");
        }
        for path in [
            "/v1/conversations/+12125550100",
            "/v1/consent/+12125550100",
            "/v1/flows/ping/start",
            "/v1/cluster",
            "/v1/status",
            "/webhooks/twilio",
            "/healthz",
            "/v1/agentsmith",
        ] {
            assert!(!single_node_only(path), "{path}");
        }
    }
}
