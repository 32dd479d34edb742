//! The agent API (`/v1/agent`, as the calling agent: see [`super::agent_auth`]): queues,
//! conversations with their whole context, and every change an agent makes. Each change is a
//! turn of the conversation ([`crate::handoff::Desk::act`]), durable before the answer; a reply
//! goes through the one send path, and the answer says what the gate decided.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::agent_auth::{
    Caller, SESSION_COOKIE, Session, check_secret, cleared_cookie, cookie, session_cookie,
};
use super::error::{ApiError, json_body};
use super::operator::outbound_messages;
use super::router::AppState;
use crate::compliance::gate::rfc3339;
use crate::flow::conversation::ConversationKey;
use crate::handoff::view::{self, Summary};
use crate::handoff::{Acted, DeskAction, DeskCommand, canned, sees};
use crate::phone::parse_e164;
use crate::store::agents::{AgentRecord, Presence, Role};
use crate::store::handoffs::HandoffCase;

/// How often an idle event stream sends a comment, so proxies keep it open.
const KEEP_ALIVE_SECS: u64 = 15;

/// The longest reply or note: ten segments of UCS-2 is far more than any text should be.
const MAX_TEXT_CHARS: usize = 1_600;

/// The header that tells the page the engine's time, so waits and deadlines are counted on
/// the engine's clock, not the browser's.
pub const NOW_HEADER: &str = "x-smsflow-now";

/// Adds [`NOW_HEADER`] to every agent API answer.
pub(super) async fn stamp_now(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Ok(value) = rfc3339(state.desk.now_ms()).parse() {
        response.headers_mut().insert(NOW_HEADER, value);
    }
    response
}

/// The agent as their own page shows them.
fn me(agent: &AgentRecord) -> Value {
    json!({
        "name": agent.name,
        "queues": agent.queues,
        "role": agent.role,
        "presence": agent.presence,
    })
}

/// `POST /v1/agent/session`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    secret: String,
}

/// `POST /v1/agent/session`: signs the page in with the agent's secret; sets the session cookie.
/// Signing in makes an offline agent available.
pub(super) async fn sign_in(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let peer = super::agent_auth::peer(request.extensions());
    let body = axum::body::to_bytes(request.into_body(), super::MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(super::MAX_BODY_BYTES))?;
    let body: SignIn = json_body(&body, "a sign-in (secret)")?;
    let agent = check_secret(&state, peer, &body.secret)
        .await?
        .map_err(|error| {
            tracing::info!("agent sign-in refused: {error}");
            ApiError::Unauthorized
        })?;
    let agent = match agent.presence {
        Presence::Offline => state
            .agents
            .set_presence(&agent.name, Presence::Available)?,
        _ => agent,
    };
    state.desk.capacity_changed();
    let token = state.agents.start_session(&agent.name);
    let secure = state
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    Ok((
        [(header::SET_COOKIE, session_cookie(&token, secure))],
        Json(json!({ "agent": me(&agent) })),
    )
        .into_response())
}

/// `DELETE /v1/agent/session`: signs out (the agent goes offline); 204.
pub(super) async fn sign_out(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.agents.end_session(token);
    }
    state.agents.set_presence(&agent.name, Presence::Offline)?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cleared_cookie())],
    )
        .into_response())
}

/// `GET /v1/agent/me`.
pub(super) async fn whoami(Extension(Caller(agent)): Extension<Caller>) -> Json<Value> {
    Json(me(&agent))
}

/// `POST /v1/agent/presence`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    presence: Presence,
}

/// `POST /v1/agent/presence`: available, busy or offline.
pub(super) async fn set_presence(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PresenceBody = json_body(&body, "a presence (available, busy or offline)")?;
    let agent = state.agents.set_presence(&agent.name, body.presence)?;
    state.desk.capacity_changed();
    Ok(Json(me(&agent)))
}

/// `GET /v1/agent/queues`: the caller's queues with their counts and oldest wait.
pub(super) async fn queues(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let desk = &state.desk;
    let cases = desk.cases()?;
    let names = desk.queues_of(&agent, &cases);
    let queues = view::queues(desk.config(), &names, &cases, desk.now_ms());
    Ok(Json(json!({ "queues": queues })))
}

/// `GET /v1/agent/conversations`' filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    queue: Option<String>,
    state: Option<String>,
    assignee: Option<String>,
    late: Option<bool>,
    limit: Option<usize>,
    cursor: Option<usize>,
}

/// The most a page of the list holds.
const MAX_PAGE: usize = 200;

