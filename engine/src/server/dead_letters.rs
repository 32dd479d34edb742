//! The dead letters of every queue, readable and replayable while the server runs:
//! `POST /v1/dlq/replay` (inbound texts that failed every processing attempt; `GET /v1/dlq`
//! lists them), `GET /v1/outbox/failed` with `POST /v1/outbox/replay` (texts the provider
//! refused for good or that ran out of attempts), and `GET /v1/events/dead` with
//! `POST /v1/events/replay` (event webhooks the receiver never took).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, json_body};
use super::router::AppState;
use crate::outbound::{message_id, seq_of};

/// `POST /v1/dlq/replay`'s body: one dead letter, or all when `seq` is absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DlqReplay {
    #[serde(default)]
    seq: Option<u64>,
}

/// The dead letter a replay request names, or `None` for all (an empty body or `{}`).
fn replay_seq(body: &[u8]) -> Result<Option<u64>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    let request: DlqReplay = json_body(body, "a replay request ({\"seq\": 12} or {})")?;
    Ok(request.seq)
}

/// `POST /v1/dlq/replay`: moves inbound dead letters back into the inbox, where the running
/// workers take them at once; `{"replayed": n}`.
pub(super) async fn replay_inbound(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let seq = replay_seq(&body)?;
    let inbox = Arc::clone(&state.inbox);
    let replayed = tokio::task::spawn_blocking(move || inbox.replay(seq))
        .await
        .map_err(|error| ApiError::store("dead letter replay failed", &error))?
        .map_err(|error| ApiError::store("dead letter replay failed", &error))?;
    Ok(Json(json!({ "replayed": replayed })))
}

/// The event webhooks, or a 404 saying how to turn them on.
fn events(state: &AppState) -> Result<&Arc<crate::events::Events>, ApiError> {
    state.events.as_ref().ok_or_else(|| {
        ApiError::NotFound("no event webhooks are configured: add a [[webhooks]] section".into())
    })
}

/// `GET /v1/events/dead`: event deliveries that failed their whole retry schedule.
pub(super) async fn event_dead_letters(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    let dead = events(&state)?
        .dead_letters()
        .map_err(|error| ApiError::store("event dead letters read failed", &error))?;
    Ok(Json(json!({ "dead_letters": dead })))
}

/// `POST /v1/events/replay` with `{"seq": n}` or `{}` (all): dead event deliveries queued
/// again with a fresh schedule (the same `webhook-id`, so a receiver that did get one
/// recognises it); `{"replayed": n}`.
pub(super) async fn replay_events(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let seq = replay_seq(&body)?;
    let replayed = events(&state)?
        .replay(seq)
        .map_err(|error| ApiError::store("event replay failed", &error))?;
    Ok(Json(json!({ "replayed": replayed })))
}

/// The most failed texts one page holds.
const MAX_PAGE: usize = 500;

/// `GET /v1/outbox/failed`'s query: a page after a text id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FailedQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/outbox/failed?after=<id>&limit=<n>`: failed texts in queue order, with why, and
/// `next_after` when there may be more.
pub(super) async fn failed(
    State(state): State<Arc<AppState>>,
    Query(query): Query<FailedQuery>,
) -> Result<Json<Value>, ApiError> {
    let after = query.after.as_deref().map(text_seq).transpose()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}, not {limit}"
        )));
    }
    let (failed, next) = state
        .outbox
        .failed(after, limit)
        .map_err(|error| ApiError::store("outbox read failed", &error))?;
    let texts = failed
        .into_iter()
        .map(|(_, message)| serde_json::to_value(&message))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ApiError::store("a failed text does not encode", &error))?;
    Ok(Json(json!({
        "failed": texts,
        "page": { "next_after": next.map(message_id) },
    })))
}

/// `POST /v1/outbox/replay`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxReplay {
    ids: Vec<String>,
}

/// `POST /v1/outbox/replay` with `{"ids": ["out-..."]}`: queues failed texts again (each
/// passes the gate again); `{"replayed": [ids], "skipped": [{"id", "reason"}]}`.
pub(super) async fn replay_outbound(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: OutboxReplay = json_body(&body, "a replay request ({\"ids\": [\"out-…\"]})")?;
    if request.ids.is_empty() || request.ids.len() > MAX_PAGE {
        return Err(ApiError::BadRequest(format!(
            "ids must name 1 to {MAX_PAGE} texts, not {}",
            request.ids.len()
        )));
    }
    let seqs = request
        .ids
        .iter()
        .map(|id| text_seq(id))
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes = state
        .outbox
        .replay(&seqs)
        .await
        .map_err(|error| ApiError::store("outbox replay failed", &error))?;
    let mut replayed = Vec::new();
    let mut skipped = Vec::new();
    for (seq, outcome) in outcomes {
        match outcome {
            Ok(()) => replayed.push(message_id(seq)),
            Err(reason) => skipped.push(json!({ "id": message_id(seq), "reason": reason })),
        }
    }
    Ok(Json(json!({ "replayed": replayed, "skipped": skipped })))
}

/// The outbox seq of a text id (`out-000000000000002a`), or a 400 saying what an id looks like.
fn text_seq(id: &str) -> Result<u64, ApiError> {
    seq_of(id).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`{}` is not a text id: ids look like out-000000000000002a",
            crate::input::shorten(id)
        ))
    })
}
