//! The operator API's bearer token, checked by a layer over every `/v1` route, so no handler
//! can forget it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use super::router::AppState;

/// Refuses a request without the right `Authorization: Bearer <[server] api_token>`.
pub(super) async fn require_bearer(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.api_token_digest else {
        return ApiError::ApiDisabled.into_response();
    };
    if bearer_matches(expected, request.headers()) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Whether `headers` carry the operator token (never, when none is configured).
pub(super) fn has_operator_token(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    state
        .api_token_digest
        .as_ref()
        .is_some_and(|expected| bearer_matches(expected, headers))
}

/// Whether the bearer token in `headers` is the one whose digest is `expected`.
fn bearer_matches(expected: &[u8; 32], headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(digest(given)[..].ct_eq(&expected[..])))
}

/// What is compared: the token's SHA-256, so the comparison takes the same time whatever the
/// token's length or where it differs.
pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