/// `GET /v1/agent/conversations`: the caller's queues' conversations, oldest waiting first,
/// filtered, a page at a time (`next` is the cursor of the next page).
pub(super) async fn conversations(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let desk = &state.desk;
    let now = desk.now_ms();
    let cases = desk.cases()?;
    let assignee = query.assignee.as_deref().map(|who| {
        if who == "me" {
            agent.name.as_str()
        } else {
            who
        }
    });
    let states: Vec<&str> = match query.state.as_deref() {
        None | Some("" | "open") => vec!["waiting", "assigned", "snoozed"],
        Some("all") => vec!["waiting", "assigned", "snoozed", "resolved"],
        Some(state @ ("waiting" | "assigned" | "snoozed" | "resolved")) => vec![state],
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "state `{other}` is not one of waiting, assigned, snoozed, resolved, open, all"
            )));
        }
    };
    let mut list: Vec<(i64, Summary)> = cases
        .iter()
        .filter(|case| sees(&agent, &case.queue, case.assignee.as_deref()))
        .filter(|case| {
            query
                .queue
                .as_ref()
                .is_none_or(|queue| &case.queue == queue)
        })
        .filter(|case| states.contains(&case.state.as_str()))
        .filter(|case| assignee.is_none_or(|who| case.assignee.as_deref() == Some(who)))
        .map(|case| {
            (
                case.waiting_since_ms,
                view::summary(case, &desk.config().policy(&case.queue), now),
            )
        })
        .filter(|(_, summary)| query.late.is_none_or(|late| summary.late == late))
        .collect();
    list.sort_by(|(a, sa), (b, sb)| a.cmp(b).then_with(|| sa.contact.cmp(&sb.contact)));
    let start = query.cursor.unwrap_or(0);
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let next = (start + limit < list.len()).then_some(start + limit);
    let page: Vec<Summary> = list
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(_, summary)| summary)
        .collect();
    Ok(Json(json!({ "conversations": page, "next": next })))
}

/// The conversation with `phone`, as the caller may see it: in one of their queues, or theirs.
fn visible_case(
    state: &AppState,
    agent: &AgentRecord,
    phone: &str,
) -> Result<(ConversationKey, HandoffCase), ApiError> {
    let contact =
        parse_e164(phone).map_err(|problem| ApiError::Unprocessable(problem.to_string()))?;
    let key = ConversationKey::new(&state.our_number, &contact);
    let not_found = || {
        ApiError::NotFound(format!(
            "no handed-off conversation with {contact} in your queues"
        ))
    };
    let case = state.desk.case(&key)?.ok_or_else(not_found)?;
    if !sees(agent, &case.queue, case.assignee.as_deref()) {
        return Err(not_found());
    }
    Ok((key, case))
}

/// `GET /v1/agent/conversations/{phone}`: the summary, why and where the bot stopped, the whole
/// thread with each outbound text's gate decision and delivery, the notes, and who else is on it.
pub(super) async fn conversation(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (key, case) = visible_case(&state, &agent, &phone)?;
    Ok(Json(detail(&state, &agent, &key, &case)?))
}

fn detail(
    state: &AppState,
    agent: &AgentRecord,
    key: &ConversationKey,
    case: &HandoffCase,
) -> Result<Value, ApiError> {
    let desk = &state.desk;
    let transcript = state.runtime.transcript(&key.ours, &key.contact)?;
    let messages = outbound_messages(state, &transcript)?;
    let mut answer = summary_of(state, case)?;
    let notes: Vec<Value> = case
        .notes
        .iter()
        .map(|note| json!({ "agent": note.agent, "text": note.text, "at": rfc3339(note.at_ms), "at_ms": note.at_ms }))
        .collect();
    let history: Vec<Value> = case
        .history
        .iter()
        .map(|action| json!({ "agent": action.agent, "action": action.action, "at": rfc3339(action.at_ms), "at_ms": action.at_ms }))
        .collect();
    let viewers: Vec<Value> = desk
        .viewers(&case.contact, &agent.name)
        .into_iter()
        .map(|viewer| json!({ "agent": viewer.agent, "typing": viewer.typing }))
        .collect();
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("context".into(), json!(case.context));
        fields.insert("version".into(), json!(transcript.len()));
        fields.insert("transcript".into(), json!(transcript));
        fields.insert("messages".into(), json!(messages));
        fields.insert("notes".into(), json!(notes));
        fields.insert("history".into(), json!(history));
        fields.insert("viewers".into(), json!(viewers));
    }
    Ok(answer)
}

/// Runs `action` as the caller on the conversation with `phone`; the case after it.
async fn act(
    state: &AppState,
    agent: &AgentRecord,
    phone: &str,
    action: DeskAction,
) -> Result<Acted, ApiError> {
    let (key, _) = visible_case(state, agent, phone)?;
    let command = DeskCommand {
        agent: Some(agent.name.clone()),
        action,
    };
    Ok(state.desk.act(&key, command).await?)
}

