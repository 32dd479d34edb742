//! Who is calling the agent API: an agent's own secret as a bearer token, or the inbox page's
//! session cookie. A layer over every `/v1/agent` route (but sign-in) resolves the caller once,
//! so no handler can forget it; the operator's token is not an agent and gets 401 here.
//!
//! The cookie is HttpOnly (scripts cannot read it) and SameSite=Strict (a browser sends it only
//! from the page's own site). A state-changing call carried by the cookie must also come from
//! the page's origin when the browser says where it comes from (`Origin`): defence in depth
//! against a cross-site form post.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::router::AppState;
use crate::agents::{AuthError, SESSION_MS};
use crate::store::agents::AgentRecord;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "smsflow_session";

/// The agent making the call, put in the request's extensions by [`require_agent`].
#[derive(Debug, Clone)]
pub struct Caller(pub AgentRecord);

/// The page session a call came with (absent for a bearer secret): a long-lived call (the event
/// stream) checks it is still signed in.
#[derive(Debug, Clone)]
pub struct Session(pub String);

/// Resolves the caller from the bearer secret or the session cookie; 401 without either.
pub(super) async fn require_agent(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = peer(request.extensions());
    match caller(&state, peer, request.headers(), request.method()).await {
        Ok(agent) => {
            if bearer(request.headers()).is_none()
                && let Some(token) = cookie(request.headers(), SESSION_COOKIE)
            {
                let session = Session(token.to_owned());
                request.extensions_mut().insert(session);
            }
            request.extensions_mut().insert(Caller(agent));
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

async fn caller(
    state: &AppState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    method: &Method,
) -> Result<AgentRecord, ApiError> {
    let refused = |error: AuthError| {
        if let AuthError::Store(message) = &error {
            return ApiError::store("agent sign-in", message);
        }
        tracing::info!("agent call refused: {error}");
        ApiError::Unauthorized
    };
    if let Some(secret) = bearer(headers) {
        return check_secret(state, peer, secret).await?.map_err(refused);
    }
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(ApiError::Unauthorized);
    };
    if !is_safe(method) && !same_origin(headers) {
        return Err(ApiError::Forbidden(
            "a cross-site request cannot act for a signed-in agent".to_owned(),
        ));
    }
    state.agents.session(token).map_err(refused)
}

/// How many argon2 checks of unknown secrets run at once: each costs tens of milliseconds of
/// CPU and 19 MiB, so a flood of made-up secrets waits here instead of taking the server.
pub(super) const ARGON2_CHECKS: usize = 2;

/// Checks `secret` from client address `peer`: a remembered one at once, a new one on the
/// blocking threads, at most [`ARGON2_CHECKS`] at a time, unless `peer` has sent too many wrong
/// ones lately ([`super::sign_in_limit`]), which is refused before any check.
pub(super) async fn check_secret(
    state: &AppState,
    peer: Option<IpAddr>,
    secret: &str,
) -> Result<Result<AgentRecord, AuthError>, ApiError> {
    let agents = Arc::clone(&state.agents);
    if agents.remembers(secret) {
        return Ok(agents.authenticate(secret));
    }
    let now = state.clock.now_ms();
    if let Some(wait_ms) = peer.and_then(|peer| state.sign_ins.wait_ms(peer, now)) {
        tracing::warn!(
            ?peer,
            "agent secret refused unchecked: too many wrong ones from this address"
        );
        return Err(ApiError::TooManyAttempts {
            retry_after_s: (wait_ms + 999) / 1000,
        });
    }
    let _slot = state
        .argon2_checks
        .acquire()
        .await
        .map_err(|_| ApiError::Internal)?;
    let secret = secret.to_owned();
    let checked = tokio::task::spawn_blocking(move || agents.authenticate(&secret))
        .await
        .map_err(|_| ApiError::Internal)?;
    if let Some(peer) = peer {
        match &checked {
            Ok(_) => state.sign_ins.succeeded(peer),
            Err(AuthError::Refused) => state.sign_ins.failed(peer, now),
            Err(_) => {}
        }
    }
    Ok(checked)
}

/// The client address of a request, as the listener recorded it (absent in-process).
pub(super) fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The value of cookie `name`.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request's `Origin` (when the browser sent one) is the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(origin), Some(host)) if origin == host)
}

/// The `Set-Cookie` value that starts a session (`Secure` when the server is served over
/// HTTPS).
pub(super) fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        SESSION_MS / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub(super) fn cleared_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; smsflow_session=tok; b=2")]);
        assert_eq!(cookie(&map, SESSION_COOKIE), Some("tok"));
        assert_eq!(
            cookie(
                &headers(&[("cookie", "x_smsflow_session=no")]),
                SESSION_COOKIE
            ),
            None
        );
    }

    #[test]
    fn only_the_pages_own_origin_passes() {
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(
            same_origin(&headers(&[("host", "127.0.0.1:8080")])),
            "no Origin: not a browser's cross-site call"
        );
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_strict() {
        let cookie = session_cookie("tok", true);
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.ends_with("; Secure")
        );
    }
}
