//! The operator API's read-only views of the store (`/v1/inbox`, `/v1/dlq`, `/v1/consent/...`):
//! what `smsflow inbox`, `smsflow dlq list` and `smsflow consent verify|export` show while the
//! server holds the store (sled admits one process at a time, with no read-only opening).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::router::AppState;
use crate::phone::parse_e164;

/// `GET /v1/inbox`: the inbound texts acknowledged and not yet processed, oldest first.
pub(super) async fn inbox(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let pending = state
        .inbox
        .pending()
        .map_err(|error| ApiError::store("inbox read failed", &error))?;
    Ok(Json(json!({ "pending": pending })))
}

/// `GET /v1/dlq`: the inbound texts that failed every processing attempt.
pub(super) async fn dead_letters(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    let dead = state
        .inbox
        .dead_letters()
        .map_err(|error| ApiError::store("dead letters read failed", &error))?;
    Ok(Json(json!({ "dead_letters": dead })))
}

/// `GET /v1/consent/verify`: the ledger's hash chain checked; `intact` with the record count,
/// or not, with the first break.
pub(super) async fn consent_verify(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(match state.compliance.ledger().verify() {
        Ok(records) => json!({ "intact": true, "records": records }),
        Err(broken) => json!({ "intact": false, "error": broken.to_string() }),
    })
}

/// `GET /v1/consent/{phone}`'s query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /v1/consent/{phone}?format=json|csv`: every consent record of a number, as
/// `smsflow consent export` prints it.
pub(super) async fn consent_export(
    State(state): State<Arc<AppState>>,
    Path(phone): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let number =
        parse_e164(&phone).map_err(|problem| ApiError::Unprocessable(problem.to_string()))?;
    let csv = match query.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => {
            return Err(ApiError::Unprocessable(format!(
                "format `{other}` is not known: use `json` or `csv`"
            )));
        }
    };
    let content_type = match csv {
        true => "text/csv; charset=utf-8",
        false => "application/json",
    };
    if let Some((ingress, _)) = &state.cluster {
        // The contact's consent records are in its partition: its owner exports them.
        let read = crate::cluster::rpc::Read::Consent {
            contact: number,
            csv,
        };
        return match super::cluster_read(ingress, &read).await? {
            crate::cluster::rpc::Answer::Export { text } => {
                Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
            }
            other => Err(super::cluster_refusal(other)),
        };
    }
    let ledger = state.compliance.ledger();
    let read = |error: anyhow::Error| ApiError::store("consent export failed", &error);
    let (content_type, text) = match query.format.as_deref().unwrap_or("json") {
        "json" => (
            "application/json",
            ledger.export_json(&number).map_err(read)?,
        ),
        "csv" => (
            "text/csv; charset=utf-8",
            ledger.export_csv(&number).map_err(read)?,
        ),
        other => {
            return Err(ApiError::Unprocessable(format!(
                "format `{other}` is not known: use `json` or `csv`"
            )));
        }
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}