fn summary_of(state: &AppState, case: &HandoffCase) -> Result<Value, ApiError> {
    let desk = &state.desk;
    serde_json::to_value(view::summary(
        case,
        &desk.config().policy(&case.queue),
        desk.now_ms(),
    ))
    .map_err(|_| ApiError::Internal)
}

/// `POST .../claim`: 200 with the conversation; 409 naming the holder.
pub(super) async fn claim(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Acted { case, .. } = act(&state, &agent, &phone, DeskAction::Claim).await?;
    Ok(Json(summary_of(&state, &case)?))
}

/// `POST .../assign`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    agent: String,
}

/// `POST .../assign` (supervisors): gives the conversation to an agent.
pub(super) async fn assign(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    if agent.role != Role::Supervisor {
        return Err(ApiError::Forbidden(
            "only a supervisor assigns conversations; claim it instead".to_owned(),
        ));
    }
    let body: AssignBody = json_body(&body, "an assignment (agent)")?;
    let to = state
        .agents
        .list()?
        .into_iter()
        .find(|candidate| candidate.name == body.agent && !candidate.disabled)
        .ok_or_else(|| {
            ApiError::Unprocessable(format!("there is no enabled agent called `{}`", body.agent))
        })?;
    let Acted { case, .. } =
        act(&state, &agent, &phone, DeskAction::Assign { to: to.name }).await?;
    Ok(Json(summary_of(&state, &case)?))
}

/// `POST .../reply`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    text: String,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    confirm: bool,
}

/// A reply's or note's text: not blank, not over [`MAX_TEXT_CHARS`].
fn checked_text(text: &str, what: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::Unprocessable(format!("{what} needs a text")));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::Unprocessable(format!(
            "{what} is {chars} characters; the most is {MAX_TEXT_CHARS}"
        )));
    }
    Ok(())
}

/// `POST .../reply`: 202 with the queued text's id and the gate's decision (sent, deferred with
/// its time, blocked with its reason). A text `/shortcode` is that canned reply.
pub(super) async fn reply(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: ReplyBody = json_body(&body, "a reply (text, version, confirm)")?;
    let text = match canned::shortcode(&body.text) {
        Some(code) => canned_text(&state, &agent, &phone, code)?,
        None => body.text,
    };
    checked_text(&text, "a reply")?;
    let action = DeskAction::Reply {
        text,
        version: body.version,
        confirm: body.confirm,
    };
    let Acted { case, queued } = act(&state, &agent, &phone, action).await?;
    let message_id = queued.into_iter().next().ok_or(ApiError::Internal)?;
    // The reply is queued and on disk: from here nothing may answer an error (a retry would
    // send it twice). A decision that cannot be read is shown as not known yet.
    let gate = state.outbox.decision(&message_id).unwrap_or_else(|error| {
        tracing::warn!("the gate's decision on {message_id} cannot be read: {error:#}");
        None
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "message_id": message_id,
            "gate": gate,
            "conversation": summary_of(&state, &case)?,
        })),
    ))
}

/// `POST .../note`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

/// `POST .../note`: a private note (never sent).
pub(super) async fn note(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: NoteBody = json_body(&body, "a note (text)")?;
    checked_text(&body.text, "a note")?;
    let Acted { case, .. } =
        act(&state, &agent, &phone, DeskAction::Note { text: body.text }).await?;
    Ok(Json(summary_of(&state, &case)?))
}

/// `POST .../snooze`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnoozeBody {
    until: String,
}

/// `POST .../snooze`: until an RFC 3339 time or for a duration (`"2h"`).
pub(super) async fn snooze(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: SnoozeBody = json_body(&body, "a snooze (until)")?;
    let until_ms = until(&body.until, state.desk.now_ms())?;
    let Acted { case, .. } = act(&state, &agent, &phone, DeskAction::Snooze { until_ms }).await?;
    Ok(Json(summary_of(&state, &case)?))
}

/// An RFC 3339 time, or a duration from `now_ms`.
fn until(text: &str, now_ms: i64) -> Result<i64, ApiError> {
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at.as_millisecond());
    }
    humantime::parse_duration(text)
        .ok()
        .and_then(|duration| i64::try_from(duration.as_millis()).ok())
        .map(|ms| now_ms.saturating_add(ms))
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "until `{text}` is neither an RFC 3339 time (2026-12-02T15:00:00Z) nor a duration (2h)"
            ))
        })
}

/// `POST .../resolve`.
pub(super) async fn resolve(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Acted { case, .. } = act(&state, &agent, &phone, DeskAction::Resolve).await?;
    Ok(Json(summary_of(&state, &case)?))
}

/// `POST .../release`'s body (may be empty).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    #[serde(default)]
    step: Option<String>,
}

