//! The providers' webhooks. Each handler only translates HTTP: verify the signature, parse,
//! hand the text to the accept pipeline ([`crate::ingress::accept`]), answer.

use std::sync::Arc;
use tracing::Instrument as _;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::router::AppState;
use super::{TWILIO_INBOUND_PATH, TWILIO_STATUS_PATH};
use crate::ingress::{telnyx, twilio};

/// Verifies and parses a Twilio webhook: its form parameters, or the refusal to send back.
fn twilio_params(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let (Some(auth_token), Some(public_url)) = (&state.twilio_auth_token, &state.public_url) else {
        return Err(ApiError::NotFound(
            "Twilio webhooks are off: set [provider] auth_token and [server] public_url".into(),
        ));
    };
    let params =
        twilio::parse_form(body).map_err(|problem| ApiError::BadRequest(problem.to_string()))?;
    let given = headers
        .get("x-twilio-signature")
        .and_then(|value| value.to_str().ok());
    twilio::verify(&format!("{public_url}{path}"), &params, auth_token, given)
        .map_err(|problem| ApiError::Forbidden(problem.to_string()))?;
    Ok(params)
}

/// `POST /webhooks/twilio`: an inbound text, answered with empty TwiML once it is on disk.
pub(super) async fn twilio_inbound(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let params = twilio_params(&state, TWILIO_INBOUND_PATH, &headers, &body)?;
    let text = twilio::inbound_text(&params, &state.our_number)
        .map_err(|problem| ApiError::BadRequest(problem.to_string()))?;
    let span =
        tracing::info_span!("sms.inbound", provider = "twilio", message_id = %text.message_id);
    state.accept(text).instrument(span).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        twilio::EMPTY_TWIML,
    )
        .into_response())
}

/// `POST /webhooks/twilio/status`: a delivery report.
pub(super) async fn twilio_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let params = twilio_params(&state, TWILIO_STATUS_PATH, &headers, &body)?;
    let update = twilio::status_update(&params)
        .map_err(|problem| ApiError::BadRequest(problem.to_string()))?;
    state.ingest.status("twilio", &update).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /webhooks/telnyx`: an inbound text or a delivery report, ed25519-signed.
pub(super) async fn telnyx_webhook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let Some(public_key) = &state.telnyx_public_key else {
        return Err(ApiError::NotFound(
            "Telnyx webhooks are off: set [provider] telnyx_public_key".into(),
        ));
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let now_s = state.clock.now_ms() / 1000;
    telnyx::verify(
        public_key,
        header(telnyx::TIMESTAMP_HEADER),
        header(telnyx::SIGNATURE_HEADER),
        &body,
        now_s,
    )
    .map_err(|problem| ApiError::Forbidden(problem.to_string()))?;
    let event = telnyx::parse(&body, &state.our_number)
        .map_err(|problem| ApiError::BadRequest(problem.to_string()))?;
    match event {
        telnyx::TelnyxEvent::Inbound(text) => {
            let span = tracing::info_span!("sms.inbound", provider = "twilio", message_id = %text.message_id);
            state.accept(text).instrument(span).await?;
        }
        telnyx::TelnyxEvent::Status(update) => state.ingest.status("telnyx", &update).await?,
        telnyx::TelnyxEvent::Other(_) => {}
    }
    Ok(StatusCode::NO_CONTENT)
}
