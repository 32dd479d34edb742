//! The one error type of the HTTP layer: every failure becomes a status and a JSON body
//! `{"error": "..."}` here, and nowhere else.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::agents::AgentError;
use crate::flow::runtime::RuntimeError;
use crate::handoff::{CaseError, DeskError};
use crate::ingress::accept::AcceptError;
use crate::store::StoreError;

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (not JSON, an unknown key, a broken form): do not retry it.
    #[error("{0}")]
    BadRequest(String),
    /// No or the wrong bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// A webhook whose signature does not verify.
    #[error("{0}")]
    Forbidden(String),
    /// What the request names does not exist (or the feature is off).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the state (a run already active).
    #[error("{0}")]
    Conflict(String),
    /// A conflict the caller can act on: the body adds `details`' keys (`holder`, `changed`).
    #[error("{message}")]
    ConflictWith {
        /// What conflicts.
        message: String,
        /// Keys added to the body.
        details: serde_json::Value,
    },
    /// The body is over the limit.
    #[error("the body is over the {0}-byte limit")]
    PayloadTooLarge(usize),
    /// Well-formed, but not acceptable (a bad number, a missing field).
    #[error("{0}")]
    Unprocessable(String),
    /// Not acceptable, and the body adds `details`' keys (a query error's `column`).
    #[error("{message}")]
    UnprocessableWith {
        /// What is wrong.
        message: String,
        /// Keys added to the body.
        details: serde_json::Value,
    },
    /// The body is not of a type this route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many wrong secrets from this address: wait `retry_after_s` (sent as `Retry-After`).
    #[error("too many wrong secrets from this address; try again in {retry_after_s} s")]
    TooManyAttempts {
        /// Seconds until the address may try again.
        retry_after_s: i64,
    },
    /// A single-node feature asked of a cluster node (`docs/cluster.md` lists them).
    #[error(
        "{0} is not available in cluster mode yet: its data lives in one store, not in the contacts' partitions (docs/cluster.md, \"Not in cluster mode yet\")"
    )]
    NotInCluster(String),
    /// The operator API has no token configured.
    #[error("the API is disabled: set [server] api_token in the config")]
    ApiDisabled,
    /// The store failed: nothing was done, retry.
    #[error("the store failed; retry")]
    Unavailable,
    /// A bug: an invariant broke. Logged with its details; the client sees only that.
    #[error("internal error; it is logged")]
    Internal,
}

impl ApiError {
    /// The status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::ConflictWith { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) | Self::UnprocessableWith { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotInCluster(_) => StatusCode::NOT_IMPLEMENTED,
            Self::ApiDisabled | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A store failure, logged with what failed.
    pub fn store(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("{what}: {error:#}");
        Self::Unavailable
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let (
            Self::ConflictWith { details, .. } | Self::UnprocessableWith { details, .. },
            Some(fields),
        ) = (&self, body.as_object_mut())
            && let Some(details) = details.as_object()
        {
            fields.extend(details.clone());
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::TooManyAttempts { retry_after_s } = self
            && let Ok(value) = retry_after_s.to_string().parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::store("the store failed", &error)
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> Self {
        match error {
            RuntimeError::UnknownFlow(_) | RuntimeError::NoConversation(_) => {
                Self::NotFound(error.to_string())
            }
            RuntimeError::Case(case) => case.into(),
            RuntimeError::ConversationActive { .. } => Self::Conflict(error.to_string()),
            RuntimeError::NotApiStartable(_)
            | RuntimeError::MissingFields { .. }
            | RuntimeError::OwnNumber(_)
            | RuntimeError::Invalid(_) => Self::Unprocessable(error.to_string()),
            RuntimeError::Store(error) => error.into(),
            RuntimeError::Internal(error) => {
                tracing::error!("internal error: {error:#}");
                Self::Internal
            }
        }
    }
}

impl From<DeskError> for ApiError {
    fn from(error: DeskError) -> Self {
        match error {
            DeskError::Case(error) => error.into(),
            DeskError::Store(error) => error.into(),
            DeskError::Internal(error) => {
                tracing::error!("internal error: {error:#}");
                Self::Internal
            }
        }
    }
}

impl From<CaseError> for ApiError {
    fn from(error: CaseError) -> Self {
        let message = error.to_string();
        match error {
            CaseError::NotHandedOff(_) => Self::NotFound(message),
            CaseError::HeldBy { holder } => Self::ConflictWith {
                message,
                details: serde_json::json!({ "holder": holder }),
            },
            CaseError::ThreadChanged { now, .. } => Self::ConflictWith {
                message,
                details: serde_json::json!({ "changed": true, "version": now }),
            },
            CaseError::Resolved | CaseError::Released | CaseError::Stale => Self::Conflict(message),
            CaseError::UnknownStep { .. } | CaseError::Invalid(_) => Self::Unprocessable(message),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Exists(_) | AgentError::Disabled(_) => Self::Conflict(error.to_string()),
            AgentError::Unknown(_) => Self::NotFound(error.to_string()),
            AgentError::InvalidName(_) | AgentError::InvalidQueue(_) | AgentError::NoQueue(_) => {
                Self::Unprocessable(error.to_string())
            }
            AgentError::Store(error) => error.into(),
            AgentError::Hash(message) => {
                tracing::error!("internal error: {message}");
                Self::Internal
            }
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(error: AcceptError) -> Self {
        match error {
            AcceptError::Refused(reason) => Self::BadRequest(reason),
            // Not acknowledged: the provider retries.
            AcceptError::Store(error) => Self::store("inbound text not stored", &error),
        }
    }
}

/// Parses a JSON request body, or the 400 that says why it is not `what`.
///
/// # Errors
///
/// [`ApiError::BadRequest`] naming the problem; [`ApiError::Unprocessable`] for a string that
/// breaks [`crate::input::check_json`], naming its path.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let bad = |problem: serde_json::Error| {
        ApiError::BadRequest(format!("the body is not {what}: {problem}"))
    };
    // Typed first, so a wrong shape is told in the type's terms; then every string's class.
    let typed = serde_json::from_slice(body).map_err(bad)?;
    let value: serde_json::Value = serde_json::from_slice(body).map_err(bad)?;
    crate::input::check_json(&value)?;
    Ok(typed)
}

impl From<crate::input::InputError> for ApiError {
    fn from(error: crate::input::InputError) -> Self {
        Self::Unprocessable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_is_always_503_and_a_bug_500() {
        let encode = StoreError::Encode {
            table: "conversations",
            reason: "x".into(),
        };
        assert_eq!(
            ApiError::from(encode).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let store = RuntimeError::Store(StoreError::Corrupt {
            table: "outbox",
            reason: "x".into(),
        });
        assert_eq!(
            ApiError::from(store).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let bug = RuntimeError::Internal(anyhow::anyhow!("wait step is missing"));
        let bug = ApiError::from(bug);
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!bug.to_string().contains("wait step"), "{bug}");
        let refused = AcceptError::Refused("too long".into());
        assert_eq!(ApiError::from(refused).status(), StatusCode::BAD_REQUEST);
    }
}
