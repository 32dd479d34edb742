//! Outbound HTTP through the host. The host checks every request against the operator's
//! allow-list and adds the credentials configured for the destination.

use crate::PluginError;
use crate::host::http as wit;

pub use wit::Method;

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    /// The body, at most the host's response size limit.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as UTF-8 text.
    ///
    /// # Errors
    ///
    /// [`PluginError::UpstreamFailure`] when the body is not UTF-8.
    pub fn text(&self) -> Result<&str, PluginError> {
        std::str::from_utf8(&self.body)
            .map_err(|_| PluginError::UpstreamFailure("response body is not UTF-8".into()))
    }

    /// Maps a non-2xx status to the error a plugin should return for it: 429 to `rate-limited`
    /// (with the `retry-after` seconds when given), 401/403 to `denied`, anything else to
    /// `upstream-failure`.
    ///
    /// # Errors
    ///
    /// The mapped error for a non-2xx status.
    pub fn error_for_status(self) -> Result<Self, PluginError> {
        match self.status {
            200..=299 => Ok(self),
            429 => {
                let retry_after = self
                    .headers
                    .iter()
                    .find(|(name, _)| name == "retry-after")
                    .and_then(|(_, value)| value.trim().parse().ok())
                    .unwrap_or(1);
                Err(PluginError::RateLimited(retry_after))
            }
            401 | 403 => Err(PluginError::Denied(format!(
                "upstream answered {}",
                self.status
            ))),
            status => Err(PluginError::UpstreamFailure(format!(
                "upstream answered {status}"
            ))),
        }
    }
}

/// Sends a request.
///
/// # Errors
///
/// [`PluginError::Denied`] when the destination is not granted; [`PluginError::UpstreamFailure`]
/// when the connection fails or the response is too large.
pub fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, PluginError> {
    let request = wit::Request {
        method,
        url: url.to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        body: body.map(<[u8]>::to_vec),
    };
    let response = wit::send(&request)?;
    Ok(Response {
        status: response.status,
        headers: response.headers,
        body: response.body,
    })
}

/// `GET url` with an `accept: application/json` header.
///
/// # Errors
///
/// As [`send`].
pub fn get_json(url: &str) -> Result<Response, PluginError> {
    send(Method::Get, url, &[("accept", "application/json")], None)
}

/// Sends `body` as JSON with `method`.
///
/// # Errors
///
/// As [`send`].
pub fn send_json(method: Method, url: &str, body: &str) -> Result<Response, PluginError> {
    send(
        method,
        url,
        &[
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ],
        Some(body.as_bytes()),
    )
}
