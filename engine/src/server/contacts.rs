//! The contacts API (`/v1/contacts`, `/v1/segments`, behind the operator token): create or
//! merge, read, change, erase, list with a segment query, import CSV, preview segments.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, json_body};
use super::router::AppState;
use crate::contacts::import::{ImportFailure, ImportSettings};
use crate::contacts::select::SegmentError;
use crate::contacts::{ContactError, ContactInput, ContactPatch};

/// The most contacts one list page holds.
const MAX_PAGE: usize = 500;

impl From<ContactError> for ApiError {
    fn from(error: ContactError) -> Self {
        match error {
            ContactError::Invalid { .. } => Self::Unprocessable(error.to_string()),
            ContactError::NotFound(_) => Self::NotFound(error.to_string()),
            ContactError::Store(error) => error.into(),
            ContactError::Ledger(error) => Self::store("the consent ledger", &error),
        }
    }
}

impl From<SegmentError> for ApiError {
    fn from(error: SegmentError) -> Self {
        match error {
            SegmentError::Query(query) => Self::UnprocessableWith {
                message: query.to_string(),
                details: json!({ "column": query.column }),
            },
            SegmentError::Contact(error) => error.into(),
        }
    }
}

/// `POST /v1/contacts`: 201 `{"id", "contact"}` for a new contact, 200 when it merged into
/// the one with its number.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: ContactInput = json_body(&body, "a contact")?;
    let (contact, created) = state.contacts.upsert(&input)?;
    state.runtime.store().flush().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = state.contacts.view(&contact)?;
    Ok((status, Json(json!({ "id": contact.id, "contact": view }))))
}

/// `GET /v1/contacts/{phone}`.
pub(super) async fn read(
    State(state): State<Arc<AppState>>,
    Path(phone): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let phone = state.contacts.phone(&phone)?;
    let contact = state
        .contacts
        .get(&phone)?
        .ok_or_else(|| ContactError::NotFound(phone.clone()))?;
    Ok(Json(state.contacts.view(&contact)?))
}

/// `PATCH /v1/contacts/{phone}`: fields merge (`null` removes one), `tags` replaces the set,
/// `add_tags` and `remove_tags` change it.
pub(super) async fn patch(
    State(state): State<Arc<AppState>>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let patch: ContactPatch = json_body(&body, "a contact change")?;
    let contact = state.contacts.patch(&phone, &patch)?;
    state.runtime.store().flush().await?;
    Ok(Json(state.contacts.view(&contact)?))
}

/// `DELETE /v1/contacts/{phone}`: erases the contact (the ledger's evidence stays, and a
/// suppression keeps texts from the number).
pub(super) async fn erase(
    State(state): State<Arc<AppState>>,
    Path(phone): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.contacts.delete(&phone, &state.our_number).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// `GET /v1/contacts`'s query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// A segment query.
    #[serde(default)]
    query: Option<String>,
    /// The `next` of the page before.
    #[serde(default)]
    after: Option<String>,
    /// Page size (at most 500).
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/contacts?query=...&after=...&limit=...`: a page of contacts, in creation order,
/// and `next` when there may be more.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Query(list): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let contacts = &state.contacts;
    let query = list
        .query
        .as_deref()
        .map(|text| contacts.query(text))
        .transpose()?;
    let after = match list.after.as_deref() {
        Some(id) => Some(crate::store::contacts::contact_seq(id).ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "after: `{id}` is not a contact id (c- and 16 hex digits)"
            ))
        })?),
        None => None,
    };
    let limit = list.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let (page, next) = contacts.list(query.as_ref(), after, limit)?;
    let page = page
        .iter()
        .map(|contact| contacts.view(contact))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "contacts": page,
        "next": next.map(crate::store::contacts::contact_id),
    })))
}

/// `POST /v1/contacts/import`'s query: the consent evidence for the whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportQuery {
    #[serde(default)]
    consent_source: Option<String>,
    #[serde(default)]
    disclosure: Option<String>,
    #[serde(default)]
    program: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    batch: Option<String>,
}

/// `POST /v1/contacts/import` with a `text/csv` body, read as it arrives (any size, bounded
/// memory): `{"created", "updated", "consents", "refused": [{"line", "error"}], ...}`.
pub(super) async fn import(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/csv") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the contacts as text/csv (this was `{content_type}`)"
        )));
    }
    let settings = import_settings(query, state.clock.now_ms())?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let contacts = Arc::clone(&state.contacts);
    let summary = tokio::task::spawn_blocking(move || contacts.import(reader, &settings, |_| {}))
        .await
        .map_err(|error| {
            tracing::error!("the import task failed: {error}");
            ApiError::Internal
        })?
        .map_err(|failure| match failure {
            ImportFailure::File(error) => ApiError::Unprocessable(error.to_string()),
            ImportFailure::Store { .. } => ApiError::store("the import", &failure),
        })?;
    state.runtime.store().flush().await?;
    Ok(Json(json!(summary)))
}

/// The import's consent settings from its query.
fn import_settings(query: ImportQuery, now_ms: i64) -> Result<ImportSettings, ApiError> {
    let class = match query.class.as_deref() {
        None | Some("marketing") => crate::compliance::ledger::ConsentClass::Marketing,
        Some("transactional") => crate::compliance::ledger::ConsentClass::Transactional,
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "class: `{other}` is neither marketing nor transactional"
            )));
        }
    };
    Ok(ImportSettings {
        batch: query
            .batch
            .unwrap_or_else(|| format!("api import {}", crate::compliance::gate::rfc3339(now_ms))),
        consent_source: query.consent_source,
        disclosure: query.disclosure,
        program: query.program,
        class: Some(class),
    })
}

/// `POST /v1/segments/preview`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    query: String,
}

/// `POST /v1/segments/preview` `{"query"}`: `{"count", "sample"}`, or 422 `{"error", "column"}`.
pub(super) async fn preview(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PreviewBody = json_body(&body, "a segment preview request")?;
    let contacts = Arc::clone(&state.contacts);
    let preview = tokio::task::spawn_blocking(move || contacts.preview(&body.query))
        .await
        .map_err(|error| {
            tracing::error!("the preview task failed: {error}");
            ApiError::Internal
        })??;
    Ok(Json(
        json!({ "count": preview.count, "sample": preview.sample }),
    ))
}

/// `PUT /v1/segments/{name}` `{"query"}`: saves a segment by name (checked first).
pub(super) async fn save(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PreviewBody = json_body(&body, "a segment")?;
    crate::contacts::fields::field_name(&name).map_err(|_| {
        ApiError::Unprocessable(format!(
            "`{name}` is not a segment name: use letters, digits and _"
        ))
    })?;
    state.contacts.query(&body.query)?;
    state.contacts.save_segment(&name, &body.query)?;
    Ok(Json(json!({ "name": name, "query": body.query })))
}

/// `GET /v1/segments`: the saved segments.
pub(super) async fn saved(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let segments: Vec<Value> = state
        .contacts
        .segments()?
        .into_iter()
        .map(|(name, query)| json!({ "name": name, "query": query }))
        .collect();
    Ok(Json(json!({ "segments": segments })))
}
