//! The web pages `smsflow serve` carries: the agent inbox at `/inbox` and, with
//! `[server] simulator = true`, the phone simulator at `/simulator` with its two calls. The
//! assets are compiled into the binary (no files, no network, no build step at run time) and
//! served under a strict Content-Security-Policy: scripts and styles only from the page's own
//! origin, nothing inline, no frames.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, json_body};
use super::router::AppState;
use crate::flow::conversation::Event;
use crate::phone::parse_e164;
use crate::sms::InboundText;

/// The pages' policy: nothing but the page's own scripts, styles and calls.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded asset with its content type, under the pages' headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `GET /inbox`.
pub(super) async fn inbox_html() -> Response {
    asset(HTML, include_str!("../../assets/inbox.html"))
}

/// `GET /inbox/app.js`.
pub(super) async fn inbox_js() -> Response {
    asset(JS, include_str!("../../assets/inbox.js"))
}

/// `GET /inbox/app.css`.
pub(super) async fn inbox_css() -> Response {
    asset(CSS, include_str!("../../assets/inbox.css"))
}

/// 404 unless `[server] simulator = true`.
fn simulator_on(state: &AppState) -> Result<(), ApiError> {
    if state.simulator {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "the simulator is off: set [server] simulator = true".to_owned(),
        ))
    }
}

/// `/reports`: the report's charts and tables for a supervisor (the inbox's sign-in) or the
/// operator (the API token, typed into the page).
pub(super) async fn reports_html() -> Response {
    asset(HTML, include_str!("../../assets/reports.html"))
}

/// The reports page's script.
pub(super) async fn reports_js() -> Response {
    asset(JS, include_str!("../../assets/reports.js"))
}

/// The reports page's styles.
pub(super) async fn reports_css() -> Response {
    asset(CSS, include_str!("../../assets/reports.css"))
}

/// `GET /simulator`.
pub(super) async fn simulator_html(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    Ok(asset(HTML, include_str!("../../assets/simulator.html")))
}

/// `GET /simulator/app.js`.
pub(super) async fn simulator_js(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    Ok(asset(JS, include_str!("../../assets/simulator.js")))
}

/// `GET /simulator/app.css`.
pub(super) async fn simulator_css(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    simulator_on(&state)?;
    Ok(asset(CSS, include_str!("../../assets/simulator.css")))
}

/// `POST /simulator/send`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatedText {
    from: String,
    text: String,
}

/// `POST /simulator/send`: a text from `from`, taken in as a provider's webhook would be
/// (screened, deduplicated, on disk before the answer); 202.
pub(super) async fn simulator_send(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    simulator_on(&state)?;
    // A cross-site form can post text/plain without a preflight; only the page's own JSON
    // call (or a deliberate client) gets in.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !json {
        return Err(ApiError::BadRequest(
            "send the text as JSON, with Content-Type: application/json".to_owned(),
        ));
    }
    let body: SimulatedText = json_body(&body, "a simulated text (from, text)")?;
    let from =
        parse_e164(&body.from).map_err(|problem| ApiError::Unprocessable(problem.to_string()))?;
    if body.text.trim().is_empty() {
        return Err(ApiError::Unprocessable("a text needs some text".to_owned()));
    }
    let id = state.runtime.store().generate_id()?;
    let message_id = format!("SIM{id:016x}");
    let text = InboundText {
        provider: "simulator",
        message_id: message_id.clone(),
        from,
        to: state.our_number.clone(),
        body: body.text,
        num_media: 0,
    };
    state.ingest.accept(text).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message_id": message_id })),
    ))
}

/// `GET /simulator/thread`'s query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ThreadQuery {
    phone: String,
}

/// `GET /simulator/thread?phone=`: the texts as the phone sees them: its own, and ours with
/// what the gate decided (a blocked one never reached the phone; the page shows why).
pub(super) async fn simulator_thread(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ThreadQuery>,
) -> Result<Json<Value>, ApiError> {
    simulator_on(&state)?;
    let contact =
        parse_e164(&query.phone).map_err(|problem| ApiError::Unprocessable(problem.to_string()))?;
    let transcript = state.runtime.transcript(&state.our_number, &contact)?;
    let mut messages = Vec::new();
    for entry in &transcript {
        let at = crate::compliance::gate::rfc3339(entry.at_ms);
        match &entry.event {
            Event::Inbound { text, .. } => {
                messages.push(json!({ "direction": "in", "text": text, "at": at }))
            }
            Event::Outbound {
                message_id, text, ..
            } => {
                let message = state
                    .outbox
                    .message(message_id)
                    .map_err(|error| ApiError::store("simulator thread", &error))?;
                let (body, gate) = match message {
                    Some(message) => (message.body, message.gate),
                    None => (text.clone(), None),
                };
                messages.push(json!({ "direction": "out", "text": body, "at": at, "gate": gate }));
            }
            _ => {}
        }
    }
    Ok(Json(json!({ "messages": messages })))
}
