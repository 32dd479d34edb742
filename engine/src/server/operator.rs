//! The operator API (`/v1`, behind the bearer token): start flows, read conversations, reply
//! as a person, record consent, see the queues.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::error::{ApiError, json_body};
use super::router::AppState;
use crate::compliance::evidence::ConsentRequest;
use crate::flow::runtime::StartRequest;
use crate::input;
use crate::phone::parse_e164;

/// A phone number from the path, or the 422 that says how to write one.
fn phone(text: &str) -> Result<String, ApiError> {
    parse_e164(text).map_err(|problem| ApiError::Unprocessable(problem.to_string()))
}

/// `POST /v1/flows/{flow_id}/start`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    to: String,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    #[serde(default)]
    locale: Option<String>,
    /// What to do when the contact is in a run: `fail` (409), `skip`, `interrupt`.
    #[serde(default)]
    on_active: crate::flow::runtime::OnActive,
}

/// `POST /v1/flows/{flow_id}/start`: 201 with the conversation and each text the start queued
/// (200 `{"skipped": true}` when the contact is in a run and `on_active` is `skip`)
/// with the gate's decision on it (`sent`, `deferred` with `until`, `blocked` with `reason`).
/// A run left waiting for a reply after one of its texts was blocked is ended (outcome
/// `blocked`): the conversation in the answer says so.
pub(super) async fn start_flow(
    State(state): State<Arc<AppState>>,
    Path(flow_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: StartBody = json_body(&body, "a start request")?;
    let request = StartRequest {
        flow: flow_id,
        from: state.our_number.clone(),
        to: phone(&body.to)?,
        fields: body.fields,
        locale: body.locale,
        on_active: body.on_active,
        ..StartRequest::default()
    };
    if let Some((ingress, _)) = &state.cluster {
        return start_in_cluster(ingress, request, &headers).await;
    }
    let outcome = state.runtime.start(request).await?;
    if outcome.skipped {
        return Ok((
            StatusCode::OK,
            Json(json!({ "skipped": true, "conversation": outcome.conversation, "texts": [] })),
        ));
    }
    let queued = outcome.queued_ids();
    let messages = state
        .outbox
        .settle(&queued)
        .await
        .map_err(|error| ApiError::store("the start's texts were not decided", &error))?;
    let mut conversation = outcome.conversation.clone();
    if let Some((id, reason)) = messages.iter().find_map(blocked) {
        conversation = state
            .runtime
            .end_unsent(
                &conversation.our_number,
                &conversation.contact,
                conversation.run,
                id,
                reason,
            )
            .await?
            .conversation;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "conversation": conversation,
            "texts": messages.iter().map(text_decision).collect::<Vec<_>>(),
        })),
    ))
}

/// The id of `message` and why, when the gate blocked it.
fn blocked(message: &crate::outbound::OutboundMessage) -> Option<(&str, &str)> {
    match &message.status {
        crate::outbound::DeliveryStatus::Blocked { reason } => Some((&message.id, reason)),
        _ => None,
    }
}

/// A queued text as the start answers it: its id and body, the gate's decision (`queued` when
/// the sender's pace held it before the gate saw it), and `until` or `reason` when there is one.
fn text_decision(message: &crate::outbound::OutboundMessage) -> Value {
    let mut answer = json!({
        "id": message.id,
        "text": message.body,
        "decision": message.gate.as_ref().map_or("queued", |gate| gate.decision.as_str()),
    });
    if let Some(gate) = &message.gate {
        if let Some(until) = &gate.until {
            answer["until"] = json!(until);
        }
        if let Some(reason) = &gate.reason {
            answer["reason"] = json!(reason);
        }
    }
    answer
}

/// The transcript entries one conversation read returns unless `limit` says otherwise.
pub const TRANSCRIPT_PAGE: usize = 200;

/// The most entries one conversation read returns.
pub const MAX_TRANSCRIPT_PAGE: usize = 1_000;

