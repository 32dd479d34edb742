//! The campaigns API (`/v1/campaigns`, behind the operator token): create (idempotent by
//! key), list, progress, pause, resume, cancel.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{ApiError, json_body};
use super::router::AppState;
use crate::campaigns::{CampaignError, Change, NewCampaign};

impl From<CampaignError> for ApiError {
    fn from(error: CampaignError) -> Self {
        match error {
            CampaignError::Invalid(_) => Self::Unprocessable(error.to_string()),
            CampaignError::Segment(segment) => segment.into(),
            CampaignError::Contact(contact) => contact.into(),
            CampaignError::NotFound(_) => Self::NotFound(error.to_string()),
            CampaignError::Conflict { .. } => Self::Conflict(error.to_string()),
            CampaignError::Store(error) => error.into(),
            CampaignError::Failed(error) => Self::store("a campaign's records", &error),
        }
    }
}

/// `POST /v1/campaigns`: 201 `{"id", "created"}`. The same key again replays the answer (201,
/// the same id) with `"created": false`, as an idempotent retry should see what the first call
/// saw.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new: NewCampaign = json_body(&body, "a campaign")?;
    let (campaign, created) = state.campaigns.create(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": campaign.id,
            "state": campaign.state.name(),
            "created": created,
        })),
    ))
}

/// `GET /v1/campaigns`: every campaign with its progress.
pub(super) async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let campaigns = state.campaigns.list()?;
    let progress = campaigns
        .iter()
        .map(|campaign| state.campaigns.progress(&campaign.id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "campaigns": progress })))
}

/// `GET /v1/campaigns/{id}`: its state and counts.
pub(super) async fn read(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.campaigns.progress(&id)?))
}

/// `POST /v1/campaigns/{id}/pause|resume|cancel`.
pub(super) async fn change(
    State(state): State<Arc<AppState>>,
    Path((id, change)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let change = match change.as_str() {
        "pause" => Change::Pause,
        "resume" => Change::Resume,
        "cancel" => Change::Cancel,
        other => {
            return Err(ApiError::NotFound(format!(
                "no change `{other}`: a campaign can be paused, resumed or cancelled"
            )));
        }
    };
    state.campaigns.change(&id, change).await?;
    Ok(Json(state.campaigns.progress(&id)?))
}