/// `POST .../release`: back to the bot at `step`, or the run ends.
pub(super) async fn release(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ReleaseBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReleaseBody::default()
    } else {
        json_body(&body, "a release (step)")?
    };
    let step = body.step.filter(|step| !step.trim().is_empty());
    let Acted { case, .. } = act(&state, &agent, &phone, DeskAction::Release { step }).await?;
    Ok(Json(summary_of(&state, &case)?))
}

/// `POST .../viewing`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewingBody {
    #[serde(default)]
    typing: bool,
}

/// `POST .../viewing`: the caller is looking at (or typing in) the conversation; 204.
pub(super) async fn viewing(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let body: ViewingBody = json_body(&body, "a viewing mark (typing)")?;
    let (_, case) = visible_case(&state, &agent, &phone)?;
    state.desk.viewing(&agent.name, &case, body.typing);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/agent/canned`: every canned reply with the fields it needs.
pub(super) async fn canned_list(State(state): State<Arc<AppState>>) -> Json<Value> {
    let canned: Vec<Value> = state
        .desk
        .config()
        .canned
        .iter()
        .map(|(code, template)| {
            json!({ "shortcode": code, "text": template.source(), "fields": template.fields().collect::<Vec<_>>() })
        })
        .collect();
    Json(json!({ "canned": canned }))
}

/// `GET .../{phone}/canned/{shortcode}`: the reply filled from the contact's fields; 422 naming
/// the fields the contact lacks.
pub(super) async fn canned_render(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    Path((phone, code)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let text = canned_text(&state, &agent, &phone, &code)?;
    Ok(Json(json!({ "text": text })))
}

fn canned_text(
    state: &AppState,
    agent: &AgentRecord,
    phone: &str,
    code: &str,
) -> Result<String, ApiError> {
    let (key, _) = visible_case(state, agent, phone)?;
    let fields: BTreeMap<String, String> = state
        .runtime
        .conversation(&key.ours, &key.contact)?
        .map(|conversation| conversation.fields)
        .unwrap_or_default();
    canned::render(state.desk.config(), code, &fields).map_err(|error| match error {
        canned::CannedError::Unknown(_) => ApiError::NotFound(error.to_string()),
        canned::CannedError::MissingFields { .. } => ApiError::Unprocessable(error.to_string()),
    })
}

/// `POST /v1/agent/segments`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentsBody {
    text: String,
}

/// `POST /v1/agent/segments`: how the engine counts a text (the page's counter).
pub(super) async fn segments(body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let body: SegmentsBody = json_body(&body, "a text")?;
    let info = crate::sms::segments::segments(&body.text);
    Ok(Json(json!({
        "encoding": match info.encoding {
            crate::sms::segments::Encoding::Gsm7 => "GSM-7",
            crate::sms::segments::Encoding::Ucs2 => "UCS-2",
        },
        "segments": info.segments,
        "characters": body.text.chars().count(),
    })))
}

/// `GET /v1/agent/events`: changes the caller sees (their queues, the conversations they hold),
/// as server-sent events. The agent is read again at each event: a disabled agent's or a
/// signed-out session's stream ends, and a change of queues applies at once. A stream that falls
/// behind gets `event: reload`.
pub(super) async fn events(
    State(state): State<Arc<AppState>>,
    Extension(Caller(agent)): Extension<Caller>,
    session: Option<Extension<Session>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = state.desk.signals().subscribe();
    let watch = Watch {
        agents: Arc::clone(&state.agents),
        name: agent.name,
        session: session.map(|Extension(Session(token))| token),
        _open: crate::metrics::StreamClient::open(),
    };
    let stream =
        futures_util::stream::unfold((receiver, watch), |(mut receiver, watch)| async move {
            loop {
                let event = match receiver.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(_)) => {
                        let reload = SseEvent::default().event("reload").data("{}");
                        return Some((Ok(reload), (receiver, watch)));
                    }
                    Err(RecvError::Closed) => return None,
                };
                let agent = watch.agent()?;
                let own_mark =
                    event.kind == "viewing" && event.agent.as_deref() == Some(agent.name.as_str());
                if own_mark || !sees(&agent, &event.queue, event.assignee.as_deref()) {
                    continue;
                }
                let data = serde_json::to_string(&event).unwrap_or_default();
                let sse = SseEvent::default().event(event.kind).data(data);
                return Some((Ok(sse), (receiver, watch)));
            }
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(KEEP_ALIVE_SECS)))
}

/// Who an event stream is for, checked again at each event.
struct Watch {
    agents: Arc<crate::agents::Agents>,
    name: String,
    session: Option<String>,
    /// Counts the stream in `/metrics` while it is open.
    _open: crate::metrics::StreamClient,
}

impl Watch {
    /// The agent as they are now; `None` once disabled or signed out.
    fn agent(&self) -> Option<AgentRecord> {
        match &self.session {
            Some(token) => self.agents.session(token).ok(),
            None => self.agents.enabled(&self.name).ok(),
        }
    }
}