/// `GET /v1/conversations/{phone}`'s query: a page of the transcript.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    /// Entries before this seq (the `next_before` of the page after).
    #[serde(default)]
    before: Option<u64>,
    /// How many, newest first; at most [`MAX_TRANSCRIPT_PAGE`].
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/conversations/{phone}`: state, the newest page of the transcript (`?limit=`,
/// `?before=` for older ones) and each outbound text of that page with its gate decisions.
pub(super) async fn conversation(
    State(state): State<Arc<AppState>>,
    Path(contact): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let contact = phone(&contact)?;
    let limit = page.limit.unwrap_or(TRANSCRIPT_PAGE);
    if !(1..=MAX_TRANSCRIPT_PAGE).contains(&limit) {
        return Err(ApiError::Unprocessable(format!(
            "limit is {limit}: ask for 1 to {MAX_TRANSCRIPT_PAGE} entries"
        )));
    }
    if let Some((ingress, _)) = &state.cluster {
        // The contact's state is in its partition: its owner answers.
        let read = crate::cluster::rpc::Read::Conversation {
            our_number: state.our_number.clone(),
            contact: contact.clone(),
            before: page.before,
            limit,
        };
        return match super::cluster_read(ingress, &read).await? {
            crate::cluster::rpc::Answer::Page { page } => Ok(Json(page)),
            other => Err(super::cluster_refusal(other)),
        };
    }
    let found = crate::engine::conversation_page(
        &state.runtime,
        &state.outbox,
        (&state.our_number, &contact),
        page.before,
        limit,
    )
    .map_err(|error| ApiError::store("conversation read failed", &error))?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no conversation with {contact}")))
}

/// Each outbound text of `transcript` as the outbox keeps it: its gate decisions and delivery.
///
/// # Errors
///
/// 503 when the store cannot be read.
pub(super) fn outbound_messages(
    state: &AppState,
    transcript: &[crate::flow::conversation::Entry],
) -> Result<Vec<crate::outbound::OutboundMessage>, ApiError> {
    crate::engine::outbound_texts(&state.outbox, transcript)
        .map_err(|error| ApiError::store("conversation read failed", &error))
}

/// `POST /v1/conversations/{phone}/reply`'s body: a person's reply from the agent inbox.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentReplyBody {
    agent: String,
    text: String,
}

/// `POST /v1/conversations/{phone}/reply`: 202 with the queued text's id.
pub(super) async fn agent_reply(
    State(state): State<Arc<AppState>>,
    Path(contact): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let contact = phone(&contact)?;
    let body: AgentReplyBody = json_body(&body, "a reply")?;
    if body.text.trim().is_empty() || body.agent.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "a reply needs an agent and a text".into(),
        ));
    }
    if !crate::agents::valid_name(&body.agent) {
        return Err(crate::agents::AgentError::InvalidName(input::shorten(&body.agent)).into());
    }
    let outcome = state
        .runtime
        .agent_reply(&state.our_number, &contact, &body.agent, &body.text)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "queued": outcome.queued_ids(),
            "note": "queued: the compliance gate decides when it is sent; see GET /v1/conversations",
        })),
    ))
}

/// `POST /v1/consent`: an opt-in collected elsewhere, with its evidence; 201 with the record.
pub(super) async fn record_consent(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: ConsentRequest = json_body(&body, "a consent record")?;
    let flows = state.runtime.registry().current();
    let known_program = |program: &str| {
        state.compliance.program(program).is_some()
            || flows.by_id.values().any(|flow| flow.program == program)
    };
    let now_ms = state.clock.now_ms();
    let new = request
        .validate(known_program, now_ms)
        .map_err(|refused| ApiError::Unprocessable(refused.to_string()))?;
    if let Some((ingress, _)) = &state.cluster {
        // Validated here, for the 422; appended by the contact's partition owner.
        let body = String::from_utf8_lossy(&body).into_owned();
        let id = hex::encode(sha2::Sha256::digest(format!("{now_ms}{body}").as_bytes()));
        let published = ingress
            .consent(new.number, body, now_ms, &id)
            .await
            .map_err(|error| {
                ApiError::store(
                    "the consent record was not stored",
                    &anyhow::Error::from(error),
                )
            })?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "queued": true, "partition": published.partition, "seq": published.seq })),
        ));
    }
    let record = state
        .compliance
        .ledger()
        .append(new)
        .map_err(|error| ApiError::store("consent not recorded", &error))?;
    state.runtime.store().flush().await?;
    Ok((StatusCode::CREATED, Json(json!({ "recorded": record }))))
}

/// In cluster mode a start is an input of the contact's partition: answered 202 once the
/// stream has it; its owner runs it. `Idempotency-Key` makes a retried request start once.
async fn start_in_cluster(
    ingress: &crate::cluster::ingress::ClusterIngress,
    request: StartRequest,
    headers: &axum::http::HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let event_id = match headers.get("idempotency-key") {
        Some(key) => {
            let key = key
                .to_str()
                .ok()
                .filter(|key| {
                    (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "Idempotency-Key must be 1-128 printable ASCII characters".into(),
                    )
                })?;
            key.to_owned()
        }
        None => {
            use rand_core::RngCore as _;
            let mut bytes = [0u8; 16];
            rand_core::OsRng.fill_bytes(&mut bytes);
            hex::encode(bytes)
        }
    };
    let published = ingress
        .start(request, event_id.clone())
        .await
        .map_err(|error| {
            ApiError::store("the start was not stored", &anyhow::Error::from(error))
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "queued": true,
            "event_id": event_id,
            "partition": published.partition,
            "seq": published.seq,
            "duplicate": published.duplicate,
        })),
    ))
}

/// `GET /v1/cluster`: this node's partitions, epochs and progress (404 on one node).
pub(super) async fn cluster(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let Some((_, report)) = &state.cluster else {
        return Err(ApiError::NotFound(
            "not in cluster mode: [cluster] is not set".into(),
        ));
    };
    let report = report
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(Json(json!(report)))
}

/// `GET /v1/status`: how much work waits in each queue.
pub(super) async fn status(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let read = |error: anyhow::Error| ApiError::store("status read failed", &error);
    let events = match &state.events {
        Some(events) => events.pending().map_err(read)?.len(),
        None => 0,
    };
    Ok(Json(json!({
        "inbox": {
            "pending": state.inbox.pending_len().map_err(read)?,
            "dead_letters": state.inbox.dead_letters().map_err(read)?.len(),
        },
        "outbox": { "due": state.outbox.due_len().map_err(read)? },
        "events": { "pending": events },
    })))
}
