//! The operator's agent calls (`/v1/agents`, behind the operator token): what
//! `smsflow agents` uses while the server holds the store.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, json_body};
use super::router::AppState;
use crate::agents::{AgentError, NewAgent};
use crate::store::agents::{AgentRecord, Role};

/// `POST /v1/agents`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    name: String,
    queues: Vec<String>,
    #[serde(default)]
    supervisor: bool,
}

/// An agent as the API shows it: never its secret's hash.
fn shown(agent: &AgentRecord) -> Value {
    json!({
        "name": agent.name,
        "queues": agent.queues,
        "role": agent.role,
        "presence": agent.presence,
        "disabled": agent.disabled,
    })
}

/// `POST /v1/agents`: 201 with the agent and its sign-in secret (shown this once); 409 when
/// the name is taken, 422 for a bad name or queue.
pub(super) async fn add_agent(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: AddBody = json_body(&body, "an agent (name, queues, supervisor)")?;
    let role = if body.supervisor {
        Role::Supervisor
    } else {
        Role::Agent
    };
    let new = NewAgent {
        name: body.name,
        queues: body.queues,
        role,
    };
    // argon2 takes tens of milliseconds of CPU, and the flush blocks: off the request threads.
    let agents = Arc::clone(&state.agents);
    let added = blocking(move || agents.add(new)).await?;
    let mut answer = shown(&added.agent);
    answer["secret"] = Value::String(added.secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `GET /v1/agents`: every agent, by name.
pub(super) async fn list_agents(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    let agents: Vec<Value> = state.agents.list()?.iter().map(shown).collect();
    Ok(Json(json!({ "agents": agents })))
}

/// `POST /v1/agents/{name}/disable`: the agent, disabled; 404 for an unknown name.
pub(super) async fn disable_agent(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let agents = Arc::clone(&state.agents);
    Ok(Json(shown(&blocking(move || agents.disable(&name)).await?)))
}

/// Runs `work` on the blocking threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AgentError> + Send + 'static,
) -> Result<T, ApiError> {
    let done = tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!("internal error: an agent change panicked: {error}");
        ApiError::Internal
    })?;
    Ok(done?)
}
